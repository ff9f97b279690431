//! Image spam: a sampled look at the pictures of a message.
//!
//! A picture carries a spam's text past every text scanner. For each image part (PNG, JPEG or
//! GIF by its magic bytes, whatever the declared type), in order:
//! 1. pictures smaller than `min_width` × `min_height` (logos, signatures) are skipped on their
//!    header alone, nothing decoded; so are pictures over `max_bytes` or `max_pixels`;
//! 2. a fraction of the rest (`sample_percent`) is decoded, chosen by a hash of its bytes, so the
//!    same picture always gets the same treatment; at most `max_images` per message;
//! 3. `sampling_points` points spread over the picture are measured: the share of the dominant
//!    colour (a text picture has a plain background), the colours needed to cover 90 % of the
//!    points (colours within `color_sensitivity` per channel count as one), and the points on a
//!    sharp edge (text strokes). Their product is a text-likeness from 0 to 15; with the
//!    reference products' `threshold` (0 off, 15 most aggressive) a picture is spam when
//!    likeness + threshold > 15. With `pass_multi_image`, a message with more than one picture
//!    big enough to be scanned skips this step (newsletters), not the next;
//! 4. a 64-bit perceptual hash (DCT of a 32×32 grey thumbnail) is compared with the learnable
//!    list of known spam pictures within `hash_distance` differing bits: it survives rescaling,
//!    recompression and small edits;
//! 5. a GIF's frames are counted without decoding them.
//!
//! Symbols: IMAGE_SPAM (text-like), IMAGE_KNOWN_SPAM (listed hash), IMAGE_ANIMATED (a scanned
//! size GIF of several frames), IMAGE_CORRUPT (an image part that does not decode).
//!
//! Costs: the header probe is O(1); a decode O(width × height), bounded by `max_pixels`;
//! sampling O(points × colours); the hash O(32 × 32 × 8); a list lookup one XOR and popcount per
//! listed hash (10,000 hashes ≈ 10 µs). Never: decode beyond the limits, panic on a broken
//! picture (a decoder panic is caught and becomes IMAGE_CORRUPT), or do any I/O.

use std::hash::{Hash, Hasher};
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::{DynamicImage, GenericImageView, ImageFormat, ImageReader, Limits};

use crate::magic::{self, FileType};

/// The knobs of the image check (`image.*`).
#[derive(Debug, Clone)]
pub struct Config {
    /// 0: the text-likeness test is off; 15: most aggressive.
    pub threshold: u32,
    pub color_sensitivity: u32,
    pub min_width: u32,
    pub min_height: u32,
    pub sampling_points: usize,
    pub pass_multi_image: bool,
    /// Percentage of the eligible pictures decoded (0–100).
    pub sample_percent: u32,
    pub max_bytes: usize,
    pub max_pixels: u64,
    pub max_images: usize,
    pub hash_distance: u32,
}

impl Config {
    /// The reference products' defaults.
    pub fn reference() -> Config {
        Config {
            threshold: 10,
            color_sensitivity: 20,
            min_width: 300,
            min_height: 300,
            sampling_points: 200,
            pass_multi_image: true,
            sample_percent: 100,
            max_bytes: 4 << 20,
            max_pixels: 4_000_000,
            max_images: 8,
            hash_distance: 6,
        }
    }
}

/// The learnable list of known spam pictures: one hash (16 hex digits) per line, then an
/// optional label; `#` starts a comment.
#[derive(Debug, Default, Clone)]
pub struct Known {
    hashes: Vec<(u64, String)>,
}

impl Known {
    /// Parses the list; errors are `file:line: reason`.
    pub fn parse(text: &str, file: &str) -> Result<Known, Vec<String>> {
        let mut k = Known::default();
        crate::each_list_line(text, file, |line| {
            let (hex, label) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            match u64::from_str_radix(hex, 16) {
                Ok(h) if hex.len() == 16 => {
                    k.hashes.push((h, label.trim().to_string()));
                    Ok(())
                }
                _ => Err(format!("not a 16-hex-digit image hash: {hex}")),
            }
        })?;
        Ok(k)
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The nearest listed hash within `distance` bits: (bits differing, label).
    pub fn nearest(&self, hash: u64, distance: u32) -> Option<(u32, &str)> {
        self.hashes
            .iter()
            .map(|(h, label)| ((h ^ hash).count_ones(), label.as_str()))
            .filter(|(d, _)| *d <= distance)
            .min_by_key(|(d, _)| *d)
    }
}

/// The list line for a hash.
pub fn hash_line(hash: u64, label: &str) -> String {
    if label.is_empty() {
        format!("{hash:016x}")
    } else {
        format!("{hash:016x} {label}")
    }
}

/// What was measured on one decoded picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    /// GIF frames (1 for still pictures).
    pub frames: u32,
    /// Share of the points in the dominant colour.
    pub background: f32,
    /// Colours covering 90 % of the points.
    pub colours: u32,
    /// Share of the points on a sharp edge.
    pub edges: f32,
    /// 0 (a photograph) to 15 (black text on white).
    pub likeness: u32,
    pub hash: u64,
}

/// What became of one image part.
#[derive(Debug, Clone, PartialEq)]
pub enum Look {
    /// Below the minimum size: not decoded.
    Small(u32, u32),
    /// Over `max_bytes` or `max_pixels`: not decoded.
    TooLarge,
    /// Left out by `sample_percent` (or `max_images`).
    NotSampled,
    /// The header or the data did not decode.
    Corrupt(String),
    Measured(Measure),
}

/// PNG, JPEG or GIF by magic bytes.
pub fn format_of(data: &[u8]) -> Option<ImageFormat> {
    match magic::detect(data) {
        FileType::Png => Some(ImageFormat::Png),
        FileType::Jpeg => Some(ImageFormat::Jpeg),
        FileType::Gif => Some(ImageFormat::Gif),
        _ => None,
    }
}

fn limits(cfg: &Config) -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(65_535);
    l.max_image_height = Some(65_535);
    // The decoded picture (up to 4 bytes a pixel for 8-bit data) plus the decoders' own buffers.
    l.max_alloc = Some(cfg.max_pixels.saturating_mul(8).max(1 << 20));
    l
}

/// Width and height from the header alone.
pub fn dimensions(data: &[u8], format: ImageFormat, cfg: &Config) -> Result<(u32, u32), String> {
    let mut r = ImageReader::with_format(Cursor::new(data), format);
    r.limits(limits(cfg));
    r.into_dimensions().map_err(|e| e.to_string())
}

/// Whether `sample_percent` picks this picture: a fixed function of its bytes.
fn sampled(data: &[u8], percent: u32) -> bool {
    if percent >= 100 {
        return true;
    }
    let mut h = std::hash::DefaultHasher::new();
    data.len().hash(&mut h);
    data[..data.len().min(65_536)].hash(&mut h);
    (h.finish() % 100) < u64::from(percent)
}

/// Looks at one picture; `decode` false stops after the size checks (the `max_images` budget).
pub fn look(data: &[u8], cfg: &Config, decode: bool) -> Look {
    let Some(format) = format_of(data) else {
        return Look::Corrupt("not a PNG, JPEG or GIF".into());
    };
    match catch_unwind(AssertUnwindSafe(|| look_at(data, format, cfg, decode))) {
        Ok(l) => l,
        Err(_) => Look::Corrupt("the decoder failed".into()),
    }
}

fn look_at(data: &[u8], format: ImageFormat, cfg: &Config, decode: bool) -> Look {
    let (w, h) = match dimensions(data, format, cfg) {
        Ok(d) => d,
        Err(e) => return Look::Corrupt(one_line(&e)),
    };
    if w == 0 || h == 0 {
        return Look::Corrupt(format!("a {w}x{h} picture"));
    }
    if w < cfg.min_width || h < cfg.min_height {
        return Look::Small(w, h);
    }
    if data.len() > cfg.max_bytes || u64::from(w) * u64::from(h) > cfg.max_pixels {
        return Look::TooLarge;
    }
    if !decode || !sampled(data, cfg.sample_percent) {
        return Look::NotSampled;
    }
    let mut r = ImageReader::with_format(Cursor::new(data), format);
    r.limits(limits(cfg));
    let img = match r.decode() {
        Ok(i) => i,
        Err(e) => return Look::Corrupt(one_line(&e.to_string())),
    };
    let frames = if format == ImageFormat::Gif { gif_frames(data, 1000) } else { 1 };
    Look::Measured(measure(&img, format, frames, cfg))
}

/// A decoder's message as one line of a log or reason.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// GIF frames, counted from their descriptors without decompressing them (at most `cap`).
pub fn gif_frames(data: &[u8], cap: u32) -> u32 {
    let mut o = gif::DecodeOptions::new();
    o.skip_frame_decoding(true);
    let Ok(mut d) = o.read_info(Cursor::new(data)) else { return 0 };
    let mut n = 0;
    while n < cap {
        match d.next_frame_info() {
            Ok(Some(_)) => n += 1,
            _ => break,
        }
    }
    n
}

/// A pixel over white (transparency shows the page).
fn rgb(img: &DynamicImage, x: u32, y: u32) -> [u8; 3] {
    let p = img.get_pixel(x, y).0;
    let a = u32::from(p[3]);
    let over = |c: u8| ((u32::from(c) * a + 255 * (255 - a)) / 255) as u8;
    [over(p[0]), over(p[1]), over(p[2])]
}

fn luma(c: [u8; 3]) -> i32 {
    (299 * i32::from(c[0]) + 587 * i32::from(c[1]) + 114 * i32::from(c[2])) / 1000
}

/// A step in brightness at least this large between pixels one or two apart is a sharp edge.
const EDGE_STEP: i32 = 64;

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "png",
        ImageFormat::Jpeg => "jpeg",
        _ => "gif",
    }
}

/// The middle of cell `i` of `n` along a side of `len` pixels (64-bit: no overflow at any size).
fn at(i: u32, n: u32, len: u32) -> u32 {
    ((u64::from(2 * i + 1) * u64::from(len) / u64::from(2 * n)) as u32).min(len.saturating_sub(1))
}

/// Samples the picture and hashes it. A picture of no pixels measures as nothing.
pub fn measure(img: &DynamicImage, format: ImageFormat, frames: u32, cfg: &Config) -> Measure {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Measure { format: format_name(format), width: w, height: h, frames, background: 0.0, colours: 0, edges: 0.0, likeness: 0, hash: 0 };
    }
    let n = cfg.sampling_points.max(16);
    let cols = (((n as f64) * f64::from(w) / f64::from(h.max(1))).sqrt().round() as u32).clamp(1, w.max(1));
    let rows = ((n as u32) / cols).clamp(1, h.max(1));
    let mut clusters: Vec<([u8; 3], u32)> = Vec::new();
    let mut edges = 0u32;
    let sens = cfg.color_sensitivity.min(255) as i32;
    for r in 0..rows {
        let y = at(r, rows, h);
        for c in 0..cols {
            let x = at(c, cols, w);
            let p = rgb(img, x, y);
            let l = luma(p);
            let step = |dx: u32, dy: u32| -> i32 {
                let (nx, ny) = (x + dx, y + dy);
                if nx >= w || ny >= h {
                    0
                } else {
                    (luma(rgb(img, nx, ny)) - l).abs()
                }
            };
            if step(1, 0).max(step(2, 0)).max(step(0, 1)).max(step(0, 2)) >= EDGE_STEP {
                edges += 1;
            }
            match clusters.iter_mut().find(|(k, _)| (0..3).all(|i| (i32::from(k[i]) - i32::from(p[i])).abs() <= sens)) {
                Some((_, count)) => *count += 1,
                None => clusters.push((p, 1)),
            }
        }
    }
    let total = rows * cols;
    clusters.sort_by_key(|c| std::cmp::Reverse(c.1));
    let background = clusters.first().map_or(0.0, |c| c.1 as f32 / total as f32);
    let mut covered = 0;
    let mut colours = 0;
    for (_, count) in &clusters {
        if covered * 10 >= total * 9 {
            break;
        }
        covered += count;
        colours += 1;
    }
    let edges = edges as f32 / total as f32;
    Measure {
        format: format_name(format),
        width: w,
        height: h,
        frames,
        background,
        colours,
        edges,
        likeness: likeness(background, colours, edges),
        hash: phash(img),
    }
}

/// Text-likeness from the three measures: each is mapped to 0–1 and the product scaled to 0–15,
/// so a picture must have a plain background, few colours *and* sharp strokes to score high.
pub fn likeness(background: f32, colours: u32, edges: f32) -> u32 {
    let plain = ((background - 0.25) / 0.45).clamp(0.0, 1.0);
    let few = ((24.0 - colours as f32) / 16.0).clamp(0.0, 1.0);
    let strokes = (edges / 0.08).clamp(0.0, 1.0);
    (15.0 * plain * few * strokes).round() as u32
}

/// Whether a likeness counts as spam at a threshold (0 never; 15 anything with a trace of text).
pub fn is_spam(likeness: u32, threshold: u32) -> bool {
    threshold > 0 && likeness + threshold.min(15) > 15
}

/// 64-bit perceptual hash: the signs, against their median, of the 8×8 lowest frequencies of
/// the DCT of a 32×32 grey thumbnail (over white).
pub fn phash(img: &DynamicImage) -> u64 {
    const N: usize = 32;
    const K: usize = 8;
    let thumb = img.thumbnail_exact(N as u32, N as u32).to_rgba8();
    let mut grey = [[0f32; N]; N];
    for (x, y, p) in thumb.enumerate_pixels() {
        let a = f32::from(p[3]) / 255.0;
        let over = |c: u8| f32::from(c) * a + 255.0 * (1.0 - a);
        grey[y as usize][x as usize] = 0.299 * over(p[0]) + 0.587 * over(p[1]) + 0.114 * over(p[2]);
    }
    let mut cos = [[0f32; N]; K];
    for (u, row) in cos.iter_mut().enumerate() {
        for (x, c) in row.iter_mut().enumerate() {
            *c = (std::f32::consts::PI * (2 * x + 1) as f32 * u as f32 / (2 * N) as f32).cos();
        }
    }
    // Rows first (only the K lowest frequencies are needed), then columns.
    let mut rows = [[0f32; K]; N];
    for y in 0..N {
        for u in 0..K {
            rows[y][u] = (0..N).map(|x| grey[y][x] * cos[u][x]).sum();
        }
    }
    let mut coef = [0f32; K * K];
    for v in 0..K {
        for u in 0..K {
            coef[v * K + u] = (0..N).map(|y| rows[y][u] * cos[v][y]).sum();
        }
    }
    // The DC term says only how bright the picture is: leave it out of the median.
    let mut sorted: Vec<f32> = coef[1..].to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = sorted[sorted.len() / 2];
    coef.iter().enumerate().fold(0u64, |h, (i, c)| if *c > median { h | 1 << i } else { h })
}

/// Checks the image parts of one message; findings are (symbol, reason).
pub fn check<'a>(parts: impl Iterator<Item = &'a [u8]>, known: &Known, cfg: &Config) -> Vec<(&'static str, String)> {
    let mut looks = Vec::new();
    let mut decoded = 0;
    for data in parts.filter(|d| format_of(d).is_some()) {
        let l = look(data, cfg, decoded < cfg.max_images);
        if matches!(l, Look::Measured(_) | Look::Corrupt(_)) {
            decoded += 1;
        }
        looks.push(l);
    }
    findings(&looks, known, cfg)
}

/// The symbols for the looks of one message's pictures.
pub fn findings(looks: &[Look], known: &Known, cfg: &Config) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let big = looks.iter().filter(|l| !matches!(l, Look::Small(..) | Look::Corrupt(_))).count();
    let measured = || looks.iter().filter_map(|l| if let Look::Measured(m) = l { Some(m) } else { None });
    if let Some(Look::Corrupt(why)) = looks.iter().find(|l| matches!(l, Look::Corrupt(_))) {
        out.push(("IMAGE_CORRUPT", format!("an image part does not decode: {why}")));
    }
    let listed = measured().find_map(|m| known.nearest(m.hash, cfg.hash_distance).map(|(d, label)| (m, d, label)));
    if let Some((m, d, label)) = listed {
        let what = if label.is_empty() { String::new() } else { format!(" ({label})") };
        out.push(("IMAGE_KNOWN_SPAM", format!("{}×{} {} picture {:016x} is {d} bits from a known spam picture{what}", m.width, m.height, m.format, m.hash)));
    }
    if !(cfg.pass_multi_image && big > 1) {
        if let Some(m) = measured().filter(|m| is_spam(m.likeness, cfg.threshold)).max_by_key(|m| m.likeness) {
            out.push((
                "IMAGE_SPAM",
                format!(
                    "{}×{} {} picture looks like text (likeness {}/15 at threshold {}: background {:.0} %, {} colours, edges {:.0} %)",
                    m.width,
                    m.height,
                    m.format,
                    m.likeness,
                    cfg.threshold,
                    m.background * 100.0,
                    m.colours,
                    m.edges * 100.0
                ),
            ));
        }
    }
    if let Some(m) = measured().find(|m| m.frames > 1) {
        out.push(("IMAGE_ANIMATED", format!("{}×{} GIF of {} frames", m.width, m.height, m.frames)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// Deterministic noise.
    fn lcg(seed: &mut u64) -> u32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 33) as u32
    }

    /// Lines of dark "glyphs" (stroked boxes of random widths) on a white page: what a spam
    /// picture's text looks like to the sampler.
    fn text_picture(w: u32, h: u32, seed: u64) -> RgbImage {
        let mut s = seed;
        let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
        let mut y = 20;
        while y + 24 < h {
            let mut x = 20;
            while x + 20 < w - 20 {
                let gw = 6 + lcg(&mut s) % 10;
                if lcg(&mut s) % 6 != 0 {
                    for dy in 0..18 {
                        for dx in 0..gw {
                            let edge = !(2..16).contains(&dy) || dx < 2 || dx + 2 >= gw || (dx == gw / 2 && dy % 3 == 0);
                            if edge {
                                img.put_pixel(x + dx, y + dy, Rgb([20, 20, 160]));
                            }
                        }
                    }
                }
                x += gw + 3;
            }
            y += 30;
        }
        img
    }

    /// Smooth colour waves with fine noise: what a photograph looks like to the sampler.
    fn photo(w: u32, h: u32, seed: u64) -> RgbImage {
        let mut s = seed;
        let k = 1.0 + (seed % 7) as f32;
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let n = (lcg(&mut s) % 9) as f32 - 4.0;
            let c = |v: f32| (v + n).clamp(0.0, 255.0) as u8;
            Rgb([
                c(128.0 + 100.0 * (fx * (3.0 + k)).sin() * (fy * 3.0).cos()),
                c(128.0 + 90.0 * (fx * 2.0 + fy * (2.0 + k)).sin()),
                c(100.0 + 80.0 * (fy * 9.0 - k).cos()),
            ])
        })
    }

    fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img.clone()).write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn measured(data: &[u8], cfg: &Config) -> Measure {
        match look(data, cfg, true) {
            Look::Measured(m) => m,
            other => panic!("not measured: {other:?}"),
        }
    }

    #[test]
    fn text_is_text_and_photos_are_not() {
        let cfg = Config::reference();
        let table: &[(&str, Vec<u8>, bool)] = &[
            ("text png", encode(&text_picture(600, 400, 1), ImageFormat::Png), true),
            ("text gif", encode(&text_picture(500, 500, 2), ImageFormat::Gif), true),
            ("text jpeg", encode(&text_picture(640, 360, 3), ImageFormat::Jpeg), true),
            ("photo jpeg", encode(&photo(640, 480, 4), ImageFormat::Jpeg), false),
            ("photo png", encode(&photo(400, 400, 5), ImageFormat::Png), false),
            ("plain banner", encode(&RgbImage::from_pixel(600, 300, Rgb([200, 30, 30])), ImageFormat::Png), false),
        ];
        for (what, data, spam) in table {
            let m = measured(data, &cfg);
            assert_eq!(is_spam(m.likeness, cfg.threshold), *spam, "{what}: {m:?}");
        }
    }

    #[test]
    fn threshold_scales_aggressiveness() {
        assert!(!is_spam(15, 0), "0 turns the test off");
        assert!(is_spam(1, 15));
        assert!(!is_spam(0, 15));
        assert!(is_spam(6, 10) && !is_spam(5, 10));
        assert!(is_spam(15, 1) && !is_spam(14, 1));
    }

    #[test]
    fn small_corrupt_large_and_sampling() {
        let cfg = Config::reference();
        let logo = encode(&text_picture(200, 80, 6), ImageFormat::Png);
        assert_eq!(look(&logo, &cfg, true), Look::Small(200, 80));
        let mut broken = encode(&text_picture(600, 400, 7), ImageFormat::Png);
        broken.truncate(broken.len() / 2);
        assert!(matches!(look(&broken, &cfg, true), Look::Corrupt(_)));
        assert!(matches!(look(b"\x89PNG\r\n\x1a\nrubbish", &cfg, true), Look::Corrupt(_)));
        // Found by the fuzzer: a GIF of width 0 (the sampler once subtracted 1 from it).
        let any = Config { min_width: 0, min_height: 0, ..cfg.clone() };
        let zero_wide: &[u8] = b"\x47\x49\x46\x38\x37\x61\x00\x00\x10\x18\x82\x00\x00\xff\xff\xff\xd4\xd4\xd4\x96\x96\x96\x3f\x3f\x3f\x0f\x0f\x0f\x09\x09\x09\x00\x00\x00\x00\x00\x00\x2c\x00\x00\x00\x10\x00\x18\x00\x00\x40\x08\x41\x00\x01\x08\x1c\x48\xb0\xa0\xc1\x82\x21\x04\x08\x26\x04\xb0\xf0\xa0\xc1\x86\x0c\x1d\x4a\x9c\x48\xb1\xa2\xc5\x81\x10\x17\x42\xa4\x98\x51\xe0\xc6\x8b\x20\x43\x5a\xec\x18\x40\x00\xc8\x8e\x11\x2f\x16\x18\xc0\x72\x40\x01\x8f\x27\x15\xc2\x14\x49\xb3\xa6\xcd\x89\x01\x01\x00\x3b";
        assert!(matches!(look(zero_wide, &any, true), Look::Corrupt(_)));
        let empty = DynamicImage::new_rgb8(0, 5);
        assert_eq!(measure(&empty, ImageFormat::Png, 1, &any).likeness, 0);
        let big = encode(&photo(600, 600, 8), ImageFormat::Png);
        let tight = Config { max_pixels: 100_000, ..cfg.clone() };
        assert_eq!(look(&big, &tight, true), Look::TooLarge);
        let none = Config { sample_percent: 0, ..cfg.clone() };
        assert_eq!(look(&big, &none, true), Look::NotSampled);
        // Half the pictures, always the same half.
        let half = Config { sample_percent: 50, ..cfg.clone() };
        let pics: Vec<Vec<u8>> = (0..40).map(|i| encode(&text_picture(320, 320, 100 + i), ImageFormat::Gif)).collect();
        let picked: Vec<bool> = pics.iter().map(|p| matches!(look(p, &half, true), Look::Measured(_))).collect();
        let n = picked.iter().filter(|p| **p).count();
        assert!((8..=32).contains(&n), "{n} of 40 sampled at 50 %");
        let again: Vec<bool> = pics.iter().map(|p| matches!(look(p, &half, true), Look::Measured(_))).collect();
        assert_eq!(picked, again);
    }

    #[test]
    fn hash_survives_rescaling_and_recompression() {
        let original = text_picture(600, 400, 9);
        let h = phash(&DynamicImage::ImageRgb8(original.clone()));
        let smaller = image::imageops::resize(&original, 450, 300, image::imageops::FilterType::Triangle);
        let jpeg = encode(&smaller, ImageFormat::Jpeg);
        let h2 = phash(&image::load_from_memory(&jpeg).unwrap());
        assert!((h ^ h2).count_ones() <= 6, "rescaled JPEG differs by {} bits", (h ^ h2).count_ones());
        for (i, other) in [text_picture(600, 400, 10), photo(600, 400, 11)].into_iter().enumerate() {
            let d = (h ^ phash(&DynamicImage::ImageRgb8(other))).count_ones();
            assert!(d > 12, "different picture {i} only {d} bits away");
        }
    }

    #[test]
    fn known_list_parses_and_matches() {
        let k = Known::parse("# spam pictures\n00000000000000ff pharmacy 2026-11\n\n0123456789abcdef\n", "image-hashes.txt").unwrap();
        assert_eq!(k.len(), 2);
        assert_eq!(k.nearest(0x00000000000000fe, 6), Some((1, "pharmacy 2026-11")));
        assert_eq!(k.nearest(0x0123456789abcdef, 0), Some((0, "")));
        assert_eq!(k.nearest(0xffff_0000_0000_0000, 6), None);
        let e = Known::parse("ok\n00000000000000ff\nzz00000000000000 x\n123\n", "f.txt").unwrap_err();
        assert_eq!(e, vec!["f.txt:1: not a 16-hex-digit image hash: ok", "f.txt:3: not a 16-hex-digit image hash: zz00000000000000", "f.txt:4: not a 16-hex-digit image hash: 123"]);
    }

    #[test]
    fn findings_table() {
        let cfg = Config::reference();
        let text = encode(&text_picture(600, 400, 12), ImageFormat::Png);
        let photo_png = encode(&photo(600, 400, 13), ImageFormat::Png);
        let logo = encode(&text_picture(100, 50, 14), ImageFormat::Png);
        let names = |parts: &[&[u8]], known: &Known, cfg: &Config| -> Vec<&'static str> {
            check(parts.iter().copied(), known, cfg).into_iter().map(|(s, _)| s).collect()
        };
        let none = Known::default();
        assert_eq!(names(&[&text], &none, &cfg), ["IMAGE_SPAM"]);
        assert_eq!(names(&[&text, &logo], &none, &cfg), ["IMAGE_SPAM"], "a logo does not make it multi-image");
        assert!(names(&[&text, &photo_png], &none, &cfg).is_empty(), "two big pictures pass");
        let strict = Config { pass_multi_image: false, ..cfg.clone() };
        assert_eq!(names(&[&text, &photo_png], &none, &strict), ["IMAGE_SPAM"]);
        assert!(names(&[&photo_png], &none, &cfg).is_empty());
        assert!(names(&[&text], &none, &Config { threshold: 0, ..cfg.clone() }).is_empty());
        // Listed: caught even among several pictures, and even as a rescaled JPEG.
        let h = measured(&photo_png, &cfg).hash;
        let known = Known::parse(&hash_line(h, "listed photo"), "t").unwrap();
        let rescaled = encode(&image::imageops::resize(&photo(600, 400, 13), 480, 320, image::imageops::FilterType::Triangle), ImageFormat::Jpeg);
        assert_eq!(names(&[&text, &rescaled], &known, &cfg), ["IMAGE_KNOWN_SPAM"]);
        // Broken and animated.
        assert_eq!(names(&[b"GIF89a broken" as &[u8]], &none, &cfg), ["IMAGE_CORRUPT"]);
        let mut gif = Cursor::new(Vec::new());
        {
            let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
            for i in 0..3 {
                let f = DynamicImage::ImageRgb8(photo(320, 320, 20 + i)).to_rgba8();
                enc.encode_frame(image::Frame::new(f)).unwrap();
            }
        }
        let gif = gif.into_inner();
        assert_eq!(gif_frames(&gif, 100), 3);
        assert_eq!(names(&[&gif], &none, &cfg), ["IMAGE_ANIMATED"]);
        assert_eq!(gif_frames(&gif, 2), 2, "counting stops at the cap");
        // Not images at all: nothing.
        assert!(names(&[b"%PDF-1.4 ..." as &[u8]], &none, &cfg).is_empty());
    }

    #[test]
    fn decode_budget_per_message() {
        let cfg = Config { max_images: 1, pass_multi_image: false, ..Config::reference() };
        let photo_png = encode(&photo(400, 400, 30), ImageFormat::Png);
        let text = encode(&text_picture(600, 400, 31), ImageFormat::Png);
        let f = check([&photo_png[..], &text[..]].into_iter(), &Known::default(), &cfg);
        assert!(f.is_empty(), "the second picture is over the budget: {f:?}");
    }
}
