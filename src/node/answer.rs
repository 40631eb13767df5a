//! Sending an actor handler's answer to a peer's request as the handler gives it, with
//! no task: [`forward`].
//!
//! actix hands a handler's result back on a oneshot channel (the `send` of a message
//! returns a future over it) and offers no callback. A channel wakes whoever waits on
//! its receiver when the value is sent, on the thread that sends it, so the future is
//! polled with a waker of this module: its wake polls the future again, and once the
//! answer is there sends it through the request's [`Responder`]. So the answer goes to
//! the link from within the handler's turn (for an answer in a `ResponseFuture`, from
//! within the turn that completes it) instead of from a task scheduled afterwards.
//!
//! Invariants:
//! - The answer is sent exactly once: the state is taken out under its lock by the
//!   wake that finds the future ready, and a later wake finds nothing. A handler that
//!   never runs (its actor stopped) drops actix's sender, which wakes the receiver
//!   too: the request is answered `HandlerFailed`.
//! - The future holds this waker and the waker holds the future (a cycle) only until
//!   the future is ready; then the future is dropped and the cycle with it. A handler
//!   whose answer never comes keeps them, as a task awaiting it would.
//! - The future is polled once when made: actix keeps a message for a mailbox over its
//!   capacity inside the future and puts it in the mailbox at the first poll, so that
//!   first poll must come at once for the message to keep its place in the order of
//!   the link (one-way messages go in with `do_send`, at once).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

#[cfg(doc)]
use super::respond::Responder;
use crate::message::{FailureReason, RemoteFailure};

/// What becomes of an answer once it is there.
type Deliver<T, R> = Box<dyn FnOnce(T, R) + Send>;

/// The pending answer: the future, where its answer goes (`R`, a [`Responder`]), and
/// how.
struct Pending<F: Future, R> {
    future: Pin<Box<F>>,
    reply: R,
    deliver: Deliver<F::Output, R>,
}

/// The waker of one pending answer; see the module documentation.
struct Answer<F: Future, R> {
    pending: Mutex<Option<Pending<F, R>>>,
}

impl<F, R> Answer<F, R>
where
    F: Future + Send + 'static,
    F::Output: Send,
    R: Send + 'static,
{
    /// Polls the future once, with this waker: sends the answer if it is ready.
    fn poll(self: &Arc<Self>) {
        // A poisoned lock: a panic while polling; the state is whole or taken.
        let mut slot = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pending) = slot.as_mut() else {
            return; // answered already
        };
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        if let Poll::Ready(output) = pending.future.as_mut().poll(&mut cx) {
            let Pending { reply, deliver, .. } = slot.take().expect("checked above");
            // The future (and the waker clone it holds) is dropped here, the answer
            // sent after the lock is released.
            drop(slot);
            deliver(output, reply);
        }
    }
}

impl<F, R> Wake for Answer<F, R>
where
    F: Future + Send + 'static,
    F::Output: Send,
    R: Send + 'static,
{
    fn wake(self: Arc<Self>) {
        self.poll();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.poll();
    }
}

/// Polls `future` (actix's future of a handler's answer) now and again whenever it is
/// woken, and once it is ready hands its output with `reply` (the request's
/// [`Responder`]) to `deliver`, on the thread that woke it; no task is spawned.
pub(crate) fn forward<F, R>(
    future: F,
    reply: R,
    deliver: impl FnOnce(F::Output, R) + Send + 'static,
) where
    F: Future + Send + 'static,
    F::Output: Send,
    R: Send + 'static,
{
    let answer = Arc::new(Answer {
        pending: Mutex::new(Some(Pending {
            future: Box::pin(future),
            reply,
            deliver: Box::new(deliver),
        })),
    });
    answer.poll();
}

/// The failure sent when the handler's actor is gone before it answered.
pub(crate) fn unavailable(why: impl std::fmt::Display) -> RemoteFailure {
    RemoteFailure {
        reason: FailureReason::HandlerFailed,
        detail: format!("handler unavailable: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use tokio::sync::oneshot;

    /// Where delivered answers go: (answer, reply, thread).
    type Got = mpsc::Receiver<(Result<u32, oneshot::error::RecvError>, &'static str, String)>;

    fn forward_to(rx: oneshot::Receiver<u32>) -> Got {
        let (tx, got) = mpsc::channel();
        forward(rx, "reply", move |answer, reply| {
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            tx.send((answer, reply, thread)).unwrap();
        });
        got
    }

    #[test]
    fn an_answer_sent_from_another_thread_is_delivered_there_before_send_returns() {
        let (tx, rx) = oneshot::channel();
        let got = forward_to(rx);
        assert!(got.try_recv().is_err(), "nothing yet");
        std::thread::Builder::new()
            .name("handler".into())
            .spawn(move || {
                tx.send(7).unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        let (answer, reply, thread) = got.try_recv().expect("delivered within the send");
        assert_eq!(
            (answer, reply, thread.as_str()),
            (Ok(7), "reply", "handler")
        );
        assert!(got.try_recv().is_err(), "once");
    }

    #[test]
    fn an_answer_already_there_is_delivered_at_once_and_a_dropped_sender_too() {
        let (tx, rx) = oneshot::channel();
        tx.send(3).unwrap();
        assert_eq!(forward_to(rx).try_recv().unwrap().0, Ok(3));

        let (tx, rx) = oneshot::channel::<u32>();
        let got = forward_to(rx);
        drop(tx);
        assert!(got.try_recv().unwrap().0.is_err(), "the handler is gone");
    }

    /// Pending until `ready` is set; hands its waker out; tells when it is dropped.
    struct Manual {
        ready: Arc<Mutex<(bool, Option<Waker>)>>,
        _alive: Arc<()>,
    }

    impl Future for Manual {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            let mut state = self.ready.lock().unwrap();
            if state.0 {
                return Poll::Ready(1);
            }
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn spurious_and_repeated_wakes_deliver_once_and_the_future_is_freed() {
        let ready = Arc::new(Mutex::new((false, None)));
        let alive = Arc::new(());
        let (tx, got) = mpsc::channel();
        let future = Manual {
            ready: ready.clone(),
            _alive: alive.clone(),
        };
        forward(future, (), move |answer, ()| tx.send(answer).unwrap());
        let waker = ready.lock().unwrap().1.take().expect("polled at once");
        waker.wake_by_ref(); // not ready: nothing
        assert!(got.try_recv().is_err());
        let waker = ready.lock().unwrap().1.take().expect("polled again");
        ready.lock().unwrap().0 = true;
        waker.wake_by_ref();
        waker.wake_by_ref();
        assert_eq!(got.try_recv(), Ok(1));
        assert!(got.try_recv().is_err(), "once");
        // Only the waker in our hands holds the state now; the future is gone.
        assert_eq!(Arc::strong_count(&alive), 1, "the future was dropped");
        drop(waker);
    }
}
