//! The process's greylist table (see [`mxguard_policy::greylist`]): loaded from its snapshot at
//! start, saved every `greylist.save_s` by a thread of its own (with expired entries dropped
//! first) and once more at stop. Cores only call [`check`], which never touches the disk.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mxguard_policy::greylist::{Decision, Greylist, Settings};
use mxguard_telemetry::Event;
use mxguard_tuning as k;

static TABLE: OnceLock<(Greylist, PathBuf)> = OnceLock::new();

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn settings() -> Settings {
    Settings {
        delay_s: k::GREYLIST_DELAY_S.get_u64(),
        retry_window_s: k::GREYLIST_RETRY_WINDOW_H.get_u64() * 3600,
        pass_ttl_s: k::GREYLIST_PASS_TTL_DAYS.get_u64() * 86_400,
        auto_whitelist: k::GREYLIST_AUTO_WHITELIST.get().clamp(0, u32::MAX as i64) as u32,
        max_entries: k::GREYLIST_MAX_ENTRIES.get_usize(),
        v4_prefix: k::GREYLIST_IPV4_PREFIX.get() as u8,
        v6_prefix: k::GREYLIST_IPV6_PREFIX.get() as u8,
    }
}

/// Loads the snapshot at `path` and starts the saver thread.
pub fn start(path: PathBuf) -> Result<usize, String> {
    let (table, bad) = Greylist::load(&path).map_err(|e| format!("greylist {}: {e}", path.display()))?;
    if bad > 0 {
        Event::new("greylist_snapshot_damaged").str("file", &path.display().to_string()).num("lines_skipped", bad as u64).emit();
    }
    let n = table.len();
    if TABLE.set((table, path)).is_err() {
        return Ok(n);
    }
    std::thread::Builder::new()
        .name("greylist".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_secs(k::GREYLIST_SAVE_S.get_u64().max(1)));
            save();
        })
        .map_err(|e| format!("greylist thread: {e}"))?;
    Ok(n)
}

/// Drops expired entries and writes the snapshot (blocking: never on a core).
pub fn save() {
    let Some((table, path)) = TABLE.get() else { return };
    table.expire(now(), &settings());
    if let Err(e) = table.save(path) {
        Event::new("greylist_error").str("file", &path.display().to_string()).str("error", &e.to_string()).emit();
    }
}

/// One delivery attempt; `None` when greylisting is off or was never started.
pub fn check(ip: IpAddr, from: &str, to: &str) -> Option<Decision> {
    if !k::GREYLIST_ENABLED.get_bool() {
        return None;
    }
    let (table, _) = TABLE.get()?;
    Some(table.check(ip, from, to, now(), &settings()))
}
