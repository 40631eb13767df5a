//! The `framed` baseline: what a developer would write by hand with tokio-util.
//!
//! [`CrcCodec`] frames a payload as its little-endian `u32` length, the CRC-32
//! (crc32fast) of the payload, and the payload; the decoder checks the CRC and fails
//! the connection on a mismatch. Connections are `Framed<TcpStream, CrcCodec>` used
//! through `SinkExt` and `StreamExt`: every message is its own `Bytes`, built when it
//! is sent; the sender `feed`s them (`Framed` writes when its buffer passes 8 KiB)
//! and flushes at the end; one request at a time is `send` then `next`. With many
//! requests outstanding, the client and the echo server take every response or request
//! already decoded (`now_or_never`) before one flush, as a careful developer would.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder, Framed};

use crate::payload::{self, InOrder, Sink};
use crate::tcp::{self, Mode};
use crate::BenchError;

/// The frame header: payload length, payload CRC-32.
const HEADER: usize = 8;
/// The largest payload accepted.
const MAX_PAYLOAD: usize = 16 << 20;

/// Length, CRC-32 and payload; the decoder checks the CRC.
pub struct CrcCodec;

impl Decoder for CrcCodec {
    type Item = Bytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
        let Some(header) = src.get(..HEADER) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} B"),
            ));
        }
        if src.len() < HEADER + len {
            src.reserve(HEADER + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER);
        let payload = src.split_to(len).freeze();
        if crc32fast::hash(&payload) != crc {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "payload CRC mismatch",
            ));
        }
        Ok(Some(payload))
    }
}

impl Encoder<Bytes> for CrcCodec {
    type Error = io::Error;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l as usize <= MAX_PAYLOAD)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "payload too large"))?;
        dst.reserve(HEADER + payload.len());
        dst.put_u32_le(len);
        dst.put_u32_le(crc32fast::hash(&payload));
        dst.put_slice(&payload);
        Ok(())
    }
}

type Connection = Framed<TcpStream, CrcCodec>;

/// A message as a developer would build it: a fresh buffer per message.
fn message(seq: u64, filler: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(payload::SEQ_BYTES + filler.len());
    payload::put(&mut buf, seq, filler);
    buf.freeze()
}

fn io_error(e: io::Error) -> BenchError {
    BenchError::io("framed connection", e)
}

/// The next frame, or an error if the connection ended.
async fn next(connection: &mut Connection) -> Result<Bytes, BenchError> {
    match connection.next().await {
        Some(frame) => frame.map_err(io_error),
        None => Err(BenchError::Failed(
            "framed: the server closed the connection".into(),
        )),
    }
}

/// The sending side: one connection per mode, opened on first use.
pub struct Client {
    port: u16,
    sink: Option<Connection>,
    echo: Option<Connection>,
}

impl Client {
    pub fn new(port: u16) -> Client {
        Client {
            port,
            sink: None,
            echo: None,
        }
    }

    async fn connection(
        port: u16,
        slot: &mut Option<Connection>,
        mode: Mode,
    ) -> Result<&mut Connection, BenchError> {
        if slot.is_none() {
            *slot = Some(Framed::new(tcp::connect(port, mode).await?, CrcCodec));
        }
        Ok(slot.as_mut().expect("connected"))
    }

    /// Feeds `size`-byte messages until `until`, then flushes; returns how many.
    pub async fn oneway(
        &mut self,
        size: usize,
        until: Instant,
        first_seq: u64,
    ) -> Result<u64, BenchError> {
        let filler = payload::filler(size);
        let every = payload::between_clock_reads(size);
        let connection = Self::connection(self.port, &mut self.sink, Mode::Sink).await?;
        let mut seq = first_seq;
        loop {
            for _ in 0..every {
                connection
                    .feed(message(seq, &filler))
                    .await
                    .map_err(io_error)?;
                seq += 1;
            }
            if Instant::now() >= until {
                break;
            }
        }
        connection.flush().await.map_err(io_error)?;
        Ok(seq - first_seq)
    }

    /// One request of `size` bytes at a time until `until`; the round-trip times.
    pub async fn rr(
        &mut self,
        size: usize,
        until: Instant,
        first_seq: u64,
    ) -> Result<Vec<Duration>, BenchError> {
        let filler = payload::filler(size);
        let mut responses = InOrder::new(first_seq, size);
        let connection = Self::connection(self.port, &mut self.echo, Mode::Echo).await?;
        let mut rtts = Vec::new();
        let mut seq = first_seq;
        while Instant::now() < until {
            let started = Instant::now();
            connection
                .send(message(seq, &filler))
                .await
                .map_err(io_error)?;
            seq += 1;
            responses.payload(&next(connection).await?);
            rtts.push(started.elapsed());
            responses.result()?;
        }
        Ok(rtts)
    }

    /// `outstanding` requests of `size` bytes in flight until `until`; returns how
    /// many were answered.
    pub async fn rr_outstanding(
        &mut self,
        size: usize,
        outstanding: usize,
        until: Instant,
        first_seq: u64,
    ) -> Result<u64, BenchError> {
        let filler = payload::filler(size);
        let mut responses = InOrder::new(first_seq, size);
        let connection = Self::connection(self.port, &mut self.echo, Mode::Echo).await?;
        let mut sent = 0u64;
        for _ in 0..outstanding {
            connection
                .feed(message(first_seq + sent, &filler))
                .await
                .map_err(io_error)?;
            sent += 1;
        }
        connection.flush().await.map_err(io_error)?;
        while responses.count < sent {
            responses.payload(&next(connection).await?);
            let mut answered = 1;
            while let Some(Some(frame)) = connection.next().now_or_never() {
                responses.payload(&frame.map_err(io_error)?);
                answered += 1;
            }
            responses.result()?;
            if Instant::now() < until {
                for _ in 0..answered {
                    connection
                        .feed(message(first_seq + sent, &filler))
                        .await
                        .map_err(io_error)?;
                    sent += 1;
                }
                connection.flush().await.map_err(io_error)?;
            }
        }
        Ok(sent)
    }
}

/// Serves one connection of a server.
pub async fn serve(stream: TcpStream, mode: Mode, sink: Rc<Sink>) -> Result<(), BenchError> {
    let mut connection = Framed::new(stream, CrcCodec);
    match mode {
        Mode::Sink => {
            while let Some(frame) = connection.next().await {
                let frame = frame.map_err(io_error)?;
                sink.record(payload::seq_of(&frame), frame.len());
            }
        }
        Mode::Echo => {
            while let Some(frame) = connection.next().await {
                connection
                    .feed(frame.map_err(io_error)?)
                    .await
                    .map_err(io_error)?;
                while let Some(Some(frame)) = connection.next().now_or_never() {
                    connection
                        .feed(frame.map_err(io_error)?)
                        .await
                        .map_err(io_error)?;
                }
                connection.flush().await.map_err(io_error)?;
            }
        }
    }
    Ok(())
}

/// One idle link of the idle-memory workload: a connection that has carried one
/// message of `size` bytes, with a task that reads it until it closes.
pub async fn idle_link(port: u16, size: usize) -> Result<tokio::task::JoinHandle<()>, BenchError> {
    let mut connection = Framed::new(tcp::connect(port, Mode::Sink).await?, CrcCodec);
    connection
        .send(message(0, &payload::filler(size)))
        .await
        .map_err(io_error)?;
    Ok(actix::spawn(async move {
        while let Some(Ok(_)) = connection.next().await {}
    }))
}
