//! The command line: clap definitions and the value parsers that turn option text into
//! typed values, so a malformed value is a usage error (exit 2) before anything is fetched.
//!
//! Owns parsing and validation only; it never opens a socket and never reads the URL list.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Fetch many URLs at once from one thread (a mio loop), curl-style options.
#[derive(Debug, Parser)]
#[command(
    name = "parafetch",
    version,
    about = "Fetch many URLs at once from one thread, never more than N in flight.",
    args_conflicts_with_subcommands = true,
    after_help = "\
Exit status: 0 when every URL produced a response (any HTTP status), 1 when any request \
failed (invalid URL, DNS, connect, timeout, ...), 2 for usage errors (nothing is fetched).

Try `parafetch demo` first: it runs offline against a built-in local server."
)]
pub struct Cli {
    /// What to do; without a subcommand, fetch the URLs given.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The options of a fetch run.
    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Offline demo: fetch from a built-in loopback server that answers each request after a
    /// delay, once per concurrency level, and print the times and the speed-up.
    Demo(DemoArgs),
    /// Crawl from seed URLs: follow links in scope, politely (robots.txt obeyed, 2 per
    /// host), and write JSON lines, bodies (-o) and a WARC file (--warc). Every fetch
    /// option applies. Ctrl-C stops gently and saves the state (--state); a second Ctrl-C
    /// abandons the pages in flight (they stay queued).
    Crawl(Box<CrawlArgs>),
    /// Add jobs to a queue on Redis Streams: one per URL, sharded by politeness key
    /// (docs/queue.md). An input line may also be a JSON job:
    /// {"url": ..., "method": ..., "headers": {...} or [[name, value], ...], "body": ...}.
    /// Every job is checked first: one bad job and nothing is enqueued (exit 2).
    #[cfg(feature = "queue")]
    Enqueue(EnqueueArgs),
    /// Print a queue's result records as JSON lines (the --jsonl record plus the job).
    #[cfg(feature = "queue")]
    Results(ResultsArgs),
    /// Fetch a queue's jobs until SIGTERM or SIGINT, writing each result to NAME:results
    /// and acknowledging its job in one transaction. Workers share the shards by leases,
    /// so per-host caps, delays and rates hold across the fleet. Every fetch option
    /// applies (but the politeness key is the queue's). The first signal stops reading
    /// and finishes the jobs held; a second abandons them (they stay pending).
    #[cfg(feature = "queue")]
    Worker(Box<WorkerArgs>),
}

/// Options of `parafetch worker`.
#[cfg(feature = "queue")]
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Redis and the queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Every fetch option (no URLs: the jobs come from the queue).
    #[command(flatten)]
    pub fetch: FetchArgs,
    /// Take over jobs another worker has left pending this long (it died, or lost its
    /// shard). Must exceed the longest fetch, retries included, or a slow job may be
    /// fetched twice.
    #[arg(long, value_name = "SECS", value_parser = seconds, default_value = "300", help_heading = "Queue")]
    pub claim_after: Duration,
    /// How long a shard lease lasts unrenewed (renewed every third of it): a dead
    /// worker's shards pass to others after this.
    #[arg(long, value_name = "SECS", value_parser = seconds, default_value = "10", help_heading = "Queue")]
    pub lease: Duration,
    /// This worker's consumer name (default HOST-PID-RANDOM, new at each start).
    #[arg(long, value_name = "NAME", value_parser = queue_name, help_heading = "Queue")]
    pub name: Option<String>,
}

/// Where a queue lives: shared by the queue commands.
#[cfg(feature = "queue")]
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The Redis server: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss://... for TLS
    /// (certificates checked against the system's roots and the built-in ones), or
    /// redis+unix:///PATH. Never printed with its password. From the environment variable
    /// PARAFETCH_REDIS when not given: other local users can read a command line (`ps`),
    /// not the environment.
    #[arg(
        long,
        value_name = "URL",
        env = "PARAFETCH_REDIS",
        hide_env_values = true
    )]
    pub redis: String,
    /// For rediss:// (Redis over TLS): trust the CA certificates in this PEM file instead
    /// of the system's and the built-in roots (a private CA, as managed Redis services and
    /// self-run ones use).
    #[arg(long, value_name = "FILE")]
    pub redis_cacert: Option<PathBuf>,
    /// The queue's name; its keys are NAME:meta, NAME:{0}, NAME:{1}, ... and NAME:results.
    #[arg(long, value_name = "NAME", value_parser = queue_name)]
    pub queue: String,
}

/// Options of `parafetch enqueue`.
#[cfg(feature = "queue")]
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// Redis and the queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// URLs (or JSON jobs) to enqueue; they come before those of --input.
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,
    /// Read jobs from FILE, one per line ('-' for stdin): a URL, or a JSON job; blank lines
    /// and lines starting with '#' are skipped.
    #[arg(short = 'i', long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// How many shard streams the queue has. Fixed by the queue's first enqueue (default
    /// 16); later ones must agree or leave it out.
    #[arg(long, value_name = "N", value_parser = shard_count)]
    pub shards: Option<usize>,
    /// What jobs are sharded by, so one host's (or domain's) jobs share a shard. Fixed by
    /// the queue's first enqueue (default host); later ones must agree or leave it out.
    #[arg(long, value_enum, value_name = "KEY")]
    pub politeness_key: Option<KeyArg>,
    /// The method of every job that does not give its own (default: the worker's).
    #[arg(short = 'X', long, value_name = "METHOD", value_parser = method)]
    pub request: Option<String>,
    /// A header field for every job, before the job's own, "Name: value" (repeatable).
    #[arg(short = 'H', long, value_name = "NAME: VALUE", value_parser = header)]
    pub header: Vec<(String, String)>,
    /// The body of every job that does not give its own ('@FILE': read from FILE); such a
    /// job is a POST unless -X or the job says otherwise.
    #[arg(short = 'd', long, value_name = "DATA")]
    pub data: Option<String>,
}

/// Options of `parafetch results`.
#[cfg(feature = "queue")]
#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// Redis and the queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Keep printing records as they arrive, until SIGINT or SIGTERM.
    #[arg(long)]
    pub follow: bool,
    /// Delete the records printed (once they were written out): a second reader then
    /// does not see them.
    #[arg(long)]
    pub trim: bool,
}

/// A queue name: not empty, printable ASCII without spaces or braces (braces are the shard
/// keys' own).
#[cfg(feature = "queue")]
fn queue_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 200 {
        return Err("a queue name is 1 to 200 characters".into());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
    {
        return Err("a queue name is printable ASCII without spaces or braces".into());
    }
    Ok(s.to_owned())
}

/// A shard count: 1 to 1024.
#[cfg(feature = "queue")]
fn shard_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: a shard count is 1 to 1024")),
    }
}

/// Options of `parafetch crawl`: the seeds and fetch options of a fetch run, and the
/// crawl's own.
#[derive(Debug, Args)]
pub struct CrawlArgs {
    /// Seeds (URL arguments and -i), and every fetch option.
    #[command(flatten)]
    pub fetch: FetchArgs,
    /// Which links to follow: the seeds' hosts (default), their registrable domains, the
    /// seeds' directories and below (wget's --no-parent), or anywhere.
    #[arg(long, value_enum, default_value_t = ScopeArg::Host, help_heading = "Crawl")]
    pub scope: ScopeArg,
    /// Follow only URLs this regular expression matches (repeatable: any of them).
    #[arg(long, value_name = "RE", help_heading = "Crawl")]
    pub include: Vec<String>,
    /// Never follow URLs this regular expression matches (repeatable).
    #[arg(long, value_name = "RE", help_heading = "Crawl")]
    pub exclude: Vec<String>,
    /// How many links away from the seeds to go (0: the seeds only). Default: no limit.
    #[arg(long, value_name = "N", help_heading = "Crawl")]
    pub depth: Option<u32>,
    /// Stop after starting N pages.
    #[arg(long, value_name = "N", help_heading = "Crawl")]
    pub max_pages: Option<u64>,
    /// Ignore robots.txt (it is obeyed by default).
    #[arg(long, help_heading = "Crawl")]
    pub no_robots: bool,
    /// Also seed from each seed origin's sitemaps: robots.txt's Sitemap lines and
    /// /sitemap.xml (index files followed, gzip decoded; at most 100 files).
    #[arg(long, help_heading = "Crawl")]
    pub sitemaps: bool,
    /// Write every fetch to FILE as WARC/1.1 (.warc.gz: a gzip member per record).
    #[arg(long, value_name = "FILE", help_heading = "Crawl")]
    pub warc: Option<PathBuf>,
    /// Keep the frontier and seen-set in DIR: saved on Ctrl-C, every minute and at the end;
    /// a rerun with the same DIR carries on where it stopped.
    #[arg(long, value_name = "DIR", help_heading = "Crawl")]
    pub state: Option<PathBuf>,
    /// Read links from at most this many bytes of each HTML page.
    #[arg(long, value_name = "BYTES", default_value_t = 10 << 20, help_heading = "Crawl")]
    pub max_html_bytes: usize,
}

/// `--scope`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeArg {
    /// The seeds' hosts (http and https).
    Host,
    /// The seeds' registrable domains.
    Domain,
    /// Below each seed's directory.
    Prefix,
    /// Anywhere (narrow it with --include/--exclude).
    Any,
}

/// Options of `parafetch demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many URLs each run fetches.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = positive)]
    pub count: usize,
    /// How long the server waits before answering each request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub delay_ms: u64,
    /// The in-flight caps to compare, comma-separated; speed-ups are relative to the first.
    #[arg(
        long,
        value_name = "N,N,...",
        value_delimiter = ',',
        default_values_t = [1, 20],
        value_parser = positive
    )]
    pub compare: Vec<usize>,
}

/// Options of a fetch run, named like curl's where curl has one.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// URLs to fetch; they come before those of --input.
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,

    /// Read URLs from FILE, one per line ('-' for stdin); blank lines and lines starting
    /// with '#' are skipped. The whole list is read before fetching starts.
    #[arg(short = 'i', long, value_name = "FILE", help_heading = "Input")]
    pub input: Option<PathBuf>,

    /// Most requests in flight at once.
    #[arg(
        short = 'n',
        long,
        value_name = "N",
        default_value_t = 10,
        value_parser = positive,
        help_heading = "Concurrency"
    )]
    pub max_in_flight: usize,
    /// Event loops, each on a thread of its own ("auto": one per core). Hosts are spread
    /// over the loops, each host kept on one, so per-host limits stay exact; -n stays the
    /// limit for all of them together.
    #[arg(
        long,
        value_name = "N|auto",
        default_value = "1",
        value_parser = threads,
        help_heading = "Concurrency"
    )]
    pub threads: usize,
    /// Most requests in flight to one host at once. Requests for a saturated host wait in a
    /// backlog of 4 x --max-in-flight, so other hosts keep going meanwhile.
    #[arg(long, value_name = "N", value_parser = positive, help_heading = "Concurrency")]
    pub per_host: Option<usize>,
    /// Least time between the starts of two requests to the same host (politeness), in
    /// milliseconds. Uses the same backlog as --per-host.
    #[arg(long, value_name = "MS", help_heading = "Concurrency")]
    pub delay_ms: Option<u64>,
    /// At most R requests per second to each host (fractional: 0.2 is one every 5 s); a
    /// host waiting for its turn never holds up the others. Uses the same backlog as
    /// --per-host.
    #[arg(long, value_name = "R", value_parser = rate, help_heading = "Concurrency")]
    pub per_host_rate: Option<f64>,
    /// At most R requests per second in all (fractional).
    #[arg(long, value_name = "R", value_parser = rate, help_heading = "Concurrency")]
    pub rate: Option<f64>,
    /// What --per-host, --delay-ms, --per-host-rate and backoff count by: each host name
    /// (default), or each registrable domain by the Public Suffix List (a.example.co.uk
    /// and b.example.co.uk then share one budget).
    #[arg(long, value_name = "KEY", value_enum, default_value_t = KeyArg::Host, help_heading = "Politeness")]
    pub politeness_key: KeyArg,
    /// AutoThrottle (as Scrapy's): each host's delay follows its latency, aiming at N
    /// requests in flight per host on average (fractional), between --delay-ms and 60 s;
    /// it starts at 5 s per host until latencies are known.
    #[arg(long, value_name = "N", value_parser = rate, help_heading = "Politeness")]
    pub auto_throttle: Option<f64>,
    /// Obey robots.txt (RFC 9309) for the product token of --user-agent: each origin's
    /// robots.txt is fetched once before its first request; disallowed URLs fail with
    /// kind "robots" and are never requested; Crawl-delay spaces the host's requests.
    #[arg(long, help_heading = "Politeness")]
    pub robots: bool,
    /// Do not pause hosts that answer 429 or 503 (on by default with any per-host
    /// politeness: the host waits its Retry-After, or 1 s doubling, and is slowed down).
    #[arg(long, help_heading = "Politeness")]
    pub no_backoff: bool,

    /// Total time allowed for one attempt, in seconds (fractions allowed; 0: no limit).
    /// Default 60.
    #[arg(
        long,
        visible_alias = "max-time",
        value_name = "SECS",
        value_parser = seconds,
        help_heading = "Limits"
    )]
    pub timeout: Option<Duration>,
    /// Time allowed to resolve, connect and finish the TLS handshake, in seconds. Default 10.
    #[arg(long, value_name = "SECS", value_parser = seconds, help_heading = "Limits")]
    pub connect_timeout: Option<Duration>,
    /// Largest body accepted; larger is a too_large error. Suffixes K, M, G (x1024).
    /// Default 64M.
    #[arg(
        long,
        visible_alias = "max-filesize",
        value_name = "BYTES",
        value_parser = bytes,
        help_heading = "Limits"
    )]
    pub max_body: Option<u64>,
    /// Largest response head (status line and header fields). Suffixes K, M. Default 64K.
    #[arg(long, value_name = "BYTES", value_parser = bytes, help_heading = "Limits")]
    pub max_head: Option<u64>,
    /// Retry transient failures up to N times, with backoff: connect errors for any method;
    /// timeouts, i/o errors, truncated responses and statuses 429, 502, 503, 504 only for
    /// idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS, TRACE; never POST or PATCH).
    /// Retry-After is honoured up to 60 s. A body already partly saved is not retried.
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub retry: Option<u32>,

    /// Follow redirects (301, 302, 303, 307, 308).
    #[arg(short = 'L', long, help_heading = "Request")]
    pub location: bool,
    /// Most redirects followed per URL with -L. Default 10.
    #[arg(long, value_name = "N", help_heading = "Request")]
    pub max_redirs: Option<u32>,
    /// Ask for gzip/deflate and decode bodies (saved and counted decoded).
    #[arg(long, help_heading = "Request")]
    pub compressed: bool,
    /// Extra header sent with every request, "Name: value" (repeatable).
    #[arg(
        short = 'H',
        long,
        value_name = "NAME: VALUE",
        value_parser = header,
        help_heading = "Request"
    )]
    pub header: Vec<(String, String)>,
    /// Request method. Default GET (HEAD with -I, POST with --data).
    #[arg(short = 'X', long, value_name = "METHOD", value_parser = method, help_heading = "Request")]
    pub request: Option<String>,
    /// Send HEAD requests (no bodies).
    #[arg(short = 'I', long, conflicts_with = "data", help_heading = "Request")]
    pub head: bool,
    /// Request body sent with every request ('@FILE' reads it from a file, as is). Implies
    /// POST and, unless -H sets one, Content-Type: application/x-www-form-urlencoded.
    #[arg(short = 'd', long, value_name = "DATA", help_heading = "Request")]
    pub data: Option<String>,
    /// Cookies to send: "NAME=VALUE; ..." as a Cookie header (as curl), or a Netscape cookie
    /// FILE (curl's and wget's format) that starts the cookie jar: every response's
    /// Set-Cookie is then kept and sent where it applies. A missing FILE starts an empty
    /// jar, as in curl.
    #[arg(short = 'b', long, value_name = "DATA|FILE", help_heading = "Request")]
    pub cookie: Option<String>,
    /// Keep cookies in a jar (as -b FILE does) and write it to FILE at the end, in the
    /// Netscape format curl -b and wget --load-cookies read.
    #[arg(short = 'c', long, value_name = "FILE", help_heading = "Request")]
    pub cookie_jar: Option<PathBuf>,
    /// User-Agent header. Default parafetch/<version>.
    #[arg(short = 'A', long, value_name = "NAME", help_heading = "Request")]
    pub user_agent: Option<String>,

    /// Trust the PEM certificates in FILE instead of the built-in roots (as curl does).
    #[arg(long, value_name = "FILE", help_heading = "Network")]
    pub cacert: Option<PathBuf>,
    /// Accept any server certificate for any name (dangerous: a warning is printed).
    #[arg(short = 'k', long, help_heading = "Network")]
    pub insecure: bool,
    /// Use ADDR[,ADDR...] for HOST:PORT instead of resolving it (repeatable); IPv6 in
    /// brackets, e.g. example.com:80:[::1].
    #[arg(
        long,
        value_name = "HOST:PORT:ADDR",
        value_parser = resolve,
        help_heading = "Network"
    )]
    pub resolve: Vec<Resolve>,
    /// Ask this DNS server (IP, IP:PORT or [IPv6]:PORT; port 53 by default) instead of the
    /// nameservers of /etc/resolv.conf (repeatable; tried in order).
    #[arg(long, value_name = "ADDR", value_parser = dns_server, help_heading = "Network")]
    pub dns_server: Vec<SocketAddr>,

    /// Send requests through this proxy: http://, https://, socks4a://, socks5:// or
    /// socks5h:// (socks5 resolves names here, socks5h at the proxy), with optional
    /// user:password@; a bare HOST:PORT is an HTTP proxy. Overrides the environment's
    /// http_proxy, https_proxy and all_proxy, which are used otherwise.
    #[arg(short = 'x', long, value_name = "URL", help_heading = "Proxy")]
    pub proxy: Option<String>,
    /// The proxy's user name and password (USER:PASSWORD), overriding any in its URL.
    #[arg(
        short = 'U',
        long,
        value_name = "USER:PASSWORD",
        help_heading = "Proxy"
    )]
    pub proxy_user: Option<String>,
    /// Hosts reached without the proxy: comma-separated domains (with their subdomains),
    /// IP addresses, CIDR blocks, or '*'. Overrides the environment's no_proxy.
    #[arg(long, value_name = "LIST", help_heading = "Proxy")]
    pub noproxy: Option<String>,
    /// Rotate over the proxies in FILE (one URL per line; blank lines and # comments
    /// skipped), the next one for each request. Pooled connections are kept per proxy, so a
    /// kept-alive connection never skips the rotation.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Proxy",
        conflicts_with = "proxy"
    )]
    pub proxy_list: Option<PathBuf>,
    /// Tunnel http:// URLs through an HTTP proxy with CONNECT too, instead of forwarding
    /// them (the proxy then sees only host and port).
    #[arg(short = 'p', long, help_heading = "Proxy")]
    pub proxytunnel: bool,
    /// Trust the PEM certificates in FILE for https:// proxies instead of the built-in
    /// roots (--cacert is for origins only).
    #[arg(long, value_name = "FILE", help_heading = "Proxy")]
    pub proxy_cacert: Option<PathBuf>,
    /// Accept any certificate from an https:// proxy (dangerous: a warning is printed).
    /// -k does not cover proxies.
    #[arg(long, help_heading = "Proxy")]
    pub proxy_insecure: bool,

    /// Write one JSON object per finished URL to stdout, in completion order.
    #[arg(long, help_heading = "Output")]
    pub jsonl: bool,
    /// Save each body as DIR/<index>.body, streamed to disk as it arrives (DIR is created if
    /// missing). A file is created when its request starts; a failed request's file is
    /// removed.
    #[arg(short = 'o', long, value_name = "DIR", help_heading = "Output")]
    pub output_dir: Option<PathBuf>,
    /// No per-URL lines and no progress bar (JSON lines, when asked for, still go to
    /// stdout; the final summary still goes to stderr).
    #[arg(short = 'q', long, help_heading = "Output")]
    pub quiet: bool,
}

/// `--politeness-key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyArg {
    /// The host name.
    Host,
    /// The registrable domain (Public Suffix List).
    Domain,
}

/// A request rate: a positive number.
fn rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of requests per second"
        )),
    }
}

/// One `--resolve` entry: `host:port` pinned to addresses.
#[derive(Clone, Debug)]
pub struct Resolve {
    /// The host name as given (the library compares it case-insensitively).
    pub host: String,
    /// The port.
    pub port: u16,
    /// Where to connect instead.
    pub addrs: Vec<SocketAddr>,
}

/// A thread count, or `auto` for one per core.
fn threads(s: &str) -> Result<usize, String> {
    if s == "auto" {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    positive(s)
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Seconds as a decimal number; 0 stands for "no limit" where the option allows it.
fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a number of seconds"))
}

/// Bytes, with an optional binary suffix: `4096`, `64K`, `10M`, `1G`.
fn bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return Err(format!("{s:?}: unknown suffix (use K, M or G)")),
    };
    // Digits only: "+5".parse::<u64>() would succeed.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a byte count"));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// RFC 9110 §5.6.2 token characters, for header names and methods.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected \"Name: value\""))?;
    if !is_token(name) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("the value of {name:?} has a line break or NUL"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn method(s: &str) -> Result<String, String> {
    if is_token(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not a valid method"))
    }
}

/// `HOST:PORT:ADDR[,ADDR...]`, as curl's `--resolve`.
fn dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?}: expected IP, IP:PORT or [IPv6]:PORT"))
}

fn resolve(s: &str) -> Result<Resolve, String> {
    let bad = || format!("{s:?}: expected HOST:PORT:ADDR[,ADDR...]");
    let (host, rest) = s.split_once(':').ok_or_else(bad)?;
    let (port, addrs) = rest.split_once(':').ok_or_else(bad)?;
    if host.is_empty() {
        return Err(bad());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{s:?}: {port:?} is not a port"))?;
    let addrs = addrs
        .split(',')
        .map(|a| {
            let ip = a.trim().trim_start_matches('[').trim_end_matches(']');
            ip.parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, port))
                .map_err(|_| format!("{s:?}: {a:?} is not an IP address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Resolve {
        host: host.to_owned(),
        port,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(bytes("4096"), Ok(4096));
        assert_eq!(bytes("64k"), Ok(64 << 10));
        assert_eq!(bytes("10M"), Ok(10 << 20));
        assert!(bytes("+5").is_err());
        assert!(bytes("5X").is_err());
        assert!(bytes("M").is_err());
        assert!(bytes("99999999999G").is_err());
    }

    #[test]
    fn resolve_entries() {
        let r = resolve("example.com:80:127.0.0.1,[::1]").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("example.com", 80));
        assert_eq!(r.addrs.len(), 2);
        assert!(r.addrs[1].is_ipv6());
        assert!(resolve("example.com:80").is_err());
        assert!(resolve("example.com:http:127.0.0.1").is_err());
        assert!(resolve("example.com:80:localhost").is_err());
    }

    #[test]
    fn dns_server_addresses() {
        assert_eq!(dns_server("10.0.0.1"), Ok("10.0.0.1:53".parse().unwrap()));
        assert_eq!(
            dns_server("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(dns_server("[::1]:54"), Ok("[::1]:54".parse().unwrap()));
        assert_eq!(dns_server("::1"), Ok("[::1]:53".parse().unwrap()));
        assert!(dns_server("resolver.example").is_err());
    }

    #[test]
    fn headers_and_methods() {
        assert_eq!(header("X-A:  1 "), Ok(("X-A".into(), "1".into())));
        assert!(header("no colon").is_err());
        assert!(header("Bad Name: 1").is_err());
        assert!(method("GET").is_ok());
        assert!(method("G T").is_err());
    }

    #[test]
    fn seconds_values() {
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").is_err());
    }
}
