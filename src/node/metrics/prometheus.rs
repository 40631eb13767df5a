//! A node's metrics in an application's own [`prometheus_client`] registry (the
//! `prometheus-client` feature): [`register`].
//!
//! ```no_run
//! use std::time::Duration;
//! use internode::node::{prometheus, Node};
//! use internode::NodeId;
//! use prometheus_client::registry::Registry;
//!
//! #[actix::main]
//! async fn main() {
//!     let node = Node::builder(NodeId(1), "127.0.0.1:0".parse().unwrap())
//!         .start()
//!         .await
//!         .unwrap();
//!     let mut registry = Registry::default();
//!     prometheus::register(&node, &mut registry, Duration::from_secs(5));
//!     // ... later, on a scrape:
//!     let mut text = String::new();
//!     prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
//! }
//! ```
//!
//! A collector's `encode` is synchronous, while a node's metrics are read from its
//! actors by message: so a task on the node's arbiter takes a snapshot every
//! `refresh` and hands it to the collector, which encodes the latest one. A scrape
//! therefore shows the node as it was up to `refresh` ago (plus the time a snapshot
//! takes), never a half-updated mix: each scrape encodes one whole snapshot.
//!
//! Invariants: the families, their types, help texts and labels are those of
//! [`Metrics::to_prometheus`](super::Metrics::to_prometheus) (both iterate the same
//! list), encoded in the registry's format: in OpenMetrics text a counter's family
//! name drops the `_total` its samples keep, and the registry's prefix, if any, comes
//! first. The task holds no handle that keeps the node open: it ends when the node
//! is closed or dropped (the collector then encodes nothing) or when the registry
//! is dropped.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::families::{families, Family, Histogram, Kind, Value};
use crate::node::{Inner, Node};

/// Registers `node`'s metrics in `registry`, refreshed every `refresh` (see the
/// module documentation): the first snapshot is taken as soon as the current arbiter
/// runs the task, and until then the collector encodes nothing.
///
/// # Panics
///
/// Outside an actix system (the refresh task is spawned on the current arbiter), or
/// if `refresh` is zero.
pub fn register(node: &Node, registry: &mut Registry, refresh: Duration) {
    assert!(!refresh.is_zero(), "a refresh interval of zero");
    let (latest, collector) = watch::channel(None);
    registry.register_collector(Box::new(NodeCollector(collector)));
    actix_rt::spawn(refresh_task(Arc::downgrade(&node.inner), latest, refresh));
}

type Snapshot = Option<Arc<Vec<Family>>>;

/// Takes a snapshot every `refresh` while the node is open and the collector is
/// registered; then clears it.
async fn refresh_task(node: Weak<Inner>, latest: watch::Sender<Snapshot>, refresh: Duration) {
    let mut ticks = tokio::time::interval(refresh);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(node) = open(&node) else {
            break;
        };
        let snapshot = families(&node.metrics().await);
        drop(node);
        if latest.send(Some(Arc::new(snapshot))).is_err() {
            return; // The registry is gone.
        }
    }
    let _ = latest.send(None);
}

/// The node, unless its last handle is gone or it was closed.
fn open(node: &Weak<Inner>) -> Option<Node> {
    let inner = node.upgrade()?;
    let listening = inner
        .listener
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_some();
    listening.then_some(Node { inner })
}

/// Encodes the latest snapshot.
#[derive(Debug)]
struct NodeCollector(watch::Receiver<Snapshot>);

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(snapshot) = self.0.borrow().clone() else {
            return Ok(());
        };
        for family in snapshot.iter() {
            let (name, metric_type) = match family.kind {
                Kind::Counter => (
                    family.name.strip_suffix("_total").unwrap_or(family.name),
                    MetricType::Counter,
                ),
                Kind::Gauge => (family.name, MetricType::Gauge),
                Kind::Histogram => (family.name, MetricType::Histogram),
            };
            let mut metric = encoder.encode_descriptor(name, family.help, None, metric_type)?;
            for sample in &family.samples {
                let labels: Vec<(&str, &str)> = sample
                    .labels
                    .iter()
                    .map(|(key, value)| (*key, value.as_str()))
                    .collect();
                let mut series = metric.encode_family(&labels)?;
                match (&sample.value, family.kind) {
                    (Value::Int(n), Kind::Counter) => {
                        series.encode_counter::<NoLabelSet, _, u64>(n, None)?
                    }
                    (Value::Int(n), _) => series.encode_gauge(n)?,
                    (Value::Histogram(h), _) => series.encode_histogram::<NoLabelSet>(
                        h.sum,
                        h.count,
                        &per_bucket(h),
                        None,
                    )?,
                }
            }
        }
        Ok(())
    }
}

/// The buckets as `prometheus_client` takes them: each bound with the observations
/// above the previous bound (it sums them up), ending with `+Inf`.
fn per_bucket(h: &Histogram) -> Vec<(f64, u64)> {
    let mut below = 0;
    let mut buckets: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .map(|&(bound, cumulative)| {
            let n = cumulative.saturating_sub(below);
            below = cumulative;
            (bound, n)
        })
        .collect();
    buckets.push((f64::INFINITY, h.count.saturating_sub(below)));
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_handed_over_per_bucket_with_inf_last() {
        let h = Histogram {
            buckets: vec![(0.001, 2), (0.01, 2), (0.1, 5)],
            sum: 1.5,
            count: 7,
        };
        assert_eq!(
            per_bucket(&h),
            [(0.001, 2), (0.01, 0), (0.1, 3), (f64::INFINITY, 2)]
        );
    }
}
