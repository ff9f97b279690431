//! The quarantine digest: once a day (`console.digest_hour`, UTC) every recipient with mail held
//! since their last digest gets one plain-text message listing it, each with a signed release
//! link, so users who never log in still get their false positives back.
//!
//! A release link is `console.url`/r/ID/EXPIRES/MAC: the MAC is HMAC-SHA256 (ring) over the
//! copy's id, its recipient and the expiry, with a key kept in `state.dir/console.key` (32 random
//! bytes made once, mode 0600). Opening a link shows the message's summary and a button; only
//! the button's POST releases (link scanners and prefetchers follow GETs). Release links expire
//! with the quarantine's retention.
//!
//! The digest also carries a one-time login link, `/l/HEXRCPT/EXPIRES/MAC` (MAC over "login",
//! the recipient and the expiry; valid `console.login_link_h` hours): its POST starts an end-user
//! session for that recipient only — whatever other role an account of that name has — and the
//! link is spent (kept in the database until it expires, so every gateway sharing it refuses a
//! second use). Never: a link that works for another copy, another recipient or after its expiry,
//! or a digest that lists another recipient's mail.

use std::io::Write;
use std::path::Path;

use mxguard_quarantine::Held;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::pages::when;

pub struct Signer {
    key: hmac::Key,
}

fn message_of(id: i64, rcpt: &str, expires: u64) -> String {
    format!("release\n{id}\n{}\n{expires}", rcpt.to_ascii_lowercase())
}

fn login_message(rcpt: &str, expires: u64) -> String {
    format!("login\n{}\n{expires}", rcpt.to_ascii_lowercase())
}

/// Bytes as lower-case hex (MACs, session and API tokens, token digests).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

impl Signer {
    /// The key at `path`, made (32 random bytes, mode 0600) when missing.
    pub fn load_or_create(path: &Path) -> Result<Signer, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) if b.len() == 32 => b,
            Ok(_) => return Err(format!("{}: not a 32-byte key", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut b = vec![0u8; 32];
                SystemRandom::new().fill(&mut b).map_err(|_| "no randomness for the console key".to_string())?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
                f.write_all(&b).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", path.display()))?;
                b
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Signer { key: hmac::Key::new(hmac::HMAC_SHA256, &bytes) })
    }

    /// The MAC of a release link.
    pub fn sign(&self, id: i64, rcpt: &str, expires: u64) -> String {
        hex(hmac::sign(&self.key, message_of(id, rcpt, expires).as_bytes()).as_ref())
    }

    /// Whether `mac` is this link's (constant time), and it has not expired at `now`.
    pub fn verify(&self, id: i64, rcpt: &str, expires: u64, mac: &str, now: u64) -> bool {
        now <= expires && unhex(mac).is_some_and(|m| hmac::verify(&self.key, message_of(id, rcpt, expires).as_bytes(), &m).is_ok())
    }

    /// The path of a one-time login link for `rcpt`.
    pub fn login_path(&self, rcpt: &str, expires: u64) -> String {
        let mac = hex(hmac::sign(&self.key, login_message(rcpt, expires).as_bytes()).as_ref());
        format!("/l/{}/{expires}/{mac}", hex(rcpt.to_ascii_lowercase().as_bytes()))
    }

    /// The recipient a login link (`HEXRCPT/EXPIRES/MAC`, after `/l/`) is for, with its expiry
    /// and MAC, if the MAC is right and it has not expired at `now`.
    pub fn verify_login(&self, rest: &str, now: u64) -> Option<(String, u64, String)> {
        let [rcpt, expires, mac] = rest.split('/').collect::<Vec<_>>()[..] else { return None };
        let rcpt = String::from_utf8(unhex(rcpt)?).ok()?;
        let expires: u64 = expires.parse().ok()?;
        let ok = now <= expires && unhex(mac).is_some_and(|m| hmac::verify(&self.key, login_message(&rcpt, expires).as_bytes(), &m).is_ok());
        ok.then(|| (rcpt, expires, mac.to_string()))
    }
}

/// A release link's path.
pub fn link_path(signer: &Signer, h: &Held, expires: u64) -> String {
    format!("/r/{}/{expires}/{}", h.id, signer.sign(h.id, &h.rcpt, expires))
}

/// The digest message for one recipient (CRLF lines, as spooled).
/// `login_expires`: when the digest's one-time login link stops working.
#[allow(clippy::too_many_arguments)]
pub fn compose(rcpt: &str, held: &[&Held], base_url: &str, signer: &Signer, expires: u64, login_expires: u64, from: &str, date: &str) -> Vec<u8> {
    let mut body = format!(
        "{} message(s) addressed to you were held as suspected spam since your last digest.\r\n\
         To receive one, open its link and press Release. Links work until {}.\r\n\r\n",
        held.len(),
        when(expires * 1000)
    );
    for h in held {
        let subject: String = h.subject.chars().filter(|c| !c.is_control()).take(120).collect();
        body.push_str(&format!(
            "* {}\r\n  From: {}\r\n  Subject: {}\r\n  Why: {}\r\n  Release: {base_url}{}\r\n\r\n",
            when(h.arrival_ms),
            if h.mail_from.is_empty() { "<>" } else { &h.mail_from },
            if subject.is_empty() { "(no subject)" } else { &subject },
            h.reason.chars().filter(|c| !c.is_control()).take(200).collect::<String>(),
            link_path(signer, h, expires)
        ));
    }
    body.push_str(&format!(
        "See them all (this link logs you in once, until {}): {base_url}{}\r\n",
        when(login_expires * 1000),
        signer.login_path(rcpt, login_expires)
    ));
    format!(
        "From: Quarantine <{from}>\r\nTo: <{rcpt}>\r\nSubject: Quarantine digest: {} held message(s)\r\nDate: {date}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\n\r\n{body}",
        held.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(id: i64, rcpt: &str) -> Held {
        Held {
            id,
            qid: format!("Q{id}"),
            rcpt: rcpt.into(),
            state: "held".into(),
            arrival_ms: 1_795_420_800_000,
            mail_from: "x@spam.example".into(),
            client: "192.0.2.1".into(),
            subject: "Cheap\r\nBcc: injected".into(),
            size: 100,
            score: 12.0,
            symbols: String::new(),
            reason: "matches keyword blacklist line 1".into(),
            verdict: "spam".into(),
        }
    }

    #[test]
    fn links_are_bound_to_copy_recipient_and_time() {
        let d = std::env::temp_dir().join(format!("mxg-digest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let s = Signer::load_or_create(&d.join("console.key")).unwrap();
        let mac = s.sign(7, "Ann@example.test", 1000);
        assert!(s.verify(7, "ann@example.test", 1000, &mac, 999));
        assert!(!s.verify(7, "ann@example.test", 1000, &mac, 1001), "expired");
        assert!(!s.verify(8, "ann@example.test", 1000, &mac, 10), "another copy");
        assert!(!s.verify(7, "bob@example.test", 1000, &mac, 10), "another recipient");
        assert!(!s.verify(7, "ann@example.test", 2000, &mac, 10), "another expiry");
        assert!(!s.verify(7, "ann@example.test", 1000, "zz", 10));
        // The key persists; another key signs differently.
        let again = Signer::load_or_create(&d.join("console.key")).unwrap();
        assert!(again.verify(7, "ann@example.test", 1000, &mac, 10));
        let other = Signer::load_or_create(&d.join("other.key")).unwrap();
        assert!(!other.verify(7, "ann@example.test", 1000, &mac, 10));
        // A subject cannot add header lines to the digest.
        let h = held(7, "ann@example.test");
        let text = String::from_utf8(compose("ann@example.test", &[&h], "https://mx.example.test:8025", &s, 1000, 500, "postmaster@mx.example.test", "Mon, 23 Nov 2026 08:00:00 +0000")).unwrap();
        assert!(text.contains(&format!("Release: https://mx.example.test:8025/r/7/1000/{mac}")));
        // The login link: for this recipient, until its own expiry.
        let login = s.login_path("Ann@example.test", 500);
        assert!(text.contains(&format!("https://mx.example.test:8025{login}")), "{text}");
        let rest = login.strip_prefix("/l/").unwrap();
        assert_eq!(s.verify_login(rest, 499).map(|(r, e, _)| (r, e)), Some(("ann@example.test".to_string(), 500)));
        assert_eq!(s.verify_login(rest, 501), None, "expired");
        let other = format!("{}/500/{}", hex(b"bob@example.test"), rest.rsplit('/').next().unwrap());
        assert_eq!(s.verify_login(&other, 10), None, "another recipient");
        assert_eq!(s.verify_login(&rest.replace("/500/", "/900/"), 10), None, "a longer life");
        assert_eq!(s.verify_login("zz/1/2", 0), None);
        assert!(text.contains("Subject: CheapBcc: injected") && !text.contains("\r\nBcc:"));
    }
}
