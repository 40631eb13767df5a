//! Property tests of the frame codec and the frame encoder.

use bytes::{Bytes, BytesMut};
use internode::frame::{Decoded, Frame, FrameCodec, FrameEncoder, Framing, MAX_PAYLOAD};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn framing() -> impl Strategy<Value = Framing> {
    prop::sample::select(Framing::ALL.to_vec())
}

/// Payloads that are mostly small, sometimes compressible, sometimes a whole frame.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..600),
        2 => (0..3000usize, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
        1 => prop::collection::vec(any::<u8>(), MAX_PAYLOAD - 2..=MAX_PAYLOAD),
    ]
}

fn frames() -> impl Strategy<Value = Vec<Frame>> {
    prop::collection::vec(
        (payload(), any::<bool>()).prop_map(|(p, sc)| Frame {
            payload: Bytes::from(p),
            self_contained: sc,
        }),
        0..12,
    )
}

fn decode_in_chunks(framing: Framing, wire: &[u8], cuts: &[usize]) -> Vec<Decoded> {
    let mut codec = FrameCodec::new(framing);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = wire;
    let mut cuts = cuts.iter().cycle();
    while !rest.is_empty() {
        let n = (*cuts.next().unwrap_or(&rest.len())).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(d) = codec.decode(&mut buf).expect("valid stream") {
            out.push(d);
        }
    }
    assert_eq!(codec.decode_eof(&mut buf), Ok(None));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn frames_round_trip_under_any_chunking(
        framing in framing(),
        frames in frames(),
        cuts in prop::collection::vec(1..70_000usize, 1..8),
    ) {
        let mut codec = FrameCodec::new(framing);
        let mut wire = BytesMut::new();
        for f in &frames {
            codec.encode(f, &mut wire).unwrap();
        }
        let want: Vec<Decoded> = frames.into_iter().map(Decoded::Frame).collect();
        prop_assert_eq!(&decode_in_chunks(framing, &wire, &[wire.len().max(1)]), &want);
        prop_assert_eq!(&decode_in_chunks(framing, &wire, &cuts), &want);
    }

    /// A message pushed in parts (an envelope header and its payload) gives exactly
    /// the bytes of the whole message pushed at once, whatever the cuts; and a buffer
    /// recycled between batches changes nothing.
    #[test]
    fn pushing_a_message_in_parts_is_pushing_it_whole(
        framing in framing(),
        max_payload in 1..3000usize,
        messages in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..8000), any::<prop::sample::Index>()),
            1..12,
        ),
    ) {
        let mut whole = FrameEncoder::with_max_payload(framing, max_payload);
        let mut parts = FrameEncoder::with_max_payload(framing, max_payload);
        for (i, (message, cut)) in messages.iter().enumerate() {
            let cut = cut.index(message.len() + 1);
            whole.push(message);
            parts.push_parts(&[&message[..cut], &[], &message[cut..]]);
            if i % 3 == 2 {
                let (a, b) = (whole.take(), parts.take());
                prop_assert_eq!(&a, &b);
                parts.recycle(b);
            }
        }
        prop_assert_eq!(whole.take(), parts.take());
    }

    #[test]
    fn encoder_packs_small_messages_together_and_cuts_large_ones(
        framing in framing(),
        max_payload in 1..5000usize,
        messages in prop::collection::vec(
            prop_oneof![
                6 => prop::collection::vec(any::<u8>(), 0..300),
                1 => prop::collection::vec(any::<u8>(), 0..20_000),
            ],
            0..40,
        ),
    ) {
        let mut encoder = FrameEncoder::with_max_payload(framing, max_payload);
        for m in &messages {
            encoder.push(m);
        }
        let wire = encoder.take();
        prop_assert!(encoder.is_empty());
        let frames: Vec<Frame> = decode_in_chunks(framing, &wire, &[4096])
            .into_iter()
            .map(|d| match d {
                Decoded::Frame(f) => f,
                other => panic!("unexpected {other:?}"),
            })
            .collect();

        // Walk the frames with the messages in hand: a small message continues the
        // current self-contained frame; a large one takes the next frames, which are
        // not self-contained and hold only it.
        let mut frames = frames.into_iter().peekable();
        let mut current: Option<(Bytes, usize)> = None;
        for m in &messages {
            if m.len() > max_payload {
                prop_assert!(current.as_ref().is_none_or(|(p, at)| *at == p.len()));
                current = None;
                let mut got = Vec::new();
                while got.len() < m.len() {
                    let f = frames.next().expect("frames of the large message");
                    prop_assert!(!f.self_contained);
                    prop_assert!(f.payload.len() <= max_payload);
                    got.extend_from_slice(&f.payload);
                }
                prop_assert_eq!(&got, m);
                continue;
            }
            let fits = current.as_ref().is_some_and(|(p, at)| p.len() - at >= m.len());
            if !fits {
                if let Some((p, at)) = &current {
                    prop_assert_eq!(*at, p.len(), "a frame closed before it was used up");
                }
                let f = frames.next().expect("a frame for the small message");
                prop_assert!(f.self_contained);
                prop_assert!(f.payload.len() <= max_payload);
                current = Some((f.payload, 0));
            }
            let (p, at) = current.as_mut().unwrap();
            prop_assert_eq!(&p[*at..*at + m.len()], &m[..]);
            *at += m.len();
        }
        if let Some((p, at)) = current {
            prop_assert_eq!(at, p.len());
        }
        prop_assert!(frames.next().is_none(), "no frame beyond the messages");
    }
}

#[test]
fn a_batch_of_small_messages_fills_frames_to_the_maximum() {
    let mut encoder = FrameEncoder::new(Framing::Crc);
    for _ in 0..1000 {
        encoder.push(&[0u8; 1000]);
    }
    let wire = encoder.take();
    let frames = decode_in_chunks(Framing::Crc, &wire, &[wire.len()]);
    // 131 messages of 1000 bytes fit in a frame of 131071.
    assert_eq!(frames.len(), 1000usize.div_ceil(131));
    assert_eq!(wire.len(), 1000 * 1000 + frames.len() * 10);
}
