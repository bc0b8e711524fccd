//! The pace of one politeness key (a host, or a registrable domain): when its next request
//! may start. Everything that spaces requests out joins in one rule:
//!
//! - `host_delay`, the least time between two starts (a floor);
//! - `host_rate`, a token bucket;
//! - backoff: a key that answered 429 or 503 is paused (its `Retry-After`, else an
//!   exponential pause) and slowed down, recovering step by step with each good answer;
//! - AutoThrottle: a delay that follows the latencies the key shows (Scrapy's rule: it
//!   tends to latency / target concurrency, between the floor and a ceiling);
//! - robots.txt's `Crawl-delay`.
//!
//! The next start is the latest of: the last start plus the largest of the delays, the
//! bucket's next token, and the end of a pause. Pure arithmetic over the `now` it is
//! given: it never reads the clock, and it knows nothing of queues (the engine's).

use std::time::{Duration, Instant};

use url::Url;

use crate::driver::timer::later;
use crate::rate::Bucket;

/// Longest pause a `Retry-After` on a 429 or 503 imposes on a key; a longer one is cut
/// to it, so one answer cannot stall a crawl for days.
pub const MAX_HOST_PAUSE: Duration = Duration::from_secs(300);
/// Longest `Crawl-delay` from a robots.txt that is honoured; a longer one is cut to it.
pub const MAX_CRAWL_DELAY: Duration = Duration::from_secs(30);

/// The first pause of a key that answered 429 or 503 without a `Retry-After`; doubled
/// for each strike that follows before it recovers.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest such pause.
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// The least spacing a slowed-down key gets (when it had none before): two a second.
const MIN_SLOWDOWN: Duration = Duration::from_millis(500);
/// The most a slowdown spaces a key's requests.
const MAX_SLOWDOWN: Duration = Duration::from_secs(60);
/// Each good answer keeps this share of the slowdown: about fifteen answers from the
/// least slowdown back to none.
const RECOVERY: f64 = 3.0 / 4.0;
/// A slowdown below this is over.
const SLOWDOWN_OVER: Duration = Duration::from_millis(10);
/// An idle key that learnt something (a slowdown, a throttle delay) is remembered this
/// long after its last answer, as Scrapy keeps an idle download slot for a minute.
const MEMORY: Duration = Duration::from_secs(60);

/// What requests are grouped by for per-host caps, delays and rates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolitenessKey {
    /// The URL's host (`a.example.co.uk`): the default.
    #[default]
    Host,
    /// The registrable domain, by the Public Suffix List (`a.example.co.uk` and
    /// `b.example.co.uk` share `example.co.uk`'s budget). An IP address, or a name with no
    /// registrable part (`localhost`, `co.uk`), is its own key. Needs the `psl` feature.
    #[cfg(feature = "psl")]
    Domain,
}

impl PolitenessKey {
    /// The key of `url`'s requests (lowercase): the string per-host caps, delays and
    /// rates are kept by, and that [`shard_of`] hashes to route them.
    pub fn of(self, url: &Url) -> String {
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        match self {
            PolitenessKey::Host => host,
            #[cfg(feature = "psl")]
            PolitenessKey::Domain => registrable(url, host),
        }
    }
}

/// Which of `n` shards (`n` ≥ 1) a politeness key belongs to: FNV-1a, then its halves
/// folded, so that keys differing in one character (127.0.0.1, 127.0.0.2) spread too.
///
/// A [`Handle`](crate::Handle) routes requests to its loops by it. It is stable across
/// runs, machines and parafetch versions, so that it can also route jobs stored outside a
/// process (a queue's shards in Redis, written by one program and read by another): a
/// change of its values is a breaking change.
///
/// # Panics
/// When `n` is 0.
///
/// # Examples
/// ```
/// use parafetch::{PolitenessKey, shard_of};
/// let url = url::Url::parse("http://Example.com/a").unwrap();
/// let key = PolitenessKey::Host.of(&url);
/// assert_eq!(key, "example.com");
/// assert!(shard_of(&key, 16) < 16);
/// ```
pub fn shard_of(key: &str, n: usize) -> usize {
    assert!(n > 0, "shard_of: no shards");
    let h = crate::proxy::fnv1a(key.as_bytes());
    ((h ^ (h >> 32)) % n as u64) as usize
}

#[cfg(feature = "psl")]
pub(crate) fn registrable(url: &Url, host: String) -> String {
    if !matches!(url.host(), Some(url::Host::Domain(_))) {
        return host;
    }
    let name = host.strip_suffix('.').unwrap_or(&host);
    match psl::domain_str(name) {
        Some(d) if d.len() < name.len() => d.to_owned(),
        _ => host,
    }
}

/// What politeness did, for a run's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoliteStats {
    /// Times a host (politeness key) was paused by a 429 or 503.
    pub hosts_paused: u64,
    /// Requests refused by robots.txt, never sent.
    pub robots_refused: u64,
}

/// AutoThrottle's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Throttle {
    /// Requests a key should have in flight on average.
    pub target: f64,
    /// The delay of a key before any latency is known.
    pub start: Duration,
    /// The ceiling.
    pub max: Duration,
}

/// The fetcher's pacing settings, the same for every key.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PaceRules {
    pub host_delay: Duration,
    pub host_rate: Option<(f64, u32)>,
    pub backoff: bool,
    pub throttle: Option<Throttle>,
}

impl PaceRules {
    /// The spacing the configuration asks for: the delay, or one rate interval.
    fn base_interval(&self) -> Duration {
        let rate = self.host_rate.map_or(Duration::ZERO, |(per_second, _)| {
            Duration::try_from_secs_f64(1.0 / per_second).unwrap_or(MAX_SLOWDOWN)
        });
        self.host_delay.max(rate)
    }
}

/// What a key answered, as pacing needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answer {
    pub status: u16,
    /// Its `Retry-After`, parsed.
    pub retry_after: Option<Duration>,
    /// Time to its first byte.
    pub latency: Duration,
}

/// What an answer did to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answered {
    /// Nothing the engine must act on.
    Noted,
    /// A 429 or 503 paused the key (a new pause, not an extended one).
    Paused,
}

/// One key's pace.
#[derive(Debug)]
pub(crate) struct Pace {
    bucket: Option<Bucket>,
    last_start: Option<Instant>,
    /// Paused by a 429 or 503 until then.
    paused_until: Option<Instant>,
    /// Extra spacing after 429s and 503s; shrinks with each good answer.
    slowdown: Duration,
    /// Pauses in a row without a full recovery (for the exponential pause).
    strikes: u32,
    /// When the last strike came: an answer to a request started before it belongs to
    /// the same storm.
    struck_at: Option<Instant>,
    /// AutoThrottle's current delay.
    throttle: Option<Duration>,
    /// From robots.txt (capped).
    crawl_delay: Duration,
    /// When it last learnt something it must remember.
    learnt_at: Option<Instant>,
}

impl Pace {
    pub(crate) fn new(rules: &PaceRules, now: Instant) -> Pace {
        Pace {
            bucket: rules
                .host_rate
                .map(|(per_second, burst)| Bucket::new(per_second, burst, now)),
            last_start: None,
            paused_until: None,
            slowdown: Duration::ZERO,
            strikes: 0,
            struck_at: None,
            throttle: rules
                .throttle
                .map(|t| t.start.min(t.max).max(rules.host_delay)),
            crawl_delay: Duration::ZERO,
            learnt_at: None,
        }
    }

    /// The least time between two starts, as things stand.
    fn spacing(&self, rules: &PaceRules) -> Duration {
        [
            rules.host_delay,
            self.crawl_delay,
            self.slowdown,
            self.throttle.unwrap_or_default(),
        ]
        .into_iter()
        .max()
        .unwrap_or_default()
    }

    /// When the next request may start (`now` or earlier: it may).
    pub(crate) fn next_start(&mut self, rules: &PaceRules, now: Instant) -> Instant {
        let spaced = self.last_start.map(|t| later(t, self.spacing(rules)));
        let token = self.bucket.as_mut().map(|b| b.ready_at(now));
        [spaced, token, self.paused_until]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(now)
    }

    /// A request starts now.
    pub(crate) fn start(&mut self, now: Instant) {
        self.last_start = Some(now);
        if let Some(b) = &mut self.bucket {
            b.take(now);
        }
    }

    /// When an idle key can be forgotten without handing out what it has not earned (a
    /// burst, a shorter delay) or forgetting what it learnt (a slowdown, a throttle delay).
    pub(crate) fn settled_at(&mut self, rules: &PaceRules, now: Instant) -> Instant {
        let full = self.bucket.as_mut().map(|b| b.full_at(now));
        let learnt = self.learnt_at.map(|t| later(t, MEMORY));
        [Some(self.next_start(rules, now)), full, learnt]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(now)
    }

    /// Takes robots.txt's `Crawl-delay` (capped at [`MAX_CRAWL_DELAY`]); a key with
    /// several origins (http and https, or a domain's hosts) keeps the largest.
    pub(crate) fn set_crawl_delay(&mut self, d: Duration) {
        self.crawl_delay = self.crawl_delay.max(d.min(MAX_CRAWL_DELAY));
    }

    /// An answer from the key to a request started at `started`: `status`, its
    /// `Retry-After` (already parsed), and the latency to its first byte.
    pub(crate) fn answered(
        &mut self,
        rules: &PaceRules,
        answer: Answer,
        started: Instant,
        now: Instant,
    ) -> Answered {
        let Answer {
            status,
            retry_after,
            latency,
        } = answer;
        let mut outcome = Answered::Noted;
        let refused = matches!(status, 429 | 503);
        if rules.backoff {
            if refused {
                outcome = self.back_off(rules, retry_after, started, now);
            } else if status < 500 {
                self.recover();
            }
        }
        if let Some(t) = rules.throttle {
            self.adjust_throttle(rules, t, status, latency);
        }
        if self.slowdown > Duration::ZERO || self.throttle.is_some() {
            self.learnt_at = Some(now);
        }
        outcome
    }

    fn back_off(
        &mut self,
        rules: &PaceRules,
        retry_after: Option<Duration>,
        started: Instant,
        now: Instant,
    ) -> Answered {
        if self.struck_at.is_some_and(|t| started < t) {
            // Answers to requests that were in flight when the last strike came: one
            // strike, however many of them say so; a longer Retry-After still extends it.
            if let Some(ra) = retry_after {
                let until = later(now, ra.min(MAX_HOST_PAUSE));
                self.paused_until = self.paused_until.max(Some(until));
            }
            return Answered::Noted;
        }
        self.struck_at = Some(now);
        self.strikes = self.strikes.saturating_add(1);
        let pause = retry_after.map_or_else(
            || {
                FIRST_PAUSE
                    .saturating_mul(1 << (self.strikes - 1).min(16))
                    .min(MAX_PAUSE)
            },
            |ra| ra.min(MAX_HOST_PAUSE),
        );
        self.paused_until = Some(later(now, pause));
        self.slowdown = if self.slowdown.is_zero() {
            rules.base_interval().saturating_mul(2).max(MIN_SLOWDOWN)
        } else {
            self.slowdown.saturating_mul(2)
        }
        .min(MAX_SLOWDOWN);
        Answered::Paused
    }

    fn recover(&mut self) {
        if self.slowdown.is_zero() {
            return;
        }
        self.slowdown = self.slowdown.mul_f64(RECOVERY);
        if self.slowdown < SLOWDOWN_OVER {
            self.slowdown = Duration::ZERO;
            self.strikes = 0;
        }
    }

    /// Scrapy's AutoThrottle: the delay moves halfway towards latency / target, never
    /// below that target delay, within the floor (`host_delay`) and the ceiling; an error
    /// answer may raise the delay but never lower it.
    fn adjust_throttle(&mut self, rules: &PaceRules, t: Throttle, status: u16, latency: Duration) {
        let old = self.throttle.unwrap_or(t.start);
        let ceiling = t.max.max(rules.host_delay);
        // A tiny target must not overflow: anything past the ceiling is the ceiling.
        let target = Duration::try_from_secs_f64(latency.as_secs_f64() / t.target)
            .unwrap_or(Duration::MAX)
            .min(ceiling);
        let new = (old.saturating_add(target) / 2)
            .max(target)
            .max(rules.host_delay)
            .min(ceiling);
        if status != 200 && new <= old {
            return;
        }
        self.throttle = Some(new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ans(status: u16, retry_after: Option<Duration>, latency: Duration) -> Answer {
        Answer {
            status,
            retry_after,
            latency,
        }
    }

    fn rules() -> PaceRules {
        PaceRules {
            backoff: true,
            ..PaceRules::default()
        }
    }

    #[test]
    fn the_latest_constraint_wins() {
        let t0 = Instant::now();
        let r = PaceRules {
            host_delay: ms(100),
            host_rate: Some((2.0, 1)),
            ..rules()
        };
        let mut p = Pace::new(&r, t0);
        assert_eq!(p.next_start(&r, t0), t0, "a new key may start at once");
        p.start(t0);
        assert_eq!(
            p.next_start(&r, t0),
            t0 + ms(500),
            "the rate, not the delay"
        );
        p.set_crawl_delay(Duration::from_secs(2));
        assert_eq!(p.next_start(&r, t0), t0 + Duration::from_secs(2));
        p.set_crawl_delay(Duration::from_secs(3600));
        assert_eq!(p.next_start(&r, t0), t0 + MAX_CRAWL_DELAY, "capped");
    }

    #[test]
    fn a_429_pauses_for_its_retry_after_and_slows_the_key() {
        let t0 = Instant::now();
        let r = PaceRules {
            host_rate: Some((1.0, 1)),
            ..rules()
        };
        let mut p = Pace::new(&r, t0);
        p.start(t0);
        let got = p.answered(&r, ans(429, Some(Duration::from_secs(2)), ms(1)), t0, t0);
        assert_eq!(got, Answered::Paused);
        assert_eq!(p.next_start(&r, t0), t0 + Duration::from_secs(2));
        // The answer to a request started before that strike is the same storm, not a
        // second strike, even once the pause is over (Retry-After: 0).
        let t = t0 + ms(5);
        let late = p.answered(&r, ans(429, Some(Duration::ZERO), ms(1)), t0 - ms(1), t);
        assert_eq!(late, Answered::Noted);
        assert_eq!(p.slowdown, ms(2000), "the rate halved: 1 s became 2 s");
        // After the pause, each good answer gives back a quarter of the slowdown.
        let t1 = t0 + Duration::from_secs(3);
        p.answered(&r, ans(200, None, ms(1)), t1, t1);
        assert_eq!(p.slowdown, ms(1500));
        for _ in 0..60 {
            p.answered(&r, ans(200, None, ms(1)), t1, t1);
        }
        assert_eq!(p.slowdown, Duration::ZERO, "recovered");
        assert_eq!(p.strikes, 0);
    }

    #[test]
    fn without_retry_after_the_pause_doubles_per_strike_up_to_a_ceiling() {
        let t0 = Instant::now();
        let r = rules();
        let mut p = Pace::new(&r, t0);
        let mut now = t0;
        let mut pauses = Vec::new();
        for _ in 0..10 {
            assert_eq!(
                p.answered(&r, ans(503, None, ms(1)), now, now),
                Answered::Paused
            );
            let until = p.paused_until.unwrap();
            pauses.push((until - now).as_secs());
            now = until;
        }
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(p.slowdown, MAX_SLOWDOWN);
        let hostile = p.answered(
            &r,
            ans(429, Some(Duration::from_secs(86_400)), ms(1)),
            now,
            now,
        );
        assert_eq!(hostile, Answered::Paused);
        assert_eq!(p.paused_until, Some(now + MAX_HOST_PAUSE), "capped");
    }

    #[test]
    fn backoff_off_ignores_429() {
        let t0 = Instant::now();
        let r = PaceRules::default();
        let mut p = Pace::new(&r, t0);
        assert_eq!(
            p.answered(&r, ans(429, Some(ms(5000)), ms(1)), t0, t0),
            Answered::Noted
        );
        assert_eq!(p.next_start(&r, t0), t0);
    }

    #[test]
    fn auto_throttle_tends_to_latency_over_target() {
        let t0 = Instant::now();
        let r = PaceRules {
            throttle: Some(Throttle {
                target: 2.0,
                start: Duration::from_secs(5),
                max: Duration::from_secs(60),
            }),
            ..PaceRules::default()
        };
        let mut p = Pace::new(&r, t0);
        assert_eq!(p.throttle, Some(Duration::from_secs(5)), "the start delay");
        for _ in 0..30 {
            p.answered(&r, ans(200, None, ms(800)), t0, t0);
        }
        let d = p.throttle.unwrap();
        assert!(d >= ms(400) && d < ms(401), "latency / target: {d:?}");
        // A slow error answer raises it; a fast one does not lower it.
        p.answered(&r, ans(500, None, ms(4000)), t0, t0);
        let raised = p.throttle.unwrap();
        assert_eq!(raised, ms(2000));
        p.answered(&r, ans(404, None, ms(1)), t0, t0);
        assert_eq!(p.throttle.unwrap(), raised);
        // The ceiling holds.
        p.answered(&r, ans(200, None, Duration::from_secs(3600)), t0, t0);
        assert_eq!(p.throttle.unwrap(), Duration::from_secs(60));
    }

    /// Pinned values (computed apart, by FNV-1a's definition): queues stored in Redis are
    /// routed by these, by programs of different versions.
    #[test]
    fn shard_of_is_pinned() {
        for (key, of16, of7) in [("example.com", 5, 5), ("127.0.0.1", 15, 2), ("", 1, 6)] {
            assert_eq!(
                (shard_of(key, 16), shard_of(key, 7)),
                (of16, of7),
                "{key:?}"
            );
        }
        assert_eq!(shard_of("anything", 1), 0);
    }

    #[test]
    fn hostile_numbers_do_not_overflow() {
        let t0 = Instant::now();
        let r = PaceRules {
            host_delay: Duration::MAX,
            throttle: Some(Throttle {
                target: 1e-300,
                start: Duration::MAX,
                max: Duration::from_secs(60),
            }),
            ..rules()
        };
        let mut p = Pace::new(&r, t0);
        p.answered(&r, ans(200, None, Duration::from_secs(10)), t0, t0);
        p.answered(&r, ans(429, None, Duration::MAX), t0, t0);
        assert!(p.next_start(&r, t0) > t0);
        assert!(p.settled_at(&r, t0) > t0);
    }

    #[test]
    fn an_idle_key_is_remembered_while_it_knows_something() {
        let t0 = Instant::now();
        let r = rules();
        let mut p = Pace::new(&r, t0);
        assert_eq!(p.settled_at(&r, t0), t0, "nothing to remember");
        p.answered(&r, ans(429, Some(ms(100)), ms(1)), t0, t0);
        assert_eq!(p.settled_at(&r, t0), t0 + MEMORY);
    }

    #[cfg(feature = "psl")]
    #[test]
    fn the_domain_key_uses_the_public_suffix_list() {
        let key = |u: &str| PolitenessKey::Domain.of(&Url::parse(u).unwrap());
        assert_eq!(key("http://a.example.co.uk/"), "example.co.uk");
        assert_eq!(key("http://B.Example.co.uk./x"), "example.co.uk");
        assert_eq!(key("http://x.y.github.io/"), "y.github.io");
        assert_eq!(key("http://co.uk/"), "co.uk");
        assert_eq!(key("http://localhost:8080/"), "localhost");
        assert_eq!(key("http://127.0.0.2/"), "127.0.0.2");
        assert_eq!(key("http://[::1]/"), "[::1]");
        assert_eq!(
            PolitenessKey::Host.of(&Url::parse("http://A.b.c/").unwrap()),
            "a.b.c"
        );
    }
}
