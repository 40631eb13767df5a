//! Unsigned variable-length integers in the style of Apache Cassandra's `VIntCoding`.
//!
//! The number of leading 1-bits of the first byte is the number of extra bytes that
//! follow it (0 to 8). The value is stored big-endian in the bits that remain: the
//! first byte's bits after the run of 1-bits and its terminating 0-bit, then the extra
//! bytes. A first byte of `0xFF` has no terminating 0-bit and no value bits: the 8
//! extra bytes hold the whole `u64`.
//!
//! ```text
//! total bytes  first byte   value bits  largest value
//!      1       0xxxxxxx          7      2^7  - 1
//!      2       10xxxxxx         14      2^14 - 1
//!      3       110xxxxx         21      2^21 - 1
//!     ...        ...            ...       ...
//!      8       11111110         56      2^56 - 1
//!      9       11111111         64      2^64 - 1
//! ```
//!
//! Invariants:
//! - [`encode`] writes the shortest form, [`encoded_len`] bytes (1 to [`MAX_LEN`]).
//! - [`decode`] accepts every byte string long enough for its first byte, including
//!   longer-than-necessary forms (as Cassandra does): any such string is a valid `u64`,
//!   so the only decode errors are truncation and, for [`decode_u32`], overflow.
//! - Decoding never reads past the bytes the first byte announces, never allocates and
//!   never panics.

use bytes::BufMut;

/// The longest encoding: a `0xFF` byte followed by the 8 bytes of a `u64`.
pub const MAX_LEN: usize = 9;

/// Why a vint could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VintError {
    /// The input is shorter than the vint its first byte announces.
    #[error("truncated vint: {needed} bytes needed")]
    Truncated {
        /// How many bytes the whole vint takes (1 for empty input).
        needed: usize,
    },
    /// The value does not fit the requested integer type.
    #[error("vint value does not fit the integer type")]
    Overflow,
}

/// How many bytes [`encode`] writes for `v`: 1 to [`MAX_LEN`].
///
/// ```
/// use internode::vint;
///
/// assert_eq!(vint::encoded_len(0), 1);
/// assert_eq!(vint::encoded_len(127), 1);
/// assert_eq!(vint::encoded_len(128), 2);
/// assert_eq!(vint::encoded_len(u64::MAX), 9);
/// ```
pub fn encoded_len(v: u64) -> usize {
    // Significant bits (at least 1), then 7 value bits per byte, up to 9 bytes.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7).min(MAX_LEN)
}

/// Writes `v` in its shortest form.
///
/// ```
/// use internode::vint;
///
/// let mut buf = Vec::new();
/// vint::encode(300, &mut buf);
/// assert_eq!(buf, [0x81, 0x2C]);
/// assert_eq!(vint::decode(&buf), Ok((300, 2)));
/// ```
pub fn encode(v: u64, dst: &mut impl BufMut) {
    let len = encoded_len(v);
    if len == MAX_LEN {
        dst.put_u8(0xFF);
        dst.put_u64(v);
        return;
    }
    let be = v.to_be_bytes();
    let mut out = [0u8; 8];
    // `len` is 1..=8 here, and `v` fits in the low `7 * len` bits, so the first of the
    // `len` low bytes has its top `len` bits clear: room for the length marker.
    let start = 8 - len;
    out[..len].copy_from_slice(&be[start..]);
    out[0] |= extra_bytes_marker(len - 1);
    dst.put_slice(&out[..len]);
}

/// Reads one vint from the front of `src`: its value and how many bytes it took.
///
/// Fails with [`VintError::Truncated`] when `src` is shorter than the vint (for
/// empty input, `needed` is 1).
///
/// ```
/// use internode::vint::{self, VintError};
///
/// assert_eq!(vint::decode(&[0x7F, 0xAA]), Ok((127, 1)));
/// assert_eq!(vint::decode(&[0xC0, 0x40, 0x00]), Ok((16384, 3)));
/// assert_eq!(vint::decode(&[0xC0, 0x40]), Err(VintError::Truncated { needed: 3 }));
/// assert_eq!(vint::decode(&[]), Err(VintError::Truncated { needed: 1 }));
/// ```
pub fn decode(src: &[u8]) -> Result<(u64, usize), VintError> {
    let Some((&first, rest)) = src.split_first() else {
        return Err(VintError::Truncated { needed: 1 });
    };
    let extra = first.leading_ones() as usize;
    let Some(tail) = rest.get(..extra) else {
        return Err(VintError::Truncated { needed: 1 + extra });
    };
    // `0xFF >> 8` would overflow a u8 shift; widen first.
    let first_bits = u64::from(first) & (0xFFu64 >> extra);
    let value = tail
        .iter()
        .fold(first_bits, |acc, &b| (acc << 8) | u64::from(b));
    Ok((value, 1 + extra))
}

/// Like [`decode`], for a value that must fit in a `u32`.
///
/// ```
/// use internode::vint::{self, VintError};
///
/// let mut buf = Vec::new();
/// vint::encode(u64::from(u32::MAX), &mut buf);
/// assert_eq!(vint::decode_u32(&buf), Ok((u32::MAX, 5)));
///
/// buf.clear();
/// vint::encode(u64::from(u32::MAX) + 1, &mut buf);
/// assert_eq!(vint::decode_u32(&buf), Err(VintError::Overflow));
/// ```
pub fn decode_u32(src: &[u8]) -> Result<(u32, usize), VintError> {
    let (value, len) = decode(src)?;
    let value = u32::try_from(value).map_err(|_| VintError::Overflow)?;
    Ok((value, len))
}

/// The first-byte bits that announce `extra` (0..=7) extra bytes: `extra` leading ones.
fn extra_bytes_marker(extra: usize) -> u8 {
    !(0xFFu8 >> extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(v, &mut buf);
        buf
    }

    #[test]
    fn boundaries_of_every_length() {
        // The largest value of each length and the smallest of the next.
        for len in 1..=8usize {
            let top = (1u64 << (7 * len)) - 1;
            assert_eq!(encoded_len(top), len, "{top}");
            assert_eq!(encoded_len(top + 1), len + 1, "{}", top + 1);
            for v in [top, top + 1] {
                let bytes = enc(v);
                assert_eq!(bytes.len(), encoded_len(v));
                assert_eq!(decode(&bytes), Ok((v, bytes.len())));
            }
        }
        for v in [
            0,
            1,
            127,
            128,
            (1 << 14) - 1,
            1 << 14,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let bytes = enc(v);
            assert_eq!(bytes.len(), encoded_len(v));
            assert_eq!(decode(&bytes), Ok((v, bytes.len())));
        }
    }

    #[test]
    fn golden_bytes() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(127), [0x7F]);
        assert_eq!(enc(128), [0x80, 0x80]);
        assert_eq!(enc(300), [0x81, 0x2C]);
        assert_eq!(enc((1 << 14) - 1), [0xBF, 0xFF]);
        assert_eq!(enc(1 << 14), [0xC0, 0x40, 0x00]);
        assert_eq!(enc(u64::from(u32::MAX)), [0xF0, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(
            enc((1 << 56) - 1),
            [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(enc(1 << 56), [0xFF, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(enc(u64::MAX), [0xFF; 9]);
    }

    #[test]
    fn longer_forms_are_accepted() {
        assert_eq!(decode(&[0x80, 0x05]), Ok((5, 2)));
        assert_eq!(decode(&[0xFF, 0, 0, 0, 0, 0, 0, 0, 0]), Ok((0, 9)));
        // The terminating 0-bit of a marker is not a value bit.
        assert_eq!(decode(&[0xFE, 0, 0, 0, 0, 0, 0, 1]), Ok((1, 8)));
    }

    #[test]
    fn decode_stops_at_the_vint() {
        let mut bytes = enc(1 << 20);
        bytes.extend_from_slice(&[0xFF, 0xFF]);
        assert_eq!(decode(&bytes), Ok((1 << 20, 3)));
    }

    #[test]
    fn truncation_at_every_prefix() {
        assert_eq!(decode(&[]), Err(VintError::Truncated { needed: 1 }));
        assert_eq!(decode_u32(&[]), Err(VintError::Truncated { needed: 1 }));
        for v in [0, 128, 1 << 14, 1 << 35, 1 << 56, u64::MAX] {
            let bytes = enc(v);
            for cut in 1..bytes.len() {
                assert_eq!(
                    decode(&bytes[..cut]),
                    Err(VintError::Truncated {
                        needed: bytes.len()
                    }),
                    "{v} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn u32_limits() {
        assert_eq!(decode_u32(&enc(0)), Ok((0, 1)));
        assert_eq!(decode_u32(&enc(u32::MAX.into())), Ok((u32::MAX, 5)));
        assert_eq!(
            decode_u32(&enc(u64::from(u32::MAX) + 1)),
            Err(VintError::Overflow)
        );
        assert_eq!(decode_u32(&enc(u64::MAX)), Err(VintError::Overflow));
    }

    proptest! {
        #[test]
        fn round_trip(v in any::<u64>(), shift in 0u32..64, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            // Spread values over every length, not only the 9-byte ones.
            let v = v >> shift;
            let mut bytes = enc(v);
            prop_assert_eq!(bytes.len(), encoded_len(v));
            let len = bytes.len();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(decode(&bytes), Ok((v, len)));
            let as_u32 = u32::try_from(v).map_err(|_| VintError::Overflow);
            prop_assert_eq!(decode_u32(&bytes), as_u32.map(|x| (x, len)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            match decode(&bytes) {
                Ok((v, len)) => {
                    prop_assert!(len <= bytes.len());
                    prop_assert!(encoded_len(v) <= len);
                }
                Err(VintError::Truncated { needed }) => prop_assert!(needed > bytes.len()),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }
    }
}
