//! A deadline queue for many state machines: one timer for thousands of
//! transactions and calls.
//!
//! Entries are never removed when a machine's deadline moves; a stale entry
//! just wakes its machine early, which every sans-IO machine here tolerates
//! (`handle_timeout` before the deadline does nothing). After waking a
//! machine the caller pushes its new `poll_timeout` again. This keeps
//! rescheduling O(log n) without a decrease-key operation.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Debug)]
pub struct Wakeups<K: Ord> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Ord + Clone> Default for Wakeups<K> {
    fn default() -> Self {
        Wakeups {
            heap: BinaryHeap::new(),
        }
    }
}

impl<K: Ord + Clone> Wakeups<K> {
    /// Asks for `key` to be woken at `at` (no-op for `None`).
    pub fn schedule(&mut self, at: Option<Instant>, key: K) {
        if let Some(at) = at {
            self.heap.push(Reverse((at, key)));
        }
    }

    /// The earliest deadline, stale or not.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns every key due at `now`, each once.
    pub fn pop_due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, key))) = self.heap.pop() else {
                break;
            };
            if !due.contains(&key) {
                due.push(key);
            }
        }
        due
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_due_keys_once_in_deadline_order() {
        let t0 = Instant::now();
        let mut w = Wakeups::default();
        w.schedule(Some(t0 + Duration::from_secs(2)), 2u32);
        w.schedule(Some(t0 + Duration::from_secs(1)), 1u32);
        w.schedule(Some(t0 + Duration::from_secs(1)), 1u32);
        w.schedule(None, 9u32);
        assert_eq!(w.next(), Some(t0 + Duration::from_secs(1)));
        assert!(w.pop_due(t0).is_empty());
        assert_eq!(w.pop_due(t0 + Duration::from_secs(1)), vec![1]);
        assert_eq!(w.pop_due(t0 + Duration::from_secs(5)), vec![2]);
        assert!(w.is_empty());
    }
}
