//! The token table: spam and ham counts and a learnt weight per 64-bit token, shared by every
//! core, read without locks while learning writes into it.
//!
//! A fixed array of slots (a power of two, sized from the token budget at a load of at most
//! 3/4), open addressing with linear probing. A slot is a key word, a counts word, the token's
//! weight and the day it was last learnt, all atomics: the spam count in the high and the ham
//! count in the low 32 bits of one `AtomicU64`, so a reader always sees a pair that was true at
//! some instant, and learning a message is one `fetch_add` per token. Keys are claimed with a
//! compare-and-swap from empty, so any number of writers may learn at once; a claimed key never
//! moves or disappears, so readers need no fence beyond acquire loads.
//!
//! The weight (an `f32`) is the token's coefficient in an online logistic regression over the
//! same tokens ([`crate::classify::fuse`] joins its answer to the counts' chi-square one): each
//! lesson is one gradient step, taken by [`Table::learn_lesson`] in the pass that adds the
//! counts. Weights are written with a plain load and store: the gateway has one learner, and
//! writers learning at once may lose a step of each other's (never a count).
//!
//! Stale tokens are evicted by building a smaller copy ([`Table::rebuilt`]) that the owner swaps
//! in for the old one (slots are never emptied in place, so a reader never sees a key with
//! another token's counts).
//!
//! Costs: a lookup or an update is one hash-indexed probe and, at 3/4 load, a few more on
//! average (bounded by [`MAX_PROBE`]). Memory is 24 bytes a slot, fixed at creation; a token's
//! counts, weight and day are read and written in the same one or two cache lines. Guarantees:
//! never blocks, never allocates after creation, never loses a count that found its slot; when
//! the probe bound is reached (the table is full) the token is not learnt and [`Table::dropped`]
//! counts it — eviction runs before that in the gateway.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
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
    /// The token's logistic-regression weight (`f32` bits).
    weight: AtomicU32,
    /// Day ([`today`]) the token was last learnt.
    day: AtomicU16,
}

/// A token held, as [`Table::entries`] lists it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    pub token: u64,
    pub counts: Counts,
    pub day: u16,
    pub weight: f32,
}

/// A message's tokens as classification reads them ([`Table::read`]).
#[derive(Debug, Default)]
pub struct Read {
    /// Each token's counts, in order (zero when unknown).
    pub counts: Vec<Counts>,
    /// The logistic regression's log-odds of spam: the weights of the tokens held, summed over
    /// the square root of the tokens' number (every message a vector of length one).
    pub logit: f64,
}

pub struct Table {
    /// In huge pages where the kernel allows (huge.rs): every lookup is a random slot.
    slots: HugeArray<Slot>,
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

/// The logistic regression's learning rate when none is given (`bayes.lr_rate`'s default).
pub const DEFAULT_RATE: f64 = 32.0;

/// Slot indexes a lesson stepped, kept by the thread between lessons up to this many.
const STEPPED_KEPT: usize = 1 << 16;

thread_local! {
    /// [`Table::add`]'s list of the slots whose weight a lesson steps (reused; taken out while in
    /// use, so re-entry just allocates).
    static STEPPED: std::cell::Cell<Vec<usize>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `1 / sqrt(n)`: the value of each of a message's `n` tokens in a vector of length one.
#[inline]
fn unit(n: usize) -> f64 {
    1.0 / (n.max(1) as f64).sqrt()
}

/// The logistic function: log-odds to a probability.
#[inline]
pub fn sigmoid(logit: f64) -> f64 {
    1.0 / (1.0 + (-logit).exp())
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
            // SAFETY: all-zero is a valid Slot (EMPTY key, no counts, weight 0.0, day 0).
            slots: unsafe { HugeArray::zeroed(slots) },
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
        self.find(token).map_or_else(Counts::default, |s| unpack(s.counts.load(Ordering::Acquire)))
    }

    /// The weight of a token (0 when unknown).
    pub fn weight(&self, token: u64) -> f32 {
        self.find(token).map_or(0.0, |s| f32::from_bits(s.weight.load(Ordering::Relaxed)))
    }

    /// The slot holding `token`, if any.
    #[inline]
    fn find(&self, token: u64) -> Option<&Slot> {
        let key = key_of(token);
        let mut i = key as usize & self.mask;
        for _ in 0..MAX_PROBE {
            let s = &self.slots[i];
            match s.key.load(Ordering::Acquire) {
                k if k == key => return Some(s),
                EMPTY => return None,
                _ => i = (i + 1) & self.mask,
            }
        }
        None
    }

    /// What classifying a message reads: every token's counts and the logistic regression's
    /// log-odds ([`Read`]), in one pass over the slots, prefetched as [`Table::get_many`] does.
    pub fn read(&self, tokens: &[u64]) -> Read {
        const AHEAD: usize = 12;
        for t in tokens.iter().take(AHEAD) {
            self.prefetch(*t);
        }
        let mut weights = 0.0f64;
        let counts = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if let Some(next) = tokens.get(i + AHEAD) {
                    self.prefetch(*next);
                }
                match self.find(*t) {
                    Some(s) => {
                        weights += f64::from(f32::from_bits(s.weight.load(Ordering::Relaxed)));
                        unpack(s.counts.load(Ordering::Acquire))
                    }
                    None => Counts::default(),
                }
            })
            .collect();
        Read { counts, logit: weights * unit(tokens.len()) }
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

    /// Hints the CPU to fetch `token`'s first slot into the cache, both lines of it when it
    /// spans two (no effect on the result).
    #[inline]
    fn prefetch(&self, token: u64) {
        let s = &self.slots[key_of(token) as usize & self.mask];
        prefetch_line(&s.key);
        prefetch_line(&s.day);
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
    /// read. With a `rate`, also one gradient step of the logistic regression towards the
    /// lesson's label ([`Table::learn_lesson`]).
    fn add(&self, tokens: &[u64], by: Counts, day: u16, mut before: Option<&mut Vec<Counts>>, rate: Option<f64>) {
        const AHEAD: usize = 12;
        for t in tokens.iter().take(AHEAD) {
            self.prefetch(*t);
        }
        let mut claimed = 0u64;
        let mut weights = 0.0f64;
        let mut scratch = STEPPED.with(|c| c.take());
        scratch.clear();
        for (n, t) in tokens.iter().enumerate() {
            if let Some(next) = tokens.get(n + AHEAD) {
                self.prefetch(*next);
            }
            let was = self.slot(*t).map(|(i, new)| {
                claimed += u64::from(new);
                let s = &self.slots[i];
                // Most tokens were learnt today already: a read, not a locked write.
                if s.day.load(Ordering::Relaxed) < day {
                    s.day.fetch_max(day, Ordering::Relaxed);
                }
                if rate.is_some() {
                    weights += f64::from(f32::from_bits(s.weight.load(Ordering::Relaxed)));
                    scratch.push(i);
                }
                let was = s.counts.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
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
        if let Some(rate) = rate {
            // The gradient of the log-loss on a vector of length one: every token's weight moves
            // by the same step, the error (label minus the probability the weights gave just
            // before) times the rate, over the square root of the tokens' number. The slots are
            // in the caches from the pass above; walked backwards, the nearest cache's first.
            let x = unit(tokens.len());
            let label = if by.spam > 0 { 1.0 } else { 0.0 };
            let step = (rate * (label - sigmoid(weights * x)) * x) as f32;
            for &i in scratch.iter().rev() {
                let w = &self.slots[i].weight;
                w.store((f32::from_bits(w.load(Ordering::Relaxed)) + step).to_bits(), Ordering::Relaxed);
            }
        }
        if scratch.capacity() <= STEPPED_KEPT {
            STEPPED.with(|c| c.replace(scratch));
        }
    }

    /// Learns one message's (de-duplicated) tokens as spam or ham, today, with the default
    /// learning rate.
    pub fn learn(&self, tokens: &[u64], spam: bool) {
        self.learn_on(tokens, spam, today());
    }

    /// Learns one message's tokens as spam or ham on `day`, with the default learning rate.
    pub fn learn_on(&self, tokens: &[u64], spam: bool, day: u16) {
        self.learn_lesson(tokens, spam, 1, day, None, DEFAULT_RATE);
    }

    /// Learns one lesson: the message's tokens counted `times` times on `day` (a lesson
    /// reinforced, see [`crate::reinforce`]) and one step of the logistic regression at `rate`
    /// (0: none); with `before`, also hands back the counts as they were of the tokens the table
    /// held ([`Table::add`]).
    pub fn learn_lesson(&self, tokens: &[u64], spam: bool, times: u32, day: u16, before: Option<&mut Vec<Counts>>, rate: f64) {
        self.count(tokens, spam, times, day, before, (rate > 0.0).then_some(rate));
    }

    /// Counts one message's tokens `times` more times on `day`, without a step of the logistic
    /// regression (a lesson's reinforcement: [`crate::learn_reinforced`]).
    pub fn learn_times(&self, tokens: &[u64], spam: bool, times: u32, day: u16) {
        self.count(tokens, spam, times, day, None, None);
    }

    fn count(&self, tokens: &[u64], spam: bool, times: u32, day: u16, before: Option<&mut Vec<Counts>>, rate: Option<f64>) {
        if times == 0 {
            return;
        }
        self.add(tokens, if spam { Counts { spam: times, ham: 0 } } else { Counts { spam: 0, ham: times } }, day, before, rate);
        // The message count last: a reader never sees more messages than token counts say.
        if spam {
            self.spam_learned.fetch_add(u64::from(times), Ordering::AcqRel);
        } else {
            self.ham_learned.fetch_add(u64::from(times), Ordering::AcqRel);
        }
    }

    /// Every token held with its counts, day and weight (a consistent pair of counts each; the
    /// set is a snapshot only when no one learns meanwhile).
    pub fn entries(&self) -> impl Iterator<Item = Held> + '_ {
        self.slots.iter().filter_map(|s| match s.key.load(Ordering::Acquire) {
            EMPTY => None,
            token => Some(Held {
                token,
                counts: unpack(s.counts.load(Ordering::Acquire)),
                day: s.day.load(Ordering::Relaxed),
                weight: f32::from_bits(s.weight.load(Ordering::Relaxed)),
            }),
        })
    }

    /// Puts back a saved token (loading a snapshot); false when full.
    pub fn restore(&self, h: Held) -> bool {
        match self.slot(h.token) {
            Some((i, new)) => {
                self.used.fetch_add(u64::from(new), Ordering::Relaxed);
                let s = &self.slots[i];
                s.counts.store(pack(h.counts), Ordering::Release);
                s.day.store(h.day, Ordering::Relaxed);
                s.weight.store(h.weight.to_bits(), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The day the stalest token was last learnt (`None` when empty). Reads every slot.
    pub fn oldest_day(&self) -> Option<u16> {
        self.entries().map(|e| e.day).min()
    }

    /// A copy for a budget of `tokens` holding at most `keep` tokens: those last learnt before
    /// `oldest` are left out, and when more than `keep` remain, the most recently learnt are kept
    /// (on the same day, those learnt from more messages). Tokens whose counts fell to zero
    /// (unlearnt) are left out too. The message counts carry over. Cost: one pass over the slots
    /// and a selection over the tokens held (O(n)); the caller swaps the copy in.
    pub fn rebuilt(&self, tokens: usize, keep: usize, oldest: u16) -> Table {
        let mut held: Vec<Held> = self.entries().filter(|e| e.day >= oldest && (e.counts.spam > 0 || e.counts.ham > 0)).collect();
        if held.len() > keep {
            let rank = |e: &Held| (std::cmp::Reverse(e.day), std::cmp::Reverse(u64::from(e.counts.spam) + u64::from(e.counts.ham)));
            held.select_nth_unstable_by_key(keep, rank);
            held.truncate(keep);
        }
        let copy = Table::new(tokens);
        for h in held {
            copy.restore(h);
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
    fn the_regression_steps_towards_each_label() {
        let t = Table::new(1000);
        // Four tokens, a vector of length one: each worth 1/2.
        t.learn_lesson(&[1, 2, 3, 4], true, 1, 7, None, 2.0);
        // From log-odds 0 (p 0.5): each weight moves by 2 * (1 - 0.5) * 1/2.
        assert_eq!(t.weight(1), 0.5);
        assert!((t.read(&[1, 2, 3, 4]).logit - 1.0).abs() < 1e-12);
        // A ham sharing two tokens: p = sigmoid(0.5 * 2 * 1/2); its tokens step down.
        t.learn_lesson(&[1, 2, 5, 6], false, 1, 7, None, 2.0);
        let step = (2.0 * (0.0 - sigmoid(0.5)) * 0.5) as f32;
        assert_eq!((t.weight(1), t.weight(5), t.weight(3)), (0.5 + step, step, 0.5));
        // Unknown tokens weigh nothing but count in the vector's length.
        let r = t.read(&[3, 99]);
        assert_eq!(r.counts, vec![Counts { spam: 1, ham: 0 }, Counts::default()]);
        assert!((r.logit - 0.5 / 2f64.sqrt()).abs() < 1e-9);
        // Counting again (reinforcement) and rate 0 take no step.
        t.learn_times(&[3], true, 2, 7);
        t.learn_lesson(&[3], true, 1, 7, None, 0.0);
        assert_eq!((t.weight(3), t.get(3).spam), (0.5, 4));
        // Eviction keeps a kept token's weight.
        let copy = t.rebuilt(1000, 1000, 0);
        assert_eq!((copy.weight(1), copy.weight(5)), (t.weight(1), t.weight(5)));
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

    /// Eight writers racing to claim the same new keys, in different orders, in a table loaded
    /// near its limit (long probe chains, many compare-and-swap losses): every token ends up in
    /// exactly one slot, and every count of every writer is there.
    #[test]
    fn claim_races_never_split_a_token() {
        let tokens: Vec<u64> = (0..3_000u64).map(|i| i.wrapping_mul(0xff51_afd7_ed55_8ccd) | 1).collect();
        for round in 0..4u64 {
            let t = Arc::new(Table::new(3_000));
            let writers: Vec<_> = (0..8u64)
                .map(|w| {
                    let (t, mut mine) = (Arc::clone(&t), tokens.clone());
                    std::thread::spawn(move || {
                        let mut x = (w + 1) * 0x9e37_79b9 + round;
                        for i in (1..mine.len()).rev() {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            mine.swap(i, (x % (i as u64 + 1)) as usize);
                        }
                        for chunk in mine.chunks(100) {
                            t.learn(chunk, w % 2 == 0);
                        }
                    })
                })
                .collect();
            for h in writers {
                h.join().unwrap();
            }
            let mut keys: Vec<u64> = t.entries().map(|h| h.token).collect();
            let held = keys.len();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), held, "a token was claimed twice");
            assert_eq!((held, t.dropped()), (tokens.len(), 0), "at 3/4 load every token finds a slot");
            for tok in &tokens {
                let c = t.get(*tok);
                assert_eq!((c.spam, c.ham), (4, 4), "every writer's count of every token");
            }
            assert_eq!(t.len(), held);
        }
    }
}
