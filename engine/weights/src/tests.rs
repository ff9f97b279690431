use super::*;

/// A small deterministic generator (xorshift), so the synthetic mail is the same every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.next() < p
    }
}

// Symbols of the synthetic mail: 0 fires on 60 % of spam and 1 % of ham (good evidence the hand
// set at 1 point); 1 fires on 10 % of spam and 10 % of ham (no evidence, hand-set at 6 points,
// like PHISH_TEXT_MISMATCH on newsletters); 2 fires on no sample at all (hand-set at 3).
fn mail(n: usize, seed: u64) -> Vec<Sample> {
    let mut r = Rng(seed);
    (0..n)
        .map(|k| {
            let spam = k % 2 == 0;
            let mut x = Vec::new();
            if r.chance(if spam { 0.6 } else { 0.01 }) {
                x.push((0, 1.0));
            }
            if r.chance(0.1) {
                x.push((1, 1.0));
            }
            // Bayes: mostly right, sure of itself, wrong on 3 % each way.
            let right = r.chance(0.97);
            let sure = 4.0 + 6.0 * r.next();
            let bayes = if spam == right { sure } else { -sure };
            Sample { x, bayes, spam }
        })
        .collect()
}

fn scale() -> Scale {
    Scale::anchored(5.0, 0.9, 10.0, 0.999).unwrap()
}

fn prior() -> Prior {
    let s = scale();
    Prior {
        mean: Weights { bias: s.log_odds_of(0.0), bayes: s.weight_of(8.0) / 10.0, symbols: vec![s.weight_of(1.0), s.weight_of(6.0), s.weight_of(3.0)] },
        sd_symbol: 1.0,
        sd_bayes: 1.0,
        sd_bias: 3.0,
    }
}

#[test]
fn evidence_moves_weights_and_its_absence_leaves_the_prior() {
    let p = prior();
    let f = fit(&mail(4000, 7), &p);
    assert!(f.converged, "{f:?}");
    let w = &f.weights;
    assert!(w.symbols[0] > p.mean.symbols[0] + 0.5, "the telling symbol gains weight: {w:?}");
    assert!(w.symbols[1].abs() < 0.5, "the symbol that tells nothing loses its hand-set weight: {w:?}");
    assert_eq!(w.symbols[2], p.mean.symbols[2], "a symbol no sample carries keeps its prior");
    assert!(w.bayes > 0.3, "Bayes carries weight: {w:?}");
    assert_eq!(f.seen[2], 0);
    assert!(f.seen[0] > 1000 && f.seen[1] > 300);
}

#[test]
fn few_lessons_stay_near_the_prior() {
    let p = prior();
    let few = fit(&mail(6, 11), &p);
    let many = fit(&mail(4000, 11), &p);
    let moved = |f: &Fit| (f.weights.symbols[1] - p.mean.symbols[1]).abs();
    assert!(moved(&few) < moved(&many), "few: {:?} many: {:?}", few.weights, many.weights);
    assert!(moved(&few) < 1.0);
}

#[test]
fn the_fit_is_the_minimum() {
    // Every weight nudged either way raises the objective: Newton stopped at the minimum.
    let p = prior();
    let samples = mail(1500, 3);
    let f = fit(&samples, &p);
    let objective = |w: &Weights| {
        let one = fit(&[], &Prior { mean: w.clone(), ..p.clone() });
        assert_eq!(&one.weights, w);
        let data: f64 = samples
            .iter()
            .map(|s| {
                let z = w.log_odds(&s.x, s.bayes);
                (1.0 + z.exp()).ln() - if s.spam { z } else { 0.0 }
            })
            .sum();
        let pen = |a: f64, m: f64, sd: f64| 0.5 * (a - m) * (a - m) / (sd * sd);
        data + pen(w.bias, p.mean.bias, p.sd_bias)
            + pen(w.bayes, p.mean.bayes, p.sd_bayes)
            + w.symbols.iter().zip(&p.mean.symbols).map(|(a, m)| pen(*a, *m, p.sd_symbol)).sum::<f64>()
    };
    let best = objective(&f.weights);
    assert!((best - f.objective).abs() < 1e-6 * best.abs().max(1.0), "{best} vs {}", f.objective);
    for j in 0..5 {
        for eps in [1e-3, -1e-3] {
            let mut w = f.weights.clone();
            match j {
                0 => w.bias += eps,
                1 => w.bayes += eps,
                k => w.symbols[k - 2] += eps,
            }
            assert!(objective(&w) > best, "weight {j} moved by {eps} lowers the objective");
        }
    }
}

#[test]
fn the_learned_score_ranks_better_than_the_hand_set_sum() {
    // Held-out mail: the hand-set sum is misled by symbol 1; the fitted score is not.
    let p = prior();
    let fitted = Fitted { weights: fit(&mail(4000, 5), &p).weights, scale: scale() };
    let test = mail(4000, 99);
    let hand = |s: &Sample| s.x.iter().map(|&(i, v)| [1.0, 6.0, 3.0][i as usize] * v).sum::<f64>() + 8.0 * (s.bayes / BAYES_CLAMP).clamp(-0.4, 1.0);
    let learned = |s: &Sample| fitted.score(&s.x, s.bayes).score;
    let auc = |f: &dyn Fn(&Sample) -> f64| {
        let (spam, ham): (Vec<&Sample>, Vec<&Sample>) = test.iter().partition(|s| s.spam);
        let mut wins = 0.0;
        for a in &spam {
            for b in &ham {
                let (x, y) = (f(a), f(b));
                wins += if x > y { 1.0 } else if x == y { 0.5 } else { 0.0 };
            }
        }
        wins / (spam.len() * ham.len()) as f64
    };
    let (a_hand, a_learned) = (auc(&hand), auc(&learned));
    assert!(a_learned > a_hand, "learned AUC {a_learned} vs hand-set {a_hand}");
}

#[test]
fn the_parts_of_a_score_add_up_and_the_scale_keeps_the_thresholds() {
    let s = scale();
    assert!((s.offset + s.points_per_unit * (0.9f64 / 0.1).ln() - 5.0).abs() < 1e-9);
    assert!((s.offset + s.points_per_unit * (0.999f64 / 0.001).ln() - 10.0).abs() < 1e-9);
    assert!(Scale::anchored(5.0, 0.9, 10.0, 0.5).is_none());
    let f = Fitted { weights: Weights { bias: -1.0, bayes: 0.5, symbols: vec![2.0, -1.0] }, scale: s };
    let r = f.score(&[(0, 1.0), (1, 0.5), (7, 1.0)], 3.0);
    let sum = r.base + r.bayes + r.symbols.iter().map(|p| p.1).sum::<f64>();
    assert!((sum - r.score).abs() < 1e-12);
    assert_eq!(r.symbols[2], (7, 0.0), "an unknown feature adds nothing");
    assert!((s.log_odds_of(r.score) - f.weights.log_odds(&[(0, 1.0), (1, 0.5)], 3.0)).abs() < 1e-9);
    assert_eq!(log_odds(1.0), BAYES_CLAMP);
    assert_eq!(log_odds(0.0), -BAYES_CLAMP);
    assert!(log_odds(0.5).abs() < 1e-12);
}
