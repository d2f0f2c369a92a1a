//! Deduplication by `event_id` within a bounded window.
//!
//! Two generations of ids: lookups check both, inserts go to the current one, and when the
//! current one is full the older is dropped and the current becomes the older. Memory holds
//! at most `2 × generation` ids however many events pass; an id is remembered for at least
//! `generation` later insertions.

use std::collections::HashSet;

pub use crate::defaults::DEFAULT_DEDUP_GENERATION;

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
        self.contains_key(key(id))
    }

    /// Remembers `id`.
    pub fn insert(&mut self, id: &str) {
        self.insert_key(key(id));
    }

    /// True when `k` (a [`key`] or a [`fingerprint`]) was inserted recently.
    pub fn contains_key(&self, k: u128) -> bool {
        self.current.contains(&k) || self.previous.contains(&k)
    }

    /// Remembers `k` (a [`key`] or a [`fingerprint`]).
    pub fn insert_key(&mut self, k: u128) {
        if self.current.len() >= self.generation {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(k);
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
        Err(_) => fingerprint(&[id.as_bytes()]),
    }
}

/// The id as records carry it for partitioning: a UUID in its canonical form (hyphenated,
/// lower case), so every spelling of one event lands on the same Kafka partition; anything
/// else as sent.
pub fn canonical_id(id: &str) -> String {
    match uuid::Uuid::try_parse(id) {
        Ok(u) => u.hyphenated().to_string(),
        Err(_) => id.to_owned(),
    }
}

/// A 128-bit fingerprint of `parts` (two SipHash-1-3 digests, fixed keys: the same input
/// gives the same value in every process). Each part is length-prefixed, so parts cannot
/// run into one another.
pub fn fingerprint(parts: &[&[u8]]) -> u128 {
    use std::hash::{Hash, Hasher};
    let mut a = std::collections::hash_map::DefaultHasher::new();
    let mut b = std::collections::hash_map::DefaultHasher::new();
    1u8.hash(&mut b);
    for part in parts {
        part.hash(&mut a);
        part.hash(&mut b);
    }
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
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
