//! The one timer of an actor whose sans-IO core says when it next needs waking
//! (`poll_timeout`).
//!
//! Invariants: at most one timer is armed per [`Timer`]; re-arming for the instant
//! already armed keeps it, another instant replaces it, `None` cancels it; a timer
//! that fires is disarmed before its callback runs, so the callback can arm the next.

use std::time::Instant;

use actix::prelude::*;

/// An actor's one timer (see the module documentation).
#[derive(Default)]
pub(crate) struct Timer(Option<(Instant, SpawnHandle)>);

impl Timer {
    /// Arms the timer for `next` (or cancels it); when it fires, `fire` runs on the
    /// actor. `slot` finds this timer in the actor.
    pub fn arm<A, F>(
        &mut self,
        ctx: &mut Context<A>,
        next: Option<Instant>,
        slot: fn(&mut A) -> &mut Timer,
        fire: F,
    ) where
        A: Actor<Context = Context<A>>,
        F: FnOnce(&mut A, &mut Context<A>) + 'static,
    {
        if self.0.as_ref().map(|(at, _)| *at) == next {
            return;
        }
        if let Some((_, handle)) = self.0.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = next {
            let delay = at.saturating_duration_since(Instant::now());
            let handle = ctx.run_later(delay, move |actor, ctx| {
                slot(actor).0 = None;
                fire(actor, ctx);
            });
            self.0 = Some((at, handle));
        }
    }

    /// Forgets the timer without cancelling it (its context is gone: the actor
    /// restarted).
    pub fn forget(&mut self) {
        self.0 = None;
    }
}
