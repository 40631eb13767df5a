//! Reading a [`Metrics`] snapshot from the node's actors, by message.
//!
//! Invariant: every link and receiving actor is counted once, live or archived. The
//! registry lists the open ones and hands over its archive in one message; then each
//! listed actor is asked for its snapshot. One that closes in between still answers
//! (its counters are not yet in the archive that was read), except one that stopped
//! for good: its final counters reached the registry before its mailbox closed, so
//! they are in the archive read after the failed ask, and taken from there for its
//! (peer, kind) alone.

use std::collections::{BTreeMap, BTreeSet};

use actix::Addr;

use super::Metrics;
use crate::node::inbound::GetInboundSnapshot;
use crate::node::link::GetLinkSnapshot;
use crate::node::registry::{MetricsParts, Registry};
use crate::node::resource_limits::{GetLimits, ResourceLimits};
use crate::NodeId;

/// The node's metrics (see the module documentation).
pub(crate) async fn collect(
    node: NodeId,
    registry: &Addr<Registry>,
    limits: &Addr<ResourceLimits>,
) -> Metrics {
    let mut metrics = Metrics::empty(node);
    metrics.limits = limits.send(GetLimits).await.unwrap_or_default();
    let Ok(parts) = registry.send(MetricsParts).await else {
        return metrics; // The node is gone.
    };
    let (mut stopped_links, mut stopped_inbound) = (BTreeSet::new(), BTreeSet::new());
    for (key, link) in parts.links {
        match link.send(GetLinkSnapshot).await {
            Ok(snapshot) => metrics.links.push(snapshot),
            Err(_) => drop(stopped_links.insert(key)),
        }
    }
    for (key, inbound) in parts.inbound {
        match inbound.send(GetInboundSnapshot).await {
            Ok(snapshot) => metrics.inbound.push(snapshot),
            Err(_) => drop(stopped_inbound.insert(key)),
        }
    }
    let mut archive = parts.archive;
    if !stopped_links.is_empty() || !stopped_inbound.is_empty() {
        if let Ok(again) = registry.send(MetricsParts).await {
            take(&mut archive.links, again.archive.links, &stopped_links);
            take(
                &mut archive.inbound,
                again.archive.inbound,
                &stopped_inbound,
            );
        }
    }
    metrics.links.sort_by_key(|s| (s.peer, s.kind));
    metrics.inbound.sort_by_key(|s| (s.peer, s.kind));
    metrics.link_counters = archive.links;
    for s in &metrics.links {
        let total = metrics.link_counters.entry((s.peer, s.kind)).or_default();
        total.add(&s.counters);
    }
    metrics.inbound_counters = archive.inbound;
    for s in &metrics.inbound {
        let total = metrics
            .inbound_counters
            .entry((s.peer, s.kind))
            .or_default();
        total.add(&s.counters);
    }
    metrics.rtt = archive.rtt;
    metrics.refused = parts.refused;
    metrics
}

/// Replaces the entries of `keys` in `into` with those of `from`.
fn take<K: Ord + Copy, V>(into: &mut BTreeMap<K, V>, mut from: BTreeMap<K, V>, keys: &BTreeSet<K>) {
    for key in keys {
        if let Some(value) = from.remove(key) {
            into.insert(*key, value);
        }
    }
}
