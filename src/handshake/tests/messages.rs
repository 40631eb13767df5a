//! The messages' encodings: golden bytes written out by hand, field checks, and
//! round trips of arbitrary values.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

use bytes::BytesMut;
use proptest::prelude::*;

use crate::frame::Framing;
use crate::handshake::*;
use crate::{LinkKind, NodeId};

#[rustfmt::skip]
const GOLDEN_HELLO: [u8; 59] = [
    0x49, 0x4e, 0x4f, 0x44,                         // magic "INOD"
    0x01,                                           // type: Hello
    0x30, 0x00,                                     // body_len: 48
    0x01, 0x01,                                     // versions 1..=1
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // node id 0x0102030405060708
    0x04, 0x0a, 0x00, 0x00, 0x07, 0x58, 0x1b,       // IPv4 10.0.0.7, port 7000
    0x01,                                           // link kind: small
    0x01,                                           // framing: LZ4
    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // session id
    0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // resume: 5
    0x02, 0x00, b'o', b'k',                         // auth "ok"
    0x01,                                           // flags: lossless
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // attempt: 3
    0x9b, 0xdf, 0x97, 0x7e,                         // CRC32 (computed with zlib)
];

fn golden_hello() -> Hello {
    Hello {
        versions: VersionRange::single(1),
        node_id: NodeId(0x0102_0304_0506_0708),
        listen_addr: "10.0.0.7:7000".parse().unwrap(),
        link_kind: LinkKind::Small,
        framing: Framing::Lz4,
        session_id: 0x1122_3344_5566_7788,
        resume: 5,
        auth: AuthToken::new(&b"ok"[..]).unwrap(),
        lossless: true,
        attempt: 3,
    }
}

fn encoded(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut dst = BytesMut::new();
    f(&mut dst);
    dst.to_vec()
}

#[test]
fn hello_matches_golden_bytes() {
    let hello = golden_hello();
    assert_eq!(encoded(|d| hello.encode(d)), GOLDEN_HELLO);
    assert_eq!(Hello::decode(&GOLDEN_HELLO), Ok(hello));
}

#[test]
fn encode_appends_to_what_is_there() {
    let bytes = encoded(|d| {
        d.extend_from_slice(b"xy");
        golden_hello().encode(d);
    });
    assert_eq!(&bytes[..2], b"xy");
    assert_eq!(&bytes[2..], &GOLDEN_HELLO[..]);
}

#[test]
fn body_fields_are_checked() {
    let malformed = |what| Err(HandshakeError::Malformed { what });
    let mut body = GOLDEN_HELLO[7..55].to_vec();
    assert_eq!(Hello::decode_body(&body), Ok(golden_hello()));
    let older = Hello {
        lossless: false,
        attempt: 0,
        ..golden_hello()
    };
    assert_eq!(
        Hello::decode_body(&body[..39]),
        Ok(older.clone()),
        "a Hello without the flags and attempt has the defaults"
    );
    assert_eq!(
        Hello::decode_body(&body[..44]),
        Ok(older),
        "a cut-short tail too"
    );
    body.extend_from_slice(b"later fields");
    assert_eq!(
        Hello::decode_body(&body),
        Ok(golden_hello()),
        "appended fields are ignored"
    );
    assert_eq!(Hello::decode_body(&body[..16]), malformed("Hello port"));
    assert_eq!(Hello::decode_body(&body[..38]), malformed("Hello auth"));
    let mut bad = body.clone();
    bad[10] = 5;
    assert_eq!(
        Hello::decode_body(&bad),
        malformed("Hello address family is neither 4 nor 6")
    );
    let mut bad = body.clone();
    bad[17] = 3;
    assert_eq!(
        Hello::decode_body(&bad),
        malformed("Hello link kind is unknown")
    );
    let mut bad = body.clone();
    bad[18] = 3;
    assert_eq!(
        Hello::decode_body(&bad),
        Err(HandshakeError::UnsupportedFraming(3))
    );
    let mut bad = body.clone();
    bad[35..37].copy_from_slice(&1025u16.to_le_bytes());
    assert_eq!(
        Hello::decode_body(&bad),
        malformed("auth length above 1024")
    );
}

#[test]
fn whole_message_decoders_want_exactly_one_message() {
    assert_eq!(
        Hello::decode(&GOLDEN_HELLO[..58]),
        Err(HandshakeError::Truncated {
            received: 58,
            expected: 59
        })
    );
    let mut longer = GOLDEN_HELLO.to_vec();
    longer.push(0);
    let what = "bytes after the end of the message";
    assert_eq!(
        Hello::decode(&longer),
        Err(HandshakeError::Malformed { what })
    );
    let found = MessageType::Hello.code();
    let expected = "Accept";
    assert_eq!(
        Accept::decode(&GOLDEN_HELLO),
        Err(HandshakeError::UnexpectedMessage { expected, found })
    );
}

#[test]
fn reject_reasons_round_trip_including_unknown_codes() {
    for code in 0..=u8::MAX {
        assert_eq!(RejectReason::from_code(code).code(), code);
    }
    assert_eq!(RejectReason::from_code(5), RejectReason::ShuttingDown);
    assert_eq!(RejectReason::from_code(0), RejectReason::Unknown(0));
    assert!(RejectReason::ShuttingDown.is_retryable());
    assert!(!RejectReason::Unauthorized.is_retryable());
}

#[test]
fn auth_token_is_bounded() {
    assert!(AuthToken::new(vec![0; MAX_AUTH_LEN]).is_ok());
    assert_eq!(
        AuthToken::new(vec![0; MAX_AUTH_LEN + 1]),
        Err(AuthTooLong { len: 1025 })
    );
}

fn any_framing() -> impl Strategy<Value = Framing> {
    prop::sample::select(Framing::ALL.to_vec())
}

fn any_auth() -> impl Strategy<Value = AuthToken> {
    prop::collection::vec(any::<u8>(), 0..=MAX_AUTH_LEN).prop_map(|v| AuthToken::new(v).unwrap())
}

fn any_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        any::<([u8; 4], u16)>().prop_map(|(ip, port)| SocketAddrV4::new(ip.into(), port).into()),
        any::<([u8; 16], u16)>()
            .prop_map(|(ip, port)| SocketAddrV6::new(ip.into(), port, 0, 0).into()),
    ]
}

prop_compose! {
    fn any_hello()(
        versions in any::<(u8, u8)>(), node_id in any::<u64>(), listen_addr in any_addr(),
        link_kind in prop::sample::select(LinkKind::ALL.to_vec()), framing in any_framing(),
        session_id in any::<u64>(), resume in any::<u64>(), auth in any_auth(),
        lossless in any::<bool>(), attempt in any::<u64>(),
    ) -> Hello {
        let versions = VersionRange::new(versions.0, versions.1);
        Hello {
            versions, node_id: NodeId(node_id), listen_addr, link_kind, framing, session_id,
            resume, auth, lossless, attempt,
        }
    }
}

prop_compose! {
    fn any_accept()(
        version in any::<u8>(), framing in any_framing(), node_id in any::<u64>(),
        session_id in any::<u64>(), resume in any::<u64>(), auth in any_auth(),
    ) -> Accept {
        Accept { version, framing, node_id: NodeId(node_id), session_id, resume, auth }
    }
}

proptest! {
    #[test]
    fn hello_round_trips(hello in any_hello()) {
        let bytes = encoded(|d| hello.encode(d));
        prop_assert_eq!(bytes.len(), HEADER_LEN + hello.body_len() + TRAILER_LEN);
        prop_assert_eq!(Hello::decode(&bytes), Ok(hello));
    }

    #[test]
    fn accept_round_trips(accept in any_accept()) {
        let bytes = encoded(|d| accept.encode(d));
        prop_assert_eq!(bytes.len(), HEADER_LEN + accept.body_len() + TRAILER_LEN);
        prop_assert_eq!(Accept::decode(&bytes), Ok(accept));
    }

    #[test]
    fn reject_round_trips(reason in any::<u8>(), min in any::<u8>(), max in any::<u8>()) {
        let reject = Reject { reason: RejectReason::from_code(reason), versions: VersionRange::new(min, max) };
        let bytes = encoded(|d| reject.encode(d));
        prop_assert_eq!(bytes.len(), HEADER_LEN + Reject::BODY_LEN + TRAILER_LEN);
        prop_assert_eq!(Reject::decode(&bytes), Ok(reject));
    }
}
