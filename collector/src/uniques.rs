//! Approximate unique users per schema over sliding windows (HyperLogLog).
//!
//! Each schema keeps one HyperLogLog sketch per minute for the last hour. A query for the
//! last N minutes merges the N newest sketches. Users are counted by `user_id`, else
//! `anonymous_id`. Memory is bounded: at most [`MAX_SCHEMAS`] schemas × 60 sketches of at
//! most 4 KiB (precision 12, ~1.6% standard error), and small sketches stay small.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use cardinality_estimator::CardinalityEstimator;

/// Width of one bucket.
pub const BUCKET: Duration = Duration::from_secs(60);
/// Longest window that can be asked for.
pub const MAX_WINDOW: Duration = Duration::from_secs(60 * 60);
/// Most schemas tracked; later ones are not counted (and say so in the answer).
pub const MAX_SCHEMAS: usize = 256;

type Sketch = CardinalityEstimator<str>;

/// Per-schema, per-minute sketches.
#[derive(Default)]
pub struct Uniques {
    schemas: HashMap<String, VecDeque<(i64, Sketch)>>,
}

impl std::fmt::Debug for Uniques {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uniques")
            .field("schemas", &self.schemas.len())
            .finish()
    }
}

/// Why a uniques query has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UniquesError {
    /// The window is not a duration between one minute and one hour.
    #[error("window must be a duration from 1m to 60m, like `5m`")]
    Window,
}

fn minute(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(BUCKET.as_secs() as i64)
}

impl Uniques {
    /// Counts `user` for `schema` at `unix_secs`. Returns false when the schema is not
    /// tracked because [`MAX_SCHEMAS`] are already.
    pub fn record(&mut self, schema: &str, user: &str, unix_secs: i64) -> bool {
        let now = minute(unix_secs);
        if !self.schemas.contains_key(schema) {
            if self.schemas.len() >= MAX_SCHEMAS {
                return false;
            }
            self.schemas.insert(schema.to_owned(), VecDeque::new());
        }
        let Some(buckets) = self.schemas.get_mut(schema) else {
            return false;
        };
        let oldest = now - (MAX_WINDOW.as_secs() / BUCKET.as_secs()) as i64;
        while buckets.front().is_some_and(|(m, _)| *m <= oldest) {
            buckets.pop_front();
        }
        match buckets.back_mut() {
            Some((m, sketch)) if *m == now => sketch.insert(user),
            // Late events land in the newest bucket: it keeps the sketch list ordered.
            Some((m, sketch)) if *m > now => sketch.insert(user),
            _ => {
                let mut sketch = Sketch::new();
                sketch.insert(user);
                buckets.push_back((now, sketch));
            }
        }
        true
    }

    /// Estimated distinct users of `schema` over the `window` ending at `unix_secs`.
    pub fn estimate(
        &self,
        schema: &str,
        window: Duration,
        unix_secs: i64,
    ) -> Result<u64, UniquesError> {
        if window < BUCKET || window > MAX_WINDOW {
            return Err(UniquesError::Window);
        }
        let now = minute(unix_secs);
        let span = window.as_secs().div_ceil(BUCKET.as_secs()) as i64;
        let Some(buckets) = self.schemas.get(schema) else {
            return Ok(0);
        };
        let mut merged = Sketch::new();
        for (m, sketch) in buckets.iter().rev() {
            if *m <= now - span {
                break;
            }
            merged.merge(sketch);
        }
        Ok(merged.estimate() as u64)
    }

    /// Schemas tracked.
    pub fn schemas(&self) -> usize {
        self.schemas.len()
    }
}

/// Parses `5m`, `90s`, `1h`.
pub fn parse_window(s: &str) -> Result<Duration, UniquesError> {
    humantime::parse_duration(s).map_err(|_| UniquesError::Window)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_662_600; // a minute boundary

    #[test]
    fn counts_distinct_users_in_sliding_windows() {
        let mut u = Uniques::default();
        // 1,000 users in minute 0, 500 of them again plus 500 new in minute 10.
        for i in 0..1000 {
            u.record("s", &format!("user-{i}"), T0 + 5);
        }
        for i in 500..1500 {
            u.record("s", &format!("user-{i}"), T0 + 600 + 5);
        }
        let near = |got: u64, want: f64| (got as f64 - want).abs() / want < 0.05;
        let at = T0 + 600 + 30;
        let five = u.estimate("s", Duration::from_secs(300), at).unwrap();
        assert!(near(five, 1000.0), "{five}");
        let fifteen = u.estimate("s", Duration::from_secs(900), at).unwrap();
        assert!(near(fifteen, 1500.0), "{fifteen}");
        // An hour later, everything has slid out.
        assert_eq!(
            u.estimate("s", Duration::from_secs(300), T0 + 7200)
                .unwrap(),
            0
        );
        assert_eq!(
            u.estimate("other", Duration::from_secs(300), at).unwrap(),
            0
        );
        // Repeats do not count twice.
        for _ in 0..10 {
            u.record("t", "same-user", T0);
        }
        assert_eq!(u.estimate("t", Duration::from_secs(60), T0).unwrap(), 1);
    }

    #[test]
    fn windows_are_bounded() {
        let u = Uniques::default();
        assert_eq!(
            u.estimate("s", Duration::from_secs(10), T0),
            Err(UniquesError::Window)
        );
        assert_eq!(
            u.estimate("s", Duration::from_secs(7200), T0),
            Err(UniquesError::Window)
        );
        assert_eq!(parse_window("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_window("five").is_err());
    }

    #[test]
    fn schema_count_is_bounded() {
        let mut u = Uniques::default();
        for i in 0..MAX_SCHEMAS {
            assert!(u.record(&format!("s{i}"), "u", T0));
        }
        assert!(!u.record("one-too-many", "u", T0));
        assert_eq!(u.schemas(), MAX_SCHEMAS);
    }
}
