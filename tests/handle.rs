//! The thread-safe handle and its shards (`Builder::spawn`, `threads`): exactly one
//! callback per accepted request from many producer threads, the backlog bound, routing by
//! host, the shared in-flight budget, caps and rates held across loops, panics resumed in
//! the waiting thread, shutdown.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use parafetch::{Done, ErrorKind, Fetcher, SendQueue, SubmitError};
use parafetch_test_support::http::{Conn, TestServer};

fn ok_server(ip: [u8; 4]) -> TestServer {
    TestServer::start_on(IpAddr::V4(Ipv4Addr::from(ip)), |c: &mut Conn| {
        c.serve_keep_alive(|_, c| c.respond(200, &[], b"ok"))
    })
}

fn builder() -> parafetch::Builder {
    Fetcher::builder().proxy_from_env(false)
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

#[test]
fn every_submitted_request_is_called_back_once_from_many_producers() {
    let servers: Vec<TestServer> = (1..=4).map(|i| ok_server([127, 0, 0, i])).collect();
    let handle = builder()
        .max_in_flight(8)
        .threads(2)
        .spawn::<usize>()
        .unwrap();
    const PRODUCERS: usize = 4;
    const EACH: usize = 250;
    let calls: Arc<Vec<AtomicUsize>> =
        Arc::new((0..PRODUCERS * EACH).map(|_| AtomicUsize::new(0)).collect());
    let threads_seen = Arc::new(Mutex::new(HashSet::new()));
    let peak = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for p in 0..PRODUCERS {
            let (handle, calls, seen, servers, peak) =
                (handle.clone(), &calls, &threads_seen, &servers, &peak);
            s.spawn(move || {
                for i in 0..EACH {
                    let id = p * EACH + i;
                    let url = servers[id % servers.len()].url(&format!("/{id}"));
                    let (calls, seen) = (Arc::clone(calls), Arc::clone(seen));
                    let on_done = move |done: Done<usize>, _: &mut SendQueue<usize>| {
                        assert_eq!(done.result.expect("fetched").status, 200);
                        calls[done.cookie].fetch_add(1, SeqCst);
                        seen.lock().unwrap().insert(thread_name());
                    };
                    handle.submit(url, on_done, id).unwrap();
                    peak.fetch_max(handle.pending(), SeqCst);
                }
            });
        }
    });
    handle.finish_all_requests();
    assert!(
        calls.iter().all(|c| c.load(SeqCst) == 1),
        "one callback each"
    );
    // The backlog bound: max_in_flight + backlog (0).
    assert!(
        peak.load(SeqCst) <= 8,
        "pending peaked at {}",
        peak.load(SeqCst)
    );
    let seen = threads_seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        HashSet::from(["parafetch-0".to_owned(), "parafetch-1".to_owned()]),
        "callbacks run on the two loop threads, both used"
    );
    let served: usize = servers.iter().map(|s| s.request_count()).sum();
    assert_eq!(served, PRODUCERS * EACH);
    handle.shutdown();
}

#[test]
fn one_hosts_requests_and_follow_ups_stay_on_one_loop() {
    let servers: Vec<TestServer> = (1..=6).map(|i| ok_server([127, 0, 0, i])).collect();
    let handle = builder()
        .max_in_flight(6)
        .threads(2)
        .spawn::<usize>()
        .unwrap();
    let by_host: Arc<Mutex<HashMap<String, HashSet<String>>>> = Arc::default();
    let urls: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| s.url("/")).collect());

    fn on_done(
        by_host: Arc<Mutex<HashMap<String, HashSet<String>>>>,
        urls: Arc<Vec<String>>,
    ) -> impl FnOnce(Done<usize>, &mut SendQueue<usize>) + Send + 'static {
        move |done, queue| {
            let host = done
                .result
                .expect("fetched")
                .url
                .host_str()
                .unwrap()
                .to_owned();
            by_host
                .lock()
                .unwrap()
                .entry(host)
                .or_default()
                .insert(thread_name());
            // Each answer queues one follow-up to the next host, 3 hops deep.
            if done.cookie < 3 {
                let next = &urls[(done.cookie + 1) % urls.len()];
                let cb = on_done(Arc::clone(&by_host), Arc::clone(&urls));
                queue
                    .start_request(next.as_str(), cb, done.cookie + 1)
                    .unwrap();
            }
        }
    }
    for (i, url) in urls.iter().enumerate() {
        let cb = on_done(Arc::clone(&by_host), Arc::clone(&urls));
        handle.submit(url.as_str(), cb, i % 2).unwrap();
    }
    handle.finish_all_requests();
    let by_host = by_host.lock().unwrap();
    assert_eq!(by_host.len(), 6);
    for (host, threads) in by_host.iter() {
        assert_eq!(threads.len(), 1, "{host} ran on {threads:?}");
    }
    let loops: HashSet<_> = by_host.values().flatten().collect();
    assert_eq!(
        loops.len(),
        2,
        "six hosts spread over both loops: {by_host:?}"
    );
}

/// A server on one address, answering only once `n` requests are in its handlers at
/// once (or after 10 s), so the concurrency it saw is what the client allowed, not a race.
fn gathering_server(n: usize) -> (TestServer, Arc<AtomicUsize>) {
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (i, p) = (Arc::clone(&inside), Arc::clone(&peak));
    let s = TestServer::start(move |c: &mut Conn| {
        let (inside, peak) = (Arc::clone(&i), Arc::clone(&p));
        c.serve_keep_alive(move |_, c| {
            let now = inside.fetch_add(1, SeqCst) + 1;
            peak.fetch_max(now, SeqCst);
            let until = Instant::now() + Duration::from_secs(10);
            while peak.load(SeqCst) < n && Instant::now() < until {
                std::thread::yield_now();
            }
            inside.fetch_sub(1, SeqCst);
            c.respond(200, &[], b"ok")
        })
    });
    (s, peak)
}

#[test]
fn the_in_flight_cap_is_global_and_one_loop_may_use_all_of_it() {
    // Eight names for one server: spread over two loops, never more than 4 at once in all.
    let (s, peak) = gathering_server(4);
    let addr: SocketAddr = s.addr();
    let mut b = builder().max_in_flight(4).threads(2);
    let names: Vec<String> = (0..8).map(|i| format!("h{i}.test")).collect();
    for n in &names {
        b = b.resolve(n, addr.port(), &[addr]);
    }
    let urls: Vec<String> = (0..40)
        .map(|i| format!("http://{}:{}/{i}", names[i % 8], addr.port()))
        .collect();
    let mut n = 0;
    for (url, r) in b.fetch_all(urls) {
        assert_eq!(r.unwrap_or_else(|e| panic!("{url}: {e:#}")).status, 200);
        n += 1;
    }
    assert_eq!(n, 40);
    assert_eq!(peak.load(SeqCst), 4, "the cap is reached and never passed");

    // One host, so one loop has all the work: it may use the whole cap.
    let (s, peak) = gathering_server(4);
    let urls: Vec<String> = (0..12).map(|i| s.url(&format!("/{i}"))).collect();
    let results = builder()
        .max_in_flight(4)
        .threads(2)
        .fetch_all(urls)
        .count();
    assert_eq!(results, 12);
    assert_eq!(peak.load(SeqCst), 4, "one loop used the whole cap");
}

#[test]
fn per_host_caps_and_rates_hold_across_loops() {
    let servers: Vec<TestServer> = (1..=4)
        .map(|i| {
            TestServer::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)), |c: &mut Conn| {
                c.serve_keep_alive(|_, c| {
                    // Held a little, so that a cap of 2 is tested with requests waiting.
                    std::thread::sleep(Duration::from_millis(20));
                    c.respond(200, &[], b"ok")
                })
            })
        })
        .collect();
    let urls: Vec<String> = (0..40)
        .map(|i| servers[i % 4].url(&format!("/{i}")))
        .collect();
    let all = builder()
        .max_in_flight(16)
        .per_host(2)
        .threads(2)
        .fetch_all(urls.clone());
    assert!(all.map(|(_, r)| r.unwrap().status).all(|s| s == 200));
    for s in &servers {
        assert_eq!(s.request_count(), 10);
        assert!(
            s.in_handler_peak() <= 2,
            "per-host cap: {}",
            s.in_handler_peak()
        );
    }

    // A host rate of 20/s (one token, no burst) and a fetcher rate of 40/s across loops.
    for s in &servers {
        s.reset_peak();
    }
    let before: Vec<usize> = servers.iter().map(|s| s.requests().len()).collect();
    let all = builder()
        .max_in_flight(16)
        .host_rate(20.0, 1)
        .rate(40.0)
        .threads(2)
        .fetch_all(urls);
    assert!(all.map(|(_, r)| r.unwrap().status).all(|s| s == 200));
    let mut every = Vec::new();
    for (s, skip) in servers.iter().zip(before) {
        let mut at: Vec<Instant> = s.requests()[skip..].iter().map(|r| r.received_at).collect();
        at.sort();
        for w in at.windows(2) {
            assert!(
                w[1] - w[0] >= Duration::from_millis(45),
                "host gap {:?}",
                w[1] - w[0]
            );
        }
        every.extend(at);
    }
    every.sort();
    assert_eq!(every.len(), 40);
    // The fetcher's rate is one bucket shared by both loops: 40 requests at 40/s, the
    // first at once, take at least 39 / 40 s (less 10% for two threads' clocks).
    let span = *every.last().unwrap() - every[0];
    assert!(
        span >= Duration::from_millis(877),
        "40 requests at 40/s in {span:?}"
    );
}

#[test]
fn a_panicking_callback_resumes_in_the_waiting_thread_and_the_rest_complete() {
    let s = ok_server([127, 0, 0, 1]);
    let handle = builder()
        .max_in_flight(4)
        .threads(2)
        .spawn::<usize>()
        .unwrap();
    let called = Arc::new(AtomicUsize::new(0));
    for i in 0..20 {
        let called = Arc::clone(&called);
        let on_done = move |done: Done<usize>, q: &mut SendQueue<usize>| {
            if done.cookie == 7 {
                // Queued, then the callback panics: the follow-up is dropped with it.
                q.start_request("http://127.0.0.1:1/never", |_, _| unreachable!(), 0)
                    .unwrap();
                panic!("callback 7 failed");
            }
            called.fetch_add(1, SeqCst);
        };
        handle.submit(s.url(&format!("/{i}")), on_done, i).unwrap();
    }
    let caught = panic::catch_unwind(AssertUnwindSafe(|| handle.finish_all_requests()));
    let payload = caught.expect_err("the callback's panic resumes here");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"callback 7 failed"));
    assert_eq!(called.load(SeqCst), 19);
    assert_eq!(handle.pending(), 0);
    // The loops still run.
    assert_eq!(handle.fetch(s.url("/after")).wait().unwrap().status, 200);
    handle.shutdown();
    assert_eq!(s.request_count(), 21);
}

#[test]
fn try_submit_hands_the_request_back_when_the_backlog_is_full() {
    let release = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&release);
    let s = TestServer::start(move |c: &mut Conn| {
        let r = Arc::clone(&r);
        c.serve_keep_alive(move |_, c| {
            let until = Instant::now() + Duration::from_secs(10);
            while !r.load(SeqCst) && Instant::now() < until {
                std::thread::yield_now();
            }
            c.respond(200, &[], b"ok")
        })
    });
    let handle = builder()
        .max_in_flight(1)
        .backlog(1)
        .spawn::<u32>()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let cb = |tx: mpsc::Sender<u32>| {
        move |done: Done<u32>, _: &mut SendQueue<u32>| {
            tx.send(done.cookie).unwrap();
        }
    };
    handle.try_submit(s.url("/1"), cb(tx.clone()), 1).unwrap();
    handle.try_submit(s.url("/2"), cb(tx.clone()), 2).unwrap();
    match handle.try_submit(s.url("/3"), cb(tx.clone()), 3) {
        Err(SubmitError::Full(back)) => {
            assert_eq!(back.request.url(), s.url("/3"));
            assert_eq!(back.cookie, 3);
        }
        other => panic!("expected Full, got {other:?}"),
    }
    let t = Instant::now();
    let e = handle
        .submit_timeout(s.url("/4"), cb(tx.clone()), 4, Duration::from_millis(100))
        .unwrap_err();
    assert!(matches!(e, SubmitError::Full(_)), "{e:?}");
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert_eq!(e.into_error().kind(), ErrorKind::QueueFull);
    // A malformed URL is refused at once, whatever the room.
    let e = handle
        .try_submit("not a url", cb(tx.clone()), 5)
        .unwrap_err();
    assert!(matches!(e, SubmitError::Invalid(ref e) if e.kind() == ErrorKind::InvalidUrl));
    release.store(true, SeqCst);
    // `submit` waits for room instead.
    handle.submit(s.url("/6"), cb(tx.clone()), 6).unwrap();
    drop(tx);
    handle.shutdown();
    let mut got: Vec<u32> = rx.iter().collect();
    got.sort();
    assert_eq!(got, [1, 2, 6]);
}

#[test]
fn shutdown_drains_and_refuses_new_work() {
    let s = ok_server([127, 0, 0, 1]);
    let handle = builder().max_in_flight(2).spawn::<u32>().unwrap();
    let other = handle.clone();
    let called = Arc::new(AtomicUsize::new(0));
    for i in 0..10 {
        let c = Arc::clone(&called);
        handle
            .submit(
                s.url(&format!("/{i}")),
                move |_, _| {
                    c.fetch_add(1, SeqCst);
                },
                i,
            )
            .unwrap();
    }
    handle.shutdown();
    assert_eq!(
        called.load(SeqCst),
        10,
        "every accepted request was called back"
    );
    let e = other
        .submit(s.url("/late"), |_, _| unreachable!(), 0)
        .unwrap_err();
    assert!(matches!(e, SubmitError::ShutDown(_)), "{e:?}");
    assert_eq!(
        other.fetch(s.url("/late")).wait().unwrap_err().kind(),
        ErrorKind::ShutDown
    );
    assert_eq!(s.request_count(), 10);
}

#[test]
fn dropping_the_last_handle_waits_for_every_request() {
    let s = ok_server([127, 0, 0, 1]);
    let called = Arc::new(AtomicUsize::new(0));
    let handle = builder()
        .max_in_flight(3)
        .threads(2)
        .spawn::<u32>()
        .unwrap();
    let producers: Vec<_> = (0..3)
        .map(|t| {
            let (h, c) = (handle.clone(), Arc::clone(&called));
            let urls: Vec<String> = (0..10).map(|i| s.url(&format!("/{t}/{i}"))).collect();
            std::thread::spawn(move || {
                for (i, url) in urls.into_iter().enumerate() {
                    let c = Arc::clone(&c);
                    h.submit(
                        url,
                        move |_, _| {
                            c.fetch_add(1, SeqCst);
                        },
                        i as u32,
                    )
                    .unwrap();
                }
                // This clone is dropped here, with requests still running.
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    drop(handle); // the last clone: waits
    assert_eq!(called.load(SeqCst), 30);
    assert_eq!(s.request_count(), 30);
}

#[test]
fn fetch_waits_for_one_answer_without_a_callback() {
    let s = ok_server([127, 0, 0, 1]);
    let handle = builder().spawn::<()>().unwrap();
    let pending: Vec<_> = (0..5)
        .map(|i| handle.fetch(s.url(&format!("/{i}"))))
        .collect();
    for p in pending {
        let r = p.wait().unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
    }
    let e = handle.fetch("ftp://example.com/").wait().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnsupportedScheme);
}

#[test]
fn a_callback_never_waits_for_room_on_its_own_loop() {
    let s = ok_server([127, 0, 0, 1]);
    let handle = builder().max_in_flight(1).spawn::<u32>().unwrap();
    let (tx, rx) = mpsc::channel();
    let inner = handle.clone();
    let on_done = move |_: Done<u32>, _: &mut SendQueue<u32>| {
        // The backlog is full while this callback runs (this request is still held): a
        // waiting submit would wait for itself.
        let r = inner.submit("http://127.0.0.1:9/x", |_, _| {}, 0);
        tx.send(matches!(r, Err(SubmitError::Full(_)))).unwrap();
    };
    handle.submit(s.url("/"), on_done, 0).unwrap();
    assert!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "Full, not a deadlock"
    );
    handle.shutdown();
}

#[test]
fn build_refuses_threads_and_says_to_spawn() {
    let e = builder().threads(2).try_build::<()>().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.to_string().contains("spawn"), "{e}");
}

/// A server that holds `/slow` until `release` is set (or 20 s pass), answers the rest.
fn holding_server(release: &Arc<AtomicBool>) -> TestServer {
    let r = Arc::clone(release);
    TestServer::start(move |c: &mut Conn| {
        let r = Arc::clone(&r);
        c.serve_keep_alive(move |req, c| {
            if req.target.starts_with("/slow") {
                let until = Instant::now() + Duration::from_secs(20);
                while !r.load(SeqCst) && Instant::now() < until {
                    std::thread::yield_now();
                }
            }
            c.respond(200, &[], b"ok")
        })
    })
}

#[test]
fn a_panicking_body_sink_fails_its_request_and_resumes_in_the_waiting_thread() {
    let s = ok_server([127, 0, 0, 1]);
    let handle = builder().threads(2).spawn::<u32>().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    let sinking = parafetch::Request::get(s.url("/a")).on_body(|_| panic!("sink failed"));
    handle
        .submit(
            sinking,
            move |d, _| tx.send((1, d.result.map(|r| r.status))).unwrap(),
            1,
        )
        .unwrap();
    handle
        .submit(
            s.url("/b"),
            move |d, _| tx2.send((2, d.result.map(|r| r.status))).unwrap(),
            2,
        )
        .unwrap();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| handle.finish_all_requests()));
    let payload = caught.expect_err("the sink's panic resumes here");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"sink failed"));
    let mut got: Vec<_> = rx.try_iter().collect();
    got.sort_by_key(|(i, _)| *i);
    assert_eq!(got.len(), 2, "both called back: {got:?}");
    let e = got[0].1.as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("sink panicked"), "{e}");
    assert_eq!(got[1].1.as_ref().unwrap(), &200);
    // The loops go on.
    assert_eq!(handle.fetch(s.url("/after")).wait().unwrap().status, 200);
}

#[test]
fn the_last_clone_dropped_in_a_callback_closes_the_fetcher() {
    let release = Arc::new(AtomicBool::new(false));
    let s = holding_server(&release);
    let handle = builder().threads(2).spawn::<()>().unwrap();
    let (tx, rx) = mpsc::channel();
    let inner = handle.clone();
    let on_done = move |_: Done<()>, _: &mut SendQueue<()>| {
        drop(inner); // the last clone, dropped on a loop thread: it must not wait there
        tx.send(()).unwrap();
    };
    handle.submit(s.url("/slow"), on_done, ()).unwrap();
    drop(handle); // not the last clone: returns at once
    release.store(true, SeqCst);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the callback ran to its end");
    // The fetcher closed and its loops ended: their pooled connections are gone.
    assert!(
        s.wait_for_open_connections(0, Duration::from_secs(10)),
        "the loops still hold connections"
    );
}

#[test]
fn questions_after_shutdown_or_from_a_callback_do_not_hang() {
    let s = ok_server([127, 0, 0, 1]);
    let handle = builder().threads(2).spawn::<()>().unwrap();
    let inner = handle.clone();
    handle
        .submit(
            s.url("/"),
            move |_, _| {
                inner.polite_stats();
            },
            (),
        )
        .unwrap();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| handle.finish_all_requests()));
    let payload = caught.expect_err("asking from a callback panics, not deadlocks");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(msg.contains("own loop"), "{msg}");
    handle.shutdown();
    assert_eq!(handle.polite_stats(), parafetch::PoliteStats::default());
}

#[test]
fn raising_the_cap_lets_a_waiting_producer_in() {
    let release = Arc::new(AtomicBool::new(false));
    let s = holding_server(&release);
    let handle = builder().max_in_flight(1).spawn::<()>().unwrap();
    handle.submit(s.url("/slow"), |_, _| {}, ()).unwrap();
    let (h, url) = (handle.clone(), s.url("/fast"));
    let (tx, rx) = mpsc::channel();
    let producer = std::thread::Builder::new()
        .name("blocked-producr".into())
        .spawn(move || {
            h.submit(url, |_, _| {}, ()).unwrap();
            tx.send(()).unwrap();
        })
        .unwrap();
    // Wait until the producer sleeps in submit (the backlog is full).
    let until = Instant::now() + Duration::from_secs(10);
    while !thread_sleeps("blocked-producr") {
        assert!(Instant::now() < until, "the producer never waited");
        std::thread::yield_now();
    }
    handle.set_max_in_flight(4);
    // In, while /slow is still held.
    rx.recv_timeout(Duration::from_secs(10))
        .expect("submit returned after the raise");
    assert!(!release.load(SeqCst));
    release.store(true, SeqCst);
    producer.join().unwrap();
    handle.shutdown();
}

/// Whether this process's thread named `name` is asleep (state `S` in its stat).
fn thread_sleeps(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .any(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // The state follows the parenthesised name.
            let state = stat.rsplit_once(") ").map(|(_, r)| r.starts_with('S'));
            comm.trim() == name && state == Some(true)
        })
}

#[test]
fn dropping_a_threaded_fetch_all_midway_does_not_wait_for_the_rest() {
    let release = Arc::new(AtomicBool::new(false));
    let s = holding_server(&release);
    let mut urls = vec![s.url("/fast")];
    urls.extend((0..3).map(|i| s.url(&format!("/slow/{i}"))));
    let mut it = builder().max_in_flight(4).threads(2).fetch_all(urls);
    assert!(it.next().unwrap().0.ends_with("/fast"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(it);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the drop returned while three requests are still held");
    release.store(true, SeqCst);
}

#[test]
fn debug_output_hides_a_password_in_the_url() {
    let handle = builder().max_in_flight(1).spawn::<()>().unwrap();
    handle.shutdown();
    let e = handle
        .try_submit("http://user:hunter2@127.0.0.1:9/", |_, _| {}, ())
        .unwrap_err();
    let shown = format!("{e:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("user:***@"),
        "{shown}"
    );
    let e = handle
        .try_submit("http://ghp_t0ken@127.0.0.1:9/", |_, _| {}, ())
        .unwrap_err();
    let shown = format!("{e:?}");
    assert!(
        !shown.contains("t0ken") && shown.contains("http://***@127.0.0.1:9/"),
        "{shown}"
    );
}

#[test]
fn a_fetchers_panicking_sink_resumes_in_its_caller_after_the_turns_callbacks() {
    let s = ok_server([127, 0, 0, 1]);
    let called = std::rc::Rc::new(std::cell::Cell::new(0));
    let mut fetcher: Fetcher<()> = builder().max_in_flight(1).build();
    let c = std::rc::Rc::clone(&called);
    let sinking = parafetch::Request::get(s.url("/a")).on_body(|_| panic!("sink failed"));
    fetcher
        .start_request(
            sinking,
            move |d, _| {
                assert!(d.result.unwrap_err().to_string().contains("sink panicked"));
                c.set(c.get() + 1);
            },
            (),
        )
        .unwrap();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| fetcher.finish_all_requests()));
    assert_eq!(
        caught.expect_err("resumed").downcast_ref::<&str>(),
        Some(&"sink failed")
    );
    assert_eq!(called.get(), 1, "its callback ran first, with the error");
    // The fetcher is whole: it goes on.
    let c = std::rc::Rc::clone(&called);
    fetcher
        .start_request(
            s.url("/b"),
            move |d, _| {
                assert_eq!(d.result.unwrap().status, 200);
                c.set(c.get() + 1);
            },
            (),
        )
        .unwrap();
    fetcher.finish_all_requests();
    assert_eq!(called.get(), 2);
}

#[test]
fn host_delays_and_robots_txt_stay_per_host_across_loops() {
    let servers: Vec<TestServer> = (1..=4)
        .map(|i| {
            TestServer::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)), |c: &mut Conn| {
                c.serve_keep_alive(|r, c| {
                    if r.target == "/robots.txt" {
                        c.respond(200, &[], b"User-agent: *\nDisallow: /private\n")
                    } else {
                        c.respond(200, &[], b"ok")
                    }
                })
            })
        })
        .collect();
    let mut urls: Vec<String> = (0..24)
        .map(|i| servers[i % 4].url(&format!("/{i}")))
        .collect();
    urls.extend(servers.iter().map(|s| s.url("/private/x")));
    let results: Vec<_> = builder()
        .max_in_flight(16)
        .host_delay(Duration::from_millis(50))
        .obey_robots(true)
        .threads(2)
        .fetch_all(urls)
        .collect();
    assert_eq!(results.len(), 28);
    for (url, r) in &results {
        if url.contains("/private/") {
            assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::Robots, "{url}");
        } else {
            assert_eq!(r.as_ref().unwrap().status, 200, "{url}");
        }
    }
    for s in &servers {
        let reqs = s.requests();
        let robots = reqs.iter().filter(|r| r.target == "/robots.txt").count();
        assert_eq!(
            robots, 1,
            "robots.txt fetched once per host, on its one loop"
        );
        let mut at: Vec<Instant> = reqs.iter().map(|r| r.received_at).collect();
        at.sort();
        for w in at.windows(2) {
            assert!(
                w[1] - w[0] >= Duration::from_millis(45),
                "host gap {:?}",
                w[1] - w[0]
            );
        }
        assert_eq!(
            reqs.len(),
            1 + 6,
            "robots.txt and six pages; /private never"
        );
    }
}

#[test]
fn a_malformed_proxy_is_refused_at_submit() {
    let handle = builder().spawn::<()>().unwrap();
    let req = parafetch::Request::get("http://127.0.0.1:9/").proxy("socks9://nowhere");
    let e = handle.try_submit(req, |_, _| {}, ()).unwrap_err();
    assert!(
        matches!(e, SubmitError::Invalid(ref e) if e.kind() == ErrorKind::Proxy),
        "{e:?}"
    );
    assert_eq!(handle.pending(), 0);
}

#[test]
fn a_send_fetcher_moves_between_threads_with_its_requests() {
    fn is_send<T: Send>(_: &T) {}
    let s = ok_server([127, 0, 0, 1]);
    let mut fetcher = builder().max_in_flight(2).build_send::<u32>();
    is_send(&fetcher);
    let called = Arc::new(AtomicUsize::new(0));
    let follow = s.url("/follow");
    for i in 0..4 {
        let (c, follow) = (Arc::clone(&called), follow.clone());
        let on_done = move |done: Done<u32>, q: &mut SendQueue<u32>| {
            assert_eq!(done.result.unwrap().status, 200);
            c.fetch_add(1, SeqCst);
            if done.cookie == 0 {
                let c = Arc::clone(&c);
                q.start_request(
                    follow,
                    move |_, _| {
                        c.fetch_add(1, SeqCst);
                    },
                    9,
                )
                .unwrap();
            }
        };
        fetcher
            .start_request(s.url(&format!("/{i}")), on_done, i)
            .unwrap();
    }
    // Requests in flight, the fetcher goes to another thread, which finishes them.
    let driver = std::thread::spawn(move || {
        fetcher.finish_all_requests();
        fetcher
    });
    let fetcher = driver.join().unwrap();
    assert_eq!(called.load(SeqCst), 5, "four and the follow-up, each once");
    assert_eq!(fetcher.pending(), 0);
    assert_eq!(s.request_count(), 5);
}

#[test]
fn abort_calls_back_everything_held_at_once_and_refuses_follow_ups() {
    // The server never answers: only abort can end these requests.
    let s = TestServer::start(parafetch_test_support::http::never_answer());
    let handle = builder()
        .max_in_flight(4)
        .backlog(16)
        .threads(2)
        .spawn::<u32>()
        .unwrap();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    for i in 0..20 {
        let outcomes = Arc::clone(&outcomes);
        let on_done = move |done: Done<u32>, q: &mut SendQueue<u32>| {
            let kind = done.result.unwrap_err().kind();
            let refused = q.start_request("http://127.0.0.1:1/next", |_, _| unreachable!(), 0);
            outcomes
                .lock()
                .unwrap()
                .push((done.cookie, kind, refused.unwrap_err().kind()));
        };
        handle.submit(s.url(&format!("/{i}")), on_done, i).unwrap();
    }
    assert!(
        s.wait_for_accepts(4, Duration::from_secs(10)),
        "four requests in flight"
    );
    handle.abort();
    let late = handle.try_submit(s.url("/late"), |_, _| unreachable!(), 99);
    assert!(matches!(late, Err(SubmitError::ShutDown(_))), "{late:?}");
    // Returns once the loops have called back: nothing is fetched any more.
    handle.shutdown();
    let mut got = outcomes.lock().unwrap().clone();
    got.sort_by_key(|g| g.0);
    let want: Vec<_> = (0..20)
        .map(|i| (i, ErrorKind::ShutDown, ErrorKind::ShutDown))
        .collect();
    assert_eq!(got, want, "each request called back once, with ShutDown");
    assert_eq!(handle.pending(), 0);
    assert_eq!(s.accepts(), 4, "the queued requests were never started");
}

#[test]
fn a_fetchers_abort_calls_back_what_it_holds_and_takes_no_more() {
    let s = TestServer::start(parafetch_test_support::http::never_answer());
    let mut fetcher = builder().max_in_flight(2).backlog(3).build_send::<u32>();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    for i in 0..5 {
        let outcomes = Arc::clone(&outcomes);
        let on_done = move |done: Done<u32>, q: &mut SendQueue<u32>| {
            let refused = q.start_request("http://127.0.0.1:1/next", |_, _| unreachable!(), 0);
            let kind = done.result.unwrap_err().kind();
            let refused = refused.unwrap_err().kind();
            outcomes.lock().unwrap().push((done.cookie, kind, refused));
        };
        fetcher
            .start_request(s.url(&format!("/{i}")), on_done, i)
            .unwrap();
    }
    let until = Instant::now() + Duration::from_secs(10);
    while s.accepts() < 2 {
        assert!(Instant::now() < until, "two requests in flight");
        fetcher.poll(Some(Duration::from_millis(50)));
    }
    fetcher.abort();
    let mut got = outcomes.lock().unwrap().clone();
    got.sort_by_key(|g| g.0);
    let want: Vec<_> = (0..5)
        .map(|i| (i, ErrorKind::ShutDown, ErrorKind::ShutDown))
        .collect();
    assert_eq!(got, want, "each request called back once, with ShutDown");
    assert_eq!(fetcher.pending(), 0);
    let late = fetcher.start_request(s.url("/late"), |_, _| unreachable!(), 9);
    assert_eq!(late.unwrap_err().kind(), ErrorKind::ShutDown);
    drop(fetcher);
    assert_eq!(s.accepts(), 2, "the queued requests were never started");
}
