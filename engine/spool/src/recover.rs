//! Crash recovery: find every message that is not done, in every segment, batch and deferred file.
//!
//! Files are shared out among executors by a hash of their name. A segment is read record by
//! record up to its end: zeros, a record of an earlier epoch (left from a recycled life), or a
//! torn record (the crash came before that commit's fsync finished, so nothing from it on was
//! acknowledged). A batch or deferred file whose tail is torn still yields its intact records
//! (delivering a message twice is better than losing one), and a copy goes to `corrupt/` for the
//! postmaster. Recovery never deletes a file that holds a live message.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::record::{decode, DecodeError, Meta};
use crate::{location_for, spool_file, Location};

/// An undelivered message found on disk.
pub struct Recovered {
    pub meta: Meta,
    pub location: Location,
}

fn name_hash(name: &str) -> u64 {
    // FNV-1a: stable across builds and platforms.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn files_in(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let p = entry?.path();
        if p.extension().and_then(|e| e.to_str()) == Some(ext) {
            out.push(p);
        }
    }
    Ok(())
}

/// Every live record under `root` for `core` of `cores`; `active` (this spool's own segment
/// being written) is never read or touched.
pub fn scan(root: &Path, core: usize, cores: usize, active: Option<&Path>) -> std::io::Result<Vec<Recovered>> {
    let mut paths = Vec::new();
    let queue = root.join("queue");
    if let Ok(rd) = std::fs::read_dir(&queue) {
        for entry in rd {
            let p = entry?.path();
            if p.is_dir() {
                files_in(&p, "b", &mut paths)?;
                files_in(&p, "seg", &mut paths)?;
            }
        }
    }
    files_in(&root.join("deferred"), "m", &mut paths)?;
    paths.retain(|p| Some(p.as_path()) != active);
    paths.retain(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name_hash(name) % cores.max(1) as u64 == core as u64
    });
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path)?;
        let segment_epoch = if path.extension().and_then(|e| e.to_str()) == Some("seg") {
            path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok())
        } else {
            None
        };
        let mut found = Vec::new();
        let mut offset = 0u64;
        let mut problem = None;
        while (offset as usize) < bytes.len() {
            match decode(&bytes, offset, segment_epoch.unwrap_or(0)) {
                Ok(d) => {
                    offset = d.end;
                    found.push(d);
                }
                Err(DecodeError::End) => break,
                // In a segment, anything that is not a whole record of this epoch is the end of its
                // log: the commit under way when it stopped, or a recycled life's leftovers.
                Err(_) if segment_epoch.is_some() => break,
                Err(DecodeError::Truncated) => {
                    problem = Some(format!("torn tail at offset {offset}"));
                    break;
                }
                Err(DecodeError::Corrupt(why)) => {
                    problem = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = &problem {
            let keep = root.join("corrupt").join(path.file_name().unwrap_or_default());
            let _ = std::fs::copy(&path, &keep);
            eprintln!("spool recovery: {}: {why}; copy kept in {}", path.display(), keep.display());
        }
        let live: Vec<_> = found.into_iter().filter(|d| !d.done && !d.meta.all_final()).collect();
        if live.is_empty() {
            std::fs::remove_file(&path)?;
            continue;
        }
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path)?;
        let solo = segment_epoch.is_none() && live.len() == 1 && offset as usize == bytes.len() && live[0].offset == 0;
        let sf = spool_file(path, file, live.len() as u32, segment_epoch.is_some());
        for d in live {
            let location = location_for(Rc::clone(&sf), &d, solo);
            out.push(Recovered { meta: d.meta, location });
        }
    }
    Ok(out)
}
