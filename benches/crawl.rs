//! The crawl benchmark: `parafetch crawl` against Scrapy (a CrawlSpider with a
//! LinkExtractor, robots.txt obeyed) and `wget -r`, each crawling the Python documentation
//! (Debian's `python3-doc`) from nginx on loopback at the same concurrency. Reports pages
//! per second, client CPU per page and peak RSS, each tool in its own child process
//! (measured with `wait4`), best of `CRAWL_RUNS` runs (default 3).
//!
//! ```text
//! apt-get install nginx-light python3-doc wget
//! pip install -r .ci/requirements-bench.txt      # scrapy, into a virtualenv on PATH
//! cargo build --release --features cli && cargo bench --bench crawl --features cli
//! ```
//!
//! Prints a Markdown table; exits non-zero if a tool fails or the crawls disagree on the
//! HTML pages reached. Ratios are against Scrapy measured in the same run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use parafetch_test_support::nginx::Nginx;
use parafetch_test_support::tools::{self, PYTHON_DOCS, WGET};

/// Requests in flight for every tool (wget has one).
const CONCURRENCY: usize = 16;

/// One tool's run: what it fetched and what it cost.
#[derive(Clone, Copy, Debug)]
struct Run {
    fetched: usize,
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: u64,
}

/// Runs `cmd` to completion and measures it with `wait4`: wall time, user + system CPU,
/// peak RSS of the child alone.
fn measure(cmd: &mut Command) -> (i32, Duration, Duration, u64) {
    let t0 = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; wait4 reaps our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let wall = t0.elapsed();
    std::mem::forget(child); // reaped above
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, wall, cpu, usage.ru_maxrss as u64)
}

fn parafetch_bin() -> PathBuf {
    // target/release/deps/crawl-HASH → target/release/parafetch
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("parafetch")
}

fn run_parafetch(seed: &str, out: &Path) -> (Run, BTreeSet<String>) {
    let jsonl = out.join("parafetch.jsonl");
    let file = std::fs::File::create(&jsonl).unwrap();
    let n = CONCURRENCY.to_string();
    let (code, wall, cpu, rss) = measure(
        Command::new(parafetch_bin())
            .args([
                "crawl",
                "--jsonl",
                "-q",
                "-n",
                &n,
                "--per-host",
                &n,
                "--scope",
                "prefix",
            ])
            .arg(seed)
            .stdout(file)
            .stderr(Stdio::null()),
    );
    assert_eq!(code, 0, "parafetch crawl failed");
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let mut html = BTreeSet::new();
    let mut fetched = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["status"].is_null() {
            continue;
        }
        fetched += 1;
        let is_html = v["headers"].as_array().unwrap().iter().any(|h| {
            h[0].as_str().unwrap().eq_ignore_ascii_case("content-type")
                && h[1].as_str().unwrap().starts_with("text/html")
        });
        if v["status"] == 200 && is_html {
            html.insert(
                url::Url::parse(v["url"].as_str().unwrap())
                    .unwrap()
                    .path()
                    .to_owned(),
            );
        }
    }
    (
        Run {
            fetched,
            wall,
            cpu,
            peak_rss_kib: rss,
        },
        html,
    )
}

const SPIDER: &str = r#"
import json, sys
from scrapy.spiders import CrawlSpider, Rule
from scrapy.linkextractors import LinkExtractor

class Docs(CrawlSpider):
    name = "docs"
    # The same scope as `parafetch crawl --scope prefix`: this host, below /python/.
    # (Without allowed_domains, links to other sites whose path has /python/ in it would be
    # followed, and with no network here they fail slowly through DNS and retries.)
    allowed_domains = ["127.0.0.1"]
    rules = (Rule(LinkExtractor(allow=r"^http://127\.0\.0\.1:\d+/python/"), callback="page", follow=True),)
    html = set()

    def __init__(self, seed=None, out=None, *a, **kw):
        super().__init__(*a, **kw)
        self.start_urls = [seed]
        self.out = out

    def parse_start_url(self, response):
        return self.page(response)

    def page(self, response):
        ctype = response.headers.get(b"Content-Type", b"").decode()
        if response.status == 200 and ctype.startswith("text/html"):
            self.html.add(response.url)
        return []

    def closed(self, reason):
        stats = self.crawler.stats.get_stats()
        with open(self.out, "w") as f:
            json.dump({"fetched": stats.get("response_received_count", 0),
                       "html": sorted(self.html)}, f)
"#;

fn run_scrapy(python: &Path, seed: &str, out: &Path) -> (Run, BTreeSet<String>) {
    let spider = out.join("docs_spider.py");
    std::fs::write(&spider, SPIDER).unwrap();
    let result = out.join("scrapy.json");
    let n = CONCURRENCY.to_string();
    let (code, wall, cpu, rss) = measure(
        Command::new(python)
            .args(["-m", "scrapy", "runspider"])
            .arg(&spider)
            .arg("-a")
            .arg(format!("seed={seed}"))
            .arg("-a")
            .arg(format!("out={}", result.display()))
            .args(["-s", &format!("CONCURRENT_REQUESTS={n}")])
            .args(["-s", &format!("CONCURRENT_REQUESTS_PER_DOMAIN={n}")])
            .args(["-s", "ROBOTSTXT_OBEY=True", "-s", "DOWNLOAD_DELAY=0"])
            .args(["-s", "AUTOTHROTTLE_ENABLED=False", "-s", "LOG_LEVEL=ERROR"])
            .args([
                "-s",
                "TELNETCONSOLE_ENABLED=False",
                "-s",
                "COOKIES_ENABLED=False",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert_eq!(code, 0, "scrapy failed");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
    let html = v["html"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            url::Url::parse(u.as_str().unwrap())
                .unwrap()
                .path()
                .to_owned()
        })
        .collect();
    (
        Run {
            fetched: v["fetched"].as_u64().unwrap() as usize,
            wall,
            cpu,
            peak_rss_kib: rss,
        },
        html,
    )
}

fn run_wget(wget: &Path, seed: &str, out: &Path) -> Run {
    let dir = out.join("wget");
    let _ = std::fs::remove_dir_all(&dir);
    let log = out.join("wget.log");
    let (code, wall, cpu, rss) = measure(
        Command::new(wget)
            .args(["-r", "-l", "inf", "--no-parent", "-nv", "-o"])
            .arg(&log)
            .arg("-P")
            .arg(&dir)
            .arg(seed)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(code == 0 || code == 8, "wget failed: {code}");
    // -nv logs one line per file saved ("URL:... -> ...").
    let fetched = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(" -> "))
        .count();
    Run {
        fetched,
        wall,
        cpu,
        peak_rss_kib: rss,
    }
}

fn best(runs: &[Run]) -> Run {
    *runs.iter().min_by_key(|r| r.wall).expect("a run")
}

fn main() -> ExitCode {
    if !Path::new(PYTHON_DOCS).join("index.html").exists() {
        eprintln!("crawl bench: {PYTHON_DOCS} is missing (apt-get install python3-doc)");
        return ExitCode::FAILURE;
    }
    let (Some(wget), Some(python)) = (tools::find(&WGET), tools::find(&tools::PYTHON3)) else {
        eprintln!("crawl bench: wget or python3 missing");
        return ExitCode::FAILURE;
    };
    let scrapy_ok = Command::new(&python)
        .args(["-c", "import scrapy"])
        .status()
        .is_ok_and(|s| s.success());
    if !scrapy_ok {
        eprintln!(
            "crawl bench: scrapy is not importable by {} (pip install -r .ci/requirements-bench.txt)",
            python.display()
        );
        return ExitCode::FAILURE;
    }
    if !parafetch_bin().exists() {
        eprintln!("crawl bench: build the binary first: cargo build --release --features cli");
        return ExitCode::FAILURE;
    }
    let Some(nginx) = Nginx::start(&[], None) else {
        eprintln!("crawl bench: nginx did not start");
        return ExitCode::FAILURE;
    };
    std::os::unix::fs::symlink(PYTHON_DOCS, nginx.dir().join("www/python")).unwrap();
    let seed = nginx.url("/python/index.html");
    let out = std::env::temp_dir().join(format!("parafetch-crawl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let runs: usize = std::env::var("CRAWL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);

    let (mut ours, mut theirs, mut wgets) = (Vec::new(), Vec::new(), Vec::new());
    let (mut our_html, mut their_html) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..runs {
        let (r, h) = run_parafetch(&seed, &out);
        ours.push(r);
        our_html = h;
        let (r, h) = run_scrapy(&python, &seed, &out);
        theirs.push(r);
        their_html = h;
        wgets.push(run_wget(&wget, &seed, &out));
    }
    let (p, s, w) = (best(&ours), best(&theirs), best(&wgets));
    let per_s = |r: &Run| r.fetched as f64 / r.wall.as_secs_f64();
    let cpu_per = |r: &Run| r.cpu.as_secs_f64() * 1e6 / r.fetched as f64;
    println!(
        "Python docs ({} HTML pages) from nginx on loopback, {CONCURRENCY} in flight, best of {runs}",
        our_html.len()
    );
    println!();
    println!(
        "| client | fetched | wall (s) | pages/s | CPU per page (µs) | peak RSS (MiB) | pages/s vs Scrapy | CPU/page vs Scrapy |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, r) in [
        ("parafetch crawl", &p),
        ("Scrapy 2.19 (CrawlSpider)", &s),
        ("wget -r (1 connection)", &w),
    ] {
        println!(
            "| {name} | {} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1}x | {:.2}x |",
            r.fetched,
            r.wall.as_secs_f64(),
            per_s(r),
            cpu_per(r),
            r.peak_rss_kib as f64 / 1024.0,
            per_s(r) / per_s(&s),
            cpu_per(r) / cpu_per(&s),
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    if our_html != their_html {
        let a: Vec<_> = our_html.difference(&their_html).collect();
        let b: Vec<_> = their_html.difference(&our_html).collect();
        eprintln!("the crawls disagree on HTML pages: only parafetch {a:?}, only Scrapy {b:?}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
