//! The scaffolding tested through its public API with std clients only (never parafetch), so a
//! broken server shows up here and not as a puzzling failure in parafetch's tests.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parafetch_test_support::bench_server::{Server, bench_files, file_bytes};
use parafetch_test_support::dns::{self, FakeDns, QType, zone};
use parafetch_test_support::fault::{FaultServer, good_body};
use parafetch_test_support::gate::Gate;
use parafetch_test_support::http::{TestServer, ok_body, raw};
use parafetch_test_support::nginx::Nginx;
use parafetch_test_support::pki::{pki, server_config};
use parafetch_test_support::python;

const LONG: Duration = Duration::from_secs(10);

/// Sends `request` on a new connection and reads until the server closes.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// Sends `request` and reads until the response ends with `tail` (keep-alive servers do not
/// close).
fn exchange_until(addr: SocketAddr, request: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    while !out.ends_with(tail) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn test_server_sends_a_raw_script_and_records_the_request() {
    let s = TestServer::start(raw(b"HTTP/1.1 204 No Content\r\n\r\n"));
    let got = exchange(s.addr(), b"GET /x?y=1 HTTP/1.1\r\nHost: here\r\n\r\n");
    assert_eq!(got, b"HTTP/1.1 204 No Content\r\n\r\n");
    assert!(s.wait_for_requests(1, LONG));
    let req = &s.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("GET", "/x?y=1")
    );
    assert_eq!(req.header("host"), Some("here"));
}

#[test]
fn test_server_keeps_a_connection_alive() {
    let s = TestServer::start(ok_body(b"hi"));
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    for path in ["/1", "/2"] {
        write!(c, "GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"hi") {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }
    assert_eq!((s.accepts(), s.request_count()), (1, 2));
}

#[test]
fn gate_releases_all_parties_when_the_nth_arrives() {
    let gate = Gate::new(3);
    let parties: Vec<_> = (0..3)
        .map(|_| {
            let gate = Arc::clone(&gate);
            thread::spawn(move || gate.arrive_and_wait(LONG))
        })
        .collect();
    for p in parties {
        assert!(p.join().unwrap());
    }
    assert_eq!(gate.waiting(), 0);
}

#[test]
fn gate_withdraws_a_party_that_times_out() {
    let gate = Gate::new(2);
    assert!(!gate.arrive_and_wait(Duration::from_millis(10)));
    assert_eq!(gate.waiting(), 0, "the round still needs two parties");
}

#[test]
fn fake_dns_answers_from_a_zone_and_nxdomain_otherwise() {
    let server = FakeDns::start(zone(&[("a.test", &[Ipv4Addr::LOCALHOST], &[])], 60));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(LONG)).unwrap();
    let mut buf = [0u8; 512];

    sock.send_to(&dns::build_query(7, "A.test.", QType::A), server.addr())
        .unwrap();
    let n = sock.recv(&mut buf).unwrap();
    let reply = dns::parse_reply(&buf[..n]);
    assert_eq!((reply.id, reply.rcode), (7, dns::RCODE_NOERROR));
    assert_eq!(reply.v4(), [Ipv4Addr::LOCALHOST]);

    sock.send_to(&dns::build_query(8, "b.test", QType::A), server.addr())
        .unwrap();
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(dns::parse_reply(&buf[..n]).rcode, dns::RCODE_NXDOMAIN);

    assert!(server.wait_for_queries(2, LONG));
    assert_eq!(server.count_for("a.test", QType::A), 1);
}

#[test]
fn fault_server_answers_good_paths_and_counts_them() {
    let server = FaultServer::start();
    let got = exchange_until(
        server.addr(),
        b"GET /good/7 HTTP/1.1\r\nHost: h\r\n\r\n",
        &good_body(7),
    );
    assert!(got.starts_with(b"HTTP/1.1 200 "));
    assert_eq!(server.stats().requests.get("good"), Some(&1));
}

#[test]
fn bench_server_serves_its_files() {
    let server = Server::start(bench_files(), Duration::ZERO).unwrap();
    let got = exchange(
        server.addr,
        b"GET /1k HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(got.ends_with(&file_bytes(1024)));
    assert_eq!(server.accepts(), 1);
}

#[test]
fn pki_leaves_chain_to_the_test_ca() {
    let p = pki();
    assert_eq!(p.good.chain.len(), 2, "leaf and CA");
    assert_eq!(p.self_signed.chain.len(), 1);
    assert!(p.good.chain_pem.ends_with(p.ca_pem.as_str()));
    assert!(server_config(&p.good).alpn_protocols == [b"http/1.1".to_vec()]);
}

/// Skipped without python3, except under CI (`tools::require`).
#[test]
fn python_http_server_serves_a_directory() {
    let dir = std::env::temp_dir().join(format!("parafetch-support-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f.txt"), b"from python").unwrap();
    let served = python::http_server(&dir)
        .map(|py| exchange(py.addr(), b"GET /f.txt HTTP/1.0\r\nHost: h\r\n\r\n"));
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(got) = served {
        assert!(got.starts_with(b"HTTP/1.0 200"), "{got:?}");
        assert!(got.ends_with(b"from python"));
    }
}

/// Skipped without nginx, except under CI (`tools::require`).
#[test]
fn nginx_serves_files_and_counts_connections() {
    let files = [("/a.txt".to_owned(), b"from nginx".to_vec())];
    let Some(ng) = Nginx::start_for_test(&files, None) else {
        return;
    };
    let before = ng.accepts();
    let got = exchange(ng.http, b"GET /a.txt HTTP/1.0\r\nHost: h\r\n\r\n");
    assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
    assert!(got.ends_with(b"from nginx"));
    assert_eq!(ng.opened_since(before), 1);
}
