//! The in-loop DNS stub against a scriptable fake nameserver on loopback.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use parafetch::{Builder, ErrorKind, Fetcher, Phase, Response};
use parafetch_test_support::dns::{FakeDns, QType, Query, Reply, zone};
use parafetch_test_support::http::{TestServer, ok_body};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A fetcher asking only `servers`, with no search list, short tries.
fn stub(servers: &[SocketAddr]) -> Builder {
    Fetcher::builder()
        .dns_servers(servers)
        .dns_search(&[], 1)
        .dns_timeout(Duration::from_millis(300), 1)
}

fn get(b: Builder, url: String) -> Result<Response, parafetch::Error> {
    b.fetch_all([url]).next().unwrap().1
}

fn answer(v4: &[Ipv4Addr]) -> Reply {
    Reply::Answer {
        v4: v4.to_vec(),
        v6: vec![],
        ttl: 300,
    }
}

#[test]
fn names_resolve_through_the_stub() {
    let http = TestServer::start(ok_body(b"resolved"));
    let dns = FakeDns::start(zone(&[("host.test", &[LOCAL], &[])], 60));
    let r = get(
        stub(&[dns.addr()]),
        format!("http://host.test:{}/", http.port()),
    )
    .unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"resolved"[..]));
    assert!(r.timings.resolve > Duration::ZERO);
    assert_eq!(dns.count_for("host.test", QType::A), 1);
    assert_eq!(dns.count_for("host.test", QType::Aaaa), 1);
    assert_eq!(
        http.requests()[0].header("host"),
        Some(format!("host.test:{}", http.port()).as_str())
    );
}

#[test]
fn unbounded_dns_timeouts_and_ttls_do_not_overflow() {
    // `Duration::MAX` means "no limit"; it used to panic on `now + d` in the stub.
    let http = TestServer::start(ok_body(b"far"));
    let dns = FakeDns::start(zone(&[("far.test", &[LOCAL], &[])], 60));
    let b = Fetcher::builder()
        .max_in_flight(1)
        .dns_servers(&[dns.addr()])
        .dns_search(&[], 1)
        .dns_timeout(Duration::MAX, 1)
        .dns_cache_ttl(Duration::MAX, Duration::MAX);
    let url = format!("http://far.test:{}/", http.port());
    let results: Vec<_> = b.fetch_all([url.clone(), url]).collect();
    for (_, r) in results {
        assert_eq!(r.unwrap().status, 200);
    }
    assert_eq!(dns.count_for("far.test", QType::A), 1, "cached 'forever'");
}

#[test]
fn lookups_are_coalesced_and_cached() {
    let http = TestServer::start(ok_body(b"x"));
    let dns = FakeDns::start(|q: &Query| {
        Reply::Delay(
            Duration::from_millis(50),
            Box::new(if q.qtype == QType::A {
                answer(&[LOCAL])
            } else {
                Reply::NoData {
                    soa_ttl: 60,
                    soa_minimum: 60,
                }
            }),
        )
    });
    let urls: Vec<String> = (0..100)
        .map(|i| format!("http://one.test:{}/{i}", http.port()))
        .collect();
    let b = stub(&[dns.addr()]).max_in_flight(100);
    assert!(
        b.fetch_all(urls.clone())
            .all(|(_, r)| r.unwrap().status == 200)
    );
    assert_eq!(
        dns.count_for("one.test", QType::A),
        1,
        "100 requests, one lookup"
    );
    // Cached: a second round asks nothing.
    let b = stub(&[dns.addr()]).max_in_flight(100);
    let mut f: Fetcher<()> = b.build();
    for u in &urls {
        f.start_request(
            u.as_str(),
            |d, _| assert_eq!(d.result.unwrap().status, 200),
            (),
        )
        .unwrap();
    }
    f.finish_all_requests();
    for u in &urls {
        f.start_request(
            u.as_str(),
            |d, _| assert_eq!(d.result.unwrap().status, 200),
            (),
        )
        .unwrap();
    }
    f.finish_all_requests();
    assert_eq!(
        dns.count_for("one.test", QType::A),
        2,
        "one more lookup for the new fetcher, then cached"
    );
}

#[test]
fn nxdomain_servfail_and_no_addresses_are_dns_errors() {
    let dns = FakeDns::start(|q: &Query| match q.name.as_str() {
        "servfail.test" => Reply::ServFail,
        "nodata.test" => Reply::NoData {
            soa_ttl: 60,
            soa_minimum: 30,
        },
        _ => Reply::NxDomain {
            soa_ttl: 60,
            soa_minimum: 30,
        },
    });
    let mut f: Fetcher<()> = stub(&[dns.addr()]).build();
    let cases = [
        ("missing.test", "NXDOMAIN"),
        ("servfail.test", "SERVFAIL"),
        ("nodata.test", "no addresses"),
    ];
    for (host, needle) in cases {
        f.start_request(
            format!("http://{host}/"),
            move |d, _| {
                let e = d.result.unwrap_err();
                assert_eq!(
                    (e.kind(), e.phase()),
                    (ErrorKind::Dns, Phase::Resolve),
                    "{host}"
                );
                assert!(
                    e.message().contains(host) && e.message().contains(needle),
                    "{host}: {e}"
                );
            },
            (),
        )
        .unwrap();
    }
    f.finish_all_requests();
    // Negative answers are cached (RFC 2308): asking again sends nothing new.
    let before = dns.count_for("missing.test", QType::A);
    f.start_request(
        "http://missing.test/",
        |d, _| assert!(d.result.is_err()),
        (),
    )
    .unwrap();
    f.finish_all_requests();
    assert_eq!(dns.count_for("missing.test", QType::A), before);
}

#[test]
fn failover_to_the_next_nameserver() {
    let http = TestServer::start(ok_body(b"x"));
    let bad = FakeDns::start(|_: &Query| Reply::ServFail);
    let silent = FakeDns::start(|_: &Query| Reply::Drop);
    let good = FakeDns::start(zone(&[("fo.test", &[LOCAL], &[])], 60));
    let url = format!("http://fo.test:{}/", http.port());
    let r = get(stub(&[bad.addr(), silent.addr(), good.addr()]), url.clone()).unwrap();
    assert_eq!(r.status, 200);
    assert!(bad.query_count() >= 1 && silent.query_count() >= 1);
    // Every server silent: a dns error saying so, once the tries run out.
    let e = get(stub(&[silent.addr()]), url).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Dns);
    assert!(e.message().contains("no reply"), "{e}");
}

#[test]
fn truncated_udp_reply_falls_back_to_tcp() {
    let http = TestServer::start(ok_body(b"x"));
    let dns = FakeDns::start(|q: &Query| {
        Reply::Truncated(Box::new(if q.qtype == QType::A {
            answer(&[LOCAL])
        } else {
            Reply::NoData {
                soa_ttl: 5,
                soa_minimum: 5,
            }
        }))
    });
    let r = get(
        stub(&[dns.addr()]),
        format!("http://tc.test:{}/", http.port()),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(dns.tcp_query_count() >= 1);
}

#[test]
fn spoofed_and_mismatched_replies_are_ignored() {
    let http = TestServer::start(ok_body(b"x"));
    let port = http.port();
    // A wrong-ID and a wrong-question reply come first; the real one after: it wins.
    let dns = FakeDns::start(|q: &Query| {
        let real = if q.qtype == QType::A {
            answer(&[LOCAL])
        } else {
            Reply::NoData {
                soa_ttl: 5,
                soa_minimum: 5,
            }
        };
        match q.name.as_str() {
            "wrongid.test" => Reply::WrongId(Box::new(real)),
            "wrongq.test" => Reply::WrongQuestion(Box::new(real)),
            "spoof.test" => Reply::FromOtherPort(Box::new(real)),
            _ => Reply::ExtraRecordsForOtherNames {
                v4: vec![LOCAL],
                other: "victim.test".into(),
                other_v4: vec![Ipv4Addr::new(10, 6, 6, 6)],
            },
        }
    });
    for host in ["wrongid.test", "wrongq.test", "poison.test"] {
        let r = get(stub(&[dns.addr()]), format!("http://{host}:{port}/")).unwrap();
        assert_eq!(r.status, 200, "{host}");
    }
    // A reply from another port never reaches the connected socket: the query times out.
    let e = get(stub(&[dns.addr()]), format!("http://spoof.test:{port}/")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Dns, "{e}");
    // The poisoning attempt's extra record was not cached: victim.test is asked for.
    let mut f: Fetcher<()> = stub(&[dns.addr()]).build();
    f.start_request(
        format!("http://poison.test:{port}/"),
        |d, _| assert!(d.result.is_ok()),
        (),
    )
    .unwrap();
    f.finish_all_requests();
    let before = dns.count_for("victim.test", QType::A);
    f.start_request(format!("http://victim.test:{port}/"), |_, _| {}, ())
        .unwrap();
    f.finish_all_requests();
    assert_eq!(dns.count_for("victim.test", QType::A), before + 1);
}

#[test]
fn cname_chains_are_followed_within_a_limit() {
    let http = TestServer::start(ok_body(b"x"));
    let dns = FakeDns::start(|q: &Query| match q.name.as_str() {
        "alias.test" => Reply::Cname {
            target: "real.test".into(),
            then: Box::new(if q.qtype == QType::A {
                answer(&[LOCAL])
            } else {
                Reply::Answer {
                    v4: vec![],
                    v6: vec![],
                    ttl: 5,
                }
            }),
            ttl: 60,
        },
        _ => Reply::CnameChain {
            names: (0..12).map(|i| format!("c{i}.test")).collect(),
        },
    });
    let r = get(
        stub(&[dns.addr()]),
        format!("http://alias.test:{}/", http.port()),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let e = get(
        stub(&[dns.addr()]),
        format!("http://long.test:{}/", http.port()),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Dns, "{e}");
}

#[test]
fn search_list_and_ndots() {
    let http = TestServer::start(ok_body(b"x"));
    let dns = FakeDns::start(zone(&[("intranet.corp.test", &[LOCAL], &[])], 60));
    let b = Fetcher::builder()
        .dns_servers(&[dns.addr()])
        .dns_search(&["corp.test"], 1)
        .dns_timeout(Duration::from_millis(300), 1);
    let r = get(b, format!("http://intranet:{}/", http.port())).unwrap();
    assert_eq!(r.status, 200);
    let names: Vec<String> = dns.queries().iter().map(|q| q.name.clone()).collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("intranet.corp.test"),
        "{names:?}"
    );
}

#[test]
fn ipv6_answers_are_tried_first_and_fall_back_to_ipv4() {
    // The server listens on IPv4 only: ::1 is refused at once, 127.0.0.1 wins.
    let http = TestServer::start(ok_body(b"x"));
    let dns = FakeDns::start(zone(&[("dual.test", &[LOCAL], &[Ipv6Addr::LOCALHOST])], 60));
    let r = get(
        stub(&[dns.addr()]),
        format!("http://dual.test:{}/", http.port()),
    )
    .unwrap();
    assert_eq!(r.remote_addr, http.addr());
}

/// 5,000 names, each fetched twice, 500 in flight, in a child process so the thread count
/// it reads is the fetch's alone (the servers live here, in the parent).
#[test]
fn five_thousand_names_one_thread() {
    if let Ok(spec) = std::env::var("PARAFETCH_DNS_CHILD") {
        return child(&spec);
    }
    let http = TestServer::start(ok_body(b"x"));
    let dns = FakeDns::start(|q: &Query| {
        if q.qtype == QType::A {
            answer(&[LOCAL])
        } else {
            Reply::NoData {
                soa_ttl: 60,
                soa_minimum: 60,
            }
        }
    });
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "five_thousand_names_one_thread",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "PARAFETCH_DNS_CHILD",
            format!("{} {}", dns.addr(), http.port()),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .chain(stderr.lines())
        .find_map(|l| l.find("RESULT ").map(|i| &l[i + 7..]))
        .unwrap_or_else(|| panic!("no result from the child:\n{stdout}\n{stderr}"));
    let nums: Vec<usize> = line
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let (done, once, before, during) = (nums[0], nums[1], nums[2], nums[3]);
    assert_eq!(
        (done, once),
        (10_000, 10_000),
        "every request completes exactly once"
    );
    // libtest runs the test on a thread of its own beside main: `before` counts both. The
    // fetch must add none.
    assert_eq!(during, before, "the fetch started a thread");
    // Coalesced and cached: one A and one AAAA query per name.
    assert_eq!(dns.query_count(), 10_000, "two queries per name");
}

fn child(spec: &str) {
    use std::cell::RefCell;
    use std::rc::Rc;
    let mut parts = spec.split(' ');
    let dns: SocketAddr = parts.next().unwrap().parse().unwrap();
    let port: u16 = parts.next().unwrap().parse().unwrap();
    let threads = || -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status.lines().find(|l| l.starts_with("Threads:")).unwrap()[8..]
            .trim()
            .parse()
            .unwrap()
    };
    let seen = Rc::new(RefCell::new(vec![0u8; 10_000]));
    let before = threads();
    let max_threads = Rc::new(RefCell::new(before));
    let mut f: Fetcher<usize> = stub(&[dns])
        .dns_timeout(Duration::from_secs(5), 2)
        .max_in_flight(500)
        .pool_max_idle(1, 256)
        .build();
    for i in 0..10_000 {
        let (seen, mt) = (seen.clone(), max_threads.clone());
        let url = format!("http://name{}.test:{port}/", i % 5000);
        f.start_request(
            url,
            move |d, _| {
                assert!(d.result.is_ok(), "{}: {:?}", d.url, d.result.err());
                seen.borrow_mut()[d.cookie] += 1;
                let t = threads();
                let mut m = mt.borrow_mut();
                *m = (*m).max(t);
            },
            i,
        )
        .unwrap();
    }
    f.finish_all_requests();
    let seen = seen.borrow();
    let done: usize = seen.iter().map(|&c| c as usize).sum();
    let once = seen.iter().filter(|&&c| c == 1).count();
    println!("RESULT {done} {once} {before} {}", max_threads.borrow());
}

/// The opt-in system resolver (getaddrinfo on a helper thread) resolves what the system
/// knows; here a loopback name from /etc/hosts, when the machine has one besides localhost.
#[test]
fn system_resolver_is_an_opt_in() {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let name = hosts.lines().find_map(|l| {
        let mut words = l.split('#').next()?.split_whitespace();
        let ip: std::net::IpAddr = words.next()?.parse().ok()?;
        let name = words.find(|w| !w.contains("localhost"))?;
        (ip == std::net::IpAddr::V4(LOCAL)).then(|| name.to_owned())
    });
    let Some(name) = name else {
        eprintln!("no loopback name besides localhost in /etc/hosts: skipping");
        return;
    };
    let http = TestServer::start(ok_body(b"sys"));
    let b = Fetcher::builder().system_resolver(1);
    let r = get(b, format!("http://{name}:{}/", http.port())).unwrap();
    assert_eq!((r.status, r.remote_addr), (200, http.addr()));
}

/// A nameserver that cannot even be sent to fails the lookup inside the call that starts
/// it; the request must still complete, not wait for an event that never comes.
#[test]
fn unreachable_nameserver_fails_without_stalling() {
    // Connecting a UDP socket to the broadcast address without SO_BROADCAST is refused
    // (EACCES) by the kernel at once: nothing is sent anywhere.
    let dead: SocketAddr = "255.255.255.255:53".parse().unwrap();
    // A stalled loop would only wake at the connect deadline: make that far away.
    let b = stub(&[dead]).connect_timeout(Duration::from_secs(120));
    let started = std::time::Instant::now();
    let e = get(b, "http://nowhere.test/".into()).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the loop slept on a finished lookup"
    );
    assert!(e.message().contains("cannot reach nameserver"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Dns, "{e}");
}

/// `host.test.` and `host.test` are one name: one lookup, and both resolve.
#[test]
fn trailing_dot_names_resolve() {
    let http = TestServer::start(ok_body(b"dot"));
    let dns = FakeDns::start(zone(&[("dot.test", &[LOCAL], &[])], 60));
    let mut f: Fetcher<()> = stub(&[dns.addr()]).build();
    for host in ["dot.test.", "dot.test", "DOT.test."] {
        let url = format!("http://{host}:{}/", http.port());
        f.start_request(url, |d, _| assert_eq!(d.result.unwrap().status, 200), ())
            .unwrap();
    }
    f.finish_all_requests();
    assert_eq!(dns.count_for("dot.test", QType::A), 1);
}
