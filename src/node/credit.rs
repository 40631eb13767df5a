//! A producer's byte credit on one link: [`CreditLine`], held by a [`Peer`](super::Peer)
//! (and the node's own handles) for each of the peer's links.
//!
//! The link grants credit by message passing ([`AskCredit`], answered on a channel
//! the line owns) out of its capacity and the reserve it leased, charging it at once;
//! a message sent within credit ([`Credited`]) is never refused for room. A send
//! within what the line holds puts the message in the link's mailbox at once (a
//! `do_send` and a oneshot for its outcome); beyond it, the send waits in line for more credit
//! ([`CreditLine::queue`]), or, when the caller asked not to wait
//! ([`CreditLine::try_queue`]), fails `Overloaded` at once. The line asks for more
//! before it runs out (when less than half a chunk is left), so a steady producer
//! does not wait for a round trip.
//!
//! Invariants:
//! - What is in the link's mailbox under this line's credit is at most the credit
//!   the link granted it; with every producer on credit, the bytes in the mailbox and
//!   in the link together stay within the link's capacity plus the reserve it leased.
//! - Messages enter the mailbox in the order of the calls on the line: a send never
//!   overtakes one waiting for credit. Whoever polls a future of the line serves the
//!   waiting sends from the first, as far as the credit goes, so a send is never stuck
//!   behind an earlier one nobody polls; one that expired or whose future was dropped
//!   leaves the line.
//! - At most one ask is out at a time on the line's channel (the first one,
//!   [`CreditLine::prime`], has a channel of its own).
//! - A message once in the mailbox is always handled: it carries its own outcome
//!   channel (sent with `do_send`), so dropping [`Queued`] only loses the outcome.
//! - Credit not used when the last handle on the line is dropped goes back to the
//!   link ([`ReturnCredit`]).
//! - The state is shared by the handles on the line and their futures only (a mutex
//!   held for a few instructions); the link itself is reached only by messages.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use actix::Addr;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use super::link::{AskCredit, Credited, Link, Outbound, ReturnCredit};
use crate::outcome::{OverloadLevel, SendError, Sent};
use crate::session::CreditAnswer;

/// A message in its link's mailbox (or delivered to this node itself): resolves with
/// its outcome (written or acknowledged, or why it failed). Dropping it does not
/// withdraw the message: only its outcome is not heard.
#[must_use = "the outcome of a queued message is only known by awaiting it"]
pub struct Queued(QueuedState);

enum QueuedState {
    Link(oneshot::Receiver<Result<Sent, SendError>>),
    Ready(Option<Result<Sent, SendError>>),
}

impl Queued {
    /// An outcome known already.
    pub(crate) fn ready(outcome: Result<Sent, SendError>) -> Self {
        Queued(QueuedState::Ready(Some(outcome)))
    }
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queued")
    }
}

impl Future for Queued {
    type Output = Result<Sent, SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            // The link gone without an outcome: it closed.
            QueuedState::Link(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(SendError::Closed))),
            QueuedState::Ready(outcome) => {
                Poll::Ready(outcome.take().unwrap_or(Err(SendError::Closed)))
            }
        }
    }
}

/// How much credit a line asks for, and the most it could ever get.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CreditSizes {
    /// Asked for at a time (at least what the next message needs).
    pub chunk: usize,
    /// The link's capacity plus the smaller reserve: a message above it never fits.
    pub most: usize,
}

impl CreditSizes {
    /// The sizes for a link under these send limits: a quarter of the link's capacity
    /// at a time.
    pub fn for_limits(limits: crate::limits::Limits) -> Self {
        let reserve = limits.endpoint_reserve.min(limits.global_reserve);
        CreditSizes {
            chunk: (limits.link_capacity / 4).max(1),
            most: limits.link_capacity.saturating_add(reserve),
        }
    }
}

/// A send waiting for credit, or queued and waiting for its future to take the result.
struct Pending {
    /// The message, while it waits.
    message: Option<Outbound>,
    expires_at: Option<Instant>,
    /// Its result, once queued (or failed) by whoever drove the line.
    result: Option<Result<Queued, SendError>>,
    waker: Option<Waker>,
}

struct Line {
    link: Addr<Link>,
    sizes: CreditSizes,
    /// Credit granted and not yet used.
    available: usize,
    /// An ask is out.
    asking: bool,
    /// The first ask ([`CreditLine::prime`]) was made.
    primed: bool,
    /// What the link said the ask waits for.
    short: Option<OverloadLevel>,
    /// The link refused credit for good.
    closed: Option<SendError>,
    answers: UnboundedReceiver<CreditAnswer>,
    reply: UnboundedSender<CreditAnswer>,
    /// The sends waiting for credit, by ticket; `order` holds the tickets of those
    /// still waiting, first in line first (tickets of sends dropped meanwhile are
    /// skipped).
    pending: HashMap<u64, Pending>,
    order: VecDeque<u64>,
    next_ticket: u64,
}

impl Line {
    /// Takes in the link's answers; polls with `cx` (registering it) when given.
    fn absorb(&mut self, cx: Option<&mut Context<'_>>) {
        match cx {
            Some(cx) => {
                // `None` cannot come: the line holds a sender itself.
                while let Poll::Ready(Some(answer)) = self.answers.poll_recv(cx) {
                    self.take_answer(answer);
                }
            }
            None => {
                while let Ok(answer) = self.answers.try_recv() {
                    self.take_answer(answer);
                }
            }
        }
    }

    fn take_answer(&mut self, answer: CreditAnswer) {
        match answer {
            CreditAnswer::Granted(bytes) => {
                self.available = self.available.saturating_add(bytes);
                self.asking = false;
                self.short = None;
            }
            CreditAnswer::Waiting(level) => self.short = Some(level),
            CreditAnswer::Refused(error) => {
                self.asking = false;
                self.closed = Some(error);
            }
        }
    }

    /// Asks for at least `at_least` more bytes unless an ask is out.
    fn ask(&mut self, at_least: usize) {
        if self.asking || self.closed.is_some() {
            return;
        }
        let ask = AskCredit {
            at_least,
            up_to: at_least.max(self.sizes.chunk),
            reply: self.reply.clone(),
        };
        match self.link.try_send(ask) {
            Ok(()) => self.asking = true,
            Err(_) => self.closed = Some(SendError::Closed),
        }
    }

    /// Takes `bytes` of credit and puts `message` in the mailbox; asks for more before
    /// the credit runs out.
    fn enqueue(&mut self, bytes: usize, message: Outbound) -> Queued {
        self.available -= bytes;
        let (reply, outcome) = oneshot::channel();
        let queued = match self.link.try_send(Credited { message, reply }) {
            Ok(()) => Queued(QueuedState::Link(outcome)),
            Err(_) => {
                self.closed = Some(SendError::Closed);
                Queued::ready(Err(SendError::Closed))
            }
        };
        if self.available < self.sizes.chunk / 2 {
            self.ask(self.sizes.chunk - self.available);
        }
        queued
    }

    /// Why a message of `bytes` can never get credit, if so.
    fn never(&self, bytes: usize) -> Option<SendError> {
        if let Some(closed) = &self.closed {
            return Some(closed.clone());
        }
        (bytes > self.sizes.most).then_some(SendError::Oversized {
            size: bytes,
            max: self.sizes.most,
        })
    }

    /// The ticket of the first send still waiting, dropping those that left.
    fn first_waiting(&mut self) -> Option<u64> {
        while let Some(&ticket) = self.order.front() {
            if self
                .pending
                .get(&ticket)
                .is_some_and(|p| p.message.is_some())
            {
                return Some(ticket);
            }
            self.order.pop_front();
        }
        None
    }

    /// Serves the waiting sends in order while the credit lasts (failing those that
    /// expired or can never be sent), waking each one served; asks for what the first
    /// one left needs.
    fn drive(&mut self, now: Instant) {
        while let Some(ticket) = self.first_waiting() {
            let Some(p) = self.pending.get(&ticket) else {
                break;
            };
            let bytes = p.message.as_ref().map_or(0, Outbound::size);
            let expired = p.expires_at.is_some_and(|at| now >= at);
            let result = if expired {
                Err(SendError::Expired)
            } else if let Some(error) = self.never(bytes) {
                Err(error)
            } else if self.available >= bytes {
                let Some(message) = self.pending.get_mut(&ticket).and_then(|p| p.message.take())
                else {
                    break;
                };
                Ok(self.enqueue(bytes, message))
            } else {
                let short = bytes - self.available;
                self.ask(short);
                return;
            };
            self.order.pop_front();
            if let Some(p) = self.pending.get_mut(&ticket) {
                p.message = None;
                p.result = Some(result);
                if let Some(waker) = p.waker.take() {
                    waker.wake();
                }
            }
        }
    }

    /// Fails send `ticket` `Expired` if its deadline passed while it waits (behind
    /// others, which `drive` does not get past).
    fn expire(&mut self, ticket: u64, now: Instant) {
        if let Some(p) = self.pending.get_mut(&ticket) {
            if p.message.is_some() && p.expires_at.is_some_and(|at| now >= at) {
                p.message = None;
                p.result = Some(Err(SendError::Expired));
            }
        }
        self.compact();
    }

    /// Forgets the tickets of sends that left the line (they are skipped anyway), so
    /// that `order` does not grow behind a first send that waits long.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.pending.len() + 16 {
            let pending = &self.pending;
            self.order
                .retain(|t| pending.get(t).is_some_and(|p| p.message.is_some()));
        }
    }

    /// [`drive`](Self::drive) if any send waits (the clock is read only then: not on
    /// the path of a send within credit).
    fn serve(&mut self) {
        if !self.order.is_empty() {
            self.drive(Instant::now());
        }
    }

    /// Wakes the first send still waiting, so that it polls the link's answers (only
    /// the last poller is registered with them).
    fn wake_first(&mut self) {
        if let Some(ticket) = self.first_waiting() {
            if let Some(waker) = self.pending.get_mut(&ticket).and_then(|p| p.waker.take()) {
                waker.wake();
            }
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.absorb(None);
        if self.available > 0 {
            self.link.do_send(ReturnCredit(self.available));
        }
    }
}

/// A producer's credit on one link; clones share it. See the module documentation.
#[derive(Clone)]
pub(crate) struct CreditLine(Arc<Mutex<Line>>);

impl std::fmt::Debug for CreditLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = self.lock();
        f.debug_struct("CreditLine")
            .field("available", &line.available)
            .field("waiting", &line.order.len())
            .finish()
    }
}

impl CreditLine {
    /// A line on `link` holding no credit yet.
    pub fn new(link: Addr<Link>, sizes: CreditSizes) -> Self {
        let (reply, answers) = mpsc::unbounded_channel();
        CreditLine(Arc::new(Mutex::new(Line {
            link,
            sizes,
            available: 0,
            asking: false,
            primed: false,
            short: None,
            closed: None,
            answers,
            reply,
            pending: HashMap::new(),
            order: VecDeque::new(),
            next_ticket: 0,
        })))
    }

    /// Asks for a first chunk of credit and waits for the link's first answer, so
    /// that the first sends on a new line are queued at once (the first call only).
    /// The ask has a channel of its own: only this future waits on it, and if it is
    /// dropped the link takes its answer back.
    pub async fn prime(&self) {
        let (reply, mut answers) = mpsc::unbounded_channel();
        {
            let mut line = self.lock();
            if std::mem::replace(&mut line.primed, true) {
                return;
            }
            let ask = AskCredit {
                at_least: 1,
                up_to: line.sizes.chunk,
                reply,
            };
            if line.link.try_send(ask).is_err() {
                line.closed = Some(SendError::Closed);
                return;
            }
        }
        let Some(answer) = answers.recv().await else {
            return;
        };
        let mut line = self.lock();
        match answer {
            CreditAnswer::Granted(bytes) => {
                line.available = line.available.saturating_add(bytes);
                line.serve();
            }
            CreditAnswer::Waiting(level) => line.short = Some(level),
            CreditAnswer::Refused(error) => line.closed = Some(error),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Line> {
        // The line's state is consistent after every statement: a panic elsewhere
        // while it was held leaves nothing half-done.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `message` in the link's mailbox now if the line holds credit for it and no
    /// send waits; otherwise fails at once: `Overloaded` (at the level the link last
    /// found short, else `Link`), or why it can never be sent.
    pub fn try_queue(&self, message: Outbound) -> Result<Queued, SendError> {
        let bytes = message.size();
        let mut line = self.lock();
        line.absorb(None);
        line.serve();
        if let Some(error) = line.never(bytes) {
            return Err(error);
        }
        if line.first_waiting().is_none() && line.available >= bytes {
            return Ok(line.enqueue(bytes, message));
        }
        let short = bytes.saturating_sub(line.available);
        line.ask(short.max(1));
        Err(SendError::Overloaded(
            line.short.unwrap_or(OverloadLevel::Link),
        ))
    }

    /// Puts `message` in the link's mailbox as soon as the line has credit for it, in
    /// the order of the calls: at once if it holds enough and no send waits (before
    /// this returns), else once the credit comes, when this future or any other one
    /// of the line is polled. A message whose deadline (`expires_at`) passes while it
    /// waits fails `Expired`; dropping the future while it waits withdraws the
    /// message.
    pub fn queue(&self, message: Outbound, expires_at: Option<Instant>) -> QueueFuture {
        let bytes = message.size();
        let mut line = self.lock();
        line.absorb(None);
        line.serve();
        let state = if let Some(error) = line.never(bytes) {
            Wait::Done(Err(error))
        } else if line.first_waiting().is_none() && line.available >= bytes {
            Wait::Done(Ok(line.enqueue(bytes, message)))
        } else {
            let ticket = line.next_ticket;
            line.next_ticket += 1;
            line.pending.insert(
                ticket,
                Pending {
                    message: Some(message),
                    expires_at,
                    result: None,
                    waker: None,
                },
            );
            line.order.push_back(ticket);
            Wait::Waiting {
                ticket,
                deadline: expires_at.map(|at| Box::pin(tokio::time::sleep_until(at.into()))),
            }
        };
        drop(line);
        QueueFuture {
            line: self.clone(),
            state,
        }
    }
}

enum Wait {
    Waiting {
        ticket: u64,
        /// Wakes the future when its message expires.
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    },
    Done(Result<Queued, SendError>),
    Taken,
}

/// A message waiting for credit; resolves once it is in the link's mailbox (see
/// [`CreditLine::queue`]).
#[must_use = "a message waiting for credit is sent only if a future of its line is polled"]
pub(crate) struct QueueFuture {
    line: CreditLine,
    state: Wait,
}

impl Future for QueueFuture {
    type Output = Result<Queued, SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Wait::Waiting { ticket, deadline } = &mut this.state else {
            return match std::mem::replace(&mut this.state, Wait::Taken) {
                Wait::Done(result) => Poll::Ready(result),
                _ => Poll::Ready(Err(SendError::Closed)),
            };
        };
        let ticket = *ticket;
        // Registers the timer of its deadline (the line checks the clock itself).
        if let Some(deadline) = deadline.as_mut() {
            let _ = deadline.as_mut().poll(cx);
        }
        let mut line = this.line.lock();
        line.absorb(Some(cx));
        let now = Instant::now();
        line.drive(now);
        line.expire(ticket, now);
        let done = line.pending.get_mut(&ticket).map(|p| p.result.take());
        match done {
            Some(Some(result)) => {
                line.pending.remove(&ticket);
                line.wake_first();
                drop(line);
                this.state = Wait::Taken;
                Poll::Ready(result)
            }
            Some(None) => {
                if let Some(p) = line.pending.get_mut(&ticket) {
                    p.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            // Cannot happen: only this future removes its entry.
            None => {
                drop(line);
                this.state = Wait::Taken;
                Poll::Ready(Err(SendError::Closed))
            }
        }
    }
}

impl Drop for QueueFuture {
    fn drop(&mut self) {
        if let Wait::Waiting { ticket, .. } = self.state {
            let mut line = self.line.lock();
            // Withdrawn if still waiting; if queued already, only its outcome is
            // dropped.
            line.pending.remove(&ticket);
            line.wake_first();
        }
    }
}

/// The instant a deadline in ms since the UNIX epoch falls on (the clocks are read
/// only for a message that has one).
pub(crate) fn deadline_instant(expires_at_ms: Option<u64>) -> Option<Instant> {
    let left = expires_at_ms?.saturating_sub(super::wire::epoch_ms());
    Instant::now().checked_add(Duration::from_millis(left))
}
