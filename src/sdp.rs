//! STUB — to be implemented (helper C). Signatures are the contract.
use std::net::{IpAddr, SocketAddr};

use crate::media::Codec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}
impl Direction {
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SdpError {
    #[error("stub")]
    Stub,
    #[error("no common codec")]
    NoCommonCodec,
}

#[derive(Debug, Clone)]
pub struct SessionDescription;

#[derive(Debug, Clone)]
pub struct LocalMedia {
    pub address: IpAddr,
    pub rtp_port: u16,
    pub session_id: u64,
    pub session_version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    pub payload_type: u8,
    pub telephone_event: Option<u8>,
    pub remote_rtp: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    pub local_direction: Direction,
}

pub fn parse(_text: &str) -> Result<SessionDescription, SdpError> {
    unimplemented!()
}
pub fn answer(
    _offer: &SessionDescription,
    _codecs: &[Codec],
    _local: &LocalMedia,
) -> Result<(Negotiated, String), SdpError> {
    unimplemented!()
}
pub fn offer(_codecs: &[Codec], _local: &LocalMedia) -> String {
    unimplemented!()
}
pub fn accept_answer(
    _answer: &SessionDescription,
    _offered: &[Codec],
) -> Result<Negotiated, SdpError> {
    unimplemented!()
}
