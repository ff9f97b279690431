//! The quarantine: messages a verdict holds back instead of delivering, kept in a database —
//! SQLite embedded by default (`quarantine.db`, a file), PostgreSQL when several gateways share
//! one (`quarantine.db = postgresql://…`) — until a user or admin releases them or
//! `quarantine.retention_days` passes.
//!
//! The quarantine is a *transport* of the queue manager, like a downstream server: a message whose
//! verdict is "quarantine" is first spooled (fsync'd before the `250`, as every message), then the
//! queue hands it to [`insert`], and it leaves the spool only once the database committed it. A
//! crash in between means the queue hands it over again, and the store keeps it once.
//!
//! One writer thread holds messages ([`writer`]); the cores only send it work and await the
//! answer, so the database never blocks an executor. The web console (engine/console) has a
//! connection of its own to list, read and change a copy's state (released, deleted); the
//! database orders the two. Nothing on a core ever opens it. [`db`] is the one data-access
//! layer both databases are reached through.

pub mod db;
pub mod store;
pub mod writer;

pub use db::{Db, DbError, DbResult, Location};
pub use store::{Entry, Held, Scope, Search, Store};
pub use writer::{insert, start, Writer};
