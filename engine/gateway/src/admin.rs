//! The admin socket: a Unix socket in the state directory through which `mxguard sysctl` reads
//! and changes knobs of the running gateway.
//!
//! Protocol: one request line, answered by zero or more lines and a final `OK` or `ERR reason`.
//! `list`, `get NAME`, `set NAME VALUE`, `reload`, `learn spam|ham PATH<TAB>PATH...`. Only root (or the socket's owner; mode 0600) can connect.
//! A knob that is read only at start-up is refused with a message saying so, never half-applied.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use mxguard_telemetry::Event;
use mxguard_tuning as tuning;

/// Serves the socket on a background thread.
pub fn serve(path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new().name("admin".into()).spawn(move || {
        for conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let _ = handle(conn);
        }
    })?;
    Ok(())
}

fn handle(conn: UnixStream) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut line = String::new();
    BufReader::new(conn).take(64 * 1024).read_line(&mut line)?;
    let line = line.trim();
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    match cmd {
        "list" => {
            for k in tuning::ALL {
                writeln!(out, "{} = {}", k.name, k.value_text())?;
            }
            writeln!(out, "OK")
        }
        "get" => match tuning::find(rest.trim()) {
            Some(k) => writeln!(out, "{} = {}\nOK", k.name, k.value_text()),
            None => writeln!(out, "ERR unknown knob `{}`", rest.trim()),
        },
        "set" => {
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            match tuning::find(name.trim()) {
                None => writeln!(out, "ERR unknown knob `{}`", name.trim()),
                Some(k) if !k.live => writeln!(
                    out,
                    "ERR {} is read at start-up only: put it in the config file and restart",
                    k.name
                ),
                Some(k) => match k.set(value) {
                    Ok(()) => {
                        Event::new("sysctl").str("knob", k.name).str("value", &k.value_text()).emit();
                        writeln!(out, "{} = {}\nOK", k.name, k.value_text())
                    }
                    Err(e) => writeln!(out, "ERR {e}"),
                },
            }
        }
        "reload" => match (mxguard_policy::tables::reload_now(), crate::run::install_country_db()) {
            (Ok(n), Ok(c)) => writeln!(out, "lists reloaded: {n} entries\ncountry database: {}\nOK", c.unwrap_or_else(|| "none".into())),
            (Err(errors), _) => writeln!(out, "ERR lists not reloaded, the previous lists stay in force: {}", errors.join("; ")),
            (_, Err(e)) => writeln!(out, "ERR country database not reloaded, the previous one stays in force: {e}"),
        },
        "digest" => match mxguard_console::digest_now() {
            Ok(n) => writeln!(out, "sent {n} digest(s)\nOK"),
            Err(e) => writeln!(out, "ERR {e}"),
        },
        "learn" => match crate::learning::admin_learn(rest) {
            Ok(said) => writeln!(out, "{said}\nOK"),
            Err(e) => writeln!(out, "ERR {e}"),
        },
        _ => writeln!(out, "ERR unknown request (list, get NAME, set NAME VALUE, reload, learn spam|ham PATH)"),
    }
}

use std::io::Read;

/// Sends one request to a running gateway; returns its answer lines (without the final OK).
pub fn request(path: &Path, req: &str) -> Result<Vec<String>, String> {
    let mut s = UnixStream::connect(path).map_err(|e| format!("{}: {e} (is the gateway running?)", path.display()))?;
    s.write_all(format!("{req}\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    for l in BufReader::new(s).lines() {
        let l = l.map_err(|e| e.to_string())?;
        if l == "OK" {
            return Ok(lines);
        }
        if let Some(e) = l.strip_prefix("ERR ") {
            return Err(e.to_string());
        }
        lines.push(l);
    }
    Err("the gateway closed the admin socket without an answer".into())
}
