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

use crate::learnt_list::{self, Args, List};

pub fn bulk_signature(args: Vec<String>) -> Result<(), String> {
    let Args { learn, label, inputs } = learnt_list::args(args, "usage: mxguard bulk-signature [--learn] [--label TEXT] FILE|DIR|MBOX...")?;
    let paths: Vec<PathBuf> = inputs.into_iter().map(PathBuf::from).collect();
    let list = List::open(mxguard_scan::BULK_SIGNATURES)?;
    let mut known = Known::parse(&list.text, &list.name()).map_err(|e| e.join("\n"))?;
    let mut new_lines = Vec::new();
    for path in &paths {
        let messages = crate::mailfiles::messages(path)?;
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
                let l = learnt_list::label(label.as_deref().unwrap_or(&source));
                // Later messages of the same run are matched against it too.
                known.add(&bands, &l);
                new_lines.push(fingerprint::signature_line(&bands, &l));
            }
        }
    }
    list.learn(learn, &new_lines, "signature(s)")
}
