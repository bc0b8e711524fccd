//! `capture_wire`: the bytes of an exchange kept for archiving, checked against what the
//! server actually sent and received, and written to a WARC that warcio checks.

use std::time::Duration;

use parafetch::{Fetcher, Request, Response};
use parafetch_test_support::http::{Conn, TestServer};

/// A server answering every request with `raw`, byte for byte.
fn answering(raw: &'static [u8]) -> TestServer {
    TestServer::start(move |c: &mut Conn| c.serve_keep_alive(|_, c| c.send(raw)))
}

fn one(b: parafetch::Builder, req: Request) -> Response {
    let mut got: Vec<Response> = b
        .proxy_from_env(false)
        .timeout(Some(Duration::from_secs(10)))
        .fetch_all([req])
        .map(|(u, r)| r.unwrap_or_else(|e| panic!("{u}: {e:#}")))
        .collect();
    got.remove(0)
}

const CHUNKED: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n\
5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";

#[test]
fn the_response_is_kept_exactly_as_it_came_over_the_connection() {
    let s = answering(CHUNKED);
    let r = one(
        Fetcher::builder().capture_wire(true),
        Request::get(s.url("/page?x=1")),
    );
    assert_eq!(r.body, b"hello world", "the body is still decoded");
    let wire = r.wire.expect("captured");
    assert_eq!(wire.response, CHUNKED, "chunked framing kept");
    let req = String::from_utf8(wire.request).unwrap();
    assert!(req.starts_with("GET /page?x=1 HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("\r\nHost: 127.0.0.1:"), "{req}");
    // Debug shows sizes, never bytes.
    let s = answering(CHUNKED);
    let r = one(
        Fetcher::builder().capture_wire(true),
        Request::get(s.url("/")),
    );
    assert!(!format!("{r:?}").contains("hello"));
}

#[test]
fn secrets_in_the_kept_request_are_redacted_unless_asked_for() {
    let s = answering(CHUNKED);
    let req = || {
        Request::get(s.url("/"))
            .header("Authorization", "Bearer s3cr3t")
            .header("Cookie", "sid=abc")
    };
    let r = one(Fetcher::builder().capture_wire(true), req());
    let kept = String::from_utf8(r.wire.unwrap().request).unwrap();
    assert!(kept.contains("Authorization: <redacted>\r\n"), "{kept}");
    assert!(kept.contains("Cookie: <redacted>\r\n"), "{kept}");
    assert!(
        !kept.contains("s3cr3t") && !kept.contains("sid=abc"),
        "{kept}"
    );
    // The server got the real values all the same.
    assert_eq!(
        s.requests()[0].header("authorization"),
        Some("Bearer s3cr3t")
    );
    let b = Fetcher::builder().capture_wire(true).capture_secrets(true);
    let kept = String::from_utf8(one(b, req()).wire.unwrap().request).unwrap();
    assert!(kept.contains("Authorization: Bearer s3cr3t\r\n"), "{kept}");
}

#[test]
fn only_this_exchange_is_kept_and_nothing_without_asking() {
    // Bytes after the response (a second, unasked-for response) are not this exchange's.
    const TWO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let s = answering(TWO);
    let r = one(
        Fetcher::builder().capture_wire(true),
        Request::get(s.url("/")),
    );
    assert_eq!(r.wire.unwrap().response, &TWO[..40]);
    let s = answering(CHUNKED);
    assert!(
        one(Fetcher::builder(), Request::get(s.url("/")))
            .wire
            .is_none()
    );
    let r = one(
        Fetcher::builder(),
        Request::get(s.url("/")).capture_wire(true),
    );
    assert!(r.wire.is_some(), "per request");
}

#[cfg(feature = "warc")]
#[test]
fn a_captured_fetch_written_to_a_warc_passes_warcio_check() {
    use parafetch::warc::{Captured, WarcWriter};
    use parafetch_test_support::tools::{self, WARCIO};
    let Some(warcio) = tools::require(&WARCIO) else {
        return;
    };
    const PLAIN: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
    let servers = [answering(CHUNKED), answering(PLAIN)];
    let path = std::env::temp_dir().join(format!("parafetch-wire-{}.warc.gz", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let mut w = WarcWriter::new(file, "wire.warc.gz", &[]).unwrap();
    for s in &servers {
        let r = one(
            Fetcher::builder().capture_wire(true),
            Request::get(s.url("/")),
        );
        let wire = r.wire.as_ref().unwrap();
        w.write_exchange(&Captured {
            target_uri: r.url.as_str(),
            date: wire.sent_at,
            ip: Some(r.remote_addr.ip()),
            request: &wire.request,
            response: &wire.response,
        })
        .unwrap();
    }
    w.finish().unwrap();
    let index = parafetch_test_support::warcio::check_and_index(&warcio, &path);
    assert_eq!(index.response, 2, "{}", index.text);
    assert_eq!(index.request, 2, "{}", index.text);
    let _ = std::fs::remove_file(&path);
}
