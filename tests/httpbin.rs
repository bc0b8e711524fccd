//! httpbin on gunicorn (a real server no one here wrote) for content codings: `/brotli`,
//! `/gzip` and `/deflate` decoded with `decompress(true)`, left as sent (and said so)
//! without it, and the `Accept-Encoding` we send, as httpbin echoes it.
//!
//! Needs the `cli` feature (serde_json reads httpbin's answers).
#![cfg(feature = "cli")]

use std::time::Duration;

use parafetch::{Fetcher, Response};
use parafetch_test_support::httpbin;
use serde_json::Value;

fn get(url: String, decompress: bool) -> Response {
    let mut got: Vec<Response> = Fetcher::builder()
        .proxy_from_env(false)
        .timeout(Some(Duration::from_secs(20)))
        .decompress(decompress)
        .fetch_all([url])
        .map(|(url, r)| r.unwrap_or_else(|e| panic!("{url}: {e:#}")))
        .collect();
    got.remove(0)
}

fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&r.body)))
}

#[test]
fn httpbin_brotli_gzip_and_deflate_are_decoded() {
    let Some(hb) = httpbin::start() else { return };
    for (path, flag, coding) in [
        ("/brotli", "brotli", "br"),
        ("/gzip", "gzipped", "gzip"),
        ("/deflate", "deflated", "deflate"),
    ] {
        let r = get(hb.url(path), true);
        assert_eq!(r.status, 200);
        assert_eq!(r.headers.get("content-encoding"), Some(coding));
        assert_eq!(r.content_encoding_left, None, "{path}: decoded");
        assert_eq!(json(&r)[flag], true, "{path}");
    }
}

#[test]
fn without_decompress_the_body_is_as_sent_and_the_response_says_so() {
    let Some(hb) = httpbin::start() else { return };
    // httpbin answers br although we asked for nothing.
    let r = get(hb.url("/brotli"), false);
    assert_eq!(r.content_encoding_left.as_deref(), Some("br"));
    assert!(
        serde_json::from_slice::<Value>(&r.body).is_err(),
        "still br"
    );
}

#[test]
fn we_ask_for_every_coding_we_decode() {
    let Some(hb) = httpbin::start() else { return };
    let r = get(hb.url("/headers"), true);
    let sent = json(&r)["headers"]["Accept-Encoding"].clone();
    assert_eq!(sent, "gzip, deflate, br, zstd");
}
