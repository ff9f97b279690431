//! Message authentication at end of data: DKIM signatures (RFC 6376), the ARC chain (RFC 8617)
//! and the DMARC policy of the From domain (DMARC as mail-auth implements it: alignment of the
//! SPF and DKIM identities, the DNS tree walk for the policy record), with mail-auth, on the DNS
//! thread; and the Authentication-Results header (RFC 8601) that records them for the servers
//! downstream.
//!
//! Costs: one parse of the header block, one body hash per signature, one TXT lookup per
//! signing key and DMARC record (cached by the resolver).
//!
//! It decides nothing: [`Auth`] says what was found; the gateway turns it into symbols and the
//! DMARC policy into an action. It must never report a DNS failure as a failed signature
//! (those are `TempError`).

use std::net::IpAddr;
use std::sync::Arc;

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput, DmarcResult, SpfOutput, SpfResult};

use crate::{Dns, Lookup};

/// The outcome of one mechanism, as RFC 8601 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Neutral,
    TempError,
    PermError,
    None,
}

impl Outcome {
    fn of_dkim(r: &DkimResult) -> Outcome {
        match r {
            DkimResult::Pass => Outcome::Pass,
            DkimResult::Fail(_) => Outcome::Fail,
            DkimResult::Neutral(_) => Outcome::Neutral,
            DkimResult::TempError(_) => Outcome::TempError,
            DkimResult::PermError(_) => Outcome::PermError,
            DkimResult::None => Outcome::None,
        }
    }

    fn of_dmarc(r: &DmarcResult) -> Outcome {
        match r {
            DmarcResult::Pass => Outcome::Pass,
            DmarcResult::Fail(_) => Outcome::Fail,
            DmarcResult::TempError(_) => Outcome::TempError,
            DmarcResult::PermError(_) => Outcome::PermError,
            DmarcResult::None => Outcome::None,
        }
    }
}

/// One DKIM signature's check.
#[derive(Debug, Clone)]
pub struct Signature {
    pub outcome: Outcome,
    /// The signing domain (`d=`), empty when the signature could not be parsed.
    pub domain: String,
    /// Why it did not pass (mail-auth's error), empty on pass.
    pub detail: String,
}

/// The DMARC evaluation of the From domain.
#[derive(Debug, Clone)]
pub struct Dmarc {
    pub outcome: Outcome,
    /// The RFC 5322 From domain evaluated (empty: no single From domain).
    pub domain: String,
    /// The policy in force for failing mail: "none", "quarantine" or "reject" (already one
    /// step lower when the record says `t=y`).
    pub policy: &'static str,
    /// The record asks receivers to test only (`t=y`).
    pub testing: bool,
    pub detail: String,
}

/// Everything found about a message's authentication.
#[derive(Debug, Clone)]
pub struct Auth {
    pub dkim: Vec<Signature>,
    /// The ARC chain's outcome (`None` when the message has no ARC sets) and the domain of the
    /// newest seal.
    pub arc: Outcome,
    pub arc_sealer: Option<String>,
    pub dmarc: Dmarc,
    /// `Authentication-Results: …\r\n`, ready to prepend.
    pub header: String,
}

/// The inputs the checks need besides the message.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub ip: IpAddr,
    pub helo: String,
    pub mail_from: String,
    /// The SPF result of MAIL FROM, when it was checked.
    pub spf: Option<SpfOutput>,
    /// The authserv-id of the header (our host name).
    pub hostname: String,
}

impl Dns {
    /// Checks DKIM, ARC and DMARC for `message` (a complete RFC 5322 message), starting now on
    /// the DNS thread. `Failed` only when the message cannot be parsed as one, or the DNS thread
    /// gave no answer in time. The DNS thread drops its reference to `message` before answering.
    pub fn authenticate(&self, message: Arc<Vec<u8>>, env: Envelope) -> impl std::future::Future<Output = Lookup<Auth>> + 'static {
        self.submit(move |a| async move {
            let Some(msg) = AuthenticatedMessage::parse(&message) else {
                return Lookup::Failed("message headers could not be parsed".into());
            };
            let dkim = a.verify_dkim(&msg).await;
            let arc = a.verify_arc(&msg).await;
            let from_domain = env.mail_from.rsplit_once('@').map(|x| x.1.to_string()).unwrap_or_else(|| env.helo.clone());
            let spf = env.spf.clone().unwrap_or_else(|| SpfOutput::new(from_domain.clone()).with_result(SpfResult::None));
            let dmarc = a.verify_dmarc(DmarcParameters::new(&msg, &dkim, &from_domain, &spf)).await;
            let auth = assemble(&msg, &dkim, &arc, &dmarc, &spf, &env);
            drop(msg);
            drop(message);
            Lookup::Found(auth)
        })
    }
}

/// The findings of the checks as [`Auth`], with the Authentication-Results header that records
/// them. Pure: everything comes from mail-auth's outputs and the envelope (the fuzz target
/// `dns_records` drives it with DNS answers of its own). The header is one field: every line
/// break in it is CRLF followed by a tab, whatever a DNS record or the message held.
pub fn assemble(msg: &AuthenticatedMessage<'_>, dkim: &[DkimOutput<'_>], arc: &ArcOutput<'_>, dmarc: &DmarcOutput, spf: &SpfOutput, env: &Envelope) -> Auth {
    let mut header = AuthenticationResults::new(&env.hostname)
        .with_dkim_results(dkim, msg.from())
        .with_spf_mailfrom_result(spf, env.ip, &env.mail_from, &env.helo);
    if !arc.sets().is_empty() {
        header = header.with_arc_result(arc, env.ip);
    }
    if !dmarc.domain().is_empty() {
        header = header.with_dmarc_result(dmarc);
    }
    let policy = match dmarc.policy() {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    };
    let dmarc_result = dmarc.result();
    Auth {
        dkim: dkim
            .iter()
            .map(|d| Signature {
                outcome: Outcome::of_dkim(d.result()),
                domain: d.signature().map(|s| s.d.clone()).unwrap_or_default(),
                detail: detail_of_dkim(d.result()),
            })
            .collect(),
        arc: if arc.sets().is_empty() { Outcome::None } else { Outcome::of_dkim(arc.result()) },
        arc_sealer: arc.sets().last().map(|s| s.seal.header.d.clone()),
        dmarc: Dmarc {
            outcome: Outcome::of_dmarc(&dmarc_result),
            domain: dmarc.domain().to_string(),
            policy,
            testing: dmarc.dmarc_record().is_some_and(|r| r.t),
            detail: match &dmarc_result {
                DmarcResult::Pass | DmarcResult::None => String::new(),
                DmarcResult::Fail(e) | DmarcResult::TempError(e) | DmarcResult::PermError(e) => e.to_string(),
            },
        },
        header: {
            let mut text = header.to_string();
            if dkim.is_empty() {
                // RFC 8601 §2.7.1: say that no signature was there (mail-auth writes
                // only the signatures it checked).
                // The text starts with the authserv-id as given; anywhere else it goes last.
                let at = if text.starts_with(env.hostname.as_str()) { env.hostname.len() } else { text.len() };
                text.insert_str(at, ";\r\n\tdkim=none");
            }
            format!("Authentication-Results: {text}\r\n")
        },
    }
}

fn detail_of_dkim(r: &DkimResult) -> String {
    match r {
        DkimResult::Pass | DkimResult::None => String::new(),
        DkimResult::Fail(e) | DkimResult::Neutral(e) | DkimResult::TempError(e) | DkimResult::PermError(e) => e.to_string(),
    }
}
