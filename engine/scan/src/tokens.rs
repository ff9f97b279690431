//! The tokens a message is learnt and classified by (the Bayes table, engine/bayes), each hashed
//! to 64 bits. Here, beside the other scanners, so the message is parsed once for all of them.
//!
//! From the parsed message ([`crate::mime::Parsed`]), in separate namespaces so the same
//! word in the subject and in the body are two tokens:
//! - words of the decoded text (HTML already reduced to text) and of the subject, lower case,
//!   3 to 30 characters; longer ones become a `skip` token of their first character and length
//!   band, numbers longer than 6 digits a `num` token of their length;
//! - word pairs in a window of five (orthogonal sparse bigrams: the pair and its distance), which
//!   catch phrases without a phrase list;
//! - letters spelt apart to dodge filters (`v.i.a.g.r.a`, `v i a g r a`) joined back, plus a
//!   token saying the message does that; words beyond ASCII folded as [`crate::unicode::fold`]
//!   says (invisible characters inside them left out, full-width forms made ASCII, Cyrillic and
//!   Greek look-alikes in a Latin word made Latin), with a token for each trick found;
//! - the names of the header fields present, the From domain and display-name words, the
//!   Reply-To and Message-ID domains, the mailer, the top content type, charset and transfer
//!   encoding, priority and precedence values, the number of hops and of recipients (bucketed);
//! - the relays of the Received fields: the hosts after `from` and `by` with their registrable
//!   domains, every IP address by its network prefixes (and an IPv4 address whole), the protocol
//!   after `with` (where mail came from is what a reputation list knows; here the table learns
//!   it);
//! - of a copy this gateway delivered or quarantined (learnt from a mailbox, a report or a
//!   release), only the fields the message had when it arrived: the gateway's own Received field
//!   comes below the fields it adds, and it and everything above it make no token, and the
//!   subject tag it may have put before the subject (`verdict.subject_tag`) is left out, so the
//!   copy gives the tokens the message was scanned by;
//! - every link's host, registrable domain and first path segment;
//! - every attachment's true type (magic bytes) and extension;
//! - the names of the HTML elements used.
//!
//! A token counts once per message (the output has no duplicates, in no particular order). Cost: linear in
//! the text (bounded by `scan.text_max_bytes` when the message was parsed) and the links; one
//! 64-bit FNV-1a hash per token; ordinary words are built in one reused buffer (only the rare
//! over-long words and long numbers format a token).

use crate::mime::Parsed;
use crate::{magic, unicode, urls};

/// Namespaces: a byte hashed before the token's text.
mod ns {
    pub const BODY: u8 = b'b';
    pub const SUBJECT: u8 = b's';
    pub const PAIR: u8 = b'p';
    pub const SKIP: u8 = b'k';
    pub const NUMBER: u8 = b'n';
    pub const SPELT: u8 = b'o';
    pub const HEADER: u8 = b'h';
    pub const FROM: u8 = b'f';
    pub const FROM_NAME: u8 = b'F';
    pub const REPLY_TO: u8 = b'r';
    pub const MESSAGE_ID: u8 = b'm';
    pub const MAILER: u8 = b'x';
    pub const CONTENT: u8 = b'c';
    pub const URL: u8 = b'u';
    pub const ATTACHMENT: u8 = b'a';
    pub const HTML_TAG: u8 = b't';
    pub const RELAY: u8 = b'R';
}

/// 64-bit FNV-1a over a namespace byte and the token.
pub fn hash(namespace: u8, token: &[u8]) -> u64 {
    fnv(namespace, token.iter().copied())
}

/// [`hash`] of the token with its ASCII letters lower-cased, without making the lower-cased copy.
fn hash_lower(namespace: u8, token: &[u8]) -> u64 {
    fnv(namespace, token.iter().map(u8::to_ascii_lowercase))
}

/// [`hash_lower`] of the parts one after the other, without joining them into one string.
fn hash_lower_parts(namespace: u8, parts: &[&[u8]]) -> u64 {
    fnv(namespace, parts.iter().flat_map(|p| p.iter().map(u8::to_ascii_lowercase)))
}

fn fnv(namespace: u8, bytes: impl Iterator<Item = u8>) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h: u64 = (0xcbf2_9ce4_8422_2325 ^ u64::from(namespace)).wrapping_mul(PRIME);
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    // FNV's low bits are weak for short keys; a final mix spreads them (tables index by them).
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The ASCII bytes that are part of a word: letters, digits, `$` and `'` (trimmed off a word's
/// ends later). Every other ASCII byte separates words.
const fn ascii_word_bytes() -> [bool; 128] {
    let mut t = [false; 128];
    let mut b = 0;
    while b < 128 {
        t[b] = (b as u8).is_ascii_alphanumeric() || b == b'$' as usize || b == b'\'' as usize;
        b += 1;
    }
    t
}
const ASCII_WORD: [bool; 128] = ascii_word_bytes();

/// Up to 64 bytes of a text classified for [`Words::text`]: bit k of `word` is set when byte
/// `base + k` is an ASCII word byte ([`ASCII_WORD`]), of `high` when it is beyond ASCII. With
/// SSE2 (every x86-64 CPU has it) sixteen bytes a step; a byte at a time elsewhere and at the
/// end of the text.
struct Window {
    base: usize,
    /// Bytes classified (64 but at the end); the bits past them are clear.
    n: usize,
    word: u64,
    high: u64,
}

impl Window {
    fn at(b: &[u8], base: usize) -> Window {
        let mut w = Window { base, n: 0, word: 0, high: 0 };
        #[cfg(target_arch = "x86_64")]
        while w.n < 64 {
            let Some(chunk) = b.get(base + w.n..base + w.n + 16) else { break };
            let (word, high) = sse2_masks(chunk);
            w.word |= u64::from(word) << w.n;
            w.high |= u64::from(high) << w.n;
            w.n += 16;
        }
        for &c in b.iter().skip(base + w.n).take(64 - w.n) {
            if c >= 0x80 {
                w.high |= 1 << w.n;
            } else if ASCII_WORD[usize::from(c)] {
                w.word |= 1 << w.n;
            }
            w.n += 1;
        }
        w
    }

    /// Where the bytes classified end.
    fn end(&self) -> usize {
        self.base + self.n
    }
}

/// [`Window`]'s masks of the first sixteen bytes of `chunk`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn sse2_masks(chunk: &[u8]) -> (u32, u32) {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_sub_epi8};
    assert!(chunk.len() >= 16);
    // SAFETY: SSE2 is part of every x86-64 CPU (the target's baseline), so its instructions are
    // always there; the load reads sixteen bytes of `chunk`, which holds at least sixteen, and an
    // unaligned load needs no alignment.
    unsafe {
        let c = _mm_loadu_si128(chunk.as_ptr().cast());
        // Bytes in lo..=lo+span: x - lo (wrapping) is at most span, unsigned.
        let within = |x: __m128i, lo: u8, span: u8| {
            let d = _mm_sub_epi8(x, _mm_set1_epi8(lo as i8));
            _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(span as i8)), d)
        };
        let digit = within(c, b'0', 9);
        // `| 0x20` lower-cases ASCII letters and makes no other ASCII byte a letter.
        let letter = within(_mm_or_si128(c, _mm_set1_epi8(0x20)), b'a', 25);
        let dollar = _mm_cmpeq_epi8(c, _mm_set1_epi8(b'$' as i8));
        let apostrophe = _mm_cmpeq_epi8(c, _mm_set1_epi8(b'\'' as i8));
        let word = _mm_or_si128(_mm_or_si128(digit, letter), _mm_or_si128(dollar, apostrophe));
        let high = _mm_movemask_epi8(c) as u32;
        (_mm_movemask_epi8(word) as u32 & !high, high)
    }
}

/// Words of one text into `out` (hashed), with their pairs.
struct Words<'o> {
    out: &'o mut Vec<u64>,
    namespace: u8,
    /// The last four words' hashes, newest last.
    window: [u64; 4],
    filled: usize,
    /// Single letters in a row (`v.i.a.g.r.a`), lower case.
    spelt: String,
}

impl<'o> Words<'o> {
    fn new(out: &'o mut Vec<u64>, namespace: u8) -> Words<'o> {
        Words { out, namespace, window: [0; 4], filled: 0, spelt: String::new() }
    }

    /// A word is a run of ASCII word bytes and non-ASCII alphanumeric characters; what ends it
    /// (a separator, or a space at the end of the text) decides whether a run of single letters
    /// goes on. Separators after the first are nothing. Words are hashed where they lie in the
    /// text: only a word with non-ASCII letters is copied (to lower-case it).
    ///
    /// Found 64 bytes at a time ([`Window`]): where the next word begins and where an ASCII
    /// word ends are the lowest set bits of masks, so no branch is taken per byte (a branch per
    /// byte, mispredicted at every word's end, was the largest part of the tokenizer's time).
    /// A word with a byte beyond ASCII is read a character at a time ([`Words::word_at`]).
    fn text(&mut self, text: &str) {
        let b = text.as_bytes();
        let mut i = 0;
        let mut w = Window::at(b, 0);
        'words: while i < b.len() {
            if i >= w.end() {
                w = Window::at(b, i);
            }
            // Past the separators, to a word byte or a byte beyond ASCII.
            let starts = (w.word | w.high) >> (i - w.base);
            if starts == 0 {
                i = w.end();
                continue;
            }
            i += starts.trailing_zeros() as usize;
            let start = i;
            let end = loop {
                let p = i - w.base;
                // Word bytes from i: the bits past the window's bytes are clear, so the run
                // stops at its end at most.
                let stop = p + (!(w.word >> p)).trailing_zeros() as usize;
                if stop < w.n {
                    if w.high >> stop & 1 == 1 {
                        i = self.word_at(text, start);
                        continue 'words;
                    }
                    break w.base + stop;
                }
                i = w.end();
                if i == b.len() {
                    break i;
                }
                w = Window::at(b, i);
            };
            let sep = b.get(end).map_or(' ', |&c| char::from(c));
            self.end_word(&text[start..end], true, sep);
            i = (end + 1).min(b.len());
        }
        self.end_spelt();
    }

    /// The word at `start` read a character at a time (it has bytes beyond ASCII, or begins
    /// with a separator beyond ASCII); where the next one may begin.
    fn word_at(&mut self, text: &str, start: usize) -> usize {
        let b = text.as_bytes();
        let mut i = start;
        let mut ascii = true;
        let sep = loop {
            let Some(&c) = b.get(i) else { break ' ' };
            if c < 0x80 {
                if !ASCII_WORD[usize::from(c)] {
                    break char::from(c);
                }
                i += 1;
            } else {
                let ch = text[i..].chars().next().unwrap_or(' ');
                // Invisible characters inside a word (a soft hyphen, a zero-width space) do
                // not end it: they are left out of it later.
                if !ch.is_alphanumeric() && !unicode::invisible(ch) {
                    break ch;
                }
                ascii = false;
                i += ch.len_utf8();
            }
        };
        if i > start {
            self.end_word(&text[start..i], ascii, sep);
        }
        // Past the separator (nothing when the text ended).
        i + sep.len_utf8().min(b.len() - i)
    }

    /// The word `raw` (as written) ended at `sep`.
    fn end_word(&mut self, raw: &str, ascii: bool, sep: char) {
        let b = raw.as_bytes();
        let w = if b.first() == Some(&b'\'') || b.last() == Some(&b'\'') { raw.trim_matches('\'') } else { raw };
        if w.is_empty() {
            return;
        }
        let lowered;
        let (w, n) = if ascii {
            (w, w.len())
        } else {
            let folded = unicode::fold(w);
            for trick in folded.tricks.names() {
                self.out.push(hash(ns::SPELT, trick.as_bytes()));
            }
            lowered = folded.word;
            if lowered.is_empty() {
                return;
            }
            (lowered.as_str(), lowered.chars().count())
        };
        if n == 1 && w.chars().all(char::is_alphabetic) {
            match w.as_bytes() {
                [c] => self.spelt.push(char::from(c.to_ascii_lowercase())),
                _ => self.spelt.push_str(w),
            }
            // A run of single letters survives one separator between them, not a line break.
            if sep == '\n' {
                self.end_spelt();
            }
        } else {
            self.end_spelt();
            self.emit(w, n);
        }
    }

    fn end_spelt(&mut self) {
        if self.spelt.is_empty() {
            // After most words: no run of single letters before them.
            return;
        }
        if self.spelt.chars().count() >= 4 {
            let joined = std::mem::take(&mut self.spelt);
            self.out.push(hash(ns::SPELT, b"spelt-out letters"));
            self.emit(&joined, joined.chars().count());
            self.spelt = joined;
        }
        self.spelt.clear();
    }

    /// A word of `chars` characters, lower case except perhaps for ASCII letters (hashed
    /// lower-cased).
    fn emit(&mut self, w: &str, chars: usize) {
        let h = if chars > 6 && w.bytes().all(|b| b.is_ascii_digit()) {
            hash(ns::NUMBER, format!("{chars}").as_bytes())
        } else if chars > 30 {
            let first = w.chars().next().unwrap_or('?').to_ascii_lowercase();
            hash(ns::SKIP, format!("{first}{}", chars / 10 * 10).as_bytes())
        } else if chars < 3 {
            return;
        } else {
            hash_lower(self.namespace, w.as_bytes())
        };
        self.out.push(h);
        // Pairs with the previous words of the window, each with its distance.
        for d in 1..=self.filled.min(4) {
            let prev = self.window[4 - d];
            self.out.push(prev.rotate_left(17) ^ h ^ (d as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(ns::PAIR));
        }
        self.window.rotate_left(1);
        self.window[3] = h;
        self.filled = (self.filled + 1).min(4);
    }
}

/// What this gateway writes in its own Received field (`by HOST (mxguard) with ...`), the last of
/// the fields it adds to a message.
pub const OWN_RECEIVED_MARK: &str = "(mxguard)";

/// At most this many Received fields below this gateway's own make relay tokens, the nearest
/// first (the farther ones are the easiest to forge, and a message of thousands of fields must
/// not make thousands of tokens).
const RELAYS_MAX: usize = 16;

/// The bytes that separate the words of a Received field: white space and `()[];<>`.
const RELAY_SEPARATOR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_whitespace() || matches!(i as u8, b'(' | b')' | b'[' | b']' | b';' | b'<' | b'>');
        i += 1;
    }
    t
};

/// The relay tokens of one Received field's raw value: the host named after `from` and after `by`
/// and its registrable domain; every address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`, or a bare
/// address after `from`/`by`), an IPv4 address by its /8, /16 and /24 and whole, an IPv6 address by
/// its /32, /48 and /64; the protocol after `with`. All lower case. Dates, queue ids and recipients
/// are left out: they name one message, not a sender. `host` is a reused buffer.
fn relay_tokens(v: &[u8], host: &mut Vec<u8>, out: &mut Vec<u64>) {
    // Address literals: between brackets.
    for open in memchr::memchr_iter(b'[', v) {
        let rest = &v[open + 1..v.len().min(open + 52)];
        if let Some(close) = memchr::memchr(b']', rest) {
            relay_address(&rest[..close], out);
        }
    }
    let mut after: &[u8] = b"";
    for word in v.split(|c| RELAY_SEPARATOR[usize::from(*c)]).filter(|w| !w.is_empty()) {
        let keyword = match word.len() {
            2 | 4 => [&b"from"[..], b"by", b"with"].into_iter().find(|k| word.eq_ignore_ascii_case(k)),
            _ => None,
        };
        match std::mem::replace(&mut after, keyword.unwrap_or(b"")) {
            role @ (b"from" | b"by") if word.contains(&b'.') => {
                if !word.iter().any(u8::is_ascii_alphabetic) {
                    relay_address(word, out);
                    continue;
                }
                out.push(relay(&[role, b":", word]));
                host.clear();
                host.extend(word.iter().map(u8::to_ascii_lowercase));
                if let Some(d) = psl::domain(host) {
                    out.push(relay(&[b"domain:", d.as_bytes()]));
                }
            }
            b"with" => out.push(relay(&[b"with:", word])),
            _ => {}
        }
    }
}

/// The subject and the text (which begins with the subject) without `tag` and the space after
/// it before the subject: a copy this gateway tagged (`verdict.subject_tag`) then gives the words
/// of the message as it arrived. Nothing is cut when `tag` is empty or the subject does not begin
/// with it.
fn untagged<'p>(p: &'p Parsed<'_>, tag: &str) -> (&'p str, &'p str) {
    let rest = match p.subject.strip_prefix(tag) {
        Some(rest) if !tag.is_empty() => rest.strip_prefix(' ').unwrap_or(rest),
        _ => return (&p.subject, &p.text),
    };
    let cut = p.subject.len() - rest.len();
    let text = if p.text.starts_with(&p.subject[..cut]) { &p.text[cut..] } else { &p.text[..] };
    (rest, text)
}

/// A relay token: the parts, lower case, hashed as one.
fn relay(parts: &[&[u8]]) -> u64 {
    hash_lower_parts(ns::RELAY, parts)
}

/// An address-prefix token: the octets hashed as they are (lower-casing them as text would make
/// 65.x and 97.x one network).
fn relay_prefix(family: &[u8], octets: &[u8]) -> u64 {
    fnv(ns::RELAY, family.iter().chain(octets).copied())
}

/// The tokens of an IP address literal (`192.0.2.1`, `IPv6:2001:db8::1`); nothing if it is none.
fn relay_address(literal: &[u8], out: &mut Vec<u64>) {
    let bare = match literal.split_at_checked(5) {
        Some((head, rest)) if head.eq_ignore_ascii_case(b"ipv6:") => rest,
        _ => literal,
    };
    match std::str::from_utf8(bare).ok().and_then(|w| w.parse::<std::net::IpAddr>().ok()) {
        Some(std::net::IpAddr::V4(a)) => (1..=4).for_each(|n| out.push(relay_prefix(b"ip4/", &a.octets()[..n]))),
        Some(std::net::IpAddr::V6(a)) => [4, 6, 8].into_iter().for_each(|n| out.push(relay_prefix(b"ip6/", &a.octets()[..n]))),
        None => {}
    }
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|x| x.1).unwrap_or("").trim_end_matches('>')
}

/// The names of the HTML elements used (`font`, `table`, `img`...): markup habits differ between
/// bulk senders and people, and the text view has lost them.
fn html_tags(html: &str, out: &mut Vec<u64>) {
    let b = html.as_bytes();
    for i in memchr::memchr_iter(b'<', b) {
        let name = &b[i + 1..b.len().min(i + 13)];
        let n = name.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
        if (1..=10).contains(&n) {
            out.push(hash_lower(ns::HTML_TAG, &name[..n]));
        }
    }
}

/// What the value of a header field makes tokens of.
#[derive(Debug, Clone, Copy)]
enum Valued {
    From,
    ReplyTo,
    MessageId,
    Mailer,
    ContentType,
    Priority,
    Recipients,
    Encoding,
}

/// The header fields whose value makes tokens (lower case), and how; one list, so the fields
/// whose value is worked out and the fields that use it cannot drift apart.
const VALUED: &[(&str, Valued)] = &[
    ("from", Valued::From),
    ("reply-to", Valued::ReplyTo),
    ("message-id", Valued::MessageId),
    ("x-mailer", Valued::Mailer),
    ("user-agent", Valued::Mailer),
    ("content-type", Valued::ContentType),
    ("precedence", Valued::Priority),
    ("x-priority", Valued::Priority),
    ("importance", Valued::Priority),
    ("x-msmail-priority", Valued::Priority),
    ("to", Valued::Recipients),
    ("cc", Valued::Recipients),
    ("content-transfer-encoding", Valued::Encoding),
];

fn valued(name: &str) -> Option<Valued> {
    VALUED.iter().find(|(n, _)| name.eq_ignore_ascii_case(n)).map(|&(_, v)| v)
}

/// The tokens of a parsed message, without duplicates (in no particular order).
pub fn tokens(p: &Parsed<'_>, links_max: usize) -> Vec<u64> {
    let html = p.html();
    let atts = p.attachments();
    let links = urls::links_of(&p.text, &html, &atts, links_max);
    tokens_of(p, &html, &links, &atts)
}

/// [`tokens`] with the HTML parts, links and attachments the caller already has (the scan).
pub fn tokens_of(p: &Parsed<'_>, html: &[&str], links: &[urls::Link], atts: &[crate::mime::Attachment<'_>]) -> Vec<u64> {
    let mut out = Vec::with_capacity(p.text.len() / 3 + 64);
    // This gateway's own Received field is the last of the fields it adds (verdict, the
    // authentication results): it and every field above it came on or after arrival.
    let arrived = p
        .fields()
        .position(|f| f.name().eq_ignore_ascii_case("received") && memchr::memmem::find(f.raw(), OWN_RECEIVED_MARK.as_bytes()).is_some())
        .map_or(0, |i| i + 1);
    let tag = if arrived > 0 { mxguard_tuning::VERDICT_SUBJECT_TAG.get_str() } else { "".into() };
    let (subject, text) = untagged(p, &tag);
    Words::new(&mut out, ns::BODY).text(text);
    Words::new(&mut out, ns::SUBJECT).text(subject);
    let mut recipients = 0usize;
    let mut relays: Vec<&[u8]> = Vec::new();
    // Every field is named; the fields of [`VALUED`] also make tokens of their value.
    for f in p.fields().skip(arrived) {
        let name = f.name();
        out.push(hash_lower(ns::HEADER, name.as_bytes()));
        if name.eq_ignore_ascii_case("received") {
            relays.push(f.raw());
            continue;
        }
        let Some(field) = valued(name) else { continue };
        let v = f.value().trim().to_ascii_lowercase();
        match field {
            Valued::From => {
                let address = v.rsplit(['<', ' ']).next().unwrap_or("");
                out.push(hash(ns::FROM, domain_of(address).as_bytes()));
                Words::new(&mut out, ns::FROM_NAME).text(v.split('<').next().unwrap_or(""));
            }
            Valued::ReplyTo => out.push(hash(ns::REPLY_TO, domain_of(&v).as_bytes())),
            Valued::MessageId => out.push(hash(ns::MESSAGE_ID, domain_of(&v).as_bytes())),
            Valued::Mailer => {
                let first = v.split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or("");
                out.push(hash(ns::MAILER, first.as_bytes()));
            }
            Valued::ContentType => {
                out.push(hash(ns::CONTENT, v.split(';').next().unwrap_or("").trim().as_bytes()));
                if let Some(cs) = v.split(';').find_map(|p| p.trim().strip_prefix("charset=")) {
                    out.push(hash_lower_parts(ns::CONTENT, &[b"charset=", cs.trim_matches('"').as_bytes()]));
                }
            }
            Valued::Priority => {
                let first20 = &v[..v.char_indices().nth(20).map_or(v.len(), |(i, _)| i)];
                out.push(hash_lower_parts(ns::HEADER, &[name.as_bytes(), b"=", first20.as_bytes()]));
            }
            Valued::Recipients => recipients += v.matches('@').count(),
            Valued::Encoding => out.push(hash(ns::CONTENT, v.as_bytes())),
        }
    }
    let mut host = Vec::new();
    for r in relays.iter().take(RELAYS_MAX) {
        relay_tokens(r, &mut host, &mut out);
    }
    // How far the message travelled and to how many: buckets, not exact numbers.
    out.push(hash(ns::HEADER, format!("received:{}", relays.len().min(6)).as_bytes()));
    out.push(hash(ns::HEADER, format!("recipients:{}", [0, 1, 2, 5, 10, 50].iter().rev().find(|b| recipients >= **b).unwrap_or(&0)).as_bytes()));
    for part in html {
        html_tags(part, &mut out);
    }
    for l in links {
        // A resolved redirect: the tracker tells something too (who sent it through whom).
        if let Some(via) = &l.via {
            out.push(hash(ns::URL, via.as_bytes()));
        }
        out.push(hash(ns::URL, l.host.as_bytes()));
        out.push(hash(ns::URL, l.domain.as_bytes()));
        let first = l.path().split('/').find(|s| !s.is_empty()).unwrap_or("");
        out.push(hash_lower_parts(ns::URL, &[l.domain.as_bytes(), b"/", first.as_bytes()]));
    }
    for a in atts {
        out.push(hash(ns::ATTACHMENT, magic::detect(a.data).name().as_bytes()));
        if let Some(ext) = a.name.and_then(|n| n.rsplit_once('.')).map(|x| x.1.to_ascii_lowercase()) {
            out.push(hash(ns::ATTACHMENT, format!(".{ext}").as_bytes()));
        }
    }
    dedup(&mut out);
    out
}

/// Drops repeated tokens, keeping the first of each, in one pass through an open-addressing set
/// twice the size of the list (tokens are already well-mixed hashes: their low bits pick the place,
/// and the place keeps their high 32 bits, so the set is half the memory of whole tokens and stays
/// in the first-level cache for most messages; sorting did the same at several times the cost).
/// Two different tokens are taken for one only when they meet in the set and share those 32 bits:
/// about once in a million messages a token is then dropped, which learning does not notice.
/// The set is the thread's, reused (no allocation per message).
fn dedup(tokens: &mut Vec<u64>) {
    let cap = (tokens.len() * 2).next_power_of_two().max(16);
    DEDUP_SET.with(|cell| match cell.try_borrow_mut() {
        Ok(mut set) => {
            set.clear();
            set.resize(cap, 0);
            dedup_in(tokens, &mut set);
            if set.len() > DEDUP_SET_KEPT {
                set.clear();
                set.shrink_to(DEDUP_SET_KEPT);
            }
        }
        Err(_) => dedup_in(tokens, &mut vec![0; cap]),
    })
}

/// [`dedup`] with `set`, all zero and a power of two at least twice the tokens long.
fn dedup_in(tokens: &mut Vec<u64>, set: &mut [u32]) {
    let mask = set.len() - 1;
    let mut kept = 0;
    for i in 0..tokens.len() {
        let t = tokens[i];
        // 0 marks an empty place; the lowest bit is given up for it.
        let tag = (t >> 32) as u32 | 1;
        let mut j = t as usize & mask;
        // The set is at most half full, so the first place is nearly always empty or the token's
        // own. Which of the two it is decides no branch (a repeat is too common for that branch
        // to be predicted: about a quarter of this pass's cost went there): the product below is 0
        // exactly when the place is empty or the token's (both factors are under 2^32), one
        // test the compiler keeps as one branch, taken only on a collision.
        let mut s = set[j];
        while u64::from(s) * u64::from(s ^ tag) != 0 {
            j = (j + 1) & mask;
            s = set[j];
        }
        let new = s == 0;
        set[j] = tag;
        tokens[kept] = t;
        kept += usize::from(new);
    }
    tokens.truncate(kept);
}

/// Places [`dedup`]'s set keeps between messages (1 MiB; a larger message's room is given back).
const DEDUP_SET_KEPT: usize = 1 << 18;

thread_local! {
    static DEDUP_SET: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(raw: &str) -> Vec<u64> {
        let raw = raw.replace('\n', "\r\n");
        let p = crate::mime::parse(raw.as_bytes(), 1 << 20, 100);
        tokens(&p, 100)
    }

    const HEAD: &str = "From: Ann Example <ann@sender.example>\nTo: bob@example.test\nSubject: Cheap meds\nMessage-ID: <1@mta.sender.example>\nX-Mailer: Foo/1.2\n";

    #[test]
    fn namespaces_keep_subject_and_body_apart() {
        let t = toks(&format!("{HEAD}\nhello cheap world\n"));
        assert!(t.contains(&hash(ns::SUBJECT, b"cheap")) && t.contains(&hash(ns::BODY, b"cheap")));
        assert!(t.contains(&hash(ns::BODY, b"hello")) && !t.contains(&hash(ns::SUBJECT, b"hello")));
        assert!(t.contains(&hash(ns::FROM, b"sender.example")));
        assert!(t.contains(&hash(ns::FROM_NAME, b"ann")));
        assert!(t.contains(&hash(ns::MESSAGE_ID, b"mta.sender.example")));
        assert!(t.contains(&hash(ns::MAILER, b"foo")));
        assert!(t.contains(&hash(ns::HEADER, b"x-mailer")));
        let mut sorted = t.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), t.len(), "no duplicates");
    }

    #[test]
    fn case_lengths_and_numbers() {
        let t = toks(&format!("{HEAD}\nHELLO Hello ab {} 1234567890 12345\n", "x".repeat(45)));
        assert!(t.contains(&hash(ns::BODY, b"hello")));
        assert!(!t.contains(&hash(ns::BODY, b"ab")), "too short");
        assert!(t.contains(&hash(ns::SKIP, b"x40")));
        assert!(t.contains(&hash(ns::NUMBER, b"10")) && t.contains(&hash(ns::BODY, b"12345")));
    }

    #[test]
    fn words_with_letters_beyond_ascii() {
        // Lower-cased a character at a time (a final capital sigma stays σ), apostrophes trimmed,
        // hashed as the lower-cased text: the same tokens the learnt tables hold.
        let t = toks(&format!("{HEAD}\n'Café' ÉCOLE naïve ΣΟΦΙΑΣ x\u{00a0}ÆØÅ\n"));
        for w in ["café", "école", "naïve", "σοφιασ", "æøå"] {
            assert!(t.contains(&hash(ns::BODY, w.as_bytes())), "{w}");
        }
        let t = toks(&format!("{HEAD}\nbuy é-t-é-s now\n"));
        assert!(t.contains(&hash(ns::BODY, "étés".as_bytes())), "single letters beyond ASCII are spelt out too");
    }

    #[test]
    fn unicode_tricks_are_undone_and_named() {
        // A soft hyphen and a zero-width space inside, full-width letters, a Cyrillic а and о in
        // a Latin word: each gives the plain word, and a token naming the trick.
        for (text, trick) in [
            ("buy via\u{00ad}gra now", "invisible characters in words"),
            ("buy vi\u{200b}agra now", "invisible characters in words"),
            ("buy \u{ff56}\u{ff49}\u{ff41}\u{ff47}\u{ff52}\u{ff41} now", "full-width letters"),
            ("buy vi\u{0430}gra now", "look-alike letters in a word"),
            ("your p\u{0430}yp\u{0430}l account", "look-alike letters in a word"),
        ] {
            let t = toks(&format!("{HEAD}\n{text}\n"));
            let word = if text.starts_with("your") { "paypal" } else { "viagra" };
            assert!(t.contains(&hash(ns::BODY, word.as_bytes())), "{text}");
            assert!(t.contains(&hash(ns::SPELT, trick.as_bytes())), "{text}");
        }
        // Plain text beyond ASCII names no trick, and a Russian word stays Russian.
        let t = toks(&format!("{HEAD}\nнаш сайт caf\u{00e9}\n"));
        assert!(t.contains(&hash(ns::BODY, "сайт".as_bytes())) && t.contains(&hash(ns::BODY, "café".as_bytes())));
        for trick in ["invisible characters in words", "full-width letters", "look-alike letters in a word"] {
            assert!(!t.contains(&hash(ns::SPELT, trick.as_bytes())), "{trick}");
        }
        // A word of nothing but invisible characters is no word.
        let t = toks(&format!("{HEAD}\nhello \u{200b}\u{200b} world\n"));
        assert!(t.contains(&hash(ns::BODY, b"hello")) && t.contains(&hash(ns::BODY, b"world")));
    }

    #[test]
    fn spelt_out_letters_are_joined() {
        for text in ["buy v.i.a.g.r.a now", "buy v i a g r a now", "buy V-I-A-G-R-A now"] {
            let t = toks(&format!("{HEAD}\n{text}\n"));
            assert!(t.contains(&hash(ns::BODY, b"viagra")), "{text}");
            assert!(t.contains(&hash(ns::SPELT, b"spelt-out letters")), "{text}");
        }
        let t = toks(&format!("{HEAD}\na b c\n"));
        assert!(!t.contains(&hash(ns::SPELT, b"spelt-out letters")), "three letters are not a word");
        // A long run is one over-long word, built in linear time (a run of 400,000 letters
        // lower-cased whole at each letter would take minutes here).
        let t = toks(&format!("{HEAD}\n{}\n", "A ".repeat(400_000)));
        assert!(t.contains(&hash(ns::SKIP, b"a400000")));
    }

    #[test]
    fn pairs_depend_on_order_and_distance() {
        let a = toks(&format!("{HEAD}\nclick here now\n"));
        let b = toks(&format!("{HEAD}\nhere click now\n"));
        let c = toks(&format!("{HEAD}\nclick xxx here now\n"));
        let words = |t: &Vec<u64>| ["click", "here", "now"].iter().all(|w| t.contains(&hash(ns::BODY, w.as_bytes())));
        assert!(words(&a) && words(&b) && words(&c));
        let pairs = |t: &Vec<u64>| t.iter().copied().collect::<std::collections::HashSet<u64>>();
        let (pa, pb, pc) = (pairs(&a), pairs(&b), pairs(&c));
        assert_ne!(pa, pb, "order matters");
        assert!(pa.difference(&pc).count() > 0, "distance matters");
    }

    #[test]
    fn links_and_attachments() {
        let raw = format!(
            "{HEAD}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/html\n\n<a href=\"http://www.shop.example.com/buy/now\">x</a>\n--b\nContent-Type: application/octet-stream; name=\"a.pdf\"\nContent-Disposition: attachment; filename=\"a.pdf\"\nContent-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA\n--b--\n"
        );
        let t = toks(&raw);
        assert!(t.contains(&hash(ns::URL, b"www.shop.example.com")));
        assert!(t.contains(&hash(ns::URL, b"example.com/buy")));
        assert!(t.contains(&hash(ns::ATTACHMENT, b"pe")), "the true type");
        assert!(t.contains(&hash(ns::ATTACHMENT, b".pdf")));
    }

    #[test]
    fn markup_charset_and_buckets() {
        let raw = format!(
            "Received: from a\nReceived: from b\n{HEAD}Cc: x@y.example, z@y.example\nPrecedence: bulk\nMIME-Version: 1.0\nContent-Type: text/html; charset=\"windows-1252\"\n\n<html><body><FONT color=red>Hi</font><table></table></body></html>\n"
        );
        let t = toks(&raw);
        assert!(t.contains(&hash(ns::HTML_TAG, b"font")) && t.contains(&hash(ns::HTML_TAG, b"table")));
        assert!(t.contains(&hash(ns::CONTENT, b"charset=windows-1252")));
        assert!(t.contains(&hash(ns::HEADER, b"precedence=bulk")));
        assert!(t.contains(&hash(ns::HEADER, b"received:2")));
        assert!(t.contains(&hash(ns::HEADER, b"recipients:2")), "one To and two Cc");
    }

    #[test]
    fn relays_of_the_received_fields() {
        let raw = format!(
            "Received: from mail.store.example by imap.store.example with LMTP id 1; Thu, 1 Jan 2026 00:00:00 +0000\nReceived: from relay.example.net ([198.51.100.7])\n\tby mx.example.org (mxguard) with ESMTPS id Q; Thu, 1 Jan 2026 00:00:00 +0000\nReceived: from Client.Dsl.Example.CO.UK (host7.dsl.example.co.uk [203.0.113.9])\n\tby relay.example.net (Postfix) with ESMTP id 4B2; Thu, 1 Jan 2026 00:00:00 +0000\nReceived: from [IPv6:2001:db8:1:2:3::4] by relay.example.net with SMTP\nReceived: from 192.0.2.77 by relay.example.net; Thu, 1 Jan 2026 00:00:00 +0000\n{HEAD}\nhello\n"
        );
        let t = toks(&raw);
        assert!(t.contains(&relay(&[b"from:", b"client.dsl.example.co.uk"])), "host after from, lower case");
        assert!(t.contains(&relay(&[b"by:", b"relay.example.net"])));
        assert!(t.contains(&relay(&[b"domain:", b"example.co.uk"])), "registrable domain by the public suffix list");
        assert!(t.contains(&relay(&[b"with:", b"esmtp"])));
        for n in 1..=4 {
            assert!(t.contains(&relay_prefix(b"ip4/", &[203, 0, 113, 9][..n])), "/{}", 8 * n);
        }
        assert!(t.contains(&relay_prefix(b"ip6/", &[0x20, 0x01, 0x0d, 0xb8, 0, 1])), "IPv6 /48");
        assert!(t.contains(&relay_prefix(b"ip6/", &[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2])), "IPv6 /64");
        assert!(t.contains(&relay_prefix(b"ip4/", &[192, 0, 2, 77])), "a bare address after from");
        // This gateway's own field and those above it were not there when the message arrived.
        assert!(!t.contains(&relay_prefix(b"ip4/", &[198, 51, 100, 7])));
        assert!(!t.contains(&relay(&[b"from:", b"mail.store.example"])));
        assert!(!t.contains(&relay(&[b"with:", b"lmtp"])) && !t.contains(&relay(&[b"with:", b"esmtps"])));
        assert!(t.contains(&hash(ns::HEADER, b"received:3")), "hops before this gateway");
        // Without a field of ours, every field is the sender's side.
        let t = toks(&raw.replace(OWN_RECEIVED_MARK, "(Postfix)"));
        assert!(t.contains(&relay_prefix(b"ip4/", &[198, 51, 100, 7])) && t.contains(&relay(&[b"with:", b"lmtp"])));
        assert!(t.contains(&hash(ns::HEADER, b"received:5")));
        // A copy as the gateway delivered or quarantined it: its own fields make no token.
        let mut v = mxguard_verdict::Verdict::new();
        v.add("BAYES_SPAM", 8.0, "p 0.99");
        v.add("URIBL_BLACK", 4.0, "listed");
        let verdict = v.headers(mxguard_verdict::Action::Quarantine);
        assert!(verdict.contains("X-mxguard-Symbols"));
        let received = "Received: from relay.example.net ([198.51.100.7])\n\tby mx.example.org (mxguard) with ESMTPS id Q; Thu, 1 Jan 2026 00:00:00 +0000\n";
        let arrived = raw.split_once("(mxguard)").map_or("", |(_, after)| after.split_once('\n').map_or("", |x| x.1)).to_string();
        let mut a = toks(&arrived);
        let results = "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=sender.example\n";
        let mut b = toks(&format!("Delivered-To: bob@example.test\n{}{results}{received}{arrived}", verdict.replace("\r\n", "\n")));
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "the delivered copy learns what the arriving message was scanned by");
        // A copy delivered with the subject tagged (verdict.subject_tag, "SPAM:" by default).
        let tagged = String::from_utf8(mxguard_verdict::tag_subject(arrived.replace('\n', "\r\n").as_bytes(), "SPAM:")).unwrap().replace("\r\n", "\n");
        assert!(tagged.contains("Subject: SPAM: Cheap meds"), "{tagged}");
        let mut c = toks(&format!("{}{results}{received}{tagged}", verdict.replace("\r\n", "\n")));
        c.sort_unstable();
        assert_eq!(a, c, "the tag is not the sender's word");
        // Without this gateway's Received field the subject is the sender's, tag or not.
        assert_ne!(toks(&tagged).len(), a.len());
        // Networks whose octets are letters' codes stay apart (65 is 'A', 97 is 'a').
        let net = |ip: &str| toks(&format!("Received: from [{ip}] by mx.example.org\n{HEAD}\nhello\n"));
        assert!(net("65.1.2.3").contains(&relay_prefix(b"ip4/", &[65])) && !net("97.1.2.3").contains(&relay_prefix(b"ip4/", &[65])));
        // Thousands of fields make the tokens of the nearest few.
        let many = format!("{}{HEAD}\nhello\n", (0..5000).map(|i| format!("Received: from h{i}.example.net by x.example.net\n")).collect::<String>());
        let t = toks(&many);
        assert!(t.contains(&relay(&[b"from:", b"h15.example.net"])) && !t.contains(&relay(&[b"from:", b"h16.example.net"])));
    }

    #[test]
    fn words_found_by_masks_are_the_words_found_a_character_at_a_time() {
        // Texts of fragments that put words, separators and bytes beyond ASCII on both sides of
        // the 16- and 64-byte steps; the same tokens as reading every character in turn.
        const PIECES: &[&str] = &[
            "a", "ab", "viagra", "v.i.a.g.r.a", "$100", "don't", "'quoted'", " ", "  ", "\n", ",", "-", "<", "caf\u{e9}",
            "\u{a0}", "na\u{ef}ve", "\u{441}\u{430}\u{439}\u{442}", "vi\u{ad}agra", "\u{200b}", "\u{ff56}\u{ff49}", "\u{2026}",
            "x1234567890123456789012345678901234567890", "0123456789", "A B C D", "\t", "\u{1f600}",
        ];
        for text in crate::test_texts::texts(PIECES, 40, 3000, 0x9e37_79b9_7f4a_7c15) {
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            Words::new(&mut fast, ns::BODY).text(&text);
            let mut w = Words::new(&mut slow, ns::BODY);
            let mut i = 0;
            while i < text.len() {
                i = w.word_at(&text, i);
            }
            w.end_spelt();
            assert_eq!(fast, slow, "{text:?}");
        }
    }

    #[test]
    fn dedup_keeps_the_first_of_each() {
        let mut v = vec![5, 0, 7, 5, 0, 1 << 40, 7, 21, (1 << 40) + 16];
        dedup(&mut v);
        assert_eq!(v, vec![5, 0, 7, 1 << 40, 21, (1 << 40) + 16]);
        let mut many: Vec<u64> = (0..5000u64).map(|i| hash(ns::BODY, &(i % 1234).to_le_bytes())).collect();
        dedup(&mut many);
        assert_eq!(many.len(), 1234);
        let mut empty: Vec<u64> = Vec::new();
        dedup(&mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn hashes_differ_by_namespace_and_spread() {
        assert_ne!(hash(ns::BODY, b"a"), hash(ns::SUBJECT, b"a"));
        let low: std::collections::HashSet<u64> = (0..1000).map(|i| hash(ns::BODY, format!("w{i}").as_bytes()) & 1023).collect();
        assert!(low.len() > 550, "low bits spread: {}", low.len());
    }
}
