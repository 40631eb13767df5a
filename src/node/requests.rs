//! The node's in-flight requests: [`Requests`], the table every request is
//! registered in, completed from and timed out of, the [`RequestTracker`] actor that
//! times them out, and [`RemoteRequest`], a request on its way as its caller awaits
//! it.
//!
//! A request is registered and queued when the call is made, with no round trip and
//! no actor message: its id comes from the node's id source (a counter), the caller
//! puts it in the shared table ([`Requests::register`]) and the request goes on its
//! line at once, in the order of the calls on the line, like a one-way message. The
//! receiving actor that reads its response completes it from the table
//! ([`Requests::complete`]) in the same turn, and a link that closes fails its peer's
//! requests there too: the tracker only keeps the one timer that times requests out.
//! The caller's future awaits both the send's outcome and the answer, so no task is
//! spawned per request; a failed send ends the request at once with that error (and
//! takes it out of the table).
//!
//! Invariants: every registered request completes exactly once, with its response, a
//! remote failure, a timeout at its deadline, `Closed` when its peer's link is closed
//! or the tracker has stopped, or the failure of its send; ids are unique among the
//! node's requests (its id source hands each out once). A request is in the table
//! before it can be written, so before its answer can arrive. The tracker's timer
//! fires no later than the earliest deadline: a registration with an earlier deadline
//! than the timer's asks the tracker to re-arm (the only message a request may cost
//! it), and a firing with nothing due re-arms for the earliest; requests made with the
//! same timeout cost no timer operation. The table's lock is held only for the
//! table's own operations, never while a caller is woken.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::credit::CreditLine;
use super::link::Outbound;
use super::timer::Timer;
use super::wire;
use crate::message::RemoteFailure;
use crate::outcome::{RequestError, SendError};
use crate::session::PendingRequests;
use crate::NodeId;

pub(crate) type ResponseSender = oneshot::Sender<Result<Bytes, RequestError>>;

/// The pending requests and what the tracker's timer is armed for.
struct Table {
    pending: PendingRequests<ResponseSender>,
    /// The tracker's timer fires by then (armed, or asked for with [`Rearm`]);
    /// `None`: no timer.
    wake_by: Option<Instant>,
    /// The tracker has stopped: nothing would time a request out.
    closed: bool,
}

/// The node's pending requests (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Requests {
    table: Arc<Mutex<Table>>,
    tracker: Addr<RequestTracker>,
}

impl Requests {
    /// An empty table and its tracker, started on the current arbiter.
    pub(crate) fn start() -> Requests {
        let table = Arc::new(Mutex::new(Table {
            pending: PendingRequests::new(),
            wake_by: None,
            closed: false,
        }));
        let tracker = RequestTracker {
            table: table.clone(),
            timer: Timer::default(),
        }
        .start();
        Requests { table, tracker }
    }

    /// Registers request `id` to `peer`, to fail at `deadline` unless answered first.
    /// Gives `reply` back if the tracker has stopped (the node is gone).
    pub(crate) fn register(
        &self,
        id: u64,
        peer: NodeId,
        deadline: Instant,
        reply: ResponseSender,
    ) -> Result<(), ResponseSender> {
        let mut table = lock(&self.table);
        if table.closed {
            return Err(reply);
        }
        let replaced = table.pending.insert(id, peer, deadline, reply);
        let rearm = table.wake_by.is_none_or(|at| at > deadline);
        if rearm {
            table.wake_by = Some(deadline);
        }
        drop(table);
        if let Some((_, replaced)) = replaced {
            // Never: the node's id source hands each id out once.
            log::error!("request id {id} given twice");
            let _ = replaced.send(Err(RequestError::Closed));
        }
        if rearm {
            self.tracker.do_send(Rearm);
        }
        Ok(())
    }

    /// A response (or failure response) arrived for request `id`: its caller gets it,
    /// if it is still pending.
    pub(crate) fn complete(&self, id: u64, result: Result<Bytes, RemoteFailure>) {
        let reply = lock(&self.table).pending.complete(id);
        if let Some((_, reply)) = reply {
            let _ = reply.send(result.map_err(RequestError::Remote));
        }
    }

    /// The request was not sent (its caller knows why): forget it.
    pub(crate) fn cancel(&self, id: u64) {
        let _ = lock(&self.table).pending.complete(id);
    }

    /// A link to `peer` was closed: its pending requests fail `Closed` now.
    pub(crate) fn fail_peer(&self, peer: NodeId) {
        let failed = lock(&self.table).pending.fail_peer(peer);
        for (_, reply) in failed {
            let _ = reply.send(Err(RequestError::Closed));
        }
    }
}

/// The table's lock; a panic while it was held left the table whole or the
/// operation undone (each is one call on the table), so a poisoned lock is taken.
fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registration's deadline is earlier than the tracker's timer: re-arm it.
struct Rearm;

impl Message for Rearm {
    type Result = ();
}

/// Times the node's requests out: one timer, armed no later than the earliest
/// deadline of the table (see the module documentation).
pub(crate) struct RequestTracker {
    table: Arc<Mutex<Table>>,
    timer: Timer,
}

impl RequestTracker {
    /// Arms the timer by the earliest deadline (keeping one armed earlier) and
    /// records what it is armed for, under the table's lock, so that a registration
    /// with an earlier deadline asks again.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let table = self.table.clone();
        let mut table = lock(&table);
        let next = table.pending.poll_timeout();
        self.timer.arm_by(
            ctx,
            next,
            |tracker| &mut tracker.timer,
            |tracker, ctx| {
                let expired = lock(&tracker.table).pending.handle_timeout(Instant::now());
                for (_, reply) in expired {
                    let _ = reply.send(Err(RequestError::Timeout));
                }
                tracker.arm(ctx);
            },
        );
        table.wake_by = self.timer.armed_at();
    }
}

impl Actor for RequestTracker {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Nothing times requests out any more: those pending end `Closed` (their
        // senders dropped), and no more are taken.
        let mut table = lock(&self.table);
        table.closed = true;
        table.wake_by = None;
        let pending = std::mem::take(&mut table.pending);
        drop(table);
        drop(pending);
    }
}

impl Handler<Rearm> for RequestTracker {
    type Result = ();

    fn handle(&mut self, _: Rearm, ctx: &mut Context<Self>) {
        self.arm(ctx);
    }
}

/// A request to a peer on its way: registered with the tracker and queued on its line
/// when made ([`start`](Self::start)); as a future, it resolves with the response's
/// payload or why there is none. Polling it awaits the send's outcome (which also
/// serves the line when the request waits there for credit) and the answer together;
/// while the peer is unreachable the request stays queued and still times out (the
/// tracker's timer); a failed send ends it at once with that error. A small future of
/// its own (no `async` state machine holding both halves), since every request moves
/// it.
pub(crate) struct RemoteRequest {
    id: u64,
    sending: Sending,
    answer: oneshot::Receiver<Result<Bytes, RequestError>>,
    requests: Requests,
}

/// Where the request's send stands.
enum Sending {
    /// Waiting for its link and credit.
    Waiting(super::credit::QueueFuture<super::credit::Queued>),
    /// In the link's mailbox: its outcome to come.
    Queued(super::credit::Queued),
    /// Written (or acknowledged): only the answer is awaited.
    Sent,
}

impl RemoteRequest {
    /// Registers `outbound` (a request to `peer`) as request `id`, to time out after
    /// `timeout`, and queues it on `line` (it waits there for credit at most until
    /// `expires_at`).
    pub(crate) fn start(
        id: u64,
        peer: NodeId,
        mut outbound: Outbound,
        line: &CreditLine,
        expires_at: Option<Instant>,
        timeout: Duration,
        requests: Requests,
    ) -> Self {
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        let (reply, answer) = oneshot::channel();
        // Refused only once the node is gone: the answer's sender is dropped with
        // it, and the request ends `Closed`.
        let _ = requests.register(id, peer, deadline, reply);
        outbound
            .params
            .push((wire::PARAM_REQUEST_ID, wire::vint_bytes(id)));
        RemoteRequest {
            id,
            sending: Sending::Waiting(
                line.queue(super::credit::Outgoing::One(outbound), expires_at),
            ),
            answer,
            requests,
        }
    }

    /// The send failed: the request ends with that error, and the table forgets it.
    fn failed(&mut self, error: SendError) -> Poll<Result<Bytes, RequestError>> {
        self.sending = Sending::Sent;
        self.requests.cancel(self.id);
        Poll::Ready(Err(RequestError::Send(error)))
    }
}

impl Future for RemoteRequest {
    type Output = Result<Bytes, RequestError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(answer) = Pin::new(&mut this.answer).poll(cx) {
            return Poll::Ready(answer.unwrap_or(Err(RequestError::Closed)));
        }
        loop {
            match &mut this.sending {
                Sending::Waiting(waiting) => match Pin::new(waiting).poll(cx) {
                    Poll::Ready(Ok(queued)) => this.sending = Sending::Queued(queued),
                    Poll::Ready(Err(e)) => return this.failed(e),
                    Poll::Pending => return Poll::Pending,
                },
                Sending::Queued(queued) => match Pin::new(queued).poll(cx) {
                    Poll::Ready(Ok(_)) => this.sending = Sending::Sent,
                    Poll::Ready(Err(e)) => return this.failed(e),
                    Poll::Pending => return Poll::Pending,
                },
                Sending::Sent => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn wake_by(requests: &Requests) -> Option<Instant> {
        lock(&requests.table).wake_by
    }

    #[actix::test]
    async fn later_deadlines_keep_the_timer_and_an_earlier_one_rearms_it() {
        let requests = Requests::start();
        let now = Instant::now();
        let mut answers = Vec::new();
        for id in 1..=100 {
            let (reply, answer) = oneshot::channel();
            requests
                .register(id, NodeId(2), now + Duration::from_secs(60) + ms(id), reply)
                .unwrap();
            answers.push(answer);
        }
        // The first asked for the timer; the 99 later ones did not.
        assert_eq!(
            wake_by(&requests),
            Some(now + Duration::from_secs(60) + ms(1))
        );
        // An earlier deadline re-arms it: that request times out at its own deadline.
        let (reply, early) = oneshot::channel();
        requests
            .register(101, NodeId(3), now + ms(30), reply)
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), early)
            .await
            .expect("timed out at its deadline, not at the later ones'");
        assert_eq!(answer.unwrap(), Err(RequestError::Timeout));
        assert!(now.elapsed() >= ms(30));
        // Completing, cancelling and failing a peer each end their requests once.
        requests.complete(1, Ok(Bytes::from_static(b"one")));
        requests.cancel(2);
        requests.fail_peer(NodeId(2));
        requests.complete(3, Ok(Bytes::from_static(b"late")));
        let mut answers = answers.into_iter();
        assert_eq!(
            answers.next().unwrap().await.unwrap(),
            Ok(Bytes::from_static(b"one"))
        );
        assert!(answers.next().unwrap().await.is_err(), "cancelled: dropped");
        for answer in answers {
            assert_eq!(answer.await.unwrap(), Err(RequestError::Closed));
        }
        assert!(lock(&requests.table).pending.is_empty());
    }

    #[actix::test]
    async fn requests_end_closed_when_the_tracker_stops() {
        let requests = Requests::start();
        let (reply, answer) = oneshot::channel();
        requests
            .register(
                1,
                NodeId(2),
                Instant::now() + Duration::from_secs(60),
                reply,
            )
            .unwrap();
        // The tracker stops (its system is stopping): what is pending ends, and no
        // request is taken any more.
        let table = requests.table.clone();
        let tracker = requests.tracker.clone();
        tracker.send(Stop).await.unwrap();
        assert!(answer.await.is_err(), "the sender was dropped: Closed");
        assert!(lock(&table).closed);
        let (reply, _answer) = oneshot::channel();
        assert!(requests
            .register(
                2,
                NodeId(2),
                Instant::now() + Duration::from_secs(60),
                reply
            )
            .is_err());
    }

    /// Stops the tracker (a test's stand-in for its system stopping).
    struct Stop;

    impl Message for Stop {
        type Result = ();
    }

    impl Handler<Stop> for RequestTracker {
        type Result = ();

        fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }
}
