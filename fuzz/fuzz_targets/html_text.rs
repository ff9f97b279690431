//! The HTML part's text (engine/scan/src/html_text.rs) against mail-parser's `html_to_text`,
//! which it replaces for speed: the two must give the same text for any input, and neither may
//! panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    assert_eq!(mxguard_scan::html_text::html_to_text(&html), mail_parser::decoders::html::html_to_text(&html));
});
