use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Bytes from an xorshift generator: LZ4 cannot shrink them.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn encode(framing: Framing, payload: &[u8], self_contained: bool) -> BytesMut {
    let mut dst = BytesMut::new();
    FrameCodec::new(framing)
        .encode_payload(payload, self_contained, &mut dst)
        .unwrap();
    dst
}

fn decode_one(framing: Framing, wire: &[u8]) -> Result<Option<Decoded>, FrameError> {
    let mut buf = BytesMut::from(wire);
    let out = FrameCodec::new(framing).decode(&mut buf);
    if matches!(out, Ok(Some(_))) {
        assert!(buf.is_empty(), "a whole frame consumes exactly its bytes");
    }
    out
}

fn frame(payload: &[u8], self_contained: bool) -> Decoded {
    Decoded::Frame(Frame {
        payload: Bytes::copy_from_slice(payload),
        self_contained,
    })
}

/// Byte vectors printed by the DataStax Python driver (`cassandra.segment`), an
/// independent implementation of the format.
#[test]
fn golden_vectors_from_the_python_driver() {
    let crc_hello = hex("05000219999a68656c6c6f74800eb6");
    assert_eq!(&encode(Framing::Crc, b"hello", true)[..], &crc_hello[..]);
    assert_eq!(
        decode_one(Framing::Crc, &crc_hello),
        Ok(Some(frame(b"hello", true)))
    );

    let crc_empty = hex("0000026a36c4d37e7744");
    assert_eq!(&encode(Framing::Crc, b"", true)[..], &crc_empty[..]);

    // "hello" does not shrink under LZ4, so it is sent as is with uncompressed length 0.
    let lz4_hello = hex("0500000004e4ab8e68656c6c6f74800eb6");
    assert_eq!(&encode(Framing::Lz4, b"hello", true)[..], &lz4_hello[..]);

    // 64 x 'a' compressed by the python lz4 package; our compressor may pick other
    // matches, but must read these.
    let lz4_a64 = hex("0b00800004ffee151f6101002750616161616137c8e516");
    assert_eq!(
        decode_one(Framing::Lz4, &lz4_a64),
        Ok(Some(frame(&[b'a'; 64], true)))
    );
}

#[test]
fn unprotected_frames_have_the_crc_header_and_no_trailer() {
    let wire = encode(Framing::Unprotected, b"hello", false);
    let crc = encode(Framing::Crc, b"hello", false);
    assert_eq!(&wire[..], &crc[..crc.len() - 4]);
    assert_eq!(
        decode_one(Framing::Unprotected, &wire),
        Ok(Some(frame(b"hello", false)))
    );
}

#[test]
fn round_trips_at_the_boundaries() {
    let incompressible = noise(MAX_PAYLOAD);
    for framing in Framing::ALL {
        for len in [0, 1, 2, 100, 65_536, MAX_PAYLOAD - 1, MAX_PAYLOAD] {
            for payload in [&incompressible[..len], &vec![3u8; len][..]] {
                for self_contained in [true, false] {
                    let wire = encode(framing, payload, self_contained);
                    assert_eq!(
                        decode_one(framing, &wire),
                        Ok(Some(frame(payload, self_contained))),
                        "{framing:?} len {len}"
                    );
                }
            }
        }
    }
}

#[test]
fn oversized_payload_is_an_error_and_writes_nothing() {
    for framing in Framing::ALL {
        let mut dst = BytesMut::from(&b"before"[..]);
        let err =
            FrameCodec::new(framing).encode_payload(&vec![0; MAX_PAYLOAD + 1], true, &mut dst);
        assert_eq!(
            err,
            Err(FrameError::PayloadTooLarge {
                len: MAX_PAYLOAD + 1
            })
        );
        assert_eq!(&dst[..], b"before");
    }
}

#[test]
fn lz4_sends_incompressible_payloads_uncompressed() {
    let payload = noise(1000);
    let wire = encode(Framing::Lz4, &payload, true);
    let header = u64::from_le_bytes([wire[0], wire[1], wire[2], wire[3], wire[4], 0, 0, 0]);
    assert_eq!(header & LEN_MASK, 1000);
    assert_eq!((header >> 17) & LEN_MASK, 0, "uncompressed length 0");
    assert_eq!(&wire[8..1008], &payload[..]);

    let wire = encode(Framing::Lz4, &[9u8; 1000], true);
    let header = u64::from_le_bytes([wire[0], wire[1], wire[2], wire[3], wire[4], 0, 0, 0]);
    assert!(header & LEN_MASK < 100);
    assert_eq!((header >> 17) & LEN_MASK, 1000);
}

#[test]
fn every_flipped_header_bit_is_an_unrecoverable_error() {
    for framing in Framing::ALL {
        let good = encode(framing, b"some payload", true);
        for bit in 0..framing.header_len() * 8 {
            let mut wire = good.clone();
            wire[bit / 8] ^= 1 << (bit % 8);
            let mut codec = FrameCodec::new(framing);
            let mut buf = wire.clone();
            let err = codec.decode(&mut buf).unwrap_err();
            assert!(
                matches!(err, FrameError::HeaderCrc { .. }),
                "{framing:?} bit {bit}: {err:?}"
            );
            // The decoder refuses to go on after it lost the frame boundaries.
            assert_eq!(codec.decode(&mut buf), Err(FrameError::Poisoned));
        }
    }
}

#[test]
fn a_flipped_payload_bit_skips_that_frame_only() {
    for framing in [Framing::Crc, Framing::Lz4] {
        let mut wire = encode(framing, &[5u8; 300], false);
        let first_len = wire.len();
        wire.extend_from_slice(&encode(framing, b"next frame", true));
        wire[framing.header_len() + 2] ^= 0x10;
        let mut codec = FrameCodec::new(framing);
        match codec.decode(&mut wire).unwrap() {
            Some(Decoded::Corrupt {
                payload_len,
                self_contained,
                expected_crc,
                computed_crc,
                ..
            }) => {
                assert_eq!(payload_len, first_len - framing.header_len() - 4);
                assert!(!self_contained);
                assert_ne!(expected_crc, computed_crc);
            }
            other => panic!("{framing:?}: {other:?}"),
        }
        assert_eq!(
            codec.decode(&mut wire),
            Ok(Some(frame(b"next frame", true)))
        );
        assert!(wire.is_empty());
    }
}

fn with_header(framing: Framing, header: u64, payload: &[u8]) -> Vec<u8> {
    let n = framing.header_len() - 3;
    let crc = crc24(header, n);
    let mut wire =
        (header | u64::from(crc) << (8 * n)).to_le_bytes()[..framing.header_len()].to_vec();
    wire.extend_from_slice(payload);
    wire.extend_from_slice(&payload_crc32(payload).to_le_bytes());
    wire
}

#[test]
fn reserved_header_bits_are_refused() {
    let wire = with_header(Framing::Crc, 3 | 1 << 20, b"abc");
    assert!(matches!(
        decode_one(Framing::Crc, &wire),
        Err(FrameError::ReservedBits { .. })
    ));
    let wire = with_header(Framing::Lz4, 3 | 1 << 36, b"abc");
    assert!(matches!(
        decode_one(Framing::Lz4, &wire),
        Err(FrameError::ReservedBits { .. })
    ));
}

#[test]
fn lz4_payload_that_does_not_decompress_is_an_error() {
    // Valid CRCs, but the block is garbage / announces the wrong length.
    let wire = with_header(Framing::Lz4, 4 | 100 << 17, &[0xF0, 1, 2, 3]);
    assert_eq!(
        decode_one(Framing::Lz4, &wire),
        Err(FrameError::Decompress {
            payload_len: 4,
            uncompressed_len: 100
        })
    );
    let mut good = BytesMut::new();
    FrameCodec::new(Framing::Lz4)
        .encode_payload(&[1u8; 500], true, &mut good)
        .unwrap();
    let header = u64::from_le_bytes([good[0], good[1], good[2], good[3], good[4], 0, 0, 0]);
    let body = good[8..good.len() - 4].to_vec();
    let lying = (header & !(LEN_MASK << 17)) | 499 << 17;
    assert!(matches!(
        decode_one(Framing::Lz4, &with_header(Framing::Lz4, lying, &body)),
        Err(FrameError::Decompress { .. })
    ));
}

#[test]
fn byte_by_byte_reads_give_the_same_frames() {
    for framing in Framing::ALL {
        let mut wire = BytesMut::new();
        let mut codec = FrameCodec::new(framing);
        let payloads: Vec<Vec<u8>> = vec![vec![], vec![1], vec![2; 5000], b"tail".to_vec()];
        for p in &payloads {
            codec.encode_payload(p, true, &mut wire).unwrap();
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some(d) = codec.decode(&mut buf).unwrap() {
                got.push(d);
            }
        }
        let want: Vec<Decoded> = payloads.iter().map(|p| frame(p, true)).collect();
        assert_eq!(got, want, "{framing:?}");
    }
}

#[test]
fn end_of_stream_inside_a_frame_is_reported() {
    let wire = encode(Framing::Crc, b"0123456789", true);
    for cut in 1..wire.len() {
        let mut codec = FrameCodec::new(Framing::Crc);
        let mut buf = BytesMut::from(&wire[..cut]);
        assert_eq!(codec.decode(&mut buf), Ok(None));
        assert_eq!(
            codec.decode_eof(&mut buf),
            Err(FrameError::TruncatedStream { buffered: cut })
        );
    }
    let mut codec = FrameCodec::new(Framing::Crc);
    assert_eq!(codec.decode_eof(&mut BytesMut::new()), Ok(None));
}

#[test]
fn decoder_reserves_only_what_the_checked_header_announces() {
    let wire = encode(Framing::Crc, &[0u8; 1000], true);
    let mut codec = FrameCodec::new(Framing::Crc);
    let mut buf = BytesMut::from(&wire[..6]);
    assert_eq!(codec.decode(&mut buf), Ok(None));
    assert!(
        buf.capacity() >= 1004 && buf.capacity() < 4096,
        "{}",
        buf.capacity()
    );
}

#[test]
fn read_buffer_shrinks_back_once_a_small_frame_drains_it_after_a_large_one() {
    let large = encode(Framing::Crc, &[5u8; 70_000], true);
    let small = encode(Framing::Crc, b"ack", true);
    let mut codec = FrameCodec::with_read_capacity(Framing::Crc, 1024);
    let mut buf = BytesMut::with_capacity(1024);
    buf.extend_from_slice(&large[..100]);
    assert_eq!(codec.decode(&mut buf), Ok(None));
    assert!(buf.capacity() >= 70_000, "{}", buf.capacity());
    buf.extend_from_slice(&large[100..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(_))));
    // Drained by a large frame: kept for the next one (a stream of large frames
    // would otherwise allocate its buffer again for every frame).
    assert_eq!(codec.decode(&mut buf), Ok(None));
    assert!(buf.is_empty());
    assert!(buf.capacity() > 1024, "kept {} bytes", buf.capacity());
    // A small frame drains it: given back.
    buf.extend_from_slice(&small);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(_))));
    assert_eq!(codec.decode(&mut buf), Ok(None));
    assert!(buf.is_empty());
    assert!(buf.capacity() <= 1024, "kept {} bytes", buf.capacity());
}

#[test]
fn read_buffer_of_its_own_size_is_kept() {
    let wire = encode(Framing::Crc, b"ack", true);
    let mut codec = FrameCodec::with_read_capacity(Framing::Crc, 1024);
    let mut buf = BytesMut::with_capacity(1024);
    buf.extend_from_slice(&wire);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(_))));
    assert_eq!(codec.decode(&mut buf), Ok(None));
    // Not replaced: what was consumed is reclaimed in place by the next reserve.
    assert_eq!(buf.capacity(), 1024 - wire.len());
}
