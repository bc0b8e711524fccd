//! One connection's state machine. Every state transition of a connection happens in this
//! file; each state holds exactly the data it needs, so an illegal combination (an attempt
//! without a transport, an idle connection with an exchange) cannot be written down.
//!
//! ```text
//!               answer                  won (http)
//!  Resolving ──────────► Connecting ─────────────────────────► Active ──► Idle (pooled)
//!      │                    │   │ won (https)          done ▲    │  ▲        │
//!      │                    │   └──────────► Handshaking ───┘    │  └────────┘ reused
//!      │                    │                     │              │           │
//!      └────────────────────┴─────────────────────┴──────────────┴───────────┴─► Closed
//!        error / timeout: the attempt ends with an error   response done, not reusable;
//!                                                          idle expired or peer closed
//! ```
//!
//! The handlers ([`Slot::on_ready`], [`Slot::on_timeout`], [`Slot::on_resolved`],
//! [`Slot::reuse`], [`Slot::on_descriptor`]) return a [`Transition`] saying what happened.
//! An attempt leaves a connection only by value, inside [`Transition::Ended`]; the loop
//! (`mod.rs`) alone frees slab entries, hands results up and touches the pool, so a request
//! cannot be completed twice or dropped silently.
//!
//! Owns sockets, the TLS session and the HTTP exchange of one connection; it moves bytes
//! between the socket and [`Exchange`] and never parses HTTP itself.

use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::Registry;

use super::connect::{Race, RaceStep};
use super::timer::{Timer, TimerTable, later};
use super::token;
use super::transport::Transport;
use super::{Config, Exchanged, Failure};
use crate::error::{Error, ErrorKind, Phase, io_words};
use crate::policy;
use crate::proto::{
    ConnectReader, ContentDecoder, Event, Exchange, Fed, FeedError, Framing, Headers, RequestInfo,
    ResponseHead, SocksError, SocksHandshake, SocksTarget, encode_connect, encode_proxy_request,
    encode_request,
};
use crate::proxy::{Proxy, ProxyKind};
use crate::response::{Timings, TlsInfo, Wire};
use crate::task::{Route, Task};
use crate::tls::{TlsStream, client_config, server_name, tls_cause, tls_words};

/// Most body bytes reserved up front from a `Content-Length`: small bodies get one exact
/// allocation; a large (or lying) length gets no more than this until bytes arrive, so a
/// server cannot make us reserve memory by declaring it.
const PREALLOCATE_MAX: u64 = 64 * 1024;

/// What the loop hands a handler: the registry, the shared read buffer, the configuration,
/// the turn's `now`, and a flag to raise when a socket closed.
pub(crate) struct Cx<'a> {
    pub registry: &'a Registry,
    pub buf: &'a mut [u8],
    pub config: &'a Config,
    /// Built on the first https connection, then shared (sessions resume across it).
    pub tls: &'a mut Option<Arc<rustls::ClientConfig>>,
    /// The same for https proxies, whose certificates have their own trust settings.
    pub proxy_tls: &'a mut Option<Arc<rustls::ClientConfig>>,
    pub now: Instant,
    /// The slot's slab key (for its tokens).
    pub key: usize,
    /// Set when a socket closed: connections waiting for a descriptor may try again.
    pub closed: bool,
}

/// What a readiness event said about a socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Readiness {
    pub readable: bool,
    pub writable: bool,
    /// The peer closed (or the socket failed): its EOF is already pending, and no new edge
    /// will announce it, so reads go on until they see it.
    pub closed: bool,
}

/// An established connection: the byte pipe and what is known of its peer.
pub(crate) struct Link {
    transport: Transport,
    remote: SocketAddr,
    tls: Option<TlsInfo>,
    /// Bytes a proxy passed on with its handshake reply: the tunnel's first bytes, read
    /// before the socket.
    pending: Vec<u8>,
}

impl Link {
    fn close(mut self, cx: &mut Cx<'_>) {
        self.transport.deregister(cx.registry);
        cx.closed = true;
    }
}

/// A connection's state, with each state's data inside it.
pub(crate) enum Conn {
    /// Waiting for the resolver.
    Resolving { attempt: Attempt },
    /// Racing connection attempts to the resolved addresses.
    Connecting { attempt: Attempt, race: Race },
    /// Connected to a proxy; the CONNECT or SOCKS handshake is under way.
    Proxying {
        attempt: Attempt,
        link: Link,
        tunnel: Tunnel,
    },
    /// Connected; a TLS handshake is under way (`link` holds a TLS transport): with an https
    /// proxy (`to_proxy`), or with the origin.
    Handshaking {
        attempt: Attempt,
        link: Link,
        to_proxy: bool,
    },
    /// A request is being written or its response read.
    Active {
        attempt: Attempt,
        link: Link,
        exchange: Exchange,
    },
    /// Pooled, waiting for the next request to its origin.
    Idle { link: Link, since: Instant },
    /// Terminal: the loop frees the slot.
    Closed,
}

impl Conn {
    /// Closes whatever sockets the state holds and gives back its attempt, if any (a
    /// connection torn down from outside a transition: the loop fails that attempt).
    pub(crate) fn shut(self, cx: &mut Cx<'_>) -> Option<Attempt> {
        match self {
            Conn::Resolving { attempt } => Some(attempt),
            Conn::Connecting { attempt, mut race } => {
                cx.closed |= race.close(cx.registry);
                Some(attempt)
            }
            Conn::Proxying { attempt, link, .. }
            | Conn::Handshaking { attempt, link, .. }
            | Conn::Active { attempt, link, .. } => {
                link.close(cx);
                Some(attempt)
            }
            Conn::Idle { link, .. } => {
                link.close(cx);
                None
            }
            Conn::Closed => None,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self, Conn::Closed)
    }

    pub(crate) fn is_resolving(&self) -> bool {
        matches!(self, Conn::Resolving { .. })
    }

    pub(crate) fn idle_since(&self) -> Option<Instant> {
        match self {
            Conn::Idle { since, .. } => Some(*since),
            _ => None,
        }
    }
}

/// What the loop must do after a handler ran.
// `Ended` is large, but a transition is moved once, straight from the handler to the loop,
// which moves its parts on: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Transition {
    /// Nothing: the connection waits for its next event or deadline.
    Stay,
    /// Resolve the slot's next name (the origin's came first; now the proxy's).
    Resolve,
    /// No socket could be made (out of file descriptors): call
    /// [`Slot::on_descriptor`] when one was freed.
    NeedDescriptor,
    /// The attempt ended. With `parked` the connection is now `Idle` and may be pooled;
    /// otherwise it is `Closed`.
    Ended {
        task: Task,
        result: Result<Exchanged, Failure>,
        parked: bool,
    },
    /// An idle connection ended (expired, or the peer closed it or sent junk).
    Closed,
}

/// One slab entry: a connection and what the loop needs to route events and deadlines.
pub(crate) struct Slot {
    pub generation: u32,
    /// The origin and the proxy this connection goes through.
    pub route: Route,
    /// The lane of the connection attempt that won: events of the losers' lanes that were
    /// already queued must not reach it.
    pub lane: u8,
    pub timers: TimerTable,
    /// The deadline this slot has in the loop's heap (a later one there is stale).
    pub scheduled: Option<Instant>,
    /// The origin's address, resolved here for a SOCKS5 proxy (which is given an address).
    pub target: Option<SocketAddr>,
    pub conn: Conn,
}

impl Slot {
    /// A new connection for `attempt`, waiting to be resolved.
    pub(crate) fn new(generation: u32, route: Route, attempt: Attempt, now: Instant) -> Slot {
        let mut timers = TimerTable::default();
        timers.set(
            Timer::Connect,
            later(now, attempt.task.knobs.connect_timeout),
        );
        if let Some(t) = attempt.task.knobs.timeout {
            timers.set(Timer::Total, later(now, t));
        }
        Slot {
            generation,
            route,
            lane: 0,
            timers,
            scheduled: None,
            target: None,
            conn: Conn::Resolving { attempt },
        }
    }

    fn take(&mut self) -> Conn {
        std::mem::replace(&mut self.conn, Conn::Closed)
    }

    /// A handler took a state its caller rules out: put it back untouched, so nothing it
    /// holds (an attempt above all) is lost. Debug builds stop here.
    fn put_back(&mut self, conn: Conn, what: &str) -> Transition {
        self.conn = conn;
        if cfg!(debug_assertions) {
            panic!("parafetch driver: {what}");
        }
        Transition::Stay
    }

    /// The resolver answered.
    pub(crate) fn on_resolved(
        &mut self,
        answer: Result<Vec<SocketAddr>, Error>,
        cx: &mut Cx<'_>,
    ) -> Transition {
        if self.route.resolves_target_here() && self.target.is_none() {
            // The origin's address, for the SOCKS5 request; the proxy's name comes next.
            // IPv4 first: SOCKS proxies reach IPv4 far more often than IPv6.
            let pick = |a: &Vec<SocketAddr>| a.iter().find(|s| s.is_ipv4()).or(a.first()).copied();
            if let Ok(Some(addr)) = answer.as_ref().map(pick) {
                self.target = Some(addr);
                return Transition::Resolve;
            }
        }
        let mut attempt = match self.take() {
            Conn::Resolving { attempt } => attempt,
            other => return self.put_back(other, "an answer for a connection not resolving"),
        };
        attempt.mark(|t, d| t.resolve = d);
        match answer {
            Ok(addrs) if !addrs.is_empty() => {
                let race = Race::new(addrs);
                self.conn = Conn::Connecting { attempt, race };
                self.advance_race(cx)
            }
            Ok(_) => {
                let err = Error::new(ErrorKind::Dns, Phase::Resolve, "no addresses");
                end_with_error(attempt, err, None, false)
            }
            Err(err) => end_with_error(attempt, err, None, false),
        }
    }

    /// A descriptor was freed after [`Transition::NeedDescriptor`]: try again.
    pub(crate) fn on_descriptor(&mut self, cx: &mut Cx<'_>) -> Transition {
        match self.conn {
            Conn::Connecting { .. } => self.advance_race(cx),
            _ => Transition::Stay,
        }
    }

    /// Puts an attempt on this pooled connection.
    pub(crate) fn reuse(&mut self, mut attempt: Attempt, cx: &mut Cx<'_>) -> Transition {
        let link = match self.take() {
            Conn::Idle { link, .. } => link,
            other => {
                self.put_back(other, "reuse of a connection that is not idle");
                return end_with_error(attempt, internal("pooled connection lost"), None, false);
            }
        };
        attempt.reused = true;
        self.timers = TimerTable::default();
        if let Some(t) = attempt.task.knobs.timeout {
            self.timers.set(Timer::Total, later(cx.now, t));
        }
        self.begin_exchange(attempt, link, cx)
    }

    /// A readiness event for this connection's socket on `lane`.
    pub(crate) fn on_ready(&mut self, lane: u8, r: Readiness, cx: &mut Cx<'_>) -> Transition {
        if lane != self.lane && !matches!(self.conn, Conn::Connecting { .. }) {
            return Transition::Stay; // a losing attempt's event, queued before it was dropped
        }
        match &mut self.conn {
            Conn::Connecting { .. } => self.on_connect_event(lane, cx),
            Conn::Proxying { .. } => self.on_tunnel_event(cx),
            Conn::Handshaking { .. } => self.on_handshake_event(cx),
            Conn::Active { .. } => self.pump(r, cx),
            Conn::Idle { link, .. } => {
                // A parked connection became readable: the server closed it or sent junk.
                match link.transport.read(cx.buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Transition::Stay,
                    _ => {
                        self.take().shut(cx);
                        Transition::Closed
                    }
                }
            }
            Conn::Resolving { .. } | Conn::Closed => Transition::Stay,
        }
    }

    /// A deadline of this connection may have passed: acts on the first one that did.
    pub(crate) fn on_timeout(&mut self, cx: &mut Cx<'_>) -> Transition {
        let Some(timer) = self.timers.expired(cx.now) else {
            return Transition::Stay;
        };
        self.timers.stop(timer);
        match (timer, &self.conn) {
            (Timer::Race, Conn::Connecting { .. }) => self.advance_race(cx),
            (_, Conn::Idle { .. }) => {
                self.take().shut(cx);
                Transition::Closed
            }
            (Timer::Race | Timer::Pool, _) | (_, Conn::Closed) => Transition::Stay,
            (timer, _) => {
                let err = self.timeout_error(timer);
                self.fail(err, cx)
            }
        }
    }

    /// What a passed deadline means in the current state.
    fn timeout_error(&self, timer: Timer) -> Error {
        let knobs = match &self.conn {
            Conn::Resolving { attempt }
            | Conn::Connecting { attempt, .. }
            | Conn::Proxying { attempt, .. }
            | Conn::Handshaking { attempt, .. }
            | Conn::Active { attempt, .. } => attempt.task.knobs,
            Conn::Idle { .. } | Conn::Closed => {
                return Error::new(ErrorKind::Timeout, self.phase(), "timed out");
            }
        };
        let msg = match (timer, &self.conn) {
            (Timer::Total, _) => format!(
                "request took longer than {:?}",
                knobs.timeout.unwrap_or_default()
            ),
            (Timer::Idle, _) => format!("no data for {:?}", knobs.idle_timeout),
            (_, Conn::Resolving { .. }) => format!(
                "name not resolved within the connect timeout of {:?}",
                knobs.connect_timeout
            ),
            (_, Conn::Proxying { .. }) => format!(
                "proxy handshake did not finish within the connect timeout of {:?}",
                knobs.connect_timeout
            ),
            (_, Conn::Handshaking { to_proxy: true, .. }) => format!(
                "tls handshake with the proxy did not finish within the connect timeout of {:?}",
                knobs.connect_timeout
            ),
            (_, Conn::Handshaking { .. }) => format!(
                "tls handshake did not finish within the connect timeout of {:?}",
                knobs.connect_timeout
            ),
            (_, Conn::Connecting { race, .. }) => match race.last_error() {
                Some(e) => format!(
                    "could not connect within {:?} (last error: {})",
                    knobs.connect_timeout,
                    io_words(e.kind())
                ),
                None => format!("could not connect within {:?}", knobs.connect_timeout),
            },
            _ => format!("could not connect within {:?}", knobs.connect_timeout),
        };
        Error::new(ErrorKind::Timeout, self.phase(), msg)
    }

    /// The phase an error or timeout now belongs to.
    fn phase(&self) -> Phase {
        match &self.conn {
            Conn::Resolving { .. } => Phase::Resolve,
            Conn::Connecting { .. } if self.route.proxy.is_some() => Phase::Proxy,
            Conn::Connecting { .. } => Phase::Connect,
            Conn::Proxying { .. } => Phase::Proxy,
            Conn::Handshaking { to_proxy: true, .. } => Phase::Proxy,
            Conn::Handshaking { .. } => Phase::Tls,
            Conn::Active {
                attempt, exchange, ..
            } => {
                if !exchange.poll_transmit().is_empty() && !exchange.received_any() {
                    Phase::SendRequest
                } else {
                    attempt.receive_phase()
                }
            }
            Conn::Idle { .. } | Conn::Closed => Phase::ReceiveHead,
        }
    }

    /// Ends the attempt with `err` and closes the connection.
    fn fail(&mut self, err: Error, cx: &mut Cx<'_>) -> Transition {
        let (reused, received) = match &self.conn {
            Conn::Resolving { .. } | Conn::Connecting { .. } => (None, false),
            Conn::Proxying { .. } | Conn::Handshaking { .. } => (Some(false), false),
            Conn::Active {
                attempt, exchange, ..
            } => (Some(attempt.reused), exchange.received_any()),
            Conn::Idle { .. } | Conn::Closed => (None, false),
        };
        match self.take().shut(cx) {
            Some(attempt) => end_with_error(attempt, err, reused, received),
            None => Transition::Closed,
        }
    }

    /// Starts attempts on the next addresses and acts on what the race says.
    fn advance_race(&mut self, cx: &mut Cx<'_>) -> Transition {
        let (key, generation) = (cx.key, self.generation);
        let Conn::Connecting { race, .. } = &mut self.conn else {
            return Transition::Stay;
        };
        let step = race.advance(
            cx.registry,
            |lane| token::conn(key, generation, lane),
            cx.now,
        );
        self.on_race_step(step, cx)
    }

    fn on_connect_event(&mut self, lane: u8, cx: &mut Cx<'_>) -> Transition {
        let (key, generation) = (cx.key, self.generation);
        let Conn::Connecting { race, .. } = &mut self.conn else {
            return Transition::Stay;
        };
        let token = |lane| token::conn(key, generation, lane);
        let step = race.on_event(lane, cx.registry, token, cx.now, &mut cx.closed);
        self.on_race_step(step, cx)
    }

    fn on_race_step(&mut self, step: RaceStep, cx: &mut Cx<'_>) -> Transition {
        match step {
            RaceStep::Running => {
                match &self.conn {
                    Conn::Connecting { race, .. } => match race.next_at {
                        Some(at) => self.timers.set(Timer::Race, at),
                        None => self.timers.stop(Timer::Race),
                    },
                    _ => self.timers.stop(Timer::Race),
                }
                Transition::Stay
            }
            RaceStep::OutOfDescriptors => {
                self.timers.stop(Timer::Race);
                Transition::NeedDescriptor
            }
            RaceStep::Lost(last) => {
                let why = last
                    .as_ref()
                    .map_or("no address worked", |e| io_words(e.kind()));
                let (phase, msg) = match &self.route.proxy {
                    // Not reaching the proxy at all is a connect failure, in its phase.
                    Some(p) => (Phase::Proxy, format!("proxy {p}: {why}")),
                    None => {
                        let o = &self.route.origin;
                        (Phase::Connect, format!("{}:{}: {why}", o.host, o.port))
                    }
                };
                let mut err = Error::new(ErrorKind::Connect, phase, msg);
                if let Some(e) = last {
                    err = err.with_source(e);
                }
                self.fail(err, cx)
            }
            RaceStep::Won { stream, addr, lane } => {
                self.timers.stop(Timer::Race);
                let mut attempt = match self.take() {
                    Conn::Connecting { attempt, .. } => attempt,
                    other => return self.put_back(other, "a won race outside connecting"),
                };
                let _ = stream.set_nodelay(true);
                self.lane = lane;
                attempt.mark(|t, d| t.connect = d);
                let link = Link {
                    transport: Transport::Plain(stream),
                    remote: addr,
                    tls: None,
                    pending: Vec::new(),
                };
                match (&self.route.proxy, self.route.origin.https) {
                    (None, true) => self.start_tls(attempt, link, cx, false),
                    (None, false) => self.begin_exchange(attempt, link, cx),
                    (Some(p), _) if p.kind() == ProxyKind::Https => {
                        self.start_tls(attempt, link, cx, true)
                    }
                    (Some(_), _) if self.route.forwards() => self.begin_exchange(attempt, link, cx),
                    (Some(_), _) => self.open_tunnel(attempt, link, cx),
                }
            }
        }
    }

    /// Starts the handshake (CONNECT or SOCKS) that makes the connection to the proxy a
    /// tunnel to the origin.
    fn open_tunnel(&mut self, attempt: Attempt, link: Link, cx: &mut Cx<'_>) -> Transition {
        let Some(proxy) = self.route.proxy.clone() else {
            return self.begin_exchange(attempt, link, cx);
        };
        match Tunnel::open(&proxy, &self.route, self.target, attempt.task(), cx) {
            Ok(tunnel) => {
                self.conn = Conn::Proxying {
                    attempt,
                    link,
                    tunnel,
                };
                self.on_tunnel_event(cx)
            }
            Err(err) => {
                link.close(cx);
                end_with_error(attempt, err, Some(false), false)
            }
        }
    }

    /// Moves the proxy handshake along; when the tunnel opens, TLS (for https) or the
    /// exchange begins on it.
    fn on_tunnel_event(&mut self, cx: &mut Cx<'_>) -> Transition {
        let Some(proxy) = self.route.proxy.clone() else {
            return Transition::Stay;
        };
        let Conn::Proxying { link, tunnel, .. } = &mut self.conn else {
            return Transition::Stay;
        };
        match tunnel.pump(&mut link.transport, cx.buf, &proxy) {
            Ok(None) => Transition::Stay,
            Err(err) => self.fail(err, cx),
            Ok(Some(rest)) => {
                let (mut attempt, mut link) = match self.take() {
                    Conn::Proxying { attempt, link, .. } => (attempt, link),
                    other => return self.put_back(other, "a tunnel outside proxying"),
                };
                attempt.mark(|t, d| t.proxy = d);
                link.pending = rest;
                if self.route.origin.https {
                    self.start_tls(attempt, link, cx, false)
                } else {
                    self.begin_exchange(attempt, link, cx)
                }
            }
        }
    }

    /// Starts a TLS session on the link: with the proxy (`to_proxy`, an https proxy), or
    /// with the origin, directly or inside the proxy's session.
    fn start_tls(
        &mut self,
        attempt: Attempt,
        mut link: Link,
        cx: &mut Cx<'_>,
        to_proxy: bool,
    ) -> Transition {
        let phase = if to_proxy { Phase::Proxy } else { Phase::Tls };
        let (slot, options) = if to_proxy {
            (&mut *cx.proxy_tls, &cx.config.proxy_tls)
        } else {
            (&mut *cx.tls, &cx.config.tls)
        };
        let config = match slot {
            Some(c) => Arc::clone(c),
            None => match client_config(options) {
                Ok(c) => Arc::clone(slot.insert(c)),
                Err(e) => {
                    let msg = "cannot build the tls configuration";
                    let err = Error::new(ErrorKind::Tls, phase, msg).with_source(e);
                    link.close(cx);
                    return end_with_error(attempt, err, Some(false), false);
                }
            },
        };
        let host = match (&self.route.proxy, to_proxy) {
            (Some(p), true) => p.host(),
            _ => &self.route.origin.host,
        };
        let name = match server_name(host) {
            Ok(n) => n,
            Err(e) => {
                link.close(cx);
                return end_with_error(attempt, e, Some(false), false);
            }
        };
        let early = std::mem::take(&mut link.pending);
        // Records a proxy passed on with its reply go in before the socket's.
        let started = match link.transport {
            Transport::Plain(tcp) => TlsStream::new(tcp, config, name).and_then(|mut t| {
                t.feed_records(&early).map_err(|e| io_failure(e, phase))?;
                Ok(Transport::Tls(Box::new(t)))
            }),
            Transport::Tls(outer) if !to_proxy => {
                TlsStream::new(*outer, config, name).and_then(|mut t| {
                    t.feed_records(&early).map_err(|e| io_failure(e, phase))?;
                    Ok(Transport::TlsInTls(Box::new(t)))
                })
            }
            mut other => {
                other.deregister(cx.registry);
                cx.closed = true;
                let err = internal("tls over an established tls session");
                return end_with_error(attempt, err, Some(false), false);
            }
        };
        match started {
            Ok(transport) => {
                link.transport = transport;
                self.conn = Conn::Handshaking {
                    attempt,
                    link,
                    to_proxy,
                };
                self.on_handshake_event(cx)
            }
            Err(e) => {
                // The socket went with the failed session: a descriptor is free.
                cx.closed = true;
                end_with_error(attempt, e, Some(false), false)
            }
        }
    }

    /// Advances the TLS handshake; when it completes, the tunnel (to an https proxy) or
    /// the exchange begins.
    fn on_handshake_event(&mut self, cx: &mut Cx<'_>) -> Transition {
        let Conn::Handshaking { link, to_proxy, .. } = &mut self.conn else {
            return Transition::Stay;
        };
        let to_proxy = *to_proxy;
        let progress = match &mut link.transport {
            Transport::Tls(t) => t.handshake().map(|done| done.then(|| t.info())),
            Transport::TlsInTls(t) => t.handshake().map(|done| done.then(|| t.info())),
            Transport::Plain(_) => return Transition::Stay,
        };
        match progress {
            Ok(None) => Transition::Stay,
            Ok(Some(info)) => {
                let (mut attempt, mut link) = match self.take() {
                    Conn::Handshaking { attempt, link, .. } => (attempt, link),
                    other => return self.put_back(other, "a handshake outside handshaking"),
                };
                if !to_proxy {
                    link.tls = Some(info);
                    attempt.mark(|t, d| t.tls = d);
                    return self.begin_exchange(attempt, link, cx);
                }
                if self.route.forwards() {
                    attempt.mark(|t, d| t.proxy = d);
                    return self.begin_exchange(attempt, link, cx);
                }
                self.open_tunnel(attempt, link, cx)
            }
            Err(e) => {
                let words = match tls_cause(&e) {
                    Some(cause) => tls_words(cause),
                    None => format!("tls handshake failed: {}", io_words(e.kind())),
                };
                let (phase, msg) = match (&self.route.proxy, to_proxy) {
                    (Some(p), true) => (Phase::Proxy, format!("proxy {p}: {words}")),
                    _ => (Phase::Tls, words),
                };
                let err = Error::new(ErrorKind::Tls, phase, msg).with_source(e);
                self.fail(err, cx)
            }
        }
    }

    /// Encodes the request and starts writing it on an established connection.
    fn begin_exchange(&mut self, attempt: Attempt, link: Link, cx: &mut Cx<'_>) -> Transition {
        let t = &attempt.task;
        let body_len = policy::declared_length(t);
        let mut bytes = Vec::with_capacity(256 + t.body.as_ref().map_or(0, |b| b.len()));
        // A forwarding proxy reads this head: it gets the absolute form and, on this hop
        // only, the proxy's credentials (unless the caller set the field). Otherwise the
        // origin reads it: a Proxy-Authorization the caller set is for the proxy (it went on
        // the CONNECT, or there is no proxy), never for the origin.
        let forwards = self.route.forwards();
        let mut headers = Cow::Borrowed(&t.headers);
        if forwards {
            let auth = self.route.proxy.as_deref().and_then(Proxy::basic_auth);
            if let Some(value) = auth.filter(|_| !t.headers.contains("proxy-authorization")) {
                headers.to_mut().append("Proxy-Authorization", &value);
            }
        } else if t.headers.contains("proxy-authorization") {
            headers.to_mut().remove("proxy-authorization");
        }
        let encode = if forwards {
            encode_proxy_request
        } else {
            encode_request
        };
        let encoded = encode(&mut bytes, &t.method, &t.url, &headers, body_len);
        if let Err(e) = encoded {
            link.close(cx);
            let reused = Some(attempt.reused);
            return end_with_error(attempt, Error::proto(Phase::SendRequest, e), reused, false);
        }
        if let Some(b) = &t.body {
            bytes.extend_from_slice(b);
        }
        let info = RequestInfo {
            head_request: t.method.eq_ignore_ascii_case("HEAD"),
            connection_close: !cx.config.keep_alive,
        };
        let wire = t.knobs.capture_wire.then(|| Wire {
            request: captured_request(t, body_len),
            response: Vec::new(),
            sent_at: SystemTime::now(),
        });
        let mut attempt = attempt;
        attempt.wire = wire;
        let exchange = Exchange::new(bytes, info, cx.config.limits);
        self.timers.stop(Timer::Connect);
        self.timers.stop(Timer::Race);
        self.timers
            .set(Timer::Idle, later(cx.now, attempt.task.knobs.idle_timeout));
        self.conn = Conn::Active {
            attempt,
            link,
            exchange,
        };
        // The socket is writable now (just connected, or idle): no need to wait for an event.
        let r = Readiness {
            readable: false,
            writable: true,
            closed: false,
        };
        self.pump(r, cx)
    }

    /// Moves bytes on an active connection and acts on the outcome.
    fn pump(&mut self, r: Readiness, cx: &mut Cx<'_>) -> Transition {
        let Conn::Active {
            attempt,
            link,
            exchange,
        } = &mut self.conn
        else {
            return Transition::Stay;
        };
        let before = attempt.activity;
        let step = pump(link, exchange, attempt, cx.buf, r);
        if attempt.activity != before {
            // Bytes moved: the connection is not idle.
            self.timers
                .set(Timer::Idle, later(cx.now, attempt.task.knobs.idle_timeout));
        }
        match step {
            Step::Wait => Transition::Stay,
            Step::Done => self.finish(cx),
            Step::Fail(e) => self.fail(e, cx),
        }
    }

    /// The response is complete: hand it up, and park the connection if it can carry
    /// another request.
    fn finish(&mut self, cx: &mut Cx<'_>) -> Transition {
        let (attempt, mut link, exchange) = match self.take() {
            Conn::Active {
                attempt,
                link,
                exchange,
            } => (attempt, link, exchange),
            other => return self.put_back(other, "a finished exchange outside active"),
        };
        let Some(head) = attempt.head else {
            // The exchange ended without a head: impossible by its contract; fail safe.
            link.close(cx);
            let err = Error::new(
                ErrorKind::Malformed,
                Phase::ReceiveHead,
                "response ended without a head",
            );
            let reused = Some(attempt.reused);
            return end_with_error(attempt, err, reused, true);
        };
        let mut reusable =
            cx.config.keep_alive && exchange.close_reason().is_none() && !attempt.spent;
        if reusable && attempt.probe {
            // Bytes (or an EOF) left unread would never raise a new edge: the next request
            // would read them as its response. Pool only a drained socket.
            reusable = matches!(
                link.transport.read(cx.buf),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            );
        }
        let mut timings = attempt.timings;
        timings.total = attempt.start.elapsed();
        let lifetime = policy::pooled_lifetime(&head.headers, cx.config.pool_idle_timeout);
        let exchanged = Exchanged {
            head,
            body: attempt.body,
            body_len: attempt.body_len,
            remote: link.remote,
            timings,
            reused: attempt.reused,
            tls: link.tls.clone(),
            content_encoding_left: attempt.encoding.filter(|_| !attempt.decoded),
            wire: attempt.wire,
        };
        let parked = reusable && !lifetime.is_zero();
        self.timers = TimerTable::default();
        if parked {
            self.timers.set(Timer::Pool, later(cx.now, lifetime));
            self.conn = Conn::Idle {
                link,
                since: cx.now,
            };
        } else {
            link.close(cx);
        }
        Transition::Ended {
            task: attempt.task,
            result: Ok(exchanged),
            parked,
        }
    }
}

/// An attempt's end with an error, for the loop.
fn end_with_error(
    attempt: Attempt,
    error: Error,
    reused: Option<bool>,
    received: bool,
) -> Transition {
    Transition::Ended {
        task: attempt.task,
        result: Err(Failure {
            error,
            reused,
            received_any: received,
            status: attempt.head.as_ref().map(|h| h.status),
        }),
        parked: false,
    }
}

fn internal(msg: &str) -> Error {
    Error::new(
        ErrorKind::Io,
        Phase::Prepare,
        format!("internal error: {msg}"),
    )
}

/// One attempt: a task on its way through one connection.
pub(crate) struct Attempt {
    task: Task,
    start: Instant,
    phase_start: Instant,
    /// Counts socket progress, so the handler knows to push the idle deadline.
    activity: u64,
    head: Option<ResponseHead>,
    body: Vec<u8>,
    body_len: u64,
    timings: Timings,
    reused: bool,
    /// Bytes arrived after the response ended, or the peer had already closed: the
    /// connection is not reusable.
    spent: bool,
    /// The response will be followed or retried, not delivered: its body is dropped.
    discard_body: bool,
    /// The response ended without the socket having been read to WouldBlock (TLS reads a
    /// record at a time; a full buffer may hide more): read once more before pooling.
    probe: bool,
    /// Decodes the body's content codings when content decoding is on and it knows them.
    decoder: Option<ContentDecoder>,
    /// The response's `Content-Encoding` (its fields joined), when it names a coding.
    encoding: Option<String>,
    /// Whether that coding is decoded (else the body is delivered as sent).
    decoded: bool,
    /// The exchange's bytes, when the task asked to capture them.
    wire: Option<Wire>,
}

impl Attempt {
    pub(crate) fn new(task: Task, now: Instant) -> Attempt {
        Attempt {
            task,
            start: now,
            phase_start: now,
            activity: 0,
            head: None,
            body: Vec::new(),
            body_len: 0,
            timings: Timings::default(),
            reused: false,
            spent: false,
            discard_body: false,
            probe: false,
            decoder: None,
            encoding: None,
            decoded: false,
            wire: None,
        }
    }

    pub(crate) fn task(&self) -> &Task {
        &self.task
    }

    pub(crate) fn into_task(self) -> Task {
        self.task
    }

    /// Ends a phase: records its duration through `set` and starts the next one. Timings
    /// read the clock afresh, not the loop turn's `now`: a turn can connect, handshake and
    /// read a reply (a fast local peer), and those phases must not read as zero.
    fn mark(&mut self, set: impl FnOnce(&mut Timings, Duration)) {
        let now = Instant::now();
        set(&mut self.timings, now - self.phase_start);
        self.phase_start = now;
    }

    fn receive_phase(&self) -> Phase {
        if self.head.is_some() {
            Phase::ReceiveBody
        } else {
            Phase::ReceiveHead
        }
    }

    /// The final head arrived: decide what happens to the body.
    fn on_head(&mut self, head: ResponseHead, framing: Option<Framing>) -> Result<(), Error> {
        if let Some(Framing::Length(n)) = framing {
            if n > self.task.knobs.max_body {
                return Err(too_large_body(self.task.knobs.max_body));
            }
        }
        self.discard_body = policy::is_intermediate(&self.task, head.status, &head.headers);
        self.encoding = content_encoding(&head.headers);
        self.decoded = false;
        if let Some(coding) = self
            .encoding
            .as_deref()
            .filter(|_| self.task.knobs.decompress)
        {
            if let Some(d) = ContentDecoder::for_encoding(coding) {
                self.decoded = true;
                if !matches!(framing, Some(Framing::NoBody) | None) {
                    self.decoder = Some(d);
                }
            }
        }
        if let Some(Framing::Length(n)) = framing {
            // A buffered body of known length: one allocation, not a doubling series.
            let buffered = self.task.sink.is_none() && self.decoder.is_none() && !self.discard_body;
            if buffered {
                self.body.reserve_exact(n.min(PREALLOCATE_MAX) as usize);
            }
        }
        self.head = Some(head);
        Ok(())
    }

    /// Body bytes from the exchange: decoded if asked, then delivered. The decoder hands
    /// back at most `OUT_STEP` bytes a call and the limit is checked after each, so a bomb
    /// stops within one step past the limit, holding no more than the decoder's window.
    fn on_body(&mut self, data: &[u8]) -> Result<(), Error> {
        let Some(mut d) = self.decoder.take() else {
            return self.deliver(data);
        };
        let mut rest = data;
        let result = loop {
            let out = match d.decode(rest) {
                Ok((used, out)) => {
                    rest = &rest[used..];
                    out
                }
                Err(e) => break Err(self.bad_encoding(e)),
            };
            if out.is_empty() {
                break Ok(()); // all taken; the decoder wants more
            }
            if let Err(e) = self.deliver(out) {
                break Err(e);
            }
        };
        self.decoder = Some(d);
        result
    }

    /// The body ended: drain the decoder, which checks that every coding ended.
    fn on_end(&mut self) -> Result<(), Error> {
        let Some(mut d) = self.decoder.take() else {
            return Ok(());
        };
        loop {
            match d.finish() {
                Ok([]) => return Ok(()),
                Ok(out) => self.deliver(out)?,
                Err(e) => return Err(self.bad_encoding(e)),
            }
        }
    }

    /// A body that cannot be decoded: `malformed`, naming the codings as sent; the source
    /// says which one failed and how.
    fn bad_encoding(&self, e: io::Error) -> Error {
        let coding = self.encoding.as_deref().unwrap_or_default();
        let msg = format!("cannot decode the body's content-encoding ({coding})");
        Error::new(ErrorKind::Malformed, Phase::ReceiveBody, msg).with_source(e)
    }

    /// Counted against the limit, then sunk, kept or (for an intermediate response) dropped.
    fn deliver(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        self.body_len += data.len() as u64;
        if self.body_len > self.task.knobs.max_body {
            return Err(too_large_body(self.task.knobs.max_body));
        }
        if self.discard_body {
            return Ok(());
        }
        match &mut self.task.sink {
            Some(sink) => {
                self.task.sink_used = true;
                // The sink is the caller's code: a panic there fails this request, and is
                // resumed once the turn is over (the loop's state stays whole).
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(data)));
                let written = match ran {
                    Ok(w) => w,
                    Err(payload) => {
                        crate::unwind::park(payload);
                        let msg = "the body sink panicked";
                        return Err(Error::new(ErrorKind::Io, Phase::ReceiveBody, msg));
                    }
                };
                written.map_err(|e| {
                    let msg = format!("the body sink failed: {}", io_words(e.kind()));
                    Error::new(ErrorKind::Io, Phase::ReceiveBody, msg).with_source(e)
                })?;
            }
            None => self.body.extend_from_slice(data),
        }
        Ok(())
    }
}

/// The `Content-Encoding` fields, joined as one list (RFC 9110 §5.3), when they name a
/// coding other than `identity`.
fn content_encoding(headers: &Headers) -> Option<String> {
    let mut fields = headers.get_all("content-encoding");
    let first = fields.next()?;
    let mut value = first.trim_matches([' ', '\t']).to_owned();
    for more in fields {
        value.push_str(", ");
        value.push_str(more.trim_matches([' ', '\t']));
    }
    (!ContentDecoder::is_identity(&value)).then_some(value)
}

fn too_large_body(max: u64) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        Phase::ReceiveBody,
        format!("body exceeds the limit of {max} bytes"),
    )
}

/// An I/O error on an established connection: TLS failures are `tls`, the rest `io`.
fn io_failure(e: io::Error, phase: Phase) -> Error {
    match tls_cause(&e) {
        Some(cause) => Error::new(ErrorKind::Tls, phase, tls_words(cause)).with_source(e),
        None => Error::io(ErrorKind::Io, phase, e),
    }
}

/// The outcome of moving bytes on an active connection.
enum Step {
    Wait,
    Done,
    Fail(Error),
}

/// Writes what the exchange has to send, then reads until `WouldBlock`. A short read means
/// the socket was drained (with edge-triggered readiness new data brings a new edge), unless
/// the event said the peer closed: then the EOF is pending and must be read now.
fn pump(link: &mut Link, ex: &mut Exchange, a: &mut Attempt, buf: &mut [u8], r: Readiness) -> Step {
    if !link.pending.is_empty() {
        // A proxy passed these on with its handshake reply: they were read first.
        let early = std::mem::take(&mut link.pending);
        a.activity += 1;
        match feed(ex, a, &early) {
            Err(e) => return Step::Fail(e),
            Ok(true) => {
                a.spent = true; // the peer spoke before it was asked: never reuse
                return Step::Done;
            }
            Ok(false) => {}
        }
    }
    let t = &mut link.transport;
    if r.writable {
        // TLS records left over from an earlier write go first.
        if let Err(e) = t.flush() {
            return Step::Fail(io_failure(e, Phase::SendRequest));
        }
        while !ex.poll_transmit().is_empty() {
            let data = ex.poll_transmit();
            match t.write(data) {
                Ok(0) => {
                    let e = io::Error::from(io::ErrorKind::WriteZero);
                    return Step::Fail(Error::io(ErrorKind::Io, Phase::SendRequest, e));
                }
                Ok(n) => {
                    // A short TCP write means the socket buffer is full (a writable edge
                    // follows); TLS takes less when its record buffer is full, and says
                    // WouldBlock itself when the socket is.
                    let full = n < data.len() && !t.is_tls();
                    ex.handle_transmitted(n);
                    a.activity += 1; // a slow upload in progress is not idle
                    if full {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The server may have answered early and closed: read what it said first.
                Err(_) if ex.received_any() || r.readable => break,
                Err(e) => return Step::Fail(io_failure(e, Phase::SendRequest)),
            }
        }
    }
    if !r.readable {
        return Step::Wait;
    }
    loop {
        match t.read(buf) {
            Ok(0) => {
                let phase = a.receive_phase();
                return match ex.handle_eof() {
                    Ok(_) if ex.is_done() => match a.on_end() {
                        Ok(()) => Step::Done,
                        Err(e) => Step::Fail(e),
                    },
                    Ok(_) => Step::Fail(Error::new(
                        ErrorKind::Truncated,
                        phase,
                        "connection closed early",
                    )),
                    Err(e) => Step::Fail(Error::proto(phase, e)),
                };
            }
            Ok(n) => {
                if !ex.received_any() {
                    a.timings.first_byte = a.start.elapsed();
                }
                a.activity += 1;
                match feed(ex, a, &buf[..n]) {
                    Err(e) => return Step::Fail(e),
                    Ok(true) => {
                        // The event said the peer closed: its EOF is pending behind the
                        // response and no new edge will announce it. Pooling this
                        // connection would hand the next request a dead socket.
                        a.spent |= r.closed;
                        a.probe = t.is_tls() || n == buf.len();
                        return Step::Done;
                    }
                    // TLS plaintext comes a record at a time: only TCP may take the shortcut.
                    Ok(false) if n < buf.len() && !r.closed && !t.is_tls() => return Step::Wait,
                    Ok(false) => {}
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && t.is_tls() => {
                // TCP closed without close_notify. A length or chunked body knows its end
                // (the exchange says truncated or not); a close-delimited one cannot be
                // trusted complete: an attacker could have cut it. We refuse it.
                let phase = a.receive_phase();
                let err = match ex.handle_eof() {
                    Err(pe) => Error::proto(phase, pe),
                    Ok(_) => Error::new(
                        ErrorKind::Truncated,
                        phase,
                        "server closed the tls connection without close_notify: \
                         the close-delimited body may be truncated",
                    ),
                };
                return Step::Fail(err.with_source(e));
            }
            Err(e) => return Step::Fail(io_failure(e, a.receive_phase())),
        }
    }
}

/// The request as the origin reads it, for [`Wire::request`]: origin form, no
/// proxy credentials, and (unless the task keeps secrets) credentials and cookies
/// redacted.
fn captured_request(t: &Task, body_len: Option<u64>) -> Vec<u8> {
    let mut headers = Headers::new();
    for (name, value) in t.headers.iter() {
        let secret = ["authorization", "cookie"]
            .iter()
            .any(|s| name.eq_ignore_ascii_case(s));
        if name.eq_ignore_ascii_case("proxy-authorization") {
            continue;
        }
        let value = if secret && !t.knobs.capture_secrets {
            "<redacted>"
        } else {
            value
        };
        headers.append(name, value);
    }
    let mut out = Vec::new();
    // The task's head was encoded once already: it encodes again.
    let _ = encode_request(&mut out, &t.method, &t.url, &headers, body_len);
    if let Some(b) = &t.body {
        out.extend_from_slice(b);
    }
    out
}

/// Feeds received bytes to the exchange; `Ok(true)` when the response is complete.
fn feed(ex: &mut Exchange, a: &mut Attempt, data: &[u8]) -> Result<bool, Error> {
    let fed = ex.feed(data, |event, framing| match event {
        Event::Head(head) => a.on_head(head, framing),
        Event::Body(b) => a.on_body(b),
        Event::End => a.on_end(),
    });
    if let Some(w) = &mut a.wire {
        // This exchange's bytes: not those a server sent after the response's end.
        let unread = match &fed {
            Ok(Fed::End { unread }) => *unread,
            _ => 0,
        };
        w.response
            .extend_from_slice(&data[..data.len().saturating_sub(unread)]);
    }
    match fed {
        Ok(Fed::NeedMore) => Ok(false),
        Ok(Fed::End { unread }) => {
            // Bytes after the response: the server sent more than it was asked for.
            a.spent |= unread > 0;
            Ok(true)
        }
        Err(FeedError::Handler(e)) => Err(e),
        Err(FeedError::Proto(e)) => Err(Error::proto(a.receive_phase(), e)),
    }
}

/// The handshake that turns a connection to a proxy into a tunnel to the origin.
pub(crate) enum Tunnel {
    /// HTTP CONNECT (RFC 9110 §9.3.6): the request still to send, and the reply reader.
    Connect {
        out: Vec<u8>,
        sent: usize,
        reader: ConnectReader,
    },
    /// SOCKS4a or SOCKS5.
    Socks(Box<SocksHandshake>),
}

impl Tunnel {
    /// The handshake `proxy` needs to reach the route's origin. `target` is the origin's
    /// address when it was resolved here (SOCKS5).
    fn open(
        proxy: &Proxy,
        route: &Route,
        target: Option<SocketAddr>,
        task: &Task,
        cx: &Cx<'_>,
    ) -> Result<Tunnel, Error> {
        let origin = &route.origin;
        let bad = |what: &str| {
            Error::new(
                ErrorKind::Proxy,
                Phase::Proxy,
                format!("proxy {proxy}: {what}"),
            )
        };
        let literal = origin.host.trim_start_matches('[').trim_end_matches(']');
        let socks_target = || match (target, literal.parse::<IpAddr>()) {
            (Some(addr), _) => SocksTarget::Ip(addr),
            (None, Ok(ip)) => SocksTarget::Ip(SocketAddr::new(ip, origin.port)),
            (None, Err(_)) => SocksTarget::Name(origin.host.clone(), origin.port),
        };
        let socks = |r: Result<SocksHandshake, SocksError>| {
            r.map(|h| Tunnel::Socks(Box::new(h)))
                .map_err(|e| bad(e.as_str()))
        };
        match proxy.kind() {
            ProxyKind::Http | ProxyKind::Https => {
                let mut headers = Headers::new();
                if let Some(ua) = task.headers.get("user-agent") {
                    headers.append("User-Agent", ua);
                }
                // The proxy URL's credentials, else a Proxy-Authorization the caller set.
                let auth = proxy
                    .basic_auth()
                    .or_else(|| task.headers.get("proxy-authorization").map(str::to_owned));
                if let Some(auth) = auth {
                    headers.append("Proxy-Authorization", &auth);
                }
                let mut out = Vec::with_capacity(128);
                encode_connect(&mut out, &origin.host, origin.port, &headers)
                    .map_err(|e| Error::proto(Phase::Proxy, e))?;
                Ok(Tunnel::Connect {
                    out,
                    sent: 0,
                    reader: ConnectReader::new(&cx.config.limits),
                })
            }
            ProxyKind::Socks4a => socks(SocksHandshake::v4a(
                socks_target(),
                proxy.credentials().map_or("", |(user, _)| user),
            )),
            ProxyKind::Socks5 | ProxyKind::Socks5h => {
                let auth = proxy.credentials();
                socks(SocksHandshake::v5(socks_target(), auth))
            }
        }
    }

    fn poll_transmit(&self) -> &[u8] {
        match self {
            Tunnel::Connect { out, sent, .. } => &out[*sent..],
            Tunnel::Socks(h) => h.poll_transmit(),
        }
    }

    fn handle_transmitted(&mut self, n: usize) {
        match self {
            Tunnel::Connect { sent, .. } => *sent += n,
            Tunnel::Socks(h) => h.handle_transmitted(n),
        }
    }

    /// Feeds the proxy's bytes; `Some(used)` once the tunnel is open.
    fn handle_input(&mut self, input: &[u8], proxy: &Proxy) -> Result<(usize, bool), Error> {
        let refused = |msg: String| Error::new(ErrorKind::Proxy, Phase::Proxy, msg);
        match self {
            Tunnel::Connect { reader, .. } => match reader.read(input) {
                Ok((used, None)) => Ok((used, false)),
                Ok((used, Some(reply))) if reply.is_success() => Ok((used, true)),
                Ok((_, Some(reply))) => {
                    let head = &reply.head;
                    let why = match head.status {
                        407 if proxy.has_credentials() => "refused the credentials",
                        407 => "requires credentials",
                        _ => "refused the tunnel",
                    };
                    Err(refused(format!(
                        "proxy {proxy} {why} ({} {})",
                        head.status, head.reason
                    )))
                }
                Err(e) => Err(refused(format!(
                    "proxy {proxy} sent a bad CONNECT reply: {}",
                    e.as_str()
                ))),
            },
            Tunnel::Socks(h) => match h.handle_input(input) {
                Ok((used, done)) => Ok((used, done.is_some())),
                Err(e) => Err(refused(format!("socks proxy {proxy}: {}", e.as_str()))),
            },
        }
    }

    /// The proxy closed the connection before the tunnel opened.
    fn eof(&mut self, proxy: &Proxy) -> Error {
        let why = match self {
            Tunnel::Connect { reader, .. } => reader.read_eof().as_str(),
            Tunnel::Socks(h) => h.handle_eof().as_str(),
        };
        let msg = format!("proxy {proxy} closed the connection during its handshake ({why})");
        Error::new(ErrorKind::Proxy, Phase::Proxy, msg)
    }

    /// Writes what the handshake has to send, then reads the proxy's reply until the socket
    /// is drained. `Some(rest)`: the tunnel is open, and `rest` are bytes that came after
    /// the reply (the tunnel's first).
    fn pump(
        &mut self,
        t: &mut Transport,
        buf: &mut [u8],
        proxy: &Proxy,
    ) -> Result<Option<Vec<u8>>, Error> {
        let lost = |e: io::Error| {
            let msg = format!("proxy {proxy}: {}", io_words(e.kind()));
            Error::new(ErrorKind::Proxy, Phase::Proxy, msg).with_source(e)
        };
        // Records of a TLS session to the proxy left from an earlier write go first.
        t.flush().map_err(lost)?;
        while !self.poll_transmit().is_empty() {
            match t.write(self.poll_transmit()) {
                Ok(0) => return Err(lost(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.handle_transmitted(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(lost(e)),
            }
        }
        loop {
            match t.read(buf) {
                Ok(0) => return Err(self.eof(proxy)),
                Ok(n) => {
                    let (used, open) = self.handle_input(&buf[..n], proxy)?;
                    if open {
                        return Ok(Some(buf[used..n].to_vec()));
                    }
                    if !self.poll_transmit().is_empty() {
                        // The reply asked for more (SOCKS5 authentication, the request).
                        return self.pump(t, buf, proxy);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(lost(e)),
            }
        }
    }
}
