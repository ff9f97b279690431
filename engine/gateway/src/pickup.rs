//! Pickup: messages the control plane hands to the data plane — a quarantined message a user
//! released — spooled (fsync'd) and queued to their route on core 0, filters bypassed (they
//! already judged it; the user overruled them), as Postfix's pickup hands mail to cleanup.
//!
//! The console awaits the answer: it marks the copy released only once it is durably spooled,
//! so a crash in between delivers it (perhaps twice), never loses it.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use mxguard_console::Pickup;
use mxguard_relay::Queue;
use mxguard_spool::{MessageData, Meta, RcptStatus, Spool};
use mxguard_telemetry::Event;
use tokio::sync::mpsc::Receiver;

/// Serves pickups until the console goes away (a task on core 0).
pub async fn serve(mut rx: Receiver<Pickup>, spool: Rc<Spool>, queue: Rc<Queue>) {
    while let Some(p) = rx.recv().await {
        let id = spool.next_id();
        let meta = Meta {
            id: id.clone(),
            arrival_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            client: "127.0.0.1".into(),
            helo: "localhost".into(),
            proto: "pickup".into(),
            mail_from: p.mail_from,
            status: vec![RcptStatus::Pending; p.rcpts.len()],
            rcpts: p.rcpts,
            eight_bit: true,
            reason: "released from the quarantine".into(),
            ..Meta::default()
        };
        let answer = match spool.store(meta.clone(), MessageData { head: Vec::new(), body: p.message }).await {
            Ok((loc, data)) => {
                Event::new("picked_up").str("qid", &id).str("from", &meta.mail_from).list("rcpt", &meta.rcpts).emit();
                queue.enqueue(meta, loc, Some(data));
                Ok(id)
            }
            Err(e) => Err(format!("spool: {e}")),
        };
        let _ = p.answer.send(answer);
    }
}
