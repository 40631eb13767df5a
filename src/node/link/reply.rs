//! Where a message's outcome goes: [`OutboundReply`], the response of the link's
//! `Outbound` handler.
//!
//! actix creates a response channel for every `send`; the handler's result type
//! receives it ([`MessageResponse`]). Rather than a future per message awaiting a
//! second channel (a spawned task, a channel and a box per message), the link keeps a
//! shared slot with the message and completes it when the outcome is known; the slot
//! hands the outcome to actix's channel as soon as both are there, in whichever order
//! they arrive (a message can fail inside the handler, before actix hands over its
//! channel).
//!
//! Invariants: each slot delivers at most one outcome; an outcome that arrives first
//! waits in the slot for the channel; a slot dropped without an outcome drops the
//! channel, which the sender sees as the link having gone (`Closed`).
//!
//! actix skips a message whose sender dropped its response before the handler ran, so
//! an `Outbound` whose future is dropped early is withdrawn. Messages sent under credit
//! (`Credited`) bring their own channel instead ([`Slot::channel`], sent with
//! `do_send`): they are always handled, and a dropped receiver only loses the outcome.

use std::cell::RefCell;
use std::rc::Rc;

use actix::dev::{MessageResponse, OneshotSender};

use super::Link;
#[cfg(doc)]
use super::Outbound;
use crate::outcome::{SendError, Sent};

type Outcome = Result<Sent, SendError>;

enum State {
    Empty,
    Sender(OneshotSender<Outcome>),
    Outcome(Outcome),
    Done,
}

/// The link's side of a message's outcome.
pub(super) struct Slot(Option<Where>);

enum Where {
    /// Shared with the handler's response ([`OutboundReply`]).
    Shared(Rc<RefCell<State>>),
    /// A channel that came with the message (a message sent under credit): the
    /// message is handled whether or not anyone still listens.
    Channel(tokio::sync::oneshot::Sender<Outcome>),
    /// Message `index` of a batch: the batch's one channel gets every outcome, once
    /// the last is known.
    Batch(Rc<RefCell<Batch>>, usize),
}

/// The outcomes of a batch sent under credit, filled in as they come.
pub(super) struct Batch {
    outcomes: Vec<Option<Outcome>>,
    left: usize,
    reply: Option<tokio::sync::oneshot::Sender<Vec<Outcome>>>,
}

impl Batch {
    /// A batch of `len` messages whose outcomes go to `reply`, and its slots in
    /// order. A slot dropped without an outcome (the link gone) counts as `Closed`
    /// at its place.
    pub fn slots(
        len: usize,
        reply: tokio::sync::oneshot::Sender<Vec<Outcome>>,
    ) -> impl Iterator<Item = Slot> {
        let batch = Rc::new(RefCell::new(Batch {
            outcomes: (0..len).map(|_| None).collect(),
            left: len,
            reply: Some(reply),
        }));
        (0..len).map(move |i| Slot(Some(Where::Batch(batch.clone(), i))))
    }

    fn complete(&mut self, index: usize, outcome: Outcome) {
        let Some(place) = self.outcomes.get_mut(index) else {
            return;
        };
        if place.replace(outcome).is_none() {
            self.left -= 1;
        }
        if self.left == 0 {
            if let Some(reply) = self.reply.take() {
                let outcomes = std::mem::take(&mut self.outcomes);
                // Every place is filled: `left` counted them.
                let _ = reply.send(outcomes.into_iter().flatten().collect());
            }
        }
    }
}

impl Slot {
    /// A slot and the response the handler returns with it.
    pub fn new() -> (Slot, OutboundReply) {
        let state = Rc::new(RefCell::new(State::Empty));
        (
            Slot(Some(Where::Shared(state.clone()))),
            OutboundReply(Some(state)),
        )
    }

    /// A slot that completes `tx`.
    pub fn channel(tx: tokio::sync::oneshot::Sender<Outcome>) -> Slot {
        Slot(Some(Where::Channel(tx)))
    }

    /// Delivers the outcome (now, or when actix hands over its channel).
    pub fn complete(mut self, outcome: Outcome) {
        let Some(place) = self.0.take() else {
            return;
        };
        let state = match place {
            Where::Channel(tx) => {
                // Nobody listening any more is fine: the outcome is counted.
                let _ = tx.send(outcome);
                return;
            }
            Where::Batch(batch, index) => {
                batch.borrow_mut().complete(index, outcome);
                return;
            }
            Where::Shared(state) => state,
        };
        let mut state = state.borrow_mut();
        match std::mem::replace(&mut *state, State::Done) {
            State::Sender(tx) => {
                let _ = tx.send(outcome);
            }
            State::Empty => *state = State::Outcome(outcome),
            State::Outcome(_) | State::Done => {}
        }
    }
}

impl Drop for Slot {
    /// A message of a batch whose slot goes without an outcome (the link gone with
    /// it) fails `Closed` at its place, so that the batch still answers with every
    /// outcome it has. A single message's sender sees its channel closed, which reads
    /// `Closed` too.
    fn drop(&mut self) {
        if let Some(Where::Batch(batch, index)) = self.0.take() {
            batch
                .borrow_mut()
                .complete(index, Err(crate::outcome::SendError::Closed));
        }
    }
}

/// The response to an [`Outbound`]: resolves, for the sender, to the message's
/// outcome once it is known (written, or why it failed).
pub struct OutboundReply(Option<Rc<RefCell<State>>>);

impl<M> MessageResponse<Link, M> for OutboundReply
where
    M: actix::Message<Result = Outcome>,
{
    fn handle(mut self, _: &mut actix::Context<Link>, tx: Option<OneshotSender<Outcome>>) {
        if let (Some(state), Some(tx)) = (self.0.take(), tx) {
            attach(&state, tx);
        }
        // Without a channel (`do_send`) nobody listens: the outcome is only counted.
    }
}

/// Hands actix's channel to the slot: the outcome goes out now if it is there.
fn attach(state: &RefCell<State>, tx: OneshotSender<Outcome>) {
    let mut state = state.borrow_mut();
    match std::mem::replace(&mut *state, State::Done) {
        State::Outcome(outcome) => {
            let _ = tx.send(outcome);
        }
        State::Empty => *state = State::Sender(tx),
        State::Sender(_) | State::Done => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn deliver(mut reply: OutboundReply, tx: OneshotSender<Outcome>) {
        attach(&reply.0.take().expect("a reply holds its state"), tx);
    }

    #[test]
    fn the_outcome_reaches_the_sender_whichever_comes_first() {
        // The channel first, then the outcome (a message written later).
        let (slot, reply) = Slot::new();
        let (tx, mut rx) = oneshot::channel();
        deliver(reply, tx);
        assert!(rx.try_recv().is_err());
        slot.complete(Ok(Sent::Written));
        assert_eq!(rx.try_recv(), Ok(Ok(Sent::Written)));

        // The outcome first (a message refused inside the handler), then the channel.
        let (slot, reply) = Slot::new();
        slot.complete(Err(SendError::Expired));
        let (tx, mut rx) = oneshot::channel();
        deliver(reply, tx);
        assert_eq!(rx.try_recv(), Ok(Err(SendError::Expired)));

        // A slot dropped without an outcome: the sender sees the channel closed.
        let (slot, reply) = Slot::new();
        let (tx, mut rx) = oneshot::channel();
        deliver(reply, tx);
        drop(slot);
        assert_eq!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed));
    }

    #[test]
    fn a_batch_answers_once_with_every_outcome_in_order() {
        let (tx, mut rx) = oneshot::channel();
        let mut slots: Vec<_> = Batch::slots(3, tx).collect();
        let third = slots.pop().unwrap();
        let second = slots.pop().unwrap();
        let first = slots.pop().unwrap();
        third.complete(Err(SendError::Expired));
        first.complete(Ok(Sent::Acknowledged));
        assert!(rx.try_recv().is_err(), "one outcome still missing");
        second.complete(Ok(Sent::Written));
        assert_eq!(
            rx.try_recv(),
            Ok(vec![
                Ok(Sent::Acknowledged),
                Ok(Sent::Written),
                Err(SendError::Expired)
            ])
        );

        // A slot dropped without its outcome: `Closed` at its place, and the others
        // keep theirs.
        let (tx, mut rx) = oneshot::channel();
        let mut slots: Vec<_> = Batch::slots(2, tx).collect();
        drop(slots.pop());
        slots.pop().unwrap().complete(Ok(Sent::Written));
        assert_eq!(
            rx.try_recv(),
            Ok(vec![Ok(Sent::Written), Err(SendError::Closed)])
        );
    }
}
