//! `mxguard`: the gateway binary.
//!
//! ```text
//! mxguard [run] [--config FILE]... [--set name=value]...   start the gateway (the default)
//! mxguard sysctl -a | NAME | NAME=VALUE [--config FILE]    read or change knobs of the running gateway
//! mxguard sysctl --markdown | --conf                       print the generated knob docs / config
//! mxguard explain FILE.eml [--rcpt ADDRESS]                 the content verdict of a message
//! mxguard image-hash [--learn] [--label TEXT] FILE...       hashes of pictures; learn them as spam
//! mxguard bulk-signature [--learn] [--label TEXT] FILE...   text fingerprints; learn them as spam
//! mxguard user add LOGIN [--role R] [--domains D,...] [--members A,...]   a web console account (password on stdin)
//! mxguard user token LOGIN [--label TEXT]                 a JSON API token acting as LOGIN
//! mxguard digest                                           send the quarantine digests now
//! mxguard learn --spam|--ham FILE|DIR|MBOX...              teach Bayes (the running gateway, or its file)
//! mxguard weights                                          the learned symbol weights beside the hand-set scores
//! mxguard version
//! mxguard manpage [mxguard | mxguard.conf]                 the manual pages, in roff
//! mxguard seed check FILE | render FILE DIR               check an appliance seed / write its files
//! ```

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

mod accounts;
mod admin;
mod antivirus;
mod authentication;
mod bulksig;
mod explain;
mod greylisting;
mod handler;
mod imagehash;
mod learning;
mod learnt_list;
mod mailfiles;
mod manual;
mod pickup;
mod ready;
mod run;
mod screen;
mod seed;
mod seed_render;
mod traffic;
mod weighing;

use std::path::PathBuf;
use std::process::ExitCode;

use mxguard_tuning as tuning;

/// Each subcommand and its usage: `mxguard help` prints them all, `mxguard CMD --help` its own.
const COMMANDS: &[(&str, &str)] = &[
    ("run", "mxguard [run] [--config FILE]... [--set name=value]...
      start the gateway (the default); knobs from the files and --set, in order"),
    ("sysctl", "mxguard sysctl [-a | NAME | NAME=VALUE]... [--config FILE]...
      read or change knobs of the running gateway
  mxguard sysctl --markdown | --conf
      print the generated knob reference / a config file with every knob"),
    ("reload", "mxguard reload
      re-read the list files now"),
    ("explain", "mxguard explain FILE.eml [--rcpt ADDRESS]
      symbols, scores and action of a message; no gateway needed"),
    ("image-hash", "mxguard image-hash [--learn] [--label TEXT] FILE...
      picture hashes; --learn lists them as spam"),
    ("bulk-signature", "mxguard bulk-signature [--learn] [--label TEXT] FILE|DIR|MBOX...
      text fingerprints; --learn lists them as spam"),
    ("user", "mxguard user add LOGIN [--role user|technician|subadmin|domain-admin|superadmin] [--domains D,...] [--members A,...] [--password-hash]
      a web console account (its password, or with --password-hash its Argon2id PHC string, on stdin)
  mxguard user token LOGIN [--label TEXT]
      a JSON API token acting as LOGIN, printed once
  mxguard user hash
      the Argon2id PHC string of the password on stdin (for an appliance seed's [admin] password_hash)"),
    ("setup-code", "mxguard setup-code
      while no superadmin exists: a new one-time code for the console's /setup page, printed once"),
    ("digest", "mxguard digest
      send the quarantine digests now, through the running gateway"),
    ("learn", "mxguard learn --spam|--ham FILE|DIR|MBOX...
      teach Bayes and the learned weights: the running gateway, or their files"),
    ("weights", "mxguard weights
      the learned symbol weights beside the hand-set scores, and the lessons they were fitted on"),
    ("version", "mxguard version
      the version"),
    ("seed", "mxguard seed check FILE
      check an appliance seed file: every fault as FILE:LINE: reason
  mxguard seed render FILE DIR
      write the files a checked seed gives (network, firewall, SSH, knobs, ...) under DIR"),
    ("manpage", "mxguard manpage [mxguard | mxguard.conf]
      the manual page mxguard(8) or mxguard.conf(5), in roff"),
    ("help", "mxguard help [COMMAND] | -h | --help
      this text, or one command's"),
];

fn usage(cmd: Option<&str>) -> String {
    let picked: Vec<&str> = COMMANDS.iter().filter(|(c, _)| cmd.is_none_or(|w| w == *c)).map(|(_, u)| *u).collect();
    format!("usage:\n  {}", picked.join("\n  "))
}

/// Whether the arguments ask for help: `-h` or `--help` anywhere but as the value of an option
/// that takes one.
fn asks_help(args: &[String]) -> bool {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "-c" | "--set" | "--rcpt" | "--label" | "--role" | "--domains" | "--members" => {
                it.next();
            }
            "-h" | "--help" => return true,
            _ => {}
        }
    }
    false
}

/// Applies `--config` files and `--set` overrides, in order, all or nothing per item.
fn load_config(args: &mut Vec<String>) -> Result<(), String> {
    let mut rest = Vec::new();
    let mut it = std::mem::take(args).into_iter();
    if let Ok(path) = std::env::var("MXGUARD_CONFIG") {
        tuning::config::load_file(std::path::Path::new(&path)).map_err(|e| e.join("\n"))?;
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "-c" => {
                let p = it.next().ok_or("--config needs a file")?;
                tuning::config::load_file(std::path::Path::new(&p)).map_err(|e| e.join("\n"))?;
            }
            "--set" => {
                let kv = it.next().ok_or("--set needs name=value")?;
                tuning::config::parse(&kv, "--set").map_err(|e| e.join("\n"))?.apply();
            }
            _ => rest.push(a),
        }
    }
    *args = rest;
    Ok(())
}

/// `state.dir`, and a path knob resolved inside it unless absolute.
pub fn state_dir() -> PathBuf {
    PathBuf::from(&*tuning::STATE_DIR.get_str())
}

pub fn in_state_dir(value: &str) -> PathBuf {
    let p = PathBuf::from(value);
    if p.is_absolute() {
        p
    } else {
        state_dir().join(p)
    }
}

/// Prints a line; a closed stdout (`| head`) ends the output quietly instead of panicking.
fn out(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn sysctl(args: Vec<String>) -> Result<(), String> {
    if args.iter().any(|a| a == "--markdown") {
        out(tuning::doc::markdown().trim_end());
        return Ok(());
    }
    if args.iter().any(|a| a == "--conf") {
        out(tuning::doc::conf().trim_end());
        return Ok(());
    }
    let socket = in_state_dir(&tuning::ADMIN_SOCKET.get_str());
    let items: Vec<&String> = args.iter().filter(|a| *a != "-a").collect();
    if items.is_empty() {
        match admin::request(&socket, "list") {
            Ok(lines) => lines.iter().for_each(|l| out(l)),
            Err(e) => {
                eprintln!("mxguard: {e}; showing the configured values");
                for k in tuning::ALL {
                    out(&format!("{} = {}", k.name, k.value_text()));
                }
            }
        }
        return Ok(());
    }
    for item in items {
        let req = match item.split_once('=') {
            Some((n, v)) => format!("set {} {}", n.trim(), v.trim()),
            None => format!("get {}", item.trim()),
        };
        for l in admin::request(&socket, &req)? {
            out(&l);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match args.first().map(String::as_str) {
        None => "run".to_string(),
        Some("--version" | "-V") => {
            args.remove(0);
            "version".to_string()
        }
        Some(c) if c.starts_with('-') => "run".to_string(),
        Some(_) => args.remove(0),
    };
    if cmd == "help" {
        return match args.first().map(String::as_str) {
            Some("-h" | "--help") => {
                out(&usage(Some("help")));
                ExitCode::SUCCESS
            }
            Some(c) if !COMMANDS.iter().any(|(n, _)| *n == c) => {
                eprintln!("mxguard: no command {c:?}\n{}", usage(None));
                ExitCode::from(2)
            }
            c => {
                out(&usage(c));
                ExitCode::SUCCESS
            }
        };
    }
    if asks_help(&args) {
        // `mxguard --help` (no command given) is the whole usage; `mxguard CMD --help` its own.
        let known = COMMANDS.iter().any(|(n, _)| *n == cmd);
        let whole = !known || (cmd == "run" && std::env::args().nth(1).is_some_and(|a| a.starts_with('-')));
        out(&usage(if whole { None } else { Some(&cmd) }));
        return if known { ExitCode::SUCCESS } else { ExitCode::from(2) };
    }
    if let Err(e) = load_config(&mut args) {
        eprintln!("mxguard: {e}");
        return ExitCode::from(2);
    }
    let result = match cmd.as_str() {
        "run" if args.is_empty() => run::run(),
        "sysctl" => sysctl(args),
        "explain" => explain::explain(args),
        "image-hash" => imagehash::image_hash(args),
        "bulk-signature" => bulksig::bulk_signature(args),
        "user" => accounts::user_command(args),
        "setup-code" => accounts::setup_code_command(args),
        "learn" => learning::learn_command(args),
        "weights" => weighing::weights_command(args),
        "manpage" => manual::manpage_command(args),
        "seed" => seed::seed_command(args),
        "reload" | "digest" if args.is_empty() => admin::request(&in_state_dir(&tuning::ADMIN_SOCKET.get_str()), &cmd).map(|lines| lines.iter().for_each(|l| out(l))),
        "version" if args.is_empty() => {
            out(&format!("mxguard {}", env!("CARGO_PKG_VERSION")));
            Ok(())
        }
        c if COMMANDS.iter().any(|(n, _)| *n == c) => Err(format!("unexpected arguments: {}\n{}", args.join(" "), usage(Some(c)))),
        c => Err(format!("no command {c:?}\n{}", usage(None))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mxguard: {e}");
            ExitCode::FAILURE
        }
    }
}
