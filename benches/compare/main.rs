//! The comparison harness: the same workload through parafetch, a ParallelCurl-style
//! `curl_multi` client and reqwest on a current-thread tokio runtime (and on a multi-thread
//! one, `reqwest-mt`, the multi-core peer), against the same loopback server, over http and
//! https, reported as ratios measured in the same run. parafetch runs once per thread count
//! of `--threads` (`parafetch` at 1, `parafetch t=2` ...).
//!
//! `cargo bench --bench compare --features bench-peers -- [--quick] [--runs N] [--scale F]
//! [--only TEXT] [--clients a,b] [--threads 1,2] [--no-c10k] [--c10k N] [--builtin]`
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
use parafetch_test_support::pki::pki;
use parafetch_test_support::process::{cpu_time, proc_status_kb, raise_nofile};
use parafetch_test_support::proxies::Tinyproxy;

const CLIENTS: [&str; 4] = ["parafetch", "curl_multi", "reqwest", "reqwest-mt"];
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

/// `--child CLIENT URL N COUNT keepalive|close [--proxy URL] [--ca PEM-FILE] [--no-resume]
/// [--workers W]`: runs one client once and prints one line of `key=value` results.
fn child(args: &[String]) {
    const USAGE: &str = "usage: --child CLIENT URL N COUNT keepalive|close \
                         [--proxy URL] [--ca PEM-FILE] [--no-resume] [--workers W]";
    let [client, url, n, count, mode, rest @ ..] = args else {
        panic!("{USAGE}");
    };
    let (mut proxy, mut ca, mut resume, mut workers) = (None, None, true, 2);
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--proxy" => proxy = Some(it.next().expect(USAGE).as_str()),
            "--ca" => ca = Some(std::path::PathBuf::from(it.next().expect(USAGE))),
            "--no-resume" => resume = false,
            "--workers" => workers = it.next().expect(USAGE).parse().expect("W"),
            _ => panic!("{USAGE}"),
        }
    }
    let w = clients::Workload {
        url,
        n: n.parse().expect("N"),
        count: count.parse().expect("COUNT"),
        keep_alive: mode == "keepalive",
        proxy,
        tls: ca.map(|ca_path| clients::Tls {
            ca_pem: std::fs::read(&ca_path).expect("read the CA file"),
            ca_path,
            resume,
        }),
    };
    raise_nofile(NOFILE);
    let start = Instant::now();
    let tally = match (client.as_str(), parafetch_threads(client)) {
        ("parafetch", _) => clients::parafetch(&w),
        (_, Some(threads)) => clients::parafetch_threads(&w, threads),
        ("curl_multi", _) => clients::curl_multi(&w),
        ("reqwest", _) => clients::reqwest(&w, 0),
        ("reqwest-mt", _) => clients::reqwest(&w, workers),
        (other, _) => panic!("unknown client {other}"),
    };
    let elapsed = start.elapsed();
    let (user, sys) = cpu_time();
    let rss_kb = proc_status_kb("VmHWM");
    if let Some(e) = &tally.first_error {
        eprintln!("{client}: {} failed, first: {e}", tally.failed);
    }
    let resumed = tally
        .resumed
        .map_or(String::new(), |r| format!(" resumed={r}"));
    println!(
        "elapsed_us={} user_us={} sys_us={} rss_kb={rss_kb} ok={} failed={} bytes={}{resumed}",
        elapsed.as_micros(),
        user.as_micros(),
        sys.as_micros(),
        tally.ok,
        tally.failed,
        tally.bytes
    );
}

/// `parafetch t=N` runs parafetch on N loops.
fn parafetch_threads(client: &str) -> Option<usize> {
    client.strip_prefix("parafetch t=")?.parse().ok()
}

/// The client names parafetch runs as: `parafetch` (a `Fetcher` on the calling thread,
/// the baseline), then `parafetch t=N` (a `Handle` fed from the calling thread, N loops of
/// their own) for each thread count.
fn parafetch_names(threads: &[usize]) -> Vec<String> {
    let mut v = vec!["parafetch".to_owned()];
    v.extend(threads.iter().map(|t| format!("parafetch t={t}")));
    v
}

struct Flags {
    runs: usize,
    scale: f64,
    only: Vec<String>,
    clients: Vec<String>,
    c10k: usize,
    builtin: bool,
    /// parafetch's thread counts; the largest is also reqwest-mt's worker count.
    threads: Vec<usize>,
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
            threads: vec![1, 2],
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
                "--threads" => {
                    f.threads = value()
                        .split(',')
                        .map(|t| {
                            t.parse()
                                .ok()
                                .filter(|&t| t > 0)
                                .unwrap_or_else(|| usage(a))
                        })
                        .collect()
                }
                _ => usage(a),
            }
        }
        // parafetch at each thread count, in the place `parafetch` has in the list.
        f.clients = f
            .clients
            .iter()
            .flat_map(|c| match c.as_str() {
                "parafetch" => parafetch_names(&f.threads),
                _ => vec![c.clone()],
            })
            .collect();
        f
    }

    /// reqwest-mt's worker threads: as many as parafetch's most loops.
    fn workers(&self) -> usize {
        self.threads.iter().copied().max().unwrap_or(2).max(2)
    }
}

fn usage(at: &str) -> ! {
    eprintln!(
        "compare: bad argument {at:?}\n\
         flags: --quick (1 run, counts / 10, C10K at 1000) | --runs N (default 5) |\n\
         --scale F (request counts x F) | --only TEXT (cells whose name contains TEXT; repeat) |\n\
         --clients parafetch,curl_multi,reqwest,reqwest-mt | --threads 1,2 (parafetch's loops;\n\
         the largest is reqwest-mt's workers) | --c10k N (default 10000) | --no-c10k |\n\
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
    tls: Tls,
}

/// http, or https with TLS session resumption on or off in every client.
#[derive(Clone, Copy, PartialEq)]
enum Tls {
    Off,
    Resume,
    NoResume,
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
                    tls: Tls::Off,
                });
            }
        }
    }
    // https to the same nginx (a leaf of the test CA, ECDSA P-256; TLS 1.3 with session
    // tickets, nginx's default) at 127.0.0.1, so no SNI (the leaf names the address).
    // Keep-alive: a handshake per connection, then record encryption and decryption.
    // Close: a handshake per request, resumed from the client's session cache, or a full
    // one each time with `no-resume`.
    for (name, n, count, keep_alive, tls) in [
        ("https keep-alive 1 KiB N=20", 20, 60_000, true, Tls::Resume),
        (
            "https keep-alive 1 KiB N=200",
            200,
            60_000,
            true,
            Tls::Resume,
        ),
        ("https close 1 KiB N=20", 20, 6_000, false, Tls::Resume),
        (
            "https close 1 KiB N=20 no-resume",
            20,
            3_000,
            false,
            Tls::NoResume,
        ),
    ] {
        v.push(CellSpec {
            name: name.into(),
            target: Target::Files,
            path: "/1k",
            n,
            count: scaled(count),
            keep_alive,
            proxied: false,
            tls,
        });
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
        tls: Tls::Off,
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
        tls: Tls::Off,
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
            tls: Tls::Off,
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
    /// The user-space part of `cpu_us`.
    user_us: f64,
    rss_kb: f64,
    ok: u64,
    failed: u64,
    conns: u64,
    /// Responses over a resumed TLS session, where the client reports it (parafetch).
    resumed: Option<u64>,
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
    fn user_per_req(&self) -> f64 {
        self.user_us / (self.ok + self.failed).max(1) as f64
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
    /// On the TLS listener, when there is one.
    fn https_url(&self, path: &str) -> Option<String> {
        match self {
            Served::Nginx(n) => n.https.map(|a| format!("https://{a}{path}")),
            Served::Builtin(_) => None,
        }
    }
}

/// How a child is run besides its cell: where the proxy and the test CA are, and
/// reqwest-mt's workers.
struct ChildEnv<'a> {
    proxy: Option<&'a str>,
    ca_path: Option<&'a std::path::Path>,
    workers: usize,
}

fn run_child(client: &str, url: &str, cell: &CellSpec, served: &Served, env: &ChildEnv) -> Sample {
    let before = served.accepts();
    let exe = std::env::current_exe().expect("current exe");
    // COMPARE_WRAP="strace -f -c -o /tmp/{client}.txt" runs each child under a tool
    // (`{client}` becomes the client's name), to see where a cell's CPU goes.
    let wrap: Vec<String> = std::env::var("COMPARE_WRAP")
        .map(|w| {
            let name = client.replace([' ', '='], "_");
            w.split_whitespace()
                .map(|a| a.replace("{client}", &name))
                .collect()
        })
        .unwrap_or_default();
    let mut cmd = match wrap.split_first() {
        Some((tool, args)) => {
            let mut c = Command::new(tool);
            c.args(args).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.arg("--child")
        .args([client, url])
        .arg(cell.n.to_string())
        .arg(cell.count.to_string())
        .arg(if cell.keep_alive {
            "keepalive"
        } else {
            "close"
        })
        .args(["--workers", &env.workers.to_string()]);
    if let Some(p) = env.proxy.filter(|_| cell.proxied) {
        cmd.args(["--proxy", p]);
    }
    if cell.tls != Tls::Off {
        cmd.arg("--ca")
            .arg(env.ca_path.expect("a CA file for https cells"));
    }
    if cell.tls == Tls::NoResume {
        cmd.arg("--no-resume");
    }
    let out = cmd
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
            user_us: f64::NAN,
            rss_kb: f64::NAN,
            ok: 0,
            failed: cell.count as u64,
            conns,
            resumed: None,
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
        user_us: field("user_us"),
        rss_kb: field("rss_kb"),
        ok: field("ok") as u64,
        failed: field("failed") as u64,
        conns,
        resumed: text
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("resumed=")?.parse().ok()),
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
    let leaf = &pki().good;
    let nginx = if flags.builtin {
        None
    } else {
        Nginx::start(&files, Some((&leaf.chain_pem, &leaf.key_pem)))
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
            "{} (1 worker, access log off, keepalive_requests 100000000, sendfile; \
             https: TLS 1.2 and 1.3, session tickets on, an ECDSA P-256 leaf of a test CA)",
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
    // https needs nginx (the built-in server speaks http only); the children read the
    // test CA from a file in nginx's temp dir.
    let ca_path = nginx.as_ref().map(|n| n.dir().join("ca.pem"));
    match &ca_path {
        Some(path) => std::fs::write(path, &pki().ca_pem).expect("write the test CA"),
        None if specs.iter().any(|s| s.tls != Tls::Off) => {
            eprintln!("no nginx: the https cells are left out");
            specs.retain(|s| s.tls == Tls::Off);
        }
        None => {}
    }
    let env = ChildEnv {
        proxy: proxy_url.as_deref(),
        ca_path: ca_path.as_deref(),
        workers: flags.workers(),
    };
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

    println!("{}", machine(got, &server_name, flags.workers()));
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
        let url = match spec.tls {
            Tls::Off => served.url(spec.path),
            _ => served.https_url(spec.path).expect("an https listener"),
        };
        eprint!("{} ({} requests) ", spec.name, spec.count);
        let mut samples = vec![Vec::new(); flags.clients.len()];
        for _ in 0..flags.runs {
            for (i, client) in flags.clients.iter().enumerate() {
                samples[i].push(run_child(client, &url, &spec, &served, &env));
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

fn machine(nofile: u64, server: &str, workers: usize) -> String {
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
         peers: libcurl {} (the system's, {}), reqwest 0.13 + tokio 1 current-thread \
         (reqwest-mt: multi-thread, {workers} workers), https: rustls 0.23 + ring",
        kernel.trim(),
        curl.version(),
        curl.ssl_version().unwrap_or("no TLS"),
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
    out.push_str(&resumption(flags, results));
    out.push_str(&cpu_split(flags, results));
    let Some(pf) = flags.clients.iter().position(|c| c == "parafetch") else {
        return out;
    };
    // parafetch (1 loop) against every other client, its other thread counts included;
    // then each `parafetch t=N` against the multi-core peer.
    let mt = flags.clients.iter().position(|c| c == "reqwest-mt");
    let mut pairs: Vec<(usize, usize)> = (0..flags.clients.len())
        .filter(|&i| i != pf)
        .map(|i| (pf, i))
        .collect();
    for (i, c) in flags.clients.iter().enumerate() {
        if let (Some(mt), Some(t)) = (mt, parafetch_threads(c))
            && t > 1
        {
            pairs.push((i, mt));
        }
    }
    out.push_str(
        "\nRatios parafetch / peer, one per run (same round of A B C); median (min–max). \
         req/s > 1 and CPU, RSS < 1 favour the first.\n\n\
         | cell | pair | req/s | CPU µs/req | peak RSS |\n|---|---|---:|---:|---:|\n",
    );
    let mut ratios = Vec::new();
    for r in results {
        for &(a, b) in &pairs {
            let ratio = |f: fn(&Sample) -> f64| {
                r.samples[a]
                    .iter()
                    .zip(&r.samples[b])
                    .map(|(x, y)| f(x) / f(y))
                    .collect::<Vec<_>>()
            };
            let rps = ratio(Sample::req_per_s);
            let cpu = ratio(Sample::cpu_per_req);
            let rss = ratio(Sample::rss_mib);
            let (first, peer) = (&flags.clients[a], &flags.clients[b]);
            out.push_str(&format!(
                "| {} | {first} / {peer} | {} | {} | {} |\n",
                r.spec.name,
                spread(&rps, 2),
                spread(&cpu, 2),
                spread(&rss, 2)
            ));
            // Targets look pairs with parafetch up by the peer's name alone.
            let key = if a == pf {
                peer.clone()
            } else {
                format!("{first} / {peer}")
            };
            ratios.push((r.spec.name.clone(), key, rps, cpu, rss));
        }
    }
    out.push_str(&targets(flags, results, pf, &ratios));
    out
}

/// For the https cells, the share of responses that came over a resumed TLS session, from
/// the clients that report it (parafetch's `Response::tls`).
fn resumption(flags: &Flags, results: &[CellResult]) -> String {
    let mut out = String::new();
    for r in results.iter().filter(|r| r.spec.tls != Tls::Off) {
        for (i, client) in flags.clients.iter().enumerate() {
            let shares: Vec<f64> = r.samples[i]
                .iter()
                .filter_map(|s| Some(s.resumed? as f64 / s.ok.max(1) as f64 * 100.0))
                .collect();
            if !shares.is_empty() {
                out.push_str(&format!(
                    "- {}, {client}: {}% of responses over a resumed TLS session\n",
                    r.spec.name,
                    spread(&shares, 1)
                ));
            }
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("\nTLS session resumption (as the client saw it):\n\n{out}")
    }
}

/// parafetch's CPU per request split into user space and kernel, per thread count: what
/// the loops themselves cost, apart from the kernel's share (on loopback, the sender's
/// system time includes delivering to, and waking, the server).
fn cpu_split(flags: &Flags, results: &[CellResult]) -> String {
    let mut out = String::new();
    for r in results {
        for (i, client) in flags.clients.iter().enumerate() {
            if !client.starts_with("parafetch") {
                continue;
            }
            let col = |f: fn(&Sample) -> f64| median(r.samples[i].iter().map(f).collect());
            let (user, all) = (col(Sample::user_per_req), col(Sample::cpu_per_req));
            out.push_str(&format!(
                "| {} | {client} | {user:.1} | {:.1} | {all:.1} |\n",
                r.spec.name,
                all - user
            ));
        }
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "\nparafetch's CPU per request, user space and kernel (µs, medians):\n\n         | cell | client | user | sys | total |\n|---|---|---:|---:|---:|\n{out}"
    )
}

/// The targets, judged on median per-run ratios.
fn targets(flags: &Flags, results: &[CellResult], pf: usize, ratios: &[Ratios]) -> String {
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
    // More loops may buy req/s, never CPU per request (the server competes for the cores,
    // so req/s alone cannot say whether parafetch scales): t=N against t=1, both fed
    // through a Handle.
    let one = flags.clients.iter().position(|c| c == "parafetch t=1");
    for (i, client) in flags.clients.iter().enumerate() {
        let Some(one) = one else { break };
        if parafetch_threads(client).is_none_or(|t| t == 1) {
            continue;
        }
        for r in results {
            let grew: Vec<f64> = r.samples[i]
                .iter()
                .zip(&r.samples[one])
                .map(|(t, one)| t.cpu_per_req() / one.cpu_per_req())
                .collect();
            check(
                format!("{}: CPU/req {client} / parafetch t=1", r.spec.name),
                Some(median(grew)),
                |v| v <= 1.1,
                "≤ 1.1",
            );
        }
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
