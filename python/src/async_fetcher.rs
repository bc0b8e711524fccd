//! `parafetch.AsyncFetcher`'s native half: asyncio futures over a [`parafetch::Handle`]
//! whose loops run on threads of their own. python/parafetch/_aio.py adds the parts that
//! are coroutines (`aclose`, `async with`, `fetch_all`).
//!
//! Owns the hand-over from the loop threads to the event loop, and nothing else. A
//! request's Rust callback pushes `(id, result)`, a plain Rust value, into the shared
//! [`Mail`]; only the first push since the last drain wakes the event loop, and it does so
//! without the GIL: it writes a byte to a socket pair (the [`Bell`]) whose other end the
//! event loop watches (`loop.add_reader(fd, drain)`). An event loop that cannot watch a
//! file descriptor (`add_reader` raises NotImplementedError, as Windows' proactor loop
//! does) is woken by `loop.call_soon_threadsafe(drain)` instead, which takes the GIL for
//! that one call. Either way the drain runs on the event loop's thread: it converts each
//! result there (the loop threads never build Python objects), resolves the futures still
//! waiting, submits requests that were waiting for room and wakes `_idle` waiters. A burst
//! of results costs the event loop one wake-up; nothing polls.
//!
//! The bell is made when an event loop is bound (one per binding, so a loop given up
//! hears nothing of its successor's rings) and let go of when the fetcher is closed and
//! idle, by `_shutdown`, or when another loop takes over: on the loop's own thread if it
//! runs on another one, an event loop not being thread-safe. Binding runs Python code
//! (`add_reader`), so it commits only if no other thread bound the fetcher meanwhile.
//!
//! Why the bell: taking the GIL on a loop thread waits for the event loop's thread to let
//! it go, which it does only between bytecodes at the switch interval or when it blocks;
//! meanwhile that loop thread serves no connection. Measured on the benchmark's keep-alive
//! cell (docs/python-bench.md), the bell costs less CPU per request than the call.
//!
//! Admission: `fetch` submits with `try_submit` only while fewer than `max_in_flight +
//! backlog` requests are submitted and not drained; otherwise the request waits in a FIFO
//! here (its future already returned) and the drain submits it when room frees. A future
//! cancelled while waiting is dropped there, never submitted. The event loop's thread
//! never waits on the handle.
//!
//! Locks: [`Book`] is only locked with the GIL held, and no Python code runs (nor is a
//! Python object dropped) while either lock is held: a `__del__` might call back in.
//!
//! Never parses options (options.rs) nor converts results (response.rs, errors.rs), and
//! uses nothing of fetcher.rs but `lock`, `Finished`, `TICK` and `forked_error`.

use std::collections::{HashMap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use parafetch::{Done, Handle, Rejected, Request, SendQueue, SubmitError};
use pyo3::exceptions::{PyNotImplementedError, PyRuntimeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::errors::{error_value, to_pyerr};
use crate::fetcher::{Finished, TICK, forked_error, lock};
use crate::options::{self, Kept, RequestArgs};
use crate::response::Response;

/// Added to the handle's backlog. The handle counts a request until its Rust callback has
/// returned; we count it until the drain took its result, which can come first: at most
/// one such request per loop thread at any moment (a loop calls back one at a time). With
/// this slack `try_submit` never finds the handle full while our own count has room,
/// and the engine still never holds more than our count lets in.
const SLACK: usize = 1024;

/// How the event loop is woken to drain.
enum Wake {
    /// No event loop listens (none bound yet, or the fetcher stopped listening): results
    /// stay unread, and are dropped by [`Core::undeliverable`].
    Unbound,
    /// The bound event loop `ev` watches `bell` (`add_reader`). A bell per binding: a
    /// loop given up may still hold its registration for a moment (its removal queued to
    /// its own thread), and must then hear nothing of the new loop's rings.
    Bell { ev: Py<PyAny>, bell: Arc<Bell> },
    /// The bound event loop's `call_soon_threadsafe`.
    Call(Py<PyAny>),
}

/// Results on their way from the loop threads to the event loop.
struct Mail {
    results: Vec<Finished<u64>>,
    /// A drain is scheduled (or the bell rung) and has not taken `results` yet.
    scheduled: bool,
    wake: Wake,
    /// Bumped when another event loop takes over. A drain carries the generation it was
    /// scheduled for and does nothing if it is stale: the old loop may run it late (or
    /// never, if it is closed with the drain queued, which is why `bind` reschedules).
    generation: u64,
}

/// The doorbell the loop threads ring, without the GIL, when results wait: a
/// non-blocking socket pair whose read end the event loop watches.
#[cfg(unix)]
struct Bell {
    ring: std::os::unix::net::UnixStream,
    hear: std::os::unix::net::UnixStream,
}

#[cfg(unix)]
impl Bell {
    /// `None` if the socket pair cannot be made (out of file descriptors): the event
    /// loop is then woken with `call_soon_threadsafe`.
    fn new() -> Option<Bell> {
        let (ring, hear) = std::os::unix::net::UnixStream::pair().ok()?;
        ring.set_nonblocking(true).ok()?;
        hear.set_nonblocking(true).ok()?;
        Some(Bell { ring, hear })
    }

    fn fd(&self) -> i64 {
        use std::os::fd::AsRawFd;
        i64::from(self.hear.as_raw_fd())
    }

    /// Makes the read end readable; `false` if it could not (a full buffer, `WouldBlock`,
    /// is readable already and counts as rung).
    fn ring(&self) -> bool {
        use std::io::Write;
        match (&self.ring).write(&[1]) {
            Ok(n) => n == 1,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }

    /// Reads what was rung, so that the event loop does not see it again.
    fn quiet(&self) {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while matches!((&self.hear).read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// No socket pairs here: every event loop is woken with `call_soon_threadsafe`.
#[cfg(not(unix))]
enum Bell {}

#[cfg(not(unix))]
impl Bell {
    fn new() -> Option<Bell> {
        None
    }

    fn fd(&self) -> i64 {
        match *self {}
    }

    fn ring(&self) -> bool {
        match *self {}
    }

    fn quiet(&self) {
        match *self {}
    }
}

/// A request's Python side until it is resolved.
struct Entry {
    future: Py<PyAny>,
    url: String,
}

/// A request `fetch` could not submit for lack of room.
struct Waiting {
    id: u64,
    request: Request,
    entry: Entry,
}

/// What the event loop's side keeps. Locked with the GIL held only.
struct Book {
    /// `None` once shut down (or given away by `Drop`).
    handle: Option<Handle<u64>>,
    /// Submitted, by id, until the drain resolves them.
    table: HashMap<u64, Entry>,
    /// Accepted by `fetch`, waiting for room, oldest first.
    waiting: VecDeque<Waiting>,
    next_id: u64,
    /// `_idle()` futures, resolved when the table and `waiting` are empty.
    idle: Vec<Py<PyAny>>,
    /// The event loop the futures belong to (bound at the first `fetch`; rebound only
    /// while nothing is pending).
    event_loop: Option<Py<PyAny>>,
}

impl Book {
    fn is_idle(&self) -> bool {
        self.table.is_empty() && self.waiting.is_empty()
    }
}

/// Shared by the fetcher, its drains and its requests' Rust callbacks.
struct Core {
    mail: Mutex<Mail>,
    book: Mutex<Book>,
    /// `fetch` refuses (ShutDown) once set.
    closed: AtomicBool,
    /// The `backlog` option: room is `max_in_flight + backlog`.
    backlog: usize,
    /// The process that made it: a drain run in a forked child does nothing (the bell's
    /// socket is shared with the parent, whose rings it must not take).
    pid: u32,
}

/// A ShutDown error, through the public API (`Error::new` is the library's own).
fn shut_down() -> parafetch::Error {
    let rejected = Rejected {
        request: Request::new("GET", "http://127.0.0.1/"),
        callback: (),
        cookie: (),
    };
    SubmitError::ShutDown(Box::new(rejected)).into_error()
}

/// Whether an asyncio future is done (a cancelled one is).
fn is_done(py: Python<'_>, future: &Py<PyAny>) -> bool {
    future
        .call_method0(py, intern!(py, "done"))
        .and_then(|d| d.is_truthy(py))
        .unwrap_or(true)
}

/// Resolves `future` with `result` unless it is done already (cancelled): the result is
/// then dropped.
fn settle(py: Python<'_>, entry: Entry, result: Result<parafetch::Response, parafetch::Error>) {
    if is_done(py, &entry.future) {
        return;
    }
    let (method, value) = match result {
        Ok(r) => match Response::from_rust(py, r).and_then(|r| Py::new(py, r)) {
            Ok(r) => (intern!(py, "set_result"), r.into_any()),
            Err(e) => (intern!(py, "set_exception"), e.into_value(py).into_any()),
        },
        Err(e) => (
            intern!(py, "set_exception"),
            error_value(py, &e, Some(&entry.url)),
        ),
    };
    let future = entry.future.bind(py);
    if let Err(e) = future.call_method1(method, (value,)) {
        e.write_unraisable(py, Some(future));
    }
}

/// Sets a future's result to None unless it is done.
fn set_none(py: Python<'_>, future: &Py<PyAny>) {
    if !is_done(py, future) {
        let future = future.bind(py);
        if let Err(e) = future.call_method1(intern!(py, "set_result"), (py.None(),)) {
            e.write_unraisable(py, Some(future));
        }
    }
}

impl Core {
    /// Adds `results` (on a loop thread, a request's; or none) and wakes the event loop to
    /// drain, unless a drain is due already.
    fn post(self: &Arc<Core>, results: impl IntoIterator<Item = Finished<u64>>) {
        let bell = {
            let mut m = lock(&self.mail);
            m.results.extend(results);
            if std::mem::replace(&mut m.scheduled, true) {
                return;
            }
            match &m.wake {
                Wake::Bell { bell, .. } => Some(Arc::clone(bell)),
                _ => None,
            }
        };
        self.wake(bell);
    }

    /// Asks the event loop to drain; the caller has just set `scheduled`. Rings `bell` if
    /// the event loop watches one (no GIL), or else calls `call_soon_threadsafe`, taking
    /// the GIL for that call if this thread does not hold it. During interpreter shutdown
    /// there is no GIL to take: the results stay unread.
    fn wake(self: &Arc<Core>, bell: Option<Arc<Bell>>) {
        if bell.is_some_and(|b| b.ring()) {
            return;
        }
        let _ = Python::try_attach(|py| self.call_soon(py));
    }

    /// `call_soon_threadsafe(drain)` on the bound event loop (one that watches the bell
    /// too, should ringing it have failed). If the event loop cannot be asked (closed, or
    /// none listens), what waited for it is dropped: nobody can be told any more.
    fn call_soon(self: &Arc<Core>, py: Python<'_>) {
        let (call, generation) = {
            let m = lock(&self.mail);
            let call = match &m.wake {
                Wake::Bell { ev, .. } => ev
                    .bind(py)
                    .getattr(intern!(py, "call_soon_threadsafe"))
                    .map(Bound::unbind),
                Wake::Call(w) => Ok(w.clone_ref(py)),
                Wake::Unbound => Err(PyRuntimeError::new_err("no event loop")),
            };
            (call, m.generation)
        };
        let called = call.and_then(|call| {
            let drain = Drain {
                core: Arc::clone(self),
                generation,
                bell: None,
            };
            call.call1(py, (Py::new(py, drain)?,))
        });
        if called.is_err() {
            self.undeliverable(generation);
        }
    }

    /// Lets go of the event loop's registration of the bell, if it has one, and takes no
    /// more drains: later results are dropped, unread ([`Core::undeliverable`]).
    fn stop_listening(&self, py: Python<'_>) {
        let was = std::mem::replace(&mut lock(&self.mail).wake, Wake::Unbound);
        if let Wake::Bell { ev, bell } = &was {
            unwatch(ev.bind(py), bell.fd());
        }
        drop(was);
    }

    /// Makes `ev` watch a new bell with a drain of `generation`; an event loop that
    /// cannot watch file descriptors (or no socket pair to spare) gets its
    /// `call_soon_threadsafe` used instead.
    fn listen(
        self: &Arc<Core>,
        py: Python<'_>,
        ev: &Bound<'_, PyAny>,
        generation: u64,
    ) -> PyResult<Wake> {
        if let Some(bell) = Bell::new().map(Arc::new) {
            let drain = Drain {
                core: Arc::clone(self),
                generation,
                bell: Some(Arc::clone(&bell)),
            };
            let drain = Py::new(py, drain)?;
            match ev.call_method1(intern!(py, "add_reader"), (bell.fd(), drain)) {
                Ok(_) => {
                    return Ok(Wake::Bell {
                        ev: ev.clone().unbind(),
                        bell,
                    });
                }
                Err(e) if e.is_instance_of::<PyNotImplementedError>(py) => {}
                Err(e) => return Err(e),
            }
        }
        let call = ev.getattr(intern!(py, "call_soon_threadsafe"))?.unbind();
        Ok(Wake::Call(call))
    }

    /// The event loop is gone (`call_soon_threadsafe` raised, or `_shutdown` stopped
    /// listening without waiting): drops the results, their
    /// futures, the requests waiting for room and the idle waiters. Requests still in
    /// flight are dropped the same way as they finish. Nothing is dropped if another loop
    /// took over meanwhile (`generation` is stale): what waits is that loop's now.
    fn undeliverable(&self, generation: u64) {
        let results = {
            let mut m = lock(&self.mail);
            if m.generation != generation {
                return;
            }
            m.scheduled = false;
            std::mem::take(&mut m.results)
        };
        let dropped = {
            let mut b = lock(&self.book);
            let entries: Vec<Entry> = results
                .iter()
                .filter_map(|(id, _)| b.table.remove(id))
                .collect();
            let waiting = std::mem::take(&mut b.waiting);
            let idle = std::mem::take(&mut b.idle);
            (entries, waiting, idle)
        };
        drop((results, dropped));
    }

    /// The drain, on the event loop's thread; one scheduled for a loop that has since
    /// been replaced does nothing.
    fn drain(self: &Arc<Core>, py: Python<'_>, generation: u64, bell: Option<&Bell>) {
        if let Some(bell) = bell {
            // Its own binding's bell, current or not (a stale one must stop being
            // readable). Before `results` is taken: a result pushed after the take rings
            // again. One that rang between here and the take leaves a ring for a drain
            // that finds nothing, which is cheaper than reading with the lock held.
            bell.quiet();
        }
        let results = {
            let mut m = lock(&self.mail);
            if m.generation != generation {
                return;
            }
            m.scheduled = false;
            std::mem::take(&mut m.results)
        };
        let resolved: Vec<_> = {
            let mut b = lock(&self.book);
            results
                .into_iter()
                .filter_map(|(id, r)| b.table.remove(&id).map(|e| (e, r)))
                .collect()
        };
        for (entry, result) in resolved {
            settle(py, entry, result);
        }
        self.admit(py);
        let (idle, finished) = {
            let mut b = lock(&self.book);
            if b.is_idle() {
                (std::mem::take(&mut b.idle), self.closed.load(SeqCst))
            } else {
                (Vec::new(), false)
            }
        };
        // Closed with nothing pending: no result can come any more, so the event loop
        // lets go of the bell (and, through the drain it holds, of this fetcher).
        if finished {
            self.stop_listening(py);
        }
        for future in idle {
            set_none(py, &future);
        }
    }

    fn room(&self, b: &Book) -> bool {
        match &b.handle {
            Some(h) => b.table.len() < h.max_in_flight().saturating_add(self.backlog),
            None => true, // submit refuses with ShutDown
        }
    }

    /// Submits the requests waiting for room while there is room.
    fn admit(self: &Arc<Core>, py: Python<'_>) {
        loop {
            let next = {
                let mut b = lock(&self.book);
                if !self.room(&b) {
                    return;
                }
                b.waiting.pop_front()
            };
            let Some(w) = next else {
                return;
            };
            if is_done(py, &w.entry.future) {
                continue; // cancelled while waiting: never submitted
            }
            if let Err((entry, e)) = self.submit(py, w) {
                settle(py, entry, Err(e));
            }
        }
    }

    /// Submits one request (the caller saw room); `Err` hands its entry back with why.
    fn submit(
        self: &Arc<Core>,
        py: Python<'_>,
        w: Waiting,
    ) -> Result<(), (Entry, parafetch::Error)> {
        let Waiting { id, request, entry } = w;
        let core = Arc::clone(self);
        let on_done = move |done: Done<u64>, _: &mut SendQueue<u64>| {
            core.post([(done.cookie, done.result)]);
        };
        let mut b = lock(&self.book);
        let Some(handle) = &b.handle else {
            return Err((entry, shut_down()));
        };
        let tried = match handle.try_submit(request, on_done, id) {
            Err(SubmitError::Full(r)) => {
                // Not expected (see SLACK). Wait for the handle's count to catch up, with
                // the GIL and the book let go: a loop thread may need the GIL to finish
                // the callback that holds the place.
                let handle = handle.clone();
                drop(b);
                let tried = py.detach(move || {
                    let mut r = *r;
                    loop {
                        match handle.submit_timeout(r.request, r.callback, r.cookie, TICK) {
                            Err(SubmitError::Full(back)) => r = *back,
                            other => break other,
                        }
                    }
                    // `handle` dropped here, GIL released, should it be the last clone.
                });
                b = lock(&self.book);
                tried
            }
            other => other,
        };
        match tried {
            Ok(()) => {
                b.table.insert(id, entry);
                Ok(())
            }
            Err(e) => Err((entry, e.into_error())),
        }
    }

    /// Requests waiting for room become ShutDown results, delivered by a drain.
    fn refuse_waiting(self: &Arc<Core>) {
        let ids: Vec<u64> = {
            let mut b = lock(&self.book);
            let waiting = std::mem::take(&mut b.waiting);
            waiting
                .into_iter()
                .map(|w| {
                    b.table.insert(w.id, w.entry);
                    w.id
                })
                .collect()
        };
        if ids.is_empty() {
            return;
        }
        self.post(ids.into_iter().map(|id| (id, Err(shut_down()))));
    }
}

/// The drain: the event loop's reader callback for the bell, or what
/// `call_soon_threadsafe` schedules (one per burst of results).
#[pyclass(frozen, module = "parafetch._native")]
struct Drain {
    core: Arc<Core>,
    /// `Mail::generation` when it was scheduled.
    generation: u64,
    /// The bell it is the reader callback of, if it is one.
    bell: Option<Arc<Bell>>,
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        if self.core.pid != crate::fetcher::current_pid() {
            return; // a forked child: the parent's rings and results are not its own
        }
        self.core.drain(py, self.generation, self.bell.as_deref());
    }
}

/// Makes `ev` stop watching `fd`: at once where that is safe (the loop is closed, not
/// running, or running on this thread), else on the loop's own thread through its
/// `call_soon_threadsafe`, an event loop not being thread-safe. The bell behind `fd`
/// stays open until then: the registration's drain holds it, so the number cannot be
/// another bell's meanwhile. Errors are ignored: a closed loop has nothing to remove.
fn unwatch(ev: &Bound<'_, PyAny>, fd: i64) {
    let py = ev.py();
    let here = || -> PyResult<bool> {
        if ev.call_method0(intern!(py, "is_closed"))?.is_truthy()?
            || !ev.call_method0(intern!(py, "is_running"))?.is_truthy()?
        {
            return Ok(true);
        }
        static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        Ok(GET
            .import(py, "asyncio", "_get_running_loop")?
            .call0()?
            .is(ev))
    };
    let _ = match here() {
        Ok(true) => ev.call_method1(intern!(py, "remove_reader"), (fd,)),
        _ => ev
            .getattr(intern!(py, "remove_reader"))
            .and_then(|remove| ev.call_method1(intern!(py, "call_soon_threadsafe"), (remove, fd))),
    };
}

/// Sets a future's result to None unless it is done: what the closing thread schedules.
#[pyclass(frozen, module = "parafetch._native")]
struct Resolve {
    future: Py<PyAny>,
}

#[pymethods]
impl Resolve {
    fn __call__(&self, py: Python<'_>) {
        set_none(py, &self.future);
    }
}

/// The running event loop (RuntimeError outside one).
fn running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    GET.import(py, "asyncio", "get_running_loop")?.call0()
}

/// Gives `handle` to a thread that drops it (waiting for its loops to end), so that the
/// caller never waits; without a thread to spare, drops it here with the GIL released.
fn drop_elsewhere(handle: Handle<u64>) {
    // Through a channel, so that the handle is still ours if the OS refuses the thread
    // (a closure given to a failed spawn is dropped inside it).
    let (give, take) = mpsc::sync_channel::<Handle<u64>>(1);
    let spawned = thread::Builder::new()
        .name("parafetch-close".into())
        .spawn(move || drop(take.recv()));
    let handle = match spawned {
        Ok(_) => match give.send(handle) {
            Ok(()) => return,
            Err(mpsc::SendError(back)) => back,
        },
        Err(_) => handle,
    };
    let mut handle = Some(handle);
    let _ = Python::try_attach(|py| py.detach(|| drop(handle.take())));
    drop(handle); // interpreter shutting down: no GIL to let go of
}

/// Fetches many URLs at once for asyncio: `AsyncFetcher(max_in_flight=10, **options)`,
/// options as for `Fetcher`. The fetching runs on loops of its own threads; results come
/// back to the event loop with one wake-up per burst (the bell it watches, or
/// `call_soon_threadsafe` where it cannot watch a file descriptor).
///
/// `fetch(url, *, method="GET", headers=None, data=None, timeout=None, ...)` (the
/// per-request arguments of `Fetcher.start_request`) starts the request at once and
/// returns an `asyncio.Future` resolving to a `Response` or raising a `parafetch.Error`
/// subclass; a malformed URL or request raises at the call. Without room (`max_in_flight`
/// plus `backlog` requests pending) the request waits for it, in order, without blocking
/// the event loop; cancelled while it waits, it is never sent. Cancelling a future of a
/// request already sent drops its result: the request still completes inside. All futures
/// belong to the event loop of the first `fetch` (another loop may take over only while
/// nothing is pending).
///
/// `abort()` stops at once: every pending future gets a `parafetch.ShutDown` error (via
/// the event loop). Garbage collection of an open fetcher aborts too, without waiting.
/// `pending`: requests accepted and not yet resolved. See `parafetch.AsyncFetcher` for
/// `aclose()`, `async with` and `fetch_all`. In a process forked after it was made, its
/// methods raise RuntimeError: its loops are the parent's threads.
#[pyclass(frozen, subclass, name = "_AsyncFetcher", module = "parafetch._native")]
pub struct AsyncFetcher {
    core: Arc<Core>,
    kept: Kept,
    threads: usize,
    /// The process that made it: a forked child must not touch its loops (they are the
    /// parent's threads; nothing would ever resolve its futures).
    pid: u32,
}

impl AsyncFetcher {
    /// Binds the fetcher to `ev` if it is not bound to another loop with work pending.
    fn bind(&self, py: Python<'_>, ev: &Bound<'_, PyAny>) -> PyResult<()> {
        let busy = {
            let b = lock(&self.core.book);
            match &b.event_loop {
                Some(l) if ev.is(l) => return Ok(()),
                Some(l) if !b.is_idle() => Some(l.clone_ref(py)),
                _ => None,
            }
        };
        if let Some(old) = busy {
            if !old
                .call_method0(py, intern!(py, "is_closed"))?
                .is_truthy(py)?
            {
                return Err(PyRuntimeError::new_err(
                    "the AsyncFetcher is in use by another event loop",
                ));
            }
            // Its loop is closed: nobody can await what it left. Its requests still
            // running finish inside; their results find no entry.
            let dropped = {
                let mut b = lock(&self.core.book);
                (
                    std::mem::take(&mut b.table),
                    std::mem::take(&mut b.waiting),
                    std::mem::take(&mut b.idle),
                )
            };
            drop(dropped);
        }
        // Listen on `ev` first, then commit, unless another thread bound the fetcher
        // meanwhile (`listen` runs Python code, so the GIL may change hands): then take
        // the registration back and refuse, as for a loop with work pending.
        let before = lock(&self.core.mail).generation;
        let generation = before.wrapping_add(1);
        let wake = self.core.listen(py, ev, generation)?;
        let committed = {
            let mut b = lock(&self.core.book);
            let mut m = lock(&self.core.mail);
            if m.generation != before {
                Err(wake)
            } else {
                // A drain scheduled on the old loop may never run (a closed loop discards
                // its queue), and `scheduled` would then stay set for good: no later
                // result would wake anyone. Drains of the old generation become no-ops,
                // and results already here get a drain on this loop.
                m.generation = generation;
                m.scheduled = !m.results.is_empty();
                let again = m.scheduled.then(|| match &wake {
                    Wake::Bell { bell, .. } => Some(Arc::clone(bell)),
                    _ => None,
                });
                let old_wake = std::mem::replace(&mut m.wake, wake);
                let old_loop = b.event_loop.replace(ev.clone().unbind());
                Ok((old_wake, old_loop, again))
            }
        };
        match committed {
            Err(wake) => {
                if let Wake::Bell { ev, bell } = &wake {
                    unwatch(ev.bind(py), bell.fd());
                }
                drop(wake);
                Err(PyRuntimeError::new_err(
                    "the AsyncFetcher is in use by another event loop",
                ))
            }
            Ok((old_wake, old_loop, again)) => {
                // The old loop lets go of its bell (on its own thread if it runs on one).
                if let Wake::Bell { ev, bell } = &old_wake {
                    unwatch(ev.bind(py), bell.fd());
                }
                drop((old_wake, old_loop));
                if let Some(bell) = again {
                    self.core.wake(bell);
                }
                Ok(())
            }
        }
    }

    fn same_process(&self) -> PyResult<()> {
        if self.pid != crate::fetcher::current_pid() {
            return Err(forked_error("AsyncFetcher", self.pid));
        }
        Ok(())
    }

    fn open(&self, py: Python<'_>) -> PyResult<()> {
        self.same_process()?;
        if self.core.closed.load(SeqCst) {
            return Err(to_pyerr(py, &shut_down(), None));
        }
        Ok(())
    }

    /// Closes and refuses what waits; `abort` also makes the loops call back with
    /// ShutDown what they hold. With nothing pending no drain comes any more, so the
    /// event loop lets go of the bell here; otherwise the drain that resolves the last
    /// pending request does.
    fn stop(&self, py: Python<'_>, abort: bool) {
        self.core.closed.store(true, SeqCst);
        if abort {
            self.core.refuse_waiting();
            if let Some(h) = &lock(&self.core.book).handle {
                h.abort();
            }
        }
        if lock(&self.core.book).is_idle() {
            self.core.stop_listening(py);
        }
    }
}

#[pymethods]
impl AsyncFetcher {
    #[new]
    #[pyo3(signature = (max_in_flight=None, **options), text_signature = "(max_in_flight=10, **options)")]
    fn new(
        py: Python<'_>,
        max_in_flight: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<AsyncFetcher> {
        let n = match max_in_flight {
            Some(n) => options::positive("max_in_flight", n)?,
            None => 10,
        };
        let (builder, kept) =
            options::apply(parafetch::Fetcher::builder().max_in_flight(n), options)?;
        let builder = builder.backlog(kept.backlog.saturating_add(SLACK));
        let handle = py
            .detach(|| builder.spawn::<u64>())
            .map_err(|e| to_pyerr(py, &e, None))?;
        let threads = handle.threads();
        let core = Core {
            mail: Mutex::new(Mail {
                results: Vec::new(),
                scheduled: false,
                wake: Wake::Unbound,
                generation: 0,
            }),
            book: Mutex::new(Book {
                handle: Some(handle),
                table: HashMap::new(),
                waiting: VecDeque::new(),
                next_id: 0,
                idle: Vec::new(),
                event_loop: None,
            }),
            closed: AtomicBool::new(false),
            backlog: kept.backlog,
            pid: crate::fetcher::current_pid(),
        };
        Ok(AsyncFetcher {
            core: Arc::new(core),
            kept,
            threads,
            pid: crate::fetcher::current_pid(),
        })
    }

    /// Starts fetching `url` and returns an `asyncio.Future` of its `Response` (any
    /// status) or `parafetch.Error`. Raises at once, starting nothing, for a malformed
    /// URL (`InvalidUrl`), another scheme (`UnsupportedScheme`), a bad method or header
    /// (`InvalidRequest`), a closed fetcher (`ShutDown`), or outside a running event loop
    /// (RuntimeError).
    #[pyo3(signature = (
        url, *, method="GET", headers=None, data=None, connect_timeout=None,
        follow_redirects=None, max_redirects=None, max_body=None, retries=None,
        decompress=None, **timeout
    ))]
    #[allow(clippy::too_many_arguments)]
    fn fetch<'py>(
        &self,
        py: Python<'py>,
        url: &str,
        method: &str,
        headers: Option<&Bound<'py, PyAny>>,
        data: Option<&Bound<'py, PyAny>>,
        connect_timeout: Option<&Bound<'py, PyAny>>,
        follow_redirects: Option<bool>,
        max_redirects: Option<&Bound<'py, PyAny>>,
        max_body: Option<&Bound<'py, PyAny>>,
        retries: Option<&Bound<'py, PyAny>>,
        decompress: Option<bool>,
        timeout: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = options::timeout_kwarg("fetch", timeout)?;
        let timeout = timeout.as_ref().map(|t| t.as_ref());
        let args = RequestArgs {
            method,
            headers,
            data,
            timeout,
            connect_timeout,
            follow_redirects,
            max_redirects,
            max_body,
            retries,
            decompress,
        };
        let request = options::request(url, &args, self.kept)?;
        self.open(py)?;
        let ev = running_loop(py)?;
        self.bind(py, &ev)?;
        let future = ev.call_method0(intern!(py, "create_future"))?;
        let entry = Entry {
            future: future.clone().unbind(),
            url: url.to_owned(),
        };
        let (id, now) = {
            let mut b = lock(&self.core.book);
            let id = b.next_id;
            b.next_id += 1;
            (id, b.waiting.is_empty() && self.core.room(&b))
        };
        let w = Waiting { id, request, entry };
        if now {
            if let Err((entry, e)) = self.core.submit(py, w) {
                drop(entry);
                return Err(to_pyerr(py, &e, Some(url)));
            }
        } else {
            // Refused before any wait, as the handle would refuse it.
            options::check_url(url).map_err(|e| to_pyerr(py, &e, Some(url)))?;
            lock(&self.core.book).waiting.push_back(w);
        }
        Ok(future)
    }

    /// Stops at once: no new `fetch` (ShutDown), every pending future gets a
    /// `parafetch.ShutDown` error through the event loop (requests waiting for room are
    /// never sent; running ones are cut off), and the loops end on their own.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        self.same_process()?;
        self.stop(py, true);
        Ok(())
    }

    /// Refuses new `fetch` calls (ShutDown); what is pending goes on.
    fn _stop(&self, py: Python<'_>) -> PyResult<()> {
        self.same_process()?;
        self.stop(py, false);
        Ok(())
    }

    /// A future of the running loop resolved (None) once nothing is pending.
    fn _idle<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.same_process()?;
        let ev = running_loop(py)?;
        let future = ev.call_method0(intern!(py, "create_future"))?;
        if lock(&self.core.book).is_idle() {
            future.call_method1(intern!(py, "set_result"), (py.None(),))?;
            return Ok(future);
        }
        self.bind(py, &ev)?;
        lock(&self.core.book).idle.push(future.clone().unbind());
        Ok(future)
    }

    /// Closes, ends the loops on a thread of their own and returns a future of the
    /// running loop resolved (None) once they have ended. Pending requests are not
    /// waited for: await `_idle()` first.
    fn _shutdown<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.same_process()?;
        let ev = running_loop(py)?;
        let future = ev.call_method0(intern!(py, "create_future"))?;
        // What is still pending is not waited for here. A live event loop still gets its
        // results (the drain of the last lets go of the bell); a closed one can take
        // none, so they are dropped, here or as they come.
        self.stop(py, false);
        let bound = lock(&self.core.book)
            .event_loop
            .as_ref()
            .map(|l| l.clone_ref(py));
        if let Some(bound) = bound {
            if bound
                .call_method0(py, intern!(py, "is_closed"))?
                .is_truthy(py)?
            {
                self.core.stop_listening(py);
                let generation = lock(&self.core.mail).generation;
                self.core.undeliverable(generation);
            }
        }
        let handle = lock(&self.core.book).handle.take();
        let Some(handle) = handle else {
            future.call_method1(intern!(py, "set_result"), (py.None(),))?;
            return Ok(future);
        };
        let wake = ev.getattr(intern!(py, "call_soon_threadsafe"))?.unbind();
        let done = Py::new(
            py,
            Resolve {
                future: future.clone().unbind(),
            },
        )?;
        let (give, take) = mpsc::sync_channel::<Handle<u64>>(1);
        let spawned = thread::Builder::new()
            .name("parafetch-close".into())
            .spawn(move || {
                if let Ok(handle) = take.recv() {
                    // Our callbacks do not panic; if one did, there is nobody to tell.
                    let _ = panic::catch_unwind(AssertUnwindSafe(|| handle.shutdown()));
                    drop(handle);
                    // A closed event loop raises: nobody is waiting then.
                    let _ = Python::try_attach(move |py| {
                        let _ = wake.call1(py, (done,));
                    });
                }
            });
        let handle = match spawned {
            Ok(_) => match give.send(handle) {
                Ok(()) => return Ok(future),
                Err(mpsc::SendError(back)) => back,
            },
            Err(_) => handle,
        };
        // No thread to spare: here, GIL released (nothing is held, so it is quick).
        py.detach(move || drop(handle));
        future.call_method1(intern!(py, "set_result"), (py.None(),))?;
        Ok(future)
    }

    /// Changes the in-flight cap (at least 1), at once, from any thread; requests waiting
    /// for room are sent (by the event loop) if it rose.
    fn set_max_requests(&self, n: &Bound<'_, PyAny>) -> PyResult<()> {
        self.same_process()?;
        let n = options::positive("max_requests", n)?;
        if let Some(h) = &lock(&self.core.book).handle {
            h.set_max_in_flight(n);
        }
        // The drain sends what waits, on the event loop's thread (this may be another).
        self.core.post([]);
        Ok(())
    }

    /// The in-flight cap.
    #[getter]
    fn max_requests(&self) -> usize {
        lock(&self.core.book)
            .handle
            .as_ref()
            .map_or(0, |h| h.max_in_flight())
    }

    /// How many requests may be pending before `fetch` makes them wait:
    /// `max_in_flight + backlog`.
    #[getter]
    fn _room(&self) -> usize {
        self.max_requests().saturating_add(self.core.backlog)
    }

    /// Requests accepted and not yet resolved: running, or waiting for room (a cancelled
    /// one counts until its result arrived or it left the wait).
    #[getter]
    fn pending(&self) -> usize {
        let b = lock(&self.core.book);
        b.table.len() + b.waiting.len()
    }

    /// Whether `fetch` refuses (after `aclose`, `abort`, or leaving `async with`).
    #[getter]
    fn closed(&self) -> bool {
        self.core.closed.load(SeqCst)
    }

    /// How many loops (threads) fetch.
    #[getter]
    fn threads(&self) -> usize {
        self.threads
    }

    fn __repr__(&self) -> String {
        if self.core.closed.load(SeqCst) {
            return "<parafetch.AsyncFetcher closed>".to_owned();
        }
        format!(
            "<parafetch.AsyncFetcher max_requests={} pending={} threads={}>",
            self.max_requests(),
            self.pending(),
            self.threads
        )
    }
}

impl Drop for AsyncFetcher {
    /// Aborts without waiting: pending futures get ShutDown through the event loop (if it
    /// still runs), and the loops end on a thread of their own. During interpreter
    /// shutdown too: the loops then drop their results (no GIL to take). In a forked
    /// child it lets go of the parent's loops without touching them.
    fn drop(&mut self) {
        if self.pid != crate::fetcher::current_pid() {
            let mut b = lock(&self.core.book);
            std::mem::forget(b.handle.take());
            return;
        }
        let _ = Python::try_attach(|py| self.stop(py, true));
        self.core.closed.store(true, SeqCst);
        let handle = lock(&self.core.book).handle.take();
        if let Some(handle) = handle {
            handle.abort();
            drop_elsewhere(handle);
        }
    }
}
