//! The published-message history: off by default (complete records
//! nothing), on with `outbox.retention` (complete and complete_batch record
//! what they finish, from the log and the side table, with the time, the
//! attempts and the relay), removed by `cleanup()` in bounded batches, also
//! while relays complete concurrently.

use crate::common::*;
use outbox_tests::tokio_postgres::Client;
use outbox_tests::{quote_ident, TestDb};
use serde_json::json;

/// A database whose sessions keep published messages for `retention`
/// (set as the docs say: per database, by a superuser).
async fn with_retention(retention: &str) -> TestDb {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET outbox.retention = '{retention}'",
            quote_ident(db.name())
        ))
        .await
        .unwrap();
    db
}

async fn published(c: &Client) -> Vec<(i64, i32, Option<String>, bool)> {
    c.query(
        "SELECT id, attempts, published_by, \
                published_at BETWEEN now() - interval '1 minute' AND now() + interval '1 minute' \
         FROM outbox.published ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

#[tokio::test]
async fn with_retention_off_complete_records_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    enqueue(&c, "orders", json!(1)).await;
    enqueue(&c, "orders", json!(2)).await;
    let batch = claim(&c, "relay", 10).await;
    assert_eq!(fail(&c, &batch[1], "503").await, "retrying");
    assert!(complete(&c, &batch[0]).await);
    make_due(&c).await;
    let retry = claim(&c, "relay", 10).await;
    assert!(
        complete(&c, &retry[0]).await,
        "completed from the side table"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.published").await, 0);
    let shown: i64 = count(&c, "SELECT count(*) FROM outbox.list_messages()").await;
    assert_eq!(
        shown, 0,
        "published messages are gone when nothing keeps them"
    );
}

#[tokio::test]
async fn with_retention_on_complete_records_time_attempts_and_relay() {
    let db = with_retention("1h").await;
    let c = db.client().await;
    let a = enqueue(&c, "orders", json!({"n": 1})).await;
    let b = enqueue(&c, "orders", json!({"n": 2})).await;
    let d = enqueue(&c, "orders", json!({"n": 3})).await;
    let batch = claim(&c, "relay-a", 10).await;
    assert_eq!(batch.len(), 3);
    // b fails once and is published from the side table on its second
    // attempt; d dies; a goes out from the log batch.
    assert_eq!(fail(&c, &batch[1], "503").await, "retrying");
    let dead: String = c
        .query_one(
            "SELECT state FROM outbox.fail($1, $2, 'bad', permanent => true)",
            &[&d, &batch[2].token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dead, "dead");
    let n: i32 = c
        .query_one(
            "SELECT outbox.complete_batch($1, $2)",
            &[&vec![a], &batch[0].token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // A stale token records nothing.
    assert!(!complete(&c, &batch[0]).await);
    make_due(&c).await;
    let retry = claim(&c, "relay-b", 10).await;
    assert_eq!(retry[0].id, b);
    assert!(complete(&c, &retry[0]).await);
    assert_eq!(
        published(&c).await,
        [
            (a, 1, Some("relay-a".to_owned()), true),
            (b, 2, Some("relay-b".to_owned()), true)
        ]
    );
    let row = c
        .query_one(
            "SELECT topic, payload FROM outbox.published WHERE id = $1",
            &[&b],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, serde_json::Value>(1)),
        ("orders".to_owned(), json!({"n": 2}))
    );

    // Released messages are not published; neither are dead letters.
    let e = enqueue(&c, "orders", json!({"n": 4})).await;
    let m = claim(&c, "relay-a", 10).await.remove(0);
    assert_eq!(m.id, e);
    let released: bool = c
        .query_one("SELECT outbox.release($1, $2)", &[&m.id, &m.token])
        .await
        .unwrap()
        .get(0);
    assert!(released);
    assert_eq!(published(&c).await.len(), 2);
}

#[tokio::test]
async fn cleanup_removes_history_past_the_retention_oldest_first() {
    let db = with_retention("1h").await;
    let c = db.client().await;
    for n in 0..5 {
        enqueue(&c, "orders", json!(n)).await;
    }
    let batch = claim(&c, "relay", 10).await;
    for m in &batch[..3] {
        assert!(complete(&c, m).await);
    }
    let removed: i64 = c
        .query_one("SELECT outbox.cleanup()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(removed, 0, "nothing is older than an hour");
    c.batch_execute("SET outbox.test_clock_offset = '30min'")
        .await
        .unwrap();
    for m in &batch[3..] {
        assert!(complete(&c, m).await);
    }
    c.batch_execute("SET outbox.test_clock_offset = '61min'")
        .await
        .unwrap();
    let removed: i64 = c
        .query_one("SELECT outbox.cleanup(2)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(removed, 2, "at most max_rows");
    let removed: i64 = c
        .query_one("SELECT outbox.cleanup()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(removed, 1, "the third of the first hour");
    let left: Vec<i64> = published(&c).await.iter().map(|p| p.0).collect();
    assert_eq!(left, [batch[3].id, batch[4].id], "the younger ones stay");

    // Retention off in a session (a superuser's SET): cleanup empties the table.
    c.batch_execute("SET outbox.retention = 0").await.unwrap();
    let removed: i64 = c
        .query_one("SELECT outbox.cleanup()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(removed, 2);
}

/// Relays completing while two cleaners remove the history: no error, no
/// deadlock, and every completed message is either still in the history
/// or was counted by a cleaner.
#[tokio::test]
async fn cleaners_and_completing_relays_run_together() {
    const MESSAGES: i64 = 400;
    let db = with_retention("1s").await;
    let c = db.client().await;
    let payloads: Vec<serde_json::Value> = (0..MESSAGES).map(|n| json!(n)).collect();
    c.execute("SELECT outbox.enqueue_batch('orders', $1)", &[&payloads])
        .await
        .unwrap();
    let mut relays = Vec::new();
    for r in 0..2 {
        let c = db.client().await;
        relays.push(tokio::spawn(async move {
            let mut done = 0i64;
            loop {
                let batch = claim(&c, &format!("relay-{r}"), 25).await;
                if batch.is_empty() {
                    return done;
                }
                let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
                let n: i32 = c
                    .query_one(
                        "SELECT outbox.complete_batch($1, $2)",
                        &[&ids, &batch[0].token],
                    )
                    .await
                    .unwrap()
                    .get(0);
                done += i64::from(n);
            }
        }));
    }
    let mut cleaners = Vec::new();
    for _ in 0..2 {
        let c = db.client().await;
        cleaners.push(tokio::spawn(async move {
            c.batch_execute("SET outbox.test_clock_offset = '2s'")
                .await
                .unwrap();
            let mut removed = 0i64;
            for _ in 0..40 {
                let n: i64 = c
                    .query_one("SELECT outbox.cleanup(20)", &[])
                    .await
                    .unwrap()
                    .get(0);
                removed += n;
            }
            removed
        }));
    }
    let mut completed = 0;
    for r in relays {
        completed += r.await.unwrap();
    }
    let mut removed = 0;
    for t in cleaners {
        removed += t.await.unwrap();
    }
    assert_eq!(completed, MESSAGES);
    let kept = count(&c, "SELECT count(*) FROM outbox.published").await;
    assert_eq!(kept + removed, MESSAGES, "kept {kept} + removed {removed}");
}

#[tokio::test]
async fn history_privileges_follow_the_jobs() {
    let db = with_retention("1h").await;
    let (p, r, a) = job_clients(&db, "h").await;
    enqueue(&p, "orders", json!(1)).await;
    let m = claim(&r, "relay", 10).await.remove(0);
    assert!(
        complete(&r, &m).await,
        "a relay records history through complete"
    );
    for (client, who) in [(&p, "producer"), (&r, "relay")] {
        for sql in [
            "SELECT count(*) FROM outbox.published",
            "SELECT count(*) FROM outbox.list_messages()",
            "SELECT count(*) FROM outbox.get_message(1)",
        ] {
            let e = client.query_one(sql, &[]).await.expect_err(sql);
            assert_eq!(sqlstate(&e), "42501", "{who}: {sql}");
        }
    }
    let e = r
        .batch_execute("SET outbox.retention = 0")
        .await
        .expect_err("relay sets retention");
    assert_eq!(sqlstate(&e), "42501");
    assert_eq!(count(&a, "SELECT count(*) FROM outbox.published").await, 1);
    assert_eq!(
        count(
            &a,
            "SELECT count(*) FROM outbox.list_messages(state => 'published')"
        )
        .await,
        1
    );
}
