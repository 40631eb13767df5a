//! Resource limits and expiry between nodes (docs/limits.md): messages that
//! expire while their peer is unreachable, a receiver that skips expired messages
//! before decoding them, oversized messages in both directions, the three overload
//! levels and the reserves they leave behind, and the counters all of this moves
//! (their Prometheus rendering: `tests/metrics.rs`).
#![cfg(feature = "serde")]

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use internode::envelope::{Envelope, Flags};
use internode::limits::Limits;
use internode::message::Message;
use internode::node::{
    GetLinkSnapshot, LinkSnapshot, Node, Outbound, OverloadLevel, Peer, SendError, SendErrorKind,
    Sent,
};
use internode::session::{HeartbeatConfig, LinkEvent, LinkState};
use internode::{LinkKind, NodeId};
use serde::{Deserialize, Serialize};
use support::{
    bounded, builder, collect, epoch_ms, frames, node, payload_len, poll_until, raw_peer, recv_n,
    within, Blob, Events, Proxy, Seq,
};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

/// A message type that expires 200 ms after its send unless the send says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ephemeral(u64);
internode::message!(Ephemeral, verb = 1100, expires_after_ms = 200);

/// A message type whose own deadline (a minute) is longer than any test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Patient(u64);
internode::message!(Patient, verb = 1101, expires_after_ms = 60_000);

/// The longest a message may take to fail `Expired` after its deadline while its link
/// is disconnected: the link drops expired messages every 100 ms; the rest is slack
/// for a busy machine.
const EXPIRY_SLACK: Duration = Duration::from_millis(1500);

/// Runs `outcome` on the test's runtime now and returns it with the time it took.
fn timed<F>(outcome: F) -> JoinHandle<(Result<Sent, SendError>, Duration)>
where
    F: Future<Output = Result<Sent, SendError>> + 'static,
{
    let start = Instant::now();
    actix_rt::spawn(async move {
        let result = outcome.await;
        (result, start.elapsed())
    })
}

/// Awaits a spawned outcome (at most [`support::WAIT`]).
async fn outcome_of<T>(what: &str, handle: JoinHandle<T>) -> T {
    within(what, handle).await.expect("the outcome task runs")
}

/// The snapshot of `node`'s link `kind` to `peer`.
async fn link_of(node: &Node, peer: NodeId, kind: LinkKind) -> LinkSnapshot {
    let links = node.links().await;
    let found = links.iter().find(|s| s.peer == peer && s.kind == kind);
    match found {
        Some(snapshot) => snapshot.clone(),
        None => panic!("node {} has no {kind} link to {peer}: {links:?}", node.id()),
    }
}

fn failed(snapshot: &LinkSnapshot, reason: SendErrorKind) -> (u64, u64) {
    let count = |map: &BTreeMap<SendErrorKind, u64>| map.get(&reason).copied().unwrap_or(0);
    (
        count(&snapshot.counters.failed),
        count(&snapshot.counters.failed_bytes),
    )
}

/// A heartbeat that never times out during a test (stalls last a few seconds).
fn patient_heartbeat() -> HeartbeatConfig {
    HeartbeatConfig::new(
        Duration::from_secs(1),
        Duration::from_secs(60),
        Duration::from_secs(60),
    )
}

// ---------------------------------------------------------------------------------
// 1. Expiry while disconnected.

/// Messages to a peer where nothing listens fail `Expired` shortly after their
/// deadline, whichever sets it: the send (through the node or a `Peer`), the message
/// type, or the node's default; a send's or type's own deadline overrides the
/// node's, also upwards. A deadline already passed fails at once, without the link
/// taking the message. The link counts each failure and its bytes.
#[actix_rt::test]
async fn messages_expire_while_the_peer_is_unreachable() {
    bounded(async {
        let node_default = Duration::from_millis(300);
        let a = builder(1).expire_after(node_default).start().await.unwrap();
        let nowhere = support::refusing_port();
        a.add_peer(NodeId(2), nowhere.addr()).await;
        let to_b = a.peer(NodeId(2));
        to_b.ready().await.unwrap();
        let deadline = Duration::from_millis(200);

        // Deadlines longer than the test: per send, and per type, both beyond the
        // node's default.
        let long_send = to_b.send_expiring(Seq(0), Duration::from_secs(60));
        let long_type = to_b.send(Patient(0));

        let mut expiring = Vec::new(); // (what, outcome, its deadline, its bytes)
        for i in 0..3u8 {
            let blob = Blob::new(100 + usize::from(i), i);
            let bytes = payload_len(&blob);
            let a = a.clone();
            let outcome = timed(async move { a.send_expiring(NodeId(2), blob, deadline).await });
            expiring.push(("Node::send_expiring", outcome, deadline, bytes));
        }
        for i in 3..6u8 {
            let blob = Blob::new(100 + usize::from(i), i);
            let bytes = payload_len(&blob);
            let outcome = timed(to_b.send_expiring(blob, deadline));
            expiring.push(("Peer::send_expiring", outcome, deadline, bytes));
        }
        let typed = Ephemeral(7);
        let bytes = payload_len(&typed);
        let a2 = a.clone();
        let outcome = timed(async move { a2.send(NodeId(2), typed).await });
        expiring.push(("a type's deadline", outcome, deadline, bytes));
        let bytes = payload_len(&Seq(8));
        let outcome = timed(to_b.send(Seq(8)));
        expiring.push(("the node's default", outcome, node_default, bytes));

        let mut expired_bytes = 0;
        for (what, outcome, deadline, bytes) in expiring {
            let (result, took) = outcome_of(what, outcome).await;
            assert_eq!(result, Err(SendError::Expired), "{what}");
            // Deadlines are whole milliseconds: at most 1 ms early (and the clock
            // was started just after a `Peer` send's deadline was set).
            assert!(
                took + Duration::from_millis(5) >= deadline,
                "{what}: expired after {took:?}, before its deadline of {deadline:?}"
            );
            assert!(
                took <= deadline + EXPIRY_SLACK,
                "{what}: expired only after {took:?} (deadline {deadline:?})"
            );
            expired_bytes += bytes as u64;
        }

        let link = link_of(&a, NodeId(2), LinkKind::Small).await;
        assert!(
            matches!(
                link.state,
                LinkState::WaitingToRetry { .. } | LinkState::Connecting { .. }
            ),
            "the link keeps trying: {:?}",
            link.state
        );
        assert_eq!(failed(&link, SendErrorKind::Expired), (8, expired_bytes));
        assert_eq!(link.counters.written, 0);
        assert_eq!(link.queued, 2, "the two long deadlines wait: {link:?}");
        let accepted = link.counters.accepted;

        // A deadline that has passed already: refused on arrival, never taken.
        let start = Instant::now();
        let now = a
            .send_expiring(NodeId(2), Blob::new(50, 9), Duration::ZERO)
            .await;
        assert_eq!(now, Err(SendError::Expired));
        let also_now = to_b.send_expiring(Blob::new(50, 10), Duration::ZERO).await;
        assert_eq!(also_now, Err(SendError::Expired));
        assert!(start.elapsed() < EXPIRY_SLACK, "{:?}", start.elapsed());
        let link = link_of(&a, NodeId(2), LinkKind::Small).await;
        assert_eq!(failed(&link, SendErrorKind::Expired), (10, expired_bytes + 100));
        assert_eq!(
            link.counters.accepted, accepted,
            "refused before it was taken"
        );

        // The same counters in the node's metrics.
        let metrics = a.metrics().await;
        let small = metrics
            .links
            .iter()
            .find(|s| s.peer == NodeId(2) && s.kind == LinkKind::Small)
            .expect("the small link in the metrics");
        assert_eq!(failed(small, SendErrorKind::Expired), (10, expired_bytes + 100));
        assert_eq!(metrics.limits.send.global_in_use, 0);

        // Closing the peer fails the two that never expired.
        let small = to_b.link(LinkKind::Small).expect("a remote peer");
        a.close_peer(NodeId(2), false).await;
        assert_eq!(within("long send", long_send).await, Err(SendError::Closed));
        assert_eq!(within("long type", long_type).await, Err(SendError::Closed));
        // A closed link leaves the node's list (and the handles on the peer: they
        // find a new one on their next message); its address still answers.
        assert!(to_b.link(LinkKind::Small).is_none());
        let link = small.send(GetLinkSnapshot).await.expect("the link answers");
        assert_eq!(link.state, LinkState::Closed);
        assert_eq!(failed(&link, SendErrorKind::Closed).0, 2);
        assert_eq!(failed(&link, SendErrorKind::Expired).0, 10);
        // The node's metrics keep what its closed links counted, in the peer's own
        // series.
        let metrics = a.metrics().await;
        assert!(metrics.links.is_empty(), "{:?}", metrics.links);
        let counters = &metrics.link_counters[&(NodeId(2), LinkKind::Small)];
        assert_eq!(counters.failed.get(&SendErrorKind::Closed), Some(&2));
        assert_eq!(counters.failed.get(&SendErrorKind::Expired), Some(&10));
        let text = metrics.to_prometheus();
        assert!(text.contains(
            "internode_outbound_failed_messages_total{node=\"1\",peer=\"2\",link=\"small\",reason=\"expired\"} 10"
        ));
        // A gauge describes an open link: none is left.
        assert!(!text.contains("internode_outbound_pending_bytes{"), "{text}");
        // What the closed link still counts (a message from a handle that had not
        // heard it closed) goes to the same series.
        let late = Outbound::new(Blob::VERB, Bytes::from_static(b"late"));
        assert_eq!(small.send(late).await.expect("the link answers"), Err(SendError::Closed));
        poll_until("the late failure to be counted", || async {
            let metrics = a.metrics().await;
            let failed = metrics.link_counters[&(NodeId(2), LinkKind::Small)]
                .failed
                .get(&SendErrorKind::Closed)
                .copied();
            if failed == Some(3) {
                Ok(())
            } else {
                Err(failed)
            }
        })
        .await;
    })
    .await;
}

/// The address the tests above use for a peer that is not there (`refusing_port`): a
/// connection to it is refused, and while its guard lives no listener can be given its
/// port, so no other test's node 2 (or proxy) answers there.
#[actix_rt::test]
async fn a_refusing_port_refuses_and_cannot_be_taken() {
    let nowhere = support::refusing_port();
    let refused = tokio::net::TcpStream::connect(nowhere.addr()).await;
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    assert!(tokio::net::TcpListener::bind(nowhere.addr()).await.is_err());
    assert!(std::net::TcpListener::bind(nowhere.addr()).is_err());
}

// ---------------------------------------------------------------------------------
// 2. The receiver skips expired messages before decoding them.

/// A raw peer sends, after its handshake, a message whose deadline has passed and
/// whose payload would not even decode, then a valid one: the handler gets only the
/// valid one, and the expired one is counted as expired, not as a decode failure.
/// The same bad payload unexpired is counted as a decode failure (the control).
#[actix_rt::test]
async fn a_receiver_skips_expired_messages_before_decoding_them() {
    bounded(async {
        let b = node(2).await;
        let mut inbox = collect::<Seq>(&b);
        let garbage = Bytes::from_static(&[0xff; 16]);
        assert!(Seq::decode(garbage.clone()).is_err(), "not a Seq");

        let mut peer = raw_peer(7, b.local_addr(), LinkKind::Small).await;
        let envelope = |id: u64, payload: Bytes, expires_at_ms: Option<u64>| {
            let now = epoch_ms();
            Envelope {
                id,
                verb: Seq::VERB,
                flags: Flags::EMPTY,
                created_at_ms: expires_at_ms.map_or(now, |at| at.min(now)),
                expires_at_ms,
                params: Vec::new(),
                payload,
            }
        };
        let encoded = |seq: u64| {
            let mut buf = bytes::BytesMut::new();
            Seq(seq).encode(&mut buf).unwrap();
            buf.freeze()
        };
        let past = Some(epoch_ms() - 5_000);
        let future = Some(epoch_ms() + 60_000);
        let wire = frames(&[
            envelope(1, garbage.clone(), past),
            envelope(2, encoded(42), future),
        ]);
        peer.write_all(&wire).await.unwrap();

        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(7), Seq(42))]);
        let counters = b.inbound_counters().await;
        assert_eq!(counters.received, 2, "{counters:?}");
        assert_eq!(counters.expired, 1, "{counters:?}");
        assert_eq!(
            counters.decode_failed, 0,
            "skipped before decoding: {counters:?}"
        );
        assert_eq!(counters.dispatched, 1, "{counters:?}");

        // The control: the same payload, not expired, fails to decode (and the
        // connection stays up).
        let wire = frames(&[envelope(3, garbage, None), envelope(4, encoded(43), None)]);
        peer.write_all(&wire).await.unwrap();
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(7), Seq(43))]);
        let counters = b.inbound_counters().await;
        assert_eq!(
            (counters.received, counters.expired, counters.decode_failed),
            (4, 1, 1),
            "{counters:?}"
        );
        assert_eq!(b.inbound_connections().await, 1);
        assert!(inbox.try_recv().is_err(), "nothing else delivered");
    })
    .await;
}

// ---------------------------------------------------------------------------------
// 3. and 4. Oversized messages.

/// A node with a maximum message size of 1000 bytes refuses a larger payload at once
/// (the link never takes it) and counts it; payloads up to the maximum go through.
#[actix_rt::test]
async fn an_oversized_message_is_refused_at_once() {
    bounded(async {
        let a = builder(1).max_message(1000).start().await.unwrap();
        let b = node(2).await;
        let mut inbox = collect::<Blob>(&b);
        a.add_peer(NodeId(2), b.local_addr()).await;
        let to_b = a.peer(NodeId(2));

        let start = Instant::now();
        assert_eq!(
            a.send(NodeId(2), Blob::new(2000, 1)).await,
            Err(SendError::Oversized {
                size: 2000,
                max: 1000
            })
        );
        assert_eq!(
            to_b.send(Blob::new(1001, 2)).await,
            Err(SendError::Oversized {
                size: 1001,
                max: 1000
            })
        );
        assert!(start.elapsed() < EXPIRY_SLACK, "{:?}", start.elapsed());
        let link = link_of(&a, NodeId(2), LinkKind::Small).await;
        assert_eq!(failed(&link, SendErrorKind::Oversized), (2, 3001));
        assert_eq!(link.counters.accepted, 0);
        assert_eq!(
            link.counters.connection_attempts, 0,
            "nothing to connect for"
        );

        assert_eq!(to_b.send(Blob::new(1000, 3)).await, Ok(Sent::Acknowledged));
        assert_eq!(
            a.send(NodeId(2), Blob::new(10, 4)).await,
            Ok(Sent::Acknowledged)
        );
        let received = recv_n(&mut inbox, 2).await;
        assert_eq!(
            received,
            vec![
                (NodeId(1), Blob::new(1000, 3)),
                (NodeId(1), Blob::new(10, 4))
            ]
        );
        let link = link_of(&a, NodeId(2), LinkKind::Small).await;
        assert_eq!(failed(&link, SendErrorKind::Oversized), (2, 3001));
        assert_eq!(
            (link.counters.written, link.counters.written_bytes),
            (2, 1010)
        );
        assert!(inbox.try_recv().is_err(), "nothing else delivered");
    })
    .await;
}

/// A message larger than the receiver's maximum (the sender allows more) is taken off
/// the stream unread, counted, and acknowledged as taken: the connection stays up, the
/// lossless link does not write it again, and what follows is delivered.
#[actix_rt::test]
async fn an_oversized_incoming_message_is_skipped_and_the_link_goes_on() {
    bounded(async {
        let b = builder(2).max_message(10_000).start().await.unwrap();
        let mut inbox = collect::<Blob>(&b);
        let a = node(1).await;
        let mut events = Events::subscribe(&a).await;
        a.add_peer(NodeId(2), b.local_addr()).await;
        let to_b = a.peer(NodeId(2));

        assert_eq!(to_b.send(Blob::new(10, 1)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await[0].1, Blob::new(10, 1));

        // 50 000 bytes: one self-contained frame over the small link; 300 000 bytes:
        // three frames over the large link.
        assert_eq!(
            to_b.send(Blob::new(50_000, 2)).await,
            Ok(Sent::Acknowledged)
        );
        assert_eq!(to_b.send(Blob::new(1_000, 3)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await[0].1, Blob::new(1_000, 3));
        assert_eq!(
            to_b.send(Blob::new(300_000, 4)).await,
            Ok(Sent::Acknowledged)
        );
        assert_eq!(to_b.send(Blob::new(100, 5)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await[0].1, Blob::new(100, 5));

        assert!(inbox.try_recv().is_err(), "the oversized ones never arrive");
        let counters = b.inbound_counters().await;
        assert_eq!(counters.received, 3, "only the small ones: {counters:?}");
        assert_eq!(counters.oversized, 2, "{counters:?}");
        // Whole envelopes: the payloads and three headers of a few bytes.
        let payloads = 10 + 1_000 + 100;
        assert!(
            (payloads..payloads + 3 * 64).contains(&counters.received_bytes),
            "{counters:?}"
        );
        assert!(
            !events
                .take_arrived()
                .iter()
                .any(|n| matches!(n.event, LinkEvent::Disconnected { .. })),
            "no connection was reset"
        );
        for link in a
            .links()
            .await
            .iter()
            .filter(|l| l.kind != LinkKind::Urgent)
        {
            assert_eq!(link.counters.connections, 1, "{link:?}");
            assert_eq!(link.in_flight, 0, "nothing waits for an ack: {link:?}");
        }
    })
    .await;
}

/// Between two nodes with the same maximum message size, a message of exactly that
/// size is delivered: the maximum bounds the payload on both sides (the receiver
/// allows the envelope header on top of it).
#[actix_rt::test]
async fn a_message_of_the_maximum_size_is_delivered() {
    bounded(async {
        let b = builder(2).max_message(10_000).start().await.unwrap();
        let mut inbox = collect::<Blob>(&b);
        let a = builder(1).max_message(10_000).start().await.unwrap();
        a.add_peer(NodeId(2), b.local_addr()).await;
        let outcome = a.send(NodeId(2), Blob::new(10_000, 1)).await;
        assert_eq!(outcome, Ok(Sent::Acknowledged));
        let received = tokio::time::timeout(Duration::from_secs(2), inbox.recv()).await;
        let received = received.expect("delivered").expect("the collector lives");
        assert_eq!(received, (NodeId(1), Blob::new(10_000, 1)));
    })
    .await;
}

// ---------------------------------------------------------------------------------
// 5. Overload levels.

/// A link that is failing to connect takes no reserve: a message beyond its capacity
/// fails `Overloaded(Link)` at once, and nothing is charged to the reserves.
#[actix_rt::test]
async fn a_link_failing_to_connect_is_overloaded_at_its_capacity() {
    bounded(async {
        let limits = Limits::new(1000, 100_000, 100_000);
        let a = builder(1).send_limits(limits).start().await.unwrap();
        let mut events = Events::subscribe(&a).await;
        let nowhere = support::refusing_port();
        a.add_peer(NodeId(2), nowhere.addr()).await;
        let to_b = a.peer(NodeId(2));

        let first = actix::spawn(to_b.send(Blob::new(600, 1)));
        events
            .wait_for("a failed attempt", NodeId(2), LinkKind::Small, |e| {
                matches!(e, LinkEvent::RetryScheduled { .. })
            })
            .await;
        let link = link_of(&a, NodeId(2), LinkKind::Small).await;
        assert!(
            match link.state {
                LinkState::WaitingToRetry { .. } => true,
                LinkState::Connecting { attempt } => attempt > 1,
                _ => false,
            },
            "failing to connect: {:?}",
            link.state
        );

        // Within the capacity: taken.
        let second = actix::spawn(to_b.send(Blob::new(300, 2)));
        poll_until("the second message to be taken", || async {
            let link = link_of(&a, NodeId(2), LinkKind::Small).await;
            if link.queued == 2 {
                Ok(())
            } else {
                Err(link)
            }
        })
        .await;
        // Beyond it: no credit, whatever the reserves have; refused at once.
        assert_eq!(
            to_b.try_send(Blob::new(200, 3)).err(),
            Some(SendError::Overloaded(OverloadLevel::Link))
        );
        assert_eq!(
            to_b.try_send(Blob::new(5000, 4)).err(),
            Some(SendError::Overloaded(OverloadLevel::Link))
        );

        let metrics = a.metrics().await;
        assert_eq!(metrics.limits.send.global_in_use, 0, "no reserve taken");
        assert_eq!(metrics.limits.send.global_peak, 0, "no reserve ever taken");
        assert!(metrics.limits.send.endpoints.is_empty());
        let link = link_of(&a, NodeId(2), LinkKind::Small).await;
        assert!(link.counters.failed.is_empty(), "refused by the sender");
        assert_eq!((link.queued, link.pending_bytes), (2, 900));
        assert_eq!(
            link.credit_waiting, 1,
            "the ask for more waits for the link"
        );
        assert_eq!(link.reserve_bytes, 0);

        a.close_peer(NodeId(2), false).await;
        assert_eq!(
            within("first", first).await.unwrap(),
            Err(SendError::Closed)
        );
        assert_eq!(
            within("second", second).await.unwrap(),
            Err(SendError::Closed)
        );
    })
    .await;
}

/// Sends 16 KiB messages to `peer` with `try_send` until one is refused for a reason
/// the link gave (a refusal before the link said which reserve it waits for,
/// `Overloaded(Link)`, is tried again a moment later); returns the outcomes of those
/// queued (pending), the refusal and the link's snapshot.
async fn fill(
    peer: &Peer,
) -> (
    Vec<JoinHandle<(Result<Sent, SendError>, Duration)>>,
    SendError,
    LinkSnapshot,
) {
    const MESSAGE: usize = 16 * 1024;
    const MOST: usize = 5_000; // 80 MB: far beyond any socket buffers
    let link = peer.link(LinkKind::Small).expect("a remote peer").clone();
    let mut taken = Vec::new();
    for i in 0..MOST {
        loop {
            match peer.try_send(Blob::new(MESSAGE, i as u8)) {
                Ok(queued) => {
                    taken.push(timed(queued));
                    break;
                }
                Err(SendError::Overloaded(OverloadLevel::Link)) => {
                    tokio::time::sleep(support::POLL).await;
                }
                Err(error) => {
                    let snapshot = link.send(GetLinkSnapshot).await.expect("the link lives");
                    return (taken, error, snapshot);
                }
            }
        }
    }
    panic!("{MOST} messages of {MESSAGE} bytes taken: the stall did not hold them");
}

/// Two peers behind stalled proxies: the first fills its link and then the endpoint
/// reserve (`Overloaded(Endpoint)`), the second fills its link and what is left of
/// the global reserve (`Overloaded(Global)`). Once the stall ends everything taken is
/// written and delivered, and the reserves are all given back.
#[actix_rt::test]
async fn stalled_peers_overload_their_endpoint_then_the_global_reserve() {
    bounded(async {
        const KIB: usize = 1024;
        let limits = Limits::new(64 * KIB, 256 * KIB, 384 * KIB);
        let b = builder(2)
            .heartbeat(patient_heartbeat())
            .start()
            .await
            .unwrap();
        let c = builder(3)
            .heartbeat(patient_heartbeat())
            .start()
            .await
            .unwrap();
        let mut at_b = collect::<Blob>(&b);
        let mut at_c = collect::<Blob>(&c);
        let to_b_proxy = Proxy::start(b.local_addr()).await;
        let to_c_proxy = Proxy::start(c.local_addr()).await;
        let a = builder(1)
            .send_limits(limits)
            .heartbeat(patient_heartbeat())
            .peer(NodeId(2), to_b_proxy.addr())
            .peer(NodeId(3), to_c_proxy.addr())
            .start()
            .await
            .unwrap();
        let to_b = a.peer(NodeId(2));
        let to_c = a.peer(NodeId(3));

        // Connected first: a stalled proxy would hold the handshake too.
        assert_eq!(to_b.send(Blob::new(10, 0)).await, Ok(Sent::Acknowledged));
        assert_eq!(to_c.send(Blob::new(10, 0)).await, Ok(Sent::Acknowledged));
        recv_n(&mut at_b, 1).await;
        recv_n(&mut at_c, 1).await;
        to_b_proxy.stall();
        to_c_proxy.stall();

        let start = Instant::now();
        let (taken_b, error, snapshot) = fill(&to_b).await;
        assert_eq!(
            error,
            SendError::Overloaded(OverloadLevel::Endpoint),
            "{snapshot:?}"
        );
        log::info!(
            "peer 2: overloaded after {} messages in {:?}",
            taken_b.len(),
            start.elapsed()
        );
        let reserves = a.limits().await.send;
        let at_2 = reserves
            .endpoints
            .iter()
            .find(|(peer, _)| *peer == NodeId(2))
            .map_or(0, |(_, bytes)| *bytes);
        assert!(
            at_2 > limits.endpoint_reserve - 16 * KIB && at_2 <= limits.endpoint_reserve,
            "the endpoint reserve is (nearly) full: {reserves:?}"
        );
        assert!(snapshot.pending_bytes <= limits.link_capacity + limits.endpoint_reserve);

        let (taken_c, error, snapshot) = fill(&to_c).await;
        assert_eq!(
            error,
            SendError::Overloaded(OverloadLevel::Global),
            "{snapshot:?}"
        );
        log::info!(
            "peer 3: overloaded after {} messages in {:?}",
            taken_c.len(),
            start.elapsed()
        );
        let reserves = a.limits().await.send;
        assert!(
            reserves.global_in_use > limits.global_reserve - 16 * KIB
                && reserves.global_in_use <= limits.global_reserve,
            "the global reserve is (nearly) full: {reserves:?}"
        );
        assert!(
            reserves.global_peak <= limits.global_reserve,
            "{reserves:?}"
        );
        assert!(
            reserves.endpoint_peak <= limits.endpoint_reserve,
            "{reserves:?}"
        );
        // The first peer is still refused at its endpoint reserve (checked first).
        assert_eq!(
            to_b.try_send(Blob::new(16 * KIB, 0)).err(),
            Some(SendError::Overloaded(OverloadLevel::Endpoint))
        );

        to_b_proxy.resume();
        to_c_proxy.resume();
        let (n_b, n_c) = (taken_b.len(), taken_c.len());
        for (peer, taken) in [(2, taken_b), (3, taken_c)] {
            for outcome in taken {
                let (result, _) = match tokio::time::timeout(support::WAIT, outcome).await {
                    Ok(done) => done.expect("the outcome task runs"),
                    // What the links and the receiver were doing, for the log.
                    Err(_) => panic!(
                        "timed out waiting for a stalled message to {peer}; links {:#?}; \
                         sender's limits {:#?}; receivers' refusals {:?} {:?}",
                        a.links().await,
                        a.limits().await,
                        b.refused_connections().await,
                        c.refused_connections().await,
                    ),
                };
                assert_eq!(result, Ok(Sent::Acknowledged), "to {peer}");
            }
        }
        assert_eq!(recv_n(&mut at_b, n_b).await.len(), n_b);
        assert_eq!(recv_n(&mut at_c, n_c).await.len(), n_c);

        poll_until("the reserves to be given back", || async {
            let metrics = a.metrics().await;
            let held: usize = metrics.links.iter().map(|s| s.reserve_bytes).sum();
            let pending: usize = metrics.links.iter().map(|s| s.pending_bytes).sum();
            let send = &metrics.limits.send;
            if send.global_in_use == 0 && send.endpoints.is_empty() && held == 0 && pending == 0 {
                Ok(())
            } else {
                Err((send.clone(), held, pending))
            }
        })
        .await;
        let overloaded: Vec<_> = a
            .links()
            .await
            .iter()
            .filter(|s| s.kind == LinkKind::Small)
            .map(|s| {
                let mut reasons: Vec<_> = s.counters.failed.keys().copied().collect();
                reasons.sort_unstable();
                (s.peer, reasons)
            })
            .collect();
        // The senders were refused credit; the links refused nothing they took.
        assert_eq!(overloaded, vec![(NodeId(2), vec![]), (NodeId(3), vec![])]);
    })
    .await;
}
