//! Transaction keys: which transaction a message belongs to (RFC 3261
//! §17.1.3 for responses to our requests, §17.2.3 for requests we receive).
//!
//! A server key is the top Via's branch and sent-by plus the method, ACK
//! folded into INVITE (§17.2.3 rule 3), so an ACK for a non-2xx finds its
//! INVITE and `key.with_method(Method::Invite)` finds the INVITE a CANCEL
//! cancels (§9.2). A branch without the magic cookie comes from an RFC 2543
//! peer: its key is what that peer's retransmissions share instead (Call-ID,
//! CSeq number, From tag). A client key is our branch and the method, which
//! a response carries back in its CSeq (§17.1.3).
//!
//! Values compare as §7.3.1 says: the branch is a token and the host a host
//! name or address, so both compare without case; the Call-ID and tags are
//! compared exactly (§20.8, §19.3), as the RFC 2543 peers that rely on them
//! retransmit them unchanged.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use rsip::Method;

use crate::sip::message::{self, Via};

/// What identifies one transaction; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionKey {
    role: Role,
    id: Id,
    method: KeyMethod,
}

/// Our requests and the peer's are separate name spaces: a peer cannot reach
/// one of our client transactions by sending a request that copies its Via.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A request we sent (§17.1).
    Client,
    /// A request we received (§17.2).
    Server,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Id {
    /// An RFC 3261 branch, lower case. Client keys have no sent-by: §17.1.3
    /// matches responses on the branch alone.
    Branch {
        branch: String,
        sent_by: Option<SentBy>,
    },
    /// No magic cookie (§17.2.3, RFC 2543 peers).
    Rfc2543 {
        call_id: String,
        cseq: u32,
        from_tag: String,
    },
}

/// The top Via's sent-by: host in lower case, port defaulted by transport
/// (§18.2.1, §19.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SentBy {
    host: String,
    port: u16,
}

/// `rsip::Method` is neither `Hash` nor `Ord`; it is a field-less enum, so
/// its discriminant stands in for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyMethod(Method);

impl KeyMethod {
    fn rank(self) -> u8 {
        self.0 as u8
    }
}

impl Hash for KeyMethod {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
    }
}

impl Ord for KeyMethod {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for KeyMethod {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// RFC 3261 §8.1.1.7: branches of RFC 3261 clients start with this.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

impl TransactionKey {
    /// The key of a request we received, `via` being its top Via (§17.2.3).
    pub fn server(via: &Via, request: &rsip::Request) -> TransactionKey {
        let id = match via.branch.as_deref() {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => Id::Branch {
                branch: branch.to_ascii_lowercase(),
                sent_by: Some(SentBy {
                    host: via.host.to_ascii_lowercase(),
                    port: via.port.unwrap_or_else(|| via.default_port()),
                }),
            },
            _ => {
                let headers = &request.headers;
                Id::Rfc2543 {
                    call_id: message::call_id(headers).unwrap_or_default(),
                    cseq: message::cseq(headers).map(|(n, _)| n).unwrap_or_default(),
                    from_tag: message::from_tag(headers).unwrap_or_default(),
                }
            }
        };
        TransactionKey {
            role: Role::Server,
            id,
            method: KeyMethod(fold_ack(request.method)),
        }
    }

    /// The key of a request we send with `branch` (one of ours, so RFC 3261).
    pub fn client(branch: &str, method: Method) -> TransactionKey {
        TransactionKey {
            role: Role::Client,
            id: Id::Branch {
                branch: branch.to_ascii_lowercase(),
                sent_by: None,
            },
            method: KeyMethod(method),
        }
    }

    /// The client transaction a response belongs to: its top Via's branch
    /// and its CSeq method (§17.1.3). `None` when either is missing.
    pub fn of_response(response: &rsip::Response) -> Option<TransactionKey> {
        let branch = message::top_via(&response.headers).ok()?.branch?;
        let (_, method) = message::cseq(&response.headers).ok()?;
        Some(TransactionKey::client(&branch, method))
    }

    /// The same transaction identity with another method: a CANCEL's key
    /// with `Method::Invite` is the key of the INVITE it cancels (§9.2).
    pub fn with_method(&self, method: Method) -> TransactionKey {
        TransactionKey {
            method: KeyMethod(fold_ack(method)),
            ..self.clone()
        }
    }

    /// The method of the request that created the transaction.
    pub fn method(&self) -> Method {
        self.method.0
    }

    pub fn role(&self) -> Role {
        self.role
    }
}

/// §17.2.3 rule 3: an ACK belongs to the INVITE transaction.
fn fold_ack(method: Method) -> Method {
    match method {
        Method::Ack => Method::Invite,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, via: &str, call_id: &str) -> rsip::Request {
        let text = format!(
            "{method} sip:line@192.0.2.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {via}\r\n\
             From: <sip:caller@example.org>;tag=f1\r\n\
             To: <sip:line@192.0.2.1>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 7 {method}\r\n\
             Content-Length: 0\r\n\r\n"
        );
        match message::parse(text.as_bytes()).expect("a valid request") {
            rsip::SipMessage::Request(request) => request,
            rsip::SipMessage::Response(_) => unreachable!("a request was built"),
        }
    }

    fn key(method: &str, via: &str) -> TransactionKey {
        let request = request(method, via, "call-1@example.org");
        let top = message::top_via(&request.headers).expect("a Via");
        TransactionKey::server(&top, &request)
    }

    #[test]
    fn cancel_matches_its_invite_only() {
        let invite = key("INVITE", "198.51.100.7:5062;branch=z9hG4bKaaa");
        let cancel = key("CANCEL", "198.51.100.7:5062;branch=z9hG4bKaaa");
        assert_ne!(cancel, invite, "a CANCEL is a transaction of its own");
        assert_eq!(cancel.with_method(Method::Invite), invite);
        // Another INVITE's branch, or the same branch from another sent-by.
        for other in [
            "198.51.100.7:5062;branch=z9hG4bKbbb",
            "198.51.100.8:5062;branch=z9hG4bKaaa",
            "198.51.100.7:5064;branch=z9hG4bKaaa",
        ] {
            assert_ne!(key("CANCEL", other).with_method(Method::Invite), invite);
        }
    }

    #[test]
    fn ack_for_a_failure_matches_its_invite() {
        let invite = key("INVITE", "198.51.100.7:5062;branch=z9hG4bKaaa");
        assert_eq!(key("ACK", "198.51.100.7:5062;branch=z9hG4bKaaa"), invite);
        // A 2xx's ACK has a branch of its own (§17.1.1.3): no match.
        assert_ne!(key("ACK", "198.51.100.7:5062;branch=z9hG4bKccc"), invite);
    }

    #[test]
    fn branch_and_host_compare_without_case_port_defaults() {
        // §7.3.1: the branch is a token, the host a host name.
        let invite = key("INVITE", "Phone.Example.ORG;branch=z9hG4bKAbC");
        assert_eq!(
            key("INVITE", "phone.example.org:5060;branch=z9hG4bKabc"),
            invite
        );
        assert_ne!(
            key("INVITE", "phone.example.org:5070;branch=z9hG4bKabc"),
            invite
        );
        assert_ne!(key("BYE", "phone.example.org;branch=z9hG4bKabc"), invite);
    }

    #[test]
    fn rfc_2543_requests_key_on_what_retransmissions_share() {
        let invite = key("INVITE", "198.51.100.7:5062;branch=1");
        assert_eq!(key("INVITE", "198.51.100.7:5062;branch=1"), invite);
        assert_eq!(key("ACK", "198.51.100.7:5062"), invite);
        let cancel = key("CANCEL", "198.51.100.7:5062");
        assert_eq!(cancel.with_method(Method::Invite), invite);
        // The Call-ID is compared exactly (§20.8).
        let other = request("INVITE", "198.51.100.7:5062", "CALL-1@example.org");
        let top = message::top_via(&other.headers).expect("a Via");
        assert_ne!(TransactionKey::server(&top, &other), invite);
    }

    #[test]
    fn responses_match_client_keys_by_branch_and_cseq_method() {
        let bye = TransactionKey::client("z9hG4bK0123", Method::Bye);
        let response = |method: &str| {
            let text = format!(
                "SIP/2.0 200 OK\r\n\
                 Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK0123;received=203.0.113.9\r\n\
                 From: <sip:line@192.0.2.1>;tag=a\r\nTo: <sip:c@example.org>;tag=b\r\n\
                 Call-ID: x\r\nCSeq: 2 {method}\r\nContent-Length: 0\r\n\r\n"
            );
            match message::parse(text.as_bytes()).expect("valid") {
                rsip::SipMessage::Response(r) => r,
                rsip::SipMessage::Request(_) => unreachable!("a response"),
            }
        };
        assert_eq!(
            TransactionKey::of_response(&response("BYE")),
            Some(bye.clone())
        );
        assert_ne!(
            TransactionKey::of_response(&response("CANCEL")),
            Some(bye.clone())
        );
        // A request copying our Via is not a response to us.
        let copied = key("BYE", "192.0.2.1:5060;branch=z9hG4bK0123");
        assert_ne!(copied, bye);
        assert_eq!(copied.role(), Role::Server);
    }
}
