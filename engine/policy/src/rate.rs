//! Connection rates per client address and per client network (keyed by
//! [`crate::list::ipset::network_of`]), as Postfix's anvil counts them
//! (`smtpd_client_connection_rate_limit`), shared by every core of a process.
//!
//! Each key keeps two fixed windows, the current and the previous one; the rate is the current
//! count plus the previous count weighted by how much of the previous window still overlaps
//! the sliding one. That is exact for a steady rate and never more than one window's worth off.
//!
//! Costs: one lock of one of 64 shards per connection. Memory is bounded: a shard drops keys
//! idle for two windows whenever it has grown by half since its last sweep.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 64;

#[derive(Clone, Copy)]
struct Window {
    /// Start of the current window.
    start: Instant,
    current: u32,
    previous: u32,
}

struct Shard {
    keys: HashMap<IpAddr, Window>,
    swept_at_len: usize,
}

/// Connection counts per key (an address, or a network's first address).
pub struct Rates {
    shards: Vec<Mutex<Shard>>,
}

impl Default for Rates {
    fn default() -> Self {
        Rates::new()
    }
}

impl Rates {
    pub fn new() -> Rates {
        Rates { shards: (0..SHARDS).map(|_| Mutex::new(Shard { keys: HashMap::new(), swept_at_len: 1024 })).collect() }
    }

    /// Counts one connection of `key` at `now`; the rate over the last `window`, this one
    /// included.
    pub fn hit(&self, key: IpAddr, now: Instant, window: Duration) -> u32 {
        let window = window.max(Duration::from_millis(1));
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let mut shard = self.shards[(h.finish() as usize) % SHARDS].lock().unwrap_or_else(|p| p.into_inner());
        if shard.keys.len() > shard.swept_at_len + shard.swept_at_len / 2 {
            shard.keys.retain(|_, w| now.saturating_duration_since(w.start) < window * 2);
            shard.swept_at_len = shard.keys.len().max(1024);
        }
        let w = shard.keys.entry(key).or_insert(Window { start: now, current: 0, previous: 0 });
        let age = now.saturating_duration_since(w.start);
        if age >= window * 2 {
            *w = Window { start: now, current: 0, previous: 0 };
        } else if age >= window {
            *w = Window { start: w.start + window, current: 0, previous: w.current };
        }
        w.current = w.current.saturating_add(1);
        let into = now.saturating_duration_since(w.start).as_secs_f64() / window.as_secs_f64();
        let weight = (1.0 - into).clamp(0.0, 1.0);
        w.current + (w.previous as f64 * weight).floor() as u32
    }

    /// Keys held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).keys.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list::ipset::network_of;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_within_the_window_and_forgets_after() {
        let r = Rates::new();
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        for i in 1..=5 {
            assert_eq!(r.hit(ip("192.0.2.1"), t0 + Duration::from_secs(i), w), i as u32);
        }
        assert_eq!(r.hit(ip("192.0.2.2"), t0, w), 1, "keys are apart");
        // Half-way into the next window, half of the previous window still counts.
        assert_eq!(r.hit(ip("192.0.2.1"), t0 + Duration::from_secs(90), w), 1 + 2);
        // Two windows of silence forget everything.
        assert_eq!(r.hit(ip("192.0.2.1"), t0 + Duration::from_secs(300), w), 1);
    }

    #[test]
    fn networks_group_neighbours() {
        assert_eq!(network_of(ip("192.0.2.77"), 24), ip("192.0.2.0"));
        assert_eq!(network_of(ip("2001:db8:1:2:3::9"), 48), ip("2001:db8:1::"));
        let r = Rates::new();
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        for last in 1..=10u8 {
            r.hit(network_of(IpAddr::from([198, 51, 100, last]), 24), t0, w);
        }
        assert_eq!(r.hit(network_of(ip("198.51.100.200"), 24), t0, w), 11);
    }

    #[test]
    fn idle_keys_are_swept() {
        let r = Rates::new();
        let t0 = Instant::now();
        let w = Duration::from_secs(1);
        for i in 0..200_000u32 {
            r.hit(IpAddr::from(i.to_be_bytes()), t0, w);
        }
        let later = t0 + Duration::from_secs(5);
        for i in 0..200_000u32 {
            r.hit(IpAddr::from((i + 1_000_000).to_be_bytes()), later, w);
        }
        assert!(r.len() < 300_000, "old keys were dropped: {}", r.len());
    }
}
