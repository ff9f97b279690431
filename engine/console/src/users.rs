//! The console's accounts and each user's own sender lists, in `console.db` (SQLite, WAL, full
//! sync): who may log in with what role over which domains, and what a user allowed or blocked.
//!
//! Passwords are stored only as Argon2id PHC strings (argon2 crate, default parameters); a
//! login for an unknown account still runs one verification, so timing does not tell which
//! accounts exist. Every call blocks: the console runs them off its async tasks.

use std::path::Path;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use mxguard_policy::user_lists::UserLists;
use rusqlite::{params, Connection, OptionalExtension};

/// What an account may do. End users see only their own mail; a technician tracks the mail of
/// their domains (read-only); a domain admin does everything for their domains; the superadmin
/// everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    /// Read-only: message tracking and statistics of their domains, no quarantine.
    Technician,
    DomainAdmin,
    Superadmin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "technician" => Some(Role::Technician),
            "domain-admin" => Some(Role::DomainAdmin),
            "superadmin" => Some(Role::Superadmin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Technician => "technician",
            Role::DomainAdmin => "domain-admin",
            Role::Superadmin => "superadmin",
        }
    }
}

/// A logged-in account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The login: for an end user, the mail address whose quarantine it sees.
    pub email: String,
    pub role: Role,
    /// For a domain admin, the domains administered (lower case).
    pub domains: Vec<String>,
}

impl Account {
    /// Whether this account may see and act on `rcpt`'s quarantined mail.
    pub fn may_see(&self, rcpt: &str) -> bool {
        match self.role {
            Role::Superadmin => true,
            Role::DomainAdmin => rcpt.rsplit_once('@').is_some_and(|(_, d)| self.domains.iter().any(|x| x.eq_ignore_ascii_case(d))),
            Role::User => rcpt.eq_ignore_ascii_case(&self.email),
            Role::Technician => false,
        }
    }

    /// Whether this account may track mail for `rcpt` (the log search and statistics).
    pub fn may_track(&self, rcpt: &str) -> bool {
        match self.role {
            Role::Superadmin => true,
            Role::DomainAdmin | Role::Technician => rcpt.rsplit_once('@').is_some_and(|(_, d)| self.domains.iter().any(|x| x.eq_ignore_ascii_case(d))),
            Role::User => false,
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    email   TEXT PRIMARY KEY COLLATE NOCASE,
    hash    TEXT NOT NULL,
    role    TEXT NOT NULL,
    domains TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS digests (
    rcpt    TEXT PRIMARY KEY COLLATE NOCASE,
    last_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sender_lists (
    rcpt     TEXT NOT NULL COLLATE NOCASE,
    sender   TEXT NOT NULL COLLATE NOCASE,
    kind     TEXT NOT NULL CHECK (kind IN ('allow', 'block')),
    added_ms INTEGER NOT NULL,
    PRIMARY KEY (rcpt, sender, kind)
);
";

pub struct Users {
    conn: Connection,
}

/// A hash to verify against when the account does not exist (same cost as a real one).
fn decoy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| Argon2::default().hash_password(b"no such account").map(|h| h.to_string()).unwrap_or_default())
}

impl Users {
    pub fn open(path: &Path) -> rusqlite::Result<Users> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Users { conn })
    }

    /// Creates or replaces an account.
    pub fn put(&self, email: &str, password: &str, role: Role, domains: &[String]) -> Result<(), String> {
        if email.is_empty() || password.len() < 8 {
            return Err("an account needs a login and a password of at least 8 characters".into());
        }
        let hash = Argon2::default().hash_password(password.as_bytes()).map_err(|e| e.to_string())?.to_string();
        let domains: Vec<String> = domains.iter().map(|d| d.trim().to_ascii_lowercase()).filter(|d| !d.is_empty()).collect();
        self.conn
            .execute(
                "INSERT INTO users (email, hash, role, domains) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (email) DO UPDATE SET hash = ?2, role = ?3, domains = ?4",
                params![email.trim(), hash, role.as_str(), domains.join(",")],
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The account whose password this is, if it is.
    pub fn verify(&self, email: &str, password: &str) -> rusqlite::Result<Option<Account>> {
        let row: Option<(String, String, String, String)> = self
            .conn
            .query_row("SELECT email, hash, role, domains FROM users WHERE email = ?1", params![email.trim()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let stored = row.as_ref().map_or(decoy_hash(), |r| r.1.as_str()).to_string();
        let ok = PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        Ok(row.filter(|_| ok).and_then(|(email, _, role, domains)| {
            Some(Account { email, role: Role::parse(&role)?, domains: domains.split(',').filter(|d| !d.is_empty()).map(str::to_string).collect() })
        }))
    }

    /// Puts `sender` (an address or `@domain`) on `rcpt`'s allow or block list.
    pub fn list_add(&self, rcpt: &str, sender: &str, kind: &str, now_ms: u64) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO sender_lists (rcpt, sender, kind, added_ms) VALUES (?1, ?2, ?3, ?4)",
            params![rcpt.trim().to_ascii_lowercase(), sender.trim().to_ascii_lowercase(), kind, now_ms as i64],
        )?;
        Ok(())
    }

    pub fn list_remove(&self, rcpt: &str, sender: &str, kind: &str) -> rusqlite::Result<()> {
        self.conn.execute("DELETE FROM sender_lists WHERE rcpt = ?1 AND sender = ?2 AND kind = ?3", params![rcpt, sender, kind])?;
        Ok(())
    }

    /// One recipient's entries: (sender, kind).
    pub fn lists_of(&self, rcpt: &str) -> rusqlite::Result<Vec<(String, String)>> {
        let mut st = self.conn.prepare_cached("SELECT sender, kind FROM sender_lists WHERE rcpt = ?1 ORDER BY kind, sender")?;
        let rows = st.query_map(params![rcpt], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }

    /// When `rcpt`'s last digest covered mail up to (0: never).
    pub fn digest_last(&self, rcpt: &str) -> rusqlite::Result<u64> {
        Ok(self.conn.query_row("SELECT last_ms FROM digests WHERE rcpt = ?1", params![rcpt], |r| r.get::<_, i64>(0)).optional()?.unwrap_or(0) as u64)
    }

    pub fn digest_done(&self, rcpt: &str, up_to_ms: u64) -> rusqlite::Result<()> {
        self.conn.execute("INSERT OR REPLACE INTO digests (rcpt, last_ms) VALUES (?1, ?2)", params![rcpt.to_ascii_lowercase(), up_to_ms as i64])?;
        Ok(())
    }

    /// Every entry, as the cores read them.
    pub fn all_lists(&self) -> rusqlite::Result<UserLists> {
        let mut l = UserLists::default();
        let mut st = self.conn.prepare_cached("SELECT rcpt, sender, kind FROM sender_lists")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        for row in rows {
            let (rcpt, sender, kind) = row?;
            let set = if kind == "allow" { &mut l.allow } else { &mut l.block };
            set.insert((rcpt.to_ascii_lowercase(), sender.to_ascii_lowercase()));
        }
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_and_lists() {
        let d = std::env::temp_dir().join(format!("mxg-console-users-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let u = Users::open(&d.join("console.db")).unwrap();
        u.put("ann@example.test", "correct horse", Role::User, &[]).unwrap();
        u.put("admin@isp.test", "battery staple", Role::DomainAdmin, &["Example.test".into()]).unwrap();
        assert!(u.put("x@example.test", "short", Role::User, &[]).is_err());
        let ann = u.verify("ANN@example.test", "correct horse").unwrap().unwrap();
        assert_eq!((ann.role, ann.email.as_str()), (Role::User, "ann@example.test"));
        assert_eq!(u.verify("ann@example.test", "wrong horse").unwrap(), None);
        assert_eq!(u.verify("nobody@example.test", "correct horse").unwrap(), None);
        assert!(ann.may_see("Ann@Example.test") && !ann.may_see("bob@example.test"));
        let admin = u.verify("admin@isp.test", "battery staple").unwrap().unwrap();
        assert!(admin.may_see("bob@example.test") && !admin.may_see("bob@other.test"));
        assert!(Account { email: "root".into(), role: Role::Superadmin, domains: vec![] }.may_see("any@where.test"));
        // The stored hash is Argon2id, never the password.
        let h: String = u.conn.query_row("SELECT hash FROM users WHERE email = 'ann@example.test'", [], |r| r.get(0)).unwrap();
        assert!(h.starts_with("$argon2id$") && !h.contains("correct"));
        u.list_add("ann@example.test", "News@Shop.example", "allow", 1).unwrap();
        u.list_add("ann@example.test", "@spam.example", "block", 2).unwrap();
        assert_eq!(u.lists_of("ann@example.test").unwrap().len(), 2);
        let all = u.all_lists().unwrap();
        assert!(all.allow.contains(&("ann@example.test".into(), "news@shop.example".into())));
        u.list_remove("ann@example.test", "@spam.example", "block").unwrap();
        assert!(u.all_lists().unwrap().block.is_empty());
    }
}
