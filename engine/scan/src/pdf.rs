//! What a PDF attachment carries that a phishing check must see: the URI actions of the document
//! (what a reader opens when a link annotation, a button or the text over it is clicked), the
//! text of its first pages (a link printed but not clickable is still a link a victim types),
//! and the pictures of those pages (a QR code printed in a PDF; `qr.rs` reads them).
//!
//! Parsing is lopdf's (a maintained PDF library). Only parts whose magic says PDF, at most
//! `pdfs_max` a message and `max_bytes` each, are parsed; at load, each object or
//! cross-reference stream may inflate to [`LOAD_INFLATE_MAX`], a document may have
//! [`OBJECT_STREAMS_MAX`] object streams (counted in its bytes before parsing) and keeps at most
//! [`NODES_MAX`] objects, so a small compressed file cannot grow into gigabytes of objects, and a
//! document of more than [`SYNTAX_MAX`] bytes of object syntax is not read; a page's content and each picture are
//! inflated within their own bounds. A panic of the parser is caught. Cost: one parse of the
//! document's objects (about linear in its size), the content of `pages_max` pages, and the
//! pictures asked for. It never fails a scan: a PDF that does not parse gives nothing.

use std::panic::{catch_unwind, AssertUnwindSafe};

use lopdf::{Document, LoadOptions, Object};

/// Bytes one object or cross-reference stream may inflate to while a document loads.
pub const LOAD_INFLATE_MAX: usize = 1 << 20;
/// Object streams a document may have to be read at all (each up to [`LOAD_INFLATE_MAX`]).
pub const OBJECT_STREAMS_MAX: usize = 64;
/// Bytes a page's content may inflate to for its text to be read.
pub const PAGE_INFLATE_MAX: usize = 4 << 20;
/// Bytes of text taken from one document.
pub const TEXT_MAX: usize = 64 << 10;

/// How much PDF reading a message may cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub pdfs_max: usize,
    pub max_bytes: usize,
    pub links_max: usize,
    /// The first pages of a document whose text and pictures are read.
    pub pages_max: usize,
    /// Pictures taken at most, over all documents (0: none are decoded).
    pub pictures_max: usize,
    /// A picture of more pixels than this (width × height, from its dictionary) is not taken.
    pub max_pixels: u64,
}

/// A picture of a page, as far as it is cheap to have it: a JPEG as stored (DCTDecode), or the
/// grey levels of an 8-bit or 1-bit grey or RGB picture stored plain or inflated (Flate, LZW,
/// run-length, ASCII filters). Other encodings (JPEG 2000, JBIG2, CCITT fax, indexed colour) are
/// left alone.
#[derive(Debug, Clone, PartialEq)]
pub enum Picture {
    Jpeg(Vec<u8>),
    Grey { width: usize, height: usize, pixels: Vec<u8> },
}

/// What the PDF documents of a message carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contents {
    /// URIs of link actions, each once, in order.
    pub links: Vec<String>,
    /// The text of the first pages, each document's after the last's (at most [`TEXT_MAX`] a
    /// document).
    pub text: String,
    pub pictures: Vec<Picture>,
}

/// Whether a raw message may hold a PDF part: the base64 of `%PDF-` appears in it. Cheap (one
/// memmem pass): the gateway scans such mail off the core, since reading a PDF takes milliseconds.
pub fn may_hold_pdf(raw: &[u8]) -> bool {
    memchr::memmem::find(raw, b"JVBERi0").is_some()
}

/// Whether `data` is a PDF (by its magic, as the attachment check reads it).
pub fn is_pdf(data: &[u8]) -> bool {
    crate::magic::detect(data) == crate::magic::FileType::Pdf
}

/// The URIs of the PDF documents among `parts` (each once, in order).
pub fn links<'a>(parts: impl Iterator<Item = &'a [u8]>, limits: &Limits) -> Vec<String> {
    read(parts, &Limits { pages_max: 0, pictures_max: 0, ..*limits }).links
}

/// Reads the PDF documents among `parts`.
pub fn read<'a>(parts: impl Iterator<Item = &'a [u8]>, limits: &Limits) -> Contents {
    let mut out = Contents::default();
    for data in parts.filter(|d| is_pdf(d) && d.len() <= limits.max_bytes).take(limits.pdfs_max) {
        let room = limits.pictures_max.saturating_sub(out.pictures.len());
        let one = catch_unwind(AssertUnwindSafe(|| read_one(data, limits, room))).unwrap_or_default();
        for u in one.links {
            if out.links.len() < limits.links_max && !out.links.contains(&u) {
                out.links.push(u);
            }
        }
        if !one.text.is_empty() {
            out.text.push_str(&one.text);
            out.text.push('\n');
        }
        out.pictures.extend(one.pictures);
    }
    out
}

thread_local! {
    /// Objects (every array item, dictionary value and stream counted) the document being loaded
    /// on this thread may still keep; see [`keep_within_budget`].
    static NODES_LEFT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The objects of a document kept at most, counting each array item and dictionary value (about
/// 100–200 bytes each in memory). A page of a real document has tens to hundreds. Measured: a
/// 75 KB file of 64 object streams, each an array of 520,000 zeros, took 4 GB to load without
/// this bound and 64 object streams; with them, 0.14 GB above the scanner's own.
pub const NODES_MAX: usize = 500_000;

/// Nodes of `obj`, itself included (counting stops once past `limit`).
fn nodes(obj: &Object, limit: usize) -> usize {
    let mut n = 1;
    let mut stack: Vec<&Object> = vec![obj];
    while let Some(o) = stack.pop() {
        match o {
            Object::Array(a) => {
                n += a.len();
                stack.extend(a.iter());
            }
            Object::Dictionary(d) => {
                n += d.len();
                stack.extend(d.iter().map(|(_, v)| v));
            }
            Object::Stream(s) => {
                n += s.dict.len();
                stack.extend(s.dict.iter().map(|(_, v)| v));
            }
            _ => {}
        }
        if n > limit {
            return n;
        }
    }
    n
}

/// lopdf's load filter (a plain `fn`, hence the thread-local budget): keeps each object while the
/// document's budget of [`NODES_MAX`] lasts, and drops the rest (those objects are then missing,
/// as in a damaged file), so a small file of compressed object streams full of tiny objects
/// cannot grow into gigabytes.
fn keep_within_budget(id: lopdf::ObjectId, obj: &mut Object) -> Option<(lopdf::ObjectId, Object)> {
    let left = NODES_LEFT.with(|c| c.get());
    let n = nodes(obj, left);
    if n > left {
        NODES_LEFT.with(|c| c.set(0));
        return None;
    }
    NODES_LEFT.with(|c| c.set(left - n));
    // lopdf keeps `obj` itself for an object of the file and the returned copy for a member of
    // an object stream, so the object must stay in place and be returned too.
    Some((id, obj.clone()))
}

/// Bytes of a document's object syntax (all but its streams' contents) read at most: the parser
/// holds a few hundred bytes of memory for each item of an array or dictionary while it reads
/// one, so 2 MiB of syntax may cost a few hundred MB at worst (measured: a 9.8 MB document of one
/// array of zeros took 1.3 GB). Real documents are mostly stream contents (pages, fonts,
/// pictures); their syntax is a few kilobytes a page.
pub const SYNTAX_MAX: usize = 2 << 20;

/// The bytes of `data` outside its streams' contents (between a `stream` keyword and the next
/// `endstream`), found by two memmem passes; a cheap upper bound on what the parser reads as
/// objects.
fn syntax_bytes(data: &[u8]) -> usize {
    let mut inside = 0;
    let mut at = 0;
    while let Some(i) = memchr::memmem::find(&data[at..], b"stream") {
        let start = at + i + b"stream".len();
        // `endstream` (an end without its start) and names such as `/ObjStm`'s neighbours are
        // not a stream's start.
        if at + i >= 3 && &data[at + i - 3..at + i] == b"end" {
            at = start;
            continue;
        }
        let Some(j) = memchr::memmem::find(&data[start..], b"endstream") else { break };
        inside += j;
        at = start + j + b"endstream".len();
    }
    data.len() - inside
}

fn load(data: &[u8]) -> Option<Document> {
    if memchr::memmem::find_iter(data, b"/ObjStm").count() > OBJECT_STREAMS_MAX || syntax_bytes(data) > SYNTAX_MAX {
        return None;
    }
    NODES_LEFT.with(|c| c.set(NODES_MAX));
    let options = LoadOptions { max_decompressed_size: Some(LOAD_INFLATE_MAX), filter: Some(keep_within_budget), ..LoadOptions::default() };
    Document::load_mem_with_options(data, options).ok()
}

fn read_one(data: &[u8], limits: &Limits, pictures_max: usize) -> Contents {
    let Some(doc) = load(data) else { return Contents::default() };
    let mut out = Contents::default();
    for obj in doc.objects.values() {
        walk(obj, 0, limits.links_max, &mut out.links);
        if out.links.len() >= limits.links_max {
            break;
        }
    }
    if limits.pages_max == 0 {
        return out;
    }
    let pages: Vec<(u32, lopdf::ObjectId)> = doc.get_pages().into_iter().take(limits.pages_max).collect();
    let numbers: Vec<u32> = pages.iter().map(|p| p.0).collect();
    for chunk in doc.extract_text_chunks_with_limit(&numbers, PAGE_INFLATE_MAX).into_iter().flatten() {
        if out.text.len() + chunk.len() > TEXT_MAX {
            let mut end = TEXT_MAX.saturating_sub(out.text.len()).min(chunk.len());
            while !chunk.is_char_boundary(end) {
                end -= 1;
            }
            out.text.push_str(&chunk[..end]);
            break;
        }
        out.text.push_str(&chunk);
    }
    for (_, id) in pages {
        if out.pictures.len() >= pictures_max {
            break;
        }
        let Ok(images) = doc.get_page_images(id) else { continue };
        for img in images {
            if out.pictures.len() >= pictures_max {
                break;
            }
            if let Some(p) = picture(&doc, &img, limits.max_pixels) {
                out.pictures.push(p);
            }
        }
    }
    out
}

/// One page picture, when it is of a kind [`Picture`] holds and within `max_pixels`.
fn picture(doc: &Document, img: &lopdf::xobject::PdfImage<'_>, max_pixels: u64) -> Option<Picture> {
    let (w, h) = (usize::try_from(img.width).ok()?, usize::try_from(img.height).ok()?);
    if w == 0 || h == 0 || (w as u64).saturating_mul(h as u64) > max_pixels {
        return None;
    }
    let filters = img.filters.as_deref().unwrap_or(&[]);
    if filters.len() == 1 && filters[0] == "DCTDecode" {
        return Some(Picture::Jpeg(img.content.to_vec()));
    }
    if filters.iter().any(|f| !matches!(f.as_str(), "FlateDecode" | "LZWDecode" | "RunLengthDecode" | "ASCII85Decode" | "ASCIIHexDecode")) {
        return None;
    }
    // The colour space may be a reference to a name (or to an ICC-based array).
    let space = match img.origin_dict.get(b"ColorSpace").ok()? {
        Object::Reference(id) => doc.get_object(*id).ok()?,
        o => o,
    };
    let channels = match space {
        Object::Name(n) => channels_of_name(n)?,
        Object::Array(a) if a.first().and_then(|o| o.as_name().ok()) == Some(b"ICCBased") => {
            let n = a.get(1).and_then(|o| o.as_reference().ok()).and_then(|id| doc.get_object(id).ok()).and_then(|o| o.as_stream().ok())?.dict.get(b"N").ok()?.as_i64().ok()?;
            match n {
                1 => 1,
                3 => 3,
                _ => return None,
            }
        }
        _ => return None,
    };
    let bits = img.bits_per_component.unwrap_or(8);
    let row = match bits {
        8 => w.checked_mul(channels)?,
        1 if channels == 1 => w.div_ceil(8),
        _ => return None,
    };
    let need = row.checked_mul(h)?;
    let stream = doc.get_object(img.id).ok()?.as_stream().ok()?;
    let raw = stream.decompressed_content_with_limit(need).ok()?;
    if raw.len() < need {
        return None;
    }
    let mut pixels = Vec::with_capacity(w * h);
    for y in 0..h {
        let line = &raw[y * row..(y + 1) * row];
        match (bits, channels) {
            (1, _) => pixels.extend((0..w).map(|x| if line[x / 8] >> (7 - x % 8) & 1 == 1 { 255 } else { 0 })),
            (_, 1) => pixels.extend_from_slice(line),
            _ => pixels.extend(line.chunks_exact(3).map(|c| ((u32::from(c[0]) * 77 + u32::from(c[1]) * 150 + u32::from(c[2]) * 29) >> 8) as u8)),
        }
    }
    Some(Picture::Grey { width: w, height: h, pixels })
}

fn channels_of_name(n: &[u8]) -> Option<usize> {
    match n {
        b"DeviceGray" | b"CalGray" | b"G" => Some(1),
        b"DeviceRGB" | b"CalRGB" | b"RGB" => Some(3),
        _ => None,
    }
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
                if !uri.is_empty() && out.len() < max && !out.contains(&uri) {
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
    pdf_with(uris, "", &[])
}

/// How a test picture is stored in a PDF.
#[cfg(test)]
#[derive(Clone, Copy)]
pub(crate) enum Stored {
    /// 8-bit grey, Flate-compressed.
    Grey8,
    /// 1 bit a pixel, Flate-compressed.
    Grey1,
    /// 8-bit RGB, uncompressed.
    Rgb8,
    /// As a JPEG (DCTDecode).
    Jpeg,
}

/// A one-page PDF with a link annotation to each of `uris`, `text` shown on the page (Helvetica),
/// and each grey picture of `pictures` drawn on it, stored as asked (lopdf's writer), for tests.
#[cfg(test)]
pub(crate) fn pdf_with(uris: &[&str], text: &str, pictures: &[(&image::GrayImage, Stored)]) -> Vec<u8> {
    use lopdf::{dictionary, Document, Object, Stream, StringFormat};
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
    let font = doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding" });
    let mut xobjects = lopdf::Dictionary::new();
    let mut content = String::new();
    for (i, (img, how)) in pictures.iter().enumerate() {
        let (w, h) = (img.width() as i64, img.height() as i64);
        let mut dict = dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => w, "Height" => h, "BitsPerComponent" => 8, "ColorSpace" => "DeviceGray" };
        let stream = match how {
            Stored::Grey8 => {
                let mut s = Stream::new(dict, img.as_raw().clone());
                s.compress().unwrap();
                s
            }
            Stored::Grey1 => {
                dict.set("BitsPerComponent", 1);
                let row = (w as usize).div_ceil(8);
                let mut bits = vec![0u8; row * h as usize];
                for (x, y, p) in img.enumerate_pixels() {
                    if p.0[0] >= 128 {
                        bits[y as usize * row + x as usize / 8] |= 0x80 >> (x % 8);
                    }
                }
                let mut s = Stream::new(dict, bits);
                s.compress().unwrap();
                s
            }
            Stored::Rgb8 => {
                dict.set("ColorSpace", "DeviceRGB");
                Stream::new(dict, img.as_raw().iter().flat_map(|&g| [g, g, g]).collect()).with_compression(false)
            }
            Stored::Jpeg => {
                dict.set("Filter", "DCTDecode");
                let mut jpeg = Vec::new();
                img.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
                Stream::new(dict, jpeg).with_compression(false)
            }
        };
        let id = doc.add_object(stream);
        xobjects.set(format!("Im{i}"), id);
        content.push_str(&format!("q {w} 0 0 {h} 0 {} cm /Im{i} Do Q\n", 300 * i));
    }
    if !text.is_empty() {
        content.push_str(&format!("BT /F1 12 Tf 72 700 Td ({}) Tj ET\n", text.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)")));
    }
    let contents = doc.add_object(Stream::new(lopdf::Dictionary::new(), content.into_bytes()));
    let resources = dictionary! { "Font" => dictionary! { "F1" => font }, "XObject" => xobjects };
    let page_id = doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()], "Annots" => annots, "Resources" => resources, "Contents" => contents });
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

    const ROOM: Limits = Limits { pdfs_max: 4, max_bytes: 10 << 20, links_max: 100, pages_max: 4, pictures_max: 4, max_pixels: 4_000_000 };

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
    #[test]
    fn a_link_printed_in_the_text_is_read() {
        let a = pdf_with(&[], "Open https://secure-docs.example/view?doc=7 to sign (today)", &[]);
        let got = read([&a[..]].into_iter(), &ROOM);
        assert!(got.links.is_empty());
        assert!(got.text.contains("https://secure-docs.example/view?doc=7"), "{:?}", got.text);
        // Pages past pages_max are not read; 0 reads only the annotations.
        assert!(read([&a[..]].into_iter(), &Limits { pages_max: 0, ..ROOM }).text.is_empty());
    }

    #[test]
    fn page_pictures_are_taken_as_stored_and_give_their_qr_codes() {
        let code = crate::qr::qr_picture("https://login.example-bank.test/pdf", 4);
        for how in [Stored::Grey8, Stored::Grey1, Stored::Rgb8, Stored::Jpeg] {
            let a = pdf_with(&[], "", &[(&code, how)]);
            let got = read([&a[..]].into_iter(), &ROOM);
            assert_eq!(got.pictures.len(), 1);
            if let Picture::Grey { width, height, pixels } = &got.pictures[0] {
                assert_eq!((*width, *height, pixels.len()), (code.width() as usize, code.height() as usize, code.as_raw().len()));
            }
            let qr = crate::qr::Limits { pictures_max: 4, max_pixels: 4_000_000, max_bytes: 10 << 20 };
            assert_eq!(crate::qr::texts(&got.pictures, &qr), ["https://login.example-bank.test/pdf"]);
        }
        // Limits: none asked for, too many pixels, more pictures than pictures_max.
        let two = pdf_with(&[], "", &[(&code, Stored::Grey8), (&code, Stored::Jpeg)]);
        assert!(read([&two[..]].into_iter(), &Limits { pictures_max: 0, ..ROOM }).pictures.is_empty());
        assert!(read([&two[..]].into_iter(), &Limits { max_pixels: 100, ..ROOM }).pictures.is_empty());
        assert_eq!(read([&two[..]].into_iter(), &Limits { pictures_max: 1, ..ROOM }).pictures.len(), 1);
        assert_eq!(read([&two[..], &two[..]].into_iter(), &Limits { pictures_max: 3, ..ROOM }).pictures.len(), 3);
    }

    #[test]
    fn a_picture_that_lies_about_its_size_gives_nothing() {
        let code = crate::qr::qr_picture("https://x.test/", 2);
        let a = pdf_with(&[], "", &[(&code, Stored::Grey8)]);
        // Its dictionary claims more rows than its data holds: not taken, no panic.
        let h = code.height();
        let lie = String::from_utf8_lossy(&a).replace(&format!("/Height {h}"), &format!("/Height {}", h * 4));
        assert_ne!(lie.as_bytes(), &a[..]);
        assert!(read([lie.as_bytes()].into_iter(), &ROOM).pictures.is_empty());
    }

    #[test]
    fn object_syntax_is_told_from_stream_contents() {
        let code = crate::qr::qr_picture("https://x.test/", 8);
        let a = pdf_with(&["https://a.example/"], "", &[(&code, Stored::Rgb8)]);
        let pixels = code.as_raw().len() * 3;
        assert!(a.len() > pixels && syntax_bytes(&a) < a.len() - pixels + 64, "{} of {}", syntax_bytes(&a), a.len());
        // One array of many small items, outside any stream: refused before parsing.
        let mut big = a.clone();
        big.extend(b"99 0 obj\n[".iter().chain(&b"0 ".repeat(SYNTAX_MAX / 2)).chain(b"]\nendobj\n"));
        assert!(syntax_bytes(&big) > SYNTAX_MAX);
        assert!(links([&big[..]].into_iter(), &ROOM).is_empty());
        assert_eq!(links([&a[..]].into_iter(), &ROOM).len(), 1);
    }

    #[test]
    fn a_document_of_many_object_streams_is_not_loaded() {
        let a = pdf_with_links(&["https://a.example/"]);
        let mut padded = a.clone();
        padded.extend(b"%/ObjStm\n".repeat(OBJECT_STREAMS_MAX + 1));
        assert_eq!(links([&a[..]].into_iter(), &ROOM).len(), 1);
        assert!(links([&padded[..]].into_iter(), &ROOM).is_empty());
    }
}
