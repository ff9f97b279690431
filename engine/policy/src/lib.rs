//! The policy stage: the checks an ISP gateway makes before DATA (connection, HELO, MAIL FROM,
//! RCPT TO), each emitting symbols into a [`mxguard_verdict::Verdict`], never deciding alone.
//!
//! Pure parts ([`rules`], [`list`], [`dnsbl::score`]) test without sockets; the DNS-backed
//! parts go through [`mxguard_dns`], which never blocks a core. Nothing here writes to the
//! network or to disk except the list watcher's reads.

pub mod bans;
pub mod dnsbl;
pub mod list;
pub mod rules;
pub mod tables;
