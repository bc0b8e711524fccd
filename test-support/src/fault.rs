//! A fault-injecting loopback HTTP/1.1 server for soak tests: one mio loop on one thread,
//! so it copes with hundreds of concurrent connections and a hundred thousand requests.
//!
//! Owns: a listener that answers each request as its path says, and a second listener that
//! is never accepted from. The client encodes the behaviour in the path, so it knows what
//! outcome to expect:
//!
//! | path | the server |
//! |---|---|
//! | `/good/N` | answers 200 with [`good_body`]`(N)` (Content-Length), keeps the connection |
//! | `/stall/N` | reads the request and never answers |
//! | `/trickle/N` | sends a head promising 1 MB, then one body byte every [`TRICKLE_EVERY`] |
//! | `/reset/N/B` | sends the first `B % len` bytes of the good answer, then resets (RST) |
//! | `/close/N/B` | sends the first `B % len` bytes of the good answer, then closes (FIN) |
//! | `/garbage/N` | sends a line of non-HTTP bytes and a blank line, then closes |
//! | `/hugehead/N` | sends a head of [`HUGE_HEAD`] bytes, then closes |
//!
//! Anything else gets a 404. [`FaultServer::never_addr`] is a listener with a tiny backlog
//! that nobody accepts from: connects sit in its queue (the request is never read) or, once
//! the queue is full, their SYNs are dropped.
//!
//! Must not: sleep (trickling uses the poll timeout), bind fixed ports, or block on a
//! socket. Statistics are shared with the test thread through a mutex and a condvar.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

/// Interval between two trickled bytes.
pub const TRICKLE_EVERY: Duration = Duration::from_millis(100);
/// Size of the head `/hugehead/N` sends.
pub const HUGE_HEAD: usize = 24 * 1024;
/// Backlog of the never-accepted listener.
pub const NEVER_BACKLOG: i32 = 8;
/// Backlog of the answering listener (the kernel caps it at `net.core.somaxconn`).
pub const BACKLOG: i32 = 4096;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// The body `/good/N` answers with: `N:` then `x`s, 8 + N % 1024 bytes in all.
pub fn good_body(n: u64) -> Vec<u8> {
    let mut body = format!("{n}:").into_bytes();
    body.resize(8 + (n % 1024) as usize, b'x');
    body
}

fn good_response(n: u64) -> Vec<u8> {
    let body = good_body(n);
    let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Server-side counts.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub accepts: usize,
    /// Connections open now.
    pub open: usize,
    /// Most connections open at once.
    pub peak_open: usize,
    /// Requests read, by behaviour (the first path segment).
    pub requests: HashMap<String, usize>,
    /// Accept errors other than WouldBlock (EMFILE, ...).
    pub accept_errors: usize,
}

#[derive(Default)]
struct Shared {
    stats: Mutex<Stats>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fault server; dropping it stops its thread and closes every connection.
pub struct FaultServer {
    addr: SocketAddr,
    /// Held only to keep the never-accepted listener open until the server is dropped.
    _never: socket2::Socket,
    never_addr: SocketAddr,
    shared: Arc<Shared>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Binds both listeners on 127.0.0.1 (ephemeral ports) and starts the loop.
    pub fn start() -> FaultServer {
        // A burst of hundreds of connects must not overflow the accept queue (mio's and
        // std's bind use a backlog of 128), or SYNs are dropped and good requests time out.
        let listening = listening_socket(BACKLOG);
        listening.set_nonblocking(true).expect("nonblocking");
        let listener = TcpListener::from_std(listening.into());
        let addr = listener.local_addr().unwrap();
        let never = listening_socket(NEVER_BACKLOG);
        let never_addr = never.local_addr().unwrap().as_socket().unwrap();
        let poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).expect("waker"));
        let shared = Arc::new(Shared::default());
        let thread = thread::Builder::new()
            .name("fault-server".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || Loop::new(poll, listener, shared).run()
            })
            .expect("spawn");
        FaultServer {
            addr,
            _never: never,
            never_addr,
            shared,
            waker,
            thread: Some(thread),
        }
    }

    /// The answering listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listener nobody accepts from.
    pub fn never_addr(&self) -> SocketAddr {
        self.never_addr
    }

    /// `http://127.0.0.1:PORT{path}` on the answering listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://127.0.0.1:PORT{path}` on the never-accepted listener.
    pub fn never_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.never_addr)
    }

    /// A snapshot of the counts.
    pub fn stats(&self) -> Stats {
        self.shared.lock().clone()
    }

    /// Waits until exactly `n` connections are open; false on timeout.
    pub fn wait_for_open(&self, n: usize, timeout: Duration) -> bool {
        let guard = self.shared.lock();
        let (guard, _) = self
            .shared
            .changed
            .wait_timeout_while(guard, timeout, |s| s.open != n)
            .unwrap_or_else(PoisonError::into_inner);
        guard.open == n
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What happens once a connection's pending output is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Read the next request.
    KeepAlive,
    /// Send nothing more; read and discard until the client closes.
    Hang,
    /// One byte every [`TRICKLE_EVERY`], forever.
    Trickle,
    /// Shut down the write side, then read until the client closes.
    Fin,
    /// Abort with an RST.
    Reset,
}

struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    then: Then,
    /// The write side is shut down (after `Fin`).
    fin_sent: bool,
}

struct Loop {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    shared: Arc<Shared>,
    next_tick: Option<Instant>,
}

impl Loop {
    fn new(poll: Poll, mut listener: TcpListener, shared: Arc<Shared>) -> Loop {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .expect("register listener");
        Loop {
            poll,
            listener,
            conns: Slab::new(),
            shared,
            next_tick: None,
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.shared.stop.load(Ordering::SeqCst) {
            let timeout = self
                .next_tick
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                panic!("fault server poll: {e}");
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(key) => self.on_event(key),
                }
            }
            if self.next_tick.is_some_and(|t| t <= Instant::now()) {
                self.trickle();
            }
        }
        // Dropping the slab closes every connection.
        let open = self.conns.len();
        self.conns.clear();
        self.update(|s| s.open -= open);
    }

    fn update(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.shared.lock());
        self.shared.changed.notify_all();
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(key),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        continue;
                    }
                    entry.insert(Conn {
                        stream,
                        input: Vec::new(),
                        out: Vec::new(),
                        sent: 0,
                        then: Then::KeepAlive,
                        fin_sent: false,
                    });
                    self.update(|s| {
                        s.accepts += 1;
                        s.open += 1;
                        s.peak_open = s.peak_open.max(s.open);
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(_) => {
                    // EMFILE and friends: count it and wait for the next readiness event
                    // rather than spin.
                    self.update(|s| s.accept_errors += 1);
                    return;
                }
            }
        }
    }

    fn close(&mut self, key: usize) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            // Closed before it is counted as closed: a test that waits for 0 open and then
            // counts descriptors must not see it.
            drop(conn);
            self.update(|s| s.open -= 1);
        }
    }

    fn reset(&mut self, key: usize) {
        if let Some(conn) = self.conns.get(key) {
            let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
        }
        self.close(key);
    }

    fn on_event(&mut self, key: usize) {
        // Edge-triggered: always read and write until WouldBlock.
        if !self.read(key) {
            return self.close(key);
        }
        self.progress(key);
    }

    /// Reads until WouldBlock; false when the connection is over (EOF or error).
    fn read(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return true;
        };
        let mut buf = [0u8; 8192];
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    // Only a keep-alive connection cares what comes next.
                    if conn.then == Then::KeepAlive {
                        conn.input.extend_from_slice(&buf[..n]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Writes pending output; when it is all out, applies `then`, and for keep-alive
    /// serves the next buffered request.
    fn progress(&mut self, key: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            while conn.sent < conn.out.len() {
                match conn.stream.write(&conn.out[conn.sent..]) {
                    Ok(0) => return self.close(key),
                    Ok(n) => conn.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.close(key),
                }
            }
            conn.out.clear();
            conn.sent = 0;
            match conn.then {
                Then::KeepAlive => {}
                Then::Hang => return,
                Then::Trickle => {
                    if self.next_tick.is_none() {
                        self.next_tick = Some(Instant::now() + TRICKLE_EVERY);
                    }
                    return;
                }
                Then::Fin => {
                    if !conn.fin_sent {
                        conn.fin_sent = true;
                        let _ = conn.stream.shutdown(Shutdown::Write);
                    }
                    return;
                }
                Then::Reset => return self.reset(key),
            }
            let Some(end) = find(&conn.input, b"\r\n\r\n") else {
                if conn.input.len() > MAX_REQUEST_HEAD {
                    self.close(key);
                }
                return;
            };
            let head = conn.input.drain(..end + 4).collect::<Vec<u8>>();
            let target = head
                .split(|&b| b == b' ')
                .nth(1)
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .unwrap_or_default();
            let (out, then, what) = plan(&target);
            conn.out = out;
            conn.then = then;
            self.update(|s| *s.requests.entry(what).or_default() += 1);
        }
    }

    /// Writes one byte to every trickling connection.
    fn trickle(&mut self) {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.then == Then::Trickle && c.out.is_empty())
            .map(|(k, _)| k)
            .collect();
        let mut dead = Vec::new();
        for &key in &keys {
            match self.conns[key].stream.write(b"x") {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => dead.push(key),
            }
        }
        for key in dead {
            self.close(key);
        }
        let any = self.conns.iter().any(|(_, c)| c.then == Then::Trickle);
        self.next_tick = any.then(|| Instant::now() + TRICKLE_EVERY);
    }
}

/// A listening socket on 127.0.0.1, ephemeral port.
fn listening_socket(backlog: i32) -> socket2::Socket {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .expect("bind");
    socket.listen(backlog).expect("listen");
    socket
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What to send for a request target, what then, and the behaviour's name.
fn plan(target: &str) -> (Vec<u8>, Then, String) {
    let mut parts = target.trim_start_matches('/').split('/');
    let what = parts.next().unwrap_or("").to_owned();
    let n: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let b: usize = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let (out, then) = match what.as_str() {
        "good" => (good_response(n), Then::KeepAlive),
        "stall" => (Vec::new(), Then::Hang),
        "trickle" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec(),
            Then::Trickle,
        ),
        "reset" | "close" => {
            let mut out = good_response(n);
            out.truncate(b % out.len());
            let then = if what == "reset" {
                Then::Reset
            } else {
                Then::Fin
            };
            (out, then)
        }
        "garbage" => {
            // A control byte first, then bytes that are neither CR nor LF: never HTTP.
            let mut out = vec![0x01];
            let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for _ in 0..(16 + n % 200) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let byte = (x >> 24) as u8;
                out.push(if byte == b'\r' || byte == b'\n' {
                    b'?'
                } else {
                    byte
                });
            }
            out.extend_from_slice(b"\r\n\r\n");
            (out, Then::Fin)
        }
        "hugehead" => {
            let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
            let mut i = 0;
            while out.len() < HUGE_HEAD {
                out.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "f".repeat(60)).as_bytes());
                i += 1;
            }
            out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
            (out, Then::Fin)
        }
        _ => (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            Then::KeepAlive,
        ),
    };
    (out, then, what)
}
