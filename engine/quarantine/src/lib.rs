//! The quarantine: messages a verdict holds back instead of delivering, kept in an embedded SQLite
//! database (`quarantine.db`) until a user or admin releases them or `quarantine.retention_days`
//! passes.
//!
//! The quarantine is a *transport* of the queue manager, like a downstream server: a message whose
//! verdict is "quarantine" is first spooled (fsync'd before the `250`, as every message), then the
//! queue hands it to [`insert`], and it leaves the spool only once the database committed it. A
//! crash in between means the queue hands it over again, and the store keeps it once.
//!
//! One writer thread owns the database connection ([`writer`]); the cores only send it work and
//! await the answer, so SQLite never blocks an executor. It must never be opened by two writer
//! threads of one process.

pub mod store;
pub mod writer;

pub use store::{Entry, Held, Store};
pub use writer::{insert, start, Writer};
