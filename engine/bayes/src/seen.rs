//! What each learnt message was learnt as (SpamAssassin's "seen" database), so that learning
//! a message again is not counting it twice.
//!
//! A message is known by a 64-bit digest of its token set ([`digest`]): the tokenizer gives a
//! copy the gateway delivered or quarantined the same tokens as the message it scanned on
//! arrival, so the digest of the auto-learnt message and of the released one agree. The learner
//! ([`crate::apply`]) asks here before it applies a lesson:
//! - learnt the same way before: nothing to do (a second `mxguard learn` over the same folder,
//!   a spam report of mail auto-learn already took as spam);
//! - learnt the other way: that lesson is taken back first (a released false positive that
//!   auto-learn had taken as spam is then ham once, not spam and ham at once);
//! - taking back what was never learnt that way does nothing.
//!
//! Bounded by `bayes.seen_max` (0: off, every lesson applies as given): past it the entries of
//! the oldest days are forgotten down to three quarters. Kept in the snapshot ([`crate::store`])
//! and rebuilt from the journal, like the table. Cost: one hash-map look-up per lesson and a
//! digest linear in its tokens. Never read on a scan path.

use std::collections::HashMap;

/// How a message was learnt, on which day (the oldest are forgotten first), and how many times
/// beyond once ([`crate::reinforce`]: taking it back takes back every time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub spam: bool,
    pub day: u16,
    pub extra: u8,
}

/// The learnt messages' digests.
#[derive(Debug, Default)]
pub struct Seen {
    map: HashMap<u64, Entry>,
}

/// The digest of a message's (de-duplicated) tokens, in any order: a sum of each token mixed
/// again, so two sets differing in any token differ in the digest but for a 2^-64 chance.
pub fn digest(tokens: &[u64]) -> u64 {
    let mix = |t: u64| {
        let mut h = t ^ 0x6a09_e667_f3bc_c909;
        h = (h ^ (h >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    };
    tokens.iter().fold(tokens.len() as u64, |d, t| d.wrapping_add(mix(*t)))
}

impl Seen {
    pub fn get(&self, digest: u64) -> Option<Entry> {
        self.map.get(&digest).copied()
    }

    /// Records `digest` as learnt; with more than `max` entries, forgets the oldest down to
    /// three quarters of it (cost linear in the entries, once per quarter of `max` lessons).
    pub fn set(&mut self, digest: u64, e: Entry, max: usize) {
        self.map.insert(digest, e);
        if self.map.len() > max {
            self.keep_newest(max / 4 * 3);
        }
    }

    /// Keeps the `keep` entries of the newest days (of the oldest day kept, any of its entries).
    fn keep_newest(&mut self, keep: usize) {
        if keep == 0 {
            self.map.clear();
            return;
        }
        let mut days: Vec<u16> = self.map.values().map(|e| e.day).collect();
        if days.len() <= keep {
            return;
        }
        let (_, &mut cut, _) = days.select_nth_unstable_by(keep - 1, |a, b| b.cmp(a));
        let mut room = keep - self.map.values().filter(|e| e.day > cut).count();
        self.map.retain(|_, e| {
            e.day > cut
                || (e.day == cut && room > 0 && {
                    room -= 1;
                    true
                })
        });
    }

    /// An entry loaded from a snapshot (no bound applied: the snapshot was written within it).
    pub fn restore(&mut self, digest: u64, e: Entry) {
        self.map.insert(digest, e);
    }

    pub fn remove(&mut self, digest: u64) {
        self.map.remove(&digest);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every entry (for the snapshot).
    pub fn entries(&self) -> impl Iterator<Item = (u64, Entry)> + '_ {
        self.map.iter().map(|(d, e)| (*d, *e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_ignore_order_and_tell_sets_apart() {
        assert_eq!(digest(&[1, 2, 3]), digest(&[3, 1, 2]));
        assert_ne!(digest(&[1, 2, 3]), digest(&[1, 2, 4]));
        assert_ne!(digest(&[1, 2]), digest(&[1, 2, 0]), "an extra token, even a zero one");
        assert_ne!(digest(&[]), digest(&[0]));
        let many: std::collections::HashSet<u64> = (0..10_000u64).map(|i| digest(&[i, i + 1])).collect();
        assert_eq!(many.len(), 10_000);
    }

    #[test]
    fn bounded_by_forgetting_the_oldest_days() {
        let mut s = Seen::default();
        for i in 0..100u64 {
            s.set(i, Entry { spam: i % 2 == 0, day: i as u16 / 10, extra: 0 }, 100);
        }
        assert_eq!(s.len(), 100);
        s.set(100, Entry { spam: true, day: 10, extra: 0 }, 100);
        // 101 > 100: down to 75, the newest: day 10, days 9 to 3, and four of day 2.
        assert_eq!(s.len(), 75);
        assert_eq!((20..30).filter(|i| s.get(*i).is_some()).count(), 4);
        assert_eq!(s.get(5), None);
        assert_eq!(s.get(99), Some(Entry { spam: false, day: 9, extra: 0 }));
        assert_eq!(s.get(100), Some(Entry { spam: true, day: 10, extra: 0 }));
        // All on one day: still bounded.
        let mut s = Seen::default();
        for i in 0..1000u64 {
            s.set(i, Entry { spam: true, day: 7, extra: 0 }, 100);
        }
        assert!(s.len() <= 100 && s.len() >= 75, "{}", s.len());
        // Off: nothing kept.
        let mut s = Seen::default();
        s.set(1, Entry { spam: true, day: 1, extra: 0 }, 0);
        assert!(s.is_empty());
    }
}
