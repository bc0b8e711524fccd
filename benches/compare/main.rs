//! The comparison harness: the same workload through parafetch, a ParallelCurl-style
//! `curl_multi` client and reqwest on a current-thread tokio runtime, against the same
//! loopback server, reported as ratios measured in the same run.
//!
//! `cargo bench --bench compare --features bench-peers -- [--quick] [--runs N] [--scale F]
//! [--only TEXT] [--clients a,b] [--no-c10k] [--c10k N] [--builtin]`
//!
//! Run without `--child`, this binary orchestrates: it starts nginx (or the built-in server
//! when nginx is absent, and says which), then runs every cell of the matrix as child
//! processes of itself, interleaved A B C A B C, so each measurement is one process:
//! peak RSS (VmHWM) is a per-process high-water mark and getrusage(RUSAGE_SELF) of the
//! child is exactly the client's CPU. Connections opened are counted on the server side
//! (nginx `stub_status`, or the built-in server's accept counter) before and after each run.

mod clients;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parafetch_test_support::bench_server::{Server, bench_files};
use parafetch_test_support::nginx::Nginx;
use parafetch_test_support::process::{cpu_time, proc_status_kb, raise_nofile};
use parafetch_test_support::proxies::Tinyproxy;

const CLIENTS: [&str; 3] = ["parafetch", "curl_multi", "reqwest"];
const NOFILE: u64 = 65536;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
    } else {
        orchestrate(Flags::parse(&args));
    }
}

/// `--child CLIENT URL N COUNT keepalive|close`: runs one client once and prints one line
/// of `key=value` results.
fn child(args: &[String]) {
    let (client, url, n, count, mode, proxy) = match args {
        [client, url, n, count, mode] => (client, url, n, count, mode, None),
        [client, url, n, count, mode, proxy] => (client, url, n, count, mode, Some(proxy.as_str())),
        _ => panic!("usage: --child CLIENT URL N COUNT keepalive|close [PROXY]"),
    };
    let n: usize = n.parse().expect("N");
    let count: usize = count.parse().expect("COUNT");
    let keep_alive = mode == "keepalive";
    raise_nofile(NOFILE);
    let start = Instant::now();
    let tally = match client.as_str() {
        "parafetch" => clients::parafetch(url, n, count, keep_alive, proxy),
        "curl_multi" => clients::curl_multi(url, n, count, keep_alive, proxy),
        "reqwest" => clients::reqwest(url, n, count, keep_alive, proxy),
        other => panic!("unknown client {other}"),
    };
    let elapsed = start.elapsed();
    let (user, sys) = cpu_time();
    let rss_kb = proc_status_kb("VmHWM");
    if let Some(e) = &tally.first_error {
        eprintln!("{client}: {} failed, first: {e}", tally.failed);
    }
    println!(
        "elapsed_us={} user_us={} sys_us={} rss_kb={rss_kb} ok={} failed={} bytes={}",
        elapsed.as_micros(),
        user.as_micros(),
        sys.as_micros(),
        tally.ok,
        tally.failed,
        tally.bytes
    );
}

struct Flags {
    runs: usize,
    scale: f64,
    only: Vec<String>,
    clients: Vec<String>,
    c10k: usize,
    builtin: bool,
}

impl Flags {
    fn parse(args: &[String]) -> Flags {
        let mut f = Flags {
            runs: 5,
            scale: 1.0,
            only: Vec::new(),
            clients: CLIENTS.iter().map(|s| s.to_string()).collect(),
            c10k: 10_000,
            builtin: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().cloned().unwrap_or_else(|| usage(a));
            match a.as_str() {
                "--quick" => {
                    f.runs = 1;
                    f.scale = 0.1;
                    f.c10k = 1000;
                }
                "--runs" => f.runs = value().parse().unwrap_or_else(|_| usage(a)),
                "--scale" => f.scale = value().parse().unwrap_or_else(|_| usage(a)),
                "--only" => f.only.push(value()),
                "--clients" => f.clients = value().split(',').map(str::to_owned).collect(),
                "--c10k" => f.c10k = value().parse().unwrap_or_else(|_| usage(a)),
                "--no-c10k" => f.c10k = 0,
                "--builtin" => f.builtin = true,
                _ => usage(a),
            }
        }
        f
    }
}

fn usage(at: &str) -> ! {
    eprintln!(
        "compare: bad argument {at:?}\n\
         flags: --quick (1 run, counts / 10, C10K at 1000) | --runs N (default 5) |\n\
         --scale F (request counts x F) | --only TEXT (cells whose name contains TEXT; repeat) |\n\
         --clients parafetch,curl_multi,reqwest | --c10k N (default 10000) | --no-c10k |\n\
         --builtin (the built-in server even when nginx is installed)"
    );
    std::process::exit(2)
}

/// Which server a cell runs against.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// nginx, or the built-in server without delay.
    Files,
    /// The built-in server holding each response for this long.
    Hold(Duration),
}

struct CellSpec {
    name: String,
    target: Target,
    path: &'static str,
    n: usize,
    count: usize,
    keep_alive: bool,
    /// Through the harness's tinyproxy.
    proxied: bool,
}

fn cells(flags: &Flags) -> Vec<CellSpec> {
    let scaled = |c: usize| ((c as f64 * flags.scale).round() as usize).max(1);
    let mut v = Vec::new();
    // Counts give the fastest client about a second or two per run.
    for (path, size, counts) in [
        ("/1k", "1 KiB", [(1, 5_000), (20, 40_000), (200, 40_000)]),
        ("/1m", "1 MiB", [(1, 500), (20, 2_000), (200, 2_000)]),
    ] {
        for keep_alive in [true, false] {
            for (n, count) in counts {
                let count = if keep_alive { count } else { count / 2 };
                v.push(CellSpec {
                    name: format!(
                        "{} {size} N={n}",
                        if keep_alive { "keep-alive" } else { "close" }
                    ),
                    target: Target::Files,
                    path,
                    n,
                    count: scaled(count),
                    keep_alive,
                    proxied: false,
                });
            }
        }
    }
    // The seed's demo: 200 requests answered after 100 ms each, 20 at a time: 1.0 s floor.
    v.push(CellSpec {
        name: "demo 200 x 100 ms N=20".into(),
        target: Target::Hold(Duration::from_millis(100)),
        path: "/1k",
        n: 20,
        count: 200,
        keep_alive: true,
        proxied: false,
    });
    // Through one tinyproxy (which closes each client connection after its response): the
    // client's CPU per request with a proxy handshake-free forward in between.
    v.push(CellSpec {
        name: "via tinyproxy 1 KiB N=20".into(),
        target: Target::Files,
        path: "/1k",
        n: 20,
        count: scaled(4_000),
        keep_alive: true,
        proxied: true,
    });
    if flags.c10k > 0 {
        v.push(CellSpec {
            name: format!("C10K {} held 1 s", flags.c10k),
            target: Target::Hold(Duration::from_secs(1)),
            path: "/1k",
            n: flags.c10k,
            count: flags.c10k,
            keep_alive: true,
            proxied: false,
        });
    }
    if !flags.only.is_empty() {
        v.retain(|c| flags.only.iter().any(|o| c.name.contains(o.as_str())));
    }
    v
}

/// One child run's measurements.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    elapsed: f64,
    cpu_us: f64,
    rss_kb: f64,
    ok: u64,
    failed: u64,
    conns: u64,
    /// The child died: no measurements, every request counted failed.
    crashed: bool,
}

impl Sample {
    fn req_per_s(&self) -> f64 {
        (self.ok + self.failed) as f64 / self.elapsed
    }
    fn cpu_per_req(&self) -> f64 {
        self.cpu_us / (self.ok + self.failed).max(1) as f64
    }
    fn rss_mib(&self) -> f64 {
        self.rss_kb / 1024.0
    }
}

/// The server a cell's runs go to, able to say how many connections it accepted.
enum Served<'a> {
    Nginx(&'a Nginx),
    Builtin(&'a Server),
}

impl Served<'_> {
    fn accepts(&self) -> u64 {
        match self {
            Served::Nginx(n) => n.accepts(),
            Served::Builtin(s) => s.accepts(),
        }
    }
    fn opened_since(&self, before: u64) -> u64 {
        match self {
            Served::Nginx(n) => n.opened_since(before),
            Served::Builtin(s) => s.accepts() - before,
        }
    }
    fn url(&self, path: &str) -> String {
        match self {
            Served::Nginx(n) => n.url(path),
            Served::Builtin(s) => s.url(path),
        }
    }
}

fn run_child(
    client: &str,
    url: &str,
    cell: &CellSpec,
    served: &Served,
    proxy: Option<&str>,
) -> Sample {
    let before = served.accepts();
    let out = Command::new(std::env::current_exe().expect("current exe"))
        .arg("--child")
        .args([client, url])
        .arg(cell.n.to_string())
        .arg(cell.count.to_string())
        .arg(if cell.keep_alive {
            "keepalive"
        } else {
            "close"
        })
        .args(proxy)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run child");
    // Connections the client closed are accepted by now; give the server's counter a
    // moment for the last ones a dying client left in the accept queue.
    std::thread::sleep(Duration::from_millis(50));
    let conns = served.opened_since(before);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // One crashed run must not lose the rest: it counts as all requests failed.
        eprintln!("\n{client} child failed ({}) in {}", out.status, cell.name);
        return Sample {
            elapsed: f64::NAN,
            cpu_us: f64::NAN,
            rss_kb: f64::NAN,
            ok: 0,
            failed: cell.count as u64,
            conns,
            crashed: true,
        };
    }
    let field = |k: &str| -> f64 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("child output lacks {k}: {text}"))
    };
    Sample {
        elapsed: field("elapsed_us") / 1e6,
        cpu_us: field("user_us") + field("sys_us"),
        rss_kb: field("rss_kb"),
        ok: field("ok") as u64,
        failed: field("failed") as u64,
        conns,
        crashed: false,
    }
}

/// Per-run ratios parafetch / peer in one cell: (cell, peer, req/s, CPU per request, RSS).
type Ratios = (String, String, Vec<f64>, Vec<f64>, Vec<f64>);

struct CellResult {
    spec: CellSpec,
    /// Per client (in `clients` order), one sample per run.
    samples: Vec<Vec<Sample>>,
}

fn orchestrate(flags: Flags) {
    let got = raise_nofile(NOFILE);
    let files = bench_files();
    let nginx = if flags.builtin {
        None
    } else {
        Nginx::start(&files, None)
    };
    let builtin = if nginx.is_none() {
        Some(Server::start(files.clone(), Duration::ZERO).expect("built-in server"))
    } else {
        None
    };
    let file_server = match (&nginx, &builtin) {
        (Some(n), _) => Served::Nginx(n),
        (None, Some(s)) => Served::Builtin(s),
        (None, None) => unreachable!(),
    };
    let server_name = match &nginx {
        Some(n) => format!(
            "{} (1 worker, access log off, keepalive_requests 100000000, sendfile)",
            n.version
        ),
        None => "the built-in server (nginx not found or --builtin)".to_owned(),
    };
    let mut specs = cells(&flags);
    // The proxied cell needs tinyproxy (Debian's package); without it the cell is left out.
    let tinyproxy = if specs.iter().any(|s| s.proxied) {
        Tinyproxy::start(None)
    } else {
        None
    };
    if tinyproxy.is_none() && specs.iter().any(|s| s.proxied) {
        eprintln!("tinyproxy not found: the proxied cell is left out");
        specs.retain(|s| !s.proxied);
    }
    let proxy_url = tinyproxy.as_ref().map(|t| t.url());
    let mut hold_servers: Vec<(Duration, Server)> = Vec::new();
    for spec in &specs {
        if let Target::Hold(d) = spec.target
            && !hold_servers.iter().any(|(h, _)| *h == d)
        {
            hold_servers.push((
                d,
                Server::start(files.clone(), d).expect("built-in hold server"),
            ));
        }
    }

    println!("{}", machine(got, &server_name));
    let started = Instant::now();
    let mut results = Vec::new();
    for spec in specs {
        let served = match spec.target {
            Target::Files => match &file_server {
                Served::Nginx(n) => Served::Nginx(n),
                Served::Builtin(s) => Served::Builtin(s),
            },
            Target::Hold(d) => Served::Builtin(
                &hold_servers
                    .iter()
                    .find(|(h, _)| *h == d)
                    .expect("hold server")
                    .1,
            ),
        };
        let url = served.url(spec.path);
        eprint!("{} ({} requests) ", spec.name, spec.count);
        let mut samples = vec![Vec::new(); flags.clients.len()];
        for _ in 0..flags.runs {
            for (i, client) in flags.clients.iter().enumerate() {
                let proxy = proxy_url.as_deref().filter(|_| spec.proxied);
                samples[i].push(run_child(client, &url, &spec, &served, proxy));
                eprint!(".");
            }
        }
        eprintln!();
        results.push(CellResult { spec, samples });
    }
    eprintln!(
        "all runs took {:.0} s",
        started.elapsed().as_secs_f64().ceil()
    );
    println!("{}", report(&flags, &results));
}

fn machine(nofile: u64, server: &str) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown cpu", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let curl = curl::Version::get();
    format!(
        "machine: {model}, {cores} cores, {mem_gib:.0} GiB, Linux {}; open files {nofile}\n\
         server: {server}\n\
         peers: libcurl {} (the system's), reqwest 0.13 + tokio 1 current-thread",
        kernel.trim(),
        curl.version(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// "median (min–max)" with `digits` decimals.
fn spread(v: &[f64], digits: usize) -> String {
    let (lo, hi) = min_max(v);
    if v.len() == 1 {
        return format!("{:.*}", digits, v[0]);
    }
    format!(
        "{:.*} ({:.*}–{:.*})",
        digits,
        median(v.to_vec()),
        digits,
        lo,
        digits,
        hi
    )
}

fn report(flags: &Flags, results: &[CellResult]) -> String {
    let mut out = String::new();
    let runs = flags.runs;
    out.push_str(&format!(
        "\n{runs} run(s) per client per cell, interleaved; median (min–max).\n\n\
         | cell | client | req/s | CPU µs/req | peak RSS MiB | conns opened | wall s | failed |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n"
    ));
    for r in results {
        for (i, client) in flags.clients.iter().enumerate() {
            let s = &r.samples[i];
            let col = |f: fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<_>>();
            let mut failed = s.iter().map(|x| x.failed).sum::<u64>().to_string();
            let crashed = s.iter().filter(|x| x.crashed).count();
            if crashed > 0 {
                failed.push_str(&format!(" ({crashed} runs crashed)"));
            }
            out.push_str(&format!(
                "| {} | {client} | {} | {} | {} | {} | {} | {} |\n",
                r.spec.name,
                spread(&col(Sample::req_per_s), 0),
                spread(&col(Sample::cpu_per_req), 1),
                spread(&col(Sample::rss_mib), 1),
                median(col(|x| x.conns as f64)),
                spread(&col(|x| x.elapsed), 3),
                failed
            ));
        }
    }
    let Some(pf) = flags.clients.iter().position(|c| c == "parafetch") else {
        return out;
    };
    out.push_str(
        "\nRatios parafetch / peer, one per run (same round of A B C); median (min–max). \
         req/s > 1 and CPU, RSS < 1 favour parafetch.\n\n\
         | cell | peer | req/s | CPU µs/req | peak RSS |\n|---|---|---:|---:|---:|\n",
    );
    let mut ratios = Vec::new();
    for r in results {
        for (i, peer) in flags.clients.iter().enumerate() {
            if i == pf {
                continue;
            }
            let ratio = |f: fn(&Sample) -> f64| {
                r.samples[pf]
                    .iter()
                    .zip(&r.samples[i])
                    .map(|(a, b)| f(a) / f(b))
                    .collect::<Vec<_>>()
            };
            let rps = ratio(Sample::req_per_s);
            let cpu = ratio(Sample::cpu_per_req);
            let rss = ratio(Sample::rss_mib);
            out.push_str(&format!(
                "| {} | {peer} | {} | {} | {} |\n",
                r.spec.name,
                spread(&rps, 2),
                spread(&cpu, 2),
                spread(&rss, 2)
            ));
            ratios.push((r.spec.name.clone(), peer.clone(), rps, cpu, rss));
        }
    }
    out.push_str(&targets(results, pf, &ratios));
    out
}

/// The targets, judged on median per-run ratios.
fn targets(results: &[CellResult], pf: usize, ratios: &[Ratios]) -> String {
    let get = |cell: &str, peer: &str| {
        ratios
            .iter()
            .find(|(c, p, ..)| c == cell && p == peer)
            .map(|(_, _, rps, cpu, rss)| {
                (
                    median(rps.clone()),
                    median(cpu.clone()),
                    median(rss.clone()),
                )
            })
    };
    let mut out = String::from("\nTargets (median of per-run ratios):\n\n");
    let mut check = |what: String, value: Option<f64>, ok: fn(f64) -> bool, bound: &str| {
        let line = match value {
            Some(v) => format!(
                "- [{}] {what}: {v:.2} (target {bound})\n",
                if ok(v) { "met" } else { "MISSED" }
            ),
            None => format!("- [not run] {what}\n"),
        };
        out.push_str(&line);
    };
    for n in [20, 200] {
        for peer in ["curl_multi", "reqwest"] {
            let cell = format!("keep-alive 1 KiB N={n}");
            check(
                format!("{cell}: CPU/req vs {peer}"),
                get(&cell, peer).map(|r| r.1),
                |v| v <= 0.65,
                "≤ 0.65",
            );
        }
    }
    let cell = "close 1 KiB N=20";
    check(
        format!("{cell}: req/s vs curl_multi"),
        get(cell, "curl_multi").map(|r| r.0),
        |v| v >= 1.15,
        "≥ 1.15",
    );
    check(
        format!("{cell}: CPU/req vs curl_multi"),
        get(cell, "curl_multi").map(|r| r.1),
        |v| v <= 0.8,
        "≤ 0.8",
    );
    for cell in ["keep-alive 1 KiB N=200", "keep-alive 1 MiB N=200"] {
        check(
            format!("{cell}: peak RSS vs curl_multi"),
            get(cell, "curl_multi").map(|r| r.2),
            |v| v <= 1.0,
            "≤ 1.0",
        );
    }
    if let Some(c10k) = results.iter().find(|r| r.spec.name.starts_with("C10K")) {
        check(
            format!("{}: peak RSS vs curl_multi", c10k.spec.name),
            get(&c10k.spec.name, "curl_multi").map(|r| r.2),
            |v| v <= 0.5,
            "≤ 0.5",
        );
    }
    if let Some(demo) = results.iter().find(|r| r.spec.name.starts_with("demo")) {
        let wall = median(demo.samples[pf].iter().map(|s| s.elapsed).collect());
        check(
            "demo 200 x 100 ms N=20: parafetch wall / 1.0 s floor".into(),
            Some(wall / 1.0),
            |v| v <= 1.02,
            "≤ 1.02",
        );
    }
    if let Some(c10k) = results.iter().find(|r| r.spec.name.starts_with("C10K")) {
        let conns = median(c10k.samples[pf].iter().map(|s| s.conns as f64).collect());
        let failed: u64 = c10k.samples[pf].iter().map(|s| s.failed).sum();
        out.push_str(&format!(
            "- parafetch C10K: median {conns} connections opened, {failed} failed\n"
        ));
    }
    out
}
