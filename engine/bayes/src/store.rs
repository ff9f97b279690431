//! The token table on disk: one snapshot file, replaced atomically.
//!
//! Format (little endian): `MXGBAYES4\n`, the generation (u64: the journal that continues this
//! snapshot carries the same number, see [`crate::journal`]), spam and ham messages learnt (u64
//! each), the number of tokens (u64), then per token the token (u64), its spam and ham counts
//! (u32 each), the day it was last learnt (u32) and its logistic-regression weight (f32); the
//! number of learnt messages remembered ([`crate::seen`], u64), then per message its digest
//! (u64), the day (u16), spam or ham (u8: 1 or 0) and the times it was learnt beyond once (u8,
//! [`crate::reinforce`]); then a CRC-32 of everything before it. Older files load as they are:
//! `MXGBAYES3\n` (no weights: each 0, the regression starts untaught), `MXGBAYES2\n` (nor
//! remembered messages: none remembered). Written to `NAME.tmp`, fsync'd,
//! renamed over `NAME`, directory fsync'd: a crash leaves the old snapshot or the new one, never
//! half of one. A file that fails its magic, length or checksum is refused whole (and kept aside
//! as `NAME.bad` by the caller).
//!
//! Cost: 24 bytes a token and 12 a remembered message, written sequentially (2 M tokens: 48 MB,
//! well under a second).
//! Never: called on a scan path (it runs on the learner's thread and at start-up).

use std::io::{self, Read, Write};
use std::path::Path;

use crate::classify::Counts;
use crate::seen::{Entry, Seen};
use crate::table::{Held, Table};

const MAGIC: &[u8] = b"MXGBAYES4\n";
/// The format before the weights.
const MAGIC_3: &[u8] = b"MXGBAYES3\n";
/// The format before the remembered messages.
const MAGIC_2: &[u8] = b"MXGBAYES2\n";
const ENTRY: usize = 24;
/// A token's entry before the weights.
const ENTRY_3: usize = 20;
const SEEN_ENTRY: usize = 12;

/// Writes the snapshot of `generation` (the table and the remembered messages) to `path`
/// atomically; returns the tokens written.
pub fn save(table: &Table, seen: &Seen, path: &Path, generation: u64) -> io::Result<usize> {
    let tmp = path.with_extension("tmp");
    let (spam, ham) = table.learned();
    let entries: Vec<Held> = table.entries().collect();
    let mut buf = Vec::with_capacity(MAGIC.len() + 40 + entries.len() * ENTRY + seen.len() * SEEN_ENTRY + 4);
    buf.extend_from_slice(MAGIC);
    for v in [generation, spam, ham, entries.len() as u64] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    for e in &entries {
        buf.extend_from_slice(&e.token.to_le_bytes());
        buf.extend_from_slice(&e.counts.spam.to_le_bytes());
        buf.extend_from_slice(&e.counts.ham.to_le_bytes());
        buf.extend_from_slice(&u32::from(e.day).to_le_bytes());
        buf.extend_from_slice(&e.weight.to_le_bytes());
    }
    buf.extend_from_slice(&(seen.len() as u64).to_le_bytes());
    for (digest, e) in seen.entries() {
        buf.extend_from_slice(&digest.to_le_bytes());
        buf.extend_from_slice(&e.day.to_le_bytes());
        buf.extend_from_slice(&[u8::from(e.spam), e.extra]);
    }
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(entries.len())
}

/// What a snapshot held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    pub tokens: usize,
    pub generation: u64,
}

/// Loads a snapshot into `table` and `seen` (which should be empty). A missing file is an empty
/// table of generation 0; a damaged one an error (the table may then hold part of it: throw it
/// away).
pub fn load(table: &Table, seen: &mut Seen, path: &Path) -> io::Result<Loaded> {
    let mut buf = Vec::new();
    match std::fs::File::open(path) {
        Ok(mut f) => f.read_to_end(&mut buf)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(e),
    };
    load_bytes(table, seen, &buf, &path.display().to_string())
}

/// [`load`] of a snapshot already read (`name` for the errors).
pub fn load_bytes(table: &Table, seen: &mut Seen, buf: &[u8], name: &str) -> io::Result<Loaded> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {why}"));
    let (v4, v3) = (buf.starts_with(MAGIC), buf.starts_with(MAGIC_3));
    if buf.len() < MAGIC.len() + 36 || !(v4 || v3 || buf.starts_with(MAGIC_2)) {
        return Err(bad("not a Bayes snapshot"));
    }
    // Every version's magic is as long; versions 3 and 4 remember messages after the tokens.
    let (entry, remembers) = if v4 { (ENTRY, true) } else { (ENTRY_3, v3) };
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().unwrap_or_default()) {
        return Err(bad("checksum mismatch"));
    }
    let u64_at = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().unwrap_or_default());
    let u32_at = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().unwrap_or_default());
    let h = MAGIC.len();
    let (generation, spam, ham, n) = (u64_at(h), u64_at(h + 8), u64_at(h + 16), u64_at(h + 24) as usize);
    let tokens_end = n.checked_mul(entry).and_then(|b| b.checked_add(h + 32));
    // The remembered messages after the tokens, their count first.
    let seen_n = match tokens_end {
        Some(end) if remembers && end.checked_add(8).is_some_and(|e| e <= body.len()) => Some(u64_at(end) as usize),
        _ => None,
    };
    let whole = match (remembers, tokens_end, seen_n) {
        (false, Some(end), _) => Some(end),
        (true, Some(end), Some(m)) => m.checked_mul(SEEN_ENTRY).and_then(|b| b.checked_add(end + 8)),
        _ => None,
    };
    if whole != Some(body.len()) {
        return Err(bad("length does not match its token count"));
    }
    let mut tokens = 0;
    for i in 0..n {
        let at = h + 32 + i * entry;
        let day = u32_at(at + 16).min(u32::from(u16::MAX)) as u16;
        // A weight that is not a finite number (a file written wrong) counts as untaught.
        let weight = if v4 { Some(f32::from_bits(u32_at(at + 20))).filter(|w| w.is_finite()).unwrap_or(0.0) } else { 0.0 };
        if table.restore(Held { token: u64_at(at), counts: Counts { spam: u32_at(at + 8), ham: u32_at(at + 12) }, day, weight }) {
            tokens += 1;
        }
    }
    table.restore_learned(spam, ham);
    if let (Some(end), Some(m)) = (tokens_end, seen_n) {
        for i in 0..m {
            let at = end + 8 + i * SEEN_ENTRY;
            let day = u16::from_le_bytes([body[at + 8], body[at + 9]]);
            seen.restore(u64_at(at), Entry { spam: body[at + 10] == 1, day, extra: body[at + 11] });
        }
    }
    Ok(Loaded { tokens, generation })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mxg-bayes-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_and_damage() {
        let d = dir("store");
        let path = d.join("bayes.db");
        let t = Table::new(1000);
        t.learn_on(&[10, 20, 30], true, 100);
        t.learn_on(&[20, 40], false, 200);
        let mut seen = Seen::default();
        seen.set(0xfeed, Entry { spam: true, day: 100, extra: 2 }, 10);
        seen.set(0xbeef, Entry { spam: false, day: 200, extra: 0 }, 10);
        assert_eq!(save(&t, &seen, &path, 7).unwrap(), 4);
        let u = Table::new(1000);
        let mut useen = Seen::default();
        assert_eq!(load(&u, &mut useen, &path).unwrap(), Loaded { tokens: 4, generation: 7 });
        assert_eq!((useen.len(), useen.get(0xfeed), useen.get(0xbeef)), (2, seen.get(0xfeed), seen.get(0xbeef)));
        assert_eq!(u.learned(), (1, 1));
        for tok in [10, 20, 30, 40, 50] {
            assert_eq!(u.get(tok), t.get(tok));
        }
        let mut days: Vec<(u64, u16)> = u.entries().map(|e| (e.token, e.day)).collect();
        days.sort();
        assert_eq!(days, [(10, 100), (20, 200), (30, 100), (40, 200)], "the day last learnt survives");
        for tok in [10, 20, 30, 40] {
            assert!(t.weight(tok) != 0.0 && u.weight(tok).to_bits() == t.weight(tok).to_bits(), "the weights survive");
        }
        // Missing: empty. Damaged anywhere: refused whole.
        assert_eq!(load(&Table::new(10), &mut Seen::default(), &d.join("none.db")).unwrap(), Loaded::default());
        let good = std::fs::read(&path).unwrap();
        for cut in [5, good.len() / 2, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(load(&Table::new(1000), &mut Seen::default(), &path).is_err(), "cut at {cut}");
        }
        let mut flipped = good.clone();
        flipped[MAGIC.len() + 30] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let v = Table::new(1000);
        assert!(load(&v, &mut Seen::default(), &path).is_err());
        assert_eq!(v.learned(), (0, 0));
        assert!(!d.join("bayes.tmp").exists(), "no temporary file left behind");
        // A token count whose byte length overflows (found by fuzz/learning_files), CRC right.
        let mut huge = MAGIC.to_vec();
        for v in [1u64, 0, 0, u64::MAX / 4] {
            huge.extend_from_slice(&v.to_le_bytes());
        }
        huge.extend_from_slice(&[0; 9]);
        let crc = crc32fast::hash(&huge);
        huge.extend_from_slice(&crc.to_le_bytes());
        assert!(load_bytes(&Table::new(10), &mut Seen::default(), &huge, "huge").is_err());
        // A remembered-message count whose byte length overflows, CRC right.
        let mut huge = MAGIC.to_vec();
        for v in [1u64, 0, 0, 0, u64::MAX / 8] {
            huge.extend_from_slice(&v.to_le_bytes());
        }
        let crc = crc32fast::hash(&huge);
        huge.extend_from_slice(&crc.to_le_bytes());
        assert!(load_bytes(&Table::new(10), &mut Seen::default(), &huge, "huge").is_err());
    }

    #[test]
    fn a_version_3_snapshot_loads_untaught_weights() {
        let mut v3 = MAGIC_3.to_vec();
        for v in [3u64, 1, 0, 1] {
            v3.extend_from_slice(&v.to_le_bytes());
        }
        v3.extend_from_slice(&42u64.to_le_bytes());
        for v in [1u32, 0, 17] {
            v3.extend_from_slice(&v.to_le_bytes());
        }
        v3.extend_from_slice(&1u64.to_le_bytes());
        v3.extend_from_slice(&0xfeedu64.to_le_bytes());
        v3.extend_from_slice(&[17, 0, 1, 2]);
        let crc = crc32fast::hash(&v3);
        v3.extend_from_slice(&crc.to_le_bytes());
        let (t, mut seen) = (Table::new(100), Seen::default());
        assert_eq!(load_bytes(&t, &mut seen, &v3, "v3").unwrap(), Loaded { tokens: 1, generation: 3 });
        assert_eq!((t.get(42), t.weight(42), t.learned()), (Counts { spam: 1, ham: 0 }, 0.0, (1, 0)));
        assert_eq!(seen.get(0xfeed), Some(Entry { spam: true, day: 17, extra: 2 }));
    }

    #[test]
    fn a_version_2_snapshot_loads_remembering_no_message() {
        // Written as version 2 did: the tokens, no remembered messages.
        let mut v2 = MAGIC_2.to_vec();
        for v in [3u64, 1, 0, 1] {
            v2.extend_from_slice(&v.to_le_bytes());
        }
        v2.extend_from_slice(&42u64.to_le_bytes());
        for v in [1u32, 0, 17] {
            v2.extend_from_slice(&v.to_le_bytes());
        }
        let crc = crc32fast::hash(&v2);
        v2.extend_from_slice(&crc.to_le_bytes());
        let (t, mut seen) = (Table::new(100), Seen::default());
        assert_eq!(load_bytes(&t, &mut seen, &v2, "v2").unwrap(), Loaded { tokens: 1, generation: 3 });
        assert_eq!((t.get(42), t.learned(), seen.len()), (Counts { spam: 1, ham: 0 }, (1, 0), 0));
    }
}
