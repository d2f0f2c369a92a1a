//! Profiling driver: only `track()` in a loop (for perf/callgrind).
//!
//! Run: `perf record -g target/release/track_profile`

#![allow(clippy::unwrap_used)] // benchmark harness: fail loudly

use std::hint::black_box;
use std::time::Duration;

use eventwire::{NoopTransport, Tracker};
use eventwire_bench::MediaPlay;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300_000);
    let tracker = Tracker::builder()
        .transport(NoopTransport)
        .queue_capacity(n as usize)
        .max_queue_bytes(usize::MAX / 2)
        .build()
        .unwrap();
    let event = MediaPlay::sample(1);
    for _ in 0..n {
        black_box(tracker.track(event.clone()).unwrap());
    }
    tracker.shutdown(Duration::from_secs(30)).unwrap();
}
