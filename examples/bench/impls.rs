//! The seven implementations behind one interface: a server ([`serve`]), a sending
//! client ([`Client`]) and the connecting side of the idle-memory workload
//! ([`IdleClient`]), each dispatching to `via_internode` (serde or hand-encoded
//! messages, one by one or in batches, lossless or lossy links, plain TCP or TLS),
//! `raw` or `framed`.

use std::any::Any;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use internode::node::LinkPolicy::{Lossless, Lossy};
use tokio::task::JoinHandle;

use crate::payload::Sink;
use crate::{framed, raw, tcp, via_internode, BenchError};

/// Which implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Impl {
    /// The full internode stack, serde messages, lossless links (the default).
    Internode,
    /// The full internode stack, hand-encoded messages, lossless links.
    InternodeHand,
    /// `Internode` with one-way messages sent in batches (`Peer::send_many`).
    InternodeBatch,
    /// The full internode stack with every link kind lossy, on both nodes.
    InternodeLossy,
    /// The full internode stack, lossless links, TLS on both nodes (opt-in).
    InternodeTls,
    /// Hand-written tokio TCP, pre-encoded length-prefixed frames in large batches.
    Raw,
    /// tokio-util `Framed` with a hand-written CRC-checked codec.
    Framed,
}

impl Impl {
    /// All seven, in the order they are measured.
    pub const ALL: [Impl; 7] = [
        Impl::Internode,
        Impl::InternodeHand,
        Impl::InternodeBatch,
        Impl::InternodeLossy,
        Impl::InternodeTls,
        Impl::Raw,
        Impl::Framed,
    ];

    /// Those measured when `--impls` is not given: all but `internode-tls`, which
    /// is opt-in (`--impls internode,internode-tls`).
    pub const DEFAULT: [Impl; 6] = [
        Impl::Internode,
        Impl::InternodeHand,
        Impl::InternodeBatch,
        Impl::InternodeLossy,
        Impl::Raw,
        Impl::Framed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Impl::Internode => "internode",
            Impl::InternodeHand => "internode-hand",
            Impl::InternodeBatch => "internode-batch",
            Impl::InternodeLossy => "internode-lossy",
            Impl::InternodeTls => "internode-tls",
            Impl::Raw => "raw",
            Impl::Framed => "framed",
        }
    }

    pub fn parse(name: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Whether it is one of the internode implementations (the others are baselines).
    pub fn is_internode(self) -> bool {
        !matches!(self, Impl::Raw | Impl::Framed)
    }

    /// How the nodes of an internode implementation are set up (the baselines have
    /// no nodes).
    fn setup(self) -> via_internode::Setup {
        via_internode::Setup {
            policy: if self == Impl::InternodeLossy {
                Lossy
            } else {
                Lossless
            },
            tls: self == Impl::InternodeTls,
            encoding: if self == Impl::InternodeHand {
                via_internode::Encoding::Hand
            } else {
                via_internode::Encoding::Serde
            },
            batched: self == Impl::InternodeBatch,
        }
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A running server: its port, and what must live as long as it serves.
pub struct Served {
    pub port: u16,
    pub _alive: Box<dyn Any>,
}

/// Starts server number `instance` of `imp` on a free port of 127.0.0.1; one-way
/// messages go to `sink`, requests are echoed.
pub async fn serve(imp: Impl, sink: Rc<Sink>, instance: usize) -> Result<Served, BenchError> {
    let port = match imp {
        Impl::Internode
        | Impl::InternodeHand
        | Impl::InternodeBatch
        | Impl::InternodeLossy
        | Impl::InternodeTls => return via_internode::serve(sink, instance, imp.setup()).await,
        Impl::Raw => tcp::listen(sink, raw::serve).await?,
        Impl::Framed => tcp::listen(sink, framed::serve).await?,
    };
    Ok(Served {
        port,
        _alive: Box::new(()),
    })
}

/// The sending side of one implementation, connected to its server.
pub enum Client {
    /// Any internode implementation (the client knows its policy).
    Internode(via_internode::Client),
    Raw(raw::Client),
    Framed(framed::Client),
}

impl Client {
    pub async fn start(imp: Impl, port: u16) -> Result<Client, BenchError> {
        Ok(match imp {
            Impl::Internode
            | Impl::InternodeHand
            | Impl::InternodeBatch
            | Impl::InternodeLossy
            | Impl::InternodeTls => {
                Client::Internode(via_internode::Client::start(port, imp.setup()).await?)
            }
            Impl::Raw => Client::Raw(raw::Client::new(port)),
            Impl::Framed => Client::Framed(framed::Client::new(port)),
        })
    }

    /// One-way messages of `size` bytes until `until`, numbered from `first_seq`;
    /// returns how many were handed to the connection.
    pub async fn oneway(
        &mut self,
        size: usize,
        until: Instant,
        first_seq: u64,
    ) -> Result<u64, BenchError> {
        match self {
            Client::Internode(c) => c.oneway(size, until, first_seq).await,
            Client::Raw(c) => c.oneway(size, until, first_seq).await,
            Client::Framed(c) => c.oneway(size, until, first_seq).await,
        }
    }

    /// One request at a time until `until`; the round-trip times.
    pub async fn rr(
        &mut self,
        size: usize,
        until: Instant,
        first_seq: u64,
    ) -> Result<Vec<Duration>, BenchError> {
        match self {
            Client::Internode(c) => c.rr(size, until, first_seq).await,
            Client::Raw(c) => c.rr(size, until, first_seq).await,
            Client::Framed(c) => c.rr(size, until, first_seq).await,
        }
    }

    /// `outstanding` requests in flight until `until`; returns how many were answered.
    pub async fn rr_outstanding(
        &mut self,
        size: usize,
        outstanding: usize,
        until: Instant,
        first_seq: u64,
    ) -> Result<u64, BenchError> {
        match self {
            Client::Internode(c) => c.rr_outstanding(size, outstanding, until, first_seq).await,
            Client::Raw(c) => c.rr_outstanding(size, outstanding, until, first_seq).await,
            Client::Framed(c) => c.rr_outstanding(size, outstanding, until, first_seq).await,
        }
    }
}

/// The connecting side of the idle-memory workload. The baselines keep the task
/// that holds each link's connection.
pub enum IdleClient {
    Internode(via_internode::IdleClient),
    Raw(Vec<JoinHandle<()>>),
    Framed(Vec<JoinHandle<()>>),
}

impl IdleClient {
    pub async fn start(imp: Impl) -> Result<IdleClient, BenchError> {
        Ok(match imp {
            Impl::Internode
            | Impl::InternodeHand
            | Impl::InternodeBatch
            | Impl::InternodeLossy
            | Impl::InternodeTls => {
                IdleClient::Internode(via_internode::IdleClient::start(imp.setup()).await?)
            }
            Impl::Raw => IdleClient::Raw(Vec::new()),
            Impl::Framed => IdleClient::Framed(Vec::new()),
        })
    }

    /// Connects to server number `instance` on `port` and sends one message of each
    /// of `sizes` over its own link (urgent, small, large).
    pub async fn add(
        &mut self,
        instance: usize,
        port: u16,
        sizes: [usize; 3],
    ) -> Result<(), BenchError> {
        match self {
            IdleClient::Internode(c) => return c.add(instance, port, sizes).await,
            IdleClient::Raw(links) => {
                for size in sizes {
                    links.push(raw::idle_link(port, size).await?);
                }
            }
            IdleClient::Framed(links) => {
                for size in sizes {
                    links.push(framed::idle_link(port, size).await?);
                }
            }
        }
        Ok(())
    }
}
