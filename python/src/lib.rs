//! `parafetch._native`: the extension module behind the `parafetch` Python package
//! (python/parafetch/__init__.py re-exports it; _native.pyi types it).
//!
//! A user of parafetch's public API only, as DESIGN.md asks of a binding. Modules:
//! fetcher.rs (`Fetcher`: with `threads=1` a caller-driven `parafetch::Fetcher` from
//! `Builder::build_send`, turned by the waiting thread with the GIL released; with more, a
//! `parafetch::Handle` whose loops run on threads of their own; callbacks on the caller's
//! thread either way), fetch_all.rs (`fetch_all`, the iterator form, on the same two
//! drivers), options.rs (keyword options into a `Builder` or a `Request`), response.rs
//! (`Response`, `Headers`, `Timings`), errors.rs (`parafetch.Error` and a subclass per
//! kind). No `unsafe`: nothing but `Send` values crosses a release of the GIL.
//!
//! The loops never touch Python: a request's Rust callback hands its result, a plain Rust
//! value, to whoever consumes it (an inbox, a channel). An `AsyncFetcher` can take the
//! same results from a `Handle` and wake the asyncio loop to take them (a socket pair it
//! watches, or `call_soon_threadsafe`); results and errors are converted by plain
//! functions of a `Python` token.

#![forbid(unsafe_code)]

mod async_fetcher;
mod errors;
mod fetch_all;
mod fetcher;
mod options;
mod response;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<fetcher::Fetcher>()?;
    fetcher::install_finalizer(m)?;
    fetcher::install_fork_hook(m)?;
    m.add_class::<async_fetcher::AsyncFetcher>()?;
    m.add_class::<fetch_all::FetchAll>()?;
    m.add_function(wrap_pyfunction!(fetch_all::fetch_all, m)?)?;
    m.add_class::<response::Response>()?;
    m.add_class::<response::Headers>()?;
    m.add_class::<response::Timings>()?;
    errors::register(m)?;
    fetcher::register_atexit(m)?;
    Ok(())
}
