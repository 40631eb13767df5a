//! [`Flags`], [`Header`] and [`peek`]: what a receiver reads before the payload.

use std::fmt;
use std::ops::{BitOr, BitOrAssign, Range};

use super::{EnvelopeError, Field, MAX_PARAMS_BYTES};
use crate::vint::{self, VintError};

/// Wire-only flag bit: a params section follows the expiry. The encoder sets it iff
/// the envelope has params; [`Flags`] never holds it.
pub(super) const HAS_PARAMS: u32 = 1 << 3;

/// The flags of an envelope: a set of bits, of which this crate defines
/// [`REQUEST`](Flags::REQUEST), [`RESPONSE`](Flags::RESPONSE) and
/// [`FAILURE`](Flags::FAILURE).
///
/// Bit 3 is reserved for the wire format (it announces the params section) and is
/// cleared by every constructor. Other bits this crate does not know are kept, carried
/// over the wire unchanged, and otherwise ignored, so newer peers can add flags.
///
/// ```
/// use internode::envelope::Flags;
///
/// let flags = Flags::RESPONSE | Flags::FAILURE;
/// assert!(flags.contains(Flags::FAILURE));
/// assert!(!flags.contains(Flags::REQUEST));
/// assert_eq!(flags.bits(), 0b110);
/// // Unknown bits are kept; the reserved bit 3 is not.
/// assert_eq!(Flags::from_bits_retain(0x8000_000F).bits(), 0x8000_0007);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u32);

impl Flags {
    /// No flag set.
    pub const EMPTY: Flags = Flags(0);
    /// The message expects a response carrying the same id.
    pub const REQUEST: Flags = Flags(1 << 0);
    /// The message answers the request with the same id.
    pub const RESPONSE: Flags = Flags(1 << 1);
    /// The response reports a failure (with [`RESPONSE`](Flags::RESPONSE)).
    pub const FAILURE: Flags = Flags(1 << 2);

    /// Flags with the given bits, unknown ones included, except the reserved bit 3.
    pub const fn from_bits_retain(bits: u32) -> Flags {
        Flags(bits & !HAS_PARAMS)
    }

    /// The bits of these flags.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits set in either.
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        *self = self.union(rhs);
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut set = f.debug_set();
        let mut rest = self.0;
        for (flag, name) in [
            (Flags::REQUEST, "REQUEST"),
            (Flags::RESPONSE, "RESPONSE"),
            (Flags::FAILURE, "FAILURE"),
        ] {
            if self.contains(flag) {
                set.entry(&format_args!("{name}"));
                rest &= !flag.0;
            }
        }
        if rest != 0 {
            set.entry(&format_args!("{rest:#x}"));
        }
        set.finish()
    }
}

/// Everything before the payload except the params, as [`peek`] reads it.
///
/// Exhaustive on purpose: its fields are those of the envelope header on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message id (a response carries its request's id).
    pub id: u64,
    /// What the message is: the stable number of its type.
    pub verb: u32,
    /// The flags, without the wire-only params bit.
    pub flags: Flags,
    /// When the sender created the message, in milliseconds since the UNIX epoch.
    pub created_at_ms: u64,
    /// When the message expires, in milliseconds since the UNIX epoch; `None` for never.
    pub expires_at_ms: Option<u64>,
    /// Bytes from the start of the message to the start of its payload.
    pub header_len: usize,
    /// Bytes of payload after the header.
    pub payload_len: usize,
}

impl Header {
    /// The length of the whole message: header and payload.
    ///
    /// Exact for a header returned by [`peek`], which rejects lengths whose sum
    /// overflows; saturates for a hand-made one.
    pub fn message_len(&self) -> usize {
        self.header_len.saturating_add(self.payload_len)
    }

    /// Whether the message has expired at `now_ms` (milliseconds since the UNIX
    /// epoch): it has an expiry and `now_ms` is at or past it.
    ///
    /// ```
    /// use internode::envelope::{Flags, Header};
    ///
    /// let header = Header {
    ///     id: 1, verb: 2, flags: Flags::EMPTY, created_at_ms: 1_000,
    ///     expires_at_ms: Some(1_500), header_len: 8, payload_len: 0,
    /// };
    /// assert!(!header.is_expired(1_499));
    /// assert!(header.is_expired(1_500));
    /// assert!(!Header { expires_at_ms: None, ..header }.is_expired(u64::MAX));
    /// ```
    pub fn is_expired(&self, now_ms: u64) -> bool {
        deadline_passed(self.expires_at_ms, now_ms)
    }
}

/// Whether a deadline of `expires_at_ms` (ms since the UNIX epoch; `None`: never)
/// has passed at `now_ms`. A message expires at its deadline: one whose deadline is
/// now is neither written nor processed. The one rule for senders and receivers.
pub fn deadline_passed(expires_at_ms: Option<u64>, now_ms: u64) -> bool {
    expires_at_ms.is_some_and(|at| at <= now_ms)
}

/// Reads the header at the front of `src` without decoding its params or payload.
///
/// The params section is skipped in O(1) through its declared length (its length is
/// checked against [`MAX_PARAMS_BYTES`], its contents are not: [`Envelope::decode`]
/// checks them). The payload need not be present.
///
/// Fails with [`EnvelopeError::Truncated`] when `src` ends inside the header; `needed`
/// is then a lower bound on the length `src` must have for `peek` to get further.
///
/// ```
/// use bytes::Bytes;
/// use internode::envelope::{self, Envelope, EnvelopeError, Flags};
///
/// let envelope = Envelope {
///     id: 7, verb: 3, flags: Flags::REQUEST, created_at_ms: 1_000,
///     expires_at_ms: Some(3_000), params: vec![(1, Bytes::from_static(b"trace"))],
///     payload: Bytes::from_static(b"hello"),
/// };
/// let wire = envelope.to_bytes().unwrap();
/// let header = envelope::peek(&wire[..wire.len() - 5]).unwrap(); // no payload yet
/// assert_eq!((header.id, header.verb, header.payload_len), (7, 3, 5));
/// assert!(header.is_expired(3_000));
/// assert_eq!(header.message_len(), wire.len());
/// assert!(matches!(envelope::peek(&wire[..2]), Err(EnvelopeError::Truncated { .. })));
/// ```
///
/// [`Envelope::decode`]: super::Envelope::decode
pub fn peek(src: &[u8]) -> Result<Header, EnvelopeError> {
    parse(src).map(|parsed| parsed.header)
}

/// The length of the message at the front of `prefix`: `Ok(None)` while its header is
/// incomplete, `Ok(Some(len))` once it is complete (the payload need not be there).
///
/// ```
/// use bytes::Bytes;
/// use internode::envelope::{self, Envelope, Flags};
///
/// let envelope = Envelope {
///     id: 1, verb: 2, flags: Flags::EMPTY, created_at_ms: 0, expires_at_ms: None,
///     params: Vec::new(), payload: Bytes::from(vec![0; 1000]),
/// };
/// let wire = envelope.to_bytes().unwrap();
/// assert_eq!(envelope::message_len(&wire[..3]), Ok(None));
/// assert_eq!(envelope::message_len(&wire[..10]), Ok(Some(wire.len())));
/// ```
pub fn message_len(prefix: &[u8]) -> Result<Option<usize>, EnvelopeError> {
    match peek(prefix) {
        Ok(header) => Ok(Some(header.message_len())),
        Err(EnvelopeError::Truncated { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A header and where its params section lies in the input.
pub(super) struct Parsed {
    pub(super) header: Header,
    /// The params section after its length vint (count and entries), if announced.
    /// Its end is at most `header.header_len`, but the input may be shorter.
    pub(super) params: Option<Range<usize>>,
}

/// Parses the header at the front of `src`: the one reading shared by [`peek`] and
/// [`Envelope::decode`](super::Envelope::decode).
pub(super) fn parse(src: &[u8]) -> Result<Parsed, EnvelopeError> {
    let mut r = Reader { src, pos: 0 };
    let id = r.vint()?;
    let verb = r.vint()?;
    let verb = u32::try_from(verb).map_err(|_| EnvelopeError::VerbOverflow { value: verb })?;
    let raw_flags = r.vint()?;
    let raw_flags = u32::try_from(raw_flags).map_err(|_| EnvelopeError::MalformedVint {
        field: Field::Flags,
        value: raw_flags,
    })?;
    let created_at_ms = r.vint()?;
    let expiry = r.vint()?;
    let expires_at_ms = match expiry.checked_sub(1) {
        None => None,
        Some(delta) => Some(
            created_at_ms
                .checked_add(delta)
                .ok_or(EnvelopeError::ExpiryOverflow)?,
        ),
    };
    let params = if raw_flags & HAS_PARAMS != 0 {
        let declared = r.vint()?;
        let len = usize::try_from(declared)
            .ok()
            .filter(|&len| len <= MAX_PARAMS_BYTES)
            .ok_or(EnvelopeError::ParamsTooLarge {
                len: declared,
                max: MAX_PARAMS_BYTES,
            })?;
        let start = r.pos;
        // `start` is at most 6 * 9 and `len` at most MAX_PARAMS_BYTES: no overflow.
        let end = start
            .checked_add(len)
            .ok_or(EnvelopeError::LengthOverflow)?;
        r.pos = end;
        Some(start..end)
    } else {
        None
    };
    let payload_len = r.vint()?;
    let payload_len = usize::try_from(payload_len).map_err(|_| EnvelopeError::LengthOverflow)?;
    let header_len = r.pos;
    header_len
        .checked_add(payload_len)
        .ok_or(EnvelopeError::LengthOverflow)?;
    Ok(Parsed {
        header: Header {
            id,
            verb,
            flags: Flags::from_bits_retain(raw_flags),
            created_at_ms,
            expires_at_ms,
            header_len,
            payload_len,
        },
        params,
    })
}

/// A cursor over the header; `pos` may run past the end of `src` after a skip.
struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    /// Reads a top-level vint; running out of input is [`EnvelopeError::Truncated`]
    /// with `needed` counted from the start of the message.
    fn vint(&mut self) -> Result<u64, EnvelopeError> {
        let rest = self.src.get(self.pos..).unwrap_or(&[]);
        match vint::decode(rest) {
            Ok((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            Err(VintError::Truncated { needed }) => Err(EnvelopeError::Truncated {
                needed: self.pos.saturating_add(needed),
            }),
            // A u64 decode only fails by truncation.
            Err(VintError::Overflow) => Err(EnvelopeError::LengthOverflow),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_strip_the_params_bit() {
        assert_eq!(Flags::from_bits_retain(HAS_PARAMS), Flags::EMPTY);
        assert_eq!(Flags::from_bits_retain(u32::MAX).bits(), !HAS_PARAMS);
        let mut f = Flags::REQUEST;
        f |= Flags::FAILURE;
        assert_eq!(f, Flags::from_bits_retain(0b101));
        assert!(f.contains(Flags::EMPTY));
        assert!(Flags::EMPTY.is_empty());
        assert_eq!(
            format!("{:?}", Flags::from_bits_retain(0x103)),
            "{REQUEST, RESPONSE, 0x100}"
        );
    }

    #[test]
    fn header_without_payload() {
        // id 1, verb 2, flags 0, created 5, never expires, payload 3 bytes (absent).
        let src = [1, 2, 0, 5, 0, 3];
        let h = peek(&src).unwrap();
        assert_eq!(
            h,
            Header {
                id: 1,
                verb: 2,
                flags: Flags::EMPTY,
                created_at_ms: 5,
                expires_at_ms: None,
                header_len: 6,
                payload_len: 3,
            }
        );
        assert_eq!(message_len(&src), Ok(Some(9)));
        assert_eq!(message_len(&src[..5]), Ok(None));
    }

    #[test]
    fn params_are_skipped_without_reading_them() {
        // HAS_PARAMS, params_len 100: the section's bytes are not there, so peek
        // needs the whole section plus at least one byte of payload length.
        let src = [1, 2, 0x08, 5, 0, 100];
        assert_eq!(
            peek(&src),
            Err(EnvelopeError::Truncated {
                needed: 6 + 100 + 1
            })
        );
        // Whatever the section holds, peek only skips it.
        let mut full = src.to_vec();
        full.extend_from_slice(&[0xFF; 100]);
        full.push(0);
        let h = peek(&full).unwrap();
        assert_eq!((h.header_len, h.payload_len), (107, 0));
        assert_eq!(h.flags, Flags::EMPTY);
    }

    #[test]
    fn limits_and_overflows() {
        assert_eq!(
            peek(&[0, 0xF1, 0, 0, 0, 0]),
            Err(EnvelopeError::VerbOverflow { value: 1 << 32 })
        );
        assert_eq!(
            peek(&[0, 0, 0xF1, 0, 0, 0, 0]),
            Err(EnvelopeError::MalformedVint {
                field: Field::Flags,
                value: 1 << 32
            })
        );
        // params_len 16385.
        assert_eq!(
            peek(&[0, 0, 0x08, 0, 0, 0xC0, 0x40, 0x01]),
            Err(EnvelopeError::ParamsTooLarge {
                len: 16385,
                max: MAX_PARAMS_BYTES
            })
        );
        // created u64::MAX, expiry field 2: expires at u64::MAX + 1.
        let mut src = vec![0, 0, 0];
        src.extend_from_slice(&[0xFF; 9]);
        src.push(2);
        assert_eq!(peek(&src), Err(EnvelopeError::ExpiryOverflow));
        // The largest possible header_len plus payload_len u64::MAX overflows usize
        // on 64-bit targets, and payload_len does not fit on smaller ones.
        let mut src = vec![0, 0, 0, 0, 0];
        src.extend_from_slice(&[0xFF; 9]);
        assert_eq!(peek(&src), Err(EnvelopeError::LengthOverflow));
        assert_eq!(message_len(&src), Err(EnvelopeError::LengthOverflow));
    }

    #[test]
    fn header_len_saturates_when_hand_made() {
        let h = Header {
            id: 0,
            verb: 0,
            flags: Flags::EMPTY,
            created_at_ms: 0,
            expires_at_ms: Some(0),
            header_len: 2,
            payload_len: usize::MAX,
        };
        assert_eq!(h.message_len(), usize::MAX);
        assert!(h.is_expired(0));
    }
}
