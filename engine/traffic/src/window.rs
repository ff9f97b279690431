//! Counters per key over a sliding window: messages, spam, ham and recipients, plus a 64-bit
//! sketch of the distinct sources (client addresses) seen — what bulk detection and reputation
//! count.
//!
//! The window slides with two buckets, the current one and the one before it, the older one
//! weighed by how much of it still lies inside the window (Cloudflare's sliding-window
//! estimate): a key that stops appearing fades out between one and two windows later. Distinct
//! sources are a linear-counting bitmap (one bit per source hash, 64 bits: exact-ish up to a few
//! dozen sources, saturating near 260), over both buckets.
//!
//! Shared by all cores as 64 shards, each a mutex around a hash map: a message touches a
//! handful of keys once (never per byte or per token), so a critical section is a few hundred
//! nanoseconds and shards keep cores apart. Memory is bounded: a full shard first forgets idle
//! keys, then keys seen only once, then an eighth of the rest (picked by key: arbitrary but
//! cheap, amortised O(1) per insert). State is in memory only: a restart forgets at most
//! two windows of history, as the reference products' caches do.
//!
//! Never: blocks on I/O, grows past its bound, or panics on a poisoned lock (it carries on with
//! the data as it is: counters are advisory).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

const SHARDS: usize = 64;

/// What one message adds to a key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delta {
    pub messages: u32,
    pub spam: u32,
    pub ham: u32,
    pub recipients: u32,
    /// A hash of the source (client address), for the distinct-source count.
    pub source: Option<u64>,
}

/// A key's counts over the window (estimates: the older bucket is weighed).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Seen {
    pub messages: f64,
    pub spam: f64,
    pub ham: f64,
    pub recipients: f64,
    /// Distinct sources (estimated).
    pub sources: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    messages: u32,
    spam: u32,
    ham: u32,
    recipients: u32,
    sources: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Start of the current bucket (seconds, a multiple of the window).
    start: u64,
    cur: Bucket,
    prev: Bucket,
    last: u64,
}

impl Entry {
    /// Moves the buckets on to the one holding `now`.
    fn rotate(&mut self, now: u64, window: u64) {
        let aligned = now - now % window;
        if self.start == aligned {
            return;
        }
        self.prev = if self.start + window == aligned { self.cur } else { Bucket::default() };
        self.cur = Bucket::default();
        self.start = aligned;
    }

    fn seen(&self, now: u64, window: u64) -> Seen {
        let aligned = now - now % window;
        let (cur, prev) = if self.start == aligned {
            (self.cur, self.prev)
        } else if self.start + window == aligned {
            (Bucket::default(), self.cur)
        } else {
            return Seen::default();
        };
        let w = 1.0 - (now - aligned) as f64 / window as f64;
        let mix = |a: u32, b: u32| f64::from(a) + f64::from(b) * w;
        Seen {
            messages: mix(cur.messages, prev.messages),
            spam: mix(cur.spam, prev.spam),
            ham: mix(cur.ham, prev.ham),
            recipients: mix(cur.recipients, prev.recipients),
            sources: distinct(cur.sources | prev.sources),
        }
    }
}

/// Linear counting over 64 bits: the number of distinct items that set `bits`.
pub fn distinct(bits: u64) -> u32 {
    let zero = bits.count_zeros();
    if zero == 0 {
        return (64.0 * 64f64.ln()).round() as u32;
    }
    (-64.0 * (f64::from(zero) / 64.0).ln()).round() as u32
}

/// Keys are hashes already: the map uses them as they are.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Shard = HashMap<u64, Entry, BuildHasherDefault<KeyHasher>>;

/// A 64-bit mix (SplitMix64's finaliser): spreads keys built from small values.
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A key for a string (FNV-1a, then mixed), `kind` keeping families apart.
pub fn key_of(kind: u8, s: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ u64::from(kind);
    for b in s {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// A key for the first `v4_bytes` (IPv4) or `v6_bytes` (IPv6) bytes of an address: the address
/// itself (4, 16) or its network (3, 6 for a /24 or /48).
pub fn key_of_ip(kind: u8, ip: std::net::IpAddr, v4_bytes: usize, v6_bytes: usize) -> u64 {
    match ip {
        std::net::IpAddr::V4(a) => key_of(kind, &a.octets()[..v4_bytes.min(4)]),
        std::net::IpAddr::V6(a) => key_of(kind, &a.octets()[..v6_bytes.min(16)]),
    }
}

pub struct Windows {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for Windows {
    fn default() -> Windows {
        Windows::new()
    }
}

impl Windows {
    pub fn new() -> Windows {
        Windows { shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect() }
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Shard> {
        let i = (mix(key) >> 58) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `d` to `key` at `now` (seconds) and returns its counts including it. `window` is in
    /// seconds (at least 1); the map holds at most about `max_keys` keys.
    pub fn add(&self, key: u64, now: u64, window: u64, max_keys: usize, d: &Delta) -> Seen {
        let window = window.max(1);
        let mut m = self.shard(key);
        let per_shard = (max_keys / SHARDS).max(16);
        if m.len() >= per_shard && !m.contains_key(&key) {
            make_room(&mut m, now, window, per_shard);
        }
        let e = m.entry(key).or_default();
        e.rotate(now, window);
        e.last = now;
        let b = &mut e.cur;
        b.messages = b.messages.saturating_add(d.messages);
        b.spam = b.spam.saturating_add(d.spam);
        b.ham = b.ham.saturating_add(d.ham);
        b.recipients = b.recipients.saturating_add(d.recipients);
        if let Some(s) = d.source {
            b.sources |= 1 << (mix(s) & 63);
        }
        e.seen(now, window)
    }

    /// The counts of `key` at `now` (zero when unknown).
    pub fn get(&self, key: u64, now: u64, window: u64) -> Seen {
        self.shard(key).get(&key).map_or_else(Seen::default, |e| e.seen(now, window.max(1)))
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets keys not seen for two windows (they count nothing any more).
    pub fn sweep(&self, now: u64, window: u64) {
        let window = window.max(1);
        for s in self.shards.iter() {
            s.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, e| e.last + 2 * window > now);
        }
    }
}

/// Frees at least an eighth of a full shard: idle keys first, then keys seen in one message
/// only (older ones, then half of the rest), then, if that was not enough, an eighth of all.
fn make_room(m: &mut Shard, now: u64, window: u64, per_shard: usize) {
    static ROUNDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let target = per_shard - per_shard / 8;
    // A new pick every time: the survivors of one round are not spared in the next.
    let salt = mix(now ^ ROUNDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let single = |e: &Entry| e.cur.messages + e.prev.messages <= 1;
    m.retain(|_, e| e.last + 2 * window > now);
    if m.len() > target {
        m.retain(|_, e| !single(e) || e.last + window / 8 > now);
    }
    if m.len() > target {
        m.retain(|k, e| !single(e) || mix(k ^ salt) & 1 == 0);
    }
    if m.len() > target {
        m.retain(|k, _| mix(k ^ salt) & 7 != 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(source: u64) -> Delta {
        Delta { messages: 1, recipients: 2, source: Some(source), ..Delta::default() }
    }

    #[test]
    fn counts_slide_out_of_the_window() {
        let w = Windows::new();
        let win = 3600;
        let t0 = 10 * win; // the start of a bucket
        for i in 0..10 {
            w.add(7, t0 + i, win, 1000, &one(i));
        }
        let s = w.get(7, t0 + 10, win);
        assert_eq!((s.messages, s.recipients), (10.0, 20.0));
        assert!((9..=11).contains(&s.sources), "{}", s.sources);
        // Half-way through the next bucket the old one counts half.
        let s = w.get(7, t0 + win + win / 2, win);
        assert_eq!(s.messages, 5.0);
        // Two windows on, nothing.
        assert_eq!(w.get(7, t0 + 2 * win, win), Seen::default());
        w.add(7, t0 + 3 * win, win, 1000, &Delta { spam: 1, messages: 1, ..Delta::default() });
        let s = w.get(7, t0 + 3 * win, win);
        assert_eq!((s.messages, s.spam, s.sources), (1.0, 1.0, 0));
        assert_eq!(w.get(8, t0, win), Seen::default());
        w.sweep(t0 + 6 * win, win);
        assert!(w.is_empty());
    }

    #[test]
    fn distinct_sources_estimate() {
        assert_eq!(distinct(0), 0);
        let mut bits = 0u64;
        for s in 0..30u64 {
            bits |= 1 << (mix(s) & 63);
        }
        let n = distinct(bits);
        assert!((22..=40).contains(&n), "30 sources read as {n}");
        assert_eq!(distinct(u64::MAX), 266);
    }

    #[test]
    fn bounded_under_a_flood_of_new_keys() {
        let w = Windows::new();
        for k in 0..100_000u64 {
            w.add(mix(k), 1000, 3600, 4096, &one(k));
        }
        assert!(w.len() <= 4096 + 64, "{}", w.len());
        // A key seen often survives the pressure more than one-offs (it is never a singleton).
        let hot = mix(u64::MAX);
        for k in 0..50_000u64 {
            w.add(hot, 1000, 3600, 4096, &one(1));
            w.add(mix(k + 1_000_000), 1000, 3600, 4096, &one(k));
        }
        assert!(w.get(hot, 1000, 3600).messages > 1000.0);
    }

    #[test]
    fn cores_add_at_once() {
        let w = std::sync::Arc::new(Windows::new());
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let w = std::sync::Arc::clone(&w);
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        w.add(i % 100, 5000, 3600, 1 << 20, &one(t));
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let total: f64 = (0..100).map(|k| w.get(k, 5000, 3600).messages).sum();
        assert_eq!(total, 40_000.0);
    }
}
