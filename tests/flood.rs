//! A sender that asks not to wait (`Peer::try_send`) floods a peer that has stopped
//! reading, with 100,000 messages, many times its send limits: what its link's credit
//! allows is queued (the link holds no more than its capacity and the endpoint
//! reserve, the reserves stay within their limits), the rest is refused as overloaded
//! at once, by the sender itself, and the process's memory stays bounded. Once the
//! peer reads again, everything queued is delivered, in order, exactly once.
//!
//! This binary holds one test only: it reads the process's resident memory
//! (`/proc/self/status`), which other tests running alongside would disturb.
//! `cargo test --test flood -- --nocapture` prints the figures.
#![cfg(feature = "serde")]

mod support;

use std::collections::BTreeMap;

use internode::limits::Limits;
use internode::node::{LinkSnapshot, Metrics, OverloadLevel, SendError, SendErrorKind, Sent};
use internode::session::LinkEvent;
use internode::{LinkKind, NodeId};
use support::{
    bounded, collect, poll_until, reset_peak_rss, sender_behind_proxy, status_kib, within, Events,
    Filled, POLL,
};
use tokio::sync::mpsc;

const B: NodeId = NodeId(2);
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The sender's send limits: small, so that the flood is many times larger.
const LIMITS: Limits = Limits::new(256 * KIB, MIB, 2 * MIB);
/// The payload of each message (small link: at most 64 KiB).
const MESSAGE: usize = 16 * KIB;
/// Messages sent into the stall: 1.6 GB, 1,500 times the endpoint reserve.
const FLOOD: u64 = 100_000;
/// Sends queued before the test looks at their outcomes and the metrics.
const WINDOW: u64 = 64;
/// Messages sent (and delivered) before the stall, so that the baseline memory is
/// that of a node that has already carried traffic (buffers and allocator warm).
const WARM_UP: u64 = 64;

/// The sender's small link to the receiver, from its metrics.
fn small_link(m: &Metrics) -> &LinkSnapshot {
    m.links
        .iter()
        .find(|l| l.peer == B && l.kind == LinkKind::Small)
        .expect("the small link")
}

/// The most seen of each figure while flooding.
#[derive(Debug, Default)]
struct Peaks {
    pending_bytes: usize,
    link_reserve: usize,
    send_reserve_global: usize,
    send_reserve_endpoint: usize,
    rss_kib: u64,
}

impl Peaks {
    /// Checks one metrics snapshot against the limits and records its figures.
    fn sample(&mut self, m: &Metrics) {
        for link in m.links.iter().filter(|l| l.peer == B) {
            assert!(
                link.pending_bytes <= LIMITS.link_capacity + LIMITS.endpoint_reserve,
                "{:?} link holds {} bytes, more than its capacity and the endpoint \
                 reserve ({LIMITS:?})",
                link.kind,
                link.pending_bytes
            );
            assert!(
                link.reserve_bytes <= LIMITS.endpoint_reserve,
                "{:?} link holds {} bytes of reserve",
                link.kind,
                link.reserve_bytes
            );
            self.pending_bytes = self.pending_bytes.max(link.pending_bytes);
            self.link_reserve = self.link_reserve.max(link.reserve_bytes);
        }
        let send = &m.limits.send;
        assert!(
            send.global_in_use <= LIMITS.global_reserve,
            "global send reserve in use: {}",
            send.global_in_use
        );
        for &(peer, bytes) in &send.endpoints {
            assert!(
                bytes <= LIMITS.endpoint_reserve,
                "send reserve in use for {peer}: {bytes}"
            );
            self.send_reserve_endpoint = self.send_reserve_endpoint.max(bytes);
        }
        self.send_reserve_global = self.send_reserve_global.max(send.global_in_use);
        self.rss_kib = self.rss_kib.max(status_kib("VmRSS"));
    }
}

#[actix_rt::test]
async fn a_flood_into_a_stalled_peer_stays_within_the_send_limits() {
    bounded(async {
        let (a, b, proxy) = sender_behind_proxy(LIMITS).await;
        let mut inbox = collect::<Filled>(&b);
        let mut events = Events::subscribe(&a).await;
        let to_b = a.peer(B);

        // Warm up: a window's worth through the open proxy.
        let warm_up: Vec<_> = (0..WARM_UP)
            .map(|seq| to_b.send(Filled::new(seq, MESSAGE)))
            .collect();
        for outcome in warm_up {
            assert_eq!(outcome.await, Ok(Sent::Acknowledged));
        }
        let mut next = 0;
        within("the warm-up messages", async {
            while next < WARM_UP {
                let (_, chunk) = inbox.recv().await.expect("the collector lives");
                assert_eq!(chunk.seq, next);
                next += 1;
            }
        })
        .await;

        // The flood: windows of sends, each followed by a look at the metrics. The
        // outcome of a message the link took arrives only once it is written, after
        // the stall: a task per message collects it.
        proxy.stall();
        let baseline_kib = status_kib("VmRSS");
        let hwm_reset = reset_peak_rss();
        let mut peaks = Peaks {
            rss_kib: baseline_kib,
            ..Peaks::default()
        };
        let (outcome_tx, mut outcome_rx) = mpsc::unbounded_channel();
        // Refusals are counted as they come (by kind), not kept one by one: the
        // test's own memory stays small next to what it measures.
        let mut failed: BTreeMap<SendErrorKind, u64> = BTreeMap::new();
        let first = WARM_UP;
        let last = WARM_UP + FLOOD - 1;
        let mut seq = first;
        let started = std::time::Instant::now();
        while seq <= last {
            for _ in 0..WINDOW.min(last + 1 - seq) {
                match to_b.try_send(Filled::new(seq, MESSAGE)) {
                    Ok(queued) => {
                        let tx = outcome_tx.clone();
                        actix::spawn(async move {
                            let _ = tx.send((seq, queued.await));
                        });
                    }
                    // `Link`: refused before the link said which reserve it waits for.
                    Err(
                        e @ SendError::Overloaded(
                            OverloadLevel::Link | OverloadLevel::Endpoint | OverloadLevel::Global,
                        ),
                    ) => *failed.entry(e.kind()).or_default() += 1,
                    Err(other) => panic!("message {seq}: unexpected refusal {other:?}"),
                }
                seq += 1;
            }
            // A window's refusals cost nothing; look at the metrics now and then.
            if seq % (16 * WINDOW) < WINDOW {
                peaks.sample(&a.metrics().await);
            }
        }
        let flood_time = started.elapsed();
        let failed_total: u64 = failed.values().sum();

        // Every refusal is reported at once, while the peer is still stalled.
        let mut outcomes = BTreeMap::new();
        let small = within("the link to settle", async {
            loop {
                while let Ok((seq, outcome)) = outcome_rx.try_recv() {
                    outcomes.insert(seq, outcome);
                }
                let m = a.metrics().await;
                peaks.sample(&m);
                let small = small_link(&m).clone();
                let taken = small.counters.accepted - WARM_UP;
                let reported = small.counters.acknowledged - WARM_UP;
                if taken + failed_total == FLOOD && outcomes.len() as u64 >= reported {
                    return small;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        let written_before_resume = outcomes.values().filter(|o| o.is_ok()).count();
        let peak_hwm_kib = if hwm_reset {
            Some(status_kib("VmHWM"))
        } else {
            None
        };
        assert!(inbox.try_recv().is_err(), "nothing gets through the stall");
        assert!(
            failed_total > 0,
            "a flood of {FLOOD} x {MESSAGE} bytes into a stalled peer found room: {:?}",
            small.counters
        );

        proxy.resume();
        within("every outcome", async {
            while (outcomes.len() as u64) + failed_total < FLOOD {
                let (seq, outcome) = outcome_rx.recv().await.expect("senders live");
                outcomes.insert(seq, outcome);
            }
        })
        .await;
        let mut written = Vec::new();
        for (&seq, outcome) in &outcomes {
            match outcome {
                Ok(Sent::Acknowledged) => written.push(seq),
                other => panic!("message {seq}: unexpected outcome {other:?}"),
            }
        }
        assert_eq!(written.len() as u64 + failed_total, FLOOD);

        // Everything written arrives, in order, once, intact.
        let mut delivered = Vec::with_capacity(written.len());
        within("the written messages", async {
            while delivered.len() < written.len() {
                let (from, chunk) = inbox.recv().await.expect("the collector lives");
                assert_eq!(from, NodeId(1));
                chunk.check(MESSAGE);
                delivered.push(chunk.seq);
            }
        })
        .await;
        assert_eq!(delivered, written, "delivered in order, exactly once");

        // The link's own counters agree, and it holds nothing any more.
        let settled = poll_until("the link to empty", || async {
            let m = a.metrics().await;
            let link = small_link(&m);
            if link.pending_bytes == 0
                && link.reserve_bytes == 0
                && m.limits.send.global_in_use == 0
            {
                Ok(m)
            } else {
                Err((link.clone(), m.limits.send))
            }
        })
        .await;
        let link = small_link(&settled);
        assert_eq!(link.counters.written - WARM_UP, written.len() as u64);
        assert_eq!(
            link.counters.accepted - WARM_UP,
            written.len() as u64,
            "every message the link took was written"
        );
        assert!(
            link.counters.failed.is_empty(),
            "the link refused nothing: the sender did, without sending: {:?}",
            link.counters.failed
        );
        assert_eq!(link.reserve_bytes, 0);
        let send = &settled.limits.send;
        assert!(send.global_peak <= LIMITS.global_reserve, "{send:?}");
        assert!(send.endpoint_peak <= LIMITS.endpoint_reserve, "{send:?}");
        assert!(
            send.endpoint_peak > 0,
            "the flood used the endpoint reserve"
        );
        assert!(
            failed.contains_key(&SendErrorKind::OverloadedEndpoint),
            "the endpoint reserve, the smaller one, ran out first: {failed:?}"
        );
        // No reset: what the link wrote into the stall is what was delivered.
        let resets: Vec<_> = events
            .of(B, LinkKind::Small)
            .into_iter()
            .filter(|e| matches!(e, LinkEvent::Disconnected { .. }))
            .collect();
        assert!(resets.is_empty(), "{resets:?}");

        // Memory. While stalled, the process legitimately holds: the link's queue and
        // what its credit lets wait in its mailbox (together within its capacity and
        // the endpoint reserve, 1.25 MiB), the frames of the write in flight (a batch
        // of about 1 MiB, a copy of queued messages), and the proxy's 64 KiB buffer:
        // about 2.3 MiB (the kernel's socket buffers are not resident memory of the
        // process). The bound is three times that, plus 4 MiB of allocator slack
        // (freed blocks kept by the allocator, the outcome tasks, the outcomes of
        // 100,000 messages): about 11 MiB, against 1.6 GB offered.
        let legit = LIMITS.link_capacity + LIMITS.endpoint_reserve + MIB;
        let peak_kib = peaks.rss_kib.max(peak_hwm_kib.unwrap_or(0));
        let growth_kib = peak_kib.saturating_sub(baseline_kib);
        let bound_kib = ((3 * legit + 4 * MIB) / KIB) as u64;

        println!("limits: {LIMITS:?}");
        println!(
            "flood: {FLOOD} messages of {MESSAGE} bytes ({} MiB) in {flood_time:?}",
            FLOOD as usize * MESSAGE / MIB
        );
        println!(
            "peak pending bytes (one link): {}; peak reserve held by a link: {}",
            peaks.pending_bytes, peaks.link_reserve
        );
        println!(
            "peak send reserve in use: endpoint {} (tracked peak {}), global {} (tracked peak {})",
            peaks.send_reserve_endpoint,
            send.endpoint_peak,
            peaks.send_reserve_global,
            send.global_peak
        );
        println!(
            "RSS: baseline {baseline_kib} KiB, sampled peak {} KiB, VmHWM {}, \
             growth {growth_kib} KiB (bound {bound_kib} KiB)",
            peaks.rss_kib,
            peak_hwm_kib.map_or("unavailable".to_string(), |k| format!("{k} KiB")),
        );
        println!(
            "overloaded: {failed_total} ({failed:?}), all at once, by the sender; \
             written into the stall: {written_before_resume}; \
             delivered after resume: {} (all written)",
            delivered.len()
        );
        assert!(
            growth_kib <= bound_kib,
            "resident memory grew by {growth_kib} KiB while flooding (bound {bound_kib} KiB)"
        );
    })
    .await;
}
