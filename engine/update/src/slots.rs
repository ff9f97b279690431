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
    let tmp = dir.join(format!(".{name}.new"));
    fs::write(&tmp, entries::text(target, &h.version)).and_then(|_| File::open(&tmp)?.sync_all()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, dir.join(&name)).map_err(|e| format!("{name}: {e}"))?;
    sync_dir(&dir)?;
    record(l, &format!("staged {} in slot {target} (entry {name})", h.version));
    Ok((target, h.version))
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
