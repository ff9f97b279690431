//! The console's HTML: small server-rendered pages, no scripts, every value escaped. A
//! quarantined message is shown as its decoded text, and its HTML part (cleaned by
//! [`crate::preview`]) in a sandboxed frame of its own document, so nothing in it can run, load
//! remote content or style the page.
//!
//! Never: puts an unescaped value in the markup, or a message's own markup on the page.

use mxguard_quarantine::Held;

use crate::users::{Account, Role};

/// `s` escaped for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2733;background:#f4f6f8}\
header{background:#17324d;color:#fff;padding:.7em 1.2em;display:flex;justify-content:space-between;align-items:center}\
header a{color:#fff}header button{color:#fff;background:transparent;border-color:#9fb6cc}main{max-width:70em;margin:1.2em auto;padding:0 1em}\
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.45em .6em;border-bottom:1px solid #dde3ea;vertical-align:top}\
th{background:#e9eef3}.why{color:#6b4b00}.score{font-variant-numeric:tabular-nums}form.inline{display:inline}\
button{cursor:pointer;border:1px solid #8aa0b6;background:#fff;border-radius:4px;padding:.25em .7em}\
button.release{border-color:#2f7d32;color:#2f7d32}pre{white-space:pre-wrap;background:#fff;padding:1em;border:1px solid #dde3ea}\
.note{background:#e8f4ea;border:1px solid #9bc9a0;padding:.6em 1em;margin-bottom:1em}.err{background:#fbeaea;border:1px solid #d99;padding:.6em 1em}\
.box{background:#fff;max-width:24em;margin:4em auto;padding:1.5em;border:1px solid #dde3ea}input{width:100%;padding:.4em;margin:.2em 0 .8em;box-sizing:border-box}\
select{display:block;padding:.3em;margin:.2em 0 .8em}form.search{display:flex;flex-wrap:wrap;gap:0 .8em;align-items:end;margin-bottom:1em}\
form.search label{flex:1 1 9em}form.search button{margin-bottom:.8em}\
textarea{width:100%;box-sizing:border-box;font:13px/1.4 monospace}iframe.preview{width:100%;height:32em;border:1px solid #dde3ea;background:#fff;resize:vertical}.hint{color:#556;font-size:.9em}";

/// A whole page.
pub fn page(title: &str, who: Option<(&Account, &str)>, body: &str) -> String {
    let bar = match who {
        Some((a, csrf)) => {
            let mut nav = vec![("/", "messages"), ("/lists", "my lists")];
            if a.role != Role::User {
                nav.extend([("/track", "tracking"), ("/stats", "statistics")]);
            }
            if a.role >= Role::DomainAdmin {
                nav.extend([("/admin/accounts", "accounts"), ("/admin/domains", "domains")]);
            }
            if a.role == Role::Superadmin {
                nav.extend([("/admin/files", "list files"), ("/admin/weights", "weights")]);
            }
            if matches!(a.role, Role::Superadmin | Role::DomainAdmin | Role::Technician) {
                nav.push(("/admin/knobs", "settings"));
            }
            let links: String = nav.iter().map(|(href, name)| format!("<a href=\"{href}\">{name}</a> · ")).collect();
            format!(
                "<header><strong>mxguard quarantine</strong><span>{} ({}) · {links}\
                 <form class=\"inline\" method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button id=\"logout\">log out</button></form></span></header>",
                esc(&a.email),
                a.role.as_str(),
                esc(csrf)
            )
        }
        None => "<header><strong>mxguard quarantine</strong></header>".into(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head><body>{bar}<main>{body}</main></body></html>",
        esc(title)
    )
}

pub fn login(error: Option<&str>) -> String {
    login_page(error, false)
}

/// The login form; `setup_open`: no superadmin exists yet and a setup code waits, so the page
/// points to `/setup`.
pub fn login_page(error: Option<&str>, setup_open: bool) -> String {
    let err = error.map(|e| format!("<p class=\"err\" id=\"error\">{}</p>", esc(e))).unwrap_or_default();
    let setup = if setup_open {
        "<p id=\"setup-open\">First start: no superadmin exists yet. <a href=\"/setup\" id=\"setup-link\">Create it with the setup code</a> shown on the node's console.</p>"
    } else {
        ""
    };
    page(
        "Log in",
        None,
        &format!(
            "<div class=\"box\"><h1>Log in</h1>{err}{setup}<form method=\"post\" action=\"/login\">\
             <label>Mail address<input name=\"email\" id=\"email\" autocomplete=\"username\" required></label>\
             <label>Password<input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <button id=\"login\" type=\"submit\">Log in</button></form></div>"
        ),
    )
}

/// The first superadmin from the one-time setup code (`setup_code.rs`).
pub fn setup(error: Option<&str>) -> String {
    let err = error.map(|e| format!("<p class=\"err\" id=\"error\">{}</p>", esc(e))).unwrap_or_default();
    page(
        "Set up",
        None,
        &format!(
            "<div class=\"box\"><h1>Create the superadmin</h1>{err}\
             <p>Type the setup code that the node shows on its screen and serial console (<code>mxguard setup-code</code> makes a new one). It works once.</p>\
             <form method=\"post\" action=\"/setup\">\
             <label>Setup code<input name=\"code\" id=\"code\" autocomplete=\"off\" required></label>\
             <label>Login<input name=\"email\" id=\"email\" autocomplete=\"username\" required></label>\
             <label>Password (8 characters or more)<input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"new-password\" required></label>\
             <label>The password again<input name=\"password2\" id=\"password2\" type=\"password\" autocomplete=\"new-password\" required></label>\
             <button id=\"create\" type=\"submit\">Create</button></form></div>"
        ),
    )
}

pub fn when(ms: u64) -> String {
    // UTC, to the minute (the console has no time zone of the user's yet).
    let s = ms / 1000;
    let (days, rem) = (s / 86_400, s % 86_400);
    let (y, m, d) = mxguard_smtp::date::civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// Plain words for the verdict's main reason (the symbol's own reason text).
fn why(h: &Held) -> String {
    if h.reason.is_empty() {
        format!("scored {:.1}", h.score)
    } else {
        h.reason.clone()
    }
}

/// The search form, filled with the fields of the last search.
fn search_form(q: &[(String, String)], admin: bool) -> String {
    let v = |n: &str| esc(q.iter().find(|(k, _)| k == n).map_or("", |(_, v)| v.as_str()));
    let chosen = |n: &str, opt: &str| if q.iter().any(|(k, v)| k == n && v == opt) { " selected" } else { "" };
    let verdicts: String = mxguard_quarantine::store::VERDICTS.iter().map(|x| format!("<option{}>{x}</option>", chosen("verdict", x))).collect();
    let states: String = ["held", "released"].iter().chain(if admin { ["deleted"].iter() } else { [].iter() }).map(|x| format!("<option{}>{x}</option>", chosen("state", x))).collect();
    let rcpt = if admin { format!("<label>To (address or @domain)<input name=\"rcpt\" id=\"s-rcpt\" value=\"{}\"></label>", v("rcpt")) } else { String::new() };
    format!(
        "<form method=\"get\" action=\"/\" class=\"search\" id=\"search\">{rcpt}\
         <label>From (address or @domain)<input name=\"sender\" id=\"s-sender\" value=\"{}\"></label>\
         <label>Subject<input name=\"subject\" id=\"s-subject\" value=\"{}\"></label>\
         <label>Since<input name=\"since\" type=\"date\" id=\"s-since\" value=\"{}\"></label>\
         <label>Until<input name=\"until\" type=\"date\" id=\"s-until\" value=\"{}\"></label>\
         <label>Score from<input name=\"min_score\" id=\"s-min\" size=\"4\" value=\"{}\"></label>\
         <label>Kind<select name=\"verdict\" id=\"s-verdict\"><option value=\"\">any</option>{verdicts}</select></label>\
         <label>State<select name=\"state\" id=\"s-state\"><option value=\"\">held or released</option>{states}</select></label>\
         <button id=\"s-go\">search</button></form>",
        v("sender"),
        v("subject"),
        v("since"),
        v("until"),
        v("min_score")
    )
}

pub fn list(account: &Account, csrf: &str, rows: &[Held], note: Option<&str>, query: &[(String, String)]) -> String {
    let note = note.map(|n| format!("<p class=\"note\" id=\"note\">{}</p>", esc(n))).unwrap_or_default();
    let mut t = String::new();
    for h in rows {
        let actions = if h.state == "held" {
            format!(
                "<form class=\"inline\" method=\"post\" action=\"/message/{id}/release\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
                 <button class=\"release\" id=\"release-{id}\">release</button></form> \
                 <form class=\"inline\" method=\"post\" action=\"/message/{id}/delete\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
                 <button id=\"delete-{id}\">delete</button></form> \
                 <form class=\"inline\" method=\"post\" action=\"/message/{id}/spam\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
                 <button id=\"spam-{id}\">report spam</button></form>",
                id = h.id,
                c = esc(csrf)
            )
        } else {
            esc(&h.state)
        };
        let to = if account.role == Role::User { String::new() } else { format!("<td>{}</td>", esc(&h.rcpt)) };
        t.push_str(&format!(
            "<tr id=\"row-{id}\"><td>{}</td><td>{}</td>{to}<td><a href=\"/message/{id}\">{}</a></td><td class=\"why\">{}</td><td class=\"score\">{:.1}</td><td>{actions}</td></tr>",
            when(h.arrival_ms),
            esc(if h.mail_from.is_empty() { "<>" } else { &h.mail_from }),
            esc(if h.subject.is_empty() { "(no subject)" } else { &h.subject }),
            esc(&why(h)),
            h.score,
            id = h.id,
        ));
    }
    let to_head = if account.role == Role::User { "" } else { "<th>To</th>" };
    let form = search_form(query, account.role >= Role::Subadmin);
    let searched = query.iter().any(|(_, v)| !v.is_empty());
    let body = if rows.is_empty() {
        let empty = if searched { "Nothing held matches this search." } else { "Nothing is held for you." };
        format!("{note}<h1>Quarantine</h1>{form}<p id=\"empty\">{empty}</p>")
    } else {
        format!(
            "{note}<h1>Quarantine</h1>{form}<table id=\"messages\"><tr><th>Received</th><th>From</th>{to_head}<th>Subject</th><th>Why it was held</th><th>Score</th><th></th></tr>{t}</table>"
        )
    };
    page("Quarantine", Some((account, csrf)), &body)
}

/// What the message page shows of a held message besides its record.
pub struct Shown<'a> {
    pub text: &'a str,
    pub headers: &'a [(String, String)],
    /// The message has an HTML part, served cleaned at `/message/ID/preview`.
    pub has_html: bool,
    /// Remote images the cleaned HTML lost.
    pub remote_images: usize,
    /// Its links: target and, for an HTML anchor, the text it shows.
    pub links: &'a [(String, Option<String>)],
}

pub fn message(account: &Account, csrf: &str, h: &Held, shown: &Shown) -> String {
    let headers = shown.headers;
    let head: String = headers.iter().map(|(n, v)| format!("<tr><th>{}</th><td>{}</td></tr>", esc(n), esc(v))).collect();
    let symbols: String = h.symbols.split_whitespace().map(|s| format!("<li>{}</li>", esc(s))).collect();
    let html = if shown.has_html {
        let removed = match shown.remote_images {
            0 => String::new(),
            1 => " One remote image was removed.".to_string(),
            n => format!(" {n} remote images were removed."),
        };
        format!(
            "<h2>As sent</h2><p class=\"hint\" id=\"preview-note\">Cleaned: scripts, forms and remote content removed, links disabled.{removed}</p>\
             <iframe id=\"preview\" class=\"preview\" sandbox=\"\" referrerpolicy=\"no-referrer\" src=\"/message/{}/preview\" title=\"The message as sent, cleaned\"></iframe>",
            h.id
        )
    } else {
        String::new()
    };
    let links = if shown.links.is_empty() {
        String::new()
    } else {
        let rows: String = shown
            .links
            .iter()
            .map(|(url, text)| format!("<tr><td>{}</td><td>{}</td></tr>", esc(url), esc(text.as_deref().unwrap_or(""))))
            .collect();
        format!("<h2>Links (not opened)</h2><table id=\"links\"><tr><th>Goes to</th><th>Shown as</th></tr>{rows}</table>")
    };
    let actions = if h.state == "held" {
        format!(
            "<form class=\"inline\" method=\"post\" action=\"/message/{id}/release\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><button class=\"release\" id=\"release\">release</button></form> \
             <form class=\"inline\" method=\"post\" action=\"/message/{id}/delete\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><button id=\"delete\">delete</button></form> \
             <form class=\"inline\" method=\"post\" action=\"/message/{id}/spam\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><button id=\"spam\">report spam</button></form>",
            id = h.id,
            c = esc(csrf)
        )
    } else {
        format!("<p>{}</p>", esc(&h.state))
    };
    page(
        "Message",
        Some((account, csrf)),
        &format!(
            "<h1>{}</h1><p class=\"why\">Held because: {} (score {:.1})</p>{actions}<table>{head}</table>{html}<h2>Text</h2><pre id=\"text\">{}</pre>{links}<h2>Checks</h2><ul>{symbols}</ul>",
            esc(if h.subject.is_empty() { "(no subject)" } else { &h.subject }),
            esc(&why(h)),
            h.score,
            esc(shown.text)
        ),
    )
}

/// What a digest's release link releases, with the button that does it (a POST: prefetchers
/// and link scanners only GET).
pub fn link_confirm(h: &Held, action: &str) -> String {
    page(
        "Release",
        None,
        &format!(
            "<div class=\"box\"><h1>Release this message?</h1><p>To: {}<br>From: {}<br>Subject: {}<br>Held because: {}</p>\
             <form method=\"post\" action=\"{}\"><button class=\"release\" id=\"release\">Release</button></form></div>",
            esc(&h.rcpt),
            esc(if h.mail_from.is_empty() { "<>" } else { &h.mail_from }),
            esc(if h.subject.is_empty() { "(no subject)" } else { &h.subject }),
            esc(&why(h)),
            esc(action)
        ),
    )
}

/// The allow and block lists of `owner` (the account's own, a user's, or `@domain`'s).
pub fn lists(account: &Account, csrf: &str, owner: &str, entries: &[(String, String)], error: Option<&str>) -> String {
    let own = owner.eq_ignore_ascii_case(&account.email);
    let title = match owner.strip_prefix('@') {
        _ if own => "My senders".to_string(),
        Some(domain) => format!("Senders for all of {domain}"),
        None => format!("Senders of {owner}"),
    };
    let error = error.map(|e| format!("<p class=\"err\" id=\"error\">{}</p>", esc(e))).unwrap_or_default();
    let o = esc(owner);
    let other = if account.role >= Role::Subadmin {
        "<form method=\"get\" action=\"/lists\"><label>Lists of (an address, or @domain for the whole domain)<input name=\"owner\" id=\"owner\"></label><button id=\"open-lists\">open</button></form>"
    } else {
        ""
    };
    let rows: String = entries
        .iter()
        .map(|(sender, kind)| {
            format!(
                "<tr><td>{}</td><td>{}</td><td><form class=\"inline\" method=\"post\" action=\"/lists/remove\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
                 <input type=\"hidden\" name=\"owner\" value=\"{o}\"><input type=\"hidden\" name=\"sender\" value=\"{s}\"><input type=\"hidden\" name=\"kind\" value=\"{k}\"><button>remove</button></form></td></tr>",
                esc(sender),
                esc(kind),
                c = esc(csrf),
                s = esc(sender),
                k = esc(kind)
            )
        })
        .collect();
    page(
        &title,
        Some((account, csrf)),
        &format!(
            "{other}<h1>{}</h1>{error}<p>Mail from an allowed sender is never held; mail from a blocked one always is. \
             An entry is an address or <code>@domain</code>.</p><table id=\"lists\"><tr><th>Sender</th><th>List</th><th></th></tr>{rows}</table>\
             <h2>Add</h2><form method=\"post\" action=\"/lists/add\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><input type=\"hidden\" name=\"owner\" value=\"{o}\">\
             <label>Sender<input name=\"sender\" id=\"sender\" required></label>\
             <label><input type=\"radio\" name=\"kind\" value=\"allow\" checked style=\"width:auto\"> allow</label> \
             <label><input type=\"radio\" name=\"kind\" value=\"block\" style=\"width:auto\"> block</label> <button id=\"add\">add</button></form>",
            esc(&title),
            c = esc(csrf)
        ),
    )
}

pub fn track(account: &Account, csrf: &str, query: &str, hours: u64, found: &[crate::tracking::Found]) -> String {
    let rows: String = found
        .iter()
        .map(|f| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(f.ts.replace('T', " ").trim_end_matches('Z')),
                esc(f.outcome),
                esc(&f.qid),
                esc(&f.from),
                esc(&f.rcpts.join(", ")),
                esc(&f.client),
                esc(&f.detail)
            )
        })
        .collect();
    page(
        "Message tracking",
        Some((account, csrf)),
        &format!(
            "<h1>Message tracking</h1><form method=\"get\" action=\"/track\"><label>Queue id, address or client<input name=\"q\" id=\"q\" value=\"{}\"></label>\
             <label>Last hours<input name=\"hours\" id=\"hours\" value=\"{hours}\"></label><button id=\"search\">search</button></form>\
             <p id=\"count\">{} event(s), newest first.</p><table id=\"events\"><tr><th>Time (UTC)</th><th>What</th><th>Queue id</th><th>From</th><th>To</th><th>Client</th><th>Details</th></tr>{rows}</table>",
            esc(query),
            found.len()
        ),
    )
}

/// Colours of the outcomes in the hourly chart.
const OUTCOMES: &[(&str, &str)] = &[
    ("delivered clean", "#4c9a52"),
    ("delivered tagged", "#c9a227"),
    ("quarantined", "#d9822b"),
    ("rejected", "#c0392b"),
    ("discarded", "#7f8c8d"),
];

pub fn stats(account: &Account, csrf: &str, s: &crate::tracking::Stats) -> String {
    // Stacked bars, one per hour, as inline SVG (no script, no remote content).
    let max = s.hours.iter().map(|(_, m)| m.values().sum::<u64>()).max().unwrap_or(0).max(1);
    let (w, h, bar) = (960.0, 220.0, 960.0 / 24.0);
    let mut svg = format!("<svg id=\"hourly\" role=\"img\" aria-label=\"messages per hour by outcome\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\">", h + 40.0, h + 40.0);
    for (i, (hour, m)) in s.hours.iter().enumerate() {
        let mut y = h;
        for (outcome, colour) in OUTCOMES {
            let n = m.get(*outcome).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let bh = n as f64 / max as f64 * h;
            y -= bh;
            svg.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{colour}\"><title>{} {}: {n}</title></rect>",
                i as f64 * bar + 2.0,
                bar - 4.0,
                esc(hour),
                esc(outcome)
            ));
        }
        if i % 3 == 0 {
            svg.push_str(&format!("<text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{}h</text>", i as f64 * bar + 2.0, h + 16.0, esc(hour.get(11..13).unwrap_or(""))));
        }
    }
    svg.push_str(&format!("<text x=\"2\" y=\"12\" font-size=\"11\">{max} / hour</text></svg>"));
    let legend: String = OUTCOMES.iter().map(|(o, c)| format!("<span style=\"color:{c}\">■</span> {} ", esc(o))).collect();
    let totals: String = OUTCOMES
        .iter()
        .map(|(o, _)| format!("<tr><td>{}</td><td id=\"total-{}\">{}</td></tr>", esc(o), o.replace(' ', "-"), s.hours.iter().map(|(_, m)| m.get(*o).copied().unwrap_or(0)).sum::<u64>()))
        .collect();
    let top = |id: &str, rows: &[(String, u64)]| -> String {
        let r: String = rows.iter().map(|(k, n)| format!("<tr><td>{}</td><td>{n}</td></tr>", esc(k))).collect();
        format!("<table id=\"{id}\">{r}</table>")
    };
    page(
        "Statistics",
        Some((account, csrf)),
        &format!(
            "<h1>The last 24 hours</h1><p>{legend}</p>{svg}<h2>Totals</h2><table id=\"totals\">{totals}</table>\
             <h2>Top symbols</h2>{}<h2>Top senders</h2>{}",
            top("symbols", &s.symbols),
            top("senders", &s.senders)
        ),
    )
}

/// What a digest's login link does, with the button that does it (a POST, as for releases).
pub fn login_link_confirm(rcpt: &str, action: &str) -> String {
    page(
        "Log in",
        None,
        &format!(
            "<div class=\"box\"><h1>Your quarantine</h1><p>This link logs you in once as <strong>{}</strong>.</p>\
             <form method=\"post\" action=\"{}\"><button id=\"continue\">Continue</button></form></div>",
            esc(rcpt),
            esc(action)
        ),
    )
}

fn note_and_error(note: Option<&str>) -> String {
    note.map(|n| format!("<p class=\"note\" id=\"note\">{}</p>", esc(n))).unwrap_or_default()
}

fn hidden_csrf(csrf: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf))
}

/// Accounts the admin manages, the form to add or change one, and API tokens.
pub fn accounts(account: &Account, csrf: &str, all: &[Account], tokens: &[crate::users::TokenInfo], new_token: Option<&str>, note: Option<&str>) -> String {
    let c = hidden_csrf(csrf);
    let rows: String = all
        .iter()
        .map(|x| {
            let remove = if x.email.eq_ignore_ascii_case(&account.email) {
                String::new()
            } else {
                format!(
                    "<form class=\"inline\" method=\"post\" action=\"/admin/accounts/remove\">{c}<input type=\"hidden\" name=\"email\" value=\"{}\"><button id=\"remove-{}\">remove</button></form>",
                    esc(&x.email),
                    esc(&x.email)
                )
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{remove}</td></tr>",
                esc(&x.email),
                x.role.as_str(),
                esc(&x.domains.join(", ")),
                esc(&x.members.join(", "))
            )
        })
        .collect();
    let roles: String = crate::users::ROLES
        .iter()
        .filter(|r| account.role == Role::Superadmin || **r < Role::Superadmin)
        .map(|r| format!("<option>{}</option>", r.as_str()))
        .collect();
    let token_rows: String = tokens
        .iter()
        .map(|t| {
            format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td><form class=\"inline\" method=\"post\" action=\"/admin/tokens/revoke\">{c}\
                 <input type=\"hidden\" name=\"id\" value=\"{}\"><button>revoke</button></form></td></tr>",
                esc(&t.id),
                esc(&t.email),
                esc(&t.label),
                when(t.created_ms),
                esc(&t.id)
            )
        })
        .collect();
    let fresh = new_token
        .map(|t| format!("<p class=\"note\">New token (shown only now; it is stored hashed): <code id=\"new-token\">{}</code></p>", esc(t)))
        .unwrap_or_default();
    page(
        "Accounts",
        Some((account, csrf)),
        &format!(
            "{}<h1>Accounts</h1><table id=\"accounts\"><tr><th>Login</th><th>Role</th><th>Domains</th><th>Users (subadmin)</th><th></th></tr>{rows}</table>\
             <h2>Add or change an account</h2><form method=\"post\" action=\"/admin/accounts/put\">{c}\
             <label>Login (an end user's is their mail address)<input name=\"email\" id=\"a-email\" required></label>\
             <label>Role<select name=\"role\" id=\"a-role\">{roles}</select></label>\
             <label>Domains (comma-separated)<input name=\"domains\" id=\"a-domains\"></label>\
             <label>Users a subadmin looks after (addresses, comma-separated)<input name=\"members\" id=\"a-members\"></label>\
             <label>Password (at least 8 characters; empty keeps an existing account's)<input name=\"password\" id=\"a-password\" type=\"password\" autocomplete=\"new-password\"></label>\
             <button id=\"a-save\">save</button></form>\
             <h2>API tokens</h2>{fresh}<table id=\"tokens\"><tr><th>Id</th><th>Acts as</th><th>Label</th><th>Made</th><th></th></tr>{token_rows}</table>\
             <form method=\"post\" action=\"/admin/tokens/new\">{c}<label>Acts as (a login)<input name=\"account\" id=\"t-account\" value=\"{}\"></label>\
             <label>Label<input name=\"label\" id=\"t-label\"></label><button id=\"t-new\">make a token</button></form>",
            note_and_error(note),
            esc(&account.email)
        ),
    )
}

/// The admin's domains: routes and own filter settings, with the form to change one.
pub fn domains(account: &Account, csrf: &str, domains: &[crate::ops::DomainView], note: Option<&str>) -> String {
    let c = hidden_csrf(csrf);
    let superadmin = account.role == Role::Superadmin;
    let routes = if superadmin {
        format!(
            "<h2>Add a domain or change its route</h2><p>Mail for the domain is accepted and relayed to the route (<code>host</code> or \
             <code>host:port</code>; empty: <code>relay.default_route</code>). In force at once.</p>\
             <form method=\"post\" action=\"/admin/routes/set\">{c}<label>Domain<input name=\"domain\" id=\"r-domain\" required></label>\
             <label>Route<input name=\"route\" id=\"r-route\" placeholder=\"mail.example.com:25\"></label><button id=\"r-save\">save</button></form>"
        )
    } else {
        String::new()
    };
    let rows: String = domains
        .iter()
        .map(|d| {
            let settings: String = d.settings.iter().map(|(k, v)| format!("<code>{} = {}</code><br>", esc(k), esc(v))).collect();
            format!(
                "<tr id=\"domain-{n}\"><td>{n}</td><td>{}</td><td>{}</td><td><a href=\"/lists?owner=%40{n}\">lists</a> · <a href=\"/?rcpt=%40{n}\">quarantine</a>{remove}</td></tr>",
                esc(if d.route.is_empty() { "(none)" } else { &d.route }),
                if settings.is_empty() { "defaults".to_string() } else { settings },
                n = esc(&d.name),
                remove = if superadmin {
                    format!(
                        " · <form class=\"inline\" method=\"post\" action=\"/admin/routes/remove\">{c}<input type=\"hidden\" name=\"domain\" value=\"{n}\"><button id=\"remove-{n}\">remove</button></form>",
                        n = esc(&d.name)
                    )
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let checks: String = mxguard_policy::domains::CHECKS.iter().map(|(name, _)| format!("<option>{name}</option>")).collect();
    page(
        "Domains",
        Some((account, csrf)),
        &format!(
            "{}<h1>Domains</h1><table id=\"domains\"><tr><th>Domain</th><th>Delivered to</th><th>Own settings</th><th></th></tr>{rows}</table>\
             <h2>Change a setting</h2><p>A check name with <code>on</code>/<code>off</code>, or <code>verdict.tag_score</code>, \
             <code>verdict.quarantine_score</code>, <code>verdict.reject_score</code>, <code>verdict.tag_mode</code>, <code>verdict.reject_text</code>, \
             <code>text.CHECK</code>. An empty value removes the domain's own setting.</p>\
             <form method=\"post\" action=\"/admin/domains/set\">{c}<label>Domain<input name=\"domain\" id=\"d-domain\" required></label>\
             <label>Setting<input name=\"setting\" id=\"d-setting\" list=\"checks\" required></label><datalist id=\"checks\">{checks}</datalist>\
             <label>Value<input name=\"value\" id=\"d-value\"></label><button id=\"d-save\">save</button></form>{routes}",
            note_and_error(note)
        ),
    )
}

/// The files of the lists directory (the superadmin).
pub fn list_files(account: &Account, csrf: &str, files: &[crate::ops::ListFile]) -> String {
    let rows: String = files
        .iter()
        .map(|f| {
            format!(
                "<tr id=\"file-{n}\"><td><a href=\"/admin/files/{n}\">{n}</a></td><td>{}</td></tr>",
                f.bytes.map(|b| format!("{b} bytes")).unwrap_or_else(|| "(none: an empty list)".into()),
                n = esc(f.name)
            )
        })
        .collect();
    page(
        "List files",
        Some((account, csrf)),
        &format!(
            "<h1>List files</h1><p>The gateway's own lists, for every domain: IP, domain and address black- and whitelists, keywords, \
             content rules, URL and attachment lists. A change is checked as the gateway reads it and is in force at once; a file it \
             would refuse is not written.</p><table id=\"files\"><tr><th>File</th><th>Size</th></tr>{rows}</table>"
        ),
    )
}

/// One lists file in an editor; `error` keeps the refused text in it with the reasons.
pub fn list_file(account: &Account, csrf: &str, name: &str, text: &str, note: Option<&str>, error: Option<&str>) -> String {
    let error = error.map(|e| format!("<pre class=\"err\" id=\"error\">{}</pre>", esc(e))).unwrap_or_default();
    page(
        name,
        Some((account, csrf)),
        &format!(
            "{}{error}<h1>{n}</h1><p><a href=\"/admin/files\">all list files</a></p>\
             <form method=\"post\" action=\"/admin/files/{n}\">{}<textarea name=\"text\" id=\"file-text\" rows=\"24\" spellcheck=\"false\">{}</textarea>\
             <button id=\"file-save\">save</button></form>",
            note_and_error(note),
            hidden_csrf(csrf),
            esc(text),
            n = esc(name)
        ),
    )
}

/// The learned symbol weights beside the hand-set scores (the superadmin).
pub fn weights(account: &Account, csrf: &str, model: Option<&mxguard_weights::Model>, in_force: bool, kept: (u64, u64)) -> String {
    let head = format!("<h1>Learned weights</h1><p id=\"lessons\">Lessons kept: {} spam, {} ham (messages people labelled: learnt from files, \
                        reported, released or reported from the quarantine).</p>", kept.0, kept.1);
    let Some(m) = model else {
        return page("Learned weights", Some((account, csrf)), &format!("{head}<p id=\"state\">No model fitted yet: mail is scored with the hand-set scores.</p>"));
    };
    let state = if in_force { "in force: content is scored with these weights" } else { "not in force: mail is scored with the hand-set scores (weights.enabled, weights.min_lessons)" };
    let gate = if m.choice.gate.is_finite() { format!("{}", m.choice.gate) } else { "off".into() };
    let (spam_side, ham_side, none) = m.bayes_points();
    let rows: String = m
        .by_change()
        .iter()
        .map(|w| {
            format!(
                "<tr id=\"w-{n}\"><td>{n}</td><td class=\"score\">{:.2}</td><td class=\"score\">{:.2}</td><td class=\"score\">{:+.2}</td><td class=\"score\">{}</td></tr>",
                w.hand,
                w.learned,
                w.learned - w.hand,
                w.seen,
                n = esc(&w.name)
            )
        })
        .collect();
    page(
        "Learned weights",
        Some((account, csrf)),
        &format!(
            "{head}<p id=\"state\">Fitted on {} spam and {} ham lessons, {state}.</p>\
             <p>Chosen by cross-validation over the lessons: spread {} (symbols) / {} (Bayes), gate {gate}. Cross-validated 1-AUC \
             {:.4} % (Bayes alone {:.4} %); spam caught at 0.1 % ham {:.2} % (Bayes alone {:.2} %).</p>\
             <p>Bayes: {spam_side:.3} points a unit of log-odds above 0, {ham_side:.3} below, {none:+.2} with no answer. Base {:+.2} points.</p>\
             <table id=\"weights\"><tr><th>Symbol</th><th>Hand-set</th><th>Learned</th><th>Change</th><th>Lessons</th></tr>{rows}</table>",
            m.spam,
            m.ham,
            m.choice.sd_symbol,
            m.choice.sd_bayes,
            m.cv.one_minus_auc_pct,
            m.cv_bayes.one_minus_auc_pct,
            m.cv.caught_at_0_1pct_fp,
            m.cv_bayes.caught_at_0_1pct_fp,
            m.base_points()
        ),
    )
}

/// Every knob with its value; the superadmin gets a form to change the live ones.
pub fn knobs(account: &Account, csrf: &str, knobs: &[crate::ops::KnobView], note: Option<&str>) -> String {
    let c = hidden_csrf(csrf);
    let rows: String = knobs
        .iter()
        .map(|k| {
            let changed = if k.value != k.default { " style=\"font-weight:600\"" } else { "" };
            format!(
                "<tr id=\"knob-{n}\"><td><code>{n}</code></td><td{changed}>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&k.value),
                esc(&k.default),
                if k.live { "live" } else { "restart" },
                esc(k.doc),
                n = esc(k.name)
            )
        })
        .collect();
    let form = if account.role == Role::Superadmin {
        format!(
            "<h2>Change a live setting</h2><form method=\"post\" action=\"/admin/knobs/set\">{c}<label>Name<input name=\"name\" id=\"k-name\" required></label>\
             <label>Value<input name=\"value\" id=\"k-value\"></label><button id=\"k-save\">save</button></form>"
        )
    } else {
        "<p>Only the superadmin changes settings.</p>".into()
    };
    page(
        "Settings",
        Some((account, csrf)),
        &format!(
            "{}<h1>Settings</h1>{form}<table id=\"knobs\"><tr><th>Name</th><th>Value</th><th>Default</th><th>Takes effect</th><th>What it does</th></tr>{rows}</table>",
            note_and_error(note)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_dates() {
        assert_eq!(esc("<script>\"a\" & 'b'</script>"), "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;");
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_795_420_800_000), "2026-11-23 08:00 UTC");
    }
}
