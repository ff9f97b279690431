//! Phishing signs of the links of a message, each a symbol:
//! - `PHISH_TEXT_MISMATCH`: an anchor's visible text names a domain other than its target's
//!   (`<a href="http://evil.example">www.paypal.com</a>`);
//! - `PHISH_IP_LINK`: a clickable HTML link or form to a bare IP address (any notation), or a
//!   link to one whose path asks to log in, verify or update; `URL_IP_LITERAL`: any other link
//!   to a bare address (a plain-text URL in a discussion, an image);
//! - `PHISH_ODD_PORT`: a clickable link or form to a web server on a port other than 80/443
//!   (phishing kits on compromised hosts: `http://logon.bank.example.kr:280/`);
//! - `PHISH_DOMAIN_IN_PATH`: a link whose path names another site's host
//!   (`http://evil.example/signin.ebay.com/ws/`), so that the address bar shows the brand;
//! - `URL_USERINFO`: `http://paypal.com@evil.example/` — the part before `@` is a decoy;
//! - `PHISH_LOOKALIKE`: a punycode (`xn--`) host whose label, with look-alike letters folded,
//!   spells a protected brand's domain label (`pаypal.com` with a Cyrillic а);
//! - `URL_SHORTENER`: a link through a URL shortener (hides the target);
//! - `PHISH_FORM`: an HTML form asking for credentials (a password, card or account field)
//!   that posts to a site other than the sender's domain;
//! - `PHISH_BRAND_IN_HOST`: a link whose host spells the sender's or a protected brand's name
//!   inside another registrable domain (`signin-ebay.example.kr`, `wamu4u.com`), or starts
//!   with their whole domain (`www.paypal.com.evil.example`);
//! - `PHISH_BRAND_SENDER`: mail whose From is a protected brand links to another domain (in
//!   HTML, or in plain text to a bare address or a path asking to log in; not for mailing-list
//!   traffic: there the From is a member writing from their organisation);
//! - `PHISH_ACCOUNT_ELSEWHERE`: mail from an organisation that names itself in its subject or
//!   display name ("COLONIAL BANK NOTICE" from colonialbank.example) sends the reader to log in
//!   or verify on another site;
//! - `PHISH_OBFUSCATED_URL`: a link with tabs or line breaks hidden inside it;
//! - `PHISH_BRAND_IN_PATH`: a link to another site keeps its page in a folder named like a
//!   protected brand or the sender (`http://hacked.example/.LaSalleBank/index.php`);
//! - `PHISH_BRAND_NAME`: the From display name is a protected brand ("PayPal" <x@mail.example>)
//!   and the message talks about it, while the address is not the brand's;
//! - `URL_BL`: a link to a host or domain of the local URL blacklist.
//!
//! A brand named inside another host (`PHISH_BRAND_IN_HOST`) counts only when the message names
//! that brand in its subject, its From display name or that link's text: newsletters carry ads
//! on hosts like outlook.vendor.example without pretending to be Microsoft.
//!
//! Pure: links, what [`Context`] says of the message and the brand/shortener sets in, findings
//! out. Cost: linear in links × brands (a few dozen), no allocation per link beyond findings.

use std::collections::HashSet;

use crate::urls::{domain_in_text, Link};

/// One finding: symbol, reason.
pub type Finding = (&'static str, String);

/// Shorteners known without configuration (more come from `url-shorteners.txt`).
pub const DEFAULT_SHORTENERS: &[&str] = &[
    "bit.ly", "bitly.com", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "buff.ly", "rebrand.ly", "cutt.ly", "shorturl.at",
    "rb.gy", "t.ly", "tiny.cc", "s.id", "v.gd", "bl.ink", "lnkd.in", "soo.gd", "clck.ru", "qrco.de", "shorte.st", "adf.ly",
];

/// Brands protected against look-alikes without configuration (registrable domains; more come
/// from `protected-brands.txt`).
pub const DEFAULT_BRANDS: &[&str] = &[
    "paypal.com", "apple.com", "microsoft.com", "office.com", "outlook.com", "live.com", "google.com", "gmail.com",
    "amazon.com", "facebook.com", "instagram.com", "netflix.com", "linkedin.com", "dropbox.com", "docusign.com",
    "chase.com", "wellsfargo.com", "bankofamerica.com", "citibank.com", "hsbc.com", "barclays.co.uk", "ebay.com",
    "dhl.com", "fedex.com", "ups.com", "usps.com", "whatsapp.com", "twitter.com", "x.com", "adobe.com", "icloud.com",
    "yahoo.com", "aol.com", "wamu.com", "usbank.com", "wachovia.com", "suntrust.com", "capitalone.com",
    "americanexpress.com", "visa.com", "mastercard.com", "citizensbank.com", "ncua.gov", "irs.gov", "hmrc.gov.uk",
    "postbank.de", "sparkasse.de", "lloydsbank.co.uk", "natwest.com", "halifax.co.uk", "santander.com", "steampowered.com",
];

/// What the checks know of the message besides its links.
#[derive(Debug, Default, Clone, Copy)]
pub struct Context<'a> {
    /// The From header's domain.
    pub from_domain: &'a str,
    /// The From header's display name.
    pub from_name: &'a str,
    pub subject: &'a str,
    /// The decoded text (for whether the message talks about a brand).
    pub text: &'a str,
    /// List or bulk mail (List-Id, List-Post, List-Unsubscribe, Precedence: bulk or list): its
    /// From is a member or a brand's newsletter service, which link wherever they like.
    pub mailing_list: bool,
}

/// Words of a path that ask the reader to act on an account.
const ACCOUNT_WORDS: &[&str] = &[
    "login", "logon", "log-in", "signin", "sign-in", "verif", "account", "update", "secure", "webscr", "confirm", "banking",
    "billing", "password", "session", "validat", "unlock", "restor", "isapi", "cgi-bin",
];

/// Whether `s`, ASCII case folded, contains any of `words`.
fn contains_any(s: &str, words: &[&str]) -> bool {
    let s = s.to_ascii_lowercase();
    words.iter().any(|w| s.contains(w))
}

fn asks_for_account(path: &str) -> bool {
    contains_any(path, ACCOUNT_WORDS)
}

/// The words of [`ACCOUNT_WORDS`] that name a login itself (not `cgi-bin` or `update`, which
/// newsletters' click trackers and download pages are full of).
const LOGIN_WORDS: &[&str] =
    &["login", "logon", "log-in", "signin", "sign-in", "webscr", "verif", "validat", "unlock", "restor", "password", "session", "banking", "account"];

/// A link to a picture is no login page, whatever its folders are called.
fn is_picture(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    [".jpg", ".jpeg", ".gif", ".png", ".bmp"].iter().any(|e| p.ends_with(e))
}

/// A host named for a login (`site-secur.example`, `psis-account-verification.example`,
/// `post-auth.example`, `cuna-updatecenter.example`): the words of [`LOGIN_WORDS`] plus `secur`,
/// `auth` and `updat`, in the labels before the public suffix.
fn login_host(host: &str) -> bool {
    contains_any(host, LOGIN_WORDS) || contains_any(host, &["secur", "auth", "updat"])
}

fn asks_to_log_in(path: &str) -> bool {
    contains_any(path, LOGIN_WORDS)
}

/// Anchor texts that ask the reader to act on an account ("Click here to prove your identity",
/// "Log in now", "Verify your account"); a few verbs and nouns, matched as substrings.
fn asks_to_act_on_account(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    const ACTS: &[&str] = &["verify", "confirm", "prove", "validate", "log in", "login", "log on", "sign in", "signin", "unlock", "restore", "reactivate"];
    const OBJECTS: &[&str] = &["identity", "account", "information", "details", "access", "password", "log in", "login", "sign in", "here"];
    t.len() <= 80 && ACTS.iter().any(|a| t.contains(a)) && OBJECTS.iter().any(|o| t.contains(o))
}

/// Whether the link carries, after its own host, a whole URL (`http://…`, or URL-encoded
/// `http%3A%2F%2F…`) to a host of `domain`: a click tracker that says where it sends the reader
/// (`tracker.example/click/123/*http://www.shop.example/offer`). A path that merely names the
/// host, without the scheme, is the phishing kit's disguise and does not count.
fn redirects_to(l: &Link, domain: &str) -> bool {
    // A tracker's own part asks for nothing; a kit that copies a brand's return URL into its
    // login link (`…?MfcISAPICommand=…&ru=http://www.ebay.com`) does.
    !domain.is_empty() && embedded_urls(l).any(|(before, d, _)| d == domain && !asks_for_account(before))
}

/// The whole URLs a link carries after its own host (`http://…` or URL-encoded): for each, the
/// link's text before it, the registrable domain it names (or the address, for an IP; redirectors
/// hide `%32%31%31%2E…` for 211.…), and the rest after that host, percent-decoded.
fn embedded_urls(l: &Link) -> impl Iterator<Item = (&str, String, String)> + '_ {
    let after_host = l.url.find("://").map_or(0, |i| i + 3);
    let rest = &l.url[after_host..];
    // ASCII case folding keeps byte offsets, so they index `rest` too.
    let lower = rest.to_ascii_lowercase();
    ["http://", "https://", "http%3a%2f%2f", "https%3a%2f%2f"].into_iter().flat_map(move |scheme| {
        let hits: Vec<(usize, usize)> = lower.match_indices(scheme).map(|(i, m)| (i, m.len())).collect();
        hits.into_iter().map(move |(i, n)| {
            let tail = crate::urls::percent_decode(&rest[i + n..]).to_ascii_lowercase();
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')).unwrap_or(tail.len());
            let host = &tail[..end];
            // An address is its own domain (registrable() would cut 211.172.96.7 to 96.7).
            let domain = if host.parse::<std::net::IpAddr>().is_ok() { host.to_string() } else { crate::urls::registrable(host) };
            (&rest[..i], domain, tail[end..].to_string())
        })
    })
}

/// Letters and digits of `s`, lower case: how names are compared (`Pay.Pal` is `paypal`).
fn squash(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// The squashed words of a name, empty ones left out.
fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(squash).filter(|w| !w.is_empty()).collect()
}

/// Whether `word` is one of the words of `s` or all of them joined (`Pay.Pal` reads as
/// `paypal`, `Accounts PayPal` as `accounts`, `paypal`).
fn names(s: &str, word: &str) -> bool {
    let w = words(s);
    w.iter().any(|x| x == word) || w.concat() == word
}

/// Whether `word` is the whole display name, or its first or last word ("PayPal Security",
/// "Accounts PayPal"; not "Lockergnome Apple Core").
fn leads_with(name: &str, word: &str) -> bool {
    // A legal form is no part of the name: "Deutsche Postbank AG" ends with postbank.
    const LEGAL_FORMS: &[&str] = &["ag", "gmbh", "inc", "ltd", "llc", "plc", "corp", "co", "sa", "nv", "bv", "kg", "spa"];
    let mut w = words(name);
    while w.len() > 1 && w.last().is_some_and(|x| LEGAL_FORMS.contains(&x.as_str())) {
        w.pop();
    }
    w.first().is_some_and(|x| x == word) || w.last().is_some_and(|x| x == word) || w.concat() == word
}

/// Whether the text mentions `word` (case-insensitive substring, also with the punctuation
/// spammers put inside names taken out: `Pay.Pal`; a cheap stand-in for a mention, only used to
/// confirm a sign found elsewhere).
fn mentions(text: &str, word: &str) -> bool {
    let w = word.as_bytes();
    if w.is_empty() || text.len() < w.len() {
        return false;
    }
    if text.as_bytes().windows(w.len()).any(|win| win.eq_ignore_ascii_case(w)) {
        return true;
    }
    let squashed: Vec<u8> = text.bytes().filter(|b| b.is_ascii_alphanumeric()).map(|b| b.to_ascii_lowercase()).collect();
    squashed.windows(w.len()).any(|win| win.eq_ignore_ascii_case(w))
}

/// A path segment naming a host of another registrable domain: 3 or more labels (2 when it is
/// the sender's domain or a brand), a known public suffix, not a file name.
fn host_in_path(path: &str, own_domain: &str, sender: &str, brands: &HashSet<String>) -> Option<String> {
    const FILE_EXT: &[&str] = &["php", "htm", "html", "asp", "aspx", "cgi", "jsp", "pl", "dll", "exe", "gif", "jpg", "png", "js", "css"];
    for seg in path.split('/') {
        let seg = seg.trim_start_matches('.').trim_end_matches('.');
        let dots = seg.bytes().filter(|b| *b == b'.').count();
        if dots == 0 || !seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            continue;
        }
        let host = seg.to_ascii_lowercase();
        if dots == 1 && host != sender && !brands.contains(&host) {
            continue;
        }
        if host.rsplit('.').next().is_some_and(|ext| FILE_EXT.contains(&ext)) {
            continue;
        }
        if psl::suffix(host.as_bytes()).is_some_and(|s| s.is_known()) {
            let d = crate::urls::registrable(&host);
            if d != own_domain && d.contains('.') {
                return Some(host);
            }
        }
    }
    None
}

pub struct Sets<'a> {
    pub shorteners: &'a HashSet<String>,
    /// Brand registrable domains; the label before the suffix is what look-alikes imitate.
    pub brands: &'a HashSet<String>,
}

/// The findings for `links` of a message.
pub fn check(links: &[Link], cx: &Context<'_>, sets: &Sets<'_>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let once = |sym: &'static str, reason: String, out: &mut Vec<Finding>| {
        if !out.iter().any(|(s, _)| *s == sym) {
            out.push((sym, reason));
        }
    };
    let brand_labels: Vec<(&str, &str)> = sets.brands.iter().filter_map(|b| b.split('.').next().map(|l| (l, b.as_str()))).collect();
    let from_domain = crate::urls::registrable(&cx.from_domain.to_ascii_lowercase());
    let from_label = from_domain.split('.').next().filter(|l| !l.is_empty());
    let from_is_brand = sets.brands.contains(&from_domain);
    // The display name is a brand the address is not, and the message talks about it.
    if !cx.mailing_list && !cx.from_name.is_empty() {
        let impersonated = brand_labels.iter().find(|(label, brand)| {
            label.len() >= 4
                && *brand != from_domain
                && from_label != Some(*label)
                && leads_with(cx.from_name, label)
                && (mentions(cx.subject, label) || mentions(cx.text, label))
        });
        if let Some((_, brand)) = impersonated {
            once("PHISH_BRAND_NAME", format!("the sender calls itself {:?} but writes from {from_domain}, not {brand}", cx.from_name), &mut out);
        }
    }
    // The sender names itself (its domain's label, letters only) in the subject or display name;
    // a short label ("KEY Support Team" from key.com) only as a whole word. A sender whose own
    // domain dresses up in a protected brand's name (postbankde.com for postbank.de) claims to be
    // that brand whatever its subject says.
    let claims_sender = !cx.mailing_list
        && from_label.is_some_and(|f| {
            (f.len() >= 5 && (squash(cx.subject).contains(f) || squash(cx.from_name).contains(f)))
                || (f.len() >= 3 && (names(cx.subject, f) || names(cx.from_name, f)))
                || (!from_is_brand && brand_labels.iter().any(|(label, _)| label.len() >= 5 && f.contains(label)))
        });
    // A word of the display name (5 letters or more) that begins the sender's domain label:
    // "frost" of "My Frost E-mail Alerts" from frostbank.com.
    let display_prefix: Option<String> = if cx.mailing_list {
        None
    } else {
        from_label.and_then(|f| words(cx.from_name).into_iter().find(|w| w.len() >= 5 && f.len() > w.len() && f.starts_with(w.as_str())))
    };
    let display_prefix = display_prefix.as_deref();
    // The message dresses as the sender: it links to the sender's own site too (footers, logos).
    let links_home = !from_domain.is_empty() && links.iter().any(|l| l.domain == from_domain && !l.src);
    // The subject asks the reader to act on an account ("Verify Your Details With SouthTrust
    // Bank", "Please Restore Your Account Access").
    let subject_asks = asks_to_act_on_account(cx.subject)
        || (contains_any(cx.subject, &["account", "access", "details"]) && contains_any(cx.subject, &["restor", "verif", "updat", "suspend", "unlock", "confirm"]));
    // The subject speaks as a brand — its first word the brand's name, its second a notice
    // ("eBay Bid Confirmed", not "Microsoft Buys ..." or "Google News Alert") — in mail that is
    // not from the brand and links to a third site.
    if !cx.mailing_list {
        let sw = words(cx.subject);
        const NOTICES: &[&str] = &["bid", "confirm", "payment", "account", "verif", "invoice", "receipt", "order", "billing", "suspend", "secur", "password", "restor", "unlock", "limit"];
        let speaks_as = brand_labels.iter().find(|(label, brand)| {
            label.len() >= 4
                && *brand != from_domain
                && from_label != Some(*label)
                && sw.first().is_some_and(|w| w == label)
                && sw.get(1).is_some_and(|w| NOTICES.iter().any(|n| w.starts_with(n)))
        });
        if let Some((label, brand)) = speaks_as {
            let third = links.iter().any(|l| !l.src && l.domain != from_domain && l.domain != *brand && !sets.brands.contains(&l.domain));
            if third {
                once("PHISH_BRAND_NAME", format!("the subject speaks as {label} but the mail is from {from_domain}, not {brand}"), &mut out);
            }
        }
    }
    // The organisation the display name gives, squashed: its first two and three words
    // ("Washington Mutual Support" -> washingtonmutual, washingtonmutualsupport), 8 letters or more.
    let display_orgs: Vec<String> = if cx.mailing_list {
        Vec::new()
    } else {
        let words: Vec<String> = cx.from_name.split_whitespace().map(squash).collect();
        (2..=3.min(words.len()))
            .flat_map(|n| words.windows(n).map(|w| w.concat()))
            .filter(|o| o.len() >= 8)
            .collect()
    };
    for l in links {
        if l.src {
            // Images and scripts: only the blacklist and IP checks apply (done elsewhere).
            continue;
        }
        if let Some(t) = &l.text {
            if let Some(shown) = domain_in_text(t) {
                // A link to the sender's own site (its click tracker) is the sender's business; a
                // deceiving text shows a site the mail claims to speak for: a protected brand,
                // the sender's own domain, or one its display name or subject names.
                let shown_label = shown.split('.').next().unwrap_or("");
                let claimed = sets.brands.contains(&shown)
                    || shown == from_domain
                    || l.ip
                    || (shown_label.len() >= 3 && (names(cx.from_name, shown_label) || mentions(cx.subject, shown_label)));
                if claimed
                    && shown != l.domain
                    && !l.domain.ends_with(&format!(".{shown}"))
                    && l.domain != from_domain
                    && !redirects_to(l, &shown)
                {
                    once("PHISH_TEXT_MISMATCH", format!("a link shows {shown} but leads to {}", l.domain), &mut out);
                }
            }
        }
        if l.ip && ((l.html && !l.src) || from_is_brand || asks_for_account(l.path())) {
            once("PHISH_IP_LINK", format!("a link goes to the bare address {}", l.host), &mut out);
        } else if l.ip {
            once("URL_IP_LITERAL", format!("a link goes to the bare address {}", l.host), &mut out);
        }
        // Ports web sites commonly serve on (8080, ...) count only with a path asking to log in.
        let odd = |p: u16| !matches!(p, 80 | 443 | 8000 | 8008 | 8080 | 8081 | 8443 | 8888) || asks_for_account(l.path());
        if l.html && !l.src && l.port.is_some_and(|p| p != 80 && p != 443 && odd(p)) {
            once("PHISH_ODD_PORT", format!("a link goes to {} on port {}", l.host, l.port.unwrap_or(0)), &mut out);
        }
        // Only a host the message pretends to come from: a protected brand's, the sender's, or
        // one the display name names (redirectors and archives name all sorts of hosts).
        if l.domain != from_domain {
            if let Some(named) = host_in_path(l.path(), &l.domain, &from_domain, sets.brands) {
                let d = crate::urls::registrable(&named);
                let label = d.split('.').next().unwrap_or("");
                let named_site = l.ip || sets.brands.contains(&d) || d == from_domain || (label.len() >= 4 && names(cx.from_name, label));
                if named_site && !redirects_to(l, &d) {
                    once("PHISH_DOMAIN_IN_PATH", format!("a link to {} names {named} in its path", l.host), &mut out);
                }
            }
        }
        if l.userinfo {
            once("URL_USERINFO", format!("a link hides its host {} behind user@", l.host), &mut out);
        }
        if sets.shorteners.contains(&l.domain) || sets.shorteners.contains(&l.host) {
            once("URL_SHORTENER", format!("a link goes through the shortener {}", l.host), &mut out);
        }
        if l.form && !l.credentials {
            // A search box or a subscription form: not a harvest.
        } else if l.form && !from_domain.is_empty() && l.domain != from_domain {
            once("PHISH_FORM", format!("a form posts to {}, not to the sender's {from_domain}", l.domain), &mut out);
        } else if l.form && from_domain.is_empty() {
            once("PHISH_FORM", format!("a form posts to {}", l.domain), &mut out);
        }
        if from_is_brand
            && !cx.mailing_list
            && !l.form
            && l.domain != from_domain
            && (l.html || l.ip || asks_for_account(l.path()))
            && !redirects_to(l, &from_domain)
        {
            once("PHISH_BRAND_SENDER", format!("mail from the protected {from_domain} links to {}", l.domain), &mut out);
        } else if from_is_brand && !cx.mailing_list && l.html && !l.src && l.domain == from_domain {
            // The brand's own redirector, pointed at a bare address or a login page of a third
            // site (eBay's RedirectToDomain to 211.…/UpdateCenter/Login/); its newsletters'
            // redirects to shops and ad servers are no sign.
            let elsewhere = embedded_urls(l).find_map(|(_, d, after)| {
                let ip = d.parse::<std::net::IpAddr>().is_ok();
                (d.contains('.') && d != from_domain && !sets.brands.contains(&d) && (ip || asks_to_log_in(&after))).then_some(d)
            });
            if let Some(d) = elsewhere {
                once("PHISH_BRAND_SENDER", format!("mail from the protected {from_domain} links through its own redirector to {d}"), &mut out);
            }
        }
        if !l.src && l.domain != from_domain && !sets.brands.contains(&l.domain) {
            // A hidden folder (`/.eBay/`) or a login page in it makes the folder a disguise; a
            // brand's folder also counts in mail that claims to be that brand.
            let login = asks_for_account(l.path());
            // Phishing kits also hide in dot-folders named after the bank (`/.LaSalleBank/`).
            let folder = l.path().split('/').find(|seg| {
                let hidden = seg.starts_with('.') && !seg.eq_ignore_ascii_case(".well-known");
                let seg = seg.trim_start_matches('.');
                seg.len() >= 4
                    && (brand_labels.iter().any(|(label, brand)| {
                        seg.eq_ignore_ascii_case(label)
                            && (hidden || login || names(cx.from_name, label) || from_domain == *brand || (subject_asks && mentions(cx.text, label)))
                    }) || from_label.is_some_and(|f| f.len() >= 4 && seg.eq_ignore_ascii_case(f) && (hidden || login))
                        || (hidden && seg.len() >= 6 && seg.to_ascii_lowercase().ends_with("bank")))
            });
            if let Some(folder) = folder {
                once("PHISH_BRAND_IN_PATH", format!("a link to {} keeps its page in a folder named {folder}", l.host), &mut out);
            }
        }
        if l.obfuscated {
            once("PHISH_OBFUSCATED_URL", format!("a link to {} hides tabs or line breaks in its address", l.host), &mut out);
        }
        let same_org = |a: &str, b: &str| a.len() >= 4 && b.len() >= 4 && (a.contains(b) || b.contains(a));
        let link_label = l.domain.split('.').next().unwrap_or("");
        if claims_sender
            && !l.src
            && l.domain != from_domain
            && !from_label.is_some_and(|f| same_org(f, link_label))
            && (asks_to_log_in(l.path()) || login_host(&l.host))
            && !is_picture(l.path())
        {
            once("PHISH_ACCOUNT_ELSEWHERE", format!("mail from {from_domain} asks to log in or verify at {}", l.host), &mut out);
        } else if claims_sender
            && links_home
            && l.html
            && !l.src
            && !l.form
            && l.domain != from_domain
            && !from_label.is_some_and(|f| same_org(f, link_label))
            && !sets.brands.contains(&l.domain)
            && (l.text.as_deref().is_some_and(asks_to_act_on_account) || (subject_asks && l.text.as_deref().is_none_or(|t| t.trim().is_empty())))
        {
            // Dressed as the sender (it links home for the rest), but the button that asks for
            // the login goes elsewhere.
            once("PHISH_ACCOUNT_ELSEWHERE", format!("mail from {from_domain} links home, but its login button leads to {}", l.host), &mut out);
        } else if let Some(w) = display_prefix.filter(|w| {
            l.domain != from_domain && !l.src && login_host(&l.host) && l.host.split('.').next().is_some_and(|first| first.starts_with(w) && first.len() > w.len())
        }) {
            // The name the display name gives the sender, glued to a login word on another
            // site's host ("My Frost E-mail Alerts" from frostbank.com -> frostlogin.example).
            once("PHISH_ACCOUNT_ELSEWHERE", format!("mail from {from_domain} signed {w} sends the login to {}", l.host), &mut out);
        }
        if !l.form && !l.ip && l.domain != from_domain {
            // A clickable link whose host spells a protected brand's name as a word (between
            // dots, dashes or underscores: signin_ebay_com.example.kr), or whose domain spells
            // the sender's name as a word of another organisation's (online-banking-bank.example
            // for mail from bank.example). The same name under another suffix (yahoo.co.uk for
            // yahoo.com) is the same organisation and not a sign.
            let has_word = |s: &str, word: &str| s.split(['.', '-', '_']).any(|w| w == word);
            let reg_label = l.domain.split('.').next().unwrap_or("");
            let about = |label: &str| {
                mentions(cx.subject, label) || names(cx.from_name, label) || l.text.as_deref().is_some_and(|t| mentions(t, label))
            };
            let spelled = brand_labels
                .iter()
                .find(|(label, _)| label.len() >= 4 && *label != reg_label && has_word(&l.host, label) && about(label))
                .map(|(label, brand)| (*label, *brand))
                .or_else(|| {
                    // The sender's name as a word of another organisation's domain, or of the
                    // host of a login page there (creditunion1.cyber-branch.example/cgi-bin/update).
                    from_label
                        .filter(|f| {
                            f.len() >= 4
                                && *f != reg_label
                                && ((has_word(reg_label, f) && f.len() >= 6)
                                    || ((has_word(reg_label, f) || has_word(&l.host, f)) && (asks_for_account(l.path()) || login_host(&l.host))))
                        })
                        .map(|f| (f, from_domain.as_str()))
                })
                .or_else(|| {
                    // A brand's or the sender's whole domain leading another host
                    // (www.deutsche-bank.de.pbc.example.net).
                    // `sub` is the part before the registrable domain, ending in a dot; most
                    // links have none or `www.`, so this costs nothing for them.
                    let sub = l.host.strip_suffix(l.domain.as_str()).unwrap_or("");
                    let embedded = |d: &str| {
                        d.contains('.')
                            && sub.len() > d.len()
                            && sub.match_indices(d).any(|(i, _)| {
                                (i == 0 || sub.as_bytes()[i - 1] == b'.') && sub.as_bytes().get(i + d.len()) == Some(&b'.')
                            })
                    };
                    if sub.len() < 5 {
                        return None;
                    }
                    sets.brands.iter().map(String::as_str).chain((!from_domain.is_empty()).then_some(from_domain.as_str())).find(|d| embedded(d)).map(|d| (d, d))
                });
            if let Some((label, brand)) = spelled {
                once("PHISH_BRAND_IN_HOST", format!("a link to {} spells {label} but is not {brand}", l.host), &mut out);
            }
        }
        // Typo-squats: a link's domain one slip away from a protected brand (6 letters or more:
        // shorter names have too many honest neighbours) or from the organisation the display
        // name gives (`Deutsche Bank` linking to deutschepank.example).
        if !l.src && !l.ip && l.domain != from_domain && !sets.brands.contains(&l.domain) {
            let reg_label = l.domain.split('.').next().unwrap_or("");
            let candidates = std::iter::once(reg_label.replace('-', "")).chain(reg_label.split('-').filter(|w| w.len() >= 6).map(str::to_string));
            // The sender's own name respelled with dashes under another domain, on a login page
            // (update.comfed-bank.net for comfedbank.com).
            let respelled = reg_label.contains('-')
                && from_label.is_some_and(|f| f.len() >= 5 && reg_label.replace('-', "") == f)
                && (asks_to_log_in(l.path()) || login_host(&l.host));
            if respelled {
                once("PHISH_LOOKALIKE", format!("{} respells the sender's {from_domain}", l.domain), &mut out);
            }
            for cand in candidates {
                let brand = brand_labels.iter().find(|(b, _)| b.len() >= 6 && one_slip(&cand, b)).map(|(_, d)| d.to_string());
                let org = brand.or_else(|| display_orgs.iter().find(|o| one_slip(&cand, o)).cloned());
                if let Some(target) = org {
                    once("PHISH_LOOKALIKE", format!("{} is one letter away from {target}", l.domain), &mut out);
                    break;
                }
            }
        }
        if l.host.split('.').any(|label| label.starts_with("xn--")) && !sets.brands.contains(&l.domain) {
            for label in l.host.split('.') {
                let Some(decoded) = label.strip_prefix("xn--").and_then(punycode_decode) else { continue };
                let folded = fold_confusables(&decoded);
                if let Some((_, brand)) = brand_labels.iter().find(|(b, _)| *b == folded) {
                    once("PHISH_LOOKALIKE", format!("{} imitates {brand}", l.host), &mut out);
                }
            }
        }
    }
    // One sign per bare address: the deceptive kind replaces the plain one.
    if out.iter().any(|(s, _)| *s == "PHISH_IP_LINK") {
        out.retain(|(s, _)| *s != "URL_IP_LITERAL");
    }
    out
}

/// Whether `a` is `b` with exactly one letter changed, added, dropped or two neighbours swapped
/// (Damerau distance 1), ASCII case folded. Linear in the length.
fn one_slip(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.eq_ignore_ascii_case(b) || a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let eq = |x: u8, y: u8| x.eq_ignore_ascii_case(&y);
    let prefix = a.iter().zip(b).take_while(|(x, y)| eq(**x, **y)).count();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    let same = |x: &[u8], y: &[u8]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| eq(*p, *q));
    match ra.len().cmp(&rb.len()) {
        std::cmp::Ordering::Equal => {
            same(&ra[1..], &rb[1..]) || (ra.len() >= 2 && eq(ra[0], rb[1]) && eq(ra[1], rb[0]) && same(&ra[2..], &rb[2..]))
        }
        std::cmp::Ordering::Greater => same(&ra[1..], rb),
        std::cmp::Ordering::Less => same(ra, &rb[1..]),
    }
}

/// Letters that look like ASCII ones, folded to them (Cyrillic, Greek, Latin look-alikes and
/// digits used as letters).
fn fold_confusables(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'а' | 'α' | 'ɑ' | 'à' | 'á' | 'â' | 'ä' | 'å' | 'ā' => 'a',
            'е' | 'ε' | 'è' | 'é' | 'ê' | 'ë' | 'ē' => 'e',
            'о' | 'ο' | 'σ' | 'ò' | 'ó' | 'ô' | 'ö' | 'ø' | '0' => 'o',
            'р' | 'ρ' => 'p',
            'с' | 'ϲ' | 'ç' => 'c',
            'у' | 'ү' | 'ý' | 'ÿ' => 'y',
            'х' | 'χ' => 'x',
            'і' | 'ι' | 'í' | 'ì' | 'î' | 'ï' | 'ı' => 'i',
            '1' => 'l',
            'ѕ' => 's',
            'ԁ' => 'd',
            'һ' => 'h',
            'ј' => 'j',
            'ԛ' => 'q',
            'ԝ' | 'ѡ' => 'w',
            'ո' => 'n',
            'ｍ' | 'м' => 'm',
            'ⅼ' | 'ӏ' => 'l',
            'ν' => 'v',
            'к' | 'κ' => 'k',
            'т' | 'τ' => 't',
            'в' | 'β' => 'b',
            'г' => 'r',
            other => other.to_lowercase().next().unwrap_or(other),
        })
        .collect()
}

/// RFC 3492 Punycode decoding of one label (without `xn--`); `None` on invalid input. The idna
/// crate's decoder (already in the tree through hickory).
fn punycode_decode(input: &str) -> Option<String> {
    if input.len() > 63 {
        return None;
    }
    idna::punycode::decode_to_string(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::urls::extract;

    fn sets() -> (HashSet<String>, HashSet<String>) {
        (DEFAULT_SHORTENERS.iter().map(|s| s.to_string()).collect(), DEFAULT_BRANDS.iter().map(|s| s.to_string()).collect())
    }

    fn syms(html: &str, from: &str) -> Vec<&'static str> {
        syms_in(html, &Context { from_domain: from, ..Context::default() })
    }

    fn syms_in(html: &str, cx: &Context<'_>) -> Vec<&'static str> {
        let (s, b) = sets();
        let links = extract(cx.text, &[html], 100);
        check(&links, cx, &Sets { shorteners: &s, brands: &b }).into_iter().map(|f| f.0).collect()
    }

    #[test]
    fn punycode_round_trips_known_labels() {
        assert_eq!(punycode_decode("pypal-4ve").as_deref(), Some("pаypal"), "Cyrillic а");
        assert_eq!(punycode_decode("mnchen-3ya").as_deref(), Some("münchen"));
        assert_eq!(punycode_decode("!!"), None);
    }

    #[test]
    fn each_sign_is_found() {
        assert_eq!(syms(r#"<a href="http://evil.example/login">www.paypal.com</a>"#, "paypal.com"), vec!["PHISH_TEXT_MISMATCH", "PHISH_BRAND_SENDER"]);
        assert_eq!(syms(r#"<a href="http://evil.example/login">www.paypal.com</a>"#, "a.example"), vec!["PHISH_TEXT_MISMATCH"], "a brand shown");
        assert!(syms(r#"<a href="http://tracker.net/r?1">www.buyshop.com</a>"#, "online.example").is_empty(), "a shop the mail does not claim to be");
        let named = Context { from_domain: "mail.example", subject: "Your BuyShop order", ..Context::default() };
        assert_eq!(syms_in(r#"<a href="http://tracker.net/r?1">www.buyshop.com</a>"#, &named), vec!["PHISH_TEXT_MISMATCH"]);
        assert!(syms(r#"<a href="https://www.paypal.com/x">paypal.com</a>"#, "paypal.com").is_empty());
        assert_eq!(syms(r#"<a href="http://0x7f000001/">here</a>"#, "a.example"), vec!["PHISH_IP_LINK"]);
        assert_eq!(syms(r#"<a href="http://paypal.com@evil.example/">x</a>"#, "a.example"), vec!["URL_USERINFO"]);
        assert_eq!(syms(r#"<a href="https://xn--pypal-4ve.com/">log in</a>"#, "a.example"), vec!["PHISH_LOOKALIKE"]);
        assert_eq!(syms(r#"<a href="https://bit.ly/3xyz">x</a>"#, "a.example"), vec!["URL_SHORTENER"]);
        assert_eq!(syms(r#"<form action="https://collect.evil.example/p" method=post><input type="password" name=p></form>"#, "bank.example"), vec!["PHISH_FORM"]);
        assert_eq!(syms(r#"<form action="https://collect.evil.example/p"><input name="CardNumber"></form>"#, "bank.example"), vec!["PHISH_FORM"]);
        // A newsletter's search box posts elsewhere and asks for nothing secret.
        assert!(syms(r#"<form action="https://search.example/q"><input name="q"></form>"#, "news.example").is_empty());
        assert_eq!(syms(r#"<a href="http://signin-ebay.example.kr/">eBay sign in</a>"#, "a.example"), vec!["PHISH_BRAND_IN_HOST"]);
        assert!(syms(r#"<a href="http://signin-ebay.example.kr/">x</a>"#, "a.example").is_empty(), "the message never names eBay");
        assert_eq!(syms(r#"<a href="http://online-banking-acmebank.example/">x</a>"#, "acmebank.com"), vec!["PHISH_BRAND_IN_HOST"]);
        assert!(syms(r#"<a href="http://uk.my.yahoo.com/">x</a>"#, "yahoo.co.uk").is_empty(), "same name, other suffix");
        assert!(syms(r#"<a href="http://www.livejournal.com/">x</a>"#, "a.example").is_empty(), "live is not a word of livejournal");
        assert_eq!(syms(r#"<a href="http://www.dvd.example/">x</a>"#, "paypal.com"), vec!["PHISH_BRAND_SENDER"]);
        // The brand's own subdomains and other senders' ordinary links are not signs.
        assert!(syms(r#"<a href="https://signin.ebay.com/">x</a>"#, "ebay.com").is_empty());
        assert!(syms(r#"<a href="https://partner.example/">x</a>"#, "shop.example").is_empty());
        assert!(syms(r#"<form action="https://www.bank.example/p"></form>"#, "bank.example").is_empty());
        // A newsletter's ad on a host named like a brand, in a message not about that brand.
        assert!(syms(r#"<a href="http://outlook.4team.example/?fr=gnome">Manage your workgroup</a>"#, "news.example").is_empty());
        // Legit IDN that imitates nothing.
        assert!(syms(r#"<a href="https://xn--mnchen-3ya.de/">x</a>"#, "a.example").is_empty());
    }

    #[test]
    fn addresses_ports_paths_and_names() {
        let cx = |text| Context { from_domain: "a.example", text, ..Context::default() };
        // A bare address: deceptive when clickable in HTML or asking to log in, plain otherwise.
        assert_eq!(syms_in("", &cx("see http://216.239.39.100/search?q=cache:x")), vec!["URL_IP_LITERAL"]);
        assert_eq!(syms_in("", &cx("go to http://203.0.113.5/webscr/login.php now")), vec!["PHISH_IP_LINK"]);
        assert!(syms_in(r#"<img src="http://203.0.113.5/logo.gif">"#, &cx("")).is_empty(), "pictures are not links");
        assert_eq!(
            syms_in(r#"<a href="http://203.0.113.5/x">x</a>"#, &cx("and http://203.0.113.6/")),
            vec!["PHISH_IP_LINK"],
            "one sign for both, the deceptive one"
        );
        // Odd ports, clickable only.
        assert_eq!(syms(r#"<a href="http://logon.wamu4u.example:280/login">x</a>"#, "a.example"), vec!["PHISH_ODD_PORT"]);
        assert!(syms(r#"<a href="https://shop.example:443/">x</a>"#, "a.example").is_empty());
        assert!(syms_in("", &cx("the wiki at http://intranet.example.org:8080/")).is_empty());
        // Another site's host in the path.
        assert_eq!(
            syms(r#"<form action="http://dns.host.example.mx/signin.ebay.com/ws/eBayISAPI.php"></form>"#, "a.example"),
            vec!["PHISH_DOMAIN_IN_PATH"]
        );
        assert_eq!(
            syms(r#"<a href="http://vds.example.com/onlinebanking.bankofoklahoma.com/index.php">x</a>"#, "bankofoklahoma.com"),
            vec!["PHISH_DOMAIN_IN_PATH"],
            "the sender's own bank named in another host's path"
        );
        assert!(syms(r#"<a href="http://www.example.com/docs/v1.2.3/index.html">x</a>"#, "a.example").is_empty(), "a version is no host");
        assert!(syms(r#"<a href="http://www.example.com/a/b.c.html">x</a>"#, "a.example").is_empty(), "a file name is no host");
        assert!(syms(r#"<a href="http://www.example.com/q?u=www.other.example.org">x</a>"#, "a.example").is_empty(), "the query is not the path");
        // A display name that is a brand.
        let named = |name, subject, from| Context { from_domain: from, from_name: name, subject, ..Context::default() };
        assert_eq!(syms_in("", &named("Pay.Pal.", "Your PayPal account has been credited", "isp-q.example")), vec!["PHISH_BRAND_NAME"]);
        assert_eq!(syms_in("", &named("Accounts PayPal", "Funds deposited - paypal", "mail.example")), vec!["PHISH_BRAND_NAME"]);
        assert!(syms_in("", &named("PayPal", "Your receipt", "paypal.com")).is_empty(), "the brand itself");
        assert!(syms_in("", &named("Chase Turner", "lunch on friday?", "law.example")).is_empty(), "a name that is not about the brand");
        assert!(syms_in("", &named("Lockergnome Apple Core", "Apple news", "lockergnome.example")).is_empty(), "a newsletter about the brand");
        // A newsletter's link text names a shop, the link goes through the sender's own tracker.
        let news = Context { from_domain: "ummail4.unitedmedia.example", ..Context::default() };
        assert!(syms_in(r#"<a href="http://click.unitedmedia.example/r?x">www.dilbert.com</a>"#, &news).is_empty());
        assert!(syms(r#"<a href="http://www.memos.example:8080/story">x</a>"#, "a.example").is_empty(), "a common web port");
        assert_eq!(syms(r#"<a href="http://www.memos.example:8080/signin/">x</a>"#, "a.example"), vec!["PHISH_ODD_PORT"]);
        assert!(syms(r#"<a href="http://rd.news.example/*http://www.reuters.com/story">x</a>"#, "a.example").is_empty(), "a redirector names any host");
        let list = Context { mailing_list: true, ..named("PayPal fan", "paypal api question", "dev.example") };
        assert!(syms_in("", &list).is_empty(), "mailing-list posts are not impersonation");
        // Plain-text links from a brand: to a bare address or a login page elsewhere.
        assert_eq!(syms_in("", &Context { from_domain: "ebay.com", text: "go to http://218.38.14.138/c/index.html", ..Context::default() }), vec!["PHISH_IP_LINK", "PHISH_BRAND_SENDER"]);
        assert_eq!(syms_in("", &Context { from_domain: "ebay.com", text: "http://expo93.example.kr/ws/ebayISAPI.dll/UPdate/", ..Context::default() }), vec!["PHISH_BRAND_SENDER"]);
        assert!(syms_in("", &Context { from_domain: "apple.com", text: "my site: http://www.komtools.example/", ..Context::default() }).is_empty());
        // The sender's own domain in another host's path.
        assert_eq!(syms_in("", &Context { from_domain: "comfedbank.com", text: "http://ns.jasin.example.kr/comfedbank.com/index.htm", ..Context::default() }), vec!["PHISH_DOMAIN_IN_PATH"]);
        // An organisation naming itself sends the reader to log in elsewhere.
        let bank = Context { from_domain: "colonialbank.com", subject: "COLONIAL BANK NOTICE", ..Context::default() };
        assert_eq!(syms_in(r#"<a href="http://www.axuniverse.example/onlinebanking/CheckSession.php">log in</a>"#, &bank), vec!["PHISH_ACCOUNT_ELSEWHERE"]);
        assert!(syms_in(r#"<a href="http://www.partner.example/news/">read</a>"#, &bank).is_empty(), "no login asked");
        assert!(syms_in(r#"<a href="http://www.partner.example/accounts/bob/pic.jpg">see</a>"#, &bank).is_empty(), "a picture");
        assert_eq!(syms_in(r#"<a href="http://site-secur.informationquide.example/Personal.html">x</a>"#, &bank), vec!["PHISH_ACCOUNT_ELSEWHERE"], "a login host");
        assert_eq!(syms(r#"<a href="http://www.e-mergency.example/.LaSalleBank/index.php">x</a>"#, "washington.edu"), vec!["PHISH_BRAND_IN_PATH"], "a bank's dot-folder");
        let fool = Context { from_domain: "motleyfool.com", subject: "Motley Fool: resolutions", ..Context::default() };
        assert!(syms_in(r#"<a href="http://www.fool.example/freemaillogin.asp">x</a>"#, &fool).is_empty(), "the sender's other domain");
        assert!(
            syms_in(r#"<a href="http://www.axuniverse.example/login">x</a>"#, &Context { subject: "lunch", ..bank }).is_empty(),
            "the sender does not name itself"
        );
        // Folders named like the brand or the sender on another site.
        assert_eq!(syms_in("", &Context { from_domain: "angelar.example", text: "http://h.example.kr/.eBay/.account/Sign-In/", ..Context::default() }), vec!["PHISH_BRAND_IN_PATH"]);
        assert_eq!(syms_in("", &Context { from_domain: "paypal.com", text: "http://fox.netfield.se/manual/paypal/error.html", ..Context::default() }), vec!["PHISH_BRAND_IN_PATH"]);
        assert!(syms(r#"<a href="http://tools.example/google/">x</a>"#, "a.example").is_empty(), "a page about a brand");
        assert!(syms(r#"<a href="http://ads.example/lockergnome/x.html">x</a>"#, "lockergnome.com").is_empty(), "the sender's campaign folder");
        assert_eq!(syms(r#"<a href="http://www.hacked.example/.LaSalleBank/index.php">x</a>"#, "lasallebank.com"), vec!["PHISH_BRAND_IN_PATH"]);
        assert!(syms(r#"<a href="http://news.example/tech/paypal-ipo.html">x</a>"#, "a.example").is_empty(), "a word of a page name");
        // A whole domain leading another host; the sender's name on a login host elsewhere.
        assert_eq!(syms(r#"<a href="http://www.deutsche-bank.de.pbc.secondary03.net/mod/">x</a>"#, "deutsche-bank.de"), vec!["PHISH_BRAND_IN_HOST"]);
        assert_eq!(syms(r#"<a href="https://www.paypal.com.secure.example/">x</a>"#, "a.example"), vec!["PHISH_BRAND_IN_HOST"]);
        assert_eq!(syms(r#"<a href="https://creditunion1.cyber-branch.example/cgi-bin/hb/update.html">x</a>"#, "creditunion1.org"), vec!["PHISH_BRAND_IN_HOST"]);
        assert!(syms(r#"<a href="https://creditunion1.cyber-branch.example/news/">x</a>"#, "creditunion1.org").is_empty());
        // Typo-squats of a brand or of the display name's organisation.
        assert_eq!(syms(r#"<a href="http://www.paypai.com/">x</a>"#, "a.example"), vec!["PHISH_LOOKALIKE"]);
        let db = Context { from_domain: "deutschebanc.de", from_name: "Deutsche Bank", ..Context::default() };
        assert_eq!(syms_in(r#"<a href="http://www.deutschepank.com/">x</a>"#, &db), vec!["PHISH_LOOKALIKE"]);
        assert_eq!(syms_in(r#"<a href="http://meine-deutschebnk.com/">x</a>"#, &db), vec!["PHISH_LOOKALIKE"]);
        assert!(syms_in(r#"<a href="http://www.db.com/">x</a>"#, &db).is_empty());
        assert!(syms(r#"<a href="http://www.maple.com/">x</a>"#, "a.example").is_empty(), "apple is too short to guard");
        assert!(one_slip("washingttonmutual", "washingtonmutual") && one_slip("amazno", "amazon") && !one_slip("amazon", "amazon"));
        assert!(!one_slip("paypal", "paypalxx") && !one_slip("ebay", "abey"));
        // Hidden line breaks.
        assert_eq!(syms(r#"<a href="http://rds.yaho&#010;o.com/r">x</a>"#, "a.example"), vec!["PHISH_OBFUSCATED_URL"]);
        // A brand's employee posting to a list links wherever they like.
        let post = Context { from_domain: "adobe.com", mailing_list: true, ..Context::default() };
        assert!(syms_in(r#"<a href="http://www.xent.example/">x</a>"#, &post).is_empty());
    }

    #[test]
    fn senders_that_dress_up_and_send_the_login_elsewhere() {
        // The display name's organisation anywhere in the name ("Support Deutsche Bank").
        let db = Context { from_domain: "deutsche-bank.de", from_name: "Support Deutsche Bank", ..Context::default() };
        assert_eq!(syms_in(r#"<a href="http://meine-deutschebnk.example/">auszufullen</a>"#, &db), vec!["PHISH_LOOKALIKE"]);
        // A short sender label named as a word; the page links home, the login button does not.
        let key = Context { from_domain: "key.com", from_name: "KEY Support Team", subject: "KEY - Security Alert", ..Context::default() };
        let html = r#"<a href="http://keynetbank.example/updating/">Click here to prove your identity</a>
            <a href="http://www.key.com/useragreement">User Agreement</a>"#;
        assert_eq!(syms_in(html, &key), vec!["PHISH_ACCOUNT_ELSEWHERE"]);
        let no_home = r#"<a href="http://keynetbank.example/updating/">Click here to prove your identity</a>"#;
        assert!(syms_in(no_home, &key).is_empty(), "not dressed as the sender");
        let newsletter = r#"<a href="http://click.esp.example/r/1">Read the story</a> <a href="http://www.key.com/">home</a>"#;
        assert!(syms_in(newsletter, &key).is_empty(), "a tracker link that asks for nothing");
        let hobby = Context { from_domain: "key.com", from_name: "Monkey Club", subject: "donkey rides", ..Context::default() };
        assert!(syms_in(html, &hobby).is_empty(), "key only inside other words");
        // A sender domain wearing a brand's name (postbankde for postbank.de) asks to log in elsewhere.
        let pb = Context { from_domain: "postbankde.example", from_name: "kelton baird", subject: "Online Kunden", ..Context::default() };
        assert_eq!(syms_in(r#"<a href="http://post-auth.example/">Kunden</a>"#, &pb), vec!["PHISH_ACCOUNT_ELSEWHERE"]);
        assert!(syms_in(r#"<a href="http://news.example/">Kunden</a>"#, &pb).is_empty(), "no login page");
        // The sender's own name respelled with a dash, on a login page.
        let cf = Context { from_domain: "comfedbank.com", from_name: "Commercial Federal Bank", ..Context::default() };
        assert_eq!(syms_in(r#"<a href="http://update.comfed-bank.example/images/login/SITE/index.htm">x</a>"#, &cf), vec!["PHISH_LOOKALIKE"]);
        assert!(syms_in(r#"<a href="http://www.comfed-bank.example/about.html">x</a>"#, &cf).is_empty(), "no login page");
        assert!(asks_to_act_on_account("Verify your account") && asks_to_act_on_account("Log in here"));
        assert!(!asks_to_act_on_account("Confirm your subscription") && !asks_to_act_on_account("Read more"));
    }

    #[test]
    fn click_trackers_that_name_their_target_are_not_disguises() {
        // A shop's newsletter through its mailing company's tracker, which carries the shop's URL.
        let shop = Context { from_domain: "mailer.example", from_name: "Tesco .ie", subject: "Offers at tesco.ie", ..Context::default() };
        let tracked = r#"<a href="http://www.tracker.example/Clickthrough/1/2/*http://www.tesco.ie/offers">www.tesco.ie</a>"#;
        assert!(syms_in(tracked, &shop).is_empty(), "{:?}", syms_in(tracked, &shop));
        // The same shown site with the target only named, no scheme: the phishing kit's way.
        let kit = r#"<a href="http://evil.example/www.tesco.ie/login/">www.tesco.ie</a>"#;
        assert_eq!(syms_in(kit, &shop), vec!["PHISH_TEXT_MISMATCH", "PHISH_DOMAIN_IN_PATH"]);
        // A brand's newsletter whose tracker sends the reader back to the brand (URL-encoded).
        let apple = r#"<a href="http://www.tracker.example/routage?F=x&D=http%3A%2F%2Fstore.apple.com%2FApple">Click here</a>"#;
        assert!(syms(apple, "lists.apple.com").is_empty());
        assert_eq!(syms(r#"<a href="http://www.tracker.example/r?D=http%3A%2F%2Fevil.example%2F">Click here</a>"#, "lists.apple.com"), vec!["PHISH_BRAND_SENDER"]);
        let copied = r#"<a href="http://www.kit.example/index.php?MfcISAPICommand=ChangeFPP&ru=http://www.ebay.com">Click here</a>"#;
        assert_eq!(syms(copied, "ebay.com"), vec!["PHISH_BRAND_SENDER"], "a login link that copies the brand's return URL");
        // Long sender names as a word of another domain count without a login sign; short
        // ones (perl) have honest neighbours.
        assert_eq!(syms(r#"<a href="http://confirm-bankone.example/">x</a>"#, "bankone.com"), vec!["PHISH_BRAND_IN_HOST"]);
    }

    #[test]
    fn names_subjects_and_redirectors_that_speak_for_someone_else() {
        // A legal form does not hide the brand at the end of a display name.
        let pb = Context { from_domain: "deutschepbag.example", from_name: "Deutsche Postbank AG", subject: "Online Konto", text: "Ihre Postbank", ..Context::default() };
        assert_eq!(syms_in("", &pb), vec!["PHISH_BRAND_NAME"]);
        // The subject speaks as the brand, the mail is from someone else and links to a third site.
        let bid = Context { from_domain: "triggroup.example", from_name: "Shana Bishop", subject: "eBay Bid Confirmed: Item Number 0449332867", ..Context::default() };
        assert_eq!(syms_in(r#"<a href="http://calmer.zv5000.example/?wid=1">x</a>"#, &bid), vec!["PHISH_BRAND_NAME"]);
        assert!(syms_in(r#"<a href="http://www.ebay.com/itm/1">x</a>"#, &bid).is_empty(), "links only to the brand");
        for subject in ["Microsoft Buys XDegrees - Secure Access Company", "Google News Alert - spamassassin", "Fwd: eBay Bid Confirmed"] {
            let news = Context { subject, ..bid };
            assert!(syms_in(r#"<a href="http://news.example/a">x</a>"#, &news).is_empty(), "{subject}");
        }
        // A login host named for an update, in mail from the organisation it names.
        let cu = Context { from_domain: "creditunion.com", from_name: "Credit Union Security Department", ..Context::default() };
        assert_eq!(syms_in(r#"<a href="http://www.cuna-updatecenter.example">x</a>"#, &cu), vec!["PHISH_ACCOUNT_ELSEWHERE"]);
        // A brand's folder on another site, in mail whose subject asks to restore an account.
        let fwd = Context { from_domain: "angelar.example", subject: "[Fwd: Please Restore Your Account Access]", text: "Dear PayPal member", ..Context::default() };
        assert_eq!(syms_in(r#"<a href="http://fox.netfield.example/manual/paypal/error.html">x</a>"#, &fwd), vec!["PHISH_BRAND_IN_PATH"]);
        let talk = Context { subject: "paypal fees again", ..fwd };
        assert!(syms_in(r#"<a href="http://fox.netfield.example/manual/paypal/error.html">x</a>"#, &talk).is_empty());
        // A picture button elsewhere, in mail dressed as the sender whose subject asks to verify.
        let st = Context { from_domain: "southtrust.com", from_name: "SOUTHTRUST", subject: "Verify Your Details With SouthTrust Bank", ..Context::default() };
        let map = r#"<a href="https://www.southtrust.com/st/x">x</a><map name="m"><area shape="rect" href="http://smode11.example"></map>"#;
        assert_eq!(syms_in(map, &st), vec!["PHISH_ACCOUNT_ELSEWHERE"]);
        let monthly = Context { subject: "Your SouthTrust statement", ..st };
        assert!(syms_in(map, &monthly).is_empty());
        // The display name's word glued to a login word on another site's host.
        let frost = Context { from_domain: "frostbank.com", from_name: "My Frost E-mail Alerts", subject: "Online Access notice", ..Context::default() };
        assert_eq!(syms_in(r#"<a href="http://frostlogin.fr.funpic.example/login.htm">x</a>"#, &frost), vec!["PHISH_ACCOUNT_ELSEWHERE"]);
        assert!(syms_in(r#"<a href="http://www.frostfair.example/tickets.htm">x</a>"#, &frost).is_empty());
        // A brand's own redirector sent to a bare address (percent-encoded) or a login page;
        // not its newsletter's redirects to ad servers.
        let ebay = r#"<a href="http://cgi4.ebay.com/ws/eBayISAPI.dll?MfcISAPICommand=RedirectToDomain&DomainUrl=http%3A%2F%2F%32%31%31%2E%31%37%32%2E%39%36%2E%37%2FUpdateCenter%2FLogin%2F">x</a>"#;
        assert_eq!(syms(ebay, "ebay.com"), vec!["PHISH_BRAND_SENDER"]);
        let ad = r#"<a href="http://click3.ebay.com/1.2.0.http%3A%2F%2Fad.doubleclick.net%2Fclk%3B1">x</a>"#;
        assert!(syms(ad, "reply3.ebay.com").is_empty());
        let hidden = crate::urls::extract("", &[r#"<a href="http://r.example/?u=http%3A%2F%2F%32%31%31%2E%31%37%32%2E%39%36%2E%37%2FUp">x</a>"#], 10);
        assert_eq!(
            embedded_urls(&hidden[0]).map(|(_, d, after)| (d, after)).collect::<Vec<_>>(),
            vec![("211.172.96.7".to_string(), "/up".to_string())]
        );
        // The sender's name inside another organisation's domain needs a login sign.
        assert!(syms(r#"<a href="http://www.perl-foundation.example/donate.html">x</a>"#, "perl.org").is_empty());
        assert_eq!(syms(r#"<a href="http://www.perl-foundation.example/login/">x</a>"#, "perl.org"), vec!["PHISH_BRAND_IN_HOST"]);
    }
}
