//! The SMTP server: drives [`mxguard_smtp::Session`] over glommio sockets, one executor per core.
//!
//! This crate owns everything about a connection that is not protocol: SO_REUSEPORT listeners
//! on every core, the connection limits (total and per client IP), TLS (STARTTLS and implicit),
//! time limits per phase with a minimum body data rate, graceful shutdown with 421, and the
//! connection log lines. What to *decide* (accept a recipient, store a message) it asks a
//! [`Handler`]; the gateway's handler spools and relays, mxblast's sink counts.
//!
//! It must never block the executor, never buffer more of a client's input than the session's
//! line limits allow, and never leave a client without a reply or a close.

pub mod admission;
mod conn;
pub mod evict;
mod listen_table;
pub mod limits;
pub mod shutdown;

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use glommio::net::TcpListener;
use mxguard_smtp::{Envelope, MailFrom, Reply};

pub use shutdown::Shutdown;

/// What the driver knows about a connection, passed to every [`Handler`] call.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Unique per process (core in the top bits).
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub started: Instant,
    /// Negotiated TLS version and cipher, once TLS is up.
    pub tls: Option<String>,
    pub helo: Option<String>,
}

/// The decisions of an SMTP server. Every method may await (DNS, spool), never block.
pub trait Handler: 'static {
    /// A new connection passed the limits; `Some` refuses it with that reply.
    fn connect(&self, _conn: &ConnInfo) -> Option<Reply> {
        None
    }
    /// How long to hold back the banner's last line to catch clients that talk before it
    /// (postscreen's pregreet test); zero skips the test. Not applied to implicit TLS.
    fn pregreet_wait(&self, _conn: &ConnInfo) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    /// The pregreet test's outcome: `talked` means the client sent before the banner ended and
    /// is being refused.
    fn pregreet_result(&self, _conn: &ConnInfo, _talked: bool) {}
    fn helo(&self, _conn: &ConnInfo, _name: &str, _extended: bool) -> impl Future<Output = Result<(), Reply>> {
        async { Ok(()) }
    }
    fn mail(&self, _conn: &ConnInfo, _from: &MailFrom) -> impl Future<Output = Result<(), Reply>> {
        async { Ok(()) }
    }
    fn rcpt(&self, conn: &ConnInfo, from: &MailFrom, to: &str) -> impl Future<Output = Result<(), Reply>>;
    /// A complete message; the returned reply is the client's final answer (`250` only once the
    /// message is safe).
    fn message(&self, conn: &ConnInfo, envelope: Envelope, body: Vec<u8>) -> impl Future<Output = Reply>;
    /// The connection closed (after its last reply).
    fn disconnect(&self, _conn: &ConnInfo, _summary: &ConnSummary) {}
}

/// What happened on a connection, for the log line at close.
#[derive(Debug, Clone, Default)]
pub struct ConnSummary {
    pub messages: u64,
    pub errors: u32,
    /// Why it ended: `quit`, `eof`, `timeout`, `error`, `shutdown`, `limit`, `refused`.
    pub end: &'static str,
}

/// A listening socket and whether it speaks TLS from the first byte.
pub struct Listener {
    pub socket: TcpListener,
    pub implicit_tls: bool,
}

/// Fails when a process listens on one of `addrs` already (or on the same port of the
/// unspecified address, or, for an unspecified `addr`, on any address of its port). Run once,
/// before the cores [`bind`]: SO_REUSEPORT lets any process of the same user bind a port that is
/// listened on, and the kernel then splits the connections between the two without an error, so
/// a second gateway (or a forgotten test server) would silently take part of the mail.
///
/// Reads the kernel's table of TCP sockets (`/proc/net/tcp` and `tcp6`) for ones in the listening
/// state, rather than trying a bind without SO_REUSEPORT: such a bind is also refused for the
/// minute the last run's closed connections spend in TIME_WAIT on the port, which would stop a
/// restart. Where that table cannot be read, nothing is refused. A listener still there after
/// [`IN_USE_PATIENCE`] is refused: the listening socket of a gateway just killed outlives it
/// until the kernel has torn its io_uring down, so a restart after `kill -9` waits for that.
pub fn check_unused(addrs: &[SocketAddr]) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + IN_USE_PATIENCE;
    loop {
        let listening = listen_table::listening();
        let taken = addrs.iter().find_map(|a| listening.iter().find(|l| listen_table::overlaps(l, a)).map(|o| (a, *o)));
        match taken {
            None => return Ok(()),
            Some(_) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(50)),
            Some((a, other)) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("cannot listen on {a}: another process listens there ({other})"),
                ))
            }
        }
    }
}

/// How long [`check_unused`] waits for a listener to go before refusing to start.
pub const IN_USE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds every address on this executor (SO_REUSEPORT lets each core bind the same ones).
pub fn bind(plain: &[SocketAddr], implicit_tls: &[SocketAddr]) -> std::io::Result<Vec<Listener>> {
    let mut out = Vec::new();
    for (addrs, tls) in [(plain, false), (implicit_tls, true)] {
        for a in addrs {
            let socket = TcpListener::bind(a)
                .map_err(|e| std::io::Error::other(format!("cannot listen on {a}: {e}")))?;
            out.push(Listener { socket, implicit_tls: tls });
        }
    }
    Ok(out)
}

/// Serves connections on `listeners` until `shutdown`, then waits for the sessions to finish
/// (they get 421 at their next command, or when the grace time runs out inside a transfer).
pub async fn serve<H: Handler>(
    handler: Rc<H>,
    listeners: Vec<Listener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    core: usize,
    shutdown: Rc<Shutdown>,
) {
    let acceptor = tls.map(futures_rustls::TlsAcceptor::from);
    // The body admission gate's lag probe (admission.rs), for the life of this executor.
    glommio::spawn_local(admission::probe()).detach();
    let live = Rc::new(glommio::sync::Gate::new());
    let mut accept_tasks = Vec::new();
    for l in listeners {
        let handler = handler.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        let live = live.clone();
        let counter = Rc::new(std::cell::Cell::new(0u64));
        accept_tasks.push(glommio::spawn_local(async move {
            loop {
                let accepted = futures_lite::future::or(async { Some(l.socket.accept().await) }, async {
                    shutdown.wait().await;
                    None
                })
                .await;
                let stream = match accepted {
                    None => break,
                    Some(Ok(s)) => s,
                    Some(Err(e)) => {
                        mxguard_telemetry::Event::new("accept_error").str("error", &e.to_string()).emit();
                        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let n = counter.get() + 1;
                counter.set(n);
                let id = ((core as u64) << 48) | (n & 0xFFFF_FFFF_FFFF);
                let ctx = conn::Ctx {
                    handler: handler.clone(),
                    acceptor: acceptor.clone(),
                    implicit_tls: l.implicit_tls,
                    shutdown: shutdown.clone(),
                };
                if let Ok(t) = live.spawn(conn::run(ctx, stream, id)) {
                    t.detach();
                }
            }
        }));
    }
    for t in accept_tasks {
        t.await;
    }
    let _ = live.close().await;
}
