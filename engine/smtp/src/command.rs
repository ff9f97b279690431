//! Parsing one SMTP command line (without its CRLF) into a [`Command`].
//!
//! Pure and total: every input yields a command or a [`Reply`] saying what is wrong with it; no
//! input panics (a fuzz target holds it to that). Addresses are checked against RFC 5321's
//! mailbox syntax, liberal where real senders differ from it the way Postfix is (a space after
//! the colon, addresses without angle brackets, repeated dots in the local part).

use crate::reply::Reply;

/// The longest mailbox accepted (RFC 5321 §4.5.3.1.3 limits a path to 256 octets).
pub const MAX_ADDRESS_BYTES: usize = 256;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Mail(MailFrom),
    Rcpt(String),
    Data,
    Bdat { size: u64, last: bool },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    /// A command we know and refuse (AUTH, ETRN, TURN, …): an MX does not offer them.
    NotImplemented(&'static str),
    /// Looks like an HTTP request or proxy probe: answer and hang up.
    Http,
}

/// MAIL FROM with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailFrom {
    /// The reverse path; empty for the null sender `<>`.
    pub address: String,
    pub size: Option<u64>,
    pub eight_bit: bool,
    pub smtputf8: bool,
}

fn syntax(text: &'static str) -> Reply {
    Reply::new(501, "5.5.4", text)
}

/// Parses a command line (CRLF already removed).
pub fn parse(line: &[u8]) -> Result<Command, Reply> {
    let line = std::str::from_utf8(line).map_err(|_| {
        Reply::new(500, "5.5.2", "Error: command line is not valid UTF-8")
    })?;
    if line.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(Reply::new(500, "5.5.2", "Error: control character in command"));
    }
    let (verb, arg) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb_upper = verb.to_ascii_uppercase();
    let no_arg = |c: Command| if arg.trim().is_empty() { Ok(c) } else { Err(syntax("Syntax error: no parameters allowed")) };
    match verb_upper.as_str() {
        "HELO" => helo_arg(arg).map(Command::Helo).ok_or_else(|| syntax("Syntax: HELO hostname (at most 255 octets)")),
        "EHLO" => helo_arg(arg).map(Command::Ehlo).ok_or_else(|| syntax("Syntax: EHLO hostname (at most 255 octets)")),
        "MAIL" => parse_mail(arg).map(Command::Mail),
        "RCPT" => parse_rcpt(arg).map(Command::Rcpt),
        "DATA" => no_arg(Command::Data),
        "BDAT" => parse_bdat(arg),
        "RSET" => no_arg(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_arg(Command::Quit),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_arg(Command::StartTls),
        "AUTH" => Ok(Command::NotImplemented("AUTH")),
        "ETRN" => Ok(Command::NotImplemented("ETRN")),
        "TURN" | "ATRN" => Ok(Command::NotImplemented("TURN")),
        "SEND" | "SOML" | "SAML" => Ok(Command::NotImplemented("SEND")),
        "GET" | "POST" | "HEAD" | "PUT" | "CONNECT" | "OPTIONS" => Ok(Command::Http),
        _ => Err(Reply::new(500, "5.5.2", "Error: command not recognized")),
    }
}

/// The longest HELO name taken: a domain is at most 255 octets (RFC 5321 §4.5.3.1.2), and an
/// address literal is shorter; anything longer is not a name, and would only bloat the
/// Received: header, the spool envelope and every log line of the session.
const HELO_MAX: usize = 255;

fn helo_arg(arg: &str) -> Option<String> {
    let a = arg.trim();
    let name = a.split_whitespace().next()?;
    (name.len() <= HELO_MAX).then(|| name.to_string())
}

fn parse_bdat(arg: &str) -> Result<Command, Reply> {
    let mut parts = arg.split_whitespace();
    let size = parts
        .next()
        .filter(|s| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| syntax("Syntax: BDAT size [LAST]"))?;
    let last = match parts.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(syntax("Syntax: BDAT size [LAST]")),
    };
    if parts.next().is_some() {
        return Err(syntax("Syntax: BDAT size [LAST]"));
    }
    Ok(Command::Bdat { size, last })
}

/// Strips `keyword:` (case-insensitive) and any spaces after it.
fn after_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    Some(arg[keyword.len()..].trim_start())
}

fn parse_mail(arg: &str) -> Result<MailFrom, Reply> {
    let rest = after_keyword(arg, "FROM:").ok_or_else(|| syntax("Syntax: MAIL FROM:<address>"))?;
    let (address, params) = split_path(rest, true)?;
    let mut mail = MailFrom { address, ..MailFrom::default() };
    let mut seen_body = false;
    for p in params.split_whitespace() {
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) if mail.size.is_none() => {
                let n = v
                    .parse::<u64>()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| syntax("Bad SIZE parameter"))?;
                mail.size = Some(n);
            }
            ("BODY", Some(v)) if !seen_body => {
                seen_body = true;
                if v.eq_ignore_ascii_case("8BITMIME") {
                    mail.eight_bit = true;
                } else if !v.eq_ignore_ascii_case("7BIT") {
                    return Err(Reply::new(555, "5.5.4", "Unsupported BODY type"));
                }
            }
            ("SMTPUTF8", None) if !mail.smtputf8 => mail.smtputf8 = true,
            ("SIZE" | "BODY" | "SMTPUTF8", _) => return Err(syntax("Bad or repeated MAIL parameter")),
            _ => return Err(Reply::new(555, "5.5.4", "Unsupported MAIL parameter")),
        }
    }
    if !mail.smtputf8 && !mail.address.is_ascii() {
        return Err(Reply::new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"));
    }
    Ok(mail)
}

fn parse_rcpt(arg: &str) -> Result<String, Reply> {
    let rest = after_keyword(arg, "TO:").ok_or_else(|| syntax("Syntax: RCPT TO:<address>"))?;
    let (address, params) = split_path(rest, false)?;
    if !params.trim().is_empty() {
        return Err(Reply::new(555, "5.5.4", "Unsupported RCPT parameter"));
    }
    if address.is_empty() {
        return Err(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
    }
    Ok(address)
}

/// Splits `<path> params` (or a bare `address params`) and validates the path.
fn split_path(s: &str, null_ok: bool) -> Result<(String, &str), Reply> {
    let bad = || Reply::new(501, "5.1.7", "Bad address syntax");
    let (inner, rest) = if let Some(body) = s.strip_prefix('<') {
        let end = closing_bracket(body).ok_or_else(bad)?;
        (&body[..end], &body[end + 1..])
    } else {
        match s.find(' ') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        }
    };
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(bad());
    }
    // A source route `@a,@b:user@dom` is obsolete; its hops are ignored (RFC 5321 §3.3).
    let mailbox = if inner.starts_with('@') {
        inner.split_once(':').map(|(_, m)| m).ok_or_else(bad)?
    } else {
        inner
    };
    if mailbox.is_empty() {
        return if null_ok { Ok((String::new(), rest)) } else { Err(bad()) };
    }
    if mailbox.len() > MAX_ADDRESS_BYTES {
        return Err(Reply::new(501, "5.1.7", "Address too long"));
    }
    validate_mailbox(mailbox, !null_ok).ok_or_else(bad)?;
    Ok((mailbox.to_string(), rest))
}

/// Index of the `>` closing a path, skipping quoted strings.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == '>' && !quoted {
            return Some(i);
        }
    }
    None
}

/// Non-ASCII characters allowed in addresses (RFC 6531): anything but controls (C1 included),
/// so that no Unicode line or control character ever reaches a header or log line.
fn is_utf8_addr_char(c: char) -> bool {
    !c.is_ascii() && !c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) || is_utf8_addr_char(c)
}

/// `local@domain` per RFC 5321 (and RFC 6531 for UTF-8); a recipient may also be a bare
/// `postmaster` (RFC 5321 §4.1.1.3).
fn validate_mailbox(m: &str, is_rcpt: bool) -> Option<()> {
    let at = m.rfind('@');
    let (local, domain) = match at {
        Some(i) => (&m[..i], &m[i + 1..]),
        None if is_rcpt && m.eq_ignore_ascii_case("postmaster") => return Some(()),
        None => return None,
    };
    if local.is_empty() {
        return None;
    }
    if let Some(q) = local.strip_prefix('"') {
        let q = q.strip_suffix('"')?;
        let mut escaped = false;
        for c in q.chars() {
            if escaped {
                // RFC 5321 quoted-pairSMTP: a backslash escapes printable characters only.
                if c.is_control() {
                    return None;
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' || c.is_control() {
                return None;
            }
        }
        if escaped {
            return None;
        }
    } else if !local.chars().all(is_atext) {
        return None;
    }
    validate_domain(domain)
}

fn validate_domain(d: &str) -> Option<()> {
    if let Some(lit) = d.strip_prefix('[') {
        let lit = lit.strip_suffix(']')?;
        if let Some(v6) = lit.strip_prefix("IPv6:").or_else(|| lit.strip_prefix("ipv6:")) {
            return v6.parse::<std::net::Ipv6Addr>().ok().map(|_| ());
        }
        return lit.parse::<std::net::Ipv4Addr>().ok().map(|_| ());
    }
    if d.is_empty() || d.len() > 255 {
        return None;
    }
    let d = d.strip_suffix('.').unwrap_or(d);
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 || label.starts_with('-') || label.ends_with('-') {
            return None;
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || is_utf8_addr_char(c)) {
            return None;
        }
    }
    Some(())
}

/// The domain of an address, lower-cased; empty for the null sender and for `postmaster`.
pub fn domain_of(address: &str) -> String {
    match address.rfind('@') {
        Some(i) => address[i + 1..].trim_end_matches('.').to_ascii_lowercase(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse(line.as_bytes()).unwrap_or_else(|r| panic!("{line:?}: {r}"))
    }
    fn err(line: &str) -> u16 {
        match parse(line.as_bytes()) {
            Err(r) => r.code,
            Ok(c) => panic!("{line:?} parsed as {c:?}"),
        }
    }
    fn from(line: &str) -> MailFrom {
        match ok(line) {
            Command::Mail(m) => m,
            c => panic!("{c:?}"),
        }
    }
    fn rcpt(line: &str) -> String {
        match ok(line) {
            Command::Rcpt(r) => r,
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(ok("ehlo client.example"), Command::Ehlo("client.example".into()));
        assert_eq!(ok("HeLo x"), Command::Helo("x".into()));
        assert_eq!(ok("data"), Command::Data);
        assert_eq!(ok("Quit"), Command::Quit);
        assert_eq!(ok("NOOP anything"), Command::Noop);
        assert_eq!(ok("STARTTLS"), Command::StartTls);
        assert_eq!(ok("RSET"), Command::Rset);
        assert_eq!(ok("VRFY root"), Command::Vrfy);
        assert_eq!(ok("HELP me"), Command::Help);
        assert_eq!(ok("AUTH PLAIN AAAA"), Command::NotImplemented("AUTH"));
        assert_eq!(ok("GET / HTTP/1.0"), Command::Http);
    }

    #[test]
    fn helo_needs_a_name() {
        assert_eq!(err("EHLO"), 501);
        assert_eq!(err("HELO   "), 501);
        assert_eq!(err(&format!("EHLO {}", "a".repeat(256))), 501);
        assert_eq!(ok(&format!("EHLO {}", "a".repeat(255))), Command::Ehlo("a".repeat(255)));
        assert_eq!(err("DATA x"), 501);
        assert_eq!(err("QUIT now"), 501);
        assert_eq!(err("STARTTLS x"), 501);
        assert_eq!(err("FOO"), 500);
        assert_eq!(err(""), 500);
    }

    #[test]
    fn mail_from_variants() {
        assert_eq!(from("MAIL FROM:<a@b.example>").address, "a@b.example");
        assert_eq!(from("MAIL FROM: <a@b.example>").address, "a@b.example");
        assert_eq!(from("mail from:a@b.example").address, "a@b.example");
        assert_eq!(from("MAIL FROM:<>").address, "");
        assert_eq!(from("MAIL FROM:<@relay.example:a@b.example>").address, "a@b.example");
        assert_eq!(from("MAIL FROM:<\"john doe\"@b.example>").address, "\"john doe\"@b.example");
        assert_eq!(from("MAIL FROM:<\"a>b\"@b.example>").address, "\"a>b\"@b.example");
        assert_eq!(from("MAIL FROM:<a@[192.0.2.1]>").address, "a@[192.0.2.1]");
        assert_eq!(from("MAIL FROM:<a@[IPv6:2001:db8::1]>").address, "a@[IPv6:2001:db8::1]");
        let m = from("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8");
        assert_eq!((m.size, m.eight_bit, m.smtputf8), (Some(1000), true, true));
        assert!(!from("MAIL FROM:<a@b> BODY=7bit").eight_bit);
        assert_eq!(from("MAIL FROM:<ü@exämple.de> SMTPUTF8").address, "ü@exämple.de");
    }

    #[test]
    fn mail_from_errors() {
        assert_eq!(err("MAIL <a@b>"), 501);
        assert_eq!(err("MAIL FROM:<a@b"), 501);
        assert_eq!(err("MAIL FROM:<a b@c>"), 501);
        assert_eq!(err("MAIL FROM:<a@b>x"), 501);
        assert_eq!(err("MAIL FROM:<a@>"), 501);
        assert_eq!(err("MAIL FROM:<@b>"), 501);
        assert_eq!(err("MAIL FROM:<a@b..c>"), 501);
        assert_eq!(err("MAIL FROM:<a@-b.c>"), 501);
        assert_eq!(err("MAIL FROM:<a@[999.1.1.1]>"), 501);
        assert_eq!(err("MAIL FROM:<a@b> SIZE=x"), 501);
        assert_eq!(err("MAIL FROM:<a@b> SIZE=1 SIZE=2"), 501);
        assert_eq!(err("MAIL FROM:<a@b> BODY=BINARYMIME"), 555);
        assert_eq!(err("MAIL FROM:<a@b> RET=FULL"), 555);
        assert_eq!(err("MAIL FROM:<a@b> SMTPUTF8=yes"), 501);
        assert_eq!(err("MAIL FROM:<ü@b.example>"), 553);
        assert_eq!(err("MAIL FROM:<postmaster>"), 501);
        let long = format!("MAIL FROM:<{}@b.example>", "a".repeat(300));
        assert_eq!(err(&long), 501);
        assert_eq!(err("MAIL FROM:<a\u{1}b@c>"), 501);
        // Found by fuzzing: C1 controls (NEL) and Unicode line separators are not address text.
        assert_eq!(err("RCPT TO:<k@PTOo\u{214}F\u{85}T> SMTPUTF8"), 501);
        assert_eq!(err("MAIL FROM:<a\u{2028}@b.example> SMTPUTF8"), 501);
        assert_eq!(err("MAIL FROM:<\"a\u{85}\"@b.example> SMTPUTF8"), 501);
        assert_eq!(err("RCPT TO:\"N\t;P\"@x"), 501, "RFC 5321 qtextSMTP has no TAB");
        assert_eq!(err("RCPT TO:\"a\\\u{1c}b\"@x"), 501, "quoted-pair escapes printables only");
        assert_eq!(rcpt("RCPT TO:<\"a\\\"b\"@x.example>"), "\"a\\\"b\"@x.example");
    }

    #[test]
    fn rcpt_to_variants() {
        assert_eq!(rcpt("RCPT TO:<user@example.test>"), "user@example.test");
        assert_eq!(rcpt("rcpt to: <User@Example.TEST>"), "User@Example.TEST");
        assert_eq!(rcpt("RCPT TO:<Postmaster>"), "Postmaster");
        assert_eq!(err("RCPT TO:<>"), 501);
        assert_eq!(err("RCPT TO:<a@b> NOTIFY=NEVER"), 555);
        assert_eq!(err("RCPT FROM:<a@b>"), 501);
        assert_eq!(err("RCPT TO:<root>"), 501);
    }

    #[test]
    fn bdat_arguments() {
        assert_eq!(ok("BDAT 100"), Command::Bdat { size: 100, last: false });
        assert_eq!(ok("bdat 0 last"), Command::Bdat { size: 0, last: true });
        assert_eq!(err("BDAT"), 501);
        assert_eq!(err("BDAT -1"), 501);
        assert_eq!(err("BDAT 10 FIRST"), 501);
        assert_eq!(err("BDAT 10 LAST x"), 501);
        assert_eq!(err("BDAT 99999999999999999999999"), 501);
    }

    #[test]
    fn rejects_binary_junk() {
        assert_eq!(parse(b"\xff\xfe").unwrap_err().code, 500);
        assert_eq!(parse(b"NOOP \0").unwrap_err().code, 500);
        assert_eq!(parse(b"NOOP a\rb").unwrap_err().code, 500);
    }

    #[test]
    fn domain_extraction() {
        assert_eq!(domain_of("a@Example.TEST."), "example.test");
        assert_eq!(domain_of("\"x@y\"@b.c"), "b.c");
        assert_eq!(domain_of("postmaster"), "");
        assert_eq!(domain_of(""), "");
    }
}
