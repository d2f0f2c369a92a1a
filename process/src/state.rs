//! The state topic: what workers publish about the partitions they own, and the view any
//! worker builds from it to answer queries.
//!
//! Two kinds of record, both JSON, both versioned (`"format"`, `"version"`), keyed so a
//! compacted topic keeps the latest of each:
//!
//! - a **sketch**: key `["eventwire-uniques",1,SCHEMA,BY,VALUE,MINUTE,PARTITION,WRITER]`,
//!   value `{"format":"eventwire-uniques","version":1,"schema","by","value","minute",
//!   "partition","writer","published_at_ms","sketch":{"kind":"datasketches-hll","lg_k":14,
//!   "base64":…}}`. The sketch bytes are Apache DataSketches' HLL serialization (its own
//!   serialization version inside), which the Java, C++, Go and Python libraries read; the
//!   users in it are hashed as those libraries hash strings ([`crate::uniques::coupon`]).
//!   `WRITER` is the publishing worker's run id: after a partition moves, the new owner
//!   starts its own sketches instead of reading the old ones back, and readers take the union
//!   of all writers (a union counts a user twice only once);
//! - a **progress** record: key `["eventwire-progress",1,TOPIC,PARTITION]`, value
//!   `{"format":"eventwire-progress","version":1,"topic","partition","writer","committed",
//!   "newest_received_at_ms","published_at_ms"}`: the input offset the partition's sketches
//!   cover, and how fresh they are.
//!
//! A record with another format or a newer version is skipped and counted, never guessed at.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;
use datasketches::common::NumStdDev;
use datasketches::hll::{HllSketch, HllUnion};
use serde::{Deserialize, Serialize};

use crate::defaults::{SKETCH_LG_K, SKETCH_MAX_MINUTES};
use crate::uniques::SketchKey;

/// Name of the sketch format.
pub const SKETCH_FORMAT: &str = "eventwire-uniques";
/// Name of the progress format.
pub const PROGRESS_FORMAT: &str = "eventwire-progress";
/// Version of both formats this build writes and reads.
pub const VERSION: u32 = 1;
/// The sketch kind inside a sketch record.
pub const SKETCH_KIND: &str = "datasketches-hll";

/// One sketch as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SketchRecord {
    /// [`SKETCH_FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// `vendor/name`.
    pub schema: String,
    /// Dimension, `""` for the whole schema.
    pub by: String,
    /// Dimension value, `""` for the whole schema.
    pub value: String,
    /// Minute of `received_at` (Unix seconds / 60).
    pub minute: i64,
    /// Input partition the sketch counts.
    pub partition: i32,
    /// Run id of the worker that wrote it.
    pub writer: String,
    /// When it was published, Unix milliseconds.
    pub published_at_ms: i64,
    /// The sketch.
    pub sketch: SketchBytes,
}

/// A serialized sketch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SketchBytes {
    /// [`SKETCH_KIND`].
    pub kind: String,
    /// log2 of the register count.
    pub lg_k: u8,
    /// DataSketches' HLL serialization, base64 (standard alphabet, padded).
    pub base64: String,
}

/// How far a partition's published state reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressRecord {
    /// [`PROGRESS_FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Run id of the worker that owns it.
    pub writer: String,
    /// Next input offset: everything before it is counted in the published sketches.
    pub committed: i64,
    /// Newest `received_at` counted, Unix milliseconds.
    pub newest_received_at_ms: i64,
    /// When this was published, Unix milliseconds.
    pub published_at_ms: i64,
}

/// A decoded state record.
#[derive(Debug, Clone, PartialEq)]
pub enum StateRecord {
    /// A sketch.
    Sketch(SketchRecord),
    /// A partition's progress.
    Progress(ProgressRecord),
}

/// Why a state record was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not JSON of a known shape.
    #[error("not a state record: {0}")]
    Shape(String),
    /// A format or version this build does not read.
    #[error("unknown state format {format:?} version {version}")]
    Unknown {
        /// The record's format.
        format: String,
        /// The record's version.
        version: u32,
    },
    /// The sketch bytes do not decode.
    #[error("sketch does not decode: {0}")]
    Sketch(String),
    /// A sketch of a minute no query can reach.
    #[error("sketch of minute {0}, outside the queryable hour")]
    OutOfWindow(i64),
}

impl SketchRecord {
    /// A record of `bytes` (DataSketches HLL) for `key`.
    pub fn new(key: &SketchKey, partition: i32, writer: &str, bytes: &[u8], now_ms: i64) -> Self {
        SketchRecord {
            format: SKETCH_FORMAT.into(),
            version: VERSION,
            schema: key.schema.clone(),
            by: key.by.clone(),
            value: key.value.clone(),
            minute: key.minute,
            partition,
            writer: writer.to_owned(),
            published_at_ms: now_ms,
            sketch: SketchBytes {
                kind: SKETCH_KIND.into(),
                lg_k: SKETCH_LG_K,
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
    }

    /// The compaction key.
    pub fn key(&self) -> String {
        serde_json::json!([
            SKETCH_FORMAT,
            VERSION,
            self.schema,
            self.by,
            self.value,
            self.minute,
            self.partition,
            self.writer
        ])
        .to_string()
    }

    /// The sketch, decoded.
    pub fn decode_sketch(&self) -> Result<HllSketch, StateError> {
        if self.sketch.kind != SKETCH_KIND {
            return Err(StateError::Sketch(format!("kind {:?}", self.sketch.kind)));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.sketch.base64)
            .map_err(|e| StateError::Sketch(e.to_string()))?;
        HllSketch::deserialize(&bytes).map_err(|e| StateError::Sketch(e.to_string()))
    }
}

impl ProgressRecord {
    /// The compaction key.
    pub fn key(&self) -> String {
        serde_json::json!([PROGRESS_FORMAT, VERSION, self.topic, self.partition]).to_string()
    }
}

impl StateRecord {
    /// Decodes a record's value.
    pub fn decode(value: &[u8]) -> Result<StateRecord, StateError> {
        #[derive(Deserialize)]
        struct Head {
            format: String,
            version: u32,
        }
        let head: Head =
            serde_json::from_slice(value).map_err(|e| StateError::Shape(e.to_string()))?;
        let shape = |e: serde_json::Error| StateError::Shape(e.to_string());
        match (head.format.as_str(), head.version) {
            (SKETCH_FORMAT, VERSION) => {
                let record: SketchRecord = serde_json::from_slice(value).map_err(shape)?;
                Ok(StateRecord::Sketch(record))
            }
            (PROGRESS_FORMAT, VERSION) => Ok(StateRecord::Progress(
                serde_json::from_slice(value).map_err(shape)?,
            )),
            _ => Err(StateError::Unknown {
                format: head.format,
                version: head.version,
            }),
        }
    }
}

/// An estimate of unique users, with its bounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// The estimate, rounded.
    pub uniques: u64,
    /// Lower end of the ≈99.7 % interval (three standard deviations).
    pub lower_bound: u64,
    /// Upper end of the ≈99.7 % interval.
    pub upper_bound: u64,
}

/// One query's window, in minutes of `received_at`: `(first, last]` … named in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First minute included.
    pub first_minute: i64,
    /// Last minute included (the current, open one).
    pub last_minute: i64,
}

impl Window {
    /// The `minutes` newest minutes up to the one of `now_ms`.
    pub fn ending_at(now_ms: i64, minutes: i64) -> Window {
        let last_minute = crate::uniques::minute_of(now_ms);
        Window {
            first_minute: last_minute - minutes.max(1) + 1,
            last_minute,
        }
    }

    fn contains(&self, minute: i64) -> bool {
        (self.first_minute..=self.last_minute).contains(&minute)
    }
}

type Series = BTreeMap<(i64, i32, String), HllSketch>;

/// Every worker's latest published state, merged on demand.
#[derive(Default)]
pub struct StateView {
    series: HashMap<(String, String), HashMap<String, Series>>,
    progress: BTreeMap<i32, ProgressRecord>,
    oldest_kept: i64,
    skipped: u64,
}

impl std::fmt::Debug for StateView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateView")
            .field("dimensions", &self.series.len())
            .field("partitions", &self.progress.len())
            .finish()
    }
}

impl StateView {
    /// Takes in one record's value at `now_ms` (this worker's clock); a record that does not
    /// decode, or whose minute no query can reach (older than the longest window, or ahead
    /// of the clock by more than [`crate::defaults::SKETCH_CLOCK_AHEAD`]), is skipped and
    /// counted.
    pub fn apply(&mut self, value: &[u8], now_ms: i64) -> Result<(), StateError> {
        let now_minute = crate::uniques::minute_of(now_ms);
        let oldest = now_minute - SKETCH_MAX_MINUTES + 1;
        let newest = crate::uniques::minute_of(
            now_ms.saturating_add(crate::defaults::SKETCH_CLOCK_AHEAD.as_millis() as i64),
        );
        if oldest > self.oldest_kept {
            self.oldest_kept = oldest;
            self.expire();
        }
        let result = StateRecord::decode(value).and_then(|record| match record {
            StateRecord::Sketch(s) if s.minute < oldest || s.minute > newest => {
                Err(StateError::OutOfWindow(s.minute))
            }
            StateRecord::Sketch(s) => {
                let sketch = s.decode_sketch()?;
                self.series
                    .entry((s.schema, s.by))
                    .or_default()
                    .entry(s.value)
                    .or_default()
                    .insert((s.minute, s.partition, s.writer), sketch);
                Ok(())
            }
            StateRecord::Progress(p) => {
                self.progress.insert(p.partition, p);
                Ok(())
            }
        });
        if result.is_err() {
            self.skipped += 1;
        }
        result
    }

    fn expire(&mut self) {
        let oldest = self.oldest_kept;
        for values in self.series.values_mut() {
            for series in values.values_mut() {
                while series
                    .first_key_value()
                    .is_some_and(|((m, _, _), _)| *m < oldest)
                {
                    series.pop_first();
                }
            }
            values.retain(|_, s| !s.is_empty());
        }
        self.series.retain(|_, v| !v.is_empty());
    }

    /// Records skipped because they did not decode.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The latest progress of each partition that published any.
    pub fn progress(&self) -> &BTreeMap<i32, ProgressRecord> {
        &self.progress
    }

    /// Unique users of `schema` (with `by` = `value`, or the whole schema when `by` is
    /// `""`) over `window`, and the partitions whose sketches took part.
    pub fn estimate(
        &self,
        schema: &str,
        by: &str,
        value: &str,
        window: Window,
    ) -> (Estimate, BTreeSet<i32>) {
        let series = self
            .series
            .get(&(schema.to_owned(), by.to_owned()))
            .and_then(|values| values.get(value));
        merge(series.into_iter(), window)
    }

    /// The `n` values of `by` with the most unique users of `schema` over `window`, most
    /// first (ties by value), and the partitions whose sketches took part.
    pub fn top(
        &self,
        schema: &str,
        by: &str,
        n: usize,
        window: Window,
    ) -> (Vec<(String, Estimate)>, BTreeSet<i32>) {
        let mut partitions = BTreeSet::new();
        let mut all: Vec<(String, Estimate)> = Vec::new();
        if let Some(values) = self.series.get(&(schema.to_owned(), by.to_owned())) {
            for (value, series) in values {
                if !series.keys().any(|(m, _, _)| window.contains(*m)) {
                    continue;
                }
                let (estimate, used) = merge(std::iter::once(series), window);
                partitions.extend(used);
                all.push((value.clone(), estimate));
            }
        }
        all.sort_by(|a, b| b.1.uniques.cmp(&a.1.uniques).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        (all, partitions)
    }
}

fn merge<'a>(
    series: impl Iterator<Item = &'a Series>,
    window: Window,
) -> (Estimate, BTreeSet<i32>) {
    let mut partitions = BTreeSet::new();
    let mut union = HllUnion::new(SKETCH_LG_K).ok();
    for s in series {
        for ((minute, partition, _), sketch) in
            s.range((window.first_minute, i32::MIN, String::new())..)
        {
            if *minute > window.last_minute {
                break;
            }
            partitions.insert(*partition);
            if let Some(u) = union.as_mut() {
                u.update(sketch);
            }
        }
    }
    let round = |x: f64| x.round().max(0.0) as u64;
    let estimate = match union {
        Some(u) if !u.is_empty() => Estimate {
            uniques: round(u.estimate()),
            lower_bound: round(u.lower_bound(NumStdDev::Three)),
            upper_bound: round(u.upper_bound(NumStdDev::Three)),
        },
        _ => Estimate {
            uniques: 0,
            lower_bound: 0,
            upper_bound: 0,
        },
    };
    (estimate, partitions)
}

/// The relative standard error of every sketch: 1.04 / √(2^lg_k).
pub fn relative_standard_error() -> f64 {
    1.04 / f64::from(1u32 << SKETCH_LG_K).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uniques::PartitionSketches;

    const T0: i64 = 1_796_032_800_000;

    fn publish(p: &mut PartitionSketches, partition: i32, writer: &str, view: &mut StateView) {
        for (key, bytes) in p.take_dirty() {
            let record = SketchRecord::new(&key, partition, writer, &bytes, T0);
            let text = serde_json::to_vec(&record).unwrap();
            view.apply(&text, T0 + 2 * 60_000).unwrap();
        }
    }

    #[test]
    fn sketches_of_partitions_writers_and_minutes_merge_into_one_estimate() {
        let mut view = StateView::default();
        // 3,000 users over two partitions, three minutes; a third of them seen on both; a
        // partition moved mid-way (two writers of partition 1).
        let mut p0 = PartitionSketches::default();
        let mut p1a = PartitionSketches::default();
        let mut p1b = PartitionSketches::default();
        for u in 0..3_000 {
            let user = format!("user-{u}");
            let at = T0 + (u % 3) * 60_000;
            let article = if u % 10 < 9 { "viral" } else { "quiet" };
            p0.record("s/v", &[("article_id", article)], &user, at, at);
            if u % 3 == 0 {
                let target = if u < 1_500 { &mut p1a } else { &mut p1b };
                target.record("s/v", &[("article_id", article)], &user, at, at);
            }
        }
        publish(&mut p0, 0, "w0", &mut view);
        publish(&mut p1a, 1, "w1", &mut view);
        publish(&mut p1b, 1, "w2", &mut view);
        let all = Window::ending_at(T0 + 2 * 60_000, 5);
        let (e, parts) = view.estimate("s/v", "", "", all);
        assert_eq!(parts.into_iter().collect::<Vec<_>>(), [0, 1]);
        let near = |e: &Estimate, exact: f64| {
            assert!(
                (e.uniques as f64 - exact).abs() / exact < 0.03,
                "{e:?} vs {exact}"
            );
            assert!(
                e.lower_bound as f64 <= exact && exact <= e.upper_bound as f64,
                "{e:?} vs {exact}"
            );
        };
        near(&e, 3_000.0);
        near(&view.estimate("s/v", "article_id", "viral", all).0, 2_700.0);
        // One minute only: a third of the users.
        let last = Window::ending_at(T0 + 2 * 60_000, 1);
        near(&view.estimate("s/v", "", "", last).0, 1_000.0);
        let (top, _) = view.top("s/v", "article_id", 1, all);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].0, "viral");
        let (top, _) = view.top("s/v", "article_id", 10, all);
        assert_eq!(
            top.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
            ["viral", "quiet"]
        );
        assert_eq!(view.estimate("s/v", "article_id", "none", all).0.uniques, 0);
    }

    #[test]
    fn unknown_or_broken_records_are_skipped_and_counted() {
        let mut view = StateView::default();
        assert!(matches!(
            view.apply(b"not json", T0),
            Err(StateError::Shape(_))
        ));
        assert_eq!(
            view.apply(br#"{"format":"eventwire-uniques","version":2}"#, T0),
            Err(StateError::Unknown {
                format: "eventwire-uniques".into(),
                version: 2
            })
        );
        let mut record = SketchRecord::new(
            &SketchKey {
                schema: "s/v".into(),
                by: String::new(),
                value: String::new(),
                minute: 1,
            },
            0,
            "w",
            b"\x02\x01\x07",
            T0,
        );
        record.minute = crate::uniques::minute_of(T0);
        assert!(matches!(
            view.apply(&serde_json::to_vec(&record).unwrap(), T0),
            Err(StateError::Sketch(_))
        ));
        record.sketch.base64 = "%%%".into();
        assert!(matches!(
            view.apply(&serde_json::to_vec(&record).unwrap(), T0),
            Err(StateError::Sketch(_))
        ));
        // A sketch from a clock years ahead is skipped, and the view goes on answering.
        let mut p = PartitionSketches::default();
        p.record("s/v", &[], "u", T0, T0);
        let (key, bytes) = p.take_dirty().remove(0);
        let good = SketchRecord::new(&key, 0, "w", &bytes, T0);
        let mut future = good.clone();
        future.minute = crate::uniques::minute_of(253_402_300_799_000);
        assert!(matches!(
            view.apply(&serde_json::to_vec(&future).unwrap(), T0),
            Err(StateError::OutOfWindow(_))
        ));
        view.apply(&serde_json::to_vec(&good).unwrap(), T0).unwrap();
        let window = Window::ending_at(T0, 5);
        assert_eq!(view.estimate("s/v", "", "", window).0.uniques, 1);
        assert_eq!(view.skipped(), 5);
    }

    #[test]
    fn the_format_is_stable() {
        // A published record, as bytes: this build must keep reading it (the format is a
        // contract with other workers, versions and languages).
        let mut p = PartitionSketches::default();
        p.record("com.example/a", &[], "user-1", T0, T0);
        let (key, bytes) = p.take_dirty().remove(0);
        let record = SketchRecord::new(&key, 3, "w", &bytes, T0);
        assert_eq!(
            record.key(),
            r#"["eventwire-uniques",1,"com.example/a","","",29933880,3,"w"]"#
        );
        // DataSketches HLL, list mode, lg_k 14, one coupon: preamble ints 2, serial version
        // 1, family 7 (HLL).
        assert_eq!(&bytes[..3], &[2, 1, 7]);
        assert_eq!(bytes[3], SKETCH_LG_K);
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.starts_with(r#"{"format":"eventwire-uniques","version":1,"schema":"com.example/a","by":"","value":"","minute":29933880,"partition":3,"writer":"w","published_at_ms":1796032800000,"sketch":{"kind":"datasketches-hll","lg_k":14,"base64":""#), "{text}");
        let mut view = StateView::default();
        view.apply(text.as_bytes(), T0).unwrap();
        assert_eq!(
            view.estimate("com.example/a", "", "", Window::ending_at(T0, 1))
                .0
                .uniques,
            1
        );
    }
}
