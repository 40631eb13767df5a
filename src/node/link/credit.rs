//! Producers' credit, the link actor's side: answering the asks the core decided
//! and leasing the reserve credit needs (docs/design.md, "Actors and supervision").

use std::time::Instant;

use actix::prelude::*;

use super::{level_of, Link};
use crate::limits::{Grant, ReserveNeeded};
use crate::node::resource_limits::{Acquire, AcquireWhenAvailable, Direction};
use crate::session::CreditAnswer;
use crate::NodeId;

impl Link {
    /// Hands the core's answers to producers' credit asks over, and asks the
    /// reserves for what credit needs.
    pub(super) fn answer_credit(&mut self, ctx: &mut Context<Self>) {
        while let Some((id, answer)) = self.core.poll_credit() {
            let Some(at) = self.credit_replies.iter().position(|(i, _)| *i == id) else {
                continue;
            };
            let last = !matches!(answer, CreditAnswer::Waiting(_));
            let granted = match answer {
                CreditAnswer::Granted(bytes) => bytes,
                _ => 0,
            };
            let sent = self.credit_replies[at].1.send(answer).is_ok();
            if last {
                self.credit_replies.remove(at);
            }
            if !sent && granted > 0 {
                // The producer is gone: its credit comes back.
                self.core.handle_credit_returned(granted, Instant::now());
            }
        }
        if let Some(need) = self.core.poll_credit_acquire() {
            self.credit_acquiring = true;
            let acquire = Acquire {
                direction: Direction::Send,
                endpoint: self.peer,
                need,
            };
            ctx.spawn(self.env.limits.send(acquire).into_actor(self).map(
                move |granted, link, ctx| match granted {
                    Ok(Ok(held)) => link.credit_leased(Some(held.into_grant()), ctx),
                    Ok(Err(shortage)) => {
                        link.core.handle_credit_shortage(level_of(&shortage));
                        link.answer_credit(ctx);
                        link.wait_for_credit_reserve(need, ctx);
                    }
                    Err(_) => link.credit_leased(None, ctx),
                },
            ));
        }
    }

    /// Waits for the reserve credit needs (parked at the `ResourceLimits` actor until
    /// other links give some back).
    fn wait_for_credit_reserve(&mut self, need: ReserveNeeded, ctx: &mut Context<Self>) {
        let acquire = AcquireWhenAvailable {
            direction: Direction::Send,
            endpoint: self.peer,
            need,
        };
        ctx.spawn(
            self.env.limits.send(acquire).into_actor(self).map(
                |granted, link, ctx| match granted {
                    Ok(Ok(held)) => link.credit_leased(Some(held.into_grant()), ctx),
                    _ => link.credit_leased(None, ctx),
                },
            ),
        );
    }

    pub(super) fn credit_leased(&mut self, grant: Option<Grant<NodeId>>, ctx: &mut Context<Self>) {
        self.credit_acquiring = false;
        self.core.handle_credit_lease(grant, Instant::now());
        self.drive(ctx);
    }
}
