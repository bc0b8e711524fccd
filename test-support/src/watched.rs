//! State a server's threads share with the test thread: a mutex that a panicking script
//! cannot poison for the test, and a condition variable that wakes waiters on every change,
//! so tests wait for what they need instead of sleeping.
//!
//! Owns nothing but the lock and its notifications; each server keeps its own state type.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Watched<S> {
    state: Mutex<S>,
    changed: Condvar,
}

impl<S> Watched<S> {
    /// The state; a script that panicked while holding it does not poison it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state and wakes everyone waiting on it.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.notify_all();
        r
    }

    /// Waits until `pred` holds or `timeout` passes; says whether it holds.
    pub(crate) fn wait_until(&self, timeout: Duration, pred: impl Fn(&S) -> bool) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |s| !pred(s))
            .unwrap_or_else(PoisonError::into_inner);
        pred(&guard)
    }
}
