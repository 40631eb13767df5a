//! A node's metrics at one moment (docs/design.md, "Metrics"): [`Metrics`], from
//! [`Node::metrics`](super::Node::metrics), its Prometheus text rendering, and each
//! peer's round-trip times ([`RttHistogram`]).
//!
//! Invariants:
//! - The snapshot is read from each actor by message (`collect.rs`: the registry,
//!   then each link and receiving actor, then `ResourceLimits`), so each part is
//!   consistent in itself but the parts are taken at slightly different moments.
//! - Counters are kept per (peer, link kind) for the node's whole life
//!   ([`Metrics::link_counters`], [`Metrics::inbound_counters`]): the open link's (or
//!   receiving actor's) own counters plus those of every one before it for that peer
//!   and kind, which the registry keeps when they close (`archive.rs`). So a series
//!   never goes backwards, across link restarts, [`Node::close_peer`](super::Node::close_peer)
//!   and reconnects, and a peer whose links have all closed keeps its counter series.
//!   Its gauges are absent then: a gauge describes an open link or receiving actor.
//! - Each peer's round-trip times are kept the same way, over all its links
//!   ([`Metrics::rtt`]).
//! - No label has a made-up value: every `peer` is a node id and every `link` a link
//!   kind; what has no peer (connections refused before their handshake said who
//!   they are from) is in a family without a `peer` label.
//! - What is kept for the node's life grows with the number of distinct peers, not
//!   with traffic: a few hundred bytes per (peer, link kind) and 1 to 10 KiB per peer
//!   that answered a ping (the histogram's size depends on its largest sample).
//! - The renderings list the same families (`families.rs`, the one list): the text
//!   format 0.0.4 ([`Metrics::to_prometheus`]: one `# HELP` and `# TYPE` per family,
//!   counters end in `_total`, label values escaped, no series twice) and, with the
//!   `prometheus-client` feature, a collector for an application's registry
//!   (`internode::node::prometheus`).

mod archive;
mod collect;
mod families;
#[cfg(feature = "prometheus-client")]
pub mod prometheus;
mod rtt;
mod text;

use std::collections::BTreeMap;

pub(crate) use archive::{counted_since, Archive};
pub(crate) use collect::collect;
pub use rtt::{RttHistogram, RTT_BUCKETS, RTT_MAX};

use super::inbound::{InboundCounters, InboundSnapshot};
use super::link::{LinkCounters, LinkSnapshot};
use super::refusal::RefusalReason;
use super::resource_limits::LimitsSnapshot;
use crate::{LinkKind, NodeId};

/// Everything a node measures about its links, connections and limits (see the
/// module documentation for what holds across snapshots).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Metrics {
    /// The node.
    pub node: NodeId,
    /// Every open outbound link (per peer and kind): state, gauges, and the link's
    /// own counters (since that link was created).
    pub links: Vec<LinkSnapshot>,
    /// The counters of the outbound links per peer and kind since the node started:
    /// the open link's plus those of every link of that peer and kind that closed.
    /// They never decrease, and a (peer, kind) stays once it appears.
    pub link_counters: BTreeMap<(NodeId, LinkKind), LinkCounters>,
    /// Every receiving actor (per peer and kind, open while the node is): gauges and
    /// its counters.
    pub inbound: Vec<InboundSnapshot>,
    /// The counters of the receiving side per peer and kind since the node started,
    /// as for [`link_counters`](Self::link_counters).
    pub inbound_counters: BTreeMap<(NodeId, LinkKind), InboundCounters>,
    /// Each peer's keepalive round-trip times since the node started, over all its
    /// links (a peer appears with its first measured round trip).
    pub rtt: BTreeMap<NodeId, RttHistogram>,
    /// Connections refused before their handshake completed, by reason (their peer
    /// is not known; [`Node::refused_connections`](super::Node::refused_connections)).
    pub refused: BTreeMap<RefusalReason, u64>,
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
            link_counters: BTreeMap::new(),
            inbound: Vec::new(),
            inbound_counters: BTreeMap::new(),
            rtt: BTreeMap::new(),
            refused: BTreeMap::new(),
            limits: LimitsSnapshot::default(),
        }
    }

    /// Renders the metrics in the Prometheus text format (version 0.0.4), each
    /// sample labelled with this node (`node`) and, per link or connection, the peer
    /// (`peer`) and link kind (`link`). The families are listed in docs/design.md
    /// ("Metrics").
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
    /// assert!(text.contains("# TYPE internode_peer_rtt_seconds histogram"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        text::render(&families::families(self))
    }
}
