//! The gateway's side of Bayes: the table opened at start-up and saved at shutdown, every
//! scanned message classified (BAYES_SPAM / BAYES_HAM, scored in proportion to how far past its
//! threshold the probability is), and `mxguard learn` — into the running gateway through the
//! admin socket, or straight into the table file when no gateway runs.
//!
//! Classification is a table read per token (lock-free, on the core that scanned); learning from
//! files reads and parses them on the admin thread or in the `mxguard learn` process, never on a
//! core.

use std::io::Write;
use std::path::PathBuf;

use mxguard_bayes::Bayes;
use mxguard_scan::{Found, Report};
use mxguard_telemetry::Event;
use mxguard_tuning as k;
use mxguard_verdict::Symbol;

use crate::in_state_dir;

fn table_file() -> PathBuf {
    in_state_dir(&k::BAYES_FILE.get_str())
}

/// Opens the table and replays its journal (the gateway's start-up).
pub fn start() -> Result<(), String> {
    if !k::BAYES_ENABLED.get_bool() {
        return Ok(());
    }
    let file = table_file();
    let hooks = mxguard_bayes::Hooks {
        error: |e| Event::new("bayes_error").str("error", e).emit(),
        synced: publish,
        evicted: |kept, dropped| Event::new("bayes_evicted").num("kept", kept as u64).num("dropped", dropped as u64).emit(),
    };
    let opened = mxguard_bayes::start(&file, hooks)?;
    let (spam, ham) = mxguard_bayes::current().map(|b| b.learned()).unwrap_or((0, 0));
    if let Some(b) = mxguard_bayes::current() {
        publish(&b.table());
    }
    Event::new("bayes_loaded")
        .num("tokens", opened.tokens as u64)
        .num("replayed", opened.replayed)
        .num("torn_bytes", opened.torn)
        .num("spam", spam)
        .num("ham", ham)
        .str("file", &file.display().to_string())
        .emit();
    Ok(())
}

/// Publishes the table's state as metrics (the learner thread calls it after each sync).
fn publish(t: &mxguard_bayes::table::Table) {
    let m = &mxguard_telemetry::METRICS;
    let (spam, ham) = t.learned();
    m.bayes_tokens.set(t.len() as i64);
    m.bayes_spam_learned.set(spam as i64);
    m.bayes_ham_learned.set(ham as i64);
    m.bayes_dropped.set(t.dropped() as i64);
    if let Some(b) = mxguard_bayes::current() {
        m.bayes_lessons_lost.set(b.lost() as i64);
        let (repeated, switched) = b.remembered();
        m.bayes_lessons_repeated.set(repeated as i64);
        m.bayes_lessons_switched.set(switched as i64);
        m.bayes_lessons_reinforced.set(b.reinforced() as i64);
    }
}

/// Saves the table if it changed (the gateway's shutdown).
pub fn stop() {
    match mxguard_bayes::save_now() {
        Ok(Some(n)) => Event::new("bayes_saved").num("tokens", n as u64).emit(),
        Ok(None) => {}
        Err(e) => Event::new("bayes_error").str("error", &e.to_string()).emit(),
    }
}

/// Whether scans should produce tokens.
pub fn wanted() -> bool {
    k::BAYES_ENABLED.get_bool() && mxguard_bayes::current().is_some()
}

/// Adds BAYES_SPAM or BAYES_HAM to a scan's findings; the spam probability (`None`: no answer).
pub fn classify(report: &mut Report) -> Option<f64> {
    let b = mxguard_bayes::current().filter(|_| k::BAYES_ENABLED.get_bool())?;
    if report.tokens.is_empty() {
        return None;
    }
    let p = mxguard_bayes::probability(&b.table(), &report.tokens)?;
    if let Some(f) = finding(p, report.tokens.len()) {
        if f.symbol.name == "BAYES_SPAM" {
            mxguard_telemetry::METRICS.bayes_spam.inc();
        } else {
            mxguard_telemetry::METRICS.bayes_ham.inc();
        }
        report.found.push(f);
    }
    Some(p)
}

/// The BAYES_SPAM or BAYES_HAM finding for a probability, with the knobs in force.
pub fn finding(p: f64, tokens: usize) -> Option<Found> {
    let (name, score) = mxguard_bayes::symbol_for(p)?;
    Some(Found { check: "bayes", symbol: Symbol { name: name.into(), score, reason: format!("Bayes spam probability {p:.4} over {tokens} tokens") } })
}

/// Whether `rcpt` is a report address: `Some(true)` spam, `Some(false)` ham.
pub fn report_kind(rcpt: &str) -> Option<bool> {
    let is = |knob: &k::Knob| {
        let a = knob.get_str();
        !a.is_empty() && a.trim().eq_ignore_ascii_case(rcpt)
    };
    if is(&k::BAYES_REPORT_SPAM_ADDRESS) {
        Some(true)
    } else if is(&k::BAYES_REPORT_HAM_ADDRESS) {
        Some(false)
    } else {
        None
    }
}

/// Learns a report (mail sent to a report address): each message attached as message/rfc822,
/// or the mail itself when none is, taught to Bayes and recorded as a lesson of the learned
/// weights. Returns how many messages were learnt (0 when Bayes is off).
pub fn learn_report(raw: &[u8], spam: bool) -> usize {
    let Some(b) = mxguard_bayes::current() else { return 0 };
    let outer = mxguard_scan::parse(raw);
    let attached = outer.attached_messages();
    let messages: Vec<&[u8]> = if attached.is_empty() { vec![raw] } else { attached };
    // On a blocking thread: waiting for room in the learner's queue is allowed here.
    for m in &messages {
        if let Err(e) = mxguard_bayes::weighted::teach_labelled(Some(b), m, spam, true) {
            Event::new("weights_error").str("error", &e).emit();
        }
    }
    let n = messages.len();
    // The reporter hears "learnt" once it is in the table and the journal.
    if let Err(e) = b.flush() {
        Event::new("bayes_error").str("error", &format!("the Bayes journal: {e}")).emit();
    }
    n
}

/// Learns a message from the gateway's own verdicts (`bayes.autolearn`): a honeypot hit or a
/// score at or above `bayes.autolearn_spam_score` for every recipient as spam, at or below
/// `bayes.autolearn_ham_score` for every recipient as ham; Bayes's own symbols never count (it
/// would teach itself its mistakes) and viruses are not learnt (they are not spam text).
pub fn auto_learn(report: &Report, verdicts: &[crate::screen::RcptVerdict]) {
    let Some(b) = mxguard_bayes::current() else { return };
    if !k::BAYES_ENABLED.get_bool() || !k::BAYES_AUTOLEARN.get_bool() || report.tokens.is_empty() || verdicts.is_empty() {
        return;
    }
    let has = |prefix: &str| verdicts.iter().any(|v| v.verdict.symbols().iter().any(|s| s.name.starts_with(prefix)));
    if has("CLAMAV_") {
        return;
    }
    // The learned model's constant part is left out with Bayes: the thresholds are hand-set sums.
    let (low, high) = crate::traffic::score_range(verdicts, &["BAYES_", "LEARNED_BASE"]);
    let (spam, why) = if report.honeypot || has("HONEYPOT") {
        (true, "honeypot")
    } else if low >= k::BAYES_AUTOLEARN_SPAM_SCORE.get_f64() {
        (true, "score")
    } else if high <= k::BAYES_AUTOLEARN_HAM_SCORE.get_f64() {
        (false, "score")
    } else {
        return;
    };
    // Queued for the learner thread (never waits on a core; a full queue drops it, counted).
    b.learn(&report.tokens, spam);
    Event::new("bayes_autolearn")
        .str("as", if spam { "spam" } else { "ham" })
        .str("why", why)
        .str("score", &mxguard_verdict::fmt_score(if spam { low } else { high }))
        .emit();
}

/// Learns every message under `paths` into `b` (waiting for room in the learner's queue, so
/// never on a core), a message in memory at a time ([`crate::mailfiles`]);
/// `progress(messages, bytes read, bytes in all)` after each one. Files are read, parsed and
/// tokenized on a thread of their own, a few hundred messages ahead of the lessons, which are
/// given in the files' order: offline, where this thread applies the lessons itself, the two
/// halves run on two cores (in the gateway the learner thread applies them anyway).
pub fn learn_paths(b: &Bayes, paths: &[PathBuf], spam: bool, mut progress: impl FnMut(usize, u64, u64)) -> Result<usize, String> {
    let mut files = Vec::new();
    for p in paths {
        crate::mailfiles::files(p, &mut files)?;
    }
    let total: u64 = files.iter().map(|f| f.1).sum();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<((Vec<(String, f64)>, Vec<u64>), u64)>(256);
        // The reading thread is made by this one, so it keeps this one's CPU priority (the admin
        // socket's learning runs at the lowest).
        let reader = scope.spawn(move || -> Result<(), String> {
            let mut before = 0u64;
            for (f, size) in files {
                crate::mailfiles::each_message(&f, &mut |raw, read| {
                    // Its content symbols and tokens from one scan (the lesson of the weights).
                    let features = mxguard_bayes::weighted::features(&mxguard_smtp::stuff::to_crlf(raw));
                    tx.send((features, (before + read).min(total))).is_ok()
                })?;
                before += size;
            }
            Ok(())
        });
        let mut n = 0usize;
        for ((symbols, tokens), read) in rx {
            mxguard_bayes::weighted::teach_features(Some(b), symbols, &tokens, spam, true)?;
            n += 1;
            progress(n, read, total);
        }
        reader.join().map_err(|_| "the thread reading the messages failed".to_string())??;
        Ok(n)
    })
}

/// The admin socket's `learn spam|ham PATH<TAB>PATH...`: learns into the running gateway.
pub fn admin_learn(rest: &str) -> Result<String, String> {
    let (kind, paths) = rest.split_once(' ').ok_or("learn spam|ham PATH...")?;
    let spam = match kind {
        "spam" => true,
        "ham" => false,
        _ => return Err("learn spam|ham PATH...".into()),
    };
    let b = mxguard_bayes::current().ok_or("Bayes is off (bayes.enabled = 0 at start-up)")?;
    let paths: Vec<PathBuf> = paths.split('\t').filter(|p| !p.is_empty()).map(PathBuf::from).collect();
    // Reading and parsing a corpus is bulk work: it runs at the lowest CPU priority so that the
    // cores carrying mail keep their time (measured in benches/learning_load.py).
    let _low = LowPriority::enter();
    let before = lesson_counters(b);
    let n = learn_paths(b, &paths, spam, |_, _, _| {})?;
    // Answer once it is all learnt and in the journal.
    b.flush().map_err(|e| format!("the Bayes journal: {e}"))?;
    // The weights are fitted again with every lesson of this run.
    mxguard_bayes::weighted::fit_in_background();
    let (s, h) = b.learned();
    let note = remembered_note(before, lesson_counters(b));
    Event::new("bayes_learned").str("as", kind).num("messages", n as u64).num("spam", s).num("ham", h).emit();
    Ok(format!("learnt {n} messages as {kind}{note}; the table holds {s} spam and {h} ham"))
}

/// The lessons since start that were repeats, switches and reinforced ([`remembered_note`]).
fn lesson_counters(b: &Bayes) -> (u64, u64, u64) {
    let (repeated, switched) = b.remembered();
    (repeated, switched, b.reinforced())
}

/// What the remembered messages and the reinforcement changed while learning (counted over the
/// whole table: lessons auto-learnt meanwhile count too), for the learn commands' answer; empty
/// when nothing.
fn remembered_note(before: (u64, u64, u64), after: (u64, u64, u64)) -> String {
    let (repeated, switched, reinforced) = (after.0.saturating_sub(before.0), after.1.saturating_sub(before.1), after.2.saturating_sub(before.2));
    let mut parts = Vec::new();
    if repeated > 0 {
        parts.push(format!("{repeated} learnt so already"));
    }
    if switched > 0 {
        parts.push(format!("{switched} moved from the other side"));
    }
    if reinforced > 0 {
        parts.push(format!("{reinforced} misjudged, learnt more than once"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// The calling thread at nice 19 until dropped (Linux: a thread's own priority).
struct LowPriority(libc::c_int);

impl LowPriority {
    fn enter() -> LowPriority {
        // SAFETY: plain system calls on the calling thread's id; failures leave it as it was.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            let was = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, 19);
            LowPriority(was)
        }
    }
}

impl Drop for LowPriority {
    fn drop(&mut self) {
        // SAFETY: as in enter. Raising it back may need CAP_SYS_NICE; without it the admin
        // thread simply stays low, which only slows later admin commands.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, self.0);
        }
    }
}

/// `mxguard learn --spam|--ham PATH...`
pub fn learn_command(args: Vec<String>) -> Result<(), String> {
    let mut spam = None;
    let mut paths = Vec::new();
    for a in args {
        match a.as_str() {
            "--spam" => spam = Some(true),
            "--ham" => spam = Some(false),
            _ => paths.push(PathBuf::from(a)),
        }
    }
    let (Some(spam), false) = (spam, paths.is_empty()) else {
        return Err("usage: mxguard learn --spam|--ham FILE|DIR|MBOX...".into());
    };
    let kind = if spam { "spam" } else { "ham" };
    let absolute: Vec<String> = paths.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()).display().to_string()).collect();
    let socket = in_state_dir(&k::ADMIN_SOCKET.get_str());
    // A running gateway owns the table file: learn through it.
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        for line in crate::admin::request(&socket, &format!("learn {kind} {}", absolute.join("\t")))? {
            println!("{line}");
        }
        return Ok(());
    }
    let file = table_file();
    // The content symbols of each lesson as the gateway would find them: its list files in force.
    let lists = in_state_dir(&k::LISTS_DIR.get_str());
    if lists.is_dir() {
        mxguard_scan::reload(&lists).map_err(|e| e.join("\n"))?;
    }
    let (weights_lessons, weights_model) = (in_state_dir(&k::WEIGHTS_LESSONS_FILE.get_str()), in_state_dir(&k::WEIGHTS_MODEL_FILE.get_str()));
    mxguard_bayes::weighted::open(&weights_lessons, &weights_model)?;
    let (b, loaded) = Bayes::open(&file, k::BAYES_MAX_TOKENS.get_usize());
    loaded.map_err(|e| format!("{e} (moved aside; not learning into an empty table by surprise: run again to start afresh)"))?;
    let mut err = std::io::stderr();
    let before = lesson_counters(&b);
    // The bar moves with the bytes read (the files' sizes are known before the first message;
    // how many messages an mbox holds is not). Drawn only on a terminal: a script or cron job
    // gets the summary line alone, not a log of redrawn bars.
    let tty = std::io::IsTerminal::is_terminal(&err);
    let bar = |err: &mut std::io::Stderr, done: usize, read: u64, total: u64| {
        if !tty {
            return;
        }
        let width = 30u64;
        let filled = (read * width).checked_div(total).unwrap_or(width) as usize;
        let pct = (read * 100).checked_div(total).unwrap_or(100);
        let _ = write!(err, "\r[{}{}] {done} {kind}, {pct} %", "#".repeat(filled), " ".repeat(width as usize - filled));
    };
    let mut all = 0u64;
    let n = learn_paths(&b, &paths, spam, |done, read, total| {
        all = total;
        if done % 100 == 0 {
            bar(&mut err, done, read, total);
        }
    })?;
    bar(&mut err, n, all, all);
    if tty {
        let _ = writeln!(err);
    }
    b.save().map_err(|e| format!("{}: {e}", file.display()))?;
    let (s, h) = b.learned();
    let note = remembered_note(before, lesson_counters(&b));
    println!("learnt {n} messages as {kind}{note} into {}; it holds {s} spam and {h} ham", file.display());
    match mxguard_bayes::weighted::fit_now()? {
        mxguard_bayes::weighted::Fitted::Model(m) => println!(
            "learned weights fitted on {} spam and {} ham lessons ({}; mxguard weights shows them)",
            m.spam,
            m.ham,
            if mxguard_bayes::weighted::usable(&m) { "in force" } else { "not in force yet: weights.min_lessons" }
        ),
        mxguard_bayes::weighted::Fitted::NotYet { spam, ham } => println!("learned weights: not fitted yet ({spam} spam and {ham} ham lessons kept)"),
    }
    Ok(())
}
