//! Closing links and nodes: with drain everything queued is delivered; without, it
//! fails with `Closed`; a message sent to a closing or closed link is rejected, never
//! lost silently.
#![cfg(feature = "serde")]

mod support;

use internode::node::{CloseLink, SendError, Sent};
use internode::session::{DisconnectReason, LinkEvent};
use internode::{LinkKind, NodeId};
use support::{bounded, collect, join_all, node, pair, poll_until, recv_n, Events, Seq};

const B: NodeId = NodeId(2);
const N: u64 = 10_000;

fn in_order(received: Vec<(NodeId, Seq)>, from: u64, to: u64) {
    let expected: Vec<_> = (from..to).map(|n| (NodeId(1), Seq(n))).collect();
    assert!(
        received == expected,
        "all of {from}..{to}, once each, in order"
    );
}

#[actix::test]
async fn closing_a_peer_with_drain_delivers_everything_queued() {
    bounded(async {
        let (a, b) = pair().await;
        let mut inbox = collect::<Seq>(&b);
        let mut events = Events::subscribe(&a).await;
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();

        // Queued before the link has even connected, then closed at once.
        let outcomes: Vec<_> = (0..N).map(|seq| to_b.send(Seq(seq))).collect();
        a.close_peer(B, true).await;
        for outcome in join_all(outcomes).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        in_order(recv_n(&mut inbox, N as usize).await, 0, N);
        events
            .wait_for("the close", B, LinkKind::Small, |e| *e == LinkEvent::Closed)
            .await;

        // A handle taken before the close sends over a new link; so does the node.
        assert_eq!(to_b.send(Seq(N)).await, Ok(Sent::Acknowledged));
        assert_eq!(a.send(B, Seq(N + 1)).await, Ok(Sent::Acknowledged));
        in_order(recv_n(&mut inbox, 2).await, N, N + 2);
        assert!(inbox.try_recv().is_err(), "nothing else arrived");
    })
    .await;
}

#[actix::test]
async fn messages_sent_to_a_draining_link_are_rejected() {
    bounded(async {
        let (a, b) = pair().await;
        let mut inbox = collect::<Seq>(&b);
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();
        let link = to_b.link(LinkKind::Small).unwrap().clone();

        let before: Vec<_> = (0..N).map(|seq| to_b.send(Seq(seq))).collect();
        // Queued in the link's mailbox right behind the messages: drains them.
        let closing = link.send(CloseLink::new(true));
        // Behind the close: rejected.
        let after: Vec<_> = (N..N + 100).map(|seq| to_b.send(Seq(seq))).collect();

        for outcome in join_all(after).await {
            assert_eq!(outcome, Err(SendError::Closed));
        }
        for outcome in join_all(before).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        closing.await.unwrap();
        in_order(recv_n(&mut inbox, N as usize).await, 0, N);
        let links = a.links().await;
        assert!(
            links.iter().all(|s| s.kind != LinkKind::Small),
            "the closed link is gone from the node: {links:?}"
        );
    })
    .await;
}

#[actix::test]
async fn closing_a_node_with_drain_delivers_everything_then_rejects() {
    bounded(async {
        let (a, b) = pair().await;
        let mut inbox = collect::<Seq>(&b);
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();

        let outcomes: Vec<_> = (0..N).map(|seq| to_b.send(Seq(seq))).collect();
        a.close(true).await;
        for outcome in join_all(outcomes).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        in_order(recv_n(&mut inbox, N as usize).await, 0, N);

        assert_eq!(a.send(B, Seq(N)).await, Err(SendError::Closed));
        assert_eq!(to_b.send(Seq(N)).await, Err(SendError::Closed));
        assert!(inbox.try_recv().is_err(), "nothing else arrived");
    })
    .await;
}

#[actix::test]
async fn closing_without_drain_fails_everything_queued() {
    bounded(async {
        let a = node(1).await;
        let mut events = Events::subscribe(&a).await;
        // Nothing listens there: the messages wait.
        let nowhere = support::refusing_port();
        a.add_peer(B, nowhere.addr()).await;
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();
        let outcomes: Vec<_> = (0..1_000).map(|seq| to_b.send(Seq(seq))).collect();
        events
            .wait_for("a retry", B, LinkKind::Small, |e| {
                matches!(e, LinkEvent::RetryScheduled { .. })
            })
            .await;

        a.close_peer(B, false).await;
        for outcome in join_all(outcomes).await {
            assert_eq!(outcome, Err(SendError::Closed));
        }
        events
            .wait_for("the close", B, LinkKind::Small, |e| *e == LinkEvent::Closed)
            .await;
        // The handle opens a new link, where the next message waits (nothing
        // listens) until its deadline.
        let late = to_b.send_expiring(Seq(0), std::time::Duration::from_millis(100));
        assert_eq!(late.await, Err(SendError::Expired));
    })
    .await;
}

#[actix::test]
async fn closing_a_node_without_drain_fails_everything_queued() {
    bounded(async {
        let a = node(1).await;
        let nowhere = support::refusing_port();
        a.add_peer(B, nowhere.addr()).await;
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();
        // Closed at once, while the link is still connecting.
        let outcomes: Vec<_> = (0..1_000).map(|seq| to_b.send(Seq(seq))).collect();
        a.close(false).await;
        for outcome in join_all(outcomes).await {
            assert_eq!(outcome, Err(SendError::Closed));
        }
        assert_eq!(a.send(B, Seq(0)).await, Err(SendError::Closed));
        let links = a.links().await;
        assert!(links.is_empty(), "no link survives: {links:?}");
    })
    .await;
}

/// A close without drain on a busy connection: a message reported failed with
/// `Closed` never reaches the peer (its sender may send it again without creating a
/// duplicate); everything else is reported written or possibly lost.
#[actix::test]
async fn a_message_reported_closed_is_never_delivered() {
    bounded(async {
        let (a, b) = pair().await;
        let mut inbox = collect::<Seq>(&b);
        let to_b = a.peer(B);
        assert_eq!(to_b.send(Seq(0)).await, Ok(Sent::Acknowledged));
        recv_n(&mut inbox, 1).await;

        let outcomes: Vec<_> = (1..=N).map(|seq| to_b.send(Seq(seq))).collect();
        let link = to_b.link(LinkKind::Small).unwrap();
        link.send(CloseLink::new(false)).await.unwrap();
        let outcomes = join_all(outcomes).await;

        // Everything that will arrive has arrived once B's connection from A is gone
        // and a message sent after it (over a new link and connection) arrives.
        support::within("B's inbound connection to close", async {
            while b.inbound_connections().await != 0 {
                tokio::time::sleep(support::POLL).await;
            }
        })
        .await;
        assert_eq!(a.send(B, Seq(N + 1)).await, Ok(Sent::Acknowledged));
        let mut arrived = Vec::new();
        support::within("the last message", async {
            loop {
                let (_, Seq(seq)) = inbox.recv().await.unwrap();
                if seq == N + 1 {
                    return;
                }
                arrived.push(seq);
            }
        })
        .await;
        let mut counts = std::collections::BTreeMap::new();
        for outcome in &outcomes {
            *counts.entry(format!("{outcome:?}")).or_insert(0) += 1;
        }
        for seq in &arrived {
            let outcome = &outcomes[(*seq - 1) as usize];
            assert!(
                matches!(
                    outcome,
                    Ok(Sent::Acknowledged) | Err(SendError::ConnectionLost)
                ),
                "message {seq} arrived but was reported {outcome:?} (outcomes: {counts:?})"
            );
        }
        log::info!("outcomes {counts:?}; {} arrived", arrived.len());
        assert!(
            counts.contains_key("Err(Closed)"),
            "the close failed what was queued"
        );
    })
    .await;
}

/// A closed link is freed once nothing refers to it any more: closing and reopening
/// links does not accumulate actors.
#[actix::test]
async fn a_closed_link_is_freed() {
    bounded(async {
        let (a, b) = pair().await;
        let _inbox = collect::<Seq>(&b);
        let link = a.link(B, LinkKind::Small).await.unwrap();
        assert_eq!(
            link.send(internode::node::Outbound::new(1000, {
                use internode::message::Message;
                let mut b = bytes::BytesMut::new();
                Seq(1).encode(&mut b).unwrap();
                b.freeze()
            }))
            .await
            .unwrap(),
            Ok(Sent::Acknowledged)
        );
        let weak = link.downgrade();
        drop(link);
        a.close_peer(B, true).await;
        support::within("the closed link to be freed", async {
            while weak.upgrade().is_some() {
                tokio::time::sleep(support::POLL).await;
            }
        })
        .await;
    })
    .await;
}

/// Closing with drain while the peer is unreachable returns after the drain timeout;
/// what was queued fails `Closed` (never written) instead of waiting forever.
#[actix::test]
async fn a_drain_to_an_unreachable_peer_ends_at_its_deadline() {
    bounded(async {
        let a = support::builder(1)
            .drain_timeout(std::time::Duration::from_millis(300))
            .start()
            .await
            .unwrap();
        let nowhere = support::refusing_port();
        a.add_peer(B, nowhere.addr()).await;
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();
        let queued: Vec<_> = (0..10).map(|n| to_b.send(Seq(n))).collect();
        let started = std::time::Instant::now();
        support::within("the close", a.close(true)).await;
        let took = started.elapsed();
        assert!(
            took >= std::time::Duration::from_millis(300)
                && took < std::time::Duration::from_secs(3),
            "closed after {took:?}"
        );
        for outcome in join_all(queued).await {
            assert_eq!(outcome, Err(SendError::Closed));
        }

        // A timeout passed to close overrides the node's.
        let c = node(3).await;
        let nowhere = support::refusing_port();
        c.add_peer(B, nowhere.addr()).await;
        let to_b = c.peer(B);
        to_b.ready().await.unwrap();
        let outcome = to_b.send(Seq(1));
        let started = std::time::Instant::now();
        support::within(
            "the close",
            c.close_within(std::time::Duration::from_millis(50)),
        )
        .await;
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(outcome.await, Err(SendError::Closed));
    })
    .await;
}

/// `close` returns once the node's port is free: a new listener (another node, or
/// the same one restarted) binds it at once, without retrying.
#[actix::test]
async fn close_returns_once_the_port_is_free() {
    bounded(async {
        for _ in 0..20 {
            let a = node(1).await;
            let addr = a.local_addr();
            a.close(false).await;
            let rebound = std::net::TcpListener::bind(addr);
            assert!(
                rebound.is_ok(),
                "{addr} still held after close: {rebound:?}"
            );
        }
    })
    .await;
}

/// Dropping the last handle of a node closes it without drain: its connections end
/// (its peer's link sees it go) and its port is free.
#[actix::test]
async fn dropping_the_last_handle_closes_the_node() {
    bounded(async {
        let (a, b) = pair().await;
        let addr = a.local_addr();
        let mut events = Events::subscribe(&b).await;
        // Both directions connected.
        assert_eq!(a.send(NodeId(2), Seq(1)).await, Ok(Sent::Acknowledged));
        assert_eq!(b.send(NodeId(1), Seq(2)).await, Ok(Sent::Acknowledged));
        let a2 = a.clone();
        drop(a);
        assert_eq!(b.inbound_connections().await, 1, "a clone keeps the node");
        drop(a2);
        let reason = events.next_disconnect("node 1 to go", NodeId(1)).await;
        assert_eq!(reason, DisconnectReason::PeerClosed);
        poll_until("node 1's connection to end", || async {
            match b.inbound_connections().await {
                0 => Ok(()),
                n => Err(n),
            }
        })
        .await;
        poll_until("node 1's port to be free", || async {
            std::net::TcpListener::bind(addr)
                .map(drop)
                .map_err(|e| e.kind())
        })
        .await;
    })
    .await;
}
