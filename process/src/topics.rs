//! The topics a worker needs: the input must exist; the output, dead-letter and state
//! topics are created when missing (the output with the input's partition count, which it
//! must have at least, since records keep their partition).

use std::time::Duration;

use eventwire_collector::sink::SinkSpec;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::{ProcessConfig, ProcessError};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Partitions of `topic`, 0 when it does not exist. Asks for every topic's metadata: a
/// request naming a missing topic makes brokers with automatic topic creation create it,
/// with their default partition count.
fn partitions(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<usize, ProcessError> {
    let metadata = admin
        .inner()
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| ProcessError::Kafka(format!("metadata of {topic}: {e}")))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len()))
}

async fn create(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    count: usize,
    compact: bool,
) -> Result<(), ProcessError> {
    let retention = crate::defaults::STATE_RETENTION.as_millis().to_string();
    let segment = crate::defaults::STATE_SEGMENT.as_millis().to_string();
    let mut new = NewTopic::new(topic, count as i32, TopicReplication::Fixed(-1));
    if compact {
        // Compacted (the latest of each key) and bounded in time: a sketch's key names its
        // minute, so compaction alone would keep every minute forever.
        new = new
            .set("cleanup.policy", "compact,delete")
            .set("retention.ms", &retention)
            .set("segment.ms", &segment);
    }
    let results = admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT)),
        )
        .await
        .map_err(|e| ProcessError::Kafka(format!("creating {topic}: {e}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(ProcessError::Kafka(format!("creating {topic}: {code}"))),
        }
    }
    tracing::info!(topic, partitions = count, "topic created");
    Ok(())
}

/// Checks the input and makes the other topics; returns the input's partition count.
pub(crate) async fn prepare(config: &ProcessConfig) -> Result<usize, ProcessError> {
    let admin: AdminClient<DefaultClientContext> = config
        .client()
        .create()
        .map_err(|e| ProcessError::Kafka(e.to_string()))?;
    let input = partitions(&admin, &config.input)?;
    if input == 0 {
        return Err(ProcessError::Config(format!(
            "the input topic {:?} does not exist on {}: create it (its partitions are the unit of scale) or point `collect --good kafka://…/TOPIC` at it",
            config.input, config.brokers
        )));
    }
    if let SinkSpec::Kafka { topic, .. } = SinkSpec::parse(&config.output_spec()) {
        match partitions(&admin, &topic)? {
            0 => create(&admin, &topic, input, false).await?,
            n if n < input => {
                return Err(ProcessError::Config(format!(
                    "the output topic {topic:?} has {n} partitions, fewer than the input's {input}: each input partition writes to its own output partition"
                )))
            }
            _ => {}
        }
    }
    if let SinkSpec::Kafka { topic, .. } = SinkSpec::parse(&config.dead_letter_spec()) {
        if partitions(&admin, &topic)? == 0 {
            create(&admin, &topic, input, false).await?;
        }
    }
    let state = config.state_topic_name();
    if partitions(&admin, &state)? == 0 {
        create(&admin, &state, 1, true).await?;
    }
    Ok(input)
}
