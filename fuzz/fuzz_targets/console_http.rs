//! The web console and its JSON API, over real HTTP: the console is started in this process once
//! (plain HTTP on 127.0.0.1, SQLite databases in a temporary directory, a held message, a
//! superadmin and an end user logged in, an API token), and each input becomes one request on a
//! connection of its own — through hyper's parser, the routing, the forms, the cookie, the
//! bearer token and every operation the request reaches, with the rights of whoever sent it.
//!
//! Input, first byte: 0xFF — the rest is sent as it is (raw HTTP, any bytes). Otherwise the first
//! byte chooses the method (low 3 bits), whether the superadmin's or the end user's session
//! cookie goes with it (bits 3, 4), whether the session's CSRF token is appended to the form
//! (bit 5), whether the API token goes with it (bit 6) and a JSON content type (bit 7); the rest
//! is the request target up to the first LF (bytes a target may not hold are percent-encoded,
//! so the fuzzer reaches the routes) and the body after it.
//!
//! Properties: never a panic, anywhere in the process; every request is answered (within
//! ANSWER_WITHIN: a bound for a hang, not for speed — campaigns run at nice 19 beside builds that
//! starve them for seconds at a time; a request that took 1 s alone missed a 10 s bound so);
//! every answer the console itself gives (to a request hyper could parse) is HTTP/1.1 with the
//! console's security headers (a Content-Security-Policy and `nosniff`), and is never a 500;
//! and no request makes a file appear beside the state the console was given (a list file's
//! name never walks out of the lists directory).
//! Requests come from 127.0.0.2 so that failed logins the fuzzer makes never throttle the
//! harness's own (from 127.0.0.1).
#![no_main]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mxguard_console::users::{Account, Role, Users};
use mxguard_quarantine::{Entry, Location, Store};

const ADMIN: &str = "fz-root-5c1e@fuzz.example";
const USER: &str = "ann@example.test";
const PASSWORD: &str = "fuzz-harness-Pa55word";

struct Session {
    cookie: String,
    csrf: String,
}

struct Console {
    addr: SocketAddr,
    dir: PathBuf,
    bearer: String,
    admin: Mutex<Option<Session>>,
    user: Mutex<Option<Session>>,
}

/// How long a request may go unanswered before it counts as a hang: under libFuzzer's own
/// `-timeout=60` of the campaign, so that a hang is reported with the request that hung.
const ANSWER_WITHIN: Duration = Duration::from_secs(45);

/// Sends `request` from `from` and reads the answer to the end. `close_write`: end the request
/// with a half close (raw bytes, which may never form a complete request); a well-formed one
/// says `Connection: close` instead, because hyper closes at once on a half-closed connection.
fn exchange(from: Ipv4Addr, to: SocketAddr, request: &[u8], close_write: bool) -> Vec<u8> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::new(IpAddr::V4(from), 0).into()).expect("bind a loopback source");
    sock.connect(&to.into()).expect("the console accepts");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(ANSWER_WITHIN)).expect("timeout");
    // A write may fail once the console has answered and closed (a body it refused): the
    // answer is still there to read.
    let _ = s.write_all(request);
    if close_write {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
            panic!("no answer within {ANSWER_WITHIN:?} to {:?}", String::from_utf8_lossy(&request[..request.len().min(300)]))
        }
        Err(_) => {} // reset after a refusal: what was read stands
    }
    out
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    let head = resp.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl Console {
    fn login(&self, email: &str) -> Option<Session> {
        let body = format!("email={}&password={}", email.replace('@', "%40"), PASSWORD);
        let req = format!("POST /login HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        let resp = String::from_utf8_lossy(&exchange(Ipv4Addr::LOCALHOST, self.addr, req.as_bytes(), false)).into_owned();
        let cookie = header(&resp, "set-cookie")?.split(';').next()?.to_string();
        let req = format!("GET / HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n");
        let page = String::from_utf8_lossy(&exchange(Ipv4Addr::LOCALHOST, self.addr, req.as_bytes(), false)).into_owned();
        let at = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
        let csrf = page[at..].split('"').next()?.to_string();
        Some(Session { cookie, csrf })
    }

    /// The account as the harness made it (the fuzzer may have removed or changed it).
    fn restore(&self, email: &str, role: Role) {
        let loc = Location::Sqlite(self.dir.join("console.db"));
        if let Ok(mut users) = Users::open(&loc) {
            let _ = users.put(&Account { email: email.into(), role, domains: vec!["example.test".into()], members: vec![] }, PASSWORD);
        }
    }

    fn session(&self, admin: bool) -> Option<(String, String)> {
        let (slot, email, role) = if admin { (&self.admin, ADMIN, Role::Superadmin) } else { (&self.user, USER, Role::User) };
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = self.login(email).or_else(|| {
                self.restore(email, role);
                self.login(email)
            });
        }
        slot.as_ref().map(|s| (s.cookie.clone(), s.csrf.clone()))
    }

    fn forget(&self, admin: bool) {
        *(if admin { &self.admin } else { &self.user }).lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn console() -> &'static Console {
    static C: OnceLock<Console> = OnceLock::new();
    C.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mxguard-fuzz-console-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("lists")).expect("temp dir");
        // Events to the file only: the fuzzer's own output stays readable.
        mxguard_tuning::LOG_STDERR.set("false").expect("log.stderr");
        mxguard_telemetry::log::init(Some(dir.join("events.log"))).expect("event log");
        let users_db = Location::Sqlite(dir.join("console.db"));
        let quarantine_db = Location::Sqlite(dir.join("quarantine.db"));
        let bearer = {
            let mut users = Users::open(&users_db).expect("console database");
            users.put(&Account { email: ADMIN.into(), role: Role::Superadmin, domains: vec![], members: vec![] }, PASSWORD).expect("admin");
            users.put(&Account { email: USER.into(), role: Role::User, domains: vec![], members: vec![] }, PASSWORD).expect("user");
            users.token_new(ADMIN, "fuzz", 1).expect("token")
        };
        {
            let mut store = Store::open(&quarantine_db).expect("quarantine database");
            let message = b"From: Sender <s@sender.test>\r\nTo: ann@example.test\r\nSubject: held\r\nContent-Type: text/html\r\n\r\n<p>Hello <a href=\"http://phish.test/x\">bank</a><img src=\"http://img.test/a.png\"></p>\r\n".to_vec();
            let e = Entry {
                qid: "FUZZQ1".into(),
                arrival_ms: 1_790_000_000_000,
                mail_from: "s@sender.test".into(),
                rcpts: vec![USER.into(), "bob@example.test".into()],
                client: "192.0.2.1".into(),
                helo: "sender.test".into(),
                subject: "held".into(),
                score: 9.5,
                symbols: "BAYES_SPAM(4.0)".into(),
                reason: "spam".into(),
                message,
            };
            store.insert_batch(&[&e]).expect("held message");
        }
        // Core 0's side of a release: spooled at once.
        let (pickup, mut rx) = tokio::sync::mpsc::channel::<mxguard_console::Pickup>(16);
        std::thread::spawn(move || {
            while let Some(p) = rx.blocking_recv() {
                let _ = p.answer.send(Ok("FUZZQ2".into()));
            }
        });
        let addr = mxguard_console::start(mxguard_console::Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            quarantine_db,
            console_db: users_db,
            pickup,
            tls: None,
            key_file: dir.join("console.key"),
            log_file: Some(dir.join("events.log")),
            knob_file: Some(dir.join("knobs.conf")),
            lists_dir: Some(dir.join("lists")),
            release_marks: Some(dir.join("release-marks")),
            setup_code: Some(dir.join("setup-code")),
        })
        .expect("console starts");
        Console { addr, dir, bearer, admin: Mutex::new(None), user: Mutex::new(None) }
    })
}

/// Bytes a request target may hold as they are; the rest is percent-encoded.
fn target_byte_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

/// The harness's event log is kept under this: every request the fuzzer makes is logged, and a
/// message-tracking search reads the log (up to the console's own SCAN_BYTES_MAX), so over a long
/// campaign a search grew slower with every input until one missed the then 10 s answer bound under
/// load (console_http, 2026-12-07: an 8.7 MB log, ASAN, a starved CPU). Bounded, the bound tests
/// the console's code rather than the campaign's age.
const EVENT_LOG_MAX: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let c = console();
    let log = c.dir.join("events.log");
    if std::fs::metadata(&log).is_ok_and(|m| m.len() > EVENT_LOG_MAX) {
        // The writer appends (O_APPEND): it carries on at the new end.
        let _ = std::fs::OpenOptions::new().write(true).open(&log).and_then(|f| f.set_len(0));
    }
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode == 0xFF {
        let resp = exchange(Ipv4Addr::new(127, 0, 0, 2), c.addr, rest, true);
        assert!(resp.is_empty() || resp.starts_with(b"HTTP/1."), "{:?}", String::from_utf8_lossy(&resp[..resp.len().min(200)]));
        return;
    }
    let method = ["GET", "POST", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"][(mode & 7) as usize];
    let (raw_target, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(p) => (&rest[..p], &rest[p + 1..]),
        None => (rest, &[][..]),
    };
    let mut target = String::from("/");
    for &b in raw_target.strip_prefix(b"/").unwrap_or(raw_target) {
        if target_byte_ok(b) {
            target.push(b as char);
        } else {
            target.push_str(&format!("%{b:02X}"));
        }
    }
    let admin = mode & 0x08 != 0;
    let session = if mode & 0x18 != 0 { c.session(admin) } else { None };
    let mut body = body.to_vec();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n");
    if let Some((cookie, csrf)) = &session {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
        if mode & 0x20 != 0 {
            body.extend_from_slice(format!("&csrf={csrf}").as_bytes());
        }
    }
    if mode & 0x40 != 0 {
        req.push_str(&format!("Authorization: Bearer {}\r\n", c.bearer));
    }
    let ct = if mode & 0x80 != 0 { "application/json" } else { "application/x-www-form-urlencoded" };
    req.push_str(&format!("Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(&body);
    let resp = exchange(Ipv4Addr::new(127, 0, 0, 2), c.addr, &bytes, false);
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 "), "no HTTP answer to {method} {target}: {:?}", &text[..text.len().min(200)]);
    let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status == 400 && header(&text, "content-security-policy").is_none() {
        return; // hyper's own refusal of a request it could not parse
    }
    assert!(status != 500, "500 for {method} {target}: {:?}", &text[..text.len().min(600)]);
    assert!(header(&text, "content-security-policy").is_some(), "{method} {target}: no CSP in {:?}", &text[..text.len().min(400)]);
    assert_eq!(header(&text, "x-content-type-options"), Some("nosniff"), "{method} {target}");
    if method != "GET" {
        let known = ["lists", "console.db", "quarantine.db", "events.log", "console.key", "knobs.conf", "release-marks"];
        for e in std::fs::read_dir(&c.dir).expect("state dir").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // SQLite's journals beside its databases.
            let base = name.trim_end_matches("-journal").trim_end_matches("-wal").trim_end_matches("-shm");
            // Rotated logs and files replaced by rename (`NAME.1`, `NAME.tmp`) are the console's own.
            let ours = known.iter().any(|k| base == *k || base.strip_prefix(k).is_some_and(|r| r.starts_with('.')));
            assert!(ours, "{method} {target} made {name} outside the lists directory");
        }
    }
    // A session the request ended (log out) or outlived: log in again for the next input.
    if session.is_some() && status == 303 && header(&text, "location") == Some("/login") {
        c.forget(admin);
    }
});
