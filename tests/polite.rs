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
