//! Per-domain policy: each protected domain may turn any check off, set its own thresholds and
//! tagging, and word its own rejections — `domain-policy.txt` in the lists directory, loaded and
//! swapped with the other lists (same `file:line: reason` errors, same all-or-nothing reload).
//!
//! ```text
//! # domain        setting                 = value
//! *               text.dnsbl              = 5.7.1 %IP% is listed (%Reason%); mail to %EMailTo% refused
//! example.com     greylist                = off
//! example.com     verdict.reject_score    = 25
//! example.com     verdict.tag_mode        = subject
//! shop.example    dnsbl                   = off
//! ```
//!
//! `*` applies to every domain; a domain's own lines override it. Settings:
//! - a check name (see [`CHECKS`]) `= on|off`: an off check's symbols (and the list forces it
//!   set) are removed from that domain's recipients' verdicts, and greylisting is skipped. Checks
//!   of the connection still run (the domain is not known before RCPT); they just do not count.
//! - `verdict.tag_score`, `verdict.quarantine_score`, `verdict.reject_score` (numbers),
//!   `verdict.tag_mode` (`header` | `subject`): the domain's thresholds.
//! - `verdict.reject_text`: the domain's rejection text (as the knob of that name).
//! - `text.<check>`: the rejection text when that check's symbol is the main reason.
//!
//! Lookups are a hash probe on the recipient's domain, then one on `*`; nothing is allocated
//! unless the domain has settings.

use std::collections::HashMap;

/// Check names and the symbols each one emits (an entry ending in `_` is a prefix).
pub const CHECKS: &[(&str, &[&str])] = &[
    ("lists", &["BL_"]),
    ("honeypot", &["HONEYPOT", "HONEYPOT_DOMAIN"]),
    ("dnsbl", &["DNSBL_"]),
    ("rdns", &["RDNS_"]),
    ("helo", &["HELO_"]),
    ("sender_mx", &["SENDER_NO_MX"]),
    ("spf", &["SPF_"]),
    ("country", &["COUNTRY_"]),
    ("envelope", &["FROM_EMPTY", "FROM_EQ_TO", "FROM_DOMAIN_EQ_TO_DOMAIN", "RCPT_PERCENT"]),
    ("greylist", &[]),
    // Content checks (engine/scan): the scored rules of content-rules.txt are `rules` whatever
    // their names, so the scanner tags each finding with its check.
    ("keywords", &["KEYWORD_"]),
    ("rules", &[]),
    ("gtube", &["GTUBE"]),
    ("urls", &["URL_", "PHISH_"]),
    ("uribl", &["URIBL_"]),
    ("heuristics", &["HEUR_"]),
    ("mime", &["MIME_"]),
    ("attachments", &["ATTACH_", "ARCHIVE_"]),
    ("images", &["IMAGE_"]),
    ("bayes", &["BAYES_"]),
    // Recent traffic (engine/traffic): copies of the same text, and the sender's history.
    ("bulk", &["BULK", "BULK_"]),
    ("reputation", &["REP_"]),
    // Message authentication (engine/dns/src/auth.rs): off for a domain, its recipients get
    // neither the symbols nor the DMARC policy action.
    ("dkim", &["DKIM_"]),
    ("arc", &["ARC_"]),
    ("dmarc", &["DMARC_"]),
    // ClamAV (engine/av): off for a domain, its recipients' copies are not held for a virus.
    ("antivirus", &["CLAMAV_", "AV_"]),
];

/// The check a symbol belongs to.
pub fn check_of(symbol: &str) -> Option<&'static str> {
    CHECKS.iter().find_map(|(check, names)| {
        names
            .iter()
            .any(|n| if n.ends_with('_') { symbol.starts_with(n) } else { symbol == *n })
            .then_some(*check)
    })
}

/// One domain's (or `*`'s) settings; `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Check name → enabled.
    pub checks: HashMap<&'static str, bool>,
    pub tag_score: Option<f64>,
    pub quarantine_score: Option<f64>,
    pub reject_score: Option<f64>,
    /// `true`: tag the subject; `false`: tag a header.
    pub tag_subject: Option<bool>,
    pub reject_text: Option<String>,
    /// Check name → rejection text.
    pub texts: HashMap<&'static str, String>,
}

/// A domain's settings with `*` beneath them.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    own: Option<&'a Settings>,
    all: Option<&'a Settings>,
}

impl<'a> Resolved<'a> {
    fn pick<T: Clone>(&self, f: impl Fn(&'a Settings) -> Option<T>) -> Option<T> {
        self.own.and_then(&f).or_else(|| self.all.and_then(&f))
    }

    pub fn enabled(&self, check: &str) -> bool {
        self.pick(|s| s.checks.get(check).copied()).unwrap_or(true)
    }

    /// Whether any check is off (so the caller must filter the verdict).
    pub fn any_disabled(&self) -> bool {
        [self.own, self.all].iter().flatten().any(|s| s.checks.values().any(|on| !on))
    }

    /// Whether `symbol` counts for this domain.
    pub fn counts(&self, symbol: &str) -> bool {
        check_of(symbol).is_none_or(|c| self.enabled(c))
    }

    pub fn tag_score(&self) -> Option<f64> {
        self.pick(|s| s.tag_score)
    }
    pub fn quarantine_score(&self) -> Option<f64> {
        self.pick(|s| s.quarantine_score)
    }
    pub fn reject_score(&self) -> Option<f64> {
        self.pick(|s| s.reject_score)
    }
    pub fn tag_subject(&self) -> Option<bool> {
        self.pick(|s| s.tag_subject)
    }

    /// The rejection text for a refusal whose main reason is `symbol`: the check's own text,
    /// else the domain's general one.
    pub fn reject_text(&self, symbol: Option<&str>) -> Option<&'a str> {
        symbol
            .and_then(check_of)
            .and_then(|check| self.pick(|s| s.texts.get(check).map(String::as_str)))
            .or_else(|| self.pick(|s| s.reject_text.as_deref()))
    }
}

/// Every domain's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DomainPolicies {
    by_domain: HashMap<String, Settings>,
    all: Option<Settings>,
}

impl DomainPolicies {
    /// The settings for recipient domain `domain` (any case).
    pub fn for_domain(&self, domain: &str) -> Resolved<'_> {
        let own = if self.by_domain.is_empty() {
            None
        } else if domain.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_domain.get(&domain.to_ascii_lowercase())
        } else {
            self.by_domain.get(domain)
        };
        Resolved { own, all: self.all.as_ref() }
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty() && self.all.is_none()
    }

    /// Domains with settings (`*` counts as one).
    pub fn len(&self) -> usize {
        self.by_domain.len() + self.all.is_some() as usize
    }

    /// Parses the file's text; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<DomainPolicies, String> {
        let mut out = DomainPolicies::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let err = |why: String| format!("{source}:{}: {why}", i + 1);
            let (domain, rest) = line.split_once(char::is_whitespace).ok_or_else(|| err("expected `domain setting = value`".into()))?;
            let (key, value) = rest.split_once('=').ok_or_else(|| err("expected `setting = value`".into()))?;
            let (key, value) = (key.trim(), value.trim());
            let domain = domain.to_ascii_lowercase();
            if domain != "*" && (domain.contains(['*', '?', '@']) || !domain.contains('.')) {
                return Err(err(format!("`{domain}` is not a domain (or `*`)")));
            }
            let s = if domain == "*" { out.all.get_or_insert_with(Settings::default) } else { out.by_domain.entry(domain).or_default() };
            let number = |v: &str| v.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| err(format!("`{v}` is not a number")));
            match key {
                "verdict.tag_score" => s.tag_score = Some(number(value)?),
                "verdict.quarantine_score" => s.quarantine_score = Some(number(value)?),
                "verdict.reject_score" => s.reject_score = Some(number(value)?),
                "verdict.tag_mode" => {
                    s.tag_subject = Some(match value.to_ascii_lowercase().as_str() {
                        "subject" => true,
                        "header" => false,
                        _ => return Err(err(format!("verdict.tag_mode is `header` or `subject`, not `{value}`"))),
                    })
                }
                "verdict.reject_text" => s.reject_text = Some(value.to_string()),
                _ => {
                    let (is_text, name) = match key.strip_prefix("text.") {
                        Some(n) => (true, n),
                        None => (false, key),
                    };
                    let Some((check, _)) = CHECKS.iter().find(|(c, _)| *c == name) else {
                        let names: Vec<&str> = CHECKS.iter().map(|(c, _)| *c).collect();
                        return Err(err(format!("unknown setting `{key}` (checks: {})", names.join(", "))));
                    };
                    if is_text {
                        s.texts.insert(check, value.to_string());
                    } else {
                        let on = match value.to_ascii_lowercase().as_str() {
                            "on" | "yes" | "1" | "true" => true,
                            "off" | "no" | "0" | "false" => false,
                            _ => return Err(err(format!("`{key}` is on or off, not `{value}`"))),
                        };
                        s.checks.insert(check, on);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Loads `path`; a missing file is no settings.
    pub fn load(path: &std::path::Path) -> Result<DomainPolicies, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => DomainPolicies::parse(&path.display().to_string(), &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DomainPolicies::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "
# comment
*               text.dnsbl           = 5.7.1 %IP% is listed; mail to %EMailTo% refused
*               verdict.reject_score = 20
Example.COM     greylist             = off
example.com     verdict.reject_score = 25
example.com     verdict.tag_mode     = subject
shop.example    dnsbl                = off
shop.example    text.lists           = 5.7.1 you are on our list
";

    #[test]
    fn domain_over_star_over_nothing() {
        let p = DomainPolicies::parse("domain-policy.txt", FILE).unwrap();
        let ex = p.for_domain("EXAMPLE.com");
        assert!(!ex.enabled("greylist") && ex.enabled("dnsbl"));
        assert_eq!(ex.reject_score(), Some(25.0));
        assert_eq!(ex.tag_subject(), Some(true));
        let shop = p.for_domain("shop.example");
        assert_eq!(shop.reject_score(), Some(20.0), "from *");
        assert!(!shop.counts("DNSBL_ZEN_TEST") && shop.counts("RDNS_NONE") && shop.counts("SOMETHING_NEW"));
        assert!(shop.any_disabled() && ex.any_disabled());
        assert_eq!(shop.reject_text(Some("BL_IP")), Some("5.7.1 you are on our list"));
        assert_eq!(shop.reject_text(Some("DNSBL_X")), Some("5.7.1 %IP% is listed; mail to %EMailTo% refused"));
        assert_eq!(shop.reject_text(Some("SPF_FAIL")), None);
        let other = p.for_domain("other.test");
        assert!(other.enabled("greylist") && !other.any_disabled());
        assert_eq!(DomainPolicies::default().for_domain("x.test").reject_score(), None);
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, why) in [
            ("example.com dnsbl\n", "expected `setting = value`"),
            ("example.com\n", "expected `domain setting = value`"),
            ("example.com nosuch = on\n", "unknown setting `nosuch`"),
            ("example.com dnsbl = maybe\n", "on or off"),
            ("example.com verdict.reject_score = lots\n", "not a number"),
            ("example.com verdict.tag_mode = loud\n", "header` or `subject"),
            ("*.example.com dnsbl = off\n", "not a domain"),
        ] {
            let e = DomainPolicies::parse("d.txt", &format!("# x\n{text}")).unwrap_err();
            assert!(e.starts_with("d.txt:2: ") && e.contains(why), "{e}");
        }
    }

    #[test]
    fn every_symbol_of_the_policy_stage_has_its_check() {
        for s in ["BL_IP", "BL_TO", "HONEYPOT", "DNSBL_ZEN_TEST", "RDNS_NONE", "HELO_BARE_IP", "SENDER_NO_MX", "SPF_FAIL", "COUNTRY_BL", "FROM_EQ_TO", "RCPT_PERCENT"] {
            assert!(check_of(s).is_some(), "{s}");
        }
        assert_eq!(check_of("HONEYPOT_DOMAIN"), Some("honeypot"));
    }
}
