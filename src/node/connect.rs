//! Opening a connection: TCP connect, TLS when the node has it, and the initiator's
//! handshake, driving the sans-IO [`handshake`](crate::handshake) machine over the
//! stream. The connect has its own timeout; TLS and the handshake share the
//! handshake timeout.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::address::PeerAddr;
use super::transport::{io_reason, write_all_flush, Stream};
use super::NodeConfig;
use crate::handshake::{fresh_nonce, Established, Hello, Initiator};
use crate::session::DisconnectReason;
use crate::NodeId;

/// Connects to node `peer` at `addr` (a host name resolved now, its addresses tried
/// in order) and runs the initiator's side of the handshake with `hello`, over TLS if
/// `config` has it, authenticated with the cluster secret (and a fresh nonce) if it
/// has one.
pub(crate) async fn dial(
    addr: PeerAddr,
    peer: NodeId,
    hello: Hello,
    config: Arc<NodeConfig>,
) -> Result<(Stream, Established), DisconnectReason> {
    let mut failure = DisconnectReason::ConnectTimeout;
    let mut tcp = None;
    // The resolver may hang (its own timeouts are tens of seconds): bounded by the
    // connect timeout.
    let resolved = tokio::time::timeout(config.connect_timeout, addr.resolve())
        .await
        .map_err(|_| DisconnectReason::Resolve(std::io::ErrorKind::TimedOut))??;
    for addr in resolved {
        match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(connected)) => {
                tcp = Some(connected);
                break;
            }
            Ok(Err(e)) => failure = DisconnectReason::ConnectFailed(e.kind()),
            Err(_) => failure = DisconnectReason::ConnectTimeout,
        }
    }
    let tcp = tcp.ok_or(failure)?;
    super::transport::configure(&tcp);
    let timeout = config.handshake_timeout;
    let run = async {
        let (mut stream, binding) = match &config.tls {
            Some(tls) => {
                let (stream, binding) = tls.connect(tcp, peer, &config.cluster_name).await?;
                (stream, Some(binding))
            }
            None => (Stream::Plain(tcp), None),
        };
        // Checked when the node started: a key or none.
        let mut initiator = match config.cluster_key().and_then(Result::ok) {
            Some(key) => Initiator::with_auth(hello, &key, fresh_nonce(), Instant::now(), timeout),
            None => Initiator::new(hello, Instant::now(), timeout),
        };
        if let Some(binding) = binding {
            initiator = initiator.bind_to_channel(binding);
        }
        let mut buf = [0u8; 512];
        loop {
            if let Some(out) = initiator.poll_transmit() {
                write_all_flush(&mut stream, &out)
                    .await
                    .map_err(io_reason)?;
            }
            let n = stream.read(&mut buf).await.map_err(io_reason)?;
            if n == 0 {
                return Err(DisconnectReason::Handshake(initiator.handle_eof()));
            }
            match initiator.handle_input(&buf[..n], Instant::now()) {
                Ok(Some(established)) => return Ok((stream, established)),
                Ok(None) => {}
                Err(e) => return Err(DisconnectReason::Handshake(e)),
            }
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| DisconnectReason::HandshakeTimeout)?
}
