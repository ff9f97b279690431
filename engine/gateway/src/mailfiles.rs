//! The messages in files: what `mxguard learn`, `mxguard explain` and `mxguard bulk-signature`
//! read. A path is a file holding one message, an mbox (its first line begins with `From `,
//! and so does the envelope line before each message, which is not part of the message), or a
//! directory whose files are read in name order, recursively.
//!
//! An mbox is read a line at a time and handed over a message at a time: learning from a spam
//! trap's mbox of many gigabytes holds one message in memory, not the file. Must never: load a
//! whole mbox, or change a message's bytes (line ends stay as written; the caller makes them
//! CRLF).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The files under `path` (itself when it is a file), in name order, with their sizes.
pub fn files(path: &Path, out: &mut Vec<(PathBuf, u64)>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for e in entries {
            files(&e, out)?;
        }
    } else {
        out.push((path.to_path_buf(), meta.len()));
    }
    Ok(())
}

/// Calls `each(message, bytes read of the file so far)` for every message of one file, in
/// order, until it returns false.
pub fn each_message(path: &Path, each: &mut dyn FnMut(&[u8], u64) -> bool) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut r = BufReader::with_capacity(1 << 16, std::fs::File::open(path).map_err(err)?);
    let mut line = Vec::new();
    let mut read = r.read_until(b'\n', &mut line).map_err(err)? as u64;
    if !line.starts_with(b"From ") {
        // One message: the whole file.
        r.read_to_end(&mut line).map_err(err)?;
        let n = line.len() as u64;
        if !line.is_empty() {
            each(&line, n);
        }
        return Ok(());
    }
    let mut message = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(err)?;
        read += n as u64;
        if n == 0 || line.starts_with(b"From ") {
            // The envelope line of the next message (or the end): the one before is complete.
            if !message.is_empty() && !each(&message, read - n as u64) {
                return Ok(());
            }
            message.clear();
            if n == 0 {
                return Ok(());
            }
            continue;
        }
        message.extend_from_slice(&line);
    }
}

/// Every message under `path`, collected (for the commands that read a few).
pub fn messages(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let mut found = Vec::new();
    let mut out = Vec::new();
    files(path, &mut found)?;
    for (f, _) in found {
        each_message(&f, &mut |m, _| {
            out.push(m.to_vec());
            true
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mxguard-mailfiles-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_mbox_is_its_messages_without_the_envelope_lines() {
        let d = dir("mbox");
        let mbox = "From a@x Thu Jan  1 00:00:00 2026\nSubject: one\n\n>From quoted\nbody\nFrom b@x Thu Jan  1 00:00:00 2026\nFrom c@x Thu Jan  1 00:00:00 2026\nSubject: three\r\n\r\nlast";
        std::fs::write(d.join("box"), mbox).unwrap();
        let mut seen = Vec::new();
        each_message(&d.join("box"), &mut |m, read| {
            seen.push((String::from_utf8(m.to_vec()).unwrap(), read));
            true
        })
        .unwrap();
        let first = "Subject: one\n\n>From quoted\nbody\n";
        assert_eq!(seen.len(), 2, "an envelope line with no message after it is no message: {seen:?}");
        assert_eq!(seen[0].0, first);
        assert_eq!(seen[1].0, "Subject: three\r\n\r\nlast", "line ends as written, the last line without one too");
        assert_eq!(seen[1].1, mbox.len() as u64, "bytes read so far, for the progress bar");
        assert!(seen[0].1 < seen[1].1);
        // Stopping early, as `mxguard explain` does after the first.
        let mut n = 0;
        each_message(&d.join("box"), &mut |_, _| {
            n += 1;
            false
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_directory_is_its_files_in_name_order() {
        let d = dir("tree");
        std::fs::create_dir_all(d.join("b")).unwrap();
        std::fs::write(d.join("b/2"), "Subject: two\n\nx\n").unwrap();
        std::fs::write(d.join("a"), "Subject: one\n\nFrom here on a body line\n").unwrap();
        std::fs::write(d.join("c"), "").unwrap();
        let all = messages(&d).unwrap();
        assert_eq!(all, vec![b"Subject: one\n\nFrom here on a body line\n".to_vec(), b"Subject: two\n\nx\n".to_vec()], "an empty file is no message");
        let mut f = Vec::new();
        files(&d, &mut f).unwrap();
        assert_eq!(f.iter().map(|x| x.1).sum::<u64>(), 39 + 16);
        assert!(messages(&d.join("missing")).unwrap_err().contains("missing"));
    }
}
