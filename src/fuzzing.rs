//! The bodies of the fuzz targets in `fuzz/`, kept in the library so a stable test
//! (`tests/fuzz_corpus.rs`) replays the committed corpus and every crash input ever found
//! without nightly. Hidden: not part of the public API.
//!
//! Each function takes arbitrary bytes and must never panic; where a property holds (the
//! same bytes split differently give the same result) it asserts it.

use crate::proto::__private::{ChunkedDecoder, HeadReader};
use crate::proto::{
    Event, Exchange, Fed, FeedError, Limits, ProtoError, RequestInfo, ResponseHead,
};
use std::convert::Infallible;

fn small_limits() -> Limits {
    Limits {
        max_head_bytes: 4096,
        max_headers: 32,
        max_chunk_line_bytes: 256,
        max_trailer_bytes: 1024,
    }
}

/// The response head reader, fed the input in pieces whose sizes the first byte chooses.
pub fn response_head(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 16) + 1;
    let mut r = HeadReader::new(&small_limits());
    let mut off = 0;
    while off < rest.len() {
        let end = (off + step).min(rest.len());
        match r.read(&rest[off..end]) {
            Ok((used, head)) => {
                assert!(used <= end - off, "consumed more than given");
                off += used;
                if head.is_some() || used == 0 {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// The chunked decoder on arbitrary bytes, in pieces of a size the first byte chooses: data
/// slices must lie within the input, and consumption must progress.
pub fn chunked(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 32) + 1;
    let mut d = ChunkedDecoder::new(&small_limits());
    let mut off = 0;
    let mut stalls = 0;
    while off < rest.len() && !d.is_done() {
        let end = (off + step).min(rest.len());
        match d.decode(&rest[off..end]) {
            Ok((used, out)) => {
                assert!(used <= end - off);
                if let Some(b) = out {
                    assert!(b.len() <= used);
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
    let mut ex = Exchange::new(b"GET / HTTP/1.1\r\n\r\n".to_vec(), info, small_limits());
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
/// bytes), EOF, or transmit progress. The machine must never panic and never report more
/// than it was given.
pub fn exchange_ops(data: &[u8]) {
    let info = RequestInfo {
        head_request: data.first().is_some_and(|b| b & 1 == 1),
        connection_close: data.get(1).is_some_and(|b| b & 1 == 1),
    };
    let request = b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let mut ex = Exchange::new(request, info, small_limits());
    let mut i = 2;
    let mut failed = false;
    while i < data.len() {
        let op = data[i];
        i += 1;
        match op % 4 {
            0 | 1 => {
                let n = usize::from(op >> 2).min(data.len() - i);
                let input = &data[i..i + n];
                i += n;
                let mut off = 0;
                loop {
                    match ex.handle_input(&input[off..]) {
                        Ok(p) => {
                            assert!(p.consumed <= input.len() - off);
                            off += p.consumed;
                            if p.event.is_none() || off == input.len() && p.consumed == 0 {
                                break;
                            }
                        }
                        Err(e) => {
                            // Errors are final: the same error again.
                            assert_eq!(ex.handle_input(b"x").err(), Some(e));
                            failed = true;
                            break;
                        }
                    }
                }
            }
            2 => {
                let left = ex.poll_transmit().len();
                let n = usize::from(op >> 2).min(left);
                ex.handle_transmitted(n);
            }
            _ => {
                let _ = ex.handle_eof();
            }
        }
        if failed {
            assert!(
                ex.close_reason().is_some(),
                "a failed exchange is never reusable"
            );
            return;
        }
    }
    if !ex.is_done() {
        assert!(
            ex.close_reason().is_some(),
            "an unfinished exchange is never reusable"
        );
    }
}

/// The DNS reply parser on arbitrary bytes.
pub fn dns_message(data: &[u8]) {
    crate::dns::fuzz_parse(data);
}
