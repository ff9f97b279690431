//! Delivery status notifications (RFC 3464): the bounce a sender gets for recipients that failed
//! for good.
//!
//! The report carries a human-readable part, a `message/delivery-status` part with one block per
//! failed recipient, and the original message's header (`text/rfc822-headers`; not the body, so
//! a bounce never re-sends spam or malware at full size). A DSN is sent from the null sender, so
//! it can never cause another DSN.

use std::time::{SystemTime, UNIX_EPOCH};

use mxguard_smtp::date::rfc5322;

/// One recipient that failed.
pub struct Failed<'a> {
    pub rcpt: &'a str,
    /// Enhanced status code (`5.1.1`), derived from the reply when there is none.
    pub status: String,
    /// The downstream host, when one answered.
    pub remote: Option<String>,
    /// The diagnostic: the server's reply or our reason.
    pub diagnostic: String,
}

/// The header part of `message` (up to the first empty line).
pub fn header_block(message: &[u8]) -> &[u8] {
    match memchr::memmem::find(message, b"\r\n\r\n") {
        Some(i) => &message[..i + 2],
        None => message,
    }
}

/// Builds the DSN for `original_id` to `sender` (the text of the whole message, CRLF lines).
pub fn build(hostname: &str, original_id: &str, arrival_unix_ms: u64, sender: &str, failed: &[Failed<'_>], original: &[&[u8]]) -> Vec<u8> {
    let now = SystemTime::now();
    let stamp = now.duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    let boundary = format!("{original_id}.{stamp}/{hostname}");
    let arrival = rfc5322(UNIX_EPOCH + std::time::Duration::from_millis(arrival_unix_ms));
    let mut m = String::with_capacity(2048);
    m.push_str(&format!("From: MAILER-DAEMON@{hostname} (Mail Delivery System)\r\n"));
    m.push_str(&format!("To: <{sender}>\r\n"));
    m.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    m.push_str(&format!("Date: {}\r\n", rfc5322(now)));
    m.push_str(&format!("Message-ID: <{original_id}.{stamp}.dsn@{hostname}>\r\n"));
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str("This is a MIME-encapsulated message.\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"));
    m.push_str(&format!(
        "This is the mail system at host {hostname}.\r\n\r\nI'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients.\r\n\r\n"
    ));
    for f in failed {
        m.push_str(&format!("<{}>: {}\r\n", f.rcpt, f.diagnostic.replace(['\r', '\n'], " ")));
    }
    m.push_str(&format!("\r\n--{boundary}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"));
    m.push_str(&format!("Reporting-MTA: dns; {hostname}\r\nX-Mxguard-Queue-ID: {original_id}\r\nArrival-Date: {arrival}\r\n"));
    for f in failed {
        m.push_str(&format!("\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}\r\n", f.rcpt, f.status));
        if let Some(r) = &f.remote {
            m.push_str(&format!("Remote-MTA: dns; {r}\r\n"));
        }
        m.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", f.diagnostic.replace(['\r', '\n'], " ")));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ));
    let mut out = m.into_bytes();
    // The header may span the Received part and the body part of the original.
    let mut joined = Vec::new();
    for p in original {
        joined.extend_from_slice(p);
        if memchr::memmem::find(&joined, b"\r\n\r\n").is_some() {
            break;
        }
    }
    out.extend_from_slice(header_block(&joined));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// The enhanced status code for a failure: the reply's own, else one from its basic code.
pub fn status_for(reply: Option<&mxguard_smtp::Reply>, fallback: &str) -> String {
    match reply {
        Some(r) if !r.status.is_empty() => r.status.to_string(),
        Some(r) if r.is_permanent() => "5.0.0".into(),
        Some(_) => "4.0.0".into(),
        None => fallback.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_structure() {
        let f = [Failed { rcpt: "u@example.test", status: "5.1.1".into(), remote: Some("127.0.0.1:2526".into()), diagnostic: "550 5.1.1 no such user".into() }];
        let dsn = build("mx.test", "QID1", 0, "s@b.example", &f, &[b"Received: x\r\n", b"Subject: hello\r\n\r\nsecret body\r\n"]);
        let t = String::from_utf8(dsn).unwrap();
        assert!(t.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(t.contains("Final-Recipient: rfc822; u@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
        assert!(t.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user"));
        assert!(t.contains("Received: x\r\nSubject: hello\r\n"));
        assert!(!t.contains("secret body"), "the original body is not returned");
        assert!(t.lines().all(|l| !l.contains('\r')), "CRLF only");
        let boundary = t.split("boundary=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(t.ends_with(&format!("--{boundary}--\r\n")));
        assert_eq!(status_for(Some(&mxguard_smtp::Reply::new(550, "", "x")), "5.0.0"), "5.0.0");
        assert_eq!(status_for(None, "4.4.7"), "4.4.7");
    }
}
