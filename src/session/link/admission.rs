//! Taking messages and giving credit: the inputs of [`LinkSession`] that decide
//! whether a message is queued, and the producers' credit (see [`credit`](super::credit)).

use std::time::Instant;

use super::{Item, LinkSession};
use crate::limits::{Charge, Grant, ReserveNeeded};
use crate::outcome::{OverloadLevel, SendError};
use crate::session::{Admission, CreditAnswer, LinkState, Outbound, Refused};

impl<K: Clone + Eq, T> LinkSession<K, T> {
    /// A message to send, at `now` (`now_ms` since the UNIX epoch).
    pub fn handle_send(
        &mut self,
        message: Outbound,
        token: T,
        now: Instant,
        now_ms: u64,
    ) -> Admission<T> {
        self.admit(Item { message, token }, None, now, now_ms)
    }

    /// A message sent under credit (see [`handle_credit_ask`](Self::handle_credit_ask)):
    /// its bytes come out of the credit held, so it is never refused for lack of room.
    /// If less credit is held than it needs, it is taken as by
    /// [`handle_send`](Self::handle_send).
    pub fn handle_send_credited(
        &mut self,
        message: Outbound,
        token: T,
        now: Instant,
        now_ms: u64,
    ) -> Admission<T> {
        let credit = self.credits.take(message.size());
        self.admit(Item { message, token }, credit, now, now_ms)
    }

    /// A producer asks (`id`, its own) for between `at_least` and `up_to` bytes of
    /// credit at `now`: the answers come out of [`poll_credit`](Self::poll_credit), in
    /// the order of the asks, once the link has room.
    pub fn handle_credit_ask(&mut self, id: u64, at_least: usize, up_to: usize, now: Instant) {
        self.credits.ask(id, at_least, up_to);
        self.housekeep(now);
    }

    /// A producer gives back `bytes` of credit it will not use.
    pub fn handle_credit_returned(&mut self, bytes: usize, now: Instant) {
        self.credits.give_back(bytes, &mut self.queue);
        self.housekeep(now);
    }

    /// The reserve asked for by [`poll_credit_acquire`](Self::poll_credit_acquire) was
    /// granted (`None`: the request failed or was abandoned; the link asks again).
    pub fn handle_credit_lease(&mut self, grant: Option<Grant<K>>, now: Instant) {
        let closing = matches!(
            self.lifecycle.state(),
            LinkState::Draining | LinkState::Closed
        );
        let grant = if closing {
            // No credit is granted any more: straight back.
            self.credits.leased(None, &mut self.queue);
            grant
        } else {
            self.credits.leased(grant, &mut self.queue)
        };
        if let Some(grant) = grant {
            self.releases.push(grant);
        }
        self.housekeep(now);
    }

    /// The reserve asked for by [`poll_credit_acquire`](Self::poll_credit_acquire) is
    /// short at `level` for now: the producer waiting is told so; the shell then waits
    /// for the reserve and reports it with [`handle_credit_lease`](Self::handle_credit_lease).
    pub fn handle_credit_shortage(&mut self, level: OverloadLevel) {
        self.credits.shortage(level);
    }

    fn admit(
        &mut self,
        item: Item<T>,
        credit: Option<Charge<K>>,
        now: Instant,
        now_ms: u64,
    ) -> Admission<T> {
        let max = self.config.max_message;
        let size = item.message.size();
        let refusal = if matches!(
            self.lifecycle.state(),
            LinkState::Draining | LinkState::Closed
        ) {
            Some(SendError::Closed)
        } else if item.message.payload.len() > max {
            let size = item.message.payload.len();
            Some(SendError::Oversized { size, max })
        } else {
            None
        };
        if let Some(error) = refusal {
            if let Some(charge) = credit {
                self.queue.account_mut().discharge(charge);
            }
            self.fail(item, error);
            self.housekeep(now);
            return Admission::Refused;
        }
        let expires = item.message.expires_at_ms;
        let mut expired = Vec::new();
        let result = match credit {
            Some(charge) => match self.queue.push_charged(item, charge, expires, now_ms) {
                Ok(()) => Ok(()),
                Err((item, charge)) => {
                    self.queue.account_mut().discharge(charge);
                    Err(Refused::Expired(item))
                }
            },
            None => self
                .queue
                .try_push(item, size, expires, now_ms, &mut expired),
        };
        self.expired(expired);
        let admission = match result {
            Ok(()) => {
                self.counters.accepted += 1;
                self.counters.accepted_bytes += size as u64;
                let actions = self.lifecycle.handle_messages_waiting();
                self.apply(actions);
                Admission::Queued
            }
            Err(Refused::Expired(item)) => {
                self.fail(item, SendError::Expired);
                Admission::Refused
            }
            Err(Refused::NeedReserve(item, need)) => {
                if self.failing_to_connect() {
                    self.fail(item, SendError::Overloaded(OverloadLevel::Link));
                    Admission::Refused
                } else {
                    Admission::NeedReserve {
                        message: item.message,
                        token: item.token,
                        need,
                    }
                }
            }
        };
        self.housekeep(now);
        admission
    }

    /// Reserve acquired after [`Admission::NeedReserve`].
    pub fn handle_lease(&mut self, grant: Grant<K>) {
        if let Err(grant) = self.queue.add_lease(grant) {
            self.releases.push(grant);
        }
    }

    /// The reserve was short for a message that needed it: it fails `Overloaded`.
    pub fn handle_shortage(&mut self, message: Outbound, token: T, level: OverloadLevel) {
        self.fail(Item { message, token }, SendError::Overloaded(level));
    }

    /// The next answer to a producer's ask for credit: the ask's id and the answer.
    pub fn poll_credit(&mut self) -> Option<(u64, CreditAnswer)> {
        self.credits.poll_answer()
    }

    /// Reserve the first waiting credit ask needs, at most one request at a time: ask
    /// the reserves and report with [`handle_credit_lease`](Self::handle_credit_lease)
    /// (and [`handle_credit_shortage`](Self::handle_credit_shortage) while short).
    pub fn poll_credit_acquire(&mut self) -> Option<ReserveNeeded> {
        self.credits.poll_acquire()
    }
}
