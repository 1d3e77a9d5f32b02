//! Per-file debouncing: a key is due once it has been quiet for the debounce period, and
//! every touch before then pushes its deadline back. Touches cost O(1) and the due keys
//! O(log n) each, so a burst of events over many thousand files (a checkout, a dataset
//! rewritten) stays linear.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// Keys waiting to be quiet for `period`.
///
/// `deadlines` holds each waiting key's current deadline; `queue` holds each waiting key once,
/// ordered by the deadline it had when queued. A key whose deadline moved on since is queued
/// again at its new deadline when it comes up, so the queue never grows beyond the keys.
#[derive(Debug)]
pub struct Debouncer<K> {
    period: Duration,
    deadlines: HashMap<K, Instant>,
    queue: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Clone + Eq + Hash + Ord> Debouncer<K> {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            deadlines: HashMap::new(),
            queue: BinaryHeap::new(),
        }
    }

    /// Records a change of `key` at `now`. Returns true when this starts a burst: the key was
    /// not already waiting.
    pub fn touch(&mut self, key: K, now: Instant) -> bool {
        let deadline = now + self.period;
        match self.deadlines.entry(key) {
            Entry::Occupied(mut waiting) => {
                let _ = waiting.insert(deadline);
                false
            }
            Entry::Vacant(new) => {
                self.queue.push(Reverse((deadline, new.key().clone())));
                let _ = new.insert(deadline);
                true
            }
        }
    }

    /// The earliest time a key may be due (possibly earlier than it really is: a key touched
    /// since it was queued is then queued again).
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns the keys quiet since `now - period`, earliest deadline first.
    pub fn take_due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.queue.peek()
            && *at <= now
        {
            let Some(Reverse((at, key))) = self.queue.pop() else {
                break;
            };
            match self.deadlines.get(&key) {
                // Touched since it was queued: back in line at its deadline, which may have
                // passed too (then it comes out in its turn).
                Some(&deadline) if deadline != at => self.queue.push(Reverse((deadline, key))),
                Some(_) => {
                    let _ = self.deadlines.remove(&key);
                    due.push(key);
                }
                None => {}
            }
        }
        due
    }

    /// How many keys are waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(400);

    #[test]
    fn a_key_is_due_once_quiet_for_the_period_and_each_touch_pushes_it_back() {
        let start = Instant::now();
        let mut keys = Debouncer::new(PERIOD);
        assert!(keys.touch("a", start), "the first touch starts a burst");
        assert!(keys.touch("b", start + PERIOD / 4));
        assert!(!keys.touch("a", start + PERIOD / 2), "a is already waiting");
        assert_eq!(keys.next_due(), Some(start + PERIOD));

        // a's queued deadline comes up, but a was touched since: only requeued.
        assert_eq!(keys.take_due(start + PERIOD), Vec::<&str>::new());
        assert_eq!(keys.next_due(), Some(start + PERIOD / 4 + PERIOD));
        assert_eq!(keys.take_due(start + PERIOD / 4 + PERIOD), ["b"]);
        assert_eq!(keys.next_due(), Some(start + PERIOD / 2 + PERIOD));
        assert_eq!(keys.take_due(start + 2 * PERIOD), ["a"]);
        assert_eq!((keys.next_due(), keys.len()), (None, 0));
        assert!(
            keys.touch("a", start + 3 * PERIOD),
            "a new burst after a is handed out"
        );
    }

    #[test]
    fn due_keys_come_out_earliest_first_and_the_queue_holds_each_key_once() {
        let start = Instant::now();
        let mut keys = Debouncer::new(PERIOD);
        let step = Duration::from_millis(1);
        for round in 0..50u32 {
            for key in (0..1000u32).rev() {
                let _ = keys.touch(key, start + step * (round + key));
            }
        }
        assert_eq!(keys.len(), 1000);
        assert_eq!(
            keys.queue.len(),
            1000,
            "touches of waiting keys queue nothing"
        );
        assert_eq!(keys.take_due(start + PERIOD), Vec::<u32>::new());
        let last_touch = |key: u32| start + step * (49 + key);
        let due = keys.take_due(last_touch(9) + PERIOD);
        assert_eq!(due, (0..10).collect::<Vec<_>>());
        assert_eq!(keys.len(), 990);
        assert_eq!(keys.next_due(), Some(last_touch(10) + PERIOD));
        let rest = keys.take_due(last_touch(999) + PERIOD);
        assert_eq!(rest, (10..1000).collect::<Vec<_>>());
    }
}
