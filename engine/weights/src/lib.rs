//! Learned symbol weights: the verdict's score as a fitted combination of what the checks found.
//!
//! Hand-set scores add up evidence as if each symbol were independent and as strong as someone
//! guessed; a symbol that fires on ham as often as on spam still adds its points. Here the score
//! is a logistic model over the symbols that fired (each with its strength, 1 for a plain
//! presence) and Bayes' log-odds as one continuous input, fitted to labelled mail — the lessons
//! that teach Bayes — as SpamAssassin fits its rule scores offline. The hand-set scores are the
//! prior: each weight is pulled toward its hand-set value, so a symbol seen in few lessons keeps
//! about its hand-set score and only evidence moves it ([`fit`], maximum a posteriori with a
//! Gaussian prior, by Newton's method).
//!
//! [`Fitted::score`] maps the model's log-odds onto the existing score scale ([`Scale`]), so the
//! thresholds, per-domain overrides and headers keep their meaning, and says what each symbol
//! contributed in points.
//!
//! [`Model`] is what the gateway keeps: the vocabulary of its lessons, the prior's spread and a
//! Bayes gate chosen by cross-validation over the lessons, per-symbol points, a text form.
//!
//! Pure arithmetic: no I/O, no knobs, no global state. Costs: a fit is a few Newton steps, each
//! one pass over the samples (k² for k features a sample) and one Cholesky solve of the d × d
//! system (d features in all: d³/3); a few hundred symbols and 100,000 lessons fit in well under
//! a second. Scoring a message is one multiply-add per symbol it carries.

mod fit;
mod model;
mod ranking;
mod scale;

pub use fit::{fit, Fit, Prior, Sample};
pub use model::{strength, Choice, Lesson, Model, Scored as ModelScored, Settings, Weighed, GATE_FALL};
pub use ranking::{ranking, Ranking};
pub use scale::Scale;

/// Bayes' log-odds enter the model clamped to this (the classifier's own bound is ±27.6, where it
/// is sure; past ±15 — odds of three million to one — more certainty says nothing new).
pub const BAYES_CLAMP: f64 = 15.0;

/// The log-odds of a probability, clamped to ±[`BAYES_CLAMP`].
pub fn log_odds(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).ln().clamp(-BAYES_CLAMP, BAYES_CLAMP)
}

/// The model's parameters, in log-odds units: `bias + bayes * bayes_log_odds + Σ symbols[i] * x_i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub bias: f64,
    pub bayes: f64,
    /// By feature index (the caller's numbering of symbol names).
    pub symbols: Vec<f64>,
}

impl Weights {
    /// The log-odds of one message: `x` its (feature, strength) pairs, `bayes` its clamped log-odds.
    pub fn log_odds(&self, x: &[(u32, f64)], bayes: f64) -> f64 {
        self.bias + self.bayes * bayes + x.iter().map(|&(i, v)| self.symbols.get(i as usize).copied().unwrap_or(0.0) * v).sum::<f64>()
    }
}

/// A fitted model with its mapping onto the score scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub weights: Weights,
    pub scale: Scale,
}

/// A message's learned score and what each part contributed to it, in points: the parts add up to
/// the score exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub score: f64,
    /// The constant part (the bias and the scale's offset).
    pub base: f64,
    pub bayes: f64,
    /// Per (feature, points), in the order given.
    pub symbols: Vec<(u32, f64)>,
}

impl Fitted {
    pub fn score(&self, x: &[(u32, f64)], bayes: f64) -> Scored {
        let w = &self.weights;
        let s = self.scale.points_per_unit;
        let base = self.scale.offset + s * w.bias;
        let bayes_points = s * w.bayes * bayes;
        let symbols: Vec<(u32, f64)> = x.iter().map(|&(i, v)| (i, s * w.symbols.get(i as usize).copied().unwrap_or(0.0) * v)).collect();
        let score = base + bayes_points + symbols.iter().map(|p| p.1).sum::<f64>();
        Scored { score, base, bayes: bayes_points, symbols }
    }
}

#[cfg(test)]
mod tests;
