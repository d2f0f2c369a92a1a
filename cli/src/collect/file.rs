//! `eventwire collect --config collector.toml`: the collector's settings in a file.
//!
//! Every flag of `collect` has a key of the same name (`--max-in-flight-bytes` is
//! `max_in_flight_bytes`), and `[kafka]` holds librdkafka properties. A key the collector
//! does not know, or a value it cannot use, is an error naming the key and the file's line
//! and column. docs/operations.md shows a whole file.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use eventwire_collector::sink::{KafkaOptions, OptionValue, SinkSpec};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// The settings a file gives; `None` where it is silent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// `--schemas`.
    pub schemas: Option<String>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--good`.
    #[serde(default, deserialize_with = "sink")]
    pub good: Option<String>,
    /// `--bad`.
    #[serde(default, deserialize_with = "sink")]
    pub bad: Option<String>,
    /// `--write-key`, each written out or read from `{ env = "…" }` / `{ file = "…" }`.
    pub write_keys: Option<Vec<Source>>,
    /// `--cors-origin`.
    pub cors_origins: Option<Vec<String>>,
    /// `--dev`.
    pub dev: Option<bool>,
    /// `--fsync`.
    pub fsync: Option<bool>,
    /// `--max-in-flight-requests`.
    #[serde(default, deserialize_with = "at_least_1")]
    pub max_in_flight_requests: Option<usize>,
    /// `--max-in-flight-bytes`.
    #[serde(default, deserialize_with = "at_least_1024")]
    pub max_in_flight_bytes: Option<usize>,
    /// `--shutdown-timeout`, e.g. `"30s"`.
    #[serde(default, deserialize_with = "duration")]
    pub shutdown_timeout: Option<Duration>,
    /// `--log`.
    pub log: Option<String>,
    /// `--log-format`: `text` or `json`.
    #[serde(default, deserialize_with = "log_format")]
    pub log_format: Option<String>,
    /// `[kafka]`: librdkafka properties for the Kafka sinks.
    #[serde(default)]
    pub kafka: BTreeMap<String, Source>,
}

/// A value written out, or read at start from an environment variable or a file.
#[derive(Clone, PartialEq, Eq)]
pub struct Source(pub OptionValue);

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a settings file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key is unknown or a value is wrong: `FILE:LINE:COLUMN: [KEY: ]MESSAGE`.
    #[error("{}:{line}:{column}: {key}{message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// `KEY: ` where the error is about a value, else empty.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl FileSettings {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// [`FileError::Read`] when it cannot be read; [`FileError::Invalid`] for TOML syntax,
    /// an unknown key or a wrong value, at its line.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Checks `text`, read from `path` (named in errors).
    ///
    /// # Errors
    /// As [`FileSettings::load`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, FileError> {
        let invalid = |span: Option<std::ops::Range<usize>>, key: String, message: &str| {
            let at = span.map_or(0, |s| s.start).min(text.len());
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let column = before
                .rsplit_once('\n')
                .map_or(before, |(_, l)| l)
                .chars()
                .count()
                + 1;
            FileError::Invalid {
                path: path.to_owned(),
                line,
                column,
                key,
                message: message.trim_end().to_owned(),
            }
        };
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| invalid(e.span(), String::new(), e.message()))?;
        let settings: FileSettings =
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let key = e.path().to_string();
                let inner = e.into_inner();
                // serde names an unknown key in its message; a wrong value is named here.
                let key =
                    if key.is_empty() || key == "." || inner.message().starts_with("unknown field")
                    {
                        String::new()
                    } else {
                        format!("{key}: ")
                    };
                invalid(inner.span(), key, inner.message())
            })?;
        // TOML puts every key after a `[kafka]` header into that table: a setting written
        // below it would be taken for a librdkafka property and silently not applied.
        if let Some(key) = settings
            .kafka
            .keys()
            .find(|k| SETTINGS.contains(&k.as_str()))
        {
            let at = position_of_key(text, key);
            return Err(invalid(
                Some(at..at),
                format!("kafka.{key}: "),
                &format!(
                    "`{key}` is a collector setting, but it is inside [kafka] (every key after a [kafka] header belongs to it): move it above [kafka]"
                ),
            ));
        }
        if settings.schemas.as_deref() == Some("") {
            let at = position_of_key(text, "schemas");
            return Err(invalid(
                Some(at..at),
                "schemas: ".into(),
                "empty: a directory or an http(s) URL",
            ));
        }
        if let Some(filter) = &settings.log {
            if let Err(e) = tracing_subscriber::EnvFilter::try_new(filter) {
                let at = position_of_key(text, "log");
                return Err(invalid(
                    Some(at..at),
                    "log: ".into(),
                    &format!("{filter:?} is not a log filter: {e}"),
                ));
            }
        }
        Ok(settings)
    }

    /// The `[kafka]` table as options (in key order).
    pub fn kafka_options(&self) -> KafkaOptions {
        let mut options = KafkaOptions::new();
        for (key, Source(value)) in &self.kafka {
            options.push(key.clone(), value.clone());
        }
        options
    }
}

/// The top-level keys, as `FileSettings` names them.
const SETTINGS: &[&str] = &[
    "schemas",
    "listen",
    "good",
    "bad",
    "write_keys",
    "cors_origins",
    "dev",
    "fsync",
    "max_in_flight_requests",
    "max_in_flight_bytes",
    "shutdown_timeout",
    "log",
    "log_format",
];

/// Where `key` is written as a key (at a line's start, bare or quoted, before `=`); the
/// start of the text when it is not found.
fn position_of_key(text: &str, key: &str) -> usize {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        for spelled in [key.to_owned(), format!("\"{key}\""), format!("'{key}'")] {
            if let Some(rest) = trimmed.strip_prefix(&spelled) {
                if rest.trim_start().starts_with('=') {
                    return offset + indent;
                }
            }
        }
        offset += line.len();
    }
    0
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SourceVisitor;
        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = Source;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    r#"a string, number or boolean, or { env = "VARIABLE" } or { file = "PATH" }"#,
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Source, E> {
                Ok(Source(OptionValue::Literal(v.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Source, E> {
                Ok(Source(OptionValue::Literal(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Source, E> {
                Ok(Source(OptionValue::Literal(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Source, E> {
                Ok(Source(OptionValue::Literal(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Source, E> {
                Ok(Source(OptionValue::Literal(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Source, A::Error> {
                let (Some((kind, value)), None) = (
                    map.next_entry::<String, String>()?,
                    map.next_key::<String>()?,
                ) else {
                    return Err(de::Error::custom(
                        r#"a secret is { env = "VARIABLE" } or { file = "PATH" }, one of them"#,
                    ));
                };
                match kind.as_str() {
                    "env" if !value.is_empty() => Ok(Source(OptionValue::Env(value))),
                    "file" if !value.is_empty() => Ok(Source(OptionValue::File(value.into()))),
                    "env" | "file" => Err(de::Error::custom(format!("`{kind}` is empty"))),
                    other => Err(de::Error::custom(format!(
                        "unknown secret source `{other}`: use env or file"
                    ))),
                }
            }
        }
        deserializer.deserialize_any(SourceVisitor)
    }
}

fn within<'de, D: Deserializer<'de>>(
    d: D,
    min: usize,
    max: usize,
) -> Result<Option<usize>, D::Error> {
    let n = usize::deserialize(d)?;
    if n < min {
        return Err(de::Error::custom(format!(
            "must be at least {min}, not {n}"
        )));
    }
    if n > max {
        return Err(de::Error::custom(format!("must be at most {max}, not {n}")));
    }
    Ok(Some(n))
}

fn at_least_1<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    within(d, 1, 1_000_000)
}

fn at_least_1024<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    within(d, 1024, 1 << 40)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    let d = humantime::parse_duration(&text)
        .map_err(|e| de::Error::custom(format!("{text:?} is not a duration like \"30s\": {e}")))?;
    if d > Duration::from_secs(3600) {
        return Err(de::Error::custom(format!("{text:?}: at most 1h")));
    }
    Ok(Some(d))
}

fn sink<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Err(de::Error::custom(
            "empty: a file path, `-` for stdout, or kafka://HOST:PORT/TOPIC",
        ));
    }
    if let SinkSpec::Kafka { brokers, topic } = SinkSpec::parse(&text) {
        if brokers.is_empty() || topic.is_empty() {
            return Err(de::Error::custom(format!(
                "{text:?}: a Kafka sink is kafka://HOST:PORT[,HOST:PORT…]/TOPIC"
            )));
        }
    }
    Ok(Some(text))
}

fn log_format<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    match text.as_str() {
        "text" | "json" => Ok(Some(text)),
        _ => Err(de::Error::custom(format!(
            "{text:?}: the log format is \"text\" or \"json\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileSettings, String> {
        FileSettings::parse(text, Path::new("c.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_whole_file_is_read() {
        let s = parse(
            r#"
schemas = "https://iglu.example.com"
listen = "0.0.0.0:8080"
good = "kafka://k1:9092,k2:9092/events"
bad = "kafka://k1:9092/dead-letters"
write_keys = ["public-key", { env = "WRITE_KEY" }, { file = "/run/secrets/key" }]
cors_origins = ["https://shop.example"]
dev = false
fsync = true
max_in_flight_requests = 512
max_in_flight_bytes = 67108864
shutdown_timeout = "45s"
log = "info"
log_format = "json"

[kafka]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.password" = { env = "KAFKA_PASSWORD" }
"linger.ms" = 20
"#,
        )
        .unwrap();
        assert_eq!(s.listen, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(s.max_in_flight_bytes, Some(64 << 20));
        assert_eq!(s.shutdown_timeout, Some(Duration::from_secs(45)));
        assert_eq!(
            s.write_keys.as_ref().unwrap()[1],
            Source(OptionValue::Env("WRITE_KEY".into()))
        );
        let kafka: Vec<_> = s
            .kafka_options()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        assert_eq!(
            kafka,
            [
                ("linger.ms".into(), OptionValue::Literal("20".into())),
                (
                    "sasl.mechanism".into(),
                    OptionValue::Literal("SCRAM-SHA-512".into())
                ),
                (
                    "sasl.password".into(),
                    OptionValue::Env("KAFKA_PASSWORD".into())
                ),
                (
                    "security.protocol".into(),
                    OptionValue::Literal("SASL_SSL".into())
                ),
            ]
        );
        assert!(parse("").is_ok());
    }

    /// The whole file docs/operations.md shows is one the collector takes.
    #[test]
    fn the_documented_file_is_valid() {
        let doc = include_str!("../../../docs/operations.md");
        let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + doc[start..].find("```").unwrap();
        let s = parse(&doc[start..end]).unwrap();
        assert_eq!(s.kafka.len(), 6);
        assert!(s.write_keys.is_some() && s.shutdown_timeout.is_some() && s.log_format.is_some());
    }

    /// Each mistake is named with its key and its line and column.
    #[test]
    fn errors_name_the_key_and_the_line() {
        for (text, want) in [
            (
                "listen = \"127.0.0.1:1\"\nlisten_addr = \"x\"\n",
                "c.toml:2:1: unknown field `listen_addr`, expected one of",
            ),
            (
                "\n\nlisten = \"nope\"\n",
                "c.toml:3:10: listen: invalid socket address syntax",
            ),
            (
                "max_in_flight_requests = 0\n",
                "c.toml:1:26: max_in_flight_requests: must be at least 1, not 0",
            ),
            (
                "max_in_flight_bytes = -5\n",
                "c.toml:1:23: max_in_flight_bytes: invalid value: integer `-5`",
            ),
            (
                "dev = \"yes\"\n",
                "c.toml:1:7: dev: invalid type: string \"yes\", expected a boolean",
            ),
            (
                "shutdown_timeout = \"soon\"\n",
                "c.toml:1:20: shutdown_timeout: \"soon\" is not a duration",
            ),
            (
                "good = \"kafka:///events\"\n",
                "c.toml:1:8: good: \"kafka:///events\": a Kafka sink is",
            ),
            (
                "log_format = \"xml\"\n",
                "c.toml:1:14: log_format: \"xml\": the log format is",
            ),
            (
                "[kafka]\n\"sasl.password\" = { vault = \"x\" }\n",
                "c.toml:2:19: kafka.sasl.password: unknown secret source `vault`",
            ),
            (
                "write_keys = [\"a\", { env = \"\" }]\n",
                "c.toml:1:20: write_keys[1]: `env` is empty",
            ),
            (
                "[kafka]\n\"linger.ms\" = [1]\n",
                "c.toml:2:15: kafka.linger.ms: invalid type: sequence",
            ),
            ("listen = \n", "c.toml:1:10: "),
            (
                "[kafka]\n\"linger.ms\" = 5\nlisten = \"127.0.0.1:1\"\n",
                "c.toml:3:1: kafka.listen: `listen` is a collector setting, but it is inside [kafka]",
            ),
            ("schemas = \"\"\n", "c.toml:1:1: schemas: empty"),
            ("\nlog = \"x==[[\"\n", "c.toml:2:1: log: \"x==[[\" is not a log filter"),
            ("[kafka]\nx = 1\n[kafka]\n", "c.toml:3:"),
        ] {
            let got = parse(text).unwrap_err();
            assert!(
                got.starts_with(want),
                "{text:?}\n got: {got}\nwant: {want}…"
            );
        }
    }
}
