//! The SQL API calls the upgrade tests make after the upgrade, typed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use outbox_tests::tokio_postgres::Client;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::expect_ok;

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
    pub created_at: DateTime<Utc>,
}

impl Claimed {
    pub fn label(&self) -> &str {
        self.payload
            .get("label")
            .and_then(Value::as_str)
            .unwrap_or("(no label)")
    }
}

/// What a message looked like before the upgrade, to compare claims with.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub topic: String,
    pub key: Option<String>,
    pub payload: Value,
    pub headers: Option<Value>,
    pub attempt: i32,
    pub created_at: DateTime<Utc>,
}

/// id → the 0.1.0 columns a relay sees, of every row in `outbox.messages`.
pub async fn stored(c: &Client) -> BTreeMap<i64, Stored> {
    let rows = expect_ok(
        c.query(
            "SELECT id, topic, key, payload, headers, attempt, created_at FROM outbox.messages",
            &[],
        )
        .await,
        "reading outbox.messages",
    );
    rows.iter()
        .map(|r| {
            (
                r.get(0),
                Stored {
                    topic: r.get(1),
                    key: r.get(2),
                    payload: r.get(3),
                    headers: r.get(4),
                    attempt: r.get(5),
                    created_at: r.get(6),
                },
            )
        })
        .collect()
}

/// `outbox.enqueue` of `{"label": label}`; returns the id.
pub async fn enqueue(c: &Client, topic: &str, label: &str, key: Option<&str>) -> i64 {
    expect_ok(
        c.query_one(
            "SELECT outbox.enqueue($1, $2, key => $3)",
            &[&topic, &json!({ "label": label }), &key],
        )
        .await,
        "outbox.enqueue",
    )
    .get(0)
}

/// One `outbox.claim(owner, 100, '10 minutes')`.
pub async fn claim(c: &Client, owner: &str) -> Vec<Claimed> {
    let rows = expect_ok(
        c.query(
            "SELECT id, topic, key, payload, headers, attempt, lease_token, created_at \
             FROM outbox.claim($1, 100, interval '10 minutes')",
            &[&owner],
        )
        .await,
        "outbox.claim",
    );
    rows.iter()
        .map(|r| Claimed {
            id: r.get(0),
            topic: r.get(1),
            key: r.get(2),
            payload: r.get(3),
            headers: r.get(4),
            attempt: r.get(5),
            token: r.get(6),
            created_at: r.get(7),
        })
        .collect()
}

/// Claims and completes until a claim comes back empty; returns the
/// batches in the order they were claimed.
pub async fn drain(c: &Client, owner: &str) -> Vec<Vec<Claimed>> {
    let mut batches = Vec::new();
    for _ in 0..200 {
        let batch = claim(c, owner).await;
        if batch.is_empty() {
            return batches;
        }
        let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
        let completed: i32 = expect_ok(
            c.query_one(
                "SELECT outbox.complete_batch($1, $2)",
                &[&ids, &batch[0].token],
            )
            .await,
            "outbox.complete_batch",
        )
        .get(0);
        assert_eq!(
            usize::try_from(completed).ok(),
            Some(ids.len()),
            "complete_batch with the claim's own token completed {completed} of {ids:?}"
        );
        batches.push(batch);
    }
    panic!("200 claims and the outbox is still not drained: claimed {batches:?}");
}

/// The labels of every message in `batches`, sorted.
pub fn labels(batches: &[Vec<Claimed>]) -> Vec<String> {
    let mut labels: Vec<String> = batches
        .iter()
        .flatten()
        .map(|m| m.label().to_owned())
        .collect();
    labels.sort();
    labels
}

/// Index of the batch that holds `label`.
#[track_caller]
pub fn batch_of(batches: &[Vec<Claimed>], label: &str) -> usize {
    batches
        .iter()
        .position(|b| b.iter().any(|m| m.label() == label))
        .unwrap_or_else(|| panic!("{label} was not claimed; batches: {batches:?}"))
}

/// The claimed message labelled `label`.
#[track_caller]
pub fn claimed<'a>(batches: &'a [Vec<Claimed>], label: &str) -> &'a Claimed {
    batches
        .iter()
        .flatten()
        .find(|m| m.label() == label)
        .unwrap_or_else(|| panic!("{label} was not claimed; batches: {batches:?}"))
}

/// Sorted owned strings, for comparing label sets.
pub fn sorted(labels: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = labels.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}
