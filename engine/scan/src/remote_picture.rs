//! A body that is one remote picture: the message says nothing in text, and shows a picture
//! fetched from the web when opened (so no filter reads what it says, and opening it tells the
//! sender the address is alive). Each a symbol:
//! - `BODY_REMOTE_IMAGE`: HTML with under `html_short_chars` characters of visible text and at
//!   least one picture loaded from a web address, and no picture of its own attached;
//! - `BODY_IMAGE_HOST`: the same, with the picture on a public image host (imgur.com,
//!   zupimages.net, …), where anyone can put one without a site of their own.
//!
//! Pure: the parsed message's counts and text, its links and the image-host set in, findings
//! out. Cost: one pass over the links.

use std::collections::HashSet;

use crate::urls::Link;

pub type Finding = (&'static str, String);

/// Public image hosts known without configuration (registrable domains; more come from
/// `image-hosts.txt`).
pub const DEFAULT_IMAGE_HOSTS: &[&str] = &[
    "imgur.com", "zupimages.net", "postimg.cc", "postimages.org", "ibb.co", "imgbb.com", "imageshack.com", "photobucket.com",
    "tinypic.com", "imgbox.com", "prnt.sc", "gyazo.com", "imagebam.com", "pixhost.to", "funkyimg.com", "servimg.com",
    "hostingpics.net", "casimages.com", "imgflip.com", "freeimage.host", "img.ly",
];

/// What the check reads of a message.
pub struct Body<'a> {
    pub html_parts: usize,
    /// Characters of visible text (the subject left out).
    pub visible_chars: usize,
    /// Pictures attached or inline in the message itself.
    pub own_pictures: usize,
    pub links: &'a [Link],
    /// Under this many visible characters the body says nothing (`heuristics.html_short_chars`).
    pub short_chars: usize,
}

impl<'a> Body<'a> {
    /// What the check reads of a parsed message, its attachments and links.
    pub fn of(p: &crate::mime::Parsed<'_>, atts: &[crate::mime::Attachment<'_>], links: &'a [Link], short_chars: usize) -> Body<'a> {
        Body {
            html_parts: p.html_parts,
            visible_chars: p.text.chars().count().saturating_sub(p.subject.chars().count()),
            own_pictures: atts.iter().filter(|a| crate::magic::detect(a.data).is_image()).count(),
            links,
            short_chars,
        }
    }
}

pub fn check(b: &Body<'_>, hosts: &HashSet<String>) -> Vec<Finding> {
    let mut out = Vec::new();
    if b.html_parts == 0 || b.visible_chars >= b.short_chars || b.own_pictures > 0 {
        return out;
    }
    let remote: Vec<&Link> = b.links.iter().filter(|l| l.src && (l.url.starts_with("http://") || l.url.starts_with("https://"))).collect();
    let Some(first) = remote.first() else { return out };
    out.push(("BODY_REMOTE_IMAGE", format!("the body is a picture from {} with {} characters of text", first.host, b.visible_chars)));
    if let Some(h) = remote.iter().find(|l| hosts.contains(&l.domain)) {
        out.push(("BODY_IMAGE_HOST", format!("the picture is on the public image host {}", h.domain)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::parse;

    fn syms(raw: &str) -> Vec<&'static str> {
        let p = parse(raw.as_bytes(), 1 << 20, 100);
        let atts = p.attachments();
        let html = p.html();
        let links = crate::urls::links_of(&p.text, &html, &atts, 100);
        let body = Body::of(&p, &atts, &links, 50);
        let hosts = DEFAULT_IMAGE_HOSTS.iter().map(|s| s.to_string()).collect();
        check(&body, &hosts).into_iter().map(|f| f.0).collect()
    }

    const HEAD: &str = "From: a@a.example\r\nTo: b@b.example\r\nSubject: Your parcel\r\nContent-Type: text/html\r\n\r\n";

    #[test]
    fn one_remote_picture_and_no_text() {
        let m = format!("{HEAD}<html><body><a href=\"http://track.example/c\"><img src=\"https://i.imgur.com/AbC123.png\"></a></body></html>\r\n");
        assert_eq!(syms(&m), vec!["BODY_REMOTE_IMAGE", "BODY_IMAGE_HOST"]);
        let m = format!("{HEAD}<p>Hi</p><img src=\"http://cdn.shop.example/banner.jpg\">\r\n");
        assert_eq!(syms(&m), vec!["BODY_REMOTE_IMAGE"]);
    }

    #[test]
    fn text_a_picture_of_its_own_or_no_picture_are_nothing() {
        let text = "We have received your order and will ship it on Monday. Thank you for shopping with us.";
        assert!(syms(&format!("{HEAD}<p>{text}</p><img src=\"https://i.imgur.com/x.png\">\r\n")).is_empty());
        assert!(syms(&format!("{HEAD}<p>Hello</p>\r\n")).is_empty());
        // A picture referenced inside the message (cid:) is not remote.
        assert!(syms(&format!("{HEAD}<img src=\"cid:part1\">\r\n")).is_empty());
        // Plain text is not a picture body, whatever it links to.
        let plain = "From: a@a.example\r\nSubject: s\r\n\r\nhttps://i.imgur.com/x.png\r\n";
        assert!(syms(plain).is_empty());
    }
}
