//! Publishers: where the relay sends messages. Each reports, per message,
//! whether the broker acknowledged it, and if not whether a retry can help.

pub mod cloudevents;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;
#[cfg(feature = "redis")]
mod redis;
mod stdout;

pub use cloudevents::{CloudEvents, ContentMode, Envelope};
#[cfg(feature = "http")]
pub use http::{HttpConfig, HttpPublisher};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaConfig, KafkaPublisher};
#[cfg(feature = "nats")]
pub use nats::{NatsConfig, NatsPublisher};
#[cfg(feature = "rabbitmq")]
pub use rabbitmq::{RabbitMqConfig, RabbitMqPublisher};
#[cfg(feature = "redis")]
pub use redis::{RedisConfig, RedisPublisher};
pub use stdout::StdoutPublisher;

use crate::Message;
use std::future::Future;
use std::time::Duration;

/// The broker's answer for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Acknowledged: the relay completes the message.
    Acked,
    /// Not delivered, may work later (broker down, timeout, 5xx). The
    /// database schedules the retry with its backoff, or after `retry_after`
    /// when the broker said when.
    Retryable {
        /// What went wrong (stored, redacted, as the message's last_error).
        error: String,
        /// The broker's own hint (e.g. HTTP Retry-After).
        retry_after: Option<Duration>,
    },
    /// Will never be delivered (rejected as malformed, 4xx): dead-letter it.
    Permanent {
        /// Why.
        error: String,
    },
}

/// Sends messages to a broker.
///
/// `publish` gets messages of distinct keys (a claim never holds two
/// messages of one key), so a publisher may send them concurrently; it
/// returns one [`Delivery`] per message, in order.
///
/// ```
/// use outbox_relay::{Delivery, Message, Publisher};
/// struct Discard;
/// impl Publisher for Discard {
///     async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
///         batch.iter().map(|_| Delivery::Acked).collect()
///     }
/// }
/// ```
pub trait Publisher: Send + Sync + 'static {
    /// Deliver a batch; one answer per message, in order.
    fn publish(&self, batch: &[Message]) -> impl Future<Output = Vec<Delivery>> + Send;

    /// What the publish spans name as `messaging.system` (OpenTelemetry's
    /// value where it defines one: `kafka`, `rabbitmq`, ...).
    fn system(&self) -> &'static str {
        "other"
    }
}
