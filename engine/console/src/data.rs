//! The console's data thread: every database call (quarantine and accounts, SQLite or
//! PostgreSQL) and every Argon2 hash runs here, so the console's async tasks never block on
//! them and the synchronous PostgreSQL client never runs inside the console's tokio runtime.
//!
//! A request sends a closure over a channel and awaits its answer on a oneshot. Jobs run one at a
//! time, in arrival order: two clicks on "release" are ordered, and the second sees the first's
//! state change. Cost: a channel send and a thread wake-up per job (microseconds), next to the
//! database's own time. Never: runs a job on the console's runtime thread.

use mxguard_quarantine::Store;
use tokio::sync::oneshot;

use crate::users::Users;

/// What the jobs work on.
pub struct Data {
    pub store: Store,
    pub users: Users,
}

type Job = Box<dyn FnOnce(&mut Data) + Send>;

/// A handle on the data thread (cheap to clone).
#[derive(Clone)]
pub struct DataThread {
    tx: std::sync::mpsc::Sender<Job>,
}

impl DataThread {
    /// Starts the thread that owns `data`.
    pub fn start(data: Data) -> Result<DataThread, String> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("console-data".into())
            .spawn(move || {
                let mut data = data;
                for job in rx {
                    // A job that panics answers nobody (its caller sees an error); the thread
                    // and its connections go on serving the others.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut data))).is_err() {
                        mxguard_telemetry::Event::new("console_error").str("error", "a data job panicked").emit();
                    }
                }
            })
            .map_err(|e| format!("console data thread: {e}"))?;
        Ok(DataThread { tx })
    }

    /// Runs `f` on the data thread; its result, or an error if the thread has stopped.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Data) -> T + Send + 'static) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |d| {
            let _ = tx.send(f(d));
        });
        self.tx.send(job).map_err(|_| "the console's data thread has stopped".to_string())?;
        rx.await.map_err(|_| "the console's data thread has stopped (a job panicked)".to_string())
    }
}
