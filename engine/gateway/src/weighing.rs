//! The gateway's side of the learned symbol weights: the lessons opened at start-up (and a fit
//! started if they wait unfitted), the stage that re-weighs a scan's findings with the model in
//! force, and `mxguard weights`.
//!
//! Re-weighing changes only scores, never which symbols a message carries: each content symbol
//! (not Bayes', not a pinned one) gets the points the model gives it, Bayes' finding is replaced
//! by its learned part (BAYES_SPAM, BAYES_HAM, BAYES_UNSURE between their thresholds, or BAYES_NONE), and LEARNED_BASE carries the
//! model's constant part, so the symbols still add up to the score the thresholds judge and every
//! header, log line and explanation lists what each part contributed. Symbols added after the
//! scan (bulk, reputation, policy, DNS, authentication) keep their hand-set scores: lessons read
//! from files carry no session, so those cannot be learnt from them.

use mxguard_bayes::weighted;
use mxguard_scan::{Found, Report};
use mxguard_telemetry::Event;
use mxguard_tuning as k;
use mxguard_verdict::{fmt_score, Symbol};
use mxguard_weights::Model;

use crate::in_state_dir;

/// Opens the lessons and the last model; starts a fit when lessons are kept but no model was
/// written yet (or it does not read).
pub fn start() -> Result<(), String> {
    let (lessons, model) = files();
    let loaded = weighted::open(&lessons, &model)?;
    weighted::on_fit(|r| match r {
        Ok(weighted::Fitted::Model(m)) => fitted_event(m),
        Ok(weighted::Fitted::NotYet { spam, ham }) => Event::new("weights_not_fitted").num("spam", *spam).num("ham", *ham).emit(),
        Err(e) => Event::new("weights_error").str("error", e).emit(),
    });
    Event::new("weights_loaded")
        .num("spam", loaded.spam)
        .num("ham", loaded.ham)
        .num("bad_lines", loaded.bad_lines)
        .str("model", if loaded.model { "yes" } else { "no" })
        .str("in_force", if weighted::in_force().is_some() { "yes" } else { "no" })
        .emit();
    if !loaded.model && loaded.spam > 0 && loaded.ham > 0 {
        weighted::fit_in_background();
    }
    Ok(())
}

fn files() -> (std::path::PathBuf, std::path::PathBuf) {
    (in_state_dir(&k::WEIGHTS_LESSONS_FILE.get_str()), in_state_dir(&k::WEIGHTS_MODEL_FILE.get_str()))
}

fn fitted_event(m: &Model) {
    Event::new("weights_fitted")
        .num("spam", m.spam)
        .num("ham", m.ham)
        .num("symbols", m.symbols.len() as u64)
        .str("cv_one_minus_auc_pct", &format!("{:.4}", m.cv.one_minus_auc_pct))
        .str("cv_bayes_one_minus_auc_pct", &format!("{:.4}", m.cv_bayes.one_minus_auc_pct))
        .str("in_force", if weighted::in_force().is_some() { "yes" } else { "no" })
        .emit();
}

/// The model in force for `mxguard explain` (no gateway): the model file, when usable.
pub fn from_file() -> Result<Option<Model>, String> {
    Ok(weighted::read_model(&files().1)?.filter(weighted::usable))
}

/// Re-weighs `report`'s findings with the model in force (nothing when none is): `bayes` is the
/// message's spam probability (`None`: no answer).
pub fn apply(report: &mut Report, bayes: Option<f64>) {
    if let Some(m) = weighted::in_force() {
        reweigh(report, bayes, &m);
    }
}

/// [`apply`] with a given model.
pub fn reweigh(report: &mut Report, bayes: Option<f64>, m: &Model) {
    report.found.retain(|f| f.check != "bayes");
    let at: Vec<usize> = (0..report.found.len()).filter(|&i| !weighted::pinned(&report.found[i].symbol.name)).collect();
    let inputs: Vec<(&str, f64)> = at.iter().map(|&i| (report.found[i].symbol.name.as_str(), report.found[i].symbol.score)).collect();
    let scored = m.score(&inputs, bayes);
    for (&i, points) in at.iter().zip(&scored.symbols) {
        let s = &mut report.found[i].symbol;
        s.reason = format!("{} (learned weight; hand-set {})", s.reason, fmt_score(s.score));
        s.score = *points;
    }
    // Named as without the model (bayes.spam_threshold and bayes.ham_threshold, which the
    // metrics count by), BAYES_UNSURE between them.
    let (name, reason) = match bayes {
        Some(p) => (
            mxguard_bayes::symbol_for(p).map_or("BAYES_UNSURE", |s| s.0),
            format!("Bayes spam probability {p:.4}, learned weight"),
        ),
        None => ("BAYES_NONE", "Bayes has no answer (too little learnt, or nothing telling), learned weight".to_string()),
    };
    if scored.bayes != 0.0 {
        report.found.push(Found { check: "bayes", symbol: Symbol { name: name.into(), score: scored.bayes, reason } });
    }
    report.found.push(Found {
        check: "weights",
        symbol: Symbol {
            name: "LEARNED_BASE".into(),
            score: scored.base,
            reason: format!("the learned model's constant part (fitted on {} spam and {} ham lessons)", m.spam, m.ham),
        },
    });
}

/// `mxguard weights`: the model's weights beside the hand-set scores, from the model file.
pub fn weights_command(args: Vec<String>) -> Result<(), String> {
    if !args.is_empty() {
        return Err(format!("unexpected arguments: {}", args.join(" ")));
    }
    let (lessons, model_file) = files();
    match weighted::read_lessons(&lessons)? {
        (_, _, 0) => println!("lessons: none yet in {}", lessons.display()),
        (_, l, _) => println!("lessons: {} spam, {} ham in {}", l.spam, l.ham, lessons.display()),
    }
    let Some(m) = weighted::read_model(&model_file)? else {
        println!("model: none fitted yet; mail is scored with the hand-set scores");
        return Ok(());
    };
    print!("{}", table(&m));
    Ok(())
}

/// The text `mxguard weights` prints for a model (the console's page shows the same in HTML).
pub fn table(m: &Model) -> String {
    let mut out = String::new();
    let in_force = if weighted::usable(m) {
        "in force".to_string()
    } else if !k::WEIGHTS_ENABLED.get_bool() {
        "not in force (weights.enabled = 0)".to_string()
    } else {
        format!("not in force (weights.min_lessons = {} of each kind)", k::WEIGHTS_MIN_LESSONS.get_u64())
    };
    out += &format!("model: fitted on {} spam and {} ham lessons, {in_force}\n", m.spam, m.ham);
    let gate = if m.choice.gate.is_finite() { format!("{}", m.choice.gate) } else { "off".into() };
    out += &format!("chosen by cross-validation over the lessons: spread {} (symbols) / {} (Bayes), gate {gate}\n", m.choice.sd_symbol, m.choice.sd_bayes);
    out += &format!(
        "cross-validated 1-AUC: {:.4} % (Bayes alone {:.4} %); spam caught at 0.1 % ham: {:.2} % (Bayes alone {:.2} %)\n",
        m.cv.one_minus_auc_pct, m.cv_bayes.one_minus_auc_pct, m.cv.caught_at_0_1pct_fp, m.cv_bayes.caught_at_0_1pct_fp
    );
    let (spam_side, ham_side, none) = m.bayes_points();
    out += &format!("Bayes: {spam_side:.3} points a unit of log-odds above 0, {ham_side:.3} below; no answer {none:+.2}\n");
    out += &format!("base: {:+.2} points\n", m.base_points());
    out += &format!("{:<32} {:>8} {:>8} {:>8} {:>8}\n", "symbol", "hand-set", "learned", "change", "lessons");
    for w in m.by_change() {
        out += &format!("{:<32} {:>8.2} {:>8.2} {:>+8.2} {:>8}\n", w.name, w.hand, w.learned, w.learned - w.hand, w.seen);
    }
    out
}
