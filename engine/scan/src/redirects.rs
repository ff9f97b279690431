//! Links through click trackers and redirectors whose target is written in the link itself
//! (`https://www.google.com/url?q=https://evil.example/`, Outlook's safe links,
//! `…awstrack.me/L0/https:%2F%2Fevil.example%2F/…`, `?redirect=`, `?url=`): the link is judged
//! by where it goes. A link is resolved when one of its query values, or one of its path
//! segments, is a whole web address once percent-decoded (once or twice, as trackers nest
//! them); the first such is the target, resolved again (up to [`HOPS`] redirectors deep).
//!
//! A target the link does not carry (sendgrid's `upn=` tokens, shorteners) is not guessed: the
//! link stays the tracker's. Pure: a link in, the link it leads to out. Cost: one pass over the
//! URL's query and path per hop.

use crate::urls::{parse, percent_decode, Link};

/// Redirectors followed at most, one inside the other.
pub const HOPS: usize = 3;

/// The web address `value` holds, if it is one once percent-decoded (up to twice).
fn address_in(value: &str) -> Option<String> {
    let mut v = value.to_string();
    for _ in 0..3 {
        let lower = v.get(..8).map(|p| p.to_ascii_lowercase()).unwrap_or_default();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Some(v);
        }
        if !v.contains('%') {
            return None;
        }
        v = percent_decode(&v);
    }
    None
}

/// The target written in `url`, if any: a query value first (`q=`, `url=`, …), then a path
/// segment.
fn target_in(url: &str) -> Option<String> {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let path_and_query = &rest[rest.find('/').unwrap_or(rest.len())..];
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, q.split('#').next().unwrap_or("")),
        None => (path_and_query.split('#').next().unwrap_or(""), ""),
    };
    for pair in query.split('&') {
        if let Some(t) = pair.split_once('=').and_then(|(_, v)| address_in(&v.replace(['+', ' '], "%20"))) {
            return Some(t);
        }
    }
    // A target in the path: a segment that is an encoded address (`/L0/https:%2F%2Fx%2F/1/`).
    path.split('/').find_map(|seg| if seg.contains('%') { address_in(seg) } else { None })
}

/// Follows the redirectors of `link`: when it carries its target, it becomes the target's
/// link, keeping where and how it was found (its text, HTML, form and picture flags) and
/// naming the first redirector in `via`.
pub fn resolve(link: &mut Link) {
    let first_host = link.host.clone();
    let mut hops = 0;
    while hops < HOPS {
        let Some(t) = target_in(&link.url) else { break };
        let Some(target) = parse(&t) else { break };
        if target.url == link.url {
            break;
        }
        link.url = target.url;
        link.host = target.host;
        link.domain = target.domain;
        link.ip = target.ip;
        link.userinfo |= target.userinfo;
        link.port = target.port;
        link.via = Some(first_host.clone());
        hops += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(url: &str) -> (String, Option<String>) {
        let mut l = parse(url).expect("a link");
        l.text = Some("www.bank.example".into());
        resolve(&mut l);
        assert_eq!(l.text.as_deref(), Some("www.bank.example"), "the anchor text stays");
        (l.url, l.via)
    }

    #[test]
    fn targets_written_in_the_link_are_followed() {
        assert_eq!(resolved("https://www.google.com/url?sa=t&q=https://evil.example/login&usg=x"), ("https://evil.example/login".into(), Some("www.google.com".into())));
        let safelinks = "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fevil.example%2Fa%3Fb%3Dc&data=04";
        assert_eq!(resolved(safelinks).0, "https://evil.example/a?b=c");
        let aws = "https://abc.r.us-east-1.awstrack.me/L0/https:%2F%2Fevil.example%2Fpay/1/0100018c-aaaa/xyz=";
        assert_eq!(resolved(aws), ("https://evil.example/pay".into(), Some("abc.r.us-east-1.awstrack.me".into())));
        // Encoded twice; and nested redirectors, named by the first.
        assert_eq!(resolved("http://t.mailer.example/c?redirect=https%253A%252F%252Fevil.example%252F").0, "https://evil.example/");
        let nested = "https://www.google.com/url?q=https%3A%2F%2Ft.example%2Fr%3Furl%3Dhttps%253A%252F%252Fevil.example%252Fx";
        assert_eq!(resolved(nested), ("https://evil.example/x".into(), Some("www.google.com".into())));
    }

    #[test]
    fn links_without_a_target_in_them_stay() {
        for url in [
            "https://u123.ct.sendgrid.net/ls/click?upn=AbCdEf123",
            "https://bit.ly/3xYz",
            "https://shop.example/search?q=shoes&page=2",
            "https://shop.example/a%20b/c",
            "https://shop.example/?next=/account",
        ] {
            assert_eq!(resolved(url), (parse(url).unwrap().url, None), "{url}");
        }
    }
}
