//! What reading a PDF attachment costs a message: `pdf::read` (links, the text of the first
//! pages, the pictures of those pages) on documents written here, then the QR reading of what it
//! took, median of several runs each, in ms of one core.
//!
//! `cargo bench -p mxguard-scan --bench pdf_read`

use std::time::Instant;

use lopdf::{dictionary, Document, Object, Stream, StringFormat};
use mxguard_scan::{pdf, qr};

/// A document of `pages` pages, each with `lines` lines of text, a link annotation, and on the
/// first page, when `side` > 0, a QR code of `side` × `side` grey pixels (Flate-compressed).
fn document(pages: usize, lines: usize, side: u32) -> Vec<u8> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding" });
    let mut kids: Vec<Object> = Vec::new();
    for p in 0..pages {
        let mut content = String::from("BT /F1 10 Tf 50 800 Td 12 TL\n");
        for l in 0..lines {
            content.push_str(&format!("(Line {l} of page {p}: the invoice total and https://docs.example/p{p}/l{l} for details.) '\n"));
        }
        content.push_str("ET\n");
        let mut xobjects = lopdf::Dictionary::new();
        if p == 0 && side > 0 {
            let c = qrcode::QrCode::new(b"https://login.example-bank.test/verify?session=0123456789").expect("code");
            let n = c.width() as u32;
            let colors = c.to_colors();
            let scale = (side / 3 / n).max(1);
            let off = (side - n * scale) / 2;
            let img = image::GrayImage::from_fn(side, side, |x, y| {
                let inside = x >= off && y >= off && (x - off) / scale < n && (y - off) / scale < n;
                let dark = inside && colors[(((y - off) / scale) * n + (x - off) / scale) as usize] == qrcode::Color::Dark;
                image::Luma([if dark { 0 } else { 255 }])
            });
            let dict = dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => side as i64, "Height" => side as i64, "BitsPerComponent" => 8, "ColorSpace" => "DeviceGray" };
            let mut s = Stream::new(dict, img.into_raw());
            s.compress().expect("flate");
            xobjects.set("Im0", doc.add_object(s));
            content.push_str("q 200 0 0 200 50 50 cm /Im0 Do Q\n");
        }
        let contents = doc.add_object(Stream::new(lopdf::Dictionary::new(), content.into_bytes()));
        let action = dictionary! { "S" => "URI", "URI" => Object::String(format!("https://docs.example/p{p}").into_bytes(), StringFormat::Literal) };
        let annot = doc.add_object(dictionary! { "Type" => "Annot", "Subtype" => "Link", "Rect" => vec![0.into(), 0.into(), 100.into(), 20.into()], "A" => action });
        let resources = dictionary! { "Font" => dictionary! { "F1" => font }, "XObject" => xobjects };
        let page = doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()], "Resources" => resources, "Contents" => contents, "Annots" => vec![annot.into()] });
        kids.push(page.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(pages_id, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }));
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    doc.compress();
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("a PDF in memory");
    out
}

fn median(mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[3]
}

fn main() {
    let limits = pdf::Limits { pdfs_max: 4, max_bytes: usize::MAX, links_max: 500, pages_max: 4, pictures_max: 4, max_pixels: 4_000_000 };
    let qr_limits = qr::Limits { pictures_max: 4, max_pixels: 4_000_000, max_bytes: usize::MAX };
    for (name, pages, lines, side) in [("1 page, 40 lines", 1, 40, 0), ("1 page + 0.25 MP code", 1, 40, 500), ("1 page + 1 MP code", 1, 40, 1000), ("50 pages, 40 lines each", 50, 40, 0)] {
        let data = document(pages, lines, side);
        let links_only = median(|| {
            assert_eq!(pdf::links([&data[..]].into_iter(), &limits).len(), pages);
        });
        let mut got = pdf::Contents::default();
        let read = median(|| {
            got = pdf::read([&data[..]].into_iter(), &limits);
        });
        assert!(got.text.contains("https://docs.example/p0/l0"), "{name}");
        assert_eq!(got.pictures.len(), usize::from(side > 0), "{name}");
        let codes = median(|| {
            assert_eq!(qr::texts(&got.pictures, &qr_limits).len(), usize::from(side > 0));
        });
        println!(
            "{{\"document\":\"{name}\",\"pdf_bytes\":{},\"ms_links_only\":{links_only:.2},\"ms_read\":{read:.2},\"ms_qr\":{codes:.2},\"text_bytes\":{}}}",
            data.len(),
            got.text.len()
        );
    }
}
