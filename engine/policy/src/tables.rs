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

use crate::domains::DomainPolicies;
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
    /// Per-domain checks, thresholds and texts ([`DOMAIN_POLICY_FILE`]).
    pub domains: DomainPolicies,
}

/// The per-domain policy file beside the lists (see [`crate::domains`]).
pub const DOMAIN_POLICY_FILE: &str = "domain-policy.txt";

impl Lists {
    /// Builds the set with `get(file name)` for each list, in [`FILES`] order.
    fn build(mut get: impl FnMut(&str) -> List) -> Lists {
        Lists {
            ip_blacklist: get(FILES[0].1),
            domain_blacklist: get(FILES[1].1),
            from_blacklist: get(FILES[2].1),
            to_blacklist: get(FILES[3].1),
            rdns_blacklist: get(FILES[4].1),
            excluded: get(FILES[5].1),
            excluded_from: get(FILES[6].1),
            unfiltered: get(FILES[7].1),
            authorized_to: get(FILES[8].1),
            domains: DomainPolicies::default(),
        }
    }

    pub fn empty() -> Lists {
        Lists::build(List::empty)
    }

    /// Loads every file of `dir`; all errors are returned, one per bad file.
    pub fn load(dir: &Path) -> Result<Lists, Vec<String>> {
        let mut errors = Vec::new();
        let mut lists = Lists::build(|file| {
            List::load(&dir.join(file)).unwrap_or_else(|e| {
                errors.push(e);
                List::empty(file)
            })
        });
        // The IP list is matched against client addresses only: a name there is a typo.
        if let Err(e) = lists.ip_blacklist.addresses_only() {
            errors.push(e);
        }
        match DomainPolicies::load(&dir.join(DOMAIN_POLICY_FILE)) {
            Ok(d) => lists.domains = d,
            Err(e) => errors.push(e),
        }
        if errors.is_empty() {
            Ok(lists)
        } else {
            Err(errors)
        }
    }

    fn all(&self) -> [&List; 9] {
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
    }

    pub fn entries(&self) -> usize {
        self.all().iter().map(|l| l.len()).sum::<usize>() + self.domains.len()
    }
}

static CURRENT: OnceLock<RwLock<Arc<Lists>>> = OnceLock::new();

/// Another file set of the same directory, loaded and watched with the lists (the content
/// scanner's rules): its files, and a loader that puts them in force or leaves the old set.
pub struct Companion {
    pub files: Vec<&'static str>,
    pub reload: Loader,
    /// Loads the set of a directory as `reload` does, without putting it in force.
    pub check: Loader,
}

/// Loads a file set from a directory: how many entries, or every error as `file:line: reason`.
pub type Loader = fn(&Path) -> Result<usize, Vec<String>>;

static COMPANIONS: Mutex<Vec<Companion>> = Mutex::new(Vec::new());

/// Registers a companion file set (before [`start`]).
pub fn add_companion(c: Companion) {
    COMPANIONS.lock().unwrap_or_else(|e| e.into_inner()).push(c);
}
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
    files()
        .into_iter()
        .map(|f| std::fs::metadata(dir.join(f)).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
        .collect()
}

/// Loads the lists of `dir` and its companions, and puts each set that loads in force; a set
/// with an error keeps its old version (and the errors of all sets are returned).
pub fn reload(dir: &Path) -> Result<usize, Vec<String>> {
    let before = stamps(dir);
    let r = load_all(dir, true);
    *STAMP.lock().unwrap_or_else(|e| e.into_inner()) = before;
    r
}

/// Loads the lists of `dir` and each companion's set, and with `in_force` puts each set that
/// loads in force (the companions' `reload`; else their `check`). All entries, or all errors.
fn load_all(dir: &Path, in_force: bool) -> Result<usize, Vec<String>> {
    let mut errors = Vec::new();
    let mut n = 0;
    match Lists::load(dir) {
        Ok(lists) => {
            n += lists.entries();
            if in_force {
                *cell().write().unwrap_or_else(|e| e.into_inner()) = Arc::new(lists);
            }
        }
        Err(e) => errors.extend(e),
    }
    let loaders: Vec<Loader> =
        COMPANIONS.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|c| if in_force { c.reload } else { c.check }).collect();
    for load in loaders {
        match load(dir) {
            Ok(m) => n += m,
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(n)
    } else {
        Err(errors)
    }
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
            let seen = stamps(&dir);
            if *STAMP.lock().unwrap_or_else(|e| e.into_inner()) == seen || still_being_written(&dir, &seen) {
                continue;
            }
            report(reload(&dir));
        })
        .map_err(|e| format!("lists thread: {e}"))?;
    Ok(n)
}

/// Every file of the directory: the lists, the domain policy, the companions' files.
pub fn files() -> Vec<&'static str> {
    let extra: Vec<&'static str> = COMPANIONS.lock().unwrap_or_else(|e| e.into_inner()).iter().flat_map(|c| c.files.clone()).collect();
    FILES.iter().map(|(_, f)| *f).chain([DOMAIN_POLICY_FILE]).chain(extra).collect()
}

/// Whether the lists directory `dir` would load with `file` replaced by `text`: the
/// lists and every companion are loaded, as the watcher would, from a staged copy of the
/// directory (a sub-directory of it, removed afterwards), and nothing is put in force. Errors
/// name the real directory. Cost: a copy of the directory's files and a full load.
pub fn check_replacement(dir: &Path, file: &str, text: &str) -> Result<usize, Vec<String>> {
    if !files().contains(&file) {
        return Err(vec![format!("{file}: not a file of the lists directory")]);
    }
    static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stage = dir.join(format!(".check-{}-{n}", std::process::id()));
    let result = (|| {
        std::fs::create_dir_all(&stage).map_err(|e| vec![format!("{}: {e}", stage.display())])?;
        for f in files() {
            let copied = if f == file { std::fs::write(stage.join(f), text) } else { std::fs::copy(dir.join(f), stage.join(f)).map(|_| ()) };
            match copied {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(vec![format!("{f}: {e}")]),
                _ => {}
            }
        }
        load_all(&stage, false)
    })();
    let _ = std::fs::remove_dir_all(&stage);
    let (staged, real) = (stage.display().to_string(), dir.display().to_string());
    result.map_err(|errors| errors.into_iter().map(|e| e.replace(&staged, &real)).collect())
}

/// How long a changed file must have been left alone before the watcher reads it.
const SETTLE: Duration = Duration::from_millis(500);

/// Whether a file of `dir` was modified within [`SETTLE`] (an editor or a copy may still be
/// writing it in place): then waits out the rest of it and says whether anything moved since
/// `seen`. A half-written file is never loaded: at worst its change is taken at the next look.
fn still_being_written(dir: &Path, seen: &[Option<(SystemTime, u64)>]) -> bool {
    let newest = seen.iter().flatten().map(|(m, _)| *m).max();
    let age = newest.and_then(|m| SystemTime::now().duration_since(m).ok()).unwrap_or(SETTLE);
    if age >= SETTLE {
        return false;
    }
    std::thread::sleep(SETTLE - age);
    stamps(dir) != seen
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_reads_its_own_file() {
        let dir = std::env::temp_dir().join(format!("mxg-tables-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, (_, f)) in FILES.iter().enumerate() {
            // (The IP list takes no plain names: a pattern there.)
            let entry = if i == 0 { format!("(^entry{i}\\.example$)\n") } else { format!("entry{i}.example\n") };
            std::fs::write(dir.join(f), entry).unwrap();
        }
        let l = Lists::load(&dir).unwrap();
        for (i, list) in l.all().iter().enumerate() {
            assert!(list.source.ends_with(FILES[i].1), "{} != {}", list.source, FILES[i].1);
            assert!(list.match_name(&format!("entry{i}.example")).is_some(), "{}", FILES[i].0);
        }
        std::fs::write(dir.join(DOMAIN_POLICY_FILE), "example.test dnsbl = off\n").unwrap();
        assert!(!Lists::load(&dir).unwrap().domains.for_domain("example.test").enabled("dnsbl"));
        std::fs::write(dir.join(FILES[3].1), "10.0.0.0/99\n").unwrap();
        std::fs::write(dir.join(DOMAIN_POLICY_FILE), "example.test dnsbl = maybe\n").unwrap();
        let e = Lists::load(&dir).unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(e[0].contains("to-blacklist.txt:1:"), "{e:?}");
        assert!(e[1].contains("domain-policy.txt:1:"), "{e:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_still_being_written_is_left_for_the_next_look() {
        let dir = std::env::temp_dir().join(format!("mxg-tables-settle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILES[1].1);
        std::fs::write(&path, "a.example\n").unwrap();
        let seen = stamps(&dir);
        // Written again while the watcher waits: not read this time.
        let writer = std::thread::spawn({
            let path = path.clone();
            move || {
                std::thread::sleep(Duration::from_millis(100));
                std::fs::write(&path, "a.example\nb.example\n").unwrap();
            }
        });
        assert!(still_being_written(&dir, &seen));
        writer.join().unwrap();
        // Left alone for the settling time: read.
        std::thread::sleep(SETTLE);
        assert!(!still_being_written(&dir, &stamps(&dir)));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_replacement_is_checked_with_the_whole_directory_and_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("mxg-tables-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILES[0].1), "10.0.0.1\n").unwrap();
        assert_eq!(check_replacement(&dir, FILES[0].1, "10.0.0.1\n10.0.0.0/24\n"), Ok(2));
        let e = check_replacement(&dir, FILES[0].1, "10.0.0.1\n10.0.0.0/99\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].contains(&format!("{}/ip-blacklist.txt:2:", dir.display())), "errors name the real directory: {e:?}");
        // The other files are read as they are: a bad one fails any replacement.
        std::fs::write(dir.join(DOMAIN_POLICY_FILE), "example.test dnsbl = maybe\n").unwrap();
        assert!(check_replacement(&dir, FILES[0].1, "10.0.0.1\n").is_err());
        assert!(check_replacement(&dir, DOMAIN_POLICY_FILE, "example.test dnsbl = off\n").is_ok());
        assert!(check_replacement(&dir, "../passwd", "x").is_err(), "only the directory's own files");
        assert_eq!(std::fs::read_to_string(dir.join(FILES[0].1)).unwrap(), "10.0.0.1\n", "nothing written");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "the staged copy is gone");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
