//! Header and text heuristics, each a symbol (scores are knobs `heuristics.<name>_score`):
//! - `HEUR_SUBJECT_SPACES`: more runs of spaces/tabs in the subject than allowed (the reference
//!   "Max number of spaces in subject line");
//! - `HEUR_MISSING_DATE`, `HEUR_MISSING_MESSAGE_ID`, `HEUR_MISSING_FROM`;
//! - `HEUR_DATE_FUTURE` / `HEUR_DATE_PAST`: Date more than a day ahead of, or years behind, the
//!   time the message's own path says it was sent ([`path_time`]): the newest Received field
//!   written before it reached us (the sending side's clock), else our own Received field, else
//!   the arrival time. So a re-scan of stored mail (quarantine, `mxguard explain`, a replay of
//!   old mail) judges its Date as it was judged on arrival;
//! - `HEUR_HTML_ONLY_SHORT`: HTML without a text alternative and little visible text;
//! - `HEUR_SUBJECT_CAPS`: a subject mostly in capitals; `HEUR_SUBJECT_EXCLAIM`: `!!!`;
//! - `HEUR_FORGED_OUTLOOK`: X-Mailer claims Outlook but the Message-ID is not Outlook's;
//! - `HEUR_FROM_NAME_ADDRESS`: the From display name shows an address of another domain;
//! - `HEUR_BASE64_TEXT`: text/html or text/plain sent base64-encoded (the reference
//!   FilterBase64html);
//! - `HEUR_EMPTY_BODY`: no text at all and no attachment.
//!
//! Pure function of the parsed message and the clock.

use mail_parser::{MimeHeaders, PartType};

use crate::mime::Parsed;

pub type Finding = (&'static str, String);

pub struct Config {
    pub subject_spaces_max: usize,
    pub html_short_chars: usize,
    /// When the message reached us (for a fresh message, now).
    pub now_unix: i64,
}

/// What our own Received field says in its `by` clause (see the gateway's `received_header`).
const OUR_MARK: &str = "(mxguard)";

/// When the message was sent to us, by its own path: the date of the newest Received field that
/// another server wrote (the last hop's clock), unless it is more than a day ahead of
/// `arrival_unix` (no server can have written it then); else the date of our own newest Received
/// field (the arrival time recorded when it was first taken); else `arrival_unix`.
///
/// Costs a look at each Received field's text from the top down, stopping at the first
/// foreign one with a date. Never fails: a field without a readable date is passed over.
pub fn path_time(p: &Parsed<'_>, arrival_unix: i64) -> i64 {
    let mut ours = None;
    for f in p.fields().filter(|f| f.name().eq_ignore_ascii_case("Received")) {
        let v = f.value();
        let Some(t) = v.rsplit_once(';').and_then(|(_, d)| mail_parser::DateTime::parse_rfc822(d.trim())).map(|d| d.to_timestamp()) else {
            continue;
        };
        if v.contains(OUR_MARK) {
            ours = ours.or(Some(t));
            continue;
        }
        if t <= arrival_unix + 86_400 {
            return t;
        }
        break;
    }
    ours.unwrap_or(arrival_unix)
}

pub fn check(p: &Parsed<'_>, attachments: usize, cfg: &Config) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let Some(m) = &p.message else { return out };
    let subject = p.subject.as_str();
    let runs = subject.split(|c: char| c != ' ' && c != '\t').filter(|r| r.len() >= 2).count()
        + subject.matches('\t').count();
    if cfg.subject_spaces_max > 0 && runs > cfg.subject_spaces_max {
        out.push(("HEUR_SUBJECT_SPACES", format!("the subject has {runs} runs of blanks")));
    }
    match m.date() {
        None => out.push(("HEUR_MISSING_DATE", "no Date header".into())),
        Some(d) => {
            let t = d.to_timestamp();
            let sent = path_time(p, cfg.now_unix);
            if t > sent + 86_400 {
                out.push(("HEUR_DATE_FUTURE", format!("Date {d} is in the future of when it was sent")));
            } else if t < sent - 5 * 365 * 86_400 {
                out.push(("HEUR_DATE_PAST", format!("Date {d} is years older than when it was sent")));
            }
        }
    }
    if m.message_id().is_none() {
        out.push(("HEUR_MISSING_MESSAGE_ID", "no Message-ID header".into()));
    }
    let from = m.from().and_then(|a| a.first());
    if from.and_then(|a| a.address()).is_none() {
        out.push(("HEUR_MISSING_FROM", "no From address".into()));
    }
    if p.html_parts > 0 && p.text_parts == 0 {
        let visible = p.text.len().saturating_sub(p.subject.len());
        if visible < cfg.html_short_chars {
            out.push(("HEUR_HTML_ONLY_SHORT", format!("HTML only, {visible} characters of text")));
        }
    }
    let letters: Vec<char> = subject.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() >= 10 && letters.iter().filter(|c| c.is_uppercase()).count() * 10 >= letters.len() * 8 {
        out.push(("HEUR_SUBJECT_CAPS", "the subject is in capitals".into()));
    }
    if subject.contains("!!!") {
        out.push(("HEUR_SUBJECT_EXCLAIM", "the subject shouts (!!!)".into()));
    }
    let mailer = p.header("X-Mailer").map(|v| v.to_ascii_lowercase()).unwrap_or_default();
    if mailer.contains("microsoft outlook") || mailer.contains("microsoft office outlook") {
        // Outlook always writes Thread-Index (older versions X-MimeOLE); bulk tools that borrow
        // its name do not.
        let mid = m.message_id().unwrap_or("");
        if p.header("Thread-Index").is_none() && p.header("X-MimeOLE").is_none() && !mid.contains(".outlook.com") {
            out.push(("HEUR_FORGED_OUTLOOK", format!("X-Mailer says {mailer} but the headers are not Outlook's")));
        }
    }
    if let Some(a) = from {
        let addr_domain = a.address().and_then(|x| x.rsplit_once('@')).map(|x| x.1.to_ascii_lowercase()).unwrap_or_default();
        if let Some(name) = a.name() {
            if let Some(shown) = name.split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '(' | ')' | '"' | '\'')).find(|w| w.contains('@')) {
                let shown_domain = shown.rsplit_once('@').map(|x| x.1.trim_end_matches(['.', ',']).to_ascii_lowercase()).unwrap_or_default();
                if !shown_domain.is_empty() && !addr_domain.is_empty() && crate::urls::registrable(&shown_domain) != crate::urls::registrable(&addr_domain) {
                    out.push(("HEUR_FROM_NAME_ADDRESS", format!("the From name shows {shown} but the address is at {addr_domain}")));
                }
            }
        }
    }
    let b64_text = m.parts.iter().any(|part| {
        matches!(part.body, PartType::Text(_) | PartType::Html(_))
            && part.content_transfer_encoding().is_some_and(|e| e.eq_ignore_ascii_case("base64"))
    });
    if b64_text {
        out.push(("HEUR_BASE64_TEXT", "text sent base64-encoded".into()));
    }
    if p.text.trim().len() <= p.subject.trim().len() && attachments == 0 {
        out.push(("HEUR_EMPTY_BODY", "the message has no text".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::parse;

    fn syms_at(raw: &str, now: i64) -> Vec<&'static str> {
        let p = parse(raw.as_bytes(), 1 << 20, 100);
        let n = p.attachments().len();
        check(&p, n, &Config { subject_spaces_max: 5, html_short_chars: 50, now_unix: now }).into_iter().map(|f| f.0).collect()
    }

    /// A message of 2007 with the Date its sender wrote (`date`), received by `hops` (newest first).
    fn of_2007(date: &str, hops: &[&str]) -> String {
        let mut m = String::new();
        for h in hops {
            m.push_str(&format!("Received: {h}\r\n"));
        }
        m.push_str(&format!("From: Ann <ann@a.example>\r\nTo: b@b.example\r\nSubject: minutes\r\nDate: {date}\r\nMessage-ID: <1@a.example>\r\n\r\nAttached are the minutes.\r\n"));
        m
    }

    const RELAY_2007: &str = "from out.a.example (out.a.example [192.0.2.7])\r\n\tby mx.b.example (Postfix) with ESMTP id 4F2;\r\n\tWed, 14 Mar 2007 09:12:44 -0500";
    const OURS_2007: &str = "from out.a.example ([192.0.2.7])\r\n\tby gw.b.example (mxguard) with ESMTP id Q1; Wed, 14 Mar 2007 14:12:50 +0000";
    const NOW: i64 = 1_795_420_800; // 2026-11-23

    #[test]
    fn dates_are_judged_against_the_path_not_the_scan_clock() {
        // Honest mail of 2007, scanned today: its Date agrees with its path.
        let honest = of_2007("Wed, 14 Mar 2007 09:10:02 -0500", &[RELAY_2007]);
        assert!(syms_at(&honest, NOW).is_empty(), "{:?}", syms_at(&honest, NOW));
        // Stored with our own Received on top (a quarantine re-scan, `mxguard explain`).
        let stored = of_2007("Wed, 14 Mar 2007 09:10:02 -0500", &[OURS_2007, RELAY_2007]);
        assert!(syms_at(&stored, NOW).is_empty());
        // Only our own field: its time is the arrival.
        let only_ours = of_2007("Wed, 14 Mar 2007 09:10:02 -0500", &[OURS_2007]);
        assert!(syms_at(&only_ours, NOW).is_empty());
        // A forged Date is still caught against the path, in either direction.
        let future = of_2007("Sat, 14 Mar 2009 09:10:02 -0500", &[RELAY_2007]);
        assert_eq!(syms_at(&future, NOW), vec!["HEUR_DATE_FUTURE"]);
        let past = of_2007("Sun, 14 Mar 1999 09:10:02 -0500", &[OURS_2007, RELAY_2007]);
        assert_eq!(syms_at(&past, NOW), vec!["HEUR_DATE_PAST"]);
        // No Received at all: the arrival time (the clock of the scan) as before.
        let bare = of_2007("Wed, 14 Mar 2007 09:10:02 -0500", &[]);
        assert_eq!(syms_at(&bare, NOW), vec!["HEUR_DATE_PAST"]);
    }

    #[test]
    fn a_received_field_from_the_future_is_not_believed() {
        // A last hop claiming 2031 cannot have written it before our 2026 arrival: the arrival
        // time stands, and a Date of 2031 is in the future.
        let ahead = "from x (x [192.0.2.7]) by y (Postfix) with ESMTP id 1; Fri, 14 Mar 2031 09:12:44 +0000";
        let m = of_2007("Fri, 14 Mar 2031 09:10:02 +0000", &[ahead]);
        assert_eq!(syms_at(&m, NOW), vec!["HEUR_DATE_FUTURE"]);
        // Fields without a date are passed over; the next one with a date counts.
        let undated = "from x (x [192.0.2.7]) by y (Postfix) with ESMTP id 1";
        let m = of_2007("Wed, 14 Mar 2007 09:10:02 -0500", &[undated, RELAY_2007]);
        assert!(syms_at(&m, NOW).is_empty());
    }

    fn syms(raw: &str) -> Vec<&'static str> {
        let p = parse(raw.as_bytes(), 1 << 20, 100);
        let n = p.attachments().len();
        check(&p, n, &Config { subject_spaces_max: 5, html_short_chars: 50, now_unix: 1_790_000_000 }).into_iter().map(|f| f.0).collect()
    }

    #[test]
    fn a_clean_message_has_none() {
        let raw = "From: Ann <ann@a.example>\r\nTo: b@b.example\r\nSubject: lunch tomorrow\r\nDate: Tue, 20 Sep 2026 10:00:00 +0000\r\nMessage-ID: <1@a.example>\r\n\r\nShall we meet at noon?\r\n";
        assert!(syms(raw).is_empty(), "{:?}", syms(raw));
    }

    #[test]
    fn each_sign() {
        let raw = "From: \"support@paypal.com\" <x@evil.example>\r\nSubject: WIN A FREE PRIZE NOW!!!    \t   X   Y    Z     W      V\r\nX-Mailer: Microsoft Outlook 16.0\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n";
        let s = syms(raw);
        for want in ["HEUR_SUBJECT_SPACES", "HEUR_MISSING_DATE", "HEUR_MISSING_MESSAGE_ID", "HEUR_HTML_ONLY_SHORT", "HEUR_SUBJECT_CAPS", "HEUR_SUBJECT_EXCLAIM", "HEUR_FORGED_OUTLOOK", "HEUR_FROM_NAME_ADDRESS", "HEUR_BASE64_TEXT"] {
            assert!(s.contains(&want), "{want} missing from {s:?}");
        }
        let future = "From: a@a.example\r\nDate: Tue, 20 Sep 2039 10:00:00 +0000\r\nMessage-ID: <1@a>\r\nSubject: s\r\n\r\ntext\r\n";
        assert_eq!(syms(future), vec!["HEUR_DATE_FUTURE"]);
        let past = "From: a@a.example\r\nDate: Tue, 20 Sep 2011 10:00:00 +0000\r\nMessage-ID: <1@a>\r\nSubject: s\r\n\r\ntext\r\n";
        assert_eq!(syms(past), vec!["HEUR_DATE_PAST"]);
        let empty = "From: a@a.example\r\nDate: Tue, 20 Sep 2026 10:00:00 +0000\r\nMessage-ID: <1@a>\r\nSubject: s\r\n\r\n\r\n";
        assert_eq!(syms(empty), vec!["HEUR_EMPTY_BODY"]);
    }
}
