//! The mark writer: a thread per core that writes per-recipient status, retry schedules and done
//! marks into spool files, in the order they were given.
//!
//! Why a thread: a buffered write of one byte is usually a page-cache copy, but when the page is
//! part of a range the group commit is flushing, ext4 can hold the writer for the journal — 0.5 to
//! 22 ms measured under 3,000 msg/s — and on the executor that stalls every connection of the
//! core. Marks are never fsync'd (a lost mark only repeats a delivery), so handing them to another
//! thread changes no guarantee; each file counts its pending marks so that it is recycled or
//! deleted only after they are written.
//!
//! Cost: one channel send per mark on the core; the thread sleeps when there is nothing to write.
//! It must never write a mark after its file was recycled (the counter prevents that) nor drop a
//! mark silently (a failed write is logged as `spool_error`).

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

/// An open spool file as the mark writer sees it: one per file, shared by reference count, so a
/// mark costs no allocation of its own.
pub(crate) struct Backing {
    pub path: PathBuf,
    pub file: File,
    /// Marks handed to the writer and not yet written.
    pub pending: AtomicU32,
}

struct Mark {
    to: Arc<Backing>,
    offset: u64,
    len: u8,
    bytes: [u8; 12],
}

impl Mark {
    fn write(&self) -> io::Result<()> {
        let r = self.to.file.write_all_at(&self.bytes[..self.len as usize], self.offset);
        self.to.pending.fetch_sub(1, Ordering::Release);
        r
    }
}

pub(crate) struct Marks {
    inner: RefCell<Option<(Sender<Mark>, JoinHandle<()>)>>,
}

impl Marks {
    pub(crate) fn start(core: usize) -> Marks {
        let (tx, rx) = crossbeam_channel::unbounded::<Mark>();
        let thread = std::thread::Builder::new()
            .name(format!("mxguard-marks-c{core}"))
            .spawn(move || {
                for m in rx {
                    if let Err(e) = m.write() {
                        mxguard_telemetry::Event::new("spool_error")
                            .str("error", &format!("cannot mark {} at {}: {e}", m.to.path.display(), m.offset))
                            .emit();
                    }
                }
            });
        Marks { inner: RefCell::new(thread.ok().map(|t| (tx, t))) }
    }

    /// Queues `bytes` (at most 12) for `offset` of the file; written inline when the writer is
    /// stopped (or could not start).
    pub(crate) fn write(&self, to: &Arc<Backing>, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut b = [0u8; 12];
        let len = bytes.len().min(b.len());
        b[..len].copy_from_slice(&bytes[..len]);
        to.pending.fetch_add(1, Ordering::AcqRel);
        let m = Mark { to: to.clone(), offset, len: len as u8, bytes: b };
        let m = match self.inner.borrow().as_ref() {
            Some((tx, _)) => match tx.send(m) {
                Ok(()) => return Ok(()),
                Err(e) => e.0,
            },
            None => m,
        };
        m.write()
    }

    /// Writes what is queued and ends the thread.
    pub(crate) fn stop(&self) {
        if let Some((tx, thread)) = self.inner.borrow_mut().take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

impl Drop for Marks {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_written_in_order_and_counted_down() {
        let path = std::env::temp_dir().join(format!("mxguard-marks-{}", std::process::id()));
        let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        file.write_all_at(&[0u8; 64], 0).unwrap();
        let to = Arc::new(Backing { path: path.clone(), file, pending: AtomicU32::new(0) });
        let file = &to.file;
        let marks = Marks::start(0);
        for i in 0..1000u64 {
            // Later marks of the same offset win: order is kept.
            marks.write(&to, i % 16, &[(i % 251) as u8]).unwrap();
        }
        marks.write(&to, 32, &[7; 12]).unwrap();
        marks.stop();
        assert_eq!(to.pending.load(Ordering::Acquire), 0);
        let mut got = [0u8; 64];
        file.read_exact_at(&mut got, 0).unwrap();
        for off in 0..16u64 {
            let last = (0..1000u64).filter(|i| i % 16 == off).max().unwrap();
            assert_eq!(got[off as usize], (last % 251) as u8);
        }
        assert_eq!(&got[32..44], &[7; 12]);
        // Stopped: written inline.
        marks.write(&to, 50, b"D").unwrap();
        file.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(got[50], b'D');
        std::fs::remove_file(&path).unwrap();
    }
}
