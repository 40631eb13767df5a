//! The check of the many-peers workload's messages: one sequence per (node, lane).
//!
//! The hub keys what it receives by the sending peer, a peer process by its
//! receiving node (everything it gets is from the hub). Each message's lane is the
//! kind of link it travelled: urgent (`UrgentBlob`), small or large (`Blob` of at
//! most or above [`LinkKind::LARGE_THRESHOLD`] bytes). Order holds per link only, so
//! each (node, lane) has its own sequence, which must run from 0 up by one, every
//! message of the lane's size ([`lane_size`]): a lost message shows as a gap, a
//! duplicate as a number already seen, and either is counted as bad. "As many as
//! were sent, none bad" then means every message arrived once.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use internode::{LinkKind, NodeId};
use serde_json::json;
use tokio::sync::Notify;

use super::lane_size;
use crate::messages::Body;

/// Messages received, checked per (node, lane) (one thread: cells).
#[derive(Default)]
pub struct Tally {
    /// The next sequence number expected of each (node, lane).
    next: RefCell<HashMap<(NodeId, LinkKind), u64>>,
    count: Cell<u64>,
    bad: Cell<u64>,
    first_bad: RefCell<Option<String>>,
    /// The count a waiter waits for.
    target: Cell<Option<u64>>,
    reached: Notify,
}

impl Tally {
    /// A `Blob` of `node` arrived: on the small link, or the large one by its size.
    pub fn blob(&self, node: NodeId, body: &Body) {
        let lane = match body.len() > LinkKind::LARGE_THRESHOLD {
            true => LinkKind::Large,
            false => LinkKind::Small,
        };
        self.record(node, lane, body);
    }

    /// An `UrgentBlob` of `node` arrived.
    pub fn urgent(&self, node: NodeId, body: &Body) {
        self.record(node, LinkKind::Urgent, body);
    }

    fn record(&self, node: NodeId, lane: LinkKind, body: &Body) {
        let size = lane_size(lane);
        let mut next = self.next.borrow_mut();
        let expected = next.entry((node, lane)).or_insert(0);
        if body.seq != *expected || body.len() != size {
            let what = format!(
                "{node} {lane}: expected message {expected} of {size} B, got {} of {} B",
                body.seq,
                body.len()
            );
            drop(next);
            self.fail(what);
        } else {
            *expected += 1;
        }
        let count = self.count.get() + 1;
        self.count.set(count);
        if self.target.get().is_some_and(|t| count >= t) {
            self.reached.notify_one();
        }
    }

    /// Something went wrong on the receiving side.
    pub fn fail(&self, what: String) {
        self.bad.set(self.bad.get() + 1);
        let mut first = self.first_bad.borrow_mut();
        if first.is_none() {
            eprintln!("many-peers: {what}");
            *first = Some(what);
        }
        self.reached.notify_one();
    }

    /// Waits until `count` messages arrived, one was bad, or `timeout` passed; then
    /// says what arrived, as JSON: `count`, `bad`, `first_bad`, `keys` (the (node,
    /// lane) pairs that sent), `min` and `max` (the fewest and most messages of one
    /// pair, in sequence).
    pub async fn wait(&self, count: u64, timeout: Duration) -> serde_json::Value {
        self.target.set(Some(count));
        let _ = tokio::time::timeout(timeout, async {
            while self.count.get() < count && self.bad.get() == 0 {
                self.reached.notified().await;
            }
        })
        .await;
        self.target.set(None);
        let next = self.next.borrow();
        let mut lanes: HashMap<String, u64> = HashMap::new();
        for (_, lane) in next.keys() {
            *lanes.entry(lane.to_string()).or_default() += 1;
        }
        json!({
            "keys_by_lane": lanes,
            "count": self.count.get(),
            "bad": self.bad.get(),
            "first_bad": *self.first_bad.borrow(),
            "keys": next.len(),
            "min": next.values().min().copied().unwrap_or(0),
            "max": next.values().max().copied().unwrap_or(0),
        })
    }
}
