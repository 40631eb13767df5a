//! The run's output: a table with one row per figure (cores, workload, size, metric,
//! implementation: median, min, max over repetitions, the ratios to the baselines,
//! for lossless internode to lossy internode and, for internode-tls, to internode
//! over plain TCP), the targets with PASS or MISS (the project's against framed,
//! and lossless one-way throughput at least 0.9 of lossy at every size), the main
//! ratios of TLS to plain when both ran, and one JSON document with all of it.
//!
//! A ratio is the median over repetitions of a row's figure divided by the baseline's
//! figure of the same repetition. A MISS is
//! reported, never an error: these are performance targets, not tests.

use std::fmt::Write as _;

use serde_json::json;

use crate::impls::Impl;
use crate::stats::{max, median, min, Key, Metric, Results};
use crate::workloads::{Workload, RR_SIZE};

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

/// A target (of lossless internode's figures).
struct Target {
    workload: Workload,
    /// `None`: every size (every peer count, for `idle`).
    size: Option<usize>,
    metric: Metric,
    against: Against,
    limit: f64,
}

/// Lossless one-way throughput against lossy, at one size.
const fn vs_lossy(size: usize, metric: Metric) -> Target {
    Target {
        workload: Workload::Oneway,
        size: Some(size),
        metric,
        against: Against::Lossy,
        limit: 0.9,
    }
}

const TARGETS: [Target; 12] = [
    Target {
        workload: Workload::Oneway,
        size: Some(64),
        metric: Metric::MsgsPerS,
        against: Against::Framed,
        limit: 0.5,
    },
    Target {
        workload: Workload::Oneway,
        size: Some(1 << 10),
        metric: Metric::MsgsPerS,
        against: Against::Framed,
        limit: 0.7,
    },
    Target {
        workload: Workload::Oneway,
        size: Some(64 << 10),
        metric: Metric::MBPerS,
        against: Against::Framed,
        limit: 0.9,
    },
    Target {
        workload: Workload::Oneway,
        size: Some(1 << 20),
        metric: Metric::MBPerS,
        against: Against::Framed,
        limit: 0.9,
    },
    Target {
        workload: Workload::Rr,
        size: Some(RR_SIZE),
        metric: Metric::P50,
        against: Against::Framed,
        limit: 1.15,
    },
    Target {
        workload: Workload::Rr64,
        size: Some(RR_SIZE),
        metric: Metric::ReqPerS,
        against: Against::Framed,
        limit: 0.8,
    },
    Target {
        workload: Workload::Urgent,
        size: Some(RR_SIZE),
        metric: Metric::P99,
        against: Against::RrP99,
        limit: 2.0,
    },
    Target {
        workload: Workload::Idle,
        size: None,
        metric: Metric::KibPerPeer,
        against: Against::Absolute,
        limit: 64.0,
    },
    vs_lossy(64, Metric::MsgsPerS),
    vs_lossy(1 << 10, Metric::MsgsPerS),
    vs_lossy(64 << 10, Metric::MBPerS),
    vs_lossy(1 << 20, Metric::MBPerS),
];

/// A target checked against one figure.
struct Verdict {
    key: Key,
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

    /// `>= 0.5 x framed`, `>= 0.9 x lossy`, `<= 2 x rr p99`, `<= 64`.
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

    fn label(&self) -> String {
        figure_label(&self.key)
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
            k.imp == Impl::Internode
                && k.workload == target.workload
                && k.metric == target.metric
                && target.size.is_none_or(|s| s == k.size)
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

/// Idle or busy cores; `-` for the idle-memory workload, which has no busy run.
fn cores_label(key: &Key) -> &'static str {
    if key.workload == Workload::Idle {
        "-"
    } else {
        key.cores.name()
    }
}

pub fn size_label(workload: Workload, size: usize) -> String {
    if workload == Workload::Idle {
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
    /// internode-tls's rows only: to internode (plain TCP).
    plain: Option<f64>,
}

/// The ratios of a row to raw and to framed (none to itself), for lossless
/// internode to lossy internode and, for internode-tls, to internode.
fn row_ratios(results: &Results, key: &Key) -> RowRatios {
    let to = |base: Impl| {
        (key.imp != base)
            .then(|| results.ratio(key, &key.of(base)))
            .flatten()
    };
    RowRatios {
        raw: to(Impl::Raw),
        framed: to(Impl::Framed),
        lossy: (key.imp == Impl::Internode)
            .then(|| to(Impl::InternodeLossy))
            .flatten(),
        plain: (key.imp == Impl::InternodeTls)
            .then(|| to(Impl::Internode))
            .flatten(),
    }
}

/// The figures whose TLS / plain ratio the closing note gives: one-way throughput
/// (messages below 64 KiB, bytes from there), request latency, requests in flight,
/// the urgent link under load, idle memory.
fn tls_headline(key: &Key) -> bool {
    match key.workload {
        Workload::Oneway if key.size < 64 << 10 => key.metric == Metric::MsgsPerS,
        Workload::Oneway => key.metric == Metric::MBPerS,
        Workload::Rr => matches!(key.metric, Metric::P50 | Metric::P99),
        Workload::Rr64 => key.metric == Metric::ReqPerS,
        Workload::Urgent => matches!(key.metric, Metric::P99 | Metric::LargeMBPerS),
        Workload::Idle => key.metric == Metric::KibPerPeer,
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
        "{:<5} {:<8} {:<9} {:<13} {:<15} {:>11} {:>11} {:>11} {:>7} {:>9} {:>8} {:>8}  target",
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
        "vs plain"
    );
    // The message workloads by cores, then the idle-memory workload.
    let mut rows: Vec<_> = results.figures.iter().collect();
    rows.sort_by_key(|(key, _)| (key.workload == Workload::Idle, **key));
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
            .map(|v| {
                let verdict = if v.pass() { "PASS" } else { "MISS" };
                format!("{} ({:.3}) {verdict}", v.wanted(), v.value)
            })
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            out,
            "{:<5} {:<8} {:<9} {:<13} {:<15} {:>11} {:>11} {:>11} {:>7} {:>9} {:>8} {:>8}  {target}",
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
            ratio(ratios.plain),
        );
    }
    let _ = writeln!(
        out,
        "\n({} repetitions of {:.1} s per figure, interleaved {}; \
         median, min, max over repetitions; vs raw, vs framed, vs lossy, vs plain = median over repetitions of \
         this figure / the baseline's (lossy: internode-lossy's; plain: internode's) of the same repetition; latency in microseconds; {} CPUs; busy cores = {} spinners at nice 19; \
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
        "\ntargets (against framed, and lossless vs lossy one-way; reported, not enforced):"
    );
    for v in &verdicts {
        let _ = writeln!(
            out,
            "  {:<44} {:<18} {:>8.3}  {}",
            v.label(),
            v.wanted(),
            v.value,
            if v.pass() { "PASS" } else { "MISS" }
        );
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
    })
}
