//! The quarantine tables, in SQLite or PostgreSQL through [`crate::db`]: one row per held
//! message (its bytes stored once, compressed) and one row per recipient it is held for, each
//! with its own state (`held`, `released`, `deleted`), so one user releasing their copy never
//! touches another's.
//!
//! ```text
//! messages   qid (primary key) · arrival_ms · mail_from · from_domain · client · helo ·
//!            subject · size · score · symbols · reason · verdict · compressed · message
//! recipients id · qid → messages · rcpt · domain · state · changed_ms · changed_by
//!            unique (qid, rcpt)
//! ```
//!
//! Search indexes: recipient and its domain, sender and its domain (lower-cased expressions),
//! arrival time, score and verdict are B-trees; the subject has a trigram index (SQLite's FTS5
//! `trigram` tokenizer, PostgreSQL's `pg_trgm` where the extension may be created), so a search
//! for a word in the subject does not read every row.
//!
//! Costs and guarantees: a committed insert survives a crash or power loss (SQLite: WAL with
//! `synchronous = FULL`; PostgreSQL: its commit); [`Store::insert_batch`] commits many messages
//! in one transaction (one fsync). Bodies are zlib-compressed (level 6) on the writer thread.
//! Inserting a message that is already there (same queue id) adds only the recipients that are
//! missing: the queue manager may hand the same message over twice after a crash, and the
//! quarantine must hold it once. Every call is blocking: never call it on a core's executor
//! (the [`crate::writer`] thread and the console's data thread do).

use std::io::{Read, Write};

use crate::db::{Db, DbError, DbResult, Kind, Location, Row, Val};

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
    /// What kind of mail: `virus`, `attachment`, `phishing` or `spam` ([`verdict_of`]).
    pub verdict: String,
}

/// The kind of a held message from its symbols, the gravest first: a virus, a forbidden
/// attachment, phishing, else spam.
pub fn verdict_of(symbols: &str) -> &'static str {
    let names = symbols.split([' ', ',', '\t', '\r', '\n']).map(|s| s.split('(').next().unwrap_or(""));
    let mut kind = "spam";
    for n in names {
        if n == "CLAMAV_VIRUS" {
            return "virus";
        }
        if n.starts_with("ATTACH_") || n.starts_with("ARCHIVE_") {
            kind = "attachment";
        } else if n.starts_with("PHISH_") && kind == "spam" {
            kind = "phishing";
        }
    }
    kind
}

/// The verdicts a search may ask for.
pub const VERDICTS: [&str; 4] = ["spam", "phishing", "attachment", "virus"];

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS messages (
    qid         TEXT PRIMARY KEY,
    arrival_ms  INTEGER NOT NULL,
    mail_from   TEXT NOT NULL,
    from_domain TEXT NOT NULL DEFAULT '',
    client      TEXT NOT NULL,
    helo        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    size        INTEGER NOT NULL,
    score       REAL NOT NULL,
    symbols     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    verdict     TEXT NOT NULL DEFAULT 'spam',
    compressed  INTEGER NOT NULL DEFAULT 0,
    message     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS recipients (
    id         INTEGER PRIMARY KEY,
    qid        TEXT NOT NULL REFERENCES messages(qid) ON DELETE CASCADE,
    rcpt       TEXT NOT NULL,
    domain     TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'held',
    changed_ms INTEGER,
    changed_by TEXT,
    UNIQUE (qid, rcpt)
);
";

/// Version 1 (session 7) had no verdict, sender domain, compression or change author.
const SQLITE_FROM_V1: &str = "
ALTER TABLE messages ADD COLUMN from_domain TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN verdict TEXT NOT NULL DEFAULT 'spam';
ALTER TABLE messages ADD COLUMN compressed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN changed_by TEXT;
";

/// SQLite's subject index (FTS5 trigrams, kept by triggers); version 1's two indexes go.
const SQLITE_SUBJECTS: &str = "
DROP INDEX IF EXISTS recipients_rcpt;
DROP INDEX IF EXISTS recipients_domain;
CREATE VIRTUAL TABLE IF NOT EXISTS subjects USING fts5(subject, content='messages', content_rowid='rowid', tokenize='trigram');
CREATE TRIGGER IF NOT EXISTS subjects_ai AFTER INSERT ON messages BEGIN
    INSERT INTO subjects(rowid, subject) VALUES (new.rowid, new.subject);
END;
CREATE TRIGGER IF NOT EXISTS subjects_ad AFTER DELETE ON messages BEGIN
    INSERT INTO subjects(subjects, rowid, subject) VALUES ('delete', old.rowid, old.subject);
END;
PRAGMA user_version = 2;
";

/// The B-tree indexes, in both databases.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS recipients_qid ON recipients(qid);
CREATE INDEX IF NOT EXISTS recipients_rcpt_lc ON recipients(lower(rcpt));
CREATE INDEX IF NOT EXISTS recipients_domain_state ON recipients(domain, state);
CREATE INDEX IF NOT EXISTS messages_arrival ON messages(arrival_ms);
CREATE INDEX IF NOT EXISTS messages_from_lc ON messages(lower(mail_from));
CREATE INDEX IF NOT EXISTS messages_from_domain ON messages(from_domain);
CREATE INDEX IF NOT EXISTS messages_score ON messages(score);
CREATE INDEX IF NOT EXISTS messages_verdict ON messages(verdict, arrival_ms);
";

/// The subject's trigram index in PostgreSQL: only where `pg_trgm` may be created (a trusted
/// extension since PostgreSQL 13); without it a subject search reads the rows the other
/// conditions leave.
const POSTGRES_TRIGRAMS: &str = "
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS messages_subject_trgm ON messages USING gin (lower(subject) gin_trgm_ops);
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
pub fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default()
}

/// The query of held copies, its columns in [`held_row`]'s order (a macro, so that `concat!`
/// can add conditions and the result stays a `&'static str` the database may keep prepared).
macro_rules! held_select {
    () => {
        "SELECT r.id, r.qid, r.rcpt, r.state, m.arrival_ms, m.mail_from, m.client, m.subject, m.size, m.score, m.symbols, m.reason, m.verdict, r.changed_ms
         FROM recipients r JOIN messages m ON m.qid = r.qid"
    };
}

/// How long a release may take between its claim and its end ([`Store::claim_release`]); a
/// claim older than this was left by a crash, and the copy counts as held again.
pub const RELEASE_CLAIM_MS: u64 = 10 * 60 * 1000;

/// Milliseconds since the epoch (the crate's one clock reading).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn held_row(r: &Row) -> Held {
    let state = r.text(3);
    // A claim left by a crash mid-release: held again (what it was before the claim).
    let stale = state == "releasing" && r.u64(13).saturating_add(RELEASE_CLAIM_MS) < now_ms();
    Held {
        id: r.int(0),
        qid: r.text(1),
        rcpt: r.text(2),
        state: if stale { "held".to_string() } else { state },
        arrival_ms: r.u64(4),
        mail_from: r.text(5),
        client: r.text(6),
        subject: r.text(7),
        size: r.u64(8),
        score: r.real(9),
        symbols: r.text(10),
        reason: r.text(11),
        verdict: r.text(12),
    }
}

/// Whose copies a search may return: everything (the superadmin), some domains (a domain admin),
/// some recipients (an end user: one; a subadmin: the users given to them).
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    All,
    Domains(Vec<String>),
    Rcpts(Vec<String>),
}

/// What to look for; every condition given must hold. Text is matched case-insensitively.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub scope: Scope,
    /// One recipient address, or `@domain` for all of a domain's.
    pub rcpt: Option<String>,
    /// A sender address, or `@domain` for any sender of that domain.
    pub sender: Option<String>,
    /// Words that must be in the subject (as one substring).
    pub subject: Option<String>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    pub min_score: Option<f64>,
    pub max_score: Option<f64>,
    /// One of [`VERDICTS`].
    pub verdict: Option<String>,
    /// `held`, `released`, `deleted`; `None`: all but deleted.
    pub state: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

impl Search {
    /// Everything within `scope`, newest first, at most `limit`.
    pub fn within(scope: Scope, limit: usize) -> Search {
        Search {
            scope,
            rcpt: None,
            sender: None,
            subject: None,
            since_ms: None,
            until_ms: None,
            min_score: None,
            max_score: None,
            verdict: None,
            state: None,
            limit,
            offset: 0,
        }
    }
}

/// The quarantine's tables, open.
pub struct Store {
    db: Db,
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::with_capacity(bytes.len() / 3 + 64), flate2::Compression::new(6));
    // Writing to a Vec cannot fail.
    let _ = z.write_all(bytes);
    z.finish().unwrap_or_default()
}

fn inflate(bytes: &[u8]) -> DbResult<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 3);
    flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut out).map_err(|e| DbError(format!("a held message does not decompress: {e}")))?;
    Ok(out)
}

impl Store {
    /// Opens (creating if needed) the quarantine at `loc` and brings its schema up to date.
    pub fn open(loc: &Location) -> DbResult<Store> {
        let mut db = Db::open(loc, TABLES)?;
        match db.kind() {
            Kind::Sqlite => {
                let version = db.query_one("PRAGMA user_version", &[])?.map_or(0, |r| r.int(0));
                let has_verdict = db.query("SELECT name FROM pragma_table_info('messages') WHERE name = 'verdict'", &[])?.len() == 1;
                if version == 1 && !has_verdict {
                    db.transaction(|db| db.batch(SQLITE_FROM_V1))?;
                }
                db.batch(INDEXES)?;
                db.batch(SQLITE_SUBJECTS)?;
                if version < 2 {
                    // Index the subjects already held (a version-1 database, or an empty one).
                    db.batch("INSERT INTO subjects(subjects) VALUES ('rebuild')")?;
                }
            }
            Kind::Postgres => {
                db.locked_batch(INDEXES)?;
                if let Err(e) = db.locked_batch(POSTGRES_TRIGRAMS) {
                    mxguard_telemetry::Event::new("quarantine_warning")
                        .str("warning", &format!("no trigram index on subjects ({e}): subject searches read more rows"))
                        .emit();
                }
            }
        }
        Ok(Store { db })
    }

    #[cfg(test)]
    pub fn kind(&self) -> Kind {
        self.db.kind()
    }

    /// Holds every entry of `batch` in one transaction; for each, the number of recipients
    /// newly held (0: it was all there already).
    pub fn insert_batch(&mut self, batch: &[&Entry]) -> DbResult<Vec<usize>> {
        // Compressed before the transaction: the lock is held for the writes only.
        let bodies: Vec<Vec<u8>> = batch.iter().map(|e| deflate(&e.message)).collect();
        self.db.transaction(|db| {
            let mut added = Vec::with_capacity(batch.len());
            for (e, body) in batch.iter().zip(bodies) {
                db.exec(
                    "INSERT INTO messages (qid, arrival_ms, mail_from, from_domain, client, helo, subject, size, score, symbols, reason, verdict, compressed, message)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13) ON CONFLICT (qid) DO NOTHING",
                    &[
                        (&e.qid).into(),
                        e.arrival_ms.into(),
                        (&e.mail_from).into(),
                        domain_of(&e.mail_from).into(),
                        (&e.client).into(),
                        (&e.helo).into(),
                        (&e.subject).into(),
                        e.message.len().into(),
                        e.score.into(),
                        (&e.symbols).into(),
                        (&e.reason).into(),
                        verdict_of(&e.symbols).into(),
                        body.into(),
                    ],
                )?;
                let mut n = 0;
                for r in &e.rcpts {
                    n += db.exec(
                        "INSERT INTO recipients (qid, rcpt, domain, state) VALUES ($1, $2, $3, 'held') ON CONFLICT (qid, rcpt) DO NOTHING",
                        &[(&e.qid).into(), r.into(), domain_of(r).into()],
                    )? as usize;
                }
                added.push(n);
            }
            Ok(added)
        })
    }

    /// Held copies matching `q`, newest first.
    pub fn search(&mut self, q: &Search) -> DbResult<Vec<Held>> {
        let mut sql = concat!(held_select!(), " WHERE 1 = 1").to_string();
        let mut params: Vec<Val> = Vec::new();
        let arg = |params: &mut Vec<Val>, v: Val| {
            params.push(v);
            format!("${}", params.len())
        };
        match &q.scope {
            Scope::All => {}
            Scope::Domains(ds) | Scope::Rcpts(ds) if ds.is_empty() => return Ok(Vec::new()),
            Scope::Domains(ds) => {
                let list: Vec<String> = ds.iter().map(|d| arg(&mut params, d.to_ascii_lowercase().into())).collect();
                sql += &format!(" AND r.domain IN ({})", list.join(", "));
            }
            Scope::Rcpts(rs) => {
                let list: Vec<String> = rs.iter().map(|r| arg(&mut params, r.to_ascii_lowercase().into())).collect();
                sql += &format!(" AND lower(r.rcpt) IN ({})", list.join(", "));
            }
        }
        if let Some(r) = q.rcpt.as_deref().filter(|s| !s.is_empty()) {
            let r = r.trim().to_ascii_lowercase();
            match r.strip_prefix('@') {
                Some(d) => sql += &format!(" AND r.domain = {}", arg(&mut params, d.into())),
                None => sql += &format!(" AND lower(r.rcpt) = {}", arg(&mut params, r.into())),
            }
        }
        if let Some(s) = q.sender.as_deref().filter(|s| !s.is_empty()) {
            let s = s.trim().to_ascii_lowercase();
            match s.strip_prefix('@') {
                Some(d) => sql += &format!(" AND m.from_domain = {}", arg(&mut params, d.into())),
                None => sql += &format!(" AND lower(m.mail_from) = {}", arg(&mut params, s.into())),
            }
        }
        if let Some(words) = q.subject.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let pattern = format!("%{}%", words.to_lowercase().replace(['%', '_'], ""));
            match self.db.kind() {
                // The trigram index answers LIKE for patterns of 3 characters or more.
                Kind::Sqlite => sql += &format!(" AND m.rowid IN (SELECT rowid FROM subjects WHERE subject LIKE {})", arg(&mut params, pattern.into())),
                Kind::Postgres => sql += &format!(" AND lower(m.subject) LIKE {}", arg(&mut params, pattern.into())),
            }
        }
        if let Some(t) = q.since_ms {
            sql += &format!(" AND m.arrival_ms >= {}", arg(&mut params, t.into()));
        }
        if let Some(t) = q.until_ms {
            sql += &format!(" AND m.arrival_ms < {}", arg(&mut params, t.into()));
        }
        if let Some(x) = q.min_score {
            sql += &format!(" AND m.score >= {}", arg(&mut params, x.into()));
        }
        if let Some(x) = q.max_score {
            sql += &format!(" AND m.score <= {}", arg(&mut params, x.into()));
        }
        if let Some(v) = q.verdict.as_deref().filter(|s| !s.is_empty()) {
            sql += &format!(" AND m.verdict = {}", arg(&mut params, v.into()));
        }
        match q.state.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => sql += &format!(" AND r.state = {}", arg(&mut params, s.into())),
            None => sql += " AND r.state <> 'deleted'",
        }
        sql += &format!(
            " ORDER BY m.arrival_ms DESC, r.id DESC LIMIT {} OFFSET {}",
            arg(&mut params, q.limit.into()),
            arg(&mut params, q.offset.into())
        );
        Ok(self.db.query_text(&sql, &params)?.iter().map(held_row).collect())
    }

    /// One recipient's copy by its id.
    pub fn held(&mut self, id: i64) -> DbResult<Option<Held>> {
        let row = self.db.query_one(concat!(held_select!(), " WHERE r.id = $1"), &[id.into()])?;
        Ok(row.as_ref().map(held_row))
    }

    /// Moves one recipient's copy from `held` to `state` (`deleted`), noting who did it; false
    /// when it was not held (already released or deleted: a second click, or another gateway's
    /// console, changes nothing). A release goes through [`Store::claim_release`] instead.
    pub fn set_state(&mut self, id: i64, state: &str, by: &str, now_ms: u64) -> DbResult<bool> {
        let n = self.db.exec(
            "UPDATE recipients SET state = $2, changed_ms = $3, changed_by = $4
             WHERE id = $1 AND (state = 'held' OR (state = 'releasing' AND changed_ms < $5))",
            &[id.into(), state.into(), now_ms.into(), by.into(), now_ms.saturating_sub(RELEASE_CLAIM_MS).into()],
        )?;
        Ok(n == 1)
    }

    /// Claims a held copy for releasing it (`held` → `releasing`), before it is spooled again:
    /// of two releases at once (two clicks, two gateways sharing the database) only one gets the
    /// claim, so the message is delivered once. False when the copy is not held. The release
    /// ends with [`Store::end_release`]; a claim older than [`RELEASE_CLAIM_MS`] (the gateway
    /// died between claim and end) is held again.
    pub fn claim_release(&mut self, id: i64, by: &str, now_ms: u64) -> DbResult<bool> {
        self.set_state(id, "releasing", by, now_ms)
    }

    /// Ends a claimed release: `released` when the message was spooled again, else `held`
    /// (nothing was sent; it can be released later). False when the claim was not ours any more.
    pub fn end_release(&mut self, id: i64, sent: bool, by: &str, now_ms: u64) -> DbResult<bool> {
        let n = self.db.exec(
            "UPDATE recipients SET state = $2, changed_ms = $3, changed_by = $4 WHERE id = $1 AND state = 'releasing'",
            &[id.into(), (if sent { "released" } else { "held" }).into(), now_ms.into(), by.into()],
        )?;
        Ok(n == 1)
    }

    /// Marks a copy whose message was sent again as `released`, from `releasing` or from `held`
    /// (its claim went stale while the database was away): the message left, whatever the claim
    /// says now. False when it was released, deleted or claimed anew already.
    pub fn confirm_release(&mut self, id: i64, by: &str, now_ms: u64) -> DbResult<bool> {
        let n = self.db.exec(
            "UPDATE recipients SET state = 'released', changed_ms = $2, changed_by = $3 WHERE id = $1 AND state IN ('releasing', 'held')",
            &[id.into(), now_ms.into(), by.into()],
        )?;
        Ok(n == 1)
    }

    /// The bytes of a held message, as spooled.
    pub fn message(&mut self, qid: &str) -> DbResult<Option<Vec<u8>>> {
        match self.db.query_one("SELECT compressed, message FROM messages WHERE qid = $1", &[qid.into()])? {
            Some(r) if r.int(0) == 1 => inflate(&r.blob(1)).map(Some),
            Some(r) => Ok(Some(r.blob(1))),
            None => Ok(None),
        }
    }

    /// Deletes messages that arrived before `before_ms`, with their recipients; how many.
    pub fn purge(&mut self, before_ms: u64) -> DbResult<usize> {
        Ok(self.db.exec("DELETE FROM messages WHERE arrival_ms < $1", &[before_ms.into()])? as usize)
    }

    /// The database underneath, for tests to look at what is stored.
    #[cfg(test)]
    pub fn db(&mut self) -> &mut Db {
        &mut self.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(qid: &str, rcpts: &[&str], arrival_ms: u64) -> Entry {
        Entry {
            qid: qid.into(),
            arrival_ms,
            mail_from: "Spammer@Bad.example".into(),
            rcpts: rcpts.iter().map(|s| s.to_string()).collect(),
            client: "192.0.2.1".into(),
            helo: "bad.example".into(),
            subject: "Buy cheap watches now".into(),
            score: 11.5,
            symbols: "DNSBL_TEST(11.5)".into(),
            reason: "listed".into(),
            message: b"Subject: Buy cheap watches now\r\n\r\nbody body body body body body body\r\n".to_vec(),
        }
    }

    fn temp_db(name: &str) -> Location {
        let dir = std::env::temp_dir().join(format!("mxguard-quarantine-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Location::Sqlite(dir.join("q.db"))
    }

    /// The same checks on each database: SQLite always, PostgreSQL when the test script started
    /// one (`MXGUARD_TEST_POSTGRES` is its URL; tests/run sets it, so CI runs both).
    fn databases(name: &str) -> Vec<Store> {
        let mut v = vec![Store::open(&temp_db(name)).unwrap()];
        if let Ok(url) = std::env::var("MXGUARD_TEST_POSTGRES") {
            let mut pg = Store::open(&Location::Postgres(url)).unwrap();
            pg.db().batch("TRUNCATE messages CASCADE").unwrap();
            v.push(pg);
        }
        v
    }

    /// PostgreSQL tests share one database: they take turns.
    fn pg_turn() -> std::sync::MutexGuard<'static, ()> {
        static M: std::sync::Mutex<()> = std::sync::Mutex::new(());
        M.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn scope(d: &str) -> Search {
        let mut q = Search::within(Scope::All, 100);
        q.rcpt = Some(d.into());
        q
    }

    #[test]
    fn a_release_is_claimed_once_and_a_crashed_claim_expires() {
        let _turn = pg_turn();
        for mut s in databases("claim") {
            s.insert_batch(&[&entry("C1", &["u@example.test", "v@example.test"], 1_000)]).unwrap();
            let copies = s.search(&Search::within(Scope::All, 10)).unwrap();
            let (u, v) = (copies.iter().find(|h| h.rcpt.starts_with('u')).unwrap().id, copies.iter().find(|h| h.rcpt.starts_with('v')).unwrap().id);
            let now = super::now_ms();
            assert!(s.claim_release(u, "ann", now).unwrap());
            assert!(!s.claim_release(u, "bob", now + 1).unwrap(), "the second release at once gets nothing");
            assert!(!s.set_state(u, "deleted", "bob", now + 1).unwrap(), "nor can it be deleted mid-release");
            assert_eq!(s.held(u).unwrap().unwrap().state, "releasing");
            assert!(s.end_release(u, true, "ann", now + 2).unwrap());
            assert_eq!(s.held(u).unwrap().unwrap().state, "released");
            assert!(!s.claim_release(u, "bob", now + 3).unwrap());
            // A release whose spooling failed gives the copy back.
            assert!(s.claim_release(v, "ann", now).unwrap());
            assert!(s.end_release(v, false, "ann", now + 1).unwrap());
            assert_eq!(s.held(v).unwrap().unwrap().state, "held");
            // A claim left by a crash long ago: held again, and claimable.
            let long_ago = now - RELEASE_CLAIM_MS - 1_000;
            assert!(s.claim_release(v, "ann", long_ago).unwrap());
            assert_eq!(s.held(v).unwrap().unwrap().state, "held");
            assert!(s.claim_release(v, "bob", now).unwrap());
            assert_eq!(s.held(v).unwrap().unwrap().state, "releasing");
            // A release sent but marked late (the database was away): released from releasing or
            // from held, and then never claimable again.
            assert!(s.confirm_release(v, "bob", now + 1).unwrap());
            assert_eq!(s.held(v).unwrap().unwrap().state, "released");
            assert!(!s.confirm_release(v, "bob", now + 2).unwrap());
            assert!(!s.claim_release(v, "eve", now + RELEASE_CLAIM_MS * 2).unwrap());
        }
    }

    #[test]
    fn held_once_per_recipient_even_when_handed_over_twice() {
        let _turn = pg_turn();
        for mut s in databases("twice") {
            let a = entry("Q1", &["u@example.test", "v@other.test"], 1000);
            assert_eq!(s.insert_batch(&[&a]).unwrap(), vec![2]);
            assert_eq!(s.insert_batch(&[&a]).unwrap(), vec![0], "the same message again adds nothing");
            let mut b = a.clone();
            b.rcpts.push("w@example.test".into());
            assert_eq!(s.insert_batch(&[&b]).unwrap(), vec![1], "only the missing recipient");
            assert_eq!(s.search(&Search::within(Scope::All, 100)).unwrap().len(), 3);
            assert_eq!(s.search(&scope("U@example.test")).unwrap().len(), 1, "addresses compare case-insensitively");
            assert_eq!(s.search(&Search::within(Scope::Domains(vec!["EXAMPLE.test".into()]), 100)).unwrap().len(), 2);
            assert_eq!(s.search(&Search::within(Scope::Rcpts(vec!["w@example.test".into()]), 100)).unwrap().len(), 1);
            assert_eq!(s.search(&Search::within(Scope::Rcpts(vec![]), 100)).unwrap().len(), 0, "an empty scope is nothing, not everything");
            assert_eq!(s.message("Q1").unwrap().unwrap(), a.message, "{:?}: bodies come back as they went in", s.kind());
            assert_eq!(s.message("nope").unwrap(), None);
        }
    }

    #[test]
    fn bodies_are_stored_compressed() {
        let _turn = pg_turn();
        for mut s in databases("compressed") {
            let mut e = entry("BIG", &["u@example.test"], 1);
            e.message = b"Subject: x\r\n\r\n".iter().chain(b"the same line again and again\r\n".repeat(2000).iter()).copied().collect();
            s.insert_batch(&[&e]).unwrap();
            let stored = s.db().query_one("SELECT compressed, message FROM messages WHERE qid = 'BIG'", &[]).unwrap().unwrap();
            assert_eq!(stored.int(0), 1);
            assert!(stored.blob(1).len() * 20 < e.message.len(), "{} of {}", stored.blob(1).len(), e.message.len());
            assert_eq!(s.message("BIG").unwrap().unwrap(), e.message);
        }
    }

    #[test]
    fn search_by_every_field() {
        let _turn = pg_turn();
        for mut s in databases("search") {
            let mut a = entry("A", &["ann@example.test"], 1_000);
            a.subject = "Cheap Watches today".into();
            let mut b = entry("B", &["ann@example.test", "bob@example.test"], 2_000);
            b.mail_from = "billing@bank.example".into();
            b.subject = "Your account is locked".into();
            b.score = 25.0;
            b.symbols = "PHISH_BRAND_NAME(6) PHISH_FORM(4)".into();
            let mut c = entry("C", &["bob@example.test"], 3_000);
            c.symbols = "ATTACH_EXECUTABLE(10) CLAMAV_VIRUS(100)".into();
            c.subject = "invoice".into();
            s.insert_batch(&[&a, &b, &c]).unwrap();
            let ids = |s: &mut Store, q: &Search| s.search(q).unwrap().iter().map(|h| format!("{}:{}", h.qid, h.rcpt.split('@').next().unwrap())).collect::<Vec<_>>();
            let all = Search::within(Scope::All, 100);
            assert_eq!(ids(&mut s, &all), ["C:bob", "B:bob", "B:ann", "A:ann"], "newest first");
            assert_eq!(ids(&mut s, &Search { subject: Some("WATCH".into()), ..all.clone() }), ["A:ann"], "subject words, any case");
            assert_eq!(ids(&mut s, &Search { subject: Some("is lock".into()), ..all.clone() }), ["B:bob", "B:ann"]);
            assert_eq!(ids(&mut s, &Search { sender: Some("@BANK.example".into()), ..all.clone() }), ["B:bob", "B:ann"]);
            assert_eq!(ids(&mut s, &Search { sender: Some("spammer@bad.example".into()), ..all.clone() }), ["C:bob", "A:ann"]);
            assert_eq!(ids(&mut s, &Search { min_score: Some(20.0), ..all.clone() }), ["B:bob", "B:ann"]);
            assert_eq!(ids(&mut s, &Search { max_score: Some(12.0), since_ms: Some(1_500), ..all.clone() }), ["C:bob"]);
            assert_eq!(ids(&mut s, &Search { until_ms: Some(1_500), ..all.clone() }), ["A:ann"]);
            assert_eq!(ids(&mut s, &Search { verdict: Some("virus".into()), ..all.clone() }), ["C:bob"]);
            assert_eq!(ids(&mut s, &Search { verdict: Some("phishing".into()), rcpt: Some("ann@example.test".into()), ..all.clone() }), ["B:ann"]);
            assert_eq!(ids(&mut s, &Search { limit: 2, offset: 1, ..all.clone() }), ["B:bob", "B:ann"], "pages");
            assert_eq!(ids(&mut s, &Search { rcpt: Some("@Example.TEST".into()), ..all.clone() }).len(), 4, "a recipient domain");
            assert!(ids(&mut s, &Search { rcpt: Some("@other.test".into()), ..all.clone() }).is_empty());
            let b_ann = s.search(&Search { rcpt: Some("ann@example.test".into()), sender: Some("@bank.example".into()), ..all.clone() }).unwrap()[0].id;
            assert!(s.set_state(b_ann, "deleted", "ann@example.test", 5).unwrap());
            assert!(!s.set_state(b_ann, "released", "ann@example.test", 6).unwrap(), "only a held copy changes");
            assert_eq!(ids(&mut s, &Search { rcpt: Some("ann@example.test".into()), ..all.clone() }), ["A:ann"], "deleted copies are not listed");
            assert_eq!(ids(&mut s, &Search { state: Some("deleted".into()), ..all.clone() }), ["B:ann"], "unless asked for");
        }
    }

    #[test]
    fn verdicts_from_symbols() {
        assert_eq!(verdict_of("BAYES_SPAM(5) DNSBL(3)"), "spam");
        assert_eq!(verdict_of("PHISH_FORM(4) ATTACH_DOUBLE_EXT(3)"), "attachment");
        assert_eq!(verdict_of("PHISH_FORM(4)"), "phishing");
        assert_eq!(verdict_of("ATTACH_EXECUTABLE(10) CLAMAV_VIRUS(100)"), "virus");
        assert_eq!(verdict_of(""), "spam");
    }

    #[test]
    fn subject_is_unfolded_from_the_header_only() {
        assert_eq!(subject_of(b"From: a\r\nSubject: one\r\n two\r\nTo: b\r\n\r\nSubject: body\r\n"), "one two");
        assert_eq!(subject_of(b"From: a\r\n\r\nSubject: in the body\r\n"), "");
        assert_eq!(subject_of(b"SUBJECT:x"), "x");
    }

    #[test]
    fn survives_reopening_and_purges_by_age() {
        let loc = temp_db("reopen");
        {
            let mut s = Store::open(&loc).unwrap();
            s.insert_batch(&[&entry("OLD", &["u@example.test"], 1000), &entry("NEW", &["u@example.test"], 5000)]).unwrap();
        }
        let mut s = Store::open(&loc).unwrap();
        let l = s.search(&scope("u@example.test")).unwrap();
        assert_eq!(l.iter().map(|h| h.qid.as_str()).collect::<Vec<_>>(), ["NEW", "OLD"], "newest first");
        assert_eq!(l[0].state, "held");
        assert_eq!(l[0].score, 11.5);
        assert_eq!(s.purge(2000).unwrap(), 1);
        assert_eq!(s.search(&Search::within(Scope::All, 10)).unwrap().len(), 1, "recipients go with their message");
        let mut q = Search::within(Scope::All, 10);
        q.subject = Some("watches".into());
        assert_eq!(s.search(&q).unwrap().len(), 1, "the purged message left the subject index");
    }

    #[test]
    fn a_version_1_database_is_brought_up_to_date() {
        let loc = temp_db("v1");
        let Location::Sqlite(path) = &loc else { unreachable!() };
        {
            let c = rusqlite::Connection::open(path).unwrap();
            c.execute_batch(
                "CREATE TABLE messages (qid TEXT PRIMARY KEY, arrival_ms INTEGER NOT NULL, mail_from TEXT NOT NULL, client TEXT NOT NULL,
                     helo TEXT NOT NULL, subject TEXT NOT NULL, size INTEGER NOT NULL, score REAL NOT NULL, symbols TEXT NOT NULL,
                     reason TEXT NOT NULL, message BLOB NOT NULL);
                 CREATE TABLE recipients (id INTEGER PRIMARY KEY, qid TEXT NOT NULL REFERENCES messages(qid) ON DELETE CASCADE,
                     rcpt TEXT NOT NULL, domain TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'held', changed_ms INTEGER, UNIQUE (qid, rcpt));
                 INSERT INTO messages VALUES ('V1', 1, 'a@b.example', '', '', 'old subject', 5, 9.0, '', 'r', X'6869');
                 INSERT INTO recipients (qid, rcpt, domain) VALUES ('V1', 'u@example.test', 'example.test');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let mut s = Store::open(&loc).unwrap();
        assert_eq!(s.message("V1").unwrap().unwrap(), b"hi", "an uncompressed body still reads");
        let mut q = Search::within(Scope::All, 10);
        q.subject = Some("old sub".into());
        assert_eq!(s.search(&q).unwrap()[0].verdict, "spam", "found through the rebuilt subject index");
        s.insert_batch(&[&entry("V2", &["u@example.test"], 2)]).unwrap();
        assert_eq!(s.search(&Search::within(Scope::All, 10)).unwrap().len(), 2);
    }
}
