//! Receiving a message body: DATA (dot-unstuffing, `CRLF.CRLF` end) and BDAT (counted chunks).
//!
//! The receivers append the message, exactly once, to the caller's buffer, and never let a byte
//! the sender did not mean as content end the message. DATA ends at `<CR><LF>.<CR><LF>` and
//! nothing else: the dot line ends the data only when the line before it ended in CRLF (or it is
//! the first line after `354`). So `<LF>.<CR><LF>`, `<CR>.<CR><LF>`, `<LF>.<LF>` and the other
//! smuggling shapes (SEC Consult, December 2023; Postfix CVE-2023-51764) are content, never an end:
//! a message can never end where an upstream server that reads line ends differently thinks
//! another begins. BDAT takes its bytes by count and has no end marker at all.
//!
//! A bare LF or a bare CR anywhere in the body marks the message as refused (Postfix's
//! `smtpd_forbid_bare_newline`), as does a line longer than the limit or a body larger than the
//! size limit. A refused message is still read to its end, so the session stays in step with the
//! client, but nothing more of it is stored.
//!
//! Cost: one `memchr` per line plus one over the line for a stray CR, and one copy into the buffer.

use memchr::memchr;

/// Why a received body must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taint {
    BareLf,
    BareCr,
    LineTooLong,
    TooBig,
}

/// Limits for one body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Longest line, CRLF excluded.
    pub max_line: usize,
    /// Largest body, after dot-unstuffing.
    pub max_size: usize,
}

/// Streaming DATA receiver.
#[derive(Debug, Default)]
pub struct DataReceiver {
    /// Inside an over-long line that is being skipped up to its LF.
    skipping_line: bool,
    /// The last byte skipped of an over-long line was CR (its LF may come in the next input).
    skipped_cr: bool,
    /// The line being read does not follow a CRLF: the previous line ended in a bare LF. A dot
    /// line here is content, not the end of data.
    after_bare_lf: bool,
    pub taint: Option<Taint>,
}

impl DataReceiver {
    fn mark(&mut self, t: Taint) {
        if self.taint.is_none() {
            self.taint = Some(t);
        }
    }

    /// Consumes complete lines of `input`, appending their content to `body`.
    ///
    /// Returns the bytes used and whether the end-of-data line was seen. A partial line at the
    /// end of `input` is left unused (the caller keeps it and calls again with more), unless it is
    /// already longer than the line limit, in which case it is skipped.
    pub fn consume(&mut self, input: &[u8], body: &mut Vec<u8>, limits: BodyLimits) -> (usize, bool) {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            let Some(nl) = memchr(b'\n', rest) else {
                if self.skipping_line || rest.len() > limits.max_line + 1 {
                    self.mark(Taint::LineTooLong);
                    self.skipping_line = true;
                    self.skipped_cr = rest.last() == Some(&b'\r');
                    return (input.len(), false);
                }
                return (pos, false);
            };
            let line = &rest[..=nl];
            pos += nl + 1;
            let crlf = if nl > 0 { rest[nl - 1] == b'\r' } else { self.skipping_line && self.skipped_cr };
            let follows_crlf = !std::mem::replace(&mut self.after_bare_lf, !crlf);
            if !crlf {
                self.mark(Taint::BareLf);
            }
            if self.skipping_line {
                self.skipping_line = false;
                continue;
            }
            let content_len = if crlf { nl - 1 } else { nl };
            if memchr(b'\r', &line[..content_len]).is_some() {
                self.mark(Taint::BareCr);
            }
            if content_len > limits.max_line {
                self.mark(Taint::LineTooLong);
            }
            if line == b".\r\n" && follows_crlf {
                return (pos, true);
            }
            if self.taint.is_some() {
                continue;
            }
            let unstuffed = if line[0] == b'.' { &line[1..] } else { line };
            if body.len() + unstuffed.len() > limits.max_size {
                self.mark(Taint::TooBig);
                continue;
            }
            body.extend_from_slice(unstuffed);
        }
        (pos, false)
    }
}

/// BDAT chunk receiver: exactly `remaining` bytes, CRLF-canonical content required.
#[derive(Debug)]
pub struct ChunkReceiver {
    pub remaining: u64,
    pub last: bool,
    /// Chunk bytes are read and dropped (the transaction was refused or is already tainted).
    pub discard: bool,
}

/// Line-ending state carried across the BDAT chunks of one message.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChunkLines {
    /// The previous byte was CR (its LF may start the next chunk).
    pub pending_cr: bool,
    /// Bytes since the last LF, to enforce the line limit.
    pub line_len: usize,
}

impl ChunkReceiver {
    /// Consumes up to `remaining` bytes of `input`; returns the bytes used.
    pub fn consume(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
        lines: &mut ChunkLines,
        taint: &mut Option<Taint>,
        limits: BodyLimits,
    ) -> usize {
        let n = (input.len() as u64).min(self.remaining) as usize;
        let chunk = &input[..n];
        self.remaining -= n as u64;
        if self.discard {
            return n;
        }
        if n == 0 {
            return 0;
        }
        let mut mark = |t: Taint| {
            if taint.is_none() {
                *taint = Some(t);
            }
        };
        let start_cr = lines.pending_cr;
        lines.pending_cr = false;
        if start_cr && chunk[0] != b'\n' {
            mark(Taint::BareCr);
        }
        let mut last_nl: Option<usize> = None;
        for i in memchr::memchr2_iter(b'\r', b'\n', chunk) {
            if chunk[i] == b'\n' {
                let after_cr = if i == 0 { start_cr } else { chunk[i - 1] == b'\r' };
                if !after_cr {
                    mark(Taint::BareLf);
                }
                let len = match last_nl {
                    Some(p) => i - p - 1,
                    None => lines.line_len + i,
                };
                if len > limits.max_line + 1 {
                    mark(Taint::LineTooLong);
                }
                last_nl = Some(i);
            } else {
                match chunk.get(i + 1) {
                    Some(b'\n') => {}
                    Some(_) => mark(Taint::BareCr),
                    None => lines.pending_cr = true,
                }
            }
        }
        lines.line_len = match last_nl {
            Some(p) => n - p - 1,
            None => lines.line_len + n,
        };
        if lines.line_len > limits.max_line + 1 {
            mark(Taint::LineTooLong);
        }
        if body.len() + n > limits.max_size {
            mark(Taint::TooBig);
        }
        if taint.is_none() {
            body.extend_from_slice(chunk);
        }
        n
    }
}

/// At the end of a BDAT message: a CR left dangling is a bare CR.
pub fn finish_chunks(lines: &ChunkLines, taint: &mut Option<Taint>) {
    if lines.pending_cr && taint.is_none() {
        *taint = Some(Taint::BareCr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: BodyLimits = BodyLimits { max_line: 100, max_size: 1000 };

    fn data(input: &[u8]) -> (Vec<u8>, Option<Taint>, usize, bool) {
        let mut r = DataReceiver::default();
        let mut body = Vec::new();
        let (n, end) = r.consume(input, &mut body, L);
        (body, r.taint, n, end)
    }

    #[test]
    fn unstuffs_and_ends() {
        let (b, t, n, end) = data(b"Subject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n");
        assert_eq!(b, b"Subject: x\r\n\r\n.dot\r\n");
        assert_eq!((t, n, end), (None, 24, true));
    }

    #[test]
    fn waits_for_partial_line() {
        let mut r = DataReceiver::default();
        let mut body = Vec::new();
        let (n, end) = r.consume(b"abc\r\nde", &mut body, L);
        assert_eq!((n, end), (5, false));
        let (n, end) = r.consume(b"def\r\n.\r", &mut body, L);
        assert_eq!((n, end), (5, false));
        let (n, end) = r.consume(b".\r\n", &mut body, L);
        assert_eq!((n, end), (3, true));
        assert_eq!(body, b"abc\r\ndef\r\n");
    }

    #[test]
    fn smuggling_attempts_never_end_data_early_and_taint() {
        // `\n.\n`, `\r\n.\n` and `\r.\r\n` are not the end of data.
        for attack in [&b"a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n"[..], b"a\n.\nRCPT\r\n.\r\n", b"a\r.\r\nx\r\n.\r\n"] {
            let (_, t, n, end) = data(attack);
            assert!(end, "{attack:?}");
            assert_eq!(n, attack.len(), "{attack:?} ended early");
            assert!(matches!(t, Some(Taint::BareLf | Taint::BareCr)), "{attack:?}: {t:?}");
        }
    }

    #[test]
    fn bare_lf_line_is_tainted() {
        let (_, t, _, end) = data(b"a\nb\r\n.\r\n");
        assert_eq!((t, end), (Some(Taint::BareLf), true));
    }

    #[test]
    fn long_lines_are_skipped_and_tainted() {
        let mut r = DataReceiver::default();
        let mut body = Vec::new();
        let big = vec![b'x'; 500];
        let (n, end) = r.consume(&big, &mut body, L);
        assert_eq!((n, end), (500, false));
        let (n, end) = r.consume(b"xx\r\n.\r\n", &mut body, L);
        assert_eq!((n, end), (7, true));
        assert_eq!(r.taint, Some(Taint::LineTooLong));
        let (_, t, _, _) = data(&[&[b'y'; 101][..], b"\r\n.\r\n"].concat());
        assert_eq!(t, Some(Taint::LineTooLong));
        let (_, t, _, _) = data(&[&[b'y'; 100][..], b"\r\n.\r\n"].concat());
        assert_eq!(t, None);
    }

    #[test]
    fn size_limit() {
        let line = [&[b'z'; 98][..], b"\r\n"].concat();
        let mut msg = line.repeat(10);
        msg.extend_from_slice(b".\r\n");
        let (b, t, _, end) = data(&msg);
        assert_eq!((b.len(), t, end), (1000, None, true));
        msg.splice(0..0, b"a\r\n".iter().copied());
        let (_, t, _, end) = data(&msg);
        assert_eq!((t, end), (Some(Taint::TooBig), true));
    }

    /// Where DATA must end, read straight from RFC 5321: just past the first `.<CR><LF>` that
    /// starts the data or follows a `<CR><LF>`.
    fn reference_end(input: &[u8]) -> Option<usize> {
        (0..input.len()).find_map(|p| {
            let dot = input[p..].starts_with(b".\r\n");
            let follows = p == 0 || (p >= 2 && &input[p - 2..p] == b"\r\n");
            (dot && follows).then_some(p + 3)
        })
    }

    /// The body a clean message must yield: its lines before the end, dot-unstuffed.
    fn reference_body(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in input.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(if line[0] == b'.' { &line[1..] } else { line });
        }
        out
    }

    /// Feeds `input` as a driver does: in pieces split at `cuts`, keeping what was not used.
    fn feed(input: &[u8], cuts: &[usize], limits: BodyLimits) -> (Option<usize>, Vec<u8>, Option<Taint>) {
        let mut r = DataReceiver::default();
        let mut body = Vec::new();
        let (mut used, mut avail) = (0, 0);
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            avail = avail.max(cut.min(input.len()));
            let (n, end) = r.consume(&input[used..avail], &mut body, limits);
            used += n;
            if end {
                return (Some(used), body, r.taint);
            }
        }
        (None, body, r.taint)
    }

    /// Every string of up to 9 bytes over CR, LF, '.' and 'a', in one piece and split at each
    /// point: DATA ends exactly where RFC 5321 says, a clean body is the unstuffed lines, and any
    /// bare CR or LF before the end taints the message.
    #[test]
    fn data_ends_exactly_at_the_first_crlf_dot_crlf_for_every_short_input() {
        let alphabet = [b'\r', b'\n', b'.', b'a'];
        let mut checked = 0u64;
        for len in 0..=9u32 {
            for code in 0..4usize.pow(len) {
                let input: Vec<u8> = (0..len).map(|i| alphabet[(code >> (2 * i)) & 3]).collect();
                let want = reference_end(&input);
                let cuts_list: Vec<Vec<usize>> =
                    std::iter::once(vec![]).chain((1..input.len()).map(|c| vec![c])).collect();
                for cuts in cuts_list {
                    let (end, body, taint) = feed(&input, &cuts, L);
                    assert_eq!(end, want, "{input:?} cut at {cuts:?}");
                    checked += 1;
                    let Some(end) = end else { continue };
                    let content = &input[..end - 3];
                    let bare = content.windows(2).any(|w| (w[0] == b'\r') != (w[1] == b'\n'))
                        || content.first() == Some(&b'\n')
                        || content.last() == Some(&b'\r');
                    match taint {
                        None => {
                            assert!(!bare, "{input:?}: untainted with a bare line end");
                            assert_eq!(body, reference_body(content), "{input:?}");
                        }
                        Some(t) => assert!(bare && matches!(t, Taint::BareLf | Taint::BareCr), "{input:?}: {t:?}"),
                    }
                }
            }
        }
        assert!(checked > 1_000_000, "{checked}");
    }

    /// Over-long lines (skipped in pieces) keep the same end: a dot line ends the data only after
    /// a skipped line that ended in CRLF, the CR and LF split across reads or not.
    #[test]
    fn skipped_long_lines_keep_the_end_rule() {
        let small = BodyLimits { max_line: 4, max_size: 1000 };
        for tail in [&b"\r\n.\r\n"[..], b"\n.\r\n", b"\r.\r\n"] {
            let mut input = vec![b'x'; 20];
            input.extend_from_slice(tail);
            input.extend_from_slice(b"z\r\n.\r\n");
            let want = reference_end(&input);
            for cut in 1..input.len() {
                let (end, _, taint) = feed(&input, &[cut, cut + 1], small);
                assert_eq!(end, want, "{tail:?} cut at {cut}");
                assert!(taint.is_some(), "{tail:?} cut at {cut}");
            }
        }
    }

    fn chunks(parts: &[&[u8]]) -> (Vec<u8>, Option<Taint>) {
        let mut body = Vec::new();
        let mut lines = ChunkLines::default();
        let mut taint = None;
        for p in parts {
            let mut r = ChunkReceiver { remaining: p.len() as u64, last: false, discard: false };
            let n = r.consume(p, &mut body, &mut lines, &mut taint, L);
            assert_eq!(n, p.len());
        }
        finish_chunks(&lines, &mut taint);
        (body, taint)
    }

    #[test]
    fn bdat_takes_bytes_verbatim() {
        let (b, t) = chunks(&[b"a: b\r\n\r\n.x\r", b"\n.\r\n"]);
        assert_eq!(b, b"a: b\r\n\r\n.x\r\n.\r\n");
        assert_eq!(t, None);
    }

    #[test]
    fn bdat_line_end_checks() {
        assert_eq!(chunks(&[b"a\nb\r\n"]).1, Some(Taint::BareLf));
        assert_eq!(chunks(&[b"a\rb\r\n"]).1, Some(Taint::BareCr));
        assert_eq!(chunks(&[b"a\r", b"b\r\n"]).1, Some(Taint::BareCr));
        assert_eq!(chunks(&[b"a\r\r\n"]).1, Some(Taint::BareCr));
        assert_eq!(chunks(&[b"a\r\n", b"\nb"]).1, Some(Taint::BareLf));
        assert_eq!(chunks(&[b"abc\r"]).1, Some(Taint::BareCr));
        assert_eq!(chunks(&[&[b'q'; 60][..], &[b'q'; 60][..]]).1, Some(Taint::LineTooLong));
        assert_eq!(chunks(&[&[b'q'; 60][..], b"\r\n", &[b'q'; 60][..]]).1, None);
    }

    #[test]
    fn bdat_respects_chunk_size() {
        let mut r = ChunkReceiver { remaining: 3, last: true, discard: false };
        let (mut body, mut lines, mut taint) = (Vec::new(), ChunkLines::default(), None);
        let n = r.consume(b"ab\r\nQUIT\r\n", &mut body, &mut lines, &mut taint, L);
        assert_eq!((n, r.remaining), (3, 0));
        assert_eq!(body, b"ab\r");
    }
}
