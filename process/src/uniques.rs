//! Unique users per schema and per dimension value, in one-minute HyperLogLog sketches that
//! merge across partitions, workers and minutes.
//!
//! Each worker keeps, for every partition it owns, one sketch per `(schema, dimension,
//! value, minute)` — and one per `(schema, minute)` for the schema as a whole — and
//! publishes the ones that changed to the state topic ([`crate::state`]). Users are
//! `context.user_id`, else `context.anonymous_id`, hashed as their UTF-8 bytes the way
//! Apache DataSketches' Java and C++ libraries hash strings, so sketches merge with theirs.
//! Minutes are those of the collector's `received_at`.

use std::collections::{HashMap, HashSet};

use datasketches::hll::{Coupon, HllSketch, HllType};

use crate::defaults::{
    MAX_SCHEMAS, MAX_VALUES_PER_MINUTE, MAX_VALUE_BYTES, SKETCH_BUCKET_SECONDS, SKETCH_CLOCK_AHEAD,
    SKETCH_LG_K, SKETCH_MAX_MINUTES,
};

// The `--uniques` spec lives with the schemas (`eventwire lint` checks it too, in builds
// without Kafka); re-exported here, where the dimensions are counted.
pub use eventwire_schema::dimension::{SpecError, UniquesSpec};

/// Identifies one sketch: the schema, the dimension (`""` for the schema as a whole), its
/// value (`""` likewise) and the minute (Unix seconds / 60).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SketchKey {
    /// `vendor/name`.
    pub schema: String,
    /// Dimension name, `""` for the whole schema.
    pub by: String,
    /// Dimension value, `""` for the whole schema.
    pub value: String,
    /// Minute of `received_at` (Unix seconds / 60).
    pub minute: i64,
}

/// A fresh sketch of the precision every eventwire sketch uses.
pub fn new_sketch() -> HllSketch {
    // SKETCH_LG_K is within the library's 4..=21, so this cannot fail; fall back to its
    // smallest precision rather than panic if a future bound changed.
    HllSketch::new(SKETCH_LG_K, HllType::Hll4)
        .or_else(|_| HllSketch::new(4, HllType::Hll4))
        .unwrap_or_else(|_| unreachable_sketch())
}

#[allow(clippy::panic)]
fn unreachable_sketch() -> HllSketch {
    panic!("datasketches refused every precision")
}

/// The hash of a user, as DataSketches' Java and C++ `update(String)` compute it.
pub fn coupon(user: &str) -> Coupon {
    Coupon::from_value(datasketches::hash::value::raw_bytes::from_str(user))
}

/// Minute of a `received_at` in milliseconds.
pub fn minute_of(received_ms: i64) -> i64 {
    received_ms.div_euclid(SKETCH_BUCKET_SECONDS * 1000)
}

/// What [`PartitionSketches::record`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Sketches that were refused a user because a bound was reached.
    pub refused: u32,
}

/// One partition's sketches, and which changed since they were last taken.
#[derive(Debug, Default)]
pub struct PartitionSketches {
    sketches: HashMap<SketchKey, HllSketch>,
    dirty: HashSet<SketchKey>,
    schemas: HashSet<String>,
    values: HashMap<(String, String, i64), usize>,
    oldest_kept: i64,
}

impl PartitionSketches {
    /// Counts `user` for `schema` and each `(by, value)` of `dimensions`, in the minute of
    /// `received_ms`. Minutes a query cannot reach — [`SKETCH_MAX_MINUTES`] or more before
    /// the minute of `now_ms` (this worker's clock), or more than [`SKETCH_CLOCK_AHEAD`] after
    /// it — are not counted; they are refused, as are values longer than
    /// [`MAX_VALUE_BYTES`].
    pub fn record(
        &mut self,
        schema: &str,
        dimensions: &[(&str, &str)],
        user: &str,
        received_ms: i64,
        now_ms: i64,
    ) -> Recorded {
        let mut done = Recorded::default();
        if user.is_empty() {
            return done;
        }
        let now_minute = minute_of(now_ms);
        let oldest = now_minute - SKETCH_MAX_MINUTES + 1;
        if oldest > self.oldest_kept {
            self.oldest_kept = oldest;
            self.expire();
        }
        let minute = minute_of(received_ms);
        let newest = minute_of(now_ms.saturating_add(SKETCH_CLOCK_AHEAD.as_millis() as i64));
        if minute < oldest || minute > newest || schema.len() > MAX_VALUE_BYTES {
            done.refused += 1 + dimensions.len() as u32;
            return done;
        }
        if !self.schemas.contains(schema) {
            if self.schemas.len() >= MAX_SCHEMAS {
                done.refused += 1 + dimensions.len() as u32;
                return done;
            }
            self.schemas.insert(schema.to_owned());
        }
        let c = coupon(user);
        self.update(
            SketchKey {
                schema: schema.to_owned(),
                by: String::new(),
                value: String::new(),
                minute,
            },
            c,
        );
        for (by, value) in dimensions {
            if value.len() > MAX_VALUE_BYTES {
                done.refused += 1;
                continue;
            }
            let key = SketchKey {
                schema: schema.to_owned(),
                by: (*by).to_owned(),
                value: (*value).to_owned(),
                minute,
            };
            if !self.sketches.contains_key(&key) {
                let count = self
                    .values
                    .entry((schema.to_owned(), (*by).to_owned(), minute))
                    .or_default();
                if *count >= MAX_VALUES_PER_MINUTE {
                    done.refused += 1;
                    continue;
                }
                *count += 1;
            }
            self.update(key, c);
        }
        done
    }

    fn update(&mut self, key: SketchKey, c: Coupon) {
        let sketch = self.sketches.entry(key.clone()).or_insert_with(new_sketch);
        sketch.update_with_coupon(c);
        self.dirty.insert(key);
    }

    fn expire(&mut self) {
        let oldest = self.oldest_kept;
        self.sketches.retain(|k, _| k.minute >= oldest);
        self.dirty.retain(|k| k.minute >= oldest);
        self.values.retain(|(_, _, m), _| *m >= oldest);
    }

    /// The sketches changed since the last call, serialized in DataSketches' format; they
    /// are clean afterwards. Call [`PartitionSketches::mark_dirty`] if publishing them failed.
    pub fn take_dirty(&mut self) -> Vec<(SketchKey, Vec<u8>)> {
        let mut out: Vec<(SketchKey, Vec<u8>)> = self
            .dirty
            .drain()
            .filter_map(|k| {
                let bytes = self.sketches.get(&k)?.serialize();
                Some((k, bytes))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Marks `keys` as changed again (their publication failed).
    pub fn mark_dirty(&mut self, keys: impl IntoIterator<Item = SketchKey>) {
        self.dirty.extend(keys);
    }

    /// Sketches held.
    pub fn len(&self) -> usize {
        self.sketches.len()
    }

    /// True when no sketch is held.
    pub fn is_empty(&self) -> bool {
        self.sketches.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_796_032_800_000; // a minute boundary, in ms

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        let s = UniquesSpec::parse("com.example.web/article_view:/data/article_id").unwrap();
        assert_eq!(
            (s.schema.as_str(), s.by.as_str(), s.pointer.as_str()),
            (
                "com.example.web/article_view",
                "article_id",
                "/data/article_id"
            )
        );
        let named = UniquesSpec::parse("a/b:section=/data/meta/section").unwrap();
        assert_eq!(
            (named.by.as_str(), named.pointer.as_str()),
            ("section", "/data/meta/section")
        );
        for (bad, says) in [
            ("a/b", "no `:`"),
            ("a:/data/x", "vendor/name"),
            ("a/b/c:/data/x", "vendor/name"),
            ("a/b:data/x", "start with `/`"),
            ("a/b:/", "needs a name"),
        ] {
            let err = UniquesSpec::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn counts_by_schema_and_dimension_and_takes_what_changed() {
        let mut p = PartitionSketches::default();
        for u in 0..100 {
            let user = format!("u{u}");
            let article = if u % 10 == 0 { "b" } else { "a" };
            p.record(
                "s/v",
                &[("article_id", article)],
                &user,
                T0 + 1_000,
                T0 + 1_000,
            );
        }
        let taken = p.take_dirty();
        let keys: Vec<String> = taken
            .iter()
            .map(|(k, _)| format!("{}|{}|{}", k.schema, k.by, k.value))
            .collect();
        assert_eq!(keys, ["s/v||", "s/v|article_id|a", "s/v|article_id|b"]);
        let estimate =
            |bytes: &[u8]| HllSketch::deserialize(bytes).unwrap().estimate().round() as u64;
        assert_eq!(estimate(&taken[0].1), 100);
        assert_eq!(estimate(&taken[1].1), 90);
        assert_eq!(estimate(&taken[2].1), 10);
        assert!(p.take_dirty().is_empty(), "clean after taking");
        // The same users again change nothing a reader can see, but the sketch is re-sent.
        p.record("s/v", &[("article_id", "b")], "u0", T0 + 2_000, T0 + 2_000);
        let again = p.take_dirty();
        assert_eq!(again.len(), 2);
        assert_eq!(estimate(&again[1].1), 10);
    }

    #[test]
    fn minutes_follow_the_workers_clock_and_bounds_hold() {
        let later = T0 + SKETCH_MAX_MINUTES * 60_000;
        let mut p = PartitionSketches::default();
        p.record("s/v", &[], "u", T0, T0);
        p.record("s/v", &[], "u", later, later);
        assert_eq!(p.len(), 1, "the first minute slid out");
        // Too old to be asked for: refused.
        assert_eq!(p.record("s/v", &[("d", "x")], "u2", T0, later).refused, 2);
        assert_eq!(p.len(), 1);
        // A clock far ahead (a collector's, years off) is refused too, and does not move
        // this partition's minutes: the current one still counts.
        let far = 253_402_300_799_000;
        assert_eq!(p.record("s/v", &[], "u3", far, later).refused, 1);
        assert_eq!(p.record("s/v", &[], "u4", later + 30_000, later).refused, 0);
        assert_eq!(p.len(), 1);
        // Empty users are not users.
        p.take_dirty();
        p.record("s/v", &[], "", later, later);
        assert!(p.take_dirty().is_empty());
        // Values past the length bound are refused; the schema still counts.
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let dims = [("d", long.as_str()), ("e", "ok")];
        assert_eq!(p.record("s/v", &dims, "u5", later, later).refused, 1);
        assert_eq!(p.take_dirty().len(), 2);
        let mut q = PartitionSketches::default();
        for i in 0..MAX_SCHEMAS {
            assert_eq!(q.record(&format!("s/{i}"), &[], "u", T0, T0).refused, 0);
        }
        let refused = q
            .record("s/one-too-many", &[("d", "x")], "u", T0, T0)
            .refused;
        assert_eq!(refused, 2);
    }

    #[test]
    fn hashes_users_as_datasketches_does_for_strings() {
        // DataSketches hashes a string as its UTF-8 bytes (MurmurHash3 x64 128, seed 9001),
        // without Rust's length suffix: the raw-bytes wrapper, not `&str`'s Hash.
        assert_eq!(
            coupon("apple"),
            Coupon::from_value(datasketches::hash::value::raw_bytes::from_slice(b"apple"))
        );
        assert_ne!(coupon("apple"), Coupon::from_value("apple"));
    }
}
