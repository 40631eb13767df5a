//! [`RemoteFailure`]: the payload of a failure response, and its [`FailureReason`].

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::DecodeError;

/// Why a request failed on the remote node: one byte on the wire.
///
/// `FailureReason::from_code(c).code() == c` for every byte `c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The remote has no handler for the request's verb (code 1).
    UnknownVerb,
    /// The remote could not decode the request's payload (code 2).
    DecodeFailed,
    /// The handler returned an error, or stopped without answering (code 3).
    HandlerFailed,
    /// The remote could not take the request or queue its response: its limits were
    /// reached (code 4).
    Overloaded,
    /// The request expired on the remote before its handler answered (code 5).
    Timeout,
    /// The remote is shutting down and no longer handles requests (code 6).
    Closed,
    /// A code this version does not know, sent by a newer peer. Holds an unassigned
    /// code: `Unknown(1)` is encoded as 1 and decodes as [`UnknownVerb`](Self::UnknownVerb).
    Unknown(u8),
}

impl FailureReason {
    /// The one-byte code of this reason on the wire.
    pub fn code(self) -> u8 {
        match self {
            FailureReason::UnknownVerb => 1,
            FailureReason::DecodeFailed => 2,
            FailureReason::HandlerFailed => 3,
            FailureReason::Overloaded => 4,
            FailureReason::Timeout => 5,
            FailureReason::Closed => 6,
            FailureReason::Unknown(code) => code,
        }
    }

    /// The reason with the given wire code; [`Unknown`](Self::Unknown) for codes this
    /// version does not assign (including 0).
    pub fn from_code(code: u8) -> FailureReason {
        match code {
            1 => FailureReason::UnknownVerb,
            2 => FailureReason::DecodeFailed,
            3 => FailureReason::HandlerFailed,
            4 => FailureReason::Overloaded,
            5 => FailureReason::Timeout,
            6 => FailureReason::Closed,
            other => FailureReason::Unknown(other),
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::UnknownVerb => f.write_str("unknown verb"),
            FailureReason::DecodeFailed => f.write_str("request could not be decoded"),
            FailureReason::HandlerFailed => f.write_str("handler failed"),
            FailureReason::Overloaded => f.write_str("overloaded"),
            FailureReason::Timeout => f.write_str("timed out"),
            FailureReason::Closed => f.write_str("closed"),
            FailureReason::Unknown(code) => write!(f, "unknown failure reason {code}"),
        }
    }
}

/// The payload of a failure response: why a request failed on the remote node.
///
/// It is not a [`Message`](super::Message): it travels in the response envelope (with
/// the FAILURE flag) in place of the request's typed response. Its encoding is fixed
/// by this crate (no serde), little-endian like every other number in the protocol:
///
/// ```text
/// +--------+------------+--------------------+
/// | reason | detail_len | detail             |
/// +--------+------------+--------------------+
///   u8       u16 LE       detail_len bytes of UTF-8, at most 1024
/// ```
///
/// Invariants:
/// - `detail` is at most [`MAX_DETAIL_LEN`](Self::MAX_DETAIL_LEN) bytes on the wire:
///   the encoder truncates a longer one on a char boundary, and the decoder refuses a
///   longer declared length ([`DecodeError::TooLarge`]).
/// - [`decode`](Self::decode) never panics and never allocates more than
///   3 × `MAX_DETAIL_LEN` bytes, whatever its input. Invalid UTF-8 in `detail` is
///   replaced (`String::from_utf8_lossy`), then truncated again to `MAX_DETAIL_LEN`:
///   the detail is a diagnostic, and a bad byte in it should not hide the reason.
/// - Every reason code decodes: codes this version does not know become
///   [`FailureReason::Unknown`], so a newer peer's reasons still fail the request.
///
/// For example [`FailureReason::Overloaded`] (code 4) with detail `"full"`:
///
/// ```
/// use bytes::BytesMut;
/// use internode::message::{FailureReason, RemoteFailure};
///
/// let failure = RemoteFailure::new(FailureReason::Overloaded, "full");
/// let mut payload = BytesMut::new();
/// failure.encode(&mut payload);
/// assert_eq!(&payload[..], [4, 4, 0, b'f', b'u', b'l', b'l']);
/// assert_eq!(RemoteFailure::decode(payload.freeze()), Ok(failure.clone()));
/// assert_eq!(failure.to_string(), "overloaded: full");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RemoteFailure {
    /// Why the request failed.
    pub reason: FailureReason,
    /// A short human-readable explanation (may be empty). Only its first
    /// [`MAX_DETAIL_LEN`](Self::MAX_DETAIL_LEN) bytes are sent.
    pub detail: String,
}

impl RemoteFailure {
    /// At most this many bytes of `detail` travel.
    pub const MAX_DETAIL_LEN: usize = 1024;

    /// A failure with the given reason and detail, the detail truncated to
    /// [`MAX_DETAIL_LEN`](Self::MAX_DETAIL_LEN) bytes on a char boundary.
    pub fn new(reason: FailureReason, detail: impl Into<String>) -> RemoteFailure {
        let mut detail = detail.into();
        detail.truncate(sendable_len(&detail));
        RemoteFailure { reason, detail }
    }

    /// How many bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        3 + sendable_len(&self.detail)
    }

    /// Appends the encoded failure to `dst`, with `detail` truncated to
    /// [`MAX_DETAIL_LEN`](Self::MAX_DETAIL_LEN) bytes on a char boundary.
    pub fn encode(&self, dst: &mut BytesMut) {
        let detail = &self.detail.as_bytes()[..sendable_len(&self.detail)];
        dst.reserve(3 + detail.len());
        dst.put_u8(self.reason.code());
        // At most MAX_DETAIL_LEN, which fits in a u16.
        dst.put_u16_le(detail.len() as u16);
        dst.put_slice(detail);
    }

    /// Decodes a failure payload. Never panics. Unknown reason codes become
    /// [`FailureReason::Unknown`]; invalid UTF-8 in the detail is replaced with U+FFFD
    /// (then the detail is cut back to [`MAX_DETAIL_LEN`](Self::MAX_DETAIL_LEN) bytes).
    ///
    /// Fails with [`DecodeError::Truncated`] when the payload ends early,
    /// [`DecodeError::TooLarge`] when `detail_len` is above
    /// [`MAX_DETAIL_LEN`](Self::MAX_DETAIL_LEN), and [`DecodeError::TrailingBytes`]
    /// when bytes follow the detail.
    pub fn decode(payload: Bytes) -> Result<RemoteFailure, DecodeError> {
        let Some((&[code, len_lo, len_hi], rest)) = payload.split_first_chunk::<3>() else {
            return Err(DecodeError::Truncated);
        };
        let len = usize::from(u16::from_le_bytes([len_lo, len_hi]));
        if len > Self::MAX_DETAIL_LEN {
            return Err(DecodeError::TooLarge {
                len,
                max: Self::MAX_DETAIL_LEN,
            });
        }
        let Some(detail) = rest.get(..len) else {
            return Err(DecodeError::Truncated);
        };
        if rest.len() > len {
            return Err(DecodeError::TrailingBytes {
                extra: rest.len() - len,
            });
        }
        let mut detail = String::from_utf8_lossy(detail).into_owned();
        detail.truncate(sendable_len(&detail));
        Ok(RemoteFailure {
            reason: FailureReason::from_code(code),
            detail,
        })
    }
}

impl fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.reason, self.detail)
        }
    }
}

impl std::error::Error for RemoteFailure {}

/// The length of the longest prefix of `s` of at most `MAX_DETAIL_LEN` bytes that ends
/// on a char boundary.
fn sendable_len(s: &str) -> usize {
    if s.len() <= RemoteFailure::MAX_DETAIL_LEN {
        return s.len();
    }
    // A char is at most 4 bytes, so this stops within 3 steps.
    (0..=RemoteFailure::MAX_DETAIL_LEN)
        .rev()
        .find(|&end| s.is_char_boundary(end))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL_KNOWN: [FailureReason; 6] = [
        FailureReason::UnknownVerb,
        FailureReason::DecodeFailed,
        FailureReason::HandlerFailed,
        FailureReason::Overloaded,
        FailureReason::Timeout,
        FailureReason::Closed,
    ];

    fn encoded(failure: &RemoteFailure) -> Bytes {
        let mut dst = BytesMut::new();
        failure.encode(&mut dst);
        assert_eq!(dst.len(), failure.encoded_len());
        dst.freeze()
    }

    #[test]
    fn every_code_maps_back_to_itself() {
        for code in 0..=u8::MAX {
            assert_eq!(FailureReason::from_code(code).code(), code);
        }
        for reason in ALL_KNOWN {
            assert_eq!(FailureReason::from_code(reason.code()), reason);
            assert!(!matches!(reason, FailureReason::Unknown(_)));
        }
        assert_eq!(FailureReason::from_code(0), FailureReason::Unknown(0));
        assert_eq!(FailureReason::from_code(7), FailureReason::Unknown(7));
    }

    #[test]
    fn encodes_the_documented_bytes() {
        let failure = RemoteFailure::new(FailureReason::Overloaded, "full");
        assert_eq!(&encoded(&failure)[..], b"\x04\x04\x00full");
        let empty = RemoteFailure::new(FailureReason::UnknownVerb, "");
        assert_eq!(&encoded(&empty)[..], [1, 0, 0]);
    }

    #[test]
    fn round_trips_every_reason() {
        for reason in ALL_KNOWN
            .into_iter()
            .chain([0, 7, 200, 255].map(FailureReason::Unknown))
        {
            let failure = RemoteFailure::new(reason, format!("because {reason}"));
            assert_eq!(RemoteFailure::decode(encoded(&failure)), Ok(failure));
        }
    }

    #[test]
    fn long_details_are_truncated_on_a_char_boundary() {
        // 'é' is 2 bytes: 1023 ASCII bytes then 'é' straddles the limit.
        let detail = format!("{}é and more", "a".repeat(1023));
        let failure = RemoteFailure {
            reason: FailureReason::HandlerFailed,
            detail: detail.clone(),
        };
        let wire = encoded(&failure);
        assert_eq!(wire.len(), 3 + 1023);
        let decoded = RemoteFailure::decode(wire).unwrap();
        assert_eq!(decoded.detail, "a".repeat(1023));
        assert_eq!(
            RemoteFailure::new(FailureReason::HandlerFailed, detail),
            decoded
        );

        let exact = "b".repeat(RemoteFailure::MAX_DETAIL_LEN);
        let failure = RemoteFailure::new(FailureReason::Timeout, exact.clone() + "c");
        assert_eq!(failure.detail, exact);
        assert_eq!(RemoteFailure::decode(encoded(&failure)), Ok(failure));
    }

    #[test]
    fn malformed_payloads_are_refused() {
        let decode = |bytes: &'static [u8]| RemoteFailure::decode(Bytes::from_static(bytes));
        assert_eq!(decode(b""), Err(DecodeError::Truncated));
        assert_eq!(decode(b"\x01\x05"), Err(DecodeError::Truncated));
        assert_eq!(decode(b"\x01\x05\x00abc"), Err(DecodeError::Truncated));
        assert_eq!(
            decode(b"\x01\x01\x00ab"),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        assert_eq!(
            decode(b"\x01\x01\x04"),
            Err(DecodeError::TooLarge {
                len: 1025,
                max: 1024
            })
        );
        assert_eq!(
            decode(b"\x01\xFF\xFF"),
            Err(DecodeError::TooLarge {
                len: 65535,
                max: 1024
            })
        );
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let decoded = RemoteFailure::decode(Bytes::from_static(b"\x03\x03\x00a\xFFb")).unwrap();
        assert_eq!(decoded.reason, FailureReason::HandlerFailed);
        assert_eq!(decoded.detail, "a\u{FFFD}b");

        // 1024 invalid bytes become 1024 three-byte replacement chars, cut back to 341.
        let mut wire = vec![2, 0x00, 0x04];
        wire.extend([0xFF; 1024]);
        let decoded = RemoteFailure::decode(Bytes::from(wire)).unwrap();
        assert_eq!(decoded.detail, "\u{FFFD}".repeat(341));
    }

    #[test]
    fn display_shows_reason_and_detail() {
        assert_eq!(
            RemoteFailure::new(FailureReason::UnknownVerb, "").to_string(),
            "unknown verb"
        );
        assert_eq!(
            RemoteFailure::new(FailureReason::Unknown(9), "new").to_string(),
            "unknown failure reason 9: new"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1100)) {
            if let Ok(failure) = RemoteFailure::decode(Bytes::from(bytes.clone())) {
                prop_assert!(failure.detail.len() <= RemoteFailure::MAX_DETAIL_LEN);
                // Valid UTF-8 input re-encodes to exactly the same bytes.
                if std::str::from_utf8(&bytes[3..]).is_ok() {
                    prop_assert_eq!(&encoded(&failure)[..], &bytes[..]);
                }
            }
        }

        #[test]
        fn well_formed_headers_with_arbitrary_details_never_panic(
            code in any::<u8>(),
            detail in proptest::collection::vec(any::<u8>(), 0..=1024),
        ) {
            let mut wire = vec![code];
            wire.extend((detail.len() as u16).to_le_bytes());
            wire.extend(&detail);
            let failure = RemoteFailure::decode(Bytes::from(wire)).unwrap();
            prop_assert_eq!(failure.reason.code(), code);
            prop_assert!(failure.detail.len() <= RemoteFailure::MAX_DETAIL_LEN);
        }

        #[test]
        fn any_failure_round_trips_after_truncation(code in any::<u8>(), detail in ".{0,600}") {
            let failure = RemoteFailure::new(FailureReason::from_code(code), detail);
            prop_assert_eq!(RemoteFailure::decode(encoded(&failure)), Ok(failure));
        }
    }
}
