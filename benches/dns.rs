//! Lookups per second: the in-loop DNS stub against the system resolver on helper threads,
//! both asking the same fake nameserver on loopback, in one run.
//!
//! `cargo bench --bench dns [-- NAMES]` (default 20,000 names, 500 in flight), once with a
//! nameserver that answers at once and once with one that answers after 20 ms, the
//! latency of a real recursive resolver (then a tenth of the names). Each run is a child
//! process. The system resolver reads `/etc/resolv.conf`, so its child runs in a
//! private mount namespace (`unshare -m`, root) where that file names `127.0.0.53`, the fake
//! server's address (port 53 there, as glibc allows no other). Without `unshare` or port 53,
//! only the stub is measured. Every name resolves to a closed loopback port, so each request
//! is one lookup plus one refused connect, the same for both.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use parafetch_test_support::dns::{FakeDns, QType, Query, Reply};

const FAKE_NS: &str = "127.0.0.53:53";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    let names: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Names whose first label ends in "slow" are answered after 20 ms.
    let handler = |q: &Query| {
        let reply = if q.qtype == QType::A {
            Reply::Answer {
                v4: vec![Ipv4Addr::LOCALHOST],
                v6: vec![],
                ttl: 300,
            }
        } else {
            Reply::NoData {
                soa_ttl: 300,
                soa_minimum: 300,
            }
        };
        if q.name
            .split('.')
            .next()
            .is_some_and(|l| l.ends_with("slow"))
        {
            Reply::Delay(Duration::from_millis(20), Box::new(reply))
        } else {
            reply
        }
    };
    let fixed = FakeDns::try_start_at(FAKE_NS.parse().unwrap(), handler);
    let server = match fixed {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot bind {FAKE_NS} ({e}): measuring the stub only");
            FakeDns::start(handler)
        }
    };
    let system_ok = server.addr().port() == 53 && unshare_works();
    println!("in flight: 500, nameserver: fake on {}", server.addr());
    println!(
        "| nameserver latency | names | resolver | threads | lookups/s (median of 3) | runs |"
    );
    println!("|---|---|---|---|---|---|");
    let mut modes = vec![("stub", 0usize)];
    if system_ok {
        modes.extend([("system", 4), ("system", 16), ("system", 64)]);
    }
    for (latency, n) in [("0 ms", names), ("20 ms", names / 10)] {
        for &(mode, threads) in &modes {
            let mut rates = Vec::new();
            for round in 0..3 {
                let slow = if latency == "0 ms" { "" } else { "slow" };
                let prefix = format!("{mode}{threads}r{round}{slow}");
                rates.push(run_child(mode, threads, n, closed, server.addr(), &prefix));
            }
            let runs: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
            rates.sort_by(f64::total_cmp);
            let (label, t) = if mode == "stub" {
                ("in-loop stub", "1 (the loop)".to_owned())
            } else {
                ("getaddrinfo pool", format!("1 + {threads}"))
            };
            println!(
                "| {latency} | {n} | {label} | {t} | {:.0} | {} |",
                rates[1],
                runs.join(", ")
            );
        }
    }
}

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

fn run_child(
    mode: &str,
    threads: usize,
    names: usize,
    closed: u16,
    ns: SocketAddr,
    prefix: &str,
) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let child_args = format!(
        "{} --child {mode} {threads} {names} {closed} {ns} {prefix}",
        exe.display()
    );
    let out = if mode == "system" {
        let conf = std::env::temp_dir().join(format!(
            "parafetch-bench-resolv-{}.conf",
            std::process::id()
        ));
        std::fs::write(
            &conf,
            "nameserver 127.0.0.53\noptions timeout:2 attempts:2\n",
        )
        .unwrap();
        let script = format!(
            "mount --bind {} /etc/resolv.conf && exec {child_args}",
            conf.display()
        );
        Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .output()
            .unwrap()
    } else {
        Command::new("sh")
            .args(["-c", &format!("exec {child_args}")])
            .output()
            .unwrap()
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RATE "))
        .unwrap_or_else(|| {
            panic!(
                "child failed: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    line[5..].trim().parse().unwrap()
}

fn child(args: &[String]) {
    let mode = args[0].as_str();
    let threads: usize = args[1].parse().unwrap();
    let names: usize = args[2].parse().unwrap();
    let closed: u16 = args[3].parse().unwrap();
    let ns: SocketAddr = args[4].parse().unwrap();
    let prefix = &args[5];
    let mut b = parafetch::Fetcher::builder()
        .max_in_flight(500)
        .connect_timeout(Duration::from_secs(20));
    b = if mode == "system" {
        b.system_resolver(threads)
    } else {
        b.dns_servers(&[ns]).dns_search(&[], 1)
    };
    // The prefix ends the first label, so "…slow" names get the slow nameserver.
    let urls: Vec<String> = (0..names)
        .map(|i| format!("http://n{i}{prefix}.bench:{closed}/"))
        .collect();
    let start = Instant::now();
    let mut dns_errors = 0;
    for (_, r) in b.fetch_all(urls) {
        // Resolved names end in a refused connect; a dns error means the lookup failed.
        if r.as_ref()
            .err()
            .is_some_and(|e| e.kind() == parafetch::ErrorKind::Dns)
        {
            dns_errors += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(dns_errors, 0, "{mode}: {dns_errors} lookups failed");
    println!("RATE {}", names as f64 / secs);
}
