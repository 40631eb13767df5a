//! Where the registry's [`LinkNews`] about a link go: [`NewsReply`], a credit line's
//! channel or a receiving actor's [`NewsSlot`].
//!
//! Invariants: news reach their owner in the order sent, each once; news sent after the
//! owner is gone are dropped, and [`NewsReply::is_closed`] then says so (the registry
//! forgets such replies).

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::mpsc::UnboundedSender;

use super::LinkNews;

/// Where the registry's [`LinkNews`] about one link go, in order.
#[derive(Clone)]
pub(crate) enum NewsReply {
    /// A credit line's channel, which its futures wait on.
    Channel(UnboundedSender<LinkNews>),
    /// A slot that its owner empties when it looks ([`NewsSlot`]): no waiting, and a
    /// few dozen bytes where a channel costs more than a kilobyte (one per receiving
    /// actor, for its responses).
    Slot(Weak<Mutex<Vec<LinkNews>>>),
}

impl NewsReply {
    /// Delivers `news`, unless the owner is gone.
    pub(crate) fn send(&self, news: LinkNews) {
        match self {
            NewsReply::Channel(channel) => {
                let _ = channel.send(news);
            }
            NewsReply::Slot(slot) => {
                if let Some(slot) = slot.upgrade() {
                    lock(&slot).push(news);
                }
            }
        }
    }

    /// Whether the owner is gone (nothing sent here is read any more).
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            NewsReply::Channel(channel) => channel.is_closed(),
            NewsReply::Slot(slot) => slot.strong_count() == 0,
        }
    }
}

/// The owner's end of a [`NewsReply::Slot`].
pub(crate) struct NewsSlot(Arc<Mutex<Vec<LinkNews>>>);

impl NewsSlot {
    pub(crate) fn new() -> Self {
        NewsSlot(Arc::new(Mutex::new(Vec::new())))
    }

    /// Where the registry sends the news for this slot.
    pub(crate) fn reply(&self) -> NewsReply {
        NewsReply::Slot(Arc::downgrade(&self.0))
    }

    /// The news that came since the last look, in order (their buffer is freed).
    pub(crate) fn take(&self) -> Vec<LinkNews> {
        std::mem::take(&mut *lock(&self.0))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Pushed or taken whole: a panic elsewhere cannot leave it half-done.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::SendError;

    fn names(news: Vec<LinkNews>) -> Vec<&'static str> {
        news.into_iter()
            .map(|n| match n {
                LinkNews::Linked(_) => "linked",
                LinkNews::Failed(_) => "failed",
                LinkNews::Unlinked => "unlinked",
            })
            .collect()
    }

    #[test]
    fn a_slot_holds_the_news_in_order_until_taken_and_closes_with_its_owner() {
        let slot = NewsSlot::new();
        let reply = slot.reply();
        assert!(slot.take().is_empty());
        reply.send(LinkNews::Failed(SendError::Closed));
        reply.clone().send(LinkNews::Unlinked);
        assert_eq!(names(slot.take()), ["failed", "unlinked"]);
        assert!(slot.take().is_empty(), "each once");
        assert!(!reply.is_closed());
        drop(slot);
        assert!(reply.is_closed());
        reply.send(LinkNews::Unlinked); // dropped, no panic
    }

    #[test]
    fn a_channel_reply_closes_with_its_receiver() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let reply = NewsReply::Channel(tx);
        reply.send(LinkNews::Unlinked);
        assert!(matches!(rx.try_recv(), Ok(LinkNews::Unlinked)));
        assert!(!reply.is_closed());
        drop(rx);
        assert!(reply.is_closed());
    }
}
