//! The mio loop: one `Poll`, a `Slab` of connections, their deadlines, the resolver and the
//! idle-connection pool. Tasks come down through [`Driver::start`]; each attempt comes back
//! up once, as a [`Finished`] holding the task and what the exchange produced or why it
//! failed.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the [`Driver`] and its turn: the only code that frees slab entries, hands results up and touches the pool |
//! | `conn.rs` | one connection's state machine: every transition, per-state data |
//! | `connect.rs` | Happy Eyeballs: racing connection attempts |
//! | `timer.rs` | named timers per connection, the deadline heap, `later` |
//! | `token.rs` | what a `mio::Token` carries, for connections, DNS queries and the waker |
//! | `pool.rs` | which idle connections serve which origin |
//! | `resolve.rs` | names to addresses: pins, literals, `localhost`, coalescing |
//! | `stub.rs`, `system.rs` | the in-loop DNS client and the `getaddrinfo` threads |
//! | `cache.rs` | the bounded answer cache both resolvers use |
//! | `transport.rs` | plain TCP or TLS, one small enum |
//!
//! It moves bytes and keeps time; it never parses HTTP (`proto` does) and never decides
//! about admission, redirects, retries or replays (the engine does, through `policy`). It
//! imports neither the engine nor the public `Response` and `Options`: it takes its own
//! [`Config`] and hands up plain parts ([`Exchanged`], [`Failure`]).

pub(crate) mod cache;
mod conn;
mod connect;
mod pool;
mod resolve;
mod stub;
mod system;
pub(crate) mod timer;
mod token;
mod transport;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};
use slab::Slab;

use crate::error::{Error, ErrorKind, Phase};
use crate::policy::Reuse;
use crate::proto::{Limits, ResponseHead};
use crate::response::{Timings, TlsInfo};
use crate::task::{Route, Task};
use crate::tls::TlsOptions;

use conn::{Attempt, Cx, Readiness, Slot, Transition};
use pool::Pool;
use resolve::{LookupError, Names, with_port};
use timer::{Deadlines, Timer};
use token::Source;

pub(crate) use resolve::NamesConfig;

/// One read buffer for the whole loop: connections own no read buffer of their own.
const READ_BUF: usize = 64 * 1024;

/// What the driver needs to know, and nothing more.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Keep connections open for reuse.
    pub keep_alive: bool,
    /// Bounds on a response head, chunk lines and trailers.
    pub limits: Limits,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    pub pool_max_idle: usize,
    pub names: NamesConfig,
    pub tls: TlsOptions,
    /// Trust settings for https proxies' certificates.
    pub proxy_tls: TlsOptions,
}

/// A complete exchange: the final response's head and body, and where and how it came.
pub(crate) struct Exchanged {
    pub head: ResponseHead,
    pub body: Vec<u8>,
    /// Body bytes delivered (to `body` or the task's sink).
    pub body_len: u64,
    pub remote: SocketAddr,
    pub timings: Timings,
    /// The attempt ran on a pooled connection.
    pub reused: bool,
    pub tls: Option<TlsInfo>,
    /// The `Content-Encoding` left undecoded (the body is as sent), if any.
    pub content_encoding_left: Option<String>,
    /// The exchange's bytes, when the task asked to capture them.
    pub wire: Option<crate::response::Wire>,
}

/// A failed attempt.
pub(crate) struct Failure {
    pub error: Error,
    /// Whether the attempt ran on a pooled connection; `None` when it never had one
    /// (resolve or connect failed).
    pub reused: Option<bool>,
    /// Whether any response byte arrived.
    pub received_any: bool,
    /// The status of the response head, when one arrived before the failure.
    pub status: Option<u16>,
}

/// An attempt handed back: exactly once per [`Driver::start`].
pub(crate) struct Finished {
    pub task: Task,
    pub result: Result<Exchanged, Failure>,
}

/// What every connection handler may use: the poll registry, the shared read buffer, the
/// configuration and the TLS client configuration. Apart from the slab, so a handler can
/// hold a slot and these at once.
struct Io {
    poll: Poll,
    buf: Vec<u8>,
    config: Config,
    /// Built on the first https connection, then shared (sessions resume across it).
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The same for https proxies.
    proxy_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Io {
    fn cx(&mut self, key: usize, now: Instant) -> Cx<'_> {
        Cx {
            registry: self.poll.registry(),
            buf: &mut self.buf,
            config: &self.config,
            tls: &mut self.tls,
            proxy_tls: &mut self.proxy_tls,
            now,
            key,
            closed: false,
        }
    }
}

pub(crate) struct Driver {
    io: Io,
    events: Events,
    ready: Vec<(Token, Readiness)>,
    slots: Slab<Slot>,
    generation: u32,
    deadlines: Deadlines<(usize, u32)>,
    names: Names,
    pool: Pool,
    /// Connections waiting for a file descriptor (the process hit its limit).
    fd_waiters: Vec<(usize, u32)>,
    /// A socket closed: waiters may try again.
    fd_freed: bool,
    finished: Vec<Finished>,
    active: usize,
    /// Wakes `poll` from other threads (the system resolver's, a handle's).
    waker: Arc<Waker>,
}

impl Driver {
    pub(crate) fn new(config: Config) -> io::Result<Driver> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), token::WAKER)?);
        Ok(Driver {
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            slots: Slab::new(),
            generation: 0,
            deadlines: Deadlines::default(),
            names: Names::new(&config.names, Arc::clone(&waker)),
            pool: Pool::new(config.pool_max_idle_per_host, config.pool_max_idle),
            fd_waiters: Vec::new(),
            fd_freed: false,
            io: Io {
                poll,
                buf: vec![0; READ_BUF],
                config,
                tls: None,
                proxy_tls: None,
            },
            finished: Vec::new(),
            active: 0,
            waker,
        })
    }

    /// Wakes this loop's `poll` from another thread.
    pub(crate) fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// Attempts under way (not counting idle pooled connections).
    pub(crate) fn active(&self) -> usize {
        self.active
    }

    /// Attempts under way plus those finished and not yet taken: what admission must count,
    /// since a finished attempt may come straight back as a replay.
    pub(crate) fn occupied(&self) -> usize {
        self.active + self.finished.len()
    }

    /// Finished attempts since the last call.
    pub(crate) fn take_finished(&mut self) -> std::vec::Drain<'_, Finished> {
        self.finished.drain(..)
    }

    pub(crate) fn has_finished(&self) -> bool {
        !self.finished.is_empty()
    }

    /// Starts one attempt of `task` on a connection `reuse` allows: an idle pooled one to
    /// its origin when there is one, else a new one. It comes back exactly once, through
    /// [`Driver::take_finished`].
    pub(crate) fn start(&mut self, task: Task, reuse: Reuse, now: Instant) {
        self.active += 1;
        let origin = Route::of(&task);
        let attempt = Attempt::new(task, now);
        let max_idle = match reuse {
            Reuse::Any => Some(None),
            Reuse::IdledUnder(d) => Some(Some(d)),
            Reuse::Fresh => None,
        };
        if let Some(max_idle) = max_idle {
            let slots = &self.slots;
            // A connection whose pool deadline passed while the loop was not turning is
            // past its lifetime: not taken, its timer closes it.
            let fits = |key: usize| {
                let Some(slot) = slots.get(key) else {
                    return false;
                };
                let alive = slot.timers.get(Timer::Pool).is_some_and(|at| at > now);
                let idle = |since: Instant| now.saturating_duration_since(since);
                let since = slot.conn.idle_since();
                alive && since.is_some_and(|since| max_idle.is_none_or(|m| idle(since) < m))
            };
            if let Some(key) = self.pool.take(&origin, fits) {
                return self.run(key, now, |slot, cx| slot.reuse(attempt, cx));
            }
        }
        self.generation = token::next_generation(self.generation);
        let key = self
            .slots
            .insert(Slot::new(self.generation, origin, attempt, now));
        self.resolve(key, now);
    }

    /// Runs a handler on a live slot and acts on the transition it returns.
    fn run(
        &mut self,
        key: usize,
        now: Instant,
        handler: impl FnOnce(&mut Slot, &mut Cx<'_>) -> Transition,
    ) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let mut cx = self.io.cx(key, now);
        let transition = handler(slot, &mut cx);
        self.fd_freed |= cx.closed;
        self.apply(key, transition, now);
    }

    /// The loop's half of a transition: the only place results go up, slots are freed and
    /// the pool changes.
    fn apply(&mut self, key: usize, transition: Transition, now: Instant) {
        match transition {
            // A slot left closed by a handler that had nothing to hand up: free it rather
            // than keep a slot no deadline or event will ever visit again.
            Transition::Stay if self.slots.get(key).is_some_and(|s| s.conn.is_closed()) => {
                self.free(key, now)
            }
            Transition::Stay => self.schedule(key),
            Transition::NeedDescriptor => self.wait_for_descriptor(key, now),
            Transition::Resolve => self.resolve(key, now),
            Transition::Ended {
                task,
                result,
                parked,
            } => {
                self.active -= 1;
                self.finished.push(Finished { task, result });
                let room = self
                    .slots
                    .get(key)
                    .is_some_and(|s| self.pool.has_room(&s.route));
                if parked && room {
                    if let Some(slot) = self.slots.get(key) {
                        self.pool.park(&slot.route, key);
                    }
                    self.schedule(key);
                } else {
                    self.free(key, now);
                }
            }
            Transition::Closed => self.free(key, now),
        }
    }

    /// Removes a slot, closing whatever it holds. A slot still holding an attempt (which no
    /// transition should leave behind) fails that attempt, so none is ever lost.
    fn free(&mut self, key: usize, now: Instant) {
        let Some(slot) = self.slots.try_remove(key) else {
            return;
        };
        self.pool.remove(&slot.route, key);
        let mut cx = self.io.cx(key, now);
        let orphan = slot.conn.shut(&mut cx);
        self.fd_freed |= cx.closed;
        if let Some(attempt) = orphan {
            if cfg!(debug_assertions) {
                panic!("a slot freed with a live attempt");
            }
            self.active -= 1;
            let error = Error::new(
                ErrorKind::Io,
                Phase::Prepare,
                "internal error: connection closed while in use",
            );
            self.finished.push(Finished {
                task: attempt.into_task(),
                result: Err(Failure {
                    error,
                    reused: None,
                    received_any: false,
                    status: None,
                }),
            });
        }
    }

    /// Out of file descriptors: park the slot until one frees, and give one back now if an
    /// idle pooled connection can spare it. The connect deadline still runs.
    fn wait_for_descriptor(&mut self, key: usize, now: Instant) {
        if let Some(slot) = self.slots.get(key) {
            let waiter = (key, slot.generation);
            if !self.fd_waiters.contains(&waiter) {
                self.fd_waiters.push(waiter);
            }
        }
        if let Some(idle) = self.pool.any() {
            self.free(idle, now);
        }
        self.schedule(key);
    }

    /// Slots parked for lack of descriptors try again after sockets closed.
    fn retry_descriptor_waiters(&mut self, now: Instant) {
        if !std::mem::take(&mut self.fd_freed) || self.fd_waiters.is_empty() {
            return;
        }
        for (key, generation) in std::mem::take(&mut self.fd_waiters) {
            let Some(slot) = self.slots.get(key) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            if slot.conn.is_resolving() {
                self.resolve(key, now);
            } else {
                self.run(key, now, |slot, cx| slot.on_descriptor(cx));
            }
        }
    }

    /// Asks for the addresses of a resolving slot; acts at once when they are known.
    fn resolve(&mut self, key: usize, now: Instant) {
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        let waiter = (key, slot.generation);
        let (host, port) = next_name(slot);
        match self
            .names
            .lookup(host, port, waiter, now, self.io.poll.registry())
        {
            Some(answer) => self.on_answer(key, answer, now),
            None => self.schedule(key),
        }
    }

    fn on_answer(
        &mut self,
        key: usize,
        answer: Result<Vec<SocketAddr>, LookupError>,
        now: Instant,
    ) {
        match answer {
            Err(e) if e.out_of_descriptors => self.wait_for_descriptor(key, now),
            answer => {
                let answer =
                    answer.map_err(|e| Error::new(ErrorKind::Dns, Phase::Resolve, e.message));
                self.run(key, now, |slot, cx| slot.on_resolved(answer, cx));
            }
        }
    }

    /// Makes sure the deadline heap holds this slot's earliest deadline.
    fn schedule(&mut self, key: usize) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let Some(at) = slot.timers.next() else {
            return;
        };
        if slot.scheduled.is_none_or(|s| at < s) {
            slot.scheduled = Some(at);
            self.deadlines.push(at, (key, slot.generation));
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some((at, (key, generation))) = self.deadlines.pop_due(now) {
            let Some(slot) = self.slots.get_mut(key) else {
                continue;
            };
            if slot.generation != generation || slot.scheduled != Some(at) {
                continue; // stale: the slot was reused, or an earlier deadline replaced it
            }
            slot.scheduled = None;
            self.run(key, now, |slot, cx| slot.on_timeout(cx));
        }
    }

    /// How long `poll` may sleep: until the earliest deadline, capped by `max`.
    fn poll_timeout(&self, now: Instant, max: Option<Duration>) -> Option<Duration> {
        if self.fd_freed && !self.fd_waiters.is_empty() {
            // A descriptor was freed outside a turn (an idle connection closed to make
            // room): the waiters try again now, not after the next event.
            return Some(Duration::ZERO);
        }
        let timer = [self.deadlines.peek(), self.names.next_deadline(now)]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now));
        match (timer, max) {
            (Some(t), Some(m)) => Some(t.min(m)),
            (t, m) => t.or(m),
        }
    }

    /// One turn of the loop: waits for readiness (at most until the next deadline or
    /// `max_wait`), handles every event, answers resolved names, fires due deadlines.
    /// Returns the turn's `now`: the one clock reading every handler of the turn used.
    ///
    /// # Errors
    /// When `poll` itself fails (not for any one connection's failure).
    pub(crate) fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<Instant> {
        let timeout = self.poll_timeout(Instant::now(), max_wait);
        if let Err(e) = self.io.poll.poll(&mut self.events, timeout) {
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
        let mut woke = false;
        for i in 0..self.ready.len() {
            let (tok, r) = self.ready[i];
            match token::decode(tok) {
                Source::Waker => woke = true,
                Source::Dns { key, generation } => {
                    self.names
                        .on_event(key, generation, now, self.io.poll.registry());
                }
                Source::Conn {
                    key,
                    generation,
                    lane,
                } => {
                    if self
                        .slots
                        .get(key)
                        .is_some_and(|s| s.generation == generation)
                    {
                        self.run(key, now, |slot, cx| slot.on_ready(lane, r, cx));
                    }
                }
            }
        }
        let answers = self.names.take_answers(woke, now, self.io.poll.registry());
        self.fd_freed |= self.names.take_closed();
        for ((key, generation), answer) in answers {
            let Some(slot) = self.slots.get(key) else {
                continue;
            };
            if slot.generation == generation && slot.conn.is_resolving() {
                let port = next_name(slot).1;
                self.on_answer(key, answer.map(|ips| with_port(&ips, port)), now);
            }
        }
        self.fire_timers(now);
        self.retry_descriptor_waiters(now);
        Ok(now)
    }

    /// Drops every connection and attempt (the loop failed; the caller has called every
    /// request back already).
    pub(crate) fn clear(&mut self) {
        let keys: Vec<usize> = self.slots.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(slot) = self.slots.try_remove(key) {
                drop(slot.conn.shut(&mut self.io.cx(key, Instant::now())));
            }
        }
        self.names.clear();
        self.pool.clear();
        self.fd_waiters.clear();
        self.finished.clear();
        self.deadlines.clear();
        self.active = 0;
    }
}

/// The name a resolving slot needs next: the origin's first when a SOCKS5 proxy is to be
/// given its address, then the first hop's (the proxy's, or the origin's without one).
fn next_name(slot: &Slot) -> (&str, u16) {
    if slot.route.resolves_target_here() && slot.target.is_none() {
        (&slot.route.origin.host, slot.route.origin.port)
    } else {
        slot.route.first_hop()
    }
}
