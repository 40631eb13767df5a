//! The frame decoder never holds more than about one frame's worth of memory, whatever
//! bytes arrive: lengths come from a checked header and are at most 17 bits.
//!
//! A counting global allocator records, on the test's own thread, the bytes live while
//! a stream is decoded and the largest single allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use internode::frame::{crc24, payload_crc32, FrameCodec, Framing, MAX_PAYLOAD};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

struct Counting;

thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(delta: isize, size: usize) {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    let _ = TRACK.try_with(|t| {
        if t.get() {
            LIVE.with(|l| {
                let live = l.get() + delta;
                l.set(live);
                PEAK.with(|p| p.set(p.get().max(live)));
            });
            LARGEST.with(|m| m.set(m.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size() as isize, layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(-(layout.size() as isize), 0);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size as isize - layout.size() as isize, new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Largest header + payload + trailer, and one decompressed LZ4 payload.
const ONE_FRAME: usize = 8 + MAX_PAYLOAD + 4;
/// What the decoding loop below may hold at once: the receive buffer (which may
/// double while it grows), one decompressed payload, and the chunk being fed.
const BOUND: usize = 2 * (ONE_FRAME + CHUNK) + MAX_PAYLOAD;
const CHUNK: usize = 16 * 1024;

/// Decodes `stream` fed in chunks, dropping each frame as soon as it is decoded
/// (as a connection that hands frames on does), and returns (peak live bytes, largest
/// single allocation) during the decoding.
fn measure(framing: Framing, stream: &[u8]) -> (usize, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    LARGEST.with(|m| m.set(0));
    TRACK.with(|t| t.set(true));
    {
        let mut codec = FrameCodec::new(framing);
        let mut buf = BytesMut::new();
        'feed: for chunk in stream.chunks(CHUNK) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => drop(frame),
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }
    TRACK.with(|t| t.set(false));
    (
        PEAK.with(|p| p.get()).max(0) as usize,
        LARGEST.with(|m| m.get()),
    )
}

/// A header with a valid CRC24 announcing `header`'s lengths, and no payload yet.
fn header(framing: Framing, header: u64) -> Vec<u8> {
    let n = framing.header_len() - 3;
    let word = header | u64::from(crc24(header, n)) << (8 * n);
    word.to_le_bytes()[..framing.header_len()].to_vec()
}

#[test]
fn maximal_claims_and_many_maximal_frames_stay_within_one_frame() {
    // A header announcing the largest payload, and then nothing.
    for framing in Framing::ALL {
        let (peak, largest) = measure(framing, &header(framing, MAX_PAYLOAD as u64));
        assert!(
            peak <= BOUND && largest <= BOUND,
            "{framing:?}: {peak} {largest}"
        );
    }
    // Forty maximal LZ4 frames that each decompress to the maximum: ~5 MiB out.
    let mut stream = Vec::new();
    let block = lz4_flex::block::compress(&vec![0u8; MAX_PAYLOAD]);
    for _ in 0..40 {
        let h = block.len() as u64 | (MAX_PAYLOAD as u64) << 17 | 1 << 34;
        stream.extend_from_slice(&header(Framing::Lz4, h));
        stream.extend_from_slice(&block);
        stream.extend_from_slice(&payload_crc32(&block).to_le_bytes());
    }
    let (peak, largest) = measure(Framing::Lz4, &stream);
    assert!(peak <= BOUND && largest <= BOUND, "lz4: {peak} {largest}");
    // Forty maximal CRC frames: ~5 MiB in.
    let payload = vec![1u8; MAX_PAYLOAD];
    let mut stream = Vec::new();
    for _ in 0..40 {
        stream.extend_from_slice(&header(Framing::Crc, MAX_PAYLOAD as u64 | 1 << 17));
        stream.extend_from_slice(&payload);
        stream.extend_from_slice(&payload_crc32(&payload).to_le_bytes());
    }
    let (peak, largest) = measure(Framing::Crc, &stream);
    eprintln!(
        "crc stream of {} bytes: peak {peak} B live, largest allocation {largest} B",
        stream.len()
    );
    assert!(peak <= BOUND && largest <= BOUND, "crc: {peak} {largest}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_bytes_never_make_the_decoder_hold_more_than_one_frame(
        framing in prop::sample::select(Framing::ALL.to_vec()),
        stream in prop::collection::vec(any::<u8>(), 0..200_000),
    ) {
        let (peak, largest) = measure(framing, &stream);
        prop_assert!(peak <= BOUND, "peak {} > {}", peak, BOUND);
        prop_assert!(largest <= BOUND, "largest {} > {}", largest, BOUND);
    }
}
