//! Fault-injection soak: many requests, many in flight, against a server that at random
//! answers well, stalls, trickles, resets or closes at a random byte, sends garbage or a
//! huge head, or never accepts (see `test-support/src/fault.rs`).
//!
//! Asserts, round after round: exactly one completion per request; each outcome's kind (and
//! phase where it is certain) matches what the server did; no file descriptor leaks
//! (`/proc/self/fd` back to its baseline once the fetcher is dropped and the server has
//! closed its side); no memory growth between the second round and the last; and the loop
//! never stalls (good requests keep completing while bad ones wait on their timeouts).
//!
//! `soak_quick` runs in the normal `cargo test` (a few thousand requests). The full soak is
//! ignored by default:
//!
//! ```text
//! cargo test --release --test soak -- --ignored --nocapture
//! SOAK_REQUESTS=20000 SOAK_ROUNDS=4 SOAK_IN_FLIGHT=500 cargo test --release --test soak -- --ignored
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use parafetch::{Done, ErrorKind, Fetcher, Phase, Queue, Response};
use parafetch_test_support::fault::{FaultServer, good_body};
use parafetch_test_support::process;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Behaviour {
    Good,
    Stall,
    Trickle,
    Reset,
    Close,
    Garbage,
    HugeHead,
    Never,
}

impl Behaviour {
    /// Picks one by weight (per cent).
    fn pick(r: u64) -> Behaviour {
        match r % 100 {
            0..=59 => Behaviour::Good,
            60..=64 => Behaviour::Stall,
            65..=66 => Behaviour::Trickle,
            67..=74 => Behaviour::Reset,
            75..=82 => Behaviour::Close,
            83..=89 => Behaviour::Garbage,
            90..=94 => Behaviour::HugeHead,
            _ => Behaviour::Never,
        }
    }

    fn url(self, server: &FaultServer, n: u64, byte: u64) -> String {
        match self {
            Behaviour::Good => server.url(&format!("/good/{n}")),
            Behaviour::Stall => server.url(&format!("/stall/{n}")),
            Behaviour::Trickle => server.url(&format!("/trickle/{n}")),
            Behaviour::Reset => server.url(&format!("/reset/{n}/{byte}")),
            Behaviour::Close => server.url(&format!("/close/{n}/{byte}")),
            Behaviour::Garbage => server.url(&format!("/garbage/{n}")),
            Behaviour::HugeHead => server.url(&format!("/hugehead/{n}")),
            Behaviour::Never => server.never_url(&format!("/never/{n}")),
        }
    }

    /// Whether `result` is what this behaviour must produce.
    fn accepts(self, n: u64, result: &Result<Response, parafetch::Error>) -> bool {
        let e = match (self, result) {
            (Behaviour::Good, Ok(r)) => return r.status == 200 && r.body == good_body(n),
            (_, Ok(_)) | (Behaviour::Good, Err(_)) => return false,
            (_, Err(e)) => e,
        };
        match self {
            Behaviour::Good => false,
            Behaviour::Stall => (e.kind(), e.phase()) == (ErrorKind::Timeout, Phase::ReceiveHead),
            Behaviour::Trickle => (e.kind(), e.phase()) == (ErrorKind::Timeout, Phase::ReceiveBody),
            // Bytes sent just before an RST may or may not be read first, and after the
            // reset is reported a read sees EOF.
            // Closed before any byte is an empty reply; after some, a truncation.
            Behaviour::Reset => matches!(
                e.kind(),
                ErrorKind::Io | ErrorKind::Truncated | ErrorKind::EmptyReply
            ),
            Behaviour::Close => matches!(e.kind(), ErrorKind::Truncated | ErrorKind::EmptyReply),
            Behaviour::Garbage => {
                (e.kind(), e.phase()) == (ErrorKind::Malformed, Phase::ReceiveHead)
            }
            Behaviour::HugeHead => {
                (e.kind(), e.phase()) == (ErrorKind::TooLarge, Phase::ReceiveHead)
            }
            // In the accept queue (request sent, never read) or SYN dropped (queue full).
            Behaviour::Never => e.kind() == ErrorKind::Timeout,
        }
    }
}

struct Settings {
    requests: usize,
    rounds: usize,
    in_flight: usize,
    idle: Duration,
    total: Duration,
    connect: Duration,
    /// Longest allowed wait between two good completions.
    max_gap: Duration,
    /// Whether to assert on memory (only meaningful with big rounds).
    check_rss: bool,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Open descriptors: number and where each points (for the message when one leaks).
fn open_fds() -> BTreeMap<String, String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map_or_else(|e| format!("({e})"), |t| t.to_string_lossy().into_owned());
            (e.file_name().to_string_lossy().into_owned(), target)
        })
        .collect()
}

/// The /proc/net/tcp line of a `socket:[inode]` target: addresses and state, to say which
/// connection a leaked descriptor was.
fn socket_info(target: &str) -> String {
    let Some(inode) = target
        .strip_prefix("socket:[")
        .and_then(|t| t.strip_suffix(']'))
    else {
        return String::new();
    };
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .find(|l| l.split_whitespace().nth(9) == Some(inode))
        .map_or_else(
            || "(not in /proc/net/tcp)".to_owned(),
            |l| format!("tcp: {l}"),
        )
}

fn rss_kib() -> u64 {
    process::proc_status_kb("VmRSS")
}

/// One line per (behaviour, outcome): `Good ok`, `Reset io/receive_head`, ...
fn outcome(result: &Result<Response, parafetch::Error>) -> String {
    match result {
        Ok(r) => format!("{}", r.status),
        Err(e) => format!("{}/{}", e.kind(), e.phase()),
    }
}

struct Round {
    completions: Vec<u32>,
    wrong: Vec<String>,
    outcomes: BTreeMap<(Behaviour, String), usize>,
    good_times: Vec<Instant>,
}

/// Soaks count the process's descriptors and memory: one at a time, even under
/// `--include-ignored`.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn soak(s: Settings) {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let server = FaultServer::start();
    let baseline_fds = open_fds();
    let mut rng = 0x5EED_0FFA_1700_0001_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let per_round = s.requests / s.rounds;
    let mut rss = Vec::new();
    let mut totals: BTreeMap<(Behaviour, String), usize> = BTreeMap::new();
    let started = Instant::now();
    for round in 0..s.rounds {
        let round_start = Instant::now();
        let state = Rc::new(RefCell::new(Round {
            completions: vec![0; per_round],
            wrong: Vec::new(),
            outcomes: BTreeMap::new(),
            good_times: Vec::new(),
        }));
        let mut fetcher: Fetcher<(usize, Behaviour, u64)> = Fetcher::builder()
            .max_in_flight(s.in_flight)
            .idle_timeout(s.idle)
            .timeout(Some(s.total))
            .connect_timeout(s.connect)
            .max_head(16 * 1024)
            .pool_max_idle(s.in_flight, 1024)
            .build();
        for i in 0..per_round {
            let behaviour = Behaviour::pick(next());
            let n = (round * per_round + i) as u64;
            let url = behaviour.url(&server, n, next());
            let state = Rc::clone(&state);
            fetcher
                .start_request(
                    url,
                    move |d: Done<(usize, Behaviour, u64)>, _: &mut Queue<_>| {
                        let (i, behaviour, n) = d.cookie;
                        let mut st = state.borrow_mut();
                        st.completions[i] += 1;
                        if behaviour == Behaviour::Good && d.result.is_ok() {
                            st.good_times.push(Instant::now());
                        }
                        if !behaviour.accepts(n, &d.result) && st.wrong.len() < 20 {
                            let got = match &d.result {
                                Ok(r) => format!("{} with {} bytes", r.status, r.body.len()),
                                Err(e) => format!("{e}"),
                            };
                            st.wrong.push(format!("{behaviour:?} {}: {got}", d.url));
                        }
                        *st.outcomes
                            .entry((behaviour, outcome(&d.result)))
                            .or_default() += 1;
                    },
                    (i, behaviour, n),
                )
                .expect("valid url");
        }
        fetcher.finish_all_requests();
        drop(fetcher);
        let elapsed = round_start.elapsed();
        // The client closed everything; the server closes its side on EOF.
        assert!(
            server.wait_for_open(0, Duration::from_secs(10)),
            "round {round}: server still has {} connections open",
            server.stats().open
        );
        let fds = open_fds();
        rss.push(rss_kib());
        let st = state.borrow();
        let max_gap = std::iter::once(round_start)
            .chain(st.good_times.iter().copied())
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        eprintln!(
            "round {round}: {per_round} requests in {elapsed:.2?} ({:.0}/s), fds {} (baseline \
             {}), rss {} KiB, longest wait between good completions {max_gap:.2?}",
            per_round as f64 / elapsed.as_secs_f64(),
            fds.len(),
            baseline_fds.len(),
            rss[round],
        );
        let lost = st.completions.iter().filter(|&&c| c == 0).count();
        let twice = st.completions.iter().filter(|&&c| c > 1).count();
        assert_eq!(
            (lost, twice),
            (0, 0),
            "round {round}: requests without a completion, with more than one"
        );
        assert!(
            st.wrong.is_empty(),
            "round {round}: outcomes that do not match the server's behaviour:\n{}",
            st.wrong.join("\n")
        );
        assert!(
            fds.len() == baseline_fds.len(),
            "round {round}: file descriptors leaked: {:?} (baseline {:?}); server {:?}",
            fds.iter()
                .filter(|(fd, _)| !baseline_fds.contains_key(*fd))
                .map(|(fd, target)| format!("{fd} -> {target} {}", socket_info(target)))
                .collect::<Vec<_>>(),
            baseline_fds,
            server.stats(),
        );
        assert!(
            max_gap < s.max_gap,
            "round {round}: no good request completed for {max_gap:?}"
        );
        for (k, v) in &st.outcomes {
            *totals.entry(k.clone()).or_default() += v;
        }
    }
    eprintln!(
        "{} requests in {:.2?}; outcomes:",
        per_round * s.rounds,
        started.elapsed()
    );
    for ((behaviour, outcome), count) in &totals {
        eprintln!("  {behaviour:?} -> {outcome}: {count}");
    }
    eprintln!("server: {:?}", server.stats());
    if s.check_rss && rss.len() >= 3 {
        // Round 1 warms up (allocator arenas, pools). The process holds the fault server's
        // threads too, whose allocator arenas may still take one step up after it (seen:
        // 8.8, 8.8, 11.3, 11.2 MiB); a leak keeps growing. So the last round must stay
        // within a tolerance of the highest round before it, from the second on.
        let last = rss[rss.len() - 1];
        let before = rss[1..rss.len() - 1].iter().copied().max().unwrap_or(last);
        let tolerance = (before / 10).max(2 * 1024);
        assert!(
            last <= before + tolerance,
            "memory kept growing: {rss:?} KiB by round; the last round ({last}) is over the \
             highest before it ({before}) by more than {tolerance}"
        );
    }
}

/// A few thousand requests, fast enough for every `cargo test`.
#[test]
fn soak_quick() {
    soak(Settings {
        requests: 3_000,
        rounds: 3,
        in_flight: 200,
        idle: Duration::from_millis(300),
        total: Duration::from_secs(1),
        connect: Duration::from_millis(500),
        max_gap: Duration::from_secs(1),
        check_rss: false,
    });
}

/// The full soak: `SOAK_REQUESTS` (default 100,000) over `SOAK_ROUNDS` (default 4) rounds
/// with `SOAK_IN_FLIGHT` (default 500) in flight. Run it in release mode.
#[test]
#[ignore = "soak: run with --release --ignored (see the module doc)"]
fn soak_full() {
    soak(Settings {
        requests: env_or("SOAK_REQUESTS", 100_000),
        rounds: env_or("SOAK_ROUNDS", 4),
        in_flight: env_or("SOAK_IN_FLIGHT", 500),
        idle: Duration::from_millis(300),
        total: Duration::from_secs(2),
        connect: Duration::from_secs(1),
        max_gap: Duration::from_secs(1),
        check_rss: true,
    });
}
