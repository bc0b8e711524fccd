//! Property tests for the sans-IO codec (`parafetch::proto`).
//!
//! 1. A generated *valid* response (any status, interim 1xx heads, header fields from safe
//!    alphabets, Content-Length / chunked with extensions and trailers / close-delimited /
//!    no body) is serialized, fed to an [`Exchange`] whole, byte by byte, split at every
//!    point and at generated points (the shared `split_everywhere` harness), and must come
//!    back equal: the final head, the body, `End` exactly
//!    once, the framing, the close reason, and not one byte consumed past the response.
//! 2. *Arbitrary* bytes (random, or a soup of HTTP-looking fragments after a valid status
//!    line) with random limits never panic, never stall, keep the event order
//!    (Head, Body*, End), yield only peer-caused [`ProtoError`]s that stick, and give the
//!    same outcome however the input is split.
//!
//! Deterministic: a fixed seed; `PROPTEST_CASES` raises the case count (default 96 / 256).

use parafetch::Headers;
use parafetch::proto::__private::split_everywhere_and;
use parafetch::proto::{
    CloseReason, Event, Exchange, Fed, FeedError, Framing, HttpVersion, Limits, ProtoError,
    RequestInfo, ResponseHead,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x7061_7261_6665_7463),
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Driving an exchange

/// What an exchange made of some input.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    head: Option<ResponseHead>,
    body: Vec<u8>,
    /// End arrived from `handle_input` (not from `handle_eof`).
    ended_by_input: bool,
    /// End arrived from `handle_eof`.
    ended_by_eof: bool,
    consumed: usize,
    error: Option<ProtoError>,
}

/// Feeds `pieces` in order with [`Exchange::feed`] (one call each, until End), then, unless
/// End or an error came, end of file. Checks the contract's invariants on the way.
fn drive(ex: &mut Exchange, pieces: &[&[u8]]) -> Outcome {
    let mut o = Outcome {
        head: None,
        body: Vec::new(),
        ended_by_input: false,
        ended_by_eof: false,
        consumed: 0,
        error: None,
    };
    for piece in pieces {
        let fed = ex.feed(piece, |event, framing| {
            assert!(framing.is_some(), "an event without framing");
            match event {
                Event::Head(h) => {
                    assert!(o.head.is_none(), "a second Head");
                    assert!(!h.is_informational(), "a 1xx head surfaced");
                    o.head = Some(h);
                }
                Event::Body(b) => {
                    assert!(o.head.is_some(), "Body before Head");
                    assert!(!o.ended_by_input, "Body after End");
                    assert!(!b.is_empty(), "an empty Body event");
                    o.body.extend_from_slice(b);
                }
                Event::End => {
                    assert!(o.head.is_some(), "End before Head");
                    assert!(!o.ended_by_input, "a second End");
                    o.ended_by_input = true;
                }
                other => panic!("an event this test does not know: {other:?}"),
            }
            Ok::<_, std::convert::Infallible>(())
        });
        match fed {
            Ok(Fed::End { unread }) => {
                assert!(o.ended_by_input && ex.is_done());
                o.consumed += piece.len() - unread;
                // After End nothing more is consumed and nothing more happens.
                let after = ex.handle_input(&piece[piece.len() - unread..]);
                let after = after.expect("input after End is no error");
                assert_eq!((after.consumed, after.event), (0, None));
                assert_eq!(ex.handle_eof(), Ok(None), "eof after End");
                break;
            }
            Ok(_) => o.consumed += piece.len(),
            Err(FeedError::Proto(e)) => {
                o.error = Some(e);
                break;
            }
            Err(FeedError::Handler(never)) => match never {},
        }
    }
    if let Some(e) = o.error {
        assert!(
            e.caused_by_peer(),
            "a caller-side error from response bytes: {e:?}"
        );
        assert!(!e.as_str().is_empty());
        // The error is final.
        assert_eq!(ex.handle_input(b"HTTP/1.1 200 OK\r\n\r\n"), Err(e));
        assert_eq!(ex.handle_eof(), Err(e));
        assert!(!ex.is_done());
        assert_eq!(ex.close_reason(), Some(CloseReason::Unfinished));
    } else if !o.ended_by_input {
        match ex.handle_eof() {
            Ok(Some(Event::End)) => o.ended_by_eof = true,
            Ok(other) => panic!("eof before End gave {other:?}"),
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        ProtoError::NoResponse
                            | ProtoError::TruncatedHead
                            | ProtoError::TruncatedBody
                    ),
                    "eof gave {e:?}"
                );
                o.error = Some(e);
                assert_eq!(ex.handle_eof(), Err(e), "an eof error is final");
            }
        }
    }
    o
}

fn exchange(info: RequestInfo, limits: Limits) -> Exchange {
    let mut ex = Exchange::new(REQUEST.to_vec(), info, limits);
    let n = ex.poll_transmit().len();
    ex.handle_transmitted(n);
    ex
}

// ---------------------------------------------------------------------------------------------
// Generating valid responses

#[derive(Clone, Debug)]
enum Body {
    /// 204, 304 or a response to HEAD; `length` is an advertised Content-Length, if any.
    None { length: Option<u64> },
    /// `Content-Length` in one of several valid spellings.
    Length { spelling: u8 },
    /// Chunks cut at `cuts`; each size in a random hex case with leading zeros, each line
    /// with an optional extension; trailer fields after the last chunk.
    Chunked {
        te: &'static str,
        cuts: Vec<usize>,
        exts: Vec<Option<String>>,
        upper: bool,
        zeros: usize,
        trailers: Vec<(String, String)>,
    },
    /// No framing field: the body ends at end of file.
    Close,
}

#[derive(Clone, Debug)]
struct Response {
    version: HttpVersion,
    /// 1xx heads before the final one (HTTP/1.1 only).
    interim: Vec<(u16, Vec<(String, String)>)>,
    status: u16,
    reason: String,
    /// When the reason is empty: whether the status line still has its space.
    space: bool,
    fields: Vec<(String, String)>,
    /// Where among the fields the framing field goes.
    framing_at: usize,
    body: Vec<u8>,
    framing: Body,
    head_request: bool,
    /// Bare LF line endings everywhere instead of CRLF (RFC 9112 §2.2 lets a recipient
    /// accept them).
    bare_lf: bool,
}

const FRAMING_NAMES: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

fn field_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}".prop_filter("not a framing field", |n| {
        !FRAMING_NAMES.iter().any(|f| n.eq_ignore_ascii_case(f))
    })
}

/// A field value: visible ASCII and a few non-ASCII characters (sent as UTF-8), inner
/// spaces and tabs, no leading or trailing whitespace; or empty.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        8 => "[!-~éü€]([ \t!-~éü€]{0,30}[!-~éü€])?",
    ]
}

fn fields(max: usize) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((field_name(), field_value()), 0..max)
}

fn reason() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        6 => "[A-Za-z0-9é]{1,10}( [A-Za-z0-9-]{1,10}){0,3}",
    ]
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        6 => prop::collection::vec(any::<u8>(), 1..600),
        1 => prop::collection::vec(any::<u8>(), 600..3000),
    ]
}

fn chunked_body() -> impl Strategy<Value = Body> {
    (
        prop_oneof![
            Just("chunked"),
            Just("CHUNKED"),
            Just("gzip, chunked"),
            Just("identity ,Chunked")
        ],
        prop::collection::vec(any::<usize>(), 0..8),
        prop::collection::vec(
            prop::option::weighted(0.3, r#";[a-z]{1,6}(=([a-z0-9]{1,6}|"[ a-z0-9;]{0,8}"))?"#),
            0..10,
        ),
        any::<bool>(),
        0..3usize,
        fields(4),
    )
        .prop_map(|(te, cuts, exts, upper, zeros, trailers)| Body::Chunked {
            te,
            cuts,
            exts,
            upper,
            zeros,
            trailers,
        })
}

fn response() -> impl Strategy<Value = Response> {
    let version = prop_oneof![4 => Just(HttpVersion::Http11), 1 => Just(HttpVersion::Http10)];
    let status = prop_oneof![
        8 => 200u16..600,
        1 => Just(204u16),
        1 => Just(304u16),
    ];
    let interim = prop::collection::vec(
        (prop_oneof![Just(100u16), Just(102), Just(103)], fields(3)),
        0..3,
    );
    (
        version,
        interim,
        status,
        reason(),
        any::<bool>(),
        fields(10),
        any::<usize>(),
        body_bytes(),
        prop_oneof![
            3 => (0..4u8).prop_map(|spelling| Body::Length { spelling }),
            3 => chunked_body(),
            2 => Just(Body::Close),
        ],
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.2),
        prop::option::of(0..100_000u64),
    )
        .prop_map(
            |(
                version,
                mut interim,
                status,
                reason,
                space,
                fields,
                framing_at,
                mut body,
                mut framing,
                head_request,
                bare_lf,
                advertised,
            )| {
                if version == HttpVersion::Http10 {
                    // No interim responses to 1.0, and chunked is refused there (RFC 9112
                    // §6.1): send a length instead.
                    interim.clear();
                    if matches!(framing, Body::Chunked { .. }) {
                        framing = Body::Length { spelling: 0 };
                    }
                }
                if head_request || status == 204 || status == 304 {
                    body.clear();
                    framing = Body::None {
                        length: advertised.filter(|_| status != 204),
                    };
                }
                Response {
                    version,
                    interim,
                    status,
                    reason,
                    space,
                    fields,
                    framing_at,
                    body,
                    framing,
                    head_request,
                    bare_lf,
                }
            },
        )
}

impl Response {
    fn eol(&self) -> &'static str {
        if self.bare_lf { "\n" } else { "\r\n" }
    }

    fn status_line(&self, out: &mut Vec<u8>, version: HttpVersion, status: u16, reason: &str) {
        out.extend_from_slice(format!("{} {status}", version.as_str()).as_bytes());
        if !reason.is_empty() || self.space {
            out.push(b' ');
        }
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(self.eol().as_bytes());
    }

    fn push_fields(&self, out: &mut Vec<u8>, fields: &[(String, String)]) {
        for (n, v) in fields {
            out.extend_from_slice(format!("{n}: {v}{}", self.eol()).as_bytes());
        }
    }

    /// The final head's fields as sent, framing field included.
    fn final_fields(&self) -> Vec<(String, String)> {
        let len = self.body.len();
        let framing: Vec<(String, String)> = match &self.framing {
            Body::None { length: Some(n) } => vec![("Content-Length".into(), n.to_string())],
            Body::None { length: None } | Body::Close => vec![],
            Body::Length { spelling } => match spelling {
                0 => vec![("Content-Length".into(), len.to_string())],
                1 => vec![("content-length".into(), format!("{len}, {len}"))],
                2 => vec![
                    ("Content-Length".into(), len.to_string()),
                    ("CONTENT-LENGTH".into(), format!("00{len}")),
                ],
                _ => vec![("Content-Length".into(), format!("{len}\t"))],
            },
            Body::Chunked { te, .. } => vec![("Transfer-Encoding".into(), (*te).into())],
        };
        let mut all = self.fields.clone();
        let at = self.framing_at % (all.len() + 1);
        all.splice(at..at, framing);
        all
    }

    fn serialize(&self) -> Vec<u8> {
        let eol = self.eol();
        let mut out = Vec::new();
        for (status, fields) in &self.interim {
            self.status_line(&mut out, HttpVersion::Http11, *status, "Interim");
            self.push_fields(&mut out, fields);
            out.extend_from_slice(eol.as_bytes());
        }
        self.status_line(&mut out, self.version, self.status, &self.reason);
        self.push_fields(&mut out, &self.final_fields());
        out.extend_from_slice(eol.as_bytes());
        match &self.framing {
            Body::None { .. } => {}
            Body::Length { .. } | Body::Close => out.extend_from_slice(&self.body),
            Body::Chunked {
                cuts,
                exts,
                upper,
                zeros,
                trailers,
                ..
            } => {
                let mut points: Vec<usize> = cuts
                    .iter()
                    .map(|c| c % (self.body.len() + 1))
                    .chain([0, self.body.len()])
                    .collect();
                points.sort_unstable();
                points.dedup();
                let mut line = 0;
                let mut size_line = |out: &mut Vec<u8>, n: usize| {
                    let hex = if *upper {
                        format!("{n:X}")
                    } else {
                        format!("{n:x}")
                    };
                    out.extend_from_slice("0".repeat(*zeros).as_bytes());
                    out.extend_from_slice(hex.as_bytes());
                    if let Some(Some(e)) = exts.get(line % exts.len().max(1)) {
                        out.extend_from_slice(e.as_bytes());
                    }
                    line += 1;
                    out.extend_from_slice(eol.as_bytes());
                };
                // Chunks are never empty: an empty one would be the last chunk.
                for w in points.windows(2) {
                    size_line(&mut out, w[1] - w[0]);
                    out.extend_from_slice(&self.body[w[0]..w[1]]);
                    out.extend_from_slice(eol.as_bytes());
                }
                size_line(&mut out, 0);
                self.push_fields(&mut out, trailers);
                out.extend_from_slice(eol.as_bytes());
            }
        }
        out
    }

    fn expected_head(&self) -> ResponseHead {
        // Leading and trailing whitespace is not part of a field value (RFC 9112 §5.1).
        let headers = self
            .final_fields()
            .into_iter()
            .map(|(n, v)| (n, v.trim_matches([' ', '\t']).to_owned()))
            .collect::<Headers>();
        ResponseHead::new(self.version, self.status, self.reason.clone(), headers)
    }

    fn expected_framing(&self) -> Framing {
        match self.framing {
            Body::None { .. } => Framing::NoBody,
            Body::Length { .. } => Framing::Length(self.body.len() as u64),
            Body::Chunked { .. } => Framing::Chunked,
            Body::Close => Framing::CloseDelimited,
        }
    }

    fn expected_close(&self) -> Option<CloseReason> {
        match (&self.framing, self.version) {
            (Body::Close, _) => Some(CloseReason::CloseDelimited),
            (_, HttpVersion::Http10) => Some(CloseReason::Http10),
            _ => None,
        }
    }

    fn info(&self) -> RequestInfo {
        RequestInfo::default().head_request(self.head_request)
    }
}

/// What must follow a response on the wire without being consumed: the next response of a
/// keep-alive connection, or nothing after a close-delimited body.
fn next_response(r: &Response) -> &'static [u8] {
    match r.framing {
        Body::Close => b"",
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnxt",
    }
}

/// Runs `wire` through an exchange fed whole, byte by byte, split at every point and at
/// `cuts` (with and without empty reads between): all must agree, and match `r`.
fn check_valid(r: &Response, wire: &[u8], cuts: &[usize]) {
    let (o, framing, close) = split_everywhere_and(wire, cuts, |pieces| {
        let mut ex = exchange(r.info(), Limits::default());
        let o = drive(&mut ex, pieces);
        (o, ex.framing(), ex.close_reason())
    });
    let len = wire.len() - next_response(r).len();
    assert_eq!(o.error, None, "error");
    assert_eq!(o.head.as_ref(), Some(&r.expected_head()), "head");
    assert!(o.body == r.body, "body differs");
    let by_eof = matches!(r.framing, Body::Close);
    assert_eq!((o.ended_by_input, o.ended_by_eof), (!by_eof, by_eof), "End");
    assert_eq!(o.consumed, len, "consumed");
    assert_eq!(framing, Some(r.expected_framing()), "framing");
    assert_eq!(close, r.expected_close(), "close reason");
}

proptest! {
    #![proptest_config(config(96))]

    /// parse(serialize(x)) == x, whole, byte by byte, split at every point and at generated
    /// points, with empty reads between.
    #[test]
    fn valid_responses_round_trip_under_every_split(
        r in response(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = r.serialize();
        wire.extend_from_slice(next_response(&r));
        check_valid(&r, &wire, &cuts);
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary bytes

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        1 => Just(Limits::default()),
        2 => (1..300usize, 0..8usize, 1..40usize, 0..80usize).prop_map(|(h, n, c, t)| {
            Limits::default()
                .max_head_bytes(h)
                .max_headers(n)
                .max_chunk_line_bytes(c)
                .max_trailer_bytes(t)
        }),
    ]
}

/// HTTP-looking fragments and random bytes, glued together.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"HTTP/1.1 ".to_vec()),
        Just(b"HTTP/1.0 200 OK\r\n".to_vec()),
        Just(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()),
        Just(b"Content-Length: ".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"Connection: close\r\n".to_vec()),
        Just(b": ".to_vec()),
        Just(b";".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
        "[0-9a-fA-F]{1,18}".prop_map(String::into_bytes),
        "[0-9+-]{1,21}".prop_map(String::into_bytes),
        "[A-Za-z-]{1,10}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 1..16),
    ];
    prop::collection::vec(fragment, 0..40).prop_map(|v| v.concat())
}

fn arbitrary_input() -> impl Strategy<Value = Vec<u8>> {
    let prefixes = prop_oneof![
        Just(&b""[..]),
        Just(&b"HTTP/1.1 200 OK\r\n"[..]),
        Just(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..]),
        Just(&b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"[..]),
    ];
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..400),
        3 => (prefixes, soup()).prop_map(|(p, s)| [p, &s[..]].concat()),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Any bytes: no panic, no stall, events in order, typed and final errors, and the same
    /// outcome whole, byte by byte and split anywhere.
    #[test]
    fn arbitrary_bytes_never_panic_and_errors_are_typed(
        input in arbitrary_input(),
        limits in limits(),
        head_request in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let info = RequestInfo::default().head_request(head_request);
        // Bytes taken before an error depend on where the input was cut; nothing else may.
        let whole = split_everywhere_and(&input, &cuts, |pieces| {
            let mut o = drive(&mut exchange(info, limits), pieces);
            if o.error.is_some() {
                o.consumed = 0;
            }
            o
        });
        if let Some(head) = &whole.head {
            prop_assert!((100..=999).contains(&head.status));
            prop_assert!(head.headers.len() <= limits.max_headers);
        }
        if whole.ended_by_input {
            prop_assert!(whole.head.is_some());
        }
    }
}
