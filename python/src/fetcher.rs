//! `parafetch.Fetcher`: the ParallelCurl API over a [`parafetch::Fetcher`] driven on the
//! caller's thread, and `parafetch.fetch_all`, its iterator form.
//!
//! Owns the GIL discipline of a caller-driven loop: every wait and every turn of the loop
//! runs with the GIL released ([`turn`]); a callback re-attaches only to run Python code.
//! Waits are cut into ticks so Ctrl-C (a pending signal) interrupts them. Never parses
//! options (options.rs) nor converts results (response.rs, errors.rs).
//!
//! Callbacks are called as `callback(result, url, cookie)`: `result` a `Response` or a
//! `parafetch.Error` instance (not raised), `url` the URL as given to `start_request`,
//! `cookie` the caller's object. The order is ParallelCurl's `(content, url, ch,
//! user_data)` without the curl handle, whose answers the `Response` carries.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyTuple};

use crate::errors::{error_value, to_pyerr};
use crate::options::{self, Kept, RequestArgs};
use crate::response::Response;

/// The longest a wait runs with the GIL released before checking for a signal (Ctrl-C).
/// A signal to this thread ends the wait at once (EINTR); this bounds the wait when the
/// OS delivers it to another thread.
const TICK: Duration = Duration::from_millis(100);

/// Hands a value to [`Python::detach`], which asks for `Send`.
///
/// `detach` runs its closure at once, on the calling thread, and returns before the
/// caller goes on: the value never reaches another thread. (`Send` is asked for to keep
/// GIL-bound references out of the closure; ours re-attach with [`Python::attach`]
/// before touching Python.) While the GIL is released another Python thread may run, but
/// cannot reach the value: it belongs to an `unsendable` pyclass, which PyO3 refuses to
/// lend to any thread but its own, and that pyclass is borrowed for the whole call.
struct OnThisThread<T>(T);

// SAFETY: see the type's comment: the wrapped value is only used on the thread that
// created the wrapper, inside `Python::detach`'s synchronous call.
unsafe impl<T> Send for OnThisThread<T> {}

impl<T> OnThisThread<T> {
    // A method, not a field access: the closure must capture the wrapper whole (edition
    // 2021+ closures capture only the fields they use).
    fn into_inner(self) -> T {
        self.0
    }
}

/// Runs one turn of `fetcher`'s loop, waiting at most `timeout`, with the GIL released.
/// Callbacks due run inside (each re-attaching). Returns how many ran.
fn turn<C: 'static>(
    py: Python<'_>,
    fetcher: &mut parafetch::Fetcher<C>,
    timeout: Duration,
) -> usize {
    let f = OnThisThread(fetcher);
    py.detach(move || f.into_inner().poll(Some(timeout)))
}

/// Runs `fetcher` until nothing is pending, GIL released; Ctrl-C stops the wait.
fn run_until_idle<C: 'static>(py: Python<'_>, fetcher: &mut parafetch::Fetcher<C>) -> PyResult<()> {
    while fetcher.pending() > 0 {
        turn(py, fetcher, TICK);
        py.check_signals()?;
    }
    Ok(())
}

/// A request started from inside a callback, kept until the callback returns, when it
/// goes to the callback's [`parafetch::Queue`].
struct FollowUp {
    request: parafetch::Request,
    callback: Py<PyAny>,
    cookie: Py<PyAny>,
    url: String,
}

/// What the Python methods and the Rust callbacks of one fetcher share (one thread only).
#[derive(Default)]
struct Shared {
    /// How many callbacks are running (nested when a follow-up's error is called back):
    /// while one is, `start_request` queues instead of running the loop.
    in_callback: Cell<usize>,
    followups: RefCell<Vec<FollowUp>>,
    /// The cap, as Python last set it.
    cap: Cell<usize>,
    /// A cap set from a callback, applied when it returns.
    cap_request: Cell<Option<usize>>,
    /// The first exception a callback raised, and how many more did.
    raised: RefCell<Option<PyErr>>,
    more_raised: Cell<usize>,
}

impl Shared {
    fn record(&self, err: PyErr) {
        let mut raised = self.raised.borrow_mut();
        if raised.is_none() {
            *raised = Some(err);
        } else {
            self.more_raised.set(self.more_raised.get() + 1);
        }
    }

    /// The first exception a callback raised since the last call, with a note counting
    /// the others.
    fn take_raised(&self, py: Python<'_>) -> PyResult<()> {
        let Some(err) = self.raised.borrow_mut().take() else {
            return Ok(());
        };
        let more = self.more_raised.replace(0);
        if more > 0 {
            // `add_note` is Python 3.11+; on older ones the count is lost, not the error.
            let note = format!("parafetch: {more} more callback(s) raised after this one");
            let _ = err.value(py).call_method1("add_note", (note,));
        }
        Err(err)
    }

    fn run_callback(
        &self,
        py: Python<'_>,
        callback: &Py<PyAny>,
        args: (Py<PyAny>, String, Py<PyAny>),
    ) {
        self.in_callback.set(self.in_callback.get() + 1);
        if let Err(e) = callback.call1(py, args) {
            self.record(e);
        }
        self.in_callback.set(self.in_callback.get() - 1);
    }
}

type PyDone = parafetch::Done<Py<PyAny>>;
type PyQueue = parafetch::Queue<Py<PyAny>>;

/// The Rust callback of one request: re-attaches, calls the Python callback, then hands
/// what it started to the queue.
fn rust_callback(
    callback: Py<PyAny>,
    shared: Rc<Shared>,
) -> impl FnOnce(PyDone, &mut PyQueue) + 'static {
    move |done: PyDone, queue: &mut PyQueue| {
        Python::attach(|py| {
            let result = match done.result {
                Ok(r) => match Response::from_rust(py, r).and_then(|r| Py::new(py, r)) {
                    Ok(r) => r.into_any(),
                    Err(e) => e.into_value(py).into_any(),
                },
                Err(e) => error_value(py, &e, Some(&done.url)),
            };
            shared.run_callback(py, &callback, (result, done.url, done.cookie));
            drain(py, &shared, queue);
        })
    }
}

/// Gives the follow-ups started by the callback that just returned to `queue`; one the
/// queue refuses (full, say) is called back with the error at once.
fn drain(py: Python<'_>, shared: &Rc<Shared>, queue: &mut PyQueue) {
    if let Some(n) = shared.cap_request.take() {
        queue.set_max_requests(n);
    }
    loop {
        let batch = std::mem::take(&mut *shared.followups.borrow_mut());
        if batch.is_empty() {
            return;
        }
        for f in batch {
            let cb = rust_callback(f.callback.clone_ref(py), shared.clone());
            // The queue drops callback and cookie on refusal: keep our own references.
            let cookie = f.cookie.clone_ref(py);
            if let Err(e) = queue.start_request(f.request, cb, cookie) {
                let err = error_value(py, &e, Some(&f.url));
                shared.run_callback(py, &f.callback, (err, f.url, f.cookie));
            }
        }
    }
}

/// Fetches many URLs at once from the calling thread, calling back as each finishes:
/// `Fetcher(max_in_flight=10, **options)`, options under the Rust builder's names.
///
/// `start_request(url, callback, cookie=None, ...)` returns at once while fewer than
/// `max_in_flight` (plus the `backlog` option) requests are pending; otherwise it runs
/// the loop, calling back, until one finishes. `finish_all_requests()` runs it until every
/// request has been called back, then raises the first exception a callback raised, if
/// any (every other request still completed). The GIL is released while the loop waits or
/// works; callbacks take it to run. As a context manager, leaving the block finishes all
/// requests and closes it; so does `close()`, and so does garbage collection.
///
/// A fetcher belongs to the thread that made it: another thread's calls raise. Should the
/// garbage collector find an unclosed one in a reference cycle while running on another
/// thread, it cannot be finished there and is leaked (PyO3 reports it to
/// `sys.unraisablehook`): close it, or use `with`.
#[pyclass(unsendable, module = "parafetch")]
pub struct Fetcher {
    /// `None` once dropped.
    inner: RefCell<Option<parafetch::Fetcher<Py<PyAny>>>>,
    shared: Rc<Shared>,
    kept: Kept,
}

impl Fetcher {
    fn not_from_callback(&self, what: &str) -> PyResult<()> {
        if self.shared.in_callback.get() > 0 {
            return Err(PyRuntimeError::new_err(format!(
                "{what} cannot be called from a callback (it would run the loop inside \
                 itself); start_request and set_max_requests can"
            )));
        }
        Ok(())
    }

    fn with_fetcher<T>(
        &self,
        f: impl FnOnce(&mut parafetch::Fetcher<Py<PyAny>>) -> PyResult<T>,
    ) -> PyResult<T> {
        let mut inner = self
            .inner
            .try_borrow_mut()
            .map_err(|_| PyRuntimeError::new_err("the fetcher is busy"))?;
        let fetcher = inner
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the fetcher is closed"))?;
        f(fetcher)
    }
}

/// Builds the Rust fetcher for `Fetcher(...)` and `fetch_all(...)`.
fn build<C: 'static>(
    py: Python<'_>,
    max_in_flight: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(parafetch::Fetcher<C>, Kept)> {
    let n = options::positive("max_in_flight", max_in_flight)?;
    let (builder, kept) = options::apply(parafetch::Fetcher::builder().max_in_flight(n), options)?;
    let fetcher = builder.try_build().map_err(|e| to_pyerr(py, &e, None))?;
    Ok((fetcher, kept))
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
        let ten = 10usize.into_pyobject(py)?.into_any();
        let (fetcher, kept) = build(py, max_in_flight.unwrap_or(&ten), options)?;
        let shared = Shared::default();
        shared.cap.set(fetcher.max_in_flight());
        Ok(Fetcher {
            inner: RefCell::new(Some(fetcher)),
            shared: Rc::new(shared),
            kept,
        })
    }

    /// Starts fetching `url`; `callback(result, url, cookie)` is called exactly once with
    /// a `Response` or a `parafetch.Error`. Raises at once (nothing started, no callback)
    /// for a malformed URL (`InvalidUrl`), another scheme (`UnsupportedScheme`) or a bad
    /// method or header (`InvalidRequest`). From inside a callback it never waits: the
    /// request is queued when the callback returns (a bad header or a full queue is then
    /// called back as an error).
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
        // Refused before any wait, as the Rust fetcher refuses it.
        options::check_url(url).map_err(|e| to_pyerr(py, &e, Some(url)))?;
        let cookie = cookie.unwrap_or_else(|| py.None());
        if self.shared.in_callback.get() > 0 {
            self.shared.followups.borrow_mut().push(FollowUp {
                request,
                callback,
                cookie,
                url: url.to_owned(),
            });
            return Ok(());
        }
        let backlog = self.kept.backlog;
        let shared = self.shared.clone();
        self.with_fetcher(|f| {
            // Wait for room here, GIL released and interruptible, so the Rust call
            // below never waits.
            while f.pending() >= f.max_in_flight().saturating_add(backlog) {
                turn(py, f, TICK);
                py.check_signals()?;
            }
            f.start_request(request, rust_callback(callback, shared), cookie)
                .map_err(|e| to_pyerr(py, &e, Some(url)))
        })
    }

    /// Runs the loop until every request, and every follow-up its callbacks started, has
    /// been called back. Then raises the first exception a callback raised since the last
    /// call, if any (Python 3.11+ notes how many more did). Ctrl-C interrupts the wait;
    /// what is pending stays pending.
    fn finish_all_requests(&self, py: Python<'_>) -> PyResult<()> {
        self.not_from_callback("finish_all_requests")?;
        self.with_fetcher(|f| run_until_idle(py, f))?;
        self.shared.take_raised(py)
    }

    /// Finishes all requests as `finish_all_requests` does (raising what a callback
    /// raised), then closes the fetcher: its event loop and pooled connections are
    /// released at once, and any later call raises RuntimeError. Leaving a `with` block
    /// closes. Closing twice does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.not_from_callback("close")?;
        let open = self.inner.try_borrow().is_ok_and(|inner| inner.is_some());
        if open {
            self.with_fetcher(|f| run_until_idle(py, f))?;
            // Nothing is pending: dropping it only closes descriptors.
            drop(self.inner.borrow_mut().take());
        }
        self.shared.take_raised(py)
    }

    /// Changes the in-flight cap (at least 1); from a callback, when it returns. A lowered
    /// cap never interrupts running requests.
    fn set_max_requests(&self, n: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = options::positive("max_requests", n)?;
        self.shared.cap.set(n);
        if self.shared.in_callback.get() > 0 {
            self.shared.cap_request.set(Some(n));
            return Ok(());
        }
        self.with_fetcher(|f| {
            f.set_max_requests(n);
            Ok(())
        })
    }

    /// The in-flight cap.
    #[getter]
    fn max_requests(&self) -> usize {
        self.shared.cap.get()
    }

    /// Requests accepted and not yet called back (0 after `finish_all_requests`).
    #[getter]
    fn pending(&self) -> PyResult<usize> {
        self.with_fetcher(|f| Ok(f.pending()))
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
        match self.inner.try_borrow() {
            Ok(inner) => match inner.as_ref() {
                Some(f) => format!(
                    "<parafetch.Fetcher max_requests={} pending={} running={}>",
                    f.max_requests(),
                    f.pending(),
                    f.running()
                ),
                None => "<parafetch.Fetcher closed>".to_owned(),
            },
            Err(_) => format!(
                "<parafetch.Fetcher max_requests={} (running its loop)>",
                self.shared.cap.get()
            ),
        }
    }
}

impl Drop for Fetcher {
    /// Finishes every pending request, as ParallelCurl's destructor does, with the GIL
    /// released; what a callback raised goes to `sys.unraisablehook`.
    fn drop(&mut self) {
        let Some(mut fetcher) = self.inner.get_mut().take() else {
            return;
        };
        Python::attach(|py| {
            // No exception can propagate from here: a signal is left pending for later.
            while fetcher.pending() > 0 {
                turn(py, &mut fetcher, TICK);
            }
            if let Err(e) = self.shared.take_raised(py) {
                e.write_unraisable(py, None);
            }
        });
    }
}

/// The results of `fetch_all`: `(url, result)` pairs as each request finishes (completion
/// order), `result` a `Response` or a `parafetch.Error`. An invalid URL is yielded at once
/// with its error. Keeps at most `max_in_flight` (plus `backlog`) requests started, taking
/// URLs from the iterable only as room frees; the GIL is released while it waits.
#[pyclass(unsendable, module = "parafetch")]
pub struct FetchAll {
    fetcher: Option<parafetch::Fetcher<()>>,
    /// The URLs not yet taken; `None` once exhausted.
    urls: Option<Py<PyIterator>>,
    ready: Rc<RefCell<VecDeque<Finished>>>,
    backlog: usize,
}

type Finished = (String, Result<parafetch::Response, parafetch::Error>);

impl FetchAll {
    /// Starts URLs from the iterable while there is room.
    fn fill(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(fetcher) = self.fetcher.as_mut() else {
            return Ok(());
        };
        while fetcher.pending() < fetcher.max_in_flight().saturating_add(self.backlog) {
            let Some(urls) = &self.urls else {
                return Ok(());
            };
            let Some(item) = urls.bind(py).clone().next() else {
                self.urls = None;
                return Ok(());
            };
            let item = item?;
            let url: String = item.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "fetch_all: a URL must be a str, got {}",
                    item.get_type().name().map_or("?".into(), |n| n.to_string())
                ))
            })?;
            let ready = self.ready.clone();
            let on_done = move |done: parafetch::Done<()>, _: &mut parafetch::Queue<()>| {
                ready.borrow_mut().push_back((done.url, done.result));
            };
            if let Err(e) = fetcher.start_request(url.as_str(), on_done, ()) {
                self.ready.borrow_mut().push_back((url, Err(e)));
            }
        }
        Ok(())
    }
}

#[pymethods]
impl FetchAll {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyTuple>>> {
        loop {
            let next = self.ready.borrow_mut().pop_front();
            if let Some((url, result)) = next {
                let value = match result {
                    Ok(r) => Py::new(py, Response::from_rust(py, r)?)?.into_any(),
                    Err(e) => error_value(py, &e, Some(&url)),
                };
                return Ok(Some((url, value).into_pyobject(py)?.unbind()));
            }
            self.fill(py)?;
            if !self.ready.borrow().is_empty() {
                continue;
            }
            let Some(fetcher) = self.fetcher.as_mut() else {
                return Ok(None);
            };
            if fetcher.pending() == 0 {
                return Ok(None);
            }
            turn(py, fetcher, TICK);
            py.check_signals()?;
        }
    }
}

impl Drop for FetchAll {
    /// Dropped midway (a `break`), it waits for the requests already started, with the
    /// GIL released: a caller-driven fetcher cannot abandon them.
    fn drop(&mut self) {
        if let Some(fetcher) = self.fetcher.take() {
            let f = OnThisThread(fetcher);
            Python::attach(|py| py.detach(move || drop(f.into_inner())));
        }
    }
}

/// `fetch_all(urls, max_in_flight=10, **options)`: fetches `urls` (an iterable of str),
/// yielding `(url, result)` as each finishes. Options as for `Fetcher`.
#[pyfunction]
#[pyo3(signature = (urls, max_in_flight=None, **options))]
pub fn fetch_all(
    py: Python<'_>,
    urls: &Bound<'_, PyAny>,
    max_in_flight: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<FetchAll> {
    if urls.is_instance_of::<pyo3::types::PyString>() {
        return Err(PyTypeError::new_err(
            "fetch_all: urls must be an iterable of URLs, not one str",
        ));
    }
    let ten = 10usize.into_pyobject(py)?.into_any();
    let (fetcher, kept) = build::<()>(py, max_in_flight.unwrap_or(&ten), options)?;
    Ok(FetchAll {
        fetcher: Some(fetcher),
        urls: Some(urls.try_iter()?.unbind()),
        ready: Rc::default(),
        backlog: kept.backlog,
    })
}
