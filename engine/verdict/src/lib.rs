//! The verdict model: every check and scanner emits named [`Symbol`]s (name, score, reason);
//! their scores add up; [`Thresholds`] and the list options that force an outcome map the total
//! to one [`Action`].
//!
//! This crate decides nothing by itself and does no I/O: it is the arithmetic and the wording
//! (the `X-mxguard-*` header values, the subject tag, rejection texts with `%IP%` and friends),
//! so the policy stage, the scanners and the quarantine all explain a message the same way.
//! It must never lose a symbol: what was added is what the log line and the header show.

mod template;

pub use template::{expand, TemplateVars};

/// One finding of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Symbol {
    /// Upper-case, `_`-separated: `DNSBL_ZEN`, `RDNS_NONE`, `SPF_FAIL`.
    pub name: String,
    pub score: f64,
    /// A human explanation, shown to postmasters and end users.
    pub reason: String,
}

/// What happens to a message (or one recipient of it). Ordered by severity: when several
/// apply, the greatest wins (see [`Action::max`]), except that [`Force`]s override scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Deliver,
    /// Deliver with the spam header (`X-SF-SPAM: Y` in the reference products).
    TagHeader,
    /// Deliver with the subject prefixed (`SPAM:`).
    TagSubject,
    /// Keep in the quarantine, tell the sender it was accepted.
    Quarantine,
    /// Accept and drop, no NDR, no quarantine (the reference `:NULL`).
    Discard,
    /// 4xx: try again later.
    TempFail,
    /// 5xx.
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deliver => "deliver",
            Action::TagHeader => "tag",
            Action::TagSubject => "tag_subject",
            Action::Quarantine => "quarantine",
            Action::Discard => "discard",
            Action::TempFail => "tempfail",
            Action::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Some(match s.to_ascii_lowercase().as_str() {
            "deliver" | "accept" | "none" => Action::Deliver,
            "tag" | "tag_header" => Action::TagHeader,
            "tag_subject" | "tagsubject" => Action::TagSubject,
            "quarantine" => Action::Quarantine,
            "discard" | "null" => Action::Discard,
            "tempfail" | "defer" => Action::TempFail,
            "reject" => Action::Reject,
            _ => return None,
        })
    }
}

/// Score limits: a total at or above a limit takes that action. A limit of 0 or less is off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub tag: f64,
    /// How "tag" is done: [`Action::TagHeader`] or [`Action::TagSubject`].
    pub tag_action: Action,
    pub quarantine: f64,
    pub reject: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds { tag: 5.0, tag_action: Action::TagHeader, quarantine: 10.0, reject: 15.0 }
    }
}

impl Thresholds {
    pub fn action_for(&self, score: f64) -> Action {
        let on = |limit: f64| limit > 0.0 && score >= limit;
        if on(self.reject) {
            Action::Reject
        } else if on(self.quarantine) {
            Action::Quarantine
        } else if on(self.tag) {
            self.tag_action
        } else {
            Action::Deliver
        }
    }
}

/// An outcome a list entry imposes whatever the score (`:NULL`, `:NoNDR`, honeypots,
/// whitelists), with the symbol that caused it.
#[derive(Debug, Clone, PartialEq)]
pub enum Force {
    /// Whitelisted: deliver untouched.
    Pass(String),
    /// Accept and drop silently.
    Discard(String),
    /// Spam, but accept it (quarantine) rather than send an error: the reference `:NoNDR`.
    NoNdr(String),
}

/// How an unfiltered recipient is treated (the reference `:TAG` / `:TAGSUBJECT` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfiltered {
    /// Pass all.
    Pass,
    /// Deliver no matter what, but mark spam with the header.
    Tag,
    /// Deliver no matter what, but mark spam in the subject.
    TagSubject,
}

/// The symbols found so far and the forces that apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    symbols: Vec<Symbol>,
    forces: Vec<Force>,
}

impl Verdict {
    pub fn new() -> Verdict {
        Verdict::default()
    }

    /// Adds a symbol; a symbol of the same name replaces the earlier one (a check that runs
    /// twice, for example at MAIL and again after RSET, counts once).
    pub fn add(&mut self, name: impl Into<String>, score: f64, reason: impl Into<String>) {
        let name = name.into();
        let reason = reason.into();
        match self.symbols.iter_mut().find(|s| s.name == name) {
            Some(s) => {
                s.score = score;
                s.reason = reason;
            }
            None => self.symbols.push(Symbol { name, score, reason }),
        }
    }

    pub fn force(&mut self, f: Force) {
        if !self.forces.contains(&f) {
            self.forces.push(f);
        }
    }

    pub fn extend(&mut self, other: &Verdict) {
        for s in &other.symbols {
            self.add(s.name.clone(), s.score, s.reason.clone());
        }
        for f in &other.forces {
            self.force(f.clone());
        }
    }

    /// Keeps only the symbols, and the forces, whose name `keep` accepts (a force's name is the
    /// symbol or list that set it, before any `:`). How a check disabled for a domain is undone.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.symbols.retain(|s| keep(&s.name));
        self.forces.retain(|f| {
            let name = match f {
                Force::Pass(n) | Force::Discard(n) | Force::NoNdr(n) => n,
            };
            keep(name.split(':').next().unwrap_or(name))
        });
    }

    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    pub fn forces(&self) -> &[Force] {
        &self.forces
    }

    /// Whether a whitelist (or trusted network) forced a pass.
    pub fn whitelisted(&self) -> bool {
        self.forces.iter().any(|f| matches!(f, Force::Pass(_)))
    }

    pub fn has(&self, name: &str) -> bool {
        self.symbols.iter().any(|s| s.name == name)
    }

    pub fn score(&self) -> f64 {
        self.symbols.iter().map(|s| s.score).sum()
    }

    /// The action for this verdict: whitelists pass, `:NULL` discards, a spam total under
    /// `:NoNDR` is quarantined instead of rejected, an unfiltered recipient is delivered
    /// (tagged if the total would otherwise have been spam).
    pub fn action(&self, t: &Thresholds, unfiltered: Option<Unfiltered>) -> Action {
        if self.whitelisted() {
            return Action::Deliver;
        }
        let by_score = t.action_for(self.score());
        if let Some(u) = unfiltered {
            let spam = by_score > Action::Deliver || self.forces.iter().any(|f| matches!(f, Force::Discard(_) | Force::NoNdr(_)));
            return match (u, spam) {
                (_, false) | (Unfiltered::Pass, true) => Action::Deliver,
                (Unfiltered::Tag, true) => Action::TagHeader,
                (Unfiltered::TagSubject, true) => Action::TagSubject,
            };
        }
        if self.forces.iter().any(|f| matches!(f, Force::Discard(_))) {
            return Action::Discard;
        }
        if by_score == Action::Reject && self.forces.iter().any(|f| matches!(f, Force::NoNdr(_))) {
            return Action::Quarantine;
        }
        by_score
    }

    /// The symbol breakdown for headers and logs: `DNSBL_ZEN(6), RDNS_NONE(2)`, highest first.
    pub fn breakdown(&self) -> String {
        let mut v: Vec<&Symbol> = self.symbols.iter().collect();
        v.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal).then(a.name.cmp(&b.name)));
        let mut out = String::new();
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&s.name);
            out.push('(');
            out.push_str(&fmt_score(s.score));
            out.push(')');
        }
        for f in &self.forces {
            if !out.is_empty() {
                out.push_str(", ");
            }
            let (kind, name) = match f {
                Force::Pass(n) => ("pass", n),
                Force::Discard(n) => ("discard", n),
                Force::NoNdr(n) => ("nondr", n),
            };
            out.push_str(&format!("{name}[{kind}]"));
        }
        out
    }

    /// The most severe symbol's reason (for the text of a rejection).
    pub fn main_reason(&self) -> Option<&Symbol> {
        self.symbols.iter().max_by(|a, b| a.score.partial_cmp(&b.score).unwrap_or(std::cmp::Ordering::Equal))
    }

    /// Header lines (CRLF-terminated) carrying the result, folded to stay under 78 columns
    /// where the breakdown allows: `X-mxguard-Score`, `X-mxguard-Action`, `X-mxguard-Symbols`.
    pub fn headers(&self, action: Action) -> String {
        let mut h = format!("X-mxguard-Score: {}\r\nX-mxguard-Action: {}\r\n", fmt_score(self.score()), action.as_str());
        let b = self.breakdown();
        if !b.is_empty() {
            h.push_str(&fold("X-mxguard-Symbols:", &b));
        }
        h
    }
}

/// A score as shown to people: at most two decimals, no trailing zeros.
pub fn fmt_score(s: f64) -> String {
    let t = format!("{s:.2}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    if t == "-0" {
        "0".to_string()
    } else {
        t.to_string()
    }
}

/// `name value` as a header folded at `, ` boundaries (RFC 5322 §2.2.3), CRLF-terminated;
/// unfolding gives back `value` exactly.
fn fold(name: &str, value: &str) -> String {
    let mut out = String::from(name);
    let mut col = name.len();
    let parts: Vec<&str> = value.split(", ").collect();
    for (i, part) in parts.iter().enumerate() {
        let sep = if i + 1 < parts.len() { "," } else { "" };
        let len = part.len() + sep.len();
        if i > 0 && col + 1 + len > 76 {
            out.push_str("\r\n\t");
            col = 1;
        } else {
            out.push(' ');
            col += 1;
        }
        out.push_str(part);
        out.push_str(sep);
        col += len;
    }
    out.push_str("\r\n");
    out
}

/// Prefixes the Subject of `head` (the header block, CRLF line ends, ending before the blank
/// line or at the end of the slice) with `tag`, or adds a Subject if there is none. Returns the
/// new header block. A subject already starting with the tag is left alone.
pub fn tag_subject(head: &[u8], tag: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + tag.len() + 16);
    let mut found = false;
    let mut rest = head;
    while !rest.is_empty() {
        let end = rest.windows(2).position(|w| w == b"\r\n").map(|p| p + 2).unwrap_or(rest.len());
        let line = &rest[..end];
        if !found && line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"subject:") {
            found = true;
            let value = &line[8..];
            let trimmed = value.iter().position(|b| *b != b' ' && *b != b'\t').map(|p| &value[p..]).unwrap_or(b"");
            out.extend_from_slice(b"Subject: ");
            if !trimmed.starts_with(tag.as_bytes()) {
                out.extend_from_slice(tag.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(trimmed);
            if !trimmed.ends_with(b"\r\n") {
                out.extend_from_slice(b"\r\n");
            }
        } else {
            out.extend_from_slice(line);
        }
        rest = &rest[end..];
    }
    if !found {
        out.extend_from_slice(format!("Subject: {tag}\r\n").as_bytes());
    }
    out
}

#[cfg(test)]
mod tests;
