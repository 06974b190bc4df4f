//! Placing the call: sockets, the INVITE client transaction (RFC 3261
//! §17.1.1) up to its outcome, then the established session
//! ([`super::session`]) and the report.
//!
//! This is a driver in the STYLE sense: the transaction decides
//! retransmissions and timeouts; this loop only moves datagrams and wakes at
//! `poll_timeout`. It adds the TU's own decisions: CANCEL (§9.1) when the
//! far end rings past `answer_timeout`, and giving up when nothing at all
//! came back.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rsip::SipMessage;
use tokio::net::UdpSocket;

use super::request::{self, InviteIds, Local};
use super::session::{Established, Session};
use super::{CallFailure, CallOptions, CallReport, ClientError, HangUp, RtpStats};
use crate::sdp::{self, LocalMedia};
use crate::sip::Transmit;
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::transaction::{ClientEvent, InviteClient, NonInviteClient};

/// Largest datagram we read (SIP over UDP stays under the MTU; RTP too).
pub(crate) const MAX_DATAGRAM: usize = 65_535;

/// Port tries before giving up on an even RTP port with a free odd RTCP port.
const RTP_PORT_TRIES: u32 = 64;

/// RTP that arrives before the answer (early media) is kept raw, with its
/// arrival time, and decoded once the answer names the payload type. At most
/// this many packets (a minute of 20 ms frames).
const MAX_EARLY_PACKETS: usize = 3_000;

/// The call's sockets.
pub(crate) struct Io {
    pub sip: UdpSocket,
    pub rtp: UdpSocket,
    /// Bound only so RTCP from the line (to RTP port + 1, RFC 3550 §11) is
    /// not answered with ICMP port-unreachable; never read.
    _rtcp: UdpSocket,
    /// Where the INVITE went.
    pub called: SocketAddr,
}

/// A datagram read from the RTP socket, not yet parsed.
pub(crate) struct RawRtp {
    pub arrival: Instant,
    pub source: SocketAddr,
    pub bytes: Vec<u8>,
}

/// How the INVITE transaction ended.
enum InviteOutcome {
    Answered {
        response: rsip::Response,
        at: Instant,
        /// The 2xx crossed our CANCEL: ACK, then BYE at once (§9.1).
        hang_up_now: bool,
    },
    Failed {
        status: u16,
        failure: CallFailure,
        at: Instant,
    },
}

/// Places the call described by `opts` and returns what happened.
///
/// Returns `Err` only when the call could not be run (bad URI, sockets, an
/// unusable 2xx or SDP answer); a rejected or unanswered call is `Ok` with
/// [`HangUp::Failed`]. Writes `opts.record` if set.
pub async fn place_call(opts: CallOptions) -> Result<CallReport, ClientError> {
    let sip = UdpSocket::bind(SocketAddr::new(opts.local_ip, 0)).await?;
    place_call_from(sip, opts).await
}

/// [`place_call`] from a SIP socket already bound (on `opts.local_ip`):
/// the line's self-test tells its endpoint the address first.
pub async fn place_call_from(sip: UdpSocket, opts: CallOptions) -> Result<CallReport, ClientError> {
    let target =
        rsip::Uri::try_from(opts.target.as_str()).map_err(|source| ClientError::InvalidTarget {
            target: opts.target.clone(),
            source,
        })?;
    let destination = resolve(&opts.target).await?;
    let (rtp, rtcp) = bind_rtp_pair(opts.local_ip).await?;
    let local = Local {
        sip: sip.local_addr()?,
        user: opts.from_user.clone(),
    };
    let local_media = LocalMedia {
        address: opts.local_ip,
        rtp_port: rtp.local_addr()?.port(),
        // RFC 4566 §5.2 recommends an NTP timestamp; any unique number works.
        session_id: u64::from(rand::random::<u32>()),
        session_version: 1,
    };
    let io = Io {
        sip,
        rtp,
        _rtcp: rtcp,
        called: destination,
    };

    let ids = InviteIds {
        call_id: message::new_call_id(&mut rand::rng()),
        from_tag: message::new_tag(&mut rand::rng()),
        branch: message::new_branch(&mut rand::rng()),
    };
    let offer = sdp::offer(&[opts.codec], &local_media);
    let invite = request::invite(&target, &local, &ids, &offer);
    let started_at = Instant::now();
    let mut provisional = Vec::new();
    let mut early = Vec::new();
    let outcome = run_invite(
        &io,
        &invite,
        &ids.branch,
        destination,
        &opts,
        &mut provisional,
        &mut early,
    )
    .await?;

    let report = match outcome {
        InviteOutcome::Failed {
            status,
            failure,
            at,
        } => CallReport {
            final_status: status,
            provisional,
            codec: opts.codec,
            payload_type: None,
            telephone_event: None,
            remote_rtp: None,
            hung_up_by: HangUp::Failed(failure),
            started_at,
            answered_at: None,
            first_rtp_after_ack: None,
            ended_at: at,
            bye_status: None,
            packets: Vec::new(),
            undecodable: 0,
            invalid_rtp: 0,
            samples: Vec::new(),
            sample_rate_hz: opts.codec.sample_rate_hz(),
            reanchors: 0,
            stats: RtpStats::default(),
            packets_sent: 0,
            dtmf_sent: Vec::new(),
            dtmf_inband_fallback: false,
        },
        InviteOutcome::Answered {
            response,
            at,
            hang_up_now,
        } => {
            let final_status = response.status_code.code();
            let dialog = Dialog::new_uac(&invite, &response)?;
            let answer = std::str::from_utf8(&response.body).unwrap_or_default();
            let negotiated =
                sdp::parse(answer).and_then(|answer| sdp::accept_answer(&answer, &[opts.codec]));
            let established = Established {
                dialog,
                answered_at: at,
                hang_up_now: hang_up_now || negotiated.is_err(),
                negotiated: negotiated.as_ref().ok().cloned(),
            };
            let session =
                Session::start(&io, &opts, local, local_media, offer, established, early).await?;
            let outcome = session.run().await?;
            // RFC 3264 §6.1 lets us end a call whose answer we cannot use:
            // the ACK and BYE went out above; now say why.
            let negotiated = negotiated.map_err(ClientError::BadAnswer)?;
            let stats = RtpStats::from_packets(
                &outcome.packets,
                opts.codec.clock_rate_hz(),
                opts.codec.samples_per_frame(),
            );
            CallReport {
                final_status,
                provisional,
                codec: opts.codec,
                payload_type: Some(negotiated.payload_type.0),
                telephone_event: negotiated.telephone_event.map(|pt| pt.0),
                remote_rtp: outcome.remote_rtp,
                hung_up_by: outcome.hung_up_by,
                started_at,
                answered_at: Some(at),
                first_rtp_after_ack: outcome.first_rtp_after_ack,
                ended_at: outcome.ended_at,
                bye_status: outcome.bye_status,
                packets: outcome.packets,
                undecodable: outcome.undecodable,
                invalid_rtp: outcome.invalid_rtp,
                sample_rate_hz: outcome.recording.rate_hz(),
                reanchors: outcome.recording.reanchors,
                samples: outcome.recording.into_samples(),
                stats,
                packets_sent: outcome.packets_sent,
                dtmf_sent: outcome.dtmf_sent,
                dtmf_inband_fallback: outcome.dtmf_inband_fallback,
            }
        }
    };
    if let Some(path) = &opts.record {
        report.write_wav(path)?;
    }
    Ok(report)
}

/// Runs the INVITE transaction until a final response, a timeout, or the
/// end of a CANCEL. Early RTP goes to `early`.
async fn run_invite(
    io: &Io,
    invite: &rsip::Request,
    branch: &str,
    destination: SocketAddr,
    opts: &CallOptions,
    provisional: &mut Vec<u16>,
    early: &mut Vec<RawRtp>,
) -> Result<InviteOutcome, ClientError> {
    let now = Instant::now();
    let payload = message::to_bytes(&SipMessage::Request(invite.clone()));
    let mut transaction = InviteClient::new(payload, destination, false, opts.timers, now);
    let answer_deadline = now + opts.answer_timeout;
    let mut cancel: Option<NonInviteClient> = None;
    // After CANCEL the far end owes us a 487; §9.1 allows 64·T1 for it.
    let mut cancel_deadline: Option<Instant> = None;
    // A non-2xx final arrived; we stay until `linger_until` to re-ACK resends.
    let mut failed: Option<(u16, CallFailure, Instant)> = None;
    let mut linger_until: Option<Instant> = None;
    let mut sip_buf = vec![0u8; MAX_DATAGRAM];
    let mut rtp_buf = vec![0u8; MAX_DATAGRAM];

    loop {
        while let Some(t) = transaction.poll_transmit() {
            send(&io.sip, &t).await;
        }
        if let Some(cancel) = cancel.as_mut() {
            while let Some(t) = cancel.poll_transmit() {
                send(&io.sip, &t).await;
            }
        }
        let now = Instant::now();
        if let (Some((status, failure, at)), Some(until)) = (failed, linger_until)
            && (transaction.is_terminated() || now >= until)
        {
            return Ok(InviteOutcome::Failed {
                status,
                failure,
                at,
            });
        }
        let wake = earliest([
            transaction.poll_timeout(),
            cancel.as_ref().and_then(NonInviteClient::poll_timeout),
            cancel_deadline,
            linger_until,
            (failed.is_none() && cancel.is_none()).then_some(answer_deadline),
        ]);

        tokio::select! {
            received = io.sip.recv_from(&mut sip_buf) => {
                let Ok((len, _source)) = received else { continue };
                let Ok(SipMessage::Response(response)) = message::parse(&sip_buf[..len]) else {
                    // Requests before the answer (an early BYE, OPTIONS pings)
                    // have no dialog to belong to; the far end will retry.
                    continue;
                };
                if !matches_branch(&response.headers, branch) {
                    continue;
                }
                let status = response.status_code.code();
                let now = Instant::now();
                match message::cseq(&response.headers).map(|(_, method)| method) {
                    Ok(rsip::Method::Invite) => {}
                    Ok(rsip::Method::Cancel) => {
                        if let Some(cancel) = cancel.as_mut() {
                            cancel.handle_response(status, now);
                        }
                        continue;
                    }
                    _ => continue,
                }
                match transaction.handle_response(status, now) {
                    Some(ClientEvent::Provisional(code)) => provisional.push(code),
                    Some(ClientEvent::Final(code)) if (200..300).contains(&code) => {
                        return Ok(InviteOutcome::Answered {
                            response,
                            at: now,
                            hang_up_now: cancel.is_some(),
                        });
                    }
                    Some(ClientEvent::Final(code)) => {
                        let ack = request::failure_ack(invite, &response);
                        transaction.send_failure_ack(message::to_bytes(&SipMessage::Request(ack)), now);
                        let failure = if cancel.is_some() && code == 487 {
                            CallFailure::Cancelled
                        } else {
                            CallFailure::Rejected(code)
                        };
                        failed = Some((code, failure, now));
                        linger_until = Some(now + opts.linger);
                    }
                    Some(ClientEvent::TimedOut) if failed.is_none() => {
                        return Ok(timed_out(now));
                    }
                    _ => {}
                }
            }
            received = io.rtp.recv_from(&mut rtp_buf) => {
                if let Ok((len, source)) = received && early.len() < MAX_EARLY_PACKETS {
                    early.push(RawRtp { arrival: Instant::now(), source, bytes: rtp_buf[..len].to_vec() });
                }
            }
            () = sleep_until(wake) => {
                let now = Instant::now();
                if transaction.poll_timeout().is_some_and(|at| at <= now)
                    && transaction.handle_timeout(now) == Some(ClientEvent::TimedOut)
                    && failed.is_none()
                {
                    return Ok(timed_out(now));
                }
                if let Some(c) = cancel.as_mut()
                    && c.poll_timeout().is_some_and(|at| at <= now)
                {
                    c.handle_timeout(now);
                }
                if cancel_deadline.is_some_and(|at| at <= now) && failed.is_none() {
                    return Ok(timed_out(now));
                }
                if failed.is_none() && cancel.is_none() && now >= answer_deadline {
                    if provisional.is_empty() {
                        // §9.1: no CANCEL before a provisional response; the
                        // far end is silent, so there is nothing to wait for.
                        return Ok(timed_out(now));
                    }
                    let request = request::cancel(invite);
                    let payload = message::to_bytes(&SipMessage::Request(request));
                    cancel = Some(NonInviteClient::new(payload, destination, false, opts.timers, now));
                    cancel_deadline = Some(now + opts.timers.t1 * 64);
                }
            }
        }
    }
}

fn timed_out(at: Instant) -> InviteOutcome {
    InviteOutcome::Failed {
        status: 408,
        failure: CallFailure::TimedOut,
        at,
    }
}

/// True when the top Via of a response carries our `branch` (§17.1.3).
pub(crate) fn matches_branch(headers: &rsip::Headers, branch: &str) -> bool {
    message::top_via(headers)
        .ok()
        .and_then(|via| via.branch)
        .is_some_and(|b| b == branch)
}

/// Sends one datagram. Errors are logged, not fatal: UDP is lossy anyway and
/// the transactions retransmit.
pub(crate) async fn send(socket: &UdpSocket, transmit: &Transmit) {
    if let Err(error) = socket
        .send_to(&transmit.payload, transmit.destination)
        .await
    {
        tracing::debug!(%error, destination = %transmit.destination, "send failed");
    }
}

/// The earliest of some optional instants.
pub(crate) fn earliest<const N: usize>(instants: [Option<Instant>; N]) -> Option<Instant> {
    instants.into_iter().flatten().min()
}

/// Sleeps until `wake`, or forever when there is nothing to wake for.
pub(crate) async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The socket address of a SIP URI (`sip:user@host:port;params`), optionally
/// in angle brackets as Route and Contact values carry it. Port 5060 when
/// absent (RFC 3263 §4.2 without SRV).
pub(crate) async fn resolve(uri: &str) -> Result<SocketAddr, ClientError> {
    let bare = match (uri.find('<'), uri.find('>')) {
        (Some(open), Some(close)) if open < close => &uri[open + 1..close],
        _ => uri.trim(),
    };
    let (host, port) =
        message::uri_host_port(bare).ok_or_else(|| ClientError::NoHostPort(uri.to_owned()))?;
    let port = port.unwrap_or(5060);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ClientError::Resolve {
            host: host.to_owned(),
            source,
        })?;
    addresses.next().ok_or_else(|| ClientError::NoAddress {
        host: host.to_owned(),
    })
}

/// An even RTP port with the next odd one free for RTCP (RFC 3550 §11).
async fn bind_rtp_pair(ip: IpAddr) -> Result<(UdpSocket, UdpSocket), ClientError> {
    for _ in 0..RTP_PORT_TRIES {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
            return Ok((rtp, rtcp));
        }
    }
    Err(ClientError::NoRtpPort(ip, RTP_PORT_TRIES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn rtp_pair_is_even_and_adjacent() {
        let (rtp, rtcp) = bind_rtp_pair(IpAddr::from([127, 0, 0, 1])).await.unwrap();
        let port = rtp.local_addr().unwrap().port();
        assert_eq!(port % 2, 0);
        assert_eq!(rtcp.local_addr().unwrap().port(), port + 1);
    }

    #[test]
    fn earliest_ignores_none() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        assert_eq!(earliest([None, Some(later), Some(t0), None]), Some(t0));
        assert_eq!(earliest::<2>([None, None]), None);
    }
}
