//! # parafetch
//!
//! Fetch many URLs at once from **one thread**: a single `mio` poll loop drives a slab of
//! non-blocking connections, each a small state machine, with admission control capping how
//! many requests are in flight. The Rust heir of ParallelCurl: "start this URL, call me back
//! when it's done, never more than N at once". No async runtime, no libcurl, no thread per
//! request.
//!
//! ```no_run
//! use parafetch::{Done, Fetcher, Queue};
//!
//! fn on_done(done: Done<usize>, _queue: &mut Queue<usize>) {
//!     match done.result {
//!         Ok(resp) => println!("{} {} {}", done.cookie, resp.status, done.url),
//!         Err(e) => println!("{} failed: {} ({})", done.cookie, e, e.kind().as_str()),
//!     }
//! }
//!
//! let mut fetcher = Fetcher::new(10); // at most 10 requests in flight
//! for (i, url) in ["http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b"].iter().enumerate() {
//!     fetcher.start_request(*url, on_done, i)?; // returns at once while there is room
//! }
//! fetcher.finish_all_requests(); // also done on drop
//! # Ok::<(), parafetch::Error>(())
//! ```
//!
//! Or as an iterator: [`fetch_all`]`(urls, 20)` yields `(url, Result<Response, Error>)` as
//! each finishes.
//!
//! ## rustls is part of the public API
//!
//! [`Builder::tls_config`] takes a `rustls::ClientConfig`, so rustls is a public
//! dependency: its types appear in our signatures whether or not we re-export it. We
//! re-export it as [`parafetch::rustls`](crate::rustls) so you build that config with
//! exactly the rustls version parafetch links (a `ClientConfig` from another rustls
//! version is a different type and would not compile). The cost, which we accept: moving
//! to a semver-incompatible rustls release (0.23 → 0.24, say) is a breaking change of
//! parafetch and comes with a parafetch version bump of the same weight. Users who never
//! call `tls_config` are unaffected in practice.
//!
//! Layers (see DESIGN.md): [`proto`] is sans-IO HTTP/1.1 (bytes in, events out); the driver
//! is the mio loop (sockets, timers, pool); the engine decides admission, redirects and
//! retries; [`Fetcher`] is the API. [`robots`] is sans-IO too: robots.txt parsed and matched
//! (RFC 9309), for the fetcher to ask before it fetches. The `warc` module (feature `warc`)
//! writes what was fetched as WARC/1.1 records, the web archives' format. With the `crawl`
//! feature, `crawl` holds the sans-IO pieces of a crawler: links out of streamed HTML, URL
//! normalisation, a compact seen-set, sitemaps and scope.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod budget;
// Sans-IO DNS. Public only so fuzz targets and tests can reach it; not supported API (yet).
#[cfg(feature = "cookies")]
mod cookies;
#[cfg(feature = "crawl")]
pub mod crawl;
#[doc(hidden)]
pub mod dns;
mod driver;
mod engine;
mod error;
mod fetcher;
#[doc(hidden)]
pub mod fuzzing;
mod gate;
mod handle;
mod options;
mod policy;
mod polite;
pub mod proto;
mod proxy;
mod queue;
mod rate;
mod request;
mod response;
pub mod robots;
mod task;
mod tls;
mod unwind;
#[cfg(feature = "warc")]
pub mod warc;

#[cfg(feature = "cookies")]
pub use cookies::{Cookie, CookieJar, MAX_COOKIES, MAX_COOKIES_PER_DOMAIN};
pub use error::{Error, ErrorKind, Phase};
pub use fetcher::{FetchAll, Fetcher, fetch_all};
pub use gate::{DEFAULT_ROBOTS_TTL, DEFAULT_ROBOTS_UNREACHABLE_TTL, ROBOTS_CACHE_MAX};
pub use handle::{Fetching, Handle, Rejected, SubmitError};
pub use options::{
    Builder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BODY,
    DEFAULT_MAX_QUEUED_FOLLOWUPS, DEFAULT_MAX_REDIRECTS, DEFAULT_POOL_IDLE_TIMEOUT,
    DEFAULT_POOL_MAX_IDLE, DEFAULT_POOL_MAX_IDLE_PER_HOST, DEFAULT_RETRY_BACKOFF,
    DEFAULT_THROTTLE_MAX, DEFAULT_THROTTLE_START, DEFAULT_TIMEOUT, MAX_RETRY_AFTER,
};
pub use polite::{MAX_CRAWL_DELAY, MAX_HOST_PAUSE, PoliteStats, PolitenessKey, shard_of};
pub use proto::{Headers, HttpVersion};
pub use proxy::{Proxy, ProxyKind, Rotation};
pub use queue::{Done, Local, Mode, Queue, SendQueue, Sendable};
pub use request::{IntoRequest, Request, redact_url};
pub use response::{Response, Timings, TlsInfo, Wire};
/// The TLS library parafetch uses, at the exact version it links, for
/// [`Builder::tls_config`]. A semver-incompatible rustls upgrade is a breaking change of
/// parafetch (see the crate docs).
pub use rustls;
