//! Admission limits (docs/design.md, "Connections and the handshake"): connections in
//! handshake are bounded in all and per source address, established inbound
//! connections in all; a connection over a limit is closed at once and counted, and the
//! peers already connected go on.
#![cfg(feature = "serde")]

mod support;

use std::time::Duration;

use internode::node::{AdmissionLimits, RefusalReason, Sent};
use internode::{LinkKind, NodeId};
use support::{
    bounded, builder, collect, connect_from, hello_bytes, poll_until, raw_peer, within, Seq,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the node closed `stream` (EOF or reset) within the test's wait.
async fn closed_by_the_node(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(support::WAIT, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

async fn refused(node: &internode::node::Node, reason: RefusalReason, n: u64) {
    poll_until(&format!("{n} refusals as {reason}"), || async {
        let refused = node.refused_connections().await;
        match refused.get(&reason) {
            Some(&count) if count == n => Ok(()),
            _ => Err(refused),
        }
    })
    .await;
}

#[actix::test]
async fn connections_over_the_handshake_limits_are_closed_at_once_and_counted() {
    bounded(async {
        let b = builder(2)
            .admission(
                AdmissionLimits::default()
                    .handshakes(20)
                    .handshakes_per_ip(10),
            )
            .handshake_timeout(Duration::from_secs(20))
            .start()
            .await
            .unwrap();
        let mut inbox = collect::<Seq>(&b);
        // A peer connected before the flood.
        let a = builder(1).start().await.unwrap();
        a.add_peer(NodeId(2), b.local_addr()).await;
        assert_eq!(a.send(NodeId(2), Seq(0)).await, Ok(Sent::Acknowledged));
        within("the first message", inbox.recv()).await;

        // 10 silent sockets from one address fill its share; 5 more are closed.
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(connect_from("127.0.0.2", b.local_addr()).await);
        }
        for _ in 0..5 {
            let mut over = connect_from("127.0.0.2", b.local_addr()).await;
            assert!(
                closed_by_the_node(&mut over).await,
                "over the per-address limit"
            );
        }
        refused(&b, RefusalReason::TooManyFromIp, 5).await;
        // 10 from another address fill the node's 20; a third address is refused.
        for _ in 0..10 {
            held.push(connect_from("127.0.0.3", b.local_addr()).await);
        }
        let mut over = connect_from("127.0.0.4", b.local_addr()).await;
        assert!(closed_by_the_node(&mut over).await, "over the node's limit");
        refused(&b, RefusalReason::TooManyHandshakes, 1).await;

        // The peer connected before goes on.
        assert_eq!(a.send(NodeId(2), Seq(1)).await, Ok(Sent::Acknowledged));
        let (_, got) = within("a message during the flood", inbox.recv())
            .await
            .unwrap();
        assert_eq!(got, Seq(1));

        // The silent ones leave: room again.
        drop(held);
        let mut hello = connect_from("127.0.0.4", b.local_addr()).await;
        hello
            .write_all(&hello_bytes(&support::hello(40)))
            .await
            .unwrap();
        let mut answer = [0u8; 64];
        let n = within("the Accept", hello.read(&mut answer)).await.unwrap();
        assert!(n > 0, "a handshake is taken once the others have gone");
    })
    .await;
}

#[actix::test]
async fn established_inbound_connections_are_bounded_and_a_peer_may_replace_its_own() {
    bounded(async {
        let b = builder(2)
            .admission(AdmissionLimits::default().inbound_connections(2))
            .start()
            .await
            .unwrap();
        let first = raw_peer(101, b.local_addr(), LinkKind::Small).await;
        let second = raw_peer(102, b.local_addr(), LinkKind::Small).await;
        // A third peer: refused once its Hello is read.
        let mut third = TcpStream::connect(b.local_addr()).await.unwrap();
        third
            .write_all(&hello_bytes(&support::hello(103)))
            .await
            .unwrap();
        assert!(closed_by_the_node(&mut third).await, "a third connection");
        refused(&b, RefusalReason::TooManyConnections, 1).await;
        // Peer 101 connects again while its connection is up: the new one replaces
        // its own, always taken at the limit.
        let _again = raw_peer(101, b.local_addr(), LinkKind::Small).await;
        drop(first);
        assert_eq!(b.inbound_connections().await, 2);
        assert_eq!(
            b.refused_connections()
                .await
                .get(&RefusalReason::TooManyConnections),
            Some(&1)
        );
        // Peer 102 leaves: its place goes to the next one.
        drop(second);
        poll_until("peer 102's connection to close", || async {
            match b.inbound_connections().await {
                1 => Ok(()),
                n => Err(n),
            }
        })
        .await;
        let _third = raw_peer(103, b.local_addr(), LinkKind::Small).await;
        assert_eq!(b.inbound_connections().await, 2);
    })
    .await;
}
