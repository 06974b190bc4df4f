//! The client against a scripted UAS on loopback: raw SIP text and raw RTP,
//! so these tests depend on nothing but the client and the modules it uses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use tokio::net::UdpSocket;
use tokio::time::timeout;

use super::*;

const STEP: Duration = Duration::from_secs(5);

/// A received SIP request as text, with the address it came from.
struct Received {
    text: String,
    from: SocketAddr,
}

impl Received {
    fn method(&self) -> &str {
        self.text.split(' ').next().unwrap_or_default()
    }

    fn header(&self, name: &str) -> String {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.text
            .lines()
            .find(|line| line.to_ascii_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].trim().to_owned())
            .unwrap_or_default()
    }

    fn body(&self) -> &str {
        self.text.split("\r\n\r\n").nth(1).unwrap_or_default()
    }

    /// The RTP port of the SDP's `m=audio` line.
    fn media_port(&self) -> u16 {
        let line = self
            .body()
            .lines()
            .find(|l| l.starts_with("m=audio "))
            .unwrap();
        line.split(' ').nth(1).unwrap().parse().unwrap()
    }

    /// A response copying Via, From, Call-ID, CSeq; `to_tag` added to To.
    fn response(&self, status: &str, to_tag: Option<&str>, extra: &str, body: &str) -> String {
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
struct FakeUas {
    sip: UdpSocket,
    rtp: UdpSocket,
}

impl FakeUas {
    async fn new() -> Self {
        FakeUas {
            sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    fn uri(&self) -> String {
        format!("sip:service@{}", self.sip.local_addr().unwrap())
    }

    async fn recv(&self) -> Received {
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

    async fn send(&self, text: &str, to: SocketAddr) {
        self.sip.send_to(text.as_bytes(), to).await.unwrap();
    }

    fn answer_sdp(&self) -> String {
        let port = self.rtp.local_addr().unwrap().port();
        format!(
            "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        )
    }

    /// INVITE → 100, 180, 200 (with SDP) → ACK. Returns INVITE and ACK.
    async fn answer(&self) -> (Received, Received) {
        let invite = self.recv().await;
        assert_eq!(invite.method(), "INVITE", "{}", invite.text);
        self.send(&invite.response("100 Trying", None, "", ""), invite.from)
            .await;
        self.send(
            &invite.response("180 Ringing", Some("uas1"), "", ""),
            invite.from,
        )
        .await;
        let contact = format!(
            "Contact: <sip:uas@{}>\r\nContent-Type: application/sdp\r\n",
            self.sip.local_addr().unwrap()
        );
        let ok = invite.response("200 OK", Some("uas1"), &contact, &self.answer_sdp());
        self.send(&ok, invite.from).await;
        let ack = self.recv().await;
        (invite, ack)
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

    let bye = format!(
        "BYE sip:tester@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKbye1\r\nFrom: {};tag=uas1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 7 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        invite.from,
        uas.sip.local_addr().unwrap(),
        invite.header("To"),
        invite.header("From"),
        invite.header("Call-ID"),
    );
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
