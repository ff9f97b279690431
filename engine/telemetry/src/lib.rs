//! Observability for every plane: counters, gauges and latency histograms served in Prometheus
//! text format ([`metrics`], [`http`]), and one structured log line per event ([`log`]).
//!
//! Recording never blocks a core: counters are relaxed atomics, histograms are per-core with an
//! uncontended lock, and log lines go through a bounded channel to a writer thread (when it is
//! full the line is dropped and counted, never waited for).

pub mod http;
pub mod log;
pub mod metrics;

pub use log::Event;
pub use metrics::{Latency, METRICS};
