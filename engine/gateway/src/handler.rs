//! The gateway's answers to the SMTP server: relay control at RCPT, and at end of data the
//! message is spooled (fsync'd) before `250`, then handed to this core's queue manager.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use mxguard_relay::{routes, Queue};
use mxguard_smtp::{date::rfc5322, domain_of, Envelope, MailFrom, Reply};
use mxguard_smtpd::{ConnInfo, ConnSummary, Handler};
use mxguard_spool::{MessageData, Meta, RcptStatus, Spool};
use mxguard_telemetry::{Event, METRICS};
use mxguard_tuning as k;

pub struct Gateway {
    pub spool: Rc<Spool>,
    pub queue: Rc<Queue>,
}

/// The Received: header for a message (RFC 5321 §4.4).
pub fn received_header(conn: &ConnInfo, env: &Envelope, id: &str, hostname: &str, now: SystemTime) -> Vec<u8> {
    let helo = if env.helo.is_empty() { "unknown" } else { env.helo.as_str() };
    let mut h = format!("Received: from {helo} ([{}])\r\n", conn.peer.ip());
    if let Some(tls) = &conn.tls {
        h.push_str(&format!("\t(using {tls})\r\n"));
    }
    h.push_str(&format!("\tby {hostname} (mxguard) with {} id {id}", env.protocol()));
    if env.rcpts.len() == 1 {
        h.push_str(&format!("\r\n\tfor <{}>", env.rcpts[0]));
    }
    h.push_str(&format!("; {}\r\n", rfc5322(now)));
    h.into_bytes()
}

impl Handler for Gateway {
    async fn rcpt(&self, conn: &ConnInfo, _from: &MailFrom, to: &str) -> Result<(), Reply> {
        if to.eq_ignore_ascii_case("postmaster") {
            return Ok(());
        }
        let domain = domain_of(to);
        if routes::current().is_local(&domain) {
            Ok(())
        } else {
            Event::new("rcpt_rejected")
                .str("client", &conn.peer.ip().to_string())
                .str("rcpt", to)
                .str("reason", "relay denied")
                .emit();
            Err(Reply::new(550, "5.7.1", format!("<{to}>: Relay access denied")))
        }
    }

    async fn message(&self, conn: &ConnInfo, env: Envelope, body: Vec<u8>) -> Reply {
        let id = self.spool.next_id();
        let hostname = k::SMTP_HOSTNAME.get_str();
        let now = SystemTime::now();
        let head = received_header(conn, &env, &id, &hostname, now);
        let table = routes::current();
        let rcpts: Vec<String> = env
            .rcpts
            .iter()
            .map(|r| match (r.eq_ignore_ascii_case("postmaster"), table.first_domain()) {
                (true, Some(d)) => format!("postmaster@{d}"),
                _ => r.clone(),
            })
            .collect();
        let meta = Meta {
            id: id.clone(),
            arrival_unix_ms: now.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            client: conn.peer.ip().to_string(),
            helo: env.helo.clone(),
            proto: env.protocol().to_string(),
            mail_from: env.mail_from.clone(),
            status: vec![RcptStatus::Pending; rcpts.len()],
            rcpts,
            eight_bit: env.eight_bit,
            smtputf8: env.smtputf8,
            ..Meta::default()
        };
        let size = head.len() + body.len();
        match self.spool.store(meta.clone(), MessageData { head, body }).await {
            Ok((loc, data)) => {
                Event::new("accepted")
                    .str("qid", &id)
                    .str("client", &conn.peer.ip().to_string())
                    .str("helo", &env.helo)
                    .str("from", &meta.mail_from)
                    .list("rcpt", &meta.rcpts)
                    .num("size", size as u64)
                    .str("proto", &meta.proto)
                    .str("tls", conn.tls.as_deref().unwrap_or(""))
                    .emit();
                self.queue.enqueue(meta, loc, Some(data));
                Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))
            }
            Err(e) => {
                METRICS.spool_errors.inc();
                Event::new("spool_error")
                    .str("qid", &id)
                    .str("client", &conn.peer.ip().to_string())
                    .str("error", &e.to_string())
                    .emit();
                Reply::new(451, "4.3.0", "Error: queue file write error, try again later")
            }
        }
    }

    fn disconnect(&self, conn: &ConnInfo, s: &ConnSummary) {
        Event::new("disconnect")
            .str("client", &conn.peer.ip().to_string())
            .str("helo", conn.helo.as_deref().unwrap_or(""))
            .str("tls", conn.tls.as_deref().unwrap_or(""))
            .num("messages", s.messages)
            .num("errors", s.errors as u64)
            .str("end", s.end)
            .num("duration_ms", conn.started.elapsed().as_millis() as u64)
            .emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(tls: Option<&str>) -> ConnInfo {
        ConnInfo {
            id: 1,
            peer: "192.0.2.9:4000".parse().unwrap(),
            local: "127.0.0.1:25".parse().unwrap(),
            started: std::time::Instant::now(),
            tls: tls.map(str::to_string),
            helo: None,
        }
    }

    #[test]
    fn received_header_folds_with_several_recipients() {
        let conn = conn(None);
        let env = Envelope { helo: "c".into(), rcpts: vec!["a@x".into(), "b@x".into()], ..Envelope::default() };
        let h = String::from_utf8(received_header(&conn, &env, "Q", "mx", UNIX_EPOCH)).unwrap();
        assert_eq!(h, "Received: from c ([192.0.2.9])\r\n\tby mx (mxguard) with SMTP id Q; Thu, 1 Jan 1970 00:00:00 +0000\r\n");
        for line in h.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
            assert!(line.starts_with('\t'), "continuation lines must be folded: {line:?}");
        }
    }

    #[test]
    fn received_header_shape() {
        let conn = conn(Some("TLSv1.3 TLS13_AES_256_GCM_SHA384"));
        let env = Envelope { helo: "client.example".into(), esmtp: true, tls: true, rcpts: vec!["u@example.test".into()], ..Envelope::default() };
        let h = received_header(&conn, &env, "QID", "mx.test", UNIX_EPOCH + std::time::Duration::from_secs(1_795_420_800));
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "Received: from client.example ([192.0.2.9])\r\n\t(using TLSv1.3 TLS13_AES_256_GCM_SHA384)\r\n\tby mx.test (mxguard) with ESMTPS id QID\r\n\tfor <u@example.test>; Mon, 23 Nov 2026 08:00:00 +0000\r\n"
        );
    }
}
