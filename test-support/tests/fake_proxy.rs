//! The fake proxy proven with std clients (and rustls, for TLS through its relay): every
//! canned failure arrives byte for byte, every handshake step is recorded, and the relay is
//! a real tunnel for HTTP and TLS.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parafetch_test_support::fake_proxy::{
    self, AUTH_REQUIRED, AUTH_REQUIRED_NO_CHALLENGE, BAD_GATEWAY, CONNECT_OK_WITH_BODY, Dest,
    FakeProxy, GARBAGE, Seen, basic_credentials, socks4, socks5,
};
use parafetch_test_support::http::{TestServer, ok_body};
use parafetch_test_support::pki::{pki, server_config};

const LONG: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    s
}

/// Sends `request`, reads until the proxy closes.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// Reads one response head and its Content-Length body.
fn read_response(s: &mut impl Read) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed inside a head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |n| n.parse().unwrap());
    let mut body = vec![0; length];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

const CONNECT: &[u8] = b"CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n\r\n";

#[test]
fn canned_http_answers_arrive_verbatim_and_heads_are_recorded() {
    let huge = fake_proxy::huge_head(200_000);
    let cases: Vec<(&[u8], Vec<u8>)> = vec![
        (AUTH_REQUIRED, AUTH_REQUIRED.to_vec()),
        (
            AUTH_REQUIRED_NO_CHALLENGE,
            AUTH_REQUIRED_NO_CHALLENGE.to_vec(),
        ),
        (BAD_GATEWAY, BAD_GATEWAY.to_vec()),
        (CONNECT_OK_WITH_BODY, CONNECT_OK_WITH_BODY.to_vec()),
        (GARBAGE, GARBAGE.to_vec()),
        (&huge, huge.clone()),
    ];
    for (answer, expected) in cases {
        let proxy = FakeProxy::start(fake_proxy::http_reply(answer.to_vec()));
        assert_eq!(exchange(proxy.addr(), CONNECT), expected);
        let reqs = proxy.http_requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(
            (reqs[0].method.as_str(), reqs[0].target.as_str()),
            ("CONNECT", "origin.test:443")
        );
        assert_eq!(reqs[0].header("proxy-authorization"), None);
        assert_eq!(proxy.accepts(), 1);
    }
    assert!(
        AUTH_REQUIRED
            .windows(18)
            .any(|w| w == b"Proxy-Authenticate")
    );
    assert!(
        !AUTH_REQUIRED_NO_CHALLENGE
            .windows(18)
            .any(|w| w == b"Proxy-Authenticate")
    );
}

#[test]
fn connect_ok_then_sends_the_tunnel_bytes_in_the_same_write() {
    let answer = fake_proxy::connect_ok_then(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    let proxy = FakeProxy::start(fake_proxy::http_reply(answer.clone()));
    assert_eq!(exchange(proxy.addr(), CONNECT), answer);
}

#[test]
fn an_absolute_form_request_and_its_credentials_are_recorded() {
    let proxy = FakeProxy::start(fake_proxy::http_reply(BAD_GATEWAY));
    let auth = basic_credentials("user", "pw");
    let req = format!(
        "GET http://origin.test:8080/a?b=1 HTTP/1.1\r\nHost: origin.test:8080\r\n\
         Proxy-Authorization: {auth}\r\n\r\n"
    );
    assert_eq!(exchange(proxy.addr(), req.as_bytes()), BAD_GATEWAY);
    let got = &proxy.http_requests()[0];
    assert_eq!(got.target, "http://origin.test:8080/a?b=1");
    assert_eq!(got.origin_form(), "/a?b=1");
    assert_eq!(
        got.header("Proxy-Authorization"),
        Some("Basic dXNlcjpwdw==")
    );
}

#[test]
fn hanging_and_closing_mid_handshake() {
    let proxy = FakeProxy::start(fake_proxy::hang_after_head());
    let mut s = connect(proxy.addr());
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(CONNECT).unwrap();
    let err = s.read(&mut [0u8; 16]).unwrap_err();
    assert!(matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ));
    assert!(proxy.wait_for_seen(1, LONG));

    let proxy = FakeProxy::start(fake_proxy::close_after_head());
    assert_eq!(exchange(proxy.addr(), CONNECT), b"");
    assert_eq!(proxy.http_requests().len(), 1);

    let proxy = FakeProxy::start(fake_proxy::http_reply_cut(AUTH_REQUIRED, 20));
    assert_eq!(exchange(proxy.addr(), CONNECT), &AUTH_REQUIRED[..20]);
}

#[test]
fn http_proxy_forwards_in_origin_form_and_tunnels_connect() {
    let origin = TestServer::start(ok_body(b"from origin"));
    let proxy = FakeProxy::start(fake_proxy::http_proxy(origin.addr(), None));
    let mut s = connect(proxy.addr());
    let url = origin.url("/forwarded");
    write!(
        s,
        "GET {url} HTTP/1.1\r\nHost: {}\r\nProxy-Connection: keep-alive\r\n\r\n",
        origin.addr()
    )
    .unwrap();
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"from origin");

    let mut s = connect(proxy.addr());
    s.write_all(CONNECT).unwrap();
    let (head, _) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    // Keep-alive inside the tunnel: two requests on one connection to the origin.
    for path in ["/tunnel-1", "/tunnel-2"] {
        write!(s, "GET {path} HTTP/1.1\r\nHost: origin.test\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s).1, b"from origin");
    }
    assert!(origin.wait_for_requests(3, LONG));
    let reqs = origin.requests();
    let targets: Vec<&str> = reqs.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/forwarded", "/tunnel-1", "/tunnel-2"]);
    assert_eq!(reqs[0].header("proxy-connection"), None);
    assert_eq!((reqs[1].conn_index, reqs[2].conn_index), (1, 1));
    assert_eq!(proxy.accepts(), 2);
}

#[test]
fn http_proxy_with_auth_refuses_missing_or_wrong_credentials() {
    let origin = TestServer::start(ok_body(b"from origin"));
    let proxy = FakeProxy::start(fake_proxy::http_proxy(origin.addr(), Some(("u", "p"))));
    for auth in [None, Some(basic_credentials("u", "wrong"))] {
        let field = auth.map_or(String::new(), |a| format!("Proxy-Authorization: {a}\r\n"));
        let req = format!("CONNECT origin.test:443 HTTP/1.1\r\n{field}\r\n");
        assert_eq!(exchange(proxy.addr(), req.as_bytes()), AUTH_REQUIRED);
    }
    let right = basic_credentials("u", "p");
    let url = origin.url("/ok");
    let req =
        format!("GET {url} HTTP/1.1\r\nProxy-Authorization: {right}\r\nConnection: close\r\n\r\n");
    let got = exchange(proxy.addr(), req.as_bytes());
    assert!(
        got.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(got.ends_with(b"from origin"));
    assert_eq!(origin.requests()[0].header("proxy-authorization"), None);
    assert_eq!(origin.accepts(), 1);
}

/// A one-connection TLS origin presenting the test PKI's good leaf: reads a request head,
/// answers `tls ok`.
fn tls_origin() -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(server_config(&pki().good)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tls.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ntls ok")
            .unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
    });
    (addr, handle)
}

#[test]
fn tls_goes_through_the_connect_relay() {
    let (origin, server) = tls_origin();
    let proxy = FakeProxy::start(fake_proxy::http_proxy(origin, None));
    let mut tcp = connect(proxy.addr());
    tcp.write_all(b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n")
        .unwrap();
    let (head, _) = read_response(&mut tcp);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki().good.chain[1].clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = "localhost".try_into().unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (head, body) = read_response(&mut tls);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"tls ok");
    server.join().unwrap();
}

/// A SOCKS5 client by hand: greeting with `methods`; returns the socket and the method reply.
fn socks5_greet(proxy: SocketAddr, methods: &[u8]) -> (TcpStream, [u8; 2]) {
    let mut s = connect(proxy);
    let mut greeting = vec![0x05, methods.len() as u8];
    greeting.extend_from_slice(methods);
    s.write_all(&greeting).unwrap();
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).unwrap();
    (s, reply)
}

fn socks5_auth(s: &mut TcpStream, user: &str, password: &str) -> [u8; 2] {
    let mut msg = vec![0x01, user.len() as u8];
    msg.extend_from_slice(user.as_bytes());
    msg.push(password.len() as u8);
    msg.extend_from_slice(password.as_bytes());
    s.write_all(&msg).unwrap();
    let mut status = [0u8; 2];
    s.read_exact(&mut status).unwrap();
    status
}

/// A SOCKS5 CONNECT to a domain name (ATYP 3); returns the 10-byte reply.
fn socks5_request_domain(s: &mut TcpStream, name: &str, port: u16) -> [u8; 10] {
    let mut req = vec![0x05, 0x01, 0x00, 0x03, name.len() as u8];
    req.extend_from_slice(name.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).unwrap();
    reply
}

#[test]
fn socks5_proxy_with_auth_records_each_step_and_tunnels() {
    let origin = TestServer::start(ok_body(b"from origin"));
    let proxy = FakeProxy::start(fake_proxy::socks5_proxy(origin.addr(), Some(("u", "p"))));
    let (mut s, method) = socks5_greet(proxy.addr(), &[0x00, 0x02]);
    assert_eq!(method, [0x05, socks5::USERNAME_PASSWORD]);
    assert_eq!(socks5_auth(&mut s, "u", "p"), [0x01, 0x00]);
    assert_eq!(
        socks5_request_domain(&mut s, "origin.test", 8080)[..2],
        [0x05, 0x00]
    );
    s.write_all(b"GET /socks HTTP/1.1\r\nHost: origin.test\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).1, b"from origin");
    assert_eq!(origin.requests()[0].target, "/socks");

    let seen = proxy.seen();
    assert!(matches!(&seen[0], Seen::Socks5Greeting { methods, .. } if methods == &[0, 2]));
    assert!(
        matches!(&seen[1], Seen::Socks5Auth { username, password, .. } if username == "u" && password == "p")
    );
    let req = &proxy.socks_requests()[0];
    assert_eq!(
        (req.version, req.command, &req.dest, req.port),
        (5, 1, &Dest::Domain("origin.test".into()), 8080)
    );

    // Wrong password: status 1. No username/password offered: 0xFF.
    let (mut s, _) = socks5_greet(proxy.addr(), &[0x02]);
    assert_eq!(socks5_auth(&mut s, "u", "wrong"), [0x01, 0x01]);
    assert_eq!(socks5_greet(proxy.addr(), &[0x00]).1, [0x05, 0xFF]);
    assert_eq!(origin.accepts(), 1);
}

#[test]
fn socks5_every_failure_reply_code() {
    for rep in socks5::FAILURES {
        let proxy = FakeProxy::start(fake_proxy::socks5_reply(rep));
        let (mut s, method) = socks5_greet(proxy.addr(), &[0x00]);
        assert_eq!(method, [0x05, 0x00]);
        let reply = socks5_request_domain(&mut s, "x.test", 80);
        assert_eq!(reply, [0x05, rep, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
        assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0, "closed after the reply");
    }
    // Credentials are taken when only username/password is offered.
    let proxy = FakeProxy::start(fake_proxy::socks5_reply(socks5::CONNECTION_REFUSED));
    let (mut s, method) = socks5_greet(proxy.addr(), &[0x02]);
    assert_eq!(method, [0x05, 0x02]);
    assert_eq!(socks5_auth(&mut s, "any", "thing"), [0x01, 0x00]);
    assert_eq!(socks5_request_domain(&mut s, "x.test", 80)[1], 0x05);
}

#[test]
fn socks5_broken_handshakes() {
    let proxy = FakeProxy::start(fake_proxy::socks5_method(socks5::NO_ACCEPTABLE));
    assert_eq!(socks5_greet(proxy.addr(), &[0x00]).1, [0x05, 0xFF]);

    let proxy = FakeProxy::start(fake_proxy::socks5_greeting_reply(&[0x04, 0x00]));
    assert_eq!(socks5_greet(proxy.addr(), &[0x00]).1, [0x04, 0x00]);

    let proxy = FakeProxy::start(fake_proxy::socks5_auth_status(0x01));
    let (mut s, _) = socks5_greet(proxy.addr(), &[0x02]);
    assert_eq!(socks5_auth(&mut s, "u", "p"), [0x01, 0x01]);

    let proxy = FakeProxy::start(fake_proxy::socks5_raw_reply(&[0x04, 0x00, 0x00, 0x01]));
    let (mut s, _) = socks5_greet(proxy.addr(), &[0x00]);
    s.write_all(&[0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0, 80])
        .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, [0x04, 0x00, 0x00, 0x01]);
    let req = &proxy.socks_requests()[0];
    assert_eq!(
        (&req.dest, req.port),
        (&Dest::Ip(Ipv4Addr::LOCALHOST.into()), 80)
    );

    let proxy = FakeProxy::start(fake_proxy::socks5_close_after_greeting());
    assert_eq!(exchange(proxy.addr(), &[0x05, 0x01, 0x00]), b"");

    let proxy = FakeProxy::start(fake_proxy::hang());
    let mut s = connect(proxy.addr());
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(&[0x05, 0x01, 0x00]).unwrap();
    assert!(s.read(&mut [0u8; 2]).is_err(), "a hanging proxy answered");
}

#[test]
fn socks4_replies_and_socks4a_names() {
    for code in socks4::FAILURES {
        let proxy = FakeProxy::start(fake_proxy::socks4_reply(code));
        // SOCKS4a: ip 0.0.0.1, user id, then the name.
        let got = exchange(
            proxy.addr(),
            b"\x04\x01\x00\x50\x00\x00\x00\x01me\x00origin.test\x00",
        );
        assert_eq!(got, [0x00, code, 0, 0, 0, 0, 0, 0]);
        let req = &proxy.socks_requests()[0];
        assert_eq!(
            (req.version, req.port, &req.dest, req.user_id.as_deref()),
            (4, 80, &Dest::Domain("origin.test".into()), Some("me"))
        );
    }
    let origin = TestServer::start(ok_body(b"from origin"));
    let proxy = FakeProxy::start(fake_proxy::socks4_proxy(origin.addr()));
    let mut s = connect(proxy.addr());
    s.write_all(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00")
        .unwrap();
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[1], socks4::GRANTED);
    s.write_all(b"GET /socks4 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).1, b"from origin");
    let req = &proxy.socks_requests()[0];
    assert_eq!(
        (&req.dest, req.user_id.as_deref()),
        (&Dest::Ip(Ipv4Addr::LOCALHOST.into()), Some(""))
    );
}

#[test]
fn a_custom_script_sees_what_it_reads_and_counts_accepts() {
    let proxy = FakeProxy::start(|conn| {
        let req = conn.read_http_head()?.expect("a head");
        let status = if req.header("proxy-authorization").is_some() {
            200
        } else {
            407
        };
        conn.send(format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
    });
    assert!(exchange(proxy.addr(), CONNECT).starts_with(b"HTTP/1.1 407"));
    let with = b"CONNECT h:1 HTTP/1.1\r\nProxy-Authorization: Basic eDp5\r\n\r\n";
    assert!(exchange(proxy.addr(), with).starts_with(b"HTTP/1.1 200"));
    assert!(proxy.wait_for_accepts(2, LONG));
    assert_eq!(proxy.url("socks5h"), format!("socks5h://{}", proxy.addr()));
    assert_eq!(
        proxy.url_with_credentials("http", "a", "b"),
        format!("http://a:b@{}", proxy.addr())
    );
}
