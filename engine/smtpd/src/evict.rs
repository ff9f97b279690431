//! Making room in a full connection table by closing a connection whose client stalls.
//!
//! A flood of clients that connect and then dribble (slowloris: a byte a second, a TLS handshake
//! that never finishes) would otherwise hold every slot of `smtp.max_connections` for the whole
//! read timeout, and ordinary senders would get `421 too many connections` until the flood ends.
//! Instead, when a connection arrives to a full table, the core closes the one of its own
//! connections that has waited longest for its client without progress — no complete command, no
//! finished handshake, no kilobyte of body — provided that wait is longer than
//! `smtp.evict_stalled_ms`; the newcomer takes its place. A client that talks at ordinary speed is
//! never the one picked, so ordinary senders keep their rate while the flood evicts itself.
//!
//! An evicted client's address then waits in a penalty box for `smtp.evict_penalty_s`: while the
//! table is full, it is refused instead of evicting another. Without it a flood that reconnects
//! at once would take every slot an eviction frees, its own included, before an ordinary sender's
//! next connection arrives; with it each flooding address gets a slot once per penalty, and the
//! stalled connections left are there for ordinary senders to replace. The box is process-wide
//! (a reconnection lands on any core) and bounded (`PENALTY_MAX` addresses).
//!
//! It must never close a connection that is not waiting for its client (one whose command is
//! being decided: a policy check, a DNS lookup, a spool write), nor one that made progress within
//! the threshold. Cost: a scan of this core's connections for each arrival to a full table (a
//! few microseconds for a thousand); nothing at all while the table has room.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use glommio::sync::Semaphore;

/// What the eviction scan knows of one connection.
pub struct Watch {
    ip: IpAddr,
    /// Last progress: connect, a complete command, a finished handshake, a kilobyte of body.
    progress: Cell<Instant>,
    /// The connection is waiting for its client (a read or a handshake is under way).
    waiting: Cell<bool>,
    evicted: Cell<bool>,
    signal: Semaphore,
}

impl Watch {
    pub fn progress(&self) {
        self.progress.set(Instant::now());
    }

    pub fn set_waiting(&self, waiting: bool) {
        self.waiting.set(waiting);
    }

    /// Resolves once the connection was picked to make room.
    pub async fn evicted(&self) {
        let _ = self.signal.acquire(1).await;
    }

    pub fn was_evicted(&self) -> bool {
        self.evicted.get()
    }
}

thread_local! {
    static WATCHED: RefCell<HashMap<u64, Rc<Watch>>> = RefCell::new(HashMap::new());
}

/// A connection's place in its core's table; leaves it on drop.
pub struct Registration {
    id: u64,
    pub watch: Rc<Watch>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        WATCHED.with(|w| w.borrow_mut().remove(&self.id));
    }
}

/// Enters connection `id` (unique per process) from `ip` into this core's table.
pub fn register(id: u64, ip: IpAddr) -> Registration {
    let watch = Rc::new(Watch {
        ip,
        progress: Cell::new(Instant::now()),
        waiting: Cell::new(false),
        evicted: Cell::new(false),
        signal: Semaphore::new(0),
    });
    WATCHED.with(|w| w.borrow_mut().insert(id, watch.clone()));
    Registration { id, watch }
}

/// Signals this core's longest-stalled connection that is waiting for its client, if it has
/// stalled for longer than `stalled_for`; true when one was picked (it closes itself with 421,
/// and its address goes into the penalty box for `penalty`).
pub fn make_room(stalled_for: Duration, now: Instant, penalty: Duration) -> bool {
    WATCHED.with(|w| {
        let w = w.borrow();
        let pick = w
            .values()
            .filter(|c| c.waiting.get() && !c.evicted.get())
            .filter(|c| now.saturating_duration_since(c.progress.get()) > stalled_for)
            .min_by_key(|c| c.progress.get());
        match pick {
            Some(c) => {
                c.evicted.set(true);
                c.signal.signal(1);
                penalize(c.ip, now, penalty);
                true
            }
            None => false,
        }
    })
}

/// Most addresses the penalty box holds; past it, new evictions go unremembered until entries
/// expire (the box never grows without bound under a flood from many addresses).
pub const PENALTY_MAX: usize = 65_536;

static PENALTY: Mutex<Option<HashMap<IpAddr, Instant>>> = Mutex::new(None);

fn penalize(ip: IpAddr, now: Instant, ttl: Duration) {
    if ttl.is_zero() {
        return;
    }
    let mut g = PENALTY.lock().unwrap_or_else(|e| e.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    if map.len() >= PENALTY_MAX {
        map.retain(|_, at| now.saturating_duration_since(*at) < ttl);
    }
    if map.len() < PENALTY_MAX {
        map.insert(ip, now);
    }
}

/// The address was evicted within the last `ttl`: refuse it rather than evict another for it.
pub fn penalized(ip: IpAddr, now: Instant, ttl: Duration) -> bool {
    let mut g = PENALTY.lock().unwrap_or_else(|e| e.into_inner());
    let Some(map) = g.as_mut() else { return false };
    match map.get(&ip) {
        Some(at) if now.saturating_duration_since(*at) < ttl => true,
        Some(_) => {
            map.remove(&ip);
            false
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_longest_stalled_waiting_connection_only() {
        glommio::LocalExecutor::default().run(async {
            let t0 = Instant::now();
            let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
            let a = register(1, ip(1));
            let b = register(2, ip(2));
            let c = register(3, ip(3));
            let d = register(4, ip(4));
            a.watch.progress.set(t0 - Duration::from_secs(5));
            b.watch.progress.set(t0 - Duration::from_secs(9));
            c.watch.progress.set(t0 - Duration::from_secs(30)); // stalled longest, but busy on our side
            d.watch.progress.set(t0); // waiting, but just made progress
            for r in [&a, &b, &d] {
                r.watch.set_waiting(true);
            }
            let (limit, penalty) = (Duration::from_secs(2), Duration::from_secs(60));
            assert!(make_room(limit, t0, penalty));
            assert!(b.watch.was_evicted() && !a.watch.was_evicted() && !c.watch.was_evicted());
            assert!(penalized(ip(2), t0, penalty) && !penalized(ip(1), t0, penalty), "the evicted address waits");
            assert!(!penalized(ip(2), t0 + penalty + Duration::from_secs(1), penalty), "and is let go");
            b.watch.evicted().await; // the signal is there for it
            assert!(make_room(limit, t0, penalty));
            assert!(a.watch.was_evicted());
            assert!(!make_room(limit, t0, penalty), "the rest are busy or fresh");
            assert!(!d.watch.was_evicted() && !c.watch.was_evicted());
            drop((a, b, c, d));
            assert!(WATCHED.with(|w| w.borrow().is_empty()));
        });
    }
}
