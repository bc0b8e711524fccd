//! The idle-connection pool: which parked connections serve which route (origin and proxy),
//! within the caps.
//!
//! Owns only the index (slab keys per origin, most recently parked last); the connections
//! themselves stay in the loop's slab, in their `Idle` state. Only the loop calls it.

use std::collections::HashMap;

use crate::task::Route;

pub(crate) struct Pool {
    idle: HashMap<Route, Vec<usize>>,
    count: usize,
    max_per_origin: usize,
    max: usize,
}

impl Pool {
    pub(crate) fn new(max_per_origin: usize, max: usize) -> Pool {
        Pool {
            idle: HashMap::new(),
            count: 0,
            max_per_origin,
            max,
        }
    }

    /// Whether one more connection to `origin` may be parked.
    pub(crate) fn has_room(&self, origin: &Route) -> bool {
        self.count < self.max && self.idle.get(origin).map_or(0, Vec::len) < self.max_per_origin
    }

    pub(crate) fn park(&mut self, origin: &Route, key: usize) {
        match self.idle.get_mut(origin) {
            Some(keys) => keys.push(key),
            None => {
                self.idle.insert(origin.clone(), vec![key]);
            }
        }
        self.count += 1;
    }

    /// Takes the most recently parked connection to `origin` (the warmest) that `fits`
    /// accepts. Connections live for different times (a server's `Keep-Alive` hint), so a
    /// warm one that no longer fits does not hide older ones that still do.
    pub(crate) fn take(&mut self, origin: &Route, fits: impl Fn(usize) -> bool) -> Option<usize> {
        let keys = self.idle.get_mut(origin)?;
        let i = keys.iter().rposition(|&k| fits(k))?;
        let key = keys.remove(i);
        if keys.is_empty() {
            self.idle.remove(origin);
        }
        self.count -= 1;
        Some(key)
    }

    /// Forgets a parked connection that is closing.
    pub(crate) fn remove(&mut self, origin: &Route, key: usize) {
        let Some(keys) = self.idle.get_mut(origin) else {
            return;
        };
        let before = keys.len();
        keys.retain(|&k| k != key);
        self.count -= before - keys.len();
        if keys.is_empty() {
            self.idle.remove(origin);
        }
    }

    /// Some parked connection, to close when descriptors run out.
    pub(crate) fn any(&self) -> Option<usize> {
        self.idle.values().find_map(|keys| keys.first().copied())
    }

    pub(crate) fn clear(&mut self) {
        self.idle.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(host: &str) -> Route {
        Route::direct(crate::task::Origin {
            https: false,
            host: host.to_owned(),
            port: 80,
        })
    }

    #[test]
    fn caps_and_warmest_first() {
        let (a, b) = (origin("a"), origin("b"));
        let mut p = Pool::new(2, 3);
        p.park(&a, 1);
        p.park(&a, 2);
        assert!(!p.has_room(&a), "per-origin cap");
        p.park(&b, 3);
        assert!(!p.has_room(&origin("c")), "total cap");
        assert_eq!(p.take(&a, |k| k != 2), Some(1), "the warmest does not fit");
        assert_eq!(p.take(&a, |_| true), Some(2));
        assert_eq!(p.take(&a, |_| true), None);
        p.park(&a, 4);
        p.remove(&a, 4);
        assert_eq!(p.take(&a, |_| true), None, "removed");
        assert!(p.has_room(&a));
        assert_eq!(p.any(), Some(3));
    }
}
