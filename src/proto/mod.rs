//! Sans-IO HTTP/1.1 for a client: request encoding, response head parsing, body framing
//! and decoding.
//!
//! This module owns the wire format and nothing else. It must never touch a socket, a clock,
//! mio or rustls: bytes go in, events come out, so every rule here is unit-tested with byte
//! slices split at every point, and fuzzed.
//!
//! The driver's side of the contract is [`Exchange`]:
//!
//! ```text
//!   Exchange::new(request bytes, RequestInfo, Limits)
//!        │
//!        ├── poll_transmit() / handle_transmitted(n)      bytes to write, any time
//!        │
//!        ├── feed(read, |event, framing| ..) -> Fed       once per read
//!        │        Event::Head(ResponseHead)   once (1xx heads are skipped)
//!        │        Event::Body(&[u8])          zero or more, slices of the read
//!        │        Event::End                  once
//!        │     Fed::NeedMore                  read used up, feed the next one
//!        │     Fed::End { unread }            response complete; `unread` bytes follow it
//!        │     Err(FeedError::Proto(_))       the peer's fault, final
//!        │     Err(FeedError::Handler(_))     the closure's error, feeding stopped
//!        │        (handle_input(bytes) -> Progress { consumed, event } is one step of it)
//!        │
//!        ├── handle_eof() -> Option<Event::End> or Err(truncated ...)
//!        │
//!        └── close_reason(): None when the connection may carry another request
//! ```
//!
//! It imports nothing from the rest of the crate (it could be a crate of its own):
//! [`Headers`] and [`Limits`] live here too.
//!
//! # Examples
//! A driver's read loop, fed literal wire bytes: an interim `100 Continue`, then a chunked
//! response, arriving in two reads that split the body mid-chunk.
//! ```
//! use parafetch::proto::{encode_request, Event, Exchange, Fed, Framing, Headers, Limits, RequestInfo};
//!
//! let url = url::Url::parse("http://example.com/upload").unwrap();
//! let mut request = Vec::new();
//! encode_request(&mut request, "PUT", &url, &Headers::new(), Some(2)).unwrap();
//! request.extend_from_slice(b"hi");
//! let mut ex = Exchange::new(request, RequestInfo::default(), Limits::default());
//! let n = ex.poll_transmit().len(); // pretend the socket took it all
//! ex.handle_transmitted(n);
//!
//! let reads: [&[u8]; 2] = [
//!     b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n\
//!       Transfer-Encoding: chunked\r\n\r\n5\r\nhel",
//!     b"lo\r\n0\r\n\r\n",
//! ];
//! let (mut status, mut body) = (0, Vec::new());
//! let mut fed = Vec::new();
//! for read in reads {
//!     let result = ex.feed(read, |event, framing| {
//!         assert_eq!(framing, Some(Framing::Chunked));
//!         match event {
//!             Event::Head(head) => status = head.status,
//!             Event::Body(bytes) => body.extend_from_slice(bytes),
//!             _ => {} // End: `feed` says so too
//!         }
//!         Ok::<_, std::convert::Infallible>(())
//!     });
//!     fed.push(result.unwrap());
//! }
//! assert_eq!(fed, [Fed::NeedMore, Fed::End { unread: 0 }]);
//! assert_eq!((status, &body[..]), (201, &b"hello"[..]));
//! assert_eq!(ex.close_reason(), None); // the connection can carry the next request
//! ```

mod chunked;
// `pub(crate)` only because the driver names `decode::STEP` (now `ContentDecoder::STEP`) and
// the engine `request::validate`; outside the crate these modules are private too.
mod decode;
mod error;
mod exchange;
mod framing;
mod head;
mod headers;
mod limits;
mod request;
mod socks;
mod testing;
mod tunnel;

pub use decode::ContentDecoder;
pub use error::ProtoError;
pub use exchange::{CloseReason, Event, Exchange, Fed, FeedError, Progress, RequestInfo};
pub use framing::Framing;
pub use head::{HttpVersion, ResponseHead};
pub use headers::Headers;
pub use limits::Limits;
/// Checks a method and header fields before anything is queued (the engine's `prepare`).
pub(crate) use request::validate;
pub use request::{encode_proxy_request, encode_request};
pub use socks::{SocksDone, SocksError, SocksHandshake, SocksTarget};
pub use tunnel::{ConnectReader, ConnectReply, encode_connect};

/// The parts below the public surface that the fuzz targets, benchmarks and property tests
/// drive directly. Not API: anything here may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use super::chunked::ChunkedDecoder;
    pub use super::framing::response_framing;
    pub use super::head::{HeadReader, STACK_HEADERS};
    pub use super::testing::{THREE_WAY_MAX, cut_at, split_everywhere, split_everywhere_and};
}
