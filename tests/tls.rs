//! HTTPS against loopback rustls servers with certificates made at test time.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use parafetch::{Builder, ErrorKind, Fetcher, Phase, Response};
use parafetch_test_support::gate::Gate;
use parafetch_test_support::pki::{Leaf, pki, server_config};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// The server side of one TLS connection, blocking, on its own thread.
struct Side {
    tls: StreamOwned<ServerConnection, TcpStream>,
}

impl Side {
    /// Reads one request head (GET only); `None` at EOF.
    fn read_request(&mut self) -> io::Result<Option<String>> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match self.tls.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => head.push(byte[0]),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(String::from_utf8_lossy(&head).into_owned()))
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tls.write_all(bytes)?;
        self.tls.flush()
    }

    /// Sends each piece as a TLS record of its own, all in one socket write, so they arrive
    /// together.
    fn send_records(&mut self, pieces: &[&[u8]]) -> io::Result<()> {
        for piece in pieces {
            self.tls.conn.writer().write_all(piece)?;
        }
        self.tls.flush()
    }

    fn close_notify(&mut self) -> io::Result<()> {
        self.tls.conn.send_close_notify();
        self.tls.flush()
    }

    /// Closes TCP without a close_notify.
    fn close_unclean(&mut self) {
        let _ = self.tls.sock.shutdown(std::net::Shutdown::Write);
        let mut sink = [0u8; 1024];
        while matches!(self.tls.sock.read(&mut sink), Ok(n) if n > 0) {}
    }
}

struct TlsServer {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    resumed: Arc<AtomicUsize>,
}

impl TlsServer {
    fn start<F>(config: Arc<ServerConfig>, gate: Option<Arc<Gate>>, script: F) -> TlsServer
    where
        F: Fn(&mut Side) -> io::Result<()> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let resumed = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let (acc, res) = (accepts.clone(), resumed.clone());
        thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                acc.fetch_add(1, Ordering::SeqCst);
                let (config, script, res, gate) =
                    (config.clone(), script.clone(), res.clone(), gate.clone());
                thread::spawn(move || {
                    if let Some(gate) = gate {
                        // Hold the ServerHello until every client has sent its ClientHello.
                        let mut b = [0u8; 1];
                        let _ = tcp.peek(&mut b);
                        if !gate.arrive_and_wait(Duration::from_secs(20)) {
                            return;
                        }
                    }
                    let conn = ServerConnection::new(config).unwrap();
                    let mut side = Side {
                        tls: StreamOwned::new(conn, tcp),
                    };
                    while side.tls.conn.is_handshaking() {
                        if side.tls.conn.complete_io(&mut side.tls.sock).is_err() {
                            return;
                        }
                    }
                    if side.tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                        res.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = script(&mut side);
                });
            }
        });
        TlsServer {
            addr,
            accepts,
            resumed,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.addr.port())
    }
}

fn respond_ok(body: &'static [u8]) -> impl Fn(&mut Side) -> io::Result<()> + Send + Sync {
    move |s: &mut Side| {
        while let Some(_req) = s.read_request()? {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            s.send(head.as_bytes())?;
            s.send(body)?;
        }
        Ok(())
    }
}

fn trusting() -> Builder {
    Fetcher::builder()
        .tls_default_roots(false)
        .tls_roots_pem(pki().ca_pem.as_bytes())
}

fn fetch(b: Builder, url: String) -> Result<Response, parafetch::Error> {
    b.fetch_all([url]).next().unwrap().1
}

#[test]
fn https_with_trusted_test_ca() {
    let s = TlsServer::start(server_config(&pki().good), None, respond_ok(b"secret"));
    for host in ["127.0.0.1", "localhost"] {
        let r = fetch(trusting(), s.url(host, "/")).unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"secret"[..]));
        let tls = r.tls.expect("tls info");
        assert_eq!(tls.protocol_version, "TLSv1_3");
        assert_eq!(tls.alpn.as_deref(), Some("http/1.1"));
        assert!(
            tls.cipher_suite.starts_with("TLS13_"),
            "{}",
            tls.cipher_suite
        );
        // Measured (even when the handshake finishes within one loop turn), and inside the
        // total.
        assert!(r.timings.tls > Duration::ZERO, "{:?}", r.timings);
        assert!(r.timings.tls <= r.timings.first_byte && r.timings.first_byte <= r.timings.total);
    }
}

#[test]
fn bad_certificates_fail_with_tls_kind() {
    let p = pki();
    let cases: [(&str, &Leaf, &str); 4] = [
        ("expired", &p.expired, "expired"),
        ("wrong name", &p.wrong_name, "NotValidForName"),
        ("self-signed", &p.self_signed, "UnknownIssuer"),
        ("untrusted CA", &p.untrusted, "UnknownIssuer"),
    ];
    for (what, leaf, needle) in cases {
        let s = TlsServer::start(server_config(leaf), None, respond_ok(b"x"));
        let e = fetch(trusting(), s.url("localhost", "/")).unwrap_err();
        assert_eq!(
            (e.kind(), e.phase()),
            (ErrorKind::Tls, Phase::Tls),
            "{what}: {e}"
        );
        assert!(
            format!("{e:?}").contains(needle),
            "{what}: {e:?} should mention {needle}"
        );
    }
}

#[test]
fn test_ca_is_not_trusted_by_default() {
    let s = TlsServer::start(server_config(&pki().good), None, respond_ok(b"x"));
    let e = fetch(Fetcher::builder(), s.url("localhost", "/")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls);
    assert!(format!("{e:?}").contains("UnknownIssuer"), "{e:?}");
}

#[test]
fn danger_accept_invalid_certs_accepts_self_signed() {
    let s = TlsServer::start(server_config(&pki().self_signed), None, respond_ok(b"ok"));
    let b = Fetcher::builder().danger_accept_invalid_certs(true);
    assert_eq!(fetch(b, s.url("127.0.0.1", "/")).unwrap().body, b"ok");
}

#[test]
fn bad_pem_is_refused() {
    // The chain goes on; building reports the bad bundle.
    let b = Fetcher::builder()
        .tls_roots_pem(b"not a pem")
        .max_in_flight(2);
    let e = b.clone().try_build::<()>().unwrap_err();
    assert_eq!((e.kind(), e.phase()), (ErrorKind::Tls, Phase::Prepare));
    // fetch_all yields it for every URL, as it does when no event loop can be made.
    let urls = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"];
    let results: Vec<_> = b.clone().fetch_all(urls).collect();
    assert_eq!(results.len(), 2);
    for (url, r) in results {
        let e = r.expect_err("no fetcher, no response");
        assert_eq!(e.kind(), ErrorKind::Tls, "{url}: {e}");
    }
    // build panics with the error.
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(b.build::<()>())))
        .unwrap_err();
    let msg = panic.downcast_ref::<String>().expect("a formatted message");
    assert!(msg.contains("tls during prepare"), "{msg}");
}

/// Policy: a close-delimited body must end with close_notify; a bare TCP close could be an
/// attacker cutting it short, so it is `truncated`. (Browsers accept it; we side with curl's
/// OpenSSL 3 behaviour.)
#[test]
fn close_delimited_body_needs_close_notify() {
    let clean = TlsServer::start(server_config(&pki().good), None, |s: &mut Side| {
        s.read_request()?;
        s.send(b"HTTP/1.1 200 OK\r\n\r\nall of it")?;
        s.close_notify()
    });
    let r = fetch(trusting(), clean.url("localhost", "/")).unwrap();
    assert_eq!(r.body, b"all of it");

    let unclean = TlsServer::start(server_config(&pki().good), None, |s: &mut Side| {
        s.read_request()?;
        s.send(b"HTTP/1.1 200 OK\r\n\r\nall of it?")?;
        s.close_unclean();
        Ok(())
    });
    let e = fetch(trusting(), unclean.url("localhost", "/")).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Truncated, Phase::ReceiveBody),
        "{e}"
    );
    assert!(e.message().contains("close_notify"), "{e}");
}

#[test]
fn length_body_cut_short_over_tls_is_truncated() {
    let s = TlsServer::start(server_config(&pki().good), None, |s: &mut Side| {
        s.read_request()?;
        s.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")?;
        s.close_notify()
    });
    let e = fetch(trusting(), s.url("localhost", "/")).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Truncated, Phase::ReceiveBody),
        "{e}"
    );
}

#[test]
fn large_bodies_span_many_records() {
    static BIG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let big: &'static [u8] =
        BIG.get_or_init(|| (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect());
    let s = TlsServer::start(server_config(&pki().good), None, move |s: &mut Side| {
        while let Some(req) = s.read_request()? {
            if req.starts_with("GET /chunked") {
                s.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
                for piece in big.chunks(70_001) {
                    s.send(format!("{:x}\r\n", piece.len()).as_bytes())?;
                    s.send(piece)?;
                    s.send(b"\r\n")?;
                }
                s.send(b"0\r\n\r\n")?;
            } else {
                s.send(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len()).as_bytes(),
                )?;
                s.send(big)?;
            }
        }
        Ok(())
    });
    for path in ["/length", "/chunked"] {
        let r = fetch(trusting(), s.url("localhost", path)).unwrap();
        assert_eq!(r.body.len(), big.len(), "{path}");
        assert!(r.body == big, "{path}: body differs");
    }
}

#[test]
fn large_request_body_over_tls() {
    // More than rustls' 64 KiB send buffer: the writer must wait for the socket, not fail.
    let s = TlsServer::start(server_config(&pki().good), None, |s: &mut Side| {
        let head = s.read_request()?.unwrap_or_default();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        s.tls.read_exact(&mut body)?;
        let sum: u64 = body.iter().map(|&b| b as u64).sum();
        s.send(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{sum}",
                sum.to_string().len()
            )
            .as_bytes(),
        )
    });
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 200) as u8).collect();
    let want: u64 = body.iter().map(|&b| b as u64).sum();
    let req = parafetch::Request::post(s.url("localhost", "/up")).body(body);
    let r = trusting().fetch_all([req]).next().unwrap().1.unwrap();
    assert_eq!(r.text(), want.to_string());
}

#[test]
fn keep_alive_reuses_tls_connections_and_sessions_resume() {
    let s = TlsServer::start(server_config(&pki().good), None, respond_ok(b"ok"));
    let urls: Vec<String> = (0..5)
        .map(|i| s.url("localhost", &format!("/{i}")))
        .collect();
    let results: Vec<_> = trusting()
        .max_in_flight(1)
        .fetch_all(urls.clone())
        .collect();
    assert!(
        results
            .iter()
            .all(|(_, r)| r.as_ref().unwrap().status == 200)
    );
    assert_eq!(
        s.accepts.load(Ordering::SeqCst),
        1,
        "one connection for five requests"
    );

    let s2 = TlsServer::start(server_config(&pki().good), None, respond_ok(b"ok"));
    let urls: Vec<String> = (0..3)
        .map(|i| s2.url("localhost", &format!("/{i}")))
        .collect();
    let results: Vec<_> = trusting()
        .max_in_flight(1)
        .keep_alive(false)
        .fetch_all(urls)
        .map(|(_, r)| r.unwrap())
        .collect();
    assert_eq!(s2.accepts.load(Ordering::SeqCst), 3);
    assert!(
        s2.resumed.load(Ordering::SeqCst) >= 1,
        "a later handshake resumed"
    );
    assert!(
        results
            .iter()
            .skip(1)
            .any(|r| r.tls.as_ref().unwrap().resumed)
    );
}

/// The server holds every ServerHello until all 50 ClientHellos have arrived: a client that
/// blocked on one handshake would never send the others, and the gate would time out.
#[test]
fn fifty_handshakes_progress_at_once() {
    let gate = Gate::new(50);
    let s = TlsServer::start(server_config(&pki().good), Some(gate), respond_ok(b"ok"));
    let urls: Vec<String> = (0..50)
        .map(|i| s.url("localhost", &format!("/{i}")))
        .collect();
    let results: Vec<_> = trusting().max_in_flight(50).fetch_all(urls).collect();
    assert_eq!(results.len(), 50);
    for (url, r) in results {
        assert_eq!(r.unwrap_or_else(|e| panic!("{url}: {e}")).status, 200);
    }
}

/// A HEAD response followed by a body it must not have, in a TLS record of its own: the
/// extra bytes sit unread behind the response (TLS reads a record at a time), so the
/// connection must not be pooled, or the next request would read them as its response.
#[test]
fn leftover_tls_records_keep_a_connection_out_of_the_pool() {
    let s = TlsServer::start(server_config(&pki().good), None, |s: &mut Side| {
        while let Some(req) = s.read_request()? {
            if req.starts_with("HEAD") {
                // Two records in one write: the stray bytes are there when the response
                // ends (sent later, they could arrive after the connection was reused,
                // which no client can tell from a server answering a request not sent).
                s.send_records(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"stray"])?;
            } else {
                s.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")?;
            }
        }
        Ok(())
    });
    let reqs = vec![
        parafetch::Request::head(s.url("localhost", "/h")),
        parafetch::Request::get(s.url("localhost", "/g")),
    ];
    let results: Vec<_> = trusting().max_in_flight(1).fetch_all(reqs).collect();
    for (url, r) in results {
        let r = r.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(r.status, 200, "{url}");
        if url.ends_with("/g") {
            assert_eq!(r.body, b"ok");
        }
    }
}
