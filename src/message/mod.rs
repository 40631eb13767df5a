//! Typed messages: how an application's types become payloads, and back.
//!
//! A type travels between nodes once it implements [`Message`]: a stable
//! [`VERB`](Message::VERB) that names it on the wire, whether it is
//! [`URGENT`](Message::URGENT), and how its payload is encoded and decoded. A
//! [`Request`] is a message that expects a typed [`Response`](Request::Response).
//!
//! With the `serde` feature (on by default), one line declares a
//! `#[derive(Serialize, Deserialize)]` type as a message, encoded with
//! [postcard](https://postcard.jamesmunns.com/wire-format): [`message!`](crate::message!)
//! for messages and [`request!`](crate::request!) for requests. The application needs
//! `serde` (with `derive`) among its own dependencies for the derives.
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use bytes::BytesMut;
//! use internode::message::{Message, Request};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Put {
//!     key: String,
//!     value: Vec<u8>,
//!     ttl_ms: Option<u64>,
//! }
//! internode::message!(Put, verb = 7);
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Ping {
//!     sent_at_ms: u64,
//! }
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! enum Pong {
//!     Alive { load: f32 },
//!     Draining,
//! }
//! internode::request!(Ping => Pong, verb = 8, urgent);
//! internode::message!(Pong, verb = 9, urgent);
//!
//! let put = Put { key: "k".into(), value: vec![1, 2, 3], ttl_ms: None };
//! let mut payload = BytesMut::new();
//! put.encode(&mut payload).unwrap();
//! assert_eq!(&payload[..], [1, b'k', 3, 1, 2, 3, 0]); // postcard's bytes
//! assert_eq!(Put::decode(payload.freeze()).unwrap(), put);
//!
//! assert_eq!((Put::VERB, Put::URGENT), (7, false));
//! assert_eq!((Ping::VERB, Ping::URGENT), (8, true));
//! fn response_verb<R: Request>() -> u32 {
//!     R::Response::VERB
//! }
//! assert_eq!(response_verb::<Ping>(), 9);
//! # }
//! ```
//!
//! Any type can also implement [`Message`] by hand, with or without the feature:
//!
//! ```
//! use bytes::{BufMut, Bytes, BytesMut};
//! use internode::message::{DecodeError, EncodeError, Message};
//!
//! /// A heartbeat carrying a timestamp: 8 little-endian bytes.
//! #[derive(Debug, PartialEq)]
//! struct Tick(u64);
//!
//! impl Message for Tick {
//!     const VERB: u32 = 100;
//!     const URGENT: bool = true;
//!
//!     fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
//!         dst.put_u64_le(self.0);
//!         Ok(())
//!     }
//!
//!     fn decode(payload: Bytes) -> Result<Self, DecodeError> {
//!         match <[u8; 8]>::try_from(&payload[..]) {
//!             Ok(bytes) => Ok(Tick(u64::from_le_bytes(bytes))),
//!             Err(_) if payload.len() < 8 => Err(DecodeError::Truncated),
//!             Err(_) => Err(DecodeError::TrailingBytes { extra: payload.len() - 8 }),
//!         }
//!     }
//! }
//!
//! let mut payload = BytesMut::new();
//! Tick(1_700_000_000_000).encode(&mut payload).unwrap();
//! assert_eq!(payload.len(), 8);
//! assert_eq!(Tick::decode(payload.freeze()), Ok(Tick(1_700_000_000_000)));
//! assert_eq!(Tick::decode(Bytes::from_static(b"abc")), Err(DecodeError::Truncated));
//! ```
//!
//! When a request fails on the remote node, the response carries a [`RemoteFailure`]
//! (a [`FailureReason`] and a short text) instead of the typed response; its encoding
//! is fixed by this crate and does not need the `serde` feature.
//!
//! Invariants:
//! - A verb names one message type for as long as any node may still send it: peers of
//!   different versions must agree on it. Verbs at or above [`RESERVED_VERBS_START`]
//!   belong to internode's own control messages: [`check_verb`] refuses them where
//!   handlers are registered, and `message!` / `request!` refuse them at compile time.
//! - [`Message::encode`] only appends to its buffer and never touches the bytes that
//!   were there before. If it fails, the caller discards whatever it appended;
//!   `encode_serde` (feature `serde`) already leaves the buffer as it found it. An encode error fails
//!   that one message, never the connection.
//! - [`Message::decode`] receives exactly one message's payload and must not panic on
//!   any input: a payload comes from the network. `decode_serde` (feature `serde`)
//!   and [`RemoteFailure::decode`] never do, and they refuse payloads with bytes left over
//!   ([`DecodeError::TrailingBytes`]).
//! - postcard is not self-describing: a type's fields, their order and their types are
//!   its wire format. Changing them is a wire-incompatible change; give the new shape a
//!   new verb.
//! - Errors are [`Clone`] (an outcome is given to several listeners) and compare equal
//!   when they are the same failure ([`EncodeError::Custom`] and
//!   [`DecodeError::Custom`] by identity of the shared error).

mod failure;
mod macros;
#[cfg(feature = "serde")]
mod serde_codec;

use std::error::Error as StdError;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

pub use failure::{FailureReason, RemoteFailure};
#[cfg(feature = "serde")]
pub use serde_codec::{decode_serde, encode_serde, shared_bytes};

/// The first verb reserved for internode's own control messages: verbs from here to
/// `u32::MAX` are never given to application messages.
pub const RESERVED_VERBS_START: u32 = 0xFFFF_0000;

/// A type that travels between nodes: its verb, its link, and its payload encoding.
///
/// Implement it with [`message!`](crate::message!) for serde types (feature `serde`),
/// or by hand. See the [module documentation](self) for both.
pub trait Message: Sized + Send + 'static {
    /// The stable number that names this type on the wire. Every message type of an
    /// application has its own, below [`RESERVED_VERBS_START`].
    const VERB: u32;

    /// Whether the message goes over the urgent link (small control and stability
    /// messages: heartbeats, membership). Other messages go over the small link, or
    /// over the large one when their encoded size is above
    /// [`LinkKind::LARGE_THRESHOLD`](crate::LinkKind::LARGE_THRESHOLD), so a large
    /// message never delays urgent or small ones. Defaults to `false`.
    const URGENT: bool = false;

    /// How long after its send a message of this type expires if not yet written
    /// (a send may set its own deadline; without either, the node's
    /// [`expire_after`](crate::node::NodeConfig::expire_after) applies). An expired
    /// message is never written, and its sender gets `Expired`. Defaults to `None`.
    const EXPIRES_AFTER: Option<std::time::Duration> = None;

    /// Appends the payload to `dst`.
    ///
    /// Must only append. On error the caller truncates `dst` back to its length before
    /// the call, so an implementation may leave partial bytes behind.
    fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError>;

    /// Decodes a payload produced by [`encode`](Self::encode), normally on another node.
    ///
    /// The payload comes from the network: any bytes must give `Ok` or `Err`, never a
    /// panic, and a payload with bytes left over should be refused with
    /// [`DecodeError::TrailingBytes`].
    fn decode(payload: Bytes) -> Result<Self, DecodeError>;
}

/// A message that expects a typed response.
///
/// Declare one with [`request!`](crate::request!) (feature `serde`), or by hand:
///
/// ```
/// # use bytes::{Bytes, BytesMut};
/// # use internode::message::{DecodeError, EncodeError, Message, Request};
/// # struct Get;
/// # struct Value;
/// # impl Message for Get {
/// #     const VERB: u32 = 1;
/// #     fn encode(&self, _: &mut BytesMut) -> Result<(), EncodeError> { Ok(()) }
/// #     fn decode(_: Bytes) -> Result<Self, DecodeError> { Ok(Get) }
/// # }
/// # impl Message for Value {
/// #     const VERB: u32 = 2;
/// #     fn encode(&self, _: &mut BytesMut) -> Result<(), EncodeError> { Ok(()) }
/// #     fn decode(_: Bytes) -> Result<Self, DecodeError> { Ok(Value) }
/// # }
/// impl Request for Get {
///     type Response = Value;
/// }
/// ```
pub trait Request: Message {
    /// The message that answers this request.
    type Response: Message;
}

/// Whether `verb` is reserved for internode's own control messages (at or above
/// [`RESERVED_VERBS_START`]).
pub const fn is_reserved(verb: u32) -> bool {
    verb >= RESERVED_VERBS_START
}

/// Checks that an application may use `verb`, for example to register a handler for it.
///
/// ```
/// use internode::message::{check_verb, VerbError, RESERVED_VERBS_START};
///
/// assert_eq!(check_verb(7), Ok(()));
/// assert_eq!(
///     check_verb(RESERVED_VERBS_START),
///     Err(VerbError::Reserved { verb: RESERVED_VERBS_START })
/// );
/// ```
pub const fn check_verb(verb: u32) -> Result<(), VerbError> {
    if is_reserved(verb) {
        Err(VerbError::Reserved { verb })
    } else {
        Ok(())
    }
}

/// Caller error: a verb the application may not use, or not for this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum VerbError {
    /// The verb is at or above [`RESERVED_VERBS_START`].
    #[error(
        "verb {verb:#010x} is reserved for internode's control messages \
         (verbs from {start:#010x} up)",
        start = RESERVED_VERBS_START
    )]
    Reserved {
        /// The verb refused.
        verb: u32,
    },
    /// A handler is registered on this node for the verb under another Rust type
    /// (one-way messages and requests share the verbs). Nothing was registered; give
    /// one of the types another verb.
    #[error("verb {verb} is already taken by {by}")]
    Taken {
        /// The verb refused.
        verb: u32,
        /// The type that holds the verb ([`std::any::type_name`]).
        by: &'static str,
    },
}

/// Why a message could not be encoded. It fails that message only.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// postcard could not serialize the value (for example a `Serialize` impl
    /// returned an error, or a sequence did not know its length).
    #[cfg(feature = "serde")]
    #[error("serialization failed: {0}")]
    Serde(postcard::Error),
    /// The payload is larger than allowed (the maximum message size, or a codec's own
    /// limit).
    #[error("payload of {len} bytes is larger than the maximum of {max}")]
    TooLarge {
        /// The payload's length, or a lower bound on it.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A hand-written codec failed; make one with [`EncodeError::custom`].
    #[error(transparent)]
    Custom(Arc<dyn StdError + Send + Sync>),
}

impl EncodeError {
    /// Wraps the error of a hand-written codec: any error type, or a message
    /// (`EncodeError::custom("negative length")`).
    pub fn custom(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        EncodeError::Custom(Arc::from(error.into()))
    }
}

#[cfg(feature = "serde")]
impl From<postcard::Error> for EncodeError {
    fn from(error: postcard::Error) -> Self {
        EncodeError::Serde(error)
    }
}

/// Equal when the same failure: [`Custom`](EncodeError::Custom) errors are equal when
/// they share the same error (`Arc::ptr_eq`).
impl PartialEq for EncodeError {
    fn eq(&self, other: &Self) -> bool {
        use EncodeError::*;
        match (self, other) {
            #[cfg(feature = "serde")]
            (Serde(a), Serde(b)) => a == b,
            (TooLarge { len: l1, max: m1 }, TooLarge { len: l2, max: m2 }) => l1 == l2 && m1 == m2,
            (Custom(a), Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for EncodeError {}

/// Why a payload could not be decoded.
///
/// The payload came from a remote node; a decode error fails that one message (a
/// request is answered with [`FailureReason::DecodeFailed`]), never the connection.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// postcard could not deserialize the payload (other than by running out of
    /// bytes, which is [`Truncated`](DecodeError::Truncated)).
    #[cfg(feature = "serde")]
    #[error("deserialization failed: {0}")]
    Serde(postcard::Error),
    /// The payload ends before the value does.
    #[error("payload truncated")]
    Truncated,
    /// The value ends before the payload does.
    #[error("{extra} bytes left over after the value")]
    TrailingBytes {
        /// How many bytes are left over.
        extra: usize,
    },
    /// A length in the payload, or the payload itself, is larger than allowed.
    #[error("length {len} is larger than the maximum of {max}")]
    TooLarge {
        /// The length found.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A hand-written codec failed; make one with [`DecodeError::custom`].
    #[error(transparent)]
    Custom(Arc<dyn StdError + Send + Sync>),
}

impl DecodeError {
    /// Wraps the error of a hand-written codec: any error type, or a message
    /// (`DecodeError::custom("unknown tag 7")`).
    pub fn custom(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        DecodeError::Custom(Arc::from(error.into()))
    }
}

/// Maps postcard's "unexpected end" to [`DecodeError::Truncated`], anything else to
/// [`DecodeError::Serde`].
#[cfg(feature = "serde")]
impl From<postcard::Error> for DecodeError {
    fn from(error: postcard::Error) -> Self {
        match error {
            postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated,
            other => DecodeError::Serde(other),
        }
    }
}

/// Equal when the same failure: [`Custom`](DecodeError::Custom) errors are equal when
/// they share the same error (`Arc::ptr_eq`).
impl PartialEq for DecodeError {
    fn eq(&self, other: &Self) -> bool {
        use DecodeError::*;
        match (self, other) {
            #[cfg(feature = "serde")]
            (Serde(a), Serde(b)) => a == b,
            (Truncated, Truncated) => true,
            (TrailingBytes { extra: a }, TrailingBytes { extra: b }) => a == b,
            (TooLarge { len: l1, max: m1 }, TooLarge { len: l2, max: m2 }) => l1 == l2 && m1 == m2,
            (Custom(a), Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for DecodeError {}

/// What the exported macros need, under paths that work from any crate. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use bytes::{Bytes, BytesMut};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_below_the_reserved_range_are_accepted() {
        for verb in [0, 1, 7, 0xFFFE_FFFF, RESERVED_VERBS_START - 1] {
            assert_eq!(check_verb(verb), Ok(()), "{verb:#x}");
            assert!(!is_reserved(verb));
        }
    }

    #[test]
    fn reserved_verbs_are_refused() {
        for verb in [RESERVED_VERBS_START, 0xFFFF_0001, 0xFFFF_FFFE, u32::MAX] {
            assert_eq!(check_verb(verb), Err(VerbError::Reserved { verb }));
            assert!(is_reserved(verb));
        }
        assert_eq!(
            VerbError::Reserved { verb: u32::MAX }.to_string(),
            "verb 0xffffffff is reserved for internode's control messages \
             (verbs from 0xffff0000 up)"
        );
    }

    #[test]
    fn a_taken_verb_names_its_holder() {
        let taken = VerbError::Taken {
            verb: 7,
            by: "app::Put",
        };
        assert_eq!(taken.to_string(), "verb 7 is already taken by app::Put");
    }

    #[test]
    fn custom_errors_compare_by_identity_and_clone_equal() {
        let a = EncodeError::custom("bad");
        let b = EncodeError::custom("bad");
        assert_eq!(a, a.clone());
        assert_ne!(a, b);
        assert_eq!(a.to_string(), "bad");

        let d = DecodeError::custom(std::io::Error::other("short"));
        assert_eq!(d, d.clone());
        assert_ne!(d, DecodeError::Truncated);
        assert_eq!(d.to_string(), "short");
    }

    #[test]
    fn errors_display_their_numbers() {
        assert_eq!(
            EncodeError::TooLarge { len: 10, max: 4 }.to_string(),
            "payload of 10 bytes is larger than the maximum of 4"
        );
        assert_eq!(
            DecodeError::TrailingBytes { extra: 3 }.to_string(),
            "3 bytes left over after the value"
        );
        assert_eq!(
            DecodeError::TooLarge {
                len: 2000,
                max: 1024
            },
            DecodeError::TooLarge {
                len: 2000,
                max: 1024
            }
        );
    }
}
