//! Queue ids: 16 characters of Crockford base32, unique across cores and restarts.
//!
//! Layout: 11 characters of microseconds since the epoch, 2 of the core, 3 of a per-core counter
//! (32,768 ids per core per microsecond before a repeat is possible; a core cannot make that many).
//! Sorting ids sorts them roughly by arrival.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn push_base32(out: &mut String, mut v: u64, digits: usize) {
    let mut buf = [b'0'; 16];
    for i in (0..digits).rev() {
        buf[i] = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    out.push_str(std::str::from_utf8(&buf[..digits]).unwrap_or("0"));
}

/// A per-core queue id generator.
pub struct QueueIds {
    core: u64,
    counter: Cell<u64>,
}

impl QueueIds {
    pub fn new(core: usize) -> QueueIds {
        QueueIds { core: core as u64, counter: Cell::new(0) }
    }

    pub fn next(&self) -> String {
        let micros = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        let c = self.counter.get().wrapping_add(1);
        self.counter.set(c);
        let mut s = String::with_capacity(16);
        push_base32(&mut s, micros, 11);
        push_base32(&mut s, self.core, 2);
        push_base32(&mut s, c, 3);
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_well_formed() {
        let a = super::QueueIds::new(0);
        let b = super::QueueIds::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            for id in [a.next(), b.next()] {
                assert_eq!(id.len(), 16);
                assert!(id.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
                assert!(seen.insert(id));
            }
        }
    }
}
