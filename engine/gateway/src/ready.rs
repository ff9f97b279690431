//! Telling the service manager the gateway is ready: once every core's SMTP listeners are bound
//! (the port answers from then on), `READY=1` is sent to `$NOTIFY_SOCKET` (systemd's
//! `Type=notify`) and the event `ready` is logged; `STOPPING=1` when a stop begins.
//!
//! The protocol is one datagram on a Unix socket (sd_notify(3)); written here rather than taken
//! from a crate because it is that one call. Without `$NOTIFY_SOCKET` (not under systemd) only the
//! event is logged. It never fails the gateway: a manager that does not listen is its own problem.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mxguard_telemetry::Event;

static BOUND: AtomicUsize = AtomicUsize::new(0);
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Called by each core once its listeners are bound; the last of `cores` makes the gateway ready.
pub fn core_bound(cores: usize) {
    if BOUND.fetch_add(1, Ordering::AcqRel) + 1 == cores {
        Event::new("ready").num("cores", cores as u64).emit();
        notify("READY=1\nSTATUS=accepting mail");
    }
}

/// A stop has begun (the first call tells; later ones do nothing).
pub fn stopping() {
    if !STOPPING.swap(true, Ordering::AcqRel) {
        notify("STOPPING=1");
    }
}

fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else { return };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name).and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        Event::new("notify_failed").str("error", &e.to_string()).emit();
    }
}
