//! What the payload of a captured request or response is, and its SHA-1.
//!
//! Owns reading the captured bytes with parafetch's own sans-IO parser ([`crate::proto`]):
//! where the head ends, the framing, the dechunked body, whether the capture is complete.
//! It must not parse HTTP by itself (the proto module's rules are the ones the fetcher
//! used), write anything, or fail: bytes that do not parse simply have no payload digest.

use super::PayloadDigest;
use crate::proto::__private::HeadReader;
use crate::proto::{Event, Exchange, Limits, ProtoError, RequestInfo};
use sha1::{Digest, Sha1};

/// A SHA-1 digest.
pub(crate) type Sha1Digest = [u8; 20];

/// The SHA-1 of `bytes`.
pub(crate) fn sha1(bytes: &[u8]) -> Sha1Digest {
    Sha1::digest(bytes).into()
}

/// What reading a captured response found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResponsePayload {
    /// The payload digest, when the payload is well defined (see [`response`]).
    pub(crate) digest: Option<Sha1Digest>,
    /// The response ended before its head or body did: nothing came, the head was cut
    /// short, or the connection closed before the `Content-Length` or the last chunk.
    pub(crate) truncated: bool,
}

/// Reads a captured response to the captured `request` and digests its payload as `mode`
/// says.
///
/// The digest is left out (`None`) when the payload is not well defined: the response is
/// truncated, or the parser refuses it (a malformed head, conflicting lengths, a bad chunk,
/// a head over [`Limits::DEFAULT_MAX_HEAD_BYTES`]). Also, for [`PayloadDigest::AsTransferred`],
/// when interim (1xx) heads come first or the capture does not start with a status line
/// (tools read the payload as starting after the first head, which is not the final
/// response's body); and for [`PayloadDigest::Dechunked`], when a transfer coding other than
/// `chunked` was applied (its removal would need decoding that coding).
pub(crate) fn response(request: &[u8], response: &[u8], mode: PayloadDigest) -> ResponsePayload {
    let head_request = request.starts_with(b"HEAD ");
    let mut dechunked = Sha1::new();
    let read = read_response(response, head_request, |body| {
        // Only the spec's digest needs the dechunked body hashed.
        if mode == PayloadDigest::Dechunked {
            dechunked.update(body);
        }
    });
    let (head_len, other_codings) = match read {
        Ok(complete) => complete,
        Err(e) => {
            let truncated = matches!(
                e,
                ProtoError::NoResponse | ProtoError::TruncatedHead | ProtoError::TruncatedBody
            );
            return ResponsePayload {
                digest: None,
                truncated,
            };
        }
    };
    let digest = match mode {
        PayloadDigest::AsTransferred => {
            let first_head = first_head_len(response);
            (response.starts_with(b"HTTP/") && first_head == Some(head_len))
                .then(|| sha1(&response[head_len..]))
        }
        PayloadDigest::Dechunked => (!other_codings).then(|| dechunked.finalize().into()),
    };
    ResponsePayload {
        digest,
        truncated: false,
    }
}

/// Feeds `response` to an [`Exchange`], then end of file, handing each dechunked body piece
/// to `on_body`. Returns where the final head ends (1xx heads included) and whether a
/// transfer coding other than `chunked` was applied, or the parser's error.
fn read_response(
    response: &[u8],
    head_request: bool,
    mut on_body: impl FnMut(&[u8]),
) -> Result<(usize, bool), ProtoError> {
    let info = RequestInfo::default().head_request(head_request);
    // No request bytes: the request was sent already, only the response is read here.
    let mut ex = Exchange::new(Vec::new(), info, Limits::default());
    let mut pos = 0;
    let mut head = None;
    loop {
        let p = ex.handle_input(&response[pos..])?;
        pos += p.consumed;
        match p.event {
            Some(Event::Head(h)) => {
                let other = h
                    .headers
                    .tokens("transfer-encoding")
                    .any(|t| !t.eq_ignore_ascii_case("chunked"));
                head = Some((pos, other));
            }
            Some(Event::Body(bytes)) => on_body(bytes),
            // Bytes after the end (`pos < len`) belong to no response; a tool reading the
            // record sees them as part of the body, the payload digest does not.
            Some(Event::End) => break,
            // `handle_input` returns no event only once the input is used up; stop rather
            // than spin if that ever changed.
            None => {
                ex.handle_eof()?;
                break;
            }
        }
    }
    // End came, so the head did.
    head.ok_or(ProtoError::TruncatedHead)
}

/// Where the first head of `response` ends, interim (1xx) or final, if it parses.
fn first_head_len(response: &[u8]) -> Option<usize> {
    match HeadReader::new(&Limits::default()).read(response) {
        Ok((len, Some(_))) => Some(len),
        _ => None,
    }
}

/// The payload digest of a captured request: the bytes after its head. `None` when the
/// head does not parse, or for [`PayloadDigest::Dechunked`] when the request has a
/// `Transfer-Encoding` (parafetch sends bodies with `Content-Length`).
pub(crate) fn request(request: &[u8], mode: PayloadDigest) -> Option<Sha1Digest> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Request::new(&mut fields);
    let head_len = match parsed.parse(request) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return None,
    };
    let chunked = parsed
        .headers
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case("transfer-encoding"));
    if chunked && mode == PayloadDigest::Dechunked {
        return None;
    }
    Some(sha1(&request[head_len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use PayloadDigest::{AsTransferred, Dechunked};

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";

    #[test]
    fn sha1_of_known_payloads() {
        // FIPS 180 examples.
        assert_eq!(
            super::super::base32::encode(&sha1(b"abc")),
            "VGMT4NSHA2AWVOR6EVYXQUGCNSONBWE5"
        );
        let hex: String = sha1(b"").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn a_length_framed_body() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for mode in [AsTransferred, Dechunked] {
            let got = response(GET, wire, mode);
            assert_eq!(got.digest, Some(sha1(b"hello")), "{mode:?}");
            assert!(!got.truncated);
        }
    }

    #[test]
    fn a_chunked_body_dechunked_or_as_transferred() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
        let got = response(GET, wire, Dechunked);
        assert_eq!(got.digest, Some(sha1(b"hello, world")));
        let head_len = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let got = response(GET, wire, AsTransferred);
        assert_eq!(got.digest, Some(sha1(&wire[head_len..])));
        assert!(!got.truncated);
    }

    #[test]
    fn content_coding_is_kept() {
        let gzip = [
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut wire =
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 20\r\n\r\n".to_vec();
        wire.extend_from_slice(&gzip);
        for mode in [AsTransferred, Dechunked] {
            assert_eq!(response(GET, &wire, mode).digest, Some(sha1(&gzip)));
        }
    }

    #[test]
    fn close_delimited_and_bodiless_responses() {
        let wire = b"HTTP/1.1 200 OK\r\n\r\nto the end";
        assert_eq!(
            response(GET, wire, Dechunked).digest,
            Some(sha1(b"to the end"))
        );
        let wire = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(response(GET, wire, Dechunked).digest, Some(sha1(b"")));
        let head = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n";
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        let got = response(head, wire, AsTransferred);
        assert_eq!((got.digest, got.truncated), (Some(sha1(b"")), false));
        // The same head to a GET is a body cut short.
        assert!(response(GET, wire, AsTransferred).truncated);
    }

    #[test]
    fn truncated_responses_have_no_payload_digest() {
        for wire in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        ] {
            for mode in [AsTransferred, Dechunked] {
                let got = response(GET, wire, mode);
                assert_eq!((got.digest, got.truncated), (None, true), "{wire:?}");
            }
        }
    }

    #[test]
    fn malformed_responses_have_no_payload_digest_and_are_not_truncated() {
        for wire in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let got = response(GET, wire, Dechunked);
            assert_eq!((got.digest, got.truncated), (None, false), "{wire:?}");
        }
    }

    #[test]
    fn interim_heads() {
        let wire = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
                     HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(response(GET, wire, Dechunked).digest, Some(sha1(b"hi")));
        assert_eq!(response(GET, wire, AsTransferred).digest, None);
    }

    #[test]
    fn other_transfer_codings() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                     2\r\nxx\r\n0\r\n\r\n";
        assert_eq!(response(GET, wire, Dechunked).digest, None);
        assert_eq!(
            response(GET, wire, AsTransferred).digest,
            Some(sha1(b"2\r\nxx\r\n0\r\n\r\n"))
        );
    }

    #[test]
    fn bytes_after_the_end() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA";
        assert_eq!(response(GET, wire, Dechunked).digest, Some(sha1(b"hi")));
        assert_eq!(
            response(GET, wire, AsTransferred).digest,
            Some(sha1(b"hiEXTRA"))
        );
    }

    #[test]
    fn request_payloads() {
        assert_eq!(request(GET, AsTransferred), Some(sha1(b"")));
        let post = b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\na=b";
        assert_eq!(request(post, Dechunked), Some(sha1(b"a=b")));
        let chunked = b"POST /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(request(chunked, Dechunked), None);
        assert_eq!(request(chunked, AsTransferred), Some(sha1(b"0\r\n\r\n")));
        assert_eq!(request(b"GET / HTTP/1.1\r\nHost", AsTransferred), None);
    }

    /// Any bytes: never a panic, and a digest only for a complete response.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        for end in 0..=wire.len() {
            for mode in [AsTransferred, Dechunked] {
                let got = response(GET, &wire[..end], mode);
                assert_eq!(got.digest.is_some(), end == wire.len(), "{end}");
                assert_eq!(got.truncated, end < wire.len(), "{end}");
            }
        }
    }
}
