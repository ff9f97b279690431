//! Phishing signs of the links of a message, each a symbol:
//! - `PHISH_TEXT_MISMATCH`: an anchor's visible text names a domain other than its target's
//!   (`<a href="http://evil.example">www.paypal.com</a>`);
//! - `URL_IP_LITERAL`: a link to a bare IP address (any notation);
//! - `URL_USERINFO`: `http://paypal.com@evil.example/` — the part before `@` is a decoy;
//! - `PHISH_LOOKALIKE`: a punycode (`xn--`) host whose label, with look-alike letters folded,
//!   spells a protected brand's domain label (`pаypal.com` with a Cyrillic а);
//! - `URL_SHORTENER`: a link through a URL shortener (hides the target);
//! - `PHISH_FORM`: an HTML form asking for credentials (a password, card or account field)
//!   that posts to a site other than the sender's domain;
//! - `PHISH_BRAND_IN_HOST`: a link whose host spells the sender's or a protected brand's name
//!   inside another registrable domain (`signin-ebay.example.kr`, `wamu4u.com`);
//! - `PHISH_BRAND_SENDER`: mail whose From is a protected brand links to another domain;
//! - `URL_BL`: a link to a host or domain of the local URL blacklist.
//!
//! Pure: links, the sender's domain and the brand/shortener sets in, findings out.

use std::collections::HashSet;

use crate::urls::{domain_in_text, Link};

/// One finding: symbol, reason.
pub type Finding = (&'static str, String);

/// Shorteners known without configuration (more come from `url-shorteners.txt`).
pub const DEFAULT_SHORTENERS: &[&str] = &[
    "bit.ly", "bitly.com", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "buff.ly", "rebrand.ly", "cutt.ly", "shorturl.at",
    "rb.gy", "t.ly", "tiny.cc", "s.id", "v.gd", "bl.ink", "lnkd.in", "soo.gd", "clck.ru", "qrco.de", "shorte.st", "adf.ly",
];

/// Brands protected against look-alikes without configuration (registrable domains; more come
/// from `protected-brands.txt`).
pub const DEFAULT_BRANDS: &[&str] = &[
    "paypal.com", "apple.com", "microsoft.com", "office.com", "outlook.com", "live.com", "google.com", "gmail.com",
    "amazon.com", "facebook.com", "instagram.com", "netflix.com", "linkedin.com", "dropbox.com", "docusign.com",
    "chase.com", "wellsfargo.com", "bankofamerica.com", "citibank.com", "hsbc.com", "barclays.co.uk", "ebay.com",
    "dhl.com", "fedex.com", "ups.com", "usps.com", "whatsapp.com", "twitter.com", "x.com", "adobe.com", "icloud.com",
];

pub struct Sets<'a> {
    pub shorteners: &'a HashSet<String>,
    /// Brand registrable domains; the label before the suffix is what look-alikes imitate.
    pub brands: &'a HashSet<String>,
}

/// The findings for `links` of a message from `from_domain` (the From header's domain).
pub fn check(links: &[Link], from_domain: &str, sets: &Sets<'_>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let once = |sym: &'static str, reason: String, out: &mut Vec<Finding>| {
        if !out.iter().any(|(s, _)| *s == sym) {
            out.push((sym, reason));
        }
    };
    let brand_labels: Vec<(&str, &str)> = sets.brands.iter().filter_map(|b| b.split('.').next().map(|l| (l, b.as_str()))).collect();
    let from_domain = crate::urls::registrable(&from_domain.to_ascii_lowercase());
    let from_label = from_domain.split('.').next().filter(|l| !l.is_empty());
    let from_is_brand = sets.brands.contains(&from_domain);
    for l in links {
        if l.src {
            // Images and scripts: only the blacklist and IP checks apply (done elsewhere).
            continue;
        }
        if let Some(t) = &l.text {
            if let Some(shown) = domain_in_text(t) {
                if shown != l.domain && !l.domain.ends_with(&format!(".{shown}")) {
                    once("PHISH_TEXT_MISMATCH", format!("a link shows {shown} but leads to {}", l.domain), &mut out);
                }
            }
        }
        if l.ip {
            once("URL_IP_LITERAL", format!("a link goes to the bare address {}", l.host), &mut out);
        }
        if l.userinfo {
            once("URL_USERINFO", format!("a link hides its host {} behind user@", l.host), &mut out);
        }
        if sets.shorteners.contains(&l.domain) || sets.shorteners.contains(&l.host) {
            once("URL_SHORTENER", format!("a link goes through the shortener {}", l.host), &mut out);
        }
        if l.form && !l.credentials {
            // A search box or a subscription form: not a harvest.
        } else if l.form && !from_domain.is_empty() && l.domain != from_domain {
            once("PHISH_FORM", format!("a form posts to {}, not to the sender's {from_domain}", l.domain), &mut out);
        } else if l.form && from_domain.is_empty() {
            once("PHISH_FORM", format!("a form posts to {}", l.domain), &mut out);
        }
        if !l.form && !l.ip && l.domain != from_domain {
            // A clickable link whose host spells a protected brand's name as a word (between
            // dots, dashes or underscores: signin_ebay_com.example.kr), or whose domain spells
            // the sender's name as a word of another organisation's (online-banking-bank.example
            // for mail from bank.example). The same name under another suffix (yahoo.co.uk for
            // yahoo.com) is the same organisation and not a sign.
            let has_word = |s: &str, word: &str| s.split(['.', '-', '_']).any(|w| w == word);
            let reg_label = l.domain.split('.').next().unwrap_or("");
            let spelled = brand_labels
                .iter()
                .find(|(label, _)| label.len() >= 4 && *label != reg_label && has_word(&l.host, label))
                .map(|(label, brand)| (*label, *brand))
                .or_else(|| {
                    from_label.filter(|f| f.len() >= 4 && *f != reg_label && has_word(reg_label, f)).map(|f| (f, from_domain.as_str()))
                });
            if let Some((label, brand)) = spelled {
                once("PHISH_BRAND_IN_HOST", format!("a link to {} spells {label} but is not {brand}", l.host), &mut out);
            }
            if from_is_brand && !l.host.is_empty() {
                once("PHISH_BRAND_SENDER", format!("mail from the protected {from_domain} links to {}", l.domain), &mut out);
            }
        }
        if l.host.split('.').any(|label| label.starts_with("xn--")) && !sets.brands.contains(&l.domain) {
            for label in l.host.split('.') {
                let Some(decoded) = label.strip_prefix("xn--").and_then(punycode_decode) else { continue };
                let folded = fold_confusables(&decoded);
                if let Some((_, brand)) = brand_labels.iter().find(|(b, _)| *b == folded) {
                    once("PHISH_LOOKALIKE", format!("{} imitates {brand}", l.host), &mut out);
                }
            }
        }
    }
    out
}

/// Letters that look like ASCII ones, folded to them (Cyrillic, Greek, Latin look-alikes and
/// digits used as letters).
fn fold_confusables(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'а' | 'α' | 'ɑ' | 'à' | 'á' | 'â' | 'ä' | 'å' | 'ā' => 'a',
            'е' | 'ε' | 'è' | 'é' | 'ê' | 'ë' | 'ē' => 'e',
            'о' | 'ο' | 'σ' | 'ò' | 'ó' | 'ô' | 'ö' | 'ø' | '0' => 'o',
            'р' | 'ρ' => 'p',
            'с' | 'ϲ' | 'ç' => 'c',
            'у' | 'ү' | 'ý' | 'ÿ' => 'y',
            'х' | 'χ' => 'x',
            'і' | 'ι' | 'í' | 'ì' | 'î' | 'ï' | 'ı' => 'i',
            '1' => 'l',
            'ѕ' => 's',
            'ԁ' => 'd',
            'һ' => 'h',
            'ј' => 'j',
            'ԛ' => 'q',
            'ԝ' | 'ѡ' => 'w',
            'ո' => 'n',
            'ｍ' | 'м' => 'm',
            'ⅼ' | 'ӏ' => 'l',
            'ν' => 'v',
            'к' | 'κ' => 'k',
            'т' | 'τ' => 't',
            'в' | 'β' => 'b',
            'г' => 'r',
            other => other.to_lowercase().next().unwrap_or(other),
        })
        .collect()
}

/// RFC 3492 Punycode decoding of one label (without `xn--`); `None` on invalid input. The idna
/// crate's decoder (already in the tree through hickory).
fn punycode_decode(input: &str) -> Option<String> {
    if input.len() > 63 {
        return None;
    }
    idna::punycode::decode_to_string(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::urls::extract;

    fn sets() -> (HashSet<String>, HashSet<String>) {
        (DEFAULT_SHORTENERS.iter().map(|s| s.to_string()).collect(), DEFAULT_BRANDS.iter().map(|s| s.to_string()).collect())
    }

    fn syms(html: &str, from: &str) -> Vec<&'static str> {
        let (s, b) = sets();
        let links = extract("", &[html], 100);
        check(&links, from, &Sets { shorteners: &s, brands: &b }).into_iter().map(|f| f.0).collect()
    }

    #[test]
    fn punycode_round_trips_known_labels() {
        assert_eq!(punycode_decode("pypal-4ve").as_deref(), Some("pаypal"), "Cyrillic а");
        assert_eq!(punycode_decode("mnchen-3ya").as_deref(), Some("münchen"));
        assert_eq!(punycode_decode("!!"), None);
    }

    #[test]
    fn each_sign_is_found() {
        assert_eq!(syms(r#"<a href="http://evil.example/login">www.paypal.com</a>"#, "paypal.com"), vec!["PHISH_TEXT_MISMATCH", "PHISH_BRAND_SENDER"]);
        assert!(syms(r#"<a href="https://www.paypal.com/x">paypal.com</a>"#, "paypal.com").is_empty());
        assert_eq!(syms(r#"<a href="http://0x7f000001/">here</a>"#, "a.example"), vec!["URL_IP_LITERAL"]);
        assert_eq!(syms(r#"<a href="http://paypal.com@evil.example/">x</a>"#, "a.example"), vec!["URL_USERINFO"]);
        assert_eq!(syms(r#"<a href="https://xn--pypal-4ve.com/">log in</a>"#, "a.example"), vec!["PHISH_LOOKALIKE"]);
        assert_eq!(syms(r#"<a href="https://bit.ly/3xyz">x</a>"#, "a.example"), vec!["URL_SHORTENER"]);
        assert_eq!(syms(r#"<form action="https://collect.evil.example/p" method=post><input type="password" name=p></form>"#, "bank.example"), vec!["PHISH_FORM"]);
        assert_eq!(syms(r#"<form action="https://collect.evil.example/p"><input name="CardNumber"></form>"#, "bank.example"), vec!["PHISH_FORM"]);
        // A newsletter's search box posts elsewhere and asks for nothing secret.
        assert!(syms(r#"<form action="https://search.example/q"><input name="q"></form>"#, "news.example").is_empty());
        assert_eq!(syms(r#"<a href="http://signin-ebay.example.kr/">x</a>"#, "a.example"), vec!["PHISH_BRAND_IN_HOST"]);
        assert_eq!(syms(r#"<a href="http://online-banking-wamu.example/">x</a>"#, "wamu.com"), vec!["PHISH_BRAND_IN_HOST"]);
        assert!(syms(r#"<a href="http://uk.my.yahoo.com/">x</a>"#, "yahoo.co.uk").is_empty(), "same name, other suffix");
        assert!(syms(r#"<a href="http://www.livejournal.com/">x</a>"#, "a.example").is_empty(), "live is not a word of livejournal");
        assert_eq!(syms(r#"<a href="http://www.dvd.example/">x</a>"#, "paypal.com"), vec!["PHISH_BRAND_SENDER"]);
        // The brand's own subdomains and other senders' ordinary links are not signs.
        assert!(syms(r#"<a href="https://signin.ebay.com/">x</a>"#, "ebay.com").is_empty());
        assert!(syms(r#"<a href="https://partner.example/">x</a>"#, "shop.example").is_empty());
        assert!(syms(r#"<form action="https://www.bank.example/p"></form>"#, "bank.example").is_empty());
        // Legit IDN that imitates nothing.
        assert!(syms(r#"<a href="https://xn--mnchen-3ya.de/">x</a>"#, "a.example").is_empty());
    }
}
