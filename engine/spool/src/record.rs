//! The on-disk form of one spooled message (a *record*), pure encode/decode.
//!
//! ```text
//! offset size  field
//!  0      4    magic "MXQ2"
//!  4      4    envelope text length E (u32 LE)
//!  8      8    message length M (u64 LE): Received header + data as received
//! 16      4    CRC-32 of epoch, envelope text and message (the immutable parts)
//! 20      1    state: b'L' live, b'D' done (mutable)
//! 21      3    reserved, zero
//! 24      4    delivery attempts so far (u32 LE, mutable)
//! 28      8    next attempt, unix seconds (u64 LE, mutable)
//! 36      8    epoch: the number of the segment file written to (0 in a file of its own), so
//!              records left over from a recycled segment's previous life are never read back
//! 44      4    recipient count R (u32 LE)
//! 48      R    one status byte per recipient (mutable): P pending, D delivered, B bounced
//! 48+R    E    envelope text: `key value\n` lines (id, arrival, client, helo, proto, from,
//!              flags, then when set transport, score, symbols, reason; rcpt…: one `rcpt` line
//!              per status byte, in the same order). Unknown keys are skipped on reading.
//! 48+R+E  M    the message
//! ```
//!
//! Mutable fields are updated in place with single small writes that are not fsync'd: a crash
//! can lose such an update, which only means a recipient is tried again (at-least-once), never
//! that mail is lost. Everything else is covered by the CRC, so a torn record is recognised.

use std::fmt::Write as _;

pub const MAGIC: &[u8; 4] = b"MXQ2";
pub const FIXED: usize = 48;
pub const OFF_STATE: u64 = 20;
pub const OFF_ATTEMPTS: u64 = 24;
pub const OFF_RCPT_STATUS: u64 = 48;

/// Delivery status of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcptStatus {
    Pending,
    Delivered,
    /// Failed for good; a DSN was queued (or the sender was null).
    Bounced,
}

impl RcptStatus {
    pub fn byte(self) -> u8 {
        match self {
            RcptStatus::Pending => b'P',
            RcptStatus::Delivered => b'D',
            RcptStatus::Bounced => b'B',
        }
    }
    pub fn from_byte(b: u8) -> Option<RcptStatus> {
        match b {
            b'P' => Some(RcptStatus::Pending),
            b'D' => Some(RcptStatus::Delivered),
            b'B' => Some(RcptStatus::Bounced),
            _ => None,
        }
    }
    pub fn is_final(self) -> bool {
        self != RcptStatus::Pending
    }
}

/// The envelope of a spooled message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    pub id: String,
    pub arrival_unix_ms: u64,
    pub client: String,
    pub helo: String,
    pub proto: String,
    /// Reverse path; empty for the null sender.
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub status: Vec<RcptStatus>,
    pub attempts: u32,
    pub next_attempt_unix: u64,
    pub eight_bit: bool,
    pub smtputf8: bool,
    /// This message is a delivery status notification we generated (never bounce it).
    pub dsn: bool,
    /// Where the queue manager takes it: empty for the downstream routes, `quarantine` for the
    /// quarantine store.
    pub transport: String,
    /// The verdict that decided its fate: total score, symbol breakdown, main reason (empty
    /// when no check ran). Kept for the quarantine and the logs after a restart.
    pub score: String,
    pub symbols: String,
    pub reason: String,
}

impl Meta {
    pub fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        self.status.iter().enumerate().filter(|(_, s)| !s.is_final()).map(|(i, _)| i)
    }

    pub fn all_final(&self) -> bool {
        self.status.iter().all(|s| s.is_final())
    }

    fn envelope_text(&self) -> String {
        let mut t = String::with_capacity(128 + self.rcpts.iter().map(|r| r.len() + 6).sum::<usize>());
        let clean = |s: &str| s.replace(['\n', '\r'], " ");
        let _ = writeln!(t, "id {}", clean(&self.id));
        let _ = writeln!(t, "arrival {}", self.arrival_unix_ms);
        let _ = writeln!(t, "client {}", clean(&self.client));
        let _ = writeln!(t, "helo {}", clean(&self.helo));
        let _ = writeln!(t, "proto {}", clean(&self.proto));
        let _ = writeln!(t, "from {}", clean(&self.mail_from));
        let mut flags = Vec::new();
        if self.eight_bit {
            flags.push("8bit");
        }
        if self.smtputf8 {
            flags.push("utf8");
        }
        if self.dsn {
            flags.push("dsn");
        }
        let _ = writeln!(t, "flags {}", flags.join(","));
        for (key, v) in [("transport", &self.transport), ("score", &self.score), ("symbols", &self.symbols), ("reason", &self.reason)] {
            if !v.is_empty() {
                let _ = writeln!(t, "{key} {}", clean(v));
            }
        }
        for r in &self.rcpts {
            let _ = writeln!(t, "rcpt {}", clean(r));
        }
        t
    }
}

/// The record header and envelope for `meta` in a file of epoch `epoch`, for a message of
/// `message_len` bytes made of the `message` parts.
pub fn encode_head(meta: &Meta, epoch: u64, message_len: u64, message: &[&[u8]]) -> Vec<u8> {
    let env = meta.envelope_text();
    let r = meta.rcpts.len();
    let mut h = crc32fast::Hasher::new();
    h.update(&epoch.to_le_bytes());
    h.update(env.as_bytes());
    for part in message {
        h.update(part);
    }
    let mut out = Vec::with_capacity(FIXED + r + env.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(env.len() as u32).to_le_bytes());
    out.extend_from_slice(&message_len.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.push(b'L');
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&meta.attempts.to_le_bytes());
    out.extend_from_slice(&meta.next_attempt_unix.to_le_bytes());
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&(r as u32).to_le_bytes());
    for i in 0..r {
        out.push(meta.status.get(i).copied().unwrap_or(RcptStatus::Pending).byte());
    }
    out.extend_from_slice(env.as_bytes());
    out
}

/// One record found in a file.
#[derive(Debug)]
pub struct Decoded {
    pub meta: Meta,
    pub done: bool,
    /// Offset of the record in its file.
    pub offset: u64,
    /// Offset and length of the message within the file.
    pub message_offset: u64,
    pub message_len: u64,
    /// Offset of the next record.
    pub end: u64,
}

/// Why decoding stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The clean end of a segment's log: zeros, or a record of an earlier epoch.
    End,
    /// The file ends inside a record (a write that never completed).
    Truncated,
    /// Bytes that are not a record, or a CRC mismatch.
    Corrupt(String),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decodes the record at `offset` of `file` (a whole file's bytes), which must carry `epoch`.
pub fn decode(file: &[u8], offset: u64, epoch: u64) -> Result<Decoded, DecodeError> {
    let start = usize::try_from(offset).map_err(|_| DecodeError::Truncated)?;
    let b = file.get(start..).ok_or(DecodeError::Truncated)?;
    if b.len() < 4 || b[..4] == [0, 0, 0, 0] {
        return Err(DecodeError::End);
    }
    if b.len() < FIXED {
        return Err(DecodeError::Truncated);
    }
    if &b[..4] != MAGIC {
        return Err(DecodeError::Corrupt(format!("bad magic at offset {offset}")));
    }
    if u64_at(b, 36) != epoch {
        return Err(DecodeError::End);
    }
    let env_len = u32_at(b, 4) as usize;
    let msg_len = u64_at(b, 8);
    let crc = u32_at(b, 16);
    let done = match b[20] {
        b'L' => false,
        b'D' => true,
        x => return Err(DecodeError::Corrupt(format!("bad state byte {x} at offset {offset}"))),
    };
    let attempts = u32_at(b, 24);
    let next = u64_at(b, 28);
    let r = u32_at(b, 44) as usize;
    let env_start = FIXED.checked_add(r).ok_or(DecodeError::Truncated)?;
    let msg_start = env_start.checked_add(env_len).ok_or(DecodeError::Truncated)?;
    let msg_len_us = usize::try_from(msg_len).map_err(|_| DecodeError::Truncated)?;
    let end = msg_start.checked_add(msg_len_us).ok_or(DecodeError::Truncated)?;
    if b.len() < end {
        return Err(DecodeError::Truncated);
    }
    let env = &b[env_start..msg_start];
    let mut h = crc32fast::Hasher::new();
    h.update(&epoch.to_le_bytes());
    h.update(env);
    h.update(&b[msg_start..end]);
    if h.finalize() != crc {
        return Err(DecodeError::Corrupt(format!("CRC mismatch in record at offset {offset}")));
    }
    let status = b[FIXED..env_start]
        .iter()
        .map(|&s| RcptStatus::from_byte(s).ok_or_else(|| DecodeError::Corrupt(format!("bad status byte at {offset}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let env = std::str::from_utf8(env).map_err(|_| DecodeError::Corrupt("envelope is not UTF-8".into()))?;
    let mut meta = Meta { status, attempts, next_attempt_unix: next, ..Meta::default() };
    for line in env.lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        match k {
            "id" => meta.id = v.to_string(),
            "arrival" => meta.arrival_unix_ms = v.parse().unwrap_or(0),
            "client" => meta.client = v.to_string(),
            "helo" => meta.helo = v.to_string(),
            "proto" => meta.proto = v.to_string(),
            "from" => meta.mail_from = v.to_string(),
            "flags" => {
                for f in v.split(',') {
                    match f {
                        "8bit" => meta.eight_bit = true,
                        "utf8" => meta.smtputf8 = true,
                        "dsn" => meta.dsn = true,
                        _ => {}
                    }
                }
            }
            "rcpt" => meta.rcpts.push(v.to_string()),
            "transport" => meta.transport = v.to_string(),
            "score" => meta.score = v.to_string(),
            "symbols" => meta.symbols = v.to_string(),
            "reason" => meta.reason = v.to_string(),
            _ => {}
        }
    }
    if meta.rcpts.len() != meta.status.len() || meta.id.is_empty() {
        return Err(DecodeError::Corrupt(format!("envelope does not match header at {offset}")));
    }
    Ok(Decoded {
        meta,
        done,
        offset,
        message_offset: offset + msg_start as u64,
        message_len: msg_len,
        end: offset + end as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            id: "ABC123".into(),
            arrival_unix_ms: 1_700_000_000_000,
            client: "192.0.2.7".into(),
            helo: "client.example".into(),
            proto: "ESMTPS".into(),
            mail_from: "a@b.example".into(),
            rcpts: vec!["x@example.test".into(), "y@example.test".into()],
            status: vec![RcptStatus::Pending, RcptStatus::Delivered],
            attempts: 3,
            next_attempt_unix: 1_700_000_600,
            eight_bit: true,
            smtputf8: false,
            dsn: true,
            transport: "quarantine".into(),
            score: "11.5".into(),
            symbols: "DNSBL_TEST(11.5)".into(),
            reason: "listed at dnsbl.test".into(),
        }
    }

    fn encode(meta: &Meta, parts: &[&[u8]]) -> Vec<u8> {
        let len = parts.iter().map(|p| p.len() as u64).sum();
        let mut out = encode_head(meta, 7, len, parts);
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    }

    #[test]
    fn round_trip_two_records() {
        let m = sample();
        let mut file = encode(&m, &[b"Received: x\r\n", b"Subject: y\r\n\r\nbody\r\n"]);
        let second_at = file.len() as u64;
        let mut m2 = sample();
        m2.id = "DEF".into();
        m2.mail_from = String::new();
        file.extend(encode(&m2, &[b"z\r\n"]));
        let d = decode(&file, 0, 7).unwrap();
        assert_eq!(d.meta, m);
        assert!(!d.done);
        assert_eq!(&file[d.message_offset as usize..d.end as usize], b"Received: x\r\nSubject: y\r\n\r\nbody\r\n");
        assert_eq!(d.end, second_at);
        let d2 = decode(&file, second_at, 7).unwrap();
        assert_eq!(d2.meta, m2);
        assert_eq!(d2.end, file.len() as u64);
    }

    #[test]
    fn mutable_fields_do_not_break_the_crc() {
        let mut file = encode(&sample(), &[b"m\r\n"]);
        file[OFF_STATE as usize] = b'D';
        file[OFF_ATTEMPTS as usize] = 9;
        file[OFF_RCPT_STATUS as usize] = b'B';
        let d = decode(&file, 0, 7).unwrap();
        assert!(d.done);
        assert_eq!(d.meta.attempts, 9);
        assert_eq!(d.meta.status[0], RcptStatus::Bounced);
    }

    #[test]
    fn torn_and_corrupt_records_are_recognised() {
        let file = encode(&sample(), &[b"message\r\n"]);
        assert_eq!(decode(&file[..0], 0, 7).unwrap_err(), DecodeError::End);
        assert_eq!(decode(&[0u8; 100], 0, 7).unwrap_err(), DecodeError::End, "zeros end a segment");
        assert_eq!(decode(&file, 0, 8).unwrap_err(), DecodeError::End, "an old epoch ends a segment");
        for cut in [10, FIXED, file.len() - 1] {
            assert_eq!(decode(&file[..cut], 0, 7).unwrap_err(), DecodeError::Truncated, "cut at {cut}");
        }
        let mut flipped = file.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        assert!(matches!(decode(&flipped, 0, 7), Err(DecodeError::Corrupt(_))));
        let mut bad_magic = file.clone();
        bad_magic[0] = b'X';
        assert!(matches!(decode(&bad_magic, 0, 7), Err(DecodeError::Corrupt(_))));
        let mut huge = file;
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge, 0, 7).is_err());
    }

    #[test]
    fn newlines_in_fields_cannot_forge_envelope_lines() {
        let mut m = sample();
        m.helo = "evil\nrcpt attacker@x".into();
        let file = encode(&m, &[b"x"]);
        let d = decode(&file, 0, 7).unwrap();
        assert_eq!(d.meta.rcpts.len(), 2);
        assert_eq!(d.meta.helo, "evil rcpt attacker@x");
    }
}
