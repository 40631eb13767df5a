//! Idle links cost nothing: per peer one link keeps the peer alive (the urgent one
//! when connected), the others stay silent without being reset by the receiving side,
//! and links idle for `NodeBuilder::idle_timeout` close their connections and resume
//! their sessions with the next message: in order, nothing lost, no `PeerRestarted`.
#![cfg(feature = "serde")]

mod support;

use std::time::Duration;

use internode::node::{CloseLink, LinkSnapshot, Node, Sent};
use internode::session::{DisconnectReason, HeartbeatConfig, LinkEvent, LinkState};
use internode::{LinkKind, NodeId};
use serde::{Deserialize, Serialize};
use support::{bounded, builder, collect, poll_until, recv_n, Events, Seq};

const B: NodeId = NodeId(2);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Alarm(u64);
internode::message!(Alarm, verb = 1201, urgent);

/// Nodes 1 and 2 with `idle_timeout`, node 1 with `heartbeat`, node 2 (which only
/// receives) with `receiver`'s read timeout; node 1 knows node 2.
async fn two_nodes(
    heartbeat: HeartbeatConfig,
    receiver: HeartbeatConfig,
    idle: Option<Duration>,
) -> (Node, Node) {
    let b = builder(2)
        .heartbeat(receiver)
        .idle_timeout(idle)
        .start()
        .await
        .unwrap();
    let a = builder(1)
        .heartbeat(heartbeat)
        .idle_timeout(idle)
        .start()
        .await
        .unwrap();
    a.add_peer(B, b.local_addr()).await;
    (a, b)
}

async fn link(node: &Node, kind: LinkKind) -> Option<LinkSnapshot> {
    node.links()
        .await
        .into_iter()
        .find(|s| s.peer == B && s.kind == kind)
}

/// Sends `range` as urgent `Alarm`s and small `Seq`s, interleaved: all acknowledged.
async fn send_both(a: &Node, range: std::ops::Range<u64>) {
    let to_b = a.peer(B);
    for n in range {
        assert_eq!(
            to_b.send(Alarm(n)).await,
            Ok(Sent::Acknowledged),
            "alarm {n}"
        );
        assert_eq!(to_b.send(Seq(n)).await, Ok(Sent::Acknowledged), "seq {n}");
    }
}

/// With no idle timeout, an idle peer is kept alive by its urgent link alone: the
/// small link stays connected and silent, and the receiving side, whose read timeout
/// is a fraction of the time it stays silent, does not reset it. When the urgent link
/// goes, the small link takes the keepalive over.
#[actix::test]
async fn one_link_keeps_an_idle_peer_alive_and_the_others_stay_silent() {
    bounded(async {
        // The sender tolerates a loaded machine; the receiver's read timeout is short.
        // The idle keeper pings at 50 ms too (an idle interval as short as the
        // interval: not relaxed).
        let heartbeat = HeartbeatConfig::default()
            .interval(Duration::from_millis(50))
            .idle_interval(Duration::from_millis(50))
            .timeout(Duration::from_secs(3));
        let receiver = heartbeat.timeout(Duration::from_millis(100));
        let (a, b) = two_nodes(heartbeat, receiver, None).await;
        let mut alarms = collect::<Alarm>(&b);
        let mut seqs = collect::<Seq>(&b);
        let mut events = Events::subscribe(&a).await;
        send_both(&a, 0..10).await;
        recv_n(&mut alarms, 10).await;
        recv_n(&mut seqs, 10).await;

        // Idle: the keeper pings at the interval. Twenty round trips take at least
        // 1 s, ten of the receiving side's read timeouts.
        poll_until("twenty keepalive round trips", || async {
            let rtt = a.metrics().await.rtt.get(&B).map_or(0, |h| h.count());
            if rtt >= 20 {
                Ok(())
            } else {
                Err(rtt)
            }
        })
        .await;
        let urgent = link(&a, LinkKind::Urgent).await.expect("the urgent link");
        let small = link(&a, LinkKind::Small).await.expect("the small link");
        assert!(urgent.keeper && !small.keeper, "{urgent:?}\n{small:?}");
        for s in [&urgent, &small] {
            assert!(matches!(s.state, LinkState::Connected { .. }), "{s:?}");
            assert_eq!(s.counters.connections, 1, "never reconnected: {s:?}");
        }
        assert_eq!(b.inbound_connections().await, 2, "nothing reset");
        assert_eq!(b.inbound_counters().await.connections, 2);
        let disconnects: Vec<_> = events
            .take_arrived()
            .iter()
            .filter(|n| matches!(n.event, LinkEvent::Disconnected { .. }))
            .cloned()
            .collect();
        assert!(disconnects.is_empty(), "{disconnects:?}");

        // The urgent link closes: the small one carries the keepalive from then on.
        let urgent_link = a.link(B, LinkKind::Urgent).await.unwrap();
        urgent_link.send(CloseLink::new(false)).await.unwrap();
        let small = poll_until("the small link to take the keepalive over", || async {
            match link(&a, LinkKind::Small).await {
                Some(s) if s.keeper && s.rtt.is_some() => Ok(s),
                other => Err(other),
            }
        })
        .await;
        assert_eq!(small.counters.connections, 1);
    })
    .await;
}

/// An idle peer's keeper pings at the idle interval (five intervals by default), not
/// at the interval: four keepalive round trips take at least three idle intervals.
#[actix::test]
async fn an_idle_peers_keeper_pings_at_the_idle_interval() {
    bounded(async {
        let heartbeat = HeartbeatConfig::default()
            .interval(Duration::from_millis(50))
            .timeout(Duration::from_secs(3));
        let relaxed = heartbeat.relaxed_interval();
        assert_eq!(relaxed, Duration::from_millis(250));
        let (a, b) = two_nodes(heartbeat, heartbeat, None).await;
        let mut alarms = collect::<Alarm>(&b);
        send_both(&a, 0..1).await;
        recv_n(&mut alarms, 1).await;
        let rtts = || async { a.metrics().await.rtt.get(&B).map_or(0, |h| h.count()) };
        let first = rtts().await;
        let start = std::time::Instant::now();
        poll_until("four keepalive round trips", || async {
            let n = rtts().await;
            if n >= first + 4 {
                Ok(())
            } else {
                Err(n)
            }
        })
        .await;
        // At the interval they would take about 0.2 s.
        let took = start.elapsed();
        assert!(took >= relaxed * 3, "four round trips in {took:?}");
        let urgent = link(&a, LinkKind::Urgent).await.expect("the urgent link");
        assert!(urgent.keeper);
        assert_eq!(urgent.counters.connections, 1, "never reconnected");
    })
    .await;
}

/// Idle links close their connections after the idle timeout (a clean close: the
/// link reports `Disconnected { Idle }` and `Dormant`, the receiving side sees the
/// connection end); the next messages reconnect and resume the sessions, in order,
/// nothing lost, no restart on either side.
#[actix::test]
async fn idle_links_are_pruned_and_resume_their_sessions() {
    bounded(async {
        let idle = Duration::from_millis(300);
        let heartbeat = HeartbeatConfig::default()
            .interval(Duration::from_millis(100))
            .timeout(Duration::from_secs(3));
        let (a, b) = two_nodes(heartbeat, heartbeat, Some(idle)).await;
        let mut alarms = collect::<Alarm>(&b);
        let mut seqs = collect::<Seq>(&b);
        let mut events = Events::subscribe(&a).await;
        send_both(&a, 0..10).await;

        // Both links close their connections (in either order).
        let pruned = poll_until("both links to go dormant", || {
            let seen = [LinkKind::Urgent, LinkKind::Small].map(|kind| events.of(B, kind));
            let done = seen.iter().all(|e| e.contains(&LinkEvent::Dormant));
            async move {
                if done {
                    Ok(seen)
                } else {
                    Err(seen)
                }
            }
        })
        .await;
        for seen in &pruned {
            let at = seen.iter().position(|e| *e == LinkEvent::Dormant).unwrap();
            let LinkEvent::Disconnected {
                reason: DisconnectReason::Idle { idle_for_ms },
            } = seen[at - 1]
            else {
                panic!("expected an idle close before dormancy: {seen:?}");
            };
            assert!(idle_for_ms >= 300, "after {idle_for_ms} ms: {seen:?}");
        }
        poll_until("the receiving side to see both connections end", || async {
            match b.inbound_connections().await {
                0 => Ok(()),
                n => Err(n),
            }
        })
        .await;
        for kind in [LinkKind::Urgent, LinkKind::Small] {
            let s = link(&a, kind).await.expect("the link stays, dormant");
            assert_eq!(s.state, LinkState::Dormant, "{s:?}");
            assert_eq!(s.active_connections, 0);
        }

        // The sessions resume: every message acknowledged and received once, in order.
        send_both(&a, 10..20).await;
        let alarms: Vec<u64> = recv_n(&mut alarms, 20)
            .await
            .into_iter()
            .map(|(_, m)| m.0)
            .collect();
        let seqs: Vec<u64> = recv_n(&mut seqs, 20)
            .await
            .into_iter()
            .map(|(_, m)| m.0)
            .collect();
        assert_eq!(alarms, (0..20).collect::<Vec<_>>());
        assert_eq!(seqs, (0..20).collect::<Vec<_>>());
        for kind in [LinkKind::Urgent, LinkKind::Small] {
            let s = link(&a, kind).await.unwrap();
            assert_eq!(s.counters.acknowledged, 20, "{s:?}");
            assert_eq!(s.counters.peer_restarts, 0, "{s:?}");
            assert_eq!(s.counters.replayed, 0, "nothing was in doubt: {s:?}");
            assert!(s.counters.connections >= 2, "reconnected: {s:?}");
            assert!(s.counters.failed.is_empty(), "{s:?}");
            let seen = events.of(B, kind);
            assert!(
                !seen
                    .iter()
                    .any(|e| matches!(e, LinkEvent::PeerRestarted { .. })),
                "{kind:?}: {seen:?}"
            );
            // Every disconnect was an idle close, none a failure.
            for e in &seen {
                if let LinkEvent::Disconnected { reason } = e {
                    assert!(
                        matches!(reason, DisconnectReason::Idle { .. }),
                        "{kind:?}: {seen:?}"
                    );
                }
            }
        }
        let received = b.inbound_counters().await;
        assert_eq!(received.peer_restarts, 0, "{received:?}");
        assert_eq!(received.duplicates, 0, "{received:?}");
        assert!(received.connections >= 4, "{received:?}");
    })
    .await;
}
