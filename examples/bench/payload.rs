//! The payload every implementation carries, and the receiver's check that nothing
//! was lost.
//!
//! A payload of `size` bytes is a little-endian `u64` sequence number followed by
//! `size - 8` filler bytes. The baselines and `internode-hand` carry exactly these
//! bytes as their message (the payload of their frames, of a hand-encoded
//! [`Message`]); the serde messages of the other internode implementations carry
//! the same sequence number and filler in postcard's encoding, a few bytes shorter
//! (see [`messages`](crate::messages)). Every receiver checks the size as this one:
//! 8 bytes of sequence number plus the filler.
//!
//! [`Sink`] is the receiver's side of the one-way workloads, shared by all the
//! servers: it counts what arrives and checks each message's size and that the
//! sequence numbers follow each other without a gap, so that "as many arrived as
//! were written, all in sequence" means nothing was lost, duplicated or reordered.
//!
//! [`Message`]: internode::message::Message

use std::cell::{Cell, RefCell};
use std::time::Duration;

use bytes::{BufMut, Bytes};
use tokio::sync::Notify;

use crate::BenchError;

/// Bytes of the sequence number at the start of every payload.
pub const SEQ_BYTES: usize = 8;

/// The filler of payloads of `size` bytes (at least [`SEQ_BYTES`]).
pub fn filler(size: usize) -> Bytes {
    assert!(size >= SEQ_BYTES, "payloads carry a sequence number");
    (0..size - SEQ_BYTES).map(|i| (i % 251) as u8).collect()
}

/// Appends the payload with sequence number `seq` and `filler` to `dst`.
pub fn put(dst: &mut impl BufMut, seq: u64, filler: &[u8]) {
    dst.put_u64_le(seq);
    dst.put_slice(filler);
}

/// The sequence number of a payload (`None` if it is too short to have one).
pub fn seq_of(payload: &[u8]) -> Option<u64> {
    let bytes = payload.get(..SEQ_BYTES)?;
    Some(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
}

/// What the sink checks of the messages it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Payloads of `size` bytes whose sequence numbers run from `next` up by one.
    Sequence { next: u64, size: usize },
    /// Count only (messages from many peers, as in the idle-memory workload).
    CountOnly,
}

/// The receiving end of the one-way workloads (one thread: cells).
pub struct Sink {
    check: Cell<Check>,
    count: Cell<u64>,
    bad: Cell<u64>,
    first_bad: RefCell<Option<String>>,
    target: Cell<u64>,
    reached: Notify,
}

/// What the sink saw since it was last reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Messages received.
    pub count: u64,
    /// Messages out of sequence or of the wrong size, and connection errors.
    pub bad: u64,
    /// The first of those, described.
    pub first_bad: Option<String>,
}

impl Default for Sink {
    fn default() -> Self {
        Sink {
            check: Cell::new(Check::CountOnly),
            count: Cell::new(0),
            bad: Cell::new(0),
            first_bad: RefCell::new(None),
            target: Cell::new(u64::MAX),
            reached: Notify::new(),
        }
    }
}

impl Sink {
    /// Starts a new measurement: counts from zero and checks `check`.
    pub fn reset(&self, check: Check) {
        self.check.set(check);
        self.count.set(0);
        self.bad.set(0);
        self.first_bad.replace(None);
        self.target.set(u64::MAX);
    }

    /// One message arrived: its payload's sequence number (`None` if unreadable) and
    /// its payload's length.
    pub fn record(&self, seq: Option<u64>, len: usize) {
        if let Check::Sequence { next, size } = self.check.get() {
            if seq != Some(next) || len != size {
                self.fail(format!(
                    "expected message {next} of {size} B, got {seq:?} of {len} B"
                ));
            }
            let next = seq.map_or(next + 1, |s| s.wrapping_add(1));
            self.check.set(Check::Sequence { next, size });
        }
        let count = self.count.get() + 1;
        self.count.set(count);
        if count >= self.target.get() {
            self.reached.notify_one();
        }
    }

    /// Something went wrong on the receiving side (a connection error, a corrupt frame).
    pub fn fail(&self, what: String) {
        self.bad.set(self.bad.get() + 1);
        let mut first = self.first_bad.borrow_mut();
        if first.is_none() {
            eprintln!("bench receiver: {what}");
            *first = Some(what);
        }
        // Whoever waits should hear of it at once.
        self.reached.notify_one();
    }

    /// Waits until `count` messages have arrived since the reset, something went
    /// wrong, or `timeout` passes; then says what arrived.
    pub async fn wait(&self, count: u64, timeout: Duration) -> Tally {
        self.target.set(count);
        let _ = tokio::time::timeout(timeout, async {
            while self.count.get() < count && self.bad.get() == 0 {
                self.reached.notified().await;
            }
        })
        .await;
        self.target.set(u64::MAX);
        self.tally()
    }

    /// What arrived since the reset.
    pub fn tally(&self) -> Tally {
        Tally {
            count: self.count.get(),
            bad: self.bad.get(),
            first_bad: self.first_bad.borrow().clone(),
        }
    }
}

/// How many messages a sender sends between two reads of the clock: about 16 KiB
/// worth, at least one, at most 64.
pub fn between_clock_reads(size: usize) -> u64 {
    (16 * 1024 / size).clamp(1, 64) as u64
}

/// A client's check of responses that come back in the order of their requests:
/// each must carry the next sequence number and be as large as its request.
pub struct InOrder {
    next: u64,
    size: usize,
    /// Responses checked.
    pub count: u64,
    error: Option<String>,
}

impl InOrder {
    /// Responses to requests numbered from `first_seq`, of `size` bytes.
    pub fn new(first_seq: u64, size: usize) -> InOrder {
        InOrder {
            next: first_seq,
            size,
            count: 0,
            error: None,
        }
    }

    /// Checks the next response's payload.
    pub fn payload(&mut self, payload: &[u8]) {
        let seq = seq_of(payload);
        if self.error.is_none() && (seq != Some(self.next) || payload.len() != self.size) {
            self.error = Some(format!(
                "expected the response to request {} ({} B), got {seq:?} ({} B)",
                self.next,
                self.size,
                payload.len()
            ));
        }
        self.next += 1;
        self.count += 1;
    }

    /// `Err` if a response was wrong.
    pub fn result(&self) -> Result<(), BenchError> {
        match &self.error {
            None => Ok(()),
            Some(e) => Err(BenchError::Lost(e.clone())),
        }
    }
}
