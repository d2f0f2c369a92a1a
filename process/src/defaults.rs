//! Every default of `eventwire process`, in one place; the CLI's flags start from these.

use std::time::Duration;

/// The consumer group the workers join.
pub const DEFAULT_GROUP: &str = "eventwire-process";
/// How long an event id is remembered after the event was received (its `received_at`).
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// Most event ids remembered per partition. When a partition receives more than this
/// within the window, the oldest ids are forgotten early (counted in
/// `eventwire_process_dedup_evicted_early_total`); ≈ 48 bytes each, so ≈ 96 MB per partition.
pub const DEFAULT_DEDUP_MAX_IDS: usize = 2_000_000;
/// How often progress is made durable: dirty sketches published, then input offsets
/// committed. A crash or a partition moving repeats at most this much input (the repeats
/// are dropped as duplicates).
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(2);
/// How often the sketches that changed (the open minute's, and late updates of closed ones)
/// are published between commits.
pub const DEFAULT_PUBLISH_INTERVAL: Duration = Duration::from_secs(2);
/// Most input records handled in one step (one write to the output).
pub const DEFAULT_MAX_BATCH: usize = 5_000;
/// Longest a step waits for more input before handling what it has.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(20);
/// A worker that has not been heard from for this long is out of the group, and its
/// partitions go to the others.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a gap in a partition's offsets is read again before the missing offsets are
/// taken as absent ([`crate::order`]): a broker that stores batches as objects can answer a
/// fetch with the next batch while one is still being stored (filled within ~50 ms on the
/// test broker). Real gaps (compaction, transaction markers, retention) each cost this wait.
pub const DEFAULT_INPUT_GAP_WAIT: Duration = Duration::from_secs(2);
/// The same for reading the output back ([`crate::output::KafkaOutput::read_back`]); not
/// configurable: the output is written by the workers alone, never compacted or in
/// transactions, so its only gaps are batches still being stored.
pub const OUTPUT_GAP_WAIT: Duration = Duration::from_secs(2);
/// Longest a fetch waits at the broker for records to arrive.
pub const FETCH_WAIT_MAX: Duration = Duration::from_millis(100);
/// Most input prefetched (KiB) while a step runs.
pub const PREFETCH_KIB: usize = 16 * 1024;
/// Longest wait between two tries of a failed output write.
pub const OUTPUT_RETRY_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one produced record may wait for the broker's acknowledgement.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long rebuilding one partition's dedup state may wait for the broker per read.
pub const REBUILD_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How far past this worker's clock a record's `received_at` counts (for the dedup window
/// and the sketches' minutes); later times count as this.
pub const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(60);
/// How far past this worker's clock a sketch's minute may be and still count (collectors'
/// and workers' clocks differ; a minute further ahead no query can reach).
pub const SKETCH_CLOCK_AHEAD: Duration = Duration::from_secs(10 * 60);
/// Longest key (bytes) a dead letter keeps of its record's key.
pub const MAX_DEAD_LETTER_KEY_BYTES: usize = 256;
/// The state topic's segments roll this often, so its retention and compaction apply.
pub const STATE_SEGMENT: Duration = Duration::from_secs(15 * 60);
/// How long the state topic keeps records (it is also compacted): past the longest window
/// a query can ask for, so old minutes' sketches go.
pub const STATE_RETENTION: Duration = Duration::from_secs(2 * 60 * 60);
/// Where the query API listens.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9091";

/// HyperLogLog precision: 2^14 registers, relative standard error 1.04/√16384 ≈ 0.81 %;
/// a dense sketch is 8 KiB (4 bits per register), a small one a list of its users.
pub const SKETCH_LG_K: u8 = 14;
/// Width of one sketch bucket, in seconds of `received_at`.
pub const SKETCH_BUCKET_SECONDS: i64 = 60;
/// Longest window a query may ask for, and how long sketches are kept: 60 one-minute buckets.
pub const SKETCH_MAX_MINUTES: i64 = 60;
/// Most distinct schemas counted per partition (later ones are counted as refused).
pub const MAX_SCHEMAS: usize = 256;
/// Most distinct values of one dimension per minute and partition (later ones are counted
/// as refused; the per-schema total still counts their users).
pub const MAX_VALUES_PER_MINUTE: usize = 100_000;
/// Longest dimension value (and schema name) counted, in bytes; longer ones are refused
/// (counted), so a state record stays far under a broker's message size limit.
pub const MAX_VALUE_BYTES: usize = 512;
/// Default length of a uniques query's window.
pub const DEFAULT_QUERY_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Default and largest `top=N`.
pub const MAX_TOP: usize = 1_000;
