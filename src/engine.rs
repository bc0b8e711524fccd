//! Admission and follow-up: which accepted task starts next (global cap, per-host cap,
//! per-host delay), and what a finished attempt turns into (a completion, a redirect, a
//! retry after backoff, a replay after a stale pooled connection). It builds the public
//! [`Response`] from what the driver hands up.
//!
//! The admission rule: a task waits in its host's queue; a host is *ready* when it has a
//! queued task, fewer than `per_host` tasks running, and its delay since its last start has
//! passed. While fewer than `max_in_flight` attempts run, the engine starts the first task of
//! the next ready host, round robin. A host that is busy or waiting for its delay is simply
//! not in the ready ring, so it never blocks tasks for other hosts (no head-of-line
//! blocking).
//!
//! Owns queues and acts on policy (`policy.rs` says what the rules are); it never touches a
//! socket (the driver does).

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::budget::Budget;
use crate::driver::timer::{Deadlines, later};
use crate::driver::{Config, Driver, Exchanged, Failure, Finished, NamesConfig};
use crate::error::{Error, ErrorKind, Phase};
use crate::gate::{self, Fetch, Fetched, Gate, ROBOTS_REDIRECTS, Verdict};
use crate::options::{MAX_RETRY_AFTER, Options};
use crate::policy::{self, Reuse};
use crate::polite::{Answer, Answered, Pace, PaceRules, PoliteStats};
use crate::proto::validate;
use crate::proto::{ContentDecoder, Headers};
use crate::proxy::{Proxy, ProxyConfig};
use crate::rate::Bucket;
use crate::request::{Request, RequestProxy, Target, check_url};
use crate::response::Response;
use crate::task::{Purpose, Task};
use crate::unwind::lock;

/// One politeness key's queue and pace.
struct Host {
    active: usize,
    queue: VecDeque<Task>,
    /// When its next request may start, and what it has learnt.
    pace: Pace,
    in_ready: bool,
    /// Its entry in the delay heap, if it has one: an earlier need pushes another (the
    /// heap tolerates the stale one), so a new task never waits for an old, later time.
    delayed_at: Option<Instant>,
}

impl Host {
    fn new(rules: &PaceRules, now: Instant) -> Host {
        Host {
            active: 0,
            queue: VecDeque::new(),
            pace: Pace::new(rules, now),
            in_ready: false,
            delayed_at: None,
        }
    }
}

pub(crate) struct Engine {
    driver: Driver,
    opts: Arc<Options>,
    max_in_flight: usize,
    /// Where requests' proxies come from (the environment read once, at build).
    proxies: ProxyConfig,
    /// Choices made so far, for round robin.
    proxy_turn: Cell<u64>,
    /// robots.txt, with `obey_robots`.
    gate: Option<Gate>,
    /// Cookie jars by name (`""`: the fetcher's default).
    #[cfg(feature = "cookies")]
    jars: HashMap<String, crate::CookieJar>,
    /// Queues by politeness key.
    hosts: HashMap<String, Host>,
    pace_rules: PaceRules,
    stats: PoliteStats,
    ready: VecDeque<String>,
    /// Hosts waiting for their delay to pass.
    delayed: Deadlines<String>,
    /// Tasks waiting for their retry backoff, by sequence number.
    retries: Deadlines<u64>,
    retry_tasks: HashMap<u64, Task>,
    retry_seq: u64,
    /// The whole fetcher's rate (with `rate`), and when its next token is due while the
    /// loop waits for it.
    global: Option<Arc<Mutex<Bucket>>>,
    global_wake: Option<Instant>,
    /// The other loops of a spawned fetcher: the in-flight budget they share.
    siblings: Option<Siblings>,
    rng: u64,
    done: VecDeque<(usize, Result<Response, Error>)>,
}

/// The driver's part of the options.
fn driver_config(opts: &Options) -> Config {
    Config {
        keep_alive: opts.keep_alive,
        limits: opts.limits,
        pool_idle_timeout: opts.pool_idle_timeout,
        pool_max_idle_per_host: opts.pool_max_idle_per_host,
        pool_max_idle: opts.pool_max_idle,
        names: NamesConfig {
            system_threads: opts.dns.system.then_some(opts.resolver_threads),
            servers: opts.dns.servers.clone(),
            search: opts.dns.search.clone(),
            timeout: opts.dns.timeout,
            ttl_floor: opts.dns.ttl_floor,
            ttl_ceiling: opts.dns.ttl_ceiling,
            overrides: opts.resolve_overrides.clone(),
        },
        tls: opts.tls.clone(),
        proxy_tls: opts.proxy.tls.clone(),
    }
}

/// What one loop of a spawned fetcher shares with the others: the in-flight budget (it is
/// loop `index` there) and the fetcher's rate.
#[derive(Clone)]
pub(crate) struct Siblings {
    pub budget: Arc<Budget>,
    pub index: usize,
    pub rate: Option<Arc<Mutex<Bucket>>>,
}

impl Engine {
    pub(crate) fn new(opts: Options) -> io::Result<Engine> {
        Engine::with_siblings(opts, None)
    }

    /// One loop of several: the cap and rate are the siblings', shared.
    pub(crate) fn with_siblings(opts: Options, siblings: Option<Siblings>) -> io::Result<Engine> {
        let opts = Arc::new(opts);
        let global = match &siblings {
            Some(s) => s.rate.clone(),
            None => opts.rate.map(|r| shared_bucket(r, Instant::now())),
        };
        let pace_rules = opts.pace_rules();
        #[cfg(feature = "cookies")]
        let jars = opts
            .cookie_jar
            .clone()
            .map(|j| (String::new(), j))
            .into_iter()
            .collect();
        let gate = opts.obey_robots.then(|| {
            let agent = opts.headers.get("user-agent").unwrap_or(&opts.user_agent);
            Gate::new(agent, opts.robots_ttl.0, opts.robots_ttl.1)
        });
        Ok(Engine {
            driver: Driver::new(driver_config(&opts))?,
            max_in_flight: opts.max_in_flight,
            proxies: opts.proxy.resolve(|k| std::env::var(k).ok()),
            proxy_turn: Cell::new(0),
            opts,
            gate,
            #[cfg(feature = "cookies")]
            jars,
            hosts: HashMap::new(),
            pace_rules,
            stats: PoliteStats::default(),
            ready: VecDeque::new(),
            delayed: Deadlines::default(),
            retries: Deadlines::default(),
            retry_tasks: HashMap::new(),
            retry_seq: 0,
            global,
            global_wake: None,
            siblings,
            rng: seed(),
            done: VecDeque::new(),
        })
    }

    pub(crate) fn options(&self) -> &Options {
        &self.opts
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        match &self.siblings {
            Some(s) => s.budget.cap(),
            None => self.max_in_flight,
        }
    }

    /// A fresh loop with the same options in place of this one (whose tasks the caller
    /// has called back): what its siblings lent it goes back to them.
    pub(crate) fn restart(&mut self) -> io::Result<()> {
        if let Some(s) = &self.siblings {
            // Its attempts are gone, whether or not a new loop comes.
            s.budget.give_back(s.index, s.budget.held(s.index));
        }
        *self = Engine::with_siblings((*self.opts).clone(), self.siblings.clone())?;
        Ok(())
    }

    /// Wakes this loop from another thread.
    pub(crate) fn waker(&self) -> Arc<mio::Waker> {
        self.driver.waker()
    }

    pub(crate) fn set_max_in_flight(&mut self, n: usize) {
        self.max_in_flight = n.max(1);
        if let Some(s) = &self.siblings {
            s.budget.set_cap(n);
        }
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
        if req.sink.is_some() && req.overrides.max_body.is_none() && !knobs.capture_wire {
            // The body limit bounds memory; a streamed body uses none, so only a limit set
            // on the request itself applies. A captured exchange is kept in memory: the
            // fetcher's limit stays.
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
            headers.append("Accept-Encoding", ContentDecoder::ACCEPT_ENCODING);
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
        let jar = req.jar.or_else(|| self.opts.cookies.then(String::new));
        // A Cookie header of the caller's (or the fetcher's) wins over the jar.
        let jar_sends = jar.is_some() && !headers.contains("cookie");
        let (proxy, proxy_fixed) = match req.proxy {
            Some(RequestProxy::Via(p)) => (Some(p?), true),
            Some(RequestProxy::Direct) => (None, true),
            None => (self.pick_proxy(&url)?, false),
        };
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
            replayed: false,
            proxy,
            proxy_fixed,
            tunnel: self.opts.proxy.tunnel,
            purpose: Purpose::Caller,
            jar,
            jar_sends,
        })
    }

    /// What [`Engine::prepare`] refuses, checked away from the loop (on a producer's
    /// thread) so that a bad request is an `Err` there: the URL (parsed in place, and
    /// returned), the method and headers, a request's own proxy URL.
    pub(crate) fn precheck(req: &mut Request) -> Result<url::Url, Error> {
        let target = std::mem::replace(&mut req.target, Target::Text(String::new()));
        let url = check_url(target)?;
        req.target = Target::Url(url.clone());
        validate(&req.method, &req.headers).map_err(|e| Error::proto(Phase::Prepare, e))?;
        if let Some(RequestProxy::Via(Err(e))) = &req.proxy {
            return Err(e.clone());
        }
        Ok(url)
    }

    /// The fetcher's proxy for `url` (taking the next of a round-robin list).
    fn pick_proxy(&self, url: &url::Url) -> Result<Option<Arc<Proxy>>, Error> {
        if self.proxies.is_direct() {
            return Ok(None);
        }
        self.proxies.pick(url, &self.proxy_turn)
    }

    /// Queues an accepted task and starts what the caps allow.
    pub(crate) fn accept(&mut self, task: Task) {
        let now = Instant::now();
        self.enqueue(task, now);
        self.admit(now);
    }

    /// What politeness did so far.
    pub(crate) fn polite_stats(&self) -> PoliteStats {
        self.stats
    }

    /// The politeness key of a URL's requests.
    fn key(&self, url: &url::Url) -> String {
        self.opts.politeness_key.of(url)
    }

    /// Takes a task that may start once the caps allow: a caller's task passes the
    /// robots.txt gate first (with `obey_robots`).
    fn enqueue(&mut self, task: Task, now: Instant) {
        let verdict = match (&mut self.gate, &task.purpose) {
            (Some(gate), Purpose::Caller) => gate.check(task, now),
            _ => Verdict::Go(task, None),
        };
        self.on_verdict(verdict, now);
    }

    fn on_verdict(&mut self, verdict: Verdict, now: Instant) {
        match verdict {
            Verdict::Go(task, crawl_delay) => self.queue(task, crawl_delay, false, now),
            Verdict::Refused(task, error) => {
                self.stats.robots_refused += 1;
                self.deliver(task.id, task.purpose, Err(error), now);
            }
            Verdict::Parked => {}
            Verdict::Fetch(fetch) => {
                // First in its host's queue: the requests waiting for it come after.
                let task = self.robots_task(fetch);
                self.queue(task, None, true, now);
            }
        }
    }

    /// Puts a task in its host's queue (at the front for the host's robots.txt).
    fn queue(&mut self, task: Task, crawl_delay: Option<Duration>, front: bool, now: Instant) {
        let key = self.key(&task.url);
        let rules = &self.pace_rules;
        let h = self
            .hosts
            .entry(key.clone())
            .or_insert_with(|| Host::new(rules, now));
        if let Some(d) = crawl_delay {
            h.pace.set_crawl_delay(d);
        }
        if front {
            h.queue.push_front(task);
        } else {
            h.queue.push_back(task);
        }
        self.refresh_host(&key, now);
    }

    /// The engine's own request for a robots.txt, as the first request waiting for it
    /// goes: its `User-Agent` and proxy, the fetcher's other headers; up to five
    /// redirects, decoded, its body collected up to the cap.
    fn robots_task(&self, fetch: Fetch) -> Task {
        let opts = &self.opts;
        let mut headers = Headers::new();
        if let Some(ua) = &fetch.user_agent {
            headers.append("User-Agent", ua);
        }
        if !opts.headers.contains("accept") {
            headers.append("Accept", "text/plain, */*");
        }
        if !opts.headers.contains("accept-encoding") {
            headers.append("Accept-Encoding", ContentDecoder::ACCEPT_ENCODING);
        }
        for (name, value) in opts.headers.iter() {
            if !name.eq_ignore_ascii_case("user-agent") {
                headers.append(name, value);
            }
        }
        if !opts.keep_alive && !headers.contains("connection") {
            headers.append("Connection", "close");
        }
        let mut knobs = opts.knobs;
        knobs.follow_redirects = true;
        knobs.max_redirects = ROBOTS_REDIRECTS;
        knobs.decompress = true;
        knobs.max_body = u64::MAX; // the collector stops at the cap
        let (sink, body) = gate::collector();
        Task {
            id: 0,
            method: "GET".to_owned(),
            url: fetch.url,
            headers,
            body: None,
            knobs,
            sink: Some(sink),
            redirects: 0,
            attempts: 0,
            sink_used: false,
            replayed: false,
            proxy: fetch.proxy,
            proxy_fixed: fetch.proxy_fixed,
            tunnel: opts.proxy.tunnel,
            purpose: Purpose::Robots {
                origin: fetch.origin,
                agent: fetch.agent,
                body,
                status: None,
            },
            jar: None,
            jar_sends: false,
        }
    }

    /// A task's one completion: the caller's callback, or (for a robots.txt fetch) the
    /// verdicts for the requests that waited for it.
    fn deliver(
        &mut self,
        id: usize,
        purpose: Purpose,
        result: Result<Response, Error>,
        now: Instant,
    ) {
        match purpose {
            Purpose::Caller => self.done.push_back((id, result)),
            Purpose::Robots {
                origin,
                agent,
                body,
                status,
            } => {
                let fetched = match result {
                    Ok(r) => Fetched::Answer(r.status, r.reason),
                    Err(e) => Fetched::Failed(e, status),
                };
                let body = std::mem::take(&mut *lock(&body));
                let Some(gate) = &mut self.gate else {
                    return;
                };
                for verdict in gate.fetched(&origin, &agent, fetched, &body, now) {
                    self.on_verdict(verdict, now);
                }
            }
        }
    }

    /// Drops every task (the loop failed and its owner has called every one back).
    pub(crate) fn clear(&mut self) {
        if let Some(gate) = &mut self.gate {
            gate.clear();
        }
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
    /// finished and start what may start. Everything after the wait uses the driver's
    /// reading of the clock.
    pub(crate) fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let before = Instant::now();
        let mut wait = max_wait;
        let next_local = [self.delayed.peek(), self.retries.peek(), self.global_wake]
            .into_iter()
            .flatten()
            .min();
        if let Some(t) = next_local {
            let d = t.saturating_duration_since(before);
            wait = Some(wait.map_or(d, |w| w.min(d)));
        }
        if !self.done.is_empty() || self.driver.has_finished() {
            wait = Some(Duration::ZERO);
        }
        let now = self.driver.turn(wait)?;
        let finished: Vec<Finished> = self.driver.take_finished().collect();
        for f in finished {
            self.on_finished(f, now);
        }
        while let Some((_, seq)) = self.retries.pop_due(now) {
            if let Some(task) = self.retry_tasks.remove(&seq) {
                self.enqueue(task, now);
            }
        }
        while let Some((at, host)) = self.delayed.pop_due(now) {
            if let Some(h) = self.hosts.get_mut(&host) {
                if h.delayed_at == Some(at) {
                    h.delayed_at = None;
                }
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
        let rules = &self.pace_rules;
        if h.queue.is_empty() {
            // An idle host is remembered until its delay passed, its bucket is full again
            // and what it learnt (a slowdown) is old: forgotten sooner, it would come back
            // with a burst or a pace it has not earned.
            let settle = h.pace.settled_at(rules, now);
            let settled = settle <= now;
            if h.active == 0 && settled && !h.in_ready && h.delayed_at.is_none() {
                self.hosts.remove(name);
            } else if h.active == 0 && !settled {
                // The delay heap comes back for it, and then forgets it, so idle hosts do
                // not pile up in the map.
                Self::wake_at(&mut self.delayed, h, name, settle);
            }
            return;
        }
        if self.opts.per_host.is_some_and(|cap| h.active >= cap) {
            return; // a finishing task of this host refreshes it again
        }
        let next = h.pace.next_start(rules, now);
        if next > now {
            Self::wake_at(&mut self.delayed, h, name, next);
            return;
        }
        if !h.in_ready {
            h.in_ready = true;
            self.ready.push_back(name.to_owned());
        }
    }

    /// Makes sure the delay heap wakes `h` by `at`: a later entry does not do.
    fn wake_at(delayed: &mut Deadlines<String>, h: &mut Host, name: &str, at: Instant) {
        if h.delayed_at.is_none_or(|d| at < d) {
            h.delayed_at = Some(at);
            delayed.push(at, name.to_owned());
        }
    }

    /// Starts tasks of ready hosts, round robin, while the global cap allows.
    fn admit(&mut self, now: Instant) {
        self.global_wake = None;
        let starved = self.admit_while_room(now);
        if let Some(s) = &self.siblings {
            // Slots taken or handed over and not used go back (to a starved sibling first).
            let _ = s.budget.collect(s.index);
            let spare = s
                .budget
                .held(s.index)
                .saturating_sub(self.driver.occupied());
            if spare > 0 {
                s.budget.give_back(s.index, spare);
            }
            if !starved {
                s.budget.satisfied(s.index);
            }
        }
    }

    /// Starts what may start. `true`: work was ready but the shared budget is spent.
    fn admit_while_room(&mut self, now: Instant) -> bool {
        // With siblings, the shared budget is the cap.
        let cap = match self.siblings {
            Some(_) => usize::MAX,
            None => self.max_in_flight,
        };
        while self.driver.occupied() < cap {
            if self.ready.is_empty() {
                return false;
            }
            if let Some(global) = &self.global {
                // The fetcher's rate: nothing starts before its next token; a timer wakes
                // the loop for it.
                let at = lock(global).ready_at(now);
                if at > now {
                    self.global_wake = Some(at);
                    return false;
                }
            }
            if let Some(s) = &self.siblings {
                if self.driver.occupied() >= s.budget.held(s.index) && !s.budget.take(s.index) {
                    return true;
                }
            }
            let Some(name) = self.ready.pop_front() else {
                return false;
            };
            let Some(h) = self.hosts.get_mut(&name) else {
                continue;
            };
            h.in_ready = false;
            // Its pace may have changed since it joined the ring (a 429 paused it).
            let eligible = h.pace.next_start(&self.pace_rules, now) <= now
                && self.opts.per_host.is_none_or(|cap| h.active < cap);
            let task = if eligible { h.queue.pop_front() } else { None };
            if let Some(mut task) = task {
                h.active += 1;
                h.pace.start(now);
                if let Some(global) = &self.global {
                    lock(global).take(now);
                }
                task.attempts += 1;
                #[cfg(feature = "cookies")]
                self.send_cookies(&mut task);
                let reuse = policy::reuse_for(&task);
                self.driver.start(task, reuse, now);
            }
            self.refresh_host(&name, now);
        }
        false
    }

    fn on_finished(&mut self, f: Finished, now: Instant) {
        let Finished { mut task, result } = f;
        let host = self.key(&task.url);
        match result {
            Ok(ex) => {
                #[cfg(feature = "cookies")]
                self.learn_cookies(&task, &ex);
                self.host_answered(&host, &task, &ex, now);
                self.host_finished(&host, now);
                self.on_response(task, ex, now);
            }
            Err(failure) => {
                let Failure {
                    mut error,
                    reused,
                    received_any,
                    status,
                } = failure;
                if let Purpose::Robots { status: seen, .. } = &mut task.purpose {
                    *seen = status;
                }
                let stale = policy::is_stale(reused, received_any, &error);
                if stale && policy::may_replay(&task) {
                    // The keep-alive race: the server closed the pooled connection as we
                    // reused it. Once more on a new connection, at once (the task keeps
                    // its admission slot) and not counted as an attempt.
                    task.replayed = true;
                    return self.driver.start(task, Reuse::Fresh, now);
                }
                self.host_finished(&host, now);
                if stale {
                    error.add_context(&format!(
                        "a pooled connection the server had closed; {} is not replayed \
                         (not idempotent, no Idempotency-Key)",
                        task.method
                    ));
                }
                error.set_reused(reused);
                error.set_proxy(task.proxy.clone());
                match self.retry_delay(&task, RetryCause::Error(&error)) {
                    Some(delay) => self.schedule_retry(task, delay, now),
                    None => {
                        error.set_attempts(task.attempts);
                        self.deliver(task.id, task.purpose, Err(error), now);
                    }
                }
            }
        }
    }

    /// Sets the `Cookie` header of an attempt from its jar, for its URL now (a redirect
    /// may have changed it).
    #[cfg(feature = "cookies")]
    fn send_cookies(&self, task: &mut Task) {
        let Some(name) = task.jar.as_deref().filter(|_| task.jar_sends) else {
            return;
        };
        task.headers.remove("cookie");
        if let Some(value) = self.jars.get(name).and_then(|j| j.cookie_header(&task.url)) {
            task.headers.append("Cookie", value);
        }
    }

    /// Stores an answer's `Set-Cookie` fields in the request's jar (a redirect's too,
    /// before the next hop is sent).
    #[cfg(feature = "cookies")]
    fn learn_cookies(&mut self, task: &Task, ex: &Exchanged) {
        let Some(name) = task.jar.as_deref() else {
            return;
        };
        if policy::is_proxy_refusal(task, ex.head.status) {
            return; // the proxy answered, not the origin
        }
        let mut fields = ex.head.headers.get_all("set-cookie").peekable();
        if fields.peek().is_none() {
            return;
        }
        let jar = self.jars.entry(name.to_owned()).or_default();
        for value in fields {
            jar.set_cookie(&task.url, value);
        }
    }

    /// The cookie jar `name` (`""`: the default one), if it exists.
    #[cfg(feature = "cookies")]
    pub(crate) fn jar(&self, name: &str) -> Option<&crate::CookieJar> {
        self.jars.get(name)
    }

    /// The cookie jar `name`, created empty if it does not exist.
    #[cfg(feature = "cookies")]
    pub(crate) fn jar_mut(&mut self, name: &str) -> &mut crate::CookieJar {
        self.jars.entry(name.to_owned()).or_default()
    }

    /// Drops the cookie jar `name`, returning it.
    #[cfg(feature = "cookies")]
    pub(crate) fn remove_jar(&mut self, name: &str) -> Option<crate::CookieJar> {
        self.jars.remove(name)
    }

    /// What an answer teaches the host's pace (a 429 pauses it; a latency throttles it).
    fn host_answered(&mut self, host: &str, task: &Task, ex: &Exchanged, now: Instant) {
        let status = ex.head.status;
        if policy::is_proxy_refusal(task, status) {
            return; // the proxy answered, not the host
        }
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        let retry_after = ex
            .head
            .headers
            .get("retry-after")
            .and_then(|v| policy::parse_retry_after(v, SystemTime::now()));
        let answer = Answer {
            status,
            retry_after,
            latency: ex.timings.first_byte,
        };
        let started = now.checked_sub(ex.timings.total).unwrap_or(now);
        if h.pace.answered(&self.pace_rules, answer, started, now) == Answered::Paused {
            self.stats.hosts_paused += 1;
        }
    }

    /// One fewer attempt of this host runs.
    fn host_finished(&mut self, host: &str, now: Instant) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.active = h.active.saturating_sub(1);
        }
        self.refresh_host(host, now);
    }

    /// A complete response: follow it, retry it, or deliver it.
    fn on_response(&mut self, mut task: Task, ex: Exchanged, now: Instant) {
        let status = ex.head.status;
        if policy::follows_redirect(&task, status, &ex.head.headers) {
            // robots.txt moved to http is still the site's robots.txt (nothing secret is
            // sent for it).
            let allow =
                self.opts.allow_https_downgrade || matches!(task.purpose, Purpose::Robots { .. });
            let hop = policy::redirect(&mut task, status, &ex.head.headers, allow)
                .and_then(|()| self.proxy_for_redirect(&mut task));
            match hop {
                Ok(()) => self.enqueue(task, now),
                Err(mut e) => {
                    e.set_attempts(task.attempts);
                    self.deliver(task.id, task.purpose, Err(e), now);
                }
            }
            return;
        }
        if policy::is_proxy_refusal(&task, status) {
            // The proxy answered, not the origin: its refusal is the proxy's error.
            let error = proxy_refusal(&task, status, &ex.head.reason, ex.reused);
            return self.deliver(task.id, task.purpose, Err(error), now);
        }
        let cause = RetryCause::Status(status, &ex.head.headers);
        if let Some(delay) = self.retry_delay(&task, cause) {
            return self.schedule_retry(task, delay, now);
        }
        let response = Response {
            status,
            reason: ex.head.reason,
            version: ex.head.version,
            headers: ex.head.headers,
            body: ex.body,
            body_len: ex.body_len,
            url: task.url,
            remote_addr: ex.remote,
            timings: ex.timings,
            redirects: task.redirects,
            attempts: task.attempts,
            reused_connection: ex.reused,
            tls: ex.tls,
            proxy: task.proxy.as_deref().cloned(),
            content_encoding_left: ex.content_encoding_left,
            wire: ex.wire,
        };
        self.deliver(task.id, task.purpose, Ok(response), now);
    }

    /// A redirect keeps the request's proxy choice: its own proxy as it is; the fetcher's
    /// proxy or list entry too, unless `NO_PROXY` covers the new host (or the new host is
    /// the first not covered); the environment's is chosen again for the new URL's scheme.
    fn proxy_for_redirect(&self, task: &mut Task) -> Result<(), Error> {
        if task.proxy_fixed {
            return Ok(());
        }
        let host = task.url.host_str().unwrap_or("");
        if self.proxies.no_proxy.matches(host) {
            task.proxy = None;
        } else if task.proxy.is_none() || self.proxies.is_env() {
            task.proxy = self.pick_proxy(&task.url)?;
        }
        Ok(())
    }

    fn schedule_retry(&mut self, mut task: Task, delay: Duration, now: Instant) {
        // A retry is a new attempt: it may use the pool again, and replay once again.
        task.replayed = false;
        self.retry_seq += 1;
        self.retries.push(later(now, delay), self.retry_seq);
        self.retry_tasks.insert(self.retry_seq, task);
    }

    /// Whether to retry, and after how long: transient failures only, within the budget.
    fn retry_delay(&mut self, task: &Task, cause: RetryCause<'_>) -> Option<Duration> {
        if task.attempts > task.knobs.retries || task.sink_used {
            return None;
        }
        let retry_after = match cause {
            RetryCause::Status(status, headers) if policy::retries_status(task, status) => headers
                .get("retry-after")
                .and_then(|v| policy::parse_retry_after(v, SystemTime::now())),
            RetryCause::Status(..) => return None,
            RetryCause::Error(e) if policy::retries_error(task, e) => None,
            RetryCause::Error(_) => return None,
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

/// The error for a proxy that answered 407: it wants credentials, or refused ours.
fn proxy_refusal(task: &Task, status: u16, reason: &str, reused: bool) -> Error {
    let proxy = task.proxy.as_deref();
    let what = if proxy.is_some_and(|p| p.has_credentials()) {
        "refused the credentials"
    } else {
        "requires credentials"
    };
    let shown = proxy.map_or_else(String::new, |p| format!(" {p}"));
    let msg = format!("proxy{shown} {what} ({status} {reason})");
    let mut e = Error::new(ErrorKind::Proxy, Phase::Proxy, msg);
    e.set_attempts(task.attempts);
    e.set_reused(Some(reused));
    e.set_proxy(task.proxy.clone());
    e
}

/// What a retry would be for.
enum RetryCause<'a> {
    Status(u16, &'a Headers),
    Error(&'a Error),
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

/// A token bucket for the fetcher's rate, shareable by its loops.
pub(crate) fn shared_bucket(per_second: f64, now: Instant) -> Arc<Mutex<Bucket>> {
    Arc::new(Mutex::new(Bucket::new(per_second, 1, now)))
}
