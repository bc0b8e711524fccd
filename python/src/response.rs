//! `Response`, its `Headers` (a case-insensitive multi-map) and `Timings`, built once from
//! a [`parafetch::Response`] while the GIL is held.
//!
//! Owns the Python view of a response and its reprs, which never show a secret: header
//! values that carry credentials are redacted and a URL's password reads `***`. Never
//! touches a fetcher.

use std::time::Duration;

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

/// Header fields whose values are credentials: never shown by a repr.
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
];

/// `url` with its userinfo hidden, for reprs and an error's `url`, as parafetch's own
/// messages show it ([`parafetch::redact_url`]).
pub(crate) use parafetch::redact_url;

/// Header fields as received: in order, repeats kept, names matched case-insensitively.
///
/// `h["content-type"]` is the first value (KeyError when absent), `h.get(name, default)`
/// likewise without the error, `h.get_all(name)` every value in order. `len(h)`,
/// iteration and `items()` go over the fields, so a repeated name comes once per field.
#[pyclass(frozen, module = "parafetch")]
pub struct Headers {
    fields: parafetch::Headers,
}

impl Headers {
    pub(crate) fn new(fields: parafetch::Headers) -> Headers {
        Headers { fields }
    }
}

#[pymethods]
impl Headers {
    fn __getitem__(&self, name: &str) -> PyResult<String> {
        self.fields
            .get(name)
            .map(str::to_owned)
            .ok_or_else(|| PyKeyError::new_err(name.to_owned()))
    }

    /// The first value of `name`, or `default`.
    #[pyo3(signature = (name, default=None))]
    fn get(&self, py: Python<'_>, name: &str, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.fields.get(name) {
            Some(v) => Ok(v.into_pyobject(py)?.into_any().unbind()),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// Every value of `name`, in the order received (empty when absent).
    fn get_all(&self, name: &str) -> Vec<String> {
        self.fields.get_all(name).map(str::to_owned).collect()
    }

    /// `(name, value)` for every field, in order, names as received.
    fn items(&self) -> Vec<(String, String)> {
        self.fields
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    /// The names of the fields, in order, once per field.
    fn keys(&self) -> Vec<String> {
        self.fields.iter().map(|(n, _)| n.to_owned()).collect()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.fields.contains(name)
    }

    fn __len__(&self) -> usize {
        self.fields.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyList::new(py, self.keys())?
            .try_iter()
            .map(Bound::into_any)
    }

    fn __repr__(&self) -> String {
        let shown: Vec<String> = self
            .fields
            .iter()
            .map(|(n, v)| {
                let secret = SECRET_HEADERS.iter().any(|s| n.eq_ignore_ascii_case(s));
                let v = if secret { "<redacted>" } else { v };
                format!("({n:?}, {v:?})")
            })
            .collect();
        format!("Headers([{}])", shown.join(", "))
    }
}

/// How long each phase of the final attempt took, in seconds (0.0 for a phase that did not
/// happen: a reused connection needs no resolve, connect or handshake).
#[pyclass(frozen, module = "parafetch")]
pub struct Timings {
    /// Resolving the host name.
    #[pyo3(get)]
    resolve: f64,
    /// Opening the TCP connection.
    #[pyo3(get)]
    connect: f64,
    /// The handshake with a proxy.
    #[pyo3(get)]
    proxy: f64,
    /// The TLS handshake.
    #[pyo3(get)]
    tls: f64,
    /// From the start of the attempt to the first response byte.
    #[pyo3(get)]
    first_byte: f64,
    /// From the start of the attempt to the end of the response.
    #[pyo3(get)]
    total: f64,
}

impl Timings {
    fn pairs(&self) -> [(&'static str, f64); 6] {
        [
            ("resolve", self.resolve),
            ("connect", self.connect),
            ("proxy", self.proxy),
            ("tls", self.tls),
            ("first_byte", self.first_byte),
            ("total", self.total),
        ]
    }
}

#[pymethods]
impl Timings {
    /// The timings as a dict of seconds.
    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.pairs() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let shown: Vec<String> = self
            .pairs()
            .iter()
            .map(|(k, v)| format!("{k}={v:.6}"))
            .collect();
        format!("Timings({})", shown.join(", "))
    }
}

/// A complete HTTP response. Any status, 404 and 500 included, is a `Response`; a failure
/// is a `parafetch.Error` instead.
#[pyclass(frozen, module = "parafetch")]
pub struct Response {
    /// The status code, e.g. 200.
    #[pyo3(get)]
    status: u16,
    /// The reason phrase as sent (may be empty).
    #[pyo3(get)]
    reason: String,
    /// `"HTTP/1.1"` or `"HTTP/1.0"`.
    #[pyo3(get)]
    http_version: &'static str,
    /// The header fields (a `Headers`).
    #[pyo3(get)]
    headers: Py<Headers>,
    /// The body, decoded when `decompress` is on.
    #[pyo3(get)]
    body: Py<PyBytes>,
    /// The URL that produced this response (after redirects).
    #[pyo3(get)]
    url: String,
    /// How many redirects were followed.
    #[pyo3(get)]
    redirects: u32,
    /// How many attempts were made (1 without retries).
    #[pyo3(get)]
    attempts: u32,
    /// Whether the final attempt reused a kept-alive connection.
    #[pyo3(get)]
    reused_connection: bool,
    /// The server's address as `(host, port)`.
    #[pyo3(get)]
    remote_addr: Py<PyTuple>,
    /// The phases' durations (a `Timings`).
    #[pyo3(get)]
    timings: Py<Timings>,
    /// The TLS session, kept as Rust values: the getter makes a new dict each time, so
    /// no mutable Python object hangs off a response (no reference cycle through it).
    tls: Option<parafetch::TlsInfo>,
    /// The exchange as bytes (option `capture_wire`), for `wire`.
    wire: Option<parafetch::Wire>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Response {
    /// The Python view of `r`. Copies the body into a `bytes` once.
    pub(crate) fn from_rust(py: Python<'_>, r: parafetch::Response) -> PyResult<Response> {
        let t = r.timings;
        let timings = Timings {
            resolve: secs(t.resolve),
            connect: secs(t.connect),
            proxy: secs(t.proxy),
            tls: secs(t.tls),
            first_byte: secs(t.first_byte),
            total: secs(t.total),
        };
        let addr = (r.remote_addr.ip().to_string(), r.remote_addr.port());
        Ok(Response {
            status: r.status,
            reason: r.reason,
            http_version: r.version.as_str(),
            headers: Py::new(py, Headers::new(r.headers))?,
            body: PyBytes::new(py, &r.body).unbind(),
            url: r.url.into(),
            redirects: r.redirects,
            attempts: r.attempts,
            reused_connection: r.reused_connection,
            remote_addr: addr.into_pyobject(py)?.unbind(),
            timings: Py::new(py, timings)?,
            tls: r.tls,
            wire: r.wire,
        })
    }
}

/// The `charset` parameter of a `Content-Type` value, if any.
fn charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
            .filter(|v| !v.is_empty())
    })
}

#[pymethods]
impl Response {
    /// For https: a dict of `protocol_version`, `cipher_suite`, `alpn`, `resumed`; else
    /// None.
    #[getter]
    fn tls<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(info) = &self.tls else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("protocol_version", &info.protocol_version)?;
        d.set_item("cipher_suite", &info.cipher_suite)?;
        d.set_item("alpn", info.alpn.as_deref())?;
        d.set_item("resumed", info.resumed)?;
        Ok(Some(d))
    }

    /// With the `capture_wire` option: a dict of `request` (bytes as sent; credentials
    /// read `<redacted>` unless `capture_secrets`), `response` (bytes exactly as
    /// received, framing and content coding kept) and `sent_at` (Unix time); else None.
    #[getter]
    fn wire<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(w) = &self.wire else {
            return Ok(None);
        };
        let sent_at = w
            .sent_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let d = PyDict::new(py);
        d.set_item("request", PyBytes::new(py, &w.request))?;
        d.set_item("response", PyBytes::new(py, &w.response))?;
        d.set_item("sent_at", sent_at)?;
        Ok(Some(d))
    }

    /// Whether the status is 2xx.
    #[getter]
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text: decoded with `encoding`, else the `charset` of `Content-Type`,
    /// else UTF-8; undecodable bytes replaced (`errors`, as for `bytes.decode`). An
    /// unknown charset is a LookupError.
    #[pyo3(signature = (encoding=None, errors="replace"))]
    fn text<'py>(
        &self,
        py: Python<'py>,
        encoding: Option<&str>,
        errors: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let headers = self.headers.get();
        let declared = headers.fields.get("content-type").and_then(charset);
        let encoding = encoding.or(declared).unwrap_or("utf-8");
        self.body
            .bind(py)
            .call_method1("decode", (encoding, errors))
    }

    /// The body parsed as JSON (`json.loads`); its errors are json's.
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?
            .call_method1("loads", (self.body.bind(py),))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let len = self.body.bind(py).as_bytes().len();
        format!(
            "<Response [{} {}] {} ({} bytes)>",
            self.status,
            self.reason,
            redact_url(&self.url),
            len
        )
    }
}
