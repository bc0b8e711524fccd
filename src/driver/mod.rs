//! The mio loop: one `Poll`, a `Slab` of connections, deadlines, the resolver seam and the
//! idle-connection pool. Each slab entry is one connection's state machine:
//!
//! ```text
//!  Resolving ──► Connecting ──► [Handshaking] ──► Active ──► Idle (pooled) ──► Active ...
//!      │             │               │              │           │
//!      └─────────────┴───────────────┴──────────────┴───────────┴──► closed (slot freed)
//! ```
//!
//! Owns sockets, readiness, timers and attempts (one HTTP exchange of a task). It moves
//! bytes between sockets and [`crate::proto::Exchange`] and never parses HTTP itself; it
//! does not decide about redirects, retries or admission (the engine does).

pub(crate) mod resolve;
pub(crate) mod stub;
pub(crate) mod transport;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Poll, Token, Waker};
use slab::Slab;
use url::Url;

use crate::dns::conf::ResolvConf;
use crate::dns::hosts::Hosts;
use crate::engine::{is_idempotent, is_intermediate};
use crate::error::{Error, ErrorKind, Phase};
use crate::headers::Headers;
use crate::options::{Knobs, Options};
use crate::proto::{
    ContentDecoder, Event, Exchange, Framing, RequestInfo, ResponseHead, decode, encode_request,
};
use crate::request::Sink;
use crate::response::{Response, Timings, TlsInfo};
use crate::tls::{TlsStream, client_config, server_name, tls_cause};

use resolve::{Lookup, Resolver};
use stub::{DNS_TOKEN_BIT, Stub, StubOptions};
use transport::Transport;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("parafetch packs a slab key and a generation into a mio Token: 64-bit only");

/// The token of the resolver's waker; no slot can have it (its generation is never used).
const WAKER: Token = Token(usize::MAX);
/// Generations wrap at 24 bits (a stale event would need 16 million reuses of one slot).
const GENERATION_MASK: u32 = (1 << 24) - 1;
/// RFC 8305 §5 "Connection Attempt Delay": start the next address after this long.
const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);
/// One read buffer for the whole loop: connections own no read buffer of their own.
const READ_BUF: usize = 64 * 1024;
/// Most body bytes reserved up front from a `Content-Length`: small bodies get one exact
/// allocation; a large (or lying) length gets no more than this until bytes arrive, so a
/// server cannot make us reserve memory by declaring it.
const PREALLOCATE_MAX: u64 = 64 * 1024;

/// A token carries the slab key (bits 0–31), the slot's generation (bits 32–55), so an
/// event for a closed connection can never touch the connection that reused its slab
/// entry, and the lane (bits 56–61) of a racing connection attempt.
fn token(key: usize, generation: u32, lane: u8) -> Token {
    Token(key | ((generation as usize) << 32) | ((lane as usize & 0x3f) << 56))
}

fn untoken(t: Token) -> (usize, u32, u8) {
    (
        t.0 & 0xFFFF_FFFF,
        (t.0 >> 32) as u32 & GENERATION_MASK,
        (t.0 >> 56) as u8 & 0x3f,
    )
}

/// One logical request as the driver runs it; moved in by the engine, handed back finished.
pub(crate) struct Task {
    pub id: usize,
    pub method: String,
    pub url: Url,
    /// Every field to send, defaults already merged.
    pub headers: Headers,
    pub body: Option<Arc<[u8]>>,
    pub knobs: Knobs,
    pub sink: Option<Sink>,
    pub redirects: u32,
    pub attempts: u32,
    /// Body bytes already went to the sink: a retry would hand it a second copy.
    pub sink_used: bool,
}

/// A finished attempt, for the engine to deliver, redirect or retry.
pub(crate) struct Finished {
    pub task: Task,
    pub result: Result<Response, Error>,
}

/// Where a connection goes: connections are pooled and reused per origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    pub(crate) fn of(url: &Url) -> Origin {
        Origin {
            https: url.scheme() == "https",
            host: url.host_str().unwrap_or("").to_ascii_lowercase(),
            port: url.port_or_known_default().unwrap_or(80),
        }
    }

    fn ip_literal(&self) -> Option<IpAddr> {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }
}

enum State {
    Resolving,
    /// Happy Eyeballs (RFC 8305): attempts race, a new one starting every 250 ms (or at
    /// once when all running ones failed) while addresses remain; the first to connect wins.
    Connecting {
        addrs: Vec<SocketAddr>,
        next: usize,
        racing: Vec<Racer>,
        next_race_at: Option<Instant>,
        last_err: Option<io::Error>,
        lanes: u8,
    },
    Handshaking,
    Active,
    Idle {
        since: Instant,
    },
}

/// One connection attempt of a Happy Eyeballs race.
struct Racer {
    lane: u8,
    stream: TcpStream,
    addr: SocketAddr,
}

/// One attempt: a task on its way through one connection.
struct Attempt {
    task: Task,
    start: Instant,
    phase_start: Instant,
    connect_deadline: Instant,
    deadline: Option<Instant>,
    last_activity: Instant,
    head: Option<ResponseHead>,
    body: Vec<u8>,
    body_len: u64,
    timings: Timings,
    reused: bool,
    /// A stale pooled connection already failed this attempt once: use a new one.
    fresh_only: bool,
    /// Bytes arrived after the response ended, or the peer had already closed: the
    /// connection is not reusable.
    spent: bool,
    /// The response will be followed or retried, not delivered: its body is dropped.
    discard_body: bool,
    /// The response ended without the socket having been read to WouldBlock (TLS reads a
    /// record at a time; a full buffer may hide more): read once more before pooling.
    probe: bool,
    /// Decodes a gzip/deflate body when content decoding is on.
    decoder: Option<ContentDecoder>,
}

impl Attempt {
    fn new(task: Task, now: Instant, fresh_only: bool) -> Attempt {
        let k = task.knobs;
        Attempt {
            start: now,
            phase_start: now,
            connect_deadline: later(now, k.connect_timeout),
            deadline: k.timeout.map(|t| later(now, t)),
            last_activity: now,
            head: None,
            body: Vec::new(),
            body_len: 0,
            timings: Timings::default(),
            reused: false,
            fresh_only,
            spent: false,
            discard_body: false,
            probe: false,
            decoder: None,
            task,
        }
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
        self.discard_body = is_intermediate(&self.task, head.status, &head.headers);
        if self.task.knobs.decompress && !matches!(framing, Some(Framing::NoBody) | None) {
            self.decoder = head
                .headers
                .get("content-encoding")
                .and_then(ContentDecoder::for_encoding);
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

    /// Body bytes from the exchange: decoded if asked (in small steps, so a bomb stops at
    /// the limit), then delivered.
    fn on_body(&mut self, data: &[u8]) -> Result<(), Error> {
        let Some(mut d) = self.decoder.take() else {
            return self.deliver(data);
        };
        let mut result = Ok(());
        for piece in data.chunks(decode::STEP) {
            result = match d.push(piece) {
                Ok(out) => self.deliver(out),
                Err(e) => Err(bad_encoding(e)),
            };
            if result.is_err() {
                break;
            }
        }
        self.decoder = Some(d);
        result
    }

    /// The body ended: flush the decoder.
    fn on_end(&mut self) -> Result<(), Error> {
        match self.decoder.take() {
            Some(mut d) => match d.finish() {
                Ok(out) => self.deliver(out),
                Err(e) => Err(bad_encoding(e)),
            },
            None => Ok(()),
        }
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
                sink(data).map_err(|e| Error::io(ErrorKind::Io, Phase::ReceiveBody, e))?;
            }
            None => self.body.extend_from_slice(data),
        }
        Ok(())
    }
}

fn bad_encoding(e: io::Error) -> Error {
    let msg = format!("cannot decode the body's content-encoding: {e}");
    Error::new(ErrorKind::Malformed, Phase::ReceiveBody, msg).with_source(e)
}

fn too_large_body(max: u64) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        Phase::ReceiveBody,
        format!("body exceeds the limit of {max} bytes"),
    )
}

struct Slot {
    generation: u32,
    origin: Origin,
    state: State,
    transport: Option<Transport>,
    remote: Option<SocketAddr>,
    exchange: Option<Exchange>,
    attempt: Option<Attempt>,
    tls: Option<TlsInfo>,
    /// The lane of the connection attempt that won: events of the losers' lanes that were
    /// already queued must not reach it.
    lane: u8,
    /// The earliest deadline already in the timer heap for this slot.
    timer_at: Option<Instant>,
}

impl Slot {
    /// The phase an error or timeout now belongs to.
    fn phase(&self) -> Phase {
        match &self.state {
            State::Resolving => Phase::Resolve,
            State::Connecting { .. } => Phase::Connect,
            State::Handshaking => Phase::Tls,
            State::Idle { .. } => Phase::ReceiveHead,
            State::Active => match &self.exchange {
                Some(ex) if !ex.poll_transmit().is_empty() && !ex.received_any() => {
                    Phase::SendRequest
                }
                _ => self
                    .attempt
                    .as_ref()
                    .map_or(Phase::ReceiveHead, Attempt::receive_phase),
            },
        }
    }

    fn deadline(&self, opts: &Options) -> Option<Instant> {
        if let State::Idle { since } = self.state {
            return Some(later(since, opts.pool_idle_timeout));
        }
        let a = self.attempt.as_ref()?;
        let phase_deadline = match &self.state {
            State::Active => later(a.last_activity, a.task.knobs.idle_timeout),
            State::Connecting {
                next_race_at: Some(t),
                ..
            } => a.connect_deadline.min(*t),
            _ => a.connect_deadline,
        };
        Some(a.deadline.map_or(phase_deadline, |d| d.min(phase_deadline)))
    }

    /// What a timeout means now.
    fn timeout_error(&self, now: Instant) -> Error {
        let phase = self.phase();
        let msg = match (&self.state, &self.attempt) {
            (_, Some(a)) if a.deadline.is_some_and(|d| d <= now) => format!(
                "request took longer than {:?}",
                a.task.knobs.timeout.unwrap_or_default()
            ),
            (State::Active, Some(a)) => {
                format!("no data for {:?}", a.task.knobs.idle_timeout)
            }
            (State::Handshaking, Some(a)) => format!(
                "tls handshake did not finish within the connect timeout of {:?}",
                a.task.knobs.connect_timeout
            ),
            (
                State::Connecting {
                    last_err: Some(e), ..
                },
                Some(a),
            ) => format!(
                "could not connect within {:?} (last error: {e})",
                a.task.knobs.connect_timeout
            ),
            (_, Some(a)) => format!(
                "could not connect within {:?}",
                a.task.knobs.connect_timeout
            ),
            (_, None) => "timed out".to_owned(),
        };
        Error::new(ErrorKind::Timeout, phase, msg)
    }
}

/// The outcome of moving bytes on an active connection.
enum Step {
    Wait,
    Done,
    Fail(Error),
}

pub(crate) struct Driver {
    poll: Poll,
    events: Events,
    ready: Vec<(Token, Readiness)>,
    slots: Slab<Slot>,
    next_generation: u32,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    names: Names,
    resolving: HashMap<String, Vec<(usize, u32)>>,
    idle: HashMap<Origin, Vec<usize>>,
    idle_count: usize,
    /// Connecting slots waiting for a file descriptor (the process hit its limit).
    fd_waiters: Vec<(usize, u32)>,
    /// A socket closed this turn: waiters may try again.
    fd_freed: bool,
    buf: Vec<u8>,
    opts: Arc<Options>,
    /// Built on the first https connection, then shared (sessions resume across it).
    tls_config: Option<Arc<rustls::ClientConfig>>,
    finished: Vec<Finished>,
    active: usize,
}

impl Driver {
    pub(crate) fn new(opts: Arc<Options>) -> io::Result<Driver> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Driver {
            poll,
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            slots: Slab::new(),
            next_generation: 0,
            timers: BinaryHeap::new(),
            names: Names::new(&opts, waker),
            resolving: HashMap::new(),
            idle: HashMap::new(),
            idle_count: 0,
            fd_waiters: Vec::new(),
            fd_freed: false,
            buf: vec![0; READ_BUF],
            opts,
            tls_config: None,
            finished: Vec::new(),
            active: 0,
        })
    }

    /// Drops every connection and attempt (the loop failed; the fetcher called every
    /// request back already).
    pub(crate) fn clear(&mut self) {
        let keys: Vec<usize> = self.slots.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close_slot(key);
        }
        self.resolving.clear();
        self.fd_waiters.clear();
        self.finished.clear();
        self.timers.clear();
        self.active = 0;
    }

    /// Attempts under way (not counting idle pooled connections).
    pub(crate) fn active(&self) -> usize {
        self.active
    }

    /// Finished attempts since the last call.
    pub(crate) fn take_finished(&mut self) -> std::vec::Drain<'_, Finished> {
        self.finished.drain(..)
    }

    pub(crate) fn has_finished(&self) -> bool {
        !self.finished.is_empty()
    }

    /// Starts one attempt of `task`: on an idle pooled connection to its origin if there is
    /// one, else on a new connection.
    pub(crate) fn start(&mut self, mut task: Task, now: Instant) {
        task.attempts += 1;
        self.start_attempt(Attempt::new(task, now, false), now);
    }

    fn start_attempt(&mut self, mut attempt: Attempt, now: Instant) {
        self.active += 1;
        let origin = Origin::of(&attempt.task.url);
        if !attempt.fresh_only {
            if let Some(key) = self.take_idle(&origin) {
                attempt.reused = true;
                let slot = &mut self.slots[key];
                slot.state = State::Active;
                slot.attempt = Some(attempt);
                self.begin_exchange(key, now);
                return;
            }
        }
        let generation = self.next_generation();
        let key = self.slots.insert(Slot {
            generation,
            origin,
            state: State::Resolving,
            transport: None,
            remote: None,
            exchange: None,
            attempt: Some(attempt),
            tls: None,
            lane: 0,
            timer_at: None,
        });
        self.schedule(key);
        self.resolve(key, now);
    }

    fn next_generation(&mut self) -> u32 {
        self.next_generation = (self.next_generation + 1) & GENERATION_MASK;
        self.next_generation
    }

    fn resolve(&mut self, key: usize, now: Instant) {
        let slot = &self.slots[key];
        let (origin, generation) = (slot.origin.clone(), slot.generation);
        if let Some(addrs) = self
            .opts
            .resolve_overrides
            .get(&(origin.host.clone(), origin.port))
        {
            let addrs = addrs.clone();
            return self.resolved(key, Ok(addrs), now);
        }
        if let Some(ip) = origin.ip_literal() {
            return self.resolved(key, Ok(vec![SocketAddr::new(ip, origin.port)]), now);
        }
        if origin.host == "localhost" || origin.host.ends_with(".localhost") {
            // RFC 6761 §6.3: localhost names are loopback without asking anyone. IPv4
            // first: local servers far more often listen there only.
            let ips = [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ];
            return self.resolved(key, Ok(with_port(&ips, origin.port)), now);
        }
        // One name however it was written: `example.com.` and `example.com` share a lookup.
        let name = origin.host.trim_end_matches('.').to_owned();
        if let Some(waiters) = self.resolving.get_mut(&name) {
            // Coalesced: one lookup in flight serves every request for the host.
            return waiters.push((key, generation));
        }
        let ready = match &mut self.names {
            Names::System(r) => match r.lookup(&name, now) {
                Lookup::Ready(answer) => Some(answer),
                Lookup::Pending => None,
            },
            Names::Stub(s) => s.lookup(&name, now, self.poll.registry()),
        };
        match ready {
            Some(answer) => {
                let answer = answer.map(|ips| with_port(&ips, origin.port));
                self.resolved(key, answer, now)
            }
            None => {
                self.resolving
                    .entry(name)
                    .or_default()
                    .push((key, generation));
            }
        }
    }

    fn resolved(&mut self, key: usize, answer: Result<Vec<SocketAddr>, String>, now: Instant) {
        let slot = &mut self.slots[key];
        let Some(a) = slot.attempt.as_mut() else {
            return;
        };
        a.mark(|t, d| t.resolve = d);
        match answer {
            Ok(addrs) if !addrs.is_empty() => {
                slot.state = State::Connecting {
                    addrs,
                    next: 0,
                    racing: Vec::new(),
                    next_race_at: None,
                    last_err: None,
                    lanes: 0,
                };
                self.connect_next(key, now);
            }
            Ok(_) => self.fail(
                key,
                Error::new(ErrorKind::Dns, Phase::Resolve, "no addresses".to_owned()),
                now,
            ),
            Err(msg) => self.fail(key, Error::new(ErrorKind::Dns, Phase::Resolve, msg), now),
        }
    }

    /// Starts a connection attempt to the next address that takes one. With none left and
    /// none running, fails with the last error seen.
    fn connect_next(&mut self, key: usize, now: Instant) {
        let registry = self.poll.registry();
        let slot = &mut self.slots[key];
        let generation = slot.generation;
        let State::Connecting {
            addrs,
            next,
            racing,
            next_race_at,
            last_err,
            lanes,
        } = &mut slot.state
        else {
            return;
        };
        while let Some(&addr) = addrs.get(*next) {
            *next += 1;
            let lane = *lanes % 64;
            *lanes = lanes.wrapping_add(1);
            let started = TcpStream::connect(addr).and_then(|mut stream| {
                registry
                    .register(
                        &mut stream,
                        token(key, generation, lane),
                        mio::Interest::READABLE | mio::Interest::WRITABLE,
                    )
                    .map(|()| stream)
            });
            match started {
                Ok(stream) => {
                    racing.push(Racer { lane, stream, addr });
                    *next_race_at = (*next < addrs.len()).then(|| now + CONNECTION_ATTEMPT_DELAY);
                    self.schedule(key);
                    return;
                }
                Err(e) if out_of_descriptors(&e) => {
                    // Not this address's fault: try it again when a descriptor frees up.
                    // An idle pooled connection is the cheapest one to give back. The
                    // connect deadline stays the slot's timer.
                    *next -= 1;
                    *last_err = Some(e);
                    *next_race_at = None;
                    if !self.fd_waiters.contains(&(key, generation)) {
                        self.fd_waiters.push((key, generation));
                    }
                    if let Some(idle) = self.any_idle() {
                        self.close_slot(idle);
                    }
                    self.schedule(key);
                    return;
                }
                Err(e) => *last_err = Some(e),
            }
        }
        *next_race_at = None;
        if racing.is_empty() {
            let msg = match last_err.as_ref() {
                Some(e) => format!("{}:{}: {e}", slot.origin.host, slot.origin.port),
                None => "no address worked".to_owned(),
            };
            let mut err = Error::new(ErrorKind::Connect, Phase::Connect, msg);
            if let Some(e) = last_err.take() {
                err = err.with_source(e);
            }
            self.fail(key, err, now);
        }
    }

    /// A readiness event on a racing attempt: confirm the connect as mio documents it
    /// (`take_error`, then `peer_addr`; `NotConnected` means not yet). The first attempt to
    /// connect wins; the others are dropped.
    fn on_connect_event(&mut self, key: usize, lane: u8, now: Instant) {
        let registry = self.poll.registry();
        let slot = &mut self.slots[key];
        let State::Connecting {
            racing, last_err, ..
        } = &mut slot.state
        else {
            return;
        };
        let Some(i) = racing.iter().position(|r| r.lane == lane) else {
            return; // an attempt already dropped
        };
        let stream = &racing[i].stream;
        let failure = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Some(e),
            },
        };
        let mut won = racing.swap_remove(i);
        self.fd_freed = true; // a failed attempt or the losers below: sockets close
        if let Some(e) = failure {
            let _ = registry.deregister(&mut won.stream);
            *last_err = Some(e);
            if racing.is_empty() {
                // Nothing left running: the next address starts now, not in 250 ms.
                self.connect_next(key, now);
            }
            return;
        }
        for mut loser in racing.drain(..) {
            let _ = registry.deregister(&mut loser.stream);
        }
        let _ = won.stream.set_nodelay(true);
        slot.lane = won.lane;
        slot.transport = Some(Transport::Plain(won.stream));
        slot.remote = Some(won.addr);
        if let Some(a) = slot.attempt.as_mut() {
            a.mark(|t, d| t.connect = d);
        }
        if slot.origin.https {
            return self.start_tls(key, now);
        }
        slot.state = State::Active;
        self.begin_exchange(key, now);
    }

    /// Wraps the connected socket in a TLS client and starts the handshake.
    fn start_tls(&mut self, key: usize, now: Instant) {
        let config = match &self.tls_config {
            Some(c) => Arc::clone(c),
            None => match client_config(&self.opts.tls) {
                Ok(c) => Arc::clone(self.tls_config.insert(c)),
                Err(e) => {
                    let err = Error::new(ErrorKind::Tls, Phase::Tls, e.to_string()).with_source(e);
                    return self.fail(key, err, now);
                }
            },
        };
        let slot = &mut self.slots[key];
        let name = match server_name(&slot.origin.host) {
            Ok(n) => n,
            Err(e) => return self.fail(key, e, now),
        };
        let Some(Transport::Plain(tcp)) = slot.transport.take() else {
            return;
        };
        match TlsStream::new(tcp, config, name) {
            Ok(tls) => {
                slot.transport = Some(Transport::Tls(Box::new(tls)));
                slot.state = State::Handshaking;
                self.on_handshake_event(key, now);
            }
            Err(e) => self.fail(key, e, now),
        }
    }

    /// Advances the TLS handshake; when it completes, the exchange begins.
    fn on_handshake_event(&mut self, key: usize, now: Instant) {
        let slot = &mut self.slots[key];
        let Some(Transport::Tls(t)) = slot.transport.as_mut() else {
            return;
        };
        match t.handshake() {
            Ok(false) => {}
            Ok(true) => {
                slot.tls = Some(t.info());
                if let Some(a) = slot.attempt.as_mut() {
                    a.mark(|t, d| t.tls = d);
                }
                slot.state = State::Active;
                self.begin_exchange(key, now);
            }
            Err(e) => {
                let msg = match tls_cause(&e) {
                    Some(cause) => cause.to_string(),
                    None => format!("tls handshake failed: {e}"),
                };
                let err = Error::new(ErrorKind::Tls, Phase::Tls, msg).with_source(e);
                self.fail(key, err, now);
            }
        }
    }

    /// Encodes the request and starts writing it on an active connection.
    fn begin_exchange(&mut self, key: usize, now: Instant) {
        let slot = &mut self.slots[key];
        let Some(a) = slot.attempt.as_mut() else {
            return;
        };
        let t = &a.task;
        let body_len = match &t.body {
            Some(b) => Some(b.len() as u64),
            None if matches!(t.method.as_str(), "POST" | "PUT" | "PATCH") => Some(0),
            None => None,
        };
        let mut bytes = Vec::with_capacity(256 + t.body.as_ref().map_or(0, |b| b.len()));
        if let Err(e) = encode_request(&mut bytes, &t.method, &t.url, &t.headers, body_len) {
            let err = Error::proto(Phase::SendRequest, e);
            return self.fail(key, err, now);
        }
        if let Some(b) = &t.body {
            bytes.extend_from_slice(b);
        }
        let info = RequestInfo {
            head_request: t.method.eq_ignore_ascii_case("HEAD"),
            connection_close: !self.opts.keep_alive,
        };
        slot.exchange = Some(Exchange::new(bytes, info, self.opts.limits));
        a.last_activity = now;
        self.schedule(key);
        // The socket is writable now (just connected, or idle): no need to wait for an event.
        let r = Readiness {
            readable: false,
            writable: true,
            closed: false,
        };
        self.pump(key, r, now);
    }

    /// Moves bytes on an active connection and acts on the outcome.
    fn pump(&mut self, key: usize, r: Readiness, now: Instant) {
        let slot = &mut self.slots[key];
        let step = pump_slot(slot, &mut self.buf, r, now);
        match step {
            Step::Wait => {}
            Step::Done => self.complete(key, now),
            Step::Fail(e) => self.fail(key, e, now),
        }
    }

    /// The response is complete: hand it back, and pool or close the connection.
    fn complete(&mut self, key: usize, now: Instant) {
        let slot = &mut self.slots[key];
        let Some(a) = slot.attempt.take() else {
            return;
        };
        self.active -= 1;
        let (Some(head), Some(ex)) = (a.head, slot.exchange.take()) else {
            // The exchange ended without a head: impossible by its contract; fail safe.
            self.close_slot(key);
            return self.finished.push(Finished {
                result: Err(Error::new(
                    ErrorKind::Malformed,
                    Phase::ReceiveHead,
                    "response ended without a head",
                )),
                task: a.task,
            });
        };
        let mut reusable = self.opts.keep_alive && ex.close_reason().is_none() && !a.spent;
        if reusable && a.probe {
            // Bytes (or an EOF) left unread would never raise a new edge: the next request
            // would read them as its response. Pool only a drained socket.
            reusable = match slot.transport.as_mut().map(|t| t.read(&mut self.buf)) {
                Some(Err(e)) => e.kind() == io::ErrorKind::WouldBlock,
                _ => false,
            };
        }
        let mut timings = a.timings;
        timings.total = a.start.elapsed();
        let response = Response {
            status: head.status,
            reason: head.reason,
            version: head.version,
            headers: head.headers,
            body: a.body,
            body_len: a.body_len,
            url: a.task.url.clone(),
            remote_addr: slot.remote.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
            timings,
            redirects: a.task.redirects,
            attempts: a.task.attempts,
            reused_connection: a.reused,
            tls: slot.tls.clone(),
        };
        self.finished.push(Finished {
            task: a.task,
            result: Ok(response),
        });
        let origin_idle = self.idle.get(&slot.origin).map_or(0, Vec::len);
        if reusable
            && self.idle_count < self.opts.pool_max_idle
            && origin_idle < self.opts.pool_max_idle_per_host
        {
            slot.state = State::Idle { since: now };
            self.idle.entry(slot.origin.clone()).or_default().push(key);
            self.idle_count += 1;
            self.schedule(key);
        } else {
            self.close_slot(key);
        }
    }

    /// The attempt failed: close its connection and hand the error back, or retry once on a
    /// new connection when a reused one turned out stale before any response byte.
    fn fail(&mut self, key: usize, err: Error, now: Instant) {
        let slot = &mut self.slots[key];
        let Some(a) = slot.attempt.take() else {
            self.close_slot(key);
            return;
        };
        let received = slot.exchange.as_ref().is_some_and(Exchange::received_any);
        self.active -= 1;
        self.close_slot(key);
        let stale = a.reused
            && !received
            && !a.fresh_only
            && is_idempotent(&a.task.method)
            && matches!(err.kind(), ErrorKind::Truncated | ErrorKind::Io);
        if stale {
            // The classic keep-alive race: the server closed the idle connection as we
            // reused it. One more try on a new connection, not counted as an attempt.
            let mut retry = Attempt::new(a.task, now, true);
            retry.start = a.start;
            return self.start_attempt(retry, now);
        }
        self.finished.push(Finished {
            task: a.task,
            result: Err(err),
        });
    }

    fn close_slot(&mut self, key: usize) {
        let mut slot = self.slots.remove(key);
        if let Some(t) = slot.transport.as_mut() {
            t.deregister(self.poll.registry());
            self.fd_freed = true;
        }
        if let State::Connecting { racing, .. } = &mut slot.state {
            for r in racing.iter_mut() {
                let _ = self.poll.registry().deregister(&mut r.stream);
                self.fd_freed = true;
            }
        }
        if let State::Idle { .. } = slot.state {
            if let Some(keys) = self.idle.get_mut(&slot.origin) {
                keys.retain(|&k| k != key);
                if keys.is_empty() {
                    self.idle.remove(&slot.origin);
                }
            }
            self.idle_count -= 1;
        }
    }

    /// Some idle pooled connection, to close when descriptors run out.
    fn any_idle(&self) -> Option<usize> {
        self.idle.values().find_map(|keys| keys.first().copied())
    }

    /// Connecting slots parked for lack of descriptors try again after sockets closed.
    fn retry_fd_waiters(&mut self, now: Instant) {
        if !std::mem::take(&mut self.fd_freed) || self.fd_waiters.is_empty() {
            return;
        }
        for (key, generation) in std::mem::take(&mut self.fd_waiters) {
            let live = self.slots.get(key).is_some_and(|s| {
                s.generation == generation && matches!(s.state, State::Connecting { .. })
            });
            if live {
                self.connect_next(key, now);
            }
        }
    }

    /// Takes the most recently parked idle connection to `origin` (the warmest one).
    fn take_idle(&mut self, origin: &Origin) -> Option<usize> {
        let keys = self.idle.get_mut(origin)?;
        let key = keys.pop();
        if keys.is_empty() {
            self.idle.remove(origin);
        }
        let key = key?;
        self.idle_count -= 1;
        Some(key)
    }

    /// A parked connection became readable: the server closed it or sent junk. Drop it.
    fn on_idle_event(&mut self, key: usize) {
        let slot = &mut self.slots[key];
        let Some(t) = slot.transport.as_mut() else {
            return self.close_slot(key);
        };
        match t.read(&mut self.buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => self.close_slot(key),
        }
    }

    /// Makes sure the timer heap holds this slot's earliest deadline.
    fn schedule(&mut self, key: usize) {
        let slot = &mut self.slots[key];
        let Some(d) = slot.deadline(&self.opts) else {
            return;
        };
        if slot.timer_at.is_none_or(|t| d < t) {
            slot.timer_at = Some(d);
            self.timers.push(Reverse((d, key, slot.generation)));
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, key, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.slots.get_mut(key) else {
                continue;
            };
            if slot.generation != generation || slot.timer_at != Some(at) {
                continue; // stale: the slot was reused, or a later deadline replaced it
            }
            slot.timer_at = None;
            let race_due =
                matches!(slot.state, State::Connecting { next_race_at: Some(t), .. } if t <= now);
            match slot.deadline(&self.opts) {
                Some(d) if d <= now => {
                    let expired = slot.attempt.as_ref().is_some_and(|a| {
                        a.connect_deadline <= now || a.deadline.is_some_and(|t| t <= now)
                    });
                    if let State::Idle { .. } = slot.state {
                        self.close_slot(key);
                    } else if race_due && !expired {
                        self.connect_next(key, now);
                        // The slot lost its heap entry above; make sure it has one again
                        // (connect_next schedules only when it starts an attempt).
                        if self
                            .slots
                            .get(key)
                            .is_some_and(|s| s.generation == generation)
                        {
                            self.schedule(key);
                        }
                    } else {
                        let err = slot.timeout_error(now);
                        self.fail(key, err, now);
                    }
                }
                Some(_) => self.schedule(key),
                None => {}
            }
        }
    }

    /// How long `poll` may sleep: until the earliest deadline, capped by `max`.
    fn poll_timeout(&self, now: Instant, max: Option<Duration>) -> Option<Duration> {
        let dns = match &self.names {
            // A lookup can finish inside `lookup` (every nameserver unreachable at once):
            // its outcome waits in the stub, so do not sleep.
            Names::Stub(s) if s.has_done() => Some(now),
            Names::Stub(s) => s.next_deadline(),
            Names::System(_) => None,
        };
        let timer = self
            .timers
            .peek()
            .map(|Reverse((at, _, _))| *at)
            .into_iter()
            .chain(dns)
            .min()
            .map(|at| at.saturating_duration_since(now));
        match (timer, max) {
            (Some(t), Some(m)) => Some(t.min(m)),
            (t, m) => t.or(m),
        }
    }

    /// One turn of the loop: wait for readiness (at most until the next deadline or
    /// `max_wait`), handle every event, then fire due timers.
    pub(crate) fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let timeout = self.poll_timeout(Instant::now(), max_wait);
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let now = Instant::now();
        self.ready.clear();
        for ev in self.events.iter() {
            let closed = ev.is_error() || ev.is_read_closed() || ev.is_write_closed();
            let r = Readiness {
                readable: ev.is_readable() || closed,
                writable: ev.is_writable(),
                closed,
            };
            self.ready.push((ev.token(), r));
        }
        let mut wake = false;
        for i in 0..self.ready.len() {
            let (tok, r) = self.ready[i];
            if tok == WAKER {
                wake = true;
                continue;
            }
            if tok.0 & DNS_TOKEN_BIT != 0 {
                if let Names::Stub(s) = &mut self.names {
                    s.on_event(tok, now, self.poll.registry());
                }
                continue;
            }
            let (key, generation, lane) = untoken(tok);
            let Some(slot) = self.slots.get(key) else {
                continue;
            };
            if slot.generation != generation {
                continue; // an event for a connection that is gone
            }
            if lane != slot.lane && !matches!(slot.state, State::Connecting { .. }) {
                continue; // a losing attempt's event, queued before it was dropped
            }
            match slot.state {
                State::Connecting { .. } => self.on_connect_event(key, lane, now),
                State::Handshaking => self.on_handshake_event(key, now),
                State::Active => self.pump(key, r, now),
                State::Idle { .. } => self.on_idle_event(key),
                State::Resolving => {}
            }
        }
        let answers = match &mut self.names {
            Names::Stub(s) => {
                s.fire_timers(now, self.poll.registry());
                s.take_done()
            }
            Names::System(r) if wake => r.take_results(now),
            Names::System(_) => Vec::new(),
        };
        {
            for (host, answer) in answers {
                for (key, generation) in self.resolving.remove(&host).unwrap_or_default() {
                    let live = self.slots.get(key).is_some_and(|s| {
                        s.generation == generation && matches!(s.state, State::Resolving)
                    });
                    if live {
                        let port = self.slots[key].origin.port;
                        let answer = answer.clone().map(|ips| with_port(&ips, port));
                        self.resolved(key, answer, now);
                    }
                }
            }
        }
        self.fire_timers(now);
        self.retry_fd_waiters(now);
        Ok(())
    }
}

/// An I/O error on an established connection: TLS failures are `tls`, the rest `io`.
fn io_failure(e: io::Error, phase: Phase) -> Error {
    match tls_cause(&e) {
        Some(cause) => Error::new(ErrorKind::Tls, phase, cause.to_string()).with_source(e),
        None => Error::io(ErrorKind::Io, phase, e),
    }
}

/// Where names are resolved: the in-loop stub, or the system resolver on helper threads.
enum Names {
    Stub(Box<Stub>),
    System(Resolver),
}

impl Names {
    fn new(opts: &Options, waker: Arc<Waker>) -> Names {
        if opts.dns.system {
            return Names::System(Resolver::new(waker, opts.resolver_threads));
        }
        let mut conf = ResolvConf::system();
        if let Some(servers) = &opts.dns.servers {
            conf.nameservers = servers.clone();
        }
        if let Some((search, ndots)) = &opts.dns.search {
            conf.search = search.clone();
            conf.ndots = *ndots;
        }
        if let Some((timeout, attempts)) = opts.dns.timeout {
            conf.timeout = timeout;
            conf.attempts = attempts;
        }
        Names::Stub(Box::new(Stub::new(StubOptions {
            conf,
            hosts: Hosts::system(),
            ttl_floor: opts.dns.ttl_floor,
            ttl_ceiling: opts.dns.ttl_ceiling,
        })))
    }
}

/// EMFILE or ENFILE: the process or the system is out of file descriptors.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// `now + d`, or a time far enough away to mean "never" when that overflows (a caller may
/// pass `Duration::MAX` for "no limit").
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(d)
        .or_else(|| now.checked_add(YEAR))
        .unwrap_or(now)
}

fn with_port(ips: &[IpAddr], port: u16) -> Vec<SocketAddr> {
    ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect()
}

/// What a readiness event said about a socket.
#[derive(Clone, Copy, Debug)]
struct Readiness {
    readable: bool,
    writable: bool,
    /// The peer closed (or the socket failed): its EOF is already pending, and no new edge
    /// will announce it, so reads go on until they see it.
    closed: bool,
}

/// Writes what the exchange has to send, then reads until `WouldBlock`. A short read means
/// the socket was drained (with edge-triggered readiness new data brings a new edge), unless
/// the event said the peer closed: then the EOF is pending and must be read now.
fn pump_slot(slot: &mut Slot, buf: &mut [u8], r: Readiness, now: Instant) -> Step {
    let Readiness {
        readable,
        writable,
        closed,
    } = r;
    let Slot {
        transport,
        exchange,
        attempt,
        ..
    } = slot;
    let (Some(t), Some(ex), Some(a)) = (transport.as_mut(), exchange.as_mut(), attempt.as_mut())
    else {
        return Step::Wait;
    };
    if writable {
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
                    a.last_activity = now; // a slow upload in progress is not idle
                    if full {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The server may have answered early and closed: read what it said first.
                Err(_) if ex.received_any() || readable => break,
                Err(e) => return Step::Fail(io_failure(e, Phase::SendRequest)),
            }
        }
    }
    if !readable {
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
                a.last_activity = now;
                match feed(ex, a, &buf[..n]) {
                    Err(e) => return Step::Fail(e),
                    Ok(true) => {
                        // The event said the peer closed: its EOF is pending behind the
                        // response and no new edge will announce it. Pooling this
                        // connection would hand the next request a dead socket.
                        a.spent |= closed;
                        a.probe = t.is_tls() || n == buf.len();
                        return Step::Done;
                    }
                    // TLS plaintext comes a record at a time: only TCP may take the shortcut.
                    Ok(false) if n < buf.len() && !closed && !t.is_tls() => return Step::Wait,
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

/// Feeds received bytes to the exchange; `Ok(true)` when the response is complete.
fn feed(ex: &mut Exchange, a: &mut Attempt, data: &[u8]) -> Result<bool, Error> {
    let mut off = 0;
    loop {
        let phase = a.receive_phase();
        let p = ex
            .handle_input(&data[off..])
            .map_err(|e| Error::proto(phase, e))?;
        off += p.consumed;
        match p.event {
            None => return Ok(false),
            Some(Event::Head(head)) => a.on_head(head, ex.framing())?,
            Some(Event::Body(b)) => a.on_body(b)?,
            Some(Event::End) => {
                a.spent |= off < data.len();
                a.on_end()?;
                return Ok(true);
            }
        }
    }
}
