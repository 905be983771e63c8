//! Integration-test harness for the `outbox` PostgreSQL extension.
//!
//! - [`Cluster`]: one throwaway PostgreSQL 15 cluster per test binary,
//!   started on first use ([`Cluster::shared`]) and stopped when the process
//!   exits (or is killed). Works as an ordinary user and as root (the server
//!   then runs as the `postgres` OS user).
//! - [`TestDb`]: a fresh database per test, with the extension
//!   ([`TestDb::with_extension`], the default) or without
//!   ([`TestDb::plain`]); connect with [`TestDb::client`] /
//!   [`TestDb::client_as`].
//! - [`RelayProcess`]: the real `outbox-relay` binary as a child process,
//!   its published lines and log collected.
//! - [`wait_until`] / [`wait_for`]: poll a condition with a deadline instead
//!   of sleeping.
//! - [`soak`]: the chaos soak behind `make soak` (binary `outbox-soak`, CI
//!   test `tests/soak.rs`).
//!
//! The extension must already be installed into the PostgreSQL the harness
//! runs (`cargo pgrx install`); only [`TestDb::plain`] works without it.
//!
//! ```no_run
//! use std::time::Duration;
//! use outbox_tests::{wait_until, TestDb};
//!
//! #[tokio::test]
//! async fn example() {
//!     let db = TestDb::new().await;
//!     let client = db.client().await;
//!     client.batch_execute("CREATE TABLE t (id int)").await.unwrap();
//!     client.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
//!     wait_until(Duration::from_secs(5), || async {
//!         let row = client.query_one("SELECT count(*) FROM t", &[]).await.unwrap();
//!         row.get::<_, i64>(0) == 1
//!     })
//!     .await;
//! }
//! # fn main() {}
//! ```

mod cluster;
mod pgbouncer;
mod relay;
pub mod soak;
mod sys;
mod testdb;
mod wait;

pub use cluster::{Cluster, ClusterOptions, DEFAULT_PG_BIN, SUPERUSER};
pub use pgbouncer::{PgBouncer, PGBOUNCER_BIN};
pub use relay::{built_binary, relay_binary, RelayProcess, RELAY_PATIENCE};
pub use testdb::{TestDb, EXTENSION, TEMPLATE_DB};
pub use wait::{wait_for, wait_until, POLL_INTERVAL};

/// Re-export, so tests use the same `tokio_postgres` version as the harness.
pub use tokio_postgres;

/// Functions in schema `outbox` that carry no `SET search_path` on purpose:
/// bodies of pinned wrappers and helpers that only pinned functions call,
/// inlined or called per row where a SET clause would cost every call
/// (sql/claim.sql, schema.sql, dedup.sql, state.sql, inspect.sql say why).
/// They must be SECURITY INVOKER and executable by their owner only
/// (tests/tests/security/shadowing.rs checks both); every other function
/// pins search_path (tests/tests/it/privileges.rs).
pub const UNPINNED_BODIES: &[&str] = &[
    "_claim",
    "_window_snapshot",
    "_message_unfinished",
    "_state",
    "_listing",
];

/// Quotes an SQL identifier (`"name"`, inner `"` doubled).
///
/// ```
/// assert_eq!(outbox_tests::quote_ident(r#"a"b"#), r#""a""b""#);
/// ```
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A readable one-paragraph description of a `tokio_postgres` error: for
/// server errors severity, message, SQLSTATE, detail and hint (the plain
/// `Display` only says "db error"); otherwise the whole source chain.
///
/// ```no_run
/// # async fn demo(client: tokio_postgres::Client) {
/// if let Err(e) = client.batch_execute("SELECT * FROM missing").await {
///     eprintln!("{}", outbox_tests::describe_error(&e));
/// }
/// # }
/// ```
pub fn describe_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(detail) = db.detail() {
            s.push_str("\nDETAIL: ");
            s.push_str(detail);
        }
        if let Some(hint) = db.hint() {
            s.push_str("\nHINT: ");
            s.push_str(hint);
        }
        s
    } else {
        let mut s = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(inner) = source {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            source = inner.source();
        }
        s
    }
}
