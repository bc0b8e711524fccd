//! Panics in user code that runs inside the loop (a body sink) are caught where they happen,
//! so the loop's state stays whole, and parked here until the turn is over; the fetcher then
//! resumes them in its caller (one loop) or hands them to the thread that waits (a handle).
//!
//! Owns one thread-local slot, and the one way to take a lock a panicking thread may
//! have held. It never decides what a panic means.

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard};

thread_local! {
    static CAUGHT: RefCell<Option<Box<dyn Any + Send>>> = const { RefCell::new(None) };
}

/// Keeps the first panic caught on this thread since the last [`take`].
pub(crate) fn park(payload: Box<dyn Any + Send>) {
    CAUGHT.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(payload);
        }
    });
}

/// Locks `m` even if a thread panicked while holding it: every value parafetch keeps
/// behind a mutex is whole between statements, so the poison says nothing about it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The panic parked on this thread, if any.
pub(crate) fn take() -> Option<Box<dyn Any + Send>> {
    CAUGHT.with(|c| c.borrow_mut().take())
}
