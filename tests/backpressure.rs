//! Receive limits push back on the sender: a receiver whose handler is slow, or keeps
//! the messages it gets, holds no more of them than its receive limits allow; its
//! connection stops reading until its handlers give bytes back, the sender's link
//! backs up, and yet every message written is delivered, in order, exactly once.
#![cfg(feature = "serde")]

mod support;

use std::cell::Cell;
use std::time::Duration;

use actix::prelude::*;
use internode::limits::Limits;
use internode::node::{InboundSnapshot, LinkSnapshot, Metrics, Node, Received, Sent};
use internode::session::HeartbeatConfig;
use internode::{LinkKind, NodeId};
use support::{bounded, builder, join_all, poll_until, within, Filled, POLL};
use tokio::sync::mpsc;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);
const KIB: usize = 1024;

/// The receiver's receive limits: small, so that a burst is many times larger.
const RECEIVE: Limits = Limits::new(64 * KIB, 256 * KIB, 512 * KIB);
/// The payload of each message.
const MESSAGE: usize = 4 * KIB;

/// The library's keepalive defaults (ping after 1 s idle, 5 s read timeout, 30 s
/// unwritable timeout): a throttled receiver must keep its sender's connection alive
/// with them.
const HEARTBEAT: HeartbeatConfig = HeartbeatConfig::new(
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
);

/// Node 2 with the small receive limits, and node 1 (default limits) that knows it.
async fn sender_and_receiver(heartbeat: HeartbeatConfig) -> (Node, Node) {
    let b = builder(2)
        .receive_limits(RECEIVE)
        .heartbeat(heartbeat)
        .start()
        .await
        .unwrap();
    let a = builder(1).heartbeat(heartbeat).start().await.unwrap();
    a.add_peer(B, b.local_addr()).await;
    (a, b)
}

fn small_link(m: &Metrics) -> Option<&LinkSnapshot> {
    m.links
        .iter()
        .find(|l| l.peer == B && l.kind == LinkKind::Small)
}

fn inbound_small(m: &Metrics) -> Option<&InboundSnapshot> {
    m.inbound
        .iter()
        .find(|i| i.peer == A && i.kind == LinkKind::Small)
}

/// Asserts that the receiver holds no more than its receive limits.
fn assert_within_receive_limits(m: &Metrics) {
    let receive = &m.limits.receive;
    assert!(
        receive.global_in_use <= RECEIVE.global_reserve,
        "global receive reserve in use: {receive:?}"
    );
    for &(peer, bytes) in &receive.endpoints {
        assert!(
            bytes <= RECEIVE.endpoint_reserve,
            "receive reserve in use for {peer}: {bytes}"
        );
    }
    for inbound in &m.inbound {
        assert!(
            inbound.pending_bytes <= RECEIVE.link_capacity + RECEIVE.endpoint_reserve,
            "inbound {:?} connection holds {} bytes",
            inbound.kind,
            inbound.pending_bytes
        );
        assert!(
            inbound.reserve_bytes <= RECEIVE.endpoint_reserve,
            "inbound {:?} connection holds {} bytes of reserve",
            inbound.kind,
            inbound.reserve_bytes
        );
    }
}

/// Waits until the receiver holds nothing: no bytes pending on its connections, no
/// receive reserve in use or leased.
async fn receiver_holds_nothing(b: &Node) -> Metrics {
    poll_until("the receive limits to be given back", || async {
        let m = b.metrics().await;
        let holds_nothing = m.limits.receive.global_in_use == 0
            && m.inbound
                .iter()
                .all(|i| i.pending_bytes == 0 && i.reserve_bytes == 0);
        if holds_nothing {
            Ok(m)
        } else {
            Err((m.limits.receive, m.inbound))
        }
    })
    .await
}

// ---------------------------------------------------------------------------------
// A slow handler.

/// Takes `pause` per message, holding it meanwhile (nothing else is handled), then
/// drops it and reports its number.
struct Slow {
    pause: Duration,
    done: mpsc::UnboundedSender<u64>,
}

impl Actor for Slow {
    type Context = Context<Self>;
}

impl Handler<Received<Filled>> for Slow {
    type Result = ();

    fn handle(&mut self, m: Received<Filled>, ctx: &mut Context<Self>) {
        m.message.check(MESSAGE);
        ctx.wait(
            actix::clock::sleep(self.pause)
                .into_actor(self)
                .map(move |_, slow, _| {
                    let seq = m.message.seq;
                    drop(m);
                    let _ = slow.done.send(seq);
                }),
        );
    }
}

/// The numbers of the first `n` messages the handler finished with, in that order.
async fn processed(done: &mut mpsc::UnboundedReceiver<u64>, n: u64) -> Vec<u64> {
    let mut processed = Vec::with_capacity(n as usize);
    within("every message to be processed", async {
        while (processed.len() as u64) < n {
            processed.push(done.recv().await.expect("the handler lives"));
        }
    })
    .await;
    processed
}

/// What the sampler saw during the burst.
#[derive(Debug, Default)]
struct Seen {
    samples: u64,
    max_receive_reserve: usize,
    max_inbound_pending: usize,
    throttled_samples: u64,
    max_sender_pending: usize,
    max_sender_unflushed: usize,
    /// Samples in which the sender had a write in flight and messages queued
    /// behind it, or producers waiting for its credit.
    sender_blocked_samples: u64,
}

impl Seen {
    fn sample(&mut self, a: &Metrics, b: &Metrics) {
        assert_within_receive_limits(b);
        self.samples += 1;
        self.max_receive_reserve = self.max_receive_reserve.max(b.limits.receive.global_in_use);
        if let Some(inbound) = inbound_small(b) {
            self.max_inbound_pending = self.max_inbound_pending.max(inbound.pending_bytes);
            self.throttled_samples += u64::from(inbound.throttled);
        }
        if let Some(link) = small_link(a) {
            self.max_sender_pending = self.max_sender_pending.max(link.pending_bytes);
            self.max_sender_unflushed = self.max_sender_unflushed.max(link.unflushed_bytes);
            if link.unflushed_bytes > 0 && (link.queued > 0 || link.credit_waiting > 0) {
                self.sender_blocked_samples += 1;
            }
        }
    }
}

/// A burst of 2000 messages of 4 KiB (8 MiB, 16 times the receiver's global
/// reserve) into a handler that takes about a millisecond each.
#[actix_rt::test]
async fn a_slow_handler_throttles_its_connection_and_gets_everything_in_order() {
    bounded(async {
        const N: u64 = 2_000;
        let (a, b) = sender_and_receiver(HEARTBEAT).await;
        let (done_tx, mut done) = mpsc::unbounded_channel();
        let slow = Slow {
            pause: Duration::from_millis(1),
            done: done_tx,
        };
        b.handle::<Filled>(slow.start().recipient()).unwrap();
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();

        let finished = Cell::new(false);
        let started = std::time::Instant::now();
        let burst = async {
            // All queued at once (the link takes them into its queue); the outcomes
            // come as the writes complete.
            let outcomes: Vec<_> = (0..N)
                .map(|seq| to_b.send(Filled::new(seq, MESSAGE)))
                .collect();
            // Beyond the link's credit, sends wait until their futures are polled.
            let (processed, outcomes) = tokio::join!(processed(&mut done, N), join_all(outcomes));
            finished.set(true);
            (outcomes, processed)
        };
        let sampler = async {
            let mut seen = Seen::default();
            while !finished.get() {
                let (ma, mb) = (a.metrics().await, b.metrics().await);
                seen.sample(&ma, &mb);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        };
        let ((outcomes, processed), seen) = tokio::join!(burst, sampler);
        let elapsed = started.elapsed();

        for (seq, outcome) in outcomes.iter().enumerate() {
            assert_eq!(*outcome, Ok(Sent::Acknowledged), "message {seq}");
        }
        assert_eq!(
            processed,
            (0..N).collect::<Vec<_>>(),
            "delivered in order, exactly once"
        );

        let m = receiver_holds_nothing(&b).await;
        assert_within_receive_limits(&m);
        let inbound = inbound_small(&m).expect("the connection is still open");
        assert_eq!(inbound.counters.dispatched, N);
        assert_eq!(inbound.counters.processed, N);
        assert!(!inbound.throttled);
        assert!(
            inbound.counters.throttled > 0 && inbound.counters.throttled_us > 0,
            "the connection stopped reading: {:?}",
            inbound.counters
        );
        let receive = &m.limits.receive;
        assert!(receive.global_peak <= RECEIVE.global_reserve, "{receive:?}");
        assert!(
            receive.endpoint_peak <= RECEIVE.endpoint_reserve,
            "{receive:?}"
        );
        assert!(receive.global_peak > 0, "the reserve was used: {receive:?}");
        assert_eq!(receive.waiting, 0);

        // The sender's link backed up behind the receiver: a write blocked with
        // messages queued behind it (or, the link's credit used up, its producer
        // waiting for room); or, where the kernel's socket buffers took the whole
        // burst (Linux autotunes a receive buffer up to net.ipv4.tcp_rmem's maximum,
        // 6 to 32 MiB, the faster the receiving side read before it throttled), the
        // link holding the burst unacknowledged beyond its own capacity.
        let link_capacity = Limits::default().link_capacity;
        assert!(
            seen.sender_blocked_samples > 0 || seen.max_sender_pending > link_capacity,
            "the sender never backed up: {seen:?}"
        );
        let a_metrics = a.metrics().await;
        let link = small_link(&a_metrics).unwrap();
        assert_eq!(link.counters.written, N);
        assert_eq!(link.pending_bytes, 0);
        assert!(seen.throttled_samples > 0 || inbound.counters.throttled > 0);
        println!(
            "{N} x {MESSAGE} bytes through a slow handler in {elapsed:?}; receive limits \
             {RECEIVE:?}; peaks: receive reserve {} (sampled {}), endpoint {}, inbound \
             pending {}; throttled {} times for {} ms; sender: pending up to {} bytes, \
             unflushed up to {}, blocked in {} of {} samples",
            receive.global_peak,
            seen.max_receive_reserve,
            receive.endpoint_peak,
            seen.max_inbound_pending,
            inbound.counters.throttled,
            inbound.counters.throttled_us / 1000,
            seen.max_sender_pending,
            seen.max_sender_unflushed,
            seen.sender_blocked_samples,
            seen.samples
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------
// A handler that keeps messages.

/// Keeps every message it gets, and reports its number.
struct Keeper {
    kept: Vec<Received<Filled>>,
    got: mpsc::UnboundedSender<u64>,
}

impl Actor for Keeper {
    type Context = Context<Self>;
}

impl Handler<Received<Filled>> for Keeper {
    type Result = ();

    fn handle(&mut self, m: Received<Filled>, _: &mut Context<Self>) {
        m.message.check(MESSAGE);
        let _ = self.got.send(m.message.seq);
        self.kept.push(m);
    }
}

/// Drops the messages kept; answers how many there were.
struct DropKept;

impl Message for DropKept {
    type Result = usize;
}

impl Handler<DropKept> for Keeper {
    type Result = usize;

    fn handle(&mut self, _: DropKept, _: &mut Context<Self>) -> usize {
        let n = self.kept.len();
        self.kept.clear();
        n
    }
}

/// Waits until the receiver's connection has stopped reading for good: throttled,
/// its reserve request parked, and every message it dispatched reported by the
/// keeper. Returns the numbers received so far and the metrics.
async fn stuck(
    b: &Node,
    got: &mut mpsc::UnboundedReceiver<u64>,
    received: &mut Vec<u64>,
) -> Metrics {
    within("the connection to stop reading", async {
        loop {
            while let Ok(seq) = got.try_recv() {
                received.push(seq);
            }
            let m = b.metrics().await;
            assert_within_receive_limits(&m);
            if let Some(inbound) = inbound_small(&m) {
                if inbound.throttled
                    && m.limits.receive.waiting > 0
                    && inbound.counters.dispatched == received.len() as u64
                {
                    return m;
                }
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await
}

/// A handler that keeps 480 KiB of messages while the limits allow 320 KiB: it holds
/// their bytes, the connection stops reading; dropping them lets the rest in, and
/// dropping those gives every byte back.
#[actix_rt::test]
async fn messages_a_handler_keeps_hold_their_bytes_until_dropped() {
    bounded(async {
        const N: u64 = 120;
        let (a, b) = sender_and_receiver(HEARTBEAT).await;
        let (got_tx, mut got) = mpsc::unbounded_channel();
        let keeper = Keeper {
            kept: Vec::new(),
            got: got_tx,
        }
        .start();
        b.handle::<Filled>(keeper.clone().recipient()).unwrap();
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();

        // 480 KiB fit the sockets' buffers: all are written at once. They are
        // acknowledged as the receiver takes them: those beyond its limits only once
        // the kept ones are dropped.
        let outcomes: Vec<_> = (0..N)
            .map(|seq| to_b.send(Filled::new(seq, MESSAGE)))
            .collect();
        let outcomes = actix::spawn(join_all(outcomes));

        let mut received = Vec::new();
        let m = stuck(&b, &mut got, &mut received).await;
        let held = received.len();
        let inbound = inbound_small(&m).unwrap();
        let held_bytes = inbound.pending_bytes;
        assert!(
            held > 0 && (held as u64) < N,
            "the limits hold some of the messages, not all: {held}"
        );
        // The kept messages hold their bytes (each charged its encoded size, a little
        // more than its payload), the connection's capacity first, then reserve.
        assert!(
            inbound.pending_bytes >= held * MESSAGE
                && inbound.pending_bytes <= held * (MESSAGE + 64),
            "{held} messages kept, {} bytes pending",
            inbound.pending_bytes
        );
        assert!(
            m.limits.receive.global_in_use >= inbound.pending_bytes - RECEIVE.link_capacity,
            "{:?}",
            m.limits.receive
        );
        // Nothing is given back while the handler keeps them: the same after a while.
        for _ in 0..10 {
            tokio::time::sleep(POLL).await;
            let again = b.metrics().await;
            let still = inbound_small(&again).unwrap();
            assert_eq!(still.pending_bytes, inbound.pending_bytes);
            assert_eq!(still.counters.dispatched, held as u64);
            assert!(still.throttled);
            assert!(got.try_recv().is_err(), "nothing more gets in");
        }

        // Dropping them lets the rest in (they fit: fewer than were kept).
        assert_eq!(keeper.send(DropKept).await.unwrap(), held);
        within("the rest of the messages", async {
            while (received.len() as u64) < N {
                received.push(got.recv().await.expect("the keeper lives"));
            }
        })
        .await;
        assert_eq!(
            received,
            (0..N).collect::<Vec<_>>(),
            "in order, exactly once"
        );
        for outcome in within("the acknowledgements", outcomes).await.unwrap() {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        let m = poll_until("the connection to read again", || async {
            let m = b.metrics().await;
            let inbound = inbound_small(&m).unwrap();
            if !inbound.throttled
                && inbound.counters.dispatched == N
                && inbound.counters.processed == held as u64
            {
                Ok(m)
            } else {
                Err(inbound.clone())
            }
        })
        .await;
        let rest = (N as usize) - held;
        let inbound = inbound_small(&m).unwrap();
        assert!(
            inbound.pending_bytes >= rest * MESSAGE,
            "the {rest} messages kept now hold their bytes: {}",
            inbound.pending_bytes
        );
        assert_eq!(inbound.counters.processed, held as u64);

        // Dropping those gives everything back.
        assert_eq!(keeper.send(DropKept).await.unwrap(), rest);
        let m = receiver_holds_nothing(&b).await;
        let inbound = inbound_small(&m).unwrap();
        assert_eq!(inbound.counters.processed, N);
        assert!(inbound.counters.throttled >= 1);
        assert!(m.limits.receive.global_peak <= RECEIVE.global_reserve);
        assert!(m.limits.receive.endpoint_peak <= RECEIVE.endpoint_reserve);
        assert_eq!(m.limits.receive.waiting, 0);
        println!(
            "kept {held} of {N} messages ({} bytes pending) before the connection stopped \
             reading; receive reserve peak {}",
            held_bytes, m.limits.receive.global_peak
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------
// A throttled receiver keeps its sender's connection alive.

/// With short read timeouts on both sides, a receiver throttled for several timeouts
/// in a row (its handler is slow): the sender's pings wait unread behind its data,
/// and only the receiver's unsolicited pongs keep the sender from resetting a healthy
/// connection (which would lose what was written on these lossy links).
#[actix_rt::test]
async fn a_throttled_receiver_keeps_its_sender_from_timing_out() {
    bounded(async {
        const N: u64 = 300;
        let short = HeartbeatConfig::new(
            Duration::from_millis(50),
            Duration::from_millis(300),
            Duration::from_secs(30),
        );
        let (a, b) = sender_and_receiver(short).await;
        let (done_tx, mut done) = mpsc::unbounded_channel();
        let slow = Slow {
            pause: Duration::from_millis(5),
            done: done_tx,
        };
        b.handle::<Filled>(slow.start().recipient()).unwrap();
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();
        let started = std::time::Instant::now();
        let outcomes: Vec<_> = (0..N)
            .map(|seq| to_b.send(Filled::new(seq, MESSAGE)))
            .collect();
        // Beyond the link's credit, sends wait until their futures are polled.
        let (processed, outcomes) = tokio::join!(processed(&mut done, N), join_all(outcomes));
        for (seq, outcome) in outcomes.into_iter().enumerate() {
            assert_eq!(outcome, Ok(Sent::Acknowledged), "message {seq}");
        }
        assert_eq!(processed, (0..N).collect::<Vec<_>>());
        let elapsed = started.elapsed();
        let m = b.metrics().await;
        let inbound = inbound_small(&m).expect("the connection is still open");
        assert!(inbound.counters.throttled > 0, "{:?}", inbound.counters);
        let a_metrics = a.metrics().await;
        let link = small_link(&a_metrics).unwrap();
        assert!(
            elapsed > short.timeout * 2,
            "the burst must outlast the read timeout to mean anything: {elapsed:?}"
        );
        assert_eq!(
            (link.counters.connections, link.counters.connection_attempts),
            (1, 1),
            "the sender kept its one connection through {elapsed:?} of throttling: {:?}",
            link.counters
        );
    })
    .await;
}
