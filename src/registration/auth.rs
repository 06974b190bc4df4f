//! Digest authentication as the registration uses it (RFC 3261 §22.2–22.4, RFC 7616,
//! RFC 8760): the challenges we hold, answered on every REGISTER, and when a new one
//! means "try again" and when it means "wrong password". The digest itself is
//! `sip::auth`'s; the state machine reaches it only through [`Authorizer`].

use rand::RngCore;
use rsip::Headers;

use super::RegistrationFailure;
use crate::config::TrunkConfig;
use crate::sip::auth::{AuthError, Challenge, ChallengeKind, Credentials, DigestClient};
use crate::sip::message::header_values;

/// stale=true is answered at most this often in one attempt.
const MAX_STALE: u8 = 2;

/// Answers digest challenges. The state machine sees challenges only through this, so
/// its tests can script a registrar without real digests.
pub trait Authorizer: Send {
    /// The challenge to answer among a response's `WWW-Authenticate` (or
    /// `Proxy-Authenticate`) values: by default `sip::auth`'s choice, the strongest
    /// algorithm we support (SHA-256 over MD5).
    fn choose(&self, header_values: &[&str]) -> Result<Challenge, AuthError> {
        Challenge::best(header_values.iter().copied())
    }
    /// The `Authorization` / `Proxy-Authorization` value for a bodiless request; a
    /// cnonce is drawn from `rng`.
    fn authorize(
        &mut self,
        challenge: &Challenge,
        method: &str,
        uri: &str,
        rng: &mut dyn RngCore,
    ) -> Result<String, AuthError>;
}

/// The real authorizer: the trunk's credentials and the digest client. No `Debug`: it
/// holds the password.
pub struct Digest {
    client: DigestClient,
    credentials: Credentials,
}

impl Digest {
    pub fn new(credentials: Credentials) -> Digest {
        Digest {
            client: DigestClient::new(),
            credentials,
        }
    }

    pub fn from_trunk(trunk: &TrunkConfig) -> Digest {
        Digest::new(Credentials {
            username: trunk.auth_username.clone(),
            password: trunk.password.expose().to_owned(),
        })
    }
}

impl Authorizer for Digest {
    fn authorize(
        &mut self,
        challenge: &Challenge,
        method: &str,
        uri: &str,
        rng: &mut dyn RngCore,
    ) -> Result<String, AuthError> {
        self.client
            .authorize(challenge, &self.credentials, method, uri, b"", rng)
    }
}

/// Where each kind's challenge is held.
fn slot(kind: ChallengeKind) -> usize {
    match kind {
        ChallengeKind::Www => 0,
        ChallengeKind::Proxy => 1,
    }
}

/// The challenges we hold, at most one of each kind.
pub(super) struct Auth {
    authorizer: Box<dyn Authorizer>,
    held: [Option<Challenge>; 2],
}

/// What one attempt (a REGISTER and those answering its challenges) has answered.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AuthProgress {
    /// Whether the credentials of each kind (WWW, proxy) answer a challenge received in
    /// this attempt (fresh), as opposed to one kept from an earlier refresh.
    fresh: [bool; 2],
    stale: u8,
}

impl Auth {
    pub fn new(authorizer: Box<dyn Authorizer>) -> Auth {
        Auth {
            authorizer,
            held: [None, None],
        }
    }

    /// `(header, value)` answering every challenge held, for a REGISTER to `uri`. A
    /// challenge the authorizer cannot answer is dropped, so the next attempt starts
    /// without it.
    pub fn answers(
        &mut self,
        uri: &str,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<(&'static str, String)>, RegistrationFailure> {
        let mut answers = Vec::new();
        for kind in [ChallengeKind::Www, ChallengeKind::Proxy] {
            let Some(challenge) = &self.held[slot(kind)] else {
                continue;
            };
            match self.authorizer.authorize(challenge, "REGISTER", uri, rng) {
                Ok(value) => answers.push((kind.credentials_header(), value)),
                Err(error) => {
                    self.held[slot(kind)] = None;
                    return Err(RegistrationFailure::BadChallenge {
                        reason: error.to_string(),
                    });
                }
            }
        }
        Ok(answers)
    }

    /// Takes the challenge of a 401/407 if answering it makes sense; see the
    /// registration module docs for the rules.
    pub fn take(
        &mut self,
        status: u16,
        headers: &Headers,
        progress: &mut AuthProgress,
    ) -> Result<(), RegistrationFailure> {
        let kind = ChallengeKind::from_status(status).unwrap_or(ChallengeKind::Www);
        let offered: Vec<&str> = header_values(headers, kind.challenge_header()).collect();
        let challenge = self.authorizer.choose(&offered).map_err(|error| {
            RegistrationFailure::BadChallenge {
                reason: match error {
                    AuthError::NoChallenge if offered.is_empty() => {
                        format!("{status} without a {} header", kind.challenge_header())
                    }
                    other => other.to_string(),
                },
            }
        })?;
        if challenge.stale {
            progress.stale += 1;
            if progress.stale > MAX_STALE {
                return Err(RegistrationFailure::AuthRejected { status });
            }
        } else if progress.fresh[slot(kind)] {
            return Err(RegistrationFailure::AuthRejected { status });
        }
        progress.fresh[slot(kind)] = true;
        self.held[slot(kind)] = Some(challenge);
        Ok(())
    }
}
