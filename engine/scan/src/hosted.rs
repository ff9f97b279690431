//! Pages on shared hosting and cloud storage that ask for a sign-in or show "a document":
//! `PHISH_HOSTED_PAGE`. Today's phishing puts its page where anyone can publish one for free
//! and where the host's own name is trusted (storage.googleapis.com, *.web.app, *.workers.dev,
//! *.r2.dev, IPFS gateways, form builders), so no domain of the phisher's own appears. A link
//! counts when its host is, or is under, a hosting suffix (`hosting-domains.txt` adds to
//! [`DEFAULT_HOSTING`]) and its path looks like a sign-in, account or shared-document page, or
//! names a protected brand.
//!
//! Pure: links, the hosting suffixes and the brands in, findings out. Cost: per link, one suffix
//! probe per label of its host and one pass over its path.

use std::collections::HashSet;

use crate::urls::Link;

pub type Finding = (&'static str, String);

/// Hosts where anyone can publish a page or a file (suffixes: a host matches itself and every
/// name under it).
pub const DEFAULT_HOSTING: &[&str] = &[
    "storage.googleapis.com", "firebasestorage.googleapis.com", "googleusercontent.com", "sites.google.com", "run.app",
    "web.app", "firebaseapp.com", "appspot.com", "blogspot.com", "forms.gle", "cloudfront.net", "amazonaws.com",
    "azurewebsites.net", "blob.core.windows.net", "web.core.windows.net", "workers.dev", "pages.dev", "r2.dev", "ipfs.io",
    "ipfs.dweb.link", "dweb.link", "cloudflare-ipfs.com", "gateway.pinata.cloud", "netlify.app", "vercel.app",
    "herokuapp.com", "glitch.me", "github.io", "gitbook.io", "notion.site", "weebly.com", "wixsite.com", "webflow.io",
    "square.site", "000webhostapp.com", "jotform.com", "typeform.com", "formstack.com", "surveymonkey.com", "canva.site",
    "godaddysites.com", "myportfolio.com", "framer.app", "replit.app", "onrender.com", "fly.dev", "digitaloceanspaces.com",
    "backblazeb2.com", "dropboxusercontent.com", "1drv.ms", "sharepoint.com",
];

/// Words of a path that make a page a sign-in, account or shared-document page.
const PAGE_WORDS: &[&str] = &[
    "login", "log-in", "logon", "signin", "sign-in", "sign_in", "verify", "verification", "validate", "account", "secure",
    "auth", "password", "passwd", "webmail", "owa", "office365", "o365", "outlook", "onedrive", "sharepoint", "docusign",
    "invoice", "document", "documents", "doc", "docs", "pdf", "shared", "share", "file", "files", "view", "viewer",
    "wallet", "billing", "payment", "update", "unlock", "mailbox", "voicemail", "fax", "scan", "remittance", "statement",
];

fn hosted(host: &str, hosting: &HashSet<String>) -> Option<String> {
    let mut h = host;
    loop {
        if hosting.contains(h) {
            return Some(h.to_string());
        }
        h = h.split_once('.')?.1;
    }
}

pub fn check(links: &[Link], hosting: &HashSet<String>, brands: &HashSet<String>) -> Vec<Finding> {
    for l in links.iter().filter(|l| !l.src && !l.ip) {
        let Some(suffix) = hosted(&l.host, hosting) else { continue };
        let path = l.url[l.url.find("://").map_or(0, |i| i + 3)..].split_once('/').map_or("", |x| x.1).to_ascii_lowercase();
        let words: Vec<&str> = path.split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_').filter(|w| !w.is_empty()).collect();
        // A page word as a word of the path or a part of one (`secure-document`).
        let word = words.iter().find(|w| PAGE_WORDS.contains(w) || w.split(['-', '_']).any(|p| PAGE_WORDS.contains(&p)));
        // A brand as a word of the path, or a part of one (`paypal-login`), never inside a
        // longer word (`live` in `delivery`).
        let parts: Vec<&str> = words.iter().flat_map(|w| w.split(['-', '_'])).collect();
        let brand = brands.iter().filter_map(|b| b.split('.').next()).find(|label| label.len() >= 4 && parts.contains(label));
        let why = match (word, brand) {
            (_, Some(b)) => format!("a page on {suffix} named for {b}"),
            (Some(w), None) => format!("a {w} page on {suffix}"),
            (None, None) => continue,
        };
        return vec![("PHISH_HOSTED_PAGE", format!("{why} ({})", l.host))];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::urls::parse;

    fn syms(urls: &[&str]) -> Vec<&'static str> {
        let links: Vec<Link> = urls.iter().map(|u| parse(u).unwrap()).collect();
        let hosting = DEFAULT_HOSTING.iter().map(|s| s.to_string()).collect();
        let brands = crate::phish::DEFAULT_BRANDS.iter().map(|s| s.to_string()).collect();
        check(&links, &hosting, &brands).into_iter().map(|f| f.0).collect()
    }

    #[test]
    fn sign_in_and_document_pages_on_shared_hosting() {
        assert_eq!(syms(&["https://storage.googleapis.com/bkt-19/login.html"]), vec!["PHISH_HOSTED_PAGE"]);
        assert_eq!(syms(&["https://pub-4f1e.r2.dev/secure-document/index.html"]), vec!["PHISH_HOSTED_PAGE"]);
        assert_eq!(syms(&["https://office-verify-7c1.web.app/"]), Vec::<&str>::new(), "a host's own name is not its path");
        assert_eq!(syms(&["https://x.workers.dev/microsoft/"]), vec!["PHISH_HOSTED_PAGE"], "a brand in the path");
        assert_eq!(syms(&["https://ipfs.io/ipfs/bafybeih/owa_signin.html"]), vec!["PHISH_HOSTED_PAGE"]);
    }

    #[test]
    fn ordinary_links_to_hosting_or_sign_in_pages_elsewhere() {
        // A project page on GitHub Pages, a blog post, a picture in a bucket.
        assert!(syms(&["https://someone.github.io/project/"]).is_empty());
        assert!(syms(&["https://recipes.blogspot.com/2024/05/bread.html"]).is_empty());
        assert!(syms(&["https://storage.googleapis.com/bkt/cat.png"]).is_empty());
        // A brand's name only as a whole word: `live` is not in `delivery`.
        assert!(syms(&["https://tracking.netlify.app/delivery/2024"]).is_empty());
        assert_eq!(syms(&["https://x.netlify.app/paypal-review/"]), vec!["PHISH_HOSTED_PAGE"]);
        // A sign-in page on the company's own site is not hosted.
        assert!(syms(&["https://www.shop.example/login"]).is_empty());
        // A lookalike suffix is not the host.
        assert!(syms(&["https://notweb.app.example/login"]).is_empty());
    }
}
