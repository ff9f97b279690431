//! `mxguard run`: wires the planes together and runs until SIGTERM/SIGINT.
//!
//! Start-up order: configuration checks (routes, listen addresses, TLS) so a bad setting stops
//! the gateway before it accepts anything; state directory, locked for this process
//! (`mxguard.pid`), and the listen addresses checked unused; log writer; metrics endpoint; lists;
//! country database; quarantine database; greylist snapshot; DNS; admin socket; then one pinned glommio executor per core, each with its spool, group committer,
//! queue manager (which first takes over its share of the spool left by a previous run) and
//! SO_REUSEPORT listeners. On a signal every executor stops accepting, ends idle sessions with
//! 421, lets transfers finish within `smtp.shutdown_grace_s`, and exits; the spool keeps the rest.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use mxguard_relay::{routes, Queue};
use mxguard_spool::Spool;
use mxguard_telemetry::{self as telemetry, Event};
use mxguard_tuning as k;

use crate::handler::Gateway;
use crate::{in_state_dir, state_dir};

/// Knob changes made in the web console, kept in state.dir and applied after the config files.
const CONSOLE_KNOBS: &str = "console-knobs.conf";

fn addrs(knob: &k::Knob) -> Result<Vec<SocketAddr>, String> {
    knob.get_str()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("{}: `{s}` is not ip:port", knob.name)))
        .collect()
}

fn tls_config() -> Result<Arc<rustls::ServerConfig>, String> {
    let (cert, key) = (k::SMTP_TLS_CERT_FILE.get_str(), k::SMTP_TLS_KEY_FILE.get_str());
    let (cert, key) = if cert.is_empty() {
        let dir = state_dir().join("tls");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (c, kf) = (dir.join("cert.pem"), dir.join("key.pem"));
        use mxguard_tls::SelfSigned;
        let outcome = mxguard_tls::ensure_self_signed(&c, &kf, &k::SMTP_HOSTNAME.get_str())?;
        let (action, why) = match &outcome {
            SelfSigned::Kept => ("", ""),
            SelfSigned::Made => ("made", ""),
            SelfSigned::Renewed => ("renewed", ""),
            SelfSigned::Replaced(why) => ("replaced", why.as_str()),
        };
        if outcome != SelfSigned::Kept {
            Event::new("tls_self_signed").str("action", action).str("cert", &c.display().to_string()).str("reason", why).emit();
        }
        (c, kf)
    } else {
        (in_state_dir(&cert), in_state_dir(&key))
    };
    mxguard_tls::server_config(&cert, &key, mxguard_tls::MinVersion::from_knob(k::SMTP_TLS_MIN_VERSION.get()))
}

/// (Re)loads `country.db`; the database's description, or `None` when the knob is empty.
pub fn install_country_db() -> Result<Option<String>, String> {
    let path = k::COUNTRY_DB.get_str();
    let path = (!path.is_empty()).then(|| in_state_dir(&path));
    mxguard_policy::country::install(path.as_deref()).map_err(|e| format!("country.db: {e}"))
}

/// The lock file in the state directory, held for the life of `mxguard run`.
const STATE_LOCK: &str = "mxguard.pid";

/// Takes the state directory for this process: an exclusive lock on `mxguard.pid` (Postfix's
/// `master.pid`), with this process's id written in it. Two gateways on one state directory
/// would recover and write the same spool segments, deliver each other's mail twice and recycle
/// files the other still needs; the second is refused, naming the first. The kernel drops the
/// lock when the process ends however it ends (`kill -9` included), so a crash never leaves a
/// stale lock behind. Keep the returned file open for as long as the gateway runs.
fn claim_state_dir(state: &std::path::Path) -> Result<std::fs::File, String> {
    use std::io::{Read, Seek, Write};
    let path = state.join(STATE_LOCK);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            return Err(format!(
                "another mxguard runs on the state directory {} (pid {}); stop it first",
                state.display(),
                pid.trim()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(format!("{}: cannot lock: {e}", path.display())),
    }
    f.set_len(0)
        .and_then(|()| f.rewind())
        .and_then(|()| writeln!(f, "{}", std::process::id()))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(f)
}

pub fn run() -> Result<(), String> {
    let table = routes::check().map_err(|e| e.join("\n"))?;
    let plain = addrs(&k::SMTP_LISTEN)?;
    let implicit = addrs(&k::SMTP_TLS_LISTEN)?;
    if plain.is_empty() && implicit.is_empty() {
        return Err("smtp.listen and smtp.tls_listen are both empty".into());
    }
    let state = state_dir();
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    // Before anything in the state directory is read or written: one gateway per spool.
    let _state_lock = claim_state_dir(&state)?;
    mxguard_smtpd::check_unused(&[plain.as_slice(), implicit.as_slice()].concat()).map_err(|e| e.to_string())?;
    // Knob changes made in the console, after the config files (they are the latest word).
    let console_knobs = state.join(CONSOLE_KNOBS);
    if console_knobs.exists() {
        k::config::load_file(&console_knobs).map_err(|e| e.join("\n"))?;
    }
    let log_file = k::LOG_FILE.get_str();
    telemetry::log::init((!log_file.is_empty()).then(|| in_state_dir(&log_file))).map_err(|e| format!("log: {e}"))?;
    let tls = tls_config()?;
    let client_tls = mxguard_tls::opportunistic_client_config();

    let metrics_addr = k::METRICS_LISTEN.get_str();
    if !metrics_addr.is_empty() {
        telemetry::http::serve(&metrics_addr).map_err(|e| format!("metrics.listen {metrics_addr}: {e}"))?;
    }
    let lists_dir = in_state_dir(&k::LISTS_DIR.get_str());
    mxguard_policy::tables::add_companion(mxguard_policy::tables::Companion { files: mxguard_scan::files(), reload: mxguard_scan::reload, check: mxguard_scan::check });
    let entries = mxguard_policy::tables::start(lists_dir.clone())?;
    Event::new("lists_loaded").num("entries", entries as u64).str("dir", &lists_dir.display().to_string()).emit();
    if let Some(about) = install_country_db()? {
        Event::new("country_db_loaded").str("file", &k::COUNTRY_DB.get_str()).str("about", &about).emit();
    }
    let quarantine = mxguard_quarantine::Location::parse(&k::QUARANTINE_DB.get_str(), &state);
    mxguard_quarantine::start(&quarantine)?;
    let greylist = in_state_dir(&k::GREYLIST_FILE.get_str());
    let triplets = crate::greylisting::start(greylist.clone())?;
    Event::new("greylist_loaded").num("triplets", triplets as u64).str("file", &greylist.display().to_string()).emit();
    if k::DNS_ENABLED.get_bool() {
        let dns_cfg = mxguard_dns::Config::from_knobs()?;
        mxguard_dns::start(&dns_cfg)?;
    }
    crate::antivirus::start();
    crate::learning::start()?;
    crate::weighing::start()?;
    crate::admin::serve(&in_state_dir(&k::ADMIN_SOCKET.get_str())).map_err(|e| format!("admin socket: {e}"))?;
    // The web console on its own thread; what it releases reaches core 0 through pickup.
    let (pickup_tx, pickup_rx) = tokio::sync::mpsc::channel(64);
    let console_listen = k::CONSOLE_LISTEN.get_str();
    if !console_listen.is_empty() {
        let listen = console_listen.parse().map_err(|e| format!("console.listen {console_listen}: {e}"))?;
        let cfg = mxguard_console::Config {
            listen,
            quarantine_db: quarantine.clone(),
            console_db: mxguard_quarantine::Location::parse(&k::CONSOLE_DB.get_str(), &state),
            pickup: pickup_tx,
            tls: k::CONSOLE_TLS.get_bool().then(|| tls.clone()),
            key_file: state.join("console.key"),
            log_file: (!log_file.is_empty()).then(|| in_state_dir(&log_file)),
            knob_file: Some(state.join(CONSOLE_KNOBS)),
            lists_dir: Some(lists_dir.clone()),
            release_marks: Some(state.join("release-marks")),
            setup_code: Some(state.join(mxguard_console::setup_code::FILE)),
        };
        let bound = mxguard_console::start(cfg)?;
        Event::new("console_listening").str("listen", &bound.to_string()).emit();
    }
    let mut pickup_rx = Some(pickup_rx);

    mxguard_smtpd::shutdown::install_stop_signals();

    mxguard_smtpd::limits::raise_nofile();
    let online = glommio::CpuSet::online().map(|s| s.len()).unwrap_or(1).max(1);
    let cores = match k::SMTP_CORES.get_usize() {
        0 => online,
        n => n,
    };
    Event::new("start")
        .str("version", env!("CARGO_PKG_VERSION"))
        .num("cores", cores as u64)
        .str("listen", &k::SMTP_LISTEN.get_str())
        .str("tls_listen", &k::SMTP_TLS_LISTEN.get_str())
        .str("state_dir", &state.display().to_string())
        .num("local_domains", table.len() as u64)
        .emit();

    let mut handles = Vec::new();
    for core in 0..cores {
        let placement = if cores <= online { Placement::Fixed(core) } else { Placement::Unbound };
        let (plain, implicit, tls, client_tls, state) =
            (plain.clone(), implicit.clone(), tls.clone(), client_tls.clone(), state.clone());
        let pickup = if core == 0 { pickup_rx.take() } else { None };
        let h = LocalExecutorBuilder::new(placement)
            .name(&format!("mxguard-core{core}"))
            .io_memory(k::SMTP_IO_MEMORY_BYTES.get_usize())
            // Two blocking threads: group commits, and spare segments written beside them.
            .blocking_thread_pool_placement(PoolPlacement::Unbound(2))
            .spawn(move || async move {
                if let Err(e) = core_main(core, cores, state, plain, implicit, tls, client_tls, pickup).await {
                    Event::new("fatal").num("core", core as u64).str("error", &e).emit();
                    CORE_FAILED.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(format!("core {core}: {e}"));
                    mxguard_smtpd::shutdown::request_stop();
                }
            })
            .map_err(|e| format!("starting executor {core}: {e}"))?;
        handles.push(h);
    }
    for h in handles {
        let _ = h.join();
    }
    crate::greylisting::save();
    crate::learning::stop();
    Event::new("stop").emit();
    telemetry::log::flush();
    // A core that failed (a listener it could not bind, a spool it could not recover) fails the
    // process: its exit status is what a service manager restarts on.
    match CORE_FAILED.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The first error that ended a core, if one did.
static CORE_FAILED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Cores that have finished scanning the spool at start-up.
static SCANNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Waits until all `cores` have scanned the spool (start-up only; a stop request ends the wait,
/// as when another core failed its scan).
async fn recovery_barrier(cores: usize) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    SCANNED.fetch_add(1, Ordering::AcqRel);
    while SCANNED.load(Ordering::Acquire) < cores {
        if mxguard_smtpd::shutdown::stop_requested() {
            return Err("stopped while waiting for the other cores' spool recovery".into());
        }
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
    Ok(())
}

/// One core: its spool, queue manager and SMTP listeners (core 0 also serves the console's
/// pickups). Everything it needs is passed in, as the executor's closure owns it.
#[allow(clippy::too_many_arguments)]
async fn core_main(
    core: usize,
    cores: usize,
    state: std::path::PathBuf,
    plain: Vec<SocketAddr>,
    implicit: Vec<SocketAddr>,
    tls: Arc<rustls::ServerConfig>,
    client_tls: Arc<rustls::ClientConfig>,
    pickup: Option<tokio::sync::mpsc::Receiver<mxguard_console::Pickup>>,
) -> Result<(), String> {
    telemetry::metrics::set_core(core);
    let spool = Spool::open(
        &state.join("spool"),
        core,
        Box::new(|| k::SPOOL_FSYNC.get_bool()),
        Box::new(|| k::SPOOL_COMMIT_BATCH_MAX.get_usize()),
        Box::new(|| k::SPOOL_SEGMENT_BYTES.get_u64()),
    )
    .map_err(|e| format!("spool: {e}"))?;
    glommio::spawn_local(spool.clone().run_committer()).detach();
    let queue = Queue::new(spool.clone(), Some(client_tls), cores);
    queue.start();
    // Recovery first: it reads what the last run left, before this run writes anything — on
    // any core. Files are shared out among the cores by name, so a core scans the others'
    // directories too: were another core already writing, the scan would find its new segment
    // or batch file empty and delete it under it (acknowledged mail then lived in an unlinked
    // file, and the next crash lost it), or read a deferred copy half-written. So every core
    // scans, then waits for all the others, before any adopts, prepares or accepts.
    let found = spool.recover(core, cores).map_err(|e| format!("spool recovery: {e}"))?;
    recovery_barrier(cores).await?;
    let recovered = queue.adopt(found);
    spool.prepare().await.map_err(|e| format!("spool: preparing segments: {e}"))?;
    if recovered > 0 {
        Event::new("recovery").num("core", core as u64).num("messages", recovered as u64).emit();
    }
    let listeners = mxguard_smtpd::bind(&plain, &implicit).map_err(|e| e.to_string())?;
    crate::ready::core_bound(cores);
    let shutdown = Rc::new(mxguard_smtpd::Shutdown::new());
    shutdown.follow_process_stop();
    if let Some(rx) = pickup {
        glommio::spawn_local(crate::pickup::serve(rx, spool.clone(), queue.clone())).detach();
    }
    let screen = Rc::new(crate::screen::Screen::new(crate::screen::shared()));
    let handler = Rc::new(Gateway { spool: spool.clone(), queue, screen });
    mxguard_smtpd::serve(handler, listeners, Some(tls), core, shutdown).await;
    crate::ready::stopping();
    // Progress marks still queued are written before the process exits, so a clean restart
    // does not deliver twice what was delivered.
    spool.stop_marks();
    // The last files the queue and the spool hand to the blocking threads (a deferred copy, a
    // segment recycled) are waited for: an executor that ends first leaves those threads
    // nowhere to answer (mxguard_spool::blocking).
    if !mxguard_spool::blocking::drain(std::time::Duration::from_secs(5)).await {
        Event::new("shutdown_jobs_left").num("core", core as u64).num("jobs", u64::from(mxguard_spool::blocking::out())).emit();
    }
    Ok(())
}
