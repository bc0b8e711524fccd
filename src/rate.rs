//! A token bucket: at most `burst` requests at once, refilled at `per_second` (fractional:
//! 0.2/s is one request every 5 s). The engine keeps one per politeness key and one for
//! the whole fetcher; a key whose bucket is empty is simply not ready until its next token.
//!
//! Pure arithmetic over the `now` it is given: it never reads the clock.

use std::time::{Duration, Instant};

use crate::driver::timer::later;

/// Tokens this close to a whole one count as one (float rounding must not cost a wake-up).
const EPSILON: f64 = 1e-9;

#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
    per_second: f64,
    burst: f64,
}

impl Bucket {
    /// A full bucket (its first `burst` requests go at once).
    pub(crate) fn new(per_second: f64, burst: u32, now: Instant) -> Bucket {
        let burst = f64::from(burst.max(1));
        Bucket {
            tokens: burst,
            at: now,
            per_second,
            burst,
        }
    }

    fn refill(&mut self, now: Instant) {
        if now > self.at {
            let dt = (now - self.at).as_secs_f64();
            self.tokens = (self.tokens + dt * self.per_second).min(self.burst);
            self.at = now;
        }
    }

    /// When a token is there: `now` if one is.
    pub(crate) fn ready_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        self.after(1.0 - self.tokens, now)
    }

    /// Takes a token (taking one that is not there yet borrows from the future: the next
    /// one comes later by as much); returns when the next token is there.
    pub(crate) fn take(&mut self, now: Instant) -> Instant {
        self.refill(now);
        self.tokens -= 1.0;
        self.after(1.0 - self.tokens, now)
    }

    /// When the bucket is full again (until then its key must be remembered, or a new
    /// bucket would hand out a burst it has not earned).
    pub(crate) fn full_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        self.after(self.burst - self.tokens, now)
    }

    fn after(&self, missing: f64, now: Instant) -> Instant {
        if missing <= EPSILON {
            return now;
        }
        let secs = missing / self.per_second;
        later(
            now,
            Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX),
        )
    }
}

/// Whether a rate is one a bucket can keep: positive and finite.
pub(crate) fn valid(per_second: f64) -> bool {
    per_second.is_finite() && per_second > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_one_per_interval() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2.0, 3, t0);
        assert_eq!(b.take(t0), t0);
        assert_eq!(b.take(t0), t0);
        let next = b.take(t0);
        assert_eq!(next, t0 + Duration::from_millis(500), "the bucket is empty");
        assert_eq!(b.ready_at(t0 + Duration::from_millis(250)), next);
        assert_eq!(b.take(next), next + Duration::from_millis(500));
        assert_eq!(b.full_at(next), next + Duration::from_millis(1500));
    }

    #[test]
    fn fractional_and_extreme_rates() {
        let t0 = Instant::now();
        let mut slow = Bucket::new(0.2, 1, t0);
        assert_eq!(slow.take(t0), t0 + Duration::from_secs(5));
        let mut glacial = Bucket::new(1e-300, 1, t0);
        assert!(glacial.take(t0) > t0, "no overflow, just never");
        assert!(
            valid(0.2) && !valid(0.0) && !valid(-1.0) && !valid(f64::NAN) && !valid(f64::INFINITY)
        );
    }
}
