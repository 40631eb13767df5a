//! The endpoint and global reserves of one direction: [`Reserves`], and the [`Grant`]s
//! it hands out (their type docs state the invariants).

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::Hash;
use std::thread::{self, ThreadId};

use super::Limits;

/// Which reserve could not cover a request; nothing was granted and nothing changed.
///
/// The endpoint reserve is checked first: when both are short, the endpoint is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Shortage {
    /// The endpoint's reserve has less left than requested.
    #[error("endpoint reserve short: {requested} bytes requested, {available} available")]
    Endpoint {
        /// The bytes asked for.
        requested: usize,
        /// What the endpoint's reserve had left.
        available: usize,
    },
    /// The endpoint's reserve had room, but the global reserve has less left than
    /// requested.
    #[error("global reserve short: {requested} bytes requested, {available} available")]
    Global {
        /// The bytes asked for.
        requested: usize,
        /// What the global reserve had left.
        available: usize,
    },
}

impl Shortage {
    /// The bytes asked for.
    pub fn requested(&self) -> usize {
        match *self {
            Shortage::Endpoint { requested, .. } | Shortage::Global { requested, .. } => requested,
        }
    }

    /// What the short reserve had left (less than [`requested`](Self::requested)).
    pub fn available(&self) -> usize {
        match *self {
            Shortage::Endpoint { available, .. } | Shortage::Global { available, .. } => available,
        }
    }
}

/// The identity of one [`Reserves`] value, carried by its grants: the thread that
/// created it and a per-thread serial number, unique for the life of the process
/// (thread ids are never reused) without any shared counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    thread: ThreadId,
    serial: u64,
}

impl Owner {
    fn new() -> Self {
        thread_local!(static NEXT_SERIAL: Cell<u64> = const { Cell::new(0) });
        let serial = NEXT_SERIAL.with(|next| {
            let serial = next.get();
            next.set(serial.wrapping_add(1));
            serial
        });
        Owner {
            thread: thread::current().id(),
            serial,
        }
    }
}

/// Bytes of reserve held for one endpoint by the holder of this token, to be given
/// back with [`Reserves::release`].
///
/// A grant can be neither cloned nor built outside this module; release consumes it.
/// So the bytes given back are exactly the bytes granted: never more, never twice.
/// [`split_off`](Self::split_off) and [`merge`](Self::merge) move bytes between grants
/// of the same endpoint and [`Reserves`] without creating any, which is how a link
/// carves messages out of a lease.
///
/// Dropping a grant without releasing it leaks its bytes: they stay in use in the
/// [`Reserves`] until that is dropped. (Dropping a zero-byte grant is harmless.)
#[must_use = "dropping a Grant without releasing it leaks its bytes of reserve"]
#[derive(Debug)]
pub struct Grant<K> {
    owner: Owner,
    endpoint: K,
    bytes: usize,
}

impl<K> Grant<K> {
    /// The bytes this grant holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The endpoint whose reserve the bytes come from.
    pub fn endpoint(&self) -> &K {
        &self.endpoint
    }

    /// Whether the grant holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Moves `bytes` of this grant into a new grant, for the same endpoint and
    /// [`Reserves`]; this one keeps the rest. `None` (and nothing changes) if this grant
    /// holds fewer than `bytes`.
    #[must_use = "dropping a Grant without releasing it leaks its bytes of reserve"]
    pub fn split_off(&mut self, bytes: usize) -> Option<Grant<K>>
    where
        K: Clone,
    {
        self.bytes = self.bytes.checked_sub(bytes)?;
        Some(Grant {
            owner: self.owner,
            endpoint: self.endpoint.clone(),
            bytes,
        })
    }

    /// Moves all of `other`'s bytes into this grant. If `other` is for another endpoint
    /// or from another [`Reserves`], nothing changes and it is handed back.
    pub fn merge(&mut self, other: Grant<K>) -> Result<(), Grant<K>>
    where
        K: Eq,
    {
        if other.owner != self.owner || other.endpoint != self.endpoint {
            return Err(other);
        }
        // Both grants' bytes are counted in the same endpoint's in-use total, which is
        // a usize, so their sum fits.
        self.bytes += other.bytes;
        Ok(())
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    in_use: usize,
    peak: usize,
}

/// The endpoint and global reserves of one direction (sending or receiving), held by
/// the `ResourceLimits` actor. `K` identifies an endpoint (e.g. a [`NodeId`](crate::NodeId)).
///
/// Invariants (checked by property tests over arbitrary sequences of operations):
/// - Every endpoint's in-use bytes are at most [`Limits::endpoint_reserve`], and their
///   sum, the global in-use bytes, at most [`Limits::global_reserve`], at every moment.
/// - Each in-use total equals the sum of the outstanding [`Grant`]s (for that endpoint,
///   or all of them). After every grant is released, everything is zero.
/// - [`try_acquire`](Self::try_acquire) grants from both reserves at once or, when
///   either is short, changes nothing.
/// - [`release`](Self::release) of a grant from another `Reserves` changes nothing (and
///   panics in debug builds: it is a bug in the caller).
/// - Only endpoints with bytes in use are kept: memory does not grow with the number of
///   endpoints ever seen.
/// - [`peak_global`](Self::peak_global) and [`peak_endpoints`](Self::peak_endpoints)
///   never decrease; every peak is at least the matching in-use total.
///
/// Deliberately not `Clone`: two copies would each accept the same grants.
#[derive(Debug)]
pub struct Reserves<K> {
    limits: Limits,
    owner: Owner,
    endpoints: HashMap<K, Usage>,
    in_use_global: usize,
    peak_global: usize,
    peak_endpoints: usize,
}

impl<K: Eq + Hash + Clone> Default for Reserves<K> {
    /// Reserves with the [default limits](Limits::default).
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl<K: Eq + Hash + Clone> Reserves<K> {
    /// Reserves with the given limits and nothing in use. (Only the two reserve limits
    /// are used here; [`Limits::link_capacity`] is for the links' [`LinkBudget`]s.)
    ///
    /// [`LinkBudget`]: super::LinkBudget
    pub fn new(limits: Limits) -> Self {
        Reserves {
            limits,
            owner: Owner::new(),
            endpoints: HashMap::new(),
            in_use_global: 0,
            peak_global: 0,
            peak_endpoints: 0,
        }
    }

    /// Grants `bytes` for `endpoint` if both its reserve and the global reserve have
    /// that much left; otherwise nothing changes and the error names the short reserve
    /// (the endpoint's if both are). A zero-byte request always succeeds.
    pub fn try_acquire(&mut self, endpoint: &K, bytes: usize) -> Result<Grant<K>, Shortage> {
        let available = self
            .limits
            .endpoint_reserve
            .saturating_sub(self.in_use(endpoint));
        if bytes > available {
            return Err(Shortage::Endpoint {
                requested: bytes,
                available,
            });
        }
        let available = self.available_global();
        if bytes > available {
            return Err(Shortage::Global {
                requested: bytes,
                available,
            });
        }
        if bytes > 0 {
            // No overflow: the sums are within the limits just checked.
            let usage = self.endpoints.entry(endpoint.clone()).or_default();
            usage.in_use += bytes;
            usage.peak = usage.peak.max(usage.in_use);
            self.peak_endpoints = self.peak_endpoints.max(usage.in_use);
            self.in_use_global += bytes;
            self.peak_global = self.peak_global.max(self.in_use_global);
        }
        Ok(Grant {
            owner: self.owner,
            endpoint: endpoint.clone(),
            bytes,
        })
    }

    /// Gives back exactly the bytes `grant` holds. An endpoint left with nothing in use
    /// is forgotten.
    ///
    /// # Panics
    ///
    /// In debug builds, if `grant` comes from another `Reserves` (say, the receiving
    /// reserves' grant released to the sending ones). In release builds such a grant is
    /// ignored: its bytes stay counted where they were granted (a leak, never an
    /// overrun).
    pub fn release(&mut self, grant: Grant<K>) {
        let Grant {
            owner,
            endpoint,
            bytes,
        } = grant;
        if owner != self.owner {
            debug_assert!(false, "a grant released to reserves that did not grant it");
            return;
        }
        if bytes == 0 {
            return;
        }
        let Some(usage) = self.endpoints.get_mut(&endpoint) else {
            debug_assert!(false, "a grant of an endpoint with nothing in use");
            return;
        };
        // Own grants never hold more than is in use (the type's invariant); saturate
        // rather than trust that in release builds.
        debug_assert!(usage.in_use >= bytes && self.in_use_global >= bytes);
        usage.in_use = usage.in_use.saturating_sub(bytes);
        if usage.in_use == 0 {
            self.endpoints.remove(&endpoint);
        }
        self.in_use_global = self.in_use_global.saturating_sub(bytes);
    }

    /// Whether `grant` was handed out by this `Reserves` (so [`release`](Self::release)
    /// would accept it).
    pub fn owns(&self, grant: &Grant<K>) -> bool {
        grant.owner == self.owner
    }

    /// The limits, as given to [`new`](Self::new).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes of the global reserve in use (by all endpoints).
    pub fn in_use_global(&self) -> usize {
        self.in_use_global
    }

    /// Bytes of `endpoint`'s reserve in use.
    pub fn in_use(&self, endpoint: &K) -> usize {
        self.endpoints.get(endpoint).map_or(0, |usage| usage.in_use)
    }

    /// Bytes of the global reserve left.
    pub fn available_global(&self) -> usize {
        self.limits
            .global_reserve
            .saturating_sub(self.in_use_global)
    }

    /// The most [`try_acquire`](Self::try_acquire) would grant `endpoint` now: the less
    /// of what its reserve and the global reserve have left.
    pub fn available(&self, endpoint: &K) -> usize {
        let endpoint_left = self
            .limits
            .endpoint_reserve
            .saturating_sub(self.in_use(endpoint));
        endpoint_left.min(self.available_global())
    }

    /// The most bytes of the global reserve ever in use at once.
    pub fn peak_global(&self) -> usize {
        self.peak_global
    }

    /// The most bytes of `endpoint`'s reserve in use at once since it last had nothing
    /// in use (an endpoint is forgotten then); 0 if it has nothing in use.
    pub fn peak(&self, endpoint: &K) -> usize {
        self.endpoints.get(endpoint).map_or(0, |usage| usage.peak)
    }

    /// The most bytes any one endpoint's reserve ever had in use at once.
    pub fn peak_endpoints(&self) -> usize {
        self.peak_endpoints
    }

    /// Bytes in use per endpoint, for the endpoints with some in use (in no
    /// particular order).
    pub fn in_use_by_endpoint(&self) -> Vec<(K, usize)> {
        self.endpoints
            .iter()
            .map(|(k, usage)| (k.clone(), usage.in_use))
            .collect()
    }

    /// How many endpoints have bytes in use (the only ones remembered).
    pub fn endpoints(&self) -> usize {
        self.endpoints.len()
    }
}

#[cfg(test)]
#[path = "reserves_tests.rs"]
mod tests;
