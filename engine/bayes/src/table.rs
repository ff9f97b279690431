//! The token table: spam and ham counts per 64-bit token, shared by every core, read without
//! locks while learning writes into it.
//!
//! A fixed array of slots (a power of two, sized from the token budget at a load of at most
//! 3/4), open addressing with linear probing. A slot is a key word and a counts word, both
//! atomics: the spam count in the high and the ham count in the low 32 bits of one `AtomicU64`, so
//! a reader always sees a pair that was true at some instant, and learning a message is one
//! `fetch_add` per token. Keys are claimed with a compare-and-swap from empty, so any number of
//! writers may learn at once; a claimed key never moves or disappears, so readers need no
//! fence beyond acquire loads.
//!
//! Beside each slot, in a separate array that readers never touch, the day the token was last
//! learnt: stale tokens are evicted by building a smaller copy ([`Table::rebuilt`]) that the
//! owner swaps in for the old one (slots are never emptied in place, so a reader never sees a
//! key with another token's counts).
//!
//! Costs: a lookup or an update is one hash-indexed probe and, at 3/4 load, a few more on
//! average (bounded by [`MAX_PROBE`]). Memory is 18 bytes a slot (16 read by classification),
//! fixed at creation. Guarantees: never blocks, never allocates after creation, never loses an
//! update that found its slot; when the probe bound is reached (the table is full) the token is
//! not learnt and [`Table::dropped`] counts it — eviction runs before that in the gateway.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::classify::Counts;
use crate::huge::HugeArray;

/// Slots probed at most before a token is given up.
pub const MAX_PROBE: usize = 64;

const EMPTY: u64 = 0;
// A zeroed slot is an empty one (Table::new relies on it).
const _: () = assert!(EMPTY == 0);

struct Slot {
    key: AtomicU64,
    counts: AtomicU64,
}

pub struct Table {
    /// In huge pages where the kernel allows (huge.rs): every lookup is a random slot.
    slots: HugeArray<Slot>,
    /// Day ([`today`]) each slot's token was last learnt.
    touched: HugeArray<AtomicU16>,
    mask: usize,
    spam_learned: AtomicU64,
    ham_learned: AtomicU64,
    used: AtomicU64,
    dropped: AtomicU64,
}

/// Tokens never hash to the empty marker: 0 is read as 1.
fn key_of(token: u64) -> u64 {
    if token == EMPTY {
        1
    } else {
        token
    }
}

/// Days since 2020-01-01 (UTC), the unit of a token's age (u16: good until 2199).
pub fn today() -> u16 {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    days.saturating_sub(18_262).min(u64::from(u16::MAX)) as u16
}

fn pack(c: Counts) -> u64 {
    (u64::from(c.spam) << 32) | u64::from(c.ham)
}

fn unpack(v: u64) -> Counts {
    Counts { spam: (v >> 32) as u32, ham: v as u32 }
}

/// Hints the CPU to fetch the cache line holding `item` (no effect on any result).
#[inline]
fn prefetch_line<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing the program sees; the pointer is to a
    // live item anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((item as *const T).cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

impl Table {
    /// A table for up to `tokens` tokens (at least 1,024 slots).
    pub fn new(tokens: usize) -> Table {
        let slots = Table::slots_for(tokens);
        Table {
            // SAFETY: all-zero is a valid Slot (EMPTY key, no counts) and a valid AtomicU16.
            slots: unsafe { HugeArray::zeroed(slots) },
            touched: unsafe { HugeArray::zeroed(slots) },
            mask: slots - 1,
            spam_learned: AtomicU64::new(0),
            ham_learned: AtomicU64::new(0),
            used: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Slots of a table for `tokens` tokens.
    pub fn slots_for(tokens: usize) -> usize {
        (tokens.saturating_mul(4) / 3).max(1024).next_power_of_two()
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.used.load(Ordering::Relaxed) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens that found no slot since creation (the budget is too small).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Messages learnt: (spam, ham).
    pub fn learned(&self) -> (u64, u64) {
        (self.spam_learned.load(Ordering::Acquire), self.ham_learned.load(Ordering::Acquire))
    }

    /// The counts of a token (zero when unknown). Lock-free, wait-free within [`MAX_PROBE`].
    pub fn get(&self, token: u64) -> Counts {
        let key = key_of(token);
        let mut i = key as usize & self.mask;
        for _ in 0..MAX_PROBE {
            let s = &self.slots[i];
            match s.key.load(Ordering::Acquire) {
                k if k == key => return unpack(s.counts.load(Ordering::Acquire)),
                EMPTY => return Counts::default(),
                _ => i = (i + 1) & self.mask,
            }
        }
        Counts::default()
    }

    /// The counts of many tokens, in order: [`Table::get`] each, with the slot of the token a few
    /// places ahead prefetched, so the cache misses of a message's tokens (the table is far bigger
    /// than the caches; each lookup is a miss) overlap instead of queueing one after the other.
    pub fn get_many(&self, tokens: &[u64]) -> Vec<Counts> {
        const AHEAD: usize = 12;
        for t in tokens.iter().take(AHEAD) {
            self.prefetch(*t);
        }
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if let Some(next) = tokens.get(i + AHEAD) {
                    self.prefetch(*next);
                }
                self.get(*t)
            })
            .collect()
    }

    /// Hints the CPU to fetch `token`'s first slot into the cache (no effect on the result).
    #[inline]
    fn prefetch(&self, token: u64) {
        prefetch_line(&self.slots[key_of(token) as usize & self.mask]);
    }

    /// [`Table::prefetch`], and the token's learnt-day entry too: learning writes both, and the
    /// day array is as far from the caches as the slots.
    #[inline]
    fn prefetch_for_learning(&self, token: u64) {
        self.prefetch(token);
        prefetch_line(&self.touched[key_of(token) as usize & self.mask]);
    }

    /// The index of `token`'s slot and whether this call claimed it (the token was new); `None`
    /// when the probe bound is reached. The caller adds the claims to `used` (once per message:
    /// a locked add per new token cost a few percent of learning).
    fn slot(&self, token: u64) -> Option<(usize, bool)> {
        let key = key_of(token);
        let mut i = key as usize & self.mask;
        for _ in 0..MAX_PROBE {
            let s = &self.slots[i];
            let mut k = s.key.load(Ordering::Acquire);
            if k == EMPTY {
                match s.key.compare_exchange(EMPTY, key, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Some((i, true)),
                    Err(now) => k = now,
                }
            }
            if k == key {
                return Some((i, false));
            }
            i = (i + 1) & self.mask;
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Adds `by` to each token's counts (saturating at u32::MAX) and marks it learnt on `day`;
    /// with `before`, pushes the counts as they were of each token the table held (the others
    /// were unseen): what a classification just before the lesson would have read, at no extra
    /// read.
    fn add(&self, tokens: &[u64], by: Counts, day: u16, mut before: Option<&mut Vec<Counts>>) {
        const AHEAD: usize = 12;
        for t in tokens.iter().take(AHEAD) {
            self.prefetch_for_learning(*t);
        }
        let mut claimed = 0u64;
        for (n, t) in tokens.iter().enumerate() {
            if let Some(next) = tokens.get(n + AHEAD) {
                self.prefetch_for_learning(*next);
            }
            let was = self.slot(*t).map(|(i, new)| {
                claimed += u64::from(new);
                // Most tokens were learnt today already: a read, not a locked write.
                if self.touched[i].load(Ordering::Relaxed) < day {
                    self.touched[i].fetch_max(day, Ordering::Relaxed);
                }
                let was = self.slots[i].counts.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                    let c = unpack(v);
                    Some(pack(Counts { spam: c.spam.saturating_add(by.spam), ham: c.ham.saturating_add(by.ham) }))
                });
                unpack(was.unwrap_or_else(|v| v))
            });
            if let (Some(b), Some(c)) = (before.as_deref_mut(), was) {
                if c != Counts::default() {
                    b.push(c);
                }
            }
        }
        self.used.fetch_add(claimed, Ordering::Relaxed);
    }

    /// Learns one message's (de-duplicated) tokens as spam or ham, today.
    pub fn learn(&self, tokens: &[u64], spam: bool) {
        self.learn_on(tokens, spam, today());
    }

    /// Learns one message's tokens as spam or ham on `day` (a journal replayed).
    pub fn learn_on(&self, tokens: &[u64], spam: bool, day: u16) {
        self.learn_times(tokens, spam, 1, day, None);
    }

    /// Learns one message's tokens `times` times at once on `day` (a lesson reinforced, see
    /// [`crate::reinforce`]); with `before`, also hands back the counts as they were of the
    /// tokens the table held ([`Table::add`]).
    pub fn learn_times(&self, tokens: &[u64], spam: bool, times: u32, day: u16, before: Option<&mut Vec<Counts>>) {
        if times == 0 {
            return;
        }
        self.add(tokens, if spam { Counts { spam: times, ham: 0 } } else { Counts { spam: 0, ham: times } }, day, before);
        // The message count last: a reader never sees more messages than token counts say.
        if spam {
            self.spam_learned.fetch_add(u64::from(times), Ordering::AcqRel);
        } else {
            self.ham_learned.fetch_add(u64::from(times), Ordering::AcqRel);
        }
    }

    /// Every token held with its counts and the day it was last learnt (a consistent pair of
    /// counts each; the set is a snapshot only when no one learns meanwhile).
    pub fn entries(&self) -> impl Iterator<Item = (u64, Counts, u16)> + '_ {
        self.slots.iter().zip(self.touched.iter()).filter_map(|(s, d)| match s.key.load(Ordering::Acquire) {
            EMPTY => None,
            k => Some((k, unpack(s.counts.load(Ordering::Acquire)), d.load(Ordering::Relaxed))),
        })
    }

    /// Puts back a saved token with its counts and day (loading a snapshot); false when full.
    pub fn restore(&self, token: u64, counts: Counts, day: u16) -> bool {
        match self.slot(token) {
            Some((i, new)) => {
                self.used.fetch_add(u64::from(new), Ordering::Relaxed);
                self.slots[i].counts.store(pack(counts), Ordering::Release);
                self.touched[i].store(day, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The day the stalest token was last learnt (`None` when empty). Reads every slot.
    pub fn oldest_day(&self) -> Option<u16> {
        self.entries().map(|e| e.2).min()
    }

    /// A copy for a budget of `tokens` holding at most `keep` tokens: those last learnt before
    /// `oldest` are left out, and when more than `keep` remain, the most recently learnt are kept
    /// (on the same day, those learnt from more messages). Tokens whose counts fell to zero
    /// (unlearnt) are left out too. The message counts carry over. Cost: one pass over the slots
    /// and a selection over the tokens held (O(n)); the caller swaps the copy in.
    pub fn rebuilt(&self, tokens: usize, keep: usize, oldest: u16) -> Table {
        let mut held: Vec<(u64, Counts, u16)> = self.entries().filter(|e| e.2 >= oldest && (e.1.spam > 0 || e.1.ham > 0)).collect();
        if held.len() > keep {
            let rank = |e: &(u64, Counts, u16)| (std::cmp::Reverse(e.2), std::cmp::Reverse(u64::from(e.1.spam) + u64::from(e.1.ham)));
            held.select_nth_unstable_by_key(keep, rank);
            held.truncate(keep);
        }
        let copy = Table::new(tokens);
        for (k, c, d) in held {
            copy.restore(k, c, d);
        }
        let (spam, ham) = self.learned();
        copy.restore_learned(spam, ham);
        copy
    }

    pub fn restore_learned(&self, spam: u64, ham: u64) {
        self.spam_learned.store(spam, Ordering::Release);
        self.ham_learned.store(ham, Ordering::Release);
    }

    /// Takes back a message learnt as `spam` (train on error: a released false positive is
    /// unlearnt as spam, then learnt as ham). Counts never go below zero.
    pub fn unlearn(&self, tokens: &[u64], spam: bool) {
        self.unlearn_times(tokens, spam, 1);
    }

    /// Takes back a message learnt `times` times (a reinforced lesson), or as many times as
    /// messages of that kind are counted if fewer.
    pub fn unlearn_times(&self, tokens: &[u64], spam: bool, times: u32) {
        let counter = if spam { &self.spam_learned } else { &self.ham_learned };
        let Ok(had) = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n > 0 && times > 0).then(|| n.saturating_sub(u64::from(times)))) else {
            return;
        };
        let times = times.min(u32::try_from(had).unwrap_or(u32::MAX));
        for t in tokens {
            let key = key_of(*t);
            let mut i = key as usize & self.mask;
            for _ in 0..MAX_PROBE {
                let s = &self.slots[i];
                match s.key.load(Ordering::Acquire) {
                    k if k == key => {
                        let _ = s.counts.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                            let c = unpack(v);
                            Some(pack(if spam { Counts { spam: c.spam.saturating_sub(times), ..c } } else { Counts { ham: c.ham.saturating_sub(times), ..c } }))
                        });
                        break;
                    }
                    EMPTY => break,
                    _ => i = (i + 1) & self.mask,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn learn_get_unlearn() {
        let t = Table::new(100);
        assert_eq!(t.capacity(), 1024);
        t.learn(&[1, 2], true);
        t.learn(&[2, 3], false);
        assert_eq!(t.get(1), Counts { spam: 1, ham: 0 });
        assert_eq!(t.get(2), Counts { spam: 1, ham: 1 });
        assert_eq!(t.get(0), t.get(1), "0 is read as 1 (a hash of 0 is astronomically rare)");
        assert_eq!(t.get(99), Counts::default());
        assert_eq!(t.learned(), (1, 1));
        assert_eq!(t.len(), 3);
        t.unlearn(&[2, 3], false);
        assert_eq!(t.get(2), Counts { spam: 1, ham: 0 });
        assert_eq!(t.learned(), (1, 0));
        t.unlearn(&[2, 3], false);
        assert_eq!(t.learned(), (1, 0), "nothing left to take back");
        assert_eq!(t.get(3), Counts::default());
    }

    #[test]
    fn colliding_tokens_probe_and_a_full_table_drops() {
        let t = Table::new(10);
        // Same low bits: one chain.
        let tokens: Vec<u64> = (1..=MAX_PROBE as u64 + 5).map(|i| i << 20).collect();
        t.learn(&tokens, true);
        for tok in &tokens[..MAX_PROBE] {
            assert_eq!(t.get(*tok).spam, 1);
        }
        assert_eq!(t.dropped(), 5);
        assert_eq!(t.get(tokens[MAX_PROBE]), Counts::default());
    }

    #[test]
    fn concurrent_writers_and_readers() {
        let t = Arc::new(Table::new(50_000));
        let tokens: Vec<u64> = (0..20_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).collect();
        let rounds = 50;
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (t, tokens) = (Arc::clone(&t), tokens.clone());
                std::thread::spawn(move || {
                    for r in 0..rounds {
                        let part: Vec<u64> = tokens.iter().copied().skip((r + w) % 3).step_by(3).collect();
                        t.learn(&part, w == 0);
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (t, tokens) = (Arc::clone(&t), tokens.clone());
                std::thread::spawn(move || {
                    let mut last = vec![Counts::default(); tokens.len()];
                    for _ in 0..20 {
                        for (i, tok) in tokens.iter().enumerate() {
                            let c = t.get(*tok);
                            assert!(c.spam >= last[i].spam && c.ham >= last[i].ham, "counts only grow while learning");
                            assert!(c.spam <= rounds as u32 && c.ham <= rounds as u32);
                            last[i] = c;
                        }
                    }
                })
            })
            .collect();
        for h in writers.into_iter().chain(readers) {
            h.join().unwrap();
        }
        // Every update landed: each token was in a third of each writer's rounds.
        let (spam_total, ham_total): (u64, u64) = tokens.iter().map(|x| t.get(*x)).fold((0, 0), |a, c| (a.0 + u64::from(c.spam), a.1 + u64::from(c.ham)));
        let expected = |w: usize| -> u64 { (0..rounds).map(|r| tokens.iter().skip((r + w) % 3).step_by(3).count() as u64).sum() };
        assert_eq!((spam_total, ham_total), (expected(0), expected(1)));
        assert_eq!(t.learned(), (rounds as u64, rounds as u64));
        assert_eq!(t.len(), tokens.len());
        assert_eq!(t.dropped(), 0);
    }
}
