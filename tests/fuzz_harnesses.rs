//! The fuzz harnesses of `internode::fuzzing`, run under proptest so that CI exercises
//! them on every change (`fuzz/` runs the same functions under libFuzzer).
//!
//! Arbitrary bytes rarely get past a checksum, so each harness is also fed valid
//! encodings with a few bytes changed.

use internode::frame::{FrameEncoder, Framing};
use internode::fuzzing;
use proptest::prelude::*;

/// Up to four (position, xor) changes applied to `bytes`.
fn mutate(mut bytes: Vec<u8>, changes: &[(usize, u8)]) -> Vec<u8> {
    if !bytes.is_empty() {
        for &(at, x) in changes {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
    }
    bytes
}

fn changes() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>()), 0..4)
}

fn frame_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        0..3u8,
        1..255u8,
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 0..6),
        changes(),
    )
        .prop_map(|(f, chunk, messages, changes)| {
            let mut encoder = FrameEncoder::with_max_payload(Framing::ALL[usize::from(f)], 1000);
            for m in &messages {
                encoder.push(m);
            }
            let mut data = vec![f, chunk];
            data.extend_from_slice(&encoder.take());
            let tail = mutate(data.split_off(2), &changes);
            data.extend(tail);
            data
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frame_decoder_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..4096)) {
        fuzzing::frame_decoder(&data);
    }

    #[test]
    fn frame_decoder_on_damaged_streams(data in frame_stream()) {
        fuzzing::frame_decoder(&data);
    }

    #[test]
    fn envelope_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::envelope(&data);
    }

    #[test]
    fn handshake_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::handshake(&data);
    }

    #[test]
    fn handshake_on_bytes_after_the_magic(
        chunking in any::<[u8; 2]>(),
        kind in 1..6u8,
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut data = chunking.to_vec();
        data.extend_from_slice(b"INOD");
        data.push(kind);
        data.extend_from_slice(&(body.len() as u16).to_le_bytes());
        data.extend_from_slice(&body);
        fuzzing::handshake(&data);
    }

    /// Challenges, Proofs and Accepts (right checksum, bit 7) fed to the authenticated
    /// machines after an honest first message (bit 6).
    #[test]
    fn handshake_auth_messages_after_an_honest_start(
        chunking in any::<u8>(),
        kind in 2..6u8,
        body in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut data = vec![0xc0 | (chunking & 0x3f), chunking];
        data.extend_from_slice(b"INOD");
        data.push(kind);
        data.extend_from_slice(&(body.len() as u16).to_le_bytes());
        data.extend_from_slice(&body);
        data.extend_from_slice(&[0; 4]);
        fuzzing::handshake(&data);
    }

    #[test]
    fn receive_on_arbitrary_programs(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::receive(&data);
    }

    /// Programs made of the receiving core's instructions only: reconnects, restarts,
    /// messages in any order with duplicates, garbage, releases, time.
    #[test]
    fn receive_on_cuts_duplicates_and_reorderings(
        ops in prop::collection::vec((0..9u8, any::<u8>(), any::<u8>()), 0..300),
    ) {
        let mut data = vec![0];
        for (op, a, b) in ops {
            data.push(op);
            match op {
                2 | 4 => data.push(a),
                3 => data.extend([a, b]),
                5 => data.extend([2, a, b]),
                _ => {}
            }
        }
        fuzzing::receive(&data);
    }
}
