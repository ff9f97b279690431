//! The lessons the learned symbol weights are fitted on, and the model fitted from them, for this
//! process (the arithmetic is mxguard-weights').
//!
//! Every message a person labelled — `mxguard learn`, a report address, a quarantine release or
//! report-spam — is recorded with its content symbols (each with its hand-set points) and Bayes'
//! spam probability judged just before the message was learnt: one line a lesson, appended to
//! `weights.lessons_file`. Auto-learnt mail is never recorded: the model would learn its own
//! verdicts back. The newest `weights.lessons_max` are kept; the file is rewritten without the
//! older ones once it holds twice that. After `weights.refit_lessons` new lessons a fit runs on a
//! thread of its own at the lowest CPU priority; the model is published through an [`ArcSwap`]
//! (the cores load it without a lock) and written to `weights.model_file` atomically, where
//! `mxguard weights` and `mxguard explain` read it.
//!
//! A lesson line: `S` or `H`, Bayes' probability or `-` (no answer), then `NAME=POINTS` for each
//! symbol, space-separated. A line that does not read so is skipped and counted, never fatal.
//!
//! Never on a core's path but [`in_force`] (an atomic load and two knob reads); never decides an
//! action.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use arc_swap::ArcSwapOption;
use mxguard_tuning as k;
use mxguard_weights::{Lesson, Model, Settings};

/// The process's lessons and model.
pub struct Weighted {
    lessons_path: PathBuf,
    model_path: PathBuf,
    store: Mutex<Store>,
    model: ArcSwapOption<Model>,
    /// Held through a whole fit: one fit at a time writes the model file and publishes, in the
    /// order of the lessons they saw.
    fit_lock: Mutex<()>,
    /// A background fit thread is running.
    fitting: AtomicBool,
    /// A fit was asked for since the running one took its lessons.
    again: AtomicBool,
}

struct Store {
    kept: VecDeque<Lesson>,
    new_since_fit: usize,
    /// Lines in the file (kept lessons plus those past the limit not yet rewritten away).
    lines: usize,
}

/// What [`open`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    pub spam: u64,
    pub ham: u64,
    /// Lines that did not read as a lesson.
    pub bad_lines: u64,
    pub model: bool,
}

static WEIGHTED: OnceLock<Weighted> = OnceLock::new();

/// A lesson as its line (no newline).
pub fn encode(l: &Lesson) -> String {
    let mut s = String::with_capacity(16 + 24 * l.symbols.len());
    s.push(if l.spam { 'S' } else { 'H' });
    s.push(' ');
    match l.bayes {
        Some(p) => s.push_str(&format!("{p}")),
        None => s.push('-'),
    }
    for (name, points) in &l.symbols {
        s.push_str(&format!(" {name}={points}"));
    }
    s
}

/// A lesson from its line; `None` when it does not read as one.
pub fn decode(line: &str) -> Option<Lesson> {
    let mut f = line.split(' ');
    let spam = match f.next()? {
        "S" => true,
        "H" => false,
        _ => return None,
    };
    let bayes = match f.next()? {
        "-" => None,
        p => Some(p.parse::<f64>().ok().filter(|p| (0.0..=1.0).contains(p))?),
    };
    let mut symbols = Vec::new();
    for item in f {
        let (name, points) = item.split_once('=')?;
        let points = points.parse::<f64>().ok().filter(|p| p.is_finite())?;
        if name.is_empty() {
            return None;
        }
        symbols.push((name.to_string(), points));
    }
    Some(Lesson { spam, bayes, symbols })
}

/// Whether `name` keeps its hand-set score (`weights.pinned`: names, `PREFIX_*` for a prefix).
pub fn pinned(name: &str) -> bool {
    k::WEIGHTS_PINNED.get_str().split(',').map(str::trim).filter(|p| !p.is_empty()).any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == p,
    })
}

/// The model inputs among a scan's findings: every content symbol but Bayes' own and the pinned
/// ones, with its hand-set points.
pub fn inputs(found: &[mxguard_scan::Found]) -> Vec<(String, f64)> {
    found
        .iter()
        .filter(|f| f.check != "bayes" && !pinned(&f.symbol.name))
        .map(|f| (f.symbol.name.clone(), f.symbol.score))
        .collect()
}

/// A message as a labelled lesson: one scan with the tables in force gives its content symbols
/// ([`inputs`]) and its Bayes tokens. Cost: a content scan (about 0.2 ms for common mail).
pub fn features(raw: &[u8]) -> (Vec<(String, f64)>, Vec<u64>) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let r = mxguard_scan::scan_with(raw, &mxguard_scan::current(), now, true);
    (inputs(&r.found), r.tokens)
}

/// A message a person labelled: taught to `bayes` (when on) and recorded as a lesson of the
/// weights with Bayes' judgement just before (`wait`: as [`crate::Bayes::teach`]). Whether
/// Bayes was taught; a lesson that could not be written is reported through the error.
pub fn teach_labelled(bayes: Option<&crate::Bayes>, raw: &[u8], spam: bool, wait: bool) -> Result<bool, String> {
    let (symbols, tokens) = features(raw);
    teach_features(bayes, symbols, &tokens, spam, wait)
}

/// [`teach_labelled`] of a message already scanned ([`features`]: `symbols` and `tokens`).
pub fn teach_features(bayes: Option<&crate::Bayes>, symbols: Vec<(String, f64)>, tokens: &[u64], spam: bool, wait: bool) -> Result<bool, String> {
    let judged = bayes.and_then(|b| crate::probability(&b.table(), tokens));
    if let Some(b) = bayes {
        b.teach(tokens, spam, false, wait);
    }
    record(spam, judged, symbols)?;
    Ok(bayes.is_some())
}

/// The fit's settings with the knobs in force: the thresholds the scale is anchored to, and
/// Bayes' hand-set weight (`score.bayes_spam` over the log-odds it is reached at).
pub fn settings() -> Option<Settings> {
    Settings::new(
        k::VERDICT_TAG_SCORE.get_f64(),
        k::VERDICT_QUARANTINE_SCORE.get_f64(),
        k::SCORE_BAYES_SPAM.get_f64() / mxguard_weights::BAYES_CLAMP,
    )
}

/// Reads a model file; `Ok(None)` when there is none.
pub fn read_model(path: &Path) -> Result<Option<Model>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Model::from_text(&text).map(Some).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The lessons a lessons file keeps (the newest `weights.lessons_max`), what they hold (the
/// model left unset), and the file's lines; all empty when there is no file.
pub fn read_lessons(path: &Path) -> Result<(VecDeque<Lesson>, Loaded, usize), String> {
    let max = k::WEIGHTS_LESSONS_MAX.get_usize();
    let mut kept = VecDeque::new();
    let mut loaded = Loaded::default();
    let mut lines = 0;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            for line in text.lines() {
                lines += 1;
                match decode(line) {
                    Some(l) => {
                        kept.push_back(l);
                        if kept.len() > max {
                            kept.pop_front();
                        }
                    }
                    None => loaded.bad_lines += 1,
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    loaded.spam = kept.iter().filter(|l| l.spam).count() as u64;
    loaded.ham = kept.len() as u64 - loaded.spam;
    Ok((kept, loaded, lines))
}

/// Opens the process's lessons and model (the gateway's start-up, `mxguard learn`). A second
/// call is refused.
pub fn open(lessons: &Path, model: &Path) -> Result<Loaded, String> {
    let (kept, mut loaded, lines) = read_lessons(lessons)?;
    // A model file that does not read is left for the next fit to replace.
    let fitted = read_model(model).ok().flatten();
    loaded.model = fitted.is_some();
    let w = Weighted {
        lessons_path: lessons.to_path_buf(),
        model_path: model.to_path_buf(),
        store: Mutex::new(Store { kept, new_since_fit: 0, lines }),
        model: ArcSwapOption::from(fitted.map(Arc::new)),
        fit_lock: Mutex::new(()),
        fitting: AtomicBool::new(false),
        again: AtomicBool::new(false),
    };
    WEIGHTED.set(w).map_err(|_| "the learned weights are already open".to_string())?;
    Ok(loaded)
}

fn lock(w: &Weighted) -> MutexGuard<'_, Store> {
    // A panic while holding it (none is expected: no unwrap inside) leaves a usable store.
    w.store.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a lesson (nothing when [`open`] was not called). Starts a fit in the background once
/// `weights.refit_lessons` new lessons were recorded since the last one.
pub fn record(spam: bool, bayes: Option<f64>, symbols: Vec<(String, f64)>) -> Result<(), String> {
    let Some(w) = WEIGHTED.get() else { return Ok(()) };
    let lesson = Lesson { spam, bayes, symbols };
    let refit = {
        let mut s = lock(w);
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&w.lessons_path).map_err(|e| format!("{}: {e}", w.lessons_path.display()))?;
        file.write_all(format!("{}\n", encode(&lesson)).as_bytes()).map_err(|e| format!("{}: {e}", w.lessons_path.display()))?;
        s.lines += 1;
        s.kept.push_back(lesson);
        let max = k::WEIGHTS_LESSONS_MAX.get_usize();
        while s.kept.len() > max {
            s.kept.pop_front();
        }
        if s.lines >= 2 * max {
            rewrite(&w.lessons_path, &s.kept)?;
            s.lines = s.kept.len();
        }
        s.new_since_fit += 1;
        s.new_since_fit >= k::WEIGHTS_REFIT_LESSONS.get_usize()
    };
    if refit {
        fit_in_background();
    }
    Ok(())
}

/// Writes `kept` as the whole lessons file (a temporary file renamed over it).
fn rewrite(path: &Path, kept: &VecDeque<Lesson>) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let mut text = String::new();
    for l in kept {
        text.push_str(&encode(l));
        text.push('\n');
    }
    std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| format!("{}: {e}", path.display()))
}

/// What a fit did.
#[derive(Debug, Clone)]
pub enum Fitted {
    /// A new model, published and written.
    Model(Arc<Model>),
    /// The lessons hold no spam or no ham yet.
    NotYet { spam: u64, ham: u64 },
}

/// Fits the weights to the kept lessons now, on this thread; publishes and writes the model.
pub fn fit_now() -> Result<Fitted, String> {
    let w = WEIGHTED.get().ok_or("the learned weights are not open")?;
    let _one = w.fit_lock.lock().unwrap_or_else(|e| e.into_inner());
    let lessons: Vec<Lesson> = {
        let mut s = lock(w);
        s.new_since_fit = 0;
        s.kept.iter().cloned().collect()
    };
    let spam = lessons.iter().filter(|l| l.spam).count() as u64;
    let ham = lessons.len() as u64 - spam;
    let settings = settings().ok_or("verdict.tag_score must be below verdict.quarantine_score")?;
    let Some(model) = Model::fit(&lessons, &settings) else { return Ok(Fitted::NotYet { spam, ham }) };
    let tmp = w.model_path.with_extension("tmp");
    std::fs::write(&tmp, model.to_text()).and_then(|_| std::fs::rename(&tmp, &w.model_path)).map_err(|e| format!("{}: {e}", w.model_path.display()))?;
    let model = Arc::new(model);
    w.model.store(Some(Arc::clone(&model)));
    Ok(Fitted::Model(model))
}

/// Where a background fit reports (the gateway logs it).
static REPORT: OnceLock<fn(&Result<Fitted, String>)> = OnceLock::new();

/// Sets what hears of each background fit's outcome (once).
pub fn on_fit(report: fn(&Result<Fitted, String>)) {
    let _ = REPORT.set(report);
}

/// Starts a fit on a thread of its own at the lowest CPU priority; while one runs, that thread
/// fits once more when it is done (so the last lessons are never left out).
pub fn fit_in_background() {
    let Some(w) = WEIGHTED.get() else { return };
    w.again.store(true, Ordering::Release);
    if w.fitting.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new().name("weights-fit".into()).spawn(move || {
        // SAFETY: a plain system call on this thread's own id; a failure leaves its priority.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 19);
        }
        loop {
            while w.again.swap(false, Ordering::AcqRel) {
                let r = fit_now();
                if let Some(report) = REPORT.get() {
                    report(&r);
                }
            }
            w.fitting.store(false, Ordering::Release);
            // Asked again between the last check and the store: go on, unless another thread
            // has taken over.
            if !w.again.load(Ordering::Acquire) || w.fitting.swap(true, Ordering::AcqRel) {
                break;
            }
        }
    });
    if spawned.is_err() {
        w.fitting.store(false, Ordering::Release);
    }
}

/// The last fitted model, whatever the lessons (for showing).
pub fn model() -> Option<Arc<Model>> {
    WEIGHTED.get().and_then(|w| w.model.load_full())
}

/// The model that scores mail now, when [`usable`].
pub fn in_force() -> Option<Arc<Model>> {
    WEIGHTED.get()?.model.load_full().filter(|m| usable(m))
}

/// Whether a model scores mail: `weights.enabled`, and it was fitted on at least
/// `weights.min_lessons` lessons of each kind (also for a model read from its file).
pub fn usable(m: &Model) -> bool {
    let min = k::WEIGHTS_MIN_LESSONS.get_u64();
    k::WEIGHTS_ENABLED.get_bool() && m.spam >= min && m.ham >= min
}

/// Lessons kept: (spam, ham).
pub fn kept() -> (u64, u64) {
    WEIGHTED.get().map_or((0, 0), |w| {
        let s = lock(w);
        let spam = s.kept.iter().filter(|l| l.spam).count() as u64;
        (spam, s.kept.len() as u64 - spam)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lesson_line_reads_back_and_a_bad_one_is_refused() {
        let l = Lesson { spam: true, bayes: Some(0.123456789), symbols: vec![("PHISH_IP_LINK".into(), 4.0), ("HEUR_X".into(), -0.25)] };
        assert_eq!(decode(&encode(&l)), Some(l));
        let none = Lesson { spam: false, bayes: None, symbols: vec![] };
        assert_eq!(encode(&none), "H -");
        assert_eq!(decode("H -"), Some(none));
        for bad in ["", "X 0.5", "S", "S 1.5", "S nan", "S 0.5 NAME", "S 0.5 NAME=x", "S 0.5 =1", "S 0.5 A=inf", "S 0.5  A=1"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pinned_names_and_prefixes() {
        assert!(pinned("GTUBE"));
        assert!(pinned("CLAMAV_Eicar_Test"));
        assert!(!pinned("PHISH_IP_LINK"));
        assert!(!pinned("GTUBEX"));
        let found = vec![
            mxguard_scan::Found { check: "content", symbol: mxguard_verdict_symbol("GTUBE", 1000.0) },
            mxguard_scan::Found { check: "bayes", symbol: mxguard_verdict_symbol("BAYES_SPAM", 8.0) },
            mxguard_scan::Found { check: "phishing", symbol: mxguard_verdict_symbol("PHISH_IP_LINK", 4.0) },
        ];
        assert_eq!(inputs(&found), vec![("PHISH_IP_LINK".to_string(), 4.0)]);
    }

    fn mxguard_verdict_symbol(name: &str, score: f64) -> mxguard_verdict::Symbol {
        mxguard_verdict::Symbol { name: name.into(), score, reason: String::new() }
    }

    /// The process's store end to end (the only test that opens it: it is one a process).
    #[test]
    fn lessons_are_kept_bounded_fitted_and_written_to_disk() {
        let dir = std::env::temp_dir().join(format!("mxguard-weighted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (lessons, model) = (dir.join("weights.lessons"), dir.join("weights.model"));
        // Lines from an earlier run, one of them damaged.
        std::fs::write(&lessons, "S 0.9 LINKY=4\nnot a lesson\nH 0.1\n").unwrap();
        k::WEIGHTS_LESSONS_MAX.set("100").unwrap();
        k::WEIGHTS_REFIT_LESSONS.set("1000000").unwrap();
        k::WEIGHTS_MIN_LESSONS.set("20").unwrap();
        let loaded = open(&lessons, &model).unwrap();
        assert_eq!(loaded, Loaded { spam: 1, ham: 1, bad_lines: 1, model: false });
        assert!(open(&lessons, &model).is_err(), "one store a process");
        assert!(in_force().is_none());
        // 230 more: spam mostly with LINKY, ham rarely; Bayes unsure of both.
        for i in 0..230u32 {
            let spam = i % 2 == 0;
            let linky = if spam { i % 10 != 0 } else { i % 15 == 1 };
            let symbols = if linky { vec![("LINKY".to_string(), 4.0)] } else { vec![] };
            record(spam, Some(if spam { 0.6 } else { 0.4 }), symbols).unwrap();
        }
        // Bounded in memory at 100; the file was rewritten once it reached 200 lines.
        assert_eq!(kept(), (50, 50));
        let lines = std::fs::read_to_string(&lessons).unwrap().lines().count();
        assert!((100..200).contains(&lines), "{lines}");
        let Fitted::Model(m) = fit_now().unwrap() else { panic!("spam and ham are kept") };
        assert_eq!((m.spam, m.ham), (50, 50));
        assert!(in_force().is_some());
        k::WEIGHTS_MIN_LESSONS.set("51").unwrap();
        assert!(in_force().is_none(), "fewer lessons of a kind than weights.min_lessons");
        k::WEIGHTS_MIN_LESSONS.set("20").unwrap();
        k::WEIGHTS_ENABLED.set("0").unwrap();
        assert!(in_force().is_none());
        k::WEIGHTS_ENABLED.set("1").unwrap();
        // The model file reads back as the model in force; the lessons file as the kept ones.
        assert_eq!(read_model(&model).unwrap().as_ref(), Some(&*m));
        let reread: Vec<Lesson> = std::fs::read_to_string(&lessons).unwrap().lines().filter_map(decode).collect();
        let tail = &reread[reread.len() - 100..];
        let s = lock(WEIGHTED.get().unwrap());
        assert!(tail.iter().zip(s.kept.iter()).all(|(a, b)| a == b));
        drop(s);
        let linky = m.symbols.iter().find(|w| w.name == "LINKY").unwrap();
        assert!(linky.learned > 0.0 && linky.seen > 40);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
