//! A deliberately dumb caller for protocol edge cases that a well-behaved
//! client never produces: it writes SIP by hand and reads raw datagrams.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub struct RawUac {
    pub sip: UdpSocket,
    pub rtp: UdpSocket,
    pub line: SocketAddr,
    pub call_id: String,
    pub to_tag: Option<String>,
}

impl RawUac {
    pub fn new(line: SocketAddr) -> RawUac {
        RawUac::new_on(line, "127.0.0.1")
    }

    /// A caller on another loopback address (`127.0.0.2`…): a different
    /// source to the line, for limits and trust per address.
    pub fn new_on(line: SocketAddr, ip: &str) -> RawUac {
        let sip = UdpSocket::bind((ip, 0)).expect("bind SIP");
        let rtp = (0..100)
            .find_map(|_| {
                let rtp = UdpSocket::bind((ip, 0)).ok()?;
                let port = rtp.local_addr().ok()?.port();
                UdpSocket::bind((ip, port + 1)).ok()?;
                (port % 2 == 0).then_some(rtp)
            })
            .expect("bind RTP");
        RawUac {
            sip,
            rtp,
            line,
            call_id: format!("raw-{}-{}@127.0.0.1", std::process::id(), rand_u32()),
            to_tag: None,
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.sip.local_addr().expect("local addr")
    }

    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().expect("local addr").port()
    }

    /// An SDP offer with the given payload types (0, 8, 18 …).
    pub fn offer(&self, payload_types: &str) -> String {
        let ip = self.local().ip();
        format!(
            "v=0\r\no=raw 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP {payload_types} 101\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
            self.rtp_port()
        )
    }

    pub fn request(&self, method: &str, branch: &str, cseq: u32, body: &str) -> String {
        let local = self.local();
        let to = match &self.to_tag {
            Some(tag) => format!("<sip:service@{}>;tag={tag}", self.line),
            None => format!("<sip:service@{}>", self.line),
        };
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} sip:service@{line} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:raw@{local}>;tag=raw-from\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:raw@{local}>\r\n\
             {content_type}Content-Length: {len}\r\n\r\n{body}",
            line = self.line,
            call_id = self.call_id,
            len = body.len()
        )
    }

    pub fn send(&self, text: &str) {
        self.sip.send_to(text.as_bytes(), self.line).expect("send");
    }

    /// Every SIP message received within `wait`, with its arrival time.
    pub fn receive_for(&self, wait: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65_535];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return out;
            }
            self.sip
                .set_read_timeout(Some(deadline - now))
                .expect("timeout");
            if let Ok((n, _)) = self.sip.recv_from(&mut buf) {
                out.push((
                    Instant::now(),
                    String::from_utf8_lossy(&buf[..n]).into_owned(),
                ));
            }
        }
    }

    /// Waits for a response with `status` (other messages are returned too).
    pub fn wait_for_status(&self, status: u16, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < deadline {
            self.sip
                .set_read_timeout(Some(
                    deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1)),
                ))
                .expect("timeout");
            if let Ok((n, _)) = self.sip.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if status_of(&text) == Some(status) {
                    return Some(text);
                }
            }
        }
        None
    }

    /// RTP packets received within `wait` (count only).
    pub fn count_rtp_for(&self, wait: Duration) -> usize {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 2_048];
        let mut count = 0;
        while Instant::now() < deadline {
            self.rtp
                .set_read_timeout(Some(
                    deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1)),
                ))
                .expect("timeout");
            if self.rtp.recv_from(&mut buf).is_ok() {
                count += 1;
            }
        }
        count
    }
}

/// The status code of a response, `None` for a request.
pub fn status_of(message: &str) -> Option<u16> {
    message.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// The tag of the To header.
pub fn to_tag(message: &str) -> Option<String> {
    message
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:") || l.starts_with("t:"))
        .and_then(|l| l.split("tag=").nth(1))
        .map(|t| t.split([';', ' ']).next().unwrap_or(t).trim().to_owned())
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    nanos ^ std::process::id().rotate_left(13)
}
