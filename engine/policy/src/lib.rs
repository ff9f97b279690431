//! The policy stage: the checks an ISP gateway makes before DATA (connection, HELO, MAIL FROM,
//! RCPT TO), each emitting symbols into a [`mxguard_verdict::Verdict`], never deciding alone.
//!
//! Pure parts ([`rules`], [`list`], [`dnsbl::score`]) test without sockets; the DNS-backed
//! parts go through [`mxguard_dns`], which never blocks a core. Nothing here writes to the
//! network; the only disk writes are the greylist snapshot, which the gateway calls off the
//! cores.

pub mod bans;
pub mod country;
pub mod dnsbl;
pub mod domains;
pub mod greylist;
pub mod hsdb;
pub mod list;
pub mod pregreet;
pub mod rate;
pub mod rules;
pub mod tables;
pub mod uribl;
pub mod user_lists;
