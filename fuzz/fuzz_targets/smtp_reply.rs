//! The client-side reply parser on arbitrary server output: never panics, never claims more
//! bytes than it was given.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((reply, n))) = mxguard_smtp::parse_reply(data) {
        assert!(n <= data.len());
        assert!((100..600).contains(&reply.code));
    }
});
