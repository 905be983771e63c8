//! The newest update script against a full 0.2.0 database: 0.2.0 keeps its
//! messages in the log and the side table (docs/storage.md), which the 0.1.0
//! seed never reaches. Filled through 0.2.0's own API, as a 0.2.0
//! deployment would be: a leased log batch with a deferred message behind
//! it, unread and scheduled log messages, a retry in the side table, a dead
//! letter, and roles granted under 0.2.0. Needs 0.3.0 (or later) installed.

use outbox_tests::tokio_postgres::Client;
use serde_json::json;
use uuid::Uuid;

use crate::calls::{drain, labels, sorted};
use crate::catalog::{assert_same, dump};
use crate::{db_at_version, db_fresh, default_version, expect_ok, seed, upgrade};

/// The release these tests start from.
const FROM: &str = "0.2.0";

/// The version to upgrade to: the installed default, which must be after
/// 0.2.0 and reachable from it.
async fn target(c: &Client) -> String {
    let target = default_version(c).await;
    assert_ne!(
        target, FROM,
        "these tests need a release after {FROM} installed (bump the workspace version and \
         write sql/outbox--{FROM}--<next>.sql)"
    );
    target
}

async fn run(c: &Client, sql: &str) -> Vec<outbox_tests::tokio_postgres::Row> {
    expect_ok(c.query(sql, &[]).await, sql)
}

async fn enqueue(c: &Client, label: &str, key: Option<&str>, extra: &str) -> i64 {
    let sql = format!("SELECT outbox.enqueue('orders', $1, key => $2{extra})");
    expect_ok(
        c.query_one(&sql, &[&json!({ "label": label }), &key]).await,
        &sql,
    )
    .get(0)
}

/// What 0.2.0's partitions say (windows, cursors, leases, batches,
/// deferred): the upgrade must leave them as they were.
async fn partitions(c: &Client) -> Vec<String> {
    run(
        c,
        "SELECT to_jsonb(p)::text FROM outbox.partitions AS p ORDER BY part",
    )
    .await
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Returns the lease token of the log batch it leaves leased.
async fn fill(c: &Client) -> Uuid {
    enqueue(c, "leased-k1", Some("k1"), "").await;
    enqueue(c, "deferred-k1", Some("k1"), "").await;
    enqueue(c, "leased-k2", Some("k2"), "").await;
    enqueue(c, "to-retry", Some("k3"), "").await;
    enqueue(c, "to-die", Some("k4"), "").await;
    let batch = run(
        c,
        "SELECT id, payload->>'label', lease_token FROM outbox.claim('old-relay', 100, interval '10 minutes')",
    )
    .await;
    let token: Uuid = batch[0].get(2);
    let labels: Vec<String> = batch.iter().map(|r| r.get(1)).collect();
    assert!(
        labels.contains(&"leased-k1".to_owned()) && !labels.contains(&"deferred-k1".to_owned()),
        "0.2.0 claimed {labels:?}: expected k1's first message and k1's second deferred"
    );
    for r in &batch {
        let (id, label): (i64, String) = (r.get(0), r.get(1));
        let call = match label.as_str() {
            "to-retry" => "SELECT outbox.fail($1, $2, 'broker said 503', retry_in => '30 minutes')",
            "to-die" => "SELECT outbox.fail($1, $2, 'bad payload', permanent => true)",
            _ => continue,
        };
        expect_ok(c.query(call, &[&id, &token]).await, call);
    }
    enqueue(c, "unread", None, "").await;
    enqueue(
        c,
        "scheduled",
        None,
        ", deliver_at => now() + interval '1 hour'",
    )
    .await;
    token
}

/// Every message and dead letter of a filled 0.2.0 database is unchanged by
/// the upgrade, and so are the partitions' windows and leases; the leased
/// batch is then completed with its 0.2.0 token, and every other message is
/// delivered when due, the deferred one after its key's head. Roles granted
/// under 0.2.0 do their jobs, the new ones included: the producer enqueues
/// with a dedup key, the relay and the admin run cleanup.
#[tokio::test]
async fn a_filled_0_2_0_database_upgrades_and_delivers_everything() {
    let (db, c) = db_at_version(FROM).await;
    let target = target(&c).await;
    let token = fill(&c).await;
    let producer = db.create_role("p2").await;
    let relay = db.create_role("r2").await;
    let admin = db.create_role("a2").await;
    for (role, grant) in [
        (&producer, "grant_producer"),
        (&relay, "grant_relay"),
        (&admin, "grant_admin"),
    ] {
        let sql = format!("SELECT outbox.{grant}($1::text::regrole)");
        expect_ok(c.execute(&sql, &[role]).await, &sql);
    }
    let messages = seed::messages(&c, "outbox.messages").await;
    let dead = seed::dead_letters(&c).await;
    let parts = partitions(&c).await;
    assert_eq!(messages.len(), 6, "filled: {messages:?}");
    assert_eq!(dead.len(), 1);

    upgrade(&c, &target).await;

    let mut problems = seed::differences(
        "message",
        &messages,
        &seed::messages(&c, "outbox.messages").await,
    );
    problems.extend(seed::differences(
        "dead letter",
        &dead,
        &seed::dead_letters(&c).await,
    ));
    assert!(
        problems.is_empty(),
        "the upgrade to {target} changed 0.2.0 rows:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        partitions(&c).await,
        parts,
        "the upgrade changed the partitions"
    );

    // The producer granted under 0.2.0 may call the new enqueue.
    let p = db.client_as(&producer).await;
    let first = enqueue(&p, "deduplicated", None, ", dedup_key => 'after-upgrade'").await;
    assert_eq!(
        enqueue(&p, "again", None, ", dedup_key => 'after-upgrade'").await,
        first
    );

    // The relay granted under 0.2.0 completes the 0.2.0 lease with its token.
    let r = db.client_as(&relay).await;
    let leased: Vec<i64> = run(
        &c,
        "SELECT id FROM outbox.messages WHERE lease_token IS NOT NULL ORDER BY id",
    )
    .await
    .iter()
    .map(|row| row.get(0))
    .collect();
    assert_eq!(leased.len(), 2, "k1's and k2's heads are leased");
    let done: i32 = expect_ok(
        r.query_one("SELECT outbox.complete_batch($1, $2)", &[&leased, &token])
            .await,
        "complete_batch with the 0.2.0 token",
    )
    .get(0);
    assert_eq!(done, 2);
    expect_ok(
        r.query_one("SELECT outbox.cleanup()", &[]).await,
        "the relay's cleanup",
    );

    expect_ok(
        c.batch_execute("SET outbox.test_clock_offset = '2h'").await,
        "moving the clock",
    );
    let delivered = drain(&c, "new-relay").await;
    assert_eq!(
        labels(&delivered),
        sorted(&[
            "deduplicated",
            "deferred-k1",
            "scheduled",
            "to-retry",
            "unread"
        ]),
        "after the upgrade, everything unfinished is delivered once"
    );
    let a = db.client_as(&admin).await;
    let removed: i64 = expect_ok(
        a.query_one("SELECT outbox.cleanup()", &[]).await,
        "the admin's cleanup",
    )
    .get(0);
    assert_eq!(
        removed, 1,
        "the dedup key of a published message (window 0) is removed"
    );

    // Named outboxes work in the upgraded database: the clone is made from
    // the upgraded default outbox, and the 0.2.0 producer can be given it.
    expect_ok(
        c.batch_execute("SELECT outbox.create_outbox('billing')")
            .await,
        "create_outbox after the upgrade",
    );
    let sql = "SELECT outbox.grant_producer($1::text::regrole, outbox => 'billing')";
    expect_ok(c.execute(sql, &[&producer]).await, sql);
    let billed = enqueue_in(&p, "outbox_billing", "billed").await;
    let claimed: Vec<i64> = run(
        &c,
        "SELECT id FROM outbox_billing.claim('billing-relay', 10)",
    )
    .await
    .iter()
    .map(|row| row.get(0))
    .collect();
    assert_eq!(claimed, [billed], "billing's relay gets billing's message");
    assert!(
        drain(&c, "default-relay").await.is_empty(),
        "the default outbox does not see billing's message"
    );
}

/// Enqueue into the outbox of schema `schema`.
async fn enqueue_in(c: &Client, schema: &str, label: &str) -> i64 {
    let sql = format!("SELECT {schema}.enqueue('t', jsonb_build_object('label', $1::text))");
    expect_ok(c.query_one(&sql, &[&label]).await, &sql).get(0)
}

/// A filled 0.2.0 database, upgraded, has exactly the objects of a fresh
/// install of the new version (the 0.1.0 chain is compared in catalog.rs).
#[tokio::test]
async fn a_0_2_0_database_upgraded_equals_a_fresh_install() {
    let (_old, old) = db_at_version(FROM).await;
    let target = target(&old).await;
    fill(&old).await;
    upgrade(&old, &target).await;
    let (_new, new) = db_fresh().await;
    assert_same(
        &format!("fresh {target}"),
        &dump(&new).await,
        &format!("{FROM} upgraded to {target}"),
        &dump(&old).await,
    );
}

/// Roles granted under 0.2.0 end up with exactly what the new version's
/// grant functions give.
#[tokio::test]
async fn roles_granted_under_0_2_0_have_what_a_grant_under_the_new_version_gives() {
    crate::roles::compare_grants(FROM).await;
}
