//! The console's HTML: small server-rendered pages, no scripts, every value escaped. A
//! quarantined message is shown as its decoded text only (HTML parts rendered to text by the
//! parser), so nothing in it can run, load remote content or style the page.
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
.box{background:#fff;max-width:24em;margin:4em auto;padding:1.5em;border:1px solid #dde3ea}input{width:100%;padding:.4em;margin:.2em 0 .8em;box-sizing:border-box}";

/// A whole page.
pub fn page(title: &str, who: Option<(&Account, &str)>, body: &str) -> String {
    let bar = match who {
        Some((a, csrf)) => format!(
            "<header><strong>mxguard quarantine</strong><span>{} ({}) · <a href=\"/\">messages</a> · <a href=\"/lists\">my lists</a> · {}\
             <form class=\"inline\" method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button id=\"logout\">log out</button></form></span></header>",
            esc(&a.email),
            a.role.as_str(),
            if a.role == Role::User { "" } else { "<a href=\"/track\">tracking</a> · <a href=\"/stats\">statistics</a> · " },
            esc(csrf)
        ),
        None => "<header><strong>mxguard quarantine</strong></header>".into(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head><body>{bar}<main>{body}</main></body></html>",
        esc(title)
    )
}

pub fn login(error: Option<&str>) -> String {
    let err = error.map(|e| format!("<p class=\"err\" id=\"error\">{}</p>", esc(e))).unwrap_or_default();
    page(
        "Log in",
        None,
        &format!(
            "<div class=\"box\"><h1>Log in</h1>{err}<form method=\"post\" action=\"/login\">\
             <label>Mail address<input name=\"email\" id=\"email\" autocomplete=\"username\" required></label>\
             <label>Password<input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <button id=\"login\" type=\"submit\">Log in</button></form></div>"
        ),
    )
}

pub fn when(ms: u64) -> String {
    // UTC, to the minute (the console has no time zone of the user's yet).
    let s = ms / 1000;
    let (days, rem) = (s / 86_400, s % 86_400);
    let (y, m, d) = civil(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's civil_from_days).
pub fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Plain words for the verdict's main reason (the symbol's own reason text).
fn why(h: &Held) -> String {
    if h.reason.is_empty() {
        format!("scored {:.1}", h.score)
    } else {
        h.reason.clone()
    }
}

pub fn list(account: &Account, csrf: &str, rows: &[Held], note: Option<&str>) -> String {
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
    let body = if rows.is_empty() {
        format!("{note}<h1>Quarantine</h1><p id=\"empty\">Nothing is held for you.</p>")
    } else {
        format!(
            "{note}<h1>Quarantine</h1><table id=\"messages\"><tr><th>Received</th><th>From</th>{to_head}<th>Subject</th><th>Why it was held</th><th>Score</th><th></th></tr>{t}</table>"
        )
    };
    page("Quarantine", Some((account, csrf)), &body)
}

pub fn message(account: &Account, csrf: &str, h: &Held, text: &str, headers: &[(String, String)]) -> String {
    let head: String = headers.iter().map(|(n, v)| format!("<tr><th>{}</th><td>{}</td></tr>", esc(n), esc(v))).collect();
    let symbols: String = h.symbols.split_whitespace().map(|s| format!("<li>{}</li>", esc(s))).collect();
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
            "<h1>{}</h1><p class=\"why\">Held because: {} (score {:.1})</p>{actions}<table>{head}</table><h2>Text</h2><pre id=\"text\">{}</pre><h2>Checks</h2><ul>{symbols}</ul>",
            esc(if h.subject.is_empty() { "(no subject)" } else { &h.subject }),
            esc(&why(h)),
            h.score,
            esc(text)
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

pub fn lists(account: &Account, csrf: &str, entries: &[(String, String)]) -> String {
    let rows: String = entries
        .iter()
        .map(|(sender, kind)| {
            format!(
                "<tr><td>{}</td><td>{}</td><td><form class=\"inline\" method=\"post\" action=\"/lists/remove\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
                 <input type=\"hidden\" name=\"sender\" value=\"{s}\"><input type=\"hidden\" name=\"kind\" value=\"{k}\"><button>remove</button></form></td></tr>",
                esc(sender),
                esc(kind),
                c = esc(csrf),
                s = esc(sender),
                k = esc(kind)
            )
        })
        .collect();
    page(
        "My lists",
        Some((account, csrf)),
        &format!(
            "<h1>My senders</h1><p>Mail from an allowed sender is never held for you; mail from a blocked one always is. \
             An entry is an address or <code>@domain</code>.</p><table id=\"lists\"><tr><th>Sender</th><th>List</th><th></th></tr>{rows}</table>\
             <h2>Add</h2><form method=\"post\" action=\"/lists/add\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
             <label>Sender<input name=\"sender\" id=\"sender\" required></label>\
             <label><input type=\"radio\" name=\"kind\" value=\"allow\" checked style=\"width:auto\"> allow</label> \
             <label><input type=\"radio\" name=\"kind\" value=\"block\" style=\"width:auto\"> block</label> <button id=\"add\">add</button></form>",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_dates() {
        assert_eq!(esc("<script>\"a\" & 'b'</script>"), "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;");
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_795_420_800_000), "2026-11-23 08:00 UTC");
        assert_eq!(civil(19_782), (2024, 2, 29));
    }
}
