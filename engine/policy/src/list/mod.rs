//! Lists in the reference products' file syntax (see [`line`]), compiled for lookup: address
//! blocks in an [`ipset::IpSet`], exact names in a hash, `*.domain` wildcards in a hash of
//! suffixes, and every other wildcard and `(regex)` line of a file in one hyperscan database.
//!
//! Costs: an address lookup is a few hash probes (one per prefix length in use), a name lookup
//! one hash probe, one more per label when the file has `*.domain` lines, plus one hyperscan scan
//! of the name when it has other patterns. Compiling hyperscan patterns is the slow part of a
//! load (seconds per ten thousand; see benches/RESULTS.md): `*.domain` lines never reach it. Loading is
//! all-or-nothing: the first bad line fails the whole file with `file:line: reason`, and the
//! caller keeps the list it had. Lookups never allocate on the common path and never panic.

pub mod ipset;
pub mod line;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use hyperscan::prelude::CompileFlags;

use crate::hsdb::{Db, Expr};

pub use line::Opts;

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    /// The entry as written (without its option).
    pub entry: &'a str,
    pub opts: Opts,
    /// 1-based line in the file.
    pub line: usize,
}

struct Entry {
    text: String,
    opts: Opts,
    line: usize,
}

/// One compiled list.
pub struct List {
    /// Where it came from (for messages), e.g. `lists/ip-blacklist.txt`.
    pub source: String,
    entries: Vec<Entry>,
    nets: ipset::IpSet<u32>,
    names: HashMap<String, u32>,
    /// `*.rest` wildcards (the common kind: a domain and all below it) by `rest`: a text ending
    /// in `.rest` matches. Looked up by hash at each `.` of the text instead of being compiled,
    /// so a list of 100,000 of them loads in a blink and costs a probe per label.
    suffixes: HashMap<String, u32>,
    patterns: Option<Patterns>,
}

struct Patterns {
    db: Db,
    /// Pattern id → entry index.
    ids: Vec<u32>,
}

impl std::fmt::Debug for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "List({}, {} entries)", self.source, self.entries.len())
    }
}

impl List {
    /// An empty list.
    pub fn empty(source: &str) -> List {
        List {
            source: source.to_string(),
            entries: Vec::new(),
            nets: ipset::IpSet::new(),
            names: HashMap::new(),
            suffixes: HashMap::new(),
            patterns: None,
        }
    }

    /// Reads and compiles `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<List, String> {
        let source = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|e| {
                    let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                    let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
                    format!("{source}:{line}: not UTF-8")
                })?;
                List::parse(&source, &text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(List::empty(&source)),
            Err(e) => Err(format!("{source}: {e}")),
        }
    }

    /// Compiles list text; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<List, String> {
        let mut list = List::empty(source);
        let mut pats: Vec<(String, u32, usize)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let number = i + 1;
            let Some(l) = line::parse(raw, number).map_err(|e| format!("{source}:{number}: {e}"))? else { continue };
            let idx = list.entries.len() as u32;
            let (text, pattern) = match &l.kind {
                line::Kind::Net(ip, len) => {
                    list.nets.insert(*ip, *len, idx);
                    (raw_entry(raw), None)
                }
                line::Kind::Name(n) => {
                    list.names.entry(n.clone()).or_insert(idx);
                    (n.clone(), None)
                }
                line::Kind::Wildcard(w) => match w.strip_prefix("*.").filter(|rest| !rest.contains(['*', '?'])) {
                    Some(rest) => {
                        list.suffixes.entry(rest.to_ascii_lowercase()).or_insert(idx);
                        (w.clone(), None)
                    }
                    None => (w.clone(), Some(line::wildcard_regex(w))),
                },
                line::Kind::Regex(r) => (r.clone(), Some(r.clone())),
            };
            if let Some(p) = pattern {
                pats.push((p, idx, number));
            }
            list.entries.push(Entry { text, opts: l.opts, line: number });
        }
        if !pats.is_empty() {
            list.patterns = Some(compile(source, &pats)?);
        }
        Ok(list)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// For a list of client addresses: refuses exact names, which no address ever matches
    /// (wildcards and regexes stay: they match the address's text form). `file:line: reason`.
    pub fn addresses_only(&self) -> Result<(), String> {
        let mut names: Vec<&Entry> = self.names.values().map(|i| &self.entries[*i as usize]).collect();
        names.sort_by_key(|e| e.line);
        match names.first() {
            Some(e) => Err(format!("{}:{}: '{}': not an address, address block or pattern", self.source, e.line, e.text)),
            None => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn hit(&self, idx: u32) -> Hit<'_> {
        let e = &self.entries[idx as usize];
        Hit { entry: &e.text, opts: e.opts, line: e.line }
    }

    /// The first entry matching an address: blocks (longest first), then wildcards and regexes
    /// over its text form (`209.20.21.*`).
    pub fn match_ip(&self, ip: IpAddr) -> Option<Hit<'_>> {
        if let Some(i) = self.nets.get(ip) {
            return Some(self.hit(*i));
        }
        if self.patterns.is_some() || !self.suffixes.is_empty() {
            return self.patterns_match(&ip.to_string()).map(|i| self.hit(i));
        }
        None
    }

    /// The first entry matching a name (domain, host name): exact, then patterns.
    pub fn match_name(&self, name: &str) -> Option<Hit<'_>> {
        if self.entries.is_empty() {
            return None;
        }
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(i) = self.names.get(&lower) {
            return Some(self.hit(*i));
        }
        self.patterns_match(&lower).map(|i| self.hit(i))
    }

    /// The first entry matching an e-mail address: the exact address, then its domain (a bare
    /// domain in an address list covers the whole domain), then patterns over the address.
    pub fn match_address(&self, addr: &str) -> Option<Hit<'_>> {
        if self.entries.is_empty() {
            return None;
        }
        let lower = addr.to_ascii_lowercase();
        if let Some(i) = self.names.get(&lower) {
            return Some(self.hit(*i));
        }
        if let Some((_, domain)) = lower.rsplit_once('@') {
            if let Some(i) = self.names.get(domain).or_else(|| self.names.get(&format!("@{domain}"))) {
                return Some(self.hit(*i));
            }
        }
        self.patterns_match(&lower).map(|i| self.hit(i))
    }

    /// The lowest entry index whose pattern matches `text`.
    /// The earliest wildcard or regex entry matching `text` (lower case): `*.rest` entries by
    /// hash at each `.`, the rest by the hyperscan database.
    fn patterns_match(&self, text: &str) -> Option<u32> {
        let mut best = None;
        if !self.suffixes.is_empty() {
            for (p, _) in text.match_indices('.') {
                if let Some(i) = self.suffixes.get(&text[p + 1..]) {
                    best = Some(best.map_or(*i, |b: u32| b.min(*i)));
                }
            }
        }
        match (best, self.scan(text)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn scan(&self, text: &str) -> Option<u32> {
        let p = self.patterns.as_ref()?;
        let mut best: Option<u32> = None;
        p.db.scan(text.as_bytes(), |id| {
            let idx = p.ids[id as usize];
            best = Some(best.map_or(idx, |b| b.min(idx)));
        });
        best
    }
}

fn raw_entry(raw: &str) -> String {
    let t = raw.trim();
    match t.rfind(':') {
        Some(p) if matches!(t[p + 1..].to_ascii_lowercase().as_str(), "null" | "nondr" | "honeypot" | "tag" | "tagsubject") => t[..p].trim_end_matches(':').to_string(),
        _ => t.to_string(),
    }
}

/// One hyperscan database for all the patterns of a file. On a compile error, every offending
/// line is named.
fn compile(source: &str, pats: &[(String, u32, usize)]) -> Result<Patterns, String> {
    let flags = CompileFlags::CASELESS | CompileFlags::SINGLEMATCH | CompileFlags::DOTALL;
    let exprs: Vec<Expr> = pats.iter().map(|(expr, _, _)| Expr { expression: expr.clone(), flags }).collect();
    match Db::compile(&exprs) {
        Ok(db) => Ok(Patterns { db, ids: pats.iter().map(|p| p.1).collect() }),
        Err(bad) => Err(bad
            .into_iter()
            .map(|(i, msg)| match i.and_then(|i| pats.get(i)) {
                Some(p) => format!("{source}:{}: {}: {msg}", p.2, p.0),
                None => format!("{source}: patterns do not compile: {msg}"),
            })
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

#[cfg(test)]
mod tests;
