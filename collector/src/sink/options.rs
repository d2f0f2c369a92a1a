//! librdkafka properties given to every Kafka client (`security.protocol`, `sasl.*`,
//! `ssl.*`…): as written, or read from the environment or a file when they are secrets.
//!
//! Secrets are read once, at start ([`KafkaOptions::resolve`]), and never printed: the
//! `Debug` of both types shows `***` for them, and [`ResolvedKafkaOptions::redact`] takes
//! them out of any message (librdkafka's own errors quote the value they refuse).

use std::fmt;
use std::path::PathBuf;

/// Where an option's value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum OptionValue {
    /// The value itself.
    Literal(String),
    /// The value of this environment variable, read at start.
    Env(String),
    /// The contents of this file (one trailing newline dropped), read at start.
    File(PathBuf),
}

impl fmt::Debug for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Literal(_) => f.write_str("Literal(…)"),
            OptionValue::Env(name) => write!(f, "Env({name:?})"),
            OptionValue::File(path) => write!(f, "File({path:?})"),
        }
    }
}

/// librdkafka properties, in order (a later one with the same key wins).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaOptions(Vec<(String, OptionValue)>);

impl fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| match v {
                OptionValue::Literal(text) if !is_sensitive(k) => (k, format!("{text:?}")),
                other => (k, format!("{other:?}")),
            }))
            .finish()
    }
}

/// Why the options cannot be used; the collector does not start.
#[derive(Debug, thiserror::Error)]
pub enum KafkaOptionError {
    /// `--kafka-option` without `KEY=VALUE`, or a secret source that is neither `env:` nor
    /// `file:`.
    #[error("kafka option {text:?}: {why}")]
    Syntax {
        /// What was given (a secret's source, never its value).
        text: String,
        /// What is expected.
        why: &'static str,
    },
    /// The environment variable a secret is read from is not set (or not UTF-8).
    #[error("kafka option {key}: the environment variable {var} is not set")]
    MissingEnv {
        /// The property.
        key: String,
        /// The variable.
        var: String,
    },
    /// The file a secret is read from cannot be read.
    #[error("kafka option {key}: cannot read {}", path.display())]
    File {
        /// The property.
        key: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// librdkafka does not know the property, or refuses its value.
    #[error("kafka option {key}: {why}")]
    Refused {
        /// The property.
        key: String,
        /// librdkafka's words (secrets taken out).
        why: String,
    },
    /// A secret's variable or file is empty.
    #[error("kafka option {key}: its secret is empty")]
    EmptySecret {
        /// The property.
        key: String,
    },
    /// The value would break what the collector promises (an answered batch is stored).
    #[error("kafka option {key}={value}: {why}")]
    Weakens {
        /// The property.
        key: String,
        /// Its value (never a secret: these properties are not).
        value: String,
        /// What it would break.
        why: &'static str,
    },
}

impl KafkaOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key` with `value` (after the ones already there).
    pub fn push(&mut self, key: impl Into<String>, value: OptionValue) {
        self.0.push((key.into(), value));
    }

    /// The options, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OptionValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `KEY=VALUE` (the value as written).
    ///
    /// # Errors
    /// [`KafkaOptionError::Syntax`] without a `=` or with an empty key.
    pub fn parse_literal(text: &str) -> Result<(String, OptionValue), KafkaOptionError> {
        let (key, value) = split(text, text)?;
        Ok((key, OptionValue::Literal(value.to_owned())))
    }

    /// Parses `KEY=env:VARIABLE` or `KEY=file:PATH` (a secret, never written out).
    ///
    /// # Errors
    /// [`KafkaOptionError::Syntax`] for anything else; the message shows the key only.
    pub fn parse_secret(text: &str) -> Result<(String, OptionValue), KafkaOptionError> {
        // Without a `=` the whole text may be the secret itself: show none of it.
        let key_only = text.split_once('=').map_or("…", |(k, _)| k);
        let (key, source) = split(text, key_only)?;
        if let Some(var) = source.strip_prefix("env:").filter(|v| !v.is_empty()) {
            Ok((key, OptionValue::Env(var.to_owned())))
        } else if let Some(path) = source.strip_prefix("file:").filter(|p| !p.is_empty()) {
            Ok((key, OptionValue::File(PathBuf::from(path))))
        } else {
            Err(KafkaOptionError::Syntax {
                text: format!("{key}=…"),
                why: "a secret is read from `env:VARIABLE` or `file:PATH`, never written on the command line",
            })
        }
    }

    /// Reads every secret and checks every value against the collector's delivery promise.
    ///
    /// # Errors
    /// A secret's variable is not set or its file cannot be read
    /// ([`KafkaOptionError::MissingEnv`], [`KafkaOptionError::File`]); a value would weaken
    /// delivery ([`KafkaOptionError::Weakens`], see [`weakens_delivery`]).
    pub fn resolve(&self) -> Result<ResolvedKafkaOptions, KafkaOptionError> {
        let mut resolved = ResolvedKafkaOptions::default();
        for (key, value) in &self.0 {
            let text = match value {
                OptionValue::Literal(text) => {
                    if is_sensitive(key) {
                        resolved.secrets.push(text.clone());
                    }
                    text.clone()
                }
                OptionValue::Env(var) => {
                    let text = std::env::var(var).map_err(|_| KafkaOptionError::MissingEnv {
                        key: key.clone(),
                        var: var.clone(),
                    })?;
                    if text.is_empty() {
                        return Err(KafkaOptionError::EmptySecret { key: key.clone() });
                    }
                    resolved.secrets.push(text.clone());
                    text
                }
                OptionValue::File(path) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|source| KafkaOptionError::File {
                            key: key.clone(),
                            path: path.clone(),
                            source,
                        })?;
                    let text = text
                        .strip_suffix('\n')
                        .map(|t| t.strip_suffix('\r').unwrap_or(t))
                        .unwrap_or(&text)
                        .to_owned();
                    if text.is_empty() {
                        return Err(KafkaOptionError::EmptySecret { key: key.clone() });
                    }
                    resolved.secrets.push(text.clone());
                    text
                }
            };
            if let Some(why) = weakens_delivery(key, &text) {
                let shown = match value {
                    OptionValue::Literal(_) if !is_sensitive(key) => text,
                    _ => "***".to_owned(),
                };
                return Err(KafkaOptionError::Weakens {
                    key: key.clone(),
                    value: shown,
                    why,
                });
            }
            resolved.pairs.push((key.clone(), text));
        }
        // The longest first, so a secret that contains another is taken out whole.
        resolved.secrets.retain(|s| !s.is_empty());
        resolved.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok(resolved)
    }
}

fn split<'a>(text: &'a str, shown: &str) -> Result<(String, &'a str), KafkaOptionError> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value)),
        _ => Err(KafkaOptionError::Syntax {
            text: shown.to_owned(),
            why: "expected KEY=VALUE, e.g. security.protocol=SASL_SSL",
        }),
    }
}

/// The options with their secrets read: what the clients are made with.
#[derive(Clone, Default)]
pub struct ResolvedKafkaOptions {
    pairs: Vec<(String, String)>,
    /// Values never to print, longest first.
    secrets: Vec<String>,
}

impl fmt::Debug for ResolvedKafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.pairs.iter().map(|(k, v)| (k, self.redact(v))))
            .finish()
    }
}

impl FromIterator<(String, String)> for ResolvedKafkaOptions {
    /// Properties as written (values of [sensitive](is_sensitive) keys are redacted).
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let pairs: Vec<(String, String)> = pairs.into_iter().collect();
        let mut secrets: Vec<String> = pairs
            .iter()
            .filter(|(k, v)| is_sensitive(k) && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        ResolvedKafkaOptions { pairs, secrets }
    }
}

impl ResolvedKafkaOptions {
    /// The properties, in order, as librdkafka takes them.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Whether `value` is one of the secrets.
    pub fn is_secret(&self, value: &str) -> bool {
        self.secrets.iter().any(|s| s == value)
    }

    /// `text` with every secret value replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

/// Whether a property holds a secret whatever its source (its value is never printed):
/// passwords, secrets, private keys, JAAS and OAUTHBEARER settings.
pub fn is_sensitive(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "oauthbearer.config",
        "ssl.key.pem",
        "private",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// Why `key=value` would break the collector's promise that a batch answered 200 is stored,
/// and that every collector puts an event id on the same partition; `None` when it does not.
///
/// The producer's own settings are `acks=all`, `enable.idempotence=true` and the
/// [`PARTITIONER`](crate::sink::PARTITIONER) `murmur2_random`; anything may be set except a
/// weaker form of these.
pub fn weakens_delivery(key: &str, value: &str) -> Option<&'static str> {
    let value = value.trim().to_ascii_lowercase();
    // librdkafka takes a topic property with the `topic.` prefix too.
    let key = key.trim();
    let key = key.strip_prefix("topic.").unwrap_or(key);
    match key {
        "acks" | "request.required.acks" if value != "all" && value != "-1" => Some(
            "the collector answers 200 only for what every in-sync replica has: acks must stay `all`",
        ),
        "enable.idempotence" if value != "true" => Some(
            "without the idempotent producer, a retried batch can be stored twice or out of order",
        ),
        "partitioner" if value != "murmur2_random" => Some(
            "every collector must put an event id on the same partition (murmur2_random, the Java client's), or downstream dedup misses copies",
        ),
        "delivery.report.only.error" if value != "false" => Some(
            "the collector answers when every record's delivery is reported: without reports of success, no batch would ever be answered",
        ),
        "partitioner_cb" | "dr_cb" | "dr_msg_cb" => Some("callbacks cannot be set from the command line"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakening_values_are_named_and_the_rest_pass() {
        for (key, value, weakens) in [
            ("acks", "all", false),
            ("acks", "-1", false),
            ("acks", "ALL", false),
            ("acks", "1", true),
            ("request.required.acks", "0", true),
            ("enable.idempotence", "true", false),
            ("enable.idempotence", "false", true),
            ("partitioner", "murmur2_random", false),
            ("partitioner", "consistent_random", true),
            ("topic.partitioner", "consistent_random", true),
            ("topic.acks", "1", true),
            (" topic.request.required.acks ", "0", true),
            ("delivery.report.only.error", "true", true),
            ("delivery.report.only.error", "false", false),
            ("security.protocol", "SASL_SSL", false),
            ("linger.ms", "50", false),
        ] {
            assert_eq!(
                weakens_delivery(key, value).is_some(),
                weakens,
                "{key}={value}"
            );
        }
    }

    #[test]
    fn sensitive_keys() {
        for (key, sensitive) in [
            ("sasl.password", true),
            ("ssl.key.password", true),
            ("ssl.keystore.password", true),
            ("sasl.oauthbearer.client.secret", true),
            ("sasl.oauthbearer.config", true),
            ("sasl.jaas.config", true),
            ("ssl.key.pem", true),
            ("sasl.username", false),
            ("security.protocol", false),
            ("ssl.ca.location", false),
        ] {
            assert_eq!(is_sensitive(key), sensitive, "{key}");
        }
    }

    #[test]
    fn parsing_takes_key_value_and_secret_sources_only() {
        assert_eq!(
            KafkaOptions::parse_literal("a.b=c=d").unwrap(),
            ("a.b".into(), OptionValue::Literal("c=d".into()))
        );
        assert_eq!(
            KafkaOptions::parse_literal("a.b=").unwrap(),
            ("a.b".into(), OptionValue::Literal(String::new()))
        );
        for bad in ["novalue", "=x", " =x"] {
            assert!(KafkaOptions::parse_literal(bad).is_err(), "{bad}");
        }
        assert_eq!(
            KafkaOptions::parse_secret("sasl.password=env:PW").unwrap(),
            ("sasl.password".into(), OptionValue::Env("PW".into()))
        );
        assert_eq!(
            KafkaOptions::parse_secret("sasl.password=file:/run/s").unwrap(),
            ("sasl.password".into(), OptionValue::File("/run/s".into()))
        );
        // A literal secret is refused, and the message does not repeat it.
        let e = KafkaOptions::parse_secret("sasl.password=hunter2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sasl.password") && !e.contains("hunter2"), "{e}");
        // Nor a secret given without its key.
        let e = KafkaOptions::parse_secret("hunter2")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(KafkaOptions::parse_secret("sasl.password=env:").is_err());
    }

    #[test]
    fn secrets_are_read_at_resolve_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let var = format!("EVENTWIRE_TEST_SECRET_{}", std::process::id());
        std::env::set_var(&var, "from-the-env");
        let mut options = KafkaOptions::new();
        options.push("sasl.username", OptionValue::Literal("collector".into()));
        options.push("sasl.password", OptionValue::Env(var.clone()));
        options.push("ssl.key.password", OptionValue::File(file.clone()));
        options.push(
            "sasl.jaas.config",
            OptionValue::Literal("inline-secret".into()),
        );
        let resolved = options.resolve().unwrap();
        assert_eq!(
            resolved.pairs(),
            [
                ("sasl.username".into(), "collector".into()),
                ("sasl.password".into(), "from-the-env".into()),
                ("ssl.key.password".into(), "from-a-file".into()),
                ("sasl.jaas.config".into(), "inline-secret".into()),
            ]
        );
        for shown in [format!("{options:?}"), format!("{resolved:?}")] {
            for secret in ["from-the-env", "from-a-file", "inline-secret"] {
                assert!(!shown.contains(secret), "{shown}");
            }
            assert!(shown.contains("collector"), "{shown}");
        }
        assert_eq!(
            resolved.redact("Invalid value \"from-the-env\" for sasl.password"),
            "Invalid value \"***\" for sasl.password"
        );
        std::env::remove_var(&var);
        let e = options.resolve().unwrap_err().to_string();
        assert_eq!(
            e,
            format!("kafka option sasl.password: the environment variable {var} is not set")
        );
        let mut missing = KafkaOptions::new();
        missing.push("sasl.password", OptionValue::File(dir.path().join("none")));
        assert!(matches!(
            missing.resolve(),
            Err(KafkaOptionError::File { .. })
        ));
        let mut weak = KafkaOptions::new();
        weak.push("acks", OptionValue::Literal("1".into()));
        assert!(weak
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("kafka option acks=1: "));
        // A weakening value read as a secret is not shown.
        std::env::set_var(&var, "1");
        let mut weak = KafkaOptions::new();
        weak.push("acks", OptionValue::Env(var.clone()));
        assert!(weak
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("kafka option acks=***: "));
        std::env::remove_var(&var);
    }
}
