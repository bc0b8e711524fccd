//! Python keyword options into a [`parafetch::Builder`] (the fetcher's) or a
//! [`parafetch::Request`] (one request's), under the Rust names.
//!
//! Owns the checking of Python values: an unknown option or a value of the wrong type is a
//! `TypeError` naming the option, an out-of-range one a `ValueError`. Never builds a
//! fetcher or runs a loop, so `Fetcher`, `fetch_all` and a later `AsyncFetcher` (on
//! `Builder::spawn`) share it.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

/// The options `Fetcher(**options)` and `fetch_all(**options)` take, for the error message.
pub(crate) const OPTIONS: &[&str] = &[
    "allow_https_downgrade",
    "auto_throttle",
    "backlog",
    "connect_timeout",
    "cookies",
    "danger_accept_invalid_certs",
    "decompress",
    "follow_redirects",
    "headers",
    "host_backoff",
    "host_delay",
    "host_rate",
    "idle_timeout",
    "keep_alive",
    "max_body",
    "max_head",
    "max_headers",
    "max_queued_followups",
    "max_redirects",
    "no_proxy",
    "obey_robots",
    "per_host",
    "pool_idle_timeout",
    "proxy",
    "rate",
    "retries",
    "retry_backoff",
    "threads",
    "timeout",
    "tls_roots_pem",
    "user_agent",
];

/// What the Python side keeps of the options besides the builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kept {
    /// `backlog`: `start_request` waits for room beyond `max_in_flight + backlog`.
    pub backlog: usize,
    /// `follow_redirects` and `max_redirects`, the defaults of a request's own.
    pub follow_redirects: bool,
    pub max_redirects: u32,
    /// One loop, driven on the caller's thread (`threads` 1, the default); else loops on
    /// threads of their own (`threads` above 1, or `"auto"`).
    pub one_loop: bool,
}

fn wrong_type(option: &str, expected: &str, value: &Bound<'_, PyAny>) -> PyErr {
    let got = value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
    PyTypeError::new_err(format!("option {option}: expected {expected}, got {got}"))
}

fn extract<'py, T: FromPyObjectOwned<'py>>(
    option: &str,
    expected: &str,
    value: &Bound<'py, PyAny>,
) -> PyResult<T> {
    value
        .extract()
        .map_err(|_| wrong_type(option, expected, value))
}

fn boolean(option: &str, value: &Bound<'_, PyAny>) -> PyResult<bool> {
    extract(option, "a bool", value)
}

fn count<T: for<'py> FromPyObjectOwned<'py>>(
    option: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<T> {
    // An int of the wrong sign or size is a ValueError; anything else a TypeError.
    if value.is_instance_of::<pyo3::types::PyInt>()
        && !value.is_instance_of::<pyo3::types::PyBool>()
    {
        value
            .extract()
            .map_err(|_| PyValueError::new_err(format!("option {option}: {value} is out of range")))
    } else {
        Err(wrong_type(option, "an int", value))
    }
}

/// A number of seconds (int or float, finite, not negative).
pub(crate) fn seconds(option: &str, value: &Bound<'_, PyAny>) -> PyResult<Duration> {
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(wrong_type(option, "seconds (a number)", value));
    }
    let secs: f64 = extract(option, "seconds (a number)", value)?;
    Duration::try_from_secs_f64(secs).map_err(|_| {
        PyValueError::new_err(format!(
            "option {option}: {secs} is not a number of seconds (finite, not negative)"
        ))
    })
}

fn number(option: &str, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(wrong_type(option, "a number", value));
    }
    extract(option, "a number", value)
}

fn text(option: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    extract(option, "a str", value)
}

/// Header fields from a dict or an iterable of `(name, value)` pairs (repeats kept).
pub(crate) fn header_pairs(
    option: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<Vec<(String, String)>> {
    let expected = "a dict or (name, value) pairs of str";
    if let Ok(d) = value.cast::<PyDict>() {
        return d
            .iter()
            .map(|(k, v)| Ok((text(option, &k)?, text(option, &v)?)))
            .collect();
    }
    if value.is_instance_of::<PyString>() {
        return Err(wrong_type(option, expected, value));
    }
    let iter = value
        .try_iter()
        .map_err(|_| wrong_type(option, expected, value))?;
    iter.map(|pair| {
        let pair = pair?;
        pair.extract::<(String, String)>()
            .map_err(|_| wrong_type(option, expected, &pair))
    })
    .collect()
}

/// Applies `options` (the `**options` of `Fetcher` or `fetch_all`) to `builder`.
///
/// # Errors
/// TypeError for an unknown option or a value of the wrong type, naming the option;
/// ValueError for a value out of range.
pub(crate) fn apply(
    mut b: parafetch::Builder,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(parafetch::Builder, Kept)> {
    let mut kept = Kept {
        backlog: 0,
        follow_redirects: false,
        max_redirects: parafetch::DEFAULT_MAX_REDIRECTS,
        one_loop: true,
    };
    let Some(options) = options else {
        return Ok((b, kept));
    };
    for (key, v) in options.iter() {
        let key: String = key.extract()?;
        let k = key.as_str();
        let v = &v;
        b = match k {
            "allow_https_downgrade" => b.allow_https_downgrade(boolean(k, v)?),
            "auto_throttle" => b.auto_throttle(number(k, v)?),
            "backlog" => {
                kept.backlog = count(k, v)?;
                b.backlog(kept.backlog)
            }
            "connect_timeout" => b.connect_timeout(seconds(k, v)?),
            "cookies" => b.cookies(boolean(k, v)?),
            "danger_accept_invalid_certs" => b.danger_accept_invalid_certs(boolean(k, v)?),
            "decompress" => b.decompress(boolean(k, v)?),
            "follow_redirects" => {
                kept.follow_redirects = boolean(k, v)?;
                b.follow_redirects(kept.follow_redirects)
            }
            "headers" => header_pairs(k, v)?
                .into_iter()
                .fold(b, |b, (n, val)| b.header(n, val)),
            "host_backoff" => b.host_backoff(boolean(k, v)?),
            "host_delay" => b.host_delay(seconds(k, v)?),
            "host_rate" => {
                // A rate, or (rate, burst).
                let (rate, burst) = match v.extract::<(f64, u32)>() {
                    Ok(pair) => pair,
                    Err(_) => (
                        number(k, v)
                            .map_err(|_| wrong_type(k, "a number or a (rate, burst) pair", v))?,
                        1,
                    ),
                };
                b.host_rate(rate, burst)
            }
            "idle_timeout" => b.idle_timeout(seconds(k, v)?),
            "keep_alive" => b.keep_alive(boolean(k, v)?),
            "max_body" => b.max_body(count(k, v)?),
            "max_head" => b.max_head(count(k, v)?),
            "max_headers" => b.max_headers(count(k, v)?),
            "max_queued_followups" => b.max_queued_followups(count(k, v)?),
            "max_redirects" => {
                kept.max_redirects = count(k, v)?;
                b.max_redirects(kept.max_redirects)
            }
            "no_proxy" => b.no_proxy(&text(k, v)?),
            "obey_robots" => b.obey_robots(boolean(k, v)?),
            "per_host" => b.per_host(positive(k, v)?),
            "pool_idle_timeout" => b.pool_idle_timeout(seconds(k, v)?),
            "proxy" => b.proxy(&text(k, v)?),
            "rate" => b.rate(number(k, v)?),
            "retries" => b.retries(count(k, v)?),
            "retry_backoff" => b.retry_backoff(seconds(k, v)?),
            // A count of loops, or "auto": one per core.
            "threads" if v.extract::<String>().is_ok_and(|s| s == "auto") => {
                kept.one_loop = false;
                b.threads_auto()
            }
            "threads" => {
                let n = positive(k, v).map_err(|e| {
                    if e.is_instance_of::<PyTypeError>(v.py()) {
                        wrong_type(k, "an int or \"auto\"", v)
                    } else {
                        e
                    }
                })?;
                kept.one_loop = n == 1;
                b.threads(n)
            }
            "timeout" if v.is_none() => b.timeout(None),
            "timeout" => b.timeout(Some(seconds(k, v)?)),
            "tls_roots_pem" => {
                let pem: Vec<u8> = if let Ok(s) = v.cast::<PyString>() {
                    s.to_cow()?.as_bytes().to_vec()
                } else if let Ok(bytes) = v.cast::<PyBytes>() {
                    bytes.as_bytes().to_vec()
                } else {
                    return Err(wrong_type(k, "PEM text (str or bytes)", v));
                };
                b.tls_roots_pem(&pem)
            }
            "user_agent" => b.user_agent(text(k, v)?),
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "unknown option '{k}' (options: {})",
                    OPTIONS.join(", ")
                )));
            }
        };
    }
    Ok((b, kept))
}

/// A count that must be at least 1 (`max_in_flight`, `per_host`).
pub(crate) fn positive(option: &str, value: &Bound<'_, PyAny>) -> PyResult<usize> {
    let n: usize = count(option, value)?;
    if n == 0 {
        return Err(PyValueError::new_err(format!(
            "option {option}: must be at least 1"
        )));
    }
    Ok(n)
}

/// One request's own settings, as `start_request` takes them.
pub(crate) struct RequestArgs<'a, 'py> {
    pub method: &'a str,
    pub headers: Option<&'a Bound<'py, PyAny>>,
    pub data: Option<&'a Bound<'py, PyAny>>,
    /// `None`: not given (the fetcher's); `Some(None)`: `timeout=None`, no timeout.
    pub timeout: Option<Option<&'a Bound<'py, PyAny>>>,
    pub connect_timeout: Option<&'a Bound<'py, PyAny>>,
    pub follow_redirects: Option<bool>,
    pub max_redirects: Option<&'a Bound<'py, PyAny>>,
    pub max_body: Option<&'a Bound<'py, PyAny>>,
    pub retries: Option<&'a Bound<'py, PyAny>>,
    pub decompress: Option<bool>,
}

/// `start_request`'s `timeout`, taken from its `**kwargs` so that `timeout=None` (no
/// timeout for this request) differs from not giving one (the fetcher's): `None` when not
/// given, `Some(None)` for `timeout=None`. Any other keyword is a TypeError, as Python's.
pub(crate) fn timeout_kwarg<'py>(
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Option<Option<Bound<'py, PyAny>>>> {
    let Some(kwargs) = kwargs else {
        return Ok(None);
    };
    let mut timeout = None;
    for (k, v) in kwargs.iter() {
        let k: String = k.extract()?;
        if k != "timeout" {
            return Err(PyTypeError::new_err(format!(
                "start_request() got an unexpected keyword argument '{k}'"
            )));
        }
        timeout = Some((!v.is_none()).then_some(v));
    }
    Ok(timeout)
}

/// RFC 9110 §5.6.2 `tchar`: what a method and a header name are made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks the method and header fields as the engine will (it checks again), so that a
/// bad one raises at once even when `start_request` must first wait for room.
fn check_fields(
    py: Python<'_>,
    url: &str,
    method: &str,
    headers: &[(String, String)],
) -> PyResult<()> {
    let bad = if method.is_empty() || !method.bytes().all(is_tchar) {
        Some("invalid request method")
    } else if headers
        .iter()
        .any(|(n, _)| n.is_empty() || !n.bytes().all(is_tchar))
    {
        Some("invalid request header name")
    } else if headers
        .iter()
        .any(|(_, v)| v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)))
    {
        Some("invalid request header value")
    } else {
        None
    };
    match bad {
        Some(msg) => Err(crate::errors::invalid_request(py, msg, url)),
        None => Ok(()),
    }
}

/// Builds the request for `url` from `args`, over the fetcher's defaults `kept`.
pub(crate) fn request(
    url: &str,
    args: &RequestArgs<'_, '_>,
    kept: Kept,
) -> PyResult<parafetch::Request> {
    let mut r = parafetch::Request::new(args.method, url);
    let headers = match args.headers.filter(|h| !h.is_none()) {
        Some(h) => header_pairs("headers", h)?,
        None => Vec::new(),
    };
    Python::attach(|py| check_fields(py, url, args.method, &headers))?;
    for (n, v) in headers {
        r = r.header(n, v);
    }
    if let Some(d) = args.data.filter(|d| !d.is_none()) {
        let body: Vec<u8> = if let Ok(s) = d.cast::<PyString>() {
            s.to_cow()?.as_bytes().to_vec()
        } else if let Ok(b) = d.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else if let Ok(b) = d.cast::<pyo3::types::PyByteArray>() {
            b.to_vec()
        } else {
            return Err(wrong_type("data", "bytes, bytearray or str", d));
        };
        r = r.body(body);
    }
    match args.timeout {
        None => {}
        Some(None) => r = r.timeout(None),
        Some(Some(t)) => r = r.timeout(Some(seconds("timeout", t)?)),
    }
    if let Some(t) = args.connect_timeout.filter(|t| !t.is_none()) {
        r = r.connect_timeout(seconds("connect_timeout", t)?);
    }
    let max_redirects = match args.max_redirects.filter(|m| !m.is_none()) {
        Some(m) => Some(count("max_redirects", m)?),
        None => None,
    };
    if args.follow_redirects.is_some() || max_redirects.is_some() {
        r = r.follow_redirects(
            args.follow_redirects.unwrap_or(kept.follow_redirects),
            max_redirects.unwrap_or(kept.max_redirects),
        );
    }
    if let Some(m) = args.max_body.filter(|m| !m.is_none()) {
        r = r.max_body(count("max_body", m)?);
    }
    if let Some(n) = args.retries.filter(|n| !n.is_none()) {
        r = r.retries(count("retries", n)?);
    }
    if let Some(on) = args.decompress {
        r = r.decompress(on);
    }
    Ok(r)
}

/// Checks `url` by parafetch's own rules (it parses, is http or https, has a host) without
/// starting anything: a follow-up started from a callback is queued, and must be refused
/// at once like any other `start_request`.
pub(crate) fn check_url(url: &str) -> Result<(), parafetch::Error> {
    parafetch::Queue::<()>::new().start_request(url, |_, _| {}, ())
}
