//! Proxies: choosing one (fetcher-wide, per request, a rotating list, `NO_PROXY`), HTTP
//! proxies forwarding `http://` URLs in absolute form, credentials, and the errors a proxy
//! causes. Here the proxies are scriptable loopback servers, so a test sees exactly what a
//! proxy is sent.

use std::collections::BTreeMap;
use std::time::Duration;

use parafetch::{Builder, ErrorKind, Fetcher, Phase, Request, Response, Rotation};
use parafetch_test_support::http::{Conn, TestServer, ok_body};

/// A forwarding proxy that answers every request itself with `200`, its own name as the
/// body; it keeps connections alive.
fn fake_proxy(name: &'static str) -> TestServer {
    TestServer::start(move |c: &mut Conn| {
        c.serve_keep_alive(|_, c| c.respond(200, &[], name.as_bytes()))
    })
}

fn one(b: Builder, req: impl parafetch::IntoRequest) -> Result<Response, parafetch::Error> {
    b.proxy_from_env(false)
        .fetch_all([req.into_request()])
        .next()
        .unwrap()
        .1
}

fn proxy_url(s: &TestServer) -> String {
    format!("http://{}", s.addr())
}

#[test]
fn http_urls_go_to_the_proxy_in_absolute_form_with_its_credentials() {
    let proxy = fake_proxy("proxy");
    let url = format!("http://user:{}@{}", "s%3Acret", proxy.addr());
    let r = one(
        Fetcher::builder().proxy(&url),
        "http://origin.test:8080/a/b?c=1#frag",
    )
    .unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"proxy"[..]));
    let seen = &proxy.requests()[0];
    assert_eq!(
        seen.target, "http://origin.test:8080/a/b?c=1",
        "absolute form, no fragment"
    );
    assert_eq!(seen.header("host"), Some("origin.test:8080"));
    // RFC 7617: base64("user:s:cret") — the userinfo is percent-decoded.
    assert_eq!(
        seen.header("proxy-authorization"),
        Some("Basic dXNlcjpzOmNyZXQ=")
    );
}

#[test]
fn one_proxy_connection_serves_every_http_origin() {
    let proxy = fake_proxy("p");
    let urls: Vec<String> = (0..20)
        .map(|i| format!("http://host{}.test/{i}", i % 4))
        .collect();
    let b = Fetcher::builder()
        .max_in_flight(1)
        .proxy_from_env(false)
        .proxy(&proxy_url(&proxy));
    for (url, r) in b.fetch_all(urls) {
        assert_eq!(r.unwrap_or_else(|e| panic!("{url}: {e:#}")).status, 200);
    }
    assert_eq!(proxy.accepts(), 1, "keep-alive to the proxy across origins");
    assert_eq!(proxy.request_count(), 20);
}

#[test]
fn no_proxy_and_per_request_choices_win_and_credentials_stay_with_the_proxy() {
    let proxy = fake_proxy("proxy");
    let origin = TestServer::start(ok_body(b"origin"));
    let with_creds = format!("http://u:p@{}", proxy.addr());
    // NO_PROXY covers the origin: directly, and without the proxy's credentials.
    let b = Fetcher::builder().proxy(&with_creds).no_proxy("127.0.0.1");
    let r = one(b, origin.url("/direct")).unwrap();
    assert_eq!(&r.body[..], b"origin");
    // A request's own choice beats the fetcher's.
    let b = Fetcher::builder().proxy(&with_creds);
    let r = one(b, Request::get(origin.url("/mine")).no_proxy()).unwrap();
    assert_eq!(&r.body[..], b"origin");
    let r = one(
        Fetcher::builder(),
        Request::get(origin.url("/via")).proxy(&with_creds),
    )
    .unwrap();
    assert_eq!(&r.body[..], b"proxy");
    for seen in origin.requests() {
        assert_eq!(seen.header("proxy-authorization"), None, "{}", seen.target);
        assert!(seen.target.starts_with('/'), "origin form: {}", seen.target);
    }
    assert_eq!(proxy.request_count(), 1);
}

#[test]
fn a_list_rotates_per_request_or_sticks_per_host_and_the_pool_never_bypasses_it() {
    let (a, b) = (fake_proxy("a"), fake_proxy("b"));
    let list = [proxy_url(&a), proxy_url(&b)];
    let urls: Vec<String> = (0..10).map(|i| format!("http://h.test/{i}")).collect();
    let mut seen = BTreeMap::new();
    let f = Fetcher::builder()
        .max_in_flight(1)
        .proxies(&list, Rotation::RoundRobin);
    for (_, r) in f.proxy_from_env(false).fetch_all(urls.clone()) {
        *seen.entry(r.unwrap().text().into_owned()).or_insert(0) += 1;
    }
    assert_eq!(
        seen,
        BTreeMap::from([("a".to_owned(), 5), ("b".to_owned(), 5)])
    );
    assert_eq!(
        (a.accepts(), b.accepts()),
        (1, 1),
        "each proxy's connection kept alive"
    );
    // Sticky: every request to one host through one proxy.
    let f = Fetcher::builder()
        .max_in_flight(1)
        .proxies(&list, Rotation::StickyPerHost);
    let bodies: Vec<String> = f
        .proxy_from_env(false)
        .fetch_all(urls)
        .map(|(_, r)| r.unwrap().text().into_owned())
        .collect();
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
}

#[test]
fn a_proxy_asking_for_credentials_is_a_proxy_error_that_never_shows_them() {
    let proxy = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|_, c| {
            c.respond(407, &[("Proxy-Authenticate", "Basic realm=\"p\"")], b"no")
        })
    });
    let e = one(
        Fetcher::builder().proxy(&proxy_url(&proxy)),
        "http://o.test/",
    )
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Proxy, Phase::Proxy),
        "{e}"
    );
    assert!(e.message().contains("requires credentials"), "{e}");
    let with = format!("http://alice:hunter2@{}", proxy.addr());
    let e = one(Fetcher::builder().proxy(&with), "http://o.test/").unwrap_err();
    assert!(e.message().contains("refused the credentials"), "{e}");
    for shown in [format!("{e}"), format!("{e:#}"), format!("{e:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[test]
fn an_unreachable_proxy_is_a_connect_error_in_the_proxy_phase() {
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let b = Fetcher::builder()
        .proxy(&format!("http://u:secret@{addr}"))
        .connect_timeout(Duration::from_secs(5));
    let e = one(b, "http://o.test/").unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Connect, Phase::Proxy),
        "{e}"
    );
    assert_eq!(e.reused_connection(), None);
    assert!(!format!("{e:?}").contains("secret"), "{e:?}");
}

#[test]
fn a_malformed_proxy_is_refused_before_anything_starts() {
    let e = Fetcher::builder()
        .proxy("gopher://user:pw@h:1")
        .try_build::<()>()
        .unwrap_err();
    assert_eq!((e.kind(), e.phase()), (ErrorKind::Proxy, Phase::Prepare));
    assert!(!format!("{e:?}").contains("pw@"), "{e:?}");
    let mut f: Fetcher<()> = Fetcher::builder().proxy_from_env(false).build();
    let e = f
        .start_request(
            Request::get("http://o.test/").proxy("nope://"),
            |_, _| {},
            (),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Proxy);
}

// ------------------------------------------------------------------ tunnels: CONNECT, SOCKS

use parafetch_test_support::fake_proxy::{self, FakeProxy};
use parafetch_test_support::nginx::Nginx;
use parafetch_test_support::pki::pki;
use parafetch_test_support::proxies::{DANTE_USER, Dante, Microsocks, Squid, Tinyproxy};

/// A fetcher trusting the test CA, with no proxy from the environment.
fn trusting() -> Builder {
    Fetcher::builder()
        .proxy_from_env(false)
        .tls_default_roots(false)
        .tls_roots_pem(pki().ca_pem.as_bytes())
        .connect_timeout(Duration::from_secs(5))
}

/// nginx serving a small file over http and https (the test CA's `localhost` leaf).
fn origin() -> Option<Nginx> {
    let good = &pki().good;
    let files = vec![("f.txt".to_owned(), b"through the tunnel".to_vec())];
    Nginx::start_for_test(&files, Some((&good.chain_pem, &good.key_pem)))
}

fn https_url(ng: &Nginx, path: &str) -> String {
    let port = ng.https.expect("nginx started with TLS").port();
    format!("https://localhost:{port}{path}")
}

/// Fetches `urls` through `proxy` (one at a time, so keep-alive is exercised), checks every
/// body, and says which responses came on a reused connection.
fn through(proxy: &str, urls: &[String]) -> Vec<bool> {
    let b = trusting().max_in_flight(1).proxy(proxy);
    let got: Vec<_> = b.fetch_all(urls.to_vec()).collect();
    assert_eq!(got.len(), urls.len());
    let mut reused = Vec::new();
    for (url, r) in got {
        let r = r.unwrap_or_else(|e| panic!("{url} via {proxy}: {e:#}"));
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &b"through the tunnel"[..]),
            "{url}"
        );
        assert!(r.proxy.is_some(), "{url}: the response names its proxy");
        reused.push(r.reused_connection);
    }
    reused
}

fn both_schemes(ng: &Nginx) -> Vec<String> {
    vec![
        ng.url("/f.txt"),
        ng.url("/f.txt"),
        https_url(ng, "/f.txt"),
        https_url(ng, "/f.txt"),
    ]
}

#[test]
fn tinyproxy_forwards_http_and_tunnels_https_with_and_without_credentials() {
    let Some(ng) = origin() else { return };
    let Some(open) = Tinyproxy::start(None) else {
        return;
    };
    through(&open.url(), &both_schemes(&ng));
    let Some(guarded) = Tinyproxy::start(Some(("alice", "s3cret"))) else {
        return;
    };
    through(&guarded.url(), &both_schemes(&ng));
    // A wrong password: tinyproxy 1.11 answers 401 Unauthorized (squid says 407), so for a
    // forwarded http:// request that is the response the caller sees, as with curl; a
    // refused CONNECT is a proxy error either way.
    let wrong = format!("http://alice:wrong@{}", guarded.addr());
    let r = one(trusting().proxy(&wrong), ng.url("/f.txt").as_str()).unwrap();
    assert_eq!(r.status, 401);
    let e = one(trusting().proxy(&wrong), https_url(&ng, "/f.txt").as_str()).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Proxy, Phase::Proxy),
        "{e}"
    );
    assert!(!format!("{e:#} {e:?}").contains("wrong"), "{e:?}");
}

#[test]
fn squid_forwards_http_and_tunnels_https_with_and_without_credentials() {
    let Some(ng) = origin() else { return };
    let Some(open) = Squid::start(None) else {
        return;
    };
    // squid keeps connections alive: the second http:// request rides the first's
    // connection to the proxy, the second https:// one the first's tunnel.
    let reused = through(&open.url(), &both_schemes(&ng));
    assert_eq!(
        reused,
        [false, true, false, true],
        "keep-alive through the proxy"
    );
    let Some(guarded) = Squid::start(Some(("bob", "pa55word"))) else {
        return;
    };
    through(&guarded.url(), &both_schemes(&ng));
    let e = one(
        trusting().proxy(&guarded.url_without_credentials()),
        https_url(&ng, "/f.txt").as_str(),
    )
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Proxy, Phase::Proxy),
        "{e}"
    );
    assert!(e.message().contains("407"), "{e}");
}

#[test]
fn microsocks_carries_socks5_and_socks5h_with_and_without_credentials() {
    let Some(ng) = origin() else { return };
    let Some(open) = Microsocks::start(None) else {
        return;
    };
    let addr = open.addr();
    for scheme in ["socks5", "socks5h"] {
        through(&format!("{scheme}://{addr}"), &both_schemes(&ng));
    }
    let Some(guarded) = Microsocks::start(Some(("carol", "hunter2"))) else {
        return;
    };
    through(
        &guarded.url().replace("socks5://", "socks5h://"),
        &both_schemes(&ng),
    );
    let e = one(
        trusting().proxy(&format!("socks5://carol:nope@{}", guarded.addr())),
        ng.url("/f.txt").as_str(),
    )
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Proxy, Phase::Proxy),
        "{e}"
    );
}

#[test]
fn dante_carries_socks5_with_credentials() {
    let Some(ng) = origin() else { return };
    let Some(d) = Dante::start(Some((DANTE_USER, "Pf-t3st-pw"))) else {
        return;
    };
    through(&d.url(), &both_schemes(&ng));
    through(
        &d.url().replace("socks5://", "socks5h://"),
        &both_schemes(&ng),
    );
}

#[test]
fn a_rotation_over_two_real_proxies_reaches_the_origin_through_both() {
    let origin =
        TestServer::start(|c: &mut Conn| c.serve_keep_alive(|_, c| c.respond(200, &[], b"o")));
    let (Some(a), Some(b)) = (Tinyproxy::start(None), Tinyproxy::start(None)) else {
        return;
    };
    let urls: Vec<String> = (0..10).map(|i| origin.url(&format!("/{i}"))).collect();
    let f = trusting()
        .max_in_flight(1)
        .proxies([a.url(), b.url()], Rotation::RoundRobin);
    let mut via = BTreeMap::new();
    for (_, r) in f.fetch_all(urls) {
        let r = r.unwrap();
        *via.entry(r.proxy.unwrap().to_string()).or_insert(0) += 1;
    }
    assert_eq!(via.values().copied().collect::<Vec<_>>(), [5, 5], "{via:?}");
    assert_eq!(origin.request_count(), 10);
    assert!(
        origin.accepts() >= 2,
        "each proxy opened its own connection to the origin"
    );
}

/// A failure case: the fake proxy, the proxy scheme, the URL, the kind and phase expected, and
/// words the message must hold.
type Case = (
    FakeProxy,
    &'static str,
    &'static str,
    (ErrorKind, Phase),
    &'static str,
);

/// Every way a proxy can fail, through the fake proxy: each request completes exactly once,
/// with the kind and phase the failure deserves.
#[test]
fn every_proxy_failure_is_one_typed_completion() {
    use fake_proxy::*;
    let https = "https://origin.test/";
    let http = "http://origin.test/";
    let cases: Vec<Case> = vec![
        (
            FakeProxy::start(http_reply(AUTH_REQUIRED)),
            "http",
            https,
            (ErrorKind::Proxy, Phase::Proxy),
            "requires credentials",
        ),
        (
            FakeProxy::start(http_reply(AUTH_REQUIRED_NO_CHALLENGE)),
            "http",
            https,
            (ErrorKind::Proxy, Phase::Proxy),
            "407",
        ),
        (
            FakeProxy::start(http_reply(BAD_GATEWAY)),
            "http",
            https,
            (ErrorKind::Proxy, Phase::Proxy),
            "502 Bad Gateway",
        ),
        (
            FakeProxy::start(http_reply(huge_head(200_000))),
            "http",
            https,
            (ErrorKind::Proxy, Phase::Proxy),
            "too large",
        ),
        (
            FakeProxy::start(http_reply(GARBAGE)),
            "http",
            https,
            (ErrorKind::Proxy, Phase::Proxy),
            "bad CONNECT reply",
        ),
        (
            FakeProxy::start(close_after_head()),
            "http",
            https,
            (ErrorKind::Proxy, Phase::Proxy),
            "closed the connection",
        ),
        (
            FakeProxy::start(http_reply_cut(AUTH_REQUIRED, 20)),
            "http",
            https,
            (ErrorKind::Proxy, Phase::Proxy),
            "closed the connection",
        ),
        (
            FakeProxy::start(hang_after_head()),
            "http",
            https,
            (ErrorKind::Timeout, Phase::Proxy),
            "proxy handshake",
        ),
        (
            FakeProxy::start(http_reply(CONNECT_OK_WITH_BODY)),
            "http",
            https,
            (ErrorKind::Tls, Phase::Tls),
            "",
        ),
        (
            FakeProxy::start(socks5_method(0xFF)),
            "socks5h",
            http,
            (ErrorKind::Proxy, Phase::Proxy),
            "no acceptable",
        ),
        (
            FakeProxy::start(socks5_close_after_greeting()),
            "socks5h",
            http,
            (ErrorKind::Proxy, Phase::Proxy),
            "closed",
        ),
        (
            FakeProxy::start(socks5_raw_reply(b"\x04\x5a\0\0\0\0\0\0")),
            "socks5h",
            http,
            (ErrorKind::Proxy, Phase::Proxy),
            "socks",
        ),
        (
            FakeProxy::start(hang()),
            "socks5h",
            http,
            (ErrorKind::Timeout, Phase::Proxy),
            "proxy handshake",
        ),
    ];
    let mut all = cases;
    let codes = [
        (1u8, "general"),
        (2, "not allowed"),
        (3, "network unreachable"),
        (4, "host unreachable"),
        (5, "connection refused"),
        (6, "ttl expired"),
        (7, "command not supported"),
        (8, "address type not supported"),
    ];
    for (code, words) in codes {
        all.push((
            FakeProxy::start(socks5_reply(code)),
            "socks5h",
            http,
            (ErrorKind::Proxy, Phase::Proxy),
            words,
        ));
    }
    for (code, words) in [(0x5b_u8, "rejected"), (0x5c, "identd"), (0x5d, "identd")] {
        all.push((
            FakeProxy::start(socks4_reply(code)),
            "socks4a",
            http,
            (ErrorKind::Proxy, Phase::Proxy),
            words,
        ));
    }
    let mut f: Fetcher<usize> = trusting()
        .connect_timeout(Duration::from_millis(500))
        .max_in_flight(64)
        .build();
    let outcomes = std::rc::Rc::new(std::cell::RefCell::new(BTreeMap::new()));
    for (i, (proxy, scheme, url, _, _)) in all.iter().enumerate() {
        let o = std::rc::Rc::clone(&outcomes);
        let req = Request::get(*url).proxy(&proxy.url(scheme));
        f.start_request(
            req,
            move |d: parafetch::Done<usize>, _: &mut parafetch::Queue<usize>| {
                let prev = o.borrow_mut().insert(d.cookie, d.result);
                assert!(prev.is_none(), "request {} completed twice", d.cookie);
            },
            i,
        )
        .unwrap();
    }
    f.finish_all_requests();
    let outcomes = outcomes.borrow();
    assert_eq!(outcomes.len(), all.len(), "exactly one completion each");
    for (i, (_, scheme, url, want, words)) in all.iter().enumerate() {
        let e = outcomes[&i].as_ref().expect_err("a proxy failure");
        assert_eq!(
            (e.kind(), e.phase()),
            *want,
            "case {i} ({scheme} {url}): {e:#}"
        );
        assert!(e.to_string().contains(words), "case {i}: {e}");
    }
}

#[test]
fn bytes_that_come_with_a_proxy_reply_are_the_tunnels_not_lost() {
    // A SOCKS5 proxy whose success reply and the origin's first bytes (here a whole
    // response: the origin "spoke first") arrive in one write. They must reach the exchange.
    let proxy = FakeProxy::start(|c: &mut fake_proxy::ProxyConn| {
        c.read_socks5_greeting()?;
        c.send_socks5_method(0)?;
        c.read_socks5_request()?;
        let mut out = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50".to_vec();
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly");
        c.send(&out)?;
        c.hang()
    });
    let r = one(
        trusting().proxy(&proxy.url("socks5h")),
        "http://origin.test/",
    )
    .unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"early"[..]));
    assert_eq!(proxy.socks_requests().len(), 1);
}

#[test]
fn an_https_proxy_is_verified_like_an_origin_and_carries_both_schemes() {
    let Some(ng) = origin() else { return };
    let good = &pki().good;
    let Some(squid) = Squid::start_https(&good.chain_pem, &good.key_pem) else {
        return;
    };
    let proxy = format!("https://localhost:{}", squid.addr().port());
    // Trusted through proxy_roots_pem: http:// forwarded over TLS, https:// as TLS in TLS.
    let b = || {
        trusting()
            .max_in_flight(1)
            .proxy(&proxy)
            .proxy_default_roots(false)
            .proxy_roots_pem(pki().ca_pem.as_bytes())
    };
    for (url, r) in b().fetch_all(both_schemes(&ng)) {
        let r = r.unwrap_or_else(|e| panic!("{url}: {e:#}"));
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &b"through the tunnel"[..]),
            "{url}"
        );
        assert_eq!(
            r.tls.is_some(),
            url.starts_with("https"),
            "{url}: the origin's tls"
        );
    }
    // The origin's trust does not cover the proxy, nor -k: the proxy's own switch does.
    let origin_only = trusting().proxy(&proxy).proxy_default_roots(false);
    let e = one(origin_only, ng.url("/f.txt").as_str()).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Tls, Phase::Proxy),
        "{e:#}"
    );
    let k = trusting()
        .proxy(&proxy)
        .proxy_default_roots(false)
        .danger_accept_invalid_certs(true);
    assert_eq!(
        one(k, ng.url("/f.txt").as_str()).unwrap_err().phase(),
        Phase::Proxy
    );
    let insecure = trusting()
        .proxy(&proxy)
        .proxy_default_roots(false)
        .proxy_danger_accept_invalid_certs(true);
    assert_eq!(
        one(insecure, https_url(&ng, "/f.txt").as_str())
            .unwrap()
            .status,
        200
    );
}

#[test]
fn redirects_keep_the_proxy_and_its_credentials_stay_on_the_proxy_hop() {
    let proxy = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|req, c| {
            if req.target == "http://first.test/" {
                c.respond(302, &[("Location", "http://second.test/next")], b"")
            } else {
                c.respond(200, &[], b"arrived")
            }
        })
    });
    let b = Fetcher::builder()
        .proxy(&format!("http://u:p@{}", proxy.addr()))
        .follow_redirects(true);
    let r = one(b, "http://first.test/").unwrap();
    assert_eq!(
        (r.status, &r.body[..], r.redirects),
        (200, &b"arrived"[..], 1)
    );
    let seen = proxy.requests();
    let targets: Vec<&str> = seen.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["http://first.test/", "http://second.test/next"]);
    assert!(
        seen.iter()
            .all(|r| r.header("proxy-authorization").is_some())
    );
}

#[test]
fn proxy_tunnel_sends_http_urls_through_connect_too() {
    let origin = TestServer::start(ok_body(b"tunnelled"));
    let proxy = FakeProxy::start(fake_proxy::http_proxy(origin.addr(), Some(("u", "p"))));
    let b = trusting()
        .proxy(&proxy.url_with_credentials("http", "u", "p"))
        .proxy_tunnel(true);
    let r = one(b, origin.url("/plain")).unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"tunnelled"[..]));
    // A Proxy-Authorization the caller set goes on the CONNECT when the proxy URL has no
    // credentials, and never through the tunnel to the origin.
    let b = trusting().proxy(&proxy.url("http")).proxy_tunnel(true);
    let basic = fake_proxy::basic_credentials("u", "p");
    let req = Request::get(origin.url("/own")).header("Proxy-Authorization", &basic);
    assert_eq!(one(b, req).unwrap().status, 200);
    let seen = proxy.http_requests();
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, origin.addr().to_string());
    let at_origin = origin.requests();
    assert_eq!(
        at_origin[0].target, "/plain",
        "origin form inside the tunnel"
    );
    assert_eq!(at_origin.len(), 2);
    for seen in at_origin {
        assert_eq!(seen.header("proxy-authorization"), None, "{}", seen.target);
    }
}

#[test]
fn socks4a_gives_the_proxy_the_name_and_its_user_id() {
    // No SOCKS4a proxy in Debian's packages speaks 4a (dante refuses it), so the fake's
    // working tunnel stands in for one.
    let origin = TestServer::start(ok_body(b"four-a"));
    let proxy = FakeProxy::start(fake_proxy::socks4_proxy(origin.addr()));
    let url = format!("http://origin.test:{}/x", origin.port());
    let b = trusting().proxy(&proxy.url_with_credentials("socks4a", "ident", "unused"));
    let r = one(b, url.as_str()).unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"four-a"[..]));
    let seen = &proxy.socks_requests()[0];
    assert_eq!(seen.version, 4);
    assert_eq!(seen.user_id.as_deref(), Some("ident"));
    assert!(
        matches!(&seen.dest, fake_proxy::Dest::Domain(name) if name == "origin.test"),
        "the proxy resolves: {:?}",
        seen.dest
    );
}
