//! The quarantine tables in SQLite: one row per held message (its bytes stored once) and one
//! row per recipient it is held for, each with its own state (`held`, `released`, `deleted`), so
//! one user releasing their copy never touches another's.
//!
//! ```text
//! messages   qid (primary key) · arrival_ms · mail_from · client · helo · subject · size ·
//!            score · symbols · reason · message (the bytes as spooled, Received: header first)
//! recipients id · qid → messages · rcpt · domain · state · changed_ms   unique (qid, rcpt)
//! ```
//!
//! Costs and guarantees: the database is in WAL mode with `synchronous = FULL`, so a committed
//! insert survives a crash or power loss; [`Store::insert_batch`] commits many messages in one
//! transaction (one fsync). Inserting a message that is already there (same queue id) adds only
//! the recipients that are missing: the queue manager may hand the same message over twice after
//! a crash, and the quarantine must hold it once. Every call is blocking: never call it on a
//! core's executor (the [`crate::writer`] thread and the control plane do).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

/// One message to hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub qid: String,
    pub arrival_ms: u64,
    /// Reverse path; empty for the null sender.
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub client: String,
    pub helo: String,
    pub subject: String,
    pub score: f64,
    /// The symbol breakdown, as in the `X-mxguard-Symbols` header.
    pub symbols: String,
    /// Why it was held, for the user: the verdict's main reason.
    pub reason: String,
    pub message: Vec<u8>,
}

/// One recipient's held copy, as listed (without the message bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub id: i64,
    pub qid: String,
    pub rcpt: String,
    pub state: String,
    pub arrival_ms: u64,
    pub mail_from: String,
    pub client: String,
    pub subject: String,
    pub size: u64,
    pub score: f64,
    pub symbols: String,
    pub reason: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    qid        TEXT PRIMARY KEY,
    arrival_ms INTEGER NOT NULL,
    mail_from  TEXT NOT NULL,
    client     TEXT NOT NULL,
    helo       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    size       INTEGER NOT NULL,
    score      REAL NOT NULL,
    symbols    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    message    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS recipients (
    id         INTEGER PRIMARY KEY,
    qid        TEXT NOT NULL REFERENCES messages(qid) ON DELETE CASCADE,
    rcpt       TEXT NOT NULL,
    domain     TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'held',
    changed_ms INTEGER,
    UNIQUE (qid, rcpt)
);
CREATE INDEX IF NOT EXISTS recipients_rcpt ON recipients(rcpt);
CREATE INDEX IF NOT EXISTS recipients_domain ON recipients(domain);
CREATE INDEX IF NOT EXISTS messages_arrival ON messages(arrival_ms);
PRAGMA user_version = 1;
";

/// The unfolded `Subject:` of a message's header block (`message` may start with the header
/// or be the whole message), at most 998 bytes, lossily UTF-8; empty if there is none.
pub fn subject_of(message: &[u8]) -> String {
    let end = memchr::memmem::find(message, b"\r\n\r\n").map(|p| p + 2).unwrap_or(message.len());
    let head = &message[..end];
    let mut out: Vec<u8> = Vec::new();
    let mut in_subject = false;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if in_subject {
                out.push(b' ');
                out.extend_from_slice(line.trim_ascii_start());
            }
            continue;
        }
        if in_subject {
            break;
        }
        if line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"subject:") {
            in_subject = true;
            out.extend_from_slice(line[8..].trim_ascii_start());
        }
    }
    out.truncate(998);
    String::from_utf8_lossy(out.trim_ascii_end()).into_owned()
}

/// The domain of an address, lower-cased (empty without `@`).
fn domain(rcpt: &str) -> String {
    rcpt.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default()
}

/// The columns of a [`Held`], in [`held_row`]'s order.
const HELD_SELECT: &str = "SELECT r.id, r.qid, r.rcpt, r.state, m.arrival_ms, m.mail_from, m.client, m.subject, m.size, m.score, m.symbols, m.reason
     FROM recipients r JOIN messages m ON m.qid = r.qid";

fn held_row(r: &rusqlite::Row) -> rusqlite::Result<Held> {
    Ok(Held {
        id: r.get(0)?,
        qid: r.get(1)?,
        rcpt: r.get(2)?,
        state: r.get(3)?,
        arrival_ms: r.get::<_, i64>(4)? as u64,
        mail_from: r.get(5)?,
        client: r.get(6)?,
        subject: r.get(7)?,
        size: r.get::<_, i64>(8)? as u64,
        score: r.get(9)?,
        symbols: r.get(10)?,
        reason: r.get(11)?,
    })
}

/// An open quarantine database.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    /// Holds every entry of `batch` in one transaction; for each, the number of recipients
    /// newly held (0: it was all there already).
    pub fn insert_batch(&mut self, batch: &[&Entry]) -> rusqlite::Result<Vec<usize>> {
        let tx = self.conn.transaction()?;
        let mut added = Vec::with_capacity(batch.len());
        {
            let mut msg = tx.prepare_cached(
                "INSERT OR IGNORE INTO messages (qid, arrival_ms, mail_from, client, helo, subject, size, score, symbols, reason, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut rcpt = tx.prepare_cached("INSERT OR IGNORE INTO recipients (qid, rcpt, domain, state) VALUES (?1, ?2, ?3, 'held')")?;
            for e in batch {
                msg.execute(params![
                    e.qid,
                    e.arrival_ms as i64,
                    e.mail_from,
                    e.client,
                    e.helo,
                    e.subject,
                    e.message.len() as i64,
                    e.score,
                    e.symbols,
                    e.reason,
                    e.message
                ])?;
                let mut n = 0;
                for r in &e.rcpts {
                    n += rcpt.execute(params![e.qid, r, domain(r)])?;
                }
                added.push(n);
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Held copies, newest first: all of them, or one recipient's (`rcpt`), or one domain's
    /// (`domain`), at most `limit`.
    pub fn list(&self, rcpt: Option<&str>, domain: Option<&str>, limit: usize) -> rusqlite::Result<Vec<Held>> {
        let mut st = self.conn.prepare_cached(&format!(
            "{HELD_SELECT}
             WHERE (?1 IS NULL OR r.rcpt = ?1 COLLATE NOCASE) AND (?2 IS NULL OR r.domain = lower(?2))
             ORDER BY m.arrival_ms DESC, r.id DESC LIMIT ?3"
        ))?;
        let rows = st.query_map(params![rcpt, domain, limit as i64], held_row)?;
        rows.collect()
    }

    /// One recipient's copy by its id.
    pub fn held(&self, id: i64) -> rusqlite::Result<Option<Held>> {
        let mut st = self.conn.prepare_cached(&format!("{HELD_SELECT} WHERE r.id = ?1"))?;
        st.query_row(params![id], held_row).optional()
    }

    /// Moves one recipient's copy from `held` to `state` (`released`, `deleted`); false when it
    /// was not held (already released or deleted: a second click changes nothing).
    pub fn set_state(&mut self, id: i64, state: &str, now_ms: u64) -> rusqlite::Result<bool> {
        let n = self.conn.execute(
            "UPDATE recipients SET state = ?2, changed_ms = ?3 WHERE id = ?1 AND state = 'held'",
            params![id, state, now_ms as i64],
        )?;
        Ok(n == 1)
    }

    /// The bytes of a held message.
    pub fn message(&self, qid: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        self.conn.query_row("SELECT message FROM messages WHERE qid = ?1", params![qid], |r| r.get(0)).optional()
    }

    /// Deletes messages that arrived before `before_ms`, with their recipients; how many.
    pub fn purge(&mut self, before_ms: u64) -> rusqlite::Result<usize> {
        self.conn.execute("DELETE FROM messages WHERE arrival_ms < ?1", params![before_ms as i64])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(qid: &str, rcpts: &[&str], arrival_ms: u64) -> Entry {
        Entry {
            qid: qid.into(),
            arrival_ms,
            mail_from: "spammer@bad.example".into(),
            rcpts: rcpts.iter().map(|s| s.to_string()).collect(),
            client: "192.0.2.1".into(),
            helo: "bad.example".into(),
            subject: "buy now".into(),
            score: 11.5,
            symbols: "DNSBL_TEST(11.5)".into(),
            reason: "listed".into(),
            message: b"Subject: buy now\r\n\r\nbody\r\n".to_vec(),
        }
    }

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mxguard-quarantine-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("q.db")
    }

    #[test]
    fn held_once_per_recipient_even_when_handed_over_twice() {
        let path = temp_db("twice");
        let mut s = Store::open(&path).unwrap();
        let a = entry("Q1", &["u@example.test", "v@other.test"], 1000);
        assert_eq!(s.insert_batch(&[&a]).unwrap(), vec![2]);
        assert_eq!(s.insert_batch(&[&a]).unwrap(), vec![0], "the same message again adds nothing");
        let mut b = a.clone();
        b.rcpts.push("w@example.test".into());
        assert_eq!(s.insert_batch(&[&b]).unwrap(), vec![1], "only the missing recipient");
        assert_eq!(s.list(None, None, 100).unwrap().len(), 3);
        assert_eq!(s.list(Some("U@example.test"), None, 100).unwrap().len(), 1, "addresses compare case-insensitively");
        assert_eq!(s.list(None, Some("EXAMPLE.test"), 100).unwrap().len(), 2);
        assert_eq!(s.message("Q1").unwrap().unwrap(), a.message);
        assert_eq!(s.message("nope").unwrap(), None);
    }

    #[test]
    fn subject_is_unfolded_from_the_header_only() {
        assert_eq!(subject_of(b"From: a\r\nSubject: one\r\n two\r\nTo: b\r\n\r\nSubject: body\r\n"), "one two");
        assert_eq!(subject_of(b"From: a\r\n\r\nSubject: in the body\r\n"), "");
        assert_eq!(subject_of(b"SUBJECT:x"), "x");
    }

    #[test]
    fn survives_reopening_and_purges_by_age() {
        let path = temp_db("reopen");
        {
            let mut s = Store::open(&path).unwrap();
            s.insert_batch(&[&entry("OLD", &["u@example.test"], 1000), &entry("NEW", &["u@example.test"], 5000)]).unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        let l = s.list(Some("u@example.test"), None, 10).unwrap();
        assert_eq!(l.iter().map(|h| h.qid.as_str()).collect::<Vec<_>>(), ["NEW", "OLD"], "newest first");
        assert_eq!(l[0].state, "held");
        assert_eq!(l[0].score, 11.5);
        assert_eq!(s.purge(2000).unwrap(), 1);
        assert_eq!(s.list(None, None, 10).unwrap().len(), 1, "recipients go with their message");
    }
}
