//! One data-access layer over the two databases the quarantine and the console live in: SQLite,
//! embedded (a file in `state.dir`, the default), or PostgreSQL, when several gateways share one
//! quarantine, one set of accounts and one set of users' lists.
//!
//! Every query is written once, in the dialect both accept: `$1`…`$n` placeholders (rewritten to
//! SQLite's `?1`…`?n`), `INSERT … ON CONFLICT … DO NOTHING/UPDATE`, `CAST(x AS BIGINT)`, no
//! `COLLATE NOCASE` in queries (addresses are stored lower-case). Tables are declared once too,
//! in SQLite's words, and [`postgres_ddl`] says them in PostgreSQL's. Values cross as [`Val`]s
//! and rows come back as [`Row`]s.
//!
//! Costs and guarantees: every call blocks its thread (SQLite's fsync, PostgreSQL's round trip).
//! Never call it on a core's executor or inside an async runtime (the `postgres` client runs one
//! of its own): the quarantine writer thread and the console's data thread own a `Db` each.
//! SQLite runs in WAL mode with `synchronous = FULL`; PostgreSQL commits are durable by its own
//! settings (`synchronous_commit = on`, the default). A PostgreSQL connection that dropped is
//! opened again on the next call, except inside a transaction, which fails instead; the call that
//! saw it drop fails (the writer retries, as for any failed commit).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type};

/// A value in or out of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}
impl From<u64> for Val {
    fn from(v: u64) -> Val {
        Val::Int(v.min(i64::MAX as u64) as i64)
    }
}
impl From<usize> for Val {
    fn from(v: usize) -> Val {
        Val::Int(v.min(i64::MAX as usize) as i64)
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Val {
        Val::Real(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_string())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Val {
        Val::Text(v.clone())
    }
}
impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Val {
        Val::Blob(v)
    }
}
impl From<&[u8]> for Val {
    fn from(v: &[u8]) -> Val {
        Val::Blob(v.to_vec())
    }
}

/// One result row: its columns in the query's order. The getters never panic: a missing column
/// or another type reads as 0, 0.0, "" or no bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Val>);

impl Row {
    pub fn int(&self, i: usize) -> i64 {
        match self.0.get(i) {
            Some(Val::Int(v)) => *v,
            Some(Val::Real(v)) => *v as i64,
            Some(Val::Text(t)) => t.parse().unwrap_or(0),
            _ => 0,
        }
    }
    pub fn u64(&self, i: usize) -> u64 {
        self.int(i).max(0) as u64
    }
    pub fn real(&self, i: usize) -> f64 {
        match self.0.get(i) {
            Some(Val::Real(v)) => *v,
            Some(Val::Int(v)) => *v as f64,
            _ => 0.0,
        }
    }
    pub fn text(&self, i: usize) -> String {
        match self.0.get(i) {
            Some(Val::Text(t)) => t.clone(),
            Some(Val::Int(v)) => v.to_string(),
            Some(Val::Blob(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        }
    }
    pub fn blob(&self, i: usize) -> Vec<u8> {
        match self.0.get(i) {
            Some(Val::Blob(b)) => b.clone(),
            Some(Val::Text(t)) => t.clone().into_bytes(),
            _ => Vec::new(),
        }
    }
    pub fn is_null(&self, i: usize) -> bool {
        matches!(self.0.get(i), None | Some(Val::Null))
    }
}

/// A failed database call, with what failed.
#[derive(Debug, Clone, PartialEq)]
pub struct DbError(pub String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl StdError for DbError {}
impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        DbError(e.to_string())
    }
}
impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> DbError {
        // The server's own message (constraint, syntax) is more use than "db error".
        match e.as_db_error() {
            Some(d) => DbError(format!("postgresql: {}", d.message())),
            None => DbError(format!("postgresql: {e}")),
        }
    }
}
impl From<DbError> for String {
    fn from(e: DbError) -> String {
        e.0
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// Which database a `Db` talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// Where a database is: a `postgres://` (or `postgresql://`) URL, or a SQLite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    /// `spec` as a knob gives it: a URL, or a file name (relative to `dir` unless absolute).
    pub fn parse(spec: &str, dir: &Path) -> Location {
        let s = spec.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Location::Postgres(s.to_string())
        } else {
            let p = Path::new(s);
            Location::Sqlite(if p.is_absolute() { p.to_path_buf() } else { dir.join(p) })
        }
    }

    /// For messages: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let userinfo = &url[s + 3..at];
                    let user = userinfo.split(':').next().unwrap_or("");
                    format!("{}{user}:***{}", &url[..s + 3], &url[at..])
                }
                _ => url.clone(),
            },
        }
    }
}

enum Conn {
    Sqlite(rusqlite::Connection),
    // Boxed: a PostgreSQL client is several times a SQLite handle's size.
    Postgres(Box<Pg>),
}

/// A PostgreSQL connection, opened again when it dropped — but never inside a transaction: the
/// statements after the drop would run outside it, on the new connection, and commit alone.
struct Pg {
    client: Option<postgres::Client>,
    url: String,
    /// Prepared statements of `client`, by their text (forgotten with it).
    statements: HashMap<String, postgres::Statement>,
    in_transaction: bool,
}

impl Pg {
    /// The live client (reconnecting outside a transaction) and its prepared statements.
    fn parts(&mut self) -> DbResult<(&mut postgres::Client, &mut HashMap<String, postgres::Statement>)> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            if self.in_transaction {
                return Err(DbError("postgresql: the connection dropped inside a transaction".into()));
            }
            self.statements.clear();
            self.client = Some(pg_connect(&self.url)?);
        }
        let client = self.client.as_mut().ok_or_else(|| DbError("postgresql: not connected".into()))?;
        Ok((client, &mut self.statements))
    }

    /// `sql` prepared on the live client (once per connection).
    fn prepared(&mut self, sql: &str) -> DbResult<(&mut postgres::Client, postgres::Statement)> {
        let (cl, statements) = self.parts()?;
        let st = match statements.get(sql) {
            Some(st) => st.clone(),
            None => {
                let st = cl.prepare(sql)?;
                statements.insert(sql.to_string(), st.clone());
                st
            }
        };
        Ok((cl, st))
    }
}

/// An open database (one connection).
pub struct Db {
    conn: Conn,
}

/// The advisory lock key under which schemas change in PostgreSQL.
const SCHEMA_LOCK: i64 = 7_357_001;

/// Table declarations in SQLite's words said in PostgreSQL's: 64-bit integers (`BIGINT`, and
/// `BIGSERIAL` for an `INTEGER PRIMARY KEY`), `DOUBLE PRECISION`, `BYTEA`, and no `COLLATE
/// NOCASE` (the callers store those columns lower-case).
pub fn postgres_ddl(sqlite: &str) -> String {
    sqlite
        .replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
        .replace(" REAL", " DOUBLE PRECISION")
        .replace(" BLOB", " BYTEA")
        .replace(" COLLATE NOCASE", "")
}

/// `$1`…`$n` as SQLite's `?1`…`?n` (dollars inside quotes are left alone). A few hundred
/// nanoseconds per statement, against the database's microseconds to milliseconds.
pub fn sqlite_dialect(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn pg_connect(url: &str) -> DbResult<postgres::Client> {
    // Loopback or a private network: TLS to PostgreSQL is not built (see README).
    postgres::Client::connect(url, postgres::NoTls).map_err(DbError::from)
}

impl Db {
    /// Opens the database at `loc`, then creates what `schema` declares (idempotent DDL in
    /// SQLite's words, `CREATE … IF NOT EXISTS`; for PostgreSQL through [`postgres_ddl`], under
    /// an advisory lock so gateways starting together do not race).
    pub fn open(loc: &Location, schema: &str) -> DbResult<Db> {
        let mut db = match loc {
            Location::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path)?;
                conn.busy_timeout(std::time::Duration::from_secs(10))?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "FULL")?;
                conn.pragma_update(None, "foreign_keys", "ON")?;
                Db { conn: Conn::Sqlite(conn) }
            }
            Location::Postgres(url) => {
                let client = pg_connect(url)?;
                Db { conn: Conn::Postgres(Box::new(Pg { client: Some(client), url: url.clone(), statements: HashMap::new(), in_transaction: false })) }
            }
        };
        match db.kind() {
            Kind::Sqlite => db.batch(schema)?,
            Kind::Postgres => db.locked_batch(&postgres_ddl(schema))?,
        }
        Ok(db)
    }

    /// PostgreSQL: runs `sql` holding the schema's advisory lock (released on failure too).
    pub fn locked_batch(&mut self, sql: &str) -> DbResult<()> {
        self.batch(&format!("SELECT pg_advisory_lock({SCHEMA_LOCK})"))?;
        let r = self.batch(sql);
        let unlocked = self.batch(&format!("SELECT pg_advisory_unlock({SCHEMA_LOCK})"));
        r.and(unlocked)
    }

    pub fn kind(&self) -> Kind {
        match self.conn {
            Conn::Sqlite(_) => Kind::Sqlite,
            Conn::Postgres(_) => Kind::Postgres,
        }
    }

    /// Runs several statements without parameters (schemas, `BEGIN`).
    pub fn batch(&mut self, sql: &str) -> DbResult<()> {
        match &mut self.conn {
            Conn::Sqlite(c) => c.execute_batch(sql).map_err(DbError::from),
            Conn::Postgres(pg) => Ok(pg.parts()?.0.batch_execute(sql)?),
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn exec(&mut self, sql: &'static str, params: &[Val]) -> DbResult<u64> {
        match &mut self.conn {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(&sqlite_dialect(sql))?;
                Ok(st.execute(rusqlite::params_from_iter(params.iter().map(sqlite_value)))? as u64)
            }
            Conn::Postgres(pg) => {
                let (cl, st) = pg.prepared(sql)?;
                Ok(cl.execute(&st, &pg_params(params))?)
            }
        }
    }

    /// Runs one query; its rows.
    pub fn query(&mut self, sql: &'static str, params: &[Val]) -> DbResult<Vec<Row>> {
        self.query_dynamic(sql, params, true)
    }

    /// [`Db::query`] for text built at run time (a search's chosen conditions): PostgreSQL
    /// does not keep its prepared statement.
    pub fn query_text(&mut self, sql: &str, params: &[Val]) -> DbResult<Vec<Row>> {
        self.query_dynamic(sql, params, false)
    }

    fn query_dynamic(&mut self, sql: &str, params: &[Val], cache: bool) -> DbResult<Vec<Row>> {
        match &mut self.conn {
            Conn::Sqlite(c) => {
                // SQLite keeps its own small LRU of prepared statements either way.
                let mut st = c.prepare_cached(&sqlite_dialect(sql))?;
                let n = st.column_count();
                let rows = st.query_map(rusqlite::params_from_iter(params.iter().map(sqlite_value)), |r| {
                    let mut row = Vec::with_capacity(n);
                    for i in 0..n {
                        row.push(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Val::Null,
                            rusqlite::types::ValueRef::Integer(v) => Val::Int(v),
                            rusqlite::types::ValueRef::Real(v) => Val::Real(v),
                            rusqlite::types::ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                            rusqlite::types::ValueRef::Blob(b) => Val::Blob(b.to_vec()),
                        });
                    }
                    Ok(Row(row))
                })?;
                rows.collect::<rusqlite::Result<Vec<Row>>>().map_err(DbError::from)
            }
            Conn::Postgres(pg) => {
                let rows = if cache {
                    let (cl, st) = pg.prepared(sql)?;
                    cl.query(&st, &pg_params(params))?
                } else {
                    pg.parts()?.0.query(sql, &pg_params(params))?
                };
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let mut row = Vec::with_capacity(r.len());
                    for i in 0..r.len() {
                        row.push(r.try_get::<_, Val>(i)?);
                    }
                    out.push(Row(row));
                }
                Ok(out)
            }
        }
    }

    /// The first row of a query, if any.
    pub fn query_one(&mut self, sql: &'static str, params: &[Val]) -> DbResult<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs `f` in one transaction: committed if it returns `Ok`, rolled back otherwise. SQLite
    /// takes its write lock at the start (`BEGIN IMMEDIATE`), so two writers queue rather than
    /// fail half-way.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&mut Db) -> DbResult<T>) -> DbResult<T> {
        self.batch(match self.kind() {
            Kind::Sqlite => "BEGIN IMMEDIATE",
            Kind::Postgres => "BEGIN",
        })?;
        self.set_in_transaction(true);
        let r = f(self).and_then(|v| self.batch("COMMIT").map(|()| v));
        if r.is_err() {
            let _ = self.batch("ROLLBACK");
        }
        self.set_in_transaction(false);
        r
    }

    fn set_in_transaction(&mut self, on: bool) {
        if let Conn::Postgres(pg) = &mut self.conn {
            pg.in_transaction = on;
        }
    }
}

fn pg_params(params: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn sqlite_value(v: &Val) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        Val::Null => Value::Null,
        Val::Int(i) => Value::Integer(*i),
        Val::Real(f) => Value::Real(*f),
        Val::Text(t) => Value::Text(t.clone()),
        Val::Blob(b) => Value::Blob(b.clone()),
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Val {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Val::Real(v) => match *ty {
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Val::Text(t) => t.to_sql(ty, out),
            Val::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Val {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Val, BoxError> {
        Ok(match *ty {
            Type::INT8 => Val::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Val::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT2 => Val::Int(i16::from_sql(ty, raw)? as i64),
            Type::BOOL => Val::Int(bool::from_sql(ty, raw)? as i64),
            Type::FLOAT8 => Val::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Val::Real(f32::from_sql(ty, raw)? as f64),
            Type::BYTEA => Val::Blob(Vec::<u8>::from_sql(ty, raw)?),
            _ => Val::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Val, BoxError> {
        Ok(Val::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_sqlite_ones_outside_quotes() {
        assert_eq!(sqlite_dialect("SELECT a FROM t WHERE b = $1 AND c = $12"), "SELECT a FROM t WHERE b = ?1 AND c = ?12");
        assert_eq!(sqlite_dialect("SELECT '$1', $2"), "SELECT '$1', ?2");
        assert_eq!(sqlite_dialect("SELECT $x"), "SELECT $x");
    }

    /// A connection that drops inside a transaction fails the transaction; the statements after
    /// the drop are not run on a new connection (where they would commit alone). Outside a
    /// transaction the next call reconnects. Needs the PostgreSQL of tests/run.
    #[test]
    fn postgresql_never_reconnects_inside_a_transaction() {
        let Ok(url) = std::env::var("MXGUARD_TEST_POSTGRES") else { return };
        let schema = "CREATE TABLE IF NOT EXISTS reconnect_t (k TEXT PRIMARY KEY)";
        let mut db = Db::open(&Location::Postgres(url.clone()), schema).unwrap();
        let mut killer = Db::open(&Location::Postgres(url), schema).unwrap();
        db.batch("TRUNCATE reconnect_t").unwrap();
        let pid = db.query_one("SELECT pg_backend_pid()", &[]).unwrap().unwrap().int(0);
        let r: DbResult<()> = db.transaction(|db| {
            db.exec("INSERT INTO reconnect_t (k) VALUES ($1)", &["before".into()])?;
            killer.exec("SELECT pg_terminate_backend(CAST($1 AS INTEGER))", &[pid.into()])?;
            // A caller that goes on after a failed statement (the first call is the one that finds
            // the connection gone) must not have its next statement run, and commit, elsewhere.
            let _ = db.exec("INSERT INTO reconnect_t (k) VALUES ($1)", &["after".into()]);
            db.exec("INSERT INTO reconnect_t (k) VALUES ($1)", &["after2".into()])?;
            Ok(())
        });
        assert!(r.is_err(), "the transaction went on after its connection dropped");
        assert_eq!(db.query("SELECT k FROM reconnect_t", &[]).unwrap(), vec![], "nothing of it committed");
        assert_eq!(db.query_one("SELECT 1", &[]).unwrap().unwrap().int(0), 1, "outside a transaction it reconnects");
    }

    #[test]
    fn one_schema_for_both() {
        let ddl = postgres_ddl("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, r REAL, b BLOB, e TEXT PRIMARY KEY COLLATE NOCASE)");
        assert_eq!(ddl, "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL, r DOUBLE PRECISION, b BYTEA, e TEXT PRIMARY KEY)");
    }

    #[test]
    fn locations_and_their_descriptions() {
        let d = Path::new("/var/lib/mxguard");
        assert_eq!(Location::parse("quarantine.db", d), Location::Sqlite(d.join("quarantine.db")));
        assert_eq!(Location::parse("/data/q.db", d), Location::Sqlite("/data/q.db".into()));
        let pg = Location::parse("postgresql://mx:secret@db.isp:5432/mxguard", d);
        assert_eq!(pg, Location::Postgres("postgresql://mx:secret@db.isp:5432/mxguard".into()));
        assert_eq!(pg.describe(), "postgresql://mx:***@db.isp:5432/mxguard");
    }

    #[test]
    fn sqlite_round_trip_and_rollback() {
        let dir = std::env::temp_dir().join(format!("mxguard-db-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let schema = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, n INTEGER, r REAL, b BLOB)";
        let mut db = Db::open(&Location::Sqlite(dir.join("t.db")), schema).unwrap();
        db.exec("INSERT INTO t (k, n, r, b) VALUES ($1, $2, $3, $4)", &["a".into(), 7i64.into(), 1.5.into(), b"\x00\xff".as_slice().into()]).unwrap();
        let r = db.query_one("SELECT k, n, r, b, NULL FROM t WHERE k = $1", &["a".into()]).unwrap().unwrap();
        assert_eq!((r.text(0), r.int(1), r.real(2), r.blob(3), r.is_null(4)), ("a".into(), 7, 1.5, vec![0, 255], true));
        let failed: DbResult<()> = db.transaction(|db| {
            db.exec("INSERT INTO t (k) VALUES ($1)", &["b".into()])?;
            Err(DbError("stop".into()))
        });
        assert!(failed.is_err());
        assert_eq!(db.query("SELECT k FROM t", &[]).unwrap().len(), 1, "the failed transaction left nothing");
        // Getters never panic on a missing column.
        assert_eq!((r.int(99), r.text(99)), (0, String::new()));
    }
}
