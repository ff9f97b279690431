//! Sender reputation: per client address, its network (/24, /48 for IPv6) and the sender domain
//! when SPF passed for it, the messages, spam and recipients of the last `reputation.window_s`
//! (the reference products' reputation by send rate, recipients and IP history, aged out after
//! 6-24 h like SFDB). Read before a message's verdict ([`Reputation::findings`]), written after it
//! ([`Reputation::record`]); a client address crossing `reputation.ban_*` is reported for the
//! temporary ban list.
//!
//! Never: counts a domain that was not authenticated (anyone can forge one, and the forged
//! domain's owner would pay), or decides an action itself.

use std::net::IpAddr;

use mxguard_tuning as k;

use crate::window::{key_of, key_of_ip, Delta, Seen, Windows};
use crate::Finding;

/// Who sent a message.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    pub ip: IpAddr,
    /// The envelope sender's domain when SPF passed for it.
    pub domain: Option<&'a str>,
}

impl Sender<'_> {
    fn ip_key(&self) -> u64 {
        key_of_ip(1, self.ip, 4, 16)
    }

    fn net_key(&self) -> u64 {
        key_of_ip(2, self.ip, 3, 6)
    }

    fn domain_key(&self) -> Option<u64> {
        self.domain.filter(|d| !d.is_empty()).map(|d| key_of(3, d.to_ascii_lowercase().as_bytes()))
    }

    fn net(&self) -> String {
        match self.ip {
            IpAddr::V4(a) => {
                let o = a.octets();
                format!("{}.{}.{}.0/24", o[0], o[1], o[2])
            }
            IpAddr::V6(a) => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        }
    }
}

#[derive(Default)]
pub struct Reputation {
    senders: Windows,
}

/// What recording a verdict found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recorded {
    /// The client address now holds this history.
    pub ip: Seen,
    /// It crossed `reputation.ban_*`: ban it.
    pub ban: bool,
}

fn ratio(s: &Seen) -> f64 {
    if s.messages <= 0.0 {
        0.0
    } else {
        s.spam / s.messages
    }
}

impl Reputation {
    pub fn new() -> Reputation {
        Reputation::default()
    }

    fn window(&self) -> u64 {
        k::REPUTATION_WINDOW_S.get_u64()
    }

    /// The reputation symbols of a sender, from the history before this message.
    pub fn findings(&self, s: &Sender, now: u64) -> Vec<Finding> {
        let w = self.window();
        let min = k::REPUTATION_MIN_MESSAGES.get_u64() as f64;
        let bad = k::REPUTATION_SPAM_RATIO.get_f64();
        let mut out = Vec::new();
        let ip = self.senders.get(s.ip_key(), now, w);
        let spammy = |h: &Seen, at_least: f64| h.messages >= at_least && ratio(h) >= bad;
        if spammy(&ip, min) {
            out.push(Finding { symbol: "REP_IP_SPAM", score: k::SCORE_REP_IP_SPAM.get_f64(), reason: describe(&format!("the client {}", s.ip), &ip) });
        } else {
            let net = self.senders.get(s.net_key(), now, w);
            if spammy(&net, 2.0 * min) {
                out.push(Finding { symbol: "REP_NET_SPAM", score: k::SCORE_REP_NET_SPAM.get_f64(), reason: describe(&format!("the network {}", s.net()), &net) });
            }
        }
        if let (Some(key), Some(d)) = (s.domain_key(), s.domain) {
            let h = self.senders.get(key, now, w);
            if spammy(&h, min) {
                out.push(Finding { symbol: "REP_DOMAIN_SPAM", score: k::SCORE_REP_DOMAIN_SPAM.get_f64(), reason: describe(&format!("the domain {d}"), &h) });
            }
        }
        let good = k::REPUTATION_GOOD_MESSAGES.get_u64() as f64;
        if good > 0.0 && ip.messages >= good && ip.spam < 0.5 {
            out.push(Finding { symbol: "REP_IP_GOOD", score: k::SCORE_REP_IP_GOOD.get_f64(), reason: describe(&format!("the client {}", s.ip), &ip) });
        }
        let rcpts = k::REPUTATION_RECIPIENTS.get_u64() as f64;
        if rcpts > 0.0 && ip.recipients >= rcpts {
            out.push(Finding {
                symbol: "REP_IP_RECIPIENTS",
                score: k::SCORE_REP_IP_RECIPIENTS.get_f64(),
                reason: format!("the client {} sent to {:.0} recipients within reputation.window_s", s.ip, ip.recipients),
            });
        }
        out
    }

    /// Records a message's verdict for its sender: `spam` or not, to `recipients`.
    pub fn record(&self, s: &Sender, spam: bool, recipients: u32, now: u64) -> Recorded {
        let (w, max) = (self.window(), k::REPUTATION_MAX_KEYS.get_usize());
        let d = Delta { messages: 1, spam: u32::from(spam), ham: u32::from(!spam), recipients, source: None };
        let ip = self.senders.add(s.ip_key(), now, w, max, &d);
        self.senders.add(s.net_key(), now, w, max, &d);
        if let Some(key) = s.domain_key() {
            self.senders.add(key, now, w, max, &d);
        }
        let at_least = k::REPUTATION_BAN_MESSAGES.get_u64() as f64;
        let ban = spam && at_least > 0.0 && ip.messages >= at_least && ratio(&ip) >= k::REPUTATION_BAN_RATIO.get_f64();
        Recorded { ip, ban }
    }

    /// Senders remembered (for metrics).
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    pub fn sweep(&self, now: u64) {
        self.senders.sweep(now, self.window());
    }
}

fn describe(who: &str, h: &Seen) -> String {
    format!("{who} sent {:.0} spam of {:.0} messages within reputation.window_s", h.spam, h.messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.symbol).collect()
    }

    #[test]
    fn spam_history_by_address_network_and_domain() {
        let r = Reputation::new();
        let now = 5_000_000;
        let spammer = Sender { ip: "192.0.2.7".parse().unwrap(), domain: Some("Spam.Example") };
        let neighbour = Sender { ip: "192.0.2.99".parse().unwrap(), domain: None };
        let stranger = Sender { ip: "198.51.100.1".parse().unwrap(), domain: Some("spam.example") };
        for i in 0..4 {
            r.record(&spammer, true, 1, now + i);
        }
        assert!(r.findings(&spammer, now + 5).is_empty(), "below reputation.min_messages");
        r.record(&spammer, true, 1, now + 5);
        assert_eq!(names(&r.findings(&spammer, now + 6)), ["REP_IP_SPAM", "REP_DOMAIN_SPAM"]);
        // The neighbour's network has 5 spam: twice the minimum is needed for a network.
        assert!(r.findings(&neighbour, now + 6).is_empty());
        for i in 0..5 {
            r.record(&spammer, true, 1, now + 10 + i);
        }
        assert_eq!(names(&r.findings(&neighbour, now + 20)), ["REP_NET_SPAM"]);
        // The domain (authenticated) follows it to another address.
        assert_eq!(names(&r.findings(&stranger, now + 20)), ["REP_DOMAIN_SPAM"]);
        assert!(r.findings(&Sender { domain: None, ..stranger }, now + 20).is_empty());
        // Ten more spam: past reputation.ban_messages (20) at a ratio of 1.0, a ban.
        let mut banned = false;
        for i in 0..10 {
            banned |= r.record(&spammer, true, 1, now + 30 + i).ban;
        }
        assert!(banned);
        // Aged out two windows later.
        let later = now + 2 * k::REPUTATION_WINDOW_S.get_u64() + 1;
        assert!(r.findings(&spammer, later).is_empty());
    }

    #[test]
    fn good_history_and_volume() {
        let r = Reputation::new();
        let now = 7_000_000;
        let isp = Sender { ip: "2001:db8::25".parse().unwrap(), domain: None };
        for i in 0..20 {
            assert!(!r.record(&isp, false, 60, now + i).ban);
        }
        assert_eq!(names(&r.findings(&isp, now + 30)), ["REP_IP_GOOD", "REP_IP_RECIPIENTS"]);
        r.record(&isp, true, 1, now + 31);
        assert_eq!(names(&r.findings(&isp, now + 32)), ["REP_IP_RECIPIENTS"], "one spam and it is no longer spotless");
    }
}
