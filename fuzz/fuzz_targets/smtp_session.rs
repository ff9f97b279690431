//! The whole server session: arbitrary bytes in arbitrary read sizes, with a driver that accepts
//! or refuses by the input's own bits. Checks that the session never panics, that every message
//! it offers is CRLF-canonical and within limits, and that output is always whole reply lines.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxguard_smtp::{Ask, Config, Reply, Session, Step};

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let cfg = Config {
        hostname: "fuzz.test".into(),
        max_command_line: 512,
        max_data_line: 200,
        max_message_size: 4096,
        max_recipients: 5,
        max_errors: 50,
        starttls: data[0] & 1 == 1,
        ..Config::default()
    };
    let mut s = Session::new(cfg);
    s.greet();
    let mut pending: Vec<u8> = Vec::new();
    let mut i = 1;
    let mut bit = 0usize;
    let mut choose = |data: &[u8]| {
        bit += 1;
        data[bit % data.len()] & (1 << (bit % 8)) != 0
    };
    while i < data.len() {
        let chunk = 1 + (data[i] as usize % 64);
        let end = (i + chunk).min(data.len());
        pending.extend_from_slice(&data[i..end]);
        i = end;
        loop {
            let (n, step) = s.advance(&pending);
            assert!(n <= pending.len());
            pending.drain(..n);
            match step {
                Step::NeedInput => break,
                Step::Close => return,
                Step::StartTls => {
                    pending.clear();
                    s.tls_started();
                }
                Step::Ask(Ask::Helo { .. }) => s.answer_helo(if choose(data) { Ok(()) } else { Err(Reply::new(550, "5.7.1", "no")) }),
                Step::Ask(Ask::Mail(_)) => s.answer_mail(if choose(data) { Ok(()) } else { Err(Reply::new(550, "5.7.1", "no")) }),
                Step::Ask(Ask::Rcpt(r)) => {
                    assert!(!r.is_empty());
                    s.answer_rcpt(if choose(data) { Ok(()) } else { Err(Reply::new(550, "5.7.1", "no")) })
                }
                Step::Ask(Ask::Message) => {
                    let (env, body) = s.take_message();
                    assert!(!env.rcpts.is_empty() && env.rcpts.len() <= 5);
                    assert!(body.len() <= 4096);
                    for (j, b) in body.iter().enumerate() {
                        if *b == b'\n' {
                            assert!(j > 0 && body[j - 1] == b'\r', "bare LF offered");
                        }
                        if *b == b'\r' {
                            assert!(body.get(j + 1).map_or(env.chunked, |n| *n == b'\n'), "bare CR offered");
                        }
                    }
                    s.answer_message(Reply::new(250, "2.0.0", "ok"));
                }
            }
        }
        let out = std::mem::take(s.output());
        if !out.is_empty() {
            assert!(out.ends_with(b"\r\n"));
        }
    }
});
