//! NATS JetStream: publish each message to a subject derived from its topic
//! and wait for the stream's acknowledgement.

use super::{Delivery, Publisher};
use crate::{Error, Message};
use async_nats::jetstream;
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use std::str::FromStr;
use std::time::Duration;

/// Settings of [`NatsPublisher`]. Each field's doc ends with its default.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated. Default: `nats://127.0.0.1:4222`.
    pub url: String,
    /// Prepended to the topic to make the subject (`prefix` + `topic`); a
    /// topic is already a valid subject (`orders.created`). Default: empty.
    pub subject_prefix: String,
    /// How long to wait for a JetStream acknowledgement. Default: 5 s.
    pub timeout: Duration,
    /// The envelope: the outbox's own (documented on the publisher) or a
    /// CloudEvents event ([`super::cloudevents`]). Default: the outbox's.
    pub envelope: super::Envelope,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            subject_prefix: String::new(),
            timeout: Duration::from_secs(5),
            envelope: super::Envelope::Outbox,
        }
    }
}

/// Publishes the payload (the JSON body, nothing around it) to
/// `prefix + topic` with headers `Nats-Msg-Id` (the outbox id: JetStream
/// drops a re-delivery within the stream's duplicate window),
/// `Outbox-Id`, `Outbox-Topic`, `Outbox-Key`, `Outbox-Attempt`, and the
/// message's own headers. A message counts as delivered once the stream
/// acknowledged it — which is only as durable as the server's `sync_interval`
/// (see README).
///
/// Every broker failure is retryable: a missing stream ("no responders"), a
/// timeout or a lost connection can all be fixed without changing the
/// message. A message NATS cannot carry at all is permanent, dead-lettered as
/// `undeliverable: ...`: a key or header value with a line break, a header
/// name that is not printable ASCII without `:` (the outbox accepts any
/// string; NATS headers do not).
#[derive(Debug, Clone)]
pub struct NatsPublisher {
    jetstream: jetstream::Context,
    prefix: String,
}

impl NatsPublisher {
    /// Connect to the server; fails with [`Error::Broker`] if it is not there.
    pub async fn connect(config: NatsConfig) -> Result<Self, Error> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(config.timeout)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(config.url.as_str());
        // retry_on_initial_connect makes connect() return at once; check that
        // the server answers before the relay starts claiming.
        let client = client.await.map_err(|e| Error::Broker {
            broker: "NATS",
            message: format!("{}: {e}", config.url),
        })?;
        tokio::time::timeout(config.timeout, client.flush())
            .await
            .map_err(|_| Error::Broker {
                broker: "NATS",
                message: format!("{}: no answer within {:?}", config.url, config.timeout),
            })?
            .map_err(|e| Error::Broker {
                broker: "NATS",
                message: format!("{}: {e}", config.url),
            })?;
        let mut jetstream = jetstream::new(client);
        jetstream.set_timeout(config.timeout);
        Ok(NatsPublisher {
            jetstream,
            prefix: config.subject_prefix,
        })
    }

    /// The message's NATS headers, or why it cannot have them. Checked
    /// here: async-nats panics on names and values it does not allow, and
    /// keys and header values are the producer's strings.
    fn headers(message: &Message) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        let mut insert = |name: &str, value: &str, what: &str| -> Result<(), String> {
            let name = HeaderName::from_str(name).map_err(|_| {
                format!("{what}: a header name must be printable ASCII without ':'")
            })?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("{what}: a header value must not contain a line break"))?;
            headers.insert(name, value);
            Ok(())
        };
        let id = message.id.to_string();
        insert("Nats-Msg-Id", &id, "id")?;
        insert("Outbox-Id", &id, "id")?;
        insert("Outbox-Topic", &message.topic, "topic")?;
        insert("Outbox-Attempt", &message.attempt.to_string(), "attempt")?;
        if let Some(key) = &message.key {
            insert("Outbox-Key", key, "key")?;
        }
        if let Some(serde_json::Value::Object(own)) = &message.headers {
            for (name, value) in own {
                if let Some(value) = value.as_str() {
                    insert(name, value, "headers")?;
                }
            }
        }
        Ok(headers)
    }

    /// The subject, headers and body of a message, or why it has none.
    fn encode(&self, message: &Message) -> Result<(String, HeaderMap, Vec<u8>), String> {
        let body = message.payload.get().as_bytes().to_vec();
        Ok((
            format!("{}{}", self.prefix, message.topic),
            Self::headers(message)?,
            body,
        ))
    }
}

impl Publisher for NatsPublisher {
    fn system(&self) -> &'static str {
        "nats"
    }

    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        // Send everything first (pipelined), then collect the acks in order.
        let mut pending = Vec::with_capacity(batch.len());
        for message in batch {
            pending.push(match self.encode(message) {
                Ok((subject, headers, body)) => Ok(self
                    .jetstream
                    .publish_with_headers(subject, headers, body.into())
                    .await),
                Err(why) => Err(Delivery::Permanent {
                    error: format!("undeliverable: NATS: {why}"),
                }),
            });
        }
        let mut deliveries = Vec::with_capacity(batch.len());
        for sent in pending {
            let result = match sent {
                Ok(Ok(ack)) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(undeliverable) => {
                    deliveries.push(undeliverable);
                    continue;
                }
            };
            deliveries.push(match result {
                Ok(()) => Delivery::Acked,
                Err(e) => Delivery::Retryable {
                    error: format!("NATS JetStream: {e}"),
                    retry_after: None,
                },
            });
        }
        deliveries
    }
}
