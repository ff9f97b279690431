//! The learning files a crash may tear or a disk damage — the Bayes snapshot, its journal — and
//! the learnt bulk-signature list: whatever the bytes, loading must never panic or read out of
//! bounds, a journal must replay exactly its whole records, and the fingerprint of any text is
//! well defined. Checksums are fixed up here so the fuzzer reaches the decoders behind them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxguard_bayes::journal::{self, Lesson};
use mxguard_bayes::seen::Seen;
use mxguard_bayes::store;
use mxguard_bayes::table::Table;

fuzz_target!(|data: &[u8]| {
    // A snapshot of any version: the input with its CRC made right.
    for magic in [&b"MXGBAYES4\n"[..], b"MXGBAYES3\n", b"MXGBAYES2\n"] {
        let mut snap = magic.to_vec();
        snap.extend_from_slice(data);
        let crc = crc32fast::hash(&snap);
        snap.extend_from_slice(&crc.to_le_bytes());
        let table = Table::new(1024);
        let mut seen = Seen::default();
        if let Ok(l) = store::load_bytes(&table, &mut seen, &snap, "fuzz") {
            assert!(l.tokens <= table.capacity());
            assert!(seen.len() <= data.len() / 12);
            // Whatever the file said, every weight loaded is a number (a NaN would poison every
            // message's log-odds).
            assert!(table.entries().all(|e| e.weight.is_finite()));
        }
    }

    // A journal: lessons built from the input (valid records), then the raw input as a torn or
    // damaged tail. Replay gives back every built lesson, in order, and never more than the
    // input could hold.
    let lessons: Vec<Lesson> = data
        .chunks(19)
        .map(|c| Lesson {
            tokens: c.iter().map(|b| u64::from(*b) * 0x0101_0101_0101_0101).collect(),
            spam: c.first().is_some_and(|b| b & 1 == 1),
            unlearn: c.first().is_some_and(|b| b & 2 == 2),
            day: c.len() as u16,
            extra: Some(c.first().map_or(0, |b| (b >> 2) & 3)),
        })
        .collect();
    let mut j = journal::header(5);
    for l in &lessons {
        j.extend_from_slice(&journal::record(l));
    }
    let whole = j.len();
    j.extend_from_slice(data);
    let mut got = Vec::new();
    let r = journal::replay_bytes(&j, 5, |l| got.push(l));
    assert!(got.len() >= lessons.len() && got[..lessons.len()] == lessons[..]);
    assert!(r.good_len as usize >= whole && r.good_len as usize + r.torn as usize == j.len());
    assert_eq!(journal::replay_bytes(&j, 6, |_| panic!("another generation replayed")).lessons, 0);

    // The bulk-signature list and the fingerprint of the input as text.
    let text = String::from_utf8_lossy(data);
    let _ = mxguard_scan::fingerprint::Known::parse(&text, "fuzz");
    if let Some(f) = mxguard_scan::fingerprint::fingerprint(&text, 3) {
        assert_eq!(mxguard_scan::fingerprint::fingerprint(&text, 3), Some(f), "deterministic");
    }
});
