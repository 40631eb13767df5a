//! `message!` and `request!`: one line to make a serde type a message.
//!
//! The macros are exported at the crate root and name everything through `$crate::`,
//! so they work from any crate. Without the `serde` feature they expand to a
//! `compile_error!` that says so.

/// Makes a `#[derive(Serialize, Deserialize)]` type a [`Message`](crate::message::Message),
/// encoded with postcard.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use internode::message::Message;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Gossip {
///     generation: u64,
///     members: Vec<String>,
/// }
/// internode::message!(Gossip, verb = 20);
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Heartbeat(u64);
/// internode::message!(Heartbeat, verb = 21, urgent);
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Hint(Vec<u8>);
/// internode::message!(Hint, verb = 22, expires_after_ms = 500);
///
/// assert_eq!(Hint::EXPIRES_AFTER, Some(std::time::Duration::from_millis(500)));
/// assert_eq!(Gossip::EXPIRES_AFTER, None);
/// assert!(!Gossip::URGENT);
/// assert!(Heartbeat::URGENT);
/// # }
/// ```
///
/// `urgent` sets [`Message::URGENT`](crate::message::Message::URGENT), and
/// `expires_after_ms = N` (after the verb and `urgent`, if any) sets
/// [`Message::EXPIRES_AFTER`](crate::message::Message::EXPIRES_AFTER): messages of the
/// type not written within N ms of their send fail with `Expired`. The verb is
/// any constant `u32` expression; a verb at or above
/// [`RESERVED_VERBS_START`](crate::message::RESERVED_VERBS_START) does not compile.
/// Needs the `serde` feature.
#[cfg(feature = "serde")]
#[macro_export]
macro_rules! message {
    ($ty:ty, verb = $verb:expr, urgent, expires_after_ms = $ms:expr $(,)?) => {
        $crate::__message_impl!(
            $ty,
            $verb,
            true,
            ::core::option::Option::Some(::core::time::Duration::from_millis($ms))
        );
    };
    ($ty:ty, verb = $verb:expr, expires_after_ms = $ms:expr $(,)?) => {
        $crate::__message_impl!(
            $ty,
            $verb,
            false,
            ::core::option::Option::Some(::core::time::Duration::from_millis($ms))
        );
    };
    ($ty:ty, verb = $verb:expr, urgent $(,)?) => {
        $crate::__message_impl!($ty, $verb, true, ::core::option::Option::None);
    };
    ($ty:ty, verb = $verb:expr $(,)?) => {
        $crate::__message_impl!($ty, $verb, false, ::core::option::Option::None);
    };
}

/// Makes a `#[derive(Serialize, Deserialize)]` type a [`Request`](crate::message::Request)
/// whose response is another message, encoded with postcard.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use internode::message::{Message, Request};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Read {
///     key: String,
/// }
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct ReadResult(Option<Vec<u8>>);
///
/// internode::request!(Read => ReadResult, verb = 30);
/// internode::message!(ReadResult, verb = 31);
///
/// fn response_verb<R: Request>() -> u32 {
///     R::Response::VERB
/// }
/// assert_eq!(response_verb::<Read>(), 31);
/// # }
/// ```
///
/// The request type gets its [`Message`](crate::message::Message) impl from this
/// macro (with an optional `urgent` after the verb, as in [`message!`](crate::message!));
/// the response type is declared separately. Needs the `serde` feature.
#[cfg(feature = "serde")]
#[macro_export]
macro_rules! request {
    ($req:ty => $resp:ty, verb = $verb:expr, urgent $(,)?) => {
        $crate::__message_impl!($req, $verb, true, ::core::option::Option::None);
        $crate::__request_impl!($req => $resp);
    };
    ($req:ty => $resp:ty, verb = $verb:expr $(,)?) => {
        $crate::__message_impl!($req, $verb, false, ::core::option::Option::None);
        $crate::__request_impl!($req => $resp);
    };
}

/// Without the `serde` feature: a compile error that says what is missing.
#[cfg(not(feature = "serde"))]
#[macro_export]
macro_rules! message {
    ($($input:tt)*) => {
        ::core::compile_error!("internode::message! needs the `serde` feature of internode");
    };
}

/// Without the `serde` feature: a compile error that says what is missing.
#[cfg(not(feature = "serde"))]
#[macro_export]
macro_rules! request {
    ($($input:tt)*) => {
        ::core::compile_error!("internode::request! needs the `serde` feature of internode");
    };
}

/// Implements `Message` for `$ty` by postcard. Not public API.
#[cfg(feature = "serde")]
#[doc(hidden)]
#[macro_export]
macro_rules! __message_impl {
    ($ty:ty, $verb:expr, $urgent:literal, $expiry:expr) => {
        impl $crate::message::Message for $ty {
            const VERB: u32 = $verb;
            const URGENT: bool = $urgent;
            const EXPIRES_AFTER: ::core::option::Option<::core::time::Duration> = $expiry;

            fn encode(
                &self,
                dst: &mut $crate::message::__private::BytesMut,
            ) -> ::core::result::Result<(), $crate::message::EncodeError> {
                $crate::message::encode_serde(self, dst)
            }

            fn decode(
                payload: $crate::message::__private::Bytes,
            ) -> ::core::result::Result<Self, $crate::message::DecodeError> {
                $crate::message::decode_serde(payload)
            }
        }

        const _: () = ::core::assert!(
            !$crate::message::is_reserved(<$ty as $crate::message::Message>::VERB),
            ::core::concat!(
                "the verb of ",
                ::core::stringify!($ty),
                " is reserved for internode's control messages (at or above 0xFFFF0000)"
            ),
        );
    };
}

/// Implements `Request` for `$req`. Not public API.
#[cfg(feature = "serde")]
#[doc(hidden)]
#[macro_export]
macro_rules! __request_impl {
    ($req:ty => $resp:ty) => {
        impl $crate::message::Request for $req {
            type Response = $resp;
        }
    };
}
