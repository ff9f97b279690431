//! The control plane: the web console and its JSON API on one thread with its own tokio runtime,
//! apart from the glommio cores, so nothing here ever slows mail. Database work and password
//! hashing run on a second thread ([`data`]), so one slow query never stalls other requests'
//! I/O.
//!
//! What an end user does here: log in (password, or the digest's one-time link), see the mail
//! held for them with the reasons, search it, read it safely (as text), release it — the message
//! is handed to core 0 (a [`Pickup`]) which spools it (fsync'd) and queues it to its route; only
//! then is the copy marked released, its sender put on that user's allow list (in force on the
//! cores at once) and the message taught to Bayes as ham — or delete it, report it, and keep
//! their own allow and block lists. Admins manage accounts and API tokens, their domains' filter
//! settings and lists, read the knobs (the superadmin changes them), track messages and read
//! statistics. Every operation, for the pages and the API alike, is in [`ops`] with its role
//! check.
//!
//! Security: Argon2id passwords, random session tokens in HttpOnly SameSite=Strict cookies, a
//! CSRF token on every form, login throttling, bearer tokens (stored hashed) for the API, a role
//! check on every page and action, a strict Content-Security-Policy (no scripts at all). HTTPS
//! (rustls, the gateway's certificate) unless `console.tls` is off; the cookie is then Secure
//! too.

pub mod api;
pub mod data;
pub mod digest;
pub mod http;
pub mod ops;
pub mod pages;
pub mod preview;
pub mod release_marks;
pub mod sessions;
pub mod setup_code;
pub mod settings;
pub mod tracking;
pub mod users;
pub mod web;

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::SystemTime;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use mxguard_quarantine::{Held, Location, Scope, Search, Store};
use mxguard_telemetry::Event;
use tokio::sync::{mpsc, oneshot};

use ops::now_ms;
use sessions::Sessions;
use users::Users;

/// A released message for core 0 to spool and queue (filters bypassed): the answer is the new
/// queue id once it is durably spooled.
pub struct Pickup {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub message: Vec<u8>,
    pub answer: oneshot::Sender<Result<String, String>>,
}

/// What the console needs from the gateway.
pub struct Config {
    pub listen: SocketAddr,
    pub quarantine_db: Location,
    pub console_db: Location,
    pub pickup: mpsc::Sender<Pickup>,
    /// HTTPS with this configuration (its ALPN is set to HTTP/1.1 here); `None`: plain HTTP.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// The key that signs the digest's links.
    pub key_file: PathBuf,
    /// The gateway's event log (message tracking and statistics read it); `None` when off.
    pub log_file: Option<PathBuf>,
    /// Where knob changes made in the console are kept (applied again at start).
    pub knob_file: Option<PathBuf>,
    /// The lists directory (per-domain filter settings).
    pub lists_dir: Option<PathBuf>,
    /// Where releases sent but not yet marked in the database are kept (release_marks.rs).
    pub release_marks: Option<PathBuf>,
    /// Where `mxguard setup-code` leaves the digest of the first superadmin's setup code.
    pub setup_code: Option<PathBuf>,
}

/// The console's state, on its thread.
pub struct State {
    pub ctx: ops::Ctx,
    pub sessions: RefCell<Sessions>,
    /// Served over HTTPS: cookies are marked Secure.
    pub secure: bool,
    pub signer: digest::Signer,
    /// The port users reach (for the default `console.url`).
    pub port: u16,
    /// The accounts' database is shared with other gateways: reread users' lists now and then.
    pub shared_lists: bool,
    /// The one-time setup code for the first superadmin (`/setup`); `None`: no such page.
    pub setup: Option<setup_code::SetupCode>,
}

pub type Shared = Rc<State>;

/// "Send the digests now" requests from the admin socket, answered with how many were sent.
type DigestRequest = std::sync::mpsc::SyncSender<Result<usize, String>>;

static DIGEST_NOW: std::sync::OnceLock<mpsc::Sender<DigestRequest>> = std::sync::OnceLock::new();

/// Sends every due digest now (the admin socket's `digest`); how many went out.
pub fn digest_now() -> Result<usize, String> {
    let q = DIGEST_NOW.get().ok_or("the console is off (console.listen is empty)")?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    q.blocking_send(tx).map_err(|_| "the console has stopped".to_string())?;
    rx.recv().map_err(|_| "the console has stopped".to_string())?
}

/// Opens the databases (so a bad path or an unreachable server fails at start-up), puts the
/// users' own lists in force, binds, and serves on a thread of its own. Returns the bound address.
pub fn start(cfg: Config) -> Result<SocketAddr, String> {
    let mut users = Users::open(&cfg.console_db).map_err(|e| format!("console database {}: {e}", cfg.console_db.describe()))?;
    mxguard_policy::user_lists::set(users.all_lists().map_err(|e| format!("console database: {e}"))?);
    let store = Store::open(&cfg.quarantine_db).map_err(|e| format!("quarantine database {}: {e}", cfg.quarantine_db.describe()))?;
    let data = data::DataThread::start(data::Data { store, users })?;
    let listener = std::net::TcpListener::bind(cfg.listen).map_err(|e| format!("console.listen {}: {e}", cfg.listen))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let acceptor = cfg.tls.map(|t| {
        let mut t = (*t).clone();
        t.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(t))
    });
    let state = State {
        ctx: ops::Ctx {
            data,
            pickup: cfg.pickup,
            knob_file: cfg.knob_file,
            lists_dir: cfg.lists_dir,
            log_file: cfg.log_file,
            marks: release_marks::ReleaseMarks::load(cfg.release_marks.clone())
                .map_err(|e| format!("{}: {e}", cfg.release_marks.as_deref().map(|p| p.display().to_string()).unwrap_or_default()))?,
        },
        sessions: RefCell::new(Sessions::default()),
        secure: acceptor.is_some(),
        signer: digest::Signer::load_or_create(&cfg.key_file)?,
        port: local.port(),
        shared_lists: matches!(cfg.console_db, Location::Postgres(_)),
        setup: cfg.setup_code.map(setup_code::SetupCode::new),
    };
    let (digest_tx, digest_rx) = mpsc::channel::<DigestRequest>(4);
    let _ = DIGEST_NOW.set(digest_tx);
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
                Ok(rt) => rt,
                Err(e) => {
                    Event::new("console_error").str("error", &format!("runtime: {e}")).emit();
                    return;
                }
            };
            let local_set = tokio::task::LocalSet::new();
            local_set.block_on(&rt, serve(Rc::new(state), listener, acceptor, digest_rx));
        })
        .map_err(|e| format!("console thread: {e}"))?;
    Ok(local)
}

async fn serve(state: Shared, listener: std::net::TcpListener, acceptor: Option<tokio_rustls::TlsAcceptor>, digest_rx: mpsc::Receiver<DigestRequest>) {
    tokio::task::spawn_local(timers(Rc::clone(&state), digest_rx));
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            Event::new("console_error").str("error", &e.to_string()).emit();
            return;
        }
    };
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let state = Rc::clone(&state);
        let acceptor = acceptor.clone();
        tokio::task::spawn_local(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = Rc::clone(&state);
                async move {
                    let mut resp = handle(&state, peer.ip(), req).await;
                    if state.secure {
                        // HSTS: a browser that has seen the console over HTTPS never asks for it
                        // over plain HTTP again (a year; the console has no subdomains of its own).
                        resp.headers_mut().insert(
                            "strict-transport-security",
                            hyper::header::HeaderValue::from_static("max-age=31536000"),
                        );
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let http = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .clone();
            match acceptor {
                Some(a) => {
                    // A handshake that stalls is dropped like a slow request.
                    let shake = tokio::time::timeout(std::time::Duration::from_secs(10), a.accept(stream)).await;
                    if let Ok(Ok(tls)) = shake {
                        let _ = http.serve_connection(hyper_util::rt::TokioIo::new(tls), svc).await;
                    }
                }
                None => {
                    let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                }
            }
        });
    }
}

/// How often releases sent but not marked are marked again.
const RELEASE_MARK_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

/// Digests at `console.digest_hour` each day and whenever the admin asks; with a shared
/// database, the users' lists other gateways changed, every `console.lists_refresh_s`; releases
/// sent but not yet marked (release_marks.rs), at start and every few seconds while any is left.
async fn timers(state: Shared, mut digest_rx: mpsc::Receiver<DigestRequest>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    let mut marks_tick = tokio::time::interval(RELEASE_MARK_RETRY);
    let mut last_day = None;
    let refresh_every = || std::time::Duration::from_secs(mxguard_tuning::CONSOLE_LISTS_REFRESH_S.get_u64().max(1));
    let mut next_refresh = tokio::time::Instant::now() + refresh_every();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_refresh), if state.shared_lists => {
                next_refresh = tokio::time::Instant::now() + refresh_every();
                match state.ctx.data.run(|d| d.users.all_lists()).await {
                    Ok(Ok(l)) => mxguard_policy::user_lists::set(l),
                    Ok(Err(e)) => Event::new("console_error").str("error", &format!("users' lists: {e}")).emit(),
                    Err(_) => {}
                }
            }
            _ = marks_tick.tick(), if !state.ctx.marks.pending().is_empty() => {
                ops::retry_release_marks(&state.ctx).await;
            }
            _ = tick.tick() => {
                let hour = mxguard_tuning::CONSOLE_DIGEST_HOUR.get();
                let secs = now_ms() / 1000;
                let (day, h) = (secs / 86_400, (secs % 86_400 / 3600) as i64);
                if hour >= 0 && h == hour && last_day != Some(day) {
                    last_day = Some(day);
                    let _ = send_digests(&state).await;
                }
            }
            Some(answer) = digest_rx.recv() => {
                let _ = answer.send(send_digests(&state).await);
            }
        }
    }
}

async fn handle(state: &Shared, ip: IpAddr, req: Request<Incoming>) -> http::Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = http::form(req.uri().query().unwrap_or("").as_bytes());
    let cookie = http::cookie_token(&req);
    let bearer = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let body = if method == Method::POST || method == Method::PUT || method == Method::DELETE {
        // Whole list files are posted to these (ops::LIST_FILE_EDIT_MAX, form-encoded); 64 KiB elsewhere.
        let limit = if path.starts_with("/admin/files/") || path.starts_with("/api/v1/files/") { 4 << 20 } else { 64 * 1024 };
        match Limited::new(req.into_body(), limit).collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(_) => return http::respond(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "too large\n".into()),
        }
    } else {
        Vec::new()
    };
    if path == "/health" {
        return http::respond(StatusCode::OK, "text/plain", "ok\n".into());
    }
    if let Some(rest) = path.strip_prefix("/api/") {
        return api::handle(state, ip, &method, rest, &query, bearer.as_deref(), &body).await;
    }
    web::handle(state, ip, &method, &path, &query, cookie.as_deref(), &body).await
}

/// The console's address as users reach it, for links in mail.
fn base_url(state: &State) -> String {
    let url = mxguard_tuning::CONSOLE_URL.get_str();
    if url.is_empty() {
        format!("{}://{}:{}", if state.secure { "https" } else { "http" }, mxguard_tuning::SMTP_HOSTNAME.get_str(), state.port)
    } else {
        url.trim_end_matches('/').to_string()
    }
}

/// Sends each recipient with mail held since their last digest one digest; how many went out.
async fn send_digests(state: &Shared) -> Result<usize, String> {
    let hostname = mxguard_tuning::SMTP_HOSTNAME.get_str();
    let batches = state
        .ctx
        .data
        .run(|d| -> Result<Vec<(String, u64, Vec<Held>)>, String> {
            let mut q = Search::within(Scope::All, 100_000);
            q.state = Some("held".into());
            let mut by_rcpt: std::collections::BTreeMap<String, Vec<Held>> = Default::default();
            for h in d.store.search(&q)? {
                by_rcpt.entry(h.rcpt.to_ascii_lowercase()).or_default().push(h);
            }
            let mut batches = Vec::new();
            for (rcpt, held) in by_rcpt {
                let last = d.users.digest_last(&rcpt)?;
                let new: Vec<Held> = held.into_iter().filter(|h| h.arrival_ms > last).collect();
                let up_to = new.iter().map(|h| h.arrival_ms).max().unwrap_or(0);
                // Claimed before it is sent: another gateway sharing the database skips it.
                if !new.is_empty() && d.users.digest_claim(&rcpt, last, up_to)? {
                    batches.push((rcpt, last, new));
                }
            }
            Ok(batches)
        })
        .await??;
    let base = base_url(state);
    let now = now_ms() / 1000;
    let expires = now + mxguard_tuning::QUARANTINE_RETENTION_DAYS.get_u64() * 86_400;
    let login_expires = now + mxguard_tuning::CONSOLE_LOGIN_LINK_H.get_u64() * 3600;
    let from = format!("postmaster@{hostname}");
    let mut sent = 0;
    for (rcpt, last, held) in batches {
        let refs: Vec<&Held> = held.iter().collect();
        let text = digest::compose(&rcpt, &refs, &base, &state.signer, expires, login_expires, &from, &mxguard_smtp::date::rfc5322(SystemTime::now()));
        let (tx, rx) = oneshot::channel();
        let queued = match state.ctx.pickup.send(Pickup { mail_from: String::new(), rcpts: vec![rcpt.clone()], message: text, answer: tx }).await {
            Ok(()) => rx.await.unwrap_or_else(|_| Err("the gateway is stopping".into())),
            Err(_) => Err("the gateway is stopping".into()),
        };
        match queued {
            Ok(qid) => {
                Event::new("digest_sent").str("rcpt", &rcpt).num("messages", held.len() as u64).str("qid", &qid).emit();
                sent += 1;
            }
            Err(e) => {
                // Not sent: the claim is given back, so the next run sends it.
                let r = rcpt.clone();
                let _ = state.ctx.data.run(move |d| d.users.digest_done(&r, last)).await;
                Event::new("console_error").str("rcpt", &rcpt).str("error", &format!("digest: {e}")).emit();
                if e == "the gateway is stopping" {
                    return Err(e);
                }
            }
        }
    }
    Ok(sent)
}
