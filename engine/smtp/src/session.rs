//! The server side of one SMTP session as a sans-IO state machine.
//!
//! Bytes in ([`Session::advance`]), replies out ([`Session::output`]), and decisions asked of the
//! driver ([`Ask`]): the session never does I/O, never looks at a clock and never blocks. The driver
//! (engine/smtpd) reads the socket, feeds the session, answers its questions (policy, spool) and
//! flushes the replies; it enforces time limits itself, using [`Session::phase`].
//!
//! Pipelining (RFC 2920) falls out of the design: `advance` handles every complete command in the
//! input and queues all their replies, and the driver flushes before it waits for more input.
//!
//! Guarantees: no input makes it panic; every command gets exactly one reply; a message is only
//! offered to the driver ([`Ask::Message`]) when it arrived whole, within the limits, and with
//! canonical CRLF line ends; after STARTTLS the driver must throw away whatever plaintext it
//! already buffered beyond the command (RFC 3207 §4.2, the command-injection defence).

use crate::body::{finish_chunks, BodyLimits, ChunkLines, ChunkReceiver, DataReceiver, Taint};
use crate::command::{self, Command, MailFrom};
use crate::reply::Reply;
use memchr::memchr;

/// Limits and switches for one session; the driver fills it from the knobs at connect time.
#[derive(Debug, Clone)]
pub struct Config {
    pub hostname: String,
    pub max_command_line: usize,
    pub max_data_line: usize,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_commands: u32,
    pub max_errors: u32,
    pub require_helo: bool,
    pub ehlo_enabled: bool,
    /// STARTTLS is offered (a TLS configuration exists and the knob allows it).
    pub starttls: bool,
    /// The connection already runs TLS (implicit TLS on port 465).
    pub implicit_tls: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            hostname: "localhost".into(),
            max_command_line: 4096,
            max_data_line: 1 << 20,
            max_message_size: 50 << 20,
            max_recipients: 1000,
            max_commands: 10_000,
            max_errors: 20,
            require_helo: true,
            ehlo_enabled: true,
            starttls: false,
            implicit_tls: false,
        }
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every complete command was handled: flush the output, then read more input.
    NeedInput,
    /// A decision is needed; answer it with the matching `answer_*` method before advancing again.
    Ask(Ask),
    /// `220` to STARTTLS is queued: flush it, discard buffered input, run the TLS handshake, then
    /// call [`Session::tls_started`].
    StartTls,
    /// Flush the output and close the connection.
    Close,
}

/// A decision the session needs from the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// HELO or EHLO; answer with [`Session::answer_helo`].
    Helo { name: String, extended: bool },
    /// MAIL FROM passed syntax and state checks; answer with [`Session::answer_mail`].
    Mail(MailFrom),
    /// RCPT TO passed syntax and state checks; answer with [`Session::answer_rcpt`].
    Rcpt(String),
    /// A complete message: take it with [`Session::take_message`], store it, then answer with
    /// [`Session::answer_message`].
    Message,
}

/// Where the session is, for the driver's timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a command.
    Command,
    /// Receiving a message body (DATA or a BDAT chunk).
    Body,
    Closed,
}

/// The envelope of one message, handed over with its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub helo: String,
    pub esmtp: bool,
    pub tls: bool,
    /// Reverse path; empty for the null sender.
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub declared_size: Option<u64>,
    /// Received with BDAT.
    pub chunked: bool,
}

impl Envelope {
    /// The `with` protocol name for the Received header (RFC 3848, RFC 6531).
    pub fn protocol(&self) -> &'static str {
        match (self.smtputf8, self.esmtp, self.tls) {
            (true, _, false) => "UTF8SMTP",
            (true, _, true) => "UTF8SMTPS",
            (false, true, false) => "ESMTP",
            (false, true, true) => "ESMTPS",
            (false, false, false) => "SMTP",
            (false, false, true) => "SMTPS",
        }
    }
}

#[derive(Debug)]
enum State {
    /// Connected, banner not yet sent.
    Connected,
    Command,
    Data,
    Bdat(ChunkReceiver),
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Awaiting {
    Helo { name: String, extended: bool },
    Mail(MailFrom),
    Rcpt(String),
    Message,
}

#[derive(Debug)]
struct Transaction {
    mail: MailFrom,
    rcpts: Vec<String>,
    bdat: bool,
    chunk_lines: ChunkLines,
    taint: Option<Taint>,
}

/// One SMTP server session.
pub struct Session {
    cfg: Config,
    out: Vec<u8>,
    state: State,
    helo: Option<(String, bool)>,
    tls: bool,
    txn: Option<Transaction>,
    body: Vec<u8>,
    data: DataReceiver,
    /// Reply owed at the end of a BDAT chunk that is being discarded.
    chunk_error: Option<Reply>,
    commands: u32,
    errors: u32,
    awaiting: Option<Awaiting>,
    skipping_command: bool,
    messages: u64,
    /// Messages the session refused on its own since the driver last looked.
    refused: Vec<Reply>,
}

impl Session {
    pub fn new(cfg: Config) -> Session {
        let tls = cfg.implicit_tls;
        Session {
            cfg,
            out: Vec::with_capacity(512),
            state: State::Connected,
            helo: None,
            tls,
            txn: None,
            body: Vec::new(),
            data: DataReceiver::default(),
            chunk_error: None,
            commands: 0,
            errors: 0,
            awaiting: None,
            skipping_command: false,
            messages: 0,
            refused: Vec::new(),
        }
    }

    /// Sends the `220` banner.
    pub fn greet(&mut self) {
        if matches!(self.state, State::Connected) {
            let text = format!("{} ESMTP mxguard", self.cfg.hostname);
            self.reply(Reply::new(220, "", text));
            self.state = State::Command;
        }
    }

    /// Refuses the connection (or ends it: timeout, shutdown) with `reply`; the driver then closes.
    pub fn close_with(&mut self, reply: Reply) {
        self.reply(reply);
        self.state = State::Closed;
        self.txn = None;
        self.body = Vec::new();
    }

    /// Replies queued for the client; the driver writes and then clears them.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    pub fn phase(&self) -> Phase {
        match self.state {
            State::Connected | State::Command => Phase::Command,
            State::Data | State::Bdat(_) => Phase::Body,
            State::Closed => Phase::Closed,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Messages accepted in this session so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Errors so far (for the log line at close).
    pub fn errors(&self) -> u32 {
        self.errors
    }

    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_ref().map(|(n, _)| n.as_str())
    }

    fn reply(&mut self, r: Reply) {
        r.write_to(&mut self.out);
    }

    /// An error reply; too many of them end the session.
    fn error(&mut self, r: Reply) {
        self.reply(r);
        self.errors += 1;
        if self.errors >= self.cfg.max_errors {
            self.close_with(Reply::new(421, "4.7.0", format!("{} Error: too many errors", self.cfg.hostname)));
        }
    }

    fn limits(&self) -> BodyLimits {
        BodyLimits {
            max_line: self.cfg.max_data_line,
            max_size: usize::try_from(self.cfg.max_message_size).unwrap_or(usize::MAX),
        }
    }

    /// Handles as much of `input` as possible; returns the bytes used and what to do next.
    /// Unused bytes (a partial line or chunk) must be passed again, followed by more input.
    pub fn advance(&mut self, input: &[u8]) -> (usize, Step) {
        if let Some(a) = &self.awaiting {
            // The driver must answer first; asking again is harmless and keeps it honest.
            let ask = match a.clone() {
                Awaiting::Helo { name, extended } => Ask::Helo { name, extended },
                Awaiting::Mail(m) => Ask::Mail(m),
                Awaiting::Rcpt(r) => Ask::Rcpt(r),
                Awaiting::Message => Ask::Message,
            };
            return (0, Step::Ask(ask));
        }
        let mut pos = 0;
        let limits = self.limits();
        loop {
            match &mut self.state {
                State::Closed => return (input.len(), Step::Close),
                State::Connected => return (pos, Step::NeedInput),
                State::Command => {
                    let rest = &input[pos..];
                    let Some(nl) = memchr(b'\n', rest) else {
                        if self.skipping_command {
                            return (input.len(), Step::NeedInput);
                        }
                        if rest.len() > self.cfg.max_command_line {
                            self.skipping_command = true;
                            self.error(Reply::new(500, "5.5.2", "Error: line too long"));
                            return (input.len(), Step::NeedInput);
                        }
                        return (pos, Step::NeedInput);
                    };
                    pos += nl + 1;
                    if self.skipping_command {
                        self.skipping_command = false;
                        continue;
                    }
                    let mut line = &rest[..nl];
                    if line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    if line.len() > self.cfg.max_command_line {
                        self.error(Reply::new(500, "5.5.2", "Error: line too long"));
                        continue;
                    }
                    self.commands += 1;
                    if self.commands > self.cfg.max_commands {
                        self.close_with(Reply::new(421, "4.7.0", "Error: too many commands"));
                        return (input.len(), Step::Close);
                    }
                    let step = match command::parse(line) {
                        Ok(cmd) => self.command(cmd),
                        Err(r) => {
                            self.error(r);
                            None
                        }
                    };
                    if let Some(step) = step {
                        return (pos, step);
                    }
                }
                State::Data => {
                    let (n, end) = self.data.consume(&input[pos..], &mut self.body, limits);
                    pos += n;
                    if !end {
                        return (pos, Step::NeedInput);
                    }
                    self.state = State::Command;
                    let taint = self.data.taint;
                    if let Some(step) = self.end_of_message(taint) {
                        return (pos, step);
                    }
                }
                State::Bdat(chunk) => {
                    // Discarding chunks need no line state; the scratch values are never read.
                    let (mut scratch_lines, mut scratch_taint) = (ChunkLines::default(), None);
                    let (lines, taint) = match self.txn.as_mut() {
                        Some(t) => (&mut t.chunk_lines, &mut t.taint),
                        None => {
                            chunk.discard = true;
                            (&mut scratch_lines, &mut scratch_taint)
                        }
                    };
                    let n = chunk.consume(&input[pos..], &mut self.body, lines, taint, limits);
                    pos += n;
                    if chunk.remaining > 0 {
                        return (pos, Step::NeedInput);
                    }
                    let last = chunk.last;
                    let size_total = self.body.len();
                    self.state = State::Command;
                    if let Some(r) = self.chunk_error.take() {
                        self.error(r);
                        continue;
                    }
                    if last {
                        let taint = self.txn.as_mut().and_then(|t| {
                            finish_chunks(&t.chunk_lines, &mut t.taint);
                            t.taint
                        });
                        if let Some(step) = self.end_of_message(taint) {
                            return (pos, step);
                        }
                    } else {
                        self.reply(Reply::new(250, "2.0.0", format!("{size_total} octets received")));
                    }
                }
            }
        }
    }

    /// The message is complete: refuse it if tainted, else ask the driver to take it.
    fn end_of_message(&mut self, taint: Option<Taint>) -> Option<Step> {
        let Some(t) = taint else {
            self.awaiting = Some(Awaiting::Message);
            return Some(Step::Ask(Ask::Message));
        };
        let r = match t {
            Taint::BareLf => Reply::new(550, "5.5.2", "Message refused: bare <LF> received; lines must end in <CR><LF>"),
            Taint::BareCr => Reply::new(550, "5.5.2", "Message refused: bare <CR> received; lines must end in <CR><LF>"),
            Taint::LineTooLong => Reply::new(
                552,
                "5.3.4",
                format!("Message refused: a line is longer than {} bytes", self.cfg.max_data_line),
            ),
            Taint::TooBig => Reply::new(552, "5.3.4", "Message size exceeds fixed maximum message size"),
        };
        self.txn = None;
        self.body = Vec::new();
        self.refused.push(r.clone());
        if matches!(t, Taint::BareLf | Taint::BareCr) {
            // A client whose line ends differ from ours cannot be trusted to be where it thinks it
            // is: what it sends next may be the rest of a smuggled message that an upstream server
            // took for its own commands. The refusal is final and the connection ends (as Postfix's
            // `smtpd_forbid_bare_newline = yes`); an honest upstream sends its other messages again
            // on a new connection, and nothing is lost.
            self.close_with(r);
            return Some(Step::Close);
        }
        self.reply(r);
        None
    }

    /// Messages refused by the session itself (bare LF/CR, size, line length) since the last
    /// call, with the reply each got; the driver counts and logs them.
    pub fn take_refused(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.refused)
    }

    fn command(&mut self, cmd: Command) -> Option<Step> {
        match cmd {
            Command::Ehlo(_) if !self.cfg.ehlo_enabled => {
                self.error(Reply::new(502, "5.5.1", "Error: EHLO not supported, use HELO"));
                None
            }
            Command::Helo(name) => self.ask(Awaiting::Helo { name, extended: false }),
            Command::Ehlo(name) => self.ask(Awaiting::Helo { name, extended: true }),
            Command::Mail(m) => {
                if self.cfg.require_helo && self.helo.is_none() {
                    self.error(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
                } else if self.txn.is_some() {
                    self.error(Reply::new(503, "5.5.1", "Error: nested MAIL command"));
                } else if m.size.is_some_and(|s| s > self.cfg.max_message_size) {
                    self.error(Reply::new(552, "5.3.4", "Message size exceeds fixed limit"));
                } else {
                    return self.ask(Awaiting::Mail(m));
                }
                None
            }
            Command::Rcpt(to) => {
                match &self.txn {
                    None => self.error(Reply::new(503, "5.5.1", "Error: need MAIL command")),
                    Some(t) if t.rcpts.len() >= self.cfg.max_recipients => {
                        self.reply(Reply::new(452, "4.5.3", "Error: too many recipients"))
                    }
                    Some(t) if !t.mail.smtputf8 && !to.is_ascii() => {
                        self.error(Reply::new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"))
                    }
                    Some(_) => return self.ask(Awaiting::Rcpt(to)),
                }
                None
            }
            Command::Data => {
                match &self.txn {
                    None => self.error(Reply::new(503, "5.5.1", "Error: need MAIL command")),
                    Some(t) if t.bdat => self.error(Reply::new(503, "5.5.1", "Error: DATA after BDAT")),
                    Some(t) if t.rcpts.is_empty() => self.error(Reply::new(554, "5.5.1", "Error: no valid recipients")),
                    Some(_) => {
                        self.reply(Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"));
                        self.body = Vec::new();
                        self.data = DataReceiver::default();
                        self.state = State::Data;
                    }
                }
                None
            }
            Command::Bdat { size, last } => {
                let mut chunk = ChunkReceiver { remaining: size, last, discard: false };
                match self.txn.as_mut() {
                    None => {
                        chunk.discard = true;
                        self.chunk_error = Some(Reply::new(503, "5.5.1", "Error: need MAIL command"));
                    }
                    Some(t) if t.rcpts.is_empty() => {
                        chunk.discard = true;
                        self.chunk_error = Some(Reply::new(554, "5.5.1", "Error: no valid recipients"));
                    }
                    Some(t) => {
                        if !t.bdat {
                            t.bdat = true;
                            self.body = Vec::new();
                        }
                        if t.taint.is_some() {
                            chunk.discard = true;
                        } else if self.body.len() as u64 + size > self.cfg.max_message_size {
                            t.taint = Some(Taint::TooBig);
                            chunk.discard = true;
                        }
                    }
                }
                self.state = State::Bdat(chunk);
                None
            }
            Command::Rset => {
                self.txn = None;
                self.body = Vec::new();
                self.reply(Reply::new(250, "2.0.0", "Ok"));
                None
            }
            Command::Noop => {
                self.reply(Reply::new(250, "2.0.0", "Ok"));
                None
            }
            Command::Vrfy => {
                self.reply(Reply::new(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery"));
                None
            }
            Command::Expn => {
                self.error(Reply::new(502, "5.5.1", "Error: EXPN not available"));
                None
            }
            Command::Help => {
                self.reply(Reply::new(
                    214,
                    "2.0.0",
                    "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS",
                ));
                None
            }
            Command::Quit => {
                self.close_with(Reply::new(221, "2.0.0", "Bye"));
                Some(Step::Close)
            }
            Command::StartTls => {
                if self.tls {
                    self.error(Reply::new(554, "5.5.1", "Error: TLS already active"));
                } else if !self.cfg.starttls {
                    self.error(Reply::new(502, "5.5.1", "Error: STARTTLS not available"));
                } else {
                    self.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
                    return Some(Step::StartTls);
                }
                None
            }
            Command::NotImplemented(verb) => {
                self.error(Reply::new(502, "5.5.1", format!("Error: {verb} not implemented")));
                None
            }
            Command::Http => {
                self.close_with(Reply::new(221, "2.7.0", "Error: this is an SMTP server, not an HTTP proxy"));
                Some(Step::Close)
            }
        }
    }

    fn ask(&mut self, a: Awaiting) -> Option<Step> {
        let ask = match &a {
            Awaiting::Helo { name, extended } => Ask::Helo { name: name.clone(), extended: *extended },
            Awaiting::Mail(m) => Ask::Mail(m.clone()),
            Awaiting::Rcpt(r) => Ask::Rcpt(r.clone()),
            Awaiting::Message => Ask::Message,
        };
        self.awaiting = Some(a);
        Some(Step::Ask(ask))
    }

    /// Answers [`Ask::Helo`]: `Ok` accepts (the EHLO reply lists the extensions), `Err` refuses.
    pub fn answer_helo(&mut self, verdict: Result<(), Reply>) {
        let Some(Awaiting::Helo { name, extended }) = self.awaiting.take() else {
            return;
        };
        match verdict {
            Err(r) => self.error(r),
            Ok(()) => {
                self.txn = None;
                self.body = Vec::new();
                self.helo = Some((name, extended));
                if extended {
                    let mut text = format!(
                        "{}\nPIPELINING\nSIZE {}\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES\nCHUNKING",
                        self.cfg.hostname, self.cfg.max_message_size
                    );
                    if self.cfg.starttls && !self.tls {
                        text.push_str("\nSTARTTLS");
                    }
                    self.reply(Reply::new(250, "", text));
                } else {
                    self.reply(Reply::new(250, "", self.cfg.hostname.clone()));
                }
            }
        }
    }

    /// Answers [`Ask::Mail`].
    pub fn answer_mail(&mut self, verdict: Result<(), Reply>) {
        let Some(Awaiting::Mail(mail)) = self.awaiting.take() else {
            return;
        };
        match verdict {
            Err(r) => self.error(r),
            Ok(()) => {
                self.txn = Some(Transaction {
                    mail,
                    rcpts: Vec::new(),
                    bdat: false,
                    chunk_lines: ChunkLines::default(),
                    taint: None,
                });
                self.reply(Reply::new(250, "2.1.0", "Ok"));
            }
        }
    }

    /// Answers [`Ask::Rcpt`].
    pub fn answer_rcpt(&mut self, verdict: Result<(), Reply>) {
        let Some(Awaiting::Rcpt(rcpt)) = self.awaiting.take() else {
            return;
        };
        match (verdict, self.txn.as_mut()) {
            (Ok(()), Some(t)) => {
                t.rcpts.push(rcpt);
                self.reply(Reply::new(250, "2.1.5", "Ok"));
            }
            (Ok(()), None) => self.error(Reply::new(503, "5.5.1", "Error: need MAIL command")),
            (Err(r), _) => self.error(r),
        }
    }

    /// The complete message of an [`Ask::Message`]: its envelope and body (CRLF-canonical, without
    /// the terminating dot). The body buffer moves out; nothing is copied.
    pub fn take_message(&mut self) -> (Envelope, Vec<u8>) {
        let body = std::mem::take(&mut self.body);
        let (helo, esmtp) = self.helo.clone().unwrap_or_default();
        let env = match self.txn.take() {
            Some(t) => Envelope {
                helo,
                esmtp,
                tls: self.tls,
                mail_from: t.mail.address,
                rcpts: t.rcpts,
                eight_bit: t.mail.eight_bit,
                smtputf8: t.mail.smtputf8,
                declared_size: t.mail.size,
                chunked: t.bdat,
            },
            None => Envelope { helo, esmtp, tls: self.tls, ..Envelope::default() },
        };
        (env, body)
    }

    /// Answers [`Ask::Message`] with the final reply (`250 … queued as …`, or a refusal).
    pub fn answer_message(&mut self, reply: Reply) {
        if self.awaiting.take() != Some(Awaiting::Message) {
            return;
        }
        if reply.is_positive() {
            self.messages += 1;
        }
        self.txn = None;
        self.body = Vec::new();
        self.reply(reply);
    }

    /// The TLS handshake after STARTTLS succeeded: the session starts over (RFC 3207 §4.2).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.txn = None;
        self.body = Vec::new();
    }
}
