//! The spool: messages are on disk, fsync'd, before the client hears `250`; a crash loses
//! nothing that was acknowledged.
//!
//! Layout under the spool root:
//! - `queue/c<core>/<epoch>.seg`: *segments*, fixed-size (`spool.segment_bytes`) files written
//!   ahead of time with zeros and fsync'd, into which each group commit appends the records (see
//!   [`record`]) of every message that core committed together: one vectored write and one
//!   `fdatasync`, with no file created and no metadata changed, which is what lets durability keep
//!   up with the network (measured here: 0.24 ms per commit against 0.96 ms for creating and
//!   syncing a file per commit, and ~50 ms for 200 messages fsync'd one file each). A full segment
//!   is sealed; a sealed segment whose last message is done is recycled as the next spare (its
//!   stale records carry an old epoch and are never read back) or deleted.
//! - `queue/c<core>/spare.s`: the next segment, ready; renamed to its epoch (and the directory
//!   fsync'd) before the first record is written into it.
//! - `queue/c<core>/<id>.b`: a batch too large for a segment, in a file of its own (created,
//!   written, fsync'd with its directory).
//! - `deferred/<id>.m`: a message whose first delivery attempt failed temporarily is rewritten to
//!   a file of its own, so that a long retry never pins a batch of delivered mail on disk.
//! - `corrupt/`: files recovery could not read completely, kept for the postmaster.
//!
//! Per-recipient progress is written in place (never fsync'd: losing it only repeats a delivery)
//! by a thread of the core's own ([`marks`]), never on the executor: a one-byte write into a page
//! the group commit is flushing can wait for the journal for milliseconds (measured: 0.5–22 ms),
//! and the whole core would wait with it. A file is recycled or deleted only once its marks are
//! written.
//! The spool never deletes a message whose recipients are not all final, and never answers a
//! store before the data and the directory entry are durable (unless `spool.fsync` is off).

pub mod blocking;
mod marks;
pub mod queue_id;
pub mod record;
mod recover;
pub mod space;

pub use queue_id::QueueIds;
pub use record::{Meta, RcptStatus};
pub use recover::Recovered;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use glommio::channels::local_channel::{self, LocalSender};

/// A file holding one or more records.
pub struct SpoolFile {
    /// The open file, its path and its pending marks, shared with the blocking pool and the
    /// mark writer.
    backing: Arc<marks::Backing>,
    live: Cell<u32>,
    /// No more records will be added (always true but for the active segment).
    sealed: Cell<bool>,
    /// A segment (recycled when done) rather than a file of its own (deleted when done).
    segment: bool,
}

impl SpoolFile {
    pub fn path(&self) -> PathBuf {
        self.backing.path.clone()
    }
}

/// The segment being appended to.
struct Active {
    file: Rc<SpoolFile>,
    epoch: u64,
    write_off: u64,
    size: u64,
}

/// Where a message's record is.
#[derive(Clone)]
pub struct Location {
    pub file: Rc<SpoolFile>,
    pub offset: u64,
    pub message_offset: u64,
    pub message_len: u64,
    /// The file holds only this message (deferred file or a single-message batch).
    pub solo: bool,
}

/// The message as spooled: the Received header we added, then the data as received. A message
/// read back from disk has both in `body` and an empty `head`.
#[derive(Debug, Default)]
pub struct MessageData {
    pub head: Vec<u8>,
    pub body: Vec<u8>,
}

impl MessageData {
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type Reply = LocalSender<io::Result<(Location, MessageData)>>;

struct Job {
    meta: Meta,
    data: MessageData,
    reply: Reply,
}

/// What the blocking writer gets and gives back (no `Rc` may cross threads).
struct WriteJob {
    head: Vec<u8>,
    data: MessageData,
}

/// One core's spool.
pub struct Spool {
    root: PathBuf,
    queue_dir: PathBuf,
    deferred_dir: PathBuf,
    ids: QueueIds,
    pending: RefCell<Vec<Job>>,
    wake: LocalSender<()>,
    wake_rx: RefCell<Option<local_channel::LocalReceiver<()>>>,
    fsync: Box<dyn Fn() -> bool>,
    batch_max: Box<dyn Fn() -> usize>,
    segment_bytes: Box<dyn Fn() -> u64>,
    active: RefCell<Option<Active>>,
    /// A zeroed or recycled file ready to become the next segment: `spare.s`.
    spare_ready: Rc<Cell<bool>>,
    /// A background task is writing (or recycling a segment into) the next spare.
    spare_in_progress: Rc<Cell<bool>>,
    marks: marks::Marks,
    /// Files being recycled or deleted in the background.
    retiring: Rc<Cell<u32>>,
    next_epoch: Cell<u64>,
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens (creating directories) the spool of `core` under `root`. `fsync` and `batch_max`
    /// are read at every commit, so knobs can change live. Spawn [`Spool::run_committer`] on the
    /// same executor before storing.
    pub fn open(
        root: &Path,
        core: usize,
        fsync: Box<dyn Fn() -> bool>,
        batch_max: Box<dyn Fn() -> usize>,
        segment_bytes: Box<dyn Fn() -> u64>,
    ) -> io::Result<Rc<Spool>> {
        let queue_dir = root.join("queue").join(format!("c{core}"));
        let deferred_dir = root.join("deferred");
        std::fs::create_dir_all(&queue_dir)?;
        std::fs::create_dir_all(&deferred_dir)?;
        std::fs::create_dir_all(root.join("corrupt"))?;
        let (wake, wake_rx) = local_channel::new_bounded(1);
        // Epochs continue above every segment this directory ever had.
        let mut max_epoch = 0u64;
        let mut spare = false;
        for e in std::fs::read_dir(&queue_dir)? {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse::<u64>().ok()) {
                max_epoch = max_epoch.max(n);
            }
            spare |= name == "spare.s";
        }
        Ok(Rc::new(Spool {
            root: root.to_path_buf(),
            queue_dir,
            deferred_dir,
            ids: QueueIds::new(core),
            pending: RefCell::new(Vec::new()),
            wake,
            wake_rx: RefCell::new(Some(wake_rx)),
            fsync,
            batch_max,
            segment_bytes,
            active: RefCell::new(None),
            spare_ready: Rc::new(Cell::new(spare)),
            spare_in_progress: Rc::new(Cell::new(false)),
            marks: marks::Marks::start(core),
            retiring: Rc::default(),
            next_epoch: Cell::new(max_epoch + 1),
        }))
    }

    fn spare_path(&self) -> PathBuf {
        self.queue_dir.join("spare.s")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A new queue id.
    pub fn next_id(&self) -> String {
        self.ids.next()
    }

    /// Stores a message durably; resolves once it is fsync'd together with whatever else this
    /// core committed at the same time. The message data is handed back, uncopied.
    pub async fn store(&self, meta: Meta, data: MessageData) -> io::Result<(Location, MessageData)> {
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().push(Job { meta, data, reply: tx });
        // A full wake channel means the committer already has a wake-up pending.
        let _ = self.wake.try_send(());
        match rx.recv().await {
            Some(r) => r,
            None => Err(io::Error::other("spool committer stopped")),
        }
    }

    /// The group-commit loop; runs for the life of the executor.
    pub async fn run_committer(self: Rc<Self>) {
        let Some(rx) = self.wake_rx.borrow_mut().take() else {
            return;
        };
        while rx.recv().await.is_some() {
            loop {
                let batch: Vec<Job> = {
                    let mut p = self.pending.borrow_mut();
                    let n = p.len().min((self.batch_max)().max(1));
                    p.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                self.commit(batch).await;
                self.clone().spare_in_background();
            }
        }
    }

    /// Makes the first segment and the spare after it, before the gateway accepts mail, so the
    /// first commits do not wait for files to be written.
    pub async fn prepare(self: &Rc<Self>) -> io::Result<()> {
        if self.active.borrow().is_none() {
            self.next_segment((self.segment_bytes)().max(1 << 20)).await?;
        }
        self.ensure_spare().await;
        Ok(())
    }

    /// Starts writing the next spare on the blocking pool unless one is ready or under way.
    fn spare_in_background(self: Rc<Self>) {
        if self.spare_ready.get() || self.spare_in_progress.get() {
            return;
        }
        self.spare_in_progress.set(true);
        glommio::spawn_local(async move {
            // The segment just sealed is usually recycled within milliseconds, as its messages
            // are delivered; writing a new file of zeros meanwhile would only compete with the
            // commits for the disk. Give recycling a head start.
            glommio::timer::sleep(std::time::Duration::from_millis(250)).await;
            self.ensure_spare().await;
            self.spare_in_progress.set(false);
        })
        .detach();
    }

    async fn commit(&self, batch: Vec<Job>) {
        let started = std::time::Instant::now();
        let n = batch.len() as u64;
        let total: u64 = batch.iter().map(|j| j.data.len() as u64 + 256 + j.meta.rcpts.iter().map(|r| r.len() as u64 + 6).sum::<u64>()).sum();
        let seg_bytes = (self.segment_bytes)().max(1 << 20);
        let result = if total > seg_bytes / 2 {
            self.commit_to_own_file(batch).await
        } else {
            self.commit_to_segment(batch, total, seg_bytes).await
        };
        match result {
            Ok(()) => {
                let m = &mxguard_telemetry::METRICS;
                m.spool_commits.inc();
                m.spool_committed_messages.add(n);
                m.spool_commit.record(started.elapsed());
            }
            Err((replies, e)) => {
                for reply in replies {
                    let _ = reply.try_send(Err(io::Error::new(e.kind(), e.to_string())));
                }
            }
        }
    }

    /// Hands each job its location once the batch is durable.
    fn answer(sf: &Rc<SpoolFile>, base: u64, writes: Vec<WriteJob>, replies: Vec<Reply>, solo: bool) {
        let mut offset = base;
        for (w, reply) in writes.into_iter().zip(replies) {
            let len = w.data.len() as u64;
            let loc = Location {
                file: sf.clone(),
                offset,
                message_offset: offset + w.head.len() as u64,
                message_len: len,
                solo,
            };
            offset += w.head.len() as u64 + len;
            let _ = reply.try_send(Ok((loc, w.data)));
        }
    }

    fn encode(batch: Vec<Job>, epoch: u64) -> (Vec<WriteJob>, Vec<Reply>) {
        let mut replies = Vec::with_capacity(batch.len());
        let mut writes = Vec::with_capacity(batch.len());
        for job in batch {
            let head = record::encode_head(&job.meta, epoch, job.data.len() as u64, &[&job.data.head, &job.data.body]);
            replies.push(job.reply);
            writes.push(WriteJob { head, data: job.data });
        }
        (writes, replies)
    }

    async fn commit_to_own_file(&self, batch: Vec<Job>) -> Result<(), (Vec<Reply>, io::Error)> {
        let (writes, replies) = Self::encode(batch, 0);
        let name = format!("{}.b", self.ids.next());
        match self.write_own_file(&self.queue_dir, name, writes).await {
            (Ok(sf), writes) => {
                let solo = writes.len() == 1;
                Self::answer(&sf, 0, writes, replies, solo);
                Ok(())
            }
            (Err(e), _) => Err((replies, e)),
        }
    }

    /// Writes `writes` to a new file `dir/name` of their own on the blocking pool, fsync'd with
    /// its directory. A failed write leaves no file behind, so recovery can never find a copy
    /// beside a message that is still live elsewhere. The jobs are handed back either way.
    async fn write_own_file(&self, dir: &Path, name: String, writes: Vec<WriteJob>) -> (io::Result<Rc<SpoolFile>>, Vec<WriteJob>) {
        let path = dir.join(name);
        let (dir, p2, fsync) = (dir.to_path_buf(), path.clone(), (self.fsync)());
        let (r, writes) = blocking::run(move || {
            let r = write_file(&p2, &dir, &writes, fsync);
            if r.is_err() {
                let _ = std::fs::remove_file(&p2);
            }
            (r, writes)
        })
        .await;
        let live = writes.len() as u32;
        (r.map(|file| spool_file(path, file, live, false)), writes)
    }

    async fn commit_to_segment(&self, batch: Vec<Job>, total: u64, seg_bytes: u64) -> Result<(), (Vec<Reply>, io::Error)> {
        let fits = self.active.borrow().as_ref().is_some_and(|a| a.write_off + total <= a.size);
        if !fits {
            if let Err(e) = self.next_segment(seg_bytes).await {
                let replies = batch.into_iter().map(|j| j.reply).collect();
                return Err((replies, e));
            }
        }
        let (file, epoch, base) = {
            let a = self.active.borrow();
            let a = a.as_ref().expect("a segment is active");
            (a.file.clone(), a.epoch, a.write_off)
        };
        let (writes, replies) = Self::encode(batch, epoch);
        let len: u64 = writes.iter().map(|w| (w.head.len() + w.data.len()) as u64).sum();
        // Reserve the range now: the committer runs one batch at a time, but keep it exact.
        if let Some(a) = self.active.borrow_mut().as_mut() {
            a.write_off += len;
        }
        let fd = file.backing.clone();
        let fsync = (self.fsync)();
        let (r, writes) = blocking::run(move || {
            let r = write_at(&fd.file, base, &writes).and_then(|_| if fsync { timed_sync(|| fd.file.sync_data()) } else { Ok(()) });
            (r, writes)
        })
        .await;
        match r {
            Ok(()) => {
                file.live.set(file.live.get() + writes.len() as u32);
                Self::answer(&file, base, writes, replies, false);
                Ok(())
            }
            Err(e) => {
                // The range may hold a partial record: seal the segment so nothing follows it.
                self.seal_active();
                Err((replies, e))
            }
        }
    }

    fn seal_active(&self) {
        // The borrow ends before `retire`, which must be free to look at the spool again.
        let active = self.active.borrow_mut().take();
        if let Some(a) = active {
            a.file.sealed.set(true);
            if a.file.live.get() == 0 {
                self.retire(&a.file);
            }
        }
    }

    /// Seals the active segment and makes the spare (or a new zeroed file) the active one.
    async fn next_segment(&self, seg_bytes: u64) -> io::Result<()> {
        self.seal_active();
        let epoch = self.next_epoch.get();
        self.next_epoch.set(epoch + 1);
        let spare = self.spare_path();
        let path = self.queue_dir.join(format!("{epoch:016}.seg"));
        let dir = self.queue_dir.clone();
        let have_spare = self.spare_ready.replace(false);
        let (p2, fsync) = (path.clone(), (self.fsync)());
        let (file, size) = blocking::run(move || -> io::Result<(File, u64)> {
            if have_spare {
                std::fs::rename(&spare, &p2)?;
            } else {
                // No spare yet (or one is still being written): make this one directly.
                zero_file(&p2, seg_bytes, &dir, fsync)?;
            }
            if fsync {
                fsync_dir(&dir)?;
            }
            let f = std::fs::OpenOptions::new().read(true).write(true).open(&p2)?;
            let size = f.metadata()?.len();
            Ok((f, size))
        })
        .await?;
        let sf = spool_file(path, file, 0, true);
        sf.sealed.set(false);
        *self.active.borrow_mut() = Some(Active { file: sf, epoch, write_off: 0, size });
        Ok(())
    }

    /// Prepares the spare segment off the commit path (the committer calls it when idle).
    async fn ensure_spare(&self) {
        if self.spare_ready.get() {
            return;
        }
        let (spare, dir, size, fsync) = (self.spare_path(), self.queue_dir.clone(), (self.segment_bytes)().max(1 << 20), (self.fsync)());
        let r = blocking::run(move || zero_file(&spare, size, &dir, fsync)).await;
        if r.is_ok() {
            self.spare_ready.set(true);
        }
    }

    /// A sealed file whose messages are all done: recycle a segment as the spare, else delete —
    /// off the executor, once the file's pending marks are written (a mark landing in a recycled
    /// segment would corrupt the record written there next).
    fn retire(&self, f: &Rc<SpoolFile>) {
        let recycle = f.segment
            && !self.spare_ready.get()
            && !self.spare_in_progress.get()
            && f.backing.path.parent() == Some(self.queue_dir.as_path());
        if recycle {
            self.spare_in_progress.set(true);
        }
        let (f, spare, ready, in_progress) = (f.clone(), self.spare_path(), self.spare_ready.clone(), self.spare_in_progress.clone());
        let retiring = self.retiring.clone();
        retiring.set(retiring.get() + 1);
        glommio::spawn_local(async move {
            while f.backing.pending.load(Ordering::Acquire) > 0 {
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            }
            let path = f.path();
            let recycled = blocking::run(move || {
                if recycle && std::fs::rename(&path, &spare).is_ok() {
                    return Ok(true);
                }
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(format!("cannot remove {}: {e}", path.display())),
                    _ => Ok(false),
                }
            })
            .await;
            if recycle {
                ready.set(matches!(recycled, Ok(true)));
                in_progress.set(false);
            }
            if let Err(e) = recycled {
                mxguard_telemetry::Event::new("spool_error").str("error", &e).emit();
            }
            retiring.set(retiring.get() - 1);
        })
        .detach();
    }

    /// Resolves once every file retired so far is recycled or deleted.
    pub async fn settled(&self) {
        while self.retiring.get() > 0 {
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Writes every pending mark and stops the mark writer (at the end of the executor; later
    /// marks are written inline).
    pub fn stop_marks(&self) {
        self.marks.stop();
    }

    /// Records a recipient's final status in place.
    pub fn set_status(&self, loc: &Location, rcpt: usize, status: RcptStatus) -> io::Result<()> {
        self.mark(&loc.file, loc.offset + record::OFF_RCPT_STATUS + rcpt as u64, &[status.byte()])
    }

    fn mark(&self, f: &SpoolFile, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.marks.write(&f.backing, offset, bytes)
    }

    /// Records the retry schedule in place.
    pub fn set_retry(&self, loc: &Location, attempts: u32, next_unix: u64) -> io::Result<()> {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&attempts.to_le_bytes());
        b[4..].copy_from_slice(&next_unix.to_le_bytes());
        self.mark(&loc.file, loc.offset + record::OFF_ATTEMPTS, &b)
    }

    /// The message is done (every recipient final): mark it, and delete its file when it was the
    /// file's last live message.
    pub fn finish(&self, loc: &Location) -> io::Result<()> {
        let left = loc.file.live.get().saturating_sub(1);
        loc.file.live.set(left);
        if left == 0 && loc.file.sealed.get() {
            self.retire(&loc.file);
            Ok(())
        } else {
            self.mark(&loc.file, loc.offset + record::OFF_STATE, b"D")
        }
    }

    /// Reads a message back from disk (for a retry, or after a restart).
    pub fn read(&self, loc: &Location) -> io::Result<MessageData> {
        let mut body = vec![0u8; loc.message_len as usize];
        loc.file.backing.file.read_exact_at(&mut body, loc.message_offset)?;
        Ok(MessageData { head: Vec::new(), body })
    }

    /// Moves a message that shares a batch file into a file of its own under `deferred/`
    /// (durably), then marks it done in the batch file. Solo messages stay where they are.
    pub async fn move_to_deferred(&self, loc: Location, meta: &Meta, data: MessageData) -> io::Result<(Location, MessageData)> {
        if loc.solo {
            return Ok((loc, data));
        }
        let head = record::encode_head(meta, 0, data.len() as u64, &[&data.head, &data.body]);
        let (r, mut writes) = self.write_own_file(&self.deferred_dir, format!("{}.m", meta.id), vec![WriteJob { head, data }]).await;
        let file = r?;
        let w = writes.pop().unwrap_or_else(|| WriteJob { head: Vec::new(), data: MessageData::default() });
        let new = Location {
            file,
            offset: 0,
            message_offset: w.head.len() as u64,
            message_len: w.data.len() as u64,
            solo: true,
        };
        self.finish(&loc)?;
        Ok((new, w.data))
    }

    /// Every undelivered message on disk that belongs to this core (files are shared out among
    /// `cores` executors by a hash of their name, so any core count can take over any spool).
    pub fn recover(&self, core: usize, cores: usize) -> io::Result<Vec<Recovered>> {
        let active = self.active.borrow().as_ref().map(|a| a.file.path());
        recover::scan(&self.root, core, cores, active.as_deref())
    }
}

fn slices(jobs: &[WriteJob]) -> Vec<IoSlice<'_>> {
    let mut v = Vec::with_capacity(jobs.len() * 3);
    for j in jobs {
        for part in [&j.head[..], &j.data.head[..], &j.data.body[..]] {
            if !part.is_empty() {
                v.push(IoSlice::new(part));
            }
        }
    }
    v
}

/// Writes every job at `offset` with vectored positional writes.
fn write_at(file: &File, mut offset: u64, jobs: &[WriteJob]) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let mut all = slices(jobs);
    let mut rest: &mut [IoSlice<'_>] = &mut all;
    while !rest.is_empty() {
        let n = rest.len().min(1024);
        // SAFETY: IoSlice is ABI-compatible with iovec; the slices outlive the call.
        let w = unsafe { libc::pwritev(file.as_raw_fd(), rest.as_ptr() as *const libc::iovec, n as libc::c_int, offset as libc::off_t) };
        if w < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if w == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "spool write returned 0"));
        }
        offset += w as u64;
        IoSlice::advance_slices(&mut rest, w as usize);
    }
    Ok(())
}

/// Creates `path` as `size` bytes of written zeros, fsync'd with its directory, so that later
/// writes into it change no metadata and `fdatasync` flushes data alone.
fn zero_file(path: &Path, size: u64, dir: &Path, fsync: bool) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    let chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    if fsync {
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if fsync {
        fsync_dir(dir)?;
    }
    Ok(())
}

fn write_file(path: &Path, dir: &Path, jobs: &[WriteJob], fsync: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    write_at(&file, 0, jobs)?;
    if fsync {
        timed_sync(|| {
            file.sync_data()?;
            fsync_dir(dir)
        })?;
    }
    Ok(file)
}

/// Runs a commit's flush, recording its time apart from the whole commit: the difference
/// between `spool_sync` and `spool_commit` is scheduling, the rest is the device.
fn timed_sync(sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    let t = std::time::Instant::now();
    let r = sync();
    mxguard_telemetry::METRICS.spool_sync.record(t.elapsed());
    r
}

/// Builds a [`Location`] for a record found by recovery.
pub(crate) fn location_for(file: Rc<SpoolFile>, d: &record::Decoded, solo: bool) -> Location {
    Location { file, offset: d.offset, message_offset: d.message_offset, message_len: d.message_len, solo }
}

/// A file of records, sealed (the active segment unseals its own).
pub(crate) fn spool_file(path: PathBuf, file: File, live: u32, segment: bool) -> Rc<SpoolFile> {
    let backing = Arc::new(marks::Backing { path, file, pending: AtomicU32::new(0) });
    Rc::new(SpoolFile { backing, live: Cell::new(live), sealed: Cell::new(true), segment })
}
