//! The figures of a run and the arithmetic on them: medians, spreads, percentiles,
//! and ratios of paired repetitions.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::impls::Impl;
use crate::workloads::{Cores, Workload};

/// What a figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    MsgsPerS,
    MBPerS,
    P50,
    P99,
    P999,
    ReqPerS,
    /// CPU time of the sending process over the figure's window, per message (per
    /// request in `rr64`), in µs.
    SendCpuUs,
    /// The same of the receiving process.
    RecvCpuUs,
    /// Heap allocations of the sending process over the figure's window, per message
    /// (per request in `rr64`; `--count-allocs` only).
    SendAllocs,
    /// The same of the receiving process.
    RecvAllocs,
    /// MB/s carried by the large link during the urgent workload.
    LargeMBPerS,
    /// Round trips measured (the urgent workload has few: its percentiles are
    /// taken over this many).
    RoundTrips,
    /// Resident memory growth of the connecting process, per peer.
    KibPerPeer,
    /// The same after `malloc_trim(0)`.
    KibPerPeerTrimmed,
    /// Resident memory growth of the connecting process per peer added since the
    /// previous step.
    KibPerAddedPeer,
    /// Resident memory growth of the accepting process, per peer.
    RecvKibPerPeer,
    /// many-peers: seconds until every peer is connected.
    SetupS,
    /// many-peers: connections dropped by a full listen queue during the set-up
    /// (the network namespace's `ListenOverflows`).
    SetupListenOverflows,
    /// many-peers: the hub's CPU time over the idle window, % of one core.
    IdleCpuPct,
    /// many-peers: the hub's voluntary context switches per second, idle.
    WakeupsPerS,
    /// many-peers: the same per peer per keepalive interval.
    WakeupsPerPeerKeepalive,
    /// many-peers: the hub's involuntary context switches per second, idle.
    PreemptedPerS,
    /// many-peers: timeslices the hub's threads ran per second, idle.
    TimeslicesPerS,
    /// many-peers: the CPU time of all peer processes over the idle window, % of
    /// one core.
    PeersCpuPct,
    /// many-peers: kernel memory of the hub's sockets, per peer.
    KernelKibPerPeer,
    /// many-peers: seconds from the restarted hub listening until every link
    /// reconnected.
    ReconnectS,
    /// many-peers: the same until half of them had.
    ReconnectP50S,
    /// many-peers: seconds from the restarted hub listening until it had every
    /// message sent while it was down.
    DeliveredS,
    /// many-peers: connections the restarted hub refused.
    Refused,
    /// many-peers: connections dropped by a full listen queue while the peers
    /// reconnected (the network namespace's `ListenOverflows`).
    ListenOverflows,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::MsgsPerS => "msgs/s",
            Metric::MBPerS => "MB/s",
            Metric::P50 => "p50 us",
            Metric::P99 => "p99 us",
            Metric::P999 => "p999 us",
            Metric::ReqPerS => "req/s",
            Metric::SendCpuUs => "send CPU us/msg",
            Metric::RecvCpuUs => "recv CPU us/msg",
            Metric::SendAllocs => "send allocs/msg",
            Metric::RecvAllocs => "recv allocs/msg",
            Metric::LargeMBPerS => "large MB/s",
            Metric::RoundTrips => "round trips",
            Metric::KibPerPeer => "KiB/peer",
            Metric::KibPerPeerTrimmed => "KiB/peer trim",
            Metric::KibPerAddedPeer => "KiB/added",
            Metric::RecvKibPerPeer => "recv KiB/peer",
            Metric::SetupS => "setup s",
            Metric::SetupListenOverflows => "setup overflows",
            Metric::IdleCpuPct => "idle CPU %",
            Metric::WakeupsPerS => "wakeups/s",
            Metric::WakeupsPerPeerKeepalive => "wakeups/peer/ka",
            Metric::PreemptedPerS => "preempted/s",
            Metric::TimeslicesPerS => "timeslices/s",
            Metric::PeersCpuPct => "peers CPU %",
            Metric::KernelKibPerPeer => "kernel KiB/peer",
            Metric::ReconnectS => "reconnect s",
            Metric::ReconnectP50S => "reconnect p50 s",
            Metric::DeliveredS => "delivered s",
            Metric::Refused => "refused",
            Metric::ListenOverflows => "listen overflows",
        }
    }

    /// Whether more is better (throughput) or worse (latency, memory).
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::MsgsPerS
                | Metric::MBPerS
                | Metric::ReqPerS
                | Metric::LargeMBPerS
                | Metric::RoundTrips
        )
    }
}

/// Which figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub cores: Cores,
    pub workload: Workload,
    /// Payload bytes (peers, for the idle-memory and many-peers workloads).
    pub size: usize,
    pub metric: Metric,
    pub imp: Impl,
}

impl Key {
    /// The same figure of another implementation.
    pub fn of(self, imp: Impl) -> Key {
        Key { imp, ..self }
    }
}

/// Every figure of the run, one value per repetition in the order measured.
#[derive(Default)]
pub struct Results {
    pub figures: BTreeMap<Key, Vec<f64>>,
    /// What a workload measured that is not one number (the many-peers workload's
    /// refusals by reason, disconnect reasons...), by workload name.
    pub details: BTreeMap<String, serde_json::Value>,
}

impl Results {
    pub fn add(&mut self, key: Key, value: f64) {
        self.figures.entry(key).or_default().push(value);
    }

    pub fn get(&self, key: &Key) -> Option<&[f64]> {
        self.figures.get(key).map(Vec::as_slice)
    }

    /// The median over repetitions of `key`'s value divided by `base`'s value of
    /// the same repetition (the two were measured next to each other).
    pub fn ratio(&self, key: &Key, base: &Key) -> Option<f64> {
        let (a, b) = (self.get(key)?, self.get(base)?);
        let ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
        (!ratios.is_empty()).then(|| median(&ratios))
    }
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Round-trip times in an HDR histogram: nanoseconds from 1 ns to a minute, to 3
/// significant digits (a percentile is off by at most 0.1%).
pub struct Latencies(Histogram<u64>);

impl Latencies {
    pub fn of(samples: &[Duration]) -> Latencies {
        let mut h = Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .expect("the bounds and precision are valid");
        for d in samples {
            h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        }
        Latencies(h)
    }

    /// The value below which `q` of the samples lie, in µs.
    pub fn percentile_us(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1e3
    }
}
