//! The SMTP client that hands mail to downstream servers.
//!
//! One [`Client`] is one connection: greeting, EHLO (HELO if EHLO is refused), opportunistic
//! STARTTLS, then any number of transactions ([`Client::deliver`]) while the connection is
//! reused. MAIL, RCPT and DATA are pipelined when the server offers PIPELINING. The result of a
//! transaction is a status per recipient; a connection-level problem is a [`Failure`] that the
//! queue manager turns into a temporary failure for every recipient of the transaction.
//!
//! Every wait has a time limit (`relay.read_timeout_s`, `relay.data_done_timeout_s`,
//! `relay.connect_timeout_s`). The client never sends a message the server said it cannot
//! take (SIZE, SMTPUTF8) and never sends bare CR/LF (the spool only holds canonical mail).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use mxguard_smtp::stuff::Stuffer;
use mxguard_smtp::{parse_reply, Reply};
use mxguard_tls::Stream;
use mxguard_tuning as k;

use crate::routes::Dest;

/// A problem with the connection as a whole.
#[derive(Debug, Clone)]
pub enum Failure {
    /// No connection (refused, unreachable, name not found, timeout).
    Connect(String),
    /// The server answered the greeting, EHLO or MAIL with an error, or broke the protocol.
    Session(String, Option<Reply>),
    /// The connection broke or timed out mid-conversation.
    Io(String),
}

impl Failure {
    /// True when every recipient must be treated as failed for good (a 5xx to MAIL FROM).
    pub fn permanent(&self) -> bool {
        matches!(self, Failure::Session(_, Some(r)) if r.is_permanent())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(s) | Failure::Io(s) => f.write_str(s),
            Failure::Session(s, _) => f.write_str(s),
        }
    }
}

/// The outcome for one recipient of a transaction.
#[derive(Debug, Clone)]
pub enum RcptResult {
    Delivered(String),
    Temporary(String, Option<Reply>),
    Permanent(String, Option<Reply>),
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    pub pipelining: bool,
    pub starttls: bool,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub size: Option<u64>,
}

fn parse_ehlo(r: &Reply) -> Extensions {
    let mut e = Extensions::default();
    for line in r.text.lines().skip(1) {
        let mut words = line.split_whitespace();
        let kw = words.next().unwrap_or("").to_ascii_uppercase();
        match kw.as_str() {
            "PIPELINING" => e.pipelining = true,
            "STARTTLS" => e.starttls = true,
            "8BITMIME" => e.eight_bit = true,
            "SMTPUTF8" => e.smtputf8 = true,
            "SIZE" => e.size = words.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0),
            _ => {}
        }
    }
    e
}

/// How a client behaves; the queue manager builds it from the `relay.*` knobs, mxblast from
/// its command line.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub helo: String,
    /// Use STARTTLS when offered.
    pub starttls: bool,
    /// TLS from the first byte (SMTPS, port 465).
    pub implicit_tls: bool,
    /// Pipeline when offered.
    pub pipelining: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub data_done_timeout: Duration,
}

impl ClientOptions {
    /// The relay's options, from the knobs as they are now.
    pub fn from_knobs() -> ClientOptions {
        let n = k::RELAY_HELO_NAME.get_str();
        ClientOptions {
            helo: if n.is_empty() { k::SMTP_HOSTNAME.get_str().to_string() } else { n.to_string() },
            starttls: k::RELAY_STARTTLS.get_bool(),
            implicit_tls: false,
            pipelining: k::RELAY_PIPELINING.get_bool(),
            connect_timeout: Duration::from_secs(k::RELAY_CONNECT_TIMEOUT_S.get_u64()),
            read_timeout: Duration::from_secs(k::RELAY_READ_TIMEOUT_S.get_u64()),
            data_done_timeout: Duration::from_secs(k::RELAY_DATA_DONE_TIMEOUT_S.get_u64()),
        }
    }
}

/// A message to send.
pub struct Outgoing<'a> {
    pub mail_from: &'a str,
    pub rcpts: Vec<&'a str>,
    pub parts: [&'a [u8]; 2],
    pub eight_bit: bool,
    pub smtputf8: bool,
}

/// One connection to a downstream server.
pub struct Client {
    stream: Stream<TcpStream>,
    buf: Vec<u8>,
    ext: Extensions,
    pub dest: Dest,
    /// Transactions sent over this connection.
    pub sent: u32,
    /// The last transaction did not end cleanly: RSET before the next.
    dirty: bool,
    opts: ClientOptions,
    /// Time from the end of the last message's data to the server's reply.
    pub last_data_latency: Option<Duration>,
}

async fn resolve(dest: &Dest) -> Result<Vec<SocketAddr>, String> {
    let target = format!("{}:{}", dest.host.trim_start_matches('[').trim_end_matches(']'), dest.port);
    if let Ok(sa) = target.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    if let Ok(ip) = dest.host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, dest.port)]);
    }
    // Host names resolve off the executor (the system resolver blocks).
    let t = target.clone();
    mxguard_spool::blocking::run(move || t.to_socket_addrs().map(|a| a.collect::<Vec<_>>()))
        .await
        .map_err(|e| format!("cannot resolve {target}: {e}"))
}

impl Client {
    /// Connects, reads the greeting, says EHLO and starts TLS when offered and allowed.
    pub async fn connect(dest: &Dest, tls: Option<&futures_rustls::TlsConnector>, opts: &ClientOptions) -> Result<Client, Failure> {
        let addrs = resolve(dest).await.map_err(Failure::Connect)?;
        let timeout = opts.connect_timeout;
        let mut last = String::from("no address");
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(a, timeout).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("connect to {a}: {e}"),
            }
        }
        let tcp = tcp.ok_or(Failure::Connect(last))?;
        let _ = tcp.set_nodelay(true);
        let mut c = Client {
            stream: Stream::Plain(tcp),
            buf: Vec::with_capacity(4096),
            ext: Extensions::default(),
            dest: dest.clone(),
            sent: 0,
            dirty: false,
            opts: opts.clone(),
            last_data_latency: None,
        };
        if opts.implicit_tls {
            let connector = tls.ok_or_else(|| Failure::Connect("implicit TLS without a TLS configuration".into()))?;
            c.tls_handshake(connector).await?;
        }
        let greeting = c.read_reply(c.opts.read_timeout).await?;
        if greeting.code != 220 {
            return Err(Failure::Session(format!("{dest} greeted with: {}", greeting.one_line()), Some(greeting)));
        }
        c.hello().await?;
        if c.ext.starttls && c.opts.starttls && !c.stream.is_tls() {
            if let Some(connector) = tls {
                let r = c.command("STARTTLS\r\n").await?;
                if r.code == 220 {
                    c.tls_handshake(connector).await?;
                    c.buf.clear();
                    c.hello().await?;
                }
            }
        }
        Ok(c)
    }

    async fn tls_handshake(&mut self, connector: &futures_rustls::TlsConnector) -> Result<(), Failure> {
        let name = mxguard_tls::server_name(&self.dest.host);
        let stream = &mut self.stream;
        glommio::timer::timeout(self.opts.read_timeout, async {
            stream.connect_tls(connector, name).await.map_err(glommio::GlommioError::from)
        })
        .await
        .map_err(|e| Failure::Io(format!("TLS handshake with {}: {e}", self.dest)))
    }

    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    async fn hello(&mut self) -> Result<(), Failure> {
        let name = self.opts.helo.clone();
        let r = self.command(&format!("EHLO {name}\r\n")).await?;
        if r.is_positive() {
            self.ext = parse_ehlo(&r);
            return Ok(());
        }
        let r = self.command(&format!("HELO {name}\r\n")).await?;
        if r.is_positive() {
            self.ext = Extensions::default();
            Ok(())
        } else {
            Err(Failure::Session(format!("{} refused HELO: {}", self.dest, r.one_line()), Some(r)))
        }
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), Failure> {
        let stream = &mut self.stream;
        glommio::timer::timeout(self.opts.read_timeout, async {
            stream.write_all(data).await?;
            stream.flush().await?;
            Ok(())
        })
        .await
        .map_err(|e| Failure::Io(format!("write to {}: {e}", self.dest)))
    }

    async fn read_reply(&mut self, timeout: Duration) -> Result<Reply, Failure> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match parse_reply(&self.buf) {
                Ok(Some((r, n))) => {
                    self.buf.drain(..n);
                    return Ok(r);
                }
                Ok(None) => {}
                Err(e) => return Err(Failure::Io(format!("{}: {e}", self.dest))),
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Failure::Io(format!("timeout waiting for {}", self.dest)));
            }
            let mut chunk = [0u8; 4096];
            let stream = &mut self.stream;
            let n = glommio::timer::timeout(left, async {
                stream.read(&mut chunk).await.map_err(glommio::GlommioError::from)
            })
            .await
            .map_err(|e| Failure::Io(format!("read from {}: {e}", self.dest)))?;
            if n == 0 {
                return Err(Failure::Io(format!("{} closed the connection", self.dest)));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn command(&mut self, line: &str) -> Result<Reply, Failure> {
        self.write(line.as_bytes()).await?;
        self.read_reply(self.opts.read_timeout).await
    }

    /// Sends one message; returns a result per recipient, in the order given.
    pub async fn deliver(&mut self, m: &Outgoing<'_>) -> Result<Vec<RcptResult>, Failure> {
        let who = self.dest.to_string();
        if m.smtputf8 && !self.ext.smtputf8 {
            let why = format!("{who} does not support SMTPUTF8, which this message needs");
            return Ok(m.rcpts.iter().map(|_| RcptResult::Permanent(why.clone(), Some(Reply::new(550, "5.6.7", why.clone())))).collect());
        }
        let total: usize = m.parts.iter().map(|p| p.len()).sum();
        if let Some(limit) = self.ext.size {
            if total as u64 > limit {
                let why = format!("message size {total} exceeds the limit of {who} ({limit})");
                return Ok(m.rcpts.iter().map(|_| RcptResult::Permanent(why.clone(), Some(Reply::new(552, "5.3.4", why.clone())))).collect());
            }
        }
        if self.dirty {
            let r = self.command("RSET\r\n").await?;
            if !r.is_positive() {
                return Err(Failure::Session(format!("{who} refused RSET: {}", r.one_line()), Some(r)));
            }
            self.dirty = false;
        }
        self.dirty = true;
        let mut mail = format!("MAIL FROM:<{}>", m.mail_from);
        if self.ext.size.is_some() {
            mail.push_str(&format!(" SIZE={total}"));
        }
        if m.eight_bit && self.ext.eight_bit {
            mail.push_str(" BODY=8BITMIME");
        }
        if m.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let pipelining = self.ext.pipelining && self.opts.pipelining;
        let mut results: Vec<Option<RcptResult>> = vec![None; m.rcpts.len()];
        let data_reply;
        if pipelining {
            let mut group = mail.into_bytes();
            for r in &m.rcpts {
                group.extend_from_slice(format!("RCPT TO:<{r}>\r\n").as_bytes());
            }
            group.extend_from_slice(b"DATA\r\n");
            self.write(&group).await?;
            let mail_reply = self.read_reply(self.opts.read_timeout).await?;
            for slot in results.iter_mut() {
                let r = self.read_reply(self.opts.read_timeout).await?;
                *slot = rcpt_result(&who, r);
            }
            data_reply = self.read_reply(self.opts.read_timeout).await?;
            if !mail_reply.is_positive() {
                if data_reply.is_intermediate() {
                    self.finish_empty_data().await?;
                }
                return Err(Failure::Session(format!("{who} refused MAIL FROM: {}", mail_reply.one_line()), Some(mail_reply)));
            }
        } else {
            let r = self.command(&mail).await?;
            if !r.is_positive() {
                return Err(Failure::Session(format!("{who} refused MAIL FROM: {}", r.one_line()), Some(r)));
            }
            for (i, rc) in m.rcpts.iter().enumerate() {
                let r = self.command(&format!("RCPT TO:<{rc}>\r\n")).await?;
                results[i] = rcpt_result(&who, r);
            }
            if results.iter().all(Option::is_some) {
                // Every recipient was refused: no DATA.
                return Ok(results.into_iter().flatten().collect());
            }
            data_reply = self.command("DATA\r\n").await?;
        }
        let accepted = results.iter().filter(|r| r.is_none()).count();
        if !data_reply.is_intermediate() {
            let fill = data_result(&who, "DATA", data_reply);
            return Ok(results.into_iter().map(|r| r.unwrap_or_else(|| fill.clone())).collect());
        }
        if accepted == 0 {
            self.finish_empty_data().await?;
            return Ok(results.into_iter().flatten().collect());
        }
        // Send the content in bounded pieces, cut at line ends.
        let mut stuffer = Stuffer::default();
        let mut out = Vec::with_capacity(64 * 1024 + 1024);
        for part in m.parts {
            let mut rest = part;
            while !rest.is_empty() {
                let take = if rest.len() <= 64 * 1024 {
                    rest.len()
                } else {
                    memchr::memrchr(b'\n', &rest[..64 * 1024]).map(|i| i + 1).unwrap_or(64 * 1024)
                };
                stuffer.push(&rest[..take], &mut out);
                rest = &rest[take..];
                if out.len() >= 64 * 1024 {
                    self.write(&out).await?;
                    out.clear();
                }
            }
        }
        stuffer.finish(&mut out);
        self.write(&out).await?;
        let t0 = std::time::Instant::now();
        let done = self.read_reply(self.opts.data_done_timeout).await?;
        self.last_data_latency = Some(t0.elapsed());
        self.sent += 1;
        if done.is_positive() {
            self.dirty = false;
        }
        let fill = if done.is_positive() {
            RcptResult::Delivered(format!("{who} said: {}", done.one_line()))
        } else {
            data_result(&who, "end of data", done)
        };
        Ok(results.into_iter().map(|r| r.unwrap_or_else(|| fill.clone())).collect())
    }

    /// After a 354 with no recipient accepted, end the empty message (RFC 2920 §3.1).
    async fn finish_empty_data(&mut self) -> Result<(), Failure> {
        self.write(b".\r\n").await?;
        let _ = self.read_reply(self.opts.read_timeout).await?;
        Ok(())
    }

    /// Says QUIT and closes (best effort).
    pub async fn quit(mut self) {
        let _ = glommio::timer::timeout(Duration::from_secs(2), async {
            let _ = self.command("QUIT\r\n").await;
            Ok(())
        })
        .await;
        let _ = self.stream.close().await;
    }
}

fn rcpt_result(who: &str, r: Reply) -> Option<RcptResult> {
    if r.is_positive() {
        None
    } else if r.is_permanent() {
        Some(RcptResult::Permanent(format!("{who} said: {}", r.one_line()), Some(r)))
    } else {
        Some(RcptResult::Temporary(format!("{who} said: {} (in reply to RCPT TO)", r.one_line()), Some(r)))
    }
}

fn data_result(who: &str, stage: &str, r: Reply) -> RcptResult {
    if r.is_permanent() {
        RcptResult::Permanent(format!("{who} said: {} (in reply to {stage})", r.one_line()), Some(r))
    } else {
        RcptResult::Temporary(format!("{who} said: {} (in reply to {stage})", r.one_line()), Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehlo_extensions() {
        let r = Reply::new(250, "", "mx.example\nPIPELINING\nSIZE 1000\n8BITMIME\nstarttls\nSMTPUTF8\nCHUNKING");
        let e = parse_ehlo(&r);
        assert!(e.pipelining && e.starttls && e.eight_bit && e.smtputf8);
        assert_eq!(e.size, Some(1000));
        let e = parse_ehlo(&Reply::new(250, "", "mx\nSIZE"));
        assert_eq!(e.size, None);
        let e = parse_ehlo(&Reply::new(250, "", "mx\nSIZE 0"));
        assert_eq!(e.size, None, "SIZE 0 means no limit");
    }
}
