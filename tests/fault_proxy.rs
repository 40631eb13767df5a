//! The fault-injecting proxy of the tests (`tests/support/proxy.rs`) on its own, in
//! front of an echo server: cuts after a seeded number of bytes, bit flips, timed
//! cuts, delays (and their core, `DelayLine`, on a clock of its own), and the counters.

#[path = "support/proxy.rs"]
mod proxy;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proxy::{CorruptAt, DelayLine, Faults, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The bound of every test's body.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test timed out")
}

/// An echo server on a free loopback port.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Writes `out` and reads as many bytes back; `None` when the connection ended
/// first (then checks that it ended like a cut: EOF or a reset).
async fn round(stream: &mut TcpStream, out: &[u8]) -> Option<Vec<u8>> {
    let error = match stream.write_all(out).await {
        Err(e) => e,
        Ok(()) => {
            let mut back = vec![0u8; out.len()];
            match stream.read_exact(&mut back).await {
                Ok(_) => return Some(back),
                Err(e) => e,
            }
        }
    };
    let kind = error.kind();
    assert!(
        matches!(
            kind,
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        ),
        "the connection ended with {kind:?}, not like a cut"
    );
    None
}

/// Echo rounds of 100 bytes through a new connection to `proxy` until it is cut;
/// returns the bytes the proxy forwarded meanwhile.
async fn echo_until_cut(proxy: &Proxy) -> u64 {
    let before = proxy.bytes_forwarded();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let out: Vec<u8> = (0..100u8).collect();
    while let Some(back) = round(&mut stream, &out).await {
        assert_eq!(back, out, "no flips asked for");
    }
    proxy.bytes_forwarded() - before
}

fn cutting(seed: u64) -> Faults {
    Faults {
        seed,
        cut_every_bytes: Some((1_000, 5_000)),
        ..Faults::default()
    }
}

#[tokio::test]
async fn without_faults_bytes_pass_unchanged() {
    bounded(async {
        let proxy = Proxy::start(echo_server().await).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let out: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        assert_eq!(round(&mut stream, &out).await.unwrap(), out);
        assert_eq!(proxy.bytes_forwarded(), 20_000);
        assert_eq!((proxy.accepted(), proxy.cuts(), proxy.flips()), (1, 0, 0));
        assert_eq!(proxy.cut(), 1);
        assert_eq!(proxy.cuts(), 1);
        assert!(round(&mut stream, &out).await.is_none(), "cut");
    })
    .await;
}

#[tokio::test]
async fn cut_after_the_drawn_number_of_bytes() {
    bounded(async {
        let faults = cutting(7);
        let expected = faults.cut_point(0).unwrap();
        assert!((1_000..=5_000).contains(&expected));
        let proxy = Proxy::start_with(echo_server().await, faults).await;
        let forwarded = echo_until_cut(&proxy).await;
        assert_eq!(forwarded, expected, "both directions count");
        assert_eq!((proxy.accepted(), proxy.cuts()), (1, 1));
    })
    .await;
}

#[tokio::test]
async fn the_same_seed_gives_the_same_cut_points() {
    bounded(async {
        let echo = echo_server().await;
        let mut runs = Vec::new();
        for seed in [42, 42, 43] {
            let proxy = Proxy::start_with(echo, cutting(seed)).await;
            let mut points = Vec::new();
            for n in 0..5 {
                let forwarded = echo_until_cut(&proxy).await;
                assert_eq!(Some(forwarded), proxy.faults().cut_point(n));
                points.push(forwarded);
            }
            assert_eq!(proxy.cuts(), 5);
            assert!(points.iter().all(|p| (1_000..=5_000).contains(p)));
            runs.push(points);
        }
        assert_eq!(runs[0], runs[1], "seed 42 twice");
        assert_ne!(runs[0], runs[2], "seeds 42 and 43");
        assert!(runs[0].windows(2).any(|w| w[0] != w[1]), "the points vary");
    })
    .await;
}

#[tokio::test]
async fn flip_probability_one_flips_one_bit_per_chunk() {
    bounded(async {
        let faults = Faults {
            seed: 1,
            flip_probability: 1.0,
            ..Faults::default()
        };
        let proxy = Proxy::start_with(echo_server().await, faults).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let _ = stream.set_nodelay(true);
        let out = vec![0x5au8; 64];
        for i in 0..50 {
            let flips = proxy.flips();
            let back = round(&mut stream, &out).await.expect("no cuts asked for");
            // Flips are counted before the chunk is forwarded, so before the echo.
            let chunks = proxy.flips() - flips;
            let diff: u32 = back
                .iter()
                .zip(&out)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert!(chunks >= 1, "round {i}: every chunk is flipped");
            assert_eq!(u64::from(diff), chunks, "round {i}: one bit per chunk");
        }
        assert_eq!(proxy.cuts(), 0);
    })
    .await;
}

#[tokio::test]
async fn corrupt_next_counts_as_a_flip() {
    bounded(async {
        let proxy = Proxy::start(echo_server().await).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.corrupt_next(CorruptAt::LastByte);
        let out = vec![0u8; 64];
        let back = round(&mut stream, &out).await.unwrap();
        assert!(!proxy.corruption_pending());
        assert_eq!(proxy.flips(), 1);
        assert_eq!(back[63], 0x10, "the last byte of the only chunk");
        assert!(back[..63].iter().all(|&b| b == 0));
    })
    .await;
}

#[tokio::test]
async fn timed_cuts_repeat() {
    bounded(async {
        let faults = Faults {
            seed: 3,
            cut_every: Some((Duration::from_millis(5), Duration::from_millis(30))),
            ..Faults::default()
        };
        let proxy = Proxy::start_with(echo_server().await, faults).await;
        for n in 1..=3 {
            let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
            // One round trip: the proxy holds the connection. Then wait for the cut.
            let out = [1u8; 10];
            if round(&mut stream, &out).await.is_some() {
                let mut rest = Vec::new();
                let ended = stream.read_to_end(&mut rest).await;
                assert!(rest.is_empty(), "nothing more was sent");
                if let Err(e) = ended {
                    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
                }
            }
            assert_eq!(proxy.accepted(), n);
            assert_eq!(proxy.cuts(), n, "each connection is cut once");
        }
    })
    .await;
}

#[test]
fn faults_are_checked() {
    assert!(Faults::default().check().is_ok());
    assert!(cutting(0).check().is_ok());
    let bad = [
        Faults {
            cut_every_bytes: Some((2, 1)),
            ..Faults::default()
        },
        Faults {
            flip_probability: 1.5,
            ..Faults::default()
        },
        Faults {
            cut_every: Some((Duration::ZERO, Duration::from_millis(1))),
            ..Faults::default()
        },
    ];
    for faults in bad {
        assert!(faults.check().is_err(), "{faults:?}");
    }
}

// ---------------------------------------------------------------------------------
// Delays.

#[test]
fn a_delay_line_holds_each_item_for_the_delay_in_order() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut line = DelayLine::new(Duration::from_millis(50), 1000);
    assert_eq!(line.poll_timeout(), None);
    assert_eq!(line.poll_due(ms(1_000)), None);
    line.handle_arrival(ms(0), "a", 10);
    line.handle_arrival(ms(5), "b", 20);
    line.handle_arrival(ms(5), "end", 0);
    assert_eq!(line.bytes(), 30);
    assert_eq!(line.poll_timeout(), Some(ms(50)));
    assert_eq!(line.poll_due(ms(49)), None, "not before the delay");
    assert_eq!(line.poll_due(ms(50)), Some("a"));
    assert_eq!(line.poll_timeout(), Some(ms(55)));
    assert_eq!(line.poll_due(ms(54)), None);
    // Late: everything due comes out, in order.
    assert_eq!(line.poll_due(ms(500)), Some("b"));
    assert_eq!(line.poll_due(ms(500)), Some("end"));
    assert_eq!(line.poll_due(ms(500)), None);
    assert!(line.is_empty());
    assert_eq!(line.bytes(), 0);
}

#[test]
fn a_delay_line_never_reorders_even_if_the_clock_goes_back() {
    let t0 = Instant::now() + Duration::from_secs(1);
    let mut line = DelayLine::new(Duration::from_millis(10), usize::MAX);
    line.handle_arrival(t0, 1, 1);
    line.handle_arrival(t0 - Duration::from_millis(5), 2, 1);
    assert_eq!(line.poll_due(t0 + Duration::from_millis(9)), None);
    let at = t0 + Duration::from_millis(10);
    assert_eq!((line.poll_due(at), line.poll_due(at)), (Some(1), Some(2)));
}

#[test]
fn a_delay_line_has_room_below_its_capacity() {
    let now = Instant::now();
    let mut line = DelayLine::new(Duration::ZERO, 100);
    line.handle_arrival(now, (), 99);
    assert!(line.has_room());
    // One item may pass the capacity (a chunk larger than it still goes through).
    line.handle_arrival(now, (), 1_000);
    assert!(!line.has_room());
    assert_eq!(line.poll_due(now), Some(()));
    assert!(!line.has_room(), "1000 bytes still wait");
    assert_eq!(line.poll_due(now), Some(()));
    assert!(line.has_room());
}

fn delaying(ms: u64) -> Faults {
    Faults {
        delay: Duration::from_millis(ms),
        ..Faults::default()
    }
}

#[tokio::test]
async fn a_delay_applies_to_both_directions_and_keeps_the_bytes() {
    bounded(async {
        let proxy = Proxy::start_with(echo_server().await, delaying(100)).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let out: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        let started = Instant::now();
        // Written and read at once (300 kB do not fit in the socket buffers).
        let (mut r, mut w) = stream.split();
        let write = async {
            w.write_all(&out).await.unwrap();
        };
        let read = async {
            let mut back = vec![0u8; out.len()];
            r.read_exact(&mut back).await.unwrap();
            back
        };
        let ((), back) = tokio::join!(write, read);
        let elapsed = started.elapsed();
        assert!(back == out, "the bytes come back unchanged, in order");
        assert!(
            elapsed >= Duration::from_millis(200),
            "{elapsed:?}: 100 ms each way"
        );
        assert_eq!(proxy.bytes_forwarded(), 600_000);
    })
    .await;
}

#[tokio::test]
async fn a_delay_does_not_serialize_round_trips() {
    bounded(async {
        let proxy = Proxy::start_with(echo_server().await, delaying(100)).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let (mut r, mut w) = stream.split();
        let started = Instant::now();
        // Ten small writes 10 ms apart: each arrives 200 ms after it was written, so
        // the last one about 290 ms after the start, not ten round trips later.
        let write = async {
            for i in 0..10u8 {
                w.write_all(&[i; 100]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let read = async {
            let mut arrivals = Vec::new();
            let mut buf = [0u8; 100];
            for i in 0..10u8 {
                r.read_exact(&mut buf).await.unwrap();
                assert_eq!(buf, [i; 100], "in order");
                arrivals.push(started.elapsed());
            }
            arrivals
        };
        let ((), arrivals) = tokio::join!(write, read);
        assert!(arrivals[0] >= Duration::from_millis(200), "{arrivals:?}");
        assert!(arrivals[9] >= Duration::from_millis(290), "{arrivals:?}");
        // Generous for a loaded machine, and still far below ten round trips (2 s).
        assert!(arrivals[9] < Duration::from_millis(1_200), "{arrivals:?}");
    })
    .await;
}

#[tokio::test]
async fn a_delay_holds_the_end_of_the_stream_too() {
    bounded(async {
        let proxy = Proxy::start_with(echo_server().await, delaying(80)).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let started = Instant::now();
        stream.write_all(b"last words").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut back = Vec::new();
        stream.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"last words");
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(160), "{elapsed:?}");
    })
    .await;
}

#[tokio::test]
async fn a_delayed_proxy_cuts_after_the_drawn_number_of_bytes() {
    bounded(async {
        let faults = Faults {
            delay: Duration::from_millis(20),
            ..cutting(7)
        };
        let expected = faults.cut_point(0).unwrap();
        let proxy = Proxy::start_with(echo_server().await, faults).await;
        let forwarded = echo_until_cut(&proxy).await;
        assert_eq!(forwarded, expected, "the same cut point as without a delay");
        assert_eq!((proxy.accepted(), proxy.cuts()), (1, 1));
    })
    .await;
}
