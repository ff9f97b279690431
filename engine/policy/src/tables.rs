//! The set of list files the checks read, loaded together and swapped atomically.
//!
//! Files live in `lists.dir` (relative to `state.dir`) under fixed names, one per list (see
//! [`FILES`]). A watcher re-reads them when a file's modification time or size changes (every
//! `lists.check_s`), and `mxguard reload` does it at once; either way every file is compiled
//! first and the new set replaces the old only if all of them load. A bad file is reported as
//! `file:line: reason` and the old set stays in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use crate::list::List;

/// The list files, by the name the checks use.
pub const FILES: &[(&str, &str)] = &[
    ("ip_blacklist", "ip-blacklist.txt"),
    ("domain_blacklist", "domain-blacklist.txt"),
    ("from_blacklist", "from-blacklist.txt"),
    ("to_blacklist", "to-blacklist.txt"),
    ("rdns_blacklist", "rdns-blacklist.txt"),
    ("excluded", "excluded.txt"),
    ("excluded_from", "excluded-from.txt"),
    ("unfiltered", "unfiltered.txt"),
    ("authorized_to", "authorized-to.txt"),
];

/// Every list, compiled.
#[derive(Debug)]
pub struct Lists {
    /// Client IPs refused (single, CIDR, class C `.0`, wildcards).
    pub ip_blacklist: List,
    /// MAIL FROM domains refused.
    pub domain_blacklist: List,
    /// MAIL FROM addresses refused.
    pub from_blacklist: List,
    /// RCPT TO addresses refused (`:Honeypot` entries ban the sender's IP).
    pub to_blacklist: List,
    /// Client host names (rDNS) refused.
    pub rdns_blacklist: List,
    /// IPs and MAIL FROM domains that bypass the blacklist rules.
    pub excluded: List,
    /// MAIL FROM addresses excluded from all filtering.
    pub excluded_from: List,
    /// Recipients whose mail is never filtered (`:TAG`, `:TAGSUBJECT` mark spam instead).
    pub unfiltered: List,
    /// When not empty, the only recipients accepted (550 unknown user for the rest).
    pub authorized_to: List,
}

impl Lists {
    pub fn empty() -> Lists {
        let e = |n: &str| List::empty(n);
        Lists {
            ip_blacklist: e("ip-blacklist.txt"),
            domain_blacklist: e("domain-blacklist.txt"),
            from_blacklist: e("from-blacklist.txt"),
            to_blacklist: e("to-blacklist.txt"),
            rdns_blacklist: e("rdns-blacklist.txt"),
            excluded: e("excluded.txt"),
            excluded_from: e("excluded-from.txt"),
            unfiltered: e("unfiltered.txt"),
            authorized_to: e("authorized-to.txt"),
        }
    }

    /// Loads every file of `dir`; all errors are returned, one per bad file.
    pub fn load(dir: &Path) -> Result<Lists, Vec<String>> {
        let mut errors = Vec::new();
        let mut get = |file: &str| match List::load(&dir.join(file)) {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                List::empty(file)
            }
        };
        let lists = Lists {
            ip_blacklist: get("ip-blacklist.txt"),
            domain_blacklist: get("domain-blacklist.txt"),
            from_blacklist: get("from-blacklist.txt"),
            to_blacklist: get("to-blacklist.txt"),
            rdns_blacklist: get("rdns-blacklist.txt"),
            excluded: get("excluded.txt"),
            excluded_from: get("excluded-from.txt"),
            unfiltered: get("unfiltered.txt"),
            authorized_to: get("authorized-to.txt"),
        };
        if errors.is_empty() {
            Ok(lists)
        } else {
            Err(errors)
        }
    }

    pub fn entries(&self) -> usize {
        [
            &self.ip_blacklist,
            &self.domain_blacklist,
            &self.from_blacklist,
            &self.to_blacklist,
            &self.rdns_blacklist,
            &self.excluded,
            &self.excluded_from,
            &self.unfiltered,
            &self.authorized_to,
        ]
        .iter()
        .map(|l| l.len())
        .sum()
    }
}

static CURRENT: OnceLock<RwLock<Arc<Lists>>> = OnceLock::new();
static DIR: OnceLock<PathBuf> = OnceLock::new();
static STAMP: Mutex<Vec<Option<(SystemTime, u64)>>> = Mutex::new(Vec::new());

fn cell() -> &'static RwLock<Arc<Lists>> {
    CURRENT.get_or_init(|| RwLock::new(Arc::new(Lists::empty())))
}

/// The lists in force (one read lock and one reference count; take it once per session stage).
pub fn current() -> Arc<Lists> {
    cell().read().unwrap_or_else(|e| e.into_inner()).clone()
}

fn stamps(dir: &Path) -> Vec<Option<(SystemTime, u64)>> {
    FILES
        .iter()
        .map(|(_, f)| std::fs::metadata(dir.join(f)).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
        .collect()
}

/// Loads the lists of `dir` and puts them in force; on any error nothing changes.
pub fn reload(dir: &Path) -> Result<usize, Vec<String>> {
    let before = stamps(dir);
    let lists = Lists::load(dir)?;
    let n = lists.entries();
    *cell().write().unwrap_or_else(|e| e.into_inner()) = Arc::new(lists);
    *STAMP.lock().unwrap_or_else(|e| e.into_inner()) = before;
    Ok(n)
}

/// Loads `dir` now (an error stops start-up) and starts the watcher thread.
pub fn start(dir: PathBuf) -> Result<usize, String> {
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let n = reload(&dir).map_err(|e| e.join("; "))?;
    let _ = DIR.set(dir.clone());
    std::thread::Builder::new()
        .name("lists".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(mxguard_tuning::LISTS_CHECK_S.get_u64().max(1)));
            let changed = *STAMP.lock().unwrap_or_else(|e| e.into_inner()) != stamps(&dir);
            if changed {
                report(reload(&dir));
            }
        })
        .map_err(|e| format!("lists thread: {e}"))?;
    Ok(n)
}

/// `mxguard reload`: re-reads the directory given to [`start`].
pub fn reload_now() -> Result<usize, Vec<String>> {
    let dir = DIR.get().ok_or_else(|| vec!["lists are not loaded".to_string()])?;
    let r = reload(dir);
    report(r.clone());
    r
}

fn report(r: Result<usize, Vec<String>>) {
    use mxguard_telemetry::Event;
    match r {
        Ok(n) => Event::new("lists_loaded").num("entries", n as u64).emit(),
        Err(errors) => {
            for e in errors {
                Event::new("lists_error").str("error", &e).str("kept", "previous lists").emit();
            }
        }
    }
}
