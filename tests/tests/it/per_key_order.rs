//! Per-key FIFO: a message is never handed out while an older unfinished
//! message with the same key exists.

use crate::common::*;
use outbox_tests::TestDb;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `(key, id)` in the order claim handed messages out.
type HandOutLog = Vec<(Option<String>, i64)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_key_order_holds_under_concurrent_claimers() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // 8 keys x 25 messages, interleaved, plus unkeyed noise.
    let mut expected: HashMap<String, Vec<i64>> = HashMap::new();
    for n in 0..25 {
        for k in 0..8 {
            let key = format!("key-{k}");
            let id = enqueue_keyed(&c, "orders", &key, n).await;
            expected.entry(key).or_default().push(id);
        }
        enqueue(&c, "orders", json!({ "noise": n })).await;
    }

    // Each worker logs (key, id) right after claim returns and before it
    // completes; the next message of a key can only be claimed after that
    // completion commits, so the log is the true hand-out order per key.
    let log: Arc<Mutex<HandOutLog>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..4 {
        let client = db.client().await;
        let log = log.clone();
        workers.push(tokio::spawn(async move {
            let mut idle = 0;
            while idle < 3 {
                let batch = claim(&client, &format!("relay-{w}"), 5).await;
                if batch.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                {
                    let mut log = log.lock().unwrap();
                    for m in &batch {
                        log.push((m.key.clone(), m.id));
                    }
                }
                for m in &batch {
                    assert!(complete(&client, m).await);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    // Workers stop after a few empty claims; finish whatever is left.
    loop {
        let batch = claim(&c, "sweeper", 50).await;
        if batch.is_empty() {
            break;
        }
        for m in &batch {
            log.lock().unwrap().push((m.key.clone(), m.id));
            complete(&c, m).await;
        }
    }
    let log = log.lock().unwrap();
    let mut per_key: HashMap<String, Vec<i64>> = HashMap::new();
    for (key, id) in log.iter() {
        if let Some(key) = key {
            per_key.entry(key.clone()).or_default().push(*id);
        }
    }
    assert_eq!(
        per_key, expected,
        "per-key hand-out order differs from enqueue order"
    );
    assert_eq!(log.len(), 8 * 25 + 25);
}

#[tokio::test]
async fn a_later_message_waits_while_the_head_of_its_key_is_leased() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let first = enqueue_keyed(&c, "orders", "order-1", 1).await;
    let second = enqueue_keyed(&c, "orders", "order-1", 2).await;
    let other = enqueue_keyed(&c, "orders", "order-2", 1).await;
    let batch = claim(&c, "relay", 10).await;
    assert_eq!(
        batch.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![first, other]
    );
    assert!(claim(&c, "relay", 10).await.is_empty());
    complete(&c, &batch[0]).await;
    assert_eq!(claim_ids(&c, "relay", 10).await, vec![second]);
}

#[tokio::test]
async fn per_key_order_holds_across_a_retry() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let first = enqueue_keyed(&c, "orders", "order-1", 1).await;
    let second = enqueue_keyed(&c, "orders", "order-1", 2).await;

    let m = claim(&c, "relay", 10).await.remove(0);
    assert_eq!(m.id, first);
    assert_eq!(fail(&c, &m, "broker down").await, "retrying");
    // The head is scheduled for later: its key is blocked, and visibly so.
    assert!(
        claim(&c, "relay", 10).await.is_empty(),
        "a later message overtook a retrying one"
    );
    let blocked = c
        .query_one(
            "SELECT key, head_id, head_state, waiting FROM outbox.blocked_keys()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(blocked.get::<_, String>(0), "order-1");
    assert_eq!(blocked.get::<_, i64>(1), first);
    assert_eq!(blocked.get::<_, String>(2), "retrying");
    assert_eq!(blocked.get::<_, i64>(3), 1);

    make_due(&c).await;
    let retry = claim(&c, "relay", 10).await;
    assert_eq!(
        retry.iter().map(|m| (m.id, m.attempt)).collect::<Vec<_>>(),
        vec![(first, 2)]
    );
    complete(&c, &retry[0]).await;
    assert_eq!(claim(&c, "relay", 10).await[0].id, second);
}

#[tokio::test]
async fn a_dead_head_unblocks_its_key() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let first = enqueue_keyed(&c, "orders", "order-1", 1).await;
    let second = enqueue_keyed(&c, "orders", "order-1", 2).await;
    let m = claim(&c, "relay", 10).await.remove(0);
    assert_eq!(m.id, first);
    c.query_one(
        "SELECT outbox.fail($1, $2, 'bad payload', permanent => true)",
        &[&m.id, &m.token],
    )
    .await
    .unwrap();
    assert_eq!(claim(&c, "relay", 10).await[0].id, second);
}
