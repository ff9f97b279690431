//! The gateway's metrics and their Prometheus rendering.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

/// A monotonically increasing count.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    #[inline]
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

const SHARDS: usize = 64;

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Tells the metrics which core this thread is (executors call it at start).
pub fn set_core(core: usize) {
    SHARD.with(|s| s.set(core % SHARDS));
}

/// A latency histogram in microseconds, one shard per core, merged when scraped.
pub struct Latency {
    shards: [Mutex<Option<Histogram<u64>>>; SHARDS],
}

impl Latency {
    pub const fn new() -> Latency {
        Latency { shards: [const { Mutex::new(None) }; SHARDS] }
    }

    /// Records one observation.
    pub fn record(&self, d: std::time::Duration) {
        let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        let i = SHARD.with(|s| s.get());
        let mut g = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        let h = g.get_or_insert_with(|| Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"));
        let _ = h.record(us);
    }

    /// All shards merged.
    pub fn snapshot(&self) -> Histogram<u64> {
        let mut total = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        for s in &self.shards {
            if let Some(h) = &*s.lock().unwrap_or_else(|e| e.into_inner()) {
                let _ = total.add(h);
            }
        }
        total
    }
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

/// Every metric of the gateway.
pub struct Metrics {
    pub connections_total: Counter,
    pub connections_current: Gauge,
    pub connections_refused_limit: Counter,
    pub connections_refused_per_ip: Counter,
    pub connections_refused_shutdown: Counter,
    pub connections_timed_out: Counter,
    pub tls_handshakes: Counter,
    pub tls_failures: Counter,
    pub messages_accepted: Counter,
    pub messages_rejected: Counter,
    pub messages_deferred: Counter,
    pub recipients_rejected: Counter,
    pub bytes_received: Counter,
    pub queue_messages: Gauge,
    pub queue_deferred: Gauge,
    pub deliveries_sent: Counter,
    pub deliveries_deferred: Counter,
    pub deliveries_bounced: Counter,
    pub dsn_generated: Counter,
    pub relay_connections: Counter,
    pub spool_errors: Counter,
    /// Connections closed to make room in a full table (smtp.evict_stalled_ms).
    pub connections_evicted: Counter,
    /// Transactions refused at MAIL FROM because the spool's filesystem was short of room.
    pub spool_full_refusals: Counter,
    pub spool_commits: Counter,
    pub spool_committed_messages: Counter,
    pub log_lines_dropped: Counter,
    pub greylist_deferred: Counter,
    /// New triplets passed unrecorded because the greylist table was full.
    pub greylist_full: Counter,
    pub pregreet_refused: Counter,
    pub conn_rate_refused: Counter,
    /// Body admission (smtpd/admission.rs): the sum of the cores' limits on bodies in flight,
    /// transactions that waited for a pass, and passes dropped because their sender was slow.
    pub smtp_body_limit: Gauge,
    pub smtp_body_waits: Counter,
    pub smtp_body_passes_expired: Counter,
    pub av_viruses: Counter,
    /// Messages ClamAV could not answer for (error, timeout, queue full, no signatures).
    pub av_unchecked: Counter,
    /// Bayes: tokens held, messages learnt of each kind, tokens not learnt for want of room.
    pub bayes_tokens: Gauge,
    pub bayes_spam_learned: Gauge,
    pub bayes_ham_learned: Gauge,
    pub bayes_dropped: Gauge,
    pub bayes_lessons_lost: Gauge,
    /// Lessons of messages learnt that way already, and of messages learnt the other way before.
    pub bayes_lessons_repeated: Gauge,
    pub bayes_lessons_switched: Gauge,
    pub bayes_lessons_reinforced: Gauge,
    pub bulk_keys: Gauge,
    pub reputation_keys: Gauge,
    /// Bayes verdicts given.
    pub bayes_spam: Counter,
    pub bayes_ham: Counter,
    /// End of data received → final reply sent (includes the spool fsync).
    pub eod_to_reply: Latency,
    /// DATA/BDAT → body admitted, for the transactions that had to wait.
    pub smtp_body_wait: Latency,
    /// Content scan of one message (parse and every scanner).
    pub scan_time: Latency,
    /// ClamAV scan of one message, queueing included.
    pub av_time: Latency,
    /// Message accepted → delivered downstream.
    pub accept_to_delivered: Latency,
    /// One group commit: write and fsync.
    pub spool_commit: Latency,
    /// The device flush inside a spool commit (fdatasync, plus the directory for own files).
    pub spool_sync: Latency,
}

pub static METRICS: Metrics = Metrics {
    connections_total: Counter::new(),
    connections_current: Gauge::new(),
    connections_refused_limit: Counter::new(),
    connections_refused_per_ip: Counter::new(),
    connections_refused_shutdown: Counter::new(),
    connections_timed_out: Counter::new(),
    tls_handshakes: Counter::new(),
    tls_failures: Counter::new(),
    messages_accepted: Counter::new(),
    messages_rejected: Counter::new(),
    messages_deferred: Counter::new(),
    recipients_rejected: Counter::new(),
    bytes_received: Counter::new(),
    queue_messages: Gauge::new(),
    queue_deferred: Gauge::new(),
    deliveries_sent: Counter::new(),
    deliveries_deferred: Counter::new(),
    deliveries_bounced: Counter::new(),
    dsn_generated: Counter::new(),
    relay_connections: Counter::new(),
    spool_errors: Counter::new(),
    connections_evicted: Counter::new(),
    spool_full_refusals: Counter::new(),
    spool_commits: Counter::new(),
    spool_committed_messages: Counter::new(),
    log_lines_dropped: Counter::new(),
    greylist_deferred: Counter::new(),
    greylist_full: Counter::new(),
    pregreet_refused: Counter::new(),
    smtp_body_limit: Gauge::new(),
    smtp_body_waits: Counter::new(),
    smtp_body_passes_expired: Counter::new(),
    conn_rate_refused: Counter::new(),
    av_viruses: Counter::new(),
    av_unchecked: Counter::new(),
    eod_to_reply: Latency::new(),
    smtp_body_wait: Latency::new(),
    scan_time: Latency::new(),
    av_time: Latency::new(),
    bayes_tokens: Gauge::new(),
    bayes_spam_learned: Gauge::new(),
    bayes_ham_learned: Gauge::new(),
    bayes_dropped: Gauge::new(),
    bayes_lessons_lost: Gauge::new(),
    bayes_lessons_repeated: Gauge::new(),
    bayes_lessons_switched: Gauge::new(),
    bayes_lessons_reinforced: Gauge::new(),
    bulk_keys: Gauge::new(),
    reputation_keys: Gauge::new(),
    bayes_spam: Counter::new(),
    bayes_ham: Counter::new(),
    accept_to_delivered: Latency::new(),
    spool_commit: Latency::new(),
    spool_sync: Latency::new(),
};

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn summary(out: &mut String, name: &str, help: &str, l: &Latency) {
    let h = l.snapshot();
    family(out, name, "summary", help);
    for q in [0.5, 0.9, 0.99, 0.999] {
        let v = if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1e6 };
        let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {v}");
    }
    let sum: f64 = h.iter_recorded().map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64).sum::<f64>() / 1e6;
    let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {}", h.len());
    let max = if h.is_empty() { 0.0 } else { h.max() as f64 / 1e6 };
    let _ = writeln!(out, "# TYPE {name}_max gauge\n{name}_max {max}");
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let m = &METRICS;
    let mut o = String::with_capacity(4096);
    let c = |o: &mut String, name: &str, help: &str, v: u64| {
        family(o, name, "counter", help);
        let _ = writeln!(o, "{name} {v}");
    };
    let g = |o: &mut String, name: &str, help: &str, v: i64| {
        family(o, name, "gauge", help);
        let _ = writeln!(o, "{name} {v}");
    };
    c(&mut o, "mxguard_connections_total", "Inbound SMTP connections accepted by the kernel.", m.connections_total.get());
    g(&mut o, "mxguard_connections_current", "Inbound SMTP connections open now.", m.connections_current.get());
    family(&mut o, "mxguard_connections_refused_total", "counter", "Inbound connections refused with 421, by reason.");
    let _ = writeln!(o, "mxguard_connections_refused_total{{reason=\"limit\"}} {}", m.connections_refused_limit.get());
    let _ = writeln!(o, "mxguard_connections_refused_total{{reason=\"per_ip\"}} {}", m.connections_refused_per_ip.get());
    let _ = writeln!(o, "mxguard_connections_refused_total{{reason=\"shutdown\"}} {}", m.connections_refused_shutdown.get());
    c(&mut o, "mxguard_connections_timed_out_total", "Sessions ended by a timeout.", m.connections_timed_out.get());
    c(&mut o, "mxguard_connections_evicted_total", "Stalled connections closed with 421 to make room for a newcomer in a full table.", m.connections_evicted.get());
    c(&mut o, "mxguard_tls_handshakes_total", "Completed inbound TLS handshakes.", m.tls_handshakes.get());
    c(&mut o, "mxguard_tls_failures_total", "Failed inbound TLS handshakes.", m.tls_failures.get());
    family(&mut o, "mxguard_messages_total", "counter", "Messages at end of data, by outcome.");
    let _ = writeln!(o, "mxguard_messages_total{{result=\"accepted\"}} {}", m.messages_accepted.get());
    let _ = writeln!(o, "mxguard_messages_total{{result=\"rejected\"}} {}", m.messages_rejected.get());
    let _ = writeln!(o, "mxguard_messages_total{{result=\"deferred\"}} {}", m.messages_deferred.get());
    c(&mut o, "mxguard_recipients_rejected_total", "RCPT TO commands refused.", m.recipients_rejected.get());
    c(&mut o, "mxguard_received_bytes_total", "Message bytes accepted.", m.bytes_received.get());
    g(&mut o, "mxguard_queue_messages", "Messages in the relay queue (active and deferred).", m.queue_messages.get());
    g(&mut o, "mxguard_queue_deferred_messages", "Messages waiting for a retry.", m.queue_deferred.get());
    family(&mut o, "mxguard_deliveries_total", "counter", "Recipient deliveries to downstream servers, by result.");
    let _ = writeln!(o, "mxguard_deliveries_total{{result=\"sent\"}} {}", m.deliveries_sent.get());
    let _ = writeln!(o, "mxguard_deliveries_total{{result=\"deferred\"}} {}", m.deliveries_deferred.get());
    let _ = writeln!(o, "mxguard_deliveries_total{{result=\"bounced\"}} {}", m.deliveries_bounced.get());
    c(&mut o, "mxguard_dsn_generated_total", "Delivery status notifications queued.", m.dsn_generated.get());
    c(&mut o, "mxguard_relay_connections_total", "Connections opened to downstream servers.", m.relay_connections.get());
    c(&mut o, "mxguard_spool_errors_total", "Spool writes that failed (the client got 451, or 452 for a full disk).", m.spool_errors.get());
    c(&mut o, "mxguard_spool_full_refusals_total", "Transactions refused at MAIL FROM with 452 4.3.1: the spool's filesystem was below spool.min_free_bytes plus the declared SIZE.", m.spool_full_refusals.get());
    c(&mut o, "mxguard_spool_commits_total", "Group commits (each one write and one fsync).", m.spool_commits.get());
    c(&mut o, "mxguard_spool_committed_messages_total", "Messages made durable by group commits.", m.spool_committed_messages.get());
    c(&mut o, "mxguard_log_lines_dropped_total", "Log lines dropped because the writer fell behind.", m.log_lines_dropped.get());
    family(&mut o, "mxguard_policy_events_total", "counter", "Policy outcomes that are not symbols, by kind.");
    let _ = writeln!(o, "mxguard_policy_events_total{{kind=\"greylist_deferred\"}} {}", m.greylist_deferred.get());
    let _ = writeln!(o, "mxguard_policy_events_total{{kind=\"greylist_full\"}} {}", m.greylist_full.get());
    let _ = writeln!(o, "mxguard_policy_events_total{{kind=\"pregreet_refused\"}} {}", m.pregreet_refused.get());
    let _ = writeln!(o, "mxguard_policy_events_total{{kind=\"conn_rate_refused\"}} {}", m.conn_rate_refused.get());
    summary(&mut o, "mxguard_eod_to_reply_seconds", "End of data to final reply (spool fsync included).", &m.eod_to_reply);
    g(&mut o, "mxguard_smtp_body_limit", "Message bodies the cores take in at once, summed over cores (0: gate off).", m.smtp_body_limit.get());
    c(&mut o, "mxguard_smtp_body_waits_total", "Transactions held before 354 or their first BDAT chunk by a saturated core.", m.smtp_body_waits.get());
    c(&mut o, "mxguard_smtp_body_passes_expired_total", "Bodies that stopped counting against the limit because their sender was slow.", m.smtp_body_passes_expired.get());
    summary(&mut o, "mxguard_smtp_body_wait_seconds", "How long held transactions waited to be admitted.", &m.smtp_body_wait);
    summary(&mut o, "mxguard_scan_seconds", "Content scan of one message (MIME parse and every scanner).", &m.scan_time);
    c(&mut o, "mxguard_av_viruses_total", "Messages in which ClamAV found a virus.", m.av_viruses.get());
    c(&mut o, "mxguard_av_unchecked_total", "Messages ClamAV could not scan (error, timeout, queue full, no signatures).", m.av_unchecked.get());
    summary(&mut o, "mxguard_av_seconds", "ClamAV scan of one message, queueing included.", &m.av_time);
    g(&mut o, "mxguard_bayes_tokens", "Tokens in the Bayes table.", m.bayes_tokens.get());
    family(&mut o, "mxguard_bayes_learned_messages", "gauge", "Messages the Bayes table has learnt, by kind.");
    let _ = writeln!(o, "mxguard_bayes_learned_messages{{kind=\"spam\"}} {}", m.bayes_spam_learned.get());
    let _ = writeln!(o, "mxguard_bayes_learned_messages{{kind=\"ham\"}} {}", m.bayes_ham_learned.get());
    g(&mut o, "mxguard_bayes_dropped_tokens", "Tokens not learnt because the table was full (raise bayes.max_tokens).", m.bayes_dropped.get());
    g(&mut o, "mxguard_bulk_fingerprint_bands", "Text fingerprint bands counted over bulk.window_s.", m.bulk_keys.get());
    g(&mut o, "mxguard_reputation_senders", "Client addresses, networks and domains with history within reputation.window_s.", m.reputation_keys.get());
    g(&mut o, "mxguard_bayes_lessons_lost", "Messages not learnt because the learner's queue was full (bayes.queue), since start.", m.bayes_lessons_lost.get());
    g(&mut o, "mxguard_bayes_lessons_repeated", "Messages not learnt again because they were learnt that way already (bayes.seen_max), since start.", m.bayes_lessons_repeated.get());
    g(&mut o, "mxguard_bayes_lessons_switched", "Messages learnt the other way than before: the earlier lesson was taken back first (a released false positive), since start.", m.bayes_lessons_switched.get());
    g(&mut o, "mxguard_bayes_lessons_reinforced", "Messages Bayes misjudged just before they were learnt, so learnt more than once (bayes.reinforce_margin, bayes.reinforce_max), since start.", m.bayes_lessons_reinforced.get());
    family(&mut o, "mxguard_bayes_verdicts_total", "counter", "Bayes verdicts given, by symbol.");
    let _ = writeln!(o, "mxguard_bayes_verdicts_total{{symbol=\"BAYES_SPAM\"}} {}", m.bayes_spam.get());
    let _ = writeln!(o, "mxguard_bayes_verdicts_total{{symbol=\"BAYES_HAM\"}} {}", m.bayes_ham.get());
    summary(&mut o, "mxguard_accept_to_delivered_seconds", "Message accepted to delivered downstream.", &m.accept_to_delivered);
    summary(&mut o, "mxguard_spool_commit_seconds", "One spool group commit (write and fsync).", &m.spool_commit);
    summary(&mut o, "mxguard_spool_sync_seconds", "The device flush inside one spool commit (the rest of a commit is scheduling).", &m.spool_sync);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_quantiles() {
        METRICS.messages_accepted.inc();
        let l = Latency::new();
        for ms in 1..=100 {
            l.record(std::time::Duration::from_millis(ms));
        }
        let h = l.snapshot();
        assert_eq!(h.len(), 100);
        assert!((h.value_at_quantile(0.99) as i64 - 99_000).abs() < 1000);
        let text = render();
        assert!(text.contains("mxguard_messages_total{result=\"accepted\"} "));
        assert!(text.contains("# TYPE mxguard_eod_to_reply_seconds summary"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            v.parse::<f64>().unwrap_or_else(|_| panic!("bad sample line {line}"));
        }
    }
}
