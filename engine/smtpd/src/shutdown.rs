//! Stopping: the process-wide stop request (SIGTERM/SIGINT, or code asking for it), and a
//! per-executor shutdown signal that wakes every waiting connection at once.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use glommio::sync::Semaphore;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes SIGTERM and SIGINT request a stop, and ignores SIGPIPE (a dead peer is then an error on
/// write, not the end of the process).
pub fn install_stop_signals() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// A stop was requested (by a signal or [`request_stop`]).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Requests a stop, as a signal would.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

pub struct Shutdown {
    sem: Semaphore,
    at: Cell<Option<Instant>>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown { sem: Semaphore::new(0), at: Cell::new(None) }
    }

    /// Starts the shutdown: every `wait` resolves.
    pub fn trigger(&self) {
        if self.at.get().is_none() {
            self.at.set(Some(Instant::now()));
            self.sem.close();
        }
    }

    pub fn triggered(&self) -> Option<Instant> {
        self.at.get()
    }

    /// Triggers this executor's shutdown once a process stop is requested (checked every 50 ms).
    pub fn follow_process_stop(self: &Rc<Self>) {
        let me = self.clone();
        glommio::spawn_local(async move {
            while !stop_requested() {
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            me.trigger();
        })
        .detach();
    }

    /// Resolves when the shutdown starts (at once if it has).
    pub async fn wait(&self) {
        if self.at.get().is_some() {
            return;
        }
        let _ = self.sem.acquire(1).await;
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}
