//! The public error type: what went wrong, in which phase, and why.
//!
//! Owns classification only; it never decides whether to retry (the engine does).
//!
//! The display rule: `{}` prints `"{kind} during {phase}: {message}"`, where the message is
//! in our own words and never repeats its cause's text; [`std::error::Error::source`]
//! returns the cause; the alternate form `{:#}` appends the chain of causes once
//! (`": {cause}: {cause's cause}"`). So a chain printer (`anyhow`'s `{:#}`, or a loop over
//! `source()`) and ours each print every cause exactly once.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

use crate::proto::ProtoError;
use crate::proxy::Proxy;

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
    /// The proxy refused or broke the request (a CONNECT answered other than 2xx, 407, a
    /// SOCKS failure code, garbage, a close mid-handshake), or a proxy URL is malformed.
    /// The proxy's (or its URL's writer's) fault; failing to reach the proxy is `connect`.
    Proxy,
    /// A callback queued a follow-up while the fetcher already held as many requests
    /// (accepted, not yet called back) as
    /// [`Builder::max_queued_followups`](crate::Builder::max_queued_followups) allows.
    /// Caller's fault: the follow-up was not kept; start it again once requests finish.
    QueueFull,
    /// The origin's robots.txt disallows the URL for our user agent, or could not be
    /// fetched (then everything there is disallowed for a while). Only with
    /// [`Builder::obey_robots`](crate::Builder::obey_robots); the request never touched
    /// the network.
    Robots,
    /// The fetcher is shutting down (a [`Handle`](crate::Handle) was shut down or its
    /// last clone dropped) and takes no new requests. Requests accepted before still
    /// complete.
    ShutDown,
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
            ErrorKind::Proxy => "proxy",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::Robots => "robots",
            ErrorKind::ShutDown => "shut_down",
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
    /// The handshake with a proxy (CONNECT, SOCKS), or reaching it.
    Proxy,
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
    /// Checking the URL against the origin's robots.txt.
    Robots,
}

impl Phase {
    /// A stable snake_case name, e.g. `"receive_head"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Proxy => "proxy",
            Phase::Tls => "tls",
            Phase::SendRequest => "send_request",
            Phase::ReceiveHead => "receive_head",
            Phase::ReceiveBody => "receive_body",
            Phase::Redirect => "redirect",
            Phase::Robots => "robots",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one request failed. Other requests are never affected.
///
/// `{}` prints `"{kind} during {phase}: {message}"`; the message never repeats the cause,
/// which [`source`](std::error::Error::source) returns and `{:#}` appends.
///
/// # Examples
/// ```
/// # fn show(e: &parafetch::Error) {
/// eprintln!("{e}");   // e.g. "io during receive_body: connection reset"
/// eprintln!("{e:#}"); // the same, then ": " and each cause, e.g. the OS's own words
/// # }
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    phase: Phase,
    message: String,
    attempts: u32,
    reused: Option<bool>,
    proxy: Option<Arc<Proxy>>,
    proto: Option<ProtoError>,
    // An `Arc` so an error can be cloned (a builder's remembered error is reported to every
    // URL of a `fetch_all`).
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, phase: Phase, message: impl Into<String>) -> Error {
        Error {
            kind,
            phase,
            message: message.into(),
            attempts: 0,
            reused: None,
            proxy: None,
            proto: None,
            source: None,
        }
    }

    /// Attaches the cause. The message must not repeat the cause's text (see the display
    /// rule in the module comment).
    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Error {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// An I/O error: the message names its kind in our words, the error itself is the
    /// source.
    pub(crate) fn io(kind: ErrorKind, phase: Phase, err: io::Error) -> Error {
        Error::new(kind, phase, io_words(err.kind())).with_source(err)
    }

    /// A response the server got wrong (or a request we refuse to send), classified by what
    /// the protocol layer found. The protocol error's text is our own words, so it is the
    /// message, and it is no cause: [`Error::proto_error`] returns it.
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
            | ProtoError::InvalidHeaderValue
            | ProtoError::InvalidConnectTarget => ErrorKind::InvalidRequest,
            _ => ErrorKind::Malformed,
        };
        let mut e = Error::new(kind, phase, err.as_str());
        e.proto = Some(err);
        e
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// When it went wrong.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A lowercase, human-readable description in parafetch's words, without kind, phase
    /// or cause (the cause is [`source`](std::error::Error::source); `{:#}` prints both).
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

    /// Whether the failed attempt ran on a reused keep-alive connection: `Some(true)` for
    /// a pooled one, `Some(false)` for a fresh one, `None` when no connection was involved
    /// (the request was refused before any, or resolving or connecting failed).
    pub fn reused_connection(&self) -> Option<bool> {
        self.reused
    }

    pub(crate) fn set_reused(&mut self, reused: Option<bool>) {
        self.reused = reused;
    }

    /// The proxy the failed attempt went through, if any (its `Display` and `Debug` never
    /// show credentials).
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_deref()
    }

    pub(crate) fn set_proxy(&mut self, proxy: Option<Arc<Proxy>>) {
        self.proxy = proxy;
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

    /// What the protocol layer found, when the server's bytes (or the caller's request
    /// head) were at fault. Its text is [`Error::message`]; it is not a
    /// [`source`](std::error::Error::source).
    pub fn proto_error(&self) -> Option<ProtoError> {
        self.proto
    }

    /// The I/O cause, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_deref().and_then(|s| s.downcast_ref())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("phase", &self.phase)
            .field("message", &self.message);
        if let Some(r) = self.reused {
            d.field("reused", &r);
        }
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} during {}: {}", self.kind, self.phase, self.message)?;
        if f.alternate() {
            let mut cause = self.source();
            while let Some(c) = cause {
                write!(f, ": {c}")?;
                cause = c.source();
            }
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// An I/O error's kind in our words, for [`Error::io`]'s message.
pub(crate) fn io_words(kind: io::ErrorKind) -> &'static str {
    use io::ErrorKind as K;
    match kind {
        K::ConnectionReset => "connection reset",
        K::ConnectionRefused => "connection refused",
        K::ConnectionAborted => "connection aborted",
        K::NotConnected => "not connected",
        K::BrokenPipe => "broken pipe",
        K::TimedOut => "timed out",
        K::UnexpectedEof => "unexpected end of stream",
        K::WriteZero => "the peer accepted no more bytes",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::NetworkDown => "network down",
        K::AddrInUse => "address in use",
        K::AddrNotAvailable => "address not available",
        K::PermissionDenied => "permission denied",
        K::InvalidData => "invalid data",
        K::OutOfMemory => "out of memory",
        _ => "i/o error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer cause")
        }
    }

    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    /// Prints a chain the way `anyhow`'s `{:#}` does: each error's `{}`, joined by ": ".
    fn chain(e: &dyn StdError) -> String {
        let mut out = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }

    #[test]
    fn display_source_and_alternate_never_repeat_a_cause() {
        let io = io::Error::new(io::ErrorKind::ConnectionReset, "peer said bye");
        let e = Error::io(ErrorKind::Io, Phase::ReceiveBody, io);
        assert_eq!(e.to_string(), "io during receive_body: connection reset");
        assert_eq!(
            format!("{e:#}"),
            "io during receive_body: connection reset: peer said bye"
        );
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("peer said bye")
        );
        // A source()-walking printer sees each cause once too.
        assert_eq!(chain(&e), format!("{e:#}"));
        assert_eq!(
            e.io_error().map(io::Error::kind),
            Some(io::ErrorKind::ConnectionReset)
        );

        // Two levels: each cause printed once, in order.
        let inner = io::Error::other("inner cause");
        let e = Error::new(ErrorKind::Connect, Phase::Connect, "no address worked")
            .with_source(Outer(inner));
        assert_eq!(e.to_string(), "connect during connect: no address worked");
        assert_eq!(
            format!("{e:#}"),
            "connect during connect: no address worked: outer cause: inner cause"
        );
        assert_eq!(chain(&e), format!("{e:#}"));
        assert_eq!(format!("{e:#}").matches("inner cause").count(), 1);
    }

    #[test]
    fn proto_errors_are_the_message_not_a_cause() {
        let e = Error::proto(Phase::ReceiveHead, ProtoError::HeadTooLarge);
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert_eq!(e.message(), ProtoError::HeadTooLarge.as_str());
        assert!(e.source().is_none());
        assert_eq!(e.to_string(), format!("{e:#}"));
        assert_eq!(e.proto_error(), Some(ProtoError::HeadTooLarge));
    }

    #[test]
    fn io_messages_are_our_words() {
        let e = Error::io(
            ErrorKind::Connect,
            Phase::Connect,
            io::Error::from(io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(e.message(), "connection refused");
        let e = Error::io(
            ErrorKind::Io,
            Phase::ReceiveBody,
            io::Error::other("disk full"),
        );
        assert_eq!(e.message(), "i/o error");
        assert!(format!("{e:#}").ends_with(": disk full"));
    }

    #[test]
    fn reused_is_unknown_until_set() {
        let mut e = Error::new(ErrorKind::Io, Phase::ReceiveHead, "x");
        assert_eq!(e.reused_connection(), None);
        e.set_reused(Some(true));
        assert_eq!(e.reused_connection(), Some(true));
        let clone = e.clone();
        assert_eq!(clone.reused_connection(), Some(true));
    }
}
