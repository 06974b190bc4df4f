//! STUB — to be implemented (helper A). Signatures are the contract.
use std::net::SocketAddr;

pub use rsip;

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message is not valid UTF-8")]
    NotUtf8,
    #[error("missing header {0}")]
    MissingHeader(&'static str),
}

/// The top Via of a message, parsed leniently (IPv6, odd spacing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub received: Option<String>,
    /// `None`: no rport; `Some(None)`: `;rport` without a value; `Some(Some(p))`.
    pub rport: Option<Option<u16>>,
}

pub fn parse(_datagram: &[u8]) -> Result<rsip::SipMessage, MessageError> {
    unimplemented!()
}
pub fn answer_unparsable(_datagram: &[u8]) -> Option<Vec<u8>> {
    unimplemented!()
}
pub fn top_via(_headers: &rsip::Headers) -> Result<Via, MessageError> {
    unimplemented!()
}
pub fn call_id(_headers: &rsip::Headers) -> Result<String, MessageError> {
    unimplemented!()
}
pub fn cseq(_headers: &rsip::Headers) -> Result<(u32, rsip::Method), MessageError> {
    unimplemented!()
}
pub fn from_tag(_headers: &rsip::Headers) -> Option<String> {
    unimplemented!()
}
pub fn to_tag(_headers: &rsip::Headers) -> Option<String> {
    unimplemented!()
}
pub fn header_value<'a>(_headers: &'a rsip::Headers, _name: &str) -> Option<&'a str> {
    unimplemented!()
}
pub fn contact_uri(_headers: &rsip::Headers) -> Option<String> {
    unimplemented!()
}
pub fn uri_host_port(_uri: &str) -> Option<(String, Option<u16>)> {
    unimplemented!()
}
pub fn stamp_received(_request: &mut rsip::Request, _source: SocketAddr) {
    unimplemented!()
}
pub fn response_destination(_via: &Via, _source: SocketAddr) -> SocketAddr {
    unimplemented!()
}
pub fn response(_request: &rsip::Request, _status: u16, _to_tag: Option<&str>) -> rsip::Response {
    unimplemented!()
}
pub fn set_body(
    _headers: &mut rsip::Headers,
    _body: &mut Vec<u8>,
    _content_type: &str,
    _new: Vec<u8>,
) {
    unimplemented!()
}
pub fn new_branch() -> String {
    unimplemented!()
}
pub fn new_tag() -> String {
    unimplemented!()
}
pub fn new_call_id() -> String {
    unimplemented!()
}
pub fn to_bytes(_message: &rsip::SipMessage) -> Vec<u8> {
    unimplemented!()
}
