//! Nodes on loopback exchanging typed messages and requests: two nodes in both
//! directions at once, three nodes all-to-all, and a node sending to itself.
#![cfg(feature = "serde")]

mod support;

use std::collections::BTreeMap;

use internode::node::{Node, Sent};
use internode::{LinkKind, NodeId};
use support::{bounded, collect, join_all, node, recv_n, serve, Incr, Incremented, Seq};

/// Checks that every sender's numbers arrived once each, in order: 0, 1, ..., n-1.
fn assert_in_order_per_sender(received: &[(NodeId, Seq)], senders: &[NodeId], n: u64) {
    let mut by_sender: BTreeMap<NodeId, Vec<u64>> = BTreeMap::new();
    for (from, Seq(seq)) in received {
        by_sender.entry(*from).or_default().push(*seq);
    }
    let expected: Vec<u64> = (0..n).collect();
    for sender in senders {
        let got = by_sender.remove(sender).unwrap_or_default();
        assert_eq!(
            got, expected,
            "messages from {sender}: all, once each, in order"
        );
    }
    assert!(
        by_sender.is_empty(),
        "messages from unexpected senders: {by_sender:?}"
    );
}

#[actix::test]
async fn two_nodes_send_both_ways_and_answer_concurrent_requests() {
    bounded(async {
        const N: u64 = 2_000;
        let a = node(1).await;
        let b = node(2).await;
        let mut at_a = collect::<Seq>(&a);
        let mut at_b = collect::<Seq>(&b);
        serve::<Incr>(&a, |_, Incr(n)| Ok(Incremented(n + 1)));
        serve::<Incr>(&b, |_, Incr(n)| Ok(Incremented(n + 1)));
        a.add_peer(NodeId(2), b.local_addr()).await;
        b.add_peer(NodeId(1), a.local_addr()).await;

        let to_b = a.peer(NodeId(2));
        let to_a = b.peer(NodeId(1));
        let mut outcomes = Vec::new();
        for seq in 0..N {
            outcomes.push(to_b.send(Seq(seq)));
            outcomes.push(to_a.send(Seq(seq)));
        }
        // Requests in flight in both directions at once, interleaved with the stream.
        let request = |from: &Node, to: u64, n: u64| {
            let from = from.clone();
            actix::spawn(async move { from.request(NodeId(to), Incr(n)).await })
        };
        let requests_a: Vec<_> = (0..100).map(|n| request(&a, 2, n)).collect();
        let requests_b: Vec<_> = (0..100).map(|n| request(&b, 1, n)).collect();

        for outcome in join_all(outcomes).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        let answers_a = join_all(requests_a).await;
        let answers_b = join_all(requests_b).await;
        for (n, (from_b, from_a)) in answers_a.into_iter().zip(answers_b).enumerate() {
            assert_eq!(from_b.unwrap(), Ok(Incremented(n as u64 + 1)));
            assert_eq!(from_a.unwrap(), Ok(Incremented(n as u64 + 1)));
        }

        let received_at_b = recv_n(&mut at_b, N as usize).await;
        let received_at_a = recv_n(&mut at_a, N as usize).await;
        assert_in_order_per_sender(&received_at_b, &[NodeId(1)], N);
        assert_in_order_per_sender(&received_at_a, &[NodeId(2)], N);
        assert!(
            at_a.try_recv().is_err() && at_b.try_recv().is_err(),
            "no extra messages"
        );
    })
    .await;
}

#[actix::test]
async fn three_nodes_all_to_all() {
    bounded(async {
        const N: u64 = 1_000;
        let nodes: Vec<Node> = vec![node(1).await, node(2).await, node(3).await];
        let mut inboxes: Vec<_> = nodes.iter().map(collect::<Seq>).collect();
        for n in &nodes {
            let me = n.id().0;
            serve::<Incr>(n, move |_, Incr(x)| Ok(Incremented(x + me)));
            for other in &nodes {
                if other.id() != n.id() {
                    n.add_peer(other.id(), other.local_addr()).await;
                }
            }
        }

        // Every node streams to every other at the same time.
        let mut outcomes = Vec::new();
        for n in &nodes {
            let peers: Vec<_> = nodes.iter().filter(|o| o.id() != n.id()).collect();
            let mut handles = Vec::new();
            for p in &peers {
                handles.push(n.peer(p.id()));
            }
            for seq in 0..N {
                for h in &handles {
                    outcomes.push(h.send(Seq(seq)));
                }
            }
        }
        for outcome in join_all(outcomes).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }

        for (i, inbox) in inboxes.iter_mut().enumerate() {
            let me = nodes[i].id();
            let senders: Vec<NodeId> = nodes.iter().map(Node::id).filter(|id| *id != me).collect();
            let received = recv_n(inbox, (N as usize) * senders.len()).await;
            assert_in_order_per_sender(&received, &senders, N);
        }

        // Requests all-to-all: each answer comes from the node asked.
        for n in &nodes {
            for other in &nodes {
                if other.id() == n.id() {
                    continue;
                }
                let answer = n.request(other.id(), Incr(100)).await;
                assert_eq!(answer, Ok(Incremented(100 + other.id().0)));
            }
        }
        for inbox in &mut inboxes {
            assert!(inbox.try_recv().is_err(), "no extra messages");
        }
    })
    .await;
}

#[actix::test]
async fn messages_and_requests_to_the_node_itself_are_delivered_locally() {
    bounded(async {
        let a = node(1).await;
        let mut inbox = collect::<Seq>(&a);
        serve::<Incr>(&a, |from, Incr(n)| {
            assert_eq!(
                from,
                NodeId(1),
                "a local request comes from the node itself"
            );
            Ok(Incremented(n + 1))
        });

        assert_eq!(a.send(NodeId(1), Seq(7)).await, Ok(Sent::DeliveredLocally));
        let me = a.peer(NodeId(1));
        assert!(me.link(LinkKind::Small).is_none());
        assert_eq!(me.send(Seq(8)).await, Ok(Sent::DeliveredLocally));
        let received = recv_n(&mut inbox, 2).await;
        assert_eq!(received, vec![(NodeId(1), Seq(7)), (NodeId(1), Seq(8))]);

        assert_eq!(a.request(NodeId(1), Incr(41)).await, Ok(Incremented(42)));
        assert_eq!(me.request(Incr(1)).await, Ok(Incremented(2)));

        // A local handler's failure comes back as a remote one would.
        serve::<Upload>(&a, |_, _| {
            Err(internode::node::HandlerError("no room".into()))
        });
        match a.request(NodeId(1), Upload(vec![1])).await {
            Err(internode::node::RequestError::Remote(f)) => {
                assert_eq!(f.reason, internode::message::FailureReason::HandlerFailed);
                assert_eq!(f.detail, "no room");
            }
            other => panic!("expected a handler failure, got {other:?}"),
        }

        // A type the node has no handler for fails at once.
        let b = node(2).await;
        let no_handler = internode::node::SendError::NoLocalHandler(1000);
        assert_eq!(b.send(NodeId(2), Seq(1)).await, Err(no_handler.clone()));
        assert_eq!(
            b.request(NodeId(2), Incr(1)).await,
            Err(internode::node::RequestError::Send(
                internode::node::SendError::NoLocalHandler(1001)
            ))
        );
        assert!(b.links().await.is_empty());

        // No link, no connection: nothing went over the network.
        assert!(a.links().await.is_empty(), "no link was created");
        assert_eq!(a.inbound_connections().await, 0);
        assert!(a.refused_connections().await.is_empty());
    })
    .await;
}

/// A node that never configured its peer's address learns it from the peer's
/// handshake: it answers requests and sends messages back.
#[actix::test]
async fn a_node_sends_to_a_peer_it_learned_from_the_handshake() {
    bounded(async {
        let a = node(1).await;
        let b = node(2).await;
        let mut at_a = collect::<Seq>(&a);
        let mut at_b = collect::<Seq>(&b);
        a.add_peer(NodeId(2), b.local_addr()).await;
        assert_eq!(a.send(NodeId(2), Seq(1)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut at_b, 1).await, vec![(NodeId(1), Seq(1))]);

        // B was never told where A is.
        assert_eq!(b.send(NodeId(1), Seq(2)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut at_a, 1).await, vec![(NodeId(2), Seq(2))]);
        // And a node nobody told about is unknown.
        assert_eq!(
            b.send(NodeId(3), Seq(3)).await,
            Err(internode::node::SendError::UnknownPeer(NodeId(3)))
        );
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Upload(Vec<u8>);
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Download(Vec<u8>);
internode::request!(Upload => Download, verb = 1010);
internode::message!(Download, verb = 1011);

/// Requests and responses above 64 KiB travel over the large links (the response
/// over the answering node's own link back), small ones over the small links, and
/// each response finds its request.
#[actix::test]
async fn large_and_small_requests_and_responses_find_each_other() {
    bounded(async {
        const BIG: usize = 200 * 1024;
        let a = node(1).await;
        let b = node(2).await;
        a.add_peer(NodeId(2), b.local_addr()).await;
        // Answers with the upload reversed, then padded to a large size or cut to a
        // small one, as its first byte asks.
        fn answer(mut bytes: Vec<u8>) -> Vec<u8> {
            let big = bytes[0] == 1;
            bytes.reverse();
            bytes.resize(if big { BIG + 1 } else { 16 }, 7);
            bytes
        }
        serve::<Upload>(&b, |_, Upload(bytes)| Ok(Download(answer(bytes))));

        let spawn = |bytes: Vec<u8>| {
            let a = a.clone();
            actix::spawn(async move { a.request(NodeId(2), Upload(bytes)).await })
        };
        // Request -> response: small -> big, big -> small, big -> big, small -> small,
        // all in flight at once.
        let asks = vec![
            vec![1, 2, 3],
            {
                let mut v = vec![0u8; BIG];
                v[BIG - 1] = 9;
                v
            },
            vec![1; BIG],
            vec![0, 5],
        ];
        let pending: Vec<_> = asks.iter().cloned().map(spawn).collect();
        for (ask, response) in asks.into_iter().zip(join_all(pending).await) {
            let Download(got) = response.unwrap().expect("an answer");
            let expected = answer(ask);
            assert_eq!(got.len(), expected.len());
            assert!(got == expected, "the answer to this request");
        }

        let kinds = |links: Vec<internode::node::LinkSnapshot>| -> Vec<(LinkKind, u64)> {
            links
                .iter()
                .filter(|s| s.counters.written > 0)
                .map(|s| (s.kind, s.counters.written))
                .collect()
        };
        assert_eq!(
            kinds(a.links().await),
            vec![(LinkKind::Small, 2), (LinkKind::Large, 2)],
            "requests from A"
        );
        assert_eq!(
            kinds(b.links().await),
            vec![(LinkKind::Small, 2), (LinkKind::Large, 2)],
            "responses from B"
        );
    })
    .await;
}

/// Peers configured on the builder are known from the start.
#[actix::test]
async fn peers_configured_on_the_builder_are_known_from_the_start() {
    bounded(async {
        let (a_addr, b_addr) = (support::reserve_port(), support::reserve_port());
        let a = support::start_on(support::builder(1).peer(NodeId(2), b_addr), a_addr).await;
        let b = support::start_on(support::builder(2).peer(NodeId(1), a_addr), b_addr).await;
        assert_eq!(b.config().peers, vec![(NodeId(1), a_addr.into())]);
        let mut at_a = collect::<Seq>(&a);
        let mut at_b = collect::<Seq>(&b);
        assert_eq!(a.send(NodeId(2), Seq(1)).await, Ok(Sent::Acknowledged));
        assert_eq!(b.send(NodeId(1), Seq(2)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut at_b, 1).await, vec![(NodeId(1), Seq(1))]);
        assert_eq!(recv_n(&mut at_a, 1).await, vec![(NodeId(2), Seq(2))]);
    })
    .await;
}

/// Messages handed to a new link before its actor runs (a large link starts on the
/// node's bulk thread) keep their order: the futures of the sends are awaited last
/// first, and the messages still arrive in the order they were sent.
#[actix::test]
async fn sends_to_a_link_that_has_not_started_yet_keep_their_order() {
    bounded(async {
        let (a, b) = support::pair().await;
        let mut inbox = collect::<support::Filled>(&b);
        let to_b = a.peer(NodeId(2));
        const N: u64 = 100;
        const LEN: usize = 70 * 1024;
        let outcomes: Vec<_> = (0..N)
            .map(|n| to_b.send(support::Filled::new(n, LEN)))
            .collect();
        for outcome in outcomes.into_iter().rev() {
            assert_eq!(outcome.await, Ok(Sent::Acknowledged));
        }
        let received = recv_n(&mut inbox, N as usize).await;
        let order: Vec<u64> = received.iter().map(|(_, m)| m.seq).collect();
        assert_eq!(order, (0..N).collect::<Vec<_>>());
    })
    .await;
}
