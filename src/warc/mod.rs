//! WARC/1.1 writing (ISO 28500): what was fetched, kept the way web archives keep it, for
//! Heritrix, wget, warcio, pywb and Common Crawl's tools to read. Feature `warc`.
//!
//! Owns the file layout: a `warcinfo` record first, then for each fetch a `request` record
//! and a `response` record linked to each other by `WARC-Concurrent-To`; each record's
//! header fields, its block and payload digests (SHA-1, Base32), and its framing (each
//! record its own gzip member, or plain). The captured bytes go in as they were sent and
//! received: the response block keeps the chunked framing and the content coding.
//!
//! It must not fetch, touch a socket, or change the captured bytes. It reads them only
//! through [`crate::proto`], the same parser the fetcher uses, to find the payload; bytes
//! that do not parse are still written. It never buffers more than one record's header:
//! each block is streamed to the output (or its gzip encoder) from the caller's slice.
//!
//! ```text
//!   WarcWriter::new(out, filename, fields)      warcinfo record (software, format, fields)
//!        │
//!        ├── write_exchange(&Captured)          request record, then response record,
//!        │     ...                              WARC-Concurrent-To each other,
//!        │                                      WARC-Warcinfo-ID the warcinfo's
//!        └── finish() -> out                    flushed
//! ```
//!
//! # Payload digests: the tools and the spec disagree on chunked responses
//! WARC/1.1 §6.3.2 defines a response's payload as its entity body "with any
//! transfer-encoding removed": dechunked, content coding kept. warcio (whose `warcio check`
//! verifies digests), wget and wpull instead digest the bytes after the head *as
//! transferred*, chunk framing included (warcio issue #74, open since 2019); Heritrix moved
//! to the spec's reading in 2026. The two agree on every response that is not chunked. For
//! a chunked one, a digest of either kind fails the other kind's check, so the writer lets
//! you choose with [`PayloadDigest`]: [`PayloadDigest::AsTransferred`] (the default: what
//! `warcio check`, wget and pywb's indexers compute) or [`PayloadDigest::Dechunked`] (the
//! spec's).
//!
//! A response with no well-defined payload gets no `WARC-Payload-Digest` (the block digest
//! is always there): one that ended early (it also gets `WARC-Truncated: unspecified`), one
//! the parser refuses, and the cases [`PayloadDigest`] lists.
//!
//! # Examples
//! One fetch, written to memory as a `.warc.gz`:
//! ```
//! use parafetch::warc::{Captured, WarcWriter};
//! use std::io::Read;
//! use std::time::{Duration, UNIX_EPOCH};
//!
//! let mut warc = WarcWriter::new(Vec::new(), "crawl-00000.warc.gz", &[("robots", "obey")])?;
//! warc.write_exchange(&Captured {
//!     target_uri: "http://example.com/",
//!     date: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
//!     ip: Some("192.0.2.7".parse().unwrap()),
//!     request: b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
//!     response: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
//! })?;
//! let file = warc.finish()?;
//!
//! // Three gzip members, one per record; read together they are the plain WARC.
//! let mut text = String::new();
//! flate2::read::MultiGzDecoder::new(&file[..]).read_to_string(&mut text)?;
//! assert_eq!(text.matches("WARC/1.1\r\n").count(), 3);
//! assert!(text.contains("WARC-Type: response\r\n"));
//! assert!(text.contains("WARC-Date: 2023-11-14T22:13:20Z\r\n"));
//! assert!(text.contains("WARC-Payload-Digest: sha1:VL2MMHO4YXUKFWV63YHTWSBM3GXKSQ2N\r\n"));
//! assert!(text.ends_with("hello\r\n\r\n"));
//! # Ok::<(), std::io::Error>(())
//! ```

mod base32;
mod date;
mod ids;
mod payload;

use flate2::Compression;
use flate2::write::GzEncoder;
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::SystemTime;

/// The `software` field of every file's `warcinfo` record.
pub const SOFTWARE: &str = concat!("parafetch/", env!("CARGO_PKG_VERSION"));

/// What a response's `WARC-Payload-Digest` covers, when its body was sent chunked (for any
/// other response both choices give the same digest). See the module docs for why there
/// are two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadDigest {
    /// The bytes after the response head as they came, chunk framing included: what
    /// `warcio check`, wget and wpull compute, so `warcio check` passes. Left out when
    /// interim (1xx) heads precede the final one, since those tools would read the payload
    /// as starting after the first head.
    #[default]
    AsTransferred,
    /// The body with the chunked framing removed, content coding kept: WARC/1.1 §6.3.2's
    /// definition, the same for any chunking of the same body. `warcio check` (1.8) reports
    /// these as failed on chunked responses. Left out when a transfer coding other than
    /// `chunked` was applied too.
    Dechunked,
}

/// How a [`WarcWriter`] writes: compression and payload digests.
///
/// # Examples
/// ```
/// use parafetch::warc::{PayloadDigest, WarcOptions};
/// let options = WarcOptions::default().gzip(false).payload_digest(PayloadDigest::Dechunked);
/// assert!(!options.gzip);
/// assert!(WarcOptions::default().gzip); // `.warc.gz` unless told otherwise
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WarcOptions {
    /// Each record its own gzip member (a `.warc.gz` that readers can seek into by record
    /// offset); `false` writes a plain `.warc`. Default `true`.
    pub gzip: bool,
    /// What the payload digest of a chunked response covers. Default
    /// [`PayloadDigest::AsTransferred`].
    pub payload_digest: PayloadDigest,
}

impl Default for WarcOptions {
    fn default() -> Self {
        WarcOptions {
            gzip: true,
            payload_digest: PayloadDigest::default(),
        }
    }
}

impl WarcOptions {
    /// Sets [`WarcOptions::gzip`].
    #[must_use]
    pub const fn gzip(mut self, yes: bool) -> Self {
        self.gzip = yes;
        self
    }

    /// Sets [`WarcOptions::payload_digest`].
    #[must_use]
    pub const fn payload_digest(mut self, kind: PayloadDigest) -> Self {
        self.payload_digest = kind;
        self
    }
}

/// One fetch as it went over the connection: what [`WarcWriter::write_exchange`] records.
///
/// Its `Debug` shows the sizes of the request and response, never their bytes: they may
/// hold credentials and cookies.
#[derive(Clone, Copy)]
pub struct Captured<'a> {
    /// The URL fetched: the final URL of this hop (each redirect is a fetch of its own).
    /// `WARC-Target-URI`; it must hold no whitespace or control characters.
    pub target_uri: &'a str,
    /// When the request was sent: `WARC-Date` of both records.
    pub date: SystemTime,
    /// The remote address (`WARC-IP-Address`); `None` through a proxy that resolved the
    /// name itself.
    pub ip: Option<IpAddr>,
    /// The request exactly as sent: head and body bytes.
    pub request: &'a [u8],
    /// The response exactly as it came over the connection (after TLS): status line,
    /// header fields, and the body as transferred, chunked framing and content coding kept.
    pub response: &'a [u8],
}

impl fmt::Debug for Captured<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Captured")
            .field("target_uri", &self.target_uri)
            .field("date", &self.date)
            .field("ip", &self.ip)
            .field("request_len", &self.request.len())
            .field("response_len", &self.response.len())
            .finish()
    }
}

/// Writes one WARC file: a `warcinfo` record, then a `request` and a `response` record per
/// [`Captured`] fetch.
///
/// Give it a buffered output (`BufWriter<File>`): each record is a few writes. After an I/O
/// error the file may end in a partial record, so the writer refuses every later record
/// (with an error); start a new file.
pub struct WarcWriter<W: Write> {
    out: W,
    options: WarcOptions,
    ids: ids::RecordIds,
    warcinfo_id: String,
    /// An earlier write failed: the output may end in a partial record.
    failed: bool,
}

impl<W: Write> fmt::Debug for WarcWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarcWriter")
            .field("options", &self.options)
            .field("warcinfo_id", &self.warcinfo_id)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// What a record holds besides its block.
struct Head<'a> {
    kind: &'static str,
    id: &'a str,
    date: &'a str,
    /// Named fields between `WARC-Date` and `Content-Type`, in order.
    fields: &'a [(&'static str, &'a str)],
    content_type: &'static str,
    payload_digest: Option<payload::Sha1Digest>,
}

impl<W: Write> WarcWriter<W> {
    /// Starts a `.warc.gz` file on `out` (each record its own gzip member, payload digests
    /// [`PayloadDigest::AsTransferred`]): writes its `warcinfo` record, with `filename` as
    /// `WARC-Filename` and a block of `software: parafetch/<version>`,
    /// `format: WARC File Format 1.1`, `conformsTo: <the WARC 1.1 spec>`, then `fields` in
    /// order (e.g. `isPartOf`, `description`, `operator`, `robots: obey`).
    ///
    /// # Errors
    /// An I/O error from `out`; `InvalidInput` when `filename` or a field value holds a
    /// control character or a field name is not a token (nothing is written then).
    pub fn new(out: W, filename: &str, fields: &[(&str, &str)]) -> io::Result<WarcWriter<W>> {
        Self::with_options(out, filename, fields, WarcOptions::default())
    }

    /// [`WarcWriter::new`] with `options`, e.g. a plain `.warc`:
    /// `WarcOptions::default().gzip(false)`.
    ///
    /// # Errors
    /// As [`WarcWriter::new`].
    pub fn with_options(
        out: W,
        filename: &str,
        fields: &[(&str, &str)],
        options: WarcOptions,
    ) -> io::Result<WarcWriter<W>> {
        let ids = ids::RecordIds::new();
        Self::start(out, filename, fields, options, ids, SystemTime::now())
    }

    /// Writes the `warcinfo` record dated `now`, taking record IDs from `ids`.
    fn start(
        out: W,
        filename: &str,
        fields: &[(&str, &str)],
        options: WarcOptions,
        mut ids: ids::RecordIds,
        now: SystemTime,
    ) -> io::Result<WarcWriter<W>> {
        let warcinfo_id = ids.next_id();
        let mut writer = WarcWriter {
            out,
            options,
            ids,
            warcinfo_id,
            failed: false,
        };
        writer.write_warcinfo(now, filename, fields)?;
        Ok(writer)
    }

    fn write_warcinfo(
        &mut self,
        now: SystemTime,
        filename: &str,
        fields: &[(&str, &str)],
    ) -> io::Result<()> {
        check_text("WARC-Filename", filename)?;
        let mut block = format!(
            "software: {SOFTWARE}\r\nformat: WARC File Format 1.1\r\n\
             conformsTo: http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/\r\n"
        );
        for (name, value) in fields {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(invalid(format!(
                    "warcinfo field name {name:?} is not a token"
                )));
            }
            check_text(name, value)?;
            // Writing to a String cannot fail.
            let _ = write!(block, "{name}: {value}\r\n");
        }
        let date = warc_date(now)?;
        let id = self.warcinfo_id.clone();
        let head = Head {
            kind: "warcinfo",
            id: &id,
            date: &date,
            fields: &[("WARC-Filename", filename)],
            content_type: "application/warc-fields",
            payload_digest: None,
        };
        self.write_record(&head, block.as_bytes())
    }

    /// Records one fetch: a `request` record, then a `response` record, each with
    /// `WARC-Concurrent-To` the other's ID and `WARC-Warcinfo-ID` this file's `warcinfo`.
    ///
    /// Both blocks are written as captured, whatever they hold. The response's payload
    /// digest is there only when its payload is well defined (see [`PayloadDigest`]); a
    /// response that ended early (no bytes, a head cut short, a body shorter than its
    /// `Content-Length` or without its last chunk) also gets `WARC-Truncated: unspecified`.
    ///
    /// # Errors
    /// An I/O error from the output (later calls then fail too: see [`WarcWriter`]);
    /// `InvalidInput`, with nothing written, when `target_uri` is empty or holds
    /// whitespace or a control character, or `date` falls outside the years 0000 to 9999.
    pub fn write_exchange(&mut self, x: &Captured<'_>) -> io::Result<()> {
        if x.target_uri.is_empty() || x.target_uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(invalid(format!(
                "target uri {:?} is empty or holds whitespace or control characters",
                x.target_uri
            )));
        }
        let date = warc_date(x.date)?;
        let ip = x.ip.map(|ip| ip.to_string());
        let request_id = self.ids.next_id();
        let response_id = self.ids.next_id();
        let warcinfo_id = self.warcinfo_id.clone();

        let mut fields = vec![("WARC-Target-URI", x.target_uri)];
        if let Some(ip) = &ip {
            fields.push(("WARC-IP-Address", ip));
        }
        fields.push(("WARC-Warcinfo-ID", &warcinfo_id));

        let mode = self.options.payload_digest;
        let mut request_fields = fields.clone();
        request_fields.push(("WARC-Concurrent-To", &response_id));
        let request = Head {
            kind: "request",
            id: &request_id,
            date: &date,
            fields: &request_fields,
            content_type: "application/http;msgtype=request",
            payload_digest: payload::request(x.request, mode),
        };

        let found = payload::response(x.request, x.response, mode);
        let mut response_fields = fields;
        response_fields.push(("WARC-Concurrent-To", &request_id));
        if found.truncated {
            response_fields.push(("WARC-Truncated", "unspecified"));
        }
        let response = Head {
            kind: "response",
            id: &response_id,
            date: &date,
            fields: &response_fields,
            content_type: "application/http;msgtype=response",
            payload_digest: found.digest,
        };

        self.write_record(&request, x.request)?;
        self.write_record(&response, x.response)
    }

    /// The `WARC-Record-ID` of this file's `warcinfo` record, e.g.
    /// `<urn:uuid:3f1c9a2e-5b7d-4c0e-9a61-0d2f8e4b7c35>`.
    pub fn warcinfo_id(&self) -> &str {
        &self.warcinfo_id
    }

    /// The output, e.g. to see how large the file has grown (every record written so far is
    /// complete in it, up to what `W` itself buffers).
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Flushes the output and returns it. Every record is complete already (each gzip
    /// member is finished as its record ends).
    ///
    /// # Errors
    /// The flush's I/O error, or an earlier write's (the output may end in a partial record).
    pub fn finish(mut self) -> io::Result<W> {
        if self.failed {
            return Err(earlier_failure());
        }
        self.out.flush()?;
        Ok(self.out)
    }

    /// Writes one record, as a gzip member of its own or plain; a failure marks the writer
    /// failed.
    fn write_record(&mut self, head: &Head<'_>, block: &[u8]) -> io::Result<()> {
        if self.failed {
            return Err(earlier_failure());
        }
        let header = record_header(head, block);
        let result = if self.options.gzip {
            let mut gz = GzEncoder::new(&mut self.out, Compression::default());
            write_parts(&mut gz, &header, block).and_then(|()| gz.finish().map(drop))
        } else {
            write_parts(&mut self.out, &header, block)
        };
        self.failed = result.is_err();
        result
    }
}

/// A record's header (version line, named fields, empty line), its block digest computed
/// over `block`. Field order: type, ID, date, `head.fields`, content type, digests, length.
fn record_header(head: &Head<'_>, block: &[u8]) -> String {
    let mut out = String::with_capacity(512);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "WARC/1.1\r\nWARC-Type: {}\r\nWARC-Record-ID: {}\r\nWARC-Date: {}\r\n",
        head.kind, head.id, head.date
    );
    for (name, value) in head.fields {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let _ = write!(
        out,
        "Content-Type: {}\r\nWARC-Block-Digest: sha1:{}\r\n",
        head.content_type,
        base32::encode(&payload::sha1(block))
    );
    if let Some(digest) = head.payload_digest {
        let _ = write!(
            out,
            "WARC-Payload-Digest: sha1:{}\r\n",
            base32::encode(&digest)
        );
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", block.len());
    out
}

/// The record's three parts: header, block, and the two CRLFs that end every record.
fn write_parts(out: &mut impl Write, header: &str, block: &[u8]) -> io::Result<()> {
    out.write_all(header.as_bytes())?;
    out.write_all(block)?;
    out.write_all(b"\r\n\r\n")
}

fn warc_date(t: SystemTime) -> io::Result<String> {
    date::warc_date(t).ok_or_else(|| invalid("date outside the years 0000 to 9999".into()))
}

/// A WARC field value (TEXT, WARC/1.1 §4): any UTF-8 but control characters, tab allowed.
fn check_text(name: &str, value: &str) -> io::Result<()> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid(format!(
            "{name} value {value:?} holds a control character"
        )));
    }
    Ok(())
}

/// A `token` byte (WARC/1.1 §4, as RFC 2616): US-ASCII but controls and separators.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

fn earlier_failure() -> io::Error {
    io::Error::other("an earlier write to this warc file failed; start a new file")
}

#[cfg(test)]
mod tests;
