//! A connection's byte stream: plain TCP, or TLS over TCP (a node with a
//! [`TlsConfig`](super::TlsConfig)). The actors read and write it without knowing
//! which.
//!
//! A plain stream splits into tokio's owned halves (no lock between them); a TLS
//! stream into `tokio::io::split` halves, which take turns on the one TLS session
//! (the reading and the writing task of a connection run on the same thread, so
//! the turns are never contended). A writer must flush after each write: rustls
//! may hold the last record of a write until then (a no-op for plain TCP); see
//! [`write_all_flush`].
//!
//! Nodes close connections by dropping them, without TLS's `close_notify`, so a TLS
//! read that ends without one is the end of the stream, as on plain TCP (a frame cut
//! short is still caught by the frame decoder, which knows its length).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use super::tls;
use crate::session::DisconnectReason;

/// How long a connection is idle before the kernel probes it (TCP keepalive).
pub(crate) const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// The interval between the kernel's keepalive probes once it started (the count is
/// the system's, 9 on Linux): a connection whose peer vanished ends about 60 s + 9 x
/// 10 s after it fell silent.
pub(crate) const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Sets a new connection's socket options, on both sides: no Nagle delay, and TCP
/// keepalive. Links ping only while they have something unconfirmed (and one link per
/// peer while idle), and a receiving side applies no read timeout to an idle
/// connection (docs/design.md, "Writing and heartbeats"): the kernel's keepalive is
/// what ends an idle connection whose peer vanished, at no cost to the process until
/// it does. Failures are ignored (the connection works without them).
pub(crate) fn configure(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE_IDLE);
    #[cfg(any(
        target_os = "android",
        target_os = "freebsd",
        target_os = "ios",
        target_os = "linux",
        target_os = "macos",
        target_os = "netbsd",
        target_os = "windows",
    ))]
    let keepalive = keepalive.with_interval(TCP_KEEPALIVE_INTERVAL);
    let _ = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive);
}

/// Writes all of `bytes` and flushes them.
pub(crate) async fn write_all_flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
) -> io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// The reason an I/O error on a connection's stream ends it: the TLS failure it
/// carries, if any; the peer closing, for an end of stream where more was due (a
/// plaintext acceptor closes at a TLS ClientHello); else its kind.
pub(crate) fn io_reason(e: io::Error) -> DisconnectReason {
    match tls::failure_of(&e) {
        Some(failure) => DisconnectReason::Tls(failure),
        None if e.kind() == io::ErrorKind::UnexpectedEof => DisconnectReason::PeerClosed,
        None => DisconnectReason::Io(e.kind()),
    }
}

/// A TLS read's result, with an end without `close_notify` taken as the end of the
/// stream (see the module doc).
fn tls_read(result: Poll<io::Result<()>>) -> Poll<io::Result<()>> {
    match result {
        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
        other => other,
    }
}

/// A connection's stream, plain or TLS.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The read half of a [`Stream`].
#[derive(Debug)]
pub(crate) enum ReadHalf {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The write half of a [`Stream`].
#[derive(Debug)]
pub(crate) enum WriteHalf {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

impl Stream {
    /// Splits the stream into a reading and a writing half.
    pub(crate) fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(tcp) => {
                let (read, write) = tcp.into_split();
                (ReadHalf::Plain(read), WriteHalf::Plain(write))
            }
            Stream::Tls(tls) => {
                let (read, write) = tokio::io::split(*tls);
                (ReadHalf::Tls(read), WriteHalf::Tls(write))
            }
        }
    }
}

/// `AsyncRead` for a stream or read half: the plain variant as is, the TLS one with
/// an end without `close_notify` as the end of the stream.
macro_rules! impl_async_read {
    ($ty:ty) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
                    Self::Tls(s) => tls_read(Pin::new(s).poll_read(cx, buf)),
                }
            }
        }
    };
}

/// `AsyncWrite` for a stream or write half: each call to whichever variant it is.
macro_rules! impl_async_write {
    ($ty:ty) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
                    Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_flush(cx),
                    Self::Tls(s) => Pin::new(s).poll_flush(cx),
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
                    Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    };
}

impl_async_read!(Stream);
impl_async_read!(ReadHalf);
impl_async_write!(Stream);
impl_async_write!(WriteHalf);
