//! The robots.txt gate (`obey_robots`): what the fetcher knows of each origin's
//! robots.txt, the requests waiting while it is fetched, and the verdict for each request.
//!
//! RFC 9309 as the engine applies it: an origin's robots.txt is fetched once, before its
//! first request (that origin's requests wait for it; other origins go on); a 2xx is
//! parsed (its first [`MAX_ROBOTS_BYTES`] only); a 3xx left after 5 redirects and any 4xx
//! mean "allow all"; a 5xx, a 429 (as Google treats it) or no answer at all mean
//! "disallow all" for a while, after which it is fetched again. What is learnt is cached
//! (24 h by default) in a bounded cache.
//!
//! No I/O here: the engine fetches robots.txt as a task of its own and reports what came.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use url::Url;

use crate::driver::cache::TtlCache;
use crate::driver::timer::later;
use crate::error::{Error, ErrorKind, Phase};
use crate::proxy::Proxy;
use crate::robots::{MAX_ROBOTS_BYTES, Robots, agent_token};
use crate::task::{Sink, Task};

/// Most origins (per user agent) whose robots.txt is remembered; at the cap, those
/// closest to expiry go.
pub const ROBOTS_CACHE_MAX: usize = 10_000;
/// How long a fetched robots.txt is trusted by default (RFC 9309: "SHOULD NOT use the
/// cached version for more than 24 hours").
pub const DEFAULT_ROBOTS_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long an unreachable robots.txt (5xx, 429, no answer) disallows everything by
/// default before it is fetched again.
pub const DEFAULT_ROBOTS_UNREACHABLE_TTL: Duration = Duration::from_secs(600);
/// Redirects followed to reach a robots.txt (RFC 9309: at least five).
pub(crate) const ROBOTS_REDIRECTS: u32 = 5;

/// What is known of one origin's robots.txt, for one user agent.
#[derive(Clone, Debug)]
enum Known {
    Rules(Arc<Robots>),
    /// No usable answer: everything is disallowed until it expires. Why, in words.
    Unreachable(Arc<str>),
}

/// What becomes of a request at the gate.
pub(crate) enum Verdict {
    /// It may go; the origin's `Crawl-delay`, if any.
    Go(Task, Option<Duration>),
    /// Refused without touching the network.
    Refused(Task, Error),
    /// Parked until its origin's robots.txt arrives (already being fetched).
    Parked,
    /// Parked; fetch the origin's `/robots.txt` first.
    Fetch(Fetch),
}

/// A robots.txt to fetch, as the first request waiting for it would have fetched it.
pub(crate) struct Fetch {
    /// The origin's `/robots.txt`.
    pub url: Url,
    pub origin: String,
    /// The product token it is for.
    pub agent: String,
    /// The waiting request's `User-Agent`, sent with the robots.txt request too.
    pub user_agent: Option<String>,
    /// The waiting request's proxy choice.
    pub proxy: Option<Arc<Proxy>>,
    pub proxy_fixed: bool,
}

/// What the robots.txt fetch came to, as the engine saw it.
pub(crate) enum Fetched {
    /// A final response with this status and reason (the body went to the collector).
    Answer(u16, String),
    /// No (complete) response: why, and the status of a head that arrived first.
    Failed(Error, Option<u16>),
}

pub(crate) struct Gate {
    /// The fetcher's product token, for a request without a `User-Agent`.
    agent: String,
    /// By product token and origin ([`cache_key`]).
    known: TtlCache<Known>,
    /// Tasks waiting for their origin's robots.txt, by the same key.
    waiting: HashMap<String, Vec<Task>>,
    ttl: Duration,
    unreachable_ttl: Duration,
}

/// The key of a URL's origin, as robots.txt is per origin: `scheme://host:port`.
fn origin_of(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or("").to_ascii_lowercase(),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// robots.txt is per origin, and its verdict per user agent: a request with its own
/// `User-Agent` is judged for that agent.
fn cache_key(agent: &str, origin: &str) -> String {
    format!("{agent} {origin}")
}

/// A URL's path and query, as robots.txt rules match them.
fn path_and_query(url: &Url) -> &str {
    &url[url::Position::BeforePath..url::Position::AfterQuery]
}

impl Gate {
    /// A gate for the product token of `user_agent` (for requests without their own),
    /// trusting fetched files for `ttl` and refusing an unreachable origin's requests for
    /// `unreachable_ttl`.
    pub(crate) fn new(user_agent: &str, ttl: Duration, unreachable_ttl: Duration) -> Gate {
        let one_second = Duration::from_secs(1);
        Gate {
            agent: agent_token(user_agent).to_owned(),
            known: TtlCache::new(ROBOTS_CACHE_MAX),
            waiting: HashMap::new(),
            ttl: ttl.max(one_second),
            unreachable_ttl: unreachable_ttl.max(one_second),
        }
    }

    /// The verdict for a task (a caller's: the robots.txt fetch itself never comes here).
    pub(crate) fn check(&mut self, task: Task, now: Instant) -> Verdict {
        let origin = origin_of(&task.url);
        let user_agent = task.headers.get("user-agent").map(str::to_owned);
        let agent = user_agent
            .as_deref()
            .map_or(self.agent.as_str(), agent_token)
            .to_owned();
        let key = cache_key(&agent, &origin);
        if let Some(known) = self.known.get(&key, now) {
            let known = known.clone();
            return apply(&origin, &agent, &known, task);
        }
        if let Some(parked) = self.waiting.get_mut(&key) {
            parked.push(task);
            return Verdict::Parked;
        }
        let mut url = task.url.clone();
        url.set_path("/robots.txt");
        url.set_query(None);
        url.set_fragment(None);
        // Credentials in the page's URL are not sent for robots.txt.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let fetch = Fetch {
            url,
            origin,
            agent,
            user_agent,
            proxy: task.proxy.clone(),
            proxy_fixed: task.proxy_fixed,
        };
        self.waiting.insert(key, vec![task]);
        Verdict::Fetch(fetch)
    }

    /// The robots.txt of `origin` for `agent` came (or did not): remembers it, and
    /// returns the verdict for each task that waited for it, in the order they came.
    pub(crate) fn fetched(
        &mut self,
        origin: &str,
        agent: &str,
        outcome: Fetched,
        body: &[u8],
        now: Instant,
    ) -> Vec<Verdict> {
        let key = cache_key(agent, origin);
        let (known, ttl) = self.judge(agent, outcome, body);
        self.known
            .insert(key.clone(), known.clone(), later(now, ttl), now);
        let parked = self.waiting.remove(&key).unwrap_or_default();
        parked
            .into_iter()
            .map(|t| apply(origin, agent, &known, t))
            .collect()
    }

    fn judge(&self, agent: &str, outcome: Fetched, body: &[u8]) -> (Known, Duration) {
        let rules = |r: Robots| (Known::Rules(Arc::new(r)), self.ttl);
        let unreachable = |why: String| (Known::Unreachable(why.into()), self.unreachable_ttl);
        let redirects = |e: &Error| {
            matches!(
                e.kind(),
                ErrorKind::TooManyRedirects | ErrorKind::BadRedirect
            )
        };
        match outcome {
            Fetched::Answer(200..=299, _) => rules(Robots::parse(body, agent)),
            Fetched::Answer(429, reason) => unreachable(format!("429 {reason}")),
            // Unavailable: a 4xx, or a redirect not followed to its end.
            Fetched::Answer(300..=499, _) => rules(Robots::allow_all()),
            Fetched::Answer(status, reason) => unreachable(format!("{status} {reason}")),
            // The collector stopped a 2xx at the cap: the first 500 KiB are the file.
            Fetched::Failed(_, Some(200..=299)) if body.len() >= MAX_ROBOTS_BYTES => {
                rules(Robots::parse(&body[..MAX_ROBOTS_BYTES], agent))
            }
            // The head said what it is: an error page cut short changes nothing.
            Fetched::Failed(_, Some(status)) if !(200..=299).contains(&status) => {
                self.judge(agent, Fetched::Answer(status, String::new()), body)
            }
            // More than five redirects, or one that may not be followed: unavailable.
            Fetched::Failed(e, _) if redirects(&e) => rules(Robots::allow_all()),
            Fetched::Failed(e, _) => unreachable(format!("{e}")),
        }
    }

    /// Drops every waiting task (the loop failed and its owner called them all back).
    pub(crate) fn clear(&mut self) {
        self.waiting.clear();
    }
}

/// A known robots.txt's verdict for one task.
fn apply(origin: &str, agent: &str, known: &Known, task: Task) -> Verdict {
    match known {
        Known::Rules(r) => {
            if r.allowed(path_and_query(&task.url)) {
                return Verdict::Go(task, r.crawl_delay());
            }
            // The path only: a query may carry a token that must not reach a log.
            let msg = format!(
                "robots.txt of {origin} disallows {} for user agent {agent:?}",
                task.url.path()
            );
            Verdict::Refused(task, Error::new(ErrorKind::Robots, Phase::Robots, msg))
        }
        Known::Unreachable(why) => {
            let msg = format!(
                "robots.txt of {origin} is unreachable ({why}): nothing is fetched from that \
                 origin for now (RFC 9309: disallow all)"
            );
            Verdict::Refused(task, Error::new(ErrorKind::Robots, Phase::Robots, msg))
        }
    }
}

/// A body collector for a robots.txt fetch: keeps the first [`MAX_ROBOTS_BYTES`], then
/// stops the transfer (the engine parses what it kept).
pub(crate) fn collector() -> (Sink, Arc<Mutex<Vec<u8>>>) {
    let body = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&body);
    let sink: Sink = Box::new(move |data: &[u8]| {
        let mut b = crate::unwind::lock(&kept);
        let room = MAX_ROBOTS_BYTES - b.len();
        b.extend_from_slice(&data[..data.len().min(room)]);
        if data.len() > room {
            return Err(io::Error::other("robots.txt is longer than 500 KiB"));
        }
        Ok(())
    });
    (sink, body)
}
