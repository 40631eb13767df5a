//! The outbound link core: [`LinkSession`] (its type docs state the invariants).

mod admission;
mod credit;
mod idle;
mod state;
mod types;
mod write;

pub use credit::CreditAnswer;
pub use types::{
    Admission, Completion, LinkAction, LinkConfig, LinkCounters, LinkPolicy, Outbound,
};

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::control::{self, UNSOLICITED_PONG, VERB_ACK, VERB_EXPIRED, VERB_PING, VERB_PONG};
use super::{
    Backoff, DisconnectReason, Entry, Heartbeat, HeartbeatAction, Lifecycle, LifecycleAction,
    LinkEvent, LinkState, OutboundQueue, ProtocolViolation, REMEMBERED_PINGS,
};
use crate::envelope::{Envelope, MessageAssembler};
use crate::frame::{Decoded, FrameEncoder, FrameError, Framing};
use crate::limits::Grant;
use crate::message::RESERVED_VERBS_START;
use crate::outcome::{SendError, Sent};
use credit::Credits;
use write::encode;

/// How often a disconnected link drops its expired messages, and how long an idle
/// link keeps its spare reserve lease.
pub const HOUSEKEEPING: Duration = Duration::from_millis(100);

struct Item<T> {
    message: Outbound,
    token: T,
}

impl<T> Item<T> {
    fn complete(self, result: Result<Sent, SendError>) -> Completion<T> {
        Completion {
            verb: self.message.verb,
            bytes: self.message.size(),
            token: self.token,
            result,
        }
    }
}

/// A written message waiting for its acknowledgement.
struct Unacked<K, T> {
    seq: u64,
    entry: Entry<K, Item<T>>,
    /// The peer said it skipped the message, which arrived after its deadline: the
    /// acknowledgement that covers it ends it `Expired`.
    expired_at_peer: bool,
}

/// The connection, as the core knows it.
struct Conn<K, T> {
    heartbeat: Heartbeat,
    encoder: FrameEncoder,
    assembler: MessageAssembler,
    /// A transmit is out (handed to the shell, not yet reported written).
    writing: bool,
    /// Bytes of that transmit.
    unflushed: usize,
    /// Lossy: the messages of that transmit.
    in_flight: Vec<Entry<K, Item<T>>>,
    /// A ping to put in the next transmit.
    ping: Option<u64>,
    /// Since when something on the connection waits for the peer's answer (the
    /// connection itself until the peer answers anything, a lossy write until a ping
    /// written after it is answered); see `idle.rs`.
    unconfirmed_since: Option<Instant>,
    /// When a message was last written or acknowledged (or the connection made):
    /// the idle timeout counts from there.
    last_traffic: Instant,
}

/// One outbound link as a sans-IO state machine: its queue, what is being written and
/// what waits for an acknowledgement, its lifecycle and heartbeat, its byte account and
/// the expiry of its messages (docs/design.md). `K` is the peer's key in the
/// reserves; `T` is the shell's token of a message (where its outcome goes).
///
/// The shell (an actor) owns the socket and one timer. It reports inputs with
/// `handle_*` and, after every call, carries out what the `poll_*` methods return:
/// [`poll_action`](Self::poll_action) (connect, close the connection, stop),
/// [`poll_transmit`](Self::poll_transmit) (bytes to write; at most one write is out),
/// [`poll_outcome`](Self::poll_outcome) (a message's outcome for its sender),
/// [`poll_event`](Self::poll_event) (for the application),
/// [`poll_rtt`](Self::poll_rtt) (keepalive round-trip times, for metrics),
/// [`poll_release`](Self::poll_release) (reserve to give back) and
/// [`poll_timeout`](Self::poll_timeout) (when to call
/// [`handle_timeout`](Self::handle_timeout)).
///
/// ```text
///  handle_send ─> queue ─ poll_transmit ─> written (lossy: outcome Written)
///                                             └─ lossless: unacked ─ handle_ack ─> Acknowledged
///  handle_disconnected: lossy: in flight -> ConnectionLost; lossless: unacked kept
///  handle_connected(peer session, resume): same session: unacked <= resume -> Acknowledged,
///      expired -> Expired, the rest replayed first, in order; new session: PeerRestarted
/// ```
///
/// Invariants (unit-tested by driving two cores against each other on a simulated
/// clock through cuts, losses and corruption):
/// - Every message given to [`handle_send`](Self::handle_send) ends in exactly one
///   outcome, once. Its bytes stay charged to the account from `handle_send` until that
///   outcome: while queued, being written, and (lossless) until acknowledged, so what
///   the link holds never exceeds its capacity plus the reserve it leased, whatever the
///   peer does.
/// - Messages are written in the order they were queued. A lossless message gets its
///   sequence number when first written and keeps it when written again; after a
///   reconnect, the unacknowledged messages are written again, in order, before any
///   new one. Control messages (pings) carry no sequence number.
/// - An expired message is never written: not from the queue, and not replayed.
/// - The link connects while messages wait (queued, or written and unacknowledged),
///   retrying with backoff, and goes dormant when none do; a close without drain, or
///   a drain whose deadline passed, fails what remains (`Closed` if never written,
///   `ConnectionLost` if written and not acknowledged).
/// - While failing to connect, the link asks for no reserve: a message beyond its
///   capacity fails `Overloaded(Link)` at once.
/// - Producers' credit ([`handle_credit_ask`](Self::handle_credit_ask)) is granted in
///   the order asked, only out of the capacity and the reserve leased, and charged to
///   the account at once; a message sent under it
///   ([`handle_send_credited`](Self::handle_send_credited)) takes its bytes from that
///   charge and is never refused for room. So the bytes in the mailbox under credit,
///   plus those the link holds, stay within its capacity plus its lease.
/// - No clock is read: every input carries `now` (and `now_ms`, milliseconds since
///   the UNIX epoch, for message deadlines).
pub struct LinkSession<K, T> {
    config: LinkConfig,
    /// This side's session id (sequence numbers are scoped by it).
    session_id: u64,
    /// The origin of ping timestamps.
    origin: Instant,
    queue: OutboundQueue<K, Item<T>>,
    /// Producers' credit: granted out of the queue's account.
    credits: Credits<K>,
    lifecycle: Lifecycle,
    conn: Option<Conn<K, T>>,
    /// Lossless: written, not yet acknowledged, in sequence order.
    unacked: VecDeque<Unacked<K, T>>,
    /// Lossless: `unacked[..replay_next]` were written on the current connection.
    replay_next: usize,
    next_seq: u64,
    /// The peer's session id, from the last handshake.
    peer_session: Option<u64>,
    outcomes: VecDeque<Completion<T>>,
    events: VecDeque<LinkEvent>,
    /// Round-trip times measured and not yet polled (at most `REMEMBERED_PINGS`).
    rtt_samples: VecDeque<Duration>,
    actions: VecDeque<LinkAction>,
    releases: Vec<Grant<K>>,
    counters: LinkCounters,
    /// When to drop expired messages while disconnected.
    sweep_at: Option<Instant>,
    /// When to give back an idle link's spare lease.
    spare_at: Option<Instant>,
    /// When a drain gives up.
    drain_deadline: Option<Instant>,
    /// This link carries its peer's keepalive (see `idle.rs`).
    keeper: bool,
    scratch: BytesMut,
}

impl<K: Clone + Eq, T> LinkSession<K, T> {
    /// A dormant link with this configuration and `session_id` (nonzero, fresh for
    /// every link session), created at `now`.
    pub fn new(config: LinkConfig, session_id: u64, now: Instant) -> Self {
        LinkSession {
            queue: OutboundQueue::new(config.capacity, config.lease_chunk),
            credits: Credits::new(),
            lifecycle: Lifecycle::new(Backoff::new(config.backoff, config.seed)),
            config,
            session_id,
            origin: now,
            conn: None,
            unacked: VecDeque::new(),
            replay_next: 0,
            next_seq: 1,
            peer_session: None,
            outcomes: VecDeque::new(),
            events: VecDeque::new(),
            rtt_samples: VecDeque::new(),
            actions: VecDeque::new(),
            releases: Vec::new(),
            counters: LinkCounters::default(),
            sweep_at: None,
            spare_at: None,
            drain_deadline: None,
            keeper: false,
            scratch: BytesMut::new(),
        }
    }

    // ----------------------------------------------------------------- inputs

    /// The connection attempt succeeded at `now`: the peer's session id and the last
    /// sequence number it took from this link (`resume`), from its Accept, and the
    /// connection's framing.
    pub fn handle_connected(
        &mut self,
        peer_session: u64,
        resume: u64,
        framing: Framing,
        now: Instant,
        now_ms: u64,
    ) {
        let actions = self.lifecycle.handle_connected(now);
        let closing = actions.contains(&LifecycleAction::CloseConnection);
        self.apply(actions);
        if closing {
            return;
        }
        self.counters.connections += 1;
        if let Some(previous) = self.peer_session.filter(|p| *p != peer_session) {
            // The peer restarted: what it had not acknowledged is in doubt.
            self.counters.peer_restarts += 1;
            for u in std::mem::take(&mut self.unacked) {
                let entry = self.queue.settle(u.entry);
                self.fail(entry.item, SendError::PeerRestarted);
            }
            self.events.push_back(LinkEvent::PeerRestarted {
                previous_session_id: previous,
                session_id: peer_session,
            });
        } else {
            if resume >= self.next_seq {
                // The peer claims what was never sent: it cannot be trusted.
                let reason = DisconnectReason::Protocol(ProtocolViolation::BadAcknowledgement);
                return self.lose_conn(reason, now);
            }
            self.acknowledge(resume);
            // Expired messages are never written again.
            self.expire_unacked(now_ms);
        }
        self.peer_session = Some(peer_session);
        self.replay_next = 0;
        self.conn = Some(Conn {
            heartbeat: Heartbeat::new(self.config.heartbeat, self.origin, now),
            encoder: FrameEncoder::new(framing),
            assembler: MessageAssembler::new(self.config.max_control),
            writing: false,
            unflushed: 0,
            in_flight: Vec::new(),
            ping: None,
            unconfirmed_since: Some(now),
            last_traffic: now,
        });
        self.sweep_at = None;
        self.housekeep(now);
    }

    /// The connection attempt failed, or the established connection was lost, at
    /// `now`. Ignored when there is neither.
    pub fn handle_disconnected(&mut self, reason: DisconnectReason, now: Instant) {
        self.drop_conn();
        let waiting = self.waiting();
        let actions = self.lifecycle.handle_disconnected(reason, waiting, now);
        self.apply(actions);
        self.housekeep(now);
    }

    /// The transmit handed out by [`poll_transmit`](Self::poll_transmit) was written
    /// at `now`; `buffer` is its buffer back (reused for the next one when busy).
    pub fn handle_written(&mut self, buffer: BytesMut, now: Instant) {
        // Idle only when nothing waits at all: with messages unacknowledged, more
        // sends follow their acknowledgements, and a batch-sized buffer freed and
        // allocated again per batch costs page faults.
        let idle = self.queue.is_empty() && self.unacked.is_empty();
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if !conn.writing {
            return;
        }
        conn.writing = false;
        conn.unflushed = 0;
        conn.heartbeat.handle_written(now);
        if !idle {
            conn.encoder.recycle(buffer);
        }
        for entry in std::mem::take(&mut conn.in_flight) {
            let entry = self.queue.settle(entry);
            self.complete(entry.item, Sent::Written);
        }
        // Idle: no batch-sized buffer or queue kept (lossy: written is done;
        // lossless waits for the acknowledgement).
        self.release_if_idle();
        self.housekeep(now);
    }

    /// Something arrived on the connection at `now`: a frame, or the decoder's error.
    pub fn handle_input(&mut self, input: Result<Decoded, FrameError>, now: Instant) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        conn.heartbeat.handle_read(now);
        let frame = match input {
            Ok(Decoded::Frame(frame)) => frame,
            // The acceptor sends only control messages, which the next ones supersede.
            Ok(Decoded::Corrupt { .. }) => return,
            Err(FrameError::Io(kind)) => {
                return self.lose_conn(DisconnectReason::Io(kind), now);
            }
            Err(_) => {
                let reason = DisconnectReason::Protocol(ProtocolViolation::FrameHeaderCorrupt);
                return self.lose_conn(reason, now);
            }
        };
        let mut messages = Vec::new();
        if conn.assembler.push(frame, &mut messages).is_err() {
            let reason = DisconnectReason::Protocol(ProtocolViolation::MessageMalformed);
            return self.lose_conn(reason, now);
        }
        for mut bytes in messages {
            let Ok(envelope) = Envelope::decode(&mut bytes) else {
                let reason = DisconnectReason::Protocol(ProtocolViolation::MessageMalformed);
                return self.lose_conn(reason, now);
            };
            let Some(value) = control::decode_vint(&envelope.payload) else {
                continue;
            };
            match envelope.verb {
                VERB_PONG if value != UNSOLICITED_PONG => {
                    let rtt = self
                        .conn
                        .as_mut()
                        .and_then(|c| c.heartbeat.handle_pong(value, now));
                    if let Some(rtt) = rtt {
                        if self.rtt_samples.len() == REMEMBERED_PINGS {
                            self.rtt_samples.pop_front();
                        }
                        self.rtt_samples.push_back(rtt);
                    }
                }
                VERB_ACK if value >= self.next_seq => {
                    let reason = DisconnectReason::Protocol(ProtocolViolation::BadAcknowledgement);
                    return self.lose_conn(reason, now);
                }
                VERB_ACK => {
                    self.acknowledge(value);
                    self.note_acknowledged(now);
                    self.release_if_idle();
                }
                VERB_EXPIRED => self.expired_at_peer(value),
                _ => {}
            }
        }
        self.housekeep(now);
    }

    /// The connection ended from the shell's side of things (the peer closed it).
    pub fn handle_eof(&mut self, now: Instant) {
        if self.conn.is_some() {
            self.lose_conn(DisconnectReason::PeerClosed, now);
        }
    }

    /// The application closes the link at `now`: with `drain`, what waits is
    /// delivered first (acknowledged, on a lossless link), until `deadline` at most;
    /// without, it fails at once.
    pub fn handle_close(&mut self, drain: bool, deadline: Option<Instant>, now: Instant) {
        let waiting = self.waiting();
        let actions = self.lifecycle.handle_close(drain, waiting);
        self.apply(actions);
        if matches!(self.lifecycle.state(), LinkState::Draining) {
            self.drain_deadline = match (self.drain_deadline, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.housekeep(now);
    }

    /// The node learned at `now` that the peer is up (it connected to this node):
    /// a link waiting to retry connects at once.
    pub fn handle_peer_seen(&mut self, now: Instant) {
        let actions = self.lifecycle.handle_wake();
        self.apply(actions);
        self.housekeep(now);
    }

    /// The peer's address changed at `now`: the connection (or attempt) to the old
    /// address is dropped and the link connects to the new one at once if anything
    /// waits. On a lossless link what the old connection did not get acknowledged is
    /// written again on the new one; on a lossy link what it was writing fails
    /// `ConnectionLost`.
    pub fn handle_address_changed(&mut self, now: Instant) {
        let connecting = matches!(self.lifecycle.state(), LinkState::Connecting { .. });
        if self.conn.is_some() || connecting {
            self.lose_conn(DisconnectReason::AddressChanged, now);
        }
        self.handle_peer_seen(now);
    }

    /// The timer asked for by [`poll_timeout`](Self::poll_timeout) fired (or any
    /// wake-up: early calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant, now_ms: u64) {
        let actions = self.lifecycle.handle_retry_timer(now);
        self.apply(actions);
        // An idle connection due to be pruned is closed, not pinged.
        self.prune_if_due(now);
        if let Some(conn) = self.conn.as_mut() {
            match conn.heartbeat.handle_timeout(now) {
                HeartbeatAction::Idle => {}
                HeartbeatAction::SendPing { timestamp_us } => conn.ping = Some(timestamp_us),
                HeartbeatAction::TimedOut { silent_for } => {
                    self.lose_conn(DisconnectReason::read_timeout(silent_for), now);
                }
                HeartbeatAction::Unwritable { blocked_for } => {
                    self.lose_conn(DisconnectReason::write_timeout(blocked_for), now);
                }
            }
        }
        if self.sweep_at.is_some_and(|at| now >= at) {
            self.sweep_at = None;
            let mut expired = Vec::new();
            self.queue.handle_timeout(now_ms, &mut expired);
            self.expired(expired);
            if self.conn.is_none() {
                self.expire_unacked(now_ms);
            }
        }
        if self.spare_at.is_some_and(|at| now >= at) {
            self.spare_at = None;
            if let Some(grant) = self.queue.idle_spare() {
                self.releases.push(grant);
            }
        }
        if self.drain_deadline.is_some_and(|at| now >= at) {
            self.drain_deadline = None;
            let actions = self.lifecycle.handle_close(false, self.waiting());
            self.apply(actions);
        }
        self.housekeep(now);
    }

    // ---------------------------------------------------------------- outputs

    /// The next thing to do with the connection.
    pub fn poll_action(&mut self) -> Option<LinkAction> {
        self.actions.pop_front()
    }

    /// Bytes to write now, if connected, no write is out and something waits (a
    /// ping, messages to replay, queued messages). Report the write with
    /// [`handle_written`](Self::handle_written), or its failure with
    /// [`handle_disconnected`](Self::handle_disconnected).
    pub fn poll_transmit(&mut self, now: Instant, now_ms: u64) -> Option<BytesMut> {
        let conn = self.conn.as_mut()?;
        if conn.writing {
            return None;
        }
        if let Some(timestamp) = conn.ping.take() {
            control::push(&mut conn.encoder, VERB_PING, timestamp, now_ms);
        }
        let batch = self.config.batch_bytes;
        // Whether messages (not only a ping) go into this transmit.
        let mut wrote = false;
        // Lossless: what the last connection did not get acknowledged, first; one
        // that expired meanwhile is not written again.
        let mut failed = Vec::new();
        while self.replay_next < self.unacked.len() && conn.encoder.buffered_len() < batch {
            let u = &mut self.unacked[self.replay_next];
            let error = if u.entry.expired(now_ms) {
                Some(SendError::Expired)
            } else {
                let message = &mut u.entry.item.message;
                encode(&mut self.scratch, &mut conn.encoder, u.seq, message, now_ms)
                    .err()
                    .map(SendError::Envelope)
            };
            match error {
                None => {
                    self.counters.replayed += 1;
                    wrote = true;
                    self.replay_next += 1;
                }
                Some(error) => {
                    if let Some(u) = self.unacked.remove(self.replay_next) {
                        failed.push((self.queue.settle(u.entry), error));
                    }
                }
            }
        }
        for (entry, error) in failed {
            fail_into(&mut self.counters, &mut self.outcomes, entry.item, error);
        }
        let mut expired = Vec::new();
        while conn.encoder.buffered_len() < batch {
            let Some(mut entry) = self.queue.pop(now_ms, &mut expired) else {
                break;
            };
            let seq = self.next_seq;
            let message = &mut entry.item.message;
            if let Err(error) = encode(&mut self.scratch, &mut conn.encoder, seq, message, now_ms) {
                let entry = self.queue.settle(entry);
                fail_into(
                    &mut self.counters,
                    &mut self.outcomes,
                    entry.item,
                    SendError::Envelope(error),
                );
                continue;
            }
            self.next_seq += 1;
            wrote = true;
            if entry.item.message.verb < RESERVED_VERBS_START {
                self.counters.written += 1;
                self.counters.written_bytes += entry.item.message.size() as u64;
            }
            match self.config.policy {
                LinkPolicy::Lossy => conn.in_flight.push(entry),
                LinkPolicy::Lossless => {
                    self.unacked.push_back(Unacked {
                        seq,
                        entry,
                        expired_at_peer: false,
                    });
                    self.replay_next = self.unacked.len();
                }
            }
        }
        if wrote {
            self.note_written(now);
        }
        let conn = self.conn.as_mut()?;
        let transmit = if conn.encoder.is_empty() {
            None
        } else {
            let bytes = conn.encoder.take();
            conn.writing = true;
            conn.unflushed = bytes.len();
            conn.heartbeat.handle_write_started(now);
            Some(bytes)
        };
        self.expired(expired);
        self.update_keepalive(now);
        transmit
    }

    /// The next outcome of a message, for its sender.
    pub fn poll_outcome(&mut self) -> Option<Completion<T>> {
        self.outcomes.pop_front()
    }

    /// The next event for the application, oldest first.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// The next keepalive round-trip time measured, oldest first: one per pong that
    /// answered a ping (see [`Heartbeat::handle_pong`]), for the shell's metrics. A
    /// shell that does not poll them loses the oldest: at most [`REMEMBERED_PINGS`]
    /// wait.
    pub fn poll_rtt(&mut self) -> Option<Duration> {
        self.rtt_samples.pop_front()
    }

    /// Reserve the link no longer needs, to give back to the reserves.
    pub fn poll_release(&mut self) -> Option<Grant<K>> {
        self.releases.pop()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout), if anything is due: a
    /// retry, the heartbeat (paused on an idle link that is not its peer's keeper:
    /// "Idle links" above), the pruning of an idle connection, the expiry sweep of a
    /// disconnected link, the release of an idle lease, the end of a drain. `None`:
    /// nothing until the next input.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let heartbeat = self.conn.as_ref().and_then(|c| c.heartbeat.poll_timeout());
        [
            self.lifecycle.poll_timeout(),
            heartbeat,
            self.prune_at(),
            self.sweep_at,
            self.spare_at,
            self.drain_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // -------------------------------------------------------------- internals

    /// Whether anything waits to be delivered: queued, being written, unacknowledged.
    fn waiting(&self) -> bool {
        !self.queue.is_empty()
            || !self.unacked.is_empty()
            || self.conn.as_ref().is_some_and(|c| !c.in_flight.is_empty())
    }

    fn failing_to_connect(&self) -> bool {
        match self.lifecycle.state() {
            LinkState::WaitingToRetry { .. } => true,
            LinkState::Connecting { attempt } => *attempt > 1,
            _ => false,
        }
    }

    /// The peer took everything up to `seq` (and skipped those it said expired).
    fn acknowledge(&mut self, seq: u64) {
        while self.unacked.front().is_some_and(|u| u.seq <= seq) {
            let Some(u) = self.unacked.pop_front() else {
                break;
            };
            self.replay_next = self.replay_next.saturating_sub(1);
            let entry = self.queue.settle(u.entry);
            if u.expired_at_peer {
                self.fail(entry.item, SendError::Expired);
                continue;
            }
            if entry.item.message.verb < RESERVED_VERBS_START {
                self.counters.acknowledged += 1;
            }
            self.complete(entry.item, Sent::Acknowledged);
        }
    }

    /// Lets go of the write buffer and the queues' allocations once nothing waits
    /// (memory per idle peer; the next message allocates them again).
    fn release_if_idle(&mut self) {
        if !self.queue.is_empty() || !self.unacked.is_empty() {
            return;
        }
        self.queue.shrink_if_empty();
        super::shrink_if_empty(&mut self.unacked);
        if let Some(conn) = self.conn.as_mut().filter(|c| !c.writing) {
            conn.encoder.release_buffer();
        }
    }

    /// The messages the queue and the unacknowledged list have room for without
    /// allocating.
    #[cfg(test)]
    pub(crate) fn queues_capacity(&self) -> usize {
        self.queue.capacity() + self.unacked.capacity()
    }

    /// The peer skipped message `seq`: it arrived after its deadline.
    fn expired_at_peer(&mut self, seq: u64) {
        let at = self.unacked.partition_point(|u| u.seq < seq);
        if let Some(u) = self.unacked.get_mut(at).filter(|u| u.seq == seq) {
            u.expired_at_peer = true;
        }
    }

    /// Fails the unacknowledged messages whose deadline passed (the link is not
    /// connected: they cannot be written again in time).
    fn expire_unacked(&mut self, now_ms: u64) {
        if !self.unacked.iter().any(|u| u.entry.expired(now_ms)) {
            return;
        }
        for u in std::mem::take(&mut self.unacked) {
            if u.entry.expired(now_ms) {
                let entry = self.queue.settle(u.entry);
                self.fail(entry.item, SendError::Expired);
            } else {
                self.unacked.push_back(u);
            }
        }
        self.replay_next = 0;
    }

    /// Forgets the connection: what a lossy one was writing is lost.
    fn drop_conn(&mut self) {
        if let Some(conn) = self.conn.take() {
            for entry in conn.in_flight {
                let entry = self.queue.settle(entry);
                self.fail(entry.item, SendError::ConnectionLost);
            }
        }
        self.replay_next = 0;
    }

    /// The core itself ends the connection (timeout, bad input, new address).
    fn lose_conn(&mut self, reason: DisconnectReason, now: Instant) {
        self.actions.push_back(LinkAction::CloseConnection);
        self.handle_disconnected(reason, now);
    }

    fn apply(&mut self, actions: Vec<LifecycleAction>) {
        for action in actions {
            match action {
                LifecycleAction::Connect => {
                    self.counters.connection_attempts += 1;
                    self.actions.push_back(LinkAction::Connect);
                }
                LifecycleAction::ScheduleRetry { .. } => {}
                LifecycleAction::CloseConnection => {
                    self.drop_conn();
                    self.actions.push_back(LinkAction::CloseConnection);
                }
                LifecycleAction::FailQueued => self.fail_all(),
                LifecycleAction::Stop => {
                    self.fail_all();
                    self.credits.close(&SendError::Closed, &mut self.queue);
                    if let Some(grant) = self.queue.take_spare() {
                        self.releases.push(grant);
                    }
                    self.sweep_at = None;
                    self.spare_at = None;
                    self.drain_deadline = None;
                    self.actions.push_back(LinkAction::Stop);
                }
            }
        }
        while let Some(event) = self.lifecycle.poll_event() {
            self.events.push_back(event);
        }
    }

    /// Fails everything that waits: `Closed` if never written, `ConnectionLost` if
    /// written and not acknowledged.
    fn fail_all(&mut self) {
        for e in self.queue.drain() {
            self.fail(e.item, SendError::Closed);
        }
        for u in std::mem::take(&mut self.unacked) {
            let entry = self.queue.settle(u.entry);
            self.fail(entry.item, SendError::ConnectionLost);
        }
        self.replay_next = 0;
    }

    /// After every input: reserve to give back, the timers of a disconnected or idle
    /// link, the end of a drain.
    fn housekeep(&mut self, now: Instant) {
        if matches!(
            self.lifecycle.state(),
            LinkState::Draining | LinkState::Closed
        ) {
            self.credits.close(&SendError::Closed, &mut self.queue);
        } else {
            let may_lease = !self.failing_to_connect();
            self.credits.grant(&mut self.queue, may_lease);
            self.credits.rebalance(&mut self.queue);
        }
        if let Some(grant) = self.queue.surplus() {
            self.releases.push(grant);
        }
        let account = self.queue.account();
        if account.spare() > 0 && account.reserve_charged() == 0 {
            self.spare_at.get_or_insert(now + HOUSEKEEPING);
        }
        let waiting = !self.queue.is_empty() || !self.unacked.is_empty();
        if self.conn.is_none() && waiting && !self.lifecycle.is_closed() {
            self.sweep_at.get_or_insert(now + HOUSEKEEPING);
        }
        if matches!(self.lifecycle.state(), LinkState::Draining) && !self.waiting() {
            let actions = self.lifecycle.handle_drained();
            self.apply(actions);
        }
        self.update_keepalive(now);
    }

    fn expired(&mut self, expired: Vec<Entry<K, Item<T>>>) {
        for entry in expired {
            self.fail(entry.item, SendError::Expired);
        }
    }

    fn fail(&mut self, item: Item<T>, error: SendError) {
        fail_into(&mut self.counters, &mut self.outcomes, item, error);
    }

    fn complete(&mut self, item: Item<T>, sent: Sent) {
        self.outcomes.push_back(item.complete(Ok(sent)));
    }
}

fn fail_into<T>(
    counters: &mut LinkCounters,
    outcomes: &mut VecDeque<Completion<T>>,
    item: Item<T>,
    error: SendError,
) {
    if item.message.verb < RESERVED_VERBS_START {
        counters.count_failure(&error, item.message.size());
    }
    outcomes.push_back(item.complete(Err(error)));
}
