//! Politeness by rate: a token bucket per host (`host_rate`) and one for the fetcher
//! (`rate`), measured where it matters, at the servers: when each request arrived.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use parafetch::{ErrorKind, Fetcher};
use parafetch_test_support::http::{Conn, TestServer};

fn server_on(ip: [u8; 4]) -> TestServer {
    TestServer::start_on(IpAddr::V4(Ipv4Addr::from(ip)), |c: &mut Conn| {
        c.serve_keep_alive(|_, c| c.respond(200, &[], b"ok"))
    })
}

/// When each request reached `s`, in order.
fn arrivals(s: &TestServer) -> Vec<Instant> {
    let mut at: Vec<Instant> = s.requests().iter().map(|r| r.received_at).collect();
    at.sort();
    at
}

fn gaps(at: &[Instant]) -> Vec<Duration> {
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

fn fetch(b: parafetch::Builder, urls: Vec<String>) {
    for (url, r) in b.proxy_from_env(false).max_in_flight(20).fetch_all(urls) {
        assert_eq!(r.unwrap_or_else(|e| panic!("{url}: {e:#}")).status, 200);
    }
}

#[test]
fn a_host_rate_spaces_the_requests_one_host_receives() {
    let s = server_on([127, 0, 0, 1]);
    let urls = (0..6).map(|i| s.url(&format!("/{i}"))).collect();
    fetch(Fetcher::builder().host_rate(10.0, 1), urls);
    // One token every 100 ms: no two requests closer than that (10% for the clocks of two
    // threads); the bound is what a token bucket guarantees, not a timing hope.
    for (i, g) in gaps(&arrivals(&s)).into_iter().enumerate() {
        assert!(g >= Duration::from_millis(90), "gap {i}: {g:?}");
    }
}

#[test]
fn a_burst_goes_at_once_then_the_rate_holds() {
    let s = server_on([127, 0, 0, 1]);
    let urls = (0..5).map(|i| s.url(&format!("/{i}"))).collect();
    fetch(Fetcher::builder().host_rate(4.0, 3), urls);
    let at = arrivals(&s);
    // Three tokens at the start: the first three need not wait for one another...
    assert!(
        at[2] - at[0] < Duration::from_millis(200),
        "{:?}",
        gaps(&at)
    );
    // ...then one every 250 ms.
    assert!(
        at[3] - at[0] >= Duration::from_millis(225),
        "{:?}",
        gaps(&at)
    );
    assert!(
        at[4] - at[3] >= Duration::from_millis(225),
        "{:?}",
        gaps(&at)
    );
}

#[test]
fn rate_limited_hosts_run_side_by_side() {
    // Two hosts at 5/s each: the second is never held behind the first (no head-of-line
    // blocking): its requests arrive while the first host's are still being spaced out.
    let (a, b) = (server_on([127, 0, 0, 1]), server_on([127, 0, 0, 2]));
    let mut urls = Vec::new();
    for i in 0..4 {
        urls.push(a.url(&format!("/{i}")));
    }
    for i in 0..4 {
        urls.push(b.url(&format!("/{i}")));
    }
    fetch(Fetcher::builder().host_rate(5.0, 1), urls);
    let (at_a, at_b) = (arrivals(&a), arrivals(&b));
    assert!(at_b[0] < at_a[3] && at_a[0] < at_b[3], "{at_a:?} {at_b:?}");
    for g in gaps(&at_a).into_iter().chain(gaps(&at_b)) {
        assert!(g >= Duration::from_millis(180), "{g:?}");
    }
}

#[test]
fn a_fetcher_rate_spaces_requests_across_hosts() {
    let (a, b) = (server_on([127, 0, 0, 1]), server_on([127, 0, 0, 3]));
    let urls = (0..6)
        .map(|i| {
            if i % 2 == 0 {
                a.url(&format!("/{i}"))
            } else {
                b.url(&format!("/{i}"))
            }
        })
        .collect();
    fetch(Fetcher::builder().rate(10.0), urls);
    let mut all = arrivals(&a);
    all.extend(arrivals(&b));
    all.sort();
    assert_eq!(all.len(), 6);
    for (i, g) in gaps(&all).into_iter().enumerate() {
        assert!(g >= Duration::from_millis(90), "gap {i}: {g:?}");
    }
}

#[test]
fn a_rate_must_be_a_positive_number() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = Fetcher::builder()
            .host_rate(bad, 1)
            .try_build::<()>()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{bad}");
        let e = Fetcher::builder().rate(bad).try_build::<()>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{bad}");
    }
}

/// Arrivals at `s` of requests whose target starts with `prefix`, in order.
fn arrivals_of(s: &TestServer, prefix: &str) -> Vec<Instant> {
    let mut at: Vec<Instant> = s
        .requests()
        .iter()
        .filter(|r| r.target.starts_with(prefix))
        .map(|r| r.received_at)
        .collect();
    at.sort();
    at
}

/// Fetches every URL, returning the statuses in the order given.
fn statuses(b: parafetch::Builder, urls: &[String]) -> Vec<u16> {
    let mut got: Vec<(String, u16)> = b
        .proxy_from_env(false)
        .max_in_flight(20)
        .fetch_all(urls.to_vec())
        .map(|(url, r)| (url, r.unwrap_or_else(|e| panic!("{e:#}")).status))
        .collect();
    got.sort_by_key(|(url, _)| urls.iter().position(|u| u == url));
    got.into_iter().map(|(_, s)| s).collect()
}

/// A server on 127.0.0.1 answering `status` with `Retry-After: retry_after` to the
/// targets in `refused`, and 200 to the rest.
fn refusing(
    refused: &'static [&'static str],
    status: u16,
    retry_after: &'static str,
) -> TestServer {
    TestServer::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), move |c: &mut Conn| {
        c.serve_keep_alive(|r, c| {
            if refused.contains(&r.target.as_str()) {
                c.respond(status, &[("Retry-After", retry_after)], b"slow down")
            } else {
                c.respond(200, &[], b"ok")
            }
        })
    })
}

#[test]
fn a_429_with_retry_after_pauses_that_host_and_no_other() {
    // Host a answers its first request with 429 and Retry-After: 2.
    let a = refusing(&["/a0"], 429, "2");
    let b = server_on([127, 0, 0, 2]);
    let mut urls: Vec<String> = (0..3).map(|i| a.url(&format!("/a{i}"))).collect();
    urls.extend((0..6).map(|i| b.url(&format!("/b{i}"))));
    let mut f = Fetcher::builder().per_host(1).proxy_from_env(false).build();
    let statuses_seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    for url in &urls {
        let seen = std::rc::Rc::clone(&statuses_seen);
        f.start_request(
            url.as_str(),
            move |d: parafetch::Done<()>, _: &mut parafetch::Queue<()>| {
                let status = d.result.map(|r| r.status).unwrap_or(0);
                seen.borrow_mut().push((d.url, status));
            },
            (),
        )
        .unwrap();
    }
    f.finish_all_requests();
    assert_eq!(f.polite_stats().hosts_paused, 1);
    drop(f);
    let seen = statuses_seen.borrow();
    assert_eq!(seen.len(), urls.len(), "each request completes once");
    assert!(
        seen.contains(&(urls[0].clone(), 429)),
        "the 429 is delivered"
    );

    let at = arrivals_of(&a, "/a");
    assert_eq!(at.len(), 3);
    // No new request reached host a for the 2 s it asked for (the pause starts when the
    // answer arrives, after the server logged the request: the bound holds exactly).
    assert!(at[1] - at[0] >= Duration::from_secs(2), "{:?}", gaps(&at));
    // After the pause the host is slowed down: at least 500 ms, less a quarter.
    assert!(
        at[2] - at[1] >= Duration::from_millis(370),
        "{:?}",
        gaps(&at)
    );
    // Host b never waited for a's pause.
    let b_last = *arrivals(&b).last().unwrap();
    assert!(b_last < at[1], "host b was held up by host a's pause");
}

#[test]
fn a_503_storm_slows_a_host_and_it_recovers() {
    // Two 503s (Retry-After: 0, so only the slowdown shows), then good answers.
    let s = refusing(&["/0", "/1"], 503, "0");
    let urls: Vec<String> = (0..24).map(|i| s.url(&format!("/{i}"))).collect();
    let got = statuses(Fetcher::builder().per_host(1), &urls);
    assert_eq!(&got[..2], [503, 503]);
    assert!(got[2..].iter().all(|&s| s == 200), "{got:?}");
    let g = gaps(&arrivals(&s));
    // Each bound less 10 ms: a request may reach the server a little later after its
    // start than the one before it did (the first, 50 ms: it also opened the connection).
    // The first 503 slows the host to one request per 500 ms; the second (its pause was
    // none, Retry-After: 0) is a second strike and doubles that to 1 s.
    assert!(g[0] >= Duration::from_millis(450), "{g:?}");
    assert!(g[1] >= Duration::from_millis(990), "{g:?}");
    // Each good answer gives back a quarter: the spacing shrinks...
    assert!(g[2] >= Duration::from_millis(740), "{g:?}");
    assert!(g[3] >= Duration::from_millis(552), "{g:?}");
    // ...until it is gone: the last requests follow one another at loopback speed.
    let tail = &g[g.len() - 3..];
    assert!(
        tail.iter().all(|&d| d < Duration::from_millis(100)),
        "{g:?}"
    );
}

#[test]
fn host_backoff_can_be_turned_off() {
    let s = refusing(&["/0"], 429, "30");
    let urls: Vec<String> = (0..3).map(|i| s.url(&format!("/{i}"))).collect();
    let t0 = Instant::now();
    let got = statuses(Fetcher::builder().per_host(1).host_backoff(false), &urls);
    assert_eq!(got, [429, 200, 200]);
    assert!(t0.elapsed() < Duration::from_secs(30), "no pause");
}

#[test]
fn auto_throttle_spaces_a_slow_host_by_its_latency() {
    // Every answer takes 200 ms: with a target of one request in flight, the delay
    // between starts tends to 200 ms and never drops below it.
    let s = TestServer::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), |c: &mut Conn| {
        c.serve_keep_alive(|_, c| {
            std::thread::sleep(Duration::from_millis(200));
            c.respond(200, &[], b"ok")
        })
    });
    let urls: Vec<String> = (0..6).map(|i| s.url(&format!("/{i}"))).collect();
    let b = Fetcher::builder()
        .auto_throttle(1.0)
        .auto_throttle_delays(Duration::from_millis(300), Duration::from_secs(5));
    assert!(statuses(b, &urls).iter().all(|&s| s == 200));
    let g = gaps(&arrivals(&s));
    assert_eq!(g.len(), 5);
    // The start delay, then halfway towards 200 ms, never below it (the server's clock
    // and ours differ by a few ms at most).
    for (i, d) in g.iter().enumerate() {
        assert!(*d >= Duration::from_millis(190), "gap {i}: {g:?}");
    }
    let e = Fetcher::builder()
        .auto_throttle(0.0)
        .try_build::<()>()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
}

#[cfg(feature = "psl")]
#[test]
fn the_domain_key_gives_sibling_hosts_one_budget() {
    use parafetch::PolitenessKey;
    let (a, b) = (server_on([127, 0, 0, 1]), server_on([127, 0, 0, 2]));
    let url = |host: &str, port: u16, i: usize| format!("http://{host}:{port}/{i}");
    let mut urls = Vec::new();
    for i in 0..3 {
        urls.push(url("a.example.co.uk", a.port(), i));
        urls.push(url("b.example.co.uk", b.port(), i));
    }
    let builder = |key| {
        Fetcher::builder()
            .resolve("a.example.co.uk", a.port(), &[a.addr()])
            .resolve("b.example.co.uk", b.port(), &[b.addr()])
            .host_rate(10.0, 1)
            .politeness_key(key)
    };
    fetch(builder(PolitenessKey::Domain), urls.clone());
    let mut all = arrivals(&a);
    all.extend(arrivals(&b));
    all.sort();
    assert_eq!(all.len(), 6);
    // One bucket for example.co.uk: 10/s across both hosts.
    for (i, g) in gaps(&all).into_iter().enumerate() {
        assert!(g >= Duration::from_millis(90), "gap {i}: {g:?}");
    }
}
