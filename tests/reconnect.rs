//! Links that lose their peer: a peer down at the first send, a connection cut or
//! corrupted mid-stream (through a fault-injecting proxy, `support::Proxy`), a peer
//! node restarted, a peer address that names another node, and heartbeats that
//! measure round trips and reset stalled connections (idle, or blocked in a write).
//!
//! Links are lossy for now: what a failed connection carried may be lost (its sender
//! was told it was written, or that it may be lost). The tests check that what
//! arrives is in order without duplicates, that losses are one run at the failure,
//! and that everything written after the reconnection arrives.
#![cfg(feature = "serde")]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use internode::node::{Node, Peer, SendError, Sent};
use internode::session::{BackoffConfig, DisconnectReason, HeartbeatConfig, LinkEvent, LinkPolicy};
use internode::{LinkKind, NodeId};
use support::{
    bounded, builder, collect, join_all, node, poll_until, recv_n, reserve_port, start_on, within,
    CorruptAt, Events, Proxy, Seq, POLL,
};
use tokio::sync::mpsc;

const B: NodeId = NodeId(2);

/// Asserts that the numbers received are strictly increasing (no duplicate, no
/// reordering) and returns them.
fn strictly_increasing(received: &[(NodeId, Seq)]) -> Vec<u64> {
    let seqs: Vec<u64> = received.iter().map(|(_, Seq(s))| *s).collect();
    for pair in seqs.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{} then {}: a duplicate or a reordering",
            pair[0],
            pair[1]
        );
    }
    seqs
}

/// Receives into `received` until a message numbered `n` or more arrives.
async fn receive_past(
    inbox: &mut mpsc::UnboundedReceiver<(NodeId, Seq)>,
    n: u64,
    received: &mut Vec<(NodeId, Seq)>,
) {
    within(&format!("message {n} or later"), async {
        loop {
            let m = inbox.recv().await.expect("the collector lives");
            let past = m.1 .0 >= n;
            received.push(m);
            if past {
                return;
            }
        }
    })
    .await
}

/// Node B, a proxy in front of it, and node A knowing B at the proxy, with A's link
/// events and its handle on B.
async fn through_proxy() -> (Node, Node, Proxy, Events, Peer) {
    let b = node(2).await;
    let proxy = Proxy::start(b.local_addr()).await;
    let a = node(1).await;
    let events = Events::subscribe(&a).await;
    a.add_peer(B, proxy.addr()).await;
    let to_b = a.peer(B);
    to_b.ready().await.unwrap();
    (a, b, proxy, events, to_b)
}

#[actix::test]
async fn a_peer_down_at_the_first_send_gets_everything_once_it_is_up() {
    bounded(async {
        const N: u64 = 500;
        let b_addr = reserve_port();
        let a = node(1).await;
        let mut events = Events::subscribe(&a).await;
        a.add_peer(B, b_addr).await;
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();
        let outcomes: Vec<_> = (0..N).map(|seq| to_b.send(Seq(seq))).collect();

        // Nothing listens: the link backs off and retries, more than once.
        for attempt in 1..=2 {
            events
                .wait_for("a failed connect", B, LinkKind::Small, |e| {
                    matches!(e, LinkEvent::Disconnected { .. })
                })
                .await;
            let retry = events
                .wait_for("a retry", B, LinkKind::Small, |e| {
                    matches!(e, LinkEvent::RetryScheduled { .. })
                })
                .await;
            let LinkEvent::RetryScheduled {
                attempt: next,
                delay,
            } = retry
            else {
                unreachable!()
            };
            assert_eq!(next, attempt + 1);
            assert!(
                delay <= Duration::from_secs(1),
                "the default backoff caps at 1 s"
            );
        }

        let b = start_on(builder(2), b_addr).await;
        let mut inbox = collect::<Seq>(&b);
        for outcome in join_all(outcomes).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        events
            .wait_for("the connection", B, LinkKind::Small, |e| {
                *e == LinkEvent::Connected
            })
            .await;
        let received = recv_n(&mut inbox, N as usize).await;
        assert_eq!(strictly_increasing(&received), (0..N).collect::<Vec<_>>());
        let snapshot = a.links().await;
        let small = snapshot.iter().find(|s| s.kind == LinkKind::Small).unwrap();
        assert!(small.counters.connection_attempts >= 3);
        assert_eq!(small.counters.connections, 1);
        assert_eq!(small.counters.written, N);
    })
    .await;
}

/// The gaps in `seqs` (strictly increasing) within `first..=last`, as inclusive ranges.
fn gaps(seqs: &[u64], first: u64, last: u64) -> Vec<(u64, u64)> {
    let mut gaps = Vec::new();
    let mut expected = first;
    for &s in seqs.iter().filter(|s| (first..=last).contains(*s)) {
        if s > expected {
            gaps.push((expected, s - 1));
        }
        expected = s + 1;
    }
    if expected <= last {
        gaps.push((expected, last));
    }
    gaps
}

/// A is connected to B through a proxy, which cuts the connection while A streams.
/// The links are lossy: what the old connection carried but B had not read is lost
/// (and was reported written or lost, never silently dropped by A). What arrives is a
/// prefix of the stream and then everything written on the new connection: one gap at
/// most, no duplicate, no reordering; everything sent after the reconnect arrives.
#[actix::test]
async fn a_connection_cut_mid_stream_is_reconnected() {
    bounded(async {
        let (a, b, proxy, mut events, to_b) = through_proxy().await;
        let mut inbox = collect::<Seq>(&b);

        // A producer streams in small batches until told to stop, and keeps every
        // message's outcome.
        let next = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let (to_b, next, stop) = (to_b.clone(), next.clone(), stop.clone());
            actix::spawn(async move {
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let batch: Vec<_> = (0..10)
                        .map(|_| {
                            let seq = next.fetch_add(1, Ordering::SeqCst);
                            (seq, to_b.send(Seq(seq)))
                        })
                        .collect();
                    for (seq, outcome) in batch {
                        outcomes.push((seq, outcome.await));
                    }
                }
                outcomes
            })
        };

        let mut received = Vec::new();
        receive_past(&mut inbox, 1_000, &mut received).await;
        assert_eq!(proxy.cut(), 1, "one connection was open");
        let cut_at = next.load(Ordering::SeqCst);
        events
            .wait_for("the connection", B, LinkKind::Small, |e| {
                *e == LinkEvent::Connected
            })
            .await;
        let event = events
            .wait_for("the cut", B, LinkKind::Small, |e| {
                matches!(e, LinkEvent::Disconnected { .. })
            })
            .await;
        assert!(
            matches!(
                event,
                LinkEvent::Disconnected {
                    reason: DisconnectReason::PeerClosed | DisconnectReason::Io(_)
                }
            ),
            "{event:?}"
        );
        events
            .wait_for("a retry", B, LinkKind::Small, |e| {
                matches!(e, LinkEvent::RetryScheduled { .. })
            })
            .await;
        events
            .wait_for("the reconnection", B, LinkKind::Small, |e| {
                *e == LinkEvent::Connected
            })
            .await;
        // Sent from now on: over the new connection.
        let reconnected_at = next.load(Ordering::SeqCst);
        receive_past(&mut inbox, reconnected_at + 1_000, &mut received).await;
        stop.store(true, Ordering::SeqCst);
        let outcomes = producer.await.unwrap();
        let last = outcomes.last().unwrap().0;
        receive_past(&mut inbox, last, &mut received).await;
        assert!(inbox.try_recv().is_err(), "no extra messages");

        let seqs = strictly_increasing(&received);
        assert_eq!(seqs.last(), Some(&last));
        let gaps = gaps(&seqs, 0, last);
        assert_eq!(gaps, [], "a lossless link loses nothing at a cut");
        let mut reported_lost = 0;
        for (seq, outcome) in &outcomes {
            match outcome {
                Ok(Sent::Acknowledged) => {}
                Err(SendError::ConnectionLost) => reported_lost += 1,
                other => panic!("message {seq}: unexpected outcome {other:?}"),
            }
        }
        assert_eq!(reported_lost, 0, "every message acknowledged");
        log::info!(
            "cut after {cut_at} sent; reconnected at {reconnected_at}; lost {gaps:?}, \
             {reported_lost} reported lost; {last} sent in all"
        );
        let small = a.links().await;
        let small = small.iter().find(|s| s.kind == LinkKind::Small).unwrap();
        assert_eq!(small.counters.connections, 2);
    })
    .await;
}

/// Sends 0..100 one message per write (so one frame per write), has the proxy flip
/// a bit at `at` in the next chunk, sends 100..300 the same way, then sends until a
/// message arrives (the connection may have been reset). Returns the numbers
/// received (checked strictly increasing), the gaps among 0..300, and A's link events.
async fn corrupt_one_chunk(
    at: CorruptAt,
    policy: LinkPolicy,
) -> (Vec<u64>, Vec<(u64, u64)>, Vec<LinkEvent>) {
    const N: u64 = 300;
    let b = node(2).await;
    let mut inbox = collect::<Seq>(&b);
    let proxy = Proxy::start(b.local_addr()).await;
    // No keepalive during the test: the corrupted chunk carries messages.
    let a = builder(1)
        .heartbeat(
            HeartbeatConfig::default()
                .interval(Duration::from_secs(20))
                .timeout(Duration::from_secs(60)),
        )
        .link_policy(LinkKind::Small, policy)
        .start()
        .await
        .unwrap();
    let sent = match policy {
        LinkPolicy::Lossless => Sent::Acknowledged,
        _ => Sent::Written,
    };
    let mut events = Events::subscribe(&a).await;
    a.add_peer(B, proxy.addr()).await;
    let to_b = a.peer(B);
    for seq in 0..100 {
        assert_eq!(to_b.send(Seq(seq)).await, Ok(sent));
    }
    let mut received = recv_n(&mut inbox, 100).await;

    proxy.corrupt_next(at);
    for seq in 100..N {
        let outcome = to_b.send(Seq(seq)).await;
        match policy {
            LinkPolicy::Lossless => assert_eq!(outcome, Ok(sent), "{seq}"),
            _ => assert!(
                matches!(outcome, Ok(Sent::Written) | Err(SendError::ConnectionLost)),
                "{outcome:?}"
            ),
        }
    }
    assert!(!proxy.corruption_pending(), "a chunk was corrupted");

    let mut last = N;
    'until_delivered: loop {
        let outcome = to_b.send(Seq(last)).await;
        if outcome == Ok(sent) {
            let wait = tokio::time::timeout(Duration::from_secs(1), async {
                loop {
                    let m = inbox.recv().await.unwrap();
                    let done = m.1 .0 == last;
                    received.push(m);
                    if done {
                        return;
                    }
                }
            })
            .await;
            if wait.is_ok() {
                break 'until_delivered;
            }
        }
        last += 1;
        assert!(last < N + 20, "the link never recovered");
    }
    let seqs = strictly_increasing(&received);
    let gaps = gaps(&seqs, 0, N - 1);
    (seqs, gaps, events.of(B, LinkKind::Small))
}

/// A bit flipped in a frame's payload CRC on a lossy link: that frame (one message)
/// is skipped and the connection stays up.
#[actix::test]
async fn a_corrupt_payload_on_a_lossy_link_skips_its_frame_and_keeps_the_connection() {
    bounded(async {
        let (seqs, gaps, events) = corrupt_one_chunk(CorruptAt::LastByte, LinkPolicy::Lossy).await;
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        let (from, to) = gaps[0];
        assert!(from >= 100, "lost {from}..={to}, before the corruption");
        assert_eq!(from, to, "one frame, one message lost");
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, LinkEvent::Disconnected { .. })),
            "the connection stayed up: {events:?}"
        );
        assert_eq!(seqs.last(), Some(&300), "the first message after arrived");
    })
    .await;
}

/// A bit flipped in a frame's payload CRC on a lossless link: the receiver resets the
/// connection, the link reconnects and writes again what was not acknowledged:
/// nothing is lost, nothing is delivered twice.
#[actix::test]
async fn a_corrupt_payload_on_a_lossless_link_resets_and_is_recovered_by_replay() {
    bounded(async {
        let (seqs, gaps, events) =
            corrupt_one_chunk(CorruptAt::LastByte, LinkPolicy::Lossless).await;
        assert_eq!(gaps, [], "nothing lost");
        let disconnected = events
            .iter()
            .position(|e| matches!(e, LinkEvent::Disconnected { .. }))
            .unwrap_or_else(|| panic!("the connection was reset: {events:?}"));
        assert!(events[disconnected..].contains(&LinkEvent::Connected));
        assert_eq!(seqs.len(), 301, "0..=300, each once");
    })
    .await;
}

/// A bit flipped in a frame header: frame boundaries are lost, the receiver resets
/// the connection, the link reconnects; on a lossless link nothing is lost.
#[actix::test]
async fn a_corrupt_frame_header_resets_the_connection() {
    bounded(async {
        let (_, gaps, events) = corrupt_one_chunk(CorruptAt::FirstByte, LinkPolicy::Lossless).await;
        assert_eq!(gaps, [], "nothing lost");
        let disconnected = events
            .iter()
            .position(|e| matches!(e, LinkEvent::Disconnected { .. }))
            .unwrap_or_else(|| panic!("the connection was reset: {events:?}"));
        assert!(
            events[disconnected..].contains(&LinkEvent::Connected),
            "and reconnected: {events:?}"
        );
    })
    .await;
}

/// Node B closes (the process "dies") and a new node B starts on the same address:
/// A's link reconnects and delivers what it sends afterwards.
#[actix::test]
async fn a_restarted_peer_is_reconnected() {
    bounded(async {
        let b = node(2).await;
        let b_addr = b.local_addr();
        let mut inbox = collect::<Seq>(&b);
        let a = node(1).await;
        let mut events = Events::subscribe(&a).await;
        a.add_peer(B, b_addr).await;
        let to_b = a.peer(B);
        let outcomes: Vec<_> = (0..100).map(|seq| to_b.send(Seq(seq))).collect();
        for outcome in join_all(outcomes).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        let received = recv_n(&mut inbox, 100).await;
        assert_eq!(strictly_increasing(&received), (0..100).collect::<Vec<_>>());

        b.close(false).await;
        drop(b);
        events
            .wait_for("the peer's death", B, LinkKind::Small, |e| {
                matches!(e, LinkEvent::Disconnected { .. })
            })
            .await;
        // While B is down, messages wait (and the link keeps retrying).
        let waiting: Vec<_> = (100..200).map(|seq| to_b.send(Seq(seq))).collect();
        events
            .wait_for("a retry", B, LinkKind::Small, |e| {
                matches!(e, LinkEvent::RetryScheduled { .. })
            })
            .await;

        let b = start_on(builder(2), b_addr).await;
        let mut inbox = collect::<Seq>(&b);
        events
            .wait_for("the reconnection", B, LinkKind::Small, |e| {
                *e == LinkEvent::Connected
            })
            .await;
        for outcome in join_all(waiting).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        let received = recv_n(&mut inbox, 100).await;
        assert_eq!(
            strictly_increasing(&received),
            (100..200).collect::<Vec<_>>()
        );
    })
    .await;
}

/// With a short heartbeat interval, an idle link measures its round-trip time; when
/// the proxy stalls, the link reads nothing and times out; a message sent meanwhile
/// keeps it retrying, and it reconnects and delivers once the stall is lifted.
#[actix::test]
async fn heartbeats_measure_rtt_and_reset_a_stalled_connection() {
    bounded(async {
        let heartbeat = HeartbeatConfig::default()
            .interval(Duration::from_millis(50))
            .timeout(Duration::from_secs(1));
        // B's inbound connection gives up after its own (default, 5 s) read timeout.
        let b = node(2).await;
        let mut inbox = collect::<Seq>(&b);
        let proxy = Proxy::start(b.local_addr()).await;
        let a = builder(1)
            .heartbeat(heartbeat)
            .handshake_timeout(Duration::from_millis(300))
            .backoff(BackoffConfig::new(
                Duration::from_millis(50),
                Duration::from_millis(200),
                2,
            ))
            .start()
            .await
            .unwrap();
        let mut events = Events::subscribe(&a).await;
        a.add_peer(B, proxy.addr()).await;
        assert_eq!(a.send(B, Seq(0)).await, Ok(Sent::Acknowledged));
        recv_n(&mut inbox, 1).await;

        // Idle: keepalives give a round-trip time (no event reports it: poll).
        let rtt = within("an rtt", async {
            loop {
                let links = a.links().await;
                if let Some(rtt) = links
                    .iter()
                    .find(|s| s.kind == LinkKind::Small)
                    .and_then(|s| s.rtt)
                {
                    return rtt;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        assert!(rtt < Duration::from_secs(1), "{rtt:?}");

        proxy.stall();
        let stalled_at = tokio::time::Instant::now();
        let event = events
            .wait_for("the read timeout", B, LinkKind::Small, |e| {
                matches!(e, LinkEvent::Disconnected { .. })
            })
            .await;
        let LinkEvent::Disconnected {
            reason: DisconnectReason::ReadTimeout { silent_for_ms },
        } = event
        else {
            panic!("expected a read timeout, got {event:?}");
        };
        assert!(silent_for_ms >= 1000, "{silent_for_ms}");
        assert!(stalled_at.elapsed() >= Duration::from_millis(900));
        // A message waits while the reconnects get no handshake through the stall
        // (with nothing waiting, the link would go dormant after one attempt).
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();
        let waiting = to_b.send(Seq(1));
        for _ in 0..2 {
            events
                .wait_for("a failed reconnect", B, LinkKind::Small, |e| {
                    *e == LinkEvent::Disconnected {
                        reason: DisconnectReason::HandshakeTimeout,
                    }
                })
                .await;
            events
                .wait_for("a retry", B, LinkKind::Small, |e| {
                    matches!(e, LinkEvent::RetryScheduled { .. })
                })
                .await;
        }

        proxy.resume();
        events
            .wait_for("the reconnection", B, LinkKind::Small, |e| {
                *e == LinkEvent::Connected
            })
            .await;
        assert_eq!(waiting.await, Ok(Sent::Acknowledged));
        let received = recv_n(&mut inbox, 1).await;
        assert_eq!(received, vec![(NodeId(1), Seq(1))]);
    })
    .await;
}

/// The address configured for B belongs to another node (C): the handshake shows it,
/// nothing is delivered to C, and the link retries. Once B's address is corrected,
/// the waiting messages go to B.
#[actix::test]
async fn a_wrong_address_is_detected_and_a_corrected_one_gets_the_queued_messages() {
    bounded(async {
        let b = node(2).await;
        let c = node(3).await;
        let mut at_b = collect::<Seq>(&b);
        let mut at_c = collect::<Seq>(&c);
        let a = node(1).await;
        let mut events = Events::subscribe(&a).await;
        a.add_peer(B, c.local_addr()).await;
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();
        let outcomes: Vec<_> = (0..100).map(|seq| to_b.send(Seq(seq))).collect();

        for _ in 0..2 {
            let event = events
                .wait_for("a refused attempt", B, LinkKind::Small, |e| {
                    matches!(e, LinkEvent::Disconnected { .. })
                })
                .await;
            assert_eq!(
                event,
                LinkEvent::Disconnected {
                    reason: DisconnectReason::WrongPeer {
                        expected: NodeId(2),
                        found: NodeId(3)
                    }
                }
            );
            events
                .wait_for("a retry", B, LinkKind::Small, |e| {
                    matches!(e, LinkEvent::RetryScheduled { .. })
                })
                .await;
        }

        a.add_peer(B, b.local_addr()).await;
        events
            .wait_for("the connection", B, LinkKind::Small, |e| {
                *e == LinkEvent::Connected
            })
            .await;
        for outcome in join_all(outcomes).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        let received = recv_n(&mut at_b, 100).await;
        assert_eq!(strictly_increasing(&received), (0..100).collect::<Vec<_>>());
        assert!(at_c.try_recv().is_err(), "nothing went to the wrong node");
    })
    .await;
}

/// A numbered 10 KiB message, encoded by hand (no serde pass over every byte: the
/// test's single thread must keep up with the heartbeats).
#[derive(Debug, Clone, PartialEq)]
struct Chunk {
    seq: u64,
    data: bytes::Bytes,
}

impl internode::message::Message for Chunk {
    const VERB: u32 = 1020;

    fn encode(&self, dst: &mut bytes::BytesMut) -> Result<(), internode::message::EncodeError> {
        dst.extend_from_slice(&self.seq.to_le_bytes());
        dst.extend_from_slice(&self.data);
        Ok(())
    }

    fn decode(mut payload: bytes::Bytes) -> Result<Self, internode::message::DecodeError> {
        use bytes::Buf;
        if payload.len() < 8 {
            return Err(internode::message::DecodeError::custom("short chunk"));
        }
        let seq = payload.get_u64_le();
        Ok(Chunk { seq, data: payload })
    }
}

/// A stream into a stalled connection: writes block (the link shows unflushed bytes
/// and a growing queue), the unwritable timeout resets the connection, and once the stall
/// is lifted the queue is delivered on a new connection. What the old connection
/// carried may be lost; what arrives is in order, without duplicates.
#[actix::test]
async fn a_stream_into_a_stalled_connection_is_reset_and_resumed() {
    bounded(async {
        const N: u64 = 2_000;
        let b = node(2).await;
        let mut inbox = collect::<Chunk>(&b);
        let proxy = Proxy::start(b.local_addr()).await;
        let a = builder(1)
            .heartbeat(HeartbeatConfig::new(
                Duration::from_millis(50),
                Duration::from_secs(1),
                Duration::from_secs(1),
            ))
            .handshake_timeout(Duration::from_millis(300))
            .backoff(BackoffConfig::new(
                Duration::from_millis(50),
                Duration::from_millis(200),
                2,
            ))
            .start()
            .await
            .unwrap();
        let mut events = Events::subscribe(&a).await;
        a.add_peer(B, proxy.addr()).await;
        let to_b = a.peer(B);
        let chunk = |seq| Chunk {
            seq,
            data: vec![seq as u8; 10 * 1024].into(),
        };
        assert_eq!(to_b.send(chunk(0)).await, Ok(Sent::Acknowledged));
        recv_n(&mut inbox, 1).await;

        proxy.stall();
        // Spawned: beyond the link's credit, a send waits until polled.
        let outcomes: Vec<_> = (1..=N)
            .map(|seq| actix::spawn(to_b.send(chunk(seq))))
            .collect();
        // 20 MiB do not fit in the sockets' buffers: a write blocks.
        within("a blocked write", async {
            loop {
                let links = a.links().await;
                let small = links.iter().find(|s| s.kind == LinkKind::Small).unwrap();
                if small.unflushed_bytes > 0 && small.queued > 0 {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        let event = events
            .wait_for("the reset", B, LinkKind::Small, |e| {
                matches!(e, LinkEvent::Disconnected { .. })
            })
            .await;
        assert!(
            matches!(
                event,
                LinkEvent::Disconnected {
                    reason: DisconnectReason::WriteTimeout { .. }
                }
            ),
            "a blocked write is what times out: {event:?}"
        );
        events
            .wait_for("a failed reconnect", B, LinkKind::Small, |e| {
                *e == LinkEvent::Disconnected {
                    reason: DisconnectReason::HandshakeTimeout,
                }
            })
            .await;

        proxy.resume();
        events
            .wait_for("the reconnection", B, LinkKind::Small, |e| {
                *e == LinkEvent::Connected
            })
            .await;
        let mut lost = 0;
        for outcome in join_all(outcomes).await {
            let outcome = outcome.expect("the send task runs");
            match outcome {
                Ok(Sent::Acknowledged) => {}
                Err(SendError::ConnectionLost) => lost += 1,
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        let mut seqs = vec![0];
        within("the last message", async {
            while *seqs.last().unwrap() != N {
                let (_, chunk) = inbox.recv().await.unwrap();
                assert!(chunk.data.iter().all(|b| *b == chunk.seq as u8));
                seqs.push(chunk.seq);
            }
        })
        .await;
        for pair in seqs.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        let gaps = gaps(&seqs, 0, N);
        log::info!("{lost} reported lost; lost {gaps:?}");
        assert!(gaps.len() <= 1, "{gaps:?}");
    })
    .await;
}

/// On a lossy link, a write that blocks on a stalled connection (a message larger
/// than the sockets' buffers) keeps keepalives queued behind it. When the unwritable
/// timeout resets the connection, the message fails (possibly lost) and nothing the
/// application sent waits: the link goes dormant at once (no retry with nothing to
/// send), and a new message wakes it.
#[actix::test]
async fn an_idle_link_whose_connection_stalled_goes_dormant() {
    bounded(async {
        let b = node(2).await;
        let mut inbox = collect::<Seq>(&b);
        let proxy = Proxy::start(b.local_addr()).await;
        let a = builder(1)
            .heartbeat(HeartbeatConfig::new(
                Duration::from_millis(50),
                Duration::from_millis(500),
                Duration::from_millis(500),
            ))
            .handshake_timeout(Duration::from_millis(300))
            .link_policy(LinkKind::Large, LinkPolicy::Lossy)
            .start()
            .await
            .unwrap();
        let mut events = Events::subscribe(&a).await;
        a.add_peer(B, proxy.addr()).await;
        let to_b = a.peer(B);
        let big = Chunk {
            seq: 1,
            data: vec![1; 16 << 20].into(),
        };
        assert_eq!(
            to_b.send(Chunk {
                seq: 0,
                data: vec![0; 100_000].into()
            })
            .await,
            Ok(Sent::Written)
        );

        proxy.stall();
        // Spawned: beyond the link's credit, a send waits until polled.
        let outcome = actix::spawn(to_b.send(big));
        events
            .wait_for("the write timeout", B, LinkKind::Large, |e| {
                matches!(
                    e,
                    LinkEvent::Disconnected {
                        reason: DisconnectReason::WriteTimeout { .. }
                    }
                )
            })
            .await;
        assert_eq!(outcome.await.unwrap(), Err(SendError::ConnectionLost));
        events
            .wait_for("the link to go dormant", B, LinkKind::Large, |e| {
                *e == LinkEvent::Dormant
            })
            .await;

        proxy.resume();
        assert_eq!(to_b.send(Seq(2)).await, Ok(Sent::Acknowledged));
        let (_, first) = within("a message", inbox.recv()).await.unwrap();
        assert_eq!(first, Seq(2));
    })
    .await;
}

/// A bit flipped inside a large message (cut into many frames): the receiver resets
/// the connection; the lossless link writes the message again on the next one, so
/// it arrives intact, once, before the next one.
#[actix::test]
async fn a_corrupt_frame_inside_a_large_message_is_recovered_by_replay() {
    bounded(async {
        let (_a, b, proxy, mut events, to_b) = through_proxy().await;
        let mut inbox = collect::<Chunk>(&b);
        let chunk = |seq: u64, len: usize| Chunk {
            seq,
            data: vec![seq as u8; len].into(),
        };
        assert_eq!(to_b.send(chunk(0, 100_000)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await[0].1.seq, 0);

        proxy.corrupt_next(CorruptAt::Middle);
        let damaged = to_b.send(chunk(1, 1 << 20));
        assert_eq!(damaged.await, Ok(Sent::Acknowledged));
        events
            .wait_for("the reset", B, LinkKind::Large, |e| {
                matches!(e, LinkEvent::Disconnected { .. })
            })
            .await;
        assert!(!proxy.corruption_pending());

        assert_eq!(to_b.send(chunk(2, 1 << 20)).await, Ok(Sent::Acknowledged));
        for seq in [1, 2] {
            let (_, next) = within("the next message", inbox.recv()).await.unwrap();
            assert_eq!(next.seq, seq, "in order, once");
            assert!(next.data.len() == 1 << 20 && next.data.iter().all(|b| *b == seq as u8));
        }
        assert!(inbox.try_recv().is_err(), "no duplicate");
    })
    .await;
}

/// A peer that connects to this node wakes this node's links to it: a link waiting out
/// a long backoff reconnects at once, not when its retry timer fires.
#[actix::test]
async fn a_peer_that_comes_back_is_reconnected_without_waiting_out_the_backoff() {
    bounded(async {
        let b_addr = reserve_port();
        let a = builder(1)
            .backoff(BackoffConfig::new(
                Duration::from_secs(6),
                Duration::from_secs(6),
                1,
            ))
            .start()
            .await
            .unwrap();
        let mut events = Events::subscribe(&a).await;
        a.add_peer(B, b_addr).await;
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();
        let queued = to_b.send(Seq(1));
        events
            .wait_for("the first attempt to fail", B, LinkKind::Small, |e| {
                matches!(e, LinkEvent::RetryScheduled { .. })
            })
            .await;

        // B comes up and talks to A first: A's link to B connects at once (its retry
        // is 3-6 s away).
        let b = start_on(builder(2).peer(NodeId(1), a.local_addr()), b_addr).await;
        let mut inbox = collect::<Seq>(&b);
        let started = std::time::Instant::now();
        assert_eq!(b.send(NodeId(1), Seq(100)).await, Ok(Sent::Acknowledged));
        assert_eq!(
            within("the queued message", queued).await,
            Ok(Sent::Acknowledged)
        );
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(1), Seq(1))]);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "reconnected {:?} after the peer came back",
            started.elapsed()
        );
    })
    .await;
}

/// Changing a peer's address moves what was queued and what was written to the old
/// address but not acknowledged to the new one: everything is delivered once, in
/// order, also when the old path later delivers what it held.
#[actix::test]
async fn a_new_address_gets_the_queued_and_unacknowledged_messages_once() {
    bounded(async {
        let b = node(2).await;
        let mut inbox = collect::<Seq>(&b);
        let old = Proxy::start(b.local_addr()).await;
        let new = Proxy::start(b.local_addr()).await;
        let a = node(1).await;
        a.add_peer(B, old.addr()).await;
        let to_b = a.peer(B);
        assert_eq!(to_b.send(Seq(0)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await.len(), 1);

        // Written into the stalled old path, never acknowledged.
        old.stall();
        let outcomes: Vec<_> = (1..200).map(|n| to_b.send(Seq(n))).collect();
        poll_until("the messages to be written", || async {
            let links = a.links().await;
            let small = links.iter().find(|l| l.kind == LinkKind::Small).unwrap();
            if small.queued == 0 && small.in_flight == 199 {
                Ok(())
            } else {
                Err((small.queued, small.in_flight))
            }
        })
        .await;
        a.add_peer(B, new.addr()).await;
        for outcome in join_all(outcomes).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        let received = recv_n(&mut inbox, 199).await;
        assert_eq!(strictly_increasing(&received), (1..200).collect::<Vec<_>>());
        // The old path lets its bytes through now: the receiver already replaced that
        // connection, so nothing arrives twice.
        old.resume();
        assert_eq!(to_b.send(Seq(200)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(1), Seq(200))]);
        assert!(inbox.try_recv().is_err());
    })
    .await;
}

/// A lossless link whose connection is lost with nothing unacknowledged goes
/// dormant (no reconnect loop), and the next message resumes the same session: no
/// `PeerRestarted`, nothing delivered twice.
#[actix::test]
async fn a_lossless_link_with_nothing_unacknowledged_goes_dormant_after_a_cut() {
    bounded(async {
        let (_a, b, proxy, mut events, to_b) = through_proxy().await;
        let mut inbox = collect::<Seq>(&b);
        assert_eq!(to_b.send(Seq(1)).await, Ok(Sent::Acknowledged));
        proxy.cut();
        events
            .wait_for("the link to go dormant", B, LinkKind::Small, |e| {
                *e == LinkEvent::Dormant
            })
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            proxy.accepted(),
            1,
            "no reconnect attempt with nothing to send"
        );
        assert_eq!(to_b.send(Seq(2)).await, Ok(Sent::Acknowledged));
        assert_eq!(
            recv_n(&mut inbox, 2).await,
            vec![(NodeId(1), Seq(1)), (NodeId(1), Seq(2))]
        );
        assert!(!events
            .take_arrived()
            .iter()
            .any(|n| matches!(n.event, LinkEvent::PeerRestarted { .. })));
    })
    .await;
}
