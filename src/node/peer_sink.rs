//! [`PeerSink`]: a [`Peer`] as a `futures::Sink` of one message type, so that a
//! stream can be `forward`ed to a peer under its link's credit.
//!
//! Invariants: at most one message waits for credit (`poll_ready` is ready only once
//! the previous one is in its link's mailbox), so the sink holds at most one message
//! of its own beyond what the limits allow; messages are queued in the order they are
//! given; a message that can never be sent (closed link, expired while waiting) is the
//! sink's error. The outcomes of queued messages are not awaited (they are counted in
//! the link's metrics): use [`Peer::enqueue`] to see each one.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_sink::Sink;

use super::credit::{Outgoing, QueueFuture, Queued};
use super::peer::{Peer, Prepared};
use crate::message::Message;
use crate::outcome::SendError;

/// A [`Peer`] as a sink of messages of type `M`; see [`Peer::sink`].
#[must_use = "a sink sends nothing unless items are given to it"]
pub struct PeerSink<M> {
    peer: Peer,
    waiting: Option<QueueFuture<Queued>>,
    _message: PhantomData<fn(M)>,
}

impl<M> std::fmt::Debug for PeerSink<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSink")
            .field("peer", &self.peer.id())
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}

impl<M> PeerSink<M> {
    pub(super) fn new(peer: Peer) -> Self {
        PeerSink {
            peer,
            waiting: None,
            _message: PhantomData,
        }
    }

    /// Drives the message waiting for credit, if any, until it is queued.
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        let Some(waiting) = self.waiting.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let result = std::task::ready!(Pin::new(waiting).poll(cx));
        self.waiting = None;
        // Queued: its outcome is counted by the link; not awaited here.
        Poll::Ready(result.map(drop))
    }
}

impl<M: Message> Sink<M> for PeerSink<M> {
    type Error = SendError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_waiting(cx)
    }

    fn start_send(self: Pin<&mut Self>, message: M) -> Result<(), SendError> {
        let this = self.get_mut();
        match this.peer.prepare(message, None, None) {
            Prepared::Ready(result) => result.map(drop),
            Prepared::Link {
                credit,
                outbound,
                expires_at,
            } => {
                this.waiting = Some(credit.queue(Outgoing::One(outbound), expires_at));
                Ok(())
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_waiting(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_waiting(cx)
    }
}
