//! [`InboundCounters`]: what a [`ReceiveSession`](super::ReceiveSession) counts.

/// Counters of one receiving link (all its connections).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboundCounters {
    /// Messages received (keepalives, acknowledgements and duplicates aside).
    pub received: u64,
    /// Bytes of the messages received.
    pub received_bytes: u64,
    /// Messages handed to a handler (or, for responses, to the request tracker).
    pub dispatched: u64,
    /// Messages whose handler has finished with them (responses: once handed over).
    pub processed: u64,
    /// Messages skipped because their deadline had passed.
    pub expired: u64,
    /// Messages skipped for an unknown verb.
    pub unknown_verb: u64,
    /// Messages skipped because they did not decode.
    pub decode_failed: u64,
    /// Frames skipped (lossy links) or connections reset (lossless links) for a
    /// payload CRC mismatch.
    pub corrupt_frames: u64,
    /// Messages dropped because they had been received already (written again by a
    /// lossless sender after a reconnect).
    pub duplicates: u64,
    /// Messages dropped, unread, because they were larger than the maximum message
    /// size (the connection stays up).
    pub oversized: u64,
    /// Times the connection stopped reading for lack of receive limits.
    pub throttled: u64,
    /// Time spent not reading for lack of receive limits, in microseconds.
    pub throttled_us: u64,
    /// Connections taken (handshakes answered).
    pub connections: u64,
    /// Times the sender was found to have restarted (a new session id).
    pub peer_restarts: u64,
}

impl InboundCounters {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &InboundCounters) {
        self.received += other.received;
        self.received_bytes += other.received_bytes;
        self.dispatched += other.dispatched;
        self.processed += other.processed;
        self.expired += other.expired;
        self.unknown_verb += other.unknown_verb;
        self.decode_failed += other.decode_failed;
        self.corrupt_frames += other.corrupt_frames;
        self.duplicates += other.duplicates;
        self.oversized += other.oversized;
        self.throttled += other.throttled;
        self.throttled_us += other.throttled_us;
        self.connections += other.connections;
        self.peer_restarts += other.peer_restarts;
    }

    /// Messages skipped for an error (unknown verb, failed decode).
    pub fn errors(&self) -> u64 {
        self.unknown_verb + self.decode_failed
    }
}
