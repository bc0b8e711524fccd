//! `parafetch.Fetcher`: the ParallelCurl API, with the callbacks run on the caller's
//! thread, over one of two drivers:
//!
//! - `threads=1` (the default): a caller-driven [`parafetch::Fetcher`] made by
//!   [`Builder::build_send`](parafetch::Builder::build_send), so it is `Send` and sits in a
//!   mutex. The thread that waits runs its loop (`poll`) with the GIL released; no thread
//!   hop, no channel.
//! - `threads>1`: a [`parafetch::Handle`] whose loops run on threads of their own; results
//!   come over a channel ([`receive`]).
//!
//! Owns the hand-over between the two sides. A request's Rust callback never touches
//! Python: it pushes `(id, result)` into a buffer (the caller-driven inbox, or the
//! channel). The request's Python objects (callback, cookie, URL) stay on this side, in a
//! table under that id. A thread that waits (`finish_all_requests`, or `start_request`
//! when there is no room) turns the loop or receives with the GIL released, one tick at a
//! time ([`TICK`]: Ctrl-C raises between ticks), then, holding the GIL, converts each
//! result and calls the Python callback. What crosses into `Python::detach` is `Send` (the
//! Rust fetcher behind its mutex, the receiver, the handle): no `unsafe`.
//!
//! Locks, in the only order they nest: the Rust fetcher's, then its inbox (its callbacks
//! push there during `poll`). The state's is never held while another is taken, nor
//! while Python runs or the GIL is released.
//!
//! Never parses options (options.rs) nor converts results (response.rs, errors.rs).
//!
//! Callbacks are called as `callback(result, url, cookie)`: `result` a `Response` or a
//! `parafetch.Error` instance (not raised), `url` the URL as given to `start_request`,
//! `cookie` the caller's object. The order is ParallelCurl's `(content, url, ch,
//! user_data)` without the curl handle, whose answers the `Response` carries.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use parafetch::{Done, Handle, IntoRequest, SendQueue, Sendable, SubmitError};
use pyo3::exceptions::{PyException, PyRuntimeError, PyTypeError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, intern};

use crate::errors::{ShutDown, error_value, to_pyerr};
use crate::options::{self, Kept, RequestArgs};
use crate::response::Response;

/// The longest a wait runs with the GIL released before checking for a signal (Ctrl-C):
/// only the main thread sees one, and it may be the thread that waits.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// At most this many results are taken per release of the GIL, so callbacks start soon.
const BATCH: usize = 256;

/// How often a submit refused for room looks again, yielding, before it waits on the
/// handle: room the Python side sees (a result called back) reaches the handle's count a
/// moment after the result itself, and the handle wakes waiters only in batches. Only the
/// handle's count is read meanwhile; the request is submitted once it moved.
const SPINS: usize = 64;

/// How often a waiting thread looks again while another thread is inside a callback and
/// the loop holds nothing (a thread's callback ending has no event to wait on).
const IDLE_LOOK: Duration = Duration::from_millis(2);

/// A finished request: its key (an id, or the URL) and its result.
pub(crate) type Finished<K> = (K, Result<parafetch::Response, parafetch::Error>);

/// A lock, even if a panic poisoned it: the values behind these stay valid between
/// statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The lock if it is free now, else `None` (never waits).
fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Waits up to [`TICK`] for a result on `rx`, GIL released, and takes those already
/// there with it (up to [`BATCH`]). Empty when none came.
pub(crate) fn receive<K: Send>(
    py: Python<'_>,
    rx: &Mutex<Receiver<Finished<K>>>,
    wait: Duration,
) -> Vec<Finished<K>> {
    py.detach(|| {
        // Not waiting: not for another thread that waits on the channel either.
        let rx = if wait.is_zero() {
            match rx.try_lock() {
                Ok(rx) => rx,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Vec::new(),
            }
        } else {
            lock(rx)
        };
        let mut got = Vec::new();
        if let Ok(first) = rx.recv_timeout(wait) {
            got.push(first);
            while got.len() < BATCH {
                match rx.try_recv() {
                    Ok(next) => got.push(next),
                    Err(_) => break,
                }
            }
        }
        got
    })
}

/// Writes `jar` to `path` as a Netscape cookie file, whole or not at all: into a new file
/// beside it (readable by its owner only), synced, then renamed over `path`. The new file
/// is made, never opened if it exists (`create_new`: no symlink followed, no file of
/// another mode or owner reused), under a name no other save uses at the same time.
fn write_cookie_file(path: &std::path::Path, jar: &parafetch::CookieJar) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::AtomicU64;
    static SAVES: AtomicU64 = AtomicU64::new(0);
    let (tmp, file) = {
        let mut tries = 0;
        loop {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            let n = SAVES.fetch_add(1, SeqCst);
            name.push(format!(".parafetch-{}-{n}.tmp", std::process::id()));
            let tmp = path.with_file_name(name);
            let mut open = std::fs::OpenOptions::new();
            open.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
            match open.open(&tmp) {
                Ok(file) => break (tmp, file),
                // Left by a process that died mid-save with our pid: take the next name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 16 => {
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    };
    let written = (|| {
        let mut w = std::io::BufWriter::new(file);
        jar.write_netscape(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        drop(w);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Submits to `handle`, waiting for room with the GIL released, in ticks (Ctrl-C raises
/// between them; the request is then dropped, never started). Inner `Err`: the handle
/// refused it (malformed, or shut down).
pub(crate) fn submit<C, F>(
    py: Python<'_>,
    handle: &Handle<C>,
    request: impl IntoRequest,
    callback: F,
    cookie: C,
) -> PyResult<Result<(), parafetch::Error>>
where
    C: Send + 'static,
    F: FnOnce(Done<C>, &mut SendQueue<C>) + Send + 'static,
{
    // At once, GIL held: the common case, and it never waits.
    let mut job = match handle.try_submit(request, callback, cookie) {
        Ok(()) => return Ok(Ok(())),
        Err(SubmitError::Full(r)) => *r,
        Err(e) => return Ok(Err(e.into_error())),
    };
    let mut spin = true;
    loop {
        let tried = py.detach(move || {
            let job = job;
            if spin {
                // Room comes back as the count drops: look at it, not at a re-parsed URL.
                let full = handle.pending();
                for _ in 0..SPINS {
                    if handle.pending() < full {
                        break;
                    }
                    thread::yield_now();
                }
            }
            handle.submit_timeout(job.request, job.callback, job.cookie, TICK)
        });
        spin = false;
        match tried {
            Ok(()) => return Ok(Ok(())),
            Err(SubmitError::Full(r)) => job = *r,
            Err(e) => return Ok(Err(e.into_error())),
        }
        py.check_signals()?;
    }
}

/// A caller-driven Rust fetcher: `Send`, so it may sit behind a mutex and turn with the
/// GIL released.
pub(crate) type Caller<C> = parafetch::Fetcher<C, Sendable>;

/// What `Fetcher(...)` and `fetch_all(...)` run on: one loop the caller drives
/// (`threads=1`; boxed, it is large), or loops on threads of their own.
pub(crate) enum Made<C: Send + 'static> {
    Caller(Box<Caller<C>>),
    Threads(Handle<C>),
}

/// Builds the Rust side for `Fetcher(...)` and `fetch_all(...)`: a caller-driven fetcher
/// for one loop, else a handle.
pub(crate) fn make<C: Send + 'static>(
    py: Python<'_>,
    max_in_flight: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Made<C>, Kept)> {
    let (builder, kept) = builder(max_in_flight, options)?;
    let made = if kept.one_loop {
        builder
            .try_build_send::<C>()
            .map(|f| Made::Caller(Box::new(f)))
    } else {
        py.detach(|| builder.spawn::<C>()).map(Made::Threads)
    };
    Ok((made.map_err(|e| to_pyerr(py, &e, None))?, kept))
}

/// Spawns the Rust handle (loops on threads of their own, whatever `threads` says), for
/// whoever needs one (an `AsyncFetcher`: results must come from another thread).
#[allow(dead_code)] // until async_fetcher.rs, its user, lands
pub(crate) fn spawn<C: Send + 'static>(
    py: Python<'_>,
    max_in_flight: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Handle<C>, Kept)> {
    let (builder, kept) = builder(max_in_flight, options)?;
    let handle = py
        .detach(|| builder.spawn::<C>())
        .map_err(|e| to_pyerr(py, &e, None))?;
    Ok((handle, kept))
}

fn builder(
    max_in_flight: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(parafetch::Builder, Kept)> {
    let n = match max_in_flight {
        Some(n) if !n.is_none() => options::positive("max_in_flight", n)?,
        _ => 10,
    };
    options::apply(parafetch::Fetcher::builder().max_in_flight(n), options)
}

/// Whether the interpreter is shutting down (or its state cannot be read: then assume
/// so). Nothing may wait for the network then, nor run a callback.
pub(crate) fn finalizing(py: Python<'_>) -> bool {
    py.import(intern!(py, "sys"))
        .and_then(|sys| sys.call_method0(intern!(py, "is_finalizing")))
        .and_then(|v| v.extract::<bool>())
        .unwrap_or(true)
}

/// The error of a fetcher used after `close()`, `abort()` or a `with` block.
pub(crate) fn closed_error() -> PyErr {
    ShutDown::new_err("the fetcher is closed: it takes no more requests")
}

/// This process's id as of the last `os.fork` (see [`install_fork_hook`]): checked on
/// every request, and an atomic load where `getpid` is a system call (a third of all the
/// system calls a keep-alive request made).
static CURRENT_PID: AtomicU32 = AtomicU32::new(0);

/// The id of this process, as Python last saw it fork. A fork made outside Python (by C
/// code, without `os.fork`'s hooks) goes unseen: a fetcher used in such a child is not
/// refused.
pub(crate) fn current_pid() -> u32 {
    match CURRENT_PID.load(SeqCst) {
        0 => std::process::id(),
        pid => pid,
    }
}

/// `os.register_at_fork`'s child hook: the child learns its id once.
#[pyfunction]
fn _after_fork_in_child() {
    CURRENT_PID.store(std::process::id(), SeqCst);
}

/// Records this process's id and registers [`_after_fork_in_child`] (module init).
pub(crate) fn install_fork_hook(m: &Bound<'_, PyModule>) -> PyResult<()> {
    CURRENT_PID.store(std::process::id(), SeqCst);
    let hook = wrap_pyfunction!(_after_fork_in_child, m)?;
    let kwargs = PyDict::new(m.py());
    kwargs.set_item("after_in_child", hook)?;
    m.py()
        .import("os")?
        .call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}

/// The error of a fetcher used in a process forked after it was made.
pub(crate) fn forked_error(what: &str, pid: u32) -> PyErr {
    PyRuntimeError::new_err(format!(
        "parafetch: this {what} was made in process {pid} and this is a forked child \
         ({}): its event loop and connections belong to the parent. Make a new one here.",
        std::process::id()
    ))
}

/// The Python side of one accepted request, until it is called back.
struct Entry {
    callback: Py<PyAny>,
    cookie: Py<PyAny>,
    url: String,
}

/// What the methods of one fetcher share. Locked only for short stretches of Rust code:
/// never while Python runs or the GIL is released.
#[derive(Default)]
struct State {
    /// Accepted and not yet called back, by id.
    table: HashMap<u64, Entry>,
    next_id: u64,
    /// Results taken from the Rust side, not yet called back: what a callback's own wait
    /// turned up, and what is left when a callback raised KeyboardInterrupt.
    ready: VecDeque<Finished<u64>>,
    /// The threads running one of this fetcher's callbacks now, once per callback.
    in_callback: Vec<ThreadId>,
    /// The first exception a callback raised, and how many more did.
    raised: Option<Py<pyo3::exceptions::PyBaseException>>,
    more_raised: usize,
}

/// The Rust side of a `Fetcher`.
enum Driver {
    /// `threads=1`: one loop, turned by the thread that waits.
    Caller {
        /// `None` once closed.
        rust: Mutex<Option<Box<Caller<u64>>>>,
        /// Where the requests' Rust callbacks put their results during `poll`.
        inbox: Arc<Mutex<Vec<Finished<u64>>>>,
        /// The in-flight cap, readable without the Rust fetcher's lock (a turn may hold
        /// it); applied to the Rust fetcher whenever it is locked.
        cap: AtomicUsize,
    },
    /// `threads>1`: loops on threads of their own.
    Threads {
        /// `None` only while the fetcher is dropped.
        handle: Option<Handle<u64>>,
        /// Cloned into every request's Rust callback.
        tx: Sender<Finished<u64>>,
        rx: Mutex<Receiver<Finished<u64>>>,
    },
}

/// Fetches many URLs at once, calling back on the caller's thread as each finishes:
/// `Fetcher(max_in_flight=10, **options)`, options under the Rust builder's names.
///
/// With `threads=1` (the default) the loop runs on the thread that waits, the GIL
/// released; with more, on threads of their own. `start_request(url, callback,
/// cookie=None, ...)` returns at once while fewer than `max_in_flight` (plus the `backlog`
/// option) requests are pending; otherwise it calls back finished ones until there is
/// room. `finish_all_requests()` calls back until every request has been, then raises the
/// first exception a callback raised, if any (every other request still completed); a
/// KeyboardInterrupt, SystemExit or other non-`Exception` from a callback stops the
/// callbacks and is raised at once instead (the rest stay pending). `poll(timeout=0.0)`
/// calls back what has finished so far, waiting up to `timeout` for one, for a caller
/// with other work between its requests. Callbacks run only inside those three calls, on
/// the thread that made them. With `cookies=True` (or `cookie_jar=PATH`, which starts the
/// jar from a Netscape cookie file), `cookies()` lists the jar and `save_cookies(path)`
/// writes it in that format. As a context manager, leaving
/// the block finishes all requests and closes it; leaving it with an exception (Ctrl-C
/// included) aborts instead: what is pending is called back at once with
/// `parafetch.ShutDown` errors, never fetched. `close()` finishes and closes; `abort()`
/// gives up. A fetcher that is garbage-collected or still open at exit is finished (at
/// exit, by an `atexit` hook); during interpreter shutdown its pending requests are
/// dropped, their callbacks never called.
///
/// A fetcher may be used from several threads; a callback then runs on whichever thread
/// is waiting when its request finishes. It may not be used in a forked child.
#[pyclass(frozen, weakref, module = "parafetch")]
pub struct Fetcher {
    driver: Driver,
    state: Mutex<State>,
    closed: AtomicBool,
    kept: Kept,
    /// The process that made it: a forked child must not touch its loops.
    pid: u32,
    /// In the registry of fetchers finished at exit.
    registered: AtomicBool,
}

/// The fetchers that took a request, weakly, for the `atexit` hook.
static OPEN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Registers the `atexit` hook that finishes the fetchers still open at exit (module
/// init).
pub(crate) fn register_atexit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let set = py.import("weakref")?.getattr("WeakSet")?.call0()?;
    let _ = OPEN.set(py, set.unbind());
    let hook = wrap_pyfunction!(finish_at_exit, m)?;
    py.import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}

/// The `atexit` hook: finishes every fetcher still open, as ParallelCurl's destructor
/// does (a module-level fetcher nobody finished, or one in a reference cycle). What a
/// callback raised goes to `sys.unraisablehook`; Ctrl-C aborts the rest and raises.
#[pyfunction]
fn finish_at_exit(py: Python<'_>) -> PyResult<()> {
    let Some(set) = OPEN.get(py) else {
        return Ok(());
    };
    let fetchers: Vec<Py<Fetcher>> = set
        .bind(py)
        .try_iter()?
        .filter_map(|f| f.ok()?.extract().ok())
        .collect();
    let mut interrupted = None;
    for f in &fetchers {
        let f = f.get();
        if f.pid != current_pid() || f.closed.load(SeqCst) {
            continue;
        }
        if interrupted.is_some() {
            f.abort_now(py, Then::Drop);
            continue;
        }
        let finished = f.shut_down(py, true);
        if let Err(e) = f.take_raised(py) {
            e.write_unraisable(py, None);
        }
        if let Err(e) = finished {
            f.abort_now(py, Then::Drop);
            interrupted = Some(e);
        }
    }
    interrupted.map_or(Ok(()), Err)
}

/// Whether `e` must stop the callbacks at once: not an `Exception` (KeyboardInterrupt,
/// SystemExit, GeneratorExit...).
fn stops(py: Python<'_>, e: &PyErr) -> bool {
    !e.is_instance_of::<PyException>(py)
}

impl Fetcher {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A copy of the default cookie jar (merged from the loops with `threads` > 1), if
    /// cookies are on.
    fn jar(&self, py: Python<'_>) -> Option<parafetch::CookieJar> {
        match &self.driver {
            Driver::Caller { rust, .. } => {
                py.detach(|| lock(rust).as_ref().and_then(|f| f.jar("").cloned()))
            }
            Driver::Threads { handle, .. } => match handle {
                Some(h) => py.detach(|| h.jar("")),
                None => None,
            },
        }
    }

    fn in_callback(&self) -> bool {
        let me = thread::current().id();
        self.state().in_callback.contains(&me)
    }

    fn not_from_callback(&self, what: &str) -> PyResult<()> {
        if self.in_callback() {
            return Err(PyRuntimeError::new_err(format!(
                "{what} cannot be called from a callback (it would wait for callbacks \
                 inside one); start_request, set_max_requests and abort can"
            )));
        }
        Ok(())
    }

    fn same_process(&self) -> PyResult<()> {
        if self.pid != current_pid() {
            return Err(forked_error("Fetcher", self.pid));
        }
        Ok(())
    }

    /// Usable: made in this process and not closed.
    fn open(&self) -> PyResult<()> {
        self.same_process()?;
        if self.closed.load(SeqCst) {
            return Err(closed_error());
        }
        Ok(())
    }

    fn max_in_flight(&self) -> usize {
        match &self.driver {
            Driver::Caller { cap, .. } => cap.load(SeqCst),
            Driver::Threads { handle, .. } => handle.as_ref().map_or(0, |h| h.max_in_flight()),
        }
    }

    /// How many requests may be pending before `start_request` waits.
    fn capacity(&self) -> usize {
        self.max_in_flight().saturating_add(self.kept.backlog)
    }

    /// Moves what the Rust side finished into `ready`, waiting up to `wait` (at most a
    /// tick) for it with the GIL released.
    fn wait_results(&self, py: Python<'_>, wait: Duration) {
        match &self.driver {
            Driver::Caller { rust, inbox, cap } => {
                py.detach(|| {
                    // Not waiting: not for another thread that turns the loop either.
                    let mut rust = if wait.is_zero() {
                        match rust.try_lock() {
                            Ok(rust) => rust,
                            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                            Err(std::sync::TryLockError::WouldBlock) => return,
                        }
                    } else {
                        lock(rust)
                    };
                    match rust.as_mut() {
                        Some(f) if f.pending() > 0 => {
                            sync_cap(f, cap);
                            f.poll(Some(wait));
                        }
                        _ if wait.is_zero() => {}
                        _ => {
                            // Nothing to turn for: only another thread's callback is
                            // running (its follow-ups may come). Look again soon.
                            drop(rust);
                            thread::sleep(IDLE_LOOK);
                        }
                    }
                });
                self.take_inbox(inbox);
            }
            Driver::Threads { rx, .. } => {
                let got = receive(py, rx, wait);
                self.state().ready.extend(got);
            }
        }
    }

    fn take_inbox(&self, inbox: &Mutex<Vec<Finished<u64>>>) {
        let mut st = self.state();
        let mut inbox = lock(inbox);
        st.ready.extend(inbox.drain(..));
    }

    /// Calls back the first ready result on this thread. `Ok(false)`: none was ready.
    /// `Err`: its callback raised a KeyboardInterrupt or another non-`Exception`, which
    /// stops the callbacks (an `Exception` is kept for `finish_all_requests`).
    fn deliver_one(&self, py: Python<'_>) -> PyResult<bool> {
        let me = thread::current().id();
        let (id, result, entry) = {
            let mut st = self.state();
            let Some((id, result)) = st.ready.pop_front() else {
                return Ok(false);
            };
            let entry = st.table.remove(&id);
            if entry.is_some() {
                st.in_callback.push(me);
            }
            (id, result, entry)
        };
        let _ = id;
        let Some(Entry {
            callback,
            cookie,
            url,
        }) = entry
        else {
            return Ok(true);
        };
        let value = match result {
            Ok(r) => match Response::from_rust(py, r).and_then(|r| Py::new(py, r)) {
                Ok(r) => r.into_any(),
                Err(e) => e.into_value(py).into_any(),
            },
            Err(e) => error_value(py, &e, Some(&url)),
        };
        let err = callback.call1(py, (value, url, cookie)).err();
        let stop = err.as_ref().is_some_and(|e| stops(py, e));
        // Python objects are dropped after the lock is let go: a drop may run Python code.
        let _extra = {
            let mut st = self.state();
            if let Some(i) = st.in_callback.iter().rposition(|t| *t == me) {
                st.in_callback.swap_remove(i);
            }
            match err {
                Some(e) if stop => Some(e),
                Some(e) if st.raised.is_none() => {
                    st.raised = Some(e.into_value(py));
                    None
                }
                Some(e) => {
                    st.more_raised += 1;
                    Some(e)
                }
                None => None,
            }
        };
        match _extra {
            Some(e) if stop => Err(e),
            _ => Ok(true),
        }
    }

    /// Calls back every ready result.
    fn deliver_ready(&self, py: Python<'_>) -> PyResult<()> {
        while self.deliver_one(py)? {}
        Ok(())
    }

    /// Waits for results and calls them back until `enough` holds. With `signals`, a
    /// pending signal (Ctrl-C) raises between ticks; what is pending stays pending.
    fn run_until(
        &self,
        py: Python<'_>,
        signals: bool,
        enough: impl Fn(&State) -> bool,
    ) -> PyResult<()> {
        loop {
            self.deliver_ready(py)?;
            if enough(&self.state()) {
                return Ok(());
            }
            self.wait_results(py, TICK);
            if signals {
                py.check_signals()?;
            }
        }
    }

    /// Idle: nothing pending, nothing ready, and no thread inside a callback (whose
    /// follow-ups would come after).
    fn run_until_idle(&self, py: Python<'_>, signals: bool) -> PyResult<()> {
        self.run_until(py, signals, |st| {
            st.table.is_empty() && st.ready.is_empty() && st.in_callback.is_empty()
        })
    }

    /// The first exception a callback raised since the last call, with a note counting
    /// the others.
    fn take_raised(&self, py: Python<'_>) -> PyResult<()> {
        let (err, more) = {
            let mut st = self.state();
            let err = st.raised.take();
            (err, std::mem::take(&mut st.more_raised))
        };
        let Some(err) = err else {
            return Ok(());
        };
        if more > 0 {
            // `add_note` is Python 3.11+; on older ones the count is lost, not the error.
            let note = format!("parafetch: {more} more callback(s) raised after this one");
            let _ = err.bind(py).call_method1("add_note", (note,));
        }
        Err(PyErr::from_value(err.into_bound(py).into_any()))
    }

    /// Ends the Rust side: the loop (threads) ends, pooled connections close. Waits only
    /// for what is still pending there (nothing, after `run_until_idle` or an abort).
    fn end(&self, py: Python<'_>) {
        match &self.driver {
            Driver::Caller { rust, inbox, .. } => {
                py.detach(|| {
                    let f = lock(rust).take();
                    drop(f);
                });
                self.take_inbox(inbox);
            }
            Driver::Threads { handle, rx, .. } => {
                if let Some(h) = handle {
                    py.detach(|| h.shutdown());
                }
                // A request another thread submitted as this one went idle.
                let got: Vec<_> = lock(rx).try_iter().collect();
                self.state().ready.extend(got);
            }
        }
    }

    /// Finishes every request and ends the loop; idempotent.
    fn shut_down(&self, py: Python<'_>, signals: bool) -> PyResult<()> {
        if self.closed.load(SeqCst) {
            return Ok(());
        }
        self.run_until_idle(py, signals)?;
        self.closed.store(true, SeqCst);
        self.end(py);
        // What a racing start_request added, finished by `end`.
        let mut last = Ok(());
        while let Err(e) = self.deliver_ready(py) {
            last = Err(e);
        }
        last
    }

    /// Gives up at once: the Rust side calls back every pending request with a ShutDown
    /// error, unfetched, and ends. Then `then` says what becomes of those errors in
    /// Python. Idempotent.
    fn abort_now(&self, py: Python<'_>, then: Then) {
        self.closed.store(true, SeqCst);
        match &self.driver {
            Driver::Caller { rust, .. } => py.detach(|| {
                if let Some(f) = lock(rust).as_mut() {
                    f.abort();
                }
            }),
            Driver::Threads { handle, .. } => {
                if let Some(h) = handle {
                    h.abort();
                }
            }
        }
        self.end(py);
        match then {
            Then::Deliver => loop {
                // Every one, even past a KeyboardInterrupt: this is the way out.
                match self.deliver_one(py) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => self.keep_raised(py, e),
                }
            },
            Then::Leave => {}
            Then::Drop => {
                let dropped = {
                    let mut st = self.state();
                    st.ready.clear();
                    std::mem::take(&mut st.table)
                };
                drop(dropped);
            }
        }
    }

    /// How to end after an abort: deliver the ShutDown errors now, unless this thread is
    /// in a callback (they wait for its caller) or the interpreter is shutting down (the
    /// callbacks are dropped uncalled).
    fn abort_mode(&self, py: Python<'_>) -> Then {
        if finalizing(py) {
            Then::Drop
        } else if self.in_callback() {
            Then::Leave
        } else {
            Then::Deliver
        }
    }

    /// Finishes every request where nobody can catch an exception (a drop, the garbage
    /// collector). Ctrl-C still interrupts the wait: the rest is aborted (called back
    /// with ShutDown errors) and the KeyboardInterrupt reported to
    /// `sys.unraisablehook`, as any exception in a destructor is; so is a
    /// KeyboardInterrupt or SystemExit from a callback, the rest aborted too.
    fn finish_unattended(&self, py: Python<'_>) {
        if let Err(e) = self.shut_down(py, true) {
            self.abort_now(py, self.abort_mode(py));
            e.write_unraisable(py, None);
        }
    }

    fn keep_raised(&self, py: Python<'_>, e: PyErr) {
        let mut st = self.state();
        if st.raised.is_none() {
            st.raised = Some(e.into_value(py));
        } else {
            st.more_raised += 1;
        }
    }

    /// Adds this fetcher to the ones finished at exit (once).
    fn register(slf: &Bound<'_, Self>) {
        if slf.get().registered.swap(true, SeqCst) {
            return;
        }
        if let Some(set) = OPEN.get(slf.py()) {
            let _ = set.bind(slf.py()).call_method1("add", (slf,));
        }
    }

    /// Hands `request` to the caller-driven Rust fetcher. At once (GIL held) when its
    /// lock is free and it has room, so its `start_request` never runs the loop;
    /// otherwise, GIL released, turning the loop in ticks until it has room (results then
    /// wait in the inbox: this may be a callback, which must not call back others).
    fn accept_caller(
        &self,
        py: Python<'_>,
        request: parafetch::Request,
        id: u64,
    ) -> PyResult<Result<(), parafetch::Error>> {
        let Driver::Caller { rust, inbox, cap } = &self.driver else {
            unreachable!("accept_caller on a threaded fetcher")
        };
        let backlog = self.kept.backlog;
        let sink = Arc::clone(inbox);
        let on_done = move |done: Done<u64>, _: &mut SendQueue<u64>| {
            lock(&sink).push((done.cookie, done.result));
        };
        if let Some(mut guard) = try_lock(rust) {
            let Some(f) = guard.as_mut() else {
                return Err(closed_error());
            };
            sync_cap(f, cap);
            if f.pending() < f.max_in_flight().saturating_add(backlog) {
                return Ok(f.start_request(request, on_done, id));
            }
        }
        let mut job = Some((request, on_done));
        loop {
            let done = py.detach(|| {
                let mut guard = lock(rust);
                let f = guard.as_mut()?;
                sync_cap(f, cap);
                if f.pending() >= f.max_in_flight().saturating_add(backlog) {
                    f.poll(Some(TICK));
                }
                if f.pending() < f.max_in_flight().saturating_add(backlog) {
                    let (request, on_done) = job.take()?;
                    return Some(Some(f.start_request(request, on_done, id)));
                }
                Some(None)
            });
            self.take_inbox(inbox);
            match done {
                None => return Err(closed_error()),
                Some(Some(started)) => return Ok(started),
                Some(None) => py.check_signals()?,
            }
        }
    }
}

/// What becomes of the ShutDown errors an abort produced.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Called back now, on this thread.
    Deliver,
    /// Left ready, for the thread whose callback aborted.
    Leave,
    /// Dropped, their callbacks never called (interpreter shutdown).
    Drop,
}

/// Applies the cap a `set_max_requests` stored.
fn sync_cap(f: &mut Caller<u64>, cap: &AtomicUsize) {
    let n = cap.load(SeqCst);
    if f.max_in_flight() != n {
        f.set_max_in_flight(n);
    }
}

#[pymethods]
impl Fetcher {
    #[new]
    #[pyo3(signature = (max_in_flight=None, **options), text_signature = "(max_in_flight=10, **options)")]
    fn new(
        py: Python<'_>,
        max_in_flight: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Fetcher> {
        let (made, kept) = make(py, max_in_flight, options)?;
        let driver = match made {
            Made::Caller(f) => Driver::Caller {
                cap: AtomicUsize::new(f.max_in_flight()),
                rust: Mutex::new(Some(f)),
                inbox: Arc::default(),
            },
            Made::Threads(handle) => {
                let (tx, rx) = mpsc::channel();
                Driver::Threads {
                    handle: Some(handle),
                    tx,
                    rx: Mutex::new(rx),
                }
            }
        };
        Ok(Fetcher {
            driver,
            state: Mutex::default(),
            closed: AtomicBool::new(false),
            kept,
            pid: current_pid(),
            registered: AtomicBool::new(false),
        })
    }

    /// Starts fetching `url`; `callback(result, url, cookie)` is called exactly once with
    /// a `Response` or a `parafetch.Error`. Raises at once (nothing started, no callback)
    /// for a malformed URL (`InvalidUrl`), another scheme (`UnsupportedScheme`) or a bad
    /// method or header (`InvalidRequest`); `parafetch.ShutDown` once closed. Without room
    /// it first calls back finished requests until there is; from inside a callback it
    /// calls none back, and waits (GIL released) only if the loop holds all it may.
    /// `timeout` (seconds) bounds this request; `timeout=None` means no timeout at all;
    /// not given, the fetcher's applies. The other keywords likewise override the
    /// fetcher's options for this request.
    #[pyo3(signature = (
        url, callback, cookie=None, *, method="GET", headers=None, data=None,
        connect_timeout=None, follow_redirects=None, max_redirects=None, max_body=None,
        retries=None, decompress=None, **timeout
    ))]
    #[allow(clippy::too_many_arguments)]
    fn start_request(
        slf: &Bound<'_, Self>,
        url: &str,
        callback: Py<PyAny>,
        cookie: Option<Py<PyAny>>,
        method: &str,
        headers: Option<&Bound<'_, PyAny>>,
        data: Option<&Bound<'_, PyAny>>,
        connect_timeout: Option<&Bound<'_, PyAny>>,
        follow_redirects: Option<bool>,
        max_redirects: Option<&Bound<'_, PyAny>>,
        max_body: Option<&Bound<'_, PyAny>>,
        retries: Option<&Bound<'_, PyAny>>,
        decompress: Option<bool>,
        timeout: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !callback.bind(py).is_callable() {
            return Err(PyTypeError::new_err("callback must be callable"));
        }
        let timeout = options::timeout_kwarg("start_request", timeout)?;
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
        let request = options::request(url, &args, this.kept)?;
        this.open()?;
        let cookie = cookie.unwrap_or_else(|| py.None());
        let in_callback = this.in_callback();
        if in_callback || this.state().table.len() >= this.capacity() {
            // It may wait: refused before, as the Rust side would refuse it after.
            options::check_url(url).map_err(|e| to_pyerr(py, &e, Some(url)))?;
        }
        if !in_callback {
            // Pending counts until the Python callback ran, not until the loop let go.
            let room = |st: &State| st.table.len() < this.capacity();
            if !room(&this.state()) {
                this.run_until(py, true, room)?;
                this.open()?;
            }
        }
        Fetcher::register(slf);
        let id = {
            let mut st = this.state();
            let id = st.next_id;
            st.next_id += 1;
            let url = url.to_owned();
            let entry = Entry {
                callback,
                cookie,
                url,
            };
            st.table.insert(id, entry);
            id
        };
        let started = match &this.driver {
            Driver::Caller { .. } => this.accept_caller(py, request, id),
            Driver::Threads { handle, tx, .. } => {
                let tx = tx.clone();
                let on_done = move |done: Done<u64>, _: &mut SendQueue<u64>| {
                    // The receiver lives as long as the fetcher; after it, nobody waits.
                    let _ = tx.send((done.cookie, done.result));
                };
                match handle {
                    Some(h) => submit(py, h, request, on_done, id),
                    None => Err(closed_error()),
                }
            }
        };
        let err = match started {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if e.kind() == parafetch::ErrorKind::ShutDown => closed_error(),
            Ok(Err(e)) => to_pyerr(py, &e, Some(url)),
            Err(e) => e,
        };
        let entry = this.state().table.remove(&id);
        drop(entry);
        Err(err)
    }

    /// Calls back finished requests until every request, and every follow-up its
    /// callbacks started, has been called back (and no other thread is inside one of its
    /// callbacks). Then raises the first exception a callback raised since the last call,
    /// if any (Python 3.11+ notes how many more did). A KeyboardInterrupt, SystemExit or
    /// other non-`Exception` a callback raises is raised at once, the rest left pending.
    /// Ctrl-C interrupts the wait; what is pending stays pending.
    fn finish_all_requests(&self, py: Python<'_>) -> PyResult<()> {
        self.not_from_callback("finish_all_requests")?;
        self.open()?;
        self.run_until_idle(py, true)?;
        self.take_raised(py)
    }

    /// Calls back the requests that have finished, on this thread, and returns how many.
    /// If none has, waits up to `timeout` seconds (0: not at all, not even for another
    /// thread using this fetcher; None: as long as it takes) for one to finish, and calls
    /// back what finished by then; it returns 0 at once when nothing is pending. Then raises the first exception a callback raised since the
    /// last call, as `finish_all_requests` does. For a caller that does other work between
    /// its requests (curl_multi's `perform`); Ctrl-C interrupts the wait.
    #[pyo3(signature = (timeout=0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<usize> {
        self.not_from_callback("poll")?;
        self.open()?;
        let timeout = match timeout {
            Some(t) => Some(Duration::try_from_secs_f64(t).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(
                    "poll: timeout must be a number of seconds, 0 or more, or None",
                )
            })?),
            None => None,
        };
        // A timeout past what an Instant can hold is as long as it takes.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut called = 0;
        let mut looked = false;
        loop {
            while self.deliver_one(py)? {
                called += 1;
            }
            if called > 0 {
                break;
            }
            if self.state().table.is_empty() {
                // Nothing pending: nothing to wait for (not even another thread's callback,
                // which may be waiting for this thread).
                break;
            }
            // At least one look, even with no time to wait: with `threads=1` the loop
            // runs only inside these calls.
            let wait = match deadline {
                None => TICK,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() && looked {
                        break;
                    }
                    left.min(TICK)
                }
            };
            looked = true;
            self.wait_results(py, wait);
            py.check_signals()?;
        }
        self.take_raised(py)?;
        Ok(called)
    }

    /// Finishes all requests as `finish_all_requests` does (raising what a callback
    /// raised), then closes the fetcher: its loop ends and its pooled connections close
    /// at once, and any later `start_request` raises `parafetch.ShutDown`. Closing twice
    /// does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.not_from_callback("close")?;
        self.same_process()?;
        self.shut_down(py, true)?;
        self.take_raised(py)
    }

    /// Gives up at once: every pending request is called back with a `parafetch.ShutDown`
    /// error instead of being fetched (its connection closed), and the fetcher is closed.
    /// Then raises what a callback raised, as `close` does. From a callback, the others
    /// are called back once that callback's caller goes on waiting.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        self.same_process()?;
        let then = self.abort_mode(py);
        self.abort_now(py, then);
        if then == Then::Leave {
            return Ok(());
        }
        self.take_raised(py)
    }

    /// Changes the in-flight cap (at least 1), at once, from a callback too. A lowered
    /// cap never interrupts running requests.
    fn set_max_requests(&self, n: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = options::positive("max_requests", n)?;
        self.same_process()?;
        match &self.driver {
            Driver::Caller { rust, cap, .. } => {
                cap.store(n, SeqCst);
                // Now if it is free; else the thread turning the loop applies it.
                if let Some(mut f) = try_lock(rust)
                    && let Some(f) = f.as_mut()
                {
                    sync_cap(f, cap);
                }
            }
            Driver::Threads { handle, .. } => {
                if let Some(h) = handle {
                    h.set_max_in_flight(n);
                }
            }
        }
        Ok(())
    }

    /// The in-flight cap.
    #[getter]
    fn max_requests(&self) -> usize {
        self.max_in_flight()
    }

    /// Requests accepted and not yet called back (0 after `finish_all_requests`, and
    /// after `close()` or a `with` block).
    #[getter]
    fn pending(&self) -> PyResult<usize> {
        self.same_process()?;
        Ok(self.state().table.len())
    }

    /// How many loops fetch (1: on the thread that waits; more: threads of their own).
    #[getter]
    fn threads(&self) -> usize {
        match &self.driver {
            Driver::Caller { .. } => 1,
            Driver::Threads { handle, .. } => handle.as_ref().map_or(0, |h| h.threads()),
        }
    }

    /// Whether the fetcher is closed (by `close`, `abort` or a `with` block).
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// A copy of the default cookie jar (option `cookies=True`) as `(domain, path,
    /// name, value)` tuples, or `[]` without one. Not from a callback, and not while
    /// another thread waits on a `threads=1` fetcher (it would wait for that thread).
    fn cookies<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.not_from_callback("cookies")?;
        self.open()?;
        let Some(jar) = self.jar(py) else {
            return Ok(Vec::new());
        };
        jar.cookies()
            .map(|c| PyTuple::new(py, [c.domain, c.path, c.name, c.value]))
            .collect()
    }

    /// Writes the cookie jar to `path` as a Netscape cookie file (what the `cookie_jar`
    /// option and curl's `-b` read), replacing the file whole: written beside it, then
    /// renamed over it. Session cookies are written too (expiry 0), as curl does. Returns
    /// how many cookies were written (0, and a file of the format's header only, without
    /// `cookies`). Cookies
    /// are secrets: the file is made readable by its owner only.
    fn save_cookies(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<usize> {
        self.not_from_callback("save_cookies")?;
        self.open()?;
        let jar = self.jar(py).unwrap_or_default();
        py.detach(|| write_cookie_file(&path, &jar)).map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!(
                "save_cookies: cannot write {}: {e}",
                path.display()
            ))
        })?;
        Ok(jar.len())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Without an exception: closes, finishing all requests (and raising what a callback
    /// raised). With one (Ctrl-C included): aborts, calling back what is pending with
    /// `parafetch.ShutDown` errors, unfetched; what a callback raised then goes to
    /// `sys.unraisablehook`, and the block's exception goes on. Never swallows it.
    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.same_process()?;
        if exc_type.is_none_or(|t| t.is_none()) {
            self.close(py)?;
            return Ok(false);
        }
        self.abort_now(py, self.abort_mode(py));
        if let Err(e) = self.take_raised(py) {
            e.write_unraisable(py, None);
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        if self.closed.load(SeqCst) {
            return "<parafetch.Fetcher closed>".to_owned();
        }
        format!(
            "<parafetch.Fetcher max_requests={} pending={} threads={}>",
            self.max_in_flight(),
            self.state().table.len(),
            self.threads()
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Not visiting (the lock is taken) only keeps objects alive longer: safe.
        if let Some(st) = try_lock(&self.state) {
            for e in st.table.values() {
                visit.call(&e.callback)?;
                visit.call(&e.cookie)?;
            }
            if let Some(r) = &st.raised {
                visit.call(r)?;
            }
        }
        Ok(())
    }

    /// The finalizer, installed as `__del__` by [`install_finalizer`]: the garbage
    /// collector calls it on a fetcher in a reference cycle (a callback that closes over
    /// its fetcher) before it clears anything in the cycle, so the callbacks still find
    /// what they refer to. Finishes what is pending, as dropping it would.
    fn _finalize(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let this = slf.get();
        if this.pid != current_pid() || this.closed.load(SeqCst) || this.in_callback() {
            return;
        }
        // Put aside an exception on its way: the calls below would clobber it.
        let pending = PyErr::take(py);
        if finalizing(py) {
            this.abort_now(py, Then::Drop);
        } else {
            this.finish_unattended(py);
        }
        if let Err(e) = this.take_raised(py) {
            e.write_unraisable(py, Some(slf.as_any()));
        }
        if let Some(e) = pending {
            e.restore(py);
        }
    }

    /// Breaks a reference cycle: lets go of the callbacks and cookies (the finalizer has
    /// called them back already, unless the fetcher is being torn down).
    fn __clear__(&self) {
        let (table, raised) = {
            let mut st = self.state();
            st.ready.clear();
            (std::mem::take(&mut st.table), st.raised.take())
        };
        drop((table, raised));
    }
}

/// Makes `Fetcher._finalize` the class's `__del__` (PyO3 has no `__del__`): CPython then
/// gives the type a `tp_finalize`, which the garbage collector calls on objects in a
/// cycle before it clears any of them (PEP 442). A plain drop goes through `Drop`.
pub(crate) fn install_finalizer(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let class = m.getattr("Fetcher")?;
    class.setattr("__del__", class.getattr("_finalize")?)
}

impl Drop for Fetcher {
    /// Finishes every pending request, as ParallelCurl's destructor does, on whatever
    /// thread drops it (the GIL released while it waits; Ctrl-C aborts the rest), then
    /// ends the loop; what a callback raised goes to `sys.unraisablehook`. During interpreter shutdown it aborts
    /// instead, calling nothing back. In a forked child it lets go of the parent's loop
    /// without touching it.
    fn drop(&mut self) {
        if self.pid != current_pid() {
            match &mut self.driver {
                Driver::Caller { rust, .. } => {
                    let rust = rust.get_mut().unwrap_or_else(|p| p.into_inner());
                    std::mem::forget(rust.take());
                }
                Driver::Threads { handle, .. } => std::mem::forget(handle.take()),
            }
            return;
        }
        let attached = Python::try_attach(|py| {
            // Dropped while an exception is on its way (the one that dropped this
            // fetcher, say): put it aside, or the Python calls below would clobber it.
            let pending = PyErr::take(py);
            if finalizing(py) {
                self.abort_now(py, Then::Drop);
            } else {
                // No exception can propagate from here: a signal is left for later.
                self.finish_unattended(py);
                if let Err(e) = self.take_raised(py) {
                    e.write_unraisable(py, None);
                }
            }
            if let Some(e) = pending {
                e.restore(py);
            }
        });
        if attached.is_none() {
            // No interpreter to call back into: give up without waiting.
            match &mut self.driver {
                Driver::Caller { rust, .. } => {
                    let rust = rust.get_mut().unwrap_or_else(|p| p.into_inner());
                    if let Some(mut f) = rust.take() {
                        f.abort();
                    }
                }
                Driver::Threads { handle, .. } => {
                    if let Some(h) = handle.take() {
                        h.abort();
                    }
                }
            }
        }
    }
}
