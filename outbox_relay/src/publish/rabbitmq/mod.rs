//! RabbitMQ (AMQP 0-9-1): publish each message to `exchange` with the
//! routing key `prefix + topic`, `mandatory`, on a channel in confirm mode,
//! and wait for the broker's `basic.ack`.
//!
//! With the default exchange (`""`) the routing key is the name of the queue
//! that gets the message. Each message carries the AMQP properties
//! `message_id` (the outbox id), `delivery_mode` 2 (persistent),
//! `content_type` `application/json`, `timestamp` (its `created_at`, in
//! seconds) and the headers listed in [`properties`]; the body is the bytes
//! `jsonb` printed, unparsed.
//!
//! A batch goes out on one channel, in order, and the answers are read in
//! that order; the relay never has two messages of one key in flight, so a
//! key's messages reach a queue in the outbox's per-key order.
//!
//! Delivery is at least once: a relay that dies after the broker stored a
//! message and before it completes it publishes it again on the retry (with
//! `outbox-attempt` one higher), and so does a batch cut off by a lost
//! connection or the timeout before every confirm came back. AMQP 0-9-1 has
//! no deduplication, so consumers deduplicate on `message_id`: an insert
//! into a unique index of their own table, or `SET outbox:<id> 1 NX` in a
//! cache, before acting.
//!
//! A confirm is only as durable as the queue: RabbitMQ confirms a persistent
//! message once every queue it was routed to has written it to disk (a
//! quorum queue: a majority of its replicas), but a message routed to a
//! transient (non-durable) queue is gone after a broker restart (see README).
//!
//! With a CloudEvents envelope the message is the event (the AMQP binding,
//! its `cloudEvents:` application properties being RabbitMQ's headers):
//! binary mode (the default) adds the attributes as `cloudEvents:*`
//! headers to the payload body; structured mode sends the JSON event as the
//! body with `content_type` `application/cloudevents+json; charset=UTF-8`.
//! `message_id`, the `outbox-*` headers and the routing stay as they are.

mod properties;
mod session;

use super::cloudevents::{Binding, CloudEvents, ContentMode};
use super::{Delivery, Publisher};
use crate::{Error, Message};
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::Confirmation;
use properties::properties;
use session::Session;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::{timeout_at, Instant};

/// Settings of [`RabbitMqPublisher`]. Each field's doc ends with its default.
#[derive(Clone)]
pub struct RabbitMqConfig {
    /// Broker URL: `amqp://user:password@host:port/vhost` (the vhost
    /// URL-encoded: `%2f` is `/`), `amqps://` for TLS (rustls, verified
    /// against the system roots). Query parameters such as `?heartbeat=10`
    /// are passed on. Default: `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// The exchange every message is published to; it must exist (checked
    /// when connecting). Default: `""`, the default exchange, which routes
    /// to the queue named by the routing key.
    pub exchange: String,
    /// Prepended to the topic to make the routing key. Default: empty.
    pub routing_key_prefix: String,
    /// How long connecting, and one batch's publishes and confirms, may
    /// take. Default: 10 s.
    pub timeout: Duration,
    /// The envelope: the outbox's own (documented on the publisher) or a
    /// CloudEvents event ([`crate::publish::cloudevents`]). Default: the outbox's.
    pub envelope: crate::publish::Envelope,
}

impl Default for RabbitMqConfig {
    fn default() -> Self {
        RabbitMqConfig {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            exchange: String::new(),
            routing_key_prefix: String::new(),
            timeout: Duration::from_secs(10),
            envelope: crate::publish::Envelope::Outbox,
        }
    }
}

// By hand: the URL holds a password.
impl std::fmt::Debug for RabbitMqConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqConfig")
            .field("url", &redacted(&self.url))
            .field("exchange", &self.exchange)
            .field("routing_key_prefix", &self.routing_key_prefix)
            .field("timeout", &self.timeout)
            .field("envelope", &self.envelope)
            .finish()
    }
}

/// Publishes with `basic.publish` (mandatory, persistent) on a confirm-mode
/// channel; a message counts as delivered once the broker acked it and did
/// not return it. The module docs describe the properties and how consumers
/// deduplicate.
///
/// What is retried and what is dead-lettered:
///
/// - Retryable: a lost or refused connection, no confirm within the
///   timeout, a `basic.nack` (the broker could not take it *now*: e.g. a
///   queue at `x-max-length` with `x-overflow: reject-publish`), a closed
///   channel (e.g. the exchange was deleted) — and an **unroutable**
///   message. RabbitMQ returns a mandatory message that no queue is bound
///   for (`basic.return`, `312 NO_ROUTE`) and then *acks* it, having dropped
///   it; this publisher reports that as retryable, not acked and not
///   permanent: the message is fine, the topology is missing, and a
///   missing queue is often a deploy-order race (the relay runs before the
///   consumer that declares its queue) or a consumer restarting with an
///   exclusive or auto-delete queue. Retrying heals those by itself and
///   keeps the key's later messages behind it; the outbox's attempt limit
///   (`max_attempts`) dead-letters a message whose route never appears, with
///   reason `max_attempts` and `NO_ROUTE` as its last error, to be
///   requeued once the binding exists. It is the same answer as the NATS
///   publisher's for a subject no stream listens on.
/// - Permanent (dead-lettered as `undeliverable: ...`, never sent): what
///   AMQP cannot carry, whatever the broker: a routing key (prefix + topic)
///   or a header name longer than 255 bytes.
pub struct RabbitMqPublisher {
    url: String,
    exchange: String,
    prefix: String,
    timeout: Duration,
    /// The CloudEvents envelope and its mode, if configured.
    events: Option<(CloudEvents, ContentMode)>,
    /// The connection and its confirm channel; `None` after a failure, so
    /// the next batch reconnects. Held while a batch is *sent* (not while
    /// its confirms are awaited): lapin numbers a publish when the future
    /// is first polled and queues its frames right after, so two tasks
    /// publishing on one channel at once could swap the broker's delivery
    /// tags and match an ack to the wrong message.
    session: Mutex<Option<Session>>,
}

impl std::fmt::Debug for RabbitMqPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqPublisher")
            .field("url", &redacted(&self.url))
            .field("exchange", &self.exchange)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RabbitMqPublisher {
    /// Connect, open a confirm channel and check that the exchange exists;
    /// fails with [`Error::Broker`] naming the cause (connection refused,
    /// `ACCESS_REFUSED` for bad credentials, `NOT_FOUND` for an unknown
    /// vhost or exchange, no answer within the timeout), the URL's password
    /// masked. After that a lost connection is re-opened by the next batch.
    pub async fn connect(config: RabbitMqConfig) -> Result<Self, Error> {
        if config.url.starts_with("amqps") {
            // rustls-connector builds its TLS config with the process-wide
            // provider; make it the ring one the rest of the relay uses, so
            // a second provider compiled in cannot leave it undecided. An
            // error only says one is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        if ShortString::try_new(config.exchange.as_str()).is_err() {
            return Err(Error::Config {
                field: "rabbitmq exchange",
                reason: format!("{:?} is longer than 255 bytes", config.exchange),
            });
        }
        let events = config.envelope.for_binding(Binding::Amqp)?;
        let publisher = RabbitMqPublisher {
            url: config.url,
            exchange: config.exchange,
            prefix: config.routing_key_prefix,
            timeout: config.timeout,
            events,
            session: Mutex::new(None),
        };
        let deadline = Instant::now() + publisher.timeout;
        let session = Session::open(&publisher, deadline)
            .await
            .map_err(|message| Error::Broker {
                broker: "rabbitmq",
                message,
            })?;
        *publisher.session.lock().await = Some(session);
        Ok(publisher)
    }

    /// The routing key of a message, if AMQP can carry it.
    fn routing_key(&self, message: &Message) -> Result<ShortString, String> {
        let key = format!("{}{}", self.prefix, message.topic);
        ShortString::try_new(key.as_str()).map_err(|_| {
            format!(
                "undeliverable: the routing key {key:?} is {} bytes, AMQP allows 255",
                key.len()
            )
        })
    }

    /// Send every message of `batch` that AMQP can carry, in order, on the
    /// session's channel (reconnecting first if it is gone); what could not
    /// be sent is answered already.
    async fn send(&self, batch: &[Message], deadline: Instant) -> Vec<Sent> {
        let mut session = self.session.lock().await;
        if !session.as_ref().is_some_and(Session::usable) {
            if let Some(old) = session.take() {
                old.close();
            }
            match Session::open(self, deadline).await {
                Ok(new) => *session = Some(new),
                Err(e) => return retry_all(batch.len(), &format!("RabbitMQ: {e}")),
            }
        }
        let Some(Session { channel, .. }) = session.as_ref() else {
            return retry_all(batch.len(), "RabbitMQ: not connected");
        };
        let exchange: ShortString = self.exchange.as_str().into();
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let mut sent = Vec::with_capacity(batch.len());
        for message in batch {
            let prepared = self.routing_key(message).and_then(|routing_key| {
                properties(message, self.events.as_ref())
                    .map(|properties| (routing_key, properties))
            });
            let (routing_key, properties) = match prepared {
                Ok(prepared) => prepared,
                Err(error) => {
                    sent.push(Sent::Answered(Delivery::Permanent { error }));
                    continue;
                }
            };
            let structured = match &self.events {
                Some((events, ContentMode::Structured)) => Some(events.structured(message)),
                _ => None,
            };
            let body = structured
                .as_deref()
                .unwrap_or_else(|| message.payload.get().as_bytes());
            let publish = channel.basic_publish(
                exchange.clone(),
                routing_key.clone(),
                mandatory,
                body,
                properties,
            );
            sent.push(match timeout_at(deadline, publish).await {
                Ok(Ok(confirm)) => Sent::Pending(routing_key, confirm),
                Ok(Err(e)) => Sent::Answered(retryable(format!("RabbitMQ: {}", describe(&e)))),
                Err(_) => Sent::Answered(retryable(self.no_answer())),
            });
        }
        sent
    }

    fn no_answer(&self) -> String {
        format!("RabbitMQ: no confirm within {:?}", self.timeout)
    }

    /// The broker's answer to one sent message.
    fn answer(&self, routing_key: &str, confirmation: Confirmation) -> Delivery {
        let target = format!("exchange {:?} routing key {routing_key:?}", self.exchange);
        match confirmation {
            Confirmation::Ack(None) => Delivery::Acked,
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                retryable(format!(
                    "RabbitMQ: unroutable: {target}: {} {} (no queue is bound for it)",
                    returned.reply_code, returned.reply_text
                ))
            }
            Confirmation::Nack(None) => retryable(format!(
                "RabbitMQ: nack: {target}: the broker did not take it (e.g. a full queue)"
            )),
            // The channel is in confirm mode; not worth a panic.
            Confirmation::NotRequested => {
                retryable("RabbitMQ: no confirm (channel not in confirm mode)".into())
            }
        }
    }
}

/// A message of a batch: sent and awaiting its confirm, or answered.
enum Sent {
    Pending(ShortString, lapin::PublisherConfirm),
    Answered(Delivery),
}

impl Publisher for RabbitMqPublisher {
    fn system(&self) -> &'static str {
        "rabbitmq"
    }

    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        if batch.is_empty() {
            return Vec::new();
        }
        let deadline = Instant::now() + self.timeout;
        let sent = self.send(batch, deadline).await;
        let mut answers = Vec::with_capacity(sent.len());
        let mut broken = false;
        // Confirms arrive in publish order, so awaiting them in order waits
        // no longer than the last one; each that came before the deadline
        // counts even if a later one does not.
        for slot in sent {
            answers.push(match slot {
                Sent::Answered(delivery) => {
                    broken |= matches!(&delivery, Delivery::Retryable { .. });
                    delivery
                }
                Sent::Pending(routing_key, confirm) => match timeout_at(deadline, confirm).await {
                    Ok(Ok(confirmation)) => self.answer(routing_key.as_str(), confirmation),
                    Ok(Err(e)) => {
                        broken = true;
                        retryable(format!("RabbitMQ: {}", describe(&e)))
                    }
                    Err(_) => {
                        broken = true;
                        retryable(self.no_answer())
                    }
                },
            });
        }
        if broken {
            // A channel that timed out or failed may be half open; the next
            // batch starts on a fresh connection rather than find out.
            if let Some(old) = self.session.lock().await.take() {
                old.close();
            }
        }
        answers
    }
}

fn retryable(error: String) -> Delivery {
    Delivery::Retryable {
        error,
        retry_after: None,
    }
}

fn retry_all(n: usize, error: &str) -> Vec<Sent> {
    (0..n)
        .map(|_| Sent::Answered(retryable(error.to_owned())))
        .collect()
}

/// The broker's own text (`ACCESS_REFUSED - Login was refused ...`) for an
/// AMQP error, else the client's description (`IO error: Connection
/// refused (os error 111)`).
fn describe(e: &lapin::Error) -> String {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => {
            format!("{} {}", amqp.get_id(), amqp.get_message())
        }
        _ => e.to_string(),
    }
}

/// The URL without its password, for errors and logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}://{user}:***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
