//! A per-executor shutdown signal that wakes every waiting connection at once.

use std::cell::Cell;
use std::time::Instant;

use glommio::sync::Semaphore;

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
