//! Crawler-grade behaviour: keep-alive pool, per-host politeness, redirects, content
//! decoding, streaming, retries.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use parafetch::proto::ContentDecoder;
use parafetch::{Builder, Done, ErrorKind, Fetcher, Phase, Queue, Request, Response};
use parafetch_test_support::gate::Gate;
use parafetch_test_support::http::{Conn, TestServer, ok_body};

const LONG: Duration = Duration::from_secs(10);

fn one(b: Builder, req: impl parafetch::IntoRequest) -> Result<Response, parafetch::Error> {
    b.fetch_all([req.into_request()]).next().unwrap().1
}

// ---------------------------------------------------------------- keep-alive pool

#[test]
fn thousand_requests_four_in_flight_open_at_most_four_connections() {
    let s = TestServer::start(ok_body(b"pooled"));
    let urls: Vec<String> = (0..1000).map(|i| s.url(&format!("/{i}"))).collect();
    let mut n = 0;
    let mut reused = 0;
    for (url, r) in Fetcher::builder().max_in_flight(4).fetch_all(urls) {
        let r = r.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            (r.status, &r.body[..], r.attempts),
            (200, &b"pooled"[..], 1)
        );
        reused += r.reused_connection as usize;
        n += 1;
    }
    assert_eq!(n, 1000);
    assert!(s.accepts() <= 4, "{} connections", s.accepts());
    assert_eq!(reused, 1000 - s.accepts());
}

#[test]
fn server_closing_idle_connections_fails_no_request() {
    // Answers one request per connection and closes it without saying `Connection: close`:
    // every pooled connection is dead by the time it is reused (or closing as it is).
    let s = TestServer::start(|c: &mut Conn| {
        if c.read_request()?.is_some() {
            c.respond(200, &[], b"once")?;
        }
        c.close();
        Ok(())
    });
    let urls: Vec<String> = (0..200).map(|i| s.url(&format!("/{i}"))).collect();
    for (url, r) in Fetcher::builder().max_in_flight(4).fetch_all(urls) {
        let r = r.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!((r.status, r.attempts), (200, 1));
    }
    assert_eq!(s.request_count(), 200);
}

/// A server that answers the first request of each connection and closes the connection
/// as the next request on it arrives, without a byte: the keep-alive race, every time.
fn closes_reused_connections() -> TestServer {
    TestServer::start(|c: &mut Conn| {
        if c.read_request()?.is_some() {
            c.respond(200, &[], b"first")?;
        }
        if c.read_request()?.is_some() {
            c.close(); // the request arrived on a connection the server gave up on
        }
        Ok(())
    })
}

fn targets(s: &TestServer) -> Vec<String> {
    s.requests().iter().map(|r| r.target.clone()).collect()
}

#[test]
fn stale_pooled_connection_replays_only_repeatable_requests() {
    let s = closes_reused_connections();
    let requests = [
        Request::get(s.url("/warm")),
        // Reuses the pooled connection, which dies: replayed once on a new one.
        Request::get(s.url("/get")),
        // Not idempotent: reported, not sent again.
        Request::post(s.url("/post")).body(&b"once"[..]),
        Request::get(s.url("/warm-again")),
        // An Idempotency-Key says the server deduplicates: replayed.
        Request::post(s.url("/keyed"))
            .header("Idempotency-Key", "a1b2")
            .body(&b"twice"[..]),
    ];
    let got: Vec<_> = Fetcher::builder()
        .max_in_flight(1)
        .fetch_all(requests)
        .map(|(_, r)| r)
        .collect();
    let get = got[1].as_ref().expect("GET replayed on a new connection");
    assert_eq!(
        (get.status, get.attempts, get.reused_connection),
        (200, 1, false)
    );
    let post = got[2].as_ref().expect_err("a stale POST is not replayed");
    assert_eq!(post.kind(), ErrorKind::EmptyReply, "{post}");
    assert_eq!(post.reused_connection(), Some(true));
    assert_eq!(post.attempts(), 1);
    assert!(post.message().contains("not replayed"), "{post}");
    let keyed = got[4].as_ref().expect("keyed POST replayed");
    assert_eq!((keyed.status, keyed.reused_connection), (200, false));
    assert_eq!(
        targets(&s),
        [
            "/warm",
            "/get",
            "/get",
            "/post",
            "/warm-again",
            "/keyed",
            "/keyed"
        ],
        "each replay is one more request; the plain POST went out once"
    );
}

#[test]
fn stale_replay_is_not_an_attempt_and_happens_once() {
    // Every request on a reused connection dies, and so would a replay if it reused one:
    // the replay goes to a new connection, so it succeeds, and the retry budget is intact.
    let s = closes_reused_connections();
    let urls: Vec<String> = (0..50).map(|i| s.url(&format!("/{i}"))).collect();
    for (url, r) in Fetcher::builder().max_in_flight(2).fetch_all(urls) {
        let r = r.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!((r.status, r.attempts), (200, 1), "{url}");
    }
}

/// Fetches one request to completion on `f`; says whether it reused a pooled connection.
fn reused_one(f: &mut Fetcher<()>, req: Request) -> bool {
    let reused = Rc::new(Cell::new(None));
    let r = Rc::clone(&reused);
    f.start_request(
        req,
        move |d: Done<()>, _: &mut Queue<()>| r.set(Some(d.result.unwrap().reused_connection)),
        (),
    )
    .unwrap();
    f.finish_all_requests();
    reused.get().expect("called back")
}

#[test]
fn pooled_connections_expire_before_the_servers_keep_alive_timeout() {
    // The server announces a 1 s keep-alive timeout: we keep the connection half that.
    let s = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|_, c| c.respond(200, &[("Keep-Alive", "timeout=1, max=100")], b"k"))
    });
    let mut f: Fetcher<()> = Fetcher::builder().build();
    assert!(!reused_one(&mut f, Request::get(s.url("/a"))));
    assert!(
        reused_one(&mut f, Request::get(s.url("/b"))),
        "well inside the lifetime"
    );
    // Past half the announced timeout: the connection must not be used any more. (Time
    // passing is what is tested here; nothing waits for another thread.)
    std::thread::sleep(Duration::from_millis(600));
    assert!(!reused_one(&mut f, Request::get(s.url("/c"))));
    assert_eq!(s.accepts(), 2);
}

#[test]
fn non_idempotent_requests_skip_connections_idle_over_a_second() {
    let s = TestServer::start(|c: &mut Conn| c.serve_keep_alive(|_, c| c.respond(200, &[], b"k")));
    let mut f: Fetcher<()> = Fetcher::builder().build();
    assert!(!reused_one(&mut f, Request::get(s.url("/a"))));
    assert!(
        reused_one(&mut f, Request::post(s.url("/b"))),
        "idle for microseconds"
    );
    std::thread::sleep(Duration::from_millis(1100)); // time passing is what is tested
    assert!(
        !reused_one(&mut f, Request::post(s.url("/c"))),
        "idle over 1 s: a new one"
    );
    assert!(
        reused_one(&mut f, Request::get(s.url("/d"))),
        "a GET takes any pooled one"
    );
    assert_eq!(s.accepts(), 2);
}

#[test]
fn connection_close_and_http10_are_not_reused() {
    let s = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|req, c| {
            if req.target == "/close" {
                c.respond(200, &[("Connection", "close")], b"x")
            } else {
                c.send(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\ny")
            }
        })
    });
    let urls = vec![
        s.url("/close"),
        s.url("/close"),
        s.url("/ten"),
        s.url("/ten"),
    ];
    for (_, r) in Fetcher::builder().max_in_flight(1).fetch_all(urls) {
        assert!(!r.unwrap().reused_connection);
    }
    assert_eq!(s.accepts(), 4);
}

#[test]
fn keep_alive_off_sends_connection_close() {
    let s = TestServer::start(ok_body(b"x"));
    let urls: Vec<String> = (0..3).map(|i| s.url(&format!("/{i}"))).collect();
    let all: Vec<_> = Fetcher::builder()
        .max_in_flight(1)
        .keep_alive(false)
        .fetch_all(urls)
        .collect();
    assert!(all.iter().all(|(_, r)| r.as_ref().unwrap().status == 200));
    assert_eq!(s.accepts(), 3);
    assert!(
        s.requests()
            .iter()
            .all(|r| r.header("connection") == Some("close"))
    );
}

// ---------------------------------------------------------------- per-host politeness

/// Three hosts (127.0.0.1, .2, .3), per-host cap 2: each server holds requests at a gate of
/// 2, so each must see 2 at once (cap reached) and its peak must stay 2 (never exceeded).
#[test]
fn per_host_cap_is_reached_and_never_exceeded() {
    let servers: Vec<TestServer> = (1..=3)
        .map(|last| {
            let gate = Gate::new(2);
            TestServer::start_on(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
                move |c: &mut Conn| {
                    c.serve_keep_alive(|_r, c| {
                        let ok = gate.arrive_and_wait(LONG);
                        c.respond(if ok { 200 } else { 500 }, &[], b"")
                    })
                },
            )
        })
        .collect();
    let urls: Vec<String> = (0..30)
        .map(|i| servers[i % 3].url(&format!("/{i}")))
        .collect();
    let b = Fetcher::builder().max_in_flight(6).per_host(2).backlog(100);
    for (url, r) in b.fetch_all(urls) {
        assert_eq!(r.unwrap().status, 200, "{url}");
    }
    for s in &servers {
        assert_eq!(s.in_handler_peak(), 2, "{}", s.addr());
    }
}

/// A host that hangs must not stall the others: its requests wait on a release that only
/// the fast host's last completion triggers.
#[test]
fn slow_host_does_not_stall_fast_hosts() {
    let release = Arc::new((Mutex::new(false), Condvar::new()));
    let r2 = release.clone();
    // Per-host caps count by host name, so the slow host gets an address of its own.
    let slow = TestServer::start_on(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        move |c: &mut Conn| {
            c.serve_keep_alive(|_r, c| {
                let (lock, cv) = &*r2;
                let guard = cv
                    .wait_timeout_while(lock.lock().unwrap(), LONG, |released| !*released)
                    .unwrap();
                let status = if *guard.0 { 200 } else { 504 };
                drop(guard);
                c.respond(status, &[], b"slow")
            })
        },
    );
    let fast = TestServer::start(ok_body(b"fast"));
    let fast_done = Rc::new(Cell::new(0));
    let results: Rc<RefCell<Vec<(String, u16)>>> = Rc::default();
    let mut f: Fetcher<&'static str> = Fetcher::builder()
        .max_in_flight(4)
        .per_host(2)
        .backlog(100)
        .build();
    let cb = |fast_done: Rc<Cell<usize>>,
              results: Rc<RefCell<Vec<(String, u16)>>>,
              release: Arc<(Mutex<bool>, Condvar)>| {
        move |d: Done<&'static str>, _q: &mut Queue<&'static str>| {
            let status = d.result.map(|r| r.status).unwrap_or(0);
            results.borrow_mut().push((d.cookie.to_string(), status));
            if d.cookie == "fast" {
                fast_done.set(fast_done.get() + 1);
                if fast_done.get() == 20 {
                    *release.0.lock().unwrap() = true;
                    release.1.notify_all();
                }
            }
        }
    };
    for i in 0..6 {
        f.start_request(
            slow.url(&format!("/{i}")),
            cb(fast_done.clone(), results.clone(), release.clone()),
            "slow",
        )
        .unwrap();
    }
    for i in 0..20 {
        f.start_request(
            fast.url(&format!("/{i}")),
            cb(fast_done.clone(), results.clone(), release.clone()),
            "fast",
        )
        .unwrap();
    }
    f.finish_all_requests();
    let results = results.borrow();
    assert_eq!(results.len(), 26);
    assert!(results.iter().all(|(_, st)| *st == 200), "{results:?}");
    // Every fast request finished before any slow one.
    let first_slow = results.iter().position(|(w, _)| w == "slow").unwrap();
    assert_eq!(first_slow, 20, "{results:?}");
}

#[test]
fn per_host_delay_is_respected_from_the_server_side() {
    let s = TestServer::start(ok_body(b"x"));
    let urls: Vec<String> = (0..5).map(|i| s.url(&format!("/{i}"))).collect();
    let delay = Duration::from_millis(80);
    let b = Fetcher::builder().max_in_flight(5).host_delay(delay);
    assert_eq!(b.fetch_all(urls).filter(|(_, r)| r.is_ok()).count(), 5);
    let mut times: Vec<_> = s.requests().iter().map(|r| r.received_at).collect();
    times.sort();
    for w in times.windows(2) {
        // Starts are spaced by the delay; arrival jitter on loopback is far below 10 ms.
        assert!(
            w[1] - w[0] >= delay - Duration::from_millis(10),
            "{:?}",
            w[1] - w[0]
        );
    }
}

// ---------------------------------------------------------------- redirects

fn redirector() -> TestServer {
    TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|req, c| {
            let t = req.target.clone();
            if let Some(rest) = t.strip_prefix("/r/") {
                // /r/<code>/<location...>
                let (code, loc) = rest.split_once('/').unwrap();
                let loc = format!("/{loc}");
                c.respond(code.parse().unwrap(), &[("Location", &loc)], b"moved")
            } else if t == "/loop" {
                c.respond(302, &[("Location", "/loop")], b"")
            } else if t == "/ftp" {
                c.respond(302, &[("Location", "ftp://example.com/x")], b"")
            } else if t == "/relative" {
                c.respond(301, &[("Location", "final?x=1")], b"")
            } else {
                let body = format!(
                    "{} {} body={}",
                    req.method,
                    t,
                    String::from_utf8_lossy(&req.body)
                );
                c.respond(200, &[], body.as_bytes())
            }
        })
    })
}

#[test]
fn redirects_follow_each_code_with_the_right_method() {
    let s = redirector();
    let b = || Fetcher::builder().follow_redirects(true);
    for (code, method_after) in [
        (301, "GET"),
        (302, "GET"),
        (303, "GET"),
        (307, "POST"),
        (308, "POST"),
    ] {
        let req = Request::post(s.url(&format!("/r/{code}/final"))).body("data");
        let r = one(b(), req).unwrap();
        let want_body = if method_after == "POST" { "data" } else { "" };
        assert_eq!(
            r.text(),
            format!("{method_after} /final body={want_body}"),
            "{code}"
        );
        assert_eq!((r.redirects, r.url.path()), (1, "/final"));
    }
    // GET stays GET through every code.
    for code in [301, 302, 303, 307, 308] {
        let r = one(b(), s.url(&format!("/r/{code}/final"))).unwrap();
        assert_eq!(r.text(), "GET /final body=", "{code}");
    }
    let r = one(b(), s.url("/r/302/relative")).unwrap();
    assert_eq!(
        (r.redirects, r.url.path(), r.url.query()),
        (2, "/final", Some("x=1"))
    );
}

#[test]
fn redirects_are_off_by_default_and_limited() {
    let s = redirector();
    let r = one(Fetcher::builder(), s.url("/r/302/final")).unwrap();
    assert_eq!((r.status, r.headers.get("location")), (302, Some("/final")));
    let e = one(
        Fetcher::builder().follow_redirects(true).max_redirects(5),
        s.url("/loop"),
    )
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::TooManyRedirects, Phase::Redirect)
    );
    let e = one(Fetcher::builder().follow_redirects(true), s.url("/ftp")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRedirect);
    // A per-request override turns following on for that request only.
    let r = one(
        Fetcher::builder(),
        Request::get(s.url("/r/307/final")).follow_redirects(true, 3),
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn credentials_are_dropped_when_a_redirect_leaves_the_origin() {
    let other = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|req, c| {
            let leaked: Vec<&str> = ["authorization", "cookie", "proxy-authorization"]
                .into_iter()
                .filter(|h| req.header(h).is_some())
                .collect();
            c.respond(
                200,
                &[],
                format!("leaked={leaked:?} x-custom={:?}", req.header("x-custom")).as_bytes(),
            )
        })
    });
    let target = other.url("/landing");
    let first = TestServer::start(move |c: &mut Conn| {
        let target = target.clone();
        c.serve_keep_alive(move |req, c| {
            if req.target == "/same" {
                c.respond(302, &[("Location", "/echo")], b"")
            } else if req.target == "/echo" {
                c.respond(
                    200,
                    &[],
                    format!("auth={:?}", req.header("authorization")).as_bytes(),
                )
            } else {
                c.respond(302, &[("Location", &target)], b"")
            }
        })
    });
    let req = |path: &str| {
        Request::get(first.url(path))
            .header("Authorization", "Bearer secret")
            .header("Cookie", "session=1")
            .header("Proxy-Authorization", "Basic x")
            .header("X-Custom", "kept")
    };
    let b = || Fetcher::builder().follow_redirects(true);
    let r = one(b(), req("/away")).unwrap();
    assert_eq!(r.text(), r#"leaked=[] x-custom=Some("kept")"#);
    // Same origin: credentials stay.
    let r = one(b(), req("/same")).unwrap();
    assert_eq!(r.text(), r#"auth=Some("Bearer secret")"#);
}

// ---------------------------------------------------------------- content decoding

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_and_deflate_bodies_decode() {
    let plain: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("{i},").into_bytes())
        .collect();
    let (gz, zl) = (gzip(&plain), zlib(&plain));
    let s = TestServer::start(move |c: &mut Conn| {
        let (gz, zl) = (gz.clone(), zl.clone());
        c.serve_keep_alive(move |req, c| {
            assert_eq!(
                req.header("accept-encoding"),
                Some(ContentDecoder::ACCEPT_ENCODING)
            );
            match req.target.as_str() {
                "/gzip" => c.respond(200, &[("Content-Encoding", "gzip")], &gz),
                "/deflate" => c.respond_chunked(
                    200,
                    &[("Content-Encoding", "deflate")],
                    &[&zl[..10], &zl[10..]],
                ),
                _ => c.respond(200, &[("Content-Encoding", "gzip")], b"not gzip"),
            }
        })
    });
    for path in ["/gzip", "/deflate"] {
        let r = one(Fetcher::builder().decompress(true), s.url(path)).unwrap();
        assert!(r.body == plain, "{path}");
        assert_eq!(r.body_len, plain.len() as u64);
    }
    let e = one(Fetcher::builder().decompress(true), s.url("/corrupt")).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Malformed, Phase::ReceiveBody)
    );
}

#[cfg(feature = "brotli")]
fn br(data: &[u8]) -> Vec<u8> {
    let mut e = brotli_encoder::CompressorWriter::new(Vec::new(), 4096, 5, 22);
    e.write_all(data).unwrap();
    e.into_inner()
}

#[cfg(feature = "zstd")]
fn zst(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, 3).unwrap()
}

#[cfg(all(feature = "brotli", feature = "zstd"))]
#[test]
fn br_zstd_and_stacked_codings_decode() {
    assert_eq!(ContentDecoder::ACCEPT_ENCODING, "gzip, deflate, br, zstd");
    let plain: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("{i},").into_bytes())
        .collect();
    let bodies = [
        ("/br", br(&plain)),
        ("/zstd", zst(&plain)),
        ("/gzip-br", br(&gzip(&plain))),
        ("/br-zstd", zst(&br(&plain))),
        ("/unasked", br(&plain)),
    ];
    let served = bodies.clone();
    let s = TestServer::start(move |c: &mut Conn| {
        let served = served.clone();
        c.serve_keep_alive(move |req, c| {
            let body = &served.iter().find(|(p, _)| *p == req.target).unwrap().1;
            match req.target.as_str() {
                "/br" | "/unasked" => c.respond(200, &[("Content-Encoding", "br")], body),
                "/zstd" => {
                    let (a, b) = body.split_at(body.len() / 3);
                    c.respond_chunked(200, &[("Content-Encoding", "zstd")], &[a, b])
                }
                "/gzip-br" => c.respond(200, &[("Content-Encoding", "gzip, br")], body),
                // Two fields are one list (RFC 9110 §5.3).
                _ => c.respond(
                    200,
                    &[("Content-Encoding", "br"), ("Content-Encoding", "zstd")],
                    body,
                ),
            }
        })
    });
    for (path, _) in &bodies {
        // A server may send br although we asked for none of it: decoded all the same.
        let req = match *path {
            "/unasked" => Request::get(s.url(path)).header("Accept-Encoding", "identity"),
            _ => Request::get(s.url(path)),
        };
        let r = one(Fetcher::builder().decompress(true), req).unwrap();
        let asked = s
            .requests()
            .last()
            .unwrap()
            .header("accept-encoding")
            .map(str::to_owned);
        let want = match *path {
            "/unasked" => "identity",
            _ => ContentDecoder::ACCEPT_ENCODING,
        };
        assert_eq!(asked.as_deref(), Some(want));
        assert!(r.body == plain, "{path}");
        assert_eq!(r.body_len, plain.len() as u64, "{path}");
        assert_eq!(r.content_encoding_left, None, "{path}");
    }
    // Decoding off: as sent, and the response says what is left to undo.
    let r = one(Fetcher::builder(), s.url("/gzip-br")).unwrap();
    assert!(r.body == bodies[2].1);
    assert_eq!(r.content_encoding_left.as_deref(), Some("gzip, br"));
    let r = one(Fetcher::builder(), s.url("/br-zstd")).unwrap();
    assert_eq!(r.content_encoding_left.as_deref(), Some("br, zstd"));
}

/// A coding we cannot decode leaves the whole body as sent (decoding the outer layers only
/// would hand back bytes no header describes), and the response names what is left.
#[test]
fn undecodable_codings_are_left_as_sent() {
    let gz = gzip(b"inner");
    let deep = (0..5).fold(b"deep".to_vec(), |b, _| gzip(&b));
    let (gz2, deep2) = (gz.clone(), deep.clone());
    let s = TestServer::start(move |c: &mut Conn| {
        let (gz, deep) = (gz2.clone(), deep2.clone());
        c.serve_keep_alive(move |req, c| match req.target.as_str() {
            "/foo" => c.respond(200, &[("Content-Encoding", "foo")], b"as sent"),
            "/gzip-foo" => c.respond(200, &[("Content-Encoding", "gzip, foo")], &gz),
            "/identity" => c.respond(200, &[("Content-Encoding", "identity")], b"plain"),
            _ => c.respond(
                200,
                &[("Content-Encoding", "gzip, gzip, gzip, gzip, gzip")],
                &deep,
            ),
        })
    });
    let b = || Fetcher::builder().decompress(true);
    let r = one(b(), s.url("/foo")).unwrap();
    assert_eq!(
        (&r.body[..], r.content_encoding_left.as_deref()),
        (&b"as sent"[..], Some("foo"))
    );
    let r = one(b(), s.url("/gzip-foo")).unwrap();
    assert!(r.body == gz);
    assert_eq!(r.content_encoding_left.as_deref(), Some("gzip, foo"));
    let r = one(b(), s.url("/identity")).unwrap();
    assert_eq!(
        (&r.body[..], r.content_encoding_left),
        (&b"plain"[..], None)
    );
    // More than four stacked: left as sent.
    let r = one(b(), s.url("/deep")).unwrap();
    assert!(r.body == deep);
    assert_eq!(
        r.content_encoding_left.as_deref(),
        Some("gzip, gzip, gzip, gzip, gzip")
    );
}

/// Cut short or corrupt br and zstd bodies are the request's error, as gzip's are: kind
/// `malformed` in `receive_body`, the message naming the coding.
#[cfg(all(feature = "brotli", feature = "zstd"))]
#[test]
fn truncated_and_corrupt_br_and_zstd_are_errors() {
    let plain: Vec<u8> = (0..50_000u32)
        .flat_map(|i| format!("{i},").into_bytes())
        .collect();
    let (b, z) = (br(&plain), zst(&plain));
    let flip = |mut v: Vec<u8>, i: usize| {
        v[i] ^= 0xff;
        v
    };
    let cases = vec![
        ("/br-cut", "br", b[..b.len() / 2].to_vec()),
        ("/br-bad", "br", flip(b.clone(), b.len() / 3)),
        ("/zstd-cut", "zstd", z[..z.len() / 2].to_vec()),
        // zstd has no checksum by default: a flipped literal byte decodes to other bytes.
        // A flipped frame header byte is caught.
        ("/zstd-bad", "zstd", flip(z.clone(), 4)),
        ("/gzip-br-cut", "gzip, br", br(&gzip(&plain)[..1000])),
    ];
    let served = cases.clone();
    let s = TestServer::start(move |c: &mut Conn| {
        let served = served.clone();
        c.serve_keep_alive(move |req, c| {
            let (_, coding, body) = served.iter().find(|(p, ..)| *p == req.target).unwrap();
            c.respond(200, &[("Content-Encoding", coding)], body)
        })
    });
    for (path, coding, _) in &cases {
        let Err(e) = one(Fetcher::builder().decompress(true), s.url(path)) else {
            panic!("{path} decoded");
        };
        assert_eq!(
            (e.kind(), e.phase()),
            (ErrorKind::Malformed, Phase::ReceiveBody),
            "{path}: {e:#}"
        );
        let text = format!("{e:#}");
        assert!(
            text.contains(&format!(
                "cannot decode the body's content-encoding ({coding})"
            )),
            "{text}"
        );
        let failed = if *path == "/gzip-br-cut" {
            "gzip"
        } else {
            coding
        };
        assert!(text.contains(&format!(" {failed} stream")), "{text}");
    }
}

/// A body that would decode to 1 GiB, produced lazily by the server: the client must stop
/// at its decoded-size limit (`too_large`) long before.
#[test]
fn decompression_bomb_stops_at_the_limit() {
    let sent = Arc::new(Mutex::new(0usize));
    let sent2 = sent.clone();
    let s = TestServer::start(move |c: &mut Conn| {
        c.read_request()?;
        c.send(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")?;
        let zeros = vec![0u8; 1 << 20];
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        for _ in 0..1024 {
            enc.write_all(&zeros)?;
            enc.flush()?;
            let out = std::mem::take(enc.get_mut());
            *sent2.lock().unwrap() += out.len();
            c.send(format!("{:x}\r\n", out.len()).as_bytes())?;
            c.send(&out)?;
            c.send(b"\r\n")?;
        }
        Ok(())
    });
    let limit = 8 << 20;
    let e = one(
        Fetcher::builder().decompress(true).max_body(limit),
        s.url("/bomb"),
    )
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::TooLarge, Phase::ReceiveBody),
        "{e}"
    );
    let sent = *sent.lock().unwrap();
    assert!(
        sent < 1 << 20,
        "the server got to send {sent} compressed bytes"
    );
}

// ---------------------------------------------------------------- streaming

#[test]
fn body_streams_to_a_sink_and_a_writer() {
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 241) as u8).collect();
    let big2 = big.clone();
    let s = TestServer::start(move |c: &mut Conn| {
        let big = big2.clone();
        c.serve_keep_alive(move |_r, c| c.respond(200, &[], &big))
    });
    let got = Arc::new(Mutex::new(Vec::new()));
    let pieces = Arc::new(AtomicUsize::new(0));
    let (g, p) = (got.clone(), pieces.clone());
    let req = Request::get(s.url("/big")).on_body(move |b| {
        g.lock().unwrap().extend_from_slice(b);
        p.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    let r = one(Fetcher::builder(), req).unwrap();
    assert!(r.body.is_empty(), "streamed bodies are not buffered");
    assert_eq!(r.body_len, big.len() as u64);
    assert!(*got.lock().unwrap() == big);
    assert!(pieces.load(Ordering::Relaxed) > 1);

    let path = std::env::temp_dir().join(format!("parafetch-sink-{}.bin", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let r = one(
        Fetcher::builder(),
        Request::get(s.url("/big")).write_to(file),
    )
    .unwrap();
    assert_eq!(r.body_len, big.len() as u64);
    assert!(std::fs::read(&path).unwrap() == big);
    let _ = std::fs::remove_file(&path);

    // A sink error fails the request with kind io.
    let req = Request::get(s.url("/big")).on_body(|_| Err(io::Error::other("disk full")));
    let e = one(Fetcher::builder(), req).unwrap_err();
    assert_eq!((e.kind(), e.phase()), (ErrorKind::Io, Phase::ReceiveBody));
}

// ---------------------------------------------------------------- retries

#[test]
fn retries_transient_statuses_with_backoff() {
    let n = Arc::new(Mutex::new(0));
    let n2 = n.clone();
    let s = TestServer::start(move |c: &mut Conn| {
        let n2 = n2.clone();
        c.serve_keep_alive(move |_req, c| {
            let mut k = n2.lock().unwrap();
            *k += 1;
            if *k <= 2 {
                c.respond(503, &[], b"busy")
            } else {
                c.respond(200, &[], b"ok")
            }
        })
    });
    let b = Fetcher::builder()
        .retries(3)
        .retry_backoff(Duration::from_millis(5));
    let r = one(b, s.url("/flaky")).unwrap();
    assert_eq!((r.status, r.attempts, &r.body[..]), (200, 3, &b"ok"[..]));
    assert_eq!(*n.lock().unwrap(), 3);
}

#[test]
fn retry_budget_runs_out_and_post_is_not_retried_on_status() {
    let s =
        TestServer::start(|c: &mut Conn| c.serve_keep_alive(|_r, c| c.respond(503, &[], b"busy")));
    let b = || {
        Fetcher::builder()
            .retries(2)
            .retry_backoff(Duration::from_millis(5))
    };
    let r = one(b(), s.url("/always")).unwrap();
    assert_eq!((r.status, r.attempts), (503, 3));
    let r = one(b(), Request::post(s.url("/post")).body("x")).unwrap();
    assert_eq!((r.status, r.attempts), (503, 1));
    assert_eq!(s.request_count(), 4);
}

#[test]
fn retry_after_is_honoured() {
    let s = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|_r, c| {
            if c.index() == 0 {
                c.respond(
                    429,
                    &[("Retry-After", "1"), ("Connection", "close")],
                    b"slow down",
                )
            } else {
                c.respond(200, &[], b"ok")
            }
        })
    });
    let b = Fetcher::builder()
        .retries(1)
        .retry_backoff(Duration::from_millis(1));
    let r = one(b, s.url("/")).unwrap();
    assert_eq!((r.status, r.attempts), (200, 2));
    let reqs = s.requests();
    let gap = reqs[1].received_at - reqs[0].received_at;
    assert!(gap >= Duration::from_millis(990), "retried after {gap:?}");
}

#[test]
fn connect_errors_are_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = Fetcher::builder()
        .retries(2)
        .retry_backoff(Duration::from_millis(1));
    let e = one(b, format!("http://127.0.0.1:{port}/")).unwrap_err();
    assert_eq!((e.kind(), e.attempts()), (ErrorKind::Connect, 3));
    let e = one(Fetcher::builder(), format!("http://127.0.0.1:{port}/")).unwrap_err();
    assert_eq!((e.kind(), e.attempts()), (ErrorKind::Connect, 1));
}
