//! The wire protocol at work, without sockets: two nodes shake hands, one packs
//! messages into LZ4 frames, the other reads them back in MTU-sized pieces, then a
//! corrupt frame is skipped and a corrupt header ends the stream.
//!
//! `cargo run --example codecs` prints what happens and exits non-zero if any step
//! does not hold.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use internode::envelope::{self, Envelope, Flags, MessageAssembler};
use internode::frame::{Decoded, FrameCodec, FrameEncoder, FrameError, Framing};
use internode::handshake::{AcceptParams, Acceptor, AcceptorConfig, Hello, Initiator};
use internode::{LinkKind, NodeId};
use tokio_util::codec::Decoder;

type Check = Result<(), String>;

fn ensure(ok: bool, what: impl Into<String>) -> Check {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn handshake() -> Result<Framing, String> {
    let now = Instant::now();
    let addr: SocketAddr = "127.0.0.1:20001".parse().unwrap();
    let hello = Hello::new(NodeId(1), addr, LinkKind::Small, Framing::Lz4);
    let mut initiator = Initiator::new(hello, now, Duration::from_secs(5));
    let mut acceptor = Acceptor::new(AcceptorConfig::new(NodeId(2)), now, Duration::from_secs(5));

    let hello_bytes = initiator.poll_transmit().ok_or("initiator sent nothing")?;
    let hello = acceptor
        .handle_input(&hello_bytes, now)
        .map_err(|e| e.to_string())?
        .ok_or("acceptor needs more than the whole Hello")?;
    let accepted = acceptor
        .accept(AcceptParams::default())
        .map_err(|e| e.to_string())?;
    let answer = acceptor.poll_transmit().ok_or("acceptor sent nothing")?;
    let established = initiator
        .handle_input(&answer, now)
        .map_err(|e| e.to_string())?
        .ok_or("initiator needs more than the whole Accept")?;
    println!(
        "handshake: {} -> {} ({} B hello, {} B accept): version {}, {} framing, {} link",
        hello.node_id,
        established.peer_node_id,
        hello_bytes.len(),
        answer.len(),
        established.version,
        established.framing,
        accepted.link_kind
    );
    ensure(
        established.peer_node_id == NodeId(2),
        "initiator sees the wrong peer",
    )?;
    ensure(
        accepted.peer_node_id == NodeId(1),
        "acceptor sees the wrong peer",
    )?;
    Ok(established.framing)
}

fn messages(now_ms: u64) -> Vec<Envelope> {
    let text = |n: usize| -> Bytes {
        b"node 1 says hello to node 2; "
            .iter()
            .copied()
            .cycle()
            .take(n)
            .collect()
    };
    let mut out: Vec<Envelope> = (0..50)
        .map(|i| Envelope {
            id: i,
            verb: 10,
            flags: Flags::EMPTY,
            created_at_ms: now_ms,
            expires_at_ms: Some(now_ms + 2_000),
            params: Vec::new(),
            payload: text(100 + i as usize),
        })
        .collect();
    out.push(Envelope {
        id: 50,
        verb: 11,
        flags: Flags::REQUEST,
        created_at_ms: now_ms,
        expires_at_ms: None,
        params: vec![(1, Bytes::from_static(b"trace-id-42"))],
        payload: text(300_000),
    });
    out
}

fn transfer(framing: Framing) -> Check {
    let now_ms = 1_700_000_000_000;
    let sent = messages(now_ms);
    let mut encoder = FrameEncoder::new(framing);
    let mut raw = 0;
    for m in &sent {
        let bytes = m.to_bytes().map_err(|e| e.to_string())?;
        raw += bytes.len();
        encoder.push(&bytes);
    }
    let wire = encoder.take();
    println!(
        "sent {} messages ({} B of envelopes) as {} B of {} frames",
        sent.len(),
        raw,
        wire.len(),
        framing
    );

    // The receiver reads 1500-byte pieces, as a socket would hand them over.
    let mut codec = FrameCodec::new(framing);
    let mut assembler = MessageAssembler::new(1 << 20);
    let mut buf = BytesMut::new();
    let mut frames = 0;
    let mut received = Vec::new();
    for piece in wire.chunks(1500) {
        buf.extend_from_slice(piece);
        while let Some(decoded) = codec.decode(&mut buf).map_err(|e| e.to_string())? {
            let Decoded::Frame(frame) = decoded else {
                return Err(format!("unexpected {decoded:?}"));
            };
            frames += 1;
            assembler
                .push(frame, &mut received)
                .map_err(|e| e.to_string())?;
        }
    }
    let mut decoded = Vec::new();
    for mut bytes in received {
        let header = envelope::peek(&bytes).map_err(|e| e.to_string())?;
        ensure(!header.is_expired(now_ms + 1_000), "message expired early")?;
        decoded.push(Envelope::decode(&mut bytes).map_err(|e| e.to_string())?);
    }
    println!(
        "received {} frames -> {} messages; the large one: {} B, param {:?}",
        frames,
        decoded.len(),
        decoded.last().map_or(0, |m| m.payload.len()),
        decoded
            .last()
            .map(|m| String::from_utf8_lossy(&m.params[0].1).into_owned())
    );
    ensure(decoded == sent, "messages differ after the round trip")
}

fn corruption() -> Check {
    let mut codec = FrameCodec::new(Framing::Crc);
    let mut wire = BytesMut::new();
    codec
        .encode_payload(b"will be damaged", true, &mut wire)
        .map_err(|e| e.to_string())?;
    codec
        .encode_payload(b"arrives intact", true, &mut wire)
        .map_err(|e| e.to_string())?;
    wire[8] ^= 0x01; // a payload bit of the first frame
    match codec.decode(&mut wire) {
        Ok(Some(Decoded::Corrupt { payload_len, .. })) => {
            println!("payload bit flipped: frame of {payload_len} B reported corrupt and skipped")
        }
        other => return Err(format!("expected a corrupt frame, got {other:?}")),
    }
    match codec.decode(&mut wire) {
        Ok(Some(Decoded::Frame(f))) if &f.payload[..] == b"arrives intact" => {
            println!(
                "next frame decodes: {:?}",
                String::from_utf8_lossy(&f.payload)
            )
        }
        other => return Err(format!("expected the next frame, got {other:?}")),
    }

    let mut codec = FrameCodec::new(Framing::Crc);
    let mut wire = BytesMut::new();
    codec
        .encode_payload(b"header damaged", true, &mut wire)
        .map_err(|e| e.to_string())?;
    wire[1] ^= 0x40;
    match codec.decode(&mut wire) {
        Err(e @ FrameError::HeaderCrc { .. }) => {
            println!("header bit flipped: {e}: the connection must be reset");
            Ok(())
        }
        other => Err(format!("expected a header CRC error, got {other:?}")),
    }
}

fn main() -> ExitCode {
    let result = handshake().and_then(|framing| {
        transfer(framing)?;
        transfer(Framing::Crc)?;
        corruption()
    });
    match result {
        Ok(()) => {
            println!("ok: every step held");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
