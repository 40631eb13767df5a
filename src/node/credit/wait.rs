//! The futures of a credit line: [`QueueFuture`] (a send waiting for its link and
//! credit) and [`Ready`] (a line waiting for its link's first answer). Both drive the
//! line when polled: see the invariants of [`credit`](super).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use super::{CreditLine, FromHanded, Handed, Route};
use crate::outcome::SendError;

/// See [`CreditLine::ready`].
#[must_use = "futures do nothing unless polled"]
pub(crate) struct Ready {
    pub(super) line: CreditLine,
    pub(super) started: bool,
}

impl Future for Ready {
    type Output = Result<(), SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut line = this.line.lock();
        line.absorb(Some(cx));
        line.serve();
        if !std::mem::replace(&mut this.started, true) {
            match &line.route {
                // Asks again even after a failure: the peer may be known by now.
                Route::Unresolved { .. } => line.resolve(),
                Route::Linked(_) if line.available == 0 => line.ask(1),
                _ => {}
            }
        }
        match &line.route {
            Route::Linked(_) => {
                if let Some(refused) = &line.refused {
                    return Poll::Ready(Err(refused.clone()));
                }
                if line.available > 0 || line.short.is_some() || !line.asking {
                    return Poll::Ready(Ok(()));
                }
            }
            Route::Unresolved {
                failed: Some(error),
            } => return Poll::Ready(Err(error.clone())),
            // Its link closed meanwhile: the next one.
            Route::Unresolved { failed: None } => {
                line.resolve();
                if let Route::Unresolved {
                    failed: Some(error),
                } = &line.route
                {
                    return Poll::Ready(Err(error.clone()));
                }
            }
            Route::Resolving => {}
        }
        if !line.ready.iter().any(|w| w.will_wake(cx.waker())) {
            line.ready.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

pub(super) enum Wait {
    Waiting {
        ticket: u64,
        /// Wakes the future when its message expires.
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    },
    Done(Result<Handed, SendError>),
    Taken,
}

/// A message waiting for credit; resolves once it is in the link's mailbox (see
/// [`CreditLine::queue`]).
#[must_use = "a message waiting for credit is sent only if a future of its line is polled"]
pub(crate) struct QueueFuture<T> {
    pub(super) line: CreditLine,
    pub(super) state: Wait,
    pub(super) out: std::marker::PhantomData<fn() -> T>,
}

impl<T: FromHanded> Future for QueueFuture<T> {
    type Output = Result<T, SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Wait::Waiting { ticket, deadline } = &mut this.state else {
            return match std::mem::replace(&mut this.state, Wait::Taken) {
                Wait::Done(result) => Poll::Ready(result.map(T::from_handed)),
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
                Poll::Ready(result.map(T::from_handed))
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

impl<T> Drop for QueueFuture<T> {
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
