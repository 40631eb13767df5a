//! The one timer of an actor whose sans-IO core says when it next needs waking
//! (`poll_timeout`).
//!
//! Invariants: at most one timer is armed per [`Timer`]; re-arming for the instant
//! already armed keeps it, another instant replaces it, `None` cancels it; a timer
//! that fires is disarmed before its callback runs, so the callback can arm the next.
//! [`Timer::arm_by`] is the lazy variant for an owner whose early wake-ups are
//! harmless: it keeps an armed timer that fires at or before the instant asked for.

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

    /// Arms the timer to fire by `next`: keeps an armed timer that fires at or before
    /// it (or, for `None`, whenever it fires), and arms or re-arms it otherwise. For
    /// an owner that finds out at each firing what is due (a firing with nothing due
    /// re-arms for the next instant): an earliest instant that moves later at every
    /// input then costs no timer operation per input.
    pub fn arm_by<A, F>(
        &mut self,
        ctx: &mut Context<A>,
        next: Option<Instant>,
        slot: fn(&mut A) -> &mut Timer,
        fire: F,
    ) where
        A: Actor<Context = Context<A>>,
        F: FnOnce(&mut A, &mut Context<A>) + 'static,
    {
        match (self.0.as_ref(), next) {
            (Some(_), None) => {}
            (Some((armed, _)), Some(at)) if *armed <= at => {}
            _ => self.arm(ctx, next, slot, fire),
        }
    }

    /// The instant the timer is armed for, if it is.
    pub fn armed_at(&self) -> Option<Instant> {
        self.0.as_ref().map(|(at, _)| *at)
    }

    /// Forgets the timer without cancelling it (its context is gone: the actor
    /// restarted).
    pub fn forget(&mut self) {
        self.0 = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Sleeper {
        timer: Timer,
        fired: usize,
    }

    impl Actor for Sleeper {
        type Context = Context<Self>;
    }

    /// Arms with `arm_by` for each offset (ms from `base`) in turn; answers the
    /// instant armed after each.
    #[derive(Message)]
    #[rtype(result = "Vec<Option<Instant>>")]
    struct ArmBy(Instant, Vec<Option<u64>>);

    impl Handler<ArmBy> for Sleeper {
        type Result = Vec<Option<Instant>>;

        fn handle(&mut self, m: ArmBy, ctx: &mut Context<Self>) -> Self::Result {
            let mut armed = Vec::new();
            for offset in m.1 {
                let next = offset.map(|ms| m.0 + Duration::from_millis(ms));
                self.timer
                    .arm_by(ctx, next, |s| &mut s.timer, |s, _| s.fired += 1);
                armed.push(self.timer.armed_at());
            }
            armed
        }
    }

    #[actix::test]
    async fn arm_by_keeps_a_timer_that_fires_no_later_than_asked() {
        let sleeper = Sleeper::default().start();
        let base = Instant::now() + Duration::from_secs(60);
        let at = |ms: u64| Some(base + Duration::from_millis(ms));
        let offsets = vec![Some(500), Some(900), None, Some(200), Some(700)];
        let armed = sleeper.send(ArmBy(base, offsets)).await.unwrap();
        // Armed at 500; 900 and "nothing" keep it; 200 is earlier: re-armed; 700
        // keeps 200.
        assert_eq!(armed, vec![at(500), at(500), at(500), at(200), at(200)]);
    }
}
