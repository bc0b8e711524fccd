//! One request/response exchange on a connection: the driver's whole view of HTTP/1.1.
//!
//! Owns every state change of an exchange (in [`Exchange`]'s methods, nowhere else): bytes
//! to write, head reading with 1xx skipping, body decoding by framing, end-of-file rules and
//! whether the connection can be reused. It must not do I/O, read a clock or retry.

use super::chunked::ChunkedDecoder;
use super::framing::{has_transfer_encoding_and_length, response_framing};
use super::head::HeadReader;
use super::{Framing, HttpVersion, Limits, ProtoError, ResponseHead};
use std::fmt;

/// What the exchange must know about the request it sent.
///
/// # Examples
/// ```
/// use parafetch::proto::RequestInfo;
/// let info = RequestInfo::default().head_request(true);
/// assert!(info.head_request && !info.connection_close);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RequestInfo {
    /// The method was HEAD: the response has no body, whatever its fields say.
    pub head_request: bool,
    /// We sent `Connection: close`: the connection ends with this exchange.
    pub connection_close: bool,
}

impl RequestInfo {
    /// Sets [`RequestInfo::head_request`].
    #[must_use]
    pub const fn head_request(mut self, yes: bool) -> Self {
        self.head_request = yes;
        self
    }

    /// Sets [`RequestInfo::connection_close`].
    #[must_use]
    pub const fn connection_close(mut self, yes: bool) -> Self {
        self.connection_close = yes;
        self
    }
}

/// What [`Exchange::feed`] (or one [`Exchange::handle_input`] step) found.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The final (non-1xx) response head; exactly once.
    Head(ResponseHead),
    /// Body bytes with the framing removed (dechunked), a non-empty slice of the input.
    Body(&'a [u8]),
    /// The response is complete; exactly once.
    End,
}

/// The result of one [`Exchange::handle_input`] call.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// How many bytes of the input were used; feed the rest again.
    pub consumed: usize,
    /// What those bytes completed, if anything.
    pub event: Option<Event<'a>>,
}

/// Why a connection may not carry another request after this exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// We sent `Connection: close`.
    RequestClose,
    /// The server sent `Connection: close` (RFC 9112 §9.6).
    ResponseClose,
    /// An HTTP/1.0 response without `Connection: keep-alive` (RFC 9112 §9.3).
    Http10,
    /// The body ended at end of file.
    CloseDelimited,
    /// The response had both `Transfer-Encoding` and `Content-Length`: a possible smuggling
    /// attempt (RFC 9112 §6.3), so the connection is never reused.
    TransferEncodingWithLength,
    /// The response ended before our request was fully written; the server may read the
    /// rest of it as a new request, or may have stopped reading.
    RequestNotSent,
    /// The exchange is not done, or it failed.
    Unfinished,
}

impl CloseReason {
    /// A short lowercase description, e.g. `"response sent connection: close"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CloseReason::RequestClose => "request sent connection: close",
            CloseReason::ResponseClose => "response sent connection: close",
            CloseReason::Http10 => "http/1.0 response without keep-alive",
            CloseReason::CloseDelimited => "response body ended at end of file",
            CloseReason::TransferEncodingWithLength => {
                "response had both transfer-encoding and content-length"
            }
            CloseReason::RequestNotSent => "response ended before the request was sent",
            CloseReason::Unfinished => "exchange unfinished or failed",
        }
    }
}

/// What feeding one slice of input to [`Exchange::feed`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fed {
    /// All input consumed, the response is not complete yet.
    NeedMore,
    /// The response ended; `unread` bytes of the input lie beyond its end (they belong to
    /// whatever the peer sent next, and make the connection unfit for reuse if not empty).
    End {
        /// How many bytes at the end of the input were not part of the response.
        unread: usize,
    },
}

/// Why [`Exchange::feed`] stopped early.
#[derive(Debug)]
pub enum FeedError<E> {
    /// The peer's bytes were bad (final for the exchange).
    Proto(ProtoError),
    /// The caller's handler refused an event.
    Handler(E),
}

/// Shows the inner error alone: a `FeedError` only says which side the error came from.
impl<E: fmt::Display> fmt::Display for FeedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedError::Proto(e) => e.fmt(f),
            FeedError::Handler(e) => e.fmt(f),
        }
    }
}

/// Transparent: the source is the inner error's source, so a `{:#}`-style chain does not
/// print the inner error twice.
impl<E: std::error::Error + 'static> std::error::Error for FeedError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FeedError::Proto(e) => e.source(),
            FeedError::Handler(e) => e.source(),
        }
    }
}

/// The body reader for one framing.
#[derive(Clone, Debug)]
enum BodyReader {
    /// Bytes left of a `Content-Length` body (`NoBody` is `Length(0)`); at 0 the next call
    /// delivers End.
    Length(u64),
    Chunked(ChunkedDecoder),
    CloseDelimited,
}

#[derive(Clone, Debug)]
enum State {
    /// Reading heads until the final one; 1xx heads are dropped here.
    Head(HeadReader),
    Body(BodyReader),
    /// End was delivered.
    Done,
    /// An error was returned; it is returned again on every later call.
    Failed(ProtoError),
}

/// One HTTP/1.1 request/response exchange, sans I/O.
///
/// Three kinds of methods:
/// - output: [`poll_transmit`](Self::poll_transmit) gives the request bytes still to write,
///   [`handle_transmitted`](Self::handle_transmitted) says how many were written. Writing may
///   go on while the response is read.
/// - input: [`feed`](Self::feed) takes one read's bytes and hands every [`Event`] they
///   complete to a closure (`Head` once, `Body` zero or more times, `End` once);
///   [`handle_input`](Self::handle_input) is its single step, at most one event per call;
///   [`handle_eof`](Self::handle_eof) says the peer closed its side.
/// - queries: [`is_done`](Self::is_done), [`received_any`](Self::received_any),
///   [`framing`](Self::framing), [`close_reason`](Self::close_reason).
///
/// Call order for the input side: `feed` each read's bytes until it returns [`Fed::End`]; on
/// end of file call `handle_eof`. A returned error is final. Driving `handle_input` by hand
/// instead: feed the unconsumed rest again until the rest is empty and no event came back,
/// or until `End`; after a `Head` or a `Body` that used the whole input, call once more
/// (with an empty slice if need be): a bodiless response or a `Content-Length` body that
/// just completed delivers `End` without needing more bytes.
///
/// # Examples
/// ```
/// use parafetch::proto::{Event, Exchange, Limits, RequestInfo};
/// let mut ex = Exchange::new(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
///                            RequestInfo::default(), Limits::default());
/// ex.handle_transmitted(ex.poll_transmit().len());
/// let input = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
/// let p = ex.handle_input(input).unwrap();
/// assert!(matches!(p.event, Some(Event::Head(ref h)) if h.status == 200));
/// let p = ex.handle_input(&input[p.consumed..]).unwrap();
/// assert_eq!(p.event, Some(Event::Body(b"hi")));
/// assert_eq!(ex.handle_input(&[]).unwrap().event, Some(Event::End));
/// assert_eq!(ex.close_reason(), None); // reusable
/// ```
#[derive(Clone)]
pub struct Exchange {
    request: Vec<u8>,
    written: usize,
    info: RequestInfo,
    limits: Limits,
    state: State,
    received_any: bool,
    /// The final head's framing, once known.
    framing: Option<Framing>,
    /// The final head had both `Transfer-Encoding` and `Content-Length`.
    te_with_length: bool,
    /// `ResponseClose` or `Http10` when the final head's `Connection` forbids reuse.
    response_close: Option<CloseReason>,
    /// Whether request bytes were still unwritten when End was delivered.
    unsent_at_end: bool,
}

/// Shows the request's size and progress, never its bytes: they may hold credentials
/// (`Authorization`, `Proxy-Authorization`) and cookies.
impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("request_len", &self.request.len())
            .field("written", &self.written)
            .field("info", &self.info)
            .field("framing", &self.framing)
            .field("received_any", &self.received_any)
            .field("done", &self.is_done())
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// An exchange that will write `request` (the complete head and body) and read the
    /// response to it.
    pub fn new(request: Vec<u8>, info: RequestInfo, limits: Limits) -> Exchange {
        Exchange {
            request,
            written: 0,
            info,
            state: State::Head(HeadReader::new(&limits)),
            limits,
            received_any: false,
            framing: None,
            te_with_length: false,
            response_close: None,
            unsent_at_end: false,
        }
    }

    /// The request bytes still to write; empty when all are written.
    pub fn poll_transmit(&self) -> &[u8] {
        &self.request[self.written..]
    }

    /// `n` bytes from the front of [`poll_transmit`](Self::poll_transmit) were written.
    ///
    /// # Panics
    /// If `n` is more than `poll_transmit().len()`: the driver wrote bytes it was not given.
    pub fn handle_transmitted(&mut self, n: usize) {
        assert!(
            n <= self.request.len() - self.written,
            "handle_transmitted({n}) with only {} bytes to write",
            self.request.len() - self.written
        );
        self.written += n;
        if self.written == self.request.len() {
            // A connection may idle for long; don't keep the request alive with it.
            self.request = Vec::new();
            self.written = 0;
        }
    }

    /// Feeds `input`, handing each event to `on_event` together with the body framing
    /// (known from the head on: `Some` for Head, Body and End events), until the input is
    /// used up or the response ends.
    ///
    /// This is the whole input-side loop of [`handle_input`](Self::handle_input) (feed the
    /// unconsumed rest again, collect the `End` a complete body delivers without more
    /// bytes); call it once per read. Body slices borrow from `input`. After the response
    /// ended, every call returns `Fed::End` with all of `input` unread and no event.
    ///
    /// # Errors
    /// [`FeedError::Proto`] with the [`ProtoError`] the input caused (final: later calls
    /// return it again), or [`FeedError::Handler`] with the first error `on_event` returned;
    /// feeding stops at once, and the bytes after that event are dropped, so the exchange
    /// should be abandoned.
    ///
    /// # Examples
    /// ```
    /// use parafetch::proto::{Event, Exchange, Fed, Framing, Limits, RequestInfo};
    /// let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
    /// let mut body = Vec::new();
    /// let fed = ex.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1", |event, framing| {
    ///     assert_eq!(framing, Some(Framing::Length(2)));
    ///     if let Event::Body(bytes) = event {
    ///         body.extend_from_slice(bytes);
    ///     }
    ///     Ok::<_, std::convert::Infallible>(())
    /// });
    /// assert_eq!((fed.unwrap(), &body[..]), (Fed::End { unread: 8 }, &b"hi"[..]));
    /// ```
    pub fn feed<E>(
        &mut self,
        input: &[u8],
        mut on_event: impl FnMut(Event<'_>, Option<Framing>) -> Result<(), E>,
    ) -> Result<Fed, FeedError<E>> {
        let mut rest = input;
        loop {
            let p = self.handle_input(rest).map_err(FeedError::Proto)?;
            rest = &rest[p.consumed..];
            match p.event {
                Some(Event::End) => {
                    on_event(Event::End, self.framing).map_err(FeedError::Handler)?;
                    return Ok(Fed::End { unread: rest.len() });
                }
                Some(event) => on_event(event, self.framing).map_err(FeedError::Handler)?,
                // End was delivered by an earlier call.
                None if self.is_done() => return Ok(Fed::End { unread: rest.len() }),
                // `handle_input` returns no event only once the input is used up.
                None => {
                    debug_assert!(rest.is_empty(), "no event with input left");
                    return Ok(Fed::NeedMore);
                }
            }
        }
    }

    /// Feeds received bytes; returns how many were used and at most one event.
    ///
    /// Bytes after the response's end are never consumed: they are the driver's (and the
    /// connection is then not reusable). After `End` every call consumes nothing.
    ///
    /// # Errors
    /// Any peer-side [`ProtoError`] the head, framing or body decoding finds. The error is
    /// final: later calls return it again.
    pub fn handle_input<'a>(&mut self, input: &'a [u8]) -> Result<Progress<'a>, ProtoError> {
        let result = self.step(input);
        if let Err(e) = result {
            self.state = State::Failed(e);
        }
        result
    }

    fn step<'a>(&mut self, input: &'a [u8]) -> Result<Progress<'a>, ProtoError> {
        match &mut self.state {
            State::Failed(e) => Err(*e),
            State::Done => Ok(progress(0, None)),
            State::Head(reader) => {
                self.received_any |= !input.is_empty();
                let mut consumed = 0;
                loop {
                    let (n, head) = reader.read(&input[consumed..])?;
                    consumed += n;
                    match head {
                        None => return Ok(progress(consumed, None)),
                        // RFC 9110 §15.2: a client must be able to parse one or more 1xx
                        // responses before the final one, and may ignore them.
                        Some(head) if head.is_informational() => continue,
                        Some(head) => {
                            self.start_body(&head)?;
                            return Ok(progress(consumed, Some(Event::Head(head))));
                        }
                    }
                }
            }
            State::Body(BodyReader::Length(0)) => Ok(self.end(0)),
            State::Body(BodyReader::Length(left)) => {
                let n = usize::try_from(*left).map_or(input.len(), |left| left.min(input.len()));
                *left -= n as u64;
                // The n-th byte leaves Length(0): the next call delivers End with no input.
                Ok(body(n, &input[..n]))
            }
            State::Body(BodyReader::Chunked(decoder)) => {
                let (n, data) = decoder.decode(input)?;
                match data {
                    Some(data) => Ok(body(n, data)),
                    None if decoder.is_done() => Ok(self.end(n)),
                    None => Ok(progress(n, None)),
                }
            }
            State::Body(BodyReader::CloseDelimited) => Ok(body(input.len(), input)),
        }
    }

    /// Moves to the body state chosen by the final head's framing.
    fn start_body(&mut self, head: &ResponseHead) -> Result<(), ProtoError> {
        let framing = response_framing(head, self.info.head_request)?;
        let reader = match framing {
            Framing::NoBody => BodyReader::Length(0),
            Framing::Length(n) => BodyReader::Length(n),
            Framing::Chunked => BodyReader::Chunked(ChunkedDecoder::new(&self.limits)),
            Framing::CloseDelimited => BodyReader::CloseDelimited,
        };
        self.framing = Some(framing);
        self.te_with_length = has_transfer_encoding_and_length(head);
        self.response_close = response_close_reason(head);
        self.state = State::Body(reader);
        Ok(())
    }

    /// Delivers End.
    fn end<'a>(&mut self, consumed: usize) -> Progress<'a> {
        self.state = State::Done;
        self.unsent_at_end = !self.poll_transmit().is_empty();
        progress(consumed, Some(Event::End))
    }

    /// The peer closed its side of the connection (a read returned 0).
    ///
    /// Returns `Ok(Some(Event::End))` when that ends the response: a close-delimited body,
    /// or a body already complete whose End was not collected yet; `Ok(None)` when End was
    /// already delivered.
    ///
    /// # Errors
    /// [`ProtoError::NoResponse`] when no response byte ever arrived,
    /// [`ProtoError::TruncatedHead`] inside a head (a 1xx head followed by nothing counts),
    /// [`ProtoError::TruncatedBody`] before the end of a `Content-Length` or chunked body
    /// (h11's rule: only a close-delimited body may end at end of file), or the error
    /// returned before. The error is final.
    pub fn handle_eof(&mut self) -> Result<Option<Event<'static>>, ProtoError> {
        let result = match &self.state {
            State::Failed(e) => Err(*e),
            State::Done => return Ok(None),
            State::Head(_) if !self.received_any => Err(ProtoError::NoResponse),
            State::Head(_) => Err(ProtoError::TruncatedHead),
            State::Body(BodyReader::Length(0) | BodyReader::CloseDelimited) => {
                Ok(Some(self.end(0)))
            }
            State::Body(BodyReader::Chunked(d)) if d.is_done() => Ok(Some(self.end(0))),
            State::Body(_) => Err(ProtoError::TruncatedBody),
        };
        match result {
            Ok(p) => Ok(p.and_then(|p| p.event)),
            Err(e) => {
                self.state = State::Failed(e);
                Err(e)
            }
        }
    }

    /// Whether End was delivered.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether any response byte ever arrived (1xx heads included). When an exchange on a
    /// reused connection fails without one, the server likely closed it while idle.
    pub fn received_any(&self) -> bool {
        self.received_any
    }

    /// The body framing of the final response, once its head was read.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Why the connection may not carry another request; None when it may (which requires
    /// [`is_done`](Self::is_done)).
    ///
    /// When several reasons hold, the first of this list wins: `Unfinished`,
    /// `TransferEncodingWithLength`, `CloseDelimited`, `RequestNotSent`, `RequestClose`,
    /// `ResponseClose`, `Http10`.
    pub fn close_reason(&self) -> Option<CloseReason> {
        if !self.is_done() {
            return Some(CloseReason::Unfinished);
        }
        if self.te_with_length {
            return Some(CloseReason::TransferEncodingWithLength);
        }
        if self.framing == Some(Framing::CloseDelimited) {
            return Some(CloseReason::CloseDelimited);
        }
        if self.unsent_at_end {
            return Some(CloseReason::RequestNotSent);
        }
        if self.info.connection_close {
            return Some(CloseReason::RequestClose);
        }
        self.response_close
    }
}

/// Whether the final head's `Connection` field (or its absence) ends the connection.
fn response_close_reason(head: &ResponseHead) -> Option<CloseReason> {
    // RFC 9112 §9.6: "close" means the connection closes after this response.
    if head.headers.has_token("connection", "close") {
        return Some(CloseReason::ResponseClose);
    }
    // RFC 9112 §9.3: an HTTP/1.0 connection persists only with "keep-alive".
    if head.version == HttpVersion::Http10 && !head.headers.has_token("connection", "keep-alive") {
        return Some(CloseReason::Http10);
    }
    None
}

fn progress(consumed: usize, event: Option<Event<'_>>) -> Progress<'_> {
    Progress { consumed, event }
}

/// A Body event, or no event for an empty slice (bodies never yield empty events).
fn body(consumed: usize, data: &[u8]) -> Progress<'_> {
    let event = (!data.is_empty()).then_some(Event::Body(data));
    progress(consumed, event)
}

#[cfg(test)]
mod tests {
    use super::super::testing::split_everywhere;
    use super::*;

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";

    /// How a test exchange is set up and ended.
    #[derive(Clone, Copy)]
    struct Case {
        info: RequestInfo,
        limits: Limits,
        /// Request bytes written before the response arrives.
        sent: usize,
        /// Whether the peer closes after the response bytes.
        eof: bool,
    }

    impl Default for Case {
        fn default() -> Self {
            Case {
                info: RequestInfo::default(),
                limits: Limits::default(),
                sent: REQUEST.len(),
                eof: false,
            }
        }
    }

    fn eof() -> Case {
        Case {
            eof: true,
            ..Case::default()
        }
    }

    /// Everything observable about one run; every way of splitting the input must give the
    /// same.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        head: Option<ResponseHead>,
        body: Vec<u8>,
        ended: bool,
        error: Option<ProtoError>,
        /// Bytes the exchange left unconsumed after End.
        leftover: usize,
        framing: Option<Framing>,
        close_reason: Option<CloseReason>,
        received_any: bool,
    }

    /// Feeds `pieces` with [`Exchange::feed`], one call per piece, then EOF if the case says
    /// so, checking the event contract on the way.
    fn run(pieces: &[&[u8]], case: Case) -> Outcome {
        let mut ex = Exchange::new(REQUEST.to_vec(), case.info, case.limits);
        ex.handle_transmitted(case.sent);
        let (mut head, mut body, mut ended, mut error, mut leftover) =
            (None, Vec::new(), false, None, 0);
        let mut framings = Vec::new();
        for piece in pieces {
            if ended {
                leftover += piece.len();
                continue;
            }
            let fed = ex.feed(piece, |event, framing| {
                assert!(framing.is_some(), "framing known with every event");
                framings.push(framing);
                match event {
                    Event::Head(h) => {
                        assert!(head.is_none(), "Head exactly once");
                        assert!(!h.is_informational(), "1xx heads are skipped");
                        head = Some(h);
                    }
                    Event::Body(b) => {
                        assert!(head.is_some() && !ended, "Body between Head and End");
                        assert!(!b.is_empty(), "no empty Body events");
                        // Zero copy: the body bytes are a slice of the input.
                        assert!(piece.as_ptr_range().contains(&b.as_ptr()));
                        body.extend_from_slice(b);
                    }
                    Event::End => {
                        assert!(head.is_some() && !ended, "End after Head, once");
                        ended = true;
                    }
                }
                Ok::<_, std::convert::Infallible>(())
            });
            match fed {
                Ok(Fed::End { unread }) => {
                    assert!(ended, "Fed::End with the End event");
                    leftover += unread;
                }
                Ok(Fed::NeedMore) => assert!(!ended),
                Err(FeedError::Proto(e)) => {
                    error = Some(e);
                    break;
                }
                Err(FeedError::Handler(never)) => match never {},
            }
        }
        if case.eof && error.is_none() {
            match ex.handle_eof() {
                Ok(Some(Event::End)) => {
                    assert!(!ended, "End exactly once");
                    ended = true;
                }
                Ok(None) => assert!(ended, "None from handle_eof only after End"),
                Ok(Some(other)) => panic!("handle_eof gave {other:?}"),
                Err(e) => error = Some(e),
            }
        }
        assert_eq!(ex.is_done(), ended);
        assert!(framings.iter().all(|f| *f == ex.framing()));
        if let Some(e) = error {
            // Errors are final.
            assert_eq!(ex.handle_input(b"more"), Err(e));
            assert_eq!(ex.handle_input(b""), Err(e));
            assert!(
                matches!(ex.feed(b"x", |_, _| Ok::<_, ()>(())), Err(FeedError::Proto(f)) if f == e)
            );
            assert_eq!(ex.handle_eof(), Err(e));
            assert_eq!(ex.close_reason(), Some(CloseReason::Unfinished));
            leftover = 0;
        }
        if ended {
            // After End nothing is consumed.
            assert_eq!(ex.handle_input(b"xyz").unwrap(), progress(0, None));
            let fed = ex.feed(b"xyz", |e, _| Err(format!("{e:?} after End")));
            assert_eq!(fed.unwrap(), Fed::End { unread: 3 });
            assert_eq!(ex.handle_eof(), Ok(None));
        }
        Outcome {
            head,
            body,
            ended,
            error,
            leftover,
            framing: ex.framing(),
            close_reason: ex.close_reason(),
            received_any: ex.received_any(),
        }
    }

    /// The shotgun: `wire` whole, byte by byte, and split at every point must all give the
    /// same outcome, which is returned.
    fn shotgun(wire: &[u8], case: Case) -> Outcome {
        split_everywhere(wire, |pieces| run(pieces, case))
    }

    fn status(o: &Outcome) -> u16 {
        o.head.as_ref().expect("a head").status
    }

    fn error(wire: &[u8], case: Case) -> ProtoError {
        let o = shotgun(wire, case);
        assert!(o.head.is_none() || !o.ended);
        o.error.expect("an error")
    }

    #[test]
    fn length_body() {
        let o = shotgun(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            Case::default(),
        );
        assert_eq!(status(&o), 200);
        assert_eq!((&o.body[..], o.ended, o.error), (&b"hello"[..], true, None));
        assert_eq!(o.framing, Some(Framing::Length(5)));
        assert_eq!(o.close_reason, None);
        assert_eq!(o.leftover, 0);
        // EOF after End changes nothing.
        assert_eq!(
            shotgun(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", eof()),
            o
        );
    }

    #[test]
    fn length_end_needs_no_more_input() {
        let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let p = ex.handle_input(input).unwrap();
        assert_eq!(p.consumed, input.len() - 3);
        assert!(matches!(p.event, Some(Event::Head(_))));
        assert_eq!(ex.framing(), Some(Framing::Length(3)));
        assert_eq!(
            ex.handle_input(&input[p.consumed..]).unwrap(),
            progress(3, Some(Event::Body(b"abc")))
        );
        assert!(!ex.is_done());
        assert_eq!(ex.handle_input(&[]).unwrap(), progress(0, Some(Event::End)));
        assert!(ex.is_done());
    }

    #[test]
    fn bodiless_response_ends_on_empty_input_after_head() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
        ] {
            let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
            let p = ex.handle_input(wire).unwrap();
            assert_eq!(p.consumed, wire.len());
            assert!(matches!(p.event, Some(Event::Head(_))));
            assert_eq!(ex.handle_input(&[]).unwrap(), progress(0, Some(Event::End)));
            assert_eq!(ex.close_reason(), None);
        }
    }

    #[test]
    fn head_204_304_have_no_body() {
        for (wire, info) in [
            (
                &b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc"[..],
                RequestInfo::default(),
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\nabc",
                RequestInfo::default(),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
                RequestInfo {
                    head_request: true,
                    ..RequestInfo::default()
                },
            ),
        ] {
            let o = shotgun(
                wire,
                Case {
                    info,
                    ..Case::default()
                },
            );
            assert_eq!((o.framing, o.ended), (Some(Framing::NoBody), true));
            assert!(o.body.is_empty());
            // The bytes that follow are not this response's body.
            assert_eq!(o.leftover, 3);
        }
    }

    #[test]
    fn bytes_after_end_not_consumed() {
        let o = shotgun(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200",
            Case::default(),
        );
        assert_eq!((&o.body[..], o.leftover), (&b"hi"[..], 12));
        let o = shotgun(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nextra",
            Case::default(),
        );
        assert_eq!((&o.body[..], o.leftover), (&b"hi"[..], 5));
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     4;name=value\r\nWiki\r\n5 ; a=\"b\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n\
                     0;end\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Sum: 1\r\n\r\n";
        let o = shotgun(wire, Case::default());
        assert_eq!(o.body, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(
            (o.ended, o.framing, o.close_reason),
            (true, Some(Framing::Chunked), None)
        );
        // Trailers are skipped: the head keeps only the head's fields.
        assert_eq!(o.head.unwrap().headers.len(), 1);
    }

    #[test]
    fn chunked_errors_reach_the_caller() {
        let te = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let small = Case {
            limits: Limits {
                max_chunk_line_bytes: 8,
                max_trailer_bytes: 8,
                ..Limits::default()
            },
            ..Case::default()
        };
        for (body, want) in [
            ("+5\r\nhello\r\n0\r\n\r\n", ProtoError::InvalidChunkSize),
            ("\r\n\r\n", ProtoError::InvalidChunkSize),
            ("10000000000000000\r\n", ProtoError::ChunkSizeOverflow),
            ("5;abcde\r\nhello\r\n", ProtoError::ChunkLineTooLong),
            ("1\r\naXY", ProtoError::InvalidChunkEnd),
            ("0\r\nX: 123456\r\n\r\n", ProtoError::TrailersTooLarge),
        ] {
            let case = if matches!(want, ProtoError::ChunkSizeOverflow) {
                Case::default()
            } else {
                small
            };
            let o = shotgun(format!("{te}{body}").as_bytes(), case);
            assert_eq!(o.error, Some(want), "{body:?}");
            assert_eq!(o.close_reason, Some(CloseReason::Unfinished));
        }
        // Within the limits the same shapes are fine.
        let o = shotgun(
            format!("{te}5;abcd\r\nhello\r\n0\r\nX: 123\r\n\r\n").as_bytes(),
            small,
        );
        assert_eq!((&o.body[..], o.ended), (&b"hello"[..], true));
    }

    #[test]
    fn close_delimited_body_ends_at_eof() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it";
        let o = shotgun(wire, eof());
        assert_eq!(
            (&o.body[..], o.ended, o.error),
            (&b"all of it"[..], true, None)
        );
        assert_eq!(o.framing, Some(Framing::CloseDelimited));
        assert_eq!(o.close_reason, Some(CloseReason::CloseDelimited));
        // Without EOF it is not over.
        let o = shotgun(wire, Case::default());
        assert_eq!(
            (o.ended, o.close_reason),
            (false, Some(CloseReason::Unfinished))
        );
        // An empty close-delimited body.
        let o = shotgun(b"HTTP/1.1 200 OK\r\n\r\n", eof());
        assert_eq!((o.body.len(), o.ended), (0, true));
    }

    #[test]
    fn te_not_ending_in_chunked_is_close_delimited() {
        let o = shotgun(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n3\r\nabc",
            eof(),
        );
        assert_eq!(o.framing, Some(Framing::CloseDelimited));
        assert_eq!(o.body, b"3\r\nabc");
        assert_eq!(o.close_reason, Some(CloseReason::CloseDelimited));
    }

    #[test]
    fn te_with_content_length_is_chunked_and_never_reused() {
        let o = shotgun(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n\
              2\r\nhi\r\n0\r\n\r\n",
            Case::default(),
        );
        assert_eq!(
            (&o.body[..], o.ended, o.framing),
            (&b"hi"[..], true, Some(Framing::Chunked))
        );
        assert_eq!(
            o.close_reason,
            Some(CloseReason::TransferEncodingWithLength)
        );
    }

    #[test]
    fn http10_closes_unless_keep_alive() {
        let o = shotgun(
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
            Case::default(),
        );
        assert_eq!(
            (&o.body[..], o.close_reason),
            (&b"hi"[..], Some(CloseReason::Http10))
        );
        let o = shotgun(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi",
            Case::default(),
        );
        assert_eq!((&o.body[..], o.close_reason), (&b"hi"[..], None));
        // keep-alive cannot save a close-delimited body.
        let o = shotgun(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nhi",
            eof(),
        );
        assert_eq!(
            (&o.body[..], o.close_reason),
            (&b"hi"[..], Some(CloseReason::CloseDelimited))
        );
    }

    #[test]
    fn http10_with_transfer_encoding_is_refused() {
        let o = shotgun(
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            eof(),
        );
        assert_eq!((o.head, o.error), (None, Some(ProtoError::MalformedHead)));
    }

    #[test]
    fn connection_close_either_side() {
        let wire = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            shotgun(wire, Case::default()).close_reason,
            Some(CloseReason::ResponseClose)
        );
        let info = RequestInfo {
            connection_close: true,
            ..RequestInfo::default()
        };
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let o = shotgun(
            wire,
            Case {
                info,
                ..Case::default()
            },
        );
        assert_eq!(o.close_reason, Some(CloseReason::RequestClose));
    }

    #[test]
    fn close_reason_precedence() {
        let info = RequestInfo {
            connection_close: true,
            ..RequestInfo::default()
        };
        let both = Case {
            info,
            sent: 0,
            ..Case::default()
        };
        let wire = b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            shotgun(wire, both).close_reason,
            Some(CloseReason::RequestNotSent)
        );
        let o = shotgun(
            wire,
            Case {
                info,
                ..Case::default()
            },
        );
        assert_eq!(o.close_reason, Some(CloseReason::RequestClose));
        let o = shotgun(wire, Case::default());
        assert_eq!(o.close_reason, Some(CloseReason::ResponseClose));
        let wire = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
        assert_eq!(
            shotgun(wire, both).close_reason,
            Some(CloseReason::Unfinished)
        );
        assert_eq!(
            shotgun(wire, Case { eof: true, ..both }).close_reason,
            Some(CloseReason::CloseDelimited)
        );
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: x\r\nContent-Length: 1\r\n\r\n";
        assert_eq!(
            shotgun(wire, Case { eof: true, ..both }).close_reason,
            Some(CloseReason::TransferEncodingWithLength)
        );
    }

    #[test]
    fn close_reason_strings_are_lowercase_and_distinct() {
        let all = [
            CloseReason::RequestClose,
            CloseReason::ResponseClose,
            CloseReason::Http10,
            CloseReason::CloseDelimited,
            CloseReason::TransferEncodingWithLength,
            CloseReason::RequestNotSent,
            CloseReason::Unfinished,
        ];
        let set: std::collections::HashSet<_> = all.iter().map(CloseReason::as_str).collect();
        assert_eq!(set.len(), all.len());
        assert!(set.iter().all(|s| *s == s.to_lowercase()));
    }

    #[test]
    fn continue_100_then_200() {
        let o = shotgun(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            Case::default(),
        );
        assert_eq!((status(&o), &o.body[..], o.ended), (200, &b"ok"[..], true));
    }

    #[test]
    fn multiple_1xx_skipped() {
        let o = shotgun(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n\
              HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
              HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            Case::default(),
        );
        assert_eq!(status(&o), 404);
        assert!(
            o.head.unwrap().headers.get("link").is_none(),
            "1xx fields dropped"
        );
        assert!(o.ended);
        // A 1xx's Connection: close does not speak for the final response.
        let o = shotgun(
            b"HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            Case::default(),
        );
        assert_eq!((o.ended, o.close_reason), (true, None));
    }

    #[test]
    fn switching_protocols_rejected() {
        let wire = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(error(wire, Case::default()), ProtoError::UnexpectedUpgrade);
    }

    #[test]
    fn obs_fold_and_non_utf8_reach_the_head() {
        let o = shotgun(
            b"HTTP/1.1 200 D\xe9j\xe0 vu\r\nX-Folded: a\r\n b\r\nX-Latin: caf\xe9\r\nContent-Length: 0\r\n\r\n",
            Case::default(),
        );
        let head = o.head.unwrap();
        assert_eq!(head.reason, "Déjà vu");
        assert_eq!(head.headers.get("x-folded"), Some("a b"));
        assert_eq!(head.headers.get("x-latin"), Some("café"));
    }

    #[test]
    fn head_limits() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let limits = |max_head_bytes, max_headers| Case {
            limits: Limits {
                max_head_bytes,
                max_headers,
                ..Limits::default()
            },
            ..Case::default()
        };
        assert!(shotgun(wire, limits(wire.len(), 1)).ended);
        assert_eq!(
            error(wire, limits(wire.len() - 1, 1)),
            ProtoError::HeadTooLarge
        );
        assert_eq!(
            error(wire, limits(wire.len(), 0)),
            ProtoError::TooManyHeaders
        );
        // The limit is per head: a 1xx does not eat into the final head's budget.
        let two = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(shotgun(two, limits(wire.len(), 1)).ended);
    }

    #[test]
    fn invalid_framing_fields_fail_before_head() {
        for (wire, want) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"[..],
                ProtoError::InvalidContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
                ProtoError::ConflictingContentLength,
            ),
        ] {
            let o = shotgun(wire, eof());
            assert_eq!((o.head, o.error, o.framing), (None, Some(want), None));
        }
    }

    #[test]
    fn malformed_and_version_errors() {
        assert_eq!(
            error(b"HTTP/2 200 OK\r\n\r\n", eof()),
            ProtoError::UnsupportedVersion
        );
        assert_eq!(error(b"<html>\r\n\r\n", eof()), ProtoError::MalformedHead);
        assert_eq!(
            error(b"HTTP/1.1 200 OK\r\nA B: c\r\n\r\n", eof()),
            ProtoError::MalformedHead
        );
        assert_eq!(
            error(b"HTTP/1.1 000 Zero\r\n\r\n", eof()),
            ProtoError::InvalidStatus
        );
    }

    #[test]
    fn no_response() {
        let o = shotgun(b"", eof());
        assert_eq!(
            (o.error, o.received_any),
            (Some(ProtoError::NoResponse), false)
        );
        // Empty reads are not response bytes.
        let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
        assert_eq!(ex.handle_input(&[]).unwrap(), progress(0, None));
        assert!(!ex.received_any());
        assert_eq!(ex.handle_eof(), Err(ProtoError::NoResponse));
    }

    #[test]
    fn truncated_head() {
        let o = shotgun(b"HTTP/1.1 200 OK\r\nContent-Le", eof());
        assert_eq!(
            (o.error, o.received_any),
            (Some(ProtoError::TruncatedHead), true)
        );
        assert_eq!(error(b"\r\n", eof()), ProtoError::TruncatedHead);
        // A 1xx then nothing: bytes arrived, the final head did not.
        let o = shotgun(b"HTTP/1.1 100 Continue\r\n\r\n", eof());
        assert_eq!(
            (o.error, o.received_any),
            (Some(ProtoError::TruncatedHead), true)
        );
    }

    #[test]
    fn truncated_body() {
        let te = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        for wire in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhell".to_string(),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_string(),
            te.to_string(),
            format!("{te}5\r\nhello\r\n"),
            format!("{te}5\r\nhel"),
            format!("{te}5\r\nhello\r\n0\r\n"),
            format!("{te}5\r\nhello\r\n0\r\nX: y\r\n"),
        ] {
            let o = shotgun(wire.as_bytes(), eof());
            assert!(o.head.is_some(), "{wire:?}");
            assert_eq!(
                (o.error, o.ended),
                (Some(ProtoError::TruncatedBody), false),
                "{wire:?}"
            );
        }
    }

    #[test]
    fn eof_delivers_a_pending_end() {
        // The driver did not collect End after the last body byte; EOF still ends cleanly.
        let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
        let p = ex.handle_input(wire).unwrap();
        assert_eq!(
            ex.handle_input(&wire[p.consumed..]).unwrap().event,
            Some(Event::Body(b"x"))
        );
        assert_eq!(ex.handle_eof(), Ok(Some(Event::End)));
        assert_eq!(ex.handle_eof(), Ok(None));
        assert!(ex.is_done());
    }

    #[test]
    fn transmit_progress() {
        let mut ex = Exchange::new(REQUEST.to_vec(), RequestInfo::default(), Limits::default());
        assert_eq!(ex.poll_transmit(), REQUEST);
        ex.handle_transmitted(0);
        ex.handle_transmitted(4);
        assert_eq!(ex.poll_transmit(), &REQUEST[4..]);
        // Reading may overlap writing.
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            ex.handle_input(wire).unwrap().event,
            Some(Event::Head(_))
        ));
        ex.handle_transmitted(REQUEST.len() - 4);
        assert!(ex.poll_transmit().is_empty());
        assert_eq!(ex.handle_input(&[]).unwrap().event, Some(Event::End));
        assert_eq!(ex.close_reason(), None);
    }

    #[test]
    #[should_panic(expected = "handle_transmitted")]
    fn transmitting_more_than_given_panics() {
        let mut ex = Exchange::new(b"abc".to_vec(), RequestInfo::default(), Limits::default());
        ex.handle_transmitted(4);
    }

    #[test]
    fn response_before_request_sent_forbids_reuse() {
        let wire = b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n";
        let o = shotgun(
            wire,
            Case {
                sent: 3,
                ..Case::default()
            },
        );
        assert_eq!(
            (o.ended, o.close_reason),
            (true, Some(CloseReason::RequestNotSent))
        );
        // Finishing the write after End does not make the connection reusable.
        let mut ex = Exchange::new(REQUEST.to_vec(), RequestInfo::default(), Limits::default());
        ex.handle_input(wire).unwrap();
        assert_eq!(ex.handle_input(&[]).unwrap().event, Some(Event::End));
        ex.handle_transmitted(REQUEST.len());
        assert_eq!(ex.close_reason(), Some(CloseReason::RequestNotSent));
    }

    #[test]
    fn close_reason_unfinished_until_end() {
        let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
        assert_eq!(ex.close_reason(), Some(CloseReason::Unfinished));
        assert_eq!(ex.framing(), None);
        ex.handle_input(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n")
            .unwrap();
        assert_eq!(ex.framing(), Some(Framing::Length(1)));
        assert_eq!(ex.close_reason(), Some(CloseReason::Unfinished));
    }

    #[test]
    fn huge_length_body_streams() {
        let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n";
        assert_eq!(ex.handle_input(head).unwrap().consumed, head.len());
        let chunk = [0u8; 4096];
        for _ in 0..3 {
            assert_eq!(
                ex.handle_input(&chunk).unwrap(),
                progress(4096, Some(Event::Body(&chunk)))
            );
        }
        assert_eq!(ex.handle_eof(), Err(ProtoError::TruncatedBody));
    }

    #[test]
    fn mutated_responses_agree_however_split() {
        // Deterministic xorshift: the same inputs on every run, no dependency.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let seeds: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nX: a\r\n b\r\n\r\nrest",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ];
        let alphabet = b"\r\n :;0aF+-\t\x80HTP/1.";
        let small = Case {
            limits: Limits {
                max_head_bytes: 80,
                max_headers: 3,
                max_chunk_line_bytes: 8,
                max_trailer_bytes: 8,
            },
            eof: true,
            ..Case::default()
        };
        for _ in 0..150 {
            let mut wire = seeds[rand(seeds.len())].to_vec();
            for _ in 0..1 + rand(3) {
                let at = rand(wire.len() + 1);
                match rand(3) {
                    0 if at < wire.len() => {
                        wire.remove(at);
                    }
                    1 if at < wire.len() => wire[at] = alphabet[rand(alphabet.len())],
                    _ => wire.insert(at, alphabet[rand(alphabet.len())]),
                }
            }
            let o = shotgun(&wire, small);
            // Every run ends one way or the other once EOF is seen.
            assert!(
                o.ended != o.error.is_some(),
                "{:?}",
                String::from_utf8_lossy(&wire)
            );
        }
    }

    /// Events as text, for the `feed` tests.
    fn events(ex: &mut Exchange, input: &[u8]) -> (Result<Fed, FeedError<String>>, Vec<String>) {
        let mut seen = Vec::new();
        let fed = ex.feed(input, |event, framing| {
            seen.push(format!("{event:?} {framing:?}"));
            Ok(())
        });
        (fed, seen)
    }

    #[test]
    fn feed_ends_mid_input_and_says_what_is_left() {
        let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200";
        let (fed, seen) = events(&mut ex, wire);
        assert_eq!(fed.unwrap(), Fed::End { unread: 12 });
        assert_eq!(seen.len(), 3);
        assert!(seen[0].starts_with("Head(") && seen[0].ends_with(" Some(Length(2))"));
        assert_eq!(
            seen[1..],
            ["Body([104, 105]) Some(Length(2))", "End Some(Length(2))"]
        );
        // A bodiless response ends in the read that completes its head, with no more input.
        let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
        let (fed, seen) = events(&mut ex, b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((fed.unwrap(), seen.len()), (Fed::End { unread: 0 }, 2));
        // Close-delimited bodies never end inside `feed`.
        let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
        let (fed, _) = events(&mut ex, b"HTTP/1.1 200 OK\r\n\r\nabc");
        assert_eq!(fed.unwrap(), Fed::NeedMore);
        let (fed, seen) = events(&mut ex, b"");
        assert_eq!((fed.unwrap(), seen.len()), (Fed::NeedMore, 0));
        assert_eq!(ex.handle_eof(), Ok(Some(Event::End)));
    }

    #[test]
    fn feed_stops_at_the_first_handler_error() {
        let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let mut calls = 0;
        let fed = ex.feed(wire, |event, _| {
            calls += 1;
            match event {
                Event::Head(h) if h.status == 200 => Err("refused"),
                _ => Ok(()),
            }
        });
        assert!(matches!(fed, Err(FeedError::Handler("refused"))));
        assert_eq!(calls, 1, "no event after the refused one");
        assert!(!ex.is_done());
    }

    #[test]
    fn feed_returns_the_proto_error() {
        let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
        let (fed, seen) = events(&mut ex, b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
        assert!(matches!(
            fed,
            Err(FeedError::Proto(ProtoError::InvalidContentLength))
        ));
        assert!(seen.is_empty());
        // After a head, a body error arrives after the events before it.
        let mut ex = Exchange::new(Vec::new(), RequestInfo::default(), Limits::default());
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX";
        let (fed, seen) = events(&mut ex, wire);
        let err = fed.unwrap_err();
        assert!(matches!(err, FeedError::Proto(ProtoError::InvalidChunkEnd)));
        assert_eq!(seen.len(), 2);
        // Displayed as the inner error, which is no source of itself.
        assert_eq!(err.to_string(), ProtoError::InvalidChunkEnd.to_string());
        let err: FeedError<std::io::Error> = FeedError::Proto(ProtoError::InvalidChunkEnd);
        assert!(std::error::Error::source(&err).is_none());
    }
}
