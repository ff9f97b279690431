//! `mxblast`: the bundled SMTP load tool and test sink.
//!
//! ```text
//! mxblast sink [--listen ADDR]... [--cores N] [--stats FILE] [--save DIR]
//!              [--reject-rcpt SUBSTR]... [--defer-rcpt SUBSTR]... [--tls] [--duration SECS]
//! mxblast [send] [--server HOST:PORT] [-c CONNS] [-m MSGS | -d SECS] [-s BYTES | --dir DIR]
//!              [--per-conn K] [--no-pipelining] [--starttls | --implicit-tls] [--from ADDR]
//!              [--to ADDR]... [--rcpts K] [--run ID] [--cores N] [--json FILE] [--progress]
//!              [--idle N --hold SECS] [--accepted FILE] [--rate MSGS_PER_S]
//! ```
//! Defaults: the sink listens on 127.0.0.1:2526; send targets 127.0.0.1:2525 with 10
//! connections, 1,000 messages of 2 KB, pipelining on, 100 messages per connection.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

mod blast;
mod manual;
mod sink;

use std::process::ExitCode;
use std::time::Duration;

pub use mxguard_smtpd::shutdown::{request_stop, stop_requested as stopping};

struct Args(std::vec::IntoIter<String>);

impl Args {
    fn value(&mut self, flag: &str) -> Result<String, String> {
        self.0.next().ok_or_else(|| format!("{flag} needs a value"))
    }
    fn num<T: std::str::FromStr>(&mut self, flag: &str) -> Result<T, String> {
        let v = self.value(flag)?;
        v.replace('_', "").parse().map_err(|_| format!("{flag}: `{v}` is not a number"))
    }
}

fn sink(mut a: Args) -> Result<(), String> {
    let mut listen = Vec::new();
    let mut cores = 1usize;
    let mut stats = None;
    let mut tls = false;
    let mut duration = None;
    let mut opts = sink::SinkOptions { save: None, reject_rcpt: Vec::new(), defer_rcpt: Vec::new() };
    while let Some(f) = a.0.next() {
        match f.as_str() {
            "--listen" => listen.push(a.value(&f)?.parse().map_err(|_| "--listen takes ip:port".to_string())?),
            "--cores" => cores = a.num(&f)?,
            "--stats" => stats = Some(a.value(&f)?.into()),
            "--save" => opts.save = Some(a.value(&f)?.into()),
            "--reject-rcpt" => opts.reject_rcpt.push(a.value(&f)?),
            "--defer-rcpt" => opts.defer_rcpt.push(a.value(&f)?),
            "--tls" => tls = true,
            "--duration" => duration = Some(Duration::from_secs_f64(a.num(&f)?)),
            _ => return Err(format!("mxblast sink: unknown flag {f}")),
        }
    }
    if listen.is_empty() {
        listen.push("127.0.0.1:2526".parse().expect("valid"));
    }
    // The sink is a test peer: no limits of its own, quiet logs.
    for (k, v) in [
        ("smtp.hostname", "mxblast-sink.test"),
        ("smtp.max_connections", "1000000"),
        ("smtp.max_connections_per_ip", "1000000"),
        ("smtp.max_message_bytes", "2147483648"),
        ("smtp.max_recipients", "100000"),
        ("smtp.max_commands", "10000000"),
        ("log.stderr", "0"),
    ] {
        if let Some(knob) = mxguard_tuning::find(k) {
            knob.set(v)?;
        }
    }
    let tls = if tls {
        let dir = std::env::temp_dir().join(format!("mxblast-sink-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        mxguard_tls::ensure_self_signed(&c, &k, "mxblast-sink.test")?;
        Some(mxguard_tls::server_config(&c, &k, mxguard_tls::MinVersion::Tls12)?)
    } else {
        None
    };
    sink::run(listen, cores.max(1), opts, stats, tls, duration)
}

fn send(mut a: Args) -> Result<(), String> {
    let mut o = blast::BlastOptions {
        server: mxguard_relay::Dest { host: "127.0.0.1".into(), port: 2525 },
        conns: 10,
        messages: None,
        duration: None,
        size: 2048,
        dir: None,
        per_conn: 100,
        pipelining: true,
        starttls: false,
        implicit_tls: false,
        from: "blast@sender.example".into(),
        to: Vec::new(),
        rcpts: 1,
        run_id: format!("r{}", std::process::id()),
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        json: None,
        progress: false,
        idle: None,
        accepted: None,
        rate: None,
    };
    let mut hold = Duration::from_secs(10);
    let mut idle = None;
    while let Some(f) = a.0.next() {
        match f.as_str() {
            "--server" => o.server = mxguard_relay::routes::parse_dest(&a.value(&f)?)?,
            "-c" | "--connections" => o.conns = a.num(&f)?,
            "-m" | "--messages" => o.messages = Some(a.num(&f)?),
            "-d" | "--duration" => o.duration = Some(Duration::from_secs_f64(a.num(&f)?)),
            "-s" | "--size" => o.size = a.num(&f)?,
            "--dir" => o.dir = Some(a.value(&f)?.into()),
            "--per-conn" => o.per_conn = a.num(&f)?,
            "--no-pipelining" => o.pipelining = false,
            "--starttls" => o.starttls = true,
            "--implicit-tls" => o.implicit_tls = true,
            "--from" => o.from = a.value(&f)?,
            "--to" => o.to.push(a.value(&f)?),
            "--rcpts" => o.rcpts = a.num(&f)?,
            "--run" => o.run_id = a.value(&f)?,
            "--cores" => o.cores = a.num(&f)?,
            "--json" => o.json = Some(a.value(&f)?.into()),
            "--progress" => o.progress = true,
            "--accepted" => o.accepted = Some(a.value(&f)?.into()),
            "--rate" => o.rate = Some(a.num(&f)?),
            "--idle" => idle = Some(a.num::<usize>(&f)?),
            "--hold" => hold = Duration::from_secs_f64(a.num(&f)?),
            _ => return Err(format!("mxblast: unknown flag {f}")),
        }
    }
    if o.to.is_empty() {
        o.to.push("user@example.test".into());
    }
    if o.messages.is_none() && o.duration.is_none() {
        o.messages = Some(1000);
    }
    if o.run_id.contains(['-', '"', ' ']) {
        return Err("--run: letters and digits only".into());
    }
    o.idle = idle.map(|n| (n, hold));
    if let Some((n, _)) = o.idle {
        o.conns = n;
    }
    blast::run(o)
}

fn main() -> ExitCode {
    mxguard_smtpd::limits::raise_nofile();
    mxguard_smtpd::shutdown::install_stop_signals();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") || args.first().is_some_and(|a| a == "help") {
        println!("{}", manual::usage());
        return ExitCode::SUCCESS;
    }
    let cmd = if args.first().is_some_and(|a| !a.starts_with('-')) { args.remove(0) } else { "send".into() };
    let r = match cmd.as_str() {
        "manpage" => {
            println!("{}", manual::page().render(env!("CARGO_PKG_VERSION")).trim_end());
            Ok(())
        }
        "sink" => sink(Args(args.into_iter())),
        "send" => send(Args(args.into_iter())),
        _ => Err(format!("unknown command {cmd}\n{}", manual::usage())),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mxblast: {e}");
            ExitCode::FAILURE
        }
    }
}
