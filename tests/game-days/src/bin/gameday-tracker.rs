//! The tracker side of a game day, as its own process (so it can be killed with SIGKILL).
//!
//! Tracks `--events` media events at `--rate` per second — or, with `--articles N`, article
//! views by `--users` readers, `--skew` of them on `article-0` — and reports on stdout, one
//! line each: `tracked SEQ UUID` (`tracked SEQ UUID READER ARTICLE` for article views) for
//! every event `track()` accepted, `failover SEQ STATUS` for every event also sent through
//! `--failover` (every `--failover-every`th, with the same id: a resend after a failover), `refused SEQ REASON` for every
//! refusal, `durable SEQ` once every event up to SEQ has had time for its group commit
//! (three commit intervals and 200 ms for the fsync), then flushes and prints `failed UUID REASON`
//! for every event the failure callback was given, `stats JSON` and `done`.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a test harness: fail loudly, talk on stdout

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use eventwire::{RetryPolicy, Tracker};

#[derive(Parser)]
struct Args {
    /// The collector (or the proxy in front of it).
    #[arg(long)]
    endpoint: String,
    /// Spool directory (none: memory only).
    #[arg(long)]
    spool: Option<std::path::PathBuf>,
    /// Events to track.
    #[arg(long)]
    events: u64,
    /// Events per second.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// First sequence number (a restarted tracker continues the numbering).
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Time allowed for one request, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    request_timeout_ms: u64,
    /// Spool group-commit interval, in milliseconds.
    #[arg(long, default_value_t = 20)]
    commit_ms: u64,
    /// How long the final flush may take, in seconds.
    #[arg(long, default_value_t = 120)]
    flush_s: u64,
    /// The retry deadline of a batch, in milliseconds (with a spool it does not apply).
    #[arg(long, default_value_t = 3_600_000)]
    retry_deadline_ms: u64,
    /// The write key to send.
    #[arg(long)]
    write_key: Option<String>,
    /// Most events per request.
    #[arg(long, default_value_t = eventwire::batch::DEFAULT_MAX_BATCH_EVENTS)]
    batch_size: usize,
    /// The longest retry backoff, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    max_backoff_ms: u64,
    /// Most requests in flight.
    #[arg(long, default_value_t = eventwire::outbox::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Track article views over this many articles (0: media events).
    #[arg(long, default_value_t = 0)]
    articles: u64,
    /// Distinct readers of article views.
    #[arg(long, default_value_t = 1_000)]
    users: u64,
    /// Share of article views on `article-0`.
    #[arg(long, default_value_t = 0.9)]
    skew: f64,
    /// Another collector: every `--failover-every`th event is also sent there, same id.
    #[arg(long)]
    failover: Option<String>,
    /// See `--failover`.
    #[arg(long, default_value_t = 100)]
    failover_every: u64,
}

/// Sends one article view to `endpoint` as its own batch, with the id the tracker gave it.
fn resend(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    endpoint: &str,
    id: &str,
    data: &serde_json::Value,
    reader: &str,
    anonymous_id: &str,
) -> String {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let batch = serde_json::json!({
        "sent_at": now,
        "events": [{
            "event_id": id,
            "schema": ARTICLE_VIEW,
            "data": data,
            "created_at": now,
            "context": {
                "labels": {"environment": "gameday", "service": "gameday-tracker", "team": "reliability", "version": "1"},
                "library": {"name": "gameday-failover", "version": "1"},
                "anonymous_id": anonymous_id,
                "user_id": reader,
            },
        }],
    });
    let url = format!("{}/v1/batch", endpoint.trim_end_matches('/'));
    runtime.block_on(async {
        for _ in 0..20 {
            match client
                .post(&url)
                .body(batch.to_string())
                .header("content-type", "application/json")
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return r.status().as_u16().to_string(),
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        "gave-up".to_owned()
    })
}

const ARTICLE_VIEW: &str = "iglu:com.example.web/article_view/jsonschema/1-0-0";

fn main() {
    let args = Args::parse();
    // The callback runs on the worker while stdout is locked here: collect, print at the end.
    let failed: Arc<Mutex<Vec<(eventwire::Uuid, String)>>> = Arc::default();
    let sink = failed.clone();
    let mut builder = Tracker::builder()
        .endpoint(&args.endpoint)
        .environment("gameday")
        .service("gameday-tracker")
        .team("reliability")
        .version("1")
        .request_timeout(Duration::from_millis(args.request_timeout_ms))
        .max_batch_events(args.batch_size)
        .max_in_flight(args.max_in_flight)
        .spool_commit_interval(Duration::from_millis(args.commit_ms))
        .retry(RetryPolicy {
            initial_backoff: Duration::from_millis(args.max_backoff_ms.min(50)),
            max_backoff: Duration::from_millis(args.max_backoff_ms),
            deadline: Duration::from_millis(args.retry_deadline_ms),
            ..RetryPolicy::default()
        })
        .on_failure(move |reason, events| {
            let mut f = sink.lock().unwrap();
            f.extend(events.iter().map(|e| (e.event_id(), format!("{reason:?}"))));
        });
    if let Some(dir) = &args.spool {
        builder = builder.spool(dir);
    }
    if let Some(key) = &args.write_key {
        builder = builder.write_key(key);
    }
    let tracker = builder.build().unwrap();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Track in ticks of 10 ms, at the rate asked.
    let tick = Duration::from_millis(10);
    let per_tick = (args.rate / 100).max(1);
    let start = Instant::now();
    let mut seq = args.first;
    let end = args.first + args.events;
    let mut ticks = 0u32;
    let mut durable_after: Vec<(Instant, u64)> = Vec::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let mut rng = fastrand::Rng::with_seed(args.first ^ 0x5eed);
    while seq < end {
        for _ in 0..per_tick.min(end - seq) {
            if args.articles > 0 {
                let reader = format!("reader-{}", rng.u64(0..args.users.max(1)));
                let article = if rng.f64() < args.skew {
                    0
                } else {
                    1 + rng.u64(0..args.articles.max(1))
                };
                let data = serde_json::json!({
                    "article_id": format!("article-{article}"),
                    "headline": "A headline",
                    "section": "news",
                    "authors": [{"name": "A. Writer"}],
                });
                tracker.set_user_id(Some(reader.clone()));
                match tracker.track_json(ARTICLE_VIEW, &data) {
                    Ok(id) => {
                        writeln!(out, "tracked {seq} {id} {reader} article-{article}").unwrap();
                        if let Some(other) = args
                            .failover
                            .as_deref()
                            .filter(|_| seq % args.failover_every.max(1) == 0)
                        {
                            let status = resend(
                                &runtime,
                                &client,
                                other,
                                &id.to_string(),
                                &data,
                                &reader,
                                &tracker.anonymous_id(),
                            );
                            writeln!(out, "failover {seq} {status}").unwrap();
                        }
                    }
                    Err(e) => writeln!(out, "refused {seq} {e}").unwrap(),
                }
                seq += 1;
                continue;
            }
            let data = serde_json::json!({
                "media_id": format!("{:08}", seq % 100_000_000),
                "position_s": (seq % 86_400) as f64,
                "playback_rate": 1.0,
                "autoplay": seq % 2 == 0,
            });
            match tracker.track_json("iglu:com.example.media/play/jsonschema/1-0-0", &data) {
                Ok(id) => writeln!(out, "tracked {seq} {id}").unwrap(),
                Err(e) => writeln!(out, "refused {seq} {e}").unwrap(),
            }
            seq += 1;
        }
        durable_after.push((Instant::now() + durable_after_ms(args.commit_ms), seq - 1));
        report_durable(&mut out, &mut durable_after);
        out.flush().unwrap();
        ticks += 1;
        let next = start + tick * ticks;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    std::thread::sleep(durable_after_ms(args.commit_ms));
    durable_after.iter_mut().for_each(|d| d.0 = Instant::now());
    report_durable(&mut out, &mut durable_after);
    writeln!(out, "tracking_done").unwrap();
    out.flush().unwrap();
    let flushed = tracker.flush(Duration::from_secs(args.flush_s));
    tracker.shutdown(Duration::from_secs(5)).ok();
    let stats = tracker.stats();
    for (id, reason) in failed.lock().unwrap().iter() {
        writeln!(out, "failed {id} {reason}").unwrap();
    }
    writeln!(
        out,
        "stats {}",
        serde_json::json!({
            "flushed": flushed.is_ok(),
            "tracked": stats.tracked,
            "recovered": stats.recovered,
            "sent": stats.sent,
            "duplicates": stats.duplicates,
            "rejected": stats.rejected,
            "dropped": stats.dropped_total(),
            "dropped_queue_full": stats.dropped(eventwire::DropReason::QueueFull),
            "dropped_spool_error": stats.dropped(eventwire::DropReason::SpoolError),
            "dropped_retry_expired": stats.dropped(eventwire::DropReason::RetryExpired),
            "spool_write_errors": stats.spool_write_errors,
            "spool_commit_errors": stats.spool_commit_errors,
            "kept_in_spool": stats.kept_in_spool,
            "pending": stats.pending,
            "requests": stats.requests,
            "retries": stats.retries,
            "throttled": stats.throttled,
        })
    )
    .unwrap();
    writeln!(out, "done").unwrap();
    out.flush().unwrap();
}

/// How long after `track()` an event is taken as durable: the commit interval (when its
/// group commit starts) three times over, plus time for the fsync itself.
fn durable_after_ms(commit_ms: u64) -> Duration {
    Duration::from_millis(3 * commit_ms + 200)
}

/// Reports the newest sequence number whose commit time has passed.
fn report_durable(out: &mut impl Write, pending: &mut Vec<(Instant, u64)>) {
    let now = Instant::now();
    let ready = pending.iter().take_while(|(at, _)| *at <= now).count();
    if let Some((_, seq)) = pending.drain(..ready).next_back() {
        writeln!(out, "durable {seq}").unwrap();
    }
}
