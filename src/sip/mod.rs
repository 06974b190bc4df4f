//! SIP (RFC 3261): message parsing and building, transactions, dialogs and
//! the UDP and TCP transport.

// No clock reads or global randomness outside tests: `now` and the seeded
// generator are inputs (clippy.toml).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

pub mod auth;
pub mod dialog;
pub mod framing;
pub mod message;
pub mod methods;
pub mod normalise;
pub mod transaction;
pub mod transport;

use std::net::SocketAddr;

/// The transport a message travels on (RFC 3261 §18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    #[default]
    Udp,
    /// Stream-based: framed by Content-Length, no retransmissions.
    Tcp,
}

impl Transport {
    /// Reliable transports need no SIP-level retransmissions (§17).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    pub fn from_reliable(reliable: bool) -> Transport {
        if reliable {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }
}

/// One message to put on the wire, as returned by the sans-IO state machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
    /// Over TCP, the driver uses the connection to `destination`.
    pub transport: Transport,
}
