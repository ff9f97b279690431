//! Learning: the statistical part of the filter (issue 6, in progress).
//!
//! [`tokenizer`] turns a parsed message into 64-bit token hashes; [`classify`] combines the
//! spam/ham counts of those tokens into a probability (Robinson-Fisher). The shared lock-free
//! token table, persistence, learning paths and the gateway's BAYES_* symbols come next; until
//! then `benches/split.rs` measures tokenizer and classifier accuracy with a plain in-memory map
//! on the corpus's fixed train/test split.
//!
//! This crate never does I/O on the scan path and never decides an action.

pub mod classify;
pub mod table;
pub mod tokenizer;
