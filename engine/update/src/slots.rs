//! The update itself, on the appliance: a verified update file written to the slot that is not
//! running, its kernel and initramfs copied to the ESP, and a boot entry with tries to count;
//! and `--status`, read from the entries and the failure records of mxguard-ready.service.
//!
//! Order matters for power cuts: the target slot's old entry goes first (so a half-written slot
//! is never bootable), the new entry last (atomically, by rename), each step synced. The running
//! slot, the data and the spool partitions are never written.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bundle;
use crate::entries::{self, Entry, State};

/// Where the appliance keeps what this needs (appliance-image/README.md).
pub struct Layout {
    pub efi: PathBuf,
    pub cmdline: PathBuf,
    pub public_key: PathBuf,
    pub image_version: PathBuf,
    pub partitions: PathBuf,
    pub records: PathBuf,
    pub mount: PathBuf,
}

impl Layout {
    pub fn appliance() -> Layout {
        Layout {
            efi: "/efi".into(),
            cmdline: "/proc/cmdline".into(),
            public_key: "/usr/lib/mxguard/update.pub".into(),
            image_version: "/usr/lib/mxguard/image-version".into(),
            partitions: "/dev/disk/by-partlabel".into(),
            records: "/var/lib/mxguard-node/update".into(),
            mount: "/run/mxguard-update".into(),
        }
    }
    fn entries_dir(&self) -> PathBuf {
        self.efi.join("loader/entries")
    }
}

fn read(p: &Path) -> Result<String, String> {
    fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn sync_dir(p: &Path) -> Result<(), String> {
    File::open(p).and_then(|d| d.sync_all()).map_err(|e| format!("{}: {e}", p.display()))
}

fn list_entries(l: &Layout) -> Result<Vec<Entry>, String> {
    let dir = l.entries_dir();
    let names: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    Ok(entries::ours(names.iter().map(String::as_str)))
}

fn running(l: &Layout) -> Result<char, String> {
    entries::running_slot(&read(&l.cmdline)?).ok_or_else(|| "this system was not booted from an mxguard root slot".to_string())
}

/// Appends a line to the update log on the data partition.
fn record(l: &Layout, line: &str) {
    let _ = fs::create_dir_all(&l.records);
    let stamp = Command::new("date").arg("-u").arg("+%FT%TZ").output().ok().and_then(|o| String::from_utf8(o.stdout).ok()).unwrap_or_default();
    let text = format!("{} {line}\n", stamp.trim());
    use std::io::Write;
    let _ = OpenOptions::new().create(true).append(true).open(l.records.join("log")).and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()));
}

/// Copies the file `from` to `to` whole: beside it, fsync, rename (the directory is synced by the caller).
fn install_file(from: &Path, to: &Path) -> Result<(), String> {
    let tmp = to.with_extension("new");
    fs::copy(from, &tmp).map_err(|e| format!("{} -> {}: {e}", from.display(), tmp.display()))?;
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, to).map_err(|e| format!("{}: {e}", to.display()))
}

/// The newest kernel under a root's /boot and its initramfs.
fn kernel_of(root: &Path) -> Result<(PathBuf, PathBuf), String> {
    let boot = root.join("boot");
    let mut kernels: Vec<String> = fs::read_dir(&boot)
        .map_err(|e| format!("{}: {e}", boot.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix("vmlinuz-").map(str::to_string))
        .collect();
    kernels.sort();
    let k = kernels.pop().ok_or("the update's root has no kernel in /boot")?;
    let initrd = boot.join(format!("initrd.img-{k}"));
    if !initrd.exists() {
        return Err(format!("the update's root has no initramfs for kernel {k}"));
    }
    Ok((boot.join(format!("vmlinuz-{k}")), initrd))
}

/// Verifies `file` and stages it in the slot that is not running. Returns (slot, version).
pub fn stage(l: &Layout, file: &Path) -> Result<(char, String), String> {
    let key = read(&l.public_key)?;
    let h = bundle::verify(file, &key)?;
    let target = entries::other(running(l)?);
    let part = l.partitions.join(format!("mxguard-root-{target}"));
    let mut dev = OpenOptions::new().read(true).write(true).open(&part).map_err(|e| format!("{}: {e}", part.display()))?;
    let room = dev.seek(SeekFrom::End(0)).map_err(|e| format!("{}: {e}", part.display()))?;
    if h.root_bytes > room {
        return Err(format!("the update's root ({} bytes) does not fit slot {target} ({room} bytes)", h.root_bytes));
    }
    // 1. The target slot is not bootable while it is written.
    let dir = l.entries_dir();
    let existing = list_entries(l)?;
    for e in existing.iter().filter(|e| e.slot == target) {
        fs::remove_file(dir.join(&e.file)).map_err(|err| format!("{}: {err}", e.file))?;
    }
    sync_dir(&dir)?;
    // 2. The root, then read back: what the slot holds is what was signed.
    let mut src = BufReader::new(File::open(file).map_err(|e| format!("{}: {e}", file.display()))?);
    src.seek(SeekFrom::Start(h.offset)).map_err(|e| e.to_string())?;
    dev.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let copied = std::io::copy(&mut (&mut src).take(h.root_bytes), &mut dev).map_err(|e| format!("{}: {e}", part.display()))?;
    dev.sync_all().map_err(|e| format!("{}: {e}", part.display()))?;
    if copied != h.root_bytes {
        return Err(format!("{}: {copied} of {} bytes written", part.display(), h.root_bytes));
    }
    dev.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let sum = bundle::sha256_of(&mut dev, h.root_bytes).map_err(|e| format!("{}: {e}", part.display()))?;
    if sum != h.root_sha256 {
        return Err(format!("{}: reads back with SHA-256 {sum}, not the update's: the disk is failing?", part.display()));
    }
    // 3. Its kernel and initramfs to the ESP.
    fs::create_dir_all(&l.mount).map_err(|e| format!("{}: {e}", l.mount.display()))?;
    let m = Command::new("mount").args(["-t", "squashfs", "-o", "ro"]).arg(&part).arg(&l.mount).status().map_err(|e| format!("mount: {e}"))?;
    if !m.success() {
        return Err(format!("mount {} failed", part.display()));
    }
    let copied = (|| {
        let (kernel, initrd) = kernel_of(&l.mount)?;
        let to = l.efi.join(format!("mxguard/{target}"));
        fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
        install_file(&kernel, &to.join("vmlinuz"))?;
        install_file(&initrd, &to.join("initrd.img"))?;
        sync_dir(&to)
    })();
    let _ = Command::new("umount").arg(&l.mount).status();
    copied?;
    // 4. The entry last: from here the slot boots, with its tries.
    let name = entries::next_file(&existing, target);
    write_entry(&dir, &name, &entries::text(target, &h.version))?;
    record(l, &format!("staged {} in slot {target} (entry {name})", h.version));
    Ok((target, h.version))
}

/// Writes an entry file whole (beside it, synced, renamed) and syncs the directory.
fn write_entry(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    let tmp = dir.join(format!(".{name}.new"));
    fs::write(&tmp, text).and_then(|_| File::open(&tmp)?.sync_all()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
    sync_dir(dir)
}

/// The admin's rollback: the slot that is not running, which booted to ready before (its entry
/// is good), boots next — with its tries, as an update does, so that if it no longer comes up the
/// running slot boots again. Refused for a slot that is empty, staged but never booted, or
/// abandoned. Returns (slot, version).
pub fn rollback(l: &Layout) -> Result<(char, String), String> {
    let target = entries::other(running(l)?);
    let existing = list_entries(l)?;
    let old = existing.iter().find(|e| e.slot == target).ok_or_else(|| format!("slot {target} is empty: nothing to roll back to"))?;
    match old.state {
        State::Good => {}
        State::Trial { .. } => {
            return Err(format!("slot {target} holds an update that has not yet booted to ready ({}): nothing known good to roll back to", describe(old.state)))
        }
        State::Abandoned { .. } => return Err(format!("slot {target} was abandoned ({}): nothing known good to roll back to", describe(old.state))),
    }
    let dir = l.entries_dir();
    let text = read(&dir.join(&old.file))?;
    let version = entries::version_of(&text).unwrap_or("?").to_string();
    for f in ["vmlinuz", "initrd.img"] {
        let p = l.efi.join(format!("mxguard/{target}/{f}"));
        if !p.is_file() {
            return Err(format!("{}: missing; slot {target} cannot boot", p.display()));
        }
    }
    // The new entry first (either boots the same slot), then the old one goes.
    let name = entries::next_file(&existing, target);
    write_entry(&dir, &name, &text)?;
    fs::remove_file(dir.join(&old.file)).map_err(|e| format!("{}: {e}", old.file))?;
    sync_dir(&dir)?;
    record(l, &format!("rollback: slot {target} ({version}) boots next (entry {name})"));
    Ok((target, version))
}

fn describe(state: State) -> String {
    match state {
        State::Good => "good".into(),
        State::Trial { left, done: 0 } => format!("staged: boots next, {left} tries"),
        State::Trial { left, done } => format!("on trial: {done} boot(s) so far, {left} left"),
        State::Abandoned { done } => format!("abandoned after {done} boot(s) without mxguard ready"),
    }
}

/// What `--status` prints.
pub fn status(l: &Layout) -> Result<Vec<String>, String> {
    let slot = running(l)?;
    let version = read(&l.image_version).map(|v| v.trim().to_string()).unwrap_or_else(|_| "unknown".into());
    let mut out = vec![format!("running: slot {slot}, version {version}")];
    let list = list_entries(l)?;
    for s in ['a', 'b'] {
        match list.iter().find(|e| e.slot == s) {
            Some(e) => {
                let v = read(&l.entries_dir().join(&e.file)).ok().and_then(|t| entries::version_of(&t).map(str::to_string)).unwrap_or_else(|| "?".into());
                out.push(format!("slot {s}: version {v}, entry {}: {}", e.file, describe(e.state)));
            }
            None => out.push(format!("slot {s}: empty (no boot entry)")),
        }
    }
    if let Some(newest) = list.first() {
        if newest.slot != slot {
            if let State::Abandoned { done } = newest.state {
                out.push(format!("last update rolled back: slot {} was not ready in {done} boot(s); slot {slot} runs again", newest.slot));
                if let Ok(failures) = read(&l.records.join("failures")) {
                    for line in failures.lines().filter(|f| f.contains(&format!("slot {}", newest.slot))).rev().take(3).collect::<Vec<_>>().into_iter().rev() {
                        out.push(format!("  {line}"));
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ESP with the given entry files, booted from `running`, slot a's kernel present.
    fn esp(name: &str, running: char, files: &[&str]) -> Layout {
        let d = std::env::temp_dir().join(format!("mxg-update-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("efi/loader/entries")).unwrap();
        fs::create_dir_all(d.join("efi/mxguard/a")).unwrap();
        for f in ["vmlinuz", "initrd.img"] {
            fs::write(d.join("efi/mxguard/a").join(f), "k").unwrap();
        }
        for (n, f) in files.iter().enumerate() {
            let slot = if f.contains("-a") { 'a' } else { 'b' };
            fs::write(d.join("efi/loader/entries").join(f), entries::text(slot, &format!("0.{n}.0"))).unwrap();
        }
        fs::write(d.join("cmdline"), entries::options(running)).unwrap();
        Layout {
            efi: d.join("efi"),
            cmdline: d.join("cmdline"),
            public_key: d.join("update.pub"),
            image_version: d.join("image-version"),
            partitions: d.join("by-partlabel"),
            records: d.join("records"),
            mount: d.join("mnt"),
        }
    }

    fn names(l: &Layout) -> Vec<String> {
        list_entries(l).unwrap().into_iter().map(|e| e.file).collect()
    }

    #[test]
    fn a_rollback_boots_the_previous_good_slot_next_with_tries() {
        let l = esp("good", 'b', &["mxguard-1-a.conf", "mxguard-2-b.conf"]);
        assert_eq!(rollback(&l).unwrap(), ('a', "0.0.0".to_string()));
        assert_eq!(names(&l), ["mxguard-3-a+3.conf", "mxguard-2-b.conf"]);
        let text = read(&l.efi.join("loader/entries/mxguard-3-a+3.conf")).unwrap();
        assert_eq!(entries::running_slot(text.lines().find_map(|t| t.strip_prefix("options ")).unwrap()), Some('a'));
        assert!(read(&l.records.join("log")).unwrap().contains("rollback: slot a (0.0.0) boots next"));
        let status = status(&l).unwrap().join("\n");
        assert!(status.contains("slot a: version 0.0.0, entry mxguard-3-a+3.conf: staged: boots next, 3 tries"), "{status}");
    }

    #[test]
    fn nothing_known_good_is_no_rollback() {
        for (name, files, why) in [
            ("empty", &["mxguard-1-b.conf"][..], "slot a is empty"),
            ("staged", &["mxguard-1-b.conf", "mxguard-2-a+3.conf"][..], "not yet booted to ready"),
            ("abandoned", &["mxguard-1-b.conf", "mxguard-2-a+0-3.conf"][..], "abandoned"),
        ] {
            let l = esp(name, 'b', files);
            let before = names(&l);
            assert!(rollback(&l).unwrap_err().contains(why), "{name}");
            assert_eq!(names(&l), before, "{name}: nothing written");
        }
        let l = esp("nokernel", 'a', &["mxguard-1-a.conf", "mxguard-2-b.conf"]);
        assert!(rollback(&l).unwrap_err().contains("slot b cannot boot"));
        assert_eq!(names(&l), ["mxguard-2-b.conf", "mxguard-1-a.conf"]);
    }
}
