//! A bounded cache of name answers with expiry, shared by both resolvers.
//!
//! Bounded by entry count: an endless crawl over millions of hosts must not grow it without
//! limit. At the cap, expired entries go first; if that frees too little, the eighth of the
//! entries closest to expiry goes (they would be asked again soonest anyway). The clock is
//! an argument: nothing here reads it.

use std::collections::HashMap;
use std::time::Instant;

/// Most names a resolver caches (answers and failures together).
pub(crate) const DNS_CACHE_MAX: usize = 10_000;

pub(crate) struct TtlCache<V> {
    map: HashMap<String, (V, Instant)>,
    cap: usize,
}

impl<V> TtlCache<V> {
    pub(crate) fn new(cap: usize) -> TtlCache<V> {
        TtlCache {
            map: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// The unexpired value for `key`.
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<&V> {
        self.map
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(v, _)| v)
    }

    /// Stores `value` until `expires`, making room first when the cache is full.
    pub(crate) fn insert(&mut self, key: String, value: V, expires: Instant, now: Instant) {
        if expires <= now {
            return;
        }
        if self.map.len() >= self.cap && !self.map.contains_key(&key) {
            self.make_room(now);
        }
        self.map.insert(key, (value, expires));
    }

    fn make_room(&mut self, now: Instant) {
        self.map.retain(|_, (_, expires)| *expires > now);
        if self.map.len() < self.cap {
            return;
        }
        let n = self.map.len() / 8 + 1;
        let mut expiries: Vec<Instant> = self.map.values().map(|(_, e)| *e).collect();
        let (_, &mut cut, _) = expiries.select_nth_unstable(n - 1);
        let mut left = n;
        self.map.retain(|_, (_, expires)| {
            if left > 0 && *expires <= cut {
                left -= 1;
                false
            } else {
                true
            }
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expired_entries_are_not_answers() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let mut c = TtlCache::new(4);
        c.insert("a".into(), 1, now + s, now);
        c.insert("gone".into(), 2, now, now);
        assert_eq!(c.get("a", now), Some(&1));
        assert_eq!(c.get("a", now + s), None);
        assert_eq!(c.get("gone", now), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn stays_within_its_cap_evicting_the_soonest_to_expire() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let mut c = TtlCache::new(16);
        for i in 0..1000u32 {
            c.insert(format!("h{i}"), i, now + s * (i + 1), now);
            assert!(c.len() <= 16, "len {} at {i}", c.len());
        }
        // The newest (latest to expire) survive; the earliest went.
        assert_eq!(c.get("h999", now), Some(&999));
        assert_eq!(c.get("h0", now), None);
        // Expired entries go before live ones.
        let later = now + s * 995;
        c.insert("fresh".into(), 7, later + s * 10_000, later);
        assert_eq!(c.get("fresh", later), Some(&7));
        assert_eq!(c.get("h999", later), Some(&999));
    }
}
