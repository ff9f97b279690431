//! The list files of the policy checks (`lists.dir`: the reference products' syntax — addresses,
//! CIDR and class-C blocks, names, `*`/`?` wildcards, `(regex)` lines, `:OPTION`s), loaded from a
//! file as the gateway loads them, then looked up.
//!
//! Input: the file's bytes, then after a 0xFF the probes (one per line) looked up as an address,
//! a name and an e-mail address.
//!
//! Properties: never a panic; a refused file is refused with `file:line: reason` naming this
//! file; and a loaded list finds what it says — every address entry matches its own address,
//! every exact name matches itself (in any case, with or without a final dot), and every
//! wildcard matches its own text read literally (which checks that the wildcard's translation
//! escapes whatever the line holds).
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mxguard_policy::list::line::{self, Kind};
use mxguard_policy::list::List;

fn file() -> &'static std::path::Path {
    static P: OnceLock<std::path::PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mxguard-fuzz-lists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("from-blacklist.txt")
    })
}

fuzz_target!(|data: &[u8]| {
    // Every pattern line is compiled into hyperscan: big files only slow the search down.
    if data.len() > 8192 {
        return;
    }
    let (text, probes) = match data.iter().position(|&b| b == 0xFF) {
        Some(p) => (&data[..p], &data[p + 1..]),
        None => (data, &[][..]),
    };
    let path = file();
    std::fs::write(path, text).expect("write the list file");
    let source = path.display().to_string();
    let list = match List::load(path) {
        Ok(l) => l,
        Err(e) => {
            assert!(e.starts_with(&format!("{source}:")), "an error that does not say where: {e}");
            return;
        }
    };
    for probe in String::from_utf8_lossy(probes).lines() {
        if let Ok(ip) = probe.trim().parse::<IpAddr>() {
            let _ = list.match_ip(ip);
        }
        let _ = list.match_name(probe);
        let _ = list.match_address(probe);
    }
    let text = std::str::from_utf8(text).expect("a loaded file is UTF-8");
    for (i, raw) in text.lines().enumerate() {
        let Ok(Some(l)) = line::parse(raw, i + 1) else { continue };
        match &l.kind {
            Kind::Net(ip, _) => assert!(list.match_ip(*ip).is_some(), "{raw:?}: its address {ip} not matched"),
            Kind::Name(n) => {
                assert!(list.match_name(n).is_some(), "{raw:?}: name {n:?} not matched");
                assert!(list.match_name(&n.to_ascii_uppercase()).is_some(), "{raw:?}: upper case not matched");
                assert!(list.match_name(&format!("{n}.")).is_some(), "{raw:?}: final dot not matched");
                assert!(list.match_address(n).is_some(), "{raw:?}: as an address not matched");
            }
            Kind::Wildcard(w) => assert!(list.match_name(w).is_some(), "{raw:?}: wildcard {w:?} does not match itself"),
            Kind::Regex(_) => {}
        }
    }
});
