//! Options applied to every request of a fetcher (the seed's "array of curl options"), and
//! the builder that sets them.
//!
//! Owns defaults and their documentation; it never does I/O.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::Error;
use crate::gate::{DEFAULT_ROBOTS_TTL, DEFAULT_ROBOTS_UNREACHABLE_TTL};
use crate::polite::{PaceRules, PolitenessKey, Throttle};
use crate::proto::Headers;
use crate::proto::Limits;
use crate::proxy::{NoProxy, Proxy, ProxyConfig, ProxyRule, Rotation};
use crate::request::Overrides;
use crate::task::Knobs;
use crate::tls::{TlsOptions, parse_pem_certs};

impl Knobs {
    pub(crate) fn with(mut self, o: &Overrides) -> Knobs {
        if let Some(t) = o.timeout {
            self.timeout = t;
        }
        if let Some(t) = o.connect_timeout {
            self.connect_timeout = t;
        }
        if let Some(t) = o.idle_timeout {
            self.idle_timeout = t;
        }
        if let Some(b) = o.max_body {
            self.max_body = b;
        }
        if let Some(f) = o.follow_redirects {
            self.follow_redirects = f;
        }
        if let Some(m) = o.max_redirects {
            self.max_redirects = m;
        }
        if let Some(d) = o.decompress {
            self.decompress = d;
        }
        if let Some(r) = o.retries {
            self.retries = r;
        }
        if let Some(c) = o.capture_wire {
            self.capture_wire = c;
        }
        self
    }
}

/// Default total time for one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time to resolve, connect and finish the TLS handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest silence while a response is awaited or read.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default largest body.
pub const DEFAULT_MAX_BODY: u64 = 64 * 1024 * 1024;
/// Default most redirects followed (when following is on).
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;
/// Default time an idle keep-alive connection stays pooled.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default most idle connections kept per origin.
pub const DEFAULT_POOL_MAX_IDLE_PER_HOST: usize = 32;
/// Default most idle connections kept in all.
pub const DEFAULT_POOL_MAX_IDLE: usize = 1024;
/// Default first retry delay (doubled each retry, with jitter).
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(250);
/// Longest `Retry-After` honoured; a longer one is capped to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// AutoThrottle's default delay for a host before any latency is known (Scrapy's).
pub const DEFAULT_THROTTLE_START: Duration = Duration::from_secs(5);
/// AutoThrottle's default ceiling (Scrapy's).
pub const DEFAULT_THROTTLE_MAX: Duration = Duration::from_secs(60);

/// Default most requests a fetcher holds (accepted, not yet called back) for a callback to
/// still queue a follow-up; see [`Builder::max_queued_followups`].
pub const DEFAULT_MAX_QUEUED_FOLLOWUPS: usize = 100_000;

/// Everything a fetcher applies to its requests.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub max_in_flight: usize,
    /// Loops (threads) of a spawned fetcher.
    pub threads: usize,
    pub backlog: usize,
    pub max_queued_followups: usize,
    pub knobs: Knobs,
    pub limits: Limits,
    pub user_agent: String,
    pub headers: Headers,
    pub keep_alive: bool,
    pub allow_https_downgrade: bool,
    pub retry_backoff: Duration,
    pub per_host: Option<usize>,
    pub host_delay: Duration,
    /// Requests per second and burst, per host.
    pub host_rate: Option<(f64, u32)>,
    /// Requests per second for the whole fetcher.
    pub rate: Option<f64>,
    /// What per-host caps, delays and rates group requests by.
    pub politeness_key: PolitenessKey,
    /// Pause and slow down a host that answers 429 or 503 (`None`: when any per-host
    /// politeness is set).
    pub host_backoff: Option<bool>,
    /// Every request uses the default cookie jar (unless it names another).
    pub cookies: bool,
    /// The default jar's first contents.
    #[cfg(feature = "cookies")]
    pub cookie_jar: Option<crate::CookieJar>,
    /// Fetch and obey each origin's robots.txt.
    pub obey_robots: bool,
    /// How long a fetched robots.txt is trusted, and how long an unreachable one
    /// disallows everything.
    pub robots_ttl: (Duration, Duration),
    /// AutoThrottle's target concurrency, when it is on.
    pub throttle: Option<f64>,
    /// AutoThrottle's start delay and ceiling.
    pub throttle_delays: (Duration, Duration),
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    pub pool_max_idle: usize,
    pub resolve_overrides: HashMap<(String, u16), Vec<SocketAddr>>,
    pub resolver_threads: usize,
    pub dns: DnsOptions,
    pub tls: TlsOptions,
    pub proxy: ProxyOptions,
}

impl Options {
    /// Whether any per-host politeness is asked for (and so host backoff is on unless
    /// turned off).
    fn polite_per_host(&self) -> bool {
        self.per_host.is_some()
            || !self.host_delay.is_zero()
            || self.host_rate.is_some()
            || self.throttle.is_some()
            || self.obey_robots
    }

    /// The pacing rules every politeness key follows.
    pub(crate) fn pace_rules(&self) -> PaceRules {
        PaceRules {
            host_delay: self.host_delay,
            host_rate: self.host_rate,
            backoff: self.host_backoff.unwrap_or_else(|| self.polite_per_host()),
            throttle: self.throttle.map(|target| Throttle {
                target,
                start: self.throttle_delays.0,
                max: self.throttle_delays.1,
            }),
        }
    }
}

/// The fetcher's proxy settings as the builder was given them; the engine turns them into
/// a [`ProxyConfig`] (reading the environment then, when it applies).
#[derive(Clone, Debug)]
pub(crate) struct ProxyOptions {
    /// Set by `proxy` or `proxies`: the environment is then not read for proxies.
    pub rule: Option<ProxyRule>,
    /// Set by `no_proxy`: replaces the environment's `NO_PROXY`.
    pub no_proxy: Option<NoProxy>,
    pub from_env: bool,
    /// Trust settings for https proxies' certificates (as strict as origins' by default).
    pub tls: TlsOptions,
    /// Tunnel `http://` URLs through HTTP proxies with CONNECT too.
    pub tunnel: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            rule: None,
            no_proxy: None,
            from_env: true,
            tls: TlsOptions::default(),
            tunnel: false,
        }
    }
}

impl ProxyOptions {
    /// The choice every request starts from: the builder's rule and list, else (when
    /// allowed) the environment's, else none.
    pub(crate) fn resolve(&self, get_env: impl Fn(&str) -> Option<String>) -> ProxyConfig {
        let env = self.from_env.then(|| ProxyConfig::from_env(get_env));
        let rule = match (&self.rule, &env) {
            (Some(rule), _) => rule.clone(),
            (None, Some(env)) => env.rule.clone(),
            (None, None) => ProxyRule::Direct,
        };
        let no_proxy = match (&self.no_proxy, env) {
            (Some(n), _) => n.clone(),
            (None, Some(env)) => env.no_proxy,
            (None, None) => NoProxy::default(),
        };
        ProxyConfig { rule, no_proxy }
    }
}

/// How names are resolved: the in-loop stub (default) or the system resolver on threads.
#[derive(Clone, Debug)]
pub(crate) struct DnsOptions {
    pub system: bool,
    pub servers: Option<Vec<SocketAddr>>,
    pub search: Option<(Vec<String>, u8)>,
    pub timeout: Option<(Duration, u8)>,
    pub ttl_floor: Duration,
    pub ttl_ceiling: Duration,
}

/// Default shortest time a DNS answer is cached (a TTL of 0 would re-ask per request).
pub const DEFAULT_DNS_TTL_FLOOR: Duration = Duration::from_secs(1);
/// Default longest time a DNS answer is cached, whatever its TTL says.
pub const DEFAULT_DNS_TTL_CEILING: Duration = Duration::from_secs(3600);

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            system: false,
            servers: None,
            search: None,
            timeout: None,
            ttl_floor: DEFAULT_DNS_TTL_FLOOR,
            ttl_ceiling: DEFAULT_DNS_TTL_CEILING,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_in_flight: 10,
            threads: 1,
            backlog: 0,
            max_queued_followups: DEFAULT_MAX_QUEUED_FOLLOWUPS,
            knobs: Knobs {
                timeout: Some(DEFAULT_TIMEOUT),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                max_body: DEFAULT_MAX_BODY,
                follow_redirects: false,
                max_redirects: DEFAULT_MAX_REDIRECTS,
                decompress: false,
                retries: 0,
                capture_wire: false,
                capture_secrets: false,
            },
            limits: Limits::default(),
            user_agent: concat!("parafetch/", env!("CARGO_PKG_VERSION")).to_owned(),
            headers: Headers::new(),
            keep_alive: true,
            allow_https_downgrade: false,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            per_host: None,
            host_delay: Duration::ZERO,
            host_rate: None,
            rate: None,
            politeness_key: PolitenessKey::Host,
            host_backoff: None,
            cookies: false,
            #[cfg(feature = "cookies")]
            cookie_jar: None,
            obey_robots: false,
            robots_ttl: (DEFAULT_ROBOTS_TTL, DEFAULT_ROBOTS_UNREACHABLE_TTL),
            throttle: None,
            throttle_delays: (DEFAULT_THROTTLE_START, DEFAULT_THROTTLE_MAX),
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            pool_max_idle_per_host: DEFAULT_POOL_MAX_IDLE_PER_HOST,
            pool_max_idle: DEFAULT_POOL_MAX_IDLE,
            resolve_overrides: HashMap::new(),
            resolver_threads: 4,
            dns: DnsOptions::default(),
            tls: TlsOptions::default(),
            proxy: ProxyOptions::default(),
        }
    }
}

/// Builds a [`Fetcher`](crate::Fetcher) (or a [`fetch_all`](crate::fetch_all) iterator) with
/// options applied to every request. Every option has a default; see README's table.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let fetcher: parafetch::Fetcher<usize> = parafetch::Fetcher::builder()
///     .max_in_flight(20)
///     .timeout(Some(Duration::from_secs(10)))
///     .per_host(2)
///     .follow_redirects(true)
///     .build();
/// # drop(fetcher);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Builder {
    pub(crate) opts: Options,
    /// The first bad option found while chaining (a bad PEM bundle), reported by
    /// [`Builder::try_build`] so that every option setter returns `Self`.
    pub(crate) invalid: Option<Error>,
}

impl Builder {
    /// Most requests in flight at once (the global cap; at least 1). Default 10. Change it
    /// later with [`Fetcher::set_max_in_flight`](crate::Fetcher::set_max_in_flight) (or
    /// from a callback, [`Queue::set_max_in_flight`](crate::Queue::set_max_in_flight)).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.opts.max_in_flight = n.max(1);
        self
    }

    /// How many event loops, each on its own thread, a spawned fetcher runs (at least 1;
    /// default 1). For [`Builder::spawn`] and [`Builder::fetch_all`]; [`Builder::build`]
    /// runs one loop on the calling thread and refuses more.
    ///
    /// Each loop is a whole fetcher (its own resolver, timers, connection pool and
    /// politeness state): requests are routed to a loop by their
    /// [`politeness_key`](Builder::politeness_key), so one host's caps, delays, rates,
    /// robots.txt and pooled connections all live on one loop and stay exact. The
    /// [`max_in_flight`](Builder::max_in_flight) cap and a [`rate`](Builder::rate) stay
    /// global, shared by the loops (see [`Handle`](crate::Handle)).
    /// [`threads_auto`](Builder::threads_auto) picks one per core.
    pub fn threads(mut self, n: usize) -> Self {
        self.opts.threads = n.max(1);
        self
    }

    /// One loop per core the process may use (`std::thread::available_parallelism`).
    pub fn threads_auto(self) -> Self {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.threads(n)
    }

    /// How many accepted requests may wait beyond the in-flight cap before `start_request`
    /// runs the loop to make room. Default 0: the seed's rule, `start_request` returns at
    /// once only while fewer than `max_in_flight` requests are accepted. With per-host caps
    /// a backlog lets requests for other hosts start while one host is saturated.
    pub fn backlog(mut self, n: usize) -> Self {
        self.opts.backlog = n;
        self
    }

    /// Bounds the follow-ups callbacks queue ([`Queue::start_request`](crate::Queue::start_request)):
    /// a callback may queue one only while the fetcher holds fewer than `n` requests
    /// accepted and not yet called back ([`Fetcher::pending`](crate::Fetcher::pending)),
    /// counting those the callback has queued already. Past it, `Queue::start_request`
    /// returns an error of kind [`QueueFull`](crate::ErrorKind::QueueFull) and keeps
    /// nothing, so a crawler whose pages link to ever more pages cannot grow the
    /// fetcher's memory without bound, and is told so rather than losing requests
    /// silently.
    ///
    /// Default [`DEFAULT_MAX_QUEUED_FOLLOWUPS`] (100 000): a waiting request costs its
    /// URL, headers, callback and cookie, a few hundred bytes to a few KiB, so the default
    /// bounds the queue to tens or hundreds of MiB, while a crawl's frontier larger than
    /// that belongs in the caller's own store (a file, a database), fed in as requests
    /// finish. Set it at or above `max_in_flight` plus `backlog` so that callbacks can
    /// queue at all.
    pub fn max_queued_followups(mut self, n: usize) -> Self {
        self.opts.max_queued_followups = n;
        self
    }

    /// Total time allowed for one attempt, connect to last body byte (`None`: no limit).
    /// Default 60 s.
    pub fn timeout(mut self, t: Option<Duration>) -> Self {
        self.opts.knobs.timeout = t;
        self
    }

    /// Time allowed to resolve, connect and finish the TLS handshake. Default 10 s.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.opts.knobs.connect_timeout = t;
        self
    }

    /// Longest silence allowed while a response is awaited or read (cuts slow-loris
    /// servers; the total timeout cuts tricklers). Default 30 s.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.opts.knobs.idle_timeout = t;
        self
    }

    /// Largest body accepted, after decoding. Default 64 MiB.
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.opts.knobs.max_body = bytes;
        self
    }

    /// Largest response head (status line and header fields). Default 64 KiB.
    pub fn max_head(mut self, bytes: usize) -> Self {
        self.opts.limits.max_head_bytes = bytes;
        self
    }

    /// Most header fields in a response head. Default 100.
    pub fn max_headers(mut self, n: usize) -> Self {
        self.opts.limits.max_headers = n;
        self
    }

    /// The `User-Agent` sent unless a request sets its own.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.opts.user_agent = ua.into();
        self
    }

    /// A header sent with every request (a request's own field of the same name wins).
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.opts.headers.append(name, value);
        self
    }

    /// Whether to keep connections open for reuse. Off sends `Connection: close`.
    /// Default on.
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.opts.keep_alive = on;
        self
    }

    /// Follow redirects (301, 302, 303, 307, 308). Default off, like curl.
    pub fn follow_redirects(mut self, on: bool) -> Self {
        self.opts.knobs.follow_redirects = on;
        self
    }

    /// Most redirects followed for one request. Default 10.
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.opts.knobs.max_redirects = n;
        self
    }

    /// Allow a redirect from `https` to `http`. Default off.
    pub fn allow_https_downgrade(mut self, on: bool) -> Self {
        self.opts.allow_https_downgrade = on;
        self
    }

    /// Ask for gzip/deflate and decode bodies transparently. Default off.
    pub fn decompress(mut self, on: bool) -> Self {
        self.opts.knobs.decompress = on;
        self
    }

    /// Retry transient failures up to `n` times, with exponential backoff and jitter
    /// (from [`retry_backoff`](Builder::retry_backoff)). Default 0.
    ///
    /// What is retried:
    /// - a failed connect (`connect`), for any method: the request never left;
    /// - a timeout, an I/O error or a truncated response (`timeout`, `io`, `truncated`),
    ///   and a 429, 502, 503 or 504 response, for idempotent methods only (GET, HEAD, PUT,
    ///   DELETE, OPTIONS, TRACE; RFC 9110 §9.2.2): the server may have acted on a POST or
    ///   PATCH before failing.
    ///
    /// A `Retry-After` on a retried response is honoured, up to [`MAX_RETRY_AFTER`] (60 s).
    /// A request whose body already went to its sink is not retried.
    pub fn retries(mut self, n: u32) -> Self {
        self.opts.knobs.retries = n;
        self
    }

    /// The first retry delay (doubled each time, with jitter). Default 250 ms.
    pub fn retry_backoff(mut self, t: Duration) -> Self {
        self.opts.retry_backoff = t;
        self
    }

    /// Most requests in flight to one host at once. Default: no per-host cap.
    pub fn per_host(mut self, n: usize) -> Self {
        self.opts.per_host = Some(n.max(1));
        self
    }

    /// Least time between the starts of two requests to the same host. Default 0.
    pub fn host_delay(mut self, t: Duration) -> Self {
        self.opts.host_delay = t;
        self
    }

    /// At most `per_second` requests per second to one host (fractional: 0.2 is one every
    /// 5 s), letting up to `burst` go at once after a quiet spell: a token bucket per host.
    /// A host whose bucket is empty is simply not ready, so it never holds up other hosts,
    /// and it is woken by a timer when its next token is due. Joins `per_host` and
    /// `host_delay` (all three hold). Default: no rate.
    ///
    /// A rate that is not a positive number is reported by
    /// [`try_build`](Builder::try_build) (kind `invalid_request`, phase `prepare`).
    pub fn host_rate(mut self, per_second: f64, burst: u32) -> Self {
        if crate::rate::valid(per_second) {
            self.opts.host_rate = Some((per_second, burst.max(1)));
        } else {
            self.invalid
                .get_or_insert(bad_rate("host_rate", per_second));
        }
        self
    }

    /// At most `per_second` requests per second for the whole fetcher (fractional; no
    /// burst). Default: no rate. As [`Builder::host_rate`] for errors.
    pub fn rate(mut self, per_second: f64) -> Self {
        if crate::rate::valid(per_second) {
            self.opts.rate = Some(per_second);
        } else {
            self.invalid.get_or_insert(bad_rate("rate", per_second));
        }
        self
    }

    /// What per-host caps, delays, rates, backoff and AutoThrottle group requests by: the
    /// URL's host (the default) or, with the `psl` feature, its registrable domain
    /// (`a.example.co.uk` and `b.example.co.uk` then share one budget).
    pub fn politeness_key(mut self, key: PolitenessKey) -> Self {
        self.opts.politeness_key = key;
        self
    }

    /// Host backoff: a host (politeness key) that answers 429 Too Many Requests or 503
    /// Service Unavailable is paused — no new request to it starts — for its
    /// `Retry-After` (seconds or an HTTP date, at most
    /// [`MAX_HOST_PAUSE`](crate::MAX_HOST_PAUSE)) or, without one, for 1 s doubled with
    /// each pause in a row (at most 60 s). Its pace is also cut: requests to it are spaced
    /// at least twice as far apart as before (at least 500 ms), and the spacing shrinks by
    /// a quarter with each answer that is not a 429 or 5xx, until it is gone. Other hosts
    /// are never held up.
    ///
    /// On by default as soon as any per-host politeness is set (`per_host`, `host_delay`,
    /// `host_rate`, `auto_throttle`, `obey_robots`); this turns it on or off regardless.
    /// The answer itself is still delivered (or retried, if `retries` allows); the pause
    /// is the host's, not the request's.
    pub fn host_backoff(mut self, on: bool) -> Self {
        self.opts.host_backoff = Some(on);
        self
    }

    /// A cookie jar for the fetcher (feature `cookies`): every request sends the jar's
    /// matching cookies and every response's `Set-Cookie` (redirects' too, before the next
    /// hop) is stored, by RFC 6265's rules (see [`CookieJar`](crate::CookieJar)). Off by
    /// default. A request may use a named jar instead with
    /// [`Request::jar`](crate::Request::jar); a `Cookie` header set by the caller wins over
    /// the jar. The robots.txt fetch never uses a jar.
    #[cfg(feature = "cookies")]
    pub fn cookies(mut self, on: bool) -> Self {
        self.opts.cookies = on;
        self
    }

    /// Starts the fetcher's default jar with `jar`'s cookies (read from a Netscape file
    /// with [`CookieJar::read_netscape`](crate::CookieJar::read_netscape), say), and turns
    /// [`cookies`](Builder::cookies) on.
    #[cfg(feature = "cookies")]
    pub fn cookie_jar(mut self, jar: crate::CookieJar) -> Self {
        self.opts.cookies = true;
        self.opts.cookie_jar = Some(jar);
        self
    }

    /// Obey robots.txt (RFC 9309) for the product token of the user agent (`parafetch`
    /// from `parafetch/0.1`; set it with [`user_agent`](Builder::user_agent)). Before the
    /// first request to an origin (scheme, host, port), its `/robots.txt` is fetched, once:
    /// that origin's requests wait for it, other origins go on. It goes through the same
    /// caps, rates and proxy as any request, follows up to 5 redirects, and only its first
    /// 500 KiB are read.
    ///
    /// - A disallowed request completes at once with kind
    ///   [`Robots`](crate::ErrorKind::Robots) and never touches the network.
    /// - A 4xx robots.txt (or a redirect chain longer than 5) allows everything; a 5xx, a
    ///   429 (as Google treats it) or no answer disallows everything for
    ///   [`DEFAULT_ROBOTS_UNREACHABLE_TTL`](crate::DEFAULT_ROBOTS_UNREACHABLE_TTL), after
    ///   which it is fetched again.
    /// - `Crawl-delay` of the matched group becomes the least delay between starts for
    ///   the host (at most [`MAX_CRAWL_DELAY`](crate::MAX_CRAWL_DELAY)).
    /// - What is learnt is cached for [`DEFAULT_ROBOTS_TTL`](crate::DEFAULT_ROBOTS_TTL)
    ///   (24 h), for at most [`ROBOTS_CACHE_MAX`](crate::ROBOTS_CACHE_MAX) origins.
    ///
    /// Matching follows Google's robots.txt parser: the groups for our token (else `*`),
    /// the longest matching rule wins, `allow` wins a tie, `*` and `$` work; see
    /// [`robots`](crate::robots). Turns host backoff on unless it was turned off.
    pub fn obey_robots(mut self, on: bool) -> Self {
        self.opts.obey_robots = on;
        self
    }

    /// How long a fetched robots.txt is trusted (default 24 h) and how long an
    /// unreachable one disallows everything (default 10 min); at least 1 s each.
    pub fn robots_cache_ttl(mut self, fetched: Duration, unreachable: Duration) -> Self {
        self.opts.robots_ttl = (fetched, unreachable);
        self
    }

    /// AutoThrottle, as Scrapy has it: each host's delay between starts follows the
    /// latencies it shows (time to the first byte), tending to latency divided by
    /// `target_concurrency` — the number of requests a host should have in flight on
    /// average. After each answer the delay moves halfway to that target delay (never
    /// below it); a non-200 answer may raise it but never lowers it. It stays at least
    /// `host_delay` and at most the ceiling of
    /// [`auto_throttle_delays`](Builder::auto_throttle_delays) (start 5 s, ceiling 60 s
    /// by default, as Scrapy's). `per_host` still caps concurrency.
    ///
    /// A target that is not a positive number is reported by
    /// [`try_build`](Builder::try_build).
    pub fn auto_throttle(mut self, target_concurrency: f64) -> Self {
        if crate::rate::valid(target_concurrency) {
            self.opts.throttle = Some(target_concurrency);
        } else {
            self.invalid.get_or_insert(Error::new(
                crate::error::ErrorKind::InvalidRequest,
                crate::error::Phase::Prepare,
                format!(
                    "auto_throttle's target concurrency must be a positive number, not \
                     {target_concurrency}"
                ),
            ));
        }
        self
    }

    /// AutoThrottle's delay for a host before any latency is known, and its ceiling.
    /// Defaults 5 s and 60 s, as Scrapy's. Only matters with
    /// [`auto_throttle`](Builder::auto_throttle).
    pub fn auto_throttle_delays(mut self, start: Duration, max: Duration) -> Self {
        self.opts.throttle_delays = (start, max);
        self
    }

    /// Keep every response's exchange as bytes in [`Response::wire`](crate::Response::wire):
    /// the request as sent and the response exactly as it came over the connection (after
    /// TLS), for a WARC archive. Costs a copy of each response (bounded by `max_body` plus
    /// the head). `Authorization`, `Proxy-Authorization` and `Cookie` values in the kept
    /// request read `<redacted>` unless [`capture_secrets`](Builder::capture_secrets).
    /// Off by default; [`Request::capture_wire`](crate::Request::capture_wire) per
    /// request.
    pub fn capture_wire(mut self, on: bool) -> Self {
        self.opts.knobs.capture_wire = on;
        self
    }

    /// Keeps credentials and cookies as sent in [`Wire::request`](crate::Wire::request)
    /// (an archive of a logged-in crawl that must replay as it was). Off by default.
    pub fn capture_secrets(mut self, on: bool) -> Self {
        self.opts.knobs.capture_secrets = on;
        self
    }

    /// How long an idle keep-alive connection is kept. Default 30 s.
    pub fn pool_idle_timeout(mut self, t: Duration) -> Self {
        self.opts.pool_idle_timeout = t;
        self
    }

    /// Most idle connections kept per origin (default 32) and in all (default 1024).
    pub fn pool_max_idle(mut self, per_host: usize, total: usize) -> Self {
        self.opts.pool_max_idle_per_host = per_host;
        self.opts.pool_max_idle = total;
        self
    }

    /// Pins `host:port` to addresses, skipping resolution (like curl's `--resolve`).
    pub fn resolve(mut self, host: &str, port: u16, addrs: &[SocketAddr]) -> Self {
        self.opts
            .resolve_overrides
            .insert((host.to_ascii_lowercase(), port), addrs.to_vec());
        self
    }

    /// Resolve names with the system resolver (`getaddrinfo`) on `threads` helper threads
    /// that wake the loop, instead of the in-loop DNS client. For setups the stub cannot
    /// serve (NSS modules such as mDNS or LDAP). Default off: no thread is ever started.
    pub fn system_resolver(mut self, threads: usize) -> Self {
        self.opts.dns.system = true;
        self.opts.resolver_threads = threads.max(1);
        self
    }

    /// Ask these nameservers (UDP, then TCP on truncation) instead of those of
    /// `/etc/resolv.conf`. A bare IP means port 53.
    pub fn dns_servers(mut self, servers: &[SocketAddr]) -> Self {
        self.opts.dns.servers = Some(servers.to_vec());
        self
    }

    /// The search list and `ndots` (instead of `/etc/resolv.conf`'s): a name with fewer
    /// than `ndots` dots is tried with each suffix first.
    pub fn dns_search(mut self, domains: &[&str], ndots: u8) -> Self {
        let domains = domains.iter().map(|d| d.to_string()).collect();
        self.opts.dns.search = Some((domains, ndots));
        self
    }

    /// Time per DNS try and how many rounds over the nameservers (instead of
    /// `/etc/resolv.conf`'s `options timeout:` and `attempts:`).
    pub fn dns_timeout(mut self, per_try: Duration, attempts: u8) -> Self {
        self.opts.dns.timeout = Some((per_try, attempts.max(1)));
        self
    }

    /// Bounds on how long DNS answers are cached (defaults 1 s and 1 h): the record's TTL
    /// (or, for NXDOMAIN, the SOA's) is clamped into `[floor, ceiling]`.
    pub fn dns_cache_ttl(mut self, floor: Duration, ceiling: Duration) -> Self {
        self.opts.dns.ttl_floor = floor;
        self.opts.dns.ttl_ceiling = ceiling.max(floor);
        self
    }

    /// Trusts the certificates in a PEM bundle (a private CA, say) in addition to the
    /// default roots.
    ///
    /// The bundle is parsed now, but a bad one does not break the chain: it is remembered,
    /// and [`try_build`](Builder::try_build) returns it (kind `tls`, phase `prepare`),
    /// [`build`](Builder::build) panics with it, and [`fetch_all`](Builder::fetch_all)
    /// yields it for every URL.
    ///
    /// # Examples
    /// ```
    /// let err = parafetch::Fetcher::builder()
    ///     .tls_roots_pem(b"not a certificate")
    ///     .max_in_flight(4)
    ///     .try_build::<()>()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), parafetch::ErrorKind::Tls);
    /// ```
    pub fn tls_roots_pem(mut self, pem: &[u8]) -> Self {
        match parse_pem_certs(pem) {
            Ok(certs) => self.opts.tls.extra_roots.extend(certs),
            Err(e) => {
                self.invalid.get_or_insert(e);
            }
        }
        self
    }

    /// Sends every request through this proxy (`http://`, `https://`, `socks4a://`,
    /// `socks5://` or `socks5h://`, with optional `user:password@`; a bare `host:port` is
    /// an HTTP proxy). [`Request::proxy`](crate::Request::proxy) and
    /// [`Request::no_proxy`](crate::Request::no_proxy) override it per request, and
    /// [`Builder::no_proxy`] lists hosts reached directly. Setting a proxy here stops the
    /// environment's proxy variables from being read.
    ///
    /// A malformed URL does not break the chain: [`try_build`](Builder::try_build) returns
    /// it (kind `proxy`, phase `prepare`; the message never holds the password).
    ///
    /// # Examples
    /// ```
    /// let f: parafetch::Fetcher = parafetch::Fetcher::builder()
    ///     .proxy("http://user:secret@127.0.0.1:3128")
    ///     .no_proxy("localhost, .internal.example, 10.0.0.0/8")
    ///     .build();
    /// # drop(f);
    /// ```
    pub fn proxy(self, url: &str) -> Self {
        self.proxies([url], Rotation::RoundRobin)
    }

    /// Sends requests through these proxies, taking them in turn per request
    /// ([`Rotation::RoundRobin`]) or one per host ([`Rotation::StickyPerHost`]). Pooled
    /// connections are kept per proxy and origin, so a kept-alive connection never carries
    /// a request past the rotation. As [`Builder::proxy`] for errors and the environment.
    pub fn proxies<I, S>(mut self, urls: I, rotation: Rotation) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        for url in urls {
            match Proxy::parse(url.as_ref()) {
                Ok(p) => list.push(p),
                Err(e) => {
                    self.invalid.get_or_insert(e);
                }
            }
        }
        self.proxy_list(list, rotation)
    }

    /// As [`Builder::proxies`], with proxies already parsed (and given credentials with
    /// [`Proxy::with_credentials`], say).
    pub fn proxy_list(mut self, list: Vec<Proxy>, rotation: Rotation) -> Self {
        let mut list: Vec<std::sync::Arc<Proxy>> =
            list.into_iter().map(std::sync::Arc::new).collect();
        self.opts.proxy.rule = Some(match list.len() {
            1 => ProxyRule::One(list.remove(0)),
            _ => ProxyRule::List(list, rotation),
        });
        self
    }

    /// Hosts reached directly, whatever the proxy settings say: a comma-separated list of
    /// domains (`example.com` also covers its subdomains), IP addresses, CIDR blocks, or `*`
    /// for all. Replaces the environment's `NO_PROXY`.
    pub fn no_proxy(mut self, hosts: &str) -> Self {
        self.opts.proxy.no_proxy = Some(NoProxy::parse(hosts));
        self
    }

    /// Whether `http://` URLs go through an HTTP proxy's CONNECT tunnel as `https://` ones
    /// do, instead of being forwarded in absolute form (default off; curl's `-p`): the proxy
    /// then sees only the host and port, never the request.
    pub fn proxy_tunnel(mut self, on: bool) -> Self {
        self.opts.proxy.tunnel = on;
        self
    }

    /// Whether to use the environment's proxies when none is set on the builder (default
    /// on, as in curl and reqwest): `http_proxy` for `http://` URLs (lowercase only; the
    /// uppercase name can be set by a CGI request, the "httpoxy" attack), `https_proxy` or
    /// `HTTPS_PROXY`, then `all_proxy` or `ALL_PROXY`, and `no_proxy` or `NO_PROXY`. Read
    /// once, when the fetcher is built.
    pub fn proxy_from_env(mut self, on: bool) -> Self {
        self.opts.proxy.from_env = on;
        self
    }

    /// Trusts the certificates in a PEM bundle for https proxies (not for origins), in
    /// addition to the default roots. A bad bundle is reported as by
    /// [`Builder::tls_roots_pem`].
    pub fn proxy_roots_pem(mut self, pem: &[u8]) -> Self {
        match parse_pem_certs(pem) {
            Ok(certs) => self.opts.proxy.tls.extra_roots.extend(certs),
            Err(e) => {
                self.invalid.get_or_insert(e);
            }
        }
        self
    }

    /// Whether https proxies' certificates may chain to Mozilla's roots (default on). Off:
    /// only those added with [`Builder::proxy_roots_pem`].
    pub fn proxy_default_roots(mut self, on: bool) -> Self {
        self.opts.proxy.tls.no_default_roots = !on;
        self
    }

    /// **Dangerous: for testing only.** Accepts any certificate from an https proxy.
    /// [`Builder::danger_accept_invalid_certs`] does not cover proxies: this is its own
    /// switch, as curl's `--proxy-insecure` is.
    pub fn proxy_danger_accept_invalid_certs(mut self, on: bool) -> Self {
        self.opts.proxy.tls.danger_accept_invalid_certs = on;
        self
    }

    /// Whether to trust Mozilla's roots (the `webpki-roots` feature, on by default).
    /// Off: only the roots added with [`Builder::tls_roots_pem`] are trusted.
    pub fn tls_default_roots(mut self, on: bool) -> Self {
        self.opts.tls.no_default_roots = !on;
        self
    }

    /// Uses this rustls configuration for every `https` connection, as is (roots,
    /// verifier, ALPN, versions: all yours). Shared by all connections, so sessions resume.
    ///
    /// Build it with [`parafetch::rustls`](crate::rustls), the rustls parafetch links:
    /// a config from another rustls version is another type. This ties parafetch's semver
    /// to rustls's: a semver-incompatible rustls upgrade is a parafetch breaking change.
    /// We accept that rather than wrap every rustls option in our own types.
    pub fn tls_config(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.opts.tls.custom = Some(config);
        self
    }

    /// **Dangerous: for testing only.** Accepts any server certificate for any name, so
    /// anyone on the path can read and change the traffic. Never the default.
    pub fn danger_accept_invalid_certs(mut self, on: bool) -> Self {
        self.opts.tls.danger_accept_invalid_certs = on;
        self
    }
}

fn bad_rate(what: &str, per_second: f64) -> Error {
    Error::new(
        crate::error::ErrorKind::InvalidRequest,
        crate::error::Phase::Prepare,
        format!("{what} must be a positive number of requests per second, not {per_second}"),
    )
}
