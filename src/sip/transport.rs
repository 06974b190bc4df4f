//! The SIP transport over UDP (RFC 3261 §18): sip/'s only I/O.
//!
//! A thin wrapper: it binds, receives datagrams and sends what the sans-IO
//! machines produce. It refuses to start when the port is taken, because a
//! second process on the same UDP port would silently steal half the calls.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

use super::Transmit;

/// Largest datagram we read: RFC 3261 §18.1.1 keeps UDP messages well under
/// this, but a hostile peer may send up to 64 KiB.
pub const MAX_DATAGRAM: usize = 65_535;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot listen for SIP on {addr}: {source} (is another SIP service using the port?)")]
    Bind { addr: SocketAddr, source: io::Error },
}

pub struct UdpTransport {
    socket: UdpSocket,
    buf: Vec<u8>,
}

impl UdpTransport {
    pub async fn bind(addr: SocketAddr) -> Result<Self, TransportError> {
        // std/tokio do not set SO_REUSEADDR on UDP sockets, so a port held by
        // another process makes this fail instead of sharing the traffic.
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| TransportError::Bind { addr, source })?;
        Ok(UdpTransport {
            socket,
            buf: vec![0; MAX_DATAGRAM],
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits for the next datagram.
    pub async fn recv(&mut self) -> io::Result<(&[u8], SocketAddr)> {
        let (len, source) = self.socket.recv_from(&mut self.buf).await?;
        Ok((&self.buf[..len], source))
    }

    /// Sends one message; a failure is logged, not fatal: UDP is lossy and
    /// the transaction layer retransmits.
    pub async fn send(&self, transmit: &Transmit) {
        if let Err(error) = self
            .socket
            .send_to(&transmit.payload, transmit.destination)
            .await
        {
            tracing::debug!(destination = %transmit.destination, %error, "SIP send failed");
        }
    }
}
