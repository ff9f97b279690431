//! The policy stage as the gateway runs it: per-connection state, the checks at connect,
//! HELO, MAIL and RCPT, and the per-recipient verdicts the end of data acts on.
//!
//! DNS checks of the client (DNSBL, rDNS) start at connect on their own task and are awaited
//! at the first MAIL, so they overlap the banner and EHLO round trips. Rejections are decided
//! at RCPT (as Postfix's smtpd_delay_reject): the log then names sender and recipient, and an
//! unfiltered recipient still gets mail that would be refused for the others. This module
//! decides nothing the verdict model does not explain: every refusal carries its symbols.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use mxguard_dns::Lookup;
use mxguard_policy::bans::{Bans, Why};
use mxguard_policy::domains::Resolved;
use mxguard_policy::greylist::Decision;
use mxguard_policy::pregreet::Passed;
use mxguard_policy::list::ipset::network_of;
use mxguard_policy::rate::Rates;
use mxguard_policy::{dnsbl, rules, tables, uribl};
use mxguard_smtp::Reply;
use mxguard_tuning as k;
use mxguard_verdict::{expand, Action, Force, TemplateVars, Thresholds, Unfiltered, Verdict};

/// One recipient accepted at RCPT, with what the checks found for it.
#[derive(Debug, Clone)]
pub struct RcptVerdict {
    pub address: String,
    pub verdict: Verdict,
    pub action: Action,
    /// The recipient is in the unfiltered list (and how spam is marked for it).
    pub unfiltered: Option<Unfiltered>,
}

impl RcptVerdict {
    /// The recipient's domain settings in `lists` (its own, else `*`'s).
    pub fn policy<'a>(&self, lists: &'a tables::Lists) -> Resolved<'a> {
        lists.domains.for_domain(self.address.rsplit_once('@').map(|x| x.1).unwrap_or(""))
    }
}

/// What the policy knows about one connection.
pub struct ConnPolicy {
    ip: IpAddr,
    conn: Verdict,
    /// DNSBL and rDNS, started at connect; taken at the first MAIL.
    dns: Option<glommio::task::JoinHandle<Verdict>>,
    /// The SPF temperror flag of the current transaction.
    spf_temp: bool,
    /// The SPF result of the current transaction's MAIL FROM (for DMARC), when checked.
    spf: Option<mail_auth::SpfOutput>,
    mail: Verdict,
    pub rcpts: Vec<RcptVerdict>,
    unknown: u32,
    /// A spam of this transaction was already counted for the ban.
    counted: bool,
}

/// The thresholds for a recipient domain: its own settings, else `*`'s, else the knobs.
pub fn thresholds(d: &Resolved<'_>) -> Thresholds {
    let subject = d.tag_subject().unwrap_or_else(|| k::VERDICT_TAG_MODE.get_str().eq_ignore_ascii_case("subject"));
    Thresholds {
        tag: d.tag_score().unwrap_or_else(|| k::VERDICT_TAG_SCORE.get_f64()),
        tag_action: if subject { Action::TagSubject } else { Action::TagHeader },
        quarantine: d.quarantine_score().unwrap_or_else(|| k::VERDICT_QUARANTINE_SCORE.get_f64()),
        reject: d.reject_score().unwrap_or_else(|| k::VERDICT_REJECT_SCORE.get_f64()),
    }
}

/// What the cores of a process share: bans, connection rates, pregreet passes.
pub struct Shared {
    pub bans: Bans,
    pub rates_ip: Rates,
    pub rates_net: Rates,
    pub pregreet: Passed,
}

/// The process's shared policy state.
pub fn shared() -> &'static Shared {
    static S: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();
    S.get_or_init(|| Shared { bans: Bans::new(), rates_ip: Rates::new(), rates_net: Rates::new(), pregreet: Passed::new() })
}

/// The per-core policy: connection states by connection id, and the process's shared state.
pub struct Screen {
    conns: RefCell<HashMap<u64, ConnPolicy>>,
    shared: &'static Shared,
    pub bans: &'static Bans,
}

impl Screen {
    pub fn new(shared: &'static Shared) -> Screen {
        Screen { conns: RefCell::new(HashMap::new()), shared, bans: &shared.bans }
    }

    /// `Some(421)` when `ip` or its network opened too many connections in the window.
    fn rate_limit(&self, ip: IpAddr, now: Instant) -> Option<Reply> {
        let window = std::time::Duration::from_secs(k::POLICY_CONN_RATE_WINDOW_S.get_u64());
        let host = k::SMTP_HOSTNAME.get_str();
        let per_ip = k::POLICY_CONN_RATE_PER_IP.get();
        if per_ip > 0 {
            let n = self.shared.rates_ip.hit(ip, now, window);
            if n as i64 > per_ip {
                rate_event(ip, "ip", n, window).emit();
                return Some(Reply::new(421, "4.7.0", format!("{host} Error: too many connections from {ip}")));
            }
        }
        let per_net = k::POLICY_CONN_RATE_PER_NET.get();
        if per_net > 0 {
            let prefix = if ip.is_ipv4() { k::POLICY_CONN_RATE_NET_PREFIX.get() as u8 } else { 64 };
            let net = network_of(ip, prefix);
            let n = self.shared.rates_net.hit(net, now, window);
            if n as i64 > per_net {
                rate_event(ip, "network", n, window).str("network", &format!("{net}/{prefix}")).emit();
                return Some(Reply::new(421, "4.7.0", format!("{host} Error: too many connections from your network {net}/{prefix}")));
            }
        }
        None
    }

    /// The pregreet wait for this connection: none for trusted and whitelisted clients and
    /// for clients that passed within `policy.pregreet_ttl_s`.
    pub fn pregreet_wait(&self, id: u64) -> std::time::Duration {
        let ms = k::POLICY_PREGREET_WAIT_MS.get_u64();
        if ms == 0 {
            return std::time::Duration::ZERO;
        }
        let m = self.conns.borrow();
        let Some(c) = m.get(&id) else { return std::time::Duration::ZERO };
        if c.conn.whitelisted() || self.shared.pregreet.passed(c.ip, Instant::now()) {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_millis(ms)
    }

    /// A client waited for the banner (remembered) or talked first (counted toward a ban).
    pub fn pregreet_result(&self, id: u64, talked: bool) {
        let Some(ip) = self.conns.borrow().get(&id).map(|c| c.ip) else { return };
        let now = Instant::now();
        if talked {
            mxguard_telemetry::Event::new("pregreet").str("client", &ip.to_string()).emit();
            if self.bans.spam(ip, now) {
                ban_event(ip, Why::RepeatedSpam).str("after", "pregreet").emit();
            }
        } else {
            self.shared.pregreet.remember(ip, now, std::time::Duration::from_secs(k::POLICY_PREGREET_TTL_S.get_u64()));
        }
    }

    /// A new connection: banned clients are refused at once, then connection rates; the rest
    /// get their DNS checks started.
    pub fn connect(&self, id: u64, ip: IpAddr) -> Option<Reply> {
        let now = Instant::now();
        if let Some(left) = self.bans.banned(ip, now) {
            let mins = left.as_secs().div_ceil(60);
            return Some(Reply::new(554, "5.7.1", format!("{ip} is temporarily blocked for sending spam; try again in {mins} minutes")));
        }
        let lists = tables::current();
        let mut conn = Verdict::new();
        let trusted = trusted(ip);
        if trusted {
            conn.force(Force::Pass("TRUSTED_NETWORK".into()));
        }
        if let Some(h) = lists.excluded.match_ip(ip) {
            conn.force(Force::Pass(format!("WL_IP:{}", h.entry)));
        }
        if !conn.whitelisted() {
            if let Some(r) = self.rate_limit(ip, now) {
                mxguard_telemetry::METRICS.conn_rate_refused.inc();
                return Some(r);
            }
        }
        let blocked = k::COUNTRY_BLACKLIST.get_str();
        if !trusted && !blocked.is_empty() {
            if let Some(cc) = mxguard_policy::country::of(ip).filter(|cc| mxguard_policy::country::listed(&blocked, cc)) {
                conn.add("COUNTRY_BL", k::COUNTRY_SCORE.get_f64(), format!("{ip} is in {cc}, a blacklisted country"));
            }
        }
        if let Some(h) = lists.ip_blacklist.match_ip(ip) {
            list_hit(&mut conn, "BL_IP", &format!("{ip} is in the IP blacklist ({}, line {})", h.entry, h.line), h.opts);
        }
        let dns = mxguard_dns::get().filter(|_| !trusted).map(|dns| {
            glommio::spawn_local(async move { client_dns(dns, ip).await }).detach()
        });
        self.conns.borrow_mut().insert(
            id,
            ConnPolicy { ip, conn, dns, spf_temp: false, spf: None, mail: Verdict::new(), rcpts: Vec::new(), unknown: 0, counted: false },
        );
        None
    }

    pub fn disconnect(&self, id: u64) {
        self.conns.borrow_mut().remove(&id);
    }

    pub fn helo(&self, id: u64, name: &str, client: IpAddr, local: IpAddr) {
        let scores = rules::HeloScores {
            bare_ip: k::POLICY_HELO_BARE_IP_SCORE.get_f64(),
            literal_mismatch: k::POLICY_HELO_LITERAL_MISMATCH_SCORE.get_f64(),
            not_fqdn: k::POLICY_HELO_NOT_FQDN_SCORE.get_f64(),
            forged_us: k::POLICY_HELO_FORGED_US_SCORE.get_f64(),
        };
        let mut v = Verdict::new();
        rules::helo(&mut v, name, client, &k::SMTP_HOSTNAME.get_str(), local, &scores);
        if let Some(c) = self.conns.borrow_mut().get_mut(&id) {
            for s in ["HELO_BARE_IP", "HELO_LITERAL_MISMATCH", "HELO_NOT_FQDN", "HELO_FORGED_US"] {
                if !v.has(s) && c.conn.has(s) {
                    // A second HELO replaces the first one's findings.
                    c.conn.add(s, 0.0, "superseded by a later HELO");
                }
            }
            c.conn.extend(&v);
        }
    }

    /// MAIL FROM: the connection's DNS results are collected, then the sender checks run.
    pub async fn mail(&self, id: u64, helo: &str, from: &str) {
        let (ip, dns) = {
            let mut m = self.conns.borrow_mut();
            let Some(c) = m.get_mut(&id) else { return };
            c.mail = Verdict::new();
            c.rcpts.clear();
            c.counted = false;
            c.spf_temp = false;
            c.spf = None;
            if c.conn.forces().iter().any(|f| matches!(f, Force::Pass(n) if n == "TRUSTED_NETWORK")) {
                return;
            }
            (c.ip, c.dns.take())
        };
        if let Some(task) = dns {
            if let Some(v) = task.await {
                if let Some(c) = self.conns.borrow_mut().get_mut(&id) {
                    c.conn.extend(&v);
                }
            }
        }
        let (v, spf) = sender_checks(ip, helo, from).await;
        let spf_temp = spf.as_ref().is_some_and(|s| s.result() == mail_auth::SpfResult::TempError);
        if v.forces().iter().any(|f| matches!(f, Force::Discard(n) if n == "HONEYPOT_DOMAIN")) && self.bans.ban(ip, Instant::now()) {
            ban_event(ip, Why::Honeypot).str("from", from).emit();
        }
        if let Some(c) = self.conns.borrow_mut().get_mut(&id) {
            c.mail = v;
            c.spf_temp = spf_temp;
            c.spf = spf;
        }
    }

    /// RCPT TO of a local domain: the recipient lists and envelope rules, then the decision.
    pub fn rcpt(&self, id: u64, from: &str, to: &str) -> Result<(), Reply> {
        let lists = tables::current();
        let mut m = self.conns.borrow_mut();
        let Some(c) = m.get_mut(&id) else { return Ok(()) };
        let ip = c.ip;
        if !lists.authorized_to.is_empty() && lists.authorized_to.match_address(to).is_none() {
            c.unknown += 1;
            let max = k::POLICY_DICTIONARY_UNKNOWN_MAX.get();
            if max > 0 && c.unknown as i64 >= max && self.bans.ban(ip, Instant::now()) {
                ban_event(ip, Why::DictionaryAttack).num("unknown_rcpts", c.unknown as u64).emit();
            }
            return Err(Reply::new(550, "5.1.1", format!("<{to}>: Recipient address rejected: User unknown")));
        }
        let mut v = Verdict::new();
        v.extend(&c.conn);
        v.extend(&c.mail);
        if let Some(h) = lists.to_blacklist.match_address(to) {
            if h.opts.honeypot {
                // The message is taken and dropped; the sender's address is banned (below,
                // unless the domain turned honeypots off).
                v.force(Force::Discard("HONEYPOT".into()));
                v.add("HONEYPOT", 0.0, format!("<{to}> is a honeypot address"));
            } else {
                list_hit(&mut v, "BL_TO", &format!("<{to}> is in the TO blacklist (line {})", h.line), h.opts);
            }
        }
        // The recipient's own lists (kept by the console; a release allows its sender).
        match mxguard_policy::user_lists::current().lookup(to, from) {
            Some(mxguard_policy::user_lists::Listed::Allowed) => {
                v.force(Force::Pass("USER_ALLOW".into()));
                v.add("USER_ALLOW", 0.0, format!("<{from}> is on <{to}>'s own allow list"));
            }
            Some(mxguard_policy::user_lists::Listed::Blocked) => {
                v.add("USER_BLOCK", k::SCORE_USER_BLOCK.get_f64(), format!("<{from}> is on <{to}>'s own block list"));
            }
            None => {}
        }
        let scores = rules::EnvelopeScores {
            empty_from: k::POLICY_EMPTY_FROM_SCORE.get_f64(),
            from_eq_to: k::POLICY_FROM_EQ_TO_SCORE.get_f64(),
            from_domain_eq_to_domain: k::POLICY_FROM_DOMAIN_EQ_TO_DOMAIN_SCORE.get_f64(),
            percent: k::POLICY_PERCENT_SCORE.get_f64(),
        };
        let inside = v.forces().iter().any(|f| matches!(f, Force::Pass(n) if n.starts_with("WL_IP")));
        rules::envelope(&mut v, from, to, inside, &scores);
        let unfiltered = lists.unfiltered.match_address(to).map(|h| {
            if h.opts.tag_subject {
                Unfiltered::TagSubject
            } else if h.opts.tag {
                Unfiltered::Tag
            } else {
                Unfiltered::Pass
            }
        });
        let domain = to.rsplit_once('@').map(|x| x.1).unwrap_or("");
        let policy = lists.domains.for_domain(domain);
        if policy.any_disabled() {
            v.retain(|name| policy.counts(name));
        }
        if v.forces().iter().any(|f| matches!(f, Force::Discard(n) if n == "HONEYPOT")) && self.bans.ban(ip, Instant::now()) {
            ban_event(ip, Why::Honeypot).str("rcpt", to).emit();
        }
        let action = v.action(&thresholds(&policy), unfiltered);
        if c.spf_temp && k::POLICY_SPF_TEMPERROR_TEMPFAIL.get_bool() && action != Action::Reject && unfiltered.is_none() {
            return Err(Reply::new(451, "4.7.24", "SPF record of the sender's domain could not be checked; try again later"));
        }
        if action == Action::Reject {
            self.count_spam(c);
            let reason = v.main_reason().map(|s| s.reason.clone()).unwrap_or_default();
            mxguard_telemetry::Event::new("rcpt_rejected")
                .str("client", &ip.to_string())
                .str("from", from)
                .str("rcpt", to)
                .str("reason", &reason)
                .str("score", &mxguard_verdict::fmt_score(v.score()))
                .str("symbols", &v.breakdown())
                .emit();
            let text = policy.reject_text(v.main_reason().map(|s| s.name.as_str()));
            return Err(rejection(&v, ip, from, to, text));
        }
        if action != Action::Discard && unfiltered.is_none() && !v.whitelisted() && policy.enabled("greylist") {
            let decision = crate::greylisting::check(ip, from, to);
            if decision == Some(Decision::Full) {
                mxguard_telemetry::METRICS.greylist_full.inc();
            }
            if let Some(Decision::Defer { retry_in_s, first }) = decision {
                mxguard_telemetry::METRICS.greylist_deferred.inc();
                mxguard_telemetry::Event::new("greylisted")
                    .str("client", &ip.to_string())
                    .str("from", from)
                    .str("rcpt", to)
                    .num("retry_in_s", retry_in_s)
                    .str("first", if first { "yes" } else { "no" })
                    .emit();
                return Err(Reply::new(451, "4.7.1", format!("<{to}>: Greylisted, please try again in {retry_in_s} seconds")));
            }
        }
        c.rcpts.push(RcptVerdict { address: to.to_string(), verdict: v, action, unfiltered });
        Ok(())
    }

    /// What message authentication needs of the transaction: `None` for a trusted client (not
    /// checked), else the SPF result of MAIL FROM when it was checked.
    pub fn auth_inputs(&self, id: u64) -> Option<Option<mail_auth::SpfOutput>> {
        let m = self.conns.borrow();
        let c = m.get(&id)?;
        if c.conn.forces().iter().any(|f| matches!(f, Force::Pass(n) if n == "TRUSTED_NETWORK")) {
            return None;
        }
        Some(c.spf.clone())
    }

    /// The recipients' verdicts of the transaction now ending.
    pub fn take_rcpts(&self, id: u64) -> Vec<RcptVerdict> {
        let mut m = self.conns.borrow_mut();
        let Some(c) = m.get_mut(&id) else { return Vec::new() };
        std::mem::take(&mut c.rcpts)
    }

    /// Adds the content findings to each recipient's verdict — those of checks the recipient's
    /// domain keeps on — and decides again. A whitelisted recipient's verdict keeps its pass.
    pub fn add_content(&self, rcpts: &mut [RcptVerdict], report: &mxguard_scan::Report) {
        let lists = tables::current();
        for r in rcpts.iter_mut() {
            let policy = r.policy(&lists);
            add_findings(&mut r.verdict, report, &policy);
            r.action = r.verdict.action(&thresholds(&policy), r.unfiltered);
        }
    }

    /// Adds the SURBL/URIBL listings of the message's links to the verdicts of the recipients
    /// whose domains keep the `uribl` check on, and decides again.
    pub fn add_uribl(&self, rcpts: &mut [RcptVerdict], listed: &[uribl::Listing]) {
        let lists = tables::current();
        for r in rcpts.iter_mut() {
            let policy = r.policy(&lists);
            if policy.enabled("uribl") {
                uribl::score(&mut r.verdict, listed);
                r.action = r.verdict.action(&thresholds(&policy), r.unfiltered);
            }
        }
    }

    /// The end-of-data refusal of a message every recipient's verdict rejects (the first
    /// recipient's domain picks the text).
    pub fn content_rejection(&self, ip: IpAddr, from: &str, r: &RcptVerdict) -> Reply {
        let lists = tables::current();
        let policy = r.policy(&lists);
        let text = policy.reject_text(r.verdict.main_reason().map(|s| s.name.as_str()));
        rejection(&r.verdict, ip, from, &r.address, text)
    }

    /// Ends the transaction's screening: counts it as spam toward the client's ban when any
    /// recipient's verdict says so, and bans at once on a honeypot keyword.
    pub fn end_transaction(&self, id: u64, rcpts: &[RcptVerdict], honeypot: bool) {
        let mut m = self.conns.borrow_mut();
        let Some(c) = m.get_mut(&id) else { return };
        // A whitelisted verdict (trusted network, excluded sender, keyword whitelist) is never
        // spam, whatever its symbols add up to.
        let spam = crate::traffic::is_spam(rcpts);
        if honeypot && self.bans.ban(c.ip, Instant::now()) {
            ban_event(c.ip, Why::Honeypot).str("by", "keyword").emit();
        }
        if spam {
            self.count_spam(c);
        }
    }

    /// Bans a client whose history (engine/traffic) crossed `reputation.ban_*`, unless it is
    /// banned already.
    pub fn ban_for_reputation(&self, ip: IpAddr) {
        let now = Instant::now();
        if self.bans.banned(ip, now).is_none() && self.bans.ban(ip, now) {
            ban_event(ip, Why::Reputation).emit();
        }
    }

    /// Counts the current transaction as one spam toward the client's ban, once.
    fn count_spam(&self, c: &mut ConnPolicy) {
        if !c.counted {
            c.counted = true;
            if self.bans.spam(c.ip, Instant::now()) {
                ban_event(c.ip, Why::RepeatedSpam).emit();
            }
        }
    }
}

/// Starts the SURBL/URIBL lookups of `domains` (they run once the caller yields); `None` when
/// no zone is configured, DNS is off, or no recipient's domain wants them.
pub fn start_uribl(domains: &[String], rcpts: &[RcptVerdict]) -> Option<glommio::task::JoinHandle<Vec<uribl::Listing>>> {
    if domains.is_empty() {
        return None;
    }
    let zones = uribl::parse_zones(&k::URIBL_SERVERS.get_str(), k::URIBL_WEIGHT.get_f64()).ok().filter(|z| !z.is_empty())?;
    let dns = mxguard_dns::get()?;
    let lists = tables::current();
    if !rcpts.iter().any(|r| r.policy(&lists).enabled("uribl")) {
        return None;
    }
    let domains: Vec<String> = domains.iter().take(k::URIBL_DOMAINS_MAX.get_usize()).cloned().collect();
    Some(glommio::spawn_local(async move {
        let (listed, failed) = uribl::lookup(dns, &domains, &zones).await;
        if !failed.is_empty() {
            mxguard_telemetry::Event::new("uribl_failed").list("zones", &failed).emit();
        }
        listed
    })
    .detach())
}

/// Adds to `v` the content findings (symbols and forces) of the checks `policy` keeps on.
pub fn add_findings(v: &mut Verdict, report: &mxguard_scan::Report, policy: &Resolved<'_>) {
    for f in report.found.iter().filter(|f| policy.enabled(f.check)) {
        v.add(f.symbol.name.clone(), f.symbol.score, f.symbol.reason.clone());
    }
    for (_, force) in report.forces.iter().filter(|(check, _)| policy.enabled(check)) {
        v.force(force.clone());
    }
}

/// The log line of a connection refused for its rate (callers add detail, then emit).
fn rate_event(ip: IpAddr, per: &str, n: u32, window: std::time::Duration) -> mxguard_telemetry::Event {
    mxguard_telemetry::Event::new("conn_rate")
        .str("client", &ip.to_string())
        .str("per", per)
        .num("connections", n as u64)
        .num("window_s", window.as_secs())
}

/// The log line of a new ban (callers add detail, then emit).
fn ban_event(ip: IpAddr, why: Why) -> mxguard_telemetry::Event {
    mxguard_telemetry::Event::new("ban").str("client", &ip.to_string()).str("why", why.as_str())
}

/// A list hit as symbol and forces: `:NULL` discards, `:NoNDR` keeps instead of bouncing.
fn list_hit(v: &mut Verdict, name: &str, reason: &str, opts: mxguard_policy::list::Opts) {
    v.add(name, k::POLICY_BLACKLIST_SCORE.get_f64(), reason);
    if opts.null {
        v.force(Force::Discard(name.to_string()));
    }
    if opts.no_ndr {
        v.force(Force::NoNdr(name.to_string()));
    }
}

/// The 5xx for a rejected recipient, from `text` (the domain's or check's own) or else
/// `verdict.reject_text`.
fn rejection(v: &Verdict, ip: IpAddr, from: &str, to: &str, text: Option<&str>) -> Reply {
    let reason = v.main_reason().map(|s| s.reason.as_str()).unwrap_or("policy");
    let ip_s = ip.to_string();
    let domain = from.rsplit_once('@').map(|x| x.1).unwrap_or("");
    let template = match text {
        Some(t) => t.to_string(),
        None => k::VERDICT_REJECT_TEXT.get_str().to_string(),
    };
    let template = template.replace("%Reason%", &reason.replace('%', "%%pct%%"));
    let text = expand(&template, &TemplateVars { ip: &ip_s, domain, email_to: to, email_from: from }).replace("%%pct%%", "%");
    // The enhanced code at the start of the text, if it is one a policy refusal may carry.
    const CODES: &[&str] = &["5.7.1", "5.7.0", "5.1.1", "5.1.0", "5.1.8", "5.7.23", "5.7.25", "5.7.27"];
    match text.split_once(' ') {
        Some((c, m)) => match CODES.iter().find(|x| **x == c) {
            Some(code) => Reply::new(550, *code, m.to_string()),
            None => Reply::new(550, "5.7.1", text.clone()),
        },
        None => Reply::new(550, "5.7.1", text.clone()),
    }
}

/// DNSBL and rDNS of the client, concurrently.
async fn client_dns(dns: &'static mxguard_dns::Dns, ip: IpAddr) -> Verdict {
    let mut v = Verdict::new();
    let servers = dnsbl::parse_servers(&k::DNSBL_SERVERS.get_str(), k::DNSBL_WEIGHT.get_f64()).unwrap_or_default();
    let rdns = async {
        let mut v = Verdict::new();
        match dns.ptr(ip).await {
            Lookup::None => v.add("RDNS_NONE", k::POLICY_RDNS_NONE_SCORE.get_f64(), format!("{ip} has no reverse DNS (PTR) name")),
            Lookup::Failed(e) => v.add("RDNS_DNS_FAIL", 0.0, format!("reverse DNS of {ip} failed: {e}")),
            Lookup::Found(names) => {
                let lists = tables::current();
                for n in &names {
                    if let Some(h) = lists.rdns_blacklist.match_name(n) {
                        list_hit(&mut v, "BL_RDNS", &format!("{ip} resolves to {n}, in the rDNS blacklist (line {})", h.line), h.opts);
                        break;
                    }
                }
                let mut confirmed = false;
                for n in names.iter().take(4) {
                    if let Lookup::Found(ips) = dns.ips(n).await {
                        if ips.contains(&ip) {
                            confirmed = true;
                            break;
                        }
                    }
                }
                if !confirmed {
                    v.add("RDNS_UNCONFIRMED", k::POLICY_RDNS_UNCONFIRMED_SCORE.get_f64(), format!("{ip} resolves to {} but no such name resolves back to it", names.join(",")));
                }
            }
        }
        v
    };
    let bl = async {
        let mut v = Verdict::new();
        if !servers.is_empty() {
            let (listed, failed) = dnsbl::lookup(dns, ip, &servers).await;
            dnsbl::score(&mut v, ip, &listed, k::DNSBL_MIN_MATCHES.get_usize());
            for f in failed {
                mxguard_telemetry::Event::new("dnsbl_error").str("client", &ip.to_string()).str("error", &f).emit();
            }
        }
        v
    };
    let (a, b) = futures_lite::future::zip(rdns, bl).await;
    v.extend(&a);
    v.extend(&b);
    v
}

/// Sender lists, sender MX, SPF. Returns the symbols and the SPF result (when DNS is on).
async fn sender_checks(ip: IpAddr, helo: &str, from: &str) -> (Verdict, Option<mail_auth::SpfOutput>) {
    let lists = tables::current();
    let mut v = Verdict::new();
    let domain = from.rsplit_once('@').map(|x| x.1.to_ascii_lowercase()).unwrap_or_default();
    if !from.is_empty() {
        if let Some(h) = lists.excluded_from.match_address(from) {
            v.force(Force::Pass(format!("WL_FROM:{}", h.entry)));
        }
        if let Some(h) = lists.excluded.match_name(&domain) {
            v.force(Force::Pass(format!("WL_DOMAIN:{}", h.entry)));
        }
        if let Some(h) = lists.domain_blacklist.match_name(&domain) {
            list_hit(&mut v, "BL_DOMAIN", &format!("sender domain {domain} is in the domain blacklist (line {})", h.line), h.opts);
            if h.opts.honeypot {
                // Taken and dropped; the client is banned (at MAIL, by the caller).
                v.force(Force::Discard("HONEYPOT_DOMAIN".into()));
            }
        }
        if let Some(h) = lists.from_blacklist.match_address(from) {
            list_hit(&mut v, "BL_FROM", &format!("sender <{from}> is in the FROM blacklist (line {})", h.line), h.opts);
        }
    }
    let Some(dns) = mxguard_dns::get() else { return (v, None) };
    if !domain.is_empty() && domain.contains('.') {
        let has_mx = match dns.mx(&domain).await {
            Lookup::Found(mx) => Some(!(mx.len() == 1 && mx[0].1.is_empty())),
            Lookup::None => match dns.ips(&domain).await {
                Lookup::Found(_) => Some(true),
                Lookup::None => Some(false),
                Lookup::Failed(_) => None,
            },
            Lookup::Failed(_) => None,
        };
        if has_mx == Some(false) {
            v.add("SENDER_NO_MX", k::POLICY_SENDER_NO_MX_SCORE.get_f64(), format!("sender domain {domain} has no MX or address records"));
        }
    }
    let host = k::SMTP_HOSTNAME.get_str();
    let helo_name = if helo.is_empty() { "unknown" } else { helo };
    let spf = dns.spf(ip, helo_name, &host, from).await;
    use mail_auth::SpfResult as R;
    let about = if from.is_empty() { format!("HELO {helo_name}") } else { domain.clone() };
    match spf.result() {
        R::Pass => v.add("SPF_PASS", k::POLICY_SPF_PASS_SCORE.get_f64(), format!("SPF of {about} allows {ip}")),
        R::Fail => v.add("SPF_FAIL", k::POLICY_SPF_FAIL_SCORE.get_f64(), format!("SPF of {about} does not allow {ip}")),
        R::SoftFail => v.add("SPF_SOFTFAIL", k::POLICY_SPF_SOFTFAIL_SCORE.get_f64(), format!("SPF of {about} softfails {ip}")),
        R::Neutral => v.add("SPF_NEUTRAL", k::POLICY_SPF_NEUTRAL_SCORE.get_f64(), format!("SPF of {about} is neutral about {ip}")),
        R::PermError => v.add("SPF_PERMERROR", k::POLICY_SPF_PERMERROR_SCORE.get_f64(), format!("SPF record of {about} is invalid")),
        R::TempError => v.add("SPF_TEMPERROR", 0.0, format!("SPF of {about} could not be checked (DNS)")),
        R::None => {}
    }
    (v, Some(spf))
}

/// Whether `ip` is in `policy.trusted_networks` (parsed once per change of the knob, per core).
pub(crate) fn trusted(ip: IpAddr) -> bool {
    use mxguard_policy::list::List;
    thread_local!(static CACHE: RefCell<(u64, Option<List>)> = const { RefCell::new((u64::MAX, None)) });
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let g = k::POLICY_TRUSTED_NETWORKS.generation();
        if c.0 != g {
            let text = k::POLICY_TRUSTED_NETWORKS.get_str().replace(',', "\n");
            c.1 = List::parse("policy.trusted_networks", &text).ok();
            c.0 = g;
        }
        c.1.as_ref().is_some_and(|l| l.match_ip(ip).is_some())
    })
}
