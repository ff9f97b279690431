//! Links inside PDF attachments: the URI actions of the document (what a reader opens when a
//! link annotation, a button or the text over it is clicked), so that a phishing link sent as
//! a PDF joins the message's links and is judged as any other.
//!
//! Parsing is lopdf's (a maintained PDF library): object streams are read, page content is not
//! (text extraction is not done here). Only parts whose magic says PDF, at most `pdfs_max` a
//! message and `max_bytes` each, are parsed, a panic of the parser is caught, and at most
//! `links_max` URIs are taken from one document. Cost: one parse of the document's objects,
//! about linear in its size. It never fails a scan: a PDF that does not parse gives nothing.

use std::panic::{catch_unwind, AssertUnwindSafe};

use lopdf::Object;

/// How much PDF reading a message may cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub pdfs_max: usize,
    pub max_bytes: usize,
    pub links_max: usize,
}

/// Whether `data` is a PDF (by its magic, as the attachment check reads it).
pub fn is_pdf(data: &[u8]) -> bool {
    crate::magic::detect(data) == crate::magic::FileType::Pdf
}

/// The URIs of the PDF documents among `parts` (each once, in order).
pub fn links<'a>(parts: impl Iterator<Item = &'a [u8]>, limits: &Limits) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for data in parts.filter(|d| is_pdf(d) && d.len() <= limits.max_bytes).take(limits.pdfs_max) {
        let found = catch_unwind(AssertUnwindSafe(|| uris_of(data, limits.links_max))).unwrap_or_default();
        for u in found {
            if out.len() >= limits.links_max {
                return out;
            }
            if !out.contains(&u) {
                out.push(u);
            }
        }
    }
    out
}

fn uris_of(data: &[u8], max: usize) -> Vec<String> {
    let Ok(doc) = lopdf::Document::load_mem(data) else { return Vec::new() };
    let mut out = Vec::new();
    for obj in doc.objects.values() {
        walk(obj, 0, max, &mut out);
        if out.len() >= max {
            break;
        }
    }
    out
}

/// Nesting followed at most (a URI action sits in an annotation's /A, one or two levels down).
const DEPTH_MAX: usize = 8;

/// Collects the /URI strings of `obj` and of the dictionaries and arrays inside it.
fn walk(obj: &Object, depth: usize, max: usize, out: &mut Vec<String>) {
    if depth > DEPTH_MAX || out.len() >= max {
        return;
    }
    let dict = match obj {
        Object::Dictionary(d) => d,
        Object::Stream(s) => &s.dict,
        Object::Array(items) => {
            items.iter().for_each(|o| walk(o, depth + 1, max, out));
            return;
        }
        _ => return,
    };
    for (key, value) in dict.iter() {
        match value {
            Object::String(bytes, _) if key.as_slice() == b"URI" => {
                let uri = String::from_utf8_lossy(bytes).trim().to_string();
                if !uri.is_empty() && out.len() < max {
                    out.push(uri);
                }
            }
            _ => walk(value, depth + 1, max, out),
        }
    }
}

/// A one-page PDF with a link annotation to each of `uris` (lopdf's writer), for tests.
#[cfg(test)]
pub(crate) fn pdf_with_links(uris: &[&str]) -> Vec<u8> {
    use lopdf::{dictionary, Document, Object, StringFormat};
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let annots: Vec<Object> = uris
        .iter()
        .map(|u| {
            let action = dictionary! { "S" => "URI", "URI" => Object::String(u.as_bytes().to_vec(), StringFormat::Literal) };
            let annot = dictionary! { "Type" => "Annot", "Subtype" => "Link", "Rect" => vec![0.into(), 0.into(), 100.into(), 20.into()], "A" => action };
            doc.add_object(annot).into()
        })
        .collect();
    let page_id = doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()], "Annots" => annots });
    doc.objects.insert(pages_id, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1 }));
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("a PDF in memory");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: Limits = Limits { pdfs_max: 4, max_bytes: 10 << 20, links_max: 100 };

    #[test]
    fn the_links_of_a_pdf_are_read_once_each() {
        let a = pdf_with_links(&["https://secure-docs.example/view?doc=7", "https://other.example/"]);
        let b = pdf_with_links(&["https://secure-docs.example/view?doc=7"]);
        let got = links([&a[..], &b[..]].into_iter(), &ROOM);
        assert_eq!(got.len(), 2);
        assert!(got.contains(&"https://secure-docs.example/view?doc=7".to_string()) && got.contains(&"https://other.example/".to_string()), "{got:?}");
    }

    #[test]
    fn limits_are_kept_and_broken_documents_give_nothing() {
        let a = pdf_with_links(&["https://a.example/", "https://b.example/", "https://c.example/"]);
        assert_eq!(links([&a[..]].into_iter(), &Limits { links_max: 2, ..ROOM }).len(), 2);
        assert!(links([&a[..]].into_iter(), &Limits { max_bytes: 100, ..ROOM }).is_empty());
        assert!(links([&a[..]].into_iter(), &Limits { pdfs_max: 0, ..ROOM }).is_empty());
        // Cut anywhere, or not a PDF at all: nothing, and no panic.
        for cut in (0..a.len()).step_by(97) {
            let _ = links([&a[..cut]].into_iter(), &ROOM);
        }
        assert!(links([&b"%PDF-1.7\nnonsense"[..], b"plain text"].into_iter(), &ROOM).is_empty());
    }
}
