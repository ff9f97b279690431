//! Pure envelope and HELO rules: no DNS, no state, so each is a table-tested function that
//! adds symbols to a verdict. Scores come from the caller (knobs); a score of 0 still records
//! the symbol, so the log explains what was seen even when it does not count.

use std::net::IpAddr;

use mxguard_verdict::Verdict;

/// Scores for the HELO checks.
#[derive(Debug, Clone, Copy)]
pub struct HeloScores {
    pub bare_ip: f64,
    pub literal_mismatch: f64,
    pub not_fqdn: f64,
    pub forged_us: f64,
}

/// HELO sanity: an address not in brackets, a literal that is not the client, a name without
/// a dot, or our own name or address claimed by someone else.
pub fn helo(v: &mut Verdict, name: &str, client: IpAddr, our_name: &str, our_ip: IpAddr, s: &HeloScores) {
    let n = name.trim_end_matches('.');
    if let Some(lit) = n.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let lit = lit.strip_prefix("IPv6:").or_else(|| lit.strip_prefix("ipv6:")).unwrap_or(lit);
        match lit.parse::<IpAddr>() {
            Ok(ip) if ip == our_ip && client != our_ip => v.add("HELO_FORGED_US", s.forged_us, format!("HELO claims our address {lit}")),
            Ok(ip) if ip != client => v.add("HELO_LITERAL_MISMATCH", s.literal_mismatch, format!("HELO [{lit}] is not the client's address {client}")),
            Ok(_) => {}
            Err(_) => v.add("HELO_NOT_FQDN", s.not_fqdn, format!("HELO {name} is a malformed address literal")),
        }
        return;
    }
    if n.parse::<IpAddr>().is_ok() {
        v.add("HELO_BARE_IP", s.bare_ip, format!("HELO {name} is an address without brackets"));
        return;
    }
    if n.eq_ignore_ascii_case(our_name) && client != our_ip {
        v.add("HELO_FORGED_US", s.forged_us, format!("HELO claims to be us ({name})"));
        return;
    }
    if !n.contains('.') {
        v.add("HELO_NOT_FQDN", s.not_fqdn, format!("HELO {name} is not a fully qualified name"));
    }
}

/// Scores for the reference products' envelope rules.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeScores {
    pub empty_from: f64,
    pub from_eq_to: f64,
    pub from_domain_eq_to_domain: f64,
    pub percent: f64,
}

/// Rules on one recipient of one transaction. `from_inside` is true for clients allowed to
/// send as the local domains (the reference products exempt them from the domain rule).
pub fn envelope(v: &mut Verdict, from: &str, to: &str, from_inside: bool, s: &EnvelopeScores) {
    if from.is_empty() {
        v.add("FROM_EMPTY", s.empty_from, "empty MAIL FROM (bounce or notification)");
    }
    if to.contains('%') {
        v.add("RCPT_PERCENT", s.percent, format!("recipient <{to}> contains '%' (a relay trick)"));
    }
    if !from.is_empty() && from.eq_ignore_ascii_case(to) {
        v.add("FROM_EQ_TO", s.from_eq_to, "sender and recipient are the same address");
    } else if !from_inside && !from.is_empty() {
        let fd = from.rsplit_once('@').map(|x| x.1).unwrap_or("");
        let td = to.rsplit_once('@').map(|x| x.1).unwrap_or("");
        if !fd.is_empty() && fd.eq_ignore_ascii_case(td) {
            v.add("FROM_DOMAIN_EQ_TO_DOMAIN", s.from_domain_eq_to_domain, format!("a sender of {fd} from outside writes to {td}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HS: HeloScores = HeloScores { bare_ip: 1.0, literal_mismatch: 2.0, not_fqdn: 3.0, forged_us: 4.0 };
    const ES: EnvelopeScores = EnvelopeScores { empty_from: 1.0, from_eq_to: 2.0, from_domain_eq_to_domain: 3.0, percent: 4.0 };

    fn helo_syms(name: &str) -> Vec<String> {
        let mut v = Verdict::new();
        helo(&mut v, name, "192.0.2.5".parse().unwrap(), "mx.example.test", "198.51.100.1".parse().unwrap(), &HS);
        v.symbols().iter().map(|s| s.name.clone()).collect()
    }

    #[test]
    fn helo_table() {
        let cases: &[(&str, &[&str])] = &[
            ("mail.client.example", &[]),
            ("mail.client.example.", &[]),
            ("[192.0.2.5]", &[]),
            ("[192.0.2.6]", &["HELO_LITERAL_MISMATCH"]),
            ("[IPv6:2001:db8::1]", &["HELO_LITERAL_MISMATCH"]),
            ("[nonsense]", &["HELO_NOT_FQDN"]),
            ("192.0.2.5", &["HELO_BARE_IP"]),
            ("localhost", &["HELO_NOT_FQDN"]),
            ("MX.example.test", &["HELO_FORGED_US"]),
            ("[198.51.100.1]", &["HELO_FORGED_US"]),
        ];
        for (name, want) in cases {
            assert_eq!(helo_syms(name), want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{name}");
        }
    }

    #[test]
    fn envelope_table() {
        let cases: &[(&str, &str, bool, &[&str])] = &[
            ("a@x.example", "u@example.test", false, &[]),
            ("", "u@example.test", false, &["FROM_EMPTY"]),
            ("u@example.test", "U@example.test", false, &["FROM_EQ_TO"]),
            ("x@example.test", "u@example.test", false, &["FROM_DOMAIN_EQ_TO_DOMAIN"]),
            ("x@example.test", "u@example.test", true, &[]),
            ("a@x.example", "joe%yahoo.example@example.test", false, &["RCPT_PERCENT"]),
        ];
        for (from, to, inside, want) in cases {
            let mut v = Verdict::new();
            envelope(&mut v, from, to, *inside, &ES);
            let got: Vec<String> = v.symbols().iter().map(|s| s.name.clone()).collect();
            assert_eq!(got, want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{from} -> {to}");
        }
    }
}
