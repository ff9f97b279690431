//! Greylisting: the first delivery attempt of an unknown (client network, sender, recipient)
//! triplet is deferred with a 4xx; a real mail server retries, a spam cannon mostly does not.
//!
//! - The client counts by network (`/24` for IPv4, `/64` for IPv6 by default), so a sender's
//!   pool of outbound servers retrying from a neighbouring address is recognised.
//! - A triplet passes once it is retried at least `delay` after it was first seen and before
//!   `retry_window` ran out; a passed triplet stays passed for `pass_ttl` after its last use.
//! - After `auto_whitelist` passes, the whole client network is whitelisted for `pass_ttl`
//!   (postgrey's auto-whitelist-clients): a known good server is delayed once, not per sender.
//! - The table is bounded (`max_entries`): when full after dropping what has expired, new
//!   triplets pass unrecorded (fail open, counted) rather than evicting triplets mid-delay.
//!
//! State survives restarts through [`Greylist::save`] / [`Greylist::load`]: a text snapshot
//! written to a temporary file, fsync'd and renamed over the old one. The gateway saves it every
//! `greylist.save_s` and at shutdown, so a crash forgets at most that interval — which only
//! means a sender is greylisted once more, never a lost message.
//!
//! Costs: one mutex of 64 shards taken per check (by triplet hash); no I/O on the check path.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::list::ipset::network_of;

const SHARDS: usize = 64;

/// Greylisting settings (the gateway fills them from the `greylist.*` knobs).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub delay_s: u64,
    pub retry_window_s: u64,
    pub pass_ttl_s: u64,
    /// Passes before the client network is whitelisted; 0: never.
    pub auto_whitelist: u32,
    pub max_entries: usize,
    pub v4_prefix: u8,
    pub v6_prefix: u8,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Deferred: try again in this many seconds (at least 1).
    Defer { retry_in_s: u64, first: bool },
    /// The triplet passed now (it waited long enough), or had passed before.
    Pass { just_passed: bool },
    /// The client network is auto-whitelisted.
    Whitelisted,
    /// The table is full: passed without being recorded.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Triplet {
    first: u64,
    last: u64,
    passed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Client {
    passes: u32,
    /// Whitelisted until (unix seconds); 0: not (yet) whitelisted.
    until: u64,
    /// The last pass (unix seconds): counts are forgotten `pass_ttl` after it.
    last: u64,
}

#[derive(Default)]
struct Shard {
    triplets: HashMap<(String, String, String), Triplet>,
}

/// The greylist table, shared by every core of a process.
pub struct Greylist {
    shards: Vec<Mutex<Shard>>,
    clients: Mutex<HashMap<String, Client>>,
    entries: AtomicUsize,
}

/// The client network of `ip` as text (`192.0.2.0/24`).
pub fn network(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> String {
    let p = if ip.is_ipv4() { v4_prefix.min(32) } else { v6_prefix.min(128) };
    format!("{}/{p}", network_of(ip, p))
}

fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_whitespace() { '_' } else { c.to_ascii_lowercase() }).collect()
}

impl Default for Greylist {
    fn default() -> Self {
        Greylist::new()
    }
}

impl Greylist {
    pub fn new() -> Greylist {
        Greylist {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            clients: Mutex::new(HashMap::new()),
            entries: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &(String, String, String)) -> &Mutex<Shard> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Triplets held now.
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks (and records) one delivery attempt at `now` (unix seconds).
    pub fn check(&self, ip: IpAddr, from: &str, to: &str, now: u64, s: &Settings) -> Decision {
        let net = network(ip, s.v4_prefix, s.v6_prefix);
        {
            let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            if clients.get(&net).is_some_and(|c| c.until > now) {
                return Decision::Whitelisted;
            }
        }
        let key = (net.clone(), clean(from), clean(to));
        let decision = {
            let mut shard = self.shard(&key).lock().unwrap_or_else(|p| p.into_inner());
            match shard.triplets.get_mut(&key) {
                Some(t) if t.passed && now <= t.last + s.pass_ttl_s => {
                    t.last = now;
                    return Decision::Pass { just_passed: false };
                }
                Some(t) if !t.passed && now <= t.first + s.retry_window_s => {
                    if now >= t.first + s.delay_s {
                        t.passed = true;
                        t.last = now;
                        Decision::Pass { just_passed: true }
                    } else {
                        t.last = now;
                        return Decision::Defer { retry_in_s: (t.first + s.delay_s - now).max(1), first: false };
                    }
                }
                Some(t) => {
                    // Expired: start over.
                    *t = Triplet { first: now, last: now, passed: false };
                    return Decision::Defer { retry_in_s: s.delay_s.max(1), first: true };
                }
                None => {
                    if self.entries.load(Ordering::Relaxed) >= s.max_entries {
                        return Decision::Full;
                    }
                    shard.triplets.insert(key, Triplet { first: now, last: now, passed: false });
                    self.entries.fetch_add(1, Ordering::Relaxed);
                    return Decision::Defer { retry_in_s: s.delay_s.max(1), first: true };
                }
            }
        };
        if s.auto_whitelist > 0 {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            let c = clients.entry(net).or_insert(Client { passes: 0, until: 0, last: now });
            c.passes += 1;
            c.last = now;
            if c.passes >= s.auto_whitelist {
                c.until = now + s.pass_ttl_s;
            }
        }
        decision
    }

    /// Drops what has expired at `now`; how many triplets were dropped.
    pub fn expire(&self, now: u64, s: &Settings) -> usize {
        let mut dropped = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let before = shard.triplets.len();
            shard.triplets.retain(|_, t| if t.passed { now <= t.last + s.pass_ttl_s } else { now <= t.first + s.retry_window_s });
            dropped += before - shard.triplets.len();
        }
        self.entries.fetch_sub(dropped, Ordering::Relaxed);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.retain(|_, c| c.until > now || now <= c.last + s.pass_ttl_s);
        dropped
    }

    /// Writes the table to `path` crash-safely (temporary file, fsync, rename, fsync of the
    /// directory). Lines: `t net from to first last passed` and `c net passes until last`.
    pub fn save(&self, path: &Path) -> std::io::Result<usize> {
        let tmp = path.with_extension("tmp");
        let mut n = 0;
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            writeln!(w, "mxguard-greylist 1")?;
            for shard in &self.shards {
                let lines: Vec<String> = {
                    let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
                    shard
                        .triplets
                        .iter()
                        .map(|((net, f, t), e)| format!("t {net} {} {} {} {} {}", or_dash(f), or_dash(t), e.first, e.last, e.passed as u8))
                        .collect()
                };
                for l in lines {
                    writeln!(w, "{l}")?;
                    n += 1;
                }
            }
            let clients: Vec<String> = {
                let c = self.clients.lock().unwrap_or_else(|p| p.into_inner());
                c.iter().map(|(net, c)| format!("c {net} {} {} {}", c.passes, c.until, c.last)).collect()
            };
            for l in clients {
                writeln!(w, "{l}")?;
            }
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) {
                let _ = d.sync_all();
            }
        }
        Ok(n)
    }

    /// Reads a snapshot written by [`Greylist::save`]; a missing file is an empty table. Lines
    /// that do not parse are skipped (counted in the result's second number).
    pub fn load(path: &Path) -> std::io::Result<(Greylist, usize)> {
        let g = Greylist::new();
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((g, 0)),
            Err(e) => return Err(e),
        };
        let mut bad = 0;
        for line in std::io::BufReader::new(f).lines() {
            let line = line?;
            let p: Vec<&str> = line.split(' ').collect();
            match p.as_slice() {
                ["mxguard-greylist", _] => {}
                ["t", net, from, to, first, last, passed] => match (first.parse(), last.parse()) {
                    (Ok(first), Ok(last)) => {
                        let key = (net.to_string(), from_dash(from), from_dash(to));
                        let t = Triplet { first, last, passed: *passed == "1" };
                        if g.shard(&key).lock().unwrap_or_else(|p| p.into_inner()).triplets.insert(key, t).is_none() {
                            g.entries.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => bad += 1,
                },
                ["c", net, passes, until, last] => match (passes.parse(), until.parse(), last.parse()) {
                    (Ok(passes), Ok(until), Ok(last)) => {
                        g.clients.lock().unwrap_or_else(|p| p.into_inner()).insert(net.to_string(), Client { passes, until, last });
                    }
                    _ => bad += 1,
                },
                _ => bad += 1,
            }
        }
        Ok((g, bad))
    }
}

/// The null sender is saved as `-` (an address never is).
fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn from_dash(s: &str) -> String {
    if s == "-" {
        String::new()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        delay_s: 300,
        retry_window_s: 48 * 3600,
        pass_ttl_s: 35 * 86400,
        auto_whitelist: 3,
        max_entries: 1000,
        v4_prefix: 24,
        v6_prefix: 64,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_attempt_defers_a_retry_after_the_delay_passes() {
        let g = Greylist::new();
        let t0 = 1_000_000;
        assert_eq!(g.check(ip("192.0.2.10"), "a@x.example", "u@example.test", t0, &S), Decision::Defer { retry_in_s: 300, first: true });
        assert_eq!(g.check(ip("192.0.2.10"), "a@x.example", "u@example.test", t0 + 100, &S), Decision::Defer { retry_in_s: 200, first: false });
        // A neighbour in the same /24 retries: same triplet.
        assert_eq!(g.check(ip("192.0.2.77"), "A@X.example", "u@example.test", t0 + 300, &S), Decision::Pass { just_passed: true });
        assert_eq!(g.check(ip("192.0.2.10"), "a@x.example", "u@example.test", t0 + 10_000, &S), Decision::Pass { just_passed: false });
        // Another /24, sender or recipient is another triplet.
        assert!(matches!(g.check(ip("192.0.3.10"), "a@x.example", "u@example.test", t0 + 400, &S), Decision::Defer { .. }));
        assert!(matches!(g.check(ip("192.0.2.10"), "b@x.example", "u@example.test", t0 + 400, &S), Decision::Defer { .. }));
        assert!(matches!(g.check(ip("192.0.2.10"), "a@x.example", "v@example.test", t0 + 400, &S), Decision::Defer { .. }));
    }

    #[test]
    fn unretried_triplets_expire_and_start_over() {
        let g = Greylist::new();
        let t0 = 1_000_000;
        g.check(ip("192.0.2.10"), "a@x", "u@y", t0, &S);
        let late = t0 + S.retry_window_s + 1;
        assert_eq!(g.check(ip("192.0.2.10"), "a@x", "u@y", late, &S), Decision::Defer { retry_in_s: 300, first: true });
        assert_eq!(g.expire(late + S.retry_window_s + 1, &S), 1);
        assert!(g.is_empty());
    }

    #[test]
    fn passes_whitelist_the_network_after_n() {
        let g = Greylist::new();
        let t0 = 1_000_000;
        for (i, to) in ["u1@y", "u2@y", "u3@y"].iter().enumerate() {
            let t = t0 + i as u64 * 1000;
            assert!(matches!(g.check(ip("192.0.2.10"), "a@x", to, t, &S), Decision::Defer { .. }));
            assert_eq!(g.check(ip("192.0.2.10"), "a@x", to, t + 301, &S), Decision::Pass { just_passed: true });
        }
        assert_eq!(g.check(ip("192.0.2.200"), "new@z", "other@y", t0 + 5000, &S), Decision::Whitelisted);
        assert!(matches!(g.check(ip("198.51.100.1"), "new@z", "other@y", t0 + 5000, &S), Decision::Defer { .. }));
    }

    #[test]
    fn full_table_fails_open() {
        let g = Greylist::new();
        let s = Settings { max_entries: 2, ..S };
        g.check(ip("192.0.2.1"), "a@x", "1@y", 10, &s);
        g.check(ip("192.0.2.1"), "a@x", "2@y", 10, &s);
        assert_eq!(g.check(ip("192.0.2.1"), "a@x", "3@y", 10, &s), Decision::Full);
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn snapshot_round_trips_and_skips_garbage() {
        let dir = std::env::temp_dir().join(format!("mxguard-greylist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("greylist.txt");
        let g = Greylist::new();
        g.check(ip("192.0.2.10"), "", "u@y", 1000, &S);
        g.check(ip("2001:db8::1"), "a@x", "u@y", 1000, &S);
        g.check(ip("2001:db8::1"), "a@x", "u@y", 1400, &S);
        assert_eq!(g.save(&path).unwrap(), 2);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("t broken\n");
        std::fs::write(&path, text).unwrap();
        let (h, bad) = Greylist::load(&path).unwrap();
        assert_eq!((h.len(), bad), (2, 1));
        assert_eq!(h.check(ip("192.0.2.99"), "", "u@y", 1300, &S), Decision::Pass { just_passed: true }, "null sender kept");
        assert_eq!(h.check(ip("2001:db8::ffff"), "a@x", "u@y", 2000, &S), Decision::Pass { just_passed: false }, "/64");
        assert_eq!(Greylist::load(&dir.join("none")).unwrap().0.len(), 0);
    }

    #[test]
    fn networks() {
        assert_eq!(network(ip("192.0.2.77"), 24, 64), "192.0.2.0/24");
        assert_eq!(network(ip("2001:db8:1:2:3::9"), 24, 64), "2001:db8:1:2::/64");
        assert_eq!(network(ip("192.0.2.77"), 32, 64), "192.0.2.77/32");
    }
}
