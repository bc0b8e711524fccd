//! `parafetch.fetch_all`: the iterator form, on the same two drivers as `Fetcher`: a
//! caller-driven Rust fetcher turned by `__next__` with the GIL released (`threads=1`),
//! or a [`parafetch::Handle`] whose loops run on threads of their own.
//!
//! Owns pulling URLs from the Python iterable as room frees and the iterator's end. As in
//! fetcher.rs, a request's Rust callback only hands `(url, result)` over (an inbox, or a
//! channel), and `__next__` waits with the GIL released, in ticks (Ctrl-C raises between
//! them). Dropped before the end, it aborts what is still in flight (the Rust side's
//! `abort`): nothing waits for the network.
//!
//! Not `parafetch::Builder::fetch_all`: its wait cannot be interrupted, and its URLs would
//! be pulled from Python inside the wait.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, TryLockError};

use parafetch::{Done, Handle, SendQueue};
use pyo3::PyTraverseError;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyTuple};

use crate::errors::error_value;
use crate::fetcher::{self, Caller, Finished, Made, TICK, lock, receive};
use crate::response::Response;

/// The Rust side.
enum Driver {
    /// One loop, turned by `__next__`; its callbacks fill `inbox`.
    Caller {
        rust: Box<Caller<()>>,
        inbox: Arc<Mutex<Vec<Finished<String>>>>,
    },
    /// Loops on threads of their own, answering over a channel.
    Threads {
        handle: Handle<()>,
        tx: Sender<Finished<String>>,
        rx: Mutex<Receiver<Finished<String>>>,
    },
}

impl Driver {
    fn max_in_flight(&self) -> usize {
        match self {
            Driver::Caller { rust, .. } => rust.max_in_flight(),
            Driver::Threads { handle, .. } => handle.max_in_flight(),
        }
    }

    /// Gives up what is in flight without waiting for the network, and ends.
    fn abort(self) {
        match self {
            Driver::Caller { mut rust, .. } => rust.abort(),
            // The loops call back (into a channel nobody reads) and end; the drop joins
            // them.
            Driver::Threads { handle, .. } => handle.abort(),
        }
    }
}

/// The iterator's state, behind one lock that `__next__` holds throughout: a second
/// `__next__` at the same time (another thread, or a URL generator calling it) raises.
struct Iter {
    /// `None` once every result was handed out (the loops ended then), or dropped.
    driver: Option<Driver>,
    /// The URLs not yet taken; `None` once exhausted.
    urls: Option<Py<PyIterator>>,
    /// Results to hand out: received, or refused at submit.
    ready: VecDeque<Finished<String>>,
    /// Submitted and not yet received.
    outstanding: usize,
}

/// The results of `fetch_all`: `(url, result)` pairs as each request finishes (completion
/// order), `result` a `Response` or a `parafetch.Error`. An invalid URL is yielded at once
/// with its error. Keeps at most `max_in_flight` (plus `backlog`) requests started, taking
/// URLs from the iterable only as room frees, and none while a result waits to be handed
/// out; the GIL is released while it waits. Dropped before the end, it aborts the
/// requests in flight (their connections close) rather than wait for them.
#[pyclass(frozen, module = "parafetch")]
pub struct FetchAll {
    iter: Mutex<Iter>,
    backlog: usize,
    pid: u32,
}

impl FetchAll {
    /// Starts URLs from the iterable while there is room and no result is ready.
    fn fill(&self, py: Python<'_>, it: &mut Iter) -> PyResult<()> {
        loop {
            if !it.ready.is_empty() {
                return Ok(());
            }
            let Some(driver) = it.driver.as_mut() else {
                return Ok(());
            };
            if it.outstanding >= driver.max_in_flight().saturating_add(self.backlog) {
                return Ok(());
            }
            let Some(urls) = &it.urls else {
                return Ok(());
            };
            let Some(item) = urls.bind(py).clone().next() else {
                it.urls = None;
                return Ok(());
            };
            let item = item?;
            let url: String = item.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "fetch_all: a URL must be a str, got {}",
                    item.get_type().name().map_or("?".into(), |n| n.to_string())
                ))
            })?;
            let started = match driver {
                Driver::Caller { rust, inbox } => {
                    let sink = Arc::clone(inbox);
                    let on_done = move |done: Done<()>, _: &mut SendQueue<()>| {
                        lock(&sink).push((done.url, done.result));
                    };
                    // Room was checked above: this never runs the loop.
                    Ok(rust.start_request(url.as_str(), on_done, ()))
                }
                Driver::Threads { handle, tx, .. } => {
                    let tx = tx.clone();
                    let on_done = move |done: Done<()>, _: &mut SendQueue<()>| {
                        // After the iterator is gone, nobody is waiting for it.
                        let _ = tx.send((done.url, done.result));
                    };
                    fetcher::submit(py, handle, url.as_str(), on_done, ())
                }
            };
            match started? {
                Ok(()) => it.outstanding += 1,
                Err(e) => it.ready.push_back((url, Err(e))),
            }
        }
    }
}

#[pymethods]
impl FetchAll {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyTuple>>> {
        if self.pid != crate::fetcher::current_pid() {
            return Err(fetcher::forked_error("fetch_all iterator", self.pid));
        }
        let mut it = match self.iter.try_lock() {
            Ok(it) => it,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "fetch_all: the iterator is already running",
                ));
            }
        };
        loop {
            if let Some((url, result)) = it.ready.pop_front() {
                let value = match result {
                    Ok(r) => Py::new(py, Response::from_rust(py, r)?)?.into_any(),
                    Err(e) => error_value(py, &e, Some(&url)),
                };
                return Ok(Some((url, value).into_pyobject(py)?.unbind()));
            }
            self.fill(py, &mut it)?;
            if !it.ready.is_empty() {
                continue;
            }
            if it.outstanding == 0 {
                // The end: the loops hold nothing, so ending them now is quick.
                if let Some(driver) = it.driver.take() {
                    py.detach(move || drop(driver));
                }
                return Ok(None);
            }
            let got = match it.driver.as_mut() {
                Some(Driver::Caller { rust, inbox }) => {
                    py.detach(|| rust.poll(Some(TICK)));
                    std::mem::take(&mut *lock(inbox))
                }
                Some(Driver::Threads { rx, .. }) => receive(py, rx, TICK),
                None => Vec::new(),
            };
            it.outstanding -= got.len().min(it.outstanding);
            it.ready.extend(got);
            py.check_signals()?;
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Not visiting (the lock is taken) only keeps objects alive longer: safe.
        if let Ok(it) = self.iter.try_lock() {
            visit.call(&it.urls)?;
        }
        Ok(())
    }

    /// Breaks a reference cycle (a URL generator that refers to its iterator): stops
    /// taking URLs and aborts what is in flight.
    fn __clear__(&self) {
        let taken = {
            let mut it = lock(&self.iter);
            (it.urls.take(), it.driver.take())
        };
        if let Some(driver) = taken.1 {
            end_quickly(self.pid, driver);
        }
        drop(taken.0);
    }
}

/// Aborts `driver` and ends it, the GIL released if held; in a forked child, lets go of
/// the parent's loops without touching them.
fn end_quickly(pid: u32, driver: Driver) {
    if pid != crate::fetcher::current_pid() {
        std::mem::forget(driver);
        return;
    }
    let end = move || driver.abort();
    // try_attach: during interpreter shutdown, or off Python, just end here.
    let mut end = Some(end);
    let _ = Python::try_attach(|py| {
        if let Some(end) = end.take() {
            py.detach(end);
        }
    });
    if let Some(end) = end {
        end();
    }
}

impl Drop for FetchAll {
    /// Dropped with requests in flight, it aborts them (no wait for the network).
    fn drop(&mut self) {
        let it = self.iter.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(driver) = it.driver.take() {
            end_quickly(self.pid, driver);
        }
    }
}

/// `fetch_all(urls, max_in_flight=10, **options)`: fetches `urls` (an iterable of str),
/// yielding `(url, result)` as each finishes. Options as for `Fetcher`.
#[pyfunction]
#[pyo3(signature = (urls, max_in_flight=None, **options), text_signature = "(urls, max_in_flight=10, **options)")]
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
    let urls = urls.try_iter()?.unbind();
    let (made, kept) = fetcher::make::<()>(py, max_in_flight, options)?;
    let driver = match made {
        Made::Caller(rust) => Driver::Caller {
            rust,
            inbox: Arc::default(),
        },
        Made::Threads(handle) => {
            let (tx, rx) = mpsc::channel();
            Driver::Threads {
                handle,
                tx,
                rx: Mutex::new(rx),
            }
        }
    };
    Ok(FetchAll {
        iter: Mutex::new(Iter {
            driver: Some(driver),
            urls: Some(urls),
            ready: VecDeque::new(),
            outstanding: 0,
        }),
        backlog: kept.backlog,
        pid: crate::fetcher::current_pid(),
    })
}
