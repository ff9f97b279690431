//! Texts for tests that compare a fast reading with a plain one: strings of pieces drawn at
//! random (a fixed seed, so a failure repeats), so that the pieces meet in every order and at
//! every offset.

/// `count` texts, each of up to `max_pieces` pieces of `pieces` drawn with xorshift64 from `seed`.
pub fn texts(pieces: &[&str], max_pieces: u64, count: usize, mut seed: u64) -> Vec<String> {
    // xorshift64 never reaches 0 from another value, so it never sticks.
    assert!(seed != 0);
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..count)
        .map(|_| {
            let n = next() % (max_pieces + 1);
            (0..n).map(|_| pieces[(next() % pieces.len() as u64) as usize]).collect()
        })
        .collect()
}
