//! The established call, from our ACK to the end: receive and record RTP,
//! send paced silence, answer the far end's in-dialog requests, and hang up
//! when told to.
//!
//! RFC 3261 parts followed here: ACK for 2xx resent for every 2xx resent
//! (§13.2.2.4); in-dialog requests checked for Call-ID, tags and CSeq
//! (§12.2.2: 481, 500); BYE answered 200 (§15.1.2), each retransmission
//! re-answered by its `NonInviteServer`; re-INVITE answered with our SDP
//! (§14.2, RFC 3264 §8: the same codec; follow a new remote address; an
//! offerless re-INVITE gets our offer and the answer comes in the ACK);
//! our BYE through a `NonInviteClient`, done at its final response.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::{Method, SipMessage};
use rtp_rs::RtpReader;

use super::call::{Io, MAX_DATAGRAM, RawRtp, earliest, matches_branch, resolve, send, sleep_until};
use super::record::{FrameDecoder, Recording};
use super::request::{INVITE_CSEQ, Local};
use super::send::{RtpSender, Silence};
use super::{CallOptions, ClientError, HangUp, ReceivedPacket};
use crate::sdp::{self, LocalMedia, Negotiated};
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::transaction::{ClientEvent, InviteServer, NonInviteServer};

/// RFC 5761 §4: payload types 72–76 on the RTP port are multiplexed RTCP.
const RTCP_MUX_TYPES: std::ops::RangeInclusive<u8> = 72..=76;

/// The result of the INVITE, as the session needs it.
pub(crate) struct Established {
    pub dialog: Dialog,
    pub answered_at: Instant,
    /// BYE right after the ACK (a 2xx that crossed our CANCEL, or an
    /// unusable answer).
    pub hang_up_now: bool,
    pub negotiated: Option<Negotiated>,
}

/// What the session observed.
pub(crate) struct SessionOutcome {
    pub hung_up_by: HangUp,
    pub ended_at: Instant,
    pub bye_status: Option<u16>,
    pub packets: Vec<ReceivedPacket>,
    pub recording: Recording,
    pub undecodable: u64,
    pub invalid_rtp: u64,
    pub first_rtp_after_ack: Option<Duration>,
    pub remote_rtp: Option<SocketAddr>,
    pub packets_sent: u64,
}

/// A server transaction for one request from the far end.
enum Server {
    NonInvite(NonInviteServer),
    Invite {
        transaction: InviteServer,
        cseq: u32,
        /// Our 2xx carried an offer; the answer is in the ACK.
        offered: bool,
    },
}

struct ServerEntry {
    branch: String,
    method: Method,
    server: Server,
}

/// Our BYE in progress.
struct Bye {
    branch: String,
    transaction: crate::sip::transaction::NonInviteClient,
}

/// Received RTP: the packet log, and the recording of our codec's packets.
struct MediaIn {
    payload_type: Option<u8>,
    decoder: FrameDecoder,
    recording: Recording,
    packets: Vec<ReceivedPacket>,
    pcm: Vec<f32>,
    undecodable: u64,
    invalid: u64,
}

impl MediaIn {
    fn handle(&mut self, datagram: &[u8], source: SocketAddr, arrival: Instant) {
        let reader = match RtpReader::new(datagram) {
            Ok(reader) if !RTCP_MUX_TYPES.contains(&reader.payload_type()) => reader,
            _ => {
                self.invalid += 1;
                return;
            }
        };
        let packet = ReceivedPacket {
            arrival,
            source,
            ssrc: reader.ssrc(),
            sequence: u16::from(reader.sequence_number()),
            timestamp: reader.timestamp(),
            marker: reader.mark(),
            payload_type: reader.payload_type(),
            payload_len: reader.payload().len(),
        };
        self.packets.push(packet);
        if Some(packet.payload_type) != self.payload_type {
            return; // telephone-event, comfort noise, or a type we never offered
        }
        match self.decoder.decode(reader.payload(), &mut self.pcm) {
            Ok(()) => self
                .recording
                .place(packet.ssrc, packet.timestamp, arrival, &self.pcm),
            Err(_) => self.undecodable += 1,
        }
    }
}

/// The established call's state; [`Session::run`] drives it to the end.
pub(crate) struct Session<'a> {
    io: &'a Io,
    opts: &'a CallOptions,
    local: Local,
    local_media: LocalMedia,
    /// The last SDP we sent, to keep `o=` version unchanged when it is
    /// (RFC 3264 §8).
    last_sdp: String,
    dialog: Dialog,
    negotiated: Option<Negotiated>,
    ack: Vec<u8>,
    ack_destination: SocketAddr,
    ack_sent_at: Instant,
    hang_up_at: Option<Instant>,
    sender: Option<RtpSender>,
    media: MediaIn,
    servers: Vec<ServerEntry>,
    bye: Option<Bye>,
    bye_status: Option<u16>,
    bye_done: bool,
    ended: Option<(HangUp, Instant)>,
    linger_until: Option<Instant>,
}

impl<'a> Session<'a> {
    /// Replays the early RTP and sends the ACK; media starts now. `offer`
    /// is the SDP of our INVITE.
    pub async fn start(
        io: &'a Io,
        opts: &'a CallOptions,
        local: Local,
        local_media: LocalMedia,
        offer: String,
        established: Established,
        early: Vec<RawRtp>,
    ) -> Result<Session<'a>, ClientError> {
        let Established {
            dialog,
            answered_at,
            hang_up_now,
            negotiated,
        } = established;
        let mut media = MediaIn {
            payload_type: negotiated.as_ref().map(|n| n.payload_type),
            decoder: FrameDecoder::new(opts.codec)?,
            recording: Recording::new(opts.codec.sample_rate_hz()),
            packets: Vec::new(),
            pcm: Vec::new(),
            undecodable: 0,
            invalid: 0,
        };
        for raw in early {
            media.handle(&raw.bytes, raw.source, raw.arrival);
        }

        let ack = dialog.ack(INVITE_CSEQ, &local.sent_by(), &message::new_branch());
        let ack = message::to_bytes(&SipMessage::Request(ack));
        let ack_destination = resolve(dialog.next_hop_uri()).await?;
        let now = Instant::now();
        send(
            &io.sip,
            &crate::sip::Transmit {
                destination: ack_destination,
                payload: ack.clone(),
            },
        )
        .await;
        let hang_up_at = if hang_up_now {
            Some(now)
        } else {
            opts.seconds.map(|seconds| answered_at + seconds)
        };
        let mut session = Session {
            io,
            opts,
            local,
            local_media,
            last_sdp: offer,
            dialog,
            negotiated: None,
            ack,
            ack_destination,
            ack_sent_at: now,
            hang_up_at,
            sender: None,
            media,
            servers: Vec::new(),
            bye: None,
            bye_status: None,
            bye_done: false,
            ended: None,
            linger_until: None,
        };
        if let Some(negotiated) = negotiated {
            session.apply(negotiated, now)?;
        }
        Ok(session)
    }

    /// Runs until our BYE is answered (or times out), or until `linger`
    /// after the far end's BYE.
    pub async fn run(mut self) -> Result<SessionOutcome, ClientError> {
        let mut sip_buf = vec![0u8; MAX_DATAGRAM];
        let mut rtp_buf = vec![0u8; MAX_DATAGRAM];
        loop {
            self.flush().await;
            let now = Instant::now();
            if self.bye_done || self.linger_until.is_some_and(|until| now >= until) {
                break;
            }
            let sending = self.sending_to().is_some();
            let server_wake = self
                .servers
                .iter()
                .filter_map(|entry| match &entry.server {
                    Server::NonInvite(server) => server.poll_timeout(),
                    Server::Invite { transaction, .. } => transaction.poll_timeout(),
                })
                .min();
            let wake = earliest([
                self.sender
                    .as_ref()
                    .filter(|_| sending)
                    .map(RtpSender::next_due),
                self.hang_up_at.filter(|_| self.ended.is_none()),
                server_wake,
                self.bye
                    .as_ref()
                    .and_then(|bye| bye.transaction.poll_timeout()),
                self.linger_until,
            ]);
            tokio::select! {
                received = self.io.sip.recv_from(&mut sip_buf) => {
                    if let Ok((len, source)) = received {
                        self.handle_sip(&sip_buf[..len], source).await?;
                    }
                }
                received = self.io.rtp.recv_from(&mut rtp_buf) => {
                    // After the BYE the call is over; stragglers are not part of it.
                    if let Ok((len, source)) = received && self.ended.is_none() {
                        self.media.handle(&rtp_buf[..len], source, Instant::now());
                    }
                }
                () = sleep_until(wake) => {}
            }
            self.handle_timers(Instant::now()).await?;
        }
        let ended = self.ended.unwrap_or((HangUp::Us, Instant::now()));
        let first_rtp_after_ack = self
            .media
            .packets
            .first()
            .map(|p| p.arrival.saturating_duration_since(self.ack_sent_at));
        Ok(SessionOutcome {
            hung_up_by: ended.0,
            ended_at: ended.1,
            bye_status: self.bye_status,
            remote_rtp: self.negotiated.as_ref().and_then(|n| n.remote_rtp),
            packets_sent: self.sender.as_ref().map_or(0, |s| s.sent),
            first_rtp_after_ack,
            undecodable: self.media.undecodable,
            invalid_rtp: self.media.invalid,
            packets: self.media.packets,
            recording: self.media.recording,
        })
    }

    /// Where our RTP goes now, if we send at all.
    fn sending_to(&self) -> Option<SocketAddr> {
        let negotiated = self.negotiated.as_ref()?;
        if self.ended.is_some() || !negotiated.local_direction.sends() {
            return None;
        }
        negotiated.remote_rtp
    }

    async fn flush(&mut self) {
        for entry in &mut self.servers {
            loop {
                let transmit = match &mut entry.server {
                    Server::NonInvite(server) => server.poll_transmit(),
                    Server::Invite { transaction, .. } => transaction.poll_transmit(),
                };
                let Some(transmit) = transmit else { break };
                send(&self.io.sip, &transmit).await;
            }
        }
        if let Some(bye) = &mut self.bye {
            while let Some(transmit) = bye.transaction.poll_transmit() {
                send(&self.io.sip, &transmit).await;
            }
        }
    }

    async fn handle_timers(&mut self, now: Instant) -> Result<(), ClientError> {
        for entry in &mut self.servers {
            match &mut entry.server {
                Server::NonInvite(server) if server.poll_timeout().is_some_and(|t| t <= now) => {
                    server.handle_timeout(now);
                }
                Server::Invite { transaction, .. }
                    if transaction.poll_timeout().is_some_and(|t| t <= now) =>
                {
                    transaction.handle_timeout(now);
                }
                _ => {}
            }
        }
        self.servers.retain(|entry| match &entry.server {
            Server::NonInvite(server) => !server.is_terminated(),
            Server::Invite { transaction, .. } => !transaction.is_terminated(),
        });
        if let Some(bye) = &mut self.bye
            && bye.transaction.poll_timeout().is_some_and(|t| t <= now)
            && bye.transaction.handle_timeout(now) == Some(ClientEvent::TimedOut)
        {
            self.bye_done = true;
        }
        if self.ended.is_none() && self.hang_up_at.is_some_and(|t| t <= now) {
            self.send_bye(now).await;
        }
        if let Some(destination) = self.sending_to()
            && let Some(sender) = &mut self.sender
        {
            while let Some(payload) = sender.poll_packet(now)? {
                let transmit = crate::sip::Transmit {
                    destination,
                    payload,
                };
                send(&self.io.rtp, &transmit).await;
            }
        }
        Ok(())
    }

    async fn send_bye(&mut self, now: Instant) {
        let branch = message::new_branch();
        let bye = self.dialog.request(
            Method::Bye,
            &self.local.sent_by(),
            &branch,
            &self.local.contact_uri(),
        );
        // A target refreshed by re-INVITE may no longer resolve; the ACK's
        // destination is the best remaining guess.
        let destination = resolve(self.dialog.next_hop_uri())
            .await
            .unwrap_or(self.ack_destination);
        let payload = message::to_bytes(&SipMessage::Request(bye));
        let transaction = crate::sip::transaction::NonInviteClient::new(
            payload,
            destination,
            false,
            self.opts.timers,
            now,
        );
        self.bye = Some(Bye {
            branch,
            transaction,
        });
        self.ended = Some((HangUp::Us, now));
    }

    async fn handle_sip(&mut self, datagram: &[u8], source: SocketAddr) -> Result<(), ClientError> {
        let now = Instant::now();
        match message::parse(datagram) {
            Ok(SipMessage::Response(response)) => self.handle_response(&response, now).await,
            Ok(SipMessage::Request(request)) => self.handle_request(&request, source, now)?,
            Err(_) => {} // not even answerable: a stray datagram
        }
        Ok(())
    }

    async fn handle_response(&mut self, response: &rsip::Response, now: Instant) {
        let Ok((seq, method)) = message::cseq(&response.headers) else {
            return;
        };
        let status = response.status_code.code();
        let ours = message::call_id(&response.headers)
            .is_ok_and(|call_id| call_id == self.dialog.id.call_id);
        match method {
            // The far end did not get our ACK: send it again (§13.2.2.4).
            Method::Invite if ours && seq == INVITE_CSEQ && (200..300).contains(&status) => {
                let transmit = crate::sip::Transmit {
                    destination: self.ack_destination,
                    payload: self.ack.clone(),
                };
                send(&self.io.sip, &transmit).await;
            }
            Method::Bye => {
                if let Some(bye) = &mut self.bye
                    && matches_branch(&response.headers, &bye.branch)
                    && let Some(ClientEvent::Final(code)) =
                        bye.transaction.handle_response(status, now)
                {
                    self.bye_status = Some(code);
                    self.bye_done = true;
                }
            }
            _ => {}
        }
    }

    fn handle_request(
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
            .then(message::new_tag);
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

    fn handle_ack(&mut self, request: &rsip::Request, now: Instant) -> Result<(), ClientError> {
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
    fn apply(&mut self, negotiated: Negotiated, now: Instant) -> Result<(), ClientError> {
        self.media.payload_type = Some(negotiated.payload_type);
        match &mut self.sender {
            Some(sender) => sender.set_payload_type(negotiated.payload_type),
            None => {
                self.sender = Some(RtpSender::new(
                    self.opts.codec,
                    negotiated.payload_type,
                    Box::new(Silence),
                    now,
                )?);
            }
        }
        self.negotiated = Some(negotiated);
        Ok(())
    }
}
