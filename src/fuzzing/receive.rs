use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::envelope::{Envelope, Flags};
use crate::frame::{FrameCodec, FrameEncoder, Framing};
use crate::session::{Arrival, ReceiveConfig, ReceiveSession};

/// Drives a receiving core ([`ReceiveSession`]) with a hostile sender's byte stream and
/// checks what it promises.
///
/// The input is a program, one instruction per byte (and its operands):
/// - `0`: a new connection of the same sender session (a reconnect), `1`: of a new
///   session (the sender restarted), then the handshake answer is checked: the
///   resume position is the last sequence number taken in that session (0 for a new
///   one);
/// - `2 s`: a message with sequence number `base + s` in a frame of its own (any
///   order, duplicates allowed: a replay, a reordering); `3 a b`: two messages
///   `base + a` and `base + b` packed in one frame; `4 x`: `base += x` (later numbers);
/// - `5 n ...`: `n` raw bytes straight into the stream (garbage, cut frames, flipped
///   bits);
/// - `6`: the handlers release everything they hold; `7`: a second passes;
///   anything else: the connection ends.
///
/// Every message carries its sender session in its payload. The harness asserts that
/// the core never panics, that the messages of one sender session are handed over
/// with strictly increasing sequence numbers (each at most once, in order, whatever
/// the stream), that the bytes it holds stay within its
/// capacity plus the largest message (it leases no reserve here), and that the resume
/// position of a reconnect is the highest number it took.
pub fn receive(data: &[u8]) {
    let config = ReceiveConfig {
        capacity: 4096,
        lease_chunk: 1024,
        max_message: 2048,
        read_timeout: Duration::from_secs(5),
        keepalive_interval: Duration::from_secs(1),
        ack_bytes: 1024,
        read_capacity: crate::frame::DEFAULT_READ_CAPACITY,
        trim_after: crate::session::TRIM_AFTER,
    };
    let mut core: ReceiveSession<u8> = ReceiveSession::new(config);
    let mut now = Instant::now();
    let now_ms = 1_000_000;
    let mut decoder = FrameCodec::new(Framing::Crc);
    let mut buf = BytesMut::new();
    let mut session = 1u64;
    let mut attempt = 0;
    let mut connected = false;
    let mut base = 0u64;
    // The highest sequence number handed over, per sender session (a restarted
    // sender's earlier messages may still come out of the backlog after it).
    let mut last: HashMap<u64, u64> = HashMap::new();
    let mut held = Vec::new();
    let mut program = data.iter().copied();
    while let Some(op) = program.next() {
        let mut frame = Vec::new();
        match op {
            0 | 1 => {
                if op == 1 {
                    session += 1;
                    base = 0;
                }
                attempt += 1;
                decoder = FrameCodec::new(Framing::Crc);
                buf.clear();
                let resume = core
                    .handle_hello(session, attempt, 0, true, Framing::Crc, now)
                    .expect("attempts only grow");
                let handed = last.get(&session).copied().unwrap_or(0);
                assert!(resume >= handed, "resume {resume} below {handed}");
                connected = true;
                continue;
            }
            2 => frame.push(seq(base, program.next())),
            3 => {
                frame.push(seq(base, program.next()));
                frame.push(seq(base, program.next()));
            }
            4 => {
                base = base.saturating_add(u64::from(program.next().unwrap_or(0)));
                continue;
            }
            5 => {
                let n = program.next().unwrap_or(0);
                let raw: Vec<u8> = program.by_ref().take(usize::from(n)).collect();
                buf.extend_from_slice(&raw);
            }
            6 => {
                for charge in held.drain(..) {
                    if core.handle_processed(charge, now).is_err() {
                        connected = false;
                    }
                }
            }
            7 => {
                now += Duration::from_secs(1);
                if core.handle_timeout(now).is_err() {
                    connected = false;
                }
            }
            _ => {
                core.handle_disconnected(now);
                connected = false;
            }
        }
        if !frame.is_empty() {
            let mut encoder = FrameEncoder::new(Framing::Crc);
            for id in frame {
                let envelope = Envelope {
                    id,
                    verb: 9,
                    flags: Flags::EMPTY,
                    created_at_ms: now_ms,
                    expires_at_ms: None,
                    params: Vec::new(),
                    payload: Bytes::copy_from_slice(&session.to_le_bytes()),
                };
                let mut bytes = BytesMut::new();
                if envelope.encode(&mut bytes).is_ok() {
                    encoder.push(&bytes);
                }
            }
            buf.extend_from_slice(&encoder.take());
        }
        if !connected {
            buf.clear();
            continue;
        }
        loop {
            let item = match decoder.decode(&mut buf) {
                Ok(Some(item)) => Ok(item),
                Ok(None) => {
                    core.handle_caught_up();
                    break;
                }
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if core.handle_input(item, now, now_ms).is_err() || failed {
                connected = false;
                buf.clear();
                break;
            }
        }
        while let Some(arrival) = core.poll_arrival() {
            if let Arrival::Deliver { envelope, charge } = arrival {
                let from = u64::from_le_bytes(envelope.payload[..8].try_into().expect("8 bytes"));
                let before = last.entry(from).or_default();
                assert!(
                    envelope.id > *before,
                    "message {} of session {from} handed over after {before}",
                    envelope.id
                );
                *before = envelope.id;
                held.push(charge);
            }
        }
        assert!(
            core.pending_bytes() <= 4096 + 2048,
            "{} bytes held",
            core.pending_bytes()
        );
        if let Some(handed) = last.get(&session) {
            assert!(core.position() >= *handed || core.position() == 0);
        }
        while core.poll_transmit(now_ms).is_some() {
            core.handle_written();
        }
        let _ = core.poll_acquire();
    }
}

/// Sequence number `base + operand` (never 0: control messages have id 0).
fn seq(base: u64, operand: Option<u8>) -> u64 {
    base.saturating_add(u64::from(operand.unwrap_or(0))).max(1)
}
