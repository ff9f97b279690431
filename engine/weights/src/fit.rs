//! Fitting the weights: the maximum a posteriori logistic model with a Gaussian prior around the
//! hand-set weights, by Newton's method with step halving.
//!
//! Minimises `Σ_s [ln(1 + e^z_s) − t_s z_s] + ½ Σ_j (θ_j − μ_j)² / σ_j²` over θ = (bias, bayes,
//! symbols…), where `z_s = θ · x_s` and `t_s` is 1 for spam. The objective is strictly convex
//! (the prior makes the Hessian positive definite), so Newton's method converges to its one
//! minimum; halving a step that would not lower it keeps every step a descent. A symbol no
//! sample carries keeps its prior weight exactly.

use crate::Weights;

/// One labelled message as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// (feature index, strength) of each symbol that fired, each index at most once; indices at
    /// or past the prior's length are ignored.
    pub x: Vec<(u32, f64)>,
    /// Bayes' log-odds for the message as judged before it was learnt ([`crate::log_odds`]; 0
    /// when Bayes had no answer).
    pub bayes: f64,
    pub spam: bool,
}

/// Where each weight starts and how freely the evidence may move it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    /// The hand-set weights (in log-odds units: [`crate::Scale::weight_of`] of each score).
    pub mean: Weights,
    /// Standard deviations: how far, in log-odds units, evidence moves a weight as easily as
    /// the prior holds it (smaller: the hand-set scores weigh more). One a symbol, by feature
    /// index; a symbol past its end takes the last one (1 when empty).
    pub sd_symbols: Vec<f64>,
    pub sd_bayes: f64,
    pub sd_bias: f64,
}

/// A fit's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub weights: Weights,
    /// How many samples carried each symbol (by feature index).
    pub seen: Vec<u64>,
    pub steps: usize,
    /// The last Newton step moved no weight by more than 1e-7.
    pub converged: bool,
    /// The objective at the answer (the negative log posterior, up to a constant).
    pub objective: f64,
}

const MAX_STEPS: usize = 100;
const TOLERANCE: f64 = 1e-7;

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// ln(1 + e^z) without overflow.
fn log1p_exp(z: f64) -> f64 {
    if z > 35.0 {
        z
    } else if z < -35.0 {
        z.exp()
    } else {
        z.exp().ln_1p()
    }
}

/// The parameters as one vector: bias, bayes, then the symbols.
fn flatten(w: &Weights) -> Vec<f64> {
    let mut v = Vec::with_capacity(2 + w.symbols.len());
    v.push(w.bias);
    v.push(w.bayes);
    v.extend_from_slice(&w.symbols);
    v
}

fn unflatten(v: &[f64]) -> Weights {
    Weights { bias: v[0], bayes: v[1], symbols: v[2..].to_vec() }
}

/// A sample's nonzero inputs as (parameter index, value): the bias, Bayes, its symbols.
fn inputs(s: &Sample, n: usize, out: &mut Vec<(usize, f64)>) {
    out.clear();
    out.push((0, 1.0));
    if s.bayes != 0.0 {
        out.push((1, s.bayes));
    }
    out.extend(s.x.iter().filter(|(i, v)| (*i as usize) < n && *v != 0.0).map(|&(i, v)| (2 + i as usize, v)));
}

struct Problem<'a> {
    samples: &'a [Sample],
    mean: Vec<f64>,
    /// 1/σ² per parameter.
    precision: Vec<f64>,
    n: usize,
}

impl Problem<'_> {
    fn objective(&self, theta: &[f64], buf: &mut Vec<(usize, f64)>) -> f64 {
        let mut f = 0.0;
        for s in self.samples {
            inputs(s, self.n, buf);
            let z: f64 = buf.iter().map(|&(j, v)| theta[j] * v).sum();
            f += log1p_exp(z) - if s.spam { z } else { 0.0 };
        }
        f + 0.5 * theta.iter().zip(&self.mean).zip(&self.precision).map(|((t, m), p)| (t - m) * (t - m) * p).sum::<f64>()
    }

    /// The gradient and the Hessian (dense, row-major) at `theta`.
    fn derivatives(&self, theta: &[f64], buf: &mut Vec<(usize, f64)>) -> (Vec<f64>, Vec<f64>) {
        let d = theta.len();
        let mut g: Vec<f64> = (0..d).map(|j| (theta[j] - self.mean[j]) * self.precision[j]).collect();
        let mut h = vec![0.0; d * d];
        for j in 0..d {
            h[j * d + j] = self.precision[j];
        }
        for s in self.samples {
            inputs(s, self.n, buf);
            let z: f64 = buf.iter().map(|&(j, v)| theta[j] * v).sum();
            let p = sigmoid(z);
            let r = p - if s.spam { 1.0 } else { 0.0 };
            let w = p * (1.0 - p);
            for &(a, va) in buf.iter() {
                g[a] += r * va;
                for &(b, vb) in buf.iter() {
                    h[a * d + b] += w * va * vb;
                }
            }
        }
        (g, h)
    }
}

/// Solves `h x = g` for a symmetric positive definite `h` (Cholesky); `None` if it is not.
fn solve(mut h: Vec<f64>, g: &[f64]) -> Option<Vec<f64>> {
    let d = g.len();
    // h = L Lᵀ, L stored in the lower triangle of h.
    for j in 0..d {
        let mut diag = h[j * d + j];
        for k in 0..j {
            diag -= h[j * d + k] * h[j * d + k];
        }
        if diag <= 0.0 || !diag.is_finite() {
            return None;
        }
        let l = diag.sqrt();
        h[j * d + j] = l;
        for i in j + 1..d {
            let mut v = h[i * d + j];
            for k in 0..j {
                v -= h[i * d + k] * h[j * d + k];
            }
            h[i * d + j] = v / l;
        }
    }
    let mut y = g.to_vec();
    for i in 0..d {
        for k in 0..i {
            y[i] -= h[i * d + k] * y[k];
        }
        y[i] /= h[i * d + i];
    }
    for i in (0..d).rev() {
        for k in i + 1..d {
            y[i] -= h[k * d + i] * y[k];
        }
        y[i] /= h[i * d + i];
    }
    Some(y)
}

/// Fits the weights to `samples`, starting from and pulled toward `prior.mean`.
pub fn fit(samples: &[Sample], prior: &Prior) -> Fit {
    let n = prior.mean.symbols.len();
    let mean = flatten(&prior.mean);
    let inv = |sd: f64| 1.0 / (sd * sd).max(1e-12);
    let mut precision = Vec::with_capacity(2 + n);
    precision.push(inv(prior.sd_bias));
    precision.push(inv(prior.sd_bayes));
    let last = prior.sd_symbols.last().copied().unwrap_or(1.0);
    precision.extend((0..n).map(|i| inv(prior.sd_symbols.get(i).copied().unwrap_or(last))));
    let problem = Problem { samples, mean: mean.clone(), precision, n };
    let mut seen = vec![0u64; n];
    for s in samples {
        for &(i, v) in &s.x {
            if (i as usize) < n && v != 0.0 {
                seen[i as usize] += 1;
            }
        }
    }
    let mut buf = Vec::new();
    let mut theta = mean;
    let mut f = problem.objective(&theta, &mut buf);
    let mut steps = 0;
    let mut converged = false;
    while steps < MAX_STEPS {
        steps += 1;
        let (g, h) = problem.derivatives(&theta, &mut buf);
        let Some(delta) = solve(h, &g) else { break };
        let biggest = delta.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut alpha = 1.0;
        let mut moved = false;
        while alpha > 1e-10 {
            let next: Vec<f64> = theta.iter().zip(&delta).map(|(t, d)| t - alpha * d).collect();
            let fn_next = problem.objective(&next, &mut buf);
            if fn_next <= f {
                theta = next;
                f = fn_next;
                moved = true;
                break;
            }
            alpha *= 0.5;
        }
        if biggest * alpha < TOLERANCE || !moved {
            converged = moved || biggest < TOLERANCE;
            break;
        }
    }
    Fit { weights: unflatten(&theta), seen, steps, converged, objective: f }
}
