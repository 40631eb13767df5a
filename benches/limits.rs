//! What the byte limits (docs/limits.md) cost on the hot path: one-way messages per
//! second from node A to node B over loopback, in one process (one actix `System`, so
//! one thread carries both nodes and the figure is the CPU cost of the whole path).
//!
//! Two pairs of nodes run in the same process, measured alternately (A B A B ...):
//!
//! - **active**: limits small enough to bind in both directions (link capacity 64 KiB,
//!   endpoint reserve 1 MiB, global reserve 2 MiB). The producer keeps about 512 KiB
//!   of messages outstanding, so the sender's queue regularly goes beyond its link's
//!   capacity and leases reserve from the `ResourceLimits` actor, and the receiver's
//!   messages waiting for their handler go beyond its inbound capacity too.
//! - **unbounded**: limits so large (`usize::MAX / 4`) that they never bind.
//!
//! The producer keeps a window of sends outstanding (futures from a `Peer` handle,
//! awaited in order, about 512 KiB worth: 8192 messages of 64 B, 128 of 4 KiB, 8 of
//! 64 KiB), for a fixed time, then waits for the receiver to have every message that
//! was written. A figure is delivered messages per second, from the first send to the
//! last arrival. Sends refused as `Overloaded` are counted and reported (with this
//! window they should not happen); any other failure, a message that does not arrive,
//! or one that arrives out of order, fails the benchmark. The message type encodes
//! and decodes by copying bytes (no serde), so the transport and its limits dominate.
//!
//! `cargo bench --bench limits` (add `-- --quick` for a short smoke run). Prints a
//! table, then the same figures as one JSON line.

use std::cell::Cell;
use std::collections::VecDeque;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{BufMut, Bytes, BytesMut};
use internode::limits::Limits;
use internode::message::{DecodeError, EncodeError, Message};
use internode::node::{GetLinkSnapshot, Node, Peer, Received, SendError, Sent};
use internode::{LinkKind, NodeId};
use tokio::sync::Notify;

/// Limits that bind: the link capacity is far below the window, the reserves above it.
const ACTIVE: Limits = Limits::new(64 << 10, 1 << 20, 2 << 20);
/// Limits that never bind.
const UNBOUNDED: Limits = Limits::new(usize::MAX / 4, usize::MAX / 4, usize::MAX / 4);
/// Payload bytes the producer keeps outstanding.
const WINDOW_BYTES: usize = 512 << 10;
/// Payload sizes measured (64 KiB still goes over the small link).
const SIZES: [usize; 3] = [64, 4096, 65_536];
/// How long the receiver may take to have every written message.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the queue and reserves are sampled during a measurement.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// How many sends are outstanding for payloads of `size` bytes.
fn window(size: usize) -> usize {
    (WINDOW_BYTES / size).clamp(1, 8192)
}

/// A one-way message: a sequence number, then filler up to the payload size.
struct Blob {
    seq: u64,
    filler: Bytes,
}

impl Message for Blob {
    const VERB: u32 = 1;

    fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.reserve(8 + self.filler.len());
        dst.put_u64_le(self.seq);
        dst.extend_from_slice(&self.filler);
        Ok(())
    }

    fn decode(mut payload: Bytes) -> Result<Self, DecodeError> {
        if payload.len() < 8 {
            return Err(DecodeError::Truncated);
        }
        let seq = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
        Ok(Blob {
            seq,
            filler: payload.split_off(8),
        })
    }
}

/// What the receiver has seen (one thread: cells).
#[derive(Default)]
struct Delivery {
    received: Cell<u64>,
    last_seq: Cell<u64>,
    out_of_order: Cell<u64>,
    /// Notify `done` once `received` reaches this.
    target: Cell<u64>,
    done: Notify,
}

/// The receiver's handler: counts messages and checks their order, then drops them
/// (which gives their bytes back to the receive limits).
struct Sink(Rc<Delivery>);

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<Received<Blob>> for Sink {
    type Result = ();

    fn handle(&mut self, m: Received<Blob>, _: &mut Context<Self>) {
        let d = &self.0;
        if m.message.seq <= d.last_seq.get() {
            d.out_of_order.set(d.out_of_order.get() + 1);
        }
        d.last_seq.set(m.message.seq);
        let received = d.received.get() + 1;
        d.received.set(received);
        if received >= d.target.get() {
            d.done.notify_one();
        }
    }
}

/// A sender node, a receiver node, and what the receiver saw.
struct Pair {
    name: &'static str,
    sender: Node,
    receiver: Node,
    peer: Peer,
    delivery: Rc<Delivery>,
    next_seq: u64,
}

impl Pair {
    async fn start(name: &'static str, first_id: u64, limits: Limits) -> Result<Pair, String> {
        let start = |id: u64| {
            Node::builder(NodeId(id), "127.0.0.1:0".parse().unwrap())
                .limits(limits)
                .start()
        };
        let sender = start(first_id).await.map_err(|e| e.to_string())?;
        let receiver = start(first_id + 1).await.map_err(|e| e.to_string())?;
        let delivery = Rc::new(Delivery::default());
        receiver
            .handle::<Blob>(Sink(delivery.clone()).start().recipient())
            .map_err(|e| e.to_string())?;
        sender.add_peer(receiver.id(), receiver.local_addr()).await;
        let peer = sender.peer(receiver.id());
        // The links found and the first credit in, before anything is measured.
        peer.ready().await.map_err(|e| e.to_string())?;
        Ok(Pair {
            name,
            sender,
            receiver,
            peer,
            delivery,
            next_seq: 1,
        })
    }

    async fn close(&self) {
        self.sender.close_peer(self.receiver.id(), true).await;
        self.sender.close(true).await;
        self.receiver.close(true).await;
    }
}

/// One measurement.
#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    rate: f64,
    delivered: u64,
    overloaded: u64,
    /// The most bytes seen queued on the sender's link (taken, not yet written).
    peak_pending: usize,
    /// The most reserve bytes seen held by the sender's link.
    peak_send_reserve: usize,
    /// The most receive reserve bytes seen in use on the receiver.
    peak_receive_reserve: usize,
    /// Times the receiver's connection stopped reading for lack of receive limits.
    throttled: u64,
}

/// Sends `size`-byte messages from `pair`'s sender for about `time`, keeping a window
/// outstanding, and waits for the receiver to have every one that was written.
async fn measure(pair: &mut Pair, size: usize, time: Duration) -> Result<Sample, String> {
    let window = window(size);
    let filler = Bytes::from(vec![b'x'; size - 8]);
    let delivery = pair.delivery.clone();
    let delivered_before = delivery.received.get();
    delivery.target.set(u64::MAX);
    let throttled_before = pair.receiver.inbound_counters().await.throttled;
    let link = pair
        .peer
        .link(LinkKind::Small)
        .ok_or("no small link")?
        .clone();

    let sending = Cell::new(true);
    let mut sample = Sample::default();
    let producer = async {
        let mut outstanding = VecDeque::with_capacity(window);
        let (mut written, mut overloaded) = (0u64, 0u64);
        let mut tally = |outcome: Result<Sent, SendError>| match outcome {
            Ok(Sent::Written | Sent::Acknowledged) => {
                written += 1;
                Ok(())
            }
            Err(SendError::Overloaded(_)) => {
                overloaded += 1;
                Ok(())
            }
            other => Err(format!("{}: a send ended in {other:?}", pair.name)),
        };
        let start = Instant::now();
        let mut sent = 0u64;
        loop {
            while outstanding.len() < window {
                outstanding.push_back(pair.peer.send(Blob {
                    seq: pair.next_seq,
                    filler: filler.clone(),
                }));
                pair.next_seq += 1;
                sent += 1;
            }
            let oldest = outstanding.pop_front().expect("a full window");
            tally(oldest.await)?;
            if sent % 16 == 0 && start.elapsed() >= time {
                break;
            }
        }
        for f in outstanding {
            tally(f.await)?;
        }
        let target = delivered_before + written;
        delivery.target.set(target);
        let arrived = tokio::time::timeout(DELIVERY_TIMEOUT, async {
            while delivery.received.get() < target {
                delivery.done.notified().await;
            }
        })
        .await;
        let elapsed = start.elapsed();
        sending.set(false);
        if arrived.is_err() {
            return Err(format!(
                "{}: {} of {written} written messages arrived within {DELIVERY_TIMEOUT:?}",
                pair.name,
                delivery.received.get() - delivered_before
            ));
        }
        Ok((written, overloaded, elapsed))
    };
    let sampler = async {
        while sending.get() {
            if let Ok(s) = link.send(GetLinkSnapshot).await {
                sample.peak_pending = sample.peak_pending.max(s.pending_bytes);
                sample.peak_send_reserve = sample.peak_send_reserve.max(s.reserve_bytes);
            }
            let receive = pair.receiver.limits().await.receive.global_in_use;
            sample.peak_receive_reserve = sample.peak_receive_reserve.max(receive);
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    };
    let (result, ()) = tokio::join!(producer, sampler);
    let (written, overloaded, elapsed) = result?;

    if delivery.out_of_order.get() > 0 {
        return Err(format!(
            "{}: {} messages arrived out of order",
            pair.name,
            delivery.out_of_order.get()
        ));
    }
    if delivery.received.get() != delivered_before + written {
        return Err(format!(
            "{}: {} messages arrived, {written} were written",
            pair.name,
            delivery.received.get() - delivered_before
        ));
    }
    sample.rate = written as f64 / elapsed.as_secs_f64();
    sample.delivered = written;
    sample.overloaded = overloaded;
    sample.throttled = pair.receiver.inbound_counters().await.throttled - throttled_before;
    Ok(sample)
}

struct Case {
    size: usize,
    /// Per repetition: active, unbounded.
    samples: Vec<[Sample; 2]>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn spread(v: &[f64]) -> f64 {
    (max(v) - min(v)) / median(v) * 100.0
}

fn kib(bytes: usize) -> String {
    format!("{:.0}K", bytes as f64 / 1024.0)
}

async fn run(quick: bool) -> Result<(), String> {
    let (time, reps) = if quick {
        (Duration::from_millis(150), 3)
    } else {
        (Duration::from_millis(1500), 7)
    };
    let started = Instant::now();
    let mut pairs = [
        Pair::start("active", 1, ACTIVE).await?,
        Pair::start("unbounded", 3, UNBOUNDED).await?,
    ];
    // Connects the links and warms the buffers up.
    for pair in &mut pairs {
        for size in SIZES {
            measure(pair, size, time / 4).await?;
        }
    }

    let mut cases: Vec<Case> = SIZES
        .iter()
        .map(|&size| Case {
            size,
            samples: Vec::new(),
        })
        .collect();
    for _ in 0..reps {
        for case in &mut cases {
            let active = measure(&mut pairs[0], case.size, time).await?;
            let unbounded = measure(&mut pairs[1], case.size, time).await?;
            case.samples.push([active, unbounded]);
        }
    }

    println!(
        "one-way messages A -> B over loopback, one thread; active limits: link {}, endpoint {}, \
         global {} (both directions); unbounded: usize::MAX / 4",
        kib(ACTIVE.link_capacity),
        kib(ACTIVE.endpoint_reserve),
        kib(ACTIVE.global_reserve)
    );
    println!(
        "{:>7} {:>6} {:<9} {:>10} {:>10} {:>10} {:>7} {:>8} {:>10} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "payload",
        "window",
        "limits",
        "msgs/s",
        "min",
        "max",
        "spread",
        "MB/s",
        "delivered",
        "ovld",
        "send q",
        "send res",
        "recv res",
        "throttle",
        "ratio"
    );
    let mut json = Vec::new();
    for case in &cases {
        let ratios: Vec<f64> = case.samples.iter().map(|[a, u]| a.rate / u.rate).collect();
        let ratio = median(&ratios);
        let mut figures = serde_json::Map::new();
        for (i, name) in ["active", "unbounded"].into_iter().enumerate() {
            let s: Vec<Sample> = case.samples.iter().map(|r| r[i]).collect();
            let rates: Vec<f64> = s.iter().map(|s| s.rate).collect();
            let delivered: u64 = s.iter().map(|s| s.delivered).sum();
            let overloaded: u64 = s.iter().map(|s| s.overloaded).sum();
            let throttled: u64 = s.iter().map(|s| s.throttled).sum();
            let peak_pending = s.iter().map(|s| s.peak_pending).max().unwrap_or(0);
            let peak_send = s.iter().map(|s| s.peak_send_reserve).max().unwrap_or(0);
            let peak_receive = s.iter().map(|s| s.peak_receive_reserve).max().unwrap_or(0);
            println!(
                "{:>7} {:>6} {:<9} {:>10.0} {:>10.0} {:>10.0} {:>6.0}% {:>8.1} {:>10} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7}",
                if i == 0 { format!("{} B", case.size) } else { String::new() },
                if i == 0 { window(case.size).to_string() } else { String::new() },
                name,
                median(&rates),
                min(&rates),
                max(&rates),
                spread(&rates),
                median(&rates) * case.size as f64 / 1e6,
                delivered,
                overloaded,
                kib(peak_pending),
                kib(peak_send),
                kib(peak_receive),
                throttled,
                if i == 0 { format!("{ratio:.3}") } else { String::new() },
            );
            figures.insert(
                name.into(),
                serde_json::json!({
                    "msgs_per_s_median": median(&rates).round(),
                    "msgs_per_s_min": min(&rates).round(),
                    "msgs_per_s_max": max(&rates).round(),
                    "delivered": delivered,
                    "overloaded": overloaded,
                    "peak_send_queue_bytes": peak_pending,
                    "peak_send_reserve_bytes": peak_send,
                    "peak_receive_reserve_bytes": peak_receive,
                    "receive_throttled": throttled,
                }),
            );
        }
        figures.insert("payload_bytes".into(), case.size.into());
        figures.insert("window".into(), window(case.size).into());
        figures.insert(
            "ratio_active_unbounded".into(),
            serde_json::json!((ratio * 1000.0).round() / 1000.0),
        );
        json.push(serde_json::Value::Object(figures));
    }
    println!(
        "({reps} repetitions of {time:?} per configuration, interleaved active/unbounded; msgs/s = \
         delivered messages per second, median, min, max; ratio = active / unbounded, median of \
         per-repetition ratios; send q, send res, recv res = peak bytes sampled every \
         {SAMPLE_EVERY:?} of the sender's queue, the reserve its link held, the receive reserve \
         in use; throttle = times the receiver stopped reading; {:.1} s in all)",
        started.elapsed().as_secs_f64()
    );
    println!(
        "{}",
        serde_json::json!({ "bench": "limits", "quick": quick, "reps": reps,
            "millis_per_figure": time.as_millis() as u64, "cases": json })
    );
    for pair in &pairs {
        pair.close().await;
    }
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let quick = std::env::args().any(|a| a == "--quick");
    let limit = Duration::from_secs(if quick { 60 } else { 300 });
    let result = actix::System::new().block_on(async move {
        tokio::time::timeout(limit, run(quick))
            .await
            .unwrap_or_else(|_| Err(format!("the benchmark did not finish within {limit:?}")))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
