//! SURBL / URIBL: the registrable domains the message links to (found by the content scanner)
//! are looked up in each configured zone (`domain.zone`, an IP link as its reversed address);
//! each zone that lists any of them is one symbol `URIBL_<ZONE>` with the zone's weight, named
//! after the first domain it lists.
//!
//! Zone syntax (`uribl.servers`, separated by `;` or new lines): `zone[=weight]`.
//!
//! Costs: one A lookup per (domain, zone), all concurrent, at most `uribl.domains_max` domains
//! per message (the resolver caches answers across messages).
//!
//! It must never count an error answer as a listing: `127.0.0.1` (URIBL's and SURBL's "your
//! queries are refused") and `127.255.255.x` (Spamhaus's error codes) are logged failures, and
//! answers outside 127.0.0.0/8 are ignored.

use std::net::{IpAddr, Ipv4Addr};

use mxguard_dns::{names, Dns, Lookup};
use mxguard_verdict::Verdict;

use crate::dnsbl::{join_all, zone_symbol};

#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub zone: String,
    pub weight: f64,
}

/// Parses the `uribl.servers` knob.
pub fn parse_zones(s: &str, default_weight: f64) -> Result<Vec<Zone>, String> {
    let mut out = Vec::new();
    for item in s.split([';', '\n']).map(str::trim).filter(|x| !x.is_empty()) {
        let (zone, weight) = match item.split_once('=') {
            Some((z, w)) => (z.trim(), w.trim().parse::<f64>().map_err(|_| format!("uribl.servers: '{item}': weight is not a number"))?),
            None => (item, default_weight),
        };
        if zone.is_empty() || zone.contains(char::is_whitespace) || !zone.contains('.') {
            return Err(format!("uribl.servers: '{item}': not a zone name"));
        }
        out.push(Zone { zone: zone.trim_end_matches('.').to_ascii_lowercase(), weight });
    }
    Ok(out)
}

/// `URIBL_MULTI_SURBL_ORG` for `multi.surbl.org`.
pub fn symbol(zone: &str) -> String {
    zone_symbol("URIBL_", zone)
}

/// The name to query for a linked domain (or IPv4 address) in `zone`.
pub fn query_name(domain: &str, zone: &str) -> Option<String> {
    if let Ok(ip) = domain.parse::<Ipv4Addr>() {
        return Some(names::dnsbl_name(IpAddr::V4(ip), zone, true));
    }
    let d = domain.trim_end_matches('.');
    if d.is_empty() || d.len() > 200 || !d.contains('.') || d.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(format!("{}.{}", d.to_ascii_lowercase(), names::fqdn(zone)))
}

/// What an answer means.
#[derive(Debug, PartialEq)]
enum Answer {
    Listed(Vec<Ipv4Addr>),
    Error(Ipv4Addr),
    Nothing,
}

fn classify(codes: &[Ipv4Addr]) -> Answer {
    if let Some(e) = codes.iter().find(|c| **c == Ipv4Addr::new(127, 0, 0, 1) || (c.octets()[..3] == [127, 255, 255])) {
        return Answer::Error(*e);
    }
    let listed: Vec<Ipv4Addr> = codes.iter().copied().filter(|c| c.octets()[0] == 127).collect();
    if listed.is_empty() {
        Answer::Nothing
    } else {
        Answer::Listed(listed)
    }
}

/// One zone's finding: the first listed domain and its codes.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub zone: Zone,
    pub domain: String,
    pub codes: Vec<Ipv4Addr>,
}

/// Looks every domain up in every zone concurrently. Returns the listings (one per zone at
/// most) and the failures (`zone: domain: why`).
pub async fn lookup(dns: &Dns, domains: &[String], zones: &[Zone]) -> (Vec<Listing>, Vec<String>) {
    let queries: Vec<(&Zone, &String, String)> =
        zones.iter().flat_map(|z| domains.iter().filter_map(move |d| query_name(d, &z.zone).map(|n| (z, d, n)))).collect();
    let results = join_all(queries.iter().map(|(z, d, n)| async move { (*z, *d, dns.a(n).await) })).await;
    let mut listed: Vec<Listing> = Vec::new();
    let mut failed = Vec::new();
    for (z, d, r) in results {
        match r {
            Lookup::Found(codes) => match classify(&codes) {
                Answer::Listed(codes) => {
                    if !listed.iter().any(|l| l.zone.zone == z.zone) {
                        listed.push(Listing { zone: z.clone(), domain: d.clone(), codes });
                    }
                }
                Answer::Error(code) => failed.push(format!("{}: {d}: error answer {code}", z.zone)),
                Answer::Nothing => {}
            },
            Lookup::None => {}
            Lookup::Failed(e) => failed.push(format!("{}: {d}: {e}", z.zone)),
        }
    }
    (listed, failed)
}

/// Adds the symbols of `listed` to `v`.
pub fn score(v: &mut Verdict, listed: &[Listing]) {
    for l in listed {
        let codes: Vec<String> = l.codes.iter().map(|c| c.to_string()).collect();
        v.add(symbol(&l.zone.zone), l.zone.weight, format!("a link goes to {}, listed in {} ({})", l.domain, l.zone.zone, codes.join(",")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_syntax() {
        assert_eq!(
            parse_zones("multi.surbl.test=5; dbl.test ;\n", 10.0).unwrap(),
            vec![Zone { zone: "multi.surbl.test".into(), weight: 5.0 }, Zone { zone: "dbl.test".into(), weight: 10.0 }]
        );
        for bad in ["nodot", "a.test=x", "two words.test"] {
            assert!(parse_zones(bad, 1.0).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_answers() {
        let cases: &[(&str, Option<&str>)] = &[
            ("Spam.Example", Some("spam.example.multi.test.")),
            ("192.0.2.7", Some("7.2.0.192.multi.test.")),
            ("localhost", None),
            ("", None),
            ("2001:db8::1", None),
        ];
        for (d, want) in cases {
            assert_eq!(query_name(d, "multi.test").as_deref(), *want, "{d}");
        }
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(classify(&[ip("127.0.0.2")]), Answer::Listed(vec![ip("127.0.0.2")]));
        assert_eq!(classify(&[ip("127.0.0.1")]), Answer::Error(ip("127.0.0.1")));
        assert_eq!(classify(&[ip("127.255.255.254")]), Answer::Error(ip("127.255.255.254")));
        assert_eq!(classify(&[ip("10.0.0.1")]), Answer::Nothing);
    }
}
