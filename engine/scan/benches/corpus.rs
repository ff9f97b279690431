//! Scan benchmark over a mail corpus, on one core (this thread), every local scanner on (the
//! tables `Tables::empty()` gives: default shorteners and brands; no DNS, no ClamAV).
//!
//! `cargo bench -p mxguard-scan --bench corpus -- LIST [--passes N] [--keywords N]`
//! LIST is a file of `label<TAB>path` lines (one message each). Prints one JSON object:
//! per label the messages, bytes and how many got a phishing symbol or any symbol; the time of
//! every scan (p50/p99/max), messages and MB per CPU-second of this process; and hyperscan's
//! throughput for an N-keyword literal database over the corpus's decoded text, beside
//! aho-corasick's DFA over the same keywords and text as the reference; and, to show what that
//! figure depends on, hyperscan with N/2 of the keywords and with N words and word pairs of the
//! corpus's own spam. `MXGUARD_BENCH_DUMP=DIR` (absolute) writes the text and both keyword
//! lists there for benches/hyperscan_floor.c, the same scan in C.
//!
//! A message is read into memory before the clock starts; the clock covers `scan()` only.

use std::collections::BTreeMap;
use std::time::Instant;

use mxguard_policy::hsdb::{literal, Db, Expr};

fn cpu_seconds() -> f64 {
    // SAFETY: `libc_rusage` is plain integers, for which all-zero bits are a valid value.
    let mut ru: libc_rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF (0) and a pointer to a live struct laid out as the kernel's `struct
    // rusage` (two timevals then fourteen longs), which the call fills.
    unsafe { getrusage(0, &mut ru) };
    let t = |tv: [i64; 2]| tv[0] as f64 + tv[1] as f64 * 1e-6;
    t(ru.utime) + t(ru.stime)
}

// getrusage without another dependency (struct rusage starts with two struct timevals).
#[repr(C)]
struct libc_rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}
extern "C" {
    fn getrusage(who: i32, usage: *mut libc_rusage) -> i32;
}

/// The symbols that say "phishing": every PHISH_* sign (look-alike, mismatched, deceptive IP,
/// odd-port, host-in-path, brand and form links, brand display names). The URL_* symbols
/// (shorteners, plain-text IP URLs, userinfo) are link hygiene that ham shows too.
fn is_phish(name: &str) -> bool {
    name.starts_with("PHISH_")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut list = None;
    let mut passes = 3usize;
    let mut keywords = 10_000usize;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--passes" => passes = it.next().and_then(|v| v.parse().ok()).unwrap_or(3),
            "--keywords" => keywords = it.next().and_then(|v| v.parse().ok()).unwrap_or(10_000),
            _ => list = Some(a),
        }
    }
    let Some(list) = list else {
        eprintln!("usage: corpus LIST [--passes N] [--keywords N]");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&list).expect("list file");
    let mut msgs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (label, path) = line.split_once('\t').expect("label<TAB>path");
        let raw = std::fs::read(path).expect("message file");
        msgs.push((label.to_string(), mxguard_smtp::stuff::to_crlf(&raw)));
        paths.push(path.to_string());
    }
    let tables = mxguard_scan::Tables::empty();
    let now = 1_795_420_800;
    // Detection (first pass) and timing (every pass).
    let mut per_label: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    let mut times = Vec::with_capacity(msgs.len() * passes);
    let total_bytes: usize = msgs.iter().map(|m| m.1.len()).sum();
    let mut cpu = 0.0;
    let mut wall = 0.0;
    for pass in 0..passes {
        let c0 = cpu_seconds();
        let w0 = Instant::now();
        for (i, (label, raw)) in msgs.iter().enumerate() {
            let t0 = Instant::now();
            let r = mxguard_scan::scan(raw, &tables, now);
            times.push(t0.elapsed().as_nanos() as u64);
            if pass == 0 {
                let e = per_label.entry(label.clone()).or_default();
                e[0] += 1;
                e[1] += raw.len() as u64;
                e[2] += r.found.iter().any(|f| is_phish(&f.symbol.name)) as u64;
                if std::env::var_os("MXGUARD_BENCH_SHOW").is_some_and(|v| v == label.as_str()) {
                    // Every message of the label, with its phishing findings (none: a miss or a pass).
                    let names: Vec<String> = r.found.iter().filter(|f| is_phish(&f.symbol.name)).map(|f| format!("{}: {}", f.symbol.name, f.symbol.reason)).collect();
                    eprintln!("{label}\t{}\t{}", paths[i], names.join(" | "));
                }
                e[3] += (!r.found.is_empty()) as u64;
            }
        }
        if pass > 0 || passes == 1 {
            cpu += cpu_seconds() - c0;
            wall += w0.elapsed().as_secs_f64();
        }
    }
    let timed_passes = if passes == 1 { 1 } else { passes - 1 };
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)] as f64 / 1e6;
    let n = (msgs.len() * timed_passes) as f64;

    // Hyperscan alone: N literal keywords over the decoded text of every message.
    let mut decoded = Vec::new();
    let mut texts: Vec<(bool, String)> = Vec::new();
    for (label, raw) in &msgs {
        let p = mxguard_scan::mime::parse(raw, 1 << 20, 1000);
        decoded.extend_from_slice(p.text.as_bytes());
        decoded.push(b'\n');
        texts.push((label == "ham", p.text));
    }
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut word = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 5 + (seed % 8) as usize;
        (0..len).map(|i| (b'a' + ((seed >> (i * 5)) % 26) as u8) as char).collect::<String>()
    };
    let words: Vec<String> = (0..keywords).map(|_| word()).collect();
    let (compile_s, hs_cpu_rate, hs_wall_rate) = hyperscan_rate(&words, &decoded);
    // Two more sets, to show what the figure depends on (the target is read on the first): half as
    // many random words, and an administrator's kind of list — words and word pairs seen in at least
    // three non-ham messages of this corpus and in no ham, most frequent first.
    let (_, hs_half_rate, _) = hyperscan_rate(&words[..(keywords / 2).max(1).min(words.len())], &decoded);
    let phrases = spam_phrases(&texts, keywords);
    let (_, hs_phrase_rate, _) = hyperscan_rate(&phrases, &decoded);
    if let Some(dir) = std::env::var_os("MXGUARD_BENCH_DUMP") {
        // The inputs of the hyperscan rows, for benches/hyperscan_floor.c (the same scan in C).
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join("decoded.txt"), &decoded).expect("dump decoded text");
        std::fs::write(dir.join("keywords.txt"), words.join("\n") + "\n").expect("dump keywords");
        std::fs::write(dir.join("phrases.txt"), phrases.join("\n") + "\n").expect("dump phrases");
    }
    let mut hits = 0u64;

    // The reference in the same process: the same keywords in aho-corasick's DFA (the fastest of
    // its automata for a set this large; its SIMD prefilters only serve small sets).
    let ac = aho_corasick::AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build(&words)
        .expect("keyword automaton");
    let ac_reps = ((1usize << 28) / decoded.len().max(1)).clamp(1, 50);
    let c0 = cpu_seconds();
    for _ in 0..ac_reps {
        hits += ac.find_iter(&decoded).count() as u64;
    }
    let ac_cpu = cpu_seconds() - c0;

    let labels: Vec<String> = per_label
        .iter()
        .map(|(l, v)| format!("\"{l}\":{{\"messages\":{},\"bytes\":{},\"phish\":{},\"any_symbol\":{}}}", v[0], v[1], v[2], v[3]))
        .collect();
    println!(
        "{{\"messages\":{},\"bytes\":{},\"passes_timed\":{},\"cpu_s\":{:.4},\"wall_s\":{:.4},\"msgs_per_cpu_s\":{:.1},\"mb_per_cpu_s\":{:.2},\"p50_ms\":{:.4},\"p99_ms\":{:.4},\"max_ms\":{:.3},\"labels\":{{{}}},\"hs_keywords\":{},\"hs_compile_s\":{:.3},\"hs_bytes\":{},\"hs_gb_per_cpu_s\":{:.3},\"hs_gb_per_wall_s\":{:.3},\"hs_half_gb_per_cpu_s\":{:.3},\"hs_phrases\":{},\"hs_phrase_gb_per_cpu_s\":{:.3},\"ac_gb_per_cpu_s\":{:.3}}}",
        msgs.len(),
        total_bytes,
        timed_passes,
        cpu,
        wall,
        n / cpu.max(1e-9),
        total_bytes as f64 * timed_passes as f64 / 1e6 / cpu.max(1e-9),
        pct(0.50),
        pct(0.99),
        pct(1.0),
        labels.join(","),
        keywords,
        compile_s,
        decoded.len(),
        hs_cpu_rate,
        hs_wall_rate,
        hs_half_rate,
        phrases.len(),
        hs_phrase_rate,
        decoded.len() as f64 * ac_reps as f64 / 1e9 / ac_cpu.max(1e-9),
    );
    let _ = hits;
}

/// Compiles `words` as caseless single-match literals into one database and scans `text` with it
/// for about a gigabyte: (compile seconds, GB per CPU-second, GB per wall second).
fn hyperscan_rate(words: &[String], text: &[u8]) -> (f64, f64, f64) {
    let exprs: Vec<Expr> =
        words.iter().map(|w| Expr { expression: literal(w), flags: hyperscan::CompileFlags::CASELESS | hyperscan::CompileFlags::SINGLEMATCH }).collect();
    let t0 = Instant::now();
    let db = Db::compile(&exprs).expect("keyword db");
    let compile_s = t0.elapsed().as_secs_f64();
    let mut hits = 0u64;
    db.scan(text, |_| hits += 1); // warm the scratch
    let reps = ((1usize << 30) / text.len().max(1)).clamp(1, 50);
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    for _ in 0..reps {
        db.scan(text, |_| hits += 1);
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let gb = text.len() as f64 * reps as f64 / 1e9;
    std::hint::black_box(hits);
    (compile_s, gb / cpu.max(1e-9), gb / wall.max(1e-9))
}

/// Up to `n` words (four letters or more) and word pairs found in at least three non-ham texts
/// and in no ham text, most frequent first (ties in byte order): a keyword list of the kind an
/// administrator builds from the spam they receive.
fn spam_phrases(texts: &[(bool, String)], n: usize) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    let mut spam: HashMap<String, u32> = HashMap::new();
    let mut ham: HashSet<String> = HashSet::new();
    for (is_ham, text) in texts {
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower.split(|c: char| !(c.is_ascii_lowercase() || c == '\'' || c == '-' || c == '$')).filter(|w| w.len() > 1 && w.as_bytes()[0].is_ascii_lowercase()).collect();
        let mut grams: HashSet<String> = words.iter().filter(|w| w.len() >= 4).map(|w| w.to_string()).collect();
        grams.extend(words.windows(2).map(|p| format!("{} {}", p[0], p[1])));
        for g in grams {
            if *is_ham {
                ham.insert(g);
            } else {
                *spam.entry(g).or_default() += 1;
            }
        }
    }
    let mut kept: Vec<(u32, String)> = spam.into_iter().filter(|(g, c)| *c >= 3 && !ham.contains(g)).map(|(g, c)| (c, g)).collect();
    kept.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    kept.into_iter().take(n).map(|(_, g)| g).collect()
}
