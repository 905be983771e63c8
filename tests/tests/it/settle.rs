//! complete, release and extend, and the fence: a stale lease token changes
//! nothing and says so.

use crate::common::*;
use outbox_tests::TestDb;
use serde_json::json;

#[tokio::test]
async fn stale_token_cannot_complete_fail_release_or_extend() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let id = enqueue(&c, "orders", json!(1)).await;
    let stale = claim(&c, "relay-a", 1).await.remove(0);
    expire_leases(&c, &[id]).await;
    let fresh = claim(&c, "relay-b", 1).await.remove(0);
    assert_eq!(fresh.id, id);
    let before = snapshot(&c).await;

    assert!(!complete(&c, &stale).await);
    let n: i32 = c
        .query_one(
            "SELECT outbox.complete_batch(ARRAY[$1::bigint], $2)",
            &[&id, &stale.token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert_eq!(fail(&c, &stale, "late failure").await, "stale");
    let released: bool = c
        .query_one("SELECT outbox.release($1, $2)", &[&id, &stale.token])
        .await
        .unwrap()
        .get(0);
    assert!(!released);
    let extended: Option<chrono::DateTime<chrono::Utc>> = c
        .query_one(
            "SELECT outbox.extend($1, $2, '1 minute')",
            &[&id, &stale.token],
        )
        .await
        .unwrap()
        .get(0);
    assert!(extended.is_none());
    assert_eq!(
        snapshot(&c).await,
        before,
        "a stale token changed the outbox"
    );

    assert!(complete(&c, &fresh).await);
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.messages").await, 0);
}

#[tokio::test]
async fn complete_twice_is_stale_the_second_time() {
    let db = TestDb::new().await;
    let c = db.client().await;
    enqueue(&c, "orders", json!(1)).await;
    let m = claim(&c, "relay", 1).await.remove(0);
    assert!(complete(&c, &m).await);
    assert!(!complete(&c, &m).await);
}

#[tokio::test]
async fn batch_complete_counts_what_the_token_still_held() {
    let db = TestDb::new().await;
    let c = db.client().await;
    for i in 0..4 {
        enqueue(&c, "orders", json!(i)).await;
    }
    let batch = claim(&c, "relay-a", 4).await;
    let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
    // One message of the batch is lost to another relay after expiry.
    expire_leases(&c, &ids[..1]).await;
    let other = claim(&c, "relay-b", 1).await.remove(0);
    assert_eq!(other.id, ids[0]);

    let n: i32 = c
        .query_one(
            "SELECT outbox.complete_batch($1, $2)",
            &[&ids, &batch[0].token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    let left: Vec<i64> = c
        .query("SELECT id FROM outbox.messages", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec![ids[0]]);
}

#[tokio::test]
async fn release_returns_messages_without_spending_an_attempt() {
    let db = TestDb::new().await;
    let c = db.client().await;
    enqueue(&c, "orders", json!(1)).await;
    enqueue(&c, "orders", json!(2)).await;
    let batch = claim(&c, "relay", 2).await;
    let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
    let n: i32 = c
        .query_one(
            "SELECT outbox.release_batch($1, $2)",
            &[&ids, &batch[0].token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let again = claim(&c, "relay", 2).await;
    assert_eq!(
        again.iter().map(|m| m.attempt).collect::<Vec<_>>(),
        vec![1, 1]
    );
}

#[tokio::test]
async fn extend_keeps_a_message_from_being_reclaimed() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let id = enqueue(&c, "orders", json!(1)).await;
    let m = claim(&c, "relay-a", 1).await.remove(0);
    expire_leases(&c, &[id]).await;
    // Nobody reclaimed yet: the holder may still extend.
    let until: Option<chrono::DateTime<chrono::Utc>> = c
        .query_one(
            "SELECT outbox.extend($1, $2, '10 minutes')",
            &[&id, &m.token],
        )
        .await
        .unwrap()
        .get(0);
    assert!(until.unwrap() > chrono::Utc::now() + chrono::Duration::minutes(9));
    assert!(claim(&c, "relay-b", 1).await.is_empty());
    let n: i32 = c
        .query_one(
            "SELECT outbox.extend_batch(ARRAY[$1::bigint], $2, '1 minute')",
            &[&id, &m.token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    assert!(complete(&c, &m).await);
}

/// Waits until backend `pid` is blocked on a lock.
async fn until_waiting_on_a_lock(observer: &outbox_tests::tokio_postgres::Client, pid: i32) {
    outbox_tests::wait_until(std::time::Duration::from_secs(20), || async {
        observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                &[&pid],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    })
    .await;
}

#[tokio::test]
async fn a_complete_racing_a_reclaim_is_fenced() {
    let db = TestDb::new().await;
    let observer = db.client().await;
    let relay_a = std::sync::Arc::new(db.client().await);
    let mut relay_b = db.client().await;
    let id = enqueue(&observer, "orders", json!(1)).await;
    let a = claim(&relay_a, "relay-a", 1).await.remove(0);
    expire_leases(&observer, &[id]).await;

    // B re-claims inside a transaction: the row is locked, not yet committed.
    let tx = relay_b.transaction().await.unwrap();
    let rows = tx
        .query(
            "SELECT id, lease_token FROM outbox.claim('relay-b', 1)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let b_token: uuid::Uuid = rows[0].get(1);

    // A's late complete waits for B's row lock, then re-checks the token.
    let a_pid: i32 = relay_a
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let late = tokio::spawn({
        let relay_a = relay_a.clone();
        async move { complete(&relay_a, &a).await }
    });
    until_waiting_on_a_lock(&observer, a_pid).await;
    tx.commit().await.unwrap();
    assert!(
        !late.await.unwrap(),
        "a stale token completed a re-claimed message"
    );

    let token: uuid::Uuid = observer
        .query_one(
            "SELECT lease_token FROM outbox.messages WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(token, b_token, "the message must still be B's");
}

#[tokio::test]
async fn a_reclaim_racing_a_complete_takes_nothing() {
    let db = TestDb::new().await;
    let observer = db.client().await;
    let mut relay_a = db.client().await;
    let relay_b = db.client().await;
    let id = enqueue(&observer, "orders", json!(1)).await;
    let a = claim(&relay_a, "relay-a", 1).await.remove(0);
    expire_leases(&observer, &[id]).await;

    // A completes inside a transaction (row deleted, not yet committed)...
    let tx = relay_a.transaction().await.unwrap();
    let done: bool = tx
        .query_one("SELECT outbox.complete($1, $2)", &[&a.id, &a.token])
        .await
        .unwrap()
        .get(0);
    assert!(done);
    // ...while B's claim skips the locked row instead of re-delivering it.
    assert!(claim(&relay_b, "relay-b", 10).await.is_empty());
    tx.commit().await.unwrap();
    assert_eq!(
        count(&observer, "SELECT count(*) FROM outbox.messages").await,
        0
    );
    assert!(claim(&relay_b, "relay-b", 10).await.is_empty());
}

/// One claim's batch spans three partitions and its lease expires. While
/// another transaction holds the first partition (as a claim recovering it
/// does until it commits), a late `fail` and a late `complete` of messages
/// in the other two go through at once: each locks only the partitions
/// holding an id it names. Locking every partition of the token made two
/// claims recovering sibling partitions, or a late settle and a recovery,
/// wait on each other in a cycle (a deadlock a review found, d976738).
#[tokio::test]
async fn settling_part_of_a_batch_does_not_wait_for_sibling_partitions() {
    let db = TestDb::new().await;
    let observer = db.client().await;
    // Keyless: a message's partition is its id modulo the count, so three
    // ids in a row are in three partitions.
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(enqueue(&observer, "orders", json!(n)).await);
    }
    let batch = claim(&observer, "relay-a", 10).await;
    assert_eq!(batch.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    let part_of = |id: i64| {
        let c = &observer;
        async move {
            c.query_one("SELECT part FROM outbox.log WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, i16>(0)
        }
    };
    let first_part = part_of(ids[0]).await;
    assert_ne!(first_part, part_of(ids[1]).await);
    assert_ne!(first_part, part_of(ids[2]).await);
    expire_leases(&observer, &ids).await;

    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM outbox.partitions WHERE part = $1 FOR UPDATE",
        &[&first_part],
    )
    .await
    .unwrap();

    // A wait would end in 55P03 here instead of passing.
    let late = db.client().await;
    late.batch_execute("SET lock_timeout = '5s'").await.unwrap();
    assert_eq!(
        fail(&late, &batch[1], "broker said no").await,
        "retrying",
        "a late fail of the second partition's message"
    );
    assert!(
        complete(&late, &batch[2]).await,
        "a late complete of the third partition's message"
    );
    tx.commit().await.unwrap();

    // The first message is still there, for the next claim to recover.
    let unfinished: Vec<i64> = observer
        .query("SELECT id FROM outbox.messages ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        unfinished,
        vec![ids[0], ids[1]],
        "nothing lost, the completed one gone"
    );
}
