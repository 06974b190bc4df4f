//! SIP (RFC 3261): message parsing and building, transactions, dialogs and
//! the UDP transport.

pub mod dialog;
pub mod message;
pub mod normalise;
pub mod transaction;
pub mod transport;

use std::net::SocketAddr;

/// One message to put on the wire, as returned by the sans-IO state machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}
