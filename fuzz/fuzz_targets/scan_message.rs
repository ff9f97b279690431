//! The content scanners over arbitrary bytes as a message: MIME parsing, link extraction, HTML
//! attribute scanning, attachment magic, Internet Shortcuts and zip walking, heuristics,
//! keyword/rule matching, pictures and the Bayes tokenizer (a seed in fuzz/seeds/scan_message
//! carries shortcuts, whose names the fuzzer would hardly guess).
//! Must never panic or hang, whatever the input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn tables() -> &'static mxguard_scan::Tables {
    static T: OnceLock<mxguard_scan::Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = mxguard_scan::Tables::empty();
        t.rules = mxguard_scan::rules::Rules::parse("mortgage, click here\n(v[i1]agra)\n", "invoice\n", "body A /free\\s+money/i\nheader S Subject =~ /win/i\nuri U /\\.php/\n")
            .expect("fixed rules compile");
        t
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = mxguard_scan::scan_with(data, tables(), 1_790_000_000, true);
});
