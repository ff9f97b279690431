//! Relaying: where mail goes ([`routes`]), how it gets there ([`client`]), what happens when it
//! cannot ([`dsn`]), and the per-core queue manager that drives it all ([`queue`]).
//!
//! This crate never removes a message from the spool before every recipient is delivered or
//! bounced, and never sends a DSN for a DSN or to the null sender.

pub mod client;
pub mod dsn;
pub mod queue;
pub mod routes;

pub use queue::{Queue, TRANSPORT_QUARANTINE};
pub use routes::{Dest, Routes};
