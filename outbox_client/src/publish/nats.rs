//! NATS JetStream: publish each message to a subject derived from its topic
//! and wait for the stream's acknowledgement.

use super::{Delivery, Publisher};
use crate::{Error, Message};
use async_nats::jetstream;
use async_nats::HeaderMap;
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
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            subject_prefix: String::new(),
            timeout: Duration::from_secs(5),
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
/// Every failure is retryable: a missing stream ("no responders"), a timeout
/// or a lost connection can all be fixed without changing the message.
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

    fn headers(message: &Message) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let id = message.id.to_string();
        headers.insert("Nats-Msg-Id", id.as_str());
        headers.insert("Outbox-Id", id.as_str());
        headers.insert("Outbox-Topic", message.topic.as_str());
        headers.insert("Outbox-Attempt", message.attempt.to_string().as_str());
        if let Some(key) = &message.key {
            headers.insert("Outbox-Key", key.as_str());
        }
        if let Some(serde_json::Value::Object(own)) = &message.headers {
            for (name, value) in own {
                if let Some(value) = value.as_str() {
                    headers.insert(name.as_str(), value);
                }
            }
        }
        headers
    }
}

impl Publisher for NatsPublisher {
    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        // Send everything first (pipelined), then collect the acks in order.
        let mut pending = Vec::with_capacity(batch.len());
        for message in batch {
            let subject = format!("{}{}", self.prefix, message.topic);
            let body = serde_json::to_vec(&message.payload).expect("a JSON value serializes");
            pending.push(
                self.jetstream
                    .publish_with_headers(subject, Self::headers(message), body.into())
                    .await,
            );
        }
        let mut deliveries = Vec::with_capacity(batch.len());
        for sent in pending {
            let result = match sent {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
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
