//! The console's accounts, API tokens, one-time login links and each user's own sender lists, in
//! the console database (SQLite `console.db` by default, or PostgreSQL shared by several gateways,
//! through the quarantine's data-access layer): who may log in with what role over which domains
//! and users, and what a user allowed or blocked.
//!
//! Passwords are stored only as Argon2id PHC strings (argon2 crate, default parameters); a
//! login for an unknown account still runs one verification, so timing does not tell which
//! accounts exist. API tokens are stored only as SHA-256 digests of their secret part. Every
//! call blocks: the console runs them on its data thread, never on its async tasks.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use mxguard_policy::user_lists::UserLists;
use mxguard_quarantine::db::{Db, DbResult, Kind, Location, Row};
use mxguard_quarantine::Scope;

/// What an account may do. End users see only their own mail; a subadmin the mail of the users
/// given to them; a technician tracks the mail of their domains (read-only); a domain admin does
/// everything for their domains; the superadmin everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    User,
    /// Read-only: message tracking and statistics of their domains, no quarantine.
    Technician,
    /// A domain admin's delegate for some of a domain's users (their quarantine and lists).
    Subadmin,
    DomainAdmin,
    Superadmin,
}

pub const ROLES: [Role; 5] = [Role::User, Role::Technician, Role::Subadmin, Role::DomainAdmin, Role::Superadmin];

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        ROLES.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Technician => "technician",
            Role::Subadmin => "subadmin",
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
    /// For a domain admin, technician or subadmin, the domains they work in (lower case).
    pub domains: Vec<String>,
    /// For a subadmin, the addresses whose mail they look after (lower case, within `domains`).
    pub members: Vec<String>,
}

fn domain_part(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

impl Account {
    /// An end user known only by their address (a digest's login link).
    pub fn user(email: &str) -> Account {
        Account { email: email.to_ascii_lowercase(), role: Role::User, domains: Vec::new(), members: Vec::new() }
    }

    fn has_domain(&self, d: &str) -> bool {
        self.domains.iter().any(|x| x.eq_ignore_ascii_case(d))
    }

    /// Whether this account may see and act on `rcpt`'s quarantined mail.
    pub fn may_see(&self, rcpt: &str) -> bool {
        match self.role {
            Role::Superadmin => true,
            Role::DomainAdmin => self.has_domain(domain_part(rcpt)),
            Role::Subadmin => self.has_domain(domain_part(rcpt)) && self.members.iter().any(|m| m.eq_ignore_ascii_case(rcpt)),
            Role::User => rcpt.eq_ignore_ascii_case(&self.email),
            Role::Technician => false,
        }
    }

    /// Whether this account may track mail for `rcpt` (the log search and statistics).
    pub fn may_track(&self, rcpt: &str) -> bool {
        match self.role {
            Role::Superadmin => true,
            Role::DomainAdmin | Role::Technician => self.has_domain(domain_part(rcpt)),
            Role::Subadmin => self.may_see(rcpt),
            Role::User => false,
        }
    }

    /// Whose quarantine a search by this account covers.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Superadmin => Scope::All,
            Role::DomainAdmin => Scope::Domains(self.domains.clone()),
            Role::Subadmin => Scope::Rcpts(self.members.iter().filter(|m| self.has_domain(domain_part(m))).cloned().collect()),
            Role::User => Scope::Rcpts(vec![self.email.clone()]),
            Role::Technician => Scope::Rcpts(Vec::new()),
        }
    }

    /// Whether this account may configure `domain` (its lists, routes, filter settings).
    pub fn may_admin_domain(&self, domain: &str) -> bool {
        match self.role {
            Role::Superadmin => true,
            Role::DomainAdmin => self.has_domain(domain),
            _ => false,
        }
    }

    /// Whether this account may create, change or remove `other` (as it is, and as it would
    /// be): the superadmin any; a domain admin accounts wholly inside their domains, never a
    /// superadmin; nobody else.
    pub fn may_manage(&self, other: &Account) -> bool {
        match self.role {
            Role::Superadmin => true,
            Role::DomainAdmin => {
                other.role != Role::Superadmin
                    && match other.role {
                        Role::User => self.has_domain(domain_part(&other.email)),
                        _ => !other.domains.is_empty() && other.domains.iter().all(|d| self.has_domain(d)),
                    }
                    && other.members.iter().all(|m| self.has_domain(domain_part(m)))
            }
            _ => false,
        }
    }
}

/// In SQLite's words; PostgreSQL's are derived ([`mxguard_quarantine::db::postgres_ddl`]).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    email   TEXT PRIMARY KEY COLLATE NOCASE,
    hash    TEXT NOT NULL,
    role    TEXT NOT NULL,
    domains TEXT NOT NULL DEFAULT '',
    members TEXT NOT NULL DEFAULT ''
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
CREATE TABLE IF NOT EXISTS api_tokens (
    id         TEXT PRIMARY KEY,
    digest     TEXT NOT NULL,
    email      TEXT NOT NULL,
    label      TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS used_links (
    mac        TEXT PRIMARY KEY,
    expires    INTEGER NOT NULL
);
";

/// An API token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub email: String,
    pub label: String,
    pub created_ms: u64,
}

pub struct Users {
    db: Db,
}

/// A hash to verify against when the account does not exist (same cost as a real one).
fn decoy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| Argon2::default().hash_password(b"no such account").map(|h| h.to_string()).unwrap_or_default())
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(|d| d.trim().to_ascii_lowercase()).filter(|d| !d.is_empty()).collect()
}

fn account_row(r: &Row) -> Option<Account> {
    Some(Account { email: r.text(0), role: Role::parse(&r.text(1))?, domains: split_list(&r.text(2)), members: split_list(&r.text(3)) })
}

pub(crate) fn sha256_hex(s: &str) -> String {
    crate::digest::hex(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
}

/// An account's login, domains and members as stored, or why it cannot be.
fn checked(a: &Account) -> Result<(String, String, String), String> {
    let email = a.email.trim().to_ascii_lowercase();
    if email.is_empty() || email.len() > 254 || email.contains(char::is_whitespace) {
        return Err("an account needs a login without spaces".into());
    }
    if a.role == Role::User && !email.contains('@') {
        return Err("an end user's login is their mail address".into());
    }
    if a.role == Role::Subadmin && a.members.iter().any(|m| !a.domains.iter().any(|d| d.eq_ignore_ascii_case(domain_part(m)))) {
        return Err("a subadmin's users must be in the subadmin's domains".into());
    }
    Ok((email, split_list(&a.domains.join(",")).join(","), split_list(&a.members.join(",")).join(",")))
}

/// A password's Argon2id PHC string (default parameters, a fresh salt): what is stored, and what
/// `mxguard user hash` prints for an appliance seed.
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.len() < 8 {
        return Err("a password needs at least 8 characters".into());
    }
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

impl Users {
    pub fn open(loc: &Location) -> DbResult<Users> {
        let mut db = Db::open(loc, SCHEMA)?;
        if db.kind() == Kind::Sqlite && db.query("SELECT name FROM pragma_table_info('users') WHERE name = 'members'", &[])?.is_empty() {
            db.batch("ALTER TABLE users ADD COLUMN members TEXT NOT NULL DEFAULT ''")?;
        }
        Ok(Users { db })
    }

    /// Creates or replaces an account; `password` empty keeps the one it has (an error for a
    /// new account).
    pub fn put(&mut self, a: &Account, password: &str) -> Result<(), String> {
        let (email, domains, members) = checked(a)?;
        if password.is_empty() {
            let n = self.db.exec("UPDATE users SET role = $2, domains = $3, members = $4 WHERE email = $1", &[email.into(), a.role.as_str().into(), domains.into(), members.into()])?;
            return if n == 1 { Ok(()) } else { Err("a new account needs a password".into()) };
        }
        let hash = hash_password(password)?;
        self.store(&email, &hash, a.role, domains, members)
    }

    /// Creates or replaces an account whose password is given as its Argon2id PHC string (the
    /// appliance seed's superadmin: the seed never holds the password itself).
    pub fn put_hash(&mut self, a: &Account, phc: &str) -> Result<(), String> {
        let (email, domains, members) = checked(a)?;
        let parsed = PasswordHash::new(phc.trim()).map_err(|e| format!("not a PHC string: {e}"))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(format!("the password hash is {}, not argon2id", parsed.algorithm.as_str()));
        }
        self.store(&email, phc.trim(), a.role, domains, members)
    }

    fn store(&mut self, email: &str, hash: &str, role: Role, domains: String, members: String) -> Result<(), String> {
        self.db.exec(
            "INSERT INTO users (email, hash, role, domains, members) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (email) DO UPDATE SET hash = $2, role = $3, domains = $4, members = $5",
            &[email.into(), hash.into(), role.as_str().into(), domains.into(), members.into()],
        )?;
        Ok(())
    }

    /// Whether any account is a superadmin (the setup code is for a node with none).
    pub fn has_superadmin(&mut self) -> DbResult<bool> {
        Ok(!self.db.query("SELECT email FROM users WHERE role = $1 LIMIT 1", &[Role::Superadmin.as_str().into()])?.is_empty())
    }

    /// The account named `email`, if there is one.
    pub fn get(&mut self, email: &str) -> DbResult<Option<Account>> {
        let r = self.db.query_one("SELECT email, role, domains, members FROM users WHERE email = $1", &[email.trim().to_ascii_lowercase().into()])?;
        Ok(r.as_ref().and_then(account_row))
    }

    /// Every account, by login.
    pub fn all(&mut self) -> DbResult<Vec<Account>> {
        Ok(self.db.query("SELECT email, role, domains, members FROM users ORDER BY email", &[])?.iter().filter_map(account_row).collect())
    }

    /// Removes an account and its API tokens; whether it existed.
    pub fn remove(&mut self, email: &str) -> DbResult<bool> {
        let email = email.trim().to_ascii_lowercase();
        self.db.transaction(|db| {
            db.exec("DELETE FROM api_tokens WHERE email = $1", &[(&email).into()])?;
            Ok(db.exec("DELETE FROM users WHERE email = $1", &[(&email).into()])? == 1)
        })
    }

    /// The account whose password this is, if it is.
    pub fn verify(&mut self, email: &str, password: &str) -> DbResult<Option<Account>> {
        let row = self.db.query_one("SELECT email, role, domains, members, hash FROM users WHERE email = $1", &[email.trim().to_ascii_lowercase().into()])?;
        let stored = row.as_ref().map_or(decoy_hash().to_string(), |r| r.text(4));
        let ok = PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        Ok(row.filter(|_| ok).as_ref().and_then(account_row))
    }

    /// A new API token acting as `email`: `mxg_ID_SECRET`, shown once; only the secret's
    /// SHA-256 is kept.
    pub fn token_new(&mut self, email: &str, label: &str, now_ms: u64) -> Result<String, String> {
        if self.get(email)?.is_none() {
            return Err(format!("no account {email}"));
        }
        let (id, secret) = (crate::sessions::token()[..16].to_string(), crate::sessions::token());
        if secret.is_empty() {
            return Err("no randomness for a token".into());
        }
        self.db.exec(
            "INSERT INTO api_tokens (id, digest, email, label, created_ms) VALUES ($1, $2, $3, $4, $5)",
            &[(&id).into(), sha256_hex(&secret).into(), email.trim().to_ascii_lowercase().into(), label.chars().take(200).collect::<String>().into(), now_ms.into()],
        )?;
        Ok(format!("mxg_{id}_{secret}"))
    }

    /// The account a token acts as, if the token is valid (constant-time comparison).
    pub fn token_account(&mut self, token: &str) -> DbResult<Option<Account>> {
        let Some((id, secret)) = token.strip_prefix("mxg_").and_then(|t| t.split_once('_')) else { return Ok(None) };
        let Some(r) = self.db.query_one("SELECT digest, email FROM api_tokens WHERE id = $1", &[id.into()])? else { return Ok(None) };
        if !crate::sessions::same(&r.text(0), &sha256_hex(secret)) {
            return Ok(None);
        }
        self.get(&r.text(1))
    }

    /// Tokens acting as `email` (all tokens: `None`).
    pub fn tokens(&mut self, email: Option<&str>) -> DbResult<Vec<TokenInfo>> {
        let rows = match email {
            Some(e) => self.db.query("SELECT id, email, label, created_ms FROM api_tokens WHERE email = $1 ORDER BY created_ms", &[e.to_ascii_lowercase().into()])?,
            None => self.db.query("SELECT id, email, label, created_ms FROM api_tokens ORDER BY created_ms", &[])?,
        };
        Ok(rows.iter().map(|r| TokenInfo { id: r.text(0), email: r.text(1), label: r.text(2), created_ms: r.u64(3) }).collect())
    }

    pub fn token_revoke(&mut self, id: &str) -> DbResult<bool> {
        Ok(self.db.exec("DELETE FROM api_tokens WHERE id = $1", &[id.into()])? == 1)
    }

    /// Marks a one-time link (by its MAC) used; false if it already was. Spent links are
    /// forgotten once expired.
    pub fn spend_link(&mut self, mac: &str, expires: u64, now: u64) -> DbResult<bool> {
        self.db.exec("DELETE FROM used_links WHERE expires < $1", &[now.into()])?;
        Ok(self.db.exec("INSERT INTO used_links (mac, expires) VALUES ($1, $2) ON CONFLICT (mac) DO NOTHING", &[mac.into(), expires.into()])? == 1)
    }

    /// Puts `sender` (an address or `@domain`) on `rcpt`'s allow or block list.
    pub fn list_add(&mut self, rcpt: &str, sender: &str, kind: &str, now_ms: u64) -> DbResult<()> {
        self.db.exec(
            "INSERT INTO sender_lists (rcpt, sender, kind, added_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (rcpt, sender, kind) DO UPDATE SET added_ms = $4",
            &[rcpt.trim().to_ascii_lowercase().into(), sender.trim().to_ascii_lowercase().into(), kind.into(), now_ms.into()],
        )?;
        Ok(())
    }

    pub fn list_remove(&mut self, rcpt: &str, sender: &str, kind: &str) -> DbResult<()> {
        self.db.exec(
            "DELETE FROM sender_lists WHERE rcpt = $1 AND sender = $2 AND kind = $3",
            &[rcpt.trim().to_ascii_lowercase().into(), sender.trim().to_ascii_lowercase().into(), kind.into()],
        )?;
        Ok(())
    }

    /// One recipient's entries: (sender, kind).
    pub fn lists_of(&mut self, rcpt: &str) -> DbResult<Vec<(String, String)>> {
        let rows = self.db.query("SELECT sender, kind FROM sender_lists WHERE rcpt = $1 ORDER BY kind, sender", &[rcpt.trim().to_ascii_lowercase().into()])?;
        Ok(rows.iter().map(|r| (r.text(0), r.text(1))).collect())
    }

    /// When `rcpt`'s last digest covered mail up to (0: never).
    pub fn digest_last(&mut self, rcpt: &str) -> DbResult<u64> {
        Ok(self.db.query_one("SELECT last_ms FROM digests WHERE rcpt = $1", &[rcpt.to_ascii_lowercase().into()])?.map_or(0, |r| r.u64(0)))
    }

    /// Claims `rcpt`'s next digest, covering mail up to `up_to_ms`, if their last one still
    /// covers up to `last_ms` (what the caller read): true for the one gateway that gets it, so
    /// gateways sharing the database never send the same digest twice.
    pub fn digest_claim(&mut self, rcpt: &str, last_ms: u64, up_to_ms: u64) -> DbResult<bool> {
        let n = self.db.exec(
            "INSERT INTO digests (rcpt, last_ms) VALUES ($1, $3) ON CONFLICT (rcpt) DO UPDATE SET last_ms = $3 WHERE digests.last_ms = $2",
            &[rcpt.to_ascii_lowercase().into(), last_ms.into(), up_to_ms.into()],
        )?;
        Ok(n == 1)
    }

    /// Sets what `rcpt`'s last digest covered (a claim given back when sending failed).
    pub fn digest_done(&mut self, rcpt: &str, up_to_ms: u64) -> DbResult<()> {
        self.db.exec(
            "INSERT INTO digests (rcpt, last_ms) VALUES ($1, $2) ON CONFLICT (rcpt) DO UPDATE SET last_ms = $2",
            &[rcpt.to_ascii_lowercase().into(), up_to_ms.into()],
        )?;
        Ok(())
    }

    /// Every entry, as the cores read them.
    pub fn all_lists(&mut self) -> DbResult<UserLists> {
        let mut l = UserLists::default();
        for r in self.db.query("SELECT rcpt, sender, kind FROM sender_lists", &[])? {
            let set = if r.text(2) == "allow" { &mut l.allow } else { &mut l.block };
            set.insert((r.text(0).to_ascii_lowercase(), r.text(1).to_ascii_lowercase()));
        }
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(email: &str, role: Role, domains: &[&str], members: &[&str]) -> Account {
        Account { email: email.into(), role, domains: domains.iter().map(|s| s.to_string()).collect(), members: members.iter().map(|s| s.to_string()).collect() }
    }

    /// SQLite always; PostgreSQL too when tests/run started one (MXGUARD_TEST_POSTGRES).
    fn databases() -> Vec<Users> {
        let d = std::env::temp_dir().join(format!("mxg-console-users-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let mut v = vec![Users::open(&Location::Sqlite(d.join("console.db"))).unwrap()];
        if let Ok(url) = std::env::var("MXGUARD_TEST_POSTGRES") {
            let mut u = Users::open(&Location::Postgres(url)).unwrap();
            u.db.batch("TRUNCATE users, digests, sender_lists, api_tokens, used_links").unwrap();
            v.push(u);
        }
        v
    }

    /// Part of the test below (one database at a time: the PostgreSQL one is shared).
    fn an_account_from_a_password_hash(u: &mut Users) {
        let boss = acct("boss", Role::Superadmin, &[], &[]);
        let phc = hash_password("given as a hash").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        u.put_hash(&boss, &format!("{phc}\n")).unwrap();
        assert_eq!(u.verify("boss", "given as a hash").unwrap().map(|a| a.role), Some(Role::Superadmin));
        assert!(u.has_superadmin().unwrap());
        assert!(u.put_hash(&boss, "hunter2").is_err());
        assert!(u.put_hash(&boss, "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo").unwrap_err().contains("not argon2id"));
        assert!(hash_password("short").is_err());
        assert!(u.remove("boss").unwrap());
        assert!(!u.has_superadmin().unwrap());
    }

    #[test]
    fn accounts_tokens_links_and_lists() {
        for mut u in databases() {
            an_account_from_a_password_hash(&mut u);
            u.put(&acct("Ann@example.test", Role::User, &[], &[]), "correct horse").unwrap();
            u.put(&acct("admin@isp.test", Role::DomainAdmin, &["Example.test"], &[]), "battery staple").unwrap();
            assert!(u.put(&acct("x@example.test", Role::User, &[], &[]), "short").is_err());
            assert!(u.put(&acct("y@example.test", Role::User, &[], &[]), "").is_err(), "a new account needs a password");
            assert!(u.put(&acct("sub@isp.test", Role::Subadmin, &["example.test"], &["bob@other.test"]), "long enough").is_err());
            let ann = u.verify("ANN@example.test", "correct horse").unwrap().unwrap();
            assert_eq!((ann.role, ann.email.as_str()), (Role::User, "ann@example.test"));
            assert_eq!(u.verify("ann@example.test", "wrong horse").unwrap(), None);
            assert_eq!(u.verify("nobody@example.test", "correct horse").unwrap(), None);
            // A change without a password keeps the password.
            u.put(&acct("admin@isp.test", Role::DomainAdmin, &["example.test", "second.test"], &[]), "").unwrap();
            let admin = u.verify("admin@isp.test", "battery staple").unwrap().unwrap();
            assert_eq!(admin.domains, ["example.test", "second.test"]);
            assert_eq!(u.all().unwrap().len(), 2);

            let tok = u.token_new("admin@isp.test", "provisioning", 1).unwrap();
            assert_eq!(u.token_account(&tok).unwrap(), Some(admin.clone()));
            let last = if tok.ends_with('0') { "1" } else { "0" };
            let forged = format!("{}{last}", &tok[..tok.len() - 1]);
            assert_eq!(u.token_account(&forged).unwrap(), None);
            assert_eq!(u.token_account("mxg_nothing_here").unwrap(), None);
            let listed = u.tokens(Some("admin@isp.test")).unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!((listed[0].label.as_str(), tok.starts_with(&format!("mxg_{}_", listed[0].id))), ("provisioning", true));
            assert!(u.remove("admin@isp.test").unwrap());
            assert_eq!(u.token_account(&tok).unwrap(), None, "a removed account's tokens stop working");

            assert!(u.spend_link("abc", 100, 10).unwrap());
            assert!(!u.spend_link("abc", 100, 20).unwrap(), "a one-time link works once");
            assert!(u.spend_link("def", 100, 200).unwrap());
            assert!(u.spend_link("abc", 300, 200).unwrap(), "expired entries are forgotten");

            u.list_add("ann@example.test", "News@Shop.example", "allow", 1).unwrap();
            u.list_add("ANN@example.test", "@spam.example", "block", 2).unwrap();
            u.list_add("ann@example.test", "@spam.example", "block", 3).unwrap();
            assert_eq!(u.lists_of("ann@example.test").unwrap().len(), 2);
            let all = u.all_lists().unwrap();
            assert!(all.allow.contains(&("ann@example.test".into(), "news@shop.example".into())));
            u.list_remove("ann@example.test", "@SPAM.example", "block").unwrap();
            assert!(u.all_lists().unwrap().block.is_empty());
            assert_eq!(u.digest_last("ann@example.test").unwrap(), 0);
            assert!(u.digest_claim("Ann@example.test", 0, 5).unwrap());
            assert!(!u.digest_claim("ann@example.test", 0, 5).unwrap(), "another gateway read 0 too: it loses");
            assert!(u.digest_claim("ann@example.test", 5, 9).unwrap());
            assert_eq!(u.digest_last("ann@example.test").unwrap(), 9);
            u.digest_done("ann@example.test", 5).unwrap();
            assert!(u.digest_claim("ann@example.test", 5, 9).unwrap(), "a claim given back can be made again");
        }
    }

    #[test]
    fn roles_see_only_their_own() {
        let ann = acct("ann@example.test", Role::User, &[], &[]);
        assert!(ann.may_see("Ann@Example.test") && !ann.may_see("bob@example.test"));
        let admin = acct("admin@isp.test", Role::DomainAdmin, &["example.test"], &[]);
        assert!(admin.may_see("bob@example.test") && !admin.may_see("bob@other.test"));
        assert!(acct("root", Role::Superadmin, &[], &[]).may_see("any@where.test"));
        let sub = acct("sub@isp.test", Role::Subadmin, &["example.test"], &["ann@example.test", "eve@other.test"]);
        assert!(sub.may_see("ann@example.test") && !sub.may_see("bob@example.test"));
        assert!(!sub.may_see("eve@other.test"), "a member outside the subadmin's domains is not theirs");
        assert_eq!(sub.scope(), Scope::Rcpts(vec!["ann@example.test".into()]));
        let tech = acct("tech@isp.test", Role::Technician, &["example.test"], &[]);
        assert!(!tech.may_see("ann@example.test") && tech.may_track("ann@example.test") && !tech.may_track("x@other.test"));
        assert_eq!(tech.scope(), Scope::Rcpts(vec![]));
        // Managing accounts.
        assert!(admin.may_manage(&ann) && admin.may_manage(&sub.clone()) == false, "sub has a member outside example.test");
        assert!(admin.may_manage(&acct("s2@isp.test", Role::Subadmin, &["example.test"], &["ann@example.test"])));
        assert!(!admin.may_manage(&acct("bob@other.test", Role::User, &[], &[])));
        assert!(!admin.may_manage(&acct("a2@isp.test", Role::DomainAdmin, &["example.test", "other.test"], &[])));
        assert!(!admin.may_manage(&acct("r@isp.test", Role::Superadmin, &[], &[])));
        assert!(!admin.may_manage(&acct("t@isp.test", Role::Technician, &[], &[])), "a domain-less technician would see nothing of theirs");
        assert!(!sub.may_manage(&ann) && !ann.may_manage(&ann) && !tech.may_manage(&ann));
        assert!(admin.may_admin_domain("EXAMPLE.test") && !admin.may_admin_domain("other.test") && !sub.may_admin_domain("example.test"));
    }
}
