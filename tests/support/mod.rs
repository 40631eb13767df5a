//! Shared helpers of the node integration tests: nodes on loopback, actors that
//! forward what they receive to channels the tests await, link-event subscriptions,
//! and a fault-injecting TCP proxy (`proxy.rs`, re-exported here).
//!
//! Every file that uses this module starts with `#![cfg(feature = "serde")]`: the
//! message types below are declared with `internode::message!`.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use internode::node::{
    HandlerError, LinkNotice, Node, NodeBuilder, Received, RefusalReason, Requested, SendError,
};
use internode::session::{DisconnectReason, LinkEvent};
use internode::{LinkKind, NodeId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub mod certs;
pub mod prometheus;
mod proxy;
// Not every test binary names every re-export.
#[allow(unused_imports)]
pub use proxy::{CorruptAt, Faults, Proxy};

/// The bound of every test's body.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The bound of one awaited event inside a test (gives a better message than the
/// test's own timeout).
pub const WAIT: Duration = Duration::from_secs(15);
/// The pause between two polls of a state that has no event.
pub const POLL: Duration = Duration::from_millis(10);

/// Runs a test's body with [`TEST_TIMEOUT`]. Logs go to the test's output with
/// `RUST_LOG` set (e.g. `RUST_LOG=info cargo test --test reconnect -- --nocapture`).
pub async fn bounded<F: Future>(body: F) -> F::Output {
    let _ = env_logger::builder().is_test(true).try_init();
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test timed out")
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Resets the process's peak resident size (`VmHWM`) to its current one; whether
/// the kernel allowed it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A sender (node 1, with these send limits) and a receiver (node 2) behind a
/// [`Proxy`] that the test can stall, both with a heartbeat patient enough that a
/// stall of seconds resets nothing (the sender's blocked write is under the
/// unwritable timeout, 30 s; the receiver reads nothing at all). Node 1 knows node 2
/// at the proxy's address.
pub async fn sender_behind_proxy(limits: internode::limits::Limits) -> (Node, Node, Proxy) {
    let heartbeat = internode::session::HeartbeatConfig::new(
        Duration::from_secs(1),
        Duration::from_secs(60),
        Duration::from_secs(30),
    );
    let b = builder(2).heartbeat(heartbeat).start().await.unwrap();
    let proxy = Proxy::start(b.local_addr()).await;
    let a = builder(1)
        .send_limits(limits)
        .heartbeat(heartbeat)
        .start()
        .await
        .unwrap();
    a.add_peer(NodeId(2), proxy.addr()).await;
    (a, b, proxy)
}

/// Raises the soft limit of open files to the hard one and returns it: the test
/// holds both ends of every connection.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        limit.rlim_cur as u64
    }
}

/// Awaits `future` for at most [`WAIT`], panicking with `what` after that.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Awaits `futures` one after the other and returns their outputs in order. For
/// futures that make progress without being polled (a `Peer::send` outcome within
/// credit: the message is queued when the future is created; a spawned task), this
/// waits for all of them while they run concurrently; `Peer::send` futures waiting for
/// credit are served in order whichever of them is polled.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::with_capacity(futures.len());
    for f in futures {
        out.push(f.await);
    }
    out
}

// ---------------------------------------------------------------------------------
// Message types shared by the tests.

/// A numbered one-way message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seq(pub u64);
internode::message!(Seq, verb = 1000);

/// A request answered with the number plus one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incr(pub u64);
/// The answer to [`Incr`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incremented(pub u64);
internode::request!(Incr => Incremented, verb = 1001);
internode::message!(Incremented, verb = 1002);

// ---------------------------------------------------------------------------------
// Nodes.

/// A builder for node `id` listening on a free loopback port.
pub fn builder(id: u64) -> NodeBuilder {
    Node::builder(NodeId(id), "127.0.0.1:0".parse().unwrap())
}

/// Node `id` with the defaults, listening on a free loopback port.
pub async fn node(id: u64) -> Node {
    builder(id).start().await.expect("node starts")
}

/// Nodes 1 and 2 with the defaults; node 1 knows node 2's address.
pub async fn pair() -> (Node, Node) {
    let a = node(1).await;
    let b = node(2).await;
    a.add_peer(NodeId(2), b.local_addr()).await;
    (a, b)
}

/// Nodes 1 and 2 pinging every 20 ms when idle (round-trip samples come fast);
/// node 1 knows node 2's address.
pub async fn fast_heartbeat_pair() -> (Node, Node) {
    let heartbeat = internode::session::HeartbeatConfig::default()
        .interval(Duration::from_millis(20))
        .timeout(Duration::from_secs(5));
    let b = builder(2).heartbeat(heartbeat).start().await.unwrap();
    let a = builder(1).heartbeat(heartbeat).start().await.unwrap();
    a.add_peer(NodeId(2), b.local_addr()).await;
    (a, b)
}

/// A loopback address on which nothing listens (yet): bound, then released. A test
/// starts a node on it later (until then, another listener may be given the port:
/// where nothing is ever to listen, use [`refusing_port`]).
pub fn reserve_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap()
}

/// A loopback address on which nothing listens, and nothing can while the returned
/// guard lives: its port stays bound (without `SO_REUSEADDR`, not listening), so a
/// connection to it is refused at once and no listener of another test (or of this
/// one) can be given that port. Use it rather than [`reserve_port`] when nothing is
/// ever to listen there: a released port can be handed to another test's listener,
/// whose node (a node 2 like everyone's) would then take this test's connections,
/// and its node 1's session would supersede the other test's (whose link is then
/// refused for good).
pub fn refusing_port() -> RefusingPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(false).expect("SO_REUSEADDR off");
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("bind a free port");
    RefusingPort(socket)
}

/// See [`refusing_port`].
pub struct RefusingPort(tokio::net::TcpSocket);

impl RefusingPort {
    /// The address, where connections are refused.
    pub fn addr(&self) -> SocketAddr {
        self.0.local_addr().expect("a bound socket has an address")
    }
}

/// Starts `builder` listening on `addr` (a node closed there before has freed it:
/// `Node::close` returns once its port is free).
pub async fn start_on(builder: NodeBuilder, addr: SocketAddr) -> Node {
    let mut config = builder.config().clone();
    config.listen = addr;
    match Node::start(config).await {
        Ok(node) => node,
        Err(e) => panic!("node {} cannot start on {addr}: {e}", builder.config().id),
    }
}

// ---------------------------------------------------------------------------------
// Handlers.

/// Forwards every message of type `M` it receives, with its sender, to a channel.
pub struct Collector<M>(pub mpsc::UnboundedSender<(NodeId, M)>);

impl<M: internode::message::Message> Actor for Collector<M> {
    type Context = Context<Self>;
}

impl<M: internode::message::Message> Handler<Received<M>> for Collector<M> {
    type Result = ();

    fn handle(&mut self, m: Received<M>, _: &mut Context<Self>) {
        let _ = self.0.send((m.from, m.message));
    }
}

/// Registers a [`Collector`] of `M` on `node` and returns its channel.
pub fn collect<M: internode::message::Message>(
    node: &Node,
) -> mpsc::UnboundedReceiver<(NodeId, M)> {
    let (tx, rx) = mpsc::unbounded_channel();
    node.handle::<M>(Collector(tx).start().recipient())
        .expect("an application verb");
    rx
}

/// Receives `n` messages from `rx`, failing after [`WAIT`].
pub async fn recv_n<M>(
    rx: &mut mpsc::UnboundedReceiver<(NodeId, M)>,
    n: usize,
) -> Vec<(NodeId, M)> {
    let mut out = Vec::with_capacity(n);
    within(&format!("{n} messages"), async {
        while out.len() < n {
            out.push(rx.recv().await.expect("the collector lives"));
        }
    })
    .await;
    out
}

/// Answers requests of type `R` with a closure.
pub struct Serve<R: internode::message::Request> {
    answer: Box<dyn FnMut(NodeId, R) -> Result<R::Response, HandlerError>>,
}

impl<R: internode::message::Request> Actor for Serve<R> {
    type Context = Context<Self>;
}

impl<R: internode::message::Request> Handler<Requested<R>> for Serve<R> {
    type Result = Result<R::Response, HandlerError>;

    fn handle(&mut self, m: Requested<R>, _: &mut Context<Self>) -> Self::Result {
        (self.answer)(m.from, m.message)
    }
}

/// Registers `answer` as the handler of requests `R` on `node`.
pub fn serve<R: internode::message::Request>(
    node: &Node,
    answer: impl FnMut(NodeId, R) -> Result<R::Response, HandlerError> + 'static,
) {
    let actor = Serve {
        answer: Box::new(answer),
    };
    node.handle_requests::<R>(actor.start().recipient())
        .expect("an application verb");
}

// ---------------------------------------------------------------------------------
// Link events.

/// Forwards link events to a channel.
struct EventForwarder(mpsc::UnboundedSender<LinkNotice>);

impl Actor for EventForwarder {
    type Context = Context<Self>;
}

impl Handler<LinkNotice> for EventForwarder {
    type Result = ();

    fn handle(&mut self, notice: LinkNotice, _: &mut Context<Self>) {
        let _ = self.0.send(notice);
    }
}

/// A subscription to a node's link events that remembers every event it has taken.
pub struct Events {
    rx: mpsc::UnboundedReceiver<LinkNotice>,
    seen: Vec<LinkNotice>,
}

impl Events {
    /// Subscribes to `node`'s link events.
    pub async fn subscribe(node: &Node) -> Events {
        let (tx, rx) = mpsc::unbounded_channel();
        node.subscribe(EventForwarder(tx).start().recipient()).await;
        Events {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits (at most [`WAIT`]) for the next event of `peer`'s link `kind` that
    /// matches `pred`, and returns it.
    pub async fn wait_for(
        &mut self,
        what: &str,
        peer: NodeId,
        kind: LinkKind,
        pred: impl Fn(&LinkEvent) -> bool,
    ) -> LinkEvent {
        let seen = &mut self.seen;
        let rx = &mut self.rx;
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let notice = rx.recv().await.expect("the node lives");
                seen.push(notice.clone());
                if notice.peer == peer && notice.kind == kind && pred(&notice.event) {
                    return notice.event;
                }
            }
        })
        .await;
        match found {
            Ok(event) => event,
            Err(_) => panic!(
                "timed out waiting for {what} on {peer} {kind:?}; events seen: {:#?}",
                self.seen
            ),
        }
    }

    /// Waits for the next `Disconnected` of `peer`'s small link; returns its reason.
    pub async fn next_disconnect(&mut self, what: &str, peer: NodeId) -> DisconnectReason {
        let event = self
            .wait_for(what, peer, LinkKind::Small, |e| {
                matches!(e, LinkEvent::Disconnected { .. })
            })
            .await;
        match event {
            LinkEvent::Disconnected { reason } => reason,
            other => unreachable!("matched a Disconnected, got {other:?}"),
        }
    }

    /// Takes the events that have arrived, without waiting, and returns everything
    /// seen so far.
    pub fn take_arrived(&mut self) -> &[LinkNotice] {
        while let Ok(notice) = self.rx.try_recv() {
            self.seen.push(notice);
        }
        &self.seen
    }

    /// The events of `peer`'s link `kind` seen so far (after [`take_arrived`]).
    pub fn of(&mut self, peer: NodeId, kind: LinkKind) -> Vec<LinkEvent> {
        self.take_arrived()
            .iter()
            .filter(|n| n.peer == peer && n.kind == kind)
            .map(|n| n.event.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------
// Sized messages, polling, and raw peers (tests/limits.rs).

/// A message whose payload is exactly its bytes (no serde pass): for tests that need
/// messages of a precise size. Messages up to `LinkKind::LARGE_THRESHOLD` bytes go
/// over the small link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob(pub bytes::Bytes);

impl Blob {
    /// `len` bytes, each `fill`.
    pub fn new(len: usize, fill: u8) -> Blob {
        Blob(bytes::Bytes::from(vec![fill; len]))
    }
}

impl internode::message::Message for Blob {
    const VERB: u32 = 1010;

    fn encode(&self, dst: &mut bytes::BytesMut) -> Result<(), internode::message::EncodeError> {
        dst.extend_from_slice(&self.0);
        Ok(())
    }

    fn decode(payload: bytes::Bytes) -> Result<Self, internode::message::DecodeError> {
        Ok(Blob(payload))
    }
}

/// The payload size of `message` as the node encodes it (what a link charges for a
/// message without params).
pub fn payload_len<M: internode::message::Message>(message: &M) -> usize {
    let mut buf = bytes::BytesMut::new();
    message.encode(&mut buf).expect("the message encodes");
    buf.len()
}

/// Calls `check` every [`POLL`] until it returns `Ok`, for at most [`WAIT`]; then
/// panics with `what` and the last `Err`.
pub async fn poll_until<T, E, F, Fut>(what: &str, mut check: F) -> T
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("timed out waiting for {what}; last: {last:?}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// A Hello of node `id` for its small link with CRC framing, as a raw client sends it
/// (listen address 127.0.0.1:9; the tests set the fields they need).
pub fn hello(id: u64) -> internode::handshake::Hello {
    use internode::frame::Framing;
    let listen = "127.0.0.1:9".parse().unwrap();
    internode::handshake::Hello::new(NodeId(id), listen, LinkKind::Small, Framing::Crc)
}

/// The bytes of `hello` on the wire.
pub fn hello_bytes(hello: &internode::handshake::Hello) -> bytes::BytesMut {
    let mut buf = bytes::BytesMut::new();
    hello.encode(&mut buf);
    buf
}

/// A connection to `to` from the loopback address `from` (127.0.0.0/8 is all local,
/// so a test can be many sources).
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{from}:0").parse().unwrap())
        .expect("bind a loopback source address");
    socket.connect(to).await.expect("connect")
}

/// Connects to `addr` and completes the handshake as node `id` for a link of `kind`
/// with CRC framing, like a link would (the sans-IO [`Initiator`] over the socket).
/// Frames can be written from there on ([`frames`]).
///
/// [`Initiator`]: internode::handshake::Initiator
pub async fn raw_peer(id: u64, addr: SocketAddr, kind: LinkKind) -> TcpStream {
    use internode::frame::Framing;
    use internode::handshake::{Hello, Initiator};

    let mut stream = TcpStream::connect(addr).await.expect("connect to the node");
    let _ = stream.set_nodelay(true);
    let listen = "127.0.0.1:9".parse().unwrap();
    let hello = Hello::new(NodeId(id), listen, kind, Framing::Crc);
    let now = std::time::Instant::now();
    let mut initiator = Initiator::new(hello, now, WAIT);
    let hello = initiator.poll_transmit().expect("the Hello is queued");
    stream.write_all(&hello).await.unwrap();
    within("the handshake", async {
        let mut buf = [0u8; 512];
        loop {
            let n = stream.read(&mut buf).await.expect("read the answer");
            assert!(n > 0, "the node closed the connection during the handshake");
            let established = initiator
                .handle_input(&buf[..n], std::time::Instant::now())
                .expect("the node accepts");
            if let Some(established) = established {
                assert!(established.leftover.is_empty(), "nothing sent unasked");
                return;
            }
        }
    })
    .await;
    stream
}

/// The bytes a link writes for `envelopes`: CRC frames, in one buffer.
pub fn frames(envelopes: &[internode::envelope::Envelope]) -> bytes::BytesMut {
    let mut encoder = internode::frame::FrameEncoder::new(internode::frame::Framing::Crc);
    for envelope in envelopes {
        let bytes = envelope.to_bytes().expect("the envelope encodes");
        encoder.push(&bytes);
    }
    encoder.take()
}

/// Milliseconds since the UNIX epoch (the clock of envelope deadlines).
pub fn epoch_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since.as_millis()).unwrap()
}

/// A numbered message whose payload is a fresh allocation of `len` bytes filled with
/// its number's low byte, so that every message holds its own memory. Encoded by
/// hand: no serde pass over every byte, so that floods are quick in debug builds.
#[derive(Debug, Clone, PartialEq)]
pub struct Filled {
    pub seq: u64,
    pub data: bytes::Bytes,
}

impl Filled {
    pub fn new(seq: u64, len: usize) -> Filled {
        Filled {
            seq,
            data: bytes::Bytes::from(vec![seq as u8; len]),
        }
    }

    /// Panics unless the payload is `len` bytes of the message's number.
    pub fn check(&self, len: usize) {
        assert_eq!(self.data.len(), len, "message {}", self.seq);
        assert!(
            self.data.iter().all(|&b| b == self.seq as u8),
            "message {} damaged",
            self.seq
        );
    }
}

impl internode::message::Message for Filled {
    const VERB: u32 = 1040;

    fn encode(&self, dst: &mut bytes::BytesMut) -> Result<(), internode::message::EncodeError> {
        dst.reserve(8 + self.data.len());
        dst.extend_from_slice(&self.seq.to_le_bytes());
        dst.extend_from_slice(&self.data);
        Ok(())
    }

    fn decode(mut payload: bytes::Bytes) -> Result<Self, internode::message::DecodeError> {
        use bytes::Buf;
        if payload.len() < 8 {
            return Err(internode::message::DecodeError::custom("short message"));
        }
        let seq = payload.get_u64_le();
        Ok(Filled { seq, data: payload })
    }
}

/// Node 1 sends to node 2 and must be refused: its link reports `expected` (at least
/// twice: it keeps retrying), node 2 counts `reason`, delivers nothing, holds no
/// inbound connection and has not learned node 1's address.
pub async fn refused(
    a: NodeBuilder,
    b: NodeBuilder,
    expected: DisconnectReason,
    reason: RefusalReason,
) {
    let b = b.start().await.unwrap();
    let mut inbox = collect::<Seq>(&b);
    let a = a.start().await.unwrap();
    let mut events = Events::subscribe(&a).await;
    a.add_peer(NodeId(2), b.local_addr()).await;
    let to_b = a.peer(NodeId(2));
    to_b.ready().await.unwrap();
    let _pending = to_b.send(Seq(1));
    for _ in 0..2 {
        let reason = events.next_disconnect("a refused attempt", NodeId(2)).await;
        assert_eq!(reason, expected);
        events
            .wait_for("a retry", NodeId(2), LinkKind::Small, |e| {
                matches!(e, LinkEvent::RetryScheduled { .. })
            })
            .await;
    }
    let counted = poll_until("the refusals to be counted", || async {
        let refused = b.refused_connections().await;
        if refused.get(&reason).copied().unwrap_or(0) >= 2 {
            Ok(refused)
        } else {
            Err(refused)
        }
    })
    .await;
    assert_eq!(
        counted.keys().collect::<Vec<_>>(),
        vec![&reason],
        "only {reason}: {counted:?}"
    );
    assert!(inbox.try_recv().is_err(), "nothing delivered");
    assert_eq!(b.inbound_connections().await, 0);
    assert_eq!(b.inbound_counters().await.received, 0);
    assert!(
        !events
            .of(NodeId(2), LinkKind::Small)
            .contains(&LinkEvent::Connected),
        "never connected"
    );
    // The refused peer's address was not learned from its Hello.
    assert!(matches!(
        b.send(NodeId(1), Seq(9)).await,
        Err(SendError::UnknownPeer(NodeId(1)))
    ));
}
