//! `mxguard image-hash [--learn] [--label TEXT] FILE...`: the perceptual hashes of the pictures
//! in messages (`.eml`) or picture files, and with `--learn` their addition to the known spam
//! pictures of `lists.dir`/image-hashes.txt, which the running gateway reloads by itself.
//!
//! Prints one line per picture: hash, size, format, text-likeness, frames, source. Learning
//! skips pictures already listed (same hash) and those below the scanned size (`image.min_*`:
//! they would never be compared); it only ever appends to the list, never rewrites it.

use std::io::Write;
use std::path::Path;

use mxguard_scan::images::{self, Look};
use mxguard_tuning as k;

pub fn image_hash(args: Vec<String>) -> Result<(), String> {
    let mut learn = false;
    let mut label = None;
    let mut files = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--learn" => learn = true,
            "--label" => label = Some(it.next().ok_or("--label needs a text")?),
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        return Err("usage: mxguard image-hash [--learn] [--label TEXT] FILE...".into());
    }
    // Every picture of scanned size is measured here, whatever the sampling knobs say.
    let cfg = images::Config { sample_percent: 100, max_images: usize::MAX, ..mxguard_scan::image_config() };
    let list = crate::in_state_dir(&k::LISTS_DIR.get_str()).join(mxguard_scan::IMAGE_HASHES);
    let existing = match std::fs::read_to_string(&list) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", list.display())),
    };
    let known = images::Known::parse(&existing, &list.display().to_string()).map_err(|e| e.join("\n"))?;
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
    if learn && !new_lines.is_empty() {
        let lines: Vec<String> = new_lines.iter().map(|(h, l)| images::hash_line(*h, &list_label(l))).collect();
        append_lines(&list, &existing, &lines)?;
        println!("learnt {} picture(s) into {}", new_lines.len(), list.display());
    } else if learn {
        println!("nothing new to learn");
    }
    Ok(())
}

/// A label as one field of a list line: no line breaks, no comment sign.
pub fn list_label(l: &str) -> String {
    l.chars().map(|c| if c.is_control() || c == '#' { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// Appends `lines` to a learnt list (`existing` is what it holds now), fsync'd; never rewrites
/// it. The running gateway's list watcher reloads it.
pub fn append_lines(list: &Path, existing: &str, lines: &[String]) -> Result<(), String> {
    if let Some(dir) = list.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // A last line without its line end is finished first, not extended.
    let mut text = if existing.is_empty() || existing.ends_with('\n') { String::new() } else { "\n".to_string() };
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(list).map_err(|e| format!("{}: {e}", list.display()))?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", list.display()))
}
