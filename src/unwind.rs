//! Panics in user code that runs inside the loop (a body sink) are caught where they happen,
//! so the loop's state stays whole, and parked here until the turn is over; the fetcher then
//! resumes them in its caller (one loop) or hands them to the thread that waits (a handle).
//!
//! Owns one thread-local slot. It never decides what a panic means.

use std::any::Any;
use std::cell::RefCell;

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

/// The panic parked on this thread, if any.
pub(crate) fn take() -> Option<Box<dyn Any + Send>> {
    CAUGHT.with(|c| c.borrow_mut().take())
}
