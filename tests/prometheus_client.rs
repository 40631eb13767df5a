//! The `prometheus-client` feature: a node's metrics registered in an application's
//! `prometheus_client` registry, encoded as OpenMetrics text with the same families as
//! `Metrics::to_prometheus`, refreshed while the node lives and gone once it is.
//!
//! Run with `cargo test --features prometheus-client --test prometheus_client`.
#![cfg(all(feature = "serde", feature = "prometheus-client"))]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use internode::node::{prometheus, Sent};
use internode::NodeId;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use support::prometheus::{buckets, parse_openmetrics, parse_prometheus};
use support::{bounded, collect, fast_heartbeat_pair, poll_until, recv_n, Seq};

/// The OpenMetrics text of `registry`.
fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).expect("the registry encodes");
    text
}

/// The families of a text and their types (`name type` from its `# TYPE` lines),
/// counters named as in the Prometheus text format (with `_total`).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| match rest.split_once(' ') {
            Some((name, "counter")) if !name.ends_with("_total") => format!("{name}_total counter"),
            _ => rest.to_string(),
        })
        .collect()
}

#[actix_rt::test]
async fn a_registry_encodes_the_nodes_metrics_while_the_node_lives() {
    bounded(async {
        let (a, b) = fast_heartbeat_pair().await;
        let mut registry = Registry::default();
        prometheus::register(&a, &mut registry, Duration::from_millis(20));
        let mut inbox = collect::<Seq>(&b);
        for i in 0..5 {
            assert_eq!(a.send(NodeId(2), Seq(i)).await, Ok(Sent::Acknowledged));
        }
        recv_n(&mut inbox, 5).await;

        let written =
            r#"internode_outbound_written_messages_total{node="1",peer="2",link="small"}"#;
        let rtt_count = r#"internode_peer_rtt_seconds_count{node="1",peer="2"}"#;
        let (text, samples) = poll_until("the traffic and a round trip in a scrape", || async {
            let text = scrape(&registry);
            let samples = parse_openmetrics(&text);
            let seen = (
                samples.get(written).copied(),
                samples.get(rtt_count).copied(),
            );
            match seen {
                (Some(5.0), Some(n)) if n >= 1.0 => Ok((text, samples)),
                _ => Err(seen),
            }
        })
        .await;
        assert!(text.contains("# TYPE internode_outbound_written_messages counter\n"));
        assert!(text.contains("# TYPE internode_peer_rtt_seconds histogram\n"));
        let rtt = buckets(&samples, r#"internode_peer_rtt_seconds{node="1",peer="2"}"#);
        assert_eq!(rtt.len(), internode::node::RTT_BUCKETS.len() + 1, "{rtt:?}");
        assert_eq!(rtt.last(), Some(&(f64::INFINITY, samples[rtt_count])));
        let acknowledged =
            r#"internode_outbound_acknowledged_messages_total{node="1",peer="2",link="small"}"#;
        assert_eq!(samples.get(acknowledged), Some(&5.0), "{text}");
        // The families of the node's own text, no more and no fewer.
        let own = a.metrics().await.to_prometheus();
        parse_prometheus(&own);
        assert_eq!(families(&text), families(&own));

        // The refresh holds no handle on the node: once the last one is gone, the node
        // closes and the registry shows nothing of it.
        drop(a);
        poll_until("the node's series to leave the registry", || async {
            let text = scrape(&registry);
            parse_openmetrics(&text);
            if text.contains("internode_") {
                Err(text)
            } else {
                Ok(())
            }
        })
        .await;
    })
    .await;
}
