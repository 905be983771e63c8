//! outbox.set_partitions(): the partition count (the cap on batches out at
//! once) changes only while the log holds nothing unfinished, keys spread
//! over the new count, per-key order and exactly-once hand-out hold across
//! a shrink and a grow, and a producer in flight is waited for.

use crate::common::*;
use outbox_tests::{wait_until, TestDb};
use std::collections::HashMap;
use std::time::Duration;

/// An upper bound on waiting for something that must happen.
const MUST_HAPPEN: Duration = Duration::from_secs(30);

async fn set_partitions(c: &outbox_tests::tokio_postgres::Client, n: i32) -> i32 {
    c.query_one("SELECT outbox.set_partitions($1)", &[&n])
        .await
        .unwrap()
        .get(0)
}

/// The partition count producers use now (outbox.log_segment's value,
/// schema.sql).
const COUNT: &str = "SELECT last_value / 3221225472 FROM outbox.log_segment";

/// Claim and complete until nothing is left; (key, id) in hand-out order.
async fn drain(c: &outbox_tests::tokio_postgres::Client) -> Vec<(Option<String>, i64)> {
    let mut got = Vec::new();
    loop {
        let batch = claim(c, "relay", 7).await;
        if batch.is_empty() {
            return got;
        }
        for m in &batch {
            got.push((m.key.clone(), m.id));
            assert!(complete(c, m).await, "complete of a fresh lease");
        }
    }
}

/// Enqueue `per_key` messages for each of `keys` keys, interleaved; the ids
/// per key in enqueue order.
async fn fill(
    c: &outbox_tests::tokio_postgres::Client,
    keys: usize,
    per_key: i64,
) -> HashMap<String, Vec<i64>> {
    let mut sent: HashMap<String, Vec<i64>> = HashMap::new();
    for n in 0..per_key {
        for k in 0..keys {
            let key = format!("key-{k}");
            let id = enqueue_keyed(c, "orders", &key, n).await;
            sent.entry(key).or_default().push(id);
        }
    }
    sent
}

/// (how many partitions, the highest one) the messages of `sent` are in.
async fn parts_of(
    c: &outbox_tests::tokio_postgres::Client,
    sent: &HashMap<String, Vec<i64>>,
) -> (i64, i16) {
    let ids: Vec<i64> = sent.values().flatten().copied().collect();
    let r = c
        .query_one(
            "SELECT count(DISTINCT part), max(part) FROM outbox.log WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// Every message handed out exactly once, each key's in enqueue order.
fn assert_delivered(sent: &HashMap<String, Vec<i64>>, got: &[(Option<String>, i64)]) {
    let mut per_key: HashMap<String, Vec<i64>> = HashMap::new();
    for (key, id) in got {
        per_key
            .entry(key.clone().expect("every test message has a key"))
            .or_default()
            .push(*id);
    }
    assert_eq!(&per_key, sent, "each key's messages, once each, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_spread_over_the_new_count_and_nothing_comes_back_after_a_shrink_and_a_grow() {
    let db = TestDb::new().await;
    let c = db.client().await;

    // 16 partitions, used: every partition has finished rows in the log.
    let sent = fill(&c, 100, 2).await;
    assert_delivered(&sent, &drain(&c).await);
    assert_eq!(parts_of(&c, &sent).await, (16, 15));

    assert_eq!(set_partitions(&c, 4).await, 16, "returns the old count");
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.partitions").await,
        16,
        "partition rows are never removed"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.messages").await, 0);
    let sent = fill(&c, 100, 2).await;
    assert_eq!(
        parts_of(&c, &sent).await,
        (4, 3),
        "new messages use all four partitions and only them"
    );
    assert_delivered(&sent, &drain(&c).await);

    // Back to 16: partitions 4..15 start again, and the rows they held
    // before the shrink (finished, still in the log) are not handed out
    // again.
    assert_eq!(set_partitions(&c, 16).await, 4);
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.messages").await, 0);
    let sent = fill(&c, 100, 2).await;
    assert_eq!(parts_of(&c, &sent).await, (16, 15));
    assert_delivered(&sent, &drain(&c).await);
    assert_eq!(set_partitions(&c, 16).await, 16, "the same count: a no-op");

    // Up to 32: partitions 16..31 never had a row, and get one.
    assert_eq!(set_partitions(&c, 32).await, 16);
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.partitions").await,
        32
    );
    let sent = fill(&c, 200, 2).await;
    assert_eq!(parts_of(&c, &sent).await, (32, 31));
    assert_delivered(&sent, &drain(&c).await);
}

/// The count is a sequence value: a rollback does not undo it, and the
/// partition rows the call created roll back. The next claim creates them
/// again, and nothing written under the new count is stranded.
#[tokio::test]
async fn a_rolled_back_call_leaves_the_new_count_and_nothing_stranded() {
    let db = TestDb::new().await;
    let c = db.client().await;
    assert!(claim(&c, "relay", 1).await.is_empty(), "rows exist");
    c.batch_execute("BEGIN; SELECT outbox.set_partitions(24); ROLLBACK")
        .await
        .unwrap();
    assert_eq!(count(&c, COUNT).await, 24);
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.partitions").await,
        16
    );
    let sent = fill(&c, 200, 1).await;
    assert_eq!(parts_of(&c, &sent).await, (24, 23));
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.messages").await,
        200,
        "messages of the partitions without a row count as unfinished"
    );
    // The relay's first claim in a backend runs _rotate(), which creates
    // the missing rows from the beginning.
    assert_delivered(&sent, &drain(&db.client().await).await);
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.partitions").await,
        24
    );
}

#[tokio::test]
async fn the_count_is_kept_before_the_first_claim_too() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let sent = fill(&c, 10, 1).await;
    // Nothing was ever claimed, so nothing is finished: refused.
    let e = c
        .query_one("SELECT outbox.set_partitions(2)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "55000", "{e:?}");
    assert_delivered(&sent, &drain(&c).await);
    assert_eq!(set_partitions(&c, 2).await, 16);
    let sent = fill(&c, 10, 2).await;
    assert_eq!(parts_of(&c, &sent).await, (2, 1));
    assert_delivered(&sent, &drain(&c).await);
}

#[tokio::test]
async fn a_log_with_unfinished_messages_is_refused_and_left_as_it_was() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let layout = "SELECT last_value FROM outbox.log_segment";
    let before = count(&c, layout).await;
    enqueue_keyed(&c, "orders", "k", 1).await;
    let unchanged = snapshot(&c).await;

    // Ready, then leased: refused either way.
    let e = c
        .query_one("SELECT outbox.set_partitions(8)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "55000", "{e:?}");
    let hint = e.as_db_error().and_then(|d| d.hint()).unwrap_or_default();
    assert!(hint.contains("Pause the producers"), "{hint}");
    assert_eq!(snapshot(&c).await, unchanged);
    let leased = claim(&c, "relay", 10).await;
    assert_eq!(leased.len(), 1);
    let e = c
        .query_one("SELECT outbox.set_partitions(8)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "55000", "{e:?}");
    assert_eq!(count(&c, layout).await, before, "the count is unchanged");

    assert!(complete(&c, &leased[0]).await);
    assert_eq!(set_partitions(&c, 8).await, 16);
}

#[tokio::test]
async fn bad_counts_and_snapshot_isolation_are_refused() {
    let db = TestDb::new().await;
    let c = db.client().await;
    for (n, state) in [
        (Some(0), "22023"),
        (Some(1025), "22023"),
        (Some(-3), "22023"),
        (None, "22004"),
    ] {
        let e = c
            .query_one("SELECT outbox.set_partitions($1)", &[&n])
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), state, "set_partitions({n:?}): {e:?}");
    }
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    let e = c
        .query_one("SELECT outbox.set_partitions(4)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "25001", "{e:?}");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(set_partitions(&c, 1024).await, 16, "1024 is allowed");
    assert_eq!(set_partitions(&c, 1).await, 1024, "and 1");
}

/// Without the wait, the check would not see the open producer's message,
/// the count would change under it, and a shrink would drop the row of the
/// partition it was written to: a lost message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_in_flight_is_waited_for_and_its_message_counted() {
    let db = TestDb::new().await;
    let producer = db.client().await;
    let admin = db.client().await;
    let watcher = db.client().await;
    // Partition rows exist (a claim ran), so a shrink would remove some.
    assert!(claim(&admin, "relay", 1).await.is_empty());

    producer.batch_execute("BEGIN").await.unwrap();
    let id = enqueue_keyed(&producer, "orders", "in-flight", 1).await;
    let pid: i32 = admin
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let call = tokio::spawn(async move {
        let result = admin
            .query_one("SELECT outbox.set_partitions(1)", &[])
            .await
            .map(|r| r.get::<_, i32>(0));
        // The error arrives before the backend has rolled back (and let go
        // of the partition rows its _rotate() locked): the next statement's
        // answer comes after that.
        admin.batch_execute("SELECT 1").await.unwrap();
        result
    });
    // set_partitions waits for the producer.
    wait_until(MUST_HAPPEN, || async {
        watcher
            .query_one(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .map(|r| r.get::<_, Option<bool>>(0) == Some(true))
            .unwrap_or(false)
    })
    .await;
    producer.batch_execute("COMMIT").await.unwrap();
    let e = call.await.unwrap().unwrap_err();
    assert_eq!(sqlstate(&e), "55000", "{e:?}");
    assert_eq!(
        count(&watcher, "SELECT count(*) FROM outbox.partitions").await,
        16
    );
    assert_eq!(count(&watcher, COUNT).await, 16);
    let got = drain(&watcher).await;
    assert_eq!(got, vec![(Some("in-flight".to_owned()), id)]);
}

/// A producer transaction left open does not hold every producer up behind
/// the call for ever: the wait for it is bounded.
#[tokio::test]
async fn a_producer_left_open_makes_the_call_give_up_with_55p03() {
    let db = TestDb::new().await;
    let producer = db.client().await;
    let admin = db.client().await;
    producer.batch_execute("BEGIN").await.unwrap();
    enqueue_keyed(&producer, "orders", "open", 1).await;
    let e = admin
        .query_one("SELECT outbox.set_partitions(8)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "55P03", "{e:?}");
    assert_eq!(count(&admin, COUNT).await, 16);
    let lock_timeout: String = admin
        .query_one("SHOW lock_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        lock_timeout, "0",
        "the caller's lock_timeout is left as it was"
    );
    producer.batch_execute("COMMIT").await.unwrap();
}
