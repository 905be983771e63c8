//! fail: the backoff schedule computed in the database, dead-lettering,
//! permanent failures, and what is stored as the error.

use crate::common::*;
use outbox_tests::TestDb;
use serde_json::json;

/// Seconds between now (the fail statement) and the next attempt.
async fn fail_delay(
    c: &outbox_tests::tokio_postgres::Client,
    m: &Claimed,
    extra: &str,
) -> (String, Option<f64>) {
    let sql = format!(
        "SELECT state, extract(epoch FROM next_attempt_at - statement_timestamp())::float8 \
         FROM outbox.fail($1, $2, 'boom'{extra})"
    );
    let row = c.query_one(sql.as_str(), &[&m.id, &m.token]).await.unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn backoff_doubles_up_to_the_cap_then_dead_letters() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "SET outbox.retry_jitter = 0; SET outbox.retry_base = '1s'; SET outbox.retry_cap = '5s';
         SELECT outbox.enqueue('orders', '1', max_attempts => 5)",
    )
    .await
    .unwrap();
    let mut delays = Vec::new();
    for attempt in 1..=4 {
        let m = claim(&c, "relay", 1).await.remove(0);
        assert_eq!(m.attempt, attempt);
        let (state, delay) = fail_delay(&c, &m, "").await;
        assert_eq!(state, "retrying");
        delays.push(delay.unwrap());
        assert!(
            claim(&c, "relay", 1).await.is_empty(),
            "claimed before the retry was due"
        );
        make_due(&c).await;
    }
    assert_eq!(delays, vec![1.0, 2.0, 4.0, 5.0]);
    let m = claim(&c, "relay", 1).await.remove(0);
    assert_eq!(fail_delay(&c, &m, "").await, ("dead".to_owned(), None));
    let row = c
        .query_one(
            "SELECT reason, attempts, last_error FROM outbox.dead_letters WHERE id = $1",
            &[&m.id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "max_attempts");
    assert_eq!(row.get::<_, i32>(1), 5);
    assert_eq!(row.get::<_, String>(2), "boom");
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.messages").await, 0);
}

#[tokio::test]
async fn jitter_only_shortens_the_delay() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("SET outbox.retry_jitter = 0.5; SET outbox.retry_base = '10s'")
        .await
        .unwrap();
    for _ in 0..20 {
        enqueue(&c, "orders", json!(1)).await;
    }
    for m in claim(&c, "relay", 20).await {
        let (_, delay) = fail_delay(&c, &m, "").await;
        let d = delay.unwrap();
        assert!((5.0..=10.0).contains(&d), "{d}");
    }
}

#[tokio::test]
async fn explicit_retry_in_overrides_the_backoff() {
    let db = TestDb::new().await;
    let c = db.client().await;
    enqueue(&c, "orders", json!(1)).await;
    let m = claim(&c, "relay", 1).await.remove(0);
    let (state, delay) = fail_delay(&c, &m, ", retry_in => '42 seconds'").await;
    assert_eq!(state, "retrying");
    assert_eq!(delay, Some(42.0));
}

#[tokio::test]
async fn permanent_failure_dead_letters_at_once() {
    let db = TestDb::new().await;
    let c = db.client().await;
    enqueue(&c, "orders", json!({"bad": true})).await;
    let m = claim(&c, "relay", 1).await.remove(0);
    let (state, _) = fail_delay(&c, &m, ", permanent => true").await;
    assert_eq!(state, "dead");
    let row = c
        .query_one(
            "SELECT reason, attempts, payload FROM outbox.dead_letters WHERE id = $1",
            &[&m.id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "permanent");
    assert_eq!(row.get::<_, i32>(1), 1);
    assert_eq!(row.get::<_, serde_json::Value>(2), json!({"bad": true}));
}

#[tokio::test]
async fn stored_error_is_truncated_and_scrubbed_of_credentials() {
    let db = TestDb::new().await;
    let c = db.client().await;
    enqueue(&c, "orders", json!(1)).await;
    enqueue(&c, "orders", json!(2)).await;
    let batch = claim(&c, "relay", 2).await;
    let secret = "connect to nats://app:hunter2@broker:4222 failed; password=swordfish";
    c.query_one(
        "SELECT outbox.fail($1, $2, $3)",
        &[&batch[0].id, &batch[0].token, &secret],
    )
    .await
    .unwrap();
    let long = format!("{} {}", "x".repeat(5000), "token=abc");
    c.query_one(
        "SELECT outbox.fail($1, $2, $3)",
        &[&batch[1].id, &batch[1].token, &long],
    )
    .await
    .unwrap();
    let rows = c
        .query("SELECT last_error FROM outbox.messages ORDER BY id", &[])
        .await
        .unwrap();
    let first: String = rows[0].get(0);
    assert_eq!(
        first,
        "connect to nats://app:***@broker:4222 failed; password=***"
    );
    let second: String = rows[1].get(0);
    assert!(second.len() <= 2048, "{}", second.len());
    assert!(second.ends_with("[truncated]"));
}

#[tokio::test]
async fn failing_without_an_error_text_keeps_the_previous_one() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("SELECT outbox.enqueue('orders', '1', max_attempts => 2)")
        .await
        .unwrap();
    let m = claim(&c, "relay", 1).await.remove(0);
    assert_eq!(fail(&c, &m, "broker said 503").await, "retrying");
    make_due(&c).await;
    let m = claim(&c, "relay", 1).await.remove(0);
    let state: String = c
        .query_one("SELECT state FROM outbox.fail($1, $2)", &[&m.id, &m.token])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "dead");
    let error: String = c
        .query_one(
            "SELECT last_error FROM outbox.dead_letters WHERE id = $1",
            &[&m.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(error, "broker said 503");
}
