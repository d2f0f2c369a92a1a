//! Game days: the tracker and the collector as separate processes, a fault-injecting proxy
//! between them, and the checks that every event tracked arrives exactly once.
//!
//! Run by `scripts/test.sh` as `cargo test -p eventwire-game-days --release`; the scenarios
//! are in `tests/game_days.rs`, the results table in `docs/reliability.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)] // a test harness: fail loudly

pub use eventwire_testkit::proxy;

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A free loopback address (bound, then released for a child process to take).
#[must_use]
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Resident memory of process `pid`, in kB (`VmRSS`).
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The collector as a child process with file sinks in `dir`.
pub struct CollectorProc {
    bin: PathBuf,
    schemas: PathBuf,
    dir: PathBuf,
    /// Where it listens (the same across restarts).
    pub addr: SocketAddr,
    /// Environment for the process (`GAMEDAY_SINK_DELAY_MS`, `GAMEDAY_WRITE_KEY`).
    pub env: Vec<(String, String)>,
    /// The good sink when not the file `good.jsonl` in its directory (`kafka://…/TOPIC`).
    pub good: Option<String>,
    child: Option<Child>,
}

impl CollectorProc {
    /// A collector that is not running yet.
    #[must_use]
    pub fn new(bin: &Path, schemas: &Path, dir: &Path) -> CollectorProc {
        CollectorProc {
            bin: bin.into(),
            schemas: schemas.into(),
            dir: dir.into(),
            addr: free_addr(),
            env: Vec::new(),
            good: None,
            child: None,
        }
    }

    /// Starts it and waits until it accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(&self.bin)
            .arg(self.addr.to_string())
            .arg(&self.schemas)
            .arg(
                self.good
                    .clone()
                    .unwrap_or_else(|| self.dir.join("good.jsonl").display().to_string()),
            )
            .arg(self.dir.join("bad.jsonl"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .spawn()
            .expect("start the collector");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(Instant::now() < deadline, "collector did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the process, in kB (`VmRSS`).
    #[must_use]
    pub fn rss_kb(&self) -> Option<u64> {
        rss_kb(self.child.as_ref()?.id())
    }

    /// SIGKILL: no chance to finish a write or answer.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Event ids in the good sink, with how often each appears. Panics on a line that is not
    /// a whole JSON object with an `event_id` (a half-written line surviving as an event).
    #[must_use]
    pub fn good_ids(&self) -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        let Ok(file) = std::fs::File::open(self.dir.join("good.jsonl")) else {
            return seen;
        };
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("good.jsonl line {}: not JSON ({e}): {line:.120}", n + 1)
            });
            let id = v["event_id"].as_str().expect("good event without event_id");
            *seen.entry(id.to_owned()).or_insert(0) += 1;
        }
        seen
    }

    /// Where its sinks are.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lines in the dead-letter sink.
    #[must_use]
    pub fn bad_lines(&self) -> usize {
        std::fs::read_to_string(self.dir.join("bad.jsonl")).map_or(0, |s| s.lines().count())
    }
}

impl Drop for CollectorProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a tracker process said on stdout.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// `(seq, event_id)` of every event `track()` accepted.
    pub tracked: Vec<(u64, String)>,
    /// `(event_id, reader, article)` of every article view `track()` accepted.
    pub views: Vec<(String, String, String)>,
    /// `(seq, status)` of every event also sent through the other collector.
    pub failovers: Vec<(u64, String)>,
    /// Events `track()` refused.
    pub refused: u64,
    /// `(event_id, reason)` of every event the failure callback was given.
    pub failed: Vec<(String, String)>,
    /// Every event up to this sequence number had time for its group commit.
    pub durable: Option<u64>,
    /// When it finished tracking.
    pub tracking_done: Option<Instant>,
    /// Its final stats, after the flush.
    pub stats: Option<serde_json::Value>,
    /// When it printed its stats.
    pub done: Option<Instant>,
}

impl Report {
    /// A number from the stats.
    #[must_use]
    pub fn stat(&self, name: &str) -> u64 {
        self.stats
            .as_ref()
            .and_then(|s| s[name].as_u64())
            .unwrap_or_else(|| panic!("no stat {name} in {:?}", self.stats))
    }
}

/// A tracker as a child process (see `src/bin/gameday-tracker.rs`).
pub struct TrackerProc {
    child: Option<Child>,
    report: Arc<Mutex<Report>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl TrackerProc {
    /// Starts `bin` with `args`.
    #[must_use]
    pub fn start(bin: &Path, args: &[String]) -> TrackerProc {
        let mut child = Command::new(bin)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the tracker");
        let stdout = child.stdout.take().unwrap();
        let report = Arc::new(Mutex::new(Report::default()));
        let r = report.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut r = r.lock().unwrap();
                let mut words = line.splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    (Some("tracked"), Some(seq), Some(rest)) => {
                        let mut parts = rest.split(' ');
                        let id = parts.next().unwrap().to_owned();
                        if let (Some(reader), Some(article)) = (parts.next(), parts.next()) {
                            r.views
                                .push((id.clone(), reader.to_owned(), article.to_owned()));
                        }
                        r.tracked.push((seq.parse().unwrap(), id));
                    }
                    (Some("failover"), Some(seq), Some(status)) => {
                        r.failovers.push((seq.parse().unwrap(), status.to_owned()));
                    }
                    (Some("refused"), _, _) => r.refused += 1,
                    (Some("failed"), Some(id), Some(reason)) => {
                        r.failed.push((id.to_owned(), reason.to_owned()));
                    }
                    (Some("durable"), Some(seq), _) => r.durable = Some(seq.parse().unwrap()),
                    (Some("tracking_done"), _, _) => r.tracking_done = Some(Instant::now()),
                    (Some("stats"), Some(_), _) => {
                        r.stats = Some(serde_json::from_str(&line["stats ".len()..]).unwrap());
                    }
                    (Some("done"), _, _) => r.done = Some(Instant::now()),
                    _ => {}
                }
            }
        });
        TrackerProc {
            child: Some(child),
            report,
            reader: Some(reader),
        }
    }

    /// What it reported so far.
    #[must_use]
    pub fn report(&self) -> Report {
        self.report.lock().unwrap().clone()
    }

    /// Waits until `ready` holds for the report, or panics after `timeout`.
    pub fn wait_until(&self, timeout: Duration, what: &str, ready: impl Fn(&Report) -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready(&self.report.lock().unwrap()) {
            assert!(
                Instant::now() < deadline,
                "tracker: timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resident memory of the process, in kB (`VmRSS`).
    #[must_use]
    pub fn rss_kb(&self) -> Option<u64> {
        rss_kb(self.child.as_ref()?.id())
    }

    /// SIGKILL.
    pub fn kill(&mut self) -> Report {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.report()
    }

    /// Waits for a clean exit (up to `timeout`) and returns the final report.
    pub fn finish(&mut self, timeout: Duration) -> Report {
        self.wait_until(timeout, "its final stats", |r| r.done.is_some());
        if let Some(mut child) = self.child.take() {
            let status = child.wait().unwrap();
            assert!(status.success(), "tracker exited with {status}");
        }
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.report()
    }
}

impl Drop for TrackerProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A worker of `eventwire process` as a child process (see `src/bin/gameday-process.rs`).
pub struct WorkerProc {
    /// Its HTTP API.
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl WorkerProc {
    /// Starts `bin` as a worker of the group reading `input` on `brokers`, counting
    /// `uniques`, its log (info level) going to `log`, and waits until its API answers.
    #[must_use]
    pub fn start(
        bin: &Path,
        brokers: &str,
        input: &str,
        uniques: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> WorkerProc {
        let addr = free_addr();
        let child = Command::new(bin)
            .args([brokers, input, &addr.to_string()])
            .args(uniques)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("create the worker's log"))
            .spawn()
            .expect("start the worker");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "worker did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        WorkerProc {
            addr,
            child: Some(child),
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Resident memory, in kB.
    #[must_use]
    pub fn rss_kb(&self) -> Option<u64> {
        rss_kb(self.child.as_ref()?.id())
    }

    /// True while the process runs.
    #[must_use]
    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        self.kill();
    }
}
