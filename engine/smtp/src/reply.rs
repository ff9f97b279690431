//! SMTP replies: building them on the server side and parsing them on the client side.
//!
//! A [`Reply`] is a code, an optional enhanced status code (RFC 3463) and one or more lines of
//! text. Writing never allocates beyond the output buffer; parsing never panics on any input and
//! bounds the reply it will accept (`MAX_REPLY_BYTES`).

use std::borrow::Cow;

/// A complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `2.1.0`; empty for the greeting and for parsed replies without one.
    pub status: Cow<'static, str>,
    /// Text; several lines are separated by `\n` and sent as a multi-line reply.
    pub text: Cow<'static, str>,
}

impl Reply {
    pub fn new(
        code: u16,
        status: impl Into<Cow<'static, str>>,
        text: impl Into<Cow<'static, str>>,
    ) -> Reply {
        Reply { code, status: status.into(), text: text.into() }
    }

    /// `2xx`.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// `3xx` (the 354 that invites the message).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// `4xx`.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// `5xx`.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Appends the reply in wire form (`250-…\r\n250 …\r\n`) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut lines = self.text.split('\n').peekable();
        let code = itoa3(self.code);
        while let Some(line) = lines.next() {
            out.extend_from_slice(&code);
            out.push(if lines.peek().is_some() { b'-' } else { b' ' });
            if !self.status.is_empty() {
                out.extend_from_slice(self.status.as_bytes());
                out.push(b' ');
            }
            // Never let text break the framing: CR and LF inside a line become spaces.
            out.extend(line.bytes().map(|b| if b == b'\r' { b' ' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The reply on one line, for logs and DSNs: `550 5.1.1 no such user`.
    pub fn one_line(&self) -> String {
        let text = self.text.replace('\n', " ");
        if self.status.is_empty() {
            format!("{} {}", self.code, text)
        } else {
            format!("{} {} {}", self.code, self.status, text)
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.one_line())
    }
}

fn itoa3(code: u16) -> [u8; 3] {
    let c = code.min(999);
    [b'0' + (c / 100) as u8, b'0' + (c / 10 % 10) as u8, b'0' + (c % 10) as u8]
}

/// Longest reply (all lines) the client side accepts before calling the peer broken.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Why a peer's reply could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line does not start with three digits and a separator, or the codes of a multi-line reply differ.
    Malformed(String),
    /// The reply grew past [`MAX_REPLY_BYTES`].
    TooLong,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Malformed(l) => write!(f, "malformed reply line: {l:?}"),
            ReplyError::TooLong => write!(f, "reply longer than {MAX_REPLY_BYTES} bytes"),
        }
    }
}

/// Parses one complete reply from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, or the reply and the bytes it used. Accepts bare
/// LF line ends from peers (be liberal in what you accept from servers), and extracts the enhanced
/// status code when the first line carries one.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut pos = 0;
    let mut code: Option<u16> = None;
    let mut status = String::new();
    let mut text = String::new();
    loop {
        let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) else {
            if buf.len() > MAX_REPLY_BYTES {
                return Err(ReplyError::TooLong);
            }
            return Ok(None);
        };
        let mut line = &buf[pos..pos + nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        pos += nl + 1;
        if pos > MAX_REPLY_BYTES {
            return Err(ReplyError::TooLong);
        }
        let bad = || ReplyError::Malformed(String::from_utf8_lossy(line).into_owned());
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let c = (line[0] - b'0') as u16 * 100 + (line[1] - b'0') as u16 * 10 + (line[2] - b'0') as u16;
        if !(200..600).contains(&c) && !(100..200).contains(&c) {
            return Err(bad());
        }
        if let Some(prev) = code {
            if prev != c {
                return Err(bad());
            }
        }
        let sep = line.get(3).copied();
        if !matches!(sep, None | Some(b' ') | Some(b'-')) {
            return Err(bad());
        }
        let mut rest = if line.len() > 4 { String::from_utf8_lossy(&line[4..]).into_owned() } else { String::new() };
        if code.is_none() {
            if let Some((st, tail)) = split_enhanced(&rest, c) {
                status = st.to_string();
                rest = tail.to_string();
            }
        } else if !status.is_empty() {
            if let Some(tail) = rest.strip_prefix(status.as_str()) {
                rest = tail.trim_start().to_string();
            }
        }
        if code.is_some() {
            text.push('\n');
        }
        text.push_str(&rest);
        code = Some(c);
        if sep != Some(b'-') {
            return Ok(Some((Reply { code: c, status: status.into(), text: text.into() }, pos)));
        }
    }
}

/// `"2.1.0 Ok"` → `("2.1.0", "Ok")` when the class digit agrees with the reply code.
fn split_enhanced(text: &str, code: u16) -> Option<(&str, &str)> {
    let (first, tail) = match text.split_once(' ') {
        Some((a, b)) => (a, b),
        None => (text, ""),
    };
    let mut parts = first.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let ok = class.len() == 1
        && class.as_bytes()[0] == b'0' + (code / 100) as u8
        && (1..=3).contains(&subject.len())
        && (1..=3).contains(&detail.len())
        && subject.bytes().all(|b| b.is_ascii_digit())
        && detail.bytes().all(|b| b.is_ascii_digit());
    ok.then_some((first, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_single_and_multi_line() {
        let mut out = Vec::new();
        Reply::new(250, "2.1.0", "Ok").write_to(&mut out);
        Reply::new(250, "", "mx.example\nPIPELINING\nSIZE 10").write_to(&mut out);
        assert_eq!(out, b"250 2.1.0 Ok\r\n250-mx.example\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
    }

    #[test]
    fn text_cannot_inject_lines() {
        let mut out = Vec::new();
        Reply::new(550, "5.0.0", "a\rb").write_to(&mut out);
        assert_eq!(out, b"550 5.0.0 a b\r\n");
    }

    #[test]
    fn parses_replies() {
        let (r, n) = parse_reply(b"250-mx.example\r\n250-PIPELINING\r\n250 CHUNKING\r\nextra").unwrap().unwrap();
        assert_eq!(n, 46);
        assert_eq!(r.code, 250);
        assert_eq!(r.text, "mx.example\nPIPELINING\nCHUNKING");
        let (r, _) = parse_reply(b"550 5.1.1 <x@y>: unknown\r\n").unwrap().unwrap();
        assert_eq!((r.code, &*r.status, &*r.text), (550, "5.1.1", "<x@y>: unknown"));
        let (r, _) = parse_reply(b"451 4.3.0 a\r\n451-4.3.0 b\r\n").unwrap().unwrap();
        assert_eq!(&*r.text, "a");
        let (r, _) = parse_reply(b"354 End data with <CR><LF>.<CR><LF>\n").unwrap().unwrap();
        assert_eq!((r.code, &*r.status), (354, ""));
        let (r, _) = parse_reply(b"220\r\n").unwrap().unwrap();
        assert_eq!(r.code, 220);
        let (r, _) = parse_reply(b"250 5.1.0 not a status for 2xx\r\n").unwrap().unwrap();
        assert_eq!(&*r.status, "");
    }

    #[test]
    fn incomplete_and_malformed() {
        assert_eq!(parse_reply(b"250-a\r\n250 b").unwrap(), None);
        assert!(parse_reply(b"hello\r\n").is_err());
        assert!(parse_reply(b"250-a\r\n251 b\r\n").is_err());
        assert!(parse_reply(b"25\r\n").is_err());
        assert!(parse_reply(b"250xabc\r\n").is_err());
        assert_eq!(parse_reply(&vec![b'2'; MAX_REPLY_BYTES + 1]), Err(ReplyError::TooLong));
    }
}
