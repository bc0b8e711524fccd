//! The ParallelCurl API: start a request with a callback and a cookie, never more than N
//! in flight; and the iterator form, [`fetch_all`].
//!
//! Owns callbacks, cookies and the caller-facing admission rule. It never sees a socket.

use std::collections::VecDeque;
use std::fmt;
use std::io;

use slab::Slab;

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Phase};
use crate::options::{Builder, DEFAULT_MAX_QUEUED_FOLLOWUPS};
use crate::request::{IntoRequest, Request, Target};
use crate::response::Response;

type Callback<C> = Box<dyn FnOnce(Done<C>, &mut Queue<C>)>;

/// A finished request, handed to its callback exactly once.
#[non_exhaustive]
pub struct Done<C> {
    /// The URL as it was given to `start_request`.
    pub url: String,
    /// The response (any status), or why there is none.
    pub result: Result<Response, Error>,
    /// The caller's data given to `start_request`.
    pub cookie: C,
}

impl<C> Done<C> {
    /// A finished request, for unit-testing a callback without a network: call the
    /// callback with it and a [`Queue::new`], then inspect what it queued.
    ///
    /// # Examples
    /// ```
    /// use parafetch::{Done, Queue, Response};
    ///
    /// /// A crawler's callback: follows the `Location` of a 3xx, one hop deep.
    /// fn on_done(done: Done<u32>, queue: &mut Queue<u32>) {
    ///     let Ok(resp) = done.result else { return };
    ///     if let (300..=399, Some(next), 0) = (resp.status, resp.headers.get("location"), done.cookie) {
    ///         queue.start_request(next, on_done, done.cookie + 1).expect("a valid url");
    ///     }
    /// }
    ///
    /// let url = url::Url::parse("http://example.com/old").unwrap();
    /// let resp = Response::new(301, url.clone()).with_header("Location", "http://example.com/new");
    /// let mut queue = Queue::new();
    /// on_done(Done::new(url.as_str(), Ok(resp), 0), &mut queue);
    /// assert_eq!(queue.urls().collect::<Vec<_>>(), ["http://example.com/new"]);
    ///
    /// // One hop only: at depth 1 nothing more is queued.
    /// let resp = Response::new(301, url.clone()).with_header("Location", "http://example.com/x");
    /// let mut queue = Queue::new();
    /// on_done(Done::new(url.as_str(), Ok(resp), 1), &mut queue);
    /// assert!(queue.is_empty());
    /// ```
    pub fn new(url: impl Into<String>, result: Result<Response, Error>, cookie: C) -> Done<C> {
        Done {
            url: url.into(),
            result,
            cookie,
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for Done<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done")
            .field("url", &self.url)
            .field("result", &self.result)
            .field("cookie", &self.cookie)
            .finish()
    }
}

/// Lets a callback start follow-up requests (a crawler's discovered links) without
/// re-entering the fetcher: they are accepted when the callback returns.
pub struct Queue<C> {
    /// Each follow-up with its URL as given (the request holds it parsed already).
    items: Vec<(Request, Callback<C>, C, String)>,
    max_in_flight: Option<usize>,
    /// The builder's `max_queued_followups`.
    limit: usize,
    /// Requests the fetcher holds, not yet called back, while the callback runs (the
    /// fetcher sets it before each call).
    outstanding: usize,
}

impl<C> Queue<C> {
    /// An empty queue, for unit-testing a callback (the fetcher makes its own): pass it to
    /// the callback, then look at [`urls`](Queue::urls). See [`Done::new`] for an example.
    ///
    /// It holds at most [`DEFAULT_MAX_QUEUED_FOLLOWUPS`] follow-ups, as a fresh fetcher's
    /// queue does.
    pub fn new() -> Queue<C> {
        Queue {
            items: Vec::new(),
            max_in_flight: None,
            limit: DEFAULT_MAX_QUEUED_FOLLOWUPS,
            outstanding: 0,
        }
    }

    /// The URLs of the follow-ups queued so far, as given, in order.
    pub fn urls(&self) -> impl Iterator<Item = &str> + '_ {
        self.items.iter().map(|(_, _, _, url)| url.as_str())
    }

    /// The in-flight cap the callback asked for with
    /// [`set_max_in_flight`](Queue::set_max_in_flight), if it did.
    pub fn requested_max_in_flight(&self) -> Option<usize> {
        self.max_in_flight
    }

    /// Starts a follow-up request once the callback returns. A follow-up does not wait for
    /// an in-flight slot here (the callback must not block): it is accepted when the
    /// callback returns and waits in the fetcher's queue for a slot.
    ///
    /// # Errors
    /// A malformed URL, unsupported scheme or bad header is refused at once, as in
    /// [`Fetcher::start_request`]. Kind [`QueueFull`](ErrorKind::QueueFull) when the
    /// fetcher already holds
    /// [`max_queued_followups`](Builder::max_queued_followups) requests accepted and not
    /// yet called back, counting the follow-ups this callback queued. Either way nothing is
    /// kept: the callback and cookie are dropped, and the error is the only outcome.
    pub fn start_request<F>(
        &mut self,
        request: impl IntoRequest,
        callback: F,
        cookie: C,
    ) -> Result<(), Error>
    where
        F: FnOnce(Done<C>, &mut Queue<C>) + 'static,
    {
        let mut request = request.into_request();
        let held = self.outstanding.saturating_add(self.items.len());
        if held >= self.limit {
            let msg = format!(
                "the follow-up queue is full: {held} requests pending, at most {} allowed",
                self.limit
            );
            return Err(Error::new(ErrorKind::QueueFull, Phase::Prepare, msg));
        }
        let given = request.url().to_owned();
        // Parsed once, here: the fetcher then takes the URL as it is, not parsing it again.
        let target = std::mem::replace(&mut request.target, Target::Text(String::new()));
        request.target = Target::Url(crate::request::check_url(target)?);
        self.items
            .push((request, Box::new(callback), cookie, given));
        Ok(())
    }

    /// Changes the fetcher's in-flight cap (at least 1) when the callback returns, as
    /// [`Fetcher::set_max_in_flight`] does.
    pub fn set_max_in_flight(&mut self, n: usize) {
        self.max_in_flight = Some(n);
    }

    /// [`Queue::set_max_in_flight`] under ParallelCurl's name.
    pub fn set_max_requests(&mut self, n: usize) {
        self.set_max_in_flight(n);
    }

    /// How many follow-ups this callback has queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether this callback has queued nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<C> Default for Queue<C> {
    fn default() -> Queue<C> {
        Queue::new()
    }
}

impl<C> fmt::Debug for Queue<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("urls", &self.urls().collect::<Vec<_>>())
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

struct Pending<C> {
    callback: Callback<C>,
    cookie: C,
    url: String,
}

/// Fetches many URLs at once from the calling thread, calling back as each finishes.
///
/// At most [`max_in_flight`](Fetcher::max_in_flight) requests are
/// [`running`](Fetcher::running) at once. `start_request` returns at once while fewer than
/// `max_in_flight` requests are [`pending`](Fetcher::pending) (accepted and not yet called
/// back; plus the builder's `backlog`, default 0); otherwise it runs the loop,
/// delivering completions to their callbacks, until one finishes, then accepts the new one.
/// Every accepted request gets exactly one callback.
///
/// Dropping a fetcher runs it until every accepted request is done (as `Drop` of the seed's
/// ParallelCurl does); call [`Fetcher::finish_all_requests`] explicitly so the wait is
/// visible in your code.
///
/// # Examples
/// ```no_run
/// use parafetch::{Done, Fetcher, Queue};
///
/// fn on_done(done: Done<usize>, _queue: &mut Queue<usize>) {
///     match done.result {
///         Ok(resp) => println!("#{} {} -> {} ({} bytes)", done.cookie, done.url, resp.status, resp.body.len()),
///         Err(e) => println!("#{} {} failed: {e}", done.cookie, done.url),
///     }
/// }
///
/// let mut fetcher = Fetcher::new(10);
/// for (i, url) in ["http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b"].iter().enumerate() {
///     fetcher.start_request(*url, on_done, i).expect("valid url");
/// }
/// fetcher.finish_all_requests();
/// ```
pub struct Fetcher<C: 'static = ()> {
    engine: Engine,
    pending: Slab<Pending<C>>,
    queue: Queue<C>,
}

impl Fetcher<()> {
    /// A builder for a fetcher with options applied to every request.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl Builder {
    /// Builds the fetcher.
    ///
    /// # Panics
    /// When [`Builder::try_build`] fails: a bad option (a PEM bundle without a valid
    /// certificate), or the OS refuses an event queue (out of file descriptors). The panic
    /// message is the error with its causes.
    pub fn build<C: 'static>(self) -> Fetcher<C> {
        match self.try_build() {
            Ok(f) => f,
            Err(e) => panic!("parafetch: {e:#}"),
        }
    }

    /// Builds the fetcher.
    ///
    /// # Errors
    /// Kind `tls`, phase `prepare`: a bundle given to [`Builder::tls_roots_pem`] holds no
    /// certificate or a malformed one. Kind `io`, phase `prepare`: the OS refuses an event
    /// queue or waker (out of file descriptors); [`Error::io_error`] has the OS's error.
    pub fn try_build<C: 'static>(self) -> Result<Fetcher<C>, Error> {
        if let Some(e) = self.invalid {
            return Err(e);
        }
        let mut queue = Queue::new();
        queue.limit = self.opts.max_queued_followups;
        Ok(Fetcher {
            engine: Engine::new(self.opts).map_err(no_loop)?,
            pending: Slab::new(),
            queue,
        })
    }

    /// An iterator fetching `urls` with this builder's options, yielding each result as it
    /// finishes. See [`fetch_all`]. Where [`Builder::try_build`] would fail, every URL is
    /// yielded with that error instead.
    pub fn fetch_all<I>(self, urls: I) -> FetchAll<I::IntoIter>
    where
        I: IntoIterator,
        I::Item: IntoRequest,
    {
        let engine = match self.invalid {
            Some(e) => Err(e),
            None => Engine::new(self.opts).map_err(no_loop),
        };
        FetchAll {
            engine,
            urls: urls.into_iter(),
            pending: Slab::new(),
            ready: VecDeque::new(),
        }
    }
}

impl<C: 'static> Fetcher<C> {
    /// A fetcher with default options and at most `max_in_flight` requests in flight.
    ///
    /// # Panics
    /// When the OS refuses an event queue (out of file descriptors).
    pub fn new(max_in_flight: usize) -> Fetcher<C> {
        Fetcher::builder().max_in_flight(max_in_flight).build()
    }

    /// Starts fetching `request` (a URL or a [`Request`]); `callback` gets the outcome with
    /// `cookie`. Returns at once while there is room; otherwise runs the loop until a
    /// request finishes (calling back), then starts this one.
    ///
    /// # Errors
    /// A malformed URL (`invalid_url`), a scheme other than http/https
    /// (`unsupported_scheme`) or a bad method or header (`invalid_request`) is refused at
    /// once; nothing is queued and the callback is not called.
    pub fn start_request<F>(
        &mut self,
        request: impl IntoRequest,
        callback: F,
        cookie: C,
    ) -> Result<(), Error>
    where
        F: FnOnce(Done<C>, &mut Queue<C>) + 'static,
    {
        let request = request.into_request();
        let url = request.url().to_owned();
        let task = self.engine.prepare(request)?;
        while self.pending.len() >= self.capacity() {
            self.step(None);
        }
        self.accept(task, Box::new(callback), cookie, url);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.engine.max_in_flight() + self.engine.options().backlog
    }

    fn accept(
        &mut self,
        mut task: crate::task::Task,
        callback: Callback<C>,
        cookie: C,
        url: String,
    ) {
        task.id = self.pending.insert(Pending {
            callback,
            cookie,
            url,
        });
        self.engine.accept(task);
    }

    /// Changes the in-flight cap (at least 1; the builder's
    /// [`max_in_flight`](Builder::max_in_flight)). Takes effect at once: a raised cap
    /// starts waiting requests now; a lowered one never interrupts running requests, it
    /// only holds back new starts until fewer run.
    pub fn set_max_in_flight(&mut self, n: usize) {
        self.engine.set_max_in_flight(n);
    }

    /// The in-flight cap: the most attempts [`running`](Fetcher::running) at once.
    pub fn max_in_flight(&self) -> usize {
        self.engine.max_in_flight()
    }

    /// [`Fetcher::set_max_in_flight`] under ParallelCurl's name.
    pub fn set_max_requests(&mut self, n: usize) {
        self.set_max_in_flight(n);
    }

    /// [`Fetcher::max_in_flight`] under ParallelCurl's name.
    pub fn max_requests(&self) -> usize {
        self.max_in_flight()
    }

    /// Requests accepted and not yet called back: those running, those queued for a slot
    /// (behind the global or a per-host cap, or a host delay), those waiting to retry or
    /// to follow a redirect, and follow-ups accepted from callbacks. Zero after
    /// [`finish_all_requests`](Fetcher::finish_all_requests). At most the cap plus the
    /// builder's [`backlog`](Builder::backlog) when only `start_request` adds requests;
    /// follow-ups queued from callbacks may take it further, up to
    /// [`max_queued_followups`](Builder::max_queued_followups).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The old name of [`Fetcher::pending`]: it counts more than the requests in flight.
    #[deprecated(
        note = "counts accepted requests not yet called back: use `pending()`; \
                         `running()` counts the attempts in flight"
    )]
    pub fn in_flight(&self) -> usize {
        self.pending()
    }

    /// Attempts on the wire right now: connections resolving, connecting, handshaking,
    /// sending or receiving for a request. Never more than
    /// [`max_in_flight`](Fetcher::max_in_flight) (after a lowered cap, until enough
    /// finish). A request waiting for a slot, a retry or a redirect is
    /// [`pending`](Fetcher::pending) but not running.
    pub fn running(&self) -> usize {
        self.engine.running()
    }

    /// The cookie jar `name` (`""`: the fetcher's default jar, from
    /// [`Builder::cookies`]), if it exists yet: read it between or after requests, or
    /// save it with [`CookieJar::write_netscape`](crate::CookieJar::write_netscape).
    #[cfg(feature = "cookies")]
    pub fn jar(&self, name: &str) -> Option<&crate::CookieJar> {
        self.engine.jar(name)
    }

    /// The cookie jar `name`, created empty if it does not exist: seed it, clear it, or
    /// remove a cookie. Requests started after the change see it.
    #[cfg(feature = "cookies")]
    pub fn jar_mut(&mut self, name: &str) -> &mut crate::CookieJar {
        self.engine.jar_mut(name)
    }

    /// Drops the cookie jar `name` (a login that is over), returning it. A request that
    /// names it later starts a new, empty one.
    #[cfg(feature = "cookies")]
    pub fn remove_jar(&mut self, name: &str) -> Option<crate::CookieJar> {
        self.engine.remove_jar(name)
    }

    /// What politeness has done so far: hosts paused by 429/503 backoff, requests refused
    /// by robots.txt.
    pub fn polite_stats(&self) -> crate::PoliteStats {
        self.engine.polite_stats()
    }

    /// Runs the loop until every accepted request, and every follow-up its callbacks
    /// queued, has been called back.
    pub fn finish_all_requests(&mut self) {
        while !self.pending.is_empty() {
            self.step(None);
        }
    }

    /// Runs one turn of the loop, waiting at most `timeout` for something to happen, and
    /// calls back what finished. Returns how many callbacks ran. For callers that
    /// interleave fetching with other work.
    pub fn poll(&mut self, timeout: Option<std::time::Duration>) -> usize {
        self.step(timeout)
    }

    fn step(&mut self, timeout: Option<std::time::Duration>) -> usize {
        if let Err(e) = self.engine.turn(timeout) {
            self.abandon(e);
            return 0;
        }
        let mut called = 0;
        while let Some((id, result)) = self.engine.pop_done() {
            let Some(p) = self.pending.try_remove(id) else {
                debug_assert!(false, "a completion for unknown request {id}");
                continue;
            };
            let done = Done {
                url: p.url,
                result,
                cookie: p.cookie,
            };
            self.queue.outstanding = self.pending.len();
            (p.callback)(done, &mut self.queue);
            called += 1;
            self.drain_queue();
        }
        called
    }

    fn drain_queue(&mut self) {
        // An error callback below may queue more (and change the cap): loop until empty.
        loop {
            if let Some(n) = self.queue.max_in_flight.take() {
                self.engine.set_max_in_flight(n);
            }
            if self.queue.items.is_empty() {
                return;
            }
            self.drain_queue_once();
        }
    }

    fn drain_queue_once(&mut self) {
        let batch = std::mem::take(&mut self.queue.items);
        let mut rest = batch.len();
        for (request, callback, cookie, url) in batch {
            rest -= 1;
            match self.engine.prepare(request) {
                Ok(task) => self.accept(task, callback, cookie, url),
                Err(e) => {
                    // Queue::start_request checked the URL; a bad header lands here.
                    let done = Done {
                        url,
                        result: Err(e),
                        cookie,
                    };
                    // The rest of this batch is held too, though not accepted yet.
                    self.queue.outstanding = self.pending.len() + rest;
                    callback(done, &mut self.queue);
                }
            }
        }
    }

    /// The event loop itself failed (the OS refused `poll`): every accepted request is
    /// called back with an `io` error, so none is lost, and a fresh loop takes over.
    fn abandon(&mut self, err: io::Error) {
        let opts = self.engine.options().clone();
        match Engine::new(opts) {
            Ok(engine) => self.engine = engine,
            // No new loop: at least forget every task, so none can complete later under an
            // id that a follow-up below reuses.
            Err(_) => self.engine.clear(),
        }
        let e = loop_failed(err);
        let ids: Vec<usize> = self.pending.iter().map(|(id, _)| id).collect();
        for id in ids {
            let p = self.pending.remove(id);
            let e = e.clone();
            let done = Done {
                url: p.url,
                result: Err(e),
                cookie: p.cookie,
            };
            self.queue.outstanding = self.pending.len();
            (p.callback)(done, &mut self.queue);
            self.drain_queue();
        }
    }
}

/// The OS refused to make an event loop (out of descriptors, say).
fn no_loop(e: io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        Phase::Prepare,
        "cannot create the event loop",
    )
    .with_source(e)
}

/// The event loop failed while running.
fn loop_failed(e: io::Error) -> Error {
    Error::new(ErrorKind::Io, Phase::Prepare, "the event loop failed").with_source(e)
}

impl<C: 'static> Drop for Fetcher<C> {
    /// Runs every accepted request to completion, like the seed's destructor.
    fn drop(&mut self) {
        // While unwinding from a panic (a callback's, say), running more callbacks could
        // panic again and abort: let the pending requests go instead.
        if !std::thread::panicking() {
            self.finish_all_requests();
        }
    }
}

impl<C: 'static> fmt::Debug for Fetcher<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("max_in_flight", &self.max_in_flight())
            .field("pending", &self.pending())
            .field("running", &self.running())
            .finish()
    }
}

/// Fetches `urls` with at most `max_in_flight` at once, yielding `(url, result)` as each
/// finishes (completion order, not input order). An invalid URL is yielded at once with its
/// error.
///
/// # Examples
/// ```no_run
/// for (url, result) in parafetch::fetch_all(["http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b"], 20) {
///     match result {
///         Ok(resp) => println!("{url}: {}", resp.status),
///         Err(e) => println!("{url}: {e}"),
///     }
/// }
/// ```
pub fn fetch_all<I>(urls: I, max_in_flight: usize) -> FetchAll<I::IntoIter>
where
    I: IntoIterator,
    I::Item: IntoRequest,
{
    Fetcher::builder()
        .max_in_flight(max_in_flight)
        .fetch_all(urls)
}

/// The iterator returned by [`fetch_all`].
pub struct FetchAll<I> {
    /// The loop, or why there is none: every URL left then fails with (a clone of) it.
    engine: Result<Engine, Error>,
    urls: I,
    pending: Slab<String>,
    ready: VecDeque<(String, Result<Response, Error>)>,
}

impl<I> Iterator for FetchAll<I>
where
    I: Iterator,
    I::Item: IntoRequest,
{
    type Item = (String, Result<Response, Error>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            let engine = match &mut self.engine {
                Ok(e) => e,
                Err(e) => {
                    // No loop: every URL fails with the reason.
                    let request = self.urls.next()?.into_request();
                    return Some((request.url().to_owned(), Err(e.clone())));
                }
            };
            while self.pending.len() < engine.max_in_flight() {
                let Some(item) = self.urls.next() else {
                    break;
                };
                let request = item.into_request();
                let url = request.url().to_owned();
                match engine.prepare(request) {
                    Ok(mut task) => {
                        task.id = self.pending.insert(url);
                        engine.accept(task);
                    }
                    Err(e) => return Some((url, Err(e))),
                }
            }
            if let Some((id, result)) = engine.pop_done() {
                let url = self.pending.try_remove(id).unwrap_or_default();
                return Some((url, result));
            }
            if self.pending.is_empty() {
                return None;
            }
            if let Err(e) = engine.turn(None) {
                let err = loop_failed(e);
                for (_, url) in std::mem::take(&mut self.pending) {
                    self.ready.push_back((url, Err(err.clone())));
                }
                self.engine = Err(err);
            }
        }
    }
}
