//! robots.txt (`obey_robots`) against real sockets: what the server receives is the proof.
//! A disallowed request never reaches it; robots.txt is fetched once per origin; 404, 500,
//! 429, no answer, redirects and an oversized file each behave as RFC 9309 (and Google)
//! say; `Crawl-delay` spaces the requests the server receives.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parafetch::{Builder, ErrorKind, Fetcher, Phase};
use parafetch_test_support::http::{Conn, Request, TestServer};

/// A server answering `/robots.txt` with `robots(request)` and every other path 200.
fn site<F>(ip: [u8; 4], robots: F) -> TestServer
where
    F: Fn(&Request, &mut Conn) -> std::io::Result<()> + Send + Sync + 'static,
{
    let robots = Arc::new(robots);
    TestServer::start_on(IpAddr::V4(Ipv4Addr::from(ip)), move |c: &mut Conn| {
        let robots = Arc::clone(&robots);
        c.serve_keep_alive(move |r, c| {
            if r.target == "/robots.txt" {
                robots(r, c)
            } else {
                c.respond(200, &[], b"page")
            }
        })
    })
}

fn serving(body: &'static str) -> impl Fn(&Request, &mut Conn) -> std::io::Result<()> {
    move |_, c| c.respond(200, &[("Content-Type", "text/plain")], body.as_bytes())
}

fn polite() -> Builder {
    Fetcher::builder()
        .proxy_from_env(false)
        .max_in_flight(10)
        .obey_robots(true)
        .backlog(1000)
        .timeout(Some(Duration::from_secs(10)))
}

/// A request's outcome: the status, or the error's kind and phase.
type Outcome = Result<u16, (ErrorKind, Phase)>;

/// Fetches `paths` on `s`; returns each path's outcome.
fn run(b: Builder, s: &TestServer, paths: &[&str]) -> Vec<Outcome> {
    let urls: Vec<String> = paths.iter().map(|p| s.url(p)).collect();
    let mut got: Vec<(String, Outcome)> = b
        .fetch_all(urls.clone())
        .map(|(url, r)| (url, r.map(|r| r.status).map_err(|e| (e.kind(), e.phase()))))
        .collect();
    assert_eq!(got.len(), paths.len(), "one completion each");
    got.sort_by_key(|(u, _)| urls.iter().position(|x| x == u));
    got.into_iter().map(|(_, r)| r).collect()
}

/// The targets the server received, in order of arrival.
fn received(s: &TestServer) -> Vec<String> {
    let mut r = s.requests();
    r.sort_by_key(|r| r.received_at);
    r.into_iter().map(|r| r.target).collect()
}

const REFUSED: Outcome = Err((ErrorKind::Robots, Phase::Robots));

#[test]
fn disallowed_paths_never_reach_the_server() {
    let s = site(
        [127, 0, 0, 1],
        serving(
            "User-agent: *\nDisallow: /private\nAllow: /private/ok\n\n\
             User-agent: parafetch\nDisallow: /mine\nDisallow: /*.pdf$\n",
        ),
    );
    let paths = [
        "/public",
        "/private/a",
        "/private/ok/b",
        "/mine",
        "/doc.pdf",
        "/doc.pdf?x",
    ];
    let got = run(polite(), &s, &paths);
    // Our group (parafetch) applies, not `*`: /private is not disallowed for us.
    assert_eq!(got, [Ok(200), Ok(200), Ok(200), REFUSED, REFUSED, Ok(200)]);
    let r = received(&s);
    assert_eq!(r[0], "/robots.txt", "robots.txt first: {r:?}");
    assert_eq!(r.iter().filter(|t| *t == "/robots.txt").count(), 1);
    assert!(!r.iter().any(|t| t == "/mine" || t == "/doc.pdf"), "{r:?}");
    assert_eq!(r.len(), 5);
}

#[test]
fn the_error_says_what_was_refused_and_the_stats_count_it() {
    let s = site([127, 0, 0, 1], serving("User-agent: *\nDisallow: /\n"));
    let mut f = polite().user_agent("Bot-X/2.0").build::<()>();
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    for p in ["/a", "/b?q=1"] {
        let seen = std::rc::Rc::clone(&seen);
        f.start_request(
            s.url(p).as_str(),
            move |d: parafetch::Done<()>, _: &mut parafetch::Queue<()>| {
                seen.borrow_mut().push(d.result.unwrap_err().to_string());
            },
            (),
        )
        .unwrap();
    }
    f.finish_all_requests();
    assert_eq!(f.polite_stats().robots_refused, 2);
    let seen = seen.borrow();
    assert!(
        seen.iter()
            .any(|m| m.contains("disallows /b for") && m.contains("\"Bot-X\"")),
        "{seen:?}"
    );
    // The query stays out of the message: it may carry a token.
    assert!(!seen.iter().any(|m| m.contains("q=1")), "{seen:?}");
    assert!(
        seen.iter().all(|m| m.starts_with("robots during robots")),
        "{seen:?}"
    );
}

#[test]
fn robots_txt_is_fetched_once_per_origin_with_a_hundred_waiting() {
    // robots.txt takes a while: every request is accepted before it comes.
    let s = site([127, 0, 0, 1], |_, c| {
        std::thread::sleep(Duration::from_millis(300));
        c.respond(200, &[], b"User-agent: *\nDisallow: /odd\n")
    });
    let paths: Vec<String> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                format!("/even/{i}")
            } else {
                format!("/odd/{i}")
            }
        })
        .collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let got = run(polite(), &s, &refs);
    assert_eq!(got.iter().filter(|r| **r == Ok(200)).count(), 50);
    assert_eq!(got.iter().filter(|r| **r == REFUSED).count(), 50);
    let r = received(&s);
    assert_eq!(r.iter().filter(|t| *t == "/robots.txt").count(), 1, "{r:?}");
    assert_eq!(r.len(), 51);
}

#[test]
fn other_origins_go_on_while_one_waits_for_its_robots_txt() {
    let slow = site([127, 0, 0, 1], |_, c| {
        std::thread::sleep(Duration::from_millis(500));
        c.respond(404, &[], b"")
    });
    let fast = site([127, 0, 0, 2], |_, c| c.respond(404, &[], b""));
    let mut urls: Vec<String> = (0..3).map(|i| slow.url(&format!("/{i}"))).collect();
    urls.extend((0..3).map(|i| fast.url(&format!("/{i}"))));
    for (_, r) in polite().fetch_all(urls) {
        assert_eq!(r.unwrap().status, 200);
    }
    let page_times = |s: &TestServer| -> Vec<Instant> {
        s.requests()
            .into_iter()
            .filter(|r| r.target != "/robots.txt")
            .map(|r| r.received_at)
            .collect()
    };
    let fast_last = page_times(&fast).into_iter().max().unwrap();
    let slow_first = page_times(&slow).into_iter().min().unwrap();
    assert!(
        fast_last < slow_first,
        "the fast origin waited for the slow one"
    );
}

#[test]
fn a_404_robots_txt_allows_everything() {
    let s = site([127, 0, 0, 1], |_, c| c.respond(404, &[], b"no such file"));
    assert_eq!(run(polite(), &s, &["/a", "/b"]), [Ok(200), Ok(200)]);
    assert_eq!(received(&s).len(), 3);
}

#[test]
fn a_500_robots_txt_disallows_everything_and_is_not_asked_again_at_once() {
    let s = site([127, 0, 0, 1], |_, c| c.respond(500, &[], b"oops"));
    let mut f = polite().build::<()>();
    let refused = std::rc::Rc::new(std::cell::Cell::new(0));
    for round in 0..2 {
        for p in ["/a", "/b"] {
            let refused = std::rc::Rc::clone(&refused);
            f.start_request(
                s.url(p).as_str(),
                move |d: parafetch::Done<()>, _: &mut parafetch::Queue<()>| {
                    let e = d.result.unwrap_err();
                    assert_eq!(e.kind(), ErrorKind::Robots);
                    assert!(e.to_string().contains("unreachable (500"), "{e}");
                    refused.set(refused.get() + 1);
                },
                (),
            )
            .unwrap();
        }
        f.finish_all_requests();
        assert_eq!(refused.get(), 2 * (round + 1));
    }
    assert_eq!(received(&s), ["/robots.txt"], "asked once, no page fetched");
}

#[test]
fn a_429_robots_txt_disallows_everything_as_google_does() {
    let s = site([127, 0, 0, 1], |_, c| c.respond(429, &[], b""));
    assert_eq!(run(polite(), &s, &["/a"]), [REFUSED]);
}

#[test]
fn an_unanswered_robots_txt_disallows_everything() {
    let s = site([127, 0, 0, 1], |_, c| c.hang());
    let b = polite().timeout(Some(Duration::from_millis(300)));
    assert_eq!(run(b, &s, &["/a", "/b"]), [REFUSED, REFUSED]);
    assert_eq!(received(&s), ["/robots.txt"]);
}

#[test]
fn redirects_are_followed_to_the_robots_txt() {
    // robots.txt moved to another host (RFC 9309: follow at least five redirects).
    let rules = TestServer::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), |c: &mut Conn| {
        c.serve_keep_alive(|_, c| c.respond(200, &[], b"User-agent: *\nDisallow: /no\n"))
    });
    let target = rules.url("/elsewhere/robots.txt");
    let s = site([127, 0, 0, 1], move |_, c| {
        c.respond(302, &[("Location", target.as_str())], b"")
    });
    assert_eq!(run(polite(), &s, &["/yes", "/no"]), [Ok(200), REFUSED]);
    assert_eq!(received(&rules), ["/elsewhere/robots.txt"]);
}

#[test]
fn more_than_five_redirects_mean_no_robots_txt() {
    // Every robots.txt hop redirects to the next: after five, it is "unavailable".
    let s = TestServer::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), |c: &mut Conn| {
        c.serve_keep_alive(|r, c| {
            if let Some(n) = r.target.strip_prefix("/robots.txt") {
                let next = format!("/robots.txt{n}x");
                c.respond(302, &[("Location", next.as_str())], b"")
            } else {
                c.respond(200, &[], b"page")
            }
        })
    });
    assert_eq!(run(polite(), &s, &["/a"]), [Ok(200)]);
    let hops = received(&s)
        .iter()
        .filter(|t| t.starts_with("/robots.txt"))
        .count();
    assert_eq!(hops, 6, "the first request and five redirects");
}

#[test]
fn only_the_first_500_kib_of_robots_txt_count() {
    // A rule in the first 500 KiB holds; one after it does not (the collector stops the
    // 2 MiB transfer at the cap and the engine parses what it kept).
    let mut body = b"User-agent: *\nDisallow: /early\n".to_vec();
    while body.len() < 520 * 1024 {
        body.extend_from_slice(b"# filler filler filler filler filler filler filler\n");
    }
    body.extend_from_slice(b"Disallow: /late\n");
    body.resize(2 << 20, b'#');
    let body = Arc::new(body);
    let s = site([127, 0, 0, 1], move |_, c| c.respond(200, &[], &body));
    assert_eq!(run(polite(), &s, &["/early", "/late"]), [REFUSED, Ok(200)]);
}

#[test]
fn crawl_delay_spaces_the_requests_the_server_receives() {
    let s = site(
        [127, 0, 0, 1],
        serving("User-agent: *\nCrawl-delay: 0.25\nDisallow: /x\n"),
    );
    let paths = ["/1", "/2", "/3", "/4"];
    assert!(run(polite(), &s, &paths).iter().all(|r| *r == Ok(200)));
    let mut at: Vec<Instant> = s
        .requests()
        .into_iter()
        .filter(|r| r.target != "/robots.txt")
        .map(|r| r.received_at)
        .collect();
    at.sort();
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(240),
            "{:?}",
            w[1] - w[0]
        );
    }
}

#[test]
fn without_obey_robots_nothing_is_asked() {
    let s = site([127, 0, 0, 1], serving("User-agent: *\nDisallow: /\n"));
    let b = polite().obey_robots(false);
    assert_eq!(run(b, &s, &["/a"]), [Ok(200)]);
    assert_eq!(received(&s), ["/a"]);
}

#[test]
fn a_long_error_page_for_robots_txt_still_counts_as_its_status() {
    // A 503 with a 600 KiB body: the collector cuts it, the status still decides.
    let page = Arc::new(vec![b'x'; 600 * 1024]);
    let s = site([127, 0, 0, 1], move |_, c| c.respond(503, &[], &page));
    assert_eq!(run(polite(), &s, &["/a"]), [REFUSED]);
}

#[test]
fn a_request_with_its_own_user_agent_is_judged_for_that_agent() {
    let s = site(
        [127, 0, 0, 1],
        serving("User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nAllow: /\n"),
    );
    let urls = [s.url("/a"), s.url("/b")];
    let mut f = polite().build::<()>();
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    for (url, ua) in urls.iter().zip([None, Some("otherbot/2.0")]) {
        let mut req = parafetch::Request::get(url.as_str());
        if let Some(ua) = ua {
            req = req.header("User-Agent", ua);
        }
        let got = std::rc::Rc::clone(&got);
        f.start_request(
            req,
            move |d: parafetch::Done<()>, _: &mut parafetch::Queue<()>| {
                let r = d.result.map(|r| r.status).map_err(|e| e.kind());
                got.borrow_mut().push((d.url, r));
            },
            (),
        )
        .unwrap();
    }
    f.finish_all_requests();
    let mut got = got.borrow().clone();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            (urls[0].clone(), Ok(200)),
            (urls[1].clone(), Err(ErrorKind::Robots))
        ]
    );
    // One robots.txt per agent, each asked with that agent's User-Agent.
    let mut agents: Vec<String> = s
        .requests()
        .into_iter()
        .filter(|r| r.target == "/robots.txt")
        .map(|r| r.header("user-agent").unwrap_or("").to_owned())
        .collect();
    agents.sort();
    assert_eq!(agents.len(), 2, "{agents:?}");
    assert!(agents[0].starts_with("otherbot/2.0"), "{agents:?}");
    assert!(agents[1].starts_with("parafetch/"), "{agents:?}");
}

#[test]
fn a_slow_start_delay_does_not_hold_requests_after_robots_txt() {
    // AutoThrottle remembers an idle host for a minute; the requests parked behind
    // robots.txt must still start at their own (short) time, not at that minute's end.
    let s = site([127, 0, 0, 1], serving("User-agent: *\nDisallow: /x\n"));
    let b = polite()
        .auto_throttle(4.0)
        .auto_throttle_delays(Duration::from_millis(20), Duration::from_secs(60));
    let t0 = Instant::now();
    assert_eq!(run(b, &s, &["/a", "/b"]), [Ok(200), Ok(200)]);
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "parked requests waited for the idle host's memory: {:?}",
        t0.elapsed()
    );
}
