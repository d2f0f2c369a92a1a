//! Prometheus metrics, counted also by the `service` and `version` labels, so a bad deploy
//! shows up as "errors per code revision".

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Distinct `(service, version)` pairs kept as label values; later ones count as `other`,
/// so a client sending random labels cannot blow up the metrics' memory.
pub const MAX_LABEL_PAIRS: usize = 500;
/// Longest label value kept, in bytes (the envelope's own limit for a label); longer ones
/// are cut (at a character boundary).
pub const MAX_LABEL_BYTES: usize = 128;

/// `value` cut to [`MAX_LABEL_BYTES`].
fn bounded(value: &str) -> &str {
    let mut end = value.len().min(MAX_LABEL_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// The collector's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    accepted: IntCounterVec,
    rejected: IntCounterVec,
    duplicates: IntCounterVec,
    bytes: IntCounter,
    latency: HistogramVec,
    shed: IntCounterVec,
    in_flight_requests: IntGauge,
    in_flight_bytes: IntGauge,
    sink_errors: IntCounterVec,
    sink_write_seconds: prometheus::Gauge,
    pairs: Mutex<HashSet<(String, String)>>,
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
        let labels = &["service", "version"];
        let requests = IntCounterVec::new(
            Opts::new("eventwire_requests_total", "Batch requests by HTTP status."),
            &["status"],
        )?;
        let accepted = IntCounterVec::new(
            Opts::new(
                "eventwire_events_accepted_total",
                "Events written to the good sink.",
            ),
            labels,
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "eventwire_events_rejected_total",
                "Events (or requests) dead-lettered, by code.",
            ),
            &["code", "service", "version"],
        )?;
        let duplicates = IntCounterVec::new(
            Opts::new(
                "eventwire_events_duplicate_total",
                "Events dropped as already seen.",
            ),
            labels,
        )?;
        let bytes = IntCounter::new(
            "eventwire_request_bytes_total",
            "Request body bytes received (as sent).",
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "eventwire_request_duration_seconds",
                "Batch request latency.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["status"],
        )?;
        let shed = IntCounterVec::new(
            Opts::new(
                "eventwire_requests_shed_total",
                "Batch requests answered 503 at once because the collector had as much work \
                 in flight as it takes, by the bound reached (requests, bytes).",
            ),
            &["reason"],
        )?;
        let in_flight_requests = IntGauge::new(
            "eventwire_in_flight_requests",
            "Batch requests being read, validated or committed.",
        )?;
        let sink_errors = IntCounterVec::new(
            Opts::new(
                "eventwire_sink_errors_total",
                "Groups of records a sink refused (a failed file write, a broker that did not \
                 acknowledge), by sink (good, bad); their requests were answered 503.",
            ),
            &["sink"],
        )?;
        let sink_write_seconds = prometheus::Gauge::new(
            "eventwire_sink_write_seconds",
            "How long the sink write under way has taken so far, in seconds; 0 when none is \
             (/healthz answers 503 past its limit).",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "eventwire_build_info",
                "Always 1; the collector's version as a label.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Every sink's series exists from the start, so rules see 0 rather than nothing.
        for sink in ["good", "bad"] {
            sink_errors.with_label_values(&[sink]);
        }
        let in_flight_bytes = IntGauge::new(
            "eventwire_in_flight_bytes",
            "Request body bytes held by requests in flight (as sent plus decompressed).",
        )?;
        registry.register(Box::new(shed.clone()))?;
        registry.register(Box::new(sink_errors.clone()))?;
        registry.register(Box::new(sink_write_seconds.clone()))?;
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(in_flight_requests.clone()))?;
        registry.register(Box::new(in_flight_bytes.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(accepted.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(duplicates.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            accepted,
            rejected,
            duplicates,
            bytes,
            latency,
            shed,
            in_flight_requests,
            in_flight_bytes,
            sink_errors,
            sink_write_seconds,
            pairs: Mutex::default(),
        })
    }

    /// The label values to use for this `(service, version)`.
    fn pair<'a>(&self, service: Option<&'a str>, version: Option<&'a str>) -> (&'a str, &'a str) {
        let pair = (
            bounded(service.unwrap_or("")),
            bounded(version.unwrap_or("")),
        );
        let mut pairs = self
            .pairs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pairs.contains(&(pair.0.to_owned(), pair.1.to_owned())) {
            return pair;
        }
        if pairs.len() < MAX_LABEL_PAIRS {
            pairs.insert((pair.0.to_owned(), pair.1.to_owned()));
            return pair;
        }
        ("other", "other")
    }

    /// A request answered with `status` after `seconds`, with `bytes` of body.
    pub fn request(&self, status: u16, seconds: f64, bytes: usize) {
        let status = status.to_string();
        self.requests.with_label_values(&[status.as_str()]).inc();
        self.latency
            .with_label_values(&[status.as_str()])
            .observe(seconds);
        self.bytes.inc_by(bytes as u64);
    }

    /// A request shed by admission, because of `reason` (`requests` or `bytes`).
    pub fn shed(&self, reason: &str) {
        self.shed.with_label_values(&[reason]).inc();
    }

    /// The work in flight now, for the gauges.
    pub fn in_flight(&self, requests: usize, bytes: usize) {
        self.in_flight_requests
            .set(i64::try_from(requests).unwrap_or(i64::MAX));
        self.in_flight_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// How long the sink write under way has taken (zero when none is), for the gauge.
    pub fn sink_write(&self, under_way: std::time::Duration) {
        self.sink_write_seconds.set(under_way.as_secs_f64());
    }

    /// The counter of groups a sink refused, by sink; the commit task holds a clone.
    pub(crate) fn sink_errors(&self) -> IntCounterVec {
        self.sink_errors.clone()
    }

    /// An event accepted.
    pub fn accepted(&self, service: Option<&str>, version: Option<&str>) {
        let (s, v) = self.pair(service, version);
        self.accepted.with_label_values(&[s, v]).inc();
    }

    /// An event (or a whole request) dead-lettered with `code`.
    pub fn rejected(&self, code: &str, service: Option<&str>, version: Option<&str>) {
        let (s, v) = self.pair(service, version);
        self.rejected.with_label_values(&[code, s, v]).inc();
    }

    /// An event dropped as a duplicate.
    pub fn duplicate(&self, service: Option<&str>, version: Option<&str>) {
        let (s, v) = self.pair(service, version);
        self.duplicates.with_label_values(&[s, v]).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
