//! The whole server session: arbitrary bytes in arbitrary read sizes, with a driver that accepts
//! or refuses by the input's own bits. Checks that the session never panics, that every message
//! it offers is CRLF-canonical and within limits, that output is always whole reply lines, and that
//! it never answers what was not asked: every final reply line answers a line the client ended
//! (a command, or the end of a body), beside the banner, one closing 421, and the `500 line too
//! long` of a command line still arriving (answered once it passes the limit; its end is then
//! swallowed, so at most one such reply is ahead of the count at any time).
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
    // Line ends the session has taken in, and final reply lines it has sent (banner included).
    let (mut lines_in, mut finals_out) = (0usize, 0usize);
    let mut count_finals = |out: &[u8]| {
        out.split(|&b| b == b'\n').filter(|l| l.len() >= 4 && l[3] == b' ').count()
    };
    finals_out += count_finals(s.output());
    s.output().clear();
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
        let mut closed = false;
        loop {
            let (n, step) = s.advance(&pending);
            assert!(n <= pending.len());
            lines_in += memchr_count(&pending[..n]);
            pending.drain(..n);
            match step {
                Step::NeedInput => break,
                Step::Close => {
                    closed = true;
                    break;
                }
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
        finals_out += count_finals(&out);
        assert!(finals_out <= lines_in + 3, "{finals_out} replies to {lines_in} lines");
        if closed {
            return;
        }
    }
});

fn memchr_count(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}
