//! The vocabulary shared by the engine and the driver: a [`Task`] (one accepted request on
//! its way through attempts, redirects and retries), its per-request [`Knobs`], and the
//! [`Origin`] connections are pooled by.
//!
//! A leaf: it imports neither the engine nor the driver, so both can speak it without
//! importing each other.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;

use crate::proto::Headers;
use crate::proxy::{Proxy, ProxyKind};

/// A body sink: receives each piece of the (decoded) body as it arrives.
pub(crate) type Sink = Box<dyn FnMut(&[u8]) -> io::Result<()> + Send>;

/// Why a task runs.
pub(crate) enum Purpose {
    /// The caller's request.
    Caller,
    /// The engine's own fetch of `origin`'s robots.txt for the product token `agent`;
    /// the body collects in `body`.
    Robots {
        origin: String,
        agent: String,
        body: Arc<Mutex<Vec<u8>>>,
        /// The status of a head that arrived before a failure (the collector stops a
        /// long body with an error; the status must survive it).
        status: Option<u16>,
    },
}

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
    /// Keep the request's and response's bytes (for WARC).
    pub capture_wire: bool,
    /// ...with credentials and cookies as sent rather than redacted.
    pub capture_secrets: bool,
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
    /// The proxy this request goes through (`None`: directly).
    pub proxy: Option<Arc<Proxy>>,
    /// The request chose its proxy itself: redirects keep it as it is.
    pub proxy_fixed: bool,
    /// `http://` URLs through an HTTP proxy go through a CONNECT tunnel too, rather than
    /// being forwarded (curl's `-p`).
    pub tunnel: bool,
    pub purpose: Purpose,
    /// The cookie jar this request learns from (and, with `jar_sends`, sends from).
    #[cfg_attr(not(feature = "cookies"), allow(dead_code))]
    pub jar: Option<String>,
    /// The `Cookie` header is the jar's, set again for each attempt (the caller set none).
    #[cfg_attr(not(feature = "cookies"), allow(dead_code))]
    pub jar_sends: bool,
}

/// Where a connection goes: connections are pooled and reused per origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

/// What a connection is for, and so what the pool keys it by: an origin, and the proxy it
/// goes through. A pooled connection through one proxy never serves a request meant for
/// another (a rotation stays a rotation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Route {
    pub origin: Origin,
    pub proxy: Option<Arc<Proxy>>,
    /// The proxy forwards requests in absolute form (no tunnel).
    forwarded: bool,
}

impl Route {
    /// The route of a task. Requests an HTTP proxy forwards (`http://` URLs in absolute
    /// form) share the proxy's connections whatever their origin, as in curl: their route's
    /// origin is left blank.
    pub(crate) fn of(task: &Task) -> Route {
        let origin = Origin::of(&task.url);
        let forwarded = !task.tunnel && forwarded(&origin, task.proxy.as_deref());
        Route {
            origin: if forwarded {
                Origin {
                    https: false,
                    host: String::new(),
                    port: 0,
                }
            } else {
                origin
            },
            proxy: task.proxy.clone(),
            forwarded,
        }
    }

    /// A route without a proxy.
    #[cfg(test)]
    pub(crate) fn direct(origin: Origin) -> Route {
        Route {
            origin,
            proxy: None,
            forwarded: false,
        }
    }

    /// Where the TCP connection goes: the proxy, or the origin itself.
    pub(crate) fn first_hop(&self) -> (&str, u16) {
        match &self.proxy {
            Some(p) => (p.host(), p.port()),
            None => (&self.origin.host, self.origin.port),
        }
    }

    /// Whether the origin's name must be resolved here before the proxy is asked for it
    /// (SOCKS5 without the `h`: the proxy is given an address).
    pub(crate) fn resolves_target_here(&self) -> bool {
        let literal = self
            .origin
            .host
            .trim_start_matches('[')
            .trim_end_matches(']');
        self.proxy
            .as_deref()
            .is_some_and(|p| p.kind() == ProxyKind::Socks5)
            && literal.parse::<std::net::IpAddr>().is_err()
    }

    /// Whether requests go to an HTTP proxy in absolute form (an `http://` URL through a
    /// plain HTTP proxy): the proxy, not the origin, reads the request head.
    pub(crate) fn forwards(&self) -> bool {
        self.forwarded
    }
}

/// Whether a request to `origin` through `proxy` is forwarded in absolute form: an `http://`
/// URL through an HTTP proxy (spoken to in plain text or over TLS).
fn forwarded(origin: &Origin, proxy: Option<&Proxy>) -> bool {
    !origin.https && proxy.is_some_and(|p| matches!(p.kind(), ProxyKind::Http | ProxyKind::Https))
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
