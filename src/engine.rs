//! Admission and follow-up: which accepted task starts next (global cap, per-host cap,
//! per-host delay), and what a finished attempt turns into (a completion, a redirect, a
//! retry after backoff).
//!
//! The admission rule: a task waits in its host's queue; a host is *ready* when it has a
//! queued task, fewer than `per_host` tasks running, and its delay since its last start has
//! passed. While fewer than `max_in_flight` attempts run, the engine starts the first task of
//! the next ready host, round robin. A host that is busy or waiting for its delay is simply
//! not in the ready ring, so it never blocks tasks for other hosts (no head-of-line
//! blocking).
//!
//! Owns queues and policy; it never touches a socket (the driver does).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::driver::{Driver, Finished, Origin, Task, later};
use crate::error::{Error, ErrorKind, Phase};
use crate::headers::Headers;
use crate::options::{MAX_RETRY_AFTER, Options};
use crate::proto::request::validate;
use crate::request::{Request, check_url};
use crate::response::Response;

#[derive(Default)]
struct Host {
    active: usize,
    queue: VecDeque<Task>,
    next_start: Option<Instant>,
    in_ready: bool,
    in_delayed: bool,
}

pub(crate) struct Engine {
    driver: Driver,
    opts: Arc<Options>,
    max_in_flight: usize,
    hosts: HashMap<String, Host>,
    ready: VecDeque<String>,
    delayed: BinaryHeap<Reverse<(Instant, String)>>,
    retries: BinaryHeap<Reverse<(Instant, u64)>>,
    retry_tasks: HashMap<u64, Task>,
    retry_seq: u64,
    rng: u64,
    done: VecDeque<(usize, Result<Response, Error>)>,
}

impl Engine {
    pub(crate) fn new(opts: Options) -> io::Result<Engine> {
        let opts = Arc::new(opts);
        Ok(Engine {
            driver: Driver::new(Arc::clone(&opts))?,
            max_in_flight: opts.max_in_flight,
            opts,
            hosts: HashMap::new(),
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            retries: BinaryHeap::new(),
            retry_tasks: HashMap::new(),
            retry_seq: 0,
            rng: seed(),
            done: VecDeque::new(),
        })
    }

    pub(crate) fn options(&self) -> &Options {
        &self.opts
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    pub(crate) fn set_max_in_flight(&mut self, n: usize) {
        self.max_in_flight = n.max(1);
        // A raised cap starts waiting tasks now, not at the next unrelated event.
        self.admit(Instant::now());
    }

    /// Attempts running now.
    pub(crate) fn running(&self) -> usize {
        self.driver.active()
    }

    /// Checks a caller's request and turns it into a task (its `id` still to be set):
    /// URL, scheme and host checked, headers merged with the fetcher's defaults, request
    /// head encoded once to catch a bad method or header now rather than later.
    ///
    /// # Errors
    /// `invalid_url`, `unsupported_scheme` or `invalid_request`, in phase `prepare`.
    pub(crate) fn prepare(&self, req: Request) -> Result<Task, Error> {
        let url = check_url(req.target)?;
        let mut knobs = self.opts.knobs.with(&req.overrides);
        if req.sink.is_some() && req.overrides.max_body.is_none() {
            // The body limit bounds memory; a streamed body uses none, so only a limit set
            // on the request itself applies.
            knobs.max_body = u64::MAX;
        }
        let mut headers = Headers::new();
        if !req.headers.contains("user-agent") && !self.opts.headers.contains("user-agent") {
            headers.append("User-Agent", &self.opts.user_agent);
        }
        if !req.headers.contains("accept") && !self.opts.headers.contains("accept") {
            headers.append("Accept", "*/*");
        }
        if knobs.decompress && !req.headers.contains("accept-encoding") {
            headers.append("Accept-Encoding", "gzip, deflate");
        }
        for (name, value) in self.opts.headers.iter() {
            if !req.headers.contains(name) {
                headers.append(name, value);
            }
        }
        for (name, value) in req.headers.iter() {
            headers.append(name, value);
        }
        if !self.opts.keep_alive && !headers.contains("connection") {
            headers.append("Connection", "close");
        }
        validate(&req.method, &headers).map_err(|e| Error::proto(Phase::Prepare, e))?;
        Ok(Task {
            id: 0,
            method: req.method,
            url,
            headers,
            body: req.body,
            knobs,
            sink: req.sink,
            redirects: 0,
            attempts: 0,
            sink_used: false,
        })
    }

    /// Queues an accepted task and starts what the caps allow.
    pub(crate) fn accept(&mut self, task: Task) {
        let now = Instant::now();
        self.enqueue(task, now);
        self.admit(now);
    }

    /// Puts a task at the back of its host's queue.
    fn enqueue(&mut self, task: Task, now: Instant) {
        let host = Origin::of(&task.url).host;
        self.hosts
            .entry(host.clone())
            .or_default()
            .queue
            .push_back(task);
        self.refresh_host(&host, now);
    }

    /// Drops every task (the loop failed and its owner has called every one back).
    pub(crate) fn clear(&mut self) {
        self.hosts.clear();
        self.ready.clear();
        self.delayed.clear();
        self.retries.clear();
        self.retry_tasks.clear();
        self.done.clear();
        self.driver.clear();
    }

    /// The next completion, if one is ready.
    pub(crate) fn pop_done(&mut self) -> Option<(usize, Result<Response, Error>)> {
        self.done.pop_front()
    }

    /// One turn: wait for I/O or the next deadline (at most `max_wait`), then process what
    /// finished and start what may start.
    pub(crate) fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        let mut wait = max_wait;
        let next_local = [
            self.delayed.peek().map(|Reverse((t, _))| *t),
            self.retries.peek().map(|Reverse((t, _))| *t),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(t) = next_local {
            let d = t.saturating_duration_since(now);
            wait = Some(wait.map_or(d, |w| w.min(d)));
        }
        if !self.done.is_empty() || self.driver.has_finished() {
            wait = Some(Duration::ZERO);
        }
        self.driver.turn(wait)?;
        let now = Instant::now();
        let finished: Vec<Finished> = self.driver.take_finished().collect();
        for f in finished {
            self.on_finished(f, now);
        }
        while let Some(Reverse((t, _))) = self.retries.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((_, seq))) = self.retries.pop() else {
                break;
            };
            if let Some(task) = self.retry_tasks.remove(&seq) {
                self.enqueue(task, now);
            }
        }
        while let Some(Reverse((t, _))) = self.delayed.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((_, host))) = self.delayed.pop() else {
                break;
            };
            if let Some(h) = self.hosts.get_mut(&host) {
                h.in_delayed = false;
            }
            self.refresh_host(&host, now);
        }
        self.admit(now);
        Ok(())
    }

    /// Puts a host in the ready ring or the delay heap, as its state says; forgets a host
    /// with nothing left to do.
    fn refresh_host(&mut self, name: &str, now: Instant) {
        let Some(h) = self.hosts.get_mut(name) else {
            return;
        };
        let delay_passed = h.next_start.is_none_or(|t| t <= now);
        if h.queue.is_empty() {
            if h.active == 0 && delay_passed && !h.in_ready && !h.in_delayed {
                self.hosts.remove(name);
            } else if h.active == 0 && !delay_passed && !h.in_delayed {
                // Idle but still inside its delay: the delay heap comes back for it, and
                // then forgets it, so idle hosts do not pile up in the map.
                if let Some(t) = h.next_start {
                    h.in_delayed = true;
                    self.delayed.push(Reverse((t, name.to_owned())));
                }
            }
            return;
        }
        if self.opts.per_host.is_some_and(|cap| h.active >= cap) {
            return; // a finishing task of this host refreshes it again
        }
        if !delay_passed {
            if !h.in_delayed {
                h.in_delayed = true;
                if let Some(t) = h.next_start {
                    self.delayed.push(Reverse((t, name.to_owned())));
                }
            }
            return;
        }
        if !h.in_ready {
            h.in_ready = true;
            self.ready.push_back(name.to_owned());
        }
    }

    /// Starts tasks of ready hosts, round robin, while the global cap allows.
    fn admit(&mut self, now: Instant) {
        while self.driver.active() < self.max_in_flight {
            let Some(name) = self.ready.pop_front() else {
                return;
            };
            let Some(h) = self.hosts.get_mut(&name) else {
                continue;
            };
            h.in_ready = false;
            let eligible = h.next_start.is_none_or(|t| t <= now)
                && self.opts.per_host.is_none_or(|cap| h.active < cap);
            let task = if eligible { h.queue.pop_front() } else { None };
            if let Some(task) = task {
                h.active += 1;
                if !self.opts.host_delay.is_zero() {
                    h.next_start = Some(later(now, self.opts.host_delay));
                }
                self.driver.start(task, now);
            }
            self.refresh_host(&name, now);
        }
    }

    fn on_finished(&mut self, f: Finished, now: Instant) {
        let Finished { task, result } = f;
        let host = Origin::of(&task.url).host;
        if let Some(h) = self.hosts.get_mut(&host) {
            h.active = h.active.saturating_sub(1);
        }
        self.refresh_host(&host, now);
        match result {
            Ok(resp) if follows_redirect(&task, resp.status, &resp.headers) => {
                match redirect(task, &resp, &self.opts) {
                    Ok(next) => self.enqueue(next, now),
                    Err((id, e)) => self.done.push_back((id, Err(e))),
                }
            }
            result => match self.retry_delay(&task, &result) {
                Some(delay) => {
                    self.retry_seq += 1;
                    self.retries
                        .push(Reverse((later(now, delay), self.retry_seq)));
                    self.retry_tasks.insert(self.retry_seq, task);
                }
                None => {
                    let result = result.map_err(|mut e| {
                        e.set_attempts(task.attempts);
                        e
                    });
                    self.done.push_back((task.id, result));
                }
            },
        }
    }

    /// Whether to retry, and after how long: transient failures only, within the budget.
    fn retry_delay(&mut self, task: &Task, result: &Result<Response, Error>) -> Option<Duration> {
        if task.attempts > task.knobs.retries || task.sink_used {
            return None;
        }
        let retry_after = match result {
            // The server may have acted on a non-idempotent request before failing.
            Ok(r) if retries_status(task, r.status) => {
                r.headers.get("retry-after").and_then(parse_retry_after)
            }
            Ok(_) => return None,
            Err(e) => {
                let transient = match e.kind() {
                    // The request never left: safe for any method.
                    ErrorKind::Connect => true,
                    ErrorKind::Timeout | ErrorKind::Io | ErrorKind::Truncated => {
                        is_idempotent(&task.method)
                    }
                    _ => false,
                };
                if !transient {
                    return None;
                }
                None
            }
        };
        let exp = self
            .opts
            .retry_backoff
            .saturating_mul(1u32 << (task.attempts - 1).min(16));
        // Equal jitter: half fixed, half random, so retries of many requests spread out.
        let half = exp / 2;
        let jitter = half.mul_f64(self.next_unit());
        let backoff = half + jitter;
        Some(retry_after.map_or(backoff, |ra| ra.min(MAX_RETRY_AFTER).max(backoff)))
    }

    fn next_unit(&mut self) -> f64 {
        // xorshift64*: jitter needs spread, not cryptographic strength.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn seed() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish() | 1
}

/// RFC 9110 §9.2.2: methods a client may repeat without asking.
pub(crate) fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

pub(crate) fn is_redirect_status(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Whether this response will be followed rather than delivered (its body is then
/// discarded, never streamed to the caller's sink).
pub(crate) fn is_intermediate(task: &Task, status: u16, headers: &crate::Headers) -> bool {
    follows_redirect(task, status, headers)
        || (retries_status(task, status) && task.attempts <= task.knobs.retries)
}

/// Whether a response with this status and head is a redirect this task follows.
fn follows_redirect(task: &Task, status: u16, headers: &crate::Headers) -> bool {
    task.knobs.follow_redirects && is_redirect_status(status) && headers.contains("location")
}

/// Whether this status is one the task may retry (budget aside): a transient one, for a
/// method the server cannot have half-applied.
fn retries_status(task: &Task, status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504) && is_idempotent(&task.method)
}

/// Builds the next hop of a redirect, applying the security rules: only http/https, no
/// https→http downgrade unless allowed, credentials dropped when the origin changes,
/// 303 (and 301/302 after POST) become GET without a body.
fn redirect(mut task: Task, resp: &Response, opts: &Options) -> Result<Task, (usize, Error)> {
    let fail = |kind, msg: String| Error::new(kind, Phase::Redirect, msg);
    if task.redirects >= task.knobs.max_redirects {
        let msg = format!("more than {} redirects", task.knobs.max_redirects);
        return Err((task.id, fail(ErrorKind::TooManyRedirects, msg)));
    }
    let location = resp.headers.get("location").unwrap_or("");
    let next = match task.url.join(location.trim()) {
        Ok(u) => u,
        Err(e) => {
            let msg = format!("bad location {location:?}: {e}");
            return Err((task.id, fail(ErrorKind::BadRedirect, msg)));
        }
    };
    if !matches!(next.scheme(), "http" | "https") || next.host_str().is_none_or(str::is_empty) {
        let msg = format!("refusing to follow a redirect to {:?}", next.as_str());
        return Err((task.id, fail(ErrorKind::BadRedirect, msg)));
    }
    if task.url.scheme() == "https" && next.scheme() == "http" && !opts.allow_https_downgrade {
        let msg = format!("refusing https to http downgrade to {:?}", next.as_str());
        return Err((task.id, fail(ErrorKind::BadRedirect, msg)));
    }
    if Origin::of(&task.url) != Origin::of(&next) {
        for name in ["authorization", "cookie", "proxy-authorization", "host"] {
            task.headers.remove(name);
        }
    }
    let to_get = resp.status == 303 && task.method != "HEAD"
        || matches!(resp.status, 301 | 302) && task.method == "POST";
    if to_get {
        task.method = "GET".to_owned();
        task.body = None;
        for name in ["content-type", "content-length", "content-encoding"] {
            task.headers.remove(name);
        }
    }
    task.url = next;
    task.redirects += 1;
    task.attempts = 0;
    Ok(task)
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(v)?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (the form senders must use).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| m == month)? as u64 + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Four-digit years only (RFC 9110 §5.6.7): nothing later can overflow below.
    if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) || *h > 23 || *m > 59 || *sec > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), for years from 1970.
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_parses() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 784_111_777);
        assert!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("+5"), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        // A hostile date must not overflow (it panicked before the year bound).
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 300000000000 08:49:37 GMT"),
            None
        );
        assert!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT").is_some());
    }
}
