//! Core behaviour against real loopback sockets: framing, errors, timeouts, admission,
//! exactly-once completion.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

use parafetch::{Builder, Done, ErrorKind, Fetcher, HttpVersion, Phase, Queue, Request, Response};
use parafetch_test_support::gate::Gate;
use parafetch_test_support::http::{Conn, TestServer, never_answer, ok_body};
use parafetch_test_support::python;

const LONG: Duration = Duration::from_secs(10);

fn fetch_with(
    builder: Builder,
    req: impl parafetch::IntoRequest,
) -> Result<Response, parafetch::Error> {
    let mut all: Vec<_> = builder.fetch_all([req.into_request()]).collect();
    assert_eq!(all.len(), 1, "exactly one result");
    all.pop().unwrap().1
}

fn fetch(req: impl parafetch::IntoRequest) -> Result<Response, parafetch::Error> {
    fetch_with(Fetcher::builder(), req)
}

/// A server that reads one request and answers with `bytes`, then closes.
fn answer(bytes: &'static [u8]) -> TestServer {
    TestServer::start(move |c: &mut Conn| {
        c.read_request()?;
        c.send(bytes)?;
        c.close();
        Ok(())
    })
}

#[test]
fn content_length_body() {
    let s = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello");
    let r = fetch(s.url("/x?q=1")).unwrap();
    assert_eq!(
        (r.status, r.reason.as_str(), &r.body[..]),
        (200, "OK", &b"hello"[..])
    );
    assert_eq!(r.version, HttpVersion::Http11);
    assert_eq!(r.headers.get_all("X-A").collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(r.remote_addr, s.addr());
    assert!(r.timings.total >= r.timings.first_byte);
    let req = &s.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("GET", "/x?q=1")
    );
    assert_eq!(
        req.header("host"),
        Some(format!("127.0.0.1:{}", s.port()).as_str())
    );
    assert!(req.header("user-agent").unwrap().starts_with("parafetch/"));
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let s = answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    let r = fetch(s.url("/")).unwrap();
    assert_eq!(r.body, b"hello world");
}

#[test]
fn close_delimited_body_ends_at_eof() {
    let s = answer(b"HTTP/1.1 200 OK\r\n\r\nuntil the end");
    let r = fetch(s.url("/")).unwrap();
    assert_eq!(r.body, b"until the end");
}

#[test]
fn head_204_304_have_no_body() {
    let s = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|req, c| match req.target.as_str() {
            "/204" => c.send(b"HTTP/1.1 204 No Content\r\n\r\n"),
            "/304" => c.send(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"),
            _ => c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
        })
    });
    let h = fetch(Request::head(s.url("/head"))).unwrap();
    assert_eq!((h.status, h.body.len()), (200, 0));
    assert_eq!(fetch(s.url("/204")).unwrap().status, 204);
    assert_eq!(fetch(s.url("/304")).unwrap().status, 304);
}

#[test]
fn informational_responses_are_skipped() {
    let s = answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let r = fetch(s.url("/")).unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
    assert!(!r.headers.contains("link"));
}

#[test]
fn http_10_response() {
    let s = answer(b"HTTP/1.0 200 OK\r\n\r\nold school");
    let r = fetch(s.url("/")).unwrap();
    assert_eq!(
        (r.version, &r.body[..]),
        (HttpVersion::Http10, &b"old school"[..])
    );
}

#[test]
fn error_statuses_are_responses() {
    let s = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|req, c| {
            let code = req.target[1..].parse().unwrap_or(500);
            c.respond(code, &[], b"nope")
        })
    });
    for code in [404u16, 500, 503] {
        let r = fetch(s.url(&format!("/{code}"))).unwrap();
        assert_eq!((r.status, &r.body[..]), (code, &b"nope"[..]));
    }
}

#[test]
fn malformed_heads_are_malformed() {
    for bytes in [
        &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/2.0 200 OK\r\n\r\n",
    ] {
        let s = TestServer::start(move |c: &mut Conn| {
            c.read_request()?;
            c.send(bytes)?;
            c.close();
            Ok(())
        });
        let e = fetch(s.url("/")).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Malformed,
            "{:?}: {e}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(e.phase(), Phase::ReceiveHead);
    }
}

#[test]
fn truncated_bodies_are_errors() {
    for bytes in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    ] {
        let s = TestServer::start(move |c: &mut Conn| {
            c.read_request()?;
            c.send(bytes)?;
            c.close();
            Ok(())
        });
        let e = fetch(s.url("/")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Truncated, "{e}");
        assert_eq!(e.phase(), Phase::ReceiveBody);
    }
}

#[test]
fn truncated_head_and_empty_reply() {
    let s = answer(b"HTTP/1.1 200 OK\r\nContent-Le");
    let e = fetch(s.url("/")).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Truncated, Phase::ReceiveHead)
    );
    // Closed before any byte: curl's "empty reply from server", not a truncated body.
    let s = answer(b"");
    let e = fetch(s.url("/")).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::EmptyReply, Phase::ReceiveHead)
    );
    assert!(e.to_string().contains("empty reply"), "{e}");
    assert_eq!(e.reused_connection(), Some(false));
}

#[test]
fn reset_is_an_io_error() {
    let s = TestServer::start(|c: &mut Conn| {
        // Data sent just before an RST may be discarded by the receiving kernel, so the
        // reset comes before any reply: deterministic.
        c.read_request()?;
        c.reset();
        Ok(())
    });
    let e = fetch(s.url("/")).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Io, Phase::ReceiveHead),
        "{e:?}"
    );
    assert_eq!(
        e.io_error().map(io::Error::kind),
        Some(io::ErrorKind::ConnectionReset)
    );
}

#[test]
fn limits_are_too_large() {
    let s = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|req, c| match req.target.as_str() {
            "/head" => {
                let big = "a".repeat(2000);
                c.send(
                    format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 0\r\n\r\n")
                        .as_bytes(),
                )
            }
            "/many" => {
                let mut h = String::from("HTTP/1.1 200 OK\r\n");
                for i in 0..20 {
                    h += &format!("X-{i}: v\r\n");
                }
                c.send(format!("{h}Content-Length: 0\r\n\r\n").as_bytes())
            }
            "/declared" => c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"),
            _ => c.respond_chunked(200, &[], &[&[b'x'; 600], &[b'y'; 600]]),
        })
    });
    let b = || {
        Fetcher::builder()
            .max_head(1024)
            .max_headers(10)
            .max_body(1000)
    };
    for (path, phase) in [
        ("/head", Phase::ReceiveHead),
        ("/many", Phase::ReceiveHead),
        ("/declared", Phase::ReceiveBody),
        ("/chunked", Phase::ReceiveBody),
    ] {
        let e = fetch_with(b(), s.url(path)).unwrap_err();
        assert_eq!(
            (e.kind(), e.phase()),
            (ErrorKind::TooLarge, phase),
            "{path}: {e}"
        );
    }
    // The per-request override lifts the limit for that request only.
    let r = fetch_with(b(), Request::get(s.url("/chunked")).max_body(2000)).unwrap();
    assert_eq!(r.body.len(), 1200);
}

#[test]
fn bad_urls_are_refused_at_once() {
    let mut f: Fetcher<()> = Fetcher::new(2);
    for (url, kind) in [
        ("ftp://example.com/", ErrorKind::UnsupportedScheme),
        ("not a url", ErrorKind::InvalidUrl),
        ("http://", ErrorKind::InvalidUrl),
    ] {
        let e = f
            .start_request(url, |_, _| panic!("no callback"), ())
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{url}");
        assert_eq!(e.phase(), Phase::Prepare);
    }
    // A URL that does not parse is quoted, but not its password.
    let e = f
        .start_request("http://user:s3cret@exa mple.com/", |_, _| panic!(), ())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidUrl);
    let shown = format!("{e:#} {e:?}");
    assert!(
        !shown.contains("s3cret") && shown.contains("user:***@"),
        "{shown}"
    );
    // A user name alone is often a token: hidden whole.
    let e = f
        .start_request("http://ghp_t0ken@exa mple.com/", |_, _| panic!(), ())
        .unwrap_err();
    let shown = format!("{e:#} {e:?}");
    assert!(
        !shown.contains("t0ken") && shown.contains("http://***@exa mple.com/"),
        "{shown}"
    );
    let e = f
        .start_request(
            Request::get("http://127.0.0.1:1/").header("Bad Name", "v"),
            |_, _| panic!(),
            (),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    let e = f
        .start_request(
            Request::get("http://127.0.0.1:1/").header("X", "a\r\nInjected: 1"),
            |_, _| panic!(),
            (),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_eq!(f.pending(), 0);
}

/// A listener whose accept queue is full, so it drops new SYNs: a connect to it never
/// completes. Keep the returned values alive for as long as it must stay silent.
fn silent_listener(
    ip: &str,
) -> (
    socket2::Socket,
    std::net::SocketAddr,
    Vec<std::net::TcpStream>,
) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let bind: std::net::SocketAddr = format!("{ip}:0").parse().unwrap();
    sock.bind(&bind.into()).unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(f) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            fillers.push(f);
        }
    }
    (sock, addr, fillers)
}

fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
    // dropped here: nothing listens on the port any more
}

#[test]
fn refused_connection_is_connect_error() {
    let port = refused_port();
    let e = fetch(format!("http://127.0.0.1:{port}/")).unwrap_err();
    assert_eq!((e.kind(), e.phase()), (ErrorKind::Connect, Phase::Connect));
    assert_eq!(
        e.io_error().map(io::Error::kind),
        Some(io::ErrorKind::ConnectionRefused)
    );
}

#[test]
fn idle_timeout_cuts_a_silent_server() {
    let s = TestServer::start(never_answer());
    let b = Fetcher::builder().idle_timeout(Duration::from_millis(200));
    let e = fetch_with(b, s.url("/")).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Timeout, Phase::ReceiveHead)
    );
}

#[test]
fn total_timeout_cuts_a_trickling_server() {
    // One byte every 20 ms keeps the idle timer happy forever; the total deadline must not.
    let s = TestServer::start(|c: &mut Conn| {
        c.read_request()?;
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")?;
        for _ in 0..1000 {
            c.send(b"x")?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    });
    let b = Fetcher::builder()
        .idle_timeout(Duration::from_secs(5))
        .timeout(Some(Duration::from_millis(300)));
    let e = fetch_with(b, s.url("/")).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Timeout, Phase::ReceiveBody)
    );
}

#[test]
fn connect_timeout_when_syns_are_dropped() {
    let (_sock, addr, _fillers) = silent_listener("127.0.0.1");
    let b = Fetcher::builder().connect_timeout(Duration::from_millis(300));
    let e = fetch_with(b, format!("http://{addr}/")).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Timeout, Phase::Connect),
        "{e}"
    );
}

#[test]
fn post_sends_body_and_content_length() {
    let s = TestServer::start(ok_body(b"ok"));
    let r = fetch(
        Request::post(s.url("/submit"))
            .header("Content-Type", "text/plain")
            .body("payload"),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let req = &s.requests()[0];
    assert_eq!(
        (req.method.as_str(), &req.body[..]),
        ("POST", &b"payload"[..])
    );
    assert_eq!(req.header("content-length"), Some("7"));
    assert_eq!(req.header("content-type"), Some("text/plain"));
}

#[test]
fn callbacks_get_url_cookie_and_can_queue_follow_ups() {
    let s = TestServer::start(ok_body(b"ok"));
    let seen: Rc<RefCell<Vec<(String, u32, u16)>>> = Rc::default();
    let base = s.url("/");
    let mut f: Fetcher<u32> = Fetcher::new(3);
    for i in 0..5 {
        let seen = Rc::clone(&seen);
        let base = base.clone();
        f.start_request(
            format!("{base}{i}"),
            move |d: Done<u32>, q: &mut Queue<u32>| {
                seen.borrow_mut()
                    .push((d.url.clone(), d.cookie, d.result.unwrap().status));
                // each page "discovers" one child
                let seen2 = Rc::clone(&seen);
                q.start_request(
                    format!("{base}child/{}", d.cookie),
                    move |d: Done<u32>, _q: &mut Queue<u32>| {
                        seen2
                            .borrow_mut()
                            .push((d.url, d.cookie, d.result.unwrap().status));
                    },
                    d.cookie + 100,
                )
                .unwrap();
            },
            i,
        )
        .unwrap();
    }
    f.finish_all_requests();
    let mut seen = seen.borrow().clone();
    seen.sort_by_key(|x| x.1);
    assert_eq!(seen.len(), 10);
    for (i, (url, cookie, status)) in seen.iter().enumerate() {
        let want = if i < 5 {
            format!("{base}{i}")
        } else {
            format!("{base}child/{}", i - 5)
        };
        assert_eq!(
            (url, *cookie, *status),
            (
                &want,
                if i < 5 { i as u32 } else { 100 + i as u32 - 5 },
                200
            )
        );
    }
    assert_eq!(s.request_count(), 10);
}

#[test]
fn fetch_all_yields_every_url_once() {
    let s = TestServer::start(ok_body(b"ok"));
    let mut urls: Vec<String> = (0..50).map(|i| s.url(&format!("/{i}"))).collect();
    urls.push("gopher://nope/".into());
    let mut got: Vec<String> = Vec::new();
    for (url, r) in parafetch::fetch_all(urls.clone(), 8) {
        match r {
            Ok(resp) => assert_eq!(resp.status, 200),
            Err(e) => assert_eq!(e.kind(), ErrorKind::UnsupportedScheme),
        }
        got.push(url);
    }
    got.sort();
    urls.sort();
    assert_eq!(got, urls);
}

/// The server holds each request at a gate until `cap` are in the handler at once, which
/// proves the cap is reached; its peak proves the cap is never exceeded.
#[test]
fn admission_cap_is_reached_and_never_exceeded() {
    let gate5 = Gate::new(5);
    let gate2 = Gate::new(2);
    let phase2 = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let p2 = phase2.clone();
    let s = TestServer::start(move |c: &mut Conn| {
        c.serve_keep_alive(|_req, c| {
            let gate = if p2.load(std::sync::atomic::Ordering::SeqCst) {
                &gate2
            } else {
                &gate5
            };
            if !gate.arrive_and_wait(LONG) {
                return c.respond(500, &[], b"gate timed out: cap not reached");
            }
            c.respond(200, &[], b"ok")
        })
    });
    let statuses: Rc<RefCell<Vec<u16>>> = Rc::default();
    let mut f: Fetcher<()> = Fetcher::new(5);
    let cb = |st: Rc<RefCell<Vec<u16>>>| {
        move |d: Done<()>, _: &mut Queue<()>| st.borrow_mut().push(d.result.unwrap().status)
    };
    for i in 0..20 {
        f.start_request(s.url(&format!("/a{i}")), cb(statuses.clone()), ())
            .unwrap();
        assert!(f.running() <= 5 && f.pending() <= 5);
    }
    f.finish_all_requests();
    assert_eq!(s.in_handler_peak(), 5);
    phase2.store(true, std::sync::atomic::Ordering::SeqCst);
    s.reset_peak();
    f.set_max_in_flight(2);
    for i in 0..10 {
        f.start_request(s.url(&format!("/b{i}")), cb(statuses.clone()), ())
            .unwrap();
        assert!(f.running() <= 2 && f.pending() <= 2);
    }
    f.finish_all_requests();
    assert_eq!(s.in_handler_peak(), 2);
    assert_eq!(statuses.borrow().len(), 30);
    assert!(
        statuses.borrow().iter().all(|&st| st == 200),
        "{:?}",
        statuses.borrow()
    );
}

#[test]
fn python_http_server_interop() {
    let dir = std::env::temp_dir().join(format!("parafetch-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::File::create(dir.join("blob.bin"))
        .unwrap()
        .write_all(&body)
        .unwrap();
    let Some(py) = python::http_server(&dir) else {
        return;
    };
    let r = fetch(py.url("/blob.bin")).unwrap();
    assert_eq!((r.status, r.body.len()), (200, body.len()));
    assert!(r.body == body);
    let r = fetch(py.url("/missing")).unwrap();
    assert_eq!(r.status, 404);
    let _ = std::fs::remove_dir_all(&dir);
}

/// 2,000 requests over good, slow, broken, hanging and refused targets: every one completes
/// exactly once, with an outcome that matches its target.
#[test]
fn exactly_once_under_a_random_mix() {
    let good = TestServer::start(ok_body(b"good"));
    let slow = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|_r, c| {
            std::thread::sleep(Duration::from_millis(5));
            c.respond(200, &[], b"slow")
        })
    });
    let broken = TestServer::start(|c: &mut Conn| {
        c.read_request()?;
        match c.index() % 3 {
            0 => c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")?,
            1 => c.send(b"garbage\r\n\r\n")?,
            _ => {
                c.reset();
                return Ok(());
            }
        }
        c.close();
        Ok(())
    });
    let hang = TestServer::start(never_answer());
    let refused = refused_port();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let counts: Rc<RefCell<HashMap<usize, usize>>> = Rc::default();
    let outcomes: Rc<RefCell<HashMap<&'static str, usize>>> = Rc::default();
    let mut f: Fetcher<(usize, &'static str)> = Fetcher::builder()
        .max_in_flight(100)
        .idle_timeout(Duration::from_millis(300))
        .build();
    const N: usize = 2000;
    for i in 0..N {
        let (url, what) = match next() % 100 {
            0..=59 => (good.url(&format!("/{i}")), "good"),
            60..=79 => (slow.url(&format!("/{i}")), "slow"),
            80..=91 => (broken.url(&format!("/{i}")), "broken"),
            92..=95 => (hang.url(&format!("/{i}")), "hang"),
            _ => (format!("http://127.0.0.1:{refused}/{i}"), "refused"),
        };
        let counts = Rc::clone(&counts);
        let outcomes = Rc::clone(&outcomes);
        f.start_request(
            url,
            move |d: Done<(usize, &'static str)>, _: &mut Queue<_>| {
                *counts.borrow_mut().entry(d.cookie.0).or_default() += 1;
                let (i, what) = d.cookie;
                let ok = match (&d.result, what) {
                    (Ok(r), "good" | "slow") => r.status == 200,
                    (Err(e), "broken") => matches!(
                        e.kind(),
                        ErrorKind::Truncated
                            | ErrorKind::EmptyReply
                            | ErrorKind::Malformed
                            | ErrorKind::Io
                    ),
                    (Err(e), "hang") => e.kind() == ErrorKind::Timeout,
                    (Err(e), "refused") => e.kind() == ErrorKind::Connect,
                    _ => false,
                };
                assert!(
                    ok,
                    "request {i} to a {what} target: {:?}",
                    d.result.as_ref().map(|r| r.status)
                );
                *outcomes.borrow_mut().entry(what).or_default() += 1;
            },
            (i, what),
        )
        .unwrap();
    }
    f.finish_all_requests();
    let counts = counts.borrow();
    assert_eq!(counts.len(), N);
    assert!(counts.values().all(|&c| c == 1));
    assert_eq!(outcomes.borrow().values().sum::<usize>(), N);
    eprintln!("outcomes: {:?}", outcomes.borrow());
}

/// Happy Eyeballs (RFC 8305): the first address swallows SYNs (a full accept queue), so
/// without racing the request would wait for its connect timeout; the second address
/// starts 250 ms later and wins.
#[test]
fn happy_eyeballs_races_past_a_silent_address() {
    let s = TestServer::start(ok_body(b"raced"));
    let (_sock, silent, _fillers) = silent_listener("127.0.0.2");
    let b = Fetcher::builder()
        .connect_timeout(Duration::from_secs(5))
        .resolve("dual.test", 80, &[silent, s.addr()]);
    let r = fetch_with(b, "http://dual.test/").unwrap();
    assert_eq!((r.status, r.remote_addr), (200, s.addr()));
    assert!(
        r.timings.connect >= Duration::from_millis(240),
        "{:?}",
        r.timings.connect
    );

    // A refused first address moves on at once, without waiting for the attempt delay.
    let refused: std::net::SocketAddr = format!("127.0.0.1:{}", refused_port()).parse().unwrap();
    let b = Fetcher::builder().resolve("dual.test", 80, &[refused, s.addr()]);
    let r = fetch_with(b, "http://dual.test/").unwrap();
    assert_eq!(r.remote_addr, s.addr());
    assert!(
        r.timings.connect < Duration::from_millis(240),
        "{:?}",
        r.timings.connect
    );
}

/// A racing attempt that fails at once (the kernel refuses a TCP connect to the broadcast
/// address; nothing is sent) must not cost the slot its timer: the connect timeout still
/// ends the request while the first attempt hangs on a full accept queue.
#[test]
fn connect_timeout_holds_when_a_raced_address_fails_at_once() {
    let (_sock, silent, _fillers) = silent_listener("127.0.0.1");
    let broadcast: std::net::SocketAddr = "255.255.255.255:80".parse().unwrap();
    let b = Fetcher::builder()
        .connect_timeout(Duration::from_millis(600))
        .resolve("race.test", 80, &[silent, broadcast]);
    let started = std::time::Instant::now();
    let e = fetch_with(b, "http://race.test/").unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Timeout, Phase::Connect),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the slot lost its timer"
    );
}

/// A follow-up refused by its own error callback's follow-up must still run: the queue is
/// drained until empty.
#[test]
fn follow_ups_queued_by_error_callbacks_run() {
    let s = TestServer::start(ok_body(b"ok"));
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let (g, url_c) = (got.clone(), s.url("/c"));
    let bad_b = Request::get(s.url("/b")).header("X-Bad", "line\nbreak");
    let mut f: Fetcher<()> = Fetcher::new(2);
    // A's callback queues B (checked for its URL only, so accepted), whose header is bad:
    // B's callback gets the error and queues C.
    let bad_b = RefCell::new(Some(bad_b));
    f.start_request(
        s.url("/a"),
        move |d: Done<()>, q: &mut Queue<()>| {
            g.borrow_mut().push(format!("a {}", d.result.is_ok()));
            let g2 = g.clone();
            let url_c = url_c.clone();
            q.start_request(
                bad_b.borrow_mut().take().unwrap(),
                move |d: Done<()>, q: &mut Queue<()>| {
                    g2.borrow_mut()
                        .push(format!("b {}", d.result.unwrap_err().kind()));
                    let g3 = g2.clone();
                    q.start_request(
                        url_c,
                        move |d: Done<()>, _: &mut Queue<()>| {
                            g3.borrow_mut().push(format!("c {}", d.result.is_ok()));
                        },
                        (),
                    )
                    .unwrap();
                },
                (),
            )
            .unwrap();
        },
        (),
    )
    .unwrap();
    f.finish_all_requests();
    assert_eq!(*got.borrow(), ["a true", "b invalid_request", "c true"]);
}

/// Follow-ups are bounded: past `max_queued_followups` requests pending, `Queue::start_request`
/// says `queue_full` and keeps nothing; what it accepted is fetched and called back.
#[test]
fn follow_ups_past_the_cap_are_refused_not_lost() {
    let s = TestServer::start(ok_body(b"ok"));
    let called: Rc<RefCell<Vec<u32>>> = Rc::default();
    let refused: Rc<RefCell<Vec<(ErrorKind, Phase, String)>>> = Rc::default();
    let mut f: Fetcher<u32> = Fetcher::builder()
        .max_in_flight(2)
        .max_queued_followups(5)
        .build();
    let (c, r, base) = (called.clone(), refused.clone(), s.url("/child/"));
    f.start_request(
        s.url("/root"),
        move |d: Done<u32>, q: &mut Queue<u32>| {
            assert_eq!(d.result.unwrap().status, 200);
            c.borrow_mut().push(d.cookie);
            for i in 1..=8 {
                let c = c.clone();
                let on_child = move |d: Done<u32>, _: &mut Queue<u32>| {
                    assert_eq!(d.result.unwrap().status, 200);
                    c.borrow_mut().push(d.cookie);
                };
                if let Err(e) = q.start_request(format!("{base}{i}"), on_child, i) {
                    r.borrow_mut()
                        .push((e.kind(), e.phase(), e.message().to_owned()));
                }
            }
            assert_eq!(q.len(), 5);
        },
        0,
    )
    .unwrap();
    f.finish_all_requests();
    assert_eq!(f.pending(), 0);
    let mut called = called.borrow().clone();
    called.sort();
    assert_eq!(
        called,
        [0, 1, 2, 3, 4, 5],
        "accepted follow-ups run, refused ones never"
    );
    let refused = refused.borrow();
    assert_eq!(refused.len(), 3);
    for (kind, phase, msg) in refused.iter() {
        assert_eq!((*kind, *phase), (ErrorKind::QueueFull, Phase::Prepare));
        assert!(msg.contains("follow-up queue is full"), "{msg}");
    }
    assert_eq!(s.requests().len(), 6);
}

/// `Duration::MAX` means "no limit" to many callers: it must not overflow a deadline.
#[test]
fn huge_timeouts_do_not_overflow() {
    let s = TestServer::start(ok_body(b"ok"));
    let b = Fetcher::builder()
        .connect_timeout(Duration::MAX)
        .idle_timeout(Duration::MAX)
        .timeout(Some(Duration::MAX))
        .pool_idle_timeout(Duration::MAX)
        .retries(1)
        .retry_backoff(Duration::MAX);
    let urls: Vec<String> = (0..3).map(|i| s.url(&format!("/{i}"))).collect();
    assert!(
        b.max_in_flight(1)
            .fetch_all(urls)
            .all(|(_, r)| r.unwrap().status == 200)
    );
}
