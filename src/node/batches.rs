//! Read batches: [`Batches`] wraps a connection's stream and yields [`Read::Caught`]
//! once the inner stream has nothing more for now (it returned `Pending`) after
//! yielding items, so that an actor can act once per read batch (a receiver
//! acknowledges then) instead of once per item, and [`Read::End`] when it ends. Every
//! item carries the connection's generation, so that an actor that replaced the
//! connection can ignore what the old stream still yields (actix may poll a cancelled
//! stream once more in the same turn).
//!
//! Invariants: `Caught` is yielded at most once between two items, never before the
//! first item, and only when the inner stream is pending (the task is registered with
//! it, so no item is missed); items pass through unchanged and in order; `End` comes
//! once, last.

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
    /// The inner stream ended.
    End,
}

/// See the module documentation.
pub(crate) struct Batches<S> {
    stream: S,
    generation: u64,
    /// Items were yielded since the last `Caught`.
    pending: bool,
    /// `End` was yielded.
    ended: bool,
}

impl<S> Batches<S> {
    /// The stream of the connection of this `generation`.
    pub(crate) fn new(stream: S, generation: u64) -> Self {
        Batches {
            stream,
            generation,
            pending: false,
            ended: false,
        }
    }
}

impl<S: Stream + Unpin> Stream for Batches<S> {
    type Item = (u64, Read<S::Item>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let read = match Pin::new(&mut self.stream).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                self.pending = true;
                Read::Item(item)
            }
            Poll::Ready(None) => {
                self.ended = true;
                Read::End
            }
            Poll::Pending if self.pending => {
                self.pending = false;
                Read::Caught
            }
            Poll::Pending => return Poll::Pending,
        };
        Poll::Ready(Some((self.generation, read)))
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
        let mut s = Batches::new(Script(script.into_iter().collect()), 7);
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        for _ in 0..9 {
            match Pin::new(&mut s).poll_next(&mut cx) {
                Poll::Ready(Some((7, Read::Item(n)))) => out.push(format!("{n}")),
                Poll::Ready(Some((7, Read::Caught))) => out.push("caught".into()),
                Poll::Ready(Some((7, Read::End))) => out.push("end".into()),
                Poll::Ready(Some((g, _))) => panic!("generation {g}"),
                Poll::Ready(None) => out.push("none".into()),
                Poll::Pending => out.push("pending".into()),
            }
        }
        assert_eq!(
            out,
            ["pending", "1", "2", "caught", "pending", "3", "caught", "end", "none"]
        );
    }
}
