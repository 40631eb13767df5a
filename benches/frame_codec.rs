//! Micro-benchmark of the frame codec against the limits it is built from.
//!
//! For CRC and LZ4 frames of 64 B, 4 KiB and 64 KiB payloads it times frame encode and
//! decode, and in the same run times the work no frame codec can avoid on the same
//! data: crc32fast alone (CRC frames), and lz4_flex compress or decompress alone (LZ4
//! frames). It prints each codec's throughput and its ratio to that limit; the median
//! of several interleaved repetitions is reported, with the spread.
//!
//! `cargo bench --bench frame_codec` (add `-- --quick` for a short smoke run).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use internode::frame::{Decoded, FrameCodec, Framing};
use tokio_util::codec::Decoder;

/// Text-like data that LZ4 shrinks by about half, as typical messages do.
fn data(len: usize) -> Vec<u8> {
    let words: [&[u8]; 8] = [
        b"node ",
        b"link ",
        b"frame ",
        b"message ",
        b"12345 ",
        b"urgent ",
        b"payload ",
        b"x ",
    ];
    let mut x: u32 = 0x1234_5678;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if x % 4 == 0 {
            out.push((x >> 8) as u8);
        } else {
            out.extend_from_slice(words[(x >> 24) as usize % 8]);
        }
    }
    out.truncate(len);
    out
}

/// Runs `op` (which processes `bytes` bytes) repeatedly for about `time`; returns MB/s.
fn throughput(time: Duration, bytes: usize, mut op: impl FnMut()) -> f64 {
    op(); // warm up caches and buffers
    let start = Instant::now();
    let mut iterations = 0u64;
    while start.elapsed() < time {
        for _ in 0..16 {
            op();
        }
        iterations += 16;
    }
    (iterations as f64 * bytes as f64) / start.elapsed().as_secs_f64() / 1e6
}

/// Like [`throughput`], but each run of `op` gets a fresh input from `setup`, whose
/// time is not counted (`op` must take long enough for a clock read to be noise).
fn throughput_with_setup<T>(
    time: Duration,
    bytes: usize,
    mut setup: impl FnMut() -> T,
    mut op: impl FnMut(T),
) -> f64 {
    op(setup());
    let mut timed = Duration::ZERO;
    let mut iterations = 0u64;
    while timed < time {
        let input = setup();
        let start = Instant::now();
        op(input);
        timed += start.elapsed();
        iterations += 1;
    }
    (iterations as f64 * bytes as f64) / timed.as_secs_f64() / 1e6
}

struct Case {
    name: String,
    ours: Vec<f64>,
    limit: Vec<f64>,
    limit_name: &'static str,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn spread(v: &[f64]) -> f64 {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    (hi - lo) / median(v) * 100.0
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (time, reps) = if quick {
        (Duration::from_millis(20), 3)
    } else {
        (Duration::from_millis(300), 7)
    };
    let mut cases: Vec<Case> = Vec::new();
    for rep in 0..reps {
        let mut i = 0;
        for size in [64usize, 4096, 65_536] {
            let payload = data(size);
            // Enough frames per decode pass that buffer setup is negligible.
            let frames_per_pass = (1 << 20) / size.max(1024);
            for framing in [Framing::Crc, Framing::Lz4] {
                let mut codec = FrameCodec::new(framing);
                let mut out = BytesMut::with_capacity(size + 64);
                let encode = throughput(time, size, || {
                    out.clear();
                    codec
                        .encode_payload(black_box(&payload), true, &mut out)
                        .unwrap();
                    black_box(&out);
                });

                let mut wire = BytesMut::new();
                for _ in 0..frames_per_pass {
                    codec.encode_payload(&payload, true, &mut wire).unwrap();
                }
                let wire = wire.freeze();
                // The copy into a receive buffer is the socket read's, not the codec's.
                let decode = throughput_with_setup(
                    time,
                    size * frames_per_pass,
                    || BytesMut::from(&wire[..]),
                    |mut buf| {
                        let mut decoder = FrameCodec::new(framing);
                        while let Some(d) = decoder.decode(&mut buf).unwrap() {
                            assert!(matches!(d, Decoded::Frame(_)));
                            black_box(d);
                        }
                    },
                );

                let (enc_limit, dec_limit, names) = match framing {
                    Framing::Lz4 => {
                        let mut scratch = vec![0u8; lz4_flex::block::get_maximum_output_size(size)];
                        let compress = throughput(time, size, || {
                            let n =
                                lz4_flex::block::compress_into(black_box(&payload), &mut scratch)
                                    .unwrap();
                            black_box(n);
                        });
                        let block = lz4_flex::block::compress(&payload);
                        let mut plain = vec![0u8; size];
                        let decompress = throughput(time, size, || {
                            let n = lz4_flex::block::decompress_into(black_box(&block), &mut plain)
                                .unwrap();
                            black_box(n);
                        });
                        (compress, decompress, ("lz4 compress", "lz4 decompress"))
                    }
                    _ => {
                        let crc = throughput(time, size, || {
                            black_box(crc32fast::hash(black_box(&payload)));
                        });
                        (crc, crc, ("crc32fast", "crc32fast"))
                    }
                };
                for (op, ours, limit, limit_name) in [
                    ("encode", encode, enc_limit, names.0),
                    ("decode", decode, dec_limit, names.1),
                ] {
                    if rep == 0 {
                        cases.push(Case {
                            name: format!("{framing:?} {op} {size} B"),
                            ours: Vec::new(),
                            limit: Vec::new(),
                            limit_name,
                        });
                    }
                    cases[i].ours.push(ours);
                    cases[i].limit.push(limit);
                    i += 1;
                }
            }
        }
    }

    println!(
        "{:<24} {:>12} {:>8} {:>16} {:>12} {:>8} {:>7}",
        "case", "MB/s", "spread", "limit", "MB/s", "spread", "ratio"
    );
    for c in &cases {
        let ratios: Vec<f64> = c.ours.iter().zip(&c.limit).map(|(o, l)| o / l).collect();
        println!(
            "{:<24} {:>12.0} {:>7.0}% {:>16} {:>12.0} {:>7.0}% {:>7.2}",
            c.name,
            median(&c.ours),
            spread(&c.ours),
            c.limit_name,
            median(&c.limit),
            spread(&c.limit),
            median(&ratios)
        );
    }
    println!("({reps} repetitions of {time:?} per figure, medians; ratio = ours / limit, median of per-repetition ratios)");
}
