//! The learned log-odds as points on the score scale the thresholds are written in.

/// `score = offset + points_per_unit * log_odds`: a straight line through two anchors, the
/// tag threshold at one probability and the quarantine threshold at a higher one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub offset: f64,
    pub points_per_unit: f64,
}

impl Scale {
    /// The line through (logit(`tag_p`), `tag_score`) and (logit(`quarantine_p`),
    /// `quarantine_score`). `None` unless 0 < tag_p < quarantine_p < 1 and tag_score <
    /// quarantine_score (the line would not rise).
    pub fn anchored(tag_score: f64, tag_p: f64, quarantine_score: f64, quarantine_p: f64) -> Option<Scale> {
        if !(0.0 < tag_p && tag_p < quarantine_p && quarantine_p < 1.0 && tag_score < quarantine_score) {
            return None;
        }
        let logit = |p: f64| (p / (1.0 - p)).ln();
        let points_per_unit = (quarantine_score - tag_score) / (logit(quarantine_p) - logit(tag_p));
        Some(Scale { offset: tag_score - points_per_unit * logit(tag_p), points_per_unit })
    }

    /// The log-odds a score stands for.
    pub fn log_odds_of(&self, score: f64) -> f64 {
        (score - self.offset) / self.points_per_unit
    }

    /// A hand-set score as a weight in log-odds units (the prior of that symbol's weight).
    pub fn weight_of(&self, points: f64) -> f64 {
        points / self.points_per_unit
    }
}
