//! Deduplication by `event_id` within a bounded window.
//!
//! Two generations of ids: lookups check both, inserts go to the current one, and when the
//! current one is full the older is dropped and the current becomes the older. Memory holds
//! at most `2 × generation` ids however many events pass; an id is remembered for at least
//! `generation` later insertions.

use std::collections::HashSet;

/// Default ids per generation (the window is at least this many events).
pub const DEFAULT_DEDUP_GENERATION: usize = 1_000_000;

/// A bounded set of recently seen event ids.
#[derive(Debug)]
pub struct DedupWindow {
    current: HashSet<u128>,
    previous: HashSet<u128>,
    generation: usize,
}

impl DedupWindow {
    /// A window remembering at least `generation` ids.
    pub fn new(generation: usize) -> Self {
        DedupWindow {
            current: HashSet::new(),
            previous: HashSet::new(),
            generation: generation.max(1),
        }
    }

    /// True when `id` was inserted recently.
    pub fn contains(&self, id: &str) -> bool {
        let k = key(id);
        self.current.contains(&k) || self.previous.contains(&k)
    }

    /// Remembers `id`.
    pub fn insert(&mut self, id: &str) {
        if self.current.len() >= self.generation {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key(id));
    }

    /// Ids held now (at most twice the generation).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key an id is remembered by: UUIDs as 128-bit integers (16 bytes instead of a 36-byte
/// string, and the same for any spelling of one UUID); anything else that passed the
/// envelope schema hashed to the same width.
pub fn key(id: &str) -> u128 {
    match uuid::Uuid::try_parse(id) {
        Ok(u) => u.as_u128(),
        Err(_) => {
            use std::hash::{Hash, Hasher};
            let mut a = std::collections::hash_map::DefaultHasher::new();
            id.hash(&mut a);
            let mut b = std::collections::hash_map::DefaultHasher::new();
            (id, 1u8).hash(&mut b);
            (u128::from(a.finish()) << 64) | u128::from(b.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_window_and_stays_bounded() {
        let mut w = DedupWindow::new(100);
        let ids: Vec<String> = (0..1000)
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        for (i, id) in ids.iter().enumerate() {
            assert!(!w.contains(id));
            w.insert(id);
            assert!(w.contains(id));
            assert!(w.len() <= 200);
            // The last 100 are always remembered.
            if i >= 100 {
                assert!(w.contains(&ids[i - 99]));
            }
        }
        assert!(!w.contains(&ids[0]), "old ids age out");
    }
}
