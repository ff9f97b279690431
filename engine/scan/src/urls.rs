//! Links: extraction from text and HTML, normalisation, registrable domains, and the phishing
//! signs a link carries.
//!
//! Extraction finds `http://`, `https://` and `www.` links in the decoded text, and `href`,
//! `src` and `action` attributes in HTML with the text of each `<a>`; [`links_of`] adds what
//! Internet Shortcut attachments point at. It is a tolerant scanner,
//! not an HTML parser: it never fails, and looks at each byte a bounded number of times.
//! Normalisation lower-cases scheme and host, drops userinfo (remembered), port and trailing dots,
//! decodes `%xx` in the host, and reads decimal/hex/octal IPv4 hosts as the address they are.
//! The registrable domain comes from the public suffix list (compiled in, `psl` crate).
//! Never does this module resolve or fetch anything: lookups (SURBL) belong to the DNS layer.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

/// One link as found.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Normalised URL (`scheme://host/path...`).
    pub url: String,
    /// Host, lower case, punycode as written.
    pub host: String,
    /// Registrable domain (`example.co.uk`), or the host for IP literals and unknown suffixes.
    pub domain: String,
    /// The host is an IP literal (in any notation).
    pub ip: bool,
    /// The URL carried `user@` before the host.
    pub userinfo: bool,
    /// The visible text of the `<a>` element, when found in HTML.
    pub text: Option<String>,
    /// Found as a `<form action>`.
    pub form: bool,
    /// A form with a password, card, PIN or account field.
    pub credentials: bool,
    /// Found as an `<img src>` (and other `src`).
    pub src: bool,
    /// Found in an HTML attribute (an anchor, form or `src`), not written as plain text.
    pub html: bool,
    /// The port written after the host, if any.
    pub port: Option<u16>,
    /// Tabs or line breaks (often as `&#9;` `&#10;`) were written inside the URL: browsers
    /// drop them, filters that do not are fooled (`http://rds.yaho&#10;o.com/`).
    pub obfuscated: bool,
    /// The click tracker or redirector this link went through, when its target was written in
    /// it and the link was resolved to that target ([`crate::redirects`]).
    pub via: Option<String>,
}

impl Link {
    /// The path, without query or fragment (`/a/b` of `http://h/a/b?q#f`).
    pub fn path(&self) -> &str {
        let after_host = self.url.find("://").map_or(0, |i| i + 3);
        let rest = &self.url[after_host..];
        let rest = rest.find('/').map_or("", |i| &rest[i..]);
        rest.split(['?', '#']).next().unwrap_or("")
    }
}

/// The links of a message, at most `max`: those of its text and HTML parts ([`extract`]), then
/// those of its calendar invitations, then the web addresses of its Internet Shortcut
/// attachments that [`crate::shortcut::read`] passes (a link sent as a file is checked like one
/// in the text). Links through redirectors that carry their target are resolved to it
/// ([`crate::redirects`]). The scan and the Bayes tokens of a message both take its links from here.
pub fn links_of(text: &str, html: &[&str], atts: &[crate::mime::Attachment<'_>], max: usize) -> Vec<Link> {
    let mut links = gather(text, html, atts, max);
    // Click trackers and redirectors that carry their target: judged by where they go.
    for l in &mut links {
        crate::redirects::resolve(l);
    }
    links
}

fn gather(text: &str, html: &[&str], atts: &[crate::mime::Attachment<'_>], max: usize) -> Vec<Link> {
    let mut links = extract(text, html, max);
    // Calendar invitations (`.ics`, text/calendar): their URL, ATTACH, DESCRIPTION and LOCATION
    // links are links of the message, read from the unfolded text (RFC 5545 §3.1: a line
    // break followed by a space or tab continues the line).
    for a in atts.iter().filter(|a| is_calendar(a)) {
        let text = String::from_utf8_lossy(a.data).replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "").replace("\n\t", "");
        // Text escapes inside DESCRIPTION (`\n`, `\,`) end a link as a space would.
        let text = text.replace("\\n", " ").replace("\\N", " ").replace("\\,", " ").replace("\\;", " ");
        if !add_new(&mut links, extract(&text, &[], max), max) {
            return links;
        }
    }
    for a in atts {
        // The extension as the attachment check reads it, so both see the same shortcuts.
        let is_shortcut = a.name.is_some_and(|n| crate::shortcut::is_shortcut_extension(&crate::attachments::extension(n)));
        let Some(targets) = is_shortcut.then(|| crate::shortcut::read(a.data).ok()).flatten() else { continue };
        if !add_new(&mut links, extract(&targets.join("\n"), &[], max), max) {
            return links;
        }
    }
    links
}

/// Adds the links in `text` (found elsewhere than the body: a QR code's text) that `links` does
/// not hold yet, each judged by where it goes as [`links_of`] does; the hosts of those added.
pub fn add_from_text(links: &mut Vec<Link>, text: &str, max: usize) -> Vec<String> {
    let mut more = extract(text, &[], max);
    for l in &mut more {
        crate::redirects::resolve(l);
    }
    let before = links.len();
    add_new(links, more, max);
    links[before..].iter().map(|l| l.host.clone()).collect()
}

/// Adds the links of `more` that `links` does not hold yet (by URL); false once it holds `max`.
fn add_new(links: &mut Vec<Link>, more: Vec<Link>, max: usize) -> bool {
    for l in more {
        if links.len() >= max {
            return false;
        }
        if !links.iter().any(|o| o.url == l.url) {
            links.push(l);
        }
    }
    true
}

/// A calendar invitation, by its name or declared type.
fn is_calendar(a: &crate::mime::Attachment<'_>) -> bool {
    a.declared == "text/calendar" || a.declared == "application/ics" || a.name.is_some_and(|n| crate::attachments::extension(n) == "ics")
}

/// Links of the text and the HTML parts, at most `max`, de-duplicated by URL.
pub fn extract(text: &str, html: &[&str], max: usize) -> Vec<Link> {
    let mut out: Vec<Link> = Vec::new();
    // What makes two links one, hashed: only links whose hash was seen are compared with the
    // others (a page of hundreds of links each compared with every other was quadratic).
    let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let mut push = |l: Link, out: &mut Vec<Link>| {
        let mut h = std::hash::DefaultHasher::new();
        (&l.url, &l.text, l.form, l.credentials).hash(&mut h);
        if seen.insert(h.finish()) || !out.iter().any(|o| o.url == l.url && o.text == l.text && o.form == l.form && o.credentials == l.credentials) {
            out.push(l);
        }
    };
    for h in html {
        for (attr, value, anchor_text) in html_links(h) {
            if out.len() >= max {
                return out;
            }
            let decoded = decode_entities(value);
            // As browsers do: tabs and line breaks inside a URL are dropped. Inside the host they
            // are a trick (a long query wrapped by a mailer is not).
            let hidden = authority_of(decoded.trim()).contains(['\t', '\n', '\r']);
            let cleaned: String = if hidden { decoded.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect() } else { decoded };
            if let Some(mut l) = parse(&cleaned) {
                l.obfuscated = hidden;
                l.form = attr == "action";
                l.credentials = l.form && anchor_text.as_deref() == Some(CREDENTIALS);
                l.src = attr == "src";
                l.html = true;
                // A form's slot holds the credentials marker, not text anyone sees.
                l.text = if l.form { None } else { anchor_text.map(|t| decode_entities(&t)) };
                push(l, &mut out);
            }
        }
    }
    for raw in text_links(text) {
        if out.len() >= max {
            break;
        }
        if let Some(l) = parse(raw) {
            push(l, &mut out);
        }
    }
    out
}

/// The part of a URL up to the end of its host (`scheme://user@host:port`).
fn authority_of(url: &str) -> &str {
    let start = url.find("//").map_or(0, |i| i + 2);
    let end = url[start..].find(['/', '?', '#', '\\']).map_or(url.len(), |i| start + i);
    &url[..end]
}

/// Links written in plain text: from `http://`, `https://` or `www.` (any case; `www.` not inside
/// a longer word) to the first space or character a URL cannot hold, less trailing punctuation.
/// Found from the `:` and `.` that end those starts (one SIMD search for two bytes, then a look
/// back of at most five bytes): a search for the starts' letters stopped at nearly every word.
fn text_links(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut last_end = 0;
    for at in memchr::memchr2_iter(b':', b'.', b) {
        // Where the start ending at `at` begins, and where it ends.
        let (start, starts_end) = if b[at] == b':' {
            if !b[at + 1..].starts_with(b"//") {
                continue;
            }
            match at.checked_sub(5) {
                Some(s) if b[s..at].eq_ignore_ascii_case(b"https") => (s, at + 3),
                _ => match at.checked_sub(4) {
                    Some(s) if b[s..at].eq_ignore_ascii_case(b"http") => (s, at + 3),
                    _ => continue,
                },
            }
        } else {
            match at.checked_sub(3) {
                // `www.` inside a longer word is not a new link.
                Some(s) if b[s..at].eq_ignore_ascii_case(b"www") && (s == 0 || !b[s - 1].is_ascii_alphanumeric()) => (s, at + 1),
                _ => continue,
            }
        };
        // Inside a link already taken.
        if start < last_end {
            continue;
        }
        let rest = &text[start..];
        let end = url_end(rest);
        let url = rest[..end].trim_end_matches(['.', ',', ';', ':', ')', ']', '!', '?']);
        last_end = start + end;
        if url.len() > starts_end - start {
            out.push(url);
        }
    }
    out
}

/// Where a link written in text ends: at the first white space (any Unicode space) or character
/// a URL cannot hold, or the end. A byte at a time through ASCII, a character at a time beyond.
fn url_end(rest: &str) -> usize {
    const ENDS: [bool; 128] = {
        let mut t = [false; 128];
        let mut i = 0;
        while i < 128 {
            t[i] = (i as u8).is_ascii_whitespace() || i == 0x0b || matches!(i as u8, b'<' | b'>' | b'"' | b'\'' | b'`' | b'{' | b'}' | b'|' | b'\\' | b'^');
            i += 1;
        }
        t
    };
    let b = rest.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c < 0x80 {
            if ENDS[usize::from(c)] {
                return i;
            }
            i += 1;
        } else {
            let ch = rest[i..].chars().next().unwrap_or(' ');
            if ch.is_whitespace() {
                return i;
            }
            i += ch.len_utf8();
        }
    }
    b.len()
}

/// (`href`|`src`|`action`, value, text of the `<a>` for href) for every link attribute.
fn html_links(html: &str) -> Vec<(&'static str, &str, Option<String>)> {
    let mut out = Vec::new();
    let b = html.as_bytes();
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'<', &b[i..]) {
        let start = i + p + 1;
        let Some(close) = memchr::memchr(b'>', &b[start..]) else { break };
        let tag = &html[start..start + close];
        i = start + close + 1;
        let name_end = tag.find(|c: char| c.is_whitespace() || c == '/').unwrap_or(tag.len());
        // The element's name, lower case, for the few that link (most tags name none: no copy).
        const LINKING: [&str; 7] = ["a", "area", "img", "iframe", "script", "embed", "form"];
        let Some(name) = LINKING.into_iter().find(|n| tag[..name_end].eq_ignore_ascii_case(n)) else { continue };
        let wanted: &[&'static str] = match name {
            "a" | "area" => &["href"],
            "form" => &["action"],
            _ => &["src"],
        };
        for attr in wanted {
            if let Some(v) = attribute(&tag[name_end..], attr) {
                let text = if name == "form" {
                    // Whether the form asks for secrets: its inputs up to </form> (bounded).
                    let cap = crate::mime::floor_char_boundary(html, i + 16384);
                    let rest = &html[i..cap];
                    let body = &rest[..find_ci(rest, "</form").unwrap_or(rest.len())];
                    asks_credentials(body).then(|| CREDENTIALS.to_string())
                } else if name == "a" {
                    // The anchor's text, up to </a>, tags stripped.
                    // Bounded: a page of unclosed anchors must not cost a scan to the end each.
                    let cap = crate::mime::floor_char_boundary(html, i + 4096);
                    let rest = &html[i..cap];
                    let end = find_ci(rest, "</a").unwrap_or(rest.len());
                    Some(strip_tags(&rest[..end]))
                } else {
                    None
                };
                out.push((*attr, v, text));
            }
        }
    }
    out
}

/// Marks a form that asks for credentials (in the anchor-text slot of [`html_links`]).
const CREDENTIALS: &str = "\u{0}credentials";

/// Whether a form's body has an input for a password, card, PIN, SSN or account.
fn asks_credentials(form: &str) -> bool {
    const WORDS: &[&str] = &["password", "passwd", "pwd", "pin", "cvv", "cvc", "ssn", "card", "expir", "account", "login", "userid", "username"];
    let lower = form.to_ascii_lowercase();
    lower.match_indices("<input").any(|(p, _)| {
        let tag = &lower[p..lower[p..].find('>').map(|e| p + e).unwrap_or(lower.len())];
        tag.contains("password") || attribute(tag, "name").or_else(|| attribute(tag, "id")).is_some_and(|n| WORDS.iter().any(|w| n.contains(w)))
    })
}

/// Where `needle` first occurs in `hay`, ASCII letters in any case: compared only where its
/// first byte is (found a block at a time; for a closing tag, the `<`s).
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let first = *n.first()?;
    memchr::memchr2_iter(first.to_ascii_lowercase(), first.to_ascii_uppercase(), h).find(|&p| h[p..].get(..n.len()).is_some_and(|w| w.eq_ignore_ascii_case(n)))
}

/// The text of HTML, tags left out and runs of white space made one space, trimmed.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(256));
    let (mut in_tag, mut space) = (false, false);
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if in_tag => {}
            c if c.is_whitespace() => space = !out.is_empty(),
            c => {
                if std::mem::take(&mut space) {
                    out.push(' ');
                }
                out.push(c);
            }
        }
    }
    out
}

/// The value of `name=` (`name` lower case) in a tag's attribute text (quoted or not), the
/// attribute's name in any case.
fn attribute<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(p) = find_ci(&attrs[from..], name) {
        let at = from + p;
        from = at + name.len();
        let before_ok = at == 0 || attrs.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = attrs[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let vstart = attrs.len() - rest.len() + 1;
        let v = attrs[vstart..].trim_start();
        let (v, _) = match v.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &v[1..];
                (inner.split(q).next().unwrap_or(""), ())
            }
            _ => (v.split(|c: char| c.is_whitespace()).next().unwrap_or(""), ()),
        };
        return Some(v.trim());
    }
    None
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let ent = &rest[1..e];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ if ent.starts_with("#x") || ent.starts_with("#X") => u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32),
                _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses and normalises one link; `None` for what is not an http(s) link with a host.
/// Allocates the link's three strings and, only when the host has `%` escapes, non-ASCII
/// letters, an IP form or a trailing dot, one more.
pub fn parse(raw: &str) -> Option<Link> {
    let raw = raw.trim();
    let starts = |prefix: &str| raw.as_bytes().get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()));
    let (scheme, rest) = if starts("http://") {
        ("http", &raw[7..])
    } else if starts("https://") {
        ("https", &raw[8..])
    } else if starts("www.") {
        ("http", raw)
    } else if starts("//") {
        ("http", &raw[2..])
    } else {
        return None;
    };
    // Browsers take `\` as `/` in the authority.
    let auth_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(auth_end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(p) => (true, &authority[p + 1..]),
        None => (false, authority),
    };
    let (host, port): (Cow<'_, str>, Option<u16>) = if hostport.starts_with('[') {
        let h = hostport.split(']').next().map(|h| format!("{h}]")).unwrap_or_default();
        let port = hostport.rsplit_once("]:").and_then(|(_, p)| p.parse().ok());
        (Cow::Owned(h), port)
    } else {
        let mut it = hostport.splitn(2, ':');
        (Cow::Borrowed(it.next().unwrap_or("")), it.next().and_then(|p| p.parse().ok()))
    };
    let host = if host.contains('%') { Cow::Owned(percent_decode(&host)) } else { host };
    let host = if host.bytes().any(|c| c.is_ascii_uppercase() || !c.is_ascii()) { Cow::Owned(host.to_lowercase()) } else { host };
    let host = host.trim_end_matches('.');
    if host.is_empty() || host.len() > 253 || host.contains(|c: char| c.is_whitespace() || c == '<' || c == '"') {
        return None;
    }
    let (host, ip) = match ip_host(host) {
        Some(a) => (a, true),
        None => (host.to_string(), host.starts_with('[')),
    };
    if !ip && !host.contains('.') {
        return None;
    }
    let domain = if ip { host.clone() } else { registrable(&host) };
    let mut url = String::with_capacity(scheme.len() + 3 + host.len() + path.len());
    url.extend([scheme, "://", &host]);
    url.extend(path.chars().map(|c| if c == '\\' { '/' } else { c }));
    Some(Link {
        url,
        host,
        domain,
        ip,
        userinfo,
        text: None,
        form: false,
        credentials: false,
        src: false,
        html: false,
        port,
        obfuscated: false,
        via: None,
    })
}

pub(crate) fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Two hex digits exactly (`from_str_radix` alone would take `%+4` as 0x04).
        if b[i] == b'%' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A host that is an IPv4 address in any notation browsers accept (dotted, decimal `3232235777`,
/// hex `0xc0a80101`, octal parts), as dotted quad.
fn ip_host(host: &str) -> Option<String> {
    // Every form's parts are numbers: a host whose last label begins with no digit (a name's
    // top-level domain) is none of them, and most hosts end so.
    if !host.rsplit('.').next().is_some_and(|last| last.starts_with(|c: char| c.is_ascii_digit())) {
        return None;
    }
    if let Ok(a) = host.parse::<Ipv4Addr>() {
        return Some(a.to_string());
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let num = |p: &str| -> Option<u64> {
        if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u64::from_str_radix(h, 16).ok()
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse().ok()
        }
    };
    let nums: Option<Vec<u64>> = parts.iter().map(|p| num(p)).collect();
    let nums = nums?;
    let mut v: u64 = 0;
    let n = nums.len();
    for (i, x) in nums.iter().enumerate() {
        if i + 1 < n {
            if *x > 255 {
                return None;
            }
            v |= x << (8 * (3 - i));
        } else {
            let room = 8 * (4 - i as u32);
            if room < 64 && *x >= 1u64 << room {
                return None;
            }
            v |= x;
        }
    }
    Some(Ipv4Addr::from(v as u32).to_string())
}

/// The registrable domain of `host` (public suffix + one label); the host itself when the
/// suffix is unknown.
pub fn registrable(host: &str) -> String {
    match psl::domain(host.as_bytes()) {
        Some(d) => String::from_utf8_lossy(d.as_bytes()).into_owned(),
        None => host.to_string(),
    }
}

/// A domain-looking word in an anchor's text (`www.paypal.com`, `https://paypal.com/login`).
pub fn domain_in_text(text: &str) -> Option<String> {
    let t = text.trim().trim_end_matches(['.', '/']);
    if t.contains(char::is_whitespace) || !t.contains('.') {
        return None;
    }
    let l = parse(t).or_else(|| parse(&format!("http://{t}")))?;
    // A real TLD, not "Version 1.2".
    if l.ip {
        return Some(l.domain);
    }
    psl::suffix(l.host.as_bytes()).filter(|s| s.is_known()).map(|_| l.domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calendar_invitation_brings_its_links_and_redirects_are_resolved() {
        let ics = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Payroll review\r\nURL:https://docs-share.example/review\r\nDESCRIPTION:Sign in to confirm: https://login.ev\r\n il.example/portal\\nThanks\r\nATTACH:https://www.google.com/url?q=https%3A%2F%2Fpay.evil.example%2Fx\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let raw = format!("From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee the invitation.\r\n--b\r\nContent-Type: text/calendar; method=REQUEST\r\nContent-Disposition: attachment; filename=\"invite.ics\"\r\n\r\n{ics}--b--\r\n");
        let p = crate::mime::parse(raw.as_bytes(), 1 << 20, 100);
        let atts = p.attachments();
        let html = p.html();
        let links = links_of(&p.text, &html, &atts, 100);
        let urls: Vec<&str> = links.iter().map(|l| l.url.as_str()).collect();
        assert!(urls.contains(&"https://docs-share.example/review"), "{urls:?}");
        assert!(urls.contains(&"https://login.evil.example/portal"), "a folded line is one line: {urls:?}");
        let resolved = links.iter().find(|l| l.host == "pay.evil.example").expect("the redirect's target");
        assert_eq!(resolved.via.as_deref(), Some("www.google.com"));
    }

    #[test]
    fn a_web_shortcut_attached_is_a_link() {
        let raw = b"From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee http://example.org/a and the file\r\n--b\r\nContent-Type: application/octet-stream; name=\"go.url\"\r\nContent-Disposition: attachment; filename=\"go.url\"\r\n\r\n[DEFAULT]\r\nBASEURL=http://example.org/a\r\n[InternetShortcut]\r\nURL=http://Login.Bank.example.net/x\r\n\r\n--b\r\nContent-Type: application/octet-stream; name=\"bad.url\"\r\nContent-Disposition: attachment; filename=\"bad.url\"\r\n\r\n[InternetShortcut]\r\nURL=file://198.51.100.7/s/x.exe\r\nBASEURL=http://shown.example.com/\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"more.URL. \"\r\n\r\n[InternetShortcut]\r\nURL=https://trailing.example.com/\r\n--b--\r\n";
        let p = crate::mime::parse(raw, 1 << 20, 100);
        let atts = p.attachments();
        let html = p.html();
        let urls = |max| links_of(&p.text, &html, &atts, max).into_iter().map(|l| l.url).collect::<Vec<_>>();
        // The text's link once, the shortcut's own; nothing of the refused shortcut (blocked anyway);
        // a name ending in dots and spaces is a shortcut all the same (Windows drops them).
        assert_eq!(urls(100), vec!["http://example.org/a", "http://login.bank.example.net/x", "https://trailing.example.com/"]);
        assert_eq!(urls(1), vec!["http://example.org/a"]);
    }

    #[test]
    fn links_from_text_and_html() {
        let html = r#"<p>Hi <a HREF="https://Login.PayPal.com.evil.example/x?a=1&amp;b=2">https://www.paypal.com/signin</a>
            <img src='http://img.example.net/p.gif'> <form action=http://203.0.113.9/post method=post></form>"#;
        let links = extract("see www.example.org/page. or http://user@Host.Example.COM:8080/a\\b", &[html], 100);
        let urls: Vec<_> = links.iter().map(|l| l.url.as_str()).collect();
        assert_eq!(
            urls,
            vec![
                "https://login.paypal.com.evil.example/x?a=1&b=2",
                "http://img.example.net/p.gif",
                "http://203.0.113.9/post",
                "http://www.example.org/page",
                "http://host.example.com/a",
            ]
        );
        assert_eq!(links[0].domain, "evil.example");
        assert_eq!(links[0].text.as_deref(), Some("https://www.paypal.com/signin"));
        assert!(links[1].src && links[2].form && links[2].ip);
        assert!(links[4].userinfo);
        assert_eq!(links[4].port, Some(8080));
        assert!(links[0].html && links[1].html && !links[3].html && !links[4].html);
        assert_eq!(links[0].path(), "/x");
        assert_eq!(parse("http://h.example").unwrap().path(), "");
        assert_eq!(parse("http://h.example:280/a/b.php#x").unwrap().path(), "/a/b.php");
        assert_eq!(parse("http://[2001:db8::1]:8443/").unwrap().port, Some(8443));
        let hidden = extract("", &["<form action='http://rds.yaho&#010;o.com/*http://www&#009;.google.com/url'>"], 10);
        assert_eq!(hidden[0].host, "rds.yahoo.com");
        assert!(hidden[0].obfuscated && !links[0].obfuscated);
        let wrapped = extract("", &["<a href='http://www.cnet.example/a?b=1&#10;&amp;c=2'>x</a>"], 10);
        assert!(!wrapped[0].obfuscated, "a line break in the query is a mailer's wrap");
    }

    #[test]
    fn text_link_starts() {
        let t = "a: b. (see HTTPS://A.example/x). Www.b.example, awww.c.example http:// www. \
                 https://d.example/p?q=www.e.example and http://f.example:80/ www.g.example.";
        assert_eq!(
            text_links(t),
            vec!["HTTPS://A.example/x", "Www.b.example", "https://d.example/p?q=www.e.example", "http://f.example:80/", "www.g.example"]
        );
        assert!(text_links("").is_empty() && text_links(":.//").is_empty() && text_links("www").is_empty());
        // Any Unicode space ends a link (here a no-break space and a vertical tab); other letters
        // beyond ASCII are part of it.
        assert_eq!(text_links("http://a.example/caf\u{e9}\u{a0}x http://b.example/\u{b}y"), vec!["http://a.example/caf\u{e9}", "http://b.example/"]);
        assert_eq!(url_end("abc\u{2003}d"), 3);
        assert_eq!(url_end("ab"), 2);
        assert_eq!(find_ci("x</A> </a>", "</a"), Some(1));
        assert_eq!(find_ci("Form FORM", "form"), Some(0));
        assert_eq!(find_ci("</", "</a"), None);
        assert_eq!(strip_tags("  <b>Click</b>\n <i>here</i>\u{a0} now<br> "), "Click here now");
        assert_eq!(attribute(" ID=x HREF = 'a b' href=c", "href"), Some("a b"));
        assert_eq!(attribute(" xhref=a data-src=b", "href"), None);
    }

    #[test]
    fn forms_to_one_target_are_kept_apart_by_what_they_ask() {
        // A search box and a login form posting to the same script: the second is the harvest.
        let html = "<form action='http://h.example/p.php'><input name=q></form>\
                    <form action='http://h.example/p.php'><input type=password name=pw></form>";
        let forms = extract("", &[html], 10);
        assert_eq!(forms.len(), 2, "{forms:?}");
        assert!(!forms[0].credentials && forms[1].credentials);
        assert!(forms.iter().all(|f| f.form && f.text.is_none()), "a form's link has no anchor text");
    }

    #[test]
    fn hosts_normalise() {
        assert_eq!(parse("http://3232235777/").unwrap().host, "192.168.1.1");
        assert_eq!(parse("http://0xc0a80101/").unwrap().host, "192.168.1.1");
        assert_eq!(parse("http://0300.0250.1.1/").unwrap().host, "192.168.1.1");
        assert_eq!(parse("http://ex%61mple.com./").unwrap().host, "example.com");
        assert_eq!(parse("https://a.b.example.co.uk/").unwrap().domain, "example.co.uk");
        assert!(parse("mailto:x@y").is_none());
        assert!(parse("http://localhost/").is_none());
        assert_eq!(domain_in_text("www.PayPal.com"), Some("paypal.com".into()));
        assert_eq!(domain_in_text("Version 1.2"), None);
        assert_eq!(domain_in_text("click here"), None);
    }

    #[test]
    fn never_panics_on_junk() {
        for s in ["<a href=", "<a href='", "<<<>>>", "<a href=\"http://[::1\">x", "http://%", "http://%4", "&#xffffffff;", "<form action>"] {
            let _ = extract(s, &[s], 10);
        }
    }
}
