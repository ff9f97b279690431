//! `mxguard image-hash [--learn] [--label TEXT] FILE...`: the perceptual hashes of the pictures
//! in messages (`.eml`) or picture files, and with `--learn` their addition to the known spam
//! pictures of `lists.dir`/image-hashes.txt, which the running gateway reloads by itself.
//!
//! Prints one line per picture: hash, size, format, text-likeness, frames, source. Learning
//! skips pictures already listed (same hash) and those below the scanned size (`image.min_*`:
//! they would never be compared); it only ever appends to the list, never rewrites it.

use mxguard_scan::images::{self, Look};

use crate::learnt_list::{self, Args, List};

pub fn image_hash(args: Vec<String>) -> Result<(), String> {
    let Args { learn, label, inputs: files } = learnt_list::args(args, "usage: mxguard image-hash [--learn] [--label TEXT] FILE...")?;
    // Every picture of scanned size is measured here, whatever the sampling knobs say.
    let cfg = images::Config { sample_percent: 100, max_images: usize::MAX, ..mxguard_scan::image_config() };
    let list = List::open(mxguard_scan::IMAGE_HASHES)?;
    let known = images::Known::parse(&list.text, &list.name()).map_err(|e| e.join("\n"))?;
    let mut new_lines = Vec::new();
    for file in &files {
        let data = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        let pictures: Vec<Vec<u8>> = if images::format_of(&data).is_some() {
            vec![data]
        } else {
            let raw = mxguard_smtp::stuff::to_crlf(&data);
            let p = mxguard_scan::parse(&raw);
            p.attachments().iter().filter(|a| images::format_of(a.data).is_some()).map(|a| a.data.to_vec()).collect()
        };
        if pictures.is_empty() {
            println!("{file}: no PNG, JPEG or GIF picture");
        }
        for (i, pic) in pictures.iter().enumerate() {
            let source = if pictures.len() > 1 { format!("{file}#{}", i + 1) } else { file.clone() };
            match images::look(pic, &cfg, true) {
                Look::Measured(m) => {
                    let listed = known.nearest(m.hash, 0).is_some() || new_lines.iter().any(|(h, _)| *h == m.hash);
                    println!(
                        "{:016x}  {}x{} {} likeness {}/15 frames {}{}  {source}",
                        m.hash,
                        m.width,
                        m.height,
                        m.format,
                        m.likeness,
                        m.frames,
                        if listed { " (listed)" } else { "" }
                    );
                    if learn && !listed {
                        new_lines.push((m.hash, label.clone().unwrap_or_else(|| source.clone())));
                    }
                }
                Look::Small(w, h) => println!("{source}: {w}x{h}, below image.min_width x image.min_height: not scanned, not learnt"),
                Look::TooLarge => println!("{source}: over image.max_bytes or image.max_pixels: not scanned, not learnt"),
                Look::NotSampled => println!("{source}: not sampled"),
                Look::Corrupt(why) => println!("{source}: does not decode: {why}"),
            }
        }
    }
    let lines: Vec<String> = new_lines.iter().map(|(h, l)| images::hash_line(*h, &learnt_list::label(l))).collect();
    list.learn(learn, &lines, "picture(s)")
}
