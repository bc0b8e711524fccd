//! Servers that try to exhaust a client: slow-loris heads and bodies are cut by the total or
//! idle timeout without holding up other requests; endless heads, fields, bodies, chunk
//! lines and trailers hit their limits (kind `too_large`) at the default sizes or at
//! configured ones. (Running out of descriptors is `emfile.rs`.)

use std::io;
use std::time::{Duration, Instant};

use parafetch::{Builder, ErrorKind, Fetcher, Phase, Response};
use parafetch_test_support::http::{Conn, TestServer, ok_body, raw};

fn fetch_with(builder: Builder, url: String) -> Result<Response, parafetch::Error> {
    let mut all: Vec<_> = builder.fetch_all([url]).collect();
    assert_eq!(all.len(), 1, "exactly one result");
    all.pop().unwrap().1
}

/// Sends `first`, then `repeat` over and over until the client goes away (or 1 GiB).
fn endless(first: &'static [u8], repeat: &'static [u8]) -> TestServer {
    TestServer::start(move |c: &mut Conn| {
        c.read_request()?;
        c.send(first)?;
        let block = repeat.repeat((16 * 1024 / repeat.len()).max(1));
        for _ in 0..(1 << 30) / block.len() {
            c.send(&block)?;
        }
        Ok(())
    })
}

/// Reads one request, sends `first`, then one byte of `drip` every `every`, forever.
fn slow_loris(first: &'static [u8], drip: u8, every: Duration) -> TestServer {
    TestServer::start(move |c: &mut Conn| {
        c.read_request()?;
        c.send(first)?;
        loop {
            std::thread::sleep(every);
            c.send(&[drip])?;
        }
    })
}

#[test]
fn slow_loris_head_is_cut_by_the_total_timeout() {
    // One byte of a header value every 50 ms: never idle, the head never ends.
    let s = slow_loris(
        b"HTTP/1.1 200 OK\r\nX-Slow: ",
        b'a',
        Duration::from_millis(50),
    );
    let b = Fetcher::builder()
        .idle_timeout(Duration::from_secs(30))
        .timeout(Some(Duration::from_millis(500)));
    let t = Instant::now();
    let e = fetch_with(b, s.url("/")).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Timeout, Phase::ReceiveHead),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn slow_loris_that_pauses_is_cut_by_the_idle_timeout() {
    // Bytes, then a pause longer than the idle timeout; the total timeout is far away.
    let s = slow_loris(b"HTTP/1.1 200 OK\r\n", b'X', Duration::from_secs(2));
    let b = Fetcher::builder()
        .idle_timeout(Duration::from_millis(200))
        .timeout(Some(Duration::from_secs(30)));
    let t = Instant::now();
    let e = fetch_with(b, s.url("/")).unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Timeout, Phase::ReceiveHead),
        "{e}"
    );
    assert!(e.message().contains("no data"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn slow_loris_servers_do_not_hold_up_other_requests() {
    let loris = slow_loris(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n",
        b'x',
        Duration::from_millis(50),
    );
    let good = TestServer::start(ok_body(b"good"));
    let mut urls = Vec::new();
    for i in 0..60 {
        // 10 lorises among 50 good requests, 20 in flight.
        urls.push(if i % 6 == 0 {
            loris.url(&format!("/loris/{i}"))
        } else {
            good.url(&format!("/good/{i}"))
        });
    }
    let b = Fetcher::builder()
        .max_in_flight(20)
        .idle_timeout(Duration::from_secs(30))
        .timeout(Some(Duration::from_millis(800)));
    let results: Vec<_> = b.fetch_all(urls).collect();
    assert_eq!(results.len(), 60);
    let first_loris = results
        .iter()
        .position(|(u, _)| u.contains("/loris/"))
        .unwrap();
    assert_eq!(first_loris, 50, "every good request finished first");
    for (u, r) in &results {
        match r {
            Ok(r) => assert!(u.contains("/good/") && r.body == b"good", "{u}"),
            Err(e) => assert_eq!(
                (u.contains("/loris/"), e.kind(), e.phase()),
                (true, ErrorKind::Timeout, Phase::ReceiveBody),
                "{u}: {e}"
            ),
        }
    }
}

fn too_large(s: &TestServer, builder: Builder, phase: Phase) -> parafetch::Error {
    let t = Instant::now();
    let e = fetch_with(builder, s.url("/")).unwrap_err();
    assert_eq!((e.kind(), e.phase()), (ErrorKind::TooLarge, phase), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    e
}

#[test]
fn endless_head_hits_the_default_head_limit() {
    let s = endless(b"HTTP/1.1 200 OK\r\n", b"X-Filler: 0123456789abcdef\r\n");
    let e = too_large(
        &s,
        Fetcher::builder().max_headers(100_000),
        Phase::ReceiveHead,
    );
    assert!(e.message().contains("head too large"), "{e}");
}

#[test]
fn endless_header_line_hits_the_default_head_limit() {
    let s = endless(b"HTTP/1.1 200 OK\r\nX-Long: ", b"a");
    let e = too_large(&s, Fetcher::builder(), Phase::ReceiveHead);
    assert!(e.message().contains("head too large"), "{e}");
}

#[test]
fn endless_status_line_hits_the_default_head_limit() {
    let s = endless(b"HTTP/1.1 200 ", b"O");
    too_large(&s, Fetcher::builder(), Phase::ReceiveHead);
}

#[test]
fn too_many_fields_hit_the_default_field_limit() {
    // 101 short fields in a small, complete head (endless ones hit the size limit first).
    let head = format!(
        "HTTP/1.1 200 OK\r\n{}Content-Length: 0\r\n\r\n",
        "A: b\r\n".repeat(100)
    );
    let head: &'static [u8] = head.into_bytes().leak();
    let s = TestServer::start(raw(head));
    let e = too_large(&s, Fetcher::builder(), Phase::ReceiveHead);
    assert!(e.message().contains("too many"), "{e}");
}

#[test]
fn huge_declared_length_is_refused_before_reading() {
    // The body never comes: refusing must not wait for it.
    let s = TestServer::start(|c: &mut Conn| {
        c.read_request()?;
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")?;
        c.hang()
    });
    let b = Fetcher::builder().idle_timeout(Duration::from_secs(30));
    let t = Instant::now();
    too_large(&s, b, Phase::ReceiveBody);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn endless_chunked_body_hits_max_body() {
    let s = endless(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"10\r\n0123456789abcdef\r\n",
    );
    too_large(&s, Fetcher::builder().max_body(1 << 20), Phase::ReceiveBody);
}

#[test]
fn endless_close_delimited_body_hits_max_body() {
    let s = endless(b"HTTP/1.1 200 OK\r\n\r\n", b"0123456789abcdef");
    too_large(&s, Fetcher::builder().max_body(1 << 20), Phase::ReceiveBody);
}

#[test]
fn endless_chunk_extension_hits_the_line_limit() {
    let s = endless(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=",
        b"e",
    );
    let e = too_large(&s, Fetcher::builder(), Phase::ReceiveBody);
    assert!(e.message().contains("chunk size line"), "{e}");
}

#[test]
fn endless_trailers_hit_the_trailer_limit() {
    let s = endless(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n",
        b"X-Trailer: t\r\n",
    );
    let e = too_large(&s, Fetcher::builder(), Phase::ReceiveBody);
    assert!(e.message().contains("trailer"), "{e}");
}

#[test]
fn endless_servers_stop_being_read_after_the_limit() {
    // After a too_large error the client closes, so the server's writes fail soon: it is
    // not made to send its whole gigabyte.
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let s = TestServer::start(move |c: &mut Conn| {
        c.read_request()?;
        c.send(b"HTTP/1.1 200 OK\r\n\r\n")?;
        let block = [b'z'; 16 * 1024];
        let mut sent = 0usize;
        let result = loop {
            if let Err(e) = c.send(&block) {
                break e;
            }
            sent += block.len();
            if sent >= 1 << 30 {
                break io::Error::other("sent a whole gigabyte");
            }
        };
        let _ = tx.lock().unwrap().send((sent, result.to_string()));
        Ok(())
    });
    too_large(&s, Fetcher::builder().max_body(1 << 20), Phase::ReceiveBody);
    let (sent, why) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server done");
    assert!(sent < 64 << 20, "server sent {sent} bytes before {why}");
}
