//! What a checked seed (`seed.rs`) means for the node, as files: the host name, the network
//! (systemd-networkd), time servers (chrony), the firewall (nftables), SSH (key-only, one admin
//! user) and the gateway's own knobs. Pure: it returns (path, contents) pairs relative to the
//! root they belong in; the first-boot unit writes them where the image keeps its configuration.
//!
//! The firewall opens the SMTP ports to all; the console, the metrics endpoint (on the ports their
//! knobs give, the seed's value or the default) and SSH only to the seed's admin networks (none:
//! loopback only, and the console and metrics then listen on loopback too).
//!
//! The superadmin goes in `admin` (login, then the Argon2id PHC string: a hash, never a password;
//! the one file written readable by its owner only); the unit makes the account. TLS keys are
//! the unit's to copy from the seed volume (`tls-files` names them).

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::seed::{Certificate, Network, Seed};

/// The user SSH keys log in as.
pub const SSH_USER: &str = "mxadmin";

/// The port a listen knob will have on the node: the seed's own value of it, else the registry's
/// default; `None` when that is empty (the endpoint is off) or names no port.
fn port_of(seed: &Seed, knob: &mxguard_tuning::Knob) -> Option<u16> {
    let value = seed.knobs.get(knob.name).map_or(knob.default, String::as_str);
    value.trim().rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// Every file the seed gives, as (path under the root, contents), in a fixed order.
pub fn files(seed: &Seed) -> Vec<(String, String)> {
    // The serial first: the first-boot unit compares it with the one it applied last.
    let mut out = vec![("serial".to_string(), format!("{}\n", seed.serial))];
    if let Some(h) = &seed.hostname {
        out.push(("etc/hostname".into(), format!("{h}\n")));
    }
    out.push(("etc/systemd/network/10-mxguard.network".into(), network(&seed.network)));
    if !seed.ntp_servers.is_empty() {
        let lines: String = seed.ntp_servers.iter().map(|s| format!("server {s} iburst\n")).collect();
        out.push(("etc/chrony/sources.d/mxguard.sources".into(), lines));
    }
    out.push(("etc/nftables.conf".into(), firewall(seed)));
    if !seed.ssh_keys.is_empty() {
        out.push((format!("etc/ssh/authorized_keys/{SSH_USER}"), seed.ssh_keys.iter().map(|k| format!("{k}\n")).collect()));
        out.push((
            "etc/ssh/sshd_config.d/mxguard.conf".into(),
            format!("# From the seed: keys only, one user.\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\nAuthorizedKeysFile /etc/ssh/authorized_keys/%u\nAllowUsers {SSH_USER}\n"),
        ));
    }
    out.push(("etc/mxguard/seed.conf".into(), knobs(seed)));
    // The services the seed turns on (the image ships them off), one a line.
    let mut units = String::new();
    if !seed.ssh_keys.is_empty() {
        units.push_str("ssh.service\n");
    }
    if seed.clamav_updates {
        units.push_str("clamav-freshclam.service\n");
    }
    out.push(("units".into(), units));
    if let (Some(login), Some(hash)) = (&seed.admin_login, &seed.admin_password_hash) {
        out.push((ADMIN.into(), format!("{login}\n{hash}\n")));
    }
    if let Certificate::Files { certificate, key } = &seed.certificate {
        // Not the key itself: what the unit copies (a path on the seed volume, as the seed gives
        // it), a tab, and where to; one file a line.
        out.push(("tls-files".into(), format!("{certificate}\t{TLS_CERT}\n{key}\t{TLS_KEY}\n")));
    }
    out
}

/// The file with the superadmin's login and password hash (mode 0600).
pub const ADMIN: &str = "admin";

/// Where the node keeps a seed's certificate and key (the knobs in `seed.conf` name them).
pub const TLS_CERT: &str = "/var/lib/mxguard/seed/tls.crt";
pub const TLS_KEY: &str = "/var/lib/mxguard/seed/tls.key";

fn network(n: &Network) -> String {
    let mut s = String::from("# From the seed.\n[Match]\nName=en* eth*\n\n[Network]\n");
    match n {
        Network::Dhcp => s.push_str("DHCP=yes\n"),
        Network::Static { addresses, gateway, dns } => {
            for (a, p) in addresses {
                let _ = writeln!(s, "Address={a}/{p}");
            }
            if let Some(g) = gateway {
                let _ = writeln!(s, "Gateway={g}");
            }
            for d in dns {
                let _ = writeln!(s, "DNS={d}");
            }
        }
    }
    s
}

fn firewall(seed: &Seed) -> String {
    let ssh = (!seed.ssh_keys.is_empty()).then_some(22);
    let admin_ports: Vec<u16> = [ssh, port_of(seed, &mxguard_tuning::CONSOLE_LISTEN), port_of(seed, &mxguard_tuning::METRICS_LISTEN)].into_iter().flatten().collect();
    let ports = admin_ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    let nets = |v4: bool| seed.admin_networks.iter().filter(|(a, _)| a.is_ipv4() == v4).map(|(a, p)| format!("{}/{p}", network_address(*a, *p))).collect::<Vec<_>>();
    let mut s = String::from(
        "#!/usr/sbin/nft -f\n# From the seed: SMTP open to all; the console, metrics and SSH to the admin networks only.\n\
         flush ruleset\n\ntable inet mxguard {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\
         \t\tct state established,related accept\n\t\tct state invalid drop\n\t\tiif \"lo\" accept\n\
         \t\tmeta l4proto { icmp, ipv6-icmp } accept\n\
         \t\tudp sport 67 udp dport 68 accept\n\t\tudp sport 547 udp dport 546 accept\n\
         \t\ttcp dport { 25, 465 } accept\n",
    );
    for (family, list) in [("ip", nets(true)), ("ip6", nets(false))] {
        if !list.is_empty() && !admin_ports.is_empty() {
            let _ = writeln!(s, "\t\t{family} saddr {{ {} }} tcp dport {{ {ports} }} accept", list.join(", "));
        }
    }
    s.push_str("\t}\n\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n");
    s
}

/// The network an address/prefix names (nftables refuses host bits in a prefix).
fn network_address(a: IpAddr, p: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => IpAddr::V4((u32::from(v) & if p == 0 { 0 } else { u32::MAX << (32 - u32::from(p)) }).into()),
        IpAddr::V6(v) => IpAddr::V6((u128::from(v) & if p == 0 { 0 } else { u128::MAX << (128 - u32::from(p)) }).into()),
    }
}

fn knobs(seed: &Seed) -> String {
    let mut s = format!("# From the seed (serial {}); read after /etc/mxguard/mxguard.conf, so these win.\n", seed.serial);
    let _ = writeln!(s, "relay.domains = {}", seed.domains.join(","));
    let open = !seed.admin_networks.is_empty();
    let bind = if open { "0.0.0.0" } else { "127.0.0.1" };
    // On the port the node will use; a seed's own value of either knob comes after, and wins.
    for knob in [&mxguard_tuning::CONSOLE_LISTEN, &mxguard_tuning::METRICS_LISTEN] {
        if let Some(port) = port_of(seed, knob) {
            let _ = writeln!(s, "{} = {bind}:{port}", knob.name);
        }
    }
    if let Certificate::Files { .. } = seed.certificate {
        let _ = writeln!(s, "smtp.tls_cert_file = {TLS_CERT}\nsmtp.tls_key_file = {TLS_KEY}");
    }
    for (k, v) in &seed.knobs {
        let _ = writeln!(s, "{k} = {v}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::parse;

    fn file<'a>(files: &'a [(String, String)], path: &str) -> Option<&'a str> {
        files.iter().find(|(p, _)| p == path).map(|(_, c)| c.as_str())
    }

    #[test]
    fn a_full_seed_gives_each_file() {
        let seed = parse(
            "serial = 4\nhostname = mx1.example.net\n[network]\nmode = static\naddress = 192.0.2.10/24\naddress = 2001:db8::10/64\ngateway = 192.0.2.1\ndns = 192.0.2.53\n\
             [relay]\ndomain = example.org:mail.example.org\ndomain = example.net\n[admin]\nnetwork = 198.51.100.7/24\nnetwork = 2001:db8:1::/48\n\
             ssh_key = ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops\n[ntp]\nserver = ntp.example.net\n\
             [knobs]\nverdict.quarantine_score = 9\n",
            "s",
        )
        .unwrap();
        let f = files(&seed);
        assert_eq!(file(&f, "serial"), Some("4\n"));
        assert_eq!(file(&f, "etc/hostname"), Some("mx1.example.net\n"));
        assert!(file(&f, "tls-files").is_none(), "self-signed: nothing to copy");
        assert!(file(&f, ADMIN).is_none(), "no password hash: a setup code at the console");
        assert_eq!(file(&f, "units"), Some("ssh.service\n"), "SSH on (a key), freshclam off (not asked)");
        let net = file(&f, "etc/systemd/network/10-mxguard.network").unwrap();
        assert!(net.contains("Address=192.0.2.10/24\nAddress=2001:db8::10/64\nGateway=192.0.2.1\nDNS=192.0.2.53\n"), "{net}");
        assert_eq!(file(&f, "etc/chrony/sources.d/mxguard.sources"), Some("server ntp.example.net iburst\n"));
        let fw = file(&f, "etc/nftables.conf").unwrap();
        assert!(fw.contains("ip saddr { 198.51.100.0/24 } tcp dport { 22, 8025, 9125 } accept"), "{fw}");
        assert!(fw.contains("ip6 saddr { 2001:db8:1::/48 } tcp dport { 22, 8025, 9125 } accept"), "{fw}");
        assert!(fw.contains("policy drop") && fw.contains("tcp dport { 25, 465 } accept"));
        assert!(file(&f, "etc/ssh/authorized_keys/mxadmin").unwrap().starts_with("ssh-ed25519 "));
        let conf = file(&f, "etc/mxguard/seed.conf").unwrap();
        assert!(conf.contains("relay.domains = example.org:mail.example.org,example.net\nconsole.listen = 0.0.0.0:8025\n"), "{conf}");
        assert!(conf.ends_with("verdict.quarantine_score = 9\n"));
        // Every line of the knob file is one the registry takes.
        let body: String = conf.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
        assert!(mxguard_tuning::config::parse(&body, "seed.conf").is_ok());
    }

    #[test]
    fn the_console_port_is_the_one_the_node_will_use() {
        let seed = parse("serial = 1\n[admin]\nnetwork = 198.51.100.0/24\n[knobs]\nconsole.listen = 0.0.0.0:9443\nmetrics.listen =\n", "s").unwrap();
        let f = files(&seed);
        assert!(file(&f, "etc/nftables.conf").unwrap().contains("ip saddr { 198.51.100.0/24 } tcp dport { 9443 } accept"));
        let conf = file(&f, "etc/mxguard/seed.conf").unwrap();
        assert!(conf.contains("console.listen = 0.0.0.0:9443\n") && !conf.contains("metrics.listen = 0.0.0.0"), "{conf}");
    }

    #[test]
    fn a_certificate_on_the_seed_volume_is_copied_where_the_knobs_look() {
        let f = files(&parse("serial = 2\n[tls]\ncertificate = certs/mx.pem\nkey = certs/mx.key\n", "s").unwrap());
        assert_eq!(file(&f, "tls-files"), Some(format!("certs/mx.pem\t{TLS_CERT}\ncerts/mx.key\t{TLS_KEY}\n").as_str()));
        let conf = file(&f, "etc/mxguard/seed.conf").unwrap();
        assert!(conf.contains(&format!("smtp.tls_cert_file = {TLS_CERT}\nsmtp.tls_key_file = {TLS_KEY}\n")), "{conf}");
    }

    #[test]
    fn no_seed_settings_is_the_safe_state() {
        let f = files(&parse("serial = 1\n", "s").unwrap());
        assert!(file(&f, "etc/systemd/network/10-mxguard.network").unwrap().contains("DHCP=yes"));
        let fw = file(&f, "etc/nftables.conf").unwrap();
        assert!(!fw.contains("saddr") && !fw.contains("22,"), "only SMTP from outside: {fw}");
        assert!(file(&f, "etc/ssh/sshd_config.d/mxguard.conf").is_none() && file(&f, "etc/hostname").is_none());
        let conf = file(&f, "etc/mxguard/seed.conf").unwrap();
        assert!(conf.contains("relay.domains = \n") && conf.contains("console.listen = 127.0.0.1:8025"), "{conf}");
        assert_eq!(file(&f, "units"), Some(""), "no service beyond the image's own");
    }

    #[test]
    fn the_superadmin_is_its_login_and_password_hash() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
        let f = files(&parse(&format!("serial = 1\n[admin]\nlogin = postmaster\npassword_hash = {hash}\n"), "s").unwrap());
        assert_eq!(file(&f, ADMIN), Some(format!("postmaster\n{hash}\n").as_str()));
        assert!(f.iter().filter(|(p, _)| p != ADMIN).all(|(_, c)| !c.contains(hash)), "the hash is in `admin` only");
    }

    #[test]
    fn clamav_updates_run_only_when_the_seed_asks() {
        let f = files(&parse("serial = 1\n[clamav]\nupdates = yes\n", "s").unwrap());
        assert_eq!(file(&f, "units"), Some("clamav-freshclam.service\n"));
        assert!(parse("serial = 1\n[clamav]\nupdates = maybe\n", "s").unwrap_err()[0].contains("s:3: updates is yes or no"));
    }
}
