//! [`Envelope`]: one whole message, encoded and decoded.

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::header::{self, HAS_PARAMS};
use super::{EnvelopeError, Field, Flags, MAX_PARAMS, MAX_PARAMS_BYTES};
use crate::vint;

/// One message: its header fields, params and payload.
///
/// ```
/// use bytes::Bytes;
/// use internode::envelope::{Envelope, Flags};
///
/// let envelope = Envelope {
///     id: 42,
///     verb: 7,
///     flags: Flags::REQUEST,
///     created_at_ms: 1_700_000_000_000,
///     expires_at_ms: Some(1_700_000_002_000),
///     params: vec![(1, Bytes::from_static(b"trace-id"))],
///     payload: Bytes::from_static(b"payload"),
/// };
/// let mut wire = envelope.to_bytes().unwrap();
/// assert_eq!(wire.len(), envelope.encoded_len().unwrap());
/// assert_eq!(Envelope::decode(&mut wire), Ok(envelope));
/// assert!(wire.is_empty());
/// ```
///
/// Exhaustive on purpose: its fields are the fields of the message envelope on the wire, built
/// field by field by an independent implementation or a test; a new field would be a
/// new wire format, a breaking change however the struct is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The message id (a response carries its request's id).
    pub id: u64,
    /// What the message is: the stable number of its type.
    pub verb: u32,
    /// The flags.
    pub flags: Flags,
    /// When the message was created, in milliseconds since the UNIX epoch.
    pub created_at_ms: u64,
    /// When the message expires, in milliseconds since the UNIX epoch (at or after
    /// `created_at_ms`); `None` for never.
    pub expires_at_ms: Option<u64>,
    /// Key/value parameters, in order (keys may repeat): at most [`MAX_PARAMS`], in a
    /// section of at most [`MAX_PARAMS_BYTES`].
    pub params: Vec<(u32, Bytes)>,
    /// The payload, opaque to this layer.
    pub payload: Bytes,
}

/// What the encoder computed before writing anything.
struct Plan {
    flags: u32,
    expiry: u64,
    /// Length of the params section (count and entries), if there is one.
    params_len: Option<usize>,
    total: usize,
}

impl Envelope {
    /// How many bytes [`encode`](Self::encode) writes, or why it would fail.
    pub fn encoded_len(&self) -> Result<usize, EnvelopeError> {
        self.plan().map(|plan| plan.total)
    }

    /// Whether the message has expired at `now_ms`: it has an expiry and `now_ms` is at
    /// or past it.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        super::header::deadline_passed(self.expires_at_ms, now_ms)
    }

    /// Appends the encoded message to `dst`.
    ///
    /// Fails, writing nothing, when the envelope expires before its creation or its
    /// params exceed [`MAX_PARAMS`] or [`MAX_PARAMS_BYTES`]. Like every [`BufMut`]
    /// writer, panics if `dst` cannot grow to hold [`encoded_len`](Self::encoded_len)
    /// more bytes (a `Vec` or `BytesMut` always can).
    pub fn encode(&self, dst: &mut impl BufMut) -> Result<(), EnvelopeError> {
        self.encode_header(dst)?;
        dst.put_slice(&self.payload);
        Ok(())
    }

    /// Appends everything [`encode`](Self::encode) writes before the payload (the
    /// header, params and payload length), so that the caller can write the payload
    /// from where it lies, without copying it into an intermediate buffer. Fails like
    /// `encode`, writing nothing.
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use internode::envelope::{Envelope, Flags};
    ///
    /// let envelope = Envelope {
    ///     id: 7, verb: 1, flags: Flags::EMPTY, created_at_ms: 1_000, expires_at_ms: None,
    ///     params: Vec::new(), payload: Bytes::from_static(b"hi"),
    /// };
    /// let mut parts = BytesMut::new();
    /// envelope.encode_header(&mut parts).unwrap();
    /// parts.extend_from_slice(&envelope.payload);
    /// assert_eq!(parts.freeze(), envelope.to_bytes().unwrap());
    /// ```
    pub fn encode_header(&self, dst: &mut impl BufMut) -> Result<(), EnvelopeError> {
        let plan = self.plan()?;
        vint::encode(self.id, dst);
        vint::encode(u64::from(self.verb), dst);
        vint::encode(u64::from(plan.flags), dst);
        vint::encode(self.created_at_ms, dst);
        vint::encode(plan.expiry, dst);
        if let Some(params_len) = plan.params_len {
            vint::encode(len_u64(params_len), dst);
            vint::encode(len_u64(self.params.len()), dst);
            for (key, value) in &self.params {
                vint::encode(u64::from(*key), dst);
                vint::encode(len_u64(value.len()), dst);
                dst.put_slice(value);
            }
        }
        vint::encode(len_u64(self.payload.len()), dst);
        Ok(())
    }

    /// The encoded message in a buffer of exactly its length.
    pub fn to_bytes(&self) -> Result<Bytes, EnvelopeError> {
        let mut buf = BytesMut::with_capacity(self.encoded_len()?);
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Decodes the message at the front of `src` and advances `src` past it.
    ///
    /// The payload and the param values are slices of `src`, not copies. On error
    /// `src` is left as it was; [`EnvelopeError::Truncated`] means `src` holds only a
    /// part of the message.
    pub fn decode(src: &mut Bytes) -> Result<Envelope, EnvelopeError> {
        let parsed = header::parse(src)?;
        let h = parsed.header;
        let total = h.message_len();
        if src.len() < total {
            return Err(EnvelopeError::Truncated { needed: total });
        }
        let params = match parsed.params {
            Some(section) => decode_params(src, section)?,
            None => Vec::new(),
        };
        let payload = if total == src.len() {
            // The whole buffer is this envelope (a message cut by the assembler): its
            // payload is the buffer itself, narrowed, with no reference count taken.
            let mut payload = std::mem::take(src);
            payload.advance(h.header_len);
            payload
        } else {
            let payload = src.slice(h.header_len..total);
            src.advance(total);
            payload
        };
        Ok(Envelope {
            id: h.id,
            verb: h.verb,
            flags: h.flags,
            created_at_ms: h.created_at_ms,
            expires_at_ms: h.expires_at_ms,
            params,
            payload,
        })
    }

    /// Checks the envelope and computes the variable parts of its encoding.
    fn plan(&self) -> Result<Plan, EnvelopeError> {
        let expiry = match self.expires_at_ms {
            None => 0,
            Some(at) => at
                .checked_sub(self.created_at_ms)
                .ok_or(EnvelopeError::ExpiryBeforeCreation {
                    created_at_ms: self.created_at_ms,
                    expires_at_ms: at,
                })?
                .checked_add(1)
                .ok_or(EnvelopeError::ExpiryOverflow)?,
        };
        let params_len = if self.params.is_empty() {
            None
        } else {
            Some(self.params_len()?)
        };
        let flags =
            (self.flags.bits() & !HAS_PARAMS) | if params_len.is_some() { HAS_PARAMS } else { 0 };
        let params_bytes = params_len.map_or(0, |len| vint::encoded_len(len_u64(len)) + len);
        let header_len = vint::encoded_len(self.id)
            + vint::encoded_len(u64::from(self.verb))
            + vint::encoded_len(u64::from(flags))
            + vint::encoded_len(self.created_at_ms)
            + vint::encoded_len(expiry)
            + params_bytes
            + vint::encoded_len(len_u64(self.payload.len()));
        let total = header_len
            .checked_add(self.payload.len())
            .ok_or(EnvelopeError::LengthOverflow)?;
        Ok(Plan {
            flags,
            expiry,
            params_len,
            total,
        })
    }

    /// The length of the params section, checked against the limits.
    fn params_len(&self) -> Result<usize, EnvelopeError> {
        let count = self.params.len();
        if count > MAX_PARAMS {
            return Err(EnvelopeError::TooManyParams {
                count: len_u64(count),
                max: MAX_PARAMS,
            });
        }
        let len =
            self.params
                .iter()
                .fold(vint::encoded_len(len_u64(count)), |acc, (key, value)| {
                    acc.saturating_add(vint::encoded_len(u64::from(*key)))
                        .saturating_add(vint::encoded_len(len_u64(value.len())))
                        .saturating_add(value.len())
                });
        if len > MAX_PARAMS_BYTES {
            return Err(EnvelopeError::ParamsTooLarge {
                len: len_u64(len),
                max: MAX_PARAMS_BYTES,
            });
        }
        Ok(len)
    }
}

/// Decodes the params section at `section` in `src` (which holds the whole header).
fn decode_params(src: &Bytes, section: Range<usize>) -> Result<Vec<(u32, Bytes)>, EnvelopeError> {
    let declared = section.len();
    let inconsistent = EnvelopeError::ParamsInconsistent { declared };
    let bytes = src.get(section.clone()).ok_or(inconsistent.clone())?;
    let mut pos = 0;
    let count = section_vint(bytes, &mut pos, declared)?;
    let count = usize::try_from(count)
        .ok()
        .filter(|&count| count <= MAX_PARAMS)
        .ok_or(EnvelopeError::TooManyParams {
            count,
            max: MAX_PARAMS,
        })?;
    let mut params = Vec::with_capacity(count);
    for _ in 0..count {
        let key = section_vint(bytes, &mut pos, declared)?;
        let key = u32::try_from(key).map_err(|_| EnvelopeError::MalformedVint {
            field: Field::ParamKey,
            value: key,
        })?;
        let len = section_vint(bytes, &mut pos, declared)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| pos.checked_add(len))
            .filter(|&end| end <= declared)
            .ok_or(inconsistent.clone())?;
        // `section.start + end` is within `src`, as `bytes` is.
        params.push((key, src.slice(section.start + pos..section.start + end)));
        pos = end;
    }
    if pos != declared {
        return Err(inconsistent);
    }
    Ok(params)
}

/// Reads a vint inside the params section: running past its end is an inconsistency.
fn section_vint(bytes: &[u8], pos: &mut usize, declared: usize) -> Result<u64, EnvelopeError> {
    let rest = bytes.get(*pos..).unwrap_or(&[]);
    let (value, len) =
        vint::decode(rest).map_err(|_| EnvelopeError::ParamsInconsistent { declared })?;
    *pos += len;
    Ok(value)
}

/// A length as a wire number (lossless: `usize` is at most 64 bits).
fn len_u64(len: usize) -> u64 {
    len as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{peek, MAX_HEADER_LEN};
    use proptest::prelude::*;

    fn sample() -> Envelope {
        Envelope {
            id: 1,
            verb: 7,
            flags: Flags::REQUEST,
            created_at_ms: 1000,
            expires_at_ms: Some(1500),
            params: vec![(2, Bytes::from_static(b"ab"))],
            payload: Bytes::from_static(b"hi"),
        }
    }

    fn plain(payload: &'static [u8]) -> Envelope {
        Envelope {
            id: 300,
            verb: 1,
            flags: Flags::RESPONSE,
            created_at_ms: 0,
            expires_at_ms: None,
            params: Vec::new(),
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn the_payload_is_a_slice_of_the_buffer_whether_or_not_more_follows() {
        let one = sample().to_bytes().unwrap();
        // Exactly one envelope: the buffer itself becomes the payload.
        let mut src = one.clone();
        let decoded = Envelope::decode(&mut src).unwrap();
        assert_eq!(decoded, sample());
        assert!(src.is_empty());
        assert!(one.as_ptr_range().contains(&decoded.payload.as_ptr()));
        // Two: the first's payload is a slice, the second is left in `src`.
        let mut two = BytesMut::from(&one[..]);
        two.extend_from_slice(&plain(b"next").to_bytes().unwrap());
        let two = two.freeze();
        let mut src = two.clone();
        let first = Envelope::decode(&mut src).unwrap();
        assert_eq!(first, sample());
        assert!(two.as_ptr_range().contains(&first.payload.as_ptr()));
        assert_eq!(Envelope::decode(&mut src).unwrap(), plain(b"next"));
        assert!(src.is_empty());
    }

    #[test]
    fn golden_bytes() {
        let expected: &[u8] = &[
            0x01, // id 1
            0x07, // verb 7
            0x09, // flags: REQUEST | HAS_PARAMS
            0x83, 0xE8, // created 1000
            0x81, 0xF5, // expiry 1500 - 1000 + 1 = 501
            0x05, // params_len
            0x01, // count
            0x02, 0x02, b'a', b'b', // key 2, len 2, "ab"
            0x02, // payload_len
            b'h', b'i',
        ];
        assert_eq!(&sample().to_bytes().unwrap()[..], expected);
        assert_eq!(sample().encoded_len(), Ok(16));
        // No params: no HAS_PARAMS, no section.
        assert_eq!(
            &plain(b"").to_bytes().unwrap()[..],
            &[0x81, 0x2C, 0x01, 0x02, 0x00, 0x00, 0x00]
        );
    }

    #[test]
    fn decode_consumes_one_message_without_copying() {
        let mut wire = BytesMut::new();
        sample().encode(&mut wire).unwrap();
        plain(b"second").encode(&mut wire).unwrap();
        let mut src = wire.freeze();
        let range = src.as_ptr_range();
        let first = Envelope::decode(&mut src).unwrap();
        assert_eq!(first, sample());
        assert!(range.contains(&first.payload.as_ptr()));
        assert!(range.contains(&first.params[0].1.as_ptr()));
        assert_eq!(Envelope::decode(&mut src), Ok(plain(b"second")));
        assert!(src.is_empty());
        assert_eq!(
            Envelope::decode(&mut src),
            Err(EnvelopeError::Truncated { needed: 1 })
        );
    }

    #[test]
    fn every_truncation_is_reported_and_leaves_the_input() {
        for envelope in [sample(), plain(b"some payload")] {
            let wire = envelope.to_bytes().unwrap();
            let header_len = peek(&wire).unwrap().header_len;
            for cut in 0..wire.len() {
                let mut src = wire.slice(..cut);
                match Envelope::decode(&mut src) {
                    Err(EnvelopeError::Truncated { needed }) => {
                        assert!(needed > cut && needed <= wire.len(), "cut {cut}")
                    }
                    other => panic!("cut {cut}: {other:?}"),
                }
                assert_eq!(src.len(), cut);
                match peek(&wire[..cut]) {
                    Ok(h) => assert!(cut >= header_len && h == peek(&wire).unwrap()),
                    Err(EnvelopeError::Truncated { needed }) => {
                        assert!(cut < header_len && needed > cut && needed <= header_len)
                    }
                    Err(e) => panic!("cut {cut}: {e:?}"),
                }
            }
        }
    }

    #[test]
    fn expiry_semantics() {
        let mut e = plain(b"");
        e.created_at_ms = 1000;
        e.expires_at_ms = Some(1000);
        let wire = e.to_bytes().unwrap();
        assert_eq!(wire[6], 1, "expiring at creation is delta 0, sent as 1");
        let h = peek(&wire).unwrap();
        assert_eq!(h.expires_at_ms, Some(1000));
        assert!(h.is_expired(1000) && e.is_expired(1000));
        assert!(!h.is_expired(999) && !e.is_expired(999));

        e.expires_at_ms = None;
        assert!(!e.is_expired(u64::MAX));
        assert_eq!(peek(&e.to_bytes().unwrap()).unwrap().expires_at_ms, None);

        e.expires_at_ms = Some(999);
        assert_eq!(
            e.to_bytes(),
            Err(EnvelopeError::ExpiryBeforeCreation {
                created_at_ms: 1000,
                expires_at_ms: 999
            })
        );
        e.created_at_ms = 0;
        e.expires_at_ms = Some(u64::MAX);
        assert_eq!(e.encoded_len(), Err(EnvelopeError::ExpiryOverflow));
        e.created_at_ms = 1;
        let mut src = e.to_bytes().unwrap();
        assert_eq!(
            Envelope::decode(&mut src).unwrap().expires_at_ms,
            Some(u64::MAX)
        );
    }

    #[test]
    fn param_limits_on_encode() {
        let mut e = plain(b"");
        e.params = (0..MAX_PARAMS as u32).map(|k| (k, Bytes::new())).collect();
        let mut wire = e.to_bytes().unwrap();
        assert_eq!(Envelope::decode(&mut wire), Ok(e.clone()));
        e.params.push((0, Bytes::new()));
        assert_eq!(
            e.to_bytes(),
            Err(EnvelopeError::TooManyParams {
                count: 65,
                max: MAX_PARAMS
            })
        );

        // count 1 + key 1 + length 2 + value 16380 = exactly 16384 bytes.
        e.params = vec![(9, Bytes::from(vec![7; 16380]))];
        let mut wire = e.to_bytes().unwrap();
        let h = peek(&wire).unwrap();
        assert!(h.header_len <= MAX_HEADER_LEN);
        assert_eq!(Envelope::decode(&mut wire), Ok(e.clone()));
        e.params = vec![(9, Bytes::from(vec![7; 16381]))];
        assert_eq!(
            e.to_bytes(),
            Err(EnvelopeError::ParamsTooLarge {
                len: 16385,
                max: MAX_PARAMS_BYTES
            })
        );
    }

    #[test]
    fn reserved_flag_bit_is_not_sent_without_params() {
        let mut e = plain(b"x");
        e.flags = Flags::from_bits_retain(u32::MAX);
        let mut wire = e.to_bytes().unwrap();
        assert_eq!(Envelope::decode(&mut wire), Ok(e));
    }

    #[test]
    fn malformed_params_on_decode() {
        let header = [0u8, 0, 0x08, 0, 0]; // HAS_PARAMS, no expiry
        let decode = |section: &[u8]| {
            let mut wire = header.to_vec();
            wire.push(section.len() as u8);
            wire.extend_from_slice(section);
            wire.push(0); // empty payload
            Envelope::decode(&mut Bytes::from(wire))
        };
        let inconsistent = |declared| Err(EnvelopeError::ParamsInconsistent { declared });
        assert_eq!(
            decode(&[1, 5, 1, b'x']).unwrap().params,
            [(5, Bytes::from_static(b"x"))]
        );
        assert!(decode(&[0]).unwrap().params.is_empty());
        assert_eq!(decode(&[]), inconsistent(0)); // no count
        assert_eq!(decode(&[1, 5, 2, b'x']), inconsistent(4)); // value runs past the end
        assert_eq!(decode(&[1, 5, 1, b'x', 0]), inconsistent(5)); // a byte left over
        assert_eq!(decode(&[2, 5, 0]), inconsistent(3)); // second entry missing
        assert_eq!(decode(&[1, 0x80]), inconsistent(2)); // key vint cut by the end
        assert_eq!(
            decode(&[65]),
            Err(EnvelopeError::TooManyParams {
                count: 65,
                max: MAX_PARAMS
            })
        );
        assert_eq!(
            decode(&[1, 0xF1, 0, 0, 0, 0, 0]),
            Err(EnvelopeError::MalformedVint {
                field: Field::ParamKey,
                value: 1 << 32
            })
        );
    }

    #[test]
    fn longer_vints_decode_and_reencode_shorter() {
        // id 1 as two bytes, verb 2 as nine.
        let mut wire = vec![0x80, 0x01, 0xFF, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, b'z'];
        let e = Envelope::decode(&mut Bytes::from(wire.clone())).unwrap();
        assert_eq!((e.id, e.verb, &e.payload[..]), (1, 2, &b"z"[..]));
        wire = e.to_bytes().unwrap().to_vec();
        assert_eq!(wire, [1, 2, 0, 0, 0, 1, b'z']);
    }

    fn arb_envelope() -> impl Strategy<Value = Envelope> {
        let params = proptest::collection::vec(
            (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..40)),
            0..8,
        );
        (
            (any::<u64>(), any::<u32>(), any::<u32>()),
            (any::<u64>(), proptest::option::of(any::<u64>())),
            params,
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(
                |((id, verb, flags), (created, delta), params, payload)| Envelope {
                    id: id >> (id % 64),
                    verb: verb >> (verb % 32),
                    flags: Flags::from_bits_retain(flags >> (flags % 32)),
                    created_at_ms: created >> 20,
                    expires_at_ms: delta.map(|d| (created >> 20).saturating_add(d >> (d % 64))),
                    params: params
                        .into_iter()
                        .map(|(k, v)| (k, Bytes::from(v)))
                        .collect(),
                    payload: Bytes::from(payload),
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(e in arb_envelope(), trailing in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut wire = BytesMut::new();
            e.encode(&mut wire).unwrap();
            prop_assert_eq!(wire.len(), e.encoded_len().unwrap());
            let len = wire.len();
            wire.extend_from_slice(&trailing);
            let wire = wire.freeze();

            let h = peek(&wire).unwrap();
            prop_assert_eq!(h.message_len(), len);
            // The header is readable without the payload.
            prop_assert_eq!(peek(&wire[..h.header_len]), Ok(h));
            prop_assert_eq!(crate::envelope::message_len(&wire[..h.header_len]), Ok(Some(len)));

            let mut src = wire.clone();
            let decoded = Envelope::decode(&mut src).unwrap();
            prop_assert_eq!(&decoded, &e);
            prop_assert_eq!(&src[..], &trailing[..]);
            prop_assert_eq!(
                (h.id, h.verb, h.flags, h.created_at_ms, h.expires_at_ms, h.payload_len),
                (e.id, e.verb, e.flags, e.created_at_ms, e.expires_at_ms, e.payload.len())
            );
        }
    }
}
