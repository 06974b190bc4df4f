//! Incoming requests: matching to transactions (RFC 3261 §17.2.3) and
//! dialogs (§12.2.2), and what each method does here.

use std::net::SocketAddr;
use std::time::Instant;

use super::call::{Call, CallState, InviteRef};
use super::{ALLOW, Action, CallId, EndReason, Endpoint, InviteEntry, MediaPorts};
use crate::call::dtmf;
use crate::config::Untrusted;
use crate::sdp;
use crate::sip::Transport;
use crate::sip::dialog::Dialog;
use crate::sip::message::{self, Via};
use crate::sip::transaction::{InviteServer, NonInviteServer, ServerEvent};

/// Where the responses to a request go, and how.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin {
    pub destination: SocketAddr,
    pub transport: Transport,
}

/// Methods rsip knows but the line does not do: 405 with `Allow` (§8.2.1).
/// Methods nobody knows get 501 (§21.5.2).
fn is_known_unsupported(method: &rsip::Method) -> bool {
    !matches!(
        method,
        rsip::Method::Invite
            | rsip::Method::Ack
            | rsip::Method::Bye
            | rsip::Method::Cancel
            | rsip::Method::Options
            | rsip::Method::Info
    )
}

/// The transaction key of §17.2.3: branch plus sent-by, and the method
/// (ACK matches its INVITE). Pre-RFC 3261 branches fall back to the
/// request's identity, which retransmissions share.
fn transaction_key(via: &Via, request: &rsip::Request) -> String {
    let method = match request.method {
        rsip::Method::Ack => rsip::Method::Invite,
        ref m => *m,
    };
    match via.branch.as_deref() {
        Some(branch) if branch.starts_with("z9hG4bK") => format!(
            "{branch}|{}:{}|{method}",
            via.host.to_ascii_lowercase(),
            via.port.unwrap_or(5060)
        ),
        _ => {
            let call_id = message::call_id(&request.headers).unwrap_or_default();
            let cseq = message::cseq(&request.headers)
                .map(|(n, _)| n)
                .unwrap_or_default();
            let from_tag = message::from_tag(&request.headers).unwrap_or_default();
            format!("{call_id}|{cseq}|{from_tag}|{method}")
        }
    }
}

/// Builds a reply for a datagram that did not parse: 501 for a method
/// nobody knows, else the message module's 400 (or nothing).
pub(super) fn answer_unparsable(datagram: &[u8]) -> Option<Vec<u8>> {
    message::answer_unparsable(datagram)
}

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
        message::stamp_received(&mut request, source);
        // §18.2.2: over TCP the response goes back on the request's
        // connection; over UDP where Via (and rport) say.
        let origin = Origin {
            destination: match transport {
                Transport::Tcp => source,
                Transport::Udp => message::response_destination(&via, source),
            },
            transport,
        };
        let key = transaction_key(&via, &request);

        match request.method {
            rsip::Method::Ack => return self.handle_ack(&key, request, now),
            rsip::Method::Invite => {
                if let Some(entry) = self.invites.get_mut(&key) {
                    self.stats.retransmissions_absorbed += 1;
                    entry.tx.handle_retransmission(now);
                    return self.flush_invite(&key);
                }
            }
            _ => {
                if let Some(tx) = self.servers.get_mut(&key) {
                    self.stats.retransmissions_absorbed += 1;
                    tx.handle_retransmission(now);
                    return self.flush_server(&key);
                }
            }
        }

        // Extensions we were told to support but don't (§8.2.2.3).
        if !matches!(request.method, rsip::Method::Cancel)
            && let Some(required) = message::header_value(&request.headers, "Require")
        {
            let required = required.to_owned();
            return self.reply_once(
                &key,
                &request,
                origin,
                420,
                &[("Unsupported", required)],
                now,
            );
        }

        let in_dialog = message::to_tag(&request.headers).is_some();
        match request.method {
            rsip::Method::Invite if in_dialog => self.handle_reinvite(&key, request, origin, now),
            rsip::Method::Invite if !self.is_trusted(source) => {
                self.stats.calls_rejected += 1;
                match self.config.untrusted {
                    Untrusted::Reject => {
                        tracing::info!(%source, "call from a source outside [trunk] trust: 403");
                        self.reply_once(&key, &request, origin, 403, &[], now)
                    }
                    Untrusted::Ignore => {
                        tracing::debug!(%source, "call from an untrusted source ignored")
                    }
                }
            }
            rsip::Method::Invite => self.handle_invite(&key, request, source, origin, now, ports),
            rsip::Method::Cancel => self.handle_cancel(&key, request, origin, now),
            rsip::Method::Options => {
                let extra = [
                    ("Allow", ALLOW.to_owned()),
                    ("Accept", "application/sdp".to_owned()),
                ];
                self.reply_once(&key, &request, origin, 200, &extra, now)
            }
            rsip::Method::Bye | rsip::Method::Info => {
                self.handle_in_dialog(&key, request, origin, now)
            }
            ref method if is_known_unsupported(method) => self.reply_once(
                &key,
                &request,
                origin,
                405,
                &[("Allow", ALLOW.to_owned())],
                now,
            ),
            _ => self.reply_once(
                &key,
                &request,
                origin,
                501,
                &[("Allow", ALLOW.to_owned())],
                now,
            ),
        }
    }

    /// `[trunk] trust`: may this source start a call?
    fn is_trusted(&self, source: SocketAddr) -> bool {
        self.config
            .trust
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|net| net.contains(source.ip())))
    }

    /// Answers a non-INVITE request through its own server transaction, so a
    /// retransmission gets the same answer.
    fn reply_once(
        &mut self,
        key: &str,
        request: &rsip::Request,
        origin: Origin,
        status: u16,
        extra: &[(&str, String)],
        now: Instant,
    ) {
        let payload = self.build_response(request, status, Some(&message::new_tag()), extra, None);
        if request.method == rsip::Method::Invite {
            let mut tx = InviteServer::new(
                origin.destination,
                origin.transport.is_reliable(),
                self.config.timers,
                now,
            );
            tx.respond(status, payload, now);
            self.invites
                .insert(key.to_owned(), InviteEntry { tx, call: None });
            self.stats.calls_rejected += 1;
            return self.flush_invite(key);
        }
        let mut tx = NonInviteServer::new(
            origin.destination,
            origin.transport.is_reliable(),
            self.config.timers,
            now,
        );
        tx.respond(status, payload, now);
        self.servers.insert(key.to_owned(), tx);
        self.flush_server(key);
    }

    fn handle_invite(
        &mut self,
        key: &str,
        request: rsip::Request,
        source: SocketAddr,
        origin: Origin,
        now: Instant,
        ports: &mut dyn MediaPorts,
    ) {
        self.stats.calls_offered += 1;
        self.start_invite(key, &request, origin, None, now);

        let reject = |this: &mut Self, status: u16, extra: &[(&str, String)]| {
            let payload =
                this.build_response(&request, status, Some(&message::new_tag()), extra, None);
            if let Some(entry) = this.invites.get_mut(key) {
                entry.tx.respond(status, payload, now);
            }
            this.stats.calls_rejected += 1;
            this.flush_invite(key);
        };

        let offer = match parse_offer(&request) {
            Ok(offer) => offer,
            Err(OfferProblem::ContentType) => {
                return reject(self, 415, &[("Accept", "application/sdp".to_owned())]);
            }
            Err(OfferProblem::Sdp(error)) => {
                tracing::info!(%source, %error, "INVITE with an unusable SDP offer");
                return reject(self, 400, &[]);
            }
        };
        let Some(rtp_port) = ports.reserve() else {
            tracing::warn!("no free RTP port: the [media] rtp_ports range is exhausted");
            return reject(self, 503, &[("Retry-After", "30".to_owned())]);
        };
        let local_tag = message::new_tag();
        let dialog = match Dialog::new_uas(&request, &local_tag) {
            Ok(mut dialog) => {
                dialog.transport = origin.transport;
                dialog
            }
            Err(error) => {
                ports.release(rtp_port);
                tracing::info!(%source, %error, "INVITE that cannot form a dialog");
                return reject(self, 400, &[]);
            }
        };
        let session_id = u64::from(rand::random::<u32>());
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
                tracing::info!(%source, %error, "no codec in common with the caller");
                return reject(self, 488, &[]);
            }
        };
        let via = message::top_via(&request.headers).ok();
        let behind_nat =
            via.is_some_and(|v| v.host.trim_matches(['[', ']']) != source.ip().to_string());
        let id = self.allocate_call_id();
        let cseq = message::cseq(&request.headers).map(|(n, _)| n).unwrap_or(0);
        let ringing = !self.config.answer_delay.is_zero();
        let call = Call {
            state: CallState::Ringing,
            invite: InviteRef {
                branch: key.to_owned(),
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
            invite_request: request,
            dialog,
        };
        if let Some(entry) = self.invites.get_mut(key) {
            entry.call = Some(id);
        }
        self.dialogs.insert(call.dialog.id.clone(), id);
        tracing::debug!(call = %id, caller = %call.dialog.remote_uri, transport = ?call.transport, "incoming call");
        self.calls.insert(id, call);
        if ringing {
            let Some(call) = self.calls.get(&id) else {
                return;
            };
            let ringing =
                self.build_response(&call.invite_request, 180, Some(&local_tag), &[], None);
            if let Some(entry) = self.invites.get_mut(key) {
                entry.tx.respond(180, ringing, now);
            }
            self.flush_invite(key);
            self.schedule_call(id);
        } else {
            self.answer(id, now);
        }
    }

    fn handle_ack(&mut self, key: &str, request: rsip::Request, now: Instant) {
        // An ACK for a non-2xx final response shares the INVITE's branch.
        if let Some(entry) = self.invites.get_mut(key)
            && (entry.call.is_none() || entry.tx.last_status().is_some_and(|s| s >= 300))
        {
            entry.tx.handle_ack(now);
            return self.flush_invite(key);
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
            .invites
            .get_mut(&invite.branch)
            .and_then(|entry| entry.tx.handle_ack(now));
        self.flush_invite(&invite.branch);
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
                    tracing::info!(call = %id, "the ACK carried no usable SDP answer; hanging up");
                    call.state = CallState::Confirmed;
                    return self.hang_up(id, EndReason::BadAckAnswer, now);
                }
            }
        }
        if is_initial {
            call.state = CallState::Confirmed;
            self.start_media_if_ready(id);
        } else {
            call.reinvite = None;
            if let (true, Some(media)) = (call.media_started, call.media.clone()) {
                self.actions
                    .push_back(Action::UpdateMedia { call: id, media });
            }
        }
    }

    fn handle_cancel(&mut self, key: &str, request: rsip::Request, origin: Origin, now: Instant) {
        // §9.2: the CANCEL matches the INVITE with the same branch.
        let invite_key = key.replacen("|CANCEL", "|INVITE", 1);
        let Some(entry) = self.invites.get(&invite_key) else {
            return self.reply_once(key, &request, origin, 481, &[], now);
        };
        let call = entry.call;
        self.reply_once(key, &request, origin, 200, &[], now);
        if let Some(id) = call
            && self.calls.get(&id).is_some_and(|c| c.is_ringing())
        {
            tracing::info!(call = %id, "caller cancelled before the answer");
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
        key: &str,
        request: &rsip::Request,
        origin: Origin,
        now: Instant,
    ) -> Option<(CallId, u32)> {
        let Some(id) = self.find_dialog(request) else {
            self.reply_once(key, request, origin, 481, &[], now);
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
        key: &str,
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
                .and_then(|content_type| dtmf::key_from_info(content_type, &request.body));
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

    fn handle_reinvite(&mut self, key: &str, request: rsip::Request, origin: Origin, now: Instant) {
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
        call.local_sdp = local_sdp.clone();
        call.reinvite = Some(InviteRef {
            branch: key.to_owned(),
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
        let payload = self.build_response(
            &request,
            200,
            Some(&local_tag),
            &[("Contact", contact), ("Allow", ALLOW.to_owned())],
            Some(("application/sdp", local_sdp.into_bytes())),
        );
        self.start_invite(key, &request, origin, Some(id), now);
        if let Some(entry) = self.invites.get_mut(key) {
            entry.tx.respond(200, payload, now);
        }
        self.flush_invite(key);
    }

    /// Opens the INVITE server transaction and says `100 Trying` at once
    /// (RFC 3261 §8.2.6.1), so the caller stops retransmitting.
    fn start_invite(
        &mut self,
        key: &str,
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
        self.invites
            .insert(key.to_owned(), InviteEntry { tx, call });
        self.flush_invite(key);
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
