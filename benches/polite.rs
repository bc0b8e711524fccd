//! Rates as servers see them: four loopback hosts (127.0.0.2–5), each logging when every
//! request arrived. With a per-host rate of 5/s and 40 URLs a host (8 s of work each),
//! each host must measure 5/s ± 10% and all four must run at once (wall ≈ 8 s, not 32 s);
//! a global rate is held the same way; a burst lets its first requests through at once.
//!
//! `cargo bench --bench polite` prints the table and exits non-zero if a bound fails
//! (`.ci/run` runs it). A benchmark, not a test: its claims are timing claims.

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use parafetch::{Builder, Fetcher};
use parafetch_test_support::http::{Conn, TestServer};

const HOSTS: [u8; 4] = [2, 3, 4, 5];

fn servers() -> Vec<TestServer> {
    HOSTS
        .iter()
        .map(|&last| {
            TestServer::start_on(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
                |c: &mut Conn| c.serve_keep_alive(|_, c| c.respond(200, &[], b"ok")),
            )
        })
        .collect()
}

/// Fetches `per_host` URLs on each server, interleaved; returns the wall time.
fn run(b: Builder, servers: &[TestServer], per_host: usize) -> Duration {
    let mut urls = Vec::new();
    for i in 0..per_host {
        for s in servers {
            urls.push(s.url(&format!("/{i}")));
        }
    }
    let t0 = Instant::now();
    for (url, r) in b.proxy_from_env(false).max_in_flight(50).fetch_all(urls) {
        let r = r.unwrap_or_else(|e| panic!("{url}: {e:#}"));
        assert_eq!(r.status, 200);
    }
    t0.elapsed()
}

fn arrivals(s: &TestServer) -> Vec<Instant> {
    let mut at: Vec<Instant> = s.requests().iter().map(|r| r.received_at).collect();
    at.sort();
    at
}

/// Requests per second between the first and the last arrival.
fn measured(at: &[Instant]) -> f64 {
    let span = (at[at.len() - 1] - at[0]).as_secs_f64();
    (at.len() - 1) as f64 / span
}

struct Check {
    failed: bool,
}

impl Check {
    fn within(&mut self, what: &str, got: f64, want: f64, tolerance: f64) {
        let ok = (got - want).abs() <= want * tolerance;
        println!(
            "| {what} | {want:.2} | {got:.3} | {:+.1}% | {} |",
            (got / want - 1.0) * 100.0,
            if ok { "ok" } else { "FAIL" }
        );
        self.failed |= !ok;
    }
}

fn main() -> ExitCode {
    let mut check = Check { failed: false };
    println!("| measurement | target | measured | error | within bound |");
    println!("|---|---:|---:|---:|---|");

    // Per-host rate: 5/s each, four hosts at once.
    let hosts = servers();
    let wall = run(Fetcher::builder().host_rate(5.0, 1), &hosts, 40);
    for (s, last) in hosts.iter().zip(HOSTS) {
        check.within(
            &format!("per-host 5/s, host 127.0.0.{last} (req/s)"),
            measured(&arrivals(s)),
            5.0,
            0.10,
        );
    }
    // 39 intervals of 200 ms: 7.8 s if the hosts run side by side (31.2 s if not).
    check.within(
        "per-host 5/s, wall for 4 x 40 requests (s)",
        wall.as_secs_f64(),
        7.8,
        0.10,
    );

    // A global rate: 10/s across the four hosts.
    let hosts = servers();
    run(Fetcher::builder().rate(10.0), &hosts, 20);
    let mut all: Vec<Instant> = hosts.iter().flat_map(arrivals).collect();
    all.sort();
    check.within(
        "global 10/s over 4 hosts (req/s)",
        measured(&all),
        10.0,
        0.10,
    );

    // A burst of 5, then 5/s: the first five arrive together, the rest at the rate.
    let hosts = servers();
    run(Fetcher::builder().host_rate(5.0, 5), &hosts[..1], 25);
    let at = arrivals(&hosts[0]);
    let burst = (at[4] - at[0]).as_secs_f64();
    println!(
        "| burst 5: first five arrive within (s) | < 0.05 | {burst:.4} | | {} |",
        if burst < 0.05 { "ok" } else { "FAIL" }
    );
    check.failed |= burst >= 0.05;
    check.within(
        "burst 5 then 5/s, after the burst (req/s)",
        measured(&at[4..]),
        5.0,
        0.10,
    );

    if check.failed {
        eprintln!("polite: a rate bound failed");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
