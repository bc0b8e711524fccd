//! `parafetch.Fetcher`: the ParallelCurl API over a [`parafetch::Handle`] whose loops run
//! on threads of their own, with the callbacks run on the caller's thread.
//!
//! Owns the hand-over between the two sides. A request's Rust callback runs on a loop
//! thread and never touches Python: it sends `(id, result)` over a channel. The request's
//! Python objects (callback, cookie, URL) stay on this side, in a table under that id. A
//! thread that waits (`finish_all_requests`, or `start_request` when there is no room)
//! receives with the GIL released ([`receive`]), then, holding it, converts each result
//! and calls the Python callback. Waits are cut into ticks so Ctrl-C interrupts them.
//! What crosses into `Python::detach` is `Send` (the receiver behind its mutex, the
//! handle): no `unsafe`. An `AsyncFetcher` can share the design: results come out of the
//! loops as plain Rust values, whoever consumes them.
//!
//! Never parses options (options.rs) nor converts results (response.rs, errors.rs).
//!
//! Callbacks are called as `callback(result, url, cookie)`: `result` a `Response` or a
//! `parafetch.Error` instance (not raised), `url` the URL as given to `start_request`,
//! `cookie` the caller's object. The order is ParallelCurl's `(content, url, ch,
//! user_data)` without the curl handle, whose answers the `Response` carries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, ThreadId};
use std::time::Duration;

use parafetch::{Done, Handle, IntoRequest, SendQueue, SubmitError};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{error_value, to_pyerr};
use crate::options::{self, Kept, RequestArgs};
use crate::response::Response;

/// The longest a wait runs with the GIL released before checking for a signal (Ctrl-C):
/// only the main thread sees one, and it may be the thread that waits.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// At most this many results are taken per release of the GIL, so callbacks start soon.
const BATCH: usize = 256;

/// How often a submit refused for room is retried, yielding, before it waits on the
/// handle: room the Python side sees (a result called back) reaches the handle's count
/// a moment after the result itself, and the handle wakes waiters only in batches.
const SPINS: usize = 64;

/// A finished request: its key (an id, or the URL) and its result.
pub(crate) type Finished<K> = (K, Result<parafetch::Response, parafetch::Error>);

/// A lock, even if a panic poisoned it: the values behind these stay valid between
/// statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits up to [`TICK`] for a result on `rx`, GIL released, and takes those already
/// there with it (up to [`BATCH`]). Empty when none came.
pub(crate) fn receive<K: Send>(
    py: Python<'_>,
    rx: &Mutex<Receiver<Finished<K>>>,
) -> Vec<Finished<K>> {
    py.detach(|| {
        let rx = lock(rx);
        let mut got = Vec::new();
        if let Ok(first) = rx.recv_timeout(TICK) {
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
            let mut job = job;
            for _ in 0..if spin { SPINS } else { 0 } {
                thread::yield_now();
                match handle.try_submit(job.request, job.callback, job.cookie) {
                    Err(SubmitError::Full(r)) => job = *r,
                    other => return other,
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
    /// The threads running one of this fetcher's callbacks now, once per callback.
    in_callback: Vec<ThreadId>,
    /// The first exception a callback raised, and how many more did.
    raised: Option<PyErr>,
    more_raised: usize,
}

/// Fetches many URLs at once, calling back on the caller's thread as each finishes:
/// `Fetcher(max_in_flight=10, **options)`, options under the Rust builder's names.
///
/// The fetching runs on loops of its own (`threads`, default 1). `start_request(url,
/// callback, cookie=None, ...)` returns at once while fewer than `max_in_flight` (plus
/// the `backlog` option) requests are pending; otherwise it calls back finished ones
/// until there is room. `finish_all_requests()` calls back until every request has been,
/// then raises the first exception a callback raised, if any (every other request still
/// completed). Callbacks run only inside those two calls, on the thread that made them;
/// the GIL is released while they wait. As a context manager, leaving the block finishes
/// all requests and closes it; so does `close()`, and so does garbage collection, on
/// whatever thread it runs (the remaining callbacks then run there).
///
/// A fetcher may be used from several threads; a callback then runs on whichever thread
/// is waiting when its request finishes.
#[pyclass(frozen, module = "parafetch")]
pub struct Fetcher {
    handle: Handle<u64>,
    /// Cloned into every request's Rust callback.
    tx: Sender<Finished<u64>>,
    rx: Mutex<Receiver<Finished<u64>>>,
    state: Mutex<State>,
    closed: AtomicBool,
    kept: Kept,
}

/// Spawns the Rust handle for `Fetcher(...)` and `fetch_all(...)`.
pub(crate) fn spawn<C: Send + 'static>(
    py: Python<'_>,
    max_in_flight: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Handle<C>, Kept)> {
    let n = match max_in_flight {
        Some(n) => options::positive("max_in_flight", n)?,
        None => 10,
    };
    let (builder, kept) = options::apply(parafetch::Fetcher::builder().max_in_flight(n), options)?;
    let handle = py
        .detach(|| builder.spawn::<C>())
        .map_err(|e| to_pyerr(py, &e, None))?;
    Ok((handle, kept))
}

impl Fetcher {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn in_callback(&self) -> bool {
        let me = thread::current().id();
        self.state().in_callback.contains(&me)
    }

    fn not_from_callback(&self, what: &str) -> PyResult<()> {
        if self.in_callback() {
            return Err(PyRuntimeError::new_err(format!(
                "{what} cannot be called from a callback (it would wait for callbacks \
                 inside one); start_request and set_max_requests can"
            )));
        }
        Ok(())
    }

    fn open(&self) -> PyResult<()> {
        if self.closed.load(SeqCst) {
            return Err(PyRuntimeError::new_err("the fetcher is closed"));
        }
        Ok(())
    }

    /// Calls back the request a result belongs to, on this thread.
    fn deliver(&self, py: Python<'_>, (id, result): Finished<u64>) {
        let me = thread::current().id();
        let entry = {
            let mut st = self.state();
            let entry = st.table.remove(&id);
            if entry.is_some() {
                st.in_callback.push(me);
            }
            entry
        };
        let Some(Entry {
            callback,
            cookie,
            url,
        }) = entry
        else {
            return;
        };
        let value = match result {
            Ok(r) => match Response::from_rust(py, r).and_then(|r| Py::new(py, r)) {
                Ok(r) => r.into_any(),
                Err(e) => e.into_value(py).into_any(),
            },
            Err(e) => error_value(py, &e, Some(&url)),
        };
        let err = callback.call1(py, (value, url, cookie)).err();
        // Python objects are dropped after the lock is let go: a drop may run Python code.
        let _extra = {
            let mut st = self.state();
            if let Some(i) = st.in_callback.iter().rposition(|t| *t == me) {
                st.in_callback.swap_remove(i);
            }
            match err {
                Some(e) if st.raised.is_none() => {
                    st.raised = Some(e);
                    None
                }
                Some(e) => {
                    st.more_raised += 1;
                    Some(e)
                }
                None => None,
            }
        };
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
            if enough(&self.state()) {
                return Ok(());
            }
            for finished in receive(py, &self.rx) {
                self.deliver(py, finished);
            }
            if signals {
                py.check_signals()?;
            }
        }
    }

    fn run_until_idle(&self, py: Python<'_>, signals: bool) -> PyResult<()> {
        self.run_until(py, signals, |st| st.table.is_empty())
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
            let _ = err.value(py).call_method1("add_note", (note,));
        }
        Err(err)
    }

    /// Finishes every request and ends the loops (their sockets close); idempotent.
    fn shut_down(&self, py: Python<'_>, signals: bool) -> PyResult<()> {
        if !self.closed.load(SeqCst) {
            self.run_until_idle(py, signals)?;
            let handle = &self.handle;
            py.detach(|| handle.shutdown());
            self.closed.store(true, SeqCst);
        }
        Ok(())
    }
}

#[pymethods]
impl Fetcher {
    #[new]
    #[pyo3(signature = (max_in_flight=None, **options))]
    fn new(
        py: Python<'_>,
        max_in_flight: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Fetcher> {
        let (handle, kept) = spawn(py, max_in_flight, options)?;
        let (tx, rx) = mpsc::channel();
        Ok(Fetcher {
            handle,
            tx,
            rx: Mutex::new(rx),
            state: Mutex::default(),
            closed: AtomicBool::new(false),
            kept,
        })
    }

    /// Starts fetching `url`; `callback(result, url, cookie)` is called exactly once with
    /// a `Response` or a `parafetch.Error`. Raises at once (nothing started, no callback)
    /// for a malformed URL (`InvalidUrl`), another scheme (`UnsupportedScheme`) or a bad
    /// method or header (`InvalidRequest`). Without room it first calls back finished
    /// requests until there is; from inside a callback it calls none back, and waits (GIL
    /// released) only if the loops hold all they may.
    #[pyo3(signature = (
        url, callback, cookie=None, *, method="GET", headers=None, data=None, timeout=None,
        connect_timeout=None, follow_redirects=None, max_redirects=None, max_body=None,
        retries=None, decompress=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn start_request(
        &self,
        py: Python<'_>,
        url: &str,
        callback: Py<PyAny>,
        cookie: Option<Py<PyAny>>,
        method: &str,
        headers: Option<&Bound<'_, PyAny>>,
        data: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        connect_timeout: Option<&Bound<'_, PyAny>>,
        follow_redirects: Option<bool>,
        max_redirects: Option<&Bound<'_, PyAny>>,
        max_body: Option<&Bound<'_, PyAny>>,
        retries: Option<&Bound<'_, PyAny>>,
        decompress: Option<bool>,
    ) -> PyResult<()> {
        if !callback.bind(py).is_callable() {
            return Err(PyTypeError::new_err("callback must be callable"));
        }
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
        self.open()?;
        let cookie = cookie.unwrap_or_else(|| py.None());
        if !self.in_callback() {
            // Pending counts until the Python callback ran, not until the loop let go.
            let backlog = self.kept.backlog;
            let room =
                |st: &State| st.table.len() < self.handle.max_in_flight().saturating_add(backlog);
            if !room(&self.state()) {
                // Refused before any wait, as the handle would refuse it.
                options::check_url(url).map_err(|e| to_pyerr(py, &e, Some(url)))?;
                self.run_until(py, true, room)?;
            }
        }
        let id = {
            let mut st = self.state();
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
        let tx = self.tx.clone();
        let on_done = move |done: Done<u64>, _: &mut SendQueue<u64>| {
            // The receiver lives as long as the fetcher; after it, nobody is waiting.
            let _ = tx.send((done.cookie, done.result));
        };
        let err = match submit(py, &self.handle, request, on_done, id) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if e.kind() == parafetch::ErrorKind::ShutDown => {
                PyRuntimeError::new_err("the fetcher is closed")
            }
            Ok(Err(e)) => to_pyerr(py, &e, Some(url)),
            Err(e) => e,
        };
        let entry = self.state().table.remove(&id);
        drop(entry);
        Err(err)
    }

    /// Calls back finished requests until every request, and every follow-up its
    /// callbacks started, has been called back. Then raises the first exception a
    /// callback raised since the last call, if any (Python 3.11+ notes how many more did).
    /// Ctrl-C interrupts the wait; what is pending stays pending.
    fn finish_all_requests(&self, py: Python<'_>) -> PyResult<()> {
        self.not_from_callback("finish_all_requests")?;
        self.open()?;
        self.run_until_idle(py, true)?;
        self.take_raised(py)
    }

    /// Finishes all requests as `finish_all_requests` does (raising what a callback
    /// raised), then closes the fetcher: its loop threads end and their pooled
    /// connections close at once, and any later call raises RuntimeError. Leaving a
    /// `with` block closes. Closing twice does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.not_from_callback("close")?;
        self.shut_down(py, true)?;
        self.take_raised(py)
    }

    /// Changes the in-flight cap (at least 1), at once, from a callback too. A lowered
    /// cap never interrupts running requests.
    fn set_max_requests(&self, n: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = options::positive("max_requests", n)?;
        self.handle.set_max_in_flight(n);
        Ok(())
    }

    /// The in-flight cap.
    #[getter]
    fn max_requests(&self) -> usize {
        self.handle.max_in_flight()
    }

    /// Requests accepted and not yet called back (0 after `finish_all_requests`).
    #[getter]
    fn pending(&self) -> PyResult<usize> {
        self.open()?;
        Ok(self.state().table.len())
    }

    /// How many loops (threads) fetch.
    #[getter]
    fn threads(&self) -> usize {
        self.handle.threads()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Closes (finishing all requests), even when the block raised (then a callback's
    /// exception is chained to the block's); never swallows the block's exception.
    #[pyo3(signature = (_exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        if self.closed.load(SeqCst) {
            return "<parafetch.Fetcher closed>".to_owned();
        }
        format!(
            "<parafetch.Fetcher max_requests={} pending={} threads={}>",
            self.handle.max_in_flight(),
            self.state().table.len(),
            self.handle.threads()
        )
    }
}

impl Drop for Fetcher {
    /// Finishes every pending request, as ParallelCurl's destructor does, on whatever
    /// thread drops it (the GIL released while it waits), then ends the loops; what a
    /// callback raised goes to `sys.unraisablehook`.
    fn drop(&mut self) {
        Python::attach(|py| {
            // No exception can propagate from here: a signal is left pending for later.
            // Idle first: a request another thread started as it closed is called back.
            let _ = self.run_until_idle(py, false);
            let _ = self.shut_down(py, false);
            if let Err(e) = self.take_raised(py) {
                e.write_unraisable(py, None);
            }
        });
    }
}
