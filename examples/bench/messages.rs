//! The message types of the internode implementations, in two encodings of the same
//! [`Body`] (a sequence number and filler):
//!
//! - [`serde_msgs`]: what an application writes, `#[derive(Serialize, Deserialize)]`
//!   types declared with `internode::message!` and `internode::request!`, encoded
//!   with postcard by the library. The filler is a `bytes::Bytes` (serde feature of
//!   `bytes`): postcard writes it as its length and its bytes in one piece, and
//!   decodes it with one copy out of the frame. Its encoding is the varint of the
//!   sequence number, the varint of the filler's length and the filler: 4 to 8
//!   bytes where the hand encoding has the 8 bytes of the sequence number, so a
//!   "64 B" message is 60 to 64 bytes of payload. This is the `internode`,
//!   `internode-lossy` and `internode-tls` implementations, the one the targets
//!   are about.
//! - [`hand_msgs`]: `Message` implemented by hand, the payload exactly the bytes the
//!   baselines carry (the little-endian sequence number, then the filler; decode
//!   slices the filler out of the frame without a copy): the `internode-hand`
//!   implementation, what the transport costs without serde.
//!
//! The two sets have their own verbs, so one receiving node registers both. Each set
//! has five types: [`MessageSet::Blob`] (one-way, the small link or, above 64 KiB,
//! the large one), [`MessageSet::UrgentBlob`] (one-way, urgent link),
//! [`MessageSet::Ping`] and [`MessageSet::UrgentPing`] (requests over the small and
//! the urgent link) and [`MessageSet::Pong`] (the response: the request's body).

use bytes::Bytes;
use internode::message::{Message, Request};
use serde::{Deserialize, Serialize};

use crate::payload;

/// What every message of this benchmark carries: a sequence number and filler.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Body {
    pub seq: u64,
    pub filler: Bytes,
}

impl Body {
    /// The size the receiver checks: that of the baselines' payload with the same
    /// sequence number and filler.
    pub fn len(&self) -> usize {
        payload::SEQ_BYTES + self.filler.len()
    }
}

/// A message type that carries a [`Body`].
pub trait Carrier: Message {
    fn wrap(body: Body) -> Self;
    fn body(&self) -> &Body;
    fn into_body(self) -> Body;
}

/// One encoding's five message types.
pub trait MessageSet: 'static {
    type Blob: Carrier;
    type UrgentBlob: Carrier;
    type Ping: Carrier + Request<Response = Self::Pong>;
    type UrgentPing: Carrier + Request<Response = Self::Pong>;
    type Pong: Carrier;
}

/// `Carrier` for newtypes of [`Body`].
macro_rules! carrier {
    ($($name:ident),*) => {$(
        impl $crate::messages::Carrier for $name {
            fn wrap(body: $crate::messages::Body) -> Self {
                $name(body)
            }
            fn body(&self) -> &$crate::messages::Body {
                &self.0
            }
            fn into_body(self) -> $crate::messages::Body {
                self.0
            }
        }
    )*};
}

/// The types as an application declares them: serde derives and internode's macros.
pub mod serde_msgs {
    use serde::{Deserialize, Serialize};

    use super::{Body, MessageSet};

    /// One-way; the small link, or the large one above 64 KiB.
    #[derive(Debug, Serialize, Deserialize)]
    pub struct Blob(pub Body);
    internode::message!(Blob, verb = 11);

    /// One-way over the urgent link (the idle-memory workload).
    #[derive(Debug, Serialize, Deserialize)]
    pub struct UrgentBlob(pub Body);
    internode::message!(UrgentBlob, verb = 12, urgent);

    /// A request over the small link, answered with a [`Pong`].
    #[derive(Debug, Serialize, Deserialize)]
    pub struct Ping(pub Body);
    internode::request!(Ping => Pong, verb = 13);

    /// A request over the urgent link, answered with a [`Pong`].
    #[derive(Debug, Serialize, Deserialize)]
    pub struct UrgentPing(pub Body);
    internode::request!(UrgentPing => Pong, verb = 14, urgent);

    /// The answer to a request: the request's body.
    #[derive(Debug, Serialize, Deserialize)]
    pub struct Pong(pub Body);
    internode::message!(Pong, verb = 15);

    carrier!(Blob, UrgentBlob, Ping, UrgentPing, Pong);

    /// The serde message set.
    pub struct Serde;

    impl MessageSet for Serde {
        type Blob = Blob;
        type UrgentBlob = UrgentBlob;
        type Ping = Ping;
        type UrgentPing = UrgentPing;
        type Pong = Pong;
    }
}

/// The types with a hand-written `Message` impl: exactly the baselines' payload.
pub mod hand_msgs {
    use bytes::{BufMut, Bytes, BytesMut};
    use internode::message::{DecodeError, EncodeError, Message, Request};

    use super::{Body, MessageSet};
    use crate::payload;

    fn encode(body: &Body, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.reserve(body.len());
        dst.put_u64_le(body.seq);
        dst.extend_from_slice(&body.filler);
        Ok(())
    }

    fn decode(mut payload: Bytes) -> Result<Body, DecodeError> {
        let seq = payload::seq_of(&payload).ok_or(DecodeError::Truncated)?;
        Ok(Body {
            seq,
            filler: payload.split_off(payload::SEQ_BYTES),
        })
    }

    /// A message type whose payload is a hand-encoded [`Body`].
    macro_rules! hand_message {
        ($(#[$doc:meta])* $name:ident, verb = $verb:expr, urgent = $urgent:expr) => {
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name(pub Body);

            impl Message for $name {
                const VERB: u32 = $verb;
                const URGENT: bool = $urgent;

                fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
                    encode(&self.0, dst)
                }

                fn decode(payload: Bytes) -> Result<Self, DecodeError> {
                    decode(payload).map($name)
                }
            }
        };
    }

    hand_message!(
        /// One-way; the small link, or the large one above 64 KiB.
        Blob, verb = 1, urgent = false
    );
    hand_message!(
        /// One-way over the urgent link.
        UrgentBlob, verb = 2, urgent = true
    );
    hand_message!(
        /// A request over the small link, answered with a [`Pong`].
        Ping, verb = 3, urgent = false
    );
    hand_message!(
        /// A request over the urgent link, answered with a [`Pong`].
        UrgentPing, verb = 4, urgent = true
    );
    hand_message!(
        /// The answer to a request: the request's body.
        Pong, verb = 5, urgent = false
    );

    impl Request for Ping {
        type Response = Pong;
    }

    impl Request for UrgentPing {
        type Response = Pong;
    }

    carrier!(Blob, UrgentBlob, Ping, UrgentPing, Pong);

    /// The hand-encoded message set.
    pub struct Hand;

    impl MessageSet for Hand {
        type Blob = Blob;
        type UrgentBlob = UrgentBlob;
        type Ping = Ping;
        type UrgentPing = UrgentPing;
        type Pong = Pong;
    }
}
