//! This core's jobs on glommio's blocking threads, counted: every job an executor hands to its
//! blocking pool goes through [`run`], so that the executor can wait at its end ([`drain`])
//! until none is out.
//!
//! Why: a blocking thread that finishes a job for an executor that has ended panics ("failed to
//! send response", glommio's sys/blocking.rs). The job itself is done (a spool file written, a
//! segment recycled), but the panic lands in the log of a clean shutdown. Costs a thread-local
//! add and subtract per job; never blocks the executor.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    /// Jobs this executor's thread has handed out and not yet had back.
    static OUT: Cell<u32> = const { Cell::new(0) };
}

/// Counts one job out for as long as it lives (dropped with its future, answered or not).
struct Out;

impl Out {
    fn take() -> Out {
        OUT.with(|c| c.set(c.get() + 1));
        Out
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        OUT.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Runs `f` on the executor's blocking pool (glommio's `spawn_blocking`), counted until its answer
/// is back. Call from an executor's thread.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let _out = Out::take();
    glommio::executor().spawn_blocking(f).await
}

/// Jobs this thread has out now.
pub fn out() -> u32 {
    OUT.with(Cell::get)
}

/// Waits until no job of this executor is out, at most `within`; false when some still are.
/// Call as the executor's last step: what it starts later is not waited for.
pub async fn drain(within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while out() > 0 {
        if Instant::now() >= deadline {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_jobs_out_and_drains() {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(256 << 10)
            .spawn(|| async {
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                let job = glommio::spawn_local(run(move || rx.recv_timeout(Duration::from_secs(10)).is_ok()));
                glommio::timer::sleep(Duration::from_millis(20)).await;
                assert_eq!(out(), 1);
                // Still out: a drain gives up at its deadline.
                assert!(!drain(Duration::from_millis(30)).await);
                tx.send(()).unwrap();
                assert!(drain(Duration::from_secs(10)).await);
                assert!(job.await);
                assert_eq!(out(), 0);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
