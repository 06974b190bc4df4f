//! Incoming requests: matching to transactions (RFC 3261 §17.2.3) and
//! dialogs (§12.2.2), and what each method does here.

use std::net::SocketAddr;
use std::time::Instant;

use rand::Rng;

use super::call::{Call, CallState, InviteRef};
use super::session_timer::{MIN_SE, SessionTimer};
use super::transactions::InviteEntry;
use super::{Action, CallId, EndReason, Endpoint, MediaPorts};
use crate::call::keys;
use crate::config::Untrusted;
use crate::sdp;
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::methods::{self, ALLOW};
use crate::sip::transaction::{InviteServer, NonInviteServer, ServerEvent, TransactionKey};
use crate::sip::{Transmit, Transport};

/// Where the responses to a request go, and how.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin {
    pub destination: SocketAddr,
    pub transport: Transport,
}

/// Server transactions for in-dialog requests beyond this are answered
/// statelessly: a caller flooding INFOs cannot grow the table for 32 s each.
const MAX_SERVER_TRANSACTIONS: usize = 4096;
/// How long a caller refused for load is asked to wait (RFC 3261 §21.5.4):
/// a setup that is never ACKed is given up after 64·T1 = 32 s.
const RETRY_AFTER: &str = "30";

impl Endpoint {
    pub(super) fn handle_request(
        &mut self,
        mut request: rsip::Request,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
        ports: &mut dyn MediaPorts,
    ) {
        let Ok(via) = message::top_via(&request.headers) else {
            self.stats.malformed_dropped += 1;
            return;
        };
        // §18.2.2 and RFC 3581: over TCP the response goes back on the
        // request's connection; over UDP to the address it came from (a
        // client's `received` or Via host would let it aim our answers,
        // and their retransmissions, at someone else).
        let origin = Origin {
            destination: match transport {
                Transport::Tcp => source,
                Transport::Udp => message::response_destination(&via, source),
            },
            transport,
        };
        // Who may talk to us comes before anything else: an untrusted
        // source learns nothing (or gets one 403) whatever it sends.
        if !self.admission.is_allowed(source.ip()) && !self.is_self_test(source, transport) {
            return self.refuse_untrusted(&request, source, origin, now);
        }
        message::stamp_received(&mut request, source);
        let key = TransactionKey::server(&via, &request);

        match request.method {
            rsip::Method::Ack => return self.handle_ack(&key, request, now),
            rsip::Method::Invite => {
                if let Some(entry) = self.transactions.invite_mut(&key) {
                    self.stats.retransmissions_absorbed += 1;
                    entry.tx.handle_retransmission(now);
                    return self.flush_transaction(&key);
                }
            }
            _ => {
                if let Some(tx) = self.transactions.non_invite_mut(&key) {
                    self.stats.retransmissions_absorbed += 1;
                    tx.handle_retransmission(now);
                    return self.flush_transaction(&key);
                }
            }
        }

        // Extensions we were told to support but don't (§8.2.2.3); `timer`
        // we do (RFC 4028).
        if !matches!(request.method, rsip::Method::Cancel | rsip::Method::Ack) {
            let unsupported: Vec<&str> = message::header_values(&request.headers, "Require")
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|option| !option.is_empty() && !option.eq_ignore_ascii_case("timer"))
                .collect();
            if !unsupported.is_empty() {
                let unsupported = unsupported.join(", ");
                return self.reply_stateless(
                    &request,
                    origin,
                    420,
                    &[("Unsupported", unsupported)],
                );
            }
        }

        let in_dialog = message::to_tag(&request.headers).is_some();
        match request.method {
            rsip::Method::Invite if in_dialog => self.handle_reinvite(&key, request, origin, now),
            rsip::Method::Invite => self.handle_invite(&key, request, source, origin, now, ports),
            rsip::Method::Cancel => self.handle_cancel(&key, request, origin, now),
            rsip::Method::Options => {
                let extra = [
                    ("Allow", ALLOW.to_owned()),
                    ("Accept", "application/sdp".to_owned()),
                    ("Supported", "timer".to_owned()),
                ];
                self.reply_stateless(&request, origin, 200, &extra)
            }
            rsip::Method::Bye | rsip::Method::Info => {
                self.handle_in_dialog(&key, request, origin, now)
            }
            // Methods rsip knows but the line does not do: 405 with `Allow`
            // (§8.2.1); methods nobody knows get 501 (§21.5.2).
            method if !methods::is_allowed(method) => {
                self.reply_stateless(&request, origin, 405, &[("Allow", ALLOW.to_owned())])
            }
            _ => self.reply_stateless(&request, origin, 501, &[("Allow", ALLOW.to_owned())]),
        }
    }

    /// A request from outside the trust policy: one 403 (never for an ACK),
    /// or nothing at all with `untrusted = "ignore"`; logged once a minute
    /// per source.
    fn refuse_untrusted(
        &mut self,
        request: &rsip::Request,
        source: SocketAddr,
        origin: Origin,
        now: Instant,
    ) {
        if request.method == rsip::Method::Invite {
            self.stats.calls_rejected += 1;
        }
        const KIND: &str = "request from an address the line does not take calls from";
        if self.quiet_note(KIND, source, now) {
            tracing::info!(
                %source,
                method = %request.method,
                untrusted = self.admission.untrusted().config_name(),
                "{KIND} (see [trunk] trust and accept_direct)"
            );
        }
        if self.admission.untrusted() == Untrusted::Reject && request.method != rsip::Method::Ack {
            self.reply_stateless(request, origin, 403, &[]);
        }
    }

    /// Answers once, keeping no state: a retransmitted request is simply
    /// answered again, identically (its To-tag derives from the request).
    /// Every rejection outside a call goes this way, so a flood of requests
    /// costs no memory and each of our answers goes out exactly once per
    /// request (a stateful final response to an INVITE would be resent up
    /// to eleven times, RFC 3261 §17.2.1). Never for an ACK.
    pub(super) fn reply_stateless(
        &mut self,
        request: &rsip::Request,
        origin: Origin,
        status: u16,
        extra: &[(&str, String)],
    ) {
        if request.method == rsip::Method::Ack {
            return;
        }
        if request.method == rsip::Method::Invite && status >= 300 {
            self.stats.calls_rejected += 1;
        }
        let tag = self.stateless_tag(request);
        let payload = self.build_response(request, status, Some(&tag), extra, None);
        self.outbox.push_back(Transmit {
            destination: origin.destination,
            payload,
            transport: origin.transport,
        });
    }

    /// A To-tag that is the same for every retransmission of `request`
    /// (RFC 3261 §8.2.6.2) and unguessable for anyone else: an HMAC of what
    /// retransmissions share, under a key drawn at creation.
    fn stateless_tag(&self, request: &rsip::Request) -> String {
        let headers = &request.headers;
        let mut mac = ring::hmac::Context::with_key(&self.tag_key);
        // Each field length-prefixed, so no two requests' fields run together alike.
        let mut field = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_be_bytes());
            mac.update(bytes);
        };
        field(message::call_id(headers).unwrap_or_default().as_bytes());
        field(message::from_tag(headers).unwrap_or_default().as_bytes());
        let cseq = message::cseq(headers).map(|(n, _)| n).unwrap_or_default();
        field(&cseq.to_be_bytes());
        let branch = message::top_via(headers).ok().and_then(|via| via.branch);
        field(branch.unwrap_or_default().as_bytes());
        let tag = mac.sign();
        tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Answers an in-dialog non-INVITE request through its own server
    /// transaction, so a retransmission gets the same answer; statelessly
    /// once the table is full.
    fn reply_once(
        &mut self,
        key: &TransactionKey,
        request: &rsip::Request,
        origin: Origin,
        status: u16,
        extra: &[(&str, String)],
        now: Instant,
    ) {
        if request.method == rsip::Method::Invite
            || self.transactions.non_invite_servers() >= MAX_SERVER_TRANSACTIONS
        {
            return self.reply_stateless(request, origin, status, extra);
        }
        let tag = message::new_tag(&mut self.rng);
        let payload = self.build_response(request, status, Some(&tag), extra, None);
        let mut tx = NonInviteServer::new(
            origin.destination,
            origin.transport.is_reliable(),
            self.config.timers,
            now,
        );
        tx.respond(status, payload, now);
        self.transactions.insert_non_invite(key.clone(), tx);
        self.flush_transaction(key);
    }

    /// Refuses a new call for load: 503 with `Retry-After`, logged once a
    /// minute per source and reason.
    fn refuse_for_load(
        &mut self,
        request: &rsip::Request,
        source: SocketAddr,
        origin: Origin,
        kind: &'static str,
        now: Instant,
    ) {
        if self.quiet_note(kind, source, now) {
            tracing::warn!(%source, calls = self.calls.len(), "{kind}");
        }
        self.reply_stateless(
            request,
            origin,
            503,
            &[("Retry-After", RETRY_AFTER.to_owned())],
        );
    }

    /// Logs a refused offer once a minute per source.
    fn note_unusable_offer(
        &mut self,
        source: SocketAddr,
        error: &dyn std::fmt::Display,
        now: Instant,
    ) {
        const KIND: &str = "INVITE with an unusable SDP offer";
        if self.quiet_note(KIND, source, now) {
            tracing::info!(%source, %error, "{KIND}");
        }
    }

    fn handle_invite(
        &mut self,
        key: &TransactionKey,
        request: rsip::Request,
        source: SocketAddr,
        origin: Origin,
        now: Instant,
        ports: &mut dyn MediaPorts,
    ) {
        self.stats.calls_offered += 1;
        // Everything that can refuse the call runs before any state is
        // kept, so refusals are stateless and cost O(1).
        let self_test = self.is_self_test(source, origin.transport);
        let admitted = if self_test {
            self.admission.check_capacity(self.calls.len())
        } else {
            self.admission
                .check_new_call(source.ip(), self.calls.len(), now)
        };
        if let Err(refusal) = admitted {
            return self.refuse_for_load(&request, source, origin, refusal.kind(), now);
        }
        let offer = match parse_offer(&request) {
            Ok(offer) => offer,
            Err(OfferProblem::ContentType) => {
                let accept = [("Accept", "application/sdp".to_owned())];
                return self.reply_stateless(&request, origin, 415, &accept);
            }
            Err(OfferProblem::Sdp(error)) => {
                self.note_unusable_offer(source, &error, now);
                let status = if error.is_too_large() { 488 } else { 400 };
                return self.reply_stateless(&request, origin, status, &[]);
            }
        };
        let session_timer = SessionTimer::of_request(&request.headers);
        if session_timer == SessionTimer::TooSmall {
            let min_se = ("Min-SE", MIN_SE.as_secs().to_string());
            return self.reply_stateless(&request, origin, 422, &[min_se]);
        }
        let local_tag = message::new_tag(&mut self.rng);
        let dialog = match Dialog::new_uas(&request, &local_tag, &mut self.rng) {
            Ok(mut dialog) => {
                dialog.transport = origin.transport;
                dialog
            }
            Err(error) => {
                self.note_unusable_offer(source, &error, now);
                return self.reply_stateless(&request, origin, 400, &[]);
            }
        };
        let Some(rtp_port) = ports.reserve() else {
            const KIND: &str = "call refused: every RTP port is in use ([media] rtp_ports)";
            return self.refuse_for_load(&request, source, origin, KIND, now);
        };
        let session_id = u64::from(self.rng.random::<u32>());
        let local = crate::sdp::LocalMedia {
            address: self.config.media_ip,
            rtp_port,
            session_id,
            session_version: session_id,
        };
        let (media, local_sdp) = match self.negotiate(offer.as_ref(), &self.config.codecs, &local) {
            Ok(result) => result,
            Err(error) => {
                ports.release(rtp_port);
                self.note_unusable_offer(source, &error, now);
                return self.reply_stateless(&request, origin, 488, &[]);
            }
        };
        self.start_invite(key, &request, origin, None, now);
        let via = message::top_via(&request.headers).ok();
        let behind_nat =
            via.is_some_and(|v| v.host.trim_matches(['[', ']']) != source.ip().to_string());
        let id = self.allocate_call_id();
        let cseq = message::cseq(&request.headers).map(|(n, _)| n).unwrap_or(0);
        let ringing = !self.config.answer_delay.is_zero();
        let call = Call {
            state: CallState::Ringing,
            invite: InviteRef {
                key: key.clone(),
                cseq,
                awaiting_answer: offer.is_none(),
            },
            reinvite: None,
            answer_at: ringing.then(|| now + self.config.answer_delay),
            rtp_port,
            session_id,
            session_version: session_id,
            media,
            media_started: false,
            local_sdp,
            source,
            transport: origin.transport,
            behind_nat,
            in_setup: true,
            ends_at: None,
            session_timer,
            session_expiry: None,
            ended: false,
            self_test,
            invite_request: request,
            dialog,
        };
        self.admission.setup_started(source.ip());
        if let Some(entry) = self.transactions.invite_mut(key) {
            entry.call = Some(id);
        }
        self.dialogs.insert(call.dialog.id.clone(), id);
        tracing::debug!(call = %id, %source, transport = call.transport.via_token(), "incoming call");
        self.calls.insert(id, call);
        if ringing {
            let Some(call) = self.calls.get(&id) else {
                return;
            };
            let ringing =
                self.build_response(&call.invite_request, 180, Some(&local_tag), &[], None);
            if let Some(entry) = self.transactions.invite_mut(key) {
                entry.tx.respond(180, ringing, now);
            }
            self.flush_transaction(key);
            self.schedule_call(id);
        } else {
            self.answer(id, now);
        }
    }

    fn handle_ack(&mut self, key: &TransactionKey, request: rsip::Request, now: Instant) {
        // An ACK for a non-2xx final response shares the INVITE's branch.
        if let Some(entry) = self.transactions.invite_mut(key)
            && (entry.call.is_none() || entry.tx.last_status().is_some_and(|s| s >= 300))
        {
            entry.tx.handle_ack(now);
            return self.flush_transaction(key);
        }
        // An ACK for a 2xx is its own transaction, matched by dialog.
        let Some(id) = Dialog::uas_id_of(&request).and_then(|d| self.dialogs.get(&d).copied())
        else {
            return;
        };
        let cseq = message::cseq(&request.headers).map(|(n, _)| n).unwrap_or(0);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (invite, is_initial) = match &call.reinvite {
            Some(re) if re.cseq == cseq => (re.clone(), false),
            _ if call.invite.cseq == cseq => (call.invite.clone(), true),
            _ => return,
        };
        let acked = self
            .transactions
            .invite_mut(&invite.key)
            .and_then(|entry| entry.tx.handle_ack(now));
        self.flush_transaction(&invite.key);
        if acked != Some(ServerEvent::Acked) {
            return; // a retransmitted ACK
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if invite.awaiting_answer {
            let offered: Vec<_> = call
                .media
                .as_ref()
                .map(|m| vec![m.codec])
                .unwrap_or_else(|| self.config.codecs.clone());
            let answer = sdp_body(&request).and_then(|text| sdp::parse(&text).ok());
            match answer.map(|a| sdp::accept_answer(&a, &offered)) {
                Some(Ok(negotiated)) => call.media = Some(negotiated),
                _ => {
                    // "call ended" names it; this line is for tracing the SDP.
                    tracing::debug!(call = %id, "the ACK carried no usable SDP answer; hanging up");
                    call.state = CallState::Confirmed;
                    return self.hang_up(id, EndReason::BadAckAnswer, now);
                }
            }
        }
        if is_initial {
            call.state = CallState::Confirmed;
            self.end_setup(id);
            self.start_media_if_ready(id);
        } else {
            call.reinvite = None;
            if let (true, Some(media)) = (call.media_started, call.media.clone()) {
                self.actions
                    .push_back(Action::UpdateMedia { call: id, media });
            }
        }
    }

    fn handle_cancel(
        &mut self,
        key: &TransactionKey,
        request: rsip::Request,
        origin: Origin,
        now: Instant,
    ) {
        // §9.2: the CANCEL matches the INVITE with the same branch and sent-by.
        let invite_key = key.with_method(rsip::Method::Invite);
        let Some(entry) = self.transactions.invite(&invite_key) else {
            return self.reply_stateless(&request, origin, 481, &[]);
        };
        let call = entry.call;
        self.reply_once(key, &request, origin, 200, &[], now);
        if let Some(id) = call
            && self.calls.get(&id).is_some_and(|c| c.is_ringing())
        {
            // "call ended" says it (call.cancelled): one line per call event.
            tracing::debug!(call = %id, "CANCEL matched the ringing INVITE");
            self.reject_ringing(id, 487, EndReason::Cancelled, now);
        }
    }

    fn find_dialog(&self, request: &rsip::Request) -> Option<CallId> {
        Dialog::uas_id_of(request).and_then(|d| self.dialogs.get(&d).copied())
    }

    /// The call an in-dialog request belongs to, and its CSeq number, or
    /// `None` after answering 481 (no such dialog) or 500 (CSeq out of
    /// order, RFC 3261 §12.2.2).
    fn admit_in_dialog(
        &mut self,
        key: &TransactionKey,
        request: &rsip::Request,
        origin: Origin,
        now: Instant,
    ) -> Option<(CallId, u32)> {
        let Some(id) = self.find_dialog(request) else {
            self.reply_stateless(request, origin, 481, &[]);
            return None;
        };
        let cseq = message::cseq(&request.headers).map(|(n, _)| n).unwrap_or(0);
        let in_order = self
            .calls
            .get_mut(&id)
            .is_some_and(|c| c.dialog.check_remote_cseq(cseq).is_ok());
        if !in_order {
            self.reply_once(key, request, origin, 500, &[], now);
            return None;
        }
        Some((id, cseq))
    }

    fn handle_in_dialog(
        &mut self,
        key: &TransactionKey,
        request: rsip::Request,
        origin: Origin,
        now: Instant,
    ) {
        let Some((id, _)) = self.admit_in_dialog(key, &request, origin, now) else {
            return;
        };
        self.reply_once(key, &request, origin, 200, &[], now);
        if request.method == rsip::Method::Info {
            let key = message::content_type(&request.headers)
                .and_then(|content_type| keys::key_from_info(content_type, &request.body));
            match key {
                Some(key) => self.actions.push_back(Action::Key { call: id, key }),
                None => tracing::debug!(call = %id, "INFO without a key; answered 200"),
            }
        }
        if request.method == rsip::Method::Bye {
            tracing::debug!(call = %id, "caller hung up");
            self.end_call(id, EndReason::CallerHungUp);
            self.forget_call(id);
        }
    }

    fn handle_reinvite(
        &mut self,
        key: &TransactionKey,
        request: rsip::Request,
        origin: Origin,
        now: Instant,
    ) {
        let Some((id, cseq)) = self.admit_in_dialog(key, &request, origin, now) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // §14.2: one INVITE at a time in a dialog.
        if call.state != CallState::Confirmed || call.reinvite.is_some() {
            let retry = ("Retry-After", "1".to_owned());
            return self.reply_once(key, &request, origin, 500, &[retry], now);
        }
        let offer = match parse_offer(&request) {
            Ok(offer) => offer,
            Err(_) => return self.reply_once(key, &request, origin, 488, &[], now),
        };
        // RFC 4028 §9: a refresh renegotiates the timer (or drops it).
        let session_timer = SessionTimer::of_request(&request.headers);
        if session_timer == SessionTimer::TooSmall {
            let min_se = ("Min-SE", MIN_SE.as_secs().to_string());
            return self.reply_once(key, &request, origin, 422, &[min_se], now);
        }
        // Keep the codec of the running stream: the shared track is encoded
        // for it. An offer without it cannot be accepted (§14.2: the old
        // session stays as it was).
        let codecs: Vec<_> = call
            .media
            .as_ref()
            .map(|m| vec![m.codec])
            .unwrap_or_else(|| self.config.codecs.clone());
        call.session_version += 1;
        let local = call.local_media(&self.config);
        let negotiated = match offer.as_ref() {
            Some(offer) => sdp::answer(offer, &codecs, &local).map(|(n, text)| (Some(n), text)),
            None => Ok((None, sdp::offer(&codecs, &local))),
        };
        let Ok((media, local_sdp)) = negotiated else {
            return self.reply_once(key, &request, origin, 488, &[], now);
        };
        if let Some(contact) = message::contact_uri(&request.headers) {
            call.dialog.update_remote_target(contact);
        }
        call.session_timer = session_timer;
        call.session_expiry = session_timer.expiry(now);
        call.local_sdp = local_sdp.clone();
        call.reinvite = Some(InviteRef {
            key: key.clone(),
            cseq,
            awaiting_answer: offer.is_none(),
        });
        if let Some(media) = media {
            call.media = Some(media.clone());
            if call.media_started {
                self.actions
                    .push_back(Action::UpdateMedia { call: id, media });
            }
        }
        let contact = format!("<{}>", self.local_contact(origin.transport));
        let local_tag = self
            .calls
            .get(&id)
            .map(|c| c.dialog.id.local_tag.clone())
            .unwrap_or_default();
        let mut headers = vec![
            ("Contact", contact),
            ("Allow", ALLOW.to_owned()),
            ("Supported", "timer".to_owned()),
        ];
        headers.extend(session_timer.response_headers());
        let payload = self.build_response(
            &request,
            200,
            Some(&local_tag),
            &headers,
            Some(("application/sdp", local_sdp.into_bytes())),
        );
        self.start_invite(key, &request, origin, Some(id), now);
        if let Some(entry) = self.transactions.invite_mut(key) {
            entry.tx.respond(200, payload, now);
        }
        self.flush_transaction(key);
        self.schedule_call(id);
    }

    /// Opens the INVITE server transaction and says `100 Trying` at once
    /// (RFC 3261 §8.2.6.1), so the caller stops retransmitting.
    fn start_invite(
        &mut self,
        key: &TransactionKey,
        request: &rsip::Request,
        origin: Origin,
        call: Option<CallId>,
        now: Instant,
    ) {
        let mut tx = InviteServer::new(
            origin.destination,
            origin.transport.is_reliable(),
            self.config.timers,
            now,
        );
        tx.respond(100, self.build_response(request, 100, None, &[], None), now);
        self.transactions
            .insert_invite(key.clone(), InviteEntry { tx, call });
        self.flush_transaction(key);
    }
}

enum OfferProblem {
    ContentType,
    Sdp(sdp::SdpError),
}

/// The SDP text of a message body, if it has an `application/sdp` one.
fn sdp_body(request: &rsip::Request) -> Option<String> {
    if request.body.is_empty() {
        return None;
    }
    let content_type = message::header_value(&request.headers, "Content-Type")?;
    if !content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/sdp")
    {
        return None;
    }
    String::from_utf8(request.body.clone()).ok()
}

/// The offer in an INVITE: `None` for an INVITE without a body.
fn parse_offer(request: &rsip::Request) -> Result<Option<sdp::SessionDescription>, OfferProblem> {
    if request.body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let text = sdp_body(request).ok_or(OfferProblem::ContentType)?;
    sdp::parse(&text).map(Some).map_err(OfferProblem::Sdp)
}
