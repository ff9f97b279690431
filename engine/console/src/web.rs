//! The web console's routes: reads a request (cookie session, CSRF token, form), calls the
//! operation in [`crate::ops`] and renders the page ([`crate::pages`]). No role check lives here
//! that [`crate::ops`] does not also make; the few here only choose which links to show.
//!
//! Never: changes anything on a GET (except the digest's link pages, which only show a button),
//! or accepts a POST without the session's CSRF token.

use std::net::IpAddr;

use hyper::{Method, StatusCode};
use mxguard_telemetry::Event;

use crate::http::{field, framed, html, redirect, session_cookie, Resp, COOKIE_NAME};
use crate::ops::{self, now_ms, Action, Refused};
use crate::pages;
use crate::preview;
use crate::sessions::{same, Session};
use crate::setup_code::{self, SetupCode};
use crate::users::{Account, Role};
use crate::Shared;

type Fields = [(String, String)];

/// The throttle's name for setup code tries from `ip` (no account login has spaces). Per
/// address, so that wrong codes from elsewhere never lock the operator out; 60 bits leave a
/// guesser with many addresses nothing to gain.
fn setup_tries(ip: IpAddr) -> String {
    format!("setup code from {ip}")
}

pub async fn handle(state: &Shared, ip: IpAddr, method: &Method, path: &str, query: &Fields, cookie: Option<&str>, body: &[u8]) -> Resp {
    let f = crate::http::form(body);
    if path == "/login" {
        return login(state, ip, method, &f).await;
    }
    if path == "/setup" {
        return setup(state, ip, method, &f).await;
    }
    // A digest's signed links: their own authority, no session.
    if let Some(rest) = path.strip_prefix("/r/") {
        return release_link(state, method, rest).await;
    }
    if let Some(rest) = path.strip_prefix("/l/") {
        return login_link(state, ip, method, rest).await;
    }
    let session = cookie.and_then(|t| state.sessions.borrow_mut().get(t));
    let Some(s) = session else {
        return redirect("/login", None);
    };
    // Every state change carries the session's CSRF token.
    if *method == Method::POST && !same(field(&f, "csrf"), &s.csrf) {
        return html(StatusCode::FORBIDDEN, pages::page("Refused", Some((&s.account, &s.csrf)), "<p class=\"err\">This form has expired: go back, reload and try again.</p>"));
    }
    let a = &s.account;
    let ctx = &state.ctx;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, [""]) => list(state, &s, query, None).await,
        (&Method::POST, ["logout"]) => {
            if let Some(t) = cookie {
                state.sessions.borrow_mut().end(t);
            }
            redirect("/login", Some(format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")))
        }
        (&Method::GET, ["message", id]) => match id.parse() {
            Ok(id) => match ops::message(ctx, a, id).await {
                Ok((h, raw)) => {
                    let p = mxguard_scan::parse(&raw);
                    let headers: Vec<(String, String)> = ["From", "To", "Date", "Subject"]
                        .iter()
                        .filter_map(|name| p.headers().into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(n, v)| (n.to_string(), v.to_string())))
                        .collect();
                    let links: Vec<(String, Option<String>)> =
                        mxguard_scan::urls::links_of(&p.text, &p.html(), &p.attachments(), 100).into_iter().filter(|l| !l.src).map(|l| (shown_url(&l), link_text(&l))).collect();
                    let preview = preview::of(&p, preview::max_bytes());
                    let shown = pages::Shown { text: &p.text, headers: &headers, has_html: preview.html.is_some(), remote_images: preview.remote_images, links: &links };
                    html(StatusCode::OK, pages::message(a, &s.csrf, &h, &shown))
                }
                Err(r) => refused(&s, &r),
            },
            Err(_) => refused(&s, &Refused::NotFound),
        },
        // The cleaned HTML, framed by the message page under a policy of its own.
        (&Method::GET, ["message", id, "preview"]) => match id.parse() {
            Ok(id) => match ops::message(ctx, a, id).await {
                Ok((_, raw)) => match preview::of(&mxguard_scan::parse(&raw), preview::max_bytes()).html {
                    Some(doc) => framed(doc, preview::CSP),
                    None => framed(String::from("<!doctype html><p>This message has no HTML part.</p>"), preview::CSP),
                },
                Err(r) => refused(&s, &r),
            },
            Err(_) => refused(&s, &Refused::NotFound),
        },
        (&Method::POST, ["message", id, action]) => match (id.parse(), Action::parse(action)) {
            (Ok(id), Some(action)) => {
                let note = match ops::act(ctx, a, id, action).await {
                    Ok(note) => note,
                    Err(Refused::NotFound) => return refused(&s, &Refused::NotFound),
                    Err(r) => r.text(),
                };
                list(state, &s, &[], Some(&note)).await
            }
            _ => refused(&s, &Refused::NotFound),
        },
        (&Method::GET, ["lists"]) => {
            let owner = owner_of(a, query);
            match ops::lists(ctx, a, &owner).await {
                Ok(entries) => html(StatusCode::OK, pages::lists(a, &s.csrf, &owner, &entries, None)),
                Err(r) => refused(&s, &r),
            }
        }
        (&Method::POST, ["lists", op @ ("add" | "remove")]) => {
            let owner = owner_of(a, &f);
            match ops::list_edit(ctx, a, &owner, *op == "add", field(&f, "sender"), field(&f, "kind")).await {
                Ok(()) => redirect(&format!("/lists?owner={}", url_escape(&owner)), None),
                Err(Refused::Invalid(why)) => match ops::lists(ctx, a, &owner).await {
                    Ok(entries) => html(StatusCode::BAD_REQUEST, pages::lists(a, &s.csrf, &owner, &entries, Some(&why))),
                    Err(r) => refused(&s, &r),
                },
                Err(r) => refused(&s, &r),
            }
        }
        (&Method::GET, ["track"]) => {
            let (q, hours) = (field(query, "q"), ops::hours_of(field(query, "hours")));
            match ops::track(ctx, a, q, hours) {
                Ok(found) => html(StatusCode::OK, pages::track(a, &s.csrf, q, hours, &found)),
                Err(r) => refused(&s, &r),
            }
        }
        (&Method::GET, ["stats"]) => match ops::stats(ctx, a) {
            Ok(st) => html(StatusCode::OK, pages::stats(a, &s.csrf, &st)),
            Err(r) => refused(&s, &r),
        },
        (&Method::GET, ["admin", "accounts"]) => accounts(state, &s, None, None).await,
        (&Method::POST, ["admin", "accounts", "put"]) => {
            let new = account_from(&f);
            let note = match ops::account_put(ctx, a, new.clone(), field(&f, "password").to_string()).await {
                Ok(()) => format!("Saved {}.", new.email),
                Err(Refused::NotFound) => Refused::NotFound.text(),
                Err(r) => r.text(),
            };
            accounts(state, &s, Some(&note), None).await
        }
        (&Method::POST, ["admin", "accounts", "remove"]) => {
            let note = match ops::account_remove(ctx, a, field(&f, "email")).await {
                Ok(()) => format!("Removed {}.", field(&f, "email")),
                Err(r) => r.text(),
            };
            accounts(state, &s, Some(&note), None).await
        }
        (&Method::POST, ["admin", "tokens", "new"]) => match ops::token_new(ctx, a, field(&f, "account"), field(&f, "label")).await {
            Ok(token) => accounts(state, &s, None, Some(&token)).await,
            Err(r) => accounts(state, &s, Some(&r.text()), None).await,
        },
        (&Method::POST, ["admin", "tokens", "revoke"]) => {
            let note = match ops::token_revoke(ctx, a, field(&f, "id")).await {
                Ok(()) => "Token revoked.".to_string(),
                Err(r) => r.text(),
            };
            accounts(state, &s, Some(&note), None).await
        }
        (&Method::GET, ["admin", "domains"]) => domains(state, &s, None),
        (&Method::POST, ["admin", "domains", "set"]) => {
            let note = match ops::domain_set(ctx, a, field(&f, "domain"), field(&f, "setting"), field(&f, "value")) {
                Ok(()) => format!("Saved; {} uses it within a few seconds.", field(&f, "domain")),
                Err(r) => r.text(),
            };
            domains(state, &s, Some(&note))
        }
        (&Method::POST, ["admin", "routes", action]) if matches!(*action, "set" | "remove") => {
            let domain = field(&f, "domain");
            let done = if *action == "set" { ops::route_set(ctx, a, domain, field(&f, "route")) } else { ops::route_remove(ctx, a, domain) };
            let note = match done {
                Ok(()) if *action == "set" => format!("{} is a local domain, delivered to {}.", domain.trim(), Some(field(&f, "route").trim()).filter(|r| !r.is_empty()).unwrap_or("the default route")),
                Ok(()) => format!("{} is no longer a local domain.", domain.trim()),
                Err(r) => r.text(),
            };
            domains(state, &s, Some(&note))
        }
        (&Method::GET, ["admin", "files"]) => match ops::list_files(ctx, a) {
            Ok(files) => html(StatusCode::OK, pages::list_files(a, &s.csrf, &files)),
            Err(r) => refused(&s, &r),
        },
        (&Method::GET, ["admin", "files", name]) => match ops::list_file(ctx, a, name) {
            Ok(text) => html(StatusCode::OK, pages::list_file(a, &s.csrf, name, &text, None, None)),
            Err(r) => refused(&s, &r),
        },
        (&Method::POST, ["admin", "files", name]) => {
            let text = field(&f, "text");
            match ops::list_file_set(ctx, a, name, text) {
                Ok(n) => html(StatusCode::OK, pages::list_file(a, &s.csrf, name, &text.replace("\r\n", "\n"), Some(&format!("Saved and in force: {n} entries in all lists.")), None)),
                Err(Refused::Invalid(why)) => html(StatusCode::BAD_REQUEST, pages::list_file(a, &s.csrf, name, text, None, Some(&format!("Not saved:\n{why}")))),
                Err(r) => refused(&s, &r),
            }
        }
        (&Method::GET, ["admin", "weights"]) => match ops::weights(a) {
            Ok((m, in_force, kept)) => html(StatusCode::OK, pages::weights(a, &s.csrf, m.as_deref(), in_force, kept)),
            Err(r) => refused(&s, &r),
        },
        (&Method::GET, ["admin", "knobs"]) => knobs(&s, None),
        (&Method::POST, ["admin", "knobs", "set"]) => {
            let note = match ops::knob_set(ctx, a, field(&f, "name"), field(&f, "value")) {
                Ok(()) => format!("{} is now {}.", field(&f, "name"), field(&f, "value").trim()),
                Err(r) => r.text(),
            };
            knobs(&s, Some(&note))
        }
        _ => refused(&s, &Refused::NotFound),
    }
}

fn refused(s: &Session, r: &Refused) -> Resp {
    let body = format!("<p class=\"err\" id=\"error\">{}</p>", pages::esc(&r.text()));
    html(r.status(), pages::page(if *r == Refused::NotFound { "Not found" } else { "Refused" }, Some((&s.account, &s.csrf)), &body))
}

/// Whose lists a request means: the `owner` field, else the account's own.
fn owner_of(a: &Account, f: &Fields) -> String {
    let o = field(f, "owner").trim();
    if o.is_empty() {
        a.email.clone()
    } else {
        o.to_ascii_lowercase()
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn account_from(f: &Fields) -> Account {
    let list = |name: &str| field(f, name).split([',', ' ', '\n', '\r']).map(|x| x.trim().to_ascii_lowercase()).filter(|x| !x.is_empty()).collect();
    Account {
        email: field(f, "email").trim().to_ascii_lowercase(),
        role: Role::parse(field(f, "role")).unwrap_or(Role::User),
        domains: list("domains"),
        members: list("members"),
    }
}

async fn login(state: &Shared, ip: IpAddr, method: &Method, f: &Fields) -> Resp {
    if *method != Method::POST {
        let open = state.setup.as_ref().is_some_and(SetupCode::pending);
        return html(StatusCode::OK, pages::login_page(None, open));
    }
    let (email, password) = (field(f, "email").trim().to_string(), field(f, "password").to_string());
    if !state.sessions.borrow_mut().may_try(ip, &email) {
        Event::new("console_login").str("client", &ip.to_string()).str("login", &email).str("result", "throttled").emit();
        return html(StatusCode::TOO_MANY_REQUESTS, pages::login(Some("Too many failed attempts: wait a quarter of an hour.")));
    }
    let e2 = email.clone();
    let verified = state.ctx.data.run(move |d| d.users.verify(&e2, &password)).await;
    match verified {
        Ok(Ok(Some(account))) => {
            Event::new("console_login").str("client", &ip.to_string()).str("login", &account.email).str("result", "ok").emit();
            start_session(state, account)
        }
        Ok(Ok(None)) => {
            state.sessions.borrow_mut().failed(ip, &email);
            Event::new("console_login").str("client", &ip.to_string()).str("login", &email).str("result", "failed").emit();
            html(StatusCode::UNAUTHORIZED, pages::login(Some("Wrong mail address or password.")))
        }
        Ok(Err(e)) => html(StatusCode::SERVICE_UNAVAILABLE, pages::login(Some(&format!("The account database failed: {e}")))),
        Err(e) => html(StatusCode::SERVICE_UNAVAILABLE, pages::login(Some(&e))),
    }
}

/// `/setup`: the first superadmin from the one-time setup code. Throttled like logins (the
/// code has 60 bits; the throttle keeps a guesser from trying many).
async fn setup(state: &Shared, ip: IpAddr, method: &Method, f: &Fields) -> Resp {
    let Some(code) = state.setup.clone() else {
        return html(StatusCode::NOT_FOUND, pages::login(Some("This console has no setup page.")));
    };
    if *method != Method::POST {
        return html(StatusCode::OK, pages::setup(None));
    }
    let client = ip.to_string();
    if !state.sessions.borrow_mut().may_try(ip, &setup_tries(ip)) {
        Event::new("console_setup").str("client", &client).str("result", "throttled").emit();
        return html(StatusCode::TOO_MANY_REQUESTS, pages::setup(Some("Too many wrong codes: wait a quarter of an hour.")));
    }
    let (typed, email, password) = (field(f, "code").to_string(), field(f, "email").to_string(), field(f, "password").to_string());
    if password != field(f, "password2") {
        return html(StatusCode::BAD_REQUEST, pages::setup(Some("The two passwords differ.")));
    }
    let spent = state.ctx.data.run(move |d| code.spend(&mut d.users, &typed, &email, &password)).await;
    match spent {
        Ok(Ok(account)) => {
            Event::new("console_setup").str("client", &client).str("login", &account.email).str("result", "ok").emit();
            start_session(state, account)
        }
        Ok(Err(refused)) => {
            use setup_code::Refused as R;
            let (status, result) = match refused {
                R::Done => (StatusCode::GONE, "done"),
                R::NoCode => (StatusCode::GONE, "no_code"),
                R::WrongCode => {
                    state.sessions.borrow_mut().failed(ip, &setup_tries(ip));
                    (StatusCode::UNAUTHORIZED, "wrong_code")
                }
                R::Account(_) => (StatusCode::BAD_REQUEST, "bad_account"),
                R::Failed(_) => (StatusCode::SERVICE_UNAVAILABLE, "failed"),
            };
            Event::new("console_setup").str("client", &client).str("result", result).emit();
            html(status, pages::setup(Some(&refused.text())))
        }
        Err(e) => html(StatusCode::SERVICE_UNAVAILABLE, pages::setup(Some(&e))),
    }
}

fn start_session(state: &Shared, account: Account) -> Resp {
    match state.sessions.borrow_mut().start(account) {
        Some(t) => redirect("/", Some(session_cookie(&t, state.secure))),
        None => html(StatusCode::SERVICE_UNAVAILABLE, pages::login(Some("No session could be started (no randomness)."))),
    }
}

/// `/l/HEXRCPT/EXPIRES/MAC`: GET shows a button; POST spends the link and logs its recipient in
/// as an end user.
async fn login_link(state: &Shared, ip: IpAddr, method: &Method, rest: &str) -> Resp {
    let gone = || html(StatusCode::NOT_FOUND, pages::page("Link", None, "<p class=\"err\" id=\"error\">This link is not valid, was used already or has expired. Log in with your password, or wait for your next digest.</p>"));
    let Some((rcpt, expires, mac)) = state.signer.verify_login(rest, now_ms() / 1000) else { return gone() };
    if *method != Method::POST {
        return html(StatusCode::OK, pages::login_link_confirm(&rcpt, &format!("/l/{rest}")));
    }
    let spent = state.ctx.data.run(move |d| d.users.spend_link(&mac, expires, now_ms() / 1000)).await;
    match spent {
        Ok(Ok(true)) => {
            Event::new("console_login").str("client", &ip.to_string()).str("login", &rcpt).str("result", "link").emit();
            start_session(state, Account::user(&rcpt))
        }
        Ok(Ok(false)) => gone(),
        Ok(Err(e)) => html(StatusCode::SERVICE_UNAVAILABLE, pages::login(Some(&format!("The account database failed: {e}")))),
        Err(e) => html(StatusCode::SERVICE_UNAVAILABLE, pages::login(Some(&e))),
    }
}

/// `/r/ID/EXPIRES/MAC`: GET shows what the link releases and a button; POST releases.
async fn release_link(state: &Shared, method: &Method, rest: &str) -> Resp {
    let parts: Vec<&str> = rest.split('/').collect();
    let parsed = match parts.as_slice() {
        [id, exp, mac] => id.parse::<i64>().ok().zip(exp.parse::<u64>().ok()).map(|(i, e)| (i, e, mac.to_string())),
        _ => None,
    };
    let gone = || html(StatusCode::NOT_FOUND, pages::page("Link", None, "<p class=\"err\" id=\"error\">This link is not valid or has expired. Log in to see your quarantine.</p>"));
    let Some((id, expires, mac)) = parsed else { return gone() };
    let got = ops::load(&state.ctx, id).await;
    let (held, raw) = match got {
        Ok(Some((h, raw))) if state.signer.verify(id, &h.rcpt, expires, &mac, now_ms() / 1000) => (h, raw),
        Ok(_) => return gone(),
        Err(r) => return html(r.status(), pages::page("Link", None, &format!("<p class=\"err\">{}</p>", pages::esc(&r.text())))),
    };
    if held.state != "held" {
        return html(StatusCode::OK, pages::page("Link", None, &format!("<p id=\"note\">That message was already {}.</p>", pages::esc(&held.state))));
    }
    if *method != Method::POST {
        return html(StatusCode::OK, pages::link_confirm(&held, &format!("/r/{rest}")));
    }
    match ops::release(&state.ctx, &held, raw, &format!("link:{}", held.rcpt)).await {
        Ok(_) => html(StatusCode::OK, pages::page("Released", None, &format!("<p class=\"note\" id=\"note\">Released: it is on its way to {}.</p>", pages::esc(&held.rcpt)))),
        Err(r) => html(r.status(), pages::page("Link", None, &format!("<p class=\"err\" id=\"error\">{}</p>", pages::esc(&r.text())))),
    }
}

async fn list(state: &Shared, s: &Session, query: &Fields, note: Option<&str>) -> Resp {
    let q = ops::search_from(query);
    match ops::search(&state.ctx, &s.account, q).await {
        Ok(rows) => html(StatusCode::OK, pages::list(&s.account, &s.csrf, &rows, note, query)),
        Err(r) => refused(s, &r),
    }
}

async fn accounts(state: &Shared, s: &Session, note: Option<&str>, new_token: Option<&str>) -> Resp {
    let all = ops::accounts(&state.ctx, &s.account).await;
    let tokens = ops::tokens(&state.ctx, &s.account).await;
    match (all, tokens) {
        (Ok(all), Ok(tokens)) => html(StatusCode::OK, pages::accounts(&s.account, &s.csrf, &all, &tokens, new_token, note)),
        (Err(r), _) | (_, Err(r)) => refused(s, &r),
    }
}

fn domains(state: &Shared, s: &Session, note: Option<&str>) -> Resp {
    match ops::domains(&state.ctx, &s.account) {
        Ok(d) => html(StatusCode::OK, pages::domains(&s.account, &s.csrf, &d, note)),
        Err(r) => refused(s, &r),
    }
}

fn knobs(s: &Session, note: Option<&str>) -> Resp {
    match ops::knobs(&s.account) {
        Ok(k) => html(StatusCode::OK, pages::knobs(&s.account, &s.csrf, &k, note)),
        Err(r) => refused(s, &r),
    }
}

/// A link's target as written, port included (the scanners' normal form drops it).
fn shown_url(l: &mxguard_scan::urls::Link) -> String {
    match l.port {
        Some(port) => l.url.replacen(&l.host, &format!("{}:{port}", l.host), 1),
        None => l.url.clone(),
    }
}

/// What a link shows: an anchor's text, or what kind of thing it is.
fn link_text(l: &mxguard_scan::urls::Link) -> Option<String> {
    match (l.form, l.credentials) {
        (true, true) => Some("(a form asking for a password, card or account number)".into()),
        (true, false) => Some("(a form)".into()),
        _ => l.text.clone(),
    }
}
