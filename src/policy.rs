//! HTTP policy: which methods may be repeated, which statuses are retried or followed, how a
//! redirect's next hop is built, what a request's body length is declared as, and when a
//! pooled connection may carry a request (the stale keep-alive rule).
//!
//! A leaf of pure functions over a [`Task`] and response fields: it never does I/O and
//! never reads the monotonic clock, so the engine (which acts on it) and the driver (which
//! asks it about a response head) both use it without importing each other.
//!
//! # The stale keep-alive rule
//! A server may close an idle keep-alive connection at any moment; a request written into
//! it as it closes gets no response byte, only an EOF or a reset. RFC 9112 §9.3.1.1 leaves
//! recovery to RFC 9110 §9.2.2: a client "SHOULD NOT automatically retry a request with a
//! non-idempotent method unless it has some means to know that the request semantics are
//! actually idempotent, regardless of the method, or some means to detect that the original
//! request was never applied". We cannot know a request written into a dying connection was
//! not applied, so, as Go's net/http does (and unlike curl, which replays any request whose
//! body it still holds):
//! - an idempotent request (GET, HEAD, PUT, DELETE, OPTIONS, TRACE), or one carrying an
//!   `Idempotency-Key` field, is replayed once on a new connection, not counted as an
//!   attempt ([`may_replay`]);
//! - any other request is not replayed; instead it avoids the race: it only takes a pooled
//!   connection that idled less than [`NON_IDEMPOTENT_MAX_IDLE`] ([`reuse_for`]), well under
//!   the shortest keep-alive timeouts servers ship with (gunicorn 2 s, Apache 5 s);
//! - every pooled connection expires before the `Keep-Alive: timeout=N` its server announced
//!   ([`pooled_lifetime`]), so a server with a short timeout (Apache sends it) is never
//!   raced at all.

use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind, Phase};
use crate::proto::Headers;
use crate::task::{Origin, Task};

/// The longest a pooled connection may have idled and still carry a request that may not
/// be replayed (see the module docs).
pub(crate) const NON_IDEMPOTENT_MAX_IDLE: Duration = Duration::from_secs(1);

/// RFC 9110 §9.2.2: methods a client may repeat without asking.
pub(crate) fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

/// Whether a request's semantics allow sending it again: an idempotent method, or an
/// `Idempotency-Key` field (draft-ietf-httpapi-idempotency-key-header) saying the server
/// deduplicates it.
fn is_repeatable(task: &Task) -> bool {
    is_idempotent(&task.method) || task.headers.contains("idempotency-key")
}

/// Which connection an attempt may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// Any pooled connection to the origin, else a new one.
    Any,
    /// Only a pooled connection that idled less than this, else a new one.
    IdledUnder(Duration),
    /// A new connection.
    Fresh,
}

/// Which connection the next attempt of `task` may use (see the module docs).
pub(crate) fn reuse_for(task: &Task) -> Reuse {
    if task.replayed {
        Reuse::Fresh
    } else if is_repeatable(task) {
        Reuse::Any
    } else {
        Reuse::IdledUnder(NON_IDEMPOTENT_MAX_IDLE)
    }
}

/// Whether a failure is the stale keep-alive race: a pooled connection that ended (EOF,
/// reset, broken pipe) before any response byte came back.
pub(crate) fn is_stale(reused: Option<bool>, received_any: bool, err: &Error) -> bool {
    reused == Some(true)
        && !received_any
        && matches!(
            err.kind(),
            ErrorKind::Truncated | ErrorKind::EmptyReply | ErrorKind::Io
        )
}

/// Whether a request that met a stale pooled connection is sent again on a new one.
pub(crate) fn may_replay(task: &Task) -> bool {
    !task.replayed && is_repeatable(task)
}

/// How long a connection may stay pooled: our own idle timeout, shortened to end before the
/// server's announced `Keep-Alive: timeout=N` (minus a margin for the request's travel).
pub(crate) fn pooled_lifetime(headers: &Headers, ours: Duration) -> Duration {
    match keep_alive_timeout(headers) {
        Some(theirs) => ours.min(theirs - (theirs / 2).min(Duration::from_secs(1))),
        None => ours,
    }
}

/// The `timeout` parameter of a `Keep-Alive` field (RFC 2068 §19.7.1.1; Apache sends it).
fn keep_alive_timeout(headers: &Headers) -> Option<Duration> {
    let value = headers.get("keep-alive")?;
    value.split(',').find_map(|param| {
        let (name, v) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("timeout") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v.parse::<u64>().ok().map(Duration::from_secs)
    })
}

/// The `Content-Length` a request declares: its body's length, and 0 for a bodiless
/// POST, PUT or PATCH (RFC 9110 §8.6: a user agent should send it when the method defines a
/// meaning for content; some servers answer 411 without it). `None`: no field.
pub(crate) fn declared_length(task: &Task) -> Option<u64> {
    match &task.body {
        Some(b) => Some(b.len() as u64),
        None if matches!(task.method.as_str(), "POST" | "PUT" | "PATCH") => Some(0),
        None => None,
    }
}

pub(crate) fn is_redirect_status(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Whether this response will be followed or retried rather than delivered: its body is
/// then discarded, never streamed to the caller's sink.
pub(crate) fn is_intermediate(task: &Task, status: u16, headers: &Headers) -> bool {
    follows_redirect(task, status, headers)
        || (retries_status(task, status) && task.attempts <= task.knobs.retries)
        || is_proxy_refusal(task, status)
}

/// Whether a response is a forwarding proxy's 407: the proxy's refusal, an error, never the
/// origin's response (its body is not the caller's).
pub(crate) fn is_proxy_refusal(task: &Task, status: u16) -> bool {
    status == 407 && crate::task::Route::of(task).forwards()
}

/// Whether a response with this status and head is a redirect this task follows.
pub(crate) fn follows_redirect(task: &Task, status: u16, headers: &Headers) -> bool {
    task.knobs.follow_redirects && is_redirect_status(status) && headers.contains("location")
}

/// Whether this status is one the task may retry (budget aside): a transient one, for a
/// method the server cannot have half-applied.
pub(crate) fn retries_status(task: &Task, status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504) && is_idempotent(&task.method)
}

/// Whether a failed attempt may be tried again (budget aside): only when the request never
/// left (connect errors, any method), or could not have been half-applied (idempotent).
pub(crate) fn retries_error(task: &Task, err: &Error) -> bool {
    match err.kind() {
        ErrorKind::Connect => true,
        ErrorKind::Timeout | ErrorKind::Io | ErrorKind::Truncated | ErrorKind::EmptyReply => {
            is_idempotent(&task.method)
        }
        _ => false,
    }
}

/// Builds the next hop of a redirect, applying the security rules: only http/https, no
/// https→http downgrade unless allowed, credentials dropped when the origin changes,
/// 303 (and 301/302 after POST) become GET without a body.
///
/// # Errors
/// `too_many_redirects` or `bad_redirect`, in phase `redirect`; the task is then unchanged.
pub(crate) fn redirect(
    task: &mut Task,
    status: u16,
    headers: &Headers,
    allow_https_downgrade: bool,
) -> Result<(), Error> {
    let fail = |kind, msg: String| Error::new(kind, Phase::Redirect, msg);
    if task.redirects >= task.knobs.max_redirects {
        let msg = format!("more than {} redirects", task.knobs.max_redirects);
        return Err(fail(ErrorKind::TooManyRedirects, msg));
    }
    let location = headers.get("location").unwrap_or("");
    let next = match task.url.join(location.trim()) {
        Ok(u) => u,
        Err(e) => {
            let msg = format!("bad location {location:?}");
            return Err(fail(ErrorKind::BadRedirect, msg).with_source(e));
        }
    };
    if !matches!(next.scheme(), "http" | "https") || next.host_str().is_none_or(str::is_empty) {
        let msg = format!("refusing to follow a redirect to {:?}", next.as_str());
        return Err(fail(ErrorKind::BadRedirect, msg));
    }
    if task.url.scheme() == "https" && next.scheme() == "http" && !allow_https_downgrade {
        let msg = format!("refusing https to http downgrade to {:?}", next.as_str());
        return Err(fail(ErrorKind::BadRedirect, msg));
    }
    if Origin::of(&task.url) != Origin::of(&next) {
        for name in ["authorization", "cookie", "proxy-authorization", "host"] {
            task.headers.remove(name);
        }
    }
    let to_get = status == 303 && task.method != "HEAD"
        || matches!(status, 301 | 302) && task.method == "POST";
    if to_get {
        task.method = "GET".to_owned();
        task.body = None;
        for name in ["content-type", "content-length", "content-encoding"] {
            task.headers.remove(name);
        }
    }
    task.url = next;
    task.redirects += 1;
    task.attempts = 0;
    task.replayed = false;
    Ok(())
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3), read against `wall`.
pub(crate) fn parse_retry_after(v: &str, wall: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(v)?;
    Some(at.duration_since(wall).unwrap_or(Duration::ZERO))
}

/// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (the form senders must use).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| m == month)? as u64 + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Four-digit years only (RFC 9110 §5.6.7): nothing later can overflow below.
    if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) || *h > 23 || *m > 59 || *sec > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), for years from 1970.
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Knobs;

    fn task(method: &str) -> Task {
        Task {
            id: 0,
            method: method.to_owned(),
            url: url::Url::parse("http://example.com/").unwrap(),
            headers: Headers::new(),
            body: None,
            knobs: Knobs {
                timeout: None,
                connect_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(1),
                max_body: 1,
                follow_redirects: true,
                max_redirects: 3,
                decompress: false,
                retries: 0,
                capture_wire: false,
                capture_secrets: false,
            },
            sink: None,
            redirects: 0,
            attempts: 1,
            sink_used: false,
            replayed: false,
            proxy: None,
            proxy_fixed: false,
            tunnel: false,
            purpose: crate::task::Purpose::Caller,
            jar: None,
            jar_sends: false,
        }
    }

    #[test]
    fn http_date_parses() {
        let now = SystemTime::now();
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 784_111_777);
        assert!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("+5", now), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        // A hostile date must not overflow (it panicked before the year bound).
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 300000000000 08:49:37 GMT", now),
            None
        );
        assert!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now).is_some());
    }

    #[test]
    fn stale_rule_replays_only_repeatable_requests_once() {
        let get = task("GET");
        assert_eq!(reuse_for(&get), Reuse::Any);
        assert!(may_replay(&get));
        let mut post = task("POST");
        assert_eq!(reuse_for(&post), Reuse::IdledUnder(NON_IDEMPOTENT_MAX_IDLE));
        assert!(!may_replay(&post));
        post.headers.append("Idempotency-Key", "8e03978e");
        assert_eq!(reuse_for(&post), Reuse::Any);
        assert!(may_replay(&post));
        let mut again = task("GET");
        again.replayed = true;
        assert_eq!(reuse_for(&again), Reuse::Fresh);
        assert!(!may_replay(&again));
    }

    #[test]
    fn stale_means_pooled_and_silent() {
        let eof = Error::new(ErrorKind::EmptyReply, Phase::ReceiveHead, "x");
        assert!(is_stale(Some(true), false, &eof));
        assert!(!is_stale(Some(false), false, &eof), "a new connection");
        assert!(!is_stale(Some(true), true, &eof), "the server answered");
        let tls = Error::new(ErrorKind::Tls, Phase::ReceiveHead, "x");
        assert!(!is_stale(Some(true), false, &tls));
    }

    #[test]
    fn pooled_lifetime_ends_before_the_servers_keep_alive_timeout() {
        let ours = Duration::from_secs(30);
        let mut h = Headers::new();
        assert_eq!(pooled_lifetime(&h, ours), ours);
        h.append("Keep-Alive", "timeout=5, max=100");
        assert_eq!(pooled_lifetime(&h, ours), Duration::from_secs(4));
        let mut h = Headers::new();
        h.append("Keep-Alive", "max=3, TIMEOUT=1");
        assert_eq!(pooled_lifetime(&h, ours), Duration::from_millis(500));
        let mut h = Headers::new();
        h.append("Keep-Alive", "timeout=+5");
        assert_eq!(pooled_lifetime(&h, ours), ours, "digits only");
        let mut h = Headers::new();
        h.append("Keep-Alive", "timeout=0");
        assert_eq!(pooled_lifetime(&h, ours), Duration::ZERO);
    }

    #[test]
    fn bodiless_post_declares_zero() {
        assert_eq!(declared_length(&task("POST")), Some(0));
        assert_eq!(declared_length(&task("GET")), None);
        let mut put = task("PUT");
        put.body = Some(std::sync::Arc::from(&b"abc"[..]));
        assert_eq!(declared_length(&put), Some(3));
    }
}
