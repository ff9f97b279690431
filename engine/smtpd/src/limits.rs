//! Connection counting across all cores: in total and per client IP.
//!
//! Counts live in 64 mutex-guarded shards keyed by the client address, so two cores rarely touch
//! the same lock and never hold one across an await. A [`Slot`] gives its count back on drop,
//! whatever path the connection takes to its end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const SHARDS: usize = 64;

static TOTAL: AtomicUsize = AtomicUsize::new(0);
static PER_IP: [Mutex<Option<HashMap<IpAddr, u32>>>; SHARDS] = [const { Mutex::new(None) }; SHARDS];

fn shard(ip: &IpAddr) -> usize {
    let h = match ip {
        IpAddr::V4(v) => u32::from(*v) as u64,
        IpAddr::V6(v) => {
            let o = v.octets();
            u64::from_le_bytes([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                ^ u64::from_le_bytes([o[8], o[9], o[10], o[11], o[12], o[13], o[14], o[15]])
        }
    };
    (h.wrapping_mul(0x9E3779B97F4A7C15) >> 58) as usize % SHARDS
}

/// Why a connection was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerIp,
}

/// A held connection slot.
pub struct Slot {
    ip: IpAddr,
}

/// Takes a slot for a connection from `ip`, unless a limit is reached.
pub fn acquire(ip: IpAddr, max_total: usize, max_per_ip: u32) -> Result<Slot, Refused> {
    if TOTAL.fetch_add(1, Ordering::AcqRel) >= max_total {
        TOTAL.fetch_sub(1, Ordering::AcqRel);
        return Err(Refused::Total);
    }
    let mut g = PER_IP[shard(&ip)].lock().unwrap_or_else(|e| e.into_inner());
    let n = g.get_or_insert_with(HashMap::new).entry(ip).or_insert(0);
    if *n >= max_per_ip {
        drop(g);
        TOTAL.fetch_sub(1, Ordering::AcqRel);
        return Err(Refused::PerIp);
    }
    *n += 1;
    Ok(Slot { ip })
}

impl Drop for Slot {
    fn drop(&mut self) {
        TOTAL.fetch_sub(1, Ordering::AcqRel);
        let mut g = PER_IP[shard(&self.ip)].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(map) = g.as_mut() {
            if let Some(n) = map.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

/// Raises the open-file limit to the hard limit: 10,000 connections need more than the usual
/// soft limit of 1,024.
pub fn raise_nofile() {
    // SAFETY: plain libc calls on a stack value.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Connections held now.
pub fn total() -> usize {
    TOTAL.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_release() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let base = total();
        let s1 = acquire(a, base + 3, 2).unwrap();
        let s2 = acquire(a, base + 3, 2).unwrap();
        assert_eq!(acquire(a, base + 3, 2).err(), Some(Refused::PerIp));
        let s3 = acquire(b, base + 3, 2).unwrap();
        assert_eq!(acquire(b, base + 3, 2).err(), Some(Refused::Total));
        drop((s1, s2, s3));
        assert_eq!(total(), base);
        let _again = acquire(a, base + 1, 1).unwrap();
    }
}
