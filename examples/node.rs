//! One node per process, so that a local cluster can be started from a shell (see
//! `examples/local_cluster.sh`):
//!
//! ```sh
//! cargo build --example node
//! target/debug/examples/node --id 1 --listen 127.0.0.1:23001 \
//!     --peer 2@127.0.0.1:23002 --peer 3@127.0.0.1:23003 --duration 10 --summary-json n1.json &
//! # ... and the same for nodes 2 and 3
//! ```
//!
//! Flags: `--id N --listen ADDR --peer ID@ADDR` (repeatable) `--size BYTES` (100)
//! `--rate MSGS_PER_S` (per peer; 0, the default, = as fast as the links accept)
//! `--duration SECS` (10) `--framing crc|lz4|unprotected` (crc) `--summary-json FILE`
//! `--grace SECS` (10) `--max-in-flight N` (per peer, 1000) `--heartbeat-timeout SECS`
//! (the library's default, 5), and the limits (DESIGN.md section 6, both directions,
//! library defaults): `--link-capacity BYTES` (4 MiB) `--endpoint-reserve BYTES`
//! (128 MiB) `--global-reserve BYTES` (512 MiB) `--max-message BYTES` (128 MiB)
//! `--expire-after MS` (never). BYTES may end in `k`, `m` or `g` (powers of 1024).
//!
//! For `--duration` seconds the node sends sequence-numbered messages of `--size`
//! payload bytes to every peer, keeping at most `--max-in-flight` messages per peer
//! without an outcome (so memory stays bounded when a peer is slow or down). Then it
//! sends each peer a final `Done` carrying how many messages it sent, and keeps
//! receiving until every peer's `Done` arrived, its own outcomes are all known, or the
//! grace time (`--duration` + `--grace`) is over. It prints a line per peer every
//! second and, at the end, writes a JSON summary:
//!
//! - `peers`: per peer, this node's messages `accepted` (handed to the link),
//!   `written`, `failed` by reason, still `pending` at exit, and the outcome of `done`;
//! - `senders`: per peer, the messages `received`, `duplicates`, `out_of_order` and
//!   `gaps` (missing sequence numbers), in total and per run of the sender;
//! - `outcomes`: this node's data messages by outcome (`written`, and each failure
//!   reason: `expired`, `overloaded_link|endpoint|global`, `oversized`, `closed`...);
//! - `limits`: per direction, the limits and the peak bytes of reserve in use (global
//!   and of any one endpoint), and the peak pending bytes of any one link.
//!
//! Peers may start in any order and may be killed and started again while it runs.
//! Every process draws a random run id that its messages carry; a restarted sender
//! starts its sequence again from 0 under a new run id, and the receiver keeps a tally
//! per (sender, run). Gaps are counted from the first sequence number received from a
//! run (a restarted receiver did not miss what its previous incarnation received), up
//! to the count the run's `Done` announced. Links are lossy for now: messages written
//! to a peer that is then killed are lost and show as gaps at the receiver, while its
//! sender counted them as written (or as `connection_lost` if the write was under way).
//!
//! Exit status: 0 when it finished and the summary was written (the numbers are for
//! the caller to judge: the script checks them), 1 on errors, 2 on bad flags.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{BufMut, Bytes, BytesMut};
use internode::frame::Framing;
use internode::limits::Limits;
use internode::message::{DecodeError, EncodeError, Message};
use internode::node::{Node, Peer, Received};
use internode::session::HeartbeatConfig;
use internode::NodeId;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// The traffic: run id and sequence number, then the payload. Encoded by hand (16
/// bytes of header, the payload as is) so that large payloads cost one copy.
#[derive(Debug)]
struct Data {
    run: u64,
    seq: u64,
    payload: Bytes,
}

impl Message for Data {
    const VERB: u32 = 1;

    fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.reserve(16 + self.payload.len());
        dst.put_u64_le(self.run);
        dst.put_u64_le(self.seq);
        dst.put_slice(&self.payload);
        Ok(())
    }

    fn decode(mut payload: Bytes) -> Result<Self, DecodeError> {
        if payload.len() < 16 {
            return Err(DecodeError::Truncated);
        }
        let header = payload.split_to(16);
        let word = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().unwrap_or([0; 8]));
        Ok(Data {
            run: word(0),
            seq: word(8),
            payload,
        })
    }
}

/// The last message of a run to one peer: how many `Data` it sent (sequence numbers
/// `0..sent`).
#[derive(Debug, Serialize, Deserialize)]
struct Done {
    run: u64,
    sent: u64,
}
internode::message!(Done, verb = 2);

// ---------------------------------------------------------------------------------
// Flags.

struct Options {
    id: u64,
    listen: SocketAddr,
    peers: Vec<(u64, SocketAddr)>,
    size: usize,
    rate: u64,
    duration: Duration,
    grace: Duration,
    framing: Framing,
    framing_name: String,
    summary: Option<String>,
    max_in_flight: usize,
    heartbeat_timeout: Option<Duration>,
    limits: Limits,
    max_message: Option<usize>,
    expire_after: Option<Duration>,
}

const USAGE: &str = "usage: node --id N --listen ADDR [--peer ID@ADDR]... [--size BYTES (100)] \
[--rate MSGS_PER_S per peer (0 = as fast as accepted)] [--duration SECS (10)] \
[--framing crc|lz4|unprotected] [--summary-json FILE] [--grace SECS (10)] \
[--max-in-flight N per peer (1000)] [--heartbeat-timeout SECS (5)] \
[--link-capacity BYTES (4m)] [--endpoint-reserve BYTES (128m)] [--global-reserve BYTES (512m)] \
[--max-message BYTES (128m)] [--expire-after MS (never)]";

/// A byte count: digits, optionally followed by k, m or g (powers of 1024).
fn bytes_flag(value: &str) -> Option<usize> {
    let (digits, shift) = match value.as_bytes().last()? {
        b'k' | b'K' => (&value[..value.len() - 1], 10),
        b'm' | b'M' => (&value[..value.len() - 1], 20),
        b'g' | b'G' => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    let n: usize = digits.parse().ok()?;
    n.checked_mul(1 << shift)
}

fn parse_options() -> Result<Options, String> {
    let mut id = None;
    let mut listen = None;
    let mut options = Options {
        id: 0,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        peers: Vec::new(),
        size: 100,
        rate: 0,
        duration: Duration::from_secs(10),
        grace: Duration::from_secs(10),
        framing: Framing::Crc,
        framing_name: "crc".into(),
        summary: None,
        max_in_flight: 1000,
        heartbeat_timeout: None,
        limits: Limits::default(),
        max_message: None,
        expire_after: None,
    };
    let seconds = |v: &str| -> Option<Duration> {
        let s: f64 = v.parse().ok()?;
        (s.is_finite() && (0.0..=86_400.0).contains(&s)).then(|| Duration::from_secs_f64(s))
    };
    for (flag, value) in common::flags(USAGE)? {
        let bad = || common::bad_value(&flag, &value, USAGE);
        match flag.as_str() {
            "--id" => id = Some(value.parse::<u64>().map_err(|_| bad())?),
            "--listen" => listen = Some(value.parse::<SocketAddr>().map_err(|_| bad())?),
            "--peer" => {
                let (peer, addr) = value.split_once('@').ok_or_else(bad)?;
                options.peers.push((
                    peer.parse().map_err(|_| bad())?,
                    addr.parse().map_err(|_| bad())?,
                ));
            }
            "--size" => options.size = value.parse().map_err(|_| bad())?,
            "--rate" => options.rate = value.parse().map_err(|_| bad())?,
            "--duration" => options.duration = seconds(&value).ok_or_else(bad)?,
            "--grace" => options.grace = seconds(&value).ok_or_else(bad)?,
            "--framing" => {
                options.framing = match value.as_str() {
                    "crc" => Framing::Crc,
                    "lz4" => Framing::Lz4,
                    "unprotected" => Framing::Unprotected,
                    _ => return Err(bad()),
                };
                options.framing_name = value.clone();
            }
            "--summary-json" => options.summary = Some(value.clone()),
            "--max-in-flight" => options.max_in_flight = value.parse().map_err(|_| bad())?,
            "--heartbeat-timeout" => {
                options.heartbeat_timeout = Some(seconds(&value).ok_or_else(bad)?)
            }
            "--link-capacity" => {
                options.limits.link_capacity = bytes_flag(&value).ok_or_else(bad)?
            }
            "--endpoint-reserve" => {
                options.limits.endpoint_reserve = bytes_flag(&value).ok_or_else(bad)?
            }
            "--global-reserve" => {
                options.limits.global_reserve = bytes_flag(&value).ok_or_else(bad)?
            }
            "--max-message" => options.max_message = Some(bytes_flag(&value).ok_or_else(bad)?),
            "--expire-after" => {
                let ms: u64 = value.parse().map_err(|_| bad())?;
                options.expire_after = Some(Duration::from_millis(ms));
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    options.id = id.ok_or_else(|| format!("--id is required\n{USAGE}"))?;
    options.listen = listen.ok_or_else(|| format!("--listen is required\n{USAGE}"))?;
    if options.peers.iter().any(|(p, _)| *p == options.id) {
        return Err("a node is not its own --peer".into());
    }
    let mut ids: Vec<u64> = options.peers.iter().map(|(p, _)| *p).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != options.peers.len() {
        return Err("each --peer id once".into());
    }
    if options.size > 64 << 20 {
        return Err("--size must be at most 64 MiB".into());
    }
    if options.max_in_flight == 0 {
        return Err("--max-in-flight must be at least 1".into());
    }
    Ok(options)
}

/// A random run id: the standard library's per-process hasher keys, the process id
/// and the time.
fn run_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

// ---------------------------------------------------------------------------------
// Receiving: a tally per (sender, run).

/// Most missing sequence numbers remembered per run; beyond, gaps are only counted.
const MAX_MISSING: usize = 1 << 20;

#[derive(Debug, Default)]
struct RunTally {
    first_seq: u64,
    /// One past the highest sequence number received.
    next: u64,
    received: u64,
    bytes: u64,
    duplicates: u64,
    out_of_order: u64,
    /// Sequence numbers skipped and not (yet) received.
    missing: BTreeSet<u64>,
    /// Missing numbers not remembered (beyond `MAX_MISSING`).
    missing_uncounted: u64,
    /// From the run's `Done`.
    announced: Option<u64>,
    done_at: Option<Instant>,
    last_data_at: Option<Instant>,
}

impl RunTally {
    fn data(&mut self, seq: u64, bytes: usize) {
        if self.received == 0 && self.next == 0 {
            self.first_seq = seq;
            self.next = seq;
        }
        self.bytes += bytes as u64;
        if seq >= self.next {
            let skipped = seq - self.next;
            if self.missing.len() as u64 + skipped <= MAX_MISSING as u64 {
                self.missing.extend(self.next..seq);
            } else {
                self.missing_uncounted += skipped;
            }
            self.next = seq + 1;
            self.received += 1;
        } else if self.missing.remove(&seq) {
            self.out_of_order += 1;
            self.received += 1;
        } else if seq < self.first_seq {
            // Before the first one seen: late, not a duplicate.
            self.out_of_order += 1;
            self.received += 1;
        } else {
            self.duplicates += 1;
        }
    }

    /// Missing sequence numbers, including those after the last one received up to
    /// what `Done` announced.
    fn gaps(&self) -> u64 {
        let tail = self
            .announced
            .map_or(0, |sent| sent.saturating_sub(self.next));
        self.missing.len() as u64 + self.missing_uncounted + tail
    }

    /// Everything `Done` announced is accounted for (received or missing), or
    /// nothing arrived from the run for a while since its `Done`: messages above 64 KiB
    /// travel over the large link and may trail the `Done`, which takes the small one.
    fn complete(&self, now: Instant) -> bool {
        match (self.announced, self.done_at) {
            (Some(sent), Some(at)) => {
                let quiet_since = self.last_data_at.map_or(at, |d| d.max(at));
                self.next >= sent || now.duration_since(quiet_since) > Duration::from_secs(2)
            }
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
struct SenderTally {
    /// By run id, in the order first seen.
    runs: Vec<(u64, RunTally)>,
}

impl SenderTally {
    fn run(&mut self, run: u64) -> &mut RunTally {
        let i = match self.runs.iter().position(|(r, _)| *r == run) {
            Some(i) => i,
            None => {
                self.runs.push((run, RunTally::default()));
                self.runs.len() - 1
            }
        };
        &mut self.runs[i].1
    }

    /// The sender's latest run sent its `Done` and everything announced is in.
    fn finished(&self, now: Instant) -> bool {
        self.runs.last().is_some_and(|(_, t)| t.complete(now))
    }
}

type Tallies = Rc<RefCell<BTreeMap<u64, SenderTally>>>;

/// The handler of both message types.
struct Receiver {
    tallies: Tallies,
}

impl Actor for Receiver {
    type Context = Context<Self>;
}

impl Handler<Received<Data>> for Receiver {
    type Result = ();

    fn handle(&mut self, m: Received<Data>, _: &mut Context<Self>) {
        let mut tallies = self.tallies.borrow_mut();
        let tally = tallies.entry(m.from.0).or_default().run(m.message.run);
        tally.data(m.message.seq, m.message.payload.len());
        tally.last_data_at = Some(Instant::now());
    }
}

impl Handler<Received<Done>> for Receiver {
    type Result = ();

    fn handle(&mut self, m: Received<Done>, _: &mut Context<Self>) {
        let mut tallies = self.tallies.borrow_mut();
        let tally = tallies.entry(m.from.0).or_default().run(m.message.run);
        tally.announced = Some(m.message.sent);
        tally.done_at = Some(Instant::now());
    }
}

// ---------------------------------------------------------------------------------
// Sending: per peer, outcomes counted as they resolve.

#[derive(Debug, Default)]
struct Outcomes {
    accepted: u64,
    written: u64,
    failed: BTreeMap<&'static str, u64>,
    /// Times the sender waited because `--max-in-flight` messages had no outcome.
    throttled: u64,
    done: Option<Result<(), &'static str>>,
}

impl Outcomes {
    fn in_flight(&self) -> u64 {
        self.accepted - self.written - self.failed.values().sum::<u64>()
    }
}

struct PeerState {
    id: u64,
    addr: SocketAddr,
    outcomes: RefCell<Outcomes>,
    resolved: Notify,
    /// Number of data messages sent, once the sender stopped.
    sent: Cell<Option<u64>>,
}

impl PeerState {
    fn resolve(&self, result: Result<(), &'static str>) {
        let mut o = self.outcomes.borrow_mut();
        match result {
            Ok(()) => o.written += 1,
            Err(reason) => *o.failed.entry(reason).or_default() += 1,
        }
        drop(o);
        self.resolved.notify_one();
    }

    fn send(self: &Rc<Self>, peer: &Peer, run: u64, seq: u64, payload: &Bytes) {
        self.outcomes.borrow_mut().accepted += 1;
        let outcome = peer.send(Data {
            run,
            seq,
            payload: payload.clone(),
        });
        let state = self.clone();
        actix::spawn(async move {
            state.resolve(outcome.await.map(|_| ()).map_err(|e| e.kind()));
        });
    }
}

/// Sends `Data` to one peer until `end`, then its `Done`.
async fn sender(
    state: Rc<PeerState>,
    peer: Peer,
    run: u64,
    payload: Bytes,
    rate: u64,
    max_in_flight: u64,
    end: Instant,
) {
    let mut seq = 0;
    let started = Instant::now();
    let step = Duration::from_millis(10);
    while Instant::now() < end {
        let in_flight = state.outcomes.borrow().in_flight();
        let room = max_in_flight.saturating_sub(in_flight);
        let due = if rate == 0 {
            room
        } else {
            let owed = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            owed.saturating_sub(seq).min(room)
        };
        for _ in 0..due {
            state.send(&peer, run, seq, &payload);
            seq += 1;
        }
        if room == 0 {
            state.outcomes.borrow_mut().throttled += 1;
        }
        if rate == 0 || room == 0 {
            // Wait for an outcome (or the end): room for more.
            let _ = tokio::time::timeout_at(
                tokio::time::Instant::from_std(end),
                state.resolved.notified(),
            )
            .await;
            if rate > 0 {
                tokio::time::sleep(step).await;
            }
        } else {
            tokio::time::sleep(step).await;
        }
    }
    state.sent.set(Some(seq));
    let outcome = peer.send(Done { run, sent: seq });
    let result = outcome.await.map(|_| ()).map_err(|e| e.kind());
    state.outcomes.borrow_mut().done = Some(result);
}

// ---------------------------------------------------------------------------------
// The summary.

#[derive(Serialize)]
struct PeerSummary {
    addr: String,
    accepted: u64,
    written: u64,
    failed: BTreeMap<&'static str, u64>,
    pending: u64,
    throttled: u64,
    /// "written", "failed: <reason>", or "pending".
    done: String,
}

#[derive(Serialize, Default)]
struct RunSummary {
    run: String,
    first_seq: u64,
    received: u64,
    bytes: u64,
    duplicates: u64,
    out_of_order: u64,
    gaps: u64,
    /// What the run's `Done` announced, if it arrived.
    announced: Option<u64>,
}

#[derive(Serialize, Default)]
struct SenderSummary {
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    gaps: u64,
    /// The sender's latest run sent its `Done`.
    done: bool,
    runs: Vec<RunSummary>,
}

#[derive(Serialize)]
struct LinkSummary {
    peer: u64,
    kind: String,
    state: String,
    accepted: u64,
    written: u64,
    written_bytes: u64,
    failed: BTreeMap<&'static str, u64>,
    failed_bytes: BTreeMap<&'static str, u64>,
    connection_attempts: u64,
    connections: u64,
}

#[derive(Serialize)]
struct DirectionLimits {
    link_capacity: usize,
    endpoint_reserve: usize,
    global_reserve: usize,
    /// The most bytes of the global reserve in use at once.
    global_peak: usize,
    /// The most bytes of any one endpoint's reserve in use at once.
    endpoint_peak: usize,
}

#[derive(Serialize)]
struct LimitsSummary {
    send: DirectionLimits,
    receive: DirectionLimits,
    /// The most bytes pending on any one outbound link, as sampled every second.
    link_pending_peak: usize,
    max_message: usize,
    expire_after_ms: Option<u64>,
}

#[derive(Serialize)]
struct Summary {
    node: u64,
    run: String,
    listen: String,
    framing: String,
    size: usize,
    rate: u64,
    duration_s: f64,
    elapsed_s: f64,
    /// "all peers done" or "grace timeout".
    finished: &'static str,
    peers: BTreeMap<String, PeerSummary>,
    senders: BTreeMap<String, SenderSummary>,
    /// This node's data messages by outcome: `written` and each failure reason.
    outcomes: BTreeMap<String, u64>,
    limits: LimitsSummary,
    links: Vec<LinkSummary>,
}

fn sender_summary(tally: &SenderTally, now: Instant) -> SenderSummary {
    let mut s = SenderSummary {
        done: tally.finished(now),
        ..SenderSummary::default()
    };
    for (run, t) in &tally.runs {
        let r = RunSummary {
            run: format!("{run:016x}"),
            first_seq: t.first_seq,
            received: t.received,
            bytes: t.bytes,
            duplicates: t.duplicates,
            out_of_order: t.out_of_order,
            gaps: t.gaps(),
            announced: t.announced,
        };
        s.received += r.received;
        s.duplicates += r.duplicates;
        s.out_of_order += r.out_of_order;
        s.gaps += r.gaps;
        s.runs.push(r);
    }
    s
}

fn status_line(start: Instant, node: u64, peers: &[Rc<PeerState>], tallies: &Tallies) {
    let now = Instant::now();
    for p in peers {
        let o = p.outcomes.borrow();
        let tallies = tallies.borrow();
        let r = tallies
            .get(&p.id)
            .map(|t| sender_summary(t, now))
            .unwrap_or_default();
        println!(
            "[{:5.1}s] node-{node} -> node-{}: accepted {} written {} failed {} in flight {} | \
             from node-{}: received {} (runs {}) dup {} out-of-order {} gaps {}{}",
            start.elapsed().as_secs_f64(),
            p.id,
            o.accepted,
            o.written,
            o.failed.values().sum::<u64>(),
            o.in_flight(),
            p.id,
            r.received,
            r.runs.len(),
            r.duplicates,
            r.out_of_order,
            r.gaps,
            if r.done { " done" } else { "" }
        );
    }
}

async fn run(options: Options) -> Result<(), String> {
    let start = Instant::now();
    let run = run_id();
    let mut builder = Node::builder(NodeId(options.id), options.listen).framing(options.framing);
    for &(id, addr) in &options.peers {
        builder = builder.peer(NodeId(id), addr);
    }
    if let Some(timeout) = options.heartbeat_timeout {
        builder = builder.heartbeat(HeartbeatConfig {
            timeout,
            ..HeartbeatConfig::default()
        });
    }
    builder = builder.limits(options.limits);
    if let Some(max) = options.max_message {
        builder = builder.max_message(max);
    }
    if let Some(after) = options.expire_after {
        builder = builder.expire_after(after);
    }
    let node = builder.start().await.map_err(|e| e.to_string())?;
    let tallies: Tallies = Rc::default();
    let receiver = Receiver {
        tallies: tallies.clone(),
    }
    .start();
    node.handle::<Data>(receiver.clone().recipient())
        .map_err(|e| e.to_string())?;
    node.handle::<Done>(receiver.clone().recipient())
        .map_err(|e| e.to_string())?;
    println!(
        "node-{} (run {run:016x}) listening on {}; sending {} B messages to {} peers for {:?} \
         ({}, {} framing)",
        options.id,
        node.local_addr(),
        options.size,
        options.peers.len(),
        options.duration,
        if options.rate == 0 {
            "as fast as accepted".to_string()
        } else {
            format!("{} msg/s per peer", options.rate)
        },
        options.framing_name
    );

    let end = start + options.duration;
    let deadline = end + options.grace;
    let payload: Bytes = (0..options.size).map(|i| (i % 251) as u8).collect();
    let mut peers = Vec::new();
    for &(id, addr) in &options.peers {
        let state = Rc::new(PeerState {
            id,
            addr,
            outcomes: RefCell::default(),
            resolved: Notify::new(),
            sent: Cell::new(None),
        });
        let peer = node.peer(NodeId(id)).await.map_err(|e| e.to_string())?;
        actix::spawn(sender(
            state.clone(),
            peer,
            run,
            payload.clone(),
            options.rate,
            options.max_in_flight as u64,
            end,
        ));
        peers.push(state);
    }

    // Until every peer is done and every outcome is known, or the grace time is over.
    let mut next_status = Instant::now() + Duration::from_secs(1);
    let mut link_pending_peak = 0;
    let finished = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = Instant::now();
        if now >= next_status {
            status_line(start, options.id, &peers, &tallies);
            next_status += Duration::from_secs(1);
            for link in node.links().await {
                link_pending_peak = link_pending_peak.max(link.pending_bytes);
            }
        }
        let all_sent = peers.iter().all(|p| {
            let o = p.outcomes.borrow();
            o.done.is_some() && o.in_flight() == 0
        });
        let all_received = {
            let tallies = tallies.borrow();
            peers
                .iter()
                .all(|p| tallies.get(&p.id).is_some_and(|t| t.finished(now)))
        };
        if all_sent && all_received {
            break "all peers done";
        }
        if now >= deadline {
            break "grace timeout";
        }
    };
    status_line(start, options.id, &peers, &tallies);
    println!(
        "node-{}: {finished} after {:.1} s; closing",
        options.id,
        start.elapsed().as_secs_f64()
    );
    let links = node.links().await;
    let limits = node.limits().await;
    // With every outcome known nothing is queued; otherwise a peer is down and what
    // waits for it fails with `closed` rather than being drained forever.
    let nothing_queued = peers.iter().all(|p| p.outcomes.borrow().in_flight() == 0);
    let closing = node.close(nothing_queued);
    if tokio::time::timeout(Duration::from_secs(5), closing)
        .await
        .is_err()
    {
        eprintln!("node-{}: closing took more than 5 s", options.id);
    }
    // Let the outcomes of what the close failed reach their counters.
    for _ in 0..50 {
        if peers.iter().all(|p| p.outcomes.borrow().in_flight() == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let now = Instant::now();
    let summary = Summary {
        node: options.id,
        run: format!("{run:016x}"),
        listen: node.local_addr().to_string(),
        framing: options.framing_name.clone(),
        size: options.size,
        rate: options.rate,
        duration_s: options.duration.as_secs_f64(),
        elapsed_s: start.elapsed().as_secs_f64(),
        finished,
        peers: peers
            .iter()
            .map(|p| {
                let o = p.outcomes.borrow();
                let done = match o.done {
                    None => "pending".to_string(),
                    Some(Ok(())) => "written".to_string(),
                    Some(Err(reason)) => format!("failed: {reason}"),
                };
                let summary = PeerSummary {
                    addr: p.addr.to_string(),
                    accepted: o.accepted,
                    written: o.written,
                    failed: o.failed.clone(),
                    pending: o.in_flight(),
                    throttled: o.throttled,
                    done,
                };
                (p.id.to_string(), summary)
            })
            .collect(),
        senders: tallies
            .borrow()
            .iter()
            .map(|(id, t)| (id.to_string(), sender_summary(t, now)))
            .collect(),
        outcomes: {
            let mut outcomes = BTreeMap::new();
            for p in &peers {
                let o = p.outcomes.borrow();
                *outcomes.entry("written".to_string()).or_default() += o.written;
                for (reason, n) in &o.failed {
                    *outcomes.entry(reason.to_string()).or_default() += n;
                }
            }
            outcomes
        },
        limits: LimitsSummary {
            send: direction_limits(&limits.send),
            receive: direction_limits(&limits.receive),
            link_pending_peak,
            max_message: node.config().max_message,
            expire_after_ms: options.expire_after.map(|d| d.as_millis() as u64),
        },
        links: links
            .iter()
            .filter(|l| l.counters.accepted > 0 || l.counters.connection_attempts > 0)
            .map(|l| LinkSummary {
                peer: l.peer.0,
                kind: l.kind.to_string(),
                state: l.state.to_string(),
                accepted: l.counters.accepted,
                written: l.counters.written,
                written_bytes: l.counters.written_bytes,
                failed: l.counters.failed.clone(),
                failed_bytes: l.counters.failed_bytes.clone(),
                connection_attempts: l.counters.connection_attempts,
                connections: l.counters.connections,
            })
            .collect(),
    };
    let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    match &options.summary {
        Some(path) => {
            std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {path}: {e}"))?;
            println!("node-{}: summary written to {path}", options.id);
        }
        None => println!("{json}"),
    }
    Ok(())
}

fn direction_limits(r: &internode::node::ReservesSnapshot) -> DirectionLimits {
    DirectionLimits {
        link_capacity: r.limits.link_capacity,
        endpoint_reserve: r.limits.endpoint_reserve,
        global_reserve: r.limits.global_reserve,
        global_peak: r.global_peak,
        endpoint_peak: r.endpoint_peak,
    }
}

fn main() -> ExitCode {
    let options = match common::start(parse_options) {
        Ok(options) => options,
        Err(code) => return code,
    };
    let id = options.id;
    // The run ends by itself at the grace deadline; the margin covers closing.
    let limit = options.duration + options.grace + Duration::from_secs(30);
    let result = actix::System::new().block_on(async move {
        tokio::time::timeout(limit, run(options))
            .await
            .unwrap_or_else(|_| Err(format!("did not finish within {limit:?}")))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node-{id}: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
