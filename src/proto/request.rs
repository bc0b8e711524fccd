//! Request head encoding.
//!
//! Owns the bytes of the request line and header section. It must not decide which headers a
//! request carries (user agent, `Connection`, body framing are the caller's choice) and never
//! writes a body.

use super::{Headers, ProtoError};

/// Appends a request head (and nothing else) to `out`.
///
/// Writes, per RFC 9112 §3 and §5:
/// `METHOD SP origin-form SP HTTP/1.1 CRLF`, then `Host` (the URL's host, plus `:port` when
/// the URL has a non-default port; an IPv6 literal comes bracketed from the URL) unless
/// `headers` has a `Host`, then each field of `headers` in order, then
/// `Content-Length: N` when `body_len` is `Some(N)` and `headers` has no `Content-Length`,
/// then the empty line.
///
/// origin-form (RFC 9112 §3.2.1) is the URL's path plus `?` and the query when the URL has
/// one, never the fragment (RFC 9110 §4.2.5: a fragment is client-side only); `/` if the path
/// is empty. A URL without a host gets an empty `Host` (RFC 9112 §3.2).
///
/// # Errors
/// [`ProtoError::InvalidMethod`] unless `method` is a non-empty token (RFC 9110 §9.1),
/// [`ProtoError::InvalidHeaderName`] unless every field name is a non-empty token,
/// [`ProtoError::InvalidHeaderValue`] when a value holds CR, LF or NUL. Nothing is appended
/// on error.
///
/// # Examples
/// ```
/// let url = url::Url::parse("http://example.com:8080/a?b=1#frag").unwrap();
/// let mut headers = parafetch::Headers::new();
/// headers.append("Accept", "*/*");
/// let mut out = Vec::new();
/// parafetch::proto::encode_request(&mut out, "POST", &url, &headers, Some(3)).unwrap();
/// assert_eq!(
///     out,
///     b"POST /a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\
///       Content-Length: 3\r\n\r\n"
/// );
/// ```
pub fn encode_request(
    out: &mut Vec<u8>,
    method: &str,
    url: &url::Url,
    headers: &Headers,
    body_len: Option<u64>,
) -> Result<(), ProtoError> {
    encode(out, method, url, headers, body_len, false)
}

/// Like [`encode_request`], but with the absolute-form request target a client sends to an
/// HTTP proxy (RFC 9112 §3.2.2): `scheme://host[:port]/path[?query]`, never the userinfo
/// or the fragment.
///
/// # Errors
/// As [`encode_request`].
///
/// # Examples
/// ```
/// let url = url::Url::parse("http://user:pw@example.com:8080/a?b=1#frag").unwrap();
/// let mut out = Vec::new();
/// parafetch::proto::encode_proxy_request(&mut out, "GET", &url, &parafetch::Headers::new(), None)
///     .unwrap();
/// assert_eq!(
///     out,
///     b"GET http://example.com:8080/a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"
/// );
/// ```
pub fn encode_proxy_request(
    out: &mut Vec<u8>,
    method: &str,
    url: &url::Url,
    headers: &Headers,
    body_len: Option<u64>,
) -> Result<(), ProtoError> {
    encode(out, method, url, headers, body_len, true)
}

fn encode(
    out: &mut Vec<u8>,
    method: &str,
    url: &url::Url,
    headers: &Headers,
    body_len: Option<u64>,
    absolute: bool,
) -> Result<(), ProtoError> {
    // Validate everything before writing anything, so that an error leaves `out` untouched.
    validate(method, headers)?;

    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    if absolute {
        out.extend_from_slice(url.scheme().as_bytes());
        out.extend_from_slice(b"://");
        out.extend_from_slice(url.host_str().unwrap_or("").as_bytes());
        if let Some(port) = url.port() {
            out.push(b':');
            push_decimal(out, u64::from(port));
        }
    }
    let path = url.path();
    out.extend_from_slice(if path.is_empty() { "/" } else { path }.as_bytes());
    if let Some(query) = url.query() {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");

    // RFC 9112 §3.2: a client MUST send Host in every HTTP/1.1 request.
    if !headers.contains("host") {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(url.host_str().unwrap_or("").as_bytes());
        // `Url::port` is None for the scheme's default port, which must not be written.
        if let Some(port) = url.port() {
            out.push(b':');
            push_decimal(out, u64::from(port));
        }
        out.extend_from_slice(b"\r\n");
    }
    push_fields(out, headers);
    if let Some(len) = body_len
        && !headers.contains("content-length")
    {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, len);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends each field as `Name: value` CRLF, in order (the caller validated them).
pub(super) fn push_fields(out: &mut Vec<u8>, headers: &Headers) {
    for (name, value) in headers.iter() {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Checks a request's method and header fields without writing anything: the method and
/// names are tokens, values hold no CR, LF or NUL.
///
/// # Errors
/// [`ProtoError::InvalidMethod`], [`ProtoError::InvalidHeaderName`] or
/// [`ProtoError::InvalidHeaderValue`].
pub fn validate(method: &str, headers: &Headers) -> Result<(), ProtoError> {
    if !is_token(method) {
        return Err(ProtoError::InvalidMethod);
    }
    for (name, value) in headers.iter() {
        if !is_token(name) {
            return Err(ProtoError::InvalidHeaderName);
        }
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(ProtoError::InvalidHeaderValue);
        }
    }
    Ok(())
}

/// Appends `n` in decimal, without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Whether `s` is a non-empty RFC 9110 §5.6.2 token.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body_len: Option<u64>,
    ) -> Result<String, ProtoError> {
        let url = url::Url::parse(url).unwrap();
        let headers: Headers = headers.iter().copied().collect();
        let mut out = b"previous".to_vec();
        let res = encode_request(&mut out, method, &url, &headers, body_len);
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
    fn decimals_are_written_by_hand() {
        for n in [0u64, 7, 10, 65535, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn simple_get_has_host_and_root_path() {
        assert_eq!(
            encode("GET", "http://example.com", &[], None).unwrap(),
            "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
        );
    }

    #[test]
    fn host_gets_non_default_port_only() {
        assert_eq!(
            encode("GET", "http://example.com:8080/x", &[], None).unwrap(),
            "GET /x HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"
        );
        assert_eq!(
            encode("GET", "http://example.com:80/x", &[], None).unwrap(),
            "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n"
        );
        assert_eq!(
            encode("GET", "https://example.com:443/x", &[], None).unwrap(),
            "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n"
        );
        assert_eq!(
            encode("GET", "https://example.com:80/x", &[], None).unwrap(),
            "GET /x HTTP/1.1\r\nHost: example.com:80\r\n\r\n"
        );
    }

    #[test]
    fn ipv6_host_is_bracketed() {
        assert_eq!(
            encode("GET", "http://[::1]:8080/", &[], None).unwrap(),
            "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"
        );
        assert_eq!(
            encode("GET", "http://[2001:db8::1]/", &[], None).unwrap(),
            "GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n"
        );
    }

    #[test]
    fn query_kept_fragment_and_userinfo_dropped() {
        assert_eq!(
            encode("GET", "http://u:p@h/a/b?x=1&y=%20#frag", &[], None).unwrap(),
            "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: h\r\n\r\n"
        );
        // An empty query is still part of the URL as written.
        assert_eq!(
            encode("GET", "http://h/a?", &[], None).unwrap(),
            "GET /a? HTTP/1.1\r\nHost: h\r\n\r\n"
        );
    }

    #[test]
    fn caller_host_replaces_url_host_and_headers_keep_order() {
        assert_eq!(
            encode(
                "GET",
                "http://h:81/",
                &[("X-A", "1"), ("host", "other"), ("X-A", "2")],
                None
            )
            .unwrap(),
            "GET / HTTP/1.1\r\nX-A: 1\r\nhost: other\r\nX-A: 2\r\n\r\n"
        );
    }

    #[test]
    fn content_length_added_unless_present() {
        assert_eq!(
            encode("PUT", "http://h/", &[], Some(0)).unwrap(),
            "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(
            encode("PUT", "http://h/", &[("content-length", "7")], Some(7)).unwrap(),
            "PUT / HTTP/1.1\r\nHost: h\r\ncontent-length: 7\r\n\r\n"
        );
        assert_eq!(
            encode("PUT", "http://h/", &[], Some(u64::MAX)).unwrap(),
            "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n"
        );
    }

    #[test]
    fn invalid_method_rejected() {
        for m in ["", "GE T", "GET\r\n", "G(ET", "GÉT", "GET\0"] {
            assert_eq!(
                encode(m, "http://h/", &[], None),
                Err(ProtoError::InvalidMethod),
                "{m:?}"
            );
        }
        assert!(encode("M-SEARCH", "http://h/", &[], None).is_ok());
    }

    #[test]
    fn invalid_header_name_rejected() {
        for n in ["", "A B", "A:", "A\r\nB", "Ä", "(a)"] {
            assert_eq!(
                encode("GET", "http://h/", &[("X-Ok", "1"), (n, "v")], None),
                Err(ProtoError::InvalidHeaderName),
                "{n:?}"
            );
        }
    }

    #[test]
    fn invalid_header_value_rejected() {
        for v in ["a\r\nInjected: 1", "a\nb", "a\rb", "a\0b"] {
            assert_eq!(
                encode("GET", "http://h/", &[("X", v)], None),
                Err(ProtoError::InvalidHeaderValue),
                "{v:?}"
            );
        }
        // Empty values, tabs and non-ASCII text are fine.
        assert_eq!(
            encode("GET", "http://h/", &[("X", ""), ("Y", "a\tb é")], None).unwrap(),
            "GET / HTTP/1.1\r\nHost: h\r\nX: \r\nY: a\tb é\r\n\r\n"
        );
    }
}
