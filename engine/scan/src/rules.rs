//! Content rule files, compiled into hyperscan databases: the reference products' keyword lists
//! and SpamAssassin-style scored rules.
//!
//! Keyword files (`keywords-blacklist.txt`, `keywords-whitelist.txt`), the reference syntax:
//! - one rule per line; the keywords of a line, separated by commas, must *all* occur (AND);
//!   the lines are alternatives (OR). A keyword is a case-insensitive phrase: `click here` does
//!   not match "click over here".
//! - a line in parentheses, `(regex)`, is a regular expression (case-insensitive);
//! - `::NULL` (accept and drop), `::NoNDR` (keep, never bounce), `::Honeypot` (drop and ban the
//!   client) after a blacklist line; `#` or `;` starts a comment line.
//!
//! Scored rules (`content-rules.txt`), the SpamAssassin subset postmasters already write:
//! ```text
//! body    LOAN_OFFER   /low (?:interest|rate) loans?/i
//! header  SUBJ_WINNER  Subject =~ /you(?:'ve| have) won/i
//! uri     URI_DOC_PHP  /\/doc\.php\?id=/
//! score   LOAN_OFFER   3.5
//! describe LOAN_OFFER  Offers a low-interest loan
//! ```
//! `body` rules match the decoded text (subject and every text/HTML part), `header` rules one
//! header's decoded value, `uri` rules every link found. Flags: `i` caseless, `s` dot matches
//! newline, `m` multi-line anchors. A rule without `score` scores 1.0.
//!
//! A regex (or keyword) written in ASCII is matched byte by byte, as SpamAssassin matches without
//! `normalize_charset`: `.` and `[^>]` take one byte, so `.{0,3}` spans three bytes of a UTF-8
//! text. A regex holding a non-ASCII character or a `\x{…}` code point is matched by characters
//! (hyperscan's UTF-8 mode). The reason is the compile: in UTF-8 mode a negated class or a dot
//! under a counted repeat becomes an automaton over multi-byte sequences. SpamAssassin's own
//! stock rules took ~12 minutes to compile that way (one of them, `[^>]{1,1000}…[^>]{1,1000}`,
//! 338 s on its own) and take seconds byte by byte.
//!
//! Everything a file set holds is compiled into one database per target (text, URIs, each
//! header name), so a message costs one hyperscan pass per target however many rules there are.
//! A bad line gives `file:line: reason`, and the caller keeps the rules in force.

use std::collections::HashMap;
use std::path::Path;

use hyperscan::prelude::CompileFlags;

use mxguard_policy::hsdb::{literal, Db, Expr};

/// What a keyword blacklist line asks beyond its score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeywordOpts {
    pub null: bool,
    pub no_ndr: bool,
    pub honeypot: bool,
}

#[derive(Debug, Clone)]
pub struct KeywordLine {
    pub file: &'static str,
    pub line: usize,
    /// The line as written (for the reason).
    pub text: String,
    /// Pattern ids (in the text database) that must all match.
    atoms: Vec<u32>,
    pub opts: KeywordOpts,
    pub whitelist: bool,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub score: f64,
    pub describe: String,
    pub line: usize,
}

/// A hit of a scored rule or a keyword line.
#[derive(Debug, Clone)]
pub enum Hit<'r> {
    Keyword(&'r KeywordLine),
    Rule(&'r Rule),
}

/// The compiled content rules.
#[derive(Debug, Default)]
pub struct Rules {
    keywords: Vec<KeywordLine>,
    rules: Vec<Rule>,
    /// Keyword atoms (ids below `atoms`), then body rules (rule index `text_rules[id - atoms]`).
    text: Option<Db>,
    text_rules: Vec<u32>,
    atoms: usize,
    /// URI rules: pattern id → rule index.
    uri: Option<(Db, Vec<u32>)>,
    /// Header name (lower case) → database and its rule indexes.
    headers: HashMap<String, (Db, Vec<u32>)>,
}

pub const KEYWORDS_BLACKLIST: &str = "keywords-blacklist.txt";
pub const KEYWORDS_WHITELIST: &str = "keywords-whitelist.txt";
pub const CONTENT_RULES: &str = "content-rules.txt";

/// The files this module reads from the lists directory.
pub const FILES: &[&str] = &[KEYWORDS_BLACKLIST, KEYWORDS_WHITELIST, CONTENT_RULES];

struct Pending {
    expr: Expr,
    file: &'static str,
    line: usize,
}

/// The patterns of one database being built, and the rule each one stands for.
#[derive(Default)]
struct Target {
    pats: Vec<Pending>,
    rules: Vec<u32>,
}

impl Target {
    fn push(&mut self, p: Pending, rule: u32) {
        self.pats.push(p);
        self.rules.push(rule);
    }
}

impl Rules {
    pub fn empty() -> Rules {
        Rules::default()
    }

    pub fn len(&self) -> usize {
        self.keywords.len() + self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads the three files of `dir` (a missing file is an empty one).
    pub fn load(dir: &Path) -> Result<Rules, Vec<String>> {
        let read = |f: &str| match std::fs::read_to_string(dir.join(f)) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(format!("{}: {e}", dir.join(f).display())),
        };
        let mut errors = Vec::new();
        let mut texts = Vec::new();
        for f in FILES {
            match read(f) {
                Ok(s) => texts.push(s),
                Err(e) => {
                    errors.push(e);
                    texts.push(String::new());
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Rules::parse(&texts[0], &texts[1], &texts[2])
    }

    /// Compiles file contents (tests and `explain` pass strings).
    pub fn parse(blacklist: &str, whitelist: &str, content: &str) -> Result<Rules, Vec<String>> {
        let mut r = Rules::default();
        let mut errors = Vec::new();
        let mut text: Vec<Pending> = Vec::new();
        r.parse_keywords(KEYWORDS_BLACKLIST, blacklist, false, &mut text, &mut errors);
        r.parse_keywords(KEYWORDS_WHITELIST, whitelist, true, &mut text, &mut errors);
        r.atoms = text.len();
        let mut body = Target::default();
        let mut uri = Target::default();
        let mut headers: HashMap<String, Target> = HashMap::new();
        r.parse_content(content, &mut body, &mut uri, &mut headers, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let build = |ps: &[Pending], errors: &mut Vec<String>| -> Option<Db> {
            if ps.is_empty() {
                return None;
            }
            match Db::compile(ps.iter().map(|p| &p.expr)) {
                Ok(db) => Some(db),
                Err(bad) => {
                    for (i, msg) in bad {
                        match i.and_then(|i| ps.get(i)) {
                            Some(p) => errors.push(format!("{}:{}: {msg}", p.file, p.line)),
                            None => errors.push(format!("{}: rules do not compile: {msg}", ps[0].file)),
                        }
                    }
                    None
                }
            }
        };
        text.extend(body.pats);
        r.text = build(&text, &mut errors);
        r.text_rules = body.rules;
        r.uri = build(&uri.pats, &mut errors).map(|db| (db, uri.rules));
        for (name, t) in headers {
            if let Some(db) = build(&t.pats, &mut errors) {
                r.headers.insert(name, (db, t.rules));
            }
        }
        if errors.is_empty() {
            Ok(r)
        } else {
            Err(errors)
        }
    }

    fn parse_keywords(&mut self, file: &'static str, src: &str, whitelist: bool, text: &mut Vec<Pending>, errors: &mut Vec<String>) {
        let flags = CompileFlags::CASELESS | CompileFlags::SINGLEMATCH;
        for (n, raw) in src.lines().enumerate() {
            let line = n + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                continue;
            }
            let (body, opts) = split_opts(t);
            let mut opts_parsed = KeywordOpts::default();
            for o in opts {
                match o.to_ascii_lowercase().as_str() {
                    "null" => opts_parsed.null = true,
                    "nondr" => opts_parsed.no_ndr = true,
                    "honeypot" => opts_parsed.honeypot = true,
                    other => errors.push(format!("{file}:{line}: unknown option ::{other}")),
                }
            }
            let mut atoms = Vec::new();
            if body.len() > 2 && body.starts_with('(') && body.ends_with(')') {
                atoms.push(text.len() as u32);
                let expression = body[1..body.len() - 1].to_string();
                text.push(Pending { expr: Expr { flags: flags | utf8_if_needed(&expression), expression }, file, line });
            } else {
                for k in body.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    atoms.push(text.len() as u32);
                    let expression = literal(k);
                    text.push(Pending { expr: Expr { flags: flags | utf8_if_needed(&expression), expression }, file, line });
                }
            }
            if atoms.is_empty() {
                errors.push(format!("{file}:{line}: no keyword"));
                continue;
            }
            self.keywords.push(KeywordLine { file, line, text: body.to_string(), atoms, opts: opts_parsed, whitelist });
        }
    }

    fn parse_content(
        &mut self,
        src: &str,
        body: &mut Target,
        uri: &mut Target,
        headers: &mut HashMap<String, Target>,
        errors: &mut Vec<String>,
    ) {
        let file = CONTENT_RULES;
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut scores: Vec<(String, f64, usize)> = Vec::new();
        let mut describes: Vec<(String, String)> = Vec::new();
        for (n, raw) in src.lines().enumerate() {
            let line = n + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let (kind, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            let rest = rest.trim_start();
            let (name, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let rest = rest.trim();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                errors.push(format!("{file}:{line}: a rule name is letters, digits and _"));
                continue;
            }
            let mut add_rule = |r: &mut Rules| -> Option<u32> {
                if index.contains_key(name) {
                    errors.push(format!("{file}:{line}: rule {name} is defined twice"));
                    return None;
                }
                index.insert(name.to_string(), r.rules.len());
                r.rules.push(Rule { name: name.to_string(), score: 1.0, describe: String::new(), line });
                Some(r.rules.len() as u32 - 1)
            };
            match kind {
                "body" | "uri" => match regex_of(rest) {
                    Ok(expr) => {
                        if let Some(id) = add_rule(self) {
                            let p = Pending { expr, file, line };
                            if kind == "body" {
                                body.push(p, id);
                            } else {
                                uri.push(p, id);
                            }
                        }
                    }
                    Err(e) => errors.push(format!("{file}:{line}: {e}")),
                },
                "header" => {
                    let Some((hname, re)) = rest.split_once("=~") else {
                        errors.push(format!("{file}:{line}: header rules read `header NAME Header-Name =~ /regex/`"));
                        continue;
                    };
                    let hname = hname.trim().to_ascii_lowercase();
                    if hname.is_empty() || hname.contains(char::is_whitespace) {
                        errors.push(format!("{file}:{line}: bad header name"));
                        continue;
                    }
                    match regex_of(re.trim()) {
                        Ok(expr) => {
                            if let Some(id) = add_rule(self) {
                                headers.entry(hname).or_default().push(Pending { expr, file, line }, id);
                            }
                        }
                        Err(e) => errors.push(format!("{file}:{line}: {e}")),
                    }
                }
                "score" => match rest.parse::<f64>() {
                    Ok(s) if s.is_finite() => scores.push((name.to_string(), s, line)),
                    _ => errors.push(format!("{file}:{line}: score must be a number")),
                },
                "describe" => describes.push((name.to_string(), rest.to_string())),
                other => errors.push(format!("{file}:{line}: unknown rule type `{other}` (body, header, uri, score, describe)")),
            }
        }
        for (name, s, line) in scores {
            match index.get(&name) {
                Some(i) => self.rules[*i].score = s,
                None => errors.push(format!("{file}:{line}: score for unknown rule {name}")),
            }
        }
        for (name, d) in describes {
            if let Some(i) = index.get(&name) {
                self.rules[*i].describe = d;
            }
        }
    }

    /// Matches `text` (subject and body text), `uris` and `headers`; returns the keyword lines
    /// whose keywords all occur and the rules that match, in file order.
    pub fn matches<'r>(&'r self, text: &str, uris: &[String], headers: &[(&str, std::borrow::Cow<'_, str>)]) -> Vec<Hit<'r>> {
        let mut atoms = vec![false; self.atoms];
        let mut rules = vec![false; self.rules.len()];
        if let Some(db) = &self.text {
            db.scan(text.as_bytes(), |id| {
                let id = id as usize;
                match id.checked_sub(self.atoms) {
                    None => atoms[id] = true,
                    Some(i) => {
                        if let Some(r) = self.text_rules.get(i) {
                            rules[*r as usize] = true;
                        }
                    }
                }
            });
        }
        if let Some((db, ids)) = &self.uri {
            for u in uris {
                db.scan(u.as_bytes(), |id| {
                    if let Some(r) = ids.get(id as usize) {
                        rules[*r as usize] = true;
                    }
                });
            }
        }
        if !self.headers.is_empty() {
            for (name, value) in headers {
                if let Some((db, ids)) = self.headers.get(&name.to_ascii_lowercase()) {
                    db.scan(value.as_bytes(), |id| {
                        if let Some(r) = ids.get(id as usize) {
                            rules[*r as usize] = true;
                        }
                    });
                }
            }
        }
        let mut out: Vec<Hit<'r>> = self.keywords.iter().filter(|k| k.atoms.iter().all(|a| atoms[*a as usize])).map(Hit::Keyword).collect();
        out.extend(self.rules.iter().zip(rules).filter(|(_, hit)| *hit).map(|(r, _)| Hit::Rule(r)));
        out
    }
}

/// `blacklisted words::NoNDR` → (`blacklisted words`, [`NoNDR`]).
fn split_opts(t: &str) -> (&str, Vec<&str>) {
    let mut parts = t.split("::");
    let body = parts.next().unwrap_or("").trim();
    (body, parts.map(str::trim).filter(|o| !o.is_empty()).collect())
}

/// hyperscan's UTF-8 mode for an expression that names a character beyond ASCII, byte by byte
/// otherwise (see the module's top comment).
fn utf8_if_needed(expression: &str) -> CompileFlags {
    if !expression.is_ascii() || expression.contains("\\x{") {
        CompileFlags::UTF8
    } else {
        CompileFlags::empty()
    }
}

/// `/regex/flags` → expression and hyperscan flags.
fn regex_of(s: &str) -> Result<Expr, String> {
    let s = s.trim();
    let (body, flags) = match (s.strip_prefix('/'), s.rfind('/')) {
        (Some(_), Some(end)) if end > 0 => (&s[1..end], &s[end + 1..]),
        _ => return Err("a regex is written /.../flags".into()),
    };
    if body.is_empty() {
        return Err("empty regex".into());
    }
    let mut f = CompileFlags::SINGLEMATCH | utf8_if_needed(body);
    for c in flags.chars() {
        match c {
            'i' => f |= CompileFlags::CASELESS,
            's' => f |= CompileFlags::DOTALL,
            'm' => f |= CompileFlags::MULTILINE,
            other => return Err(format!("unknown regex flag `{other}` (i, s, m)")),
        }
    }
    Ok(Expr { expression: body.to_string(), flags: f })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(hits: &[Hit<'_>]) -> Vec<String> {
        hits.iter()
            .map(|h| match h {
                Hit::Keyword(k) => format!("kw:{}", k.line),
                Hit::Rule(r) => r.name.clone(),
            })
            .collect()
    }

    #[test]
    fn the_reference_keyword_examples() {
        let r = Rules::parse("Mortgage, Click here\nFree, Mailing, List\nUnsubscribe\n", "", "").unwrap();
        let m = |t: &str| names(&r.matches(t, &[], &[]));
        assert_eq!(m("low mortgage, click here to be removed from our mailing"), vec!["kw:1"]);
        assert!(m("low mortgage, click over here to be removed from our mailing").is_empty());
        assert_eq!(m("low mortgage, click over here to unsubscribe from our mailing"), vec!["kw:3"]);
        assert_eq!(m("FREE offer for our MAILING list"), vec!["kw:2"]);
    }

    #[test]
    fn regex_lines_options_and_whitelist() {
        let r = Rules::parse("(v[i1]agra)::NoNDR\nlottery winner::NULL\nbad guy::Honeypot\n", "invoice 4711\n", "").unwrap();
        let hits = r.matches("buy V1AGRA now, invoice 4711, you are a lottery winner", &[], &[]);
        let kws: Vec<_> = hits.iter().filter_map(|h| if let Hit::Keyword(k) = h { Some((k.line, k.opts, k.whitelist)) } else { None }).collect();
        assert_eq!(kws.len(), 3);
        assert!(kws[0].1.no_ndr && !kws[0].2);
        assert!(kws[1].1.null);
        assert!(kws[2].2, "whitelist line");
    }

    #[test]
    fn scored_rules_by_target() {
        let src = "body LOAN /low (?:interest|rate) loans?/i\nheader SUBJ Subject =~ /^you have won/i\nuri DOCPHP /\\/doc\\.php\\?id=/\nscore LOAN 3.5\ndescribe LOAN Offers a loan\n";
        let r = Rules::parse("", "", src).unwrap();
        let h = [("Subject", std::borrow::Cow::Borrowed("You have WON a prize")), ("From", std::borrow::Cow::Borrowed("you have won"))];
        let hits = r.matches("Get LOW RATE LOANS", &["http://x.example/doc.php?id=1".into()], &h);
        assert_eq!(names(&hits), vec!["LOAN", "SUBJ", "DOCPHP"]);
        if let Hit::Rule(l) = &hits[0] {
            assert_eq!((l.score, l.describe.as_str()), (3.5, "Offers a loan"));
        }
        // The header rule looks at Subject only.
        let h = [("From", std::borrow::Cow::Borrowed("you have won"))];
        assert!(names(&r.matches("", &[], &h)).is_empty());
    }

    #[test]
    fn ascii_regexes_count_bytes_and_others_characters() {
        let src = "body NEAR /win.{1,2}prize/\nbody CAFE /caf[éè] noir/\nbody EURO /\\x{20ac}\\d/\nbody TAG /<[^>]{1,1000}onMouseOver=[^>]{1,1000}window\\.status=/i\n";
        let r = Rules::parse("", "", src).unwrap();
        let m = |t: &str| names(&r.matches(t, &[], &[]));
        // ASCII: a byte at a time, as SpamAssassin does; "€" is three bytes.
        assert_eq!(m("win! prize"), ["NEAR"]);
        assert!(m("win€ prize").is_empty());
        // Non-ASCII in the regex: characters, so the class takes "é" whole (byte by byte it
        // would take one of its two bytes).
        assert_eq!(m("un café noir"), ["CAFE"]);
        assert!(m("un cafx noir").is_empty());
        assert_eq!(m("price €5"), ["EURO"]);
        // SpamAssassin's rule that took 338 s to compile in UTF-8 mode.
        assert_eq!(m("<a href=x onMouseOver=\"window.status='y'\">"), ["TAG"]);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = Rules::parse("ok\n(unclosed[)\n", "", "").unwrap_err();
        assert!(e[0].starts_with("keywords-blacklist.txt:2:"), "{e:?}");
        let e = Rules::parse("", "", "body A /x/\nfrob B /y/\nscore C 1\nbody A /z/\nbody D /(?<=x)y/\n").unwrap_err();
        let joined = e.join("\n");
        assert!(joined.contains("content-rules.txt:2: unknown rule type"), "{joined}");
        assert!(joined.contains("content-rules.txt:4: rule A is defined twice"), "{joined}");
        assert!(joined.contains("content-rules.txt:3: score for unknown rule C"), "{joined}");
        let e = Rules::parse("", "", "body D /(?<=x)y/\n").unwrap_err();
        assert!(e[0].starts_with("content-rules.txt:1:"), "{e:?}");
        // Every pattern hyperscan refuses is named in one go, not the first only.
        let e = Rules::parse("", "", "body A /ok/\nbody B /(a)\\1/\nbody C /fine/\nbody D /(?<!x)y/\nuri E /(?<=x)z/\n").unwrap_err();
        let lines: Vec<&str> = e.iter().map(|e| e.split(':').nth(1).unwrap_or("")).collect();
        assert_eq!(lines, ["2", "4", "5"], "{e:?}");
        let e = Rules::parse("x::Bogus\n", "", "").unwrap_err();
        assert!(e[0].contains("unknown option"), "{e:?}");
    }
}
