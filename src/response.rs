//! What a finished request hands back: status, headers, body, where it came from, how long
//! each phase took.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use url::Url;

use crate::proto::Headers;
use crate::proto::HttpVersion;
use crate::proxy::Proxy;

/// A complete HTTP response. Any status, 404 and 500 included, is a `Response`.
#[derive(Debug)]
#[non_exhaustive]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The reason phrase as sent (may be empty).
    pub reason: String,
    /// The HTTP version of the response.
    pub version: HttpVersion,
    /// The header fields as received, in order, repeats kept.
    pub headers: Headers,
    /// The body (decoded when content decoding is on). Empty when the request had a sink.
    pub body: Vec<u8>,
    /// How many body bytes were delivered (to `body` or to the sink).
    pub body_len: u64,
    /// The URL that produced this response (after redirects).
    pub url: Url,
    /// The address of the server that answered.
    pub remote_addr: SocketAddr,
    /// How long each phase of the final attempt took.
    pub timings: Timings,
    /// How many redirects were followed.
    pub redirects: u32,
    /// How many attempts were made (1 without retries).
    pub attempts: u32,
    /// Whether the final attempt reused a pooled keep-alive connection.
    pub reused_connection: bool,
    /// The negotiated TLS parameters, for `https` responses.
    pub tls: Option<TlsInfo>,
    /// The proxy the final attempt went through, if any (its `Display` has no credentials).
    pub proxy: Option<Proxy>,
    /// The `Content-Encoding` left undecoded, so the body is as sent: content decoding was
    /// off, or a coding in the list is one this build does not decode (unknown, its
    /// feature off, or more than four stacked), in which case none of it is decoded.
    /// `None` when the body was decoded or had no coding (`identity` is none).
    pub content_encoding_left: Option<String>,
    /// The request as sent and the response as it came over the connection (after TLS),
    /// byte for byte, when [`Builder::capture_wire`](crate::Builder::capture_wire) (or
    /// the request's) asked for them: what a WARC file records. For the final hop only
    /// (a crawler that archives redirects follows them itself).
    pub wire: Option<Wire>,
}

/// The bytes of one exchange, for archiving (WARC).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Wire {
    /// The request as the origin reads it: origin-form request line, header fields and
    /// body. `Authorization`, `Proxy-Authorization` and `Cookie` values read
    /// `<redacted>` unless [`Builder::capture_secrets`](crate::Builder::capture_secrets)
    /// asked to keep them.
    pub request: Vec<u8>,
    /// The response exactly as received after TLS: status line, header fields, and the
    /// body as transferred (chunked framing and content coding kept).
    pub response: Vec<u8>,
    /// When the request was sent.
    pub sent_at: std::time::SystemTime,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Sizes only: the bytes may hold credentials the caller asked to keep.
        f.debug_struct("Wire")
            .field("request_bytes", &self.request.len())
            .field("response_bytes", &self.response.len())
            .field("sent_at", &self.sent_at)
            .finish()
    }
}

impl Response {
    /// A response with this status from this URL, and the rest empty or zero: no reason
    /// phrase, HTTP/1.1, no headers, an empty body, the unspecified address `0.0.0.0:0`,
    /// zero timings, no redirect, one attempt, a fresh connection, no TLS, no coding left. For testing
    /// callbacks; the fetcher builds the real ones. Fields are public, so set any other
    /// directly, or use [`with_header`](Response::with_header) and
    /// [`with_body`](Response::with_body).
    ///
    /// # Examples
    /// ```
    /// let url = url::Url::parse("http://example.com/").unwrap();
    /// let resp = parafetch::Response::new(404, url).with_body("not here");
    /// assert_eq!((resp.status, resp.body_len), (404, 8));
    /// assert!(!resp.is_success());
    /// ```
    pub fn new(status: u16, url: Url) -> Response {
        Response {
            status,
            reason: String::new(),
            version: HttpVersion::Http11,
            headers: Headers::new(),
            body: Vec::new(),
            body_len: 0,
            url,
            remote_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            timings: Timings::default(),
            redirects: 0,
            attempts: 1,
            reused_connection: false,
            tls: None,
            proxy: None,
            content_encoding_left: None,
            wire: None,
        }
    }

    /// Appends a header field (repeats kept, as received ones are).
    pub fn with_header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Response {
        self.headers.append(name, value);
        self
    }

    /// Sets the body, and [`body_len`](Response::body_len) to its length.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self.body_len = self.body.len() as u64;
        self
    }

    /// The body as text, decoded as UTF-8 with invalid sequences replaced.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How long each phase took. A phase that did not happen (a reused connection needs no
/// resolve, connect or handshake; plain http needs no TLS) is zero. `Default` is all zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timings {
    /// Resolving the host name.
    pub resolve: Duration,
    /// Opening the TCP connection (all addresses tried).
    pub connect: Duration,
    /// The handshake with a proxy (CONNECT or SOCKS), when there was one.
    pub proxy: Duration,
    /// The TLS handshake.
    pub tls: Duration,
    /// From the start of the attempt to the first response byte.
    pub first_byte: Duration,
    /// From the start of the attempt to the end of the response.
    pub total: Duration,
}

/// The negotiated parameters of a TLS connection. `Default` (empty names, no ALPN, not
/// resumed) is for tests; set the public fields as needed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// e.g. `"TLSv1_3"`.
    pub protocol_version: String,
    /// e.g. `"TLS13_AES_128_GCM_SHA256"`.
    pub cipher_suite: String,
    /// The ALPN protocol agreed on, if any.
    pub alpn: Option<String>,
    /// Whether the handshake resumed an earlier session (no full handshake).
    pub resumed: bool,
}
