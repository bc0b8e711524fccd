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
    "auto_throttle_delays",
    "backlog",
    "capture_secrets",
    "capture_wire",
    "connect_timeout",
    "cookie_jar",
    "cookies",
    "danger_accept_invalid_certs",
    "decompress",
    "dns_cache_ttl",
    "dns_search",
    "dns_servers",
    "dns_timeout",
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
    "max_redirects",
    "no_proxy",
    "obey_robots",
    "per_host",
    "politeness_key",
    "pool_idle_timeout",
    "pool_max_idle",
    "proxy",
    "proxy_danger_accept_invalid_certs",
    "proxy_default_roots",
    "proxy_from_env",
    "proxy_roots_pem",
    "proxy_rotation",
    "proxy_tunnel",
    "rate",
    "resolve",
    "retries",
    "retry_backoff",
    "robots_cache_ttl",
    "system_resolver",
    "threads",
    "timeout",
    "tls_default_roots",
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
    let mut proxies: Option<Vec<String>> = None;
    let mut rotation = parafetch::Rotation::RoundRobin;
    for (key, v) in options.iter() {
        let key: String = key.extract()?;
        let k = key.as_str();
        let v = &v;
        b = match k {
            "allow_https_downgrade" => b.allow_https_downgrade(boolean(k, v)?),
            "auto_throttle" => b.auto_throttle(number(k, v)?),
            "auto_throttle_delays" => {
                let (start, max) = seconds_pair(k, v)?;
                b.auto_throttle_delays(start, max)
            }
            "capture_secrets" => b.capture_secrets(boolean(k, v)?),
            "capture_wire" => b.capture_wire(boolean(k, v)?),
            "backlog" => {
                kept.backlog = count(k, v)?;
                b.backlog(kept.backlog)
            }
            "connect_timeout" => b.connect_timeout(seconds(k, v)?),
            "cookies" => b.cookies(boolean(k, v)?),
            "cookie_jar" => b.cookie_jar(read_cookie_file(k, v)?),
            "danger_accept_invalid_certs" => b.danger_accept_invalid_certs(boolean(k, v)?),
            "decompress" => b.decompress(boolean(k, v)?),
            "dns_cache_ttl" => {
                let (floor, ceiling) = seconds_pair(k, v)?;
                b.dns_cache_ttl(floor, ceiling)
            }
            "dns_search" => {
                let (domains, ndots): (Vec<String>, u8) =
                    extract(k, "a (list of str, ndots) pair", v)?;
                let domains: Vec<&str> = domains.iter().map(String::as_str).collect();
                b.dns_search(&domains, ndots)
            }
            "dns_servers" => {
                let servers: Vec<String> = extract(k, "a list of addresses (str)", v)?;
                let servers = servers
                    .iter()
                    .map(|a| socket_addr(k, a, 53))
                    .collect::<PyResult<Vec<_>>>()?;
                b.dns_servers(&servers)
            }
            "dns_timeout" => {
                let (per_try, attempts): (Bound<'_, PyAny>, u8) =
                    extract(k, "a (seconds, attempts) pair", v)?;
                b.dns_timeout(seconds(k, &per_try)?, attempts)
            }
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
            "max_queued_followups" => {
                // The Rust option bounds a callback's follow-up queue; a Python callback
                // starts follow-ups with start_request instead, which waits for room.
                return Err(PyTypeError::new_err(
                    "option 'max_queued_followups' does not apply in Python: a callback \
                     starts its follow-ups with start_request, which waits for room",
                ));
            }
            "max_redirects" => {
                kept.max_redirects = count(k, v)?;
                b.max_redirects(kept.max_redirects)
            }
            "no_proxy" => b.no_proxy(&text(k, v)?),
            "obey_robots" => b.obey_robots(boolean(k, v)?),
            "per_host" => b.per_host(positive(k, v)?),
            "politeness_key" => match text(k, v)?.as_str() {
                "host" => b.politeness_key(parafetch::PolitenessKey::Host),
                "domain" => b.politeness_key(parafetch::PolitenessKey::Domain),
                other => {
                    return Err(PyValueError::new_err(format!(
                        "option {k}: \"host\" or \"domain\", not {other:?}"
                    )));
                }
            },
            "pool_idle_timeout" => b.pool_idle_timeout(seconds(k, v)?),
            "pool_max_idle" => {
                let (per_host, total): (usize, usize) =
                    extract(k, "a (per_host, total) pair of ints", v)?;
                b.pool_max_idle(per_host, total)
            }
            // One proxy (str), or several taken in turn (`proxy_rotation`).
            "proxy" if v.is_instance_of::<PyString>() => {
                proxies = Some(vec![text(k, v)?]);
                b
            }
            "proxy" => {
                proxies = Some(extract(k, "a proxy URL (str) or a list of them", v)?);
                b
            }
            "proxy_danger_accept_invalid_certs" => {
                b.proxy_danger_accept_invalid_certs(boolean(k, v)?)
            }
            "proxy_default_roots" => b.proxy_default_roots(boolean(k, v)?),
            "proxy_from_env" => b.proxy_from_env(boolean(k, v)?),
            "proxy_roots_pem" => b.proxy_roots_pem(&pem(k, v)?),
            "proxy_rotation" => {
                rotation = match text(k, v)?.as_str() {
                    "round_robin" => parafetch::Rotation::RoundRobin,
                    "sticky_per_host" => parafetch::Rotation::StickyPerHost,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "option {k}: \"round_robin\" or \"sticky_per_host\", not {other:?}"
                        )));
                    }
                };
                b
            }
            "proxy_tunnel" => b.proxy_tunnel(boolean(k, v)?),
            "rate" => b.rate(number(k, v)?),
            "retries" => b.retries(count(k, v)?),
            "resolve" => {
                let expected = "a dict of \"host:port\" to an address or a list of them";
                let d = v.cast::<PyDict>().map_err(|_| wrong_type(k, expected, v))?;
                for (target, addrs) in d.iter() {
                    let target = text(k, &target)?;
                    let (host, port) = target
                        .rsplit_once(':')
                        .and_then(|(h, p)| {
                            Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?))
                        })
                        .ok_or_else(|| {
                            PyValueError::new_err(format!(
                                "option {k}: {target:?} is not \"host:port\""
                            ))
                        })?;
                    let addrs: Vec<String> = if addrs.is_instance_of::<PyString>() {
                        vec![text(k, &addrs)?]
                    } else {
                        extract(k, expected, &addrs)?
                    };
                    let addrs = addrs
                        .iter()
                        .map(|a| socket_addr(k, a, port))
                        .collect::<PyResult<Vec<_>>>()?;
                    b = b.resolve(host, port, &addrs);
                }
                b
            }
            "retry_backoff" => b.retry_backoff(seconds(k, v)?),
            "robots_cache_ttl" => {
                let (fetched, unreachable) = seconds_pair(k, v)?;
                b.robots_cache_ttl(fetched, unreachable)
            }
            "system_resolver" => b.system_resolver(positive(k, v)?),
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
            "tls_default_roots" => b.tls_default_roots(boolean(k, v)?),
            "tls_roots_pem" => b.tls_roots_pem(&pem(k, v)?),
            "user_agent" => b.user_agent(text(k, v)?),
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "unknown option '{k}' (options: {})",
                    OPTIONS.join(", ")
                )));
            }
        };
    }
    if let Some(list) = proxies {
        b = b.proxies(list, rotation);
    }
    Ok((b, kept))
}

/// PEM text, as str or bytes.
/// The cookies of the Netscape cookie file at `value` (a str or os.PathLike path): curl's
/// `-b FILE`/`-c FILE` and wget's `--save-cookies` format. Expired and malformed lines are
/// skipped; a file that cannot be read is an OSError naming it.
fn read_cookie_file(option: &str, value: &Bound<'_, PyAny>) -> PyResult<parafetch::CookieJar> {
    let path: std::path::PathBuf = value
        .extract()
        .map_err(|_| wrong_type(option, "a path (str or os.PathLike)", value))?;
    let cannot = |e: std::io::Error| {
        pyo3::exceptions::PyOSError::new_err(format!(
            "option {option}: cannot read {}: {e}",
            path.display()
        ))
    };
    let file = std::fs::File::open(&path).map_err(cannot)?;
    let mut jar = parafetch::CookieJar::new();
    jar.read_netscape(std::io::BufReader::new(file))
        .map_err(cannot)?;
    Ok(jar)
}

fn pem(option: &str, value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = value.cast::<PyString>() {
        Ok(s.to_cow()?.as_bytes().to_vec())
    } else if let Ok(bytes) = value.cast::<PyBytes>() {
        Ok(bytes.as_bytes().to_vec())
    } else {
        Err(wrong_type(option, "PEM text (str or bytes)", value))
    }
}

/// A pair of durations in seconds.
fn seconds_pair(option: &str, value: &Bound<'_, PyAny>) -> PyResult<(Duration, Duration)> {
    let (a, b): (Bound<'_, PyAny>, Bound<'_, PyAny>) = extract(option, "a pair of seconds", value)?;
    Ok((seconds(option, &a)?, seconds(option, &b)?))
}

/// An IP address with an optional port (`10.0.0.1`, `10.0.0.1:5353`, `[::1]:53`).
fn socket_addr(option: &str, text: &str, port: u16) -> PyResult<std::net::SocketAddr> {
    if let Ok(a) = text.parse::<std::net::SocketAddr>() {
        return Ok(a);
    }
    match text.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(std::net::SocketAddr::new(ip, port)),
        Err(_) => Err(PyValueError::new_err(format!(
            "option {option}: {text:?} is not an IP address"
        ))),
    }
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
    function: &str,
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
                "{function}() got an unexpected keyword argument '{k}'"
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
