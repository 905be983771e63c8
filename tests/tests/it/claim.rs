//! claim: disjoint concurrent batches, batch_size as a hard limit, lease
//! expiry and recovery.

use crate::common::*;
use outbox_tests::TestDb;
use serde_json::json;
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_get_disjoint_sets() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let payloads: Vec<serde_json::Value> = (0..600).map(|i| json!(i)).collect();
    c.query_one("SELECT outbox.enqueue_batch('orders', $1)", &[&payloads])
        .await
        .unwrap();

    let mut workers = Vec::new();
    for w in 0..4 {
        let client = db.client().await;
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = claim(&client, &format!("relay-{w}"), 25).await;
                if batch.is_empty() {
                    break mine;
                }
                assert!(batch.len() <= 25);
                // Settled like a relay does: a partition's next batch is
                // read once its last one is settled (docs/storage.md).
                for m in &batch {
                    assert!(complete(&client, m).await, "message {} was stale", m.id);
                }
                mine.extend(batch.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for w in workers {
        let ids = w.await.unwrap();
        total += ids.len();
        for id in ids {
            assert!(seen.insert(id), "message {id} was claimed twice");
        }
    }
    assert_eq!(total, 600);
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.messages").await, 0);
}

#[tokio::test]
async fn claim_never_exceeds_batch_size() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let payloads: Vec<serde_json::Value> = (0..100).map(|i| json!(i)).collect();
    c.query_one("SELECT outbox.enqueue_batch('orders', $1)", &[&payloads])
        .await
        .unwrap();
    let mut sizes = Vec::new();
    loop {
        let batch = claim(&c, "relay", 7).await;
        if batch.is_empty() {
            break;
        }
        for m in &batch {
            complete(&c, m).await;
        }
        sizes.push(batch.len());
    }
    assert!(sizes.iter().all(|&n| n <= 7), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 100);
    assert_eq!(sizes.len(), 15, "{sizes:?}");
}

#[tokio::test]
async fn claim_hands_out_oldest_first_with_one_token_per_call() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(enqueue(&c, "orders", json!(i)).await);
    }
    let batch = claim(&c, "relay", 3).await;
    assert_eq!(
        batch.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[..3].to_vec()
    );
    assert!(batch.iter().all(|m| m.token == batch[0].token));
    let next = claim(&c, "relay", 3).await;
    assert_eq!(
        next.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[3..].to_vec()
    );
    assert_ne!(next[0].token, batch[0].token);
}

#[tokio::test]
async fn leased_messages_are_not_claimed_again_until_the_lease_expires() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let id = enqueue(&c, "orders", json!(1)).await;
    let first = claim(&c, "relay-a", 10).await;
    assert_eq!(first[0].attempt, 1);
    assert!(claim(&c, "relay-b", 10).await.is_empty());

    expire_leases(&c, &[id]).await;
    let second = claim(&c, "relay-b", 10).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, id);
    assert_eq!(second[0].attempt, 2, "a reclaim counts an attempt");
    assert_ne!(second[0].token, first[0].token);
    let owner: String = c
        .query_one(
            "SELECT lease_owner FROM outbox.messages WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "relay-b");
}

#[tokio::test]
async fn lease_expiring_on_the_last_attempt_dead_letters_the_message() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let id: i64 = c
        .query_one(
            "SELECT outbox.enqueue('orders', '1', max_attempts => 2)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    claim(&c, "relay", 1).await;
    expire_leases(&c, &[id]).await;
    assert_eq!(claim(&c, "relay", 1).await[0].attempt, 2);
    expire_leases(&c, &[id]).await;
    assert!(claim(&c, "relay", 1).await.is_empty());
    let row = c
        .query_one(
            "SELECT reason, attempts, last_error FROM outbox.dead_letters WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "lease_expired");
    assert_eq!(row.get::<_, i32>(1), 2);
    assert!(row.get::<_, String>(2).contains("lease expired"));
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.messages").await, 0);
}

#[tokio::test]
async fn default_lease_comes_from_the_setting() {
    let db = TestDb::new().await;
    let c = db.client().await;
    enqueue(&c, "orders", json!(1)).await;
    c.batch_execute("SET outbox.default_lease = '90s'")
        .await
        .unwrap();
    let secs: f64 = c
        .query_one(
            "SELECT extract(epoch FROM lease_expires_at - statement_timestamp())::float8 FROM outbox.claim('r')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!((secs - 90.0).abs() < 1.0, "{secs}");
}

/// The plan of a kept statement, planned the way a kept plan is (generic).
async fn generic_plan(
    c: &outbox_tests::tokio_postgres::Client,
    file: &str,
    types: &str,
    args: &str,
) -> String {
    let sql = std::fs::read_to_string(format!(
        "{}/../sql/queries/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    c.batch_execute(&format!(
        "SET plan_cache_mode = force_generic_plan; PREPARE plan_{n}({types}) AS {sql}",
        n = file.trim_end_matches(".sql")
    ))
    .await
    .unwrap();
    let plan: Vec<String> = c
        .query(
            &format!(
                "EXPLAIN (COSTS OFF) EXECUTE plan_{n}({args})",
                n = file.trim_end_matches(".sql")
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    plan.join("\n")
}

#[tokio::test]
async fn claim_finds_its_rows_by_index_not_by_scanning_the_table() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // 5000 messages in the log, 5000 in the side table (as if retrying).
    c.batch_execute(
        "SELECT outbox.enqueue_batch('orders', array_fill('{\"n\": 1}'::jsonb, ARRAY[5000]));
         INSERT INTO outbox.side (id, topic, payload, max_attempts)
             SELECT -g, 'orders', '{}', 5 FROM generate_series(1, 5000) AS g;
         ANALYZE outbox.log_0, outbox.log_1, outbox.log_2, outbox.side, outbox.partitions;",
    )
    .await
    .unwrap();
    let window = generic_plan(
        &c,
        "window_read.sql",
        "smallint, integer, bigint",
        "3, 100, 0",
    )
    .await;
    assert!(
        window.contains("log_0_part_id_idx"),
        "unexpected plan:\n{window}"
    );
    assert!(
        !window.contains("Seq Scan on log_"),
        "a window read scans a whole segment:\n{window}"
    );
    let side = generic_plan(
        &c,
        "claim_side.sql",
        "text, integer, timestamptz, text[], uuid, timestamptz, boolean",
        "'relay', 100, now() + interval '30 seconds', NULL, gen_random_uuid(), now(), false",
    )
    .await;
    assert!(side.contains("side_pkey"), "unexpected plan:\n{side}");
    assert!(
        !side.contains("Seq Scan on side"),
        "the side claim scans the whole table:\n{side}"
    );
}

#[tokio::test]
async fn messages_out_of_attempts_do_not_crowd_out_ready_ones() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // Three messages whose relay died on their last attempt, then one ready.
    let mut dying = Vec::new();
    for i in 0..3 {
        let id: i64 = c
            .query_one(
                "SELECT outbox.enqueue('orders', $1, max_attempts => 1)",
                &[&json!(i)],
            )
            .await
            .unwrap()
            .get(0);
        dying.push(id);
    }
    assert_eq!(claim(&c, "dead-relay", 3).await.len(), 3);
    expire_leases(&c, &dying).await;
    let ready = enqueue(&c, "orders", json!("ready")).await;

    // A batch of 2 meets only buried messages at first; claim keeps going.
    let batch = claim(&c, "relay", 2).await;
    assert_eq!(batch.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ready]);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM outbox.dead_letters WHERE reason = 'lease_expired'"
        )
        .await,
        3
    );
}

/// Found by the protocol model's review: a claim that diverted a key's
/// first message (not yet due) in one read must remember the key in its
/// next read, or the key's second message goes out first.
#[tokio::test]
async fn a_key_diverted_in_one_read_holds_back_its_next_message_in_the_next_read() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let later: i64 = c
        .query_one(
            "SELECT outbox.enqueue('orders', '1', key => 'k', deliver_at => now() + interval '1 hour')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    enqueue_keyed(&c, "orders", "k", 2).await;
    // Batch 1: the first read meets only the scheduled message.
    assert!(claim(&c, "relay", 1).await.is_empty());
    make_due(&c).await;
    assert_eq!(claim_ids(&c, "relay", 10).await, vec![later]);
}

/// A consumer that writes, claims, and enqueues a follow-up in one
/// transaction. Its transaction has an xid before the claim opens a window,
/// and a snapshot never lists its own transaction as running: a window
/// taken as it is counted the follow-up as already covered, and once
/// committed it was never delivered (found while chasing a pg_test that
/// failed only when tests ran concurrently).
#[tokio::test]
async fn a_transaction_that_claims_then_enqueues_loses_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let other = db.client().await;
    // One key: both messages in one partition, so the follow-up lands in
    // the window the consumer's own claim opened.
    let first = enqueue_keyed(&c, "orders", "order-1", 1).await;
    c.batch_execute("BEGIN; SELECT pg_current_xact_id();")
        .await
        .unwrap();
    // A transaction that ends after the consumer took its xid: the
    // snapshot's xmax is then above that xid.
    other
        .batch_execute("CREATE TEMP TABLE t (); DROP TABLE t;")
        .await
        .unwrap();
    let got = claim(&c, "consumer", 10).await;
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [first]);
    assert!(complete(&c, &got[0]).await);
    let follow_up = enqueue_keyed(&c, "orders", "order-1", 2).await;
    let again = claim_ids(&c, "consumer", 10).await;
    assert!(
        !again.contains(&follow_up),
        "a transaction was handed its own uncommitted message"
    );
    c.batch_execute("COMMIT").await.unwrap();

    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.extend(claim_ids(&other, "relay", 10).await);
        if seen.contains(&follow_up) {
            break;
        }
    }
    assert_eq!(seen, [follow_up], "the follow-up was lost");
}
