//! Header and text heuristics, each a symbol (scores are knobs `heuristics.<name>_score`):
//! - `HEUR_SUBJECT_SPACES`: more runs of spaces/tabs in the subject than allowed (the reference
//!   "Max number of spaces in subject line");
//! - `HEUR_MISSING_DATE`, `HEUR_MISSING_MESSAGE_ID`, `HEUR_MISSING_FROM`;
//! - `HEUR_DATE_FUTURE` / `HEUR_DATE_PAST`: Date more than a day ahead, or years behind;
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
    pub now_unix: i64,
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
            if t > cfg.now_unix + 86_400 {
                out.push(("HEUR_DATE_FUTURE", format!("Date {d} is in the future")));
            } else if t < cfg.now_unix - 5 * 365 * 86_400 {
                out.push(("HEUR_DATE_PAST", format!("Date {d} is years old")));
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
        let empty = "From: a@a.example\r\nDate: Tue, 20 Sep 2026 10:00:00 +0000\r\nMessage-ID: <1@a>\r\nSubject: s\r\n\r\n\r\n";
        assert_eq!(syms(empty), vec!["HEUR_EMPTY_BODY"]);
    }
}
