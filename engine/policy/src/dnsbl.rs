//! DNSBL / MAPS: the client's address is looked up in each configured zone; every listing is a
//! symbol (`DNSBL_<ZONE>`) with the zone's weight, and the weights count only when at least
//! `dnsbl.min_matches` zones list the client (the reference "Min MAPS matches needed").
//!
//! Server syntax (`dnsbl.servers`, separated by `;` or new lines): `zone[,true][=weight]`, where
//! `,true` means the zone expects the reversed address (`4.3.2.1.zone` for 1.2.3.4), as in the
//! reference products; without it the address is queried as written. A zone that times out or
//! fails counts as not listing (and is logged by the caller through the symbol-less result).

use std::net::{IpAddr, Ipv4Addr};

use mxguard_dns::{names, Dns, Lookup};
use mxguard_verdict::Verdict;

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub zone: String,
    pub reversed: bool,
    pub weight: f64,
}

/// Parses the `dnsbl.servers` knob.
pub fn parse_servers(s: &str, default_weight: f64) -> Result<Vec<Server>, String> {
    let mut out = Vec::new();
    for item in s.split([';', '\n']).map(str::trim).filter(|x| !x.is_empty()) {
        let (spec, weight) = match item.split_once('=') {
            Some((a, w)) => (a.trim(), w.trim().parse::<f64>().map_err(|_| format!("dnsbl.servers: '{item}': weight is not a number"))?),
            None => (item, default_weight),
        };
        let (zone, reversed) = match spec.split_once(',') {
            Some((z, flag)) => match flag.trim().to_ascii_lowercase().as_str() {
                "true" => (z.trim(), true),
                "false" => (z.trim(), false),
                _ => return Err(format!("dnsbl.servers: '{item}': expected ',true' or ',false' after the zone")),
            },
            None => (spec, false),
        };
        if zone.is_empty() || zone.contains(char::is_whitespace) || !zone.contains('.') {
            return Err(format!("dnsbl.servers: '{item}': not a zone name"));
        }
        out.push(Server { zone: zone.trim_end_matches('.').to_ascii_lowercase(), reversed, weight });
    }
    Ok(out)
}

/// `DNSBL_ZEN_SPAMHAUS_ORG` for `zen.spamhaus.org`.
pub fn symbol(zone: &str) -> String {
    zone_symbol("DNSBL_", zone)
}

/// `prefix` then `zone` upper-cased, every other character than a letter or digit as `_`: the
/// symbol of a DNS list zone (DNSBL and URIBL alike).
pub(crate) fn zone_symbol(prefix: &str, zone: &str) -> String {
    let mut s = String::from(prefix);
    for c in zone.chars() {
        s.push(if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' });
    }
    s
}

/// One zone's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub server: Server,
    /// The `127.0.0.x` codes returned.
    pub codes: Vec<Ipv4Addr>,
}

/// Looks `ip` up in every zone concurrently. Returns the listings and the zones that failed.
pub async fn lookup(dns: &Dns, ip: IpAddr, servers: &[Server]) -> (Vec<Listing>, Vec<String>) {
    let futs = servers.iter().map(|s| {
        let name = names::dnsbl_name(ip, &s.zone, s.reversed);
        async move { (s, dns.a(&name).await) }
    });
    let results = join_all(futs).await;
    let mut listed = Vec::new();
    let mut failed = Vec::new();
    for (s, r) in results {
        match r {
            // Only 127.0.0.0/8 answers are listings; anything else is a misconfigured or
            // hijacked zone (some resolvers answer NXDOMAIN with an ad server's address).
            Lookup::Found(codes) => {
                let codes: Vec<Ipv4Addr> = codes.into_iter().filter(|c| c.octets()[0] == 127).collect();
                if !codes.is_empty() {
                    listed.push(Listing { server: s.clone(), codes });
                }
            }
            Lookup::None => {}
            Lookup::Failed(e) => failed.push(format!("{}: {e}", s.zone)),
        }
    }
    (listed, failed)
}

/// Adds the symbols of `listed` to `v`, counting weights only at `min_matches` or more.
pub fn score(v: &mut Verdict, ip: IpAddr, listed: &[Listing], min_matches: usize) {
    let counts = listed.len() >= min_matches.max(1);
    for l in listed {
        let codes: Vec<String> = l.codes.iter().map(|c| c.to_string()).collect();
        let reason = if counts {
            format!("{ip} is listed in {} ({})", l.server.zone, codes.join(","))
        } else {
            format!("{ip} is listed in {} ({}), but fewer than {min_matches} lists agree", l.server.zone, codes.join(","))
        };
        v.add(symbol(&l.server.zone), if counts { l.server.weight } else { 0.0 }, reason);
    }
}

/// Awaits all futures (no extra dependency for a handful of lookups).
pub(crate) async fn join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in pending.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future finished")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_syntax() {
        let s = parse_servers("zen.test,true=6; bl.test ;\nplain.test,false=2.5", 15.0).unwrap();
        assert_eq!(
            s,
            vec![
                Server { zone: "zen.test".into(), reversed: true, weight: 6.0 },
                Server { zone: "bl.test".into(), reversed: false, weight: 15.0 },
                Server { zone: "plain.test".into(), reversed: false, weight: 2.5 },
            ]
        );
        assert!(parse_servers("zen.test,maybe", 1.0).is_err());
        assert!(parse_servers("zen.test=x", 1.0).is_err());
        assert!(parse_servers("nodot", 1.0).is_err());
        assert_eq!(symbol("zen.spamhaus.org"), "DNSBL_ZEN_SPAMHAUS_ORG");
    }

    #[test]
    fn weights_count_only_at_the_minimum_of_matches() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let l = |z: &str| Listing { server: Server { zone: z.into(), reversed: true, weight: 7.0 }, codes: vec![Ipv4Addr::new(127, 0, 0, 2)] };
        let mut v = Verdict::new();
        score(&mut v, ip, &[l("a.test")], 2);
        assert_eq!(v.score(), 0.0);
        assert!(v.has("DNSBL_A_TEST"), "still explained");
        let mut v = Verdict::new();
        score(&mut v, ip, &[l("a.test"), l("b.test")], 2);
        assert_eq!(v.score(), 14.0);
    }
}
