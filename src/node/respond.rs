//! Answers to peers' requests: the [`Responder`] a receiving actor hands over with each
//! request, and [`ResponseRoutes`], the actor's view of this node's link back to the
//! peer.
//!
//! A response goes back over this node's own link to the requester: the urgent link
//! for a request that came over the urgent link, else the small or large link by its
//! size. A receiving actor asks the registry once for the link its responses usually
//! take (the urgent one for the urgent link's requests, the small one for the others)
//! with the [`ResolveLink`] the producers' credit lines use, into a slot of its own;
//! the registry answers with the link and tells the slot when that link closes,
//! before it can make the next one. Each [`Responder`] carries the actor's view as of
//! the request's arrival, so that the answer goes from whoever answers straight into
//! the link's mailbox, with no hop through the registry. An answer for another link (a
//! large response) or given before the link is known goes through the registry
//! (`Route`), which finds or makes the link, as every answer did before.
//!
//! Invariants:
//! - A request handed over is answered exactly once: with its handler's answer, with
//!   a failure (refused, handler gone), or, if its [`Responder`] is dropped without an
//!   answer, with a `HandlerFailed` failure, so that the requester never waits for
//!   its timeout because an answer was lost on this side.
//! - The view changes only on the registry's news, taken in on the actor's turn:
//!   after a link closed, no later request is answered over it. An answer to a request
//!   that arrived before the news goes to the closed link, which fails it; the
//!   requester's request ends `Closed` or at its timeout.
//! - Responses are outside the producers' credit (bounded by the requests received,
//!   which the receive limits bound); see docs/limits.md.

use std::sync::Arc;

use actix::{Addr, Recipient};
use bytes::{Bytes, BytesMut};

use super::credit::{LinkNews, NewsSlot, ResolveLink};
use super::link::{Outbound, Response};
use super::registry::{Registry, Route};
use super::wire::{self, PARAM_REQUEST_ID};
use crate::envelope::Flags;
use crate::message::{FailureReason, RemoteFailure};
use crate::{LinkKind, NodeId};

/// Where the answers to one peer's requests go, as a receiving actor knew it when a
/// request arrived.
pub(crate) struct Routes {
    peer: NodeId,
    /// The kind of `link`: the one this actor's responses usually take.
    kind: LinkKind,
    link: Option<Recipient<Response>>,
    registry: Fallback,
}

/// The registry, for what a receiving actor's own view does not cover.
#[derive(Clone)]
pub(crate) struct Fallback {
    /// Answers for a link not known here.
    pub route: Recipient<Route>,
    /// Asks for the link.
    pub resolve: Recipient<ResolveLink>,
}

impl Fallback {
    pub(crate) fn of(registry: &Addr<Registry>) -> Self {
        Fallback {
            route: registry.clone().recipient(),
            resolve: registry.clone().recipient(),
        }
    }
}

impl Routes {
    fn send(&self, message: Outbound, urgent: bool) {
        let kind = if urgent {
            LinkKind::Urgent
        } else if message.payload.len() > LinkKind::LARGE_THRESHOLD {
            LinkKind::Large
        } else {
            LinkKind::Small
        };
        match &self.link {
            Some(link) if kind == self.kind => link.do_send(Response(message)),
            _ => self.registry.route.do_send(Route {
                peer: self.peer,
                urgent,
                message,
            }),
        }
    }
}

/// Where the registry stands on a receiving actor's ask for its response link.
enum Asked {
    /// Not asked, or the link given closed, or there was none: ask at the next request.
    No,
    /// Asked; the answer is on the channel.
    Yes,
    /// The link is known (in `current`).
    Linked,
}

/// A receiving actor's view of the link its responses take; see the module
/// documentation.
pub(crate) struct ResponseRoutes {
    current: Arc<Routes>,
    asked: Asked,
    /// The registry's news, read at each request (a slot, not a channel: nobody
    /// waits on it, and a channel per receiving actor cost a kilobyte and a half).
    news: NewsSlot,
}

impl ResponseRoutes {
    /// The view of the receiving actor of `peer`'s link of kind `inbound`: nothing
    /// known yet.
    pub(crate) fn new(peer: NodeId, inbound: LinkKind, registry: Fallback) -> Self {
        let kind = match inbound {
            LinkKind::Urgent => LinkKind::Urgent,
            LinkKind::Small | LinkKind::Large => LinkKind::Small,
        };
        ResponseRoutes {
            current: Arc::new(Routes {
                peer,
                kind,
                link: None,
                registry,
            }),
            asked: Asked::No,
            news: NewsSlot::new(),
        }
    }

    /// The routes for a request arriving now: takes in the registry's news, and asks
    /// for the link if it is not known (the answers until it is go through the
    /// registry).
    pub(crate) fn current(&mut self) -> Arc<Routes> {
        for news in self.news.take() {
            self.set_link(match news {
                LinkNews::Linked(link) => Some(link.recipient()),
                LinkNews::Failed(_) | LinkNews::Unlinked => None,
            });
        }
        if let Asked::No = self.asked {
            self.asked = Asked::Yes;
            self.current.registry.resolve.do_send(ResolveLink {
                peer: self.current.peer,
                kind: self.current.kind,
                reply: self.news.reply(),
            });
        }
        self.current.clone()
    }

    /// The link is known (or, `None`, not any more: ask again at the next request).
    fn set_link(&mut self, link: Option<Recipient<Response>>) {
        self.asked = if link.is_some() {
            Asked::Linked
        } else {
            Asked::No
        };
        let now = &self.current;
        self.current = Arc::new(Routes {
            peer: now.peer,
            kind: now.kind,
            link,
            registry: now.registry.clone(),
        });
    }
}

/// The answer to one request from a peer: call [`send`](Self::send) once; dropped
/// without it, it answers that the handler failed.
pub(crate) struct Responder {
    routes: Arc<Routes>,
    id: u64,
    request_verb: u32,
    urgent: bool,
    answered: bool,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Responder(request {} from {})",
            self.id, self.routes.peer
        )
    }
}

impl Responder {
    /// The answer to request `id` of verb `request_verb`, which came over the urgent
    /// link if `urgent`, going by `routes`.
    pub(crate) fn new(routes: Arc<Routes>, id: u64, request_verb: u32, urgent: bool) -> Self {
        Responder {
            routes,
            id,
            request_verb,
            urgent,
            answered: false,
        }
    }

    /// Sends the answer: a response (its verb and encoded payload) or a failure.
    pub(crate) fn send(mut self, answer: Result<(u32, Bytes), RemoteFailure>) {
        self.write(answer);
    }

    fn write(&mut self, answer: Result<(u32, Bytes), RemoteFailure>) {
        self.answered = true;
        let (verb, flags, payload) = match answer {
            Ok((verb, payload)) => (verb, Flags::RESPONSE, payload),
            Err(failure) => {
                let mut buf = BytesMut::new();
                failure.encode(&mut buf);
                (
                    self.request_verb,
                    Flags::RESPONSE | Flags::FAILURE,
                    buf.freeze(),
                )
            }
        };
        let message = Outbound {
            verb,
            flags,
            payload,
            params: vec![(PARAM_REQUEST_ID, wire::vint_bytes(self.id))],
            expires_at_ms: None,
        };
        self.routes.send(message, self.urgent);
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            self.write(Err(RemoteFailure {
                reason: FailureReason::HandlerFailed,
                detail: "the handler dropped the request without answering".to_owned(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{Actor, Context};
    use tokio::sync::mpsc;

    /// What the spy saw: (where, verb, flags, request id, urgent).
    type Seen = (&'static str, u32, Flags, Option<u64>, bool);

    /// Stands for the link and the registry: reports what reaches it.
    struct Spy(mpsc::UnboundedSender<Seen>);

    impl Actor for Spy {
        type Context = Context<Self>;
    }

    fn id_of(message: &Outbound) -> Option<u64> {
        let (_, v) = message
            .params
            .iter()
            .find(|(k, _)| *k == PARAM_REQUEST_ID)?;
        crate::vint::decode(v).ok().map(|(id, _)| id)
    }

    impl actix::Handler<Response> for Spy {
        type Result = ();
        fn handle(&mut self, Response(m): Response, _: &mut Context<Self>) {
            let _ = self.0.send(("link", m.verb, m.flags, id_of(&m), false));
        }
    }

    impl actix::Handler<Route> for Spy {
        type Result = ();
        fn handle(&mut self, r: Route, _: &mut Context<Self>) {
            let m = r.message;
            let _ = self
                .0
                .send(("registry", m.verb, m.flags, id_of(&m), r.urgent));
        }
    }

    impl actix::Handler<ResolveLink> for Spy {
        type Result = ();
        fn handle(&mut self, r: ResolveLink, _: &mut Context<Self>) {
            let code = u32::from(r.kind.code());
            let _ = self
                .0
                .send(("resolve", code, Flags::EMPTY, Some(r.peer.0), false));
        }
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
        let wait = std::time::Duration::from_secs(10);
        tokio::time::timeout(wait, rx.recv())
            .await
            .expect("in time")
            .expect("the spy lives")
    }

    fn spy() -> (Addr<Spy>, Fallback, mpsc::UnboundedReceiver<Seen>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let spy = Spy(tx).start();
        let fallback = Fallback {
            route: spy.clone().recipient(),
            resolve: spy.clone().recipient(),
        };
        (spy, fallback, rx)
    }

    const OK: Flags = Flags::RESPONSE;

    #[actix::test]
    async fn answers_go_through_the_registry_until_the_link_is_known_then_straight_to_it() {
        let (spy, fallback, mut seen) = spy();
        let mut routes = ResponseRoutes::new(NodeId(7), LinkKind::Large, fallback);
        let answer = || Ok((3, Bytes::from_static(b"x")));

        Responder::new(routes.current(), 1, 9, false).send(answer());
        let small = u32::from(LinkKind::Small.code());
        assert_eq!(
            next(&mut seen).await,
            ("resolve", small, Flags::EMPTY, Some(7), false)
        );
        assert_eq!(next(&mut seen).await, ("registry", 3, OK, Some(1), false));
        // Asked once, whatever comes before the answer.
        Responder::new(routes.current(), 2, 9, false).send(answer());
        assert_eq!(next(&mut seen).await, ("registry", 3, OK, Some(2), false));

        routes.set_link(Some(spy.clone().recipient()));
        Responder::new(routes.current(), 3, 9, false).send(answer());
        assert_eq!(next(&mut seen).await, ("link", 3, OK, Some(3), false));
        // A large answer is for the large link: through the registry.
        let large = Bytes::from(vec![0; LinkKind::LARGE_THRESHOLD + 1]);
        Responder::new(routes.current(), 4, 9, false).send(Ok((3, large)));
        assert_eq!(next(&mut seen).await, ("registry", 3, OK, Some(4), false));

        // The link closed: through the registry again, and asked again.
        routes.news.reply().send(LinkNews::Unlinked);
        let routes_now = routes.current();
        assert_eq!(
            next(&mut seen).await,
            ("resolve", small, Flags::EMPTY, Some(7), false)
        );
        Responder::new(routes_now, 5, 9, false).send(answer());
        assert_eq!(next(&mut seen).await, ("registry", 3, OK, Some(5), false));
    }

    #[actix::test]
    async fn a_failure_carries_the_requests_verb_and_a_dropped_responder_answers_one() {
        let (spy, fallback, mut seen) = spy();
        let mut routes = ResponseRoutes::new(NodeId(7), LinkKind::Urgent, fallback);
        routes.set_link(Some(spy.recipient()));
        let failed = RemoteFailure {
            reason: FailureReason::DecodeFailed,
            detail: "no".into(),
        };
        Responder::new(routes.current(), 1, 9, true).send(Err(failed));
        let failure = Flags::RESPONSE | Flags::FAILURE;
        assert_eq!(next(&mut seen).await, ("link", 9, failure, Some(1), false));

        drop(Responder::new(routes.current(), 2, 9, true));
        assert_eq!(next(&mut seen).await, ("link", 9, failure, Some(2), false));
        assert!(seen.try_recv().is_err(), "exactly one answer each");
    }
}
