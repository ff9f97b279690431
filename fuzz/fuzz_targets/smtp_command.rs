//! The command parser on arbitrary lines: never panics; any address it accepts is non-empty
//! (except the null sender), short, and free of control characters.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxguard_smtp::command::{parse, Command};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Command::Mail(m)) => {
            assert!(m.address.len() <= 256);
            assert!(!m.address.chars().any(|c| c.is_control()));
        }
        Ok(Command::Rcpt(r)) => {
            assert!(!r.is_empty() && r.len() <= 256);
            assert!(!r.chars().any(|c| c.is_control()));
        }
        Ok(_) => {}
        Err(reply) => assert!(reply.code >= 500),
    }
});
