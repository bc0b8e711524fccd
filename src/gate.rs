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

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use crate::driver::cache::TtlCache;
use crate::error::{Error, ErrorKind, Phase};
use crate::robots::{MAX_ROBOTS_BYTES, Robots, agent_token};
use crate::task::{Sink, Task};

/// Most origins whose robots.txt is remembered; at the cap, those closest to expiry go.
pub const ROBOTS_CACHE_MAX: usize = 10_000;
/// How long a fetched robots.txt is trusted by default (RFC 9309: "SHOULD NOT use the
/// cached version for more than 24 hours").
pub const DEFAULT_ROBOTS_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long an unreachable robots.txt (5xx, 429, no answer) disallows everything by
/// default before it is fetched again.
pub const DEFAULT_ROBOTS_UNREACHABLE_TTL: Duration = Duration::from_secs(600);
/// Redirects followed to reach a robots.txt (RFC 9309: at least five).
pub(crate) const ROBOTS_REDIRECTS: u32 = 5;

/// What is known of one origin's robots.txt.
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
    /// Parked; fetch this URL (the origin's `/robots.txt`) first.
    Fetch(Url),
}

/// What the robots.txt fetch came to, as the engine saw it.
pub(crate) enum Fetched {
    /// A final response with this status and reason (the body went to the collector).
    Answer(u16, String),
    /// No response: why.
    Failed(Error),
}

pub(crate) struct Gate {
    agent: String,
    known: TtlCache<Known>,
    /// Tasks waiting for their origin's robots.txt, by origin.
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

/// A URL's path and query, as robots.txt rules match them.
fn path_and_query(url: &Url) -> &str {
    &url[url::Position::BeforePath..url::Position::AfterQuery]
}

impl Gate {
    /// A gate for the product token of `user_agent`, trusting fetched files for `ttl` and
    /// refusing an unreachable origin's requests for `unreachable_ttl`.
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
        if let Some(known) = self.known.get(&origin, now) {
            let known = known.clone();
            return self.apply(&origin, &known, task);
        }
        match self.waiting.get_mut(&origin) {
            Some(parked) => {
                parked.push(task);
                Verdict::Parked
            }
            None => {
                let mut robots = task.url.clone();
                robots.set_path("/robots.txt");
                robots.set_query(None);
                robots.set_fragment(None);
                // Credentials in the page's URL are not sent for robots.txt.
                let _ = robots.set_username("");
                let _ = robots.set_password(None);
                self.waiting.insert(origin, vec![task]);
                Verdict::Fetch(robots)
            }
        }
    }

    fn apply(&self, origin: &str, known: &Known, task: Task) -> Verdict {
        match known {
            Known::Rules(r) => {
                let path = path_and_query(&task.url);
                if r.allowed(path) {
                    Verdict::Go(task, r.crawl_delay())
                } else {
                    let msg = format!(
                        "robots.txt of {origin} disallows {path} for user agent {:?}",
                        self.agent
                    );
                    Verdict::Refused(task, Error::new(ErrorKind::Robots, Phase::Robots, msg))
                }
            }
            Known::Unreachable(why) => {
                let msg = format!(
                    "robots.txt of {origin} is unreachable ({why}): nothing is fetched from \
                     that origin for now (RFC 9309: disallow all)"
                );
                Verdict::Refused(task, Error::new(ErrorKind::Robots, Phase::Robots, msg))
            }
        }
    }

    /// The robots.txt of `url`'s origin came (or did not): remembers it, and returns the
    /// verdict for each task that waited for it, in the order they came.
    pub(crate) fn fetched(
        &mut self,
        url: &Url,
        outcome: Fetched,
        body: &[u8],
        now: Instant,
    ) -> Vec<Verdict> {
        let origin = origin_of(url);
        let (known, ttl) = self.judge(outcome, body);
        self.known
            .insert(origin.clone(), known.clone(), now + ttl, now);
        let parked = self.waiting.remove(&origin).unwrap_or_default();
        parked
            .into_iter()
            .map(|t| self.apply(&origin, &known, t))
            .collect()
    }

    fn judge(&self, outcome: Fetched, body: &[u8]) -> (Known, Duration) {
        let rules = |r: Robots| (Known::Rules(Arc::new(r)), self.ttl);
        let unreachable = |why: String| (Known::Unreachable(why.into()), self.unreachable_ttl);
        match outcome {
            Fetched::Answer(200..=299, _) => rules(Robots::parse(body, &self.agent)),
            Fetched::Answer(429, reason) => unreachable(format!("429 {reason}")),
            // Unavailable: a 4xx, or a redirect not followed to its end.
            Fetched::Answer(300..=499, _) => rules(Robots::allow_all()),
            Fetched::Answer(status, reason) => unreachable(format!("{status} {reason}")),
            // The collector stopped it at the cap: the first 500 KiB are the file.
            Fetched::Failed(_) if body.len() >= MAX_ROBOTS_BYTES => {
                rules(Robots::parse(&body[..MAX_ROBOTS_BYTES], &self.agent))
            }
            // More than five redirects, or one that may not be followed: unavailable.
            Fetched::Failed(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TooManyRedirects | ErrorKind::BadRedirect
                ) =>
            {
                rules(Robots::allow_all())
            }
            Fetched::Failed(e) => unreachable(format!("{e}")),
        }
    }

    /// Drops every waiting task (the loop failed and its owner called them all back).
    pub(crate) fn clear(&mut self) {
        self.waiting.clear();
    }
}

/// A body collector for a robots.txt fetch: keeps the first [`MAX_ROBOTS_BYTES`], then
/// stops the transfer (the engine parses what it kept).
pub(crate) fn collector() -> (Sink, Rc<RefCell<Vec<u8>>>) {
    let body = Rc::new(RefCell::new(Vec::new()));
    let kept = Rc::clone(&body);
    let sink: Sink = Box::new(move |data: &[u8]| {
        let mut b = kept.borrow_mut();
        let room = MAX_ROBOTS_BYTES - b.len();
        b.extend_from_slice(&data[..data.len().min(room)]);
        if data.len() > room {
            return Err(io::Error::other("robots.txt is longer than 500 KiB"));
        }
        Ok(())
    });
    (sink, body)
}
