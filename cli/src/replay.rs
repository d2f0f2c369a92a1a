//! `eventwire replay`: send dead letters to a collector again, once their schema is fixed.
//!
//! Each dead letter of the collector's dead-letter sink (`{"received_at", "code", "errors",
//! "event" | "raw"}`) whose event parsed is sent again as it was received: its own
//! `event_id` and `created_at`, so the collector's deduplication makes a second replay
//! store nothing twice. Raw dead letters (bodies that never parsed) are reported, not
//! guessed at. With `--dry-run`, the events go to a collector run inside this command on
//! `--schemas` with sinks in memory, and the report says which would now pass.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use eventwire::policy::{Attempt, RetryPolicy, Verdict};
use eventwire::transport::{HttpTransport, Request, Transport as _, DEFAULT_REQUEST_TIMEOUT};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Prints a line on stdout; a closed stdout (`| head`) stops the printing, not the replay.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Lines that are not dead letters printed one by one; the rest are only counted.
const MAX_LISTED: u64 = 10;

/// Most events per request.
pub const MAX_EVENTS_PER_REQUEST: usize = 500;
/// Most body bytes per request (the collector takes up to 1 MiB).
pub const MAX_BYTES_PER_REQUEST: usize = 900 * 1024;

/// Arguments of `eventwire replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Dead-letter files (JSONL, as the collector's `--bad` sink writes them; `-` for stdin).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The collector's base URL (`/v1/batch` is appended). Not needed with `--dry-run`.
    #[arg(long, env = "EVENTWIRE_ENDPOINT", required_unless_present = "dry_run")]
    endpoint: Option<String>,
    /// Write key, sent as `Authorization: Bearer <key>`.
    #[arg(long, env = "EVENTWIRE_WRITE_KEY", hide_env_values = true)]
    write_key: Option<String>,
    /// Only dead letters with this code (repeat), e.g. `unknown_schema`, `schema_invalid`.
    #[arg(long = "code")]
    codes: Vec<String>,
    /// Only events of this schema (repeat): a whole `iglu:` URI, or `VENDOR/NAME` for every
    /// version.
    #[arg(long = "schema")]
    schemas: Vec<String>,
    /// Only dead letters received at or after this time (RFC 3339, or a duration ago: `2h`).
    #[arg(long, value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Only dead letters received before this time (RFC 3339, or a duration ago).
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Send nothing: check the selected events against `--registry` with the collector's
    /// own checks, and print which would now pass.
    #[arg(long)]
    dry_run: bool,
    /// The schema registry of `--dry-run` (a directory in Iglu layout, or an http(s) URL).
    #[arg(long, default_value = "schemas")]
    registry: String,
    /// How long one request may keep being retried (collector away, 503s), in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        format!(
            "{text:?} is neither an RFC 3339 time (2026-12-01T00:00:00Z) nor a duration ago (2h)"
        )
    })?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
    Utc::now()
        .checked_sub_signed(ago)
        .ok_or_else(|| format!("{text:?} ago is before any time"))
}

/// Opens `file` (`-`: stdin). A regular file is read as long as it is now: a collector
/// appending to it meanwhile (the dead letters of this very replay) is not read back. A
/// pipe is read to its end.
fn open(file: &PathBuf) -> anyhow::Result<Box<dyn std::io::Read>> {
    if file.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    if file.is_dir() {
        anyhow::bail!("{} is a directory, not a dead-letter file", file.display());
    }
    let opened = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let metadata = opened
        .metadata()
        .with_context(|| format!("cannot read {}", file.display()))?;
    Ok(if metadata.is_file() {
        Box::new(std::io::Read::take(opened, metadata.len()))
    } else {
        Box::new(opened)
    })
}

/// Refuses filters that cannot select anything: an unknown code, a schema that is neither a
/// whole `iglu:` URI nor `VENDOR/NAME`, `--since` not before `--until`.
fn check_filters(args: &ReplayArgs) -> anyhow::Result<()> {
    for code in &args.codes {
        let known: Result<eventwire::protocol::ErrorCode, _> =
            serde_json::from_value(serde_json::Value::String(code.clone()));
        anyhow::ensure!(
            known.is_ok(),
            "--code {code:?} is not a dead-letter code (e.g. unknown_schema, schema_invalid; docs/protocol.md)"
        );
    }
    for schema in &args.schemas {
        let whole = schema.starts_with("iglu:") && eventwire::SchemaKey::parse(schema).is_ok();
        let pair = !schema.starts_with("iglu:")
            && schema.split('/').count() == 2
            && schema.split('/').all(|p| !p.is_empty());
        anyhow::ensure!(
            whole || pair,
            "--schema {schema:?}: give a whole URI (iglu:VENDOR/NAME/jsonschema/M-R-A) or VENDOR/NAME"
        );
    }
    if let (Some(since), Some(until)) = (args.since, args.until) {
        anyhow::ensure!(
            since < until,
            "--since is not before --until: nothing would be selected"
        );
    }
    Ok(())
}

/// A dead-letter record, as far as replay reads it.
#[derive(Debug, Deserialize)]
struct DeadLetter {
    code: String,
    received_at: Option<String>,
    event: Option<Box<RawValue>>,
    raw: Option<serde_json::Value>,
}

/// The parts of an event a selection reads.
#[derive(Debug, Default, Deserialize)]
struct Head {
    #[serde(default)]
    schema: Option<serde_json::Value>,
    #[serde(default)]
    event_id: Option<serde_json::Value>,
}

/// Which dead letters to replay: a pure function of the record, table-tested.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    codes: Vec<String>,
    schemas: Vec<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl Selection {
    /// Whether a dead letter with `code`, received at `received_at`, of an event of
    /// `schema`, is selected. A time filter leaves out records without a readable time.
    pub fn selects(&self, code: &str, received_at: Option<&str>, schema: Option<&str>) -> bool {
        if !self.codes.is_empty() && !self.codes.iter().any(|c| c == code) {
            return false;
        }
        if !self.schemas.is_empty() {
            let Some(schema) = schema else { return false };
            if !self.schemas.iter().any(|s| schema_matches(s, schema)) {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            let Some(at) = received_at
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
            else {
                return false;
            };
            if self.since.is_some_and(|since| at < since)
                || self.until.is_some_and(|until| at >= until)
            {
                return false;
            }
        }
        true
    }
}

/// `wanted` is a whole URI (equal), or `VENDOR/NAME` (any format and version of it).
fn schema_matches(wanted: &str, schema: &str) -> bool {
    if wanted.starts_with("iglu:") {
        return wanted == schema;
    }
    let Some(path) = schema.strip_prefix("iglu:") else {
        return false;
    };
    let mut parts = path.split('/');
    match (parts.next(), parts.next()) {
        (Some(vendor), Some(name)) => wanted.split_once('/') == Some((vendor, name)),
        _ => false,
    }
}

/// What happened to the events of one file or all of them.
#[derive(Debug, Default)]
struct Report {
    lines: u64,
    /// Lines that are not dead-letter records (with line numbers, a few).
    not_dead_letters: u64,
    /// Raw dead letters: bodies that never parsed, not replayed.
    raw: u64,
    /// Dead letters the selection left out.
    left_out: u64,
    /// Dead letters of an event already read (sent once).
    repeated: u64,
    /// Events sent again.
    replayed: u64,
    accepted: u64,
    duplicates: u64,
    /// Still refused, by their new code.
    refused: BTreeMap<String, u64>,
    /// Events not delivered (the collector stayed away, or refused the request).
    undelivered: u64,
    /// The replay stopped at a request the collector never answered for: the rest was not
    /// read.
    stopped: bool,
    /// A file could not be read to its end.
    unreadable: bool,
}

/// Replays the selected dead letters; exit status 1 when any is still refused or could not
/// be delivered.
pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let selection = Selection {
        codes: args.codes.clone(),
        schemas: args.schemas.clone(),
        since: args.since,
        until: args.until,
    };
    check_filters(&args)?;
    if let Some(endpoint) = &args.endpoint {
        match reqwest::Url::parse(endpoint) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => anyhow::bail!(
                "--endpoint {endpoint:?} is not an http(s) URL: give the collector's base URL, e.g. http://collector:8080"
            ),
        }
    }
    // Every file is opened before anything is sent: a missing one stops the replay before
    // it began, not half way.
    let mut inputs = Vec::with_capacity(args.files.len());
    for file in &args.files {
        inputs.push((file.clone(), open(file)?));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        // With --dry-run, a collector of our own, on the registry, keeping what it would
        // write in memory.
        let dry = if args.dry_run {
            Some(DryRun::start(&args.registry).await?)
        } else {
            None
        };
        let endpoint = match (&dry, &args.endpoint) {
            (Some(d), _) => d.endpoint.clone(),
            (None, Some(e)) => e.clone(),
            (None, None) => anyhow::bail!("--endpoint is needed (or --dry-run)"),
        };
        let timeout = Duration::from_secs(args.timeout);
        let transport = HttpTransport::new(
            &endpoint,
            DEFAULT_REQUEST_TIMEOUT.min(timeout.max(Duration::from_secs(1))),
        )
        .context("cannot make the HTTP client")?;
        let sender = Sender {
            transport,
            print_refusals: !args.dry_run,
            write_key: args.write_key.as_deref().map(Arc::from),
            policy: RetryPolicy {
                // The dry run's collector is this process's: a 503 from it (its registry
                // cannot be read) will not pass by waiting.
                deadline: if args.dry_run { Duration::ZERO } else { timeout },
                ..RetryPolicy::default()
            },
        };
        let mut report = Report::default();
        let mut batch = Batch::default();
        let mut seen = std::collections::HashSet::new();
        'files: for (file, input) in inputs {
            let file = &file;
            for (n, line) in BufReader::new(input).lines().enumerate() {
                let n = n + 1;
                let line = match line {
                    Ok(l) => l,
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        report.lines += 1;
                        report.not_dead_letters += 1;
                        if report.not_dead_letters <= MAX_LISTED {
                            say!("{}:{n}: not UTF-8: left out", file.display());
                        }
                        continue;
                    }
                    Err(e) => {
                        say!("{}:{n}: cannot read: {e}; the rest of the file is not read", file.display());
                        report.unreadable = true;
                        break;
                    }
                };
                if line.trim().is_empty() {
                    continue;
                }
                report.lines += 1;
                let dead: DeadLetter = match serde_json::from_str(&line) {
                    Ok(d) => d,
                    Err(e) => {
                        report.not_dead_letters += 1;
                        if report.not_dead_letters <= MAX_LISTED {
                            say!("{}:{n}: not a dead-letter record ({e}): left out", file.display());
                        }
                        continue;
                    }
                };
                let Some(event) = dead.event else {
                    if dead.raw.is_some() {
                        report.raw += 1;
                        say!(
                            "{}:{n}: raw dead letter ({}): the body never parsed as events, so there is nothing to replay",
                            file.display(),
                            dead.code
                        );
                    } else {
                        report.not_dead_letters += 1;
                        say!("{}:{n}: a dead letter without `event` or `raw`: left out", file.display());
                    }
                    continue;
                };
                let head: Head = serde_json::from_str(event.get()).unwrap_or_default();
                let schema = head.schema.as_ref().and_then(|s| s.as_str());
                if !selection.selects(&dead.code, dead.received_at.as_deref(), schema) {
                    report.left_out += 1;
                    continue;
                }
                let id = head
                    .event_id
                    .as_ref()
                    .and_then(|i| i.as_str())
                    .map_or_else(|| format!("{}:{n}", file.display()), str::to_owned);
                // An event dead-lettered more than once is sent once.
                if !seen.insert(id.clone()) {
                    report.repeated += 1;
                    continue;
                }
                if !batch.fits(&event) && !sender.send(std::mem::take(&mut batch), &mut report).await {
                    report.stopped = true;
                    break 'files;
                }
                batch.push(event, id);
            }
        }
        if !report.stopped && !sender.send(batch, &mut report).await {
            report.stopped = true;
        }
        if let Some(dry) = dry {
            dry.report();
        }
        print_report(&report, args.dry_run);
        if report.lines > 0 && report.not_dead_letters == report.lines {
            anyhow::bail!("no line of these files is a dead letter (the collector's --bad sink writes them)");
        }
        let failed = !report.refused.is_empty()
            || report.undelivered > 0
            || report.stopped
            || report.unreadable;
        Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
    })
}

/// Events waiting to be sent together.
#[derive(Default)]
struct Batch {
    events: Vec<Box<RawValue>>,
    ids: Vec<String>,
    bytes: usize,
}

impl Batch {
    fn fits(&self, event: &RawValue) -> bool {
        self.events.is_empty()
            || (self.events.len() < MAX_EVENTS_PER_REQUEST
                && self.bytes + event.get().len() < MAX_BYTES_PER_REQUEST)
    }

    fn push(&mut self, event: Box<RawValue>, id: String) {
        self.bytes += event.get().len() + 1;
        self.events.push(event);
        self.ids.push(id);
    }

    fn body(&self) -> Vec<u8> {
        let sent_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut body = format!("{{\"sent_at\":\"{sent_at}\",\"events\":[").into_bytes();
        for (i, e) in self.events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(e.get().as_bytes());
        }
        body.extend_from_slice(b"]}");
        body
    }
}

/// What a failed request's result says, for a person.
fn why(
    result: &Result<eventwire::transport::Response, eventwire::transport::TransportError>,
) -> String {
    match result {
        Ok(r) if r.location.is_some() => format!(
            "answered {} with a redirect to {} (give the collector's base URL, without redirects)",
            r.status,
            r.location.as_deref().unwrap_or("?")
        ),
        Ok(r) if r.status == 401 || r.status == 403 => format!(
            "answered {}: the write key was refused (--write-key, EVENTWIRE_WRITE_KEY)",
            r.status
        ),
        Ok(r) if r.status == 413 => "answered 413: an event over the collector's size limit".into(),
        Ok(r) => {
            // The collector's 503 says why in its body (`error`).
            let error = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned));
            match error {
                Some(e) => format!("answered {}: {e}", r.status),
                None => format!("answered {}", r.status),
            }
        }
        Err(e) => crate::without_os_error_numbers(&e.to_string()),
    }
}

struct Sender {
    transport: HttpTransport,
    /// Whether each refusal is printed here (the dry run prints them with their errors).
    print_refusals: bool,
    write_key: Option<Arc<str>>,
    policy: RetryPolicy,
}

impl Sender {
    /// Sends `batch` until the collector answers for it, retrying as the tracker does;
    /// counts the answer in `report`. `false` when the collector could not be reached in
    /// time (the replay stops there) or refused the request for good.
    async fn send(&self, batch: Batch, report: &mut Report) -> bool {
        if batch.events.is_empty() {
            return true;
        }
        let n = batch.events.len();
        report.replayed += n as u64;
        let started = Instant::now();
        let mut said = None;
        for attempt in 0.. {
            let request = Request {
                body: batch.body(),
                gzip: false,
                write_key: self.write_key.clone(),
                events: n,
            };
            let result = self.transport.send(request).await;
            let outcome = match &result {
                Ok(r) if r.location.is_some() => Attempt::Redirected,
                Ok(r) => Attempt::Status {
                    code: r.status,
                    retry_after: r.retry_after.as_deref(),
                },
                Err(eventwire::transport::TransportError::Timeout) => Attempt::Timeout,
                Err(eventwire::transport::TransportError::Network(_)) => Attempt::Network,
            };
            let now_unix = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
            match self.policy.decide(
                outcome,
                attempt,
                started.elapsed(),
                now_unix,
                fastrand::f64(),
            ) {
                Verdict::Delivered => {
                    let body = result.map(|r| r.body).unwrap_or_default();
                    match eventwire::protocol::BatchResponse::for_batch(&body, n) {
                        Some(answer) => {
                            report.accepted += answer.accepted;
                            report.duplicates += answer.duplicates;
                            for r in &answer.rejected {
                                *report.refused.entry(r.code.clone()).or_default() += 1;
                                if self.print_refusals {
                                    let id = batch.ids.get(r.index).map_or("?", String::as_str);
                                    say!("{id}: still refused: {}", r.code);
                                }
                            }
                        }
                        None => {
                            report.undelivered += n as u64;
                            eprintln!("the endpoint answered 200 but not as an eventwire collector: {n} events not replayed");
                            return false;
                        }
                    }
                    return true;
                }
                Verdict::Retry(wait) | Verdict::Throttle(wait) => {
                    let why = why(&result);
                    if said.as_ref() != Some(&why) {
                        eprintln!("cannot replay yet: {why}; retrying");
                        said = Some(why);
                    }
                    tokio::time::sleep(wait).await;
                }
                Verdict::Split | Verdict::Refuse(_) | Verdict::GiveUp => {
                    report.undelivered += n as u64;
                    eprintln!(
                        "{n} events (from {}) not replayed: {}",
                        batch.ids.first().map_or("?", String::as_str),
                        why(&result)
                    );
                    return false;
                }
            }
        }
        // The policy gives up within its deadline, long before the attempts run out.
        report.undelivered += n as u64;
        false
    }
}

/// A collector inside this command for `--dry-run`.
struct DryRun {
    endpoint: String,
    good: eventwire_collector::sink::MemorySink,
    bad: eventwire_collector::sink::MemorySink,
    _server: eventwire_collector::server::ServerHandle,
}

impl DryRun {
    async fn start(registry: &str) -> anyhow::Result<DryRun> {
        use eventwire_collector::server::{Collector, CollectorConfig};
        let good = eventwire_collector::sink::MemorySink::default();
        let bad = eventwire_collector::sink::MemorySink::default();
        let config = CollectorConfig::new(eventwire_collector::registry::Source::parse(registry));
        let collector =
            Collector::with_sinks(config, Arc::new(good.clone()), Arc::new(bad.clone()))
                .context("cannot open the registry")?;
        let server = collector
            .serve(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("cannot start the dry run's collector")?;
        Ok(DryRun {
            endpoint: server.endpoint(),
            good,
            bad,
            _server: server,
        })
    }

    /// Prints each event that would now pass, and each still refused with its errors.
    fn report(&self) {
        for record in self.good.records() {
            let v: serde_json::Value = serde_json::from_slice(&record.line).unwrap_or_default();
            say!(
                "{}: would pass ({})",
                v["event_id"].as_str().unwrap_or("?"),
                v["schema"].as_str().unwrap_or("?")
            );
        }
        for record in self.bad.records() {
            let v: serde_json::Value = serde_json::from_slice(&record.line).unwrap_or_default();
            let errors: Vec<String> = v["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .map(|e| {
                            format!(
                                "{} ({}): {}",
                                e["path"].as_str().unwrap_or(""),
                                e["keyword"].as_str().unwrap_or(""),
                                e["message"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            say!(
                "{}: still refused: {} {}",
                v["event"]["event_id"].as_str().unwrap_or("?"),
                v["code"].as_str().unwrap_or("?"),
                errors.join("; ")
            );
        }
    }
}

fn print_report(r: &Report, dry_run: bool) {
    say!("lines read:        {}", r.lines);
    if r.not_dead_letters > 0 {
        say!("not dead letters:  {}", r.not_dead_letters);
    }
    say!("raw (not replayed): {}", r.raw);
    say!("left out by filter: {}", r.left_out);
    if r.repeated > 0 {
        say!("repeated (sent once): {}", r.repeated);
    }
    say!(
        "{}          {}",
        if dry_run { "checked: " } else { "sent:    " },
        r.replayed
    );
    say!(
        "  {} {}",
        if dry_run {
            "would pass:    "
        } else {
            "stored:        "
        },
        r.accepted + r.duplicates
    );
    if !dry_run {
        say!("    already stored: {}", r.duplicates);
    }
    let refused: u64 = r.refused.values().sum();
    say!("  still refused: {refused}");
    for (code, n) in &r.refused {
        say!("    {code}: {n}");
    }
    if r.undelivered > 0 {
        say!("  not delivered: {}", r.undelivered);
    }
    if r.not_dead_letters > MAX_LISTED {
        say!(
            "({} lines are not dead letters; the first {MAX_LISTED} are listed above)",
            r.not_dead_letters
        );
    }
    if r.stopped {
        say!("stopped: the collector did not answer for a request in time; the rest was not sent (run the replay again: what was stored is found already stored)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_code_schema_and_time() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let all = Selection::default();
        let by_code = Selection {
            codes: vec!["unknown_schema".into()],
            ..Selection::default()
        };
        let by_schema = Selection {
            schemas: vec!["com.example.web/search".into()],
            ..Selection::default()
        };
        let by_uri = Selection {
            schemas: vec!["iglu:com.example.web/search/jsonschema/1-0-0".into()],
            ..Selection::default()
        };
        let by_time = Selection {
            since: Some(t("2026-12-01T00:00:00Z")),
            until: Some(t("2026-12-02T00:00:00Z")),
            ..Selection::default()
        };
        let search = Some("iglu:com.example.web/search/jsonschema/1-0-0");
        let search_2 = Some("iglu:com.example.web/search/jsonschema/2-0-0");
        let other = Some("iglu:com.example.web/searches/jsonschema/1-0-0");
        let day = Some("2026-12-01T10:00:00.000Z");
        for (selection, code, at, schema, want) in [
            (&all, "schema_invalid", None, None, true),
            (&by_code, "unknown_schema", day, search, true),
            (&by_code, "schema_invalid", day, search, false),
            (&by_schema, "x", day, search, true),
            (&by_schema, "x", day, search_2, true),
            (&by_schema, "x", day, other, false),
            (&by_schema, "x", day, None, false),
            (&by_schema, "x", day, Some("not a uri"), false),
            (&by_uri, "x", day, search, true),
            (&by_uri, "x", day, search_2, false),
            (&by_time, "x", day, search, true),
            (&by_time, "x", Some("2026-12-01T00:00:00Z"), search, true),
            (&by_time, "x", Some("2026-12-02T00:00:00Z"), search, false),
            (
                &by_time,
                "x",
                Some("2026-11-30T23:59:59.999Z"),
                search,
                false,
            ),
            (&by_time, "x", None, search, false),
            (&by_time, "x", Some("yesterday"), search, false),
        ] {
            assert_eq!(
                selection.selects(code, at, schema),
                want,
                "{selection:?} {code} {at:?} {schema:?}"
            );
        }
    }

    #[test]
    fn batches_stay_under_the_collectors_limits() {
        let event =
            RawValue::from_string(format!("{{\"a\":\"{}\"}}", "x".repeat(100_000))).unwrap();
        let mut batch = Batch::default();
        let mut sent = 0;
        for _ in 0..30 {
            if !batch.fits(&event) {
                assert!(batch.body().len() <= MAX_BYTES_PER_REQUEST + 100);
                batch = Batch::default();
                sent += 1;
            }
            batch.push(event.clone(), String::new());
        }
        assert!(sent >= 3);
        let body: serde_json::Value = serde_json::from_slice(&batch.body()).unwrap();
        assert!(body["events"].as_array().unwrap().len() <= MAX_EVENTS_PER_REQUEST);
        // One event over the limit still goes, alone (the collector refuses it as too large).
        let huge = RawValue::from_string(format!("\"{}\"", "x".repeat(2_000_000))).unwrap();
        assert!(Batch::default().fits(&huge));
    }
}
