//! mxblast's options, once: `mxblast --help` prints them and `mxblast manpage` writes mxblast(1)
//! from them (the Debian package's build does), so the two never disagree; a test checks that
//! every flag the parser takes is listed here.

use mxguard_tuning::manpage::{Item, Page, Section};

pub const SINK: &[(&str, &str)] = &[
    ("--listen ADDR", "address to listen on (ip:port; repeatable; default 127.0.0.1:2526)"),
    ("--cores N", "executors, one a core (default 1)"),
    ("--stats FILE", "write the counts (messages, bytes, connections) to FILE as JSON, kept current"),
    ("--save DIR", "keep every message received as a file in DIR"),
    ("--reject-rcpt SUBSTR", "answer 550 to a RCPT containing SUBSTR (repeatable)"),
    ("--defer-rcpt SUBSTR", "answer 450 to a RCPT containing SUBSTR (repeatable)"),
    ("--tls", "offer STARTTLS with a self-signed certificate"),
    ("--duration SECS", "stop after SECS seconds"),
];

pub const SEND: &[(&str, &str)] = &[
    ("--server HOST:PORT", "where to send (default 127.0.0.1:2525)"),
    ("-c, --connections N", "concurrent connections (default 10)"),
    ("-m, --messages N", "messages in all (default 1000 unless --duration)"),
    ("-d, --duration SECS", "send for SECS seconds"),
    ("-s, --size BYTES", "size of each generated message (default 2048)"),
    ("--dir DIR", "send the files of DIR (one message each, in turn) instead of generated ones"),
    ("--per-conn K", "messages a connection sends before it reconnects (default 100)"),
    ("--no-pipelining", "wait for each reply (PIPELINING off)"),
    ("--starttls", "STARTTLS before MAIL"),
    ("--implicit-tls", "TLS from the first byte (port 465 style)"),
    ("--from ADDR", "envelope sender (default blast@sender.example)"),
    ("--to ADDR", "a recipient (repeatable; default user@example.test)"),
    ("--rcpts K", "recipients a message (from the --to list, in turn)"),
    ("--run ID", "a tag put in every message, letters and digits only"),
    ("--cores N", "executors (default: every core)"),
    ("--json FILE", "write the results (rate, latency percentiles, replies) as JSON"),
    ("--progress", "print the rate every second"),
    ("--accepted FILE", "write the Message-ID of every message answered 250, one a line"),
    ("--rate MSGS_PER_S", "offer this many messages a second (open loop) instead of as fast as replies come"),
    ("--idle N", "open N connections that only say EHLO and wait (with --hold)"),
    ("--hold SECS", "how long --idle connections stay (default 10)"),
];

fn table(rows: &[(&str, &str)]) -> String {
    rows.iter().map(|(f, d)| format!("  {f:<22} {d}")).collect::<Vec<_>>().join("\n")
}

/// `mxblast --help`.
pub fn usage() -> String {
    format!(
        "usage:\n  mxblast [send] [OPTION]...   send mail to an SMTP server, as fast as it takes it\n{}\n  mxblast sink [OPTION]...     an SMTP server that accepts (and counts) everything\n{}\n  mxblast manpage              mxblast(1), in roff\n  mxblast help | -h | --help   this text",
        table(SEND),
        table(SINK)
    )
}

/// mxblast(1).
pub fn page() -> Page<'static> {
    let tagged = |rows: &[(&str, &str)]| rows.iter().map(|(f, d)| Item::Tagged(f.to_string(), d.to_string())).collect::<Vec<_>>();
    Page {
        name: "mxblast",
        section: 1,
        summary: "SMTP load generator and test sink bundled with mxguard",
        sections: vec![
            Section {
                heading: "Synopsis".into(),
                items: vec![Item::Lines("mxblast [send] [OPTION]...\nmxblast sink [OPTION]...".into())],
            },
            Section {
                heading: "Description".into(),
                items: vec![Item::Text("mxblast send opens connections to an SMTP server and sends messages with pipelining, measuring the rate and the time from the end of data to each 250. mxblast sink is a fast SMTP server that accepts everything (or refuses chosen recipients) and counts what it received: the downstream server of a load test. Both stop on SIGTERM or SIGINT.".into())],
            },
            Section { heading: "Send options".into(), items: tagged(SEND) },
            Section { heading: "Sink options".into(), items: tagged(SINK) },
            Section { heading: "See also".into(), items: vec![Item::Text("mxguard(8), mxguard.conf(5)".into())] },
        ],
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_flag_the_parser_takes_is_documented() {
        let src = include_str!("main.rs");
        let documented: Vec<&str> = super::SINK.iter().chain(super::SEND).flat_map(|(f, _)| f.split([',', ' '])).filter(|w| w.starts_with('-')).collect();
        let mut seen = 0;
        for piece in src.split('"').skip(1).step_by(2) {
            if piece.starts_with('-') && piece.len() > 1 && !piece.contains(' ') && piece != "-h" && piece != "--help" {
                assert!(documented.contains(&piece), "{piece} is parsed but not documented");
                seen += 1;
            }
        }
        assert!(seen >= 25, "{seen} flags found in main.rs");
    }
}
