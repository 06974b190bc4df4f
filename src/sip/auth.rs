//! STUB — to be implemented (helper G). Signatures are the contract.
//! Digest access authentication for SIP clients (RFC 3261 §22, RFC 7616, RFC 2617).

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("stub")]
    Stub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `qop` options offered; empty for RFC 2069-style challenges.
    pub qop: Vec<String>,
    pub stale: bool,
}

impl Challenge {
    /// Parses one header value (`Digest realm="…", nonce="…", …`).
    pub fn parse(_header_value: &str) -> Result<Challenge, AuthError> {
        unimplemented!()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Answers challenges, keeping the nonce count per nonce (RFC 7616 §3.4).
#[derive(Debug, Default)]
pub struct DigestClient;

impl DigestClient {
    pub fn new() -> Self {
        DigestClient
    }
    /// The `Authorization` / `Proxy-Authorization` header value for a request.
    pub fn authorize(
        &mut self,
        _challenge: &Challenge,
        _credentials: &Credentials,
        _method: &str,
        _uri: &str,
        _body: &[u8],
    ) -> Result<String, AuthError> {
        unimplemented!()
    }
}
