//! Where records go: a JSONL file, stdout, or Kafka (feature `kafka`).
//!
//! A sink takes a whole batch of records and returns only once they are durable to the
//! degree the sink offers (file: written and flushed to the OS; Kafka: acknowledged), so the
//! collector can answer 200 knowing nothing will be lost by answering.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;

#[cfg(feature = "kafka")]
mod kafka;
mod options;
#[cfg(feature = "kafka")]
pub use kafka::{check_options, producer_config, KafkaSink, PARTITIONER};
pub use options::{
    is_sensitive, weakens_delivery, KafkaOptionError, KafkaOptions, OptionValue,
    ResolvedKafkaOptions,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// One record: a JSON line (without the newline) and its key (the `event_id`, for Kafka).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRecord {
    /// Partition key; `None` for dead letters without an event id.
    pub key: Option<String>,
    /// The JSON object, one line.
    pub line: Vec<u8>,
}

/// Why a sink refused a batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing failed.
    #[error("{sink}: {cause}")]
    Io {
        /// Which sink.
        sink: String,
        /// Why (in the message, so not also a `source()`).
        cause: std::io::Error,
    },
    /// The broker did not acknowledge every record.
    #[error("{sink}: {message}")]
    Broker {
        /// Which sink.
        sink: String,
        /// Why.
        message: String,
        /// Indices of the batch's records the broker did acknowledge (they are stored).
        written: Vec<usize>,
    },
}

impl SinkError {
    /// Indices of the records that were stored although the batch failed (a broker that
    /// acknowledged some); empty for a file, whose failed batch leaves nothing.
    pub fn written(&self) -> &[usize] {
        match self {
            SinkError::Broker { written, .. } => written,
            SinkError::Io { .. } => &[],
        }
    }
}

/// A destination for records.
pub trait Sink: Send + Sync + 'static {
    /// Writes `records`; resolves once they are accepted. On failure, a reader of the sink
    /// sees none of the batch (a file is cut back to where it began), or exactly the records
    /// [`SinkError::written`] names (a broker's acknowledged ones).
    fn write<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>>;
    /// A short description (`file:/tmp/good.jsonl`).
    fn describe(&self) -> String;
    /// Event ids this sink already holds from before the collector started, most recent
    /// last, to seed deduplication across a restart (a file sink reads its tail; others have
    /// none).
    fn recent_keys(&self) -> Vec<String> {
        Vec::new()
    }
    /// Makes what was written durable before the process ends, within `timeout`: a file is
    /// synced to disk, Kafka waits for outstanding deliveries. Nothing else is written
    /// after it.
    fn close(&self, timeout: std::time::Duration) -> BoxFuture<'_, Result<(), SinkError>> {
        let _ = timeout;
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Appends JSON lines to a file.
///
/// A batch is written with one `write_all` of complete lines, then flushed. It is all or
/// nothing for a reader: if the write fails part-way (the disk fills, an I/O error), the
/// file is cut back to where the batch began before the error is returned (and, if even
/// that fails, before the next write), so no line of a refused batch — whole or torn —
/// stays to be written again by the resend. If the process dies mid-write, the file may end
/// in a partial line; opening the sink again truncates that tail.
pub struct FileSink {
    path: PathBuf,
    file: Mutex<FileState>,
    fsync: bool,
    recent: std::sync::Mutex<Vec<String>>,
}

/// The open file, and a failed batch's start not yet cut back to.
struct FileState {
    file: tokio::fs::File,
    /// A failed batch could not be cut away: cut back to here before the next write.
    cut_to: Option<u64>,
}

/// How much of an existing file sink's tail is read at start for the ids to deduplicate
/// against (≈ 50,000 events of 1.3 KB: far more than the resends a restart causes).
pub const DEDUP_SEED_BYTES: u64 = 64 * 1024 * 1024;

impl FileSink {
    /// Opens (creating) `path` for appending; cuts a torn last line if there is one.
    pub async fn open(path: impl Into<PathBuf>, fsync: bool) -> std::io::Result<FileSink> {
        let path = path.into();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        repair_tail(&file)?;
        let recent = tail_ids(&file, DEDUP_SEED_BYTES)?;
        Ok(FileSink {
            path,
            file: Mutex::new(FileState {
                file: tokio::fs::File::from_std(file),
                cut_to: None,
            }),
            fsync,
            recent: std::sync::Mutex::new(recent),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// Truncates the file after its last newline (a torn write from a crash).
/// The `event_id`s of the complete lines in the last `window` bytes of `file`, in order.
fn tail_ids(file: &std::fs::File, window: u64) -> std::io::Result<Vec<String>> {
    use std::io::{BufRead, Read, Seek, SeekFrom};
    #[derive(serde::Deserialize)]
    struct Line {
        event_id: Option<String>,
    }
    let len = file.metadata()?.len();
    let start = len.saturating_sub(window);
    let mut reader = std::io::BufReader::new(file);
    reader.seek(SeekFrom::Start(start))?;
    let mut lines = reader.take(len - start).split(b'\n');
    if start > 0 {
        lines.next(); // a partial first line
    }
    let mut ids = Vec::new();
    for line in lines {
        if let Ok(Line { event_id: Some(id) }) = serde_json::from_slice(&line?) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// [`repair_tail`] on the open sink file, off the async threads.
async fn cut_torn_tail(file: &tokio::fs::File) -> std::io::Result<()> {
    let file = file.try_clone().await?.into_std().await;
    tokio::task::spawn_blocking(move || repair_tail(&file))
        .await
        .map_err(std::io::Error::other)?
}

fn repair_tail(file: &std::fs::File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut reader = file;
    let window = len.min(64 * 1024);
    let mut buf = vec![0u8; window as usize];
    let mut end = len;
    loop {
        let start = end.saturating_sub(window);
        reader.seek(SeekFrom::Start(start))?;
        let n = (end - start) as usize;
        reader.read_exact(&mut buf[..n])?;
        if let Some(pos) = buf[..n].iter().rposition(|b| *b == b'\n') {
            let keep = start + pos as u64 + 1;
            if keep < len {
                tracing::warn!(
                    bytes = len - keep,
                    "cut a torn last line from the sink file"
                );
                file.set_len(keep)?;
            }
            return Ok(());
        }
        if start == 0 {
            tracing::warn!(bytes = len, "sink file has no complete line; truncating it");
            return file.set_len(0);
        }
        end = start;
    }
}

impl Sink for FileSink {
    fn write<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            let buf = join_lines(records);
            let mut state = self.file.lock().await;
            let io = |cause| SinkError::Io {
                sink: self.describe(),
                cause,
            };
            // Only ever shrink: a file cut by someone else meanwhile (a log rotation's
            // copy-and-truncate) must not be padded back out with zeros.
            if let Some(to) = state.cut_to {
                if state.file.metadata().await.map_err(io)?.len() > to {
                    state.file.set_len(to).await.map_err(io)?;
                }
                // Rotated meanwhile: the cut point may be mid-line.
                cut_torn_tail(&state.file).await.map_err(io)?;
                state.cut_to = None;
            }
            // Where this batch begins: the file's real end (appends go there).
            let start = state.file.metadata().await.map_err(io)?.len();
            let written = async {
                state.file.write_all(&buf).await?;
                state.file.flush().await?;
                if self.fsync {
                    state.file.sync_data().await?;
                }
                Ok(())
            }
            .await;
            match written {
                Ok(()) => Ok(()),
                Err(e) => {
                    // All or nothing: cut what this batch began (the file is in append
                    // mode, so the next batch then starts where this one did).
                    match state.file.metadata().await.map(|m| m.len()) {
                        Ok(len) => {
                            if len > start {
                                if let Err(cut) = state.file.set_len(start).await {
                                    tracing::error!(error = %cut, "could not cut a failed batch from the sink file; will before the next write");
                                    state.cut_to = Some(start);
                                }
                            }
                            // Someone may have truncated the file meanwhile (a
                            // copy-and-truncate rotation): then where this batch's bytes
                            // begin is unknown and the file can end in a torn line. It is
                            // cut, so the next batch starts on a line of its own; whole lines
                            // of this batch may stay, and its resend writes them again (a
                            // duplicate, not a loss).
                            if state.cut_to.is_none() {
                                if let Err(cut) = cut_torn_tail(&state.file).await {
                                    // Tried again before the next write, which waits for it.
                                    tracing::error!(error = %cut, "could not cut a torn line from the sink file; will before the next write");
                                    state.cut_to = Some(len.min(start));
                                }
                            }
                        }
                        // Not known how long the file is: decided before the next write
                        // (only ever shrinking it).
                        Err(_) => state.cut_to = Some(start),
                    }
                    Err(io(e))
                }
            }
        })
    }

    fn close(&self, timeout: std::time::Duration) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let sync = async {
                let state = self.file.lock().await;
                // A device or a pipe (`/dev/null`) has nothing to sync, and refuses to.
                if !state.file.metadata().await?.is_file() {
                    return Ok(());
                }
                state.file.sync_all().await
            };
            let result = match tokio::time::timeout(timeout, sync).await {
                Ok(result) => result,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("not synced to disk within {} s", timeout.as_secs_f64()),
                )),
            };
            result.map_err(|cause| SinkError::Io {
                sink: self.describe(),
                cause,
            })
        })
    }

    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn recent_keys(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Writes JSON lines to standard output.
#[derive(Debug, Default)]
pub struct StdoutSink {
    lock: Mutex<()>,
}

impl Sink for StdoutSink {
    fn write<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let buf = join_lines(records);
            let _turn = self.lock.lock().await;
            let mut out = std::io::stdout().lock();
            out.write_all(&buf)
                .and_then(|()| out.flush())
                .map_err(|cause| SinkError::Io {
                    sink: "stdout".into(),
                    cause,
                })
        })
    }

    fn describe(&self) -> String {
        "stdout".into()
    }
}

/// Keeps records in memory (tests, and the dev mode's view of what was written).
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    records: Arc<std::sync::Mutex<Vec<SinkRecord>>>,
}

impl MemorySink {
    /// Everything written so far.
    pub fn records(&self) -> Vec<SinkRecord> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Sink for MemorySink {
    fn write<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(records);
        Box::pin(std::future::ready(Ok(())))
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

fn join_lines(records: &[SinkRecord]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(records.iter().map(|r| r.line.len() + 1).sum());
    for r in records {
        buf.extend_from_slice(&r.line);
        buf.push(b'\n');
    }
    buf
}

/// A sink named on the command line: a file path, `-` for stdout, or `kafka://HOST:PORT/TOPIC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// A JSONL file.
    File(PathBuf),
    /// Standard output.
    Stdout,
    /// A Kafka topic.
    Kafka {
        /// Bootstrap servers, `host:port[,host:port…]`.
        brokers: String,
        /// Topic.
        topic: String,
    },
}

impl SinkSpec {
    /// Parses `-`, `kafka://brokers/topic`, or a path.
    pub fn parse(s: &str) -> SinkSpec {
        if s == "-" {
            return SinkSpec::Stdout;
        }
        if let Some(rest) = s.strip_prefix("kafka://") {
            let (brokers, topic) = rest.split_once('/').unwrap_or((rest, "eventwire"));
            return SinkSpec::Kafka {
                brokers: brokers.to_owned(),
                topic: topic.to_owned(),
            };
        }
        SinkSpec::File(PathBuf::from(s))
    }

    /// Opens the sink; a Kafka producer is made with `kafka`'s properties, so a property
    /// librdkafka does not know, or a value it refuses, is an error now (with secrets
    /// redacted), not at the first event.
    pub async fn open(
        &self,
        fsync: bool,
        kafka: &ResolvedKafkaOptions,
    ) -> Result<Arc<dyn Sink>, SinkError> {
        match self {
            SinkSpec::File(path) => FileSink::open(path, fsync)
                .await
                .map(|s| Arc::new(s) as Arc<dyn Sink>)
                .map_err(|cause| SinkError::Io {
                    sink: format!("file:{}", path.display()),
                    cause,
                }),
            SinkSpec::Stdout => Ok(Arc::new(StdoutSink::default())),
            #[cfg(feature = "kafka")]
            SinkSpec::Kafka { brokers, topic } => {
                match KafkaSink::with_options(brokers, topic, kafka.pairs()) {
                    Ok(sink) => Ok(Arc::new(sink)),
                    Err(SinkError::Broker {
                        sink,
                        message,
                        written,
                    }) => Err(SinkError::Broker {
                        sink,
                        message: kafka.redact(&message),
                        written,
                    }),
                    Err(e) => Err(e),
                }
            }
            #[cfg(not(feature = "kafka"))]
            SinkSpec::Kafka { brokers, topic } => Err(SinkError::Broker {
                sink: format!("kafka://{brokers}/{topic}"),
                message: "this build has no Kafka support (feature `kafka`)".into(),
                written: Vec::new(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: &str) -> SinkRecord {
        SinkRecord {
            key: None,
            line: line.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn file_sink_appends_lines_and_cuts_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("eventwire-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("good.jsonl");
        let sink = FileSink::open(&path, false).await.unwrap();
        sink.write(&[rec(r#"{"a":1}"#), rec(r#"{"a":2}"#)])
            .await
            .unwrap();
        drop(sink);
        // A crash mid-write leaves half a line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"a":3,"hal"#)
            .unwrap();
        let sink = FileSink::open(&path, true).await.unwrap();
        sink.write(&[rec(r#"{"a":4}"#)]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n{\"a\":4}\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What is left after a torn-tail repair: the whole lines, whatever their length
    /// against the 64 KiB read window.
    #[test]
    fn repair_tail_keeps_whole_lines_only() {
        let long = "x".repeat(150 * 1024);
        let cases: Vec<(String, String)> = vec![
            (String::new(), String::new()),
            ("a\n".into(), "a\n".into()),
            ("a\nb".into(), "a\n".into()),
            ("no line".into(), String::new()),
            (format!("a\n{long}"), "a\n".into()),
            (format!("{long}\n{long}"), format!("{long}\n")),
            (format!("{long}\nb\n"), format!("{long}\nb\n")),
            (long.clone(), String::new()),
        ];
        for (before, after) in cases {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(before.as_bytes()).unwrap();
            repair_tail(&file).unwrap();
            let mut text = String::new();
            use std::io::{Read, Seek};
            file.rewind().unwrap();
            file.read_to_string(&mut text).unwrap();
            assert_eq!(text.len(), after.len(), "from {} bytes", before.len());
            assert_eq!(text, after);
        }
    }

    #[tokio::test]
    async fn a_reopened_file_sink_names_the_ids_it_holds_for_deduplication() {
        let dir = std::env::temp_dir().join(format!("eventwire-seed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("good.jsonl");
        let sink = FileSink::open(&path, false).await.unwrap();
        assert!(sink.recent_keys().is_empty());
        let lines: Vec<SinkRecord> = (0..100)
            .map(|i| {
                rec(&format!(
                    r#"{{"event_id":"id-{i}","data":{{"pad":"{}"}}}}"#,
                    "x".repeat(i)
                ))
            })
            .collect();
        sink.write(&lines).await.unwrap();
        sink.write(&[rec(r#"{"no_id":true}"#)]).await.unwrap();
        drop(sink);
        let sink = FileSink::open(&path, false).await.unwrap();
        let ids = sink.recent_keys();
        assert_eq!(ids, (0..100).map(|i| format!("id-{i}")).collect::<Vec<_>>());
        assert!(sink.recent_keys().is_empty(), "handed over once");
        // Only the tail is read: a window cutting a line skips that line.
        let file = std::fs::File::open(&path).unwrap();
        let tail = tail_ids(&file, 300).unwrap();
        assert!(!tail.is_empty() && tail.len() < 10, "{tail:?}");
        assert_eq!(tail.last().map(String::as_str), Some("id-99"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parses_specs() {
        assert_eq!(SinkSpec::parse("-"), SinkSpec::Stdout);
        assert_eq!(
            SinkSpec::parse("out/good.jsonl"),
            SinkSpec::File("out/good.jsonl".into())
        );
        assert_eq!(
            SinkSpec::parse("kafka://127.0.0.1:9092/events"),
            SinkSpec::Kafka {
                brokers: "127.0.0.1:9092".into(),
                topic: "events".into()
            }
        );
    }
}
