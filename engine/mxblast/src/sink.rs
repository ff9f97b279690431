//! `mxblast sink`: a fast SMTP sink that counts what arrives and checks that every message of a
//! blast arrived exactly once (by its `X-Mxblast-Seq: RUN-N` header).
//!
//! It is the gateway's own SMTP server (engine/smtpd) with a handler that accepts everything
//! (or refuses/defers chosen recipients, for failure tests), optionally saves each message, and
//! publishes its counters as JSON to a stats file several times a second.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mxguard_smtp::{Envelope, MailFrom, Reply};
use mxguard_smtpd::{ConnInfo, Handler};

#[derive(Default)]
pub struct Stats {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub rcpts: AtomicU64,
    pub connections: AtomicU64,
    seen: Mutex<HashMap<String, HashSet<u64>>>,
    pub duplicates: AtomicU64,
}

impl Stats {
    fn note_seq(&self, body: &[u8]) {
        let head = &body[..body.len().min(16 * 1024)];
        let Some(i) = memchr::memmem::find(head, b"X-Mxblast-Seq: ") else { return };
        let rest = &head[i + 15..];
        let end = memchr::memchr(b'\r', rest).unwrap_or(rest.len());
        let Ok(tag) = std::str::from_utf8(&rest[..end]) else { return };
        let Some((run, n)) = tag.rsplit_once('-') else { return };
        let Ok(n) = n.parse::<u64>() else { return };
        let mut g = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !g.entry(run.to_string()).or_default().insert(n) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn json(&self) -> String {
        let g = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let runs: Vec<String> = g.iter().map(|(r, s)| format!("\"{}\":{}", r.replace('"', ""), s.len())).collect();
        format!(
            "{{\"messages\":{},\"bytes\":{},\"rcpts\":{},\"connections\":{},\"duplicates\":{},\"unique_by_run\":{{{}}}}}",
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.rcpts.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
            self.duplicates.load(Ordering::Relaxed),
            runs.join(",")
        )
    }
}

pub struct SinkOptions {
    pub save: Option<PathBuf>,
    pub reject_rcpt: Vec<String>,
    pub defer_rcpt: Vec<String>,
}

pub struct Sink {
    pub stats: Arc<Stats>,
    pub opts: Arc<SinkOptions>,
}

impl Handler for Sink {
    async fn rcpt(&self, _conn: &ConnInfo, _from: &MailFrom, to: &str) -> Result<(), Reply> {
        if self.opts.reject_rcpt.iter().any(|s| to.contains(s.as_str())) {
            return Err(Reply::new(550, "5.1.1", format!("<{to}>: Recipient address rejected: User unknown")));
        }
        if self.opts.defer_rcpt.iter().any(|s| to.contains(s.as_str())) {
            return Err(Reply::new(451, "4.3.0", format!("<{to}>: Temporary failure, try again")));
        }
        Ok(())
    }

    async fn message(&self, _conn: &ConnInfo, env: Envelope, body: Vec<u8>) -> Reply {
        let n = self.stats.messages.fetch_add(1, Ordering::Relaxed) + 1;
        self.stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        self.stats.rcpts.fetch_add(env.rcpts.len() as u64, Ordering::Relaxed);
        self.stats.note_seq(&body);
        if let Some(dir) = &self.opts.save {
            let path = dir.join(format!("{n:08}-{}.eml", std::process::id()));
            let mut text = format!("X-Sink-Mail-From: <{}>\r\n", env.mail_from).into_bytes();
            for r in &env.rcpts {
                text.extend_from_slice(format!("X-Sink-Rcpt-To: <{r}>\r\n").as_bytes());
            }
            text.extend_from_slice(&body);
            let tmp = path.with_extension("tmp");
            let ok = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(&text)).and_then(|_| std::fs::rename(&tmp, &path));
            if ok.is_err() {
                return Reply::new(451, "4.3.0", "sink could not save the message");
            }
        }
        Reply::new(250, "2.0.0", format!("Ok: sink {n}"))
    }

    fn disconnect(&self, _conn: &ConnInfo, _s: &mxguard_smtpd::ConnSummary) {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs the sink until SIGINT/SIGTERM (or `duration`), writing stats to `stats_file` if given.
pub fn run(
    listen: Vec<std::net::SocketAddr>,
    cores: usize,
    opts: SinkOptions,
    stats_file: Option<PathBuf>,
    tls: Option<Arc<rustls::ServerConfig>>,
    duration: Option<std::time::Duration>,
) -> Result<(), String> {
    mxguard_smtpd::check_unused(&listen).map_err(|e| e.to_string())?;
    let stats = Arc::new(Stats::default());
    let opts = Arc::new(opts);
    if let Some(dir) = &opts.save {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let started = std::time::Instant::now();
    {
        let stats = stats.clone();
        let file = stats_file.clone();
        std::thread::spawn(move || loop {
            if let Some(f) = &file {
                let tmp = f.with_extension("tmp");
                if std::fs::write(&tmp, stats.json()).is_ok() {
                    let _ = std::fs::rename(&tmp, f);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            if crate::stopping() || duration.is_some_and(|d| started.elapsed() >= d) {
                crate::request_stop();
            }
        });
    }
    let mut handles = Vec::new();
    for core in 0..cores {
        let (listen, stats, opts, tls) = (listen.clone(), stats.clone(), opts.clone(), tls.clone());
        let h = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name(&format!("sink{core}"))
            .io_memory(512 << 10)
            .spawn(move || async move {
                let listeners = match mxguard_smtpd::bind(&listen, &[]) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("mxblast sink: {e}");
                        crate::request_stop();
                        return;
                    }
                };
                let shutdown = Rc::new(mxguard_smtpd::Shutdown::new());
                shutdown.follow_process_stop();
                mxguard_smtpd::serve(Rc::new(Sink { stats, opts }), listeners, tls, core, shutdown).await;
            })
            .map_err(|e| e.to_string())?;
        handles.push(h);
    }
    for h in handles {
        let _ = h.join();
    }
    if let Some(f) = &stats_file {
        let _ = std::fs::write(f, stats.json());
    }
    println!("{}", stats.json());
    Ok(())
}
