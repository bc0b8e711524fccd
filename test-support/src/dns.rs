//! A scriptable fake DNS server (UDP and TCP on one loopback port) for parafetch's
//! integration tests.
//!
//! Owns: one UDP socket and one TCP listener bound to the same ephemeral port, a UDP thread
//! that parses each query, records it and asks a test-supplied handler for a [`Reply`], an
//! acceptor thread plus one thread per TCP connection (2-byte length prefix both ways,
//! several queries per connection), one timer thread that sends every [`Reply::Delay`]ed
//! answer (so a slow answer never holds up the others), and the record of every query, which
//! tests wait on through a condvar.
//! Must not: bind fixed ports, sleep to synchronise (only [`Reply::Delay`] waits, to simulate
//! a slow server, and it waits on a timer thread), spawn a thread per query, or depend on
//! anything but std and socket2.
//!
//! Messages follow RFC 1035: QR=1, opcode 0, RD copied, RA=1, AA=0; the question is echoed as
//! received (original case); records for the query name use the compression pointer 0xC00C,
//! every other name (CNAME targets and their records, SOA names) is written in full; class
//! IN. A query with an EDNS0 OPT record gets an OPT back. Over UDP a message larger than the
//! client's limit (512 bytes, or the EDNS0 payload size) is sent as TC=1 with no records,
//! like a real server; over TCP it is sent whole.
//!
//! Both sockets are bound before [`FakeDns::start`] returns, so a client may query at once.
//! The handler runs on the server's threads: it must not block (use [`Reply::Delay`] or
//! [`Reply::Drop`] to hold an answer back), or every query behind it waits too.
//!
//! ```
//! # use std::{net::{Ipv4Addr, UdpSocket}, time::Duration};
//! use parafetch_test_support::dns::{FakeDns, QType, build_query, zone};
//!
//! let dns = FakeDns::start(zone(&[("a.test", &[Ipv4Addr::new(127, 0, 0, 1)], &[])], 60));
//! // ... point the client's resolver at dns.addr(); here a query by hand:
//! UdpSocket::bind("127.0.0.1:0")?.send_to(&build_query(1, "a.test", QType::A), dns.addr())?;
//! assert!(dns.wait_for_queries(1, Duration::from_secs(5)));
//! assert_eq!(dns.count_for("a.test", QType::A), 1);
//! # Ok::<(), std::io::Error>(())
//! ```

use crate::watched::Watched;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// TTL of records whose [`Reply`] variant has no `ttl` field (CNAME chains, extra records).
pub const DEFAULT_TTL: u32 = 300;
/// The address every decoy reply ([`Reply::WrongId`], [`Reply::WrongQuestion`]) answers an
/// A query with. A client that returns it has accepted a reply it must ignore.
pub const POISON_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
/// The address every decoy reply answers an AAAA query with (see [`POISON_V4`]).
pub const POISON_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x66);
/// The name in the question of a [`Reply::WrongQuestion`] decoy.
pub const WRONG_QUESTION_NAME: &str = "wrong-question.invalid";
/// MNAME of every SOA record the server writes.
pub const SOA_MNAME: &str = "ns.fakedns.invalid";
/// RNAME of every SOA record the server writes.
pub const SOA_RNAME: &str = "hostmaster.fakedns.invalid";
/// The largest UDP reply sent to a client that did not advertise EDNS0 (RFC 1035 §4.2.1).
pub const UDP_LIMIT: usize = 512;
/// The UDP payload size the server's own OPT record advertises.
pub const EDNS_PAYLOAD: u16 = 1232;

/// Response code: no error.
pub const RCODE_NOERROR: u8 = 0;
/// Response code: the query could not be parsed.
pub const RCODE_FORMERR: u8 = 1;
/// Response code: server failure.
pub const RCODE_SERVFAIL: u8 = 2;
/// Response code: the name does not exist.
pub const RCODE_NXDOMAIN: u8 = 3;
/// Response code: opcode not implemented.
pub const RCODE_NOTIMP: u8 = 4;
/// Response code: refused.
pub const RCODE_REFUSED: u8 = 5;

/// Record type A.
pub const TYPE_A: u16 = 1;
/// Record type CNAME.
pub const TYPE_CNAME: u16 = 5;
/// Record type SOA.
pub const TYPE_SOA: u16 = 6;
/// Record type AAAA.
pub const TYPE_AAAA: u16 = 28;
/// Record type OPT (EDNS0 pseudo-record).
pub const TYPE_OPT: u16 = 41;
/// Class IN.
pub const CLASS_IN: u16 = 1;

// How long a drop waits for the server's threads before leaving them to end on their own.
const DROP_GRACE: Duration = Duration::from_secs(5);
// Asked for (the kernel caps it at net.core.rmem_max): a burst of 500 queries in flight
// overflows the default ~200 KiB receive buffer of a loopback UDP socket.
const UDP_RECV_BUFFER: usize = 4 << 20;
// Guards against following compression pointers forever in a hostile message.
const MAX_POINTER_JUMPS: usize = 64;

// ---------------------------------------------------------------------------------------------
// Queries and replies

/// The type asked for in a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QType {
    /// IPv4 address (1).
    A,
    /// IPv6 address (28).
    Aaaa,
    /// Any other type; never 1 or 28 when made by [`QType::from_code`].
    Other(u16),
}

impl QType {
    /// The type for a wire code: 1 is `A`, 28 is `Aaaa`, anything else `Other`.
    pub fn from_code(code: u16) -> QType {
        match code {
            TYPE_A => QType::A,
            TYPE_AAAA => QType::Aaaa,
            other => QType::Other(other),
        }
    }

    /// The wire code.
    pub fn code(self) -> u16 {
        match self {
            QType::A => TYPE_A,
            QType::Aaaa => TYPE_AAAA,
            QType::Other(code) => code,
        }
    }
}

/// One query as the server received it.
#[derive(Clone, Debug)]
pub struct Query {
    /// The message id.
    pub id: u16,
    /// The question name, lowercase, without a trailing dot (the root is `""`).
    pub name: String,
    /// The question type.
    pub qtype: QType,
    /// Whether it came over TCP.
    pub tcp: bool,
    /// The client's address.
    pub from: SocketAddr,
}

/// What the server does with one query; returned by the handler.
///
/// Content variants (`Answer`, `Cname`, `CnameChain`, `NxDomain`, `NoData`, `ServFail`,
/// `Refused`, `ExtraRecordsForOtherNames`) become one message. The others change how, when,
/// or whether a message is sent, and wrap the reply that is finally sent. Inside
/// [`Reply::Cname`]'s `then`, a wrapper contributes its inner content (its behaviour is
/// ignored) and `Drop` and `Raw` contribute nothing.
#[derive(Clone, Debug)]
pub enum Reply {
    /// NOERROR; the answer holds the addresses matching the query type (none for other
    /// types), owned by the query name.
    Answer {
        /// A records, sent for A queries.
        v4: Vec<Ipv4Addr>,
        /// AAAA records, sent for AAAA queries.
        v6: Vec<Ipv6Addr>,
        /// TTL of every record.
        ttl: u32,
    },
    /// A CNAME record from the query name to `target`, then the records `then` gives,
    /// owned by `target` (its rcode and SOA, if any, become the message's).
    Cname {
        /// Where the alias points.
        target: String,
        /// What the target resolves to.
        then: Box<Reply>,
        /// TTL of the CNAME record.
        ttl: u32,
    },
    /// NOERROR with CNAME records query -> `names[0]` -> `names[1]` -> ... and no addresses
    /// (for loop and length-limit tests); TTL [`DEFAULT_TTL`].
    CnameChain {
        /// The targets, in order.
        names: Vec<String>,
    },
    /// NXDOMAIN with an SOA record in the authority section (RFC 2308), owned by the
    /// parent of the (last) name.
    NxDomain {
        /// TTL of the SOA record.
        soa_ttl: u32,
        /// The SOA MINIMUM field.
        soa_minimum: u32,
    },
    /// NOERROR, no answer, an SOA record in the authority section (RFC 2308 NODATA).
    NoData {
        /// TTL of the SOA record.
        soa_ttl: u32,
        /// The SOA MINIMUM field.
        soa_minimum: u32,
    },
    /// SERVFAIL, no records.
    ServFail,
    /// REFUSED, no records.
    Refused,
    /// Never answer.
    Drop,
    /// Handle the inner reply after the delay, on the timer thread; other queries go on.
    Delay(Duration, Box<Reply>),
    /// Over UDP: TC=1, NOERROR, no records (the inner reply is not used). Over TCP: the
    /// inner reply.
    Truncated(Box<Reply>),
    /// First a decoy with id+1 answering with [`POISON_V4`]/[`POISON_V6`] (must be
    /// ignored), then the inner reply.
    WrongId(Box<Reply>),
    /// Over UDP: the inner reply, sent from another (fresh, ephemeral) UDP socket, and
    /// nothing from the server's port (must be ignored). Over TCP: the inner reply as is.
    FromOtherPort(Box<Reply>),
    /// First a decoy whose question is [`WRONG_QUESTION_NAME`] (same id, same type),
    /// answering with [`POISON_V4`]/[`POISON_V6`] (must be ignored), then the inner reply.
    WrongQuestion(Box<Reply>),
    /// A poisoning attempt: NOERROR with the query name's A records (for A queries) and,
    /// whatever the query type, A records owned by `other`; TTL [`DEFAULT_TTL`].
    ExtraRecordsForOtherNames {
        /// A records of the query name.
        v4: Vec<Ipv4Addr>,
        /// The unrelated name.
        other: String,
        /// A records claimed for `other`.
        other_v4: Vec<Ipv4Addr>,
    },
    /// These exact bytes (the first two replaced by the query's id), never truncated.
    Raw(Vec<u8>),
}

// ---------------------------------------------------------------------------------------------
// Shared state

#[derive(Default)]
struct Shared {
    state: Watched<State>,
    stop: AtomicBool,
}

#[derive(Default)]
struct State {
    queries: Vec<Query>,
    malformed: usize,
    panics: Vec<String>,
    // Handles of open TCP connections, shut down on drop to end their threads.
    conns: HashMap<u64, TcpStream>,
    next_conn: u64,
    // Set under the lock, so the acceptor cannot register a connection the drop misses.
    stopping: bool,
}

type Handler = dyn Fn(&Query) -> Reply + Send + Sync;

struct Server {
    handler: Box<Handler>,
    shared: Shared,
    timer: Sender<TimerMsg>,
}

// Where a reply goes: back over UDP from a given socket, or down a TCP connection.
#[derive(Clone)]
enum Via {
    Udp {
        sock: Arc<UdpSocket>,
        to: SocketAddr,
    },
    Tcp(Arc<Mutex<TcpStream>>),
}

// A parsed query: what encoding a reply needs.
struct Incoming {
    id: u16,
    rd: bool,
    // The question as received: name (uncompressed), type, class.
    question: Vec<u8>,
    name: String,
    qtype: QType,
    // The EDNS0 UDP payload size, if the query had an OPT record.
    edns: Option<u16>,
}

impl Incoming {
    fn udp_limit(&self) -> usize {
        self.edns
            .map_or(UDP_LIMIT, |size| usize::from(size).max(UDP_LIMIT))
    }
}

// ---------------------------------------------------------------------------------------------
// FakeDns

/// A fake DNS server on 127.0.0.1 (or [`FakeDns::start_on`]'s address), UDP and TCP on the
/// same ephemeral port, answering each query with what the handler returns.
///
/// Dropping it stops every thread and waits (up to 5 s) for them to end; delayed replies not
/// yet sent are discarded. If the handler panicked, the drop panics too (unless the test is
/// already panicking), so assertions inside handlers count; a panicking handler's query gets
/// SERVFAIL.
pub struct FakeDns {
    addr: SocketAddr,
    server: Arc<Server>,
    // Disconnects once every server thread has ended (each holds a sender).
    done: Mutex<Receiver<()>>,
}

impl FakeDns {
    /// Binds 127.0.0.1 (UDP, then TCP on the same port) and serves every query with
    /// `handler`.
    ///
    /// # Panics
    ///
    /// If no port could be bound or a thread could not be spawned.
    pub fn start<F>(handler: F) -> FakeDns
    where
        F: Fn(&Query) -> Reply + Send + Sync + 'static,
    {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), handler)
    }

    /// Like [`FakeDns::start`] on another loopback address, e.g. `::1`.
    ///
    /// # Panics
    ///
    /// If no port could be bound or a thread could not be spawned.
    pub fn start_on<F>(ip: IpAddr, handler: F) -> FakeDns
    where
        F: Fn(&Query) -> Reply + Send + Sync + 'static,
    {
        Self::try_start_on(ip, handler)
            .unwrap_or_else(|e| panic!("fake DNS server cannot start on {ip}: {e}"))
    }

    /// Like [`FakeDns::start_on`], returning errors.
    ///
    /// # Errors
    ///
    /// Binding failed (after retrying with new ports) or a thread could not be spawned.
    pub fn try_start_on<F>(ip: IpAddr, handler: F) -> io::Result<FakeDns>
    where
        F: Fn(&Query) -> Reply + Send + Sync + 'static,
    {
        Self::try_start_at(SocketAddr::new(ip, 0), handler)
    }

    /// Like [`FakeDns::try_start_on`] at a given address; port 0 picks a free one. A fixed
    /// port is for benchmarks that must look like the system's nameserver (port 53), never
    /// for tests.
    ///
    /// # Errors
    ///
    /// Binding failed or a thread could not be spawned.
    pub fn try_start_at<F>(at: SocketAddr, handler: F) -> io::Result<FakeDns>
    where
        F: Fn(&Query) -> Reply + Send + Sync + 'static,
    {
        let (udp, tcp) = bind_pair(at.ip(), at.port())?;
        let addr = udp.local_addr()?;
        // Best effort: a smaller buffer only risks drops under bursts.
        let _ = socket2::SockRef::from(&udp).set_recv_buffer_size(UDP_RECV_BUFFER);
        let (timer_tx, timer_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let server = Arc::new(Server {
            handler: Box::new(handler),
            shared: Shared::default(),
            timer: timer_tx,
        });
        // Built first, so a failed spawn below stops the threads already running.
        let dns = FakeDns {
            addr,
            server: Arc::clone(&server),
            done: Mutex::new(done_rx),
        };
        let udp = Arc::new(udp);
        spawn("fakedns-udp", &done_tx, {
            let server = Arc::clone(&server);
            move || udp_loop(&server, &udp)
        })?;
        spawn("fakedns-accept", &done_tx, {
            let server = Arc::clone(&server);
            let done = done_tx.clone();
            move || accept_loop(&server, &tcp, &done)
        })?;
        spawn("fakedns-timer", &done_tx, move || {
            timer_loop(&server, &timer_rx)
        })?;
        Ok(dns)
    }

    /// The address queries go to (the same port for UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every query received (UDP and TCP), in order of arrival.
    pub fn queries(&self) -> Vec<Query> {
        self.server.shared.state.lock().queries.clone()
    }

    /// How many queries were received.
    pub fn query_count(&self) -> usize {
        self.server.shared.state.lock().queries.len()
    }

    /// How many queries asked for `name` (any case, trailing dot or not) with `qtype`.
    pub fn count_for(&self, name: &str, qtype: QType) -> usize {
        let name = normalize_name(name);
        count_matching(&self.server.shared.state.lock(), &name, qtype)
    }

    /// How many queries came over TCP.
    pub fn tcp_query_count(&self) -> usize {
        let state = self.server.shared.state.lock();
        state.queries.iter().filter(|q| q.tcp).count()
    }

    /// How many messages could not be parsed as a query (answered FORMERR when they had an
    /// id, or ignored); they are not in [`FakeDns::queries`].
    pub fn malformed_count(&self) -> usize {
        self.server.shared.state.lock().malformed
    }

    /// Messages of handler panics, as "query N (name TYPE): message".
    pub fn handler_panics(&self) -> Vec<String> {
        self.server.shared.state.lock().panics.clone()
    }

    /// Waits until at least `n` queries were received; false on timeout.
    pub fn wait_for_queries(&self, n: usize, timeout: Duration) -> bool {
        self.server
            .shared
            .state
            .wait_until(timeout, |s| s.queries.len() >= n)
    }

    /// Waits until at least `n` queries asked for `name` with `qtype`; false on timeout.
    pub fn wait_for_count(&self, name: &str, qtype: QType, n: usize, timeout: Duration) -> bool {
        let name = normalize_name(name);
        self.server
            .shared
            .state
            .wait_until(timeout, |s| count_matching(s, &name, qtype) >= n)
    }

    /// Waits until `pred` holds for the queries received so far; false on timeout.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Query]) -> bool) -> bool {
        self.server
            .shared
            .state
            .wait_until(timeout, |s| pred(&s.queries))
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        let shared = &self.server.shared;
        shared.stop.store(true, Ordering::SeqCst);
        let _ = self.server.timer.send(TimerMsg::Stop);
        // Wake the UDP thread out of recv_from and the acceptor out of accept; both see the
        // flag and return.
        if let Ok(waker) = UdpSocket::bind(SocketAddr::new(self.addr.ip(), 0)) {
            let _ = waker.send_to(&[], self.addr);
        }
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        shared.state.update(|s| {
            s.stopping = true;
            for (_, conn) in s.conns.drain() {
                let _ = conn.shutdown(Shutdown::Both);
            }
        });
        // Nothing is ever sent on `done`: this returns when every thread has dropped its
        // sender, or after the grace period (a handler blocking forever), never hanging.
        let done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = done.recv_timeout(DROP_GRACE);
        if !thread::panicking() {
            let panics = self.handler_panics();
            assert!(panics.is_empty(), "fake DNS handler panicked: {panics:?}");
        }
    }
}

/// A ready-made zone: each name has the given addresses, everything else is NXDOMAIN.
///
/// A listed name asked for a type it has no addresses of (or any other type) gets NODATA.
/// Names match in any case, with or without a trailing dot; a name listed twice gets both
/// lists. `ttl` is used for records, SOA TTL and SOA MINIMUM.
pub fn zone(
    entries: &[(&str, &[Ipv4Addr], &[Ipv6Addr])],
    ttl: u32,
) -> impl Fn(&Query) -> Reply + Send + Sync + 'static {
    let mut map: HashMap<String, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)> = HashMap::new();
    for (name, v4, v6) in entries {
        let entry = map.entry(normalize_name(name)).or_default();
        entry.0.extend_from_slice(v4);
        entry.1.extend_from_slice(v6);
    }
    move |q: &Query| {
        let Some((v4, v6)) = map.get(&q.name) else {
            return Reply::NxDomain {
                soa_ttl: ttl,
                soa_minimum: ttl,
            };
        };
        let (v4, v6) = match q.qtype {
            QType::A => (v4.clone(), Vec::new()),
            QType::Aaaa => (Vec::new(), v6.clone()),
            QType::Other(_) => (Vec::new(), Vec::new()),
        };
        if v4.is_empty() && v6.is_empty() {
            Reply::NoData {
                soa_ttl: ttl,
                soa_minimum: ttl,
            }
        } else {
            Reply::Answer { v4, v6, ttl }
        }
    }
}

/// `name` as [`Query::name`] spells it: ASCII lowercase, no trailing dot.
pub fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn count_matching(state: &State, name: &str, qtype: QType) -> usize {
    state
        .queries
        .iter()
        .filter(|q| q.qtype == qtype && q.name == name)
        .count()
}

// Binds UDP on an ephemeral port, then TCP on the same port number; another program may hold
// that TCP port, so try again with a new UDP port.
fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(UdpSocket, TcpListener)> {
    if port != 0 {
        let udp = UdpSocket::bind(SocketAddr::new(ip, port))?;
        let tcp = TcpListener::bind(SocketAddr::new(ip, port))?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..64 {
        let udp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        match TcpListener::bind(udp.local_addr()?) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no port")))
}

// Spawns a server thread holding a `done` sender for as long as it runs.
fn spawn(name: &str, done: &Sender<()>, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let done = done.clone();
    thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _done = done;
            f();
        })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Threads

fn udp_loop(server: &Server, sock: &Arc<UdpSocket>) {
    // One buffer for the thread's life; the largest UDP payload fits.
    let mut buf = vec![0u8; 65536];
    loop {
        let received = sock.recv_from(&mut buf);
        if server.shared.stop.load(Ordering::SeqCst) {
            return;
        }
        match received {
            Ok((n, from)) => {
                let via = Via::Udp {
                    sock: Arc::clone(sock),
                    to: from,
                };
                server.handle(&buf[..n], from, &via);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionRefused
                ) => {}
            // Anything else would spin; clients then time out loudly.
            Err(_) => return,
        }
    }
}

fn accept_loop(server: &Arc<Server>, listener: &TcpListener, done: &Sender<()>) {
    loop {
        let accepted = listener.accept();
        if server.shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                ) =>
            {
                continue;
            }
            // Anything else (EMFILE, ...) would spin; closing the listener makes clients fail
            // loudly with "connection refused" instead.
            Err(_) => return,
        };
        let _ = stream.set_nodelay(true);
        let (Ok(reader), Ok(handle)) = (stream.try_clone(), stream.try_clone()) else {
            continue;
        };
        let key = server.shared.state.update(|s| {
            if s.stopping {
                return None;
            }
            let key = s.next_conn;
            s.next_conn += 1;
            s.conns.insert(key, handle);
            Some(key)
        });
        let Some(key) = key else { return };
        let via = Via::Tcp(Arc::new(Mutex::new(stream)));
        let spawned = spawn(&format!("fakedns-conn-{key}"), done, {
            let server = Arc::clone(server);
            move || {
                conn_loop(&server, reader, peer, &via);
                server.shared.state.update(|s| s.conns.remove(&key));
            }
        });
        if spawned.is_err() {
            server.shared.state.update(|s| s.conns.remove(&key));
        }
    }
}

// Reads length-prefixed queries until EOF or an error; replies go through `via`.
fn conn_loop(server: &Server, mut reader: TcpStream, peer: SocketAddr, via: &Via) {
    let mut len = [0u8; 2];
    let mut buf = Vec::new();
    loop {
        if reader.read_exact(&mut len).is_err() {
            return;
        }
        buf.resize(usize::from(u16::from_be_bytes(len)), 0);
        if reader.read_exact(&mut buf).is_err() || server.shared.stop.load(Ordering::SeqCst) {
            return;
        }
        server.handle(&buf, peer, via);
    }
}

enum TimerMsg {
    At(Timed),
    Stop,
}

// A delayed reply; ordered by deadline, then by arrival, so equal delays keep their order.
struct Timed {
    at: Instant,
    seq: u64,
    inc: Arc<Incoming>,
    via: Via,
    reply: Reply,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Timed {}

impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

fn timer_loop(server: &Server, rx: &Receiver<TimerMsg>) {
    let mut heap: BinaryHeap<Reverse<Timed>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(t)| t.at <= now) {
            if let Some(Reverse(t)) = heap.pop() {
                server.respond(&t.inc, &t.via, t.reply);
            }
        }
        let msg = match heap.peek() {
            Some(Reverse(next)) => match rx.recv_timeout(next.at.saturating_duration_since(now)) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(msg) => msg,
                Err(_) => return,
            },
        };
        match msg {
            TimerMsg::Stop => return,
            TimerMsg::At(mut timed) => {
                timed.seq = seq;
                seq += 1;
                heap.push(Reverse(timed));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Serving one query

impl Server {
    fn handle(&self, bytes: &[u8], from: SocketAddr, via: &Via) {
        let inc = match parse_query(bytes) {
            Ok(inc) => inc,
            Err(bad) => {
                self.shared.state.update(|s| s.malformed += 1);
                if let Some((id, rd, rcode)) = bad {
                    send(via, &header_only(id, rd, rcode));
                }
                return;
            }
        };
        let query = Query {
            id: inc.id,
            name: inc.name.clone(),
            qtype: inc.qtype,
            tcp: matches!(via, Via::Tcp(_)),
            from,
        };
        // Recorded before the handler runs, so a test can wait for a query the handler is
        // still holding.
        let index = self.shared.state.update(|s| {
            s.queries.push(query.clone());
            s.queries.len() - 1
        });
        let reply = match panic::catch_unwind(AssertUnwindSafe(|| (self.handler)(&query))) {
            Ok(reply) => reply,
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".to_string());
                let what = format!("query {index} ({} {:?}): {msg}", query.name, query.qtype);
                self.shared.state.update(|s| s.panics.push(what));
                Reply::ServFail
            }
        };
        self.respond(&Arc::new(inc), via, reply);
    }

    fn respond(&self, inc: &Arc<Incoming>, via: &Via, reply: Reply) {
        match reply {
            Reply::Drop => {}
            Reply::Delay(delay, inner) => {
                let _ = self.timer.send(TimerMsg::At(Timed {
                    at: Instant::now() + delay,
                    seq: 0,
                    inc: Arc::clone(inc),
                    via: via.clone(),
                    reply: *inner,
                }));
            }
            Reply::Truncated(inner) => match via {
                Via::Udp { .. } => send(via, &assemble(inc, true, &Sections::default())),
                Via::Tcp(_) => self.respond(inc, via, *inner),
            },
            Reply::WrongId(inner) => {
                let mut decoy = decoy(inc, &inc.question);
                let wrong = inc.id.wrapping_add(1).to_be_bytes();
                decoy[..2].copy_from_slice(&wrong);
                send(via, &decoy);
                self.respond(inc, via, *inner);
            }
            Reply::WrongQuestion(inner) => {
                let other = if inc.name == WRONG_QUESTION_NAME {
                    "other-wrong-question.invalid"
                } else {
                    WRONG_QUESTION_NAME
                };
                let mut question = Vec::new();
                push_name(&mut question, other);
                question.extend_from_slice(&inc.question[inc.question.len() - 4..]);
                send(via, &decoy(inc, &question));
                self.respond(inc, via, *inner);
            }
            Reply::FromOtherPort(inner) => match via {
                Via::Udp { sock, to } => {
                    let ip = sock
                        .local_addr()
                        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
                    if let Ok(other) = UdpSocket::bind(SocketAddr::new(ip, 0)) {
                        let via = Via::Udp {
                            sock: Arc::new(other),
                            to: *to,
                        };
                        self.respond(inc, &via, *inner);
                    }
                }
                Via::Tcp(_) => self.respond(inc, via, *inner),
            },
            Reply::Raw(mut bytes) => {
                if bytes.len() >= 2 {
                    bytes[..2].copy_from_slice(&inc.id.to_be_bytes());
                }
                send(via, &bytes);
            }
            content => {
                let mut sections = Sections::default();
                let owner = Owner {
                    name: &inc.name,
                    is_question: true,
                };
                add_content(&mut sections, &content, owner, inc.qtype);
                let mut msg = assemble(inc, false, &sections);
                if matches!(via, Via::Udp { .. }) && msg.len() > inc.udp_limit() {
                    let rcode = sections.rcode;
                    msg = assemble(
                        inc,
                        true,
                        &Sections {
                            rcode,
                            ..Sections::default()
                        },
                    );
                }
                send(via, &msg);
            }
        }
    }
}

fn send(via: &Via, msg: &[u8]) {
    match via {
        Via::Udp { sock, to } => {
            let _ = sock.send_to(msg, to);
        }
        Via::Tcp(stream) => {
            let len = u16::try_from(msg.len()).unwrap_or(u16::MAX);
            let mut framed = Vec::with_capacity(2 + usize::from(len));
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&msg[..usize::from(len)]);
            let mut stream = stream.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = stream.write_all(&framed);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

#[derive(Default)]
struct Sections {
    rcode: u8,
    answer: Vec<u8>,
    answer_count: u16,
    authority: Vec<u8>,
    authority_count: u16,
}

// The owner of the records being written: the query name (written as the pointer 0xC00C)
// or another name (written in full).
#[derive(Clone, Copy)]
struct Owner<'a> {
    name: &'a str,
    is_question: bool,
}

impl Owner<'_> {
    fn write(self, out: &mut Vec<u8>) {
        if self.is_question {
            out.extend_from_slice(&[0xC0, 0x0C]);
        } else {
            push_name(out, self.name);
        }
    }
}

fn add_content(s: &mut Sections, reply: &Reply, owner: Owner<'_>, qtype: QType) {
    match reply {
        Reply::Answer { v4, v6, ttl } => match qtype {
            QType::A => {
                for ip in v4 {
                    s.answer_count += 1;
                    write_record(&mut s.answer, owner, TYPE_A, *ttl, &ip.octets());
                }
            }
            QType::Aaaa => {
                for ip in v6 {
                    s.answer_count += 1;
                    write_record(&mut s.answer, owner, TYPE_AAAA, *ttl, &ip.octets());
                }
            }
            QType::Other(_) => {}
        },
        Reply::Cname { target, then, ttl } => {
            let mut rdata = Vec::new();
            push_name(&mut rdata, target);
            s.answer_count += 1;
            write_record(&mut s.answer, owner, TYPE_CNAME, *ttl, &rdata);
            let owner = Owner {
                name: target,
                is_question: false,
            };
            add_content(s, then, owner, qtype);
        }
        Reply::CnameChain { names } => {
            let mut owner = owner;
            for name in names {
                let mut rdata = Vec::new();
                push_name(&mut rdata, name);
                s.answer_count += 1;
                write_record(&mut s.answer, owner, TYPE_CNAME, DEFAULT_TTL, &rdata);
                owner = Owner {
                    name,
                    is_question: false,
                };
            }
        }
        Reply::NxDomain {
            soa_ttl,
            soa_minimum,
        } => {
            s.rcode = RCODE_NXDOMAIN;
            add_soa(s, owner.name, *soa_ttl, *soa_minimum);
        }
        Reply::NoData {
            soa_ttl,
            soa_minimum,
        } => add_soa(s, owner.name, *soa_ttl, *soa_minimum),
        Reply::ServFail => s.rcode = RCODE_SERVFAIL,
        Reply::Refused => s.rcode = RCODE_REFUSED,
        Reply::ExtraRecordsForOtherNames {
            v4,
            other,
            other_v4,
        } => {
            if qtype == QType::A {
                for ip in v4 {
                    s.answer_count += 1;
                    write_record(&mut s.answer, owner, TYPE_A, DEFAULT_TTL, &ip.octets());
                }
            }
            let other = Owner {
                name: other,
                is_question: false,
            };
            for ip in other_v4 {
                s.answer_count += 1;
                write_record(&mut s.answer, other, TYPE_A, DEFAULT_TTL, &ip.octets());
            }
        }
        Reply::Delay(_, inner)
        | Reply::Truncated(inner)
        | Reply::WrongId(inner)
        | Reply::FromOtherPort(inner)
        | Reply::WrongQuestion(inner) => add_content(s, inner, owner, qtype),
        Reply::Drop | Reply::Raw(_) => {}
    }
}

// An SOA record owned by the parent of `name` (the root for a single label).
fn add_soa(s: &mut Sections, name: &str, ttl: u32, minimum: u32) {
    let zone = name.split_once('.').map_or("", |(_, parent)| parent);
    let mut rdata = Vec::new();
    push_name(&mut rdata, SOA_MNAME);
    push_name(&mut rdata, SOA_RNAME);
    for field in [1u32, 3600, 600, 86400, minimum] {
        rdata.extend_from_slice(&field.to_be_bytes());
    }
    let owner = Owner {
        name: zone,
        is_question: false,
    };
    s.authority_count += 1;
    write_record(&mut s.authority, owner, TYPE_SOA, ttl, &rdata);
}

fn write_record(out: &mut Vec<u8>, owner: Owner<'_>, rtype: u16, ttl: u32, rdata: &[u8]) {
    owner.write(out);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

// Writes `name` uncompressed. Empty labels (a trailing dot) are skipped and labels over 63
// bytes cut, so any string encodes; use Reply::Raw to send a malformed name.
fn push_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let label = &label.as_bytes()[..label.len().min(63)];
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
}

// Header, the query's question, the sections, and an OPT record if the query had one.
fn assemble(inc: &Incoming, tc: bool, s: &Sections) -> Vec<u8> {
    let mut msg = Vec::with_capacity(64 + s.answer.len() + s.authority.len());
    push_header(
        &mut msg,
        inc,
        tc,
        s.rcode,
        [1, s.answer_count, s.authority_count],
    );
    msg.extend_from_slice(&inc.question);
    msg.extend_from_slice(&s.answer);
    msg.extend_from_slice(&s.authority);
    push_opt(&mut msg, inc);
    msg
}

fn push_header(msg: &mut Vec<u8>, inc: &Incoming, tc: bool, rcode: u8, counts: [u16; 3]) {
    let flags1 = 0x80 | (u8::from(tc) << 1) | u8::from(inc.rd); // QR, opcode 0, AA=0
    let flags2 = 0x80 | (rcode & 0x0F); // RA
    let additional = u16::from(inc.edns.is_some());
    msg.extend_from_slice(&inc.id.to_be_bytes());
    msg.extend_from_slice(&[flags1, flags2]);
    for count in counts {
        msg.extend_from_slice(&count.to_be_bytes());
    }
    msg.extend_from_slice(&additional.to_be_bytes());
}

fn push_opt(msg: &mut Vec<u8>, inc: &Incoming) {
    if inc.edns.is_some() {
        msg.push(0); // root
        msg.extend_from_slice(&TYPE_OPT.to_be_bytes());
        msg.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        msg.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // extended rcode, version, flags, rdlen
    }
}

// A reply that must be ignored: `question` echoed, a poison address for its type.
fn decoy(inc: &Incoming, question: &[u8]) -> Vec<u8> {
    let owner = Owner {
        name: "",
        is_question: true,
    };
    let mut s = Sections::default();
    match inc.qtype {
        QType::A => write_record(
            &mut s.answer,
            owner,
            TYPE_A,
            DEFAULT_TTL,
            &POISON_V4.octets(),
        ),
        QType::Aaaa => write_record(
            &mut s.answer,
            owner,
            TYPE_AAAA,
            DEFAULT_TTL,
            &POISON_V6.octets(),
        ),
        QType::Other(_) => {}
    }
    s.answer_count = u16::from(!s.answer.is_empty());
    let mut msg = Vec::with_capacity(64);
    push_header(&mut msg, inc, false, RCODE_NOERROR, [1, s.answer_count, 0]);
    msg.extend_from_slice(question);
    msg.extend_from_slice(&s.answer);
    push_opt(&mut msg, inc);
    msg
}

// A reply to a message that is no query: header only, no question.
fn header_only(id: u16, rd: bool, rcode: u8) -> Vec<u8> {
    let mut msg = Vec::with_capacity(12);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0x80 | u8::from(rd), 0x80 | rcode]);
    msg.extend_from_slice(&[0; 8]);
    msg
}

// ---------------------------------------------------------------------------------------------
// Decoding

// Err(Some(..)): a reply with that id, RD and rcode is due; Err(None): ignore the message.
type Unanswerable = Option<(u16, bool, u8)>;

fn parse_query(bytes: &[u8]) -> Result<Incoming, Unanswerable> {
    if bytes.len() < 12 {
        return Err(None);
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    let rd = bytes[2] & 0x01 != 0;
    if bytes[2] & 0x80 != 0 {
        return Err(None); // a response: answering could start a loop
    }
    if (bytes[2] >> 3) & 0x0F != 0 {
        return Err(Some((id, rd, RCODE_NOTIMP)));
    }
    let formerr = Some((id, rd, RCODE_FORMERR));
    let count = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    if count(4) != 1 {
        return Err(formerr);
    }
    // The question name, uncompressed (RFC 1035 allows pointers only to earlier names).
    let mut pos = 12;
    let mut name = String::new();
    loop {
        let len = usize::from(*bytes.get(pos).ok_or(formerr)?);
        if len == 0 {
            pos += 1;
            break;
        }
        if len > 63 || pos + 1 + len > bytes.len() || pos + len > 12 + 255 {
            return Err(formerr);
        }
        if !name.is_empty() {
            name.push('.');
        }
        let label = &bytes[pos + 1..pos + 1 + len];
        name.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += 1 + len;
    }
    if pos + 4 > bytes.len() {
        return Err(formerr);
    }
    let qtype = QType::from_code(u16::from_be_bytes([bytes[pos], bytes[pos + 1]]));
    let question = bytes[12..pos + 4].to_vec();
    // EDNS0: an OPT record among the other sections; a malformed tail just means no EDNS.
    let mut reader = Reader {
        msg: bytes,
        pos: pos + 4,
    };
    let others = usize::from(count(6)) + usize::from(count(8)) + usize::from(count(10));
    let mut edns = None;
    for _ in 0..others {
        match reader.record() {
            Ok(r) if r.rtype == TYPE_OPT => edns = Some(r.class),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(Incoming {
        id,
        rd,
        question,
        name,
        qtype,
        edns,
    })
}

/// Builds a query (RD=1, class IN, one question) with `name` as given (case kept).
pub fn build_query(id: u16, name: &str, qtype: QType) -> Vec<u8> {
    let mut msg = Vec::with_capacity(32 + name.len());
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    push_name(&mut msg, name);
    msg.extend_from_slice(&qtype.code().to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    msg
}

/// Like [`build_query`], with an EDNS0 OPT record advertising `udp_payload` bytes.
pub fn build_query_with_edns(id: u16, name: &str, qtype: QType, udp_payload: u16) -> Vec<u8> {
    let mut msg = build_query(id, name, qtype);
    msg[11] = 1; // ARCOUNT
    msg.push(0);
    msg.extend_from_slice(&TYPE_OPT.to_be_bytes());
    msg.extend_from_slice(&udp_payload.to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    msg
}

/// A DNS message as [`parse_reply`] decodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedReply {
    /// Message id.
    pub id: u16,
    /// QR: this is a response.
    pub qr: bool,
    /// Opcode.
    pub opcode: u8,
    /// AA: authoritative answer.
    pub aa: bool,
    /// TC: truncated.
    pub tc: bool,
    /// RD: recursion desired.
    pub rd: bool,
    /// RA: recursion available.
    pub ra: bool,
    /// Response code (low 4 bits).
    pub rcode: u8,
    /// Question section.
    pub questions: Vec<ParsedQuestion>,
    /// Answer section.
    pub answers: Vec<ParsedRecord>,
    /// Authority section.
    pub authority: Vec<ParsedRecord>,
    /// Additional section (an OPT record shows up here).
    pub additional: Vec<ParsedRecord>,
}

/// One question, its name as on the wire (case kept, no trailing dot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedQuestion {
    /// Name.
    pub name: String,
    /// Type.
    pub qtype: QType,
    /// Class.
    pub qclass: u16,
}

/// One resource record, names decompressed (case kept, no trailing dot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRecord {
    /// Owner name.
    pub name: String,
    /// Type.
    pub rtype: u16,
    /// Class (for OPT: the UDP payload size).
    pub class: u16,
    /// TTL (for OPT: extended rcode, version, flags).
    pub ttl: u32,
    /// Decoded data.
    pub data: RecordData,
}

/// Record data of the types the server writes; anything else raw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordData {
    /// An A record.
    A(Ipv4Addr),
    /// An AAAA record.
    Aaaa(Ipv6Addr),
    /// A CNAME record's target.
    Cname(String),
    /// An SOA record.
    Soa {
        /// Primary name server.
        mname: String,
        /// Responsible mailbox.
        rname: String,
        /// Serial.
        serial: u32,
        /// Refresh interval.
        refresh: u32,
        /// Retry interval.
        retry: u32,
        /// Expiry.
        expire: u32,
        /// Negative-caching TTL bound (RFC 2308).
        minimum: u32,
    },
    /// Any other type, raw.
    Other(Vec<u8>),
}

impl ParsedReply {
    /// Addresses of every A record in the answer section, whoever owns them.
    pub fn v4(&self) -> Vec<Ipv4Addr> {
        self.answers
            .iter()
            .filter_map(|r| match r.data {
                RecordData::A(ip) => Some(ip),
                _ => None,
            })
            .collect()
    }

    /// Addresses of every AAAA record in the answer section, whoever owns them.
    pub fn v6(&self) -> Vec<Ipv6Addr> {
        self.answers
            .iter()
            .filter_map(|r| match r.data {
                RecordData::Aaaa(ip) => Some(ip),
                _ => None,
            })
            .collect()
    }

    /// `(owner, target)` of every CNAME record in the answer section, in order.
    pub fn cnames(&self) -> Vec<(String, String)> {
        self.answers
            .iter()
            .filter_map(|r| match &r.data {
                RecordData::Cname(target) => Some((r.name.clone(), target.clone())),
                _ => None,
            })
            .collect()
    }

    /// The first SOA record in the authority section as `(ttl, minimum)`.
    pub fn soa(&self) -> Option<(u32, u32)> {
        self.authority.iter().find_map(|r| match r.data {
            RecordData::Soa { minimum, .. } => Some((r.ttl, minimum)),
            _ => None,
        })
    }
}

/// Decodes a DNS message (a reply, or any message) for assertions.
///
/// # Panics
///
/// If the message is malformed; see [`try_parse_reply`].
pub fn parse_reply(bytes: &[u8]) -> ParsedReply {
    try_parse_reply(bytes).unwrap_or_else(|e| panic!("malformed DNS message ({e}): {bytes:02x?}"))
}

/// Decodes a DNS message; trailing bytes after the counted records are an error.
///
/// # Errors
///
/// A lowercase description of the first problem found.
pub fn try_parse_reply(bytes: &[u8]) -> Result<ParsedReply, String> {
    let mut r = Reader { msg: bytes, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let counts = [r.u16()?, r.u16()?, r.u16()?, r.u16()?];
    let mut questions = Vec::new();
    for _ in 0..counts[0] {
        let name = r.name()?;
        let qtype = QType::from_code(r.u16()?);
        let qclass = r.u16()?;
        questions.push(ParsedQuestion {
            name,
            qtype,
            qclass,
        });
    }
    let mut sections: [Vec<ParsedRecord>; 3] = Default::default();
    for (section, &count) in sections.iter_mut().zip(&counts[1..]) {
        for _ in 0..count {
            section.push(r.record()?);
        }
    }
    if r.pos != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - r.pos));
    }
    let [answers, authority, additional] = sections;
    Ok(ParsedReply {
        id,
        qr: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0x0F) as u8,
        aa: flags & 0x0400 != 0,
        tc: flags & 0x0200 != 0,
        rd: flags & 0x0100 != 0,
        ra: flags & 0x0080 != 0,
        rcode: (flags & 0x000F) as u8,
        questions,
        answers,
        authority,
        additional,
    })
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos + n;
        let bytes = self
            .msg
            .get(self.pos..end)
            .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        self.pos = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    // A possibly compressed name; the reader ends up after its first pointer or its end.
    fn name(&mut self) -> Result<String, String> {
        let mut name = String::new();
        let mut at = self.pos;
        let mut resume = None;
        let mut jumps = 0;
        loop {
            let len = *self
                .msg
                .get(at)
                .ok_or_else(|| format!("name truncated at byte {at}"))?;
            match len {
                0 => {
                    at += 1;
                    break;
                }
                1..=63 => {
                    let label = self
                        .msg
                        .get(at + 1..at + 1 + usize::from(len))
                        .ok_or_else(|| format!("label truncated at byte {at}"))?;
                    if !name.is_empty() {
                        name.push('.');
                    }
                    name.push_str(&String::from_utf8_lossy(label));
                    at += 1 + usize::from(len);
                }
                0xC0..=0xFF => {
                    let low = *self
                        .msg
                        .get(at + 1)
                        .ok_or_else(|| format!("pointer truncated at byte {at}"))?;
                    jumps += 1;
                    if jumps > MAX_POINTER_JUMPS {
                        return Err("compression pointer loop".to_string());
                    }
                    resume.get_or_insert(at + 2);
                    at = usize::from(u16::from_be_bytes([len & 0x3F, low]));
                }
                _ => return Err(format!("bad label length {len:#x} at byte {at}")),
            }
        }
        self.pos = resume.unwrap_or(at);
        Ok(name)
    }

    fn record(&mut self) -> Result<ParsedRecord, String> {
        let name = self.name()?;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let len = usize::from(self.u16()?);
        let start = self.pos;
        let rdata = self.take(len)?.to_vec();
        let data = match rtype {
            TYPE_A if len == 4 => {
                RecordData::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]))
            }
            TYPE_AAAA if len == 16 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&rdata);
                RecordData::Aaaa(Ipv6Addr::from(octets))
            }
            TYPE_CNAME | TYPE_SOA => {
                // Names inside may point anywhere in the message: read them in place.
                let mut inner = Reader {
                    msg: self.msg,
                    pos: start,
                };
                let data = if rtype == TYPE_CNAME {
                    RecordData::Cname(inner.name()?)
                } else {
                    RecordData::Soa {
                        mname: inner.name()?,
                        rname: inner.name()?,
                        serial: inner.u32()?,
                        refresh: inner.u32()?,
                        retry: inner.u32()?,
                        expire: inner.u32()?,
                        minimum: inner.u32()?,
                    }
                };
                if inner.pos != start + len {
                    return Err(format!("record data of type {rtype} has the wrong length"));
                }
                data
            }
            _ => RecordData::Other(rdata),
        };
        Ok(ParsedRecord {
            name,
            rtype,
            class,
            ttl,
            data,
        })
    }
}
