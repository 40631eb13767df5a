//! The fault-injecting proxy of the tests (`tests/support/proxy.rs`) on its own, in
//! front of an echo server: cuts after a seeded number of bytes, bit flips, timed
//! cuts, and the counters.

#[path = "support/proxy.rs"]
mod proxy;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use proxy::{CorruptAt, Faults, Proxy};
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
