//! Names to addresses for new connections: pinned addresses and IP literals first, then
//! `localhost`, then one of two resolvers — the in-loop stub (default) or the system
//! resolver on helper threads — with one lookup in flight per name however many
//! connections wait for it.
//!
//! Owns the resolver and the waiting lists. It never touches a connection: answers go back
//! to the loop as (waiter, answer) pairs.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Registry, Waker};

use super::stub::{Stub, StubOptions};
use super::system::{self, Lookup};
use crate::dns::conf::ResolvConf;
use crate::dns::hosts::Hosts;

/// Why a name has no addresses.
#[derive(Clone, Debug)]
pub(crate) struct LookupError {
    pub message: String,
    /// No socket could be made for the query: the connection waits for a descriptor
    /// instead of failing, as a connect does.
    pub out_of_descriptors: bool,
}

impl LookupError {
    pub(crate) fn new(message: String) -> LookupError {
        LookupError {
            message,
            out_of_descriptors: false,
        }
    }
}

/// How names are resolved.
#[derive(Clone, Debug, Default)]
pub(crate) struct NamesConfig {
    /// Use the system resolver on this many threads instead of the stub.
    pub system_threads: Option<usize>,
    pub servers: Option<Vec<SocketAddr>>,
    pub search: Option<(Vec<String>, u8)>,
    pub timeout: Option<(Duration, u8)>,
    pub ttl_floor: Duration,
    pub ttl_ceiling: Duration,
    /// Pinned addresses per (host, port), skipping resolution.
    pub overrides: HashMap<(String, u16), Vec<SocketAddr>>,
}

/// Who waits for an answer: a slot's key and generation.
pub(crate) type Waiter = (usize, u32);

enum Backend {
    Stub(Box<Stub>),
    System(system::Resolver),
}

pub(crate) struct Names {
    backend: Backend,
    overrides: HashMap<(String, u16), Vec<SocketAddr>>,
    waiting: HashMap<String, Vec<Waiter>>,
}

impl Names {
    pub(crate) fn new(config: &NamesConfig, waker: Arc<Waker>) -> Names {
        let backend = match config.system_threads {
            Some(threads) => Backend::System(system::Resolver::new(waker, threads)),
            None => {
                let mut conf = ResolvConf::system();
                if let Some(servers) = &config.servers {
                    conf.nameservers = servers.clone();
                }
                if let Some((search, ndots)) = &config.search {
                    conf.search = search.clone();
                    conf.ndots = *ndots;
                }
                if let Some((timeout, attempts)) = config.timeout {
                    conf.timeout = timeout;
                    conf.attempts = attempts;
                }
                Backend::Stub(Box::new(Stub::new(StubOptions {
                    conf,
                    hosts: Hosts::system(),
                    ttl_floor: config.ttl_floor,
                    ttl_ceiling: config.ttl_ceiling,
                })))
            }
        };
        Names {
            backend,
            overrides: config.overrides.clone(),
            waiting: HashMap::new(),
        }
    }

    /// The addresses of `host`, `port` when known at once; otherwise `waiter` is told
    /// later, through [`Names::take_answers`].
    pub(crate) fn lookup(
        &mut self,
        host: &str,
        port: u16,
        waiter: Waiter,
        now: Instant,
        registry: &Registry,
    ) -> Option<Result<Vec<SocketAddr>, LookupError>> {
        if let Some(addrs) = self.overrides.get(&(host.to_owned(), port)) {
            return Some(Ok(addrs.clone()));
        }
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Some(Ok(vec![SocketAddr::new(ip, port)]));
        }
        if host == "localhost" || host.ends_with(".localhost") {
            // RFC 6761 §6.3: localhost names are loopback without asking anyone. IPv4
            // first: local servers far more often listen there only.
            let ips = [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ];
            return Some(Ok(with_port(&ips, port)));
        }
        // One name however it was written: `example.com.` and `example.com` share a lookup.
        let name = host.trim_end_matches('.');
        if let Some(waiters) = self.waiting.get_mut(name) {
            waiters.push(waiter); // coalesced: one lookup serves every connection
            return None;
        }
        let ready = match &mut self.backend {
            Backend::System(r) => match r.lookup(name, now) {
                Lookup::Ready(answer) => Some(answer),
                Lookup::Pending => None,
            },
            Backend::Stub(s) => s.lookup(name, now, registry),
        };
        match ready {
            Some(answer) => Some(answer.map(|ips| with_port(&ips, port))),
            None => {
                self.waiting.insert(name.to_owned(), vec![waiter]);
                None
            }
        }
    }

    /// A readiness event on a DNS query's socket.
    pub(crate) fn on_event(
        &mut self,
        key: usize,
        generation: u32,
        now: Instant,
        registry: &Registry,
    ) {
        if let Backend::Stub(s) = &mut self.backend {
            s.on_event(key, generation, now, registry);
        }
    }

    /// Lookups finished since the last call, each waiter with its answer (addresses without
    /// a port). `woke`: the waker fired (the system resolver's threads have answers).
    pub(crate) fn take_answers(
        &mut self,
        woke: bool,
        now: Instant,
        registry: &Registry,
    ) -> Vec<(Waiter, Result<Vec<IpAddr>, LookupError>)> {
        let done = match &mut self.backend {
            Backend::Stub(s) => {
                s.fire_timers(now, registry);
                if !s.has_done() {
                    return Vec::new();
                }
                s.take_done()
            }
            Backend::System(r) if woke => r.take_results(now),
            Backend::System(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        for (host, answer) in done {
            for waiter in self.waiting.remove(&host).unwrap_or_default() {
                out.push((waiter, answer.clone()));
            }
        }
        out
    }

    /// When the resolver needs the loop back: its earliest query deadline, or `now` when
    /// answers already wait to be taken.
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        match &self.backend {
            // A lookup can finish inside `lookup` (every nameserver unreachable at once):
            // its outcome waits in the stub, so do not sleep.
            Backend::Stub(s) if s.has_done() => Some(now),
            Backend::Stub(s) => s.next_deadline(),
            Backend::System(_) => None,
        }
    }

    /// Whether a query socket closed since the last call: a descriptor is free.
    pub(crate) fn take_closed(&mut self) -> bool {
        match &mut self.backend {
            Backend::Stub(s) => s.take_closed(),
            Backend::System(_) => false,
        }
    }

    /// Forgets every waiter (the loop is being torn down).
    pub(crate) fn clear(&mut self) {
        self.waiting.clear();
    }
}

pub(crate) fn with_port(ips: &[IpAddr], port: u16) -> Vec<SocketAddr> {
    ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect()
}
