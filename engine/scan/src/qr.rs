//! QR codes in a message's pictures: the text each one carries, so that a link printed as a QR
//! code ("quishing": the login page's address is a picture, no text filter sees it) joins the
//! message's links and is judged as any other link is — lists, URI blacklists, the phishing
//! checks, Bayes tokens — and marks the message with QR_LINK.
//!
//! Only PNG, JPEG and GIF parts are read, at most `pictures_max` a message, each only when its
//! header says it is at most `max_pixels` and its bytes at most `max_bytes` (so a decompression
//! bomb is refused before any pixel is decoded), with the decoder's own allocation limit; a
//! decoder that panics is caught. The detector (rqrr) reads the grey picture once: cost about
//! linear in pixels (see `benches/` of this crate: qr_decode). It never fails a scan: a picture
//! that does not decode, or has no code, gives nothing.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::{ImageReader, Limits as DecodeLimits};

/// How much QR decoding a message may cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Pictures read at most (the first ones in the message).
    pub pictures_max: usize,
    /// Pixels (width × height, from the header) a picture may have to be decoded.
    pub max_pixels: u64,
    /// Bytes a picture part may have to be decoded.
    pub max_bytes: usize,
}

/// Whether a raw message may hold a picture part: the base64 of a PNG, JPEG or GIF's first bytes
/// appears in it (a part that is not base64 is rare for pictures). Cheap (three memmem passes):
/// the gateway scans such mail off the core, since reading its pictures takes milliseconds.
pub fn may_hold_picture(raw: &[u8]) -> bool {
    [&b"iVBORw0KGgo"[..], b"/9j/", b"R0lGOD"].iter().any(|m| memchr::memmem::find(raw, m).is_some())
}

/// A picture to read: as a part carries it (PNG, JPEG or GIF bytes), or grey levels already
/// taken out of a document (a PDF page's picture, `pdf.rs`).
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Encoded(&'a [u8]),
    Grey { width: usize, height: usize, pixels: &'a [u8] },
}

impl<'a> From<&'a [u8]> for Source<'a> {
    fn from(data: &'a [u8]) -> Self {
        Source::Encoded(data)
    }
}

impl<'a> From<&'a crate::pdf::Picture> for Source<'a> {
    fn from(p: &'a crate::pdf::Picture) -> Self {
        match p {
            crate::pdf::Picture::Jpeg(data) => Source::Encoded(data),
            crate::pdf::Picture::Grey { width, height, pixels } => Source::Grey { width: *width, height: *height, pixels },
        }
    }
}

/// The texts of the QR codes in `pictures` (each decoded code once, in order): the first
/// `pictures_max` of them, wherever they came from; bytes that are no picture are passed over.
pub fn texts<'a, P: Into<Source<'a>>>(pictures: impl IntoIterator<Item = P>, limits: &Limits) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let readable = pictures.into_iter().map(Into::into).filter(|p| match p {
        Source::Encoded(data) => crate::images::format_of(data).is_some(),
        Source::Grey { .. } => true,
    });
    for p in readable.take(limits.pictures_max) {
        let found = catch_unwind(AssertUnwindSafe(|| match p {
            Source::Encoded(data) => codes_in(data, limits),
            Source::Grey { width, height, pixels } => codes_in_grey(width, height, pixels),
        }))
        .unwrap_or_default();
        for t in found {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// The codes of one picture; empty when it is too large, does not decode, or has none.
fn codes_in(data: &[u8], limits: &Limits) -> Vec<String> {
    let Some(format) = crate::images::format_of(data) else { return Vec::new() };
    if data.len() > limits.max_bytes {
        return Vec::new();
    }
    let mut decode_limits = DecodeLimits::default();
    decode_limits.max_image_width = Some(65_535);
    decode_limits.max_image_height = Some(65_535);
    decode_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(1 << 20));
    let mut r = ImageReader::with_format(Cursor::new(data), format);
    r.limits(decode_limits.clone());
    let Ok((w, h)) = r.into_dimensions() else { return Vec::new() };
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > limits.max_pixels {
        return Vec::new();
    }
    let mut r = ImageReader::with_format(Cursor::new(data), format);
    r.limits(decode_limits);
    let Ok(img) = r.decode() else { return Vec::new() };
    let grey = img.into_luma8();
    codes_in_grey(grey.width() as usize, grey.height() as usize, grey.as_raw())
}

/// The codes of a grey picture, `width` × `height` levels row by row (fewer: nothing).
fn codes_in_grey(width: usize, height: usize, pixels: &[u8]) -> Vec<String> {
    if width == 0 || height == 0 || pixels.len() < width.saturating_mul(height) {
        return Vec::new();
    }
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    prepared.detect_grids().iter().filter_map(|g| g.decode().ok()).map(|(_, text)| text).filter(|t| !t.trim().is_empty()).collect()
}

#[cfg(test)]
/// A grey picture of a QR code carrying `text`, `scale` pixels a module, with a quiet zone.
pub(crate) fn qr_picture(text: &str, scale: u32) -> image::GrayImage {
    let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
    let n = code.width() as u32;
    let quiet = 4;
    let side = (n + 2 * quiet) * scale;
    let colors = code.to_colors();
    image::GrayImage::from_fn(side, side, |x, y| {
        let (mx, my) = ((x / scale) as i64 - quiet as i64, (y / scale) as i64 - quiet as i64);
        let dark = mx >= 0 && my >= 0 && (mx as u32) < n && (my as u32) < n && colors[(my as u32 * n + mx as u32) as usize] == qrcode::Color::Dark;
        image::Luma([if dark { 0 } else { 255 }])
    })
}

#[cfg(test)]
/// A PNG of a QR code carrying `text`, `scale` pixels a module, with a quiet zone.
pub(crate) fn qr_png(text: &str, scale: u32) -> Vec<u8> {
    let img = qr_picture(text, scale);
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

#[cfg(test)]
/// base64 of `data` in lines of 76, as a mailer sends a part.
pub(crate) fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (k, c) in data.chunks(3).enumerate() {
        if k > 0 && k % 19 == 0 {
            out.push('\n');
        }
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() { T[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: Limits = Limits { pictures_max: 4, max_pixels: 4_000_000, max_bytes: 10 << 20 };

    #[test]
    fn a_qr_code_is_read_and_each_text_given_once() {
        let a = qr_png("https://login.example-bank.test/verify?u=1", 6);
        let b = qr_png("WIFI:S:office;T:WPA;P:secret;;", 4);
        let got = texts([&a[..], &b[..], &a[..]], &ROOM);
        assert_eq!(got, ["https://login.example-bank.test/verify?u=1", "WIFI:S:office;T:WPA;P:secret;;"]);
    }

    #[test]
    fn mail_with_a_picture_is_told_from_mail_without() {
        let png = qr_png("https://x.test/", 3);
        assert!(may_hold_picture(format!("Content-Type: image/png\r\n\r\n{}\r\n", b64(&png)).as_bytes()));
        assert!(may_hold_picture(b64(&[0xff, 0xd8, 0xff, 0xe0]).as_bytes()), "JPEG");
        assert!(may_hold_picture(b64(b"GIF89a").as_bytes()), "GIF");
        assert!(!may_hold_picture(b"Subject: lunch\r\n\r\nSee you at noon.\r\n"));
    }

    #[test]
    fn limits_are_kept_and_bad_pictures_give_nothing() {
        let a = qr_png("https://x.test/", 6);
        // Over the pixel limit: refused from the header.
        assert!(texts([&a[..]], &Limits { max_pixels: 100, ..ROOM }).is_empty());
        assert!(texts([&a[..]], &Limits { max_bytes: 10, ..ROOM }).is_empty());
        // Only the first pictures_max pictures are read.
        let plain = image::GrayImage::from_pixel(50, 50, image::Luma([255]));
        let mut blank = Vec::new();
        plain.write_to(&mut Cursor::new(&mut blank), image::ImageFormat::Png).unwrap();
        assert!(texts([&blank[..], &a[..]], &Limits { pictures_max: 1, ..ROOM }).is_empty());
        assert_eq!(texts([&blank[..], &a[..]], &Limits { pictures_max: 2, ..ROOM }), ["https://x.test/"]);
        // Parts' pictures and a document's grey ones count together, parts first.
        let grey = qr_picture("https://y.test/", 4);
        let page = Source::Grey { width: grey.width() as usize, height: grey.height() as usize, pixels: grey.as_raw() };
        let both = [Source::from(&blank[..]), page];
        assert!(texts(both, &Limits { pictures_max: 1, ..ROOM }).is_empty());
        assert_eq!(texts(both, &Limits { pictures_max: 2, ..ROOM }), ["https://y.test/"]);
        // Not a picture, a cut picture, a header that lies about its size: nothing, no panic.
        let mut cut = a.clone();
        cut.truncate(a.len() / 2);
        let mut huge = a.clone();
        // The IHDR width (bytes 16..20 of a PNG) made enormous: refused before decoding.
        huge[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        for bad in [&b"plain text"[..], &cut[..], &huge[..], &a[..8]] {
            assert!(texts([bad], &ROOM).is_empty());
        }
    }
}
