//! The quarantine: messages a verdict holds back instead of delivering, kept in an embedded SQLite
//! database (`quarantine.db`) until a user or admin releases them or `quarantine.retention_days`
//! passes.
//!
//! The quarantine is a *transport* of the queue manager, like a downstream server: a message whose
//! verdict is "quarantine" is first spooled (fsync'd before the `250`, as every message), then the
//! queue hands it to [`insert`], and it leaves the spool only once the database committed it. A
//! crash in between means the queue hands it over again, and the store keeps it once.
//!
//! One writer thread holds messages ([`writer`]); the cores only send it work and await the
//! answer, so SQLite never blocks an executor. The web console (engine/console) has a
//! connection of its own to list, read and change a copy's state (released, deleted); SQLite's
//! lock (WAL, a busy timeout on both) orders the two. Nothing on a core ever opens it.

pub mod store;
pub mod writer;

pub use store::{Entry, Held, Store};
pub use writer::{insert, start, Writer};
