//! The receiving core: [`ReceiveSession`] (its type docs state the invariants).

#[path = "receive_counters.rs"]
mod counters;
#[path = "receive_intake.rs"]
mod intake;

pub use counters::InboundCounters;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::control::{self, UNSOLICITED_PONG, VERB_ACK, VERB_EXPIRED, VERB_PONG};
use super::shrink_if_empty;
use super::trim::TrimDeadline;
use super::{DisconnectReason, Heartbeat, HeartbeatAction, ProtocolViolation, HOUSEKEEPING};
use crate::envelope::{Envelope, MessageAssembler};
use crate::frame::{Decoded, FrameEncoder, FrameError, Framing};
use crate::limits::{Account, Charge, Grant, ReserveNeeded, ReserveRequest};

/// How many replaced sender sessions a [`ReceiveSession`] remembers (to refuse their
/// late Hellos).
const SUPERSEDED: usize = 8;

/// How long after the last frame that grew the read buffer a receiving connection
/// gives it back (see [`TrimDeadline`]): longer than the pauses within a stream of
/// large messages, short enough that a burst's memory is soon back.
pub const TRIM_AFTER: Duration = Duration::from_secs(1);

/// How many written expiry notes a [`ReceiveSession`] keeps for a reconnect (the oldest
/// go first beyond that).
const SENT_NOTES: usize = 4096;

/// Everything a [`ReceiveSession`] is configured with.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ReceiveConfig {
    /// The link's own byte capacity for messages not yet processed.
    pub capacity: usize,
    /// Reserve leased beyond a message's need.
    pub lease_chunk: usize,
    /// The largest message (envelope) accepted: a larger one is dropped unread (its
    /// bytes as they arrive, nothing allocated for it) and counted.
    pub max_message: usize,
    /// Reset a connection after this long without reading anything, where the read
    /// timeout applies: before its first input and while it holds a partial message
    /// (not counting time spent throttled); see [`ReceiveSession`].
    pub read_timeout: Duration,
    /// While throttled, an unsolicited pong goes out this often, so that the sender's
    /// read timeout does not reset a slow but healthy connection.
    pub keepalive_interval: Duration,
    /// Acknowledge at the end of every read batch ([`ReceiveSession::handle_caught_up`])
    /// and, within a long one, whenever this many bytes were taken since the last
    /// acknowledgement.
    pub ack_bytes: usize,
    /// The shell's read buffer capacity: a frame larger than this grows the buffer.
    pub read_capacity: usize,
    /// Once no frame larger than `read_capacity` arrived for this long, the shell is
    /// told to give back its grown read buffer ([`ReceiveSession::poll_trim`], a
    /// [`TrimDeadline`]).
    pub trim_after: Duration,
}

impl ReceiveConfig {
    /// A receiving link with these byte limits, a 5 s read timeout, a keepalive every
    /// second while throttled, and an acknowledgement every eighth of `capacity`
    /// (at least 16 KiB, at most 1 MiB) within a long read batch, and the read buffer
    /// of a [`FrameCodec::new`](crate::frame::FrameCodec::new) trimmed [`TRIM_AFTER`]
    /// after the last frame that grew it, as a node's receiving links have; set the
    /// fields to change them.
    pub fn new(capacity: usize, lease_chunk: usize, max_message: usize) -> Self {
        ReceiveConfig {
            capacity,
            lease_chunk,
            max_message,
            read_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(1),
            ack_bytes: (capacity / 8).clamp(16 << 10, 1 << 20),
            read_capacity: crate::frame::DEFAULT_READ_CAPACITY,
            trim_after: TRIM_AFTER,
        }
    }
}

/// What arrived for the application, from [`ReceiveSession::poll_arrival`].
#[derive(Debug)]
pub enum Arrival<K> {
    /// A message for its handler, charged to the receive limits: `charge` must come
    /// back through [`ReceiveSession::handle_processed`] once the handler is done
    /// (or merged with others' through
    /// [`handle_processed_many`](ReceiveSession::handle_processed_many)).
    Deliver {
        /// The message.
        envelope: Envelope,
        /// Its bytes, as charged.
        charge: Charge<K>,
    },
    /// A response to one of this node's requests (not charged).
    Response {
        /// The response.
        envelope: Envelope,
    },
}

/// A connection refused by [`ReceiveSession::handle_hello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StaleAttempt {
    /// An attempt of the current sender session older than the connection in use.
    #[error("stale connection attempt {attempt} (current attempt {current})")]
    Older {
        /// The attempt of the refused connection.
        attempt: u64,
        /// The attempt of the connection in use.
        current: u64,
    },
    /// A sender session that a newer one of the same node id replaced: the peer
    /// restarted, or another process claims its node id (a misconfiguration if the
    /// refusals go on).
    #[error("sender session {session_id:#x} was replaced by a newer one of the same node id")]
    Replaced {
        /// The refused session.
        session_id: u64,
    },
}

/// An input of the connection that waits for receive limits, with when it arrived.
struct Parked {
    decoded: Decoded,
    at: Instant,
    at_ms: u64,
}

struct Conn {
    heartbeat: Heartbeat,
    encoder: FrameEncoder,
    assembler: MessageAssembler,
    lossless: bool,
    /// A transmit is out.
    writing: bool,
    /// Bytes to send before anything else (the handshake's answer).
    prefix: Option<BytesMut>,
    /// A ping's timestamp to echo.
    pong: Option<u64>,
    /// The highest sequence number acknowledged on this connection.
    acked: u64,
    /// Bytes taken since the last acknowledgement.
    unacked_bytes: usize,
    /// The read batch ended: acknowledge what it took.
    caught_up: bool,
    /// Something was read on the connection since its handshake.
    heard: bool,
}

/// The receiving side of one link (one peer, one link kind) as a sans-IO state
/// machine, across all the connections the peer opens for it: the sequence filter,
/// the acknowledgements, the receive-limit account with its backlog, and the read
/// timeout. `K` is the peer's key in the reserves.
///
/// The shell (an actor) owns the current socket and one timer. A new connection is
/// announced with [`handle_hello`](Self::handle_hello) (after the shell dropped the
/// previous one: a new connection replaces the old one, which is how the old one's
/// final position is known: it is this value's own), which answers the resume
/// position for the Accept. Then the shell feeds what it reads to
/// [`handle_input`](Self::handle_input), and carries out
/// [`poll_arrival`](Self::poll_arrival) (to the handlers),
/// [`poll_transmit`](Self::poll_transmit) (acks and pongs to write),
/// [`poll_acquire`](Self::poll_acquire) (reserve to wait for),
/// [`is_reading`](Self::is_reading) (stop or resume reading the socket),
/// [`poll_release`](Self::poll_release) and [`poll_timeout`](Self::poll_timeout).
///
/// Invariants (unit-tested, and property-tested against any sequence of cuts,
/// duplicates and reorderings of the byte stream):
/// - Each message with a sequence number is taken at most once, in increasing order:
///   a number at or below the last one taken is a duplicate, dropped and counted;
///   gaps are allowed (the sender skips messages that expired before it could write
///   them again). A sender with a new session id (it restarted) starts over from 0.
/// - The acknowledged position only counts messages taken: handed to their handler,
///   skipped (undecodable, oversized), or waiting in the backlog for receive limits;
///   the backlog survives a change of connection, so an acknowledged message is never
///   lost while this node lives. An acknowledgement goes out at the end of every read
///   batch that advanced the position, and within a long batch every
///   [`ack_bytes`](ReceiveConfig::ack_bytes), as soon as no write is out (cumulative: a
///   lost one is covered by the next). A message that arrived after its deadline is
///   skipped and the sender told before the acknowledgement that covers it.
/// - A corrupt frame on a lossless link resets the connection (the sender writes what
///   it held again); on a lossy link it is skipped where the stream allows.
/// - A message larger than the maximum is dropped unread (its bytes as they arrive)
///   and counted; it counts as taken.
/// - Receive limits: a message is charged before it is handed over; when one does not
///   fit, it and everything after it wait in order and the shell stops reading until
///   reserve (or the handlers' releases) make room. A large message (several frames)
///   is charged frame by frame as it arrives, before each frame is taken: what the
///   frame adds to the assembler's buffer ([`MessageAssembler::growth`]), so that the
///   bytes charged for it are always exactly its buffer's capacity, and the completed
///   message carries that charge (it is not charged again). A frame whose growth does
///   not fit waits, in order, with everything after it (with a shell that stops
///   reading when told, nothing comes after it), exactly like a message. Nothing waits
///   uncharged but that frame, messages in the backlog (already in memory, taken) and
///   an incomplete header (at most `MAX_HEADER_LEN` bytes). Lengths are checked before
///   memory is reserved (the assembler). Expired messages are never charged, but for
///   the frames of a large one, whose charge goes back when it completes late.
/// - A connection that ends, is replaced or is reset gives its partial message's
///   charge back at once, and what waited of its frames is dropped (never taken, so
///   never acknowledged: the sender writes it again); the backlog stays.
/// - Read timeout: it counts from the last frame read or taken, and applies only
///   where silence means a fault, since an idle sender may be silent for good (only
///   its peer's keeper link pings while idle, and idle connections are pruned by
///   closing them): until the connection's first input, and while it holds a partial
///   message (a frame waiting for room, or frames of a message in the assembler). While
///   the link is throttled (not reading) only the latter: with nothing partial it is
///   suspended (unsolicited pongs tell the sender this end is alive); holding a partial
///   message, if no frame is taken for the timeout, the connection is reset, and its
///   charge goes back to others. An idle connection whose peer vanished is left to
///   the kernel's TCP keepalive or to the link's next connection, which replaces it.
/// - No clock is read: every input carries `now` (and `now_ms` for deadlines).
pub struct ReceiveSession<K> {
    config: ReceiveConfig,
    peer_session: Option<u64>,
    /// Sender sessions replaced by a newer one (the last few): a late Hello of one of
    /// them is refused, so that it cannot reset the position of the live session.
    superseded: VecDeque<u64>,
    /// Sequence numbers skipped because they arrived after their deadline, not yet
    /// told to the sender (before the acknowledgement that covers them).
    expired_notes: VecDeque<u64>,
    /// Notes written, which the sender may not have read if the connection broke:
    /// kept until a Hello says the sender settled them (at most [`SENT_NOTES`]).
    sent_notes: VecDeque<u64>,
    /// The highest sequence number taken.
    in_seq: u64,
    /// The attempt number of the current connection's Hello.
    attempt: u64,
    conn: Option<Conn>,
    account: Account<K>,
    /// Messages waiting for receive limits, in order, with their sizes (uncharged).
    backlog: VecDeque<(Envelope, usize)>,
    /// The charge of the current connection's partial message: exactly the capacity
    /// of its assembler's buffer ([`MessageAssembler::body_capacity`]).
    partial: Option<Charge<K>>,
    /// Inputs of the current connection waiting for receive limits, in order: the
    /// first is a frame whose growth did not fit, or one that arrived behind the
    /// backlog. At most one while the shell stops reading when told.
    parked: VecDeque<Parked>,
    arrivals: VecDeque<Arrival<K>>,
    /// Reserve to ask for.
    acquire: ReserveRequest,
    throttled_since: Option<Instant>,
    /// When the next unsolicited pong is due while throttled.
    keepalive_at: Option<Instant>,
    spare_at: Option<Instant>,
    releases: Vec<Grant<K>>,
    counters: InboundCounters,
    scratch: Vec<Bytes>,
    /// When to give back what large frames grew.
    trim: TrimDeadline,
    /// The shell should trim its read buffer ([`poll_trim`](Self::poll_trim)).
    trim_due: bool,
}

impl<K: Clone + Eq> ReceiveSession<K> {
    /// A receiving link with no connection yet.
    pub fn new(config: ReceiveConfig) -> Self {
        ReceiveSession {
            account: Account::new(config.capacity, config.lease_chunk),
            config,
            peer_session: None,
            superseded: VecDeque::new(),
            expired_notes: VecDeque::new(),
            sent_notes: VecDeque::new(),
            in_seq: 0,
            attempt: 0,
            conn: None,
            backlog: VecDeque::new(),
            partial: None,
            parked: VecDeque::new(),
            arrivals: VecDeque::new(),
            acquire: ReserveRequest::default(),
            throttled_since: None,
            keepalive_at: None,
            spare_at: None,
            releases: Vec::new(),
            counters: InboundCounters::default(),
            scratch: Vec::new(),
            trim: TrimDeadline::new(config.trim_after),
            trim_due: false,
        }
    }

    // ----------------------------------------------------------------- inputs

    /// A peer's Hello for this link at `now`: its session id, the attempt number of
    /// the connection (0 if it sends none), the sequence number at or below which
    /// every message has an outcome at the sender (`settled`), whether its link is
    /// lossless, and the framing. The new connection replaces the current one (the shell has dropped
    /// its socket; frames it still held were not acknowledged, and the sender writes
    /// them again). Returns the resume position for the Accept: the last sequence
    /// number taken, 0 after a restart of the sender. An attempt older than the
    /// current connection's is refused and changes nothing.
    pub fn handle_hello(
        &mut self,
        session_id: u64,
        attempt: u64,
        settled: u64,
        lossless: bool,
        framing: Framing,
        now: Instant,
    ) -> Result<u64, StaleAttempt> {
        let same_session = self.peer_session == Some(session_id);
        if same_session && self.conn.is_some() && attempt != 0 && attempt < self.attempt {
            return Err(StaleAttempt::Older {
                attempt,
                current: self.attempt,
            });
        }
        if self.superseded.contains(&session_id) {
            return Err(StaleAttempt::Replaced { session_id });
        }
        if !same_session {
            if let Some(previous) = self.peer_session {
                self.counters.peer_restarts += 1;
                if self.superseded.len() == SUPERSEDED {
                    self.superseded.pop_front();
                }
                self.superseded.push_back(previous);
            }
            self.in_seq = 0;
            // Notes about the old session mean nothing to the new one.
            self.expired_notes.clear();
            self.sent_notes.clear();
        }
        // Notes written on an earlier connection may not have been read: tell them
        // again, unless the sender says it settled them (`settled`: everything at or
        // below has an outcome there).
        let mut notes: VecDeque<u64> = std::mem::take(&mut self.sent_notes);
        notes.extend(self.expired_notes.drain(..));
        self.expired_notes = notes.into_iter().filter(|seq| *seq > settled).collect();
        self.peer_session = Some(session_id);
        self.attempt = attempt;
        self.counters.connections += 1;
        self.forget_connection(now);
        self.conn = Some(Conn {
            heartbeat: Heartbeat::read_timeout_only(self.config.read_timeout, now),
            encoder: FrameEncoder::new(framing),
            assembler: MessageAssembler::new(self.config.max_message).skip_oversized(),
            lossless,
            writing: false,
            prefix: None,
            pong: None,
            acked: 0,
            unacked_bytes: 0,
            caught_up: false,
            heard: false,
        });
        if self.throttled_since.is_some() {
            self.keepalive_at = Some(now + self.config.keepalive_interval);
        }
        // The position stops short of a skipped message the sender has not been told
        // about: it writes that one (and what follows) again, the duplicates are
        // dropped, and the note goes out before the acknowledgement that covers it.
        let resume = match self.expired_notes.front() {
            Some(first) => first - 1,
            None => self.in_seq,
        };
        if let Some(conn) = self.conn.as_mut() {
            conn.acked = resume;
            // Acknowledge at once what the resume position held back.
            conn.caught_up = resume < self.in_seq;
        }
        Ok(resume)
    }

    /// Bytes the shell must write on the new connection before anything else (the
    /// encoded Accept).
    pub fn handle_handshake_reply(&mut self, bytes: BytesMut) {
        if let Some(conn) = self.conn.as_mut() {
            conn.prefix = Some(bytes);
        }
    }

    /// Something arrived on the connection at `now` (`now_ms` since the UNIX
    /// epoch). An error means the connection must be closed (the core has already
    /// forgotten it).
    pub fn handle_input(
        &mut self,
        input: Result<Decoded, FrameError>,
        now: Instant,
        now_ms: u64,
    ) -> Result<(), DisconnectReason> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        conn.heartbeat.handle_read(now);
        conn.heard = true;
        // As the codec counts a frame that grows the read buffer: its payload and
        // trailer beyond the read capacity (an LZ4 frame counts decompressed: at
        // worst an extra trim).
        let trailer = conn.encoder.framing().trailer_len();
        if input
            .as_ref()
            .is_ok_and(|d| wire_len(d) + trailer > self.config.read_capacity)
        {
            self.trim.handle_activity(now);
        }
        let result = match input {
            // Behind what waits, in order.
            Ok(decoded) if self.is_waiting() => {
                self.parked.push_back(Parked {
                    decoded,
                    at: now,
                    at_ms: now_ms,
                });
                Ok(())
            }
            Ok(decoded) => self.take_input(decoded, now, now_ms).map(drop),
            Err(FrameError::Io(kind)) => Err(DisconnectReason::Io(kind)),
            Err(FrameError::Decompress { .. }) => Err(ProtocolViolation::Decompression.into()),
            Err(_) => Err(ProtocolViolation::FrameHeaderCorrupt.into()),
        };
        if result.is_err() {
            self.forget_connection(now);
        }
        self.housekeep(now);
        result
    }

    /// The shell read everything its socket had for now (the end of a read batch):
    /// what the batch took is acknowledged at the next transmit.
    pub fn handle_caught_up(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.caught_up = true;
        }
        // Nothing held between read batches: the queues' allocations go back when
        // empty (the next batch allocates them again).
        shrink_if_empty(&mut self.arrivals);
        shrink_if_empty(&mut self.parked);
        shrink_if_empty(&mut self.backlog);
    }

    /// The entries the arrival, parked and backlog queues have room for without
    /// allocating.
    #[cfg(test)]
    pub(crate) fn queues_capacity(&self) -> usize {
        self.arrivals.capacity() + self.parked.capacity() + self.backlog.capacity()
    }

    /// The connection ended at `now` (EOF, or the shell closed it).
    pub fn handle_disconnected(&mut self, now: Instant) {
        self.forget_connection(now);
        self.housekeep(now);
    }

    /// The transmit from [`poll_transmit`](Self::poll_transmit) was written.
    pub fn handle_written(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.writing = false;
        }
    }

    /// A handler finished with a message charged `charge`, at `now`: what waited for
    /// room goes on. An error means the connection must be closed (a frame that
    /// waited broke the stream; only if the shell read on when told not to).
    pub fn handle_processed(
        &mut self,
        charge: Charge<K>,
        now: Instant,
    ) -> Result<(), DisconnectReason> {
        self.handle_processed_many(charge, 1, now)
    }

    /// The handlers finished with `messages` messages whose charges come back merged
    /// into `charge` ([`Charge::merge`]), at `now`: as
    /// [`handle_processed`](Self::handle_processed) for each of them, in one step.
    pub fn handle_processed_many(
        &mut self,
        charge: Charge<K>,
        messages: u64,
        now: Instant,
    ) -> Result<(), DisconnectReason> {
        self.counters.processed += messages;
        self.account.discharge(charge);
        let result = self.drain(now);
        self.housekeep(now);
        result
    }

    /// Reserve asked for with [`poll_acquire`](Self::poll_acquire) was granted: what
    /// waited for room goes on. An error as for
    /// [`handle_processed`](Self::handle_processed).
    pub fn handle_lease(&mut self, grant: Grant<K>, now: Instant) -> Result<(), DisconnectReason> {
        self.acquire.answered();
        if let Err(grant) = self.account.add_lease(grant) {
            self.releases.push(grant);
        }
        let result = self.drain(now);
        self.housekeep(now);
        result
    }

    /// The timer from [`poll_timeout`](Self::poll_timeout) fired (early calls are
    /// harmless). An error means the connection must be closed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DisconnectReason> {
        if self.trim.handle_timeout(now) {
            self.trim_due = true;
            if let Some(conn) = self.conn.as_mut() {
                conn.encoder.release_buffer();
            }
        }
        if self.spare_at.is_some_and(|at| now >= at) {
            self.spare_at = None;
            if let Some(grant) = self.account.idle_spare() {
                self.releases.push(grant);
            }
        }
        let watched = self.read_timeout_applies();
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if self.throttled_since.is_some() {
            // Not reading on purpose: the sender's pings wait unread behind its
            // data. Tell it this end is alive.
            if self.keepalive_at.is_some_and(|at| now >= at) {
                conn.pong.get_or_insert(UNSOLICITED_PONG);
                self.keepalive_at = Some(now + self.config.keepalive_interval);
            }
        }
        if !watched {
            return Ok(());
        }
        if let HeartbeatAction::TimedOut { silent_for } = conn.heartbeat.handle_timeout(now) {
            self.forget_connection(now);
            self.housekeep(now);
            return Err(DisconnectReason::read_timeout(silent_for));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- outputs

    /// The next message for the application.
    pub fn poll_arrival(&mut self) -> Option<Arrival<K>> {
        self.arrivals.pop_front()
    }

    /// Bytes to write now (the handshake's answer, a pong, an acknowledgement), if
    /// connected and no write is out. Report it with
    /// [`handle_written`](Self::handle_written).
    pub fn poll_transmit(&mut self, now_ms: u64) -> Option<BytesMut> {
        let conn = self.conn.as_mut()?;
        if conn.writing {
            return None;
        }
        if let Some(prefix) = conn.prefix.take() {
            conn.writing = true;
            return Some(prefix);
        }
        if let Some(timestamp) = conn.pong.take() {
            control::push(&mut conn.encoder, VERB_PONG, timestamp, now_ms);
        }
        // Acknowledgements (and skip notes) only matter to a lossless sender.
        if !conn.lossless {
            self.expired_notes.clear();
            conn.acked = self.in_seq;
        }
        let ack_due = conn.caught_up || conn.unacked_bytes >= self.config.ack_bytes;
        if ack_due && self.in_seq > conn.acked {
            for seq in self.expired_notes.drain(..) {
                control::push(&mut conn.encoder, VERB_EXPIRED, seq, now_ms);
                if self.sent_notes.len() == SENT_NOTES {
                    self.sent_notes.pop_front();
                }
                self.sent_notes.push_back(seq);
            }
            conn.acked = self.in_seq;
            conn.unacked_bytes = 0;
            control::push(&mut conn.encoder, VERB_ACK, self.in_seq, now_ms);
        }
        conn.caught_up = false;
        if conn.encoder.is_empty() {
            return None;
        }
        conn.writing = true;
        Some(conn.encoder.take())
    }

    /// Reserve to wait for (the head of the backlog does not fit), at most one
    /// request at a time: report the grant with [`handle_lease`](Self::handle_lease).
    pub fn poll_acquire(&mut self) -> Option<ReserveNeeded> {
        self.acquire.poll()
    }

    /// Whether the shell should read its socket: not while messages or a frame wait
    /// for receive limits. The shell stops after the input it is handling, so at most
    /// that one more arrives: a closed `Gate` does not poll the socket's stream.
    pub fn is_reading(&self) -> bool {
        self.throttled_since.is_none()
    }

    /// Reserve to give back.
    pub fn poll_release(&mut self) -> Option<Grant<K>> {
        self.releases.pop()
    }

    /// Whether the shell should give back its read buffer now if it holds nothing
    /// (and, once it is empty, when it grew for large frames): no frame larger than
    /// the read capacity arrived for [`trim_after`](ReceiveConfig::trim_after). Once
    /// per quiet spell after large frames, never on an idle connection.
    pub fn poll_trim(&mut self) -> bool {
        std::mem::take(&mut self.trim_due)
    }

    /// When to call [`handle_timeout`](Self::handle_timeout), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.conn.as_ref().and_then(|c| {
            let read = self
                .read_timeout_applies()
                .then(|| c.heartbeat.poll_timeout())
                .flatten();
            let keepalive = self.throttled_since.and(self.keepalive_at);
            [keepalive, read].into_iter().flatten().min()
        });
        [conn, self.spare_at, self.trim.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the read timeout watches the connection now. The sender pings only
    /// while it has something unconfirmed, or on its peer's keeper link (docs/design.md,
    /// "Writing and heartbeats"), so an idle connection may be silent for good: the
    /// timeout applies only where silence means a fault. Until the connection's first
    /// input (a sender writes at once on a new connection, at least a ping within an
    /// interval), and while it holds a partial message (a sender in the middle of a
    /// message writes on or pings); while throttled (not reading on purpose) only the
    /// latter. A dead peer's idle connection is left to the kernel's TCP keepalive, or
    /// to the next connection of the same link, which replaces it.
    fn read_timeout_applies(&self) -> bool {
        let Some(conn) = self.conn.as_ref() else {
            return false;
        };
        let partial = self.holds_partial();
        if self.throttled_since.is_some() {
            partial
        } else {
            partial || !conn.heard
        }
    }

    // ------------------------------------------------------------------ state

    /// The counters.
    pub fn counters(&self) -> &InboundCounters {
        &self.counters
    }

    /// The counters, for the shell's own (dispatch errors).
    pub fn counters_mut(&mut self) -> &mut InboundCounters {
        &mut self.counters
    }

    /// The last sequence number taken.
    pub fn position(&self) -> u64 {
        self.in_seq
    }

    /// Whether a connection is in use.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Bytes charged to the receive limits: messages taken and not yet processed, and
    /// the partial message being received ([`partial_bytes`](Self::partial_bytes)).
    pub fn pending_bytes(&self) -> usize {
        self.account.used()
    }

    /// Bytes charged for the partial message being received (the capacity of its
    /// buffer so far).
    pub fn partial_bytes(&self) -> usize {
        self.partial.as_ref().map_or(0, Charge::bytes)
    }

    /// Receive reserve held (charged or leased spare).
    pub fn reserve_bytes(&self) -> usize {
        self.account.reserve_charged() + self.account.spare()
    }

    /// Since when the link has not been reading for lack of receive limits.
    pub fn throttled_since(&self) -> Option<Instant> {
        self.throttled_since
    }

    /// Gives every spare lease back, the partial message's charge first (the link is
    /// going away: the connection with it).
    pub fn take_spare(&mut self) -> Option<Grant<K>> {
        self.drop_connection_state();
        self.account.take_spare()
    }

    // -------------------------------------------------------------- internals

    fn housekeep(&mut self, now: Instant) {
        if !self.is_waiting() {
            if let Some(grant) = self.account.surplus() {
                self.releases.push(grant);
            }
        }
        if self.account.spare() > 0 && self.account.reserve_charged() == 0 {
            self.spare_at.get_or_insert(now + HOUSEKEEPING);
        }
    }
}

/// The payload bytes a decoded frame took in the read buffer (about: its payload as
/// sent; the trailer is the caller's to add).
fn wire_len(decoded: &Decoded) -> usize {
    match decoded {
        Decoded::Frame(frame) => frame.payload.len(),
        Decoded::Corrupt { payload_len, .. } => *payload_len,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "receive_tests.rs"]
mod tests;
