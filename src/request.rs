//! A request as the caller describes it: method, URL, headers, body, per-request overrides,
//! and where its body should go.
//!
//! Owns validation of caller input (URL, scheme, method, headers) so a bad request is an
//! `Err` from `start_request`, before anything is queued. Never does I/O.

use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::error::{Error, ErrorKind, Phase};
use crate::proto::Headers;
use crate::proxy::Proxy;
use crate::task::Sink;

/// One request: method, URL, headers, optional body and per-request options.
///
/// `start_request` also takes a plain `&str`, `String` or [`Url`] (a GET).
///
/// # Examples
/// ```
/// use parafetch::Request;
/// use std::time::Duration;
/// let req = Request::post("http://127.0.0.1:8080/submit")
///     .header("Content-Type", "application/json")
///     .body(br#"{"a":1}"#.to_vec())
///     .timeout(Some(Duration::from_secs(5)));
/// assert_eq!(req.method(), "POST");
/// ```
pub struct Request {
    pub(crate) method: String,
    pub(crate) target: Target,
    pub(crate) headers: Headers,
    pub(crate) body: Option<Arc<[u8]>>,
    pub(crate) overrides: Overrides,
    pub(crate) sink: Option<Sink>,
    pub(crate) proxy: Option<RequestProxy>,
    /// The cookie jar it uses, by name (`Some("")`: the fetcher's default jar).
    pub(crate) jar: Option<String>,
}

/// A request's own proxy choice, over the fetcher's.
#[derive(Clone, Debug)]
pub(crate) enum RequestProxy {
    /// Through this proxy (or the error its URL gave, reported by `start_request`).
    Via(Result<Arc<Proxy>, Error>),
    /// Directly, whatever the fetcher says.
    Direct,
}

/// The URL as given: parsed already, or text still to check.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Url(Url),
    Text(String),
}

impl Request {
    /// The URL, if it has been parsed already.
    pub(crate) fn parsed_url(&self) -> Option<&Url> {
        match &self.target {
            Target::Url(u) => Some(u),
            Target::Text(_) => None,
        }
    }
}

/// `url` as parafetch shows it in Debug output and error messages: a password reads `***`
/// (`http://user:***@host/`), and so does a user name given without one, often a token
/// (`http://***@host/`). Text that does not parse as a URL is cut at its last `@`, since
/// a password may hold an unencoded `/`, `?` or `#`. For a binding or a program that
/// logs URLs the way parafetch does.
///
/// # Examples
/// ```
/// assert_eq!(parafetch::redact_url("http://me:s3cret@host/a"), "http://me:***@host/a");
/// assert_eq!(parafetch::redact_url("https://t0ken@host/"), "https://***@host/");
/// assert_eq!(parafetch::redact_url("http://me:s3cret@bad host/"), "http://me:***@bad host/");
/// ```
pub fn redact_url(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(u) => hide_userinfo(u),
        Err(_) => crate::proxy::redact(url),
    }
}

fn hide_userinfo(mut u: Url) -> String {
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    } else if !u.username().is_empty() {
        let _ = u.set_username("***");
    }
    u.to_string()
}

impl Target {
    /// The URL as [`redact_url`] shows it: for Debug output.
    pub(crate) fn redacted(&self) -> String {
        match self {
            Target::Url(u) => hide_userinfo(u.clone()),
            Target::Text(t) => redact_url(t),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Target::Url(u) => u.as_str(),
            Target::Text(s) => s,
        }
    }
}

/// The options a single request may override; `None` takes the fetcher's value.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Overrides {
    pub timeout: Option<Option<Duration>>,
    pub connect_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_body: Option<u64>,
    pub follow_redirects: Option<bool>,
    pub max_redirects: Option<u32>,
    pub decompress: Option<bool>,
    pub retries: Option<u32>,
    pub capture_wire: Option<bool>,
}

impl Request {
    /// A request with any method. The URL is checked when the request is started.
    pub fn new(method: impl Into<String>, url: impl IntoRequest) -> Request {
        let mut r = url.into_request();
        r.method = method.into();
        r
    }

    /// A GET request.
    pub fn get(url: impl IntoRequest) -> Request {
        Request::new("GET", url)
    }

    /// A HEAD request: the response has no body.
    pub fn head(url: impl IntoRequest) -> Request {
        Request::new("HEAD", url)
    }

    /// A POST request (add a body with [`Request::body`]).
    pub fn post(url: impl IntoRequest) -> Request {
        Request::new("POST", url)
    }

    /// A PUT request.
    pub fn put(url: impl IntoRequest) -> Request {
        Request::new("PUT", url)
    }

    /// A DELETE request.
    pub fn delete(url: impl IntoRequest) -> Request {
        Request::new("DELETE", url)
    }

    /// Adds a header field (after the fetcher's defaults; a field named here replaces a
    /// default of the same name).
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Request {
        self.headers.append(name, value);
        self
    }

    /// The request body; `Content-Length` is sent for it.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Some(Arc::from(body.into()));
        self
    }

    /// Total time allowed for one attempt (connect to last body byte); `None` for no limit.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Request {
        self.overrides.timeout = Some(timeout);
        self
    }

    /// Time allowed to resolve, connect and finish the TLS handshake.
    pub fn connect_timeout(mut self, timeout: Duration) -> Request {
        self.overrides.connect_timeout = Some(timeout);
        self
    }

    /// Longest silence allowed while waiting for response bytes.
    pub fn idle_timeout(mut self, timeout: Duration) -> Request {
        self.overrides.idle_timeout = Some(timeout);
        self
    }

    /// Largest body accepted (after decoding); more is a `too_large` error.
    pub fn max_body(mut self, bytes: u64) -> Request {
        self.overrides.max_body = Some(bytes);
        self
    }

    /// Whether to follow redirects, and how many at most.
    pub fn follow_redirects(mut self, follow: bool, max: u32) -> Request {
        self.overrides.follow_redirects = Some(follow);
        self.overrides.max_redirects = Some(max);
        self
    }

    /// Whether to ask for gzip/deflate and decode the body.
    pub fn decompress(mut self, on: bool) -> Request {
        self.overrides.decompress = Some(on);
        self
    }

    /// Keeps this request's exchange as bytes in [`Response::wire`](crate::Response::wire)
    /// (see [`Builder::capture_wire`](crate::Builder::capture_wire)).
    pub fn capture_wire(mut self, on: bool) -> Request {
        self.overrides.capture_wire = Some(on);
        self
    }

    /// How many times to retry transient failures (0: never).
    pub fn retries(mut self, n: u32) -> Request {
        self.overrides.retries = Some(n);
        self
    }

    /// Streams the body to `f`, piece by piece, instead of buffering it in the response.
    /// An error from `f` fails the request with kind `io`. The fetcher's `max_body` bounds
    /// memory and so does not apply to a streamed body; [`Request::max_body`] still does.
    ///
    /// `f` must be `Send` so that a request may be handed to a fetcher running on other
    /// threads ([`Handle`](crate::Handle)); count bytes with an atomic or an
    /// `Arc<Mutex<_>>`, not an `Rc`.
    pub fn on_body(mut self, f: impl FnMut(&[u8]) -> io::Result<()> + Send + 'static) -> Request {
        self.sink = Some(Box::new(f));
        self
    }

    /// Streams the body into `w` (a file, say) instead of buffering it in the response.
    pub fn write_to(self, mut w: impl Write + Send + 'static) -> Request {
        self.on_body(move |b| w.write_all(b))
    }

    /// Sends this request through `proxy` (a URL as [`Builder::proxy`](crate::Builder::proxy)
    /// takes), whatever the fetcher's proxy settings and `NO_PROXY` say. A malformed URL is
    /// an `Err` (kind `proxy`) from `start_request`.
    pub fn proxy(mut self, proxy: &str) -> Request {
        self.proxy = Some(RequestProxy::Via(Proxy::parse(proxy).map(Arc::new)));
        self
    }

    /// Uses the cookie jar `name` (created empty the first time), as Scrapy's `cookiejar`
    /// meta picks one: one jar per login keeps sessions apart. Its cookies are sent and the
    /// response's (and its redirects') `Set-Cookie` stored there, whether or not the
    /// fetcher has [`cookies`](crate::Builder::cookies) on. A `Cookie` header set on the
    /// request (or the fetcher) wins: the jar's cookies are then not sent, though the jar
    /// still learns. Read and seed jars with
    /// [`Fetcher::jar_mut`](crate::Fetcher::jar_mut).
    #[cfg(feature = "cookies")]
    pub fn jar(mut self, name: impl Into<String>) -> Request {
        self.jar = Some(name.into());
        self
    }

    /// Sends this request directly, whatever the fetcher's proxy settings say.
    pub fn no_proxy(mut self) -> Request {
        self.proxy = Some(RequestProxy::Direct);
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        self.target.as_str()
    }

    /// The header fields set on this request.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The checks `start_request` and `Handle::submit` make before they accept a request
    /// (the URL parses, is `http` or `https` and has a host; the method and header fields
    /// are valid; a per-request proxy URL parses), without starting it: for a caller that
    /// stores requests to start elsewhere, later (a job queue). The parsed URL.
    ///
    /// # Errors
    /// The error `start_request` would return, in phase `prepare`.
    ///
    /// # Examples
    /// ```
    /// use parafetch::Request;
    /// assert!(Request::get("http://example.com/").check().is_ok());
    /// let e = Request::get("ftp://example.com/").check().unwrap_err();
    /// assert_eq!(e.kind().as_str(), "unsupported_scheme");
    /// ```
    pub fn check(&self) -> Result<Url, Error> {
        let url = check_url(self.target.clone())?;
        crate::proto::validate(&self.method, &self.headers)
            .map_err(|e| Error::proto(Phase::Prepare, e))?;
        if let Some(RequestProxy::Via(Err(e))) = &self.proxy {
            return Err(e.clone());
        }
        Ok(url)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.target.redacted())
            .field("headers", &self.headers)
            .field("body_len", &self.body.as_ref().map(|b| b.len()))
            .finish()
    }
}

/// What `start_request` accepts: a URL (`&str`, `String`, [`Url`]) or a [`Request`].
pub trait IntoRequest {
    /// Converts into a request (a GET for a bare URL).
    fn into_request(self) -> Request;
}

impl IntoRequest for Request {
    fn into_request(self) -> Request {
        self
    }
}

fn from_target(target: Target) -> Request {
    Request {
        method: "GET".into(),
        target,
        headers: Headers::new(),
        body: None,
        overrides: Overrides::default(),
        sink: None,
        proxy: None,
        jar: None,
    }
}

impl IntoRequest for &str {
    fn into_request(self) -> Request {
        from_target(Target::Text(self.to_owned()))
    }
}

impl IntoRequest for String {
    fn into_request(self) -> Request {
        from_target(Target::Text(self))
    }
}

impl IntoRequest for &String {
    fn into_request(self) -> Request {
        from_target(Target::Text(self.clone()))
    }
}

impl IntoRequest for Url {
    fn into_request(self) -> Request {
        from_target(Target::Url(self))
    }
}

impl IntoRequest for &Url {
    fn into_request(self) -> Request {
        from_target(Target::Url(self.clone()))
    }
}

/// Parses and checks a URL: it must parse, be `http` or `https`, and have a host.
///
/// # Errors
/// `invalid_url` or `unsupported_scheme`, in phase `prepare`.
pub(crate) fn check_url(target: Target) -> Result<Url, Error> {
    let url = match target {
        Target::Url(u) => u,
        Target::Text(s) => Url::parse(s.trim()).map_err(|e| {
            // The parser's reason is the cause (`{:#}` prints it), not part of the message.
            // A password in it is not quoted: errors get logged.
            let msg = format!("{:?} is not a valid url", crate::proxy::redact(&s));
            Error::new(ErrorKind::InvalidUrl, Phase::Prepare, msg).with_source(e)
        })?,
    };
    check_parsed(url)
}

pub(crate) fn check_parsed(url: Url) -> Result<Url, Error> {
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(Error::new(
                ErrorKind::UnsupportedScheme,
                Phase::Prepare,
                format!("scheme {other:?} is not supported (only http and https)"),
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::new(
            ErrorKind::InvalidUrl,
            Phase::Prepare,
            format!("{:?} has no host", url.as_str()),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_refuses_what_start_request_refuses() {
        let kind = |r: Request| r.check().map(|u| u.to_string()).map_err(|e| e.kind());
        assert_eq!(
            kind(Request::get(" http://A.example/x ")),
            Ok("http://a.example/x".into())
        );
        assert_eq!(kind(Request::get("http://")), Err(ErrorKind::InvalidUrl));
        assert_eq!(
            kind(Request::get("file:///etc/passwd")),
            Err(ErrorKind::UnsupportedScheme)
        );
        let bad_method = Request::new("GE T", "http://a/");
        assert_eq!(kind(bad_method), Err(ErrorKind::InvalidRequest));
        let bad_header = Request::get("http://a/").header("X", "a\r\nInjected: 1");
        assert_eq!(kind(bad_header), Err(ErrorKind::InvalidRequest));
        let bad_proxy = Request::get("http://a/").proxy("gopher://p:1");
        assert!(kind(bad_proxy).is_err());
    }

    #[test]
    fn url_checks() {
        let ok = check_url(Target::Text("http://example.com/a?b#c".into())).unwrap();
        assert_eq!(ok.host_str(), Some("example.com"));
        let bad = check_url(Target::Text("not a url".into())).unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::InvalidUrl);
        let ftp = check_url(Target::Text("ftp://example.com/".into())).unwrap_err();
        assert_eq!(ftp.kind(), ErrorKind::UnsupportedScheme);
        let mailto = check_url(Target::Text("mailto:a@example.com".into())).unwrap_err();
        assert_eq!(mailto.kind(), ErrorKind::UnsupportedScheme);
    }
}
