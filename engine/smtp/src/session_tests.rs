//! Table-driven tests of the session: a scripted client, a trivial policy (recipients at
//! example.test are local), and the exact replies expected.

use crate::{Ask, Config, Envelope, Reply, Session, Step};

struct Harness {
    s: Session,
    pending: Vec<u8>,
    delivered: Vec<(Envelope, Vec<u8>)>,
    closed: bool,
    starttls: u32,
}

impl Harness {
    fn new(cfg: Config) -> Harness {
        let mut s = Session::new(cfg);
        s.greet();
        let mut h = Harness { s, pending: Vec::new(), delivered: Vec::new(), closed: false, starttls: 0 };
        let banner = h.take();
        assert!(banner.starts_with("220 mx.test ESMTP"), "{banner}");
        h
    }

    fn default() -> Harness {
        Harness::new(Config { hostname: "mx.test".into(), ..Config::default() })
    }

    fn take(&mut self) -> String {
        String::from_utf8(std::mem::take(self.s.output())).unwrap()
    }

    /// Feeds bytes as the driver would and returns every reply they produced.
    fn send(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        loop {
            let (n, step) = self.s.advance(&self.pending);
            self.pending.drain(..n);
            match step {
                Step::NeedInput => break,
                Step::Close => {
                    self.closed = true;
                    break;
                }
                Step::StartTls => {
                    self.starttls += 1;
                    self.pending.clear();
                    self.s.tls_started();
                }
                Step::Ask(Ask::Helo { name, .. }) => self.s.answer_helo(if name == "bad.example" {
                    Err(Reply::new(550, "5.7.1", "go away"))
                } else {
                    Ok(())
                }),
                Step::Ask(Ask::Mail(m)) => self.s.answer_mail(if m.address.starts_with("spammer@") {
                    Err(Reply::new(550, "5.7.1", "sender refused"))
                } else {
                    Ok(())
                }),
                Step::Ask(Ask::Rcpt(r)) => self.s.answer_rcpt(if r.ends_with("@example.test") {
                    Ok(())
                } else {
                    Err(Reply::new(550, "5.7.1", "relay denied"))
                }),
                Step::Ask(Ask::Message) => {
                    let m = self.s.take_message();
                    self.delivered.push(m);
                    self.s.answer_message(Reply::new(250, "2.0.0", "Ok: queued as Q1"));
                }
            }
        }
        self.take()
    }

    fn codes(&mut self, bytes: &[u8]) -> Vec<u16> {
        self.send(bytes)
            .lines()
            .filter(|l| l.len() > 3 && l.as_bytes()[3] == b' ')
            .map(|l| l[..3].parse().unwrap())
            .collect()
    }
}

#[test]
fn full_transaction_with_ehlo_extensions() {
    let mut h = Harness::default();
    let ehlo = h.send(b"EHLO client.example\r\n");
    for ext in ["250-mx.test", "PIPELINING", "SIZE 52428800", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING"] {
        assert!(ehlo.contains(ext), "{ext} missing in {ehlo}");
    }
    assert!(!ehlo.contains("STARTTLS"), "not offered without TLS config");
    assert_eq!(h.send(b"MAIL FROM:<a@sender.example> SIZE=100\r\n"), "250 2.1.0 Ok\r\n");
    assert_eq!(h.send(b"RCPT TO:<u@example.test>\r\n"), "250 2.1.5 Ok\r\n");
    assert_eq!(h.send(b"DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    assert_eq!(h.send(b"Subject: hi\r\n\r\n..body\r\n.\r\n"), "250 2.0.0 Ok: queued as Q1\r\n");
    assert_eq!(h.send(b"QUIT\r\n"), "221 2.0.0 Bye\r\n");
    assert!(h.closed);
    let (env, body) = &h.delivered[0];
    assert_eq!(env.mail_from, "a@sender.example");
    assert_eq!(env.rcpts, vec!["u@example.test".to_string()]);
    assert_eq!(env.helo, "client.example");
    assert!(env.esmtp && !env.tls && !env.chunked);
    assert_eq!(env.declared_size, Some(100));
    assert_eq!(body, b"Subject: hi\r\n\r\n.body\r\n");
}

#[test]
fn pipelined_group_gets_all_replies_in_order() {
    let mut h = Harness::default();
    h.send(b"EHLO c\r\n");
    let codes = h.codes(
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nRCPT TO:<y@elsewhere.example>\r\nRCPT TO:<z@example.test>\r\nDATA\r\n",
    );
    assert_eq!(codes, vec![250, 250, 550, 250, 354]);
    assert_eq!(h.codes(b"x\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<q@example.test>\r\nDATA\r\nbounce\r\n.\r\nQUIT\r\n"), vec![250, 250, 250, 354, 250, 221]);
    assert_eq!(h.delivered.len(), 2);
    assert_eq!(h.delivered[0].0.rcpts, vec!["x@example.test", "z@example.test"]);
    assert_eq!(h.delivered[1].0.mail_from, "");
}

#[test]
fn input_split_at_every_byte_gives_the_same_result() {
    let script = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nBDAT 5\r\nab\r\nCBDAT 3 LAST\r\nd\r\nDATA\r\nRSET\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nDATA\r\nl1\r\n.l2\r\n.\r\nQUIT\r\n";
    let mut whole = Harness::default();
    let all = whole.send(script);
    let mut bytewise = Harness::default();
    let mut out = String::new();
    for b in script.iter() {
        out.push_str(&bytewise.send(&[*b]));
    }
    assert_eq!(all, out);
    assert_eq!(whole.delivered, bytewise.delivered);
    assert_eq!(whole.delivered.len(), 2);
    assert_eq!(whole.delivered[0].1, b"ab\r\nCd\r\n");
    assert!(whole.delivered[0].0.chunked);
    assert_eq!(whole.delivered[1].1, b"l1\r\nl2\r\n");
}

#[test]
fn sequencing_errors() {
    let mut h = Harness::default();
    assert_eq!(h.codes(b"MAIL FROM:<a@b.example>\r\n"), vec![503]);
    assert_eq!(h.codes(b"RCPT TO:<x@example.test>\r\n"), vec![503]);
    assert_eq!(h.codes(b"DATA\r\n"), vec![503]);
    h.send(b"HELO c\r\n");
    assert_eq!(h.codes(b"DATA\r\n"), vec![503]);
    assert_eq!(h.codes(b"MAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\n"), vec![250, 503]);
    assert_eq!(h.codes(b"DATA\r\n"), vec![554], "no valid recipients");
    assert_eq!(h.codes(b"RSET\r\nRCPT TO:<x@example.test>\r\n"), vec![250, 503]);
    assert_eq!(h.codes(b"FOO\r\nEXPN x\r\nAUTH LOGIN\r\nVRFY x\r\nHELP\r\nNOOP\r\n"), vec![500, 502, 502, 252, 214, 250]);
    assert_eq!(h.codes(b"STARTTLS\r\n"), vec![502]);
}

#[test]
fn helo_and_mail_refusals_come_from_the_driver() {
    let mut h = Harness::default();
    assert_eq!(h.codes(b"EHLO bad.example\r\n"), vec![550]);
    assert_eq!(h.codes(b"MAIL FROM:<a@b.example>\r\n"), vec![503], "HELO was refused");
    h.send(b"EHLO good.example\r\n");
    assert_eq!(h.codes(b"MAIL FROM:<spammer@b.example>\r\nRCPT TO:<x@example.test>\r\n"), vec![550, 503]);
}

#[test]
fn helo_not_required_when_configured() {
    let mut h = Harness::new(Config { hostname: "mx.test".into(), require_helo: false, ..Config::default() });
    assert_eq!(h.codes(b"MAIL FROM:<a@b.example>\r\n"), vec![250]);
}

#[test]
fn ehlo_can_be_disabled() {
    let mut h = Harness::new(Config { hostname: "mx.test".into(), ehlo_enabled: false, ..Config::default() });
    assert_eq!(h.codes(b"EHLO c\r\nHELO c\r\n"), vec![502, 250]);
    assert!(h.delivered.is_empty());
}

#[test]
fn size_limits() {
    let mut h = Harness::new(Config { hostname: "mx.test".into(), max_message_size: 50, ..Config::default() });
    h.send(b"EHLO c\r\n");
    assert_eq!(h.codes(b"MAIL FROM:<a@b.example> SIZE=51\r\n"), vec![552]);
    assert_eq!(h.codes(b"MAIL FROM:<a@b.example> SIZE=50\r\nRCPT TO:<x@example.test>\r\nDATA\r\n"), vec![250, 250, 354]);
    let big = format!("{}\r\n.\r\n", "a".repeat(60));
    assert_eq!(h.codes(big.as_bytes()), vec![552]);
    // The session continues normally after the refusal.
    assert_eq!(h.codes(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nBDAT 60 LAST\r\n"), vec![250, 250]);
    assert_eq!(h.codes(&[b'a'; 60]), vec![552]);
    assert!(h.delivered.is_empty());
    assert_eq!(h.codes(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nDATA\r\nsmall\r\n.\r\n"), vec![250, 250, 354, 250]);
}

#[test]
fn recipient_limit_is_transient() {
    let mut h = Harness::new(Config { hostname: "mx.test".into(), max_recipients: 2, ..Config::default() });
    h.send(b"HELO c\r\n");
    assert_eq!(
        h.codes(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<1@example.test>\r\nRCPT TO:<2@example.test>\r\nRCPT TO:<3@example.test>\r\n"),
        vec![250, 250, 250, 452]
    );
}

#[test]
fn ten_megabyte_command_line() {
    let mut h = Harness::default();
    let mut line = vec![b'A'; 10 << 20];
    line.extend_from_slice(b"\r\nNOOP\r\n");
    // Fed in 64 KiB reads, as the driver would.
    let mut codes = Vec::new();
    for c in line.chunks(65536) {
        codes.extend(h.codes(c));
    }
    assert_eq!(codes, vec![500, 250]);
    assert!(!h.closed);
}

#[test]
fn ten_megabyte_data_line_is_refused_after_the_message() {
    let mut h = Harness::default();
    h.send(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nDATA\r\n");
    let mut msg = vec![b'x'; 10 << 20];
    msg.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
    let mut codes = Vec::new();
    for c in msg.chunks(65536) {
        codes.extend(h.codes(c));
    }
    assert_eq!(codes, vec![552, 250]);
    assert!(h.delivered.is_empty());
}

#[test]
fn bare_lf_smuggling_is_refused_and_nothing_is_smuggled() {
    let mut h = Harness::default();
    h.send(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nDATA\r\n");
    // The classic smuggling payload: a bare-LF "end of data" followed by a second transaction.
    let attack = b"Subject: one\r\n\r\nhi\n.\nMAIL FROM:<admin@bank.example>\r\nRCPT TO:<x@example.test>\r\nDATA\r\nforged\r\n.\r\n";
    assert_eq!(h.codes(attack), vec![550]);
    assert!(h.delivered.is_empty(), "neither the message nor the smuggled one is accepted");
    let refused = h.s.take_refused();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status, "5.5.2");
    assert!(h.s.take_refused().is_empty());
    assert!(h.closed, "a bare-newline refusal ends the session");
    assert_eq!(h.codes(b"NOOP\r\n"), Vec::<u16>::new());
}

#[test]
fn bare_cr_is_refused() {
    let mut h = Harness::default();
    h.send(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nDATA\r\n");
    assert_eq!(h.codes(b"a\rb\r\n.\r\n"), vec![550]);
    assert!(h.closed);
    let mut h = Harness::default();
    h.send(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\n");
    assert_eq!(h.codes(b"BDAT 4 LAST\r\na\nb\r"), vec![550]);
    assert!(h.closed);
}

#[test]
fn bdat_without_transaction_consumes_the_chunk() {
    let mut h = Harness::default();
    h.send(b"EHLO c\r\n");
    // The chunk contains what looks like a command; it must be eaten, not executed.
    assert_eq!(h.codes(b"BDAT 6\r\nQUIT\r\nNOOP\r\n"), vec![503, 250]);
    assert!(!h.closed);
    assert_eq!(h.codes(b"MAIL FROM:<a@b.example>\r\nBDAT 6 LAST\r\nQUIT\r\n"), vec![250, 554]);
    assert!(!h.closed);
}

#[test]
fn data_after_bdat_and_empty_last_chunk() {
    let mut h = Harness::default();
    h.send(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\n");
    assert_eq!(h.codes(b"BDAT 3\r\nab\n"), vec![250]);
    assert_eq!(h.codes(b"DATA\r\n"), vec![503]);
    assert_eq!(h.codes(b"BDAT 0 LAST\r\n"), vec![550], "bare LF in the first chunk");
    assert!(h.closed);
    let mut h = Harness::default();
    h.send(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\n");
    assert_eq!(h.codes(b"BDAT 4\r\nab\r\nBDAT 0 LAST\r\n"), vec![250, 250]);
    assert_eq!(h.delivered[0].1, b"ab\r\n");
}

#[test]
fn error_limit_closes_with_421() {
    let mut h = Harness::new(Config { hostname: "mx.test".into(), max_errors: 3, ..Config::default() });
    let out = h.send(b"X\r\nY\r\nZ\r\nNOOP\r\n");
    assert!(out.ends_with("421 4.7.0 mx.test Error: too many errors\r\n"), "{out}");
    assert!(h.closed);
}

#[test]
fn command_limit_closes_with_421() {
    let mut h = Harness::new(Config { hostname: "mx.test".into(), max_commands: 3, ..Config::default() });
    assert_eq!(h.codes(b"NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n"), vec![250, 250, 250, 421]);
    assert!(h.closed);
}

#[test]
fn starttls_resets_and_drops_pipelined_plaintext() {
    let mut h = Harness::new(Config { hostname: "mx.test".into(), starttls: true, ..Config::default() });
    let ehlo = h.send(b"EHLO c\r\n");
    assert!(ehlo.contains("250 STARTTLS") || ehlo.contains("250-STARTTLS"), "{ehlo}");
    // Injected command after STARTTLS in the same packet must not run.
    assert_eq!(h.codes(b"STARTTLS\r\nMAIL FROM:<inject@b.example>\r\n"), vec![220]);
    assert_eq!(h.starttls, 1);
    assert!(h.s.is_tls());
    assert_eq!(h.codes(b"MAIL FROM:<a@b.example>\r\n"), vec![503], "EHLO again after TLS");
    let ehlo = h.send(b"EHLO c\r\n");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(h.codes(b"STARTTLS\r\n"), vec![554]);
    h.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nDATA\r\nx\r\n.\r\n");
    assert!(h.delivered[0].0.tls);
    assert_eq!(h.delivered[0].0.protocol(), "ESMTPS");
}

#[test]
fn smtputf8_addresses() {
    let mut h = Harness::default();
    h.send(b"EHLO c\r\n");
    assert_eq!(h.codes("MAIL FROM:<a@b.example>\r\nRCPT TO:<ü@example.test>\r\n".as_bytes()), vec![250, 553]);
    h.send(b"RSET\r\n");
    assert_eq!(
        h.codes("MAIL FROM:<ö@b.example> SMTPUTF8\r\nRCPT TO:<ü@example.test>\r\nDATA\r\nx\r\n.\r\n".as_bytes()),
        vec![250, 250, 354, 250]
    );
    assert_eq!(h.delivered[0].0.protocol(), "UTF8SMTP");
}

#[test]
fn http_probe_is_answered_and_closed() {
    let mut h = Harness::default();
    assert_eq!(h.codes(b"GET / HTTP/1.1\r\nHost: x\r\n"), vec![221]);
    assert!(h.closed);
}

#[test]
fn commands_may_end_in_bare_lf_but_data_may_not() {
    let mut h = Harness::default();
    assert_eq!(h.codes(b"EHLO c\nMAIL FROM:<a@b.example>\nRCPT TO:<x@example.test>\nDATA\n"), vec![250, 250, 250, 354]);
    // Neither `\n.\n` nor the `.\r\n` after a bare LF ends the data; only CRLF.CRLF does.
    assert_eq!(h.codes(b"x\n.\n.\r\n"), Vec::<u16>::new());
    assert_eq!(h.codes(b"y\r\n.\r\n"), vec![550]);
    assert!(h.closed);
}

/// Every smuggling shape of an "end of data" an upstream server might take for one, sent inside a
/// message ahead of a forged second transaction, with DATA (one write, and one byte at a time) and
/// with BDAT: the message and the forgery are both refused, the session ends, and only a real
/// CRLF.CRLF ends the DATA.
#[test]
fn smuggling_battery_never_delivers_the_forged_message() {
    const SHAPES: [&[u8]; 8] =
        [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r", b"\n.\r", b"\r.\n"];
    let forged = b"MAIL FROM:<admin@bank.example>\r\nRCPT TO:<x@example.test>\r\nDATA\r\nSubject: forged\r\n\r\nforged\r\n.\r\n";
    for shape in SHAPES {
        let mut body = b"Subject: one\r\n\r\nhello".to_vec();
        body.extend_from_slice(shape);
        body.extend_from_slice(forged);
        for pipelined in [false, true] {
            for bytewise in [false, true] {
                let mut h = Harness::default();
                let head = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nDATA\r\n";
                let mut codes = Vec::new();
                let mut input = head.to_vec();
                if !pipelined {
                    codes.extend(h.codes(&input));
                    input.clear();
                }
                input.extend_from_slice(&body);
                if bytewise {
                    // The refusal comes with the last byte, the real CRLF.CRLF, not at the shape.
                    for (i, b) in input.iter().enumerate() {
                        let got = h.codes(std::slice::from_ref(b));
                        if got.contains(&550) {
                            assert_eq!(i, input.len() - 1, "{shape:?} ended the data early");
                        }
                        codes.extend(got);
                    }
                } else {
                    codes.extend(h.codes(&input));
                }
                assert!(h.delivered.is_empty(), "{shape:?} pipelined={pipelined}: {:?}", h.delivered);
                assert_eq!(codes, vec![250, 250, 250, 354, 550], "{shape:?} pipelined={pipelined} bytewise={bytewise}");
                assert!(h.closed, "{shape:?}");
            }
        }
        // BDAT: the chunk carries the same bytes by count; they are content, never commands.
        let mut h = Harness::default();
        let mut input = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\n".to_vec();
        input.extend_from_slice(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
        input.extend_from_slice(&body);
        assert_eq!(h.codes(&input), vec![250, 250, 250, 550], "BDAT {shape:?}");
        assert!(h.delivered.is_empty() && h.closed, "BDAT {shape:?}");
    }
}

#[test]
fn close_with_writes_reply_and_closes() {
    let mut h = Harness::default();
    h.s.close_with(Reply::new(421, "4.4.2", "mx.test Error: timeout exceeded"));
    assert_eq!(h.take(), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    let (_, step) = h.s.advance(b"NOOP\r\n");
    assert_eq!(step, Step::Close);
}

#[test]
fn arbitrary_garbage_never_panics() {
    // A cheap deterministic stand-in for the fuzz target, so `cargo test` covers it too.
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..300 {
        let mut h = Harness::default();
        let mut buf = Vec::new();
        for _ in 0..400 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let pick = (seed % 16) as u8;
            buf.push(match pick {
                0 => b'\r',
                1 => b'\n',
                2 => b'.',
                3 => b' ',
                4 => b':',
                5 => b'<',
                6 => b'>',
                7 => b'@',
                _ => b"EHLOMAILRCPTDATABDAT0123LAST"[(seed >> 8) as usize % 28],
            });
        }
        for c in buf.chunks(7) {
            h.send(c);
            if h.closed {
                break;
            }
        }
    }
}
