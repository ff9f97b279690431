//! DNS for every check (DNSBL, rDNS, sender MX, SPF, DKIM/ARC/DMARC in [`auth`], URIBL).
//!
//! One control-plane thread runs a single-threaded tokio runtime with hickory's resolver: its
//! cache honours TTLs (bounded by `dns.cache_entries`, negative answers kept at most
//! `dns.negative_ttl_max_s`), its nameservers and timeouts are knobs. A core asks by spawning
//! the lookup onto that runtime and awaiting the join handle: the executor never blocks, and a
//! thousand sessions waiting on DNS cost a thousand small futures, not threads.
//!
//! Answers are classified for policy use ([`Lookup`]): found, definitely none (NXDOMAIN or no
//! records: a fact a check may act on), or failed (timeout, SERVFAIL, refused: a check must
//! never treat a failure as a negative answer; it tempfails or skips, as its knob says).
//!
//! With `dns.nameservers` empty the servers are the system's (resolv.conf), re-read when that
//! file changes (checked every [`SYSTEM_CONF_CHECK`]): a node whose DHCP lease or seed names its
//! DNS servers only after the gateway started picks them up. A resolv.conf that names none (or
//! cannot be read) is not fatal: every lookup fails, as a timeout would, until it names some —
//! checks then tempfail or skip as their knobs say, and mail still flows.
//!
//! It must never be called from inside the DNS thread's own runtime with a blocking wait.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, Parameters, SpfOutput, SpfResult};
use mxguard_telemetry::log::Event;
use mxguard_tuning as k;

pub mod auth;
pub mod names;

/// The outcome of one lookup, as a policy check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    /// NXDOMAIN or no records of that type.
    None,
    /// Timeout, SERVFAIL, refused, network error: nothing is known.
    Failed(String),
}

impl<T> Lookup<T> {
    pub fn found(self) -> Option<T> {
        match self {
            Lookup::Found(t) => Some(t),
            _ => None,
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, Lookup::Failed(_))
    }
}

/// Resolver settings (from the `dns.*` knobs by [`Config::from_knobs`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// Empty: the system's resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    pub timeout: Duration,
    pub attempts: usize,
    pub cache_entries: u64,
    pub negative_ttl_max: Duration,
}

impl Config {
    pub fn from_knobs() -> Result<Config, String> {
        Ok(Config {
            nameservers: parse_nameservers(&k::DNS_NAMESERVERS.get_str())?,
            timeout: Duration::from_millis(k::DNS_TIMEOUT_MS.get_u64().max(1)),
            attempts: k::DNS_ATTEMPTS.get_usize().max(1),
            cache_entries: k::DNS_CACHE_ENTRIES.get_u64(),
            negative_ttl_max: Duration::from_secs(k::DNS_NEGATIVE_TTL_MAX_S.get_u64()),
        })
    }
}

/// `ip`, `ip:port` or `[v6]:port`, comma or space separated; port 53 by default.
pub fn parse_nameservers(s: &str) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for item in s.split([',', ' ']).map(str::trim).filter(|x| !x.is_empty()) {
        let addr = item
            .parse::<SocketAddr>()
            .or_else(|_| item.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
            .map_err(|_| format!("dns.nameservers: '{item}' is not ip or ip:port"))?;
        out.push(addr);
    }
    Ok(out)
}

/// How often the system's resolv.conf is looked at for a change (its size and modification time).
pub const SYSTEM_CONF_CHECK: Duration = Duration::from_secs(2);

/// The resolver service. Cheap to share: every method spawns onto the DNS thread.
pub struct Dns {
    rt: tokio::runtime::Handle,
    /// Replaced whole when the system's resolv.conf changes; a lookup in flight keeps its own.
    auth: Arc<RwLock<Arc<MessageAuthenticator>>>,
    /// Upper bound on any one call, whatever the resolver does inside.
    deadline: Duration,
}

static GLOBAL: OnceLock<Dns> = OnceLock::new();

/// Starts the DNS thread (once per process) and returns the service.
pub fn start(cfg: &Config) -> Result<&'static Dns, String> {
    if let Some(d) = GLOBAL.get() {
        return Ok(d);
    }
    let dns = Dns::new(cfg)?;
    Ok(GLOBAL.get_or_init(|| dns))
}

/// The service started by [`start`], if any.
pub fn get() -> Option<&'static Dns> {
    GLOBAL.get()
}

impl Dns {
    /// A service with a thread of its own (tests may make several).
    pub fn new(cfg: &Config) -> Result<Dns, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("dns runtime: {e}"))?;
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("dns".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .map_err(|e| format!("dns thread: {e}"))?;
        let (resolver, seen, event) = {
            let _guard = handle.enter();
            build_resolver(cfg)?
        };
        let auth = Arc::new(RwLock::new(Arc::new(MessageAuthenticator(resolver))));
        if let Some(e) = event {
            e.emit();
        }
        if cfg.nameservers.is_empty() {
            handle.spawn(watch_system_conf(cfg.clone(), seen, auth.clone()));
        }
        let deadline = cfg.timeout * (cfg.attempts as u32 + 1) + Duration::from_millis(500);
        Ok(Dns { rt: handle, auth, deadline })
    }

    /// Runs `f` on the DNS thread and awaits it from any executor.
    async fn run<T, F>(&self, f: impl FnOnce(Arc<MessageAuthenticator>) -> F) -> Lookup<T>
    where
        F: Future<Output = Lookup<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.submit(f).await
    }

    /// Starts `f` on the DNS thread now (not when first polled) and returns the wait for it.
    fn submit<T, F>(&self, f: impl FnOnce(Arc<MessageAuthenticator>) -> F) -> impl Future<Output = Lookup<T>> + 'static
    where
        F: Future<Output = Lookup<T>> + Send + 'static,
        T: Send + 'static,
    {
        let current = self.auth.read().unwrap_or_else(|e| e.into_inner()).clone();
        let fut = f(current);
        let deadline = self.deadline;
        let h = self.rt.spawn(async move {
            match tokio::time::timeout(deadline, fut).await {
                Ok(r) => r,
                Err(_) => Lookup::Failed("timed out".into()),
            }
        });
        async move {
            match h.await {
                Ok(r) => r,
                Err(e) => Lookup::Failed(format!("dns task: {e}")),
            }
        }
    }

    /// IPv4 and IPv6 addresses of `name`.
    pub async fn ips(&self, name: &str) -> Lookup<Vec<IpAddr>> {
        let name = names::fqdn(name);
        self.run(move |a| async move {
            match a.resolver().lookup_ip(name.as_str()).await {
                Ok(l) => nonempty(l.iter().collect()),
                Err(e) => classify(e),
            }
        })
        .await
    }

    /// IPv4 addresses only (DNSBL answers are `127.0.0.x`).
    pub async fn a(&self, name: &str) -> Lookup<Vec<Ipv4Addr>> {
        let name = names::fqdn(name);
        self.run(move |a| async move {
            match a.resolver().ipv4_lookup(name.as_str()).await {
                Ok(l) => nonempty(l.answers().iter().filter_map(|r| if let RData::A(a) = &r.data { Some(a.0) } else { None }).collect()),
                Err(e) => classify(e),
            }
        })
        .await
    }

    /// PTR names of `ip`, lower-case, without the trailing dot.
    pub async fn ptr(&self, ip: IpAddr) -> Lookup<Vec<String>> {
        self.run(move |a| async move {
            match a.resolver().reverse_lookup(names::reverse_name(ip).as_str()).await {
                Ok(l) => nonempty(
                    l.answers()
                        .iter()
                        .filter_map(|r| if let RData::PTR(p) = &r.data { Some(names::plain(&p.0.to_ascii())) } else { None })
                        .collect(),
                ),
                Err(e) => classify(e),
            }
        })
        .await
    }

    /// MX records of `domain` as (preference, exchange), lowest preference first.
    pub async fn mx(&self, domain: &str) -> Lookup<Vec<(u16, String)>> {
        let name = names::fqdn(domain);
        self.run(move |a| async move {
            match a.resolver().mx_lookup(name.as_str()).await {
                Ok(l) => {
                    let mut v: Vec<(u16, String)> = l
                        .answers()
                        .iter()
                        .filter_map(|r| if let RData::MX(m) = &r.data { Some((m.preference, names::plain(&m.exchange.to_ascii()))) } else { None })
                        .collect();
                    v.sort();
                    nonempty(v)
                }
                Err(e) => classify(e),
            }
        })
        .await
    }

    /// TXT strings of `name` (each record's strings joined).
    pub async fn txt(&self, name: &str) -> Lookup<Vec<String>> {
        let name = names::fqdn(name);
        self.run(move |a| async move {
            match a.resolver().txt_lookup(name.as_str()).await {
                Ok(l) => nonempty(
                    l.answers()
                        .iter()
                        .filter_map(|r| {
                            if let RData::TXT(t) = &r.data {
                                Some(t.txt_data.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect::<String>())
                            } else {
                                None
                            }
                        })
                        .collect(),
                ),
                Err(e) => classify(e),
            }
        })
        .await
    }

    /// SPF (RFC 7208) of a MAIL FROM, or of the HELO name when the sender is empty. A lookup
    /// that gets no answer in time is a `TempError`.
    pub async fn spf(&self, ip: IpAddr, helo: &str, host: &str, sender: &str) -> SpfOutput {
        let (helo, host, sender) = (helo.to_string(), host.to_string(), sender.to_string());
        let domain = sender.rsplit_once('@').map(|x| x.1.to_string()).unwrap_or_else(|| helo.clone());
        let r = self
            .run(move |a| async move {
                let params = if sender.is_empty() {
                    SpfParameters::verify_ehlo(ip, &helo, &host)
                } else {
                    SpfParameters::verify_mail_from(ip, &helo, &host, &sender)
                };
                Lookup::Found(a.verify_spf(Parameters::new(params)).await)
            })
            .await;
        match r {
            Lookup::Found(x) => x,
            _ => SpfOutput::new(domain).with_result(SpfResult::TempError),
        }
    }
}

/// What identifies a version of resolv.conf: its size and modification time (None: unreadable).
type ConfStamp = Option<(u64, std::time::SystemTime)>;

fn resolv_conf_stamp() -> ConfStamp {
    let m = std::fs::metadata("/etc/resolv.conf").ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// The system's resolver configuration, and the event to log once it is in use; with no
/// nameserver in it (or no readable file), an empty one, whose every lookup fails.
fn system_config() -> (ResolverConfig, Event) {
    match hickory_resolver::system_conf::read_system_conf() {
        Ok((c, _)) if !c.name_servers().is_empty() => {
            let servers: Vec<String> = c.name_servers().iter().map(|n| n.ip.to_string()).collect();
            let event = Event::new("dns_nameservers").str("source", "resolv.conf").str("servers", &servers.join(","));
            (c, event)
        }
        other => {
            let why = other.err().map_or_else(|| "it names no nameserver".to_string(), |e| e.to_string());
            let event = Event::new("dns_no_nameservers")
                .str("source", "resolv.conf")
                .str("reason", &why)
                .str("effect", "every DNS lookup fails until resolv.conf names a server (dns.nameservers overrides it)");
            (ResolverConfig::from_parts(None, vec![], Vec::<NameServerConfig>::new()), event)
        }
    }
}

/// Rebuilds the resolver when resolv.conf changes (the DNS thread's own task, for as long as
/// the process lives).
async fn watch_system_conf(cfg: Config, mut seen: ConfStamp, auth: Arc<RwLock<Arc<MessageAuthenticator>>>) {
    loop {
        tokio::time::sleep(SYSTEM_CONF_CHECK).await;
        let now = resolv_conf_stamp();
        if now == seen {
            continue;
        }
        // Not tried again until the file changes again, whether this build works or not.
        seen = now;
        match build_resolver(&cfg) {
            Ok((r, stamp, event)) => {
                // The version actually read (the file may have changed since `now`).
                seen = stamp;
                *auth.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(MessageAuthenticator(r));
                // Said once the new servers are the ones asked.
                if let Some(e) = event {
                    e.emit();
                }
            }
            Err(e) => Event::new("dns_reload_failed").str("reason", &e).emit(),
        }
    }
}

/// The resolver for `cfg`; with the system's servers, also the resolv.conf it read and the
/// event that says what it found there.
fn build_resolver(cfg: &Config) -> Result<(TokioResolver, ConfStamp, Option<Event>), String> {
    let mut stamp = None;
    let mut event = None;
    let config = if cfg.nameservers.is_empty() {
        stamp = resolv_conf_stamp();
        let (c, e) = system_config();
        event = Some(e);
        c
    } else {
        let servers = cfg
            .nameservers
            .iter()
            .map(|sa| {
                let mut udp = ConnectionConfig::udp();
                udp.port = sa.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = sa.port();
                let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                ns.connections = vec![udp, tcp];
                ns
            })
            .collect();
        ResolverConfig::from_name_servers(servers)
    };
    let mut opts = ResolverOpts::default();
    opts.timeout = cfg.timeout;
    opts.attempts = cfg.attempts;
    opts.cache_size = cfg.cache_entries;
    opts.negative_max_ttl = Some(cfg.negative_ttl_max);
    // Names are always fully qualified here: no search list, no /etc/hosts surprises.
    opts.ndots = 0;
    opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    opts.edns0 = true;
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map(|r| (r, stamp, event))
        .map_err(|e| format!("dns resolver: {e}"))
}

fn nonempty<T>(v: Vec<T>) -> Lookup<Vec<T>> {
    if v.is_empty() {
        Lookup::None
    } else {
        Lookup::Found(v)
    }
}

fn classify<T>(e: NetError) -> Lookup<T> {
    match &e {
        NetError::Dns(DnsError::NoRecordsFound(_)) => Lookup::None,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)) => Lookup::None,
        NetError::Dns(DnsError::ResponseCode(c)) => Lookup::Failed(format!("{c}")),
        NetError::Timeout => Lookup::Failed("timed out".into()),
        _ => Lookup::Failed(e.to_string()),
    }
}
