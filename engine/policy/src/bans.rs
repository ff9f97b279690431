//! Temporary IP bans (the reference products' cached IP blocking): an IP that sends
//! `policy.ban_spam_count` spams within `policy.ban_window_min` minutes, hits a honeypot, or
//! tries `policy.dictionary_unknown_max` unknown recipients is refused for
//! `policy.ban_duration_min` minutes. Shared by all cores behind one mutex: it is touched once
//! per connection and once per spam, never per byte. Exempt addresses (`policy.ban_exempt`,
//! DoNotAddIPToHoneypot) are never banned. State lives in memory: a restart forgets bans, as
//! it forgets the reference product's cache.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mxguard_tuning as k;

#[derive(Default)]
struct State {
    spams: VecDeque<Instant>,
    until: Option<Instant>,
}

#[derive(Default)]
pub struct Bans {
    map: Mutex<HashMap<IpAddr, State>>,
}

/// Why an IP was banned (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    RepeatedSpam,
    Honeypot,
    DictionaryAttack,
    /// Its history within reputation.window_s (engine/traffic).
    Reputation,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::RepeatedSpam => "repeated spam",
            Why::Honeypot => "honeypot",
            Why::DictionaryAttack => "dictionary attack",
            Why::Reputation => "reputation",
        }
    }
}

fn exempt(ip: IpAddr) -> bool {
    let list = k::POLICY_BAN_EXEMPT.get_str();
    list.split([',', ' ']).filter(|s| !s.is_empty()).any(|s| s.parse::<IpAddr>().is_ok_and(|e| e == ip))
}

impl Bans {
    pub fn new() -> Bans {
        Bans::default()
    }

    /// The remaining ban of `ip`, if it is banned now.
    pub fn banned(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let s = m.get_mut(&ip)?;
        match s.until {
            Some(t) if t > now => Some(t - now),
            Some(_) => {
                s.until = None;
                if s.spams.is_empty() {
                    m.remove(&ip);
                }
                None
            }
            None => None,
        }
    }

    /// Bans `ip` now (honeypot, dictionary attack). Returns false for exempt addresses.
    pub fn ban(&self, ip: IpAddr, now: Instant) -> bool {
        if exempt(ip) || k::POLICY_BAN_DURATION_MIN.get() == 0 {
            return false;
        }
        let d = Duration::from_secs(k::POLICY_BAN_DURATION_MIN.get_u64() * 60);
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(ip).or_default().until = Some(now + d);
        true
    }

    /// Counts one spam from `ip`; returns true when this spam started a ban.
    pub fn spam(&self, ip: IpAddr, now: Instant) -> bool {
        let count = k::POLICY_BAN_SPAM_COUNT.get_usize();
        if count == 0 || exempt(ip) {
            return false;
        }
        let window = Duration::from_secs(k::POLICY_BAN_WINDOW_MIN.get_u64() * 60);
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Bound the table: forget the oldest-looking entries rather than grow without limit.
        if m.len() >= k::POLICY_BAN_TABLE_MAX.get_usize().max(1) {
            m.retain(|_, s| s.until.is_some_and(|t| t > now));
        }
        let s = m.entry(ip).or_default();
        while s.spams.front().is_some_and(|t| now.duration_since(*t) > window) {
            s.spams.pop_front();
        }
        s.spams.push_back(now);
        if s.spams.len() >= count && s.until.is_none_or(|t| t <= now) {
            drop(m);
            return self.ban(ip, now);
        }
        false
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_spams_in_the_window_ban_for_the_duration() {
        let b = Bans::new();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(!b.spam(ip, t0));
        assert!(!b.spam(ip, t0 + Duration::from_secs(60)));
        assert!(b.banned(ip, t0 + Duration::from_secs(61)).is_none());
        assert!(b.spam(ip, t0 + Duration::from_secs(120)), "third spam within 10 minutes");
        let left = b.banned(ip, t0 + Duration::from_secs(121)).unwrap();
        assert!(left > Duration::from_secs(59 * 60) && left <= Duration::from_secs(3600));
        assert!(b.banned(ip, t0 + Duration::from_secs(120 + 3601)).is_none(), "lifted after 60 minutes");
    }

    #[test]
    fn spams_spread_beyond_the_window_do_not_ban() {
        let b = Bans::new();
        let ip: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..6 {
            assert!(!b.spam(ip, t0 + Duration::from_secs(i * 400)), "spam {i}");
        }
    }

    #[test]
    fn honeypot_bans_at_once() {
        let b = Bans::new();
        let ip: IpAddr = "2001:db8::9".parse().unwrap();
        let t0 = Instant::now();
        assert!(b.ban(ip, t0));
        assert!(b.banned(ip, t0).is_some());
        assert!(b.banned("2001:db8::8".parse().unwrap(), t0).is_none());
    }
}
