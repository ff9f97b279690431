//! Message tracking and traffic statistics, read from the gateway's own event log (the JSON
//! lines of `log.file` and its rotated copies, newest first): what postmasters search when a
//! customer asks "where is my mail?", and the hourly picture of what the filter did.
//!
//! A search matches a text (queue id, address, client address — any part) and a time window;
//! only message events are looked at (accepted, delivered, deferred, bounced, rejected,
//! quarantined, released ...). Scoping is the caller's: it passes which recipients the account
//! may see. Costs: a sequential read of the log files within the window, stopped after
//! `SCAN_BYTES_MAX` bytes or the result limit, so a huge log slows the console, never the cores.
//! Never: writes to the log, or shows an event whose recipients the account may not see.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use mxguard_smtp::date::civil_from_days;

/// Bytes of log read per search at most.
pub const SCAN_BYTES_MAX: u64 = 512 << 20;

/// Message events, and the one-word outcome each stands for.
const EVENTS: &[(&str, &str)] = &[
    ("accepted", "accepted"),
    ("delivered", "delivered"),
    ("deferred", "deferred"),
    ("bounced", "bounced"),
    ("dsn", "bounce sent"),
    ("rcpt_rejected", "rejected"),
    ("message_rejected", "rejected"),
    ("message_refused", "rejected"),
    ("greylisted", "greylisted"),
    ("quarantined", "quarantined"),
    ("quarantine_released", "released"),
    ("quarantine_deleted", "deleted"),
    ("discarded", "discarded"),
    ("virus", "virus"),
    ("picked_up", "re-queued"),
    ("digest_sent", "digest sent"),
];

/// One message event as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub ts: String,
    pub event: String,
    pub outcome: &'static str,
    pub qid: String,
    pub from: String,
    pub rcpts: Vec<String>,
    pub client: String,
    /// The rest, in short: action and score, the downstream reply, the reason.
    pub detail: String,
}

/// `YYYY-MM-DDTHH:MM:SS` of a time in ms (the log's own format, to compare as text).
pub fn iso(ms: u64) -> String {
    let s = ms / 1000;
    let (y, m, d) = civil_from_days((s / 86_400) as i64);
    let r = s % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", r / 3600, r % 3600 / 60, r % 60)
}

/// The log file and its rotated copies, newest first, that exist.
pub fn files(log: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if log.exists() {
        out.push(log.to_path_buf());
    }
    for n in 1..=1000u64 {
        let p = mxguard_telemetry::log::rotated_name(log, n);
        if !p.exists() {
            break;
        }
        out.push(p);
    }
    out
}

fn text(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn parse(line: &str) -> Option<Found> {
    if !line.starts_with('{') {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let event = text(&v, "event");
    let outcome = EVENTS.iter().find(|(e, _)| *e == event)?.1;
    let rcpts = match v.get("rcpt") {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    let detail: Vec<String> = ["action", "score", "symbols", "reason", "reply", "relay", "error", "by", "new_qid"]
        .iter()
        .filter_map(|k| Some(text(&v, k)).filter(|t| !t.is_empty()).map(|t| format!("{k}: {t}")))
        .collect();
    Some(Found { ts: text(&v, "ts"), event, outcome, qid: text(&v, "qid"), from: text(&v, "from"), rcpts, client: text(&v, "client"), detail: detail.join("; ") })
}

/// Reads message events of the last `hours` (newest first within each file, files newest first),
/// handing each visible one to `each` until it returns false.
fn scan(log: &Path, since_ms: u64, visible: &dyn Fn(&Found) -> bool, each: &mut dyn FnMut(Found) -> bool) {
    let since = iso(since_ms);
    let mut budget = SCAN_BYTES_MAX;
    for f in files(log) {
        let Ok(file) = std::fs::File::open(&f) else { continue };
        let mut events = Vec::new();
        let mut older_file = false;
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            budget = budget.saturating_sub(line.len() as u64 + 1);
            if budget == 0 {
                break;
            }
            if let Some(e) = parse(&line) {
                if e.ts.as_str() < since.as_str() {
                    older_file = true;
                    continue;
                }
                if visible(&e) {
                    events.push(e);
                }
            }
        }
        for e in events.into_iter().rev() {
            if !each(e) {
                return;
            }
        }
        // A rotated file that already reached before the window: older ones are all before it.
        if older_file || budget == 0 {
            return;
        }
    }
}

/// Events matching `query` (case-insensitive, in queue id, sender, recipients or client) within
/// the last `hours`, newest first, at most `limit`.
pub fn search(log: &Path, query: &str, hours: u64, limit: usize, now_ms: u64, visible: &dyn Fn(&Found) -> bool) -> Vec<Found> {
    let q = query.trim().to_ascii_lowercase();
    let mut out = Vec::new();
    scan(log, now_ms.saturating_sub(hours * 3_600_000), visible, &mut |e| {
        let hit = q.is_empty()
            || e.qid.to_ascii_lowercase().contains(&q)
            || e.from.to_ascii_lowercase().contains(&q)
            || e.client.contains(&q)
            || e.rcpts.iter().any(|r| r.to_ascii_lowercase().contains(&q));
        if hit {
            out.push(e);
        }
        out.len() < limit
    });
    out
}

/// The last 24 hours: messages per hour by outcome, top symbols, top senders.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    /// (hour start `YYYY-MM-DDTHH`, outcome → count), oldest first, 24 entries.
    pub hours: Vec<(String, HashMap<String, u64>)>,
    pub symbols: Vec<(String, u64)>,
    pub senders: Vec<(String, u64)>,
}

/// The outcome an accepted message's action stands for in the statistics.
fn outcome_of(e: &Found) -> Option<String> {
    match e.event.as_str() {
        "accepted" => {
            let action = e.detail.split("; ").find_map(|d| d.strip_prefix("action: ")).unwrap_or("deliver");
            Some(match action {
                "quarantine" => "quarantined",
                "discard" => "discarded",
                "deliver" => "delivered clean",
                _ => "delivered tagged",
            }
            .to_string())
        }
        "rcpt_rejected" | "message_rejected" | "message_refused" => Some("rejected".into()),
        _ => None,
    }
}

pub fn stats(log: &Path, now_ms: u64, visible: &dyn Fn(&Found) -> bool) -> Stats {
    let start = (now_ms / 3_600_000 - 23) * 3_600_000;
    let mut hours: Vec<(String, HashMap<String, u64>)> = (0..24).map(|h| (iso(start + h * 3_600_000)[..13].to_string(), HashMap::new())).collect();
    let (mut symbols, mut senders): (HashMap<String, u64>, HashMap<String, u64>) = Default::default();
    scan(log, start, visible, &mut |e| {
        if let Some(o) = outcome_of(&e) {
            if let Some(slot) = hours.iter_mut().find(|(h, _)| e.ts.starts_with(h.as_str())) {
                *slot.1.entry(o).or_default() += 1;
            }
            if e.event == "accepted" {
                for s in e.detail.split("; ").filter_map(|d| d.strip_prefix("symbols: ")).flat_map(|s| s.split_whitespace()) {
                    *symbols.entry(s.split('(').next().unwrap_or(s).to_string()).or_default() += 1;
                }
                if !e.from.is_empty() {
                    *senders.entry(e.from.to_ascii_lowercase()).or_default() += 1;
                }
            }
        }
        true
    });
    let top = |m: HashMap<String, u64>| {
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(10);
        v
    };
    Stats { hours, symbols: top(symbols), senders: top(senders) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_and_count_the_log() {
        let d = std::env::temp_dir().join(format!("mxg-tracking-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let log = d.join("mxguard.log");
        let now = 1_795_420_800_000u64; // 2026-11-23T08:00
        let at = |mins_ago: u64| iso(now - mins_ago * 60_000);
        let lines = [
            format!(r#"{{"ts":"{}.000Z","event":"accepted","qid":"Q1","client":"192.0.2.1","from":"a@x.example","rcpt":["ann@example.test"],"action":"quarantine","score":"12","symbols":"KEYWORD_BL(12)"}}"#, at(30)),
            format!(r#"{{"ts":"{}.000Z","event":"delivered","qid":"Q2","from":"b@y.example","rcpt":"bob@other.test","reply":"250 ok"}}"#, at(20)),
            format!(r#"{{"ts":"{}.000Z","event":"rcpt_rejected","client":"192.0.2.9","rcpt":"carol@example.test","reason":"relay denied"}}"#, at(10)),
            format!(r#"{{"ts":"{}.000Z","event":"disconnect","client":"192.0.2.1"}}"#, at(5)),
            "not json".to_string(),
        ];
        // An older rotated file, partly outside a 1-hour window.
        std::fs::write(mxguard_telemetry::log::rotated_name(&log, 1), format!(r#"{{"ts":"{}.000Z","event":"accepted","qid":"Q0","from":"old@z.example","rcpt":["ann@example.test"],"action":"deliver","symbols":""}}"#, at(120)) + "\n").unwrap();
        std::fs::write(&log, lines.join("\n") + "\n").unwrap();
        let all = |_: &Found| true;
        let found = search(&log, "", 1, 100, now, &all);
        assert_eq!(found.iter().map(|f| f.qid.as_str()).collect::<Vec<_>>(), ["", "Q2", "Q1"], "newest first, no connection events");
        assert_eq!(found[2].outcome, "accepted");
        assert!(found[2].detail.contains("action: quarantine"));
        assert_eq!(search(&log, "ANN@", 3, 100, now, &all).iter().map(|f| f.qid.as_str()).collect::<Vec<_>>(), ["Q1", "Q0"]);
        assert_eq!(search(&log, "192.0.2.9", 1, 100, now, &all).len(), 1);
        let only_example = |f: &Found| f.rcpts.iter().any(|r| r.ends_with("@example.test"));
        assert!(search(&log, "", 1, 100, now, &only_example).iter().all(|f| f.qid != "Q2"));
        assert_eq!(search(&log, "", 1, 1, now, &all).len(), 1);
        let s = stats(&log, now, &all);
        assert_eq!(s.hours.len(), 24);
        let total = |o: &str| s.hours.iter().map(|(_, m)| m.get(o).copied().unwrap_or(0)).sum::<u64>();
        assert_eq!((total("quarantined"), total("rejected"), total("delivered clean")), (1, 1, 1));
        assert_eq!(s.symbols, [("KEYWORD_BL".to_string(), 1)]);
        assert_eq!(s.senders.len(), 2);
    }
}
