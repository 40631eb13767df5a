//! The metric families of a [`Metrics`] snapshot: names, types, help texts, labels and
//! values, listed once here. Every rendering iterates what [`families`] returns (the
//! text format in `text.rs`), so the families cannot differ between them.
//!
//! Invariants: family names are unique; a counter's name ends in `_total`; every
//! sample carries the label `node`; no series appears twice in a family; label values
//! are node ids, link kinds, reasons and directions, never a made-up value for "none"
//! or "all". Counters come from the totals per (peer, link kind) (they never
//! decrease), gauges from the open links and receiving actors (absent without one).

use std::collections::BTreeMap;

use super::Metrics;
use crate::node::inbound::InboundCounters;
use crate::node::link::{LinkCounters, LinkSnapshot};
use crate::node::resource_limits::{LimitsSnapshot, ReservesSnapshot};
use crate::{LinkKind, NodeId};

/// What a family measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The name of the type in `# TYPE`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family and its samples.
#[derive(Debug, Clone)]
pub(crate) struct Family {
    /// The name (a counter's ends in `_total`).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

/// One series of a family.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// Label names and values, `node` first.
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Int(u64),
    Histogram(Histogram),
}

/// A histogram sample.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Histogram {
    /// Upper bounds (increasing, in the family's unit) and the count of observations
    /// at or below each (cumulative); the `+Inf` bucket is `count`, not listed.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

/// The families being listed.
struct Families {
    node: String,
    out: Vec<Family>,
}

impl Families {
    /// Starts a family; its samples follow with [`sample`](Self::sample).
    fn family(&mut self, name: &'static str, kind: Kind, help: &'static str) {
        self.out.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
    }

    /// A sample of the last family started, labelled `node` and then `labels`.
    fn sample(&mut self, labels: &[(&'static str, &str)], value: Value) {
        let labels = std::iter::once(("node", self.node.clone()))
            .chain(labels.iter().map(|&(k, v)| (k, v.to_string())))
            .collect();
        if let Some(family) = self.out.last_mut() {
            family.samples.push(Sample { labels, value });
        }
    }
}

/// Every family of `metrics`, in the order rendered.
pub(crate) fn families(metrics: &Metrics) -> Vec<Family> {
    let mut f = Families {
        node: metrics.node.0.to_string(),
        out: Vec::new(),
    };
    outbound(&mut f, metrics);
    inbound(&mut f, metrics);
    refused(&mut f, metrics);
    rtt(&mut f, metrics);
    limits(&mut f, &metrics.limits);
    f.out
}

type LinkGauge = fn(&LinkSnapshot) -> u64;

const LINK_GAUGES: [(&str, &str, LinkGauge); 5] = [
    (
        "internode_outbound_pending_messages",
        "Messages taken by the link with no outcome yet (queued, being written, unacknowledged).",
        |s| (s.queued + s.in_flight) as u64,
    ),
    (
        "internode_outbound_pending_bytes",
        "Bytes of the messages taken with no outcome yet.",
        |s| s.pending_bytes as u64,
    ),
    (
        "internode_outbound_reserve_bytes",
        "Bytes of endpoint and global reserve the link holds.",
        |s| s.reserve_bytes as u64,
    ),
    (
        "internode_outbound_active_connections",
        "Connections open (0 or 1).",
        |s| s.active_connections as u64,
    ),
    (
        "internode_outbound_unflushed_bytes",
        "Bytes of the write in flight.",
        |s| s.unflushed_bytes as u64,
    ),
];

type LinkCount = fn(&LinkCounters) -> u64;

const LINK_COUNTERS: [(&str, &str, LinkCount); 8] = [
    (
        "internode_outbound_written_messages_total",
        "Messages written to a connection (the first time).",
        |c| c.written,
    ),
    (
        "internode_outbound_acknowledged_messages_total",
        "Messages the peer acknowledged (lossless links).",
        |c| c.acknowledged,
    ),
    (
        "internode_outbound_replayed_messages_total",
        "Messages written again after a reconnect (lossless links).",
        |c| c.replayed,
    ),
    (
        "internode_outbound_peer_restarts_total",
        "Times the peer was found to have restarted.",
        |c| c.peer_restarts,
    ),
    (
        "internode_outbound_written_bytes_total",
        "Bytes of the messages written.",
        |c| c.written_bytes,
    ),
    (
        "internode_outbound_accepted_messages_total",
        "Messages taken into the link's queue.",
        |c| c.accepted,
    ),
    (
        "internode_outbound_connection_attempts_total",
        "Connection attempts.",
        |c| c.connection_attempts,
    ),
    (
        "internode_outbound_connections_total",
        "Connections established.",
        |c| c.connections,
    ),
];

fn outbound(f: &mut Families, metrics: &Metrics) {
    for (name, help, get) in LINK_GAUGES {
        f.family(name, Kind::Gauge, help);
        for s in &metrics.links {
            let (peer, link) = (s.peer.0.to_string(), s.kind.to_string());
            f.sample(&[("peer", &peer), ("link", &link)], Value::Int(get(s)));
        }
    }
    let labelled: Vec<(String, String, &LinkCounters)> = metrics
        .link_counters
        .iter()
        .map(|((peer, kind), c)| (peer.0.to_string(), kind.to_string(), c))
        .collect();
    for (name, help, get) in LINK_COUNTERS {
        f.family(name, Kind::Counter, help);
        for (peer, link, c) in &labelled {
            f.sample(&[("peer", peer), ("link", link)], Value::Int(get(c)));
        }
    }
    for (name, help, bytes) in [
        (
            "internode_outbound_failed_messages_total",
            "Messages that failed, by reason (expired, overloaded_*, oversized, closed...).",
            false,
        ),
        (
            "internode_outbound_failed_bytes_total",
            "Bytes of the messages that failed, by reason.",
            true,
        ),
    ] {
        f.family(name, Kind::Counter, help);
        for (peer, link, c) in &labelled {
            let map = if bytes { &c.failed_bytes } else { &c.failed };
            // In the order of the labels, as scrapes always were.
            let mut by_label: Vec<_> = map.iter().map(|(k, n)| (k.as_str(), *n)).collect();
            by_label.sort_unstable();
            for (reason, n) in by_label {
                f.sample(
                    &[("peer", peer), ("link", link), ("reason", reason)],
                    Value::Int(n),
                );
            }
        }
    }
}

type InboundCount = fn(&InboundCounters) -> u64;

const INBOUND_COUNTERS: [(&str, &str, InboundCount); 11] = [
    (
        "internode_inbound_received_messages_total",
        "Messages received.",
        |c| c.received,
    ),
    (
        "internode_inbound_received_bytes_total",
        "Bytes of the messages received.",
        |c| c.received_bytes,
    ),
    (
        "internode_inbound_processed_messages_total",
        "Messages whose handler has finished with them.",
        |c| c.processed,
    ),
    (
        "internode_inbound_expired_messages_total",
        "Messages skipped because their deadline had passed.",
        |c| c.expired,
    ),
    (
        "internode_inbound_throttled_total",
        "Times a connection stopped reading for lack of receive limits.",
        |c| c.throttled,
    ),
    (
        "internode_inbound_throttled_microseconds_total",
        "Time spent not reading for lack of receive limits.",
        |c| c.throttled_us,
    ),
    (
        "internode_inbound_corrupt_frames_total",
        "Frames with a payload CRC mismatch (skipped, or the connection reset on lossless links).",
        |c| c.corrupt_frames,
    ),
    (
        "internode_inbound_duplicate_messages_total",
        "Messages dropped because they had been received already.",
        |c| c.duplicates,
    ),
    (
        "internode_inbound_oversized_messages_total",
        "Messages dropped unread for exceeding the maximum message size.",
        |c| c.oversized,
    ),
    (
        "internode_inbound_unknown_verb_messages_total",
        "Messages skipped for an unknown verb.",
        |c| c.unknown_verb,
    ),
    (
        "internode_inbound_decode_failed_messages_total",
        "Messages skipped because they did not decode.",
        |c| c.decode_failed,
    ),
];

fn inbound(f: &mut Families, metrics: &Metrics) {
    for (name, help, get) in INBOUND_COUNTERS {
        f.family(name, Kind::Counter, help);
        for ((peer, kind), counters) in &metrics.inbound_counters {
            let (peer, link) = (peer.0.to_string(), kind.to_string());
            f.sample(
                &[("peer", &peer), ("link", &link)],
                Value::Int(get(counters)),
            );
        }
    }
    // One receiving actor per peer and link; summed all the same, since a scrape may
    // not repeat a series.
    let mut by_link: BTreeMap<(NodeId, LinkKind), usize> = BTreeMap::new();
    for s in &metrics.inbound {
        *by_link.entry((s.peer, s.kind)).or_default() += s.pending_bytes;
    }
    f.family(
        "internode_inbound_pending_bytes",
        Kind::Gauge,
        "Bytes charged to the receive limits: messages handed to handlers and not yet processed, and partial messages being received.",
    );
    for ((peer, kind), pending) in &by_link {
        let (peer, link) = (peer.0.to_string(), kind.to_string());
        f.sample(
            &[("peer", &peer), ("link", &link)],
            Value::Int(*pending as u64),
        );
    }
}

fn refused(f: &mut Families, metrics: &Metrics) {
    f.family(
        "internode_inbound_refused_connections_total",
        Kind::Counter,
        "Connections refused before their handshake completed (no peer known yet), by reason.",
    );
    for (reason, n) in &metrics.refused {
        f.sample(&[("reason", reason.as_str())], Value::Int(*n));
    }
}

fn rtt(f: &mut Families, metrics: &Metrics) {
    f.family(
        "internode_peer_rtt_seconds",
        Kind::Histogram,
        "Keepalive round-trip times to the peer, over all its links.",
    );
    for (peer, rtt) in &metrics.rtt {
        let histogram = Histogram {
            buckets: rtt.buckets().map(|(b, n)| (b.as_secs_f64(), n)).collect(),
            sum: rtt.sum().as_secs_f64(),
            count: rtt.count(),
        };
        let peer = peer.0.to_string();
        f.sample(&[("peer", &peer)], Value::Histogram(histogram));
    }
}

type Reserve = fn(&ReservesSnapshot) -> usize;

fn limits(f: &mut Families, limits: &LimitsSnapshot) {
    let directions = [("send", &limits.send), ("receive", &limits.receive)];
    let families: [(&str, &str, Reserve, Reserve); 3] = [
        (
            "internode_reserve_in_use_bytes",
            "Bytes of reserve in use.",
            |r| r.global_in_use,
            |_| 0,
        ),
        (
            "internode_reserve_peak_bytes",
            "The most bytes of reserve ever in use at once.",
            |r| r.global_peak,
            |r| r.endpoint_peak,
        ),
        (
            "internode_reserve_limit_bytes",
            "The reserve's limit.",
            |r| r.limits.global_reserve,
            |r| r.limits.endpoint_reserve,
        ),
    ];
    for (i, (name, help, global, endpoint)) in families.into_iter().enumerate() {
        f.family(name, Kind::Gauge, help);
        for (direction, reserves) in directions {
            let int = |n: usize| Value::Int(n as u64);
            let at = |level| [("direction", direction), ("level", level)];
            f.sample(&at("global"), int(global(reserves)));
            if i == 0 {
                // In use: one sample per endpoint with some in use.
                for (peer, bytes) in &reserves.endpoints {
                    let peer = peer.0.to_string();
                    let [d, l] = at("endpoint");
                    f.sample(&[d, l, ("peer", &peer)], int(*bytes));
                }
            } else {
                f.sample(&at("endpoint"), int(endpoint(reserves)));
            }
        }
    }
    f.family(
        "internode_reserve_waiting_requests",
        Kind::Gauge,
        "Receiving connections waiting for reserve.",
    );
    f.sample(
        &[("direction", "receive")],
        Value::Int(limits.receive.waiting as u64),
    );
}
