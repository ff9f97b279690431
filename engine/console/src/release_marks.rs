//! Releases that were sent but not yet marked: the quarantine copy's "released" mark is the last
//! step of a release, after the message is durably spooled again; when the database fails just
//! then (PostgreSQL killed, a network cut), the copy would stay "releasing", its claim would go
//! stale after ten minutes, and a second release would send the message twice. So a release
//! enters its copy here (a file of its own in the state directory, fsync'd) once the message is
//! spooled, and leaves when the mark is in the database; what is left is marked again every few
//! seconds, and at the next start, until the database takes it.
//!
//! What remains open: a crash in the microseconds between the spool's fsync and this file's.
//! It never writes anything but its own file, and never marks a copy whose message was not sent.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub struct ReleaseMarks {
    path: Option<PathBuf>,
    /// Copy id → who released it.
    pending: RefCell<BTreeMap<i64, String>>,
}

impl ReleaseMarks {
    /// The marks left in `path` by an earlier run (none when the file does not exist); `None`
    /// keeps them in memory only.
    pub fn load(path: Option<PathBuf>) -> io::Result<ReleaseMarks> {
        let mut pending = BTreeMap::new();
        if let Some(p) = &path {
            match std::fs::read_to_string(p) {
                Ok(text) => {
                    for line in text.lines() {
                        let (id, by) = line.split_once(' ').unwrap_or((line, ""));
                        if let Ok(id) = id.parse::<i64>() {
                            pending.insert(id, by.to_string());
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ReleaseMarks { path, pending: RefCell::new(pending) })
    }

    /// Copy `id` (released by `by`) was sent; durable when this returns Ok.
    pub fn add(&self, id: i64, by: &str) -> io::Result<()> {
        self.pending.borrow_mut().insert(id, by.replace(['\n', '\r'], " "));
        self.save()
    }

    /// Copy `id`'s mark is in the database.
    pub fn done(&self, id: i64) -> io::Result<()> {
        if self.pending.borrow_mut().remove(&id).is_some() {
            self.save()?;
        }
        Ok(())
    }

    /// The copies still to mark, with who released them.
    pub fn pending(&self) -> Vec<(i64, String)> {
        self.pending.borrow().iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Writes the whole set (a handful of lines at most, usually none) to a new file, fsyncs it
    /// and renames it over the old one, so a crash leaves the old set or the new, never half.
    fn save(&self) -> io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let tmp = path.with_extension("new");
        let mut f = std::fs::File::create(&tmp)?;
        for (id, by) in self.pending.borrow().iter() {
            writeln!(f, "{id} {by}")?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_a_restart_until_done() {
        let dir = std::env::temp_dir().join(format!("mxguard-marks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("release-marks");
        let m = ReleaseMarks::load(Some(path.clone())).unwrap();
        assert!(m.pending().is_empty());
        m.add(7, "ann@example.test").unwrap();
        m.add(9, "bob\nx").unwrap();
        let again = ReleaseMarks::load(Some(path.clone())).unwrap();
        assert_eq!(again.pending(), vec![(7, "ann@example.test".into()), (9, "bob x".into())]);
        again.done(7).unwrap();
        again.done(8).unwrap();
        assert_eq!(ReleaseMarks::load(Some(path.clone())).unwrap().pending(), vec![(9, "bob x".into())]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
