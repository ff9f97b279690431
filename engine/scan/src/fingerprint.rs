//! Fingerprints of a message's text, for recognising copies of it (bulk mail, known spam runs):
//! MinHash over word shingles, cut into bands, so that near-copies share bands and unrelated
//! texts almost never do.
//!
//! The text is normalised first — words of letters and digits, lower case, every run of digits
//! one `#` (order numbers, prices and per-recipient codes do not tell copies apart), words over 40
//! characters left out (hash-busters, encoded junk) — then every three consecutive words make a
//! shingle. [`ROWS`] × [`BANDS`] minimums of hashed shingles are taken, and each band of
//! [`ROWS`] minimums hashed into one 64-bit key. Two texts whose shingle sets overlap by a
//! Jaccard similarity J share a given band with probability J^3: at J = 0.8 two bands or more of
//! six 91 % of the time (one or more 99 %), at J = 0.5 17 % (55 %), at J = 0.3 1 % (15 %). So
//! counting copies takes one shared band and acting on a single listing or verdict takes two.
//!
//! Cost: one pass over the text and [`ROWS`] × [`BANDS`] multiply-xors per shingle (a 5 KB
//! text: about 15 µs). Never: allocates per word, or fingerprints a text of fewer words than asked
//! (short texts look alike without being copies).

use std::collections::HashMap;

/// Bands of a fingerprint.
pub const BANDS: usize = 6;
/// Minimums per band.
pub const ROWS: usize = 3;
const SHINGLE: usize = 3;
const LONGEST_WORD: usize = 40;

/// A text's fingerprint: its band keys.
pub type Bands = [u64; BANDS];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The normalised words' hashes, in order.
fn word_hashes(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let (mut h, mut len, mut digits) = (0xcbf2_9ce4_8422_2325u64, 0usize, false);
    let end = |h: &mut u64, len: &mut usize, out: &mut Vec<u64>| {
        if *len > 0 && *len <= LONGEST_WORD {
            out.push(mix(*h));
        }
        *h = 0xcbf2_9ce4_8422_2325;
        *len = 0;
    };
    let feed = |h: &mut u64, c: u32| *h = (*h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3);
    for c in text.chars() {
        if c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric()) {
            if !digits {
                feed(&mut h, u32::from('#'));
                digits = true;
            }
            len += 1;
        } else if c.is_alphanumeric() {
            digits = false;
            for l in c.to_lowercase() {
                feed(&mut h, u32::from(l));
            }
            len += 1;
        } else {
            digits = false;
            end(&mut h, &mut len, &mut out);
        }
    }
    end(&mut h, &mut len, &mut out);
    out
}

/// The fingerprint of `text`, when it has at least `min_words` words (and at least one shingle).
pub fn fingerprint(text: &str, min_words: usize) -> Option<Bands> {
    let words = word_hashes(text);
    if words.len() < min_words.max(SHINGLE) {
        return None;
    }
    const N: usize = ROWS * BANDS;
    // One permutation per row: xor with a seed, multiply by an odd constant, mix the halves.
    let seeds: [u64; N] = std::array::from_fn(|i| mix(0x5eed_0000 + i as u64));
    let mut mins = [u64::MAX; N];
    for w in words.windows(SHINGLE) {
        let s = mix(w[0] ^ w[1].rotate_left(21) ^ w[2].rotate_left(42));
        for (m, seed) in mins.iter_mut().zip(&seeds) {
            let mut v = (s ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15 | 1);
            v ^= v >> 29;
            *m = (*m).min(v);
        }
    }
    Some(std::array::from_fn(|b| {
        let rows = &mins[b * ROWS..(b + 1) * ROWS];
        rows.iter().fold(mix(b as u64 + 1), |acc, r| mix(acc ^ r))
    }))
}

/// The learnable list of known spam texts (lists/bulk-signatures.txt): per line the six band
/// keys of a fingerprint in hex, then an optional label; `#` starts a comment. A text matches a
/// line when it shares at least two of its bands (a near copy; one shared band is too weak for
/// a list that acts without counting).
#[derive(Debug, Default, Clone)]
pub struct Known {
    bands: HashMap<u64, Vec<usize>>,
    labels: Vec<String>,
}

impl Known {
    /// Parses the list; errors are `file:line: reason`.
    pub fn parse(text: &str, file: &str) -> Result<Known, Vec<String>> {
        let mut k = Known::default();
        crate::each_list_line(text, file, |line| {
            let mut fields = line.split_whitespace();
            let bands: Vec<Option<u64>> = fields.by_ref().take(BANDS).map(|h| if h.len() == 16 { u64::from_str_radix(h, 16).ok() } else { None }).collect();
            if bands.len() != BANDS || bands.iter().any(Option::is_none) {
                return Err(format!("not {BANDS} 16-hex-digit band keys"));
            }
            let bands: Vec<u64> = bands.into_iter().flatten().collect();
            k.add(&bands, &fields.collect::<Vec<_>>().join(" "));
            Ok(())
        })?;
        Ok(k)
    }

    /// Lists one more signature.
    pub fn add(&mut self, bands: &[u64], label: &str) {
        let at = self.labels.len();
        self.labels.push(label.to_string());
        for b in bands {
            self.bands.entry(*b).or_default().push(at);
        }
    }

    /// Signatures listed.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The label of the first listed signature sharing two or more bands with `bands`.
    pub fn matching(&self, bands: &Bands) -> Option<&str> {
        let mut hits: Vec<usize> = bands.iter().filter_map(|b| self.bands.get(b)).flatten().copied().collect();
        hits.sort_unstable();
        hits.windows(2).find(|w| w[0] == w[1]).map(|w| self.labels[w[0]].as_str())
    }
}

/// The list line for a fingerprint.
pub fn signature_line(bands: &Bands, label: &str) -> String {
    let hex: Vec<String> = bands.iter().map(|b| format!("{b:016x}")).collect();
    if label.is_empty() {
        hex.join(" ")
    } else {
        format!("{} {label}", hex.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Dear customer, we are pleased to offer you an exclusive discount on our premium \
        watches. Visit our online store today and save up to seventy percent on every order placed \
        before the end of the month. Free shipping worldwide, secure payment, satisfaction guaranteed. \
        Click the link below to browse the catalogue and claim your personal voucher now.";

    fn shared(a: &Bands, b: &Bands) -> usize {
        a.iter().filter(|x| b.contains(x)).count()
    }

    #[test]
    fn copies_share_bands_and_other_texts_do_not() {
        let a = fingerprint(TEXT, 20).unwrap();
        // Per-recipient details: numbers, case, punctuation, a name, a hash-buster.
        let copy = TEXT.replace("Dear customer,", "Dear JOHN -") + " Order 48213 ref qz8xk2m9w7v5t3r1p0n6b4c2x8z7l5k3j1h9g7f5d3s1";
        let b = fingerprint(&format!("{copy} Your code: 99812"), 20).unwrap();
        assert!(shared(&a, &b) >= 2, "a near copy shares bands: {}", shared(&a, &b));
        assert_eq!(fingerprint(&TEXT.to_uppercase(), 20), Some(a), "case does not count");
        let other = "Hi team, the quarterly report is attached. Please review the figures for the northern \
            region before Thursday's meeting, and send me your comments about the budget forecast and the \
            hiring plan for next year. Thanks, Maria";
        let c = fingerprint(other, 20).unwrap();
        assert_eq!(shared(&a, &c), 0);
        assert!(fingerprint("Lunch at noon? Bring the slides.", 20).is_none(), "too short");
    }

    #[test]
    fn digits_collapse_and_long_words_are_left_out() {
        assert_eq!(word_hashes("Order 123 and 98765"), word_hashes("order 7 AND 0"));
        assert_eq!(word_hashes(&format!("a {} b", "x".repeat(41))), word_hashes("a b"));
        assert_eq!(word_hashes("Straße café"), word_hashes("STRAßE CAFÉ"));
        assert_eq!(word_hashes("a, b;c").len(), 3);
    }

    #[test]
    fn the_known_list() {
        let f = fingerprint(TEXT, 20).unwrap();
        let list = format!("# runs\n{}\n\n{}\n", signature_line(&f, "watches 2026-11"), signature_line(&[1, 2, 3, 4, 5, 6], ""));
        let k = Known::parse(&list, "bulk-signatures.txt").unwrap();
        assert_eq!(k.len(), 2);
        assert_eq!(k.matching(&f), Some("watches 2026-11"));
        assert_eq!(k.matching(&[f[0], 9, 9, 9, 9, 9]), None, "one band is not enough");
        assert_eq!(k.matching(&[1, 2, 7, 8, 9, 9]), Some(""));
        let e = Known::parse("0123 4567\nzz\n", "b.txt").unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(e[0].starts_with("b.txt:1:"));
    }
}
