//! eventwire against the Rust event SDKs people use today, on the same work in the same run.
//!
//! ```sh
//! cargo run --release -p eventwire-bench-peers            # all SDKs, table + chart
//! cargo run --release -p eventwire-bench-peers -- --quick # 10x fewer events (a smoke run)
//! cargo run --release -p eventwire-bench-peers -- --replot # table + chart from the last results
//! ```
//!
//! Each SDK runs in its own process (so peak memory is its own), with a loopback sink in
//! that process (`sink.rs`; the `sink-only` row is its baseline). In each process:
//!
//! 1. caller cost: 100,000 calls, timed in batches of 100 on the caller's thread (the
//!    app's `MediaPlay` values are built before each batch, outside the timing); median
//!    and p99 of the per-call time of the batches; then the SDK is flushed and drained;
//! 2. end to end: 1,000,000 more events as fast as the SDK takes them, then its flush;
//!    events per second until the sink has counted the last of them, or as many as
//!    arrived within 60 s (the row says which);
//! 3. lost (sent minus distinct events counted) and duplicates (counted twice), after a
//!    grace period for stragglers; peak RSS (`VmHWM`) of the process.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use eventwire_bench::MediaPlay;
use serde::{Deserialize, Serialize};

mod chart;
mod sdks;
mod sink;

/// Calls timed for the caller-cost measure.
const CALLER_CALLS: u64 = 100_000;
/// Calls per timed batch.
const CALLS_PER_SAMPLE: u64 = 100;
/// Events of the end-to-end measure.
const E2E_EVENTS: u64 = 1_000_000;
/// How long the end-to-end measure may take.
const E2E_DEADLINE: Duration = Duration::from_secs(60);
/// How long to wait for stragglers once nothing new arrives.
const QUIET: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    sdk: String,
    caller_median_ns: f64,
    caller_p99_ns: f64,
    e2e_sent: u64,
    e2e_delivered: u64,
    e2e_secs: f64,
    e2e_complete: bool,
    sent: u64,
    delivered: u64,
    duplicates: u64,
    unreadable: u64,
    requests: u64,
    peak_rss_kb: u64,
    /// Drops the SDK reports itself (eventwire: `stats().dropped`), if it counts them.
    #[serde(default)]
    sdk_counted_drops: Option<u64>,
}

impl Row {
    fn e2e_rate(&self) -> f64 {
        if self.e2e_secs > 0.0 {
            self.e2e_delivered as f64 / self.e2e_secs
        } else {
            0.0
        }
    }
    fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.delivered)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let name = args.get(i + 1).map_or("", String::as_str);
        let row = child(name, scale);
        println!("{}", serde_json::to_string(&row).unwrap_or_default());
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    }
    let chart_path = args
        .iter()
        .position(|a| a == "--chart")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "docs/benchmarks-peers.svg".into());
    let only: Vec<&str> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').collect())
        .unwrap_or_default();
    let results = format!("{}.json", chart_path.trim_end_matches(".svg"));
    if args.iter().any(|a| a == "--replot") {
        // Table and chart again from the results of the last run.
        let text = std::fs::read_to_string(&results).expect("results of a previous run");
        let (rows, scale): (Vec<Row>, u64) = serde_json::from_str(&text).expect("results");
        print_table(&rows, scale);
        report_chart(&chart_path, &rows);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let mut rows = Vec::new();
    for name in sdks::ALL {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        eprint!("{name:>18} … ");
        let _ = std::io::stderr().flush();
        let started = Instant::now();
        let mut cmd = Command::new(&exe);
        cmd.arg("--child").arg(name);
        if quick {
            cmd.arg("--quick");
        }
        let out = cmd.output().expect("run child");
        let line = String::from_utf8_lossy(&out.stdout);
        match line
            .lines()
            .last()
            .and_then(|l| serde_json::from_str::<Row>(l).ok())
        {
            Some(row) => {
                eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
                rows.push(row);
            }
            None => eprintln!(
                "failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
        }
    }
    print_table(&rows, scale);
    match serde_json::to_string_pretty(&(&rows, scale)) {
        Ok(json) if std::fs::write(&results, &json).is_ok() => println!("\nresults: {results}"),
        _ => eprintln!("results not written to {results}"),
    }
    report_chart(&chart_path, &rows);
}

fn report_chart(path: &str, rows: &[Row]) {
    match chart::draw(path, &rows_for_chart(rows)) {
        Ok(()) => println!("chart: {path}"),
        Err(e) => eprintln!("chart not written: {e}"),
    }
}

fn rows_for_chart(rows: &[Row]) -> Vec<chart::Bar> {
    rows.iter()
        .filter(|r| r.sdk != "sink-only")
        .map(|r| chart::Bar {
            label: r.sdk.clone(),
            caller_ns: r.caller_median_ns,
            events_per_s: r.e2e_rate(),
        })
        .collect()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    format!("{cores} cores, {cpu}")
}

fn print_table(rows: &[Row], scale: u64) {
    println!(
        "\neventwire vs Rust event SDKs ({}; {} caller calls, {} end-to-end events per SDK)\n",
        machine(),
        CALLER_CALLS / scale,
        E2E_EVENTS / scale
    );
    println!("| SDK | caller ns/event (median) | p99 | e2e events/s | lost | lost as counted by the SDK | duplicates | peak RSS MB | requests |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let e2e = if r.sdk == "sink-only" {
            "—".to_owned()
        } else if r.e2e_complete || r.e2e_sent == E2E_EVENTS / scale {
            // All sent; any shortfall is in "lost".
            format!("{:.0}", r.e2e_rate())
        } else {
            format!(
                "{:.0} ({} of {} in {:.0} s)",
                r.e2e_rate(),
                r.e2e_delivered,
                r.e2e_sent,
                r.e2e_secs
            )
        };
        let counted = match (r.sdk.as_str(), r.sdk_counted_drops) {
            ("sink-only", _) => "—".to_owned(),
            (_, Some(n)) => n.to_string(),
            (_, None) => "not counted".to_owned(),
        };
        println!(
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {:.1} | {} |",
            r.sdk,
            r.caller_median_ns,
            r.caller_p99_ns,
            e2e,
            r.lost(),
            counted,
            r.duplicates,
            r.peak_rss_kb as f64 / 1024.0,
            r.requests
        );
    }
    let peers: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.sdk.starts_with("eventwire") && r.sdk != "sink-only")
        .collect();
    let best_caller = peers
        .iter()
        .map(|r| r.caller_median_ns)
        .fold(f64::INFINITY, f64::min);
    let best_rate = peers.iter().map(|r| r.e2e_rate()).fold(0.0, f64::max);
    let best_rss = peers.iter().map(|r| r.peak_rss_kb).min().unwrap_or(0);
    println!("\nratios against the best peer on each metric (>1 means eventwire is better):\n");
    println!("| eventwire row | caller cost | e2e events/s | peak RSS |");
    println!("|---|---:|---:|---:|");
    for r in rows.iter().filter(|r| r.sdk.starts_with("eventwire")) {
        println!(
            "| {} | {:.1}× | {:.1}× | {:.1}× |",
            r.sdk,
            best_caller / r.caller_median_ns,
            r.e2e_rate() / best_rate,
            best_rss as f64 / r.peak_rss_kb as f64
        );
    }
    println!("\nconfiguration:\n");
    for r in rows {
        println!("- {}: {}", r.sdk, sdks::configuration(&r.sdk));
    }
    if rows.iter().any(|r| r.unreadable > 0) {
        println!("\nwarning: some events reached the sink without a readable sequence number");
    }
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits until the sink has `target` distinct events, or nothing new has arrived for
/// [`QUIET`] (what the SDK dropped will never come), or `deadline` passes.
fn drain(sink: &sink::Sink, target: u64, deadline: Instant) -> bool {
    let mut last = (sink.unique(), Instant::now());
    while sink.unique() < target && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
        let now = sink.unique();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > QUIET {
            break;
        }
    }
    sink.unique() >= target
}

fn child(name: &str, scale: u64) -> Row {
    let (calls, e2e) = (CALLER_CALLS / scale, E2E_EVENTS / scale);
    let sink = sink::Sink::start(calls + e2e + 64);
    let mut sdk = sdks::driver(name, &sink.url());

    // 1. Caller cost.
    let mut samples = Vec::with_capacity(usize::try_from(calls / CALLS_PER_SAMPLE).unwrap_or(0));
    let mut seq = 0;
    while seq < calls {
        let batch: Vec<MediaPlay> = (seq..seq + CALLS_PER_SAMPLE)
            .map(MediaPlay::sample)
            .collect();
        let t = Instant::now();
        for event in batch {
            sdk.track(event);
        }
        samples.push(t.elapsed().as_nanos() as f64 / CALLS_PER_SAMPLE as f64);
        seq += CALLS_PER_SAMPLE;
    }
    sdk.flush();
    let tracked_sink = name != "sink-only";
    if tracked_sink {
        drain(&sink, calls, Instant::now() + E2E_DEADLINE);
    }
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let (median, p99) = (pick(0.5), pick(0.99));

    // 2. End to end.
    let before = sink.unique();
    let start = Instant::now();
    let deadline = start + E2E_DEADLINE;
    let mut sent = 0;
    let mut pending: Vec<MediaPlay> = Vec::new();
    while sent < e2e && Instant::now() < deadline {
        // Events are built in chunks, as an app's work would produce them.
        let n = 1_000.min(e2e - sent);
        pending.extend((0..n).map(|k| MediaPlay::sample(calls + sent + k)));
        for event in pending.drain(..) {
            sdk.track(event);
        }
        sent += n;
    }
    sdk.flush();
    let all_arrived = tracked_sink && drain(&sink, before + sent, deadline);
    let complete = all_arrived && sent == e2e;
    let e2e_delivered = sink.unique() - before;
    // Until the last event arrived (lost events never will: the rate is of those that did).
    let e2e_secs = sink
        .last_new_since(start)
        .as_secs_f64()
        .min(E2E_DEADLINE.as_secs_f64());
    // 3. Stragglers, then the totals.
    if tracked_sink {
        drain(&sink, calls + sent, Instant::now() + QUIET * 5);
    }
    let total_sent = calls + sent;
    let delivered = sink.unique();
    let counted = sink
        .counts
        .events
        .load(std::sync::atomic::Ordering::Relaxed);
    let unreadable = sink
        .counts
        .unreadable
        .load(std::sync::atomic::Ordering::Relaxed);
    let row = Row {
        sdk: name.to_owned(),
        caller_median_ns: median,
        caller_p99_ns: p99,
        e2e_sent: sent,
        e2e_delivered,
        e2e_secs,
        e2e_complete: complete,
        sent: if tracked_sink { total_sent } else { 0 },
        delivered,
        duplicates: counted.saturating_sub(delivered + unreadable),
        unreadable,
        requests: sink
            .counts
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        peak_rss_kb: peak_rss_kb(),
        sdk_counted_drops: sdk.counted_drops(),
    };
    // The process exits right after printing: no SDK's shutdown path (some wait for their
    // queues or threads) runs into the next measurement.
    std::mem::forget(sdk);
    row
}
