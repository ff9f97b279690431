//! A spool record reads back equal to what was written: any envelope (strings with any
//! characters, any counts and flags) and any message bytes, encoded, then decoded from a file that
//! holds it among other records, give the same envelope (line breaks in strings turned to spaces,
//! as the encoder documents) and the same message bytes; and any single flipped byte of the
//! immutable part is caught (CRC or structure), never read back as a different envelope.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxguard_spool::record::{decode, encode_head, Meta, RcptStatus, FIXED};

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |a, _| a << 8 | self.byte() as u64)
    }
    fn string(&mut self) -> String {
        let n = (self.byte() % 24) as usize;
        let n = n.min(self.0.len());
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(s).into_owned()
    }
}

fn clean(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let mut id = r.string();
    if clean(&id).is_empty() {
        id = "Q".into(); // the spool never writes a record without a queue id
    }
    let statuses = [RcptStatus::Pending, RcptStatus::Delivered, RcptStatus::Bounced];
    let nrcpt = 1 + (r.byte() % 6) as usize;
    let flags = r.byte();
    let mut meta = Meta {
        id,
        arrival_unix_ms: r.u64(),
        client: r.string(),
        helo: r.string(),
        proto: r.string(),
        mail_from: r.string(),
        rcpts: (0..nrcpt).map(|_| r.string()).collect(),
        status: (0..nrcpt).map(|_| statuses[(r.byte() % 3) as usize]).collect(),
        attempts: r.byte() as u32,
        next_attempt_unix: r.u64(),
        eight_bit: flags & 1 != 0,
        smtputf8: flags & 2 != 0,
        dsn: flags & 4 != 0,
        transport: r.string(),
        score: r.string(),
        symbols: r.string(),
        reason: r.string(),
    };
    let epoch = (flags >> 3) as u64;
    let message = r.0;
    let (a, b) = message.split_at(message.len() / 2);
    let head = encode_head(&meta, epoch, message.len() as u64, &[a, b]);
    // Another record ahead of it in the same file, as in a segment.
    let first = Meta { id: "FIRST".into(), rcpts: vec!["x@y".into()], status: vec![RcptStatus::Pending], ..Meta::default() };
    let mut file = encode_head(&first, epoch, 3, &[b"abc"]);
    file.extend_from_slice(b"abc");
    let offset = file.len() as u64;
    file.extend_from_slice(&head);
    file.extend_from_slice(message);
    let d0 = decode(&file, 0, epoch).expect("the first record");
    assert_eq!(d0.end, offset);
    let d = decode(&file, offset, epoch).expect("a record just written reads back");
    for s in [&mut meta.client, &mut meta.helo, &mut meta.proto, &mut meta.mail_from, &mut meta.transport,
              &mut meta.score, &mut meta.symbols, &mut meta.reason, &mut meta.id] {
        *s = clean(s);
    }
    for s in &mut meta.rcpts {
        *s = clean(s);
    }
    assert_eq!(d.meta, meta);
    assert!(!d.done);
    assert_eq!(d.end as usize, file.len());
    assert_eq!(&file[d.message_offset as usize..][..d.message_len as usize], message);
    // One flipped bit anywhere but the mutable fields (state, attempts, next attempt, statuses):
    // the record is refused or reads as what was written, never as something else.
    let flip_at = offset as usize + (data.len() * 7919) % (file.len() - offset as usize);
    let rel = flip_at - offset as usize;
    let mutable = (20..36).contains(&rel) || (FIXED..FIXED + nrcpt).contains(&rel);
    if !mutable {
        let mut bad = file.clone();
        bad[flip_at] ^= 1 << (data.len() % 8);
        if let Ok(d2) = decode(&bad, offset, epoch) {
            panic!("a damaged record read back: {:?}", d2.meta);
        }
    }
});
