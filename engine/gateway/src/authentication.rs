//! The gateway's message-authentication stage: DKIM, ARC and DMARC (checked by engine/dns on
//! its thread while the core scans the content) become each recipient's symbols, the From
//! domain's DMARC policy becomes an action, and every copy gets an Authentication-Results
//! header — after any such header claiming to be ours is taken out of the message (RFC 8601
//! §5: a receiver removes forged results bearing its authserv-id).
//!
//! The policy action spares whitelisted and unfiltered recipients, domains that turned the
//! `dmarc` check off, and mail whose ARC chain passes under a seal of `auth.arc_trusted_sealers`.
//!
//! It must never act on a DNS failure: a temporary error is a zero-score symbol, no action.

use std::sync::Arc;

use mxguard_dns::auth::{Auth, Envelope, Outcome};
use mxguard_dns::Lookup;
use mxguard_policy::tables;
use mxguard_smtp::Reply;
use mxguard_telemetry::Event;
use mxguard_tuning as k;
use mxguard_verdict::Action;

use crate::screen::{thresholds, RcptVerdict};

/// Starts the checks of `message` on the DNS thread now and returns the wait for them; `None`
/// when they are off (knob, no DNS, or a trusted client).
pub fn start(message: &Arc<Vec<u8>>, env: Option<Envelope>) -> Option<impl std::future::Future<Output = Lookup<Auth>>> {
    if !k::AUTH_ENABLED.get_bool() {
        return None;
    }
    let dns = mxguard_dns::get()?;
    Some(dns.authenticate(message.clone(), env?))
}

/// The check inputs for a transaction: `None` for a trusted client (see `Screen::auth_inputs`).
pub fn envelope(inputs: Option<Option<mail_auth::SpfOutput>>, ip: std::net::IpAddr, helo: &str, mail_from: &str) -> Option<Envelope> {
    let spf = inputs?;
    Some(Envelope { ip, helo: helo.to_string(), mail_from: mail_from.to_string(), spf, hostname: k::SMTP_HOSTNAME.get_str().to_string() })
}

fn join_domains<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = it.filter(|d| !d.is_empty()).collect();
    v.dedup();
    v.join(", ")
}

/// The DMARC action for failing mail. The policy is the one in force: a record's testing flag
/// (`t=y`) has already lowered it one step (mail-auth, RFC 9989 §4.7).
fn policy_action(policy: &str) -> Option<Action> {
    let reject = if k::DMARC_REJECT_ACTION.get_str().trim().eq_ignore_ascii_case("quarantine") { Action::Quarantine } else { Action::Reject };
    match policy {
        "reject" => Some(reject),
        "quarantine" => Some(Action::Quarantine),
        _ => None,
    }
}

/// Adds the findings to each recipient's verdict, decides again, and applies the DMARC policy.
/// `Some(reply)` refuses the whole message: every remaining recipient rejects it by DMARC.
pub fn apply(auth: &Auth, rcpts: &mut [RcptVerdict]) -> Option<Reply> {
    let lists = tables::current();
    let passed = join_domains(auth.dkim.iter().filter(|s| s.outcome == Outcome::Pass).map(|s| s.domain.as_str()));
    let failed: Vec<_> = auth.dkim.iter().filter(|s| matches!(s.outcome, Outcome::Fail | Outcome::PermError | Outcome::Neutral)).collect();
    let temp = auth.dkim.iter().any(|s| s.outcome == Outcome::TempError);
    let d = &auth.dmarc;
    let trusted_arc = auth.arc == Outcome::Pass
        && auth.arc_sealer.as_deref().is_some_and(|s| {
            k::AUTH_ARC_TRUSTED_SEALERS.get_str().split([',', ' ']).map(str::trim).any(|t| !t.is_empty() && t.eq_ignore_ascii_case(s))
        });
    let mut dmarc_rejects: usize = 0;
    for r in rcpts.iter_mut() {
        let policy = r.policy(&lists);
        let v = &mut r.verdict;
        if policy.enabled("dkim") {
            if !passed.is_empty() {
                v.add("DKIM_VALID", k::SCORE_DKIM_VALID.get_f64(), format!("DKIM signature of {passed} verified"));
            }
            if let Some(f) = failed.first() {
                v.add("DKIM_INVALID", k::SCORE_DKIM_INVALID.get_f64(), format!("DKIM signature of {} failed: {}", if f.domain.is_empty() { "?" } else { &f.domain }, f.detail));
            }
            if temp {
                v.add("DKIM_TEMPERROR", 0.0, "a DKIM key could not be fetched (DNS)");
            }
        }
        if policy.enabled("arc") {
            let sealer = auth.arc_sealer.as_deref().unwrap_or("?");
            match auth.arc {
                Outcome::Pass => v.add("ARC_PASS", 0.0, format!("ARC chain verified, last sealed by {sealer}")),
                Outcome::Fail | Outcome::PermError | Outcome::Neutral => v.add("ARC_FAIL", k::SCORE_ARC_FAIL.get_f64(), format!("ARC chain broken (last seal by {sealer})")),
                _ => {}
            }
        }
        let mut force = None;
        if policy.enabled("dmarc") {
            match d.outcome {
                Outcome::Pass => v.add("DMARC_PASS", k::SCORE_DMARC_PASS.get_f64(), format!("DMARC of {} passes (aligned SPF or DKIM)", d.domain)),
                Outcome::Fail => {
                    v.add("DMARC_FAIL", k::SCORE_DMARC_FAIL.get_f64(), format!("DMARC of {} fails: {} (p={}{})", d.domain, d.detail, d.policy, if d.testing { ", t=y" } else { "" }));
                    if trusted_arc {
                        v.add("DMARC_ARC_OVERRIDE", 0.0, format!("DMARC policy not applied: ARC sealed by trusted {}", auth.arc_sealer.as_deref().unwrap_or("")));
                    } else if k::DMARC_ENFORCE.get_bool() {
                        force = policy_action(d.policy);
                    }
                }
                Outcome::TempError => v.add("DMARC_TEMPERROR", 0.0, format!("DMARC record of {} could not be fetched (DNS)", d.domain)),
                Outcome::PermError => v.add("DMARC_PERMERROR", 0.0, format!("DMARC record of {} is invalid", d.domain)),
                _ => {}
            }
        }
        r.action = r.verdict.action(&thresholds(&policy), r.unfiltered);
        let exempt = r.verdict.whitelisted() || r.unfiltered.is_some();
        if let (Some(a), false) = (force, exempt) {
            if a > r.action && r.action != Action::Discard {
                r.action = a;
                let name = if a == Action::Reject { "DMARC_REJECT" } else { "DMARC_QUARANTINE" };
                r.verdict.add(name, 0.0, format!("DMARC policy of {} is {}", d.domain, d.policy));
                if a == Action::Reject {
                    dmarc_rejects += 1;
                }
            }
        }
    }
    let live = rcpts.iter().filter(|r| r.action != Action::Discard).count();
    if d.outcome == Outcome::Fail {
        Event::new("dmarc_fail").str("domain", &d.domain).str("policy", d.policy).str("detail", &d.detail).num("rejects", dmarc_rejects as u64).emit();
    }
    (live > 0 && dmarc_rejects == live).then(|| Reply::new(550, "5.7.1", format!("Email rejected per DMARC policy for {}", d.domain)))
}

/// `message` without the Authentication-Results fields of its header block whose authserv-id is
/// `host` (forged or stale results in our name). Copies only when there is one to remove.
pub fn strip_own_results(message: Vec<u8>, host: &str) -> Vec<u8> {
    let end = memchr::memmem::find(&message, b"\r\n\r\n").map(|p| p + 2).unwrap_or(message.len());
    let head = &message[..end];
    let mut cut: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0;
    while pos < end {
        let line_end = memchr::memmem::find(&head[pos..], b"\r\n").map(|p| pos + p + 2).unwrap_or(end);
        // The field runs on over continuation lines (starting with a blank).
        let mut field_end = line_end;
        while field_end < end && matches!(head[field_end], b' ' | b'\t') {
            field_end = memchr::memmem::find(&head[field_end..], b"\r\n").map(|p| field_end + p + 2).unwrap_or(end);
        }
        let field = &head[pos..field_end];
        const NAME: &[u8] = b"authentication-results:";
        if field.len() > NAME.len() && field[..NAME.len()].eq_ignore_ascii_case(NAME) {
            let value = String::from_utf8_lossy(&field[NAME.len()..]);
            let id = value.trim_start().split(|c: char| c == ';' || c.is_whitespace()).next().unwrap_or("");
            if id.eq_ignore_ascii_case(host) {
                cut.push((pos, field_end));
            }
        }
        pos = field_end;
    }
    if cut.is_empty() {
        return message;
    }
    let mut out = Vec::with_capacity(message.len());
    let mut from = 0;
    for (a, b) in cut {
        out.extend_from_slice(&message[from..a]);
        from = b;
    }
    out.extend_from_slice(&message[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_results_are_stripped_and_others_kept() {
        let cases: &[(&str, &str)] = &[
            ("Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\nbody\r\n"),
            (
                "Authentication-Results: mx.example.test; dkim=pass\r\nSubject: a\r\n\r\nAuthentication-Results: mx.example.test; x\r\n",
                "Subject: a\r\n\r\nAuthentication-Results: mx.example.test; x\r\n",
            ),
            (
                "Subject: a\r\nauthentication-results:   MX.Example.Test;\r\n\tspf=pass\r\n smtp.mailfrom=x\r\nTo: b\r\n\r\nb",
                "Subject: a\r\nTo: b\r\n\r\nb",
            ),
            (
                "Authentication-Results: other.example; dkim=pass\r\nAuthentication-Results: mx.example.test.evil; x\r\n\r\n",
                "Authentication-Results: other.example; dkim=pass\r\nAuthentication-Results: mx.example.test.evil; x\r\n\r\n",
            ),
            ("Authentication-Results: mx.example.test; none", ""),
        ];
        for (input, want) in cases {
            let got = strip_own_results(input.as_bytes().to_vec(), "mx.example.test");
            assert_eq!(String::from_utf8_lossy(&got), *want, "{input:?}");
        }
    }

    #[test]
    fn dmarc_policy_actions() {
        assert_eq!(policy_action("reject"), Some(Action::Reject));
        assert_eq!(policy_action("quarantine"), Some(Action::Quarantine));
        assert_eq!(policy_action("none"), None);
        assert_eq!(policy_action(""), None);
    }
}
