//! Receive limits on messages that arrive in many frames (docs/limits.md, "Inbound: a
//! large message is charged frame by frame": a message being assembled from several
//! frames is charged as its buffer grows, never allocated ahead of its charge), against
//! hostile clients on real sockets: sixteen connections, each from its own node id,
//! each a valid Hello then all but the last KiB of one 32 MiB message, kept alive with
//! empty frames. The node's receive reserve in use (its metrics) and its memory (VmRSS)
//! stay within its limits, the connections that cannot get room stop being read and are
//! reset when nothing moves for the read timeout, everything is given back when they
//! go, and a real peer's messages are delivered throughout.
//!
//! Run with `--nocapture` to see the figures (RSS baseline and peak, reserve peak).
#![cfg(all(feature = "serde", target_os = "linux"))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use internode::envelope::{Envelope, Flags};
use internode::frame::{FrameCodec, Framing, MAX_PAYLOAD};
use internode::limits::Limits;
use internode::message::Message;
use internode::node::{Metrics, Node, Sent};
use internode::session::HeartbeatConfig;
use internode::{LinkKind, NodeId};
use support::{builder, collect, raw_peer, recv_n, Blob, Seq, POLL};
use tokio::io::AsyncWriteExt;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// The receiving node's limits: small, so that the test is quick.
const LIMITS: Limits = Limits::new(256 * KIB, 64 * MIB, 64 * MIB);
const ATTACKERS: u64 = 16;
/// The payload of each attacker's message.
const PAYLOAD: usize = 32 * MIB;
/// What the node may use beyond what its limits charge: per connection its read
/// buffer, the frame being taken (or waiting) and an incomplete header; for a
/// moment the old buffer of a message whose buffer doubles, if the allocator copies
/// it rather than remapping it (at most half the largest message: large links share
/// one thread, so one at a time); and the allocator's slack (memory freed by the
/// connections reset, not all returned to the system at once).
const UNCHARGED: usize = 32 * MIB;
/// The read timeout: a throttled connection holding a partial message is reset after
/// this long without taking a frame.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The bound of the whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The bound of one awaited state.
const WAIT: Duration = Duration::from_secs(40);

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib * KIB
}

/// Samples VmRSS on a thread of its own (not delayed by the actors) every 2 ms and
/// keeps the highest value, until dropped.
struct RssSampler {
    peak: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let peak = Arc::new(AtomicUsize::new(status_bytes("VmRSS:")));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(status_bytes("VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        RssSampler { peak, stop }
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The frames of the attack, encoded once and written by every attacker: the first
/// (the envelope header and the start of the payload), a middle one written again
/// and again, the last one sent (stopping 1 KiB short of the end), and an empty one
/// for keepalives. None is self-contained.
struct AttackFrames {
    first: Bytes,
    middle: Bytes,
    middles: usize,
    last: Bytes,
    empty: Bytes,
}

impl AttackFrames {
    fn new() -> AttackFrames {
        // The header of a message of `PAYLOAD` bytes; the zeroed payload is never
        // touched (nor resident): only its length is encoded.
        let envelope = Envelope {
            id: 1,
            verb: Blob::VERB,
            flags: Flags::EMPTY,
            created_at_ms: support::epoch_ms(),
            expires_at_ms: None,
            params: Vec::new(),
            payload: Bytes::from(vec![0u8; PAYLOAD]),
        };
        let mut header = BytesMut::new();
        envelope.encode_header(&mut header).unwrap();
        let len = header.len() + PAYLOAD;
        let to_send = len - KIB;
        let mut codec = FrameCodec::new(Framing::Crc);
        let frame = |codec: &mut FrameCodec, payload: &[u8]| {
            let mut out = BytesMut::new();
            codec.encode_payload(payload, false, &mut out).unwrap();
            out.freeze()
        };
        let mut first = header.to_vec();
        first.resize(MAX_PAYLOAD, 0);
        let zeros = vec![0u8; MAX_PAYLOAD];
        let middles = (to_send - MAX_PAYLOAD) / MAX_PAYLOAD;
        let rest = to_send - MAX_PAYLOAD - middles * MAX_PAYLOAD;
        AttackFrames {
            first: frame(&mut codec, &first),
            middle: frame(&mut codec, &zeros),
            middles,
            last: frame(&mut codec, &zeros[..rest]),
            empty: frame(&mut codec, &[]),
        }
    }
}

/// One attacker: a Hello as node `id`, all but the last KiB of the message, then an
/// empty frame every 100 ms, until the node closes the connection. Counts itself in
/// `sent_all` once it has written everything but the last KiB.
async fn attack(id: u64, node: &Node, frames: Arc<AttackFrames>, sent_all: Arc<AtomicU64>) {
    let mut stream = raw_peer(id, node.local_addr(), LinkKind::Large).await;
    let written = async {
        stream.write_all(&frames.first).await?;
        for _ in 0..frames.middles {
            stream.write_all(&frames.middle).await?;
        }
        stream.write_all(&frames.last).await?;
        sent_all.fetch_add(1, Ordering::SeqCst);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stream.write_all(&frames.empty).await?;
        }
    };
    let _: std::io::Result<()> = written.await;
}

fn is_attacker(peer: NodeId) -> bool {
    (100..100 + ATTACKERS).contains(&peer.0)
}

/// What the metrics say about the attackers' connections.
#[derive(Debug, Default)]
struct Attack {
    /// Connected and holding charged bytes (their partial message).
    holding: usize,
    /// Connected and not reading for lack of room.
    throttled: usize,
    connected: usize,
    /// Bytes charged to their links (capacity and reserve).
    pending: usize,
}

fn attack_state(metrics: &Metrics) -> Attack {
    let mut state = Attack::default();
    for inbound in metrics.inbound.iter().filter(|i| is_attacker(i.peer)) {
        if inbound.connected {
            state.connected += 1;
            state.holding += usize::from(inbound.pending_bytes > 0);
            state.throttled += usize::from(inbound.throttled);
        }
        state.pending += inbound.pending_bytes;
    }
    state
}

/// Polls `node`'s metrics every [`POLL`] until `done` holds, for at most [`WAIT`];
/// checks `each` on every sample on the way.
async fn poll_metrics(
    node: &Node,
    what: &str,
    mut each: impl FnMut(&Metrics),
    mut done: impl FnMut(&Metrics) -> bool,
) -> Metrics {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = node.metrics().await;
        each(&metrics);
        if done(&metrics) {
            return metrics;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "timed out waiting for {what}: {:?}, receive reserves {:?}",
                attack_state(&metrics),
                metrics.limits.receive
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Sends `n` messages from `a` to `b`, numbered from `from`, and checks that all are
/// acknowledged and delivered in order.
async fn real_traffic(
    a: &Node,
    inbox: &mut tokio::sync::mpsc::UnboundedReceiver<(NodeId, Seq)>,
    from: u64,
    n: u64,
) {
    let to_b = a.peer(NodeId(2));
    let outcomes: Vec<_> = (from..from + n).map(|seq| to_b.send(Seq(seq))).collect();
    for outcome in support::join_all(outcomes).await {
        assert_eq!(outcome, Ok(Sent::Acknowledged));
    }
    let received = recv_n(inbox, n as usize).await;
    let expected: Vec<_> = (from..from + n).map(|seq| (NodeId(1), Seq(seq))).collect();
    assert_eq!(received, expected);
}

#[actix_rt::test]
async fn partial_messages_stay_within_the_receive_limits() {
    let _ = env_logger::builder().is_test(true).try_init();
    tokio::time::timeout(TEST_TIMEOUT, partial_messages())
        .await
        .expect("test timed out");
}

async fn partial_messages() {
    let heartbeat = HeartbeatConfig::default()
        .interval(Duration::from_millis(250))
        .timeout(READ_TIMEOUT);
    let b = builder(2)
        .receive_limits(LIMITS)
        .max_message(PAYLOAD + MIB)
        .heartbeat(heartbeat)
        .start()
        .await
        .unwrap();
    let mut inbox = collect::<Seq>(&b);
    let a = builder(1).heartbeat(heartbeat).start().await.unwrap();
    a.add_peer(NodeId(2), b.local_addr()).await;
    real_traffic(&a, &mut inbox, 0, 10).await;
    let frames = Arc::new(AttackFrames::new());

    let baseline = status_bytes("VmRSS:");
    let sampler = RssSampler::start();
    let sent_all = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (100..100 + ATTACKERS)
        .map(|id| {
            let (b, frames, sent_all) = (b.clone(), frames.clone(), sent_all.clone());
            actix_rt::spawn(async move { attack(id, &b, frames, sent_all).await })
        })
        .collect();

    // Every sample: the receive reserve within its limit, the attackers' charged bytes
    // within their links' capacity and the reserve.
    let charged_bound = LIMITS.global_reserve + ATTACKERS as usize * LIMITS.link_capacity;
    let (mut reserve_peak, mut pending_peak) = (0, 0);
    let mut check = |m: &Metrics| {
        let receive = &m.limits.receive;
        reserve_peak = reserve_peak.max(receive.global_in_use);
        pending_peak = pending_peak.max(attack_state(m).pending);
        assert!(
            receive.global_in_use <= LIMITS.global_reserve,
            "{receive:?}"
        );
    };
    // The height of the attack: all sixteen connected, each holding a partial message,
    // and the reserve exhausted (some stopped reading). (Or, without per-frame
    // charges, all of them sent everything.)
    let height = poll_metrics(&b, "sixteen partial messages", &mut check, |m| {
        let state = attack_state(m);
        let charged = state.holding == ATTACKERS as usize && state.throttled > 0;
        charged || sent_all.load(Ordering::SeqCst) == ATTACKERS
    })
    .await;
    // A real peer's messages go through meanwhile.
    real_traffic(&a, &mut inbox, 10, 200).await;
    let rss_at_height = sampler.peak();
    let at_height = attack_state(&height);
    println!(
        "at the height of the attack: {at_height:?}; receive reserve in use {} bytes, \
         peak {}; attackers that sent all but the last KiB: {}",
        height.limits.receive.global_in_use,
        height.limits.receive.global_peak,
        sent_all.load(Ordering::SeqCst)
    );
    println!(
        "RSS baseline {} MiB, peak so far {} MiB (+{} MiB)",
        baseline / MIB,
        rss_at_height / MIB,
        rss_at_height.saturating_sub(baseline) / MIB
    );

    // Those that stopped reading and cannot move are reset after the read timeout; the
    // others hold what they were charged, kept alive by their empty frames.
    let settled = poll_metrics(&b, "the throttled connections reset", &mut check, |m| {
        attack_state(m).throttled == 0
    })
    .await;
    let after = attack_state(&settled);
    real_traffic(&a, &mut inbox, 210, 100).await;
    let rss_peak = sampler.peak();
    let hwm = status_bytes("VmHWM:");
    println!(
        "after the read timeout: {after:?}; receive reserve peak {} bytes (limit {}), \
         endpoint peak {}; attackers' charged bytes peak {pending_peak} (bound {charged_bound})",
        settled.limits.receive.global_peak,
        LIMITS.global_reserve,
        settled.limits.receive.endpoint_peak
    );
    println!(
        "RSS baseline {} MiB, sampled peak {} MiB (+{} MiB), VmHWM {} MiB; bound +{} MiB",
        baseline / MIB,
        rss_peak / MIB,
        rss_peak.saturating_sub(baseline) / MIB,
        hwm / MIB,
        (charged_bound + UNCHARGED) / MIB
    );

    // The partial messages were charged, within the limits.
    assert!(
        at_height.holding == ATTACKERS as usize && at_height.throttled > 0,
        "every partial message charged, some connections throttled: {at_height:?}"
    );
    assert!(
        settled.limits.receive.global_peak > 0,
        "partial bytes show in the metrics"
    );
    assert!(settled.limits.receive.global_peak <= LIMITS.global_reserve);
    assert!(
        pending_peak <= charged_bound,
        "{pending_peak} > {charged_bound}"
    );
    assert!(
        rss_peak.saturating_sub(baseline) <= charged_bound + UNCHARGED,
        "RSS grew by {} bytes, more than the limits ({charged_bound}) and {UNCHARGED}",
        rss_peak.saturating_sub(baseline)
    );
    assert!(
        after.connected < ATTACKERS as usize,
        "the stalled connections were reset: {after:?}"
    );
    assert!(
        sent_all.load(Ordering::SeqCst) < ATTACKERS,
        "the node stopped reading those it had no room for"
    );

    // The attackers go: everything they were charged comes back.
    for attacker in &attackers {
        attacker.abort();
    }
    drop(sampler);
    let drained = poll_metrics(
        &b,
        "the reserve given back",
        |_| {},
        |m| m.limits.receive.global_in_use == 0 && attack_state(m).pending == 0,
    )
    .await;
    assert_eq!(drained.limits.receive.global_in_use, 0);
    real_traffic(&a, &mut inbox, 310, 10).await;
    a.close(false).await;
    b.close(false).await;
}
