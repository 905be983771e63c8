//! Helpers shared by the tests: typed wrappers over the SQL API and a
//! factory that puts messages into any state directly.

use outbox_tests::tokio_postgres::{Client, Error};
use serde_json::{json, Value};
use uuid::Uuid;

/// One row of `outbox.claim()`.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub topic: String,
    pub key: Option<String>,
    pub payload: Value,
    pub headers: Option<Value>,
    pub attempt: i32,
    pub token: Uuid,
}

pub async fn enqueue(c: &Client, topic: &str, payload: Value) -> i64 {
    c.query_one("SELECT outbox.enqueue($1, $2)", &[&topic, &payload])
        .await
        .unwrap()
        .get(0)
}

pub async fn enqueue_keyed(c: &Client, topic: &str, key: &str, n: i64) -> i64 {
    c.query_one(
        "SELECT outbox.enqueue($1, $2, key => $3)",
        &[&topic, &json!({ "n": n }), &key],
    )
    .await
    .unwrap()
    .get(0)
}

pub async fn try_claim(c: &Client, owner: &str, batch: i32) -> Result<Vec<Claimed>, Error> {
    let rows = c
        .query(
            "SELECT id, topic, key, payload, headers, attempt, lease_token FROM outbox.claim($1, $2)",
            &[&owner, &batch],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Claimed {
            id: r.get(0),
            topic: r.get(1),
            key: r.get(2),
            payload: r.get(3),
            headers: r.get(4),
            attempt: r.get(5),
            token: r.get(6),
        })
        .collect())
}

pub async fn claim(c: &Client, owner: &str, batch: i32) -> Vec<Claimed> {
    try_claim(c, owner, batch).await.unwrap()
}

/// The ids `outbox.claim()` hands out, in order.
pub async fn claim_ids(c: &Client, owner: &str, batch: i32) -> Vec<i64> {
    claim(c, owner, batch).await.iter().map(|m| m.id).collect()
}

/// `SELECT outbox.<grant>(role)`: grant_producer, grant_relay, grant_admin, revoke_all.
pub async fn grant(c: &Client, grant: &str, role: &str) {
    c.execute(
        &format!("SELECT outbox.{grant}($1::text::regrole)"),
        &[&role],
    )
    .await
    .unwrap();
}

/// A producer, a relay and an admin (roles `<db>_<prefix>_producer` and so
/// on, granted their jobs), connected: (producer, relay, admin).
pub async fn job_clients(db: &outbox_tests::TestDb, prefix: &str) -> (Client, Client, Client) {
    let su = db.client().await;
    let mut clients = Vec::new();
    for (job, grant_fn) in [
        ("producer", "grant_producer"),
        ("relay", "grant_relay"),
        ("admin", "grant_admin"),
    ] {
        let role = db.create_role(&format!("{prefix}_{job}")).await;
        grant(&su, grant_fn, &role).await;
        clients.push(db.client_as(&role).await);
    }
    let admin = clients.pop().expect("three");
    let relay = clients.pop().expect("three");
    let producer = clients.pop().expect("three");
    (producer, relay, admin)
}

pub async fn complete(c: &Client, m: &Claimed) -> bool {
    c.query_one("SELECT outbox.complete($1, $2)", &[&m.id, &m.token])
        .await
        .unwrap()
        .get(0)
}

/// The `state` that `outbox.fail()` reports.
pub async fn fail(c: &Client, m: &Claimed, error: &str) -> String {
    c.query_one(
        "SELECT state FROM outbox.fail($1, $2, $3)",
        &[&m.id, &m.token, &error],
    )
    .await
    .unwrap()
    .get(0)
}

pub async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// Factory: make the leases of `ids` expire now, as if their relay died:
/// per message in the side table, per batch for a leased log batch (a log
/// batch shares one lease, docs/storage.md).
pub async fn expire_leases(c: &Client, ids: &[i64]) {
    for sql in [
        "UPDATE outbox.side SET lease_expires_at = statement_timestamp() - interval '1 second' \
         WHERE id = ANY($1)",
        "UPDATE outbox.partitions SET lease_expires_at = statement_timestamp() - interval '1 second' \
         WHERE batch && $1",
    ] {
        c.execute(sql, &[&ids]).await.unwrap();
    }
}

/// Factory: make every scheduled message (future deliver_at, retries) due
/// now, in the side table and in the log (which the outbox itself never
/// updates; a test may).
pub async fn make_due(c: &Client) {
    c.batch_execute(
        "UPDATE outbox.side SET deliver_at = statement_timestamp() - interval '1 millisecond' \
         WHERE deliver_at > statement_timestamp(); \
         UPDATE outbox.log SET deliver_at = statement_timestamp() - interval '1 millisecond' \
         WHERE deliver_at > statement_timestamp()",
    )
    .await
    .unwrap();
}

/// How many relays are armed (asleep on the doorbell) in this database. The
/// database filter matters: every test database is a copy of one template,
/// so their gate tables share an OID.
pub const ARMED_RELAYS: &str = "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND relation = 'outbox.doorbell_gate'::regclass AND mode = 'ShareLock' AND granted";

/// The SQLSTATE of a failed call, for assertions.
pub fn sqlstate(e: &Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_owned())
        .unwrap_or_else(|| format!("not a db error: {e}"))
}

/// Everything in the outbox, for "nothing changed" assertions.
pub async fn snapshot(c: &Client) -> String {
    c.query_one(
        "SELECT coalesce((SELECT json_agg(m ORDER BY id)::text FROM outbox.messages m), '') || '|' || \
                coalesce((SELECT json_agg(d ORDER BY id)::text FROM outbox.dead_letters d), '')",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}
