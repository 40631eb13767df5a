//! Opening a connection: TCP connect and the initiator's handshake, each with its own
//! timeout, driving the sans-IO [`handshake`](crate::handshake) machine over a socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::handshake::{fresh_nonce, ClusterKey, Established, Hello, Initiator};
use crate::session::DisconnectReason;

/// Connects to `addr` and runs the initiator's side of the handshake, authenticated
/// with `key` (and a fresh nonce) if given.
pub(crate) async fn dial(
    addr: SocketAddr,
    hello: Hello,
    key: Option<ClusterKey>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
) -> Result<(TcpStream, Established), DisconnectReason> {
    let mut stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| DisconnectReason::ConnectTimeout)?
        .map_err(|e| DisconnectReason::ConnectFailed(e.kind()))?;
    let _ = stream.set_nodelay(true);
    let mut initiator = match key {
        Some(key) => Initiator::with_auth(
            hello,
            &key,
            fresh_nonce(),
            Instant::now(),
            handshake_timeout,
        ),
        None => Initiator::new(hello, Instant::now(), handshake_timeout),
    };
    let run = async {
        let mut buf = [0u8; 512];
        loop {
            if let Some(out) = initiator.poll_transmit() {
                stream.write_all(&out).await.map_err(io)?;
            }
            let n = stream.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                return Err(DisconnectReason::Handshake(initiator.handle_eof()));
            }
            match initiator.handle_input(&buf[..n], Instant::now()) {
                Ok(Some(established)) => return Ok(established),
                Ok(None) => {}
                Err(e) => return Err(DisconnectReason::Handshake(e)),
            }
        }
    };
    let established = tokio::time::timeout(handshake_timeout, run)
        .await
        .map_err(|_| DisconnectReason::HandshakeTimeout)??;
    Ok((stream, established))
}

fn io(e: std::io::Error) -> DisconnectReason {
    DisconnectReason::Io(e.kind())
}
