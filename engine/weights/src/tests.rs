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
        sd_symbols: vec![1.0; 3],
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
            + w.symbols.iter().zip(&p.mean.symbols).zip(&p.sd_symbols).map(|((a, m), sd)| pen(*a, *m, *sd)).sum::<f64>()
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

// The named model (model.rs): lessons as the gateway records them.

/// Synthetic lessons: LINKY fires on 60 % of spam and, like a newsletter's link shape, on 20 %
/// of ham — ham that Bayes is sure of; PLAIN fires on 5 % of each; Bayes right 97 % of the time.
fn lessons(n: usize, seed: u64) -> Vec<Lesson> {
    let mut r = Rng(seed);
    (0..n)
        .map(|k| {
            let spam = k % 3 == 0;
            let mut symbols = Vec::new();
            if r.chance(if spam { 0.6 } else { 0.2 }) {
                symbols.push(("LINKY".to_string(), 4.0));
            }
            if r.chance(0.05) {
                symbols.push(("PLAIN".to_string(), 2.0));
            }
            let right = r.chance(0.97);
            let sure = 3.0 + 8.0 * r.next();
            let lo = if spam == right { sure } else { -sure };
            Lesson { spam, bayes: Some(1.0 / (1.0 + (-lo).exp())), symbols }
        })
        .collect()
}

fn settings() -> Settings {
    Settings::new(5.0, 10.0, 8.0 / BAYES_CLAMP).unwrap()
}

#[test]
fn a_named_model_learns_and_its_parts_add_up() {
    let m = Model::fit(&lessons(3000, 1), &settings()).expect("both kinds");
    assert_eq!((m.spam, m.ham), (1000, 2000));
    let names: Vec<&str> = m.symbols.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["LINKY", "PLAIN"]);
    assert_eq!(m.symbols[0].hand, 4.0);
    assert!(m.symbols[0].seen > 800);
    // Spam Bayes is unsure of, with LINKY, against ham Bayes is sure of, with LINKY.
    let spam = m.score(&[("LINKY", 4.0)], Some(0.6));
    let ham = m.score(&[("LINKY", 4.0)], Some(1e-5));
    assert!(spam.score > ham.score + 5.0, "{spam:?} {ham:?}");
    for s in [&spam, &ham] {
        let sum = s.base + s.bayes + s.symbols.iter().sum::<f64>();
        assert!((sum - s.score).abs() < 1e-9);
    }
    // Outside the vocabulary: the hand-set points, at the symbol's strength.
    let lo = log_odds(1e-5);
    let unknown = m.score(&[("NEVER_SEEN", 3.0)], Some(1e-5));
    assert!((unknown.symbols[0] - 3.0 * strength(lo, m.choice.gate)).abs() < 1e-12);
    // A symbol given twice counts once.
    let twice = m.score(&[("LINKY", 4.0), ("LINKY", 4.0)], Some(0.6));
    assert_eq!(twice.symbols[1], 0.0);
    assert!((twice.score - spam.score).abs() < 1e-12);
    // No Bayes answer is an input of its own, in Bayes' part.
    let none = m.score(&[], None);
    assert!((none.bayes - m.bayes_points().2).abs() < 1e-12);
    // Cross-validated figures are recorded, and the learned score ranks at least as well as
    // Bayes alone on these lessons.
    assert!(m.cv.one_minus_auc_pct <= m.cv_bayes.one_minus_auc_pct, "{:?} vs {:?}", m.cv, m.cv_bayes);
}

#[test]
fn the_gate_weakens_symbols_where_bayes_is_sure_of_ham() {
    assert_eq!(strength(-1.0, 5.0), 1.0);
    assert_eq!(strength(3.0, 5.0), 1.0);
    assert!((strength(-5.0 - GATE_FALL, 5.0) - (-1.0f64).exp()).abs() < 1e-12);
    assert_eq!(strength(-20.0, f64::INFINITY), 1.0);
    let mut s = settings();
    s.grid = vec![Choice { sd_symbol: 2.0, sd_bayes: 2.0, gate: 2.0 }];
    let m = Model::fit(&lessons(3000, 2), &s).unwrap();
    let unsure = m.score(&[("LINKY", 4.0)], Some(0.5)).symbols[0];
    let sure_ham = m.score(&[("LINKY", 4.0)], Some(1e-4)).symbols[0];
    assert!((sure_ham - unsure * strength(log_odds(1e-4), 2.0)).abs() < 1e-12, "{unsure} {sure_ham}");
}

#[test]
fn cross_validation_chooses_the_point_of_the_grid() {
    // Each point alone, then all together: the fit takes the one with the smallest held-out 1 - AUC.
    let l = lessons(2000, 5);
    let grid = settings().grid;
    let alone: Vec<(Choice, f64)> = grid
        .iter()
        .map(|c| {
            let mut s = settings();
            s.grid = vec![*c];
            (*c, Model::fit(&l, &s).unwrap().cv.one_minus_auc_pct)
        })
        .collect();
    let least = alone.iter().map(|a| a.1).fold(f64::INFINITY, f64::min);
    let m = Model::fit(&l, &settings()).unwrap();
    assert_eq!(m.cv.one_minus_auc_pct, least);
    assert_eq!(m.choice, alone.iter().find(|a| a.1 == least).unwrap().0, "the first of equals");
}

#[test]
fn no_model_without_both_kinds_of_lesson() {
    let only_ham: Vec<Lesson> = lessons(300, 3).into_iter().filter(|l| !l.spam).collect();
    assert!(Model::fit(&only_ham, &settings()).is_none());
    assert!(Model::fit(&[], &settings()).is_none());
    let mut s = settings();
    s.grid.clear();
    assert!(Model::fit(&lessons(300, 3), &s).is_none());
}

#[test]
fn the_text_form_reads_back_exactly_and_names_a_bad_line() {
    let mut l = lessons(600, 4);
    l[0].symbols.push(("HAS SPACE".into(), 1.0));
    let m = Model::fit(&l, &settings()).unwrap();
    assert!(m.symbols.iter().all(|s| s.name != "HAS SPACE"), "a name with white space stays out");
    let text = m.to_text();
    assert_eq!(Model::from_text(&text).unwrap(), m);
    let broken = text.replace("bias ", "bias x");
    assert!(Model::from_text(&broken).unwrap_err().starts_with("line "));
    assert!(Model::from_text("something else\n").is_err());
    let cut: String = text.lines().filter(|l| !l.starts_with("scale")).map(|l| format!("{l}\n")).collect();
    assert_eq!(Model::from_text(&cut).unwrap_err(), "no scale line");
}
