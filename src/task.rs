//! The vocabulary shared by the engine and the driver: a [`Task`] (one accepted request on
//! its way through attempts, redirects and retries), its per-request [`Knobs`], and the
//! [`Origin`] connections are pooled by.
//!
//! A leaf: it imports neither the engine nor the driver, so both can speak it without
//! importing each other.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::proto::Headers;

/// A body sink: receives each piece of the (decoded) body as it arrives.
pub(crate) type Sink = Box<dyn FnMut(&[u8]) -> io::Result<()>>;

/// The per-request knobs, after a request's overrides were applied to the fetcher's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Knobs {
    pub timeout: Option<Duration>,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_body: u64,
    pub follow_redirects: bool,
    pub max_redirects: u32,
    pub decompress: bool,
    pub retries: u32,
}

/// One logical request: moved into the driver for an attempt, handed back when it ends.
pub(crate) struct Task {
    /// The fetcher's handle for the caller's callback and cookie.
    pub id: usize,
    pub method: String,
    pub url: Url,
    /// Every field to send, defaults already merged.
    pub headers: Headers,
    pub body: Option<Arc<[u8]>>,
    pub knobs: Knobs,
    pub sink: Option<Sink>,
    /// Redirects followed so far.
    pub redirects: u32,
    /// Attempts made at the current URL (a replay after a stale pooled connection is not
    /// counted: the request never reached the server).
    pub attempts: u32,
    /// Body bytes already went to the sink: a retry would hand it a second copy.
    pub sink_used: bool,
    /// This attempt is the replay after a stale pooled connection; it never replays again.
    pub replayed: bool,
}

/// Where a connection goes: connections are pooled and reused per origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    pub(crate) fn of(url: &Url) -> Origin {
        Origin {
            https: url.scheme() == "https",
            host: url.host_str().unwrap_or("").to_ascii_lowercase(),
            port: url.port_or_known_default().unwrap_or(80),
        }
    }
}
