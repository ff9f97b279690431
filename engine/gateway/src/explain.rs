//! `mxguard explain FILE.eml [--rcpt ADDRESS]`: the content verdict of a message, without a
//! running gateway — every symbol with its score and reason, the total, and the action the
//! recipient's domain thresholds give. Reads the knobs (`--config`, `--set`) and the list files
//! of `lists.dir` exactly as the gateway would; never sends or stores anything.

use std::time::{SystemTime, UNIX_EPOCH};

use mxguard_tuning as k;
use mxguard_verdict::{fmt_score, Verdict};

pub fn explain(args: Vec<String>) -> Result<(), String> {
    let mut file = None;
    let mut rcpt = String::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rcpt" => rcpt = it.next().ok_or("--rcpt needs an address")?,
            _ if file.is_none() => file = Some(a),
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    let file = file.ok_or("usage: mxguard explain FILE.eml [--rcpt ADDRESS]")?;
    // Read as `mxguard learn` reads it: a file saved from an mbox loses its "From " envelope
    // line (not part of the message); of an mbox of several, the first message.
    let mut first = None;
    crate::mailfiles::each_message(std::path::Path::new(&file), &mut |m, _| {
        first = Some(m.to_vec());
        false
    })?;
    let raw = first.ok_or_else(|| format!("{file}: no message in it"))?;
    // Lines as SMTP delivers them (CRLF), whatever the file uses.
    let raw = mxguard_smtp::stuff::to_crlf(&raw);
    let lists = crate::in_state_dir(&k::LISTS_DIR.get_str());
    let policy = mxguard_policy::tables::Lists::load(&lists).map_err(|e| e.join("\n"))?;
    let tables = mxguard_scan::Tables::load(&lists).map_err(|e| e.join("\n"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let t0 = std::time::Instant::now();
    let mut report = mxguard_scan::scan_with(&raw, &tables, now, k::BAYES_ENABLED.get_bool());
    let took = t0.elapsed();
    // Bayes: the gateway's table file and journal read as they are (never moved or written here).
    let mut bayes_note = String::new();
    let mut judged = None;
    if k::BAYES_ENABLED.get_bool() {
        let file = crate::in_state_dir(&k::BAYES_FILE.get_str());
        match mxguard_bayes::Bayes::open_read_only(&file, k::BAYES_MAX_TOKENS.get_usize()) {
            Ok((b, _)) => {
                let table = b.table();
                let (spam, ham) = table.learned();
                match mxguard_bayes::probability(&table, &report.tokens) {
                    Some(p) => {
                        judged = Some(p);
                        bayes_note = format!("  Bayes: spam probability {p:.4} ({spam} spam, {ham} ham learnt)");
                        report.found.extend(crate::learning::finding(p, report.tokens.len()));
                    }
                    None => bayes_note = format!("  Bayes: no verdict ({spam} spam, {ham} ham learnt; bayes.min_learned = {})", k::BAYES_MIN_LEARNED.get_u64()),
                }
                if let Some(e) = b.learnt_as(&report.tokens) {
                    // Days since 2020-01-01 (table::today).
                    let (y, m, d) = mxguard_smtp::date::civil_from_days(18_262 + i64::from(e.day));
                    let kind = if e.spam { "spam" } else { "ham" };
                    bayes_note.push_str(&format!("\n  Bayes: this message was learnt as {kind} on {y:04}-{m:02}-{d:02}"));
                    if e.extra > 0 {
                        bayes_note.push_str(&format!(", {} times (it was misjudged then)", 1 + e.extra));
                    }
                }
            }
            Err(e) => bayes_note = format!("  Bayes: {e}"),
        }
    }
    // The learned weights, as the gateway scores with them (the model file, when in force).
    let weights_note = match crate::weighing::from_file() {
        Ok(Some(m)) => {
            crate::weighing::reweigh(&mut report, judged, &m);
            format!("  weights: learned, fitted on {} spam and {} ham lessons (mxguard weights shows them)", m.spam, m.ham)
        }
        Ok(None) => "  weights: hand-set".to_string(),
        Err(e) => format!("  weights: hand-set ({e})"),
    };
    let domain = rcpt.rsplit_once('@').map(|x| x.1).unwrap_or("");
    let d = policy.domains.for_domain(domain);
    println!("{file}: {} bytes, scanned in {:.3} ms", raw.len(), took.as_secs_f64() * 1e3);
    for f in &report.found {
        let off = if d.enabled(f.check) { "" } else { ", off for this domain" };
        println!("  {:<24} {:>8}  [{}{off}] {}", f.symbol.name, fmt_score(f.symbol.score), f.check, f.symbol.reason);
    }
    for (check, force) in &report.forces {
        println!("  force {force:?} [{check}]");
    }
    let mut v = Verdict::new();
    crate::screen::add_findings(&mut v, &report, &d);
    if k::AV_ENABLED.get_bool() && d.enabled("antivirus") {
        // The same engine and limits as the gateway, loaded for this one message.
        let av = mxguard_av::Av::new(&mxguard_av::Config { threads: 1, ..mxguard_av::Config::from_knobs() });
        let t0 = std::time::Instant::now();
        let outcome = futures_lite::future::block_on(av.scan(std::sync::Arc::new(raw.clone())));
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        match outcome {
            mxguard_av::Outcome::Virus(name) => {
                let score = k::SCORE_CLAMAV_VIRUS.get_f64();
                println!("  {:<24} {:>8}  [antivirus] ClamAV found {name} ({ms:.1} ms); action {}", "CLAMAV_VIRUS", fmt_score(score), k::AV_ACTION.get_str());
                v.add("CLAMAV_VIRUS", score, format!("ClamAV found {name}"));
            }
            mxguard_av::Outcome::Clean => println!("  ClamAV: clean ({ms:.1} ms)"),
            mxguard_av::Outcome::Error(e) | mxguard_av::Outcome::Unavailable(e) => println!("  ClamAV: not scanned: {e}"),
        }
    }
    if !bayes_note.is_empty() {
        println!("{bayes_note}");
    }
    println!("{weights_note}");
    if !report.link_domains.is_empty() {
        println!("  links to: {}", report.link_domains.join(", "));
    }
    let action = v.action(&crate::screen::thresholds(&d), None);
    println!("total {} -> {}", fmt_score(v.score()), action.as_str());
    Ok(())
}
