//! `mxguard bulk-signature [--learn] [--label TEXT] FILE...`: the text fingerprints of messages
//! (`.eml` files, every file below a directory, or mbox files), and with `--learn` their
//! addition to the known spam texts of `lists.dir`/bulk-signatures.txt (BULK_KNOWN), which the
//! running gateway reloads by itself — the reference products' global spam signatures, kept
//! by the postmaster.
//!
//! Prints one line per message: its signature line (band keys) or why it has none. Learning skips
//! texts the list already matches and only ever appends to the list.

use std::path::PathBuf;

use mxguard_scan::fingerprint::{self, Known};
use mxguard_tuning as k;

use crate::imagehash::{append_lines, list_label};

pub fn bulk_signature(args: Vec<String>) -> Result<(), String> {
    let mut learn = false;
    let mut label = None;
    let mut paths = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--learn" => learn = true,
            "--label" => label = Some(it.next().ok_or("--label needs a text")?),
            _ => paths.push(PathBuf::from(a)),
        }
    }
    if paths.is_empty() {
        return Err("usage: mxguard bulk-signature [--learn] [--label TEXT] FILE|DIR|MBOX...".into());
    }
    let list = crate::in_state_dir(&k::LISTS_DIR.get_str()).join(mxguard_scan::BULK_SIGNATURES);
    let existing = match std::fs::read_to_string(&list) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", list.display())),
    };
    let mut known = Known::parse(&existing, &list.display().to_string()).map_err(|e| e.join("\n"))?;
    let mut new_lines = Vec::new();
    for path in &paths {
        let mut messages = Vec::new();
        crate::learning::messages_of(path, &mut messages)?;
        let many = messages.len() > 1;
        for (i, raw) in messages.iter().enumerate() {
            let source = if many { format!("{}#{}", path.display(), i + 1) } else { path.display().to_string() };
            let raw = mxguard_smtp::stuff::to_crlf(raw);
            let p = mxguard_scan::parse(&raw);
            let Some(bands) = fingerprint::fingerprint(&p.text, k::BULK_MIN_WORDS.get_usize()) else {
                println!("{source}: fewer than bulk.min_words words of text: no signature");
                continue;
            };
            let listed = known.matching(&bands).is_some();
            println!("{}{}  {source}", fingerprint::signature_line(&bands, ""), if listed { " (listed)" } else { "" });
            if learn && !listed {
                let l = list_label(label.as_deref().unwrap_or(&source));
                // Later messages of the same run are matched against it too.
                known.add(&bands, &l);
                new_lines.push(fingerprint::signature_line(&bands, &l));
            }
        }
    }
    if learn && !new_lines.is_empty() {
        append_lines(&list, &existing, &new_lines)?;
        println!("learnt {} signature(s) into {}", new_lines.len(), list.display());
    } else if learn {
        println!("nothing new to learn");
    }
    Ok(())
}
