//! The run's output: a table with one row per figure (cores, workload, size, metric,
//! implementation: median, min, max over repetitions, the ratios to the baselines,
//! for internode to internode-lossy and to internode-hand and, for internode-tls,
//! to internode over plain TCP), the targets with PASS or MISS, the details a
//! workload measured that are not one number (many-peers: refusals and disconnect
//! reasons...), the main ratios of TLS to plain when both ran, and one JSON
//! document with all of it.
//!
//! The targets are issue 13's, of `internode` (serde messages through `Peer::send` /
//! `Peer::request`, lossless links) against `framed` in the same run:
//! one-way 64 B >= 0.5 x, 1 KiB >= 0.8 x, 64 KiB and 1 MiB >= 0.9 x; one-way 64 B
//! through the batch path (`internode-batch`: `Peer::send_many`) >= 1.0 x; round-trip p50 with busy cores <= 1.2 x; 64
//! outstanding requests with busy cores >= 0.6 x; the urgent link's p99 while the
//! large link is flooded <= 2 x the p99 of `rr` (no flood) with the same cores; idle
//! memory <= 40 KiB per connected peer from 16 peers on. Then issue 14's, of the
//! many-peers workload's hub (absolute): idle CPU <= 1 % of a core, wake-ups <= 1
//! per peer per keepalive interval, userspace memory <= 40 KiB per peer, no
//! connection dropped by a full listen queue while the peers reconnect. Then the
//! lossless-sessions issue's: lossless one-way throughput at least 0.9 x lossy at
//! every size.
//!
//! A ratio is the median over repetitions of a row's figure divided by the baseline's
//! figure of the same repetition. A MISS is reported, never an error: these are
//! performance targets, not tests.

use std::fmt::Write as _;

use serde_json::json;

use crate::impls::Impl;
use crate::stats::{max, median, min, Key, Metric, Results};
use crate::workloads::{Cores, Workload, RR_SIZE};

/// What a target's figure is compared with.
#[derive(Debug, Clone, Copy)]
enum Against {
    /// The framed baseline's figure: the target is a ratio.
    Framed,
    /// The same figure of internode with lossy links: the target is a ratio.
    Lossy,
    /// Internode's `rr` p99 with the same cores: the target is a ratio.
    RrP99,
    /// Nothing: the target is the figure itself.
    Absolute,
}

/// Which sizes of a workload (which peer counts, for `idle`) a target covers.
#[derive(Debug, Clone, Copy)]
enum Sizes {
    Exactly(usize),
    /// This size and all above it.
    From(usize),
}

impl Sizes {
    fn covers(self, size: usize) -> bool {
        match self {
            Sizes::Exactly(s) => size == s,
            Sizes::From(s) => size >= s,
        }
    }
}

/// A target.
struct Target {
    /// Whose figure: `internode` (serde messages through `Peer::send` /
    /// `Peer::request`, lossless links), or `internode-batch` (the same through
    /// `Peer::send_many`).
    of: Impl,
    workload: Workload,
    /// `None`: with idle and with busy cores.
    cores: Option<Cores>,
    sizes: Sizes,
    metric: Metric,
    against: Against,
    limit: f64,
}

/// A target on the figure `metric` of one-way messages of `size` bytes.
const fn oneway(of: Impl, size: usize, metric: Metric, against: Against, limit: f64) -> Target {
    Target {
        of,
        workload: Workload::Oneway,
        cores: None,
        sizes: Sizes::Exactly(size),
        metric,
        against,
        limit,
    }
}

/// A target of issue 14 on the figure `metric` of the many-peers workload: at most
/// `limit`, at any number of peers.
const fn many_peers(metric: Metric, limit: f64) -> Target {
    Target {
        of: Impl::Internode,
        workload: Workload::ManyPeers,
        cores: None,
        sizes: Sizes::From(1),
        metric,
        against: Against::Absolute,
        limit,
    }
}

/// Issue 13's targets (against framed in the same run, lossless links, serde
/// messages), issue 14's on many peers (hub idle CPU under 1 % of a core, at most
/// one wake-up per peer per keepalive interval, at most 40 KiB of userspace memory
/// per peer, no connection dropped by a full listen queue when the peers
/// reconnect), then the lossless-sessions issue's (lossless one-way throughput at
/// least 0.9 of lossy at every size).
const TARGETS: [Target; 17] = [
    oneway(Impl::Internode, 64, Metric::MsgsPerS, Against::Framed, 0.5),
    oneway(
        Impl::Internode,
        1 << 10,
        Metric::MsgsPerS,
        Against::Framed,
        0.8,
    ),
    oneway(
        Impl::Internode,
        64 << 10,
        Metric::MBPerS,
        Against::Framed,
        0.9,
    ),
    oneway(
        Impl::Internode,
        1 << 20,
        Metric::MBPerS,
        Against::Framed,
        0.9,
    ),
    oneway(
        Impl::InternodeBatch,
        64,
        Metric::MsgsPerS,
        Against::Framed,
        1.0,
    ),
    Target {
        of: Impl::Internode,
        workload: Workload::Rr,
        cores: Some(Cores::Busy),
        sizes: Sizes::Exactly(RR_SIZE),
        metric: Metric::P50,
        against: Against::Framed,
        limit: 1.2,
    },
    Target {
        of: Impl::Internode,
        workload: Workload::Rr64,
        cores: Some(Cores::Busy),
        sizes: Sizes::Exactly(RR_SIZE),
        metric: Metric::ReqPerS,
        against: Against::Framed,
        limit: 0.6,
    },
    Target {
        of: Impl::Internode,
        workload: Workload::Urgent,
        cores: None,
        sizes: Sizes::Exactly(RR_SIZE),
        metric: Metric::P99,
        against: Against::RrP99,
        limit: 2.0,
    },
    Target {
        of: Impl::Internode,
        workload: Workload::Idle,
        cores: None,
        sizes: Sizes::From(16),
        metric: Metric::KibPerPeer,
        against: Against::Absolute,
        limit: 40.0,
    },
    many_peers(Metric::IdleCpuPct, 1.0),
    many_peers(Metric::WakeupsPerPeerKeepalive, 1.0),
    // Memory the hub holds for its peers: after `malloc_trim`, without what the
    // allocator kept of the set-up burst's freed buffers (docs/performance.md,
    // "Memory per peer"); the `RssAnon` growth itself is reported beside it.
    many_peers(Metric::KibPerPeerTrimmed, 40.0),
    many_peers(Metric::ListenOverflows, 0.0),
    oneway(Impl::Internode, 64, Metric::MsgsPerS, Against::Lossy, 0.9),
    oneway(
        Impl::Internode,
        1 << 10,
        Metric::MsgsPerS,
        Against::Lossy,
        0.9,
    ),
    oneway(
        Impl::Internode,
        64 << 10,
        Metric::MBPerS,
        Against::Lossy,
        0.9,
    ),
    oneway(
        Impl::Internode,
        1 << 20,
        Metric::MBPerS,
        Against::Lossy,
        0.9,
    ),
];

/// A target checked against one figure.
struct Verdict {
    key: Key,
    /// The figure's value (a ratio, or itself).
    value: f64,
    limit: f64,
    against: Against,
}

impl Verdict {
    fn pass(&self) -> bool {
        if self.key.metric.higher_is_better() {
            self.value >= self.limit
        } else {
            self.value <= self.limit
        }
    }

    fn outcome(&self) -> &'static str {
        if self.pass() {
            "PASS"
        } else {
            "MISS"
        }
    }

    /// `>= 0.5 x framed`, `>= 0.9 x lossy`, `<= 2 x rr p99`, `<= 40`.
    fn wanted(&self) -> String {
        let op = if self.key.metric.higher_is_better() {
            ">="
        } else {
            "<="
        };
        match self.against {
            Against::Framed => format!("{op} {} x framed", self.limit),
            Against::Lossy => format!("{op} {} x lossy", self.limit),
            Against::RrP99 => format!("{op} {} x rr p99", self.limit),
            Against::Absolute => format!("{op} {}", self.limit),
        }
    }

    /// The figure, and whose if not internode's: `oneway 64 B msgs/s (idle cores),
    /// internode-batch`.
    fn label(&self) -> String {
        let label = figure_label(&self.key);
        match self.key.imp {
            Impl::Internode => label,
            imp => format!("{label}, {imp}"),
        }
    }
}

/// `rr 64 B p50 us (busy cores)`, `idle 16 peers KiB/peer`: a figure, implementation
/// aside.
fn figure_label(key: &Key) -> String {
    let cores = match cores_label(key) {
        "-" => String::new(),
        cores => format!(" ({cores} cores)"),
    };
    format!(
        "{} {} {}{cores}",
        key.workload,
        size_label(key.workload, key.size),
        key.metric.name(),
    )
}

fn verdicts(results: &Results) -> Vec<Verdict> {
    let mut out = Vec::new();
    for target in &TARGETS {
        let keys = results.figures.keys().filter(|k| {
            k.imp == target.of
                && k.workload == target.workload
                && k.metric == target.metric
                && target.cores.is_none_or(|c| c == k.cores)
                && target.sizes.covers(k.size)
        });
        for &key in keys {
            let value = match target.against {
                Against::Framed => results.ratio(&key, &key.of(Impl::Framed)),
                Against::Lossy => results.ratio(&key, &key.of(Impl::InternodeLossy)),
                Against::RrP99 => results.ratio(
                    &key,
                    &Key {
                        workload: Workload::Rr,
                        size: RR_SIZE,
                        ..key
                    },
                ),
                Against::Absolute => results.get(&key).map(median),
            };
            if let Some(value) = value {
                out.push(Verdict {
                    key,
                    value,
                    limit: target.limit,
                    against: target.against,
                });
            }
        }
    }
    out
}

/// Idle or busy cores; `-` for the idle-memory and many-peers workloads, which
/// have no busy run.
fn cores_label(key: &Key) -> &'static str {
    if matches!(key.workload, Workload::Idle | Workload::ManyPeers) {
        "-"
    } else {
        key.cores.name()
    }
}

pub fn size_label(workload: Workload, size: usize) -> String {
    if matches!(workload, Workload::Idle | Workload::ManyPeers) {
        return format!("{size} peer{}", if size == 1 { "" } else { "s" });
    }
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

fn value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::MsgsPerS | Metric::ReqPerS | Metric::RoundTrips => format!("{v:.0}"),
        Metric::SendCpuUs | Metric::RecvCpuUs => format!("{v:.3}"),
        Metric::SendAllocs | Metric::RecvAllocs => format!("{v:.2}"),
        Metric::SetupS
        | Metric::ReconnectS
        | Metric::ReconnectP50S
        | Metric::DeliveredS
        | Metric::IdleCpuPct
        | Metric::PeersCpuPct
        | Metric::WakeupsPerPeerKeepalive => format!("{v:.3}"),
        Metric::WakeupsPerS
        | Metric::PreemptedPerS
        | Metric::TimeslicesPerS
        | Metric::Refused
        | Metric::SetupListenOverflows
        | Metric::ListenOverflows => format!("{v:.0}"),
        _ => format!("{v:.1}"),
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(String::new, |r| format!("{r:.3}"))
}

/// The ratios of a row.
struct RowRatios {
    raw: Option<f64>,
    framed: Option<f64>,
    /// Lossless internode's rows only: to lossy internode.
    lossy: Option<f64>,
    /// internode's rows only (serde messages): to internode-hand (hand-encoded).
    hand: Option<f64>,
    /// internode-tls's rows only: to internode (plain TCP).
    plain: Option<f64>,
}

/// The ratios of a row to raw and to framed (none to itself), for lossless
/// internode to lossy internode and to internode-hand and, for internode-tls, to
/// internode.
fn row_ratios(results: &Results, key: &Key) -> RowRatios {
    // Allocation counts have no ratios: the baselines' are 0 or 1.
    let counts = matches!(key.metric, Metric::SendAllocs | Metric::RecvAllocs);
    let to = |base: Impl| {
        (key.imp != base && !counts)
            .then(|| results.ratio(key, &key.of(base)))
            .flatten()
    };
    RowRatios {
        raw: to(Impl::Raw),
        framed: to(Impl::Framed),
        lossy: (key.imp == Impl::Internode)
            .then(|| to(Impl::InternodeLossy))
            .flatten(),
        hand: (key.imp == Impl::Internode)
            .then(|| to(Impl::InternodeHand))
            .flatten(),
        plain: (key.imp == Impl::InternodeTls)
            .then(|| to(Impl::Internode))
            .flatten(),
    }
}

/// The figures whose TLS / plain ratio the closing note gives: one-way throughput
/// (messages below 64 KiB, bytes from there) and CPU per message, request latency, requests in flight,
/// the urgent link under load, idle memory.
fn tls_headline(key: &Key) -> bool {
    match key.workload {
        Workload::Oneway if matches!(key.metric, Metric::SendCpuUs | Metric::RecvCpuUs) => true,
        Workload::Oneway if key.size < 64 << 10 => key.metric == Metric::MsgsPerS,
        Workload::Oneway => key.metric == Metric::MBPerS,
        Workload::Rr => matches!(key.metric, Metric::P50 | Metric::P99),
        Workload::Rr64 => key.metric == Metric::ReqPerS,
        Workload::Urgent => matches!(key.metric, Metric::P99 | Metric::LargeMBPerS),
        Workload::Idle => key.metric == Metric::KibPerPeer,
        Workload::ManyPeers => false,
    }
}

/// internode-tls's headline figures next to internode's: (key, TLS median, plain
/// median, median of the paired ratios), in table order.
fn tls_vs_plain(results: &Results) -> Vec<(Key, f64, f64, f64)> {
    results
        .figures
        .iter()
        .filter(|(key, _)| key.imp == Impl::InternodeTls && tls_headline(key))
        .filter_map(|(key, tls)| {
            let plain = results.get(&key.of(Impl::Internode))?;
            let ratio = results.ratio(key, &key.of(Impl::Internode))?;
            Some((*key, median(tls), median(plain), ratio))
        })
        .collect()
}

/// What a run was.
pub struct RunInfo {
    pub quick: bool,
    /// The implementations, in the order measured.
    pub impls: Vec<Impl>,
    pub reps: usize,
    pub seconds_per_figure: f64,
    pub cpus: usize,
    pub spinners: usize,
    pub elapsed_s: f64,
}

/// The table and the targets, as text.
pub fn table(results: &Results, info: &RunInfo) -> String {
    let verdicts = verdicts(results);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<5} {:<8} {:<9} {:<15} {:<15} {:>11} {:>11} {:>11} {:>7} {:>9} {:>8} {:>7} {:>8}  target",
        "cores",
        "workload",
        "size",
        "metric",
        "impl",
        "median",
        "min",
        "max",
        "vs raw",
        "vs framed",
        "vs lossy",
        "vs hand",
        "vs plain"
    );
    // The message workloads by cores, then the idle-memory and many-peers workloads.
    let mut rows: Vec<_> = results.figures.iter().collect();
    rows.sort_by_key(|(key, _)| {
        (
            matches!(key.workload, Workload::Idle | Workload::ManyPeers),
            **key,
        )
    });
    let mut previous: Option<Key> = None;
    for (key, samples) in rows {
        if previous
            .is_some_and(|p| (p.cores, p.workload, p.size) != (key.cores, key.workload, key.size))
        {
            out.push('\n');
        }
        previous = Some(*key);
        let ratios = row_ratios(results, key);
        let target = verdicts
            .iter()
            .filter(|v| v.key == *key)
            .map(|v| format!("{} ({:.3}) {}", v.wanted(), v.value, v.outcome()))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            out,
            "{:<5} {:<8} {:<9} {:<15} {:<15} {:>11} {:>11} {:>11} {:>7} {:>9} {:>8} {:>7} {:>8}  {target}",
            cores_label(key),
            key.workload.name(),
            size_label(key.workload, key.size),
            key.metric.name(),
            key.imp.name(),
            value(key.metric, median(samples)),
            value(key.metric, min(samples)),
            value(key.metric, max(samples)),
            ratio(ratios.raw),
            ratio(ratios.framed),
            ratio(ratios.lossy),
            ratio(ratios.hand),
            ratio(ratios.plain),
        );
    }
    let _ = writeln!(
        out,
        "\n({} repetitions of {:.1} s per figure, interleaved {}; \
         median, min, max over repetitions; vs raw, vs framed, vs lossy, vs hand, vs plain = median over repetitions of \
         this figure / the baseline's (lossy: internode-lossy's; hand: internode-hand's; plain: internode's) of the same repetition; \
         latency in microseconds; CPU us/msg = CPU time (user + system) of the sending or receiving process in the figure's window \
         per message (rr64: per request and its response); allocs/msg (--count-allocs) likewise, heap allocations; {} CPUs; busy cores = {} spinners at nice 19; \
         {:.1} s in all)",
        info.reps,
        info.seconds_per_figure,
        info.impls.iter().map(|i| i.name()).collect::<Vec<_>>().join("/"),
        info.cpus,
        info.spinners,
        info.elapsed_s
    );
    let _ = writeln!(
        out,
        "\ntargets (internode: serde messages, lossless links; against framed in the same run, \
         and lossless vs lossy one-way; medians of per-repetition ratios; reported, not enforced):"
    );
    for v in &verdicts {
        let _ = writeln!(
            out,
            "  {:<50} {:<18} {:>8.3}  {}",
            v.label(),
            v.wanted(),
            v.value,
            v.outcome()
        );
    }
    for (workload, details) in &results.details {
        let _ = writeln!(out, "\n{workload} details:");
        match details.as_object() {
            Some(parts) => {
                for (part, value) in parts {
                    let _ = writeln!(out, "  {part}: {value}");
                }
            }
            None => {
                let _ = writeln!(out, "  {details}");
            }
        }
    }
    let tls = tls_vs_plain(results);
    if !tls.is_empty() {
        let _ = writeln!(
            out,
            "\nTLS vs plain (internode-tls / internode, median of the ratios of paired repetitions; \
             throughput: below 1 is slower, latency and memory: above 1 is worse):"
        );
        for (key, tls, plain, r) in tls {
            let _ = writeln!(
                out,
                "  {:<36} {:>11} tls {:>11} plain  {r:>6.3}",
                figure_label(&key),
                value(key.metric, tls),
                value(key.metric, plain),
            );
        }
    }
    out
}

/// Every figure, ratio and verdict as one JSON document.
pub fn json(results: &Results, info: &RunInfo) -> serde_json::Value {
    let figures: Vec<_> = results
        .figures
        .iter()
        .map(|(key, samples)| {
            let ratios = row_ratios(results, key);
            json!({
                "cores": cores_label(key),
                "workload": key.workload.name(),
                "size": key.size,
                "metric": key.metric.name(),
                "impl": key.imp.name(),
                "samples": samples,
                "median": median(samples),
                "min": min(samples),
                "max": max(samples),
                "vs_raw": ratios.raw,
                "vs_framed": ratios.framed,
                "vs_lossy": ratios.lossy,
                "vs_hand": ratios.hand,
                "vs_plain": ratios.plain,
            })
        })
        .collect();
    let targets: Vec<_> = verdicts(results)
        .iter()
        .map(|v| {
            json!({
                "target": v.label(),
                "wanted": v.wanted(),
                "against": match v.against {
                    Against::Framed => "framed",
                    Against::Lossy => "internode-lossy",
                    Against::RrP99 => "rr p99",
                    Against::Absolute => "absolute",
                },
                "limit": v.limit,
                "impl": v.key.imp.name(),
                "value": v.value,
                "pass": v.pass(),
            })
        })
        .collect();
    let tls_vs_plain: Vec<_> = tls_vs_plain(results)
        .into_iter()
        .map(|(key, tls, plain, ratio)| {
            json!({
                "cores": cores_label(&key),
                "workload": key.workload.name(),
                "size": key.size,
                "metric": key.metric.name(),
                "tls": tls,
                "plain": plain,
                "ratio": ratio,
            })
        })
        .collect();
    json!({
        "bench": "internode-vs-tcp",
        "quick": info.quick,
        "impls": info.impls.iter().map(|i| i.name()).collect::<Vec<_>>(),
        "reps": info.reps,
        "seconds_per_figure": info.seconds_per_figure,
        "cpus": info.cpus,
        "spinners": info.spinners,
        "elapsed_s": info.elapsed_s,
        "figures": figures,
        "targets": targets,
        "tls_vs_plain": tls_vs_plain,
        "details": results.details,
    })
}
