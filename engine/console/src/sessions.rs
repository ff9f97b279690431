//! Console sessions and login throttling, in memory (a restart logs everyone out).
//!
//! A session is a 256-bit random token (the system's CSPRNG through ring) sent as an HttpOnly,
//! SameSite=Strict cookie, with its own 256-bit CSRF token that every form posts back; it ends
//! after `console.session_min` minutes without a request or at logout. Failed logins are counted
//! per client address and per account over 15 minutes; past `console.login_failures` further
//! attempts are refused until the window passes. Never: stores a password, or accepts a session
//! or CSRF token by anything but an exact, constant-time comparison.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mxguard_tuning as k;
use ring::rand::{SecureRandom, SystemRandom};

use crate::users::Account;

const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A random token in hex (64 characters).
pub fn token() -> String {
    let mut b = [0u8; 32];
    // The system RNG failing is a broken machine: fall back to nothing predictable-looking.
    if SystemRandom::new().fill(&mut b).is_err() {
        return String::new();
    }
    crate::digest::hex(&b)
}

/// Equality that takes as long whatever the first difference.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone)]
pub struct Session {
    pub account: Account,
    pub csrf: String,
    last: Instant,
}

#[derive(Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
    failures: HashMap<String, Vec<Instant>>,
}

impl Sessions {
    /// Starts a session; its token.
    pub fn start(&mut self, account: Account) -> Option<String> {
        let t = token();
        if t.is_empty() {
            return None;
        }
        self.expire();
        self.by_token.insert(t.clone(), Session { account, csrf: token(), last: Instant::now() });
        Some(t)
    }

    /// The live session of a cookie token (its clock restarts).
    pub fn get(&mut self, t: &str) -> Option<Session> {
        let idle = Duration::from_secs(k::CONSOLE_SESSION_MIN.get_u64() * 60);
        let s = self.by_token.get_mut(t)?;
        if s.last.elapsed() > idle {
            self.by_token.remove(t);
            return None;
        }
        s.last = Instant::now();
        Some(s.clone())
    }

    pub fn end(&mut self, t: &str) {
        self.by_token.remove(t);
    }

    fn expire(&mut self) {
        let idle = Duration::from_secs(k::CONSOLE_SESSION_MIN.get_u64() * 60);
        self.by_token.retain(|_, s| s.last.elapsed() <= idle);
        self.failures.retain(|_, v| v.last().is_some_and(|t| t.elapsed() < THROTTLE_WINDOW));
    }

    /// Whether a login from `ip` for `login` may be tried now.
    pub fn may_try(&mut self, ip: IpAddr, login: &str) -> bool {
        let max = k::CONSOLE_LOGIN_FAILURES.get_usize();
        [format!("ip:{ip}"), format!("login:{}", login.to_ascii_lowercase())].iter().all(|key| {
            let v = self.failures.entry(key.clone()).or_default();
            v.retain(|t| t.elapsed() < THROTTLE_WINDOW);
            v.len() < max
        })
    }

    pub fn failed(&mut self, ip: IpAddr, login: &str) {
        for key in [format!("ip:{ip}"), format!("login:{}", login.to_ascii_lowercase())] {
            self.failures.entry(key).or_default().push(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_sessions_and_throttling() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()) && !same(&a, &b) && !same(&a, &a[..63]));
        let mut s = Sessions::default();
        let acct = Account::user("ann@example.test");
        let t = s.start(acct.clone()).unwrap();
        let got = s.get(&t).unwrap();
        assert_eq!(got.account, acct);
        assert_eq!(got.csrf.len(), 64);
        assert!(s.get("forged").is_none());
        s.end(&t);
        assert!(s.get(&t).is_none());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..k::CONSOLE_LOGIN_FAILURES.get_usize() {
            assert!(s.may_try(ip, "ann@example.test"));
            s.failed(ip, "ann@example.test");
        }
        assert!(!s.may_try(ip, "someone@else.test"), "the address is throttled");
        assert!(!s.may_try("192.0.2.2".parse().unwrap(), "ANN@example.test"), "so is the account");
        assert!(s.may_try("192.0.2.2".parse().unwrap(), "bob@example.test"));
    }
}
