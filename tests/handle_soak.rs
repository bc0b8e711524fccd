//! The handle under load, alone in its test binary so that it can count the process's
//! threads: 8 producer threads submit 100,000 requests (`HANDLE_SOAK_REQUESTS`) through
//! handles to a 2-loop fetcher, over 8 host names served by one server.
//!
//! Asserts: exactly one callback per request; the backlog bound (requests held never
//! exceed `max_in_flight + backlog`) and so memory that stops growing; exactly 2 fetch
//! threads while it runs, and none after `shutdown`, which joins them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::time::Instant;

use parafetch::{Done, Fetcher, SendQueue};
use parafetch_test_support::bench_server::Server;
use parafetch_test_support::process::proc_status_kb;

const PRODUCERS: usize = 8;
const IN_FLIGHT: usize = 64;
const BACKLOG: usize = 192;

/// Threads of this process, and those named as a loop of a fetcher (`parafetch-N`).
fn threads() -> (usize, usize) {
    let mut all = 0;
    let mut loops = 0;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        all += 1;
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("parafetch-") {
            loops += 1;
        }
    }
    (all, loops)
}

#[test]
fn eight_producers_two_loops_every_request_once_bounded() {
    let total: usize = std::env::var("HANDLE_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let server = Server::start(
        vec![("/k".to_owned(), vec![b'x'; 1024])],
        Default::default(),
    )
    .expect("bench server");
    let addr: SocketAddr = server
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("h{i}.test")).collect();
    let mut b = Fetcher::builder()
        .proxy_from_env(false)
        .max_in_flight(IN_FLIGHT)
        .backlog(BACKLOG)
        .threads(2);
    for n in &names {
        b = b.resolve(n, addr.port(), &[addr]);
    }
    let (threads_before, loops_before) = threads();
    assert_eq!(loops_before, 0);
    let handle = b.spawn::<usize>().unwrap();

    let calls: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
    let finished = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    // VmRSS (KiB) at each tenth of the run, and the thread counts at the half.
    let rss: Arc<Mutex<Vec<u64>>> = Arc::default();
    let at_half: Arc<Mutex<Option<(usize, usize)>>> = Arc::default();
    let peak_held = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for p in 0..PRODUCERS {
            let handle = handle.clone();
            let (calls, finished, failed, rss, at_half, peak_held, names) = (
                &calls, &finished, &failed, &rss, &at_half, &peak_held, &names,
            );
            s.spawn(move || {
                for id in (p..total).step_by(PRODUCERS) {
                    let url = format!("http://{}:{}/k", names[id % names.len()], addr.port());
                    let (calls, finished, failed, rss, at_half) = (
                        Arc::clone(calls),
                        Arc::clone(finished),
                        Arc::clone(failed),
                        Arc::clone(rss),
                        Arc::clone(at_half),
                    );
                    let on_done = move |done: Done<usize>, _: &mut SendQueue<usize>| {
                        match done.result {
                            Ok(r) if r.status == 200 && r.body.len() == 1024 => {}
                            _ => {
                                failed.fetch_add(1, SeqCst);
                            }
                        }
                        calls[done.cookie].fetch_add(1, SeqCst);
                        let n = finished.fetch_add(1, SeqCst) + 1;
                        if n % (total / 10).max(1) == 0 {
                            rss.lock().unwrap().push(proc_status_kb("VmRSS"));
                        }
                        if n == total / 2 {
                            *at_half.lock().unwrap() = Some(threads());
                        }
                    };
                    handle.submit(url, on_done, id).expect("accepted");
                    peak_held.fetch_max(handle.pending(), SeqCst);
                }
            });
        }
    });
    handle.finish_all_requests();
    let elapsed = started.elapsed();

    let once = calls.iter().filter(|c| c.load(SeqCst) == 1).count();
    assert_eq!(once, total, "every request called back exactly once");
    assert_eq!(failed.load(SeqCst), 0);
    let peak = peak_held.load(SeqCst);
    assert!(peak <= IN_FLIGHT + BACKLOG, "held peaked at {peak}");

    let (all, loops) = at_half.lock().unwrap().expect("sampled at the half");
    assert_eq!(loops, 2, "two fetch threads");
    assert!(
        all <= threads_before + 2 + PRODUCERS,
        "{all} threads: {threads_before} before, 2 loops, {PRODUCERS} producers at most"
    );

    let rss = rss.lock().unwrap().clone();
    eprintln!(
        "{total} requests, 8 producers, 2 loops: {:.1} s ({:.0} req/s); held peak {peak}; \
         VmRSS by tenths (MiB): {:?}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        rss.iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
    );
    // Bounded: after the first tenth (buffers, pools, the per-request counters), memory
    // stops growing. A backlog growing with the producers would add about a kilobyte
    // per request held; 8 MiB of slack is under a tenth of that at 100,000.
    let first = rss[0];
    let max = *rss.iter().max().unwrap();
    assert!(
        max - first < 8 * 1024,
        "VmRSS grew from {first} to {max} KiB"
    );

    handle.shutdown();
    assert_eq!(threads().1, 0, "shutdown joined the loop threads");
}
