//! A node's metrics at one moment (docs/design.md, "Metrics"): [`Metrics`], from
//! [`Node::metrics`](super::Node::metrics), and its Prometheus text rendering.
//!
//! Invariants: the snapshot is read from each actor by message (links, inbound
//! connections, `ResourceLimits`), so each part is consistent in itself but the parts
//! are taken at slightly different moments. The rendering follows the Prometheus text
//! exposition format 0.0.4: one `# HELP` and `# TYPE` per family, counters end in
//! `_total`, label values escaped, no series twice (the inbound connections of one
//! peer's link are summed).

mod families;
mod text;

use super::inbound::{InboundCounters, InboundSnapshot};
use super::link::{LinkCounters, LinkSnapshot};
use super::resource_limits::LimitsSnapshot;
use crate::NodeId;

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
        text::render(&families::families(self))
    }
}
