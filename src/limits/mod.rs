//! Byte budgets that keep a node within its memory limits (docs/limits.md): the
//! pure accounting that the links and the `ResourceLimits` actor drive.
//!
//! Nothing here knows about actix or tokio, reads a clock or shares state between
//! threads: each type is owned by exactly one actor and changed only by its methods.
//!
//! # Three levels
//!
//! A message's bytes count from the moment a link takes it until it is done with it
//! (outbound: written, later acknowledged; inbound: processed by its handler). They are
//! charged, in this order, to:
//!
//! 1. **The link's own capacity** ([`Limits::link_capacity`], a [`LinkBudget`] inside the
//!    link actor): charged without asking anyone, so a link that stays under its capacity
//!    never talks to the `ResourceLimits` actor.
//! 2. **The endpoint reserve** ([`Limits::endpoint_reserve`]), shared by all the links to
//!    one peer, and
//! 3. **the global reserve** ([`Limits::global_reserve`]), shared by all the links of the
//!    node. Both are held in one [`Reserves`] by the `ResourceLimits` actor; a link asks
//!    for what [`LinkBudget::needs_reserve`] says exceeds its capacity, and the actor
//!    grants it from both reserves at once or not at all ([`Reserves::try_acquire`]).
//!    The link sends the [`Grant`] back when the bytes are done with
//!    ([`Reserves::release`]). Links and the actor only exchange messages: no atomics,
//!    no locks.
//!
//! A node keeps two [`Reserves`] (and each link one [`LinkBudget`] per direction): one
//! for sending, one for receiving. Outbound, a shortage rejects the message as
//! overloaded at once; inbound, it makes the connection stop reading until reserve
//! returns.
//!
//! To save round trips a link leases reserve a small chunk at a time and carves
//! messages out of the lease locally ([`Account`], built on [`Grant::split_off`] and
//! [`Grant::merge`]). A lease is counted in full while the link holds it, so leasing
//! never lets the granted bytes exceed a limit. A link keeps at most one chunk plus
//! its last message's reserve part spare, so that a stream of similar messages does
//! not pay a round trip each, and gives it all back once idle ([`Account::idle_spare`],
//! called on a timer).
//!
//! # Invariants
//!
//! - At every moment, the bytes granted for an endpoint (the sum of its outstanding
//!   grants) are at most the endpoint reserve, and the bytes granted for all endpoints
//!   at most the global reserve; a link's used bytes are at most its capacity.
//! - In-use totals equal the sum of the outstanding grants: a [`Grant`] can be neither
//!   cloned nor forged, [`Reserves::release`] consumes it and gives back exactly what it
//!   holds, and splitting or merging grants moves bytes between them without creating
//!   any. So releasing more than was granted is impossible, and a grant of one
//!   [`Reserves`] is refused by any other one.
//! - A failed acquire changes nothing, and says which reserve was short.
//! - Peaks never decrease while they are tracked and are never below what is in use.
//! - Memory is proportional to the number of endpoints with something in use: an
//!   endpoint whose usage returns to zero is forgotten.
//! - No arithmetic overflows, whatever the sizes asked for.
//!
//! ```
//! use internode::limits::{LinkBudget, Limits, Reserves, Shortage};
//! use internode::NodeId;
//!
//! let limits = Limits::new(100, 300, 400);
//! let mut reserves = Reserves::new(limits);
//! let mut link = LinkBudget::new(limits.link_capacity);
//! let peer = NodeId(7);
//!
//! // A 250-byte message: 100 bytes fit the link, 150 must come from the reserves.
//! let reserve = link.needs_reserve(250);
//! assert_eq!(reserve, 150);
//! let grant = reserves.try_acquire(&peer, reserve).expect("both reserves have room");
//! assert!(link.try_take(250 - reserve));
//!
//! // The next one does not fit the endpoint reserve: overloaded, nothing changes.
//! let shortage = reserves.try_acquire(&peer, 200).unwrap_err();
//! assert_eq!(shortage, Shortage::Endpoint { requested: 200, available: 150 });
//! assert_eq!(reserves.in_use(&peer), 150);
//!
//! // Written: the bytes go back where they came from.
//! link.give_back(250 - reserve);
//! reserves.release(grant);
//! assert_eq!((link.used(), reserves.in_use_global()), (0, 0));
//! assert_eq!(reserves.peak_global(), 150);
//! ```

mod account;
mod link;
mod reserves;

#[cfg(test)]
mod proptests;

pub use account::{Account, Charge, ReserveNeeded, ReserveRequest};
pub use link::LinkBudget;
pub use reserves::{Grant, Reserves, Shortage};

/// The three byte limits of one direction (sending or receiving).
///
/// Any values are accepted: a reserve of zero means the level never grants anything
/// beyond the link capacities, and an endpoint reserve above the global one is bounded by
/// the global one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Limits {
    /// Bytes each link may have in use without asking for reserve.
    pub link_capacity: usize,
    /// Bytes of reserve all the links to one peer may have in use together.
    pub endpoint_reserve: usize,
    /// Bytes of reserve all the links of the node may have in use together.
    pub global_reserve: usize,
}

impl Limits {
    /// The default link capacity: 4 MiB.
    pub const DEFAULT_LINK_CAPACITY: usize = 4 << 20;
    /// The default endpoint reserve: 128 MiB.
    pub const DEFAULT_ENDPOINT_RESERVE: usize = 128 << 20;
    /// The default global reserve: 512 MiB.
    pub const DEFAULT_GLOBAL_RESERVE: usize = 512 << 20;

    /// These three limits (usable in a `const`).
    ///
    /// ```
    /// use internode::limits::Limits;
    /// const SMALL: Limits = Limits::new(64 << 10, 1 << 20, 4 << 20);
    /// assert_eq!(SMALL, Limits::default().link_capacity(64 << 10).endpoint_reserve(1 << 20).global_reserve(4 << 20));
    /// ```
    pub const fn new(link_capacity: usize, endpoint_reserve: usize, global_reserve: usize) -> Self {
        Limits {
            link_capacity,
            endpoint_reserve,
            global_reserve,
        }
    }

    /// These limits with a link capacity of `bytes`.
    pub const fn link_capacity(mut self, bytes: usize) -> Self {
        self.link_capacity = bytes;
        self
    }

    /// These limits with an endpoint reserve of `bytes`.
    pub const fn endpoint_reserve(mut self, bytes: usize) -> Self {
        self.endpoint_reserve = bytes;
        self
    }

    /// These limits with a global reserve of `bytes`.
    pub const fn global_reserve(mut self, bytes: usize) -> Self {
        self.global_reserve = bytes;
        self
    }
}

impl Default for Limits {
    /// 4 MiB per link, 128 MiB per endpoint, 512 MiB per node (Cassandra's defaults).
    ///
    /// ```
    /// let limits = internode::limits::Limits::default();
    /// assert_eq!(limits.link_capacity, 4 * 1024 * 1024);
    /// assert_eq!(limits.endpoint_reserve, 128 * 1024 * 1024);
    /// assert_eq!(limits.global_reserve, 512 * 1024 * 1024);
    /// ```
    fn default() -> Self {
        Limits {
            link_capacity: Self::DEFAULT_LINK_CAPACITY,
            endpoint_reserve: Self::DEFAULT_ENDPOINT_RESERVE,
            global_reserve: Self::DEFAULT_GLOBAL_RESERVE,
        }
    }
}
