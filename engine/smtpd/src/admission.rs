//! Body admission: how many message bodies one core takes in at once, adapted so that the time
//! from a message's final dot to its reply stays short.
//!
//! Why: the window between the sender's final `.` and our `250` is the one where a dropped
//! connection makes the sender resend a message we already accepted (RFC 1047), and the one its
//! end-of-data timer runs over. When a core is saturated, every message being received on it
//! shares the CPU, so every one of them finishes late. Holding *new* transactions before the
//! `354` (or their first BDAT chunk) instead moves the wait to a point where it costs the sender
//! nothing but time, and lets the messages already streaming finish.
//!
//! How: a per-core limit on bodies in flight, adjusted per window of `WINDOW` completed messages
//! (additive increase, multiplicative decrease, like TCP). A window in which more than one
//! message took longer than the target from final dot to reply shrinks the limit by a quarter; a
//! window with none grows it by one. The target is `smtp.ack_target_ms`, but never below
//! `FLOOR_FACTOR` times the fastest acknowledgement seen lately — on a disk whose flush alone
//! takes longer than the target, shrinking the limit would only cut the group commit's batches
//! and throughput without making any reply faster. `smtp.ack_target_ms = 0` turns the gate off.
//!
//! Guarantees: waiters are served first come, first served; a pass that has been held for
//! `smtp.body_pass_ms` (a slow or stalled sender) stops counting, so slow clients can delay
//! others by at most that long per pass and can never hold the gate shut. The gate is per core
//! (thread-local): no locks, no atomics, no cross-core traffic.
//!
//! Must never: refuse or drop a transaction (it only delays it), or hold a reply that is ready.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mxguard_telemetry::METRICS;
use mxguard_tuning as k;

/// Completed messages per adjustment of the limit.
const WINDOW: u32 = 64;
/// Messages over the target a window may have before the limit shrinks.
const WINDOW_SLACK: u32 = 1;
/// The limit never goes below this, so the group commit always has company for a batch.
const MIN_LIMIT: f64 = 2.0;
/// Nor above this; at this value the gate effectively never holds anyone.
const MAX_LIMIT: f64 = 1024.0;
/// Start here, and double per good window until the first late one (TCP's slow start), so a
/// core that starts saturated does not first spend a burst of late replies shrinking from above.
const START_LIMIT: f64 = 4.0;
/// The effective target is at least this many times the fastest recent acknowledgement.
const FLOOR_FACTOR: u32 = 3;
/// The fastest acknowledgement is remembered over this many windows.
const FLOOR_WINDOWS: u32 = 16;

struct Gate {
    limit: f64,
    in_flight: usize,
    next_ticket: u64,
    /// Waiting transactions, oldest first: ticket and waker.
    queue: VecDeque<(u64, Waker)>,
    window_done: u32,
    window_late: u32,
    window_fastest: Duration,
    floor: Duration,
    floor_age: u32,
    /// What this core last added to the cross-core limit gauge.
    published: i64,
    /// Still doubling: no window has been late yet.
    slow_start: bool,
}

thread_local! {
    static GATE: RefCell<Gate> = const { RefCell::new(Gate {
        limit: START_LIMIT,
        in_flight: 0,
        next_ticket: 0,
        queue: VecDeque::new(),
        window_done: 0,
        window_late: 0,
        window_fastest: Duration::MAX,
        floor: Duration::MAX,
        floor_age: 0,
        published: 0,
        slow_start: true,
    }) };
}

impl Gate {
    fn room(&self) -> bool {
        !enabled() || (self.in_flight as f64) < self.limit.floor()
    }

    fn wake_front(&self) {
        if self.room() {
            if let Some((_, w)) = self.queue.front() {
                w.wake_by_ref();
            }
        }
    }

    fn publish(&mut self) {
        let now = if enabled() { self.limit as i64 } else { 0 };
        if now != self.published {
            METRICS.smtp_body_limit.add(now - self.published);
            self.published = now;
        }
    }

    /// Feeds one acknowledgement time into the controller.
    fn record(&mut self, took: Duration) {
        let target = Duration::from_millis(target_ms());
        let effective = if self.floor == Duration::MAX {
            target
        } else {
            target.max(self.floor * FLOOR_FACTOR)
        };
        self.window_done += 1;
        if took > effective {
            self.window_late += 1;
        }
        self.window_fastest = self.window_fastest.min(took);
        if self.window_done < WINDOW {
            return;
        }
        // The floor is the fastest of the recent windows; an old floor ages out so that a disk
        // that got slower (or faster) is followed.
        self.floor_age += 1;
        if self.window_fastest < self.floor || self.floor_age >= FLOOR_WINDOWS {
            self.floor = self.window_fastest;
            self.floor_age = 0;
        }
        if self.window_late > WINDOW_SLACK {
            self.limit = (self.limit * 0.75).max(MIN_LIMIT);
            self.slow_start = false;
        } else if self.window_late == 0 && (self.in_flight as f64 + 1.0) >= self.limit.floor() {
            // Grow only while the limit is what bounds the core: an idle core's limit stays put
            // instead of drifting to the maximum and losing what it learnt.
            let grown = if self.slow_start {
                self.limit * 2.0
            } else {
                self.limit + 1.0
            };
            self.limit = grown.min(MAX_LIMIT);
            self.wake_front();
        }
        self.window_done = 0;
        self.window_late = 0;
        self.window_fastest = Duration::MAX;
        self.publish();
    }
}

fn target_ms() -> u64 {
    #[cfg(test)]
    if let Some(t) = tests::TARGET.with(|c| c.get()) {
        return t;
    }
    k::SMTP_ACK_TARGET_MS.get_u64()
}

fn enabled() -> bool {
    target_ms() > 0
}

/// The right to receive one message body on this core. Dropping it lets the next one in.
pub struct Pass {
    since: Instant,
    counted: bool,
}

impl Pass {
    /// Until when the pass counts against the limit.
    pub fn expires(&self) -> Option<Instant> {
        self.counted
            .then(|| self.since + Duration::from_millis(k::SMTP_BODY_PASS_MS.get_u64()))
    }

    /// Stops counting this pass (its sender is slow); the transaction goes on.
    pub fn release(&mut self) {
        if std::mem::take(&mut self.counted) {
            METRICS.smtp_body_passes_expired.inc();
            GATE.with(|g| {
                let mut g = g.borrow_mut();
                g.in_flight -= 1;
                g.wake_front();
            });
        }
    }

    /// The message was answered after `took` from its final dot: feeds the controller and
    /// gives the pass back.
    pub fn done(mut self, took: Duration) {
        if enabled() {
            GATE.with(|g| g.borrow_mut().record(took));
        }
        self.release_quietly();
    }

    fn release_quietly(&mut self) {
        if std::mem::take(&mut self.counted) {
            GATE.with(|g| {
                let mut g = g.borrow_mut();
                g.in_flight -= 1;
                g.wake_front();
            });
        }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.release_quietly();
    }
}

/// Waits for a pass on this core, first come, first served.
pub fn enter() -> Enter {
    Enter {
        ticket: None,
        since: Instant::now(),
    }
}

pub struct Enter {
    ticket: Option<u64>,
    since: Instant,
}

impl Future for Enter {
    type Output = Pass;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Pass> {
        let ticket = self.ticket;
        let granted = GATE.with(|g| {
            let mut g = g.borrow_mut();
            match ticket {
                None if g.queue.is_empty() && g.room() => {
                    g.in_flight += 1;
                    g.publish();
                    Ok(())
                }
                None => {
                    let t = g.next_ticket;
                    g.next_ticket += 1;
                    g.queue.push_back((t, cx.waker().clone()));
                    Err(Some(t))
                }
                Some(t) => {
                    if g.queue.front().is_some_and(|(f, _)| *f == t) && g.room() {
                        g.queue.pop_front();
                        g.in_flight += 1;
                        g.wake_front();
                        Ok(())
                    } else {
                        if let Some(slot) = g.queue.iter_mut().find(|(f, _)| *f == t) {
                            slot.1.clone_from(cx.waker());
                        }
                        Err(None)
                    }
                }
            }
        });
        match granted {
            Ok(()) => {
                if self.ticket.take().is_some() {
                    METRICS.smtp_body_waits.inc();
                    METRICS.smtp_body_wait.record(self.since.elapsed());
                }
                Poll::Ready(Pass {
                    since: Instant::now(),
                    counted: true,
                })
            }
            Err(new_ticket) => {
                if new_ticket.is_some() {
                    self.ticket = new_ticket;
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        // A waiter that gives up (its connection ended) leaves the queue; if it was first, the
        // next one may now go.
        if let Some(t) = self.ticket {
            GATE.with(|g| {
                let mut g = g.borrow_mut();
                g.queue.retain(|(f, _)| *f != t);
                g.wake_front();
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    thread_local! {
        /// The target for this test's executor thread (tests run in parallel; the knob is global).
        pub(super) static TARGET: Cell<Option<u64>> = const { Cell::new(None) };
    }

    fn on_executor<F: Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
        glommio::LocalExecutorBuilder::default()
            .io_memory(64 << 10)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    fn set_limit(l: f64) {
        GATE.with(|g| g.borrow_mut().limit = l);
    }

    fn limit() -> f64 {
        GATE.with(|g| g.borrow().limit)
    }

    #[test]
    fn waiters_are_served_in_order_once_passes_come_back() {
        on_executor(|| async {
            TARGET.with(|c| c.set(Some(5)));
            set_limit(2.0);
            let a = enter().await;
            let b = enter().await;
            let order = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for i in 0..3 {
                let order = order.clone();
                tasks.push(glommio::spawn_local(async move {
                    let p = enter().await;
                    order.borrow_mut().push(i);
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                    drop(p);
                }));
                glommio::yield_if_needed().await;
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            assert!(
                order.borrow().is_empty(),
                "nobody passes while the limit is taken"
            );
            drop(a);
            glommio::timer::sleep(Duration::from_millis(2)).await;
            assert_eq!(*order.borrow(), vec![0]);
            drop(b);
            for t in tasks {
                t.await;
            }
            assert_eq!(*order.borrow(), vec![0, 1, 2]);
            assert_eq!(GATE.with(|g| g.borrow().in_flight), 0);
        });
    }

    #[test]
    fn a_waiter_that_gives_up_does_not_block_the_queue() {
        on_executor(|| async {
            TARGET.with(|c| c.set(Some(5)));
            set_limit(2.0);
            let a = enter().await;
            let _b = enter().await;
            let gave_up =
                glommio::timer::timeout(Duration::from_millis(5), async { Ok(enter().await) })
                    .await;
            assert!(gave_up.is_err());
            let got = Rc::new(Cell::new(false));
            let g2 = got.clone();
            let t = glommio::spawn_local(async move {
                let _p = enter().await;
                g2.set(true);
            });
            glommio::timer::sleep(Duration::from_millis(2)).await;
            assert!(!got.get());
            drop(a);
            t.await;
            assert!(got.get());
        });
    }

    #[test]
    fn an_expired_pass_stops_counting() {
        on_executor(|| async {
            TARGET.with(|c| c.set(Some(5)));
            set_limit(2.0);
            let mut slow = enter().await;
            let _other = enter().await;
            assert!(slow.expires().is_some());
            slow.release();
            assert!(
                slow.expires().is_none(),
                "a released pass no longer expires"
            );
            let _third =
                glommio::timer::timeout(Duration::from_millis(50), async { Ok(enter().await) })
                    .await
                    .expect("the released pass made room");
            drop(slow); // no double release
            assert_eq!(GATE.with(|g| g.borrow().in_flight), 2);
        });
    }

    #[test]
    fn the_limit_shrinks_on_late_windows_and_grows_on_good_ones() {
        on_executor(|| async {
            TARGET.with(|c| c.set(Some(5)));
            set_limit(40.0);
            // A first window at 1 ms sets the floor (so the effective target stays 5 ms).
            for _ in 0..WINDOW {
                enter().await.done(Duration::from_millis(1));
            }
            let before = limit();
            for _ in 0..WINDOW {
                enter().await.done(Duration::from_millis(9));
            }
            assert_eq!(limit(), before * 0.75);
            // Good windows grow it only while it binds: with one message at a time it stays.
            let shrunk = limit();
            for _ in 0..WINDOW {
                enter().await.done(Duration::from_millis(1));
            }
            assert_eq!(limit(), shrunk);
            set_limit(3.0);
            let _held = (enter().await, enter().await);
            for _ in 0..WINDOW {
                enter().await.done(Duration::from_millis(1));
            }
            assert_eq!(limit(), 4.0);
        });
    }

    #[test]
    fn a_slow_disk_raises_the_target_instead_of_starving_the_batches() {
        on_executor(|| async {
            TARGET.with(|c| c.set(Some(5)));
            set_limit(20.0);
            // Every acknowledgement takes 12 ms, the disk's floor: after the first window sets
            // the floor, later windows are not late against 3 × 12 ms.
            for _ in 0..WINDOW * 4 {
                enter().await.done(Duration::from_millis(12));
            }
            assert_eq!(limit(), 20.0 * 0.75);
        });
    }

    #[test]
    fn off_means_never_held() {
        on_executor(|| async {
            TARGET.with(|c| c.set(Some(0)));
            set_limit(2.0);
            let mut passes = Vec::new();
            for _ in 0..10 {
                passes.push(enter().await);
            }
        });
    }
}
