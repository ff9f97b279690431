//! One connection: limits, optional TLS, then the read → advance → answer → flush loop.
//!
//! Time limits (all knobs, read at each use):
//! - command phase: a whole command must arrive within `smtp.read_timeout_s` of the previous one;
//! - body phase: Postfix's rule — each read spends its elapsed time from a budget of
//!   `smtp.data_timeout_s` and earns `bytes / smtp.min_data_rate_bps` seconds back, never above
//!   the full budget; a client that trickles (one byte a second) runs dry;
//! - the whole session: `smtp.session_timeout_s`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use mxguard_smtp::{Ask, Config, MailFrom, Phase, Reply, Session, Step};
use mxguard_telemetry::{Event, METRICS};
use mxguard_tls::Stream;
use mxguard_tuning as k;

use crate::admission;
use crate::evict;
use crate::limits::{self, Refused};
use crate::{ConnInfo, ConnSummary, Handler, Shutdown};

pub(crate) struct Ctx<H> {
    pub handler: Rc<H>,
    pub acceptor: Option<futures_rustls::TlsAcceptor>,
    pub implicit_tls: bool,
    pub shutdown: Rc<Shutdown>,
}

fn session_config(starttls: bool, implicit_tls: bool) -> Config {
    Config {
        hostname: k::SMTP_HOSTNAME.get_str().to_string(),
        max_command_line: k::SMTP_MAX_COMMAND_LINE_BYTES.get_usize(),
        max_data_line: k::SMTP_MAX_DATA_LINE_BYTES.get_usize(),
        max_message_size: k::SMTP_MAX_MESSAGE_BYTES.get_u64(),
        max_recipients: k::SMTP_MAX_RECIPIENTS.get_usize(),
        max_commands: k::SMTP_MAX_COMMANDS.get().clamp(1, u32::MAX as i64) as u32,
        max_errors: k::SMTP_MAX_ERRORS.get().clamp(1, u32::MAX as i64) as u32,
        require_helo: k::SMTP_REQUIRE_HELO.get_bool(),
        ehlo_enabled: k::SMTP_EHLO_ENABLED.get_bool(),
        starttls: starttls && k::SMTP_STARTTLS.get_bool() && !implicit_tls,
        implicit_tls,
    }
}

enum ReadOutcome {
    Data(usize),
    /// The body pass ran out before more arrived; the read may be retried.
    PassExpired,
    Eof,
    Timeout,
    Shutdown,
    /// Closed to make room for a newcomer in a full table (evict.rs).
    Evicted,
    Error,
}

struct Conn<H: Handler> {
    ctx: Ctx<H>,
    stream: Stream<TcpStream>,
    session: Session,
    info: ConnInfo,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Command phase: when the current command's time runs out.
    command_deadline: Instant,
    /// Body phase: remaining budget.
    body_budget: Duration,
    session_deadline: Instant,
    mail: Option<MailFrom>,
    draining: bool,
    /// Held from DATA's 354 (or the first BDAT chunk) to the message's reply: admission.rs.
    pass: Option<admission::Pass>,
    /// This connection's place in the core's eviction table (evict.rs).
    evict: evict::Registration,
    /// Body bytes since the last progress mark.
    body_since_progress: usize,
}

/// Body bytes that count as progress for the eviction scan.
const BODY_PROGRESS_BYTES: usize = 1024;

/// Initial input buffer: enough for any command and a TCP segment or two of body. It grows
/// (doubling) while a long line or a fast body needs more, and shrinks back once drained, so an
/// idle connection costs a few KiB, not the largest message it ever sent.
const READ_INITIAL: usize = 8 * 1024;
const READ_KEEP_MAX: usize = 256 * 1024;

pub(crate) async fn run<H: Handler>(ctx: Ctx<H>, tcp: TcpStream, id: u64) {
    METRICS.connections_total.inc();
    let (peer, local) = match (tcp.peer_addr(), tcp.local_addr()) {
        (Ok(p), Ok(l)) => (p, l),
        _ => return,
    };
    let _ = tcp.set_nodelay(true);
    let info = ConnInfo { id, peer, local, started: Instant::now(), tls: None, helo: None };
    let mut stream = Stream::Plain(tcp);

    // Limits first, before any TLS work. A full table makes room by closing a stalled connection
    // of this core, if it has one (evict.rs); the newcomer then takes a slot over the total until
    // the evicted one has gone, which it does at once.
    let per_ip = k::SMTP_MAX_CONNECTIONS_PER_IP.get().clamp(1, u32::MAX as i64) as u32;
    let mut slot = limits::acquire(peer.ip(), k::SMTP_MAX_CONNECTIONS.get_usize(), per_ip);
    let stalled = k::SMTP_EVICT_STALLED_MS.get_u64();
    if matches!(slot, Err(Refused::Total)) && stalled > 0 {
        let now = Instant::now();
        let penalty = Duration::from_secs(k::SMTP_EVICT_PENALTY_S.get_u64());
        if !evict::penalized(peer.ip(), now, penalty) && evict::make_room(Duration::from_millis(stalled), now, penalty) {
            METRICS.connections_evicted.inc();
            slot = limits::acquire(peer.ip(), usize::MAX, per_ip);
        }
    }
    let refusal = match (&slot, ctx.shutdown.triggered()) {
        (_, Some(_)) => {
            METRICS.connections_refused_shutdown.inc();
            Some(("shutdown", Reply::new(421, "4.3.2", format!("{} Service shutting down", k::SMTP_HOSTNAME.get_str()))))
        }
        (Err(Refused::Total), _) => {
            METRICS.connections_refused_limit.inc();
            Some(("limit", Reply::new(421, "4.7.0", format!("{} Error: too many connections", k::SMTP_HOSTNAME.get_str()))))
        }
        (Err(Refused::PerIp), _) => {
            METRICS.connections_refused_per_ip.inc();
            Some(("limit", Reply::new(421, "4.7.0", format!("{} Error: too many connections from your address", k::SMTP_HOSTNAME.get_str()))))
        }
        (Ok(_), None) => None,
    };
    if let Some((why, reply)) = refusal {
        if !ctx.implicit_tls {
            let mut out = Vec::new();
            reply.write_to(&mut out);
            let _ = glommio::timer::timeout(Duration::from_secs(5), async {
                stream.write_all(&out).await.map_err(glommio::GlommioError::from)
            })
            .await;
        }
        let _ = stream.close().await;
        Event::new("refused").str("client", &peer.ip().to_string()).str("reason", why).emit();
        return;
    }
    METRICS.connections_current.inc();
    let slot = slot;

    let mut conn = Conn {
        session: Session::new(session_config(ctx.acceptor.is_some(), ctx.implicit_tls)),
        ctx,
        stream,
        info,
        buf: vec![0u8; READ_INITIAL],
        start: 0,
        end: 0,
        command_deadline: Instant::now(),
        body_budget: Duration::ZERO,
        session_deadline: Instant::now() + Duration::from_secs(k::SMTP_SESSION_TIMEOUT_S.get_u64()),
        mail: None,
        draining: false,
        pass: None,
        evict: evict::register(id, peer.ip()),
        body_since_progress: 0,
    };
    let end = conn.drive().await;
    let summary = ConnSummary { messages: conn.session.messages(), errors: conn.session.errors(), end };
    let _ = conn.stream.close().await;
    // The slot goes back before the gauge drops, so a gauge of 0 means every slot is free.
    drop(slot);
    METRICS.connections_current.dec();
    conn.ctx.handler.disconnect(&conn.info, &summary);
}

impl<H: Handler> Conn<H> {
    fn reset_command_deadline(&mut self) {
        self.command_deadline = Instant::now() + Duration::from_secs(k::SMTP_READ_TIMEOUT_S.get_u64());
    }

    async fn flush(&mut self) -> bool {
        let out = std::mem::take(self.session.output());
        if out.is_empty() {
            return true;
        }
        let budget = Duration::from_secs(k::SMTP_READ_TIMEOUT_S.get_u64().max(1));
        let stream = &mut self.stream;
        let ok = glommio::timer::timeout(budget, async {
            stream.write_all(&out).await?;
            stream.flush().await?;
            Ok(())
        })
        .await
        .is_ok();
        // Give the buffer back for the next replies.
        let mut out = out;
        out.clear();
        *self.session.output() = out;
        ok
    }

    /// Reads more input into the buffer, within the phase's time limit.
    async fn read(&mut self) -> ReadOutcome {
        // Make room: move the unconsumed tail to the front, then grow if still full.
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == 0 && self.buf.len() > READ_KEEP_MAX && self.session.phase() == Phase::Command {
            self.buf = vec![0u8; READ_INITIAL];
        }
        if self.end == self.buf.len() {
            let new_len = self.buf.len() * 2;
            self.buf.resize(new_len, 0);
        }
        let now = Instant::now();
        let phase = self.session.phase();
        let mut limit = match phase {
            Phase::Body => self.body_budget,
            _ => self.command_deadline.saturating_duration_since(now),
        };
        limit = limit.min(self.session_deadline.saturating_duration_since(now));
        if self.draining {
            let grace = Duration::from_secs(k::SMTP_SHUTDOWN_GRACE_S.get_u64());
            let since = self.ctx.shutdown.triggered().map(|t| now.duration_since(t)).unwrap_or_default();
            limit = limit.min(grace.saturating_sub(since));
        }
        if limit.is_zero() {
            return ReadOutcome::Timeout;
        }
        // A slow body stops holding its pass once the pass expires (admission.rs).
        let pass_left = self.pass.as_ref().and_then(|p| p.expires()).map(|e| e.saturating_duration_since(now));
        let pass_binds = match pass_left {
            Some(left) if left < limit => {
                limit = left;
                true
            }
            _ => false,
        };
        let shutdown = self.ctx.shutdown.clone();
        let listen_for_shutdown = !self.draining;
        let watch = self.evict.watch.clone();
        let (stream, buf, end) = (&mut self.stream, &mut self.buf, self.end);
        let read = async {
            match glommio::timer::timeout(limit, async {
                stream.read(&mut buf[end..]).await.map_err(glommio::GlommioError::from)
            })
            .await
            {
                Ok(0) => ReadOutcome::Eof,
                Ok(n) => ReadOutcome::Data(n),
                Err(glommio::GlommioError::TimedOut(_)) => ReadOutcome::Timeout,
                Err(_) => ReadOutcome::Error,
            }
        };
        let read = futures_lite::future::or(read, async {
            watch.evicted().await;
            ReadOutcome::Evicted
        });
        watch.set_waiting(true);
        let outcome = if listen_for_shutdown {
            futures_lite::future::or(read, async {
                shutdown.wait().await;
                ReadOutcome::Shutdown
            })
            .await
        } else {
            read.await
        };
        watch.set_waiting(false);
        if pass_binds && matches!(outcome, ReadOutcome::Timeout) {
            if let Some(p) = self.pass.as_mut() {
                p.release();
            }
            if phase == Phase::Body {
                self.body_budget = self.body_budget.saturating_sub(now.elapsed());
            }
            return ReadOutcome::PassExpired;
        }
        if let ReadOutcome::Data(n) = outcome {
            self.end += n;
            if phase == Phase::Body {
                self.body_since_progress += n;
                if self.body_since_progress >= BODY_PROGRESS_BYTES {
                    self.body_since_progress = 0;
                    self.evict.watch.progress();
                }
                let elapsed = now.elapsed();
                let rate = k::SMTP_MIN_DATA_RATE_BPS.get_u64();
                let full = Duration::from_secs(k::SMTP_DATA_TIMEOUT_S.get_u64());
                let earned = if rate == 0 { full } else { Duration::from_secs_f64(n as f64 / rate as f64) };
                self.body_budget = (self.body_budget.saturating_sub(elapsed) + earned).min(full);
            }
        }
        outcome
    }

    async fn drive(&mut self) -> &'static str {
        if self.ctx.implicit_tls && !self.handshake().await {
            return "error";
        }
        match self.ctx.handler.connect(&self.info) {
            Some(r) => {
                self.session.close_with(r);
                self.flush().await;
                return "refused";
            }
            None => {
                let wait = if self.ctx.implicit_tls { Duration::ZERO } else { self.ctx.handler.pregreet_wait(&self.info) };
                if !wait.is_zero() {
                    match self.pregreet(wait).await {
                        ReadOutcome::Timeout => self.ctx.handler.pregreet_result(&self.info, false),
                        ReadOutcome::Data(_) => {
                            METRICS.pregreet_refused.inc();
                            self.ctx.handler.pregreet_result(&self.info, true);
                            let host = k::SMTP_HOSTNAME.get_str();
                            self.session.close_with(Reply::new(554, "5.5.1", format!("{host} Error: protocol violation: talked before the greeting")));
                            self.flush().await;
                            return "pregreet";
                        }
                        ReadOutcome::Eof => return "eof",
                        ReadOutcome::Shutdown => {
                            self.shutdown_reply();
                            self.flush().await;
                            return "shutdown";
                        }
                        ReadOutcome::Error | ReadOutcome::PassExpired | ReadOutcome::Evicted => return "error",
                    }
                }
                self.session.greet()
            }
        }
        self.reset_command_deadline();
        let mut phase = Phase::Command;
        loop {
            let (n, step) = self.session.advance(&self.buf[self.start..self.end]);
            self.start += n;
            for r in self.session.take_refused() {
                METRICS.messages_rejected.inc();
                Event::new("message_refused")
                    .str("client", &self.info.peer.ip().to_string())
                    .str("helo", self.info.helo.as_deref().unwrap_or(""))
                    .str("from", self.mail.as_ref().map(|m| m.address.as_str()).unwrap_or(""))
                    .str("reply", &r.one_line())
                    .emit();
                self.mail = None;
            }
            let new_phase = self.session.phase();
            if new_phase == Phase::Body && self.pass.is_none() {
                // Before the 354 goes out (or the BDAT chunk is read): wait while this core is
                // saturated, so the messages already streaming get their replies soon.
                self.pass = Some(admission::enter().await);
            } else if new_phase != Phase::Body && !matches!(step, Step::Ask(Ask::Message)) {
                // Refused, reset or between BDAT chunks: no body in flight.
                self.pass = None;
            }
            if new_phase != phase {
                self.evict.watch.progress();
                self.body_since_progress = 0;
                if new_phase == Phase::Body {
                    self.body_budget = Duration::from_secs(k::SMTP_DATA_TIMEOUT_S.get_u64());
                } else {
                    self.reset_command_deadline();
                }
                phase = new_phase;
            } else if n > 0 && phase == Phase::Command {
                self.reset_command_deadline();
                self.evict.watch.progress();
            }
            match step {
                Step::NeedInput => {
                    if self.draining && phase == Phase::Command {
                        self.shutdown_reply();
                        self.flush().await;
                        return "shutdown";
                    }
                    if !self.flush().await {
                        return "error";
                    }
                    match self.read().await {
                        ReadOutcome::Data(_) | ReadOutcome::PassExpired => {}
                        ReadOutcome::Eof => return "eof",
                        ReadOutcome::Error => return "error",
                        ReadOutcome::Timeout => {
                            METRICS.connections_timed_out.inc();
                            let host = k::SMTP_HOSTNAME.get_str();
                            self.session.close_with(Reply::new(421, "4.4.2", format!("{host} Error: timeout exceeded")));
                            self.flush().await;
                            return "timeout";
                        }
                        ReadOutcome::Evicted => {
                            self.evicted_reply();
                            self.flush().await;
                            return "evicted";
                        }
                        ReadOutcome::Shutdown => {
                            self.draining = true;
                            if self.session.phase() == Phase::Command {
                                self.shutdown_reply();
                                self.flush().await;
                                return "shutdown";
                            }
                        }
                    }
                }
                Step::Close => {
                    self.flush().await;
                    return "quit";
                }
                Step::StartTls => {
                    if !self.flush().await {
                        return "error";
                    }
                    // RFC 3207 §4.2: anything pipelined after STARTTLS is discarded.
                    self.start = 0;
                    self.end = 0;
                    if !self.handshake().await {
                        return "error";
                    }
                    self.session.tls_started();
                    self.info.helo = None;
                    self.mail = None;
                    self.reset_command_deadline();
                }
                Step::Ask(ask) => self.answer(ask).await,
            }
        }
    }

    /// Sends the banner's first line (`220-`) and listens for `wait`: `Timeout` means the
    /// client waited as it must; `Data` that it talked first. Input is left in the buffer.
    async fn pregreet(&mut self, wait: Duration) -> ReadOutcome {
        let first = format!("220-{} ESMTP\r\n", k::SMTP_HOSTNAME.get_str());
        let stream = &mut self.stream;
        let sent = glommio::timer::timeout(wait.max(Duration::from_secs(1)), async {
            stream.write_all(first.as_bytes()).await?;
            stream.flush().await?;
            Ok(())
        })
        .await;
        if sent.is_err() {
            return ReadOutcome::Error;
        }
        let shutdown = self.ctx.shutdown.clone();
        let (stream, buf) = (&mut self.stream, &mut self.buf);
        let read = async {
            match glommio::timer::timeout(wait, async { stream.read(&mut buf[..]).await.map_err(glommio::GlommioError::from) }).await {
                Ok(0) => ReadOutcome::Eof,
                Ok(n) => ReadOutcome::Data(n),
                Err(glommio::GlommioError::TimedOut(_)) => ReadOutcome::Timeout,
                Err(_) => ReadOutcome::Error,
            }
        };
        let outcome = futures_lite::future::or(read, async {
            shutdown.wait().await;
            ReadOutcome::Shutdown
        })
        .await;
        if let ReadOutcome::Data(n) = outcome {
            self.end = n;
        }
        outcome
    }

    fn evicted_reply(&mut self) {
        let host = k::SMTP_HOSTNAME.get_str();
        self.session.close_with(Reply::new(421, "4.7.0", format!("{host} Error: too slow while the server is busy, closing")));
    }

    fn shutdown_reply(&mut self) {
        let host = k::SMTP_HOSTNAME.get_str();
        self.session.close_with(Reply::new(421, "4.3.2", format!("{host} Service shutting down, try again later")));
    }

    async fn handshake(&mut self) -> bool {
        let Some(acceptor) = self.ctx.acceptor.clone() else {
            return false;
        };
        let budget = Duration::from_secs(k::SMTP_READ_TIMEOUT_S.get_u64());
        let stream = &mut self.stream;
        let watch = self.evict.watch.clone();
        // A handshake waits for the client: a stalled one may be evicted from a full table.
        watch.set_waiting(true);
        let r = futures_lite::future::or(
            glommio::timer::timeout(budget, async {
                stream.accept_tls(&acceptor).await.map_err(glommio::GlommioError::from)
            }),
            async {
                watch.evicted().await;
                Err(glommio::GlommioError::from(std::io::Error::other("evicted from a full connection table")))
            },
        )
        .await;
        watch.set_waiting(false);
        match r {
            Ok(()) => {
                METRICS.tls_handshakes.inc();
                self.info.tls = self.stream.tls_description();
                self.evict.watch.progress();
                true
            }
            Err(e) => {
                METRICS.tls_failures.inc();
                Event::new("tls_failed").str("client", &self.info.peer.ip().to_string()).str("error", &e.to_string()).emit();
                false
            }
        }
    }

    async fn answer(&mut self, ask: Ask) {
        let h = self.ctx.handler.clone();
        match ask {
            Ask::Helo { name, extended } => {
                let v = h.helo(&self.info, &name, extended).await;
                if v.is_ok() {
                    self.info.helo = Some(name);
                }
                self.session.answer_helo(v);
            }
            Ask::Mail(m) => {
                let v = h.mail(&self.info, &m).await;
                if v.is_ok() {
                    self.mail = Some(m);
                }
                self.session.answer_mail(v);
            }
            Ask::Rcpt(to) => {
                let from = self.mail.clone().unwrap_or_default();
                let v = h.rcpt(&self.info, &from, &to).await;
                if v.is_err() {
                    METRICS.recipients_rejected.inc();
                }
                self.session.answer_rcpt(v);
            }
            Ask::Message => {
                let t0 = Instant::now();
                let (env, body) = self.session.take_message();
                let size = body.len() as u64;
                let reply = h.message(&self.info, env, body).await;
                if reply.is_positive() {
                    METRICS.messages_accepted.inc();
                    METRICS.bytes_received.add(size);
                } else if reply.is_transient() {
                    METRICS.messages_deferred.inc();
                } else {
                    METRICS.messages_rejected.inc();
                }
                self.mail = None;
                self.session.answer_message(reply);
                // Answered: the pass goes back (dropping it releases it).
                self.pass = None;
                METRICS.eod_to_reply.record(t0.elapsed());
            }
        }
    }
}
