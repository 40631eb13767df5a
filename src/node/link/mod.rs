//! The link actor: one per (peer, link kind); its mailbox is the link's outbound queue.
//!
//! The actor is a thin shell around the sans-IO core, [`LinkSession`]: the core owns
//! the queue, what is being written and what waits for an acknowledgement, the
//! lifecycle, the heartbeat, the byte account and expiry, and decides everything; the
//! shell owns the socket and exactly one timer, feeds the core what happens (a message
//! from the mailbox, a connect that finished, bytes read, a write done, the timer) and
//! carries out what it asks (connect, write, complete a sender's outcome, report an
//! event, give reserve back, re-arm the timer at [`LinkSession::poll_timeout`]).
//!
//! Supervision: the registry starts every link supervised (`supervise::start`, which
//! restarts an actor as actix's `Supervisor` does, with an unbounded mailbox). The link
//! actor owns its connection and fails with it: when the connection is lost (or the
//! core closes it), the actor stops and the supervisor restarts it at once, with the
//! same value, address and mailbox, so that everything spawned for the connection
//! (the read stream, a write in flight, a connect attempt) is dropped with the old
//! context and nothing of it can reach the next connection. The core's backoff then
//! says when the restarted actor connects again (its timer), and its session (queue,
//! unacknowledged messages, sequence numbers) carries over.
//!
//! Invariants:
//! - The only way into the queue is the mailbox ([`Outbound`]); every message taken
//!   ends in exactly one outcome sent back to its sender (the core's invariant; the
//!   shell completes each outcome it polls).
//! - At most one write is in flight; the core batches what waits into it.
//! - While a reserve request to the `ResourceLimits` actor is out, the link processes
//!   nothing else (`ctx.wait`), so messages keep their order.
//! - A connection is used only after its handshake completed with the expected peer.
//! - Overload and expiry warnings are logged at most once a second per link.

mod api;
mod credit;
mod reply;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::BytesMut;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;

pub(crate) use api::{AskCredit, Credited, PeerSeen, Response, ReturnCredit, SetPeerAddress};
pub use api::{CloseLink, Deliver, GetLinkSnapshot, LinkCounters, LinkSnapshot, Outbound};
pub use reply::OutboundReply;
use reply::{Batch, Slot};

use super::address::PeerAddr;
use super::connect::dial;
use super::failures::{FailedMessage, FailureFeed, SetFailureFeed};
use super::keepers::SetKeeper;
use super::lean_read::{LeanRead, ReadTrim};
use super::metrics::counted_since;
use super::peer::{app_outbound, deadline_ms};
use super::registry::{LinkMeasured, LinkReport, Measure};
use super::requests::Requests;
use super::resource_limits::{Acquire, Direction, Release, ResourceLimits};
use super::timer::Timer;
use super::transport::{io_reason, write_all_flush, Stream, WriteHalf};
use super::wire;
use super::NodeConfig;
use crate::frame::{Decoded, FrameCodec, FrameError};
use crate::handshake::{Established, Hello};
use crate::limits::{ReserveNeeded, Shortage};
use crate::message::{Message as RemoteMessage, RESERVED_VERBS_START};
use crate::outcome::{OverloadLevel, SendError};
use crate::session::{
    Admission, CreditAnswer, DisconnectReason, LinkAction, LinkConfig, LinkEvent, LinkPolicy,
    LinkSession, WarnLimiter,
};
use crate::{LinkKind, NodeId};

/// The read buffer of a link's connection, which carries acknowledgements and
/// control frames only (see [`FrameCodec::with_read_capacity`]).
const LINK_READ_CAPACITY: usize = 1024;

/// At most one overload or expiry warning per link per this interval.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// The reserve a link leases beyond what a message needs: enough for many small
/// messages per round trip to the `ResourceLimits` actor, small enough not to starve
/// the peer's other links (a thirty-second of the endpoint reserve, at most 1 MiB).
pub(crate) fn lease_chunk(endpoint_reserve: usize) -> usize {
    (endpoint_reserve / 32).min(1 << 20)
}

/// Node-wide things every link needs.
pub(crate) struct LinkEnv {
    pub node: NodeId,
    pub listen: SocketAddr,
    pub config: Arc<NodeConfig>,
    pub reports: Recipient<LinkReport>,
    /// Round-trip times, and what a closed link still counts.
    pub measured: Recipient<LinkMeasured>,
    pub requests: Requests,
    pub limits: Addr<ResourceLimits>,
}

type Core = LinkSession<NodeId, Option<Slot>>;

/// The actor of one link; see the module documentation.
pub struct Link {
    env: Arc<LinkEnv>,
    peer: NodeId,
    kind: LinkKind,
    peer_addr: PeerAddr,
    core: Core,
    /// The one timer, at the core's `poll_timeout`.
    timer: Timer,
    /// The write half of the connection, while no write is out.
    writer: Option<WriteHalf>,
    /// A connect attempt is under way.
    connecting: bool,
    /// The core asked to connect while the actor was about to restart: connect once
    /// restarted.
    connect_after_restart: bool,
    /// The connection is gone: stop, so that the supervisor restarts the actor.
    restart: bool,
    /// Connection attempts made (sent in the Hello).
    attempts: u64,
    overload_warning: WarnLimiter,
    expiry_warning: WarnLimiter,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// Once the link reported `Closed`: its counters as last reported (what it counts
    /// later, failing messages from handles that had not yet heard, is reported too).
    reported: Option<LinkCounters>,
    /// Where the answers to producers' credit asks go, by ask id, oldest first.
    credit_replies: VecDeque<(u64, UnboundedSender<CreditAnswer>)>,
    next_ask: u64,
    /// A request for the reserve credit needs is out (spawned on the context: a
    /// restart abandons it).
    credit_acquiring: bool,
    /// Who hears of the messages that fail.
    failures: FailureFeed,
    /// The clocks passed to the core.
    clocks: wire::Clocks,
}

impl Link {
    pub(crate) fn new(
        env: Arc<LinkEnv>,
        peer: NodeId,
        kind: LinkKind,
        addr: PeerAddr,
        failures: FailureFeed,
    ) -> Self {
        let limits = env.config.send_limits;
        let config = LinkConfig {
            policy: env.config.link_policy(kind),
            heartbeat: env.config.heartbeat,
            idle_timeout: env.config.idle_timeout,
            backoff: env.config.backoff,
            seed: random_u64(),
            ..LinkConfig::new(
                limits.link_capacity,
                lease_chunk(limits.endpoint_reserve),
                env.config.max_message,
            )
        };
        Link {
            core: LinkSession::new(config, random_u64() | 1, Instant::now()),
            env,
            peer,
            kind,
            peer_addr: addr,
            timer: Timer::default(),
            writer: None,
            connecting: false,
            connect_after_restart: false,
            restart: false,
            attempts: 0,
            overload_warning: WarnLimiter::new(WARN_EVERY),
            expiry_warning: WarnLimiter::new(WARN_EVERY),
            close_waiters: Vec::new(),
            reported: None,
            credit_replies: VecDeque::new(),
            next_ask: 0,
            credit_acquiring: false,
            failures,
            clocks: wire::Clocks::new(),
        }
    }

    /// Carries out everything the core asks for after an input.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        let mut stop = false;
        while let Some(action) = self.core.poll_action() {
            match action {
                LinkAction::Connect => self.connect_after_restart = true,
                // Whatever the connection spawned goes with the old context.
                LinkAction::CloseConnection => self.restart = true,
                LinkAction::Stop => stop = true,
            }
        }
        if !self.restart {
            self.transmit(ctx);
        }
        self.deliver_outcomes();
        self.answer_credit(ctx);
        while let Some(event) = self.core.poll_event() {
            self.report(event);
        }
        self.report_measures();
        while let Some(grant) = self.core.poll_release() {
            self.env.limits.do_send(Release {
                direction: Direction::Send,
                grant,
            });
        }
        if stop {
            self.closed(ctx);
        } else if self.restart {
            // The actor fails with its connection; the supervisor restarts it.
            ctx.stop();
        } else {
            if std::mem::take(&mut self.connect_after_restart) {
                self.start_connect(ctx);
            }
            self.arm_timer(ctx);
        }
    }

    fn transmit(&mut self, ctx: &mut Context<Self>) {
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        let (now, now_ms) = self.clocks.now();
        let Some(bytes) = self.core.poll_transmit(now, now_ms) else {
            self.writer = Some(writer);
            return;
        };
        let write = async move {
            let result = write_all_flush(&mut writer, &bytes).await;
            (writer, bytes, result)
        };
        ctx.spawn(
            write
                .into_actor(self)
                .map(|(writer, bytes, result), link, ctx| {
                    link.write_done(writer, bytes, result, ctx)
                }),
        );
    }

    fn write_done(
        &mut self,
        writer: WriteHalf,
        written: BytesMut,
        result: std::io::Result<()>,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        if let Err(e) = result {
            self.lost(io_reason(e), ctx);
            return;
        }
        self.writer = Some(writer);
        self.core.handle_written(written, now);
        // Yield before the next batch: the other links, connections and actors on this
        // thread run between two batches, so a link that always has a batch ready (a
        // large link under a flood) cannot hold the thread for a whole scheduling
        // budget of writes and delay the urgent link's messages by tens of
        // milliseconds. Outcomes and events go out now.
        self.deliver_outcomes();
        ctx.spawn(
            tokio::task::yield_now()
                .into_actor(self)
                .map(|(), link, ctx| link.drive(ctx)),
        );
    }

    fn deliver_outcomes(&mut self) {
        while let Some(done) = self.core.poll_outcome() {
            if let Err(error) = &done.result {
                self.warn(error);
                if !self.failures.is_empty() && done.verb < RESERVED_VERBS_START {
                    self.failures.report(FailedMessage {
                        peer: self.peer,
                        link: self.kind,
                        verb: done.verb,
                        bytes: done.bytes,
                        error: error.clone(),
                    });
                }
            }
            if let Some(slot) = done.token {
                slot.complete(done.result);
            }
        }
    }

    /// Logs overloads and expiries, at most once a second each.
    fn warn(&mut self, error: &SendError) {
        let limiter = match error {
            SendError::Overloaded(_) => &mut self.overload_warning,
            SendError::Expired => &mut self.expiry_warning,
            _ => return,
        };
        if let Some(held_back) = limiter.check(Instant::now()) {
            log::warn!(
                "link {} {} to {}: a message failed: {error} ({held_back} similar warnings \
                 held back; {} bytes pending)",
                self.env.node,
                self.kind,
                self.peer,
                self.core.pending_bytes()
            );
        }
    }

    fn report(&mut self, event: LinkEvent) {
        log::info!(
            "link {} {} to {}: {event}",
            self.env.node,
            self.kind,
            self.peer
        );
        let counters = (event == LinkEvent::Closed).then(|| self.core.counters().clone());
        if counters.is_some() {
            self.reported = counters.clone();
        }
        self.env.reports.do_send(LinkReport {
            peer: self.peer,
            kind: self.kind,
            event,
            counters,
        });
    }

    /// Sends the registry the round-trip times measured and, once closed, what the
    /// link counted since it reported: the peer's series in the metrics keep it.
    fn report_measures(&mut self) {
        let measured = |measure| LinkMeasured {
            peer: self.peer,
            kind: self.kind,
            measure,
        };
        while let Some(rtt) = self.core.poll_rtt() {
            self.env.measured.do_send(measured(Measure::Rtt(rtt)));
        }
        if let Some(reported) = &mut self.reported {
            let now = self.core.counters();
            if now != reported {
                let counted = counted_since(now, reported);
                *reported = now.clone();
                let measure = Measure::CountedAfterClose(counted);
                self.env.measured.do_send(measured(measure));
            }
        }
    }

    /// Keeps exactly one timer, armed for the core's next deadline.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let next = self.core.poll_timeout();
        self.timer.arm(
            ctx,
            next,
            |link| &mut link.timer,
            |link, ctx| {
                let (now, now_ms) = link.clocks.now();
                link.core.handle_timeout(now, now_ms);
                link.drive(ctx);
            },
        );
    }

    fn start_connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting || self.core.is_connected() {
            return;
        }
        self.connecting = true;
        self.attempts += 1;
        let config = &self.env.config;
        let mut hello = Hello::new(self.env.node, self.env.listen, self.kind, config.framing);
        hello.session_id = self.core.session_id();
        hello.resume = self.core.settled();
        hello.lossless = self.core.policy() == LinkPolicy::Lossless;
        hello.attempt = self.attempts;
        let fut = dial(self.peer_addr.clone(), self.peer, hello, config.clone());
        ctx.spawn(fut.into_actor(self).map(|result, link, ctx| {
            link.connecting = false;
            match result {
                Ok((stream, established)) => link.connected(stream, established, ctx),
                Err(reason) => {
                    link.core.handle_disconnected(reason, Instant::now());
                    link.drive(ctx);
                }
            }
        }));
    }

    fn connected(&mut self, stream: Stream, established: Established, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if established.peer_node_id != self.peer {
            let reason = DisconnectReason::WrongPeer {
                expected: self.peer,
                found: established.peer_node_id,
            };
            self.core.handle_disconnected(reason, now);
            self.drive(ctx);
            return;
        }
        let (read, writer) = stream.split();
        // The link reads only acknowledgements and control frames: a small buffer,
        // which grows under a burst and shrinks back once drained.
        let codec = FrameCodec::with_read_capacity(established.framing, LINK_READ_CAPACITY);
        let mut framed = FramedRead::with_capacity(read, codec, LINK_READ_CAPACITY);
        framed
            .read_buffer_mut()
            .extend_from_slice(&established.leftover);
        // Nothing held between read batches; the codec shrinks a grown buffer itself.
        ctx.add_stream(LeanRead::new(framed, &ReadTrim::default()));
        self.writer = Some(writer);
        self.core.handle_connected(
            established.peer_session_id,
            established.resume,
            established.framing,
            now,
            wire::epoch_ms(),
        );
        self.drive(ctx);
    }

    /// The connection failed: the core learns why, then the actor restarts.
    fn lost(&mut self, reason: DisconnectReason, ctx: &mut Context<Self>) {
        if !self.core.is_connected() {
            return;
        }
        log::warn!(
            "link {} {} to {} lost: {reason}",
            self.env.node,
            self.kind,
            self.peer
        );
        self.core.handle_disconnected(reason, Instant::now());
        self.restart = true;
        self.drive(ctx);
    }

    fn closed(&mut self, ctx: &mut Context<Self>) {
        for waiter in self.close_waiters.drain(..) {
            let _ = waiter.send(());
        }
        self.env.requests.fail_peer(self.peer);
        // Drop the timer and whatever the connection spawned. The supervisor restarts
        // the actor while handles on it remain (it answers `Closed`, with nothing
        // scheduled); once the last one is dropped, the actor is freed.
        self.writer = None;
        ctx.stop();
    }

    /// Takes a message into the core (`credited`: under a producer's credit); when it
    /// needs reserve, asks for it and decides once the answer is in.
    fn admit(
        &mut self,
        message: Outbound,
        slot: Option<Slot>,
        credited: bool,
        ctx: &mut Context<Self>,
    ) {
        self.admit_all(std::iter::once((message, slot, credited)), ctx);
    }

    /// Takes messages into the core in order, the clock read once. When one needs
    /// reserve, nothing else is processed (the rest of `items` nor the mailbox) until
    /// the answer is in.
    fn admit_all<I>(&mut self, mut items: I, ctx: &mut Context<Self>)
    where
        I: Iterator<Item = (Outbound, Option<Slot>, bool)> + 'static,
    {
        let (now, now_ms) = self.clocks.now();
        while let Some((message, slot, credited)) = items.next() {
            let admission = if credited {
                self.core.handle_send_credited(message, slot, now, now_ms)
            } else {
                self.core.handle_send(message, slot, now, now_ms)
            };
            if let Admission::NeedReserve {
                message,
                token,
                need,
            } = admission
            {
                return self.park(message, token, need, Box::new(items), ctx);
            }
        }
        self.drive(ctx);
    }

    /// Asks for the reserve `message` needs and takes it (or refuses it) once the
    /// answer is in, then the messages after it (`rest`).
    fn park(
        &mut self,
        message: Outbound,
        token: Option<Slot>,
        need: ReserveNeeded,
        rest: Box<dyn Iterator<Item = (Outbound, Option<Slot>, bool)>>,
        ctx: &mut Context<Self>,
    ) {
        let acquire = Acquire {
            direction: Direction::Send,
            endpoint: self.peer,
            need,
        };
        // Nothing else is processed until the answer: later messages stay behind
        // this one.
        ctx.wait(
            self.env
                .limits
                .send(acquire)
                .into_actor(self)
                .map(move |granted, link, ctx| {
                    let level = match granted {
                        Ok(Ok(held)) => {
                            link.core.handle_lease(held.into_grant());
                            // Enough now: nothing else ran meanwhile.
                            let again = std::iter::once((message, token, false));
                            link.admit_all(again.chain(rest), ctx);
                            return;
                        }
                        Ok(Err(shortage)) => level_of(&shortage),
                        Err(_) => {
                            // The node is closing: these are not taken.
                            let all = std::iter::once((message, token, false)).chain(rest);
                            for (_, slot, _) in all {
                                if let Some(slot) = slot {
                                    slot.complete(Err(SendError::Closed));
                                }
                            }
                            return;
                        }
                    };
                    link.core.handle_shortage(message, token, level);
                    link.admit_all(rest, ctx);
                }),
        );
    }
}

/// The overload level of a shortage of reserve.
fn level_of(shortage: &Shortage) -> OverloadLevel {
    match shortage {
        Shortage::Endpoint { .. } => OverloadLevel::Endpoint,
        _ => OverloadLevel::Global,
    }
}

/// A random number from the operating system, for session ids (which must differ
/// across restarts and not be guessable) and backoff seeds.
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(e) => {
            // Never seen on the platforms we run on; a session id must still differ
            // from the last one, if not be unpredictable.
            log::warn!("the OS random number generator failed ({e}); using a weaker source");
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.finish()
        }
    }
}

impl Actor for Link {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The mailbox is unbounded from the start (`supervise::start`): `send` never
        // parks a message outside it, so messages are queued in the order they were
        // sent; the link bounds its queue in bytes itself.
        if self.core.is_closed() {
            return;
        }
        self.drive(ctx);
    }
}

impl actix::Supervised for Link {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Everything spawned for the old connection is gone with the old context.
        self.timer.forget();
        self.writer = None;
        self.connecting = false;
        self.restart = false;
        if std::mem::take(&mut self.credit_acquiring) {
            // Abandoned with the old context: the core asks again.
            self.core.handle_credit_lease(None, Instant::now());
        }
        if self.core.is_connected() {
            // Only a stop the link did not ask for gets here: the core learns it.
            self.core
                .handle_disconnected(DisconnectReason::Closed, Instant::now());
        }
    }
}

impl Handler<Outbound> for Link {
    type Result = OutboundReply;

    fn handle(&mut self, message: Outbound, ctx: &mut Context<Self>) -> Self::Result {
        let (slot, reply) = Slot::new();
        if message.verb >= RESERVED_VERBS_START || !message.flags.is_empty() {
            // Only the crate sets flags: an application's message never has them.
            slot.complete(Err(SendError::ReservedVerb(message.verb)));
        } else {
            self.admit(message, Some(slot), false, ctx);
        }
        reply
    }
}

impl<M: RemoteMessage> Handler<Deliver<M>> for Link {
    type Result = OutboundReply;

    fn handle(&mut self, deliver: Deliver<M>, ctx: &mut Context<Self>) -> Self::Result {
        let (slot, reply) = Slot::new();
        let config = &self.env.config;
        let deadline = deadline_ms::<M>(config, deliver.expire_after, || deliver.made_at_ms);
        match app_outbound(&deliver.message, deadline) {
            Ok(message) => self.admit(message, Some(slot), false, ctx),
            Err(e) => slot.complete(Err(e)),
        }
        reply
    }
}

impl Handler<Response> for Link {
    type Result = ();

    fn handle(&mut self, Response(message): Response, ctx: &mut Context<Self>) {
        // Nobody waits for a response's outcome.
        self.admit(message, None, false, ctx);
    }
}

impl Handler<SetFailureFeed> for Link {
    type Result = ();

    fn handle(&mut self, SetFailureFeed(feed): SetFailureFeed, _: &mut Context<Self>) {
        self.failures = feed;
    }
}

impl Handler<Credited> for Link {
    type Result = ();

    fn handle(&mut self, credited: Credited, ctx: &mut Context<Self>) {
        match credited {
            Credited::One { message, reply } => {
                self.admit(message, Some(Slot::channel(reply)), true, ctx);
            }
            Credited::Many { messages, reply } => {
                let slots = Batch::slots(messages.len(), reply);
                let items = messages.into_iter().zip(slots);
                self.admit_all(items.map(|(m, slot)| (m, Some(slot), true)), ctx);
            }
        }
    }
}

impl Handler<AskCredit> for Link {
    type Result = ();

    fn handle(&mut self, ask: AskCredit, ctx: &mut Context<Self>) {
        let id = self.next_ask;
        self.next_ask += 1;
        self.credit_replies.push_back((id, ask.reply));
        self.core
            .handle_credit_ask(id, ask.at_least, ask.up_to, Instant::now());
        self.drive(ctx);
    }
}

impl Handler<ReturnCredit> for Link {
    type Result = ();

    fn handle(&mut self, ReturnCredit(bytes): ReturnCredit, ctx: &mut Context<Self>) {
        self.core.handle_credit_returned(bytes, Instant::now());
        self.drive(ctx);
    }
}

impl Handler<CloseLink> for Link {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, close: CloseLink, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.core.is_closed() {
            let _ = tx.send(());
        } else {
            self.close_waiters.push(tx);
            let now = Instant::now();
            let timeout = close.timeout.unwrap_or(self.env.config.drain_timeout);
            self.core
                .handle_close(close.drain, now.checked_add(timeout), now);
            self.drive(ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<GetLinkSnapshot> for Link {
    type Result = MessageResult<GetLinkSnapshot>;

    fn handle(&mut self, _: GetLinkSnapshot, _: &mut Context<Self>) -> Self::Result {
        let core = &self.core;
        MessageResult(LinkSnapshot {
            peer: self.peer,
            kind: self.kind,
            state: *core.state(),
            policy: core.policy(),
            rtt: core.rtt(),
            queued: core.queued(),
            pending_bytes: core.pending_bytes(),
            in_flight: core.unacknowledged(),
            unflushed_bytes: core.unflushed_bytes(),
            reserve_bytes: core.reserve_bytes(),
            credit_bytes: core.credit_bytes(),
            credit_waiting: core.credit_waiting(),
            active_connections: usize::from(core.is_connected()),
            keeper: core.is_keeper(),
            counters: core.counters().clone(),
        })
    }
}

impl Handler<SetPeerAddress> for Link {
    type Result = ();

    fn handle(&mut self, SetPeerAddress(addr): SetPeerAddress, ctx: &mut Context<Self>) {
        if addr == self.peer_addr {
            return;
        }
        self.peer_addr = addr;
        self.core.handle_address_changed(Instant::now());
        self.drive(ctx);
    }
}

impl Handler<PeerSeen> for Link {
    type Result = ();

    fn handle(&mut self, _: PeerSeen, ctx: &mut Context<Self>) {
        self.core.handle_peer_seen(Instant::now());
        self.drive(ctx);
    }
}

impl Handler<SetKeeper> for Link {
    type Result = ();

    fn handle(&mut self, SetKeeper(keeper): SetKeeper, ctx: &mut Context<Self>) {
        self.core.handle_keeper(keeper, Instant::now());
        self.drive(ctx);
    }
}

// Only the current connection's stream is ever registered: a lost connection restarts
// the actor, which drops the stream with the old context.
impl StreamHandler<Result<Decoded, FrameError>> for Link {
    fn handle(&mut self, item: Result<Decoded, FrameError>, ctx: &mut Context<Self>) {
        if let Err(FrameError::Io(kind)) = &item {
            return self.lost(DisconnectReason::Io(*kind), ctx);
        }
        self.core.handle_input(item, Instant::now());
        self.drive(ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.lost(DisconnectReason::PeerClosed, ctx);
    }
}
