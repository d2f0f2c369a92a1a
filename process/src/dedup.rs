//! Exact deduplication for one partition: the ids written within the window.
//!
//! Every copy of an event carries the same id, and the collectors key records by it, so all
//! copies land on one partition: the ids this partition's output holds are enough to drop
//! every later copy. They are kept in the order they were written, with the collector's
//! `received_at` and the record's offset in the output; an id is forgotten once the newest
//! `received_at` seen is more than the window past its own (time comes from the records, so
//! a replay decides the same way), or earlier when the partition holds `max_ids` (counted).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

/// One remembered id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    key: u128,
    received_ms: i64,
    /// Offset of the record in the output partition; `None` for outputs without offsets.
    output_offset: Option<i64>,
}

/// The ids one partition wrote within the window.
#[derive(Debug)]
pub struct PartitionWindow {
    ids: HashSet<u128>,
    order: VecDeque<Entry>,
    window_ms: i64,
    max_ids: usize,
    newest_ms: i64,
    evicted_early: u64,
}

impl PartitionWindow {
    /// An empty window of `window`, holding at most `max_ids` ids.
    pub fn new(window: Duration, max_ids: usize) -> Self {
        PartitionWindow {
            ids: HashSet::new(),
            order: VecDeque::new(),
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            max_ids: max_ids.max(1),
            newest_ms: i64::MIN,
            evicted_early: 0,
        }
    }

    /// True when `key` was written within the window.
    pub fn contains(&self, key: u128) -> bool {
        self.ids.contains(&key)
    }

    /// Remembers `key`, written at `output_offset`, received at `received_ms`; forgets what
    /// fell out of the window. Returns false (and changes nothing) when `key` is already held.
    pub fn insert(&mut self, key: u128, received_ms: i64, output_offset: Option<i64>) -> bool {
        if !self.ids.insert(key) {
            return false;
        }
        self.order.push_back(Entry {
            key,
            received_ms,
            output_offset,
        });
        self.newest_ms = self.newest_ms.max(received_ms);
        self.expire();
        true
    }

    fn expire(&mut self) {
        let horizon = self.newest_ms.saturating_sub(self.window_ms);
        while let Some(front) = self.order.front() {
            let too_many = self.order.len() > self.max_ids;
            if front.received_ms >= horizon && !too_many {
                break;
            }
            if too_many && front.received_ms >= horizon {
                self.evicted_early += 1;
            }
            self.ids.remove(&front.key);
            self.order.pop_front();
        }
    }

    /// Output offset of the oldest id held that has one: a rebuild that reads the output
    /// from here on sees every id still in the window. `None` when no id has an offset.
    pub fn window_start(&self) -> Option<i64> {
        self.order.iter().find_map(|e| e.output_offset)
    }

    /// Ids held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no id is held.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Ids forgotten before their time because the partition held `max_ids`.
    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn ids_are_held_for_the_window_of_received_time() {
        let mut w = PartitionWindow::new(Duration::from_secs(600), 1_000);
        assert!(w.insert(1, 0, Some(10)));
        assert!(
            !w.insert(1, 5 * MIN, Some(99)),
            "a second copy is not inserted"
        );
        assert!(w.insert(2, 5 * MIN, Some(11)));
        assert_eq!(w.window_start(), Some(10));
        // Ten minutes after the first: still held (the horizon is inclusive).
        assert!(w.insert(3, 10 * MIN, Some(12)));
        assert!(w.contains(1));
        // Past it: forgotten, and the window now starts at the next id's offset.
        assert!(w.insert(4, 10 * MIN + 1, Some(13)));
        assert!(!w.contains(1));
        assert!(w.contains(2));
        assert_eq!(w.window_start(), Some(11));
        assert_eq!(w.evicted_early(), 0);
        // A record from a slow clock does not move time back.
        assert!(w.insert(5, 0, Some(14)));
        assert!(w.contains(5));
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn memory_is_bounded_and_early_evictions_counted() {
        let mut w = PartitionWindow::new(Duration::from_secs(3600), 100);
        for k in 0..1_000u128 {
            w.insert(k, 0, Some(k as i64));
            assert!(w.len() <= 100);
        }
        assert_eq!(w.evicted_early(), 900);
        assert!(w.contains(999) && w.contains(900) && !w.contains(899));
        assert_eq!(w.window_start(), Some(900));
    }

    #[test]
    fn outputs_without_offsets_have_no_window_start() {
        let mut w = PartitionWindow::new(Duration::from_secs(60), 10);
        w.insert(7, 0, None);
        assert_eq!(w.window_start(), None);
        w.insert(8, 1, Some(3));
        assert_eq!(w.window_start(), Some(3));
    }
}
