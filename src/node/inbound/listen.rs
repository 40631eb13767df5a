//! The listener: accepts sockets, reads their Hello (with the handshake timeout), and
//! hands each well-formed one to the receiving actor of its (peer, link kind), which
//! answers it. A socket that sends garbage, a wrong magic or version, reaches the
//! node itself, or stays silent is refused, counted, and closed before any actor sees
//! it. With TLS the task first runs the TLS handshake (within the same deadline), and
//! after the Hello checks that the peer's certificate names the node the Hello
//! claims to be. With a cluster secret the task also writes the Challenge and checks
//! the Proof before anything else happens: a peer that does not prove the secret (or,
//! with TLS, its certificate's identity) is refused here, its address not learned, no
//! actor told of it.
//!
//! Nothing on the accept loop awaits a client: each accepted socket's handshake runs
//! in a task of its own, so a slow or silent client never delays the next accept.
//! Refusals are counted always and logged at most once a second per reason, with the
//! count since the last such line ([`RefusalLog`]), so a flood of them costs a few log
//! lines, not one each on the node's thread.
//!
//! Admission ([`Handshakes`]): at most `AdmissionLimits::handshakes` sockets are in
//! handshake at once, and `handshakes_per_ip` from one source address; a socket over
//! either limit is closed as soon as it is accepted (nothing read, nothing allocated
//! but its entry in the accept queue) and counted. A slot is held from the accept
//! until the Hello is handed to its receiving actor or refused, at most the handshake
//! timeout. Established connections are bounded by the registry, when it finds the
//! receiving actor.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::super::transport::{write_all_flush, Stream};
use super::super::TlsConfig;
use super::{Attach, InboundEnv};
use crate::frame::Framing;
use crate::handshake::{
    fresh_nonce, Acceptor, AcceptorConfig, HandshakeError, Hello, RejectReason,
};
use crate::node::refusal::RefusalReason;
use crate::node::registry::{InboundRefused, Receiver, SetPeer};
use crate::node::AdmissionLimits;
use crate::session::{DisconnectReason, TlsFailure, WarnLimiter};

/// How often a line may be logged per refusal reason (and for failed accepts).
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Accepts connections until the task is aborted.
pub(crate) async fn listen(listener: TcpListener, env: Arc<InboundEnv>) {
    // Shared by the handshake tasks, which all run on this thread.
    let refusals = Rc::new(RefCell::new(RefusalLog::new(LOG_EVERY)));
    let mut accept_failures = WarnLimiter::new(LOG_EVERY);
    let handshakes = Rc::new(RefCell::new(Handshakes::new(env.config.admission)));
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let slot = match Handshakes::enter(&handshakes, from.ip()) {
                    Ok(slot) => slot,
                    Err(reason) => {
                        // Closed at once: nothing read, nothing spawned.
                        drop(stream);
                        env.registry.do_send(InboundRefused(reason));
                        let due = refusals.borrow_mut().refused(reason, Instant::now());
                        if let Some(count) = due {
                            log::warn!(
                                "{}: connection from {from} refused: {reason} ({count} \
                                 refused as {reason} since the last such line)",
                                env.node
                            );
                        }
                        continue;
                    }
                };
                let env = env.clone();
                let refusals = refusals.clone();
                actix::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = handshake(stream, env.clone()).await {
                        let reason = e.reason();
                        env.registry.do_send(InboundRefused(reason));
                        let due = refusals.borrow_mut().refused(reason, Instant::now());
                        if let Some(count) = due {
                            log::info!(
                                "{}: connection from {from} refused: {e} \
                                 ({count} refused as {reason} since the last such line)",
                                env.node
                            );
                        }
                    }
                });
            }
            Err(e) => {
                if let Some(held_back) = accept_failures.check(Instant::now()) {
                    log::warn!(
                        "{}: accept failed: {e} ({held_back} more since the last such line)",
                        env.node
                    );
                }
                // Out of descriptors and the like: don't spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The sockets in handshake, in all and per source address, against the admission
/// limits. Only addresses with a socket in handshake are kept.
#[derive(Debug)]
struct Handshakes {
    limits: AdmissionLimits,
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Handshakes {
    fn new(limits: AdmissionLimits) -> Self {
        Handshakes {
            limits,
            total: 0,
            per_ip: HashMap::new(),
        }
    }

    /// A slot for a socket from `ip`, or the reason it is refused.
    fn enter(this: &Rc<RefCell<Self>>, ip: IpAddr) -> Result<HandshakeSlot, RefusalReason> {
        let mut h = this.borrow_mut();
        if h.total >= h.limits.handshakes {
            return Err(RefusalReason::TooManyHandshakes);
        }
        let per_ip = h.limits.handshakes_per_ip;
        if h.per_ip.get(&ip).copied().unwrap_or(0) >= per_ip {
            return Err(RefusalReason::TooManyFromIp);
        }
        *h.per_ip.entry(ip).or_default() += 1;
        h.total += 1;
        Ok(HandshakeSlot {
            handshakes: this.clone(),
            ip,
        })
    }
}

/// A socket's place among those in handshake, given back when dropped.
struct HandshakeSlot {
    handshakes: Rc<RefCell<Handshakes>>,
    ip: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut h = self.handshakes.borrow_mut();
        h.total = h.total.saturating_sub(1);
        if let Some(n) = h.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                h.per_ip.remove(&self.ip);
            }
        }
    }
}

/// When a refused connection may be logged: at most once per interval per reason,
/// with how many were refused for that reason since the previous line.
#[derive(Debug)]
struct RefusalLog {
    interval: Duration,
    reasons: BTreeMap<RefusalReason, WarnLimiter>,
}

impl RefusalLog {
    fn new(interval: Duration) -> Self {
        RefusalLog {
            interval,
            reasons: BTreeMap::new(),
        }
    }

    /// A connection was refused for `reason` at `now`: `Some(refusals for that reason
    /// since the last line, this one included)` if a line is due, `None` if not.
    fn refused(&mut self, reason: RefusalReason, now: Instant) -> Option<u64> {
        self.reasons
            .entry(reason)
            .or_insert_with(|| WarnLimiter::new(self.interval))
            .check(now)
            .map(|held_back| held_back + 1)
    }
}

/// Why a socket was refused after it was accepted.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// Its handshake failed.
    #[error("{0}")]
    Handshake(#[from] HandshakeError),
    /// TLS failed, or the peer's certificate does not name the node it claims to be.
    #[error("{0}")]
    Tls(TlsFailure),
    /// The registry refused it (the node is closing, or has as many established
    /// inbound connections as it takes).
    #[error("{0}")]
    Registry(RefusalReason),
}

impl Refused {
    /// The reason it is counted under.
    fn reason(&self) -> RefusalReason {
        match self {
            Refused::Handshake(e) => e.into(),
            Refused::Tls(failure) => RefusalReason::Tls(*failure),
            Refused::Registry(reason) => *reason,
        }
    }
}

async fn handshake(tcp: TcpStream, env: Arc<InboundEnv>) -> Result<(), Refused> {
    crate::node::transport::configure(&tcp);
    let source = tcp.peer_addr().ok();
    // TLS and the handshake share one deadline.
    let timeout = env.config.handshake_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let (mut stream, binding, cert) = match &env.config.tls {
        Some(tls) => {
            let (stream, binding, cert) = tokio::time::timeout_at(deadline, tls.accept(tcp))
                .await
                .map_err(|_| HandshakeError::Timeout)?
                .map_err(|reason| match reason {
                    DisconnectReason::Tls(failure) => Refused::Tls(failure),
                    _ => Refused::Handshake(HandshakeError::Closed),
                })?;
            (stream, Some(binding), Some(cert))
        }
        None => (Stream::Plain(tcp), None, None),
    };
    let mut config = AcceptorConfig::new(env.node);
    if env.config.tls.is_none() {
        // No payload CRC only where TLS protects the bytes.
        config.framings = config.framings.without(Framing::Unprotected);
    }
    // Checked when the node started: a key or none.
    let mut acceptor = match env.config.cluster_key().and_then(Result::ok) {
        Some(key) => Acceptor::with_auth(config, &key, fresh_nonce(), Instant::now(), timeout),
        None => Acceptor::new(config, Instant::now(), timeout),
    };
    if let Some(binding) = binding {
        acceptor = acceptor.bind_to_channel(binding);
    }
    // With a cluster secret, the Hello comes out only after the peer's Proof checked
    // out: nothing below (the peer's address, the registry, the receiving actor)
    // ever sees an unauthenticated peer.
    let (mut acceptor, hello) = read_hello(&mut stream, acceptor, deadline).await?;
    // Over TLS, the certificate must name the node the Hello claims to be.
    if let Some(cert) = cert {
        if let Err(failure) = TlsConfig::check_peer(&cert, hello.node_id, &env.config.cluster_name)
        {
            if acceptor.reject(RejectReason::Unauthorized).is_ok() {
                if let Some(out) = acceptor.poll_transmit() {
                    let _ = write_all_flush(&mut stream, &out).await;
                }
            }
            return Err(Refused::Tls(failure));
        }
    }
    // A peer that announces an unspecified IP (it listens on all of its addresses)
    // is reached at the IP its connection came from, on the port it announced.
    let mut addr = hello.listen_addr;
    if addr.ip().is_unspecified() {
        if let Some(from) = source {
            // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`.
            addr.set_ip(from.ip().to_canonical());
        }
    }
    env.registry.do_send(SetPeer {
        peer: hello.node_id,
        addr: addr.into(),
        only_if_unknown: true,
    });
    // The registry wakes this node's links to the peer and finds (or starts) the
    // receiving actor of the link, which answers the Hello.
    let receiver = env
        .registry
        .send(Receiver {
            peer: hello.node_id,
            kind: hello.link_kind,
        })
        .await
        .map_err(|_| Refused::Registry(RefusalReason::Closed))?
        .map_err(Refused::Registry)?;
    receiver.do_send(Attach {
        stream,
        acceptor,
        hello,
    });
    Ok(())
}

/// Reads a Hello with the acceptor's machine, until `deadline` (with a cluster
/// secret: also writes the Challenge and reads the Proof). A Hello the acceptor
/// rejects by itself (wrong version, self-connect, framing, authentication) gets its
/// Reject before the error is returned.
async fn read_hello(
    stream: &mut Stream,
    mut acceptor: Acceptor,
    deadline: tokio::time::Instant,
) -> Result<(Acceptor, Hello), HandshakeError> {
    let run = async {
        let mut buf = [0u8; 512];
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|_| acceptor.handle_eof())?;
            if n == 0 {
                return Err(acceptor.handle_eof());
            }
            match acceptor.handle_input(&buf[..n], Instant::now()) {
                Ok(Some(hello)) => return Ok(hello),
                Ok(None) => {
                    // The Challenge, with a cluster secret.
                    if let Some(out) = acceptor.poll_transmit() {
                        write_all_flush(stream, &out)
                            .await
                            .map_err(|_| acceptor.handle_eof())?;
                    }
                }
                Err(e) => {
                    if let Some(out) = acceptor.poll_transmit() {
                        let _ = write_all_flush(stream, &out).await;
                    }
                    return Err(e);
                }
            }
        }
    };
    let hello = tokio::time::timeout_at(deadline, run)
        .await
        .map_err(|_| HandshakeError::Timeout)??;
    Ok((acceptor, hello))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_slots_are_bounded_in_all_and_per_address_and_given_back() {
        let limits = AdmissionLimits::default()
            .handshakes(3)
            .handshakes_per_ip(2);
        let h = Rc::new(RefCell::new(Handshakes::new(limits)));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = Handshakes::enter(&h, a).unwrap();
        let a2 = Handshakes::enter(&h, a).unwrap();
        assert_eq!(
            Handshakes::enter(&h, a).err(),
            Some(RefusalReason::TooManyFromIp)
        );
        let b1 = Handshakes::enter(&h, b).unwrap();
        assert_eq!(
            Handshakes::enter(&h, b).err(),
            Some(RefusalReason::TooManyHandshakes)
        );
        drop(a1);
        let a3 = Handshakes::enter(&h, a).unwrap();
        drop((a2, a3, b1));
        assert_eq!(h.borrow().total, 0);
        assert!(h.borrow().per_ip.is_empty(), "no address kept once done");
    }

    #[test]
    fn refusals_are_logged_once_per_interval_per_reason_with_the_count() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut log = RefusalLog::new(Duration::from_secs(1));
        assert_eq!(
            log.refused(RefusalReason::WrongMagic, t0),
            Some(1),
            "the first is logged"
        );
        for i in 1..=5 {
            assert_eq!(
                log.refused(RefusalReason::WrongMagic, ms(i * 100)),
                None,
                "held back"
            );
        }
        // Another reason has a limiter of its own.
        assert_eq!(log.refused(RefusalReason::Timeout, ms(600)), Some(1));
        assert_eq!(log.refused(RefusalReason::Timeout, ms(700)), None);
        assert_eq!(
            log.refused(RefusalReason::WrongMagic, ms(999)),
            None,
            "within the second"
        );
        // A second after the last line: the six held back and this one.
        assert_eq!(log.refused(RefusalReason::WrongMagic, ms(1000)), Some(7));
        assert_eq!(log.refused(RefusalReason::WrongMagic, ms(1500)), None);
        assert_eq!(log.refused(RefusalReason::Timeout, ms(1600)), Some(2));
        // After a quiet spell the next one is logged at once, as one.
        assert_eq!(log.refused(RefusalReason::Timeout, ms(5000)), Some(1));
        assert_eq!(log.refused(RefusalReason::WrongMagic, ms(5000)), Some(2));
    }
}
