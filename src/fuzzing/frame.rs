use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::frame::{Decoded, FrameCodec, FrameEncoder, FrameError, Framing, MAX_PAYLOAD};

/// Decodes arbitrary bytes as a frame stream and checks what a decoder promises.
///
/// The first byte picks the framing and the second the size of the chunks in which the
/// rest is fed, as reads from a socket would. The harness asserts that:
/// - decoding never panics, and every frame has at most [`MAX_PAYLOAD`] bytes;
/// - feeding the stream in chunks gives the same frames, corrupt reports and error as
///   feeding it whole;
/// - the buffer never grows past twice one frame plus the bytes fed at once;
/// - every decoded frame, encoded again, decodes to itself.
pub fn frame_decoder(data: &[u8]) {
    let (framing, chunk, stream) = match data {
        [f, c, rest @ ..] => (Framing::ALL[usize::from(*f) % 3], usize::from(*c) + 1, rest),
        _ => return,
    };
    let whole = decode_all(framing, stream, stream.len().max(1));
    let chunked = decode_all(framing, stream, chunk);
    assert_eq!(whole, chunked, "chunking changed what was decoded");

    let (items, _) = whole;
    for item in items {
        if let Decoded::Frame(frame) = item {
            assert!(frame.payload.len() <= MAX_PAYLOAD);
            let mut encoder = FrameEncoder::new(framing);
            encoder.push(&frame.payload);
            let mut wire = encoder.take();
            if !frame.self_contained {
                // The encoder only writes non-self-contained frames for large
                // messages; re-encode through the codec to keep the flag.
                wire.clear();
                let mut codec = FrameCodec::new(framing);
                codec
                    .encode_payload(&frame.payload, false, &mut wire)
                    .expect("payload within one frame");
            }
            let again = FrameCodec::new(framing).decode(&mut wire);
            assert_eq!(again, Ok(Some(Decoded::Frame(frame))));
            assert!(wire.is_empty());
        }
    }
}

type Outcome = (Vec<Decoded>, Option<FrameError>);

fn decode_all(framing: Framing, stream: &[u8], chunk: usize) -> Outcome {
    /// One frame: the largest header, payload and trailer, plus the largest chunk.
    const BOUND: usize = 8 + MAX_PAYLOAD + 4 + 256;
    let mut codec = FrameCodec::new(framing);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Some(e)),
            }
        }
        assert!(
            buf.capacity() <= 2 * (BOUND + piece.len()),
            "decoder buffer grew to {}",
            buf.capacity()
        );
    }
    match codec.decode_eof(&mut buf) {
        Ok(Some(item)) => items.push(item),
        Ok(None) => {}
        Err(e) => return (items, Some(e)),
    }
    (items, None)
}
