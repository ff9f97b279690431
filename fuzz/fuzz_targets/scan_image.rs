//! The image check over arbitrary bytes as a picture: magic detection, the PNG/JPEG/GIF header
//! probe, decoding within the pixel limit, sampling, the perceptual hash and GIF frame counting.
//! Must never panic, hang or allocate beyond the limits, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxguard_scan::images;

fuzz_target!(|data: &[u8]| {
    // Every picture is decoded (no minimum size), small limits keep each run quick.
    let cfg = images::Config { min_width: 0, min_height: 0, max_pixels: 1 << 20, ..images::Config::reference() };
    let _ = images::look(data, &cfg, true);
    let _ = images::gif_frames(data, 64);
});
