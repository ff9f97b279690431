//! Dot-stuffing for the client side: a CRLF-canonical message becomes DATA content.
//!
//! Every line that starts with `.` gets one more, and the content ends with `CRLF.CRLF`, adding the
//! last CRLF when the message lacks it. Cost: one `memmem` pass and one copy into `out`.

/// Appends `msg`, dot-stuffed and terminated, to `out`.
pub fn stuff_into(msg: &[u8], out: &mut Vec<u8>) {
    out.reserve(msg.len() + msg.len() / 64 + 5);
    let mut start = 0;
    if msg.first() == Some(&b'.') {
        out.push(b'.');
    }
    for i in memchr::memmem::find_iter(msg, b"\n.") {
        out.extend_from_slice(&msg[start..=i]);
        out.push(b'.');
        start = i + 1;
    }
    out.extend_from_slice(&msg[start..]);
    if !msg.is_empty() && !msg.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
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
