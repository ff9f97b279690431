//! DNS answers as the sender checks read them: SPF (macros, include, redirect, a, mx, ptr,
//! exists), DKIM keys and DMARC policies, each TXT record parsed by mail-auth exactly as its
//! resolver does with an answer off the wire, then the gateway's own assembly of the findings
//! (`mxguard_dns::auth::assemble`) into the Authentication-Results header it prepends to mail.
//!
//! The answers come from the input, served through mail-auth's cache interface for every name
//! (a name the input does not hold is NXDOMAIN), so no query ever leaves the process.
//!
//! Input: parts separated by 0xFF. Each part but the last is `TYPE NAME\0VALUE`: `TXT` (one
//! record; several parts make several records), `A`/`AAAA` (addresses as 4/16-byte runs), `MX`
//! (exchange names, one a line), `PTR` (names for the client address 192.0.2.1, one a line).
//! The last part is the message. The envelope: client 192.0.2.1, HELO mx.example.test,
//! MAIL FROM user@example.test.
//!
//! Properties: nothing panics or hangs (SPF's lookup limits bound the walk), and the header is
//! one well-formed field — it starts with its name, ends in CRLF, and every line break inside
//! is CRLF followed by a space or tab, with no NUL: whatever a record or the message holds, it
//! can never add a header of its own to the mail we relay.
#![no_main]

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Dmarc;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::spf::Spf;
use mail_auth::{common::parse::TxtRecordParser, AuthenticatedMessage, DnsError, DnssecStatus, Error, MessageAuthenticator, Parameters, RecordSet, ResolverCache, Txt, MX};

/// A cache that answers every name from a fixed map; `miss` for the rest.
struct Answers<K, V> {
    map: HashMap<K, V>,
    miss: fn() -> Option<V>,
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for Answers<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(name).cloned().or_else(self.miss)
    }
    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(name).cloned()
    }
    fn insert(&self, _: K, _: V, _: Instant) {}
}

fn nxdomain() -> Option<Txt> {
    Some(Txt::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain))))
}

fn empty<T>() -> Option<RecordSet<T>> {
    Some(RecordSet { rrset: Arc::from(Vec::new().into_boxed_slice()), dnssec_status: DnssecStatus::Indeterminate })
}

fn set<T>(v: Vec<T>) -> RecordSet<T> {
    RecordSet { rrset: Arc::from(v.into_boxed_slice()), dnssec_status: DnssecStatus::Indeterminate }
}

/// The records of one name as mail-auth's resolver turns them into its cache entry: the first
/// that parses as the type asked for, else the last error (no record: wrong type).
fn txt_of<T: TxtRecordParser + Into<Txt>>(records: &[Vec<u8>]) -> Txt {
    let mut result: mail_auth::Result<T> = Err(Error::Dns(DnsError::InvalidRecordType));
    for r in records {
        result = T::parse(r);
        if result.is_ok() {
            break;
        }
    }
    match result {
        Ok(v) => v.into(),
        Err(e) => Txt::Error(e),
    }
}

fn fqdn(name: &[u8]) -> String {
    let mut n = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

fn runtime() -> &'static (tokio::runtime::Runtime, MessageAuthenticator) {
    static R: OnceLock<(tokio::runtime::Runtime, MessageAuthenticator)> = OnceLock::new();
    R.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        // Never asked (every name is answered from the input); a loopback address all the same.
        let auth = {
            let _g = rt.enter();
            let config = ResolverConfig::from_name_servers(vec![NameServerConfig::udp_and_tcp(IpAddr::V4(Ipv4Addr::LOCALHOST))]);
            MessageAuthenticator::new(config, ResolverOpts::default()).expect("resolver")
        };
        (rt, auth)
    })
}

fuzz_target!(|data: &[u8]| {
    let parts: Vec<&[u8]> = data.split(|&b| b == 0xFF).collect();
    let (message, records) = parts.split_last().expect("split yields one part at least");
    let mut txt: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    let mut a: HashMap<Box<str>, RecordSet<Ipv4Addr>> = HashMap::new();
    let mut aaaa: HashMap<Box<str>, RecordSet<Ipv6Addr>> = HashMap::new();
    let mut mx: HashMap<Box<str>, RecordSet<MX>> = HashMap::new();
    let mut ptr: HashMap<IpAddr, RecordSet<Box<str>>> = HashMap::new();
    let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    for part in records {
        let (head, value) = match part.iter().position(|&b| b == 0) {
            Some(p) => (&part[..p], &part[p + 1..]),
            None => (&part[..], &[][..]),
        };
        let (kind, name) = match head.iter().position(|&b| b == b' ') {
            Some(p) => (&head[..p], fqdn(&head[p + 1..])),
            None => (head, String::new()),
        };
        let lines = || value.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| fqdn(l).into_boxed_str()).collect::<Vec<_>>();
        match kind {
            b"TXT" => txt.entry(name).or_default().push(value.to_vec()),
            b"A" => {
                a.insert(name.into(), set(value.chunks_exact(4).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])).collect()));
            }
            b"AAAA" => {
                aaaa.insert(name.into(), set(value.chunks_exact(16).map(|c| Ipv6Addr::from(<[u8; 16]>::try_from(c).expect("16 bytes"))).collect()));
            }
            b"MX" => {
                let v = lines().into_iter().enumerate().map(|(i, e)| MX { exchanges: vec![e].into_boxed_slice(), preference: i as u16 * 10 }).collect();
                mx.insert(name.into(), set(v));
            }
            b"PTR" => {
                ptr.insert(client, set(lines()));
            }
            _ => {}
        }
    }
    // Each name's records as the check that asks for that name parses them.
    let txt: HashMap<Box<str>, Txt> = txt
        .into_iter()
        .map(|(name, recs)| {
            let v = if name.starts_with("_dmarc.") {
                txt_of::<Dmarc>(&recs)
            } else if name.contains("._domainkey.") {
                txt_of::<DomainKey>(&recs)
            } else {
                txt_of::<Spf>(&recs)
            };
            (name.into_boxed_str(), v)
        })
        .collect();
    let txt = Answers { map: txt, miss: nxdomain };
    let a = Answers { map: a, miss: empty };
    let aaaa = Answers { map: aaaa, miss: empty };
    let mx = Answers { map: mx, miss: empty };
    let ptr = Answers { map: ptr, miss: empty };

    let (rt, auth) = runtime();
    let helo = "mx.example.test";
    let sender = "user@example.test";
    let env = mxguard_dns::auth::Envelope { ip: client, helo: helo.into(), mail_from: sender.into(), spf: None, hostname: "gw.example.test".into() };
    // A check's parameters with every kind of lookup answered from the input.
    macro_rules! answered {
        ($params:expr) => {
            Parameters::new($params).with_txt_cache(&txt).with_mx_cache(&mx).with_ipv4_cache(&a).with_ipv6_cache(&aaaa).with_ptr_cache(&ptr)
        };
    }
    rt.block_on(async {
        let spf = auth.verify_spf(answered!(SpfParameters::verify_mail_from(client, helo, "gw.example.test", sender))).await;
        let Some(msg) = AuthenticatedMessage::parse(message) else { return };
        let dkim = auth.verify_dkim(answered!(&msg)).await;
        let arc = auth.verify_arc(answered!(&msg)).await;
        let dmarc = auth.verify_dmarc(answered!(DmarcParameters::new(&msg, &dkim, "example.test", &spf))).await;
        let found = mxguard_dns::auth::assemble(&msg, &dkim, &arc, &dmarc, &spf, &env);
        let h = found.header.as_bytes();
        assert!(h.starts_with(b"Authentication-Results: "), "{:?}", found.header);
        assert!(h.ends_with(b"\r\n"), "{:?}", found.header);
        let inner = &h[..h.len() - 2];
        for (i, &b) in inner.iter().enumerate() {
            assert!(b != 0, "NUL in the header: {:?}", found.header);
            if b == b'\r' {
                assert!(inner.get(i + 1) == Some(&b'\n'), "bare CR in the header: {:?}", found.header);
            }
            if b == b'\n' {
                assert!(i > 0 && inner[i - 1] == b'\r', "bare LF in the header: {:?}", found.header);
                assert!(matches!(inner.get(i + 1), Some(b' ' | b'\t')), "a line that is not a continuation: {:?}", found.header);
            }
        }
        assert!(matches!(found.dmarc.policy, "none" | "quarantine" | "reject"));
    });
});
