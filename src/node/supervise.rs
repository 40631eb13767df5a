//! Starting a supervised actor with an unbounded mailbox, on the current thread or
//! on another arbiter.
//!
//! actix's own `Supervisor::start_in_arbiter` hands out the address at once, with the
//! default mailbox capacity of 16, and the actor can raise the capacity only once it
//! runs on its thread. Until then `Addr::send` parks what does not fit inside the
//! sender's future, so a message sent later could enter the mailbox earlier: for a
//! link, whose mailbox is its outbound queue, that would reorder messages. Here the
//! mailbox is unbounded from the first message on (the link bounds its queue in bytes
//! itself), and the actor is restarted the way actix's `Supervisor` does it: after it
//! stops, with the same value, address and mailbox, for as long as addresses of it
//! remain.

use std::future::Future;
use std::pin::Pin;
use std::task::{self, Poll};

use actix::dev::channel;
use actix::dev::ContextFut;
use actix::prelude::*;

/// Starts `make`'s actor on `arbiter` (or on the current thread when `None`), under
/// supervision, with an unbounded mailbox; the address is usable at once.
pub(crate) fn start<A, F>(arbiter: Option<&ArbiterHandle>, make: F) -> Addr<A>
where
    A: Supervised + Actor<Context = Context<A>>,
    F: FnOnce(&mut Context<A>) -> A + Send + 'static,
{
    // Capacity 0: unbounded.
    let (tx, rx) = channel::channel(0);
    let run = move || {
        let mut ctx = Context::with_receiver(rx);
        let actor = make(&mut ctx);
        actix_rt::spawn(Supervise(ctx.into_future(actor)));
    };
    match arbiter {
        Some(arbiter) => {
            arbiter.spawn_fn(run);
        }
        None => run(),
    }
    Addr::new(tx)
}

/// Runs an actor's context and restarts it whenever it stops while addresses of it
/// remain.
struct Supervise<A: Actor<Context = Context<A>>>(ContextFut<A, Context<A>>);

impl<A> Future for Supervise<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<()> {
        loop {
            match Pin::new(&mut self.0).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    if !self.0.restart() {
                        return Poll::Ready(());
                    }
                }
            }
        }
    }
}
