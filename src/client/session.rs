//! The established call, from our ACK to the end: receive and record RTP,
//! send paced silence, answer the far end's in-dialog requests, and hang up
//! when told to.
//!
//! RFC 3261 parts followed here: the ACK for a 2xx is sent again for every
//! retransmitted 2xx (§13.2.2.4); our BYE goes through a `NonInviteClient`
//! and the call is over at its final response (§15.1.1). The far end's own
//! requests are answered in [`requests`].
//!
//! Call order: [`Session::start`] (replay early RTP, send the ACK, start
//! media), then [`Session::run`] until the end. Each turn of `run` flushes
//! the transactions, waits for a datagram or the earliest timer, then
//! fires the timers due: transactions, the hang-up time, key presses
//! ([`presses`]), the RTP pacer.

mod presses;
mod requests;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::{Method, SipMessage};

use super::call::{Io, MAX_DATAGRAM, RawRtp, earliest, matches_branch, resolve, send, sleep_until};
use super::record::{MediaIn, Recording};
use super::request::{INVITE_CSEQ, Local};
use super::send::RtpSender;
use super::{CallOptions, ClientError, DtmfSent, HangUp, ReceivedPacket};
use crate::sdp::{LocalMedia, Negotiated};
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::transaction::{ClientEvent, InviteServer, NonInviteServer};
use presses::Presses;

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
    pub dtmf_sent: Vec<DtmfSent>,
    pub dtmf_inband_fallback: bool,
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
    presses: Presses,
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
        let mut media = MediaIn::new(opts.codec, negotiated.as_ref().map(|n| n.payload_type.0))?;
        for raw in early {
            media.handle(&raw.bytes, raw.source, raw.arrival);
        }

        let ack = dialog.ack(
            INVITE_CSEQ,
            &local.sent_by(),
            &message::new_branch(&mut rand::rng()),
        );
        let ack = message::to_bytes(&SipMessage::Request(ack));
        let ack_destination = if opts.symmetric {
            io.called
        } else {
            resolve(dialog.next_hop_uri()).await?
        };
        let now = Instant::now();
        send(
            &io.sip,
            &crate::sip::Transmit {
                transport: crate::sip::Transport::Udp,
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
            presses: Presses::new(&opts.dtmf),
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
                self.presses.poll_timeout(self.ack_sent_at),
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
            dtmf_sent: self.presses.sent,
            dtmf_inband_fallback: self.presses.inband_fallback,
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
        let remote = negotiated.remote_rtp?;
        Some(if self.opts.symmetric {
            SocketAddr::new(self.io.called.ip(), remote.port())
        } else {
            remote
        })
    }

    /// Where in-dialog requests go: the dialog's next hop (a target
    /// refreshed by re-INVITE may no longer resolve: then the ACK's
    /// destination is the best remaining guess), or the address called.
    async fn next_hop(&mut self) -> SocketAddr {
        if self.opts.symmetric {
            return self.io.called;
        }
        resolve(self.dialog.next_hop_uri())
            .await
            .unwrap_or(self.ack_destination)
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
        self.flush_infos().await;
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
        // Before the pacer, so a press due now starts in this frame slot.
        self.handle_presses(now).await;
        if let Some(destination) = self.sending_to()
            && let Some(sender) = &mut self.sender
        {
            while let Some(payload) = sender.poll_packet(now)? {
                let transmit = crate::sip::Transmit {
                    transport: crate::sip::Transport::Udp,
                    destination,
                    payload,
                };
                send(&self.io.rtp, &transmit).await;
            }
            self.record_started(Instant::now());
        }
        Ok(())
    }

    async fn send_bye(&mut self, now: Instant) {
        let branch = message::new_branch(&mut rand::rng());
        let bye = self.dialog.request(
            Method::Bye,
            &self.local.sent_by(),
            &branch,
            &self.local.contact_uri(),
        );
        let destination = self.next_hop().await;
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
        self.drain_rtp();
        self.ended = Some((HangUp::Us, now));
    }

    /// Records the RTP already waiting in the socket: it arrived before the
    /// call ended, and `select!` may have picked the BYE first.
    fn drain_rtp(&mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while let Ok((len, source)) = self.io.rtp.try_recv_from(&mut buf) {
            self.media.handle(&buf[..len], source, Instant::now());
        }
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
                    transport: crate::sip::Transport::Udp,
                    destination: self.ack_destination,
                    payload: self.ack.clone(),
                };
                send(&self.io.sip, &transmit).await;
            }
            Method::Info => self.handle_info_response(response, status, now),
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
}
