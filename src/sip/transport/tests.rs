//! Real sockets on 127.0.0.1; every wait is bounded so a bug fails fast.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::*;

const WAIT: Duration = Duration::from_secs(2);

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn message(n: u32, body: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:line@127.0.0.1 SIP/2.0\r\nCall-ID: {n}@test\r\nCSeq: {n} OPTIONS\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn tcp(destination: SocketAddr, payload: &[u8]) -> Transmit {
    Transmit {
        destination,
        payload: payload.to_vec(),
        transport: Transport::Tcp,
    }
}

async fn next(transport: &mut SipTransport) -> Received {
    tokio::time::timeout(WAIT, transport.recv())
        .await
        .expect("the transport yields something in time")
        .expect("the transport keeps working")
}

async fn next_message(transport: &mut SipTransport) -> Incoming {
    match next(transport).await {
        Received::Message(incoming) => incoming,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn next_event(transport: &mut SipTransport) -> TransportEvent {
    match next(transport).await {
        Received::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Reads exactly `len` bytes from a test peer.
async fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    tokio::time::timeout(WAIT, stream.read_exact(&mut bytes))
        .await
        .expect("the bytes arrive in time")
        .expect("the connection stays open");
    bytes
}

async fn accept(listener: &TcpListener) -> TcpStream {
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("a connection arrives in time")
        .expect("accept works");
    stream
}

#[tokio::test]
async fn udp_round_trip() {
    let mut transport = SipTransport::bind(loopback()).await.unwrap();
    let local = transport.local_addr().unwrap();
    let phone = UdpSocket::bind(loopback()).await.unwrap();
    phone.send_to(&message(1, ""), local).await.unwrap();

    let incoming = next_message(&mut transport).await;
    assert_eq!(
        incoming,
        Incoming {
            payload: message(1, ""),
            source: phone.local_addr().unwrap(),
            transport: Transport::Udp,
        }
    );

    transport
        .send(&Transmit {
            destination: incoming.source,
            payload: b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
            transport: Transport::Udp,
        })
        .await;
    let mut buf = [0; 64];
    let (len, from) = tokio::time::timeout(WAIT, phone.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..len], from), (&b"SIP/2.0 200 OK\r\n\r\n"[..], local));
}

#[tokio::test]
async fn inbound_tcp_is_framed_pinged_and_answered_on_the_same_connection() {
    let mut transport = SipTransport::bind(loopback()).await.unwrap();
    let local = transport.local_addr().unwrap();
    let mut phone = TcpStream::connect(local).await.unwrap();
    let phone_addr = phone.local_addr().unwrap();
    assert_eq!(
        next_event(&mut transport).await,
        TransportEvent::Connected {
            peer: phone_addr,
            origin: Origin::Inbound
        }
    );

    // Two coalesced messages and half of a third in one write.
    let third = message(3, "v=0\r\n\r\n");
    let (head, tail) = third.split_at(40);
    phone
        .write_all(&[message(1, "").as_slice(), &message(2, "ab"), head].concat())
        .await
        .unwrap();
    for n in [1, 2] {
        let incoming = next_message(&mut transport).await;
        assert_eq!(incoming.payload, message(n, if n == 1 { "" } else { "ab" }));
        assert_eq!(
            (incoming.source, incoming.transport),
            (phone_addr, Transport::Tcp)
        );
    }
    phone.write_all(tail).await.unwrap();
    assert_eq!(next_message(&mut transport).await.payload, third);

    // RFC 5626 ping, answered without the layers above.
    phone.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(read_exactly(&mut phone, 2).await, b"\r\n");

    // §18.2.2: the response leaves on the request's connection.
    let response = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    transport.send(&tcp(phone_addr, response)).await;
    assert_eq!(read_exactly(&mut phone, response.len()).await, response);
    assert_eq!(transport.connection_count(), 1);
}

#[tokio::test]
async fn outbound_tcp_opens_one_connection_and_reuses_it() {
    let mut transport = SipTransport::bind(loopback()).await.unwrap();
    let trunk = TcpListener::bind(loopback()).await.unwrap();
    let trunk_addr = trunk.local_addr().unwrap();

    // Both queued before the connection is even up.
    transport.send(&tcp(trunk_addr, &message(1, ""))).await;
    transport.send(&tcp(trunk_addr, &message(2, "xy"))).await;
    let mut stream = accept(&trunk).await;
    let expected = [message(1, ""), message(2, "xy")].concat();
    assert_eq!(read_exactly(&mut stream, expected.len()).await, expected);
    assert_eq!(
        next_event(&mut transport).await,
        TransportEvent::Connected {
            peer: trunk_addr,
            origin: Origin::Outbound
        }
    );

    transport.send(&tcp(trunk_addr, &message(3, ""))).await;
    assert_eq!(
        read_exactly(&mut stream, message(3, "").len()).await,
        message(3, "")
    );
    let second = tokio::time::timeout(Duration::from_millis(100), trunk.accept()).await;
    assert!(second.is_err(), "a second connection was opened");

    // Calls from the trunk arrive on the same connection, and its pongs are
    // reported for the registration's keep-alive.
    stream
        .write_all(&[b"\r\n".as_slice(), &message(4, "")].concat())
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut transport).await,
        TransportEvent::Pong { peer: trunk_addr }
    );
    let incoming = next_message(&mut transport).await;
    assert_eq!(
        (incoming.payload, incoming.source, incoming.transport),
        (message(4, ""), trunk_addr, Transport::Tcp)
    );
}

#[tokio::test]
async fn a_closed_connection_is_reported_and_the_next_send_reconnects() {
    let mut transport = SipTransport::bind(loopback()).await.unwrap();
    let trunk = TcpListener::bind(loopback()).await.unwrap();
    let trunk_addr = trunk.local_addr().unwrap();

    transport.send(&tcp(trunk_addr, &message(1, ""))).await;
    let mut first = accept(&trunk).await;
    read_exactly(&mut first, message(1, "").len()).await;
    assert!(matches!(
        next_event(&mut transport).await,
        TransportEvent::Connected { .. }
    ));
    drop(first);
    assert_eq!(
        next_event(&mut transport).await,
        TransportEvent::Closed {
            peer: trunk_addr,
            origin: Origin::Outbound,
            reason: CloseReason::PeerClosed
        }
    );
    assert!(!transport.is_connected(trunk_addr));

    transport.send(&tcp(trunk_addr, &message(2, ""))).await;
    let mut second = accept(&trunk).await;
    assert_eq!(
        read_exactly(&mut second, message(2, "").len()).await,
        message(2, "")
    );
}

#[tokio::test]
async fn dialling_a_closed_port_reports_a_failure() {
    let mut transport = SipTransport::bind(loopback()).await.unwrap();
    let closed = TcpListener::bind(loopback()).await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);

    transport.send(&tcp(closed_addr, &message(1, ""))).await;
    assert_eq!(
        next_event(&mut transport).await,
        TransportEvent::Failed {
            destination: closed_addr,
            transport: Transport::Tcp,
            error: io::ErrorKind::ConnectionRefused
        }
    );
    assert_eq!(transport.connection_count(), 0);
}

#[tokio::test]
async fn a_stream_that_cannot_be_framed_is_closed() {
    let mut transport = SipTransport::bind(loopback()).await.unwrap();
    let mut phone = TcpStream::connect(transport.local_addr().unwrap())
        .await
        .unwrap();
    let phone_addr = phone.local_addr().unwrap();
    next_event(&mut transport).await;
    phone
        .write_all(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut transport).await,
        TransportEvent::Closed {
            peer: phone_addr,
            origin: Origin::Inbound,
            reason: CloseReason::Framing(FramingError::MissingContentLength)
        }
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, phone.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "the peer sees the close: {read:?}"
    );
}

#[tokio::test]
async fn an_idle_inbound_connection_is_closed() {
    let mut transport = SipTransport::bind(loopback()).await.unwrap();
    transport.set_idle_timeout(Duration::from_millis(100));
    let phone = TcpStream::connect(transport.local_addr().unwrap())
        .await
        .unwrap();
    next_event(&mut transport).await;
    assert_eq!(
        next_event(&mut transport).await,
        TransportEvent::Closed {
            peer: phone.local_addr().unwrap(),
            origin: Origin::Inbound,
            reason: CloseReason::Idle
        }
    );
}

#[tokio::test]
async fn a_taken_port_refuses_to_start() {
    let udp_taken = std::net::UdpSocket::bind(loopback()).unwrap();
    let addr = udp_taken.local_addr().unwrap();
    match SipTransport::bind(addr).await {
        Err(TransportError::Bind { addr: reported, .. }) => assert_eq!(reported, addr),
        other => panic!("bound a taken UDP port: {:?}", other.map(|_| ())),
    }

    let tcp_taken = std::net::TcpListener::bind(loopback()).unwrap();
    let addr = tcp_taken.local_addr().unwrap();
    let error = match SipTransport::bind(addr).await {
        Err(error @ TransportError::BindTcp { .. }) => error,
        other => panic!("bound a taken TCP port: {:?}", other.map(|_| ())),
    };
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

#[tokio::test]
async fn port_zero_binds_udp_and_tcp_on_the_same_port() {
    let transport = SipTransport::bind(loopback()).await.unwrap();
    let local = transport.local_addr().unwrap();
    assert_ne!(local.port(), 0);
    TcpStream::connect(local)
        .await
        .expect("TCP listens on the UDP port");
}

#[tokio::test]
async fn a_send_after_an_unnoticed_close_dials_again() {
    let mut transport = SipTransport::bind(loopback()).await.unwrap();
    let trunk = TcpListener::bind(loopback()).await.unwrap();
    let trunk_addr = trunk.local_addr().unwrap();
    transport.send(&tcp(trunk_addr, &message(1, ""))).await;
    let mut first = accept(&trunk).await;
    read_exactly(&mut first, message(1, "").len()).await;
    drop(first);
    // The connection task sees the close; the transport has not been asked
    // for its reports yet, so only the send finds out.
    tokio::time::sleep(Duration::from_millis(200)).await;

    transport.send(&tcp(trunk_addr, &message(2, ""))).await;
    let mut second = accept(&trunk).await;
    assert_eq!(
        read_exactly(&mut second, message(2, "").len()).await,
        message(2, "")
    );
    // The first connection's late reports concern a connection already
    // replaced; only the new one's arrival is news.
    let mut events = Vec::new();
    while let Ok(Ok(Received::Event(event))) =
        tokio::time::timeout(Duration::from_millis(100), transport.recv()).await
    {
        events.push(event);
    }
    assert_eq!(
        events.last(),
        Some(&TransportEvent::Connected {
            peer: trunk_addr,
            origin: Origin::Outbound
        })
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, TransportEvent::Closed { .. })),
        "{events:?}"
    );
    assert!(transport.is_connected(trunk_addr));
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_connection_from_the_same_address_replaces_the_old_one() {
    let mut transport = SipTransport::bind(loopback()).await.unwrap();
    let local = transport.local_addr().unwrap();
    // SO_REUSEPORT lets the trunk's own connection use its listening port.
    let listening = tokio::net::TcpSocket::new_v4().unwrap();
    listening.set_reuseport(true).unwrap();
    listening.bind(loopback()).unwrap();
    let trunk = listening.listen(8).unwrap();
    let trunk_addr = trunk.local_addr().unwrap();
    transport.send(&tcp(trunk_addr, &message(1, ""))).await;
    let _ours = accept(&trunk).await;
    next_event(&mut transport).await;

    // The trunk connects to us from its own SIP address.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseport(true).unwrap();
    socket.bind(trunk_addr).unwrap();
    let mut theirs = socket.connect(local).await.unwrap();
    assert_eq!(
        next_event(&mut transport).await,
        TransportEvent::Closed {
            peer: trunk_addr,
            origin: Origin::Outbound,
            reason: CloseReason::Replaced
        }
    );
    assert_eq!(
        next_event(&mut transport).await,
        TransportEvent::Connected {
            peer: trunk_addr,
            origin: Origin::Inbound
        }
    );
    transport.send(&tcp(trunk_addr, &message(2, ""))).await;
    assert_eq!(
        read_exactly(&mut theirs, message(2, "").len()).await,
        message(2, "")
    );
}
