//! The DATA receiver against RFC 5321 read literally: whatever the bytes and however they are
//! split into reads, DATA ends exactly after the first `.<CR><LF>` that starts the data or follows
//! a `<CR><LF>` (never at `<LF>.<CR><LF>` or any other smuggling shape), and an untainted body is
//! exactly the dot-unstuffed lines before it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxguard_smtp::body::{BodyLimits, DataReceiver};

fn reference_end(input: &[u8]) -> Option<usize> {
    (0..input.len()).find_map(|p| {
        let follows = p == 0 || (p >= 2 && &input[p - 2..p] == b"\r\n");
        (follows && input[p..].starts_with(b".\r\n")).then_some(p + 3)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else { return };
    // Small limits so over-long lines and the size limit are reached often.
    let limits = BodyLimits { max_line: 16 + (split as usize & 0x1f), max_size: 256 };
    let mut r = DataReceiver::default();
    let mut body = Vec::new();
    let (mut used, mut avail, mut step) = (0usize, 0usize, 1 + (split as usize >> 5));
    let mut end = None;
    while avail < input.len() || used < avail {
        let before = used;
        avail = (avail + step).min(input.len());
        step = step * 3 % 17 + 1;
        let (n, done) = r.consume(&input[used..avail], &mut body, limits);
        assert!(n <= avail - used);
        used += n;
        if done {
            end = Some(used);
            break;
        }
        if avail == input.len() && used == before {
            break;
        }
    }
    let want = reference_end(input);
    assert_eq!(end, want, "ended at {end:?}, RFC 5321 says {want:?}");
    if let (Some(e), None) = (end, r.taint) {
        let content = &input[..e - 3];
        let mut expect = Vec::new();
        for line in content.split_inclusive(|&b| b == b'\n') {
            assert!(line.ends_with(b"\r\n"), "untainted body with a bare line end");
            assert!(!line[..line.len() - 2].contains(&b'\r'), "untainted body with a bare CR");
            expect.extend_from_slice(if line[0] == b'.' { &line[1..] } else { line });
        }
        assert_eq!(body, expect);
    }
});
