//! The in-loop DNS stub resolver: A and AAAA queries over UDP (TCP when a reply is
//! truncated) to the configured nameservers, driven by the same mio loop as the
//! connections. No thread, no blocking call.
//!
//! Owns its sockets, query timers, the answer cache and lookup coalescing. The wire format
//! lives in [`crate::dns`] (sans-IO); this module only moves datagrams and decides what to
//! try next. It must never block and never parse HTTP.
//!
//! Security: every query uses a fresh random ID and a fresh socket bound to a random port
//! and *connected* to the nameserver (the kernel drops datagrams from any other address);
//! a reply counts only if its ID and question match ours, else it is ignored and the query
//! keeps waiting; only records owned by the queried name (after CNAMEs) are used.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry};
use slab::Slab;

use super::cache::{DNS_CACHE_MAX, TtlCache};
use super::connect::out_of_descriptors;
use super::resolve::LookupError;
use super::timer::{Deadlines, later};
use super::token;
use crate::dns::conf::ResolvConf;
use crate::dns::hosts::Hosts;
use crate::dns::message::{
    Answer, QType, Rcode, TcpFrameReader, encode_query, frame_tcp, parse_response,
};

/// How long a failed lookup (timeout, SERVFAIL) is remembered.
const FAILURE_TTL: Duration = Duration::from_secs(5);
/// Largest reply read over UDP (EDNS0 advertises 1232; servers may send up to this).
const UDP_BUF: usize = 4096;

/// Stub resolver settings (from `/etc/resolv.conf` and the builder).
#[derive(Clone, Debug)]
pub(crate) struct StubOptions {
    pub conf: ResolvConf,
    pub hosts: Hosts,
    pub ttl_floor: Duration,
    pub ttl_ceiling: Duration,
}

/// What became of a lookup.
pub(crate) type Outcome = Result<Vec<IpAddr>, LookupError>;

/// Where a failed try failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The nameserver (or the network to it): remembered for a while.
    Remote,
    /// Here, but the next request may fare better (no route, say): not cached.
    Local,
    /// No socket could be made (out of file descriptors): not cached, and the waiting
    /// requests wait for a descriptor instead of failing.
    NoDescriptor,
}

/// The answer for one address family of one candidate name.
#[derive(Clone, Debug)]
enum Part {
    Pending,
    Addrs(Vec<IpAddr>, u32),
    NoData(Option<u32>),
    NxDomain(Option<u32>),
    /// The reason, and where it failed.
    Failed(String, Fault),
}

struct Lookup {
    candidates: Vec<String>,
    index: usize,
    v4: Part,
    v6: Part,
}

enum Wire {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        out: Vec<u8>,
        sent: usize,
        reader: TcpFrameReader,
    },
}

/// What one try asks: a name, the record types still unanswered, which nameserver, and how
/// many tries came before.
#[derive(Clone)]
struct Ask {
    host: String,
    name: String,
    qtypes: Vec<QType>,
    server: usize,
    tries: usize,
}

/// One try on one socket: the A and AAAA questions of a name go out together, each with its
/// own ID (as glibc does), so a lookup costs one socket, not two.
struct Query {
    generation: u32,
    ask: Ask,
    /// The questions still unanswered, with their IDs.
    ids: Vec<(QType, u16)>,
    deadline: Instant,
    wire: Wire,
}

pub(crate) struct Stub {
    opts: StubOptions,
    lookups: HashMap<String, Lookup>,
    cache: TtlCache<Outcome>,
    queries: Slab<Query>,
    timers: Deadlines<(usize, u32)>,
    next_generation: u32,
    random: RandomState,
    counter: u64,
    rotate_cursor: usize,
    done: Vec<(String, Outcome)>,
    buf: Vec<u8>,
    /// Set while a try fails for a local reason (no socket), so its failure is not cached.
    local_failure: bool,
    /// A query socket closed since the loop last asked: a descriptor is free.
    closed: bool,
}

impl Stub {
    pub(crate) fn new(opts: StubOptions) -> Stub {
        Stub {
            opts,
            lookups: HashMap::new(),
            cache: TtlCache::new(DNS_CACHE_MAX),
            queries: Slab::new(),
            timers: Deadlines::default(),
            next_generation: 0,
            random: RandomState::new(),
            counter: 0,
            rotate_cursor: 0,
            done: Vec::new(),
            buf: vec![0; UDP_BUF],
            local_failure: false,
            closed: false,
        }
    }

    /// Unpredictable 16 bits: keyed SipHash (random keys per process) of a counter.
    fn random_u16(&mut self) -> u16 {
        self.counter += 1;
        (self.random.hash_one(self.counter) >> 24) as u16
    }

    /// Answers from `/etc/hosts` or the cache at once; otherwise starts (or joins) a
    /// lookup whose outcome arrives through [`Stub::take_done`].
    pub(crate) fn lookup(
        &mut self,
        host: &str,
        now: Instant,
        registry: &Registry,
    ) -> Option<Outcome> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(addrs) = self.opts.hosts.lookup(&host) {
            return Some(Ok(addrs.to_vec()));
        }
        if let Some(outcome) = self.cache.get(&host, now) {
            return Some(outcome.clone());
        }
        if self.lookups.contains_key(&host) {
            return None; // coalesced: one lookup serves every request for this host
        }
        let candidates = self.opts.conf.candidates(&host);
        if candidates.is_empty() || self.opts.conf.nameservers.is_empty() {
            return Some(Err(LookupError::new(format!(
                "{host}: no nameserver to ask"
            ))));
        }
        self.lookups.insert(
            host.clone(),
            Lookup {
                candidates,
                index: 0,
                v4: Part::Pending,
                v6: Part::Pending,
            },
        );
        self.start_candidate(&host, now, registry);
        None
    }

    /// Outcomes of lookups finished since the last call.
    pub(crate) fn take_done(&mut self) -> Vec<(String, Outcome)> {
        std::mem::take(&mut self.done)
    }

    /// Whether finished lookups wait to be taken (the loop must not sleep on them).
    pub(crate) fn has_done(&self) -> bool {
        !self.done.is_empty()
    }

    /// The earliest query deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek()
    }

    fn start_candidate(&mut self, host: &str, now: Instant, registry: &Registry) {
        let Some(l) = self.lookups.get_mut(host) else {
            return;
        };
        l.v4 = Part::Pending;
        l.v6 = Part::Pending;
        let name = l.candidates[l.index].clone();
        let server = if self.opts.conf.rotate {
            self.rotate_cursor = self.rotate_cursor.wrapping_add(1);
            self.rotate_cursor % self.opts.conf.nameservers.len()
        } else {
            0
        };
        let ask = Ask {
            host: host.to_owned(),
            name,
            qtypes: vec![QType::A, QType::Aaaa],
            server,
            tries: 0,
        };
        self.send(ask, now, registry);
    }

    fn next_generation(&mut self) -> u32 {
        self.next_generation = (self.next_generation + 1) & 0xFF_FFFF;
        self.next_generation
    }

    /// Sends one try over UDP: a fresh socket on a random port, a fresh ID per question.
    fn send(&mut self, ask: Ask, now: Instant, registry: &Registry) {
        let mut ids = Vec::with_capacity(ask.qtypes.len());
        let mut msgs = Vec::with_capacity(ask.qtypes.len());
        for &qtype in &ask.qtypes {
            let mut id = self.random_u16();
            while ids.iter().any(|&(_, other)| other == id) {
                id = self.random_u16(); // replies are told apart by ID
            }
            let mut msg = Vec::with_capacity(64);
            if let Err(e) = encode_query(id, &ask.name, qtype, &mut msg) {
                let reason = format!("{}: cannot be asked for: {e}", ask.name);
                return self.fail_all(&ask, Part::Failed(reason, Fault::Remote), now, registry);
            }
            ids.push((qtype, id));
            msgs.push(msg);
        }
        let addr = self.opts.conf.nameservers[ask.server];
        let generation = self.next_generation();
        let entry = self.queries.vacant_entry();
        let key = entry.key();
        let sent = udp_socket(addr).and_then(|mut sock| {
            for msg in &msgs {
                sock.send(msg)?;
            }
            registry.register(&mut sock, token::dns(key, generation), Interest::READABLE)?;
            Ok(sock)
        });
        match sent {
            Ok(sock) => {
                let deadline = later(now, self.opts.conf.timeout);
                entry.insert(Query {
                    generation,
                    ask,
                    ids,
                    deadline,
                    wire: Wire::Udp(sock),
                });
                self.timers.push(deadline, (key, generation));
            }
            Err(e) if out_of_descriptors(&e) => self.no_descriptor(&ask, now, registry),
            Err(e) => {
                // No socket (no route to the server, say): this try failed.
                let reason = format!("cannot reach nameserver {addr}: {e}");
                self.local_failure = true;
                self.retry_or_fail(ask, reason, now, registry);
                self.local_failure = false;
            }
        }
    }

    /// No socket for a query: not the nameserver's fault, and the next server would fare no
    /// better. The lookup ends so its connections can wait for a descriptor.
    fn no_descriptor(&mut self, ask: &Ask, now: Instant, registry: &Registry) {
        let reason = format!(
            "{}: no socket for a query: out of file descriptors",
            ask.name
        );
        self.fail_all(
            ask,
            Part::Failed(reason, Fault::NoDescriptor),
            now,
            registry,
        );
    }

    /// Every question of `ask` ends with `part`.
    fn fail_all(&mut self, ask: &Ask, part: Part, now: Instant, registry: &Registry) {
        for &qtype in &ask.qtypes {
            self.part_done(&ask.host, qtype, part.clone(), now, registry);
        }
    }

    /// After a failed try: the next nameserver, until `attempts` rounds over all of them
    /// are used up; then the questions fail with `reason`.
    fn retry_or_fail(&mut self, ask: Ask, reason: String, now: Instant, registry: &Registry) {
        let n = self.opts.conf.nameservers.len();
        let allowed = n * usize::from(self.opts.conf.attempts.max(1));
        if ask.tries + 1 < allowed {
            let next = Ask {
                server: (ask.server + 1) % n,
                tries: ask.tries + 1,
                ..ask
            };
            return self.send(next, now, registry);
        }
        let fault = if self.local_failure {
            Fault::Local
        } else {
            Fault::Remote
        };
        let part = Part::Failed(format!("{}: {reason}", ask.name), fault);
        self.fail_all(&ask, part, now, registry);
    }

    /// Whether a query socket closed since the last call.
    pub(crate) fn take_closed(&mut self) -> bool {
        std::mem::take(&mut self.closed)
    }

    fn remove_query(&mut self, key: usize, registry: &Registry) -> Option<Query> {
        let mut q = self.queries.try_remove(key)?;
        self.closed = true;
        match &mut q.wire {
            Wire::Udp(s) => {
                let _ = registry.deregister(s);
            }
            Wire::Tcp { stream, .. } => {
                let _ = registry.deregister(stream);
            }
        }
        Some(q)
    }

    /// A readiness event for a query's socket.
    pub(crate) fn on_event(
        &mut self,
        key: usize,
        generation: u32,
        now: Instant,
        registry: &Registry,
    ) {
        if self
            .queries
            .get(key)
            .is_none_or(|q| q.generation != generation)
        {
            return;
        }
        loop {
            let Some(q) = self.queries.get_mut(key) else {
                return;
            };
            if q.generation != generation {
                return; // finished, and the slab entry already serves another try
            }
            let got = match &mut q.wire {
                Wire::Udp(sock) => match sock.recv(&mut self.buf) {
                    Ok(n) => Ok(Some(self.buf[..n].to_vec())),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                },
                Wire::Tcp {
                    stream,
                    out,
                    sent,
                    reader,
                } => tcp_progress(stream, out, sent, reader, &mut self.buf),
            };
            match got {
                Ok(None) => return,
                Ok(Some(msg)) => self.on_reply(key, &msg, now, registry),
                Err(e) => {
                    // e.g. ECONNREFUSED: an ICMP port-unreachable on the connected socket.
                    let reason = format!("nameserver error: {e}");
                    return self.fail_try(key, reason, now, registry);
                }
            }
        }
    }

    /// Handles one reply: to which question (by ID), and what it says.
    fn on_reply(&mut self, key: usize, msg: &[u8], now: Instant, registry: &Registry) {
        let Some(q) = self.queries.get(key) else {
            return;
        };
        let Some(&[a, b]) = msg.get(..2) else {
            return; // too short to be anything: ignore
        };
        let msg_id = u16::from_be_bytes([a, b]);
        let Some(i) = q.ids.iter().position(|&(_, id)| id == msg_id) else {
            return; // not one of our IDs: spoofed or stale, keep waiting
        };
        let (qtype, id) = q.ids[i];
        let answer = parse_response(msg, id, &q.ask.name, qtype);
        let outcome = match answer {
            // Not an answer to this question (wrong question): keep waiting.
            Err(e) if e.is_mismatch() => return,
            Err(e) => Err(format!("malformed reply: {e}")),
            Ok(a) if a.truncated && matches!(q.wire, Wire::Udp(_)) => {
                if let Some(ask) = self.take_question(key, i, registry) {
                    self.ask_over_tcp(ask, now, registry);
                }
                return;
            }
            Ok(a) => Ok(a),
        };
        let Some(ask) = self.take_question(key, i, registry) else {
            return;
        };
        match outcome {
            Ok(a) => self.on_answer(ask, a, now, registry),
            Err(reason) => self.retry_or_fail(ask, reason, now, registry),
        }
    }

    /// Takes question `i` out of query `key` (closing the query when it was the last), and
    /// says what it asked.
    fn take_question(&mut self, key: usize, i: usize, registry: &Registry) -> Option<Ask> {
        let q = self.queries.get_mut(key)?;
        if i >= q.ids.len() {
            return None;
        }
        let (qtype, _) = q.ids.swap_remove(i);
        let mut ask = q.ask.clone();
        ask.qtypes = vec![qtype];
        q.ask.qtypes.retain(|&t| t != qtype);
        if q.ids.is_empty() {
            self.remove_query(key, registry);
        }
        Some(ask)
    }

    fn on_answer(&mut self, ask: Ask, a: Answer, now: Instant, registry: &Registry) {
        let part = match a.rcode {
            Rcode::NoError if !a.addrs.is_empty() => Part::Addrs(a.addrs, a.ttl),
            Rcode::NoError => Part::NoData(a.negative_ttl),
            Rcode::NxDomain => Part::NxDomain(a.negative_ttl),
            other => {
                let reason = format!("nameserver answered {}", rcode_name(other));
                return self.retry_or_fail(ask, reason, now, registry);
            }
        };
        for &qtype in &ask.qtypes {
            self.part_done(&ask.host, qtype, part.clone(), now, registry);
        }
    }

    /// The whole try failed (timeout, socket error): every open question moves on.
    fn fail_try(&mut self, key: usize, reason: String, now: Instant, registry: &Registry) {
        if let Some(q) = self.remove_query(key, registry) {
            self.retry_or_fail(q.ask, reason, now, registry);
        }
    }

    /// RFC 1035 §4.2.2: a truncated UDP reply is asked again over TCP, same server, same
    /// question, new ID.
    fn ask_over_tcp(&mut self, ask: Ask, now: Instant, registry: &Registry) {
        let qtype = ask.qtypes[0];
        let id = self.random_u16();
        let mut msg = Vec::new();
        if let Err(e) = encode_query(id, &ask.name, qtype, &mut msg) {
            let reason = format!("{}: cannot be asked for: {e}", ask.name);
            return self.fail_all(&ask, Part::Failed(reason, Fault::Remote), now, registry);
        }
        let mut out = Vec::with_capacity(msg.len() + 2);
        frame_tcp(&msg, &mut out);
        let addr = self.opts.conf.nameservers[ask.server];
        let generation = self.next_generation();
        let entry = self.queries.vacant_entry();
        let key = entry.key();
        let opened = TcpStream::connect(addr).and_then(|mut s| {
            registry.register(
                &mut s,
                token::dns(key, generation),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(s)
        });
        match opened {
            Ok(stream) => {
                let deadline = later(now, self.opts.conf.timeout);
                entry.insert(Query {
                    generation,
                    ask,
                    ids: vec![(qtype, id)],
                    deadline,
                    wire: Wire::Tcp {
                        stream,
                        out,
                        sent: 0,
                        reader: TcpFrameReader::new(),
                    },
                });
                self.timers.push(deadline, (key, generation));
            }
            Err(e) if out_of_descriptors(&e) => self.no_descriptor(&ask, now, registry),
            Err(e) => {
                let reason = format!("tcp to nameserver {addr}: {e}");
                self.retry_or_fail(ask, reason, now, registry);
            }
        }
    }

    /// Fires due query timeouts.
    pub(crate) fn fire_timers(&mut self, now: Instant, registry: &Registry) {
        while let Some((at, (key, generation))) = self.timers.pop_due(now) {
            let live = self
                .queries
                .get(key)
                .is_some_and(|q| q.generation == generation && q.deadline == at);
            if live {
                let secs = self.opts.conf.timeout;
                self.fail_try(key, format!("no reply within {secs:?}"), now, registry);
            }
        }
    }

    /// One family's answer for the current candidate; when both are in, the lookup ends,
    /// or moves to the next search candidate.
    fn part_done(
        &mut self,
        host: &str,
        qtype: QType,
        part: Part,
        now: Instant,
        registry: &Registry,
    ) {
        let Some(l) = self.lookups.get_mut(host) else {
            return;
        };
        match qtype {
            QType::A => l.v4 = part,
            QType::Aaaa => l.v6 = part,
        }
        if matches!(l.v4, Part::Pending) || matches!(l.v6, Part::Pending) {
            return;
        }
        let (v4, v6) = (l.v4.clone(), l.v6.clone());
        let mut addrs_v6 = Vec::new();
        let mut addrs_v4 = Vec::new();
        let mut ttl = u32::MAX;
        for p in [&v6, &v4] {
            if let Part::Addrs(a, t) = p {
                ttl = ttl.min(*t);
                for ip in a {
                    match ip {
                        IpAddr::V6(_) => addrs_v6.push(*ip),
                        IpAddr::V4(_) => addrs_v4.push(*ip),
                    }
                }
            }
        }
        if !addrs_v4.is_empty() || !addrs_v6.is_empty() {
            let ttl = self.clamp(Duration::from_secs(u64::from(ttl)));
            return self.finish(
                host,
                Ok(interleave(addrs_v6, addrs_v4)),
                later(now, ttl),
                now,
            );
        }
        let negative = matches!(v4, Part::NxDomain(_) | Part::NoData(_))
            && matches!(v6, Part::NxDomain(_) | Part::NoData(_));
        if negative && l.index + 1 < l.candidates.len() {
            l.index += 1;
            return self.start_candidate(host, now, registry);
        }
        let name = l.candidates[l.index].clone();
        let fault = |p: &Part| match p {
            Part::Failed(_, f) => Some(*f),
            _ => None,
        };
        let no_descriptor = [&v4, &v6]
            .iter()
            .any(|p| fault(p) == Some(Fault::NoDescriptor));
        let (reason, ttl) = match (&v4, &v6) {
            (Part::Failed(r, Fault::NoDescriptor | Fault::Local), _)
            | (_, Part::Failed(r, Fault::NoDescriptor | Fault::Local)) => {
                (r.clone(), Duration::ZERO)
            }
            (Part::Failed(r, Fault::Remote), _) | (_, Part::Failed(r, Fault::Remote)) => {
                (r.clone(), FAILURE_TTL)
            }
            (Part::NxDomain(t), _) | (_, Part::NxDomain(t)) => (
                format!("{name}: NXDOMAIN (no such name)"),
                self.clamp(Duration::from_secs(u64::from(t.unwrap_or(0)))),
            ),
            (Part::NoData(t), _) => (
                format!("{name}: no addresses (NODATA)"),
                self.clamp(Duration::from_secs(u64::from(t.unwrap_or(0)))),
            ),
            _ => (format!("{name}: no addresses"), FAILURE_TTL),
        };
        let error = LookupError {
            message: reason,
            out_of_descriptors: no_descriptor,
        };
        self.finish(host, Err(error), later(now, ttl), now);
    }

    fn clamp(&self, ttl: Duration) -> Duration {
        ttl.clamp(
            self.opts.ttl_floor,
            self.opts.ttl_ceiling.max(self.opts.ttl_floor),
        )
    }

    fn finish(&mut self, host: &str, outcome: Outcome, expires: Instant, now: Instant) {
        self.lookups.remove(host);
        self.done.push((host.to_owned(), outcome.clone()));
        // An answer that expires now (a failure here, say) is not cached.
        self.cache.insert(host.to_owned(), outcome, expires, now);
    }
}

/// RFC 8305 §4: alternate families, IPv6 first.
fn interleave(v6: Vec<IpAddr>, v4: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

fn rcode_name(r: Rcode) -> String {
    match r {
        Rcode::NoError => "NOERROR".into(),
        Rcode::FormErr => "FORMERR".into(),
        Rcode::ServFail => "SERVFAIL".into(),
        Rcode::NxDomain => "NXDOMAIN".into(),
        Rcode::NotImp => "NOTIMP".into(),
        Rcode::Refused => "REFUSED".into(),
        Rcode::Other(n) => format!("rcode {n}"),
    }
}

/// A fresh UDP socket on a random port, connected to the nameserver so the kernel drops
/// datagrams from anyone else.
fn udp_socket(server: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(server)?;
    Ok(sock)
}

/// Moves a TCP query along: writes the framed query, reads until a whole reply arrived.
fn tcp_progress(
    stream: &mut TcpStream,
    out: &[u8],
    sent: &mut usize,
    reader: &mut TcpFrameReader,
    buf: &mut [u8],
) -> io::Result<Option<Vec<u8>>> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    // A frame that arrived with the last one (after a mismatched reply) comes first.
    if let Some(msg) = reader.push(&[]) {
        return Ok(Some(msg));
    }
    while *sent < out.len() {
        match stream.write(&out[*sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    loop {
        match stream.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                if let Some(msg) = reader.push(&buf[..n]) {
                    return Ok(Some(msg));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_starts_with_ipv6() {
        let v6: Vec<IpAddr> = vec!["::1".parse().unwrap(), "::2".parse().unwrap()];
        let v4: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        let got = interleave(v6, v4);
        let want: Vec<IpAddr> = ["::1", "127.0.0.1", "::2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
    }
}
