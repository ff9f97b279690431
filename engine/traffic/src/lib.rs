//! What recent traffic looks like, shared by every core: [`bulk`] counts copies of the same text
//! by fingerprint, [`reputation`] the history of each sender; both on [`window`]'s sliding
//! counters. Read before a message's verdict, written after it.
//!
//! This crate never parses mail (the fingerprint comes from `mxguard_scan`), never does I/O and
//! never decides an action: it answers with symbols, and with "ban this address" for the caller.

pub mod bulk;
pub mod reputation;
pub mod window;

/// A symbol with its score and the reason, for the caller to put in its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub symbol: &'static str,
    pub score: f64,
    pub reason: String,
}
