//! Interop with a server no one here wrote: nginx on loopback, plain and TLS. Without nginx
//! these tests fail under CI (`.ci/run` installs it) and are skipped, with a notice, elsewhere.

use parafetch::{ErrorKind, Fetcher, Request};
use parafetch_test_support::nginx::Nginx;
use parafetch_test_support::pki::pki;

/// The TLS listener's URL, by name so the certificate's name is checked.
fn https_url(ng: &Nginx, path: &str) -> String {
    let port = ng.https.expect("nginx started with TLS").port();
    format!("https://localhost:{port}{path}")
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn start() -> Option<Nginx> {
    let good = &pki().good;
    let files: Vec<(String, Vec<u8>)> = vec![
        ("1k.bin".into(), body(1024)),
        ("1m.bin".into(), body(1 << 20)),
        ("page.html".into(), b"<html>hello</html>".repeat(200)),
    ];
    Nginx::start_for_test(&files, Some((&good.chain_pem, &good.key_pem)))
}

#[test]
fn nginx_plain_and_tls() {
    let Some(ng) = start() else { return };
    let trusting = || {
        Fetcher::builder()
            .tls_default_roots(false)
            .tls_roots_pem(pki().ca_pem.as_bytes())
    };
    for url in [ng.url("/1k.bin"), https_url(&ng, "/1k.bin")] {
        let r = trusting()
            .fetch_all([url.clone()])
            .next()
            .unwrap()
            .1
            .unwrap();
        assert_eq!((r.status, r.body.clone()), (200, body(1024)), "{url}");
        assert_eq!(
            r.headers.get("server").map(|s| s.starts_with("nginx")),
            Some(true)
        );
    }
    for url in [ng.url("/1m.bin"), https_url(&ng, "/1m.bin")] {
        let r = trusting()
            .fetch_all([url.clone()])
            .next()
            .unwrap()
            .1
            .unwrap();
        assert!(r.body == body(1 << 20), "{url}");
    }
    let r = trusting()
        .fetch_all([ng.url("/missing")])
        .next()
        .unwrap()
        .1
        .unwrap();
    assert_eq!(r.status, 404);
    let r = trusting()
        .fetch_all([Request::head(https_url(&ng, "/1m.bin"))])
        .next()
        .unwrap()
        .1
        .unwrap();
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.headers.get("content-length"), Some("1048576"));
    // Untrusted by default.
    let e = Fetcher::builder()
        .fetch_all([https_url(&ng, "/1k.bin")])
        .next()
        .unwrap()
        .1
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls);
}

#[test]
fn nginx_keep_alive_many_requests() {
    let Some(ng) = start() else { return };
    let urls: Vec<String> = (0..500)
        .map(|i| {
            if i % 2 == 0 {
                ng.url("/1k.bin")
            } else {
                https_url(&ng, "/page.html")
            }
        })
        .collect();
    let b = Fetcher::builder()
        .max_in_flight(8)
        .tls_default_roots(false)
        .tls_roots_pem(pki().ca_pem.as_bytes());
    let mut reused = 0;
    for (url, r) in b.fetch_all(urls) {
        let r = r.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(r.status, 200);
        reused += r.reused_connection as usize;
    }
    assert!(reused > 400, "keep-alive reused {reused} of 500");
}

/// The keep-alive race the issue found against Apache (`KeepAliveTimeout 1`): requests
/// spaced just over the server's idle timeout. nginx closes idle connections after 1 s and
/// announces it (`Keep-Alive: timeout=1`); a pooled connection must expire before that, so
/// no request, a POST least of all, is written into a connection the server is closing.
#[test]
fn requests_spaced_past_the_servers_keep_alive_timeout_never_meet_a_closing_connection() {
    let files = vec![("k.txt".to_owned(), b"keep".to_vec())];
    let Some(ng) = Nginx::start_for_test_with_keepalive(&files, None, "1s 1s") else {
        return;
    };
    let mut f: Fetcher<()> = Fetcher::builder().build();
    let mut one = |req: Request| {
        let got = std::rc::Rc::new(std::cell::RefCell::new(None));
        let g = std::rc::Rc::clone(&got);
        f.start_request(
            req,
            move |d: parafetch::Done<()>, _: &mut parafetch::Queue<()>| {
                *g.borrow_mut() = Some(d.result);
            },
            (),
        )
        .unwrap();
        f.finish_all_requests();
        got.borrow_mut().take().expect("called back")
    };
    let first = one(Request::get(ng.url("/k.txt"))).unwrap();
    assert_eq!(first.headers.get("keep-alive"), Some("timeout=1"));
    for i in 0..3 {
        // Time passing is what is tested: just past nginx's 1 s idle timeout.
        std::thread::sleep(std::time::Duration::from_millis(1050));
        let req = if i % 2 == 0 {
            Request::post(ng.url("/k.txt")).body(&b"x"[..])
        } else {
            Request::get(ng.url("/k.txt"))
        };
        let r = one(req).unwrap_or_else(|e| panic!("round {i}: {e:#}"));
        assert!(
            !r.reused_connection,
            "round {i}: a connection past its announced timeout"
        );
        assert!(matches!(r.status, 200 | 405), "round {i}: {}", r.status);
    }
}
