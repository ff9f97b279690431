//! Replies sent somewhere else than the sender: the Reply-To field, each a symbol:
//! - `REPLYTO_ELSEWHERE`: Reply-To is on another registrable domain than From (outside
//!   mailing lists, which set Reply-To to the list). Common in ham too (a company's newsletter
//!   sent by its mailing service): a small score.
//! - `REPLYTO_FREEMAIL`: the same, and the pairing is a fraud's — the From is a protected brand
//!   (its address, or its name shown) or a free-mail account, or the answers go to a free-mail
//!   account from an organisation's address (an invoice "from" a company whose replies go to a
//!   webmail box: business e-mail compromise, advance-fee fraud).
//!
//! Pure: the From and Reply-To addresses, the From display name and the brand and free-mail
//! sets in, findings out. Registrable domains from the Public Suffix List (`urls::registrable`).

use std::collections::HashSet;

use crate::urls::registrable;

pub type Finding = (&'static str, String);

/// Free-mail providers known without configuration (more come from `freemail-domains.txt`):
/// registrable domains whose accounts anyone can open.
pub const DEFAULT_FREEMAIL: &[&str] = &[
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com", "rocketmail.com", "outlook.com",
    "hotmail.com", "hotmail.co.uk", "hotmail.fr", "live.com", "msn.com", "aol.com", "icloud.com", "me.com", "mail.com",
    "gmx.com", "gmx.net", "gmx.de", "web.de", "yandex.com", "yandex.ru", "mail.ru", "protonmail.com", "proton.me",
    "zoho.com", "qq.com", "163.com", "126.com", "sina.com", "rediffmail.com", "libero.it", "laposte.net", "orange.fr",
    "free.fr", "tutanota.com", "tuta.io", "inbox.com", "usa.net", "naver.com", "seznam.cz", "wp.pl", "o2.pl",
];

/// Domains one operator runs (its own newsletters come from one and answer to another).
const OPERATORS: &[&[&str]] = &[
    &["outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "live.com", "msn.com", "microsoft.com"],
    &["gmail.com", "googlemail.com", "google.com"],
    &["yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com", "rocketmail.com"],
    &["icloud.com", "me.com", "apple.com"],
    &["gmx.com", "gmx.net", "gmx.de", "web.de", "mail.com"],
    &["yandex.com", "yandex.ru"],
    &["protonmail.com", "proton.me"],
    &["tutanota.com", "tuta.io"],
    &["163.com", "126.com"],
];

/// The operator a registrable domain belongs to (itself when it is not one of [`OPERATORS`]).
fn operator(domain: &str) -> &str {
    OPERATORS.iter().find(|group| group.contains(&domain)).map_or(domain, |group| group[0])
}

/// What the check reads of a message.
pub struct Message<'a> {
    /// The From address and display name.
    pub from: &'a str,
    pub from_name: &'a str,
    /// The first Reply-To address, if any.
    pub reply_to: Option<&'a str>,
    pub mailing_list: bool,
}

fn domain_of(address: &str) -> Option<String> {
    let d = address.trim().trim_end_matches('>').rsplit_once('@')?.1.trim().trim_end_matches('.').to_ascii_lowercase();
    (!d.is_empty()).then(|| registrable(&d))
}

/// The brand a display name shows: a protected brand's name (`paypal` of paypal.com) as a
/// word of it.
fn brand_in_name<'b>(name: &str, brands: &'b HashSet<String>) -> Option<&'b str> {
    let words: Vec<String> = name.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() >= 3).map(|w| w.to_lowercase()).collect();
    brands.iter().map(|b| b.as_str()).find(|b| b.split('.').next().is_some_and(|label| words.iter().any(|w| w == label)))
}

pub fn check(m: &Message<'_>, brands: &HashSet<String>, freemail: &HashSet<String>) -> Vec<Finding> {
    let mut out = Vec::new();
    let (Some(reply), Some(from_domain)) = (m.reply_to, domain_of(m.from)) else { return out };
    let Some(reply_domain) = domain_of(reply) else { return out };
    if m.mailing_list || operator(&reply_domain) == operator(&from_domain) {
        return out;
    }
    out.push(("REPLYTO_ELSEWHERE", format!("replies go to {reply_domain}, not to the sender's {from_domain}")));
    let why = if brands.contains(&from_domain) {
        Some(format!("mail from the brand {from_domain} asks for replies at {reply_domain}"))
    } else if let Some(b) = brand_in_name(m.from_name, brands) {
        Some(format!("mail shown as {b} asks for replies at {reply_domain}"))
    } else if freemail.contains(&from_domain) {
        Some(format!("a {from_domain} account asks for replies at {reply_domain}"))
    } else if freemail.contains(&reply_domain) {
        Some(format!("mail from {from_domain} asks for replies at a {reply_domain} account"))
    } else {
        None
    };
    if let Some(why) = why {
        out.push(("REPLYTO_FREEMAIL", why));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets() -> (HashSet<String>, HashSet<String>) {
        let brands = crate::phish::DEFAULT_BRANDS.iter().map(|s| s.to_string()).collect();
        let free = DEFAULT_FREEMAIL.iter().map(|s| s.to_string()).collect();
        (brands, free)
    }

    fn syms(from: &str, name: &str, reply: Option<&str>, list: bool) -> Vec<&'static str> {
        let (b, f) = sets();
        check(&Message { from, from_name: name, reply_to: reply, mailing_list: list }, &b, &f).into_iter().map(|x| x.0).collect()
    }

    #[test]
    fn replies_to_the_sender_or_its_own_domain_are_nothing() {
        assert!(syms("ann@shop.example", "Ann", None, false).is_empty());
        assert!(syms("ann@shop.example", "Ann", Some("sales@shop.example"), false).is_empty());
        // Another host of the same registrable domain (PSL: example.co.uk is one domain).
        assert!(syms("news@mail.shop.co.uk", "Shop", Some("help@www.shop.co.uk"), false).is_empty());
        assert!(syms("Ann@Shop.Example", "Ann", Some("<ann@shop.example.>"), false).is_empty());
        // One operator's domains (MSN's newsletters from hotmail.com answer to msn.com).
        assert!(syms("newsletter@hotmail.com", "MSN Hotmail", Some("reply@msn.com"), false).is_empty());
    }

    #[test]
    fn elsewhere_is_a_small_sign_and_a_fraud_pairing_a_strong_one() {
        // A newsletter sent through a mailing service, answers to the company: the small sign.
        assert_eq!(syms("news@esp-mailer.example", "Shop News", Some("care@shop.example"), false), vec!["REPLYTO_ELSEWHERE"]);
        // Mailing lists set Reply-To to the list.
        assert!(syms("ann@uni.example", "Ann", Some("list@lists.project.example"), true).is_empty());
        // A brand's address or name, answers elsewhere.
        assert_eq!(syms("service@paypal.com", "PayPal", Some("help@secure-desk.example"), false), vec!["REPLYTO_ELSEWHERE", "REPLYTO_FREEMAIL"]);
        assert_eq!(syms("x@mailer.example", "Netflix Billing", Some("billing@renew-now.example"), false), vec!["REPLYTO_ELSEWHERE", "REPLYTO_FREEMAIL"]);
        // Advance-fee: a free-mail account answering to another one.
        assert_eq!(syms("barrister.j@yahoo.com", "Barrister James", Some("james.claims@outlook.com"), false), vec!["REPLYTO_ELSEWHERE", "REPLYTO_FREEMAIL"]);
        // Business e-mail compromise: an organisation's address, answers to a webmail box.
        assert_eq!(syms("accounts@supplier.example", "Accounts", Some("accounts.supplier@gmail.com"), false), vec!["REPLYTO_ELSEWHERE", "REPLYTO_FREEMAIL"]);
        // A word that only contains a brand's name is not the brand.
        assert_eq!(syms("a@mailer.example", "Applesauce Recipes", Some("b@other.example"), false), vec!["REPLYTO_ELSEWHERE"]);
    }

    #[test]
    fn unreadable_addresses_are_nothing() {
        assert!(syms("", "", Some("a@b.example"), false).is_empty());
        assert!(syms("a@b.example", "", Some("not an address"), false).is_empty());
        assert!(syms("a@b.example", "", Some("x@"), false).is_empty());
    }
}
