//! The archive reader (`mxguard_scan::attachments::check`: zip walked entry by entry, nested
//! zips opened, within the bomb limits) on archives a sender builds.
//!
//! Input, first byte: 0 — the rest is the attachment as it is (any bytes named `a.zip`).
//! Otherwise a zip is written from the input (so the fuzzer reaches the walk behind a valid
//! central directory) and then damaged: the rest is split at 0xFE into entries, each
//! `[method][name]\0[content]` (method: even = stored, odd = deflated; a content that starts with
//! `ZIP` is itself built into a zip of one entry, nested); after a 0xFD, pairs `(offset, xor)`
//! flip bytes of the written archive.
//!
//! Properties: never a panic or hang; what the walk reads (the entries it looks at) never
//! exceeds `total_bytes_max`, whatever sizes the archive declares; and an undamaged archive
//! within every limit is read whole — each file entry is looked at, with no bomb, unreadable or
//! depth finding (so the limits never hide an honest archive's contents).
#![no_main]

use std::collections::HashSet;
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use mxguard_scan::attachments::{check, Limits, Policy};
use mxguard_scan::magic::{detect, FileType};

const LIMITS: Limits = Limits { depth_max: 3, entries_max: 64, ratio_max: 100, total_bytes_max: 256 * 1024 };

fn zip_of(entries: &[(bool, String, Vec<u8>)]) -> Option<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (deflate, name, content) in entries {
        let method = if *deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
        let o = zip::write::SimpleFileOptions::default().compression_method(method);
        w.start_file(name.as_str(), o).ok()?;
        w.write_all(content).ok()?;
    }
    Some(w.finish().ok()?.into_inner())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let blocked: HashSet<String> = ["exe", "scr", "js"].iter().map(|s| s.to_string()).collect();
    let policy = Policy { blocked: &blocked, limits: LIMITS };
    if mode == 0 {
        let r = check([(Some("a.zip"), rest)], &policy);
        let inner: u64 = r.seen.iter().skip(1).map(|s| s.size).sum();
        assert!(inner <= LIMITS.total_bytes_max, "read {inner} bytes");
        return;
    }
    let (spec, flips) = match rest.iter().position(|&b| b == 0xFD) {
        Some(p) => (&rest[..p], &rest[p + 1..]),
        None => (rest, &[][..]),
    };
    // Entries, and what an honest reader must see of them (paths of file entries, nested ones
    // included).
    let mut entries = Vec::new();
    let mut expect = Vec::new();
    let mut nested_depth = 1;
    let mut inflated = 0usize;
    let mut zip_like = false;
    for e in spec.split(|&b| b == 0xFE).filter(|e| !e.is_empty()) {
        let deflate = e[0] & 1 == 1;
        let (name, content) = match e[1..].iter().position(|&b| b == 0) {
            Some(p) => (&e[1..1 + p], &e[2 + p..]),
            None => (&e[1..], &[][..]),
        };
        let name = String::from_utf8_lossy(name).into_owned();
        if name.is_empty() {
            continue;
        }
        let dir = name.ends_with('/') || name.ends_with('\\');
        let content = if let Some(inner) = content.strip_prefix(b"ZIP") {
            zip_like |= detect(inner) == FileType::Zip;
            let inner_name = format!("in{}.txt", entries.len());
            let Some(z) = zip_of(&[(deflate, inner_name.clone(), inner.to_vec())]) else { return };
            if !dir {
                expect.push(format!("a.zip/{name}/{inner_name}"));
            }
            nested_depth = 2;
            inflated += inner.len();
            z
        } else {
            // Bytes that look like a zip but are not one are rightly unreadable.
            zip_like |= detect(content) == FileType::Zip;
            content.to_vec()
        };
        if !dir {
            expect.push(format!("a.zip/{name}"));
        }
        inflated += content.len();
        entries.push((deflate, name, content));
    }
    let Some(mut archive) = zip_of(&entries) else { return };
    let mut damaged = false;
    for f in flips.chunks_exact(3) {
        let at = u16::from_le_bytes([f[0], f[1]]) as usize;
        if !archive.is_empty() && f[2] != 0 {
            let i = at % archive.len();
            archive[i] ^= f[2];
            damaged = true;
        }
    }
    let r = check([(Some("a.zip"), &archive[..])], &policy);
    let inner: u64 = r.seen.iter().skip(1).map(|s| s.size).sum();
    assert!(inner <= LIMITS.total_bytes_max, "read {inner} bytes");
    let honest = !damaged && !zip_like && entries.len() <= LIMITS.entries_max && nested_depth <= LIMITS.depth_max && (inflated as u64) < LIMITS.total_bytes_max / 2;
    // A name the walk cannot tell from a directory, or one that repeats, is not an honest archive.
    let unique: HashSet<&String> = entries.iter().map(|(_, n, _)| n).collect();
    if honest && unique.len() == entries.len() {
        for (sym, why) in &r.findings {
            assert!(!matches!(*sym, "ARCHIVE_BOMB" | "ARCHIVE_UNREADABLE" | "ARCHIVE_TOO_DEEP"), "{sym}: {why}");
        }
        let seen: HashSet<&str> = r.seen.iter().map(|s| s.path.as_str()).collect();
        for p in &expect {
            assert!(seen.contains(p.as_str()), "{p} not looked at; seen {seen:?}");
        }
    }
});
