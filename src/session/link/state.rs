//! What the shell and the metrics read of a [`LinkSession`]: its ids, state, gauges
//! and counters.

use std::time::Duration;

use super::{LinkCounters, LinkPolicy, LinkSession};
use crate::session::LinkState;

impl<K: Clone + Eq, T> LinkSession<K, T> {
    /// This side's session id, for the Hello.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The sequence number at or below which every message written has its outcome,
    /// for the Hello (the receiver forgets its expiry notes up to it).
    pub fn settled(&self) -> u64 {
        self.unacked
            .front()
            .map_or(self.next_seq - 1, |u| u.seq - 1)
    }

    /// The link's policy.
    pub fn policy(&self) -> LinkPolicy {
        self.config.policy
    }

    /// What the link is doing.
    pub fn state(&self) -> &LinkState {
        self.lifecycle.state()
    }

    /// Whether the link is closed for good.
    pub fn is_closed(&self) -> bool {
        self.lifecycle.is_closed()
    }

    /// Whether a connection is established.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The counters.
    pub fn counters(&self) -> &LinkCounters {
        &self.counters
    }

    /// The last keepalive round-trip time of the connection.
    pub fn rtt(&self) -> Option<Duration> {
        self.conn.as_ref().and_then(|c| c.heartbeat.rtt())
    }

    /// Messages queued (not yet written).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Messages written and not yet acknowledged (lossless) or being written (lossy).
    pub fn unacknowledged(&self) -> usize {
        self.unacked.len() + self.conn.as_ref().map_or(0, |c| c.in_flight.len())
    }

    /// Bytes held for the messages the link has taken and that have no outcome yet.
    pub fn pending_bytes(&self) -> usize {
        self.queue.bytes() - self.credits.held()
    }

    /// Bytes of credit granted to producers and not yet used by a message (charged
    /// to the link like messages: what may be in the mailbox under credit).
    pub fn credit_bytes(&self) -> usize {
        self.credits.held()
    }

    /// Producers' asks for credit waiting for room.
    pub fn credit_waiting(&self) -> usize {
        self.credits.waiting()
    }

    /// Bytes of the write that is out.
    pub fn unflushed_bytes(&self) -> usize {
        self.conn.as_ref().map_or(0, |c| c.unflushed)
    }

    /// Reserve the link holds (charged to messages or leased spare).
    pub fn reserve_bytes(&self) -> usize {
        self.queue.account().reserve_charged() + self.queue.account().spare()
    }
}
