//! Digest access authentication for a SIP client: read the `WWW-Authenticate` (401) and
//! `Proxy-Authenticate` (407) challenges of a trunk, and answer them with an `Authorization` /
//! `Proxy-Authorization` header value (RFC 3261 §22.2 and §22.4, RFC 7616, RFC 2617, RFC 8760).
//!
//! Call order:
//!
//! 1. A 401 or 407 arrives. [`Challenge::best`] picks the strongest challenge we can answer
//!    among all of its challenge headers (RFC 7616 §3.7, RFC 8760 §2.4). [`ChallengeKind`]
//!    names the header to answer in.
//! 2. [`DigestClient::authorize`] gives the header value for the retried request. It keeps
//!    a nonce count per realm (RFC 7616 §3.4): `nc` rises with each use of the same nonce and
//!    restarts at 1 when the server sends a new nonce.
//! 3. If the retried request draws another challenge with `stale=true`, the nonce expired
//!    but the password was right. Answer again with the new nonce (RFC 7616 §3.3). Without
//!    `stale`, the credentials were refused. Don't send them again for that request
//!    (RFC 3261 §22.2).
//!
//! What we support:
//! - algorithms MD5, SHA-256 and SHA-512-256, each plain or `-sess`;
//! - `qop=auth` (preferred) and `qop=auth-int`, plus the RFC 2069 form when the challenge
//!   offers no qop.
//!
//! What we don't support:
//! - `userhash`: the client MAY hash the username (RFC 7616 §3.4.4), so we always send it plain;
//! - `Authentication-Info` `nextnonce`;
//! - AKA algorithms (IMS).
//!
//! Hand-written on RustCrypto's `md-5` and `sha2` for these reasons:
//! - `rsip`'s `DigestGenerator` formats `nc` in decimal, so every hash is wrong from the 10th
//!   use of a nonce. It also renders `algorithm=SHA256` and gets the `-sess` HA1 wrong.
//! - The `digest_auth` crate (0.3.1) cuts its input at character counts used as byte offsets,
//!   so a non-ASCII challenge makes it panic. It also prefers `auth-int` and reads only one
//!   challenge.
//!
//! The digest itself is a few lines. The parser below never panics and rejects control
//! characters, which could otherwise be echoed into our own headers.

mod scan;

use std::fmt;

use md5::Md5;
use rand::Rng;
use sha2::{Digest, Sha256, Sha512_256};

use scan::split_challenges;

/// Longest challenge header value we read. A nonce is echoed in every request, so a real
/// challenge is a few hundred bytes. Longer ones are hostile or broken.
pub const MAX_CHALLENGE_LEN: usize = 4096;

/// Realms whose nonce counts we remember. A registrar and one or two proxies are usual. The
/// cap bounds memory when a hostile peer invents realms.
const MAX_SESSIONS: usize = 8;

/// How much of an offending value an error message quotes.
const ERROR_SNIPPET_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The challenge uses another scheme (`Basic`, `Bearer`, …).
    #[error("challenge scheme {0:?} is not digest")]
    NotDigest(String),
    #[error("digest challenge has no {0} parameter")]
    MissingParam(&'static str),
    #[error("digest challenge repeats the {0} parameter")]
    DuplicateParam(&'static str),
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// None of the offered `qop` values is `auth` or `auth-int`.
    #[error("unsupported digest qop {0:?}")]
    UnsupportedQop(String),
    #[error("malformed challenge at byte {at}: {reason}")]
    Malformed { at: usize, reason: &'static str },
    #[error("challenge is {len} bytes, over the {max} byte limit")]
    TooLong { len: usize, max: usize },
    /// A control character (CR, LF, …) would end up inside our own header.
    #[error("control character in {0}")]
    ControlCharacter(&'static str),
    #[error("no challenge to answer")]
    NoChallenge,
    /// The server let us use one nonce 2^32 - 1 times. We can't count further.
    #[error("nonce count exhausted for realm {realm:?}")]
    NonceCountExhausted { realm: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
    Sha512_256,
    Sha512_256Sess,
}

impl Algorithm {
    /// Parses an `algorithm` token, case-insensitively (RFC 7616 §3.3).
    pub fn from_token(token: &str) -> Option<Algorithm> {
        const ALL: [Algorithm; 6] = [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ];
        ALL.into_iter()
            .find(|a| a.token().eq_ignore_ascii_case(token))
    }

    /// The token as RFC 7616 §6.1 registers it.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Whether HA1 also covers the nonce and cnonce (RFC 7616 §3.4.2).
    pub fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// How strong the hash is. When several challenges can be answered, the strongest wins.
    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 0,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 1,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => 2,
        }
    }

    /// Lowercase hex of the hash of `data` (RFC 7616 §3.4.1).
    fn hex_digest(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data)),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => hex(&Sha512_256::digest(data)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// The quality of protection used in an answer (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// Method and URI are protected.
    Auth,
    /// The body is protected as well.
    AuthInt,
}

impl Qop {
    pub fn token(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// Which pair of headers a challenge travels in (RFC 3261 §22.2, §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// 401 from a registrar or UAS: `WWW-Authenticate` → `Authorization`.
    Www,
    /// 407 from a proxy: `Proxy-Authenticate` → `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// The kind for a response status, `None` if the status does not challenge.
    pub fn from_status(status: u16) -> Option<ChallengeKind> {
        match status {
            401 => Some(ChallengeKind::Www),
            407 => Some(ChallengeKind::Proxy),
            _ => None,
        }
    }

    /// The response header carrying the challenges.
    pub fn challenge_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "WWW-Authenticate",
            ChallengeKind::Proxy => "Proxy-Authenticate",
        }
    }

    /// The request header carrying our answer.
    pub fn credentials_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `qop` options offered, lowercase; empty for RFC 2069-style challenges.
    pub qop: Vec<String>,
    pub stale: bool,
}

impl Challenge {
    /// Parses one header value (`Digest realm="…", nonce="…", …`).
    ///
    /// If the value holds several comma-joined challenges, the first Digest one is returned.
    pub fn parse(header_value: &str) -> Result<Challenge, AuthError> {
        let raws = split_challenges(header_value)?;
        let Some(first_scheme) = raws.first().map(|raw| raw.scheme) else {
            return Err(AuthError::NoChallenge);
        };
        match raws
            .into_iter()
            .find(|raw| raw.scheme.eq_ignore_ascii_case("digest"))
        {
            Some(raw) => Challenge::from_params(raw.params),
            None => Err(AuthError::NotDigest(snippet(first_scheme))),
        }
    }

    /// Parses every challenge in every header value, in order.
    ///
    /// Other schemes come back as [`AuthError::NotDigest`]. A malformed value gives one error.
    pub fn parse_all<'a, I>(header_values: I) -> Vec<Result<Challenge, AuthError>>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut out = Vec::new();
        for value in header_values {
            match split_challenges(value) {
                Ok(raws) if raws.is_empty() => out.push(Err(AuthError::NoChallenge)),
                Ok(raws) => out.extend(raws.into_iter().map(|raw| {
                    if raw.scheme.eq_ignore_ascii_case("digest") {
                        Challenge::from_params(raw.params)
                    } else {
                        Err(AuthError::NotDigest(snippet(raw.scheme)))
                    }
                })),
                Err(e) => out.push(Err(e)),
            }
        }
        out
    }

    /// The challenge to answer among all the challenge headers of one response.
    ///
    /// Challenges we can't answer are skipped: another scheme, an unknown algorithm, or no
    /// usable qop. Of the rest, the strongest algorithm wins, and on a tie the topmost one.
    /// RFC 7616 §3.7 and RFC 8760 §2.4 say to take the topmost supported challenge "unless a
    /// local policy dictates otherwise". Our policy is not to fall back to MD5 when the
    /// server also offers SHA-256. If nothing can be answered, the first error is returned.
    pub fn best<'a, I>(header_values: I) -> Result<Challenge, AuthError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut best: Option<Challenge> = None;
        let mut first_error = None;
        for parsed in Challenge::parse_all(header_values) {
            let usable = parsed.and_then(|c| c.qop_choice().map(|_| c));
            match usable {
                Ok(c) => {
                    if best
                        .as_ref()
                        .is_none_or(|b| c.algorithm.strength() > b.algorithm.strength())
                    {
                        best = Some(c);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        best.ok_or(first_error.unwrap_or(AuthError::NoChallenge))
    }

    /// The qop we answer with: `auth` when offered, since it needs no body and every server
    /// checks it; else `auth-int`. `None` means the RFC 2069 form, for a challenge with no qop.
    pub fn qop_choice(&self) -> Result<Option<Qop>, AuthError> {
        if self.qop.is_empty() {
            return Ok(None);
        }
        if self.qop.iter().any(|q| q == "auth") {
            Ok(Some(Qop::Auth))
        } else if self.qop.iter().any(|q| q == "auth-int") {
            Ok(Some(Qop::AuthInt))
        } else {
            Err(AuthError::UnsupportedQop(snippet(&self.qop.join(","))))
        }
    }

    fn from_params(params: Vec<(&str, String)>) -> Result<Challenge, AuthError> {
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = None;
        let mut qop = None;
        let mut stale = None;
        for (name, value) in params {
            // Parameter names are case-insensitive (RFC 3261 §7.3.1). Unknown ones are
            // ignored: domain, charset, userhash and vendor extensions (RFC 7616 §3.3).
            let (slot, key) = match name.to_ascii_lowercase().as_str() {
                "realm" => (&mut realm, "realm"),
                "nonce" => (&mut nonce, "nonce"),
                "opaque" => (&mut opaque, "opaque"),
                "algorithm" => (&mut algorithm, "algorithm"),
                "qop" => (&mut qop, "qop"),
                "stale" => (&mut stale, "stale"),
                _ => continue,
            };
            if value.chars().any(char::is_control) {
                return Err(AuthError::ControlCharacter(key));
            }
            if slot.replace(value).is_some() {
                return Err(AuthError::DuplicateParam(key));
            }
        }
        let algorithm = match algorithm {
            // Without the parameter the algorithm is MD5 (RFC 7616 §3.3).
            None => Algorithm::Md5,
            Some(token) => Algorithm::from_token(token.trim())
                .ok_or_else(|| AuthError::UnsupportedAlgorithm(snippet(&token)))?,
        };
        let qop = qop
            .map(|list| {
                list.split(',')
                    .map(|q| q.trim().to_ascii_lowercase())
                    .filter(|q| !q.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Challenge {
            realm: realm.ok_or(AuthError::MissingParam("realm"))?,
            nonce: nonce.ok_or(AuthError::MissingParam("nonce"))?,
            opaque,
            algorithm,
            qop,
            stale: stale.is_some_and(|s| s.trim().eq_ignore_ascii_case("true")),
        })
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Written by hand so the password never reaches a log line.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What we remember about the nonce in use for one realm.
#[derive(Debug)]
struct NonceSession {
    realm: String,
    nonce: String,
    /// How many times this nonce has been answered.
    nc: u32,
    /// The cnonce that went into the `-sess` HA1. It is reused for the whole nonce, so a
    /// server that keeps the session key from the first request (RFC 2617 §3.2.2.2) agrees
    /// with one that computes it again from each request's cnonce.
    sess_cnonce: Option<String>,
}

/// Answers challenges, keeping the nonce count per nonce (RFC 7616 §3.4).
#[derive(Debug, Default)]
pub struct DigestClient {
    /// One entry per realm, oldest first.
    sessions: Vec<NonceSession>,
}

impl DigestClient {
    pub fn new() -> Self {
        DigestClient::default()
    }

    /// The `Authorization` / `Proxy-Authorization` header value for a request.
    ///
    /// `uri` is the Request-URI as sent. `body` counts only for `qop=auth-int`. Each call
    /// uses the nonce once more, so call it once per request sent. The cnonce is drawn
    /// from `rng`.
    pub fn authorize(
        &mut self,
        challenge: &Challenge,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        body: &[u8],
        rng: &mut (impl Rng + ?Sized),
    ) -> Result<String, AuthError> {
        // 128 random bits; RFC 7616 §5.4 asks for a cnonce an attacker can't choose.
        let cnonce = format!("{:032x}", rng.random::<u128>());
        self.authorize_with_cnonce(challenge, credentials, method, uri, body, &cnonce)
    }

    /// [`DigestClient::authorize`] with a given cnonce, for test vectors.
    ///
    /// With a `-sess` algorithm, only the first answer to a nonce takes the given cnonce.
    /// Later answers reuse it (see `NonceSession::sess_cnonce`).
    pub fn authorize_with_cnonce(
        &mut self,
        challenge: &Challenge,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        body: &[u8],
        cnonce: &str,
    ) -> Result<String, AuthError> {
        // Everything below is echoed into our header, and a CR or LF would split it.
        // `Challenge::parse` already refuses them, but a `Challenge` can also be built by hand,
        // and the credentials come from config.
        let echoed = [
            ("username", credentials.username.as_str()),
            ("method", method),
            ("uri", uri),
            ("cnonce", cnonce),
            ("realm", challenge.realm.as_str()),
            ("nonce", challenge.nonce.as_str()),
            ("opaque", challenge.opaque.as_deref().unwrap_or("")),
        ];
        if let Some((field, _)) = echoed
            .iter()
            .find(|(_, value)| value.chars().any(char::is_control))
        {
            return Err(AuthError::ControlCharacter(field));
        }
        let qop = challenge.qop_choice()?;
        let alg = challenge.algorithm;

        let session = self.session_for(challenge);
        session.nc = session
            .nc
            .checked_add(1)
            .ok_or_else(|| AuthError::NonceCountExhausted {
                realm: snippet(&challenge.realm),
            })?;
        let nc = format!("{:08x}", session.nc);
        let cnonce = if alg.is_sess() {
            session
                .sess_cnonce
                .get_or_insert_with(|| cnonce.to_owned())
                .clone()
        } else {
            cnonce.to_owned()
        };

        let response = digest_response(&DigestInput {
            algorithm: alg,
            username: &credentials.username,
            password: &credentials.password,
            realm: &challenge.realm,
            nonce: &challenge.nonce,
            method,
            uri,
            body,
            qop,
            nc: &nc,
            cnonce: &cnonce,
        });

        let mut value = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\", algorithm={alg}",
            quote(&credentials.username),
            quote(&challenge.realm),
            quote(&challenge.nonce),
            quote(uri),
        );
        // A -sess HA1 holds the cnonce, so the server needs it even in the RFC 2069 form.
        if qop.is_some() || alg.is_sess() {
            value.push_str(&format!(", cnonce={}", quote(&cnonce)));
        }
        if let Some(opaque) = &challenge.opaque {
            value.push_str(&format!(", opaque={}", quote(opaque)));
        }
        if let Some(qop) = qop {
            value.push_str(&format!(", qop={}, nc={nc}", qop.token()));
        }
        Ok(value)
    }

    /// The session for the challenge's realm. A new nonce there starts the count again
    /// (RFC 7616 §3.4: nc counts uses of one nonce). That is also how a `stale=true` retry
    /// begins.
    fn session_for(&mut self, challenge: &Challenge) -> &mut NonceSession {
        let index = match self
            .sessions
            .iter()
            .position(|s| s.realm == challenge.realm)
        {
            Some(i) => {
                let session = &mut self.sessions[i];
                if session.nonce != challenge.nonce {
                    session.nonce.clone_from(&challenge.nonce);
                    session.nc = 0;
                    session.sess_cnonce = None;
                }
                i
            }
            None => {
                if self.sessions.len() >= MAX_SESSIONS {
                    self.sessions.remove(0);
                }
                self.sessions.push(NonceSession {
                    realm: challenge.realm.clone(),
                    nonce: challenge.nonce.clone(),
                    nc: 0,
                    sess_cnonce: None,
                });
                self.sessions.len() - 1
            }
        };
        &mut self.sessions[index]
    }
}

/// Everything the `response` hash covers.
struct DigestInput<'a> {
    algorithm: Algorithm,
    username: &'a str,
    password: &'a str,
    realm: &'a str,
    nonce: &'a str,
    method: &'a str,
    uri: &'a str,
    body: &'a [u8],
    qop: Option<Qop>,
    /// Eight lowercase hex digits.
    nc: &'a str,
    cnonce: &'a str,
}

/// The `response` value (RFC 7616 §3.4.1, RFC 2617 §3.2.2, RFC 2069 §2.1.2).
fn digest_response(i: &DigestInput) -> String {
    let h = |data: &str| i.algorithm.hex_digest(data.as_bytes());
    let mut ha1 = h(&format!("{}:{}:{}", i.username, i.realm, i.password));
    if i.algorithm.is_sess() {
        // RFC 7616 §3.4.2: A1 = H(user:realm:pass) ":" nonce ":" cnonce.
        ha1 = h(&format!("{ha1}:{}:{}", i.nonce, i.cnonce));
    }
    let ha2 = match i.qop {
        Some(Qop::AuthInt) => h(&format!(
            "{}:{}:{}",
            i.method,
            i.uri,
            i.algorithm.hex_digest(i.body)
        )),
        Some(Qop::Auth) | None => h(&format!("{}:{}", i.method, i.uri)),
    };
    match i.qop {
        Some(qop) => h(&format!(
            "{ha1}:{}:{}:{}:{}:{ha2}",
            i.nonce,
            i.nc,
            i.cnonce,
            qop.token()
        )),
        None => h(&format!("{ha1}:{}:{ha2}", i.nonce)),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A quoted-string, with `"` and `\` escaped as quoted-pairs (RFC 3261 §25.1).
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The start of a network-supplied value, so that hostile input can't bloat logs.
fn snippet(value: &str) -> String {
    value.chars().take(ERROR_SNIPPET_LEN).collect()
}

#[cfg(test)]
mod tests;
