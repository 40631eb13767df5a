//! Fuzz harness for the handshake: the state machines and the message decoders.

use std::time::{Duration, Instant};

use crate::frame::Framing;
use crate::handshake::{
    Accept, AcceptParams, Acceptor, AcceptorConfig, Challenge, ClusterKey, Established,
    HandshakeError, Hello, Initiator, Proof, Reject, HEADER_LEN, MAGIC, MAX_HANDSHAKE_BODY,
    MAX_HANDSHAKE_MESSAGE, TRAILER_LEN,
};
use crate::{LinkKind, NodeId};

/// Feeds arbitrary bytes to the handshake; panics only when an invariant breaks.
///
/// Input layout: byte 0 and byte 1 give the sizes of the pieces the rest is cut into
/// (alternately `1 + byte % 64`, so sizes from 1 to 64); bit 7 of byte 0, when set,
/// makes the harness write the correct CRC32 over the message at the start of the rest,
/// so that the fuzzer gets past the checksum into the body decoders; bit 6 of byte 0,
/// when set, makes the authenticated machines of step 2 start from an honest peer's
/// first message (see there); bit 5 of byte 0, when set, binds every machine of step
/// 2 (the honest peers' too) to one TLS channel binding. The rest is then
///
/// 1. fed in those pieces to an [`Acceptor`] (node 1, all versions and framings), which
///    is accepted when a Hello comes out, and to an [`Initiator`] (node 2); each must
///    end in a result or an error, stay failed or complete after it, and report the
///    end of the stream and the deadline without panicking;
/// 2. the same with a cluster secret ([`Acceptor::with_auth`], [`Initiator::with_auth`]).
///    With bit 6 set, the acceptor has first read an honest initiator's Hello (so the
///    input is taken as the Proof) and the initiator an honest acceptor's Challenge (so
///    the input is taken as the Accept). Whatever the input, the acceptor never gives
///    out a Hello (the input cannot carry a valid proof), and the initiator is never
///    established without a verified Challenge;
/// 3. decoded as a whole [`Hello`], [`Accept`], [`Reject`], [`Challenge`] and
///    [`Proof`]: a message that decodes must decode to the same value after being
///    encoded again.
pub fn handshake(data: &[u8]) {
    let (sizes, rest) = match data {
        [a, b, rest @ ..] => ([1 + usize::from(*a % 64), 1 + usize::from(*b % 64)], rest),
        _ => return,
    };
    let mut input = rest.to_vec();
    if data.first().is_some_and(|a| a & 0x80 != 0) {
        fix_checksum(&mut input);
    }
    let helped = data.first().is_some_and(|a| a & 0x40 != 0);
    let bound = data.first().is_some_and(|a| a & 0x20 != 0);

    // The one clock read: any instant will do, as only durations from it matter.
    let start = Instant::now();
    let timeout = Duration::from_secs(10);

    let mut acceptor = Acceptor::new(AcceptorConfig::new(NodeId(1)), start, timeout);
    let acceptor_done = drive(&input, sizes, start, MAX_HANDSHAKE_MESSAGE, |piece, now| {
        let hello = acceptor.handle_input(piece, now)?;
        let Some(hello) = hello else { return Ok(None) };
        assert_ne!(hello.node_id, NodeId(1), "a self-connect passed the checks");
        let established = acceptor
            .accept(AcceptParams::default())
            .expect("accept refused right after a Hello");
        assert!(acceptor.poll_transmit().is_some(), "accept queued nothing");
        Ok(Some(established))
    });
    check_after_end(&acceptor_done, &input, |piece| {
        acceptor.handle_input(piece, start).err()
    });
    let _ = acceptor.handle_eof();
    assert_eq!(
        acceptor.handle_timeout(start + timeout),
        Ok(()),
        "a finished acceptor timed out"
    );

    let hello = Hello::new(
        NodeId(2),
        ([127, 0, 0, 1], 7000).into(),
        LinkKind::Small,
        Framing::Crc,
    );
    let mut initiator = Initiator::new(hello.clone(), start, timeout);
    assert!(
        initiator.poll_transmit().is_some(),
        "the Hello was not queued"
    );
    let initiator_done = drive(&input, sizes, start, MAX_HANDSHAKE_MESSAGE, |piece, now| {
        initiator.handle_input(piece, now)
    });
    check_after_end(&initiator_done, &input, |piece| {
        initiator.handle_input(piece, start).err()
    });
    if let Some(Err(error)) = initiator_done {
        let _ = initiator.retry_version(&error);
    }
    let _ = initiator.handle_eof();
    assert_eq!(
        initiator.handle_timeout(start + timeout),
        Ok(()),
        "a finished initiator timed out"
    );

    authenticated(&input, sizes, [helped, bound], start, timeout, &hello);

    survives(&input, Hello::decode, Hello::encode, "Hello");
    survives(&input, Accept::decode, Accept::encode, "Accept");
    survives(&input, Reject::decode, Reject::encode, "Reject");
    survives(&input, Challenge::decode, Challenge::encode, "Challenge");
    survives(&input, Proof::decode, Proof::encode, "Proof");
}

/// Step 2 of [`handshake`]: the machines with a cluster secret.
fn authenticated(
    input: &[u8],
    sizes: [usize; 2],
    [helped, bound]: [bool; 2],
    start: Instant,
    timeout: Duration,
    hello: &Hello,
) {
    let key = ClusterKey::derive(b"fuzz secret", "fuzz").expect("a valid key");
    let config = AcceptorConfig::new(NodeId(1));
    let (initiator_nonce, acceptor_nonce) = ([0x11; 32], [0xaa; 32]);
    let binding = bound.then_some([0x5c; 32]);
    let acceptor_with = |nonce| {
        let acceptor = Acceptor::with_auth(config, &key, nonce, start, timeout);
        match binding {
            Some(b) => acceptor.bind_to_channel(b),
            None => acceptor,
        }
    };
    let initiator_with = |nonce| {
        let initiator = Initiator::with_auth(hello.clone(), &key, nonce, start, timeout);
        match binding {
            Some(b) => initiator.bind_to_channel(b),
            None => initiator,
        }
    };

    let mut acceptor = acceptor_with(acceptor_nonce);
    if helped {
        let mut honest = initiator_with(initiator_nonce);
        let hello_bytes = honest.poll_transmit().expect("the Hello is queued");
        assert_eq!(acceptor.handle_input(&hello_bytes, start), Ok(None));
        let challenge = acceptor.poll_transmit().expect("the Challenge is queued");
        assert_eq!(honest.handle_input(&challenge, start), Ok(None));
        assert!(
            honest.poll_transmit().is_some(),
            "an honest Challenge failed"
        );
    }
    let acceptor_done = drive(input, sizes, start, MAX_HANDSHAKE_MESSAGE, |piece, now| {
        let hello = acceptor.handle_input(piece, now)?;
        assert!(hello.is_none(), "a Hello came out without a valid Proof");
        Ok(None)
    });
    check_after_end(&acceptor_done, input, |piece| {
        acceptor.handle_input(piece, start).err()
    });
    let _ = acceptor.handle_eof();
    assert_eq!(acceptor.handle_timeout(start + timeout), Ok(()));

    let mut initiator = initiator_with(initiator_nonce);
    let hello_bytes = initiator.poll_transmit().expect("the Hello is queued");
    if helped {
        let mut honest = acceptor_with(acceptor_nonce);
        assert_eq!(honest.handle_input(&hello_bytes, start), Ok(None));
        let challenge = honest.poll_transmit().expect("the Challenge is queued");
        assert_eq!(initiator.handle_input(&challenge, start), Ok(None));
        let proof = initiator
            .poll_transmit()
            .expect("an honest Challenge failed");
        assert!(
            matches!(honest.handle_input(&proof, start), Ok(Some(_))),
            "an honest Proof failed"
        );
    }
    let initiator_done = drive(input, sizes, start, MAX_HANDSHAKE_MESSAGE, |piece, now| {
        initiator.handle_input(piece, now)
    });
    if !helped {
        assert!(
            !matches!(initiator_done, Some(Ok(_))),
            "established without a verified Challenge"
        );
        assert_eq!(
            initiator.poll_transmit(),
            None,
            "a Proof for a forged Challenge"
        );
    }
    check_after_end(&initiator_done, input, |piece| {
        initiator.handle_input(piece, start).err()
    });
    let _ = initiator.handle_eof();
    assert_eq!(initiator.handle_timeout(start + timeout), Ok(()));
}

/// Feeds `input` to `step` in pieces of the alternating `sizes`, a millisecond apart,
/// until it returns a result or an error. Checks that an [`Established`] keeps exactly
/// the bytes after the message as leftover, and that no more than `max_taken` bytes (a
/// whole message) were taken before it. Returns `None` if the input ran out first.
fn drive(
    input: &[u8],
    sizes: [usize; 2],
    start: Instant,
    max_taken: usize,
    mut step: impl FnMut(&[u8], Instant) -> Result<Option<Established>, HandshakeError>,
) -> Option<Result<Established, HandshakeError>> {
    let mut offset = 0;
    let mut now = start;
    for size in sizes.iter().cycle() {
        let rest = input.get(offset..).unwrap_or_default();
        let piece = rest.get(..*size).unwrap_or(rest);
        if piece.is_empty() {
            return None;
        }
        match step(piece, now) {
            Ok(None) => {}
            Ok(Some(established)) => {
                let leftover = &established.leftover;
                assert!(
                    piece.ends_with(leftover),
                    "leftover is not the end of the last piece"
                );
                let taken = offset + piece.len() - leftover.len();
                assert!(
                    (HEADER_LEN + TRAILER_LEN..=max_taken).contains(&taken),
                    "took {taken} bytes for one message"
                );
                return Some(Ok(established));
            }
            Err(error) => return Some(Err(error)),
        }
        offset += piece.len();
        now += Duration::from_millis(1);
    }
    None
}

/// After a result or an error, input must be refused.
fn check_after_end(
    done: &Option<Result<Established, HandshakeError>>,
    input: &[u8],
    mut feed: impl FnMut(&[u8]) -> Option<HandshakeError>,
) {
    if done.is_some() {
        let error = feed(input);
        assert!(
            matches!(error, Some(HandshakeError::OutOfOrder { .. })),
            "input after the end gave {error:?}"
        );
    }
}

/// Writes the right CRC32 after the message that starts `input`, if its header is
/// there and the message fits.
fn fix_checksum(input: &mut [u8]) {
    let body_len = match input.get(MAGIC.len() + 1..HEADER_LEN) {
        Some(&[low, high]) => usize::from(u16::from_le_bytes([low, high])),
        _ => return,
    };
    if body_len > MAX_HANDSHAKE_BODY {
        return;
    }
    let crc_at = HEADER_LEN + body_len;
    let Some(covered) = input.get(MAGIC.len()..crc_at) else {
        return;
    };
    let crc = crc32fast::hash(covered).to_le_bytes();
    if let Some(slot) = input.get_mut(crc_at..crc_at + TRAILER_LEN) {
        slot.copy_from_slice(&crc);
    }
}

/// A message that decodes from `input` decodes the same after re-encoding.
fn survives<T: PartialEq + std::fmt::Debug, E: PartialEq + std::fmt::Debug>(
    input: &[u8],
    decode: fn(&[u8]) -> Result<T, E>,
    encode: fn(&T, &mut bytes::BytesMut),
    what: &str,
) {
    if let Ok(message) = decode(input) {
        let mut again = bytes::BytesMut::new();
        encode(&message, &mut again);
        assert_eq!(
            decode(&again),
            Ok(message),
            "{what} did not survive re-encoding"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use proptest::prelude::*;

    fn hello_bytes() -> Vec<u8> {
        let hello = Hello::new(
            NodeId(9),
            ([10, 0, 0, 1], 9).into(),
            LinkKind::Large,
            Framing::Lz4,
        );
        let mut buf = BytesMut::new();
        hello.encode(&mut buf);
        buf.to_vec()
    }

    #[test]
    fn short_and_empty_inputs() {
        handshake(&[]);
        handshake(&[0]);
        handshake(&[0, 0]);
    }

    #[test]
    fn valid_messages_with_leftover_in_many_cuts() {
        let accept = Accept {
            version: 1,
            framing: Framing::Crc,
            node_id: NodeId(1),
            session_id: 3,
            resume: 4,
            auth: crate::handshake::AuthToken::empty(),
        };
        let mut accept_bytes = BytesMut::new();
        accept.encode(&mut accept_bytes);
        for message in [hello_bytes(), accept_bytes.to_vec()] {
            for a in 0..64u8 {
                let mut data = vec![a, a.wrapping_mul(7)];
                data.extend_from_slice(&message);
                data.extend_from_slice(b"frames");
                handshake(&data);
            }
        }
    }

    #[test]
    fn authenticated_messages_in_many_cuts_with_and_without_help() {
        let key = ClusterKey::derive(b"fuzz secret", "fuzz").unwrap();
        let hello = Hello::new(
            NodeId(2),
            ([127, 0, 0, 1], 7000).into(),
            LinkKind::Small,
            Framing::Crc,
        );
        let mut i = Initiator::with_auth(
            hello,
            &key,
            [0x11; 32],
            Instant::now(),
            Duration::from_secs(1),
        );
        let hello_bytes = i.poll_transmit().unwrap();
        let challenge = Challenge {
            proof: [5; 32],
            node_id: NodeId(1),
            nonce: [6; 32],
        };
        let mut challenge_bytes = BytesMut::new();
        challenge.encode(&mut challenge_bytes);
        let mut proof_bytes = BytesMut::new();
        Proof { proof: [7; 32] }.encode(&mut proof_bytes);
        let mut accept_bytes = BytesMut::new();
        Accept {
            version: 1,
            framing: Framing::Crc,
            node_id: NodeId(1),
            session_id: 3,
            resume: 4,
            auth: crate::handshake::AuthToken::empty(),
        }
        .encode(&mut accept_bytes);
        for message in [
            hello_bytes.to_vec(),
            challenge_bytes.to_vec(),
            proof_bytes.to_vec(),
            accept_bytes.to_vec(),
        ] {
            for a in 0..128u8 {
                let mut data = vec![a, a.wrapping_mul(7)];
                data.extend_from_slice(&message);
                data.extend_from_slice(b"frames");
                handshake(&data);
            }
        }
    }

    #[test]
    fn checksum_fixing_reaches_the_body_decoders() {
        let mut data = vec![0x80, 0];
        let mut message = hello_bytes();
        let at = message.len() - 5;
        message[at] ^= 0xff; // the high byte of the auth length: now above 1024
        data.extend(message);
        handshake(&data);
    }

    proptest! {
        #[test]
        fn never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
            handshake(&data);
        }

        #[test]
        fn never_panics_on_mutated_hellos(
            cut in any::<[u8; 2]>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            let mut message = hello_bytes();
            for (at, value) in flips {
                let i = at.index(message.len());
                message[i] = value;
            }
            let mut data = cut.to_vec();
            data.extend(message);
            handshake(&data);
        }
    }
}
