//! A fault-injecting TCP proxy for tests and for `examples/fault_proxy.rs`.
//!
//! Depends on `tokio` and std only, so that a program without internode can include
//! it with `#[path = "../tests/support/proxy.rs"] mod proxy;`.

// Each includer uses a different part of this module.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

/// A TCP proxy on a free loopback port that forwards every connection to a target,
/// and on command cuts all current connections, stalls (stops forwarding in both
/// directions without closing anything), or flips a bit in the next chunk it forwards
/// towards the target.
///
/// A chunk is what one read from the source socket returned: when the sender writes
/// whole frames one write at a time and the proxy keeps up, a chunk starts and ends
/// at frame boundaries, so [`CorruptAt::FirstByte`] hits a frame header and
/// [`CorruptAt::LastByte`] the payload CRC32 of a CRC frame.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: JoinHandle<()>,
}

struct ProxyShared {
    target: SocketAddr,
    /// One task per proxied connection (both directions).
    connections: Mutex<Vec<AbortHandle>>,
    accepted: AtomicU64,
    stalled: watch::Sender<bool>,
    /// Corruptions still to make, one per chunk forwarded towards the target.
    corrupt: Mutex<VecDeque<CorruptAt>>,
}

/// Which byte of a chunk [`Proxy::corrupt_next`] flips a bit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorruptAt {
    /// The first byte.
    FirstByte,
    /// The byte in the middle.
    Middle,
    /// The last byte.
    LastByte,
}

impl Proxy {
    /// Starts a proxy to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(ProxyShared {
            target,
            connections: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            stalled: watch::channel(false).0,
            corrupt: Mutex::new(VecDeque::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Proxy {
            addr,
            shared,
            accept,
        }
    }

    /// The address to connect to instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Closes every current connection (both sockets of each) at once; returns how
    /// many were open. New connections are proxied as before.
    pub fn cut(&self) -> usize {
        let mut connections = self.shared.connections.lock().unwrap();
        let open = connections.iter().filter(|c| !c.is_finished()).count();
        for c in connections.drain(..) {
            c.abort();
        }
        open
    }

    /// Stops forwarding, in both directions and on every connection (also new ones),
    /// without closing anything, until [`resume`](Self::resume).
    pub fn stall(&self) {
        self.shared.stalled.send_replace(true);
    }

    /// Forwards again after a [`stall`](Self::stall).
    pub fn resume(&self) {
        self.shared.stalled.send_replace(false);
    }

    /// Flips one bit of the byte `at` of the next chunk forwarded towards the target.
    pub fn corrupt_next(&self, at: CorruptAt) {
        self.shared.corrupt.lock().unwrap().push_back(at);
    }

    /// Whether a corruption asked for is still waiting for a chunk to corrupt.
    pub fn corruption_pending(&self) -> bool {
        !self.shared.corrupt.lock().unwrap().is_empty()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<ProxyShared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let task = tokio::spawn(proxy_connection(client, shared.clone()));
        let mut connections = shared.connections.lock().unwrap();
        connections.retain(|c| !c.is_finished());
        connections.push(task.abort_handle());
    }
}

async fn proxy_connection(client: TcpStream, shared: Arc<ProxyShared>) {
    let Ok(server) = TcpStream::connect(shared.target).await else {
        return; // dropping the client closes it
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let upstream = pump(client_read, server_write, shared.clone(), true);
    let downstream = pump(server_read, client_write, shared, false);
    tokio::join!(upstream, downstream);
}

/// Forwards `from` to `to` until EOF or an error; then shuts `to` down.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<ProxyShared>,
    towards_target: bool,
) {
    let mut stalled = shared.stalled.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = from.read(&mut buf).await;
        // A stall holds everything, the end of the stream included.
        if stalled.wait_for(|s| !*s).await.is_err() {
            break;
        }
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        let corrupt = if towards_target {
            shared.corrupt.lock().unwrap().pop_front()
        } else {
            None
        };
        match corrupt {
            Some(CorruptAt::FirstByte) => chunk[0] ^= 0x10,
            Some(CorruptAt::Middle) => chunk[n / 2] ^= 0x10,
            Some(CorruptAt::LastByte) => chunk[n - 1] ^= 0x10,
            None => {}
        }
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
