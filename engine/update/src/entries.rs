//! The boot loader's view of the two root slots: one systemd-boot entry file each
//! (`/efi/loader/entries/mxguard-GEN-SLOT[+LEFT[-DONE]].conf`, the Boot Loader Specification's
//! type #1), GEN growing with each update so that the newest sorts first.
//!
//! Try counting is systemd-boot's own: an entry written with `+3` is booted at most three times
//! (the loader renames it `+2-1`, `+1-2`, `+0-3` before each boot); once `systemd-bless-boot`
//! sees boot-complete.target reached it renames it to `mxguard-GEN-SLOT.conf` (good). An entry at
//! `+0` is sorted last, so the loader boots the previous slot again: the rollback.
//!
//! Pure: names and texts in, names and texts out; it never touches the ESP.

/// Tries an updated slot gets before the loader goes back to the previous one.
pub const TRIES: u32 = 3;

/// A slot: `a` or `b`, the partitions `mxguard-root-a` and `mxguard-root-b`.
pub fn other(slot: char) -> char {
    if slot == 'a' {
        'b'
    } else {
        'a'
    }
}

/// The kernel command line of a slot.
pub fn options(slot: char) -> String {
    format!("root=PARTLABEL=mxguard-root-{slot} rootfstype=squashfs ro console=tty0 console=ttyS0,115200 systemd.gpt_auto=0 quiet")
}

/// The entry file's text for `slot` holding `version`.
pub fn text(slot: char, version: &str) -> String {
    format!(
        "title mxguard {version} (slot {up})\nversion {version}\nlinux /mxguard/{slot}/vmlinuz\ninitrd /mxguard/{slot}/initrd.img\noptions {}\n",
        options(slot),
        up = slot.to_ascii_uppercase()
    )
}

/// Where an entry stands in the try counting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State {
    /// No counter: booted to completion once (or built so).
    Good,
    /// Being tried: `left` boots remain, `done` were spent.
    Trial { left: u32, done: u32 },
    /// No tries left: the loader boots it only when nothing else remains.
    Abandoned { done: u32 },
}

/// One entry file, read from its name.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub file: String,
    pub generation: u64,
    pub slot: char,
    pub state: State,
}

/// Reads `mxguard-GEN-SLOT[+LEFT[-DONE]].conf`; other names are not ours.
pub fn parse(file: &str) -> Option<Entry> {
    let stem = file.strip_prefix("mxguard-")?.strip_suffix(".conf")?;
    let (id, counter) = match stem.split_once('+') {
        Some((id, c)) => (id, Some(c)),
        None => (stem, None),
    };
    let (generation, slot) = id.split_once('-')?;
    let generation: u64 = generation.parse().ok()?;
    let slot = match slot {
        "a" => 'a',
        "b" => 'b',
        _ => return None,
    };
    let state = match counter {
        None => State::Good,
        Some(c) => {
            let (left, done) = match c.split_once('-') {
                Some((l, d)) => (l.parse().ok()?, d.parse().ok()?),
                None => (c.parse().ok()?, 0),
            };
            if left == 0 {
                State::Abandoned { done }
            } else {
                State::Trial { left, done }
            }
        }
    };
    Some(Entry { file: file.to_string(), generation, slot, state })
}

/// Our entries among `files`, the newest generation first.
pub fn ours<'a>(files: impl IntoIterator<Item = &'a str>) -> Vec<Entry> {
    let mut v: Vec<Entry> = files.into_iter().filter_map(parse).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.generation));
    v
}

/// The entry file to write for an update of `slot`: one generation above every entry there is,
/// with its tries to count.
pub fn next_file(existing: &[Entry], slot: char) -> String {
    let generation = existing.iter().map(|e| e.generation).max().unwrap_or(0) + 1;
    format!("mxguard-{generation}-{slot}+{TRIES}.conf")
}

/// The slot the running system booted from, from the kernel command line.
pub fn running_slot(cmdline: &str) -> Option<char> {
    cmdline.split_whitespace().find_map(|w| match w {
        "root=PARTLABEL=mxguard-root-a" => Some('a'),
        "root=PARTLABEL=mxguard-root-b" => Some('b'),
        _ => None,
    })
}

/// The `version` line of an entry's text.
pub fn version_of(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("version ")).map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_as_systemd_boot_counts_them() {
        assert_eq!(parse("mxguard-1-a.conf").unwrap().state, State::Good);
        assert_eq!(parse("mxguard-2-b+3.conf").unwrap().state, State::Trial { left: 3, done: 0 });
        assert_eq!(parse("mxguard-2-b+1-2.conf").unwrap().state, State::Trial { left: 1, done: 2 });
        assert_eq!(parse("mxguard-2-b+0-3.conf").unwrap().state, State::Abandoned { done: 3 });
        for not_ours in ["debian.conf", "mxguard-x-a.conf", "mxguard-1-c.conf", "mxguard-1-a+x.conf", "mxguard-1-a.txt"] {
            assert_eq!(parse(not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn an_update_sorts_above_every_entry_and_counts_its_tries() {
        let e = ours(["mxguard-1-a.conf", "mxguard-2-b+0-3.conf", "loader.conf"]);
        assert_eq!(e.iter().map(|e| e.generation).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(next_file(&e, 'b'), "mxguard-3-b+3.conf");
        assert_eq!(next_file(&[], 'a'), "mxguard-1-a+3.conf");
    }

    #[test]
    fn each_slot_boots_its_own_root() {
        for slot in ['a', 'b'] {
            let t = text(slot, "0.2.0");
            assert_eq!(running_slot(t.lines().find_map(|l| l.strip_prefix("options ")).unwrap()), Some(slot));
            assert_eq!(version_of(&t), Some("0.2.0"));
            assert!(t.contains(&format!("linux /mxguard/{slot}/vmlinuz\n")));
        }
        assert_eq!(running_slot("BOOT_IMAGE=/vmlinuz root=/dev/sda1"), None);
        assert_eq!(other('a'), 'b');
    }
}
