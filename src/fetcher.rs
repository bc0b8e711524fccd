//! The ParallelCurl API: start a request with a callback and a cookie, never more than N
//! in flight; and the iterator form, [`fetch_all`].
//!
//! Owns callbacks, cookies and the caller-facing admission rule (`Core`: one loop and its
//! callbacks, which a [`Handle`](crate::Handle)'s shards run too). It never sees a socket.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::mpsc::{Receiver, Sender};

use slab::Slab;

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Phase};
use crate::options::Builder;
use crate::queue::{Done, FollowUp, Local, Mode, Queue, SendQueue, Sendable};
use crate::request::IntoRequest;
use crate::response::Response;

/// What differs between a fetcher its caller drives and one shard of a
/// [`Handle`](crate::Handle)'s: where the follow-up limit counts, where a follow-up goes,
/// and how a callback is run.
pub(crate) trait Context<C: 'static, M: Mode> {
    /// Requests held (accepted, not yet called back) as the follow-up limit counts them,
    /// given this loop's `local` count.
    fn held(&self, local: usize) -> usize;
    /// Sends a follow-up that belongs to another loop there (`None`); gives one that
    /// belongs here back.
    fn divert(&mut self, followup: FollowUp<C, M>) -> Option<FollowUp<C, M>>;
    /// Runs one callback.
    fn call(&mut self, callback: M::Callback<C>, done: Done<C>, queue: &mut Queue<C, M>);
    /// A follow-up was accepted on this loop.
    fn accepted(&mut self) {}
    /// A request was called back (and its follow-ups accepted).
    fn called(&mut self) {}
    /// The loop failed and a new one took over: wake it with `waker` now.
    fn restarted(&mut self, _waker: std::sync::Arc<mio::Waker>) {}
    /// User code on the loop (a body sink) panicked during the turn; its request has
    /// failed. Told before the turn's callbacks run (a waiter woken by the last of them
    /// must find the panic kept).
    fn panicked(&mut self, payload: Box<dyn std::any::Any + Send>);
    /// The turn's callbacks have run.
    fn after_step(&mut self) {}
    /// A callback changed the in-flight cap.
    fn cap_changed(&mut self) {}
}

/// A fetcher its caller drives: everything is here, a panicking callback unwinds, and so
/// does a panicking body sink once the turn's callbacks have run.
#[derive(Default)]
pub(crate) struct Alone {
    parked: Option<Box<dyn std::any::Any + Send>>,
}

impl<C: 'static, M: Mode> Context<C, M> for Alone {
    fn held(&self, local: usize) -> usize {
        local
    }

    fn divert(&mut self, followup: FollowUp<C, M>) -> Option<FollowUp<C, M>> {
        Some(followup)
    }

    fn call(&mut self, callback: Callback<C, M>, done: Done<C>, queue: &mut Queue<C, M>) {
        M::call(callback, done, queue)
    }

    fn panicked(&mut self, payload: Box<dyn std::any::Any + Send>) {
        self.parked.get_or_insert(payload);
    }

    fn after_step(&mut self) {
        // As a panicking callback does: on in the caller's thread.
        if let Some(payload) = self.parked.take() {
            std::panic::resume_unwind(payload)
        }
    }
}

type Callback<C, M> = <M as Mode>::Callback<C>;

struct Pending<C: 'static, M: Mode> {
    callback: Callback<C, M>,
    cookie: C,
    url: String,
}

/// One loop with its callbacks: the engine, the requests it holds and the queue their
/// callbacks fill. A [`Fetcher`] is one; each shard of a [`Handle`](crate::Handle) is one.
pub(crate) struct Core<C: 'static, M: Mode, X> {
    pub(crate) engine: Engine,
    pending: Slab<Pending<C, M>>,
    queue: Queue<C, M>,
    pub(crate) ctx: X,
}

impl<C: 'static, M: Mode, X: Context<C, M>> Core<C, M, X> {
    pub(crate) fn new(engine: Engine, ctx: X) -> Core<C, M, X> {
        let limit = engine.options().max_queued_followups;
        Core {
            engine,
            pending: Slab::new(),
            queue: Queue::with_limit(limit),
            ctx,
        }
    }

    /// Requests accepted here and not yet called back.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes a prepared task; its callback will be called exactly once.
    pub(crate) fn accept(
        &mut self,
        mut task: crate::task::Task,
        callback: Callback<C, M>,
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

    /// Prepares and accepts a request submitted from elsewhere (counted already), or
    /// calls its callback at once with the reason it cannot run.
    pub(crate) fn take(&mut self, f: FollowUp<C, M>) {
        if !self.accept_or_call(f) {
            self.drain_queue();
            self.ctx.called();
        }
    }

    /// One turn of the loop, then every callback due. Returns how many ran.
    pub(crate) fn step(&mut self, timeout: Option<std::time::Duration>) -> usize {
        let called = self.step_inner(timeout);
        self.ctx.after_step();
        called
    }

    fn step_inner(&mut self, timeout: Option<std::time::Duration>) -> usize {
        let turned = self.engine.turn(timeout);
        if let Some(payload) = crate::unwind::take() {
            self.ctx.panicked(payload);
        }
        if let Err(e) = turned {
            return self.abandon(loop_failed(e));
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
            self.call(p.callback, done);
            self.ctx.called();
            called += 1;
        }
        called
    }

    /// Calls one callback, then accepts what it queued.
    fn call(&mut self, callback: Callback<C, M>, done: Done<C>) {
        self.run_callback(callback, done);
        self.drain_queue();
    }

    /// Calls one callback, its queue told how many requests are held.
    fn run_callback(&mut self, callback: Callback<C, M>, done: Done<C>) {
        self.queue.outstanding = self.ctx.held(self.pending.len());
        self.ctx.call(callback, done, &mut self.queue);
    }

    fn drain_queue(&mut self) {
        // An error callback below may queue more (and change the cap): loop until empty.
        loop {
            if let Some(n) = self.queue.max_in_flight.take() {
                self.engine.set_max_in_flight(n);
                self.ctx.cap_changed();
            }
            if self.queue.items.is_empty() {
                return;
            }
            let batch = std::mem::take(&mut self.queue.items);
            for f in batch {
                let Some(f) = self.ctx.divert(f) else {
                    continue;
                };
                // Queue::start_request checked the URL; a bad header is called back here
                // (the rest of this batch is not accepted yet: the limit undercounts it).
                if self.accept_or_call(f) {
                    self.ctx.accepted();
                }
            }
        }
    }

    fn accept_or_call(&mut self, f: FollowUp<C, M>) -> bool {
        match self.engine.prepare(f.request) {
            Ok(task) => {
                self.accept(task, f.callback, f.cookie, f.url);
                true
            }
            Err(e) => {
                let done = Done {
                    url: f.url,
                    result: Err(e),
                    cookie: f.cookie,
                };
                self.run_callback(f.callback, done);
                false
            }
        }
    }

    /// Stops for good ([`Handle::abort`](crate::Handle::abort)): follow-ups are refused
    /// from now on, and what the queue holds and every accepted request are called back
    /// with `e`. Returns how many accepted requests were called back.
    pub(crate) fn abort(&mut self, e: &Error) -> usize {
        self.queue.closed = true;
        for f in std::mem::take(&mut self.queue.items) {
            let done = Done {
                url: f.url,
                result: Err(e.clone()),
                cookie: f.cookie,
            };
            self.run_callback(f.callback, done);
        }
        self.abandon(e.clone())
    }

    /// Whether [`Core::abort`] ran.
    pub(crate) fn aborted(&self) -> bool {
        self.queue.closed
    }

    /// Calls back a request submitted from elsewhere (counted already) with `e`, never
    /// accepting it.
    pub(crate) fn refuse(&mut self, f: FollowUp<C, M>, e: &Error) {
        let done = Done {
            url: f.url,
            result: Err(e.clone()),
            cookie: f.cookie,
        };
        self.run_callback(f.callback, done);
        self.ctx.called();
    }

    /// The event loop itself failed (the OS refused `poll`, or our own code panicked in
    /// it): every accepted request is called back with `e`, so none is lost, and a fresh
    /// loop takes over.
    pub(crate) fn abandon(&mut self, e: Error) -> usize {
        match self.engine.restart() {
            Ok(()) => self.ctx.restarted(self.engine.waker()),
            // No new loop: at least forget every task, so none can complete later under an
            // id that a follow-up below reuses.
            Err(_) => self.engine.clear(),
        }
        let ids: Vec<usize> = self.pending.iter().map(|(id, _)| id).collect();
        for id in &ids {
            let p = self.pending.remove(*id);
            let done = Done {
                url: p.url,
                result: Err(e.clone()),
                cookie: p.cookie,
            };
            self.call(p.callback, done);
            self.ctx.called();
        }
        ids.len()
    }
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
pub struct Fetcher<C: 'static = (), M: Mode = Local> {
    core: Core<C, M, Alone>,
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
        self.try_build_as()
    }

    /// Builds a fetcher whose callbacks (and cookies) are `Send`, and so is the fetcher: it
    /// runs on the thread that drives it, as any [`Fetcher`] does, and that thread may
    /// change (a worker pool, an async runtime's blocking section, a binding that releases
    /// an interpreter lock while the loop waits). Callbacks take a
    /// [`SendQueue`](crate::SendQueue), as a [`Handle`](crate::Handle)'s do.
    ///
    /// # Panics
    /// As [`Builder::build`].
    pub fn build_send<C: Send + 'static>(self) -> Fetcher<C, Sendable> {
        match self.try_build_send() {
            Ok(f) => f,
            Err(e) => panic!("parafetch: {e:#}"),
        }
    }

    /// [`Builder::build_send`], with the errors of [`Builder::try_build`].
    ///
    /// # Errors
    /// As [`Builder::try_build`].
    pub fn try_build_send<C: Send + 'static>(self) -> Result<Fetcher<C, Sendable>, Error> {
        self.try_build_as()
    }

    fn try_build_as<C: 'static, M: Mode>(self) -> Result<Fetcher<C, M>, Error> {
        if let Some(e) = self.invalid {
            return Err(e);
        }
        if self.opts.threads > 1 {
            let msg = format!(
                "threads({}) needs Builder::spawn (a Handle, whose callbacks are Send): \
                 build() runs one loop on the calling thread",
                self.opts.threads
            );
            return Err(Error::new(ErrorKind::InvalidRequest, Phase::Prepare, msg));
        }
        let engine = Engine::new(self.opts).map_err(no_loop)?;
        Ok(Fetcher {
            core: Core::new(engine, Alone::default()),
        })
    }

    /// An iterator fetching `urls` with this builder's options, yielding each result as it
    /// finishes. See [`fetch_all`]. Where [`Builder::try_build`] would fail, every URL is
    /// yielded with that error instead.
    ///
    /// With [`threads(n)`](Builder::threads) above 1 the loops run on threads of their own
    /// (through a [`Handle`](crate::Handle)) and the iterator waits for their results.
    pub fn fetch_all<I>(self, urls: I) -> FetchAll<I::IntoIter>
    where
        I: IntoIterator,
        I::Item: IntoRequest,
    {
        let way = if self.invalid.is_none() && self.opts.threads > 1 {
            let (tx, rx) = std::sync::mpsc::channel();
            match self.spawn() {
                Ok(handle) => Way::Threads {
                    handle,
                    tx,
                    rx,
                    outstanding: 0,
                },
                Err(e) => Way::One(Err(e)),
            }
        } else {
            Way::One(match self.invalid {
                Some(e) => Err(e),
                None => Engine::new(self.opts).map_err(no_loop),
            })
        };
        FetchAll {
            way,
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

    /// Starts fetching `request` (a URL or a [`Request`](crate::Request)); `callback` gets the outcome with
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
        self.start(request.into_request(), Box::new(callback), cookie)
    }
}

impl<C: Send + 'static> Fetcher<C, Sendable> {
    /// As [`Fetcher::start_request`], for a fetcher from
    /// [`Builder::build_send`]: the callback is `Send`.
    ///
    /// # Errors
    /// As [`Fetcher::start_request`].
    pub fn start_request<F>(
        &mut self,
        request: impl IntoRequest,
        callback: F,
        cookie: C,
    ) -> Result<(), Error>
    where
        F: FnOnce(Done<C>, &mut SendQueue<C>) + Send + 'static,
    {
        self.start(request.into_request(), Box::new(callback), cookie)
    }
}

impl<C: 'static, M: Mode> Fetcher<C, M> {
    fn start(
        &mut self,
        request: crate::Request,
        callback: Callback<C, M>,
        cookie: C,
    ) -> Result<(), Error> {
        if self.core.aborted() {
            return Err(aborted());
        }
        let url = request.url().to_owned();
        let task = self.core.engine.prepare(request)?;
        while self.core.pending() >= self.capacity() {
            self.core.step(None);
        }
        self.core.accept(task, callback, cookie, url);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.core.engine.max_in_flight() + self.core.engine.options().backlog
    }

    /// Changes the in-flight cap (at least 1; the builder's
    /// [`max_in_flight`](Builder::max_in_flight)). Takes effect at once: a raised cap
    /// starts waiting requests now; a lowered one never interrupts running requests, it
    /// only holds back new starts until fewer run.
    pub fn set_max_in_flight(&mut self, n: usize) {
        self.core.engine.set_max_in_flight(n);
    }

    /// The in-flight cap: the most attempts [`running`](Fetcher::running) at once.
    pub fn max_in_flight(&self) -> usize {
        self.core.engine.max_in_flight()
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
        self.core.pending()
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
        self.core.engine.running()
    }

    /// The cookie jar `name` (`""`: the fetcher's default jar, from
    /// [`Builder::cookies`]), if it exists yet: read it between or after requests, or
    /// save it with [`CookieJar::write_netscape`](crate::CookieJar::write_netscape).
    #[cfg(feature = "cookies")]
    pub fn jar(&self, name: &str) -> Option<&crate::CookieJar> {
        self.core.engine.jar(name)
    }

    /// The cookie jar `name`, created empty if it does not exist: seed it, clear it, or
    /// remove a cookie. Requests started after the change see it.
    #[cfg(feature = "cookies")]
    pub fn jar_mut(&mut self, name: &str) -> &mut crate::CookieJar {
        self.core.engine.jar_mut(name)
    }

    /// Drops the cookie jar `name` (a login that is over), returning it. A request that
    /// names it later starts a new, empty one.
    #[cfg(feature = "cookies")]
    pub fn remove_jar(&mut self, name: &str) -> Option<crate::CookieJar> {
        self.core.engine.remove_jar(name)
    }

    /// What politeness has done so far: hosts paused by 429/503 backoff, requests refused
    /// by robots.txt.
    pub fn polite_stats(&self) -> crate::PoliteStats {
        self.core.engine.polite_stats()
    }

    /// Runs the loop until every accepted request, and every follow-up its callbacks
    /// queued, has been called back.
    pub fn finish_all_requests(&mut self) {
        while self.core.pending() > 0 {
            self.core.step(None);
        }
    }

    /// Gives up at once: every request accepted and not yet called back is called back
    /// with an error of kind [`ShutDown`](ErrorKind::ShutDown) instead of being fetched,
    /// and its connection is closed. Follow-ups those callbacks queue are refused
    /// (`ShutDown`), and so is every later `start_request`: the fetcher is done. For a
    /// caller that is giving up (an interrupt, an error elsewhere); dropping the fetcher
    /// afterwards waits for nothing.
    ///
    /// # Panics
    /// Resumes a panic a callback or body sink raised, after every callback ran.
    pub fn abort(&mut self) {
        self.core.abort(&aborted());
        Context::<C, M>::after_step(&mut self.core.ctx);
    }

    /// Runs one turn of the loop, waiting at most `timeout` for something to happen, and
    /// calls back what finished. Returns how many callbacks ran. For callers that
    /// interleave fetching with other work.
    pub fn poll(&mut self, timeout: Option<std::time::Duration>) -> usize {
        self.core.step(timeout)
    }
}

/// The OS refused to make an event loop (out of descriptors, say).
pub(crate) fn no_loop(e: io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        Phase::Prepare,
        "cannot create the event loop",
    )
    .with_source(e)
}

/// What an aborted fetcher's requests are called back with.
pub(crate) fn aborted() -> Error {
    Error::new(
        ErrorKind::ShutDown,
        Phase::Prepare,
        "the fetcher was aborted before this request finished",
    )
}

/// The event loop failed while running.
fn loop_failed(e: io::Error) -> Error {
    Error::new(ErrorKind::Io, Phase::Prepare, "the event loop failed").with_source(e)
}

impl<C: 'static, M: Mode> Drop for Fetcher<C, M> {
    /// Runs every accepted request to completion, like the seed's destructor.
    fn drop(&mut self) {
        // While unwinding from a panic (a callback's, say), running more callbacks could
        // panic again and abort: let the pending requests go instead.
        if !std::thread::panicking() {
            self.finish_all_requests();
        }
    }
}

impl<C: 'static, M: Mode> fmt::Debug for Fetcher<C, M> {
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
    way: Way,
    urls: I,
    pending: Slab<String>,
    ready: VecDeque<(String, Result<Response, Error>)>,
}

impl<I> Drop for FetchAll<I> {
    /// Dropped midway, a threaded iterator does not wait for what is still in flight: its
    /// loops finish it and end on their own (as a one-loop iterator drops its requests).
    fn drop(&mut self) {
        if let Way::Threads { handle, .. } = &self.way {
            handle.detach();
        }
    }
}

/// How a [`FetchAll`] runs.
// One per iterator: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Way {
    /// One loop here, or why there is none: every URL left then fails with (a clone of) it.
    One(Result<Engine, Error>),
    /// Loops on threads of their own, answering through a channel.
    Threads {
        handle: crate::Handle<()>,
        tx: Sender<(String, Result<Response, Error>)>,
        rx: Receiver<(String, Result<Response, Error>)>,
        /// Submitted and not yet received.
        outstanding: usize,
    },
}

impl<I> Iterator for FetchAll<I>
where
    I: Iterator,
    I::Item: IntoRequest,
{
    type Item = (String, Result<Response, Error>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Way::Threads {
            handle,
            tx,
            rx,
            outstanding,
        } = &mut self.way
        {
            return next_threaded(&mut self.urls, handle, tx, rx, outstanding);
        }
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            let Way::One(engine) = &mut self.way else {
                return None;
            };
            let engine = match engine {
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
                self.way = Way::One(Err(err));
            }
        }
    }
}

/// The next result of a threaded `fetch_all`: keeps `max_in_flight` submitted, then waits.
fn next_threaded<I>(
    urls: &mut I,
    handle: &crate::Handle<()>,
    tx: &Sender<(String, Result<Response, Error>)>,
    rx: &Receiver<(String, Result<Response, Error>)>,
    outstanding: &mut usize,
) -> Option<(String, Result<Response, Error>)>
where
    I: Iterator,
    I::Item: IntoRequest,
{
    while *outstanding < handle.max_in_flight() {
        let Some(item) = urls.next() else {
            break;
        };
        let request = item.into_request();
        let url = request.url().to_owned();
        let tx = tx.clone();
        let on_done = move |done: Done<()>, _: &mut crate::SendQueue<()>| {
            let _ = tx.send((done.url, done.result));
        };
        match handle.submit(request, on_done, ()) {
            Ok(()) => *outstanding += 1,
            Err(e) => return Some((url, Err(e.into_error()))),
        }
    }
    if *outstanding == 0 {
        return None;
    }
    *outstanding -= 1;
    // Every submitted request is called back (a loop catches what panics), and `tx` keeps
    // the channel open: recv returns.
    Some(
        rx.recv()
            .unwrap_or_else(|_| (String::new(), Err(loop_failed(io::Error::other("lost"))))),
    )
}
