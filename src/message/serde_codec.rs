//! Payloads of serde types, encoded with postcard (feature `serde`).
//!
//! [`encode_serde`] serializes straight into the caller's `BytesMut` through a small
//! postcard flavor (no intermediate `Vec`). [`decode_serde`] reads with
//! `postcard::take_from_bytes` and refuses bytes left over. postcard never
//! pre-allocates a collection for more elements than there are bytes left, and serde
//! caps any pre-allocation at 1 MiB, so a length from the wire cannot make it allocate
//! far beyond the payload's size.

use bytes::{BufMut, Bytes, BytesMut};
use postcard::ser_flavors::Flavor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{DecodeError, EncodeError};

/// Appends the postcard encoding of `value` to `dst`.
///
/// On error `dst` is left as it was. This is what [`message!`](crate::message!)
/// calls; hand-written [`Message`](super::Message) impls may call it too, for
/// example to encode a serde type after a header of their own.
///
/// ```
/// use bytes::BytesMut;
/// use internode::message::{decode_serde, encode_serde};
///
/// let mut dst = BytesMut::new();
/// encode_serde(&(7u8, "hi"), &mut dst).unwrap();
/// assert_eq!(&dst[..], [7, 2, b'h', b'i']);
/// assert_eq!(decode_serde::<(u8, String)>(dst.freeze()).unwrap(), (7, "hi".to_owned()));
/// ```
pub fn encode_serde<T>(value: &T, dst: &mut BytesMut) -> Result<(), EncodeError>
where
    T: Serialize + ?Sized,
{
    let start = dst.len();
    postcard::serialize_with_flavor(value, BytesMutFlavor(&mut *dst)).map_err(|error| {
        dst.truncate(start);
        EncodeError::Serde(error)
    })
}

/// Decodes a whole payload as the postcard encoding of a `T`.
///
/// Never panics. Fails with [`DecodeError::Truncated`] when the payload ends before
/// the value, [`DecodeError::TrailingBytes`] when bytes are left over after it, and
/// [`DecodeError::Serde`] when the bytes are not a `T`. This is what
/// [`message!`](crate::message!) calls.
pub fn decode_serde<T>(payload: Bytes) -> Result<T, DecodeError>
where
    T: DeserializeOwned,
{
    match postcard::take_from_bytes::<T>(&payload)? {
        (value, []) => Ok(value),
        (_, rest) => Err(DecodeError::TrailingBytes { extra: rest.len() }),
    }
}

/// A postcard output that appends to a borrowed `BytesMut`.
struct BytesMutFlavor<'a>(&'a mut BytesMut);

impl Flavor for BytesMutFlavor<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.put_u8(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::ser::{Error as _, SerializeStruct, Serializer};

    /// Serializes a `u32` field, then fails.
    struct FailsHalfway;

    impl Serialize for FailsHalfway {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut s = serializer.serialize_struct("FailsHalfway", 2)?;
            s.serialize_field("a", &0xFFFF_FFFFu32)?;
            Err(S::Error::custom("no"))
        }
    }

    #[test]
    fn appends_after_existing_bytes() {
        let mut dst = BytesMut::from(&b"head"[..]);
        encode_serde(&(1u16, Some("x")), &mut dst).unwrap();
        assert_eq!(&dst[..], b"head\x01\x01\x01x");
    }

    #[test]
    fn a_failed_encode_leaves_the_buffer_as_it_was() {
        let mut dst = BytesMut::from(&b"head"[..]);
        assert_eq!(
            encode_serde(&FailsHalfway, &mut dst),
            Err(EncodeError::Serde(postcard::Error::SerdeSerCustom))
        );
        assert_eq!(&dst[..], b"head");
    }

    #[test]
    fn output_matches_postcard() {
        let value = (vec![1u64, 300, u64::MAX], "text", [0.5f32; 2]);
        let mut dst = BytesMut::new();
        encode_serde(&value, &mut dst).unwrap();
        assert_eq!(&dst[..], postcard::to_stdvec(&value).unwrap());
    }

    #[test]
    fn decode_errors_are_typed() {
        let payload = Bytes::from_static(&[0x05, b'a']);
        assert_eq!(decode_serde::<String>(payload), Err(DecodeError::Truncated));
        let payload = Bytes::from_static(&[0x01, b'a', 0x00]);
        assert_eq!(
            decode_serde::<String>(payload),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        let payload = Bytes::from_static(&[0x02]);
        assert_eq!(
            decode_serde::<bool>(payload),
            Err(DecodeError::Serde(postcard::Error::DeserializeBadBool))
        );
    }
}
