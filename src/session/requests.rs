//! The requests of one node that wait for their responses: [`PendingRequests`] (its
//! type docs state the invariants).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::NodeId;

#[derive(Debug)]
struct Entry<T> {
    peer: NodeId,
    deadline: Instant,
    value: T,
}

/// The requests of one node that wait for their responses.
///
/// Each request has an id (unique among those pending), the peer it went to, a
/// deadline, and a value of the caller's choosing (typically the sender half of the
/// channel the requester waits on). A request leaves in exactly one way: its response
/// arrives ([`complete`](PendingRequests::complete)), its deadline passes
/// ([`handle_timeout`](PendingRequests::handle_timeout)), or its peer is lost
/// ([`fail_peer`](PendingRequests::fail_peer)) — so failures reach the requester at
/// once, not at its timeout.
///
/// Invariants:
/// - Two indexes: a `HashMap` by id and a `BTreeSet` of `(deadline, id)`. They hold
///   exactly the same requests at all times: every removal removes from both (the
///   deadline of an id is known from the map, so the ordered index is cleaned eagerly
///   in O(log n)). So completed requests never linger in the deadline index, and
///   [`poll_timeout`](PendingRequests::poll_timeout) (a `&self` method, which could
///   not clean a lazily-deleted heap) is always the deadline of a live request.
/// - Memory is proportional to the number of pending requests, whatever the mix of
///   inserts, completions and expiries.
/// - Nothing reads a clock: "now" is an argument. Deadlines are instants computed by
///   the caller; a request whose timeout does not fit an [`Instant`] has no place here
///   (the caller keeps it without a deadline or caps the timeout).
///
/// ```
/// use std::time::{Duration, Instant};
/// use internode::session::PendingRequests;
/// use internode::NodeId;
///
/// let now = Instant::now();
/// let mut pending = PendingRequests::new();
/// pending.insert(1, NodeId(2), now + Duration::from_secs(1), "reply to A");
/// pending.insert(2, NodeId(2), now + Duration::from_secs(2), "reply to B");
/// assert_eq!(pending.complete(1), Some((NodeId(2), "reply to A")));
/// assert_eq!(pending.poll_timeout(), Some(now + Duration::from_secs(2)));
/// assert_eq!(pending.handle_timeout(now + Duration::from_secs(2)), [(2, "reply to B")]);
/// assert!(pending.is_empty());
/// ```
#[derive(Debug)]
pub struct PendingRequests<T> {
    by_id: HashMap<u64, Entry<T>>,
    by_deadline: BTreeSet<(Instant, u64)>,
}

impl<T> Default for PendingRequests<T> {
    fn default() -> Self {
        PendingRequests {
            by_id: HashMap::new(),
            by_deadline: BTreeSet::new(),
        }
    }
}

impl<T> PendingRequests<T> {
    /// No pending requests.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records request `id`, sent to `peer`, to be failed at `deadline` unless it
    /// completes first. If `id` was already pending, that request is replaced and
    /// returned (the caller gave the same id twice; its value is not lost silently).
    pub fn insert(
        &mut self,
        id: u64,
        peer: NodeId,
        deadline: Instant,
        value: T,
    ) -> Option<(NodeId, T)> {
        let previous = self.remove(id);
        self.by_id.insert(
            id,
            Entry {
                peer,
                deadline,
                value,
            },
        );
        self.by_deadline.insert((deadline, id));
        previous
    }

    /// The response to request `id` arrived: removes the request and returns its peer
    /// and value. `None` if it is not pending (never sent, already completed, expired
    /// or failed): a late or unexpected response, to be dropped.
    pub fn complete(&mut self, id: u64) -> Option<(NodeId, T)> {
        self.remove(id)
    }

    /// Removes and returns every request whose deadline is at or before `now`, the
    /// earliest deadline first (ties by id).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(u64, T)> {
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.by_deadline.first() {
            if deadline > now {
                break;
            }
            self.by_deadline.pop_first();
            if let Some(entry) = self.by_id.remove(&id) {
                expired.push((id, entry.value));
            }
        }
        expired
    }

    /// The connection to `peer` is lost for good (or the peer restarted): removes and
    /// returns all requests sent to it, by id. Others are untouched.
    pub fn fail_peer(&mut self, peer: NodeId) -> Vec<(u64, T)> {
        let mut ids: Vec<u64> = self
            .by_id
            .iter()
            .filter(|(_, entry)| entry.peer == peer)
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| self.remove(id).map(|(_, value)| (id, value)))
            .collect()
    }

    /// The earliest deadline of a pending request: when to call
    /// [`handle_timeout`](Self::handle_timeout) next. `None` when nothing is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.by_deadline.first().map(|&(deadline, _)| deadline)
    }

    /// Whether request `id` is pending.
    pub fn contains(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// How many requests are pending.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no request is pending.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn remove(&mut self, id: u64) -> Option<(NodeId, T)> {
        let entry = self.by_id.remove(&id)?;
        self.by_deadline.remove(&(entry.deadline, id));
        Some((entry.peer, entry.value))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The invariant of the module docs: both indexes hold the same requests.
    fn check_indexes<T>(pending: &PendingRequests<T>) {
        assert_eq!(pending.by_deadline.len(), pending.by_id.len());
        for &(deadline, id) in &pending.by_deadline {
            assert_eq!(pending.by_id[&id].deadline, deadline);
        }
    }

    #[test]
    fn a_response_before_the_deadline_completes_the_request() {
        let t0 = Instant::now();
        let mut pending = PendingRequests::new();
        pending.insert(7, NodeId(1), t0 + ms(100), 'a');
        assert!(pending.contains(7));
        assert_eq!(pending.complete(7), Some((NodeId(1), 'a')));
        assert_eq!(pending.complete(7), None, "a duplicate response");
        assert!(pending.handle_timeout(t0 + ms(100)).is_empty());
        assert!(pending.is_empty());
        check_indexes(&pending);
    }

    #[test]
    fn requests_expire_at_their_deadline_in_order() {
        let t0 = Instant::now();
        let mut pending = PendingRequests::new();
        pending.insert(3, NodeId(1), t0 + ms(200), "c");
        pending.insert(1, NodeId(1), t0 + ms(100), "a");
        pending.insert(2, NodeId(2), t0 + ms(100), "b");
        assert!(pending.handle_timeout(t0 + ms(99)).is_empty());
        assert_eq!(pending.handle_timeout(t0 + ms(100)), [(1, "a"), (2, "b")]);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending.handle_timeout(t0 + ms(10_000)), [(3, "c")]);
        // A response after expiry finds nothing.
        assert_eq!(pending.complete(1), None);
        assert_eq!(pending.complete(3), None);
        check_indexes(&pending);
    }

    #[test]
    fn fail_peer_only_fails_that_peer() {
        let t0 = Instant::now();
        let mut pending = PendingRequests::new();
        for id in 0..10u64 {
            pending.insert(id, NodeId(id % 3), t0 + ms(100 + id), id * 10);
        }
        assert_eq!(pending.fail_peer(NodeId(1)), [(1, 10), (4, 40), (7, 70)]);
        assert_eq!(pending.len(), 7);
        assert!(pending.fail_peer(NodeId(1)).is_empty());
        assert!(pending.fail_peer(NodeId(99)).is_empty());
        assert_eq!(pending.complete(0), Some((NodeId(0), 0)));
        assert_eq!(pending.complete(4), None);
        check_indexes(&pending);
    }

    #[test]
    fn poll_timeout_ignores_completed_requests() {
        let t0 = Instant::now();
        let mut pending = PendingRequests::new();
        assert_eq!(pending.poll_timeout(), None);
        pending.insert(1, NodeId(1), t0 + ms(100), ());
        pending.insert(2, NodeId(1), t0 + ms(300), ());
        pending.insert(3, NodeId(2), t0 + ms(200), ());
        assert_eq!(pending.poll_timeout(), Some(t0 + ms(100)));
        pending.complete(1);
        assert_eq!(pending.poll_timeout(), Some(t0 + ms(200)));
        pending.fail_peer(NodeId(2));
        assert_eq!(pending.poll_timeout(), Some(t0 + ms(300)));
        pending.complete(2);
        assert_eq!(pending.poll_timeout(), None);
    }

    #[test]
    fn inserting_an_id_twice_replaces_and_returns_the_first() {
        let t0 = Instant::now();
        let mut pending = PendingRequests::new();
        assert_eq!(pending.insert(5, NodeId(1), t0 + ms(100), "old"), None);
        assert_eq!(
            pending.insert(5, NodeId(2), t0 + ms(500), "new"),
            Some((NodeId(1), "old"))
        );
        assert_eq!(pending.len(), 1);
        check_indexes(&pending);
        assert!(
            pending.handle_timeout(t0 + ms(100)).is_empty(),
            "old deadline gone"
        );
        assert_eq!(pending.poll_timeout(), Some(t0 + ms(500)));
        assert_eq!(pending.complete(5), Some((NodeId(2), "new")));
    }

    #[test]
    fn churn_does_not_grow_the_indexes() {
        let t0 = Instant::now();
        let mut pending = PendingRequests::new();
        // A steady state of ~100 in flight, far-off deadlines, 100 000 requests
        // completed: neither index grows beyond what is pending.
        for id in 0..100_000u64 {
            pending.insert(id, NodeId(id % 5), t0 + ms(30_000 + id), id);
            if id >= 100 {
                assert_eq!(
                    pending.complete(id - 100),
                    Some((NodeId((id - 100) % 5), id - 100))
                );
            }
            if id % 1000 == 0 {
                // Interleave expiry polls that find nothing.
                assert!(pending.handle_timeout(t0 + ms(id / 1000)).is_empty());
            }
        }
        assert_eq!(pending.len(), 100);
        assert_eq!(pending.by_deadline.len(), 100);
        check_indexes(&pending);
        let expired = pending.handle_timeout(t0 + ms(1_000_000));
        assert_eq!(expired.len(), 100);
        assert_eq!(pending.by_deadline.len(), 0);
        assert!(pending.is_empty());
    }
}
