//! A 1 GiB body streamed to a sink keeps the process's peak RSS small. Its own test binary
//! (one test), so the process's high-water mark measures this fetch and nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parafetch::{Fetcher, Request};
use parafetch_test_support::http::{Conn, TestServer};
use parafetch_test_support::process;

const GIB: u64 = 1 << 30;

fn peak_rss_kib() -> Option<u64> {
    let kb = process::proc_status_kb("VmHWM");
    (kb > 0).then_some(kb)
}

#[test]
fn one_gib_streams_with_bounded_memory() {
    let s = TestServer::start(|c: &mut Conn| {
        c.read_request()?;
        c.send(format!("HTTP/1.1 200 OK\r\nContent-Length: {GIB}\r\n\r\n").as_bytes())?;
        let block = vec![b'x'; 256 * 1024];
        for _ in 0..(GIB / block.len() as u64) {
            c.send(&block)?;
        }
        Ok(())
    });
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    // No max_body: the fetcher's default (64 MiB) bounds buffered bodies, not streamed ones.
    let req = Request::get(s.url("/huge")).on_body(move |b| {
        s2.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(())
    });
    let r = Fetcher::builder()
        .fetch_all([req])
        .next()
        .unwrap()
        .1
        .unwrap();
    assert_eq!(
        (r.body_len, seen.load(Ordering::Relaxed), r.body.len()),
        (GIB, GIB, 0)
    );
    if let Some(kib) = peak_rss_kib() {
        eprintln!(
            "peak RSS while streaming 1 GiB: {:.1} MiB",
            kib as f64 / 1024.0
        );
        assert!(kib < 32 * 1024, "peak RSS {kib} KiB");
    }
}
