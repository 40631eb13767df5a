//! A fault-injecting TCP proxy for the integration tests and for
//! `examples/fault_proxy.rs`.
//!
//! Depends on `tokio` and std only, so that a program without internode can include
//! it with `#[path = "../tests/support/proxy.rs"] mod proxy;`.
//!
//! What the proxy guarantees:
//!
//! - Each direction of a connection is forwarded in order and unchanged, except for
//!   the bits it flips on purpose; an EOF from one end is passed on as a shutdown of
//!   the writing half towards the other end, and a connection is done when both
//!   directions are.
//! - A *chunk* is what one read from the source socket returned (at most 64 KiB); it
//!   is forwarded with one `write_all`. Bit flips act on chunks.
//! - A cut closes both sockets of a connection at once by dropping them (no
//!   `SO_LINGER` tricks): each end sees EOF or a connection reset, whichever its kernel
//!   reports (a reset when data it sent was still unread). Bytes the proxy wrote
//!   before the cut may still be delivered.
//! - [`Faults::cut_every_bytes`] counts the bytes forwarded in *both* directions of
//!   a connection together. Unless the connection ends first, it forwards exactly the
//!   drawn number of bytes ([`Faults::cut_point`]): the chunk that reaches it is
//!   forwarded up to that byte only, then the connection is cut.
//! - Faults are deterministic from [`Faults::seed`]: connection `n` (the `n`-th
//!   accepted, from 0) draws its cut point, then one flip decision per chunk towards
//!   the target, from its own stream derived from `(seed, n)`. So they depend on the
//!   seed, `n` and the sizes of that connection's chunks, not on other connections or
//!   timing. The timed cuts ([`Faults::cut_every`]) draw their delays from another
//!   stream; which connections are open when one fires depends on timing.
//! - The counters are updated before the sockets of a cut connection are dropped:
//!   an end that sees the cut then reads them up to date.
//! - With [`Faults::delay`], every chunk, and the EOF, is written at least that long
//!   after its read returned, in each direction, in the order read (a [`DelayLine`]
//!   per direction). Reading goes on meanwhile, until [`DELAY_LINE_BYTES`] wait in a
//!   direction. A byte-budget cut happens once the chunk that spends the budget is
//!   written, so after its delay; a timed or commanded cut drops what still waits.

// Each includer uses a different part of this module.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::{AbortHandle, JoinHandle};

/// The random faults of a proxy. The default makes none.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The seed of every random draw.
    pub seed: u64,
    /// Cut each connection after a number of bytes forwarded (both directions
    /// together) drawn uniformly in `[min, max]`, per connection.
    pub cut_every_bytes: Option<(u64, u64)>,
    /// The probability, per chunk forwarded towards the target, of flipping one
    /// random bit of one random byte of it. In `[0, 1]`.
    pub flip_probability: f64,
    /// Cut every current connection after a delay drawn uniformly in `[min, max]`
    /// (`min` > 0), again and again.
    pub cut_every: Option<(Duration, Duration)>,
    /// Forward every byte (and the EOF), in both directions, at least this long after
    /// it arrived, without reordering: a one-way latency. Zero (the default) forwards
    /// at once.
    pub delay: Duration,
}

impl Faults {
    /// Whether the faults make sense: ranges with `min <= max`, a probability in
    /// `[0, 1]`, a nonzero shortest delay.
    pub fn check(&self) -> Result<(), String> {
        if let Some((min, max)) = self.cut_every_bytes {
            if min > max {
                return Err(format!("cut_every_bytes: {min} > {max}"));
            }
        }
        if !(0.0..=1.0).contains(&self.flip_probability) {
            return Err(format!(
                "flip_probability {} is not in [0, 1]",
                self.flip_probability
            ));
        }
        if let Some((min, max)) = self.cut_every {
            if min.is_zero() || min > max {
                return Err(format!("cut_every: need 0 < {min:?} <= {max:?}"));
            }
        }
        Ok(())
    }

    /// After how many forwarded bytes connection `n` (from 0, in accept order) is
    /// cut, if [`cut_every_bytes`](Self::cut_every_bytes) is set.
    pub fn cut_point(&self, n: u64) -> Option<u64> {
        let (min, max) = self.cut_every_bytes?;
        Some(Rng::stream(self.seed, n + 1).in_range(min, max))
    }
}

/// Bytes that may wait in one direction's [`DelayLine`] before the proxy stops
/// reading from that direction's source: at most this much per delay goes through
/// (16 MiB per 50 ms is 320 MiB/s).
pub const DELAY_LINE_BYTES: usize = 16 << 20;

/// What one direction of a delayed connection holds back, in arrival order: each item
/// may go out once [`delay`](Self::delay) has passed since it arrived. Sans-IO: the
/// caller passes `now`, hands items in with [`handle_arrival`](Self::handle_arrival),
/// sleeps until [`poll_timeout`](Self::poll_timeout) and takes what is due with
/// [`poll_due`](Self::poll_due).
///
/// Invariants: items come out in the order they went in (never reordered, even if
/// `now` went backwards between arrivals), none before its arrival plus the delay;
/// [`has_room`](Self::has_room) is false from `capacity` bytes on (one item may pass
/// it, so that an item larger than the capacity still goes through).
#[derive(Debug)]
pub struct DelayLine<T> {
    delay: Duration,
    capacity: usize,
    /// (due, item, bytes), in arrival order; dues never decrease.
    waiting: VecDeque<(Instant, T, usize)>,
    bytes: usize,
}

impl<T> DelayLine<T> {
    /// An empty line delaying by `delay`, with room below `capacity` bytes.
    pub fn new(delay: Duration, capacity: usize) -> DelayLine<T> {
        DelayLine {
            delay,
            capacity,
            waiting: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The delay.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Whether another item may come in: fewer than `capacity` bytes wait.
    pub fn has_room(&self) -> bool {
        self.bytes < self.capacity
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// `item` (of `bytes` bytes; 0 for an end of stream) arrived at `now`.
    pub fn handle_arrival(&mut self, now: Instant, item: T, bytes: usize) {
        let mut due = now + self.delay;
        // Never before the item ahead of it: no reordering, whatever the clock did.
        if let Some((ahead, _, _)) = self.waiting.back() {
            due = due.max(*ahead);
        }
        self.waiting.push_back((due, item, bytes));
        self.bytes += bytes;
    }

    /// When the next item is due, if one waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.waiting.front().map(|(due, _, _)| *due)
    }

    /// The next item, if it is due at `now`.
    pub fn poll_due(&mut self, now: Instant) -> Option<T> {
        if self.poll_timeout()? > now {
            return None;
        }
        let (_, item, bytes) = self.waiting.pop_front()?;
        self.bytes -= bytes;
        Some(item)
    }
}

/// SplitMix64: a small, fast, seeded generator (not for cryptography).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Stream `n` of `seed`: streams of one seed do not overlap in practice.
    pub fn stream(seed: u64, n: u64) -> Rng {
        let mut mix = Rng(seed ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Rng(mix.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[min, max]` (`min <= max`).
    pub fn in_range(&mut self, min: u64, max: u64) -> u64 {
        let span = u128::from(max - min) + 1;
        min + ((u128::from(self.next_u64()) * span) >> 64) as u64
    }

    /// Uniform in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        self.in_range(0, n as u64 - 1) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in `[min, max]`, to the nanosecond.
    pub fn duration(&mut self, min: Duration, max: Duration) -> Duration {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.in_range(nanos(min), nanos(max)))
    }
}

/// A TCP proxy that forwards every connection to a target, and on command cuts all
/// current connections, stalls (stops forwarding in both directions without closing
/// anything), or flips a bit in the next chunk it forwards towards the target; with
/// [`Faults`], it also cuts and flips bits at random.
///
/// When the sender writes whole frames one write at a time and the proxy keeps up, a
/// chunk starts and ends at frame boundaries, so [`CorruptAt::FirstByte`] hits a
/// frame header and [`CorruptAt::LastByte`] the payload CRC32 of a CRC frame.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: JoinHandle<()>,
    timer: Option<JoinHandle<()>>,
}

struct ProxyShared {
    target: SocketAddr,
    faults: Faults,
    /// One task per proxied connection (both directions).
    connections: Mutex<Vec<Connection>>,
    accepted: AtomicU64,
    cuts: AtomicU64,
    flips: AtomicU64,
    bytes_forwarded: AtomicU64,
    stalled: watch::Sender<bool>,
    /// Corruptions still to make, one per chunk forwarded towards the target.
    corrupt: Mutex<VecDeque<CorruptAt>>,
}

struct Connection {
    task: AbortHandle,
    /// Set once the connection is over or being cut: whoever sets it counts the cut.
    closed: Arc<AtomicBool>,
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
    /// Starts a proxy to `target` on a free loopback port, without random faults.
    pub async fn start(target: SocketAddr) -> Proxy {
        Proxy::start_with(target, Faults::default()).await
    }

    /// Starts a proxy to `target` on a free loopback port, with `faults`. Panics if
    /// they do not [check](Faults::check) or the port cannot be bound.
    pub async fn start_with(target: SocketAddr, faults: Faults) -> Proxy {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        Proxy::bind(listen, target, faults)
            .await
            .expect("proxy starts")
    }

    /// Starts a proxy to `target` listening on `listen`, with `faults` (an
    /// `InvalidInput` error if they do not [check](Faults::check)).
    pub async fn bind(listen: SocketAddr, target: SocketAddr, faults: Faults) -> io::Result<Proxy> {
        faults
            .check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let cut_every = faults.cut_every;
        let shared = Arc::new(ProxyShared {
            target,
            faults,
            connections: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            flips: AtomicU64::new(0),
            bytes_forwarded: AtomicU64::new(0),
            stalled: watch::channel(false).0,
            corrupt: Mutex::new(VecDeque::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        let timer = cut_every.map(|(min, max)| tokio::spawn(cut_timer(shared.clone(), min, max)));
        Ok(Proxy {
            addr,
            shared,
            accept,
            timer,
        })
    }

    /// The address to connect to instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The faults it was started with.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections cut so far, by [`cut`](Self::cut) or by the faults.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Bits flipped so far, by [`corrupt_next`](Self::corrupt_next) or at random.
    pub fn flips(&self) -> u64 {
        self.shared.flips.load(Ordering::SeqCst)
    }

    /// Bytes written to either end so far, over all connections.
    pub fn bytes_forwarded(&self) -> u64 {
        self.shared.bytes_forwarded.load(Ordering::SeqCst)
    }

    /// Closes every current connection (both sockets of each) at once; returns how
    /// many were open (and adds them to [`cuts`](Self::cuts)). New connections are
    /// proxied as before.
    pub fn cut(&self) -> usize {
        cut_all(&self.shared)
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
        if let Some(timer) = &self.timer {
            timer.abort();
        }
        cut_all(&self.shared);
    }
}

fn cut_all(shared: &ProxyShared) -> usize {
    let connections = std::mem::take(&mut *shared.connections.lock().unwrap());
    let open = connections
        .iter()
        .filter(|c| !c.closed.swap(true, Ordering::SeqCst))
        .count();
    // Counted before any socket is dropped.
    shared.cuts.fetch_add(open as u64, Ordering::SeqCst);
    for c in connections {
        c.task.abort();
    }
    open
}

/// Counts a cut of the connection whose flag is `closed`, unless it was over.
fn count_cut(shared: &ProxyShared, closed: &AtomicBool) {
    if !closed.swap(true, Ordering::SeqCst) {
        shared.cuts.fetch_add(1, Ordering::SeqCst);
    }
}

async fn cut_timer(shared: Arc<ProxyShared>, min: Duration, max: Duration) {
    let mut rng = Rng::stream(shared.faults.seed, 0);
    loop {
        tokio::time::sleep(rng.duration(min, max)).await;
        cut_all(&shared);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<ProxyShared>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of file descriptors, say: try again soon, without spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let n = shared.accepted.fetch_add(1, Ordering::SeqCst);
        let closed = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(proxy_connection(client, shared.clone(), n, closed.clone()));
        let mut connections = shared.connections.lock().unwrap();
        connections.retain(|c| !c.task.is_finished());
        connections.push(Connection {
            task: task.abort_handle(),
            closed,
        });
    }
}

/// Marks a connection closed when its task ends, however it ends.
struct Closing(Arc<AtomicBool>);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// How a direction of a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Pumped {
    /// EOF or an error from the source, or an error writing: passed on.
    Ended,
    /// The byte budget is spent: the connection is to be cut.
    Cut,
}

async fn proxy_connection(
    client: TcpStream,
    shared: Arc<ProxyShared>,
    n: u64,
    closed: Arc<AtomicBool>,
) {
    let _closing = Closing(closed.clone());
    let mut rng = Rng::stream(shared.faults.seed, n + 1);
    // The same draw as `Faults::cut_point(n)`.
    let budget = shared
        .faults
        .cut_every_bytes
        .map(|(min, max)| rng.in_range(min, max));
    let Ok(server) = TcpStream::connect(shared.target).await else {
        return; // dropping the client closes it
    };
    if budget == Some(0) {
        count_cut(&shared, &closed);
        return;
    }
    let budget = Mutex::new(budget);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let upstream = pump(client_read, server_write, &shared, &budget, Some(rng));
    let downstream = pump(server_read, client_write, &shared, &budget, None);
    tokio::pin!(upstream, downstream);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let pumped = tokio::select! {
            p = &mut upstream, if !up_done => { up_done = true; p }
            p = &mut downstream, if !down_done => { down_done = true; p }
        };
        if pumped == Pumped::Cut {
            count_cut(&shared, &closed);
            return; // drops both pumps, so both sockets
        }
    }
}

/// Forwards `from` to `to` until EOF or an error, then shuts `to` down; or until the
/// connection's byte `budget` (bytes still to forward, if limited) is spent. `flips`
/// is `Some` towards the target: the stream its random bit flips draw from. With a
/// [`Faults::delay`], through a [`DelayLine`].
async fn pump(
    from: OwnedReadHalf,
    to: OwnedWriteHalf,
    shared: &ProxyShared,
    budget: &Mutex<Option<u64>>,
    flips: Option<Rng>,
) -> Pumped {
    if shared.faults.delay.is_zero() {
        pump_now(from, to, shared, budget, flips).await
    } else {
        pump_delayed(from, to, shared, budget, flips).await
    }
}

/// What a read from the source gave, once stalls, the budget and flips are applied.
enum Read {
    /// The first `len` bytes of the buffer are to be forwarded; `last`: they spend
    /// the budget, so the connection is to be cut once they are written.
    Chunk { len: usize, last: bool },
    /// EOF or an error: to be passed on as a shutdown.
    End,
}

/// Reads the next chunk of `from` into `buf`.
async fn read_chunk(
    from: &mut OwnedReadHalf,
    buf: &mut [u8],
    stalled: &mut watch::Receiver<bool>,
    shared: &ProxyShared,
    budget: &Mutex<Option<u64>>,
    flips: &mut Option<Rng>,
) -> Read {
    let read = from.read(buf).await;
    // A stall holds everything, the end of the stream included.
    if stalled.wait_for(|s| !*s).await.is_err() {
        return Read::End;
    }
    let n = match read {
        Ok(0) | Err(_) => return Read::End,
        Ok(n) => n,
    };
    let (len, last) = match &mut *budget.lock().unwrap() {
        None => (n, false),
        Some(left) => {
            let len = n.min(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= len as u64;
            (len, *left == 0)
        }
    };
    if len == 0 {
        // The other direction forwarded the last bytes and cuts when written.
        std::future::pending::<()>().await;
    }
    if let Some(rng) = flips {
        flip_bits(&mut buf[..len], shared, rng);
    }
    Read::Chunk { len, last }
}

/// Writes `chunk` on and counts it as forwarded; whether it was written.
async fn forward(to: &mut OwnedWriteHalf, chunk: &[u8], shared: &ProxyShared) -> bool {
    let written = to.write_all(chunk).await.is_ok();
    if written {
        shared
            .bytes_forwarded
            .fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
    written
}

/// [`pump`] without a delay: each chunk is written before the next read.
async fn pump_now(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: &ProxyShared,
    budget: &Mutex<Option<u64>>,
    mut flips: Option<Rng>,
) -> Pumped {
    let mut stalled = shared.stalled.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = read_chunk(
            &mut from,
            &mut buf,
            &mut stalled,
            shared,
            budget,
            &mut flips,
        );
        let Read::Chunk { len, last } = read.await else {
            break;
        };
        let written = forward(&mut to, &buf[..len], shared).await;
        if last {
            return Pumped::Cut;
        }
        if !written {
            break;
        }
    }
    let _ = to.shutdown().await;
    Pumped::Ended
}

/// A chunk and whether it spends the budget, or `None` for the end of the stream.
type Delayed = Option<(Vec<u8>, bool)>;

/// [`pump`] with a delay: a reader puts chunks in a [`DelayLine`] as they arrive
/// (while it has room), a writer takes each out once due, both at once.
async fn pump_delayed(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: &ProxyShared,
    budget: &Mutex<Option<u64>>,
    mut flips: Option<Rng>,
) -> Pumped {
    let line = Mutex::new(DelayLine::<Delayed>::new(
        shared.faults.delay,
        DELAY_LINE_BYTES,
    ));
    let (arrived, room) = (Notify::new(), Notify::new());
    let reader = async {
        let mut stalled = shared.stalled.subscribe();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while !line.lock().unwrap().has_room() {
                room.notified().await;
            }
            let read = read_chunk(
                &mut from,
                &mut buf,
                &mut stalled,
                shared,
                budget,
                &mut flips,
            );
            let item = match read.await {
                Read::Chunk { len, last } => Some((buf[..len].to_vec(), last)),
                Read::End => None,
            };
            // Nothing more to read after the end or the chunk that spends the budget.
            let done = !matches!(item, Some((_, false)));
            let bytes = item.as_ref().map_or(0, |(chunk, _)| chunk.len());
            line.lock()
                .unwrap()
                .handle_arrival(Instant::now(), item, bytes);
            arrived.notify_one();
            if done {
                return;
            }
        }
    };
    let writer = async {
        let mut stalled = shared.stalled.subscribe();
        loop {
            let (due, wake) = {
                let mut line = line.lock().unwrap();
                (line.poll_due(Instant::now()), line.poll_timeout())
            };
            let Some(item) = due else {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => arrived.notified().await,
                }
                continue;
            };
            room.notify_one();
            if stalled.wait_for(|s| !*s).await.is_err() {
                break;
            }
            let Some((chunk, last)) = item else {
                break;
            };
            let written = forward(&mut to, &chunk, shared).await;
            if last {
                return Pumped::Cut;
            }
            if !written {
                break;
            }
        }
        let _ = to.shutdown().await;
        Pumped::Ended
    };
    tokio::pin!(reader, writer);
    let mut reading = true;
    loop {
        tokio::select! {
            () = &mut reader, if reading => reading = false,
            pumped = &mut writer => return pumped,
        }
    }
}

/// Makes the corruption asked for next, if any, and the random flip of a chunk
/// towards the target. The random draw is made for every chunk, so that the sequence
/// does not depend on `corrupt_next`; a chunk already corrupted is not flipped again.
fn flip_bits(chunk: &mut [u8], shared: &ProxyShared, rng: &mut Rng) {
    let n = chunk.len();
    let asked = shared.corrupt.lock().unwrap().pop_front();
    let byte = match asked {
        Some(CorruptAt::FirstByte) => Some(0),
        Some(CorruptAt::Middle) => Some(n / 2),
        Some(CorruptAt::LastByte) => Some(n - 1),
        None => None,
    };
    if let Some(byte) = byte {
        chunk[byte] ^= 0x10;
        shared.flips.fetch_add(1, Ordering::SeqCst);
    }
    if rng.chance(shared.faults.flip_probability) {
        let (byte, bit) = (rng.below(n), rng.below(8));
        if asked.is_none() {
            chunk[byte] ^= 1 << bit;
            shared.flips.fetch_add(1, Ordering::SeqCst);
        }
    }
}
