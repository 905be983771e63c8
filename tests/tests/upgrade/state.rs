//! Messages written under 0.1.0 survive the upgrade unchanged and are then
//! delivered exactly as 0.1.0 promised. All three tests need 0.2.0 (or
//! later) installed.

use crate::calls::{batch_of, claimed, drain, enqueue, labels, sorted, stored, Stored};
use crate::seed::{self, EXPIRED_TOKEN, LEASED_TOKEN};
use crate::{db_at_version, expect_ok, upgrade, upgrade_target, FIRST_RELEASE};

/// Past the retry the seed set (30 minutes ahead), before its scheduled
/// messages (an hour ahead), and past the leases `calls::claim` takes
/// (10 minutes), which `calls::drain` completes anyway.
const FORTY_FIVE_MINUTES_MS: i64 = 45 * 60 * 1000;
/// Past every due time the seed set.
const TWO_HOURS_MS: i64 = 2 * 60 * 60 * 1000;

/// Runs the outbox's clock `ms` ahead of real time in this session
/// (`outbox.test_clock_offset`, superusers only).
async fn set_clock(c: &outbox_tests::tokio_postgres::Client, ms: i64) {
    expect_ok(
        c.batch_execute(&format!("SET outbox.test_clock_offset = {ms}"))
            .await,
        "SET outbox.test_clock_offset",
    );
}

/// Every 0.1.0 column of every message and dead letter is the same after
/// the upgrade (ids, topics, keys, payloads, headers, created_at, due
/// times, attempts, lease owner, token and expiry, last errors): in the
/// very table they were in (followed by oid, whatever it is called now),
/// and as `SELECT ... FROM outbox.messages` shows them (admins' queries and
/// dashboards). A message enqueued afterwards gets an id above all of them.
#[tokio::test]
async fn upgrade_keeps_every_message_and_dead_letter_as_it_was() {
    let (_db, c) = db_at_version(FIRST_RELEASE).await;
    let target = upgrade_target(&c).await;
    seed::fill(&c).await;
    let side = seed::oid_of(&c, "outbox.messages").await;
    let messages = seed::messages(&c, "outbox.messages").await;
    let dead = seed::dead_letters(&c).await;
    assert_eq!(messages.len(), seed::MESSAGES.len(), "seeded messages");
    assert_eq!(dead.len(), seed::DEAD_LETTERS.len(), "seeded dead letters");

    upgrade(&c, &target).await;

    let side_now = seed::name_of(&c, side, "outbox.messages").await;
    let mut problems = seed::differences(
        &format!("in {side_now} (0.1.0's outbox.messages): message"),
        &messages,
        &seed::messages(&c, &side_now).await,
    );
    if side_now != "outbox.messages" {
        problems.extend(seed::differences(
            "as outbox.messages shows it: message",
            &messages,
            &seed::messages(&c, "outbox.messages").await,
        ));
    }
    problems.extend(seed::differences(
        "dead letter",
        &dead,
        &seed::dead_letters(&c).await,
    ));
    assert!(
        problems.is_empty(),
        "the upgrade to {target} changed 0.1.0 rows:\n{}",
        problems.join("\n")
    );

    let highest = messages.keys().chain(dead.keys()).max().copied();
    let new_id = enqueue(&c, "orders", "after-upgrade", None).await;
    assert!(
        Some(new_id) > highest,
        "a message enqueued after the upgrade got id {new_id}, not above the highest 0.1.0 id \
         {highest:?}: ids must stay unique across the side table, the log and the dead letters \
         (a requeued dead letter keeps its id)"
    );
    let topics: i64 = expect_ok(
        c.query_one("SELECT count(*) FROM outbox.stats()", &[])
            .await,
        "outbox.stats() after the upgrade",
    )
    .get(0);
    assert!(
        topics >= 3,
        "stats() lists {topics} topics, expected the 3 seeded"
    );
}

/// After the upgrade: what was due is claimed (attempt counted on top of
/// the 0.1.0 attempts, everything else as stored); the expired lease is
/// recovered, and one expired on its last attempt is dead-lettered; the
/// valid 0.1.0 lease still holds its key and can be extended and completed
/// with its old token; the scheduled and retrying ones come when due (the
/// clock moved, no sleep); messages enqueued after the upgrade wait behind
/// the 0.1.0 heads of their keys.
#[tokio::test]
async fn messages_from_0_1_0_are_delivered_after_the_upgrade() {
    let (_db, c) = db_at_version(FIRST_RELEASE).await;
    let target = upgrade_target(&c).await;
    seed::fill(&c).await;
    let ids = seed::ids(&c).await;
    let before = stored(&c).await;
    let side = seed::oid_of(&c, "outbox.messages").await;
    upgrade(&c, &target).await;

    enqueue(&c, "orders", "new-keyless", None).await;
    enqueue(&c, "orders", "new-own-key", Some("cust-new")).await;
    enqueue(&c, "orders", "new-behind-leased", Some("cust-leased")).await;
    enqueue(&c, "orders", "new-behind-scheduled", Some("cust-sched")).await;
    enqueue(&c, "payments", "new-behind-retrying", Some("cust-retry")).await;

    // What is due now.
    let due = drain(&c, "relay-new").await;
    assert_eq!(
        labels(&due),
        sorted(&[
            "ready-keyless",
            "ready-keyed",
            "ready-unicode",
            "expired",
            "new-keyless",
            "new-own-key",
        ]),
        "claimed right after the upgrade (batches: {due:?})"
    );
    for m in due.iter().flatten() {
        let Some(old) = before.get(&m.id) else {
            continue; // enqueued after the upgrade
        };
        let seen = Stored {
            topic: m.topic.clone(),
            key: m.key.clone(),
            payload: m.payload.clone(),
            headers: m.headers.clone(),
            attempt: m.attempt - 1,
            created_at: m.created_at,
        };
        assert_eq!(
            &seen,
            old,
            "claim returned message {} ({}) not as stored under 0.1.0 (attempt shown minus the \
             one this claim counted)",
            m.id,
            m.label()
        );
    }
    let last = ids["expired-last-attempt"];
    let reason: Option<String> = expect_ok(
        c.query_opt(
            "SELECT reason FROM outbox.dead_letters WHERE id = $1",
            &[&last],
        )
        .await,
        "reading dead_letters",
    )
    .map(|r| r.get(0));
    assert_eq!(
        reason.as_deref(),
        Some("lease_expired"),
        "the message whose lease expired on its last attempt"
    );

    // The reclaimed message's 0.1.0 token is fenced off.
    let stale: bool = expect_ok(
        c.query_one(
            "SELECT outbox.complete($1, $2)",
            &[&ids["expired"], &EXPIRED_TOKEN],
        )
        .await,
        "complete with the expired 0.1.0 token",
    )
    .get(0);
    assert!(
        !stale,
        "the expired 0.1.0 lease token completed a message it no longer holds"
    );

    // The valid 0.1.0 lease: extend and complete with the old token.
    let leased = ids["leased"];
    let extended: Option<chrono::DateTime<chrono::Utc>> = expect_ok(
        c.query_one(
            "SELECT outbox.extend($1, $2, interval '5 minutes')",
            &[&leased, &LEASED_TOKEN],
        )
        .await,
        "extend with the 0.1.0 lease token",
    )
    .get(0);
    assert!(
        extended.is_some(),
        "extend with the valid 0.1.0 token said stale"
    );
    let completed: bool = expect_ok(
        c.query_one("SELECT outbox.complete($1, $2)", &[&leased, &LEASED_TOKEN])
            .await,
        "complete with the 0.1.0 lease token",
    )
    .get(0);
    assert!(
        completed,
        "complete with the valid 0.1.0 lease token said stale"
    );
    let behind_leased = drain(&c, "relay-new").await;
    assert_eq!(
        labels(&behind_leased),
        sorted(&["leased-follower", "new-behind-leased"]),
        "claimed once the 0.1.0 lease was completed"
    );
    assert!(
        batch_of(&behind_leased, "leased-follower") < batch_of(&behind_leased, "new-behind-leased"),
        "per-key order on cust-leased: the 0.1.0 follower before the message enqueued after the \
         upgrade ({behind_leased:?})"
    );

    // Retrying (due in 30 minutes), then scheduled (due in an hour): move
    // the clock instead of waiting.
    set_clock(&c, FORTY_FIVE_MINUTES_MS).await;
    let retried = drain(&c, "relay-new").await;
    assert_eq!(
        labels(&retried),
        sorted(&["retrying", "new-behind-retrying"]),
        "claimed 45 minutes later"
    );
    assert!(
        batch_of(&retried, "retrying") < batch_of(&retried, "new-behind-retrying"),
        "per-key order on cust-retry ({retried:?})"
    );
    assert_eq!(
        claimed(&retried, "retrying").attempt,
        3,
        "the retrying message had 2 attempts under 0.1.0"
    );
    set_clock(&c, TWO_HOURS_MS).await;
    let scheduled = drain(&c, "relay-new").await;
    assert_eq!(
        labels(&scheduled),
        sorted(&[
            "scheduled-keyless",
            "scheduled-keyed",
            "new-behind-scheduled"
        ]),
        "claimed two hours later"
    );
    assert!(
        batch_of(&scheduled, "scheduled-keyed") < batch_of(&scheduled, "new-behind-scheduled"),
        "per-key order on cust-sched ({scheduled:?})"
    );
    let side_now = seed::name_of(&c, side, "outbox.messages").await;
    let left: i64 = expect_ok(
        c.query_one(&format!("SELECT count(*) FROM {side_now}"), &[])
            .await,
        "counting the side table",
    )
    .get(0);
    assert_eq!(left, 0, "{side_now} still has messages after the drain");
    let unfinished: i64 = expect_ok(
        c.query_one("SELECT count(*) FROM outbox.messages", &[])
            .await,
        "counting outbox.messages",
    )
    .get(0);
    assert_eq!(
        unfinished, 0,
        "outbox.messages still shows messages after the drain"
    );
}

/// The 0.1.0 dead letters are listed (by topic too), requeued with their
/// ids, delivered, and purged.
#[tokio::test]
async fn dead_letters_from_0_1_0_can_be_listed_requeued_and_purged_after_the_upgrade() {
    let (_db, c) = db_at_version(FIRST_RELEASE).await;
    let target = upgrade_target(&c).await;
    seed::fill(&c).await;
    let ids = seed::ids(&c).await;
    upgrade(&c, &target).await;

    let listed = |rows: Vec<outbox_tests::tokio_postgres::Row>| {
        let mut v: Vec<String> = rows
            .iter()
            .map(|r| r.get::<_, serde_json::Value>(0)["label"].to_string())
            .collect();
        v.sort();
        v
    };
    let all = expect_ok(
        c.query("SELECT payload FROM outbox.list_dead()", &[]).await,
        "outbox.list_dead()",
    );
    let quoted = |labels: &[&str]| {
        let mut v: Vec<String> = labels.iter().map(|l| format!("\"{l}\"")).collect();
        v.sort();
        v
    };
    assert_eq!(listed(all), quoted(&seed::DEAD_LETTERS), "list_dead()");
    let orders = expect_ok(
        c.query("SELECT payload FROM outbox.list_dead('orders')", &[])
            .await,
        "outbox.list_dead('orders')",
    );
    assert_eq!(
        listed(orders),
        quoted(&["dead-permanent"]),
        "list_dead('orders')"
    );

    let requeue = vec![ids["dead-permanent"], ids["dead-max-attempts"]];
    let n: i32 = expect_ok(
        c.query_one("SELECT outbox.requeue_dead($1)", &[&requeue])
            .await,
        "outbox.requeue_dead",
    )
    .get(0);
    assert_eq!(n, 2, "requeue_dead of two 0.1.0 dead letters");
    let delivered = drain(&c, "relay-new").await;
    for label in ["dead-permanent", "dead-max-attempts"] {
        assert_eq!(
            claimed(&delivered, label).id,
            ids[label],
            "a requeued dead letter keeps its id"
        );
    }
    let purge = vec![ids["dead-lease-expired"]];
    let n: i32 = expect_ok(
        c.query_one("SELECT outbox.purge_dead($1)", &[&purge]).await,
        "outbox.purge_dead",
    )
    .get(0);
    assert_eq!(n, 1, "purge_dead of a 0.1.0 dead letter");
    // Left: the one the drain's claim dead-lettered (lease expired on its
    // last attempt).
    let left = expect_ok(
        c.query("SELECT payload FROM outbox.dead_letters", &[])
            .await,
        "reading dead_letters",
    );
    assert_eq!(
        listed(left),
        quoted(&["expired-last-attempt"]),
        "dead letters left"
    );
}
