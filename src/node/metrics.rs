//! A node's metrics at one moment (docs/design.md, "Metrics"): [`Metrics`], from
//! [`Node::metrics`](super::Node::metrics), and its Prometheus text rendering.
//!
//! Invariants: the snapshot is read from each actor by message (links, inbound
//! connections, `ResourceLimits`), so each part is consistent in itself but the parts
//! are taken at slightly different moments. The rendering follows the Prometheus text
//! exposition format 0.0.4: one `# HELP` and `# TYPE` per family, counters end in
//! `_total`, label values escaped, no series twice (the inbound connections of one
//! peer's link are summed).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::inbound::{InboundCounters, InboundSnapshot};
use super::link::{LinkCounters, LinkSnapshot};
use super::resource_limits::{LimitsSnapshot, ReservesSnapshot};
use crate::{LinkKind, NodeId};

/// Everything a node measures about its links, connections and limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Metrics {
    /// The node.
    pub node: NodeId,
    /// Every outbound link (per peer and kind).
    pub links: Vec<LinkSnapshot>,
    /// The counters of the links that have closed, summed.
    pub links_closed: LinkCounters,
    /// Every open inbound connection (per peer and kind).
    pub inbound: Vec<InboundSnapshot>,
    /// The counters of the inbound connections that have closed, summed.
    pub inbound_closed: InboundCounters,
    /// The endpoint and global reserves of both directions.
    pub limits: LimitsSnapshot,
}

impl Metrics {
    /// The metrics of a node with nothing to report yet: no links, no connections,
    /// no reserve in use (to test what consumes metrics).
    pub fn empty(node: NodeId) -> Self {
        Metrics {
            node,
            links: Vec::new(),
            links_closed: LinkCounters::default(),
            inbound: Vec::new(),
            inbound_closed: InboundCounters::default(),
            limits: LimitsSnapshot::default(),
        }
    }
}

/// One metric family being rendered.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{}", self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Renders the metrics in the Prometheus text format (version 0.0.4), each
    /// sample labelled with this node (`node`) and, per link or connection, the peer
    /// (`peer`) and link kind (`link`).
    ///
    /// ```
    /// use internode::node::Metrics;
    /// use internode::NodeId;
    ///
    /// let metrics = Metrics::empty(NodeId(1));
    /// let text = metrics.to_prometheus();
    /// assert!(text.contains("# TYPE internode_reserve_in_use_bytes gauge"));
    /// assert!(text.contains(
    ///     "internode_reserve_in_use_bytes{node=\"1\",direction=\"send\",level=\"global\"} 0"
    /// ));
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let node = self.node.0.to_string();
        self.render_links(&mut out, &node);
        self.render_inbound(&mut out, &node);
        render_limits(&mut out, &node, &self.limits);
        out
    }

    fn render_links(&self, out: &mut String, node: &str) {
        type Get = fn(&LinkSnapshot) -> u64;
        let gauges: [(&str, &str, Get); 5] = [
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
        type Count = fn(&LinkCounters) -> u64;
        let counters: [(&str, &str, Count); 8] = [
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
        // Each open link by peer and kind; the links that have closed, summed, as
        // peer "closed" (as for inbound connections).
        let labelled: Vec<(String, String, &LinkCounters)> = self
            .links
            .iter()
            .map(|s| (s.peer.0.to_string(), s.kind.to_string(), &s.counters))
            .chain(std::iter::once((
                "closed".to_string(),
                "all".to_string(),
                &self.links_closed,
            )))
            .collect();
        for &(name, help, get) in &gauges {
            let mut family = Family::new(out, name, "gauge", help);
            for s in &self.links {
                let (peer, link) = (s.peer.0.to_string(), s.kind.to_string());
                family.sample(&[("node", node), ("peer", &peer), ("link", &link)], get(s));
            }
        }
        for &(name, help, get) in &counters {
            let mut family = Family::new(out, name, "counter", help);
            for (peer, link, c) in &labelled {
                family.sample(&[("node", node), ("peer", peer), ("link", link)], get(c));
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
            let mut family = Family::new(out, name, "counter", help);
            for (peer, link, c) in &labelled {
                let map = if bytes { &c.failed_bytes } else { &c.failed };
                // In the order of the labels, as scrapes always were.
                let mut by_label: Vec<_> = map.iter().map(|(k, n)| (k.as_str(), n)).collect();
                by_label.sort_unstable();
                for (reason, n) in by_label {
                    family.sample(
                        &[
                            ("node", node),
                            ("peer", peer),
                            ("link", link),
                            ("reason", reason),
                        ],
                        n,
                    );
                }
            }
        }
    }

    fn render_inbound(&self, out: &mut String, node: &str) {
        // A peer's link may have several connections open here at once (it
        // reconnected before the old one was noticed closed): one series per peer
        // and link, summed, since a scrape may not repeat a series.
        let mut by_link: BTreeMap<(NodeId, LinkKind), (InboundCounters, usize)> = BTreeMap::new();
        for s in &self.inbound {
            let (counters, pending) = by_link.entry((s.peer, s.kind)).or_default();
            counters.add(&s.counters);
            *pending += s.pending_bytes;
        }
        type Get = fn(&InboundCounters) -> u64;
        let counters: [(&str, &str, Get); 11] = [
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
        for &(name, help, get) in &counters {
            let mut family = Family::new(out, name, "counter", help);
            for ((peer, kind), (counters, _)) in &by_link {
                let (peer, link) = (peer.0.to_string(), kind.to_string());
                family.sample(
                    &[("node", node), ("peer", &peer), ("link", &link)],
                    get(counters),
                );
            }
            family.sample(
                &[("node", node), ("peer", "closed"), ("link", "all")],
                get(&self.inbound_closed),
            );
        }
        let mut family = Family::new(
            out,
            "internode_inbound_pending_bytes",
            "gauge",
            "Bytes charged to the receive limits: messages handed to handlers and not yet processed, and partial messages being received.",
        );
        for ((peer, kind), (_, pending)) in &by_link {
            let (peer, link) = (peer.0.to_string(), kind.to_string());
            family.sample(&[("node", node), ("peer", &peer), ("link", &link)], pending);
        }
    }
}

fn render_limits(out: &mut String, node: &str, limits: &LimitsSnapshot) {
    let directions = [("send", &limits.send), ("receive", &limits.receive)];
    type Get = fn(&ReservesSnapshot) -> usize;
    let families: [(&str, &str, Get, Get); 3] = [
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
    for (i, &(name, help, global, endpoint)) in families.iter().enumerate() {
        let mut family = Family::new(out, name, "gauge", help);
        for (direction, reserves) in directions {
            let labels = [("node", node), ("direction", direction)];
            family.sample(
                &[labels[0], labels[1], ("level", "global")],
                global(reserves),
            );
            if i == 0 {
                // In use: one sample per endpoint with some in use.
                for (peer, bytes) in &reserves.endpoints {
                    let peer = peer.0.to_string();
                    family.sample(
                        &[labels[0], labels[1], ("level", "endpoint"), ("peer", &peer)],
                        bytes,
                    );
                }
            } else {
                family.sample(
                    &[labels[0], labels[1], ("level", "endpoint")],
                    endpoint(reserves),
                );
            }
        }
    }
    let mut family = Family::new(
        out,
        "internode_reserve_waiting_requests",
        "gauge",
        "Receiving connections waiting for reserve.",
    );
    family.sample(
        &[("node", node), ("direction", "receive")],
        limits.receive.waiting,
    );
}
