//! Our key presses during the call (`CallOptions::dtmf`): when one is due,
//! it goes every way asked for at once. RTP ways are handed to the
//! [`RtpSender`](crate::client::RtpSender), which starts them at its next
//! frame slot; each is recorded as sent when its first packet leaves. A SIP
//! INFO (RFC 6086) goes through its own non-INVITE client transaction
//! (RFC 3261 §17.1.2), and its final status is recorded with it.
//!
//! RFC 4733 needs the far end to have accepted telephone-event; when it did
//! not, those presses go in-band instead, as a phone would, and the report
//! says so.

use std::collections::VecDeque;
use std::time::Instant;

use rsip::{Method, SipMessage};

use super::Session;
use crate::client::call::{matches_branch, send};
use crate::client::dtmf::{DtmfPress, DtmfSent, KeyChannel};
use crate::client::send::RtpPress;
use crate::sip::message;
use crate::sip::transaction::{ClientEvent, NonInviteClient};

/// An INFO of ours in progress.
pub(super) struct Info {
    branch: String,
    transaction: NonInviteClient,
    /// Its entry in `Presses::sent`.
    sent: usize,
}

/// The presses still to send and those sent.
#[derive(Default)]
pub(super) struct Presses {
    /// In the order they are due.
    due: VecDeque<DtmfPress>,
    pub sent: Vec<DtmfSent>,
    pub inband_fallback: bool,
    infos: Vec<Info>,
}

impl Presses {
    pub fn new(presses: &[DtmfPress]) -> Self {
        let mut due: Vec<DtmfPress> = presses.to_vec();
        // Stable: presses due at once keep the order given.
        due.sort_by_key(|press| press.at);
        Presses {
            due: due.into(),
            ..Presses::default()
        }
    }

    /// The earliest timer: the next press (counted from `ack_sent_at`) or
    /// an INFO retransmission or timeout.
    pub fn poll_timeout(&self, ack_sent_at: Instant) -> Option<Instant> {
        let press = self.due.front().map(|press| ack_sent_at + press.at);
        let info = self
            .infos
            .iter()
            .filter_map(|info| info.transaction.poll_timeout())
            .min();
        press.into_iter().chain(info).min()
    }
}

impl Session<'_> {
    /// Sends the presses due at `now`, fires INFO timers, and records the
    /// RTP presses whose first packet just left.
    pub(super) async fn handle_presses(&mut self, now: Instant) {
        for info in &mut self.presses.infos {
            if info.transaction.poll_timeout().is_some_and(|t| t <= now)
                && info.transaction.handle_timeout(now) == Some(ClientEvent::TimedOut)
            {
                // A timeout counts as 408 (RFC 3261 §8.1.3.1).
                if let Some(sent) = self.presses.sent.get_mut(info.sent) {
                    sent.info_status = Some(408);
                }
            }
        }
        self.presses
            .infos
            .retain(|info| !info.transaction.is_terminated());
        if self.ended.is_some() {
            // After the BYE there is no call to press keys in.
            self.presses.due.clear();
            return;
        }
        while let Some(press) = self
            .presses
            .due
            .front()
            .copied()
            .filter(|press| self.ack_sent_at + press.at <= now)
        {
            self.presses.due.pop_front();
            self.press(press, now).await;
        }
    }

    /// Sends one press every way in `dtmf_via`.
    async fn press(&mut self, press: DtmfPress, now: Instant) {
        let vias = &self.opts.dtmf_via;
        let mut rfc4733 = vias.contains(&KeyChannel::Rfc4733);
        let mut tone = vias.contains(&KeyChannel::InBand);
        let event_payload_type = self.negotiated.as_ref().and_then(|n| n.telephone_event);
        if rfc4733 && event_payload_type.is_none() {
            rfc4733 = false;
            tone = true;
            self.presses.inband_fallback = true;
        }
        if (rfc4733 || tone)
            && let Some(sender) = &mut self.sender
        {
            sender.press(RtpPress {
                key: press.key,
                event_payload_type: event_payload_type.filter(|_| rfc4733).map(|pt| pt.0),
                tone,
                duration: self.opts.dtmf_duration,
            });
        }
        if vias.contains(&KeyChannel::SipInfo) {
            self.send_info(press, now).await;
        }
    }

    async fn send_info(&mut self, press: DtmfPress, now: Instant) {
        let branch = message::new_branch(&mut rand::rng());
        let mut info = self.dialog.request(
            Method::Info,
            &self.local.sent_by(),
            &branch,
            &self.local.contact_uri(),
        );
        let kind = self.opts.dtmf_info_type;
        message::set_body(
            &mut info.headers,
            &mut info.body,
            kind.content_type(),
            kind.body(press.key, self.opts.dtmf_duration).into_bytes(),
        );
        let destination = self.next_hop().await;
        let payload = message::to_bytes(&SipMessage::Request(info));
        let mut transaction =
            NonInviteClient::new(payload, destination, false, self.opts.timers, now);
        while let Some(transmit) = transaction.poll_transmit() {
            send(&self.io.sip, &transmit).await;
        }
        self.presses.infos.push(Info {
            branch,
            transaction,
            sent: self.presses.sent.len(),
        });
        self.presses.sent.push(DtmfSent {
            key: press.key,
            via: KeyChannel::SipInfo,
            at: Instant::now(),
            info_status: None,
        });
    }

    /// Records presses whose first RTP packet has just been sent.
    pub(super) fn record_started(&mut self, at: Instant) {
        let Some(sender) = &mut self.sender else {
            return;
        };
        while let Some((key, via)) = sender.poll_started() {
            self.presses.sent.push(DtmfSent {
                key,
                via,
                at,
                info_status: None,
            });
        }
    }

    /// Re-sends INFOs whose retransmission timer fired.
    pub(super) async fn flush_infos(&mut self) {
        for info in &mut self.presses.infos {
            while let Some(transmit) = info.transaction.poll_transmit() {
                send(&self.io.sip, &transmit).await;
            }
        }
    }

    /// A response to one of our INFOs.
    pub(super) fn handle_info_response(
        &mut self,
        response: &rsip::Response,
        status: u16,
        now: Instant,
    ) {
        let Some(info) = self
            .presses
            .infos
            .iter_mut()
            .find(|info| matches_branch(&response.headers, &info.branch))
        else {
            return;
        };
        if let Some(ClientEvent::Final(code)) = info.transaction.handle_response(status, now)
            && let Some(sent) = self.presses.sent.get_mut(info.sent)
        {
            sent.info_status = Some(code);
        }
    }
}
