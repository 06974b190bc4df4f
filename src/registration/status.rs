//! What the registration reports: its status (the one place a status page reads), the
//! events that deserve a log line, and why it failed, with stable codes.

use std::net::SocketAddr;
use std::time::Instant;

use crate::sip::message::reason_phrase;

/// Why registering failed, with a stable code for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationFailure {
    #[error("no answer from the registrar")]
    Timeout,
    #[error("the registrar cannot be reached")]
    Unreachable,
    #[error(
        "the registrar rejected our credentials ({status} again after answering its challenge)"
    )]
    AuthRejected { status: u16 },
    #[error("cannot answer the registrar's challenge: {reason}")]
    BadChallenge { reason: String },
    #[error("403 Forbidden: the registrar refuses this account")]
    Forbidden,
    #[error("404 Not Found: the registrar does not know this user")]
    NotFound,
    #[error("the registrar failed: {status} {}", reason_phrase(*status))]
    ServerError { status: u16 },
    #[error("the registrar refused: {status} {}", reason_phrase(*status))]
    Rejected { status: u16 },
    #[error("the registrar keeps asking for a longer expiry (423 with Min-Expires {min:?})")]
    IntervalTooBrief { min: Option<u32> },
    #[error("the registrar answered 200 but bound our contact for 0 seconds")]
    NotBound,
}

impl RegistrationFailure {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout => "trunk.timeout",
            Self::Unreachable => "trunk.unreachable",
            Self::AuthRejected { .. } => "trunk.auth_rejected",
            Self::BadChallenge { .. } => "trunk.bad_challenge",
            Self::Forbidden => "trunk.forbidden",
            Self::NotFound => "trunk.not_found",
            Self::ServerError { .. } => "trunk.server_error",
            Self::Rejected { .. } => "trunk.rejected",
            Self::IntervalTooBrief { .. } => "trunk.interval_too_brief",
            Self::NotBound => "trunk.not_bound",
        }
    }
}

/// Where the registration stands; times are `Instant`s, the reader converts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationStatus {
    /// The first REGISTER (and its challenges) is under way.
    Registering { since: Instant },
    /// Calls can reach us. Stays so while a refresh is under way.
    Registered {
        until: Instant,
        /// Our Contact as registered.
        contact: String,
        /// The address learned from the registrar or `external_address`, if any.
        public: Option<SocketAddr>,
    },
    Failing {
        /// The first failure of this run of failures.
        since: Instant,
        failure: RegistrationFailure,
        retry_at: Instant,
        /// An earlier binding that has not expired yet.
        bound_until: Option<Instant>,
    },
    /// The `Expires: 0` REGISTER is under way.
    Unregistering { since: Instant },
    /// Finished: unregistered, or never bound.
    Unregistered,
}

/// A change of state worth one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// Now registered, or registered with a new Contact.
    Registered {
        until: Instant,
        contact: String,
        public: Option<SocketAddr>,
        /// When the failures this ends began.
        failing_since: Option<Instant>,
    },
    /// Registering failed for the first time, or for a new reason.
    Failing {
        failure: RegistrationFailure,
        retry_at: Instant,
    },
    /// Unregistering finished; `confirmed` if the registrar said 2xx.
    Unregistered { confirmed: bool },
}
