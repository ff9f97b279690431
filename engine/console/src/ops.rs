//! What the console does, written once for its web pages and its JSON API: each operation takes
//! the acting [`Account`], checks its role, domains and users, and does the work on the data
//! thread. The pages ([`crate::web`]) and the API ([`crate::api`]) only read requests and render
//! results, so the two can never disagree about who may do what.
//!
//! Never: reads or changes anything before the account's right to it is checked; reports a copy
//! the account may not see as anything but "not found" (so ids of other domains' mail leak
//! nothing).

use std::path::PathBuf;

use hyper::StatusCode;
use mxguard_quarantine::{Held, Search};
use mxguard_telemetry::Event;
use tokio::sync::{mpsc, oneshot};

use crate::data::DataThread;
use crate::users::{Account, Role, TokenInfo};
use crate::Pickup;

/// Why an operation was not done.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// Not there, or not the account's to see.
    NotFound,
    Forbidden(String),
    Invalid(String),
    /// The database, the gateway or the disk failed: try again.
    Failed(String),
}

impl Refused {
    pub fn status(&self) -> StatusCode {
        match self {
            Refused::NotFound => StatusCode::NOT_FOUND,
            Refused::Forbidden(_) => StatusCode::FORBIDDEN,
            Refused::Invalid(_) => StatusCode::BAD_REQUEST,
            Refused::Failed(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Refused::NotFound => "There is no such page, message or account.".into(),
            Refused::Forbidden(w) | Refused::Invalid(w) | Refused::Failed(w) => w.clone(),
        }
    }
}

impl From<mxguard_quarantine::DbError> for Refused {
    fn from(e: mxguard_quarantine::DbError) -> Refused {
        Refused::Failed(e.0)
    }
}

impl From<String> for Refused {
    fn from(e: String) -> Refused {
        Refused::Failed(e)
    }
}

pub type Done<T> = Result<T, Refused>;

/// What the operations work with.
pub struct Ctx {
    pub data: DataThread,
    pub pickup: mpsc::Sender<Pickup>,
    /// Where knob changes made here are kept, to be applied again at the next start.
    pub knob_file: Option<PathBuf>,
    /// The lists directory (the per-domain filter settings live there).
    pub lists_dir: Option<PathBuf>,
    /// The gateway's event log (message tracking and statistics read it); `None` when off.
    pub log_file: Option<PathBuf>,
    /// Releases sent whose mark has not reached the database yet.
    pub marks: crate::release_marks::ReleaseMarks,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn forbidden<T>(what: &str) -> Done<T> {
    Err(Refused::Forbidden(format!("Your account may not {what}.")))
}

// ---- the quarantine ----------------------------------------------------------------------------

/// A day (`YYYY-MM-DD`, UTC midnight) or a Unix time in milliseconds, as milliseconds.
pub fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let mut it = s.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some((mxguard_smtp::date::days_from_civil(y, m as u32, d as u32) * 86_400_000) as u64)
}

/// A quarantine search from form or query fields: `rcpt`, `sender` (address or `@domain`),
/// `subject`, `since` and `until` ([`parse_time`]; `until` as a day includes that day),
/// `min_score`, `max_score`, `verdict`, `state`, `limit` (default 200), `offset`. Empty or
/// unreadable fields are no condition.
pub fn search_from(f: &[(String, String)]) -> Search {
    let get = |n: &str| crate::http::field(f, n).trim();
    let text = |n: &str| Some(get(n).to_string()).filter(|s| !s.is_empty());
    let mut q = Search::within(mxguard_quarantine::Scope::All, get("limit").parse().unwrap_or(200));
    q.rcpt = text("rcpt");
    q.sender = text("sender");
    q.subject = text("subject");
    q.since_ms = parse_time(get("since"));
    q.until_ms = parse_time(get("until")).map(|t| if get("until").contains('-') { t + 86_400_000 } else { t });
    q.min_score = get("min_score").parse().ok();
    q.max_score = get("max_score").parse().ok();
    q.verdict = text("verdict").filter(|v| mxguard_quarantine::store::VERDICTS.contains(&v.as_str()));
    q.state = text("state").filter(|v| ["held", "released", "deleted"].contains(&v.as_str()));
    q.offset = get("offset").parse().unwrap_or(0);
    q
}

/// Held copies matching `q` among those `a` may see (the scope is the account's, whatever `q`
/// says), newest first.
pub async fn search(ctx: &Ctx, a: &Account, mut q: Search) -> Done<Vec<Held>> {
    q.scope = a.scope();
    q.limit = q.limit.clamp(1, 1000);
    if q.state.as_deref() == Some("deleted") && a.role < Role::Subadmin {
        q.state = None;
    }
    let rows = ctx.data.run(move |d| d.store.search(&q)).await??;
    let a = a.clone();
    Ok(rows.into_iter().filter(|h| a.may_see(&h.rcpt)).collect())
}

/// One copy and its message's bytes, whoever asks: callers check the right to it (an account's
/// [`message`], or a digest link's signature).
pub async fn load(ctx: &Ctx, id: i64) -> Done<Option<(Held, Vec<u8>)>> {
    Ok(ctx
        .data
        .run(move |d| -> Result<Option<(Held, Vec<u8>)>, String> {
            let Some(h) = d.store.held(id)? else { return Ok(None) };
            let raw = d.store.message(&h.qid)?.unwrap_or_default();
            Ok(Some((h, raw)))
        })
        .await??)
}

/// One copy and its bytes, if `a` may see it.
pub async fn message(ctx: &Ctx, a: &Account, id: i64) -> Done<(Held, Vec<u8>)> {
    match load(ctx, id).await? {
        Some((h, raw)) if a.may_see(&h.rcpt) && h.state != "deleted" => Ok((h, raw)),
        _ => Err(Refused::NotFound),
    }
}

/// What can be done to a held copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Release,
    Delete,
    /// Confirmed spam: taught to Bayes, then deleted.
    Spam,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "release" => Some(Action::Release),
            "delete" => Some(Action::Delete),
            "spam" => Some(Action::Spam),
            _ => None,
        }
    }
}

/// Does `action` to copy `id` for `a`; a sentence saying what happened.
pub async fn act(ctx: &Ctx, a: &Account, id: i64, action: Action) -> Done<String> {
    let (held, raw) = message(ctx, a, id).await?;
    match held.state.as_str() {
        "held" => {}
        "releasing" => return Err(Refused::Invalid("That message is being released.".into())),
        state => return Err(Refused::Invalid(format!("That message was already {state}."))),
    }
    match action {
        Action::Delete => {
            if !set_state(ctx, held.id, "deleted", &a.email).await? {
                return Err(Refused::Invalid("That message was just released or deleted.".into()));
            }
            Event::new("quarantine_deleted").str("qid", &held.qid).str("rcpt", &held.rcpt).str("by", &a.email).emit();
            Ok("Deleted.".into())
        }
        Action::Spam => {
            if !set_state(ctx, held.id, "deleted", &a.email).await? {
                return Err(Refused::Invalid("That message was just released or deleted.".into()));
            }
            let taught = teach(&raw, true, &held.qid);
            Event::new("quarantine_reported")
                .str("qid", &held.qid)
                .str("rcpt", &held.rcpt)
                .str("by", &a.email)
                .str("bayes", if taught { "spam" } else { "off" })
                .emit();
            Ok("Reported as spam and deleted: the filter learns from it.".into())
        }
        Action::Release => {
            release(ctx, &held, raw, &a.email).await?;
            Ok(format!(
                "Released: it is on its way to {}; {} is now on the allow list.",
                held.rcpt,
                if held.mail_from.is_empty() { "<>" } else { &held.mail_from }
            ))
        }
    }
}

async fn set_state(ctx: &Ctx, id: i64, state: &'static str, by: &str) -> Done<bool> {
    let by = by.to_string();
    Ok(ctx.data.run(move |d| d.store.set_state(id, state, &by, now_ms())).await??)
}

/// Releases one held copy for `by`: claimed in the store first (of two releases at once, only
/// one goes on), spooled and queued (never lost), marked released, then its sender allowed for
/// the recipient and the message taught to Bayes as ham. The new queue id.
pub async fn release(ctx: &Ctx, held: &Held, raw: Vec<u8>, by: &str) -> Done<String> {
    let (id, by_) = (held.id, by.to_string());
    if !ctx.data.run(move |d| d.store.claim_release(id, &by_, now_ms())).await?? {
        return Err(Refused::Invalid("That message was just released or deleted.".into()));
    }
    let (tx, rx) = oneshot::channel();
    let sent = ctx.pickup.send(Pickup { mail_from: held.mail_from.clone(), rcpts: vec![held.rcpt.clone()], message: raw.clone(), answer: tx }).await;
    let queued = match sent {
        Ok(()) => rx.await.unwrap_or_else(|_| Err("the gateway is stopping".into())),
        Err(_) => Err("the gateway is stopping".into()),
    };
    let new_qid = match queued {
        Ok(q) => q,
        Err(e) => {
            Event::new("console_error").str("qid", &held.qid).str("error", &e).emit();
            // Nothing was sent: the copy is held again (or, if this fails too, after the claim
            // expires).
            let by_ = by.to_string();
            let _ = ctx.data.run(move |d| d.store.end_release(id, false, &by_, now_ms())).await;
            return Err(Refused::Failed(format!("Not released: {e}. Try again in a moment.")));
        }
    };
    // Sent: until the database has the mark, the copy is kept in the marks file, so a database
    // that fails now cannot let the claim go stale and the message be released twice.
    if let Err(e) = ctx.marks.add(id, by) {
        Event::new("console_error").str("qid", &held.qid).str("error", &format!("release marks file: {e}")).emit();
    }
    let (rcpt, from, by_) = (held.rcpt.clone(), held.mail_from.clone(), by.to_string());
    let marked = ctx
        .data
        .run(move |d| -> Result<(), String> {
            d.store.confirm_release(id, &by_, now_ms())?;
            if !from.is_empty() {
                d.users.list_add(&rcpt, &from, "allow", now_ms())?;
                mxguard_policy::user_lists::set(d.users.all_lists()?);
            }
            Ok(())
        })
        .await
        .and_then(|r| r);
    match marked {
        Ok(()) => {
            let _ = ctx.marks.done(id);
        }
        Err(e) => {
            // The message is on its way; the mark is retried from the marks file.
            Event::new("console_error").str("qid", &held.qid).str("error", &format!("released, the mark is retried: {e}")).emit();
        }
    }
    // A false positive: learnt as ham.
    let taught = teach(&raw, false, &held.qid);
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

// ---- allow and block lists ---------------------------------------------------------------------

/// Whether `a` may read and change the sender lists of `owner` (an address, or `@domain` for a
/// whole domain's).
pub fn may_keep_lists(a: &Account, owner: &str) -> bool {
    match owner.strip_prefix('@') {
        Some(domain) => a.may_admin_domain(domain),
        None => owner.eq_ignore_ascii_case(&a.email) || a.may_see(owner),
    }
}

pub async fn lists(ctx: &Ctx, a: &Account, owner: &str) -> Done<Vec<(String, String)>> {
    if !may_keep_lists(a, owner) {
        return Err(Refused::NotFound);
    }
    let owner = owner.to_string();
    Ok(ctx.data.run(move |d| d.users.lists_of(&owner)).await??)
}

/// Adds (`add` true) or removes `sender` on `owner`'s `kind` list; the lists in force on the
/// cores change at once.
pub async fn list_edit(ctx: &Ctx, a: &Account, owner: &str, add: bool, sender: &str, kind: &str) -> Done<()> {
    if !may_keep_lists(a, owner) {
        return Err(Refused::NotFound);
    }
    let sender = sender.trim().to_ascii_lowercase();
    let valid = (kind == "allow" || kind == "block") && !sender.is_empty() && sender.len() <= 254 && sender.contains('@') && !sender.contains(char::is_whitespace);
    if !valid {
        return Err(Refused::Invalid("A list entry is allow or block, and an address or @domain.".into()));
    }
    let (owner, kind) = (owner.to_string(), kind.to_string());
    ctx.data
        .run(move |d| -> Result<(), String> {
            if add {
                d.users.list_add(&owner, &sender, &kind, now_ms())?;
            } else {
                d.users.list_remove(&owner, &sender, &kind)?;
            }
            mxguard_policy::user_lists::set(d.users.all_lists()?);
            Ok(())
        })
        .await??;
    Ok(())
}

// ---- accounts and API tokens -------------------------------------------------------------------

/// The accounts `a` manages, by login.
pub async fn accounts(ctx: &Ctx, a: &Account) -> Done<Vec<Account>> {
    if a.role < Role::DomainAdmin {
        return forbidden("manage accounts");
    }
    let all = ctx.data.run(|d| d.users.all()).await??;
    Ok(all.into_iter().filter(|x| a.may_manage(x)).collect())
}

/// Creates or changes an account (an empty `password` keeps the one it has).
pub async fn account_put(ctx: &Ctx, a: &Account, new: Account, password: String) -> Done<()> {
    if !a.may_manage(&new) {
        return forbidden("give that role, those domains or those users");
    }
    let (actor, email) = (a.clone(), new.email.clone());
    ctx.data
        .run(move |d| -> Done<()> {
            if let Some(old) = d.users.get(&new.email)? {
                if !actor.may_manage(&old) {
                    return Err(Refused::Forbidden("That account is not yours to change.".into()));
                }
            }
            d.users.put(&new, &password).map_err(Refused::Invalid)
        })
        .await??;
    Event::new("console_account").str("op", "put").str("account", &email).str("by", &a.email).emit();
    Ok(())
}

pub async fn account_remove(ctx: &Ctx, a: &Account, email: &str) -> Done<()> {
    let (actor, who) = (a.clone(), email.to_string());
    ctx.data
        .run(move |d| -> Done<()> {
            match d.users.get(&who)? {
                Some(old) if actor.may_manage(&old) && !old.email.eq_ignore_ascii_case(&actor.email) => {
                    d.users.remove(&old.email)?;
                    Ok(())
                }
                Some(old) if old.email.eq_ignore_ascii_case(&actor.email) => Err(Refused::Invalid("You cannot remove your own account.".into())),
                _ => Err(Refused::NotFound),
            }
        })
        .await??;
    Event::new("console_account").str("op", "remove").str("account", email).str("by", &a.email).emit();
    Ok(())
}

/// A new API token acting as `for_email` (the account itself, or one it manages): shown once.
pub async fn token_new(ctx: &Ctx, a: &Account, for_email: &str, label: &str) -> Done<String> {
    if a.role == Role::User {
        return forbidden("make API tokens");
    }
    let (actor, who, label) = (a.clone(), for_email.trim().to_ascii_lowercase(), label.to_string());
    let token = ctx
        .data
        .run(move |d| -> Done<String> {
            let target = d.users.get(&who)?.ok_or(Refused::NotFound)?;
            if !target.email.eq_ignore_ascii_case(&actor.email) && !actor.may_manage(&target) {
                return Err(Refused::NotFound);
            }
            d.users.token_new(&target.email, &label, now_ms()).map_err(Refused::Failed)
        })
        .await??;
    Event::new("console_token").str("op", "new").str("account", for_email).str("by", &a.email).emit();
    Ok(token)
}

/// Tokens of `a` and of the accounts it manages.
pub async fn tokens(ctx: &Ctx, a: &Account) -> Done<Vec<TokenInfo>> {
    let actor = a.clone();
    Ok(ctx
        .data
        .run(move |d| -> Result<Vec<TokenInfo>, String> {
            let managed: std::collections::HashSet<String> = d.users.all()?.into_iter().filter(|o| actor.may_manage(o)).map(|o| o.email).collect();
            let all = d.users.tokens(None)?;
            Ok(all.into_iter().filter(|t| t.email.eq_ignore_ascii_case(&actor.email) || managed.contains(&t.email)).collect())
        })
        .await??)
}

pub async fn token_revoke(ctx: &Ctx, a: &Account, id: &str) -> Done<()> {
    let mine = tokens(ctx, a).await?;
    if !mine.iter().any(|t| t.id == id) {
        return Err(Refused::NotFound);
    }
    let id2 = id.to_string();
    ctx.data.run(move |d| d.users.token_revoke(&id2)).await??;
    Event::new("console_token").str("op", "revoke").str("token", id).str("by", &a.email).emit();
    Ok(())
}

// ---- message tracking and statistics -----------------------------------------------------------

/// Which events an account may see in tracking: those with a recipient it may track.
fn trackable(a: &Account) -> impl Fn(&crate::tracking::Found) -> bool + '_ {
    move |f: &crate::tracking::Found| f.rcpts.iter().any(|r| a.may_track(r)) || (a.role == Role::Superadmin && f.rcpts.is_empty())
}

/// How far back a tracking search goes: `hours` as asked (default 24), 1 hour to 90 days.
pub fn hours_of(text: &str) -> u64 {
    text.parse::<u64>().unwrap_or(24).clamp(1, 24 * 90)
}

/// Events of the last `hours` ([`hours_of`]) matching `query`, that `a` may track (end users
/// track nothing); none when the event log is off.
pub fn track(ctx: &Ctx, a: &Account, query: &str, hours: u64) -> Done<Vec<crate::tracking::Found>> {
    if a.role == Role::User {
        return Err(Refused::NotFound);
    }
    Ok(ctx.log_file.as_ref().map(|l| crate::tracking::search(l, query, hours, 500, now_ms(), &trackable(a))).unwrap_or_default())
}

/// The last 24 hours of what `a` may track, counted.
pub fn stats(ctx: &Ctx, a: &Account) -> Done<crate::tracking::Stats> {
    if a.role == Role::User {
        return Err(Refused::NotFound);
    }
    Ok(ctx.log_file.as_ref().map(|l| crate::tracking::stats(l, now_ms(), &trackable(a))).unwrap_or_default())
}

// ---- knobs -------------------------------------------------------------------------------------

/// One knob as the console shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct KnobView {
    pub name: &'static str,
    pub value: String,
    pub default: String,
    pub live: bool,
    pub doc: &'static str,
}

/// Every knob, with its value now (admins and technicians read them; the superadmin writes).
pub fn knobs(a: &Account) -> Done<Vec<KnobView>> {
    if !matches!(a.role, Role::Superadmin | Role::DomainAdmin | Role::Technician) {
        return forbidden("read the gateway's settings");
    }
    Ok(mxguard_tuning::ALL
        .iter()
        .map(|k| KnobView { name: k.name, value: k.value_text(), default: k.default.to_string(), live: k.live, doc: k.doc })
        .collect())
}

/// Sets a live knob (the superadmin only); the change is in force at once and kept in the knob
/// file, which the gateway applies again after its config files at the next start.
pub fn knob_set(ctx: &Ctx, a: &Account, name: &str, value: &str) -> Done<()> {
    if a.role != Role::Superadmin {
        return forbidden("change the gateway's settings");
    }
    let Some(k) = mxguard_tuning::find(name) else { return Err(Refused::NotFound) };
    if !k.live {
        return Err(Refused::Invalid(format!("{name} is read at start-up only: set it in the config file and restart.")));
    }
    let parsed = k.parse(value.trim()).map_err(Refused::Invalid)?;
    if let Some(file) = &ctx.knob_file {
        crate::settings::keep_knob(file, name, &value.trim().replace(['\n', '\r'], " ")).map_err(Refused::Failed)?;
    }
    k.store(parsed);
    Event::new("knob_set").str("knob", name).str("value", &k.value_text()).str("by", &a.email).emit();
    Ok(())
}

// ---- domains -----------------------------------------------------------------------------------

/// A protected domain as an admin sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainView {
    pub name: String,
    /// Where its mail goes (host:port), or empty when it has no route.
    pub route: String,
    /// Its own lines of domain-policy.txt: (setting, value).
    pub settings: Vec<(String, String)>,
}

/// The local domains `a` administers, with routes and own filter settings.
pub fn domains(ctx: &Ctx, a: &Account) -> Done<Vec<DomainView>> {
    if a.role < Role::DomainAdmin {
        return forbidden("administer domains");
    }
    let file = ctx.lists_dir.as_ref().map(|d| d.join(mxguard_policy::tables::DOMAIN_POLICY_FILE));
    let lines = file.map(|f| crate::settings::policy_lines(&f)).transpose().map_err(Refused::Failed)?.unwrap_or_default();
    Ok(mxguard_relay::routes::current()
        .domains()
        .into_iter()
        .filter(|(d, _)| a.may_admin_domain(d))
        .map(|(name, route)| DomainView {
            settings: lines.iter().filter(|(d, _, _)| *d == name).map(|(_, k, v)| (k.clone(), v.clone())).collect(),
            route: route.map(|r| r.to_string()).unwrap_or_default(),
            name,
        })
        .collect())
}

/// Sets (or with an empty `value` removes) one of `domain`'s filter settings in
/// domain-policy.txt; the file is checked as the gateway will read it before it is replaced.
pub fn domain_set(ctx: &Ctx, a: &Account, domain: &str, setting: &str, value: &str) -> Done<()> {
    let domain = domain.trim().to_ascii_lowercase();
    if domain == "*" || !a.may_admin_domain(&domain) || !mxguard_relay::routes::current().is_local(&domain) {
        return Err(Refused::NotFound);
    }
    let dir = ctx.lists_dir.as_ref().ok_or_else(|| Refused::Failed("no lists directory".into()))?;
    crate::settings::set_policy(&dir.join(mxguard_policy::tables::DOMAIN_POLICY_FILE), &domain, setting.trim(), value.trim()).map_err(Refused::Invalid)?;
    // In force now, not at the watcher's next look (outside a gateway there is nothing to reload).
    let _ = mxguard_policy::tables::reload_now();
    Event::new("domain_setting").str("domain", &domain).str("setting", setting).str("value", value).str("by", &a.email).emit();
    Ok(())
}

/// Adds a local domain or changes its route (the superadmin): `route` is `host[:port]`, or empty
/// for the default route. The entry stays where the domain was (the `relay.domains` knob or the
/// `relay.domains_file` file); a new domain goes to the file when there is one, else to the knob
/// (kept in the knob file like any knob change). The table is checked as the gateway builds it
/// before anything is written; it is in force at once.
pub fn route_set(ctx: &Ctx, a: &Account, domain: &str, route: &str) -> Done<()> {
    routes_edit(ctx, a, domain, Some(route))
}

/// Removes a local domain (the superadmin): its mail is refused as relaying from then on.
pub fn route_remove(ctx: &Ctx, a: &Account, domain: &str) -> Done<()> {
    routes_edit(ctx, a, domain, None)
}

fn routes_edit(ctx: &Ctx, a: &Account, domain: &str, route: Option<&str>) -> Done<()> {
    use mxguard_tuning as k;
    if a.role != Role::Superadmin {
        return forbidden("change domains and routes");
    }
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || matches!(c, '@' | ':' | ',' | '#' | '/')) {
        return Err(Refused::Invalid(format!("`{domain}` is not a domain name.")));
    }
    let entry = match route.map(str::trim) {
        None => None,
        Some("") => Some(domain.clone()),
        Some(r) => Some(format!("{domain}:{}", mxguard_relay::routes::parse_dest(r).map_err(Refused::Invalid)?)),
    };
    let (mut knob, in_knob) = crate::settings::knob_without(&k::RELAY_DOMAINS.get_str(), &domain);
    let file_path = k::RELAY_DOMAINS_FILE.get_str().to_string();
    let file = if file_path.is_empty() {
        None
    } else {
        let (text, had) = crate::settings::file_without(&crate::settings::read_or_empty(std::path::Path::new(&file_path))?, &domain);
        Some((text, had))
    };
    let in_file = file.as_ref().is_some_and(|(_, had)| *had);
    if entry.is_none() && !in_knob && !in_file {
        return Err(Refused::NotFound);
    }
    let to_file = entry.is_some() && (in_file || (!in_knob && file.is_some()));
    let knob_changed = in_knob || (entry.is_some() && !to_file);
    if let (Some(e), false) = (&entry, to_file) {
        knob.push(e.clone());
    }
    let knob = knob.join(",");
    let file = file.map(|(mut text, _)| {
        if let (Some(e), true) = (&entry, to_file) {
            text.push_str(&format!("{e}\n"));
        }
        text
    });
    mxguard_relay::routes::Routes::build(
        &knob,
        file.as_deref().map(|t| (file_path.as_str(), t)),
        &k::RELAY_DEFAULT_ROUTE.get_str(),
        &k::RELAY_BOUNCE_ROUTE.get_str(),
    )
    .map_err(|e| Refused::Invalid(e.join("; ")))?;
    if let (Some(text), true) = (&file, in_file || to_file) {
        crate::settings::replace_file(std::path::Path::new(&file_path), text).map_err(Refused::Failed)?;
        mxguard_relay::routes::recheck();
    }
    if knob_changed {
        knob_set(ctx, a, k::RELAY_DOMAINS.name, &knob)?;
    }
    Event::new("route_set").str("domain", &domain).str("route", entry.as_deref().unwrap_or("(removed)")).str("by", &a.email).emit();
    Ok(())
}

// ---- the lists directory -------------------------------------------------------------------------

/// A file of the lists directory, as the superadmin sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListFile {
    pub name: &'static str,
    /// Size in bytes; `None` when the file does not exist (an empty list).
    pub bytes: Option<u64>,
}

/// The console edits a lists file whole up to this size; larger ones are edited on the
/// appliance (or through `mxguard reload` after a change).
pub const LIST_FILE_EDIT_MAX: usize = 1 << 20;

fn lists_dir(ctx: &Ctx, a: &Account) -> Done<PathBuf> {
    if a.role != Role::Superadmin {
        return forbidden("change the gateway's lists");
    }
    ctx.lists_dir.clone().ok_or_else(|| Refused::Failed("no lists directory".into()))
}

fn list_file_name(name: &str) -> Done<&'static str> {
    mxguard_policy::tables::files().into_iter().find(|f| *f == name).ok_or(Refused::NotFound)
}

/// The learned symbol weights (the superadmin): the last fitted model, whether it scores mail
/// now, and the lessons kept (spam, ham).
pub fn weights(a: &Account) -> Done<(Option<std::sync::Arc<mxguard_weights::Model>>, bool, (u64, u64))> {
    if a.role != Role::Superadmin {
        return forbidden("read the learned weights");
    }
    use mxguard_bayes::weighted;
    Ok((weighted::model(), weighted::in_force().is_some(), weighted::kept()))
}

/// Every file of the lists directory (the superadmin).
pub fn list_files(ctx: &Ctx, a: &Account) -> Done<Vec<ListFile>> {
    let dir = lists_dir(ctx, a)?;
    Ok(mxguard_policy::tables::files().into_iter().map(|name| ListFile { name, bytes: std::fs::metadata(dir.join(name)).ok().map(|m| m.len()) }).collect())
}

/// One file's text (empty when it does not exist).
pub fn list_file(ctx: &Ctx, a: &Account, name: &str) -> Done<String> {
    let dir = lists_dir(ctx, a)?;
    let name = list_file_name(name)?;
    let text = crate::settings::read_or_empty(&dir.join(name))?;
    if text.len() > LIST_FILE_EDIT_MAX {
        return Err(Refused::Invalid(format!("{name} is larger than {} KiB: edit it on the appliance.", LIST_FILE_EDIT_MAX >> 10)));
    }
    Ok(text)
}

/// Replaces one file of the lists directory: the whole directory is loaded with the new text
/// first, as the gateway would, and a file it would refuse is never written (the reasons come
/// back as `file:line: reason`). Then the file is replaced atomically and the lists reloaded at
/// once. How many entries are in force.
pub fn list_file_set(ctx: &Ctx, a: &Account, name: &str, text: &str) -> Done<usize> {
    let dir = lists_dir(ctx, a)?;
    let name = list_file_name(name)?;
    let mut text = text.replace("\r\n", "\n");
    if text.len() > LIST_FILE_EDIT_MAX {
        return Err(Refused::Invalid(format!("larger than {} KiB: edit it on the appliance.", LIST_FILE_EDIT_MAX >> 10)));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    mxguard_policy::tables::check_replacement(&dir, name, &text).map_err(|e| Refused::Invalid(e.join("\n")))?;
    crate::settings::replace_file(&dir.join(name), &text).map_err(Refused::Failed)?;
    let entries = mxguard_policy::tables::reload_now().map_err(|e| Refused::Failed(e.join("\n")))?;
    Event::new("list_file_set").str("file", name).num("bytes", text.len() as u64).str("by", &a.email).emit();
    Ok(entries)
}

/// Marks in the database the releases that were sent but not marked (release_marks.rs); how
/// many are still left.
pub async fn retry_release_marks(ctx: &Ctx) -> usize {
    for (id, by) in ctx.marks.pending() {
        let by_ = by.clone();
        match ctx.data.run(move |d| d.store.confirm_release(id, &by_, now_ms()).map_err(|e| e.to_string())).await {
            Ok(Ok(_)) => {
                let _ = ctx.marks.done(id);
                Event::new("quarantine_release_marked").num("id", id as u64).str("by", &by).emit();
            }
            Ok(Err(e)) | Err(e) => {
                Event::new("console_error").num("id", id as u64).str("error", &format!("release mark: {e}")).emit();
                break;
            }
        }
    }
    ctx.marks.pending().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_fields() {
        assert_eq!(parse_time("2026-11-23"), Some(1_795_392_000_000));
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("12345"), Some(12345));
        assert_eq!(parse_time("2026-13-01"), None);
        assert_eq!(parse_time("yesterday"), None);
        let f: Vec<(String, String)> = [("sender", "@Bank.example"), ("until", "2026-11-23"), ("min_score", "7.5"), ("verdict", "virus"), ("state", "bogus"), ("limit", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let q = search_from(&f);
        assert_eq!(q.sender.as_deref(), Some("@Bank.example"));
        assert_eq!(q.until_ms, Some(1_795_392_000_000 + 86_400_000), "a day includes itself");
        assert_eq!((q.min_score, q.verdict.as_deref(), q.state, q.limit, q.rcpt), (Some(7.5), Some("virus"), None, 200, None));
    }
}

/// A person's decision on a held message, taught to Bayes and recorded as a lesson of the learned
/// weights (the learner thread applies the Bayes lesson; this never waits for more than room in
/// its queue). Whether Bayes was taught.
fn teach(raw: &[u8], spam: bool, qid: &str) -> bool {
    match mxguard_bayes::weighted::teach_labelled(mxguard_bayes::current().map(|b| &**b), raw, spam, false) {
        Ok(taught) => taught,
        Err(e) => {
            Event::new("weights_error").str("qid", qid).str("error", &e).emit();
            mxguard_bayes::current().is_some()
        }
    }
}
