//! The `raw` baseline: about the most that TCP over loopback carries on this machine,
//! with the least work per message.
//!
//! A frame is a little-endian `u32` payload length and the payload: no checksum (TCP's
//! own), no envelope. The sender encodes a batch of frames once (about 1 MiB: many
//! small frames, or one large one) and for every write only patches their sequence
//! numbers before one `write_all` of the whole batch. The receiver reads into a
//! buffer of 1 MiB or more and walks the lengths. Requests are batched too: the
//! client writes as many new requests in one write as it has just read responses, and
//! the echo server answers every complete request of one read with one write.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::payload::{self, InOrder, Sink};
use crate::tcp::{self, Mode};
use crate::BenchError;

/// Bytes of frames the sender puts into one write.
const BATCH_BYTES: usize = 1 << 20;
/// The receive buffer's size (it grows for larger frames).
const READ_BYTES: usize = 1 << 20;
/// The frame header: the payload's length.
const HEADER: usize = 4;
/// The largest payload accepted.
const MAX_PAYLOAD: usize = 16 << 20;

/// Frames of one payload size, encoded once and renumbered for every write.
struct Batch {
    bytes: Vec<u8>,
    frame: usize,
}

impl Batch {
    fn new(size: usize, frames: usize) -> Batch {
        let filler = payload::filler(size);
        let mut bytes = Vec::with_capacity(frames * (HEADER + size));
        for _ in 0..frames {
            bytes.put_u32_le(u32::try_from(size).expect("payloads below 4 GiB"));
            payload::put(&mut bytes, 0, &filler);
        }
        Batch {
            bytes,
            frame: HEADER + size,
        }
    }

    /// The first `n` frames, numbered from `first_seq`.
    fn numbered(&mut self, first_seq: u64, n: usize) -> &[u8] {
        for (i, frame) in self.bytes.chunks_exact_mut(self.frame).take(n).enumerate() {
            frame[HEADER..HEADER + payload::SEQ_BYTES]
                .copy_from_slice(&(first_seq + i as u64).to_le_bytes());
        }
        &self.bytes[..n * self.frame]
    }
}

/// The receiving side of a connection: one large buffer, frames found by their lengths.
struct Reader {
    buf: BytesMut,
}

impl Reader {
    fn new() -> Reader {
        Reader {
            buf: BytesMut::with_capacity(READ_BYTES),
        }
    }

    /// Reads what the socket has (waiting for something), then gives `each` every
    /// complete frame now buffered, header included, in order. `false` at the end of
    /// the stream.
    async fn read(
        &mut self,
        stream: &mut (impl AsyncRead + Unpin),
        mut each: impl FnMut(&[u8]),
    ) -> io::Result<bool> {
        if self.buf.capacity() - self.buf.len() < READ_BYTES / 4 {
            self.buf.reserve(READ_BYTES);
        }
        if stream.read_buf(&mut self.buf).await? == 0 {
            return if self.buf.is_empty() {
                Ok(false)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        let mut at = 0;
        while let Some(header) = self.buf.get(at..at + HEADER) {
            let len = u32::from_le_bytes(header.try_into().expect("4 bytes")) as usize;
            if len > MAX_PAYLOAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("frame of {len} B"),
                ));
            }
            let end = at + HEADER + len;
            if end > self.buf.len() {
                break;
            }
            each(&self.buf[at..end]);
            at = end;
        }
        self.buf.advance(at);
        Ok(true)
    }
}

fn closed() -> BenchError {
    BenchError::Failed("raw: the server closed the connection".into())
}

fn io_error(e: io::Error) -> BenchError {
    BenchError::io("raw connection", e)
}

/// The sending side: one connection per mode, opened on first use.
pub struct Client {
    port: u16,
    sink: Option<TcpStream>,
    echo: Option<(TcpStream, Reader)>,
}

impl Client {
    pub fn new(port: u16) -> Client {
        Client {
            port,
            sink: None,
            echo: None,
        }
    }

    async fn sink(&mut self) -> Result<&mut TcpStream, BenchError> {
        if self.sink.is_none() {
            self.sink = Some(tcp::connect(self.port, Mode::Sink).await?);
        }
        Ok(self.sink.as_mut().expect("connected"))
    }

    async fn echo(&mut self) -> Result<(&mut TcpStream, &mut Reader), BenchError> {
        if self.echo.is_none() {
            self.echo = Some((tcp::connect(self.port, Mode::Echo).await?, Reader::new()));
        }
        let (stream, reader) = self.echo.as_mut().expect("connected");
        Ok((stream, reader))
    }

    /// Writes batches of `size`-byte messages until `until`; returns how many.
    pub async fn oneway(
        &mut self,
        size: usize,
        until: Instant,
        first_seq: u64,
    ) -> Result<u64, BenchError> {
        let frames = (BATCH_BYTES / (HEADER + size)).max(1);
        let mut batch = Batch::new(size, frames);
        let stream = self.sink().await?;
        let mut seq = first_seq;
        loop {
            let bytes = batch.numbered(seq, frames);
            stream.write_all(bytes).await.map_err(io_error)?;
            seq += frames as u64;
            if Instant::now() >= until {
                return Ok(seq - first_seq);
            }
        }
    }

    /// One request of `size` bytes at a time until `until`; the round-trip times.
    pub async fn rr(
        &mut self,
        size: usize,
        until: Instant,
        first_seq: u64,
    ) -> Result<Vec<Duration>, BenchError> {
        let mut batch = Batch::new(size, 1);
        let mut responses = InOrder::new(first_seq, size);
        let (stream, reader) = self.echo().await?;
        let mut rtts = Vec::new();
        let mut seq = first_seq;
        while Instant::now() < until {
            let started = Instant::now();
            stream
                .write_all(batch.numbered(seq, 1))
                .await
                .map_err(io_error)?;
            seq += 1;
            while responses.count < seq - first_seq {
                let open = reader
                    .read(stream, |frame| responses.payload(&frame[HEADER..]))
                    .await
                    .map_err(io_error)?;
                if !open {
                    return Err(closed());
                }
            }
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
        let mut batch = Batch::new(size, outstanding);
        let mut responses = InOrder::new(first_seq, size);
        let (stream, reader) = self.echo().await?;
        stream
            .write_all(batch.numbered(first_seq, outstanding))
            .await
            .map_err(io_error)?;
        let mut sent = outstanding as u64;
        while responses.count < sent {
            let before = responses.count;
            let open = reader
                .read(stream, |frame| responses.payload(&frame[HEADER..]))
                .await
                .map_err(io_error)?;
            if !open {
                return Err(closed());
            }
            responses.result()?;
            let answered = (responses.count - before) as usize;
            if answered > 0 && Instant::now() < until {
                let requests = batch.numbered(first_seq + sent, answered);
                stream.write_all(requests).await.map_err(io_error)?;
                sent += answered as u64;
            }
        }
        Ok(sent)
    }
}

/// Serves one connection of a server.
pub async fn serve(mut stream: TcpStream, mode: Mode, sink: Rc<Sink>) -> Result<(), BenchError> {
    let mut reader = Reader::new();
    match mode {
        Mode::Sink => {
            let record = |frame: &[u8]| {
                let payload = &frame[HEADER..];
                sink.record(payload::seq_of(payload), payload.len());
            };
            while reader.read(&mut stream, record).await.map_err(io_error)? {}
        }
        Mode::Echo => {
            let mut out = Vec::new();
            while reader
                .read(&mut stream, |frame| out.extend_from_slice(frame))
                .await
                .map_err(io_error)?
            {
                if !out.is_empty() {
                    stream.write_all(&out).await.map_err(io_error)?;
                    out.clear();
                }
            }
        }
    }
    Ok(())
}

/// One idle link of the idle-memory workload: a connection that has carried one
/// message of `size` bytes, with a task that reads it (small buffer) until it closes.
pub async fn idle_link(port: u16, size: usize) -> Result<tokio::task::JoinHandle<()>, BenchError> {
    let mut stream = tcp::connect(port, Mode::Sink).await?;
    stream
        .write_all(Batch::new(size, 1).numbered(0, 1))
        .await
        .map_err(io_error)?;
    Ok(actix::spawn(async move {
        let mut buf = [0u8; 64];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    }))
}
