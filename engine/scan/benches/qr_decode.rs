//! What reading QR codes costs a message: `qr::texts` on pictures written here (a QR code drawn
//! at several sizes, and a noisy picture of the same size with no code), median of several runs
//! each, in ms of one core.
//!
//! `cargo bench -p mxguard-scan --bench qr_decode`

use std::io::Cursor;
use std::time::Instant;

use mxguard_scan::qr;

fn png(img: &image::GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).expect("PNG");
    out
}

/// A QR code carrying a link, `side` pixels square (the code in its middle third).
fn code(side: u32) -> Vec<u8> {
    let c = qrcode::QrCode::new(b"https://login.example-bank.test/verify?session=0123456789").expect("code");
    let n = c.width() as u32;
    let colors = c.to_colors();
    let scale = (side / 3 / n).max(1);
    let off = (side - n * scale) / 2;
    png(&image::GrayImage::from_fn(side, side, |x, y| {
        let inside = x >= off && y >= off && (x - off) / scale < n && (y - off) / scale < n;
        let dark = inside && colors[(((y - off) / scale) * n + (x - off) / scale) as usize] == qrcode::Color::Dark;
        image::Luma([if dark { 0 } else { 255 }])
    }))
}

/// A picture with no code: deterministic noise over gradients (a photo's worst case for the
/// detector's thresholding).
fn noise(side: u32) -> Vec<u8> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    png(&image::GrayImage::from_fn(side, side, |x, y| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        image::Luma([((x + y) % 256) as u8 ^ (s as u8 & 0x3f)])
    }))
}

fn main() {
    let limits = qr::Limits { pictures_max: 4, max_pixels: 100_000_000, max_bytes: usize::MAX };
    for side in [500u32, 1000, 2000] {
        for (kind, data) in [("code", code(side)), ("no code", noise(side))] {
            let mut times: Vec<f64> = (0..7)
                .map(|_| {
                    let t = Instant::now();
                    let found = qr::texts([&data[..]], &limits);
                    assert_eq!(found.len(), usize::from(kind == "code"), "{kind} at {side}");
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            times.sort_by(f64::total_cmp);
            println!("{{\"side\":{side},\"megapixels\":{:.2},\"picture\":\"{kind}\",\"png_bytes\":{},\"ms_median\":{:.2}}}", f64::from(side * side) / 1e6, data.len(), times[3]);
        }
    }
}
