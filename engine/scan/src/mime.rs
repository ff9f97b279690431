//! The parsed form every scanner reads: mail-parser's message plus what the scanners ask of it
//! most — decoded subject, the text of every text and HTML part (HTML rendered to text) up to a
//! byte limit, the raw HTML (for links), the attachments, and MIME defects as symbols.
//!
//! Parsing borrows the spooled bytes (mail-parser's `Cow`s): a part is copied only when its
//! transfer encoding or charset has to be decoded. Malformed MIME never fails the parse; what
//! mail-parser had to guess is reported as a defect. Cost: one pass over the message.

use std::borrow::Cow;

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

/// A MIME defect, named as its symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// The message could not be parsed at all (no header block).
    Unparseable,
    /// A part's transfer encoding (base64, quoted-printable) was broken.
    BadEncoding,
    /// `multipart/*` without a boundary parameter.
    MissingBoundary,
    /// More nested parts than `scan.mime_parts_max`; the rest was not looked at.
    TooManyParts,
    /// 8-bit bytes in a header that is not RFC 2047 encoded nor SMTPUTF8 text.
    RawEightBitHeader,
}

impl Defect {
    pub fn symbol(self) -> &'static str {
        match self {
            Defect::Unparseable => "MIME_UNPARSEABLE",
            Defect::BadEncoding => "MIME_BAD_ENCODING",
            Defect::MissingBoundary => "MIME_MISSING_BOUNDARY",
            Defect::TooManyParts => "MIME_TOO_MANY_PARTS",
            Defect::RawEightBitHeader => "MIME_8BIT_HEADER",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Defect::Unparseable => "the message has no parseable header",
            Defect::BadEncoding => "a part's base64 or quoted-printable encoding is broken",
            Defect::MissingBoundary => "a multipart part has no boundary",
            Defect::TooManyParts => "the message has more MIME parts than are scanned",
            Defect::RawEightBitHeader => "a header holds raw 8-bit bytes",
        }
    }
}

/// An attached (or inline non-text) part.
#[derive(Debug)]
pub struct Attachment<'m> {
    /// The file name given (Content-Disposition filename or Content-Type name).
    pub name: Option<&'m str>,
    /// The declared `type/subtype`, lower case.
    pub declared: String,
    /// The decoded content.
    pub data: &'m [u8],
    pub inline: bool,
    /// The `Content-ID` without its angle brackets (what an HTML part's `cid:` URLs name).
    pub content_id: Option<&'m str>,
}

/// What the scanners read.
pub struct Parsed<'a> {
    pub message: Option<Message<'a>>,
    pub subject: String,
    /// Decoded text of the subject and every text and HTML part (rendered), joined by newlines;
    /// cut at the byte limit (on a character boundary).
    pub text: String,
    /// The text was cut at the limit.
    pub truncated: bool,
    pub text_parts: usize,
    pub html_parts: usize,
    pub defects: Vec<Defect>,
    /// HTML parts whose quoted-printable mail-parser could not decode, decoded leniently here
    /// (a mail client shows them, so the scanners must read them decoded too).
    repaired_html: Vec<String>,
    parts_max: usize,
}

/// mail-parser's default parser, except that Received fields are kept raw: no scanner reads their
/// parsed form (they are read as text, [`header_value`]), and parsing them was a tenth of the cost
/// of parsing a message with a long relay path. Built once.
fn parser() -> &'static MessageParser {
    static PARSER: std::sync::OnceLock<MessageParser> = std::sync::OnceLock::new();
    PARSER.get_or_init(|| {
        use mail_parser::HeaderName as H;
        // mail-parser's built-in choice of parser per field (parsers/header.rs), which applies
        // only while no field is configured; so all of it is spelt out here.
        let mut p = MessageParser::new();
        for h in [H::Subject, H::Comments, H::ContentDescription, H::ContentLocation, H::ContentTransferEncoding] {
            p = p.header_text(h);
        }
        for h in [
            H::From, H::To, H::Cc, H::Bcc, H::ReplyTo, H::Sender, H::ResentTo, H::ResentFrom, H::ResentBcc, H::ResentCc,
            H::ResentSender, H::ListArchive, H::ListHelp, H::ListId, H::ListOwner, H::ListPost, H::ListSubscribe,
            H::ListUnsubscribe,
        ] {
            p = p.header_address(h);
        }
        for h in [H::Date, H::ResentDate] {
            p = p.header_date(h);
        }
        for h in [H::MessageId, H::References, H::InReplyTo, H::ReturnPath, H::ContentId, H::ResentMessageId] {
            p = p.header_id(h);
        }
        for h in [H::Keywords, H::ContentLanguage] {
            p = p.header_comma_separated(h);
        }
        for h in [H::ContentType, H::ContentDisposition] {
            p = p.header_content_type(h);
        }
        p.header_raw(H::MimeVersion).header_raw(H::Received)
    })
}

/// Parses `raw` (the message as received, CRLF lines). `text_max` bounds [`Parsed::text`];
/// `parts_max` bounds the parts looked at (nested messages included).
pub fn parse(raw: &[u8], text_max: usize, parts_max: usize) -> Parsed<'_> {
    let msg = match parser().parse(raw) {
        Some(m) if !m.headers().is_empty() => m,
        _ => {
            return Parsed {
                message: None,
                subject: String::new(),
                text: String::new(),
                truncated: false,
                text_parts: 0,
                html_parts: 0,
                defects: vec![Defect::Unparseable],
                repaired_html: Vec::new(),
                parts_max,
            }
        }
    };
    let subject = msg.subject().unwrap_or("").to_string();
    let (mut text, mut truncated, mut text_parts, mut html_parts) = (String::new(), false, 0, 0);
    push_text(&mut text, &mut truncated, &subject, text_max);
    let mut defects = Vec::new();
    if header_has_raw_8bit(raw) {
        defects.push(Defect::RawEightBitHeader);
    }
    let mut repaired_html = Vec::new();
    let complete = walk(&msg, parts_max, &mut |part, kind| {
        if part.is_encoding_problem && !defects.contains(&Defect::BadEncoding) {
            defects.push(Defect::BadEncoding);
        }
        let multipart = part.content_type().is_some_and(|c| c.ctype().eq_ignore_ascii_case("multipart"));
        if multipart && part.content_type().and_then(|c| c.attribute("boundary")).is_none() && !defects.contains(&Defect::MissingBoundary) {
            defects.push(Defect::MissingBoundary);
        }
        // A body's text, as mail-parser decoded it or as repaired here, and whether it is HTML.
        let repaired = repair(part, kind);
        let body: Option<(&str, bool)> = match (&repaired, kind, &part.body) {
            (Some((decoded, html)), _, _) => Some((decoded.as_str(), *html)),
            (None, Kind::Body, PartType::Text(t)) => Some((t.as_ref(), false)),
            (None, Kind::Body, PartType::Html(h)) => Some((h.as_ref(), true)),
            _ => None,
        };
        match body {
            Some((t, false)) => {
                text_parts += 1;
                push_text(&mut text, &mut truncated, t, text_max);
            }
            Some((h, true)) => {
                html_parts += 1;
                if text.len() < text_max {
                    push_text(&mut text, &mut truncated, &crate::html_text::html_to_text(h), text_max);
                }
            }
            None => {}
        }
        if let Some((decoded, true)) = repaired {
            repaired_html.push(decoded);
        }
    });
    if !complete {
        defects.push(Defect::TooManyParts);
    }
    Parsed { message: Some(msg), subject, text, truncated, text_parts, html_parts, defects, repaired_html, parts_max }
}

/// A body part mail-parser gave up decoding, as the raw quoted-printable text: decoded leniently
/// (what mail clients do), and whether it is HTML. `None` for every other part.
fn repair(part: &MessagePart<'_>, kind: Kind) -> Option<(String, bool)> {
    if !repairable(part, kind) {
        return None;
    }
    let raw = match &part.body {
        PartType::Text(t) | PartType::Html(t) => t.as_ref(),
        _ => return None,
    };
    let html = part.content_type().is_some_and(|c| c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("html")))
        || matches!(part.body, PartType::Html(_));
    Some((String::from_utf8_lossy(&lenient_qp(raw.as_bytes())).into_owned(), html))
}

/// Whether [`repair`] applies: a body part flagged as badly encoded, declared quoted-printable.
fn repairable(part: &MessagePart<'_>, kind: Kind) -> bool {
    // mail-parser files a body it could not decode under the attachments; one without a file
    // name or an `attachment` disposition is still the body the reader sees.
    let body = kind == Kind::Body
        || (kind == Kind::Attachment
            && part.attachment_name().is_none()
            && !part.content_disposition().is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment")));
    part.is_encoding_problem
        && body
        && matches!(part.body, PartType::Text(_) | PartType::Html(_))
        && part.content_transfer_encoding().is_some_and(|e| e.trim().eq_ignore_ascii_case("quoted-printable"))
}

/// Quoted-printable decoding that never fails: `=XY` with two hex digits is the byte, `=` at a
/// line's end (spaces allowed before the break) joins lines, anything else is kept as written.
/// Linear, one output buffer.
pub fn lenient_qp(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b != b'=' {
            out.push(b);
            i += 1;
            continue;
        }
        if let (Some(h), Some(l)) = (input.get(i + 1).and_then(|&c| hex(c)), input.get(i + 2).and_then(|&c| hex(c))) {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        // A soft line break: `=`, optional blanks, then LF or CRLF (or the end).
        let mut j = i + 1;
        while j < input.len() && (input[j] == b' ' || input[j] == b'\t') {
            j += 1;
        }
        if j == input.len() || input[j] == b'\n' || (input[j] == b'\r' && input.get(j + 1) == Some(&b'\n')) {
            i = if j == input.len() { j } else if input[j] == b'\n' { j + 1 } else { j + 2 };
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

/// How a part is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// multipart/* or message/rfc822: holds other parts.
    Container,
    /// A text or HTML body part.
    Body,
    /// An attachment or inline non-text part.
    Attachment,
}

/// Visits every part of `msg` and of the messages nested in it, at most `max`; false when
/// parts were left out.
fn walk<'m, 'a>(msg: &'m Message<'a>, max: usize, f: &mut impl FnMut(&'m MessagePart<'a>, Kind)) -> bool {
    let mut seen = 0usize;
    walk_inner(msg, max, &mut seen, f)
}

fn walk_inner<'m, 'a>(msg: &'m Message<'a>, max: usize, seen: &mut usize, f: &mut impl FnMut(&'m MessagePart<'a>, Kind)) -> bool {
    for (i, part) in msg.parts.iter().enumerate() {
        *seen += 1;
        if *seen > max {
            return false;
        }
        let i = i as u32;
        let kind = match &part.body {
            PartType::Multipart(_) | PartType::Message(_) => Kind::Container,
            _ if msg.attachments.contains(&i) => Kind::Attachment,
            PartType::Text(_) | PartType::Html(_) => Kind::Body,
            _ => Kind::Attachment,
        };
        f(part, kind);
        if let PartType::Message(inner) = &part.body {
            if !walk_inner(inner, max, seen, f) {
                return false;
            }
        }
    }
    true
}

impl<'a> Parsed<'a> {
    /// The raw HTML of each HTML body part.
    pub fn html(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let Some(m) = &self.message {
            walk(m, self.parts_max, &mut |part, kind| {
                if let (Kind::Body, PartType::Html(h)) = (kind, &part.body) {
                    if !repairable(part, kind) {
                        out.push(h.as_ref());
                    }
                }
            });
        }
        out.extend(self.repaired_html.iter().map(String::as_str));
        out
    }

    /// Every attachment (and inline non-text part), decoded.
    pub fn attachments(&self) -> Vec<Attachment<'_>> {
        let mut out = Vec::new();
        if let Some(m) = &self.message {
            walk(m, self.parts_max, &mut |part, kind| {
                if kind != Kind::Attachment || repairable(part, kind) {
                    return;
                }
                let data: &[u8] = match &part.body {
                    PartType::Binary(b) | PartType::InlineBinary(b) => b.as_ref(),
                    PartType::Text(t) | PartType::Html(t) => t.as_bytes(),
                    _ => return,
                };
                let declared = part
                    .content_type()
                    .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_ascii_lowercase())
                    .unwrap_or_default();
                let inline = part.content_disposition().is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"));
                out.push(Attachment { name: part.attachment_name(), declared, data, inline, content_id: part.content_id() });
            });
        }
        out
    }

    /// The raw bytes of every message attached as `message/rfc822` (a user forwarding mail
    /// "as attachment"), at the top level only.
    pub fn attached_messages(&self) -> Vec<&[u8]> {
        let Some(m) = &self.message else { return Vec::new() };
        m.attachments().filter_map(|a| a.message()).map(|inner| inner.raw_message()).filter(|r| !r.is_empty()).collect()
    }

    /// Header fields in order, name and decoded (or raw) value.
    pub fn headers(&self) -> Vec<(&str, Cow<'_, str>)> {
        self.fields().map(|f| (f.name(), f.value())).collect()
    }

    /// Header fields in order, each worked out only as far as its reader asks (decoding and
    /// unfolding every Received field for a reader that only counts them is most of the cost).
    pub fn fields(&self) -> impl Iterator<Item = Field<'_>> {
        self.message.iter().flat_map(|m| m.headers().iter().map(move |h| Field { m, h }))
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        let m = self.message.as_ref()?;
        m.headers().iter().find(|h| h.name.as_str().eq_ignore_ascii_case(name)).map(|h| header_value(m, h))
    }
}

/// One header field of a parsed message.
pub struct Field<'p> {
    m: &'p Message<'p>,
    h: &'p mail_parser::Header<'p>,
}

impl<'p> Field<'p> {
    pub fn name(&self) -> &'p str {
        self.h.name.as_str()
    }

    /// The value as written (folded, not decoded).
    pub fn raw(&self) -> &'p [u8] {
        raw_value(self.m, self.h)
    }

    /// The value decoded where mail-parser decodes it, else as written, unfolded and trimmed.
    pub fn value(&self) -> Cow<'p, str> {
        header_value(self.m, self.h)
    }
}

/// The largest char boundary of `s` at or below `i` (`str::floor_char_boundary`, which needs
/// a newer Rust than the workspace's minimum): where to cut text at a byte limit.
pub fn floor_char_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A header's decoded text, or its raw value unfolded when mail-parser parsed it into a structure.
fn header_value<'m>(m: &'m Message<'_>, h: &'m mail_parser::Header<'_>) -> Cow<'m, str> {
    // Received is kept raw by [`parser`]; read it from the message, unfolded, like other
    // structured fields.
    let text = if h.name == mail_parser::HeaderName::Received { None } else { h.value.as_text() };
    match text {
        Some(t) => Cow::Borrowed(t),
        None => {
            let raw = raw_value(m, h);
            let unfold = |t: &str| t.trim().replace("\r\n", " ");
            match std::str::from_utf8(raw) {
                // Most values are one line of UTF-8: borrowed as they are.
                Ok(t) if !t.contains('\r') => Cow::Borrowed(t.trim()),
                Ok(t) => Cow::Owned(unfold(t)),
                Err(_) => Cow::Owned(unfold(&String::from_utf8_lossy(raw))),
            }
        }
    }
}

/// A header field's value as written in the message (folded, not decoded).
fn raw_value<'m>(m: &'m Message<'_>, h: &mail_parser::Header<'_>) -> &'m [u8] {
    let raw = m.raw_message.as_ref();
    raw.get(h.offset_start as usize..(h.offset_end as usize).min(raw.len())).unwrap_or(&[])
}

fn push_text(out: &mut String, truncated: &mut bool, s: &str, max: usize) {
    if out.len() >= max {
        *truncated |= !s.is_empty();
        return;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let room = max.saturating_sub(out.len());
    if s.len() <= room {
        out.push_str(s);
    } else {
        out.push_str(&s[..floor_char_boundary(s, room)]);
        *truncated = true;
    }
}

/// Raw bytes ≥ 0x80 in the header block (before the first empty line).
fn header_has_raw_8bit(raw: &[u8]) -> bool {
    let end = memchr::memmem::find(raw, b"\r\n\r\n").or_else(|| memchr::memmem::find(raw, b"\n\n")).unwrap_or(raw.len());
    raw[..end].iter().any(|b| *b >= 0x80)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lenient_qp_decodes_what_it_can_and_keeps_the_rest() {
        for (input, want) in [
            ("a=3Db", "a=b"),
            ("soft=\r\nbreak", "softbreak"),
            ("soft= \nbreak", "softbreak"),
            ("x==3Dy", "x==y"),
            ("=ZZ and =4", "=ZZ and =4"),
            ("end=", "end"),
            ("caf=C3=A9", "café"),
        ] {
            assert_eq!(String::from_utf8_lossy(&super::lenient_qp(input.as_bytes())), want, "{input:?}");
        }
    }

    #[test]
    fn html_whose_quoted_printable_mail_parser_refuses_is_read_decoded() {
        // `==` makes mail-parser give up and hand back the raw text; a mail client still shows
        // the link, so the scanners must see it.
        let raw = b"From: a@b.example\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"--b1\"\r\n\r\n\
            ----b1\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
            <p>Update now ==&gt; <a href=3D\"http://10.1.2.3/upd=\r\nate/\">here</a></p>\r\n----b1--\r\n";
        let p = super::parse(raw, 1 << 20, 100);
        assert!(p.defects.contains(&super::Defect::BadEncoding));
        let html = p.html();
        assert_eq!(html.len(), 1, "{html:?}");
        assert!(html[0].contains(r#"href="http://10.1.2.3/update/""#), "{}", html[0]);
        assert!(p.text.contains("Update now") && !p.text.contains("=3D"), "{}", p.text);
        assert_eq!(p.html_parts, 1);
        assert!(p.attachments().is_empty(), "the repaired body is no attachment");
    }

    use super::*;

    #[test]
    fn nested_multipart_with_encodings_and_charsets() {
        let raw = b"From: a@b.example\r\nSubject: =?iso-8859-1?q?Gr=FC=DFe?=\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n\
--i\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n\
--i\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>gro=DF <b>wort</b></p>\r\n--i--\r\n\
--o\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAA==\r\n--o--\r\n";
        let p = parse(raw, 1 << 20, 100);
        assert_eq!(p.subject, "Grüße");
        assert!(p.text.contains("hello world"), "{}", p.text);
        assert!(p.text.contains("groß"), "{}", p.text);
        assert_eq!((p.text_parts, p.html_parts), (1, 1));
        let a = p.attachments();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].name, Some("a.bin"));
        assert_eq!(a[0].data, b"MZ\x90\x00");
        assert_eq!(p.html().len(), 1);
        assert!(p.defects.is_empty(), "{:?}", p.defects);
    }

    #[test]
    fn defects_are_flagged_not_fatal() {
        let raw = b"Subject: x\xff\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n";
        let p = parse(raw, 1 << 20, 100);
        assert!(p.defects.contains(&Defect::MissingBoundary), "{:?}", p.defects);
        assert!(p.defects.contains(&Defect::RawEightBitHeader));
        let p = parse(b"", 100, 100);
        assert_eq!(p.defects, vec![Defect::Unparseable]);
        let raw = b"Subject: y\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!not base64 at all@@@\r\n";
        let _ = parse(raw, 100, 100);
    }

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        let raw = "Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nääääääää\r\n".as_bytes();
        let p = parse(raw, 6, 100);
        assert!(p.truncated);
        assert!(p.text.len() <= 6);
        // A subject alone beyond the limit is a cut text too.
        assert!(parse(b"Subject: a long subject line\r\n\r\nx\r\n", 4, 100).truncated);
    }
}
