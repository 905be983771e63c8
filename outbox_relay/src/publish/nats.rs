//! NATS JetStream: publish each message to a subject derived from its topic
//! and wait for the stream's acknowledgement.

use super::cloudevents::{
    Binding, CloudEvents, ContentMode, DATA_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE,
};
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

/// The headers the relay sets on every message; a message's own header of
/// one of these names is not sent.
const RESERVED: [&str; 5] = [
    "Nats-Msg-Id",
    "Outbox-Id",
    "Outbox-Topic",
    "Outbox-Attempt",
    "Outbox-Key",
];

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
/// message's own headers (but for ones named like those, in any case: the
/// relay's win). A message counts as delivered once the stream
/// acknowledged it — which is only as durable as the server's `sync_interval`
/// (see README).
///
/// With a CloudEvents envelope (the NATS binding) the message is the event:
/// in binary mode (the default) the body is the payload, the attributes are
/// `ce-*` headers (percent-encoded, as HTTP) and `Content-Type` is
/// `application/json`; in structured mode the body is the JSON event format
/// and `Content-Type` is `application/cloudevents+json; charset=UTF-8`. The
/// `Nats-Msg-Id` (so deduplication still works) and `Outbox-*` headers stay;
/// the message's own headers too, except a `Content-Type` or `ce-*` one (the
/// envelope's names, compared case-insensitively).
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
    events: Option<(CloudEvents, ContentMode)>,
}

impl NatsPublisher {
    /// Connect to the server; fails with [`Error::Broker`] if it is not there.
    /// A CloudEvents envelope NATS cannot carry is [`Error::Config`].
    pub async fn connect(config: NatsConfig) -> Result<Self, Error> {
        let events = config.envelope.for_binding(Binding::Nats)?;
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
            events,
        })
    }

    /// The message's NATS headers, or why it cannot have them. Checked
    /// here: async-nats panics on names and values it does not allow, and
    /// keys and header values are the producer's strings.
    fn headers(
        message: &Message,
        events: &Option<(CloudEvents, ContentMode)>,
    ) -> Result<HeaderMap, String> {
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
                // The relay's names are its own: a producer's Nats-Msg-Id
                // would replace the id JetStream deduplicates on (and
                // async-nats compares names by case). In CloudEvents mode
                // the envelope owns Content-Type and ce-* as well.
                let reserved = RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r))
                    || (events.is_some()
                        && (name.eq_ignore_ascii_case("Content-Type")
                            || name.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("ce-"))));
                if let (Some(value), false) = (value.as_str(), reserved) {
                    insert(name, value, "headers")?;
                }
            }
        }
        match events {
            None => {}
            Some((_, ContentMode::Structured)) => {
                insert("Content-Type", STRUCTURED_CONTENT_TYPE, "content type")?;
            }
            // Percent-encoded: always valid header values.
            Some((events, ContentMode::Binary)) => {
                insert("Content-Type", DATA_CONTENT_TYPE, "content type")?;
                for (name, value) in events.binary_headers(message, Binding::Nats) {
                    insert(&name, &value, "cloudevents")?;
                }
            }
        }
        Ok(headers)
    }

    /// The subject, headers and body of a message, or why it has none.
    fn encode(&self, message: &Message) -> Result<(String, HeaderMap, Vec<u8>), String> {
        let body = match &self.events {
            Some((events, ContentMode::Structured)) => events.structured(message),
            _ => message.payload.get().as_bytes().to_vec(),
        };
        Ok((
            format!("{}{}", self.prefix, message.topic),
            Self::headers(message, &self.events)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LeaseToken;
    use serde_json::json;

    fn message(key: &str, headers: serde_json::Value) -> Message {
        Message {
            id: 42,
            topic: "orders.created".into(),
            key: Some(key.into()),
            payload: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            headers: Some(headers),
            attempt: 1,
            lease_token: LeaseToken(uuid::Uuid::nil()),
            lease_expires_at: chrono::Utc::now(),
            created_at: chrono::Utc::now(),
        }
    }

    fn binary() -> Option<(CloudEvents, ContentMode)> {
        Some((CloudEvents::new("/orders").unwrap(), ContentMode::Binary))
    }

    #[test]
    fn binary_headers_are_valid_nats_headers_next_to_the_outbox_ones() {
        let own = json!({"CE-id": "forged", "content-type": "text/plain", "x": "y"});
        let headers = NatsPublisher::headers(&message("ordér 42", own), &binary()).unwrap();
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(get("Nats-Msg-Id").as_deref(), Some("42"));
        assert_eq!(get("Outbox-Key").as_deref(), Some("ordér 42"));
        assert_eq!(get("ce-subject").as_deref(), Some("ord%C3%A9r%2042"));
        assert_eq!(get("ce-id").as_deref(), Some("42"));
        assert_eq!(get("Content-Type").as_deref(), Some("application/json"));
        assert_eq!(get("x").as_deref(), Some("y"));
        assert_eq!(get("CE-id"), None, "the envelope owns ce-*");
        assert_eq!(get("content-type"), None, "and the content type");
    }

    #[test]
    fn a_producer_header_cannot_replace_the_id_jetstream_deduplicates_on() {
        let own = json!({"nats-msg-id": "7", "Nats-Msg-Id": "7", "OUTBOX-ID": "7", "x": "y"});
        let headers = NatsPublisher::headers(&message("k", own), &None).unwrap();
        let all = |name: &str| -> Vec<String> {
            headers
                .iter()
                .filter(|(n, _)| n.to_string().eq_ignore_ascii_case(name))
                .flat_map(|(_, vs)| vs.iter().map(|v| v.as_str().to_owned()))
                .collect()
        };
        assert_eq!(all("Nats-Msg-Id"), ["42"]);
        assert_eq!(all("Outbox-Id"), ["42"]);
        assert_eq!(all("x"), ["y"]);
    }

    #[test]
    fn a_key_with_a_line_break_stays_undeliverable_in_cloudevents_mode() {
        let m = message("a\nb", json!({}));
        let why = NatsPublisher::headers(&m, &binary()).unwrap_err();
        assert!(why.contains("line break"), "{why}");
    }
}
