//! Name building for queries: fully qualified names, reversed addresses (PTR and DNSBL).

use std::net::IpAddr;

/// `name` with exactly one trailing dot, lower-case.
pub fn fqdn(name: &str) -> String {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    format!("{n}.")
}

/// `name` without the trailing dot, lower-case.
pub fn plain(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The labels of `ip` in reverse order: `4.3.2.1` for 1.2.3.4, 32 nibbles for IPv6.
pub fn reversed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(64);
            for b in v6.octets().iter().rev() {
                s.push(char::from_digit((b & 0xf) as u32, 16).unwrap_or('0'));
                s.push('.');
                s.push(char::from_digit((b >> 4) as u32, 16).unwrap_or('0'));
                s.push('.');
            }
            s.pop();
            s
        }
    }
}

/// The labels of `ip` in their own order (the reference products' MAPS entries without
/// `,true`): `1.2.3.4`; IPv6 as 32 nibbles, most significant first.
pub fn forward(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(_) => {
            let r = reversed(ip);
            r.split('.').rev().collect::<Vec<_>>().join(".")
        }
    }
}

/// The PTR query name of `ip` (`4.3.2.1.in-addr.arpa.`).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{}.in-addr.arpa.", reversed(ip)),
        IpAddr::V6(_) => format!("{}.ip6.arpa.", reversed(ip)),
    }
}

/// The DNSBL query name of `ip` in `zone`.
pub fn dnsbl_name(ip: IpAddr, zone: &str, reversed_ip: bool) -> String {
    let labels = if reversed_ip { reversed(ip) } else { forward(ip) };
    format!("{labels}.{}", fqdn(zone))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_forms() {
        let v4: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(dnsbl_name(v4, "zen.test", true), "10.2.0.192.zen.test.");
        assert_eq!(dnsbl_name(v4, "ZEN.test.", false), "192.0.2.10.zen.test.");
        assert_eq!(reverse_name(v4), "10.2.0.192.in-addr.arpa.");
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(reversed(v6), "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2");
        assert_eq!(forward(v6), "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1");
        assert_eq!(fqdn("Example.COM"), "example.com.");
        assert_eq!(plain("mx.Example.com."), "mx.example.com");
    }
}
