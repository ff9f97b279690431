//! Dot-stuffing for the client side: a CRLF-canonical message becomes DATA content.
//!
//! Every line that starts with `.` gets one more, and the content ends with `CRLF.CRLF`, adding
//! the last CRLF when the message lacks it. Works on pieces, so a large message is sent in
//! bounded buffers. Cost: one `memmem` pass and one copy into the output buffer.

/// A message file as SMTP carries it: every line ending (LF, CR or CRLF) made CRLF. One pass,
/// one copy.
pub fn to_crlf(raw: &[u8]) -> Vec<u8> {

    let mut out = Vec::with_capacity(raw.len() + raw.len() / 50);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        if prev == b'\r' && b != b'\n' {
            out.push(b'\n');
        }
        out.push(b);
        prev = b;
    }
    if prev == b'\r' {
        out.push(b'\n');
    }
    out
}

/// Streaming dot-stuffer.
#[derive(Debug, Clone, Copy)]
pub struct Stuffer {
    at_line_start: bool,
    last: Option<u8>,
}

impl Default for Stuffer {
    fn default() -> Self {
        Stuffer { at_line_start: true, last: None }
    }
}

impl Stuffer {
    /// Appends `piece`, dot-stuffed, to `out`.
    pub fn push(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        if piece.is_empty() {
            return;
        }
        out.reserve(piece.len() + piece.len() / 64 + 2);
        let mut start = 0;
        if self.at_line_start && piece[0] == b'.' {
            out.push(b'.');
        }
        for i in memchr::memmem::find_iter(piece, b"\n.") {
            out.extend_from_slice(&piece[start..=i]);
            out.push(b'.');
            start = i + 1;
        }
        out.extend_from_slice(&piece[start..]);
        let last = piece[piece.len() - 1];
        self.at_line_start = last == b'\n';
        self.last = Some(last);
    }

    /// Ends the content: a CRLF if the message did not end with one, then `.CRLF`.
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.last.is_some() && !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// Appends `msg`, dot-stuffed and terminated, to `out`.
pub fn stuff_into(msg: &[u8], out: &mut Vec<u8>) {
    let mut s = Stuffer::default();
    s.push(msg, out);
    s.finish(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{BodyLimits, DataReceiver};

    fn stuffed(m: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        stuff_into(m, &mut out);
        out
    }

    #[test]
    fn stuffs_dots_and_terminates() {
        assert_eq!(stuffed(b".a\r\nb\r\n.\r\n..c\r\n"), b"..a\r\nb\r\n..\r\n...c\r\n.\r\n");
        assert_eq!(stuffed(b"no newline"), b"no newline\r\n.\r\n");
        assert_eq!(stuffed(b""), b".\r\n");
    }

    #[test]
    fn pieces_give_the_same_result_as_the_whole() {
        let msg = b"Received: x\r\n.a\r\nb\r\n.\r\n..c\r\nend";
        for split in 0..msg.len() {
            let mut s = Stuffer::default();
            let mut out = Vec::new();
            s.push(&msg[..split], &mut out);
            s.push(&msg[split..], &mut out);
            s.finish(&mut out);
            assert_eq!(out, stuffed(msg), "split at {split}");
        }
    }

    #[test]
    fn round_trips_through_the_receiver() {
        let msgs: [&[u8]; 4] = [b"a\r\n.\r\n.b\r\n", b".\r\n", b"x\r\n\r\n..\r\n", b"tail"];
        for m in msgs {
            let mut r = DataReceiver::default();
            let mut body = Vec::new();
            let wire = stuffed(m);
            let (n, end) = r.consume(&wire, &mut body, BodyLimits { max_line: 100, max_size: 1000 });
            assert!(end && n == wire.len(), "{m:?}");
            let mut want = m.to_vec();
            if !want.ends_with(b"\r\n") {
                want.extend_from_slice(b"\r\n");
            }
            assert_eq!(body, want);
        }
    }
}
