//! Frames: the unit of integrity (and optionally compression) on a connection.
//!
//! The format is the one of Apache Cassandra 4.0 internode messaging, which the CQL
//! native protocol v5 also uses for its "segments", so independent implementations can
//! check ours byte for byte. All multi-byte integers are little-endian.
//!
//! This module is public for reuse, not only for the node above it: an independent
//! implementation of the protocol, a custom transport (another socket type, a test
//! harness, a proxy that inspects traffic) or a tool can encode and decode frames with
//! it without the actors. Its API is as stable as the wire format it encodes: it
//! changes with a new protocol version, not otherwise (see the crate documentation).
//!
//! ```text
//! CRC frame (Framing::Crc)
//! +--------+--------+--------+--------+--------+--------+=========+--------+--------+--------+--------+
//! |  header: 17 bits length, bit 17   | CRC24 of the 3    | payload |  CRC32 of the payload (LE)        |
//! |  self-contained, 6 bits zero (LE) | header bytes (LE) |         |  seeded with FA 2D 55 CA          |
//! +--------+--------+--------+--------+--------+--------+=========+--------+--------+--------+--------+
//!
//! LZ4 frame (Framing::Lz4)
//! +------+------+------+------+------+------+------+------+=========+------+------+------+------+
//! | header: bits 0-16 length as sent, bits 17-33        | CRC24 of the 5     | payload | CRC32 of the |
//! | uncompressed length (0 = sent uncompressed),        | header bytes (LE)  | as sent | payload as   |
//! | bit 34 self-contained, bits 35-39 zero (LE)         |                    |         | sent (LE)    |
//! +------+------+------+------+------+------+------+------+=========+------+------+------+------+
//!
//! Unprotected frame (Framing::Unprotected): the CRC frame without the trailing CRC32.
//! ```
//!
//! Invariants:
//! - A payload is at most [`MAX_PAYLOAD`] (131071) bytes; a larger one is an encode
//!   error, never truncated. [`FrameEncoder`] cuts a larger message into consecutive
//!   non-self-contained frames that hold only that message, and puts several small
//!   messages into one self-contained frame.
//! - The decoder reads a frame's lengths from a header whose CRC24 it has checked
//!   before it reserves any memory, and never holds more than one frame's worth
//!   (at most 131083 bytes, plus one decompressed payload of at most 131071 bytes).
//! - A header whose CRC24 fails is unrecoverable ([`FrameError::HeaderCrc`]): the
//!   stream can no longer be cut into frames, so the connection must be reset. A
//!   payload whose CRC32 fails is recoverable: the decoder yields [`Decoded::Corrupt`]
//!   for exactly that frame and goes on with the next one.
//! - An LZ4 frame whose compressed form would not be smaller than its payload is sent
//!   uncompressed, with uncompressed length 0.

mod codec;
mod crc;
mod encoder;

pub use codec::{FrameCodec, DEFAULT_READ_CAPACITY};
pub use crc::{crc24, payload_crc32};
pub use encoder::FrameEncoder;

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

/// The largest payload one frame can carry: 2^17 - 1 bytes.
pub const MAX_PAYLOAD: usize = (1 << 17) - 1;

/// How frames protect (and compress) their payload; chosen per connection in the
/// handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// A 6-byte header with CRC24, the payload, and its CRC32.
    Crc,
    /// An 8-byte header with CRC24, the payload as a raw LZ4 block (or uncompressed
    /// when compression does not shrink it), and the CRC32 of what was sent.
    Lz4,
    /// The CRC frame's header, the payload, and no payload CRC: for links whose
    /// integrity is provided elsewhere (TLS).
    Unprotected,
}

impl Framing {
    /// All framings, in wire-code order.
    pub const ALL: [Framing; 3] = [Framing::Crc, Framing::Lz4, Framing::Unprotected];

    /// Length of the header including its CRC24: 6 bytes, or 8 for LZ4.
    pub const fn header_len(self) -> usize {
        match self {
            Framing::Lz4 => 8,
            Framing::Crc | Framing::Unprotected => 6,
        }
    }

    /// Length of the trailer: the 4-byte payload CRC32, or nothing when unprotected.
    pub const fn trailer_len(self) -> usize {
        match self {
            Framing::Crc | Framing::Lz4 => 4,
            Framing::Unprotected => 0,
        }
    }

    /// The one-byte code of this framing in the handshake.
    pub const fn code(self) -> u8 {
        match self {
            Framing::Crc => 0,
            Framing::Lz4 => 1,
            Framing::Unprotected => 2,
        }
    }

    /// The framing with the given handshake code, if any.
    pub fn from_code(code: u8) -> Option<Framing> {
        Framing::ALL.get(usize::from(code)).copied()
    }

    /// The framing's name: `crc`, `lz4` or `unprotected`, what [`Display`](fmt::Display)
    /// prints and [`FromStr`] reads.
    pub const fn name(self) -> &'static str {
        match self {
            Framing::Crc => "crc",
            Framing::Lz4 => "lz4",
            Framing::Unprotected => "unprotected",
        }
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a framing by its name, ignoring case: `crc`, `lz4` or `unprotected`
/// (command lines and configuration files).
///
/// ```
/// use internode::frame::Framing;
///
/// assert_eq!("LZ4".parse(), Ok(Framing::Lz4));
/// assert_eq!(Framing::Unprotected.to_string().parse(), Ok(Framing::Unprotected));
/// assert!("snappy".parse::<Framing>().is_err());
/// ```
impl FromStr for Framing {
    type Err = UnknownFraming;

    fn from_str(s: &str) -> Result<Framing, UnknownFraming> {
        Framing::ALL
            .into_iter()
            .find(|framing| framing.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownFraming(s.to_owned()))
    }
}

/// Caller error: a name that is not a framing's (see [`Framing`]'s [`FromStr`]). It
/// carries the name as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown framing {0:?}: expected crc, lz4 or unprotected")]
pub struct UnknownFraming(pub String);

/// One frame's payload and its self-contained flag.
///
/// A self-contained frame holds one or more complete messages; a frame that is not
/// self-contained holds a part of one message too large for a single frame.
///
/// Exhaustive on purpose: its fields are the fields of the frame on the wire, built
/// field by field by an independent implementation or a test; a new field would be a
/// new wire format, a breaking change however the struct is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The payload (uncompressed), at most [`MAX_PAYLOAD`] bytes.
    pub payload: Bytes,
    /// Whether the frame holds only complete messages.
    pub self_contained: bool,
}

/// What the decoder yields for each frame on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A frame whose checks passed.
    Frame(Frame),
    /// A frame whose payload CRC32 did not match: its bytes were skipped and decoding
    /// goes on with the next frame. Its header was intact, so its lengths and flag are
    /// trustworthy.
    Corrupt {
        /// Length of the payload as it was sent (compressed, for LZ4).
        payload_len: usize,
        /// Uncompressed length from an LZ4 header (0 when sent uncompressed or not LZ4).
        uncompressed_len: usize,
        /// The frame's self-contained flag: when false, the skipped bytes were a part
        /// of a large message, which is lost as a whole.
        self_contained: bool,
        /// The CRC32 carried by the frame.
        expected_crc: u32,
        /// The CRC32 computed over the bytes that arrived.
        computed_crc: u32,
    },
}

/// Why a frame could not be encoded or a stream could not be decoded.
///
/// Decode errors are unrecoverable for the connection: after one, the decoder
/// refuses further input with [`FrameError::Poisoned`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Caller error: a payload longer than [`MAX_PAYLOAD`] was given to encode.
    #[error("frame payload of {len} bytes exceeds the maximum of {MAX_PAYLOAD}")]
    PayloadTooLarge {
        /// The length that was given.
        len: usize,
    },
    /// Remote or transmission error: the header's CRC24 did not match.
    #[error("frame header CRC24 mismatch: header carries {expected:06x}, computed {computed:06x}")]
    HeaderCrc {
        /// The CRC24 carried by the header.
        expected: u32,
        /// The CRC24 computed over the header bytes that arrived.
        computed: u32,
    },
    /// Remote error: a header with an intact CRC24 set bits the format keeps zero.
    #[error("frame header sets reserved bits: {header:#x}")]
    ReservedBits {
        /// The header bytes as a little-endian integer.
        header: u64,
    },
    /// Remote error: an LZ4 frame's payload passed its CRC32 but did not decompress to
    /// the length its header announced.
    #[error("LZ4 payload of {payload_len} bytes does not decompress to {uncompressed_len} bytes")]
    Decompress {
        /// Length of the payload as sent.
        payload_len: usize,
        /// The uncompressed length the header announced.
        uncompressed_len: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    TruncatedStream {
        /// How many bytes of the incomplete frame had arrived.
        buffered: usize,
    },
    /// The decoder already failed on this stream and takes no more input.
    #[error("frame decoder already failed on this stream")]
    Poisoned,
    /// An I/O error from the transport (kept as its kind so errors stay comparable).
    #[error("I/O error: {0}")]
    Io(std::io::ErrorKind),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framing_parses_from_its_name_in_any_case() {
        for (name, framing) in [
            ("crc", Framing::Crc),
            ("lz4", Framing::Lz4),
            ("unprotected", Framing::Unprotected),
            ("CRC", Framing::Crc),
            ("Lz4", Framing::Lz4),
            ("UnProtected", Framing::Unprotected),
        ] {
            assert_eq!(name.parse::<Framing>(), Ok(framing), "{name}");
        }
    }

    #[test]
    fn display_and_from_str_round_trip() {
        for framing in Framing::ALL {
            assert_eq!(framing.to_string(), framing.name());
            assert_eq!(framing.to_string().parse::<Framing>(), Ok(framing));
        }
    }

    #[test]
    fn an_unknown_name_is_an_error_that_names_it_and_the_choices() {
        for name in ["", "crc32", " crc", "lz", "none", "snappy"] {
            assert_eq!(
                name.parse::<Framing>(),
                Err(UnknownFraming(name.to_owned())),
                "{name:?}"
            );
        }
        assert_eq!(
            "snappy".parse::<Framing>().unwrap_err().to_string(),
            "unknown framing \"snappy\": expected crc, lz4 or unprotected"
        );
    }
}
