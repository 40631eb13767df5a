//! Payloads of serde types, encoded with postcard (feature `serde`).
//!
//! [`encode_serde`] serializes straight into the caller's `BytesMut` through a small
//! postcard flavor (no intermediate `Vec`). [`decode_serde`] reads with
//! `postcard::take_from_bytes` and refuses bytes left over. postcard never
//! pre-allocates a collection for more elements than there are bytes left, and serde
//! caps any pre-allocation at 1 MiB, so a length from the wire cannot make it allocate
//! far beyond the payload's size.
//!
//! Zero-copy `Bytes` fields: while [`decode_serde`] runs, the payload being decoded is
//! known to this thread, and a `Bytes` field marked
//! `#[serde(with = "internode::message::shared_bytes")]` is taken as a slice of it
//! (`Bytes::slice_ref`: a reference count, no copy) instead of a copy. Elsewhere (another
//! deserializer, or bytes that are not the payload's) it is copied, so the attribute is
//! always correct, only faster under `decode_serde`. The payload itself is a slice of
//! the frame it arrived in, so such a field keeps that frame's buffer alive as long as
//! it lives (and the message's receive-limits permit, docs/limits.md, charges no less).

use std::cell::RefCell;

use bytes::{BufMut, Bytes, BytesMut};
use postcard::ser_flavors::Flavor;
use serde::de::DeserializeOwned;
use serde::Serialize;

thread_local! {
    /// The payload [`decode_serde`] is decoding on this thread, if any.
    static SOURCE: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Makes `payload` the source of zero-copy fields until dropped, then restores the
/// previous one (a `decode_serde` inside a field's deserializer nests).
struct Source(Option<Bytes>);

impl Source {
    fn set(payload: &Bytes) -> Source {
        Source(SOURCE.with(|s| s.replace(Some(payload.clone()))))
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let previous = self.0.take();
        SOURCE.with(|s| *s.borrow_mut() = previous);
    }
}

/// `bytes` as a slice of the payload being decoded, if it lies within it.
fn slice_of_source(bytes: &[u8]) -> Option<Bytes> {
    SOURCE.with(|s| {
        let source = s.borrow();
        let source = source.as_ref()?;
        let start = (bytes.as_ptr() as usize).checked_sub(source.as_ptr() as usize)?;
        let end = start.checked_add(bytes.len())?;
        // `slice_ref` would panic on a subset outside its buffer: checked first.
        (end <= source.len()).then(|| source.slice(start..end))
    })
}

/// Serde (de)serialization of a `Bytes` field that, under [`decode_serde`], takes the
/// field as a slice of the payload instead of copying it.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use internode::message::{decode_serde, encode_serde};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Chunk {
///     offset: u64,
///     #[serde(with = "internode::message::shared_bytes")]
///     data: Bytes,
/// }
///
/// let mut buf = BytesMut::new();
/// let chunk = Chunk { offset: 7, data: Bytes::from_static(b"abc") };
/// encode_serde(&chunk, &mut buf).unwrap();
/// let payload = buf.freeze();
/// let decoded: Chunk = decode_serde(payload.clone()).unwrap();
/// assert_eq!(decoded, chunk);
/// // Not copied: the field points into the payload.
/// let inside = payload.as_ptr_range();
/// assert!(inside.contains(&decoded.data.as_ptr()));
/// ```
///
/// On the wire it is a byte string (postcard: a varint length, then the bytes),
/// exactly like a `Vec<u8>` or `serde_bytes::ByteBuf` field, so a field's type can
/// change between these without changing its verb.
pub mod shared_bytes {
    use bytes::Bytes;
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::Serializer;

    /// Writes the field as a byte string.
    pub fn serialize<S: Serializer>(bytes: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    /// Reads a byte string: a slice of the payload under
    /// [`decode_serde`](super::decode_serde), a copy otherwise.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        deserializer.deserialize_bytes(Shared)
    }

    struct Shared;

    impl<'de> Visitor<'de> for Shared {
        type Value = Bytes;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Bytes, E> {
            Ok(super::slice_of_source(v).unwrap_or_else(|| Bytes::copy_from_slice(v)))
        }

        fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }

        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }

        /// Self-describing formats that write bytes as a list of numbers.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
            let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                v.push(b);
            }
            Ok(Bytes::from(v))
        }
    }
}

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
    // `shared_bytes` fields are slices of `payload` rather than copies.
    let _source = Source::set(&payload);
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

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Shared {
        head: u8,
        #[serde(with = "super::shared_bytes")]
        data: Bytes,
        tail: Vec<u8>,
    }

    fn within(inner: &Bytes, outer: &Bytes) -> bool {
        outer.as_ptr_range().contains(&inner.as_ptr())
    }

    #[test]
    fn a_shared_bytes_field_is_a_slice_of_the_payload_under_decode_serde_only() {
        let value = Shared {
            head: 1,
            data: Bytes::from_static(b"some bytes"),
            tail: vec![9, 9],
        };
        let mut buf = BytesMut::new();
        encode_serde(&value, &mut buf).unwrap();
        // The same wire as a `Vec<u8>` field.
        let as_vec = (1u8, b"some bytes".to_vec(), vec![9u8, 9]);
        assert_eq!(&buf[..], postcard::to_stdvec(&as_vec).unwrap());

        let payload = buf.freeze();
        let decoded: Shared = decode_serde(payload.clone()).unwrap();
        assert_eq!(decoded, value);
        assert!(within(&decoded.data, &payload), "not copied");
        // The source is gone once decode_serde returned: elsewhere it is a copy.
        let copied: Shared = postcard::from_bytes(&payload).unwrap();
        assert_eq!(copied, value);
        assert!(!within(&copied.data, &payload));
        assert!(SOURCE.with(|s| s.borrow().is_none()));
        // A self-describing format writes bytes as numbers: still read.
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::from_str::<Shared>(&json).unwrap(), value);
    }

    #[test]
    fn bytes_outside_the_payload_are_copied_and_empty_ones_are_fine() {
        let other = Bytes::from_static(b"elsewhere");
        let _source = Source::set(&Bytes::from_static(b"the payload"));
        let outside = slice_of_source(&other[2..5]);
        assert_eq!(outside, None);
        let empty: Shared = decode_serde(Bytes::from_static(&[0, 0, 0])).unwrap();
        assert!(empty.data.is_empty() && empty.tail.is_empty());
        // The outer source is back after the nested decode.
        assert_eq!(
            SOURCE.with(|s| s.borrow().clone()),
            Some(Bytes::from_static(b"the payload"))
        );
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
