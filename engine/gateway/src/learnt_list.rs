//! What `mxguard image-hash` and `mxguard bulk-signature` share: their `[--learn] [--label TEXT]
//! INPUT...` arguments, the learnt list of `lists.dir` as it is now, and appending to it — only
//! ever appending, fsync'd, never rewriting (the running gateway's list watcher reloads it).

use std::io::Write;
use std::path::PathBuf;

use mxguard_tuning as k;

/// The arguments of a learning command.
pub struct Args {
    pub learn: bool,
    pub label: Option<String>,
    pub inputs: Vec<String>,
}

/// Parses `[--learn] [--label TEXT] INPUT...`; `usage` when no input is given.
pub fn args(args: Vec<String>, usage: &str) -> Result<Args, String> {
    let mut a = Args { learn: false, label: None, inputs: Vec::new() };
    let mut it = args.into_iter();
    while let Some(x) = it.next() {
        match x.as_str() {
            "--learn" => a.learn = true,
            "--label" => a.label = Some(it.next().ok_or("--label needs a text")?),
            _ => a.inputs.push(x),
        }
    }
    if a.inputs.is_empty() {
        return Err(usage.into());
    }
    Ok(a)
}

/// A learnt list file of `lists.dir` and what it holds now (empty when missing).
pub struct List {
    pub path: PathBuf,
    pub text: String,
}

impl List {
    pub fn open(name: &str) -> Result<List, String> {
        let path = crate::in_state_dir(&k::LISTS_DIR.get_str()).join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(List { path, text })
    }

    /// The file's name for parse errors.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// With `learn`, appends `lines` (fsync'd) and says how many `what` were learnt, or that
    /// nothing was new.
    pub fn learn(&self, learn: bool, lines: &[String], what: &str) -> Result<(), String> {
        if !learn {
            return Ok(());
        }
        if lines.is_empty() {
            println!("nothing new to learn");
            return Ok(());
        }
        let list = &self.path;
        if let Some(dir) = list.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        // A last line without its line end is finished first, not extended.
        let mut text = if self.text.is_empty() || self.text.ends_with('\n') { String::new() } else { "\n".to_string() };
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(list).map_err(|e| format!("{}: {e}", list.display()))?;
        f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", list.display()))?;
        println!("learnt {} {what} into {}", lines.len(), list.display());
        Ok(())
    }
}

/// A label as one field of a list line: no line breaks, no comment sign.
pub fn label(l: &str) -> String {
    l.chars().map(|c| if c.is_control() || c == '#' { ' ' } else { c }).collect::<String>().trim().to_string()
}
