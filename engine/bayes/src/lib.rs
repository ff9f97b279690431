//! Learning: the statistical part of the filter.
//!
//! `mxguard_scan::tokens` turns a parsed message into 64-bit token hashes (beside the other
//! scanners, so the message is parsed once); [`table`] holds their spam/ham counts for every
//! core, and a logistic-regression weight each, stepped once a lesson; [`classify`] combines the
//! counts into a probability (Robinson-Fisher) and joins it with the weights' answer
//! ([`classify::fuse`]); [`reinforce`] learns a message the table misjudged more than once;
//! [`seen`] remembers what each message was learnt as, so none counts twice; [`store`] keeps the table on disk as a snapshot and
//! [`journal`] every lesson since; [`weighted`] keeps the labelled lessons the learned symbol
//! weights are fitted on, and the model fitted from them.
//!
//! In the gateway ([`start`]) one learner thread owns every change: lessons reach it through a
//! bounded queue, it applies them to the table, appends them to the journal (fsync'd every
//! `bayes.journal_sync_ms`), writes a snapshot every `bayes.snapshot_s`, and evicts stale tokens
//! by building a smaller copy of the table and swapping it in. Readers on the cores load the
//! current table through an [`ArcSwap`] (no lock) and read it while it is being learnt into.
//!
//! This crate never does I/O on the scan path, never blocks a core (a full queue drops the
//! lesson and counts it) and never decides an action.

pub mod classify;
mod huge;
pub mod journal;
pub mod reinforce;
pub mod seen;
pub mod store;
pub mod table;
pub mod weighted;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use mxguard_tuning as k;

use journal::{Journal, Lesson};
use seen::Seen;
use table::Table;

/// The snapshot is written early once the journal is larger than this many bytes and twice the
/// snapshot's size (replaying it would then cost more than loading one; bulk learning should not
/// rewrite the whole table every few seconds).
const JOURNAL_EARLY_SNAPSHOT: u64 = 64 << 20;

/// What opening a table found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Opened {
    /// Tokens loaded from the snapshot.
    pub tokens: usize,
    /// Lessons replayed from the journal.
    pub replayed: u64,
    /// Bytes of a torn journal tail left out.
    pub torn: u64,
}

/// Work for the learner thread.
enum Job {
    Lesson(Lesson),
    /// Apply everything queued before, make it durable, answer.
    Flush(Sender<std::io::Result<()>>),
    /// Flush, write a snapshot if anything changed, answer with the tokens written.
    Save(Sender<std::io::Result<Option<usize>>>),
    /// Save and end the thread.
    Stop(Sender<std::io::Result<Option<usize>>>),
}

/// What the gateway hears from the learner thread.
#[derive(Clone, Copy)]
pub struct Hooks {
    /// An I/O error (the lesson stays learnt in memory; the next snapshot retries).
    pub error: fn(&str),
    /// The table changed and what changed is durable (publish the counts).
    pub synced: fn(&Table),
    /// Stale tokens were evicted: (tokens kept, tokens dropped).
    pub evicted: fn(usize, usize),
}

/// The live table with its files.
pub struct Bayes {
    table: ArcSwap<Table>,
    /// What each learnt message was learnt as: locked by whoever applies a lesson (the learner
    /// thread, or `teach` without one) and by the snapshot, never by a reader.
    seen: Mutex<Seen>,
    path: PathBuf,
    /// Generation of the snapshot on disk (its journal carries the same).
    generation: AtomicU64,
    /// Where the journal's last good record ends (from opening; the learner resumes there).
    journal_good: AtomicU64,
    dirty: AtomicBool,
    queue: OnceLock<Sender<Job>>,
    lost: AtomicU64,
    /// Lessons of messages learnt that way already (not applied), and of messages learnt the
    /// other way before (taken back first), since start ([`seen`]).
    repeated: AtomicU64,
    switched: AtomicU64,
    /// Lessons learnt more than once since start ([`reinforce`]).
    reinforced: AtomicU64,
    /// Tokens held at most: the size opened with, or `bayes.max_tokens` as it is now once
    /// [`start`] ran (the gateway follows the knob live).
    budget: usize,
    follow_knob: AtomicBool,
}

impl Bayes {
    /// A table with its file's state (not started: no learner yet).
    fn with(table: Table, seen: Seen, path: &Path, generation: u64, journal_good: u64, dirty: bool, budget: usize) -> Bayes {
        Bayes {
            table: ArcSwap::from_pointee(table),
            seen: Mutex::new(seen),
            path: path.to_path_buf(),
            generation: AtomicU64::new(generation),
            journal_good: AtomicU64::new(journal_good),
            dirty: AtomicBool::new(dirty),
            queue: OnceLock::new(),
            lost: AtomicU64::new(0),
            repeated: AtomicU64::new(0),
            switched: AtomicU64::new(0),
            reinforced: AtomicU64::new(0),
            budget,
            follow_knob: AtomicBool::new(false),
        }
    }

    /// Loads `path` and replays its journal into a table sized for `max_tokens`. A damaged
    /// snapshot is an error (the caller decides: [`Bayes::open`] moves it aside).
    fn load(path: &Path, max_tokens: usize) -> Result<(Bayes, Opened), String> {
        let table = Table::new(max_tokens);
        let mut seen = Seen::default();
        let snap = store::load(&table, &mut seen, path).map_err(|e| e.to_string())?;
        let replay = journal::replay(&journal::path_for(path), snap.generation, |mut l| {
            apply(&table, &mut seen, &mut l);
        })
            .map_err(|e| format!("{}: {e}", journal::path_for(path).display()))?;
        let b = Bayes::with(table, seen, path, snap.generation, replay.good_len, replay.lessons > 0, max_tokens);
        Ok((b, Opened { tokens: snap.tokens, replayed: replay.lessons, torn: replay.torn }))
    }

    /// Loads `path` and its journal. A damaged snapshot is moved aside to `NAME.bad` and the
    /// table starts empty (the error is returned beside it for the log).
    pub fn open(path: &Path, max_tokens: usize) -> (Bayes, Result<Opened, String>) {
        match Bayes::load(path, max_tokens) {
            Ok((b, o)) => (b, Ok(o)),
            Err(e) => {
                let _ = std::fs::rename(path, path.with_extension("bad"));
                let _ = std::fs::remove_file(journal::path_for(path));
                // Snapshot and journal are gone: what loading them now gives, an empty table.
                (Bayes::with(Table::new(max_tokens), Seen::default(), path, 0, 0, false, max_tokens), Err(e))
            }
        }
    }

    /// Loads `path` and its journal without changing either (for a reader beside the gateway).
    pub fn open_read_only(path: &Path, max_tokens: usize) -> Result<(Bayes, Opened), String> {
        Bayes::load(path, max_tokens)
    }

    /// The current table (no lock: an atomic load; hold it only while classifying).
    pub fn table(&self) -> arc_swap::Guard<Arc<Table>> {
        self.table.load()
    }

    /// Messages learnt: (spam, ham).
    pub fn learned(&self) -> (u64, u64) {
        self.table().learned()
    }

    /// Tokens held at most.
    fn limit(&self) -> usize {
        if self.follow_knob.load(Ordering::Relaxed) {
            k::BAYES_MAX_TOKENS.get_usize()
        } else {
            self.budget
        }
    }

    /// Lessons dropped because the learner's queue was full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Learns (or with `unlearn`, takes back) one message's tokens as a person labelled it (a
    /// file, a report, a quarantine decision): a message the table misjudged is learnt more than
    /// once ([`reinforce`]). With the learner running the lesson is queued and applied within
    /// moments; when the queue is full it is dropped and counted, unless `wait`, which blocks
    /// until there is room (never from a core). Without the learner (`mxguard learn` offline) it
    /// is applied at once.
    pub fn teach(&self, tokens: &[u64], spam: bool, unlearn: bool, wait: bool) {
        self.enqueue(Lesson { tokens: tokens.to_vec(), spam, unlearn, day: table::today(), extra: None }, wait);
    }

    /// Learns one message's tokens from the gateway's own verdict (auto-learn): once, never
    /// reinforced — where Bayes disagrees with the other checks, the other checks are the likelier
    /// to be wrong, and learning their verdict several times would spread the mistake. Never
    /// blocks.
    pub fn learn(&self, tokens: &[u64], spam: bool) {
        self.enqueue(Lesson { tokens: tokens.to_vec(), spam, unlearn: false, day: table::today(), extra: Some(0) }, false);
    }

    /// Hands a lesson to the learner thread, or applies it at once without one ([`Bayes::teach`]).
    fn enqueue(&self, mut lesson: Lesson, wait: bool) {
        match self.queue.get() {
            Some(q) if wait => {
                if q.send(Job::Lesson(lesson)).is_err() {
                    self.lost.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(q) => match q.try_send(Job::Lesson(lesson)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.lost.fetch_add(1, Ordering::Relaxed);
                }
            },
            None => {
                self.apply_counted(&mut lesson);
                self.dirty.store(true, Ordering::Release);
            }
        }
    }

    /// The remembered messages (a poisoned lock is taken over: the map holds plain values).
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How the message of these tokens was learnt, if it is remembered (for `mxguard explain`).
    pub fn learnt_as(&self, tokens: &[u64]) -> Option<seen::Entry> {
        self.seen().get(seen::digest(tokens))
    }

    /// Lessons since start of messages learnt that way already (not applied again), and of
    /// messages learnt the other way before (taken back first).
    pub fn remembered(&self) -> (u64, u64) {
        (self.repeated.load(Ordering::Relaxed), self.switched.load(Ordering::Relaxed))
    }

    /// Lessons since start the table had misjudged, learnt more than once ([`reinforce`]).
    pub fn reinforced(&self) -> u64 {
        self.reinforced.load(Ordering::Relaxed)
    }

    /// [`apply`], counting what the remembered messages changed and the lessons reinforced.
    fn apply_counted(&self, l: &mut Lesson) {
        let applied = apply(&self.table(), &mut self.seen(), l);
        match applied {
            Applied::Repeated => self.repeated.fetch_add(1, Ordering::Relaxed),
            Applied::Switched => self.switched.fetch_add(1, Ordering::Relaxed),
            Applied::AsGiven | Applied::Nothing => 0,
        };
        // Learnt now (a repeat learns nothing, whatever it was learnt as before).
        if matches!(applied, Applied::AsGiven | Applied::Switched) && !l.unlearn && l.extra.is_some_and(|n| n > 0) {
            self.reinforced.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the learner thread to do `job` and waits for its answer.
    fn ask<T>(&self, job: impl FnOnce(Sender<std::io::Result<T>>) -> Job) -> Option<std::io::Result<T>> {
        let q = self.queue.get()?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        q.send(job(tx)).ok()?;
        rx.recv().ok()
    }

    /// Waits until every lesson queued before is applied and durable in the journal.
    pub fn flush(&self) -> std::io::Result<()> {
        self.ask(Job::Flush).unwrap_or(Ok(()))
    }

    /// Writes a snapshot if anything was learnt since the last one (through the learner thread
    /// when it runs); returns the tokens written.
    pub fn save(&self) -> std::io::Result<Option<usize>> {
        if let Some(r) = self.ask(Job::Save) {
            return r;
        }
        let mut journal = None;
        self.snapshot(&mut journal)
    }

    /// Snapshot of the next generation, then a fresh journal of it (see [`journal`]).
    fn snapshot(&self, journal: &mut Option<Journal>) -> std::io::Result<Option<usize>> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(None);
        }
        let next = self.generation.load(Ordering::Acquire) + 1;
        // Under the lock every lesson is applied under: the table and the remembered messages
        // are written as of the same lesson.
        let seen = self.seen();
        let written = store::save(&self.table(), &seen, &self.path, next).and_then(|n| {
            self.generation.store(next, Ordering::Release);
            *journal = Some(Journal::create(&journal::path_for(&self.path), next)?);
            Ok(n)
        });
        if written.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        written.map(Some)
    }

    /// Drops stale tokens when due: those not learnt for `bayes.expire_days` (checked when the
    /// day changes), and the least recently learnt when the table holds 90 % of
    /// `bayes.max_tokens` (down to 75 %), or when that knob changed. The copy is swapped in;
    /// readers still holding the old table finish on it.
    fn evict_if_due(&self, age_checked: &mut u16, hooks: &Hooks) {
        let limit = self.limit();
        let t = self.table();
        let today = table::today();
        let days = k::BAYES_EXPIRE_DAYS.get_u64().min(u64::from(u16::MAX)) as u16;
        let oldest = if days == 0 { 0 } else { today.saturating_sub(days) };
        let stale = days > 0 && *age_checked != today && {
            *age_checked = today;
            t.oldest_day().is_some_and(|d| d < oldest)
        };
        let full = t.len() >= limit / 10 * 9;
        let resized = t.capacity() != Table::slots_for(limit);
        if !(stale || full || resized) {
            return;
        }
        let copy = t.rebuilt(limit, if full { limit / 4 * 3 } else { limit }, oldest);
        let (kept, before) = (copy.len(), t.len());
        drop(t);
        self.table.store(Arc::new(copy));
        self.dirty.store(true, Ordering::Release);
        (hooks.evicted)(kept, before.saturating_sub(kept));
    }

    /// Starts the learner thread: from now on every change goes through it.
    pub fn start_learner(self: &Arc<Self>, hooks: Hooks) -> Result<(), String> {
        let path = journal::path_for(&self.path);
        let journal = Journal::resume(&path, self.generation.load(Ordering::Acquire), self.journal_good.load(Ordering::Acquire))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let (tx, rx) = crossbeam_channel::bounded(k::BAYES_QUEUE.get_usize().max(16));
        self.queue.set(tx).map_err(|_| "the Bayes learner is already running".to_string())?;
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("bayes-learner".into())
            .spawn(move || me.learner(rx, journal, hooks))
            .map(|_| ())
            .map_err(|e| format!("bayes learner thread: {e}"))
    }

    /// The learner thread's loop. It runs at a lower CPU priority (nice 10) than the cores: its
    /// work can wait, mail cannot.
    fn learner(&self, rx: Receiver<Job>, journal: Journal, hooks: Hooks) {
        #[cfg(target_os = "linux")]
        // SAFETY: a system call on this thread's own id; on failure it keeps its priority.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t, 10);
        }
        let mut journal = Some(journal);
        let mut sync_due: Option<Instant> = None;
        let mut snapshot_due = Instant::now() + Duration::from_secs(k::BAYES_SNAPSHOT_S.get_u64().max(1));
        let mut age_checked = 0u16;
        self.evict_if_due(&mut age_checked, &hooks);
        let report = |what: &str, e: std::io::Error| (hooks.error)(&format!("{what}: {e}"));
        // Makes what was appended durable and tells the gateway.
        let sync = |journal: &mut Option<Journal>, sync_due: &mut Option<Instant>| {
            if let Some(j) = journal.as_mut() {
                if let Err(e) = j.sync() {
                    report("syncing the Bayes journal", e);
                }
            }
            *sync_due = None;
            (hooks.synced)(&self.table());
        };
        loop {
            let wake = sync_due.map_or(snapshot_due, |s| s.min(snapshot_due));
            match rx.recv_deadline(wake) {
                Ok(Job::Lesson(mut l)) => {
                    // Applied first: the journal records what it decided (the times learnt).
                    self.apply_counted(&mut l);
                    self.dirty.store(true, Ordering::Release);
                    if let Some(j) = journal.as_mut() {
                        if let Err(e) = j.append(&l) {
                            report("appending to the Bayes journal", e);
                            // A snapshot now starts a fresh one (retried every bayes.snapshot_s).
                            journal = None;
                            snapshot_due = Instant::now();
                        }
                    }
                    let interval = Duration::from_millis(k::BAYES_JOURNAL_SYNC_MS.get_u64());
                    if interval.is_zero() {
                        sync(&mut journal, &mut sync_due);
                    } else if sync_due.is_none() {
                        sync_due = Some(Instant::now() + interval);
                    }
                }
                Ok(Job::Flush(answer)) => {
                    let r = journal.as_mut().map_or(Ok(()), |j| j.sync());
                    sync_due = None;
                    (hooks.synced)(&self.table());
                    let _ = answer.send(r);
                }
                Ok(Job::Save(answer)) => {
                    sync(&mut journal, &mut sync_due);
                    let _ = answer.send(self.snapshot(&mut journal));
                }
                Ok(Job::Stop(answer)) => {
                    sync(&mut journal, &mut sync_due);
                    let _ = answer.send(self.snapshot(&mut journal));
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if sync_due.is_some_and(|t| now >= t) {
                sync(&mut journal, &mut sync_due);
            }
            // A filling table is checked after every job, not only at snapshots (one atomic load).
            if self.table().len() >= self.limit() / 10 * 9 {
                self.evict_if_due(&mut age_checked, &hooks);
            }
            let journal_big = journal.as_ref().is_some_and(|j| j.len() > JOURNAL_EARLY_SNAPSHOT && j.len() > self.table().len() as u64 * 40);
            if now >= snapshot_due || journal_big {
                sync(&mut journal, &mut sync_due);
                self.evict_if_due(&mut age_checked, &hooks);
                if journal.is_none() {
                    self.dirty.store(true, Ordering::Release);
                }
                if let Err(e) = self.snapshot(&mut journal) {
                    report(&format!("saving {}", self.path.display()), e);
                }
                snapshot_due = now + Duration::from_secs(k::BAYES_SNAPSHOT_S.get_u64().max(1));
            }
        }
    }

    /// Ends the learner thread after a last snapshot (tests; the gateway's shutdown saves).
    pub fn stop_learner(&self) -> std::io::Result<Option<usize>> {
        self.ask(Job::Stop).unwrap_or(Ok(None))
    }
}

/// What applying a lesson did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// Learnt or taken back as given.
    AsGiven,
    /// Learnt that way already: nothing changed.
    Repeated,
    /// Learnt the other way before: that was taken back, this learnt.
    Switched,
    /// Taking back what was not learnt that way: nothing changed.
    Nothing,
}

/// Applies one lesson to a table as the remembered messages allow ([`seen`]): a message learnt
/// the same way before is not learnt again, one learnt the other way is taken back first (every
/// time it was learnt), and only what was learnt is taken back. A lesson learnt is reinforced
/// when the table misjudged its message ([`learn_reinforced`]); `l.extra` then holds what was
/// decided, for the journal. With `bayes.seen_max` 0, every lesson as given (a take-back takes
/// back one lesson: how many times the message was learnt is not remembered).
fn apply(t: &Table, seen: &mut Seen, l: &mut Lesson) -> Applied {
    apply_within(t, seen, l, k::BAYES_SEEN_MAX.get_usize())
}

/// [`apply`], remembering at most `max` messages.
fn apply_within(t: &Table, seen: &mut Seen, l: &mut Lesson, max: usize) -> Applied {
    if max == 0 {
        if l.unlearn {
            t.unlearn(&l.tokens, l.spam);
        } else {
            learn_lesson(t, l);
        }
        return Applied::AsGiven;
    }
    let digest = seen::digest(&l.tokens);
    let was = seen.get(digest);
    if l.unlearn {
        match was {
            Some(e) if e.spam == l.spam => t.unlearn_times(&l.tokens, l.spam, 1 + u32::from(e.extra)),
            _ => return Applied::Nothing,
        }
        seen.remove(digest);
        return Applied::AsGiven;
    }
    let applied = match was {
        Some(e) if e.spam == l.spam => {
            // Nothing learnt now; the times it was learnt stay as they were.
            l.extra = Some(e.extra);
            Applied::Repeated
        }
        Some(e) => {
            t.unlearn_times(&l.tokens, !l.spam, 1 + u32::from(e.extra));
            learn_lesson(t, l);
            Applied::Switched
        }
        None => {
            learn_lesson(t, l);
            Applied::AsGiven
        }
    };
    // Learnt (again) today: among the last to be forgotten.
    seen.set(digest, seen::Entry { spam: l.spam, day: l.day, extra: l.extra.unwrap_or(0) }, max);
    applied
}

/// Learns a lesson: as many times as it says if decided (a replay), else judged now. Either
/// way the logistic regression takes one step (so a replay steps as the lesson did).
fn learn_lesson(t: &Table, l: &mut Lesson) {
    match l.extra {
        Some(n) => t.learn_lesson(&l.tokens, l.spam, 1 + u32::from(n), l.day, None, rate()),
        None => l.extra = Some(learn_reinforced(t, &l.tokens, l.spam, l.day)),
    }
}

/// The logistic regression's learning rate with the knobs in force (`bayes.lr_rate`; 0: off).
fn rate() -> f64 {
    k::BAYES_LR_RATE.get_f64()
}

/// Learns one message into `table` on `day` and, when the table misjudged it just before,
/// again while it still would (`bayes.reinforce_margin`, at most `bayes.reinforce_max` more
/// times; [`reinforce`]). Returns the times learnt beyond once. The judging reads nothing the
/// lesson did not read already; a misjudged message costs one more pass over its tokens. The
/// logistic regression takes its one step in the first pass (it corrects its own errors by the
/// size of its step, not by repetition).
pub fn learn_reinforced(table: &Table, tokens: &[u64], spam: bool, day: u16) -> u8 {
    let max = k::BAYES_REINFORCE_MAX.get_u64().min(u64::from(journal::EXTRA_MAX)) as u32;
    let params = params();
    let learned = table.learned();
    // Before the kick-in nothing is judged, so nothing is reinforced.
    if max == 0 || learned.0 < params.min_learned || learned.1 < params.min_learned {
        table.learn_lesson(tokens, spam, 1, day, None, rate());
        return 0;
    }
    BEFORE.with(|cell| {
        let mut own = Vec::new();
        let mut kept = cell.try_borrow_mut();
        let before = kept.as_deref_mut().unwrap_or(&mut own);
        before.clear();
        table.learn_lesson(tokens, spam, 1, day, Some(before), rate());
        let unseen = tokens.len() - before.len();
        let extra = reinforce::extra_lessons(before, unseen, spam, learned, &params, k::BAYES_REINFORCE_MARGIN.get_f64(), max);
        table.learn_times(tokens, spam, extra, day);
        extra as u8
    })
}

thread_local! {
    /// [`learn_reinforced`]'s buffer for the counts a lesson read (the learner thread's, reused).
    static BEFORE: std::cell::RefCell<Vec<classify::Counts>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The spam probability of a message's tokens in `table`, with the knobs in force: the
/// counts' chi-square answer joined with the logistic regression's ([`classify::fuse`]; the
/// first alone with `bayes.lr_rate` 0). `None` before the kick-in (`bayes.min_learned`) or
/// when no token's counts tell.
pub fn probability(table: &Table, tokens: &[u64]) -> Option<f64> {
    let (spam, ham) = table.learned();
    let read = table.read(tokens);
    let counts = classify::spam_probability(read.counts.into_iter(), spam, ham, &params())?;
    Some(if rate() > 0.0 { classify::fuse(counts, read.logit) } else { counts })
}

/// The classifier's parameters with the knobs in force (the kick-in, `bayes.min_learned`).
fn params() -> classify::Params {
    classify::Params { min_learned: k::BAYES_MIN_LEARNED.get_u64(), ..classify::Params::default() }
}

/// The symbol and score of a probability with the knobs in force: BAYES_SPAM at or above
/// `bayes.spam_threshold`, BAYES_HAM at or below `bayes.ham_threshold`, each scored in proportion
/// to how far past its threshold the probability is (at least a quarter of its score knob).
pub fn symbol_for(p: f64) -> Option<(&'static str, f64)> {
    let (st, ht) = (k::BAYES_SPAM_THRESHOLD.get_f64(), k::BAYES_HAM_THRESHOLD.get_f64());
    if p >= st {
        let share = if st >= 1.0 { 1.0 } else { (p - st) / (1.0 - st) };
        Some(("BAYES_SPAM", k::SCORE_BAYES_SPAM.get_f64() * share.clamp(0.25, 1.0)))
    } else if p <= ht {
        let share = if ht <= 0.0 { 1.0 } else { (ht - p) / ht };
        Some(("BAYES_HAM", k::SCORE_BAYES_HAM.get_f64() * share.clamp(0.25, 1.0)))
    } else {
        None
    }
}

static CURRENT: OnceLock<Arc<Bayes>> = OnceLock::new();

/// The gateway's table, once [`start`] ran.
pub fn current() -> Option<&'static Arc<Bayes>> {
    CURRENT.get()
}

/// Opens the gateway's table (snapshot plus journal) and starts its learner thread.
pub fn start(path: &Path, hooks: Hooks) -> Result<Opened, String> {
    let (b, opened) = Bayes::open(path, k::BAYES_MAX_TOKENS.get_usize());
    if let Err(e) = &opened {
        (hooks.error)(&format!("{e} (moved aside, starting empty)"));
    }
    b.follow_knob.store(true, Ordering::Relaxed);
    let b = Arc::new(b);
    if CURRENT.set(Arc::clone(&b)).is_err() {
        return Err("the Bayes table is already started".into());
    }
    b.start_learner(hooks)?;
    Ok(opened.unwrap_or_default())
}

/// Saves the gateway's table now if it changed (at shutdown).
pub fn save_now() -> std::io::Result<Option<usize>> {
    match current() {
        Some(b) => b.save(),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mxg-bayes-lib-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const QUIET: Hooks = Hooks { error: |e| panic!("{e}"), synced: |_| {}, evicted: |_, _| {} };

    #[test]
    fn offline_learning_snapshots_and_replays_the_journal() {
        let d = dir("offline");
        let path = d.join("bayes.db");
        let (b, o) = Bayes::open(&path, 1000);
        assert_eq!(o.unwrap(), Opened::default());
        b.learn(&[1, 2], true);
        assert_eq!(b.save().unwrap(), Some(2));
        assert_eq!(b.save().unwrap(), None, "nothing new");
        // A live learner journals; a crash (no snapshot) keeps what the journal holds.
        let b = Arc::new(Bayes::open(&path, 1000).0);
        b.start_learner(QUIET).unwrap();
        b.learn(&[2, 3], false);
        b.teach(&[1, 2], true, true, true);
        b.flush().unwrap();
        assert_eq!(b.learned(), (0, 1));
        let (again, o) = Bayes::open_read_only(&path, 1000).unwrap();
        assert_eq!(o, Opened { tokens: 2, replayed: 2, torn: 0 });
        assert_eq!(again.learned(), (0, 1));
        assert_eq!(again.table().get(2), classify::Counts { spam: 0, ham: 1 });
        // Stopping writes a snapshot of the next generation and empties the journal.
        assert_eq!(b.stop_learner().unwrap(), Some(3), "three tokens, one unlearnt to zero counts");
        let (again, o) = Bayes::open_read_only(&path, 1000).unwrap();
        assert_eq!(o.replayed, 0);
        assert_eq!(again.table().get(3), classify::Counts { spam: 0, ham: 1 });
        assert_eq!(again.generation.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_message_counts_once_and_learnt_the_other_way_switches_sides() {
        let (t, mut seen) = (Table::new(1000), Seen::default());
        let lesson = |tokens: &[u64], spam: bool, unlearn: bool| Lesson { tokens: tokens.to_vec(), spam, unlearn, day: 9, extra: None };
        let counts = |t: &Table| (t.learned(), t.get(1));
        let c = |spam, ham| classify::Counts { spam, ham };
        assert_eq!(apply_within(&t, &mut seen, &mut lesson(&[1, 2], true, false), 10), Applied::AsGiven);
        assert_eq!(apply_within(&t, &mut seen, &mut lesson(&[2, 1], true, false), 10), Applied::Repeated);
        assert_eq!(counts(&t), ((1, 0), c(1, 0)), "the same message (in any token order) learnt once");
        // Released as a false positive: ham, and no longer spam.
        assert_eq!(apply_within(&t, &mut seen, &mut lesson(&[1, 2], false, false), 10), Applied::Switched);
        assert_eq!(counts(&t), ((0, 1), c(0, 1)));
        // Taking back what it is not learnt as does nothing; what it is, does.
        assert_eq!(apply_within(&t, &mut seen, &mut lesson(&[1, 2], true, true), 10), Applied::Nothing);
        assert_eq!(counts(&t), ((0, 1), c(0, 1)));
        apply_within(&t, &mut seen, &mut lesson(&[1, 2], false, true), 10);
        assert_eq!((counts(&t), seen.len()), (((0, 0), c(0, 0)), 0));
        // Another message sharing tokens is its own.
        apply_within(&t, &mut seen, &mut lesson(&[1, 2], true, false), 10);
        apply_within(&t, &mut seen, &mut lesson(&[1, 3], true, false), 10);
        assert_eq!(counts(&t), ((2, 0), c(2, 0)));
        // Off (bayes.seen_max 0): every lesson as given.
        let (t, mut none) = (Table::new(1000), Seen::default());
        apply_within(&t, &mut none, &mut lesson(&[1, 2], true, false), 0);
        apply_within(&t, &mut none, &mut lesson(&[1, 2], true, false), 0);
        apply_within(&t, &mut none, &mut lesson(&[1, 2], false, false), 0);
        assert_eq!((counts(&t), none.len()), (((2, 1), c(2, 1)), 0));
    }

    #[test]
    fn what_a_message_was_learnt_as_survives_snapshots_journals_and_crashes() {
        let d = dir("seen");
        let path = d.join("bayes.db");
        // Learnt as spam, then a snapshot.
        let b = Arc::new(Bayes::open(&path, 1000).0);
        b.start_learner(QUIET).unwrap();
        b.teach(&[7, 8, 9], true, false, true);
        b.stop_learner().unwrap();
        // After a restart: learnt as ham (a release), journalled, then a crash (no snapshot).
        let b = Arc::new(Bayes::open(&path, 1000).0);
        assert_eq!(b.seen().len(), 1, "remembered from the snapshot");
        b.start_learner(QUIET).unwrap();
        b.teach(&[9, 8, 7], false, false, true);
        b.teach(&[9, 8, 7], false, false, true);
        b.flush().unwrap();
        assert_eq!(b.remembered(), (1, 1), "one moved from spam to ham, one repeated");
        assert_eq!((b.learned(), b.table().get(8)), ((0, 1), classify::Counts { spam: 0, ham: 1 }));
        let (again, o) = Bayes::open_read_only(&path, 1000).unwrap();
        assert_eq!(o.replayed, 2, "both lessons are in the journal; the second changed nothing");
        assert_eq!((again.learned(), again.table().get(8), again.seen().len()), ((0, 1), classify::Counts { spam: 0, ham: 1 }, 1));
    }

    /// 200 spam with token 5000 and 200 ham with token 6000 (each also with a token of its
    /// own): past the kick-in, 5000 says spam and 6000 says ham.
    fn kicked_in(b: &Bayes) {
        for i in 0..200u64 {
            b.teach(&[1000 + i, 5000], true, false, true);
            b.teach(&[2000 + i, 6000], false, false, true);
        }
    }

    #[test]
    fn a_misjudged_lesson_is_learnt_again_and_replayed_the_same() {
        let d = dir("reinforce");
        let path = d.join("bayes.db");
        let b = Arc::new(Bayes::open(&path, 10_000).0);
        b.start_learner(QUIET).unwrap();
        kicked_in(&b);
        b.flush().unwrap();
        assert_eq!((b.learned(), b.reinforced()), ((200, 200), 0), "before the kick-in nothing is judged");
        // Judged right: learnt once.
        b.teach(&[5000, 7000], true, false, true);
        // Ham-looking, learnt as spam (a missed spam reported): misjudged, and still after one
        // more lesson, so learnt three times (bayes.reinforce_max 2).
        b.teach(&[6000, 6001], true, false, true);
        b.flush().unwrap();
        assert_eq!((b.learned(), b.reinforced()), ((204, 200), 1));
        // The same kind of message from the gateway's own verdict (auto-learn): learnt once.
        b.learn(&[6000, 6003], true);
        b.flush().unwrap();
        assert_eq!((b.learned(), b.reinforced(), b.table().get(6003)), ((205, 200), 1, classify::Counts { spam: 1, ham: 0 }));
        // Reported again: a repeat, nothing learnt and nothing reinforced.
        b.teach(&[6001, 6000], true, false, true);
        b.flush().unwrap();
        assert_eq!((b.learned(), b.reinforced(), b.remembered()), ((205, 200), 1, (1, 0)));
        assert_eq!((b.table().get(7000), b.table().get(6001)), (classify::Counts { spam: 1, ham: 0 }, classify::Counts { spam: 3, ham: 0 }));
        assert_eq!(b.learnt_as(&[6000, 6001]).map(|e| e.extra), Some(2));
        // The journal carries the decision: a replay learns the same without judging again.
        let (again, o) = Bayes::open_read_only(&path, 10_000).unwrap();
        assert_eq!(o.replayed, 404);
        assert_eq!((again.learned(), again.table().get(6001), again.reinforced()), ((205, 200), classify::Counts { spam: 3, ham: 0 }, 0));
        // The regression's steps replay bit for bit (one step a lesson, reinforced or not).
        let weights = |t: &Table| {
            let mut w: Vec<(u64, u32)> = t.entries().map(|e| (e.token, e.weight.to_bits())).collect();
            w.sort_unstable();
            w
        };
        assert_eq!(weights(&again.table()), weights(&b.table()));
        assert!(b.table().weight(1000) > 0.0 && b.table().weight(2000) < 0.0, "spam's tokens weigh for spam, ham's against");
        // Reported back as ham: every time it was learnt as spam is taken back, and as ham the
        // table (token 6000) judges it right, so it is learnt once.
        b.teach(&[6001, 6000], false, false, true);
        b.flush().unwrap();
        assert_eq!((b.learned(), b.table().get(6001)), ((202, 201), classify::Counts { spam: 0, ham: 1 }));
        // And the snapshot keeps how many times.
        b.teach(&[6000, 6002], true, false, true);
        b.stop_learner().unwrap();
        let (again, _) = Bayes::open_read_only(&path, 10_000).unwrap();
        assert_eq!(again.learnt_as(&[6000, 6002]).map(|e| (e.spam, e.extra)), Some((true, 2)));
        again.teach(&[6000, 6002], true, true, true);
        assert_eq!((again.learned(), again.table().get(6002)), ((202, 201), classify::Counts { spam: 0, ham: 0 }), "taken back three times");
    }

    #[test]
    fn a_crash_between_snapshot_and_new_journal_applies_nothing_twice() {
        let d = dir("between");
        let path = d.join("bayes.db");
        let (b, _) = Bayes::open(&path, 1000);
        b.learn(&[5], true);
        b.save().unwrap(); // generation 1, empty journal of 1
        let b = Arc::new(Bayes::open(&path, 1000).0);
        b.start_learner(QUIET).unwrap();
        b.learn(&[6], true);
        b.flush().unwrap(); // journal of 1 holds [6]
        // The snapshot of generation 2 lands, the crash comes before its fresh journal.
        store::save(&b.table(), &b.seen(), &path, 2).unwrap();
        let (again, o) = Bayes::open_read_only(&path, 1000).unwrap();
        assert_eq!(o.replayed, 0, "the generation-1 journal is already in the snapshot");
        assert_eq!(again.learned(), (2, 0));
        assert_eq!(again.table().get(6).spam, 1);
    }

    #[test]
    fn eviction_keeps_the_recently_learnt_within_the_budget() {
        let t = Table::new(10_000);
        for i in 0..1000u64 {
            t.learn_on(&[i + 1], i % 2 == 0, (i / 100) as u16);
        }
        t.learn_on(&[1], true, 3); // token 1 learnt again on day 3, from two messages
        let c = t.rebuilt(10_000, 300, 2);
        assert_eq!(c.len(), 300);
        assert_eq!(c.learned(), t.learned());
        for i in 700..1000u64 {
            assert_eq!(c.get(i + 1), t.get(i + 1), "the newest 300 are kept");
        }
        assert_eq!(c.get(1), classify::Counts::default(), "day 3 is older than days 7-9");
        let c = t.rebuilt(10_000, 10_000, 5);
        assert_eq!(c.len(), 500, "days 5-9 only");
        assert_eq!(t.rebuilt(10_000, 10_000, 0).get(1).spam, 2);
    }

    #[test]
    fn the_learner_evicts_as_the_table_fills_and_readers_keep_reading() {
        use std::sync::atomic::AtomicUsize;
        static EVICTIONS: AtomicUsize = AtomicUsize::new(0);
        let d = dir("evict");
        let path = d.join("bayes.db");
        let b = Arc::new(Bayes::open(&path, 2000).0);
        b.start_learner(Hooks { evicted: |_, _| {
            EVICTIONS.fetch_add(1, Ordering::Relaxed);
        }, ..QUIET }).unwrap();
        let reader = {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while b.learned().0 < 60 {
                    reads += (0..200u64).map(|t| u64::from(b.table().get(t).spam)).sum::<u64>();
                }
                reads
            })
        };
        for m in 0..60u64 {
            b.teach(&(m * 100..m * 100 + 100).collect::<Vec<u64>>(), true, false, true);
        }
        b.flush().unwrap();
        reader.join().unwrap();
        let t = b.table();
        assert!(EVICTIONS.load(Ordering::Relaxed) >= 1);
        assert!(t.len() < 1800 && t.dropped() == 0, "held {} dropped {}", t.len(), t.dropped());
        assert_eq!(t.learned(), (60, 0));
        // All learnt today: the tokens seen in more messages go last (0 is read as 1: two).
        assert_eq!(t.get(1).spam, 2, "the most-learnt token is kept");
        let kept = (2..6000u64).filter(|x| t.get(*x).spam == 1).count();
        assert_eq!(kept + 1, t.len());
        drop(t);
        b.stop_learner().unwrap();
        let (again, _) = Bayes::open_read_only(&path, 2000).unwrap();
        assert_eq!(again.table().len(), b.table().len(), "the evicted table is what was saved");
    }
}
