//! Pre-greeting test (as Postfix's postscreen): the gateway sends the first line of a
//! multi-line banner (`220-`), waits, and a client that talks before the last line (`220 `) is a
//! bot that does not wait for the server; it is refused. A client that waited is remembered for
//! a while (postscreen's greet TTL) and does not wait again.
//!
//! This module is the memory of who passed; the waiting is done by the SMTP server. Costs: one
//! mutex taken per new connection; bounded by sweeping expired entries when the table has grown
//! by half since its last sweep.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Passed {
    inner: Mutex<(HashMap<IpAddr, Instant>, usize)>,
}

impl Default for Passed {
    fn default() -> Self {
        Passed::new()
    }
}

impl Passed {
    pub fn new() -> Passed {
        Passed { inner: Mutex::new((HashMap::new(), 1024)) }
    }

    /// Whether `ip` passed the test and its pass has not expired at `now`.
    pub fn passed(&self, ip: IpAddr, now: Instant) -> bool {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0.get(&ip).is_some_and(|until| *until > now)
    }

    /// Remembers that `ip` waited for the greeting, for `ttl`.
    pub fn remember(&self, ip: IpAddr, now: Instant, ttl: Duration) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, swept) = &mut *g;
        if map.len() > *swept + *swept / 2 {
            map.retain(|_, until| *until > now);
            *swept = map.len().max(1024);
        }
        map.insert(ip, now + ttl);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_the_ttl() {
        let p = Passed::new();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(!p.passed(ip, t0));
        p.remember(ip, t0, Duration::from_secs(10));
        assert!(p.passed(ip, t0 + Duration::from_secs(9)));
        assert!(!p.passed(ip, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn stays_bounded() {
        let p = Passed::new();
        let t0 = Instant::now();
        for i in 0..100_000u32 {
            p.remember(IpAddr::from(i.to_be_bytes()), t0, Duration::from_secs(1));
        }
        for i in 0..100_000u32 {
            p.remember(IpAddr::from((i + 1_000_000).to_be_bytes()), t0 + Duration::from_secs(2), Duration::from_secs(1));
        }
        assert!(p.len() < 160_000, "{}", p.len());
    }
}
