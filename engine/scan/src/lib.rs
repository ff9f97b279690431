//! Content scanning: the body stage of the gateway.
//!
//! [`scan`] is a pure function of the message bytes and the read-mostly [`Tables`]: it parses
//! the message once ([`mime`]) and every scanner reads that parsed form — keyword lines and scored
//! rules ([`rules`], one hyperscan pass per target), links and phishing signs ([`urls`],
//! [`phish`]), heuristics ([`heuristics`]), attachments and archives ([`attachments`]), pictures
//! ([`images`]). Each
//! finding is a symbol with the score of its knob (`score.*`, `scan.*`) and the name of the check
//! it belongs to, so a domain can turn a check off (`mxguard_policy::domains::CHECKS` names them all).
//!
//! The tables are loaded from files in the lists directory beside the policy lists, compiled
//! off the request path and swapped atomically; a bad file leaves the old tables in force. This
//! crate never does I/O while scanning and never decides an action: it only adds symbols.

pub mod attachments;
pub mod fingerprint;
pub mod heuristics;
pub mod hosted;
pub mod html_text;
pub mod images;
pub mod magic;
pub mod mime;
pub mod pdf;
pub mod phish;
pub mod qr;
pub mod redirects;
pub mod remote_picture;
pub mod reply_to;
pub mod rules;
pub mod shortcut;
pub mod tokens;
pub mod unicode;
pub mod urls;

#[cfg(test)]
mod test_texts;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};

use mxguard_policy::list::List;
use mxguard_tuning as k;
use mxguard_verdict::{Force, Symbol};

/// Extra list files this crate reads (beside [`rules::FILES`]).
pub const URL_BLACKLIST: &str = "url-blacklist.txt";
pub const SHORTENERS: &str = "url-shorteners.txt";
pub const BRANDS: &str = "protected-brands.txt";
/// Free-mail providers, beside [`reply_to::DEFAULT_FREEMAIL`].
pub const FREEMAIL: &str = "freemail-domains.txt";
/// Shared hosting and cloud storage suffixes, beside [`hosted::DEFAULT_HOSTING`].
pub const HOSTING: &str = "hosting-domains.txt";
/// Public image hosts, beside [`remote_picture::DEFAULT_IMAGE_HOSTS`].
pub const IMAGE_HOSTS: &str = "image-hosts.txt";
pub const ATTACHMENT_BLACKLIST: &str = "attachment-blacklist.txt";
/// Perceptual hashes of known spam pictures (`mxguard image-hash --learn` appends to it).
pub const IMAGE_HASHES: &str = "image-hashes.txt";
/// Fingerprints of known spam texts (`mxguard bulk-signature --learn` appends to it).
pub const BULK_SIGNATURES: &str = "bulk-signatures.txt";

/// Every file of the lists directory the scanners read.
pub fn files() -> Vec<&'static str> {
    let mut v = rules::FILES.to_vec();
    v.extend([URL_BLACKLIST, SHORTENERS, BRANDS, FREEMAIL, HOSTING, IMAGE_HOSTS, ATTACHMENT_BLACKLIST, IMAGE_HASHES, BULK_SIGNATURES]);
    v
}

/// Hands each entry of a learnt list to `entry` — a line without its `#` comment, trimmed, not
/// empty — and collects its errors as `file:line: reason`.
pub(crate) fn each_list_line(text: &str, file: &str, mut entry: impl FnMut(&str) -> Result<(), String>) -> Result<(), Vec<String>> {
    let errors: Vec<String> = text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                return None;
            }
            entry(line).err().map(|why| format!("{file}:{}: {why}", i + 1))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The read-mostly tables.
#[derive(Debug)]
pub struct Tables {
    pub rules: rules::Rules,
    pub url_blacklist: List,
    pub shorteners: HashSet<String>,
    pub brands: HashSet<String>,
    /// Registrable domains of free-mail providers (Reply-To checks).
    pub freemail: HashSet<String>,
    /// Host suffixes of shared hosting and cloud storage (hosted phishing pages).
    pub hosting: HashSet<String>,
    /// Registrable domains of public image hosts (picture-only bodies).
    pub image_hosts: HashSet<String>,
    /// Lines of attachment-blacklist.txt (joined with the knob's list at scan time).
    pub attachment_lines: String,
    pub image_hashes: images::Known,
    pub bulk_signatures: fingerprint::Known,
}

impl Tables {
    pub fn empty() -> Tables {
        Tables {
            rules: rules::Rules::empty(),
            url_blacklist: List::empty(URL_BLACKLIST),
            shorteners: phish::DEFAULT_SHORTENERS.iter().map(|s| s.to_string()).collect(),
            brands: phish::DEFAULT_BRANDS.iter().map(|s| s.to_string()).collect(),
            freemail: reply_to::DEFAULT_FREEMAIL.iter().map(|s| s.to_string()).collect(),
            hosting: hosted::DEFAULT_HOSTING.iter().map(|s| s.to_string()).collect(),
            image_hosts: remote_picture::DEFAULT_IMAGE_HOSTS.iter().map(|s| s.to_string()).collect(),
            attachment_lines: String::new(),
            image_hashes: images::Known::default(),
            bulk_signatures: fingerprint::Known::default(),
        }
    }

    pub fn load(dir: &Path) -> Result<Tables, Vec<String>> {
        let mut errors = Vec::new();
        let mut t = Tables::empty();
        match rules::Rules::load(dir) {
            Ok(r) => t.rules = r,
            Err(e) => errors.extend(e),
        }
        match List::load(&dir.join(URL_BLACKLIST)) {
            Ok(l) => t.url_blacklist = l,
            Err(e) => errors.push(e),
        }
        let words = |f: &str, errors: &mut Vec<String>| -> Vec<String> {
            match std::fs::read_to_string(dir.join(f)) {
                Ok(s) => s.lines().map(|l| l.trim().to_ascii_lowercase()).filter(|l| !l.is_empty() && !l.starts_with('#')).collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => {
                    errors.push(format!("{}: {e}", dir.join(f).display()));
                    Vec::new()
                }
            }
        };
        t.shorteners.extend(words(SHORTENERS, &mut errors));
        t.brands.extend(words(BRANDS, &mut errors).into_iter().map(|b| urls::registrable(&b)));
        t.freemail.extend(words(FREEMAIL, &mut errors).into_iter().map(|b| urls::registrable(&b)));
        t.hosting.extend(words(HOSTING, &mut errors).into_iter().map(|h| h.trim_start_matches("*.").trim_start_matches('.').to_string()));
        t.image_hosts.extend(words(IMAGE_HOSTS, &mut errors).into_iter().map(|b| urls::registrable(&b)));
        t.attachment_lines = words(ATTACHMENT_BLACKLIST, &mut errors).join("\n");
        // The learnt lists: a missing file is an empty list.
        let learnt = |f: &str, errors: &mut Vec<String>| -> Option<(String, String)> {
            let path = dir.join(f);
            match std::fs::read_to_string(&path) {
                Ok(s) => Some((s, path.display().to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    errors.push(format!("{}: {e}", path.display()));
                    None
                }
            }
        };
        if let Some((text, name)) = learnt(IMAGE_HASHES, &mut errors) {
            match images::Known::parse(&text, &name) {
                Ok(k) => t.image_hashes = k,
                Err(e) => errors.extend(e),
            }
        }
        if let Some((text, name)) = learnt(BULK_SIGNATURES, &mut errors) {
            match fingerprint::Known::parse(&text, &name) {
                Ok(k) => t.bulk_signatures = k,
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
        }
    }

    pub fn entries(&self) -> usize {
        self.rules.len() + self.url_blacklist.len() + self.image_hashes.len() + self.bulk_signatures.len()
    }
}

static CURRENT: OnceLock<RwLock<Arc<Tables>>> = OnceLock::new();

fn cell() -> &'static RwLock<Arc<Tables>> {
    CURRENT.get_or_init(|| RwLock::new(Arc::new(Tables::empty())))
}

/// The tables in force.
pub fn current() -> Arc<Tables> {
    cell().read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Loads the tables of `dir` without putting them in force: how many entries, or the errors.
pub fn check(dir: &Path) -> Result<usize, Vec<String>> {
    Tables::load(dir).map(|t| t.entries())
}

/// Loads the tables of `dir` and puts them in force; on any error nothing changes.
pub fn reload(dir: &Path) -> Result<usize, Vec<String>> {
    let t = Tables::load(dir)?;
    let n = t.entries();
    *cell().write().unwrap_or_else(|e| e.into_inner()) = Arc::new(t);
    Ok(n)
}

/// One finding with the check it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub check: &'static str,
    pub symbol: Symbol,
}

/// What the scanners found in one message.
#[derive(Debug, Default)]
pub struct Report {
    pub found: Vec<Found>,
    /// Outcomes list options impose (keyword `::NULL`, `::NoNDR`, whitelist).
    pub forces: Vec<(&'static str, Force)>,
    /// A `::Honeypot` keyword line matched: the client is to be banned.
    pub honeypot: bool,
    /// Registrable domains of the links (for URI blacklist lookups).
    pub link_domains: Vec<String>,
    /// The message's Bayes tokens (unique, in no particular order), when [`scan`] was asked for them.
    pub tokens: Vec<u64>,
    /// The fingerprint of its text (`None` under `bulk.min_words` words), for bulk counting.
    pub fingerprint: Option<fingerprint::Bands>,
}

impl Report {
    fn add(&mut self, check: &'static str, name: &str, score: f64, reason: String) {
        self.found.push(Found { check, symbol: Symbol { name: name.to_string(), score, reason } });
    }

    pub fn score(&self) -> f64 {
        self.found.iter().map(|f| f.symbol.score).sum()
    }
}

/// The Generic Test for Unsolicited Bulk Email (SpamAssassin's and Rspamd's test string): mail
/// carrying it in its text must be treated as certain spam, so a postmaster can test the path.
pub const GTUBE: &[u8] = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// Scores of the fixed symbols, by knob.
static SCORES: &[(&str, &k::Knob)] = &[
    ("GTUBE", &k::SCORE_GTUBE),
    ("BULK_KNOWN", &k::SCORE_BULK_KNOWN),
    ("ATTACH_BLOCKED_EXT", &k::SCORE_ATTACH_BLOCKED_EXT),
    ("ATTACH_EXECUTABLE", &k::SCORE_ATTACH_EXECUTABLE),
    ("ATTACH_SHORTCUT", &k::SCORE_ATTACH_SHORTCUT),
    ("ATTACH_SHORTCUT_UNSAFE", &k::SCORE_ATTACH_SHORTCUT_UNSAFE),
    ("ATTACH_DOUBLE_EXT", &k::SCORE_ATTACH_DOUBLE_EXT),
    ("ATTACH_TYPE_MISMATCH", &k::SCORE_ATTACH_TYPE_MISMATCH),
    ("ARCHIVE_BLOCKED_ENTRY", &k::SCORE_ARCHIVE_BLOCKED_ENTRY),
    ("ARCHIVE_ENCRYPTED", &k::SCORE_ARCHIVE_ENCRYPTED),
    ("ARCHIVE_BOMB", &k::SCORE_ARCHIVE_BOMB),
    ("ARCHIVE_TOO_DEEP", &k::SCORE_ARCHIVE_TOO_DEEP),
    ("ARCHIVE_UNREADABLE", &k::SCORE_ARCHIVE_UNREADABLE),
    ("PHISH_TEXT_MISMATCH", &k::SCORE_URL_TEXT_MISMATCH),
    ("URL_IP_LITERAL", &k::SCORE_URL_IP_LITERAL),
    ("PHISH_IP_LINK", &k::SCORE_URL_IP_LINK),
    ("PHISH_ODD_PORT", &k::SCORE_URL_ODD_PORT),
    ("PHISH_DOMAIN_IN_PATH", &k::SCORE_URL_DOMAIN_IN_PATH),
    ("PHISH_BRAND_NAME", &k::SCORE_URL_BRAND_NAME),
    ("PHISH_ACCOUNT_ELSEWHERE", &k::SCORE_URL_ACCOUNT_ELSEWHERE),
    ("PHISH_OBFUSCATED_URL", &k::SCORE_URL_OBFUSCATED),
    ("PHISH_BRAND_IN_PATH", &k::SCORE_URL_BRAND_IN_PATH),
    ("URL_USERINFO", &k::SCORE_URL_USERINFO),
    ("PHISH_LOOKALIKE", &k::SCORE_URL_LOOKALIKE),
    ("URL_SHORTENER", &k::SCORE_URL_SHORTENER),
    ("PHISH_FORM", &k::SCORE_URL_FORM),
    ("PHISH_BRAND_IN_HOST", &k::SCORE_URL_BRAND_IN_HOST),
    ("PHISH_BRAND_SENDER", &k::SCORE_URL_BRAND_SENDER),
    ("URL_BL", &k::SCORE_URL_BLACKLIST),
    ("ATTACH_APPLE_PROFILE", &k::SCORE_ATTACH_APPLE_PROFILE),
    ("QR_LINK", &k::SCORE_QR_LINK),
    ("PHISH_HOSTED_PAGE", &k::SCORE_PHISH_HOSTED_PAGE),
    ("REPLYTO_ELSEWHERE", &k::SCORE_REPLYTO_ELSEWHERE),
    ("REPLYTO_FREEMAIL", &k::SCORE_REPLYTO_FREEMAIL),
    ("BODY_REMOTE_IMAGE", &k::SCORE_BODY_REMOTE_IMAGE),
    ("BODY_IMAGE_HOST", &k::SCORE_BODY_IMAGE_HOST),
    ("HEUR_SUBJECT_SPACES", &k::SCORE_HEUR_SUBJECT_SPACES),
    ("HEUR_MISSING_DATE", &k::SCORE_HEUR_MISSING_DATE),
    ("HEUR_MISSING_MESSAGE_ID", &k::SCORE_HEUR_MISSING_MESSAGE_ID),
    ("HEUR_MISSING_FROM", &k::SCORE_HEUR_MISSING_FROM),
    ("HEUR_DATE_FUTURE", &k::SCORE_HEUR_DATE_FUTURE),
    ("HEUR_DATE_PAST", &k::SCORE_HEUR_DATE_PAST),
    ("HEUR_HTML_ONLY_SHORT", &k::SCORE_HEUR_HTML_ONLY_SHORT),
    ("HEUR_SUBJECT_CAPS", &k::SCORE_HEUR_SUBJECT_CAPS),
    ("HEUR_SUBJECT_EXCLAIM", &k::SCORE_HEUR_SUBJECT_EXCLAIM),
    ("HEUR_FORGED_OUTLOOK", &k::SCORE_HEUR_FORGED_OUTLOOK),
    ("HEUR_FROM_NAME_ADDRESS", &k::SCORE_HEUR_FROM_NAME_ADDRESS),
    ("HEUR_BASE64_TEXT", &k::SCORE_HEUR_BASE64_TEXT),
    ("HEUR_EMPTY_BODY", &k::SCORE_HEUR_EMPTY_BODY),
    ("IMAGE_SPAM", &k::SCORE_IMAGE_SPAM),
    ("IMAGE_KNOWN_SPAM", &k::SCORE_IMAGE_KNOWN_SPAM),
    ("IMAGE_ANIMATED", &k::SCORE_IMAGE_ANIMATED),
    ("IMAGE_CORRUPT", &k::SCORE_IMAGE_CORRUPT),
];

/// The QR reading limits with the knobs in force.
pub fn qr_limits() -> qr::Limits {
    let max_pixels = k::SCAN_QR_MAX_PIXELS.get_u64();
    qr::Limits { pictures_max: k::SCAN_QR_PICTURES_MAX.get_usize(), max_pixels, max_bytes: max_pixels.saturating_mul(3).min(usize::MAX as u64) as usize }
}

/// The PDF reading limits with the knobs in force; pictures only when QR codes are read.
pub fn pdf_limits(qr_codes: bool) -> pdf::Limits {
    pdf::Limits {
        pdfs_max: 4,
        max_bytes: k::SCAN_PDF_MAX_BYTES.get_usize(),
        links_max: k::SCAN_LINKS_MAX.get_usize(),
        pages_max: k::SCAN_PDF_PAGES_MAX.get_usize(),
        pictures_max: if qr_codes { k::SCAN_QR_PICTURES_MAX.get_usize() } else { 0 },
        max_pixels: k::SCAN_QR_MAX_PIXELS.get_u64(),
    }
}

/// The image check's knobs in force.
pub fn image_config() -> images::Config {
    images::Config {
        threshold: k::IMAGE_THRESHOLD.get_u64() as u32,
        color_sensitivity: k::IMAGE_COLOR_SENSITIVITY.get_u64() as u32,
        min_width: k::IMAGE_MIN_WIDTH.get_u64() as u32,
        min_height: k::IMAGE_MIN_HEIGHT.get_u64() as u32,
        sampling_points: k::IMAGE_SAMPLING_POINTS.get_usize(),
        pass_multi_image: k::IMAGE_PASS_MULTI_IMAGE.get_bool(),
        sample_percent: k::IMAGE_SAMPLE_PERCENT.get_u64() as u32,
        max_bytes: k::IMAGE_MAX_BYTES.get_usize(),
        max_pixels: k::IMAGE_MAX_PIXELS.get_u64(),
        max_images: k::IMAGE_MAX_PER_MESSAGE.get_usize(),
        hash_distance: k::IMAGE_HASH_DISTANCE.get_u64() as u32,
    }
}

fn score_of(symbol: &str) -> f64 {
    if symbol.starts_with("MIME_") {
        return k::SCAN_MIME_DEFECT_SCORE.get_f64();
    }
    SCORES.iter().find(|(s, _)| *s == symbol).map(|(_, k)| k.get_f64()).unwrap_or(0.0)
}

/// Parses a message with the knobs in force (`scan.text_max_bytes`, `scan.parts_max`), as the
/// scan does.
pub fn parse(raw: &[u8]) -> mime::Parsed<'_> {
    mime::parse(raw, k::SCAN_TEXT_MAX_BYTES.get_usize(), k::SCAN_PARTS_MAX.get_usize())
}

/// The Bayes tokens of a message on its own (learning from files and reports; a scan gets them
/// from [`scan_with`] without a second parse).
pub fn message_tokens(raw: &[u8]) -> Vec<u64> {
    tokens::tokens(&parse(raw), k::SCAN_LINKS_MAX.get_usize())
}

/// Scans one message (`raw`: as received, CRLF lines), with the knobs in force.
pub fn scan(raw: &[u8], tables: &Tables, now_unix: i64) -> Report {
    scan_with(raw, tables, now_unix, false)
}

/// [`scan`], and with `want_tokens` the Bayes tokens of the same parse in [`Report::tokens`].
pub fn scan_with(raw: &[u8], tables: &Tables, now_unix: i64, want_tokens: bool) -> Report {
    let mut r = Report::default();
    let p = parse(raw);
    for d in &p.defects {
        r.add("mime", d.symbol(), score_of(d.symbol()), d.reason().to_string());
    }
    // One memmem pass over the decoded text (its own prefilter; a few GB/s).
    if memchr::memmem::find(p.text.as_bytes(), GTUBE).is_some() {
        r.add("gtube", "GTUBE", score_of("GTUBE"), "the GTUBE test string is in the text".into());
    }
    let headers = p.headers();
    let html = p.html();
    let atts = p.attachments();
    let mut links = urls::links_of(&p.text, &html, &atts, k::SCAN_LINKS_MAX.get_usize());
    // Links of PDF attachments, clicked or printed, join the others (pdf.rs).
    let qr_on = k::SCAN_QR_CODES.get_bool();
    let in_pdfs = pdf::read(atts.iter().map(|a| a.data), &pdf_limits(qr_on));
    urls::add_from_text(&mut links, &in_pdfs.links.join("\n"), k::SCAN_LINKS_MAX.get_usize());
    urls::add_from_text(&mut links, &in_pdfs.text, k::SCAN_LINKS_MAX.get_usize());
    // Links printed as QR codes in the pictures, then in PDF pages, join the others (qr.rs);
    // scan.qr_pictures_max bounds both together.
    if qr_on {
        let pictures = atts.iter().map(|a| qr::Source::from(a.data)).chain(in_pdfs.pictures.iter().map(qr::Source::from));
        let codes = qr::texts(pictures, &qr_limits());
        let added = urls::add_from_text(&mut links, &codes.join("\n"), k::SCAN_LINKS_MAX.get_usize());
        if let Some(first) = added.first() {
            r.add("urls", "QR_LINK", score_of("QR_LINK"), format!("a picture's QR code links to {first}"));
        }
    }
    let link_urls: Vec<String> = links.iter().map(|l| l.url.clone()).collect();

    // Keywords and rules: the text, plus the Received headers when asked.
    let mut text = std::borrow::Cow::Borrowed(p.text.as_str());
    if k::SCAN_RECEIVED_HEADERS.get_bool() {
        let received: Vec<&str> = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("Received")).map(|(_, v)| v.as_ref()).collect();
        if !received.is_empty() {
            text = std::borrow::Cow::Owned(format!("{}\n{}", received.join("\n"), p.text));
        }
    }
    for hit in tables.rules.matches(&text, &link_urls, &headers) {
        match hit {
            rules::Hit::Keyword(kw) if kw.whitelist => {
                r.forces.push(("keywords", Force::Pass("KEYWORD_WL".into())));
                r.add("keywords", "KEYWORD_WL", 0.0, format!("matches keyword whitelist line {}: {}", kw.line, kw.text));
            }
            rules::Hit::Keyword(kw) => {
                let reason = format!("matches keyword blacklist line {}: {}", kw.line, kw.text);
                if kw.opts.honeypot {
                    r.honeypot = true;
                    r.forces.push(("keywords", Force::Discard("KEYWORD_BL".into())));
                } else if kw.opts.null {
                    r.forces.push(("keywords", Force::Discard("KEYWORD_BL".into())));
                } else if kw.opts.no_ndr {
                    r.forces.push(("keywords", Force::NoNdr("KEYWORD_BL".into())));
                }
                if !r.found.iter().any(|f| f.symbol.name == "KEYWORD_BL") {
                    r.add("keywords", "KEYWORD_BL", k::SCAN_KEYWORD_SCORE.get_f64(), reason);
                }
            }
            rules::Hit::Rule(rule) => {
                let reason = if rule.describe.is_empty() { format!("content rule {}", rule.name) } else { rule.describe.clone() };
                r.add("rules", &rule.name, rule.score, reason);
            }
        }
    }

    // Links.
    let from = p.message.as_ref().and_then(|m| m.from()).and_then(|a| a.first());
    let from_domain = from.and_then(|a| a.address()).and_then(|a| a.rsplit_once('@')).map(|x| x.1).unwrap_or("");
    let from_name = from.and_then(|a| a.name()).unwrap_or("");
    let mailing_list = headers.iter().any(|(n, v)| {
        ["List-Id", "List-Post", "List-Unsubscribe"].iter().any(|h| n.eq_ignore_ascii_case(h))
            || (n.eq_ignore_ascii_case("Precedence") && ["bulk", "list"].iter().any(|p| v.trim().eq_ignore_ascii_case(p)))
    });
    let cx = phish::Context { from_domain, from_name, subject: &p.subject, text: &p.text, mailing_list };
    for (sym, reason) in phish::check(&links, &cx, &phish::Sets { shorteners: &tables.shorteners, brands: &tables.brands }) {
        r.add("urls", sym, score_of(sym), reason);
    }
    for (sym, reason) in hosted::check(&links, &tables.hosting, &tables.brands) {
        r.add("urls", sym, score_of(sym), reason);
    }
    let reply_to = p.message.as_ref().and_then(|m| m.reply_to()).and_then(|a| a.first()).and_then(|a| a.address());
    let from_address = from.and_then(|a| a.address()).unwrap_or("");
    let rt = reply_to::Message { from: from_address, from_name, reply_to, mailing_list };
    for (sym, reason) in reply_to::check(&rt, &tables.brands, &tables.freemail) {
        r.add("urls", sym, score_of(sym), reason);
    }
    let body = remote_picture::Body::of(&p, &atts, &links, k::HEUR_HTML_SHORT_CHARS.get_usize());
    for (sym, reason) in remote_picture::check(&body, &tables.image_hosts) {
        r.add("urls", sym, score_of(sym), reason);
    }
    if !tables.url_blacklist.is_empty() {
        if let Some(l) = links.iter().find(|l| tables.url_blacklist.match_name(&l.host).is_some()) {
            r.add("urls", "URL_BL", score_of("URL_BL"), format!("a link goes to the blacklisted {}", l.host));
        }
    }
    let mut domains: Vec<String> = links.iter().map(|l| l.domain.clone()).collect();
    domains.sort();
    domains.dedup();
    r.link_domains = domains;

    // Attachments.
    if !atts.is_empty() {
        let knob = &k::SCAN_BLOCKED_EXTENSIONS;
        let findings = attachments::with_blocked(knob.generation(), || knob.get_str().to_string(), &tables.attachment_lines, |blocked| {
            let policy = attachments::Policy {
                blocked,
                limits: attachments::Limits {
                    depth_max: k::SCAN_ARCHIVE_DEPTH_MAX.get_usize(),
                    entries_max: k::SCAN_ARCHIVE_ENTRIES_MAX.get_usize(),
                    ratio_max: k::SCAN_ARCHIVE_RATIO_MAX.get_u64(),
                    total_bytes_max: k::SCAN_ARCHIVE_BYTES_MAX.get_u64(),
                },
            };
            attachments::check(atts.iter().map(|a| (a.name, a.data)), &policy).findings
        });
        for (sym, reason) in findings {
            r.add("attachments", sym, score_of(sym), reason);
        }
    }

    // Pictures: off with the reference's threshold 0, unless known spam pictures are listed.
    let icfg = image_config();
    if icfg.threshold > 0 || !tables.image_hashes.is_empty() {
        for (sym, reason) in images::check(atts.iter().map(|a| a.data), &tables.image_hashes, &icfg) {
            r.add("images", sym, score_of(sym), reason);
        }
    }

    // Heuristics.
    let cfg = heuristics::Config {
        subject_spaces_max: k::HEUR_SUBJECT_SPACES_MAX.get_usize(),
        html_short_chars: k::HEUR_HTML_SHORT_CHARS.get_usize(),
        now_unix,
    };
    for (sym, reason) in heuristics::check(&p, atts.len(), &cfg) {
        r.add("heuristics", sym, score_of(sym), reason);
    }
    if want_tokens {
        r.tokens = tokens::tokens_of(&p, &html, &links, &atts);
    }

    // Fingerprint: counted by the gateway over recent traffic; known spam texts here.
    r.fingerprint = fingerprint::fingerprint(&p.text, k::BULK_MIN_WORDS.get_usize());
    if let Some(label) = r.fingerprint.as_ref().and_then(|f| tables.bulk_signatures.matching(f)) {
        let label = if label.is_empty() { String::new() } else { format!(" ({label})") };
        r.add("bulk", "BULK_KNOWN", score_of("BULK_KNOWN"), format!("the text matches a known spam signature of {BULK_SIGNATURES}{label}"));
    }
    r.found.retain(|f| f.symbol.score != 0.0 || f.symbol.name == "KEYWORD_WL");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held by each test that turns `scan.qr_codes` off for a moment (tests run in parallel and
    /// the knob is process-wide), so none scans a picture while another has it off.
    static QR_KNOB: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_link_in_a_qr_code_is_a_link_of_the_message() {
        let _knob = QR_KNOB.lock().unwrap_or_else(|e| e.into_inner());
        let head = "From: IT desk <it@corp.example>\nTo: c@d.example\nSubject: Scan to keep your mailbox\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <1@corp.example>\n";
        let png = crate::qr::qr_png("http://203.0.113.9/owa/login.php", 5);
        let raw = format!(
            "{head}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nScan the code below to keep your mailbox.\n\
             --b\nContent-Type: image/png; name=\"code.png\"\nContent-Transfer-Encoding: base64\n\n{}\n--b--\n",
            crate::qr::b64(&png)
        )
        .replace('\n', "\r\n");
        let r = scan_with(raw.as_bytes(), &Tables::empty(), 1_795_420_800, true);
        let names: Vec<&str> = r.found.iter().map(|f| f.symbol.name.as_str()).collect();
        assert!(names.contains(&"QR_LINK") && names.contains(&"PHISH_IP_LINK"), "{names:?}");
        assert!(r.found.iter().any(|f| f.symbol.name == "QR_LINK" && f.symbol.reason.contains("203.0.113.9")));
        // The same message with QR reading off: neither.
        k::SCAN_QR_CODES.set("0").unwrap();
        let off = scan(raw.as_bytes(), &Tables::empty(), 1_795_420_800);
        k::SCAN_QR_CODES.set("1").unwrap();
        assert!(!off.found.iter().any(|f| f.symbol.name == "QR_LINK" || f.symbol.name == "PHISH_IP_LINK"), "{:?}", off.found);
        // Its Bayes tokens: what reading the code adds are tokens a link in the text gives too.
        k::SCAN_QR_CODES.set("0").unwrap();
        let unread = scan_with(raw.as_bytes(), &Tables::empty(), 1_795_420_800, true).tokens;
        k::SCAN_QR_CODES.set("1").unwrap();
        let added: Vec<u64> = r.tokens.iter().copied().filter(|t| !unread.contains(t)).collect();
        let tokens = |body: &str| scan_with(format!("{head}\n{body}\n").replace('\n', "\r\n").as_bytes(), &Tables::empty(), 1_795_420_800, true).tokens;
        let with_link = tokens("Keep your mailbox. http://203.0.113.9/owa/login.php");
        assert!(!added.is_empty() && added.iter().all(|t| with_link.contains(t)), "{} tokens added", added.len());
    }

    #[test]
    fn a_link_in_a_pdf_attachment_is_a_link_of_the_message() {
        let _knob = QR_KNOB.lock().unwrap_or_else(|e| e.into_inner());
        let head = "From: Billing <billing@corp.example>\nTo: c@d.example\nSubject: Invoice\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <2@corp.example>\n";
        let with = |pdf: &[u8]| {
            format!(
                "{head}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nYour invoice is attached.\n\
                 --b\nContent-Type: application/pdf; name=\"invoice.pdf\"\nContent-Transfer-Encoding: base64\n\n{}\n--b--\n",
                crate::qr::b64(pdf)
            )
            .replace('\n', "\r\n")
        };
        let linked = with(&crate::pdf::pdf_with_links(&["http://203.0.113.9/invoice/view.php"]));
        let r = scan(linked.as_bytes(), &Tables::empty(), 1_795_420_800);
        assert!(r.found.iter().any(|f| f.symbol.name == "URL_IP_LITERAL"), "{:?}", r.found);
        assert_eq!(r.link_domains, ["203.0.113.9"]);
        let plain = with(&crate::pdf::pdf_with_links(&[]));
        assert!(scan(plain.as_bytes(), &Tables::empty(), 1_795_420_800).link_domains.is_empty());
        // Printed in its text, not clickable: still a link of the message.
        let printed = with(&crate::pdf::pdf_with(&[], "Pay at http://198.51.100.7/pay/now.php today", &[]));
        let r = scan(printed.as_bytes(), &Tables::empty(), 1_795_420_800);
        assert_eq!(r.link_domains, ["198.51.100.7"], "{:?}", r.found);
        // A QR code printed on its page: a link, and QR_LINK; with QR reading off, neither.
        let code = crate::qr::qr_picture("http://192.0.2.44/o365/login.php", 4);
        let coded = with(&crate::pdf::pdf_with(&[], "", &[(&code, crate::pdf::Stored::Grey1)]));
        let r = scan(coded.as_bytes(), &Tables::empty(), 1_795_420_800);
        assert_eq!(r.link_domains, ["192.0.2.44"]);
        assert!(r.found.iter().any(|f| f.symbol.name == "QR_LINK" && f.symbol.reason.contains("192.0.2.44")), "{:?}", r.found);
        k::SCAN_QR_CODES.set("0").unwrap();
        let off = scan(coded.as_bytes(), &Tables::empty(), 1_795_420_800);
        k::SCAN_QR_CODES.set("1").unwrap();
        assert!(off.link_domains.is_empty() && !off.found.iter().any(|f| f.symbol.name == "QR_LINK"));
    }

    #[test]
    fn a_hand_written_pdf_is_read_as_a_mailer_sends_it() {
        // The fuzzer's seed: a PDF written by hand (uncompressed objects, a plain 8-bit picture).
        let raw = include_bytes!("../../../fuzz/seeds/scan_message/pdf_text_and_page_picture.eml");
        let r = scan(raw, &Tables::empty(), 1_795_420_800);
        assert_eq!(r.link_domains, ["example.test"], "{:?}", r.found);
        let p = parse(raw);
        let got = pdf::read(p.attachments().iter().map(|a| a.data), &pdf_limits(true));
        assert!(matches!(&got.pictures[..], [pdf::Picture::Grey { width: 8, height: 8, .. }]), "{:?}", got.pictures);
    }

    fn names(raw: &str) -> Vec<String> {
        scan(raw.replace('\n', "\r\n").as_bytes(), &Tables::empty(), 1_795_420_800).found.into_iter().map(|f| f.symbol.name).collect()
    }

    #[test]
    fn gtube_in_any_text_part() {
        let g = std::str::from_utf8(GTUBE).unwrap();
        let head = "From: a@b.example\nTo: c@d.example\nSubject: test\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <1@b.example>\n";
        let plain = format!("{head}\nThis is the GTUBE, the\n\t{g}\n");
        assert!(names(&plain).contains(&"GTUBE".to_string()));
        let b64 = crate::qr::b64(GTUBE);
        let encoded = format!("{head}MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n{b64}\n");
        assert!(names(&encoded).contains(&"GTUBE".to_string()), "decoded before matching");
        let html = format!("{head}MIME-Version: 1.0\nContent-Type: text/html\n\n<html><body><p>{g}</p></body></html>\n");
        assert!(names(&html).contains(&"GTUBE".to_string()));
        let broken = format!("{head}\n{}\n", g.replace("GTUBE", "GTU BE"));
        assert!(!names(&broken).contains(&"GTUBE".to_string()));
    }
}
