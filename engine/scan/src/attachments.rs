//! Attachment checks: blocked extensions, double extensions, executables by magic bytes, names
//! that lie about the type, Internet Shortcuts read for where they point ([`crate::shortcut`]),
//! Apple configuration profiles (`.mobileconfig`: opened, they install certificates, VPNs or
//! mail accounts; `ATTACH_APPLE_PROFILE`), and zip archives opened (nested) within bomb limits.
//!
//! Costs and guarantees: an archive is walked entry by entry; an entry's content is read only to
//! learn its type (first 32 KiB) or to open it as a nested zip, and never beyond what is left of
//! `total_bytes_max` for the whole message — a bomb is detected by what it inflates to, not by the
//! sizes it declares. Depth, entry count and compression ratio are bounded too. Nothing here
//! writes a file or executes anything; encrypted entries are not decrypted, only reported.

use std::collections::HashSet;
use std::io::Read;

use crate::magic::{detect, FileType};
use crate::shortcut;

/// Extensions of harmless-looking types a double extension hides behind.
const DECOY: &[&str] = &["pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "jpg", "jpeg", "png", "gif", "rtf", "csv", "htm", "html", "zip", "mp3", "mp4", "odt"];

#[derive(Debug, Clone)]
pub struct Limits {
    pub depth_max: usize,
    pub entries_max: usize,
    pub ratio_max: u64,
    pub total_bytes_max: u64,
}

pub struct Policy<'a> {
    pub blocked: &'a HashSet<String>,
    pub limits: Limits,
}

pub type Finding = (&'static str, String);

/// One file looked at (an attachment, or an archive entry at some depth).
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub kind: FileType,
    pub size: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub seen: Vec<Seen>,
}

impl Report {
    fn add(&mut self, sym: &'static str, reason: String) {
        if !self.findings.iter().any(|(s, _)| *s == sym) {
            self.findings.push((sym, reason));
        }
    }
}

/// Checks the attachments `(name, data)` of one message.
pub fn check<'d>(files: impl IntoIterator<Item = (Option<&'d str>, &'d [u8])>, policy: &Policy<'_>) -> Report {
    let mut r = Report::default();
    let mut budget = policy.limits.total_bytes_max;
    for (name, data) in files {
        let name = name.unwrap_or("");
        check_file(name, data, 0, policy, &mut budget, &mut r);
    }
    r
}

/// A file name as Windows stores it: the last piece of a path, trailing dots and spaces dropped
/// (Windows drops them, so `love.js.` and `run.exe ` open as `love.js` and `run.exe`).
fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name).trim_end_matches(['.', ' '])
}

/// A file name's extension as Windows opens it: lower case, after the last dot of
/// [`base_name`]; empty when there is none.
pub(crate) fn extension(name: &str) -> String {
    match base_name(name).rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.trim().to_ascii_lowercase(),
        _ => String::new(),
    }
}

fn check_file(name: &str, data: &[u8], depth: usize, policy: &Policy<'_>, budget: &mut u64, r: &mut Report) {
    let kind = detect(data);
    r.seen.push(Seen { path: name.to_string(), kind, size: data.len() as u64 });
    let ext = extension(name);
    let inside = if depth > 0 { " inside an archive" } else { "" };
    if !ext.is_empty() && policy.blocked.contains(&ext) {
        let sym = if depth > 0 { "ARCHIVE_BLOCKED_ENTRY" } else { "ATTACH_BLOCKED_EXT" };
        r.add(sym, format!("attachment {name}{inside} has the blocked extension .{ext}"));
    }
    // `invoice.pdf.exe`, `photo.jpg      .scr`
    let parts: Vec<&str> = base_name(name).split('.').collect();
    if parts.len() >= 3 {
        let prev = parts[parts.len() - 2].trim().to_ascii_lowercase();
        if DECOY.contains(&prev.as_str()) && (policy.blocked.contains(&ext) || kind.is_executable()) {
            r.add("ATTACH_DOUBLE_EXT", format!("attachment {name}{inside} hides .{ext} behind .{prev}"));
        }
    }
    if kind.is_executable() {
        let sym = if depth > 0 { "ARCHIVE_BLOCKED_ENTRY" } else { "ATTACH_EXECUTABLE" };
        r.add(sym, format!("attachment {name}{inside} is a {} executable", kind.name()));
    }
    if kind != FileType::Unknown && !ext.is_empty() && !kind.extensions().contains(&ext.as_str()) && (kind.is_executable() || kind.is_archive() || kind == FileType::Iso) {
        r.add("ATTACH_TYPE_MISMATCH", format!("attachment {name}{inside} is named .{ext} but is {}", kind.name()));
    }
    // Internet Shortcuts not blocked by name: passed when they only point at the web.
    if shortcut::is_shortcut_extension(&ext) && !policy.blocked.contains(&ext) {
        match shortcut::read(data) {
            Ok(_) => r.add("ATTACH_SHORTCUT", format!("attachment {name}{inside} is a web shortcut")),
            Err(why) => r.add("ATTACH_SHORTCUT_UNSAFE", format!("attachment {name}{inside} is a shortcut {why}")),
        }
    }
    if ext == "mobileconfig" || is_apple_profile(data) {
        r.add("ATTACH_APPLE_PROFILE", format!("attachment {name}{inside} is an Apple configuration profile"));
    }
    if kind == FileType::Iso && !policy.blocked.contains(&ext) {
        r.add("ATTACH_BLOCKED_EXT", format!("attachment {name}{inside} is a disk image"));
    }
    if kind == FileType::Zip {
        open_zip(name, data, depth + 1, policy, budget, r);
    }
}

fn open_zip(name: &str, data: &[u8], depth: usize, policy: &Policy<'_>, budget: &mut u64, r: &mut Report) {
    let l = &policy.limits;
    if depth > l.depth_max {
        r.add("ARCHIVE_TOO_DEEP", format!("{name} nests archives deeper than {} levels", l.depth_max));
        return;
    }
    let mut zip = match zip::ZipArchive::new(std::io::Cursor::new(data)) {
        Ok(z) => z,
        Err(e) => {
            r.add("ARCHIVE_UNREADABLE", format!("{name} is not a readable zip: {e}"));
            return;
        }
    };
    if zip.len() > l.entries_max {
        r.add("ARCHIVE_BOMB", format!("{name} holds {} entries (limit {})", zip.len(), l.entries_max));
        return;
    }
    for i in 0..zip.len() {
        let (entry_name, size, compressed, encrypted, is_dir) = match zip.by_index_raw(i) {
            Ok(f) => (f.name().to_string(), f.size(), f.compressed_size(), f.encrypted(), f.is_dir()),
            Err(e) => {
                r.add("ARCHIVE_UNREADABLE", format!("{name}: entry {i}: {e}"));
                return;
            }
        };
        if is_dir {
            continue;
        }
        let path = format!("{name}/{entry_name}");
        if encrypted {
            r.add("ARCHIVE_ENCRYPTED", format!("{name} holds the password-protected {entry_name}"));
            // The name still tells something.
            check_name_only(&path, &entry_name, policy, r);
            continue;
        }
        if compressed > 0 && size / compressed.max(1) > l.ratio_max && size > 1 << 20 {
            r.add("ARCHIVE_BOMB", format!("{path} inflates {}:1 (limit {}:1)", size / compressed.max(1), l.ratio_max));
            return;
        }
        if *budget == 0 {
            r.add("ARCHIVE_BOMB", format!("{name} inflates beyond {} bytes", l.total_bytes_max));
            return;
        }
        let mut f = match zip.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                r.add("ARCHIVE_UNREADABLE", format!("{path}: {e}"));
                continue;
            }
        };
        // Read what the type check needs; the whole entry only when it is a zip itself.
        let mut head = Vec::new();
        let head_max = (32 * 1024 + 8).min(*budget);
        if (&mut f).take(head_max).read_to_end(&mut head).is_err() {
            r.add("ARCHIVE_UNREADABLE", format!("{path}: cannot inflate"));
            continue;
        }
        let mut content = head;
        if detect(&content) == FileType::Zip {
            let room = budget.saturating_sub(content.len() as u64);
            if (&mut f).take(room + 1).read_to_end(&mut content).is_err() {
                r.add("ARCHIVE_UNREADABLE", format!("{path}: cannot inflate"));
                continue;
            }
        } else {
            // Count the rest against the budget without keeping it (a bomb is what it inflates to).
            let room = budget.saturating_sub(content.len() as u64);
            let rest = std::io::copy(&mut (&mut f).take(room + 1), &mut std::io::sink()).unwrap_or(0);
            *budget = budget.saturating_sub(rest);
            if rest > room {
                r.add("ARCHIVE_BOMB", format!("{name} inflates beyond {} bytes", l.total_bytes_max));
                return;
            }
        }
        if content.len() as u64 > *budget {
            r.add("ARCHIVE_BOMB", format!("{name} inflates beyond {} bytes", l.total_bytes_max));
            return;
        }
        *budget -= content.len() as u64;
        drop(f);
        check_file(&path, &content, depth, policy, budget, r);
    }
}

/// An Apple configuration profile by its content: a property list with the profile's own
/// keys (plain XML; a signed profile carries the same XML inside its signature). Looks at the
/// first 64 KiB.
fn is_apple_profile(data: &[u8]) -> bool {
    let head = &data[..data.len().min(64 * 1024)];
    let has = |needle: &[u8]| memchr::memmem::find(head, needle).is_some();
    has(b"<key>PayloadContent</key>") && has(b"<key>PayloadType</key>") && has(b"Configuration")
}

fn check_name_only(path: &str, entry: &str, policy: &Policy<'_>, r: &mut Report) {
    let ext = extension(entry);
    if !ext.is_empty() && policy.blocked.contains(&ext) {
        r.add("ARCHIVE_BLOCKED_ENTRY", format!("{path} has the blocked extension .{ext}"));
    } else if shortcut::is_shortcut_extension(&ext) {
        // Where it points cannot be read: a doubtful shortcut is refused.
        r.add("ATTACH_SHORTCUT_UNSAFE", format!("{path} is a shortcut that cannot be read in a password-protected archive"));
    }
}

/// The blocked-extension set from a comma list plus list-file lines (`exe`, `.exe`, `*.exe`).
/// Runs `f` with the blocked set of the knob's value (`generation` is the knob's, `knob` reads
/// it) and the file's lines. The set is built once per thread and kept until the knob or the
/// lines change: building it allocates a string per extension, checking costs a comparison of
/// the lines.
pub fn with_blocked<R>(generation: u64, knob: impl FnOnce() -> String, file_lines: &str, f: impl FnOnce(&HashSet<String>) -> R) -> R {
    use std::cell::RefCell;
    thread_local! {
        static CACHE: RefCell<Option<(u64, String, HashSet<String>)>> = const { RefCell::new(None) };
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let fresh = c.as_ref().is_some_and(|(g, lines, _)| *g == generation && lines == file_lines);
        if !fresh {
            *c = Some((generation, file_lines.to_string(), blocked_set(&knob(), file_lines)));
        }
        let (_, _, set) = c.as_ref().expect("just filled");
        f(set)
    })
}

pub fn blocked_set(knob: &str, file_lines: &str) -> HashSet<String> {
    knob.split(',')
        .chain(file_lines.lines().filter(|l| !l.trim_start().starts_with('#')))
        .map(|e| e.trim().trim_start_matches('*').trim_start_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_blocked_set_is_rebuilt_when_the_knob_or_the_file_changes() {
        let has = |g: u64, knob: &str, lines: &str, ext: &str| with_blocked(g, || knob.to_string(), lines, |b| b.contains(ext));
        assert!(has(1, "exe,scr", "", "exe"));
        assert!(has(1, "ignored: generation 1 is cached", "", "scr"), "the same generation and lines: the kept set");
        assert!(!has(2, "scr", "", "exe"), "a new knob generation");
        assert!(has(2, "scr", "# list\n*.iso\n", "iso"), "new file lines");
        assert!(!has(2, "scr", "", "iso"));
    }

    fn zip_of(entries: &[(&str, &[u8])], password: bool) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (n, d) in entries {
            let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            w.start_file(*n, o).unwrap();
            w.write_all(d).unwrap();
        }
        let mut z = w.finish().unwrap().into_inner();
        if password {
            // Set the "encrypted" flag bit in every local and central header, as a
            // password-protected archive has it (the content need not be decryptable here).
            for i in 0..z.len().saturating_sub(10) {
                if z[i..].starts_with(b"PK\x03\x04") {
                    z[i + 6] |= 1;
                } else if z[i..].starts_with(b"PK\x01\x02") {
                    z[i + 8] |= 1;
                }
            }
        }
        z
    }

    fn policy(blocked: &HashSet<String>) -> Policy<'_> {
        Policy { blocked, limits: Limits { depth_max: 3, entries_max: 100, ratio_max: 100, total_bytes_max: 10 << 20 } }
    }

    fn syms(files: &[(Option<&str>, &[u8])]) -> Vec<&'static str> {
        let b = blocked_set(mxguard_tuning::SCAN_BLOCKED_EXTENSIONS.default, "");
        let mut s: Vec<_> = check(files.iter().copied(), &policy(&b)).findings.into_iter().map(|f| f.0).collect();
        s.sort();
        s
    }

    #[test]
    fn names_and_magic() {
        assert_eq!(syms(&[(Some("invoice.pdf"), b"%PDF-1.4")]), Vec::<&str>::new());
        assert_eq!(syms(&[(Some("setup.exe"), b"MZ\x90")]), vec!["ATTACH_BLOCKED_EXT", "ATTACH_EXECUTABLE"]);
        assert_eq!(syms(&[(Some("invoice.pdf.exe"), b"MZ")]), vec!["ATTACH_BLOCKED_EXT", "ATTACH_DOUBLE_EXT", "ATTACH_EXECUTABLE"]);
        assert_eq!(syms(&[(Some("invoice.pdf"), b"MZ\x90")]), vec!["ATTACH_EXECUTABLE", "ATTACH_TYPE_MISMATCH"]);
        assert_eq!(syms(&[(Some("love.js"), b"var x")]), vec!["ATTACH_BLOCKED_EXT"]);
        assert_eq!(syms(&[(Some("x.txt"), b"hello")]), Vec::<&str>::new());
        // Windows drops a name's trailing dots and spaces: these open as what they end in.
        assert_eq!(syms(&[(Some("love.js."), b"var x")]), vec!["ATTACH_BLOCKED_EXT"]);
        assert_eq!(syms(&[(Some("invoice.pdf.vbs . "), b"x")]), vec!["ATTACH_BLOCKED_EXT", "ATTACH_DOUBLE_EXT"]);
    }

    #[test]
    fn apple_configuration_profiles() {
        let profile = b"<?xml version=\"1.0\"?>\n<plist version=\"1.0\"><dict><key>PayloadContent</key><array><dict><key>PayloadType</key><string>com.apple.vpn.managed</string></dict></array><key>PayloadType</key><string>Configuration</string></dict></plist>";
        assert_eq!(syms(&[(Some("Update.mobileconfig"), profile)]), vec!["ATTACH_APPLE_PROFILE"]);
        // By its content under any name, and inside an archive.
        assert_eq!(syms(&[(Some("settings.xml"), profile)]), vec!["ATTACH_APPLE_PROFILE"]);
        assert_eq!(syms(&[(Some("a.zip"), &zip_of(&[("wifi.mobileconfig", profile)], false))]), vec!["ATTACH_APPLE_PROFILE"]);
        // Another property list is not one.
        let plist = b"<plist><dict><key>CFBundleName</key><string>App</string></dict></plist>";
        assert!(syms(&[(Some("Info.plist"), plist)]).is_empty());
    }

    #[test]
    fn nested_zips_are_opened() {
        let inner = zip_of(&[("readme.txt", b"hi"), ("run.scr", b"MZ\x90\x00")], false);
        let outer = zip_of(&[("docs/inner.zip", &inner)], false);
        assert_eq!(syms(&[(Some("a.zip"), &outer)]), vec!["ARCHIVE_BLOCKED_ENTRY"]);
        // An executable named innocently inside an archive.
        let z = zip_of(&[("photo.jpg", b"MZ\x90\x00")], false);
        assert_eq!(syms(&[(Some("a.zip"), &z)]), vec!["ARCHIVE_BLOCKED_ENTRY", "ATTACH_TYPE_MISMATCH"]);
    }

    #[test]
    fn bombs_and_depth() {
        // 50 MB of zeros deflates to ~50 KB: ratio and total both trip.
        let big = vec![0u8; 50 << 20];
        let z = zip_of(&[("zeros.bin", &big)], false);
        assert!(z.len() < 1 << 20);
        assert_eq!(syms(&[(Some("bomb.zip"), &z)]), vec!["ARCHIVE_BOMB"]);
        // Many entries.
        let names: Vec<String> = (0..150).map(|i| format!("f{i}.txt")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        assert_eq!(syms(&[(Some("many.zip"), &zip_of(&entries, false))]), vec!["ARCHIVE_BOMB"]);
        // Depth: 5 levels of zip in zip.
        let mut z = zip_of(&[("a.txt", b"x")], false);
        for i in 0..5 {
            z = zip_of(&[(&format!("l{i}.zip"), &z)], false);
        }
        assert_eq!(syms(&[(Some("deep.zip"), &z)]), vec!["ARCHIVE_TOO_DEEP"]);
        // Password-protected: flagged, its names still checked.
        let z = zip_of(&[("doc.txt", b"x"), ("payload.exe", b"MZ")], true);
        assert_eq!(syms(&[(Some("locked.zip"), &z)]), vec!["ARCHIVE_BLOCKED_ENTRY", "ARCHIVE_ENCRYPTED"]);
        // Garbage that starts like a zip.
        assert_eq!(syms(&[(Some("bad.zip"), b"PK\x03\x04garbage")]), vec!["ARCHIVE_UNREADABLE"]);
    }

    #[test]
    fn shortcuts_are_read_for_where_they_point() {
        let web: &[u8] = b"[InternetShortcut]\r\nURL=https://example.com/a\r\n";
        let share: &[u8] = b"[InternetShortcut]\r\nURL=file://198.51.100.7/s/x.exe\r\n";
        assert_eq!(syms(&[(Some("Liberalism in America.url"), web)]), vec!["ATTACH_SHORTCUT"]);
        assert_eq!(syms(&[(Some("invoice.url"), share)]), vec!["ATTACH_SHORTCUT_UNSAFE"]);
        assert_eq!(syms(&[(Some("invoice.WEBSITE"), b"not a shortcut")]), vec!["ATTACH_SHORTCUT_UNSAFE"]);
        // Inside an archive too, and unreadable inside a locked one.
        assert_eq!(syms(&[(Some("a.zip"), &zip_of(&[("open.url", share)], false))]), vec!["ATTACH_SHORTCUT_UNSAFE"]);
        assert_eq!(syms(&[(Some("a.zip"), &zip_of(&[("open.url", web)], false))]), vec!["ATTACH_SHORTCUT"]);
        assert_eq!(syms(&[(Some("a.zip"), &zip_of(&[("open.url", web)], true))]), vec!["ARCHIVE_ENCRYPTED", "ATTACH_SHORTCUT_UNSAFE"]);
        // A postmaster who lists the extension blocks every shortcut by name, as before.
        let b = blocked_set("url", "");
        let found: Vec<_> = check([(Some("a.url"), web)], &policy(&b)).findings.into_iter().map(|f| f.0).collect();
        assert_eq!(found, vec!["ATTACH_BLOCKED_EXT"]);
        // A shortcut named as something else is not opened as one by Windows: a text file.
        assert_eq!(syms(&[(Some("notes.txt"), share)]), Vec::<&str>::new());
    }
}
