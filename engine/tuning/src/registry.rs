//! The registry: every knob of mxguard, defined once.
//!
//! Each entry is a `static` [`Knob`] with its sysctl-style name (unit last: `_s`, `_ms`, `_bytes`),
//! type, default, range, whether it can change live, and a one-line doc. `tuning/KNOBS.md` and
//! `tuning/mxguard.conf` are generated from this list (`mxguard sysctl --markdown`, `--conf`), and a
//! test fails when they are stale. Nothing else may define a tunable.

use crate::knob::Knob;

macro_rules! knob {
    (int $name:literal, $def:literal, $min:literal ..= $max:literal, $live:ident, $doc:literal) => {
        Knob::int($name, $def, stringify!($def), $min, $max, knob!(@live $live), $doc)
    };
    (float $name:literal, $def:literal, [$min:expr, $max:expr], $live:ident, $doc:literal) => {
        Knob::float($name, $def, stringify!($def), $min, $max, knob!(@live $live), $doc)
    };
    (bool $name:literal, $def:literal, $live:ident, $doc:literal) => {
        Knob::bool($name, $def, knob!(@live $live), $doc)
    };
    (text $name:literal, $def:literal, $live:ident, $doc:literal) => {
        Knob::text($name, $def, knob!(@live $live), $doc)
    };
    (@live live) => { true };
    (@live restart) => { false };
}

macro_rules! registry {
    ($( $id:ident { $($spec:tt)* } )*) => {
        $( pub static $id: Knob = knob!($($spec)*); )*
        /// Every knob, in documentation order.
        pub static ALL: &[&Knob] = &[ $( &$id ),* ];
    };
}

registry! {
    // ---- state -------------------------------------------------------------------------------
    STATE_DIR { text "state.dir", "mxguard-data", restart,
        "Directory holding the spool, logs, admin socket and generated TLS key (relative to the working directory unless absolute)." }

    // ---- SMTP listener ----------------------------------------------------------------------
    SMTP_LISTEN { text "smtp.listen", "127.0.0.1:2525", restart,
        "Addresses the SMTP server listens on (comma-separated ip:port; one SO_REUSEPORT socket per core each)." }
    SMTP_TLS_LISTEN { text "smtp.tls_listen", "", restart,
        "Addresses for implicit TLS (SMTPS, port 465 in production); empty disables it." }
    SMTP_HOSTNAME { text "smtp.hostname", "mxguard.example.test", live,
        "Fully qualified name shown in the banner, EHLO reply and Received: headers." }
    SMTP_CORES { int "smtp.cores", 0, 0..=1024, restart,
        "Executors (one pinned thread per core) serving SMTP and relay; 0 means one per online CPU." }
    SMTP_IO_MEMORY_BYTES { int "smtp.io_memory_bytes", 2_097_152, 65_536..=1_073_741_824, restart,
        "io_uring registered buffer memory per executor." }
    SMTP_MAX_CONNECTIONS { int "smtp.max_connections", 2000, 1..=1_000_000, live,
        "Concurrent inbound connections in total; a client beyond it gets 421 4.7.0 and is closed." }
    SMTP_MAX_CONNECTIONS_PER_IP { int "smtp.max_connections_per_ip", 50, 1..=1_000_000, live,
        "Concurrent inbound connections from one client IP; beyond it 421 4.7.0." }
    SMTP_MAX_COMMAND_LINE_BYTES { int "smtp.max_command_line_bytes", 4096, 512..=1_048_576, live,
        "Longest command line accepted (RFC 5321 allows 512 plus extension parameters); longer gets 500 5.5.2." }
    SMTP_MAX_DATA_LINE_BYTES { int "smtp.max_data_line_bytes", 1_048_576, 1000..=1_073_741_824, live,
        "Longest line inside a message; a message with a longer line is refused with 552 5.3.4 after its end." }
    SMTP_MAX_MESSAGE_BYTES { int "smtp.max_message_bytes", 52_428_800, 1024..=2_147_483_648, live,
        "Largest message accepted (advertised as SIZE); larger is refused with 552 5.3.4." }
    SMTP_MAX_RECIPIENTS { int "smtp.max_recipients", 1000, 1..=100_000, live,
        "Recipients per message; RCPT beyond it gets 452 4.5.3 (the client sends the rest in another transaction)." }
    SMTP_MAX_COMMANDS { int "smtp.max_commands", 10_000, 10..=10_000_000, live,
        "Commands per session; beyond it 421 4.7.0 and the connection is closed." }
    SMTP_MAX_ERRORS { int "smtp.max_errors", 20, 1..=1_000_000, live,
        "Error replies per session; beyond it 421 4.7.0 and the connection is closed." }
    SMTP_READ_TIMEOUT_S { int "smtp.read_timeout_s", 60, 1..=3600, live,
        "Time a client has to send one complete command (the reference products' ReadTimeout)." }
    SMTP_DATA_TIMEOUT_S { int "smtp.data_timeout_s", 120, 1..=3600, live,
        "Time without body progress after which a DATA/BDAT transfer is abandoned with 421." }
    SMTP_MIN_DATA_RATE_BPS { int "smtp.min_data_rate_bps", 500, 0..=1_000_000_000, live,
        "Body bytes per second a client must keep up; slower transfers time out (0 disables)." }
    SMTP_BUSY_LAG_US { int "smtp.busy_lag_us", 10_000, 0..=1_000_000, live,
        "A core whose 1 ms timer fires this much late is saturated: it holds new DATA/BDAT before the 354 until bodies in flight are answered (0 never holds). 10 ms keeps at least 0.45x the raw SMTP rate of this machine in both connection patterns with eod->250 p99 near 10-16 ms at saturation (benches/admission_gate.py); 500 us held back up to three quarters of the rate for a p99 of 6 ms no sender needs." }
    SMTP_BODY_PASS_MS { int "smtp.body_pass_ms", 200, 1..=600_000, live,
        "A body still arriving after this long stops counting against the smtp.busy_lag_us gate's limit (slow senders cannot hold others)." }
    SMTP_EVICT_STALLED_MS { int "smtp.evict_stalled_ms", 2000, 0..=3_600_000, live,
        "When a connection arrives and smtp.max_connections are all taken, the core closes (421) its connection that has waited longest for its client without progress (a complete command, a finished TLS handshake, a kilobyte of body), if that wait is longer than this, and the newcomer takes its place: a slowloris flood evicts itself instead of locking ordinary senders out. 0: never; a full table refuses newcomers." }
    SMTP_EVICT_PENALTY_S { int "smtp.evict_penalty_s", 60, 0..=86_400, live,
        "An address whose connection was evicted (smtp.evict_stalled_ms) is refused rather than let in by evicting another, while the table stays full, for this long: a reconnecting flood cannot take back every slot it frees. 0: no penalty." }
    SMTP_SESSION_TIMEOUT_S { int "smtp.session_timeout_s", 900, 10..=86_400, live,
        "Longest session from connect to close (IdleDisconnectMinutesTimeout)." }
    SMTP_REQUIRE_HELO { bool "smtp.require_helo", true, live,
        "Require HELO/EHLO before MAIL FROM (RequireHELOBeforeMAILFROM)." }
    SMTP_EHLO_ENABLED { bool "smtp.ehlo_enabled", true, live,
        "Answer EHLO with extensions; 0 makes EHLO fail so clients fall back to HELO (DisableEHLO)." }
    SMTP_STARTTLS { bool "smtp.starttls", true, live,
        "Offer STARTTLS." }
    SMTP_TLS_CERT_FILE { text "smtp.tls_cert_file", "", restart,
        "PEM certificate chain for STARTTLS and implicit TLS; empty generates a self-signed one in state.dir." }
    SMTP_TLS_KEY_FILE { text "smtp.tls_key_file", "", restart,
        "PEM private key for smtp.tls_cert_file." }
    SMTP_TLS_MIN_VERSION { int "smtp.tls_min_version", 12, 12..=13, restart,
        "Oldest TLS version offered to clients, for STARTTLS, implicit TLS and the console: 12 is TLS 1.2, 13 is TLS 1.3. TLS 1.0 and 1.1 are never offered (rustls has neither): a sender that knows nothing newer delivers in plaintext, as opportunistic SMTP TLS falls back, instead of over broken ciphers. Raising it to 13 pushes TLS 1.2-only senders to plaintext as well." }
    SMTP_SHUTDOWN_GRACE_S { int "smtp.shutdown_grace_s", 10, 0..=600, live,
        "On shutdown, time given to sessions in a transfer before they are closed with 421." }

    // ---- spool --------------------------------------------------------------------------------
    SPOOL_FSYNC { bool "spool.fsync", true, live,
        "fsync every message (file and directory) before answering 250; 0 is only for benchmarks of the rest." }
    SPOOL_SEGMENT_BYTES { int "spool.segment_bytes", 33_554_432, 1_048_576..=4_294_967_296, live,
        "Size of each pre-zeroed spool segment; a commit larger than half of it goes to a file of its own." }
    SPOOL_MIN_FREE_BYTES { int "spool.min_free_bytes", 104_857_600, 0..=1_099_511_627_776, live,
        "MAIL FROM is answered 452 4.3.1 (insufficient system storage) while the spool's filesystem has less than this free, plus the SIZE the client declared (Postfix's queue_minfree); a store that still meets a full disk gets 452 4.3.1 too, never 250. 0 turns the check at MAIL FROM off (the store still answers for a full disk)." }
    SPOOL_COMMIT_BATCH_MAX { int "spool.commit_batch_max", 256, 1..=65_536, live,
        "Most messages that share one group commit (their fsyncs are issued together)." }

    // ---- relay: domains, routes, queue ---------------------------------------------------------
    RELAY_DOMAINS { text "relay.domains", "example.test", live,
        "Local domains, comma-separated, each optionally with its route: domain[:host[:port]] (the reference products' syntax)." }
    RELAY_ALLOW_SENDER_ROUTING { bool "relay.allow_sender_routing", false, live,
        "Accept recipients at local domains whose local part routes elsewhere (user%other.example@local, other.example!user@local, \"user@other.example\"@local). Off, they are refused with 550 5.7.1 as Postfix's allow_untrusted_routing = no does: a mail server behind the gateway that honours the percent hack or bang paths would otherwise be an open relay." }
    RELAY_DOMAINS_FILE { text "relay.domains_file", "", live,
        "File of further local domains, one domain[:host[:port]] per line, # comments; re-read when it changes." }
    RELAY_DEFAULT_ROUTE { text "relay.default_route", "127.0.0.1:2526", live,
        "Destination host:port for local domains without a route of their own, and for DSNs to outside senders." }
    RELAY_BOUNCE_ROUTE { text "relay.bounce_route", "", live,
        "Destination host:port for delivery status notifications; empty routes them like any mail (NotificationSMTPServer)." }
    RELAY_HELO_NAME { text "relay.helo_name", "", live,
        "Name sent in EHLO to downstream servers; empty uses smtp.hostname." }
    RELAY_CONNECT_TIMEOUT_S { int "relay.connect_timeout_s", 30, 1..=600, live,
        "Time to establish a TCP connection to a downstream server." }
    RELAY_READ_TIMEOUT_S { int "relay.read_timeout_s", 60, 1..=3600, live,
        "Time to wait for each downstream reply (ReadTimeoutOutgoing)." }
    RELAY_DATA_DONE_TIMEOUT_S { int "relay.data_done_timeout_s", 600, 1..=3600, live,
        "Time to wait for the downstream reply to the end of a message." }
    RELAY_DEST_CONCURRENCY { int "relay.dest_concurrency", 20, 1..=10_000, live,
        "Simultaneous connections to one destination from the whole gateway (split across cores)." }
    RELAY_CONN_MAX_MESSAGES { int "relay.conn_max_messages", 100, 1..=1_000_000, live,
        "Messages sent over one downstream connection before it is closed and a new one opened." }
    RELAY_CONN_IDLE_S { int "relay.conn_idle_s", 5, 0..=3600, live,
        "Time an idle downstream connection is kept open for reuse." }
    RELAY_STARTTLS { bool "relay.starttls", true, live,
        "Use STARTTLS to downstream servers that offer it (opportunistic: the certificate is not verified)." }
    RELAY_PIPELINING { bool "relay.pipelining", true, live,
        "Pipeline MAIL, RCPT and DATA to downstream servers that offer PIPELINING." }
    RELAY_RETRY_MIN_S { int "relay.retry_min_s", 60, 1..=86_400, live,
        "First retry delay after a temporary failure; it doubles with each attempt." }
    RELAY_RETRY_MAX_S { int "relay.retry_max_s", 3600, 1..=86_400, live,
        "Longest delay between retries (Process queue every n minutes)." }
    RELAY_MAX_LIFETIME_H { int "relay.max_lifetime_h", 120, 0..=8760, live,
        "Hours a message is retried before it bounces; 0 retries forever (ExpireRetryQueueHours)." }
    RELAY_QUEUE_ON_4XX { bool "relay.queue_on_4xx", true, live,
        "Keep and retry a message the destination refused with 4xx; 0 bounces it at once (QueueIfDestinationError400)." }
    RELAY_QUEUE_ON_5XX { bool "relay.queue_on_5xx", false, live,
        "Keep and retry a message the destination refused with 5xx instead of bouncing it (QueueIfDestinationError500)." }
    RELAY_MAX_ACTIVE_BYTES { int "relay.max_active_bytes", 268_435_456, 1_048_576..=68_719_476_736, live,
        "Message bytes each core keeps in memory for delivery; beyond it messages are re-read from the spool." }

    // ---- DNS ----------------------------------------------------------------------------------
    DNS_ENABLED { bool "dns.enabled", true, restart,
        "Run the DNS-based checks (DNSBL, rDNS, sender MX, SPF); off for sites without a resolver, and for benchmarks of the other checks." }
    DNS_NAMESERVERS { text "dns.nameservers", "", restart,
        "Recursive resolvers to ask (ip or ip:port, comma-separated); empty uses /etc/resolv.conf (DNS Server)." }
    DNS_TIMEOUT_MS { int "dns.timeout_ms", 5000, 1..=60_000, restart,
        "Time to wait for one answer before trying again or giving up (DNSTimeout)." }
    DNS_ATTEMPTS { int "dns.attempts", 2, 1..=10, restart,
        "Tries per query across the nameservers before the lookup counts as failed." }
    DNS_CACHE_ENTRIES { int "dns.cache_entries", 65_536, 0..=10_000_000, restart,
        "Answers kept in the resolver cache, each for its TTL." }
    DNS_NEGATIVE_TTL_MAX_S { int "dns.negative_ttl_max_s", 300, 0..=86_400, restart,
        "Longest time a 'no such name' answer is cached, whatever the zone's SOA says." }

    // ---- verdict --------------------------------------------------------------------------------
    VERDICT_TAG_SCORE { float "verdict.tag_score", 5.0, [0.0, 10000.0], live,
        "Total score at which a message is delivered tagged as spam (0: never)." }
    VERDICT_TAG_MODE { text "verdict.tag_mode", "header", live,
        "How spam is tagged: 'header' adds verdict.tag_header, 'subject' prefixes verdict.subject_tag." }
    VERDICT_TAG_HEADER { text "verdict.tag_header", "X-SF-SPAM: Y", live,
        "Header added to tagged spam (Tag Spam & Deliver)." }
    VERDICT_SUBJECT_TAG { text "verdict.subject_tag", "SPAM:", live,
        "Prefix put before the subject of tagged spam (SPAMTagPrefix)." }
    VERDICT_QUARANTINE_SCORE { float "verdict.quarantine_score", 10.0, [0.0, 10000.0], live,
        "Total score at which a message is kept in the quarantine instead of delivered (0: never)." }
    VERDICT_REJECT_SCORE { float "verdict.reject_score", 15.0, [0.0, 10000.0], live,
        "Total score at which a recipient or message is refused with 5xx (0: never)." }
    VERDICT_REJECT_TEXT { text "verdict.reject_text", "5.7.1 Rejected: %Reason% (client %IP%)", live,
        "Text of policy rejections: enhanced code, then the message; %IP% %Domain% %EMailTo% %EMailFrom% %Reason% are filled in." }

    // ---- quarantine -----------------------------------------------------------------------------
    QUARANTINE_DB { text "quarantine.db", "quarantine.db", restart,
        "Where held messages are kept: a SQLite file (relative to state.dir unless absolute), or a postgresql://user:password@host/db URL shared by several gateways." }
    QUARANTINE_RETENTION_DAYS { int "quarantine.retention_days", 30, 1..=3650, live,
        "Days a held message is kept before it is deleted (checked hourly)." }

    // ---- lists ----------------------------------------------------------------------------------
    LISTS_DIR { text "lists.dir", "lists", restart,
        "Directory of the list files (ip-blacklist.txt, domain-blacklist.txt, ...), relative to state.dir unless absolute." }
    LISTS_CHECK_S { int "lists.check_s", 60, 1..=86_400, live,
        "How often the list files are checked for changes and reloaded (the reference products: every minute)." }

    // ---- policy ---------------------------------------------------------------------------------
    POLICY_TRUSTED_NETWORKS { text "policy.trusted_networks", "127.0.0.0/8, ::1", live,
        "Clients (addresses, CIDRs, comma-separated) exempt from every policy check and DNS lookup, as localhost is in the reference products." }
    POLICY_BLACKLIST_SCORE { float "policy.blacklist_score", 100.0, [-10000.0, 10000.0], live,
        "Score of an entry in a local blacklist (IP, domain, FROM, TO, rDNS)." }
    POLICY_REQUIRE_HELO { bool "policy.require_helo", true, live,
        "Refuse MAIL before HELO/EHLO (RequireHELOBeforeMAILFROM)." }
    POLICY_HELO_BARE_IP_SCORE { float "policy.helo_bare_ip_score", 1.0, [-10000.0, 10000.0], live,
        "Score of a HELO that is an address without brackets." }
    POLICY_HELO_LITERAL_MISMATCH_SCORE { float "policy.helo_literal_mismatch_score", 2.0, [-10000.0, 10000.0], live,
        "Score of a HELO address literal that is not the client's address." }
    POLICY_HELO_NOT_FQDN_SCORE { float "policy.helo_not_fqdn_score", 1.0, [-10000.0, 10000.0], live,
        "Score of a HELO name without a dot." }
    POLICY_HELO_FORGED_US_SCORE { float "policy.helo_forged_us_score", 8.0, [-10000.0, 10000.0], live,
        "Score of a HELO claiming to be this gateway." }
    POLICY_EMPTY_FROM_SCORE { float "policy.empty_from_score", 0.0, [-10000.0, 10000.0], live,
        "Score of an empty MAIL FROM (Reject if Empty Mail From: set to verdict.reject_score; bounces use it legitimately)." }
    POLICY_FROM_EQ_TO_SCORE { float "policy.from_eq_to_score", 0.0, [-10000.0, 10000.0], live,
        "Score when MAIL FROM equals the recipient (Reject if Mail From = Mail To)." }
    POLICY_FROM_DOMAIN_EQ_TO_DOMAIN_SCORE { float "policy.from_domain_eq_to_domain_score", 0.0, [-10000.0, 10000.0], live,
        "Score when a sender from outside uses the recipient's own domain (Reject if From Domain = To Domain)." }
    POLICY_PERCENT_SCORE { float "policy.percent_score", 100.0, [-10000.0, 10000.0], live,
        "Score of a '%' in a recipient address (Allow % in address: set 0 to allow)." }
    POLICY_RDNS_NONE_SCORE { float "policy.rdns_none_score", 2.0, [-10000.0, 10000.0], live,
        "Score when the client's address has no PTR record (Reject if no reverse DNS: set to verdict.reject_score)." }
    POLICY_RDNS_UNCONFIRMED_SCORE { float "policy.rdns_unconfirmed_score", 1.0, [-10000.0, 10000.0], live,
        "Score when no PTR name of the client resolves back to its address (forward-confirmed rDNS)." }
    POLICY_SENDER_NO_MX_SCORE { float "policy.sender_no_mx_score", 3.0, [-10000.0, 10000.0], live,
        "Score when the MAIL FROM domain has neither MX nor address records (the sender-MX check)." }
    POLICY_SPF_FAIL_SCORE { float "policy.spf_fail_score", 6.0, [-10000.0, 10000.0], live,
        "Score of SPF fail (set to verdict.reject_score to reject)." }
    POLICY_SPF_SOFTFAIL_SCORE { float "policy.spf_softfail_score", 2.0, [-10000.0, 10000.0], live,
        "Score of SPF softfail." }
    POLICY_SPF_NEUTRAL_SCORE { float "policy.spf_neutral_score", 0.0, [-10000.0, 10000.0], live,
        "Score of SPF neutral." }
    POLICY_SPF_PERMERROR_SCORE { float "policy.spf_permerror_score", 1.0, [-10000.0, 10000.0], live,
        "Score of an SPF record that cannot be evaluated." }
    POLICY_SPF_PASS_SCORE { float "policy.spf_pass_score", -1.0, [-10000.0, 10000.0], live,
        "Score of SPF pass (negative: evidence of a legitimate sender)." }
    POLICY_SPF_TEMPERROR_TEMPFAIL { bool "policy.spf_temperror_tempfail", false, live,
        "Answer 451 when SPF cannot be evaluated for a DNS failure, instead of going on without it." }
    POLICY_BAN_SPAM_COUNT { int "policy.ban_spam_count", 3, 0..=1_000_000, live,
        "Spams from one IP within policy.ban_window_min that ban it (IPCacheLimboCountTrigger; 0: never)." }
    POLICY_BAN_WINDOW_MIN { int "policy.ban_window_min", 10, 1..=100_000, live,
        "Window for counting spams per IP, minutes (IPCacheLimboTimeTrigger)." }
    POLICY_BAN_DURATION_MIN { int "policy.ban_duration_min", 60, 0..=1_000_000, live,
        "How long a banned IP is refused at connect, minutes (IPCacheBlacklistDuration; 0: no bans)." }
    POLICY_BAN_EXEMPT { text "policy.ban_exempt", "", live,
        "Addresses never banned, comma-separated (DoNotAddIPToHoneypot)." }
    POLICY_BAN_TABLE_MAX { int "policy.ban_table_max", 1_000_000, 1..=100_000_000, live,
        "Most client IPs tracked for bans; beyond it, entries without an active ban are forgotten." }
    POLICY_PREGREET_WAIT_MS { int "policy.pregreet_wait_ms", 1000, 0..=60_000, live,
        "Pre-greeting test: the banner's last line is held back this long and a client that talks first is refused with 554 5.5.1 (0: off)." }
    POLICY_PREGREET_TTL_S { int "policy.pregreet_ttl_s", 86_400, 0..=31_536_000, live,
        "Seconds a client that passed the pre-greeting test is not tested again (postscreen_greet_ttl)." }
    POLICY_CONN_RATE_WINDOW_S { int "policy.conn_rate_window_s", 60, 1..=86_400, live,
        "Window over which connection rates are counted (anvil_rate_time_unit)." }
    POLICY_CONN_RATE_PER_IP { int "policy.conn_rate_per_ip", 300, 0..=10_000_000, live,
        "Connections one client address may open per window; beyond it 421 4.7.0 (0: no limit)." }
    POLICY_CONN_RATE_PER_NET { int "policy.conn_rate_per_net", 0, 0..=10_000_000, live,
        "Connections one client network (policy.conn_rate_net_prefix) may open per window; beyond it 421 4.7.0 (0: no limit)." }
    POLICY_CONN_RATE_NET_PREFIX { int "policy.conn_rate_net_prefix", 24, 8..=32, live,
        "IPv4 prefix length of the network counted by policy.conn_rate_per_net; IPv6 clients are grouped by /64." }
    POLICY_DICTIONARY_UNKNOWN_MAX { int "policy.dictionary_unknown_max", 20, 0..=1_000_000, live,
        "Unknown recipients in one session that ban the client as a dictionary attack (0: never)." }

    // ---- country --------------------------------------------------------------------------------
    COUNTRY_DB { text "country.db", "", restart,
        "MaxMind DB file (GeoLite2/GeoIP2 Country or City) giving client countries, relative to state.dir unless absolute; re-read by mxguard reload; empty: no country checks." }
    COUNTRY_BLACKLIST { text "country.blacklist", "", live,
        "ISO 3166 codes of countries whose clients get country.score (Local Country Blacklist), comma-separated." }
    COUNTRY_SCORE { float "country.score", 100.0, [-10000.0, 10000.0], live,
        "Score of a client in a blacklisted country (symbol COUNTRY_BL)." }

    // ---- greylisting ---------------------------------------------------------------------------
    GREYLIST_ENABLED { bool "greylist.enabled", false, live,
        "Defer the first attempt of an unknown (client network, sender, recipient) triplet with 451 4.7.1." }
    GREYLIST_DELAY_S { int "greylist.delay_s", 300, 0..=86_400, live,
        "Seconds a new triplet must wait before a retry is accepted (postgrey: 300)." }
    GREYLIST_RETRY_WINDOW_H { int "greylist.retry_window_h", 48, 1..=720, live,
        "Hours within which the retry must come; later, the triplet starts over." }
    GREYLIST_PASS_TTL_DAYS { int "greylist.pass_ttl_days", 35, 1..=3650, live,
        "Days a passed triplet (and an auto-whitelisted network) is remembered after its last use." }
    GREYLIST_AUTO_WHITELIST { int "greylist.auto_whitelist", 5, 0..=1_000_000, live,
        "Passed triplets after which the client network is whitelisted from greylisting (0: never)." }
    GREYLIST_MAX_ENTRIES { int "greylist.max_entries", 2_000_000, 1..=1_000_000_000, live,
        "Triplets kept at most; when full, new triplets pass unrecorded (fail open) and are counted." }
    GREYLIST_IPV4_PREFIX { int "greylist.ipv4_prefix", 24, 8..=32, live,
        "Prefix length that groups IPv4 clients into one network for the triplet." }
    GREYLIST_IPV6_PREFIX { int "greylist.ipv6_prefix", 64, 16..=128, live,
        "Prefix length that groups IPv6 clients into one network for the triplet." }
    GREYLIST_FILE { text "greylist.file", "greylist.txt", restart,
        "Snapshot of the greylist table, relative to state.dir unless absolute; read at start, written periodically and at stop." }
    GREYLIST_SAVE_S { int "greylist.save_s", 60, 1..=86_400, live,
        "Seconds between snapshots (a crash forgets at most this much greylisting state)." }

    // ---- DNSBL ----------------------------------------------------------------------------------
    DNSBL_SERVERS { text "dnsbl.servers", "", live,
        "DNS blacklists: zone[,true][=weight] separated by ';' (',true': the zone expects the reversed address)." }
    DNSBL_WEIGHT { float "dnsbl.weight", 15.0, [-10000.0, 10000.0], live,
        "Score of a listing in a zone given without its own weight." }
    DNSBL_MIN_MATCHES { int "dnsbl.min_matches", 1, 1..=100, live,
        "Listings needed before DNSBL scores count (Min MAPS matches needed to reject)." }

    // ---- observability -------------------------------------------------------------------------
    METRICS_LISTEN { text "metrics.listen", "127.0.0.1:9125", restart,
        "Address of the Prometheus text endpoint (/metrics); empty disables it." }
    LOG_FILE { text "log.file", "mxguard.log", live,
        "Event log file (JSON lines), relative to state.dir unless absolute; empty logs to stderr only." }
    LOG_FLUSH_MS { int "log.flush_ms", 500, 0..=60_000, live,
        "Write buffered log lines to the file at most this often (0: at once); fewer, larger writes keep the log from delaying spool fsyncs on the same disk (RealtimeDiskLogging)." }
    LOG_STDERR { bool "log.stderr", true, live,
        "Copy every event line to stderr." }
    LOG_ROTATE_BYTES { int "log.rotate_bytes", 104_857_600, 0..=1_099_511_627_776, live,
        "Rotate the log file when it grows past this size (0: never by size)." }
    LOG_ROTATE_HOURS { int "log.rotate_hours", 24, 0..=8760, live,
        "Rotate the log file when it is this many hours old (RotateLogsEveryNNhours; 0: never by age)." }
    LOG_KEEP { int "log.keep", 14, 1..=10_000, live,
        "Rotated log files kept (mxguard.log.1 is the newest)." }
    ADMIN_SOCKET { text "admin.socket", "admin.sock", restart,
        "Unix socket for `mxguard sysctl` and `mxguard reload`, relative to state.dir unless absolute." }

    // ---- SURBL / URIBL ---------------------------------------------------------------------------
    URIBL_SERVERS { text "uribl.servers", "", live,
        "SURBL/URIBL zones for the domains messages link to, `zone[=weight]` separated by ; (e.g. multi.surbl.org; multi.uribl.com=8; dbl.spamhaus.org)." }
    URIBL_WEIGHT { float "uribl.weight", 10.0, [-10000.0, 10000.0], live,
        "Score of a URIBL_<ZONE> listing whose zone gives no weight of its own." }
    URIBL_DOMAINS_MAX { int "uribl.domains_max", 20, 1..=1000, live,
        "Linked domains of one message looked up (the first ones in sorted order); the rest are not." }

    // ---- message authentication (DKIM, ARC, DMARC) ------------------------------------------
    AUTH_ENABLED { bool "auth.enabled", true, live,
        "Verify DKIM signatures, the ARC chain and the From domain's DMARC policy at end of data, and add an Authentication-Results header (needs dns.enabled)." }
    AUTH_ARC_TRUSTED_SEALERS { text "auth.arc_trusted_sealers", "", live,
        "Domains whose passing ARC seal excuses a DMARC failure (mailing lists and forwarders you trust; comma-separated)." }
    DMARC_ENFORCE { bool "dmarc.enforce", true, live,
        "Apply the From domain's DMARC policy to failing mail: p=quarantine quarantines, p=reject gets dmarc.reject_action (a record with t=y counts one step lower)." }
    DMARC_REJECT_ACTION { text "dmarc.reject_action", "reject", live,
        "What p=reject does to failing mail: reject (550 5.7.1) or quarantine." }
    SCORE_DKIM_VALID { float "score.dkim_valid", -0.5, [-10000.0, 10000.0], live,
        "Score of DKIM_VALID: a DKIM signature verified." }
    SCORE_DKIM_INVALID { float "score.dkim_invalid", 1.0, [-10000.0, 10000.0], live,
        "Score of DKIM_INVALID: a DKIM signature failed (body or headers changed, bad key or signature)." }
    SCORE_DMARC_PASS { float "score.dmarc_pass", -1.0, [-10000.0, 10000.0], live,
        "Score of DMARC_PASS: the From domain is aligned with a passing SPF or DKIM identity." }
    SCORE_DMARC_FAIL { float "score.dmarc_fail", 2.0, [-10000.0, 10000.0], live,
        "Score of DMARC_FAIL: the From domain publishes DMARC and nothing aligned passed (the policy action comes on top)." }
    SCORE_ARC_FAIL { float "score.arc_fail", 1.0, [-10000.0, 10000.0], live,
        "Score of ARC_FAIL: the message carries a broken ARC chain." }

    // ---- antivirus (ClamAV) ---------------------------------------------------------------------
    AV_ENABLED { bool "av.enabled", true, live,
        "Scan each message with ClamAV (libclamav, in the gateway's own threads; needs the clamav build feature)." }
    AV_SIGNATURE_DIR { text "av.signature_dir", "/var/lib/clamav", restart,
        "Directory of ClamAV signature databases (.cvd/.cld from freshclam, .ndb/.hdb/.ldb of your own); reloaded when a file in it changes." }
    AV_RELOAD_CHECK_S { int "av.reload_check_s", 60, 1..=86_400, restart,
        "Seconds between looks at the signature directory for changed databases." }
    AV_THREADS { int "av.threads", 2, 1..=256, restart,
        "Threads scanning with ClamAV, off the SMTP cores (each scan is single-threaded)." }
    AV_QUEUE_MAX { int "av.queue_max", 256, 1..=100_000, restart,
        "Messages waiting for a ClamAV thread; a message beyond this gets the av.on_error treatment." }
    AV_TIMEOUT_MS { int "av.timeout_ms", 30_000, 100..=600_000, live,
        "Longest wait for a ClamAV answer, queueing included; later is an error (av.on_error)." }
    AV_MAX_SCAN_BYTES { int "av.max_scan_bytes", 104_857_600, 1_048_576..=4_294_967_296, restart,
        "Bytes ClamAV extracts and scans per message at most (MaxScanSize); beyond, the rest is not scanned." }
    AV_MAX_FILE_BYTES { int "av.max_file_bytes", 52_428_800, 1_048_576..=4_294_967_296, restart,
        "Largest single file (attachment or archive member) ClamAV scans (MaxFileSize)." }
    AV_MAX_RECURSION { int "av.max_recursion", 16, 1..=64, restart,
        "Nesting of archives and containers ClamAV unpacks (MaxRecursion)." }
    AV_MAX_FILES { int "av.max_files", 10_000, 1..=1_000_000, restart,
        "Files ClamAV extracts from one message at most (MaxFiles)." }
    AV_ACTION { text "av.action", "reject", live,
        "What happens to a message with a virus: reject (550 at end of data), quarantine or discard. Whitelists do not exempt it." }
    AV_ON_ERROR { text "av.on_error", "tempfail", live,
        "When ClamAV cannot answer a message (queue full, timeout, scan error): tempfail (451, the client retries) or accept (deliver unscanned, logged)." }
    AV_REQUIRED { bool "av.required", false, live,
        "Defer (451) all mail while no signatures are loaded (none in av.signature_dir, or a build without ClamAV); off: such mail passes unscanned with the symbol AV_UNCHECKED. The appliance turns it on." }
    SCORE_CLAMAV_VIRUS { float "score.clamav_virus", 100.0, [-10000.0, 10000.0], live,
        "Score of CLAMAV_VIRUS (the action is av.action whatever the score; the score shows in headers and quarantine)." }

    // ---- content scanning ----------------------------------------------------------------------
    SCAN_ENABLED { bool "scan.enabled", true, live,
        "Scan message content at end of data (MIME, keywords, rules, links, heuristics, attachments)." }
    SCAN_OFFLOAD_BYTES { int "scan.offload_bytes", 262_144, 0..=2_147_483_648, live,
        "Messages at least this big are scanned on the core's blocking threads, not on the core itself, so decoding pictures and opening archives never stalls the core's other sessions; smaller ones are scanned inline (cheaper than a thread hop)." }
    SCAN_TEXT_MAX_BYTES { int "scan.text_max_bytes", 262_144, 1024..=67_108_864, live,
        "Decoded text scanned for keywords, rules and links; the rest is not looked at (MaxMsgSizeForKeywordScan)." }
    SCAN_PARTS_MAX { int "scan.parts_max", 1000, 1..=100_000, live,
        "MIME parts looked at per message (nested messages included); more is the symbol MIME_TOO_MANY_PARTS." }
    SCAN_RECEIVED_HEADERS { bool "scan.received_headers", true, live,
        "Add the Received: headers to the text examined for keywords (ScanReceivedHeaders)." }
    SCAN_LINKS_MAX { int "scan.links_max", 500, 1..=100_000, live,
        "Links extracted and checked per message." }
    SCAN_PDF_MAX_BYTES { int "scan.pdf_max_bytes", 10_485_760, 0..=1_073_741_824, live,
        "PDF attachments up to this size (the first four of a message) are read for the links they carry (the URI actions of their link annotations, and links printed in the text of their first pages), which join the message's links; 0: none." }
    SCAN_PDF_PAGES_MAX { int "scan.pdf_pages_max", 4, 0..=1000, live,
        "The first pages of a PDF attachment whose text is read for printed links and whose pictures for QR codes (with scan.qr_codes, within scan.qr_pictures_max and scan.qr_max_pixels); 0: only the link annotations. Text costs about one pass over each page's content." }
    SCAN_QR_CODES { bool "scan.qr_codes", true, live,
        "Read QR codes in the message's pictures (PNG, JPEG, GIF): a link one carries joins the message's links (lists, URI blacklists, phishing checks, Bayes) and adds QR_LINK." }
    SCAN_QR_PICTURES_MAX { int "scan.qr_pictures_max", 4, 0..=100, live,
        "Pictures of a message read for QR codes at most: the first ones of its parts, then of its PDF attachments' pages, together." }
    SCAN_QR_MAX_PIXELS { int "scan.qr_max_pixels", 4_000_000, 1..=100_000_000, live,
        "A picture larger than this (width x height, from its header) is not read for QR codes; nor one of more than 3 bytes a pixel of this. Reading costs about 20-25 ms of one core a million pixels (benches/RESULTS.md), so mail that holds a picture is scanned on the blocking pool, off the core." }
    SCORE_GTUBE { float "score.gtube", 1000.0, [-10000.0, 10000.0], live,
        "Score of GTUBE: the Generic Test for Unsolicited Bulk Email string in the text (a test message every filter must reject)." }
    SCAN_KEYWORD_SCORE { float "scan.keyword_score", 100.0, [-10000.0, 10000.0], live,
        "Score of a keyword blacklist line that matches (symbol KEYWORD_BL; the reference rejects)." }
    SCAN_MIME_DEFECT_SCORE { float "scan.mime_defect_score", 1.0, [-10000.0, 10000.0], live,
        "Score of each MIME defect symbol (MIME_BAD_ENCODING, MIME_MISSING_BOUNDARY, MIME_8BIT_HEADER, MIME_TOO_MANY_PARTS, MIME_UNPARSEABLE)." }
    SCAN_BLOCKED_EXTENSIONS { text "scan.blocked_extensions", "exe,scr,pif,com,bat,cmd,cpl,dll,js,jse,vbs,vbe,wsf,wsh,hta,msi,msp,jar,iso,img,vhd,vhdx,lnk,ps1,psm1,reg,scf,msc,gadget,application,appref-ms,chm,hlp,inf,sct,ws,xll,one", live,
        "Attachment extensions blocked (comma-separated; lists/attachment-blacklist.txt adds more). Internet Shortcuts (url, website) not listed are read and blocked only when they point off the web." }
    SCAN_ARCHIVE_DEPTH_MAX { int "scan.archive_depth_max", 3, 0..=20, live,
        "Archives inside archives opened; deeper is the symbol ARCHIVE_TOO_DEEP." }
    SCAN_ARCHIVE_ENTRIES_MAX { int "scan.archive_entries_max", 1000, 1..=1_000_000, live,
        "Entries per archive; more is the symbol ARCHIVE_BOMB." }
    SCAN_ARCHIVE_RATIO_MAX { int "scan.archive_ratio_max", 100, 2..=100_000, live,
        "Compression ratio of an archive entry over 1 MiB beyond which it is a bomb." }
    SCAN_ARCHIVE_BYTES_MAX { int "scan.archive_bytes_max", 104_857_600, 1_048_576..=4_294_967_296, live,
        "Bytes all archives of a message may inflate to; more is the symbol ARCHIVE_BOMB." }
    SCORE_ATTACH_BLOCKED_EXT { float "score.attach_blocked_ext", 100.0, [-10000.0, 10000.0], live,
        "Score of ATTACH_BLOCKED_EXT: a blocked attachment extension (or a disk image)." }
    SCORE_ATTACH_SHORTCUT { float "score.attach_shortcut", 1.5, [-10000.0, 10000.0], live,
        "Score of ATTACH_SHORTCUT: an Internet Shortcut (.url) that points only at the web, a link sent as a file (its link is checked like any other)." }
    SCORE_ATTACH_SHORTCUT_UNSAFE { float "score.attach_shortcut_unsafe", 100.0, [-10000.0, 10000.0], live,
        "Score of ATTACH_SHORTCUT_UNSAFE: an Internet Shortcut pointing at a file share, a file: URL or another protocol, or one that cannot be read." }
    SCORE_ATTACH_EXECUTABLE { float "score.attach_executable", 100.0, [-10000.0, 10000.0], live,
        "Score of ATTACH_EXECUTABLE: an executable attachment by its magic bytes." }
    SCORE_ATTACH_DOUBLE_EXT { float "score.attach_double_ext", 100.0, [-10000.0, 10000.0], live,
        "Score of ATTACH_DOUBLE_EXT: a double extension hiding an executable (invoice.pdf.exe)." }
    SCORE_ATTACH_TYPE_MISMATCH { float "score.attach_type_mismatch", 8.0, [-10000.0, 10000.0], live,
        "Score of ATTACH_TYPE_MISMATCH: an attachment whose name lies about its type." }
    SCORE_ARCHIVE_BLOCKED_ENTRY { float "score.archive_blocked_entry", 100.0, [-10000.0, 10000.0], live,
        "Score of ARCHIVE_BLOCKED_ENTRY: a blocked or executable file inside an archive." }
    SCORE_ARCHIVE_ENCRYPTED { float "score.archive_encrypted", 3.0, [-10000.0, 10000.0], live,
        "Score of ARCHIVE_ENCRYPTED: a password-protected archive, which cannot be scanned (BlockArchivesWithPassword: set to the reject score)." }
    SCORE_ARCHIVE_BOMB { float "score.archive_bomb", 100.0, [-10000.0, 10000.0], live,
        "Score of ARCHIVE_BOMB: an archive beyond the entry, ratio or size limits." }
    SCORE_ARCHIVE_TOO_DEEP { float "score.archive_too_deep", 5.0, [-10000.0, 10000.0], live,
        "Score of ARCHIVE_TOO_DEEP: archives nested deeper than scan.archive_depth_max." }
    SCORE_ARCHIVE_UNREADABLE { float "score.archive_unreadable", 2.0, [-10000.0, 10000.0], live,
        "Score of ARCHIVE_UNREADABLE: an archive that cannot be read." }
    SCORE_URL_TEXT_MISMATCH { float "score.url_text_mismatch", 6.0, [-10000.0, 10000.0], live,
        "Score of PHISH_TEXT_MISMATCH: a link whose text names another domain than its target." }
    SCORE_URL_IP_LITERAL { float "score.url_ip_literal", 3.0, [-10000.0, 10000.0], live,
        "Score of URL_IP_LITERAL: a link to a bare IP address that is not PHISH_IP_LINK (a plain-text URL, an image)." }
    SCORE_URL_IP_LINK { float "score.url_ip_link", 4.0, [-10000.0, 10000.0], live,
        "Score of PHISH_IP_LINK: a clickable HTML link or form to a bare IP address, or a link to one whose path asks to log in or verify." }
    SCORE_URL_ODD_PORT { float "score.url_odd_port", 3.0, [-10000.0, 10000.0], live,
        "Score of PHISH_ODD_PORT: a clickable link or form to a web server on a port other than 80 and 443." }
    SCORE_URL_DOMAIN_IN_PATH { float "score.url_domain_in_path", 4.0, [-10000.0, 10000.0], live,
        "Score of PHISH_DOMAIN_IN_PATH: a link whose path names another site's host (evil.example/signin.ebay.com/)." }
    SCORE_URL_BRAND_NAME { float "score.url_brand_name", 3.0, [-10000.0, 10000.0], live,
        "Score of PHISH_BRAND_NAME: the From display name is a protected brand the address is not, in a message about that brand." }
    SCORE_URL_ACCOUNT_ELSEWHERE { float "score.url_account_elsewhere", 4.0, [-10000.0, 10000.0], live,
        "Score of PHISH_ACCOUNT_ELSEWHERE: mail from an organisation naming itself in its subject or display name links to a login or verification page on another site." }
    SCORE_URL_OBFUSCATED { float "score.url_obfuscated", 5.0, [-10000.0, 10000.0], live,
        "Score of PHISH_OBFUSCATED_URL: a link with tabs or line breaks hidden inside its address (browsers drop them, filters may not)." }
    SCORE_URL_BRAND_IN_PATH { float "score.url_brand_in_path", 4.0, [-10000.0, 10000.0], live,
        "Score of PHISH_BRAND_IN_PATH: a link to another site keeps its page in a folder named like a protected brand or the sender." }
    SCORE_URL_USERINFO { float "score.url_userinfo", 5.0, [-10000.0, 10000.0], live,
        "Score of URL_USERINFO: a link with user@ before its host." }
    SCORE_URL_LOOKALIKE { float "score.url_lookalike", 10.0, [-10000.0, 10000.0], live,
        "Score of PHISH_LOOKALIKE: a punycode host imitating a protected brand." }
    SCORE_URL_SHORTENER { float "score.url_shortener", 1.0, [-10000.0, 10000.0], live,
        "Score of URL_SHORTENER: a link through a URL shortener." }
    SCORE_PHISH_HOSTED_PAGE { float "score.phish_hosted_page", 2.5, [-10000.0, 10000.0], live,
        "Score of PHISH_HOSTED_PAGE: a link to a sign-in, account or document page (or one named for a protected brand) on shared hosting or cloud storage (hosting-domains.txt and the built-in set)." }
    SCORE_QR_LINK { float "score.qr_link", 2.0, [-10000.0, 10000.0], live,
        "Score of QR_LINK: a picture in the message carries a QR code with a link (the link itself is judged as any other)." }
    SCORE_ATTACH_APPLE_PROFILE { float "score.attach_apple_profile", 3.0, [-10000.0, 10000.0], live,
        "Score of ATTACH_APPLE_PROFILE: an Apple configuration profile (.mobileconfig) attached; opened, it installs certificates, VPNs or accounts." }
    SCORE_REPLYTO_ELSEWHERE { float "score.replyto_elsewhere", 0.5, [-10000.0, 10000.0], live,
        "Score of REPLYTO_ELSEWHERE: Reply-To on another registrable domain than From (outside mailing lists)." }
    SCORE_REPLYTO_FREEMAIL { float "score.replyto_freemail", 2.5, [-10000.0, 10000.0], live,
        "Score of REPLYTO_FREEMAIL: replies elsewhere from a protected brand or a free-mail account, or to a free-mail account from an organisation." }
    SCORE_BODY_REMOTE_IMAGE { float "score.body_remote_image", 1.5, [-10000.0, 10000.0], live,
        "Score of BODY_REMOTE_IMAGE: an HTML body with almost no text and a picture loaded from the web." }
    SCORE_BODY_IMAGE_HOST { float "score.body_image_host", 1.5, [-10000.0, 10000.0], live,
        "Score of BODY_IMAGE_HOST: that picture is on a public image host (image-hosts.txt and the built-in set)." }
    SCORE_URL_FORM { float "score.url_form", 4.0, [-10000.0, 10000.0], live,
        "Score of PHISH_FORM: an HTML form asking for a password, card or account, posting to another site than the sender's." }
    SCORE_URL_BRAND_IN_HOST { float "score.url_brand_in_host", 4.0, [-10000.0, 10000.0], live,
        "Score of PHISH_BRAND_IN_HOST: a link whose host spells the sender's or a protected brand's name inside another domain." }
    SCORE_URL_BRAND_SENDER { float "score.url_brand_sender", 3.0, [-10000.0, 10000.0], live,
        "Score of PHISH_BRAND_SENDER: mail whose From is a protected brand links to another domain." }
    SCORE_URL_BLACKLIST { float "score.url_blacklist", 100.0, [-10000.0, 10000.0], live,
        "Score of URL_BL: a link to a host of lists/url-blacklist.txt." }
    SCORE_HEUR_SUBJECT_SPACES { float "score.heur_subject_spaces", 2.0, [-10000.0, 10000.0], live,
        "Score of HEUR_SUBJECT_SPACES: more blank runs in the subject than heuristics.subject_spaces_max." }
    SCORE_HEUR_MISSING_DATE { float "score.heur_missing_date", 1.5, [-10000.0, 10000.0], live,
        "Score of HEUR_MISSING_DATE: no Date header." }
    SCORE_HEUR_MISSING_MESSAGE_ID { float "score.heur_missing_message_id", 1.5, [-10000.0, 10000.0], live,
        "Score of HEUR_MISSING_MESSAGE_ID: no Message-ID header." }
    SCORE_HEUR_MISSING_FROM { float "score.heur_missing_from", 2.0, [-10000.0, 10000.0], live,
        "Score of HEUR_MISSING_FROM: no From address." }
    SCORE_HEUR_DATE_FUTURE { float "score.heur_date_future", 2.0, [-10000.0, 10000.0], live,
        "Score of HEUR_DATE_FUTURE: a Date more than a day ahead of when the message was sent (its newest Received field of another server, else its arrival)." }
    SCORE_HEUR_DATE_PAST { float "score.heur_date_past", 1.0, [-10000.0, 10000.0], live,
        "Score of HEUR_DATE_PAST: a Date more than five years before the message was sent (its newest Received field of another server, else its arrival)." }
    SCORE_HEUR_HTML_ONLY_SHORT { float "score.heur_html_only_short", 1.5, [-10000.0, 10000.0], live,
        "Score of HEUR_HTML_ONLY_SHORT: HTML without a text part and little text." }
    SCORE_HEUR_SUBJECT_CAPS { float "score.heur_subject_caps", 1.5, [-10000.0, 10000.0], live,
        "Score of HEUR_SUBJECT_CAPS: a subject mostly in capitals." }
    SCORE_HEUR_SUBJECT_EXCLAIM { float "score.heur_subject_exclaim", 1.0, [-10000.0, 10000.0], live,
        "Score of HEUR_SUBJECT_EXCLAIM: !!! in the subject." }
    SCORE_HEUR_FORGED_OUTLOOK { float "score.heur_forged_outlook", 3.0, [-10000.0, 10000.0], live,
        "Score of HEUR_FORGED_OUTLOOK: X-Mailer claims Outlook without Outlook's headers." }
    SCORE_HEUR_FROM_NAME_ADDRESS { float "score.heur_from_name_address", 4.0, [-10000.0, 10000.0], live,
        "Score of HEUR_FROM_NAME_ADDRESS: the From name shows an address of another domain." }
    SCORE_HEUR_BASE64_TEXT { float "score.heur_base64_text", 0.5, [-10000.0, 10000.0], live,
        "Score of HEUR_BASE64_TEXT: text sent base64-encoded (FilterBase64html: set to the reject score)." }
    SCORE_HEUR_EMPTY_BODY { float "score.heur_empty_body", 1.0, [-10000.0, 10000.0], live,
        "Score of HEUR_EMPTY_BODY: no text and no attachment." }
    // ---- Bayes (engine/bayes) -----------------------------------------------------------------
    BAYES_ENABLED { bool "bayes.enabled", true, live,
        "Classify every scanned message with the learnt token table (BAYES_SPAM / BAYES_HAM)." }
    BAYES_FILE { text "bayes.file", "bayes.db", restart,
        "The token table's snapshot (in state.dir unless absolute)." }
    BAYES_MAX_TOKENS { int "bayes.max_tokens", 2000000, 1024..=1_000_000_000, live,
        "Tokens the table holds at most (24 bytes a slot, slots a power of two at a load of at most 3/4: 2 M tokens take 96 MiB, in huge pages where the kernel allows and resident from the start, twice that while stale tokens are evicted); the least recently learnt are dropped as it fills. A change applies within bayes.snapshot_s." }
    BAYES_MIN_LEARNED { int "bayes.min_learned", 200, 1..=100_000_000, live,
        "Spam and ham messages each that must have been learnt before Bayes gives any verdict (the reference's MinEmailsForBayesKickIn, 5000 there)." }
    BAYES_SPAM_THRESHOLD { float "bayes.spam_threshold", 0.95, [0.5, 1.0], live,
        "A message whose spam probability is at least this gets BAYES_SPAM, scored in proportion up to score.bayes_spam at 1.0." }
    BAYES_HAM_THRESHOLD { float "bayes.ham_threshold", 0.05, [0.0, 0.5], live,
        "A message whose spam probability is at most this gets BAYES_HAM, scored in proportion up to score.bayes_ham at 0.0." }
    SCORE_BAYES_SPAM { float "score.bayes_spam", 8.0, [-10000.0, 10000.0], live,
        "Score of BAYES_SPAM at probability 1.0 (less near bayes.spam_threshold)." }
    SCORE_BAYES_HAM { float "score.bayes_ham", -3.0, [-10000.0, 10000.0], live,
        "Score of BAYES_HAM at probability 0.0 (less near bayes.ham_threshold)." }
    BAYES_AUTOLEARN { bool "bayes.autolearn", true, live,
        "Learn from the gateway's own verdicts: mail scoring at least bayes.autolearn_spam_score as spam, at most bayes.autolearn_ham_score as ham (Bayes's own score left out), honeypot hits as spam." }
    BAYES_AUTOLEARN_SPAM_SCORE { float "bayes.autolearn_spam_score", 12.0, [-10000.0, 10000.0], live,
        "A message whose every recipient's score (without BAYES_*) is at least this is learnt as spam." }
    BAYES_AUTOLEARN_HAM_SCORE { float "bayes.autolearn_ham_score", -1.0, [-10000.0, 10000.0], live,
        "A message whose every recipient's score (without BAYES_*) is at most this is learnt as ham (the default asks for evidence of good mail, such as DKIM and DMARC passing, not just no spam signs)." }
    BAYES_REPORT_SPAM_ADDRESS { text "bayes.report_spam_address", "", live,
        "Mail sent to this address (from policy.trusted_networks only) is learnt as spam, not delivered: the messages attached to it as message/rfc822, or the mail itself. Empty: off." }
    BAYES_REPORT_HAM_ADDRESS { text "bayes.report_ham_address", "", live,
        "Mail sent to this address (from policy.trusted_networks only) is learnt as ham, not delivered. Empty: off." }
    BAYES_SNAPSHOT_S { int "bayes.snapshot_s", 300, 1..=86400, live,
        "The table is written to bayes.file this often when something was learnt (and at shutdown, or sooner when the journal outgrows it); the journal holds what was learnt since." }
    BAYES_JOURNAL_SYNC_MS { int "bayes.journal_sync_ms", 1000, 0..=60000, live,
        "Lessons are appended to the journal beside bayes.file and fsync'd this often (0: after every lesson); a crash, even kill -9, loses at most this much learning." }
    BAYES_EXPIRE_DAYS { int "bayes.expire_days", 180, 0..=36500, live,
        "Tokens not learnt for this many days are dropped (checked once a day; 0: never by age). Independently, when the table holds 90 % of bayes.max_tokens the least recently learnt are dropped down to 75 %." }
    BAYES_SEEN_MAX { int "bayes.seen_max", 1_000_000, 0..=100_000_000, live,
        "Learnt messages remembered (a 64-bit digest of their tokens, about 30 bytes each): one learnt again the same way is not counted twice, one learnt the other way (a released false positive that auto-learn took as spam) is first taken back. The oldest are forgotten past this; 0: off, every lesson counts." }
    BAYES_LR_RATE { float "bayes.lr_rate", 32.0, [0.0, 1000.0], live,
        "Learning rate of the logistic regression learnt beside the token counts (one step a lesson; its answer is averaged in log-odds with the counts' chi-square one). 0: the counts alone." }
    BAYES_REINFORCE_MARGIN { float "bayes.reinforce_margin", 0.2, [0.0, 0.5], live,
        "A message a person labelled (mxguard learn, a report address, a quarantine decision) that Bayes, just before the lesson, judged on the wrong side of this margin (spam under 1 - margin, ham over it) was misjudged and is learnt again (train on error with a thick threshold); auto-learnt mail is learnt once; 0: off." }
    BAYES_REINFORCE_MAX { int "bayes.reinforce_max", 2, 0..=3, live,
        "A misjudged message (bayes.reinforce_margin) is learnt at most this many more times, each only while Bayes would still misjudge it; 0: off, every message learnt once." }
    BAYES_QUEUE { int "bayes.queue", 10000, 16..=1_000_000, restart,
        "Lessons (messages to learn) waiting for the learner thread at most; auto-learning past it is skipped and counted (mxguard_bayes_lessons_lost); learning from files and reports waits." }

    // ---- learned symbol weights (engine/weights, engine/bayes/src/weighted.rs) -----------------------
    WEIGHTS_ENABLED { bool "weights.enabled", true, live,
        "Score content with learned weights once weights.min_lessons lessons of each kind are kept: a logistic model over the content symbols and Bayes' log-odds, fitted on the messages people labelled (mxguard learn, report addresses, quarantine release and report-spam; never auto-learnt mail), the hand-set scores as its prior. Off, or before enough lessons: the hand-set scores. Lessons are recorded either way." }
    WEIGHTS_MIN_LESSONS { int "weights.min_lessons", 200, 1..=100_000_000, live,
        "Spam and ham lessons each that must be kept before the learned weights score mail." }
    WEIGHTS_LESSONS_MAX { int "weights.lessons_max", 50_000, 100..=10_000_000, live,
        "Lessons kept for fitting at most (the newest; about 100 bytes each on disk, a few hundred in memory). A fit, with its cross-validation, takes about 0.2 s of one core per 1,000 lessons (0.71 s for 4,231 in benches/RESULTS.md), at the lowest priority, off the cores." }
    WEIGHTS_REFIT_LESSONS { int "weights.refit_lessons", 100, 1..=1_000_000, live,
        "The weights are fitted again after this many new lessons (and at start-up, and at the end of mxguard learn)." }
    WEIGHTS_LESSONS_FILE { text "weights.lessons_file", "weights.lessons", restart,
        "The lessons the weights are fitted on, one a line, appended as they are learnt (in state.dir unless absolute)." }
    WEIGHTS_MODEL_FILE { text "weights.model_file", "weights.model", restart,
        "The last fitted model (in state.dir unless absolute), read by mxguard weights and mxguard explain; written atomically after each fit." }
    WEIGHTS_PINNED { text "weights.pinned", "GTUBE,CLAMAV_*,KEYWORD_BL,KEYWORD_WL,URL_BL,BULK_KNOWN,IMAGE_KNOWN_SPAM,ATTACH_BLOCKED_EXT,ATTACH_EXECUTABLE,ATTACH_DOUBLE_EXT,ATTACH_SHORTCUT_UNSAFE,ARCHIVE_BLOCKED_ENTRY,ARCHIVE_BOMB", live,
        "Symbols that keep their hand-set score and are never inputs of the learned model (comma-separated; NAME_* matches a prefix): the ones that must force an outcome whatever the rest says, and those an admin's own list decides (keywords, URL, bulk and picture lists)." }

    // ---- image spam (engine/scan/src/images.rs) -------------------------------------------------
    IMAGE_THRESHOLD { int "image.threshold", 10, 0..=15, live,
        "Image filter threshold (SpamImageThreshold): 0 turns the text-likeness test off, 15 is the most aggressive; a picture is IMAGE_SPAM when its likeness (0-15) plus this exceeds 15." }
    IMAGE_COLOR_SENSITIVITY { int "image.color_sensitivity", 20, 0..=255, live,
        "Sampled colours differing by at most this much in every channel count as one shade (SpamImageColorSensitivity)." }
    IMAGE_MIN_WIDTH { int "image.min_width", 300, 0..=65535, live,
        "Pictures narrower than this are not scanned: logos and signatures (SpamImageMinWidth)." }
    IMAGE_MIN_HEIGHT { int "image.min_height", 300, 0..=65535, live,
        "Pictures lower than this are not scanned (SpamImageMinHeight)." }
    IMAGE_SAMPLING_POINTS { int "image.sampling_points", 200, 16..=100_000, live,
        "Points of a picture measured for colours and sharp edges (SpamImageSamplingPoints)." }
    IMAGE_PASS_MULTI_IMAGE { bool "image.pass_multi_image", true, live,
        "A message with more than one picture big enough to be scanned skips the text-likeness test (SpamImagePassMultiImage); known spam pictures are still caught." }
    IMAGE_SAMPLE_PERCENT { int "image.sample_percent", 100, 0..=100, live,
        "Percentage of the eligible pictures decoded, chosen by a hash of their bytes (the same picture always gets the same treatment)." }
    IMAGE_MAX_BYTES { int "image.max_bytes", 4194304, 0..=1_073_741_824, live,
        "Pictures larger than this (encoded) are not decoded." }
    IMAGE_MAX_PIXELS { int "image.max_pixels", 4000000, 0..=1_000_000_000, live,
        "Pictures of more pixels than this (width x height, from the header) are not decoded; bounds the decoder's memory (up to 4 bytes a pixel) and time (pictures are decoded on the core)." }
    IMAGE_MAX_PER_MESSAGE { int "image.max_per_message", 8, 0..=1000, live,
        "Pictures decoded per message at most; the rest are only sized." }
    IMAGE_HASH_DISTANCE { int "image.hash_distance", 6, 0..=32, live,
        "A picture whose 64-bit perceptual hash differs from one of lists/image-hashes.txt in at most this many bits is IMAGE_KNOWN_SPAM." }
    SCORE_IMAGE_SPAM { float "score.image_spam", 3.0, [-10000.0, 10000.0], live,
        "Score of IMAGE_SPAM: a big picture that looks like text on a plain background." }
    SCORE_IMAGE_KNOWN_SPAM { float "score.image_known_spam", 10.0, [-10000.0, 10000.0], live,
        "Score of IMAGE_KNOWN_SPAM: a picture near a hash of lists/image-hashes.txt (learnt with mxguard image-hash --learn)." }
    SCORE_IMAGE_ANIMATED { float "score.image_animated", 0.5, [-10000.0, 10000.0], live,
        "Score of IMAGE_ANIMATED: a scanned-size GIF of several frames." }
    SCORE_IMAGE_CORRUPT { float "score.image_corrupt", 1.0, [-10000.0, 10000.0], live,
        "Score of IMAGE_CORRUPT: a PNG, JPEG or GIF part that does not decode." }
    HEUR_SUBJECT_SPACES_MAX { int "heuristics.subject_spaces_max", 5, 0..=1000, live,
        "Runs of two or more blanks (or tabs) allowed in a subject (Max number of spaces in subject line; 0: off)." }
    HEUR_HTML_SHORT_CHARS { int "heuristics.html_short_chars", 200, 0..=100_000, live,
        "An HTML-only message with less visible text than this is HEUR_HTML_ONLY_SHORT." }

    // ---- bulk fingerprints and reputation (engine/traffic) --------------------------------------
    BULK_WINDOW_S { int "bulk.window_s", 3600, 60..=604800, live,
        "Copies of the same text are counted over a window this long (seconds; sliding: a text stops counting one to two windows after its last copy)." }
    BULK_MIN_SOURCES { int "bulk.min_sources", 10, 0..=250, live,
        "A text sent by at least this many distinct client addresses within bulk.window_s is BULK (0: off). Newsletters come from a few addresses, botnet runs from many." }
    BULK_SPAM_SCORE { float "bulk.spam_score", 12.0, [-10000.0, 10000.0], live,
        "A message scoring at least this for every recipient (BAYES_*, BULK_* and REP_* left out), or hitting a honeypot, marks its text as spam: copies within bulk.window_s get BULK_SPAM (the first of a run is analysed, the rest recognised)." }
    BULK_MIN_WORDS { int "bulk.min_words", 20, 3..=100000, live,
        "Texts of fewer words than this get no fingerprint (short texts look alike without being copies)." }
    BULK_MAX_KEYS { int "bulk.max_keys", 1000000, 1024..=100_000_000, live,
        "Fingerprint bands counted at most (about 60 bytes each; four per message); past it idle and one-off texts are forgotten first." }
    SCORE_BULK { float "score.bulk", 2.0, [-10000.0, 10000.0], live,
        "Score of BULK: the same text from bulk.min_sources or more client addresses within bulk.window_s." }
    SCORE_BULK_SPAM { float "score.bulk_spam", 6.0, [-10000.0, 10000.0], live,
        "Score of BULK_SPAM: the same text as a message judged spam within bulk.window_s." }
    SCORE_BULK_KNOWN { float "score.bulk_known", 8.0, [-10000.0, 10000.0], live,
        "Score of BULK_KNOWN: the text matches a signature of lists/bulk-signatures.txt (learnt with mxguard bulk-signature --learn)." }
    REPUTATION_WINDOW_S { int "reputation.window_s", 21600, 60..=604800, live,
        "Client addresses, their /24 (/48 for IPv6) and authenticated sender domains are judged on this much history (seconds; sliding: a sender that stops sending spam is forgotten one to two windows later, the reference's 6-24 h aging)." }
    REPUTATION_MIN_MESSAGES { int "reputation.min_messages", 5, 1..=1_000_000, live,
        "Messages a client address (twice as many for its network, as many for a domain) must have sent within the window before its spam ratio counts." }
    REPUTATION_SPAM_RATIO { float "reputation.spam_ratio", 0.8, [0.0, 1.0], live,
        "A sender whose share of spam within the window is at least this gets REP_IP_SPAM, REP_NET_SPAM or REP_DOMAIN_SPAM." }
    REPUTATION_GOOD_MESSAGES { int "reputation.good_messages", 20, 0..=1_000_000, live,
        "A client address that sent at least this many messages within the window, none of them spam, gets REP_IP_GOOD (0: off)." }
    REPUTATION_RECIPIENTS { int "reputation.recipients", 1000, 0..=100_000_000, live,
        "A client address that sent to at least this many recipients within the window gets REP_IP_RECIPIENTS (send volume; 0: off)." }
    REPUTATION_BAN_MESSAGES { int "reputation.ban_messages", 20, 0..=1_000_000, live,
        "A client address that sent at least this many messages within the window, a share of reputation.ban_ratio or more of them spam, is put on the temporary ban list (policy.ban_duration_min; 0: off)." }
    REPUTATION_BAN_RATIO { float "reputation.ban_ratio", 0.95, [0.0, 1.0], live,
        "Spam share over reputation.ban_messages or more messages that bans a client address." }
    REPUTATION_MAX_KEYS { int "reputation.max_keys", 1000000, 1024..=100_000_000, live,
        "Senders (addresses, networks, domains) remembered at most; past it idle and one-off senders are forgotten first." }
    SCORE_REP_IP_SPAM { float "score.rep_ip_spam", 4.0, [-10000.0, 10000.0], live,
        "Score of REP_IP_SPAM: the client address sent mostly spam within reputation.window_s." }
    SCORE_REP_NET_SPAM { float "score.rep_net_spam", 2.0, [-10000.0, 10000.0], live,
        "Score of REP_NET_SPAM: the client's /24 (/48) sent mostly spam within reputation.window_s." }
    SCORE_REP_DOMAIN_SPAM { float "score.rep_domain_spam", 3.0, [-10000.0, 10000.0], live,
        "Score of REP_DOMAIN_SPAM: the sender domain, when SPF passed for it, sent mostly spam within reputation.window_s." }
    SCORE_REP_IP_GOOD { float "score.rep_ip_good", -1.0, [-10000.0, 10000.0], live,
        "Score of REP_IP_GOOD: the client address sent reputation.good_messages or more, none spam, within the window." }
    SCORE_REP_IP_RECIPIENTS { float "score.rep_ip_recipients", 1.0, [-10000.0, 10000.0], live,
        "Score of REP_IP_RECIPIENTS: the client address sent to reputation.recipients or more recipients within the window." }

    // ---- web console (engine/console) -----------------------------------------------------------
    CONSOLE_LISTEN { text "console.listen", "127.0.0.1:8025", restart,
        "Address of the web console and its JSON API (HTTPS unless console.tls is 0; a thread of its own apart from the cores); empty disables it." }
    CONSOLE_TLS { bool "console.tls", true, restart,
        "Serve the console over HTTPS with the gateway's certificate (smtp.tls_cert_file, or the self-signed one made in state.dir/tls); 0: plain HTTP (keep it on loopback)." }
    CONSOLE_URL { text "console.url", "", live,
        "The console's address as users reach it, for the digest's links (empty: https://smtp.hostname:PORT of console.listen)." }
    CONSOLE_DIGEST_HOUR { int "console.digest_hour", 7, -1..=23, live,
        "Hour of the day (UTC) at which every recipient with mail held since their last digest gets one, with signed release links; -1: no digests." }
    CONSOLE_DB { text "console.db", "console.db", restart,
        "The console's accounts, API tokens and users' allow/block lists: a SQLite file (in state.dir unless absolute) or a postgresql:// URL (with several gateways, the quarantine's)." }
    CONSOLE_LISTS_REFRESH_S { int "console.lists_refresh_s", 30, 1..=3600, live,
        "With a shared PostgreSQL console database: seconds between rereads of users' allow/block lists, so changes made on another gateway reach this one's cores." }
    CONSOLE_LOGIN_LINK_H { int "console.login_link_h", 72, 1..=720, live,
        "Hours a digest's one-time login link works (it logs its recipient in once, as an end user)." }
    CONSOLE_PREVIEW_MAX_KB { int "console.preview_max_kb", 1024, 16..=65536, live,
        "KiB of a held message's HTML part the console cleans and shows (sanitised, no remote content); a longer part is cut there." }
    CONSOLE_SESSION_MIN { int "console.session_min", 60, 1..=10080, live,
        "A console session ends after this many minutes without a request." }
    CONSOLE_LOGIN_FAILURES { int "console.login_failures", 5, 1..=1000, live,
        "Failed logins from one address (or for one account) within 15 minutes before further attempts are refused for 15 minutes." }
    SCORE_USER_BLOCK { float "score.user_block", 100.0, [-10000.0, 10000.0], live,
        "Score of USER_BLOCK: the sender is on the recipient's own block list (kept in the console)." }
}
