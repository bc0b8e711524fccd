//! `parafetch.fetch_all`: the iterator form, over a [`parafetch::Handle`] whose loops run
//! on threads of their own.
//!
//! Owns pulling URLs from the Python iterable as room frees and the iterator's end. As in
//! fetcher.rs, a request's Rust callback only sends `(url, result)` over a channel, and
//! `__next__` receives with the GIL released, in ticks (Ctrl-C raises between them).
//! Dropped before the end, it does not wait: the handle, with what is still in flight,
//! goes to a thread of its own that waits for it (a `Handle`'s drop waits).
//!
//! Not `parafetch::Builder::fetch_all`: with one thread it runs the loop on the caller's
//! thread, its wait cannot be interrupted, and its URLs would be pulled from Python
//! inside the wait.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, TryLockError};
use std::thread;

use parafetch::{Done, Handle, SendQueue};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyTuple};

use crate::errors::error_value;
use crate::fetcher::{self, Finished, receive};
use crate::response::Response;

/// The iterator's state, behind one lock that `__next__` holds throughout: a second
/// `__next__` at the same time (another thread, or a URL generator calling it) raises.
struct Iter {
    /// `None` once every result was handed out (the loops ended then), or dropped.
    handle: Option<Handle<()>>,
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
/// URLs from the iterable only as room frees; the GIL is released while it waits. Dropped
/// before the end, it does not wait for the requests in flight: they finish in the
/// background.
#[pyclass(frozen, module = "parafetch")]
pub struct FetchAll {
    iter: Mutex<Iter>,
    /// Cloned into every request's Rust callback.
    tx: Sender<Finished<String>>,
    rx: Mutex<Receiver<Finished<String>>>,
    backlog: usize,
}

impl FetchAll {
    /// Starts URLs from the iterable while there is room.
    fn fill(&self, py: Python<'_>, it: &mut Iter) -> PyResult<()> {
        loop {
            let Some(handle) = it.handle.as_ref() else {
                return Ok(());
            };
            if it.outstanding >= handle.max_in_flight().saturating_add(self.backlog) {
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
            let tx = self.tx.clone();
            let on_done = move |done: Done<()>, _: &mut SendQueue<()>| {
                // After the iterator is gone, nobody is waiting for it.
                let _ = tx.send((done.url, done.result));
            };
            match fetcher::submit(py, handle, url.as_str(), on_done, ())? {
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
                if let Some(handle) = it.handle.take() {
                    py.detach(move || drop(handle));
                }
                return Ok(None);
            }
            let got = receive(py, &self.rx);
            it.outstanding -= got.len();
            it.ready.extend(got);
            py.check_signals()?;
        }
    }
}

impl Drop for FetchAll {
    /// Dropped with requests in flight, it hands the handle to a thread that waits for
    /// them, and returns at once.
    fn drop(&mut self) {
        let it = self.iter.get_mut().unwrap_or_else(|p| p.into_inner());
        let Some(mut handle) = it.handle.take() else {
            return;
        };
        if it.outstanding > 0 {
            // Through a channel, so that the handle is still ours if the OS refuses the
            // thread (a closure given to a failed spawn is dropped inside it).
            let (give, take) = mpsc::sync_channel::<Handle<()>>(1);
            let spawned = thread::Builder::new()
                .name("parafetch-drop".into())
                .spawn(move || drop(take.recv()));
            if spawned.is_ok() {
                match give.send(handle) {
                    Ok(()) => return,
                    Err(mpsc::SendError(back)) => handle = back,
                }
            }
        }
        // Idle (or no thread to spare): ending the loops here, GIL released.
        Python::attach(|py| py.detach(move || drop(handle)));
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
    let urls = urls.try_iter()?.unbind();
    let (handle, kept) = fetcher::spawn::<()>(py, max_in_flight, options)?;
    let (tx, rx) = mpsc::channel();
    Ok(FetchAll {
        iter: Mutex::new(Iter {
            handle: Some(handle),
            urls: Some(urls),
            ready: VecDeque::new(),
            outstanding: 0,
        }),
        tx,
        rx: Mutex::new(rx),
        backlog: kept.backlog,
    })
}
