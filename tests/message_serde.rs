//! `internode::message!` and `internode::request!` used from outside the crate, on
//! serde types: round trips, typed errors, garbage never panicking, and the request's
//! response type checked at compile time.

#![cfg(feature = "serde")]

use std::collections::BTreeMap;
use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use internode::message::{
    check_verb, decode_serde, DecodeError, EncodeError, Message, Request, RESERVED_VERBS_START,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    host: String,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Status {
    Up,
    Down {
        since_ms: u64,
        reason: Option<String>,
    },
    Leaving(u32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Member {
    id: u64,
    addresses: Vec<Address>,
    status: Status,
    tags: BTreeMap<String, String>,
    weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Gossip {
    generation: u64,
    members: Vec<Member>,
    note: Option<String>,
    raw: Vec<u8>,
}
internode::message!(Gossip, verb = 1);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Control {
    Ping { sent_at_ms: u64 },
    Join(Member),
    Leave,
    Batch(Vec<Control>),
}
internode::message!(Control, verb = 2, urgent);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;
internode::message!(Unit, verb = 3,);

/// A generic type, declared for one instantiation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tagged<T> {
    tag: String,
    value: T,
}
internode::message!(Tagged<Vec<i64>>, verb = 4);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Read {
    keys: Vec<String>,
    consistency: Option<u8>,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ReadResponse {
    Found(Vec<(String, Option<Vec<u8>>)>),
    NotOwner { owner: Address },
}
internode::request!(Read => ReadResponse, verb = 10);
internode::message!(ReadResponse, verb = 11);

/// Verbs may be constant expressions.
mod verbs {
    pub const BASE: u32 = 100;
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Probe(u32);
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ProbeAck(u32);
internode::request!(Probe => ProbeAck, verb = verbs::BASE + 1, urgent);
internode::message!(ProbeAck, verb = verbs::BASE + 2, urgent);

/// Compiles only if `R::Response` is exactly `Expected`.
fn assert_response<R, Expected>()
where
    R: Request<Response = Expected>,
    Expected: Message,
{
}

fn encode<M: Message>(message: &M) -> Bytes {
    let mut dst = BytesMut::new();
    message.encode(&mut dst).expect("encodes");
    dst.freeze()
}

fn round_trip<M: Message + PartialEq + Debug>(message: &M) {
    let payload = encode(message);
    assert_eq!(&M::decode(payload).expect("decodes"), message);
}

fn member(id: u64) -> Member {
    Member {
        id,
        addresses: vec![
            Address {
                host: "10.0.0.1".into(),
                port: 7000,
            },
            Address {
                host: "node-ü.example".into(),
                port: u16::MAX,
            },
        ],
        status: Status::Down {
            since_ms: 1_700_000_000_000,
            reason: Some("restarting".into()),
        },
        tags: [("dc".to_owned(), "eu-1".to_owned())].into_iter().collect(),
        weight: 0.25,
    }
}

fn gossip() -> Gossip {
    Gossip {
        generation: u64::MAX,
        members: vec![member(1), member(2)],
        note: None,
        raw: (0..=255).collect(),
    }
}

#[test]
fn verbs_and_urgency_come_from_the_declaration() {
    assert_eq!((Gossip::VERB, Gossip::URGENT), (1, false));
    assert_eq!((Control::VERB, Control::URGENT), (2, true));
    assert_eq!((Unit::VERB, Unit::URGENT), (3, false));
    assert_eq!(<Tagged<Vec<i64>>>::VERB, 4);
    assert_eq!((Read::VERB, Read::URGENT), (10, false));
    assert_eq!((ReadResponse::VERB, ReadResponse::URGENT), (11, false));
    assert_eq!((Probe::VERB, Probe::URGENT), (101, true));
    assert_eq!(ProbeAck::VERB, 102);
    for verb in [Gossip::VERB, Control::VERB, Read::VERB, Probe::VERB] {
        assert_eq!(check_verb(verb), Ok(()));
    }
    assert!(check_verb(RESERVED_VERBS_START).is_err());
}

#[test]
fn request_response_types_are_the_declared_ones() {
    assert_response::<Read, ReadResponse>();
    assert_response::<Probe, ProbeAck>();

    fn response_verb<R: Request>() -> u32 {
        <R::Response as Message>::VERB
    }
    assert_eq!(response_verb::<Read>(), ReadResponse::VERB);
    assert_eq!(response_verb::<Probe>(), ProbeAck::VERB);
}

#[test]
fn structs_enums_and_nested_types_round_trip() {
    round_trip(&gossip());
    round_trip(&Gossip {
        generation: 0,
        members: vec![],
        note: Some(String::new()),
        raw: vec![],
    });
    round_trip(&Control::Ping { sent_at_ms: 5 });
    round_trip(&Control::Join(member(3)));
    round_trip(&Control::Leave);
    round_trip(&Control::Batch(vec![
        Control::Leave,
        Control::Batch(vec![Control::Ping { sent_at_ms: 0 }]),
    ]));
    round_trip(&Unit);
    round_trip(&Tagged {
        tag: "t".into(),
        value: vec![i64::MIN, -1, 0, i64::MAX],
    });
    round_trip(&Read {
        keys: vec!["a".into(), "ключ".into()],
        consistency: Some(2),
    });
    round_trip(&ReadResponse::Found(vec![
        ("a".into(), Some(vec![1, 2])),
        ("b".into(), None),
    ]));
    round_trip(&ReadResponse::NotOwner {
        owner: Address {
            host: "h".into(),
            port: 1,
        },
    });
    round_trip(&Probe(7));
}

#[test]
fn encode_appends_to_what_is_already_there() {
    let mut dst = BytesMut::from(&b"prefix"[..]);
    Probe(300).encode(&mut dst).unwrap();
    assert_eq!(&dst[..], b"prefix\xAC\x02"); // 300 as a postcard varint
    assert_eq!(Probe::decode(dst.split_off(6).freeze()), Ok(Probe(300)));
    assert_eq!(Unit::decode(Bytes::new()), Ok(Unit));
    assert_eq!(encode(&Unit).len(), 0);
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut payload = BytesMut::new();
    gossip().encode(&mut payload).unwrap();
    payload.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        Gossip::decode(payload.freeze()),
        Err(DecodeError::TrailingBytes { extra: 3 })
    );
    assert_eq!(
        Unit::decode(Bytes::from_static(b"x")),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
}

#[test]
fn truncated_payloads_are_rejected() {
    let payload = encode(&gossip());
    for len in 0..payload.len() {
        assert_eq!(
            Gossip::decode(payload.slice(..len)),
            Err(DecodeError::Truncated),
            "cut at {len} of {}",
            payload.len()
        );
    }
}

#[test]
fn invalid_payloads_give_serde_errors() {
    // Variant 9 of Control does not exist: serde's derive reports it, through
    // postcard's catch-all for errors raised by serde itself.
    assert_eq!(
        Control::decode(Bytes::from_static(&[9])),
        Err(DecodeError::Serde(postcard::Error::SerdeDeCustom))
    );
    // An Option tag of 2.
    assert_eq!(
        Read::decode(Bytes::from_static(&[0, 2])),
        Err(DecodeError::Serde(postcard::Error::DeserializeBadOption))
    );
    // A string that is not UTF-8.
    assert_eq!(
        Read::decode(Bytes::from_static(&[1, 1, 0xFF, 0])),
        Err(DecodeError::Serde(postcard::Error::DeserializeBadUtf8))
    );
    assert_eq!(
        decode_serde::<u64>(Bytes::from_static(&[0xFF; 11])),
        Err(DecodeError::Serde(postcard::Error::DeserializeBadVarint))
    );
}

#[test]
fn huge_declared_lengths_fail_without_allocating_them() {
    // A Vec<Member> claiming u32::MAX elements in a 6-byte payload.
    let payload = Bytes::from_static(&[0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
    assert_eq!(Gossip::decode(payload), Err(DecodeError::Truncated));
}

/// A type whose serialization fails, declared with the macro like any other.
#[derive(Debug, Deserialize)]
struct Unserializable;
impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refused"))
    }
}
internode::message!(Unserializable, verb = 50);

#[test]
fn serialization_errors_fail_the_message_and_leave_the_buffer_alone() {
    let mut dst = BytesMut::from(&b"earlier message"[..]);
    let error = Unserializable.encode(&mut dst).unwrap_err();
    assert_eq!(error, EncodeError::Serde(postcard::Error::SerdeSerCustom));
    assert_eq!(error.clone(), error);
    assert!(error.to_string().starts_with("serialization failed: "));
    assert_eq!(&dst[..], b"earlier message");
}

fn decode_never_panics<M: Message + Debug>(bytes: &[u8]) {
    // Ok or Err, either is fine: what matters is no panic and no huge allocation.
    let _ = M::decode(Bytes::copy_from_slice(bytes));
}

fn arb_control() -> impl Strategy<Value = Control> {
    let leaf = prop_oneof![
        any::<u64>().prop_map(|sent_at_ms| Control::Ping { sent_at_ms }),
        Just(Control::Leave),
        (any::<u64>(), ".{0,20}", any::<f64>()).prop_map(|(id, host, weight)| {
            Control::Join(Member {
                id,
                addresses: vec![Address { host, port: 1 }],
                status: Status::Leaving(id as u32),
                tags: BTreeMap::new(),
                weight,
            })
        }),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(Control::Batch)
    })
}

/// A message whose data is taken from the payload without a copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Chunk {
    offset: u64,
    #[serde(with = "internode::message::shared_bytes")]
    data: Bytes,
}
internode::message!(Chunk, verb = 1310);

#[test]
fn a_shared_bytes_field_of_a_message_is_a_slice_of_its_payload() {
    let chunk = Chunk {
        offset: 1 << 40,
        data: Bytes::from(vec![7u8; 4096]),
    };
    let payload = encode(&chunk);
    let decoded = Chunk::decode(payload.clone()).unwrap();
    assert_eq!(decoded, chunk);
    assert!(payload.as_ptr_range().contains(&decoded.data.as_ptr()));
    // The same bytes as the field as a `Vec<u8>`.
    #[derive(Serialize)]
    struct AsVec(u64, Vec<u8>);
    let mut as_vec = BytesMut::new();
    internode::message::encode_serde(&AsVec(1 << 40, vec![7u8; 4096]), &mut as_vec).unwrap();
    assert_eq!(payload, as_vec.freeze());
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_never_panics::<Gossip>(&bytes);
        decode_never_panics::<Control>(&bytes);
        decode_never_panics::<Tagged<Vec<i64>>>(&bytes);
        decode_never_panics::<Read>(&bytes);
        decode_never_panics::<ReadResponse>(&bytes);
        decode_never_panics::<Probe>(&bytes);
        decode_never_panics::<Unit>(&bytes);
    }

    #[test]
    fn mutated_valid_payloads_never_panic(
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut payload = encode(&gossip()).to_vec();
        let at = index.index(payload.len());
        payload[at] = byte;
        payload.truncate(cut.index(payload.len() + 1));
        decode_never_panics::<Gossip>(&payload);
    }

    #[test]
    fn arbitrary_values_round_trip(
        control in arb_control(),
        keys in proptest::collection::vec(".{0,8}", 0..5),
        consistency in any::<Option<u8>>(),
    ) {
        // NaN != NaN: compare the re-encoded bytes instead of the values.
        let payload = encode(&control);
        let decoded = Control::decode(payload.clone()).unwrap();
        prop_assert_eq!(encode(&decoded), payload);

        let read = Read { keys, consistency };
        prop_assert_eq!(Read::decode(encode(&read)), Ok(read));
    }
}
