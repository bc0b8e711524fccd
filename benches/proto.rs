//! Micro-benchmarks of `proto` beside plain httparse on the same input (the floor we sit
//! on), in bytes per second: reading a typical response head, decoding a chunked body, and
//! content decoding (gzip beside flate2's own `GzDecoder`, br, zstd) of HTML-like text.
//!
//! `cargo bench --bench proto`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parafetch::proto::{ContentDecoder, Limits};
// Below the public surface, on purpose: these measure the parts the exchange is built from.
use parafetch::proto::__private::{ChunkedDecoder, HeadReader};
use std::hint::black_box;

/// A typical response head of about 400 bytes (nginx-like, with a few CDN fields).
fn typical_head() -> Vec<u8> {
    let head = b"HTTP/1.1 200 OK\r\n\
        Server: nginx/1.22.1\r\n\
        Date: Tue, 25 Nov 2025 08:50:00 GMT\r\n\
        Content-Type: text/html; charset=utf-8\r\n\
        Content-Length: 16384\r\n\
        Last-Modified: Mon, 24 Nov 2025 12:00:00 GMT\r\n\
        Connection: keep-alive\r\n\
        ETag: \"6743f1c0-4000\"\r\n\
        Cache-Control: public, max-age=3600\r\n\
        Vary: Accept-Encoding\r\n\
        X-Cache: HIT from edge-fra-3\r\n\
        Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n\
        Accept-Ranges: bytes\r\n\r\n";
    head.to_vec()
}

fn head(c: &mut Criterion) {
    let input = typical_head();
    let limits = Limits::default();
    let mut g = c.benchmark_group("head");
    g.throughput(Throughput::Bytes(input.len() as u64));
    // What the driver does per response: a reader (reused across responses on one
    // connection), the end-of-head scan, httparse, and an owned ResponseHead.
    let mut reader = HeadReader::new(&limits);
    g.bench_function("parafetch HeadReader::read", |b| {
        b.iter(|| {
            let (n, head) = reader.read(black_box(&input)).expect("valid head");
            black_box((n, head))
        })
    });
    // The floor: httparse alone into a stack array of the same size as parafetch's limit,
    // borrowing from the input (no owned head).
    g.bench_function("httparse::Response::parse (100 headers)", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; Limits::DEFAULT_MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            let status = resp.parse(black_box(&input)).expect("valid head");
            black_box((status.is_complete(), resp.code));
        })
    });
    g.bench_function("httparse::Response::parse (16 headers)", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            let status = resp.parse(black_box(&input)).expect("valid head");
            black_box((status.is_complete(), resp.code));
        })
    });
    g.finish();
}

/// A 1 MiB body in 4 KiB chunks, chunked-encoded.
fn chunked_body() -> Vec<u8> {
    let chunk = vec![b'x'; 4096];
    let mut out = Vec::new();
    for _ in 0..256 {
        out.extend_from_slice(b"1000\r\n");
        out.extend_from_slice(&chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn chunked(c: &mut Criterion) {
    let input = chunked_body();
    let limits = Limits::default();
    let mut g = c.benchmark_group("chunked 1 MiB, 4 KiB chunks");
    g.throughput(Throughput::Bytes(input.len() as u64));
    for read in [input.len(), 16 * 1024] {
        let label = if read == input.len() {
            "whole body".to_owned()
        } else {
            format!("{} KiB reads", read / 1024)
        };
        g.bench_function(format!("parafetch ChunkedDecoder ({label})"), |b| {
            b.iter(|| {
                let mut dec = ChunkedDecoder::new(&limits);
                let mut data = 0usize;
                for piece in input.chunks(read) {
                    let mut rest = black_box(piece);
                    while !rest.is_empty() {
                        let (n, out) = dec.decode(rest).expect("valid chunked");
                        data += out.map_or(0, <[u8]>::len);
                        rest = &rest[n..];
                    }
                }
                assert!(dec.is_done());
                black_box(data)
            })
        });
    }
    // The floor: httparse's chunk-size parser over the whole body, skipping data and CRLF
    // (no limits, no trailers, no split input).
    g.bench_function("httparse::parse_chunk_size (whole body)", |b| {
        b.iter(|| {
            let mut rest = black_box(&input[..]);
            let mut data = 0usize;
            loop {
                let (n, size) = match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete(c)) => c,
                    _ => panic!("valid chunk size"),
                };
                if size == 0 {
                    break;
                }
                let size = size as usize;
                data += black_box(&rest[n..n + size]).len();
                rest = &rest[n + size + 2..];
            }
            black_box(data)
        })
    });
    g.finish();
}

/// About 4 MiB of HTML-like text: repetitive markup around varying words and numbers.
fn html_like() -> Vec<u8> {
    let words = [
        "parafetch",
        "crawler",
        "loop",
        "connection",
        "decode",
        "window",
        "body",
    ];
    let mut page = String::from("<!doctype html><html><head><title>bench</title></head><body>\n");
    let mut i = 0u32;
    while page.len() < 4 << 20 {
        let w = words[(i as usize * 7 + i as usize / 3) % words.len()];
        page.push_str(&format!(
            "<div class=\"item item-{}\"><a href=\"/{w}/{i}\">{w} {i}</a><p>{} of {w}</p></div>\n",
            i % 13,
            i.wrapping_mul(2_654_435_761) % 100_000
        ));
        i += 1;
    }
    page.push_str("</body></html>\n");
    page.into_bytes()
}

/// Drains a decoder over `wire` in 16 KiB reads, as the driver feeds it; the decoded size.
fn decode_all(coding: &str, wire: &[u8]) -> usize {
    let mut d = ContentDecoder::for_encoding(coding).expect("a coding we decode");
    let mut n = 0;
    for packet in wire.chunks(16 * 1024) {
        let mut rest = packet;
        loop {
            let (used, out) = d.decode(rest).expect("valid stream");
            rest = &rest[used..];
            if out.is_empty() {
                break;
            }
            n += black_box(out).len();
        }
    }
    n + d.finish().expect("complete stream").len()
}

fn content(c: &mut Criterion) {
    use std::io::Write;
    let plain = html_like();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let mut br = brotli_encoder::CompressorWriter::new(Vec::new(), 4096, 5, 22);
    br.write_all(&plain).unwrap();
    let br = br.into_inner();
    let zst = zstd::bulk::compress(&plain, 3).unwrap();
    let mut g = c.benchmark_group("content decoding (decoded bytes)");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.sample_size(20);
    g.bench_function("flate2 write::GzDecoder (before output steps)", |b| {
        b.iter(|| {
            let mut d = flate2::write::GzDecoder::new(Vec::with_capacity(plain.len()));
            for packet in gz.chunks(16 * 1024) {
                d.write_all(black_box(packet)).unwrap();
            }
            d.finish().unwrap().len()
        })
    });
    g.bench_function("parafetch gzip", |b| {
        b.iter(|| decode_all("gzip", black_box(&gz)))
    });
    if cfg!(feature = "brotli") {
        g.bench_function("parafetch br", |b| {
            b.iter(|| decode_all("br", black_box(&br)))
        });
    }
    if cfg!(feature = "zstd") {
        g.bench_function("parafetch zstd", |b| {
            b.iter(|| decode_all("zstd", black_box(&zst)))
        });
    }
    g.finish();
}

criterion_group!(benches, head, chunked, content);
criterion_main!(benches);
