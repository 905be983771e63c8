//! The outbox from Rust: enqueue inside your own transaction, and relay the
//! messages to a broker.
//!
//! - [`Store`] mirrors the SQL API one to one and works on any
//!   `tokio_postgres::GenericClient`, so `Store.enqueue(&tx, &msg)` joins the
//!   caller's transaction.
//! - [`Relay`] claims batches, hands them to a [`Publisher`], completes what
//!   the broker acknowledged and fails the rest; several workers, woken by the
//!   doorbell, reconnecting, with a two-phase graceful shutdown.
//! - [`StdoutPublisher`] is the embedded default (one JSON line per message).
//! - [`ConnInfo`] and [`connect`]: libpq connection strings with `sslmode`,
//!   `sslrootcert`, `sslcert` and `sslkey`, over rustls; the relay connects
//!   the same way ([`RelayConfig::tls`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use outbox_client::{NewMessage, Relay, RelayConfig, StdoutPublisher, Store, Topic};
//! use tokio_util::sync::CancellationToken;
//!
//! let config: tokio_postgres::Config = "host=/var/run/postgresql dbname=app".parse()?;
//! let (mut client, conn) = config.connect(tokio_postgres::NoTls).await?;
//! tokio::spawn(conn);
//!
//! // Produce: the event commits with the business row, or not at all.
//! let tx = client.transaction().await?;
//! tx.execute("INSERT INTO orders (id) VALUES (42)", &[]).await?;
//! let msg = NewMessage::new(Topic::new("orders.created")?, &serde_json::json!({"id": 42}))?
//!     .with_key("order-42");
//! Store.enqueue(&tx, &msg).await?;
//! tx.commit().await?;
//!
//! // Relay until Ctrl-C.
//! let shutdown = CancellationToken::new();
//! let relay = Relay::new(RelayConfig::new(config), StdoutPublisher::default())?;
//! relay.run(shutdown).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod claimed;
mod conninfo;
mod error;
pub mod publish;
mod relay;
mod sql;
mod store;
mod types;

pub use conninfo::{
    connect, error_chain, ConnInfo, RootCert, SslMode, TlsConfig, TlsConnection, TlsOptions,
    TlsStream,
};
pub use error::Error;
pub use publish::{Delivery, Publisher, StdoutPublisher};
#[cfg(feature = "http")]
pub use publish::{HttpConfig, HttpPublisher};
#[cfg(feature = "kafka")]
pub use publish::{KafkaConfig, KafkaPublisher};
#[cfg(feature = "nats")]
pub use publish::{NatsConfig, NatsPublisher};
pub use relay::{Relay, RelayConfig, RelayStats};
pub use store::Store;
pub use types::{
    Claim, FailOutcome, LeaseToken, Message, NewMessage, Topic, TopicStats, Undeliverable,
};
