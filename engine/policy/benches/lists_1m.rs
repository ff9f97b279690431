//! List load time and lookups per second with 1,000,000 entries, against a plain `HashSet` of
//! the same exact keys in the same process (the reference: the least any lookup can cost).
//!
//! `cargo bench -p mxguard-policy --bench lists_1m` (benches/policy.py runs it and records the
//! result). Entries: an IP list of 600,000 addresses and 200,000 CIDR blocks (/16../30), and a
//! domain list of 150,000 names, 90,000 `*.domain` wildcards, 4,000 other wildcards and 1,000
//! regexes (the proportions of real lists: regexes and infix wildcards are rare).

use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use mxguard_policy::list::List;

/// xorshift64*: reproducible keys without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn main() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let dir = std::env::temp_dir().join(format!("mxguard-lists-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // ---- IP list: 600k addresses + 200k CIDRs.
    let mut ip_text = String::with_capacity(16 << 20);
    let mut singles = Vec::with_capacity(600_000);
    for _ in 0..600_000 {
        let ip = Ipv4Addr::from(rng.next() as u32);
        singles.push(IpAddr::V4(ip));
        ip_text.push_str(&format!("{ip}\n"));
    }
    for _ in 0..200_000 {
        let prefix = 16 + (rng.next() % 15) as u32;
        let base = (rng.next() as u32) & (u32::MAX << (32 - prefix));
        ip_text.push_str(&format!("{}/{prefix}\n", Ipv4Addr::from(base)));
    }
    // ---- Domain list: 150k names, 45k wildcards, 5k regexes.
    let mut dom_text = String::with_capacity(8 << 20);
    let mut names = Vec::with_capacity(150_000);
    for i in 0..150_000 {
        let n = format!("spam{i}-{:x}.example", rng.next() % 0xffff);
        dom_text.push_str(&n);
        dom_text.push('\n');
        names.push(n);
    }
    for i in 0..90_000 {
        dom_text.push_str(&format!("*.bulk{i}.example\n"));
    }
    for i in 0..4_000 {
        dom_text.push_str(&format!("mx?{i}.relay.example\n"));
    }
    for i in 0..1_000 {
        dom_text.push_str(&format!("(^[a-z]+{i}[0-9]+\\.promo\\.example$)\n"));
    }
    let ip_path = dir.join("ip-blacklist.txt");
    let dom_path = dir.join("domain-blacklist.txt");
    std::fs::write(&ip_path, &ip_text).unwrap();
    std::fs::write(&dom_path, &dom_text).unwrap();

    let t = Instant::now();
    let ips = List::load(&ip_path).unwrap();
    let ip_load = t.elapsed();
    let t = Instant::now();
    let doms = List::load(&dom_path).unwrap();
    let dom_load = t.elapsed();
    let entries = ips.len() + doms.len();

    // ---- Lookups: half known addresses, half random (mostly misses, some CIDR hits).
    let n = 2_000_000;
    let probes: Vec<IpAddr> = (0..n)
        .map(|i| if i % 2 == 0 { singles[(rng.next() % singles.len() as u64) as usize] } else { IpAddr::V4(Ipv4Addr::from(rng.next() as u32)) })
        .collect();
    let t = Instant::now();
    let mut hits = 0usize;
    for p in &probes {
        hits += ips.match_ip(*p).is_some() as usize;
    }
    let ip_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let set: HashSet<IpAddr> = singles.iter().copied().collect();
    let t = Instant::now();
    let mut ref_hits = 0usize;
    for p in &probes {
        ref_hits += set.contains(black_box(p)) as usize;
    }
    let ip_ref_ns = t.elapsed().as_nanos() as f64 / n as f64;

    let dn = 400_000;
    let dprobes: Vec<String> = (0..dn)
        .map(|i| match i % 4 {
            0 => names[(rng.next() % names.len() as u64) as usize].clone(),
            1 => format!("host.bulk{}.example", rng.next() % 90_000),
            2 => format!("abc{}77.promo.example", rng.next() % 10_000),
            _ => format!("clean{}.example.org", rng.next()),
        })
        .collect();
    let t = Instant::now();
    let mut dhits = 0usize;
    for p in &dprobes {
        dhits += doms.match_name(p).is_some() as usize;
    }
    let dom_ns = t.elapsed().as_nanos() as f64 / dn as f64;
    let dset: HashSet<&str> = names.iter().map(String::as_str).collect();
    let t = Instant::now();
    let mut dref = 0usize;
    for p in &dprobes {
        dref += dset.contains(black_box(p.as_str())) as usize;
    }
    let dom_ref_ns = t.elapsed().as_nanos() as f64 / dn as f64;

    println!(
        "{{\"entries\": {entries}, \"ip_entries\": {}, \"domain_entries\": {}, \"ip_load_s\": {:.2}, \"domain_load_s\": {:.2}, \
\"ip_lookup_ns\": {ip_ns:.1}, \"ip_lookups_per_s\": {:.0}, \"ip_ref_ns\": {ip_ref_ns:.1}, \"ip_ratio\": {:.2}, \"ip_hits\": {hits}, \"ip_ref_hits\": {ref_hits}, \
\"domain_lookup_ns\": {dom_ns:.1}, \"domain_lookups_per_s\": {:.0}, \"domain_ref_ns\": {dom_ref_ns:.1}, \"domain_ratio\": {:.2}, \"domain_hits\": {dhits}, \"domain_ref_hits\": {dref}}}",
        ips.len(),
        doms.len(),
        ip_load.as_secs_f64(),
        dom_load.as_secs_f64(),
        1e9 / ip_ns,
        ip_ns / ip_ref_ns,
        1e9 / dom_ns,
        dom_ns / dom_ref_ns,
    );
    std::fs::remove_dir_all(&dir).ok();
}
