//! One call's SIP state and the endpoint's call-level steps: answer, hang
//! up, reject (RFC 3261 §13.3, §15).

use std::net::SocketAddr;
use std::time::Instant;

use super::session_timer::SessionTimer;
use super::transactions::ByeEntry;
use super::{Action, CallId, EndReason, Endpoint};
use crate::sdp::{self, LocalMedia, Negotiated};
use crate::sip::Transport;
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::transaction::{NonInviteClient, TransactionKey};

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    /// 180 sent; the 200 goes out at `answer_at`.
    Ringing,
    /// 200 sent, waiting for the ACK.
    Answered,
    /// ACK received: media flows.
    Confirmed,
    /// Our BYE is out.
    Terminating,
}

/// An INVITE inside the call (the first one or a re-INVITE).
#[derive(Debug, Clone)]
pub(super) struct InviteRef {
    /// Its server transaction.
    pub key: TransactionKey,
    pub cseq: u32,
    /// We offered in the 2xx; the answer comes in the ACK (RFC 3264 §4).
    pub awaiting_answer: bool,
}

pub(super) struct Call {
    pub dialog: Dialog,
    pub state: CallState,
    /// The initial INVITE, kept to build its final response later.
    pub invite_request: rsip::Request,
    pub invite: InviteRef,
    pub reinvite: Option<InviteRef>,
    pub answer_at: Option<Instant>,
    pub rtp_port: u16,
    pub session_id: u64,
    pub session_version: u64,
    /// What the offer/answer exchange agreed, once it has.
    pub media: Option<Negotiated>,
    pub media_started: bool,
    /// The SDP we sent last (an answer, or an offer in a 2xx).
    pub local_sdp: String,
    /// Where the INVITE came from: the next hop when the Contact is behind NAT.
    pub source: SocketAddr,
    /// How the INVITE arrived; the dialog's requests travel the same way.
    pub transport: Transport,
    /// The caller's Contact is not reachable as written (NAT): send
    /// in-dialog requests to `source` (as Asterisk's `force_rport` does).
    pub behind_nat: bool,
    /// Counted in its source's setups (until ACKed or gone).
    pub in_setup: bool,
    /// `max_call_duration` after the answer: the line says goodbye.
    pub ends_at: Option<Instant>,
    /// What the last INVITE (or refresh) agreed about a session timer.
    pub session_timer: SessionTimer,
    /// When to give up waiting for the caller's refresh (RFC 4028 §10).
    pub session_expiry: Option<Instant>,
    /// Its media was stopped and its end logged.
    pub ended: bool,
    /// The line's own self-test call.
    pub self_test: bool,
}

impl Call {
    pub fn is_ringing(&self) -> bool {
        self.state == CallState::Ringing
    }

    /// The earliest of the call's own deadlines; none once it is ending.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.state == CallState::Terminating {
            return None;
        }
        [self.answer_at, self.ends_at, self.session_expiry]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn local_media(&self, endpoint: &super::EndpointConfig) -> LocalMedia {
        LocalMedia {
            address: endpoint.media_ip,
            rtp_port: self.rtp_port,
            session_id: self.session_id,
            session_version: self.session_version,
        }
    }
}

impl Endpoint {
    pub(super) fn via_sent_by(&self) -> String {
        self.config.contact_addr.to_string()
    }

    pub(super) fn local_contact(&self, transport: Transport) -> String {
        match transport {
            Transport::Udp => format!("sip:dial-a-service@{}", self.config.contact_addr),
            Transport::Tcp => format!(
                "sip:dial-a-service@{};transport=tcp",
                self.config.contact_addr
            ),
        }
    }

    /// Builds a response to `request` with our standard headers.
    pub(super) fn build_response(
        &self,
        request: &rsip::Request,
        status: u16,
        to_tag: Option<&str>,
        extra: &[(&str, String)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Vec<u8> {
        let mut response = message::response(request, status, to_tag);
        for (name, value) in extra {
            response
                .headers
                .push(rsip::Header::Other((*name).to_owned(), value.clone()));
        }
        // A product name tells a scanner which exploits to try: only
        // when the operator asks for it (`[sip] user_agent`).
        if let Some(server) = &self.config.user_agent {
            response
                .headers
                .push(rsip::Header::Other("Server".to_owned(), server.clone()));
        }
        if let Some((content_type, bytes)) = body {
            message::set_body(
                &mut response.headers,
                &mut response.body,
                content_type,
                bytes,
            );
        }
        message::to_bytes(&rsip::SipMessage::Response(response))
    }

    /// Sends the 200 OK with our SDP for a ringing call.
    pub(super) fn answer(&mut self, id: CallId, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state != CallState::Ringing {
            return;
        }
        call.answer_at = None;
        call.state = CallState::Answered;
        call.ends_at = Some(now + self.config.max_call_duration);
        call.session_expiry = call.session_timer.expiry(now);
        if let Some(media) = &call.media {
            self.actions.push_back(Action::PrepareMedia {
                call: id,
                codec: media.codec,
                caller: call.dialog.remote_uri.clone(),
                self_test: call.self_test,
            });
        }
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let contact = format!("<{}>", self.local_contact(call.transport));
        let mut headers = vec![
            ("Contact", contact),
            ("Allow", crate::sip::methods::ALLOW.to_owned()),
            ("Supported", "timer".to_owned()),
        ];
        headers.extend(call.session_timer.response_headers());
        let payload = self.build_response(
            &call.invite_request,
            200,
            Some(&call.dialog.id.local_tag),
            &headers,
            Some(("application/sdp", call.local_sdp.clone().into_bytes())),
        );
        let key = call.invite.key.clone();
        self.stats.calls_answered += 1;
        if let Some(entry) = self.transactions.invite_mut(&key) {
            entry.tx.respond(200, payload, now);
        }
        self.flush_transaction(&key);
        self.schedule_call(id);
    }

    /// Ends a ringing call with a final error response (CANCEL, shutdown).
    pub(super) fn reject_ringing(
        &mut self,
        id: CallId,
        status: u16,
        reason: EndReason,
        now: Instant,
    ) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let payload = self.build_response(
            &call.invite_request,
            status,
            Some(&call.dialog.id.local_tag),
            &[],
            None,
        );
        let key = call.invite.key.clone();
        if let Some(entry) = self.transactions.invite_mut(&key) {
            entry.tx.respond(status, payload, now);
        }
        self.flush_transaction(&key);
        self.end_call(id, reason);
        self.forget_call(id);
    }

    /// Stops media and logs the end, once per call (our BYE and the
    /// caller's may cross); the SIP side is the caller's business.
    pub(super) fn end_call(&mut self, id: CallId, reason: EndReason) {
        if let Some(call) = self.calls.get_mut(&id)
            && !call.ended
        {
            call.ended = true;
            self.actions.push_back(Action::StopMedia {
                call: id,
                rtp_port: call.rtp_port,
            });
            self.actions.push_back(Action::CallEnded {
                call: id,
                reason,
                self_test: call.self_test,
            });
        }
    }

    /// Sends BYE (a non-INVITE client transaction, Timers E/F) and stops media.
    pub(super) fn hang_up(&mut self, id: CallId, reason: EndReason, now: Instant) {
        let sent_by = self.via_sent_by();
        let Some(transport) = self.calls.get(&id).map(|c| c.transport) else {
            return;
        };
        let contact = self.local_contact(transport);
        self.end_setup(id);
        let user_agent = self.config.user_agent.clone();
        let timers = self.config.timers;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state == CallState::Terminating {
            return;
        }
        if call.state == CallState::Ringing {
            self.reject_ringing(id, 480, reason, now);
            return;
        }
        call.state = CallState::Terminating;
        let branch = message::new_branch(&mut self.rng);
        let mut bye = call
            .dialog
            .request(rsip::Method::Bye, &sent_by, &branch, &contact);
        if let Some(user_agent) = user_agent {
            bye.headers
                .push(rsip::Header::Other("User-Agent".to_owned(), user_agent));
        }
        let destination = next_hop(call);
        let payload = message::to_bytes(&rsip::SipMessage::Request(bye));
        let reliable = call.transport.is_reliable();
        let tx = NonInviteClient::new(payload, destination, reliable, timers, now);
        let key = TransactionKey::client(&branch, rsip::Method::Bye);
        self.transactions
            .insert_bye(key.clone(), ByeEntry { tx, call: id });
        self.flush_transaction(&key);
        self.end_call(id, reason);
    }

    /// Builds our SDP answer or offer for a call's current state.
    pub(super) fn negotiate(
        &self,
        offer: Option<&sdp::SessionDescription>,
        codecs: &[crate::media::Codec],
        local: &LocalMedia,
    ) -> Result<(Option<Negotiated>, String), sdp::SdpError> {
        match offer {
            Some(offer) => {
                let (negotiated, text) = sdp::answer(offer, codecs, local)?;
                Ok((Some(negotiated), text))
            }
            None => Ok((None, sdp::offer(codecs, local))),
        }
    }

    /// Media can start: the call is confirmed and the codec agreed.
    pub(super) fn start_media_if_ready(&mut self, id: CallId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.media_started || call.state != CallState::Confirmed {
            return;
        }
        let Some(media) = call.media.clone() else {
            return;
        };
        call.media_started = true;
        if call.invite.awaiting_answer {
            // The codec was only agreed in the ACK.
            self.actions.push_back(Action::PrepareMedia {
                call: id,
                codec: media.codec,
                caller: call.dialog.remote_uri.clone(),
                self_test: call.self_test,
            });
        }
        self.actions.push_back(Action::StartMedia {
            call: id,
            rtp_port: call.rtp_port,
            media,
            caller: call.dialog.remote_uri.clone(),
            self_test: call.self_test,
        });
    }
}

/// Where in-dialog requests go (RFC 3261 §12.2.1.1, §8.1.2): the first route
/// or the remote target; behind NAT, where the caller's INVITE came from.
fn next_hop(call: &Call) -> SocketAddr {
    if call.behind_nat && call.dialog.route_set.is_empty() {
        return call.source;
    }
    let uri = call.dialog.next_hop_uri();
    // Hostnames would need RFC 3263 DNS look-ups, which do not belong in a
    // sans-IO core; the previous hop is the best answer until a resolver
    // lands with the trunk work.
    message::uri_host_port(uri)
        .and_then(|(host, port)| {
            let ip: std::net::IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
            Some(SocketAddr::new(ip, port.unwrap_or(5060)))
        })
        .unwrap_or(call.source)
}
