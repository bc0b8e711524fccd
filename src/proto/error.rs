//! The protocol error type.
//!
//! Owns only the list of ways an HTTP/1.1 exchange can fail on the wire; it must not carry
//! I/O errors or the phase an error happened in (that is the driver's `Error`).

use std::fmt;

/// Why the codec gave up on an exchange.
///
/// Small and `Copy` so it can be stored in a failed state and returned again on every later
/// call. The first group is the peer's fault (a response the codec refuses), the second is the
/// caller's (a request it refuses to put on the wire); [`ProtoError::caused_by_peer`] tells
/// them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtoError {
    /// Peer: the response head is longer than `Limits::max_head_bytes`.
    HeadTooLarge,
    /// Peer: the response head has more fields than `Limits::max_headers`.
    TooManyHeaders,
    /// Peer: the response head is not HTTP/1.x syntax (bad status line, bad field name or
    /// value, bad line ending), or it is an HTTP/1.0 response with `Transfer-Encoding`, whose
    /// framing RFC 9112 §6.1 says must be treated as faulty.
    MalformedHead,
    /// Peer: the status line names an HTTP version other than 1.0 or 1.1.
    UnsupportedVersion,
    /// Peer: the status code is outside 100..=999.
    InvalidStatus,
    /// Peer: a `101 Switching Protocols` response, though we never ask for an upgrade.
    UnexpectedUpgrade,
    /// Peer: a `Content-Length` value is not `1*DIGIT` or does not fit in a `u64`.
    InvalidContentLength,
    /// Peer: several `Content-Length` values that differ.
    ConflictingContentLength,
    /// Peer: a chunk size line without a hex digit, with a stray byte, or a CR not followed by
    /// LF.
    InvalidChunkSize,
    /// Peer: a chunk size that does not fit in a `u64`.
    ChunkSizeOverflow,
    /// Peer: a chunk size line (extensions and line ending included) longer than
    /// `Limits::max_chunk_line_bytes`.
    ChunkLineTooLong,
    /// Peer: chunk data not followed by CRLF (or LF), or a CR not followed by LF in the
    /// trailer section.
    InvalidChunkEnd,
    /// Peer: the trailer section is longer than `Limits::max_trailer_bytes`.
    TrailersTooLarge,
    /// Peer: the connection closed before any response byte arrived (curl's "empty reply
    /// from server"). On a reused connection this is usually the server closing an idle
    /// connection as we sent on it, so the request may be retried when it is idempotent.
    NoResponse,
    /// Peer: the connection closed inside a response head.
    TruncatedHead,
    /// Peer: the connection closed before the body's end (short of `Content-Length`, or
    /// before the last chunk and trailer section).
    TruncatedBody,
    /// Caller: the request method is not a token (RFC 9110 §9.1).
    InvalidMethod,
    /// Caller: a request field name is not a token (RFC 9110 §5.1).
    InvalidHeaderName,
    /// Caller: a request field value contains CR, LF or NUL (RFC 9110 §5.5), which would
    /// let it inject lines into the request.
    InvalidHeaderValue,
    /// Caller: the host of a CONNECT request target is neither an IP literal nor a
    /// registered name (RFC 3986 §3.2.2): e.g. empty, or holding a space, `/`, `@` or a
    /// line break, which would let it inject into the request line.
    InvalidConnectTarget,
}

impl ProtoError {
    /// A short lowercase message, e.g. `"response head too large"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProtoError::HeadTooLarge => "response head too large",
            ProtoError::TooManyHeaders => "too many response header fields",
            ProtoError::MalformedHead => "malformed response head",
            ProtoError::UnsupportedVersion => "unsupported http version",
            ProtoError::InvalidStatus => "invalid response status code",
            ProtoError::UnexpectedUpgrade => "unexpected 101 switching protocols",
            ProtoError::InvalidContentLength => "invalid content-length",
            ProtoError::ConflictingContentLength => "conflicting content-length values",
            ProtoError::InvalidChunkSize => "invalid chunk size line",
            ProtoError::ChunkSizeOverflow => "chunk size too large",
            ProtoError::ChunkLineTooLong => "chunk size line too long",
            ProtoError::InvalidChunkEnd => "invalid line ending in chunked body",
            ProtoError::TrailersTooLarge => "trailer section too large",
            ProtoError::NoResponse => {
                "empty reply from server (connection closed before any response byte)"
            }
            ProtoError::TruncatedHead => "connection closed inside the response head",
            ProtoError::TruncatedBody => "connection closed before the end of the response body",
            ProtoError::InvalidMethod => "invalid request method",
            ProtoError::InvalidHeaderName => "invalid request header name",
            ProtoError::InvalidHeaderValue => "invalid request header value",
            ProtoError::InvalidConnectTarget => "invalid connect target host",
        }
    }

    /// Whether the peer misbehaved (true) or the caller passed bad request input (false).
    pub fn caused_by_peer(&self) -> bool {
        !matches!(
            self,
            ProtoError::InvalidMethod
                | ProtoError::InvalidHeaderName
                | ProtoError::InvalidHeaderValue
                | ProtoError::InvalidConnectTarget
        )
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ProtoError {}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ProtoError; 20] = [
        ProtoError::HeadTooLarge,
        ProtoError::TooManyHeaders,
        ProtoError::MalformedHead,
        ProtoError::UnsupportedVersion,
        ProtoError::InvalidStatus,
        ProtoError::UnexpectedUpgrade,
        ProtoError::InvalidContentLength,
        ProtoError::ConflictingContentLength,
        ProtoError::InvalidChunkSize,
        ProtoError::ChunkSizeOverflow,
        ProtoError::ChunkLineTooLong,
        ProtoError::InvalidChunkEnd,
        ProtoError::TrailersTooLarge,
        ProtoError::NoResponse,
        ProtoError::TruncatedHead,
        ProtoError::TruncatedBody,
        ProtoError::InvalidMethod,
        ProtoError::InvalidHeaderName,
        ProtoError::InvalidHeaderValue,
        ProtoError::InvalidConnectTarget,
    ];

    #[test]
    fn messages_are_lowercase_distinct_and_displayed() {
        let mut seen = std::collections::HashSet::new();
        for e in ALL {
            let msg = e.to_string();
            assert_eq!(msg, e.as_str());
            assert_eq!(msg, msg.to_lowercase(), "{e:?}");
            assert!(seen.insert(msg), "duplicate message for {e:?}");
        }
    }

    #[test]
    fn caller_errors_are_the_request_side_ones() {
        let caller: Vec<_> = ALL.iter().filter(|e| !e.caused_by_peer()).collect();
        assert_eq!(
            caller,
            [
                &ProtoError::InvalidMethod,
                &ProtoError::InvalidHeaderName,
                &ProtoError::InvalidHeaderValue,
                &ProtoError::InvalidConnectTarget
            ]
        );
    }
}
