//! The gateway's antivirus stage: starts the ClamAV pool (engine/av), awaits its answer for a
//! message within `av.timeout_ms`, and turns the answer into each recipient's verdict.
//!
//! A virus overrides whitelists and unfiltered recipients: every recipient whose domain keeps
//! the `antivirus` check on gets `av.action` (reject, quarantine, discard). When ClamAV cannot
//! answer, `av.on_error` (a failed scan) and `av.required` (no signatures at all) say whether
//! the message is deferred or passes with the symbol AV_UNCHECKED.
//!
//! It must never let a message through as scanned when it was not: the symbol and a log line
//! say so every time.

use std::sync::Arc;
use std::time::Duration;

use mxguard_av::Outcome;
use mxguard_policy::tables;
use mxguard_smtp::Reply;
use mxguard_telemetry::{Event, METRICS};
use mxguard_tuning as k;
use mxguard_verdict::Action;

use crate::screen::RcptVerdict;

/// Starts the pool when `av.enabled` (loads the signatures once, before the cores start).
pub fn start() {
    if !k::AV_ENABLED.get_bool() {
        return;
    }
    let av = mxguard_av::start(&mxguard_av::Config::from_knobs());
    let (n, err) = av.status();
    let e = Event::new("av_start").str("engine", &mxguard_av::engine_version()).num("signatures", n as u64);
    match err {
        Some(err) => e.str("error", &err).str("unscanned_mail", if k::AV_REQUIRED.get_bool() { "deferred (av.required)" } else { "passes with AV_UNCHECKED" }).emit(),
        None => e.emit(),
    }
}

/// Hands `message` to ClamAV now and returns the wait for its answer (bounded by
/// `av.timeout_ms`), or `None` when the stage is off or no recipient wants it.
pub fn scan(message: &Arc<Vec<u8>>, wanted: bool) -> Option<impl std::future::Future<Output = Outcome>> {
    if !wanted || !k::AV_ENABLED.get_bool() {
        return None;
    }
    let av = mxguard_av::get()?;
    let t0 = std::time::Instant::now();
    let timeout = Duration::from_millis(k::AV_TIMEOUT_MS.get_u64());
    // Submitted here, not when awaited: the scan runs while the core does other work.
    let answer = av.scan(message.clone());
    Some(async move {
        let out = futures_lite::future::or(answer, async move {
            glommio::timer::sleep(timeout).await;
            Outcome::Error(format!("no answer in {} ms (av.timeout_ms)", timeout.as_millis()))
        })
        .await;
        METRICS.av_time.record(t0.elapsed());
        out
    })
}

/// Whether any recipient's domain keeps the antivirus check on.
pub fn wanted(rcpts: &[RcptVerdict]) -> bool {
    let lists = tables::current();
    rcpts.iter().any(|r| r.policy(&lists).enabled("antivirus"))
}

/// The action `av.action` names (reject when unknown).
fn virus_action() -> Action {
    match k::AV_ACTION.get_str().trim().to_ascii_lowercase().as_str() {
        "quarantine" => Action::Quarantine,
        "discard" => Action::Discard,
        _ => Action::Reject,
    }
}

/// Applies ClamAV's answer to the recipients. `Some(reply)` answers the whole message now: a
/// deferral (the scan failed and the knobs say defer), or the refusal of a virus every
/// remaining recipient rejects.
pub fn apply(outcome: &Outcome, rcpts: &mut [RcptVerdict], client: &str, from: &str) -> Option<Reply> {
    let lists = tables::current();
    let on = |r: &RcptVerdict| r.policy(&lists).enabled("antivirus");
    let unchecked = |why: &str, defer: bool, rcpts: &mut [RcptVerdict]| {
        METRICS.av_unchecked.inc();
        Event::new("av_unchecked").str("client", client).str("from", from).str("why", why).str("then", if defer { "deferred" } else { "passed unscanned" }).emit();
        if defer {
            return Some(Reply::new(451, "4.7.1", "Error: virus scan unavailable, try again later"));
        }
        for r in rcpts.iter_mut().filter(|r| on(r)) {
            r.verdict.add("AV_UNCHECKED", 0.0, format!("not scanned for viruses: {why}"));
        }
        None
    };
    match outcome {
        Outcome::Clean => None,
        Outcome::Error(why) => unchecked(why, !k::AV_ON_ERROR.get_str().trim().eq_ignore_ascii_case("accept"), rcpts),
        Outcome::Unavailable(why) => unchecked(why, k::AV_REQUIRED.get_bool(), rcpts),
        Outcome::Virus(name) => {
            METRICS.av_viruses.inc();
            let action = virus_action();
            let mut held = 0;
            for r in rcpts.iter_mut().filter(|r| on(r)) {
                r.verdict.add("CLAMAV_VIRUS", k::SCORE_CLAMAV_VIRUS.get_f64(), format!("ClamAV found {name}"));
                r.action = action;
                held += 1;
            }
            Event::new("virus").str("client", client).str("from", from).str("name", name).str("action", action.as_str()).num("rcpts", held).emit();
            let live = rcpts.iter().filter(|r| r.action != Action::Discard).count();
            let refused = rcpts.iter().filter(|r| r.action == Action::Reject && r.verdict.has("CLAMAV_VIRUS")).count();
            (live > 0 && refused == live).then(|| Reply::new(550, "5.7.1", format!("Error: message content rejected: virus found ({name})")))
        }
    }
}
