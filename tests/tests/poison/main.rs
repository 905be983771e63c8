//! Poison messages and the relay's hard stop (issue 8).
//!
//! - A payload travels as the text `jsonb` prints, so what
//!   `serde_json::Value` cannot hold or would round (arrays nested 300 deep,
//!   `1e400`, `99.50`, integers past 2^53) is published exactly. A row the
//!   client cannot decode (headers that are not strings, written around the
//!   extension) is dead-lettered as `undeliverable: ...`, and everything
//!   else is still published: by the real `outbox-relay` binary, and as
//!   [`Claim::undeliverable`] from [`Store::claim`].
//! - `Relay::run` returns within the shutdown grace even when a publish
//!   never returns, and leaves nothing of itself running; a batch that
//!   finishes within the grace is still settled.

mod panics;
mod payloads;
mod shutdown;

use outbox_relay::RelayConfig;
use outbox_tests::tokio_postgres::Client;
use outbox_tests::{TestDb, SUPERUSER};
use serde_json::json;
use std::time::Duration;

pub const PATIENCE: Duration = Duration::from_secs(30);
pub const TOPIC: &str = "poison.demo";
/// Valid jsonb, deeper than serde_json::Value's recursion limit (128).
pub const DEEP: &str = "(repeat('[', 300) || repeat(']', 300))::jsonb";
/// Valid jsonb (numeric), out of range for serde_json::Value (f64).
pub const HUGE: &str = "'{\"amount\": 1e400}'::jsonb";

pub async fn enqueue(c: &Client, payload_sql: &str, key: Option<&str>) -> i64 {
    c.query_one(
        &format!("SELECT outbox.enqueue($1, {payload_sql}, key => $2)"),
        &[&TOPIC, &key],
    )
    .await
    .unwrap()
    .get(0)
}

pub async fn enqueue_good(c: &Client, n: i64, key: Option<&str>) -> i64 {
    c.query_one(
        "SELECT outbox.enqueue($1, $2, key => $3)",
        &[&TOPIC, &json!({ "n": n }), &key],
    )
    .await
    .unwrap()
    .get(0)
}

/// (id, reason, last_error) of every dead letter, by id.
pub async fn dead_letters(c: &Client) -> Vec<(i64, String, String)> {
    c.query(
        "SELECT id, reason, last_error FROM outbox.dead_letters ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

pub async fn count(c: &Client, sql: &str, app: &str) -> i64 {
    c.query_one(sql, &[&app]).await.unwrap().get(0)
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Valid JSON that `serde_json::Value` would change: a decimal's trailing
/// zero and an integer beyond f64's 53 bits.
pub const EXACT: &str = "'{\"n\": 12345678901234567890123, \"total\": 99.50}'::jsonb";

/// Factory: headers the extension refuses at enqueue, written around it.
pub async fn break_headers(c: &Client, id: i64) {
    c.execute(
        "UPDATE outbox.log SET headers = '{\"n\": 1}' WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
}

pub fn relay_config(db: &TestDb, app: &str, grace: Duration) -> RelayConfig {
    let mut pg = db.config(SUPERUSER);
    pg.application_name(app);
    let mut config = RelayConfig::new(pg);
    config.concurrency = 1;
    config.shutdown_grace = grace;
    config
}

pub const SESSIONS: &str = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1";
