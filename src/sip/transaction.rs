//! STUB — to be implemented (helper B). Signatures are the contract.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Transmit;

pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
pub const T4: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}
impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: T1,
            t2: T2,
            t4: T4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    Acked,
    AckTimedOut,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEvent {
    Provisional(u16),
    Final(u16),
    TimedOut,
    Terminated,
}

pub struct InviteServer;
impl InviteServer {
    pub fn new(_destination: SocketAddr, _reliable: bool, _timers: Timers, _now: Instant) -> Self {
        unimplemented!()
    }
    pub fn respond(&mut self, _status: u16, _payload: Vec<u8>, _now: Instant) {}
    pub fn handle_retransmission(&mut self, _now: Instant) {}
    pub fn handle_ack(&mut self, _now: Instant) -> Option<ServerEvent> {
        None
    }
    pub fn handle_timeout(&mut self, _now: Instant) -> Option<ServerEvent> {
        None
    }
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn last_status(&self) -> Option<u16> {
        None
    }
    pub fn is_terminated(&self) -> bool {
        false
    }
}

pub struct NonInviteServer;
impl NonInviteServer {
    pub fn new(_destination: SocketAddr, _reliable: bool, _timers: Timers, _now: Instant) -> Self {
        unimplemented!()
    }
    pub fn respond(&mut self, _status: u16, _payload: Vec<u8>, _now: Instant) {}
    pub fn handle_retransmission(&mut self, _now: Instant) {}
    pub fn handle_timeout(&mut self, _now: Instant) -> Option<ServerEvent> {
        None
    }
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn is_terminated(&self) -> bool {
        false
    }
}

pub struct NonInviteClient;
impl NonInviteClient {
    pub fn new(
        _request: Vec<u8>,
        _destination: SocketAddr,
        _reliable: bool,
        _timers: Timers,
        _now: Instant,
    ) -> Self {
        unimplemented!()
    }
    pub fn handle_response(&mut self, _status: u16, _now: Instant) -> Option<ClientEvent> {
        None
    }
    pub fn handle_timeout(&mut self, _now: Instant) -> Option<ClientEvent> {
        None
    }
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn is_terminated(&self) -> bool {
        false
    }
}

pub struct InviteClient;
impl InviteClient {
    pub fn new(
        _request: Vec<u8>,
        _destination: SocketAddr,
        _reliable: bool,
        _timers: Timers,
        _now: Instant,
    ) -> Self {
        unimplemented!()
    }
    pub fn handle_response(&mut self, _status: u16, _now: Instant) -> Option<ClientEvent> {
        None
    }
    pub fn send_failure_ack(&mut self, _ack: Vec<u8>, _now: Instant) {}
    pub fn handle_timeout(&mut self, _now: Instant) -> Option<ClientEvent> {
        None
    }
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn is_terminated(&self) -> bool {
        false
    }
}
