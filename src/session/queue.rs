//! A link's outbound queue as plain state: admission against the link's byte
//! [`Account`], expiry, and the order of writing. [`OutboundQueue`]'s type docs state
//! the invariants.

use std::collections::VecDeque;

use crate::envelope::deadline_passed;
use crate::limits::{Account, Charge, Grant, ReserveNeeded};

/// A message in the queue, with the bytes it is charged.
#[derive(Debug)]
#[non_exhaustive]
pub struct Entry<K, T> {
    /// The message (and whatever the shell keeps with it).
    pub item: T,
    /// When it expires, in ms since the UNIX epoch.
    pub expires_at_ms: Option<u64>,
    /// Its bytes, as charged.
    pub charge: Charge<K>,
}

impl<K, T> Entry<K, T> {
    /// Whether the message has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        deadline_passed(self.expires_at_ms, now_ms)
    }
}

/// Why [`OutboundQueue::try_push`] did not take a message; the message is handed back.
#[derive(Debug)]
pub enum Refused<T> {
    /// Its deadline has passed.
    Expired(T),
    /// The link's capacity and spare lease are short even after dropping the expired
    /// messages: acquire this much reserve (then [`OutboundQueue::add_lease`] and push
    /// again), or reject the message as overloaded.
    NeedReserve(T, ReserveNeeded),
}

/// The messages a link has taken but not yet handed to a connection, in order, with
/// the bytes each is charged to the link's [`Account`].
///
/// Invariants (unit-tested on a simulated clock):
/// - Messages leave in the order they were pushed; a message is never handed out for
///   writing once expired (at `now_ms`), and an expired message is never admitted.
/// - The account's used bytes are the charges of the queued messages plus those of
///   the entries the shell has taken ([`pop`](Self::pop)) and not yet
///   [`settled`](Self::settle), plus what the owner charged through
///   [`account_mut`](Self::account_mut) and still holds (credit).
/// - A push that finds the link's bytes short first drops the expired messages (they
///   go to the `expired` list the caller gets back), then tries again; only then does
///   it ask for reserve. Messages taken for writing cannot be dropped, and never keep
///   the queued ones behind them from expiring.
#[derive(Debug)]
pub struct OutboundQueue<K, T> {
    account: Account<K>,
    queue: VecDeque<Entry<K, T>>,
}

impl<K: Clone + Eq, T> OutboundQueue<K, T> {
    /// An empty queue over an account of `capacity` bytes that leases reserve `chunk`
    /// bytes at a time.
    pub fn new(capacity: usize, chunk: usize) -> Self {
        OutboundQueue {
            account: Account::new(capacity, chunk),
            queue: VecDeque::new(),
        }
    }

    /// Takes a message of `bytes` into the queue, or refuses it. Messages dropped on
    /// the way because they expired are appended to `expired`.
    pub fn try_push(
        &mut self,
        item: T,
        bytes: usize,
        expires_at_ms: Option<u64>,
        now_ms: u64,
        expired: &mut Vec<Entry<K, T>>,
    ) -> Result<(), Refused<T>> {
        if deadline_passed(expires_at_ms, now_ms) {
            return Err(Refused::Expired(item));
        }
        let charge = match self.account.try_charge(bytes) {
            Ok(charge) => charge,
            Err(_) => {
                self.handle_timeout(now_ms, expired);
                match self.account.try_charge(bytes) {
                    Ok(charge) => charge,
                    Err(need) => return Err(Refused::NeedReserve(item, need)),
                }
            }
        };
        self.queue.push_back(Entry {
            item,
            expires_at_ms,
            charge,
        });
        Ok(())
    }

    /// Takes a message whose bytes were charged before it arrived (out of a producer's
    /// credit) into the queue; refused, and handed back with its charge, only if its
    /// deadline has passed at `now_ms`.
    pub fn push_charged(
        &mut self,
        item: T,
        charge: Charge<K>,
        expires_at_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(), (T, Charge<K>)> {
        if deadline_passed(expires_at_ms, now_ms) {
            return Err((item, charge));
        }
        self.queue.push_back(Entry {
            item,
            expires_at_ms,
            charge,
        });
        Ok(())
    }

    /// Puts a message at the front (a keepalive that must not wait), charged like any.
    /// Refused, and handed back, only if it does not fit without reserve.
    pub fn push_front(&mut self, item: T, bytes: usize) -> Result<(), T> {
        match self.account.try_charge(bytes) {
            Ok(charge) => {
                self.queue.push_front(Entry {
                    item,
                    expires_at_ms: None,
                    charge,
                });
                Ok(())
            }
            Err(_) => Err(item),
        }
    }

    /// Adds reserve acquired after [`Refused::NeedReserve`]. A grant of another
    /// endpoint or reserves is handed back.
    pub fn add_lease(&mut self, grant: Grant<K>) -> Result<(), Grant<K>> {
        self.account.add_lease(grant)
    }

    /// Removes the expired messages (at `now_ms`) and appends them to `expired`; their
    /// bytes are given back.
    pub fn handle_timeout(&mut self, now_ms: u64, expired: &mut Vec<Entry<K, T>>) {
        if !self.queue.iter().any(|e| e.expired(now_ms)) {
            return;
        }
        for entry in std::mem::take(&mut self.queue) {
            if entry.expired(now_ms) {
                expired.push(self.settle(entry));
            } else {
                self.queue.push_back(entry);
            }
        }
    }

    /// The next message to write, skipping (into `expired`, bytes given back) those
    /// that expired. Its bytes stay charged until it is [`settle`](Self::settle)d.
    pub fn pop(&mut self, now_ms: u64, expired: &mut Vec<Entry<K, T>>) -> Option<Entry<K, T>> {
        while let Some(entry) = self.queue.pop_front() {
            if entry.expired(now_ms) {
                expired.push(self.settle(entry));
                continue;
            }
            return Some(entry);
        }
        None
    }

    /// Gives back the bytes of a message taken with [`pop`](Self::pop) (written or
    /// failed); returns it with an empty charge.
    pub fn settle(&mut self, mut entry: Entry<K, T>) -> Entry<K, T> {
        let charge = std::mem::replace(
            &mut entry.charge,
            Charge {
                link: 0,
                reserve: None,
            },
        );
        self.account.discharge(charge);
        entry
    }

    /// Removes every queued message (closing without drain), bytes given back.
    pub fn drain(&mut self) -> Vec<Entry<K, T>> {
        std::mem::take(&mut self.queue)
            .into_iter()
            .map(|e| self.settle(e))
            .collect()
    }

    /// Removes the queued messages `drop` selects, bytes given back.
    pub fn remove_where(&mut self, mut drop: impl FnMut(&T) -> bool) -> Vec<Entry<K, T>> {
        let mut removed = Vec::new();
        for entry in std::mem::take(&mut self.queue) {
            if drop(&entry.item) {
                removed.push(self.settle(entry));
            } else {
                self.queue.push_back(entry);
            }
        }
        removed
    }

    /// Reserve the link holds but does not need (see [`Account::surplus`]); to be
    /// released.
    #[must_use = "a surplus grant must be released to the reserves"]
    pub fn surplus(&mut self) -> Option<Grant<K>> {
        self.account.surplus()
    }

    /// All the spare lease if no reserve is charged (see [`Account::idle_spare`]).
    #[must_use = "an idle spare grant must be released to the reserves"]
    pub fn idle_spare(&mut self) -> Option<Grant<K>> {
        self.account.idle_spare()
    }

    /// All the spare lease (the link is closing).
    #[must_use = "the spare lease must be released to the reserves"]
    pub fn take_spare(&mut self) -> Option<Grant<K>> {
        self.account.take_spare()
    }

    /// Messages queued (not counting those taken for writing).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no message is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Gives back the queue's allocation if nothing is queued (an idle link holds
    /// none; the next message allocates it again).
    pub fn shrink_if_empty(&mut self) {
        super::shrink_if_empty(&mut self.queue);
    }

    /// The entries the queue has room for without allocating.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Bytes charged: queued messages and those taken and not yet settled.
    pub fn bytes(&self) -> usize {
        self.account.used()
    }

    /// The account (capacity, reserve charged, spare lease).
    pub fn account(&self) -> &Account<K> {
        &self.account
    }

    /// The account, for charges that are not messages yet (producers' credit): what
    /// is charged through it must come back through it, or as a message's charge
    /// ([`push_charged`](Self::push_charged)).
    pub fn account_mut(&mut self) -> &mut Account<K> {
        &mut self.account
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
