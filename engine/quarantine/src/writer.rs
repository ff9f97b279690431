//! The one thread that writes the quarantine database.
//!
//! Cores send [`Entry`]s over a channel and await a oneshot answer (runtime-agnostic, so a
//! glommio task can await it). The thread takes everything waiting at once and commits it in one
//! transaction: under load, many held messages share one fsync, as in the spool's group commit.
//! Once an hour (and at start) it deletes what is older than `quarantine.retention_days`.
//!
//! Costs: one channel send and one wake-up per message on the core; the commit's fsync happens
//! on this thread only.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use mxguard_telemetry::Event;
use mxguard_tuning as k;
use tokio::sync::oneshot;

use crate::db::Location;
use crate::store::{now_ms, Entry, Store};

type Answer = oneshot::Sender<Result<usize, String>>;

/// A handle on the writer thread.
pub struct Writer {
    tx: Sender<(Entry, Answer)>,
}

static GLOBAL: OnceLock<Writer> = OnceLock::new();

const PURGE_EVERY: Duration = Duration::from_secs(3600);
const BATCH_MAX: usize = 256;

impl Writer {
    /// Opens the database at `loc` (so a bad path or an unreachable server fails at start-up)
    /// and starts its thread.
    pub fn spawn(loc: &Location) -> Result<Writer, String> {
        let store = Store::open(loc).map_err(|e| format!("quarantine database {}: {e}", loc.describe()))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("quarantine".into())
            .spawn(move || run(store, rx))
            .map_err(|e| format!("quarantine thread: {e}"))?;
        Ok(Writer { tx })
    }

    /// Holds `e`; resolves once it is committed, to the number of recipients newly held.
    pub async fn insert(&self, e: Entry) -> Result<usize, String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((e, tx)).map_err(|_| "the quarantine writer has stopped".to_string())?;
        rx.await.map_err(|_| "the quarantine writer has stopped".to_string())?
    }
}

/// Starts the process's quarantine writer (once; later calls return the first).
pub fn start(loc: &Location) -> Result<&'static Writer, String> {
    if let Some(w) = GLOBAL.get() {
        return Ok(w);
    }
    let w = Writer::spawn(loc)?;
    Ok(GLOBAL.get_or_init(|| w))
}

/// Holds `e` in the process's quarantine; an error if none was started or the write failed.
pub async fn insert(e: Entry) -> Result<usize, String> {
    match GLOBAL.get() {
        Some(w) => w.insert(e).await,
        None => Err("no quarantine store is configured".into()),
    }
}

fn purge(store: &mut Store) {
    let days = k::QUARANTINE_RETENTION_DAYS.get_u64();
    let before = now_ms().saturating_sub(days * 86_400_000);
    match store.purge(before) {
        Ok(0) => {}
        Ok(n) => Event::new("quarantine_purged").num("messages", n as u64).num("retention_days", days).emit(),
        Err(e) => Event::new("quarantine_error").str("op", "purge").str("error", &e.to_string()).emit(),
    }
}

fn run(mut store: Store, rx: Receiver<(Entry, Answer)>) {
    purge(&mut store);
    let mut next_purge = Instant::now() + PURGE_EVERY;
    loop {
        let first = match rx.recv_timeout(next_purge.saturating_duration_since(Instant::now())) {
            Ok(x) => x,
            Err(RecvTimeoutError::Timeout) => {
                purge(&mut store);
                next_purge = Instant::now() + PURGE_EVERY;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(x) => batch.push(x),
                Err(_) => break,
            }
        }
        let entries: Vec<&Entry> = batch.iter().map(|(e, _)| e).collect();
        match store.insert_batch(&entries) {
            Ok(added) => {
                for ((e, answer), n) in batch.into_iter().zip(added) {
                    Event::new("quarantined")
                        .str("qid", &e.qid)
                        .str("from", &e.mail_from)
                        .list("rcpt", &e.rcpts)
                        .num("new_rcpts", n as u64)
                        .num("size", e.message.len() as u64)
                        .emit();
                    let _ = answer.send(Ok(n));
                }
            }
            Err(err) => {
                let text = format!("quarantine database: {err}");
                Event::new("quarantine_error").str("op", "insert").str("error", &text).emit();
                for (_, answer) in batch {
                    let _ = answer.send(Err(text.clone()));
                }
            }
        }
    }
}
