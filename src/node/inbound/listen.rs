//! The listener: accepts sockets, reads their Hello (with the handshake timeout), and
//! hands each well-formed one to the receiving actor of its (peer, link kind), which
//! answers it. A socket that sends garbage, a wrong magic or version, reaches the
//! node itself, or stays silent is refused, counted, and closed before any actor sees
//! it.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Attach, InboundEnv};
use crate::handshake::{Acceptor, AcceptorConfig, HandshakeError, Hello};
use crate::node::registry::{InboundRefused, Receiver, SetPeer};

/// Accepts connections until the task is aborted.
pub(crate) async fn listen(listener: TcpListener, env: Arc<InboundEnv>) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let env = env.clone();
                actix::spawn(async move {
                    if let Err(e) = handshake(stream, env.clone()).await {
                        log::info!("{}: connection from {from} refused: {e}", env.node);
                        env.registry.do_send(InboundRefused(refusal_kind(&e)));
                    }
                });
            }
            Err(e) => {
                log::warn!("{}: accept failed: {e}", env.node);
                // Out of descriptors and the like: don't spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

fn refusal_kind(e: &HandshakeError) -> &'static str {
    match e {
        HandshakeError::WrongMagic { .. } => "wrong_magic",
        HandshakeError::IncompatibleVersion { .. } => "incompatible_version",
        HandshakeError::SelfConnect => "self_connect",
        HandshakeError::Timeout => "timeout",
        HandshakeError::Closed | HandshakeError::Truncated { .. } => "closed",
        _ => "malformed",
    }
}

async fn handshake(mut stream: TcpStream, env: Arc<InboundEnv>) -> Result<(), HandshakeError> {
    let _ = stream.set_nodelay(true);
    let config = AcceptorConfig::new(env.node);
    let (acceptor, hello) = read_hello(&mut stream, config, env.config.handshake_timeout).await?;
    env.registry.do_send(SetPeer {
        peer: hello.node_id,
        addr: hello.listen_addr,
        only_if_unknown: true,
    });
    // The registry wakes this node's links to the peer and finds (or starts) the
    // receiving actor of the link, which answers the Hello.
    let receiver = env
        .registry
        .send(Receiver {
            peer: hello.node_id,
            kind: hello.link_kind,
        })
        .await
        .ok()
        .flatten()
        .ok_or(HandshakeError::Closed)?;
    receiver.do_send(Attach {
        stream,
        acceptor,
        hello,
    });
    Ok(())
}

/// Reads a Hello with the acceptor's machine, within `timeout`. A Hello the acceptor
/// rejects by itself (wrong version, self-connect, framing) gets its Reject before
/// the error is returned.
async fn read_hello(
    stream: &mut TcpStream,
    config: AcceptorConfig,
    timeout: std::time::Duration,
) -> Result<(Acceptor, Hello), HandshakeError> {
    let mut acceptor = Acceptor::new(config, Instant::now(), timeout);
    let run = async {
        let mut buf = [0u8; 512];
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|_| acceptor.handle_eof())?;
            if n == 0 {
                return Err(acceptor.handle_eof());
            }
            match acceptor.handle_input(&buf[..n], Instant::now()) {
                Ok(Some(hello)) => return Ok(hello),
                Ok(None) => {}
                Err(e) => {
                    if let Some(out) = acceptor.poll_transmit() {
                        let _ = stream.write_all(&out).await;
                    }
                    return Err(e);
                }
            }
        }
    };
    let hello = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| HandshakeError::Timeout)??;
    Ok((acceptor, hello))
}
