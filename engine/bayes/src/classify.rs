//! Robinson-Fisher classification: each token's spam and ham counts give a smoothed spam
//! probability; the most telling tokens are combined with Fisher's chi-square method into a spam
//! and a ham indication, whose difference is the message's probability of being spam.
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

/// One token's smoothed spam probability (Robinson's f(w)).
pub fn token_probability(c: Counts, spam_learned: u64, ham_learned: u64, p: &Params) -> f64 {
    let n = f64::from(c.spam) + f64::from(c.ham);
    if n == 0.0 {
        return p.background;
    }
    let spam_ratio = f64::from(c.spam) / spam_learned.max(1) as f64;
    let ham_ratio = f64::from(c.ham) / ham_learned.max(1) as f64;
    let raw = spam_ratio / (spam_ratio + ham_ratio);
    (p.strength * p.background + n * raw) / (p.strength + n)
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
pub fn spam_probability(counts: impl Iterator<Item = Counts>, spam_learned: u64, ham_learned: u64, p: &Params) -> Option<f64> {
    if spam_learned < p.min_learned || ham_learned < p.min_learned {
        return None;
    }
    let mut telling: Vec<f64> = counts
        .map(|c| token_probability(c, spam_learned, ham_learned, p))
        .filter(|f| (f - 0.5).abs() >= p.min_distance)
        .collect();
    if telling.is_empty() {
        return None;
    }
    if telling.len() > p.max_tokens {
        // Equally telling values (f and 1 - f) are ordered by a fixed scramble of their bits:
        // which of them make the cut then depends neither on the order the tokens came in nor
        // on which side they lean to.
        let scramble = |f: &f64| f.to_bits().wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        telling.select_nth_unstable_by(p.max_tokens, |a, b| {
            (b - 0.5).abs().total_cmp(&(a - 0.5).abs()).then_with(|| scramble(a).cmp(&scramble(b)))
        });
        telling.truncate(p.max_tokens);
    }
    let n = telling.len();
    // Sums of logs (products would underflow); f is kept inside (0, 1) by the smoothing.
    let ln_ham: f64 = telling.iter().map(|f| f.max(1e-200).ln()).sum();
    let ln_spam: f64 = telling.iter().map(|f| (1.0 - f).max(1e-200).ln()).sum();
    let h = chi2_q(-2.0 * ln_ham, 2 * n);
    let s = chi2_q(-2.0 * ln_spam, 2 * n);
    Some(((1.0 + h - s) / 2.0).clamp(0.0, 1.0))
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
    }
}
