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
//! Flags: `--id N --listen ADDR --peer ID@ADDR` (repeatable; the address may be a
//! proxy's, such as `examples/fault_proxy.rs`, and a host name, resolved at every
//! connect attempt) `--advertise ADDR` (what the node tells its peers; by default
//! its listen address, or only the port when it listens on 0.0.0.0) `--size BYTES`
//! (100) `--payload pattern|random|half` (pattern: the bytes `i % 251`, the same in
//! every message, which LZ4 shrinks to almost nothing; random: random bytes, different
//! in every message, which no compression shrinks; half: runs of 32 random bytes and
//! 32 zeros, which LZ4 about halves)
//! `--rate MSGS_PER_S` (per peer; 0, the default, = as fast as the links accept)
//! `--duration SECS` (10) `--framing crc|lz4|unprotected` (crc) `--summary-json FILE`
//! `--record FILE` (see below) `--link-policy lossless|lossy` (lossless, for all three
//! link kinds) `--grace SECS` (10) `--max-in-flight N` (per peer, 1000; 0: no window
//! of its own, each send waits for room in its link instead, `Peer::enqueue`)
//! `--heartbeat-timeout SECS` (the library's default, 5), and the limits (docs/limits.md;
//! both directions, library defaults): `--link-capacity BYTES` (4 MiB)
//! `--endpoint-reserve BYTES` (128 MiB) `--global-reserve BYTES` (512 MiB)
//! `--max-message BYTES` (128 MiB) `--expire-after MS` (never), and authentication:
//! `--cluster-secret-file FILE` (none: any process may join) `--cluster-name NAME`
//! (`internode`), and TLS: `--tls-cert FILE --tls-key FILE --tls-ca FILE` (PEM; all
//! three or none; the certificate must name `node-<id>.<cluster name>`, see
//! `internode::node::TlsConfig`; `examples/gen_certs.rs` makes such files). BYTES may
//! end in `k`, `m` or `g` (powers of 1024).
//!
//! For `--duration` seconds the node sends sequence-numbered messages of `--size`
//! payload bytes to every peer, keeping at most `--max-in-flight` messages per peer
//! without an outcome, or with `--max-in-flight 0` only what the library's credit
//! lets into the link (so memory stays bounded when a peer is slow or down). Then it
//! sends each peer a final `Done` carrying how many messages it sent and, once the
//! outcomes of everything it sent the peer are known, a `Finished`. It keeps running
//! until every peer's `Done` and `Finished` arrived and its own outcomes are all known
//! (then up to 2 s more for the outcomes of its `Finished`), or the grace time
//! (`--duration` + `--grace`) is over: so no node closes while a peer still waits for
//! an acknowledgement from it. It prints a line per peer every second and, at the
//! end, writes a JSON summary:
//!
//! - `peers`: per peer, this node's messages `accepted` (handed to the link),
//!   `acknowledged` (lossless links: the peer's node took them), `written` (lossy
//!   links: handed to the kernel), `failed` by reason, still `pending` at exit, and
//!   the outcomes of `done` and `finished`;
//! - `senders`: per peer, the messages `received`, `duplicates`, `out_of_order` and
//!   `gaps` (missing sequence numbers), in total and per run of the sender, and
//!   whether its latest run's `done` and `finished` arrived;
//! - `outcomes`: this node's data messages by outcome (`acknowledged`, `written`, and
//!   each failure reason: `peer_restarted`, `expired`, `overloaded_link|endpoint|global`,
//!   `oversized`, `closed`, `connection_lost`...);
//! - `limits`: per direction, the limits and the peak bytes of reserve in use (global
//!   and of any one endpoint), and the peak pending bytes of any one link;
//! - `links` (outbound, with `acknowledged`, `replayed` and `peer_restarts`),
//!   `inbound` (the counters of all connections from peers: `duplicates` dropped,
//!   `oversized`, `connections`, `peer_restarts`...) and `peer_restarted_events`;
//! - `refused_connections`: connections this node refused, by reason (handshake
//!   failures, admission limits).
//!
//! Peers may start in any order and may be killed and started again while it runs.
//! Every process draws a random run id that its messages carry; a restarted sender
//! starts its sequence again from 0 under a new run id, and the receiver keeps a tally
//! per (sender, run). Gaps are counted from the first sequence number received from a
//! run (a restarted receiver did not miss what its previous incarnation received), up
//! to the count the run's `Done` announced. On lossless links (the default) a message
//! is delivered exactly once while both processes live, through lost connections;
//! messages that a peer had not acknowledged when it was killed fail `peer_restarted`
//! once its next incarnation answers. On lossy links, messages written to a
//! connection that then fails are lost and show as gaps at the receiver.
//!
//! A summary cannot show what a killed process saw. `--record FILE` makes the node
//! append, while it runs, what a checker needs across incarnations (text, one record
//! a line, fields separated by spaces; ms are since the UNIX epoch):
//!
//! - `start NODE RUN MS PID` first, and `end MS` after a normal exit;
//! - `r FROM RUN SEQ`: a data message received, written to the file (one `write`,
//!   so that it survives a `SIGKILL` of the process) by the handler before it returns;
//! - `o PEER FIRST LAST KIND FIRST_MS LAST_MS`: the data messages `FIRST..=LAST` of
//!   this run to `PEER` had the outcome `KIND` (`acknowledged`, `written`, or a
//!   failure reason), observed between `FIRST_MS` and `LAST_MS`. Consecutive outcomes
//!   of a kind are merged, and written at least every 50 ms and at exit: a killed
//!   sender loses at most the last 50 ms of outcomes;
//! - `done PEER SENT`: the `Done` announcing `SENT` messages is being sent;
//! - `event PEER KIND peer_restarted MS`: a link found the peer restarted.
//!
//! Exit status: 0 when it finished and the summary was written (the numbers are for
//! the caller to judge: the script checks them), 1 on errors, 2 on bad flags.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use internode::frame::Framing;
use internode::limits::Limits;
use internode::message::{DecodeError, EncodeError, Message};
use internode::node::{
    LinkNotice, Node, Peer, PeerAddr, Received, RefusalReason, SendError, SendErrorKind, Sent,
    TlsConfig,
};
use internode::session::{HeartbeatConfig, LinkEvent, LinkPolicy};
use internode::{LinkKind, NodeId};
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

/// After `Done`, once every outcome of the run to the peer is known: the peer may
/// close, as this node needs nothing more from it (on lossless links an outcome is
/// known when the peer acknowledged, so a node that closed as soon as it had the
/// peer's `Done` could leave the peer waiting for an acknowledgement lost in a cut).
#[derive(Debug, Serialize, Deserialize)]
struct Finished {
    run: u64,
}
internode::message!(Finished, verb = 3);

// ---------------------------------------------------------------------------------
// Flags.

struct Options {
    id: u64,
    listen: SocketAddr,
    peers: Vec<(u64, PeerAddr)>,
    advertise: Option<SocketAddr>,
    size: usize,
    payload: PayloadKind,
    rate: u64,
    duration: Duration,
    grace: Duration,
    framing: Framing,
    summary: Option<String>,
    record: Option<String>,
    link_policy: LinkPolicy,
    max_in_flight: usize,
    heartbeat_timeout: Option<Duration>,
    limits: Limits,
    max_message: Option<usize>,
    expire_after: Option<Duration>,
    cluster_secret_file: Option<String>,
    cluster_name: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_ca: Option<String>,
}

/// One node of a local cluster per process: sends sequence-numbered messages to its
/// peers, checks what it receives, and writes a summary.
#[derive(Parser)]
#[command(name = "node")]
struct Args {
    /// This node's id
    #[arg(long, value_name = "N")]
    id: u64,
    /// The address to listen on
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// A peer (repeatable): ID@IP:PORT or ID@HOST:PORT (a host name is resolved at
    /// every connect attempt); the address may be a proxy's
    #[arg(long = "peer", value_name = "ID@ADDR", value_parser = peer_flag)]
    peers: Vec<(u64, PeerAddr)>,
    /// The address peers connect back to, if not the listen address (a node
    /// listening on 0.0.0.0 otherwise announces only its port)
    #[arg(long, value_name = "ADDR")]
    advertise: Option<SocketAddr>,
    /// Payload bytes of each message (at most 64 MiB)
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    size: usize,
    /// What fills the payloads: pattern (the bytes i % 251, which compress well),
    /// random (different in every message, incompressible) or half (runs of 32 random
    /// bytes and 32 zeros: LZ4 halves them)
    #[arg(long, value_name = "KIND", default_value = "pattern", value_parser = payload_flag)]
    payload: PayloadKind,
    /// Messages per second per peer (0: as fast as the links accept)
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 0)]
    rate: u64,
    /// Seconds of traffic
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = common::seconds)]
    duration: Duration,
    /// Seconds after the traffic to wait for the peers and the outcomes
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = common::seconds)]
    grace: Duration,
    /// Frames of every link: crc, lz4 or unprotected
    #[arg(long, default_value_t = Framing::Crc)]
    framing: Framing,
    /// Write the JSON summary to FILE (default: standard output)
    #[arg(long = "summary-json", value_name = "FILE")]
    summary: Option<String>,
    /// Append, while running, the records a checker needs across incarnations
    #[arg(long, value_name = "FILE")]
    record: Option<String>,
    /// The policy of all three link kinds: lossless or lossy
    #[arg(long, value_name = "POLICY", default_value = "lossless", value_parser = policy_flag)]
    link_policy: LinkPolicy,
    /// Messages per peer without an outcome (0: no window of its own, each send waits
    /// for room in its link)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_in_flight: usize,
    /// Seconds without traffic before a connection is declared dead (default: the
    /// library's, 5)
    #[arg(long, value_name = "SECS", value_parser = common::seconds)]
    heartbeat_timeout: Option<Duration>,
    /// Bytes a link may hold, both directions (default: the library's, 4m); BYTES may
    /// end in k, m or g (powers of 1024)
    #[arg(long, value_name = "BYTES", value_parser = byte_count)]
    link_capacity: Option<usize>,
    /// Bytes of reserve one peer may use, both directions (default: 128m)
    #[arg(long, value_name = "BYTES", value_parser = byte_count)]
    endpoint_reserve: Option<usize>,
    /// Bytes of reserve the node may use, both directions (default: 512m)
    #[arg(long, value_name = "BYTES", value_parser = byte_count)]
    global_reserve: Option<usize>,
    /// The largest message, both directions (default: 128m)
    #[arg(long, value_name = "BYTES", value_parser = byte_count)]
    max_message: Option<usize>,
    /// Milliseconds after which a message not yet written expires (default: never)
    #[arg(long, value_name = "MS")]
    expire_after: Option<u64>,
    /// A file holding the cluster secret (default: none, any process may join)
    #[arg(long, value_name = "FILE")]
    cluster_secret_file: Option<String>,
    /// The cluster's name (default: internode)
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
    /// This node's certificate (PEM), naming node-<id>.<cluster name>
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<String>,
    /// This node's private key (PEM)
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_ca"])]
    tls_key: Option<String>,
    /// The cluster's CA certificates (PEM)
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<String>,
}

/// `ID@ADDR`.
fn peer_flag(value: &str) -> Result<(u64, PeerAddr), String> {
    let bad = || format!("{value:?} is not ID@ADDR");
    let (peer, addr) = value.split_once('@').ok_or_else(bad)?;
    Ok((
        peer.parse().map_err(|_| bad())?,
        addr.parse().map_err(|_| bad())?,
    ))
}

fn payload_flag(value: &str) -> Result<PayloadKind, String> {
    match value {
        "pattern" => Ok(PayloadKind::Pattern),
        "random" => Ok(PayloadKind::Random),
        "half" => Ok(PayloadKind::Half),
        _ => Err(format!("{value:?} is not pattern, random or half")),
    }
}

fn policy_flag(value: &str) -> Result<LinkPolicy, String> {
    match value {
        "lossless" => Ok(LinkPolicy::Lossless),
        "lossy" => Ok(LinkPolicy::Lossy),
        _ => Err(format!("{value:?} is neither lossless nor lossy")),
    }
}

fn byte_count(value: &str) -> Result<usize, String> {
    usize::try_from(common::bytes(value)?).map_err(|_| format!("{value} is too large"))
}

fn check(args: Args) -> Result<Options, String> {
    if args.peers.iter().any(|(p, _)| *p == args.id) {
        return Err("a node is not its own --peer".into());
    }
    let mut ids: Vec<u64> = args.peers.iter().map(|(p, _)| *p).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != args.peers.len() {
        return Err("each --peer id once".into());
    }
    if args.size > 64 << 20 {
        return Err("--size must be at most 64 MiB".into());
    }
    let mut limits = Limits::default();
    limits.link_capacity = args.link_capacity.unwrap_or(limits.link_capacity);
    limits.endpoint_reserve = args.endpoint_reserve.unwrap_or(limits.endpoint_reserve);
    limits.global_reserve = args.global_reserve.unwrap_or(limits.global_reserve);
    Ok(Options {
        id: args.id,
        listen: args.listen,
        peers: args.peers,
        advertise: args.advertise,
        size: args.size,
        payload: args.payload,
        rate: args.rate,
        duration: args.duration,
        grace: args.grace,
        framing: args.framing,
        summary: args.summary,
        record: args.record,
        link_policy: args.link_policy,
        max_in_flight: args.max_in_flight,
        heartbeat_timeout: args.heartbeat_timeout,
        limits,
        max_message: args.max_message,
        expire_after: args.expire_after.map(Duration::from_millis),
        cluster_secret_file: args.cluster_secret_file,
        cluster_name: args.cluster_name,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_ca: args.tls_ca,
    })
}

/// What fills the data messages' payloads (`--payload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PayloadKind {
    /// The bytes `i % 251`, the same in every message: LZ4 shrinks them to almost
    /// nothing.
    Pattern,
    /// Random bytes, different in every message: no compression shrinks them.
    Random,
    /// Runs of 32 random bytes and 32 zeros, different in every message: LZ4 halves
    /// them, about (a stand-in for data that compresses 2:1).
    Half,
}

impl PayloadKind {
    fn name(self) -> &'static str {
        match self {
            PayloadKind::Pattern => "pattern",
            PayloadKind::Random => "random",
            PayloadKind::Half => "half",
        }
    }
}

/// The payloads of one sender's messages, one after the other: slices of a pool
/// shared by all senders (no copy per message).
#[derive(Clone)]
struct Payloads {
    pool: Bytes,
    size: usize,
    /// Where the next payload starts in the pool.
    next: usize,
}

impl Payloads {
    /// Random bytes in the pool: at least this many, so that the payloads in one
    /// frame (at most 128 KiB) or one LZ4 window (64 KiB) never repeat.
    const RANDOM_POOL: usize = 4 << 20;

    fn new(kind: PayloadKind, size: usize) -> Result<Payloads, String> {
        let pool = match kind {
            PayloadKind::Pattern => (0..size).map(|i| (i % 251) as u8).collect(),
            PayloadKind::Random | PayloadKind::Half => {
                let mut pool = vec![0u8; Payloads::RANDOM_POOL.max(2 * size)];
                getrandom::fill(&mut pool).map_err(|e| format!("no random payload: {e}"))?;
                if kind == PayloadKind::Half {
                    for run in pool.chunks_mut(64) {
                        let zeros = run.len().min(32);
                        run[zeros..].fill(0);
                    }
                }
                Bytes::from(pool)
            }
        };
        Ok(Payloads {
            pool,
            size,
            next: 0,
        })
    }

    /// The next message's payload: the pattern every time, or the next `size` random
    /// bytes of the pool (from its start again at its end).
    fn next_payload(&mut self) -> Bytes {
        if self.next + self.size > self.pool.len() {
            self.next = 0;
        }
        let payload = self.pool.slice(self.next..self.next + self.size);
        self.next += self.size;
        payload
    }
}

/// A random run id, from the OS random number generator.
fn run_id() -> Result<u64, String> {
    getrandom::u64().map_err(|e| format!("no run id: {e}"))
}

/// Milliseconds since the UNIX epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------------
// The record (`--record FILE`, format in the module docs).

/// Consecutive outcomes of one kind to one peer, not yet written.
struct OpenRange {
    first: u64,
    last: u64,
    kind: &'static str,
    first_ms: u64,
    last_ms: u64,
}

struct Record {
    path: String,
    out: std::io::BufWriter<std::fs::File>,
    /// Per peer.
    open: BTreeMap<u64, OpenRange>,
    /// The first write error (the run then fails).
    error: Option<String>,
}

type SharedRecord = Rc<RefCell<Record>>;

impl Record {
    fn create(path: &str, node: u64, run: u64) -> Result<Record, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {path}: {e}"))?;
        let mut record = Record {
            path: path.to_string(),
            out: std::io::BufWriter::with_capacity(64 * 1024, file),
            open: BTreeMap::new(),
            error: None,
        };
        let line = format!(
            "start {node} {run:016x} {} {}",
            now_ms(),
            std::process::id()
        );
        record.line(format_args!("{line}"));
        record.flush();
        record.error.take().map_or(Ok(record), Err)
    }

    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        if let Err(e) = self
            .out
            .write_fmt(args)
            .and_then(|_| self.out.write_all(b"\n"))
        {
            self.failed(e);
        }
    }

    fn failed(&mut self, e: std::io::Error) {
        if self.error.is_none() {
            eprintln!("cannot write {}: {e}", self.path);
            self.error = Some(format!("cannot write {}: {e}", self.path));
        }
    }

    /// A data message received: written through to the file at once.
    fn received(&mut self, from: u64, run: u64, seq: u64) {
        self.line(format_args!("r {from} {run:016x} {seq}"));
        self.flush_buffer();
    }

    /// The outcome of data message `seq` to `peer`.
    fn outcome(&mut self, peer: u64, seq: u64, kind: &'static str) {
        let ms = now_ms();
        if let Some(open) = self.open.get_mut(&peer) {
            if open.kind == kind && open.last + 1 == seq {
                open.last = seq;
                open.last_ms = ms;
                return;
            }
        }
        let range = OpenRange {
            first: seq,
            last: seq,
            kind,
            first_ms: ms,
            last_ms: ms,
        };
        if let Some(done) = self.open.insert(peer, range) {
            self.write_range(peer, &done);
        }
    }

    fn write_range(&mut self, peer: u64, r: &OpenRange) {
        self.line(format_args!(
            "o {peer} {} {} {} {} {}",
            r.first, r.last, r.kind, r.first_ms, r.last_ms
        ));
    }

    /// Writes every open range and flushes.
    fn flush(&mut self) {
        for (peer, range) in std::mem::take(&mut self.open) {
            self.write_range(peer, &range);
        }
        self.flush_buffer();
    }

    fn flush_buffer(&mut self) {
        if let Err(e) = self.out.flush() {
            self.failed(e);
        }
    }
}

/// Writes a record line, if there is a record.
fn record_line(record: &Option<SharedRecord>, args: std::fmt::Arguments<'_>) {
    if let Some(record) = record {
        let mut record = record.borrow_mut();
        record.line(args);
        record.flush_buffer();
    }
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
    /// The run whose `Finished` arrived.
    finished_run: Option<u64>,
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

    /// The sender's latest run sent its `Finished`: it needs nothing more from here.
    fn said_finished(&self) -> bool {
        self.runs
            .last()
            .is_some_and(|(run, _)| self.finished_run == Some(*run))
    }
}

type Tallies = Rc<RefCell<BTreeMap<u64, SenderTally>>>;

/// The handler of the three message types.
struct Receiver {
    tallies: Tallies,
    record: Option<SharedRecord>,
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
        if let Some(record) = &self.record {
            record
                .borrow_mut()
                .received(m.from.0, m.message.run, m.message.seq);
        }
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

impl Handler<Received<Finished>> for Receiver {
    type Result = ();

    fn handle(&mut self, m: Received<Finished>, _: &mut Context<Self>) {
        let mut tallies = self.tallies.borrow_mut();
        let tally = tallies.entry(m.from.0).or_default();
        tally.run(m.message.run);
        tally.finished_run = Some(m.message.run);
    }
}

/// Counts (and records) the links' `PeerRestarted` events.
struct Events {
    node: u64,
    record: Option<SharedRecord>,
    peer_restarts: Rc<Cell<u64>>,
}

impl Actor for Events {
    type Context = Context<Self>;
}

impl Handler<LinkNotice> for Events {
    type Result = ();

    fn handle(&mut self, n: LinkNotice, _: &mut Context<Self>) {
        if let LinkEvent::PeerRestarted { .. } = n.event {
            self.peer_restarts.set(self.peer_restarts.get() + 1);
            println!(
                "node-{}: the {} link to node-{} found it restarted",
                self.node, n.kind, n.peer.0
            );
            record_line(
                &self.record,
                format_args!("event {} {} peer_restarted {}", n.peer.0, n.kind, now_ms()),
            );
        }
    }
}

// ---------------------------------------------------------------------------------
// Sending: per peer, outcomes counted as they resolve.

/// The name of a message's outcome: `acknowledged`, `written`, `delivered_locally`,
/// or the failure's [`SendError::kind`].
fn outcome_kind(outcome: &Result<Sent, SendError>) -> &'static str {
    match outcome {
        Ok(Sent::Acknowledged) => "acknowledged",
        Ok(Sent::Written) => "written",
        Ok(Sent::DeliveredLocally) => "delivered_locally",
        Ok(_) => "sent",
        Err(e) => e.kind().as_str(),
    }
}

#[derive(Debug, Default)]
struct Outcomes {
    accepted: u64,
    /// Lossless links.
    acknowledged: u64,
    /// Lossy links.
    written: u64,
    /// Any other success (none is expected: a node is not its own peer).
    other: u64,
    failed: BTreeMap<&'static str, u64>,
    /// Times the sender waited because `--max-in-flight` messages had no outcome.
    throttled: u64,
    /// The outcome of `Done`, by [`outcome_kind`].
    done: Option<&'static str>,
    /// The outcome of `Finished`.
    finished: Option<&'static str>,
}

impl Outcomes {
    fn in_flight(&self) -> u64 {
        self.accepted
            - self.acknowledged
            - self.written
            - self.other
            - self.failed.values().sum::<u64>()
    }
}

struct PeerState {
    id: u64,
    addr: PeerAddr,
    outcomes: RefCell<Outcomes>,
    resolved: Notify,
    /// Number of data messages sent, once the sender stopped.
    sent: Cell<Option<u64>>,
    record: Option<SharedRecord>,
}

impl PeerState {
    fn resolve(&self, seq: u64, outcome: Result<Sent, SendError>) {
        let kind = outcome_kind(&outcome);
        let mut o = self.outcomes.borrow_mut();
        match outcome {
            Ok(Sent::Acknowledged) => o.acknowledged += 1,
            Ok(Sent::Written) => o.written += 1,
            Ok(_) => o.other += 1,
            Err(_) => *o.failed.entry(kind).or_default() += 1,
        }
        drop(o);
        if let Some(record) = &self.record {
            record.borrow_mut().outcome(self.id, seq, kind);
        }
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
            state.resolve(seq, outcome.await);
        });
    }

    /// Queues message `seq` once its link has room (the library's backpressure); false
    /// if `end` came first (the message is withdrawn, never sent).
    async fn send_waiting(
        self: &Rc<Self>,
        peer: &Peer,
        run: u64,
        seq: u64,
        payload: &Bytes,
        end: Instant,
    ) -> bool {
        let data = Data {
            run,
            seq,
            payload: payload.clone(),
        };
        let deadline = tokio::time::Instant::from_std(end);
        let Ok(queued) = tokio::time::timeout_at(deadline, peer.enqueue(data)).await else {
            return false;
        };
        self.outcomes.borrow_mut().accepted += 1;
        match queued {
            Ok(queued) => {
                let state = self.clone();
                actix::spawn(async move {
                    state.resolve(seq, queued.await);
                });
            }
            Err(e) => self.resolve(seq, Err(e)),
        }
        true
    }
}

/// Sends `Data` to one peer until `end` (`max_in_flight` 0: each message once its
/// link has room), then its `Done`.
async fn sender(
    state: Rc<PeerState>,
    peer: Peer,
    run: u64,
    mut payloads: Payloads,
    rate: u64,
    max_in_flight: u64,
    end: Instant,
) {
    let mut seq = 0;
    let started = Instant::now();
    let step = Duration::from_millis(10);
    while max_in_flight == 0 && Instant::now() < end {
        if rate > 0 {
            let owed = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            if owed <= seq {
                tokio::time::sleep(step).await;
                continue;
            }
        }
        if !state
            .send_waiting(&peer, run, seq, &payloads.next_payload(), end)
            .await
        {
            break;
        }
        seq += 1;
    }
    while max_in_flight > 0 && Instant::now() < end {
        let in_flight = state.outcomes.borrow().in_flight();
        let room = max_in_flight.saturating_sub(in_flight);
        let due = if rate == 0 {
            room
        } else {
            let owed = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            owed.saturating_sub(seq).min(room)
        };
        for _ in 0..due {
            state.send(&peer, run, seq, &payloads.next_payload());
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
    record_line(&state.record, format_args!("done {} {seq}", state.id));
    let outcome = peer.send(Done { run, sent: seq }).await;
    state.outcomes.borrow_mut().done = Some(outcome_kind(&outcome));
    while state.outcomes.borrow().in_flight() > 0 {
        tokio::time::sleep(step).await;
    }
    let outcome = peer.send(Finished { run }).await;
    state.outcomes.borrow_mut().finished = Some(outcome_kind(&outcome));
}

// ---------------------------------------------------------------------------------
// The summary.

#[derive(Serialize)]
struct PeerSummary {
    addr: String,
    accepted: u64,
    acknowledged: u64,
    written: u64,
    failed: BTreeMap<&'static str, u64>,
    pending: u64,
    throttled: u64,
    /// "acknowledged", "written", "failed: <reason>", or "pending".
    done: String,
    /// The outcome of `Finished`, likewise.
    finished: String,
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
    /// The sender's latest run sent its `Finished`.
    finished: bool,
    runs: Vec<RunSummary>,
}

#[derive(Serialize)]
struct LinkSummary {
    peer: u64,
    kind: String,
    policy: String,
    state: String,
    accepted: u64,
    written: u64,
    written_bytes: u64,
    acknowledged: u64,
    replayed: u64,
    failed: BTreeMap<&'static str, u64>,
    failed_bytes: BTreeMap<&'static str, u64>,
    connection_attempts: u64,
    connections: u64,
    peer_restarts: u64,
}

/// The counters of every connection from peers.
#[derive(Serialize)]
struct InboundSummary {
    received: u64,
    dispatched: u64,
    processed: u64,
    duplicates: u64,
    oversized: u64,
    expired: u64,
    corrupt_frames: u64,
    errors: u64,
    connections: u64,
    peer_restarts: u64,
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
    link_policy: String,
    size: usize,
    rate: u64,
    duration_s: f64,
    elapsed_s: f64,
    /// "all peers done" or "grace timeout".
    finished: &'static str,
    peers: BTreeMap<String, PeerSummary>,
    senders: BTreeMap<String, SenderSummary>,
    /// This node's data messages by outcome: `acknowledged`, `written` and each
    /// failure reason.
    outcomes: BTreeMap<String, u64>,
    limits: LimitsSummary,
    links: Vec<LinkSummary>,
    inbound: InboundSummary,
    /// `PeerRestarted` events of this node's links.
    peer_restarted_events: u64,
    /// Connections this node refused, by reason (`Node::refused_connections`).
    refused_connections: BTreeMap<&'static str, u64>,
}

fn sender_summary(tally: &SenderTally, now: Instant) -> SenderSummary {
    let mut s = SenderSummary {
        done: tally.finished(now),
        finished: tally.said_finished(),
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
            "[{:5.1}s] node-{node} -> node-{}: accepted {} acknowledged {} written {} failed {} \
             in flight {} | from node-{}: received {} (runs {}) dup {} out-of-order {} gaps {}{}",
            start.elapsed().as_secs_f64(),
            p.id,
            o.accepted,
            o.acknowledged,
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
    let run = run_id()?;
    let record: Option<SharedRecord> = match &options.record {
        Some(path) => Some(Rc::new(RefCell::new(Record::create(
            path, options.id, run,
        )?))),
        None => None,
    };
    let mut builder = Node::builder(NodeId(options.id), options.listen).framing(options.framing);
    for kind in LinkKind::ALL {
        builder = builder.link_policy(kind, options.link_policy);
    }
    for (id, addr) in &options.peers {
        builder = builder.peer(NodeId(*id), addr.clone());
    }
    if let Some(addr) = options.advertise {
        builder = builder.advertise(addr);
    }
    if let Some(timeout) = options.heartbeat_timeout {
        builder = builder.heartbeat(HeartbeatConfig::default().timeout(timeout));
    }
    builder = builder.limits(options.limits);
    if let Some(max) = options.max_message {
        builder = builder.max_message(max);
    }
    if let Some(after) = options.expire_after {
        builder = builder.expire_after(after);
    }
    if let Some(file) = &options.cluster_secret_file {
        builder = builder
            .cluster_secret_file(file)
            .map_err(|e| format!("--cluster-secret-file {file}: {e}"))?;
    }
    if let Some(name) = &options.cluster_name {
        builder = builder.cluster_name(name.clone());
    }
    match (&options.tls_cert, &options.tls_key, &options.tls_ca) {
        (Some(cert), Some(key), Some(ca)) => {
            let tls = TlsConfig::from_pem_files(cert, key, ca).map_err(|e| format!("TLS: {e}"))?;
            builder = builder.tls(tls);
        }
        (None, None, None) => {}
        _ => return Err("--tls-cert, --tls-key and --tls-ca go together".into()),
    }
    let node = builder.start().await.map_err(|e| e.to_string())?;
    let tallies: Tallies = Rc::default();
    let receiver = Receiver {
        tallies: tallies.clone(),
        record: record.clone(),
    }
    .start();
    let peer_restarts = Rc::new(Cell::new(0));
    let events = Events {
        node: options.id,
        record: record.clone(),
        peer_restarts: peer_restarts.clone(),
    }
    .start();
    node.subscribe(events.recipient()).await;
    node.handle::<Data>(receiver.clone().recipient())
        .map_err(|e| e.to_string())?;
    node.handle::<Done>(receiver.clone().recipient())
        .map_err(|e| e.to_string())?;
    node.handle::<Finished>(receiver.clone().recipient())
        .map_err(|e| e.to_string())?;
    println!(
        "node-{} (run {run:016x}) listening on {}; sending {} B messages ({} payloads) to {} peers for {:?} \
         ({}, {} framing, {} links)",
        options.id,
        node.local_addr(),
        options.size,
        options.payload.name(),
        options.peers.len(),
        options.duration,
        if options.rate == 0 {
            "as fast as accepted".to_string()
        } else {
            format!("{} msg/s per peer", options.rate)
        },
        options.framing,
        policy_name(options.link_policy)
    );

    let end = start + options.duration;
    let deadline = end + options.grace;
    let payloads = Payloads::new(options.payload, options.size)?;
    let mut peers = Vec::new();
    for (id, addr) in &options.peers {
        let (id, addr) = (*id, addr.clone());
        let state = Rc::new(PeerState {
            id,
            addr,
            outcomes: RefCell::default(),
            resolved: Notify::new(),
            sent: Cell::new(None),
            record: record.clone(),
        });
        let peer = node.peer(NodeId(id));
        actix::spawn(sender(
            state.clone(),
            peer,
            run,
            payloads.clone(),
            options.rate,
            options.max_in_flight as u64,
            end,
        ));
        peers.push(state);
    }

    // Until every peer is done and finished and every outcome is known, or the grace
    // time is over; then at most `LINGER` more for the outcomes of this node's
    // `Finished` (a peer may close before its acknowledgement came through).
    const LINGER: Duration = Duration::from_secs(2);
    let mut ready_since: Option<Instant> = None;
    let mut next_status = Instant::now() + Duration::from_secs(1);
    let mut link_pending_peak = 0;
    let finished = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(record) = &record {
            record.borrow_mut().flush();
        }
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
            peers.iter().all(|p| {
                tallies
                    .get(&p.id)
                    .is_some_and(|t| t.finished(now) && t.said_finished())
            })
        };
        if all_sent && all_received {
            let since = *ready_since.get_or_insert(now);
            let all_finished = peers.iter().all(|p| p.outcomes.borrow().finished.is_some());
            if all_finished || now.duration_since(since) >= LINGER {
                break "all peers done";
            }
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
    let inbound = node.inbound_counters().await;
    let refused_connections = node.refused_connections().await;
    // With every outcome known nothing is queued; otherwise a peer is down and what
    // waits for it fails with `closed` rather than being drained forever.
    let nothing_queued = peers.iter().all(|p| {
        let o = p.outcomes.borrow();
        o.in_flight() == 0 && o.finished.is_some()
    });
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
    if let Some(record) = &record {
        let mut record = record.borrow_mut();
        record.flush();
        record.line(format_args!("end {}", now_ms()));
        record.flush();
        if let Some(e) = record.error.take() {
            return Err(e);
        }
    }

    let now = Instant::now();
    let summary = Summary {
        node: options.id,
        run: format!("{run:016x}"),
        listen: node.local_addr().to_string(),
        framing: options.framing.to_string(),
        link_policy: policy_name(options.link_policy).to_string(),
        size: options.size,
        rate: options.rate,
        duration_s: options.duration.as_secs_f64(),
        elapsed_s: start.elapsed().as_secs_f64(),
        finished,
        peers: peers
            .iter()
            .map(|p| {
                let o = p.outcomes.borrow();
                let name = |outcome: Option<&'static str>| match outcome {
                    None => "pending".to_string(),
                    Some(kind @ ("acknowledged" | "written")) => kind.to_string(),
                    Some(reason) => format!("failed: {reason}"),
                };
                let summary = PeerSummary {
                    addr: p.addr.to_string(),
                    accepted: o.accepted,
                    acknowledged: o.acknowledged,
                    written: o.written,
                    failed: o.failed.clone(),
                    pending: o.in_flight(),
                    throttled: o.throttled,
                    done: name(o.done),
                    finished: name(o.finished),
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
                for (kind, n) in [
                    ("acknowledged", o.acknowledged),
                    ("written", o.written),
                    ("other", o.other),
                ] {
                    if n > 0 {
                        *outcomes.entry(kind.to_string()).or_default() += n;
                    }
                }
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
                policy: policy_name(l.policy).to_string(),
                state: l.state.to_string(),
                accepted: l.counters.accepted,
                written: l.counters.written,
                written_bytes: l.counters.written_bytes,
                acknowledged: l.counters.acknowledged,
                replayed: l.counters.replayed,
                failed: by_label(&l.counters.failed, SendErrorKind::as_str),
                failed_bytes: by_label(&l.counters.failed_bytes, SendErrorKind::as_str),
                connection_attempts: l.counters.connection_attempts,
                connections: l.counters.connections,
                peer_restarts: l.counters.peer_restarts,
            })
            .collect(),
        inbound: InboundSummary {
            received: inbound.received,
            dispatched: inbound.dispatched,
            processed: inbound.processed,
            duplicates: inbound.duplicates,
            oversized: inbound.oversized,
            expired: inbound.expired,
            corrupt_frames: inbound.corrupt_frames,
            errors: inbound.errors(),
            connections: inbound.connections,
            peer_restarts: inbound.peer_restarts,
        },
        peer_restarted_events: peer_restarts.get(),
        refused_connections: by_label(&refused_connections, RefusalReason::as_str),
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

/// Counters keyed by their labels (the JSON's keys), in the order of the labels.
fn by_label<K: Copy>(
    counts: &BTreeMap<K, u64>,
    label: fn(K) -> &'static str,
) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for (&k, &n) in counts {
        *out.entry(label(k)).or_default() += n;
    }
    out
}

fn policy_name(policy: LinkPolicy) -> &'static str {
    match policy {
        LinkPolicy::Lossless => "lossless",
        LinkPolicy::Lossy => "lossy",
    }
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
    let options = common::start(check);
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
