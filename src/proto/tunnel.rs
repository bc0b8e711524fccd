//! HTTP CONNECT tunnels (RFC 9110 §9.3.6): the request head that asks a proxy for a tunnel
//! and the reader of the proxy's reply head.
//!
//! Owns only those two heads. It must not read a reply body (a refused CONNECT's body is
//! never read: the caller closes the connection) nor touch the bytes after a successful
//! reply's head: they are the tunnel's, and the caller keeps them.

use super::framing::response_framing;
use super::head::HeadReader;
use super::request::{push_fields, validate};
use super::{Framing, Headers, Limits, ProtoError, ResponseHead};
use std::net::Ipv6Addr;

/// Appends a CONNECT request head (and nothing else) to `out`.
///
/// Writes `CONNECT host:port HTTP/1.1 CRLF` (the authority-form, RFC 9112 §3.2.3), then
/// `Host: host:port` unless `headers` has a `Host`, then each field of `headers` in order
/// (e.g. `Proxy-Authorization`, `User-Agent`), then the empty line. An IPv6 literal host
/// is written bracketed (`[::1]:443`), whether it comes bracketed or not.
///
/// `host` must be what a URL's host is after parsing: an IP literal or an ASCII registered
/// name (internationalised names already in their `xn--` form).
///
/// # Errors
/// [`ProtoError::InvalidConnectTarget`] when `host` is neither an IP literal nor a
/// registered name (RFC 3986 §3.2.2), [`ProtoError::InvalidHeaderName`] or
/// [`ProtoError::InvalidHeaderValue`] as [`encode_request`](super::encode_request) checks
/// them. Nothing is appended on error.
///
/// # Examples
/// ```
/// let mut headers = parafetch::Headers::new();
/// headers.append("Proxy-Authorization", "Basic dTpw");
/// let mut out = Vec::new();
/// parafetch::proto::encode_connect(&mut out, "example.com", 443, &headers).unwrap();
/// assert_eq!(
///     out,
///     b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\
///       Proxy-Authorization: Basic dTpw\r\n\r\n"
/// );
/// ```
pub fn encode_connect(
    out: &mut Vec<u8>,
    host: &str,
    port: u16,
    headers: &Headers,
) -> Result<(), ProtoError> {
    // Validate everything before writing anything, so that an error leaves `out` untouched.
    validate("CONNECT", headers)?;
    let bracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let authority = if bracketed.parse::<Ipv6Addr>().is_ok() {
        format!("[{bracketed}]:{port}")
    } else if is_reg_name(host) {
        format!("{host}:{port}")
    } else {
        return Err(ProtoError::InvalidConnectTarget);
    };

    out.extend_from_slice(b"CONNECT ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // RFC 9110 §9.3.6: a client sending CONNECT MUST send a Host field, the target's
    // authority.
    if !headers.contains("host") {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    push_fields(out, headers);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Whether `host` is a non-empty RFC 3986 §3.2.2 `reg-name` (which an IPv4 literal also
/// is): unreserved characters, sub-delims and percent signs, nothing that could end the
/// request target or the line.
fn is_reg_name(host: &str) -> bool {
    !host.is_empty()
        && host.bytes().all(|b| {
            matches!(b,
                b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'.' | b'_' | b'~' | b'%'
                | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
        })
}

/// A proxy's reply to CONNECT: its final (non-1xx) head.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectReply {
    /// The reply's head, as received; its status line is what an error should quote when
    /// the tunnel is refused.
    pub head: ResponseHead,
}

impl ConnectReply {
    /// Whether the proxy opened the tunnel: any 2xx does (RFC 9110 §9.3.6). The bytes after
    /// the head are then the tunnel's.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.head.status)
    }

    /// Whether a body follows the head that the tunnel does not read.
    ///
    /// A 2xx reply has none: the tunnel starts right after its empty line, whatever its
    /// `Content-Length` or `Transfer-Encoding` say (RFC 9112 §6.3 step 2). Any other reply
    /// is framed like a response (a 407 usually carries a page); [`ConnectReader`] never
    /// reads that body, so a caller that gets `true` must close the connection rather than
    /// send on it again. A reply whose framing is faulty counts as having a body.
    pub fn has_body(&self) -> bool {
        !self.is_success()
            && !matches!(
                response_framing(&self.head, false),
                Ok(Framing::NoBody | Framing::Length(0))
            )
    }
}

/// Where a [`ConnectReader`] stands.
#[derive(Clone, Debug)]
enum State {
    Reading(HeadReader),
    Done,
    Failed(ProtoError),
}

/// Reads a proxy's reply to CONNECT from inputs of any size: a sans-IO reader, bytes in, one
/// [`ConnectReply`] out.
///
/// Interim 1xx heads are skipped (RFC 9110 §15.2), each head is bounded by
/// [`Limits::max_head_bytes`] and [`Limits::max_headers`], and only the reply's head is
/// consumed: bytes after it are left to the caller, who hands them to the tunnel (after a
/// 2xx) or drops them with the connection (otherwise: a refused CONNECT's body is not
/// read, see [`ConnectReply::has_body`]).
///
/// Call order: [`read`](Self::read) once per received input until it returns the reply;
/// [`read_eof`](Self::read_eof) if the proxy closes first.
///
/// # Examples
/// A proxy opens the tunnel, and the origin's first bytes arrive in the same read:
/// ```
/// use parafetch::proto::{ConnectReader, Limits};
///
/// let read: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01";
/// let mut reader = ConnectReader::new(&Limits::default());
/// let (consumed, reply) = reader.read(read).unwrap();
/// let reply = reply.expect("the head is complete");
/// assert!(reply.is_success() && !reply.has_body());
/// assert_eq!(reply.head.reason, "Connection established");
/// // The bytes after the head are not consumed: they are the tunnel's.
/// assert_eq!(&read[consumed..], b"\x16\x03\x01");
/// ```
#[derive(Clone, Debug)]
pub struct ConnectReader {
    state: State,
    received_any: bool,
}

impl ConnectReader {
    /// A reader enforcing `limits.max_head_bytes` and `limits.max_headers` (the other limits
    /// are about bodies, which it does not read).
    pub fn new(limits: &Limits) -> Self {
        ConnectReader {
            state: State::Reading(HeadReader::new(limits)),
            received_any: false,
        }
    }

    /// Takes reply bytes from the front of `input`; returns how many it consumed and, once
    /// the final head is complete, the reply. Bytes after the reply's head are never
    /// consumed; after the reply every call consumes nothing and returns `None`.
    ///
    /// # Errors
    /// What the response head reader refuses: [`ProtoError::HeadTooLarge`],
    /// [`ProtoError::TooManyHeaders`], [`ProtoError::MalformedHead`],
    /// [`ProtoError::UnsupportedVersion`], [`ProtoError::InvalidStatus`],
    /// [`ProtoError::UnexpectedUpgrade`]; all the proxy's fault. The error is final: later
    /// calls return it again.
    pub fn read(&mut self, input: &[u8]) -> Result<(usize, Option<ConnectReply>), ProtoError> {
        let reader = match &mut self.state {
            State::Reading(reader) => reader,
            State::Done => return Ok((0, None)),
            State::Failed(e) => return Err(*e),
        };
        self.received_any |= !input.is_empty();
        let mut consumed = 0;
        loop {
            match reader.read(&input[consumed..]) {
                Err(e) => {
                    self.state = State::Failed(e);
                    return Err(e);
                }
                Ok((n, head)) => {
                    consumed += n;
                    match head {
                        None => return Ok((consumed, None)),
                        Some(head) if head.is_informational() => continue,
                        Some(head) => {
                            self.state = State::Done;
                            return Ok((consumed, Some(ConnectReply { head })));
                        }
                    }
                }
            }
        }
    }

    /// The proxy closed the connection (a read returned 0) before the reply was complete;
    /// returns the error that is, and keeps it (later calls return it again).
    ///
    /// [`ProtoError::NoResponse`] when no byte had arrived, [`ProtoError::TruncatedHead`]
    /// when the close came inside a head or after only 1xx heads, the earlier error if
    /// reading had failed. Once the reply has been returned an EOF is the tunnel's business,
    /// not the reader's: this then returns [`ProtoError::TruncatedHead`] without changing
    /// anything, and should not be asked.
    pub fn read_eof(&mut self) -> ProtoError {
        let e = match self.state {
            State::Failed(e) => return e,
            State::Done => return ProtoError::TruncatedHead,
            State::Reading(_) if !self.received_any => ProtoError::NoResponse,
            State::Reading(_) => ProtoError::TruncatedHead,
        };
        self.state = State::Failed(e);
        e
    }

    /// Whether the reply has been returned.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::split_everywhere;
    use super::*;
    use crate::proto::HttpVersion;

    fn connect(host: &str, port: u16, headers: &[(&str, &str)]) -> Result<String, ProtoError> {
        let headers: Headers = headers.iter().copied().collect();
        let mut out = b"previous".to_vec();
        let res = encode_connect(&mut out, host, port, &headers);
        assert!(out.starts_with(b"previous"), "existing bytes kept");
        match res {
            Ok(()) => Ok(String::from_utf8(out[8..].to_vec()).unwrap()),
            Err(e) => {
                assert_eq!(out, b"previous", "nothing appended on error");
                Err(e)
            }
        }
    }

    #[test]
    fn connect_head_has_authority_and_host() {
        assert_eq!(
            connect("example.com", 443, &[]).unwrap(),
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        );
        assert_eq!(
            connect(
                "10.0.0.1",
                80,
                &[("Proxy-Authorization", "Basic eDp5"), ("User-Agent", "pf")]
            )
            .unwrap(),
            "CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\
             Proxy-Authorization: Basic eDp5\r\nUser-Agent: pf\r\n\r\n"
        );
    }

    #[test]
    fn ipv6_literal_is_bracketed_once() {
        for host in ["::1", "[::1]"] {
            assert_eq!(
                connect(host, 8443, &[]).unwrap(),
                "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"
            );
        }
        assert_eq!(
            connect("2001:db8::1", 0, &[]).unwrap(),
            "CONNECT [2001:db8::1]:0 HTTP/1.1\r\nHost: [2001:db8::1]:0\r\n\r\n"
        );
    }

    #[test]
    fn caller_host_field_replaces_ours() {
        assert_eq!(
            connect("h", 1, &[("host", "other:1")]).unwrap(),
            "CONNECT h:1 HTTP/1.1\r\nhost: other:1\r\n\r\n"
        );
    }

    #[test]
    fn bad_targets_and_fields_rejected() {
        for host in [
            "",
            "a b",
            "h\r\nX: 1",
            "h/x",
            "u@h",
            "h:80",
            "[::1",
            "[h]",
            "é.com",
            "h\0",
        ] {
            assert_eq!(
                connect(host, 1, &[]),
                Err(ProtoError::InvalidConnectTarget),
                "{host:?}"
            );
        }
        assert_eq!(
            connect("h", 1, &[("A B", "v")]),
            Err(ProtoError::InvalidHeaderName)
        );
        assert_eq!(
            connect("h", 1, &[("Proxy-Authorization", "x\r\nInjected: 1")]),
            Err(ProtoError::InvalidHeaderValue)
        );
        assert!(connect("xn--caf-dma.example", 1, &[]).is_ok());
    }

    /// What feeding some pieces and then (if `eof`) an EOF gave: the reply and the bytes
    /// consumed in total, or the error (how much was taken before it is moot).
    type Outcome = Result<(usize, Option<ConnectReply>), ProtoError>;

    fn run(pieces: &[&[u8]], limits: &Limits, eof: bool) -> Outcome {
        let mut reader = ConnectReader::new(limits);
        let mut total = 0;
        for piece in pieces {
            let (n, reply) = reader.read(piece)?;
            assert!(n <= piece.len());
            total += n;
            if reply.is_some() {
                assert!(reader.is_done());
                assert_eq!(
                    reader.read(b"more").unwrap(),
                    (0, None),
                    "done reads nothing"
                );
                return Ok((total, reply));
            }
            assert_eq!(n, piece.len(), "an unfinished reply consumes everything");
        }
        if eof {
            let e = reader.read_eof();
            assert_eq!(reader.read(b"x").unwrap_err(), e, "the error is final");
            return Err(e);
        }
        Ok((total, None))
    }

    fn all_ways(wire: &[u8], eof: bool) -> Outcome {
        split_everywhere(wire, |pieces| run(pieces, &Limits::default(), eof))
    }

    #[test]
    fn success_leaves_tunnel_bytes_unconsumed() {
        let wire = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01\x00";
        let (n, reply) = all_ways(wire, false).unwrap();
        let reply = reply.unwrap();
        assert_eq!(n, wire.len() - 4);
        assert_eq!(reply.head.version, HttpVersion::Http11);
        assert_eq!(reply.head.reason, "Connection established");
        assert!(reply.is_success() && !reply.has_body());
    }

    #[test]
    fn any_2xx_opens_and_ignores_framing_fields() {
        let wire =
            b"HTTP/1.0 204 Fine\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\nTLS";
        let reply = all_ways(wire, false).unwrap().1.unwrap();
        assert!(reply.is_success() && !reply.has_body());
        assert_eq!(reply.head.status, 204);
    }

    #[test]
    fn interim_heads_skipped() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 P\r\nA: b\r\n\r\n\
                     HTTP/1.1 200 OK\r\nVia: p\r\n\r\nrest";
        let (n, reply) = all_ways(wire, false).unwrap();
        assert_eq!(n, wire.len() - 4);
        assert_eq!(reply.unwrap().head.headers.get("via"), Some("p"));
    }

    #[test]
    fn refusals_are_replies_and_their_bodies_are_not_read() {
        let wire = b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                     Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 4\r\n\r\ndeny";
        let (n, reply) = all_ways(wire, false).unwrap();
        let reply = reply.unwrap();
        assert_eq!(n, wire.len() - 4, "the body is left unread");
        assert!(!reply.is_success() && reply.has_body());
        assert_eq!(reply.head.status, 407);
        let has_body = |wire: &[u8]| all_ways(wire, false).unwrap().1.unwrap().has_body();
        assert!(!has_body(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!has_body(b"HTTP/1.1 304 No\r\n\r\n"));
        assert!(
            has_body(b"HTTP/1.1 403 Forbidden\r\n\r\n"),
            "close-delimited"
        );
        assert!(
            has_body(b"HTTP/1.1 403 F\r\nContent-Length: x\r\n\r\n"),
            "faulty"
        );
        assert!(has_body(
            b"HTTP/1.1 503 S\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        // Only 2xx opens the tunnel.
        assert!(
            !all_ways(b"HTTP/1.1 300 M\r\n\r\n", false)
                .unwrap()
                .1
                .unwrap()
                .is_success()
        );
    }

    #[test]
    fn unfinished_reply_waits() {
        assert_eq!(all_ways(b"HTTP/1.1 200 OK\r\n", false), Ok((17, None)));
        assert_eq!(all_ways(b"HTTP/1.1 100 C\r\n\r\n", false), Ok((18, None)));
    }

    #[test]
    fn eof_before_the_reply() {
        assert_eq!(all_ways(b"", true), Err(ProtoError::NoResponse));
        assert_eq!(
            all_ways(b"HTTP/1.1 20", true),
            Err(ProtoError::TruncatedHead)
        );
        assert_eq!(
            all_ways(b"HTTP/1.1 100 Continue\r\n\r\n", true),
            Err(ProtoError::TruncatedHead)
        );
        let mut reader = ConnectReader::new(&Limits::default());
        reader.read(b"").unwrap();
        assert_eq!(
            reader.read_eof(),
            ProtoError::NoResponse,
            "empty reads are no bytes"
        );
    }

    #[test]
    fn garbage_and_limits_refused() {
        assert_eq!(
            all_ways(b"SSH-2.0-OpenSSH\r\n\r\n", false),
            Err(ProtoError::MalformedHead)
        );
        assert_eq!(
            all_ways(b"HTTP/2 200\r\n\r\n", false),
            Err(ProtoError::UnsupportedVersion)
        );
        assert_eq!(
            all_ways(b"HTTP/1.1 101 Switching\r\n\r\n", false),
            Err(ProtoError::UnexpectedUpgrade)
        );
        let small = Limits::default().max_head_bytes(24);
        let wire = b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n"; // 25 bytes
        let over = split_everywhere(wire, |p| run(p, &small, false));
        assert_eq!(over, Err(ProtoError::HeadTooLarge));
        let fits = Limits::default().max_head_bytes(25);
        assert!(split_everywhere(wire, |p| run(p, &fits, false)).is_ok());
        // Each interim head has its own budget, as in an exchange.
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        let fits = Limits::default().max_head_bytes(25);
        assert!(split_everywhere(wire, |p| run(p, &fits, false)).is_ok());
        let mut reader = ConnectReader::new(&small);
        let e = reader.read(&[b'x'; 100]).unwrap_err();
        assert_eq!(reader.read_eof(), e, "the error is kept");
    }
}
