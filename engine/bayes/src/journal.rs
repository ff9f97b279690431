//! The learning journal: every lesson since the last snapshot, appended as it is learnt and
//! fsync'd every `bayes.journal_sync_ms`, so a crash (even `kill -9`) loses at most that much
//! learning instead of everything since the last snapshot.
//!
//! Format (little endian): a header `MXGBJRN1\n` and the generation (u64) of the snapshot it
//! continues; then one record per lesson: kind (u8: bit 0 spam, bit 1 unlearn, bits 2-3 the
//! extra times a lesson was learnt, [`crate::reinforce`]; older journals have 0 there), the day
//! (u16), the number of tokens (u32), the tokens (u64 each), and a CRC-32 of the record.
//! Replaying stops at the first short or damaged record (the tail a crash tore); appending
//! resumes right after the last good one.
//!
//! Pairing with snapshots: a snapshot of generation G+1 is written first, then a fresh journal of
//! generation G+1 replaces the old one. A journal is replayed only onto the snapshot of its own
//! generation, so a crash between the two steps cannot apply a lesson twice.
//!
//! Cost: 8 bytes a token plus 11 a lesson, appended through a buffer; one `fdatasync` per
//! interval. Never: written on a scan path (only the learner thread appends).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"MXGBJRN1\n";
const HEADER: usize = 17;

/// One message learnt or unlearnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lesson {
    pub tokens: Vec<u64>,
    pub spam: bool,
    /// Taken back instead of learnt (train on error).
    pub unlearn: bool,
    pub day: u16,
    /// Times learnt beyond once ([`crate::reinforce`]): `None` for a fresh lesson (whoever
    /// applies it judges), `Some` once decided; a replayed record carries the decision, so
    /// replaying never judges again.
    pub extra: Option<u8>,
}

/// The most extra times a record can carry (two bits of its kind).
pub const EXTRA_MAX: u8 = 3;

/// The journal file beside a table file (`bayes.db` → `bayes.journal`).
pub fn path_for(table: &Path) -> PathBuf {
    table.with_extension("journal")
}

/// What a replay found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Lessons handed over.
    pub lessons: u64,
    /// Bytes up to the end of the last good record (where appending resumes); 0 when the journal
    /// was missing, of another generation or unreadable.
    pub good_len: u64,
    /// Bytes after the last good record (a torn tail), ignored.
    pub torn: u64,
}

/// Hands every lesson of the journal at `path` to `apply` if it continues the snapshot of
/// `generation`; a journal of another generation holds nothing that snapshot lacks.
pub fn replay(path: &Path, generation: u64, apply: impl FnMut(Lesson)) -> io::Result<Replayed> {
    let mut buf = Vec::new();
    match File::open(path) {
        Ok(mut f) => f.read_to_end(&mut buf)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replayed::default()),
        Err(e) => return Err(e),
    };
    Ok(replay_bytes(&buf, generation, apply))
}

/// [`replay`] of a journal already read.
pub fn replay_bytes(buf: &[u8], generation: u64, mut apply: impl FnMut(Lesson)) -> Replayed {
    if buf.len() < HEADER || !buf.starts_with(MAGIC) || u64::from_le_bytes(buf[9..17].try_into().unwrap_or_default()) != generation {
        return Replayed { torn: buf.len() as u64, ..Replayed::default() };
    }
    let mut at = HEADER;
    let mut lessons = 0;
    while let Some((lesson, len)) = record_at(&buf[at..]) {
        apply(lesson);
        lessons += 1;
        at += len;
    }
    Replayed { lessons, good_len: at as u64, torn: (buf.len() - at) as u64 }
}

/// A journal's header for `generation` (for tools and tests that build one in memory).
pub fn header(generation: u64) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&generation.to_le_bytes());
    h
}

/// One lesson's record as the journal stores it.
pub fn record(l: &Lesson) -> Vec<u8> {
    let kind = u8::from(l.spam) | (u8::from(l.unlearn) << 1) | (l.extra.unwrap_or(0).min(EXTRA_MAX) << 2);
    let mut rec = Vec::with_capacity(11 + l.tokens.len() * 8);
    rec.push(kind);
    rec.extend_from_slice(&l.day.to_le_bytes());
    rec.extend_from_slice(&(l.tokens.len() as u32).to_le_bytes());
    for t in &l.tokens {
        rec.extend_from_slice(&t.to_le_bytes());
    }
    let crc = crc32fast::hash(&rec);
    rec.extend_from_slice(&crc.to_le_bytes());
    rec
}

/// The record at the start of `b` and its length, if whole and undamaged.
fn record_at(b: &[u8]) -> Option<(Lesson, usize)> {
    let kind = *b.first()?;
    let day = u16::from_le_bytes(b.get(1..3)?.try_into().ok()?);
    let n = u32::from_le_bytes(b.get(3..7)?.try_into().ok()?) as usize;
    let end = 7usize.checked_add(n.checked_mul(8)?)?;
    let crc = u32::from_le_bytes(b.get(end..end + 4)?.try_into().ok()?);
    if kind > 15 || crc32fast::hash(&b[..end]) != crc {
        return None;
    }
    let tokens = b[7..end].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())).collect();
    Some((Lesson { tokens, spam: kind & 1 == 1, unlearn: kind & 2 == 2, day, extra: Some(kind >> 2) }, end + 4))
}

/// The journal being appended to.
pub struct Journal {
    file: BufWriter<File>,
    len: u64,
    unsynced: bool,
}

impl Journal {
    /// Continues the journal at `path` after its last good record (`good_len` from [`replay`]);
    /// when that is 0, starts a fresh one of `generation`.
    pub fn resume(path: &Path, generation: u64, good_len: u64) -> io::Result<Journal> {
        if good_len < HEADER as u64 {
            return Journal::create(path, generation);
        }
        let mut f = OpenOptions::new().write(true).open(path)?;
        f.set_len(good_len)?;
        f.seek(SeekFrom::Start(good_len))?;
        f.sync_all()?;
        Ok(Journal { file: BufWriter::with_capacity(1 << 16, f), len: good_len, unsynced: false })
    }

    /// A fresh, empty journal of `generation` replacing whatever is at `path` (written beside it,
    /// fsync'd and renamed over it, then the directory fsync'd).
    pub fn create(path: &Path, generation: u64) -> io::Result<Journal> {
        let tmp = path.with_extension("journal.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&header(generation))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(Journal { file: BufWriter::with_capacity(1 << 16, f), len: HEADER as u64, unsynced: false })
    }

    /// Appends a lesson (buffered; durable after the next [`Journal::sync`]).
    pub fn append(&mut self, l: &Lesson) -> io::Result<()> {
        let rec = record(l);
        self.file.write_all(&rec)?;
        self.len += rec.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Writes out the buffer and makes everything appended durable (nothing to do when nothing
    /// was appended since the last call).
    pub fn sync(&mut self) -> io::Result<()> {
        if !self.unsynced {
            return Ok(());
        }
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        self.unsynced = false;
        Ok(())
    }

    /// Bytes in the journal.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len <= HEADER as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lesson(tokens: &[u64], spam: bool, unlearn: bool) -> Lesson {
        Lesson { tokens: tokens.to_vec(), spam, unlearn, day: 42, extra: Some(0) }
    }

    #[test]
    fn append_replay_torn_tail_and_generations() {
        let d = std::env::temp_dir().join(format!("mxg-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let path = path_for(&d.join("bayes.db"));
        assert_eq!(replay(&path, 0, |_| panic!("nothing to replay")).unwrap(), Replayed::default());
        let written = [lesson(&[1, 2, 3], true, false), lesson(&[], false, false), lesson(&[9], true, true), lesson(&[4, 5], false, true)];
        let mut j = Journal::create(&path, 3).unwrap();
        for l in &written {
            j.append(l).unwrap();
        }
        j.sync().unwrap();
        let full = j.len();
        drop(j);
        let mut got = Vec::new();
        let r = replay(&path, 3, |l| got.push(l)).unwrap();
        assert_eq!(got, written);
        assert_eq!(r, Replayed { lessons: 4, good_len: full, torn: 0 });
        // Another generation: the snapshot already holds it.
        assert_eq!(replay(&path, 4, |_| panic!("wrong generation replayed")).unwrap().lessons, 0);

        // A torn tail (a crash mid-write) is ignored; appending resumes after the last good one.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let r = replay(&path, 3, |_| {}).unwrap();
        assert_eq!((r.lessons, r.torn), (3, bytes.len() as u64 - 3 - r.good_len));
        let mut j = Journal::resume(&path, 3, r.good_len).unwrap();
        j.append(&lesson(&[7], true, false)).unwrap();
        j.sync().unwrap();
        let mut got = Vec::new();
        replay(&path, 3, |l| got.push(l)).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], lesson(&[7], true, false));

        // A flipped bit stops the replay at that record.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 8] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(replay(&path, 3, |_| {}).unwrap().lessons, 0);
        // A garbage file is no journal at all.
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(replay(&path, 3, |_| {}).unwrap(), Replayed { torn: 7, ..Replayed::default() });
        assert!(!path.with_extension("journal.tmp").exists());
    }

    #[test]
    fn records_carry_the_extra_times() {
        let mut buf = header(1);
        let reinforced = Lesson { extra: Some(2), ..lesson(&[5, 6], true, false) };
        buf.extend(record(&reinforced));
        // A record written before the extra times existed: kind 0 (learn ham) as it was.
        buf.extend(record(&lesson(&[8], false, false)));
        assert_eq!(buf[HEADER] >> 2, 2);
        let mut got = Vec::new();
        replay_bytes(&buf, 1, |l| got.push(l));
        assert_eq!(got, [reinforced, lesson(&[8], false, false)]);
        // A fresh lesson not judged yet is recorded as learnt once.
        let fresh = Lesson { extra: None, ..lesson(&[5], true, false) };
        let mut buf = header(1);
        buf.extend(record(&fresh));
        let mut got = Vec::new();
        replay_bytes(&buf, 1, |l| got.push(l));
        assert_eq!(got[0].extra, Some(0));
    }
}
