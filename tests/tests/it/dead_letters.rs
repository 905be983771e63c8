//! Dead letters: listing, requeue (replay), purge, and stats.

use crate::common::*;
use outbox_tests::TestDb;
use serde_json::json;

async fn kill(c: &outbox_tests::tokio_postgres::Client, topic: &str, n: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        enqueue(c, topic, json!(i)).await;
    }
    for m in claim(c, "relay", 100).await {
        c.query_one(
            "SELECT outbox.fail($1, $2, 'nope', permanent => true)",
            &[&m.id, &m.token],
        )
        .await
        .unwrap();
        ids.push(m.id);
    }
    ids
}

#[tokio::test]
async fn dead_letters_are_listed_with_their_error_attempts_and_time_of_death() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let ids = kill(&c, "orders", 2).await;
    let rows = c
        .query("SELECT id, last_error, attempts, reason, died_at IS NOT NULL FROM outbox.list_dead('orders')", &[])
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>(),
        ids
    );
    assert!(rows.iter().all(|r| r.get::<_, String>(1) == "nope"
        && r.get::<_, i32>(2) == 1
        && r.get::<_, String>(3) == "permanent"
        && r.get::<_, bool>(4)));
    assert!(c
        .query("SELECT * FROM outbox.list_dead('other')", &[])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn requeued_dead_letters_are_delivered_again_with_the_same_id() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let ids = kill(&c, "orders", 3).await;
    let n: i32 = c
        .query_one("SELECT outbox.requeue_dead($1)", &[&vec![ids[0]]])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let again = claim(&c, "relay", 10).await;
    assert_eq!(
        again.iter().map(|m| (m.id, m.attempt)).collect::<Vec<_>>(),
        vec![(ids[0], 1)]
    );
    let n: i32 = c
        .query_one("SELECT outbox.requeue_dead_topic('orders')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.dead_letters").await,
        0
    );
    // A new message still gets a fresh id above every requeued one.
    let fresh = enqueue(&c, "orders", json!("new")).await;
    assert!(fresh > ids[2]);
}

#[tokio::test]
async fn unknown_dead_letter_ids_are_an_error_and_change_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let ids = kill(&c, "orders", 1).await;
    let before = snapshot(&c).await;
    let e = c
        .query_one("SELECT outbox.requeue_dead($1)", &[&vec![ids[0], 999_999]])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "P0002");
    let e = c
        .query_one("SELECT outbox.purge_dead($1)", &[&vec![ids[0], 999_999]])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "P0002");
    assert_eq!(snapshot(&c).await, before);
}

#[tokio::test]
async fn purge_dead_deletes_by_id_or_topic() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let a = kill(&c, "alpha", 2).await;
    kill(&c, "beta", 2).await;
    let n: i32 = c
        .query_one("SELECT outbox.purge_dead($1)", &[&vec![a[0]]])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let purge = |older_than: Option<&'static str>| {
        let c = &c;
        async move {
            c.query_one(
                "SELECT outbox.purge_dead_topic('beta', older_than => $1::text::interval)",
                &[&older_than],
            )
            .await
            .unwrap()
            .get::<_, i32>(0)
        }
    };
    assert_eq!(
        purge(Some("1 hour")).await,
        0,
        "nothing has been dead for an hour"
    );
    // Found by the fuzzer: an age beyond the calendar was PostgreSQL's 22008
    // "timestamp out of range"; nothing is that old, so nothing is purged.
    assert_eq!(
        purge(Some("178000000 years")).await,
        0,
        "nothing died before the calendar began"
    );
    // Moved past the letters' death (the outbox's clock, no sleep), they go.
    c.batch_execute("SET outbox.test_clock_offset = '2h'")
        .await
        .unwrap();
    assert_eq!(
        purge(Some("1 hour")).await,
        2,
        "dead for two hours by the outbox's clock"
    );
    kill(&c, "beta", 2).await;
    assert_eq!(purge(None).await, 2);
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.dead_letters").await,
        1
    );
}

#[tokio::test]
async fn stats_counts_every_state_per_topic() {
    let db = TestDb::new().await;
    let c = db.client().await;
    kill(&c, "orders", 1).await;
    enqueue(&c, "orders", json!("leased")).await;
    claim(&c, "relay", 1).await;
    enqueue(&c, "orders", json!("ready")).await;
    enqueue_keyed(&c, "orders", "k", 1).await;
    enqueue_keyed(&c, "orders", "k", 2).await;
    c.batch_execute("SELECT outbox.enqueue('orders', '1', deliver_at => now() + interval '1 day')")
        .await
        .unwrap();
    enqueue(&c, "payments", json!(1)).await;
    let rows = c
        .query(
            "SELECT topic, ready, blocked, scheduled, leased, dead, oldest_ready_age IS NOT NULL FROM outbox.stats()",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, i64, i64, i64, i64, i64, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("orders".to_owned(), 3, 1, 1, 1, 1, true),
            ("payments".to_owned(), 1, 0, 0, 0, 0, true),
        ]
    );
}

#[tokio::test]
async fn lag_counts_from_when_a_message_became_ready() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("SELECT outbox.enqueue('orders', '1', deliver_at => now() - interval '1 day')")
        .await
        .unwrap();
    let lag: f64 = c
        .query_one(
            "SELECT extract(epoch FROM oldest_ready_age)::float8 FROM outbox.stats()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        lag < 60.0,
        "a deliver_at in the past counted as {lag} s of lag"
    );
}

#[tokio::test]
async fn requeue_dead_topic_null_requeues_every_topic() {
    let db = TestDb::new().await;
    let c = db.client().await;
    kill(&c, "alpha", 1).await;
    kill(&c, "beta", 1).await;
    let n: i32 = c
        .query_one("SELECT outbox.requeue_dead_topic(NULL)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}
