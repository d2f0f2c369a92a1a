//! Which admitted events are settled, by admission sequence number.
//!
//! Every event admitted to the tracker gets the next sequence number (`0, 1, 2, …`). Events
//! settle in almost that order, but not always: a `track()` refused after admission (the
//! queue was full), an event the spool could not read back, or one abandoned at shutdown
//! settles ahead of older ones still in flight. A count of settled events therefore says
//! nothing about *which* ones are settled; a flush must wait for the **low-water mark** — the
//! first sequence number not yet settled — to pass its target.
//!
//! Settled numbers above the mark are kept as ranges (`start..end`), merged as they touch, so
//! the common case (a whole batch of consecutive numbers) costs one range.
//!
//! Only the native worker waits on the mark (flush, shutdown); without the `native` feature
//! (the browser core) the ledger only numbers admissions, so that none of this is in the
//! wasm build.

use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "native")]
use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
};

/// Admission numbers and the low-water mark of what is settled. Shared by the caller's
/// threads (admission, refusal), the spool thread and the worker.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// The next sequence number: also the number of events admitted so far.
    next: AtomicU64,
    #[cfg(feature = "native")]
    marks: Mutex<Marks>,
}

/// Settled sequence numbers: all below `low`, and the ranges in `above`.
#[cfg(feature = "native")]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Marks {
    low: u64,
    /// `start → end` (exclusive) of settled runs above `low`; disjoint, not touching.
    above: BTreeMap<u64, u64>,
}

#[cfg(feature = "native")]
impl Marks {
    /// Marks `start..end` settled.
    fn insert(&mut self, start: u64, end: u64) {
        let start = start.max(self.low);
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        // Merge with a run that starts before and reaches `start`.
        if let Some((&s, &e)) = self.above.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.above.remove(&s);
            }
        }
        // Merge with the runs that start inside (or right after) the new one.
        while let Some((&s, &e)) = self.above.range(start..).next() {
            if s > end {
                break;
            }
            end = end.max(e);
            self.above.remove(&s);
        }
        if start <= self.low {
            self.low = self.low.max(end);
        } else {
            self.above.insert(start, end);
        }
    }
}

impl Ledger {
    /// Admits one event: its sequence number.
    pub fn admit(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    /// Admits `n` events at once (recovered from a spool): the first of their numbers.
    pub fn admit_many(&self, n: u64) -> u64 {
        self.next.fetch_add(n, Ordering::SeqCst)
    }

    /// How many events were admitted: every number below this was handed out.
    pub fn admitted(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Marks these sequence numbers settled (in any order; each exactly once).
    #[cfg(feature = "native")]
    pub fn settle(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut seqs: Vec<u64> = seqs.into_iter().collect();
        if seqs.is_empty() {
            return;
        }
        if !seqs.is_sorted() {
            seqs.sort_unstable();
        }
        let mut marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        let mut run = seqs[0]..seqs[0] + 1;
        for &s in &seqs[1..] {
            if s == run.end {
                run.end += 1;
            } else {
                marks.insert(run.start, run.end);
                run = s..s + 1;
            }
        }
        marks.insert(run.start, run.end);
    }

    /// The low-water mark: every event admitted with a number below it is settled.
    #[cfg(feature = "native")]
    pub fn low_water(&self) -> u64 {
        self.marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .low
    }

    /// Whether every event admitted before `target` was read from [`Ledger::admitted`] is
    /// settled.
    #[cfg(feature = "native")]
    pub fn settled_up_to(&self, target: u64) -> bool {
        self.low_water() >= target
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;

    #[test]
    fn marks_table() {
        // (runs inserted in order, expected low, expected ranges above)
        type Runs = &'static [(u64, u64)];
        let table: &[(Runs, u64, Runs)] = &[
            (&[], 0, &[]),
            (&[(0, 5)], 5, &[]),
            (&[(3, 5)], 0, &[(3, 5)]),
            (&[(3, 5), (0, 3)], 5, &[]),
            (&[(3, 5), (0, 2)], 2, &[(3, 5)]),
            (&[(3, 5), (6, 8), (5, 6)], 0, &[(3, 8)]),
            (&[(3, 5), (6, 8), (2, 10)], 0, &[(2, 10)]),
            (&[(3, 5), (6, 8), (0, 4)], 5, &[(6, 8)]),
            (&[(0, 5), (2, 4)], 5, &[]),
            (&[(10, 12), (4, 5), (0, 4)], 5, &[(10, 12)]),
            (&[(4, 4)], 0, &[]),
        ];
        for (runs, low, above) in table {
            let mut m = Marks::default();
            for (s, e) in *runs {
                m.insert(*s, *e);
            }
            let got: Vec<(u64, u64)> = m.above.iter().map(|(s, e)| (*s, *e)).collect();
            assert_eq!((m.low, got.as_slice()), (*low, *above), "{runs:?}");
        }
    }

    /// Against a plain set: settling numbers in random order, the mark is always the first
    /// number not settled.
    #[test]
    fn the_mark_is_the_first_unsettled_number_in_any_order() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..200 {
            let n = 1 + rand(300);
            let ledger = Ledger::default();
            ledger.admit_many(n);
            let mut order: Vec<u64> = (0..n).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rand(i as u64 + 1) as usize);
            }
            let mut settled = std::collections::HashSet::new();
            let mut rest = &order[..];
            while !rest.is_empty() {
                let k = 1 + rand(rest.len().min(20) as u64) as usize;
                let (now, later) = rest.split_at(k);
                ledger.settle(now.iter().copied());
                settled.extend(now.iter().copied());
                rest = later;
                let first_unsettled = (0..=n).find(|s| !settled.contains(s)).unwrap_or(n);
                assert_eq!(ledger.low_water(), first_unsettled);
            }
            assert!(ledger.settled_up_to(n));
            assert!(ledger.marks.lock().unwrap().above.is_empty());
        }
    }
}
