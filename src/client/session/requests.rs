//! Answering the far end's requests inside the dialog (RFC 3261 §12.2.2):
//! Call-ID and tags must match (else 481), CSeq must not go back (else 500);
//! BYE → 200 (§15.1.2); OPTIONS, INFO → 200; CANCEL of an answered
//! re-INVITE → 200 without effect (§9.2); other methods → 501. A re-INVITE
//! (§14.2) gets our SDP answer for the same codec and moves our RTP to a new
//! remote address; an offerless one gets our offer, and the answer comes in
//! the ACK. Each response is owned by a server transaction, which re-sends
//! it when the request is retransmitted.

use std::net::SocketAddr;
use std::time::Instant;

use rsip::{Method, SipMessage};

use super::{HangUp, Server, ServerEntry, Session};
use crate::client::ClientError;
use crate::client::send::{RtpSender, Silence};
use crate::sdp::{self, LocalMedia, Negotiated};
use crate::sip::message;
use crate::sip::transaction::{InviteServer, NonInviteServer};

impl Session<'_> {
    /// Answers one request from `source` (ACKs are matched to our re-INVITE
    /// answers instead), or re-sends the answer if it is a retransmission.
    pub(super) fn handle_request(
        &mut self,
        request: &rsip::Request,
        source: SocketAddr,
        now: Instant,
    ) -> Result<(), ClientError> {
        let Ok(via) = message::top_via(&request.headers) else {
            return Ok(()); // no Via: no way to answer (§18.2.2)
        };
        let method = request.method;
        if method == Method::Ack {
            self.handle_ack(request, now)?;
            return Ok(());
        }
        let Some(branch) = via.branch.clone() else {
            return Ok(()); // RFC 2543 peers are out of scope for the test client
        };
        if let Some(entry) = self
            .servers
            .iter_mut()
            .find(|entry| entry.branch == branch && entry.method == method)
        {
            match &mut entry.server {
                Server::NonInvite(server) => server.handle_retransmission(now),
                Server::Invite { transaction, .. } => transaction.handle_retransmission(now),
            }
            return Ok(());
        }

        let in_dialog = message::call_id(&request.headers)
            .is_ok_and(|call_id| call_id == self.dialog.id.call_id)
            && message::to_tag(&request.headers).as_deref() == Some(&self.dialog.id.local_tag);
        let cseq = message::cseq(&request.headers).map(|(seq, _)| seq).ok();
        let mut offered = false;
        let (status, body) = if !in_dialog {
            (481, None)
        } else if method == Method::Cancel {
            // §9.2: a CANCEL for a re-INVITE we already answered changes nothing.
            let pending = self
                .servers
                .iter()
                .any(|entry| entry.branch == branch && entry.method == Method::Invite);
            (if pending { 200 } else { 481 }, None)
        } else if cseq.is_none_or(|seq| self.dialog.check_remote_cseq(seq).is_err()) {
            (500, None)
        } else {
            match method {
                Method::Bye => {
                    if self.ended.is_none() {
                        self.drain_rtp();
                        self.ended = Some((HangUp::FarEnd, now));
                    }
                    self.linger_until.get_or_insert(now + self.opts.linger);
                    (200, None)
                }
                Method::Options | Method::Info => (200, None),
                Method::Invite => {
                    let (status, body, is_offer) = self.reinvite(request, now)?;
                    offered = is_offer;
                    (status, body)
                }
                _ => (501, None),
            }
        };

        let to_tag = message::to_tag(&request.headers)
            .is_none()
            .then(|| message::new_tag(&mut rand::rng()));
        let mut response = message::response(request, status, to_tag.as_deref());
        if method == Method::Invite
            && (200..300).contains(&status)
            && message::header_value(&response.headers, "Contact").is_none()
        {
            response.headers.push(rsip::Header::Contact(
                format!("<{}>", self.local.contact_uri()).into(),
            ));
        }
        if let Some(sdp) = body {
            message::set_body(
                &mut response.headers,
                &mut response.body,
                "application/sdp",
                sdp.into_bytes(),
            );
        }
        let payload = message::to_bytes(&SipMessage::Response(response));
        let destination = message::response_destination(&via, source);
        let server = if method == Method::Invite {
            let mut transaction = InviteServer::new(destination, false, self.opts.timers, now);
            transaction.respond(status, payload, now);
            Server::Invite {
                transaction,
                cseq: cseq.unwrap_or_default(),
                offered: offered && status == 200,
            }
        } else {
            let mut server = NonInviteServer::new(destination, false, self.opts.timers, now);
            server.respond(status, payload, now);
            Server::NonInvite(server)
        };
        self.servers.push(ServerEntry {
            branch,
            method,
            server,
        });
        Ok(())
    }

    /// Answers a re-INVITE: `(status, body, body is an offer)`.
    fn reinvite(
        &mut self,
        request: &rsip::Request,
        now: Instant,
    ) -> Result<(u16, Option<String>, bool), ClientError> {
        // §12.2.2: a re-INVITE refreshes the remote target.
        if let Some(contact) = message::contact_uri(&request.headers) {
            self.dialog.update_remote_target(contact);
        }
        if request.body.is_empty() {
            let codec = self.opts.codec;
            let offer = self.versioned(|media| sdp::offer(&[codec], media));
            return Ok((200, Some(offer), true));
        }
        let Ok(text) = std::str::from_utf8(&request.body) else {
            return Ok((400, None, false));
        };
        let codec = self.opts.codec;
        let answered = sdp::parse(text).and_then(|offer| {
            let mut media = self.local_media.clone();
            let (negotiated, answer) = sdp::answer(&offer, &[codec], &media)?;
            if answer != self.last_sdp {
                media.session_version += 1;
                return sdp::answer(&offer, &[codec], &media).map(|(n, a)| (n, a, media));
            }
            Ok((negotiated, answer, media))
        });
        match answered {
            Ok((negotiated, answer, media)) => {
                self.local_media = media;
                self.last_sdp = answer.clone();
                self.apply(negotiated, now)?;
                Ok((200, Some(answer), false))
            }
            Err(_) => Ok((488, None, false)),
        }
    }

    /// Renders an SDP with the current version, bumping it if the result
    /// differs from what we sent last (RFC 3264 §8).
    fn versioned(&mut self, render: impl Fn(&LocalMedia) -> String) -> String {
        let same = render(&self.local_media);
        if same == self.last_sdp {
            return same;
        }
        self.local_media.session_version += 1;
        let changed = render(&self.local_media);
        self.last_sdp = changed.clone();
        changed
    }

    /// An ACK for our answer to a re-INVITE; if our 2xx carried an offer,
    /// the ACK carries the answer (RFC 3264 §5).
    pub(super) fn handle_ack(
        &mut self,
        request: &rsip::Request,
        now: Instant,
    ) -> Result<(), ClientError> {
        let Ok((seq, _)) = message::cseq(&request.headers) else {
            return Ok(());
        };
        let mut answer = None;
        for entry in &mut self.servers {
            if let Server::Invite {
                transaction,
                cseq,
                offered,
            } = &mut entry.server
                && *cseq == seq
            {
                transaction.handle_ack(now);
                if std::mem::take(offered) {
                    answer = Some(request.body.clone());
                }
            }
        }
        let accepted = answer
            .as_deref()
            .and_then(|body| std::str::from_utf8(body).ok())
            .and_then(|text| sdp::parse(text).ok())
            .and_then(|answer| sdp::accept_answer(&answer, &[self.opts.codec]).ok());
        if let Some(negotiated) = accepted {
            self.apply(negotiated, now)?;
        }
        Ok(())
    }

    /// Adopts a negotiation: payload type, remote address, direction. Our
    /// SSRC and sequence carry on across a re-INVITE.
    pub(super) fn apply(
        &mut self,
        negotiated: Negotiated,
        now: Instant,
    ) -> Result<(), ClientError> {
        self.media.payload_type = Some(negotiated.payload_type.0);
        match &mut self.sender {
            Some(sender) => sender.set_payload_type(negotiated.payload_type.0),
            None => {
                self.sender = Some(RtpSender::new(
                    self.opts.codec,
                    negotiated.payload_type.0,
                    Box::new(Silence),
                    now,
                )?);
            }
        }
        self.negotiated = Some(negotiated);
        Ok(())
    }
}
