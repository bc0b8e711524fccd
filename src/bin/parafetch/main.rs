//! `parafetch`: fetch many URLs at once from one thread, with curl-style options.
//!
//! ```text
//! parafetch [OPTIONS] [URL]...        fetch; see --help
//! parafetch -i urls.txt --jsonl -q    one JSON object per URL on stdout
//! parafetch demo                      the offline concurrency demo
//! ```
//!
//! Built with `--features cli` so the library keeps its lean dependency list. Every URL goes
//! through the library's callback API (`Fetcher<usize>`, the input index as the cookie);
//! callbacks hand outcomes to one [`output::Reporter`]. Exit status: 0 when every URL got a
//! response, 1 when any failed, 2 for usage errors (nothing fetched then).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod args;
mod crawl;
mod demo;
mod input;
mod output;
#[cfg(feature = "queue")]
mod redis_queue;
mod server;
#[cfg(feature = "queue")]
mod worker;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use parafetch::{
    Builder, CookieJar, Done, ErrorKind, Fetcher, Handle, PolitenessKey, Proxy, Request, Rotation,
    SendQueue,
};

use args::{Cli, Command, FetchArgs, KeyArg};
use output::{Failure, Mode, Outcome, Reporter, chain};

/// Exit status for usage errors, as clap uses.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Demo(args)) => demo::run(&args),
        Some(Command::Crawl(args)) => usage_or(crawl::run(*args)),
        #[cfg(feature = "queue")]
        Some(Command::Enqueue(args)) => usage_or(redis_queue::enqueue(args)),
        #[cfg(feature = "queue")]
        Some(Command::Results(args)) => usage_or(redis_queue::results(args)),
        #[cfg(feature = "queue")]
        Some(Command::Worker(args)) => usage_or(worker::run(*args)),
        None => usage_or(fetch(cli.fetch)),
    }
}

/// A command's exit status, or its usage error reported (exit status 2).
fn usage_or(done: Result<ExitCode, Usage>) -> ExitCode {
    done.unwrap_or_else(|Usage(msg)| {
        eprintln!("parafetch: error: {msg}\n\nFor more information, try '--help'.");
        ExitCode::from(USAGE)
    })
}

/// A usage error: reported before anything is fetched, exit status 2.
struct Usage(String);

/// Everything every request shares, beyond the builder: method, body, output directory.
struct Template {
    method: String,
    body: Option<Vec<u8>>,
    output_dir: Option<PathBuf>,
    /// The library bounds only buffered bodies by default; the command bounds every body
    /// (saved or counted) by --max-body, as its help says.
    max_body: u64,
}

fn fetch(args: FetchArgs) -> Result<ExitCode, Usage> {
    let (builder, capacity) = builder(&args)?;
    let template = template(&args)?;
    if args.urls.is_empty() && args.input.is_none() {
        return Err(Usage(
            "no URLs given: pass URLs, or -i FILE ('-' for stdin); try 'parafetch demo'".into(),
        ));
    }
    // The loops run on threads of their own (--threads, 1 by default); this thread reads
    // the input and writes the output, which arrives over a channel.
    let handle: Handle<usize> = match spawn(builder, args.cacert.as_deref())? {
        Ok(h) => h,
        Err(status) => return Ok(status),
    };
    let entries = input::read(&args.urls, args.input.as_deref()).map_err(|e| {
        let name = args.input.as_deref().unwrap_or(Path::new("-")).display();
        Usage(format!("cannot read the URL list {name}: {e}"))
    })?;
    create_output_dir(template.output_dir.as_deref())?;

    let mode = Mode {
        jsonl: args.jsonl,
        quiet: args.quiet,
    };
    let mut reporter = Reporter::new(mode, entries.len());
    let (tx, rx) = mpsc::channel::<Outcome>();
    let mut outstanding = 0usize;
    let total = entries.len();
    let mut skipped = 0;
    for (index, entry) in entries.into_iter().enumerate() {
        // Report what finished; make room first, so at most `capacity` requests (and
        // output files) are open. The submit below may still wait a little: a callback
        // sends its outcome just before the fetcher counts it done.
        while let Ok(o) = rx.try_recv() {
            outstanding -= 1;
            reporter.finish(o);
        }
        while outstanding >= capacity {
            let Ok(o) = rx.recv() else { break };
            outstanding -= 1;
            reporter.finish(o);
        }
        // The reader of our stdout is gone (`| head`): finish what runs, start no more.
        if reporter.stdout_closed() {
            skipped = total - index;
            break;
        }
        let refuse = |reporter: &mut Reporter, failure: Failure| {
            reporter.note(&format!(
                "parafetch: {}: {}: {}",
                entry.origin, failure.kind, failure.message
            ));
            reporter.finish(Outcome {
                index,
                url: entry.url.clone(),
                result: Err(failure),
                file: None,
                elapsed: Duration::ZERO,
            });
        };
        let (request, file) = match request(&template, &entry.url, index) {
            Ok(r) => r,
            Err(failure) => {
                refuse(&mut reporter, failure);
                continue;
            }
        };
        let saved = file.clone();
        let tx = tx.clone();
        let accepted = Instant::now();
        let on_done = move |done: Done<usize>, _: &mut SendQueue<usize>| {
            let (result, file) = match done.result {
                Ok(resp) => (Ok(resp), saved),
                Err(e) => {
                    // A failed body is no body: do not leave a partial file behind.
                    if let Some(path) = &saved {
                        let _ = std::fs::remove_file(path);
                    }
                    (Err(Failure::from(&e)), None)
                }
            };
            let _ = tx.send(Outcome {
                index: done.cookie,
                url: done.url,
                result,
                file,
                elapsed: accepted.elapsed(),
            });
        };
        match handle.submit(request, on_done, index) {
            Ok(()) => {
                outstanding += 1;
                reporter.accepted(index, accepted);
            }
            Err(e) => {
                if let Some(path) = &file {
                    let _ = std::fs::remove_file(path);
                }
                refuse(&mut reporter, Failure::from(&e.into_error()));
            }
        }
    }
    drop(tx);
    for o in rx.iter().take(outstanding) {
        reporter.finish(o);
    }
    let mut saved_jar_failed = false;
    let polite = handle.polite_stats();
    if let Some(path) = &args.cookie_jar {
        let jar = handle.jar("").unwrap_or_default();
        if let Err(e) = write_jar(&jar, path) {
            eprintln!(
                "parafetch: cannot write the cookie jar {}: {e}",
                path.display()
            );
            saved_jar_failed = true;
        }
    }
    handle.shutdown();
    let stats = reporter.close(skipped, polite);
    Ok(
        if stats.failed() == 0 && skipped == 0 && !saved_jar_failed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Starts the fetch loops. The only option the builder can refuse is a bad --cacert
/// bundle: a usage error. Anything else is reported here; `Err` is the exit status then.
fn spawn<C: Send + 'static>(
    builder: Builder,
    cacert: Option<&Path>,
) -> Result<Result<Handle<C>, ExitCode>, Usage> {
    match builder.spawn() {
        Ok(h) => Ok(Ok(h)),
        Err(e) if e.kind() == ErrorKind::Tls => {
            let path = cacert.unwrap_or(Path::new("-")).display();
            Err(Usage(format!("--cacert {path}: {}", chain(&e))))
        }
        Err(e) => {
            eprintln!("parafetch: error: {e:#}");
            Ok(Err(ExitCode::FAILURE))
        }
    }
}

/// Creates `-o DIR` (and its parents), when given.
fn create_output_dir(dir: Option<&Path>) -> Result<(), Usage> {
    let Some(dir) = dir else { return Ok(()) };
    std::fs::create_dir_all(dir).map_err(|e| {
        Usage(format!(
            "cannot create the output directory {}: {e}",
            dir.display()
        ))
    })
}

/// The request for one URL, and the file its body streams to (`-o`), created now.
fn request(t: &Template, url: &str, index: usize) -> Result<(Request, Option<PathBuf>), Failure> {
    let mut req = Request::new(t.method.clone(), url).max_body(t.max_body);
    if let Some(body) = &t.body {
        req = req.body(body.clone());
    }
    save_body(t, req, &format!("{index}.body"))
}

/// Where `req`'s body goes: with `-o DIR`, streamed to `DIR/NAME` (created now); without,
/// counted and dropped.
fn save_body(
    t: &Template,
    req: Request,
    name: &str,
) -> Result<(Request, Option<PathBuf>), Failure> {
    let Some(dir) = &t.output_dir else {
        // Count the body and drop it: without -o nothing needs it in memory.
        return Ok((req.on_body(|_| Ok(())), None));
    };
    let path = dir.join(name);
    let file = File::create(&path).map_err(|e| Failure {
        kind: "io",
        phase: "prepare",
        message: format!("cannot create {}: {e}", path.display()),
        attempts: 0,
        reused: None,
        proxy: None,
    })?;
    Ok((req.write_to(file), Some(path)))
}

/// A Netscape cookie file for -b; a missing file is an empty jar (as in curl).
fn read_jar(path: &Path) -> Result<CookieJar, Usage> {
    let mut jar = CookieJar::new();
    match File::open(path) {
        Ok(f) => {
            jar.read_netscape(std::io::BufReader::new(f)).map_err(|e| {
                Usage(format!(
                    "cannot read the cookie file {}: {e}",
                    path.display()
                ))
            })?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Usage(format!(
                "cannot read the cookie file {}: {e}",
                path.display()
            )));
        }
    }
    Ok(jar)
}

/// Writes the jar for -c, through a temporary file so a failure leaves the old one.
fn write_jar(jar: &CookieJar, path: &Path) -> std::io::Result<()> {
    write_atomic(path, |w| jar.write_netscape(w))
}

/// Writes `path` whole or not at all: into a temporary file beside it, synced, then renamed
/// over it (a crash or a full disk leaves the old file). The files written this way (the
/// cookie jar, a crawl's state with its frontier's URLs) may hold secrets: the file is
/// readable by its owner only. The temporary file is made, never opened if it exists
/// (`create_new`: no symlink followed, no file of another mode reused), under a name no
/// other write uses at the same time.
fn write_atomic(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let (tmp, file) = {
        let mut tries = 0;
        loop {
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".parafetch-{}-{n}.tmp", std::process::id()));
            let tmp = path.with_file_name(name);
            let mut open = std::fs::OpenOptions::new();
            open.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
            match open.open(&tmp) {
                Ok(file) => break (tmp, file),
                // Left by a process that died mid-write with our pid: the next name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 16 => {
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    };
    let written = (|| {
        let mut w = std::io::BufWriter::new(file);
        f(&mut w)?;
        std::io::Write::flush(&mut w)?;
        w.get_ref().sync_all()?;
        drop(w);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn template(args: &FetchArgs) -> Result<Template, Usage> {
    let body = match args.data.as_deref() {
        Some(d) => Some(match d.strip_prefix('@') {
            Some(path) => std::fs::read(path)
                .map_err(|e| Usage(format!("cannot read --data file {path}: {e}")))?,
            None => d.as_bytes().to_vec(),
        }),
        None => None,
    };
    let method = match (&args.request, args.head, &body) {
        (Some(m), _, _) => m.clone(),
        (None, true, _) => "HEAD".into(),
        (None, false, Some(_)) => "POST".into(),
        (None, false, None) => "GET".into(),
    };
    Ok(Template {
        method,
        body,
        output_dir: args.output_dir.clone(),
        max_body: args.max_body.unwrap_or(parafetch::DEFAULT_MAX_BODY),
    })
}

/// The fetcher's options from the command line, and how many requests it accepts before
/// `start_request` would block (in-flight cap plus backlog).
/// The proxy options: -x or --proxy-list (with -U's credentials), --noproxy.
fn proxies(mut b: Builder, args: &FetchArgs) -> Result<Builder, Usage> {
    let mut urls: Vec<String> = Vec::new();
    if let Some(url) = &args.proxy {
        urls.push(url.clone());
    }
    if let Some(path) = &args.proxy_list {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Usage(format!("cannot read --proxy-list {}: {e}", path.display())))?;
        urls.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
        if urls.is_empty() {
            return Err(Usage(format!(
                "--proxy-list {}: no proxy in it",
                path.display()
            )));
        }
    }
    if args.proxy_user.is_some() && urls.is_empty() {
        return Err(Usage("-U/--proxy-user needs -x or --proxy-list".into()));
    }
    if !urls.is_empty() {
        let mut list = Vec::with_capacity(urls.len());
        for url in &urls {
            let mut p = Proxy::parse(url).map_err(|e| Usage(format!("{e:#}")))?;
            if let Some(user) = &args.proxy_user {
                let (name, password) = user.split_once(':').unwrap_or((user, ""));
                p = p.with_credentials(name, password);
            }
            list.push(p);
        }
        b = b.proxy_list(list, Rotation::RoundRobin);
    }
    if let Some(list) = &args.noproxy {
        b = b.no_proxy(list);
    }
    b = b.proxy_tunnel(args.proxytunnel);
    if let Some(path) = &args.proxy_cacert {
        let pem = std::fs::read(path).map_err(|e| {
            Usage(format!(
                "cannot read --proxy-cacert {}: {e}",
                path.display()
            ))
        })?;
        b = b.proxy_roots_pem(&pem).proxy_default_roots(false);
    }
    if args.proxy_insecure {
        eprintln!(
            "parafetch: warning: --proxy-insecure: proxy certificates are not checked; anyone \
             on the path to the proxy can read and change the traffic"
        );
        b = b.proxy_danger_accept_invalid_certs(true);
    }
    Ok(b)
}

fn builder(args: &FetchArgs) -> Result<(Builder, usize), Usage> {
    let mut b = Fetcher::builder()
        .max_in_flight(args.max_in_flight)
        .threads(args.threads);
    if !args.dns_server.is_empty() {
        b = b.dns_servers(&args.dns_server);
    }
    if let Some(n) = args.per_host {
        b = b.per_host(n);
    }
    if let Some(ms) = args.delay_ms {
        b = b.host_delay(Duration::from_millis(ms));
    }
    if let Some(r) = args.per_host_rate {
        b = b.host_rate(r, 1);
    }
    if let Some(r) = args.rate {
        b = b.rate(r);
    }
    if args.politeness_key == KeyArg::Domain {
        b = b.politeness_key(PolitenessKey::Domain);
    }
    if let Some(n) = args.auto_throttle {
        b = b.auto_throttle(n);
    }
    if args.robots {
        b = b.obey_robots(true);
    }
    if args.no_backoff {
        b = b.host_backoff(false);
    }
    let mut backlog = 0;
    let per_host = args.per_host.is_some()
        || args.delay_ms.is_some()
        || args.per_host_rate.is_some()
        || args.auto_throttle.is_some()
        || args.robots;
    if per_host {
        // With the default backlog of 0, a URL for a saturated (or delayed) host blocks
        // start_request and so every URL after it; a backlog lets later hosts start.
        backlog = args.max_in_flight.saturating_mul(4);
        b = b.backlog(backlog);
    }
    if let Some(t) = args.timeout {
        b = b.timeout((!t.is_zero()).then_some(t));
    }
    if let Some(t) = args.connect_timeout {
        b = b.connect_timeout(t);
    }
    if let Some(n) = args.max_body {
        b = b.max_body(n);
    }
    if let Some(n) = args.max_head {
        let n = usize::try_from(n).map_err(|_| Usage("--max-head is too large".into()))?;
        b = b.max_head(n);
    }
    if let Some(n) = args.retry {
        b = b.retries(n);
    }
    b = b.follow_redirects(args.location);
    if let Some(n) = args.max_redirs {
        b = b.max_redirects(n);
    }
    b = b.decompress(args.compressed);
    match args.cookie.as_deref() {
        Some(data) if data.contains('=') => b = b.header("Cookie", data),
        Some(path) => b = b.cookie_jar(read_jar(Path::new(path))?),
        None => {}
    }
    if args.cookie_jar.is_some() {
        b = b.cookies(true);
    }
    for (name, value) in &args.header {
        b = b.header(name.clone(), value.clone());
    }
    let has_content_type = args
        .header
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    if args.data.is_some() && !has_content_type {
        b = b.header("Content-Type", "application/x-www-form-urlencoded");
    }
    if let Some(ua) = &args.user_agent {
        b = b.user_agent(ua.clone());
    }
    for r in &args.resolve {
        b = b.resolve(&r.host, r.port, &r.addrs);
    }
    if let Some(path) = &args.cacert {
        // Like curl: the file replaces the built-in roots rather than adding to them.
        let pem = std::fs::read(path)
            .map_err(|e| Usage(format!("cannot read --cacert {}: {e}", path.display())))?;
        // A bad bundle is reported when the fetcher is built.
        b = b.tls_roots_pem(&pem).tls_default_roots(false);
    }
    b = proxies(b, args)?;
    if args.insecure {
        eprintln!(
            "parafetch: warning: -k/--insecure: server certificates are not checked; anyone on \
             the path can read and change the traffic"
        );
        b = b.danger_accept_invalid_certs(true);
    }
    Ok((b, args.max_in_flight.saturating_add(backlog)))
}
