//! The real-proxy launchers proven with std clients only: an absolute-form GET and a CONNECT
//! through tinyproxy and squid, a hand-written SOCKS5 CONNECT through dante and microsocks,
//! each with and without credentials, and a wrong password refused. The origin is a loopback
//! [`TestServer`], which counts what reached it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use parafetch_test_support::http::{TestServer, ok_body};
use parafetch_test_support::proxies::{DANTE_USER, Dante, Microsocks, Squid, Tinyproxy};

const LONG: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    s
}

fn basic(user: &str, password: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {}", out)
}

/// Reads one response head (through the blank line) and `Content-Length` bytes of body.
fn read_response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).unwrap();
        assert!(
            n > 0,
            "closed inside a head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let length = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

fn status(head: &str) -> u16 {
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// An absolute-form GET through an HTTP proxy; the status line and body.
fn get_through(proxy: SocketAddr, origin: &TestServer, auth: Option<String>) -> (u16, Vec<u8>) {
    let mut s = connect(proxy);
    let auth = auth.map_or(String::new(), |a| format!("Proxy-Authorization: {a}\r\n"));
    let url = origin.url("/via-proxy");
    let host = origin.addr();
    write!(
        s,
        "GET {url} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let (head, body) = read_response(&mut s);
    (status(&head), body)
}

/// CONNECT to the origin through an HTTP proxy, then a GET inside the tunnel.
fn connect_through(
    proxy: SocketAddr,
    origin: &TestServer,
    auth: Option<String>,
) -> (u16, Option<Vec<u8>>) {
    let mut s = connect(proxy);
    let auth = auth.map_or(String::new(), |a| format!("Proxy-Authorization: {a}\r\n"));
    let o = origin.addr();
    write!(s, "CONNECT {o} HTTP/1.1\r\nHost: {o}\r\n{auth}\r\n").unwrap();
    let (head, _) = read_response(&mut s);
    let code = status(&head);
    if code != 200 {
        return (code, None);
    }
    write!(s, "GET /in-tunnel HTTP/1.1\r\nHost: {o}\r\n\r\n").unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    (code, Some(body))
}

/// `wrong` is the status of a GET or CONNECT with a wrong password: 407, except for
/// tinyproxy 1.11, which answers 401 with `WWW-Authenticate` (its answer to missing
/// credentials is a proper 407).
fn check_http_proxy(
    proxy: SocketAddr,
    auth: Option<(&str, &str)>,
    wrong: u16,
    logs: impl Fn() -> String,
) {
    let origin = TestServer::start(ok_body(b"from origin"));
    let good = auth.map(|(u, p)| basic(u, p));
    let (code, body) = get_through(proxy, &origin, good.clone());
    assert_eq!(
        (code, body.as_slice()),
        (200, &b"from origin"[..]),
        "{}",
        logs()
    );
    let (code, body) = connect_through(proxy, &origin, good);
    assert_eq!(code, 200, "{}", logs());
    assert_eq!(body.as_deref(), Some(&b"from origin"[..]));
    assert!(origin.wait_for_requests(2, LONG));
    let reqs = origin.requests();
    assert_eq!(
        reqs[0].target, "/via-proxy",
        "the proxy sends origin-form on"
    );
    assert_eq!(reqs[1].target, "/in-tunnel");
    assert!(
        reqs.iter()
            .all(|r| r.header("proxy-authorization").is_none()),
        "credentials for the proxy reached the origin: {reqs:?}"
    );
    if let Some((user, _)) = auth {
        let before = origin.request_count();
        assert_eq!(get_through(proxy, &origin, None).0, 407, "{}", logs());
        assert_eq!(connect_through(proxy, &origin, None).0, 407, "{}", logs());
        let bad = Some(basic(user, "wrong-password"));
        assert_eq!(
            get_through(proxy, &origin, bad.clone()).0,
            wrong,
            "{}",
            logs()
        );
        assert_eq!(connect_through(proxy, &origin, bad).0, wrong, "{}", logs());
        assert_eq!(
            origin.request_count(),
            before,
            "a refused request reached the origin"
        );
    }
}

#[test]
fn tinyproxy_forwards_and_tunnels_without_auth() {
    let Some(proxy) = Tinyproxy::start(None) else {
        return;
    };
    assert_eq!(proxy.url(), format!("http://{}", proxy.addr()));
    check_http_proxy(proxy.addr(), None, 407, || proxy.logs());
}

#[test]
fn tinyproxy_with_basic_auth_forwards_tunnels_and_refuses_a_wrong_password() {
    let Some(proxy) = Tinyproxy::start(Some(("alice", "s3cret"))) else {
        return;
    };
    assert_eq!(proxy.url(), format!("http://alice:s3cret@{}", proxy.addr()));
    check_http_proxy(proxy.addr(), proxy.credentials(), 401, || proxy.logs());
}

#[test]
fn squid_forwards_and_tunnels_without_auth() {
    let Some(proxy) = Squid::start(None) else {
        return;
    };
    check_http_proxy(proxy.addr(), None, 407, || proxy.logs());
}

#[test]
fn squid_with_basic_auth_forwards_tunnels_and_refuses_a_wrong_password() {
    let Some(proxy) = Squid::start(Some(("bob", "pa55word"))) else {
        return;
    };
    check_http_proxy(proxy.addr(), proxy.credentials(), 407, || proxy.logs());
}

/// The address part of a SOCKS5 request for `origin`: ATYP 1, the IPv4 address, the port.
fn ipv4_dest(origin: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(v4) = origin else {
        panic!("IPv4 origin")
    };
    let mut dest = vec![0x01];
    dest.extend_from_slice(&v4.ip().octets());
    dest.extend_from_slice(&v4.port().to_be_bytes());
    dest
}

/// The address part of a SOCKS5 request for a name the proxy resolves (socks5h): ATYP 3.
fn name_dest(name: &str, port: u16) -> Vec<u8> {
    let mut dest = vec![0x03, name.len() as u8];
    dest.extend_from_slice(name.as_bytes());
    dest.extend_from_slice(&port.to_be_bytes());
    dest
}

/// A SOCKS5 CONNECT to `origin` (IPv4 address type), by hand. `Err(step)` names the step the
/// proxy refused: "method" (no acceptable method), "auth" (RFC 1929 status) or "reply".
fn socks5_connect(
    proxy: SocketAddr,
    auth: Option<(&str, &str)>,
    origin: SocketAddr,
) -> Result<TcpStream, String> {
    socks5_connect_to(proxy, auth, &ipv4_dest(origin))
}

/// Like [`socks5_connect`], to `dest` (ATYP, address, port).
fn socks5_connect_to(
    proxy: SocketAddr,
    auth: Option<(&str, &str)>,
    dest: &[u8],
) -> Result<TcpStream, String> {
    let mut s = connect(proxy);
    let method = if auth.is_some() { 0x02 } else { 0x00 };
    s.write_all(&[0x05, 0x01, method]).unwrap();
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], 0x05, "version of the method selection");
    if reply[1] != method {
        return Err(format!("method {:#04x}", reply[1]));
    }
    if let Some((user, password)) = auth {
        let mut msg = vec![0x01, user.len() as u8];
        msg.extend_from_slice(user.as_bytes());
        msg.push(password.len() as u8);
        msg.extend_from_slice(password.as_bytes());
        s.write_all(&msg).unwrap();
        let mut status = [0u8; 2];
        // A refusing proxy may close at once instead of answering.
        if s.read_exact(&mut status).is_err() || status[1] != 0x00 {
            return Err(format!("auth {status:?}"));
        }
    }
    let mut req = vec![0x05, 0x01, 0x00];
    req.extend_from_slice(dest);
    s.write_all(&req).unwrap();
    let mut head = [0u8; 4];
    s.read_exact(&mut head).unwrap();
    let rest = match head[3] {
        0x01 => 4 + 2,
        0x04 => 16 + 2,
        atyp => panic!("bound address type {atyp:#04x}"),
    };
    let mut bound = vec![0; rest];
    s.read_exact(&mut bound).unwrap();
    if head[1] != 0x00 {
        return Err(format!("reply {:#04x}", head[1]));
    }
    Ok(s)
}

fn check_socks5_proxy(proxy: SocketAddr, auth: Option<(&str, &str)>, logs: impl Fn() -> String) {
    let origin = TestServer::start(ok_body(b"from origin"));
    let mut s = socks5_connect(proxy, auth, origin.addr())
        .unwrap_or_else(|step| panic!("refused at {step}; {}", logs()));
    write!(
        s,
        "GET /via-socks HTTP/1.1\r\nHost: {}\r\n\r\n",
        origin.addr()
    )
    .unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!((status(&head), body.as_slice()), (200, &b"from origin"[..]));
    assert!(origin.wait_for_requests(1, LONG));
    assert_eq!(origin.requests()[0].target, "/via-socks");
    if let Some((user, _)) = auth {
        let wrong = socks5_connect(proxy, Some((user, "wrong-password")), origin.addr());
        assert!(wrong.unwrap_err().starts_with("auth"), "{}", logs());
        let none = socks5_connect(proxy, None, origin.addr());
        assert_eq!(none.unwrap_err(), "method 0xff", "{}", logs());
        assert_eq!(origin.accepts(), 1, "a refused client reached the origin");
    }
}

#[test]
fn microsocks_connects_without_auth() {
    let Some(proxy) = Microsocks::start(None) else {
        return;
    };
    assert_eq!(proxy.url(), format!("socks5://{}", proxy.addr()));
    check_socks5_proxy(proxy.addr(), None, || proxy.logs());
}

#[test]
fn microsocks_with_a_password_connects_and_refuses_a_wrong_one() {
    let Some(proxy) = Microsocks::start(Some(("carol", "hunter2"))) else {
        return;
    };
    assert_eq!(
        proxy.url(),
        format!("socks5://carol:hunter2@{}", proxy.addr())
    );
    check_socks5_proxy(proxy.addr(), proxy.credentials(), || proxy.logs());
}

#[test]
fn dante_connects_without_auth() {
    let Some(proxy) = Dante::start(None) else {
        return;
    };
    check_socks5_proxy(proxy.addr(), None, || proxy.logs());
}

#[test]
fn dante_with_a_system_user_connects_and_refuses_a_wrong_password() {
    let Some(proxy) = Dante::start(Some((DANTE_USER, "dante-pass-1"))) else {
        return;
    };
    check_socks5_proxy(proxy.addr(), proxy.credentials(), || proxy.logs());
}

/// Two absolute-form GETs on one client connection to the proxy: whether the proxy keeps the
/// client connection alive, and how many connections the origin saw.
fn keep_alive_through(proxy: SocketAddr) -> usize {
    let origin = TestServer::start(ok_body(b"from origin"));
    let mut s = connect(proxy);
    for path in ["/ka-1", "/ka-2"] {
        let url = origin.url(path);
        write!(s, "GET {url} HTTP/1.1\r\nHost: {}\r\n\r\n", origin.addr()).unwrap();
        let (head, body) = read_response(&mut s);
        assert_eq!(
            (status(&head), body.as_slice()),
            (200, &b"from origin"[..]),
            "{head}"
        );
    }
    assert!(origin.wait_for_requests(2, LONG));
    origin.accepts()
}

/// tinyproxy 1.11 closes the client's connection after each proxied response, so keep-alive
/// through a proxy is tested with squid.
#[test]
fn tinyproxy_closes_the_client_connection_after_each_response() {
    let Some(proxy) = Tinyproxy::start(None) else {
        return;
    };
    let origin = TestServer::start(ok_body(b"from origin"));
    let mut s = connect(proxy.addr());
    let url = origin.url("/once");
    write!(s, "GET {url} HTTP/1.1\r\nHost: {}\r\n\r\n", origin.addr()).unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0, "{}", proxy.logs());
}

#[test]
fn squid_keeps_the_client_connection_alive() {
    let Some(proxy) = Squid::start(None) else {
        return;
    };
    let origin_connections = keep_alive_through(proxy.addr());
    assert_eq!(
        origin_connections, 1,
        "squid reuses its connection to the origin too"
    );
}

/// socks5h: the proxy resolves the name. Both resolve `localhost` to the loopback origin.
fn check_socks5_name(proxy: SocketAddr, auth: Option<(&str, &str)>, logs: impl Fn() -> String) {
    let origin = TestServer::start(ok_body(b"from origin"));
    let dest = name_dest("localhost", origin.port());
    let mut s = socks5_connect_to(proxy, auth, &dest)
        .unwrap_or_else(|step| panic!("refused at {step}; {}", logs()));
    write!(s, "GET /by-name HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!((status(&head), body.as_slice()), (200, &b"from origin"[..]));
}

#[test]
fn microsocks_resolves_names() {
    let Some(proxy) = Microsocks::start(Some(("carol", "hunter2"))) else {
        return;
    };
    check_socks5_name(proxy.addr(), proxy.credentials(), || proxy.logs());
}

#[test]
fn dante_resolves_names() {
    let Some(proxy) = Dante::start(None) else {
        return;
    };
    check_socks5_name(proxy.addr(), None, || proxy.logs());
}

/// Dante also speaks SOCKS4 (an address), but not SOCKS4a (a name): 0x5B. SOCKS4a is proven
/// against the fake proxy only.
#[test]
fn dante_speaks_socks4_but_not_socks4a() {
    let Some(proxy) = Dante::start(None) else {
        return;
    };
    let origin = TestServer::start(ok_body(b"from origin"));
    let port = origin.port().to_be_bytes();
    let mut s = connect(proxy.addr());
    s.write_all(&[4, 1, port[0], port[1], 127, 0, 0, 1, 0])
        .unwrap();
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[..2], [0x00, 0x5A], "{}", proxy.logs());
    write!(s, "GET /socks4 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).1, b"from origin");

    let mut s = connect(proxy.addr());
    let mut req = vec![4, 1, port[0], port[1], 0, 0, 0, 1, 0];
    req.extend_from_slice(b"localhost\0");
    s.write_all(&req).unwrap();
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[..2], [0x00, 0x5B], "{}", proxy.logs());
    assert_eq!(origin.accepts(), 1);
}

/// Live processes whose command line mentions `needle` (zombies have none).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

/// Dropping a launcher leaves no process behind: not the proxy, not its group (dante's
/// children), not a helper that left the group (squid's basic_ncsa_auth, whose command line
/// names the password file in the temp dir).
#[test]
fn dropping_a_proxy_leaves_no_process() {
    fn check<P>(pid: u32, dir: std::path::PathBuf, proxy: P) {
        let dir = dir.display().to_string();
        assert!(
            !processes_mentioning(&dir).is_empty(),
            "nothing runs from {dir}"
        );
        drop(proxy);
        // SAFETY: kill(2) with signal 0 only checks whether the group exists.
        let group_alive = unsafe { libc::kill(-(pid as libc::pid_t), 0) } == 0;
        assert!(!group_alive, "process group {pid} outlived the drop");
        let deadline = std::time::Instant::now() + LONG;
        while !processes_mentioning(&dir).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
    }
    if let Some(p) = Squid::start(Some(("bob", "pa55word"))) {
        // The helper starts with the first request that needs it.
        let origin = TestServer::start(ok_body(b"x"));
        let auth = Some(basic("bob", "pa55word"));
        assert_eq!(get_through(p.addr(), &origin, auth).0, 200);
        check(p.pid(), p.dir().to_owned(), p);
    }
    if let Some(p) = Tinyproxy::start(None) {
        check(p.pid(), p.dir().to_owned(), p);
    }
    if let Some(p) = Dante::start(None) {
        check(p.pid(), p.dir().to_owned(), p);
    }
}
