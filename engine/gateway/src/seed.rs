//! The appliance's first-boot seed: one INI file on a seed volume that says what a node is
//! (hostname, network, relayed domains, the superadmin, TLS, admin networks, SSH keys, NTP
//! servers, any knob). This module reads and checks it, all of it, before anything is applied:
//! every fault is reported as `FILE:LINE: reason` and a seed with one fault is refused whole,
//! so a node is never half-configured. `mxguard seed check FILE` runs it; `mxguard seed render
//! FILE DIR` writes the files it gives (`seed_render.rs`).
//!
//! It never touches the system: applying a checked seed (network files, the knob file, keys) is
//! the first-boot unit's job.
//!
//! ```ini
//! serial = 3                        # required; a seed is applied again only with a newer serial
//! hostname = mx1.example.net
//! [network]
//! mode = static                     # dhcp (the default) or static
//! address = 192.0.2.10/24           # static: one or more, IPv4 or IPv6, with prefix
//! gateway = 192.0.2.1
//! dns = 192.0.2.53                  # one or more
//! [relay]
//! domain = example.org:mail.example.org:25    # domain[:host[:port]], one or more
//! [admin]
//! login = postmaster
//! password_hash = $argon2id$v=19$...          # a PHC string; none: a setup code at the console
//! network = 198.51.100.0/24         # may reach the console, metrics and SSH; none: loopback only
//! ssh_key = ssh-ed25519 AAAA... ops@example.net
//! [tls]
//! certificate = self-signed         # or a PEM file on the seed volume, with key = FILE
//! [ntp]
//! server = ntp.example.net
//! [clamav]
//! updates = yes                     # freshclam fetches ClamAV's signatures (DNS and HTTPS out); default no
//! [knobs]
//! verdict.quarantine_score = 9      # any knob of the registry, checked like --set
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

use mxguard_tuning as tuning;

/// How the node gets its address.
#[derive(Debug, Clone, PartialEq)]
pub enum Network {
    Dhcp,
    Static { addresses: Vec<(IpAddr, u8)>, gateway: Option<IpAddr>, dns: Vec<IpAddr> },
}

/// The certificate the node presents.
#[derive(Debug, Clone, PartialEq)]
pub enum Certificate {
    SelfSigned,
    Files { certificate: String, key: String },
}

/// A checked seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Seed {
    pub serial: u64,
    pub hostname: Option<String>,
    pub network: Network,
    /// `domain[:host[:port]]` entries, checked as `relay.domains` checks them.
    pub domains: Vec<String>,
    pub admin_login: Option<String>,
    pub admin_password_hash: Option<String>,
    pub admin_networks: Vec<(IpAddr, u8)>,
    pub ssh_keys: Vec<String>,
    pub certificate: Certificate,
    pub ntp_servers: Vec<String>,
    /// freshclam runs (ClamAV's signature updates from the internet).
    pub clamav_updates: bool,
    /// Knob name → value, each accepted by the registry.
    pub knobs: BTreeMap<String, String>,
}

/// Which keys each section takes; `true`: the key may repeat.
const KEYS: &[(&str, &[(&str, bool)])] = &[
    ("", &[("serial", false), ("hostname", false)]),
    ("network", &[("mode", false), ("address", true), ("gateway", false), ("dns", true)]),
    ("relay", &[("domain", true)]),
    ("admin", &[("login", false), ("password_hash", false), ("network", true), ("ssh_key", true)]),
    ("tls", &[("certificate", false), ("key", false)]),
    ("ntp", &[("server", true)]),
    ("clamav", &[("updates", false)]),
];

/// Reads `text` (named `file` in messages) into a seed, or every fault in it.
pub fn parse(text: &str, file: &str) -> Result<Seed, Vec<String>> {
    let mut errors: Vec<String> = Vec::new();
    // (section, key) → every (line, value) given.
    let mut values: BTreeMap<(String, String), Vec<(usize, String)>> = BTreeMap::new();
    let mut knobs = BTreeMap::new();
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            match name.strip_suffix(']').map(str::trim) {
                Some(s) if s == "knobs" || KEYS.iter().any(|(k, _)| *k == s && !s.is_empty()) => section = s.to_string(),
                Some(s) => errors.push(format!("{file}:{n}: unknown section [{s}]")),
                None => errors.push(format!("{file}:{n}: a section header must end with `]`")),
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            errors.push(format!("{file}:{n}: expected `name = value`"));
            continue;
        };
        // A comment may follow a value after ` #`.
        let value = value.split(" #").next().unwrap_or("").trim().to_string();
        let key = key.trim().to_string();
        if section == "knobs" {
            match tuning::find(&key) {
                None => errors.push(format!("{file}:{n}: no knob named {key}")),
                Some(k) => match k.parse(&value) {
                    Err(e) => errors.push(format!("{file}:{n}: {e}")),
                    Ok(_) if knobs.contains_key(&key) => errors.push(format!("{file}:{n}: {key} is set twice")),
                    Ok(_) => {
                        knobs.insert(key, value);
                    }
                },
            }
            continue;
        }
        let allowed = KEYS.iter().find(|(s, _)| *s == section).map(|(_, k)| *k).unwrap_or(&[]);
        match allowed.iter().find(|(k, _)| *k == key) {
            None => errors.push(format!("{file}:{n}: unknown key {key}{}", if section.is_empty() { String::new() } else { format!(" in [{section}]") })),
            Some((_, repeats)) => {
                let seen = values.entry((section.clone(), key.clone())).or_default();
                if !repeats && !seen.is_empty() {
                    errors.push(format!("{file}:{n}: {key} is given twice (first on line {})", seen[0].0));
                }
                seen.push((n, value));
            }
        }
    }
    let get = |s: &str, k: &str| values.get(&(s.to_string(), k.to_string())).cloned().unwrap_or_default();
    let one = |s: &str, k: &str| get(s, k).into_iter().next();

    let serial = match one("", "serial") {
        None => {
            errors.push(format!("{file}: serial is missing (a number; a seed is applied again only with a newer one)"));
            0
        }
        Some((n, v)) => v.parse().unwrap_or_else(|_| {
            errors.push(format!("{file}:{n}: serial must be a whole number, not `{v}`"));
            0
        }),
    };
    let hostname = one("", "hostname").and_then(|(n, v)| match valid_hostname(&v) {
        true => Some(v.to_ascii_lowercase()),
        false => {
            errors.push(format!("{file}:{n}: `{v}` is not a host name"));
            None
        }
    });
    let mut ip = |n: usize, v: &str| -> Option<IpAddr> {
        v.parse().map_err(|_| errors.push(format!("{file}:{n}: `{v}` is not an IP address"))).ok()
    };
    let gateway = one("network", "gateway").and_then(|(n, v)| ip(n, &v));
    let dns: Vec<IpAddr> = get("network", "dns").iter().filter_map(|(n, v)| ip(*n, v)).collect();
    let addresses: Vec<(IpAddr, u8)> = get("network", "address").iter().filter_map(|(n, v)| prefix(v).map_err(|e| errors.push(format!("{file}:{n}: {e}"))).ok()).collect();
    let network = match one("network", "mode") {
        None => None,
        Some((_, m)) if m == "dhcp" => Some(false),
        Some((_, m)) if m == "static" => Some(true),
        Some((n, m)) => {
            errors.push(format!("{file}:{n}: network mode must be dhcp or static, not `{m}`"));
            None
        }
    };
    let network = if network == Some(true) {
        if get("network", "address").is_empty() {
            errors.push(format!("{file}: [network] mode = static needs at least one address"));
        }
        Network::Static { addresses, gateway, dns }
    } else {
        if let Some((n, _)) = get("network", "address").first().or(get("network", "gateway").first()) {
            errors.push(format!("{file}:{n}: addresses and a gateway are for mode = static"));
        }
        Network::Dhcp
    };
    let domains: Vec<String> = get("relay", "domain").into_iter().filter_map(|(n, v)| match mxguard_relay::routes::Routes::build(&v, None, "", "") {
        Ok(r) if r.len() == 1 => Some(v),
        Ok(_) => {
            errors.push(format!("{file}:{n}: one domain a line (domain[:host[:port]])"));
            None
        }
        Err(e) => {
            errors.push(format!("{file}:{n}: {}", e.join("; ").trim_start_matches("relay.domains entry 1: ")));
            None
        }
    }).collect();
    let admin_login = one("admin", "login").and_then(|(n, v)| {
        let ok = !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
        if !ok {
            errors.push(format!("{file}:{n}: a login is 1 to 64 letters, digits, `.`, `_`, `@` or `-`"));
        }
        ok.then_some(v)
    });
    let admin_password_hash = one("admin", "password_hash").and_then(|(n, v)| {
        let ok = v.starts_with("$argon2id$") && v.split('$').count() >= 6;
        if !ok {
            errors.push(format!("{file}:{n}: password_hash must be an Argon2id PHC string ($argon2id$v=19$...)"));
        }
        ok.then_some(v)
    });
    if admin_password_hash.is_some() && admin_login.is_none() {
        errors.push(format!("{file}: [admin] password_hash needs a login"));
    }
    let admin_networks = get("admin", "network").iter().filter_map(|(n, v)| prefix(v).map_err(|e| errors.push(format!("{file}:{n}: {e}"))).ok()).collect();
    let ssh_keys = get("admin", "ssh_key").into_iter().filter_map(|(n, v)| {
        let mut f = v.split_whitespace();
        let (kind, body) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        let known = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com"];
        let ok = known.contains(&kind) && body.len() >= 16 && body.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
        if !ok {
            errors.push(format!("{file}:{n}: not an OpenSSH public key (TYPE BASE64 [comment])"));
        }
        ok.then_some(v)
    }).collect();
    let certificate = match (one("tls", "certificate"), one("tls", "key")) {
        (None, None) => Certificate::SelfSigned,
        (Some((_, c)), None) if c == "self-signed" => Certificate::SelfSigned,
        (Some((n, c)), Some(_)) if c == "self-signed" => {
            errors.push(format!("{file}:{n}: a self-signed certificate takes no key file"));
            Certificate::SelfSigned
        }
        (Some((_, c)), Some((_, k))) => Certificate::Files { certificate: c, key: k },
        (Some((n, _)), None) => {
            errors.push(format!("{file}:{n}: a certificate file needs `key = FILE` beside it"));
            Certificate::SelfSigned
        }
        (None, Some((n, _))) => {
            errors.push(format!("{file}:{n}: a key needs `certificate = FILE` beside it"));
            Certificate::SelfSigned
        }
    };
    let ntp_servers = get("ntp", "server").into_iter().filter_map(|(n, v)| {
        let ok = v.parse::<IpAddr>().is_ok() || valid_hostname(&v);
        if !ok {
            errors.push(format!("{file}:{n}: `{v}` is neither a host name nor an IP address"));
        }
        ok.then_some(v)
    }).collect();
    let clamav_updates = match one("clamav", "updates") {
        None => false,
        Some((_, v)) if v == "yes" => true,
        Some((_, v)) if v == "no" => false,
        Some((n, v)) => {
            errors.push(format!("{file}:{n}: updates is yes or no, not `{v}`"));
            false
        }
    };
    if errors.is_empty() {
        Ok(Seed { serial, hostname, network, domains, admin_login, admin_password_hash, admin_networks, ssh_keys, certificate, ntp_servers, clamav_updates, knobs })
    } else {
        Err(errors)
    }
}

/// A DNS host name: labels of letters, digits and inner hyphens, at most 253 characters.
fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// `ADDRESS/PREFIX`.
fn prefix(v: &str) -> Result<(IpAddr, u8), String> {
    let bad = || format!("`{v}` is not ADDRESS/PREFIX");
    let (a, p) = v.split_once('/').ok_or_else(bad)?;
    let a: IpAddr = a.trim().parse().map_err(|_| bad())?;
    let p: u8 = p.trim().parse().map_err(|_| bad())?;
    if p > if a.is_ipv4() { 32 } else { 128 } {
        return Err(format!("`{v}`: prefix too long"));
    }
    Ok((a, p))
}

/// `mxguard seed check FILE`: the seed's faults as `FILE:LINE: reason`, or what it would set.
/// `mxguard seed render FILE DIR`: the files it gives (`seed_render.rs`), written under DIR, each
/// replaced whole (written beside, then renamed), only once the whole seed has been checked.
pub fn seed_command(args: Vec<String>) -> Result<(), String> {
    let (verb, path, dir) = match &args[..] {
        [v, p] if v == "check" => (v, p, None),
        [v, p, d] if v == "render" => (v, p, Some(d)),
        _ => return Err("usage: mxguard seed check FILE | mxguard seed render FILE DIR".into()),
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let seed = parse(&text, path).map_err(|e| e.join("\n"))?;
    if let Some(dir) = dir {
        for (rel, contents) in crate::seed_render::files(&seed) {
            let target = std::path::Path::new(dir).join(&rel);
            let parent = target.parent().ok_or_else(|| format!("{rel}: no directory"))?;
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            let tmp = target.with_extension("seed-new");
            // The superadmin's password hash is readable by its owner (root) only.
            let mode = if rel == crate::seed_render::ADMIN { 0o600 } else { 0o644 };
            let write = || -> std::io::Result<()> {
                use std::io::Write as _;
                use std::os::unix::fs::OpenOptionsExt as _;
                let _ = std::fs::remove_file(&tmp);
                std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?.write_all(contents.as_bytes())?;
                std::fs::rename(&tmp, &target)
            };
            write().map_err(|e| format!("{}: {e}", target.display()))?;
            crate::out(&format!("{verb}: {}", target.display()));
        }
        return Ok(());
    }
    crate::out(&format!(
        "{path}: serial {}, {} domain(s) relayed, network {}, {} admin network(s), {} SSH key(s), {} knob(s)",
        seed.serial,
        seed.domains.len(),
        if seed.network == Network::Dhcp { "dhcp" } else { "static" },
        seed.admin_networks.len(),
        seed.ssh_keys.len(),
        seed.knobs.len()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "serial = 3\nhostname = mx1.example.net\n[network]\nmode = static\naddress = 192.0.2.10/24\naddress = 2001:db8::10/64\n\
        gateway = 192.0.2.1\ndns = 192.0.2.53\n[relay]\ndomain = example.org:mail.example.org:25\ndomain = example.net\n\
        [admin]\nlogin = postmaster\npassword_hash = $argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\nnetwork = 198.51.100.0/24\n\
        ssh_key = ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example.net\n\
        [tls]\ncertificate = self-signed\n[ntp]\nserver = ntp.example.net\nserver = 192.0.2.123\n[knobs]\nverdict.quarantine_score = 9 # stricter\n";

    #[test]
    fn a_good_seed_reads_whole() {
        let s = parse(GOOD, "seed.ini").unwrap();
        assert_eq!((s.serial, s.hostname.as_deref()), (3, Some("mx1.example.net")));
        assert!(matches!(&s.network, Network::Static { addresses, dns, .. } if addresses.len() == 2 && dns.len() == 1));
        assert_eq!(s.domains, ["example.org:mail.example.org:25", "example.net"]);
        assert_eq!((s.ssh_keys.len(), s.ntp_servers.len(), s.admin_networks.len()), (1, 2, 1));
        assert_eq!(s.knobs.get("verdict.quarantine_score").map(String::as_str), Some("9"));
        assert_eq!(s.certificate, Certificate::SelfSigned);
        // The smallest seed: a serial. DHCP, nothing relayed, no admin: the safe state.
        let s = parse("serial = 1\n", "s").unwrap();
        assert_eq!((s.network, s.domains.len(), s.admin_login), (Network::Dhcp, 0, None));
    }

    #[test]
    fn each_fault_names_its_line_and_the_seed_is_refused_whole() {
        for (line, bad, why) in [
            (1, "serial = three", "whole number"),
            (2, "hostname = mx_1..example", "not a host name"),
            (4, "mode = ppp", "dhcp or static"),
            (5, "address = 192.0.2.10", "ADDRESS/PREFIX"),
            (5, "address = 192.0.2.10/33", "prefix too long"),
            (7, "gateway = 192.0.2", "not an IP address"),
            (10, "domain = example.org:mail.example.org:99999", "port"),
            (10, "domain = exa mple.org", "one domain a line"),
            (13, "login = post master", "a login is"),
            (14, "password_hash = hunter2", "Argon2id"),
            (15, "network = 198.51.100.0", "ADDRESS/PREFIX"),
            (16, "ssh_key = ssh-dss AAAA", "OpenSSH public key"),
            (20, "server = ntp..example", "neither"),
            (23, "verdict.quarantine_score = lots", "verdict.quarantine_score"),
            (23, "verdict.no_such_knob = 1", "no knob named"),
            (22, "[knob]", "unknown section"),
            (22, "just words", "name = value"),
            (2, "colour = blue", "unknown key colour"),
        ] {
            let mut lines: Vec<&str> = GOOD.lines().collect();
            lines[line - 1] = bad;
            let text = lines.join("\n");
            let errors = parse(&text, "seed.ini").expect_err(bad);
            assert!(errors.iter().any(|e| e.starts_with(&format!("seed.ini:{line}: ")) && e.contains(why)), "{bad}: {errors:?}");
        }
        // Several faults: all of them are told, not only the first.
        let errors = parse("serial = 1\nhostname = -x\n[ntp]\nserver = a..b\n", "s").unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        // Whole-seed faults.
        assert!(parse("hostname = a.example\n", "s").unwrap_err()[0].contains("serial is missing"));
        assert!(parse("serial = 1\n[network]\nmode = static\n", "s").unwrap_err()[0].contains("needs at least one address"));
        assert!(parse("serial = 1\nserial = 2\n", "s").unwrap_err()[0].starts_with("s:2: serial is given twice"));
        assert!(parse("serial = 1\n[tls]\ncertificate = cert.pem\n", "s").unwrap_err()[0].contains("needs `key = FILE`"));
    }

    #[test]
    fn any_line_changed_to_garbage_is_refused_at_that_line() {
        // Every line of the good seed, replaced by junk of each shape: never accepted silently;
        // either the seed still reads (the line was optional) without the junk, or the error
        // names that line.
        let lines: Vec<&str> = GOOD.lines().collect();
        for i in 0..lines.len() {
            for junk in ["%%%", "= =", "[", "x = \u{0}", "address = ::::/999"] {
                let mut l = lines.clone();
                l[i] = junk;
                match parse(&l.join("\n"), "f") {
                    Ok(s) => panic!("line {} as {junk:?} accepted: {s:?}", i + 1),
                    Err(e) => assert!(e.iter().any(|m| m.starts_with(&format!("f:{}: ", i + 1)) || !m.starts_with("f:")), "line {}: {e:?}", i + 1),
                }
            }
        }
    }
}
