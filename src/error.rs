//! The public error type: what went wrong, in which phase, and why.
//!
//! Owns classification only; it never decides whether to retry (the engine does).

use std::error::Error as StdError;
use std::fmt;
use std::io;

use crate::proto::ProtoError;

/// What went wrong with a request. Stable: tools and logs key on [`ErrorKind::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller gave a URL that does not parse or has no host. Caller's fault.
    InvalidUrl,
    /// The URL's scheme is not `http` (or `https` where TLS is built in). Caller's fault.
    UnsupportedScheme,
    /// The caller's request is malformed (bad method, header name or value). Caller's fault.
    InvalidRequest,
    /// The host name could not be resolved. The name's or the resolver's fault.
    Dns,
    /// No connection could be made (refused, unreachable, reset while connecting).
    Connect,
    /// The TLS handshake or record layer failed (bad certificate, protocol error).
    Tls,
    /// A deadline passed; [`Error::phase`] says during which phase.
    Timeout,
    /// The server sent bytes that are not valid HTTP/1.x. Server's fault.
    Malformed,
    /// The connection ended before the response was complete. Server's or network's fault.
    Truncated,
    /// The connection ended before any response byte (curl's "empty reply from server"):
    /// the server closed it, often a pooled connection it had timed out as we reused it.
    EmptyReply,
    /// The response exceeded a configured limit (head size, header count, body size).
    TooLarge,
    /// More redirects than allowed, or a redirect loop.
    TooManyRedirects,
    /// A redirect that must not be followed (bad `Location`, other scheme, https→http).
    BadRedirect,
    /// Another I/O error on an established connection (reset, broken pipe, ...).
    Io,
}

impl ErrorKind {
    /// A stable snake_case name, e.g. `"timeout"`, `"too_large"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::InvalidUrl => "invalid_url",
            ErrorKind::UnsupportedScheme => "unsupported_scheme",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Dns => "dns",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Truncated => "truncated",
            ErrorKind::EmptyReply => "empty_reply",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::TooManyRedirects => "too_many_redirects",
            ErrorKind::BadRedirect => "bad_redirect",
            ErrorKind::Io => "io",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phase of a request's life in which an error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Before any I/O: checking the URL and request.
    Prepare,
    /// Resolving the host name.
    Resolve,
    /// Opening the TCP connection.
    Connect,
    /// The TLS handshake.
    Tls,
    /// Writing the request.
    SendRequest,
    /// Waiting for and reading the response head.
    ReceiveHead,
    /// Reading the response body.
    ReceiveBody,
    /// Deciding on a redirect.
    Redirect,
}

impl Phase {
    /// A stable snake_case name, e.g. `"receive_head"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::SendRequest => "send_request",
            Phase::ReceiveHead => "receive_head",
            Phase::ReceiveBody => "receive_body",
            Phase::Redirect => "redirect",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one request failed. Other requests are never affected.
pub struct Error {
    kind: ErrorKind,
    phase: Phase,
    message: String,
    attempts: u32,
    reused: Option<bool>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, phase: Phase, message: impl Into<String>) -> Error {
        Error {
            kind,
            phase,
            message: message.into(),
            attempts: 0,
            reused: None,
            source: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Error {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn io(kind: ErrorKind, phase: Phase, err: io::Error) -> Error {
        Error::new(kind, phase, err.to_string()).with_source(err)
    }

    /// A response the server got wrong, classified by what the protocol layer found.
    pub(crate) fn proto(phase: Phase, err: ProtoError) -> Error {
        let kind = match err {
            ProtoError::HeadTooLarge
            | ProtoError::TooManyHeaders
            | ProtoError::ChunkLineTooLong
            | ProtoError::TrailersTooLarge => ErrorKind::TooLarge,
            ProtoError::NoResponse => ErrorKind::EmptyReply,
            ProtoError::TruncatedHead | ProtoError::TruncatedBody => ErrorKind::Truncated,
            ProtoError::InvalidMethod
            | ProtoError::InvalidHeaderName
            | ProtoError::InvalidHeaderValue => ErrorKind::InvalidRequest,
            _ => ErrorKind::Malformed,
        };
        Error::new(kind, phase, err.as_str()).with_source(err)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// When it went wrong.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A lowercase, human-readable description (without kind and phase).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// How many attempts were made (more than 1 only with retries); 0 when the request
    /// was refused before any attempt.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub(crate) fn set_attempts(&mut self, n: u32) {
        self.attempts = n;
    }

    /// Whether the failed attempt ran on a reused (pooled keep-alive) connection; `None`
    /// when it never had a connection (refused before any I/O, or resolve or connect
    /// failed).
    pub fn reused_connection(&self) -> Option<bool> {
        self.reused
    }

    pub(crate) fn set_reused(&mut self, reused: Option<bool>) {
        self.reused = reused;
    }

    /// Adds what the caller of the failing layer knows (why it did not retry, say).
    pub(crate) fn add_context(&mut self, note: &str) {
        self.message.push_str("; ");
        self.message.push_str(note);
    }

    /// Whether this is a timeout (of any phase).
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// The protocol-level cause, when the server's bytes were at fault.
    pub fn proto_error(&self) -> Option<ProtoError> {
        self.source
            .as_ref()
            .and_then(|s| s.downcast_ref::<ProtoError>())
            .copied()
    }

    /// The I/O cause, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_ref().and_then(|s| s.downcast_ref())
    }
}

/// Our words for an I/O error, for a message that keeps the error itself as its source.
pub(crate) fn describe_io(e: &io::Error) -> &'static str {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::NotConnected => "not connected",
        K::AddrNotAvailable => "address not available",
        K::AddrInUse => "address in use",
        K::BrokenPipe => "broken pipe",
        K::TimedOut => "timed out",
        K::UnexpectedEof => "unexpected end of stream",
        K::WriteZero => "the connection took no bytes",
        K::PermissionDenied => "permission denied",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::NetworkDown => "network down",
        K::InvalidData => "invalid data",
        _ => "i/o error",
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("phase", &self.phase)
            .field("message", &self.message);
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} during {}: {}", self.kind, self.phase, self.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn StdError + 'static))
    }
}
