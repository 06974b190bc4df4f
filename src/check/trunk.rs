//! The trunk checked now: its name resolved (A/AAAA, as the line does), then
//! an OPTIONS ping (RFC 3261 §11) over the configured transport. Any final
//! answer, even 401 or 405, proves the trunk is there and hears us; only
//! silence is a failure. Registering is not tried: that would take the
//! registration from a line already running.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::SipMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::TrunkConfig;
use crate::sip::Transport;
use crate::sip::framing::{Frame, KeepAliveRole, StreamFramer};
use crate::sip::message;

use super::CheckReport;

/// How long the check waits for the name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// An answer is waited for this many T1: over UDP, five sends (at 0, 1, 3,
/// 7 and 15 T1, RFC 3261 §17.1.2.2), 8 s at the default T1.
const ANSWER_T1S: u32 = 16;

/// What the OPTIONS found.
#[derive(Debug, PartialEq, Eq)]
enum Ping {
    Answered { status: u16, reason: String },
    Silent,
    CannotSend(String),
}

pub async fn check_trunk(
    trunk: &TrunkConfig,
    t1: Duration,
    user_agent: Option<&str>,
    report: &mut CheckReport,
) {
    let hop = trunk.next_hop();
    let target = hop.lookup_target();
    let role = if trunk.outbound_proxy.is_some() {
        "[trunk] outbound_proxy"
    } else {
        "[trunk] registrar"
    };
    let address =
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(&target)).await {
            Ok(Ok(mut found)) => found.next(),
            Ok(Err(error)) => {
                report.problem(format!(
                    "trunk {}: the name does not resolve ({error}): check its spelling in {role}, \
                 and that this machine can look up names",
                    hop.host
                ));
                return;
            }
            Err(_) => None,
        };
    let Some(address) = address else {
        report.problem(format!(
            "trunk {}: the name has no address: check {role}",
            hop.host
        ));
        return;
    };
    let request_uri = match trunk.registrar.port {
        Some(port) => format!("sip:{}:{port}", trunk.registrar.host_for_uri()),
        None => format!("sip:{}", trunk.registrar.host_for_uri()),
    };
    let wait = t1 * ANSWER_T1S;
    let transport = trunk.transport;
    let started = Instant::now();
    let ping = match transport {
        Transport::Udp => ping_udp(address, &request_uri, trunk, t1, wait, user_agent).await,
        Transport::Tcp => ping_tcp(address, &request_uri, trunk, wait, user_agent).await,
    };
    let over = format!("{} ({address} over {})", hop.host, transport.via_token());
    match ping {
        Ping::Answered { status, reason } => report.ok(format!(
            "trunk {over} answered OPTIONS with {status} {reason} in {} ms",
            started.elapsed().as_millis()
        )),
        Ping::Silent => report.problem(format!(
            "trunk {over}: no answer to OPTIONS within {:.1} s: check the address and port in \
             {role} and [trunk] transport, and that no firewall blocks SIP (port {})",
            wait.as_secs_f64(),
            address.port()
        )),
        Ping::CannotSend(error) => report.problem(format!(
            "trunk {over}: cannot reach it ({error}): check the address and port in {role}, \
             and [trunk] transport"
        )),
    }
}

/// Identifiers of one ping.
struct Ids {
    branch: String,
    call_id: String,
    tag: String,
}

impl Ids {
    fn new() -> Ids {
        Ids {
            branch: message::new_branch(&mut rand::rng()),
            call_id: format!(
                "{}@dial-a-service.check",
                message::new_tag(&mut rand::rng())
            ),
            tag: message::new_tag(&mut rand::rng()),
        }
    }
}

/// An OPTIONS from the trunk account's address of record (RFC 3261 §11.1),
/// through the outbound proxy if one is set (a loose Route, §16.12).
fn options_request(
    request_uri: &str,
    trunk: &TrunkConfig,
    local: SocketAddr,
    transport: Transport,
    ids: &Ids,
    user_agent: Option<&str>,
) -> String {
    let domain = trunk.registrar.host_for_uri();
    let mut text = format!(
        "OPTIONS {request_uri} SIP/2.0\r\n\
         Via: SIP/2.0/{} {local};branch={};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{}@{domain}>;tag={}\r\n\
         To: <{request_uri}>\r\n\
         Call-ID: {}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n",
        transport.via_token(),
        ids.branch,
        trunk.username,
        ids.tag,
        ids.call_id,
    );
    if let Some(proxy) = &trunk.outbound_proxy {
        text.push_str(&format!(
            "Route: <sip:{}:{};lr>\r\n",
            proxy.host_for_uri(),
            proxy.port_or_default()
        ));
    }
    if let Some(agent) = user_agent {
        text.push_str(&format!("User-Agent: {agent}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text
}

/// A final answer to our ping in `bytes`, if that is what they are.
fn read_answer(bytes: &[u8], ids: &Ids) -> Option<Ping> {
    let Ok(SipMessage::Response(response)) = message::parse(bytes) else {
        return None;
    };
    let ours = message::call_id(&response.headers).is_ok_and(|id| id == ids.call_id);
    let status = response.status_code.code();
    // The peer's own words from the status line (rsip names known codes
    // its own way), printable and short.
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let reason: String = String::from_utf8_lossy(line)
        .splitn(3, ' ')
        .nth(2)
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    (ours && status >= 200).then_some(Ping::Answered { status, reason })
}

/// Sent again at T1, 2·T1, 4·T1 … (RFC 3261 §17.1.2.2, Timer E) until an
/// answer or `wait`.
async fn ping_udp(
    address: SocketAddr,
    request_uri: &str,
    trunk: &TrunkConfig,
    t1: Duration,
    wait: Duration,
    user_agent: Option<&str>,
) -> Ping {
    let unspecified: SocketAddr = if address.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match tokio::net::UdpSocket::bind(unspecified).await {
        Ok(socket) => socket,
        Err(error) => return Ping::CannotSend(error.to_string()),
    };
    // Connected: the kernel picks the source address, and only the
    // trunk's datagrams are received.
    if let Err(error) = socket.connect(address).await {
        return Ping::CannotSend(error.to_string());
    }
    let local = socket.local_addr().unwrap_or(unspecified);
    let ids = Ids::new();
    let request = options_request(request_uri, trunk, local, Transport::Udp, &ids, user_agent);
    let deadline = tokio::time::Instant::now() + wait;
    let mut interval = t1;
    let mut buffer = vec![0u8; 65_535];
    loop {
        if let Err(error) = socket.send(request.as_bytes()).await
            && error.kind() != std::io::ErrorKind::ConnectionRefused
        {
            return Ping::CannotSend(error.to_string());
        }
        let resend_at = (tokio::time::Instant::now() + interval).min(deadline);
        loop {
            match tokio::time::timeout_at(resend_at, socket.recv(&mut buffer)).await {
                Ok(Ok(n)) => {
                    if let Some(answer) = read_answer(&buffer[..n], &ids) {
                        return answer;
                    }
                }
                // ICMP port unreachable: nothing listens there (yet); keep
                // trying until the deadline, as a trunk may be restarting.
                Ok(Err(_)) => tokio::time::sleep_until(resend_at).await,
                Err(_) => break,
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Ping::Silent;
        }
        // T2 caps the doubling (RFC 3261 §17.1.2.2).
        interval = (interval * 2).min(Duration::from_secs(4));
    }
}

async fn ping_tcp(
    address: SocketAddr,
    request_uri: &str,
    trunk: &TrunkConfig,
    wait: Duration,
    user_agent: Option<&str>,
) -> Ping {
    let deadline = tokio::time::Instant::now() + wait;
    let mut stream =
        match tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Ping::CannotSend(error.to_string()),
            Err(_) => return Ping::Silent,
        };
    let Ok(local) = stream.local_addr() else {
        return Ping::CannotSend("the connection has no local address".to_owned());
    };
    let ids = Ids::new();
    let request = options_request(request_uri, trunk, local, Transport::Tcp, &ids, user_agent);
    if let Err(error) = stream.write_all(request.as_bytes()).await {
        return Ping::CannotSend(error.to_string());
    }
    let mut framer = StreamFramer::new(KeepAliveRole::Client);
    let mut buffer = vec![0u8; 16_384];
    loop {
        let read = match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) => return Ping::CannotSend("the trunk closed the connection".to_owned()),
            Ok(Ok(n)) => n,
            Ok(Err(error)) => return Ping::CannotSend(error.to_string()),
            Err(_) => return Ping::Silent,
        };
        framer.push(&buffer[..read]);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(bytes))) => {
                    if let Some(answer) = read_answer(&bytes, &ids) {
                        return answer;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => return Ping::CannotSend(format!("unreadable answer: {error}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(text: &str) -> TrunkConfig {
        crate::config::Config::from_toml_str(text, std::path::Path::new("/etc/das.toml"), |_| None)
            .expect("config")
            .trunk
            .expect("a trunk")
    }

    #[test]
    fn the_ping_is_a_well_formed_options_from_the_account() {
        let trunk = trunk(
            "[trunk]\nregistrar = \"sip:sip.example.net\"\nusername = \"parish\"\npassword = \"x\"\n\
             outbound_proxy = \"sip:192.0.2.7:5080\"",
        );
        let ids = Ids::new();
        let text = options_request(
            "sip:sip.example.net",
            &trunk,
            "192.0.2.1:40000".parse().unwrap(),
            Transport::Udp,
            &ids,
            None,
        );
        let SipMessage::Request(request) = message::parse(text.as_bytes()).expect("parses") else {
            panic!("a request");
        };
        assert_eq!(request.method, rsip::Method::Options);
        assert_eq!(message::call_id(&request.headers).unwrap(), ids.call_id);
        assert!(
            text.contains("From: <sip:parish@sip.example.net>;tag="),
            "{text}"
        );
        assert!(text.contains("Route: <sip:192.0.2.7:5080;lr>"), "{text}");
        assert!(!text.contains("User-Agent"), "{text}");
    }

    #[test]
    fn only_a_final_answer_to_this_ping_counts() {
        let ids = Ids::new();
        let answer = |status: &str, call_id: &str| {
            format!(
                "SIP/2.0 {status}\r\nVia: SIP/2.0/UDP 192.0.2.1:40000;branch={}\r\n\
                 From: <sip:parish@x>;tag={}\r\nTo: <sip:x>;tag=1\r\nCall-ID: {call_id}\r\n\
                 CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                ids.branch, ids.tag
            )
        };
        assert_eq!(
            read_answer(
                answer("405 Method Not Allowed", &ids.call_id).as_bytes(),
                &ids
            ),
            Some(Ping::Answered {
                status: 405,
                reason: "Method Not Allowed".to_owned()
            })
        );
        assert_eq!(
            read_answer(answer("100 Trying", &ids.call_id).as_bytes(), &ids),
            None
        );
        assert_eq!(
            read_answer(answer("200 OK", "someone-else").as_bytes(), &ids),
            None
        );
        assert_eq!(read_answer(b"\x00garbage", &ids), None);
    }
}
