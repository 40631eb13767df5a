//! What the registry keeps so that a peer's series outlive its links: the counters
//! of the links and receiving actors that have closed, per (peer, link kind), and
//! each peer's round-trip times.
//!
//! Invariants: entries are only ever added to, never removed or lowered, so the
//! totals the snapshot reports (live counters plus these) never decrease. The
//! archive grows with the number of distinct peers this node ever had a link with or
//! heard from (a few hundred bytes per (peer, link kind), and one [`RttHistogram`] per
//! peer that answered a ping: 1 to 10 KiB), not with traffic or time.
//!
//! It lives in the registry, not in an actor of its own: the registry forgets a closed
//! link and takes its counters in the same step (`LinkReport`), so a snapshot that
//! reads the list of links and the archive in one message counts every link exactly
//! once.

use std::collections::BTreeMap;
use std::time::Duration;

use super::rtt::RttHistogram;
use crate::node::inbound::InboundCounters;
use crate::node::link::LinkCounters;
use crate::{LinkKind, NodeId};

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Archive {
    /// Counters of the outbound links that have closed (and what they counted after
    /// reporting it), summed per (peer, kind).
    pub links: BTreeMap<(NodeId, LinkKind), LinkCounters>,
    /// Counters of the receiving actors that have stopped, summed per (peer, kind).
    pub inbound: BTreeMap<(NodeId, LinkKind), InboundCounters>,
    /// Every keepalive round-trip time measured to each peer, over all its links.
    pub rtt: BTreeMap<NodeId, RttHistogram>,
}

impl Archive {
    /// Counters of a closed link (or what it counted since it last reported).
    pub(crate) fn retire_link(&mut self, peer: NodeId, kind: LinkKind, counters: &LinkCounters) {
        self.links.entry((peer, kind)).or_default().add(counters);
    }

    /// The final counters of a receiving actor that stopped.
    pub(crate) fn retire_inbound(
        &mut self,
        peer: NodeId,
        kind: LinkKind,
        counters: &InboundCounters,
    ) {
        self.inbound.entry((peer, kind)).or_default().add(counters);
    }

    /// A round-trip time measured to `peer`.
    pub(crate) fn record_rtt(&mut self, peer: NodeId, rtt: Duration) {
        self.rtt.entry(peer).or_default().record(rtt);
    }
}

/// What `now` counted since `then` (earlier counters of the same link): field by
/// field, never below zero.
pub(crate) fn counted_since(now: &LinkCounters, then: &LinkCounters) -> LinkCounters {
    let since = |map: &BTreeMap<_, u64>, earlier: &BTreeMap<_, u64>| {
        map.iter()
            .map(|(k, n)| (*k, n.saturating_sub(earlier.get(k).copied().unwrap_or(0))))
            .filter(|(_, n)| *n > 0)
            .collect()
    };
    LinkCounters {
        accepted: now.accepted.saturating_sub(then.accepted),
        accepted_bytes: now.accepted_bytes.saturating_sub(then.accepted_bytes),
        written: now.written.saturating_sub(then.written),
        written_bytes: now.written_bytes.saturating_sub(then.written_bytes),
        acknowledged: now.acknowledged.saturating_sub(then.acknowledged),
        replayed: now.replayed.saturating_sub(then.replayed),
        failed: since(&now.failed, &then.failed),
        failed_bytes: since(&now.failed_bytes, &then.failed_bytes),
        connection_attempts: now
            .connection_attempts
            .saturating_sub(then.connection_attempts),
        connections: now.connections.saturating_sub(then.connections),
        peer_restarts: now.peer_restarts.saturating_sub(then.peer_restarts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::SendError;

    #[test]
    fn what_a_link_counted_since_plus_then_is_now() {
        let mut then = LinkCounters {
            accepted: 3,
            ..LinkCounters::default()
        };
        then.count_failure(&SendError::Expired, 10);
        let mut now = then.clone();
        now.accepted = 5;
        now.count_failure(&SendError::Closed, 7);
        now.count_failure(&SendError::Closed, 7);
        let delta = counted_since(&now, &then);
        assert_eq!(delta.accepted, 2);
        assert_eq!(delta.failed.len(), 1, "{:?}", delta.failed);
        assert_eq!(delta.failed_bytes.values().sum::<u64>(), 14);
        let mut sum = then.clone();
        sum.add(&delta);
        assert_eq!(sum, now);
        assert_eq!(counted_since(&now, &now), LinkCounters::default());
    }

    #[test]
    fn the_archive_adds_per_peer_and_kind() {
        let mut archive = Archive::default();
        let c = LinkCounters {
            written: 4,
            ..LinkCounters::default()
        };
        archive.retire_link(NodeId(2), LinkKind::Small, &c);
        archive.retire_link(NodeId(2), LinkKind::Small, &c);
        archive.retire_link(NodeId(3), LinkKind::Small, &c);
        assert_eq!(archive.links[&(NodeId(2), LinkKind::Small)].written, 8);
        assert_eq!(archive.links[&(NodeId(3), LinkKind::Small)].written, 4);
        archive.record_rtt(NodeId(2), Duration::from_millis(1));
        archive.record_rtt(NodeId(2), Duration::from_millis(2));
        assert_eq!(archive.rtt[&NodeId(2)].count(), 2);
        assert!(!archive.rtt.contains_key(&NodeId(3)));
    }
}
