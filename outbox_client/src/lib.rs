//! The outbox from Rust, for producers: enqueue inside your own transaction.
//!
//! - [`Store`] mirrors the SQL API one to one and works on any
//!   `tokio_postgres::GenericClient`, so `Store.enqueue(&tx, &msg)` joins the
//!   caller's transaction: the message commits with the business rows, or
//!   not at all.
//! - [`NewMessage`] and [`Topic`] are checked by the rules the extension
//!   applies (`outbox_rules`), so a bad topic fails before the round trip
//!   with the extension's own message.
//! - [`call`] holds one function per SQL call, generic over text or
//!   prepared statements: `Store` and the relay (crate `outbox_relay`) run
//!   the same code.
//!
//! This crate depends on tokio-postgres, serde, chrono, uuid and thiserror
//! only; the relay, its publishers, metrics and TLS are in `outbox_relay`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use outbox_client::{NewMessage, Store, Topic};
//!
//! let config: tokio_postgres::Config = "host=/var/run/postgresql dbname=app".parse()?;
//! let (mut client, conn) = config.connect(tokio_postgres::NoTls).await?;
//! tokio::spawn(conn);
//!
//! // The event commits with the business row, or not at all.
//! let tx = client.transaction().await?;
//! tx.execute("INSERT INTO orders (id) VALUES (42)", &[]).await?;
//! let msg = NewMessage::new(Topic::new("orders.created")?, &serde_json::json!({"id": 42}))?
//!     .with_key("order-42");
//! Store.enqueue(&tx, &msg).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod after_commit;
pub mod call;
mod claimed;
mod error;
pub mod ids;
mod inspect;
mod outboxes;
pub mod sql;
mod store;
mod trace;
mod types;

pub use after_commit::{AfterCommit, CommitError, HookError};
pub use error::{error_chain, Error};
pub use inspect::{MessageFilter, MessageInfo, MessageState};
pub use outboxes::Statements;
pub use store::Store;
pub use types::{
    Claim, FailOutcome, LeaseToken, Message, NewMessage, Topic, TopicStats, Undeliverable,
};
