//! The outbox's relay: claim batches, hand them to a [`Publisher`], complete
//! what the broker acknowledged and fail the rest; several workers, woken by
//! the doorbell, reconnecting, with a two-phase graceful shutdown.
//!
//! - [`Relay`] and [`RelayConfig`]: the loop and its settings (see the
//!   [`relay`](Relay) docs for shutdown and poison messages).
//! - [`Publisher`]: where messages go. [`StdoutPublisher`] is the embedded
//!   default (one JSON line per message); HTTP webhooks, NATS JetStream,
//!   Kafka, Redis Streams and RabbitMQ are behind the features `http`,
//!   `nats`, `kafka`, `redis` and `rabbitmq`.
//! - [`ConnInfo`] and [`connect`]: libpq connection strings with `sslmode`,
//!   `sslrootcert`, `sslcert` and `sslkey`, over rustls; the relay connects
//!   the same way ([`RelayConfig::tls`]).
//! - The `outbox-relay` binary wraps all of it with a command line, logs,
//!   Prometheus metrics and health endpoints; the `outbox` binary is the
//!   operator's CLI (stats, blocked keys, peek, dead letters), with the same
//!   connection flags ([`cli::ConnectionArgs`]).
//!
//! Producers do not need this crate: `outbox_client` is the library to
//! enqueue with. This one re-exports the client types its own API uses.
//!
//! ```no_run
//! # async fn demo() -> Result<(), outbox_relay::Error> {
//! use outbox_relay::{Relay, RelayConfig, StdoutPublisher};
//! use tokio_util::sync::CancellationToken;
//!
//! let db = "host=/var/run/postgresql dbname=app".parse().expect("a valid connection string");
//! let shutdown = CancellationToken::new();
//! // Relay until `shutdown` is cancelled (by a signal handler, say).
//! let relay = Relay::new(RelayConfig::new(db), StdoutPublisher::default())?;
//! relay.run(shutdown).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod cli;
mod conninfo;
pub mod publish;
mod relay;
pub mod trace;

pub use conninfo::{
    connect, ConnInfo, RootCert, SslMode, TlsConfig, TlsConnection, TlsOptions, TlsStream,
};
pub use outbox_client::{error_chain, Claim, Error, FailOutcome, LeaseToken, Message};
pub use publish::{Delivery, Publisher, StdoutPublisher};
#[cfg(feature = "http")]
pub use publish::{HttpConfig, HttpPublisher};
#[cfg(feature = "kafka")]
pub use publish::{KafkaConfig, KafkaPublisher};
#[cfg(feature = "nats")]
pub use publish::{NatsConfig, NatsPublisher};
#[cfg(feature = "rabbitmq")]
pub use publish::{RabbitMqConfig, RabbitMqPublisher};
#[cfg(feature = "redis")]
pub use publish::{RedisConfig, RedisPublisher};
pub use relay::{Relay, RelayConfig, RelayStats};
