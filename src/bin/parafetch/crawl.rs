//! `parafetch crawl`: a crawler on the library. Seeds go in a frontier; the loop keeps the
//! fetcher fed from it; each page's links are extracted while its body streams in
//! (`parafetch::crawl::LinkExtractor`), normalised, filtered by scope, depth and patterns,
//! de-duplicated by a compact seen-set, and queued. Output: JSON lines, bodies (`-o`), a
//! WARC file (`--warc`). Ctrl-C stops starting pages, lets those in flight finish (a
//! second Ctrl-C abandons them) and saves the frontier and the seen-set (`--state`), so a
//! rerun carries on without fetching a page twice.
//!
//! Owns the crawl's state and its files; fetching, politeness and robots.txt are the
//! library's.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parafetch::crawl::{
    LinkExtractor, MAX_SITEMAP_BYTES, Scope, ScopeFilter, SeenSet, gunzip_bounded, is_html,
    normalize, parse_sitemap,
};
use parafetch::robots::{Robots, agent_token};
use parafetch::warc::{Captured, WarcWriter};
use parafetch::{Done, Fetcher, Queue, Request, Response};
use serde_json::{Value, json};
use url::Url;

use crate::Usage;
use crate::args::{CrawlArgs, ScopeArg};
use crate::output::{Failure, Outcome, json_record};

/// Most sitemap files one crawl reads (an index may list many).
const MAX_SITEMAP_FILES: usize = 100;
/// Most URLs kept from one sitemap file.
const MAX_SITEMAP_URLS: usize = 50_000;
/// How often the state is saved while crawling (besides at the end and on Ctrl-C).
const SAVE_EVERY: Duration = Duration::from_secs(60);
/// How long the loop waits at most before looking at the signals again.
const SIGNAL_CHECK: Duration = Duration::from_millis(200);

/// A page to fetch.
#[derive(Clone, Debug)]
struct Page {
    url: Url,
    depth: u32,
    parent: Option<String>,
}

/// What a crawl's own (non-page) request is for.
#[derive(Clone, Copy)]
enum Job {
    /// A robots.txt read for its `Sitemap:` lines.
    SitemapsOf,
    /// A sitemap (or sitemap index).
    Sitemap,
}

/// Counts for the summary.
#[derive(Default)]
struct Tally {
    pages: u64,
    failed: u64,
    robots_refused: u64,
    bytes: u64,
    links_new: u64,
    sitemap_urls: u64,
    by_kind: std::collections::BTreeMap<&'static str, u64>,
}

struct State {
    frontier: VecDeque<Page>,
    seen: SeenSet,
    scope: ScopeFilter,
    max_depth: Option<u32>,
    /// Pages handed to the fetcher (finished or not), for `--max-pages`.
    started: u64,
    max_pages: Option<u64>,
    /// Pages in flight by id, to put back in the frontier if abandoned.
    in_flight: HashMap<u64, Page>,
    next_id: u64,
    sitemap_files: usize,
    warc: Option<WarcWriter<BufWriter<File>>>,
    warc_error: Option<io::Error>,
    jsonl: bool,
    quiet: bool,
    output_dir: Option<PathBuf>,
    tally: Tally,
    progress: Option<ProgressBar>,
    started_at: Instant,
    stdout_closed: bool,
}

impl State {
    /// Queues `url` (normalised) if it is in scope, within depth and never seen.
    fn discover(&mut self, url: &Url, depth: u32, parent: Option<&str>) -> bool {
        let Some(url) = normalize(url) else {
            return false;
        };
        if self.max_depth.is_some_and(|max| depth > max) || !self.scope.allows(&url) {
            return false;
        }
        if !self.seen.insert(&url) {
            return false;
        }
        self.frontier.push_back(Page {
            url,
            depth,
            parent: parent.map(str::to_owned),
        });
        true
    }

    fn print(&mut self, line: &str) {
        if self.stdout_closed {
            return;
        }
        let write = || writeln!(io::stdout().lock(), "{line}");
        let r = match &self.progress {
            Some(bar) => bar.suspend(write),
            None => write(),
        };
        self.stdout_closed = r.is_err();
    }

    fn update_progress(&self, in_flight: usize) {
        if let Some(bar) = &self.progress {
            let t = &self.tally;
            bar.set_message(format!(
                "{} pages, {} queued, {in_flight} in flight, {:.1}/s, {} errors",
                t.pages,
                self.frontier.len(),
                t.pages as f64 / self.started_at.elapsed().as_secs_f64().max(1e-9),
                t.failed
            ));
        }
    }
}

type Shared = Rc<RefCell<State>>;

/// Runs `parafetch crawl`.
pub fn run(args: CrawlArgs) -> Result<ExitCode, Usage> {
    refuse_fixed_credentials(&args)?;
    let state_dir = args.state.clone();
    let resumed = match &state_dir {
        Some(dir) => load_state(dir).map_err(|e| {
            Usage(format!(
                "cannot read the crawl state in {}: {e}",
                dir.display()
            ))
        })?,
        None => None,
    };
    if args.fetch.threads > 1 {
        // The frontier and its callbacks live on one thread: a crawl runs one loop.
        return Err(Usage(
            "--threads: a crawl runs one loop (its frontier lives on one thread); \
             run several crawls over disjoint scopes to use more cores"
                .into(),
        ));
    }
    let (mut builder, _) = crate::builder(&args.fetch)?;
    if let Some(jar) = resumed.as_ref().and_then(|r| r.cookies.clone()) {
        builder = builder.cookie_jar(jar); // the session of the interrupted run
    }
    let mut b = builder
        .follow_redirects(false) // each hop is a page: recorded, scoped, archived
        .decompress(true)
        .obey_robots(!args.no_robots)
        .capture_wire(args.warc.is_some());
    if args.fetch.per_host.is_none() {
        b = b.per_host(2);
    }
    let in_flight = args.fetch.max_in_flight;
    b = b.backlog(in_flight.saturating_mul(4));
    let user_agent = args
        .fetch
        .user_agent
        .clone()
        .unwrap_or_else(|| concat!("parafetch/", env!("CARGO_PKG_VERSION")).to_owned());
    let mut fetcher: Fetcher<u64> = b
        .try_build()
        .map_err(|e| Usage(format!("cannot build the fetcher: {e:#}")))?;

    let seeds = seeds(&args)?;
    let scope = scope_filter(&args, &seeds)?;

    crate::create_output_dir(args.fetch.output_dir.as_deref())?;
    let warc = match &args.warc {
        Some(path) => Some(
            open_warc(path, &args, resumed.is_some())
                .map_err(|e| Usage(format!("cannot open the WARC file {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let progress = (!args.fetch.quiet && io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} {spinner} {msg}")
                .expect("a valid progress template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let state: Shared = Rc::new(RefCell::new(State {
        frontier: VecDeque::new(),
        seen: SeenSet::new(),
        scope,
        max_depth: args.depth,
        started: 0,
        max_pages: args.max_pages,
        in_flight: HashMap::new(),
        next_id: 0,
        sitemap_files: 0,
        warc,
        warc_error: None,
        jsonl: args.fetch.jsonl,
        quiet: args.fetch.quiet,
        output_dir: args.fetch.output_dir.clone(),
        tally: Tally::default(),
        progress,
        started_at: Instant::now(),
        stdout_closed: false,
    }));
    match resumed {
        Some(saved) => {
            let mut s = state.borrow_mut();
            s.seen = saved.seen;
            s.frontier = saved.frontier;
            s.next_id = saved.next_id;
            s.started = saved.started;
        }
        None => {
            let mut s = state.borrow_mut();
            for seed in &seeds {
                s.discover(seed, 0, None);
            }
        }
    }
    let max_html = args.max_html_bytes;
    let max_body = args.fetch.max_body.unwrap_or(parafetch::DEFAULT_MAX_BODY);
    // Again on a resumed crawl: sitemap requests are not saved, and the seen-set drops
    // what was queued already.
    if args.sitemaps {
        start_sitemaps(&mut fetcher, &state, &seeds, &user_agent);
    }

    let signals = Arc::new(AtomicUsize::new(0));
    watch_signals(&signals)?;
    let mut last_save = Instant::now();
    let mut abandoned = false;
    loop {
        let stops = signals.load(Ordering::Relaxed);
        if stops >= 2 {
            abandoned = true;
            break;
        }
        if stops == 0 {
            feed(
                &mut fetcher,
                &state,
                in_flight,
                max_html,
                max_body,
                args.warc.is_some(),
            );
        }
        if fetcher.pending() == 0 {
            let s = state.borrow();
            let more = !s.frontier.is_empty() && s.max_pages.is_none_or(|m| s.started < m);
            if stops > 0 || !more {
                break;
            }
        }
        fetcher.poll(Some(SIGNAL_CHECK));
        state.borrow().update_progress(fetcher.running());
        if let Some(dir) = &state_dir {
            if last_save.elapsed() >= SAVE_EVERY {
                // A failed save is tried again at the next interval and at the end; the
                // crawl goes on meanwhile.
                if let Err(e) = save_state(dir, &state.borrow(), fetcher.jar("")) {
                    eprintln!("parafetch: {}", state_error(dir, &e).0);
                }
                last_save = Instant::now();
            }
        }
    }
    let interrupted = signals.load(Ordering::Relaxed) > 0;
    let polite = fetcher.polite_stats();
    let jar = fetcher.jar("").cloned();
    if abandoned {
        // A second Ctrl-C: the pages in flight go back to the frontier, unfetched.
        let mut s = state.borrow_mut();
        let back: Vec<Page> = s.in_flight.drain().map(|(_, p)| p).collect();
        for p in back {
            s.frontier.push_front(p);
        }
        // The fetcher would finish them on drop: the process exits without that.
        std::mem::forget(fetcher);
    } else {
        fetcher.finish_all_requests();
        drop(fetcher);
    }
    let mut s = state.borrow_mut();
    let mut save_failed = false;
    if let Some(dir) = &state_dir {
        if let Err(e) = save_state(dir, &s, jar.as_ref()) {
            eprintln!("parafetch: {}", state_error(dir, &e).0);
            save_failed = true;
        }
    }
    if let (Some(path), Some(jar)) = (&args.fetch.cookie_jar, &jar) {
        if let Err(e) = crate::write_jar(jar, path) {
            eprintln!(
                "parafetch: cannot write the cookie jar {}: {e}",
                path.display()
            );
            save_failed = true;
        }
    }
    let warc_failed = match s.warc.take().map(WarcWriter::finish) {
        Some(Err(e)) => Some(e),
        _ => s.warc_error.take(),
    };
    if let Some(bar) = &s.progress {
        bar.finish_and_clear();
    }
    summary(&s, polite, interrupted);
    if let Some(e) = warc_failed {
        eprintln!("parafetch: writing the WARC file failed: {e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(if interrupted {
        ExitCode::from(130)
    } else if s.tally.failed > 0 || save_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A crawl reaches hosts the seeds do not name (and follows redirects as links, past the
/// fetcher's cross-origin stripping): credentials fixed for every request would go to all
/// of them. Cookies belong in a cookie file (-b FILE), whose cookies are sent by domain.
fn refuse_fixed_credentials(args: &CrawlArgs) -> Result<(), Usage> {
    let secret = args.fetch.header.iter().find(|(name, _)| {
        ["authorization", "cookie", "proxy-authorization"]
            .iter()
            .any(|s| name.eq_ignore_ascii_case(s))
    });
    if let Some((name, _)) = secret {
        return Err(Usage(format!(
            "-H {name}: a crawl would send it to every host it reaches; \
             use a cookie file (-b FILE) for a session"
        )));
    }
    if args
        .fetch
        .cookie
        .as_deref()
        .is_some_and(|c| c.contains('='))
    {
        return Err(Usage(
            "-b NAME=VALUE: a crawl would send it to every host it reaches; \
             use a cookie file (-b FILE), whose cookies go by domain"
                .into(),
        ));
    }
    Ok(())
}

fn state_error(dir: &Path, e: &io::Error) -> Usage {
    Usage(format!(
        "cannot save the crawl state in {}: {e}",
        dir.display()
    ))
}

/// The seeds: arguments and `-i`, each a valid http(s) URL.
fn seeds(args: &CrawlArgs) -> Result<Vec<Url>, Usage> {
    let entries = crate::input::read(&args.fetch.urls, args.fetch.input.as_deref())
        .map_err(|e| Usage(format!("cannot read the seed list: {e}")))?;
    if entries.is_empty() {
        return Err(Usage("no seed URLs given".into()));
    }
    let mut seeds = Vec::new();
    for e in entries {
        let url = Url::parse(&e.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| Usage(format!("{}: not an http(s) URL: {}", e.origin, e.url)))?;
        seeds.push(url);
    }
    Ok(seeds)
}

fn scope_filter(args: &CrawlArgs, seeds: &[Url]) -> Result<ScopeFilter, Usage> {
    let scope = match args.scope {
        ScopeArg::Host => Scope::Host,
        ScopeArg::Domain => Scope::Domain,
        ScopeArg::Prefix => Scope::Prefix,
        ScopeArg::Any => Scope::Any,
    };
    let filter = ScopeFilter::new(scope, seeds.iter())
        .include(&args.include)
        .map_err(|e| Usage(format!("--include: {e}")))?
        .exclude(&args.exclude)
        .map_err(|e| Usage(format!("--exclude: {e}")))?;
    Ok(filter)
}

/// Hands pages from the frontier to the fetcher while it has room.
fn feed(
    fetcher: &mut Fetcher<u64>,
    state: &Shared,
    in_flight: usize,
    max_html: usize,
    max_body: u64,
    capture: bool,
) {
    let mut passed_over = Vec::new();
    while fetcher.pending() < in_flight.saturating_mul(2) {
        let (page, id) = {
            let mut s = state.borrow_mut();
            if s.max_pages.is_some_and(|m| s.started >= m) {
                break;
            }
            let Some(page) = next_page(&mut s, in_flight, &mut passed_over) else {
                break;
            };
            s.started += 1;
            let id = s.next_id;
            s.next_id += 1;
            s.in_flight.insert(id, page.clone());
            (page, id)
        };
        start_page(fetcher, state, page, id, max_html, max_body, capture);
    }
    // Pages passed over keep their place at the front.
    let mut s = state.borrow_mut();
    for p in passed_over.into_iter().rev() {
        s.frontier.push_front(p);
    }
}

/// Pages of one host looked at per feed before it gives up looking further.
const LOOK_AHEAD: usize = 1000;

/// The next page whose host does not already hold `in_flight` pages handed to the
/// fetcher: a host slowed by its Crawl-delay or a backoff must not take every slot while
/// other hosts' pages wait behind it in the frontier. Pages passed over go to
/// `passed_over`, in order.
fn next_page(s: &mut State, in_flight: usize, passed_over: &mut Vec<Page>) -> Option<Page> {
    for _ in 0..LOOK_AHEAD {
        let page = s.frontier.pop_front()?;
        let host = page.url.host_str().unwrap_or("");
        let busy = s
            .in_flight
            .values()
            .filter(|p| p.url.host_str() == Some(host))
            .count();
        if busy < in_flight.max(1) {
            return Some(page);
        }
        passed_over.push(page);
    }
    None
}

fn start_page(
    fetcher: &mut Fetcher<u64>,
    state: &Shared,
    page: Page,
    id: u64,
    max_html: usize,
    max_body: u64,
    capture: bool,
) {
    let extractor = Arc::new(Mutex::new(Some(LinkExtractor::new(&page.url, max_html))));
    let file_path = state
        .borrow()
        .output_dir
        .as_ref()
        .map(|d| d.join(format!("{id}.body")));
    // Unbuffered: the body arrives in pieces of kilobytes, and an error must fail the page.
    let mut file = file_path.as_ref().and_then(|p| File::create(p).ok());
    let feeding = Arc::clone(&extractor);
    let file_path_for_refusal = file_path.clone();
    let req = Request::get(page.url.as_str())
        .max_body(max_body)
        .capture_wire(capture)
        .on_body(move |chunk| {
            if let Some(e) = feeding.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                e.feed(chunk);
            }
            if let Some(f) = &mut file {
                f.write_all(chunk)?;
            }
            Ok(())
        });
    let shared = Rc::clone(state);
    let accepted = Instant::now();
    let on_done = move |done: Done<u64>, _: &mut Queue<u64>| {
        let extractor = extractor.lock().unwrap_or_else(|p| p.into_inner()).take();
        page_done(
            &shared,
            id,
            page,
            done,
            extractor,
            file_path,
            accepted.elapsed(),
        );
    };
    if let Err(e) = fetcher.start_request(req, on_done, id) {
        // Refused before it started (a URL that normalised but will not parse again).
        if let Some(p) = &file_path_for_refusal {
            let _ = std::fs::remove_file(p);
        }
        let mut s = state.borrow_mut();
        s.in_flight.remove(&id);
        s.tally.failed += 1;
        *s.tally.by_kind.entry(e.kind().as_str()).or_default() += 1;
    }
}

/// A page finished: links, output, archive.
fn page_done(
    state: &Shared,
    id: u64,
    page: Page,
    done: Done<u64>,
    extractor: Option<LinkExtractor>,
    file: Option<PathBuf>,
    elapsed: Duration,
) {
    let mut s = state.borrow_mut();
    s.in_flight.remove(&id);
    let (links, new) = match &done.result {
        Ok(r) => {
            s.tally.pages += 1;
            s.tally.bytes += r.body_len;
            archive(&mut s, r);
            links_of(&mut s, &page, r, extractor)
        }
        Err(e) => {
            if e.kind() == parafetch::ErrorKind::Robots {
                s.tally.robots_refused += 1; // the crawl obeying, not failing
            } else {
                s.tally.failed += 1;
                *s.tally.by_kind.entry(e.kind().as_str()).or_default() += 1;
            }
            if let Some(p) = &file {
                let _ = std::fs::remove_file(p);
            }
            (0, 0)
        }
    };
    s.tally.links_new += new as u64;
    let outcome = Outcome {
        index: id as usize,
        url: done.url,
        result: done.result.map_err(|e| Failure::from(&e)),
        file: file.filter(|_| s.output_dir.is_some()),
        elapsed,
    };
    let line = if s.jsonl {
        let mut v = json_record(&outcome);
        if let Value::Object(m) = &mut v {
            m.insert("depth".into(), json!(page.depth));
            m.insert("parent".into(), json!(page.parent));
            m.insert("links".into(), json!(links));
            m.insert("links_new".into(), json!(new));
        }
        Some(v.to_string())
    } else if !s.quiet {
        Some(format!(
            "{} {} {} (depth {}, {links} links, {new} new)",
            match &outcome.result {
                Ok(r) => r.status.to_string(),
                Err(f) => format!("ERR {}", f.kind),
            },
            outcome.url,
            outcome.result.as_ref().map_or(0, |r| r.body_len),
            page.depth
        ))
    } else {
        None
    };
    if let Some(line) = line {
        s.print(&line);
    }
}

/// The links of a finished page, queued when new: an HTML page's links, or a redirect's
/// `Location`. Returns (links found, links new).
fn links_of(
    s: &mut State,
    page: &Page,
    r: &Response,
    extractor: Option<LinkExtractor>,
) -> (usize, usize) {
    let mut found = Vec::new();
    if (300..400).contains(&r.status) {
        if let Some(next) = r.headers.get("location").and_then(|l| r.url.join(l).ok()) {
            found.push((next, page.depth)); // a redirect's target is the same page
        }
    } else if let Some(extractor) = extractor
        .filter(|_| (200..300).contains(&r.status) && is_html(r.headers.get("content-type")))
    {
        let links = extractor.finish_at(&r.url);
        found.extend(links.urls.into_iter().map(|u| (u, page.depth + 1)));
    }
    let parent = r.url.as_str();
    let mut new = 0;
    for (url, depth) in &found {
        if s.discover(url, *depth, Some(parent)) {
            new += 1;
        }
    }
    (found.len(), new)
}

/// Writes the page's exchange to the WARC file, when there is one.
fn archive(s: &mut State, r: &Response) {
    let (Some(w), Some(wire)) = (s.warc.as_mut(), r.wire.as_ref()) else {
        return;
    };
    let captured = Captured {
        target_uri: r.url.as_str(),
        date: wire.sent_at,
        ip: r.proxy.is_none().then(|| r.remote_addr.ip()),
        request: &wire.request,
        response: &wire.response,
    };
    if let Err(e) = w.write_exchange(&captured) {
        // The file may end in a partial record: write no more to it, fail at the end.
        s.warc = None;
        s.warc_error = Some(e);
    }
}

fn open_warc(
    path: &Path,
    args: &CrawlArgs,
    append: bool,
) -> io::Result<WarcWriter<BufWriter<File>>> {
    let file = OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(path)?;
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    // Seeds without userinfo: a password in a seed URL stays out of the archive.
    let seeds: Vec<String> = args
        .fetch
        .urls
        .iter()
        .map(|u| match Url::parse(u) {
            Ok(mut url) => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.to_string()
            }
            Err(_) => String::from("(not a URL)"),
        })
        .collect();
    let seeds = seeds.join(" ");
    let robots = if args.no_robots { "ignore" } else { "obey" };
    WarcWriter::new(
        BufWriter::new(file),
        &name,
        &[
            ("robots", robots),
            ("description", &format!("parafetch crawl {seeds}")),
        ],
    )
}

/// Reads each seed origin's robots.txt for `Sitemap:` lines, and its `/sitemap.xml`.
fn start_sitemaps(fetcher: &mut Fetcher<u64>, state: &Shared, seeds: &[Url], agent: &str) {
    let mut origins: Vec<Url> = Vec::new();
    for seed in seeds {
        let mut o = seed.clone();
        o.set_path("/");
        o.set_query(None);
        o.set_fragment(None);
        if !origins.contains(&o) {
            origins.push(o);
        }
    }
    for origin in origins {
        let jobs = [
            ("/robots.txt", Job::SitemapsOf),
            ("/sitemap.xml", Job::Sitemap),
        ];
        for (path, job) in jobs {
            let Ok(url) = origin.join(path) else { continue };
            if let Some((req, on_done)) = meta(state, url, job, agent) {
                let _ = fetcher.start_request(req, on_done, u64::MAX);
            }
        }
    }
}

/// A callback of the crawl's own requests.
type Callback = Box<dyn FnOnce(Done<u64>, &mut Queue<u64>)>;

/// A robots.txt or sitemap request (not a page: no record, no links), within the bound on
/// sitemap files.
fn meta(state: &Shared, url: Url, job: Job, agent: &str) -> Option<(Request, Callback)> {
    {
        let mut s = state.borrow_mut();
        // A sitemap a robots.txt or an index names elsewhere is not read: the crawl stays
        // in its scope (an index must not send it to other, maybe internal, hosts).
        if s.sitemap_files >= MAX_SITEMAP_FILES || !s.scope.in_scope(&url) {
            return None;
        }
        s.sitemap_files += 1;
    }
    let shared = Rc::clone(state);
    let agent = agent.to_owned();
    // robots.txt and sitemaps move (http to https, say): their redirects are followed.
    let req = Request::get(url.as_str())
        .max_body(MAX_SITEMAP_BYTES as u64)
        .follow_redirects(true, 5);
    let on_done = move |done: Done<u64>, queue: &mut Queue<u64>| {
        let Ok(r) = done.result else { return };
        if !(200..300).contains(&r.status) {
            return;
        }
        let more: Vec<Url> = match job {
            Job::SitemapsOf => Robots::parse(&r.body, agent_token(&agent))
                .sitemaps()
                .iter()
                .filter_map(|u| Url::parse(u).ok())
                .collect(),
            Job::Sitemap => {
                let xml = if r.body.starts_with(&[0x1f, 0x8b]) {
                    gunzip_bounded(&r.body, MAX_SITEMAP_BYTES).unwrap_or_default()
                } else {
                    r.body
                };
                let map = parse_sitemap(&xml, MAX_SITEMAP_URLS);
                let mut s = shared.borrow_mut();
                for page in &map.pages {
                    if s.discover(page, 0, None) {
                        s.tally.sitemap_urls += 1;
                    }
                }
                map.sitemaps
            }
        };
        for url in more {
            if let Some((req, cb)) = meta(&shared, url, Job::Sitemap, &agent) {
                let _ = queue.start_request(req, cb, u64::MAX);
            }
        }
    };
    Some((req, Box::new(on_done)))
}

/// Counts SIGINT and SIGTERM: the first stops the crawl gently, the second abandons.
fn watch_signals(count: &Arc<AtomicUsize>) -> Result<(), Usage> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Usage(format!("cannot watch for Ctrl-C: {e}")))?;
    let count = Arc::clone(count);
    std::thread::spawn(move || {
        for _ in signals.forever() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    Ok(())
}

/// What a state directory holds.
struct Saved {
    seen: SeenSet,
    frontier: VecDeque<Page>,
    next_id: u64,
    started: u64,
    cookies: Option<parafetch::CookieJar>,
}

/// The crawl state in `dir`, if a crawl saved one there.
///
/// `crawl.json` names the generation whose files form the state; a save writes a new
/// generation's files and then `crawl.json`, so a crash mid-save leaves the last complete
/// state in force.
fn load_state(dir: &Path) -> io::Result<Option<Saved>> {
    let manifest = dir.join("crawl.json");
    if !manifest.exists() {
        return Ok(None);
    }
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let meta: Value = serde_json::from_slice(&std::fs::read(&manifest)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let generation = meta["generation"]
        .as_u64()
        .ok_or_else(|| bad("crawl.json names no generation"))?;
    let seen = SeenSet::read_from(BufReader::new(File::open(
        dir.join(format!("seen.{generation}.bin")),
    )?))?;
    let mut frontier = VecDeque::new();
    let lines = BufReader::new(File::open(
        dir.join(format!("frontier.{generation}.jsonl")),
    )?);
    for line in lines.lines() {
        let v: Value = serde_json::from_str(&line?)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let url = v["url"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| bad("a frontier line without a URL"))?;
        frontier.push_back(Page {
            url,
            depth: v["depth"].as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32,
            parent: v["parent"].as_str().map(str::to_owned),
        });
    }
    let cookies = match File::open(dir.join(format!("cookies.{generation}.txt"))) {
        Ok(f) => {
            let mut jar = parafetch::CookieJar::new();
            jar.read_netscape(BufReader::new(f))?;
            Some(jar)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok(Some(Saved {
        seen,
        frontier,
        next_id: meta["next_id"].as_u64().unwrap_or(0),
        started: meta["started"].as_u64().unwrap_or(0),
        cookies,
    }))
}

/// Saves the seen-set, the frontier (pages in flight first: they have not completed), the
/// cookie jar and the counters as a new generation, then points `crawl.json` at it and
/// removes the generation before.
fn save_state(dir: &Path, s: &State, jar: Option<&parafetch::CookieJar>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let manifest = dir.join("crawl.json");
    let previous = std::fs::read(&manifest)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["generation"].as_u64());
    let generation = previous.map_or(1, |g| g + 1);
    crate::write_atomic(&dir.join(format!("seen.{generation}.bin")), |w| {
        s.seen.write_to(w)
    })?;
    crate::write_atomic(&dir.join(format!("frontier.{generation}.jsonl")), |w| {
        for p in s.in_flight.values().chain(s.frontier.iter()) {
            let line = json!({"url": p.url.as_str(), "depth": p.depth, "parent": p.parent});
            writeln!(w, "{line}")?;
        }
        Ok(())
    })?;
    if let Some(jar) = jar {
        crate::write_atomic(&dir.join(format!("cookies.{generation}.txt")), |w| {
            jar.write_netscape(w)
        })?;
    }
    crate::write_atomic(&manifest, |w| {
        let meta = json!({
            "format": 1,
            "generation": generation,
            "next_id": s.next_id,
            "started": s.started,
        });
        writeln!(w, "{meta}")
    })?;
    if let Some(old) = previous {
        for name in [
            format!("seen.{old}.bin"),
            format!("frontier.{old}.jsonl"),
            format!("cookies.{old}.txt"),
        ] {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    Ok(())
}

fn summary(s: &State, polite: parafetch::PoliteStats, interrupted: bool) {
    let t = &s.tally;
    let wall = s.started_at.elapsed().as_secs_f64();
    let mut out = format!(
        "parafetch crawl: {} pages in {wall:.3} s ({:.1} pages/s), {} body bytes, {} links new",
        t.pages,
        t.pages as f64 / wall.max(1e-9),
        t.bytes,
        t.links_new
    );
    out.push_str(&format!("\n  failed: {}", t.failed));
    if !t.by_kind.is_empty() {
        let kinds: Vec<String> = t.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out.push_str(&format!(" ({})", kinds.join(", ")));
    }
    out.push_str(&format!(
        "\n  refused by robots.txt: {}\n  host pauses (429/503 backoff): {}",
        t.robots_refused, polite.hosts_paused
    ));
    if t.sitemap_urls > 0 {
        out.push_str(&format!("\n  from sitemaps: {}", t.sitemap_urls));
    }
    out.push_str(&format!(
        "\n  seen: {} URLs in {} bytes; queued: {}",
        s.seen.len(),
        s.seen.heap_bytes(),
        s.frontier.len() + s.in_flight.len()
    ));
    if interrupted {
        out.push_str("\n  interrupted: the frontier and seen-set are saved (with --state)");
    }
    eprintln!("{out}");
}
