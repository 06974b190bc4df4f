//! STUB — to be implemented (helper A). Signatures are the contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DialogError {
    #[error("stub")]
    Stub,
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    pub local_uri: String,
    pub remote_uri: String,
    pub remote_target: String,
    pub route_set: Vec<String>,
}

impl Dialog {
    pub fn new_uas(_invite: &rsip::Request, _local_tag: &str) -> Result<Dialog, DialogError> {
        unimplemented!()
    }
    pub fn new_uac(
        _invite: &rsip::Request,
        _response: &rsip::Response,
    ) -> Result<Dialog, DialogError> {
        unimplemented!()
    }
    pub fn uas_id_of(_request: &rsip::Request) -> Option<DialogId> {
        unimplemented!()
    }
    pub fn check_remote_cseq(&mut self, _cseq: u32) -> Result<(), DialogError> {
        unimplemented!()
    }
    pub fn request(
        &mut self,
        _method: rsip::Method,
        _via_sent_by: &str,
        _branch: &str,
        _local_contact: &str,
    ) -> rsip::Request {
        unimplemented!()
    }
    pub fn ack(&self, _invite_cseq: u32, _via_sent_by: &str, _branch: &str) -> rsip::Request {
        unimplemented!()
    }
    pub fn next_hop_uri(&self) -> &str {
        unimplemented!()
    }
    pub fn update_remote_target(&mut self, _contact_uri: String) {}
}
