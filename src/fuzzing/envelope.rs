use bytes::Bytes;

use crate::envelope::{self, AssembleError, Envelope, EnvelopeError, Header, MessageAssembler};
use crate::frame::Frame;

/// Reads arbitrary bytes as a message and as a stream of frames of messages, and
/// checks what the envelope layer promises.
///
/// The harness asserts that:
/// - [`peek`](envelope::peek), [`message_len`](envelope::message_len) and
///   [`Envelope::decode`] never panic and agree: the same length, the same error, and
///   `decode` fails only where `peek` does, where the payload is missing or where the
///   params are malformed; a failed decode consumes nothing;
/// - a decoded envelope re-encodes (no longer than it came) to a message that decodes
///   equal and that `peek` reads as it read the original, and that a
///   [`MessageAssembler`] gets back whole from a self-contained frame and from small
///   parts;
/// - a self-contained frame holding all the input is cut, if at all, into messages
///   that cover it exactly;
/// - frames cut from the input as its first bytes choose (maximum message size, then
///   per frame its kind, length and whether it arrives corrupt) never make the
///   assembler panic, hold more than twice its maximum, or emit a message that is not
///   one whole message within the maximum; after an error it refuses everything;
/// - each frame charged its [`MessageAssembler::growth`] before it is pushed (and the
///   charge given back when its message completes or is dropped), the capacity held
///   for a message of known length is exactly the charge, a frame with a growth is
///   never refused, and a message completes with its length charged, no more.
pub fn envelope(data: &[u8]) {
    check_decoders(data);
    check_cutting(data);
    check_assembler(data);
}

fn check_decoders(data: &[u8]) {
    let peeked = envelope::peek(data);
    let len = envelope::message_len(data);
    match &peeked {
        Ok(h) => assert_eq!(len, Ok(Some(h.message_len()))),
        Err(EnvelopeError::Truncated { needed }) => {
            assert_eq!(len, Ok(None));
            assert!(*needed > data.len(), "Truncated needs no more than it has");
        }
        Err(e) => assert_eq!(len, Err(e.clone())),
    }

    let mut src = Bytes::copy_from_slice(data);
    let decoded = match Envelope::decode(&mut src) {
        Ok(decoded) => decoded,
        Err(e) => {
            assert_eq!(src.len(), data.len(), "a failed decode consumed input");
            match (peeked, e) {
                (Err(p), e) => assert_eq!(p, e),
                (Ok(h), EnvelopeError::Truncated { needed }) => {
                    assert_eq!(needed, h.message_len());
                    assert!(data.len() < needed);
                }
                (Ok(_), e) => assert!(
                    matches!(
                        e,
                        EnvelopeError::ParamsInconsistent { .. }
                            | EnvelopeError::TooManyParams { .. }
                            | EnvelopeError::MalformedVint { .. }
                    ),
                    "decode failed with {e:?} where peek succeeded"
                ),
            }
            return;
        }
    };
    let h = peeked.expect("decode succeeded where peek failed");
    assert_eq!(data.len() - src.len(), h.message_len());
    assert_same(&h, &decoded);

    let wire = decoded.to_bytes().expect("a decoded envelope re-encodes");
    assert!(
        wire.len() <= h.message_len(),
        "re-encoding grew the message"
    );
    let mut again = wire.clone();
    assert_eq!(Envelope::decode(&mut again).as_ref(), Ok(&decoded));
    assert!(again.is_empty());
    assert_same(
        &envelope::peek(&wire).expect("peek a re-encoded message"),
        &decoded,
    );

    let max = wire.len();
    let mut out = Vec::new();
    let mut assembler = MessageAssembler::new(max);
    let whole = Frame {
        payload: wire.clone(),
        self_contained: true,
    };
    assembler
        .push(whole, &mut out)
        .expect("one message in a frame");
    let chunk = wire.len() / 3 + 1;
    for part in wire.chunks(chunk) {
        let part = Frame {
            payload: Bytes::copy_from_slice(part),
            self_contained: false,
        };
        assembler
            .push(part, &mut out)
            .expect("one message in parts");
    }
    assert!(assembler.is_idle());
    assert_eq!(out, [wire.clone(), wire]);
}

fn assert_same(h: &Header, e: &Envelope) {
    assert_eq!(
        (
            h.id,
            h.verb,
            h.flags,
            h.created_at_ms,
            h.expires_at_ms,
            h.payload_len
        ),
        (
            e.id,
            e.verb,
            e.flags,
            e.created_at_ms,
            e.expires_at_ms,
            e.payload.len()
        )
    );
}

fn check_cutting(data: &[u8]) {
    let mut out = Vec::new();
    let frame = Frame {
        payload: Bytes::copy_from_slice(data),
        self_contained: true,
    };
    if MessageAssembler::new(usize::MAX)
        .push(frame, &mut out)
        .is_ok()
    {
        assert_eq!(out.concat(), data, "messages do not cover their frame");
        for m in &out {
            assert_eq!(envelope::message_len(m), Ok(Some(m.len())));
        }
    }
}

fn check_assembler(data: &[u8]) {
    let Some((&choice, mut rest)) = data.split_first() else {
        return;
    };
    let max = [64, 4096, 1 << 20][usize::from(choice % 3)];
    let mut assembler = MessageAssembler::new(max);
    let mut out = Vec::new();
    let mut charged = 0;
    // Each frame: a control byte (low 2 bits its kind, high 6 bits the square root of
    // its length), then its bytes.
    while let Some((&control, tail)) = rest.split_first() {
        let scale = usize::from(control >> 2);
        let len = (scale * scale).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let self_contained = control & 1 == 0;
        let before = out.len();
        let result = if control & 2 == 0 {
            let frame = Frame {
                payload: Bytes::copy_from_slice(payload),
                self_contained,
            };
            let growth = assembler.growth(&frame);
            charged += growth;
            let result = assembler.push(frame, &mut out);
            assert!(growth == 0 || result.is_ok(), "refused after a growth");
            result
        } else {
            assembler.corrupt_frame(len, self_contained).map(drop)
        };
        if assembler.body_capacity() == 0 {
            if charged > 0 && result.is_ok() && out.len() > before {
                assert_eq!(out.len(), before + 1);
                assert_eq!(out[before].len(), charged, "completed with its charge");
            }
            charged = 0;
        }
        assert_eq!(assembler.body_capacity(), charged, "capacity is the charge");
        match result {
            Ok(()) => assert!(
                assembler.buffered_capacity() <= 2 * max,
                "assembler holds {} bytes for a maximum of {max}",
                assembler.buffered_capacity()
            ),
            Err(AssembleError::Poisoned) => panic!("poisoned without an error before"),
            Err(_) => {
                let empty = Frame {
                    payload: Bytes::new(),
                    self_contained: true,
                };
                assert_eq!(
                    assembler.push(empty, &mut out),
                    Err(AssembleError::Poisoned)
                );
                assert_eq!(
                    assembler.corrupt_frame(0, true),
                    Err(AssembleError::Poisoned)
                );
                assert!(!assembler.is_idle());
                break;
            }
        }
    }
    for m in &out {
        assert!(m.len() <= max);
        assert_eq!(envelope::message_len(m), Ok(Some(m.len())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Flags;
    use proptest::prelude::*;

    #[test]
    fn valid_messages_and_edge_inputs() {
        envelope(&[]);
        envelope(&[0]);
        envelope(&[0xFF; 64]);
        let e = Envelope {
            id: 5,
            verb: 6,
            flags: Flags::RESPONSE | Flags::FAILURE,
            created_at_ms: 10,
            expires_at_ms: Some(20),
            params: vec![(1, Bytes::from_static(b"p"))],
            payload: Bytes::from_static(b"payload"),
        };
        let wire = e.to_bytes().unwrap();
        envelope(&wire);
        // Two messages, as one self-contained frame, then as frames.
        envelope(&[wire.clone(), wire.clone()].concat());
        // The message in two parts of 9 bytes, then a corrupt self-contained frame.
        assert_eq!(wire.len(), 18);
        let mut stream = vec![2, (3 << 2) | 1];
        stream.extend_from_slice(&wire[..9]);
        stream.push((3 << 2) | 1);
        stream.extend_from_slice(&wire[9..]);
        stream.push((1 << 2) | 2);
        stream.push(0);
        envelope(&stream);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            envelope(&data);
        }
    }
}
