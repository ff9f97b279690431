//! Train on error with a thick threshold: a message the table misjudged when it was learnt is
//! learnt more than once.
//!
//! Every lesson is learnt (train everything); one whose message the table, just before the
//! lesson, judged on the wrong side of a margin — spam under `1 - margin`, ham over `margin` —
//! is learnt again, and again while the table still misjudges it, up to a bound. The lessons
//! the table already gets right teach little; the ones it gets wrong or barely right are where
//! its counts are short (CRM114's "thick threshold training", SpamBayes' train-to-exhaustion,
//! online). Measured on the fixed split's train rows alone (5-fold cross-validation), it nearly
//! halves 1-AUC (benches/RESULTS.md, session 13).
//!
//! Only lessons a person gave (a file, a report, a quarantine decision) are judged: the
//! gateway's own verdicts (auto-learn) are learnt once ([`crate::Bayes::learn`]), since where
//! Bayes disagrees with the other checks the other checks are the likelier to be wrong.
//!
//! Pure arithmetic over the counts the lesson itself read ([`crate::table::Table::learn_lesson`]
//! hands back the counts as they were of the tokens the table held): no second pass over the
//! table unless the message is misjudged. Never called on a scan path; the learner thread (or an offline
//! `mxguard learn`) decides, and the journal records the decision, so a replay learns the same
//! number of times without judging again.

use crate::classify::{spam_probability, Counts, Params};

/// How many more times to learn a message after its first lesson: 0 when the table judged it
/// right by more than `margin` (or could not judge it yet: before the kick-in), otherwise one
/// more for each further state in which it would still be misjudged, at most `max`.
///
/// `before` are the counts, just before the first lesson, of the message's tokens the table
/// held, `unseen` how many others it has, `learned` the spam and ham messages counted then. The
/// state after `j` extra lessons is worked out from them (each token gains `j` on the lesson's
/// side, and so does the message count).
pub fn extra_lessons(before: &[Counts], unseen: usize, spam: bool, learned: (u64, u64), params: &Params, margin: f64, max: u32) -> u32 {
    if margin <= 0.0 {
        return 0;
    }
    let gained = |c: Counts, j: u32| if spam { Counts { spam: c.spam.saturating_add(j), ..c } } else { Counts { ham: c.ham.saturating_add(j), ..c } };
    // Before the lesson an unseen token has the background belief, which tells nothing at the
    // usual minimum distance: it is left out then (most of a new message's tokens are unseen).
    let unseen_tell = (params.background - 0.5).abs() >= params.min_distance;
    let misjudged = |j: u32| {
        let unseen = if j > 0 || unseen_tell { unseen } else { 0 };
        let counts = before.iter().map(|c| gained(*c, j)).chain(std::iter::repeat_n(gained(Counts::default(), j), unseen));
        let (s, h) = if spam { (learned.0 + u64::from(j), learned.1) } else { (learned.0, learned.1 + u64::from(j)) };
        match spam_probability(counts, s, h, params) {
            Some(p) if spam => p < 1.0 - margin,
            Some(p) => p > margin,
            None => false,
        }
    };
    (0..max).take_while(|j| misjudged(*j)).count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params { min_learned: 10, ..Params::default() }
    }

    /// Tokens seen in `spam` of 100 spam and `ham` of 100 ham learnt.
    fn counts(n: usize, spam: u32, ham: u32) -> Vec<Counts> {
        vec![Counts { spam, ham }; n]
    }

    #[test]
    fn judged_right_is_learnt_once() {
        // Spam-looking tokens, learnt as spam: right by far.
        assert_eq!(extra_lessons(&counts(20, 40, 1), 0, true, (100, 100), &params(), 0.1, 2), 0);
        // Ham-looking tokens, learnt as ham.
        assert_eq!(extra_lessons(&counts(20, 1, 40), 0, false, (100, 100), &params(), 0.1, 2), 0);
    }

    #[test]
    fn misjudged_is_learnt_again_up_to_the_bound() {
        // Ham-looking tokens learnt as spam: wrong, and one more lesson does not mend it.
        assert_eq!(extra_lessons(&counts(20, 1, 40), 0, true, (100, 100), &params(), 0.1, 2), 2);
        assert_eq!(extra_lessons(&counts(20, 1, 40), 0, true, (100, 100), &params(), 0.1, 3), 3);
        assert_eq!(extra_lessons(&counts(20, 1, 40), 0, true, (100, 100), &params(), 0.1, 0), 0, "bound 0: off");
        assert_eq!(extra_lessons(&counts(20, 1, 40), 0, true, (100, 100), &params(), 0.0, 2), 0, "margin 0: off");
        // Barely right: a few spam tokens among many unseen ones; one more lesson (which the
        // unseen ones take part in) and the table is sure.
        let c = counts(3, 3, 1);
        let p = spam_probability(c.iter().copied().chain(counts(50, 0, 0)), 100, 100, &params()).unwrap();
        assert!(p > 0.5 && p < 0.9, "{p}");
        assert_eq!(extra_lessons(&c, 50, true, (100, 100), &params(), 0.1, 2), 1);
        // Without the unseen ones it would take two.
        assert_eq!(extra_lessons(&c, 0, true, (100, 100), &params(), 0.1, 2), 2);
        // Nothing known: nothing to judge by.
        assert_eq!(extra_lessons(&[], 20, true, (100, 100), &params(), 0.1, 2), 0);
    }

    #[test]
    fn nothing_before_the_kick_in() {
        assert_eq!(extra_lessons(&counts(20, 1, 40), 0, true, (5, 100), &params(), 0.1, 2), 0);
    }
}
