//! `parafetch._native`: the extension module behind the `parafetch` Python package
//! (python/parafetch/__init__.py re-exports it).
//!
//! A user of parafetch's public API only, as DESIGN.md asks of a binding.

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
