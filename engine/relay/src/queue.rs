//! The queue manager of one core: every message this core accepted (or recovered) until each of
//! its recipients is delivered or bounced.
//!
//! - Recipients are grouped by destination; each destination has a FIFO of deliveries and up to
//!   `relay.dest_concurrency / cores` workers, each holding one reusable connection that it keeps
//!   open `relay.conn_idle_s` for more work.
//! - When a connection cannot be made, every waiting delivery to that destination is deferred at
//!   once rather than each trying (and timing out) in turn.
//! - A round ends when every delivery of a message returned: delivered recipients are marked in
//!   the spool, permanently failed ones get one DSN (stored durably before they are marked
//!   bounced), temporarily failed ones are retried with exponential backoff between
//!   `relay.retry_min_s` and `relay.retry_max_s`, until `relay.max_lifetime_h` turns them into
//!   bounces. `relay.queue_on_4xx` and `relay.queue_on_5xx` switch the reference products'
//!   QueueIfDestinationError400/500 behaviour.
//! - A message leaves the spool only when no recipient is pending.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use glommio::sync::Semaphore;
use mxguard_smtp::domain_of;
use mxguard_spool::{Location, MessageData, Meta, RcptStatus, Spool};
use mxguard_telemetry::{Event, METRICS};
use mxguard_tuning as k;

use crate::client::{Client, ClientOptions, Failure, Outgoing, RcptResult};
use crate::dsn;
use crate::routes::{self, Dest};

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `Meta::transport` of messages the queue hands to the quarantine store instead of a route.
pub const TRANSPORT_QUARANTINE: &str = "quarantine";

/// The delay before retry number `attempts` (1-based).
pub fn backoff_s(attempts: u32, min_s: u64, max_s: u64) -> u64 {
    let shift = attempts.saturating_sub(1).min(30);
    min_s.saturating_mul(1u64 << shift).min(max_s).max(1)
}

/// One recipient's outcome in a delivery round.
#[derive(Clone)]
struct Outcome {
    result: RcptResult,
    /// The destination that answered.
    remote: Option<String>,
    tls: bool,
}

/// A recipient that failed for good in this round.
struct PermFailure {
    rcpt: usize,
    text: String,
    reply: Option<mxguard_smtp::Reply>,
    remote: Option<String>,
    /// Enhanced status code when the reply carries none.
    fallback_status: &'static str,
}

/// The knobs and facts that decide what a recipient's result means for its message.
struct RetryPolicy {
    /// `relay.queue_on_4xx` (QueueIfDestinationError400).
    queue_on_4xx: bool,
    /// `relay.queue_on_5xx` (QueueIfDestinationError500).
    queue_on_5xx: bool,
    /// The message has been queued longer than `relay.max_lifetime_h`.
    expired: bool,
    lifetime_h: u64,
}

/// What happens to one recipient after a delivery round.
#[derive(Debug, PartialEq)]
enum Disposition {
    Delivered(String),
    Retry(String),
    Bounce { text: String, reply: Option<mxguard_smtp::Reply>, fallback_status: &'static str },
}

/// Pure: a round's result and the retry policy give the recipient's fate.
fn dispose(result: RcptResult, p: &RetryPolicy) -> Disposition {
    match result {
        RcptResult::Delivered(text) => Disposition::Delivered(text),
        RcptResult::Temporary(text, reply) if !p.queue_on_4xx => Disposition::Bounce { text, reply, fallback_status: "4.0.0" },
        RcptResult::Temporary(text, _) if p.expired => Disposition::Bounce {
            text: format!("message expired after {} h in the queue; last error: {text}", p.lifetime_h),
            reply: None,
            fallback_status: "4.4.7",
        },
        RcptResult::Temporary(text, _) => Disposition::Retry(text),
        RcptResult::Permanent(text, _) if p.queue_on_5xx && !p.expired => Disposition::Retry(text),
        RcptResult::Permanent(text, reply) => Disposition::Bounce { text, reply, fallback_status: "5.0.0" },
    }
}

struct Msg {
    meta: RefCell<Meta>,
    loc: RefCell<Location>,
    data: RefCell<Option<Rc<MessageData>>>,
    /// Deliveries of this round still out.
    outstanding: Cell<u32>,
    /// This round's result per recipient index, with the destination and whether TLS was used.
    results: RefCell<Vec<Option<Outcome>>>,
}

struct Delivery {
    msg: Rc<Msg>,
    rcpts: Vec<usize>,
}

struct DestQueue {
    dest: Dest,
    pending: RefCell<VecDeque<Delivery>>,
    workers: Cell<usize>,
    idle: Cell<usize>,
    wake: Semaphore,
}

/// One core's queue manager.
pub struct Queue {
    spool: Rc<Spool>,
    tls: Option<futures_rustls::TlsConnector>,
    cores: usize,
    dests: RefCell<HashMap<Dest, Rc<DestQueue>>>,
    deferred: RefCell<BinaryHeap<Reverse<(u64, u64)>>>,
    deferred_msgs: RefCell<HashMap<u64, Rc<Msg>>>,
    seq: Cell<u64>,
    active_bytes: Cell<usize>,
}

impl Queue {
    pub fn new(spool: Rc<Spool>, tls: Option<Arc<rustls::ClientConfig>>, cores: usize) -> Rc<Queue> {
        Rc::new(Queue {
            spool,
            tls: tls.map(futures_rustls::TlsConnector::from),
            cores: cores.max(1),
            dests: RefCell::new(HashMap::new()),
            deferred: RefCell::new(BinaryHeap::new()),
            deferred_msgs: RefCell::new(HashMap::new()),
            seq: Cell::new(0),
            active_bytes: Cell::new(0),
        })
    }

    /// Starts the retry timer; call once on the executor.
    pub fn start(self: &Rc<Self>) {
        let q = self.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_millis(500)).await;
                q.release_due();
            }
        })
        .detach();
    }

    /// Takes over the undelivered messages on disk that belong to this core. Only while no core
    /// writes to the spool: see [`Queue::adopt`] for recovery beside other cores.
    pub fn recover(self: &Rc<Self>, core: usize, cores: usize) -> std::io::Result<usize> {
        let found = self.spool.recover(core, cores)?;
        Ok(self.adopt(found))
    }

    /// Takes over messages a spool scan found (`Spool::recover`). With several cores, every core
    /// must have finished its scan before any core adopts: an adopted message may be deferred at
    /// once into a file of its own, which a scan still under way would read half-written (or
    /// delete, finding no record in it yet).
    pub fn adopt(self: &Rc<Self>, found: Vec<mxguard_spool::Recovered>) -> usize {
        let n = found.len();
        for r in found {
            Event::new("recovered")
                .str("qid", &r.meta.id)
                .num("rcpts", r.meta.pending().count() as u64)
                .num("attempts", r.meta.attempts as u64)
                .emit();
            self.enqueue(r.meta, r.location, None);
        }
        n
    }

    /// Adds a spooled message; `data` is its content if still in memory.
    pub fn enqueue(self: &Rc<Self>, meta: Meta, loc: Location, data: Option<MessageData>) {
        METRICS.queue_messages.inc();
        let n = meta.rcpts.len();
        let due = meta.next_attempt_unix;
        let msg = Rc::new(Msg {
            meta: RefCell::new(meta),
            loc: RefCell::new(loc),
            data: RefCell::new(None),
            outstanding: Cell::new(0),
            results: RefCell::new(vec![None; n]),
        });
        if let Some(d) = data {
            self.keep_in_memory(&msg, Rc::new(d));
        }
        if due > now_unix() {
            self.defer_until(msg, due);
        } else {
            self.schedule(msg);
        }
    }

    /// Keeps `d` as the message's in-memory copy while `relay.max_active_bytes` allows.
    fn keep_in_memory(&self, msg: &Msg, d: Rc<MessageData>) {
        let len = d.len();
        if self.active_bytes.get() + len <= k::RELAY_MAX_ACTIVE_BYTES.get_usize() {
            self.active_bytes.set(self.active_bytes.get() + len);
            *msg.data.borrow_mut() = Some(d);
        }
    }

    fn drop_from_memory(&self, msg: &Msg) {
        if let Some(d) = msg.data.borrow_mut().take() {
            self.active_bytes.set(self.active_bytes.get().saturating_sub(d.len()));
        }
    }

    fn defer_until(&self, msg: Rc<Msg>, due: u64) {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        self.deferred.borrow_mut().push(Reverse((due, seq)));
        self.deferred_msgs.borrow_mut().insert(seq, msg);
        METRICS.queue_deferred.inc();
    }

    fn release_due(self: &Rc<Self>) {
        let now = now_unix();
        loop {
            let next = {
                let mut heap = self.deferred.borrow_mut();
                match heap.peek() {
                    Some(Reverse((due, _))) if *due <= now => heap.pop().map(|Reverse((_, s))| s),
                    _ => None,
                }
            };
            let Some(seq) = next else { break };
            // The map's borrow ends here, before `schedule`: a delivery round may finish inside it
            // (glommio runs a spawned task at once; a quarantine database that is down answers at
            // once) and defer the message again into this map.
            let msg = self.deferred_msgs.borrow_mut().remove(&seq);
            if let Some(msg) = msg {
                METRICS.queue_deferred.dec();
                self.schedule(msg);
            }
        }
    }

    /// Starts a delivery round for every pending recipient of `msg`.
    fn schedule(self: &Rc<Self>, msg: Rc<Msg>) {
        if msg.meta.borrow().transport == TRANSPORT_QUARANTINE {
            let q = self.clone();
            glommio::spawn_local(async move { q.to_quarantine(msg).await }).detach();
            return;
        }
        let table = routes::current();
        let mut by_dest: HashMap<Dest, Vec<usize>> = HashMap::new();
        let mut unroutable = Vec::new();
        {
            let meta = msg.meta.borrow();
            for i in meta.pending() {
                let domain = domain_of(&meta.rcpts[i]);
                let dest = if meta.dsn { table.bounce_route_for(&domain) } else { table.route_for(&domain) };
                match dest {
                    Some(d) => by_dest.entry(d).or_default().push(i),
                    None => unroutable.push(i),
                }
            }
        }
        {
            let mut res = msg.results.borrow_mut();
            for r in res.iter_mut() {
                *r = None;
            }
            for i in &unroutable {
                res[*i] = Some(Outcome {
                    result: RcptResult::Permanent("no route to this domain (relay.default_route is empty)".into(), None),
                    remote: None,
                    tls: false,
                });
            }
        }
        if by_dest.is_empty() {
            let q = self.clone();
            glommio::spawn_local(async move { q.complete(msg).await }).detach();
            return;
        }
        msg.outstanding.set(by_dest.len() as u32);
        for (dest, rcpts) in by_dest {
            self.push(dest, Delivery { msg: msg.clone(), rcpts });
        }
    }

    /// A round through the quarantine transport: every pending recipient is held in the store
    /// (one committed insert) or, if the store fails, retried like a 4xx.
    async fn to_quarantine(self: Rc<Self>, msg: Rc<Msg>) {
        let pending: Vec<usize> = msg.meta.borrow().pending().collect();
        let result = match self.data_for(&msg) {
            Ok(data) => {
                let entry = {
                    let m = msg.meta.borrow();
                    let mut message = Vec::with_capacity(data.len());
                    message.extend_from_slice(&data.head);
                    message.extend_from_slice(&data.body);
                    mxguard_quarantine::Entry {
                        qid: m.id.clone(),
                        arrival_ms: m.arrival_unix_ms,
                        mail_from: m.mail_from.clone(),
                        rcpts: pending.iter().map(|i| m.rcpts[*i].clone()).collect(),
                        client: m.client.clone(),
                        helo: m.helo.clone(),
                        subject: mxguard_quarantine::store::subject_of(&data.body),
                        score: m.score.parse().unwrap_or(0.0),
                        symbols: m.symbols.clone(),
                        reason: m.reason.clone(),
                        message,
                    }
                };
                match mxguard_quarantine::insert(entry).await {
                    Ok(_) => RcptResult::Delivered("held in the quarantine".into()),
                    Err(e) => RcptResult::Temporary(e, None),
                }
            }
            Err(e) => RcptResult::Temporary(format!("cannot read spooled message: {e}"), None),
        };
        {
            let mut res = msg.results.borrow_mut();
            for i in pending {
                res[i] = Some(Outcome { result: result.clone(), remote: Some(TRANSPORT_QUARANTINE.into()), tls: false });
            }
        }
        self.complete(msg).await
    }

    fn push(self: &Rc<Self>, dest: Dest, d: Delivery) {
        let dq = self
            .dests
            .borrow_mut()
            .entry(dest.clone())
            .or_insert_with(|| {
                Rc::new(DestQueue {
                    dest,
                    pending: RefCell::new(VecDeque::new()),
                    workers: Cell::new(0),
                    idle: Cell::new(0),
                    wake: Semaphore::new(0),
                })
            })
            .clone();
        dq.pending.borrow_mut().push_back(d);
        dq.wake.signal(1);
        let limit = k::RELAY_DEST_CONCURRENCY.get_usize().div_ceil(self.cores).max(1);
        if dq.workers.get() < limit && dq.idle.get() < dq.pending.borrow().len() {
            dq.workers.set(dq.workers.get() + 1);
            let q = self.clone();
            glommio::spawn_local(async move { q.worker(dq).await }).detach();
        }
    }

    async fn worker(self: Rc<Self>, dq: Rc<DestQueue>) {
        let mut client: Option<Client> = None;
        loop {
            let next = dq.pending.borrow_mut().pop_front();
            let Some(d) = next else {
                let idle = Duration::from_secs(k::RELAY_CONN_IDLE_S.get_u64());
                dq.idle.set(dq.idle.get() + 1);
                let woke = if idle.is_zero() {
                    false
                } else {
                    glommio::timer::timeout(idle, dq.wake.acquire(1)).await.is_ok()
                };
                dq.idle.set(dq.idle.get() - 1);
                if woke || !dq.pending.borrow().is_empty() {
                    continue;
                }
                break;
            };
            if client.as_ref().is_some_and(|c| c.sent >= k::RELAY_CONN_MAX_MESSAGES.get().max(1) as u32) {
                if let Some(c) = client.take() {
                    c.quit().await;
                }
            }
            if client.is_none() {
                match Client::connect(&dq.dest, self.tls.as_ref(), &ClientOptions::from_knobs()).await {
                    Ok(c) => {
                        METRICS.relay_connections.inc();
                        client = Some(c);
                    }
                    Err(f) => {
                        // The destination is unreachable now: defer everything waiting for it.
                        self.fail(&dq.dest, d, &f);
                        let rest: Vec<Delivery> = dq.pending.borrow_mut().drain(..).collect();
                        for other in rest {
                            self.fail(&dq.dest, other, &f);
                        }
                        continue;
                    }
                }
            }
            let data = match self.data_for(&d.msg) {
                Ok(data) => data,
                Err(e) => {
                    let f = Failure::Io(format!("cannot read spooled message: {e}"));
                    self.fail(&dq.dest, d, &f);
                    continue;
                }
            };
            let (from, rcpts, eight_bit, smtputf8) = {
                let meta = d.msg.meta.borrow();
                let rcpts: Vec<String> = d.rcpts.iter().map(|i| meta.rcpts[*i].clone()).collect();
                (meta.mail_from.clone(), rcpts, meta.eight_bit, meta.smtputf8)
            };
            let out = Outgoing {
                mail_from: &from,
                rcpts: rcpts.iter().map(String::as_str).collect(),
                parts: [&data.head, &data.body],
                eight_bit,
                smtputf8,
            };
            let Some(c) = client.as_mut() else { continue };
            let outcome = c.deliver(&out).await;
            let tls = c.is_tls();
            match outcome {
                Ok(results) => self.record(&dq.dest, d, results, tls),
                Err(f) => {
                    self.fail(&dq.dest, d, &f);
                    if let Some(c) = client.take() {
                        c.quit().await;
                    }
                }
            }
        }
        if let Some(c) = client {
            c.quit().await;
        }
        dq.workers.set(dq.workers.get() - 1);
        if dq.workers.get() == 0 && dq.pending.borrow().is_empty() {
            self.dests.borrow_mut().remove(&dq.dest);
        }
    }

    fn data_for(&self, msg: &Msg) -> std::io::Result<Rc<MessageData>> {
        if let Some(d) = msg.data.borrow().as_ref() {
            return Ok(d.clone());
        }
        let d = Rc::new(self.spool.read(&msg.loc.borrow())?);
        self.keep_in_memory(msg, d.clone());
        Ok(d)
    }

    fn fail(self: &Rc<Self>, dest: &Dest, d: Delivery, f: &Failure) {
        let reply = match f {
            Failure::Session(_, r) => r.clone(),
            _ => None,
        };
        let result = if f.permanent() {
            RcptResult::Permanent(f.to_string(), reply)
        } else {
            RcptResult::Temporary(f.to_string(), reply)
        };
        let n = d.rcpts.len();
        self.record(dest, d, vec![result; n], false);
    }

    fn record(self: &Rc<Self>, dest: &Dest, d: Delivery, results: Vec<RcptResult>, tls: bool) {
        {
            let mut res = d.msg.results.borrow_mut();
            for (i, r) in d.rcpts.iter().zip(results) {
                res[*i] = Some(Outcome { result: r, remote: Some(dest.to_string()), tls });
            }
        }
        let left = d.msg.outstanding.get().saturating_sub(1);
        d.msg.outstanding.set(left);
        if left == 0 {
            let q = self.clone();
            let msg = d.msg;
            glommio::spawn_local(async move { q.complete(msg).await }).detach();
        }
    }

    /// Ends a round: marks recipients, sends one DSN for the failures, schedules a retry or
    /// removes the message.
    async fn complete(self: Rc<Self>, msg: Rc<Msg>) {
        let results: Vec<_> = std::mem::take(&mut *msg.results.borrow_mut());
        msg.results.borrow_mut().resize(results.len(), None);
        let mut meta = msg.meta.borrow().clone();
        let loc = msg.loc.borrow().clone();
        let lifetime_h = k::RELAY_MAX_LIFETIME_H.get_u64();
        let expired = lifetime_h > 0 && now_ms().saturating_sub(meta.arrival_unix_ms) > lifetime_h * 3_600_000;
        let mut perm: Vec<PermFailure> = Vec::new();
        let mut temp: Vec<(usize, String)> = Vec::new();
        let pending: Vec<usize> = meta.pending().collect();
        for i in pending {
            let Outcome { result, remote, tls } = results.get(i).cloned().flatten().unwrap_or(Outcome {
                result: RcptResult::Temporary("not attempted".into(), None),
                remote: None,
                tls: false,
            });
            let policy = RetryPolicy {
                queue_on_4xx: k::RELAY_QUEUE_ON_4XX.get_bool(),
                queue_on_5xx: k::RELAY_QUEUE_ON_5XX.get_bool(),
                expired,
                lifetime_h,
            };
            match dispose(result, &policy) {
                Disposition::Delivered(text) => {
                    meta.status[i] = RcptStatus::Delivered;
                    if let Err(e) = self.spool.set_status(&loc, i, RcptStatus::Delivered) {
                        Event::new("spool_error").str("qid", &meta.id).str("error", &e.to_string()).emit();
                    }
                    METRICS.deliveries_sent.inc();
                    Event::new("delivered")
                        .str("qid", &meta.id)
                        .str("from", &meta.mail_from)
                        .str("rcpt", &meta.rcpts[i])
                        .str("relay", remote.as_deref().unwrap_or(""))
                        .str("tls", if tls { "yes" } else { "no" })
                        .str("reply", &text)
                        .num("delay_ms", now_ms().saturating_sub(meta.arrival_unix_ms))
                        .num("attempts", meta.attempts as u64 + 1)
                        .emit();
                }
                Disposition::Retry(text) => temp.push((i, text)),
                Disposition::Bounce { text, reply, fallback_status } => {
                    perm.push(PermFailure { rcpt: i, text, reply, remote, fallback_status })
                }
            }
        }
        if !perm.is_empty() {
            let dsn_id = if meta.dsn || meta.mail_from.is_empty() {
                Some(String::new())
            } else {
                self.send_dsn(&msg, &meta, &perm).await
            };
            match dsn_id {
                Some(dsn_id) => {
                    for p in &perm {
                        let (i, text) = (&p.rcpt, &p.text);
                        meta.status[*i] = RcptStatus::Bounced;
                        if let Err(e) = self.spool.set_status(&loc, *i, RcptStatus::Bounced) {
                            Event::new("spool_error").str("qid", &meta.id).str("error", &e.to_string()).emit();
                        }
                        METRICS.deliveries_bounced.inc();
                        Event::new("bounced")
                            .str("qid", &meta.id)
                            .str("from", &meta.mail_from)
                            .str("rcpt", &meta.rcpts[*i])
                            .str("reason", text)
                            .str("dsn", if dsn_id.is_empty() { "none (null sender)" } else { &dsn_id })
                            .emit();
                    }
                }
                None => {
                    // The DSN could not be stored: keep the recipients and try again later.
                    for p in perm {
                        temp.push((p.rcpt, format!("{} (DSN could not be queued)", p.text)));
                    }
                }
            }
        }
        *msg.meta.borrow_mut() = meta.clone();
        if meta.all_final() {
            if let Err(e) = self.spool.finish(&loc) {
                Event::new("spool_error").str("qid", &meta.id).str("error", &e.to_string()).emit();
            }
            self.drop_from_memory(&msg);
            METRICS.queue_messages.dec();
            METRICS
                .accept_to_delivered
                .record(Duration::from_millis(now_ms().saturating_sub(meta.arrival_unix_ms)));
            return;
        }
        // Temporary failures: schedule the next attempt.
        let attempts = meta.attempts + 1;
        let delay = backoff_s(attempts, k::RELAY_RETRY_MIN_S.get_u64(), k::RELAY_RETRY_MAX_S.get_u64());
        let next = now_unix() + delay;
        for (i, text) in &temp {
            METRICS.deliveries_deferred.inc();
            Event::new("deferred")
                .str("qid", &meta.id)
                .str("from", &meta.mail_from)
                .str("rcpt", &meta.rcpts[*i])
                .str("reason", text)
                .num("attempts", attempts as u64)
                .num("retry_in_s", delay)
                .emit();
        }
        {
            let mut m = msg.meta.borrow_mut();
            m.attempts = attempts;
            m.next_attempt_unix = next;
        }
        let mut loc = loc;
        if !loc.solo {
            let data = match msg.data.borrow_mut().take() {
                Some(d) => {
                    self.active_bytes.set(self.active_bytes.get().saturating_sub(d.len()));
                    Ok(Rc::try_unwrap(d).unwrap_or_else(|rc| MessageData { head: rc.head.clone(), body: rc.body.clone() }))
                }
                None => self.spool.read(&loc),
            };
            let moved = match data {
                Ok(data) => {
                    let m = msg.meta.borrow().clone();
                    self.spool.move_to_deferred(loc.clone(), &m, data).await.map(|(l, _)| l)
                }
                Err(e) => Err(e),
            };
            match moved {
                Ok(l) => loc = l,
                Err(e) => Event::new("spool_error").str("qid", &meta.id).str("error", &format!("moving to deferred: {e}")).emit(),
            }
            *msg.loc.borrow_mut() = loc.clone();
        }
        if let Err(e) = self.spool.set_retry(&loc, attempts, next) {
            Event::new("spool_error").str("qid", &meta.id).str("error", &e.to_string()).emit();
        }
        self.drop_from_memory(&msg);
        self.defer_until(msg, next);
    }

    /// Stores and queues a DSN to the sender; returns its queue id, or None if it could not be stored.
    async fn send_dsn(
        self: &Rc<Self>,
        msg: &Msg,
        meta: &Meta,
        perm: &[PermFailure],
    ) -> Option<String> {
        let hostname = k::SMTP_HOSTNAME.get_str();
        let failed: Vec<dsn::Failed<'_>> = perm
            .iter()
            .map(|p| dsn::Failed {
                rcpt: &meta.rcpts[p.rcpt],
                status: dsn::status_for(p.reply.as_ref(), p.fallback_status),
                remote: p.remote.clone(),
                diagnostic: p.reply.as_ref().map(|r| r.one_line()).unwrap_or_else(|| p.text.clone()),
            })
            .collect();
        let original = match self.data_for(msg) {
            Ok(d) => d,
            Err(_) => Rc::new(MessageData::default()),
        };
        let body = dsn::build(&hostname, &meta.id, meta.arrival_unix_ms, &meta.mail_from, &failed, &[&original.head, &original.body]);
        let id = self.spool.next_id();
        let dsn_meta = Meta {
            id: id.clone(),
            arrival_unix_ms: now_ms(),
            client: "127.0.0.1".into(),
            helo: hostname.to_string(),
            proto: "local".into(),
            mail_from: String::new(),
            rcpts: vec![meta.mail_from.clone()],
            status: vec![RcptStatus::Pending],
            smtputf8: !meta.mail_from.is_ascii(),
            dsn: true,
            ..Meta::default()
        };
        match self.spool.store(dsn_meta.clone(), MessageData { head: Vec::new(), body }).await {
            Ok((loc, data)) => {
                METRICS.dsn_generated.inc();
                Event::new("dsn").str("qid", &id).str("original", &meta.id).str("to", &meta.mail_from).emit();
                self.enqueue(dsn_meta, loc, Some(data));
                Some(id)
            }
            Err(e) => {
                Event::new("spool_error").str("qid", &meta.id).str("error", &format!("storing DSN: {e}")).emit();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_smtp::Reply;

    fn policy(q4: bool, q5: bool, expired: bool) -> RetryPolicy {
        RetryPolicy { queue_on_4xx: q4, queue_on_5xx: q5, expired, lifetime_h: 120 }
    }

    fn temp() -> RcptResult {
        RcptResult::Temporary("451 busy".into(), Some(Reply::new(451, "4.3.0", "busy")))
    }

    fn perm() -> RcptResult {
        RcptResult::Permanent("550 no".into(), Some(Reply::new(550, "5.1.1", "no")))
    }

    #[test]
    fn dispositions_follow_the_reference_knobs() {
        // (result, queue_on_4xx, queue_on_5xx, expired) -> kind
        let table: [(RcptResult, bool, bool, bool, &str); 10] = [
            (RcptResult::Delivered("250 ok".into()), true, false, true, "delivered"),
            (temp(), true, false, false, "retry"),
            (temp(), false, false, false, "bounce 4.0.0"),
            (temp(), true, false, true, "bounce 4.4.7"),
            (temp(), false, true, true, "bounce 4.0.0"),
            (perm(), true, false, false, "bounce 5.0.0"),
            (perm(), true, true, false, "retry"),
            (perm(), true, true, true, "bounce 5.0.0"),
            (RcptResult::Temporary("connect refused".into(), None), true, false, false, "retry"),
            (RcptResult::Temporary("connect refused".into(), None), true, false, true, "bounce 4.4.7"),
        ];
        for (i, (result, q4, q5, expired, want)) in table.into_iter().enumerate() {
            let got = match dispose(result, &policy(q4, q5, expired)) {
                Disposition::Delivered(_) => "delivered".to_string(),
                Disposition::Retry(_) => "retry".to_string(),
                Disposition::Bounce { fallback_status, .. } => format!("bounce {fallback_status}"),
            };
            assert_eq!(got, want, "row {i}");
        }
    }

    #[test]
    fn expiry_bounce_says_why_and_keeps_the_last_error() {
        match dispose(temp(), &policy(true, false, true)) {
            Disposition::Bounce { text, reply, .. } => {
                assert!(text.starts_with("message expired after 120 h in the queue; last error: 451 busy"), "{text}");
                assert!(reply.is_none(), "the DSN status comes from the expiry, not the last 4xx");
            }
            d => panic!("{d:?}"),
        }
        match dispose(temp(), &policy(false, false, false)) {
            Disposition::Bounce { reply, .. } => assert_eq!(reply.unwrap().status, "4.3.0", "the server's own status is kept"),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_s(1, 60, 3600), 60);
        assert_eq!(backoff_s(2, 60, 3600), 120);
        assert_eq!(backoff_s(6, 60, 3600), 1920);
        assert_eq!(backoff_s(7, 60, 3600), 3600);
        assert_eq!(backoff_s(200, 60, 3600), 3600);
    }
}
