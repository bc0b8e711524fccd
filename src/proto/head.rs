//! Response heads: the parsed form and the incremental reader that finds and parses one.
//!
//! Owns the status line and header section of a response. It must not decide body framing
//! (that is [`super::framing`]) nor skip 1xx heads (that is [`super::Exchange`]).

use super::headers::decode_value;
use super::{Headers, Limits, ProtoError};
use std::mem::MaybeUninit;

/// The HTTP version of a response's status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpVersion {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl HttpVersion {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
        }
    }
}

/// A parsed response head: status line and header section.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseHead {
    /// The version of the status line.
    pub version: HttpVersion,
    /// The status code, 100..=999.
    pub status: u16,
    /// The reason phrase, exactly as received (UTF-8, or else ISO-8859-1 byte for byte).
    pub reason: String,
    /// The header fields as received: order and repeats kept, obs-fold replaced by one SP.
    pub headers: Headers,
}

impl ResponseHead {
    /// A head with these parts, e.g. to test code that handles heads.
    ///
    /// # Examples
    /// ```
    /// use parafetch::proto::{HttpVersion, ResponseHead};
    /// let head = ResponseHead::new(HttpVersion::Http11, 404, "Not Found", Default::default());
    /// assert!(!head.is_informational());
    /// ```
    pub fn new(
        version: HttpVersion,
        status: u16,
        reason: impl Into<String>,
        headers: Headers,
    ) -> Self {
        ResponseHead {
            version,
            status,
            reason: reason.into(),
            headers,
        }
    }

    /// Whether this is an interim (1xx) response that a final response will follow.
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// Where the scan for the end of the head stands; kept across inputs so a terminator split
/// between two inputs is found without looking at old bytes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// Only CR / LF seen so far: httparse skips empty lines before the status line, so they
    /// must not count as the end of the head.
    Leading,
    /// Inside a line.
    InLine,
    /// Just after an LF: a line starts here.
    LineStart,
    /// An LF then a CR: one more LF ends the head.
    LineStartCr,
}

/// Reads one response head from inputs of any size.
///
/// Buffers only head bytes, scans each byte once for the empty line that ends the head
/// (CRLF CRLF, or bare LF line endings, which httparse also accepts: RFC 9112 §2.2), refuses
/// to buffer past [`Limits::max_head_bytes`], and parses the complete head once with
/// httparse. After a head is returned the reader is empty again and can read the next one.
///
/// # Examples
/// ```
/// use parafetch::proto::{__private::HeadReader, Limits};
/// let mut reader = HeadReader::new(&Limits::default());
/// assert_eq!(reader.read(b"HTTP/1.1 200 OK\r\n").unwrap(), (17, None));
/// let (consumed, head) = reader.read(b"A: b\r\n\r\nbody").unwrap();
/// assert_eq!(consumed, 8);
/// assert_eq!(head.unwrap().headers.get("a"), Some("b"));
/// ```
#[derive(Clone, Debug)]
pub struct HeadReader {
    buf: Vec<u8>,
    scan: Scan,
    max_head_bytes: usize,
    max_headers: usize,
    /// Bytes looked at by the end-of-head scan over this reader's life; tests check that it
    /// equals the bytes consumed, i.e. nothing was scanned twice.
    scanned: usize,
}

impl HeadReader {
    /// An empty reader enforcing `limits.max_head_bytes` and `limits.max_headers`.
    pub fn new(limits: &Limits) -> Self {
        HeadReader {
            buf: Vec::new(),
            scan: Scan::Leading,
            max_head_bytes: limits.max_head_bytes,
            max_headers: limits.max_headers,
            scanned: 0,
        }
    }

    /// Whether no byte of a head is buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes head bytes from the front of `input`; returns how many it consumed and, once the
    /// head is complete, the parsed head (bytes after it are not consumed).
    ///
    /// # Errors
    /// [`ProtoError::HeadTooLarge`] when the head would exceed `max_head_bytes` (a head of
    /// exactly that many bytes is fine), [`ProtoError::TooManyHeaders`],
    /// [`ProtoError::MalformedHead`], [`ProtoError::UnsupportedVersion`],
    /// [`ProtoError::InvalidStatus`], [`ProtoError::UnexpectedUpgrade`] (status 101).
    pub fn read(&mut self, input: &[u8]) -> Result<(usize, Option<ResponseHead>), ProtoError> {
        let room = self.max_head_bytes - self.buf.len();
        let window = &input[..input.len().min(room)];
        match self.scan_for_end(window) {
            // The whole head came in one piece (the common case): parse it in place.
            Some(end) if self.buf.is_empty() => {
                self.scan = Scan::Leading;
                Ok((end, Some(parse_head(&window[..end], self.max_headers)?)))
            }
            Some(end) => {
                self.buf.extend_from_slice(&window[..end]);
                let head = parse_head(&self.buf, self.max_headers);
                self.buf.clear();
                self.scan = Scan::Leading;
                Ok((end, Some(head?)))
            }
            // The head is not complete and the next byte would exceed the limit.
            None if input.len() > room => Err(ProtoError::HeadTooLarge),
            None => {
                self.buf.extend_from_slice(window);
                Ok((window.len(), None))
            }
        }
    }

    /// Advances the scan over `bytes`; returns the length of the prefix that completes the
    /// head, if the head ends inside `bytes`.
    fn scan_for_end(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            if self.scan == Scan::InLine {
                // Inside a line only its LF matters: jump there, a word at a time.
                match find_lf(&bytes[i..]) {
                    Some(at) => i += at,
                    None => {
                        self.scanned += bytes.len();
                        return None;
                    }
                }
            }
            let b = bytes[i];
            i += 1;
            self.scan = match (self.scan, b) {
                (Scan::Leading, b'\r' | b'\n') => Scan::Leading,
                (Scan::LineStart | Scan::LineStartCr, b'\n') => {
                    self.scanned += i;
                    return Some(i);
                }
                (_, b'\n') => Scan::LineStart,
                (Scan::LineStart, b'\r') => Scan::LineStartCr,
                _ => Scan::InLine,
            };
        }
        self.scanned += bytes.len();
        None
    }

    #[cfg(test)]
    pub(crate) fn scanned(&self) -> usize {
        self.scanned
    }
}

/// The position of the first LF, eight bytes at a time (SWAR: a byte of `w ^ LF` is zero
/// exactly where `w` has an LF). Heads are mostly long lines; this keeps the end-of-head scan
/// from looking at them byte by byte.
fn find_lf(bytes: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ (LO * u64::from(b'\n'));
        if x.wrapping_sub(LO) & !x & HI != 0 {
            return chunk.iter().position(|&b| b == b'\n').map(|p| base + p);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| base + p)
}

/// Header slots on the stack for the usual limit (left uninitialised: httparse writes
/// what it uses); a larger limit uses the heap.
pub const STACK_HEADERS: usize = Limits::DEFAULT_MAX_HEADERS;

/// Parses one complete head (leading empty lines, status line, fields, empty line).
fn parse_head(buf: &[u8], max_headers: usize) -> Result<ResponseHead, ProtoError> {
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let fields: &mut [MaybeUninit<httparse::Header<'_>>] = if max_headers <= STACK_HEADERS {
        &mut stack[..max_headers]
    } else {
        heap.resize_with(max_headers, MaybeUninit::uninit);
        &mut heap
    };
    let mut res = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        // RFC 9112 §5.2: a user agent that receives obs-fold in a response MUST replace each
        // one with SP; httparse hands the folded value over and `unfold` does the rest.
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response_with_uninit_headers(&mut res, buf, fields)
        .map_err(|e| match e {
            httparse::Error::TooManyHeaders => ProtoError::TooManyHeaders,
            // httparse says "version" for any first line that is not `HTTP/1.0` or `HTTP/1.1`;
            // only an HTTP-looking one is an unsupported version rather than garbage.
            httparse::Error::Version if status_line(buf).starts_with(b"HTTP/") => {
                ProtoError::UnsupportedVersion
            }
            _ => ProtoError::MalformedHead,
        })?;
    // The scan and httparse agree on where a head ends; anything else means a malformed head.
    if parsed != httparse::Status::Complete(buf.len()) {
        return Err(ProtoError::MalformedHead);
    }
    let version = match res.version {
        Some(0) => HttpVersion::Http10,
        Some(1) => HttpVersion::Http11,
        _ => return Err(ProtoError::UnsupportedVersion),
    };
    let status = res.code.ok_or(ProtoError::MalformedHead)?;
    // RFC 9110 §15: a status code is three digits, the first 1..=5, but clients must accept
    // unknown codes; httparse reads three digits, so only 000..=099 are left to refuse.
    if !(100..=999).contains(&status) {
        return Err(ProtoError::InvalidStatus);
    }
    if status == 101 {
        return Err(ProtoError::UnexpectedUpgrade);
    }
    let mut headers = Headers::with_capacity(res.headers.len(), buf.len());
    for field in res.headers.iter() {
        headers.append_received(field.name, &unfold(field.value));
    }
    Ok(ResponseHead {
        version,
        status,
        reason: decode_value(reason(status_line(buf))),
        headers,
    })
}

/// The status line of a complete head, without leading empty lines and line ending.
fn status_line(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The reason phrase of a status line httparse accepted: everything after
/// `HTTP/1.x SP 3DIGIT SP`. Taken from the bytes because httparse replaces a reason holding
/// obs-text by "".
fn reason(status_line: &[u8]) -> &[u8] {
    status_line.get(13..).unwrap_or(b"")
}

/// Replaces each obs-fold (`OWS (CRLF / LF) RWS`, RFC 9112 §5.2) in a value by one SP.
fn unfold(value: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !value.iter().any(|&b| b == b'\r' || b == b'\n') {
        return value.into();
    }
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if matches!(value[i], b'\r' | b'\n') {
            while matches!(out.last(), Some(b' ' | b'\t')) {
                out.pop();
            }
            while i < value.len() && matches!(value[i], b'\r' | b'\n' | b' ' | b'\t') {
                i += 1;
            }
            // A fold right after the colon is leading whitespace, which is not part of the
            // value (RFC 9112 §5.1).
            if !out.is_empty() {
                out.push(b' ');
            }
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::super::testing::split_everywhere;
    use super::*;

    fn limits(max_head_bytes: usize, max_headers: usize) -> Limits {
        Limits {
            max_head_bytes,
            max_headers,
            ..Limits::default()
        }
    }

    /// Feeds `pieces` in order; returns the head or error and the bytes consumed in total.
    fn read_pieces(
        reader: &mut HeadReader,
        pieces: &[&[u8]],
    ) -> (Result<Option<ResponseHead>, ProtoError>, usize) {
        let mut total = 0;
        for piece in pieces {
            match reader.read(piece) {
                Ok((n, Some(head))) => return (Ok(Some(head)), total + n),
                Ok((n, None)) => {
                    assert_eq!(n, piece.len(), "a partial head consumes everything");
                    total += n;
                }
                // How much was taken before an error differs between splits and is moot.
                Err(e) => return (Err(e), 0),
            }
        }
        (Ok(None), total)
    }

    /// Reads `wire` whole, byte by byte and split at every point; all must agree.
    fn read_all_ways(
        wire: &[u8],
        limits: &Limits,
    ) -> (Result<Option<ResponseHead>, ProtoError>, usize) {
        split_everywhere(wire, |pieces| {
            read_pieces(&mut HeadReader::new(limits), pieces)
        })
    }

    fn read_ok(wire: &[u8]) -> ResponseHead {
        match read_all_ways(wire, &Limits::default()) {
            (Ok(Some(head)), n) => {
                assert_eq!(n, wire.len());
                head
            }
            other => panic!("{other:?}"),
        }
    }

    fn read_err(wire: &[u8]) -> ProtoError {
        read_all_ways(wire, &Limits::default()).0.unwrap_err()
    }

    #[test]
    fn parses_status_line_and_fields_in_order() {
        let head = read_ok(b"HTTP/1.1 404 Not Found\r\nA: 1\r\nb: 2\r\nA: 3\r\n\r\n");
        assert_eq!(head.version, HttpVersion::Http11);
        assert_eq!(head.status, 404);
        assert_eq!(head.reason, "Not Found");
        let fields: Vec<_> = head.headers.iter().collect();
        assert_eq!(fields, [("A", "1"), ("b", "2"), ("A", "3")]);
    }

    #[test]
    fn http10_and_missing_or_empty_reason() {
        let head = read_ok(b"HTTP/1.0 200\r\n\r\n");
        assert_eq!(head.version, HttpVersion::Http10);
        assert_eq!(head.reason, "");
        assert_eq!(read_ok(b"HTTP/1.1 200 \r\n\r\n").reason, "");
        assert_eq!(
            read_ok(b"HTTP/1.1 200 OK  fine \r\n\r\n").reason,
            "OK  fine "
        );
    }

    #[test]
    fn bare_lf_line_endings_accepted() {
        let head = read_ok(b"HTTP/1.1 200 OK\nA: 1\n\n");
        assert_eq!(head.headers.get("a"), Some("1"));
        let head = read_ok(b"HTTP/1.1 200 OK\r\nA: 1\n\r\n");
        assert_eq!(head.headers.get("a"), Some("1"));
    }

    #[test]
    fn leading_empty_lines_skipped_not_taken_as_end() {
        let head = read_ok(b"\r\n\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(head.status, 204);
        assert_eq!(head.reason, "No Content");
    }

    #[test]
    fn bytes_after_head_not_consumed() {
        let mut reader = HeadReader::new(&Limits::default());
        let (n, head) = reader.read(b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1").unwrap();
        assert_eq!(n, 19);
        assert_eq!(head.unwrap().status, 200);
        assert!(reader.is_empty(), "ready for the next head");
    }

    #[test]
    fn head_end_split_across_inputs_found_without_rescanning() {
        let wire = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                let mut reader = HeadReader::new(&Limits::default());
                let (res, n) = read_pieces(&mut reader, &[&wire[..i], &wire[i..j], &wire[j..]]);
                assert_eq!(res.unwrap().unwrap().status, 200);
                assert_eq!(n, wire.len());
                // Each byte was looked at exactly once, however the input was split.
                assert_eq!(reader.scanned(), wire.len(), "split at {i}, {j}");
            }
        }
        // Byte by byte, a long head is still scanned once (not quadratically).
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..200 {
            wire.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        let mut reader = HeadReader::new(&limits(64 * 1024, 300));
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert!(read_pieces(&mut reader, &bytes).0.unwrap().is_some());
        assert_eq!(reader.scanned(), wire.len());
    }

    #[test]
    fn head_exactly_at_limit_ok_one_byte_over_fails() {
        let wire = b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n";
        let at = limits(wire.len(), 100);
        assert!(read_all_ways(wire, &at).0.unwrap().is_some());
        let under = limits(wire.len() - 1, 100);
        assert_eq!(read_all_ways(wire, &under).0, Err(ProtoError::HeadTooLarge));
        // The limit is enforced before buffering: a flood fails at the first byte over.
        let mut reader = HeadReader::new(&limits(16, 100));
        assert_eq!(reader.read(&[b'x'; 16]).unwrap(), (16, None));
        assert_eq!(reader.read(b"x"), Err(ProtoError::HeadTooLarge));
    }

    #[test]
    fn too_many_headers() {
        let wire = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert!(read_all_ways(wire, &limits(1024, 3)).0.unwrap().is_some());
        assert_eq!(
            read_all_ways(wire, &limits(1024, 2)).0,
            Err(ProtoError::TooManyHeaders)
        );
    }

    #[test]
    fn obs_fold_unfolded() {
        let head = read_ok(b"HTTP/1.1 200 OK\r\nX: a \r\n  \tb\r\n c\r\nY: d\n e\r\n\r\n");
        assert_eq!(head.headers.get("x"), Some("a b c"));
        assert_eq!(head.headers.get("y"), Some("d e"));
        assert_eq!(head.headers.len(), 2);
        // A value that starts on a continuation line has no leading space.
        let head = read_ok(b"HTTP/1.1 200 OK\r\nX:\r\n  b\r\n\r\n");
        assert_eq!(head.headers.get("x"), Some("b"));
    }

    #[test]
    fn non_utf8_reason_and_values_decode_as_latin1() {
        let head = read_ok(b"HTTP/1.1 200 Tr\xe8s bien\r\nX: caf\xe9\r\nY: caf\xc3\xa9\r\n\r\n");
        assert_eq!(head.reason, "Très bien");
        assert_eq!(head.headers.get("x"), Some("café"));
        assert_eq!(head.headers.get("y"), Some("café"));
    }

    #[test]
    fn status_checks() {
        assert_eq!(
            read_err(b"HTTP/1.1 099 Low\r\n\r\n"),
            ProtoError::InvalidStatus
        );
        assert_eq!(read_ok(b"HTTP/1.1 999 High\r\n\r\n").status, 999);
        assert_eq!(
            read_err(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            ProtoError::UnexpectedUpgrade
        );
        assert!(read_ok(b"HTTP/1.1 103 Early Hints\r\n\r\n").is_informational());
        assert!(!read_ok(b"HTTP/1.1 200 OK\r\n\r\n").is_informational());
        assert_eq!(
            read_err(b"HTTP/1.1 2000 OK\r\n\r\n"),
            ProtoError::MalformedHead
        );
        assert_eq!(
            read_err(b"HTTP/1.1 20 OK\r\n\r\n"),
            ProtoError::MalformedHead
        );
        assert_eq!(
            read_err(b"HTTP/1.1 abc OK\r\n\r\n"),
            ProtoError::MalformedHead
        );
    }

    #[test]
    fn versions() {
        assert_eq!(
            read_err(b"HTTP/2.0 200 OK\r\n\r\n"),
            ProtoError::UnsupportedVersion
        );
        assert_eq!(
            read_err(b"HTTP/1.2 200 OK\r\n\r\n"),
            ProtoError::UnsupportedVersion
        );
        assert_eq!(
            read_err(b"HTTP/0.9 200 OK\r\n\r\n"),
            ProtoError::UnsupportedVersion
        );
        assert_eq!(
            read_err(b"SSH-2.0-OpenSSH\r\n\r\n"),
            ProtoError::MalformedHead
        );
        assert_eq!(
            read_err(b"http/1.1 200 OK\r\n\r\n"),
            ProtoError::MalformedHead
        );
    }

    #[test]
    fn malformed_fields() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n: empty\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nA : 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nA: 1\r\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nA: a\0b\r\n\r\n",
            b"HTTP/1.1 200 OK\r\r\n\r\n",
        ] {
            assert_eq!(
                read_err(wire),
                ProtoError::MalformedHead,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn unfold_helper() {
        assert_eq!(&*unfold(b"plain"), b"plain");
        assert_eq!(&*unfold(b"a\t\r\n\t b"), b"a b");
        assert_eq!(&*unfold(b"a\n b\r\n c"), b"a b c");
        assert_eq!(&*unfold(b"\r\n b"), b"b");
    }
}
