//! Response body framing: how the end of a response body is found.
//!
//! Owns RFC 9112 §6.3 for responses. It must not read body bytes (that is the exchange and
//! the chunked decoder) nor decide connection reuse beyond reporting what the head implies.

use super::{HttpVersion, ProtoError, ResponseHead};

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// No body follows the head.
    NoBody,
    /// Exactly this many bytes follow (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The body runs until the server closes the connection.
    CloseDelimited,
}

/// Chooses the framing of a response body (RFC 9112 §6.3), given whether the request method
/// was HEAD.
///
/// The steps, in order (the first that applies wins):
/// 1. A response to HEAD, any 1xx, 204 and 304 have no body, whatever their fields say.
/// 2. (2xx to CONNECT: we never send CONNECT.)
/// 3. `Transfer-Encoding` present: `Content-Length` is ignored; an HTTP/1.0 response is
///    faulty (RFC 9112 §6.1: a server must not send it to our HTTP/1.1 request, and it may
///    have been forwarded without de-chunking), so it is refused like hyper does; if the last
///    transfer coding is `chunked` the body is chunked, otherwise it is close-delimited.
/// 4. `Content-Length` present: every value (repeated fields, comma lists) must be `1*DIGIT`
///    and all must agree, else the response is refused.
/// 5. `Content-Length` valid: that many bytes.
/// 6. (A request without either has no body: not a response rule.)
/// 7. Otherwise the body is close-delimited.
///
/// A response carrying both fields must not let its connection be reused (RFC 9112 §6.3
/// step 3: it may be a smuggling attempt); `has_transfer_encoding_and_length` tells.
///
/// # Errors
/// [`ProtoError::MalformedHead`] for HTTP/1.0 with `Transfer-Encoding`,
/// [`ProtoError::InvalidContentLength`], [`ProtoError::ConflictingContentLength`].
///
/// # Examples
/// ```
/// use parafetch::proto::__private::response_framing;
/// use parafetch::proto::{Framing, HttpVersion, ResponseHead};
/// let headers = [("Content-Length", "5, 5")].into_iter().collect();
/// let mut head = ResponseHead::new(HttpVersion::Http11, 200, "OK", headers);
/// assert_eq!(response_framing(&head, false), Ok(Framing::Length(5)));
/// assert_eq!(response_framing(&head, true), Ok(Framing::NoBody));
/// head.headers.append("Transfer-Encoding", "gzip, chunked");
/// assert_eq!(response_framing(&head, false), Ok(Framing::Chunked));
/// ```
pub fn response_framing(head: &ResponseHead, head_request: bool) -> Result<Framing, ProtoError> {
    if head_request || head.is_informational() || head.status == 204 || head.status == 304 {
        return Ok(Framing::NoBody);
    }
    if head.headers.contains("transfer-encoding") {
        if head.version == HttpVersion::Http10 {
            return Err(ProtoError::MalformedHead);
        }
        let last = head.headers.tokens("transfer-encoding").last();
        return Ok(match last {
            Some(coding) if coding.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            _ => Framing::CloseDelimited,
        });
    }
    match content_length(head)? {
        Some(n) => Ok(Framing::Length(n)),
        None => Ok(Framing::CloseDelimited),
    }
}

/// Whether the head has both `Transfer-Encoding` and `Content-Length`, which makes the
/// connection unsafe to reuse whatever the framing turned out to be.
pub fn has_transfer_encoding_and_length(head: &ResponseHead) -> bool {
    head.headers.contains("transfer-encoding") && head.headers.contains("content-length")
}

/// The agreed `Content-Length`, or None when there is no such field (RFC 9110 §8.6).
fn content_length(head: &ResponseHead) -> Result<Option<u64>, ProtoError> {
    let mut agreed = None;
    // Repeated fields and comma lists are one list (RFC 9110 §5.3); unlike `Headers::tokens`
    // an empty element is not skipped, it is an invalid length.
    for element in head
        .headers
        .get_all("content-length")
        .flat_map(|v| v.split(','))
    {
        let n = parse_decimal(element.trim_matches([' ', '\t']))?;
        match agreed {
            Some(prev) if prev != n => return Err(ProtoError::ConflictingContentLength),
            _ => agreed = Some(n),
        }
    }
    Ok(agreed)
}

/// Parses `1*DIGIT` by hand: `str::parse::<u64>` would accept a leading `+`.
fn parse_decimal(s: &str) -> Result<u64, ProtoError> {
    if s.is_empty() {
        return Err(ProtoError::InvalidContentLength);
    }
    s.bytes().try_fold(0u64, |n, b| {
        if !b.is_ascii_digit() {
            return Err(ProtoError::InvalidContentLength);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(ProtoError::InvalidContentLength)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(version: HttpVersion, status: u16, fields: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            version,
            status,
            reason: String::new(),
            headers: fields.iter().copied().collect(),
        }
    }

    fn framing(fields: &[(&str, &str)]) -> Result<Framing, ProtoError> {
        response_framing(&head(HttpVersion::Http11, 200, fields), false)
    }

    #[test]
    fn plus_sign_content_length_is_invalid() {
        assert_eq!(
            framing(&[("Content-Length", "+5")]),
            Err(ProtoError::InvalidContentLength)
        );
    }

    #[test]
    fn content_length_must_be_digits() {
        for v in [
            "-1", "0x5", " ", "", "5 5", "5.0", "٥", "5a", ",", "5,", "1e3",
        ] {
            assert_eq!(
                framing(&[("Content-Length", v)]),
                Err(ProtoError::InvalidContentLength),
                "{v:?}"
            );
        }
        assert_eq!(framing(&[("Content-Length", "0")]), Ok(Framing::Length(0)));
        assert_eq!(
            framing(&[("Content-Length", " 007\t")]),
            Ok(Framing::Length(7))
        );
    }

    #[test]
    fn content_length_overflow_is_invalid() {
        assert_eq!(
            framing(&[("Content-Length", "18446744073709551615")]),
            Ok(Framing::Length(u64::MAX))
        );
        assert_eq!(
            framing(&[("Content-Length", "18446744073709551616")]),
            Err(ProtoError::InvalidContentLength)
        );
        assert_eq!(
            framing(&[("Content-Length", "99999999999999999999999")]),
            Err(ProtoError::InvalidContentLength)
        );
    }

    #[test]
    fn conflicting_content_length_is_error() {
        assert_eq!(
            framing(&[("Content-Length", "5, 6")]),
            Err(ProtoError::ConflictingContentLength)
        );
        assert_eq!(
            framing(&[("Content-Length", "5"), ("Content-Length", "6")]),
            Err(ProtoError::ConflictingContentLength)
        );
        // Identical repeats are one length (RFC 9110 §8.6).
        assert_eq!(
            framing(&[("Content-Length", "5, 5")]),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing(&[("Content-Length", "5"), ("content-length", "05")]),
            Ok(Framing::Length(5))
        );
    }

    #[test]
    fn te_not_ending_in_chunked_is_close_delimited() {
        for te in ["gzip", "chunked, gzip", "identity", ""] {
            assert_eq!(
                framing(&[("Transfer-Encoding", te)]),
                Ok(Framing::CloseDelimited),
                "{te:?}"
            );
        }
        assert_eq!(
            framing(&[
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "gzip")
            ]),
            Ok(Framing::CloseDelimited)
        );
    }

    #[test]
    fn te_ending_in_chunked_is_chunked_any_case() {
        for te in ["chunked", "CHUNKED", "gzip, Chunked", " chunked ,"] {
            assert_eq!(
                framing(&[("Transfer-Encoding", te)]),
                Ok(Framing::Chunked),
                "{te:?}"
            );
        }
        assert_eq!(
            framing(&[
                ("Transfer-Encoding", "gzip"),
                ("Transfer-Encoding", "chunked")
            ]),
            Ok(Framing::Chunked)
        );
    }

    #[test]
    fn te_overrides_even_invalid_content_length() {
        let fields = [("Content-Length", "+5"), ("Transfer-Encoding", "chunked")];
        assert_eq!(framing(&fields), Ok(Framing::Chunked));
        assert!(has_transfer_encoding_and_length(&head(
            HttpVersion::Http11,
            200,
            &fields
        )));
        assert!(!has_transfer_encoding_and_length(&head(
            HttpVersion::Http11,
            200,
            &[("Transfer-Encoding", "chunked")]
        )));
    }

    #[test]
    fn http10_with_transfer_encoding_is_refused() {
        let h = head(
            HttpVersion::Http10,
            200,
            &[("Transfer-Encoding", "chunked")],
        );
        assert_eq!(response_framing(&h, false), Err(ProtoError::MalformedHead));
        // No body is read anyway for HEAD: step 1 comes first.
        assert_eq!(response_framing(&h, true), Ok(Framing::NoBody));
    }

    #[test]
    fn head_204_304_have_no_body() {
        let fields = [("Content-Length", "10"), ("Transfer-Encoding", "chunked")];
        for status in [204, 304, 100, 103, 199] {
            assert_eq!(
                response_framing(&head(HttpVersion::Http11, status, &fields), false),
                Ok(Framing::NoBody),
                "{status}"
            );
        }
        assert_eq!(
            response_framing(&head(HttpVersion::Http11, 200, &fields), true),
            Ok(Framing::NoBody)
        );
        // Even an invalid length is not looked at when there is no body.
        assert_eq!(
            response_framing(
                &head(HttpVersion::Http11, 304, &[("Content-Length", "x")]),
                false
            ),
            Ok(Framing::NoBody)
        );
    }

    #[test]
    fn no_length_is_close_delimited_for_both_versions() {
        assert_eq!(framing(&[]), Ok(Framing::CloseDelimited));
        assert_eq!(
            response_framing(&head(HttpVersion::Http10, 200, &[]), false),
            Ok(Framing::CloseDelimited)
        );
        assert_eq!(
            response_framing(
                &head(HttpVersion::Http10, 200, &[("Content-Length", "3")]),
                false
            ),
            Ok(Framing::Length(3))
        );
    }
}
