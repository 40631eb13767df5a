//! [`FrameCodec`]: frames to bytes and back, as a `tokio_util` codec.
//!
//! Encoding writes a placeholder header, the payload, and then seals the frame in
//! place ([`seal`]): compresses it (LZ4), fills in the header and its CRC24, and
//! appends the payload CRC32. [`super::FrameEncoder`] uses the same two steps to write
//! several messages into one frame without an intermediate buffer.
//!
//! Decoding is resumable: the decoder remembers a checked header while it waits for
//! the payload, so partial reads cost no re-parsing and each frame's header CRC24 is
//! computed once.
//!
//! A codec made with [`FrameCodec::with_read_capacity`] (what a link uses to read
//! acknowledgements) does not keep its read buffer's largest size: when a decode of a frame that fits
//! the codec's read capacity leaves it empty after it grew for a larger frame, or to
//! more than four times that capacity, the decoder replaces it with a fresh buffer of
//! the read capacity ([`FrameCodec::with_read_capacity`]; [`DEFAULT_READ_CAPACITY`]
//! unless set). A stream of large frames keeps its buffer: giving it back after each
//! would make the next allocate it again (a 4x slowdown, measured at 1 MiB). So a
//! connection whose last frame was small holds at most a few read capacities, not the
//! largest frame's size (payloads already decoded keep their own allocation alive
//! until they are dropped); one whose last frame was large keeps that frame's buffer
//! until a small frame follows. One made with [`FrameCodec::new`] (what receiving
//! connections use) keeps its buffer: streams of 1 MiB messages end each message with
//! a small frame, and giving the buffer back there still cost a third of the
//! throughput. The receiving actor gives it back instead, from outside the codec,
//! once large frames stopped for a while (`node/lean_read.rs`, `session/trim.rs`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::crc::{crc24, payload_crc32};
use super::{Decoded, Frame, FrameError, Framing, MAX_PAYLOAD};

const SELF_CONTAINED_BIT_CRC: u32 = 17;
const SELF_CONTAINED_BIT_LZ4: u32 = 34;
const LEN_MASK: u64 = MAX_PAYLOAD as u64;

/// The read capacity of a codec made with [`FrameCodec::new`]: `tokio_util`'s
/// default initial read buffer size.
pub const DEFAULT_READ_CAPACITY: usize = 8 * 1024;

/// Encodes [`Frame`]s and decodes a byte stream into [`Decoded`] frames, for one
/// [`Framing`].
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use internode::frame::{Decoded, Frame, FrameCodec, Framing};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = FrameCodec::new(Framing::Lz4);
/// let frame = Frame { payload: Bytes::from(vec![7u8; 1000]), self_contained: true };
/// let mut wire = BytesMut::new();
/// codec.encode(frame.clone(), &mut wire).unwrap();
/// assert!(wire.len() < 100, "1000 equal bytes compress well");
/// assert_eq!(codec.decode(&mut wire).unwrap(), Some(Decoded::Frame(frame)));
/// assert!(wire.is_empty());
/// ```
#[derive(Debug)]
pub struct FrameCodec {
    framing: Framing,
    state: DecodeState,
    /// Compression output, allocated on the first LZ4 encode and reused.
    scratch: Vec<u8>,
    /// The size of a fresh read buffer (see the module docs).
    read_capacity: usize,
    /// The read buffer grew for a frame larger than `read_capacity`.
    grown: bool,
    /// The last frame decoded fitted the read capacity: a stream of large frames
    /// keeps its grown buffer (giving it back after each would allocate it again for
    /// the next, at the cost of page faults); what drains the buffer after a small
    /// frame gives it back.
    last_small: bool,
    /// Whether the read buffer is given back at all ([`FrameCodec::with_read_capacity`]).
    shrink: bool,
}

#[derive(Debug, Clone, Copy)]
enum DecodeState {
    /// Waiting for a header.
    Head,
    /// A checked header was consumed; waiting for its payload and trailer.
    Body(Header),
    /// An unrecoverable error occurred; the stream cannot be cut into frames any more.
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Header {
    payload_len: usize,
    uncompressed_len: usize,
    self_contained: bool,
}

impl FrameCodec {
    /// A codec for the given framing; its read buffer keeps the size it grows to
    /// (for streams of large frames).
    pub fn new(framing: Framing) -> Self {
        FrameCodec {
            shrink: false,
            ..FrameCodec::with_read_capacity(framing, DEFAULT_READ_CAPACITY)
        }
    }

    /// A codec for the given framing whose read buffer shrinks back to
    /// `read_capacity` bytes when it is empty after growing (see the module docs).
    /// Give the same capacity to the `FramedRead` that owns the buffer.
    pub fn with_read_capacity(framing: Framing, read_capacity: usize) -> Self {
        FrameCodec {
            framing,
            state: DecodeState::Head,
            scratch: Vec::new(),
            read_capacity: read_capacity.max(64),
            grown: false,
            last_small: true,
            shrink: true,
        }
    }

    /// The size of a fresh read buffer.
    pub fn read_capacity(&self) -> usize {
        self.read_capacity
    }

    /// Whether the read buffer may have grown beyond the read capacity (room was
    /// reserved for a larger frame) since the codec was made or the buffer was last
    /// replaced ([`buffer_replaced`](Self::buffer_replaced)). The buffer's own
    /// `capacity()` cannot tell: after frames are split off it is only the view's.
    pub fn buffer_grown(&self) -> bool {
        self.grown
    }

    /// The owner of the read buffer replaced it with a fresh one (of at most the read
    /// capacity).
    pub fn buffer_replaced(&mut self) {
        self.grown = false;
    }

    /// The framing this codec reads and writes.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Appends one frame carrying `payload` to `dst`, without taking ownership of the
    /// payload. Fails, writing nothing, when the payload exceeds [`MAX_PAYLOAD`].
    pub fn encode_payload(
        &mut self,
        payload: &[u8],
        self_contained: bool,
        dst: &mut BytesMut,
    ) -> Result<(), FrameError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(FrameError::PayloadTooLarge { len: payload.len() });
        }
        let start = begin(self.framing, dst, payload.len());
        dst.extend_from_slice(payload);
        seal(self.framing, dst, start, self_contained, &mut self.scratch);
        Ok(())
    }

    fn decode_header(&self, src: &[u8]) -> Result<Header, FrameError> {
        let header_bytes = self.framing.header_len() - 3;
        let mut header = 0u64;
        for (i, b) in src[..header_bytes].iter().enumerate() {
            header |= u64::from(*b) << (8 * i);
        }
        let carried = src[header_bytes..header_bytes + 3]
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (8 * i));
        let computed = crc24(header, header_bytes);
        if carried != computed {
            return Err(FrameError::HeaderCrc {
                expected: carried,
                computed,
            });
        }
        let payload_len = (header & LEN_MASK) as usize;
        let (uncompressed_len, flag_bit) = match self.framing {
            Framing::Lz4 => (((header >> 17) & LEN_MASK) as usize, SELF_CONTAINED_BIT_LZ4),
            Framing::Crc | Framing::Unprotected => (0, SELF_CONTAINED_BIT_CRC),
        };
        if header >> (flag_bit + 1) != 0 {
            return Err(FrameError::ReservedBits { header });
        }
        Ok(Header {
            payload_len,
            uncompressed_len,
            self_contained: header & (1 << flag_bit) != 0,
        })
    }

    fn decode_body(&mut self, header: Header, src: &mut BytesMut) -> Result<Decoded, FrameError> {
        let payload = src.split_to(header.payload_len).freeze();
        if self.framing.trailer_len() > 0 {
            let expected_crc = src.get_u32_le();
            let computed_crc = payload_crc32(&payload);
            if expected_crc != computed_crc {
                return Ok(Decoded::Corrupt {
                    payload_len: header.payload_len,
                    uncompressed_len: header.uncompressed_len,
                    self_contained: header.self_contained,
                    expected_crc,
                    computed_crc,
                });
            }
        }
        let payload = if header.uncompressed_len > 0 {
            decompress(&payload, header)?
        } else {
            payload
        };
        Ok(Decoded::Frame(Frame {
            payload,
            self_contained: header.self_contained,
        }))
    }
}

fn decompress(payload: &[u8], header: Header) -> Result<Bytes, FrameError> {
    let error = FrameError::Decompress {
        payload_len: header.payload_len,
        uncompressed_len: header.uncompressed_len,
    };
    // uncompressed_len came from a checked 17-bit field: at most MAX_PAYLOAD.
    let mut out = vec![0u8; header.uncompressed_len];
    match lz4_flex::block::decompress_into(payload, &mut out) {
        Ok(n) if n == header.uncompressed_len => Ok(Bytes::from(out)),
        _ => Err(error),
    }
}

impl Decoder for FrameCodec {
    type Item = Decoded;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, FrameError> {
        loop {
            match self.state {
                DecodeState::Failed => return Err(FrameError::Poisoned),
                DecodeState::Head => {
                    let header_len = self.framing.header_len();
                    if self.shrink
                        && src.is_empty()
                        && self.last_small
                        && (self.grown || src.capacity() > 4 * self.read_capacity)
                    {
                        // Nothing buffered: give the grown buffer back.
                        *src = BytesMut::with_capacity(self.read_capacity);
                        self.grown = false;
                    }
                    if src.len() < header_len {
                        src.reserve(header_len - src.len());
                        return Ok(None);
                    }
                    match self.decode_header(src) {
                        Ok(header) => {
                            src.advance(header_len);
                            self.state = DecodeState::Body(header);
                        }
                        Err(e) => {
                            self.state = DecodeState::Failed;
                            return Err(e);
                        }
                    }
                }
                DecodeState::Body(header) => {
                    let needed = header.payload_len + self.framing.trailer_len();
                    if src.len() < needed {
                        // Bounded: the header was checked and its length is 17 bits.
                        src.reserve(needed - src.len());
                        self.grown |= needed > self.read_capacity;
                        return Ok(None);
                    }
                    self.state = DecodeState::Head;
                    self.last_small = needed <= self.read_capacity;
                    let decoded = self.decode_body(header, src);
                    if decoded.is_err() {
                        self.state = DecodeState::Failed;
                    }
                    return decoded.map(Some);
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, FrameError> {
        match self.decode(src)? {
            Some(decoded) => Ok(Some(decoded)),
            None => {
                let buffered = src.len()
                    + match self.state {
                        DecodeState::Body(_) => self.framing.header_len(),
                        _ => 0,
                    };
                if buffered == 0 {
                    Ok(None)
                } else {
                    self.state = DecodeState::Failed;
                    Err(FrameError::TruncatedStream { buffered })
                }
            }
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_payload(&frame.payload, frame.self_contained, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_payload(&frame.payload, frame.self_contained, dst)
    }
}

/// Starts a frame at the end of `dst`: reserves room for a payload of about
/// `payload_hint` bytes and writes a placeholder header. Returns the frame's start
/// offset, to be passed to [`seal`] once the payload has been appended.
pub(super) fn begin(framing: Framing, dst: &mut BytesMut, payload_hint: usize) -> usize {
    let start = dst.len();
    dst.reserve(framing.header_len() + payload_hint + framing.trailer_len());
    dst.put_bytes(0, framing.header_len());
    start
}

/// Finishes the frame started at `start` by [`begin`], whose payload is everything
/// after its header up to the end of `dst` (at most [`MAX_PAYLOAD`] bytes): compresses
/// it when the framing is LZ4 and that shrinks it, writes the header and its CRC24,
/// and appends the payload CRC32.
pub(super) fn seal(
    framing: Framing,
    dst: &mut BytesMut,
    start: usize,
    self_contained: bool,
    scratch: &mut Vec<u8>,
) {
    let header_len = framing.header_len();
    let body = start + header_len;
    let len = dst.len() - body;
    debug_assert!(len <= MAX_PAYLOAD, "callers keep payloads within one frame");
    let header = match framing {
        Framing::Crc | Framing::Unprotected => {
            len as u64 | u64::from(self_contained) << SELF_CONTAINED_BIT_CRC
        }
        Framing::Lz4 => {
            let uncompressed_len = match compress(&dst[body..], scratch) {
                Some(compressed) => {
                    dst.truncate(body);
                    dst.extend_from_slice(compressed);
                    len
                }
                None => 0,
            };
            (dst.len() - body) as u64
                | (uncompressed_len as u64) << 17
                | u64::from(self_contained) << SELF_CONTAINED_BIT_LZ4
        }
    };
    let header_bytes = header_len - 3;
    let crc = crc24(header, header_bytes);
    let bytes = (header | u64::from(crc) << (8 * header_bytes)).to_le_bytes();
    dst[start..body].copy_from_slice(&bytes[..header_len]);
    if framing.trailer_len() > 0 {
        let crc = payload_crc32(&dst[body..]);
        dst.put_u32_le(crc);
    }
}

/// Compresses `input` into `scratch` as a raw LZ4 block; `None` when that would not
/// make it smaller.
fn compress<'a>(input: &[u8], scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    if input.is_empty() {
        return None;
    }
    let bound = lz4_flex::block::get_maximum_output_size(input.len());
    if scratch.len() < bound {
        scratch.resize(bound, 0);
    }
    match lz4_flex::block::compress_into(input, scratch) {
        Ok(n) if n < input.len() => Some(&scratch[..n]),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
