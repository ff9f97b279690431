//! Unicode tricks that hide a word from filters, undone for the tokenizer: invisible characters
//! inside the word (a soft hyphen, a zero-width space), full-width forms (`ｖｉａｇｒａ`), and
//! Cyrillic or Greek letters that look like Latin ones mixed into a Latin word (`pаypаl` with
//! Cyrillic `а`). Each trick found is named, so the tokenizer can make it a token of its own:
//! Bayes learns how much it says rather than a rule deciding.
//!
//! Only words with characters beyond ASCII come here (ASCII words never need it), so plain
//! English text pays nothing; a folded word costs one pass over its characters and one string.
//! Must never: change a word written in one script (a Russian or Greek word stays as it is, look-
//! alikes are folded only in a word that has Latin letters too), or decide anything about a
//! message.

/// The characters that show nothing and do not separate words in running text: the soft hyphen,
/// zero-width spaces and joiners, direction marks and embeddings, word joiners and invisible
/// operators, variation selectors, the byte-order mark (Unicode's default-ignorable characters
/// that turn up inside words).
pub fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}')
}

/// The ASCII character a full-width form stands for (`Ａ` → `A`, `０` → `0`).
fn full_width(c: char) -> Option<char> {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0),
        _ => None,
    }
}

/// The Latin letter a Cyrillic or Greek letter is drawn like (the look-alikes phishing uses).
fn look_alike(c: char) -> Option<char> {
    Some(match c {
        // Cyrillic.
        'а' => 'a', 'е' => 'e', 'о' => 'o', 'р' => 'p', 'с' => 'c', 'у' => 'y', 'х' => 'x',
        'і' => 'i', 'ј' => 'j', 'ѕ' => 's', 'һ' => 'h', 'ԁ' => 'd', 'ӏ' => 'l', 'ԛ' => 'q',
        'ԝ' => 'w', 'к' => 'k', 'ѵ' => 'v',
        'А' => 'A', 'В' => 'B', 'Е' => 'E', 'К' => 'K', 'М' => 'M', 'Н' => 'H', 'О' => 'O',
        'Р' => 'P', 'С' => 'C', 'Т' => 'T', 'Х' => 'X', 'У' => 'Y', 'І' => 'I', 'Ј' => 'J',
        'Ѕ' => 'S', 'Ԛ' => 'Q', 'Ԝ' => 'W',
        // Greek.
        'ο' => 'o', 'α' => 'a', 'ν' => 'v', 'ι' => 'i', 'κ' => 'k', 'ρ' => 'p', 'υ' => 'u',
        'Α' => 'A', 'Β' => 'B', 'Ε' => 'E', 'Ζ' => 'Z', 'Η' => 'H', 'Ι' => 'I', 'Κ' => 'K',
        'Μ' => 'M', 'Ν' => 'N', 'Ο' => 'O', 'Ρ' => 'P', 'Τ' => 'T', 'Υ' => 'Y', 'Χ' => 'X',
        _ => return None,
    })
}

/// The tricks found in a word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tricks(u8);

impl Tricks {
    const INVISIBLE: u8 = 1;
    const FULL_WIDTH: u8 = 2;
    const LOOK_ALIKE: u8 = 4;

    /// Each trick's name (the text of its token).
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        [
            (Tricks::INVISIBLE, "invisible characters in words"),
            (Tricks::FULL_WIDTH, "full-width letters"),
            (Tricks::LOOK_ALIKE, "look-alike letters in a word"),
        ]
        .into_iter()
        .filter(move |(bit, _)| self.0 & bit != 0)
        .map(|(_, name)| name)
    }
}

/// A word with the tricks undone, lower case.
pub struct Folded {
    pub word: String,
    pub tricks: Tricks,
}

/// `w` lower-cased with the tricks undone: invisible characters left out, full-width forms made
/// ASCII, and — in a word that has Latin letters (after that) — Cyrillic and Greek look-alikes
/// made Latin. An invisible character counts as a trick only in a word with Latin letters (in
/// other scripts zero-width joiners are spelling).
pub fn fold(w: &str) -> Folded {
    let latin = w.chars().any(|c| full_width(c).unwrap_or(c).is_ascii_alphabetic());
    let mut tricks = 0u8;
    let mut word = String::with_capacity(w.len());
    for c in w.chars() {
        if invisible(c) {
            tricks |= Tricks::INVISIBLE;
            continue;
        }
        let c = full_width(c).inspect(|_| tricks |= Tricks::FULL_WIDTH).unwrap_or(c);
        let c = if latin { look_alike(c).inspect(|_| tricks |= Tricks::LOOK_ALIKE).unwrap_or(c) } else { c };
        word.extend(c.to_lowercase());
    }
    if !latin {
        tricks &= !Tricks::INVISIBLE;
    }
    Folded { word, tricks: Tricks(tricks) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(w: &str) -> (String, Vec<&'static str>) {
        let f = fold(w);
        (f.word, f.tricks.names().collect())
    }

    #[test]
    fn tricks_are_undone_and_named() {
        assert_eq!(folded("Via\u{00ad}gra"), ("viagra".into(), vec!["invisible characters in words"]));
        assert_eq!(folded("\u{ff36}\u{ff49}\u{ff41}\u{ff47}\u{ff52}\u{ff41}"), ("viagra".into(), vec!["full-width letters"]));
        assert_eq!(folded("P\u{0430}yP\u{0430}l"), ("paypal".into(), vec!["look-alike letters in a word"]));
        assert_eq!(folded("\u{0391}pple\u{200b}"), ("apple".into(), vec!["invisible characters in words", "look-alike letters in a word"]));
    }

    #[test]
    fn one_script_words_stay_as_written() {
        assert_eq!(folded("Сайт"), ("сайт".into(), vec![]));
        assert_eq!(folded("сорок"), ("сорок".into(), vec![]), "all look-alikes, but no Latin letter");
        assert_eq!(folded("ΚΑΛΟ"), ("καλο".into(), vec![]));
        assert_eq!(folded("Café"), ("café".into(), vec![]));
        // A zero-width non-joiner in a Persian word is spelling, not a trick (left out all the same).
        assert_eq!(folded("می\u{200c}خواهم"), ("میخواهم".into(), vec![]));
        assert_eq!(folded("\u{200b}\u{200b}").0, "");
    }
}
