//! A fetcher whose loops run on threads of their own ([`Builder::spawn`]), and the
//! [`Handle`] any thread uses to give it work.
//!
//! Each loop (shard) is a whole fetcher: its own engine, resolver, timers, pool and
//! politeness state. A request goes to the shard its politeness key hashes to, so
//! everything about one host lives on one shard. What shards share: the count of requests
//! held (for the backlog bound), the in-flight budget (`budget`), the fetcher's rate, and
//! one inbox per shard (a `Mutex<Vec>` plus the loop's `mio::Waker`).
//!
//! Owns threads, inboxes, the backlog bound, panics caught in callbacks and shutdown. It
//! never touches a socket: the engine in each shard does.

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;

use crate::budget::Budget;
use crate::engine::{Engine, Siblings, shared_bucket};
use crate::error::{Error, ErrorKind, Phase};
use crate::fetcher::{Context, Core};
use crate::options::{Builder, Options};
use crate::polite::{PoliteStats, PolitenessKey};
use crate::proxy::ProxyConfig;
use crate::queue::{Done, FollowUp, SendQueue, Sendable};
use crate::request::{IntoRequest, Request};
use crate::response::Response;
use crate::unwind::lock;

type SendCallback<C> = Box<dyn FnOnce(Done<C>, &mut SendQueue<C>) + Send>;

/// Work for a shard: a request (counted in `held` already), or a question for its engine.
// Requests are nearly all of them: boxing each would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Message<C: 'static> {
    Request(FollowUp<C, Sendable>),
    Run(Box<dyn FnOnce(&mut Engine) + Send>),
}

struct Inbox<C: 'static> {
    items: Vec<Message<C>>,
    /// The loop has ended: a message pushed now is dropped (a question's sender with it,
    /// so the asker stops waiting).
    ended: bool,
    /// The shard's loop, to wake after a push.
    waker: Option<Arc<Waker>>,
}

/// On cache lines of its own: each loop takes its inbox every turn.
#[repr(align(128))]
struct Shard<C: 'static> {
    inbox: Mutex<Inbox<C>>,
    /// A wake is on its way: later pushes need not wake again until the loop has looked.
    notified: AtomicBool,
}

struct Shared<C: 'static> {
    shards: Box<[Shard<C>]>,
    budget: Arc<Budget>,
    key: PolitenessKey,
    /// The fetcher's proxy settings (the environment read once), to refuse a request that
    /// would get a malformed proxy at submit, as `Fetcher::start_request` does.
    proxies: ProxyConfig,
    backlog: usize,
    /// Accepted and not yet called back, fetcher-wide: running, queued in an engine, or
    /// waiting in an inbox.
    held: AtomicUsize,
    /// Threads blocked in `submit` (for room) or `finish_all_requests` (for none held).
    waiting: AtomicUsize,
    room: Mutex<()>,
    changed: Condvar,
    closed: AtomicBool,
    /// Closed by an owner that does not wait (a dropped `fetch_all`): the last clone's drop
    /// does not wait either.
    detached: AtomicBool,
    /// [`Handle::abort`]: every loop calls back what it holds with an error and ends.
    aborted: AtomicBool,
    /// The first panic a callback raised, for the thread that waits.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Live `Handle` clones; the last one dropped shuts the fetcher down.
    handles: AtomicUsize,
}

/// A thread-safe handle to a fetcher whose loops run on threads of their own: any thread
/// may submit requests; callbacks run on the loop threads.
///
/// Made by [`Builder::spawn`]; `Clone` it for each producer thread. Every request it
/// accepts gets exactly one callback. The backlog is bounded: the fetcher holds at most
/// `max_in_flight + backlog` requests from `submit` (accepted, not yet called back);
/// [`submit`](Handle::submit) waits for room, [`try_submit`](Handle::try_submit) hands the
/// request back instead. Follow-ups queued from callbacks are bounded by
/// [`max_queued_followups`](Builder::max_queued_followups), as in a [`Fetcher`](crate::Fetcher).
///
/// With [`threads(n)`](Builder::threads), requests are routed to a loop by their
/// [politeness key](Builder::politeness_key), so one host's caps, delays, rates,
/// robots.txt, cookies and pooled connections live on one loop (with
/// [`PolitenessKey::Host`] and cookies, a cookie set for a parent domain is only seen by
/// the hosts on the same loop: choose `PolitenessKey::Domain` (feature `psl`) then). The
/// `max_in_flight` cap is one budget the loops share: a loop with all the work may use
/// all of it; loops that all want more converge on equal shares, and a slot a loop gives
/// back goes first to a loop that is waiting for one and holds no more, so none starves.
///
/// A panic in a callback is caught on the loop; the other requests still complete, and
/// the panic resumes in the thread that waits ([`finish_all_requests`](Handle::finish_all_requests)
/// or [`shutdown`](Handle::shutdown)), as `std::thread::scope` does. Dropping the last
/// clone shuts the fetcher down: it waits for every accepted request.
///
/// # Examples
/// ```no_run
/// use parafetch::{Done, Fetcher, SendQueue};
///
/// let handle = Fetcher::builder().max_in_flight(100).threads(2).spawn::<u32>()?;
/// std::thread::scope(|s| {
///     for t in 0..4 {
///         let handle = handle.clone();
///         s.spawn(move || {
///             for i in 0..1000 {
///                 let url = format!("http://127.0.0.1:8080/{t}/{i}");
///                 let on_done = |done: Done<u32>, _: &mut SendQueue<u32>| {
///                     println!("{} {:?}", done.cookie, done.result.map(|r| r.status));
///                 };
///                 handle.submit(url, on_done, i).expect("a valid url");
///             }
///         });
///     }
/// });
/// // Or wait for one answer without a callback:
/// let resp = handle.fetch("http://127.0.0.1:8080/one").wait()?;
/// handle.shutdown();
/// # Ok::<(), parafetch::Error>(())
/// ```
pub struct Handle<C: Send + 'static = ()> {
    shared: Arc<Shared<C>>,
}

/// A request `submit` did not take, with what came with it.
pub struct Rejected<F, C> {
    /// The request (its URL parsed).
    pub request: Request,
    /// The callback, never called.
    pub callback: F,
    /// The cookie.
    pub cookie: C,
}

/// Why [`Handle::submit`] (or `try_submit`, `submit_timeout`) did not take a request.
pub enum SubmitError<F, C> {
    /// The request is malformed (kind `invalid_url`, `unsupported_scheme`,
    /// `invalid_request` or `proxy`, as `Fetcher::start_request` says); nothing is kept.
    Invalid(Error),
    /// No room: the backlog is full (`try_submit`), or stayed full for the timeout.
    Full(Box<Rejected<F, C>>),
    /// The fetcher is shutting down.
    ShutDown(Box<Rejected<F, C>>),
}

impl<F, C> SubmitError<F, C> {
    /// The reason as an [`Error`] (kind `queue_full` or `shut_down` for a rejection),
    /// dropping what was handed back.
    pub fn into_error(self) -> Error {
        match self {
            SubmitError::Invalid(e) => e,
            SubmitError::Full(_) => Error::new(
                ErrorKind::QueueFull,
                Phase::Prepare,
                "the fetcher's backlog is full",
            ),
            SubmitError::ShutDown(_) => shut_down(),
        }
    }

    /// The request, callback and cookie handed back, if they were.
    pub fn into_rejected(self) -> Option<Rejected<F, C>> {
        match self {
            SubmitError::Invalid(_) => None,
            SubmitError::Full(r) | SubmitError::ShutDown(r) => Some(*r),
        }
    }
}

impl<F, C> fmt::Debug for SubmitError<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Invalid(e) => f.debug_tuple("Invalid").field(e).finish(),
            // The URL without its password, if it has one.
            SubmitError::Full(r) => f.debug_tuple("Full").field(&r.request).finish(),
            SubmitError::ShutDown(r) => f.debug_tuple("ShutDown").field(&r.request).finish(),
        }
    }
}

impl<F, C> fmt::Display for SubmitError<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Invalid(e) => write!(f, "{e}"),
            SubmitError::Full(_) => f.write_str("the fetcher's backlog is full"),
            SubmitError::ShutDown(_) => f.write_str("the fetcher is shutting down"),
        }
    }
}

impl<F, C> std::error::Error for SubmitError<F, C> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SubmitError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

impl<F, C> From<SubmitError<F, C>> for Error {
    fn from(e: SubmitError<F, C>) -> Error {
        e.into_error()
    }
}

fn shut_down() -> Error {
    Error::new(
        ErrorKind::ShutDown,
        Phase::Prepare,
        "the fetcher is shutting down",
    )
}

/// One answer on its way, from [`Handle::fetch`].
#[derive(Debug)]
pub struct Fetching {
    rx: mpsc::Receiver<Result<Response, Error>>,
    /// Known at once: the request was refused.
    now: Option<Error>,
    /// Handed out already (by `wait_timeout` or `try_wait`).
    taken: bool,
    /// The fetcher's address, to refuse waiting on its own loop thread.
    fetcher: usize,
}

impl Fetching {
    /// Waits for the answer.
    ///
    /// # Panics
    /// On one of the fetcher's own loop threads (in a callback), where it would wait for
    /// itself; and if the answer was taken already by `wait_timeout` or `try_wait`.
    pub fn wait(mut self) -> Result<Response, Error> {
        assert!(
            !self.taken,
            "parafetch: Fetching::wait after the answer was taken"
        );
        if let Some(e) = self.now.take() {
            return Err(e);
        }
        no_wait_on(self.fetcher, "Fetching::wait");
        self.rx.recv().unwrap_or_else(|_| Err(lost()))
    }

    /// Waits at most `timeout`. `Some` once, with the answer; `None` while it is not there
    /// yet (ask again), and after it was handed out.
    ///
    /// # Panics
    /// On one of the fetcher's own loop threads with a non-zero `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<Response, Error>> {
        if self.taken {
            return None;
        }
        let got = match self.now.take() {
            Some(e) => Some(Err(e)),
            None => {
                if !timeout.is_zero() {
                    no_wait_on(self.fetcher, "Fetching::wait_timeout");
                }
                match self.rx.recv_timeout(timeout) {
                    Ok(r) => Some(r),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(lost())),
                }
            }
        };
        self.taken = got.is_some();
        got
    }

    /// The answer if it is there, without waiting (`Some` once, as `wait_timeout`).
    pub fn try_wait(&mut self) -> Option<Result<Response, Error>> {
        self.wait_timeout(Duration::ZERO)
    }
}

/// Panics where waiting would wait for this very thread: on a loop of `fetcher`.
fn no_wait_on(fetcher: usize, what: &str) {
    if LOOP_OF.with(|l| l.get()) == fetcher {
        panic!("parafetch: {what} called from a callback would wait for its own loop");
    }
}

/// A fetch's callback was dropped uncalled: only if its loop thread died, which the
/// loop's own panic handling makes a bug.
fn lost() -> Error {
    Error::new(
        ErrorKind::Io,
        Phase::Prepare,
        "the fetcher's loop ended without answering",
    )
}

impl Builder {
    /// Starts the fetcher on [`threads`](Builder::threads) loops of their own (one by
    /// default) and returns the [`Handle`] to give it work from any thread.
    ///
    /// # Errors
    /// As [`Builder::try_build`]: a bad option, or the OS refusing a thread, event queue
    /// or waker.
    pub fn spawn<C: Send + 'static>(self) -> Result<Handle<C>, Error> {
        if let Some(e) = self.invalid {
            return Err(e);
        }
        let opts = self.opts;
        let n = opts.threads.max(1);
        let shared = Arc::new(Shared {
            shards: (0..n)
                .map(|_| Shard {
                    inbox: Mutex::new(Inbox {
                        items: Vec::new(),
                        ended: false,
                        waker: None,
                    }),
                    notified: AtomicBool::new(false),
                })
                .collect(),
            budget: Arc::new(Budget::new(opts.max_in_flight, n)),
            key: opts.politeness_key,
            proxies: opts.proxy.resolve(|k| std::env::var(k).ok()),
            backlog: opts.backlog,
            held: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            room: Mutex::new(()),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
            detached: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            panic: Mutex::new(None),
            threads: Mutex::new(Vec::with_capacity(n)),
            handles: AtomicUsize::new(1),
        });
        let handle = Handle { shared };
        let rate = opts.rate.map(|r| shared_bucket(r, Instant::now()));
        let (ready_tx, ready_rx) = mpsc::channel();
        for index in 0..n {
            let shared = Arc::clone(&handle.shared);
            let siblings = Siblings {
                budget: Arc::clone(&handle.shared.budget),
                index,
                rate: rate.clone(),
            };
            let opts = opts.clone();
            let ready = ready_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("parafetch-{index}"))
                .spawn(move || run_shard(shared, index, opts, siblings, ready));
            match spawned {
                Ok(t) => lock(&handle.shared.threads).push(t),
                Err(e) => {
                    let _ = ready_tx.send(Err(Error::new(
                        ErrorKind::Io,
                        Phase::Prepare,
                        "cannot start a loop thread",
                    )
                    .with_source(e)));
                }
            }
        }
        drop(ready_tx);
        let mut failed = None;
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(_) => failed = failed.or(Some(lost())),
            }
        }
        if let Some(e) = failed {
            handle.shared.close();
            handle.shared.join();
            return Err(e);
        }
        Ok(handle)
    }
}

/// One loop thread: takes its inbox, runs a turn, until the fetcher is closed and holds
/// nothing.
fn run_shard<C: Send + 'static>(
    shared: Arc<Shared<C>>,
    index: usize,
    opts: Options,
    siblings: Siblings,
    ready: mpsc::Sender<Result<(), Error>>,
) {
    let engine = match Engine::with_siblings(opts, Some(siblings)) {
        Ok(e) => e,
        Err(e) => {
            let _ = ready.send(Err(crate::fetcher::no_loop(e)));
            return;
        }
    };
    let ctx = ShardContext {
        shared: Arc::clone(&shared),
        index,
    };
    ctx.restarted(engine.waker());
    let _ = ready.send(Ok(()));
    drop(ready);
    LOOP_OF.with(|l| l.set(Arc::as_ptr(&shared) as usize));
    let mut core: Core<C, Sendable, ShardContext<C>> = Core::new(engine, ctx);
    let shard = &shared.shards[index];
    loop {
        shard.notified.store(false, SeqCst);
        let items = {
            let mut inbox = lock(&shard.inbox);
            if shared.closed.load(SeqCst) && shared.held.load(SeqCst) == 0 {
                // Nothing held and nothing more can come. Under the lock, so a question
                // pushed after this is dropped rather than left unanswered.
                inbox.ended = true;
                inbox.items.clear();
                return;
            }
            std::mem::take(&mut inbox.items)
        };
        // Our own code must not panic; if it does, the loop's state cannot be trusted: every
        // request it holds is called back with an error and a fresh loop takes over, and the
        // panic resumes in the thread that waits.
        let aborted = shared.aborted.load(SeqCst);
        let ran = panic::catch_unwind(AssertUnwindSafe(|| {
            if aborted {
                return abort_shard(&mut core, items);
            }
            for m in items {
                match m {
                    Message::Request(f) => core.take(f),
                    Message::Run(f) => f(&mut core.engine),
                }
            }
            core.step(None);
        }));
        if let Err(payload) = ran {
            core.ctx.keep_panic(payload);
            let e = Error::new(ErrorKind::Io, Phase::Prepare, "the event loop panicked");
            core.abandon(e);
        }
    }
}

/// [`Handle::abort`] on one loop: what waits in its inbox, its queue and everything it
/// holds is called back with a `ShutDown` error, unfetched; callbacks can queue no more.
fn abort_shard<C: Send + 'static>(
    core: &mut Core<C, Sendable, ShardContext<C>>,
    items: Vec<Message<C>>,
) {
    let e = crate::fetcher::aborted();
    for m in items {
        match m {
            Message::Request(f) => core.refuse(f, &e),
            Message::Run(f) => f(&mut core.engine),
        }
    }
    core.abort(&e);
}

/// A shard's side of the callbacks: the fetcher-wide count, routing, panics caught.
struct ShardContext<C: 'static> {
    shared: Arc<Shared<C>>,
    index: usize,
}

impl<C: Send + 'static> ShardContext<C> {
    /// Keeps the first panic for the thread that waits.
    fn keep_panic(&self, payload: Box<dyn Any + Send>) {
        lock(&self.shared.panic).get_or_insert(payload);
    }

    fn restarted(&self, waker: Arc<Waker>) {
        self.shared.budget.set_waker(self.index, Arc::clone(&waker));
        lock(&self.shared.shards[self.index].inbox).waker = Some(waker);
    }
}

impl<C: Send + 'static> Context<C, Sendable> for ShardContext<C> {
    fn held(&self, _local: usize) -> usize {
        self.shared.held.load(SeqCst)
    }

    fn divert(&mut self, f: FollowUp<C, Sendable>) -> Option<FollowUp<C, Sendable>> {
        let to = match f.request.parsed_url() {
            Some(url) => self.shared.shard_of(url),
            None => self.index,
        };
        if to == self.index {
            return Some(f);
        }
        self.shared.held.fetch_add(1, SeqCst);
        self.shared.push(to, Message::Request(f));
        None
    }

    fn call(&mut self, callback: SendCallback<C>, done: Done<C>, queue: &mut SendQueue<C>) {
        let ran = panic::catch_unwind(AssertUnwindSafe(|| callback(done, queue)));
        if let Err(payload) = ran {
            // What a panicking callback queued is dropped with it, never accepted.
            queue.items.clear();
            queue.max_in_flight = None;
            self.keep_panic(payload);
        }
    }

    fn panicked(&mut self, payload: Box<dyn Any + Send>) {
        self.keep_panic(payload);
    }

    fn cap_changed(&mut self) {
        self.shared.notify_waiters();
    }

    fn accepted(&mut self) {
        self.shared.held.fetch_add(1, SeqCst);
    }

    fn called(&mut self) {
        self.shared.release(1);
    }

    fn restarted(&mut self, waker: Arc<Waker>) {
        ShardContext::restarted(self, waker);
    }
}

thread_local! {
    /// The fetcher whose loop runs on this thread (its `Shared`'s address), if any.
    static LOOP_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<C: 'static> Shared<C> {
    fn is_own_thread(&self) -> bool {
        LOOP_OF.with(|l| l.get()) == self as *const Shared<C> as usize
    }

    /// Panics with a clear message where waiting would wait for this very thread.
    fn no_wait_here(&self, what: &str) {
        no_wait_on(
            self as *const Shared<C> as usize,
            &format!("Handle::{what}"),
        );
    }

    /// The shard a URL's politeness key hashes to.
    fn shard_of(&self, url: &url::Url) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        crate::polite::shard_of(&self.key.of(url), self.shards.len())
    }

    /// Puts a message in shard `to`'s inbox and wakes its loop if no wake is pending.
    fn push(&self, to: usize, m: Message<C>) {
        let shard = &self.shards[to];
        let waker = {
            let mut inbox = lock(&shard.inbox);
            if inbox.ended {
                return; // dropped: only questions arrive after the end (see run_shard)
            }
            inbox.items.push(m);
            inbox.waker.clone()
        };
        if !shard.notified.swap(true, SeqCst) {
            if let Some(w) = waker {
                let _ = w.wake();
            }
        }
    }

    fn wake_all(&self) {
        for shard in self.shards.iter() {
            shard.notified.store(true, SeqCst);
            if let Some(w) = &lock(&shard.inbox).waker {
                let _ = w.wake();
            }
        }
    }

    /// `n` requests were called back: room for producers, and at zero an idle fetcher.
    ///
    /// Waiting producers are woken once half the backlog is free (or at once without a
    /// backlog), so that they hand work over in batches rather than one wake, one
    /// context switch and one submit per answer; the other half keeps the loops busy.
    fn release(&self, n: usize) {
        let before = self.held.fetch_sub(n, SeqCst);
        let after = before - n;
        let batch = (self.backlog / 2).max(1);
        let room = self.room();
        // Only as it crosses the mark: later releases would each wake (a futex call)
        // producers already woken and not yet running.
        let crossed = after + batch <= room && before + batch > room;
        if self.waiting.load(SeqCst) > 0 && (after == 0 || crossed) {
            self.notify_waiters();
        }
        if before == n && self.closed.load(SeqCst) {
            // Nothing held and nothing more can come: every loop may end.
            self.wake_all();
        }
    }

    /// How many submitted requests may be held: `max_in_flight + backlog`.
    fn room(&self) -> usize {
        self.budget.cap().saturating_add(self.backlog)
    }

    /// Room for one more submitted request.
    fn reserve(&self) -> bool {
        let cap = self.room();
        self.held
            .fetch_update(SeqCst, SeqCst, |h| (h < cap).then_some(h + 1))
            .is_ok()
    }

    /// Waits until `ready` holds or `deadline` passes; `ready`'s last answer.
    fn wait_until(&self, deadline: Option<Instant>, mut ready: impl FnMut() -> bool) -> bool {
        if ready() {
            return true;
        }
        self.waiting.fetch_add(1, SeqCst);
        let mut g = lock(&self.room);
        let ok = loop {
            if ready() {
                break true;
            }
            match deadline {
                None => g = self.changed.wait(g).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break false;
                    }
                    g = self
                        .changed
                        .wait_timeout(g, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        };
        drop(g);
        self.waiting.fetch_sub(1, SeqCst);
        ok
    }

    /// Wakes every thread waiting for room or for the fetcher to be idle, to look again.
    fn notify_waiters(&self) {
        let _g = lock(&self.room);
        self.changed.notify_all();
    }

    fn close(&self) {
        self.closed.store(true, SeqCst);
        self.notify_waiters();
        self.wake_all();
    }

    fn join(&self) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            // A loop thread does not unwind: run_shard catches what panics.
            let _ = t.join();
        }
    }

    fn resume_panic(&self) {
        let payload = lock(&self.panic).take();
        if let Some(p) = payload {
            panic::resume_unwind(p);
        }
    }
}

impl<C: Send + 'static> Handle<C> {
    /// Submits `request` with its callback and cookie, waiting while the backlog is full.
    /// Called from a callback (on a loop thread, where waiting would wait for itself), it
    /// does not wait: a full backlog is `Full` there. A callback's follow-ups belong in its
    /// [`SendQueue`] anyway.
    ///
    /// # Errors
    /// [`SubmitError::Invalid`] for a malformed request (nothing kept);
    /// [`SubmitError::ShutDown`] once the fetcher is shutting down.
    pub fn submit<F>(
        &self,
        request: impl IntoRequest,
        callback: F,
        cookie: C,
    ) -> Result<(), SubmitError<F, C>>
    where
        F: FnOnce(Done<C>, &mut SendQueue<C>) + Send + 'static,
    {
        self.submit_until(request.into_request(), callback, cookie, Some(None))
    }

    /// As [`Handle::submit`], waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As `submit`, and [`SubmitError::Full`] when no room came in time.
    pub fn submit_timeout<F>(
        &self,
        request: impl IntoRequest,
        callback: F,
        cookie: C,
        timeout: Duration,
    ) -> Result<(), SubmitError<F, C>>
    where
        F: FnOnce(Done<C>, &mut SendQueue<C>) + Send + 'static,
    {
        let deadline = Instant::now().checked_add(timeout);
        self.submit_until(request.into_request(), callback, cookie, Some(deadline))
    }

    /// As [`Handle::submit`] without waiting: a full backlog hands everything back.
    ///
    /// # Errors
    /// As `submit`, and [`SubmitError::Full`] when the backlog is full.
    pub fn try_submit<F>(
        &self,
        request: impl IntoRequest,
        callback: F,
        cookie: C,
    ) -> Result<(), SubmitError<F, C>>
    where
        F: FnOnce(Done<C>, &mut SendQueue<C>) + Send + 'static,
    {
        self.submit_until(request.into_request(), callback, cookie, None)
    }

    /// `wait`: `None` never waits; `Some(None)` waits as long as it takes; `Some(Some(t))`
    /// until `t`.
    fn submit_until<F>(
        &self,
        mut request: Request,
        callback: F,
        cookie: C,
        wait: Option<Option<Instant>>,
    ) -> Result<(), SubmitError<F, C>>
    where
        F: FnOnce(Done<C>, &mut SendQueue<C>) + Send + 'static,
    {
        let url = request.url().to_owned();
        let parsed = Engine::precheck(&mut request).map_err(SubmitError::Invalid)?;
        let s = &self.shared;
        if request.proxy.is_none() {
            // Only to check: the loop picks the proxy it uses (round robin is its own).
            s.proxies
                .pick(&parsed, &std::cell::Cell::new(0))
                .map_err(SubmitError::Invalid)?;
        }
        let reject = |request, callback, cookie| {
            Box::new(Rejected {
                request,
                callback,
                cookie,
            })
        };
        // On one of this fetcher's own loop threads (a callback), waiting for room would
        // wait for itself: never wait there.
        let wait = if s.is_own_thread() { None } else { wait };
        let mut reserved = false;
        let mut try_reserve = || {
            if s.closed.load(SeqCst) {
                return true; // stop waiting
            }
            reserved = s.reserve();
            reserved
        };
        match wait {
            None => {
                try_reserve();
            }
            Some(deadline) => {
                s.wait_until(deadline, try_reserve);
            }
        }
        if s.closed.load(SeqCst) {
            if reserved {
                // Reserved just as it closed: give the place back.
                s.release(1);
            }
            return Err(SubmitError::ShutDown(reject(request, callback, cookie)));
        }
        if !reserved {
            return Err(SubmitError::Full(reject(request, callback, cookie)));
        }
        let to = s.shard_of(&parsed);
        s.push(
            to,
            Message::Request(FollowUp {
                request,
                callback: Box::new(callback),
                cookie,
                url,
            }),
        );
        Ok(())
    }

    /// The in-flight cap, shared by the loops.
    pub fn max_in_flight(&self) -> usize {
        self.shared.budget.cap()
    }

    /// Changes the in-flight cap (at least 1), at once on every loop (and for producers
    /// waiting for room).
    pub fn set_max_in_flight(&self, n: usize) {
        self.shared.budget.set_cap(n);
        self.shared.notify_waiters();
    }

    /// Requests accepted and not yet called back, over all loops (follow-ups included).
    pub fn pending(&self) -> usize {
        self.shared.held.load(SeqCst)
    }

    /// Stops taking requests without waiting: the loops finish what they hold (callbacks
    /// included) and end on their own, and dropping the last clone does not wait.
    pub(crate) fn detach(&self) {
        self.shared.detached.store(true, SeqCst);
        self.shared.close();
    }

    /// How many loops (threads) the fetcher runs.
    pub fn threads(&self) -> usize {
        self.shared.shards.len()
    }

    /// What politeness has done so far, summed over the loops (zero once they have
    /// ended). Not from a callback: it would wait for its own loop, and panics.
    pub fn polite_stats(&self) -> PoliteStats {
        let mut sum = PoliteStats::default();
        for s in self.ask(|e| e.polite_stats()) {
            sum.hosts_paused += s.hosts_paused;
            sum.robots_refused += s.robots_refused;
        }
        sum
    }

    /// A copy of the cookie jar `name` (`""`: the default jar of
    /// [`Builder::cookies`]) with what every loop's part of it holds, or `None` if no loop
    /// has it. Each loop keeps the cookies of its own hosts; save this copy with
    /// [`CookieJar::write_netscape`](crate::CookieJar::write_netscape) (before
    /// `shutdown`: an ended loop has no jars). Not from a callback: it would wait for its
    /// own loop, and panics.
    #[cfg(feature = "cookies")]
    pub fn jar(&self, name: &str) -> Option<crate::CookieJar> {
        let name = name.to_owned();
        let parts = self.ask(move |e| e.jar(&name).cloned());
        let mut merged: Option<crate::CookieJar> = None;
        for part in parts.into_iter().flatten() {
            match &mut merged {
                None => merged = Some(part),
                Some(m) => {
                    for c in part.cookies() {
                        m.insert(&c);
                    }
                }
            }
        }
        merged
    }

    /// Asks every loop's engine, waiting for the answers (a loop that has ended gives
    /// none). Called from a callback, which would wait for its own loop, it panics.
    fn ask<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Engine) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        self.shared.no_wait_here("polite_stats or Handle::jar");
        let f = Arc::new(f);
        let (tx, rx) = mpsc::channel();
        for i in 0..self.shared.shards.len() {
            let (f, tx) = (Arc::clone(&f), tx.clone());
            self.shared.push(
                i,
                Message::Run(Box::new(move |e: &mut Engine| {
                    let _ = tx.send(f(e));
                })),
            );
        }
        drop(tx);
        rx.iter().collect()
    }

    /// Waits until every request accepted so far, and every follow-up their callbacks
    /// queued, has been called back. The fetcher keeps running.
    ///
    /// # Panics
    /// Resumes the first panic a callback raised since the last wait.
    ///
    /// Called from a callback (which would wait for itself), it panics.
    pub fn finish_all_requests(&self) {
        let s = &self.shared;
        s.no_wait_here("finish_all_requests");
        s.wait_until(None, || s.held.load(SeqCst) == 0);
        s.resume_panic();
    }

    /// Stops at once, without waiting: `submit` fails with `ShutDown` from now on, and
    /// every request accepted and not yet called back (running, queued or in a loop's
    /// inbox) is called back with an error of kind
    /// [`ShutDown`](ErrorKind::ShutDown) instead of being fetched; its connection is
    /// closed. Callbacks run on the loops as usual, and a follow-up they queue is refused
    /// (`ShutDown`). Then the loops end on their own.
    ///
    /// For a caller that is giving up (an interrupt, an error elsewhere).
    /// [`shutdown`](Handle::shutdown) or dropping the last clone afterwards waits only for
    /// those callbacks and joins the threads. From a callback too.
    pub fn abort(&self) {
        self.shared.aborted.store(true, SeqCst);
        self.shared.close();
    }

    /// Stops taking requests (`submit` then fails with `ShutDown`), waits until every
    /// accepted one has been called back, and ends the loop threads. Other clones of
    /// the handle see the fetcher shut down. Callbacks may still queue follow-ups, which
    /// run and are waited for too: a crawler's callbacks decide when its crawl ends.
    ///
    /// # Panics
    /// Resumes the first panic a callback raised. Called from a callback (which would
    /// wait for itself), it panics.
    pub fn shutdown(&self) {
        let s = &self.shared;
        s.no_wait_here("shutdown");
        s.close();
        s.wait_until(None, || s.held.load(SeqCst) == 0);
        s.join();
        s.resume_panic();
    }
}

impl<C: Default + Send + 'static> Handle<C> {
    /// Submits `request` (waiting for room) and returns the answer to wait on, for a
    /// thread that wants the response rather than a callback.
    pub fn fetch(&self, request: impl IntoRequest) -> Fetching {
        let (tx, rx) = mpsc::sync_channel(1);
        let on_done = move |done: Done<C>, _: &mut SendQueue<C>| {
            let _ = tx.send(done.result);
        };
        let now = self
            .submit(request, on_done, C::default())
            .err()
            .map(SubmitError::into_error);
        Fetching {
            rx,
            now,
            taken: false,
            fetcher: Arc::as_ptr(&self.shared) as usize,
        }
    }
}

impl<C: Send + 'static> Clone for Handle<C> {
    fn clone(&self) -> Handle<C> {
        self.shared.handles.fetch_add(1, SeqCst);
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C: Send + 'static> Drop for Handle<C> {
    /// The last clone shuts the fetcher down, waiting for every accepted request (except
    /// while unwinding, or on the fetcher's own loop thread: then it closes without
    /// waiting).
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, SeqCst) != 1 {
            return;
        }
        let detached = self.shared.detached.load(SeqCst);
        if std::thread::panicking() || self.shared.is_own_thread() || detached {
            // Unwinding already, or on one of the fetcher's own loops (a callback held the
            // last clone), where waiting would wait for itself: close, and let the loops
            // finish what they hold and end on their own.
            self.shared.close();
        } else {
            self.shutdown();
        }
    }
}

impl<C: Send + 'static> fmt::Debug for Handle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("threads", &self.threads())
            .field("max_in_flight", &self.max_in_flight())
            .field("pending", &self.pending())
            .field("shut_down", &self.shared.closed.load(SeqCst))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::polite::shard_of as spread;

    #[test]
    fn keys_spread_evenly_over_the_loops() {
        for n in [2, 3, 4, 8] {
            let mut count = vec![0usize; n];
            for i in 0..4000 {
                count[spread(&format!("host{i}.example.com"), n)] += 1;
                count[spread(&format!("10.0.{}.{}", i / 256, i % 256), n)] += 1;
            }
            let fair = 8000 / n;
            for c in &count {
                assert!(c.abs_diff(fair) < fair / 10, "{n} loops: {count:?}");
            }
        }
        let six: Vec<usize> = (1..=6)
            .map(|i| spread(&format!("127.0.0.{i}"), 2))
            .collect();
        assert!(six.contains(&0) && six.contains(&1), "{six:?}");
    }
}
