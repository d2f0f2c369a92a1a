//! `eventwire send`: a file of self-describing events through the tracker.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use eventwire::{DropReason, Entity, FailureReason, Tracker, WhenFull};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::Value;

/// Arguments of `eventwire send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The collector's base URL (`/v1/batch` is appended).
    #[arg(long, env = "EVENTWIRE_ENDPOINT")]
    endpoint: String,
    /// A JSONL file, one `{"schema":…,"data":…,"entities":[…]}` per line (`-` for stdin).
    file: PathBuf,
    /// Write key, sent as `Authorization: Bearer <key>`.
    #[arg(long, env = "EVENTWIRE_WRITE_KEY")]
    write_key: Option<String>,
    /// `environment` label attached to every event.
    #[arg(long)]
    environment: Option<String>,
    /// `service` label attached to every event.
    #[arg(long, default_value = "eventwire-cli")]
    service: String,
    /// `team` label attached to every event.
    #[arg(long)]
    team: Option<String>,
    /// `version` label attached to every event.
    #[arg(long)]
    version: Option<String>,
    /// Most events per request.
    #[arg(long, default_value_t = eventwire::batch::DEFAULT_MAX_BATCH_EVENTS)]
    batch_size: usize,
    /// Most requests in flight at once (1: one batch per round trip).
    #[arg(long, default_value_t = eventwire::outbox::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// How long to wait for the last events to be delivered, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// The schema registry whose personal-data marks (`"x-pii": true`) apply: with
    /// `--pii-public-key` those fields are sealed; without, events with them are refused.
    #[arg(long)]
    schemas: Option<PathBuf>,
    /// Seals the marked fields to this public key (`ewpk1.…`, from `eventwire pii keygen`).
    #[arg(long, requires = "schemas")]
    pii_public_key: Option<PathBuf>,
}

/// One input line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    schema: String,
    data: Value,
    #[serde(default)]
    entities: Vec<Entity>,
}

#[derive(Default)]
struct Failures {
    rejected: BTreeMap<String, u64>,
    dropped: BTreeMap<DropReason, u64>,
}

/// Runs the command; the exit code is 1 when any line was bad or any event not delivered.
pub fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let (input, size): (Box<dyn Read>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let failures: Arc<Mutex<Failures>> = Arc::default();
    let sink = failures.clone();
    let mut builder = Tracker::builder()
        .endpoint(&args.endpoint)
        .service(&args.service)
        .max_batch_events(args.batch_size)
        .max_in_flight(args.max_in_flight)
        // A file is read faster than it can be sent: wait for room instead of dropping.
        .when_full(WhenFull::Block(Duration::from_secs(args.timeout)))
        .on_failure(move |reason, events| {
            let mut f = sink
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = events.len() as u64;
            match reason {
                FailureReason::Rejected(code) => *f.rejected.entry(code.clone()).or_default() += n,
                FailureReason::Dropped(r) => *f.dropped.entry(*r).or_default() += n,
            }
        });
    if let Some(key) = &args.write_key {
        builder = builder.write_key(key);
    }
    if let Some(v) = &args.environment {
        builder = builder.environment(v);
    }
    if let Some(v) = &args.team {
        builder = builder.team(v);
    }
    if let Some(v) = &args.version {
        builder = builder.version(v);
    }
    if let Some(dir) = &args.schemas {
        builder = builder.pii_schemas(dir);
    }
    if let Some(path) = &args.pii_public_key {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the public key {}", path.display()))?;
        let key = eventwire::pii::PublicKey::parse(text.trim_start_matches('\u{feff}'))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        builder = builder.pii_public_key(key);
    }
    let tracker = builder.build().context("cannot start the tracker")?;

    let progress = match size {
        Some(n) if n > 1024 * 1024 => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        _ => ProgressBar::hidden(),
    };
    let started = Instant::now();
    let mut reader = BufReader::new(input);
    let mut line = String::new();
    let (mut lines, mut bad) = (0u64, 0u64);
    loop {
        line.clear();
        let n = match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                // Invalid UTF-8 and the like: report the line, skip it, go on.
                lines += 1;
                bad += 1;
                eprintln!("line {lines}: cannot read: {e}");
                skip_line(&mut reader)?;
                continue;
            }
        };
        lines += 1;
        progress.inc(n as u64);
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let result = serde_json::from_str::<Line>(text)
            .map_err(|e| e.to_string())
            .and_then(|l| {
                tracker
                    .track_json_with(&l.schema, &l.data, &l.entities)
                    .map_err(|e| match e {
                        // In this command's terms, not the library's.
                        eventwire::TrackError::PiiWithoutKey { schema } => format!(
                            "{schema} has personal data (fields marked \"x-pii\"): give the public key to seal it with --pii-public-key FILE (from `eventwire pii keygen`)"
                        ),
                        e => e.to_string(),
                    })
            });
        if let Err(e) = result {
            bad += 1;
            progress.suspend(|| eprintln!("line {lines}: {e}"));
        }
    }
    progress.finish_and_clear();
    let flushed = tracker.shutdown(Duration::from_secs(args.timeout));
    let elapsed = started.elapsed();
    let stats = tracker.stats();
    let failures = failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);

    println!("lines read:   {lines}");
    println!("bad lines:    {bad}");
    println!("tracked:      {}", stats.tracked);
    println!(
        "sent:         {} ({} duplicates) in {} requests, {} retries, {:.2}s",
        stats.sent,
        stats.duplicates,
        stats.requests,
        stats.retries,
        elapsed.as_secs_f64()
    );
    println!("rejected:     {}", stats.rejected);
    for (code, n) in &failures.rejected {
        println!("  {code}: {n}");
    }
    println!("dropped:      {}", stats.dropped_total());
    for (reason, n) in stats.dropped.iter().filter(|(_, n)| *n > 0) {
        println!("  {reason}: {n}");
    }
    if let Err(e) = flushed {
        eprintln!("warning: {e}");
    }
    if stats.dropped(DropReason::NotACollector) > 0 {
        eprintln!(
            "error: {}{} did not answer as an eventwire collector (a redirect, or another service's answer): nothing it answered counts as sent; check --endpoint (the collector's base URL)",
            without_password(args.endpoint.trim_end_matches('/')),
            eventwire::protocol::BATCH_PATH,
        );
    }
    let clean = bad == 0 && stats.rejected == 0 && stats.dropped_total() == 0;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The URL with any `user:password@` (or token) hidden, for messages.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[authority_end..]),
        None => url.to_owned(),
    }
}

/// Consumes the rest of an unreadable line.
fn skip_line(reader: &mut impl BufRead) -> io::Result<()> {
    let mut sink = Vec::new();
    reader.read_until(b'\n', &mut sink).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn passwords_are_hidden_in_messages() {
        let table = [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://u:secret@c.example/x", "https://***@c.example/x"),
            ("https://token@c.example", "https://***@c.example"),
            (
                "https://u:p@ss@c.example?q=a@b",
                "https://***@c.example?q=a@b",
            ),
            ("not a url", "not a url"),
        ];
        for (url, shown) in table {
            assert_eq!(without_password(url), shown, "{url}");
        }
    }
}
