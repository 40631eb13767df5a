//! A producer's byte credit on one link: [`CreditLine`], held by a [`Peer`](super::Peer)
//! (and the node's own handles) for each of the peer's links.
//!
//! A line starts without a link: the first send on it asks the registry for the link
//! ([`ResolveLink`], answered on a channel the line owns with [`LinkNews`]), so that
//! taking a handle never waits. Once it has its link, the link grants credit by message
//! passing ([`AskCredit`], answered on a channel the line owns for that link) out of its
//! capacity and the reserve it leased, charging it at once; a message sent within
//! credit ([`Credited`]) is never refused for room. A send within what the line holds
//! puts the message in the link's mailbox at once (a `do_send` and a oneshot for its
//! outcome); beyond it, or before the line has its link, the send waits in line
//! ([`CreditLine::queue`]), or, when the caller asked not to wait
//! ([`CreditLine::try_queue`]), fails at once. The line asks for more before it runs
//! out (when less than half a chunk is left), so a steady producer does not wait for a
//! round trip.
//!
//! When its link closes (the peer was closed with `Node::close_peer`, or the link was
//! sent `CloseLink`), the registry tells the line (`LinkNews::Unlinked`) before anyone
//! can open the peer's next link; the line forgets the link and the credit it held
//! (the closed link took it back), and its next send asks for the new link. Sends
//! that wait for credit when the link refuses it (closing) fail `Closed`, as messages
//! queued on it do. Once the node is closed, the registry answers `Closed`.
//!
//! Invariants:
//! - What is in the link's mailbox under this line's credit is at most the credit
//!   the link granted it; with every producer on credit, the bytes in the mailbox and
//!   in the link together stay within the link's capacity plus the reserve it leased.
//! - Messages enter the mailbox in the order of the calls on the line: a send never
//!   overtakes one waiting for credit or for the link. Whoever polls a future of the
//!   line serves the waiting sends from the first, as far as the credit goes, so a
//!   send is never stuck behind an earlier one nobody polls; one that expired or whose
//!   future was dropped leaves the line.
//! - At most one ask for the link is out, and at most one ask for credit on the
//!   current link's channel. Credit answers of a link the line left can never count
//!   for the next one: each link gets a channel of its own.
//! - The line takes in news and answers in an order that respects causality: the
//!   answers of its link before the news that the link closed (the link refuses the
//!   asks before it reports that it closed).
//! - A message once in the mailbox is always handled: it carries its own outcome
//!   channel (sent with `do_send`), so dropping [`Queued`] only loses the outcome.
//! - Credit not used when the last handle on the line is dropped goes back to the
//!   link ([`ReturnCredit`]).
//! - The state is shared by the handles on the line and their futures only (a mutex
//!   held for a few instructions); the link and the registry are reached only by
//!   messages.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use actix::{Addr, Recipient};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

mod news;
mod wait;

pub(crate) use news::{NewsReply, NewsSlot};
use wait::Wait;
pub(crate) use wait::{QueueFuture, Ready};

use super::link::{AskCredit, Credited, Link, Outbound, ReturnCredit};
use crate::outcome::{OverloadLevel, SendError, Sent};
use crate::session::CreditAnswer;
use crate::{LinkKind, NodeId};

/// A line's ask for the link of `kind` to `peer` (the registry creates it on first
/// use): the answer goes to `reply`, and, if it is a link, [`LinkNews::Unlinked`]
/// follows the same way once that link closes.
pub(crate) struct ResolveLink {
    pub peer: NodeId,
    pub kind: LinkKind,
    pub reply: NewsReply,
}

impl actix::Message for ResolveLink {
    type Result = ();
}

/// What the registry tells a line about its link.
#[derive(Debug)]
pub(crate) enum LinkNews {
    /// The link to use.
    Linked(Addr<Link>),
    /// No link: no address is known for the peer, or the node is closed.
    Failed(SendError),
    /// The link given last has closed.
    Unlinked,
}

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

/// What a send puts in line: one message, or a batch taken as one (its bytes
/// together, one mailbox message).
pub(crate) enum Outgoing {
    One(Outbound),
    Many {
        messages: Vec<Outbound>,
        /// Their sizes summed.
        bytes: usize,
    },
}

impl Outgoing {
    /// A batch of `messages`.
    pub fn many(messages: Vec<Outbound>) -> Self {
        let bytes = messages.iter().map(Outbound::size).sum();
        Outgoing::Many { messages, bytes }
    }

    /// The credit it takes.
    fn size(&self) -> usize {
        match self {
            Outgoing::One(message) => message.size(),
            Outgoing::Many { bytes, .. } => *bytes,
        }
    }
}

/// What is in the mailbox: the outcome of one message, or those of a batch.
pub(crate) enum Handed {
    One(Queued),
    Many(oneshot::Receiver<Vec<Result<Sent, SendError>>>),
}

/// What a send waiting in line resolves to, from what it put in line.
pub(crate) trait FromHanded: Sized {
    fn from_handed(handed: Handed) -> Self;
}

impl FromHanded for Queued {
    fn from_handed(handed: Handed) -> Self {
        match handed {
            Handed::One(queued) => queued,
            // Cannot happen: a line hands back the kind of send it was given.
            Handed::Many(_) => Queued::ready(Err(SendError::Closed)),
        }
    }
}

/// The outcomes of a batch in its link's mailbox: all of them at once, in order; the
/// channel closed means the link went without answering (it closed).
pub(crate) struct BatchQueued(pub oneshot::Receiver<Vec<Result<Sent, SendError>>>);

impl FromHanded for BatchQueued {
    fn from_handed(handed: Handed) -> Self {
        match handed {
            Handed::Many(rx) => BatchQueued(rx),
            // Cannot happen, as above: a closed channel reads as `Closed`.
            Handed::One(_) => BatchQueued(oneshot::channel().1),
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
    /// The message (or batch), while it waits.
    message: Option<Outgoing>,
    expires_at: Option<Instant>,
    /// Its result, once queued (or failed) by whoever drove the line.
    result: Option<Result<Handed, SendError>>,
    waker: Option<Waker>,
}

/// Where a line stands with its link.
enum Route {
    /// No link yet, or its link closed: the next send asks the registry. `failed`:
    /// why the last ask found none.
    Unresolved {
        failed: Option<SendError>,
    },
    /// The registry was asked.
    Resolving,
    Linked(Linked),
}

struct Linked {
    link: Addr<Link>,
    /// The link's answers to the line's credit asks (a channel for this link only).
    answers: UnboundedReceiver<CreditAnswer>,
    reply: UnboundedSender<CreditAnswer>,
}

struct Line {
    peer: NodeId,
    kind: LinkKind,
    registry: Recipient<ResolveLink>,
    route: Route,
    /// The registry's news about the line's link.
    news: UnboundedReceiver<LinkNews>,
    news_reply: UnboundedSender<LinkNews>,
    sizes: CreditSizes,
    /// Credit granted by the current link and not yet used.
    available: usize,
    /// An ask for credit is out.
    asking: bool,
    /// What the link said the ask waits for.
    short: Option<OverloadLevel>,
    /// The current link refused credit for good (it is closing or closed).
    refused: Option<SendError>,
    /// The sends waiting for credit, by ticket; `order` holds the tickets of those
    /// still waiting, first in line first (tickets of sends dropped meanwhile are
    /// skipped).
    pending: HashMap<u64, Pending>,
    order: VecDeque<u64>,
    next_ticket: u64,
    /// [`Ready`] futures, woken whenever news or an answer comes in.
    ready: Vec<Waker>,
}

impl Line {
    /// Takes in the registry's news and the link's answers; polls with `cx`
    /// (registering it) when given.
    fn absorb(&mut self, mut cx: Option<&mut Context<'_>>) {
        loop {
            // The news first and then the answers: an answer the link gave before it
            // closed is taken before the news that it closed.
            let mut news = Vec::new();
            match cx.as_deref_mut() {
                // `None` cannot come: the line holds a sender itself.
                Some(cx) => {
                    while let Poll::Ready(Some(item)) = self.news.poll_recv(cx) {
                        news.push(item);
                    }
                }
                None => {
                    while let Ok(item) = self.news.try_recv() {
                        news.push(item);
                    }
                }
            }
            let mut answers = Vec::new();
            if let Route::Linked(linked) = &mut self.route {
                match cx.as_deref_mut() {
                    Some(cx) => {
                        while let Poll::Ready(Some(answer)) = linked.answers.poll_recv(cx) {
                            answers.push(answer);
                        }
                    }
                    None => {
                        while let Ok(answer) = linked.answers.try_recv() {
                            answers.push(answer);
                        }
                    }
                }
            }
            if news.is_empty() && answers.is_empty() {
                return;
            }
            self.wake_ready();
            for answer in answers {
                self.take_answer(answer);
            }
            if news.is_empty() {
                return;
            }
            for item in news {
                self.take_news(item);
            }
            // Again, to register with the new link's channel.
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
                self.refused = Some(error);
            }
        }
    }

    fn take_news(&mut self, news: LinkNews) {
        match news {
            LinkNews::Linked(link) => {
                let (reply, answers) = mpsc::unbounded_channel();
                self.route = Route::Linked(Linked {
                    link,
                    answers,
                    reply,
                });
                self.forget_link();
                // A first chunk, or what the first send waiting needs.
                let need = self.first_need().unwrap_or(1);
                self.ask(need);
                // Nobody is registered with the new channel yet: the first send
                // waiting polls it.
                self.wake_first();
            }
            LinkNews::Failed(error) => {
                self.route = Route::Unresolved {
                    failed: Some(error.clone()),
                };
                self.fail_waiting(&error);
            }
            LinkNews::Unlinked => {
                if !matches!(self.route, Route::Linked(_)) {
                    return;
                }
                // The closed link took back the credit it granted.
                self.route = Route::Unresolved { failed: None };
                self.forget_link();
                if self.first_waiting().is_some() {
                    self.resolve();
                }
            }
        }
    }

    /// Forgets what the line knew of its previous link.
    fn forget_link(&mut self) {
        self.available = 0;
        self.asking = false;
        self.short = None;
        self.refused = None;
    }

    /// Asks the registry for the link.
    fn resolve(&mut self) {
        let ask = ResolveLink {
            peer: self.peer,
            kind: self.kind,
            reply: NewsReply::Channel(self.news_reply.clone()),
        };
        // The registry's mailbox has a capacity: past it, the ask goes in anyway.
        let sent = match self.registry.try_send(ask) {
            Ok(()) => true,
            Err(actix::prelude::SendError::Full(ask)) => {
                self.registry.do_send(ask);
                true
            }
            Err(actix::prelude::SendError::Closed(_)) => false,
        };
        if sent {
            self.route = Route::Resolving;
        } else {
            self.route = Route::Unresolved {
                failed: Some(SendError::Closed),
            };
            self.fail_waiting(&SendError::Closed);
        }
    }

    /// Asks for at least `at_least` more bytes of credit unless an ask is out (first
    /// for the link, if the line has none).
    fn ask(&mut self, at_least: usize) {
        let linked = match &self.route {
            Route::Unresolved { .. } => return self.resolve(),
            Route::Resolving => return,
            Route::Linked(linked) => linked,
        };
        if self.asking || self.refused.is_some() {
            return;
        }
        let ask = AskCredit {
            at_least,
            up_to: at_least.max(self.sizes.chunk),
            reply: linked.reply.clone(),
        };
        match linked.link.try_send(ask) {
            Ok(()) => self.asking = true,
            Err(_) => self.refused = Some(SendError::Closed),
        }
    }

    /// The line holds credit for `bytes` on its link.
    fn can_take(&self, bytes: usize) -> bool {
        matches!(self.route, Route::Linked(_)) && self.available >= bytes
    }

    /// Takes `bytes` of credit and puts `message` in the mailbox; asks for more before
    /// the credit runs out. Only when [`can_take`](Self::can_take).
    fn enqueue(&mut self, bytes: usize, message: Outgoing) -> Handed {
        let Route::Linked(linked) = &self.route else {
            return Handed::One(Queued::ready(Err(SendError::Closed)));
        };
        self.available -= bytes;
        let (credited, handed) = match message {
            Outgoing::One(message) => {
                let (reply, outcome) = oneshot::channel();
                let handed = Handed::One(Queued(QueuedState::Link(outcome)));
                (Credited::One { message, reply }, handed)
            }
            Outgoing::Many { messages, .. } => {
                let (reply, outcomes) = oneshot::channel();
                (Credited::Many { messages, reply }, Handed::Many(outcomes))
            }
        };
        // Failing, the message is dropped with its reply: the receiver reads
        // `Closed`.
        if linked.link.try_send(credited).is_err() {
            self.refused = Some(SendError::Closed);
        }
        if self.available < self.sizes.chunk / 2 {
            self.ask(self.sizes.chunk - self.available);
        }
        handed
    }

    /// Why a message of `bytes` can never get credit, if so.
    fn never(&self, bytes: usize) -> Option<SendError> {
        if let Some(refused) = &self.refused {
            return Some(refused.clone());
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

    /// The bytes the first send waiting needs beyond the credit held.
    fn first_need(&mut self) -> Option<usize> {
        let ticket = self.first_waiting()?;
        let bytes = self.pending.get(&ticket)?.message.as_ref()?.size();
        Some(bytes.saturating_sub(self.available).max(1))
    }

    /// Ends the first send waiting with `result`, waking it.
    fn finish_first(&mut self, ticket: u64, result: Result<Handed, SendError>) {
        self.order.pop_front();
        if let Some(p) = self.pending.get_mut(&ticket) {
            p.message = None;
            p.result = Some(result);
            if let Some(waker) = p.waker.take() {
                waker.wake();
            }
        }
    }

    /// Fails every send waiting with `error`.
    fn fail_waiting(&mut self, error: &SendError) {
        while let Some(ticket) = self.first_waiting() {
            self.finish_first(ticket, Err(error.clone()));
        }
    }

    /// Serves the waiting sends in order while the credit lasts (failing those that
    /// expired or can never be sent), waking each one served; asks for what the first
    /// one left needs.
    fn drive(&mut self, now: Instant) {
        while let Some(ticket) = self.first_waiting() {
            let Some(p) = self.pending.get(&ticket) else {
                break;
            };
            let bytes = p.message.as_ref().map_or(0, Outgoing::size);
            let expired = p.expires_at.is_some_and(|at| now >= at);
            let result = if expired {
                Err(SendError::Expired)
            } else if let Some(error) = self.never(bytes) {
                Err(error)
            } else if self.can_take(bytes) {
                let Some(message) = self.pending.get_mut(&ticket).and_then(|p| p.message.take())
                else {
                    break;
                };
                Ok(self.enqueue(bytes, message))
            } else {
                let short = bytes.saturating_sub(self.available).max(1);
                self.ask(short);
                return;
            };
            self.finish_first(ticket, result);
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

    fn wake_ready(&mut self) {
        for waker in self.ready.drain(..) {
            waker.wake();
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.absorb(None);
        if let Route::Linked(linked) = &self.route {
            if self.available > 0 && self.refused.is_none() {
                linked.link.do_send(ReturnCredit(self.available));
            }
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
            .field("linked", &matches!(line.route, Route::Linked(_)))
            .field("available", &line.available)
            .field("waiting", &line.order.len())
            .finish()
    }
}

impl CreditLine {
    /// A line for the link of `kind` to `peer`, without its link yet: the first send
    /// asks `registry` for it.
    pub fn new(
        peer: NodeId,
        kind: LinkKind,
        registry: Recipient<ResolveLink>,
        sizes: CreditSizes,
    ) -> Self {
        let (news_reply, news) = mpsc::unbounded_channel();
        CreditLine(Arc::new(Mutex::new(Line {
            peer,
            kind,
            registry,
            route: Route::Unresolved { failed: None },
            news,
            news_reply,
            sizes,
            available: 0,
            asking: false,
            short: None,
            refused: None,
            pending: HashMap::new(),
            order: VecDeque::new(),
            next_ticket: 0,
            ready: Vec::new(),
        })))
    }

    /// Resolves once the line has its link and the link answered a first ask for
    /// credit (granted, or said what it waits for), or with why there is no link
    /// (the peer is unknown, the node is closed) or the link refuses credit.
    pub fn ready(&self) -> Ready {
        Ready {
            line: self.clone(),
            started: false,
        }
    }

    /// The line's link, if it has one now.
    pub fn link(&self) -> Option<Addr<Link>> {
        let mut line = self.lock();
        line.absorb(None);
        match &line.route {
            Route::Linked(linked) => Some(linked.link.clone()),
            _ => None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Line> {
        // The line's state is consistent after every statement: a panic elsewhere
        // while it was held leaves nothing half-done.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `message` in the link's mailbox now if the line holds credit for it and no
    /// send waits; otherwise fails at once: why the line has no link (after a first
    /// ask found none), `Overloaded` (at the level the link last found short, else
    /// `Link`, also while the line waits for its link), or why it can never be sent.
    /// Asks for what is missing meanwhile.
    pub fn try_queue(&self, message: Outbound) -> Result<Queued, SendError> {
        let message = Outgoing::One(message);
        let bytes = message.size();
        let mut line = self.lock();
        line.absorb(None);
        line.serve();
        if let Some(error) = line.never(bytes) {
            return Err(error);
        }
        if line.first_waiting().is_none() && line.can_take(bytes) {
            return Ok(Queued::from_handed(line.enqueue(bytes, message)));
        }
        let failed = match &line.route {
            Route::Unresolved { failed } => failed.clone(),
            _ => None,
        };
        let short = bytes.saturating_sub(line.available);
        line.ask(short.max(1));
        Err(failed.unwrap_or(SendError::Overloaded(
            line.short.unwrap_or(OverloadLevel::Link),
        )))
    }

    /// Puts `message` in the link's mailbox as soon as the line has credit for it, in
    /// the order of the calls: at once if it holds enough and no send waits (before
    /// this returns), else once the link and the credit come, when this future or any
    /// other one of the line is polled. A message whose deadline (`expires_at`) passes
    /// while it waits fails `Expired`; dropping the future while it waits withdraws
    /// the message.
    pub fn queue<T: FromHanded>(
        &self,
        message: Outgoing,
        expires_at: Option<Instant>,
    ) -> QueueFuture<T> {
        let bytes = message.size();
        let mut line = self.lock();
        line.absorb(None);
        line.serve();
        let state = if let Some(error) = line.never(bytes) {
            Wait::Done(Err(error))
        } else if line.first_waiting().is_none() && line.can_take(bytes) {
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
            // In line: asks for the link or the credit it needs (failing at once if
            // there can be no link).
            line.serve();
            match line.pending.get_mut(&ticket).and_then(|p| p.result.take()) {
                Some(result) => {
                    line.pending.remove(&ticket);
                    Wait::Done(result)
                }
                None => Wait::Waiting {
                    ticket,
                    deadline: expires_at.map(|at| Box::pin(tokio::time::sleep_until(at.into()))),
                },
            }
        };
        drop(line);
        QueueFuture {
            line: self.clone(),
            state,
            out: std::marker::PhantomData,
        }
    }
}

/// The instant a deadline in ms since the UNIX epoch falls on (the clocks are read
/// only for a message that has one).
pub(crate) fn deadline_instant(expires_at_ms: Option<u64>) -> Option<Instant> {
    let left = expires_at_ms?.saturating_sub(super::wire::epoch_ms());
    Instant::now().checked_add(Duration::from_millis(left))
}
