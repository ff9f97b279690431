//! The JSON API for ISP provisioning and scripts, under `/api/v1/`, authenticated by a bearer
//! token (`Authorization: Bearer mxg_…`, made on the accounts page or `POST /api/v1/tokens`). A
//! token acts as its account, with exactly that account's rights: every route calls the same
//! operation as the web page does ([`crate::ops`]).
//!
//! ```text
//! GET    /api/v1/me
//! GET    /api/v1/quarantine?rcpt=&sender=&subject=&since=&until=&min_score=&max_score=&verdict=&state=&limit=&offset=
//! GET    /api/v1/quarantine/ID                      (with the message's text and cleaned HTML)
//! POST   /api/v1/quarantine/ID/release|delete|spam
//! GET    /api/v1/lists?owner=ADDRESS|@DOMAIN
//! POST   /api/v1/lists          {"owner", "sender", "kind": "allow"|"block", "op": "add"|"remove"}
//! GET    /api/v1/accounts
//! POST   /api/v1/accounts       {"email", "role", "domains": [], "members": [], "password"}
//! DELETE /api/v1/accounts/LOGIN
//! GET    /api/v1/tokens ; POST /api/v1/tokens {"account", "label"} ; DELETE /api/v1/tokens/ID
//! GET    /api/v1/domains ; POST /api/v1/domains/DOMAIN {"setting", "value"}
//! PUT    /api/v1/routes/DOMAIN {"route": "host:port" or ""} ; DELETE /api/v1/routes/DOMAIN
//! GET    /api/v1/files ; GET /api/v1/files/NAME ; PUT /api/v1/files/NAME {"text"}   (the lists directory)
//! GET    /api/v1/knobs ; POST /api/v1/knobs/NAME {"value"}
//! GET    /api/v1/tracking?q=&hours=   ; GET /api/v1/stats
//! ```
//!
//! Answers are JSON; errors are `{"error": "…"}` with 400, 401, 403, 404, 429 or 503. Another
//! domain's copy or account is a 404, never a 403. Failed token checks are throttled per client
//! address like failed logins. Never: accepts the session cookie (no CSRF exposure), or logs a
//! token.

use std::net::IpAddr;

use hyper::{Method, StatusCode};
use mxguard_quarantine::Held;
use serde_json::{json, Value};

use crate::http::{field, json, Resp};
use crate::ops::{self, Action, Refused};
use crate::users::{Account, Role};
use crate::Shared;

type Fields = [(String, String)];

fn error(status: StatusCode, text: &str) -> Resp {
    json(status, &json!({ "error": text }))
}

fn refused(r: Refused) -> Resp {
    error(r.status(), &r.text())
}

fn answer<T>(r: Result<T, Refused>, ok: impl FnOnce(T) -> Value) -> Resp {
    match r {
        Ok(v) => json(StatusCode::OK, &ok(v)),
        Err(r) => refused(r),
    }
}

fn held_json(h: &Held) -> Value {
    json!({
        "id": h.id, "qid": h.qid, "rcpt": h.rcpt, "state": h.state, "arrival_ms": h.arrival_ms,
        "from": h.mail_from, "client": h.client, "subject": h.subject, "size": h.size,
        "score": h.score, "symbols": h.symbols, "reason": h.reason, "verdict": h.verdict,
    })
}

fn account_json(a: &Account) -> Value {
    json!({ "email": a.email, "role": a.role.as_str(), "domains": a.domains, "members": a.members })
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str()).map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect(),
        Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_ascii_lowercase()).filter(|x| !x.is_empty()).collect(),
        _ => Vec::new(),
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(|x| x.as_str()).unwrap_or("")
}

pub async fn handle(state: &Shared, ip: IpAddr, method: &Method, path: &str, query: &Fields, bearer: Option<&str>, body: &[u8]) -> Resp {
    let Some(token) = bearer else {
        return error(StatusCode::UNAUTHORIZED, "an API call needs Authorization: Bearer <token>");
    };
    if !state.sessions.borrow_mut().may_try(ip, "api-token") {
        return error(StatusCode::TOO_MANY_REQUESTS, "too many bad tokens from this address: wait a quarter of an hour");
    }
    let t = token.to_string();
    let account = match state.ctx.data.run(move |d| d.users.token_account(&t)).await {
        Ok(Ok(Some(a))) => a,
        Ok(Ok(None)) => {
            state.sessions.borrow_mut().failed(ip, "api-token");
            return error(StatusCode::UNAUTHORIZED, "unknown or revoked token");
        }
        Ok(Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("the body is not JSON: {e}")),
        }
    };
    let a = &account;
    let ctx = &state.ctx;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["v1", "me"]) => json(StatusCode::OK, &account_json(a)),
        (&Method::GET, ["v1", "quarantine"]) => answer(ops::search(ctx, a, ops::search_from(query)).await, |rows| json!(rows.iter().map(held_json).collect::<Vec<_>>())),
        (&Method::GET, ["v1", "quarantine", id]) => match id.parse() {
            Ok(id) => answer(ops::message(ctx, a, id).await, |(h, raw)| {
                let mut v = held_json(&h);
                let parsed = mxguard_scan::parse(&raw);
                // The HTML part as the console shows it: cleaned, nothing remote (crate::preview).
                let preview = crate::preview::of(&parsed, crate::preview::max_bytes());
                v["text"] = json!(parsed.text);
                v["html"] = json!(preview.html);
                v["remote_images_removed"] = json!(preview.remote_images);
                v
            }),
            Err(_) => refused(Refused::NotFound),
        },
        (&Method::POST, ["v1", "quarantine", id, action]) => match (id.parse(), Action::parse(action)) {
            (Ok(id), Some(action)) => answer(ops::act(ctx, a, id, action).await, |note| json!({ "done": note })),
            _ => refused(Refused::NotFound),
        },
        (&Method::GET, ["v1", "lists"]) => {
            let owner = Some(field(query, "owner").trim()).filter(|o| !o.is_empty()).unwrap_or(&a.email).to_ascii_lowercase();
            answer(ops::lists(ctx, a, &owner).await, |l| json!(l.iter().map(|(s, k)| json!({ "sender": s, "kind": k })).collect::<Vec<_>>()))
        }
        (&Method::POST, ["v1", "lists"]) => {
            let owner = Some(text(&body, "owner").trim()).filter(|o| !o.is_empty()).unwrap_or(&a.email).to_ascii_lowercase();
            let add = match text(&body, "op") {
                "" | "add" => true,
                "remove" => false,
                _ => return error(StatusCode::BAD_REQUEST, "op is add or remove"),
            };
            answer(ops::list_edit(ctx, a, &owner, add, text(&body, "sender"), text(&body, "kind")).await, |()| json!({ "done": true }))
        }
        (&Method::GET, ["v1", "accounts"]) => answer(ops::accounts(ctx, a).await, |l| json!(l.iter().map(account_json).collect::<Vec<_>>())),
        (&Method::POST, ["v1", "accounts"]) => {
            let Some(role) = Role::parse(text(&body, "role")) else {
                return error(StatusCode::BAD_REQUEST, "role is one of user, technician, subadmin, domain-admin, superadmin");
            };
            let new = Account { email: text(&body, "email").trim().to_ascii_lowercase(), role, domains: strings(&body, "domains"), members: strings(&body, "members") };
            answer(ops::account_put(ctx, a, new, text(&body, "password").to_string()).await, |()| json!({ "done": true }))
        }
        (&Method::DELETE, ["v1", "accounts", login]) => answer(ops::account_remove(ctx, a, login).await, |()| json!({ "done": true })),
        (&Method::GET, ["v1", "tokens"]) => answer(ops::tokens(ctx, a).await, |l| {
            json!(l.iter().map(|t| json!({ "id": t.id, "account": t.email, "label": t.label, "created_ms": t.created_ms })).collect::<Vec<_>>())
        }),
        (&Method::POST, ["v1", "tokens"]) => {
            let who = Some(text(&body, "account")).filter(|s| !s.is_empty()).unwrap_or(&a.email).to_string();
            answer(ops::token_new(ctx, a, &who, text(&body, "label")).await, |t| json!({ "token": t }))
        }
        (&Method::DELETE, ["v1", "tokens", id]) => answer(ops::token_revoke(ctx, a, id).await, |()| json!({ "done": true })),
        (&Method::GET, ["v1", "domains"]) => answer(ops::domains(ctx, a), |l| {
            json!(l
                .iter()
                .map(|d| json!({ "domain": d.name, "route": d.route, "settings": d.settings.iter().map(|(k, v)| json!({ "setting": k, "value": v })).collect::<Vec<_>>() }))
                .collect::<Vec<_>>())
        }),
        (&Method::POST, ["v1", "domains", domain]) => answer(ops::domain_set(ctx, a, domain, text(&body, "setting"), text(&body, "value")), |()| json!({ "done": true })),
        (&Method::PUT, ["v1", "routes", domain]) => answer(ops::route_set(ctx, a, domain, text(&body, "route")), |()| json!({ "done": true })),
        (&Method::DELETE, ["v1", "routes", domain]) => answer(ops::route_remove(ctx, a, domain), |()| json!({ "done": true })),
        (&Method::GET, ["v1", "files"]) => answer(ops::list_files(ctx, a), |l| json!(l.iter().map(|f| json!({ "name": f.name, "bytes": f.bytes })).collect::<Vec<_>>())),
        (&Method::GET, ["v1", "files", name]) => answer(ops::list_file(ctx, a, name), |t| json!({ "name": name, "text": t })),
        (&Method::PUT, ["v1", "files", name]) => answer(ops::list_file_set(ctx, a, name, text(&body, "text")), |n| json!({ "done": true, "entries": n })),
        (&Method::GET, ["v1", "weights"]) => answer(ops::weights(a), |(m, in_force, kept)| {
            json!({
                "lessons": { "spam": kept.0, "ham": kept.1 },
                "in_force": in_force,
                "model": m.map(|m| json!({
                    "spam": m.spam,
                    "ham": m.ham,
                    "cv_one_minus_auc_pct": m.cv.one_minus_auc_pct,
                    "cv_bayes_one_minus_auc_pct": m.cv_bayes.one_minus_auc_pct,
                    "symbols": m.symbols.iter().map(|w| json!({ "name": w.name, "hand": w.hand, "learned": w.learned, "lessons": w.seen })).collect::<Vec<_>>(),
                })),
            })
        }),
        (&Method::GET, ["v1", "knobs"]) => answer(ops::knobs(a), |l| {
            json!(l.iter().map(|k| json!({ "name": k.name, "value": k.value, "default": k.default, "live": k.live, "doc": k.doc })).collect::<Vec<_>>())
        }),
        (&Method::POST, ["v1", "knobs", name]) => {
            let value = match body.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string().replace("true", "1").replace("false", "0"),
                _ => return error(StatusCode::BAD_REQUEST, "value is missing"),
            };
            answer(ops::knob_set(ctx, a, name, &value), |()| json!({ "done": true }))
        }
        (&Method::GET, ["v1", "tracking"]) => answer(ops::track(ctx, a, field(query, "q"), ops::hours_of(field(query, "hours"))), |found| {
            json!(found
                .iter()
                .map(|f| json!({ "ts": f.ts, "what": f.outcome, "qid": f.qid, "from": f.from, "rcpts": f.rcpts, "client": f.client, "detail": f.detail }))
                .collect::<Vec<_>>())
        }),
        (&Method::GET, ["v1", "stats"]) => answer(ops::stats(ctx, a), |st| {
            json!({
                "hours": st.hours.iter().map(|(h, m)| json!({ "hour": h, "outcomes": m })).collect::<Vec<_>>(),
                "top_symbols": st.symbols, "top_senders": st.senders,
            })
        }),
        _ => refused(Refused::NotFound),
    }
}
