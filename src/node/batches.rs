//! Read batches: [`Batches`] wraps a stream and yields [`Read::Caught`] once the inner
//! stream has nothing more for now (it returned `Pending`) after yielding items, so
//! that an actor can act once per read batch (a receiver acknowledges then) instead of
//! once per item.
//!
//! Invariants: `Caught` is yielded at most once between two items, never before the
//! first item, and only when the inner stream is pending (the task is registered with
//! it, so no item is missed); items pass through unchanged and in order.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

/// An item of a [`Batches`] stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read<T> {
    /// An item of the inner stream.
    Item(T),
    /// The inner stream has nothing more for now: the read batch ended.
    Caught,
}

/// See the module documentation.
pub(crate) struct Batches<S> {
    stream: S,
    /// Items were yielded since the last `Caught`.
    pending: bool,
}

impl<S> Batches<S> {
    pub(crate) fn new(stream: S) -> Self {
        Batches {
            stream,
            pending: false,
        }
    }
}

impl<S: Stream + Unpin> Stream for Batches<S> {
    type Item = Read<S::Item>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.stream).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                self.pending = true;
                Poll::Ready(Some(Read::Item(item)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if self.pending => {
                self.pending = false;
                Poll::Ready(Some(Read::Caught))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::task::Waker;

    /// Yields its script: `Some(n)` an item, `None` a pending poll.
    struct Script(VecDeque<Option<u32>>);

    impl Stream for Script {
        type Item = u32;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<u32>> {
            match self.0.pop_front() {
                Some(Some(n)) => Poll::Ready(Some(n)),
                Some(None) => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    #[test]
    fn one_caught_after_each_batch_and_none_before_the_first_item() {
        let script = [None, Some(1), Some(2), None, None, Some(3), None];
        let mut s = Batches::new(Script(script.into_iter().collect()));
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        for _ in 0..9 {
            match Pin::new(&mut s).poll_next(&mut cx) {
                Poll::Ready(Some(Read::Item(n))) => out.push(format!("{n}")),
                Poll::Ready(Some(Read::Caught)) => out.push("caught".into()),
                Poll::Ready(None) => out.push("end".into()),
                Poll::Pending => out.push("pending".into()),
            }
        }
        assert_eq!(
            out,
            ["pending", "1", "2", "caught", "pending", "3", "caught", "end", "end"]
        );
    }
}
