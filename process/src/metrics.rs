//! Prometheus metrics of a worker (`GET /metrics`).

use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// A worker's metrics.
pub struct Metrics {
    registry: Registry,
    /// Input records by outcome: `written`, `duplicate`, `dead_letter`.
    pub records: IntCounterVec,
    /// Partitions this worker owns now.
    pub partitions: IntGauge,
    /// Per owned partition: the broker's end offset minus the next offset to commit.
    pub lag: IntGaugeVec,
    /// Partition state rebuilds (one per partition assigned), and the records they read.
    pub rebuilds: IntCounter,
    /// Output records read back by rebuilds.
    pub rebuild_records: IntCounter,
    /// Ids held for deduplication, all owned partitions.
    pub dedup_ids: IntGauge,
    /// Ids forgotten before the window because a partition held its maximum.
    pub dedup_evicted_early: IntCounter,
    /// Records of failed writes found stored when read back (not written again).
    pub settled: IntCounter,
    /// Output or dead-letter writes that failed (the step is retried; nothing is committed
    /// meanwhile).
    pub write_failures: IntCounterVec,
    /// Offset commits that failed.
    pub commit_failures: IntCounter,
    /// Sketch and progress records published.
    pub published: IntCounter,
    /// Users not counted in a sketch because a bound was reached.
    pub uniques_refused: IntCounter,
    /// State records read by the query view, and those skipped as unreadable.
    pub state_records: IntCounterVec,
    /// Gaps in the input's offsets, by how they closed: `filled` (read again, the records
    /// were there) or `skipped` (taken as absent after the gap wait).
    pub input_gaps: IntCounterVec,
    /// Input offsets taken as absent after the gap wait.
    pub input_skipped: IntCounter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let records = IntCounterVec::new(
            Opts::new(
                "eventwire_process_records_total",
                "Input records by outcome.",
            ),
            &["outcome"],
        )?;
        let partitions = IntGauge::new("eventwire_process_partitions", "Input partitions owned.")?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "eventwire_process_lag",
                "Records between the broker's end offset and the next offset to commit.",
            ),
            &["partition"],
        )?;
        let rebuilds = IntCounter::new(
            "eventwire_process_rebuilds_total",
            "Partition dedup states rebuilt from the output.",
        )?;
        let rebuild_records = IntCounter::new(
            "eventwire_process_rebuild_records_total",
            "Output records read back to rebuild dedup state.",
        )?;
        let dedup_ids = IntGauge::new(
            "eventwire_process_dedup_ids",
            "Event ids held for deduplication.",
        )?;
        let dedup_evicted_early = IntCounter::new(
            "eventwire_process_dedup_evicted_early_total",
            "Event ids forgotten before the window ended because a partition held its maximum.",
        )?;
        let settled = IntCounter::new(
            "eventwire_process_settled_total",
            "Records of failed output writes found stored when read back, so not written again.",
        )?;
        let write_failures = IntCounterVec::new(
            Opts::new(
                "eventwire_process_write_failures_total",
                "Failed writes, by sink (`output`, `dead_letters`, `state`); retried, nothing committed meanwhile.",
            ),
            &["sink"],
        )?;
        let commit_failures = IntCounter::new(
            "eventwire_process_commit_failures_total",
            "Offset commits the group coordinator refused.",
        )?;
        let published = IntCounter::new(
            "eventwire_process_state_published_total",
            "Sketch and progress records published to the state topic.",
        )?;
        let uniques_refused = IntCounter::new(
            "eventwire_process_uniques_refused_total",
            "Users not counted in a sketch because a bound on schemas or values was reached.",
        )?;
        let state_records = IntCounterVec::new(
            Opts::new(
                "eventwire_process_state_records_total",
                "State records read by the query view, by outcome (`applied`, `skipped`).",
            ),
            &["outcome"],
        )?;
        let input_gaps = IntCounterVec::new(
            Opts::new(
                "eventwire_process_input_gaps_total",
                "Gaps in the input's offsets, by outcome (`filled` when read again, `skipped` when taken as absent after the gap wait).",
            ),
            &["outcome"],
        )?;
        let input_skipped = IntCounter::new(
            "eventwire_process_input_skipped_offsets_total",
            "Input offsets taken as absent after the gap wait (compacted, transaction markers, deleted by retention).",
        )?;
        registry.register(Box::new(input_gaps.clone()))?;
        registry.register(Box::new(input_skipped.clone()))?;
        registry.register(Box::new(records.clone()))?;
        registry.register(Box::new(partitions.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(rebuilds.clone()))?;
        registry.register(Box::new(rebuild_records.clone()))?;
        registry.register(Box::new(dedup_ids.clone()))?;
        registry.register(Box::new(dedup_evicted_early.clone()))?;
        registry.register(Box::new(write_failures.clone()))?;
        registry.register(Box::new(settled.clone()))?;
        registry.register(Box::new(commit_failures.clone()))?;
        registry.register(Box::new(published.clone()))?;
        registry.register(Box::new(uniques_refused.clone()))?;
        registry.register(Box::new(state_records.clone()))?;
        Ok(Metrics {
            registry,
            records,
            partitions,
            lag,
            rebuilds,
            rebuild_records,
            dedup_ids,
            dedup_evicted_early,
            settled,
            write_failures,
            commit_failures,
            published,
            uniques_refused,
            state_records,
            input_gaps,
            input_skipped,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only on a metric family the encoder cannot write;
        // answer what was written rather than nothing.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
