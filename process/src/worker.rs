//! The consume loop of one worker: a member of the consumer group, on its own thread.
//!
//! One step at a time: poll a batch, read each record ([`crate::line`]), drop the ids its
//! partition already wrote ([`crate::dedup`]), count users ([`crate::uniques`]), write the
//! first occurrences and dead letters and wait until both are stored, remember the written
//! ids. Every publish interval: publish the sketches that changed ([`crate::state`]). Every
//! commit interval: publish, then commit the next input offsets, each with where its partition's dedup window starts in
//! the output. Nothing is committed before it is stored, so a crash repeats input but never
//! skips it; the repeats are dropped because the new owner of a partition first reads back
//! what the partition wrote ([`crate::output::KafkaOutput::read_back`]).
//!
//! Each partition is taken in offset order ([`crate::order`]): a record past a gap is not
//! taken, and the partition is read again from the gap, so no offset is committed past a
//! record the worker never saw.
//!
//! Rebalances are handled between steps: the group's callbacks run inside `poll`, when no
//! write is in flight. A revoked partition's state is dropped, with any of its records
//! still waiting (they are not committed, so its next owner reads them); an assigned
//! partition's state is rebuilt before any of its records is handled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventwire_collector::record::{DeadLetter, ErrorDetail};
use eventwire_collector::sink::{Sink, SinkRecord};
use eventwire_schema::protocol::ErrorCode;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::dedup::PartitionWindow;
use crate::defaults::{
    DELIVERY_TIMEOUT, MAX_CLOCK_AHEAD, MAX_DEAD_LETTER_KEY_BYTES, OUTPUT_RETRY_MAX_BACKOFF,
    REBUILD_READ_TIMEOUT,
};
use crate::line;
use crate::order::{InputOrder, Intake};
use crate::output::{OutRecord, Outcome, Output};
use crate::state::{ProgressRecord, SketchRecord, PROGRESS_FORMAT, VERSION};
use crate::uniques::PartitionSketches;
use crate::{ProcessConfig, ProcessError, Shared};

/// What the group told the worker during a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupEvent {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// The consumer's context: records the group's rebalances for the loop to handle.
#[derive(Default)]
pub(crate) struct GroupContext {
    events: Mutex<Vec<GroupEvent>>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |tpl: &TopicPartitionList| -> Vec<i32> {
            tpl.elements().iter().map(|e| e.partition()).collect()
        };
        let event = match rebalance {
            Rebalance::Assign(tpl) => GroupEvent::Assigned(partitions(tpl)),
            Rebalance::Revoke(tpl) => GroupEvent::Revoked(partitions(tpl)),
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "consumer group rebalance failed");
                return;
            }
        };
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }
}

/// What the committed offset carries: where the partition's dedup window starts in the
/// output (JSON, versioned, in the offset's metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct CommitMetadata {
    v: u32,
    /// Output offset of the oldest id still in the window.
    output_from: i64,
}

/// The state of one owned partition.
#[derive(Debug)]
struct Owned {
    window: PartitionWindow,
    sketches: PartitionSketches,
    /// Next input offset to commit (one past the last record handled).
    next: Option<i64>,
    /// Last offset committed.
    committed: Option<i64>,
    /// `next` when the sketches were last published.
    published: Option<i64>,
    newest_received_ms: i64,
    /// Highest output offset known to hold a record of this partition.
    output_end: Option<i64>,
    /// Which assignment this is: a step applies its offsets only to the assignment it
    /// read them under (a partition revoked and given back meanwhile starts again from
    /// its committed offset).
    epoch: u64,
    /// The reading position: records are taken in offset order.
    order: InputOrder,
}

/// One worker of the group.
pub(crate) struct Worker {
    pub(crate) consumer: BaseConsumer<GroupContext>,
    pub(crate) config: Arc<ProcessConfig>,
    pub(crate) output: Output,
    pub(crate) dead: Arc<dyn Sink>,
    pub(crate) state: FutureProducer,
    pub(crate) shared: Arc<Shared>,
    pub(crate) runtime: tokio::runtime::Handle,
    /// Ids a file output already holds (read from its tail at start).
    pub(crate) seed: HashSet<u128>,
    owned: BTreeMap<i32, Owned>,
    /// Windows of revoked partitions, kept for a file or stdout output: only this worker
    /// can know what its file holds, and the partition may come back to it.
    kept: HashMap<i32, PartitionWindow>,
    epochs: u64,
    /// True while `store` has the assignment paused.
    pausing: bool,
    /// Partitions of the input topic.
    pub(crate) input_partitions: i32,
    last_commit: Instant,
    last_publish: Instant,
}

/// Records read and still to be handled, each with the assignment it was read under.
type Pending = Vec<(u64, OwnedMessage)>;

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        consumer: BaseConsumer<GroupContext>,
        config: Arc<ProcessConfig>,
        output: Output,
        dead: Arc<dyn Sink>,
        state: FutureProducer,
        shared: Arc<Shared>,
        runtime: tokio::runtime::Handle,
        seed: HashSet<u128>,
    ) -> Self {
        Worker {
            consumer,
            config,
            output,
            dead,
            state,
            shared,
            runtime,
            seed,
            owned: BTreeMap::new(),
            kept: HashMap::new(),
            epochs: 0,
            pausing: false,
            input_partitions: 0,
            last_commit: Instant::now(),
            last_publish: Instant::now(),
        }
    }

    /// Runs until `stop` is set; then commits what was stored and leaves the group.
    pub(crate) fn run(mut self, stop: &AtomicBool) -> Result<(), ProcessError> {
        self.consumer
            .subscribe(&[self.config.input.as_str()])
            .map_err(|e| {
                ProcessError::Kafka(format!("subscribing to {}: {e}", self.config.input))
            })?;
        let mut pending: Pending = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let deadline = Instant::now() + self.config.linger;
            loop {
                let wait = deadline.saturating_duration_since(Instant::now());
                let polled = self.consumer.poll(wait).map(|r| r.map(|m| m.detach()));
                self.handle_group_events(&mut pending)?;
                match polled {
                    Some(Ok(m)) => self.intake(m, &mut pending),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "consumer error");
                        break;
                    }
                    None => break,
                }
                if pending.len() >= self.config.max_batch || Instant::now() >= deadline {
                    break;
                }
            }
            if !pending.is_empty() {
                let batch = std::mem::take(&mut pending);
                if !self.step(batch, &mut pending, stop)? {
                    break;
                }
            }
            if self.last_commit.elapsed() >= self.config.commit_interval {
                // No partition stays paused outside a failing `store`, whatever librdkafka
                // did with the pause across a lost session and a reassignment.
                self.resume_all();
                self.commit();
            } else if self.last_publish.elapsed() >= self.config.publish_interval {
                self.publish();
            }
        }
        self.commit();
        self.consumer.unsubscribe();
        Ok(())
    }

    /// Takes a record just polled into `pending`, in its partition's offset order
    /// ([`crate::order`]): a record past a gap is not taken, and the partition is read again
    /// from the gap; a gap still open after the gap wait is taken as absent (counted,
    /// logged).
    fn intake(&mut self, m: OwnedMessage, pending: &mut Pending) {
        let p = m.partition();
        let Some(owned) = self.owned.get_mut(&p) else {
            return;
        };
        let offered = owned.order.offer(m.offset(), Instant::now());
        match offered.intake {
            Intake::Take => {
                if offered.filled {
                    self.shared
                        .metrics
                        .input_gaps
                        .with_label_values(&["filled"])
                        .inc();
                    tracing::info!(
                        partition = p,
                        offset = m.offset(),
                        "a gap in the input filled when read again"
                    );
                }
                pending.push((owned.epoch, m));
            }
            Intake::TakeSkipping(n) => {
                self.shared
                    .metrics
                    .input_gaps
                    .with_label_values(&["skipped"])
                    .inc();
                self.shared
                    .metrics
                    .input_skipped
                    .inc_by(u64::try_from(n).unwrap_or(0));
                tracing::warn!(
                    partition = p,
                    from = m.offset() - n,
                    to = m.offset(),
                    wait = ?self.config.input_gap_wait,
                    "input offsets still missing after the gap wait; taken as absent (compacted, transaction markers, or deleted by retention before they were read)"
                );
                pending.push((owned.epoch, m));
            }
            Intake::ReadAgain(at) => {
                if let Err(e) =
                    self.consumer
                        .seek(&self.config.input, p, Offset::Offset(at), Duration::ZERO)
                {
                    // Not taken either way: the next record past the gap tries again.
                    tracing::warn!(partition = p, offset = at, error = %e, "cannot read the input again from a gap");
                }
            }
        }
    }

    /// Applies the rebalances recorded during the last poll.
    fn handle_group_events(&mut self, pending: &mut Pending) -> Result<(), ProcessError> {
        let events = std::mem::take(
            &mut *self
                .consumer
                .context()
                .events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for event in events {
            match event {
                GroupEvent::Revoked(partitions) => {
                    for p in &partitions {
                        if let Some(owned) = self.owned.remove(p) {
                            if matches!(self.output, Output::Sink(_)) {
                                self.kept.insert(*p, owned.window);
                            }
                        }
                        self.shared
                            .metrics
                            .lag
                            .remove_label_values(&[&p.to_string()])
                            .ok();
                    }
                    pending.retain(|(_, m)| !partitions.contains(&m.partition()));
                    tracing::info!(?partitions, "partitions revoked");
                }
                GroupEvent::Assigned(partitions) => {
                    for p in partitions {
                        let owned = self.rebuild(p)?;
                        self.owned.insert(p, owned);
                        // librdkafka keeps a partition paused across its revocation and
                        // reassignment: one paused by a failing `store` and given back
                        // would never be fetched again.
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition(&self.config.input, p);
                        if self.pausing {
                            // A failing `store` holds the input back: this one too.
                            let _ = self.consumer.pause(&tpl);
                        } else {
                            self.resume_all();
                        }
                    }
                }
            }
        }
        self.shared.set_owned(self.owned.keys().copied().collect());
        self.shared.metrics.partitions.set(self.owned.len() as i64);
        Ok(())
    }

    /// The state of newly assigned partition `p`: its dedup window read back from the output.
    fn rebuild(&mut self, p: i32) -> Result<Owned, ProcessError> {
        self.epochs += 1;
        let mut owned = Owned {
            window: self.kept.remove(&p).unwrap_or_else(|| {
                PartitionWindow::new(self.config.dedup_window, self.config.dedup_max_ids)
            }),
            sketches: PartitionSketches::default(),
            next: None,
            committed: None,
            published: None,
            newest_received_ms: i64::MIN,
            output_end: None,
            epoch: self.epochs,
            order: InputOrder::new(None, self.config.input_gap_wait),
        };
        let started = Instant::now();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.config.input, p);
        let element = match self.consumer.committed_offsets(tpl, REBUILD_READ_TIMEOUT) {
            Ok(c) => c
                .elements()
                .into_iter()
                .next()
                .map(|e| (e.offset(), e.metadata().to_owned())),
            Err(e) => {
                let e = ProcessError::Kafka(format!(
                    "reading the committed offset of {}/{p}: {e}",
                    self.config.input
                ));
                // A Kafka output needs the window's start, kept with the offset.
                if matches!(self.output, Output::Kafka(_)) {
                    return Err(e);
                }
                tracing::warn!(partition = p, error = %e, "reading from where the consumer starts");
                None
            }
        };
        owned.committed = element.as_ref().and_then(|(offset, _)| match offset {
            Offset::Offset(o) => Some(*o),
            _ => None,
        });
        // Where the consumer starts: the committed offset; with none, the start of the log
        // (`auto.offset.reset=earliest`, unless the options say otherwise). Not known when
        // the committed offset could not be read or the options reset elsewhere: then the
        // first record read is where reading starts.
        let from_earliest = !self.config.kafka_options.pairs().iter().any(|(k, v)| {
            k == "auto.offset.reset" && !matches!(v.as_str(), "earliest" | "smallest" | "beginning")
        });
        let start = match &element {
            Some((Offset::Offset(o), _)) => Some(*o),
            Some(_) if from_earliest => self
                .consumer
                .fetch_watermarks(&self.config.input, p, REBUILD_READ_TIMEOUT)
                .ok()
                .map(|(low, _)| low),
            _ => None,
        };
        owned.order = InputOrder::new(start, self.config.input_gap_wait);
        let Output::Kafka(output) = &self.output else {
            tracing::info!(partition = p, ?start, "partition assigned");
            return Ok(owned);
        };
        let from = element
            .as_ref()
            .and_then(|(_, metadata)| serde_json::from_str::<CommitMetadata>(metadata).ok())
            .map_or(0, |m| m.output_from);
        let mut tries = 0;
        let ids = loop {
            match output.read_back(p, from) {
                Ok(ids) => break ids,
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %e, partition = p, "reading back the output failed; retrying");
                    std::thread::sleep(Duration::from_millis(500 * tries));
                }
                Err(e) => return Err(ProcessError::Kafka(e.to_string())),
            }
        };
        self.shared.metrics.rebuilds.inc();
        self.shared.metrics.rebuild_records.inc_by(ids.len() as u64);
        let now_ms = chrono::Utc::now().timestamp_millis();
        for id in &ids {
            owned
                .window
                .insert(id.key, window_time(id.received_ms, now_ms), Some(id.offset));
            owned.output_end = owned.output_end.max(Some(id.offset));
        }
        tracing::info!(
            partition = p,
            output_from = from,
            ids = ids.len(),
            held = owned.window.len(),
            ms = started.elapsed().as_millis() as u64,
            "partition assigned; dedup window read back from the output"
        );
        Ok(owned)
    }

    /// Handles one batch; returns false when told to stop while its writes were failing
    /// (nothing of it is committed then).
    fn step(
        &mut self,
        batch: Pending,
        pending: &mut Pending,
        stop: &AtomicBool,
    ) -> Result<bool, ProcessError> {
        let specs = &self.config.uniques;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut outs: Vec<OutRecord> = Vec::new();
        let mut dead: Vec<(i32, SinkRecord)> = Vec::new();
        let mut chosen: HashSet<u128> = HashSet::new();
        // Per partition: the last offset handled, under which assignment.
        let mut last: BTreeMap<i32, (i64, u64)> = BTreeMap::new();
        let mut duplicates = 0u64;
        let mut refused = 0u64;
        for (read_under, m) in &batch {
            let p = m.partition();
            let Some(owned) = self.owned.get_mut(&p).filter(|o| o.epoch == *read_under) else {
                continue;
            };
            last.insert(p, (m.offset(), owned.epoch));
            let payload = m.payload().unwrap_or_default();
            match line::read(payload, specs) {
                Err(e) => {
                    let letter = DeadLetter::for_raw(
                        &now,
                        e.code(),
                        vec![ErrorDetail::new(
                            format!("kafka:{}/{p}/{}", self.config.input, m.offset()),
                            "good_line",
                            e.to_string(),
                        )],
                        payload,
                    );
                    dead.push((
                        p,
                        SinkRecord {
                            key: m.key().map(|k| {
                                String::from_utf8_lossy(
                                    &k[..k.len().min(MAX_DEAD_LETTER_KEY_BYTES)],
                                )
                                .into_owned()
                            }),
                            line: serde_json::to_vec(&letter).unwrap_or_default(),
                        },
                    ));
                }
                Ok(line) => {
                    // Every copy is counted: a union counts a user once, and a partition's
                    // new owner must count the repeats it drops, whose first copies the old
                    // owner may not have published.
                    if let Some(user) = &line.user {
                        let dims: Vec<(&str, &str)> = line
                            .dimensions
                            .iter()
                            .filter_map(|(i, v)| Some((specs.get(*i)?.by.as_str(), v.as_str())))
                            .collect();
                        refused += u64::from(
                            owned
                                .sketches
                                .record(&line.schema, &dims, user, line.received_ms, now_ms)
                                .refused,
                        );
                    }
                    owned.newest_received_ms = owned
                        .newest_received_ms
                        .max(window_time(line.received_ms, now_ms));
                    if owned.window.contains(line.key)
                        || self.seed.contains(&line.key)
                        || !chosen.insert(line.key)
                    {
                        duplicates += 1;
                        continue;
                    }
                    outs.push(OutRecord {
                        partition: p,
                        source_offset: m.offset(),
                        key: line.key,
                        event_id: line.event_id,
                        received_ms: line.received_ms,
                        line: payload.to_vec(),
                    });
                }
            }
        }
        self.shared
            .metrics
            .records
            .with_label_values(&["duplicate"])
            .inc_by(duplicates);
        self.shared.metrics.uniques_refused.inc_by(refused);
        if !self.store(outs, dead, pending, stop)? {
            return Ok(false);
        }
        for (p, (offset, epoch)) in last {
            if let Some(owned) = self.owned.get_mut(&p).filter(|o| o.epoch == epoch) {
                owned.next = Some(offset + 1);
            }
        }
        self.shared
            .metrics
            .dedup_ids
            .set(self.owned.values().map(|o| o.window.len() as i64).sum());
        Ok(true)
    }

    /// Remembers `record`, written at `offset`, in its partition's window.
    fn remember(&mut self, record: &OutRecord, offset: Option<i64>, now_ms: i64) {
        if let Some(owned) = self.owned.get_mut(&record.partition) {
            let before = owned.window.evicted_early();
            owned
                .window
                .insert(record.key, window_time(record.received_ms, now_ms), offset);
            owned.output_end = owned.output_end.max(offset);
            self.shared
                .metrics
                .dedup_evicted_early
                .inc_by(owned.window.evicted_early() - before);
        }
    }

    /// The dead letter of a record the output refuses as too large even alone.
    fn too_large(&self, record: &OutRecord, message: String) -> (i32, SinkRecord) {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let letter = DeadLetter::for_raw(
            &at,
            ErrorCode::TooLarge,
            vec![ErrorDetail::new(
                format!(
                    "kafka:{}/{}/{}",
                    self.config.input, record.partition, record.source_offset
                ),
                "output",
                message,
            )],
            &record.line,
        );
        (
            record.partition,
            SinkRecord {
                key: Some(record.event_id.clone()),
                line: serde_json::to_vec(&letter).unwrap_or_default(),
            },
        )
    }

    /// After a failed write to a Kafka output, which of `failed` the broker stored anyway (a
    /// timed-out record may have been appended): reads each partition back from past what
    /// it knew and remembers what it finds. Returns the records still to write, or `Err`
    /// with the reason when a partition could not be read back — then nothing may be
    /// written this round (a blind retry could write twice).
    fn settle_unknown(
        &mut self,
        failed: Vec<OutRecord>,
        now_ms: i64,
    ) -> Result<Vec<OutRecord>, (Vec<OutRecord>, String)> {
        let Output::Kafka(output) = &self.output else {
            return Ok(failed);
        };
        let partitions: HashSet<i32> = failed.iter().map(|r| r.partition).collect();
        let mut found: HashMap<(i32, u128), i64> = HashMap::new();
        for p in partitions {
            let Some(owned) = self.owned.get(&p) else {
                continue;
            };
            let from = owned
                .output_end
                .map_or_else(|| owned.window.window_start().unwrap_or(0), |e| e + 1);
            match output.read_back(p, from) {
                Ok(ids) => found.extend(ids.iter().map(|id| ((p, id.key), id.offset))),
                Err(e) => return Err((failed, e.to_string())),
            }
        }
        let mut still = Vec::with_capacity(failed.len());
        for record in failed {
            let held = self
                .owned
                .get(&record.partition)
                .is_some_and(|o| o.window.contains(record.key));
            match found.get(&(record.partition, record.key)) {
                // Stored by the failed write: remembered now.
                Some(&offset) => {
                    self.shared.metrics.settled.inc();
                    self.shared
                        .metrics
                        .records
                        .with_label_values(&["written"])
                        .inc();
                    self.remember(&record, Some(offset), now_ms);
                }
                // Already known (read back when the partition was given again).
                None if held => self.shared.metrics.settled.inc(),
                None => still.push(record),
            }
        }
        Ok(still)
    }

    /// Writes `outs` and `dead` until both are stored, retrying with backoff; records of
    /// partitions revoked meanwhile are dropped (they were not committed). Before a retry,
    /// what a failed write stored anyway is read back and not written again. While
    /// retrying, the worker keeps polling (its partitions paused) so the group sees it alive
    /// and can take partitions away. Returns false when told to stop before everything was
    /// stored.
    fn store(
        &mut self,
        mut outs: Vec<OutRecord>,
        mut dead: Vec<(i32, SinkRecord)>,
        pending: &mut Pending,
        stop: &AtomicBool,
    ) -> Result<bool, ProcessError> {
        let mut backoff = Duration::from_millis(100);
        let mut unknown = false;
        // The assignment each partition's records were read under: a partition taken away
        // and given back meanwhile replays them from its committed offset, so they are not
        // written (or dead-lettered) from here.
        let epochs: HashMap<i32, u64> = self.owned.iter().map(|(p, o)| (*p, o.epoch)).collect();
        let stored = loop {
            let now_ms = chrono::Utc::now().timestamp_millis();
            let current = |owned: &BTreeMap<i32, Owned>, p: &i32| {
                owned.get(p).map(|o| o.epoch) == epochs.get(p).copied()
            };
            outs.retain(|r| current(&self.owned, &r.partition));
            dead.retain(|(p, _)| current(&self.owned, p));
            let mut failure = None;
            if unknown && !outs.is_empty() {
                match self.settle_unknown(std::mem::take(&mut outs), now_ms) {
                    Ok(still) => outs = still,
                    Err((back, e)) => {
                        outs = back;
                        failure = Some(format!(
                            "cannot read back {} after a failed write: {e}",
                            self.output.describe()
                        ));
                    }
                }
            }
            if failure.is_none() && !outs.is_empty() {
                let alone = outs.len() == 1;
                let results = self.runtime.block_on(self.output.write(&outs));
                let mut failed = Vec::new();
                let mut retry_alone = Vec::new();
                let mut count = 0u64;
                for (record, outcome) in std::mem::take(&mut outs).into_iter().zip(results) {
                    match outcome {
                        Outcome::Written(offset) => {
                            count += 1;
                            self.remember(&record, offset, now_ms);
                        }
                        Outcome::TooLarge(_) if !alone => {
                            // The broker refuses a whole batch as too large: the record is
                            // tried alone before it is judged.
                            retry_alone.push(record);
                        }
                        Outcome::TooLarge(message) => {
                            // Alone, still too large: retrying cannot help, the record goes
                            // to the dead letters.
                            dead.push(self.too_large(&record, message));
                        }
                        Outcome::Failed(e) => {
                            failure
                                .get_or_insert_with(|| format!("{}: {e}", self.output.describe()));
                            failed.push(record);
                        }
                    }
                }
                if !failed.is_empty() {
                    unknown = true;
                    self.shared
                        .metrics
                        .write_failures
                        .with_label_values(&["output"])
                        .inc();
                }
                for record in retry_alone {
                    match self
                        .runtime
                        .block_on(self.output.write(std::slice::from_ref(&record)))
                        .pop()
                    {
                        Some(Outcome::Written(offset)) => {
                            count += 1;
                            self.remember(&record, offset, now_ms);
                        }
                        Some(Outcome::TooLarge(message)) => {
                            dead.push(self.too_large(&record, message));
                        }
                        Some(Outcome::Failed(e)) => {
                            unknown = true;
                            failure
                                .get_or_insert_with(|| format!("{}: {e}", self.output.describe()));
                            failed.push(record);
                        }
                        None => failed.push(record),
                    }
                }
                self.shared
                    .metrics
                    .records
                    .with_label_values(&["written"])
                    .inc_by(count);
                outs = failed;
            }
            if !dead.is_empty() {
                let records: Vec<SinkRecord> = dead.iter().map(|(_, r)| r.clone()).collect();
                match self.runtime.block_on(self.dead.write(&records)) {
                    Ok(()) => {
                        self.shared
                            .metrics
                            .records
                            .with_label_values(&["dead_letter"])
                            .inc_by(dead.len() as u64);
                        dead.clear();
                    }
                    Err(e) => {
                        let written: HashSet<usize> = e.written().iter().copied().collect();
                        self.shared
                            .metrics
                            .records
                            .with_label_values(&["dead_letter"])
                            .inc_by(written.len() as u64);
                        let mut i = 0;
                        dead.retain(|_| {
                            i += 1;
                            !written.contains(&(i - 1))
                        });
                        self.shared
                            .metrics
                            .write_failures
                            .with_label_values(&["dead_letters"])
                            .inc();
                        failure.get_or_insert(e.to_string());
                    }
                }
            }
            if outs.is_empty() && dead.is_empty() {
                break true;
            }
            let failure = failure.unwrap_or_else(|| "a write failed".into());
            self.shared.set_failing(Some(failure.clone()));
            tracing::error!(error = %failure, waiting = outs.len() + dead.len(), "cannot store; not committing, retrying in {backoff:?}");
            if stop.load(Ordering::Relaxed) {
                break false;
            }
            if !self.pausing {
                if let Ok(assignment) = self.consumer.assignment() {
                    self.pausing = self.consumer.pause(&assignment).is_ok();
                }
            }
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                let polled = self
                    .consumer
                    .poll(until.saturating_duration_since(Instant::now()))
                    .map(|r| r.map(|m| m.detach()));
                self.handle_group_events(pending)?;
                if let Some(Ok(m)) = polled {
                    self.intake(m, pending);
                }
            }
            backoff = (backoff * 2).min(OUTPUT_RETRY_MAX_BACKOFF);
        };
        if self.pausing {
            // Every partition, including those taken away and given back meanwhile.
            self.pausing = false;
            self.resume_all();
        }
        // Clear only what `store` reported: a publishing failure stays until publishing works.
        if stored
            && !self
                .shared
                .failing()
                .is_some_and(|f| f.starts_with("publishing"))
        {
            self.shared.set_failing(None);
        }
        Ok(stored)
    }

    /// Resumes every partition of the input (librdkafka keeps a partition's pause across
    /// its revocation and reassignment; resuming one not assigned is harmless).
    fn resume_all(&self) {
        let mut tpl = self.consumer.assignment().unwrap_or_default();
        for p in 0..self.input_partitions {
            if tpl.find_partition(&self.config.input, p).is_none() {
                tpl.add_partition(&self.config.input, p);
            }
        }
        let _ = self.consumer.resume(&tpl);
    }

    /// Publishes the sketches that changed and each partition's progress (the offsets it
    /// is about to commit). Returns false when publishing failed (the sketches stay dirty).
    fn publish(&mut self) -> bool {
        self.last_publish = Instant::now();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        let mut taken = Vec::new();
        for (p, owned) in &mut self.owned {
            let dirty = owned.sketches.take_dirty();
            if dirty.is_empty() && owned.next == owned.published {
                continue;
            }
            for (key, bytes) in &dirty {
                let record = SketchRecord::new(key, *p, &self.shared.writer, bytes, now_ms);
                records.push((
                    record.key(),
                    serde_json::to_vec(&record).unwrap_or_default(),
                ));
            }
            let progress = ProgressRecord {
                format: PROGRESS_FORMAT.into(),
                version: VERSION,
                topic: self.config.input.clone(),
                partition: *p,
                writer: self.shared.writer.clone(),
                committed: owned.next.or(owned.committed).unwrap_or(0),
                newest_received_at_ms: owned.newest_received_ms.max(0),
                published_at_ms: now_ms,
            };
            records.push((
                progress.key(),
                serde_json::to_vec(&progress).unwrap_or_default(),
            ));
            taken.push((
                *p,
                owned.next,
                dirty.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ));
        }
        if records.is_empty() {
            return true;
        }
        let topic = self.config.state_topic_name();
        let sends = records.iter().map(|(key, value)| {
            self.state.send(
                FutureRecord::to(&topic)
                    .key(key.as_str())
                    .payload(&value[..]),
                DELIVERY_TIMEOUT,
            )
        });
        let results = self.runtime.block_on(futures_util::future::join_all(sends));
        let failed = results.iter().filter(|r| r.is_err()).count();
        self.shared
            .metrics
            .published
            .inc_by((results.len() - failed) as u64);
        if failed > 0 {
            self.shared
                .metrics
                .write_failures
                .with_label_values(&["state"])
                .inc();
            tracing::error!(
                topic,
                failed,
                "publishing sketches failed; not committing until it works"
            );
            self.shared.set_failing(Some(format!(
                "publishing {failed} state records to {topic} failed; offsets are not committed until it works"
            )));
            for (p, _, keys) in taken {
                if let Some(owned) = self.owned.get_mut(&p) {
                    owned.sketches.mark_dirty(keys);
                }
            }
            return false;
        }
        for (p, next, _) in taken {
            if let Some(owned) = self.owned.get_mut(&p) {
                owned.published = next;
            }
        }
        if self
            .shared
            .failing()
            .is_some_and(|f| f.starts_with("publishing"))
        {
            self.shared.set_failing(None);
        }
        true
    }

    /// Publishes (sketches must cover what is committed), then commits the next offsets of
    /// every partition, each with where its dedup window starts in the output.
    fn commit(&mut self) {
        self.last_commit = Instant::now();
        if !self.publish() {
            self.update_lag();
            return;
        }
        let mut tpl = TopicPartitionList::new();
        let mut committing = Vec::new();
        for (p, owned) in &self.owned {
            let Some(next) = owned.next.filter(|n| Some(*n) != owned.committed) else {
                continue;
            };
            let metadata = owned
                .window
                .window_start()
                .map(|output_from| CommitMetadata { v: 1, output_from })
                .and_then(|m| serde_json::to_string(&m).ok())
                .unwrap_or_default();
            if tpl
                .add_partition_offset(&self.config.input, *p, Offset::Offset(next))
                .is_ok()
            {
                if let Some(mut e) = tpl.find_partition(&self.config.input, *p) {
                    e.set_metadata(metadata);
                }
                committing.push((*p, next));
            }
        }
        if !committing.is_empty() {
            match self.consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => {
                    for (p, next) in committing {
                        if let Some(owned) = self.owned.get_mut(&p) {
                            owned.committed = Some(next);
                        }
                    }
                }
                Err(e) => {
                    self.shared.metrics.commit_failures.inc();
                    tracing::warn!(error = %e, "committing offsets failed (a rebalance may be under way)");
                }
            }
        }
        self.update_lag();
    }

    fn update_lag(&self) {
        for (p, owned) in &self.owned {
            if let Ok((_, high)) =
                self.consumer
                    .fetch_watermarks(&self.config.input, *p, Duration::from_secs(1))
            {
                let position = owned.next.or(owned.committed).unwrap_or(0);
                if high >= 0 {
                    self.shared
                        .metrics
                        .lag
                        .with_label_values(&[&p.to_string()])
                        .set((high - position).max(0));
                }
            }
        }
    }
}

/// The time a record counts for in its partition's window: its `received_at`, but never
/// more than [`MAX_CLOCK_AHEAD`] past this worker's clock — one record from a collector
/// with a clock years ahead must not push every other id out of the window.
fn window_time(received_ms: i64, now_ms: i64) -> i64 {
    received_ms.min(now_ms.saturating_add(MAX_CLOCK_AHEAD.as_millis() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_ahead_counts_as_at_most_a_minute_ahead() {
        let now = 1_796_032_800_000;
        let ahead = MAX_CLOCK_AHEAD.as_millis() as i64;
        for (received, counts_as) in [
            (now, now),
            (now - 3_600_000, now - 3_600_000),
            (now + 1_000, now + 1_000),
            (now + ahead, now + ahead),
            (now + ahead + 1, now + ahead),
            (253_402_300_799_999, now + ahead),
            (i64::MAX, now + ahead),
        ] {
            assert_eq!(window_time(received, now), counts_as, "{received}");
        }
        // So one record from a clock years ahead leaves the others in the window.
        let mut w = PartitionWindow::new(Duration::from_secs(600), 100);
        w.insert(1, window_time(now, now), Some(0));
        w.insert(2, window_time(253_402_300_799_999, now), Some(1));
        w.insert(3, window_time(now + 1, now), Some(2));
        assert!(w.contains(1) && w.contains(2) && w.contains(3));
    }
}
