//! dial-a-service: a self-hosted SIP phone line that plays recorded church
//! services to people who phone in.
//!
//! Protocol logic (SIP transactions, dialogs, SDP, the call core) is sans-IO:
//! it takes input and `now` and returns what to send and when to wake. Only
//! `driver`, `sip::transport`, `media::pacer` and the CLI touch sockets and clocks.

pub mod admin;
pub mod bench;
pub mod call;
pub mod call_log;
pub mod calls;
pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod content;
pub mod driver;
pub mod endpoint;
pub mod fd_limit;
pub mod log_summary;
pub mod media;
pub mod observe;
pub mod prompts;
pub mod registration;
pub mod resume_store;
pub mod sdp;
pub mod self_test;
pub mod sip;
pub mod source;
pub mod speech;
