//! Deadlines: a small fixed table of named timers per connection (quinn's `TimerTable`),
//! and one lazy heap of (deadline, key) entries that tells the loop which entry to look at
//! next. The engine's delays and retries and the DNS stub's query timeouts use the same
//! heap type.
//!
//! Time comes in as `now`; nothing here reads the clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// `now + d`, or a time far enough away to mean "never" when that overflows (a caller may
/// pass `Duration::MAX` for "no limit").
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(d)
        .or_else(|| now.checked_add(YEAR))
        .unwrap_or(now)
}

/// The named deadlines of one connection. Which ones are armed depends on its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Resolve, connect and TLS handshake must be done by then (the connect timeout).
    Connect,
    /// Happy Eyeballs: start the next address's connection attempt.
    Race,
    /// The whole attempt must be done by then (the total timeout).
    Total,
    /// No byte moved for the idle timeout while a response was awaited or read.
    Idle,
    /// A pooled connection has idled for as long as it may.
    Pool,
}

const TIMERS: [Timer; 5] = [
    Timer::Connect,
    Timer::Race,
    Timer::Total,
    Timer::Idle,
    Timer::Pool,
];

/// One connection's deadlines, one slot per [`Timer`].
#[derive(Clone, Debug, Default)]
pub(crate) struct TimerTable {
    at: [Option<Instant>; TIMERS.len()],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer as usize]
    }

    /// The earliest armed deadline: the one wake-up this connection needs.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// The timer that has expired first by `now`, if any. On a tie the earlier entry of
    /// [`Timer`] wins (a passed total deadline reads as such, not as an idle one).
    pub(crate) fn expired(&self, now: Instant) -> Option<Timer> {
        TIMERS
            .iter()
            .filter_map(|&t| self.get(t).filter(|&at| at <= now).map(|at| (at, t)))
            .min_by_key(|&(at, t)| (at, t as usize))
            .map(|(_, t)| t)
    }
}

/// A lazy min-heap of deadlines. An entry may be stale (its owner moved its deadline or
/// went away): the owner checks an entry against its own state when it pops, so moving a
/// deadline costs a push, never a search.
#[derive(Debug)]
pub(crate) struct Deadlines<K: Ord> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Ord> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            heap: BinaryHeap::new(),
        }
    }
}

impl<K: Ord> Deadlines<K> {
    pub(crate) fn push(&mut self, at: Instant, key: K) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest deadline, stale or not.
    pub(crate) fn peek(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the earliest entry that is due by `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        if self.peek()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry)
    }

    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_saturates() {
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now);
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }

    #[test]
    fn table_names_the_first_expired_timer() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Idle, now + s);
        t.set(Timer::Total, now + 2 * s);
        assert_eq!(t.next(), Some(now + s));
        assert_eq!(t.expired(now), None);
        assert_eq!(t.expired(now + s), Some(Timer::Idle));
        assert_eq!(t.expired(now + 3 * s), Some(Timer::Idle));
        t.set(Timer::Idle, now + 2 * s);
        assert_eq!(
            t.expired(now + 2 * s),
            Some(Timer::Total),
            "ties: total first"
        );
        t.stop(Timer::Total);
        t.stop(Timer::Idle);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn heap_pops_only_due_entries_in_order() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let mut d = Deadlines::default();
        d.push(now + 2 * s, 2usize);
        d.push(now + s, 1);
        assert_eq!(d.pop_due(now), None);
        assert_eq!(d.pop_due(now + 5 * s), Some((now + s, 1)));
        assert_eq!(d.peek(), Some(now + 2 * s));
        assert_eq!(d.len(), 1);
    }
}
