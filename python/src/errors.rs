//! The exception classes: `parafetch.Error` and one subclass per [`parafetch::ErrorKind`],
//! and the conversion of a [`parafetch::Error`] into an instance of the right one.
//!
//! Owns classification for Python only; it never decides anything about a request. The
//! conversion needs only a `Python` token and the Rust error, so a callback running on any
//! thread that holds the GIL (a `Handle`'s loop threads, later) can use it.

use parafetch::ErrorKind;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::response::redact_url;

pyo3::create_exception!(
    parafetch,
    Error,
    PyException,
    "A request failed. `kind` and `phase` are parafetch's stable snake_case names \
     (`kind` also as a class attribute of each subclass); `message` is the description \
     without its causes; `url` is the URL as given (None when no request was involved); \
     `attempts` counts the attempts made (0 when refused before any)."
);

/// Declares one subclass of `parafetch.Error` per kind and the table that maps them.
macro_rules! kinds {
    ($($name:ident => $kind:ident, $doc:literal;)*) => {
        $(pyo3::create_exception!(parafetch, $name, Error, $doc);)*

        /// The exception class of `kind`; the base class for a kind this binding does
        /// not know yet (`ErrorKind` is non-exhaustive).
        fn class_of<'py>(py: Python<'py>, kind: ErrorKind) -> Bound<'py, PyType> {
            match kind {
                $(ErrorKind::$kind => py.get_type::<$name>(),)*
                ErrorKind::Timeout => builtin_too(py, &TIMEOUT),
                ErrorKind::Connect => builtin_too(py, &CONNECT),
                _ => py.get_type::<Error>(),
            }
        }

        /// Adds `Error` and every subclass to the module, each subclass with its `kind`.
        pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
            let py = m.py();
            let base = py.get_type::<Error>();
            base.setattr("kind", py.None())?;
            m.add("Error", &base)?;
            $(
                let class = py.get_type::<$name>();
                class.setattr("kind", ErrorKind::$kind.as_str())?;
                m.add(stringify!($name), class)?;
            )*
            let builtins = py.import("builtins")?;
            for (cell, name, builtin, kind, doc) in [
                (&TIMEOUT, "Timeout", "TimeoutError", ErrorKind::Timeout, TIMEOUT_DOC),
                (&CONNECT, "Connect", "ConnectionError", ErrorKind::Connect, CONNECT_DOC),
            ] {
                let bases = (base.clone(), builtins.getattr(builtin)?);
                let ns = pyo3::types::PyDict::new(py);
                ns.set_item("__module__", "parafetch")?;
                ns.set_item("__doc__", doc)?;
                ns.set_item("kind", kind.as_str())?;
                let class = builtins.getattr("type")?.call1((name, bases, ns))?;
                let class = class.cast_into::<PyType>()?;
                let _ = cell.set(py, class.clone().unbind());
                m.add(name, class)?;
            }
            Ok(())
        }
    };
}

kinds! {
    InvalidUrl => InvalidUrl, "The URL does not parse or has no host (caller's fault).";
    UnsupportedScheme => UnsupportedScheme, "The URL's scheme is not http or https.";
    InvalidRequest => InvalidRequest, "A bad method, header or option (caller's fault).";
    Dns => Dns, "The host name could not be resolved.";
    Tls => Tls, "The TLS handshake or record layer failed.";
    Malformed => Malformed, "The server sent bytes that are not valid HTTP/1.x.";
    Truncated => Truncated, "The connection ended before the response was complete.";
    EmptyReply => EmptyReply, "The connection ended before any response byte.";
    TooLarge => TooLarge, "The response exceeded a limit (head, header count, max_body).";
    TooManyRedirects => TooManyRedirects, "More redirects than allowed, or a loop.";
    BadRedirect => BadRedirect, "A redirect that must not be followed (https to http, ...).";
    Io => Io, "Another I/O error on an established connection.";
    Proxy => Proxy, "The proxy refused or broke the request, or its URL is malformed.";
    QueueFull => QueueFull, "Too many follow-ups queued from callbacks (Rust callbacks only: a Python callback's start_request waits for room, so no Python request ends in it).";
    Robots => Robots, "robots.txt disallows the URL (with obey_robots=True).";
    ShutDown => ShutDown, "The fetcher is shutting down and takes no new requests.";
}

/// `parafetch.Timeout` and `parafetch.Connect`: subclasses of `parafetch.Error` and of
/// the builtin `TimeoutError` and `ConnectionError`, so that code catching those catches
/// them too. Made at module init (a class with two bases needs `type(...)`).
static TIMEOUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONNECT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
const TIMEOUT_DOC: &str =
    "A deadline passed; `phase` says during which phase. Also a TimeoutError.";
const CONNECT_DOC: &str =
    "No connection could be made (refused, unreachable). Also a ConnectionError.";

/// The class in `cell`, or `parafetch.Error` before module init made it.
fn builtin_too<'py>(py: Python<'py>, cell: &PyOnceLock<Py<PyType>>) -> Bound<'py, PyType> {
    match cell.get(py) {
        Some(class) => class.bind(py).clone(),
        None => py.get_type::<Error>(),
    }
}

/// `e` as an instance of its exception class, with `kind`, `phase`, `message`, `url` and
/// `attempts` set. Its text is `{e:#}`: kind, phase, our words, then each cause once.
pub(crate) fn error_value(py: Python<'_>, e: &parafetch::Error, url: Option<&str>) -> Py<PyAny> {
    match build(py, e, url) {
        Ok(v) => v,
        // Only a failing allocation gets here: hand that error over instead.
        Err(err) => err.into_value(py).into_any(),
    }
}

fn build(py: Python<'_>, e: &parafetch::Error, url: Option<&str>) -> PyResult<Py<PyAny>> {
    let (text, message) = (format!("{e:#}"), e.message().to_owned());
    let value = class_of(py, e.kind()).call1((text,))?;
    value.setattr("kind", e.kind().as_str())?;
    value.setattr("phase", e.phase().as_str())?;
    value.setattr("message", message)?;
    value.setattr("url", url.map(hide_credentials))?;
    value.setattr("attempts", e.attempts())?;
    Ok(value.unbind())
}

/// A bad method or header found before the Rust side saw it, as `parafetch` reports one:
/// `InvalidRequest` during `prepare`.
pub(crate) fn invalid_request(py: Python<'_>, message: &str, url: &str) -> PyErr {
    let made = (|| -> PyResult<Bound<'_, PyAny>> {
        let value = py
            .get_type::<InvalidRequest>()
            .call1((format!("invalid_request during prepare: {message}"),))?;
        value.setattr("kind", ErrorKind::InvalidRequest.as_str())?;
        value.setattr("phase", "prepare")?;
        value.setattr("message", message)?;
        value.setattr("url", hide_credentials(url))?;
        value.setattr("attempts", 0)?;
        Ok(value)
    })();
    match made {
        Ok(v) => PyErr::from_value(v),
        Err(e) => e,
    }
}

/// `url` as given, unless it holds a user name or password: then redacted by
/// [`redact_url`] (an error's `url` gets logged).
pub(crate) fn hide_credentials(url: &str) -> std::borrow::Cow<'_, str> {
    let secret = match url::Url::parse(url) {
        Ok(u) => u.password().is_some() || !u.username().is_empty(),
        // Not a URL: anything before an `@` may be a secret.
        Err(_) => url.contains('@'),
    };
    if secret {
        redact_url(url).into()
    } else {
        url.into()
    }
}

/// `e` as a Python exception to raise.
pub(crate) fn to_pyerr(py: Python<'_>, e: &parafetch::Error, url: Option<&str>) -> PyErr {
    PyErr::from_value(error_value(py, e, url).into_bound(py))
}
