//! Antivirus: ClamAV on a bounded pool of threads off the SMTP cores.
//!
//! [`start`] loads the signature directory (`av.signature_dir`), starts `av.threads` scanning
//! threads fed by a queue of at most `av.queue_max` messages, and a reload thread that looks at
//! the directory every `av.reload_check_s` and, when a file in it changed (freshclam's update,
//! a new local .ndb), loads and compiles a new engine beside the old one and swaps it in; scans
//! in flight finish on the engine they started with. A failed reload keeps the old engine.
//!
//! [`Av::scan`] is asynchronous and runtime-agnostic (a one-shot channel): a core hands over
//! the message (shared, not copied) and awaits the answer while it serves other sessions.
//!
//! Costs: one queue send and one wake per message; the scan itself is libclamav's (it parses
//! the MIME and opens archives within the `av.max_*` limits).
//!
//! It must never block a core (a full queue answers [`Outcome::Error`] at once), never answer
//! [`Outcome::Clean`] without signatures loaded ([`Outcome::Unavailable`] then), and never keep
//! a message after answering (the caller gets its bytes back without a copy).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mxguard_telemetry::Event;
use mxguard_tuning as k;

#[cfg(feature = "clamav")]
mod clam;

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    /// A signature matched: its name.
    Virus(String),
    /// The message could not be scanned (queue full, scan error, timeout).
    Error(String),
    /// No signatures are loaded (none found yet, or a build without ClamAV): nothing was scanned.
    Unavailable(String),
}

/// libclamav's limits for one message (from the `av.*` knobs).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_scan_bytes: u64,
    pub max_file_bytes: u64,
    pub max_recursion: u32,
    pub max_files: u32,
    pub max_scan_ms: u32,
}

impl Limits {
    pub fn from_knobs() -> Limits {
        Limits {
            max_scan_bytes: k::AV_MAX_SCAN_BYTES.get_u64(),
            max_file_bytes: k::AV_MAX_FILE_BYTES.get_u64(),
            max_recursion: k::AV_MAX_RECURSION.get_u64() as u32,
            max_files: k::AV_MAX_FILES.get_u64() as u32,
            max_scan_ms: k::AV_TIMEOUT_MS.get_u64() as u32,
        }
    }
}

/// The pool's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub threads: usize,
    pub queue_max: usize,
    pub reload_check: Duration,
    pub limits: Limits,
}

impl Config {
    pub fn from_knobs() -> Config {
        Config {
            dir: PathBuf::from(&*k::AV_SIGNATURE_DIR.get_str()),
            threads: k::AV_THREADS.get_usize().max(1),
            queue_max: k::AV_QUEUE_MAX.get_usize().max(1),
            reload_check: Duration::from_secs(k::AV_RELOAD_CHECK_S.get_u64().max(1)),
            limits: Limits::from_knobs(),
        }
    }
}

#[cfg(feature = "clamav")]
type Engine = clam::Loaded;

/// Stands in for the engine in a build without ClamAV: never loads.
#[cfg(not(feature = "clamav"))]
struct Engine;

#[cfg(not(feature = "clamav"))]
impl Engine {
    fn scan(&self, _m: &[u8]) -> Outcome {
        Outcome::Unavailable("built without ClamAV".into())
    }
}

fn load(dir: &Path, limits: &Limits) -> Result<(Engine, u32), String> {
    #[cfg(feature = "clamav")]
    {
        clam::load(dir, limits).map(|l| {
            let n = l.signatures;
            (l, n)
        })
    }
    #[cfg(not(feature = "clamav"))]
    {
        let _ = (dir, limits);
        Err("this build has no ClamAV (cargo feature `clamav` off)".into())
    }
}

/// The version of the linked libclamav, or why there is none.
pub fn engine_version() -> String {
    #[cfg(feature = "clamav")]
    {
        format!("libclamav {}", clam::version())
    }
    #[cfg(not(feature = "clamav"))]
    {
        "no ClamAV in this build".into()
    }
}

struct Job {
    message: Arc<Vec<u8>>,
    reply: tokio::sync::oneshot::Sender<Outcome>,
}

/// What the pool scans with now.
struct Current {
    engine: Option<Arc<Engine>>,
    signatures: u32,
    error: Option<String>,
}

/// The scanning service. Cheap to share; every method may be called from any thread.
pub struct Av {
    queue: Sender<Job>,
    current: Arc<RwLock<Current>>,
}

static GLOBAL: OnceLock<Av> = OnceLock::new();

/// Starts the pool (once per process; later calls return the first) and loads the signatures.
/// A failed first load is not fatal: scans answer [`Outcome::Error`] (and `av.on_error` decides)
/// until a reload succeeds.
pub fn start(cfg: &Config) -> &'static Av {
    GLOBAL.get_or_init(|| Av::new(cfg))
}

/// The service started by [`start`], if any.
pub fn get() -> Option<&'static Av> {
    GLOBAL.get()
}

impl Av {
    /// A pool of its own (tests may make several).
    pub fn new(cfg: &Config) -> Av {
        let current = Arc::new(RwLock::new(Current { engine: None, signatures: 0, error: None }));
        // Taken before the load: a change during it is seen by the first look.
        let mut seen = fingerprint(&cfg.dir);
        reload(&cfg.dir, &cfg.limits, &current);
        let (tx, rx) = crossbeam_channel::bounded::<Job>(cfg.queue_max);
        for i in 0..cfg.threads {
            let (rx, current) = (rx.clone(), current.clone());
            let spawned = std::thread::Builder::new().name(format!("av-{i}")).spawn(move || worker(rx, current));
            if let Err(e) = spawned {
                Event::new("av_error").str("error", &format!("av thread: {e}")).emit();
            }
        }
        let (dir, limits, every, cur) = (cfg.dir.clone(), cfg.limits.clone(), cfg.reload_check, Arc::downgrade(&current));
        let _ = std::thread::Builder::new().name("av-reload".into()).spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(current) = cur.upgrade() else { return };
                let now = fingerprint(&dir);
                if now != seen {
                    seen = now;
                    reload(&dir, &limits, &current);
                }
            }
        });
        Av { queue: tx, current }
    }

    /// Scans `message`. The pool drops its reference before it answers, so once the answer is
    /// in, the caller holds the only one (`Arc::try_unwrap` gives the bytes back).
    pub fn scan(&self, message: Arc<Vec<u8>>) -> impl std::future::Future<Output = Outcome> + 'static {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let sent = match self.queue.try_send(Job { message, reply }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err("ClamAV queue full (av.queue_max)"),
            Err(TrySendError::Disconnected(_)) => Err("no ClamAV thread running"),
        };
        async move {
            match sent {
                Ok(()) => rx.await.unwrap_or_else(|_| Outcome::Error("ClamAV thread stopped".into())),
                Err(e) => Outcome::Error(e.into()),
            }
        }
    }

    /// Signatures loaded now, and the last load error if the last load failed.
    pub fn status(&self) -> (u32, Option<String>) {
        let c = self.current.read().unwrap_or_else(|p| p.into_inner());
        (c.signatures, c.error.clone())
    }
}

fn worker(rx: Receiver<Job>, current: Arc<RwLock<Current>>) {
    while let Ok(job) = rx.recv() {
        let (engine, why) = {
            let c = current.read().unwrap_or_else(|p| p.into_inner());
            (c.engine.clone(), c.error.clone())
        };
        let outcome = match engine {
            Some(e) => e.scan(&job.message),
            None => Outcome::Unavailable(why.unwrap_or_else(|| "no ClamAV signatures loaded".into())),
        };
        // Give the message back before answering (see `Av::scan`).
        drop(job.message);
        let _ = job.reply.send(outcome);
    }
}

/// Loads `dir` into a new engine and swaps it in; on failure the old one stays.
fn reload(dir: &Path, limits: &Limits, current: &RwLock<Current>) {
    let t0 = std::time::Instant::now();
    match load(dir, limits) {
        Ok((engine, n)) => {
            let mut c = current.write().unwrap_or_else(|p| p.into_inner());
            c.engine = Some(Arc::new(engine));
            c.signatures = n;
            c.error = None;
            Event::new("av_loaded")
                .str("dir", &dir.display().to_string())
                .num("signatures", n as u64)
                .num("ms", t0.elapsed().as_millis() as u64)
                .emit();
        }
        Err(e) => {
            let mut c = current.write().unwrap_or_else(|p| p.into_inner());
            c.error = Some(e.clone());
            Event::new("av_error").str("dir", &dir.display().to_string()).str("error", &e).str("kept", if c.engine.is_some() { "previous signatures" } else { "none" }).emit();
        }
    }
}

/// Names, sizes and modification times of the directory's files, sorted: any change of a
/// database (a rename into place included) changes it.
fn fingerprint(dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    m.is_file().then(|| (e.file_name().to_string_lossy().into_owned(), m.len(), m.modified().ok()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(all(test, feature = "clamav"))]
mod tests {
    use super::*;

    const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn sigdir(ndb: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!("mxguard-av-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        if !ndb.is_empty() {
            std::fs::write(d.join("test.ndb"), ndb).unwrap();
        }
        d
    }

    fn cfg(dir: PathBuf) -> Config {
        Config {
            dir,
            threads: 2,
            queue_max: 4,
            reload_check: Duration::from_millis(50),
            limits: Limits { max_scan_bytes: 10 << 20, max_file_bytes: 10 << 20, max_recursion: 8, max_files: 100, max_scan_ms: 10_000 },
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn mail(body: &str) -> Arc<Vec<u8>> {
        Arc::new(format!("From: a@example.test\r\nTo: b@example.test\r\nSubject: t\r\n\r\n{body}\r\n").into_bytes())
    }

    #[test]
    fn table_of_messages() {
        let dir = sigdir(&format!("Test.EICAR:0:*:{}\n", hex(EICAR)));
        let av = Av::new(&cfg(dir));
        assert_eq!(av.status().0, 1);
        let b64 = "Content-Type: multipart/mixed; boundary=b\r\n";
        let cases: &[(Arc<Vec<u8>>, Outcome)] = &[
            (mail("hello"), Outcome::Clean),
            (mail(std::str::from_utf8(EICAR).unwrap()), Outcome::Virus("Test.EICAR.UNOFFICIAL".into())),
            (
                Arc::new(
                    format!(
                        "From: a@x\r\nMIME-Version: 1.0\r\n{b64}\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee\r\n--b\r\nContent-Type: application/octet-stream; name=e.com\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
                        "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo="
                    )
                    .into_bytes(),
                ),
                Outcome::Virus("Test.EICAR.UNOFFICIAL".into()),
            ),
            (Arc::new(Vec::new()), Outcome::Clean),
        ];
        for (m, want) in cases {
            let m = Arc::new(m.to_vec());
            let got = block_on(av.scan(m.clone()));
            assert_eq!(&got, want);
            assert_eq!(Arc::strong_count(&m), 1, "the pool must give the message back before answering");
        }
    }

    #[test]
    fn no_signatures_is_never_clean() {
        let av = Av::new(&cfg(sigdir("")));
        assert!(av.status().1.is_some());
        assert!(matches!(block_on(av.scan(mail("hello"))), Outcome::Unavailable(_)));
        let av = Av::new(&cfg(PathBuf::from("/nonexistent/mxguard")));
        assert!(matches!(block_on(av.scan(mail("hello"))), Outcome::Unavailable(e) if e.contains("/nonexistent/mxguard")));
    }

    #[test]
    fn a_changed_directory_is_reloaded_and_a_bad_file_keeps_the_old_engine() {
        let dir = sigdir("");
        let av = Av::new(&cfg(dir.clone()));
        let eicar = mail(std::str::from_utf8(EICAR).unwrap());
        assert!(matches!(block_on(av.scan(eicar.clone())), Outcome::Unavailable(_)));
        std::fs::write(dir.join("test.ndb"), format!("Test.EICAR:0:*:{}\n", hex(EICAR))).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while av.status().0 == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(matches!(block_on(av.scan(eicar.clone())), Outcome::Virus(_)));
        std::fs::write(dir.join("broken.ndb"), "not a signature line\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while av.status().1.is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(av.status().1.is_some(), "the broken database is reported");
        assert!(matches!(block_on(av.scan(eicar)), Outcome::Virus(_)), "and the old engine still scans");
    }

    #[test]
    fn a_full_queue_answers_at_once() {
        let dir = sigdir(&format!("Test.EICAR:0:*:{}\n", hex(EICAR)));
        let mut c = cfg(dir);
        c.threads = 1;
        c.queue_max = 1;
        let av = Av::new(&c);
        // A large message keeps the one thread busy while the queue fills.
        let big = Arc::new(vec![b'a'; 8 << 20]);
        let futs: Vec<_> = (0..8).map(|_| av.scan(big.clone())).collect();
        let outs: Vec<Outcome> = futs.into_iter().map(block_on).collect();
        assert!(outs.iter().any(|o| matches!(o, Outcome::Error(e) if e.contains("queue full"))), "{outs:?}");
        assert!(outs.iter().any(|o| *o == Outcome::Clean));
    }
}
