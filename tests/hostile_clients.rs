//! Connections that are not internode peers: garbage, a wrong magic, a wrong
//! protocol version, a silent client, a truncated hello, and a node that dials
//! itself. Each is refused, counted by reason, and never hurts the node.
#![cfg(feature = "serde")]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use internode::handshake::HandshakeError;
use internode::handshake::{Accept, Reject, RejectReason, VersionRange};
use internode::node::{Node, RefusalReason, SendError, Sent};
use internode::session::{DisconnectReason, LinkEvent};
use internode::{LinkKind, NodeId};
use support::{bounded, builder, collect, node, recv_n, within, Events, Seq, POLL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the node closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    within("the node to close the connection", async {
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    answer
}

/// Connects, writes `bytes` (and keeps the connection open), and returns what the
/// node answered before it closed the connection.
async fn send_and_wait_for_close(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_until_closed(&mut stream).await
}

/// Polls the node's refusal counters until they equal `expected` (no event reports
/// a refusal).
async fn wait_for_refusals(node: &Node, expected: &BTreeMap<RefusalReason, u64>) {
    let mut last = BTreeMap::new();
    let reached = tokio::time::timeout(support::WAIT, async {
        loop {
            last = node.refused_connections().await;
            if &last == expected {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "refusals: expected {expected:?}, got {last:?}"
    );
}

fn hello(id: u64, versions: VersionRange) -> BytesMut {
    let mut hello = support::hello(id);
    hello.versions = versions;
    support::hello_bytes(&hello)
}

#[actix::test]
async fn bad_clients_are_refused_and_counted_and_the_node_keeps_working() {
    bounded(async {
        let handshake_timeout = Duration::from_millis(300);
        let b = builder(2)
            .handshake_timeout(handshake_timeout)
            .start()
            .await
            .unwrap();
        let mut inbox = collect::<Seq>(&b);
        let addr = b.local_addr();

        // Not internode at all: refused at the first wrong byte, with no answer.
        let answer = send_and_wait_for_close(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(answer.is_empty(), "garbage gets no answer: {answer:?}");
        let random: Vec<u8> = (0u32..4096)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(send_and_wait_for_close(addr, &random).await.is_empty());

        // A magic that is almost right.
        assert!(send_and_wait_for_close(addr, b"INOX\x01\x00\x00")
            .await
            .is_empty());

        // The right magic, then garbage: a checksum that does not match.
        let mut corrupt = hello(7, VersionRange::SUPPORTED);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(send_and_wait_for_close(addr, &corrupt).await.is_empty());

        // A body longer than any handshake may be: refused from the length alone.
        assert!(send_and_wait_for_close(addr, b"INOD\x01\xff\xff")
            .await
            .is_empty());

        // A well-formed Hello of a version the node does not speak: a Reject that says
        // so, with the node's versions.
        let answer =
            send_and_wait_for_close(addr, &hello(7, VersionRange { min: 9, max: 9 })).await;
        let reject = Reject::decode(&answer).expect("a Reject");
        assert_eq!(reject.reason, RejectReason::IncompatibleVersion);
        assert_eq!(reject.versions, VersionRange::SUPPORTED);

        // Half a Hello, then the client hangs up.
        {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let hello = hello(7, VersionRange::SUPPORTED);
            stream.write_all(&hello[..10]).await.unwrap();
            stream.shutdown().await.unwrap();
            assert!(read_until_closed(&mut stream).await.is_empty());
        }

        // A client that connects and says nothing: dropped after the handshake
        // timeout.
        {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let start = Instant::now();
            assert!(read_until_closed(&mut stream).await.is_empty());
            let waited = start.elapsed();
            assert!(
                waited >= handshake_timeout - Duration::from_millis(50),
                "closed after {waited:?}"
            );
        }

        let expected: BTreeMap<RefusalReason, u64> = [
            (RefusalReason::WrongMagic, 3),
            (RefusalReason::Malformed, 2),
            (RefusalReason::IncompatibleVersion, 1),
            (RefusalReason::Closed, 1),
            (RefusalReason::Timeout, 1),
        ]
        .into_iter()
        .collect();
        wait_for_refusals(&b, &expected).await;
        assert_eq!(
            b.inbound_connections().await,
            0,
            "no refused connection stays"
        );

        // The node still works: a real peer connects and delivers.
        let a = node(1).await;
        a.add_peer(NodeId(2), addr).await;
        let to_b = a.peer(NodeId(2));
        let outcomes: Vec<_> = (0..100).map(|seq| to_b.send(Seq(seq))).collect();
        for outcome in support::join_all(outcomes).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        let received = recv_n(&mut inbox, 100).await;
        let expected: Vec<_> = (0..100).map(|seq| (NodeId(1), Seq(seq))).collect();
        assert_eq!(received, expected);
        assert_eq!(b.inbound_connections().await, 1);
        assert_eq!(b.refused_connections().await.values().sum::<u64>(), 8);
    })
    .await;
}

/// Many clients at once, each sending garbage or nothing: all refused, none crash
/// the node, and the node then serves a peer.
#[actix::test]
async fn a_crowd_of_bad_clients_is_refused() {
    bounded(async {
        let b = builder(2)
            .handshake_timeout(Duration::from_millis(300))
            .start()
            .await
            .unwrap();
        let mut inbox = collect::<Seq>(&b);
        let addr = b.local_addr();
        let clients: Vec<_> = (0u8..50)
            .map(|i| {
                tokio::spawn(async move {
                    let mut stream = TcpStream::connect(addr).await.unwrap();
                    match i % 3 {
                        0 => {}
                        1 => stream.write_all(&[i; 64]).await.unwrap(),
                        _ => stream.write_all(b"INOD\x02\x00\x00").await.unwrap(),
                    }
                    let mut buf = [0u8; 64];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
            })
            .collect();
        within("every client to be closed", async {
            for client in clients {
                client.await.unwrap();
            }
        })
        .await;
        let expected: BTreeMap<RefusalReason, u64> = [
            (RefusalReason::Timeout, 17),
            (RefusalReason::WrongMagic, 17),
            (RefusalReason::Malformed, 16),
        ]
        .into_iter()
        .collect();
        wait_for_refusals(&b, &expected).await;

        let a = node(1).await;
        a.add_peer(NodeId(2), addr).await;
        assert_eq!(a.send(NodeId(2), Seq(1)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(1), Seq(1))]);
    })
    .await;
}

/// A node given its own address under another id dials itself: the handshake sees
/// its own id and refuses ("self_connect"); the link keeps retrying while its message
/// waits and never delivers it; closing the link fails the message.
#[actix::test]
async fn a_node_that_dials_itself_refuses_the_connection_and_keeps_retrying() {
    bounded(async {
        let a = node(1).await;
        let mut inbox = collect::<Seq>(&a);
        let mut events = Events::subscribe(&a).await;
        a.add_peer(NodeId(99), a.local_addr()).await;
        let to_self = a.peer(NodeId(99));
        to_self.ready().await.unwrap();
        let outcome = to_self.send(Seq(1));

        for _ in 0..3 {
            let event = events
                .wait_for("a refused attempt", NodeId(99), LinkKind::Small, |e| {
                    matches!(e, LinkEvent::Disconnected { .. })
                })
                .await;
            assert_eq!(
                event,
                LinkEvent::Disconnected {
                    reason: DisconnectReason::Handshake(HandshakeError::Rejected {
                        reason: RejectReason::SelfConnect,
                        peer_versions: VersionRange::SUPPORTED,
                    })
                }
            );
            events
                .wait_for("a retry", NodeId(99), LinkKind::Small, |e| {
                    matches!(e, LinkEvent::RetryScheduled { .. })
                })
                .await;
        }
        let refused = a.refused_connections().await;
        assert!(
            refused
                .get(&RefusalReason::SelfConnect)
                .copied()
                .unwrap_or(0)
                >= 3,
            "{refused:?}"
        );
        assert!(inbox.try_recv().is_err(), "nothing delivered");
        assert!(
            !events
                .of(NodeId(99), LinkKind::Small)
                .contains(&LinkEvent::Connected),
            "never connected"
        );

        a.close_peer(NodeId(99), false).await;
        assert_eq!(outcome.await, Err(SendError::Closed));
        assert!(inbox.try_recv().is_err(), "nothing delivered");
    })
    .await;
}

/// Completes the handshake as node `id` and returns the connection.
async fn handshake_as(id: u64, addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&hello(id, VersionRange::SUPPORTED))
        .await
        .unwrap();
    let mut header = [0u8; 7];
    stream.read_exact(&mut header).await.unwrap();
    let body_len = u16::from_le_bytes([header[5], header[6]]) as usize;
    let mut rest = vec![0u8; body_len + 4];
    stream.read_exact(&mut rest).await.unwrap();
    let mut accept = header.to_vec();
    accept.extend_from_slice(&rest);
    let accept = Accept::decode(&accept).expect("an Accept");
    assert_eq!(accept.node_id, NodeId(2));
    stream
}

/// Polls until the node has `n` inbound connections (no event reports them).
async fn wait_for_inbound(node: &Node, n: usize) {
    within(&format!("{n} inbound connections"), async {
        while node.inbound_connections().await != n {
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
}

/// A peer that completes its handshake and then sends garbage frames, or nothing at
/// all, is disconnected (at once, or after the read timeout); the node keeps serving
/// others.
#[actix::test]
async fn a_peer_that_misbehaves_after_its_handshake_is_disconnected() {
    bounded(async {
        let read_timeout = Duration::from_millis(500);
        let b = builder(2)
            .heartbeat(
                internode::session::HeartbeatConfig::default()
                    .interval(Duration::from_millis(100))
                    .timeout(read_timeout),
            )
            .start()
            .await
            .unwrap();
        let mut inbox = collect::<Seq>(&b);
        let addr = b.local_addr();

        // Garbage where frames should be: a frame header whose CRC24 does not match.
        let mut garbage = handshake_as(7, addr).await;
        wait_for_inbound(&b, 1).await;
        let start = Instant::now();
        garbage.write_all(&[0x55; 64]).await.unwrap();
        assert!(read_until_closed(&mut garbage).await.is_empty());
        assert!(
            start.elapsed() < read_timeout,
            "closed at once, not at the timeout"
        );
        wait_for_inbound(&b, 0).await;

        // Silence: closed after the read timeout.
        let mut silent = handshake_as(8, addr).await;
        let start = Instant::now();
        assert!(read_until_closed(&mut silent).await.is_empty());
        let waited = start.elapsed();
        assert!(
            waited >= read_timeout - Duration::from_millis(50),
            "closed after {waited:?}"
        );
        wait_for_inbound(&b, 0).await;
        assert!(
            b.refused_connections().await.is_empty(),
            "both were accepted"
        );

        let a = node(1).await;
        a.add_peer(NodeId(2), addr).await;
        assert_eq!(a.send(NodeId(2), Seq(1)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(1), Seq(1))]);
    })
    .await;
}

/// Writes a Hello of session 7, attempt `attempt` for the small link of node 50 and
/// returns the connection and what the node answered (nothing: it closed it).
async fn hello_attempt(addr: SocketAddr, attempt: u64) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut hello = support::hello(50);
    hello.session_id = 7;
    hello.attempt = attempt;
    hello.lossless = true;
    stream
        .write_all(&support::hello_bytes(&hello))
        .await
        .unwrap();
    let mut answer = vec![0u8; 512];
    let n = within("the answer", stream.read(&mut answer))
        .await
        .unwrap_or(0);
    answer.truncate(n);
    (stream, answer)
}

/// A Hello older than the connection in use (a stale attempt of the same sender
/// session) is refused: the socket is closed, and the refusal is counted by reason.
#[actix::test]
async fn a_stale_connection_attempt_is_refused_and_counted() {
    bounded(async {
        let b = node(2).await;
        let (_current, answer) = hello_attempt(b.local_addr(), 5).await;
        assert!(!answer.is_empty(), "attempt 5 is answered (Accept)");
        let (_stale, answer) = hello_attempt(b.local_addr(), 2).await;
        assert!(answer.is_empty(), "attempt 2 is refused: {answer:?}");
        support::poll_until("the refusal to be counted", || async {
            let refused = b.refused_connections().await;
            match refused.get(&RefusalReason::StaleAttempt) {
                Some(1) => Ok(()),
                _ => Err(refused),
            }
        })
        .await;
    })
    .await;
}
