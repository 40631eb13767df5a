//! Cluster-secret authentication over real sockets: nodes with the same secret talk;
//! a peer with another secret, none, or another cluster name is refused in the
//! handshake, counted by reason, never delivers a message and never has its address
//! learned, and its link keeps failing; a replayed handshake is refused.
#![cfg(feature = "serde")]

mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::BytesMut;
use internode::envelope::{Envelope, Flags};
use internode::frame::Framing;
use internode::handshake::{
    fresh_nonce, ClusterKey, HandshakeError, Hello, Initiator, Reject, RejectReason,
};
use internode::message::Message;
use internode::node::{Node, NodeBuilder, RefusalReason, SendError, Sent, StartError};
use internode::session::{DisconnectReason, LinkEvent};
use internode::{LinkKind, NodeId};
use support::{
    bounded, builder, collect, epoch_ms, frames, recv_n, refused, within, Events, Seq, POLL,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn with_secret(id: u64, secret: &[u8]) -> NodeBuilder {
    builder(id).cluster_secret(secret.to_vec())
}

#[actix::test]
async fn nodes_with_the_same_secret_deliver() {
    bounded(async {
        let b = with_secret(2, SECRET).start().await.unwrap();
        let mut inbox = collect::<Seq>(&b);
        let a = with_secret(1, SECRET).start().await.unwrap();
        a.add_peer(NodeId(2), b.local_addr()).await;
        let to_b = a.peer(NodeId(2));
        let outcomes: Vec<_> = (0..20).map(|seq| to_b.send(Seq(seq))).collect();
        for outcome in support::join_all(outcomes).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        let expected: Vec<_> = (0..20).map(|seq| (NodeId(1), Seq(seq))).collect();
        assert_eq!(recv_n(&mut inbox, 20).await, expected);
        // And back, over b's own (authenticated) link: b learned a's address.
        let mut back = collect::<Seq>(&a);
        assert_eq!(b.send(NodeId(1), Seq(99)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut back, 1).await, vec![(NodeId(2), Seq(99))]);
        assert_eq!(b.refused_connections().await, BTreeMap::new());
    })
    .await;
}

#[actix::test]
async fn a_peer_with_another_secret_is_refused() {
    bounded(refused(
        with_secret(1, b"another secret of enough length!"),
        with_secret(2, SECRET),
        // The initiator finds the acceptor's proof wrong and answers nothing.
        DisconnectReason::Handshake(HandshakeError::AuthFailed),
        RefusalReason::AuthIncomplete,
    ))
    .await;
}

#[actix::test]
async fn a_peer_without_a_secret_is_refused() {
    bounded(refused(
        builder(1),
        with_secret(2, SECRET),
        DisconnectReason::Handshake(HandshakeError::Rejected {
            reason: RejectReason::Unauthorized,
            peer_versions: internode::handshake::VersionRange::SUPPORTED,
        }),
        RefusalReason::AuthMissing,
    ))
    .await;
}

#[actix::test]
async fn a_peer_of_another_cluster_is_refused() {
    bounded(refused(
        with_secret(1, SECRET).cluster_name("other"),
        with_secret(2, SECRET),
        DisconnectReason::Handshake(HandshakeError::Rejected {
            reason: RejectReason::ClusterMismatch,
            peer_versions: internode::handshake::VersionRange::SUPPORTED,
        }),
        RefusalReason::ClusterMismatch,
    ))
    .await;
}

/// A node with a secret does not talk to an acceptor without one: it never sends.
#[actix::test]
async fn a_node_with_a_secret_refuses_an_acceptor_without_one() {
    bounded(async {
        let b = builder(2).start().await.unwrap();
        let mut inbox = collect::<Seq>(&b);
        let a = with_secret(1, SECRET).start().await.unwrap();
        let mut events = Events::subscribe(&a).await;
        a.add_peer(NodeId(2), b.local_addr()).await;
        let to_b = a.peer(NodeId(2));
        to_b.ready().await.unwrap();
        let _pending = to_b.send(Seq(1));
        for _ in 0..2 {
            let reason = events.next_disconnect("a failed attempt", NodeId(2)).await;
            assert_eq!(
                reason,
                DisconnectReason::Handshake(HandshakeError::AuthMissing)
            );
        }
        assert!(inbox.try_recv().is_err(), "nothing delivered");
    })
    .await;
}

#[actix::test]
async fn a_short_secret_does_not_start_and_the_secret_file_is_read() {
    bounded(async {
        assert!(matches!(
            builder(1).cluster_secret(Vec::new()).start().await,
            Err(StartError::ClusterSecret(_))
        ));
        assert!(matches!(
            builder(1).cluster_secret(&SECRET[..31]).start().await,
            Err(StartError::SecretTooShort { len: 31 })
        ));
        let dir = std::env::temp_dir().join(format!("internode-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, [SECRET, b"\n"].concat()).unwrap();
        let from_file = builder(1).cluster_secret_file(&file).unwrap();
        let secret = from_file.config().cluster_secret.clone().unwrap();
        assert_eq!(
            secret.as_bytes(),
            SECRET,
            "the final newline is not the secret"
        );
        let shown = format!("{:?}", from_file.config());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        std::fs::write(&file, b"\r\n").unwrap();
        let empty = builder(1).cluster_secret_file(&file).unwrap_err();
        assert_eq!(empty.kind(), std::io::ErrorKind::InvalidData);
        assert!(builder(1).cluster_secret_file(dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}

/// An honest client that records what it writes: the Hello, the Proof, and then a
/// frame carrying `Seq(seq)`.
async fn recorded_session(addr: std::net::SocketAddr, seq: u64) -> Vec<u8> {
    let key = ClusterKey::derive(SECRET, "internode").unwrap();
    let hello = Hello::new(
        NodeId(7),
        "127.0.0.1:9".parse().unwrap(),
        LinkKind::Small,
        Framing::Crc,
    );
    let mut initiator =
        Initiator::with_auth(hello, &key, fresh_nonce(), Instant::now(), support::WAIT);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut written = Vec::new();
    within("the honest handshake", async {
        let mut buf = [0u8; 512];
        loop {
            if let Some(out) = initiator.poll_transmit() {
                stream.write_all(&out).await.unwrap();
                written.extend_from_slice(&out);
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the node closed an honest handshake");
            if initiator
                .handle_input(&buf[..n], Instant::now())
                .expect("the node accepts")
                .is_some()
            {
                return;
            }
        }
    })
    .await;
    let frame = frames(&[envelope(seq)]);
    stream.write_all(&frame).await.unwrap();
    written.extend_from_slice(&frame);
    // Keep the connection until the message is in (the caller waits for it).
    tokio::spawn(async move {
        let mut sink = [0u8; 256];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    written
}

fn envelope(seq: u64) -> Envelope {
    let mut payload = BytesMut::new();
    Seq(seq).encode(&mut payload).unwrap();
    Envelope {
        id: 1,
        verb: Seq::VERB,
        flags: Flags::EMPTY,
        created_at_ms: epoch_ms(),
        expires_at_ms: None,
        params: Vec::new(),
        payload: payload.freeze(),
    }
}

#[actix::test]
async fn a_replayed_handshake_is_refused() {
    bounded(async {
        let b = with_secret(2, SECRET).start().await.unwrap();
        let mut inbox = collect::<Seq>(&b);
        let recorded = recorded_session(b.local_addr(), 5).await;
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(7), Seq(5))]);

        // The recording, sent again at once on a new connection: the node's Challenge
        // has a fresh nonce, so the recorded Proof is wrong.
        let mut replay = TcpStream::connect(b.local_addr()).await.unwrap();
        replay.write_all(&recorded).await.unwrap();
        let mut answer = Vec::new();
        within("the node to close the replay", async {
            let mut buf = [0u8; 256];
            while let Ok(n) = replay.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        // A Challenge (7 + 72 + 4 bytes), then a Reject.
        let challenge_len = 7 + 72 + 4;
        assert!(answer.len() > challenge_len, "{answer:?}");
        assert_eq!(answer[4], 4, "a Challenge first");
        let reject = Reject::decode(&answer[challenge_len..]).expect("then a Reject");
        assert_eq!(reject.reason, RejectReason::Unauthorized);

        let refused = within("the refusal to be counted", async {
            loop {
                let refused = b.refused_connections().await;
                if !refused.is_empty() {
                    return refused;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        assert_eq!(
            refused,
            [(RefusalReason::AuthFailed, 1)].into_iter().collect()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            inbox.try_recv().is_err(),
            "the replayed message is not delivered"
        );
        assert_eq!(b.inbound_counters().await.received, 1, "only the original");
    })
    .await;
}

/// A node started without a secret still works as before (and warns once).
#[actix::test]
async fn without_secrets_nodes_talk_as_before() {
    bounded(async {
        let b: Node = builder(2).start().await.unwrap();
        let mut inbox = collect::<Seq>(&b);
        let a = builder(1).start().await.unwrap();
        a.add_peer(NodeId(2), b.local_addr()).await;
        assert_eq!(a.send(NodeId(2), Seq(3)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(1), Seq(3))]);
    })
    .await;
}

/// Connects as node `id` with a Hello carrying a nonce and the right cluster name but
/// no knowledge of the secret; returns the stream and the Challenge's bytes.
async fn challenged(addr: std::net::SocketAddr, id: u64) -> (TcpStream, Vec<u8>) {
    // Another secret: the Hello is well-formed, the attacker cannot prove anything.
    let key = ClusterKey::derive(b"a guess", "internode").unwrap();
    let hello = Hello::new(
        NodeId(id),
        "127.0.0.1:9".parse().unwrap(),
        LinkKind::Small,
        Framing::Crc,
    );
    let mut initiator =
        Initiator::with_auth(hello, &key, fresh_nonce(), Instant::now(), support::WAIT);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&initiator.poll_transmit().unwrap())
        .await
        .unwrap();
    let mut challenge = vec![0u8; 7 + 72 + 4];
    within("the Challenge", stream.read_exact(&mut challenge))
        .await
        .unwrap();
    (stream, challenge)
}

/// The node's own proof sent back as the initiator's: refused (the role label
/// differs), counted, nothing delivered.
#[actix::test]
async fn a_reflected_proof_is_refused() {
    bounded(async {
        let b = with_secret(2, SECRET).start().await.unwrap();
        let mut inbox = collect::<Seq>(&b);
        let (mut stream, challenge) = challenged(b.local_addr(), 7).await;
        let challenge = internode::handshake::Challenge::decode(&challenge).unwrap();
        let mut reflected = BytesMut::new();
        internode::handshake::Proof {
            proof: challenge.proof,
        }
        .encode(&mut reflected);
        reflected.extend_from_slice(&frames(&[envelope(1)]));
        stream.write_all(&reflected).await.unwrap();
        let mut answer = Vec::new();
        within("the node to close", stream.read_to_end(&mut answer))
            .await
            .unwrap();
        let reject = Reject::decode(&answer).expect("a Reject");
        assert_eq!(reject.reason, RejectReason::Unauthorized);
        within("the refusal to be counted", async {
            while b
                .refused_connections()
                .await
                .get(&RefusalReason::AuthFailed)
                != Some(&1)
            {
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        assert!(inbox.try_recv().is_err());
        assert_eq!(b.inbound_connections().await, 0);
        assert!(matches!(
            b.send(NodeId(7), Seq(1)).await,
            Err(SendError::UnknownPeer(_))
        ));
    })
    .await;
}

/// A process without the secret that claims an authenticated peer's node id does not
/// disturb that peer's connection: it is refused before the receiving actor hears of
/// it.
#[actix::test]
async fn an_impostor_does_not_displace_an_authenticated_connection() {
    bounded(async {
        let b = with_secret(2, SECRET).start().await.unwrap();
        let mut inbox = collect::<Seq>(&b);
        let a = with_secret(1, SECRET).start().await.unwrap();
        let mut events = Events::subscribe(&a).await;
        a.add_peer(NodeId(2), b.local_addr()).await;
        let to_b = a.peer(NodeId(2));
        assert_eq!(to_b.send(Seq(1)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(1), Seq(1))]);

        // Node 1's id, no secret: a Hello without a nonce, then one with a wrong
        // proof to come.
        let mut plain = TcpStream::connect(b.local_addr()).await.unwrap();
        let mut hello = BytesMut::new();
        Hello::new(
            NodeId(1),
            "127.0.0.1:9".parse().unwrap(),
            LinkKind::Small,
            Framing::Crc,
        )
        .encode(&mut hello);
        plain.write_all(&hello).await.unwrap();
        let mut answer = Vec::new();
        within("the node to close", plain.read_to_end(&mut answer))
            .await
            .unwrap();
        assert_eq!(
            Reject::decode(&answer).unwrap().reason,
            RejectReason::Unauthorized
        );
        let (stream, _) = challenged(b.local_addr(), 1).await;
        drop(stream);
        within("the refusals to be counted", async {
            loop {
                let refused = b.refused_connections().await;
                if refused.get(&RefusalReason::AuthMissing) == Some(&1)
                    && refused.get(&RefusalReason::AuthIncomplete) == Some(&1)
                {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;

        // The real connection was never replaced: still one, still delivering, and
        // node 1's link saw one connection only.
        assert_eq!(b.inbound_connections().await, 1);
        assert_eq!(to_b.send(Seq(2)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(1), Seq(2))]);
        let connected = events
            .of(NodeId(2), LinkKind::Small)
            .iter()
            .filter(|e| **e == LinkEvent::Connected)
            .count();
        assert_eq!(connected, 1);
        assert!(!events
            .of(NodeId(2), LinkKind::Small)
            .iter()
            .any(|e| matches!(e, LinkEvent::Disconnected { .. })));
    })
    .await;
}
