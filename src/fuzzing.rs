//! The bodies of the fuzz targets in `fuzz/`, kept in the library so a stable test
//! (`tests/fuzz_corpus.rs`) replays the committed corpus and every crash input ever found
//! without nightly. Hidden: not part of the public API.
//!
//! Each function takes arbitrary bytes and must never panic; where a property holds (the
//! same bytes split differently give the same result, a limit is kept, an event comes at
//! most once) it asserts it.

#[cfg(feature = "crawl")]
use crate::crawl::{
    LinkExtractor, Links, SeenSet, gunzip_bounded, is_html, normalize, parse_sitemap,
};
use crate::proto::__private::{ChunkedDecoder, HeadReader, STACK_HEADERS};
use crate::proto::{
    ConnectReader, ConnectReply, ContentDecoder, Event, Exchange, Fed, FeedError, Limits,
    ProtoError, RequestInfo, ResponseHead, SocksDone, SocksError, SocksHandshake, SocksTarget,
};
use crate::robots::{MAX_ROBOTS_BYTES, MAX_SITEMAPS, Robots};
use std::collections::HashSet;
use std::convert::Infallible;

/// Small enough that fuzzed inputs hit every limit, large enough that a head may have more
/// fields than the head parser's stack slots, so its heap path is fuzzed too.
fn fuzz_limits() -> Limits {
    Limits::default()
        .max_head_bytes(4096)
        .max_headers(STACK_HEADERS + 28)
        .max_chunk_line_bytes(256)
        .max_trailer_bytes(1024)
}

/// What a head reader made of some pieces: the head and the bytes it took, or the error.
type HeadResult = Result<(usize, Option<ResponseHead>), ProtoError>;

/// Feeds `pieces` to a fresh head reader until a head or an error comes.
fn read_head<'a>(limits: &Limits, pieces: impl IntoIterator<Item = &'a [u8]>) -> HeadResult {
    let mut reader = HeadReader::new(limits);
    let mut total = 0;
    for piece in pieces {
        let (used, head) = reader.read(piece)?;
        assert!(used <= piece.len(), "consumed more than given");
        total += used;
        if head.is_some() {
            return Ok((total, head));
        }
        assert_eq!(used, piece.len(), "a partial head consumes everything");
    }
    Ok((total, None))
}

/// Where a head that starts at the front of `bytes` ends (the length up to and including
/// its empty line), found the plain way: leading empty lines skipped, then the first LF
/// followed by LF or CRLF.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut i = bytes.iter().position(|&b| b != b'\r' && b != b'\n')?;
    loop {
        let lf = i + bytes[i..].iter().position(|&b| b == b'\n')?;
        match bytes.get(lf + 1..) {
            Some([b'\n', ..]) => return Some(lf + 2),
            Some([b'\r', b'\n', ..]) => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
}

/// The response head reader, fed the input whole and in pieces whose size the first byte
/// chooses: both agree, and a head is accepted exactly when it fits `max_head_bytes`.
pub fn response_head(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 16) + 1;
    let limits = fuzz_limits();
    let whole = read_head(&limits, [rest]);
    let split = read_head(&limits, rest.chunks(step));
    assert_eq!(whole, split, "whole vs pieces of {step}");
    let max = limits.max_head_bytes;
    match (head_end(rest), &whole) {
        (Some(end), Ok((used, head))) => {
            assert!(end <= max, "a head of {end} bytes accepted");
            let head = head.as_ref().expect("a complete head is parsed");
            assert_eq!(*used, end, "the head ends where its empty line does");
            assert!(head.headers.len() <= limits.max_headers);
        }
        (Some(end), Err(ProtoError::HeadTooLarge)) => assert!(end > max),
        // Any other error comes from parsing a complete head that fits.
        (Some(end), Err(_)) => assert!(end <= max),
        (None, Ok((used, None))) => assert!(*used == rest.len() && rest.len() <= max),
        (None, Err(e)) => {
            assert_eq!(*e, ProtoError::HeadTooLarge);
            assert!(rest.len() > max);
        }
        (None, Ok((_, Some(_)))) => panic!("a head without an end"),
    }
}

/// The chunked decoder on arbitrary bytes, in pieces of a size the first byte chooses: data
/// slices must lie within the input, and consumption must progress.
pub fn chunked(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 32) + 1;
    let mut d = ChunkedDecoder::new(&fuzz_limits());
    let mut off = 0;
    let mut stalls = 0;
    while off < rest.len() && !d.is_done() {
        let end = (off + step).min(rest.len());
        let piece = &rest[off..end];
        match d.decode(piece) {
            Ok((used, out)) => {
                assert!(used <= piece.len());
                if let Some(b) = out {
                    assert!(b.len() <= used);
                    assert!(piece.as_ptr_range().contains(&b.as_ptr()) || b.is_empty());
                }
                off += used;
                stalls = if used == 0 { stalls + 1 } else { 0 };
                if stalls > 1 {
                    return; // needs more input than this piece: not an error
                }
            }
            Err(_) => return,
        }
    }
}

/// What an exchange made of a response: head, body, whether it ended, the error.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The final head.
    pub head: Option<ResponseHead>,
    /// The concatenated body.
    pub body: Vec<u8>,
    /// Whether `End` came.
    pub ended: bool,
    /// Input bytes after the response's end (0 after an error).
    pub unread: usize,
    /// The error, if any.
    pub error: Option<ProtoError>,
}

/// Feeds `pieces` to a fresh exchange with [`Exchange::feed`], then EOF, and says what came
/// of it.
pub fn run_exchange<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, head_request: bool) -> Outcome {
    let info = RequestInfo::default().head_request(head_request);
    let mut ex = Exchange::new(b"GET / HTTP/1.1\r\n\r\n".to_vec(), info, fuzz_limits());
    let mut out = Outcome {
        head: None,
        body: Vec::new(),
        ended: false,
        unread: 0,
        error: None,
    };
    for piece in pieces {
        if out.ended {
            out.unread += piece.len();
            continue;
        }
        let fed = ex.feed(piece, |event, _| {
            match event {
                Event::Head(h) => out.head = Some(h),
                Event::Body(b) => out.body.extend_from_slice(b),
                Event::End => out.ended = true,
            }
            Ok::<_, Infallible>(())
        });
        match fed {
            Ok(Fed::End { unread }) => out.unread += unread,
            Ok(_) => {}
            Err(FeedError::Proto(e)) => {
                out.error = Some(e);
                return out;
            }
            Err(FeedError::Handler(never)) => match never {},
        }
    }
    match ex.handle_eof() {
        Ok(Some(Event::End)) => out.ended = true,
        Ok(_) => {}
        Err(e) => out.error = Some(e),
    }
    out
}

/// Differential: the same response bytes fed whole, byte by byte, and split where the
/// first two bytes say, give the same outcome.
pub fn split_differential(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let (a, b) = (usize::from(data[0]), usize::from(data[1]));
    let bytes = &data[2..];
    let whole = run_exchange([bytes], false);
    let singles = run_exchange(bytes.chunks(1), false);
    assert_eq!(whole, singles, "whole vs byte by byte");
    let (i, j) = {
        let n = bytes.len();
        let (x, y) = ((a * n) / 255, (b * n) / 255);
        (x.min(y), x.max(y))
    };
    let three = run_exchange([&bytes[..i], &bytes[i..j], &bytes[j..]], false);
    assert_eq!(whole, three, "whole vs split at {i} and {j}");
}

/// The exchange driven by arbitrary operations: each byte picks input (of the next few
/// bytes), EOF, or transmit progress. The machine must never panic, never report more than
/// it was given (every Body slice lies inside the input it came from), deliver Head and End
/// at most once each and in that order, and keep its errors.
pub fn exchange_ops(data: &[u8]) {
    let info = RequestInfo::default()
        .head_request(data.first().is_some_and(|b| b & 1 == 1))
        .connection_close(data.get(1).is_some_and(|b| b & 1 == 1));
    let request = b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let mut ex = Exchange::new(request, info, small_or_fuzz_limits(data));
    let (mut heads, mut ends) = (0, 0);
    let mut failed = None;
    let mut i = 2;
    while i < data.len() && failed.is_none() {
        let op = data[i];
        i += 1;
        match op % 4 {
            0 | 1 => {
                let n = usize::from(op >> 2).min(data.len() - i);
                let input = &data[i..i + n];
                i += n;
                let fed = ex.feed(input, |event, framing| {
                    match event {
                        Event::Head(_) => heads += 1,
                        Event::Body(b) => {
                            assert!(heads == 1 && ends == 0, "Body between Head and End");
                            assert!(!b.is_empty(), "an empty Body");
                            let (inside, end) = (input.as_ptr_range(), b.as_ptr_range());
                            assert!(inside.start <= end.start && end.end <= inside.end);
                        }
                        Event::End => ends += 1,
                    }
                    assert!(heads <= 1 && ends <= heads, "Head, End once each, in order");
                    assert!(framing.is_some(), "framing known from the head on");
                    Ok::<_, Infallible>(())
                });
                match fed {
                    Ok(Fed::End { unread }) => {
                        assert!(unread <= input.len());
                        assert!(ex.is_done() && ends == 1);
                    }
                    Ok(_) => assert!(!ex.is_done(), "NeedMore after End"),
                    Err(FeedError::Proto(e)) => failed = Some(e),
                    Err(FeedError::Handler(never)) => match never {},
                }
            }
            2 => {
                let left = ex.poll_transmit().len();
                let n = usize::from(op >> 2).min(left);
                ex.handle_transmitted(n);
            }
            _ => match ex.handle_eof() {
                Ok(Some(Event::End)) => ends += 1,
                Ok(Some(other)) => panic!("handle_eof gave {other:?}"),
                Ok(None) => assert!(ex.is_done()),
                Err(e) => failed = Some(e),
            },
        }
        assert!(heads <= 1 && ends <= heads, "Head, End once each, in order");
    }
    if let Some(e) = failed {
        // Errors are final, and a failed exchange is never reusable.
        assert_eq!(ex.handle_input(b"x").err(), Some(e));
        assert_eq!(ex.handle_eof(), Err(e));
        assert!(ex.close_reason().is_some());
    } else if !ex.is_done() {
        assert!(
            ex.close_reason().is_some(),
            "an unfinished exchange is never reusable"
        );
    }
}

/// The fuzz limits, or tiny ones when the first byte's second bit says so, so that every
/// limit is reached with short inputs too.
fn small_or_fuzz_limits(data: &[u8]) -> Limits {
    if data.first().is_some_and(|b| b & 2 == 2) {
        Limits::default()
            .max_head_bytes(64)
            .max_headers(2)
            .max_chunk_line_bytes(8)
            .max_trailer_bytes(8)
    } else {
        fuzz_limits()
    }
}

/// How one decoding ended: the decoded bytes, and whether it finished, failed, or was cut
/// at [`DECODE_CAP`] bytes.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    Finished(Vec<u8>),
    Failed(Vec<u8>),
    Capped(Vec<u8>),
}

impl Decoded {
    fn bytes(&self) -> &[u8] {
        match self {
            Decoded::Finished(b) | Decoded::Failed(b) | Decoded::Capped(b) => b,
        }
    }
}

/// Decoded bytes after which a fuzz run stops: a few input bytes of br or zstd can stand
/// for gigabytes, and the fuzzer must stay fast.
const DECODE_CAP: usize = 1 << 20;

/// Decodes `stream` given in pieces of `step` bytes, then finishes, checking the
/// decoder's contract at every call: at most [`ContentDecoder::OUT_STEP`] bytes out,
/// never more input taken than given, and empty output only once all input is taken.
fn decode_in_steps(coding: &str, stream: &[u8], step: usize) -> Decoded {
    let mut d = ContentDecoder::for_encoding(coding).expect("codings we decode");
    let mut out = Vec::new();
    for piece in stream.chunks(step) {
        let mut rest = piece;
        loop {
            let Ok((used, got)) = d.decode(rest) else {
                return Decoded::Failed(out);
            };
            assert!(used <= rest.len(), "took {used} of {} bytes", rest.len());
            assert!(
                got.len() <= ContentDecoder::OUT_STEP,
                "{} bytes out",
                got.len()
            );
            rest = &rest[used..];
            if got.is_empty() {
                assert!(rest.is_empty(), "no output with {} bytes left", rest.len());
                break;
            }
            out.extend_from_slice(got);
            if out.len() >= DECODE_CAP {
                return Decoded::Capped(out);
            }
        }
    }
    loop {
        let Ok(got) = d.finish() else {
            return Decoded::Failed(out);
        };
        assert!(
            got.len() <= ContentDecoder::OUT_STEP,
            "{} bytes out",
            got.len()
        );
        if got.is_empty() {
            return Decoded::Finished(out);
        }
        out.extend_from_slice(got);
        if out.len() >= DECODE_CAP {
            return Decoded::Capped(out);
        }
    }
}

/// The codings this build decodes.
fn known_codings() -> Vec<&'static str> {
    let mut codings = vec!["gzip", "x-gzip", "deflate"];
    if cfg!(feature = "brotli") {
        codings.push("br");
    }
    if cfg!(feature = "zstd") {
        codings.push("zstd");
    }
    codings
}

/// The content decoder on arbitrary bytes. The first byte picks the `Content-Encoding`:
/// bits 0-2 a coding, bits 3-5 a second one applied after it when bit 6 is set, bit 7 an
/// `identity` between them (skipped); the second byte the input step (1 to 1021 bytes).
/// Never panics, keeps the decoder's contract (see `decode_in_steps`), and decodes the
/// same in those steps as in one piece: equal results when neither run was capped, and
/// in any case one run's bytes a prefix of the other's.
pub fn content_decoder(data: &[u8]) {
    let [pick, step, stream @ ..] = data else {
        return;
    };
    let codings = known_codings();
    let first = codings[usize::from(pick & 7) % codings.len()];
    let second = codings[usize::from((pick >> 3) & 7) % codings.len()];
    let coding = match (pick & 0x40 != 0, pick & 0x80 != 0) {
        (false, false) => first.to_owned(),
        (false, true) => format!("identity, {first}"),
        (true, false) => format!("{first}, {second}"),
        (true, true) => format!("{first}, identity, {second}"),
    };
    let step = 1 + usize::from(*step) * 4;
    let chosen = decode_in_steps(&coding, stream, step);
    let whole = decode_in_steps(&coding, stream, stream.len().max(1));
    let (a, b) = (chosen.bytes(), whole.bytes());
    let common = a.len().min(b.len());
    assert!(
        a[..common] == b[..common],
        "{coding}: steps of {step} decode other bytes"
    );
    let capped = matches!(chosen, Decoded::Capped(_)) || matches!(whole, Decoded::Capped(_));
    if !capped {
        match (&chosen, &whole) {
            (Decoded::Failed(_), Decoded::Failed(_)) => {}
            _ => assert_eq!(chosen, whole, "{coding} in steps of {step} vs whole"),
        }
    }
}

/// Feeds `pieces` to a fresh CONNECT reply reader, then EOF if no reply came: the reply and
/// the bytes it took, or the error.
fn read_connect<'a>(
    limits: &Limits,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(usize, ConnectReply), ProtoError> {
    let mut reader = ConnectReader::new(limits);
    let mut total = 0;
    for piece in pieces {
        let (used, reply) = reader.read(piece)?;
        assert!(used <= piece.len(), "consumed more than given");
        total += used;
        if let Some(reply) = reply {
            // Never panics, whatever the head says.
            let _ = (reply.is_success(), reply.has_body());
            assert_eq!(
                reader.read(piece).ok(),
                Some((0, None)),
                "done reads nothing"
            );
            return Ok((total, reply));
        }
        assert_eq!(used, piece.len(), "an unfinished reply consumes everything");
    }
    Err(reader.read_eof())
}

/// The CONNECT reply reader on arbitrary bytes, fed whole and in pieces whose size the
/// first byte chooses (its low bit picks tiny limits): both agree, and a reply never
/// consumes more than it was given.
pub fn connect_reply(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(first >> 1) % 16 + 1;
    let limits = if first & 1 == 1 {
        Limits::default().max_head_bytes(64).max_headers(2)
    } else {
        fuzz_limits()
    };
    let whole = read_connect(&limits, [rest]);
    let split = read_connect(&limits, rest.chunks(step));
    assert_eq!(whole, split, "whole vs pieces of {step}");
    if let Ok((used, _)) = whole {
        assert!(used <= rest.len());
    }
}

/// What a SOCKS handshake made of a proxy's bytes: the bytes it took and what came.
type SocksResult = Result<(usize, SocksDone), SocksError>;

/// Feeds `pieces` to `socks` (writing whatever it queues before each read), then EOF if
/// it did not finish.
fn run_socks<'a>(
    mut socks: SocksHandshake,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> SocksResult {
    let mut total = 0;
    for piece in pieces {
        let n = socks.poll_transmit().len();
        socks.handle_transmitted(n);
        let (used, done) = socks.handle_input(piece)?;
        assert!(used <= piece.len(), "consumed more than given");
        total += used;
        if let Some(done) = done {
            assert!(socks.is_done());
            assert_eq!(
                socks.handle_input(piece),
                Ok((0, None)),
                "done reads nothing"
            );
            return Ok((total, done));
        }
        assert_eq!(
            used,
            piece.len(),
            "an unfinished handshake consumes everything"
        );
    }
    let e = socks.handle_eof();
    assert_eq!(socks.handle_input(b"\x05\x00"), Err(e), "errors are final");
    Err(e)
}

/// The SOCKS handshakes on arbitrary proxy bytes: the first byte picks SOCKS5 without or
/// with credentials or SOCKS4a, the target kind and the size of the pieces. Never panics,
/// never consumes more than given, and whole and split agree.
pub fn socks_reply(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let target = match (first >> 2) % 3 {
        0 => SocksTarget::Name("example.com".into(), 443),
        1 => SocksTarget::Ip(([192, 0, 2, 1], 80).into()),
        _ => SocksTarget::Ip((std::net::Ipv6Addr::LOCALHOST, 8080).into()),
    };
    let make = || match first % 4 {
        0 => SocksHandshake::v5(target.clone(), None),
        1 => SocksHandshake::v5(target.clone(), Some(("user", "secret"))),
        _ => SocksHandshake::v4a(target.clone(), "bob"),
    };
    let Ok(socks) = make() else {
        return; // IPv6 over SOCKS4a: refused up front, nothing to feed
    };
    let step = usize::from(first >> 4) + 1;
    let whole = run_socks(socks, [rest]);
    let split = run_socks(make().expect("as before"), rest.chunks(step));
    assert_eq!(whole, split, "whole vs pieces of {step}");
    if let Ok((used, _)) = whole {
        assert!(used <= rest.len());
    }
}

/// The DNS reply parser on arbitrary bytes.
pub fn dns_message(data: &[u8]) {
    crate::dns::fuzz_parse(data);
}

/// The robots.txt parser on arbitrary bytes, for a product token the first byte picks, and
/// its matcher on paths cut from the same bytes. Never panics; `/robots.txt` is always
/// allowed; the fast matcher agrees with Google's position sets; CRLF reads as LF; the
/// token is case-insensitive; sitemaps are capped and distinct; allow-all and disallow-all
/// mean what they say.
pub fn robots(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let agent = ["FooBot", "parafetch", "foo", "*", ""][usize::from(first % 5)];
    let robots = Robots::parse(body, agent);
    if agent == "FooBot" {
        assert_eq!(robots, Robots::parse(body, "fOObOT"), "case-blind token");
    }
    let crlf: Vec<u8> = body
        .iter()
        .flat_map(|b| match b {
            b'\n' => &b"\r\n"[..],
            _ => std::slice::from_ref(b),
        })
        .copied()
        .collect();
    if crlf.len() <= MAX_ROBOTS_BYTES {
        assert_eq!(robots, Robots::parse(&crlf, agent), "CRLF vs LF");
    }
    assert!(robots.sitemaps().len() <= MAX_SITEMAPS);
    let distinct: HashSet<&String> = robots.sitemaps().iter().collect();
    assert_eq!(distinct.len(), robots.sitemaps().len(), "sitemaps repeat");

    let text = String::from_utf8_lossy(body);
    let words = text.split(|c: char| c.is_whitespace() || c == ':' || c == '#');
    // Short paths: the reference matcher is O(path × pattern) per rule.
    let paths = words.filter(|w| w.len() <= 256).take(16);
    for path in paths.chain(["", "/", "/robots.txt"]) {
        let allowed = robots.allowed(path);
        assert_eq!(allowed, robots.allowed_reference(path), "{path:?}");
        assert!(Robots::allow_all().allowed(path));
        let own = matches!(path, "/robots.txt" | "robots.txt");
        assert_eq!(Robots::disallow_all().allowed(path), own, "{path:?}");
        assert!(allowed || !own, "{path:?} is robots.txt");
    }
}

/// Feeds `pieces` to a fresh extractor for a fixed page, reading at most `max` bytes.
#[cfg(feature = "crawl")]
fn extract_links<'a>(max: usize, pieces: impl IntoIterator<Item = &'a [u8]>) -> Links {
    let page = url::Url::parse("http://example.com/dir/page.html").expect("a valid URL");
    let mut ex = LinkExtractor::new(&page, max);
    for piece in pieces {
        ex.feed(piece);
    }
    ex.finish()
}

/// The crawl readers on arbitrary bytes. Links: the body fed whole and in pieces whose size
/// the first byte picks (its bit 4 caps the input at half the body) gives the same links,
/// each an http(s) URL, normalised, once; the cap is reported exactly when passed. Sitemaps
/// keep at most `max_urls`, normalised. The bounded gunzip and the seen-set file reader
/// never panic and keep their bounds.
#[cfg(feature = "crawl")]
pub fn links(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let step = usize::from(first & 0x0f) + 1;
    let max = if first & 0x10 != 0 {
        body.len() / 2
    } else {
        usize::MAX
    };
    let whole = extract_links(max, [body]);
    let split = extract_links(max, body.chunks(step));
    assert_eq!(whole, split, "whole vs pieces of {step}");
    assert_eq!(
        whole.cut,
        body.len() > max,
        "cut at {max} of {}",
        body.len()
    );
    let mut distinct = std::collections::HashSet::new();
    for url in &whole.urls {
        assert!(matches!(url.scheme(), "http" | "https"), "{url}");
        assert_eq!(normalize(url).as_ref(), Some(url), "not normalised");
        assert!(distinct.insert(url.as_str()), "{url} twice");
    }

    let map = parse_sitemap(body, 16);
    assert!(map.pages.len() + map.sitemaps.len() <= 16);
    assert!(!map.truncated || map.pages.len() + map.sitemaps.len() == 16);
    for url in map.pages.iter().chain(&map.sitemaps) {
        assert_eq!(normalize(url).as_ref(), Some(url), "not normalised");
    }

    let _ = is_html(Some(&String::from_utf8_lossy(body)));
    if let Ok(out) = gunzip_bounded(body, 1 << 16) {
        assert!(out.len() <= 1 << 16);
    }
    if let Ok(seen) = SeenSet::read_from(body) {
        let mut file = Vec::new();
        seen.write_to(&mut file).expect("a Vec takes all");
        assert_eq!(SeenSet::read_from(&file[..]).ok(), Some(seen), "round trip");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_limits_reach_the_heap_path_for_fields() {
        assert!(fuzz_limits().max_headers > STACK_HEADERS);
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..STACK_HEADERS + 1 {
            wire.extend_from_slice(format!("x{i}: y\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        let (_, head) = read_head(&fuzz_limits(), [&wire[..]]).unwrap();
        assert_eq!(head.unwrap().headers.len(), STACK_HEADERS + 1);
        response_head(&[&[3u8][..], &wire].concat());
    }

    #[test]
    fn proxy_targets_reach_success_and_failure() {
        let ok = b"HTTP/1.1 200 Connection established\r\n\r\nTLS";
        let (used, reply) = read_connect(&fuzz_limits(), [&ok[..]]).unwrap();
        assert!(reply.is_success() && used == ok.len() - 3);
        connect_reply(&[&[6u8][..], ok].concat());
        let v5 = SocksHandshake::v5(SocksTarget::Name("h".into(), 1), None).unwrap();
        let wire = [5, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 80, b'x'];
        let (used, done) = run_socks(v5, [&wire[..]]).unwrap();
        assert_eq!((used, done.bound), (12, Some(([1, 2, 3, 4], 80).into())));
        let v4a = SocksHandshake::v4a(SocksTarget::Name("h".into(), 1), "").unwrap();
        assert_eq!(run_socks(v4a, [&[0, 91][..]]), Err(SocksError::Rejected));
        for mode in 0..=255u8 {
            socks_reply(&[&[mode][..], &wire].concat());
        }
    }

    #[test]
    fn robots_target_reaches_rules_sitemaps_and_paths() {
        let body = b"User-agent: FooBot\r\nDisallow: /*.php$\nAllow: /a/index.html\n\
                     Sitemap: http://x/s.xml\nSitemap: http://x/s.xml\n";
        let robots = Robots::parse(body, "FooBot");
        assert!(!robots.allowed("/x.php") && robots.allowed("/a/"));
        assert_eq!(robots.sitemaps().len(), 1);
        for agent in 0..5u8 {
            self::robots(&[&[agent][..], body].concat());
        }
    }

    #[cfg(feature = "crawl")]
    #[test]
    fn links_target_reaches_links_cuts_sitemaps_gzip_and_seen_files() {
        let page = b"<a href=/a>a</a><a href='b#f'>b</a><a href=/a>again</a>";
        assert_eq!(extract_links(usize::MAX, [&page[..]]).urls.len(), 2);
        let cut = extract_links(page.len() / 2, [&page[..]]);
        assert!(cut.cut && cut.urls.len() == 1);
        for first in [0u8, 3, 0x10, 0x1f] {
            links(&[&[first][..], page].concat());
        }
        let map = b"<urlset><url><loc>https://e.com/a</loc></url></urlset>";
        assert_eq!(parse_sitemap(map, 16).pages.len(), 1);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, map).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(gunzip_bounded(&gz, 1 << 16).unwrap(), map);
        links(&[&[2u8][..], &gz].concat());
        let mut seen = SeenSet::new();
        seen.insert(&url::Url::parse("http://example.com/a").unwrap());
        let mut file = Vec::new();
        seen.write_to(&mut file).unwrap();
        assert_eq!(SeenSet::read_from(&file[..]).unwrap(), seen);
        links(&[&[0u8][..], &file].concat());
        // The committed seed is such a file (its second byte on).
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let seed = std::fs::read(root.join("fuzz/corpus/links/seen_set")).unwrap();
        assert_eq!(SeenSet::read_from(&seed[1..]).unwrap().len(), 2);
    }

    #[test]
    fn head_end_matches_the_reader() {
        assert_eq!(head_end(b"\r\n\nHTTP/1.1 200 OK\r\n\r\nx"), Some(22));
        assert_eq!(head_end(b"a\n\r\r\nb\n\n"), Some(8));
        assert_eq!(head_end(b"\r\n\r\n"), None);
        assert_eq!(head_end(b"a\r\n\r"), None);
    }
}
