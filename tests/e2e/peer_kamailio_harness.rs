//! The trunk harness against real peers only (no line): kamailio from
//! Debian playing the SIP trunk (`tests/kamailio/trunk.cfg`), sipp and raw
//! sockets playing the line and its callers. If these pass, a failing line
//! test points at the line, not at the trunk.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::kamailio::{
    Kamailio, finish_sipp, free_udp_tcp_port, is_listening, parse_contacts, run_sipp, sipp_command,
};
use common::{free_udp_port, have_tool};

const USER: &str = "line";
const PASSWORD: &str = "s3cret pass";

fn have_peers() -> bool {
    have_tool("kamailio") && have_tool("kamcmd") && have_tool("sipp") && have_tool("ss")
}

/// A REGISTER for `line` without credentials, by hand.
fn bare_register(kamailio: &Kamailio, local: SocketAddr, transport: &str, tag: &str) -> String {
    format!(
        "REGISTER {registrar} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK-{tag};rport\r\n\
         From: <sip:{USER}@{trunk}>;tag={tag}\r\n\
         To: <sip:{USER}@{trunk}>\r\n\
         Call-ID: {tag}@127.0.0.1\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:{USER}@{local}>\r\n\
         Expires: 60\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        registrar = kamailio.registrar_uri(),
        trunk = kamailio.addr(),
    )
}

/// Sends `request` over UDP and returns the first final response.
fn udp_exchange(to: SocketAddr, socket: &UdpSocket, request: &str) -> String {
    socket.send_to(request.as_bytes(), to).expect("send");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 1") {
                return text;
            }
        }
    }
    panic!("no final response to:\n{request}");
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// sipp registers `USER` from `port` with `password` (`-t t1` for TCP).
fn sipp_register(
    kamailio: &Kamailio,
    name: &str,
    port: u16,
    password: &str,
    expires: u32,
    tcp: bool,
) -> common::kamailio::SippRun {
    let mut command = sipp_command(kamailio.dir(), name, "register.xml", kamailio.addr(), port);
    command
        .args(["-s", USER, "-au", USER, "-ap", password])
        .args(["-set", "expires", &expires.to_string()])
        .args(["-set", "hold_ms", "0"]);
    // No -nd: on an unexpected reply (a second 401) sipp aborts the call
    // with a BYE that kamailio refuses; with -nd it hangs until -timeout.
    if tcp {
        command.args(["-t", "t1"]);
    }
    run_sipp(command, kamailio.dir(), name)
}

#[test]
fn unauthenticated_register_is_challenged_with_digest_md5_qop_auth() {
    if !have_peers() {
        return;
    }
    let kamailio = Kamailio::start(USER, PASSWORD);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap();
    let response = udp_exchange(
        kamailio.addr(),
        &socket,
        &bare_register(&kamailio, local, "UDP", "bare1"),
    );
    assert!(response.starts_with("SIP/2.0 401 "), "{response}");
    let challenge = header(&response, "WWW-Authenticate").expect("a challenge");
    assert!(challenge.starts_with("Digest "), "{challenge}");
    assert!(challenge.contains("realm=\"127.0.0.1\""), "{challenge}");
    assert!(challenge.contains("qop=\"auth\""), "{challenge}");
    assert!(challenge.contains("nonce=\""), "{challenge}");
    // MD5 is the default: kamailio leaves `algorithm` out (RFC 2617 §3.2.1).
    assert!(!challenge.contains("SHA-256"), "{challenge}");
    assert!(kamailio.contacts(USER).is_empty());
}

#[test]
fn sha256_define_switches_the_challenge_algorithm() {
    if !have_peers() {
        return;
    }
    let kamailio = Kamailio::start_with(USER, PASSWORD, &["WITH_SHA256"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap();
    let response = udp_exchange(
        kamailio.addr(),
        &socket,
        &bare_register(&kamailio, local, "UDP", "bare2"),
    );
    assert!(response.starts_with("SIP/2.0 401 "), "{response}");
    let challenge = header(&response, "WWW-Authenticate").expect("a challenge");
    assert!(challenge.contains("algorithm=SHA-256"), "{challenge}");
}

#[test]
fn sipp_registers_over_udp_with_the_right_password() {
    if !have_peers() {
        return;
    }
    let kamailio = Kamailio::start(USER, PASSWORD);
    let port = free_udp_port();
    let run = sipp_register(&kamailio, "reg", port, PASSWORD, 60, false);
    assert!(run.success(), "{}", run.report());

    let contacts = kamailio.contacts(USER);
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let contact = &contacts[0];
    assert!(
        contact
            .uri
            .starts_with(&format!("sip:{USER}@127.0.0.1:{port}")),
        "{contact:?}"
    );
    assert_eq!(contact.transport(), "udp");
    assert_eq!(contact.received, None, "UDP contacts are used as given");
    let expires = contact.expires.expect("not permanent");
    assert!(
        expires <= Duration::from_secs(60) && expires >= Duration::from_secs(55),
        "{contact:?}"
    );
    assert_eq!(kamailio.log_count("trunk: registered line contact"), 1);
    // Nobody else's contact: the AoR of another user stays empty.
    assert!(kamailio.contacts("someone").is_empty());
}

#[test]
fn wrong_password_is_challenged_again_and_leaves_no_contact() {
    if !have_peers() {
        return;
    }
    let kamailio = Kamailio::start(USER, PASSWORD);
    let run = sipp_register(&kamailio, "bad", free_udp_port(), "wrong", 60, false);
    assert!(!run.success(), "{}", run.report());
    assert!(
        run.errors.contains("while expecting '200'") && run.errors.contains("SIP/2.0 401"),
        "{}",
        run.report()
    );
    assert!(kamailio.contacts(USER).is_empty());
    assert_eq!(
        kamailio.log_count("wrong password"),
        1,
        "{}",
        kamailio.log_text()
    );
}

#[test]
fn expiry_below_the_minimum_gets_423() {
    if !have_peers() {
        return;
    }
    let kamailio = Kamailio::start(USER, PASSWORD);
    let run = sipp_register(&kamailio, "brief", free_udp_port(), PASSWORD, 5, false);
    assert!(!run.success(), "{}", run.report());
    assert!(run.errors.contains("SIP/2.0 423"), "{}", run.report());
    assert!(run.errors.contains("Min-Expires: 10"), "{}", run.report());
    assert!(kamailio.contacts(USER).is_empty());
}

#[test]
fn restart_forgets_contacts_and_accepts_them_again_on_the_same_port() {
    if !have_peers() {
        return;
    }
    let mut kamailio = Kamailio::start(USER, PASSWORD);
    let addr = kamailio.addr();
    let port = free_udp_port();
    let run = sipp_register(&kamailio, "before", port, PASSWORD, 60, false);
    assert!(run.success(), "{}", run.report());
    assert_eq!(kamailio.contacts(USER).len(), 1);

    kamailio.restart();
    assert_eq!(kamailio.addr(), addr);
    assert!(kamailio.is_running());
    assert!(kamailio.contacts(USER).is_empty(), "no database: all lost");

    let run = sipp_register(&kamailio, "after", port, PASSWORD, 60, false);
    assert!(run.success(), "{}", run.report());
    assert!(
        kamailio
            .wait_for_contact(USER, Duration::from_secs(2))
            .is_some()
    );
    kamailio.stop();
    assert!(!kamailio.is_running());
    assert!(
        !is_listening(addr.port()),
        "the port is free while it is down"
    );
    kamailio.start_again();
    assert_eq!(kamailio.addr(), addr);
    assert!(kamailio.contacts(USER).is_empty());
}

#[test]
fn sipp_registers_over_tcp_and_the_trunk_keeps_the_connection() {
    if !have_peers() {
        return;
    }
    let kamailio = Kamailio::start(USER, PASSWORD);
    let port = free_udp_tcp_port();
    let run = sipp_register(&kamailio, "tcp", port, PASSWORD, 60, true);
    assert!(run.success(), "{}", run.report());
    let contacts = kamailio.contacts(USER);
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let contact = &contacts[0];
    assert_eq!(contact.transport(), "tcp", "{contact:?}");
    assert!(
        contact.uri.to_ascii_lowercase().contains("transport=tcp"),
        "{contact:?}"
    );
    // Requests for the line go back to where the REGISTER came from.
    assert_eq!(
        contact.received.as_deref(),
        Some(format!("sip:127.0.0.1:{port};transport=tcp").as_str()),
        "{contact:?}"
    );
}

#[test]
fn bare_register_over_tcp_is_challenged_too() {
    if !have_peers() {
        return;
    }
    let kamailio = Kamailio::start(USER, PASSWORD);
    let mut stream = TcpStream::connect(kamailio.addr()).unwrap();
    let local = stream.local_addr().unwrap();
    stream
        .write_all(bare_register(&kamailio, local, "TCP", "tcp1").as_bytes())
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    let response = String::from_utf8_lossy(&buf[..n]);
    assert!(response.starts_with("SIP/2.0 401 "), "{response}");
    assert!(response.contains("qop=\"auth\""), "{response}");
}

#[test]
fn invite_for_an_unregistered_line_gets_404() {
    if !have_peers() {
        return;
    }
    let kamailio = Kamailio::start(USER, PASSWORD);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap();
    let invite = format!(
        "INVITE {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-inv404;rport\r\n\
         From: <sip:caller@{local}>;tag=c1\r\n\
         To: <{uri}>\r\n\
         Call-ID: inv404@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{local}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        uri = kamailio.user_uri(USER),
    );
    let response = udp_exchange(kamailio.addr(), &socket, &invite);
    assert!(response.starts_with("SIP/2.0 404 "), "{response}");
}

/// sipp registers as the line and answers; a second sipp calls
/// `sip:line@kamailio` without credentials; ACK and BYE cross kamailio.
fn call_through_the_trunk(callee_over_tcp: bool) {
    let kamailio = Kamailio::start(USER, PASSWORD);
    let dir = kamailio.dir().to_path_buf();
    // sipp matches messages to a call by Call-ID only and a UAC scenario
    // cannot accept a new call, so both sides share one Call-ID.
    let call_id = format!("trunk-%u-{}@127.0.0.1", std::process::id());

    let callee_port = if callee_over_tcp {
        free_udp_tcp_port()
    } else {
        free_udp_port()
    };
    let mut callee = sipp_command(
        &dir,
        "callee",
        "register_answer.xml",
        kamailio.addr(),
        callee_port,
    );
    callee
        .args(["-s", USER, "-au", USER, "-ap", PASSWORD])
        .args(["-set", "expires", "60", "-set", "hold_ms", "500"])
        .args(["-cid_str", &call_id])
        .args(["-mp", &(free_udp_port() & !1).to_string()]);
    if callee_over_tcp {
        callee.args(["-t", "t1"]);
    }
    let callee = callee.spawn().expect("start callee sipp");
    let contact = kamailio.wait_for_contact(USER, Duration::from_secs(5));

    let mut caller = sipp_command(
        &dir,
        "caller",
        "uac_via_proxy.xml",
        kamailio.addr(),
        free_udp_port(),
    );
    caller
        .args(["-s", USER, "-cid_str", &call_id])
        .args(["-mp", &(free_udp_port() & !1).to_string()]);
    let caller = run_sipp(caller, &dir, "caller");
    let callee = finish_sipp(callee, &dir, "callee");
    assert!(
        contact.is_some(),
        "the callee registered:\n{}",
        callee.report()
    );
    assert!(
        caller.success(),
        "caller:\n{}\ncallee:\n{}\nkamailio:\n{}",
        caller.report(),
        callee.report(),
        kamailio.log_text()
    );
    assert!(callee.success(), "callee:\n{}", callee.report());

    // The INVITE reached the callee through kamailio, Record-Routed; the
    // ACK and the BYE went through kamailio as well.
    let transport = if callee_over_tcp { "TCP" } else { "UDP" };
    assert!(
        callee
            .messages
            .contains(&format!("Via: SIP/2.0/{transport} {}", kamailio.addr())),
        "{}",
        callee.report()
    );
    assert!(
        callee
            .messages
            .contains(&format!("Record-Route: <sip:{}", kamailio.addr())),
        "{}",
        callee.report()
    );
    let through = |method: &str| kamailio.log_count(&format!("trunk: {method} sip:")) >= 1;
    assert!(
        through("INVITE") && through("ACK") && through("BYE"),
        "{}",
        kamailio.log_text()
    );
    if callee_over_tcp {
        // The INVITE and ACK rode the REGISTER's connection: kamailio never
        // connected out, though sipp listens on its port too. The line
        // relies on this (it need not accept TCP connections).
        assert_eq!(kamailio.statistic("tcp:connect_success"), Some(0));
        assert_eq!(kamailio.statistic("tcp:connect_failed"), Some(0));
        assert_eq!(kamailio.statistic("tcp:passive_open"), Some(1));
    }
}

#[test]
fn a_caller_reaches_the_registered_line_through_the_trunk_over_udp() {
    if !have_peers() {
        return;
    }
    call_through_the_trunk(false);
}

#[test]
fn a_caller_reaches_the_line_registered_over_tcp_on_its_connection() {
    if !have_peers() {
        return;
    }
    call_through_the_trunk(true);
}

#[test]
fn parses_ul_lookup_and_drops_expired_contacts() {
    let text = "{\n\tAoR: line\n\tContacts: {\n\t\tContact: {\n\
        \t\t\tAddress: sip:line@127.0.0.1:16002;transport=TCP\n\t\t\tExpires: 30\n\
        \t\t\tQ: -1\n\t\t\tCall-ID: c1\n\t\t\tCSeq: 2\n\t\t\tUser-Agent: sipp\n\
        \t\t\tReceived: sip:127.0.0.1:41000;transport=tcp\n\t\t\tSocket: tcp:127.0.0.1:15060\n\
        \t\t\tLast-Modified: 1795615039\n\t\t}\n\t\tContact: {\n\
        \t\t\tAddress: sip:line@127.0.0.1:16000\n\t\t\tExpires: expired\n\
        \t\t\tReceived: [not set]\n\t\t\tSocket: udp:127.0.0.1:15060\n\t\t}\n\t}\n}\n";
    let contacts = parse_contacts(text);
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let c = &contacts[0];
    assert_eq!(c.uri, "sip:line@127.0.0.1:16002;transport=TCP");
    assert_eq!(c.expires, Some(Duration::from_secs(30)));
    assert_eq!(
        c.received.as_deref(),
        Some("sip:127.0.0.1:41000;transport=tcp")
    );
    assert_eq!(c.transport(), "tcp");
    assert_eq!(c.call_id, "c1");
    assert_eq!(c.cseq, 2);
    assert_eq!(c.last_modified, 1_795_615_039);
}
