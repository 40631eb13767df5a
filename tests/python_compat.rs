//! Byte compatibility with an independent implementation of the frame format: the
//! DataStax Python driver's CQL v5 segments (`cassandra.segment`, with `lz4`).
//!
//! The test installs the driver into a virtual environment under the target
//! directory on first use (from PyPI, pinned versions), or uses the interpreter named
//! by `INTERNODE_COMPAT_PYTHON`.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::BytesMut;
use internode::frame::{Decoded, FrameCodec, FrameEncoder, Framing, MAX_PAYLOAD};
use tokio_util::codec::Decoder;

const REQUIREMENTS: [&str; 2] = ["cassandra-driver==3.30.1", "lz4==4.4.5"];

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Python interpreter that has the driver, installing it once if needed.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("INTERNODE_COMPAT_PYTHON") {
        return p.into();
    }
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = base.join("compat-venv");
    let python = venv.join("bin/python");
    if python.exists() {
        return python;
    }
    // Build aside and rename, so that an interrupted install is never taken for a
    // finished one.
    let partial = base.join(format!("compat-venv.partial-{}", std::process::id()));
    run(Command::new("python3").arg("-m").arg("venv").arg(&partial));
    run(Command::new(partial.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(REQUIREMENTS)
        // The pure-Python driver is all we need; skip its optional C extensions.
        .env("CASS_DRIVER_NO_EXTENSIONS", "1"));
    // The interpreter finds its packages relative to its own path, so the renamed
    // environment works (only pip's scripts would still name the old path).
    std::fs::rename(&partial, &venv).expect("move the environment into place");
    python
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn text(len: usize) -> Vec<u8> {
    b"internode frames are cassandra segments; "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn encode(framing: Framing, payload: &[u8]) -> Vec<u8> {
    let mut encoder = FrameEncoder::new(framing);
    encoder.push(payload);
    encoder.take().to_vec()
}

fn decode(framing: Framing, wire: &[u8]) -> Vec<(Vec<u8>, bool)> {
    let mut codec = FrameCodec::new(framing);
    let mut buf = BytesMut::from(wire);
    let mut out = Vec::new();
    while let Some(decoded) = codec.decode_eof(&mut buf).expect("a valid stream") {
        match decoded {
            Decoded::Frame(f) => out.push((f.payload.to_vec(), f.self_contained)),
            corrupt => panic!("{corrupt:?}"),
        }
    }
    out
}

#[test]
fn frames_decode_both_ways_and_crc_frames_are_byte_identical() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("compat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sizes = [
        0,
        1,
        2,
        64,
        1000,
        4096,
        65_536,
        MAX_PAYLOAD - 1,
        MAX_PAYLOAD,
        MAX_PAYLOAD + 1,
        300_000,
    ];
    let mut cases = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        for (kind, payload) in [("noise", noise(len, i as u64 + 7)), ("text", text(len))] {
            let name = format!("{kind}-{len}");
            std::fs::write(dir.join(format!("{name}.payload")), &payload).unwrap();
            std::fs::write(
                dir.join(format!("{name}.crc.rs")),
                encode(Framing::Crc, &payload),
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("{name}.lz4.rs")),
                encode(Framing::Lz4, &payload),
            )
            .unwrap();
            cases.push((name, payload));
        }
    }
    let list: Vec<&str> = cases.iter().map(|(n, _)| n.as_str()).collect();
    std::fs::write(dir.join("cases.txt"), list.join("\n")).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/segment_compat.py");
    run(Command::new(python()).arg(&script).arg(&dir));

    for (name, payload) in &cases {
        for (kind, framing) in [("crc", Framing::Crc), ("lz4", Framing::Lz4)] {
            let theirs = std::fs::read(dir.join(format!("{name}.{kind}.py"))).unwrap();
            let frames = decode(framing, &theirs);
            let joined: Vec<u8> = frames.iter().flat_map(|(p, _)| p.clone()).collect();
            assert_eq!(&joined, payload, "{name}.{kind}: payload");
            let split = payload.len() > MAX_PAYLOAD;
            assert!(
                frames.iter().all(|(_, sc)| *sc != split),
                "{name}.{kind}: flags"
            );
            if framing == Framing::Crc {
                let ours = std::fs::read(dir.join(format!("{name}.crc.rs"))).unwrap();
                assert!(
                    ours == theirs,
                    "{name}: CRC frames differ from the driver's bytes"
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
