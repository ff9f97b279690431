//! The TCP sockets in the listening state on this machine (this network namespace), read from
//! the kernel's tables `/proc/net/tcp` and `/proc/net/tcp6`: what [`crate::check_unused`] asks
//! before the cores bind. Reads two small text files; never binds or connects anything, never
//! fails (an unreadable table lists nothing).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The kernel's `st` value of a listening socket (TCP_LISTEN).
const LISTEN: &str = "0A";

/// Every listening TCP socket's address.
pub fn listening() -> Vec<SocketAddr> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| parse(&text))
        .collect()
}

/// The listening sockets of one table's text.
pub fn parse(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            (state == LISTEN).then(|| address(local)).flatten()
        })
        .collect()
}

/// `0100007F:0019` (IPv4) or 32 hex digits `:port` (IPv6): the address as the kernel prints it,
/// each 32-bit word of the network-order bytes in the host's order.
fn address(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| ip.get(8 * i..8 * i + 8).and_then(|h| u32::from_str_radix(h, 16).ok()).map(u32::to_ne_bytes);
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[4 * i..4 * i + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether a socket listening on `other` takes connections meant for `want`: the same port, and
/// the same address or the unspecified one on either side (an IPv4 address is compared with the
/// IPv6 socket's mapped form, which a dual-stack socket serves).
pub fn overlaps(other: &SocketAddr, want: &SocketAddr) -> bool {
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (o, w) = (v4(other.ip()), v4(want.ip()));
    other.port() == want.port() && (o == w || o.is_unspecified() || w.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_format() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:0019 0200007F:D431 06 00000000:00000000 03:00000A5C 00000000     0        0 0 3 0\n\
   2: 00000000:01D1 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n";
        assert_eq!(parse(text), ["127.0.0.1:25".parse().unwrap(), "0.0.0.0:465".parse().unwrap()] as [SocketAddr; 2]);
        let text6 = "  sl  local_address                         remote_address                        st\n\
   0: 00000000000000000000000001000000:0019 00000000000000000000000000000000:0000 0A 0\n\
   1: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(parse(text6), ["[::1]:25".parse().unwrap(), "[::ffff:127.0.0.1]:80".parse().unwrap()] as [SocketAddr; 2]);
        assert!(parse("header\n garbage\n 0: zz:yy 0 0A\n").is_empty());
    }

    #[test]
    fn what_overlaps() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(overlaps(&a("127.0.0.1:25"), &a("127.0.0.1:25")));
        assert!(overlaps(&a("0.0.0.0:25"), &a("127.0.0.1:25")));
        assert!(overlaps(&a("127.0.0.2:25"), &a("0.0.0.0:25")));
        assert!(overlaps(&a("[::]:25"), &a("127.0.0.1:25")));
        assert!(overlaps(&a("[::ffff:127.0.0.1]:25"), &a("127.0.0.1:25")));
        assert!(!overlaps(&a("127.0.0.2:25"), &a("127.0.0.1:25")));
        assert!(!overlaps(&a("127.0.0.1:26"), &a("127.0.0.1:25")));
        assert!(!overlaps(&a("[::1]:25"), &a("127.0.0.1:25")));
    }

    #[test]
    fn sees_a_listener_of_this_process_and_not_a_closed_one() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        assert!(listening().contains(&at), "{at} not in {:?}", listening());
        assert!(crate::check_unused(&[at]).is_err());
        // A connection closed by this side first leaves the port in TIME_WAIT: not listening.
        let c = std::net::TcpStream::connect(at).unwrap();
        let (s, _) = l.accept().unwrap();
        drop(s);
        drop(c);
        drop(l);
        assert!(!listening().contains(&at));
        assert!(crate::check_unused(&[at]).is_ok());
    }
}
