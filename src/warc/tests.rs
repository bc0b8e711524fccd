use super::*;
use std::io::Read;
use std::time::{Duration, UNIX_EPOCH};

const REQUEST: &[u8] = b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: parafetch\r\n\r\n";
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                         5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn captured(response: &[u8]) -> Captured<'_> {
    Captured {
        target_uri: "http://example.com/a?b=1",
        date: at(1_700_000_000),
        ip: Some("192.0.2.7".parse().unwrap()),
        request: REQUEST,
        response,
    }
}

/// A writer whose IDs come from `RecordIds::seeded(1)` and whose warcinfo is dated
/// 2023-11-14T22:00:00Z.
fn writer<W: Write>(out: W, options: WarcOptions) -> WarcWriter<W> {
    let ids = ids::RecordIds::seeded(1);
    WarcWriter::start(
        out,
        "t.warc",
        &[("isPartOf", "test")],
        options,
        ids,
        at(1_699_999_200),
    )
    .unwrap()
}

fn plain() -> WarcOptions {
    WarcOptions::default().gzip(false)
}

/// Splits a plain WARC into its records' texts (each ends with its CRLF CRLF).
fn records(warc: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(warc);
    let starts: Vec<usize> = text.match_indices("WARC/1.1\r\n").map(|(i, _)| i).collect();
    let mut ends = starts[1..].to_vec();
    ends.push(text.len());
    starts
        .iter()
        .zip(ends)
        .map(|(&s, e)| text[s..e].to_string())
        .collect()
}

fn field<'a>(record: &'a str, name: &str) -> Option<&'a str> {
    let head = &record[..record.find("\r\n\r\n")?];
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn a_records_exact_layout() {
    let mut w = writer(Vec::new(), plain());
    w.write_exchange(&captured(RESPONSE)).unwrap();
    let warc = w.finish().unwrap();

    let mut ids = ids::RecordIds::seeded(1);
    let (info, req, resp) = (ids.next_id(), ids.next_id(), ids.next_id());
    let block = format!(
        "software: {SOFTWARE}\r\nformat: WARC File Format 1.1\r\n\
         conformsTo: http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/\r\n\
         isPartOf: test\r\n"
    );
    let warcinfo = format!(
        "WARC/1.1\r\n\
         WARC-Type: warcinfo\r\n\
         WARC-Record-ID: {info}\r\n\
         WARC-Date: 2023-11-14T22:00:00Z\r\n\
         WARC-Filename: t.warc\r\n\
         Content-Type: application/warc-fields\r\n\
         WARC-Block-Digest: sha1:{}\r\n\
         Content-Length: {}\r\n\
         \r\n\
         {block}\r\n\r\n",
        base32::encode(&payload::sha1(block.as_bytes())),
        block.len(),
    );
    let request = format!(
        "WARC/1.1\r\n\
         WARC-Type: request\r\n\
         WARC-Record-ID: {req}\r\n\
         WARC-Date: 2023-11-14T22:13:20Z\r\n\
         WARC-Target-URI: http://example.com/a?b=1\r\n\
         WARC-IP-Address: 192.0.2.7\r\n\
         WARC-Warcinfo-ID: {info}\r\n\
         WARC-Concurrent-To: {resp}\r\n\
         Content-Type: application/http;msgtype=request\r\n\
         WARC-Block-Digest: sha1:RB3FXA4ETOF3C5KSKWX26CJYCKYW3QYU\r\n\
         WARC-Payload-Digest: sha1:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ\r\n\
         Content-Length: 65\r\n\
         \r\n\
         GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: parafetch\r\n\r\n\
         \r\n\r\n"
    );
    let response = format!(
        "WARC/1.1\r\n\
         WARC-Type: response\r\n\
         WARC-Record-ID: {resp}\r\n\
         WARC-Date: 2023-11-14T22:13:20Z\r\n\
         WARC-Target-URI: http://example.com/a?b=1\r\n\
         WARC-IP-Address: 192.0.2.7\r\n\
         WARC-Warcinfo-ID: {info}\r\n\
         WARC-Concurrent-To: {req}\r\n\
         Content-Type: application/http;msgtype=response\r\n\
         WARC-Block-Digest: sha1:LRYKYE6JURFXLGHETF373AYPQNPBXBUU\r\n\
         WARC-Payload-Digest: sha1:VL2MMHO4YXUKFWV63YHTWSBM3GXKSQ2N\r\n\
         Content-Length: 69\r\n\
         \r\n\
         HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello\
         \r\n\r\n"
    );
    assert_eq!(
        String::from_utf8(warc).unwrap(),
        warcinfo + &request + &response
    );
}

#[test]
fn each_record_is_its_own_gzip_member() {
    let mut w = writer(Vec::new(), WarcOptions::default());
    w.write_exchange(&captured(RESPONSE)).unwrap();
    w.write_exchange(&captured(CHUNKED)).unwrap();
    let gz = w.finish().unwrap();

    let mut plain_w = writer(Vec::new(), plain());
    plain_w.write_exchange(&captured(RESPONSE)).unwrap();
    plain_w.write_exchange(&captured(CHUNKED)).unwrap();
    let expected = records(&plain_w.finish().unwrap());

    // Decode one member at a time: each is exactly one whole record.
    let mut rest = &gz[..];
    let mut members = Vec::new();
    while !rest.is_empty() {
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        let mut record = String::new();
        decoder.read_to_string(&mut record).unwrap();
        rest = decoder.into_inner();
        members.push(record);
    }
    assert_eq!(members, expected);
    assert_eq!(members.len(), 5);
}

#[test]
fn a_chunked_responses_payload_digest() {
    let dechunked = payload::sha1(b"hello, world");
    let head_end = CHUNKED.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    for (mode, digest) in [
        (PayloadDigest::Dechunked, dechunked),
        (
            PayloadDigest::AsTransferred,
            payload::sha1(&CHUNKED[head_end..]),
        ),
    ] {
        let mut w = writer(Vec::new(), plain().payload_digest(mode));
        w.write_exchange(&captured(CHUNKED)).unwrap();
        let recs = records(&w.finish().unwrap());
        let expected = format!("sha1:{}", base32::encode(&digest));
        assert_eq!(
            field(&recs[2], "WARC-Payload-Digest"),
            Some(&expected[..]),
            "{mode:?}"
        );
        assert_eq!(field(&recs[2], "WARC-Truncated"), None);
        // The block is the response as transferred, chunk framing and all.
        assert!(recs[2].ends_with("0\r\n\r\n\r\n\r\n"));
    }
    assert_eq!(
        base32::encode(&dechunked),
        "W7RD5QU26IVQWTSB3IY6Q2GVOITBEHEE"
    );
}

#[test]
fn a_truncated_response_is_written_without_payload_digest() {
    let cut = &RESPONSE[..RESPONSE.len() - 2];
    let mut w = writer(Vec::new(), plain());
    w.write_exchange(&captured(cut)).unwrap();
    let recs = records(&w.finish().unwrap());
    let resp = &recs[2];
    assert_eq!(field(resp, "WARC-Truncated"), Some("unspecified"));
    assert_eq!(field(resp, "WARC-Payload-Digest"), None);
    assert!(field(resp, "WARC-Block-Digest").is_some());
    assert_eq!(field(resp, "Content-Length"), Some(&*cut.len().to_string()));
    assert!(resp.ends_with("hel\r\n\r\n"));
}

#[test]
fn no_ip_address_no_field() {
    let mut w = writer(Vec::new(), plain());
    w.write_exchange(&Captured {
        ip: None,
        ..captured(RESPONSE)
    })
    .unwrap();
    let recs = records(&w.finish().unwrap());
    assert!(recs.iter().all(|r| field(r, "WARC-IP-Address").is_none()));
    let v6 = Captured {
        ip: Some("2001:db8::1".parse().unwrap()),
        ..captured(RESPONSE)
    };
    let mut w = writer(Vec::new(), plain());
    w.write_exchange(&v6).unwrap();
    let recs = records(&w.finish().unwrap());
    assert_eq!(field(&recs[1], "WARC-IP-Address"), Some("2001:db8::1"));
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let mut w = writer(Vec::new(), plain());
    let written = w.get_ref().len();
    for uri in [
        "",
        "http://x/a b",
        "http://x/\r\nWARC-Type: evil",
        "http://x/\t",
    ] {
        let x = Captured {
            target_uri: uri,
            ..captured(RESPONSE)
        };
        let e = w.write_exchange(&x).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{uri:?}");
    }
    let far = Captured {
        date: at(253_402_300_800), // year 10000
        ..captured(RESPONSE)
    };
    assert_eq!(
        w.write_exchange(&far).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(w.get_ref().len(), written);
    // Refused input does not spoil the writer.
    w.write_exchange(&captured(RESPONSE)).unwrap();

    for fields in [
        &[("robots", "obey\r\nsoftware: other")][..],
        &[("is part of", "x")],
        &[("a:b", "x")],
        &[("", "x")],
    ] {
        let e = WarcWriter::with_options(Vec::new(), "f.warc", fields, plain()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{fields:?}");
    }
    let e = WarcWriter::new(Vec::new(), "f\n.warc", &[]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    // UTF-8 is allowed in field values (WARC/1.1 §4), and so is a tab.
    WarcWriter::new(
        Vec::new(),
        "f.warc",
        &[("description", "Crawl\tdes Außenamts")],
    )
    .unwrap();
}

/// Accepts `room` bytes, then fails every write.
struct FailAfter {
    room: usize,
    written: Vec<u8>,
}

impl Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::Error::other("disk full"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_io_error_is_returned_and_later_records_are_refused() {
    for gzip in [false, true] {
        let options = WarcOptions::default().gzip(gzip);
        // Fails inside the warcinfo record.
        let out = FailAfter {
            room: 20,
            written: Vec::new(),
        };
        let e = WarcWriter::with_options(out, "f", &[], options).unwrap_err();
        assert_eq!(e.to_string(), "disk full");

        // Fails inside the first response record.
        let mut probe = writer(Vec::new(), options);
        let info = probe.get_ref().len();
        probe.write_exchange(&captured(RESPONSE)).unwrap();
        let room = info + (probe.get_ref().len() - info) / 2 + 10;
        let out = FailAfter {
            room,
            written: Vec::new(),
        };
        let mut w = writer(out, options);
        let e = w.write_exchange(&captured(RESPONSE)).unwrap_err();
        assert_eq!(e.to_string(), "disk full", "gzip {gzip}");
        let e = w.write_exchange(&captured(RESPONSE)).unwrap_err();
        assert!(e.to_string().contains("earlier write"), "{e}");
        assert!(w.finish().is_err());
    }
}

#[test]
fn captured_debug_shows_sizes_not_bytes() {
    let x = Captured {
        request: b"GET / HTTP/1.1\r\nAuthorization: Basic c2VjcmV0\r\n\r\n",
        ..captured(RESPONSE)
    };
    let shown = format!("{x:?}");
    assert!(shown.contains("request_len: 49"), "{shown}");
    assert!(!shown.contains("c2VjcmV0"));
}
