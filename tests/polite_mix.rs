//! The admission properties of the crawl tests (exactly one completion, per-host caps, no
//! head-of-line blocking) with every kind of politeness in the mix at once: robots.txt
//! (one origin's allows some paths, one's is broken), rates, a global rate, 429 pauses and
//! slowdowns, over several hosts, with requests of all of them interleaved.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::Duration;

use parafetch::{Done, ErrorKind, Fetcher, Queue};
use parafetch_test_support::http::{Conn, TestServer};

const PER_HOST: usize = 3;

fn host(last: u8, broken_robots: bool) -> TestServer {
    TestServer::start_on(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
        move |c: &mut Conn| {
            c.serve_keep_alive(move |r, c| {
                let t = r.target.as_str();
                if t == "/robots.txt" {
                    return if broken_robots {
                        c.respond(503, &[], b"down")
                    } else {
                        c.respond(200, &[], b"User-agent: *\nDisallow: /deny\n")
                    };
                }
                if t.starts_with("/busy") {
                    return c.respond(429, &[("Retry-After", "0")], b"");
                }
                // A little work, so requests of a host overlap and the cap is tested.
                let n: u64 = t
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                std::thread::sleep(Duration::from_millis(n % 3));
                c.respond(200, &[], b"page")
            })
        },
    )
}

#[test]
fn exactly_once_and_caps_hold_with_rates_pauses_and_robots() {
    let servers: Vec<TestServer> = (1..=4).map(|i| host(i, i == 4)).collect();
    let mut expected: HashMap<String, &'static str> = HashMap::new();
    let mut urls = Vec::new();
    for i in 0..120u64 {
        for (h, s) in servers.iter().enumerate() {
            let path = match i {
                _ if i % 10 == 3 => format!("/deny/{i}"),
                40 | 41 => format!("/busy/{i}"),
                _ => format!("/page/{i}"),
            };
            let url = s.url(&path);
            let want = if h == 3 || path.starts_with("/deny") {
                "robots"
            } else if path.starts_with("/busy") {
                "429"
            } else {
                "200"
            };
            expected.insert(url.clone(), want);
            urls.push(url);
        }
    }

    let mut f = Fetcher::builder()
        .proxy_from_env(false)
        .max_in_flight(8)
        .backlog(10_000)
        .per_host(PER_HOST)
        .host_rate(400.0, 4)
        .rate(1000.0)
        .obey_robots(true)
        .build::<()>();
    let outcomes: Rc<RefCell<HashMap<String, Vec<String>>>> = Rc::default();
    for url in &urls {
        let out = Rc::clone(&outcomes);
        f.start_request(
            url.as_str(),
            move |d: Done<()>, _: &mut Queue<()>| {
                let what = match d.result {
                    Ok(r) => r.status.to_string(),
                    Err(e) if e.kind() == ErrorKind::Robots => "robots".to_owned(),
                    Err(e) => format!("{e:#}"),
                };
                out.borrow_mut().entry(d.url).or_default().push(what);
            },
            (),
        )
        .unwrap();
    }
    f.finish_all_requests();
    let stats = f.polite_stats();
    drop(f);

    let outcomes = outcomes.borrow();
    assert_eq!(outcomes.len(), urls.len(), "every request completed");
    for (url, want) in &expected {
        assert_eq!(
            outcomes[url],
            [*want],
            "{url}: exactly one completion, as expected"
        );
    }
    let refused = expected.values().filter(|w| **w == "robots").count() as u64;
    assert_eq!(stats.robots_refused, refused);
    assert!(
        stats.hosts_paused >= 3,
        "each healthy host paused: {stats:?}"
    );

    for (h, s) in servers.iter().enumerate() {
        let reqs = s.requests();
        let robots = reqs.iter().filter(|r| r.target == "/robots.txt").count();
        assert_eq!(robots, 1, "host {h}: robots.txt once");
        assert!(
            !reqs.iter().any(|r| r.target.starts_with("/deny")),
            "host {h}: a disallowed path reached the server"
        );
        let first_page = reqs
            .iter()
            .filter(|r| r.target != "/robots.txt")
            .map(|r| r.received_at)
            .min();
        let robots_at = reqs
            .iter()
            .find(|r| r.target == "/robots.txt")
            .unwrap()
            .received_at;
        assert!(
            first_page.is_none_or(|t| t > robots_at),
            "host {h}: a page before robots.txt"
        );
        assert!(
            s.in_handler_peak() <= PER_HOST,
            "host {h}: {} at once, cap {PER_HOST}",
            s.in_handler_peak()
        );
        if h == 3 {
            assert_eq!(reqs.len(), 1, "the broken robots.txt host saw nothing else");
        }
    }
}
