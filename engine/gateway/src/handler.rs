//! The gateway's answers to the SMTP server: relay control and the policy stage (see
//! [`crate::screen`]) at each command, and at end of data each recipient's action: the message
//! is spooled (fsync'd) before `250` once per distinct action (plain, tagged, quarantined), then
//! handed to this core's queue manager, which delivers it downstream or holds it in the
//! quarantine store; discarded recipients are logged and dropped.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mxguard_relay::{routes, Queue, TRANSPORT_QUARANTINE};
use mxguard_smtp::{date::rfc5322, domain_of, Envelope, MailFrom, Reply};
use mxguard_smtpd::{ConnInfo, ConnSummary, Handler};
use mxguard_spool::{MessageData, Meta, RcptStatus, Spool};
use mxguard_telemetry::{Event, METRICS};
use mxguard_tuning as k;
use mxguard_verdict::{fmt_score, tag_subject, Action, Verdict};

use crate::screen::{RcptVerdict, Screen};

pub struct Gateway {
    pub spool: Rc<Spool>,
    pub queue: Rc<Queue>,
    pub screen: Rc<Screen>,
}

/// The Received: header for a message (RFC 5321 §4.4).
pub fn received_header(conn: &ConnInfo, env: &Envelope, id: &str, hostname: &str, now: SystemTime) -> Vec<u8> {
    let helo = if env.helo.is_empty() { "unknown" } else { env.helo.as_str() };
    let mut h = format!("Received: from {helo} ([{}])\r\n", conn.peer.ip());
    if let Some(tls) = &conn.tls {
        h.push_str(&format!("\t(using {tls})\r\n"));
    }
    // The mark tells the tokenizer which fields came on or after the message's arrival.
    h.push_str(&format!("\tby {hostname} {} with {} id {id}", mxguard_scan::tokens::OWN_RECEIVED_MARK, env.protocol()));
    if env.rcpts.len() == 1 {
        h.push_str(&format!("\r\n\tfor <{}>", env.rcpts[0]));
    }
    h.push_str(&format!("; {}\r\n", rfc5322(now)));
    h.into_bytes()
}

impl Gateway {
    /// Refuses a transaction with 452 4.3.1 while the spool's filesystem has less room than
    /// `spool.min_free_bytes` plus the SIZE the client declared: the sender keeps the message and
    /// tries later, instead of sending a body we could not make durable. One statvfs a MAIL.
    fn spool_has_room(&self, conn: &ConnInfo, declared: u64) -> Result<(), Reply> {
        let margin = k::SPOOL_MIN_FREE_BYTES.get_u64();
        if margin == 0 {
            return Ok(());
        }
        let want = margin.saturating_add(declared);
        let free = match mxguard_spool::space::free_bytes(self.spool.root()) {
            Ok(f) => f,
            // Not knowing is no reason to refuse: the store itself still answers for a full disk.
            Err(_) => return Ok(()),
        };
        if free >= want {
            return Ok(());
        }
        METRICS.spool_full_refusals.inc();
        Event::new("spool_full")
            .str("client", &conn.peer.ip().to_string())
            .num("free_bytes", free)
            .num("wanted_bytes", want)
            .emit();
        Err(Reply::new(452, "4.3.1", "Insufficient system storage, try again later"))
    }

    /// Spools one copy of the message for `rcpts` with `head` before it; the queue id.
    #[allow(clippy::too_many_arguments)]
    async fn spool_copy(&self, id: String, conn: &ConnInfo, env: &Envelope, rcpts: Vec<String>, head: Vec<u8>, body: Vec<u8>, verdict: &Verdict, action: Action) -> Result<String, Reply> {
        let now = SystemTime::now();
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
            transport: if action == Action::Quarantine { TRANSPORT_QUARANTINE.into() } else { String::new() },
            score: if verdict.symbols().is_empty() { String::new() } else { fmt_score(verdict.score()) },
            symbols: verdict.breakdown(),
            reason: verdict.main_reason().map(|s| s.reason.clone()).unwrap_or_default(),
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
                    .str("action", action.as_str())
                    .str("score", &fmt_score(verdict.score()))
                    .str("symbols", &verdict.breakdown())
                    .emit();
                self.queue.enqueue(meta, loc, Some(data));
                Ok(id)
            }
            Err(e) => {
                METRICS.spool_errors.inc();
                Event::new("spool_error")
                    .str("qid", &id)
                    .str("client", &conn.peer.ip().to_string())
                    .str("error", &e.to_string())
                    .emit();
                if matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded) {
                    Err(Reply::new(452, "4.3.1", "Insufficient system storage, try again later"))
                } else {
                    Err(Reply::new(451, "4.3.0", "Error: queue file write error, try again later"))
                }
            }
        }
    }
}

/// The header block of a message (up to and including the CRLF before the blank line) and
/// the rest; a message without a blank line is all header.
fn split_header(body: &[u8]) -> usize {
    memchr::memmem::find(body, b"\r\n\r\n").map(|p| p + 2).unwrap_or(body.len())
}

impl Handler for Gateway {
    fn connect(&self, conn: &ConnInfo) -> Option<Reply> {
        let r = self.screen.connect(conn.id, conn.peer.ip());
        if let Some(reply) = &r {
            Event::new("refused").str("client", &conn.peer.ip().to_string()).str("reason", &reply.one_line()).emit();
        }
        r
    }

    fn pregreet_wait(&self, conn: &ConnInfo) -> std::time::Duration {
        self.screen.pregreet_wait(conn.id)
    }

    fn pregreet_result(&self, conn: &ConnInfo, talked: bool) {
        self.screen.pregreet_result(conn.id, talked)
    }

    async fn helo(&self, conn: &ConnInfo, name: &str, _extended: bool) -> Result<(), Reply> {
        self.screen.helo(conn.id, name, conn.peer.ip(), conn.local.ip());
        Ok(())
    }

    async fn mail(&self, conn: &ConnInfo, from: &MailFrom) -> Result<(), Reply> {
        self.spool_has_room(conn, from.size.unwrap_or(0))?;
        self.screen.mail(conn.id, conn.helo.as_deref().unwrap_or(""), &from.address).await;
        Ok(())
    }

    async fn rcpt(&self, conn: &ConnInfo, from: &MailFrom, to: &str) -> Result<(), Reply> {
        if to.eq_ignore_ascii_case("postmaster") {
            return Ok(());
        }
        // Report addresses teach Bayes: only the provider's own network may write to them, and
        // they are not screened (like postmaster).
        if crate::learning::report_kind(to).is_some() {
            if crate::screen::trusted(conn.peer.ip()) {
                return Ok(());
            }
            Event::new("rcpt_rejected").str("client", &conn.peer.ip().to_string()).str("rcpt", to).str("reason", "report from outside").emit();
            return Err(Reply::new(550, "5.7.1", format!("<{to}>: reports are taken from the provider's network only")));
        }
        let domain = domain_of(to);
        if !routes::current().is_local(&domain) {
            Event::new("rcpt_rejected")
                .str("client", &conn.peer.ip().to_string())
                .str("rcpt", to)
                .str("reason", "relay denied")
                .emit();
            return Err(Reply::new(550, "5.7.1", format!("<{to}>: Relay access denied")));
        }
        if routes_elsewhere(to) && !k::RELAY_ALLOW_SENDER_ROUTING.get_bool() {
            Event::new("rcpt_rejected")
                .str("client", &conn.peer.ip().to_string())
                .str("rcpt", to)
                .str("reason", "sender-specified routing")
                .emit();
            return Err(Reply::new(550, "5.7.1", format!("<{to}>: Relay access denied (sender-specified routing)")));
        }
        self.screen.rcpt(conn.id, &from.address, to)
    }

    async fn message(&self, conn: &ConnInfo, mut env: Envelope, body: Vec<u8>) -> Reply {
        // Reports to the Bayes report addresses are learnt, never delivered.
        let reports: Vec<(String, bool)> = env.rcpts.iter().filter_map(|r| crate::learning::report_kind(r).map(|spam| (r.clone(), spam))).collect();
        if !reports.is_empty() {
            env.rcpts.retain(|r| crate::learning::report_kind(r).is_none());
            let body = Arc::new(body);
            for (address, spam) in &reports {
                let shared = Arc::clone(&body);
                let spam = *spam;
                let n = mxguard_spool::blocking::run(move || crate::learning::learn_report(&shared, spam)).await;
                let (spam_learnt, ham_learnt) = mxguard_bayes::current().map_or((0, 0), |b| b.learned());
                Event::new("bayes_report")
                    .str("client", &conn.peer.ip().to_string())
                    .str("from", &env.mail_from)
                    .str("rcpt", address)
                    .str("as", if spam { "spam" } else { "ham" })
                    .num("messages", n as u64)
                    .num("spam", spam_learnt)
                    .num("ham", ham_learnt)
                    .emit();
            }
            let body = Arc::try_unwrap(body).unwrap_or_else(|shared| (*shared).clone());
            if env.rcpts.is_empty() {
                return Reply::new(250, "2.0.0", "Ok: report learnt");
            }
            return Box::pin(self.message(conn, env, body)).await;
        }
        let hostname = k::SMTP_HOSTNAME.get_str();
        let table = routes::current();
        // The verdicts come in RCPT order, as the envelope's recipients (which may also hold
        // postmaster, never screened): match them with one cursor, linear in recipients.
        let mut screened = self.screen.take_rcpts(conn.id);
        // ClamAV runs on its own threads while this core scans the content; the message is
        // shared with it, and given back whole (no copy) once it has answered.
        let body = Arc::new(body);
        let av = crate::antivirus::scan(&body, !screened.is_empty() && crate::antivirus::wanted(&screened));
        // DKIM, ARC and DMARC likewise, on the DNS thread.
        let auth_inputs = self.screen.auth_inputs(conn.id);
        // SPF's answer, for the sender domain's reputation (a trusted network has none).
        let spf = auth_inputs.clone().flatten();
        let who = crate::traffic::sender(conn.peer.ip(), spf.as_ref());
        let auth_env = crate::authentication::envelope(auth_inputs, conn.peer.ip(), &env.helo, &env.mail_from);
        let auth = crate::authentication::start(&body, if screened.is_empty() { None } else { auth_env });
        // Content: one parse and scan of the message for all recipients. Small mail is scanned
        // here (a thread hop would cost more than its scan); big mail (pictures to decode,
        // archives to open) on the executor's blocking pool, so this core keeps serving its
        // other sessions meanwhile. The message is shared, not copied.
        let report = if k::SCAN_ENABLED.get_bool() && !screened.is_empty() {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
            let t0 = std::time::Instant::now();
            let tables = mxguard_scan::current();
            let tokens = crate::learning::wanted();
            // Mail with pictures (when QR codes are read) or PDFs, too: either takes milliseconds.
            let offload = body.len() >= k::SCAN_OFFLOAD_BYTES.get_usize() || (k::SCAN_QR_CODES.get_bool() && mxguard_scan::qr::may_hold_picture(&body))
                || (k::SCAN_PDF_MAX_BYTES.get_usize() > 0 && mxguard_scan::pdf::may_hold_pdf(&body));
            let mut r = if offload {
                let shared = Arc::clone(&body);
                mxguard_spool::blocking::run(move || mxguard_scan::scan_with(&shared[..], &tables, now, tokens)).await
            } else {
                mxguard_scan::scan_with(&body[..], &tables, now, tokens)
            };
            let bayes = crate::learning::classify(&mut r);
            crate::weighing::apply(&mut r, bayes);
            crate::traffic::observe(&mut r, &who, screened.len());
            mxguard_telemetry::METRICS.scan_time.record(t0.elapsed());
            Some(r)
        } else {
            None
        };
        if let Some(r) = &report {
            self.screen.add_content(&mut screened, r);
        }
        // SURBL/URIBL of the links the scan found, while the other answers come in.
        let uribl = report.as_ref().and_then(|r| crate::screen::start_uribl(&r.link_domains, &screened));
        let client = conn.peer.ip().to_string();
        if let Some(task) = uribl {
            if let Some(listed) = task.await {
                self.screen.add_uribl(&mut screened, &listed);
            }
        }
        let mut auth_header = String::new();
        let auth_reply = match auth {
            Some(wait) => match wait.await {
                mxguard_dns::Lookup::Found(a) => {
                    auth_header = a.header.clone();
                    crate::authentication::apply(&a, &mut screened)
                }
                other => {
                    let why = if let mxguard_dns::Lookup::Failed(w) = other { w } else { "no result".into() };
                    Event::new("auth_unchecked").str("client", &client).str("from", &env.mail_from).str("why", &why).emit();
                    None
                }
            },
            None => None,
        };
        let av_reply = match av {
            Some(answer) => crate::antivirus::apply(&answer.await, &mut screened, &client, &env.mail_from),
            None => None,
        };
        let mut body = Arc::try_unwrap(body).unwrap_or_else(|shared| (*shared).clone());
        if !auth_header.is_empty() {
            body = crate::authentication::strip_own_results(body, &hostname);
        }
        let honeypot = report.as_ref().is_some_and(|r| r.honeypot);
        self.screen.end_transaction(conn.id, &screened, honeypot);
        if crate::traffic::record(report.as_ref(), &who, &screened, honeypot) {
            self.screen.ban_for_reputation(conn.peer.ip());
        }
        if let Some(r) = &report {
            crate::learning::auto_learn(r, &screened);
        }
        // A virus refusal is worded as such, then a DMARC one; other refusals below.
        if let Some(reply) = av_reply.or(auth_reply) {
            Event::new("message_rejected")
                .str("client", &client)
                .str("from", &env.mail_from)
                .list("rcpt", &env.rcpts)
                .str("reply", &reply.one_line())
                .emit();
            return reply;
        }
        // One reply answers the whole message: refuse it only when every recipient's verdict
        // refuses; otherwise the refusing recipients' copies are quarantined, never bounced.
        let live: Vec<&RcptVerdict> = screened.iter().filter(|r| r.action != Action::Discard).collect();
        if let Some(first) = live.first() {
            let refused = |a: Action| live.iter().all(|r| r.action == a);
            if refused(Action::Reject) || refused(Action::TempFail) {
                let reply = if refused(Action::Reject) {
                    self.screen.content_rejection(conn.peer.ip(), &env.mail_from, first)
                } else {
                    Reply::new(451, "4.7.1", "Error: message deferred by content policy, try again later")
                };
                Event::new("message_rejected")
                    .str("client", &conn.peer.ip().to_string())
                    .str("from", &env.mail_from)
                    .list("rcpt", &env.rcpts)
                    .str("score", &fmt_score(first.verdict.score()))
                    .str("symbols", &first.verdict.breakdown())
                    .str("reply", &reply.one_line())
                    .emit();
                return reply;
            }
        }
        for r in screened.iter_mut() {
            if matches!(r.action, Action::Reject | Action::TempFail) {
                r.action = Action::Quarantine;
            }
        }
        let mut verdicts = screened.into_iter().peekable();
        // Group the recipients by what happens to them, in the order they were given.
        let mut groups: Vec<(Action, Vec<String>, Verdict)> = Vec::new();
        for r in &env.rcpts {
            let (action, verdict) = match verdicts.next_if(|v| v.address == *r) {
                Some(v) => (v.action, v.verdict),
                None => (Action::Deliver, Verdict::new()),
            };
            let address = match (r.eq_ignore_ascii_case("postmaster"), table.first_domain()) {
                (true, Some(d)) => format!("postmaster@{d}"),
                _ => r.clone(),
            };
            match groups.iter_mut().find(|g| g.0 == action) {
                Some(g) => g.1.push(address),
                None => groups.push((action, vec![address], verdict)),
            }
        }
        let mut ids = Vec::new();
        let n = groups.len();
        let mut body = Some(body);
        for (i, (action, rcpts, verdict)) in groups.into_iter().enumerate() {
            if action == Action::Discard {
                Event::new("discarded")
                    .str("client", &conn.peer.ip().to_string())
                    .str("from", &env.mail_from)
                    .list("rcpt", &rcpts)
                    .str("score", &fmt_score(verdict.score()))
                    .str("symbols", &verdict.breakdown())
                    .emit();
                continue;
            }
            // The last copy takes the body itself; earlier ones (several actions) copy it.
            let last = i + 1 == n;
            let mut msg = if last { body.take().unwrap_or_default() } else { body.clone().unwrap_or_default() };
            let mut id_env = env.clone();
            id_env.rcpts = rcpts.clone();
            let id = self.spool.next_id();
            // The fields this gateway adds, its Received field last (as RFC 8601's examples place
            // Authentication-Results above the Received field of the same host): the tokenizer
            // knows a learnt copy's arrival fields as the ones below it.
            let mut head = auth_header.as_bytes().to_vec();
            head.extend_from_slice(verdict.headers(action).as_bytes());
            match action {
                Action::TagHeader => {
                    head.extend_from_slice(k::VERDICT_TAG_HEADER.get_str().as_bytes());
                    head.extend_from_slice(b"\r\n");
                }
                Action::TagSubject => {
                    let end = split_header(&msg);
                    let mut tagged = tag_subject(&msg[..end], &k::VERDICT_SUBJECT_TAG.get_str());
                    tagged.extend_from_slice(&msg[end..]);
                    msg = tagged;
                }
                _ => {}
            }
            head.extend_from_slice(&received_header(conn, &id_env, &id, &hostname, SystemTime::now()));
            match self.spool_copy(id, conn, &env, rcpts, head, msg, &verdict, action).await {
                Ok(id) => ids.push(id),
                Err(reply) if ids.is_empty() => return reply,
                // Some copies are safe already: a 4xx would make the client send them twice.
                // The failure is logged; the rest of the recipients are lost to this
                // transaction only if the disk fails between two commits of one message.
                Err(_) => {}
            }
        }
        if ids.is_empty() {
            return Reply::new(250, "2.0.0", "Ok: accepted");
        }
        Reply::new(250, "2.0.0", format!("Ok: queued as {}", ids.join(" ")))
    }

    fn disconnect(&self, conn: &ConnInfo, s: &ConnSummary) {
        self.screen.disconnect(conn.id);
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

/// A recipient whose local part names another destination: the percent hack (`u%other@local`),
/// a bang path (`other!u@local`) or a quoted address (`"u@other"@local`). Whoever reads the local
/// part after us may route on it.
fn routes_elsewhere(to: &str) -> bool {
    let local = to.rsplit_once('@').map_or("", |(l, _)| l);
    local.contains(['%', '!', '@'])
}
