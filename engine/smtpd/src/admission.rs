//! Body admission: how many message bodies one core takes in at once, adapted so that the core
//! is never so busy that the messages it is receiving all finish late.
//!
//! Why: the window between the sender's final `.` and our `250` is the one where a dropped
//! connection makes the sender resend a message we already accepted (RFC 1047), and the one its
//! end-of-data timer runs over. When a core is saturated, every message being received on it
//! shares the CPU, so every one of them finishes late. Holding *new* transactions before the
//! `354` (or their first BDAT chunk) instead moves the wait to a point where it costs the sender
//! nothing but time, and lets the messages already streaming finish.
//!
//! The signal is the core's own lag: a probe task asks to wake every millisecond and measures how
//! late it runs. A core with work queued runs it late; a core whose messages wait on the network
//! (DNS for DKIM, a slow sender, the disk) does not — so waits that are not CPU never shrink the
//! limit, and a busy core is told apart from a slow world. The limit is adjusted per window of
//! `WINDOW` probes: more than `WINDOW_SLACK` (a quarter) late wake-ups (later than `smtp.busy_lag_us`) shrink
//! it by a quarter at once; a window with none grows it by one (doubling until the first late window, like TCP's slow
//! start), but only while it is what bounds the core. `smtp.busy_lag_us = 0` turns the gate off.
//!
//! Guarantees: waiters are served first come, first served; a pass whose body is still arriving
//! after `smtp.body_pass_ms` (a slow or stalled sender) stops counting, so slow clients can delay
//! others by at most that long per pass and can never hold the gate shut. The gate is per core
//! (thread-local): no locks, no atomics, no cross-core traffic. The probe sleeps 50 ms at a time
//! while the core receives no body.
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

/// Probe wake-ups per adjustment of the limit.
const WINDOW: u32 = 32;
/// Late wake-ups a window may have before the limit shrinks: a core that is late a quarter of the
/// time is saturated; one that is late now and then shares its CPU with something else for a moment.
const WINDOW_SLACK: u32 = 8;
/// The limit never goes below this, so the group commit always has company for a batch.
const MIN_LIMIT: f64 = 2.0;
/// Nor above this; at this value the gate effectively never holds anyone.
const MAX_LIMIT: f64 = 1024.0;
/// Start here, and double per good window until the first late one (TCP's slow start), so a
/// core that starts saturated does not first spend a burst of late replies shrinking from above.
const START_LIMIT: f64 = 4.0;
/// How often the probe asks to wake while bodies are in flight, and while none are.
const TICK: Duration = Duration::from_millis(1);
const IDLE_TICK: Duration = Duration::from_millis(50);

struct Gate {
    limit: f64,
    in_flight: usize,
    next_ticket: u64,
    /// Waiting transactions, oldest first: ticket and waker.
    queue: VecDeque<(u64, Waker)>,
    window_ticks: u32,
    window_late: u32,
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
        window_ticks: 0,
        window_late: 0,
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

    /// Feeds one probe wake-up, `lag` late, into the controller.
    fn tick(&mut self, lag: Duration) {
        let threshold = Duration::from_micros(lag_target_us());
        self.window_ticks += 1;
        if lag > threshold {
            self.window_late += 1;
        }
        // A saturated core wakes the probe rarely (glommio polls its timers when the run queue
        // drains or its preemption timer fires), so a window of late wake-ups ends as soon as it
        // is over the slack rather than after WINDOW of them.
        if self.window_ticks < WINDOW && self.window_late <= WINDOW_SLACK {
            return;
        }
        if self.window_late > WINDOW_SLACK {
            self.limit = (self.limit * 0.75).max(MIN_LIMIT);
            self.slow_start = false;
        } else if self.window_late == 0 && (self.in_flight as f64 + 1.0) >= self.limit.floor() {
            // Grow only while the limit is what bounds the core: an idle core's limit stays put
            // instead of drifting to the maximum and losing what it learnt.
            let grown = if self.slow_start { self.limit * 2.0 } else { self.limit + 1.0 };
            self.limit = grown.min(MAX_LIMIT);
            self.wake_front();
        }
        self.window_ticks = 0;
        self.window_late = 0;
        self.publish();
    }

    /// Between windows of bodies: a window half filled before the core went idle says nothing.
    fn idle(&mut self) {
        self.window_ticks = 0;
        self.window_late = 0;
    }
}

/// Measures this core's lag for the gate, for the life of the executor (spawned once per core
/// by [`crate::serve`]).
pub async fn probe() {
    loop {
        let busy = GATE.with(|g| {
            let g = g.borrow();
            g.in_flight > 0 || !g.queue.is_empty()
        });
        if !busy || !enabled() {
            GATE.with(|g| g.borrow_mut().idle());
            glommio::timer::sleep(IDLE_TICK).await;
            continue;
        }
        let asked = Instant::now();
        glommio::timer::sleep(TICK).await;
        let lag = asked.elapsed().saturating_sub(TICK);
        GATE.with(|g| g.borrow_mut().tick(lag));
    }
}

fn lag_target_us() -> u64 {
    #[cfg(test)]
    if let Some(t) = tests::TARGET.with(|c| c.get()) {
        return t;
    }
    k::SMTP_BUSY_LAG_US.get_u64()
}

fn enabled() -> bool {
    lag_target_us() > 0
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
        if self.counted {
            METRICS.smtp_body_passes_expired.inc();
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
        /// The lag target for this test's executor thread (tests run in parallel; the knob is global).
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
            TARGET.with(|c| c.set(Some(500)));
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
            TARGET.with(|c| c.set(Some(500)));
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
            TARGET.with(|c| c.set(Some(500)));
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

    /// `n` probe wake-ups, each `lag` late.
    fn ticks(n: u32, lag: Duration) {
        GATE.with(|g| {
            for _ in 0..n {
                g.borrow_mut().tick(lag);
            }
        });
    }

    fn tick_window(lag: Duration) {
        ticks(WINDOW, lag);
    }

    /// Just enough late wake-ups to end a window late.
    fn late_window() {
        ticks(WINDOW_SLACK + 1, Duration::from_millis(3));
    }

    #[test]
    fn the_limit_shrinks_on_late_windows_and_grows_while_it_binds() {
        on_executor(|| async {
            TARGET.with(|c| c.set(Some(500)));
            set_limit(40.0);
            // Slow start: a good window doubles a limit that binds; one that does not bind stays.
            tick_window(Duration::from_micros(100));
            assert_eq!(limit(), 40.0, "nothing in flight: the limit does not bind");
            let mut held = Vec::new();
            for _ in 0..39 {
                held.push(enter().await);
            }
            tick_window(Duration::from_micros(100));
            assert_eq!(limit(), 80.0, "binding and on time: doubled");
            held.clear();
            // A late core shrinks by a quarter at once and leaves slow start.
            late_window();
            assert_eq!(limit(), 60.0);
            for _ in 0..59 {
                held.push(enter().await);
            }
            tick_window(Duration::from_micros(100));
            assert_eq!(limit(), 61.0, "after a late window: one at a time");
            held.clear();
            // One late wake-up in a window is noise.
            ticks(1, Duration::from_millis(5));
            ticks(WINDOW - 1, Duration::ZERO);
            assert_eq!(limit(), 61.0);
            for _ in 0..30 {
                late_window();
            }
            assert_eq!(limit(), MIN_LIMIT, "never below the floor");
        });
    }

    #[test]
    fn the_probe_reads_a_busy_core_as_late_and_a_waiting_one_as_not() {
        on_executor(|| async {
            // Well above an idle VM's timer jitter (p99 ~0.3 ms here, rare spikes beyond).
            TARGET.with(|c| c.set(Some(2000)));
            set_limit(8.0);
            let _p = enter().await;
            let probe = glommio::spawn_local(probe()).detach();
            // Waiting on the world (a sleep stands for DNS or the disk): the core is idle.
            glommio::timer::sleep(Duration::from_millis(80)).await;
            assert_eq!(limit(), 8.0, "no lag, and one body does not bind a limit of 8");
            // Busy: the executor is held for 3 ms at a time, so the probe wakes late (and seldom:
            // glommio looks at its timers when the run queue drains or it preempts).
            let until = Instant::now() + Duration::from_secs(5);
            while limit() >= 8.0 && Instant::now() < until {
                let spin = Instant::now();
                while spin.elapsed() < Duration::from_millis(3) {
                    std::hint::spin_loop();
                }
                futures_lite::future::yield_now().await;
            }
            assert!(limit() < 8.0, "a busy core shrinks its limit: {}", limit());
            drop(probe);
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
