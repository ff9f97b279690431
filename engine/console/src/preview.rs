//! A held message's HTML made safe to look at: the first HTML body part, cleaned by ammonia's
//! allow-list sanitiser, as a document of its own that the message page shows in a sandboxed
//! frame.
//!
//! What the cleaned document keeps: text, layout (tables, lists, headings, fonts), the `style`
//! attribute with properties that cannot fetch anything, and the message's own inline images
//! (`cid:` references to its image parts, checked by their magic bytes, as `data:` URIs).
//! What it never keeps: scripts, event handlers, forms, frames, `<style>` sheets, anything that
//! loads from the network (remote images, tracking pixels, CSS `url()`), and links' targets —
//! a link's text stays, its target is listed beside the frame as text, never clickable, since a
//! held message is suspected phishing.
//!
//! The sanitiser is one layer; [`CSP`] is the other: the document is served with a policy that
//! allows no script and no fetch but `data:` images, in a `sandbox` (a unique origin), so a
//! sanitiser bug still loads nothing remote and runs nothing.
//!
//! Cost: one html5ever parse and serialisation of at most `console.preview_max_kb` of HTML
//! (a larger part is cut there), plus base64 of the inline images it references.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use mxguard_scan::magic::{self, FileType};
use mxguard_scan::mime::Parsed;

/// The cleaned document's Content-Security-Policy: nothing but inline styles and `data:` images,
/// sandboxed (no scripts, no forms, no top navigation, a unique origin), framed only by the
/// console itself.
pub const CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; form-action 'none'; base-uri 'none'; frame-ancestors 'self'";

/// An inline image is embedded only up to this size (a message's images are already bounded by
/// the message size; this keeps one page from carrying megabytes of base64).
const INLINE_IMAGE_MAX: usize = 1 << 20;

/// What the preview of one message holds.
#[derive(Debug, Default)]
pub struct Preview {
    /// The cleaned HTML document, when the message has an HTML part.
    pub html: Option<String>,
    /// Images that would have been fetched from the network, removed.
    pub remote_images: usize,
    /// The HTML part was longer than the limit and was cut.
    pub cut: bool,
}

/// `console.preview_max_kb` in bytes: where [`of`] cuts an HTML part in the console and API.
pub fn max_bytes() -> usize {
    mxguard_tuning::CONSOLE_PREVIEW_MAX_KB.get_u64() as usize * 1024
}

/// Cleans the first HTML part of the parsed message, cutting it at `max_bytes`.
pub fn of(parsed: &Parsed, max_bytes: usize) -> Preview {
    let Some(html) = parsed.html().into_iter().next() else { return Preview::default() };
    let cut = html.len() > max_bytes;
    let html = &html[..mxguard_scan::mime::floor_char_boundary(html, max_bytes)];
    let images: HashMap<String, String> = parsed
        .attachments()
        .into_iter()
        .filter_map(|a| {
            let cid = a.content_id?.trim().trim_start_matches('<').trim_end_matches('>').to_ascii_lowercase();
            let mime = match magic::detect(a.data) {
                FileType::Png => "image/png",
                FileType::Jpeg => "image/jpeg",
                FileType::Gif => "image/gif",
                _ => return None,
            };
            (a.data.len() <= INLINE_IMAGE_MAX)
                .then(|| (cid, format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(a.data))))
        })
        .collect();
    let (body, remote_images) = clean(html, images);
    Preview {
        html: Some(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><style>body{{font-family:sans-serif;margin:8px;overflow-wrap:anywhere}}img{{max-width:100%;height:auto}}a{{color:#06c;text-decoration:underline;cursor:not-allowed}}</style></head><body>{body}</body></html>"
        )),
        remote_images,
        cut,
    }
}

/// Style properties that draw but never fetch (no `background`, `background-image`,
/// `list-style-image`, `content`, `cursor`, `behavior`, whose values can be URLs).
const STYLE_PROPERTIES: &[&str] = &[
    "color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight", "font-variant",
    "line-height", "letter-spacing", "word-spacing", "text-align", "text-decoration", "text-transform", "text-indent",
    "vertical-align", "white-space", "direction", "margin", "margin-top", "margin-right", "margin-bottom",
    "margin-left", "padding", "padding-top", "padding-right", "padding-bottom", "padding-left", "border",
    "border-top", "border-right", "border-bottom", "border-left", "border-color", "border-style", "border-width",
    "border-collapse", "border-spacing", "border-radius", "width", "height", "max-width", "min-width",
    "max-height", "min-height", "display", "float", "clear", "list-style-type", "table-layout",
];

/// The sanitised body, and how many remote images were dropped.
fn clean(html: &str, images: HashMap<String, String>) -> (String, usize) {
    let remote = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&remote);
    let mut b = ammonia::Builder::default();
    b.add_tags(["font", "center", "big"])
        .add_generic_attributes(["style", "align", "valign", "bgcolor", "width", "height", "dir"])
        .add_tag_attributes("font", ["color", "size", "face"])
        .add_tag_attributes("table", ["border", "cellpadding", "cellspacing"])
        .add_tag_attributes("img", ["alt", "width", "height", "border"])
        .filter_style_properties(STYLE_PROPERTIES.iter().copied().collect())
        // `cid` passes the scheme check so that the filter below can replace it by its image.
        .url_schemes(["http", "https", "mailto", "cid"].into_iter().collect())
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(None)
        .attribute_filter(move |element, attribute, value| match (element, attribute) {
            ("img", "src") => {
                let cid = value.get(..4).filter(|s| s.eq_ignore_ascii_case("cid:")).map(|_| value[4..].to_ascii_lowercase());
                match cid.and_then(|c| images.get(&c)) {
                    Some(data) => Some(Cow::Owned(data.clone())),
                    None => {
                        counted.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                }
            }
            // Links keep their text only; the targets are listed beside the frame.
            (_, "href") | (_, "src") | (_, "cite") | (_, "longdesc") | (_, "srcset") => None,
            _ => Some(Cow::Borrowed(value)),
        });
    let body = b.clean(html).to_string();
    (body, remote.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(html: &str) -> Vec<u8> {
        format!("From: a@b.test\r\nTo: c@d.test\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n").into_bytes()
    }

    fn cleaned(html: &str) -> Preview {
        preview(&message(html), 1 << 20)
    }

    fn preview(raw: &[u8], max: usize) -> Preview {
        of(&mxguard_scan::parse(raw), max)
    }

    #[test]
    fn scripts_handlers_forms_and_frames_go() {
        let p = cleaned(
            "<p onclick=\"steal()\">Hello <b>you</b></p><script>alert(1)</script><iframe src=\"https://x.test/\"></iframe>\
             <form action=\"https://evil.test/\"><input name=\"password\"></form><a href=\"javascript:alert(1)\">j</a>\
             <svg onload=\"alert(1)\"></svg><style>body{background:url(https://t.test/p.png)}</style>",
        );
        let h = p.html.unwrap();
        for bad in ["script", "onclick", "alert", "iframe", "form", "input", "evil.test", "javascript", "onload", "t.test", "url("] {
            assert!(!h.contains(bad), "{bad} left in {h}");
        }
        assert!(h.contains("<p>Hello <b>you</b></p>"), "{h}");
    }

    #[test]
    fn remote_images_and_css_urls_are_removed_and_counted() {
        let p = cleaned(
            "<img src=\"https://track.test/pixel.gif\" width=\"1\"><img src=\"//track.test/p2\">\
             <div style=\"color: red; background-image: url(https://track.test/bg.png); background: url(https://track.test/b)\">x</div>\
             <img src=\"cid:missing@x\">",
        );
        let h = p.html.unwrap();
        assert!(!h.contains("track.test"), "{h}");
        assert!(h.contains("color:red"), "{h}");
        // The protocol-relative one is refused as relative before the filter sees it; the
        // absolute and the unknown cid are counted.
        assert!(p.remote_images >= 2, "{}", p.remote_images);
    }

    #[test]
    fn links_keep_their_text_but_lose_their_target() {
        let h = cleaned("<a href=\"https://phish.test/login\">https://bank.test/</a>").html.unwrap();
        assert!(h.contains("https://bank.test/"), "{h}");
        assert!(!h.contains("phish.test") && !h.contains("href"), "{h}");
    }

    #[test]
    fn inline_images_are_embedded_when_they_are_images() {
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\x01\0\x18\xdd\x8d\xb4\0\0\0\0IEND\xaeB`\x82";
        let b64 = base64::engine::general_purpose::STANDARD.encode(PNG);
        let raw = format!(
            "From: a@b.test\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/html\r\n\r\n<p>logo <img src=\"cid:Logo@X\"> fake <img src=\"cid:fake@x\"></p>\r\n\
             --b\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n\
             --b\r\nContent-Type: image/png\r\nContent-ID: <fake@x>\r\n\r\n<svg onload=alert(1)>\r\n--b--\r\n"
        );
        let p = preview(raw.as_bytes(), 1 << 20);
        let h = p.html.unwrap();
        assert!(h.contains(&format!("src=\"data:image/png;base64,{b64}\"")), "{h}");
        assert_eq!(h.matches("<img").count(), 2, "{h}");
        assert_eq!(h.matches("data:").count(), 1, "the part that is not a PNG is not embedded: {h}");
        assert_eq!(p.remote_images, 1);
    }

    #[test]
    fn text_only_mail_has_no_html_preview_and_long_html_is_cut() {
        let raw = b"From: a@b.test\r\nSubject: s\r\n\r\nplain text\r\n";
        assert!(preview(raw, 1 << 20).html.is_none());
        let long = format!("<p>{}</p>", "\u{e9}".repeat(5000));
        let p = preview(&message(&long), 1001);
        assert!(p.cut);
        assert!(p.html.unwrap().contains('\u{e9}'));
    }
}
