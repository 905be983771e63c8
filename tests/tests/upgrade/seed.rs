//! A 0.1.0 outbox in every state (`seed_0_1_0.sql`), and snapshots of its
//! rows to compare across the upgrade.

use std::collections::BTreeMap;

use outbox_tests::tokio_postgres::Client;
use uuid::Uuid;

use crate::expect_ok;

const SEED_SQL: &str = include_str!("seed_0_1_0.sql");

/// Lease token of the message labelled `leased` (valid for an hour).
pub const LEASED_TOKEN: Uuid = Uuid::from_u128(0xa0a0a0a0_0000_4000_8000_000000000001);
/// Lease token of the message labelled `expired` (expired a minute ago).
pub const EXPIRED_TOKEN: Uuid = Uuid::from_u128(0xa0a0a0a0_0000_4000_8000_000000000002);

/// Every label in `outbox.messages`, in id order.
pub const MESSAGES: [&str; 10] = [
    "ready-keyless",
    "ready-keyed",
    "ready-unicode",
    "scheduled-keyless",
    "scheduled-keyed",
    "retrying",
    "leased",
    "leased-follower",
    "expired",
    "expired-last-attempt",
];

/// Every label in `outbox.dead_letters`, one per reason.
pub const DEAD_LETTERS: [&str; 3] = ["dead-permanent", "dead-max-attempts", "dead-lease-expired"];

/// Fills a 0.1.0 outbox; see `seed_0_1_0.sql`.
pub async fn fill(c: &Client) {
    expect_ok(c.batch_execute(SEED_SQL).await, "seed_0_1_0.sql");
}

/// label → id of every row in `outbox.messages` and `outbox.dead_letters`.
pub async fn ids(c: &Client) -> BTreeMap<String, i64> {
    let rows = expect_ok(
        c.query(
            "SELECT payload->>'label', id FROM outbox.messages \
             UNION ALL SELECT payload->>'label', id FROM outbox.dead_letters",
            &[],
        )
        .await,
        "reading labels",
    );
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// The oid of a relation, to follow it through renames (0.2.0 may rename
/// 0.1.0's `outbox.messages`, the side table, and put a view in its place).
pub async fn oid_of(c: &Client, relation: &str) -> u32 {
    expect_ok(
        c.query_one("SELECT $1::text::regclass::oid", &[&relation])
            .await,
        &format!("looking up {relation}"),
    )
    .get(0)
}

/// The current name of the relation with oid `oid`.
///
/// # Panics
///
/// When it no longer exists (it was dropped, or dropped and re-created).
pub async fn name_of(c: &Client, oid: u32, was: &str) -> String {
    let row = expect_ok(
        c.query_opt(
            "SELECT oid::regclass::text FROM pg_catalog.pg_class WHERE oid = $1",
            &[&oid],
        )
        .await,
        "reading pg_class",
    );
    match row {
        Some(row) => row.get(0),
        None => panic!(
            "the table that was {was} before the upgrade is gone: the upgrade must keep it (rename \
             it if need be), not copy its rows to a new table"
        ),
    }
}

/// id → every 0.1.0 column of the messages in `relation` (0.1.0's
/// `outbox.messages`, by whatever name it has now, or the view of that
/// name) as JSON text, times to the microsecond. Columns a later version
/// adds are not part of it.
pub async fn messages(c: &Client, relation: &str) -> BTreeMap<i64, String> {
    snapshot(
        c,
        &format!(
            "SELECT id, to_jsonb(m)::text FROM (SELECT id, topic, key, payload, headers, \
             created_at, deliver_at, attempt, max_attempts, lease_owner, lease_token, \
             lease_expires_at, last_error FROM {relation}) AS m"
        ),
    )
    .await
}

/// id → every 0.1.0 column of `outbox.dead_letters` as JSON text.
pub async fn dead_letters(c: &Client) -> BTreeMap<i64, String> {
    snapshot(
        c,
        "SELECT id, to_jsonb(d)::text FROM (SELECT id, topic, key, payload, headers, created_at, \
         attempts, max_attempts, last_error, reason, died_at FROM outbox.dead_letters) AS d",
    )
    .await
}

async fn snapshot(c: &Client, sql: &str) -> BTreeMap<i64, String> {
    let rows = expect_ok(c.query(sql, &[]).await, sql);
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Lines naming every row that differs between two snapshots.
pub fn differences(
    what: &str,
    before: &BTreeMap<i64, String>,
    after: &BTreeMap<i64, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (id, row) in before {
        match after.get(id) {
            None => out.push(format!("{what} {id} is gone; it was {row}")),
            Some(now) if now != row => out.push(format!(
                "{what} {id} changed:\n  before {row}\n  after  {now}"
            )),
            Some(_) => {}
        }
    }
    for (id, row) in after {
        if !before.contains_key(id) {
            out.push(format!("{what} {id} appeared: {row}"));
        }
    }
    out
}
