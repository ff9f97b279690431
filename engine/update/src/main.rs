//! `mxguard-update`: the appliance's A/B updates (appliance-image/README.md, "Updates").
//!
//! On the appliance (as root):
//!   mxguard-update FILE [--reboot]   verify FILE (signature, SHA-256), write it to the slot that is
//!                                    not running, make that slot boot next with 3 tries; reboot
//!                                    only when asked
//!   mxguard-update --status          the running slot, what each slot holds, a rollback and why
//!   mxguard-update --rollback [--reboot]
//!                                    the other slot, if it booted to ready before, boots next
//!                                    (with 3 tries, as an update); reboot only when asked
//!   mxguard-update --verify FILE     verify only
//! On the build host (appliance-image/build):
//!   mxguard-update keygen DIR                     an ed25519 key pair, DIR/update.{key,pub}
//!   mxguard-update sign DIR ROOT VERSION OUT      the update file of a squashfs ROOT
//!   mxguard-update entry SLOT VERSION             a slot's boot entry, on stdout

mod bundle;
mod entries;
mod slots;

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: mxguard-update FILE [--reboot] | --status | --rollback [--reboot] | --verify FILE | keygen DIR | sign DIR ROOT VERSION OUT | entry a|b VERSION";

fn reboot_if(asked: bool) -> Result<(), String> {
    if !asked {
        println!("reboot when ready: systemctl reboot");
        return Ok(());
    }
    let s = std::process::Command::new("systemctl").arg("reboot").status().map_err(|e| format!("systemctl reboot: {e}"))?;
    if s.success() {
        Ok(())
    } else {
        Err("systemctl reboot failed".into())
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a[..] {
        ["--status"] => slots::status(&slots::Layout::appliance()).map(|lines| lines.iter().for_each(|l| println!("{l}"))),
        ["--verify", file] => {
            let key = std::fs::read_to_string(slots::Layout::appliance().public_key).map_err(|e| format!("the image's key: {e}"))?;
            let h = bundle::verify(Path::new(file), &key)?;
            println!("{file}: version {}, {} bytes of root, signature and SHA-256 good", h.version, h.root_bytes);
            Ok(())
        }
        ["--rollback"] | ["--rollback", "--reboot"] => {
            let (slot, version) = slots::rollback(&slots::Layout::appliance())?;
            println!("slot {slot} ({version}) boots at the next reboot, with {} tries to become ready before slot {} boots again", entries::TRIES, entries::other(slot));
            reboot_if(a.len() == 2)
        }
        ["keygen", dir] => bundle::keygen(Path::new(dir)),
        ["sign", dir, root, version, out] => bundle::sign(Path::new(dir), Path::new(root), version, Path::new(out)),
        ["entry", slot @ ("a" | "b"), version] => {
            print!("{}", entries::text(slot.chars().next().unwrap_or('a'), version));
            Ok(())
        }
        [file] | [file, "--reboot"] if !file.starts_with('-') => {
            let (slot, version) = slots::stage(&slots::Layout::appliance(), Path::new(file))?;
            println!("slot {slot} holds {version}; it boots at the next reboot, with {} tries to become ready before slot {} boots again", entries::TRIES, entries::other(slot));
            reboot_if(a.len() == 2)
        }
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("-h" | "--help") | None) {
        println!("{USAGE}");
        return if args.is_empty() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mxguard-update: {e}");
            ExitCode::FAILURE
        }
    }
}
