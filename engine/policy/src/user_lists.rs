//! Each end user's own allow and block lists of senders (kept by the web console: releasing a
//! message adds its sender to the recipient's allow list). The console owns the rows in its
//! database and puts the whole set in force here after every change; the cores only read.
//!
//! An entry is a sender address or `@domain`, for one recipient address or, set by a domain
//! admin, for a whole recipient domain (`@domain` in the recipient's place); the recipient's own
//! entries are asked first. Matching is case-insensitive. Cost per lookup: a read lock around an `Arc` swap and two hash probes.
//! Never: touched by the cores for writing, or consulted for a recipient that has no entries
//! beyond the two probes.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock, RwLock};

/// The lists in force: (recipient, sender-or-@domain) pairs, lower case.
#[derive(Debug, Default, Clone)]
pub struct UserLists {
    pub allow: HashSet<(String, String)>,
    pub block: HashSet<(String, String)>,
}

/// What a recipient's own lists say of a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Allowed,
    Blocked,
}

impl UserLists {
    /// A sender on `rcpt`'s lists: its address, else its `@domain`; allow wins over block;
    /// then the same on the lists of `rcpt`'s domain.
    pub fn lookup(&self, rcpt: &str, from: &str) -> Option<Listed> {
        if from.is_empty() || (self.allow.is_empty() && self.block.is_empty()) {
            return None;
        }
        let rcpt = rcpt.to_ascii_lowercase();
        let from = from.to_ascii_lowercase();
        self.lookup_one(&rcpt, &from).or_else(|| rcpt.rsplit_once('@').and_then(|(_, d)| self.lookup_one(&format!("@{d}"), &from)))
    }

    fn lookup_one(&self, rcpt: &str, from: &str) -> Option<Listed> {
        let (rcpt, from) = (rcpt.to_string(), from.to_string());
        let domain = from.rsplit_once('@').map(|(_, d)| format!("@{d}"));
        let on = |set: &HashSet<(String, String)>| set.contains(&(rcpt.clone(), from.clone())) || domain.as_ref().is_some_and(|d| set.contains(&(rcpt.clone(), d.clone())));
        if on(&self.allow) {
            Some(Listed::Allowed)
        } else if on(&self.block) {
            Some(Listed::Blocked)
        } else {
            None
        }
    }
}

fn cell() -> &'static RwLock<Arc<UserLists>> {
    static C: OnceLock<RwLock<Arc<UserLists>>> = OnceLock::new();
    C.get_or_init(|| RwLock::new(Arc::new(UserLists::default())))
}

/// The lists in force.
pub fn current() -> Arc<UserLists> {
    cell().read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Puts `lists` in force (the console, after each change).
pub fn set(lists: UserLists) {
    *cell().write().unwrap_or_else(|e| e.into_inner()) = Arc::new(lists);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_then_domain_allow_before_block() {
        let mut l = UserLists::default();
        l.allow.insert(("ann@example.test".into(), "news@shop.example".into()));
        l.block.insert(("ann@example.test".into(), "@shop.example".into()));
        l.allow.insert(("bob@example.test".into(), "@friends.example".into()));
        assert_eq!(l.lookup("Ann@Example.test", "NEWS@shop.example"), Some(Listed::Allowed));
        assert_eq!(l.lookup("ann@example.test", "offers@shop.example"), Some(Listed::Blocked));
        assert_eq!(l.lookup("bob@example.test", "x@friends.example"), Some(Listed::Allowed));
        assert_eq!(l.lookup("bob@example.test", "news@shop.example"), None, "lists are per recipient");
        assert_eq!(l.lookup("ann@example.test", ""), None, "the null sender is never listed");
        // A domain's own lists, after the recipient's.
        l.block.insert(("@example.test".into(), "@friends.example".into()));
        l.allow.insert(("@example.test".into(), "boss@partner.example".into()));
        assert_eq!(l.lookup("carol@example.test", "x@friends.example"), Some(Listed::Blocked));
        assert_eq!(l.lookup("bob@example.test", "x@friends.example"), Some(Listed::Allowed), "bob's own entry first");
        assert_eq!(l.lookup("carol@EXAMPLE.test", "Boss@partner.example"), Some(Listed::Allowed));
        assert_eq!(l.lookup("carol@other.test", "x@friends.example"), None);
    }
}
