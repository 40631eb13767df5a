//! A gate on a stream: [`Gated`] yields the stream's items while its [`Gate`] is
//! open and nothing while it is closed, without dropping the stream (so a
//! `FramedRead` keeps its buffered bytes, and the socket is simply not read: TCP
//! flow control then slows the sender).
//!
//! Invariants: a closed gate never polls the inner stream; opening it wakes the task
//! that last polled it, so no item is left waiting. Gate and stream live on one
//! actor's thread (`Rc`): nothing is shared across threads.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

#[derive(Default)]
struct State {
    closed: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// Opens and closes a [`Gated`] stream.
#[derive(Clone, Default)]
pub(crate) struct Gate(Rc<State>);

impl Gate {
    /// Wraps `stream` behind this gate.
    pub fn guard<S>(&self, stream: S) -> Gated<S> {
        Gated {
            stream,
            gate: self.0.clone(),
        }
    }

    /// Stops the stream after the item being handled.
    pub fn close(&self) {
        self.0.closed.set(true);
    }

    /// Lets the stream go on.
    pub fn open(&self) {
        self.0.closed.set(false);
        if let Some(waker) = self.0.waker.take() {
            waker.wake();
        }
    }
}

/// A stream behind a [`Gate`].
pub(crate) struct Gated<S> {
    stream: S,
    gate: Rc<State>,
}

impl<S: Stream + Unpin> Stream for Gated<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        if self.gate.closed.get() {
            self.gate.waker.set(Some(cx.waker().clone()));
            return Poll::Pending;
        }
        Pin::new(&mut self.stream).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Numbers(u32);
    impl Stream for Numbers {
        type Item = u32;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<u32>> {
            self.0 += 1;
            Poll::Ready(Some(self.0))
        }
    }

    #[test]
    fn a_closed_gate_holds_items_back_and_opening_wakes_the_task() {
        let gate = Gate::default();
        let mut stream = gate.guard(Numbers(0));
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert_eq!(
            Pin::new(&mut stream).poll_next(&mut cx),
            Poll::Ready(Some(1))
        );
        gate.close();
        assert_eq!(Pin::new(&mut stream).poll_next(&mut cx), Poll::Pending);
        assert_eq!(Pin::new(&mut stream).poll_next(&mut cx), Poll::Pending);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        gate.open();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the task is woken");
        assert_eq!(
            Pin::new(&mut stream).poll_next(&mut cx),
            Poll::Ready(Some(2)),
            "nothing was consumed while closed"
        );
    }
}
