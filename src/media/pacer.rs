//! STUB (helper E).
use std::net::SocketAddr;

use super::Codec;
use super::ports::RtpSockets;
use super::track::Playlist;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

pub struct StreamSpec {
    pub id: StreamId,
    pub sockets: RtpSockets,
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    pub codec: Codec,
    pub payload_type: u8,
    pub playlist: Playlist,
    pub sending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Finished { id: StreamId },
}

pub struct MediaEngine;
impl MediaEngine {
    pub fn start(
        _workers: usize,
        _events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    ) -> std::io::Result<MediaEngine> {
        unimplemented!()
    }
    pub fn add(&self, _spec: StreamSpec) {}
    pub fn update(
        &self,
        _id: StreamId,
        _remote_rtp: SocketAddr,
        _remote_rtcp: SocketAddr,
        _sending: bool,
    ) {
    }
    pub fn remove(&self, _id: StreamId) {}
}
