//! `parafetch._native`: the extension module behind the `parafetch` Python package
//! (python/parafetch/__init__.py re-exports it).
//!
//! A user of parafetch's public API only, as DESIGN.md asks of a binding. Modules:
//! fetcher.rs (`Fetcher`, `fetch_all`: the loop on the caller's thread, GIL released while
//! it waits or works), options.rs (keyword options into a `Builder` or a `Request`),
//! response.rs (`Response`, `Headers`, `Timings`), errors.rs (`parafetch.Error` and a
//! subclass per kind).
//!
//! Results and errors are converted by plain functions of a `Python` token, so a later
//! `AsyncFetcher` on `parafetch::Handle` can convert them in its loop threads' callbacks
//! (re-attaching there) and hand them to an asyncio loop with `call_soon_threadsafe`.

mod errors;
mod fetcher;
mod options;
mod response;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<fetcher::Fetcher>()?;
    m.add_class::<fetcher::FetchAll>()?;
    m.add_function(wrap_pyfunction!(fetcher::fetch_all, m)?)?;
    m.add_class::<response::Response>()?;
    m.add_class::<response::Headers>()?;
    m.add_class::<response::Timings>()?;
    errors::register(m)?;
    Ok(())
}
