//! Kafka: one record per message, keyed by the outbox key so a key's
//! messages share a partition and keep their order; delivery reports awaited.

use super::cloudevents::{
    Binding, CloudEvents, ContentMode, DATA_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE,
};
use super::{Delivery, Publisher};
use crate::{Error, Message};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::time::Duration;

/// The headers this publisher sets on every record; a message header of
/// the same name (any case) is not sent.
const RESERVED: [&str; 3] = ["outbox-id", "outbox-topic", "outbox-attempt"];

/// Settings of [`KafkaPublisher`]. Each field's doc ends with its default.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`. Default: `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// Prepended to the topic to make the Kafka topic. Default: empty.
    pub topic_prefix: String,
    /// How long one record may take to be acknowledged (`message.timeout.ms`),
    /// and the metadata check at start. Default: 30 s.
    pub timeout: Duration,
    /// Extra librdkafka settings (`security.protocol`, `sasl.*`, ...).
    /// Default: none.
    pub extra: Vec<(String, String)>,
    /// The envelope: the outbox's own (documented on the publisher) or a
    /// CloudEvents event ([`super::cloudevents`]). Default: the outbox's.
    pub envelope: super::Envelope,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            timeout: Duration::from_secs(30),
            extra: Vec::new(),
            envelope: super::Envelope::Outbox,
        }
    }
}

/// An idempotent producer (`enable.idempotence=true`, `acks=all`): within
/// one producer session the broker drops retried duplicates and keeps order
/// per partition. The record key is the outbox key, the value the payload,
/// and the headers `outbox-id`, `outbox-topic`, `outbox-attempt` and the
/// message's own (except ones named like those three, any case: the outbox's
/// win). A message counts as delivered when its delivery report
/// says so.
///
/// With a CloudEvents envelope (the Kafka binding) the record is the event:
/// in binary mode (the default) the value is the payload, the attributes are
/// `ce_*` headers (UTF-8) and `content-type` is `application/json`; in
/// structured mode the value is the JSON event format and `content-type` is
/// `application/cloudevents+json; charset=UTF-8`. The key and the `outbox-*`
/// headers stay; the message's own headers too, except a `content-type` or
/// `ce_*` one (the envelope's names).
///
/// Records the broker can never take (too large, invalid) are permanent;
/// every other error is retryable.
pub struct KafkaPublisher {
    producer: FutureProducer,
    prefix: String,
    timeout: Duration,
    events: Option<(CloudEvents, ContentMode)>,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    /// Create the producer and check that the cluster answers.
    pub async fn connect(config: KafkaConfig) -> Result<Self, Error> {
        let events = config.envelope.for_binding(Binding::Kafka)?;
        let broker = |message: String| Error::Broker {
            broker: "Kafka",
            message,
        };
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", config.timeout.as_millis().to_string());
        for (k, v) in &config.extra {
            client.set(k, v);
        }
        let producer: FutureProducer = client.create().map_err(|e| Error::Config {
            field: "kafka",
            reason: e.to_string(),
        })?;
        let probe = producer.clone();
        let timeout = config.timeout;
        tokio::task::spawn_blocking(move || {
            probe
                .client()
                .fetch_metadata(None, Timeout::After(timeout))
                .map(|_| ())
        })
        .await
        .map_err(|e| broker(e.to_string()))?
        .map_err(|e| broker(format!("{}: {e}", config.bootstrap_servers)))?;
        Ok(KafkaPublisher {
            producer,
            prefix: config.topic_prefix,
            timeout: config.timeout,
            events,
        })
    }

    async fn send(&self, m: &Message) -> Delivery {
        let topic = format!("{}{}", self.prefix, m.topic);
        let structured = match &self.events {
            Some((events, ContentMode::Structured)) => Some(events.structured(m)),
            _ => None,
        };
        let value = structured
            .as_deref()
            .unwrap_or_else(|| m.payload.get().as_bytes());
        let id = m.id.to_string();
        let attempt = m.attempt.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "outbox-id",
                value: Some(&id),
            })
            .insert(Header {
                key: "outbox-topic",
                value: Some(&m.topic),
            })
            .insert(Header {
                key: "outbox-attempt",
                value: Some(&attempt),
            });
        if let Some(serde_json::Value::Object(own)) = &m.headers {
            for (name, value) in own {
                // Ours, always (Kafka headers are a list: a second
                // outbox-id would sit beside ours for consumers to pick);
                // in CloudEvents mode also the envelope's names.
                let reserved = RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r))
                    || (self.events.is_some()
                        && (name.eq_ignore_ascii_case("content-type")
                            || name.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("ce_"))));
                if let (Some(value), false) = (value.as_str(), reserved) {
                    headers = headers.insert(Header {
                        key: name,
                        value: Some(value),
                    });
                }
            }
        }
        if let Some((events, mode)) = &self.events {
            let (content_type, attributes) = match mode {
                ContentMode::Structured => (STRUCTURED_CONTENT_TYPE, Vec::new()),
                ContentMode::Binary => {
                    (DATA_CONTENT_TYPE, events.binary_headers(m, Binding::Kafka))
                }
            };
            headers = headers.insert(Header {
                key: "content-type",
                value: Some(content_type),
            });
            for (name, value) in &attributes {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value),
                });
            }
        }
        let mut record = FutureRecord::to(&topic).payload(value).headers(headers);
        if let Some(key) = &m.key {
            record = record.key(key);
        }
        match self
            .producer
            .send(record, Timeout::After(self.timeout))
            .await
        {
            Ok(_) => Delivery::Acked,
            Err((e, _)) => classify(e),
        }
    }
}

fn classify(e: KafkaError) -> Delivery {
    let error = format!("Kafka: {e}");
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::InvalidTopic,
        ) => Delivery::Permanent { error },
        _ => Delivery::Retryable {
            error,
            retry_after: None,
        },
    }
}

impl Publisher for KafkaPublisher {
    fn system(&self) -> &'static str {
        "kafka"
    }

    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        // All records go out at once (the producer batches and pipelines);
        // the reports come back in order of the batch.
        let sends: Vec<_> = batch.iter().map(|m| self.send(m)).collect();
        futures_util::future::join_all(sends).await
    }
}
