//! A reusable barrier for proving concurrency from the server side: a script arrives at the
//! gate with its request and is held until `n` requests are held at once.
//!
//! Owns: one count of waiting parties and a generation number behind a mutex and a condvar.
//! Must not: sleep, spin, or hold a party past its timeout.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// A reusable gate: `n` parties arrive; all are released when the n-th arrives. A party that
/// times out leaves the gate and gets false. Used to prove concurrency from the server side,
/// e.g. the server holds every request until `n` are in flight at once.
pub struct Gate {
    n: usize,
    state: Mutex<GateState>,
    released: Condvar,
}

struct GateState {
    waiting: usize,
    generation: u64,
}

impl Gate {
    /// A gate for `n` parties.
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn new(n: usize) -> Arc<Gate> {
        assert!(n > 0, "a gate needs at least one party");
        Arc::new(Gate {
            n,
            state: Mutex::new(GateState {
                waiting: 0,
                generation: 0,
            }),
            released: Condvar::new(),
        })
    }

    /// Arrives and waits until `n` parties have arrived in this round: true then, false on
    /// timeout (the party is withdrawn, so the round still needs `n`).
    pub fn arrive_and_wait(&self, timeout: Duration) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = state.generation;
        state.waiting += 1;
        if state.waiting == self.n {
            state.waiting = 0;
            state.generation += 1;
            self.released.notify_all();
            return true;
        }
        let (mut state, _) = self
            .released
            .wait_timeout_while(state, timeout, |s| s.generation == generation)
            .unwrap_or_else(PoisonError::into_inner);
        if state.generation != generation {
            true
        } else {
            state.waiting -= 1;
            false
        }
    }

    /// Parties waiting in the current round.
    pub fn waiting(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waiting
    }
}
