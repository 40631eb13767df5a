//! [`MessageAssembler`]: decoded frames back into whole messages.
//!
//! A self-contained frame holds whole messages only: each is cut out with
//! [`message_len`](super::message_len) as a slice of the frame, without copying. A
//! message too large for one frame comes in a run of consecutive frames that are not
//! self-contained and hold nothing else; those are copied into one buffer.
//!
//! ```text
//!               self-contained               not self-contained (one message)
//! frames:  [ m1 | m2 | m3 ]  [ m4 ]  [ m5 header + part | part | ... | last part ]
//! state:   Idle              Idle    Header -> Body ------------------------------> Idle
//! ```
//!
//! Invariants:
//! - Memory: the assembler holds at most one partial message. While its header is
//!   incomplete it holds fewer than [`MAX_HEADER_LEN`] bytes of it (a buffer of less
//!   than twice that capacity, never charged: a per-connection constant, like the
//!   frame being pushed); the frame that completes the header is read in place, never
//!   appended to that buffer. Once the length is known and checked against
//!   `max_message`, the message gets a buffer of its own that grows only when a frame
//!   does not fit: to twice its capacity or what the frame needs if more, never beyond
//!   the message's length. So the final capacity is exactly the length, and a message
//!   of `n` bytes is moved to a larger buffer `O(log n)` times, not once per frame
//!   (a reallocation: the allocator may grow a large one in place by remapping it;
//!   if it copies, the old buffer lives on for a moment). [`growth`] tells,
//!   before a frame is pushed, how many bytes of capacity pushing it adds, so that the
//!   caller can charge them first; the capacity held for a message of known length
//!   ([`body_capacity`]) is always the sum of the growth reported for its frames.
//!   Nothing else is ever allocated for a message (self-contained frames and a
//!   message that fits in its first frame are sliced, skipped and abandoned messages
//!   are dropped as they arrive): their growth is 0. No message longer than
//!   `max_message` is ever buffered or emitted.
//!
//! [`growth`]: MessageAssembler::growth
//! [`body_capacity`]: MessageAssembler::body_capacity
//! [`MAX_HEADER_LEN`]: super::MAX_HEADER_LEN
//! - Messages come out in stream order. The assembler cuts messages, it does not
//!   decode them: every message it emits has a complete header whose length is that of
//!   the message, but its params and payload are unchecked.
//! - A message longer than `max_message` is an error, unless the assembler was built
//!   with [`skip_oversized`](MessageAssembler::skip_oversized): then its bytes are
//!   dropped as they arrive (never buffered) and its header is reported
//!   ([`take_skipped`](MessageAssembler::take_skipped)), so that the connection can go
//!   on (a lossless receiver must take such a message off the stream rather than reset
//!   the connection for it again and again).
//! - Errors mean the stream can no longer be cut into messages: the connection must be
//!   reset. After one, the assembler refuses all input with
//!   [`AssembleError::Poisoned`]. Messages cut before the error stay in `out`.

use std::mem;

use bytes::Bytes;

use super::{peek, EnvelopeError, Header, MAX_HEADER_LEN};
use crate::frame::Frame;

/// Why frames could not be turned into messages. All are unrecoverable for the
/// connection, and all but [`Poisoned`](AssembleError::Poisoned) are the remote's doing
/// (or a transmission error that the frame checksums did not catch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssembleError {
    /// A message header is malformed.
    #[error("malformed message header: {0}")]
    Envelope(EnvelopeError),
    /// A message is longer than the maximum.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    Oversized {
        /// The message's length (a lower bound when its header had not fully arrived).
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A message in a self-contained frame runs past the frame's end.
    #[error("message of at least {needed} bytes crosses the end of its self-contained frame ({available} bytes left)")]
    CrossesFrameEnd {
        /// The message's length, or a lower bound when its header is cut.
        needed: usize,
        /// The bytes left in the frame from the message's start.
        available: usize,
    },
    /// A self-contained frame arrived while a large message was incomplete.
    #[error("self-contained frame inside a large message ({received} bytes of it received)")]
    UnexpectedSelfContained {
        /// Bytes of the large message received (or skipped) so far.
        received: usize,
    },
    /// Frames carried more bytes than the large message they belong to.
    #[error("frames carry {received} bytes for a message of {len}")]
    Overrun {
        /// The message's length.
        len: usize,
        /// The bytes received (or skipped) for it.
        received: usize,
    },
    /// A corrupt frame that was not self-contained could not be matched to a large
    /// message of known length: where the next message starts is unknown.
    #[error(
        "corrupt frame inside a message of unknown length: the stream cannot be resynchronised"
    )]
    UnrecoverableCorruption,
    /// Caller error: the assembler already failed and takes no more input.
    #[error("message assembler already failed on this stream")]
    Poisoned,
}

// By hand rather than `#[from]`: the message carries the cause (not `source()` too).
impl From<EnvelopeError> for AssembleError {
    fn from(e: EnvelopeError) -> Self {
        AssembleError::Envelope(e)
    }
}

/// What was lost with a corrupt frame, as reported by
/// [`MessageAssembler::corrupt_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptOutcome {
    /// A self-contained frame: the messages in it (how many is unknown) are lost.
    SkippedFrame,
    /// A part of a large message: that message is lost, and the rest of its frames
    /// will be discarded as they arrive.
    AbandonedLargeMessage {
        /// The length of the lost message.
        len: usize,
    },
    /// Another part of a large message already abandoned: nothing more is lost.
    AbandonedMessagePart,
}

/// Where the assembler is in the stream.
#[derive(Debug)]
enum State {
    /// Between messages: the next frame may be of either kind.
    Idle,
    /// A large message whose header is incomplete; holds what arrived of it (fewer
    /// than `MAX_HEADER_LEN` bytes).
    Header(Vec<u8>),
    /// A large message of known length `len`; `buf` holds what arrived of it, its
    /// capacity at most `len` (see [`target_capacity`]).
    Body { buf: Vec<u8>, len: usize },
    /// An abandoned large message of length `len`, `remaining` bytes still to come.
    Discard { remaining: usize, len: usize },
    /// An error occurred.
    Failed,
}

/// Turns the frames of one connection, in order, back into whole messages.
///
/// ```
/// use bytes::Bytes;
/// use internode::envelope::{Envelope, Flags, MessageAssembler};
/// use internode::frame::{Frame, MAX_PAYLOAD};
///
/// let message = |len: usize| Envelope {
///     id: len as u64, verb: 1, flags: Flags::EMPTY, created_at_ms: 0,
///     expires_at_ms: None, params: Vec::new(), payload: Bytes::from(vec![1; len]),
/// }.to_bytes().unwrap();
/// let (small, large) = (message(10), message(200_000));
///
/// let mut assembler = MessageAssembler::new(1 << 20);
/// let mut out = Vec::new();
/// assembler.push(Frame { payload: small.clone(), self_contained: true }, &mut out).unwrap();
/// for part in large.chunks(MAX_PAYLOAD) {
///     let frame = Frame { payload: Bytes::copy_from_slice(part), self_contained: false };
///     assembler.push(frame, &mut out).unwrap();
/// }
/// assert_eq!(out, [small, large]);
/// assert!(assembler.is_idle());
/// ```
#[derive(Debug)]
pub struct MessageAssembler {
    max_message: usize,
    state: State,
    /// Skip oversized messages instead of failing.
    skip: bool,
    /// Headers of the messages skipped for their size, oldest first.
    skipped: Vec<Header>,
}

impl MessageAssembler {
    /// An assembler that refuses messages longer than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        MessageAssembler {
            max_message,
            state: State::Idle,
            skip: false,
            skipped: Vec::new(),
        }
    }

    /// This assembler, but a message longer than the maximum whose header is intact
    /// is dropped (its bytes as they arrive, nothing buffered) and reported by
    /// [`take_skipped`](Self::take_skipped), instead of failing the stream.
    pub fn skip_oversized(mut self) -> Self {
        self.skip = true;
        self
    }

    /// The headers of the messages skipped for their size since the last call, in
    /// stream order.
    pub fn take_skipped(&mut self) -> Vec<Header> {
        std::mem::take(&mut self.skipped)
    }

    /// The longest message accepted.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Whether no message is partly received (or partly discarded): the next frame
    /// may be self-contained.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Bytes of the partial message held.
    pub fn buffered_len(&self) -> usize {
        match &self.state {
            State::Header(buf) | State::Body { buf, .. } => buf.len(),
            _ => 0,
        }
    }

    /// Memory held for the partial message, its header phase included (for tests of
    /// the allocation bound).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn buffered_capacity(&self) -> usize {
        match &self.state {
            State::Header(buf) | State::Body { buf, .. } => buf.capacity(),
            _ => 0,
        }
    }

    /// The capacity of the buffer of the partial message whose length is known: the
    /// sum of what [`growth`](Self::growth) reported for its frames. 0 while no such
    /// message is being received (idle, header incomplete, discarding, failed).
    pub fn body_capacity(&self) -> usize {
        match &self.state {
            State::Body { buf, .. } => buf.capacity(),
            _ => 0,
        }
    }

    /// Bytes of buffer capacity that [`push`](Self::push)ing `frame` next would
    /// allocate, to be charged before it is pushed. 0 for a frame that allocates
    /// nothing: self-contained, empty, a message whole in its first frame, a part that
    /// fits the buffer already there or that extends a header still incomplete, a part
    /// of a message being skipped or discarded, and a frame that `push` refuses. So a
    /// frame whose growth is not 0 is pushed without error.
    ///
    /// Reads the frame without changing anything; while a header is incomplete it
    /// copies at most [`MAX_HEADER_LEN`](super::MAX_HEADER_LEN) bytes to read it.
    pub fn growth(&self, frame: &Frame) -> usize {
        if frame.self_contained {
            return 0;
        }
        let part = &frame.payload[..];
        let (capacity, received, len) = match &self.state {
            State::Idle if part.is_empty() => return 0,
            State::Idle => match self.accepted_len(peek(part)) {
                // Whole in its frame: sliced, not copied.
                Some(len) if part.len() == len => return 0,
                Some(len) => (0, part.len(), len),
                None => return 0,
            },
            State::Header(head) => match self.accepted_len(peek_joined(head, part)) {
                Some(len) => (0, head.len().saturating_add(part.len()), len),
                None => return 0,
            },
            State::Body { buf, len } => {
                (buf.capacity(), buf.len().saturating_add(part.len()), *len)
            }
            State::Discard { .. } | State::Failed => return 0,
        };
        if received > len {
            return 0; // an overrun: refused
        }
        target_capacity(capacity, received, len) - capacity
    }

    /// The length of a message whose header `peeked` is, if it is complete and within
    /// the maximum (a message `push` would buffer). Records nothing.
    fn accepted_len(&self, peeked: Result<Header, EnvelopeError>) -> Option<usize> {
        peeked
            .ok()
            .map(|header| header.message_len())
            .filter(|len| *len <= self.max_message)
    }

    /// Takes the next frame of the stream and appends the messages it completes to
    /// `out`.
    pub fn push(&mut self, frame: Frame, out: &mut Vec<Bytes>) -> Result<(), AssembleError> {
        // Failed unless this frame is handled without error.
        let state = mem::replace(&mut self.state, State::Failed);
        let part = frame.payload;
        self.state = match (state, frame.self_contained) {
            (State::Failed, _) => return Err(AssembleError::Poisoned),
            (State::Idle, true) => {
                self.cut(part, out)?;
                State::Idle
            }
            (State::Idle, false) if part.is_empty() => State::Idle,
            (State::Idle, false) => match self.known_len(&part)? {
                None => State::Header(part.to_vec()),
                Some(Known::Skip(len)) => discard(len, len, part.len())?,
                Some(Known::Len(len)) if part.len() == len => {
                    out.push(part);
                    State::Idle
                }
                Some(Known::Len(len)) => start_body(&[], &part, len)?,
            },
            (State::Header(mut head), false) => {
                let received = head.len().saturating_add(part.len());
                match self.known_len_joined(&head, &part)? {
                    None => {
                        head.extend_from_slice(&part);
                        State::Header(head)
                    }
                    Some(Known::Skip(len)) => discard(len, len, received)?,
                    Some(Known::Len(len)) => start_body(&head, &part, len)?,
                }
            }
            (State::Body { buf, len }, false) => body(buf, &part, len)?,
            (State::Discard { remaining, len }, false) => discard(remaining, len, part.len())?,
            (partial, true) => {
                return Err(AssembleError::UnexpectedSelfContained {
                    received: received(&partial),
                })
            }
        };
        if let State::Body { buf, len } = &self.state {
            if buf.len() == *len {
                if let State::Body { buf, .. } = mem::replace(&mut self.state, State::Idle) {
                    // Its capacity is its length: no copy.
                    out.push(Bytes::from(buf));
                }
            }
        }
        Ok(())
    }

    /// Told that the frame decoder skipped a frame whose payload CRC did not match:
    /// `payload_len` is the uncompressed length of what was lost and `self_contained`
    /// its flag (both from its intact header).
    ///
    /// A self-contained frame lost whole messages only; a part of a large message of
    /// known length loses that message, whose remaining frames are then discarded.
    /// A part of a message whose length is unknown (its first frame, or one before its
    /// header was complete) leaves no way to find the next message:
    /// [`AssembleError::UnrecoverableCorruption`].
    pub fn corrupt_frame(
        &mut self,
        payload_len: usize,
        self_contained: bool,
    ) -> Result<CorruptOutcome, AssembleError> {
        let state = mem::replace(&mut self.state, State::Failed);
        let (next, outcome) = match (state, self_contained) {
            (State::Failed, _) => return Err(AssembleError::Poisoned),
            (State::Idle, true) => (State::Idle, CorruptOutcome::SkippedFrame),
            (State::Idle | State::Header(_), false) => {
                return Err(AssembleError::UnrecoverableCorruption)
            }
            (State::Body { buf, len }, false) => {
                let remaining = len.saturating_sub(buf.len());
                let next = discard(remaining, len, payload_len)?;
                (next, CorruptOutcome::AbandonedLargeMessage { len })
            }
            (State::Discard { remaining, len }, false) => {
                let next = discard(remaining, len, payload_len)?;
                (next, CorruptOutcome::AbandonedMessagePart)
            }
            (partial, true) => {
                return Err(AssembleError::UnexpectedSelfContained {
                    received: received(&partial),
                })
            }
        };
        self.state = next;
        Ok(outcome)
    }

    /// Cuts a self-contained frame into its messages.
    fn cut(&mut self, frame: Bytes, out: &mut Vec<Bytes>) -> Result<(), AssembleError> {
        let mut start = 0;
        while let Some(rest) = frame.get(start..).filter(|rest| !rest.is_empty()) {
            let (needed, skip) = match peek(rest) {
                Ok(header) => {
                    let len = header.message_len();
                    match self.check(header)? {
                        Known::Len(_) => (len, false),
                        Known::Skip(_) => (len, true),
                    }
                }
                Err(EnvelopeError::Truncated { needed }) => (needed, false),
                Err(e) => return Err(e.into()),
            };
            if needed > rest.len() {
                return Err(AssembleError::CrossesFrameEnd {
                    needed,
                    available: rest.len(),
                });
            }
            // `needed <= rest.len()`, so the end is within the frame.
            if !skip {
                out.push(frame.slice(start..start + needed));
            }
            start += needed;
        }
        Ok(())
    }

    /// The length of the large message starting `prefix`, once its header is there,
    /// checked against the maximum (its lower bound is checked before that).
    fn known_len(&mut self, prefix: &[u8]) -> Result<Option<Known>, AssembleError> {
        self.known(peek(prefix))
    }

    /// [`known_len`](Self::known_len) of `head` followed by `part`, without joining
    /// them beyond what a header can take.
    fn known_len_joined(
        &mut self,
        head: &[u8],
        part: &[u8],
    ) -> Result<Option<Known>, AssembleError> {
        self.known(peek_joined(head, part))
    }

    fn known(
        &mut self,
        peeked: Result<Header, EnvelopeError>,
    ) -> Result<Option<Known>, AssembleError> {
        match peeked {
            Ok(header) => self.check(header).map(Some),
            Err(EnvelopeError::Truncated { needed }) => {
                self.check_len(needed)?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a whole header's length: within the maximum, to be skipped (recorded),
    /// or an error.
    fn check(&mut self, header: Header) -> Result<Known, AssembleError> {
        let len = header.message_len();
        if len <= self.max_message {
            return Ok(Known::Len(len));
        }
        if !self.skip {
            return Err(AssembleError::Oversized {
                len,
                max: self.max_message,
            });
        }
        self.skipped.push(header);
        Ok(Known::Skip(len))
    }

    fn check_len(&self, len: usize) -> Result<(), AssembleError> {
        if len > self.max_message {
            return Err(AssembleError::Oversized {
                len,
                max: self.max_message,
            });
        }
        Ok(())
    }
}

/// A message length read from a complete header.
enum Known {
    /// Within the maximum.
    Len(usize),
    /// Over the maximum, to be dropped.
    Skip(usize),
}

/// The capacity a message of length `len` needs to hold `received` bytes, its buffer
/// having `capacity`: the same if they fit, else twice as much or what they need if
/// more, at most `len` (`received <= len`). So the capacity only reaches `len` when it
/// must, and then exactly.
fn target_capacity(capacity: usize, received: usize, len: usize) -> usize {
    if received <= capacity {
        return capacity;
    }
    capacity.saturating_mul(2).max(received).min(len)
}

/// The header at the front of `head` followed by `part`: `head` is shorter than a
/// header can be, so at most `MAX_HEADER_LEN` bytes are joined to read it.
fn peek_joined(head: &[u8], part: &[u8]) -> Result<Header, EnvelopeError> {
    if head.is_empty() {
        return peek(part);
    }
    let take = part.len().min(MAX_HEADER_LEN.saturating_sub(head.len()));
    let mut probe = Vec::with_capacity(head.len() + take);
    probe.extend_from_slice(head);
    probe.extend_from_slice(&part[..take]);
    peek(&probe)
}

/// The buffer of a message of checked length `len` whose first bytes are `head` (the
/// header phase's, not reused) and `part`: a new allocation of the capacity they need.
fn start_body(head: &[u8], part: &[u8], len: usize) -> Result<State, AssembleError> {
    let received = head.len().saturating_add(part.len());
    if received > len {
        return Err(AssembleError::Overrun { len, received });
    }
    let mut buf = Vec::with_capacity(target_capacity(0, received, len));
    buf.extend_from_slice(head);
    buf.extend_from_slice(part);
    Ok(State::Body { buf, len })
}

/// Appends `part` to the message of checked length `len` whose start `buf` holds,
/// growing it to exactly [`target_capacity`] if it does not fit (`reserve_exact`: the
/// allocator may grow it in place, e.g. by remapping, instead of copying).
fn body(mut buf: Vec<u8>, part: &[u8], len: usize) -> Result<State, AssembleError> {
    let received = buf.len().saturating_add(part.len());
    if received > len {
        return Err(AssembleError::Overrun { len, received });
    }
    let target = target_capacity(buf.capacity(), received, len);
    if target > buf.capacity() {
        // `target > capacity >= len`, so the capacity becomes exactly `target`.
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(part);
    Ok(State::Body { buf, len })
}

/// Drops `lost` more bytes of an abandoned message of length `len`.
fn discard(remaining: usize, len: usize, lost: usize) -> Result<State, AssembleError> {
    match remaining.checked_sub(lost) {
        None => Err(AssembleError::Overrun {
            len,
            received: len.saturating_sub(remaining).saturating_add(lost),
        }),
        Some(0) => Ok(State::Idle),
        Some(remaining) => Ok(State::Discard { remaining, len }),
    }
}

/// Bytes of the partial message received or skipped.
fn received(state: &State) -> usize {
    match state {
        State::Header(buf) | State::Body { buf, .. } => buf.len(),
        State::Discard { remaining, len } => len.saturating_sub(*remaining),
        State::Idle | State::Failed => 0,
    }
}

#[cfg(test)]
#[path = "assemble_tests.rs"]
mod tests;
