//! The files the console writes for admins: the per-domain filter settings
//! (`lists/domain-policy.txt`, which the gateway's list watcher reloads), the other files of the
//! lists directory (the superadmin edits them whole), the local domains file
//! (`relay.domains_file`) and the knob file (knob changes made in the console, applied again
//! after the config files at the next start).
//!
//! A change replaces the lines it concerns and keeps every other line (comments included) as it
//! was; the new text is checked with the same parser the gateway uses, then written to a
//! temporary file, fsync'd and renamed over the old one (and the directory fsync'd), so the
//! watcher never reads half a file and a crash leaves the old or the new one. Never: writes a
//! file the gateway would refuse.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `text` atomically and durably.
pub fn replace_file(path: &Path, text: &str) -> Result<(), String> {
    replace_with_mode(path, text, 0o666)
}

/// As [`replace_file`], readable and writable by its owner only (a secret's digest).
pub fn replace_private_file(path: &Path, text: &str) -> Result<(), String> {
    replace_with_mode(path, text, 0o600)
}

/// `mode` before the umask, as `File::create` (0o666) does.
fn replace_with_mode(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().ok_or_else(|| format!("{}: no directory", path.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = path.with_extension("console-tmp");
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", path.display())
    })
}

pub fn read_or_empty(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// A domain-policy line as (domain, setting, value); `None` for comments, blanks and lines the
/// parser would refuse anyway.
fn policy_line(line: &str) -> Option<(String, String, String)> {
    let l = line.trim();
    if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
        return None;
    }
    let (left, value) = l.split_once('=')?;
    let mut words = left.split_whitespace();
    let (domain, setting) = (words.next()?, words.next()?);
    Some((domain.to_ascii_lowercase(), setting.to_string(), value.trim().to_string()))
}

/// Every (domain, setting, value) of the domain-policy file, in file order.
pub fn policy_lines(path: &Path) -> Result<Vec<(String, String, String)>, String> {
    Ok(read_or_empty(path)?.lines().filter_map(policy_line).collect())
}

/// Sets `domain`'s `setting` to `value` (empty: removes it) in the domain-policy file.
pub fn set_policy(path: &Path, domain: &str, setting: &str, value: &str) -> Result<(), String> {
    if setting.is_empty() || setting.contains(char::is_whitespace) || value.contains(['\n', '\r']) {
        return Err("A setting is one word, and its value one line.".into());
    }
    let old = read_or_empty(path)?;
    let mut text: String = old
        .lines()
        .filter(|l| policy_line(l).is_none_or(|(d, s, _)| !(d == domain && s == setting)))
        .map(|l| format!("{l}\n"))
        .collect();
    if !value.is_empty() {
        text.push_str(&format!("{domain:<16}{setting:<24}= {value}\n"));
    }
    mxguard_policy::domains::DomainPolicies::parse(&path.display().to_string(), &text)?;
    replace_file(path, &text)
}

/// The domain a `domain[:host[:port]]` entry is for, as the route table keys it.
fn entry_domain(entry: &str) -> String {
    entry.split(':').next().unwrap_or("").trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The `relay.domains` knob's entries without `domain`'s, and whether it had one.
pub fn knob_without(knob: &str, domain: &str) -> (Vec<String>, bool) {
    let entries: Vec<&str> = knob.split([',', ' ', '\n']).map(str::trim).filter(|e| !e.is_empty()).collect();
    let had = entries.iter().any(|e| entry_domain(e) == domain);
    (entries.into_iter().filter(|e| entry_domain(e) != domain).map(String::from).collect(), had)
}

/// A domains file's text without `domain`'s line (comments and other lines kept), and whether it
/// had one.
pub fn file_without(text: &str, domain: &str) -> (String, bool) {
    let mut had = false;
    let kept = text
        .lines()
        .filter(|l| {
            let ours = entry_domain(l.split('#').next().unwrap_or("")) == domain;
            had |= ours;
            !ours
        })
        .map(|l| format!("{l}\n"))
        .collect();
    (kept, had)
}

/// Keeps `name = value` in the knob file (replacing an earlier line for `name`).
pub fn keep_knob(path: &Path, name: &str, value: &str) -> Result<(), String> {
    let old = read_or_empty(path)?;
    let mut text: String = old
        .lines()
        .filter(|l| l.split_once('=').is_none_or(|(n, _)| n.trim() != name))
        .map(|l| format!("{l}\n"))
        .collect();
    if text.is_empty() {
        text.push_str("# Knob changes made in the web console, applied after the config files at start.\n");
    }
    text.push_str(&format!("{name} = {value}\n"));
    mxguard_tuning::config::parse(&text, &path.display().to_string()).map_err(|e| e.join("; "))?;
    replace_file(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mxg-console-settings-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn domain_settings_replace_their_own_line_only() {
        let f = dir("policy").join("domain-policy.txt");
        std::fs::write(&f, "# ours\n*  greylist = on\nexample.test greylist = off\nother.test dnsbl = off\n").unwrap();
        set_policy(&f, "example.test", "greylist", "on").unwrap();
        set_policy(&f, "example.test", "verdict.reject_score", "25").unwrap();
        let lines = policy_lines(&f).unwrap();
        assert_eq!(
            lines,
            [
                ("*".into(), "greylist".into(), "on".into()),
                ("other.test".into(), "dnsbl".into(), "off".into()),
                ("example.test".into(), "greylist".into(), "on".into()),
                ("example.test".into(), "verdict.reject_score".into(), "25".into())
            ]
        );
        assert!(std::fs::read_to_string(&f).unwrap().starts_with("# ours\n"), "comments stay");
        assert!(set_policy(&f, "example.test", "no_such_check", "off").is_err(), "the gateway's parser decides");
        assert!(set_policy(&f, "example.test", "verdict.reject_score", "lots").is_err());
        set_policy(&f, "example.test", "greylist", "").unwrap();
        assert_eq!(policy_lines(&f).unwrap().len(), 3, "an empty value removes the line; the refused ones changed nothing");
    }

    #[test]
    fn route_entries_are_found_by_their_domain() {
        let (rest, had) = knob_without("a.test, B.test.:mx.b.test:2525,c.test", "b.test");
        assert!(had);
        assert_eq!(rest, ["a.test", "c.test"]);
        assert!(!knob_without("a.test", "b.test").1);
        let (text, had) = file_without("# ours\na.test:mx:25 # first\nab.test\n", "a.test");
        assert!(had);
        assert_eq!(text, "# ours\nab.test\n");
    }

    #[test]
    fn knob_file_keeps_the_last_value() {
        let f = dir("knobs").join("console-knobs.conf");
        keep_knob(&f, "smtp.max_recipients", "50").unwrap();
        keep_knob(&f, "smtp.max_recipients", "60").unwrap();
        assert!(keep_knob(&f, "smtp.max_recipients", "many").is_err());
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(text.matches("smtp.max_recipients").count(), 1, "{text}");
        assert!(text.contains("smtp.max_recipients = 60"));
    }
}
