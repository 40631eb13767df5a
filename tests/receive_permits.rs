//! The receive limits are given back per turn of the receiving actor, not per message:
//! the messages handed over together (usually those of one frame) share their charge,
//! which comes back once the last of them is dropped. A handler that keeps a few
//! messages keeps at most their batches charged, and everything comes back once it
//! drops them.
#![cfg(feature = "serde")]

mod support;

use actix::prelude::*;
use internode::frame::MAX_PAYLOAD;
use internode::node::{InboundSnapshot, Metrics, Node, Received, Sent};
use internode::{LinkKind, NodeId};
use support::{bounded, join_all, pair, poll_until, within, Filled};
use tokio::sync::mpsc;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);
/// Messages sent.
const N: u64 = 2_000;
/// The payload of each.
const LEN: usize = 200;
/// The handler keeps every `KEEP_EVERY`th message.
const KEEP_EVERY: u64 = 500;

/// Keeps every [`KEEP_EVERY`]th message until told to drop them, drops the others at
/// once; reports every number.
struct Keeper {
    kept: Vec<Received<Filled>>,
    seen: mpsc::UnboundedSender<u64>,
}

impl Actor for Keeper {
    type Context = Context<Self>;
}

impl Handler<Received<Filled>> for Keeper {
    type Result = ();

    fn handle(&mut self, m: Received<Filled>, _: &mut Context<Self>) {
        let seq = m.message.seq;
        if seq % KEEP_EVERY == 0 {
            self.kept.push(m);
        }
        let _ = self.seen.send(seq);
    }
}

#[derive(Message)]
#[rtype(result = "usize")]
struct DropKept;

impl Handler<DropKept> for Keeper {
    type Result = usize;

    fn handle(&mut self, _: DropKept, _: &mut Context<Self>) -> usize {
        std::mem::take(&mut self.kept).len()
    }
}

fn inbound_small(m: &Metrics) -> Result<InboundSnapshot, String> {
    m.inbound
        .iter()
        .find(|i| i.peer == A && i.kind == LinkKind::Small)
        .cloned()
        .ok_or_else(|| "no small inbound link yet".to_owned())
}

async fn snapshot_when(
    b: &Node,
    what: &str,
    done: impl Fn(&InboundSnapshot) -> bool,
) -> InboundSnapshot {
    poll_until(what, || async {
        let inbound = inbound_small(&b.metrics().await)?;
        if done(&inbound) {
            Ok(inbound)
        } else {
            Err(format!("{inbound:?}"))
        }
    })
    .await
}

#[actix::test]
async fn a_kept_message_holds_at_most_its_batch_and_dropping_it_gives_everything_back() {
    bounded(async {
        let (a, b) = pair().await;
        let (tx, mut seen) = mpsc::unbounded_channel();
        let keeper = Keeper {
            kept: Vec::new(),
            seen: tx,
        }
        .start();
        b.handle::<Filled>(keeper.clone().recipient()).unwrap();

        let peer = a.peer(B);
        peer.ready().await.unwrap();
        let sends: Vec<_> = (0..N).map(|n| peer.send(Filled::new(n, LEN))).collect();
        for outcome in within("the acknowledgements", join_all(sends)).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        within("every message to be handled", async {
            for _ in 0..N {
                seen.recv().await.expect("the keeper lives");
            }
        })
        .await;

        let kept = N.div_ceil(KEEP_EVERY);
        let held = snapshot_when(&b, "the other batches to come back", |i| {
            i.counters.dispatched == N && i.counters.processed + kept <= N
        })
        .await;
        // What is still charged: the kept messages, with at most the rest of their
        // batches (a batch is what one frame, or one release, handed over).
        let message = (LEN + 8) as u64;
        let pending = held.pending_bytes as u64;
        assert!(
            pending >= kept * message && pending <= kept * 2 * MAX_PAYLOAD as u64,
            "{kept} messages kept, {pending} bytes pending"
        );
        assert!(held.counters.processed < N);

        assert_eq!(keeper.send(DropKept).await.unwrap() as u64, kept);
        let after = snapshot_when(&b, "everything to come back", |i| {
            i.counters.processed == N && i.pending_bytes == 0
        })
        .await;
        assert_eq!(after.reserve_bytes, 0);
        println!(
            "{kept} kept messages held {pending} bytes of {} messages",
            N - held.counters.processed
        );
    })
    .await;
}
