//! Files an administrator (or the console, for a list or rule file pasted into a form) hands the
//! gateway: a knob config file (and a `--set` value, which is parsed the same way), the keyword
//! lists and content rules (compiled into hyperscan), and the per-domain policy file. Whatever
//! the bytes, each parser answers a value or its `file:line: reason` errors — never a panic, and
//! an error always names where it is.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Up to five files, separated by 0xFF (a byte no UTF-8 text holds).
    let mut parts = data.split(|&b| b == 0xFF).map(|p| String::from_utf8_lossy(p).into_owned());
    let mut next = || parts.next().unwrap_or_default();
    let (config, black, white, content, domains) = (next(), next(), next(), next(), next());
    if let Err(errors) = mxguard_tuning::config::parse(&config, "fuzz.conf") {
        assert!(!errors.is_empty());
        for e in &errors {
            assert!(e.starts_with("fuzz.conf"), "an error that does not say where: {e}");
        }
    }
    // Big rule sets only slow the fuzzer down (each input is compiled): keep them small.
    if black.len() + white.len() + content.len() <= 4096 {
        if let Err(errors) = mxguard_scan::rules::Rules::parse(&black, &white, &content) {
            assert!(!errors.is_empty());
        }
    }
    let _ = mxguard_policy::domains::DomainPolicies::parse("domain-policy.txt", &domains);
});
