//! The SMTP protocol without I/O: command and reply parsing, the server session state machine,
//! body receivers, and the dot-stuffing a client needs.
//!
//! Nothing here reads a socket, a clock or a file; engine/smtpd, engine/relay and mxblast drive it.
//! Written here rather than taken from smtp-proto because the gateway needs guarantees that crate
//! leaves to its caller: bare CR/LF refusal inside DATA and BDAT (SMTP smuggling), streaming
//! bodies into one caller-owned buffer, line limits on partial input, and explicit answers to
//! every policy question; the parser is small and fuzzed (fuzz/).

pub mod body;
pub mod command;
pub mod date;
pub mod reply;
pub mod session;
pub mod stuff;

pub use command::{domain_of, Command, MailFrom};
pub use reply::{parse_reply, Reply, ReplyError};
pub use session::{Ask, Config, Envelope, Phase, Session, Step};

#[cfg(test)]
mod session_tests;
