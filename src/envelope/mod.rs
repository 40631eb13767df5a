//! The message envelope: what one message looks like inside the frames.
//!
//! This module is public for reuse, not only for the node above it: an independent
//! implementation of the protocol, a custom transport (another socket type, a test
//! harness, a proxy that inspects traffic) or a tool can read and write messages with
//! it without the actors. Its API is as stable as the wire format it encodes: it
//! changes with a new protocol version, not otherwise (see the crate documentation).
//!
//! Every number is an unsigned [`vint`](crate::vint) (1 to 9 bytes, shortest form when
//! encoded). A message is a header followed by its payload:
//!
//! ```text
//! +----+------+-------+---------------+--------+- - - - - - - - - - - - - - - - -+-------------+=========+
//! | id | verb | flags | created_at_ms | expiry | params_len | count | entries... | payload_len | payload |
//! +----+------+-------+---------------+--------+- - - - - - - - - - - - - - - - -+-------------+=========+
//!                                               \__ only if flags has bit 3 ___/
//! |<--------------------------------- header_len --------------------------------------------->|<------->|
//!                                                                                              payload_len
//!
//! field          encoding        meaning
//! -------------  --------------  -------------------------------------------------------------
//! id             vint u64        message id; a response carries the id of its request
//! verb           vint u32        what the message is: a stable number per message type
//! flags          vint u32        bit 0 REQUEST, bit 1 RESPONSE, bit 2 FAILURE,
//!                                bit 3 HAS_PARAMS (wire only), other bits kept and ignored
//! created_at_ms  vint u64        creation time, milliseconds since the UNIX epoch
//! expiry         vint u64        0: never expires; else expires_at_ms - created_at_ms + 1
//! -- present iff HAS_PARAMS: -----------------------------------------------------------------
//! params_len     vint            bytes of `count` and the entries (at most 16 KiB)
//! count          vint            number of entries (at most 64)
//! then `count` entries, each:
//!   key          vint u32        parameter key (keys may repeat; order is kept)
//!   value_len    vint            length of the value
//!   value        value_len bytes
//! -------------------------------------------------------------------------------------------
//! payload_len    vint u64        bytes of payload
//! payload        payload_len bytes, opaque to this layer
//! ```
//!
//! For example id 1, verb 7, [`Flags::REQUEST`], created at 1000 ms, expiring at
//! 1500 ms, one param (key 2, value `"ab"`) and payload `"hi"` is 16 bytes:
//!
//! ```text
//! 01 | 07 | 09 | 83 E8 | 81 F5 | 05 | 01 | 02 02 61 62 | 02 | 68 69
//! id  verb flags created expiry  params_len count entry  payload_len payload
//! ```
//!
//! (flags is 0x09: REQUEST and HAS_PARAMS; the expiry is 500 + 1 = 501.)
//!
//! Invariants:
//! - The receiver learns verb, id, flags, expiry and both lengths with [`peek`] in
//!   O(1), without touching params or payload: it skips the params section by its
//!   declared length. So expired messages and unknown verbs can be skipped without
//!   decoding them and without dropping the connection.
//! - A header is at most [`MAX_HEADER_LEN`] bytes, whatever the input: the params
//!   section is bounded by [`MAX_PARAMS_BYTES`] and there are 7 other vints. So a
//!   reader holding that many bytes of a message knows its length
//!   ([`message_len`]).
//! - The encoder sets HAS_PARAMS iff the params are non-empty; [`Flags`] never
//!   carries that bit, so a decoded envelope equals the one encoded.
//! - Decoding accepts longer-than-necessary vints; encoding always writes the
//!   shortest form, so re-encoding a decoded message may shorten it but decodes equal.
//! - Lengths from the wire are checked before use, with checked arithmetic; nothing
//!   allocates by a length from the wire except the params list (at most 64 entries).
//!   [`Envelope::decode`] slices payload and param values out of its input without
//!   copying, and consumes exactly one message or nothing.
//! - A message expires when `now_ms >= expires_at_ms` ([`Header::is_expired`]).
//!
//! Messages travel in frames: a [`MessageAssembler`] turns the frames a connection
//! receives back into whole messages, one [`bytes::Bytes`] each.

mod assemble;
mod header;
mod message;

pub use assemble::{AssembleError, CorruptOutcome, MessageAssembler};
pub use header::{deadline_passed, message_len, peek, Flags, Header};
pub use message::Envelope;

use std::fmt;

/// At most this many params in one envelope.
pub const MAX_PARAMS: usize = 64;

/// At most this many bytes in the params section (`count` and the entries, the value
/// of `params_len`).
pub const MAX_PARAMS_BYTES: usize = 16 * 1024;

/// No header is longer: 7 vints of at most 9 bytes and the params section.
pub const MAX_HEADER_LEN: usize = 7 * crate::vint::MAX_LEN + MAX_PARAMS_BYTES;

/// A numbered field of the envelope, to say where decoding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The message id.
    Id,
    /// The verb.
    Verb,
    /// The flags.
    Flags,
    /// The creation time.
    CreatedAt,
    /// The expiry.
    Expiry,
    /// The length of the params section.
    ParamsLen,
    /// The number of params.
    ParamCount,
    /// The key of a param.
    ParamKey,
    /// The length of a param's value.
    ParamValueLen,
    /// The length of the payload.
    PayloadLen,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Id => "id",
            Field::Verb => "verb",
            Field::Flags => "flags",
            Field::CreatedAt => "created_at_ms",
            Field::Expiry => "expiry",
            Field::ParamsLen => "params_len",
            Field::ParamCount => "param count",
            Field::ParamKey => "param key",
            Field::ParamValueLen => "param value length",
            Field::PayloadLen => "payload_len",
        })
    }
}

/// Why an envelope could not be encoded, peeked at or decoded.
///
/// Decode errors other than [`Truncated`](EnvelopeError::Truncated) mean the remote
/// sent bytes that are not a message: the stream cannot be trusted any more. Encode
/// errors are the caller's and fail that one message only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The input ends before the message does; more bytes may fix it.
    #[error("truncated envelope: at least {needed} bytes needed")]
    Truncated {
        /// A lower bound on the length the input must have, counted from the start
        /// of the message (exact when only payload bytes are missing).
        needed: usize,
    },
    /// Remote error: a vint whose value does not fit its field.
    #[error("malformed vint in {field}: {value} is out of range")]
    MalformedVint {
        /// The field.
        field: Field,
        /// The value read.
        value: u64,
    },
    /// Remote error: the verb does not fit in a `u32`.
    #[error("verb {value} does not fit in 32 bits")]
    VerbOverflow {
        /// The value read.
        value: u64,
    },
    /// More params than [`MAX_PARAMS`] (remote error when decoding, caller error when
    /// encoding).
    #[error("{count} params, at most {max} allowed")]
    TooManyParams {
        /// How many params there are.
        count: u64,
        /// The limit, [`MAX_PARAMS`].
        max: usize,
    },
    /// A params section longer than [`MAX_PARAMS_BYTES`] (remote error when decoding,
    /// caller error when encoding).
    #[error("params section of {len} bytes, at most {max} allowed")]
    ParamsTooLarge {
        /// The section's length, declared or computed.
        len: u64,
        /// The limit, [`MAX_PARAMS_BYTES`].
        max: usize,
    },
    /// Remote error: the params do not fill their declared section exactly (an entry
    /// runs past its end, or bytes are left over after the last entry).
    #[error("params do not fill their declared section of {declared} bytes exactly")]
    ParamsInconsistent {
        /// The declared `params_len`.
        declared: usize,
    },
    /// Remote error: the payload length does not fit in `usize`, or the message
    /// length (header plus payload) overflows it.
    #[error("message length overflows")]
    LengthOverflow,
    /// The expiry is past the largest representable time: created_at_ms plus the
    /// expiry delta overflows `u64` (remote), or expires_at_ms - created_at_ms + 1
    /// does (caller).
    #[error("expiry overflows 64-bit milliseconds")]
    ExpiryOverflow,
    /// Caller error: an envelope to encode expires before it was created.
    #[error("envelope expires at {expires_at_ms} ms, before its creation at {created_at_ms} ms")]
    ExpiryBeforeCreation {
        /// The creation time.
        created_at_ms: u64,
        /// The expiry time.
        expires_at_ms: u64,
    },
}
