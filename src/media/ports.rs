//! STUB (helper E).
use std::net::{IpAddr, UdpSocket};

use crate::config::PortRange;

pub struct RtpSockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub port: u16,
}
pub struct PortAllocator;
impl PortAllocator {
    pub fn new(_ip: IpAddr, _range: PortRange) -> Self {
        PortAllocator
    }
    pub fn allocate(&self) -> std::io::Result<RtpSockets> {
        unimplemented!()
    }
}
