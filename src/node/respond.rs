//! Answers to peers' requests: the [`Responder`] a receiving actor hands over with each
//! request, and [`ResponseRoutes`], the actor's view of this node's link back to the
//! peer.
//!
//! A response goes back over this node's own link to the requester: the urgent link
//! for a request that came over the urgent link, else the small or large link by its
//! size. A receiving actor asks the registry once for the link its responses usually
//! take (the urgent one for the urgent link's requests, the small one for the others)
//! with the [`ResolveLink`] the producers' credit lines use, on a channel of its own;
//! the registry answers with the link and tells the channel when that link closes,
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

use actix::Addr;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::credit::{LinkNews, ResolveLink};
use super::link::{Link, Outbound, Response};
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
    link: Option<Addr<Link>>,
    registry: Addr<Registry>,
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
            _ => self.registry.do_send(Route {
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
    news: UnboundedReceiver<LinkNews>,
    reply: UnboundedSender<LinkNews>,
}

impl ResponseRoutes {
    /// The view of the receiving actor of `peer`'s link of kind `inbound`: nothing
    /// known yet.
    pub(crate) fn new(peer: NodeId, inbound: LinkKind, registry: Addr<Registry>) -> Self {
        let kind = match inbound {
            LinkKind::Urgent => LinkKind::Urgent,
            LinkKind::Small | LinkKind::Large => LinkKind::Small,
        };
        let (reply, news) = mpsc::unbounded_channel();
        ResponseRoutes {
            current: Arc::new(Routes {
                peer,
                kind,
                link: None,
                registry,
            }),
            asked: Asked::No,
            news,
            reply,
        }
    }

    /// The routes for a request arriving now: takes in the registry's news, and asks
    /// for the link if it is not known (the answers until it is go through the
    /// registry).
    pub(crate) fn current(&mut self) -> Arc<Routes> {
        while let Ok(news) = self.news.try_recv() {
            let link = match news {
                LinkNews::Linked(link) => {
                    self.asked = Asked::Linked;
                    Some(link)
                }
                LinkNews::Failed(_) | LinkNews::Unlinked => {
                    self.asked = Asked::No;
                    None
                }
            };
            let now = &self.current;
            self.current = Arc::new(Routes {
                peer: now.peer,
                kind: now.kind,
                link,
                registry: now.registry.clone(),
            });
        }
        if let Asked::No = self.asked {
            self.asked = Asked::Yes;
            self.current.registry.do_send(ResolveLink {
                peer: self.current.peer,
                kind: self.current.kind,
                reply: self.reply.clone(),
            });
        }
        self.current.clone()
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
