//! The control plane: the web console (and, to come, its JSON API) on one thread with its own
//! tokio runtime, apart from the glommio cores, so nothing here ever slows mail.
//!
//! What an end user does here: log in, see the mail held for them with the reasons, read it
//! safely (as text), release it — the message is handed to core 0 (a [`Pickup`]) which spools it
//! (fsync'd) and queues it to its route; only then is the copy marked released, its sender put on
//! that user's allow list (in force on the cores at once) and the message taught to Bayes as
//! ham — or delete it, and keep their own allow and block lists. Domain admins see their
//! domains' mail and the superadmin everything (`users::Account::may_see`).
//!
//! Security: Argon2id passwords, random session tokens in HttpOnly SameSite=Strict cookies, a
//! CSRF token on every form, login throttling, a role check on every page and action, a strict
//! Content-Security-Policy (no scripts at all). HTTPS (rustls, the gateway's certificate) unless
//! `console.tls` is off; the cookie is then Secure too.
//!
//! Database calls block this thread (SQLite, Argon2): the console serialises its requests
//! rather than the cores ever waiting on it.

pub mod digest;
pub mod pages;
pub mod sessions;
pub mod tracking;
pub mod users;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use mxguard_quarantine::Store;
use mxguard_telemetry::Event;
use tokio::sync::{mpsc, oneshot};

use sessions::{same, Session, Sessions};
use users::{Account, Users};

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
    pub quarantine_db: PathBuf,
    pub console_db: PathBuf,
    pub pickup: mpsc::Sender<Pickup>,
    /// HTTPS with this configuration (its ALPN is set to HTTP/1.1 here); `None`: plain HTTP.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// The key that signs the digest's release links.
    pub key_file: PathBuf,
    /// The gateway's event log (message tracking and statistics read it); `None` when off.
    pub log_file: Option<PathBuf>,
}

struct State {
    users: Users,
    store: Store,
    sessions: Sessions,
    pickup: mpsc::Sender<Pickup>,
    /// Served over HTTPS: cookies are marked Secure.
    secure: bool,
    signer: digest::Signer,
    /// The port users reach (for the default `console.url`).
    port: u16,
    log_file: Option<PathBuf>,
}

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

type Shared = Rc<RefCell<State>>;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Opens the databases (so a bad path fails at start-up), puts the users' own lists in force,
/// binds, and serves on a thread of its own. Returns the bound address.
pub fn start(cfg: Config) -> Result<SocketAddr, String> {
    let users = Users::open(&cfg.console_db).map_err(|e| format!("console database {}: {e}", cfg.console_db.display()))?;
    mxguard_policy::user_lists::set(users.all_lists().map_err(|e| format!("console database: {e}"))?);
    let store = Store::open(&cfg.quarantine_db).map_err(|e| format!("quarantine database {}: {e}", cfg.quarantine_db.display()))?;
    let listener = std::net::TcpListener::bind(cfg.listen).map_err(|e| format!("console.listen {}: {e}", cfg.listen))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let pickup = cfg.pickup;
    let acceptor = cfg.tls.map(|t| {
        let mut t = (*t).clone();
        t.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(t))
    });
    let secure = acceptor.is_some();
    let signer = digest::Signer::load_or_create(&cfg.key_file)?;
    let log_file = cfg.log_file;
    let (digest_tx, mut digest_rx) = mpsc::channel::<DigestRequest>(4);
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
            local_set.block_on(&rt, async move {
                let state: Shared =
                    Rc::new(RefCell::new(State { users, store, sessions: Sessions::default(), pickup, secure, signer, port: local.port(), log_file }));
                // Digests: at console.digest_hour each day, and whenever the admin asks.
                let for_digests = Rc::clone(&state);
                tokio::task::spawn_local(async move {
                    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
                    let mut last_day = None;
                    loop {
                        tokio::select! {
                            _ = tick.tick() => {
                                let hour = mxguard_tuning::CONSOLE_DIGEST_HOUR.get();
                                let secs = now_ms() / 1000;
                                let (day, h) = (secs / 86_400, (secs % 86_400 / 3600) as i64);
                                if hour >= 0 && h == hour && last_day != Some(day) {
                                    last_day = Some(day);
                                    let _ = send_digests(&for_digests).await;
                                }
                            }
                            Some(answer) = digest_rx.recv() => {
                                let _ = answer.send(send_digests(&for_digests).await);
                            }
                        }
                    }
                });
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
                            async move { Ok::<_, Infallible>(handle(&state, peer.ip(), req).await) }
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
            });
        })
        .map_err(|e| format!("console thread: {e}"))?;
    Ok(local)
}

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &str, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")));
    h.insert("content-security-policy", HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

fn html(status: StatusCode, body: String) -> Resp {
    respond(status, "text/html; charset=utf-8", body)
}

fn redirect(to: &str, cookie: Option<String>) -> Resp {
    let mut r = respond(StatusCode::SEE_OTHER, "text/plain", String::new());
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(SET_COOKIE, c);
    }
    r
}

const COOKIE_NAME: &str = "mxg_session";

fn session_cookie(token: &str, secure: bool) -> String {
    format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict{}", if secure { "; Secure" } else { "" })
}

fn cookie_token(req: &Request<Incoming>) -> Option<String> {
    req.headers().get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == COOKIE_NAME).then(|| v.to_string())
    })
}

/// `application/x-www-form-urlencoded` pairs.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(v) => {
                            out.push(v);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> &'a str {
    f.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

async fn handle(state: &Shared, ip: IpAddr, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = form(req.uri().query().unwrap_or("").as_bytes());
    let token = cookie_token(&req);
    let body = if method == Method::POST {
        match Limited::new(req.into_body(), 64 * 1024).collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(_) => return respond(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "too large\n".into()),
        }
    } else {
        Vec::new()
    };
    let f = form(&body);
    if path == "/health" {
        return respond(StatusCode::OK, "text/plain", "ok\n".into());
    }
    if path == "/login" {
        return login(state, ip, &method, &f);
    }
    // A digest's signed release link: its own authority, no session.
    if let Some(rest) = path.strip_prefix("/r/") {
        return link(state, &method, rest).await;
    }
    let session = token.as_deref().and_then(|t| state.borrow_mut().sessions.get(t));
    let Some(s) = session else {
        return redirect("/login", None);
    };
    // Every state change carries the session's CSRF token.
    if method == Method::POST && !same(field(&f, "csrf"), &s.csrf) {
        return html(StatusCode::FORBIDDEN, pages::page("Refused", Some((&s.account, &s.csrf)), "<p class=\"err\">This form has expired: go back, reload and try again.</p>"));
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, [""]) => list(state, &s, None),
        (&Method::POST, ["logout"]) => {
            if let Some(t) = token {
                state.borrow_mut().sessions.end(&t);
            }
            redirect("/login", Some(format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")))
        }
        (&Method::GET, ["message", id]) => match id.parse() {
            Ok(id) => show(state, &s, id),
            Err(_) => not_found(&s),
        },
        (&Method::POST, ["message", id, action @ ("release" | "delete" | "spam")]) => match id.parse() {
            Ok(id) => act(state, &s, id, action).await,
            Err(_) => not_found(&s),
        },
        (&Method::GET, ["lists"]) => own_lists(state, &s),
        (&Method::GET, ["track"]) if s.account.role != users::Role::User => track(state, &s, &query),
        (&Method::GET, ["stats"]) if s.account.role != users::Role::User => stats(state, &s),
        (&Method::POST, ["lists", op @ ("add" | "remove")]) => edit_lists(state, &s, op, &f),
        _ => not_found(&s),
    }
}

fn not_found(s: &Session) -> Resp {
    html(StatusCode::NOT_FOUND, pages::page("Not found", Some((&s.account, &s.csrf)), "<p>There is no such page or message.</p>"))
}

fn login(state: &Shared, ip: IpAddr, method: &Method, f: &[(String, String)]) -> Resp {
    if method != Method::POST {
        return html(StatusCode::OK, pages::login(None));
    }
    let (email, password) = (field(f, "email").trim(), field(f, "password"));
    let mut st = state.borrow_mut();
    if !st.sessions.may_try(ip, email) {
        Event::new("console_login").str("client", &ip.to_string()).str("login", email).str("result", "throttled").emit();
        return html(StatusCode::TOO_MANY_REQUESTS, pages::login(Some("Too many failed attempts: wait a quarter of an hour.")));
    }
    match st.users.verify(email, password) {
        Ok(Some(account)) => {
            Event::new("console_login").str("client", &ip.to_string()).str("login", &account.email).str("result", "ok").emit();
            match st.sessions.start(account) {
                Some(t) => redirect("/", Some(session_cookie(&t, st.secure))),
                None => html(StatusCode::SERVICE_UNAVAILABLE, pages::login(Some("No session could be started (no randomness)."))),
            }
        }
        Ok(None) => {
            st.sessions.failed(ip, email);
            Event::new("console_login").str("client", &ip.to_string()).str("login", email).str("result", "failed").emit();
            html(StatusCode::UNAUTHORIZED, pages::login(Some("Wrong mail address or password.")))
        }
        Err(e) => html(StatusCode::INTERNAL_SERVER_ERROR, pages::login(Some(&format!("The account database failed: {e}")))),
    }
}

/// The copies this account may see, newest first.
fn visible(st: &State, a: &Account) -> Vec<mxguard_quarantine::Held> {
    let rows = match a.role {
        users::Role::Technician => Ok(Vec::new()),
        users::Role::User => st.store.list(Some(&a.email), None, 500),
        users::Role::DomainAdmin => {
            let mut all = Vec::new();
            for d in &a.domains {
                all.extend(st.store.list(None, Some(d), 500).unwrap_or_default());
            }
            all.sort_by(|x, y| y.arrival_ms.cmp(&x.arrival_ms).then(y.id.cmp(&x.id)));
            Ok(all)
        }
        users::Role::Superadmin => st.store.list(None, None, 500),
    };
    rows.unwrap_or_default().into_iter().filter(|h| a.may_see(&h.rcpt) && h.state != "deleted").collect()
}

fn list(state: &Shared, s: &Session, note: Option<&str>) -> Resp {
    let st = state.borrow();
    html(StatusCode::OK, pages::list(&s.account, &s.csrf, &visible(&st, &s.account), note))
}

fn show(state: &Shared, s: &Session, id: i64) -> Resp {
    let st = state.borrow();
    let Some(h) = st.store.held(id).ok().flatten().filter(|h| s.account.may_see(&h.rcpt) && h.state != "deleted") else {
        return not_found(s);
    };
    let raw = st.store.message(&h.qid).ok().flatten().unwrap_or_default();
    let p = mxguard_scan::parse(&raw);
    let headers: Vec<(String, String)> = ["From", "To", "Date", "Subject"]
        .iter()
        .filter_map(|name| p.headers().into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(n, v)| (n.to_string(), v.to_string())))
        .collect();
    html(StatusCode::OK, pages::message(&s.account, &s.csrf, &h, &p.text, &headers))
}

async fn act(state: &Shared, s: &Session, id: i64, action: &str) -> Resp {
    let (held, raw) = {
        let st = state.borrow();
        let Some(h) = st.store.held(id).ok().flatten().filter(|h| s.account.may_see(&h.rcpt)) else {
            return not_found(s);
        };
        let raw = st.store.message(&h.qid).ok().flatten().unwrap_or_default();
        (h, raw)
    };
    if held.state != "held" {
        return list(state, s, Some(&format!("That message was already {}.", held.state)));
    }
    if action == "delete" {
        let _ = state.borrow_mut().store.set_state(id, "deleted", now_ms());
        Event::new("quarantine_deleted").str("qid", &held.qid).str("rcpt", &held.rcpt).str("by", &s.account.email).emit();
        return list(state, s, Some("Deleted."));
    }
    if action == "spam" {
        // Confirmed spam: taught to Bayes as spam, then gone from the list.
        let taught = mxguard_bayes::current().map(|b| b.teach(&mxguard_scan::message_tokens(&raw), true, false, false)).is_some();
        let _ = state.borrow_mut().store.set_state(id, "deleted", now_ms());
        Event::new("quarantine_reported")
            .str("qid", &held.qid)
            .str("rcpt", &held.rcpt)
            .str("by", &s.account.email)
            .str("bayes", if taught { "spam" } else { "off" })
            .emit();
        return list(state, s, Some("Reported as spam and deleted: the filter learns from it."));
    }
    match release(state, &held, raw, &s.account.email).await {
        Ok(_) => list(
            state,
            s,
            Some(&format!("Released: it is on its way to {}; {} is now on the allow list.", held.rcpt, if held.mail_from.is_empty() { "<>" } else { &held.mail_from })),
        ),
        Err(e) => list(state, s, Some(&format!("Not released: {e}. Try again in a moment."))),
    }
}

/// Releases one held copy for `by`: spooled and queued first (never lost), then marked, then its
/// sender allowed for the recipient and the message taught to Bayes as ham. The new queue id.
async fn release(state: &Shared, held: &mxguard_quarantine::Held, raw: Vec<u8>, by: &str) -> Result<String, String> {
    let pickup = state.borrow().pickup.clone();
    let (tx, rx) = oneshot::channel();
    let sent = pickup.send(Pickup { mail_from: held.mail_from.clone(), rcpts: vec![held.rcpt.clone()], message: raw.clone(), answer: tx }).await;
    let queued = match sent {
        Ok(()) => rx.await.unwrap_or_else(|_| Err("the gateway is stopping".into())),
        Err(_) => Err("the gateway is stopping".into()),
    };
    let new_qid = queued.inspect_err(|e| Event::new("console_error").str("qid", &held.qid).str("error", e).emit())?;
    {
        let mut st = state.borrow_mut();
        let _ = st.store.set_state(held.id, "released", now_ms());
        if !held.mail_from.is_empty() {
            let _ = st.users.list_add(&held.rcpt, &held.mail_from, "allow", now_ms());
            if let Ok(l) = st.users.all_lists() {
                mxguard_policy::user_lists::set(l);
            }
        }
    }
    let taught = match mxguard_bayes::current() {
        Some(b) => {
            // A false positive: learnt as ham (the learner thread applies it; this never waits
            // for more than room in its queue).
            b.teach(&mxguard_scan::message_tokens(&raw), false, false, false);
            true
        }
        None => false,
    };
    Event::new("quarantine_released")
        .str("qid", &held.qid)
        .str("rcpt", &held.rcpt)
        .str("from", &held.mail_from)
        .str("by", by)
        .str("new_qid", &new_qid)
        .str("bayes", if taught { "ham" } else { "off" })
        .emit();
    Ok(new_qid)
}

/// `/r/ID/EXPIRES/MAC`: GET shows what the link releases and a button; POST releases.
async fn link(state: &Shared, method: &Method, rest: &str) -> Resp {
    let parts: Vec<&str> = rest.split('/').collect();
    let parsed = match parts.as_slice() {
        [id, exp, mac] => id.parse::<i64>().ok().zip(exp.parse::<u64>().ok()).map(|(i, e)| (i, e, mac.to_string())),
        _ => None,
    };
    let gone = || html(StatusCode::NOT_FOUND, pages::page("Link", None, "<p class=\"err\" id=\"error\">This link is not valid or has expired. Log in to see your quarantine.</p>"));
    let Some((id, expires, mac)) = parsed else { return gone() };
    let (held, raw) = {
        let st = state.borrow();
        let Some(h) = st.store.held(id).ok().flatten() else { return gone() };
        if !st.signer.verify(id, &h.rcpt, expires, &mac, now_ms() / 1000) {
            return gone();
        }
        let raw = st.store.message(&h.qid).ok().flatten().unwrap_or_default();
        (h, raw)
    };
    if held.state != "held" {
        return html(StatusCode::OK, pages::page("Link", None, &format!("<p id=\"note\">That message was already {}.</p>", pages::esc(&held.state))));
    }
    if method != Method::POST {
        return html(StatusCode::OK, pages::link_confirm(&held, &format!("/r/{rest}")));
    }
    match release(state, &held, raw, &format!("link:{}", held.rcpt)).await {
        Ok(_) => html(StatusCode::OK, pages::page("Released", None, &format!("<p class=\"note\" id=\"note\">Released: it is on its way to {}.</p>", pages::esc(&held.rcpt)))),
        Err(e) => html(StatusCode::SERVICE_UNAVAILABLE, pages::page("Link", None, &format!("<p class=\"err\">Not released: {}. Try again in a moment.</p>", pages::esc(&e)))),
    }
}

/// Sends each recipient with mail held since their last digest one digest; how many went out.
async fn send_digests(state: &Shared) -> Result<usize, String> {
    let hostname = mxguard_tuning::SMTP_HOSTNAME.get_str();
    let (batches, base, expires, pickup) = {
        let st = state.borrow();
        let all = st.store.list(None, None, 100_000).map_err(|e| e.to_string())?;
        let mut by_rcpt: std::collections::BTreeMap<String, Vec<mxguard_quarantine::Held>> = Default::default();
        for h in all.into_iter().filter(|h| h.state == "held") {
            by_rcpt.entry(h.rcpt.to_ascii_lowercase()).or_default().push(h);
        }
        let mut batches = Vec::new();
        for (rcpt, held) in by_rcpt {
            let last = st.users.digest_last(&rcpt).unwrap_or(0);
            let new: Vec<mxguard_quarantine::Held> = held.into_iter().filter(|h| h.arrival_ms > last).collect();
            if !new.is_empty() {
                batches.push((rcpt, new));
            }
        }
        let url = mxguard_tuning::CONSOLE_URL.get_str();
        let base = if url.is_empty() { format!("{}://{hostname}:{}", if st.secure { "https" } else { "http" }, st.port) } else { url.trim_end_matches('/').to_string() };
        let expires = now_ms() / 1000 + mxguard_tuning::QUARANTINE_RETENTION_DAYS.get_u64() * 86_400;
        (batches, base, expires, st.pickup.clone())
    };
    let from = format!("postmaster@{hostname}");
    let mut sent = 0;
    for (rcpt, held) in batches {
        let refs: Vec<&mxguard_quarantine::Held> = held.iter().collect();
        let text = digest::compose(&rcpt, &refs, &base, &state.borrow().signer, expires, &from, &mxguard_smtp::date::rfc5322(SystemTime::now()));
        let (tx, rx) = oneshot::channel();
        if pickup.send(Pickup { mail_from: String::new(), rcpts: vec![rcpt.clone()], message: text, answer: tx }).await.is_err() {
            return Err("the gateway is stopping".into());
        }
        match rx.await {
            Ok(Ok(qid)) => {
                let up_to = held.iter().map(|h| h.arrival_ms).max().unwrap_or(0);
                let _ = state.borrow().users.digest_done(&rcpt, up_to);
                Event::new("digest_sent").str("rcpt", &rcpt).num("messages", held.len() as u64).str("qid", &qid).emit();
                sent += 1;
            }
            Ok(Err(e)) => {
                Event::new("console_error").str("rcpt", &rcpt).str("error", &format!("digest: {e}")).emit();
            }
            Err(_) => return Err("the gateway is stopping".into()),
        }
    }
    Ok(sent)
}


/// Which events an account may see in tracking: those with a recipient it may track.
fn trackable(a: &Account) -> impl Fn(&tracking::Found) -> bool + '_ {
    move |f: &tracking::Found| f.rcpts.iter().any(|r| a.may_track(r)) || (a.role == users::Role::Superadmin && f.rcpts.is_empty())
}

fn track(state: &Shared, s: &Session, query: &[(String, String)]) -> Resp {
    let q = field(query, "q");
    let hours = field(query, "hours").parse::<u64>().unwrap_or(24).clamp(1, 24 * 90);
    let log = state.borrow().log_file.clone();
    let found = log.map(|l| tracking::search(&l, q, hours, 500, now_ms(), &trackable(&s.account))).unwrap_or_default();
    html(StatusCode::OK, pages::track(&s.account, &s.csrf, q, hours, &found))
}

fn stats(state: &Shared, s: &Session) -> Resp {
    let log = state.borrow().log_file.clone();
    let st = log.map(|l| tracking::stats(&l, now_ms(), &trackable(&s.account))).unwrap_or_default();
    html(StatusCode::OK, pages::stats(&s.account, &s.csrf, &st))
}

fn own_lists(state: &Shared, s: &Session) -> Resp {
    let st = state.borrow();
    html(StatusCode::OK, pages::lists(&s.account, &s.csrf, &st.users.lists_of(&s.account.email).unwrap_or_default()))
}

fn edit_lists(state: &Shared, s: &Session, op: &str, f: &[(String, String)]) -> Resp {
    let (sender, kind) = (field(f, "sender").trim().to_ascii_lowercase(), field(f, "kind"));
    let valid = (kind == "allow" || kind == "block") && !sender.is_empty() && sender.len() <= 254 && sender.contains('@') && !sender.contains(char::is_whitespace);
    if valid {
        let st = state.borrow();
        let done = if op == "add" { st.users.list_add(&s.account.email, &sender, kind, now_ms()) } else { st.users.list_remove(&s.account.email, &sender, kind) };
        if done.is_ok() {
            if let Ok(l) = st.users.all_lists() {
                mxguard_policy::user_lists::set(l);
            }
        }
    }
    redirect("/lists", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = form(b"email=ann%40example.test&password=a+b%2Bc%&csrf=&x");
        assert_eq!(field(&f, "email"), "ann@example.test");
        assert_eq!(field(&f, "password"), "a b+c%");
        assert_eq!(field(&f, "csrf"), "");
        assert_eq!(field(&f, "x"), "");
        assert_eq!(field(&f, "missing"), "");
        assert_eq!(field(&form("k=%E2%9C%93%zz".as_bytes()), "k"), "✓%zz");
    }
}
