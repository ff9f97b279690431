//! Bulk mail: the same text (by its fingerprint bands, `mxguard_scan::fingerprint`) counted over
//! recent traffic. Many client addresses sending it within `bulk.window_s` make it BULK; a copy of
//! a text judged spam within the window is BULK_SPAM (the reference products' global spam
//! signature: the first mail of a run is analysed, the rest are recognised).
//!
//! A fingerprint is a few bands (minhash rows hashed together); near-copies share most of them,
//! different texts almost never one. Each band is a key of a [`Windows`]; a message counts as
//! the most-seen of its bands. Never: looks at the message itself (only its bands), or keeps
//! anything past two windows.

use mxguard_tuning as k;

use crate::window::{Delta, Seen, Windows};
use crate::Finding;

#[derive(Default)]
pub struct Bulk {
    bands: Windows,
}

impl Bulk {
    pub fn new() -> Bulk {
        Bulk::default()
    }

    /// Counts one message of `bands` from `source` to `recipients` at `now` and returns what the
    /// window holds for its text, this message included: the counts of its most-seen band (one
    /// shared band makes a copy), and as spam the second-highest spam mark of its bands (a
    /// verdict is carried over only by two shared bands: a closer copy).
    pub fn observe(&self, bands: &[u64], source: u64, recipients: u32, now: u64) -> Seen {
        let (window, max) = (k::BULK_WINDOW_S.get_u64(), k::BULK_MAX_KEYS.get_usize());
        let d = Delta { messages: 1, recipients, source: Some(source), ..Delta::default() };
        let seen: Vec<Seen> = bands.iter().map(|b| self.bands.add(*b, now, window, max, &d)).collect();
        let mut spam: Vec<f64> = seen.iter().map(|s| s.spam).collect();
        spam.sort_by(|a, b| b.total_cmp(a));
        let top = seen.into_iter().fold(Seen::default(), |a, b| if (b.sources, b.messages) > (a.sources, a.messages) { b } else { a });
        Seen { spam: spam.get(1).copied().unwrap_or(0.0), ..top }
    }

    /// Marks a text as judged spam (every band).
    pub fn judged_spam(&self, bands: &[u64], now: u64) {
        let (window, max) = (k::BULK_WINDOW_S.get_u64(), k::BULK_MAX_KEYS.get_usize());
        for b in bands {
            self.bands.add(*b, now, window, max, &Delta { spam: 1, ..Delta::default() });
        }
    }

    /// Bands held (for metrics).
    pub fn len(&self) -> usize {
        self.bands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bands.is_empty()
    }

    pub fn sweep(&self, now: u64) {
        self.bands.sweep(now, k::BULK_WINDOW_S.get_u64());
    }
}

/// The symbols for what the window holds of a text.
pub fn findings(s: &Seen) -> Vec<Finding> {
    let mut out = Vec::new();
    let min_sources = k::BULK_MIN_SOURCES.get_u64() as u32;
    if min_sources > 0 && s.sources >= min_sources {
        out.push(Finding {
            symbol: "BULK",
            score: k::SCORE_BULK.get_f64(),
            reason: format!("the same text came from about {} client addresses ({:.0} messages) within bulk.window_s", s.sources, s.messages),
        });
    }
    if s.spam >= 0.5 {
        out.push(Finding {
            symbol: "BULK_SPAM",
            score: k::SCORE_BULK_SPAM.get_f64(),
            reason: format!("the same text was judged spam within bulk.window_s ({:.0} of {:.0} copies)", s.spam, s.messages),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_sources_make_bulk_and_a_spam_verdict_marks_the_copies() {
        let b = Bulk::new();
        let text = [11u64, 22, 33, 44, 55, 66];
        let near = [11u64, 99, 33, 98, 97, 96]; // a near copy shares some bands
        let now = 1_000_000;
        for src in 0..5u64 {
            assert!(findings(&b.observe(&text, src, 1, now)).is_empty());
        }
        let mut last = Seen::default();
        for src in 5..40u64 {
            last = b.observe(&near, src, 1, now);
        }
        assert!(last.sources >= 10, "{last:?}");
        let f = findings(&last);
        assert_eq!(f.iter().map(|f| f.symbol).collect::<Vec<_>>(), ["BULK"]);
        // One copy judged spam: later copies carry BULK_SPAM; other texts do not.
        b.judged_spam(&text, now);
        let s = b.observe(&[11, 5, 6, 7, 8, 66], 1, 1, now + 10);
        assert!(findings(&s).iter().any(|f| f.symbol == "BULK_SPAM"), "two shared bands carry the mark");
        let s = b.observe(&[1, 2, 3, 4, 5, 66], 1, 1, now + 10);
        assert!(findings(&s).is_empty(), "one shared band does not: {s:?}");
        // Two windows later it is all forgotten.
        let later = now + 2 * k::BULK_WINDOW_S.get_u64() + 1;
        assert!(findings(&b.observe(&text, 1, 1, later)).is_empty());
    }
}
