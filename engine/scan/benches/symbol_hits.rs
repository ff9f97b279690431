//! How often each content symbol fires, by label, over corpus manifests: what a new symbol
//! fires on in ham (must stay near zero) and in spam or phishing.
//!
//! `cargo bench -p mxguard-scan --bench symbol_hits -- DIR...` where each DIR holds a
//! `manifest.tsv` (label, path relative to DIR, …; rows labelled `excluded` are left out).
//! `MXGUARD_HITS_ONLY=SYM,SYM` prints only those symbols; `MXGUARD_HITS_SHOW=SYM:LABEL` also
//! prints (to stderr) the path and reason of each message of that label it fires on.
//! `MXGUARD_HITS_SET=knob=value,knob=value` sets knobs first (an A/B of one reader on and off,
//! such as `scan.pdf_pages_max=0`). Prints one JSON object:
//! `{"messages": {label: n}, "hits": {symbol: {label: n}}}`. Every scanner on the built-in
//! tables, no DNS, no ClamAV, the clock at each message's own path (`heuristics::path_time`).
use std::collections::BTreeMap;

fn main() {
    let dirs: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let only: Vec<String> = std::env::var("MXGUARD_HITS_ONLY").unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(String::from).collect();
    let show = std::env::var("MXGUARD_HITS_SHOW").ok();
    for kv in std::env::var("MXGUARD_HITS_SET").unwrap_or_default().split(',').filter(|s| !s.is_empty()) {
        let (name, value) = kv.split_once('=').expect("MXGUARD_HITS_SET: knob=value");
        mxguard_tuning::find(name).expect("a knob of the registry").set(value).expect("a value the knob takes");
    }
    let tables = mxguard_scan::Tables::empty();
    let mut messages: BTreeMap<String, u64> = BTreeMap::new();
    let mut hits: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for dir in &dirs {
        let manifest = std::fs::read_to_string(format!("{dir}/manifest.tsv")).expect("manifest.tsv");
        for line in manifest.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            let (Some(label), Some(path)) = (f.first(), f.get(1)) else { continue };
            if *label == "excluded" {
                continue;
            }
            let Ok(raw) = std::fs::read(format!("{dir}/{path}")) else { continue };
            let raw = mxguard_smtp::stuff::to_crlf(&raw);
            *messages.entry(label.to_string()).or_default() += 1;
            let r = mxguard_scan::scan_with(&raw, &tables, 1_795_420_800, false);
            for f in &r.found {
                if show.as_deref() == Some(&format!("{}:{label}", f.symbol.name)) {
                    eprintln!("{dir}/{path}: {}", f.symbol.reason);
                }
                if only.is_empty() || only.contains(&f.symbol.name) {
                    *hits.entry(f.symbol.name.clone()).or_default().entry(label.to_string()).or_default() += 1;
                }
            }
        }
    }
    let obj = |m: &BTreeMap<String, u64>| m.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(",");
    let hits: Vec<String> = hits.iter().map(|(s, m)| format!("\"{s}\":{{{}}}", obj(m))).collect();
    println!("{{\"messages\":{{{}}},\"hits\":{{{}}}}}", obj(&messages), hits.join(","));
}
