//! A scriptable fake proxy on loopback, for what real proxies will not do on demand: 407 with
//! or without a challenge, 502, a CONNECT reply with a body or with tunnel bytes in the same
//! write, a huge reply head, garbage, hanging or closing mid-handshake, every SOCKS5 and
//! SOCKS4 reply code. After a successful CONNECT or SOCKS reply a script can [`ProxyConn::relay`]
//! to an origin (a real tunnel, bytes copied both ways), so the fake serves success paths too,
//! HTTP or TLS inside.
//!
//! Owns: a listener on 127.0.0.1 with an ephemeral port, one thread per accepted connection
//! running a test-supplied script (the pattern of [`crate::http::TestServer`]), a count of
//! accepted connections, and a record ([`Seen`]) of every request head, SOCKS greeting,
//! SOCKS credentials and SOCKS request the scripts read.
//! Must not: bind fixed ports, sleep to synchronise, decide what a client should do with an
//! answer (the tests do), or depend on anything but std and socket2.
//!
//! ```
//! # use std::{io::{Read, Write}, net::TcpStream};
//! use parafetch_test_support::fake_proxy::{self, FakeProxy};
//!
//! let proxy = FakeProxy::start(fake_proxy::http_reply(fake_proxy::AUTH_REQUIRED));
//! let mut s = TcpStream::connect(proxy.addr())?;
//! s.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")?;
//! let mut reply = Vec::new();
//! s.read_to_end(&mut reply)?;
//! assert!(reply.starts_with(b"HTTP/1.1 407 "));
//! assert_eq!(proxy.http_requests()[0].target, "example.com:443");
//! # Ok::<(), std::io::Error>(())
//! ```

use crate::watched::Watched;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::http::{find_head_end, leading_empty_lines, parse_head};

/// Largest request head [`ProxyConn::read_http_head`] reads.
pub const MAX_HEAD: usize = 64 << 10;
/// How long [`ProxyConn::close`] keeps reading after its FIN while waiting for the client.
pub const LINGER: Duration = Duration::from_secs(2);

const READ_CHUNK: usize = 16 << 10;

// ---------------------------------------------------------------------------------------------
// Canned answers

/// A CONNECT success, nothing after it.
pub const CONNECT_OK: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";
/// 407 with a `Proxy-Authenticate: Basic` challenge.
pub const AUTH_REQUIRED: &[u8] = b"HTTP/1.1 407 Proxy Authentication Required\r\n\
Proxy-Authenticate: Basic realm=\"fake proxy\"\r\nContent-Length: 0\r\n\r\n";
/// 407 without a `Proxy-Authenticate` field.
pub const AUTH_REQUIRED_NO_CHALLENGE: &[u8] =
    b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n";
/// 502 with a short body.
pub const BAD_GATEWAY: &[u8] =
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad gateway";
/// A CONNECT `200` that announces and sends a body (RFC 9110 §9.3.6: a 2xx CONNECT reply has
/// none; a client must not hand these bytes to the tunnel as if they were the origin's).
pub const CONNECT_OK_WITH_BODY: &[u8] =
    b"HTTP/1.1 200 Connection established\r\nContent-Length: 5\r\n\r\nhello";
/// Not HTTP at all.
pub const GARBAGE: &[u8] = b"\x00\xff\x13\x37SSH-2.0-not-a-proxy\r\n\x1b[0m\r\n\r\n";

/// `CONNECT 200` followed by `tunnel` in the same write, as a proxy may send when the origin
/// speaks first: the client must keep those bytes for the tunnel, not lose them.
pub fn connect_ok_then(tunnel: &[u8]) -> Vec<u8> {
    let mut out = CONNECT_OK.to_vec();
    out.extend_from_slice(tunnel);
    out
}

/// A `200` reply head of at least `len` bytes (padding fields of 100 bytes each), complete
/// with its blank line, for testing a client's bound on reply heads.
pub fn huge_head(len: usize) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 Connection established\r\n".to_vec();
    let pad = "x".repeat(88);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(format!("X-Pad{i:04}: {pad}\r\n").as_bytes());
        i += 1;
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `Basic base64(user:password)`, the value of a `Proxy-Authorization` field.
pub fn basic_credentials(user: &str, password: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::from("Basic ");
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ABC[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// SOCKS5 reply codes (RFC 1928 §6).
pub mod socks5 {
    /// succeeded
    pub const SUCCEEDED: u8 = 0x00;
    /// general SOCKS server failure
    pub const GENERAL_FAILURE: u8 = 0x01;
    /// connection not allowed by ruleset
    pub const NOT_ALLOWED: u8 = 0x02;
    /// Network unreachable
    pub const NETWORK_UNREACHABLE: u8 = 0x03;
    /// Host unreachable
    pub const HOST_UNREACHABLE: u8 = 0x04;
    /// Connection refused
    pub const CONNECTION_REFUSED: u8 = 0x05;
    /// TTL expired
    pub const TTL_EXPIRED: u8 = 0x06;
    /// Command not supported
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x07;
    /// Address type not supported
    pub const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;
    /// Every failure code, 0x01..=0x08.
    pub const FAILURES: [u8; 8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
    /// Method: no authentication required.
    pub const NO_AUTH: u8 = 0x00;
    /// Method: username/password (RFC 1929).
    pub const USERNAME_PASSWORD: u8 = 0x02;
    /// Method: no acceptable methods.
    pub const NO_ACCEPTABLE: u8 = 0xFF;
}

/// SOCKS4 reply codes.
pub mod socks4 {
    /// request granted
    pub const GRANTED: u8 = 0x5A;
    /// request rejected or failed
    pub const REJECTED: u8 = 0x5B;
    /// rejected: the server cannot connect to identd on the client
    pub const NO_IDENTD: u8 = 0x5C;
    /// rejected: identd reports a different user id
    pub const IDENTD_MISMATCH: u8 = 0x5D;
    /// Every failure code.
    pub const FAILURES: [u8; 3] = [0x5B, 0x5C, 0x5D];
}

// ---------------------------------------------------------------------------------------------
// What the scripts saw

/// A request head a client sent to the proxy, as read by [`ProxyConn::read_http_head`].
#[derive(Clone, Debug)]
pub struct ProxyRequest {
    /// The method, e.g. `GET` or `CONNECT`.
    pub method: String,
    /// The target as sent: absolute-form (`http://host:port/path`) for a proxied request,
    /// authority-form (`host:port`) for CONNECT.
    pub target: String,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    /// Header fields in order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The 0-based accept number of the connection it came on.
    pub conn_index: usize,
}

impl ProxyRequest {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The origin-form of an absolute-form target (`http://h:1/a?b` → `/a?b`); other targets
    /// as they are.
    pub fn origin_form(&self) -> &str {
        origin_form(&self.target)
    }
}

fn origin_form(target: &str) -> &str {
    match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    }
}

/// Where a SOCKS client asked to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// An address (SOCKS5 ATYP 1 or 4, SOCKS4).
    Ip(IpAddr),
    /// A name the proxy is to resolve (SOCKS5 ATYP 3, SOCKS4a).
    Domain(String),
}

/// A SOCKS request, as read by [`ProxyConn::read_socks5_request`] or
/// [`ProxyConn::read_socks4_request`].
#[derive(Clone, Debug)]
pub struct SocksRequest {
    /// 5 or 4.
    pub version: u8,
    /// 1 = CONNECT, 2 = BIND, 3 = UDP ASSOCIATE.
    pub command: u8,
    /// The destination.
    pub dest: Dest,
    /// The destination port.
    pub port: u16,
    /// SOCKS4's user id (empty when none was sent); `None` for SOCKS5.
    pub user_id: Option<String>,
    /// The 0-based accept number of the connection it came on.
    pub conn_index: usize,
}

/// One thing a script read from a client, in order of reading.
#[derive(Clone, Debug)]
pub enum Seen {
    /// An HTTP request head.
    Http(ProxyRequest),
    /// A SOCKS5 greeting: the methods the client offered.
    Socks5Greeting {
        /// The connection's accept number.
        conn_index: usize,
        /// Offered methods, e.g. `[0x00, 0x02]`.
        methods: Vec<u8>,
    },
    /// RFC 1929 username and password.
    Socks5Auth {
        /// The connection's accept number.
        conn_index: usize,
        /// The username, lossily decoded.
        username: String,
        /// The password, lossily decoded.
        password: String,
    },
    /// A SOCKS5 or SOCKS4 request.
    Socks(SocksRequest),
}

// ---------------------------------------------------------------------------------------------
// FakeProxy

#[derive(Default)]
struct Shared {
    state: Watched<State>,
    stop: AtomicBool,
}

#[derive(Default)]
struct State {
    accepts: usize,
    seen: Vec<Seen>,
    panics: Vec<String>,
}

/// A loopback fake proxy running a script on each accepted connection, on its own thread.
///
/// Dropping it stops the acceptor; connection threads finish on their own (a script may hang
/// on purpose until the client closes). If a script panicked, the drop panics too (unless the
/// test is already panicking), so assertions inside scripts count.
pub struct FakeProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeProxy {
    /// Binds 127.0.0.1:0 and runs `script(&mut ProxyConn)` on each accepted connection. An
    /// error returned by the script drops the connection quietly; `Ok` closes it with
    /// [`ProxyConn::close`].
    ///
    /// # Panics
    /// If 127.0.0.1:0 cannot be bound.
    pub fn start<F>(script: F) -> FakeProxy
    where
        F: Fn(&mut ProxyConn) -> io::Result<()> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake proxy: local addr");
        let shared = Arc::new(Shared::default());
        let script = Arc::new(script);
        let acceptor = thread::Builder::new()
            .name(format!("fake-proxy-{}", addr.port()))
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(listener, shared, script)
            })
            .expect("fake proxy: spawn acceptor");
        FakeProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The bound address (ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port of [`FakeProxy::addr`].
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `{scheme}://127.0.0.1:PORT`, e.g. `url("socks5h")`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// `{scheme}://user:password@127.0.0.1:PORT`; `user` and `password` are used as given
    /// (percent-encode them first if they need it).
    pub fn url_with_credentials(&self, scheme: &str, user: &str, password: &str) -> String {
        format!("{scheme}://{user}:{password}@{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.shared.state.lock().accepts
    }

    /// Waits until at least `n` connections have been accepted; false on timeout.
    pub fn wait_for_accepts(&self, n: usize, timeout: Duration) -> bool {
        self.shared.state.wait_until(timeout, |s| s.accepts >= n)
    }

    /// Everything the scripts read so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.state.lock().seen.clone()
    }

    /// Waits until the scripts have read at least `n` things; false on timeout.
    pub fn wait_for_seen(&self, n: usize, timeout: Duration) -> bool {
        self.shared.state.wait_until(timeout, |s| s.seen.len() >= n)
    }

    /// The HTTP request heads read so far.
    pub fn http_requests(&self) -> Vec<ProxyRequest> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Http(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The SOCKS requests read so far (both versions).
    pub fn socks_requests(&self) -> Vec<SocksRequest> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Socks(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Messages of scripts that panicked, as "connection N: message".
    pub fn script_panics(&self) -> Vec<String> {
        self.shared.state.lock().panics.clone()
    }
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor out of accept(); join only if the wake-up got through.
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
        if !thread::panicking() {
            let panics = self.script_panics();
            assert!(panics.is_empty(), "fake proxy script panicked: {panics:?}");
        }
    }
}

fn accept_loop<F>(listener: TcpListener, shared: Arc<Shared>, script: Arc<F>)
where
    F: Fn(&mut ProxyConn) -> io::Result<()> + Send + Sync + 'static,
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
            Err(_) => return,
        };
        let _ = stream.set_nodelay(true);
        let index = shared.state.update(|s| {
            s.accepts += 1;
            s.accepts - 1
        });
        let mut conn = ProxyConn {
            stream: Some(stream),
            index,
            shared: Arc::clone(&shared),
            buf: Vec::new(),
        };
        let script = Arc::clone(&script);
        let _ = thread::Builder::new()
            .name(format!("fake-proxy-conn-{index}"))
            .spawn(
                move || match panic::catch_unwind(AssertUnwindSafe(|| script(&mut conn))) {
                    Ok(Ok(())) => conn.close(),
                    Ok(Err(_)) => {}
                    Err(payload) => {
                        let msg = payload
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "non-string panic".to_string());
                        conn.shared
                            .state
                            .update(|s| s.panics.push(format!("connection {index}: {msg}")));
                    }
                },
            );
    }
}

// ---------------------------------------------------------------------------------------------
// ProxyConn

/// The proxy side of one accepted connection, handed to the script. Reads are buffered:
/// bytes a client sent past what a `read_*` method consumed stay buffered and go to the
/// origin first on [`ProxyConn::relay`].
pub struct ProxyConn {
    stream: Option<TcpStream>,
    index: usize,
    shared: Arc<Shared>,
    buf: Vec<u8>,
}

impl ProxyConn {
    /// The 0-based accept number of this connection.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The socket, for anything the helpers do not cover (buffered bytes are not visible
    /// through it).
    ///
    /// # Panics
    /// After [`ProxyConn::close`] or [`ProxyConn::reset`].
    pub fn stream(&mut self) -> &mut TcpStream {
        self.stream.as_mut().expect("connection already closed")
    }

    /// Reads one HTTP request head (no body: proxied requests in these tests have none, and
    /// CONNECT never does) and records it. `Ok(None)` on a clean EOF before any byte.
    ///
    /// # Errors
    /// `UnexpectedEof` inside a head; `InvalidData` for a malformed head or one over
    /// [`MAX_HEAD`]; socket errors.
    pub fn read_http_head(&mut self) -> io::Result<Option<ProxyRequest>> {
        let mut scanned = 0;
        let end = loop {
            let skip = leading_empty_lines(&self.buf);
            if skip > 0 {
                self.buf.drain(..skip);
                scanned = 0;
            }
            if let Some(end) = find_head_end(&self.buf, scanned) {
                break end;
            }
            scanned = self.buf.len();
            if self.buf.len() > MAX_HEAD {
                return Err(invalid(format!("request head over {MAX_HEAD} bytes")));
            }
            if self.read_more()? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(eof("eof inside request head"))
                };
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let (method, target, version, headers) = parse_head(&head)?;
        let request = ProxyRequest {
            method,
            target,
            version,
            headers,
            conn_index: self.index,
        };
        self.record(Seen::Http(request.clone()));
        Ok(Some(request))
    }

    /// Reads a SOCKS5 greeting (`05 n methods...`), records and returns the methods.
    ///
    /// # Errors
    /// `InvalidData` when the version byte is not 5; EOF and socket errors.
    pub fn read_socks5_greeting(&mut self) -> io::Result<Vec<u8>> {
        let [version, n] = self.take_array()?;
        if version != 5 {
            return Err(invalid(format!("SOCKS5 greeting with version {version}")));
        }
        let methods = self.take(usize::from(n))?;
        let conn_index = self.index;
        self.record(Seen::Socks5Greeting {
            conn_index,
            methods: methods.clone(),
        });
        Ok(methods)
    }

    /// Reads an RFC 1929 username/password request (`01 ulen user plen pass`), records and
    /// returns (username, password), lossily decoded.
    ///
    /// # Errors
    /// `InvalidData` when the subnegotiation version is not 1; EOF and socket errors.
    pub fn read_socks5_auth(&mut self) -> io::Result<(String, String)> {
        let [version, ulen] = self.take_array()?;
        if version != 1 {
            return Err(invalid(format!("RFC 1929 request with version {version}")));
        }
        let user = self.take(usize::from(ulen))?;
        let [plen] = self.take_array()?;
        let password = self.take(usize::from(plen))?;
        let (username, password) = (
            String::from_utf8_lossy(&user).into_owned(),
            String::from_utf8_lossy(&password).into_owned(),
        );
        let conn_index = self.index;
        self.record(Seen::Socks5Auth {
            conn_index,
            username: username.clone(),
            password: password.clone(),
        });
        Ok((username, password))
    }

    /// Reads a SOCKS5 request (`05 cmd 00 atyp addr port`) and records it.
    ///
    /// # Errors
    /// `InvalidData` for a wrong version or an unknown address type; EOF and socket errors.
    pub fn read_socks5_request(&mut self) -> io::Result<SocksRequest> {
        let [version, command, _reserved, atyp] = self.take_array()?;
        if version != 5 {
            return Err(invalid(format!("SOCKS5 request with version {version}")));
        }
        let dest = match atyp {
            0x01 => Dest::Ip(IpAddr::V4(Ipv4Addr::from(self.take_array::<4>()?))),
            0x04 => Dest::Ip(IpAddr::V6(Ipv6Addr::from(self.take_array::<16>()?))),
            0x03 => {
                let [len] = self.take_array()?;
                let name = self.take(usize::from(len))?;
                Dest::Domain(String::from_utf8_lossy(&name).into_owned())
            }
            _ => return Err(invalid(format!("SOCKS5 address type {atyp:#04x}"))),
        };
        let port = u16::from_be_bytes(self.take_array()?);
        let request = SocksRequest {
            version,
            command,
            dest,
            port,
            user_id: None,
            conn_index: self.index,
        };
        self.record(Seen::Socks(request.clone()));
        Ok(request)
    }

    /// Reads a SOCKS4 or SOCKS4a request (`04 cmd port ip userid 00 [domain 00]`) and
    /// records it; a 4a request (ip 0.0.0.x, x ≠ 0) has its name as [`Dest::Domain`].
    ///
    /// # Errors
    /// `InvalidData` for a wrong version or a user id or name over 255 bytes; EOF and socket
    /// errors.
    pub fn read_socks4_request(&mut self) -> io::Result<SocksRequest> {
        let [version, command] = self.take_array()?;
        if version != 4 {
            return Err(invalid(format!("SOCKS4 request with version {version}")));
        }
        let port = u16::from_be_bytes(self.take_array()?);
        let ip = Ipv4Addr::from(self.take_array::<4>()?);
        let user_id = self.take_nul_terminated()?;
        let [a, b, c, d] = ip.octets();
        let dest = if (a, b, c) == (0, 0, 0) && d != 0 {
            Dest::Domain(self.take_nul_terminated()?)
        } else {
            Dest::Ip(IpAddr::V4(ip))
        };
        let request = SocksRequest {
            version,
            command,
            dest,
            port,
            user_id: Some(user_id),
            conn_index: self.index,
        };
        self.record(Seen::Socks(request.clone()));
        Ok(request)
    }

    /// Writes all of `bytes` at once.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.stream.as_mut().ok_or_else(closed)?;
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// The SOCKS5 method selection reply: `05 method`.
    pub fn send_socks5_method(&mut self, method: u8) -> io::Result<()> {
        self.send(&[0x05, method])
    }

    /// The RFC 1929 status reply: `01 status` (0 = success).
    pub fn send_socks5_auth_status(&mut self, status: u8) -> io::Result<()> {
        self.send(&[0x01, status])
    }

    /// A SOCKS5 reply with code `rep` and bound address 0.0.0.0:0.
    pub fn send_socks5_reply(&mut self, rep: u8) -> io::Result<()> {
        self.send(&[0x05, rep, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
    }

    /// A SOCKS4 reply with code `code` (0x5A granted, 0x5B..=0x5D refused), port and address
    /// zero.
    pub fn send_socks4_reply(&mut self, code: u8) -> io::Result<()> {
        self.send(&[0x00, code, 0, 0, 0, 0, 0, 0])
    }

    /// A real tunnel: connects to `origin`, sends it any bytes already buffered from the
    /// client, then copies bytes both ways until both sides are done (each EOF is passed on
    /// as a FIN). Returns when both directions have ended.
    ///
    /// # Errors
    /// When `origin` cannot be reached (the client sees the connection closed), or a socket
    /// error before the copy starts.
    pub fn relay(&mut self, origin: SocketAddr) -> io::Result<()> {
        let mut upstream = TcpStream::connect(origin)?;
        let _ = upstream.set_nodelay(true);
        if !self.buf.is_empty() {
            upstream.write_all(&self.buf)?;
            self.buf.clear();
        }
        let client = self.stream.as_mut().ok_or_else(closed)?;
        let mut from_client = client.try_clone()?;
        let mut to_upstream = upstream.try_clone()?;
        let up = thread::Builder::new()
            .name(format!("fake-proxy-relay-{}", self.index))
            .spawn(move || {
                let _ = io::copy(&mut from_client, &mut to_upstream);
                let _ = to_upstream.shutdown(Shutdown::Write);
            })?;
        let _ = io::copy(&mut upstream, client);
        let _ = client.shutdown(Shutdown::Write);
        let _ = up.join();
        Ok(())
    }

    /// Reads and discards until the client closes; never answers.
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

    /// Closes with a FIN, then reads (and discards) until the client closes or [`LINGER`]
    /// passes, so unread input does not turn the FIN into an RST that eats the answer.
    pub fn close(&mut self) {
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
        }
    }

    /// Aborts with an RST; the client sees ECONNRESET.
    pub fn reset(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
    }

    fn record(&self, seen: Seen) {
        self.shared.state.update(|s| s.seen.push(seen));
    }

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

    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.read_more()? == 0 {
                return Err(eof("eof inside a SOCKS message"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn take_array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let v = self.take(N)?;
        Ok(v.try_into().expect("took N bytes"))
    }

    fn take_nul_terminated(&mut self) -> io::Result<String> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == 0) {
                let mut field: Vec<u8> = self.buf.drain(..=scanned + i).collect();
                field.pop();
                return Ok(String::from_utf8_lossy(&field).into_owned());
            }
            scanned = self.buf.len();
            if scanned > 255 {
                return Err(invalid("SOCKS4 field over 255 bytes"));
            }
            if self.read_more()? == 0 {
                return Err(eof("eof inside a SOCKS4 request"));
            }
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection already closed")
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn eof(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Ready-made scripts

/// What [`FakeProxy::start`] takes: the bound every ready-made script below meets.
pub trait Script: Fn(&mut ProxyConn) -> io::Result<()> + Send + Sync + 'static {}
impl<F: Fn(&mut ProxyConn) -> io::Result<()> + Send + Sync + 'static> Script for F {}

/// Reads one HTTP request head, sends `bytes` verbatim (any canned answer: [`AUTH_REQUIRED`],
/// [`BAD_GATEWAY`], [`huge_head`], [`GARBAGE`], ...), closes (FIN).
pub fn http_reply(bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> impl Script {
    move |conn: &mut ProxyConn| {
        if conn.read_http_head()?.is_some() {
            conn.send(bytes.as_ref())?;
        }
        Ok(())
    }
}

/// Reads one HTTP request head and never answers; returns when the client closes.
pub fn hang_after_head() -> impl Script {
    |conn: &mut ProxyConn| {
        conn.read_http_head()?;
        conn.hang()
    }
}

/// Never answers anything (HTTP or SOCKS); returns when the client closes.
pub fn hang() -> impl Script {
    |conn: &mut ProxyConn| conn.hang()
}

/// Reads one HTTP request head and closes (FIN) without a byte of answer.
pub fn close_after_head() -> impl Script {
    |conn: &mut ProxyConn| {
        conn.read_http_head()?;
        Ok(())
    }
}

/// Reads one HTTP request head, sends the first `n` bytes of `answer`, then closes: an
/// answer cut short.
pub fn http_reply_cut(answer: &'static [u8], n: usize) -> impl Script {
    move |conn: &mut ProxyConn| {
        if conn.read_http_head()?.is_some() {
            conn.send(&answer[..n.min(answer.len())])?;
        }
        Ok(())
    }
}

/// A working HTTP proxy in front of `origin`, for the success paths. A CONNECT (to any
/// target) gets [`CONNECT_OK`] and a tunnel to `origin`; any other request is forwarded to
/// `origin` with an origin-form target and without `Proxy-Authorization` and
/// `Proxy-Connection`, and the rest of the connection is relayed unchanged (so a second
/// request on it arrives as the client sent it). With `auth` = (user, password), a request
/// without those credentials gets [`AUTH_REQUIRED`] and the connection is closed.
pub fn http_proxy(origin: SocketAddr, auth: Option<(&str, &str)>) -> impl Script {
    let expected = auth.map(|(u, p)| basic_credentials(u, p));
    move |conn: &mut ProxyConn| {
        let Some(req) = conn.read_http_head()? else {
            return Ok(());
        };
        if let Some(expected) = &expected {
            if req.header("proxy-authorization") != Some(expected.as_str()) {
                return conn.send(AUTH_REQUIRED);
            }
        }
        if req.method.eq_ignore_ascii_case("CONNECT") {
            conn.send(CONNECT_OK)?;
            return conn.relay(origin);
        }
        let mut head = format!(
            "{} {} HTTP/1.{}\r\n",
            req.method,
            req.origin_form(),
            req.version
        );
        for (name, value) in &req.headers {
            if !name.eq_ignore_ascii_case("proxy-authorization")
                && !name.eq_ignore_ascii_case("proxy-connection")
            {
                head += &format!("{name}: {value}\r\n");
            }
        }
        head += "\r\n";
        let mut forwarded = head.into_bytes();
        forwarded.append(&mut conn.buf);
        conn.buf = forwarded;
        conn.relay(origin)
    }
}

/// Reads a SOCKS5 greeting and picks no-auth if offered, else username/password (then reads
/// and records the credentials and accepts any); returns the request.
fn socks5_handshake(conn: &mut ProxyConn) -> io::Result<SocksRequest> {
    let methods = conn.read_socks5_greeting()?;
    if methods.contains(&socks5::NO_AUTH) {
        conn.send_socks5_method(socks5::NO_AUTH)?;
    } else {
        conn.send_socks5_method(socks5::USERNAME_PASSWORD)?;
        conn.read_socks5_auth()?;
        conn.send_socks5_auth_status(0)?;
    }
    conn.read_socks5_request()
}

/// A working SOCKS5 proxy tunnelling every CONNECT to `origin` (whatever the client asked
/// for; the request is recorded). With `auth` = (user, password) it offers only
/// username/password and refuses (status 1, then close) other credentials; a client that
/// does not offer that method gets `0xFF` and the connection closed.
pub fn socks5_proxy(origin: SocketAddr, auth: Option<(&str, &str)>) -> impl Script {
    let auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
    move |conn: &mut ProxyConn| {
        let methods = conn.read_socks5_greeting()?;
        match &auth {
            None if methods.contains(&socks5::NO_AUTH) => {
                conn.send_socks5_method(socks5::NO_AUTH)?
            }
            Some(_) if methods.contains(&socks5::USERNAME_PASSWORD) => {
                conn.send_socks5_method(socks5::USERNAME_PASSWORD)?
            }
            _ => return conn.send_socks5_method(socks5::NO_ACCEPTABLE),
        }
        if let Some(expected) = &auth {
            if &conn.read_socks5_auth()? != expected {
                return conn.send_socks5_auth_status(1);
            }
            conn.send_socks5_auth_status(0)?;
        }
        conn.read_socks5_request()?;
        conn.send_socks5_reply(socks5::SUCCEEDED)?;
        conn.relay(origin)
    }
}

/// SOCKS5 handshake (accepting no-auth, or any username/password), then reply code `rep`
/// (see [`socks5::FAILURES`]) and close.
pub fn socks5_reply(rep: u8) -> impl Script {
    move |conn: &mut ProxyConn| {
        socks5_handshake(conn)?;
        conn.send_socks5_reply(rep)
    }
}

/// Reads the SOCKS5 greeting, answers with method `method` (e.g. [`socks5::NO_ACCEPTABLE`],
/// or one the client did not offer) and closes.
pub fn socks5_method(method: u8) -> impl Script {
    move |conn: &mut ProxyConn| {
        conn.read_socks5_greeting()?;
        conn.send_socks5_method(method)
    }
}

/// Picks username/password, reads the credentials, answers RFC 1929 status `status` (non-zero
/// is a refusal) and closes.
pub fn socks5_auth_status(status: u8) -> impl Script {
    move |conn: &mut ProxyConn| {
        conn.read_socks5_greeting()?;
        conn.send_socks5_method(socks5::USERNAME_PASSWORD)?;
        conn.read_socks5_auth()?;
        conn.send_socks5_auth_status(status)
    }
}

/// Reads the SOCKS5 greeting and answers `bytes` verbatim (e.g. `[0x04, 0x00]`: a wrong
/// version byte), then closes.
pub fn socks5_greeting_reply(bytes: &'static [u8]) -> impl Script {
    move |conn: &mut ProxyConn| {
        conn.read_socks5_greeting()?;
        conn.send(bytes)
    }
}

/// Reads the SOCKS5 greeting and closes without answering: a close mid-handshake.
pub fn socks5_close_after_greeting() -> impl Script {
    |conn: &mut ProxyConn| {
        conn.read_socks5_greeting()?;
        Ok(())
    }
}

/// SOCKS5 handshake, then the reply `bytes` verbatim instead of a proper reply (a wrong
/// version, a cut reply, an unknown address type ...), then close.
pub fn socks5_raw_reply(bytes: &'static [u8]) -> impl Script {
    move |conn: &mut ProxyConn| {
        socks5_handshake(conn)?;
        conn.send(bytes)
    }
}

/// Reads a SOCKS4/4a request and answers code `code` (see [`socks4::FAILURES`]), then closes.
pub fn socks4_reply(code: u8) -> impl Script {
    move |conn: &mut ProxyConn| {
        conn.read_socks4_request()?;
        conn.send_socks4_reply(code)
    }
}

/// A working SOCKS4/4a proxy: grants every request and tunnels it to `origin`.
pub fn socks4_proxy(origin: SocketAddr) -> impl Script {
    move |conn: &mut ProxyConn| {
        conn.read_socks4_request()?;
        conn.send_socks4_reply(socks4::GRANTED)?;
        conn.relay(origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_is_rfc_7617_base64() {
        // RFC 7617 §2's example.
        assert_eq!(
            basic_credentials("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_credentials("a", ""), "Basic YTo=");
        assert_eq!(basic_credentials("ab", "c"), "Basic YWI6Yw==");
        assert_eq!(basic_credentials("ab", "cd"), "Basic YWI6Y2Q=");
    }

    #[test]
    fn origin_form_of_targets() {
        assert_eq!(origin_form("http://h:1/a?b=1"), "/a?b=1");
        assert_eq!(origin_form("http://h:1"), "/");
        assert_eq!(origin_form("h:443"), "h:443");
        assert_eq!(origin_form("/already"), "/already");
    }

    #[test]
    fn huge_head_is_long_and_complete() {
        let head = huge_head(100_000);
        assert!(head.len() >= 100_000);
        assert!(head.starts_with(b"HTTP/1.1 200 "));
        assert!(head.ends_with(b"\r\n\r\n"));
        assert_eq!(head.windows(4).filter(|w| w == b"\r\n\r\n").count(), 1);
    }
}
