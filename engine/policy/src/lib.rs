//! The policy stage: the checks an ISP gateway makes before DATA, each emitting symbols into a
//! [`mxguard_verdict::Verdict`].

pub mod list;
