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
