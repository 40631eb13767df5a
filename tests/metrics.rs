//! The metrics in the Prometheus text format, read back by a strict parser
//! (`support::prometheus`): the counters traffic and expiry move, refused connections,
//! a peer's series across `close_peer` and reopened links (they never go down), its
//! round-trip histogram fed by the heartbeat, and one series per peer and link on the
//! receiving side.
#![cfg(feature = "serde")]

mod support;

use std::time::Duration;

use bytes::BytesMut;
use internode::envelope::{Envelope, Flags};
use internode::message::Message;
use internode::node::{SendError, Sent, RTT_BUCKETS};
use internode::{LinkKind, NodeId};
use support::prometheus::{buckets, parse_prometheus};
use support::{
    bounded, collect, epoch_ms, fast_heartbeat_pair, frames, node, poll_until, raw_peer, recv_n,
    within, Seq,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// After some traffic and an expiry, the sender's Prometheus text carries the right
/// counters, and both nodes' texts are well-formed.
#[actix_rt::test]
async fn metrics_render_as_prometheus_text() {
    bounded(async {
        let (a, b) = support::pair().await;
        let mut inbox = collect::<Seq>(&b);
        const N: u64 = 7;
        for i in 0..N {
            assert_eq!(a.send(NodeId(2), Seq(i)).await, Ok(Sent::Acknowledged));
        }
        assert_eq!(
            a.send_expiring(NodeId(2), Seq(99), Duration::ZERO).await,
            Err(SendError::Expired)
        );
        recv_n(&mut inbox, N as usize).await;

        let text = a.metrics().await.to_prometheus();
        let samples = parse_prometheus(&text);
        let sample = |series: &str| {
            samples
                .get(series)
                .copied()
                .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        };
        let link = r#"node="1",peer="2",link="small""#;
        assert!(text.contains(&format!(
            "internode_outbound_written_messages_total{{{link}}} {N}\n"
        )));
        assert_eq!(
            sample(&format!("internode_outbound_written_bytes_total{{{link}}}")),
            N as f64 // a Seq below 128 is one byte
        );
        assert_eq!(
            sample(&format!(
                "internode_outbound_failed_messages_total{{{link},reason=\"expired\"}}"
            )),
            1.0
        );
        assert_eq!(
            sample(&format!(
                "internode_outbound_failed_bytes_total{{{link},reason=\"expired\"}}"
            )),
            1.0
        );
        assert_eq!(
            sample(&format!(
                "internode_outbound_accepted_messages_total{{{link}}}"
            )),
            N as f64,
            "the expired message was never taken"
        );
        assert_eq!(
            sample(r#"internode_reserve_in_use_bytes{node="1",direction="send",level="global"}"#),
            0.0
        );

        let text = poll_until("the receiver to count every message", || async {
            let text = b.metrics().await.to_prometheus();
            let samples = parse_prometheus(&text);
            let received = samples
                .get(r#"internode_inbound_received_messages_total{node="2",peer="1",link="small"}"#)
                .copied();
            if received == Some(N as f64) {
                Ok(text)
            } else {
                Err(received)
            }
        })
        .await;
        assert!(text.contains("# TYPE internode_inbound_received_messages_total counter\n"));

        // A connection that is not internode is refused before any peer is known: its
        // family has no peer label.
        let mut garbage = tokio::net::TcpStream::connect(b.local_addr())
            .await
            .unwrap();
        garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        poll_until("the refusal to be counted", || async {
            let text = b.metrics().await.to_prometheus();
            let samples = parse_prometheus(&text);
            let refused = samples
                .get(
                    r#"internode_inbound_refused_connections_total{node="2",reason="wrong_magic"}"#,
                )
                .copied();
            if refused == Some(1.0) {
                Ok(())
            } else {
                Err(refused)
            }
        })
        .await;
    })
    .await;
}

/// Whether `series` (as parsed) is part of a counter or a histogram: what may never
/// go down.
fn is_cumulative(series: &str) -> bool {
    let name = series.split('{').next().unwrap_or(series);
    name.ends_with("_total") || name.starts_with("internode_peer_rtt_seconds")
}

/// A peer's series go on across `close_peer` and the links it reopens: its counters
/// and its round-trip histogram never go down, and the histogram (fed by the
/// heartbeat) is well-formed.
#[actix_rt::test]
async fn a_peers_series_survive_close_peer_and_carry_its_round_trip_times() {
    bounded(async {
        let (a, b) = fast_heartbeat_pair().await;
        let mut inbox = collect::<Seq>(&b);
        for i in 0..5 {
            assert_eq!(a.send(NodeId(2), Seq(i)).await, Ok(Sent::Acknowledged));
        }
        recv_n(&mut inbox, 5).await;
        let rtt = r#"internode_peer_rtt_seconds{node="1",peer="2"}"#;
        let rtt_count = r#"internode_peer_rtt_seconds_count{node="1",peer="2"}"#;
        let before = poll_until("a round trip to be measured", || async {
            let samples = parse_prometheus(&a.metrics().await.to_prometheus());
            match samples.get(rtt_count).copied() {
                Some(n) if n >= 1.0 => Ok(samples),
                other => Err(other),
            }
        })
        .await;
        let written =
            r#"internode_outbound_written_messages_total{node="1",peer="2",link="small"}"#;
        assert_eq!(before.get(written), Some(&5.0));
        let bounds = buckets(&before, rtt);
        assert_eq!(bounds.len(), RTT_BUCKETS.len() + 1, "{bounds:?}");
        assert_eq!(bounds[0].0, 0.0001);
        assert_eq!(bounds.last(), Some(&(f64::INFINITY, before[rtt_count])));
        let snapshot = a.metrics().await;
        let histogram = &snapshot.rtt[&NodeId(2)];
        assert!(histogram.count() >= 1 && histogram.quantile(0.5).is_some());

        a.close_peer(NodeId(2), true).await;
        let closed = parse_prometheus(&a.metrics().await.to_prometheus());
        for (series, value) in before.iter().filter(|(s, _)| is_cumulative(s)) {
            let now = closed.get(series).copied();
            assert!(
                now >= Some(*value),
                "{series}: {value} before close_peer, {now:?} after"
            );
        }
        assert!(
            !closed
                .keys()
                .any(|s| s.starts_with("internode_outbound_pending_bytes{")),
            "no gauge for a closed link: {closed:?}"
        );

        // New links to the peer: the same series go on from where they were.
        for i in 5..8 {
            assert_eq!(a.send(NodeId(2), Seq(i)).await, Ok(Sent::Acknowledged));
        }
        recv_n(&mut inbox, 3).await;
        let after = parse_prometheus(&a.metrics().await.to_prometheus());
        assert_eq!(after.get(written), Some(&8.0));
        for (series, value) in closed.iter().filter(|(s, _)| is_cumulative(s)) {
            let now = after.get(series).copied();
            assert!(
                now >= Some(*value),
                "{series}: {value} before, {now:?} after"
            );
        }
        let connections = r#"internode_outbound_connections_total{node="1",peer="2",link="small"}"#;
        let connected = after.get(connections).copied();
        assert!(
            connected >= Some(2.0),
            "the old link's and the new one's: {connected:?}"
        );
    })
    .await;
}

/// A second connection for the same peer's link (a reconnect before the old
/// connection is noticed closed) replaces the first: the node closes the old one,
/// answers the new one with the position it reached, drops what it already has, and
/// its text keeps one series per peer and link with everything counted once.
#[actix_rt::test]
async fn inbound_connections_of_one_link_render_as_one_series() {
    bounded(async {
        let b = node(2).await;
        let mut inbox = collect::<Seq>(&b);
        let mut old = raw_peer(7, b.local_addr(), LinkKind::Small).await;
        let seq = |id: u64| Envelope {
            id,
            verb: Seq::VERB,
            flags: Flags::EMPTY,
            created_at_ms: epoch_ms(),
            expires_at_ms: None,
            params: Vec::new(),
            payload: {
                let mut buf = BytesMut::new();
                Seq(id).encode(&mut buf).unwrap();
                buf.freeze()
            },
        };
        old.write_all(&frames(&[seq(1), seq(2)])).await.unwrap();
        recv_n(&mut inbox, 2).await;
        let mut new = raw_peer(7, b.local_addr(), LinkKind::Small).await;
        let mut buf = [0u8; 64];
        // The old connection is closed by the node (after the acks it had sent).
        within("the old connection to close", async {
            while !matches!(old.read(&mut buf).await, Ok(0) | Err(_)) {}
        })
        .await;
        // 2 again (a replay), then new ones.
        new.write_all(&frames(&[seq(2), seq(3), seq(4), seq(5)]))
            .await
            .unwrap();
        let got: Vec<u64> = recv_n(&mut inbox, 3)
            .await
            .iter()
            .map(|(_, m)| m.0)
            .collect();
        assert_eq!(got, [3, 4, 5]);
        assert_eq!(b.inbound_connections().await, 1);
        let counters = b.inbound_counters().await;
        assert_eq!((counters.received, counters.duplicates), (5, 1));

        let text = b.metrics().await.to_prometheus();
        let samples = parse_prometheus(&text);
        assert_eq!(
            samples.get(
                r#"internode_inbound_received_messages_total{node="2",peer="7",link="small"}"#
            ),
            Some(&5.0),
            "{text}"
        );
    })
    .await;
}
