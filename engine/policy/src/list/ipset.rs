//! Address blocks with longest-prefix lookup: one hash table per prefix length in use, probed
//! from the longest length down. Cost: one hash probe per distinct prefix length present
//! (typically 2–5: /32, /24, a few CIDRs), whatever the number of entries; memory about 40
//! bytes per entry. Chosen over a bit trie because lists are dominated by /32 and /24 entries,
//! where a trie walks 24–32 nodes per lookup and a probe walks one.

use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Default)]
pub struct IpSet<V> {
    v4: Vec<(u8, HashMap<u32, V>)>,
    v6: Vec<(u8, HashMap<u128, V>)>,
    len: usize,
}

fn mask4(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - len as u32))
    }
}

fn mask6(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - len as u32))
    }
}

/// The first address of `ip`'s network of `prefix` bits (clamped to the family's width).
pub fn network_of(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(mask4(u32::from(a), prefix.min(32)).into()),
        IpAddr::V6(a) => IpAddr::V6(mask6(u128::from(a), prefix.min(128)).into()),
    }
}

impl<V> IpSet<V> {
    pub fn new() -> IpSet<V> {
        IpSet { v4: Vec::new(), v6: Vec::new(), len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a block; an existing identical block keeps its first value.
    pub fn insert(&mut self, ip: IpAddr, len: u8, v: V) {
        let added = match ip {
            IpAddr::V4(a) => {
                let len = len.min(32);
                let t = table(&mut self.v4, len);
                let key = mask4(u32::from(a), len);
                !t.contains_key(&key) && t.insert(key, v).is_none()
            }
            IpAddr::V6(a) => {
                let len = len.min(128);
                let t = table(&mut self.v6, len);
                let key = mask6(u128::from(a), len);
                !t.contains_key(&key) && t.insert(key, v).is_none()
            }
        };
        if added {
            self.len += 1;
        }
    }

    /// The value of the longest block containing `ip`. IPv4-mapped IPv6 addresses are looked up
    /// as IPv4.
    pub fn get(&self, ip: IpAddr) -> Option<&V> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().find_map(|(len, t)| t.get(&mask4(a, *len)))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().find_map(|(len, t)| t.get(&mask6(a, *len)))
            }
        }
    }
}

/// The table for `len`, keeping the list sorted longest first.
fn table<K, V>(tables: &mut Vec<(u8, HashMap<K, V>)>, len: u8) -> &mut HashMap<K, V> {
    let pos = match tables.iter().position(|(l, _)| *l <= len) {
        Some(p) if tables[p].0 == len => p,
        Some(p) => {
            tables.insert(p, (len, HashMap::new()));
            p
        }
        None => {
            tables.push((len, HashMap::new()));
            tables.len() - 1
        }
    };
    &mut tables[pos].1
}
