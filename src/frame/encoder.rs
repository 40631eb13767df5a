//! [`FrameEncoder`]: messages to a run of frames, ready for one write.
//!
//! Invariants:
//! - Messages come out in the order they were pushed, each exactly once.
//! - A message of at most `max_payload` bytes lies whole inside one self-contained
//!   frame, together with the messages pushed just before or after it while they fit.
//! - A larger message is cut into consecutive frames that are not self-contained and
//!   hold only that message; the open self-contained frame is closed before it.
//! - Payloads are written once, straight into the output buffer; only LZ4 compresses
//!   through a scratch buffer.
//! - The output buffer is reserved for what is pushed, not for a whole frame: one
//!   small message holds a buffer of about its size.

use bytes::BytesMut;

use super::codec::{begin, seal};
use super::{Framing, MAX_PAYLOAD};

/// Packs messages into frames in one output buffer.
///
/// A link pushes what is waiting in its queue and then [`take`](Self::take)s the bytes
/// for a single write.
///
/// ```
/// use bytes::BytesMut;
/// use internode::frame::{Decoded, FrameCodec, FrameEncoder, Framing, MAX_PAYLOAD};
/// use tokio_util::codec::Decoder;
///
/// let mut encoder = FrameEncoder::new(Framing::Crc);
/// encoder.push(b"first small message");
/// encoder.push(b"second small message");
/// encoder.push(&vec![1u8; 200_000]); // cut into two frames
/// let mut wire = encoder.take();
///
/// let mut codec = FrameCodec::new(Framing::Crc);
/// let mut frames = Vec::new();
/// while let Some(Decoded::Frame(frame)) = codec.decode(&mut wire).unwrap() {
///     frames.push(frame);
/// }
/// assert_eq!(frames.len(), 3);
/// assert!(frames[0].self_contained);
/// assert_eq!(&frames[0].payload[..], b"first small messagesecond small message");
/// assert!(!frames[1].self_contained && frames[1].payload.len() == MAX_PAYLOAD);
/// assert!(!frames[2].self_contained && frames[2].payload.len() == 200_000 - MAX_PAYLOAD);
/// ```
#[derive(Debug)]
pub struct FrameEncoder {
    framing: Framing,
    max_payload: usize,
    out: BytesMut,
    /// Start offset in `out` of the self-contained frame still taking messages.
    open: Option<usize>,
    scratch: Vec<u8>,
}

impl FrameEncoder {
    /// An encoder that fills frames up to [`MAX_PAYLOAD`] bytes.
    pub fn new(framing: Framing) -> Self {
        Self::with_max_payload(framing, MAX_PAYLOAD)
    }

    /// An encoder that puts at most `max_payload` bytes (clamped to
    /// `1..=MAX_PAYLOAD`) in each frame: smaller frames lower the latency of the first
    /// message in a batch at some cost in overhead.
    pub fn with_max_payload(framing: Framing, max_payload: usize) -> Self {
        FrameEncoder {
            framing,
            max_payload: max_payload.clamp(1, MAX_PAYLOAD),
            out: BytesMut::new(),
            open: None,
            scratch: Vec::new(),
        }
    }

    /// The framing of the frames this encoder writes.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Appends one message: into the open self-contained frame if it fits there, into a
    /// new self-contained frame if it fits in one, or cut across non-self-contained
    /// frames otherwise.
    pub fn push(&mut self, message: &[u8]) {
        self.push_parts(&[message]);
    }

    /// Appends one message given as consecutive parts (for instance an envelope's
    /// header and its payload, wherever each lies), exactly as [`push`](Self::push)
    /// appends their concatenation, but copying each byte once, straight into the
    /// frames.
    ///
    /// ```
    /// use internode::frame::{FrameEncoder, Framing};
    ///
    /// let mut a = FrameEncoder::new(Framing::Crc);
    /// a.push_parts(&[b"head", b"er and payload"]);
    /// let mut b = FrameEncoder::new(Framing::Crc);
    /// b.push(b"header and payload");
    /// assert_eq!(a.take(), b.take());
    /// ```
    pub fn push_parts(&mut self, parts: &[&[u8]]) {
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        if len > self.max_payload {
            self.close_frame();
            let mut parts = parts.iter().copied().filter(|p| !p.is_empty());
            let mut current: &[u8] = parts.next().unwrap_or_default();
            let mut left = len;
            while left > 0 {
                let frame_len = left.min(self.max_payload);
                let start = begin(self.framing, &mut self.out, frame_len);
                let mut room = frame_len;
                while room > 0 {
                    if current.is_empty() {
                        current = parts.next().unwrap_or_default();
                        continue;
                    }
                    let n = room.min(current.len());
                    self.out.extend_from_slice(&current[..n]);
                    current = &current[n..];
                    room -= n;
                }
                seal(self.framing, &mut self.out, start, false, &mut self.scratch);
                left -= frame_len;
            }
            return;
        }
        if let Some(start) = self.open {
            let used = self.out.len() - start - self.framing.header_len();
            if used + len > self.max_payload {
                self.close_frame();
            }
        }
        if self.open.is_none() {
            // Room for this message only: a frame that takes more grows as they come
            // (a link's batch buffer is recycled, so it grows once), and an encoder
            // writing one small control message holds a small buffer, not a frame's
            // maximum (each connection keeps its encoder).
            self.open = Some(begin(self.framing, &mut self.out, len));
        }
        for part in parts {
            self.out.extend_from_slice(part);
        }
    }

    /// Lets go of the output buffer if nothing is buffered (an idle link should not
    /// keep a large batch's allocation alive).
    pub fn release_buffer(&mut self) {
        if self.out.is_empty() {
            self.out = BytesMut::new();
            self.scratch = Vec::new();
        }
    }

    /// Gives the encoder an empty buffer to write the next frames into (for instance
    /// the one a finished write handed back), so that a link does not allocate a new
    /// one per batch. Ignored if the encoder already holds bytes or a larger buffer.
    pub fn recycle(&mut self, mut buffer: BytesMut) {
        buffer.clear();
        if self.out.is_empty() && buffer.capacity() > self.out.capacity() {
            self.out = buffer;
        }
    }

    /// Bytes written so far and not yet taken, including the open frame.
    pub fn buffered_len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing has been pushed since the last [`take`](Self::take).
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Closes the open frame and returns every frame written since the last call,
    /// as one contiguous buffer.
    pub fn take(&mut self) -> BytesMut {
        self.close_frame();
        self.out.split()
    }

    fn close_frame(&mut self) {
        if let Some(start) = self.open.take() {
            seal(self.framing, &mut self.out, start, true, &mut self.scratch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_message_holds_a_small_buffer() {
        for framing in [Framing::Crc, Framing::Lz4, Framing::Unprotected] {
            let mut encoder = FrameEncoder::new(framing);
            encoder.push(&[1u8; 20]);
            assert!(
                encoder.out.capacity() < 1024,
                "{framing:?}: {} bytes reserved for 20",
                encoder.out.capacity()
            );
            let wire = encoder.take();
            encoder.push(&[2u8; 20]);
            assert!(encoder.out.capacity() < 1024);
            drop(wire);
        }
    }

    #[test]
    fn messages_pushed_one_by_one_share_one_frame() {
        let mut encoder = FrameEncoder::new(Framing::Crc);
        for i in 0..1000u32 {
            encoder.push(&i.to_le_bytes());
        }
        let mut wire = encoder.take();
        let mut codec = super::super::FrameCodec::new(Framing::Crc);
        let decoded = tokio_util::codec::Decoder::decode(&mut codec, &mut wire).unwrap();
        let Some(super::super::Decoded::Frame(frame)) = decoded else {
            panic!("one frame expected, got {decoded:?}");
        };
        assert!(frame.self_contained);
        assert_eq!(frame.payload.len(), 4000);
        assert!(wire.is_empty());
    }
}
