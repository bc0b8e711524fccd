//! Sans-IO HTTP/1.1 for a client: request encoding, response head parsing, body framing
//! and decoding; and the proxy handshakes that may come first (HTTP CONNECT, SOCKS4a,
//! SOCKS5).
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
//! A proxy handshake is one more phase between connect and TLS, with the same contract:
//!
//! ```text
//!   HTTP CONNECT (RFC 9110 §9.3.6)
//!     encode_connect(out, host, port, headers)        the request head, written first
//!     ConnectReader::new(Limits)
//!        ├── read(bytes) -> (consumed, Option<ConnectReply>)   1xx skipped; bytes after
//!        │                                              the head are the tunnel's
//!        └── read_eof() -> ProtoError                  closed before the reply
//!     ConnectReply: head, is_success() (any 2xx), has_body() (refusal body left unread)
//!
//!   SOCKS4a / SOCKS5 (RFC 1928, RFC 1929)
//!     SocksHandshake::v4a(SocksTarget, user_id) / ::v5(SocksTarget, Option<(user, pass)>)
//!        ├── poll_transmit() / handle_transmitted(n)       bytes to write, stage by stage
//!        ├── handle_input(bytes) -> (consumed, Option<SocksDone>)   only its own bytes
//!        └── handle_eof() -> SocksError                    closed mid-handshake
//!     SocksError: the proxy's refusals by name, its garbage, or the caller's bad target
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
//!
//! A CONNECT through an HTTP proxy: the proxy's reply and the origin's first TLS bytes
//! arrive in one read; the reader takes the head only.
//! ```
//! use parafetch::proto::{encode_connect, ConnectReader, Headers, Limits};
//!
//! let mut request = Vec::new();
//! encode_connect(&mut request, "example.com", 443, &Headers::new()).unwrap();
//! assert_eq!(request, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
//!
//! let read: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03\x00\x7a";
//! let mut reader = ConnectReader::new(&Limits::default());
//! let (consumed, reply) = reader.read(read).unwrap();
//! assert!(reply.unwrap().is_success());
//! let tunnel = &read[consumed..]; // not consumed: hand these to TLS
//! assert_eq!(tunnel, b"\x16\x03\x03\x00\x7a");
//! ```
//!
//! A SOCKS5 handshake without authentication, with the proxy's literal bytes arriving in
//! awkward pieces:
//! ```
//! use parafetch::proto::{SocksHandshake, SocksTarget};
//!
//! let target = SocksTarget::Ip("192.0.2.7:443".parse().unwrap());
//! let mut socks = SocksHandshake::v5(target, None).unwrap();
//! let mut sent = Vec::new();
//! let reads: [&[u8]; 3] = [
//!     &[0x05],                                   // VER of the method selection...
//!     &[0x00, 0x05, 0x00, 0x00],                 // ...METHOD 0 (no auth); reply VER REP RSV
//!     &[0x01, 192, 0, 2, 1, 0xc0, 0x00, b'H'],   // ATYP 1, BND 192.0.2.1:49152; tunnel byte
//! ];
//! let mut done = None;
//! for read in reads {
//!     sent.extend_from_slice(socks.poll_transmit()); // pretend the socket took it all
//!     socks.handle_transmitted(socks.poll_transmit().len());
//!     let (consumed, result) = socks.handle_input(read).unwrap();
//!     if result.is_some() {
//!         assert_eq!(&read[consumed..], b"H"); // the tunnel's first byte, not consumed
//!         done = result;
//!     }
//! }
//! assert_eq!(sent, [5, 1, 0, /* CONNECT */ 5, 1, 0, 1, 192, 0, 2, 7, 0x01, 0xbb]);
//! assert_eq!(done.unwrap().bound, Some("192.0.2.1:49152".parse().unwrap()));
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
