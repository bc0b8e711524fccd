//! The built-in benchmark server: one thread, one mio loop, any number of connections; and
//! the files both it and nginx serve to the benchmarks.
//!
//! Serves fixed files from memory over HTTP/1.1 keep-alive (or closes after the response
//! when the request says `Connection: close`), optionally holding every response for a
//! fixed delay (a timer heap, no thread per request: the C10K cell holds 10,000 at once).
//! Counts accepted connections. It is the fallback when nginx is absent and the hold
//! server of the C10K and demo cells; it parses just enough of a request for our clients.
//!
//! Must not: spawn a thread per connection or per held response, or sleep (holds are timers
//! on the poll timeout).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

/// Bytes of a served file: a repeating pattern, so nothing compresses it away.
pub fn file_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The files both servers serve.
pub fn bench_files() -> Vec<(String, Vec<u8>)> {
    vec![
        ("/1k".to_owned(), file_bytes(1024)),
        ("/16k".to_owned(), file_bytes(16 * 1024)),
        ("/1m".to_owned(), file_bytes(1024 * 1024)),
    ]
}

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// A running server; stops and joins its thread on drop.
pub struct Server {
    /// The bound loopback address (ephemeral port).
    pub addr: SocketAddr,
    accepts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `files` (path, bytes) on an ephemeral loopback port, answering each
    /// request `delay` after it was read.
    pub fn start(files: Vec<(String, Vec<u8>)>, delay: Duration) -> io::Result<Server> {
        // A deep accept queue (the kernel caps it at somaxconn): the C10K cell connects
        // 10,000 clients at once.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        socket.listen(65535)?;
        socket.set_nonblocking(true)?;
        let std_listener: std::net::TcpListener = socket.into();
        let addr = std_listener.local_addr()?;
        let mut listener = TcpListener::from_std(std_listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let accepts = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let files = files
            .into_iter()
            .map(|(p, b)| (p.into_bytes(), Arc::<[u8]>::from(b)))
            .collect();
        let mut lp = Loop {
            poll,
            listener,
            conns: Slab::new(),
            timers: BinaryHeap::new(),
            files,
            delay,
            next_id: 0,
            accepts: accepts.clone(),
            stop: stop.clone(),
            accept_again: false,
        };
        let thread = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || lp.run())?;
        Ok(Server {
            addr,
            accepts,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> u64 {
        self.accepts.load(Ordering::Relaxed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Conn {
    stream: TcpStream,
    /// Unique over the server's life: a timer for a closed connection whose slab slot was
    /// reused must not fire on the newcomer.
    id: u64,
    input: Vec<u8>,
    head: Vec<u8>,
    body: Option<Arc<[u8]>>,
    /// Bytes of head + body written so far.
    written: usize,
    close_after: bool,
    /// A request was read and its response is held until its timer fires.
    held: bool,
}

struct Loop {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    files: HashMap<Vec<u8>, Arc<[u8]>>,
    delay: Duration,
    next_id: u64,
    accepts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// accept() failed with something other than WouldBlock (EMFILE, say): try again soon.
    accept_again: bool,
}

impl Loop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let mut timeout = self
                .timers
                .peek()
                .map(|Reverse((at, _, _))| at.saturating_duration_since(now));
            if self.accept_again {
                timeout = Some(timeout.map_or(Duration::from_millis(10), |t| {
                    t.min(Duration::from_millis(10))
                }));
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                panic!("bench server: poll failed: {e}");
            }
            if self.accept_again {
                self.accept();
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(key) => self.drive(key),
                }
            }
            self.fire_timers();
        }
    }

    fn accept(&mut self) {
        self.accept_again = false;
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    self.accepts.fetch_add(1, Ordering::Relaxed);
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
                    self.next_id += 1;
                    entry.insert(Conn {
                        stream,
                        id: self.next_id,
                        input: Vec::new(),
                        head: Vec::new(),
                        body: None,
                        written: 0,
                        close_after: false,
                        held: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.accept_again = true;
                    return;
                }
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((at, key, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match self.conns.get_mut(key) {
                Some(c) if c.id == id && c.held => c.held = false,
                _ => continue,
            }
            self.drive(key);
        }
    }

    /// Reads, answers and writes on one connection until the socket would block.
    fn drive(&mut self, key: usize) {
        let keep = match self.conns.get_mut(key) {
            Some(c) => step(
                c,
                key,
                &self.files,
                self.delay,
                &mut self.timers,
                Instant::now(),
            ),
            None => return,
        };
        if !keep {
            let mut c = self.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }
}

/// Returns whether the connection stays open.
fn step(
    c: &mut Conn,
    key: usize,
    files: &HashMap<Vec<u8>, Arc<[u8]>>,
    delay: Duration,
    timers: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>,
    now: Instant,
) -> bool {
    loop {
        if c.held {
            return true;
        }
        // Write what is pending.
        let total = c.head.len() + c.body.as_ref().map_or(0, |b| b.len());
        while c.written < total {
            let res = if c.written < c.head.len() {
                c.stream.write(&c.head[c.written..])
            } else {
                let body = c.body.as_ref().expect("body");
                c.stream.write(&body[c.written - c.head.len()..])
            };
            match res {
                Ok(0) => return false,
                Ok(n) => c.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if total > 0 {
            c.head.clear();
            c.body = None;
            c.written = 0;
            if c.close_after {
                return false;
            }
        }
        // Answer the next buffered request, if a whole head is here.
        if let Some(end) = find_head_end(&c.input) {
            let (path, close) = parse_request(&c.input[..end]);
            let body = files.get(path).cloned();
            c.input.drain(..end);
            respond(c, body, close);
            if !delay.is_zero() {
                c.held = true;
                timers.push(Reverse((now + delay, key, c.id)));
            }
            continue;
        }
        // Read more.
        let mut got = false;
        let mut buf = [0u8; 4096];
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    c.input.extend_from_slice(&buf[..n]);
                    got = true;
                    if c.input.len() > 64 * 1024 {
                        return false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if !got {
            return true;
        }
    }
}

fn respond(c: &mut Conn, body: Option<Arc<[u8]>>, close: bool) {
    let (status, len) = match &body {
        Some(b) => ("200 OK", b.len()),
        None => ("404 Not Found", 0),
    };
    c.head.clear();
    let _ = write!(
        c.head,
        "HTTP/1.1 {status}\r\nServer: parafetch-bench\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    c.body = body;
    c.written = 0;
    c.close_after = close;
}

/// The length of the head at the front of `buf` (up to and including CRLF CRLF).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The request target and whether the client asked to close (`Connection: close` or
/// HTTP/1.0).
fn parse_request(head: &[u8]) -> (&[u8], bool) {
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(|&b| b == b' ');
    let _method = parts.next();
    let path = parts.next().unwrap_or_default();
    let mut close = first.trim_ascii_end().ends_with(b"HTTP/1.0");
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line[..colon].eq_ignore_ascii_case(b"connection") {
            close = line[colon + 1..]
                .trim_ascii()
                .eq_ignore_ascii_case(b"close");
        }
    }
    (path, close)
}
