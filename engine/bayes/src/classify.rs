//! Robinson-Fisher classification: each token's spam and ham counts give a smoothed spam
//! probability; the most telling tokens are combined with Fisher's chi-square method into a spam
//! and a ham indication, whose difference is the message's probability of being spam. [`fuse`]
//! then joins that with the logistic regression learnt beside the counts (`crate::table`).
//!
//! Pure arithmetic over the counts handed in (the table is elsewhere); cost linear in the tokens
//! plus a partial sort of the telling ones. Never answers before [`Params::min_learned`] spam and
//! ham were learnt (the reference products' MinEmailsForBayesKickIn).

/// The knobs of the classifier.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Robinson's strength of the background belief (s) and the belief itself (x).
    pub strength: f64,
    pub background: f64,
    /// Tokens whose probability is closer than this to 0.5 are left out.
    pub min_distance: f64,
    /// At most this many tokens (the most telling) are combined.
    pub max_tokens: usize,
    /// Spam and ham messages each that must have been learnt before any answer.
    pub min_learned: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params { strength: 0.45, background: 0.5, min_distance: 0.1, max_tokens: 150, min_learned: 200 }
    }
}

/// Counts of one token: messages of each kind it was learnt from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub spam: u32,
    pub ham: u32,
}

/// One token's smoothed spam probability (Robinson's f(w)): with `a` and `b` the token's share
/// of the spam and of the ham learnt, n its count and s, x the strength and background belief,
/// `(s·x + n·a/(a+b)) / (s + n)`, worked out with one division (the two fractions over a common
/// denominator) and the reciprocals of the messages learnt (once per message in
/// [`spam_probability`]).
pub fn token_probability(c: Counts, spam_learned: u64, ham_learned: u64, p: &Params) -> f64 {
    Reciprocals::of(spam_learned, ham_learned).probability(c, p)
}

/// The reciprocals of the spam and ham messages learnt, worked out once per message.
#[derive(Clone, Copy)]
struct Reciprocals {
    spam: f64,
    ham: f64,
}

impl Reciprocals {
    fn of(spam_learned: u64, ham_learned: u64) -> Reciprocals {
        Reciprocals { spam: 1.0 / spam_learned.max(1) as f64, ham: 1.0 / ham_learned.max(1) as f64 }
    }

    /// [`token_probability`] without a branch (a token never seen gets the background belief
    /// by a select), so a loop over many computes several at once.
    #[inline]
    fn probability(self, c: Counts, p: &Params) -> f64 {
        let n = f64::from(c.spam) + f64::from(c.ham);
        let a = f64::from(c.spam) * self.spam;
        let b = f64::from(c.ham) * self.ham;
        let f = (p.strength * p.background * (a + b) + n * a) / ((p.strength + n) * (a + b));
        if n == 0.0 { p.background } else { f }
    }
}

/// The probability of two answers joined: the chi-square one (`counts`, a probability) and the
/// logistic regression's log-odds (`logit`), by averaging their log-odds (Lynam and Cormack's
/// on-line filter fusion, SIGIR 2006: averaged log-odds of different filters beat each alone).
/// The chi-square answer's log-odds is bounded at ±ln(10^12) ≈ ±27.6, so where it is sure, it
/// stays sure, and where it is unsure (0.5: strong evidence both ways, or none), the logistic
/// regression decides.
pub fn fuse(counts: f64, logit: f64) -> f64 {
    const BOUND: f64 = 1e-12;
    let c = counts.clamp(BOUND, 1.0 - BOUND);
    let joined = ((c / (1.0 - c)).ln() + logit) / 2.0;
    1.0 / (1.0 + (-joined).exp())
}

/// The upper tail of the chi-square distribution for `x2` with `v` (even) degrees of freedom.
pub fn chi2_q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// The spam probability of a message from its tokens' counts: `None` before enough was learnt
/// or when no token tells anything.
///
/// Cost: one smoothed probability per token (one division, several at once), a linear-time
/// selection of the most telling ones on integer keys, and two logarithms per four tokens
/// selected. The order the counts come in changes the result by rounding at most.
pub fn spam_probability(counts: impl Iterator<Item = Counts>, spam_learned: u64, ham_learned: u64, p: &Params) -> Option<f64> {
    if spam_learned < p.min_learned || ham_learned < p.min_learned {
        return None;
    }
    // Buffers kept by the thread, so a message allocates nothing (fresh ones should the
    // thread's be in use, which no caller does).
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => {
            let (probabilities, keys) = &mut *buffers;
            let answer = select_and_combine(counts, spam_learned, ham_learned, p, probabilities, keys);
            if keys.len() > SCRATCH_KEPT {
                (probabilities.clear(), keys.clear());
                (probabilities.shrink_to(SCRATCH_KEPT), keys.shrink_to(SCRATCH_KEPT));
            }
            answer
        }
        Err(_) => select_and_combine(counts, spam_learned, ham_learned, p, &mut Vec::new(), &mut Vec::new()),
    })
}

/// Tokens whose room the thread's buffers keep between messages (larger messages are rare: the
/// room they took is given back).
const SCRATCH_KEPT: usize = 1 << 16;

thread_local! {
    /// [`spam_probability`]'s buffers: a message's token probabilities and the telling ones'
    /// keys (8 and 16 bytes a token).
    static SCRATCH: std::cell::RefCell<(Vec<f64>, Vec<u128>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// [`spam_probability`] past the kick-in, in the buffers given.
fn select_and_combine(counts: impl Iterator<Item = Counts>, spam_learned: u64, ham_learned: u64, p: &Params, probabilities: &mut Vec<f64>, keys: &mut Vec<u128>) -> Option<f64> {
    // Two passes: the probabilities without a branch (the compiler computes several at once),
    // then the telling ones' keys (the probability is recovered from its key at the end).
    let r = Reciprocals::of(spam_learned, ham_learned);
    probabilities.clear();
    probabilities.extend(counts.map(|c| r.probability(c, p)));
    // Every key is written and the length moves on only for the telling ones: no branch to
    // mispredict on which tokens tell.
    if keys.len() < probabilities.len() {
        keys.resize(probabilities.len(), 0);
    }
    let mut kept = 0;
    for &f in probabilities.iter() {
        let distance = (f - 0.5).abs();
        if let Some(slot) = keys.get_mut(kept) {
            *slot = selection_key(f, distance);
        }
        kept += usize::from(distance >= p.min_distance);
    }
    let telling = &mut keys[..kept];
    if telling.is_empty() {
        return None;
    }
    if telling.len() > p.max_tokens {
        telling.select_nth_unstable(p.max_tokens);
    }
    Some(combine(&telling[..telling.len().min(p.max_tokens)]))
}

/// Fisher's combination of the selected tokens (given by their keys) into the message's spam
/// probability.
fn combine(telling: &[u128]) -> f64 {
    let n = telling.len();
    // Sums of logs (a product of them all would underflow), one logarithm per four factors: f
    // is kept inside (0, 1) by the smoothing, each factor is clamped to at least 1e-70, so a
    // product of four stays above 1e-280.
    let (mut ln_ham, mut ln_spam) = (0.0, 0.0);
    for four in telling.chunks(4) {
        let (mut ham, mut spam) = (1.0, 1.0);
        for f in four.iter().map(|k| token_probability_of_key(*k)) {
            ham *= f.max(1e-70);
            spam *= (1.0 - f).max(1e-70);
        }
        ln_ham += f64::ln(ham);
        ln_spam += f64::ln(spam);
    }
    let h = chi2_q(-2.0 * ln_ham, 2 * n);
    let s = chi2_q(-2.0 * ln_spam, 2 * n);
    ((1.0 + h - s) / 2.0).clamp(0.0, 1.0)
}

/// The odd multiplier of the scramble in a selection key's low half.
const SCRAMBLE: u64 = 0x9e37_79b9_7f4a_7c15;

/// A telling token's selection key, from its probability `f` and `distance` from 0.5: the most
/// telling first (the distance, whose bits order like the number, in the high half), equally
/// telling ones (f and 1 - f) by a fixed scramble of f's bits in the low half, so which make the
/// cut depends neither on the order the tokens came in nor on which side they lean to.
fn selection_key(f: f64, distance: f64) -> u128 {
    let scramble = f.to_bits().wrapping_mul(SCRAMBLE).rotate_left(29);
    (u128::from(u64::MAX - distance.to_bits()) << 64) | u128::from(scramble)
}

/// The token probability a selection key was made from: the scramble of its low half is a
/// bijection (a multiplication by an odd number modulo 2^64, then a rotation), undone here.
fn token_probability_of_key(key: u128) -> f64 {
    /// The inverse of [`SCRAMBLE`] modulo 2^64 (Newton's iteration: each step doubles the
    /// correct low bits, from 3 for any odd number).
    const INVERSE: u64 = {
        let m: u64 = SCRAMBLE;
        let mut x = m;
        let mut i = 0;
        while i < 5 {
            x = x.wrapping_mul(2u64.wrapping_sub(m.wrapping_mul(x)));
            i += 1;
        }
        x
    };
    f64::from_bits((key as u64).rotate_right(29).wrapping_mul(INVERSE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Params {
        Params { min_learned: 10, ..Params::default() }
    }

    #[test]
    fn token_probabilities() {
        let p = p();
        assert_eq!(token_probability(Counts::default(), 100, 100, &p), 0.5);
        let spammy = token_probability(Counts { spam: 50, ham: 0 }, 100, 100, &p);
        let hammy = token_probability(Counts { spam: 0, ham: 50 }, 100, 100, &p);
        assert!(spammy > 0.99 && hammy < 0.01, "{spammy} {hammy}");
        // One sighting is weak evidence: pulled towards the background.
        let once = token_probability(Counts { spam: 1, ham: 0 }, 100, 100, &p);
        assert!(once > 0.6 && once < spammy);
        // Ratios, not raw counts: 10 of 10 ham against 10 of 1000 spam is a ham token.
        assert!(token_probability(Counts { spam: 10, ham: 10 }, 1000, 10, &p) < 0.05);
    }

    #[test]
    fn a_key_gives_back_its_probability() {
        let p = p();
        for c in [Counts { spam: 0, ham: 1 }, Counts { spam: 1, ham: 0 }, Counts { spam: 3000, ham: 7 }, Counts { spam: 17, ham: 16 }] {
            let f = token_probability(c, 1000, 900, &p);
            assert_eq!(token_probability_of_key(selection_key(f, (f - 0.5).abs())).to_bits(), f.to_bits());
        }
    }

    #[test]
    fn fusion_averages_log_odds() {
        assert_eq!(fuse(0.5, 0.0), 0.5);
        // Unsure counts: the regression decides, at half its log-odds.
        assert!((fuse(0.5, 4.0) - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-12);
        assert!(fuse(0.5, -4.0) < 0.2);
        // Sure counts stay sure against a doubting regression; agreeing ones are surer.
        assert!(fuse(1.0, -6.0) > 0.9999 && fuse(0.0, 6.0) < 0.0001);
        assert!(fuse(0.9, 3.0) > 0.9 && fuse(0.1, -3.0) < 0.1);
        // Monotone in each, and finite at the ends.
        assert!(fuse(0.7, 1.0) < fuse(0.8, 1.0) && fuse(0.7, 1.0) < fuse(0.7, 2.0));
        assert!(fuse(1.0, f64::MAX).is_finite() && fuse(0.0, f64::MIN) >= 0.0);
    }

    #[test]
    fn chi_square_tail() {
        assert!((chi2_q(0.0, 10) - 1.0).abs() < 1e-12);
        assert!((chi2_q(2.0, 2) - (-1.0f64).exp()).abs() < 1e-12);
        assert!(chi2_q(500.0, 10) < 1e-100);
        assert!(chi2_q(1e6, 300) >= 0.0);
    }

    #[test]
    fn combining() {
        let p = p();
        let spam = std::iter::repeat_n(Counts { spam: 40, ham: 1 }, 20);
        let ham = std::iter::repeat_n(Counts { spam: 1, ham: 40 }, 20);
        assert!(spam_probability(spam, 100, 100, &p).unwrap() > 0.99);
        assert!(spam_probability(ham, 100, 100, &p).unwrap() < 0.01);
        // Evidence both ways: unsure.
        let mixed = std::iter::repeat_n(Counts { spam: 40, ham: 1 }, 10).chain(std::iter::repeat_n(Counts { spam: 1, ham: 40 }, 10));
        let m = spam_probability(mixed, 100, 100, &p).unwrap();
        assert!((0.3..0.7).contains(&m), "{m}");
        // Nothing telling, or not enough learnt: no answer.
        assert_eq!(spam_probability(std::iter::repeat_n(Counts { spam: 5, ham: 5 }, 5), 100, 100, &p), None);
        assert_eq!(spam_probability(std::iter::once(Counts { spam: 40, ham: 0 }), 9, 100, &p), None);
        // Many tokens: only the most telling count, and the answer stays finite.
        let many = (0..5000).map(|i| Counts { spam: 30 + i % 7, ham: i % 2 });
        let v = spam_probability(many, 100, 100, &p).unwrap();
        assert!(v.is_finite() && v > 0.99);
        // The order the counts come in changes nothing but rounding.
        let mixed: Vec<Counts> = (0..3000u32).map(|i| Counts { spam: (i * 7919) % 40, ham: (i * 104_729) % 23 }).collect();
        let forward = spam_probability(mixed.iter().copied(), 500, 700, &p).unwrap();
        let backward = spam_probability(mixed.iter().rev().copied(), 500, 700, &p).unwrap();
        assert!((forward - backward).abs() < 1e-12, "{forward} {backward}");
    }
}
