//! How well a score ranks spam above ham: the figures the model is chosen by and reported with.

/// Ranking figures of scored, labelled mail (`(score, spam)`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Ranking {
    /// The share of (spam, ham) pairs the score orders wrongly (a tie counts half), in percent:
    /// 1 − AUC.
    pub one_minus_auc_pct: f64,
    /// The share of spam scored above the line that lets through at most 0.1 % of ham, percent.
    pub caught_at_0_1pct_fp: f64,
    /// The same at 1 % of ham.
    pub caught_at_1pct_fp: f64,
}

/// The ranking figures of `scored`. Cost: a sort of the ham and a binary search per spam.
pub fn ranking(scored: &[(f64, bool)]) -> Ranking {
    let spams: Vec<f64> = scored.iter().filter(|s| s.1).map(|s| s.0).collect();
    let mut hams: Vec<f64> = scored.iter().filter(|s| !s.1).map(|s| s.0).collect();
    hams.sort_by(f64::total_cmp);
    let mut wrong = 0.0;
    for s in &spams {
        let at_or_below = hams.partition_point(|h| h <= s);
        let ties = at_or_below - hams.partition_point(|h| h < s);
        wrong += (hams.len() - at_or_below) as f64 + ties as f64 / 2.0;
    }
    let caught_at = |fp: f64| {
        let allowed = (hams.len() as f64 * fp).floor() as usize;
        let line = if allowed >= hams.len() { f64::NEG_INFINITY } else { hams[hams.len() - 1 - allowed] };
        100.0 * spams.iter().filter(|s| **s > line).count() as f64 / spams.len().max(1) as f64
    };
    Ranking {
        one_minus_auc_pct: 100.0 * wrong / (spams.len() * hams.len()).max(1) as f64,
        caught_at_0_1pct_fp: caught_at(0.001),
        caught_at_1pct_fp: caught_at(0.01),
    }
}
