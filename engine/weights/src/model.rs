//! A model over named symbols, as the gateway keeps one: the vocabulary of the lessons, the
//! prior's spread and the Bayes gate chosen by cross-validation over the lessons themselves,
//! scoring a message with the points each part contributed, and a text form to save and show.
//!
//! The inputs of one message (the same in fitting and in scoring):
//! - each content symbol it carries, in the vocabulary, at strength 1 — less where Bayes is sure
//!   the message is ham: below log-odds −gate, a symbol's strength falls by e each
//!   [`GATE_FALL`] units further down (a newsletter Bayes knows well is not lifted into spam by a
//!   link shape alone; mail Bayes has no answer for keeps every symbol at full strength);
//! - Bayes' log-odds ([`crate::log_odds`]), its ham side again (so the two sides may weigh
//!   differently) and "no answer".
//!
//! A symbol outside the vocabulary (no lesson carried it) scores its hand-set points times its
//! strength: its weight is its prior's mean, exactly as a fit leaves a symbol no sample carries.
//!
//! Cost of [`Model::fit`]: `folds × grid` fits for the choice and one more (each a few Newton
//! steps, see [`crate::fit`]); 5 × 32 fits of 5,000 lessons over 35 symbols take about a second.
//! Scoring is one lookup and one multiply-add per symbol.

use std::collections::HashMap;

use crate::{fit, log_odds, ranking, Fitted, Prior, Ranking, Sample, Scale, Weights};

/// Log-odds units over which a symbol's strength falls by e below the gate.
pub const GATE_FALL: f64 = 2.0;

/// One labelled message: its content symbols with their hand-set points, and Bayes' spam
/// probability as judged before the message was learnt (`None`: no answer).
#[derive(Debug, Clone, PartialEq)]
pub struct Lesson {
    pub spam: bool,
    pub bayes: Option<f64>,
    pub symbols: Vec<(String, f64)>,
}

/// The prior's spread and the gate: one point of the grid cross-validation chooses from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// Standard deviation of each symbol's weight around its hand-set value (log-odds units).
    pub sd_symbol: f64,
    /// The same for Bayes' inputs.
    pub sd_bayes: f64,
    /// Bayes log-odds below −gate weaken the symbols; infinite: never.
    pub gate: f64,
}

/// What a fit needs besides the lessons.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub scale: Scale,
    /// The hand-set weight of Bayes, in points per unit of log-odds (the prior of its weight).
    pub bayes_points_per_unit: f64,
    /// Folds of the cross-validation (fold i holds every folds-th lesson from i).
    pub folds: usize,
    pub grid: Vec<Choice>,
}

impl Settings {
    /// The tag threshold at p 0.9 and the quarantine threshold at p 0.999 (`None` unless tag <
    /// quarantine), and the default grid: spreads 0.5 to 16 log-odds units, gates off, 2, 5 and 8.
    pub fn new(tag_score: f64, quarantine_score: f64, bayes_points_per_unit: f64) -> Option<Settings> {
        let scale = Scale::anchored(tag_score, 0.9, quarantine_score, 0.999)?;
        let spreads = [(0.5, 0.5), (1.0, 1.0), (2.0, 2.0), (4.0, 4.0), (8.0, 8.0), (16.0, 16.0), (4.0, 16.0), (16.0, 4.0)];
        let grid = [f64::INFINITY, 2.0, 5.0, 8.0]
            .iter()
            .flat_map(|&gate| spreads.iter().map(move |&(sd_symbol, sd_bayes)| Choice { sd_symbol, sd_bayes, gate }))
            .collect();
        Some(Settings { scale, bayes_points_per_unit, folds: 5, grid })
    }
}

/// One symbol of the vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighed {
    pub name: String,
    /// Its hand-set points (the median of what the lessons recorded).
    pub hand: f64,
    /// Its learned points at full strength.
    pub learned: f64,
    /// Lessons that carried it.
    pub seen: u64,
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub symbols: Vec<Weighed>,
    index: HashMap<String, usize>,
    pub fitted: Fitted,
    pub choice: Choice,
    pub spam: u64,
    pub ham: u64,
    /// Cross-validated over the lessons: this model's choice, and Bayes alone.
    pub cv: Ranking,
    pub cv_bayes: Ranking,
}

/// A message's learned score and its parts in points; the parts add up to the score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub score: f64,
    /// The constant part.
    pub base: f64,
    /// Bayes' part (its log-odds, its ham side, or "no answer").
    pub bayes: f64,
    /// Each given symbol's points, in the order given.
    pub symbols: Vec<f64>,
}

/// A symbol's strength at Bayes log-odds `lo`.
pub fn strength(lo: f64, gate: f64) -> f64 {
    if lo < -gate {
        ((lo + gate) / GATE_FALL).exp()
    } else {
        1.0
    }
}

/// The vocabulary of `lessons`: names in order, each with the median of its recorded points.
fn vocabulary(lessons: &[Lesson]) -> Vec<(String, f64)> {
    let mut points: HashMap<&str, Vec<f64>> = HashMap::new();
    for l in lessons {
        // A name with white space could not be written in the text form: it stays out (scored at
        // its hand-set points, as any symbol outside the vocabulary).
        for (n, p) in l.symbols.iter().filter(|(n, _)| !n.is_empty() && !n.contains(char::is_whitespace)) {
            points.entry(n.as_str()).or_default().push(*p);
        }
    }
    let mut v: Vec<(String, f64)> = points
        .into_iter()
        .map(|(n, mut p)| {
            p.sort_by(f64::total_cmp);
            (n.to_string(), p[p.len() / 2])
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A lesson as the fit sees it: the vocabulary's symbols at their strength, then the ham side
/// (index n) and "no answer" (n + 1).
fn sample(index: &HashMap<String, usize>, symbols: &[(String, f64)], bayes: Option<f64>, spam: bool, gate: f64) -> Sample {
    let n = index.len();
    let lo = bayes.map_or(0.0, log_odds);
    let s = strength(lo, gate);
    let mut x: Vec<(u32, f64)> = symbols.iter().filter_map(|(name, _)| index.get(name).map(|i| (*i as u32, s))).collect();
    x.sort_by_key(|p| p.0);
    x.dedup_by_key(|p| p.0);
    if lo < 0.0 {
        x.push((n as u32, lo));
    }
    if bayes.is_none() {
        x.push((n as u32 + 1, 1.0));
    }
    Sample { x, bayes: lo, spam }
}

fn prior(settings: &Settings, hand: &[f64], c: Choice) -> Prior {
    let s = &settings.scale;
    let mut symbols: Vec<f64> = hand.iter().map(|p| s.weight_of(*p)).collect();
    symbols.extend([0.0, 0.0]);
    let mut sd = vec![c.sd_symbol; hand.len()];
    sd.extend([c.sd_bayes, c.sd_bayes]);
    Prior {
        mean: Weights { bias: s.log_odds_of(0.0), bayes: s.weight_of(settings.bayes_points_per_unit), symbols },
        sd_symbols: sd,
        sd_bayes: c.sd_bayes,
        sd_bias: 5.0,
    }
}

impl Model {
    /// Fits a model to `lessons`: the choice of spread and gate by cross-validation over them
    /// (the smallest pooled held-out 1 − AUC; the first of equals), then one fit on them all.
    /// `None` when the lessons hold no spam or no ham, or `settings.grid` is empty.
    pub fn fit(lessons: &[Lesson], settings: &Settings) -> Option<Model> {
        let spam = lessons.iter().filter(|l| l.spam).count() as u64;
        let ham = lessons.len() as u64 - spam;
        if spam == 0 || ham == 0 || settings.grid.is_empty() {
            return None;
        }
        let vocab = vocabulary(lessons);
        let index: HashMap<String, usize> = vocab.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        let hand: Vec<f64> = vocab.iter().map(|v| v.1).collect();
        let k = settings.folds.clamp(2, lessons.len().max(2));
        let samples_for = |gate: f64| -> Vec<Sample> { lessons.iter().map(|l| sample(&index, &l.symbols, l.bayes, l.spam, gate)).collect() };
        let mut best: Option<(Choice, Ranking)> = None;
        let mut by_gate: Vec<(f64, Vec<Sample>)> = Vec::new();
        for &c in &settings.grid {
            if !by_gate.iter().any(|(g, _)| *g == c.gate) {
                by_gate.push((c.gate, samples_for(c.gate)));
            }
            let samples = &by_gate.iter().find(|(g, _)| *g == c.gate).expect("made above").1;
            let p = prior(settings, &hand, c);
            let mut held = Vec::with_capacity(samples.len());
            for fold in 0..k {
                let train: Vec<Sample> = samples.iter().enumerate().filter(|(i, _)| i % k != fold).map(|(_, s)| s.clone()).collect();
                let w = fit(&train, &p).weights;
                held.extend(samples.iter().enumerate().filter(|(i, _)| i % k == fold).map(|(_, s)| (w.log_odds(&s.x, s.bayes), s.spam)));
            }
            let r = ranking(&held);
            if best.is_none_or(|(_, b)| r.one_minus_auc_pct < b.one_minus_auc_pct) {
                best = Some((c, r));
            }
        }
        let (choice, cv) = best?;
        let samples = samples_for(choice.gate);
        let f = fit(&samples, &prior(settings, &hand, choice));
        let ppu = settings.scale.points_per_unit;
        let symbols = vocab
            .into_iter()
            .enumerate()
            .map(|(i, (name, hand))| Weighed { name, hand, learned: ppu * f.weights.symbols[i], seen: f.seen[i] })
            .collect();
        let cv_bayes = ranking(&lessons.iter().map(|l| (l.bayes.unwrap_or(0.5), l.spam)).collect::<Vec<_>>());
        Some(Model { symbols, index, fitted: Fitted { weights: f.weights, scale: settings.scale }, choice, spam, ham, cv, cv_bayes })
    }

    /// The learned score of a message: `symbols` its content symbols with their hand-set points,
    /// `bayes` its spam probability (`None`: no answer).
    pub fn score(&self, symbols: &[(&str, f64)], bayes: Option<f64>) -> Scored {
        let w = &self.fitted.weights;
        let ppu = self.fitted.scale.points_per_unit;
        let n = self.index.len();
        let lo = bayes.map_or(0.0, log_odds);
        let s = strength(lo, self.choice.gate);
        let base = self.base_points();
        let mut bayes_points = ppu * w.bayes * lo;
        if lo < 0.0 {
            bayes_points += ppu * w.symbols[n] * lo;
        }
        if bayes.is_none() {
            bayes_points += ppu * w.symbols[n + 1];
        }
        let mut counted = std::collections::HashSet::new();
        let points: Vec<f64> = symbols
            .iter()
            .map(|(name, hand)| match self.index.get(*name) {
                // A symbol given twice counts once, as in the fit.
                Some(i) if !counted.insert(*i) => 0.0,
                Some(i) => ppu * w.symbols[*i] * s,
                None => hand * s,
            })
            .collect();
        Scored { score: base + bayes_points + points.iter().sum::<f64>(), base, bayes: bayes_points, symbols: points }
    }

    /// The constant part of every score, in points.
    pub fn base_points(&self) -> f64 {
        self.fitted.scale.offset + self.fitted.scale.points_per_unit * self.fitted.weights.bias
    }

    /// The vocabulary, the symbols whose learned points moved most from their hand-set ones first
    /// (then by name), for showing.
    pub fn by_change(&self) -> Vec<&Weighed> {
        let mut rows: Vec<&Weighed> = self.symbols.iter().collect();
        rows.sort_by(|a, b| (b.learned - b.hand).abs().total_cmp(&(a.learned - a.hand).abs()).then(a.name.cmp(&b.name)));
        rows
    }

    /// The learned points of Bayes' inputs, for showing: per unit of log-odds on the spam side,
    /// on the ham side, and for "no answer".
    pub fn bayes_points(&self) -> (f64, f64, f64) {
        let w = &self.fitted.weights;
        let ppu = self.fitted.scale.points_per_unit;
        let n = self.index.len();
        (ppu * w.bayes, ppu * (w.bayes + w.symbols[n]), ppu * w.symbols[n + 1])
    }

    /// The model as text (one item a line; [`Model::from_text`] reads it back exactly).
    pub fn to_text(&self) -> String {
        let w = &self.fitted.weights;
        let n = self.index.len();
        let r = |r: &Ranking| format!("{:e} {:e} {:e}", r.one_minus_auc_pct, r.caught_at_0_1pct_fp, r.caught_at_1pct_fp);
        let mut out = String::from("mxguard-weights 1\n");
        out += &format!("lessons {} {}\n", self.spam, self.ham);
        out += &format!("choice {:e} {:e} {:e}\n", self.choice.sd_symbol, self.choice.sd_bayes, self.choice.gate);
        out += &format!("cv {}\ncv_bayes {}\n", r(&self.cv), r(&self.cv_bayes));
        out += &format!("scale {:e} {:e}\n", self.fitted.scale.offset, self.fitted.scale.points_per_unit);
        out += &format!("bias {:e}\nbayes {:e} {:e} {:e}\n", w.bias, w.bayes, w.symbols[n], w.symbols[n + 1]);
        for (i, s) in self.symbols.iter().enumerate() {
            out += &format!("symbol {} {:e} {:e} {}\n", s.name, s.hand, w.symbols[i], s.seen);
        }
        out
    }

    /// Reads [`Model::to_text`]'s form.
    pub fn from_text(text: &str) -> Result<Model, String> {
        let mut lines = text.lines();
        if lines.next() != Some("mxguard-weights 1") {
            return Err("not a weights file (first line)".into());
        }
        let (mut spam, mut ham, mut choice, mut cv, mut cv_bayes, mut scale, mut bias, mut bayes) = (None, None, None, None, None, None, None, None);
        let mut symbols = Vec::new();
        let mut raw = Vec::new();
        for (no, line) in lines.enumerate() {
            let bad = || format!("line {}: {line}", no + 2);
            let f: Vec<&str> = line.split(' ').collect();
            let num = |i: usize| -> Result<f64, String> { f.get(i).and_then(|v| v.parse::<f64>().ok()).ok_or_else(bad) };
            let ranking_at = || -> Result<Ranking, String> { Ok(Ranking { one_minus_auc_pct: num(1)?, caught_at_0_1pct_fp: num(2)?, caught_at_1pct_fp: num(3)? }) };
            match f[0] {
                "lessons" => (spam, ham) = (Some(num(1)? as u64), Some(num(2)? as u64)),
                "choice" => choice = Some(Choice { sd_symbol: num(1)?, sd_bayes: num(2)?, gate: num(3)? }),
                "cv" => cv = Some(ranking_at()?),
                "cv_bayes" => cv_bayes = Some(ranking_at()?),
                "scale" => scale = Some(Scale { offset: num(1)?, points_per_unit: num(2)? }),
                "bias" => bias = Some(num(1)?),
                "bayes" => bayes = Some((num(1)?, num(2)?, num(3)?)),
                "symbol" if f.len() == 5 => {
                    let seen = f[4].parse::<u64>().map_err(|_| bad())?;
                    symbols.push((f[1].to_string(), num(2)?, seen));
                    raw.push(num(3)?);
                }
                _ => return Err(bad()),
            }
        }
        let missing = |what: &str| format!("no {what} line");
        let scale = scale.ok_or_else(|| missing("scale"))?;
        let (wb, ham_side, none) = bayes.ok_or_else(|| missing("bayes"))?;
        let mut ws = raw;
        ws.extend([ham_side, none]);
        let index = symbols.iter().enumerate().map(|(i, s)| (s.0.clone(), i)).collect();
        let symbols = symbols.into_iter().zip(&ws).map(|((name, hand, seen), w)| Weighed { name, hand, learned: scale.points_per_unit * w, seen }).collect();
        Ok(Model {
            symbols,
            index,
            fitted: Fitted { weights: Weights { bias: bias.ok_or_else(|| missing("bias"))?, bayes: wb, symbols: ws }, scale },
            choice: choice.ok_or_else(|| missing("choice"))?,
            spam: spam.ok_or_else(|| missing("lessons"))?,
            ham: ham.ok_or_else(|| missing("lessons"))?,
            cv: cv.ok_or_else(|| missing("cv"))?,
            cv_bayes: cv_bayes.ok_or_else(|| missing("cv_bayes"))?,
        })
    }
}
