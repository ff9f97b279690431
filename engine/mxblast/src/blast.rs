//! `mxblast send`: the load generator. N connections over all cores, M messages or a duration,
//! fixed-size or real (.eml) messages, pipelining and TLS on or off, K messages per connection.
//! Prints msgs/s, MB/s, replies by class and the end-of-data → reply latency (hdrhistogram).
//!
//! It speaks SMTP with the gateway's own relay client (engine/relay), so what is measured is the
//! server, with a client whose costs are known.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mxguard_relay::client::{Client, ClientOptions, Failure, Outgoing, RcptResult};
use mxguard_relay::Dest;

pub struct BlastOptions {
    pub server: Dest,
    pub conns: usize,
    pub messages: Option<u64>,
    pub duration: Option<Duration>,
    pub size: usize,
    pub dir: Option<PathBuf>,
    pub per_conn: u64,
    pub pipelining: bool,
    pub starttls: bool,
    pub implicit_tls: bool,
    pub from: String,
    pub to: Vec<String>,
    pub rcpts: usize,
    pub run_id: String,
    pub cores: usize,
    pub json: Option<PathBuf>,
    pub progress: bool,
    pub idle: Option<(usize, Duration)>,
    /// File to list the sequence numbers that got a 2xx reply (one per line).
    pub accepted: Option<PathBuf>,
    /// Offered load in messages per second over all connections (open loop); None sends as
    /// fast as replies come back (closed loop).
    pub rate: Option<f64>,
}

#[derive(Default)]
struct Shared {
    next: AtomicU64,
    ok: AtomicU64,
    temp: AtomicU64,
    perm: AtomicU64,
    errors: AtomicU64,
    connects: AtomicU64,
    connect_errors: AtomicU64,
    bytes: AtomicU64,
    greeted: AtomicU64,
}

/// Message bodies to send: generated filler or the files of a directory.
struct Corpus {
    templates: Vec<Vec<u8>>,
}

impl Corpus {
    fn load(opts: &BlastOptions) -> Result<Corpus, String> {
        if let Some(dir) = &opts.dir {
            let mut files: Vec<PathBuf> = walk(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            files.sort();
            let mut templates = Vec::new();
            for f in files {
                let raw = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                // mbox-style "From " first lines are not part of the message.
                let raw = if raw.starts_with(b"From ") {
                    raw.iter().position(|b| *b == b'\n').map(|i| raw[i + 1..].to_vec()).unwrap_or_default()
                } else {
                    raw
                };
                templates.push(mxguard_smtp::stuff::to_crlf(&raw));
            }
            if templates.is_empty() {
                return Err(format!("{}: no files", dir.display()));
            }
            return Ok(Corpus { templates });
        }
        let mut m = format!(
            "From: <{}>\r\nTo: <{}>\r\nSubject: mxblast load test\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
            opts.from,
            opts.to.first().cloned().unwrap_or_default()
        )
        .into_bytes();
        let line = b"The quick brown fox jumps over the lazy dog while mxblast measures a gateway.\r\n";
        while m.len() + line.len() <= opts.size {
            m.extend_from_slice(line);
        }
        Ok(Corpus { templates: vec![m] })
    }

    fn message(&self, run: &str, n: u64) -> Vec<u8> {
        let t = &self.templates[(n as usize) % self.templates.len()];
        let mut m = format!("X-Mxblast-Seq: {run}-{n}\r\nMessage-ID: <{run}.{n}@mxblast>\r\n").into_bytes();
        m.extend_from_slice(t);
        m
    }
}

fn walk(dir: &PathBuf) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(out)
}

fn client_options(o: &BlastOptions) -> ClientOptions {
    ClientOptions {
        helo: "mxblast.test".into(),
        starttls: o.starttls,
        implicit_tls: o.implicit_tls,
        pipelining: o.pipelining,
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(60),
        data_done_timeout: Duration::from_secs(120),
    }
}

fn recipients(o: &BlastOptions, n: u64) -> Vec<String> {
    (0..o.rcpts.max(1))
        .map(|j| {
            if o.to.len() > 1 {
                o.to[((n as usize) * o.rcpts + j) % o.to.len()].clone()
            } else if o.rcpts > 1 {
                let base = &o.to[0];
                match base.split_once('@') {
                    Some((l, d)) => format!("{l}+{j}@{d}"),
                    None => base.clone(),
                }
            } else {
                o.to[0].clone()
            }
        })
        .collect()
}

/// What the connections of one executor share.
struct Executor {
    o: Arc<BlastOptions>,
    s: Arc<Shared>,
    corpus: Arc<Corpus>,
    deadline: Option<Instant>,
    hist: std::cell::RefCell<Histogram<u64>>,
    accepted: std::cell::RefCell<Vec<u64>>,
}

async fn connection(index: usize, x: std::rc::Rc<Executor>, tls: Option<futures_rustls::TlsConnector>) {
    let (o, s, corpus, deadline) = (&x.o, &x.s, &x.corpus, x.deadline);
    let (hist, accepted) = (&x.hist, &x.accepted);
    let copts = client_options(o);
    let done = |n: u64| o.messages.is_some_and(|m| n >= m) || deadline.is_some_and(|d| Instant::now() >= d) || crate::stopping();
    // Open loop: each connection sends at conns/rate intervals, whatever the replies take.
    let interval = o.rate.filter(|r| *r > 0.0).map(|r| Duration::from_secs_f64(o.conns.max(1) as f64 / r));
    // Connections start evenly spread over one interval, so the load is smooth, not bursts.
    let mut next_at = Instant::now() + interval.map(|iv| iv.mul_f64(index as f64 / o.conns.max(1) as f64)).unwrap_or_default();
    'outer: loop {
        if done(s.next.load(Ordering::Relaxed)) {
            break;
        }
        let mut client = match Client::connect(&o.server, tls.as_ref(), &copts).await {
            Ok(c) => c,
            Err(e) => {
                if s.connect_errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("mxblast: connect: {e}");
                }
                glommio::timer::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        s.connects.fetch_add(1, Ordering::Relaxed);
        for _ in 0..o.per_conn.max(1) {
            if let Some(iv) = interval {
                let now = Instant::now();
                if next_at > now {
                    glommio::timer::sleep(next_at - now).await;
                }
                next_at = next_at.max(now - iv) + iv;
            }
            let n = s.next.fetch_add(1, Ordering::Relaxed);
            if done(n) {
                client.quit().await;
                break 'outer;
            }
            let msg = corpus.message(&o.run_id, n);
            let rcpts = recipients(o, n);
            let out = Outgoing {
                mail_from: &o.from,
                rcpts: rcpts.iter().map(String::as_str).collect(),
                parts: [&msg, b""],
                eight_bit: true,
                smtputf8: false,
            };
            match client.deliver(&out).await {
                Ok(results) => {
                    match results.first() {
                        Some(RcptResult::Delivered(_)) => {
                            accepted.borrow_mut().push(n);
                            s.ok.fetch_add(1, Ordering::Relaxed)
                        }
                        Some(RcptResult::Temporary(..)) => s.temp.fetch_add(1, Ordering::Relaxed),
                        _ => s.perm.fetch_add(1, Ordering::Relaxed),
                    };
                    s.bytes.fetch_add(msg.len() as u64, Ordering::Relaxed);
                    if let Some(l) = client.last_data_latency.take() {
                        let _ = hist.borrow_mut().record((l.as_micros() as u64).max(1));
                    }
                }
                // MAIL FROM refused with a reply: the message is refused, the session goes on.
                Err(Failure::Session(_, Some(r))) if r.is_transient() => {
                    s.temp.fetch_add(1, Ordering::Relaxed);
                }
                Err(Failure::Session(_, Some(r))) if r.is_permanent() => {
                    s.perm.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    if s.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("mxblast: message {n}: {e}");
                    }
                    continue 'outer;
                }
            }
        }
        client.quit().await;
    }
}

async fn idle_connection(o: Arc<BlastOptions>, s: Arc<Shared>, hold: Duration) {
    let copts = client_options(&o);
    match Client::connect(&o.server, None, &copts).await {
        Ok(c) => {
            s.greeted.fetch_add(1, Ordering::Relaxed);
            let until = Instant::now() + hold;
            while Instant::now() < until && !crate::stopping() {
                glommio::timer::sleep(Duration::from_millis(200)).await;
            }
            c.quit().await;
        }
        Err(_) => {
            s.connect_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub fn run(o: BlastOptions) -> Result<(), String> {
    let o = Arc::new(o);
    let corpus = Arc::new(Corpus::load(&o)?);
    let s = Arc::new(Shared::default());
    let tls = mxguard_tls::opportunistic_client_config();
    let cores = o.cores.max(1).min(o.conns.max(1));
    let start = Instant::now();
    let deadline = o.duration.map(|d| start + d);
    let progress = {
        let (s, o) = (s.clone(), o.clone());
        std::thread::spawn(move || {
            let mut last = 0;
            let mut tick = 0u64;
            while !crate::stopping() {
                std::thread::sleep(Duration::from_millis(250));
                tick += 1;
                if o.progress && tick % 4 == 0 {
                    let now = s.ok.load(Ordering::Relaxed) + s.temp.load(Ordering::Relaxed) + s.perm.load(Ordering::Relaxed);
                    eprintln!("mxblast: {now} messages, {} msg/s, {} errors", now - last, s.errors.load(Ordering::Relaxed));
                    last = now;
                }
            }
        })
    };
    let mut handles = Vec::new();
    for core in 0..cores {
        let (o, s, corpus, tls) = (o.clone(), s.clone(), corpus.clone(), tls.clone());
        let h = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name(&format!("blast{core}"))
            .io_memory(512 << 10)
            .spawn(move || async move {
                let x = std::rc::Rc::new(Executor {
                    o: o.clone(),
                    s: s.clone(),
                    corpus: corpus.clone(),
                    deadline,
                    hist: std::cell::RefCell::new(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds")),
                    accepted: Default::default(),
                });
                let mut tasks = Vec::new();
                if let Some((n, hold)) = o.idle {
                    let mine = n / cores + usize::from(core < n % cores);
                    for _ in 0..mine {
                        tasks.push(glommio::spawn_local(idle_connection(o.clone(), s.clone(), hold)));
                    }
                } else {
                    let mine = o.conns / cores + usize::from(core < o.conns % cores);
                    for i in 0..mine {
                        let connector = Some(futures_rustls::TlsConnector::from(tls.clone()));
                        tasks.push(glommio::spawn_local(connection(i * cores + core, x.clone(), connector)));
                    }
                }
                for t in tasks {
                    t.await;
                }
                let h = x.hist.borrow().clone();
                let a = x.accepted.borrow().clone();
                (h, a)
            })
            .map_err(|e| e.to_string())?;
        handles.push(h);
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    let mut accepted = Vec::new();
    for h in handles {
        if let Ok((part, acc)) = h.join() {
            let _ = hist.add(&part);
            accepted.extend(acc);
        }
    }
    if let Some(f) = &o.accepted {
        accepted.sort_unstable();
        let text: String = accepted.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(f, text).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    let secs = start.elapsed().as_secs_f64();
    crate::request_stop();
    let _ = progress.join();
    let (ok, temp, perm, errors) = (
        s.ok.load(Ordering::Relaxed),
        s.temp.load(Ordering::Relaxed),
        s.perm.load(Ordering::Relaxed),
        s.errors.load(Ordering::Relaxed),
    );
    let bytes = s.bytes.load(Ordering::Relaxed);
    let q = |p: f64| if hist.is_empty() { 0.0 } else { hist.value_at_quantile(p) as f64 / 1000.0 };
    let max = if hist.is_empty() { 0.0 } else { hist.max() as f64 / 1000.0 };
    let total = ok + temp + perm;
    let json = format!(
        "{{\"run\":\"{}\",\"seconds\":{secs:.3},\"messages\":{total},\"ok\":{ok},\"temp\":{temp},\"perm\":{perm},\"errors\":{errors},\"connects\":{},\"connect_errors\":{},\"greeted\":{},\"msgs_per_s\":{:.1},\"mb_per_s\":{:.2},\"latency_ms\":{{\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3}}}}}",
        o.run_id,
        s.connects.load(Ordering::Relaxed),
        s.connect_errors.load(Ordering::Relaxed),
        s.greeted.load(Ordering::Relaxed),
        total as f64 / secs,
        bytes as f64 / secs / 1e6,
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        max
    );
    if o.idle.is_some() {
        println!("idle connections: {} greeted, {} failed", s.greeted.load(Ordering::Relaxed), s.connect_errors.load(Ordering::Relaxed));
    } else {
        println!("sent {total} messages in {secs:.2} s: {:.0} msg/s, {:.2} MB/s", total as f64 / secs, bytes as f64 / secs / 1e6);
        println!("replies: 2xx={ok} 4xx={temp} 5xx={perm} errors={errors} (connections: {})", s.connects.load(Ordering::Relaxed));
        println!("end-of-data -> reply latency ms: p50={:.3} p90={:.3} p99={:.3} p99.9={:.3} max={:.3}", q(0.5), q(0.9), q(0.99), q(0.999), max);
    }
    if let Some(f) = &o.json {
        std::fs::write(f, &json).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    Ok(())
}
