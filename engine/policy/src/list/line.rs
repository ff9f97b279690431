//! One line of a list file in the reference products' syntax.
//!
//! `# comment` and blank lines are skipped. An entry may end in one option, `:NULL`, `:NoNDR`,
//! `:Honeypot`, `:TAG` or `:TAGSUBJECT` (any case; only these are options, so IPv6 addresses
//! keep their colons). A line that starts with `(` and ends with `)` is a regular expression;
//! a line with `*` or `?` is a DOS-style wildcard; an IP, CIDR or the class-C form `a.b.c.0`
//! is an address entry; anything else is a name (domain or e-mail address), matched exactly
//! without regard to case.

use std::net::IpAddr;

/// The per-entry options of the reference lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Opts {
    /// `:NULL`: accept and drop.
    pub null: bool,
    /// `:NoNDR`: never answer with an error; keep (quarantine) instead.
    pub no_ndr: bool,
    /// `:Honeypot`: the sending IP goes into the temporary ban list.
    pub honeypot: bool,
    /// `:TAG` (unfiltered list): deliver, but mark spam with the header.
    pub tag: bool,
    /// `:TAGSUBJECT` (unfiltered list): deliver, but mark spam in the subject.
    pub tag_subject: bool,
}

/// What a line says.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// An address block (a single address is a /32 or /128).
    Net(IpAddr, u8),
    /// An exact name, lower-case.
    Name(String),
    /// A DOS wildcard, lower-case (`*` any run, `?` one character).
    Wildcard(String),
    /// A regular expression (the whole line, parentheses included).
    Regex(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub kind: Kind,
    pub opts: Opts,
    /// 1-based line number in its file.
    pub number: usize,
}

/// Parses one line; `Ok(None)` for blank lines and comments.
pub fn parse(text: &str, number: usize) -> Result<Option<Line>, String> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
        return Ok(None);
    }
    let (body, opts) = split_option(t)?;
    if body.is_empty() {
        return Err("an option without an entry".into());
    }
    let kind = if body.starts_with('(') && body.ends_with(')') && body.len() >= 2 {
        Kind::Regex(body.to_string())
    } else if let Some(net) = parse_net(body)? {
        net
    } else if body.contains('*') || body.contains('?') {
        if body.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("'{body}': spaces inside an entry"));
        }
        // Names are looked up without their final dot (the root), so an entry written in the
        // fully qualified form (`*.example.com.`) drops it too, as an exact name does.
        Kind::Wildcard(body.trim_end_matches('.').to_ascii_lowercase())
    } else {
        if body.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("'{body}': spaces inside an entry"));
        }
        // No domain is all digits (top-level domains are not numeric): a mistyped address
        // (`10.0.0.300`, `10.0.0`) would otherwise be a name that never matches.
        if body.contains('.') && body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(format!("'{body}': not an IPv4 address"));
        }
        Kind::Name(body.trim_end_matches('.').to_ascii_lowercase())
    };
    Ok(Some(Line { kind, opts, number }))
}

fn split_option(t: &str) -> Result<(&str, Opts), String> {
    let mut opts = Opts::default();
    // Keywords take `::OPTION`; tolerate it here too.
    let Some(p) = t.rfind(':') else { return Ok((t, opts)) };
    let name = &t[p + 1..];
    match name.to_ascii_lowercase().as_str() {
        "null" => opts.null = true,
        "nondr" => opts.no_ndr = true,
        "honeypot" => opts.honeypot = true,
        "tag" => opts.tag = true,
        "tagsubject" => opts.tag_subject = true,
        _ => return Ok((t, opts)),
    }
    Ok((t[..p].trim_end_matches(':').trim_end(), opts))
}

/// An IP, CIDR, or `a.b.c.0` (a class C); `None` when the text is not an address form.
fn parse_net(s: &str) -> Result<Option<Kind>, String> {
    if let Some((ip, len)) = s.split_once('/') {
        let Ok(ip) = ip.parse::<IpAddr>() else {
            return if s.contains('*') || s.contains('?') { Ok(None) } else { Err(format!("'{s}': not an address block")) };
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = len.parse().map_err(|_| format!("'{s}': prefix length is not a number"))?;
        if len > max {
            return Err(format!("'{s}': prefix length above {max}"));
        }
        return Ok(Some(Kind::Net(ip, len)));
    }
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) if v4.octets()[3] == 0 && !v4.is_unspecified() => Ok(Some(Kind::Net(IpAddr::V4(v4), 24))),
        Ok(ip @ IpAddr::V4(_)) => Ok(Some(Kind::Net(ip, 32))),
        Ok(ip @ IpAddr::V6(_)) => Ok(Some(Kind::Net(ip, 128))),
        Err(_) => Ok(None),
    }
}

/// A wildcard as an anchored regular expression (for the multi-pattern matcher).
pub fn wildcard_regex(w: &str) -> String {
    let mut r = String::with_capacity(w.len() * 2 + 2);
    r.push('^');
    for c in w.chars() {
        match c {
            '*' => r.push_str(".*"),
            '?' => r.push('.'),
            c if c.is_ascii_alphanumeric() || c == '@' || c == '-' || c == '_' || !c.is_ascii() => r.push(c),
            c => {
                r.push('\\');
                r.push(c);
            }
        }
    }
    r.push('$');
    r
}
