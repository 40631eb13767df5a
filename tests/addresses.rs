//! Peers by host name and the address a node announces, between real nodes over
//! loopback: a peer added by name is reached through the resolver; a name that does
//! not resolve is a disconnect reason, retried like any other; a node listening on
//! an unspecified address is reached back at the IP its connection came from; an
//! advertised address is the one its peers dial.
#![cfg(feature = "serde")]

mod support;

use internode::node::{Node, PeerAddr, Sent};
use internode::session::{DisconnectReason, LinkEvent};
use internode::{LinkKind, NodeId};
use support::{bounded, builder, collect, node, recv_n, refusing_port, Events, Seq};

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

/// Node 1 listening on every address (`0.0.0.0`), on a free port.
async fn on_all_addresses(advertise: Option<std::net::SocketAddr>) -> Node {
    let mut builder = Node::builder(A, "0.0.0.0:0".parse().unwrap());
    if let Some(addr) = advertise {
        builder = builder.advertise(addr);
    }
    builder.start().await.expect("node starts")
}

#[actix::test]
async fn a_peer_added_by_host_name_is_reached() {
    bounded(async {
        let a = node(1).await;
        let b = node(2).await;
        let mut got = collect::<Seq>(&b);
        let by_name: PeerAddr = format!("localhost:{}", b.local_addr().port())
            .parse()
            .unwrap();
        assert!(matches!(by_name, PeerAddr::Host { .. }));
        a.add_peer(B, by_name).await;
        assert_eq!(a.send(B, Seq(1)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut got, 1).await, vec![(A, Seq(1))]);
    })
    .await;
}

#[actix::test]
async fn a_name_that_does_not_resolve_is_a_disconnect_reason_and_retried() {
    bounded(async {
        let a = builder(1)
            .peer(B, PeerAddr::host("no-such-node.invalid", 23001))
            .start()
            .await
            .unwrap();
        let mut events = Events::subscribe(&a).await;
        let send = actix::spawn(a.peer(B).send(Seq(1)));
        let reason = events.next_disconnect("a failed resolution", B).await;
        assert!(matches!(reason, DisconnectReason::Resolve(_)), "{reason:?}");
        events
            .wait_for("a retry", B, LinkKind::Small, |e| {
                matches!(e, LinkEvent::RetryScheduled { .. })
            })
            .await;
        // Given an address that works, the waiting message goes.
        let b = node(2).await;
        a.add_peer(B, b.local_addr()).await;
        assert_eq!(send.await.unwrap(), Ok(Sent::Acknowledged));
    })
    .await;
}

/// A node bound to `0.0.0.0` announces only its port: its peer, which learns its
/// address from the connection, dials back the IP the connection came from.
#[actix::test]
async fn a_node_on_all_addresses_is_reached_back_at_its_source_ip() {
    bounded(async {
        let a = on_all_addresses(None).await;
        let b = node(2).await;
        let mut at_a = collect::<Seq>(&a);
        a.add_peer(B, b.local_addr()).await;
        assert_eq!(a.send(B, Seq(1)).await, Ok(Sent::Acknowledged));
        // b was never told a's address.
        assert_eq!(b.send(A, Seq(2)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut at_a, 1).await, vec![(B, Seq(2))]);
    })
    .await;
}

/// The advertised address is the one peers dial: here one where connections are
/// refused, so b's link to a fails to connect there.
#[actix::test]
async fn peers_dial_the_advertised_address() {
    bounded(async {
        let nowhere = refusing_port();
        let a = on_all_addresses(Some(nowhere.addr())).await;
        let b = node(2).await;
        let mut events = Events::subscribe(&b).await;
        a.add_peer(B, b.local_addr()).await;
        assert_eq!(a.send(B, Seq(1)).await, Ok(Sent::Acknowledged));
        let sending = actix::spawn(b.peer(A).send(Seq(2)));
        let reason = events.next_disconnect("a refused connect", A).await;
        assert_eq!(
            reason,
            DisconnectReason::ConnectFailed(std::io::ErrorKind::ConnectionRefused)
        );
        // Told the real address, b gets through.
        let port = a.local_addr().port();
        b.add_peer(A, PeerAddr::from(("127.0.0.1", port))).await;
        assert_eq!(sending.await.unwrap(), Ok(Sent::Acknowledged));
    })
    .await;
}
