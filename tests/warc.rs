//! The WARC writer checked by tools no one here wrote: warcio (`check` recomputes every block
//! and payload digest, `index` lists the records, `extract --payload` reads bodies back) and
//! cdxj-indexer (the index pywb replays from). Both come from PyPI, pinned in
//! `.ci/requirements-test.txt`; without them these tests skip, or fail under `CI`.
#![cfg(feature = "warc")]

use flate2::Compression;
use flate2::write::GzEncoder;
use parafetch::warc::{Captured, PayloadDigest, WarcOptions, WarcWriter};
use parafetch_test_support::tools::{self, CDXJ_INDEXER, PYTHON3, WARCIO};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};

/// One captured fetch: the bytes as they went over the connection, and the body a reader
/// should get back from them (dechunked and decompressed, as `warcio extract --payload`
/// gives it).
struct Case {
    uri: String,
    status: u16,
    request: Vec<u8>,
    response: Vec<u8>,
    body: Vec<u8>,
    chunked: bool,
    truncated: bool,
}

fn get(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: example.com\r\nUser-Agent: parafetch/0.1\r\n\
         Accept-Encoding: gzip\r\n\r\n"
    )
    .into_bytes()
}

fn with_length(status: &str, content_type: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut wire = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    wire.extend_from_slice(body);
    wire
}

fn case(path: &str, status: u16, response: Vec<u8>, body: &[u8]) -> Case {
    Case {
        uri: format!("http://example.com{path}"),
        status,
        request: get(path),
        response,
        body: body.to_vec(),
        chunked: false,
        truncated: false,
    }
}

/// A plain page, a chunked one, a gzip-coded one, a 404, a binary body, a truncated one.
fn cases() -> Vec<Case> {
    let page = b"<!doctype html><title>plain</title><p>Hello, archive.</p>\n";
    let plain = case("/", 200, with_length("200 OK", "text/html", "", page), page);

    let text = "line of a streamed body\n".repeat(200);
    let mut wire =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for piece in text.as_bytes().chunks(1000) {
        wire.extend_from_slice(format!("{:x};name=value\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    // No trailer fields: warcio's dechunker (1.8) stops dechunking at one and hands the
    // rest back raw, so `extract --payload` could not be compared.
    wire.extend_from_slice(b"0\r\n\r\n");
    let chunked = Case {
        chunked: true,
        ..case("/stream", 200, wire, text.as_bytes())
    };

    let json = br#"{"archived": true, "items": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}"#.repeat(50);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&json).unwrap();
    let coded = gz.finish().unwrap();
    let wire = with_length(
        "200 OK",
        "application/json",
        "Content-Encoding: gzip\r\n",
        &coded,
    );
    let gzipped = case("/data.json", 200, wire, &json);

    let missing = b"not here";
    let not_found = case(
        "/missing",
        404,
        with_length("404 Not Found", "text/plain", "", missing),
        missing,
    );

    let bytes: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let binary = case(
        "/blob.bin",
        200,
        with_length("200 OK", "application/octet-stream", "", &bytes),
        &bytes,
    );

    let mut wire = with_length("200 OK", "text/plain", "", &[b'x'; 100]);
    wire.truncate(wire.len() - 60);
    let truncated = Case {
        truncated: true,
        ..case("/cut", 200, wire, &[b'x'; 40])
    };

    vec![plain, chunked, gzipped, not_found, binary, truncated]
}

/// Writes `cases` to a new file in the temp dir.
fn write_warc(name: &str, options: WarcOptions, cases: &[Case]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parafetch-warc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let file = BufWriter::new(std::fs::File::create(&path).unwrap());
    let fields = [
        ("isPartOf", "parafetch-tests"),
        ("description", "captured by hand"),
        ("robots", "obey"),
    ];
    let mut warc = WarcWriter::with_options(file, name, &fields, options).unwrap();
    for (i, c) in cases.iter().enumerate() {
        warc.write_exchange(&Captured {
            target_uri: &c.uri,
            date: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i as u64),
            ip: Some("192.0.2.7".parse().unwrap()),
            request: &c.request,
            response: &c.response,
        })
        .unwrap();
    }
    warc.finish()
        .unwrap()
        .into_inner()
        .unwrap()
        .sync_all()
        .unwrap();
    path
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} did not run: {e}", program.display()))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `warcio check -v`: exit status 0, and every record's digests recomputed and passed.
fn assert_check_passes(warcio: &Path, file: &Path, records: usize) {
    let out = run(warcio, &["check", "-v", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "warcio check failed\n{}",
        describe(&out)
    );
    let text = stdout(&out);
    assert_eq!(text.matches("digest pass").count(), records, "{text}");
    assert!(!text.contains("fail"), "{text}");
}

/// `warcio index`: (offset, type, target URI) of every record, in order.
fn warcio_index(warcio: &Path, file: &Path) -> Vec<(String, String, Option<String>)> {
    let out = run(warcio, &["index", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "warcio index failed\n{}",
        describe(&out)
    );
    stdout(&out)
        .lines()
        .map(|line| {
            let v: serde_like::Json = serde_like::parse(line);
            (
                v.get("offset").unwrap(),
                v.get("warc-type").unwrap(),
                v.get("warc-target-uri"),
            )
        })
        .collect()
}

/// Reads the flat JSON objects the tools print (string values only), without a JSON crate.
mod serde_like {
    pub struct Json(Vec<(String, String)>);

    impl Json {
        pub fn get(&self, key: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        }
    }

    /// `{"a": "b", "c": "d"}` with no escapes but `\"` and `\\`; anything else panics.
    pub fn parse(line: &str) -> Json {
        let inner = line
            .trim()
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or_else(|| panic!("not a JSON object: {line}"));
        let mut strings = Vec::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                continue;
            }
            let mut s = String::new();
            loop {
                match chars.next().expect("unterminated string") {
                    '"' => break,
                    '\\' => s.push(chars.next().expect("escape")),
                    c => s.push(c),
                }
            }
            strings.push(s);
        }
        assert!(strings.len() % 2 == 0, "odd JSON: {line}");
        Json(
            strings
                .chunks(2)
                .map(|kv| (kv[0].clone(), kv[1].clone()))
                .collect(),
        )
    }
}

fn tools_or_skip() -> Option<(PathBuf, PathBuf)> {
    Some((tools::require(&WARCIO)?, tools::require(&CDXJ_INDEXER)?))
}

#[test]
fn warcio_checks_indexes_and_extracts_a_warc_gz() {
    let Some((warcio, _)) = tools_or_skip() else {
        return;
    };
    let cases = cases();
    let file = write_warc("check.warc.gz", WarcOptions::default(), &cases);
    assert_check_passes(&warcio, &file, 1 + 2 * cases.len());

    let index = warcio_index(&warcio, &file);
    let types: Vec<&str> = index.iter().map(|(_, t, _)| t.as_str()).collect();
    let mut expected = vec!["warcinfo"];
    for _ in &cases {
        expected.extend(["request", "response"]);
    }
    assert_eq!(types, expected);
    assert_eq!(index[0].2, None, "a warcinfo has no target URI");
    for (i, c) in cases.iter().enumerate() {
        assert_eq!(index[1 + 2 * i].2.as_deref(), Some(&c.uri[..]));
        assert_eq!(index[2 + 2 * i].2.as_deref(), Some(&c.uri[..]));
    }

    // Every response's body comes back: dechunked and decompressed, byte for byte.
    for (i, c) in cases.iter().enumerate() {
        let offset = &index[2 + 2 * i].0;
        let out = run(
            &warcio,
            &["extract", "--payload", file.to_str().unwrap(), offset],
        );
        assert!(out.status.success(), "{}: {}", c.uri, describe(&out));
        assert!(
            out.stdout == c.body,
            "{}: {} bytes back",
            c.uri,
            out.stdout.len()
        );
    }
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn warcio_checks_a_plain_warc() {
    let Some((warcio, _)) = tools_or_skip() else {
        return;
    };
    let cases = cases();
    let file = write_warc("check.warc", WarcOptions::default().gzip(false), &cases);
    assert!(!std::fs::read(&file).unwrap().starts_with(&[0x1f, 0x8b]));
    assert_check_passes(&warcio, &file, 1 + 2 * cases.len());
    assert_eq!(warcio_index(&warcio, &file).len(), 1 + 2 * cases.len());
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn cdxj_indexer_indexes_every_response() {
    let Some((_, cdxj)) = tools_or_skip() else {
        return;
    };
    let cases = cases();
    let file = write_warc("index.warc.gz", WarcOptions::default(), &cases);
    let out = run(&cdxj, &[file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "cdxj-indexer failed\n{}",
        describe(&out)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), cases.len(), "{text}");
    for c in &cases {
        // `urlkey timestamp {json}`, sorted by urlkey.
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("\"url\": \"{}\"", c.uri)))
            .unwrap_or_else(|| panic!("{} not indexed:\n{text}", c.uri));
        let (_, json) = line.split_once(" {").unwrap();
        let v = serde_like::parse(&format!("{{{json}"));
        assert_eq!(v.get("status"), Some(c.status.to_string()), "{line}");
        assert!(
            v.get("digest").is_some_and(|d| d.starts_with("sha1:")) || c.truncated,
            "{line}"
        );
        assert_eq!(
            v.get("filename").as_deref(),
            Some("index.warc.gz"),
            "{line}"
        );
    }
    std::fs::remove_file(&file).unwrap();
}

/// The spec's payload digest (dechunked): warcio computes its own over the bytes as
/// transferred, so `warcio check` fails exactly the chunked response (warcio issue #74);
/// reading the dechunked body back with warcio gives our digest.
#[test]
fn dechunked_payload_digests_follow_the_spec_and_warcio_check_disagrees() {
    let Some((warcio, _)) = tools_or_skip() else {
        return;
    };
    let cases = cases();
    let options = WarcOptions::default().payload_digest(PayloadDigest::Dechunked);
    let file = write_warc("spec.warc.gz", options, &cases);

    let out = run(&warcio, &["check", file.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert_eq!(text.matches("payload digest failed").count(), 1, "{text}");
    assert_eq!(text.matches("block digest failed").count(), 0, "{text}");
    let index = warcio_index(&warcio, &file);
    let chunked = cases.iter().position(|c| c.chunked).unwrap();
    let offset = &index[2 + 2 * chunked].0;
    assert!(text.contains(&format!("offset {offset} ")), "{text}");

    // Independently: the SHA-1 of each complete response's dechunked (not decompressed)
    // body, as warcio's own readers dechunk it, is the digest we wrote.
    let python = warcio
        .parent()
        .map(|bin| bin.join("python3"))
        .filter(|p| p.exists())
        .or_else(|| tools::require(&PYTHON3));
    let Some(python) = python else {
        return;
    };
    let script = r#"
import base64, hashlib, sys
from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import ChunkedDataReader
with open(sys.argv[1], 'rb') as f:
    for r in ArchiveIterator(f):
        if r.rec_type != 'response':
            continue
        stream = r.raw_stream
        if r.http_headers.get_header('transfer-encoding') == 'chunked':
            stream = ChunkedDataReader(stream, decomp_type=None)
        digest = 'sha1:' + base64.b32encode(hashlib.sha1(stream.read()).digest()).decode()
        print(r.rec_headers.get_header('WARC-Target-URI'), digest,
              r.rec_headers.get_header('WARC-Payload-Digest'))
"#;
    let out = run(&python, &["-c", script, file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    let mut compared = 0;
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        if parts[2] != "None" {
            assert_eq!(parts[1], parts[2], "{line}");
            compared += 1;
        }
    }
    assert_eq!(
        compared,
        cases.len() - 1,
        "all but the truncated one:\n{text}"
    );
    std::fs::remove_file(&file).unwrap();
}
