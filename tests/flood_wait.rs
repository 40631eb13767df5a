//! A producer that waits for room (`Peer::enqueue`, the waiting send) pushes 100,000
//! messages into a peer behind a proxy that stopped reading: it is held back by its
//! link's credit, so the process's memory stays within the send limits plus a
//! constant while the peer is stalled; once the peer reads again the producer goes
//! on by itself, and every message is delivered in order, none refused.
//!
//! One test in this binary: it reads the process's resident memory. `cargo test
//! --test flood_wait -- --nocapture` prints the figures.
#![cfg(feature = "serde")]

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use internode::limits::Limits;
use internode::node::{Metrics, Sent};
use internode::{LinkKind, NodeId};
use support::{bounded, collect, poll_until, sender_behind_proxy, status_kib, within, Filled};
use tokio::sync::mpsc;

const B: NodeId = NodeId(2);
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const LIMITS: Limits = Limits::new(256 * KIB, MIB, 2 * MIB);
const MESSAGE: usize = KIB;
const N: u64 = 100_000;

/// (credit waiting, pending + credit bytes) of the sender's small link to B.
fn small(m: &Metrics) -> (usize, usize) {
    m.links
        .iter()
        .find(|l| l.peer == B && l.kind == LinkKind::Small)
        .map_or((0, 0), |l| {
            (l.credit_waiting, l.pending_bytes + l.credit_bytes)
        })
}

#[actix_rt::test]
async fn a_waiting_producer_is_held_back_by_the_limits_and_resumes_with_the_peer() {
    bounded(async {
        let (a, b, proxy) = sender_behind_proxy(LIMITS).await;
        let mut inbox = collect::<Filled>(&b);
        let to_b = a.peer(B);
        // Warm: buffers and allocator, before the baseline.
        assert_eq!(
            to_b.send(Filled::new(u64::MAX, MESSAGE)).await,
            Ok(Sent::Acknowledged)
        );
        within("the warm-up message", inbox.recv()).await;

        proxy.stall();
        let baseline_kib = status_kib("VmRSS");
        // The producer: awaits room for each message, then leaves its outcome to a
        // task (the outcomes come once the peer reads again).
        let produced = Rc::new(Cell::new(0u64));
        let (outcome_tx, mut outcomes) = mpsc::unbounded_channel();
        let producer = {
            let (to_b, produced) = (to_b.clone(), produced.clone());
            actix::spawn(async move {
                for seq in 0..N {
                    let queued = to_b
                        .enqueue(Filled::new(seq, MESSAGE))
                        .await
                        .expect("a waiting send is never refused");
                    let tx = outcome_tx.clone();
                    actix::spawn(async move {
                        let _ = tx.send((seq, queued.await));
                    });
                    produced.set(seq + 1);
                }
            })
        };

        // Held back: the link's ask for room waits, the producer stops.
        let m = poll_until("the producer to wait for room", || async {
            let m = a.metrics().await;
            if small(&m).0 > 0 {
                Ok(m)
            } else {
                Err(produced.get())
            }
        })
        .await;
        let held_at = produced.get();
        let mut peak_kib = status_kib("VmRSS");
        let mut peak_link = small(&m).1;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let m = a.metrics().await;
            peak_link = peak_link.max(small(&m).1);
            peak_kib = peak_kib.max(status_kib("VmRSS"));
        }
        assert!(
            produced.get() < N / 10,
            "the stall held the producer back: {} sent",
            produced.get()
        );
        assert!(
            peak_link <= LIMITS.link_capacity + LIMITS.endpoint_reserve,
            "the link and its credit hold {peak_link} bytes"
        );

        // The peer reads again: the producer goes on by itself.
        proxy.resume();
        within("the producer to finish", producer)
            .await
            .expect("the producer ran");
        let mut next = 0;
        within("every message", async {
            while next < N {
                let (from, m) = inbox.recv().await.expect("the collector lives");
                assert_eq!((from, m.seq), (NodeId(1), next), "in order, once");
                next += 1;
            }
        })
        .await;
        let mut acknowledged = 0;
        within("every outcome", async {
            while acknowledged < N {
                let (seq, outcome) = outcomes.recv().await.expect("senders live");
                assert_eq!(outcome, Ok(Sent::Acknowledged), "message {seq}");
                acknowledged += 1;
            }
        })
        .await;

        // Memory while stalled: the link's queue and credit (within its capacity and
        // the endpoint reserve, 1.25 MiB), a write batch in flight (1 MiB), the
        // producer's one message and the outcome tasks of what was queued (a few
        // hundred bytes each), the proxy's buffer: about 2.5 MiB. The bound is three
        // times the limits part plus 4 MiB of allocator slack.
        let growth_kib = peak_kib.saturating_sub(baseline_kib);
        let bound_kib =
            ((3 * (LIMITS.link_capacity + LIMITS.endpoint_reserve + MIB) + 4 * MIB) / KIB) as u64;
        println!("limits: {LIMITS:?}; {N} messages of {MESSAGE} bytes");
        println!(
            "held back after {held_at} messages; link pending + credit peak {peak_link} bytes"
        );
        println!(
            "RSS: baseline {baseline_kib} KiB, peak while stalled {peak_kib} KiB, growth \
             {growth_kib} KiB (bound {bound_kib} KiB); after the resume all {N} delivered \
             in order, all acknowledged, none refused"
        );
        assert!(
            growth_kib <= bound_kib,
            "resident memory grew by {growth_kib} KiB while stalled (bound {bound_kib} KiB)"
        );
    })
    .await;
}
