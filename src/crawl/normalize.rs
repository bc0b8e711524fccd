//! URL normalisation for de-duplication: two spellings of one http(s) resource become one
//! URL. Owns only that; it never fetches, never follows a redirect and never guesses at
//! what a server treats as equal.

use url::Url;

/// The form of `url` used to tell whether it was seen already: `None` unless its scheme is
/// `http` or `https`.
///
/// What is normalised:
/// - everything the `url` crate's WHATWG parser already does to any [`Url`]: scheme and
///   host lowercased, international host names in punycode, IPv4 hosts in dotted decimal,
///   the default port (80, 443) dropped, an empty path made `/`, `.` and `..` segments
///   (also spelt `%2e`) resolved, `\` read as `/`, and characters that must be
///   percent-encoded encoded;
/// - the fragment (`#...`) dropped: it never reaches the server;
/// - an empty query (a bare `?`) dropped;
/// - in the path and query, percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`)
///   decoded and the hex digits of every other percent-encoding uppercased (RFC 3986
///   §6.2.2.1 and §6.2.2.2: `/%7euser/%c3%a9` becomes `/~user/%C3%A9`).
///
/// What is kept as it is, because a server may tell the two apart: the order of query
/// parameters, empty parameters (`?a=&b`), `+` versus `%20`, a trailing slash (`/a` versus
/// `/a/`), the case of the path, `index.html`, `www.`, a trailing dot in the host, user
/// name and password, and tracking or session parameters (`utm_*`, `sid=`).
///
/// Idempotent: `normalize(&normalize(u)?)` is `normalize(u)`.
///
/// # Examples
/// ```
/// use parafetch::crawl::normalize;
/// use url::Url;
/// let u = Url::parse("HTTP://Example.COM:80/a/./b/../%7Ec?#top").unwrap();
/// assert_eq!(normalize(&u).unwrap().as_str(), "http://example.com/a/~c");
/// assert_eq!(normalize(&Url::parse("mailto:a@example.com").unwrap()), None);
/// ```
pub fn normalize(url: &Url) -> Option<Url> {
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let mut url = url.clone();
    url.set_fragment(None);
    if let Some(path) = percent_normal(url.path()) {
        url.set_path(&path);
    }
    match url.query() {
        Some("") => url.set_query(None),
        Some(query) => {
            if let Some(query) = percent_normal(query) {
                url.set_query(Some(&query));
            }
        }
        None => {}
    }
    Some(url)
}

/// `s` with percent-encoded unreserved characters decoded and other percent-encodings in
/// uppercase hex, or `None` if that is `s` already (the common case: no allocation).
fn percent_normal(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let byte = hi << 4 | lo;
                if is_unreserved(byte) {
                    out.push(byte);
                    changed = true;
                } else {
                    let upper = [
                        b'%',
                        b[i + 1].to_ascii_uppercase(),
                        b[i + 2].to_ascii_uppercase(),
                    ];
                    changed |= upper[1..] != b[i + 1..i + 3];
                    out.extend_from_slice(&upper);
                }
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    // Only ASCII was replaced by ASCII, so this is still UTF-8.
    changed.then(|| String::from_utf8(out).ok()).flatten()
}

fn hex(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Option<String> {
        normalize(&Url::parse(s).unwrap()).map(String::from)
    }

    #[test]
    fn what_the_url_crate_does_stays() {
        assert_eq!(
            n("HTTP://WWW.Example.COM").unwrap(),
            "http://www.example.com/"
        );
        assert_eq!(
            n("https://example.com:443/").unwrap(),
            "https://example.com/"
        );
        assert_eq!(
            n("http://example.com:8080/").unwrap(),
            "http://example.com:8080/"
        );
        assert_eq!(
            n("http://example.com/a/./b/../c").unwrap(),
            "http://example.com/a/c"
        );
        assert_eq!(
            n("http://example.com/a/%2e%2E/c").unwrap(),
            "http://example.com/c"
        );
        assert_eq!(
            n("http://example.com\\a\\b").unwrap(),
            "http://example.com/a/b"
        );
        assert_eq!(
            n("http://bücher.example/ä b").unwrap(),
            "http://xn--bcher-kva.example/%C3%A4%20b"
        );
        assert_eq!(n("http://0x7f.1/").unwrap(), "http://127.0.0.1/");
    }

    #[test]
    fn fragment_and_empty_query_go() {
        assert_eq!(
            n("http://example.com/a#top").unwrap(),
            "http://example.com/a"
        );
        assert_eq!(n("http://example.com/a#").unwrap(), "http://example.com/a");
        assert_eq!(n("http://example.com/a?").unwrap(), "http://example.com/a");
        assert_eq!(
            n("http://example.com/a?#x").unwrap(),
            "http://example.com/a"
        );
        assert_eq!(
            n("http://example.com/a?b").unwrap(),
            "http://example.com/a?b"
        );
    }

    #[test]
    fn percent_encodings_are_normalised() {
        assert_eq!(
            n("http://e.com/%7euser/%c3%a9").unwrap(),
            "http://e.com/~user/%C3%A9"
        );
        assert_eq!(
            n("http://e.com/%41%2d%5F?q=%61%2f%2F").unwrap(),
            "http://e.com/A-_?q=a%2F%2F"
        );
        // Not a percent-encoding: left alone (the url crate keeps a lone `%`).
        assert_eq!(
            n("http://e.com/100%/%zz%4").unwrap(),
            "http://e.com/100%/%zz%4"
        );
        // Reserved characters stay encoded: `%2F` is not `/`, `%3F` is not `?`.
        assert_eq!(
            n("http://e.com/a%2fb%3fc").unwrap(),
            "http://e.com/a%2Fb%3Fc"
        );
    }

    #[test]
    fn what_a_server_may_distinguish_is_kept() {
        for s in [
            "http://e.com/a/",
            "http://e.com/a",
            "http://e.com/A",
            "http://e.com/?b=1&a=2",
            "http://e.com/?a=&b",
            "http://e.com/?a+b%20c",
            "http://e.com./",
            "http://user:pw@e.com/",
            "http://e.com/index.html",
        ] {
            assert_eq!(n(s).unwrap(), s, "{s}");
        }
    }

    #[test]
    fn only_http_and_https() {
        for s in [
            "ftp://e.com/",
            "mailto:a@e.com",
            "javascript:alert(1)",
            "data:,x",
            "file:///etc/passwd",
        ] {
            assert_eq!(n(s), None, "{s}");
        }
    }

    #[test]
    fn idempotent() {
        for s in [
            "HTTP://E.com:80/%7e/%2e/x?%61#f",
            "https://e.com/?",
            "http://e.com/%zz%4",
        ] {
            let once = normalize(&Url::parse(s).unwrap()).unwrap();
            assert_eq!(normalize(&once).unwrap(), once, "{s}");
        }
    }
}
