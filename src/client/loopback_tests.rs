//! The client against a scripted UAS on loopback: raw SIP text and raw RTP,
//! so these tests depend on nothing but the client and the modules it uses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use tokio::net::UdpSocket;
use tokio::time::timeout;

use super::*;

pub(super) const STEP: Duration = Duration::from_secs(5);

/// A received SIP request as text, with the address it came from.
pub(super) struct Received {
    pub(super) text: String,
    pub(super) from: SocketAddr,
}

impl Received {
    pub(super) fn method(&self) -> &str {
        self.text.split(' ').next().unwrap_or_default()
    }

    pub(super) fn header(&self, name: &str) -> String {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.text
            .lines()
            .find(|line| line.to_ascii_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].trim().to_owned())
            .unwrap_or_default()
    }

    pub(super) fn body(&self) -> &str {
        self.text.split("\r\n\r\n").nth(1).unwrap_or_default()
    }

    /// The RTP port of the SDP's `m=audio` line.
    pub(super) fn media_port(&self) -> u16 {
        let line = self
            .body()
            .lines()
            .find(|l| l.starts_with("m=audio "))
            .unwrap();
        line.split(' ').nth(1).unwrap().parse().unwrap()
    }

    /// A response copying Via, From, Call-ID, CSeq; `to_tag` added to To.
    pub(super) fn response(
        &self,
        status: &str,
        to_tag: Option<&str>,
        extra: &str,
        body: &str,
    ) -> String {
        let to = match to_tag {
            Some(tag) if !self.header("To").contains("tag=") => {
                format!("{};tag={tag}", self.header("To"))
            }
            _ => self.header("To"),
        };
        format!(
            "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.header("Via"),
            self.header("From"),
            self.header("Call-ID"),
            self.header("CSeq"),
            body.len()
        )
    }
}

/// The far end: a SIP socket and an RTP socket.
pub(super) struct FakeUas {
    pub(super) sip: UdpSocket,
    pub(super) rtp: UdpSocket,
}

impl FakeUas {
    pub(super) async fn new() -> Self {
        FakeUas {
            sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub(super) fn uri(&self) -> String {
        format!("sip:service@{}", self.sip.local_addr().unwrap())
    }

    pub(super) async fn recv(&self) -> Received {
        let mut buf = vec![0u8; 65_535];
        let (len, from) = timeout(STEP, self.sip.recv_from(&mut buf))
            .await
            .expect("the client sent nothing")
            .unwrap();
        Received {
            text: String::from_utf8(buf[..len].to_vec()).unwrap(),
            from,
        }
    }

    pub(super) async fn send(&self, text: &str, to: SocketAddr) {
        self.sip.send_to(text.as_bytes(), to).await.unwrap();
    }

    /// A PCMU answer with media at `port`.
    pub(super) fn answer_sdp(port: u16, version: u32) -> String {
        format!(
            "v=0\r\no=- 7 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        )
    }

    /// The 200 OK for `invite` with `sdp`, Contact and our tag.
    pub(super) fn ok(&self, invite: &Received, sdp: &str) -> String {
        let extra = format!(
            "Contact: <sip:uas@{}>\r\nContent-Type: application/sdp\r\n",
            self.sip.local_addr().unwrap()
        );
        invite.response("200 OK", Some("uas1"), &extra, sdp)
    }

    /// INVITE → 100, 180, 200 (PCMU to our RTP socket) → ACK.
    pub(super) async fn answer(&self) -> (Received, Received) {
        let sdp = Self::answer_sdp(self.rtp.local_addr().unwrap().port(), 7);
        self.answer_with(&sdp).await
    }

    /// INVITE → 100, 180, 200 with `sdp` → ACK. Returns INVITE and ACK.
    pub(super) async fn answer_with(&self, sdp: &str) -> (Received, Received) {
        let invite = self.recv().await;
        assert_eq!(invite.method(), "INVITE", "{}", invite.text);
        let trying = invite.response("100 Trying", None, "", "");
        self.send(&trying, invite.from).await;
        let ringing = invite.response("180 Ringing", Some("uas1"), "", "");
        self.send(&ringing, invite.from).await;
        self.send(&self.ok(&invite, sdp), invite.from).await;
        let ack = self.recv().await;
        (invite, ack)
    }

    /// An in-dialog request from us (the UAS) to the client.
    pub(super) fn request(
        &self,
        method: &str,
        invite: &Received,
        cseq: u32,
        branch: &str,
        extra: &str,
        body: &str,
    ) -> String {
        format!(
            "{method} sip:client@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch}\r\n\
             From: {};tag=uas1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Max-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            invite.from,
            self.sip.local_addr().unwrap(),
            invite.header("To"),
            invite.header("From"),
            invite.header("Call-ID"),
            body.len(),
        )
    }
}

fn rtp_packet(seq: u16, ts: u32, marker: bool, level: u8) -> Vec<u8> {
    RtpPacketBuilder::new()
        .payload_type(0)
        .ssrc(0xDEAD_BEEF)
        .sequence(Seq::from(seq))
        .timestamp(ts)
        .marked(marker)
        .payload(&[level; 160])
        .build()
        .unwrap()
}

#[tokio::test]
async fn answered_call_records_by_timestamp_and_far_end_hangs_up() {
    let uas = FakeUas::new().await;
    let mut opts = CallOptions::new(uas.uri(), Codec::Pcmu);
    opts.linger = Duration::from_millis(100);
    let call = tokio::spawn(place_call(opts));

    let (invite, ack) = uas.answer().await;
    assert_eq!(ack.method(), "ACK", "{}", ack.text);
    assert!(ack.header("To").contains("tag=uas1"));
    assert_eq!(ack.header("CSeq"), "1 ACK");
    assert!(invite.body().contains("PCMU/8000"), "{}", invite.body());
    let client_rtp = SocketAddr::new(invite.from.ip(), invite.media_port());

    // 25 packets paced at 20 ms; seq 5 lost, 10 and 11 swapped.
    let t0 = Instant::now();
    let order: Vec<u16> = (0..25)
        .filter(|&k| k != 5)
        .map(|k| match k {
            10 => 11,
            11 => 10,
            k => k,
        })
        .collect();
    for (i, &k) in order.iter().enumerate() {
        tokio::time::sleep_until((t0 + Duration::from_millis(20) * i as u32).into()).await;
        let packet = rtp_packet(1_000 + k, 50_000 + 160 * u32::from(k), k == 0, k as u8 + 1);
        uas.rtp.send_to(&packet, client_rtp).await.unwrap();
    }
    // Symmetric RTP: the client has been sending to our media address.
    let mut buf = [0u8; 2048];
    let (len, from) = timeout(STEP, uas.rtp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, client_rtp, "RTP comes from the advertised port");
    let ours = RtpReader::new(&buf[..len]).unwrap();
    assert_eq!(ours.payload_type(), 0);
    assert_eq!(ours.payload(), &[0xFF; 160][..]);

    let bye = uas.request("BYE", &invite, 7, "z9hG4bKbye1", "", "");
    uas.send(&bye, invite.from).await;
    let ok = uas.recv().await;
    assert!(ok.text.starts_with("SIP/2.0 200"), "{}", ok.text);
    assert!(ok.text.contains("CSeq: 7 BYE"), "{}", ok.text);
    // A retransmitted BYE gets the 200 again.
    uas.send(&bye, invite.from).await;
    let again = uas.recv().await;
    assert!(again.text.starts_with("SIP/2.0 200"), "{}", again.text);

    let report = timeout(STEP, call).await.unwrap().unwrap().unwrap();
    assert_eq!(report.final_status, 200);
    assert_eq!(report.provisional, vec![100, 180]);
    assert_eq!(report.hung_up_by, HangUp::FarEnd);
    assert_eq!(report.payload_type, Some(0));
    assert_eq!(report.telephone_event, Some(101));
    assert_eq!(report.stats.packets, 24);
    assert_eq!(report.stats.lost, 1);
    assert_eq!(report.stats.out_of_order, 1);
    assert!(report.stats.marker_first && report.stats.ts_step_consistent);
    assert!(report.packets_sent > 0);
    assert_eq!(report.sample_rate_hz, 8_000);
    assert_eq!(report.samples.len(), 25 * 160);
    let level = |k: usize| report.samples[k * 160 + 80];
    assert_eq!(level(5), 0.0, "the lost packet is silence");
    assert!(
        level(11) > level(10) && level(10) > level(9),
        "reordered packets in place"
    );
    assert!(report.first_rtp_after_ack.is_some());
}

#[tokio::test]
async fn busy_is_acked_and_reported() {
    let uas = FakeUas::new().await;
    let call = tokio::spawn(place_call(CallOptions::new(uas.uri(), Codec::Pcma)));
    let invite = uas.recv().await;
    assert!(invite.body().contains("PCMA/8000"), "{}", invite.body());
    let busy = invite.response("486 Busy Here", Some("uas2"), "", "");
    uas.send(&busy, invite.from).await;
    let ack = uas.recv().await;
    assert_eq!(ack.method(), "ACK");
    assert_eq!(ack.header("CSeq"), "1 ACK");
    assert_eq!(ack.header("Via"), invite.header("Via"), "same transaction");
    // The 486 again (our ACK "lost"): the transaction re-ACKs.
    uas.send(&busy, invite.from).await;
    assert_eq!(uas.recv().await.method(), "ACK");
    let report = timeout(STEP, call).await.unwrap().unwrap().unwrap();
    assert_eq!(report.final_status, 486);
    assert_eq!(
        report.hung_up_by,
        HangUp::Failed(CallFailure::Rejected(486))
    );
    assert!(report.samples.is_empty());
}

#[tokio::test]
async fn we_hang_up_after_seconds_and_wait_for_the_200() {
    let uas = FakeUas::new().await;
    let mut opts = CallOptions::new(uas.uri(), Codec::Pcmu);
    opts.seconds = Some(Duration::from_millis(300));
    let call = tokio::spawn(place_call(opts));
    let (invite, _ack) = uas.answer().await;
    let bye = uas.recv().await;
    assert_eq!(bye.method(), "BYE", "{}", bye.text);
    assert!(bye.header("To").contains("tag=uas1"));
    assert_eq!(bye.header("Call-ID"), invite.header("Call-ID"));
    uas.send(&bye.response("200 OK", None, "", ""), bye.from)
        .await;
    let report = timeout(STEP, call).await.unwrap().unwrap().unwrap();
    assert_eq!(report.hung_up_by, HangUp::Us);
    assert_eq!(report.bye_status, Some(200));
    let lasted = report.duration().unwrap();
    assert!(
        lasted >= Duration::from_millis(300) && lasted < Duration::from_millis(600),
        "{lasted:?}"
    );
}

/// Our RTP arriving at `socket`, as (payload type, payload length).
async fn next_rtp(socket: &UdpSocket) -> (u8, usize) {
    let mut buf = [0u8; 2048];
    let (len, _) = timeout(STEP, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let packet = RtpReader::new(&buf[..len]).unwrap();
    (packet.payload_type(), packet.payload().len())
}

#[tokio::test]
async fn reinvite_moves_our_media_and_options_is_answered() {
    let uas = FakeUas::new().await;
    let mut opts = CallOptions::new(uas.uri(), Codec::Pcmu);
    opts.seconds = Some(Duration::from_millis(600));
    let call = tokio::spawn(place_call(opts));
    let (invite, _ack) = uas.answer().await;
    assert_eq!(next_rtp(&uas.rtp).await, (0, 160));

    let options = uas.request("OPTIONS", &invite, 2, "z9hG4bKopt", "", "");
    uas.send(&options, invite.from).await;
    let ok = uas.recv().await;
    assert!(
        ok.text.starts_with("SIP/2.0 200") && ok.text.contains("CSeq: 2 OPTIONS"),
        "{}",
        ok.text
    );

    let moved = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sdp = FakeUas::answer_sdp(moved.local_addr().unwrap().port(), 8);
    let contact = format!(
        "Contact: <sip:uas@{}>\r\nContent-Type: application/sdp\r\n",
        uas.sip.local_addr().unwrap()
    );
    let reinvite = uas.request("INVITE", &invite, 3, "z9hG4bKre", &contact, &sdp);
    uas.send(&reinvite, invite.from).await;
    let ok = uas.recv().await;
    assert!(
        ok.text.starts_with("SIP/2.0 200") && ok.text.contains("CSeq: 3 INVITE"),
        "{}",
        ok.text
    );
    assert!(
        ok.body()
            .contains(&format!("m=audio {} ", invite.media_port())),
        "same media: {}",
        ok.text
    );
    assert!(
        ok.header("Contact").contains("sip:"),
        "2xx to INVITE has a Contact"
    );
    // The 200 is retransmitted until our ACK.
    let ack = uas.request("ACK", &invite, 3, "z9hG4bKreack", "", "");
    uas.send(&ack, invite.from).await;
    assert_eq!(
        next_rtp(&moved).await,
        (0, 160),
        "RTP follows the new address"
    );

    let bye = uas.recv().await;
    assert_eq!(bye.method(), "BYE");
    uas.send(&bye.response("200 OK", None, "", ""), bye.from)
        .await;
    let report = timeout(STEP, call).await.unwrap().unwrap().unwrap();
    assert_eq!(report.remote_rtp, moved.local_addr().ok());
    assert_eq!(report.hung_up_by, HangUp::Us);
}

#[tokio::test]
async fn retransmitted_200_is_acked_again() {
    let uas = FakeUas::new().await;
    let mut opts = CallOptions::new(uas.uri(), Codec::Pcmu);
    opts.seconds = Some(Duration::from_millis(400));
    let call = tokio::spawn(place_call(opts));
    let sdp = FakeUas::answer_sdp(uas.rtp.local_addr().unwrap().port(), 7);
    let (invite, first) = uas.answer_with(&sdp).await;
    uas.send(&uas.ok(&invite, &sdp), invite.from).await;
    let second = uas.recv().await;
    assert_eq!(second.method(), "ACK");
    assert_eq!(
        second.header("Via"),
        first.header("Via"),
        "the same ACK again"
    );
    let bye = uas.recv().await;
    uas.send(&bye.response("200 OK", None, "", ""), bye.from)
        .await;
    timeout(STEP, call).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn ringing_too_long_is_cancelled() {
    let uas = FakeUas::new().await;
    let mut opts = CallOptions::new(uas.uri(), Codec::Pcmu);
    opts.answer_timeout = Duration::from_millis(200);
    let call = tokio::spawn(place_call(opts));
    let invite = uas.recv().await;
    uas.send(
        &invite.response("180 Ringing", Some("uas3"), "", ""),
        invite.from,
    )
    .await;
    let cancel = uas.recv().await;
    assert_eq!(cancel.method(), "CANCEL", "{}", cancel.text);
    assert_eq!(cancel.header("Via"), invite.header("Via"));
    assert_eq!(cancel.header("CSeq"), "1 CANCEL");
    uas.send(&cancel.response("200 OK", None, "", ""), cancel.from)
        .await;
    uas.send(
        &invite.response("487 Request Terminated", Some("uas3"), "", ""),
        invite.from,
    )
    .await;
    assert_eq!(uas.recv().await.method(), "ACK");
    let report = timeout(STEP, call).await.unwrap().unwrap().unwrap();
    assert_eq!(report.final_status, 487);
    assert_eq!(report.hung_up_by, HangUp::Failed(CallFailure::Cancelled));
}

#[tokio::test]
async fn silence_gives_up_at_the_answer_timeout() {
    let uas = FakeUas::new().await;
    let mut opts = CallOptions::new(uas.uri(), Codec::Pcmu);
    opts.answer_timeout = Duration::from_millis(300);
    let report = timeout(STEP, place_call(opts)).await.unwrap().unwrap();
    assert_eq!(report.final_status, 408);
    assert_eq!(report.hung_up_by, HangUp::Failed(CallFailure::TimedOut));
}

#[tokio::test]
async fn opus_call_is_decoded_at_48k() {
    use audiopus::coder::Encoder;
    use audiopus::{Application, Channels, SampleRate};
    let uas = FakeUas::new().await;
    let mut opts = CallOptions::new(uas.uri(), Codec::Opus);
    opts.seconds = Some(Duration::from_millis(400));
    let call = tokio::spawn(place_call(opts));
    let invite = uas.recv().await;
    let rtpmap = invite
        .body()
        .lines()
        .find(|l| l.contains("opus/48000/2"))
        .unwrap()
        .to_owned();
    let pt: u8 = rtpmap["a=rtpmap:".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP {pt}\r\n{rtpmap}\r\na=ptime:20\r\n",
        uas.rtp.local_addr().unwrap().port()
    );
    uas.send(&uas.ok(&invite, &sdp), invite.from).await;
    assert_eq!(uas.recv().await.method(), "ACK");
    let client_rtp = SocketAddr::new(invite.from.ip(), invite.media_port());
    let encoder = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip).unwrap();
    let tone: Vec<i16> = (0..960)
        .map(|i| ((i as f32 * 0.1).sin() * 10_000.0) as i16)
        .collect();
    let mut payload = [0u8; 1_000];
    let len = encoder.encode(&tone, &mut payload).unwrap();
    for k in 0..5u16 {
        let packet = RtpPacketBuilder::new()
            .payload_type(pt)
            .ssrc(5)
            .sequence(Seq::from(k))
            .timestamp(960 * u32::from(k))
            .payload(&payload[..len])
            .build()
            .unwrap();
        uas.rtp.send_to(&packet, client_rtp).await.unwrap();
    }
    let (our_pt, _) = next_rtp(&uas.rtp).await;
    assert_eq!(our_pt, pt);
    let bye = uas.recv().await;
    uas.send(&bye.response("200 OK", None, "", ""), bye.from)
        .await;
    let report = timeout(STEP, call).await.unwrap().unwrap().unwrap();
    assert_eq!(report.sample_rate_hz, 48_000);
    assert_eq!(report.samples.len(), 5 * 960);
    assert_eq!(report.undecodable, 0);
    assert!(
        report.samples.iter().any(|s| s.abs() > 0.05),
        "the tone is heard"
    );
}

#[tokio::test]
async fn symmetric_sends_everything_to_the_address_called_whatever_the_answer_advertises() {
    let uas = FakeUas::new().await;
    let mut opts = CallOptions::new(uas.uri(), Codec::Pcmu);
    opts.seconds = Some(Duration::from_millis(600));
    opts.symmetric = true;
    opts.dtmf = vec![DtmfPress {
        at: Duration::from_millis(100),
        key: Key::Digit(1),
    }];
    opts.dtmf_via = vec![KeyChannel::SipInfo];
    let call = tokio::spawn(place_call(opts));
    // A line behind NAT: Contact and c= name its public address
    // (TEST-NET-1, where nothing may be sent).
    let invite = uas.recv().await;
    let port = uas.rtp.local_addr().unwrap().port();
    let sdp = FakeUas::answer_sdp(port, 7).replace("IN IP4 127.0.0.1", "IN IP4 192.0.2.1");
    let extra = "Contact: <sip:uas@192.0.2.1:5060>\r\nContent-Type: application/sdp\r\n";
    let ok = invite.response("200 OK", Some("uas1"), extra, &sdp);
    uas.send(&ok, invite.from).await;
    assert_eq!(uas.recv().await.method(), "ACK");
    assert_eq!(
        next_rtp(&uas.rtp).await.0,
        0,
        "our RTP came to the address called"
    );
    let info = uas.recv().await;
    assert_eq!(info.method(), "INFO", "{}", info.text);
    uas.send(&info.response("200 OK", None, "", ""), info.from)
        .await;
    let bye = uas.recv().await;
    assert_eq!(bye.method(), "BYE", "{}", bye.text);
    uas.send(&bye.response("200 OK", None, "", ""), bye.from)
        .await;
    let report = timeout(STEP, call).await.unwrap().unwrap().unwrap();
    assert_eq!(report.bye_status, Some(200));
}
