//! enqueue and enqueue_batch: transactional visibility, batches, scheduling.

use crate::common::*;
use outbox_tests::TestDb;
use serde_json::json;

#[tokio::test]
async fn rolled_back_enqueue_is_never_claimed() {
    let db = TestDb::new().await;
    let mut producer = db.client().await;
    let relay = db.client().await;

    let tx = producer.transaction().await.unwrap();
    tx.query_one(
        "SELECT outbox.enqueue('orders', '{\"phantom\": true}')",
        &[],
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let kept = enqueue(&producer, "orders", json!({"phantom": false})).await;

    let claimed = claim(&relay, "relay", 100).await;
    assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), vec![kept]);
    assert_eq!(claimed[0].payload, json!({"phantom": false}));
    assert_eq!(
        count(&relay, "SELECT count(*) FROM outbox.messages").await,
        1
    );
}

#[tokio::test]
async fn uncommitted_enqueue_is_invisible_until_commit() {
    let db = TestDb::new().await;
    let mut producer = db.client().await;
    let relay = db.client().await;

    let tx = producer.transaction().await.unwrap();
    let id: i64 = tx
        .query_one("SELECT outbox.enqueue('orders', '1')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        claim(&relay, "relay", 100).await.is_empty(),
        "an uncommitted message was claimed"
    );
    tx.commit().await.unwrap();
    let claimed = claim(&relay, "relay", 100).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, id);
}

#[tokio::test]
async fn claim_returns_what_enqueue_stored() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let id: i64 = c
        .query_one(
            "SELECT outbox.enqueue('orders.created', '{\"order\": 7}', key => 'order-7', \
             headers => '{\"trace-id\": \"t-1\"}')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let m = claim(&c, "relay", 1).await.remove(0);
    assert_eq!(m.id, id);
    assert_eq!(m.topic, "orders.created");
    assert_eq!(m.key.as_deref(), Some("order-7"));
    assert_eq!(m.payload, json!({"order": 7}));
    assert_eq!(m.headers, Some(json!({"trace-id": "t-1"})));
    assert_eq!(m.attempt, 1);
}

#[tokio::test]
async fn enqueue_batch_returns_ids_in_input_order() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let payloads: Vec<serde_json::Value> = (0..50).map(|i| json!({ "i": i })).collect();
    let keys: Vec<Option<String>> = (0..50)
        .map(|i| (i % 2 == 0).then(|| format!("k{}", i % 5)))
        .collect();
    let ids: Vec<i64> = c
        .query_one(
            "SELECT outbox.enqueue_batch('orders', $1, keys => $2)",
            &[&payloads, &keys],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ids.len(), 50);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not ascending: {ids:?}"
    );
    let stored = c
        .query("SELECT payload, key FROM outbox.messages ORDER BY id", &[])
        .await
        .unwrap();
    for (i, row) in stored.iter().enumerate() {
        assert_eq!(row.get::<_, serde_json::Value>(0), payloads[i]);
        assert_eq!(row.get::<_, Option<String>>(1), keys[i]);
    }
    let empty: Vec<i64> = c
        .query_one("SELECT outbox.enqueue_batch('orders', '{}'::jsonb[])", &[])
        .await
        .unwrap()
        .get(0);
    assert!(empty.is_empty());
}

#[tokio::test]
async fn future_deliver_at_waits_until_due() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "SELECT outbox.enqueue('orders', '1', deliver_at => now() + interval '1 hour')",
    )
    .await
    .unwrap();
    let now_id = enqueue(&c, "orders", json!(2)).await;
    let first = claim(&c, "relay", 10).await;
    assert_eq!(first.iter().map(|m| m.id).collect::<Vec<_>>(), vec![now_id]);
    assert_eq!(count(&c, "SELECT scheduled FROM outbox.stats()").await, 1);
    make_due(&c).await;
    assert_eq!(claim(&c, "relay", 10).await.len(), 1);
}

#[tokio::test]
async fn topic_filter_claims_only_named_topics() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let a = enqueue(&c, "alpha", json!(1)).await;
    let b = enqueue(&c, "beta", json!(2)).await;
    let g = enqueue(&c, "gamma", json!(3)).await;
    let rows = c
        .query(
            "SELECT id FROM outbox.claim('relay', 10, topics => ARRAY['alpha', 'gamma'])",
            &[],
        )
        .await
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![a, g]);
    assert_eq!(claim_ids(&c, "relay", 10).await, vec![b]);
}

#[tokio::test]
async fn max_attempts_defaults_to_the_setting() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("SET outbox.max_attempts = 3; SELECT outbox.enqueue('orders', '1')")
        .await
        .unwrap();
    c.batch_execute("SELECT outbox.enqueue('orders', '2', max_attempts => 9)")
        .await
        .unwrap();
    let rows = c
        .query("SELECT max_attempts FROM outbox.messages ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(got, vec![3, 9]);
}
