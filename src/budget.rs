//! The in-flight cap of a fetcher with several loops: one budget of slots the loops share.
//!
//! Each loop holds slots for the attempts it runs. It takes one before it starts an
//! attempt and gives back what it does not use at the end of each admission pass, so a
//! loop with all the work may use the whole cap while the others are idle. A loop that
//! has work but finds the budget spent says so (`starved`); a slot given back then goes
//! straight to the starved loop holding the fewest, when that loop holds no more than the
//! giver (a hand-off, so the giver cannot take it again first). Loops
//! wanting more than their share thus converge on equal shares (max-min fair); none waits
//! while another keeps taking.
//!
//! The only state loops share on the hot path: an atomic or two per new slot and per pass
//! that gives slots back; a lock and a `Waker` call when a pass gives slots to a starved
//! loop. A loop busy with its own work reuses its slots and only reads its own part, on
//! cache lines of its own. It never starts or stops anything.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use mio::Waker;

use crate::unwind::lock;

pub(crate) struct Budget {
    cap: AtomicUsize,
    /// Slots held by all loops together, hand-offs not yet picked up included.
    total: AtomicUsize,
    loops: Box<[Share]>,
    /// One per loop, set as each loop starts (and again if its poll is replaced).
    wakers: Box<[Mutex<Option<Arc<Waker>>>]>,
}

/// One loop's part, on cache lines of its own: a loop writes its part on every pass, and
/// two loops' parts on one line would bounce it between their cores.
#[derive(Default)]
#[repr(align(128))]
struct Share {
    /// Written by its own loop only.
    held: AtomicUsize,
    /// Handed to it by other loops, not yet picked up.
    granted: AtomicUsize,
    starved: AtomicBool,
}

impl Budget {
    pub(crate) fn new(cap: usize, loops: usize) -> Budget {
        Budget {
            cap: AtomicUsize::new(cap.max(1)),
            total: AtomicUsize::new(0),
            loops: (0..loops).map(|_| Share::default()).collect(),
            wakers: (0..loops).map(|_| Mutex::new(None)).collect(),
        }
    }

    pub(crate) fn set_waker(&self, i: usize, waker: Arc<Waker>) {
        *lock(&self.wakers[i]) = Some(waker);
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap.load(SeqCst)
    }

    /// A new cap: a raised one lets every loop start more now, so all are woken.
    pub(crate) fn set_cap(&self, n: usize) {
        self.cap.store(n.max(1), SeqCst);
        for i in 0..self.loops.len() {
            self.wake(i);
        }
    }

    /// Slots loop `i` holds.
    pub(crate) fn held(&self, i: usize) -> usize {
        self.loops[i].held.load(SeqCst)
    }

    /// Takes one more slot for loop `i` (or picks up what was handed to it). `false`: the
    /// budget is spent, and loop `i` is marked starved until [`Budget::satisfied`].
    pub(crate) fn take(&self, i: usize) -> bool {
        if self.try_take(i) {
            return true;
        }
        if !self.loops[i].starved.load(SeqCst) {
            self.loops[i].starved.store(true, SeqCst);
        }
        // A slot given back between the failed try and the mark went to the pool, not to
        // us: look once more.
        self.try_take(i)
    }

    fn try_take(&self, i: usize) -> bool {
        if self.collect(i) {
            return true;
        }
        let me = &self.loops[i];
        let cap = self.cap();
        let took = self
            .total
            .fetch_update(SeqCst, SeqCst, |t| (t < cap).then_some(t + 1))
            .is_ok();
        if took {
            me.held.fetch_add(1, SeqCst);
        }
        took
    }

    /// Picks up what was handed to loop `i`, so that what it does not need can be given
    /// back: a hand-off may arrive just as the loop stops wanting it.
    /// `true` if there was any.
    pub(crate) fn collect(&self, i: usize) -> bool {
        let me = &self.loops[i];
        // Read first: a swap on every pass would take the line from a giver's core.
        if me.granted.load(SeqCst) == 0 {
            return false;
        }
        let granted = me.granted.swap(0, SeqCst);
        me.held.fetch_add(granted, SeqCst);
        granted > 0
    }

    /// Loop `i` wants no more slots for now.
    pub(crate) fn satisfied(&self, i: usize) {
        // Read first: a store on every pass would bounce the line between cores.
        if self.loops[i].starved.load(SeqCst) {
            self.loops[i].starved.store(false, SeqCst);
        }
    }

    /// Loop `i` gives back `n` slots: each goes to the starved loop holding the fewest if
    /// that one holds no more than `i` then does, else back to the pool. Every loop handed
    /// a slot, and with slots back in the pool every starved loop, is woken once: a loop
    /// only gives back what it has no work for, so this is not a wake per request while
    /// all loops are busy, and a starved loop must not wait for its own slow attempts to
    /// notice free slots.
    pub(crate) fn give_back(&self, i: usize, n: usize) {
        let mine = self.loops[i].held.fetch_sub(n, SeqCst) - n;
        let cap = self.cap();
        let mut wake = vec![false; self.loops.len()];
        for _ in 0..n {
            let neediest = (0..self.loops.len())
                .filter(|&j| j != i && self.loops[j].starved.load(SeqCst))
                .min_by_key(|&j| self.holds(j));
            match neediest {
                // Over a lowered cap, slots go back to the pool instead.
                Some(j) if self.holds(j) <= mine && self.total.load(SeqCst) <= cap => {
                    // Woken even if it stopped wanting slots since we looked: its next
                    // pass gives the hand-off back.
                    self.loops[j].granted.fetch_add(1, SeqCst);
                    wake[j] = true;
                }
                _ => {
                    self.total.fetch_sub(1, SeqCst);
                    for (j, w) in wake.iter_mut().enumerate() {
                        *w |= j != i && self.loops[j].starved.load(SeqCst);
                    }
                }
            }
        }
        for (j, _) in wake.iter().enumerate().filter(|(_, w)| **w) {
            self.wake(j);
        }
    }

    /// What loop `j` holds and has been handed.
    fn holds(&self, j: usize) -> usize {
        self.loops[j].held.load(SeqCst) + self.loops[j].granted.load(SeqCst)
    }

    fn wake(&self, j: usize) {
        let waker = lock(&self.wakers[j]);
        if let Some(w) = &*waker {
            let _ = w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_loop_may_use_the_whole_cap() {
        let b = Budget::new(4, 2);
        for _ in 0..4 {
            assert!(b.take(0));
        }
        assert!(!b.take(0));
        assert_eq!(b.held(0), 4);
        b.give_back(0, 4);
        assert_eq!(b.total.load(SeqCst), 0);
    }

    #[test]
    fn a_starved_loop_gets_the_next_slot_given_back() {
        let b = Budget::new(1, 2);
        assert!(b.take(0));
        assert!(!b.take(1), "spent");
        // Loop 0 finishes its attempt: the slot is handed to loop 1, and loop 0 cannot
        // take it again first.
        b.give_back(0, 1);
        assert!(!b.take(0));
        assert!(b.take(1));
        assert_eq!((b.held(0), b.held(1)), (0, 1));
        // And back again.
        b.give_back(1, 1);
        assert!(b.take(0));
    }

    #[test]
    fn shares_converge_on_equal() {
        let b = Budget::new(10, 2);
        for _ in 0..10 {
            assert!(b.take(0));
        }
        assert!(!b.take(1));
        // Loop 0 keeps wanting more after each release; loop 1 stays starved.
        for _ in 0..20 {
            b.give_back(0, 1);
            let _ = b.take(0);
            let _ = b.take(1);
        }
        assert_eq!(b.total.load(SeqCst), 10);
        assert_eq!((b.held(0), b.held(1)), (5, 5));
    }

    #[test]
    fn a_hand_off_the_loop_no_longer_needs_goes_back() {
        let b = Budget::new(3, 2);
        assert!(b.take(0) && b.take(0));
        assert!(b.take(1));
        assert!(!b.take(1), "spent: loop 1 is starved");
        b.give_back(0, 1); // handed to loop 1, not woken: it holds a slot
        // Loop 1 started its last task in the slot it held and wants no more: its pass
        // picks the hand-off up and gives back what it does not use.
        b.satisfied(1);
        b.collect(1);
        b.give_back(1, 1);
        b.give_back(1, 1);
        b.give_back(0, 1);
        assert_eq!((b.held(0), b.held(1)), (0, 0));
        assert_eq!(b.total.load(SeqCst), 0, "nothing stranded");
        assert_eq!((0..4).filter(|_| b.take(0)).count(), 3);
    }

    #[test]
    fn a_satisfied_loop_is_not_handed_slots() {
        let b = Budget::new(2, 2);
        assert!(b.take(0) && b.take(0));
        assert!(!b.take(1));
        b.satisfied(1);
        b.give_back(0, 2);
        assert_eq!(b.total.load(SeqCst), 0);
        assert_eq!(b.loops[1].granted.load(SeqCst), 0);
    }
}
