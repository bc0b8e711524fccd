//! A scriptable loopback HTTP/1.1 server for parafetch's integration tests, and ready-made
//! scripts for it ([`ok_body`], [`raw`], [`never_answer`], [`reset_after_request`]).
//!
//! Owns: a listener on a loopback address with an ephemeral port, one thread per accepted
//! connection running a test-supplied script, a record of every request read, and
//! connection statistics (accepts, open, peaks) that tests wait on through a condvar.
//! Must not: bind fixed ports, sleep to synchronise (only [`Conn::send_pieces`] sleeps, to
//! simulate a slow peer), or depend on anything but std and socket2.
//!
//! The listener is bound before [`TestServer::start`] returns, so a client may connect at
//! once: the kernel queues the connection until the acceptor thread takes it.
//!
//! ```
//! # use std::{io::Write, net::TcpStream, time::Duration};
//! use parafetch_test_support::http::TestServer;
//!
//! let server = TestServer::start(|conn| {
//!     while let Some(req) = conn.read_request()? {
//!         conn.respond(200, &[("Content-Type", "text/plain")], req.target.as_bytes())?;
//!     }
//!     Ok(())
//! });
//! // ... point the client at server.url("/a"); here a client by hand:
//! TcpStream::connect(server.addr())?.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")?;
//! assert!(server.wait_for_requests(1, Duration::from_secs(5)));
//! # Ok::<(), std::io::Error>(())
//! ```

use crate::watched::Watched;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Largest request head (request line, headers, and separately the trailer section) read.
pub const MAX_HEAD: usize = 1 << 20;
/// Largest single line inside a chunked body (chunk-size line with extensions).
pub const MAX_CHUNK_LINE: usize = 64 << 10;
/// Largest request body read (Content-Length or decoded chunked).
pub const MAX_BODY: usize = 64 << 20;
/// How long [`Conn::close`] keeps reading after its FIN while waiting for the client to close.
pub const LINGER: Duration = Duration::from_secs(2);

const READ_CHUNK: usize = 16 << 10;

// ---------------------------------------------------------------------------------------------
// Shared statistics

#[derive(Default)]
struct Shared {
    state: Watched<State>,
    stop: AtomicBool,
}

#[derive(Default)]
struct State {
    accepts: usize,
    open: usize,
    peak_open: usize,
    in_handler: usize,
    in_handler_peak: usize,
    requests: Vec<Request>,
    panics: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// TestServer

/// A loopback HTTP server that runs a script on each accepted connection, on its own thread.
///
/// Dropping it stops the acceptor (and joins it); connection threads are left to finish on
/// their own, since a script may be hanging on purpose. If any script panicked, the drop
/// panics too (unless the test is already panicking), so assertions inside scripts count.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Binds 127.0.0.1:0 and serves each accepted connection on its own thread by calling
    /// `script(&mut Conn)`. Errors returned by the script end that connection quietly; a
    /// script that returns `Ok` has its connection closed with [`Conn::close`].
    pub fn start<F>(script: F) -> TestServer
    where
        F: Fn(&mut Conn) -> io::Result<()> + Send + Sync + 'static,
    {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), script)
    }

    /// Like [`TestServer::start`] on another loopback address (127.0.0.2, ::1, ...).
    ///
    /// # Panics
    /// If the address cannot be bound; use [`TestServer::try_start_on`] to skip instead.
    pub fn start_on<F>(ip: IpAddr, script: F) -> TestServer
    where
        F: Fn(&mut Conn) -> io::Result<()> + Send + Sync + 'static,
    {
        Self::try_start_on(ip, script)
            .unwrap_or_else(|e| panic!("test server cannot bind {}: {e}", SocketAddr::new(ip, 0)))
    }

    /// Like [`TestServer::start_on`], but returns the bind error (e.g. `AddrNotAvailable`
    /// where IPv6 loopback is not configured) so the caller can skip.
    pub fn try_start_on<F>(ip: IpAddr, script: F) -> io::Result<TestServer>
    where
        F: Fn(&mut Conn) -> io::Result<()> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let script = Arc::new(script);
        let acceptor = thread::Builder::new()
            .name(format!("support-accept-{}", addr.port()))
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(listener, shared, script)
            })?;
        Ok(TestServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address (ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port of [`TestServer::addr`].
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT/path` (IPv6 hosts bracketed); a missing leading `/` is added.
    pub fn url(&self, path: &str) -> String {
        url_for(self.addr, path)
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.shared.state.lock().accepts
    }

    /// Connections accepted and not yet closed by the server side. After a script returns,
    /// [`Conn::close`] keeps the connection open until the client closes it too (or for
    /// [`LINGER`]), so drop the client before waiting for this to reach 0.
    pub fn open_connections(&self) -> usize {
        self.shared.state.lock().open
    }

    /// Peak of [`TestServer::open_connections`] since start or [`TestServer::reset_peak`].
    pub fn peak_connections(&self) -> usize {
        self.shared.state.lock().peak_open
    }

    /// Requests being handled right now (see [`Conn::begin`]).
    pub fn in_handler(&self) -> usize {
        self.shared.state.lock().in_handler
    }

    /// Peak of requests being handled at once since start or [`TestServer::reset_peak`].
    pub fn in_handler_peak(&self) -> usize {
        self.shared.state.lock().in_handler_peak
    }

    /// Every request read so far, in the order they were completed.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state.lock().requests.clone()
    }

    /// How many requests have been read so far.
    pub fn request_count(&self) -> usize {
        self.shared.state.lock().requests.len()
    }

    /// Waits until at least `n` requests have been read; false on timeout.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.shared
            .state
            .wait_until(timeout, |s| s.requests.len() >= n)
    }

    /// Waits until at least `n` connections have been accepted; false on timeout.
    pub fn wait_for_accepts(&self, n: usize, timeout: Duration) -> bool {
        self.shared.state.wait_until(timeout, |s| s.accepts >= n)
    }

    /// Waits until exactly `n` connections are open (e.g. 0: every connection closed).
    pub fn wait_for_open_connections(&self, n: usize, timeout: Duration) -> bool {
        self.shared.state.wait_until(timeout, |s| s.open == n)
    }

    /// Sets both peaks to the current values.
    pub fn reset_peak(&self) {
        self.shared.state.update(|s| {
            s.peak_open = s.open;
            s.in_handler_peak = s.in_handler;
        });
    }

    /// Messages of scripts that panicked, as "connection N: message".
    pub fn script_panics(&self) -> Vec<String> {
        self.shared.state.lock().panics.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor out of accept(); it sees the flag and returns. Join only if the
        // wake-up connection got through, so a drop can never hang.
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
        if !thread::panicking() {
            let panics = self.script_panics();
            assert!(panics.is_empty(), "test server script panicked: {panics:?}");
        }
    }
}

pub(crate) fn url_for(addr: SocketAddr, path: &str) -> String {
    // SocketAddr's Display brackets IPv6 hosts already.
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("http://{addr}{slash}{path}")
}

fn accept_loop<F>(listener: TcpListener, shared: Arc<Shared>, script: Arc<F>)
where
    F: Fn(&mut Conn) -> io::Result<()> + Send + Sync + 'static,
{
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
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
        // Test scripts write small pieces on purpose; Nagle would merge them.
        let _ = stream.set_nodelay(true);
        let index = shared.state.update(|s| {
            let index = s.accepts;
            s.accepts += 1;
            s.open += 1;
            s.peak_open = s.peak_open.max(s.open);
            index
        });
        let conn = Conn {
            stream: Some(stream),
            index,
            shared: Arc::clone(&shared),
            buf: Vec::new(),
            handling: false,
        };
        let script = Arc::clone(&script);
        // If the spawn fails, the closure (and the Conn in it) is dropped, which counts the
        // connection as closed.
        let _ = thread::Builder::new()
            .name(format!("support-conn-{index}"))
            .spawn(move || run_script(conn, &*script));
    }
}

fn run_script<F>(mut conn: Conn, script: &F)
where
    F: Fn(&mut Conn) -> io::Result<()>,
{
    match panic::catch_unwind(AssertUnwindSafe(|| script(&mut conn))) {
        Ok(Ok(())) => conn.close(),
        Ok(Err(_)) => {} // dropped below: ends the connection quietly
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_string());
            let index = conn.index;
            conn.shared
                .state
                .update(|s| s.panics.push(format!("connection {index}: {msg}")));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request

/// One request as read by [`Conn::read_request`].
#[derive(Clone, Debug)]
pub struct Request {
    /// The method token, e.g. `GET`.
    pub method: String,
    /// The request target as sent, e.g. `/a?b=1`.
    pub target: String,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    /// Header fields in order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (decoded, for a chunked body).
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// The 0-based accept number of the connection it came on.
    pub conn_index: usize,
    /// When the whole request (head and body) had been read.
    pub received_at: Instant,
}

impl Request {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order, compared case-insensitively.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether the connection should close after this request (RFC 9112 §9.3): a `close`
    /// connection option, or HTTP/1.0 without `keep-alive`.
    pub fn wants_close(&self) -> bool {
        let has = |token: &str| {
            self.header_all("connection")
                .iter()
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        has("close") || (self.version == 0 && !has("keep-alive"))
    }
}

// ---------------------------------------------------------------------------------------------
// Conn

/// The server side of one accepted connection, handed to the script.
///
/// After [`Conn::close`] or [`Conn::reset`] the socket is gone: I/O methods return
/// `NotConnected` and [`Conn::stream`] panics.
pub struct Conn {
    stream: Option<TcpStream>,
    index: usize,
    shared: Arc<Shared>,
    buf: Vec<u8>,
    handling: bool,
}

enum Framing {
    None,
    Length(usize),
    Chunked,
}

impl Conn {
    /// The 0-based accept number of this connection.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The socket, for anything the helpers do not cover. Bytes already buffered by
    /// [`Conn::read_request`] are not visible through it.
    ///
    /// # Panics
    /// After [`Conn::close`] or [`Conn::reset`].
    pub fn stream(&mut self) -> &mut TcpStream {
        self.stream.as_mut().expect("connection already closed")
    }

    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.as_ref().ok_or_else(closed)?.peer_addr()
    }

    /// Marks a request as being handled (counted by [`TestServer::in_handler_peak`]).
    /// [`Conn::read_request`] calls it; idempotent.
    pub fn begin(&mut self) {
        if !self.handling {
            self.handling = true;
            self.shared.state.update(|s| {
                s.in_handler += 1;
                s.in_handler_peak = s.in_handler_peak.max(s.in_handler);
            });
        }
    }

    /// Marks the current request as handled. The respond helpers, the next
    /// [`Conn::read_request`] and closing the connection call it; idempotent.
    pub fn end(&mut self) {
        if self.handling {
            self.handling = false;
            self.shared.state.update(|s| s.in_handler -= 1);
        }
    }

    /// Reads one request head and its body (Content-Length or chunked), records it, and
    /// marks it as being handled. `Ok(None)` on a clean EOF before any byte of a request.
    /// Empty lines before the request line are skipped (RFC 9112 §2.2); bare-LF line ends are
    /// accepted.
    ///
    /// # Errors
    /// `UnexpectedEof` for EOF inside a request; `InvalidData` for a malformed request, a head
    /// over [`MAX_HEAD`] or a body over [`MAX_BODY`]; socket errors as they come.
    pub fn read_request(&mut self) -> io::Result<Option<Request>> {
        self.end();
        let Some(head_len) = self.fill_head()? else {
            return Ok(None);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_len]).into_owned();
        self.buf.drain(..head_len);
        let (method, target, version, headers) = parse_head(&head)?;
        let (body, trailers) = match framing(&headers)? {
            Framing::None => (Vec::new(), Vec::new()),
            Framing::Length(n) => (self.take_exact(n)?, Vec::new()),
            Framing::Chunked => self.read_chunked()?,
        };
        let request = Request {
            method,
            target,
            version,
            headers,
            body,
            trailers,
            conn_index: self.index,
            received_at: Instant::now(),
        };
        self.handling = true;
        self.shared.state.update(|s| {
            s.in_handler += 1;
            s.in_handler_peak = s.in_handler_peak.max(s.in_handler);
            s.requests.push(request.clone());
        });
        Ok(Some(request))
    }

    /// Writes all of `bytes` at once.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.stream.as_mut().ok_or_else(closed)?;
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// Writes `bytes` in pieces of `piece` bytes (at least 1), sleeping `pause` between
    /// pieces to simulate a slow server. TCP_NODELAY is set on every accepted socket, so each
    /// piece leaves as its own segment.
    pub fn send_pieces(&mut self, bytes: &[u8], piece: usize, pause: Duration) -> io::Result<()> {
        for (i, chunk) in bytes.chunks(piece.max(1)).enumerate() {
            if i > 0 {
                thread::sleep(pause);
            }
            self.send(chunk)?;
        }
        Ok(())
    }

    /// Sends `HTTP/1.1 {status} {reason}`, a `Content-Length` for `body` (left out when
    /// `headers` has Content-Length or Transfer-Encoding, or for 1xx/204/304), `headers`, and
    /// `body` as given, in one write; then [`Conn::end`].
    pub fn respond(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
        let framed = headers.iter().any(|(n, _)| {
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
        });
        let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
        if !framed && !bodiless {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        push_headers(&mut out, headers);
        out.extend_from_slice(body);
        self.send(&out)?;
        self.end();
        Ok(())
    }

    /// Sends a `Transfer-Encoding: chunked` response with one chunk per non-empty element of
    /// `chunks` and an empty trailer section, in one write; then [`Conn::end`].
    pub fn respond_chunked(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        chunks: &[&[u8]],
    ) -> io::Result<()> {
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nTransfer-Encoding: chunked\r\n",
            reason(status)
        )
        .into_bytes();
        push_headers(&mut out, headers);
        // An empty chunk would read as the last chunk.
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        self.send(&out)?;
        self.end();
        Ok(())
    }

    /// Closes with a FIN, then keeps reading (and discarding) until the client closes or
    /// [`LINGER`] passes. Closing a socket with unread input sends an RST instead of a FIN,
    /// which could eat the response at the client; the lingering read avoids that.
    pub fn close(&mut self) {
        self.end();
        if let Some(mut stream) = self.stream.take() {
            if stream.shutdown(Shutdown::Write).is_ok() {
                let deadline = Instant::now() + LINGER;
                let mut sink = [0u8; READ_CHUNK];
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                        break;
                    }
                    match stream.read(&mut sink) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
            self.release(stream);
        }
    }

    /// Aborts with an RST (SO_LINGER 0, then close); the client sees ECONNRESET.
    pub fn reset(&mut self) {
        self.end();
        if let Some(stream) = self.stream.take() {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            self.release(stream);
        }
    }

    /// Reads and discards until the client closes (EOF or error); never answers.
    pub fn hang(&mut self) -> io::Result<()> {
        self.buf.clear();
        let stream = self.stream.as_mut().ok_or_else(closed)?;
        let mut sink = [0u8; READ_CHUNK];
        loop {
            match stream.read(&mut sink) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Ok(()),
            }
        }
    }

    /// Reads requests until EOF, calling `f` for each; stops after a request that asks to
    /// close (see [`Request::wants_close`]). The script then returns `Ok` and the connection is
    /// closed.
    pub fn serve_keep_alive<F>(&mut self, mut f: F) -> io::Result<()>
    where
        F: FnMut(&Request, &mut Conn) -> io::Result<()>,
    {
        while let Some(request) = self.read_request()? {
            f(&request, self)?;
            if request.wants_close() {
                break;
            }
        }
        Ok(())
    }

    fn release(&mut self, stream: TcpStream) {
        drop(stream);
        self.shared.state.update(|s| s.open -= 1);
    }

    /// Appends up to [`READ_CHUNK`] bytes to the buffer; returns how many (0 at EOF).
    fn read_more(&mut self) -> io::Result<usize> {
        let stream = self.stream.as_mut().ok_or_else(closed)?;
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            match stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Buffers a whole head; returns its length including the blank line, or None at a clean
    /// EOF. Scans only new bytes for the end of the head.
    fn fill_head(&mut self) -> io::Result<Option<usize>> {
        let mut scanned = 0;
        loop {
            let skip = leading_empty_lines(&self.buf);
            if skip > 0 {
                self.buf.drain(..skip);
                scanned = 0;
            }
            if let Some(end) = find_head_end(&self.buf, scanned) {
                return Ok(Some(end));
            }
            scanned = self.buf.len();
            if self.buf.len() > MAX_HEAD {
                return Err(invalid(format!("request head over {MAX_HEAD} bytes")));
            }
            if self.read_more()? == 0 {
                return if self.buf.iter().all(|&b| b == b'\r' || b == b'\n') {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "eof inside request head",
                    ))
                };
            }
        }
    }

    fn take_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.read_more()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "eof inside request body",
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// One line without its CRLF (or bare LF).
    fn read_line(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            scanned = self.buf.len();
            if scanned > limit {
                return Err(invalid(format!("line over {limit} bytes in chunked body")));
            }
            if self.read_more()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "eof inside chunked body",
                ));
            }
        }
    }

    /// RFC 9112 §7.1: chunks, last-chunk, trailer section.
    fn read_chunked(&mut self) -> io::Result<(Vec<u8>, Fields)> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(MAX_CHUNK_LINE)?;
            let size = parse_chunk_size(&line)?;
            if size == 0 {
                break;
            }
            if size > MAX_BODY - body.len() {
                return Err(invalid(format!("chunked body over {MAX_BODY} bytes")));
            }
            body.extend(self.take_exact(size)?);
            if !self.read_line(MAX_CHUNK_LINE)?.is_empty() {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
        let mut trailers = Vec::new();
        let mut trailer_bytes = 0;
        loop {
            let line = self.read_line(MAX_HEAD)?;
            if line.is_empty() {
                return Ok((body, trailers));
            }
            trailer_bytes += line.len();
            if trailer_bytes > MAX_HEAD {
                return Err(invalid(format!("trailer section over {MAX_HEAD} bytes")));
            }
            trailers.push(parse_field(&String::from_utf8_lossy(&line))?);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.end();
        if let Some(stream) = self.stream.take() {
            self.release(stream);
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection already closed")
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn push_headers(out: &mut Vec<u8>, headers: &[(&str, &str)]) {
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Bytes of complete empty lines ("\r\n" or "\n") at the start of `buf`.
pub(crate) fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        if buf[i..].starts_with(b"\r\n") {
            i += 2;
        } else if buf[i..].starts_with(b"\n") {
            i += 1;
        } else {
            return i;
        }
    }
}

/// End of a head (index after its blank line), looking at line feeds at or after `from`.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find_map(|i| {
        let blank = buf[i] == b'\n'
            && ((i >= 1 && buf[i - 1] == b'\n')
                || (i >= 2 && buf[i - 1] == b'\r' && buf[i - 2] == b'\n'));
        blank.then_some(i + 1)
    })
}

pub(crate) type Fields = Vec<(String, String)>;
pub(crate) type Head = (String, String, u8, Fields);

pub(crate) fn parse_head(head: &str) -> io::Result<Head> {
    let mut lines = head
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .take_while(|l| !l.is_empty());
    let request_line = lines.next().ok_or_else(|| invalid("empty request head"))?;
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(invalid(format!("bad request line {request_line:?}")));
    };
    if method.is_empty() || target.is_empty() {
        return Err(invalid(format!("bad request line {request_line:?}")));
    }
    let version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(invalid(format!("unsupported version {version:?}"))),
    };
    let headers = lines.map(parse_field).collect::<io::Result<_>>()?;
    Ok((method.to_string(), target.to_string(), version, headers))
}

/// `name: value` (RFC 9112 §5.1): no whitespace before the colon, no obs-fold.
fn parse_field(line: &str) -> io::Result<(String, String)> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| invalid(format!("header line without colon {line:?}")))?;
    if name.is_empty() || name.bytes().any(|b| b == b' ' || b == b'\t') {
        return Err(invalid(format!("bad header name {name:?}")));
    }
    Ok((
        name.to_string(),
        value.trim_matches([' ', '\t']).to_string(),
    ))
}

/// Request body framing (RFC 9112 §6.3, the request rules): Transfer-Encoding wins over
/// Content-Length and must end in chunked; Content-Length values must all agree.
fn framing(headers: &[(String, String)]) -> io::Result<Framing> {
    let codings: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(last) = codings.last() {
        return if last.eq_ignore_ascii_case("chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(invalid("request transfer-encoding does not end in chunked"))
        };
    }
    let mut length = None;
    for value in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(','))
    {
        let n = parse_decimal(value.trim())?;
        if length.is_some_and(|l| l != n) {
            return Err(invalid("conflicting content-length values"));
        }
        length = Some(n);
    }
    match length {
        None => Ok(Framing::None),
        Some(n) if n > MAX_BODY => Err(invalid(format!("content-length over {MAX_BODY}"))),
        Some(n) => Ok(Framing::Length(n)),
    }
}

/// Digits only: `"+5".parse::<usize>()` would succeed.
fn parse_decimal(s: &str) -> io::Result<usize> {
    if s.is_empty() {
        return Err(invalid("empty content-length"));
    }
    s.bytes().try_fold(0usize, |acc, b| {
        let digit = match b {
            b'0'..=b'9' => usize::from(b - b'0'),
            _ => return Err(invalid(format!("bad content-length {s:?}"))),
        };
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(digit))
            .ok_or_else(|| invalid(format!("content-length overflows {s:?}")))
    })
}

/// Hex digits (at least one), then optional whitespace and `;extensions`, which are ignored.
fn parse_chunk_size(line: &[u8]) -> io::Result<usize> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(invalid(format!(
            "chunk size line without hex digits {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    let rest = &line[digits..];
    let rest_ok = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .is_none_or(|i| rest[i] == b';');
    if !rest_ok {
        return Err(invalid(format!(
            "bad chunk size line {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    line[..digits].iter().try_fold(0usize, |acc, &b| {
        let digit = (b as char).to_digit(16).unwrap_or(0) as usize;
        acc.checked_mul(16)
            .and_then(|a| a.checked_add(digit))
            .ok_or_else(|| invalid("chunk size overflows"))
    })
}

/// A reason phrase for the status line; "Status" for codes not listed.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

// ---------------------------------------------------------------------------------------------
// Ready-made scripts

/// Keep-alive: answers every request 200 with `body`, until the client closes.
pub fn ok_body(
    body: &'static [u8],
) -> impl Fn(&mut Conn) -> io::Result<()> + Send + Sync + 'static {
    move |conn| conn.serve_keep_alive(|_, conn| conn.respond(200, &[], body))
}

/// Reads one request, sends `bytes` verbatim, closes (FIN).
pub fn raw(bytes: &'static [u8]) -> impl Fn(&mut Conn) -> io::Result<()> + Send + Sync + 'static {
    move |conn| {
        if conn.read_request()?.is_some() {
            conn.send(bytes)?;
        }
        conn.close();
        Ok(())
    }
}

/// Reads one request and never answers; returns when the client closes.
pub fn never_answer() -> impl Fn(&mut Conn) -> io::Result<()> + Send + Sync + 'static {
    |conn| {
        conn.read_request()?;
        conn.hang()
    }
}

/// Reads one request and resets the connection (RST).
pub fn reset_after_request() -> impl Fn(&mut Conn) -> io::Result<()> + Send + Sync + 'static {
    |conn| {
        conn.read_request()?;
        conn.reset();
        Ok(())
    }
}
