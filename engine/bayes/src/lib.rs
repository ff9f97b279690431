//! Learning: the statistical part of the filter (issue 6, in progress).
//!
//! `mxguard_scan::tokens` turns a parsed message into 64-bit token hashes (beside the other
//! scanners, so the message is parsed once); [`table`] holds their spam/ham counts for every
//! core; [`classify`] combines them into a probability (Robinson-Fisher); [`store`] keeps the
//! table on disk. [`start`] loads the snapshot and runs a saver thread that writes it again every
//! `bayes.snapshot_s` when something was learnt (a crash loses at most that much learning; the
//! journal that narrows it is still to come).
//!
//! This crate never does I/O on the scan path and never decides an action.

pub mod classify;
pub mod store;
pub mod table;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mxguard_tuning as k;

/// The live table with its file.
pub struct Bayes {
    pub table: table::Table,
    path: PathBuf,
    dirty: AtomicBool,
}

impl Bayes {
    /// Loads `path` into a table sized for `max_tokens`. A damaged file is moved aside to
    /// `NAME.bad` and the table starts empty (the error is returned beside it for the log).
    pub fn open(path: &Path, max_tokens: usize) -> (Bayes, Result<usize, String>) {
        let table = table::Table::new(max_tokens);
        let loaded = match store::load(&table, path) {
            Ok(n) => Ok(n),
            Err(e) => {
                let _ = std::fs::rename(path, path.with_extension("bad"));
                Err(e.to_string())
            }
        };
        // A failed load may have restored part of the table: start from nothing instead.
        let table = if loaded.is_err() { table::Table::new(max_tokens) } else { table };
        (Bayes { table, path: path.to_path_buf(), dirty: AtomicBool::new(false) }, loaded)
    }

    /// Learns one message's tokens.
    pub fn learn(&self, tokens: &[u64], spam: bool) {
        self.table.learn(tokens, spam);
        self.dirty.store(true, Ordering::Release);
    }

    /// Writes the snapshot if anything was learnt since the last one.
    pub fn save_if_changed(&self) -> std::io::Result<Option<usize>> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(None);
        }
        match store::save(&self.table, &self.path) {
            Ok(n) => Ok(Some(n)),
            Err(e) => {
                self.dirty.store(true, Ordering::Release);
                Err(e)
            }
        }
    }
}

/// The spam probability of a message's tokens in `table`, with the knobs in force (`None`
/// before the kick-in, `bayes.min_learned`, or when nothing tells).
pub fn probability(table: &table::Table, tokens: &[u64]) -> Option<f64> {
    let (spam, ham) = table.learned();
    let params = classify::Params { min_learned: k::BAYES_MIN_LEARNED.get_u64(), ..classify::Params::default() };
    classify::spam_probability(tokens.iter().map(|t| table.get(*t)), spam, ham, &params)
}

static CURRENT: OnceLock<Arc<Bayes>> = OnceLock::new();

/// The gateway's table, once [`start`] ran.
pub fn current() -> Option<&'static Arc<Bayes>> {
    CURRENT.get()
}

/// Opens the gateway's table and starts its saver thread; `report` is told of every save error.
pub fn start(path: &Path, report: fn(&str)) -> Result<usize, String> {
    let (b, loaded) = Bayes::open(path, k::BAYES_MAX_TOKENS.get_usize());
    if let Err(e) = &loaded {
        report(&format!("{e} (moved aside, starting empty)"));
    }
    let b = Arc::new(b);
    if CURRENT.set(Arc::clone(&b)).is_err() {
        return Err("the Bayes table is already started".into());
    }
    std::thread::Builder::new()
        .name("bayes-saver".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(k::BAYES_SNAPSHOT_S.get_u64().max(1)));
            if let Err(e) = b.save_if_changed() {
                report(&format!("saving {}: {e}", b.path.display()));
            }
        })
        .map_err(|e| format!("bayes saver thread: {e}"))?;
    Ok(loaded.unwrap_or(0))
}

/// Saves the gateway's table now if it changed (at shutdown).
pub fn save_now() -> std::io::Result<Option<usize>> {
    match current() {
        Some(b) => b.save_if_changed(),
        None => Ok(None),
    }
}
