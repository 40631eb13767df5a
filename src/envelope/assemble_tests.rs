//! Tests of [`MessageAssembler`](super::MessageAssembler).

use super::*;
use crate::envelope::{Envelope, Flags};
use crate::frame::MAX_PAYLOAD;
use bytes::BytesMut;
use proptest::prelude::*;

/// An encoded message with a payload of `payload_len` bytes.
fn message(id: u64, payload_len: usize) -> Bytes {
    Envelope {
        id,
        verb: 3,
        flags: Flags::REQUEST,
        created_at_ms: 1_000,
        expires_at_ms: None,
        params: Vec::new(),
        payload: Bytes::from(vec![id as u8; payload_len]),
    }
    .to_bytes()
    .unwrap()
}

fn sc(payload: Bytes) -> Frame {
    Frame {
        payload,
        self_contained: true,
    }
}

fn part(payload: &[u8]) -> Frame {
    Frame {
        payload: Bytes::copy_from_slice(payload),
        self_contained: false,
    }
}

/// Packs messages as the frame encoder does: small ones together in self-contained
/// frames of at most `MAX_PAYLOAD`, large ones cut into parts of at most `chunk`.
fn pack(messages: &[Bytes], chunk: usize) -> Vec<Frame> {
    pack_marked(messages, chunk)
        .into_iter()
        .map(|(frame, _)| frame)
        .collect()
}

/// Like [`pack`], marking each frame that is the first part of a large message.
fn pack_marked(messages: &[Bytes], chunk: usize) -> Vec<(Frame, bool)> {
    let mut frames = Vec::new();
    let mut open = BytesMut::new();
    for m in messages {
        if m.len() <= MAX_PAYLOAD {
            if open.len() + m.len() > MAX_PAYLOAD {
                frames.push((sc(open.split().freeze()), false));
            }
            open.extend_from_slice(m);
        } else {
            if !open.is_empty() {
                frames.push((sc(open.split().freeze()), false));
            }
            frames.extend(m.chunks(chunk).enumerate().map(|(i, p)| (part(p), i == 0)));
        }
    }
    if !open.is_empty() {
        frames.push((sc(open.freeze()), false));
    }
    frames
}

fn assemble(assembler: &mut MessageAssembler, frames: Vec<Frame>) -> Vec<Bytes> {
    let mut out = Vec::new();
    for frame in frames {
        assembler.push(frame, &mut out).unwrap();
        assert!(assembler.buffered_capacity() <= assembler.max_message());
    }
    out
}

#[test]
fn small_messages_are_slices_of_their_frame() {
    let messages = [message(1, 0), message(2, 10), message(3, 1000)];
    let frame = messages.concat();
    let frame = Bytes::from(frame);
    let range = frame.as_ptr_range();
    let mut assembler = MessageAssembler::new(1 << 20);
    let out = assemble(&mut assembler, vec![sc(frame)]);
    assert_eq!(out, messages);
    assert!(out.iter().all(|m| range.contains(&m.as_ptr())));
    assert!(assembler.is_idle());
}

#[test]
fn empty_frames_yield_nothing() {
    let mut assembler = MessageAssembler::new(100);
    let out = assemble(&mut assembler, vec![sc(Bytes::new()), part(&[])]);
    assert!(out.is_empty() && assembler.is_idle());
}

#[test]
fn large_message_buffer_grows_by_doubling_up_to_its_length() {
    let m = message(9, 600_000);
    let mut assembler = MessageAssembler::new(m.len());
    let mut out = Vec::new();
    let mut capacities = Vec::new();
    let mut charged = 0;
    for p in m.chunks(MAX_PAYLOAD) {
        assert!(out.is_empty());
        let frame = part(p);
        let growth = assembler.growth(&frame);
        charged += growth;
        assembler.push(frame, &mut out).unwrap();
        if !assembler.is_idle() {
            assert_eq!(assembler.body_capacity(), charged, "the growth was exact");
            assert_eq!(assembler.buffered_capacity(), charged);
            capacities.push(charged);
        }
    }
    // The first part, twice that, four times (it takes two parts), then the length
    // (not eight times).
    let first = MAX_PAYLOAD;
    assert_eq!(capacities, [first, 2 * first, 4 * first, 4 * first]);
    assert_eq!(charged, m.len(), "the last growth stops at the length");
    assert_eq!(out, [m]);
    assert!(assembler.is_idle() && assembler.buffered_len() == 0);
    assert_eq!(assembler.body_capacity(), 0);
}

#[test]
fn a_message_of_many_small_frames_is_copied_a_logarithmic_number_of_times() {
    let m = message(3, 512 * 1000);
    let mut assembler = MessageAssembler::new(m.len());
    let mut out = Vec::new();
    let (mut grown, mut charged) = (0, 0);
    for p in m.chunks(1000) {
        let frame = part(p);
        let growth = assembler.growth(&frame);
        if growth > 0 {
            grown += 1;
        }
        charged += growth;
        assembler.push(frame, &mut out).unwrap();
    }
    assert_eq!(out, std::slice::from_ref(&m));
    assert_eq!(charged, m.len());
    // 1000 bytes, doubled nine times to 512 000, then the length (the header's few
    // bytes more): eleven allocations for 513 frames.
    assert_eq!(grown, 11);
}

#[test]
fn growth_is_zero_when_nothing_is_allocated() {
    let m = message(1, 200_000);
    let mut assembler = MessageAssembler::new(300_000);
    assert_eq!(assembler.growth(&sc(message(2, 10))), 0, "self-contained");
    assert_eq!(assembler.growth(&part(&[])), 0, "empty");
    assert_eq!(assembler.growth(&part(&m[..3])), 0, "header incomplete");
    let whole = message(3, 100);
    assert_eq!(assembler.growth(&part(&whole)), 0, "whole in its frame");
    assert_eq!(assembler.growth(&part(&m[..1000])), 1000);
    // The header phase holds its bytes uncharged; the frame that completes the header
    // is charged for the buffer, header bytes included.
    let mut out = Vec::new();
    assembler.push(part(&m[..3]), &mut out).unwrap();
    assert_eq!(assembler.body_capacity(), 0);
    assert!(assembler.buffered_capacity() >= 3);
    let rest = part(&m[3..1000]);
    assert_eq!(assembler.growth(&rest), 1000);
    assembler.push(rest, &mut out).unwrap();
    assert_eq!(assembler.body_capacity(), 1000);
    // Overruns and self-contained frames are refused: nothing to charge.
    assert_eq!(assembler.growth(&part(&vec![0; 300_000])), 0);
    assert_eq!(assembler.growth(&sc(message(4, 1))), 0);
    // A message over the maximum is skipped (or refused): nothing to charge.
    let mut assembler = MessageAssembler::new(1000).skip_oversized();
    assert_eq!(assembler.growth(&part(&m[..MAX_PAYLOAD])), 0);
    assembler.push(part(&m[..MAX_PAYLOAD]), &mut out).unwrap();
    assert_eq!(assembler.growth(&part(&m[MAX_PAYLOAD..])), 0);
    assert!(out.is_empty());
}

#[test]
fn large_message_header_split_over_tiny_frames() {
    let m = message(4, 1000);
    let mut assembler = MessageAssembler::new(2000);
    let out = assemble(&mut assembler, m.chunks(1).map(part).collect());
    assert_eq!(out, [m]);
}

#[test]
fn large_message_in_a_single_frame_is_not_copied() {
    let m = message(5, 50);
    let mut assembler = MessageAssembler::new(100);
    let mut out = Vec::new();
    let frame = Frame {
        payload: m.clone(),
        self_contained: false,
    };
    assembler.push(frame, &mut out).unwrap();
    assert_eq!(out, std::slice::from_ref(&m));
    assert_eq!(out[0].as_ptr(), m.as_ptr());
}

#[test]
fn oversized_messages_are_refused_before_allocating() {
    let small = message(1, 200);
    let mut assembler = MessageAssembler::new(100);
    let mut out = Vec::new();
    assert_eq!(
        assembler.push(sc(small.clone()), &mut out),
        Err(AssembleError::Oversized {
            len: small.len(),
            max: 100
        })
    );
    assert!(out.is_empty());
    assert_eq!(
        assembler.push(sc(Bytes::new()), &mut out),
        Err(AssembleError::Poisoned)
    );

    // The header of a 1 GiB message, followed by a first part of its payload.
    let mut large = vec![0u8, 0, 0, 0, 0];
    crate::vint::encode(1 << 30, &mut large);
    let len = large.len() + (1 << 30);
    large.resize(MAX_PAYLOAD, 0);
    let mut assembler = MessageAssembler::new(1 << 20);
    assert_eq!(
        assembler.push(part(&large), &mut out),
        Err(AssembleError::Oversized { len, max: 1 << 20 })
    );
    assert_eq!(assembler.buffered_capacity(), 0);
}

#[test]
fn incomplete_header_is_checked_by_its_lower_bound() {
    // HAS_PARAMS with a 16000-byte section announced: the message is at least 16007
    // bytes long, more than the maximum, before the section has arrived.
    let prefix = [0u8, 0, 0x08, 0, 0, 0xBE, 0x80];
    let mut assembler = MessageAssembler::new(1000);
    assert_eq!(
        assembler.push(part(&prefix), &mut Vec::new()),
        Err(AssembleError::Oversized {
            len: 7 + 16000 + 1,
            max: 1000
        })
    );
}

#[test]
fn message_crossing_a_self_contained_frame_is_an_error() {
    let m = message(1, 100);
    let mut assembler = MessageAssembler::new(1000);
    let mut out = Vec::new();
    let frame = Bytes::from([message(7, 1), m.slice(..50)].concat());
    assert_eq!(
        assembler.push(sc(frame), &mut out),
        Err(AssembleError::CrossesFrameEnd {
            needed: m.len(),
            available: 50
        })
    );
    // The whole message before the error was cut.
    assert_eq!(out, [message(7, 1)]);

    let mut assembler = MessageAssembler::new(1000);
    assert_eq!(
        assembler.push(sc(m.slice(..2)), &mut out),
        Err(AssembleError::CrossesFrameEnd {
            needed: 3,
            available: 2
        })
    );
}

#[test]
fn garbage_header_is_an_envelope_error() {
    let mut assembler = MessageAssembler::new(1000);
    let verb_too_big = Bytes::from_static(&[0, 0xF1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        assembler.push(sc(verb_too_big), &mut Vec::new()),
        Err(AssembleError::Envelope(EnvelopeError::VerbOverflow {
            value: 1 << 32
        }))
    );
}

#[test]
fn stream_inconsistencies() {
    let m = message(1, 1000);
    // A self-contained frame inside a large message.
    let mut assembler = MessageAssembler::new(2000);
    let mut out = Vec::new();
    assembler.push(part(&m[..600]), &mut out).unwrap();
    assert_eq!(
        assembler.push(sc(message(2, 0)), &mut out),
        Err(AssembleError::UnexpectedSelfContained { received: 600 })
    );
    // Parts that carry more than the message.
    let mut assembler = MessageAssembler::new(2000);
    assembler.push(part(&m[..600]), &mut out).unwrap();
    let mut rest = m[600..].to_vec();
    rest.push(0);
    assert_eq!(
        assembler.push(part(&rest), &mut out),
        Err(AssembleError::Overrun {
            len: m.len(),
            received: m.len() + 1
        })
    );
    assert!(out.is_empty());
}

#[test]
fn corrupt_self_contained_frame_is_skipped() {
    let mut assembler = MessageAssembler::new(1000);
    assert_eq!(
        assembler.corrupt_frame(500, true),
        Ok(CorruptOutcome::SkippedFrame)
    );
    let out = assemble(&mut assembler, vec![sc(message(1, 5))]);
    assert_eq!(out, [message(1, 5)]);
}

#[test]
fn corrupt_part_abandons_the_large_message_and_resynchronises() {
    let big = message(1, 350_000); // three parts
    let parts: Vec<&[u8]> = big.chunks(MAX_PAYLOAD).collect();
    let mut assembler = MessageAssembler::new(1 << 20);
    let mut out = Vec::new();
    assembler.push(part(parts[0]), &mut out).unwrap();
    assert_eq!(
        assembler.corrupt_frame(parts[1].len(), false),
        Ok(CorruptOutcome::AbandonedLargeMessage { len: big.len() })
    );
    assert_eq!(assembler.buffered_capacity(), 0, "buffer dropped at once");
    assert!(!assembler.is_idle());
    assembler.push(part(parts[2]), &mut out).unwrap();
    assert!(assembler.is_idle());
    assembler.push(sc(message(2, 3)), &mut out).unwrap();
    assert_eq!(out, [message(2, 3)]);
}

#[test]
fn several_corrupt_parts_lose_one_message() {
    let big = message(1, 400_000); // four parts
    let parts: Vec<&[u8]> = big.chunks(MAX_PAYLOAD).collect();
    let mut assembler = MessageAssembler::new(1 << 20);
    let mut out = Vec::new();
    assembler.push(part(parts[0]), &mut out).unwrap();
    let len = big.len();
    assert_eq!(
        assembler.corrupt_frame(parts[1].len(), false),
        Ok(CorruptOutcome::AbandonedLargeMessage { len })
    );
    assert_eq!(
        assembler.corrupt_frame(parts[2].len(), false),
        Ok(CorruptOutcome::AbandonedMessagePart)
    );
    // The last part, corrupt too, completes the abandoned message.
    assert_eq!(
        assembler.corrupt_frame(parts[3].len(), false),
        Ok(CorruptOutcome::AbandonedMessagePart)
    );
    assert!(assembler.is_idle());
    // A corrupt last part of a message abandoned on that very part.
    assembler.push(part(parts[0]), &mut out).unwrap();
    assembler.push(part(parts[1]), &mut out).unwrap();
    assembler.push(part(parts[2]), &mut out).unwrap();
    assert_eq!(
        assembler.corrupt_frame(parts[3].len(), false),
        Ok(CorruptOutcome::AbandonedLargeMessage { len })
    );
    assert!(assembler.is_idle());
    assert!(out.is_empty());
}

#[test]
fn unrecoverable_corruptions() {
    let big = message(1, 200_000);
    // The first part of a large message: its length is lost with it.
    let mut assembler = MessageAssembler::new(1 << 20);
    assert_eq!(
        assembler.corrupt_frame(MAX_PAYLOAD, false),
        Err(AssembleError::UnrecoverableCorruption)
    );
    assert_eq!(
        assembler.corrupt_frame(1, true),
        Err(AssembleError::Poisoned)
    );
    // A part after a first one too short to give the length.
    let mut assembler = MessageAssembler::new(1 << 20);
    assembler.push(part(&big[..2]), &mut Vec::new()).unwrap();
    assert_eq!(
        assembler.corrupt_frame(MAX_PAYLOAD, false),
        Err(AssembleError::UnrecoverableCorruption)
    );
    // A self-contained corrupt frame inside a large message.
    let mut assembler = MessageAssembler::new(1 << 20);
    assembler.push(part(&big[..1000]), &mut Vec::new()).unwrap();
    assert_eq!(
        assembler.corrupt_frame(10, true),
        Err(AssembleError::UnexpectedSelfContained { received: 1000 })
    );
    // A corrupt part longer than what the message has left.
    let mut assembler = MessageAssembler::new(1 << 20);
    assembler.push(part(&big[..1000]), &mut Vec::new()).unwrap();
    assert_eq!(
        assembler.corrupt_frame(big.len(), false),
        Err(AssembleError::Overrun {
            len: big.len(),
            received: big.len() + 1000
        })
    );
}

fn sizes() -> impl Strategy<Value = Vec<usize>> {
    let size = prop_oneof![
        4 => 0usize..200,
        2 => 0usize..MAX_PAYLOAD,
        1 => MAX_PAYLOAD - 20..MAX_PAYLOAD + 20,
        2 => 0usize..400_000,
    ];
    proptest::collection::vec(size, 0..10)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn packed_messages_come_back(
        sizes in sizes(),
        chunk in prop_oneof![Just(MAX_PAYLOAD), 1usize..=MAX_PAYLOAD, 1usize..40],
    ) {
        let messages: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| message(i as u64, len))
            .collect();
        let mut assembler = MessageAssembler::new(1 << 20);
        let out = assemble(&mut assembler, pack(&messages, chunk));
        prop_assert!(assembler.is_idle());
        prop_assert_eq!(out, messages);
    }

    #[test]
    fn a_corrupt_frame_loses_only_its_messages(
        sizes in sizes(),
        victim in any::<prop::sample::Index>(),
    ) {
        let messages: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| message(i as u64, len))
            .collect();
        let marked = pack_marked(&messages, MAX_PAYLOAD);
        prop_assume!(!marked.is_empty());
        let victim = victim.index(marked.len());
        let first_of_large = marked[victim].1;
        let frames: Vec<Frame> = marked.into_iter().map(|(frame, _)| frame).collect();
        let mut assembler = MessageAssembler::new(1 << 20);
        let mut out = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            if i != victim {
                assembler.push(frame.clone(), &mut out).unwrap();
                continue;
            }
            let result = assembler.corrupt_frame(frame.payload.len(), frame.self_contained);
            if first_of_large {
                prop_assert_eq!(result, Err(AssembleError::UnrecoverableCorruption));
                return Ok(());
            }
            let lost: Vec<Bytes> = if frame.self_contained {
                prop_assert_eq!(result, Ok(CorruptOutcome::SkippedFrame));
                let mut lost = Vec::new();
                MessageAssembler::new(1 << 20).push(frame.clone(), &mut lost).unwrap();
                lost
            } else {
                // Every message before the one in progress came out, in order.
                let current = messages[out.len()].clone();
                prop_assert_eq!(
                    result,
                    Ok(CorruptOutcome::AbandonedLargeMessage { len: current.len() })
                );
                vec![current]
            };
            // Everything but what was lost comes out.
            let expected: Vec<Bytes> = messages.iter().filter(|m| !lost.contains(m)).cloned().collect();
            for frame in &frames[i + 1..] {
                assembler.push(frame.clone(), &mut out).unwrap();
            }
            prop_assert!(assembler.is_idle());
            prop_assert_eq!(out, expected);
            return Ok(());
        }
    }
}

/// One step of an arbitrary stream for [`growth_never_lets_memory_exceed_the_charge`].
#[derive(Debug, Clone)]
enum Step {
    Push(Frame),
    Corrupt { len: usize, self_contained: bool },
}

/// The frames of one message of `payload_len` bytes cut into parts of `chunk` bytes
/// (tiny ones cut its header), then damaged: cut short after `keep` parts, or given
/// `extra` bytes too many (an overrun), or as they are.
fn message_steps(
    id: u64,
    payload_len: usize,
    chunk: usize,
    keep: Option<usize>,
    extra: usize,
) -> Vec<Step> {
    let m = message(id, payload_len);
    let mut parts: Vec<Vec<u8>> = m.chunks(chunk).map(<[u8]>::to_vec).collect();
    if let Some(keep) = keep {
        parts.truncate(keep);
    }
    if let Some(last) = parts.last_mut() {
        last.extend(std::iter::repeat_n(0xAB, extra));
    }
    parts.iter().map(|p| Step::Push(part(p))).collect()
}

fn step_runs() -> impl Strategy<Value = Vec<Step>> {
    let run = prop_oneof![
        6 => (
            any::<u64>(),
            0usize..300_000,
            prop_oneof![1usize..64, 1usize..=MAX_PAYLOAD, Just(MAX_PAYLOAD)],
            proptest::option::weighted(0.3, 0usize..6),
            prop_oneof![4 => Just(0usize), 1 => 1usize..100],
        )
            .prop_map(|(id, len, chunk, keep, extra)| message_steps(id, len, chunk, keep, extra)),
        2 => (0usize..300, 0u64..10)
            .prop_map(|(len, id)| vec![Step::Push(sc(message(id, len)))]),
        1 => (proptest::collection::vec(any::<u8>(), 0..40), any::<bool>()).prop_map(
            |(bytes, self_contained)| vec![Step::Push(Frame {
                payload: Bytes::from(bytes),
                self_contained,
            })]
        ),
        1 => any::<bool>().prop_map(|self_contained| vec![Step::Push(Frame {
            payload: Bytes::new(),
            self_contained,
        })]),
        1 => (0usize..MAX_PAYLOAD, any::<bool>())
            .prop_map(|(len, self_contained)| vec![Step::Corrupt { len, self_contained }]),
    ];
    proptest::collection::vec(run, 1..8).prop_map(|runs| runs.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary frame sequences (self-contained or not, of any length, headers cut,
    /// messages cut short or overrun, garbage, corrupt frames), each frame charged its
    /// [`MessageAssembler::growth`] before it is pushed, the charge given back when its
    /// message is done: the buffered capacity of a message of known length is always
    /// exactly the charge, the header phase stays under its constant, a frame with a
    /// growth is never refused, and a message completes with the charge equal to its
    /// length (its capacity then).
    #[test]
    fn growth_never_lets_memory_exceed_the_charge(
        steps in step_runs(),
        max_message in prop_oneof![Just(1usize << 20), 100usize..200_000],
        skip in any::<bool>(),
    ) {
        let mut assembler = MessageAssembler::new(max_message);
        if skip {
            assembler = assembler.skip_oversized();
        }
        let mut out = Vec::new();
        let mut charged = 0usize;
        for step in steps {
            let before = out.len();
            let result = match step {
                Step::Push(frame) => {
                    let growth = assembler.growth(&frame);
                    charged += growth;
                    let result = assembler.push(frame, &mut out).map(|_| ());
                    prop_assert!(growth == 0 || result.is_ok(), "refused after a growth");
                    result
                }
                Step::Corrupt { len, self_contained } => {
                    assembler.corrupt_frame(len, self_contained).map(|_| ())
                }
            };
            if assembler.body_capacity() == 0 {
                // No message of known length is held: the charge went with the one
                // that completed, exactly its length, or back (abandoned, failed).
                if charged > 0 && result.is_ok() && out.len() > before {
                    prop_assert_eq!(out.len(), before + 1);
                    prop_assert_eq!(out[before].len(), charged);
                }
                charged = 0;
            }
            prop_assert_eq!(assembler.body_capacity(), charged);
            prop_assert!(charged <= max_message);
            let header_phase = assembler.buffered_capacity() - assembler.body_capacity();
            prop_assert!(header_phase < 2 * crate::envelope::MAX_HEADER_LEN);
            if result.is_err() {
                prop_assert_eq!(assembler.buffered_capacity(), 0);
                break;
            }
        }
    }
}
