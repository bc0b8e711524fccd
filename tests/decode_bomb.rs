//! Brotli and zstd bombs (1 GiB of zeros in under 1 KiB and 32 KiB) stop at the body limit
//! with memory bounded by the decoder's window plus one output step. Each fetch runs in a
//! child process (this binary again, one test), so its peak RSS counts that fetch alone:
//! pages the encoders freed here would otherwise be reused and hide growth.
#![cfg(all(feature = "brotli", feature = "zstd"))]

use std::io::Write;
use std::process::Command;

use parafetch::proto::ContentDecoder;
use parafetch::{ErrorKind, Fetcher, Phase, Request};
use parafetch_test_support::http::{Conn, TestServer};
use parafetch_test_support::process;

const GIB: usize = 1 << 30;
const MIB: usize = 1 << 20;
/// The per-request body limit the child fetches with.
const LIMIT: u64 = 64 << 20;
/// Tells the child test which URL to fetch; without it the child test does nothing.
const CHILD_URL: &str = "PARAFETCH_BOMB_URL";

/// 1 GiB of zeros as brotli, built from three 16 MiB metablocks: encoding the whole GiB
/// takes seconds, but after the first, every flushed 16 MiB of zeros encodes to the same
/// byte-aligned metablock, so the rest are copies of the second; an empty last metablock
/// ends the stream. A 16 MiB window (lgwin 24), the largest RFC 7932 allows: the
/// decoder's worst case.
fn brotli_bomb() -> Vec<u8> {
    let block = vec![0u8; 16 * MIB];
    let mut e = brotli_encoder::CompressorWriter::new(Vec::new(), 64 * 1024, 5, 24);
    let mut metablocks = Vec::new();
    for _ in 0..3 {
        e.write_all(&block).unwrap();
        e.flush().unwrap();
        metablocks.push(std::mem::take(e.get_mut()));
    }
    assert_eq!(metablocks[1], metablocks[2], "flushed metablocks differ");
    let mut bomb = metablocks[0].clone();
    for _ in 1..GIB / block.len() {
        bomb.extend_from_slice(&metablocks[1]);
    }
    bomb.push(0b11); // ISLAST, ISLASTEMPTY
    bomb
}

/// 1 GiB of zeros as zstd (RLE blocks, 4 bytes per 128 KiB), with an 8 MiB window: the
/// most an HTTP zstd decoder must accept (RFC 9659).
fn zstd_bomb() -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    e.window_log(23).unwrap();
    let zeros = vec![0u8; MIB];
    for _ in 0..GIB / MIB {
        e.write_all(&zeros).unwrap();
    }
    e.finish().unwrap()
}

/// How many bytes `bomb` decodes to, counted a step at a time.
fn decoded_len(coding: &str, bomb: &[u8]) -> usize {
    let mut d = ContentDecoder::for_encoding(coding).unwrap();
    let (mut n, mut rest) = (0, bomb);
    loop {
        let (used, out) = d.decode(rest).unwrap();
        assert!(out.len() <= ContentDecoder::OUT_STEP);
        rest = &rest[used..];
        if out.is_empty() {
            break;
        }
        n += out.len();
    }
    assert!(d.finish().unwrap().is_empty());
    n
}

#[test]
fn brotli_and_zstd_bombs_stop_at_the_limit_in_bounded_memory() {
    let bombs = [("br", brotli_bomb()), ("zstd", zstd_bomb())];
    for (coding, bomb) in &bombs {
        assert!(
            bomb.len() <= 32 * 1024 + 64,
            "{coding}: {} bytes",
            bomb.len()
        );
        assert_eq!(decoded_len(coding, bomb), GIB, "{coding}");
    }
    let served = bombs.clone();
    let s = TestServer::start(move |c: &mut Conn| {
        let served = served.clone();
        c.serve_keep_alive(move |req, c| {
            let path = req.target.trim_start_matches('/');
            let (coding, body) = served.iter().find(|(p, _)| *p == path).unwrap();
            c.respond(200, &[("Content-Encoding", coding)], body)
        })
    });
    for (coding, bomb) in &bombs {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "bomb_fetch_in_a_child", "--nocapture"])
            .env(CHILD_URL, s.url(&format!("/{coding}")))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{coding}: {stdout}");
        let Some(growth) = stdout
            .lines()
            .find_map(|l| l.strip_prefix("peak rss growth kib: "))
        else {
            eprintln!("{coding}: peak RSS not measurable here");
            continue;
        };
        let growth: u64 = growth.trim().parse().unwrap();
        eprintln!(
            "{coding}: 1 GiB in {} bytes; peak RSS grew {:.1} MiB decoding to the {} MiB limit",
            bomb.len(),
            growth as f64 / 1024.0,
            LIMIT >> 20
        );
        // The window (br 16 MiB, zstd 8 MiB) plus a step and the fetcher: far from the
        // 64 MiB a decoded body would take.
        assert!(growth < 40 * 1024, "{coding}: peak RSS grew {growth} KiB");
    }
}

/// The child's part: one fetch of a bomb, streamed to a counting sink so no body buffer
/// hides the decoder's own memory; prints its peak RSS growth.
#[test]
fn bomb_fetch_in_a_child() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return; // not a child: nothing to do
    };
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen2 = seen.clone();
    let req = Request::get(url).max_body(LIMIT).on_body(move |b| {
        seen2.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    });
    let measured = process::start_peak_rss_window();
    let before = process::proc_status_kb("VmRSS");
    let e = Fetcher::builder()
        .decompress(true)
        .fetch_all([req])
        .next()
        .unwrap()
        .1
        .unwrap_err();
    let peak = process::proc_status_kb("VmHWM");
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::TooLarge, Phase::ReceiveBody),
        "{e:#}"
    );
    // Stopped within one output step of the limit.
    let got = seen.load(std::sync::atomic::Ordering::Relaxed);
    let step = ContentDecoder::OUT_STEP as u64;
    assert!(got <= LIMIT && got + step > LIMIT, "{got} bytes");
    if measured && before > 0 {
        println!("peak rss growth kib: {}", peak.saturating_sub(before));
    }
}
