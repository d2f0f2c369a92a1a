//! `--kafka-option` and `--kafka-secret`, shared by `collect` and `process`.

use eventwire_collector::sink::{KafkaOptionError, KafkaOptions, OptionValue};

/// librdkafka properties for every Kafka client of the command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KafkaArgs {
    /// A librdkafka property for every Kafka client, `KEY=VALUE` (repeat), e.g.
    /// `security.protocol=SASL_SSL`, `sasl.mechanism=SCRAM-SHA-512`,
    /// `ssl.ca.location=/etc/ssl/kafka-ca.pem` (docs/operations.md).
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = literal)]
    pub options: Vec<(String, OptionValue)>,
    /// A secret librdkafka property, read at start from an environment variable or a
    /// file and never printed: `KEY=env:VARIABLE` or `KEY=file:PATH` (repeat), e.g.
    /// `sasl.password=env:KAFKA_PASSWORD`.
    // Parsed after clap, whose errors would repeat a secret written here by mistake.
    #[arg(long = "kafka-secret", value_name = "KEY=env:VAR|KEY=file:PATH")]
    pub secrets: Vec<String>,
}

impl KafkaArgs {
    /// `base` (a config file's `[kafka]` table), then the options, then the secrets: a
    /// later one with the same key wins.
    ///
    /// # Errors
    /// A `--kafka-secret` that is not `KEY=env:VAR` or `KEY=file:PATH` (the message shows
    /// its key only).
    pub fn over(self, mut base: KafkaOptions) -> Result<KafkaOptions, KafkaOptionError> {
        for (key, value) in self.options {
            base.push(key, value);
        }
        for text in &self.secrets {
            let (key, value) = KafkaOptions::parse_secret(text)?;
            base.push(key, value);
        }
        Ok(base)
    }
}

fn literal(text: &str) -> Result<(String, OptionValue), String> {
    KafkaOptions::parse_literal(text).map_err(|e| e.to_string())
}
