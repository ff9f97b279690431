//! The gateway's side of bulk counting and reputation (engine/traffic): before a message's
//! verdict its text's copies and its sender's history become symbols (checks `bulk` and
//! `reputation`, per domain like every check); after it, the verdict is recorded — the text
//! marked as spam for its later copies, the sender's history updated, and a client address whose
//! history crossed `reputation.ban_*` banned.
//!
//! One table of each per process, shared by the cores (sharded locks, touched a few times per
//! message). In memory only: a restart forgets at most two windows of traffic.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use mxguard_scan::{Found, Report};
use mxguard_traffic::bulk::{self, Bulk};
use mxguard_traffic::reputation::{Reputation, Sender};
use mxguard_traffic::window::key_of_ip;
use mxguard_traffic::Finding;
use mxguard_tuning as k;
use mxguard_verdict::Symbol;

use crate::screen::RcptVerdict;

fn bulk_table() -> &'static Bulk {
    static B: OnceLock<Bulk> = OnceLock::new();
    B.get_or_init(Bulk::new)
}

fn reputation() -> &'static Reputation {
    static R: OnceLock<Reputation> = OnceLock::new();
    R.get_or_init(Reputation::new)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn found(check: &'static str, f: Finding) -> Found {
    Found { check, symbol: Symbol { name: f.symbol.into(), score: f.score, reason: f.reason } }
}

/// The sender as reputation sees it: the client address, and the envelope domain when SPF passed
/// for it.
pub fn sender<'a>(ip: IpAddr, spf: Option<&'a mail_auth::SpfOutput>) -> Sender<'a> {
    let domain = spf.filter(|s| s.result() == mail_auth::SpfResult::Pass).map(|s| s.domain()).filter(|d| !d.is_empty());
    Sender { ip, domain }
}

/// Adds the bulk and reputation symbols of a message (before its verdict), counting it as a copy
/// of its text.
pub fn observe(report: &mut Report, who: &Sender, recipients: usize) {
    let now = now();
    if let Some(bands) = &report.fingerprint {
        let seen = bulk_table().observe(bands, key_of_ip(9, who.ip, 4, 16), recipients.min(u32::MAX as usize) as u32, now);
        report.found.extend(bulk::findings(&seen).into_iter().map(|f| found("bulk", f)));
    }
    report.found.extend(reputation().findings(who, now).into_iter().map(|f| found("reputation", f)));
}

/// Whether a verdict calls a message spam for the sender's history: what the gateway did not
/// simply deliver, or delivered tagged; never a whitelisted one.
pub fn is_spam(rcpts: &[RcptVerdict]) -> bool {
    let tag = k::VERDICT_TAG_SCORE.get_f64();
    rcpts.iter().any(|r| !r.verdict.whitelisted() && (r.action != mxguard_verdict::Action::Deliver || tag > 0.0 && r.verdict.score() >= tag))
}

/// The lowest and highest score among the recipients, the symbols whose names start with any of
/// `leave_out` not counted (a learner must not learn from its own opinion).
pub fn score_range(rcpts: &[RcptVerdict], leave_out: &[&str]) -> (f64, f64) {
    let own = |r: &RcptVerdict| {
        r.verdict.score() - r.verdict.symbols().iter().filter(|s| leave_out.iter().any(|p| s.name.starts_with(p))).map(|s| s.score).sum::<f64>()
    };
    let low = rcpts.iter().map(own).fold(f64::INFINITY, f64::min);
    let high = rcpts.iter().map(own).fold(f64::NEG_INFINITY, f64::max);
    (low, high)
}

/// Records a message's verdict: its text marked as spam when it scored `bulk.spam_score` or more
/// for every recipient (learning symbols left out) or hit a honeypot; the sender's history
/// updated. Returns true when the client address should now be banned.
pub fn record(report: Option<&Report>, who: &Sender, rcpts: &[RcptVerdict], honeypot: bool) -> bool {
    if rcpts.is_empty() {
        return false;
    }
    let now = now();
    let trap = honeypot || rcpts.iter().any(|r| r.verdict.symbols().iter().any(|s| s.name.starts_with("HONEYPOT")));
    if let Some(bands) = report.and_then(|r| r.fingerprint.as_ref()) {
        let (low, _) = score_range(rcpts, &["BAYES_", "BULK", "REP_"]);
        let whitelisted = rcpts.iter().all(|r| r.verdict.whitelisted());
        if !whitelisted && (trap || low >= k::BULK_SPAM_SCORE.get_f64()) {
            bulk_table().judged_spam(bands, now);
        }
    }
    let rec = reputation().record(who, is_spam(rcpts) || trap, rcpts.len().min(u32::MAX as usize) as u32, now);
    // Forget the idle now and then (the tables also make room themselves when full).
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    if n % 4096 == 4095 {
        bulk_table().sweep(now);
        reputation().sweep(now);
    }
    if n % 64 == 0 {
        let m = &mxguard_telemetry::METRICS;
        m.bulk_keys.set(bulk_table().len() as i64);
        m.reputation_keys.set(reputation().len() as i64);
    }
    rec.ban
}
