//! Producers' credit: bytes a link promises to take from its mailbox without refusing
//! them for lack of room ([`Credits`], driven by [`LinkSession`](super::LinkSession)).
//!
//! A producer handle asks its link for credit (at least what its next message needs,
//! up to a chunk) and sends messages within what it holds; the link grants credit
//! only out of its own capacity and the reserve it leased, and charges it to its
//! account at once. A message sent under credit is then charged with bytes carved out
//! of that charge, so it is never refused as overloaded, and the bytes in the mailbox
//! plus those in the link never exceed the link's capacity plus its lease.
//!
//! Invariants:
//! - Asks are answered in the order they came; a later ask is never granted while an
//!   earlier one waits.
//! - [`held`](Credits::held) bytes are charged to the link's account: the account's
//!   used bytes are the messages' charges plus the credit held.
//! - Every ask ends in exactly one final answer ([`CreditAnswer::Granted`] or
//!   [`CreditAnswer::Refused`]); [`CreditAnswer::Waiting`] may come before it.
//! - While the link fails to connect, asks are granted only out of what the account
//!   has (no reserve is asked for a link that cannot deliver); one that does not fit
//!   is told `Waiting(Link)` at once.

use std::collections::VecDeque;

use super::OutboundQueue;
use crate::limits::{Charge, Grant, ReserveNeeded, ReserveRequest};
use crate::outcome::{OverloadLevel, SendError};

/// An answer to a producer's ask for credit, from
/// [`LinkSession::poll_credit`](super::LinkSession::poll_credit).
#[derive(Debug, Clone, PartialEq)]
pub enum CreditAnswer {
    /// This many bytes of credit (at least what was asked).
    Granted(usize),
    /// Not yet: the link's capacity is used up and the reserve is short at this level;
    /// the ask stays in line and a final answer follows.
    Waiting(OverloadLevel),
    /// Never (the link is closing or closed).
    Refused(SendError),
}

#[derive(Debug)]
struct Ask {
    id: u64,
    at_least: usize,
    up_to: usize,
}

/// The credit side of one link: what it granted and holds, and the asks in line.
#[derive(Debug)]
pub(super) struct Credits<K> {
    /// Granted and not yet used by a message: charged to the account.
    held: Charge<K>,
    asks: VecDeque<Ask>,
    answers: VecDeque<(u64, CreditAnswer)>,
    /// Reserve the first ask needs.
    acquire: ReserveRequest,
    /// The level the reserve was last found short at, told once per ask.
    short: Option<(u64, OverloadLevel)>,
}

impl<K: Clone + Eq> Credits<K> {
    pub fn new() -> Self {
        Credits {
            held: Charge::none(),
            asks: VecDeque::new(),
            answers: VecDeque::new(),
            acquire: ReserveRequest::default(),
            short: None,
        }
    }

    /// A producer asks for between `at_least` and `up_to` bytes.
    pub fn ask(&mut self, id: u64, at_least: usize, up_to: usize) {
        self.asks.push_back(Ask {
            id,
            at_least,
            up_to: up_to.max(at_least),
        });
    }

    /// Takes `bytes` of the held credit for a message; `None` if less is held.
    pub fn take(&mut self, bytes: usize) -> Option<Charge<K>> {
        self.held.split_off(bytes)
    }

    /// A producer gives back `bytes` of credit it will not use (its handle is gone).
    pub fn give_back<T>(&mut self, bytes: usize, queue: &mut OutboundQueue<K, T>) {
        let bytes = bytes.min(self.held.bytes());
        if let Some(charge) = self.held.split_off(bytes) {
            queue.account_mut().discharge(charge);
        }
    }

    /// A grant of reserve arrived for the first ask (`None`: the request was
    /// abandoned, e.g. with the connection it was made on). Returns the grant if the
    /// account does not take it.
    pub fn leased<T>(
        &mut self,
        grant: Option<Grant<K>>,
        queue: &mut OutboundQueue<K, T>,
    ) -> Option<Grant<K>> {
        self.acquire.answered();
        queue.account_mut().add_lease(grant?).err()
    }

    /// The reserve was short at `level` for the first ask: it is told so (once).
    pub fn shortage(&mut self, level: OverloadLevel) {
        if let Some(ask) = self.asks.front() {
            if self.short.map(|(id, _)| id) != Some(ask.id) {
                self.answers
                    .push_back((ask.id, CreditAnswer::Waiting(level)));
            }
            self.short = Some((ask.id, level));
        }
    }

    /// Grants what the account has room for, in order; `may_lease`: ask for reserve
    /// for the first ask that does not fit.
    pub fn grant<T>(&mut self, queue: &mut OutboundQueue<K, T>, may_lease: bool) {
        while let Some(ask) = self.asks.front() {
            match queue
                .account_mut()
                .try_charge_between(ask.at_least, ask.up_to)
            {
                Ok(charge) => {
                    let bytes = charge.bytes();
                    if let Err(charge) = self.held.merge(charge) {
                        // Both come from the same account: cannot happen.
                        debug_assert!(false, "credit of another account");
                        queue.account_mut().discharge(charge);
                        return;
                    }
                    self.answers
                        .push_back((ask.id, CreditAnswer::Granted(bytes)));
                    self.asks.pop_front();
                    self.acquire.want(None);
                }
                Err(need) => {
                    self.acquire.want(may_lease.then_some(need));
                    if !may_lease {
                        // No reserve for a link that cannot deliver: the producer
                        // learns at once that it waits for the link's capacity.
                        self.shortage(OverloadLevel::Link);
                    }
                    return;
                }
            }
        }
        self.acquire.want(None);
    }

    /// Moves credit held out of reserve onto the link's capacity where it has room
    /// again, so that reserve leased while the link was full goes back even if the
    /// producer holds its credit for long.
    pub fn rebalance<T>(&mut self, queue: &mut OutboundQueue<K, T>) {
        let reserve = self.held.reserve.as_ref().map_or(0, Grant::bytes);
        let bytes = reserve.min(queue.account().capacity_left());
        if bytes == 0 {
            return;
        }
        let Some(freed) = self.held.reserve.as_mut().and_then(|g| g.split_off(bytes)) else {
            return;
        };
        let account = queue.account_mut();
        match account.try_charge(bytes) {
            Ok(link) => {
                debug_assert!(link.reserve.is_none(), "within the capacity left");
                account.discharge(Charge {
                    link: 0,
                    reserve: Some(freed),
                });
                if let Err(link) = self.held.merge(link) {
                    account.discharge(link);
                }
            }
            Err(_) => {
                // Cannot happen (the capacity had room); put it back.
                let _ = self.held.merge(Charge {
                    link: 0,
                    reserve: Some(freed),
                });
            }
        }
    }

    /// Refuses every ask (closing) and gives every byte held back to the account.
    pub fn close<T>(&mut self, error: &SendError, queue: &mut OutboundQueue<K, T>) {
        for ask in self.asks.drain(..) {
            self.answers
                .push_back((ask.id, CreditAnswer::Refused(error.clone())));
        }
        self.acquire.want(None);
        let held = std::mem::replace(&mut self.held, Charge::none());
        queue.account_mut().discharge(held);
    }

    pub fn poll_answer(&mut self) -> Option<(u64, CreditAnswer)> {
        self.answers.pop_front()
    }

    pub fn poll_acquire(&mut self) -> Option<ReserveNeeded> {
        self.acquire.poll()
    }

    /// Bytes granted and not yet used.
    pub fn held(&self) -> usize {
        self.held.bytes()
    }

    /// Asks waiting for room.
    pub fn waiting(&self) -> usize {
        self.asks.len()
    }
}
