//! Idempotent enqueue (`dedup_key`, `dedup_keys`, `dedup_window`) and
//! `outbox.cleanup()`: a held key writes nothing and answers with the
//! holder's id; finishing, dying or rolling back releases it; concurrent
//! producers get exactly one message per key, without errors or deadlocks.
//! The concurrency tests print their seed; `OUTBOX_DEDUP_SEED=<seed>`
//! replays one.

use crate::common::*;
use outbox_tests::tokio_postgres::Client;
use outbox_tests::TestDb;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use tokio::sync::Barrier;

async fn enqueue_once(c: &Client, key: &str, payload: Value) -> i64 {
    c.query_one(
        "SELECT outbox.enqueue('orders', $1, dedup_key => $2)",
        &[&payload, &key],
    )
    .await
    .unwrap()
    .get(0)
}

async fn unfinished(c: &Client) -> i64 {
    count(c, "SELECT count(*) FROM outbox.messages").await
}

/// Claims everything ready and completes it.
async fn relay_all(c: &Client) -> Vec<Claimed> {
    let mut all = Vec::new();
    loop {
        let batch = claim(c, "relay", 100).await;
        if batch.is_empty() {
            return all;
        }
        for m in &batch {
            assert!(complete(c, m).await, "completing {}", m.id);
        }
        all.extend(batch);
    }
}

fn seed(test: &str) -> u64 {
    let seed = std::env::var("OUTBOX_DEDUP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("{test}: seed {seed} (replay: OUTBOX_DEDUP_SEED={seed} cargo test -p outbox_tests --test it -- {test})");
    seed
}

#[tokio::test]
async fn a_held_dedup_key_answers_with_the_first_id_and_writes_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let first = enqueue_once(&c, "order-42-created", json!({"n": 1})).await;
    let before = snapshot(&c).await;
    let again = enqueue_once(&c, "order-42-created", json!({"n": 2})).await;
    assert_eq!(again, first, "a held key answers with its holder's id");
    assert_eq!(snapshot(&c).await, before, "a duplicate writes nothing");

    // Held while leased, and while waiting for a retry in the side table.
    let claimed = claim(&c, "relay", 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].payload, json!({"n": 1}));
    assert_eq!(
        enqueue_once(&c, "order-42-created", json!({"n": 3})).await,
        first
    );
    assert_eq!(fail(&c, &claimed[0], "broker down").await, "retrying");
    assert_eq!(
        enqueue_once(&c, "order-42-created", json!({"n": 4})).await,
        first
    );
    assert_eq!(unfinished(&c).await, 1);

    // Another key is another message.
    let other = enqueue_once(&c, "order-43-created", json!({"n": 5})).await;
    assert_ne!(other, first);
}

#[tokio::test]
async fn finishing_releases_a_key_unless_its_window_holds_it() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let first = enqueue_once(&c, "k", json!(1)).await;
    assert_eq!(relay_all(&c).await.len(), 1);
    let second = enqueue_once(&c, "k", json!(2)).await;
    assert!(
        second > first,
        "a published message no longer holds its key (window 0)"
    );
    let got = relay_all(&c).await;
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [second]);

    // With a window, published and still held; past it, released.
    let windowed: i64 = c
        .query_one(
            "SELECT outbox.enqueue('orders', '3', dedup_key => 'w', dedup_window => '1 hour')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    relay_all(&c).await;
    assert_eq!(
        enqueue_once(&c, "w", json!(4)).await,
        windowed,
        "inside the window"
    );
    c.batch_execute("SET outbox.test_clock_offset = '61min'")
        .await
        .unwrap();
    let after = enqueue_once(&c, "w", json!(5)).await;
    assert!(after > windowed, "past the window the key is free again");
    c.batch_execute("RESET outbox.test_clock_offset")
        .await
        .unwrap();

    // outbox.dedup_window is the default window.
    c.batch_execute("SET outbox.dedup_window = '2h'")
        .await
        .unwrap();
    relay_all(&c).await;
    let g = enqueue_once(&c, "g", json!(6)).await;
    relay_all(&c).await;
    assert_eq!(enqueue_once(&c, "g", json!(7)).await, g);
}

#[tokio::test]
async fn a_dead_letter_or_a_rollback_releases_its_key() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let first = enqueue_once(&c, "k", json!(1)).await;
    let m = claim(&c, "relay", 10).await.remove(0);
    let state: String = c
        .query_one(
            "SELECT state FROM outbox.fail($1, $2, 'bad payload', permanent => true)",
            &[&m.id, &m.token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "dead");
    let second = enqueue_once(&c, "k", json!(2)).await;
    assert!(second > first, "a dead letter does not hold its key");

    let tx = c.transaction().await.unwrap();
    let rolled: i64 = tx
        .query_one(
            "SELECT outbox.enqueue('orders', '3', dedup_key => 'r')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    tx.rollback().await.unwrap();
    let kept = enqueue_once(&c, "r", json!(4)).await;
    assert_ne!(kept, rolled, "a rolled-back enqueue never held its key");
    let ids: Vec<i64> = relay_all(&c).await.iter().map(|m| m.id).collect();
    assert_eq!(ids, [second, kept]);
}

#[tokio::test]
async fn a_scheduled_message_holds_its_key_until_due_and_its_window() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let id: i64 = c
        .query_one(
            "SELECT outbox.enqueue('orders', '1', deliver_at => now() + interval '1 hour', \
             dedup_key => 's')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let held_until: bool = c
        .query_one(
            "SELECT held_until >= now() + interval '59 minutes' FROM outbox.dedup \
             WHERE dedup_key = 's'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(held_until, "the window counts from the delivery time");
    assert_eq!(enqueue_once(&c, "s", json!(2)).await, id);
}

#[tokio::test]
async fn enqueue_batch_takes_each_key_once_in_input_order() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let ids: Vec<i64> = c
        .query_one(
            "SELECT outbox.enqueue_batch('orders', ARRAY['1', '2', '3', '4']::jsonb[], \
             keys => ARRAY['a', 'a', 'a', 'a'], dedup_keys => ARRAY['k1', NULL, 'k2', 'k1'])",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ids.len(), 4);
    assert_eq!(
        ids[3], ids[0],
        "a key given twice in one batch is one message"
    );
    assert!(
        ids[0] < ids[1] && ids[1] < ids[2],
        "ids in input order: {ids:?}"
    );
    assert_eq!(unfinished(&c).await, 3);

    let again: Vec<i64> = c
        .query_one(
            "SELECT outbox.enqueue_batch('orders', ARRAY['5', '6']::jsonb[], \
             keys => ARRAY['a', 'a'], dedup_keys => ARRAY['k2', 'k3'])",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(again[0], ids[2], "held by the earlier batch");
    assert!(again[1] > ids[2]);

    // Per-key order is input order, held duplicates left out.
    let delivered: Vec<Value> = relay_all(&c).await.into_iter().map(|m| m.payload).collect();
    assert_eq!(delivered, [json!(1), json!(2), json!(3), json!(6)]);
}

#[tokio::test]
async fn bad_dedup_arguments_are_refused_and_write_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    enqueue_once(&c, "existing", json!(0)).await;
    let before = snapshot(&c).await;
    let long = "x".repeat(1025);
    let cases: Vec<(String, &str, &str)> = vec![
        ("SELECT outbox.enqueue('t', '1', dedup_key => '')".into(), "22023", "dedup_key is empty"),
        (format!("SELECT outbox.enqueue('t', '1', dedup_key => '{long}')"), "22023", "1025 bytes"),
        ("SELECT outbox.enqueue('t', '1', dedup_key => 'k', dedup_window => '-1 second')".into(), "22023", "negative"),
        ("SELECT outbox.enqueue('t', '1', dedup_key => 'k', dedup_window => '367 days')".into(), "22023", "longer than a year"),
        // Mixed signs: looks like a day, reaches 525.
        ("SELECT outbox.enqueue('t', '1', dedup_key => 'k', dedup_window => '100 years -35999 days')".into(), "22023", "longer than a year"),
        ("SELECT outbox.enqueue('t', '1', dedup_window => '1 hour')".into(), "22023", "dedup_key is NULL"),
        ("SELECT outbox.enqueue_batch('t', ARRAY['1']::jsonb[], dedup_keys => ARRAY['a', 'b'])".into(), "2202E", "dedup_keys has 2 elements"),
        ("SELECT outbox.enqueue_batch('t', ARRAY['1']::jsonb[], dedup_keys => ARRAY[''])".into(), "22023", "dedup_key is empty"),
        ("SELECT outbox.enqueue_batch('t', ARRAY['1']::jsonb[], dedup_window => '1 hour')".into(), "22023", "dedup_keys is NULL"),
        ("SELECT outbox.cleanup(NULL)".into(), "22004", "max_rows must not be NULL"),
        ("SELECT outbox.cleanup(0)".into(), "22023", "between 1 and 1000000"),
    ];
    for (sql, code, fragment) in cases {
        let e = c.query_one(&sql, &[]).await.expect_err(&sql);
        assert_eq!(sqlstate(&e), code, "{sql}: {e:?}");
        let db_error = e.as_db_error().expect("a server error");
        assert!(
            db_error.message().contains(fragment),
            "{sql}: {:?} lacks {fragment:?}",
            db_error.message()
        );
        assert!(db_error.hint().is_some(), "{sql}: no hint");
    }
    assert_eq!(snapshot(&c).await, before);
    let err = c
        .batch_execute("SET outbox.dedup_window = '-1'")
        .await
        .expect_err("a negative outbox.dedup_window");
    assert_eq!(sqlstate(&err), "22023");
}

/// Many producers, one key, all in flight at once: exactly one message, and
/// every producer that committed was told its id. Some of them roll back
/// (seeded); the key then goes to whoever comes next.
#[tokio::test]
async fn concurrent_producers_with_one_key_write_exactly_one_message() {
    const CLIENTS: usize = 16;
    const ROUNDS: usize = 6;
    let db = TestDb::new().await;
    let check = db.client().await;
    let mut rng = ChaCha8Rng::seed_from_u64(seed(
        "concurrent_producers_with_one_key_write_exactly_one_message",
    ));
    for round in 0..ROUNDS {
        // Odd rounds reuse the last key after its message was published:
        // then the producers race to hand a finished holder's key over.
        let key = format!("round-{}", round - round % 2);
        if round % 2 == 1 {
            relay_all(&check).await;
        }
        let before: i64 = check
            .query_one(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM outbox.message_id",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let mut tasks = Vec::new();
        for i in 0..CLIENTS {
            let mut c = db.client().await;
            let barrier = barrier.clone();
            let key = key.clone();
            let roll_back = rng.gen_bool(0.25);
            let hold_ms = rng.gen_range(0..20);
            tasks.push(tokio::spawn(async move {
                let tx = c.transaction().await.unwrap();
                barrier.wait().await;
                let id: i64 = tx
                    .query_one(
                        "SELECT outbox.enqueue('orders', $1, dedup_key => $2)",
                        &[&json!({ "client": i }), &key],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("client {i}: {e:?}"))
                    .get(0);
                tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
                if roll_back {
                    tx.rollback().await.unwrap();
                    None
                } else {
                    tx.commit().await.unwrap();
                    Some(id)
                }
            }));
        }
        let mut answers = HashSet::new();
        for t in tasks {
            if let Some(id) = t.await.unwrap() {
                answers.insert(id);
            }
        }
        let written: Vec<i64> = check
            .query_one(
                "SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM outbox.messages m \
                 WHERE m.id IN (SELECT d.id FROM outbox.dedup d WHERE d.dedup_key = $1)",
                &[&key],
            )
            .await
            .unwrap()
            .get(0);
        let new_messages = count(
            &check,
            &format!("SELECT count(*) FROM outbox.messages WHERE id > {before}"),
        )
        .await;
        assert_eq!(
            new_messages,
            i64::from(!answers.is_empty()),
            "round {round}: one message per key whose producers committed (answers {answers:?})"
        );
        if !answers.is_empty() {
            assert_eq!(
                answers.len(),
                1,
                "round {round}: every committer got one id: {answers:?}"
            );
            assert_eq!(
                written,
                answers.into_iter().collect::<Vec<_>>(),
                "round {round}"
            );
        }
    }
}

/// Batches with the same keys in different orders, concurrently: no
/// deadlock (keys are taken in sorted order), one message per key, and
/// every batch agrees on each key's id.
#[tokio::test]
async fn concurrent_batches_with_overlapping_keys_do_not_deadlock() {
    const CLIENTS: usize = 8;
    const KEYS: usize = 40;
    let db = TestDb::new().await;
    let check = db.client().await;
    let mut rng = ChaCha8Rng::seed_from_u64(seed(
        "concurrent_batches_with_overlapping_keys_do_not_deadlock",
    ));
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let mut keys: Vec<String> = (0..KEYS).map(|k| format!("key-{k:02}")).collect();
        keys.shuffle(&mut rng);
        keys.truncate(rng.gen_range(KEYS / 2..=KEYS));
        let mut c = db.client().await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let tx = c.transaction().await.unwrap();
            let payloads: Vec<Value> = keys.iter().map(|_| json!({ "client": i })).collect();
            barrier.wait().await;
            let ids: Vec<i64> = tx
                .query_one(
                    "SELECT outbox.enqueue_batch('orders', $1, dedup_keys => $2)",
                    &[&payloads, &keys],
                )
                .await
                .unwrap_or_else(|e| panic!("client {i}: {e:?}"))
                .get(0);
            tx.commit().await.unwrap();
            keys.into_iter().zip(ids).collect::<Vec<_>>()
        }));
    }
    let mut by_key: BTreeMap<String, HashSet<i64>> = BTreeMap::new();
    for t in tasks {
        for (k, id) in t.await.unwrap() {
            by_key.entry(k).or_default().insert(id);
        }
    }
    for (k, ids) in &by_key {
        assert_eq!(ids.len(), 1, "key {k} got several ids: {ids:?}");
    }
    assert_eq!(unfinished(&check).await, by_key.len() as i64);
}

async fn keys(c: &Client) -> Vec<String> {
    c.query_one(
        "SELECT coalesce(array_agg(dedup_key ORDER BY dedup_key), '{}') FROM outbox.dedup",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn cleanup_removes_only_keys_no_message_holds() {
    let db = TestDb::new().await;
    let c = db.client().await;
    enqueue_once(&c, "published", json!(1)).await;
    c.batch_execute(
        "SELECT outbox.enqueue('orders', '2', dedup_key => 'windowed', dedup_window => '1 hour')",
    )
    .await
    .unwrap();
    relay_all(&c).await;
    enqueue_once(&c, "waiting", json!(3)).await;
    let removed: i64 = c
        .query_one("SELECT outbox.cleanup()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(removed, 1);
    assert_eq!(keys(&c).await, ["waiting", "windowed"]);
    relay_all(&c).await;
    c.batch_execute("SET outbox.test_clock_offset = '2h'")
        .await
        .unwrap();
    let removed: i64 = c
        .query_one("SELECT outbox.cleanup(1)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(removed, 1, "at most max_rows a call");
    let removed: i64 = c
        .query_one("SELECT outbox.cleanup()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(removed, 1);
    assert!(keys(&c).await.is_empty());
}

/// Cleaners removing finished keys while producers take the same keys
/// again: no error, no deadlock, and each key ends up with exactly one new
/// message, which every producer of that key was told.
#[tokio::test]
async fn cleanup_and_producers_on_the_same_keys_agree() {
    const KEYS: usize = 50;
    const PRODUCERS: usize = 6;
    let db = TestDb::new().await;
    let c = db.client().await;
    let keys: Vec<String> = (0..KEYS).map(|k| format!("k{k}")).collect();
    let payloads: Vec<Value> = keys.iter().map(|_| json!("old")).collect();
    c.execute(
        "SELECT outbox.enqueue_batch('orders', $1, dedup_keys => $2)",
        &[&payloads, &keys],
    )
    .await
    .unwrap();
    let old: HashSet<i64> = relay_all(&c).await.iter().map(|m| m.id).collect();
    assert_eq!(old.len(), KEYS);

    let mut rng = ChaCha8Rng::seed_from_u64(seed("cleanup_and_producers_on_the_same_keys_agree"));
    let barrier = Arc::new(Barrier::new(PRODUCERS + 2));
    let mut cleaners = Vec::new();
    for _ in 0..2 {
        let c = db.client().await;
        let barrier = barrier.clone();
        cleaners.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut removed = 0i64;
            for _ in 0..20 {
                let n: i64 = c
                    .query_one("SELECT outbox.cleanup(7)", &[])
                    .await
                    .unwrap()
                    .get(0);
                removed += n;
            }
            removed
        }));
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let mut order = keys.clone();
        order.shuffle(&mut rng);
        let c = db.client().await;
        let barrier = barrier.clone();
        producers.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut got = Vec::new();
            for k in order {
                let id: i64 = c
                    .query_one(
                        "SELECT outbox.enqueue('orders', $1, dedup_key => $2)",
                        &[&json!({ "producer": p }), &k],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("producer {p}, key {k}: {e:?}"))
                    .get(0);
                got.push((k, id));
            }
            got
        }));
    }
    let mut removed = 0;
    for t in cleaners {
        removed += t.await.unwrap();
    }
    let mut by_key: BTreeMap<String, HashSet<i64>> = BTreeMap::new();
    for t in producers {
        for (k, id) in t.await.unwrap() {
            by_key.entry(k).or_default().insert(id);
        }
    }
    assert!(removed <= KEYS as i64, "removed {removed} of {KEYS} keys");
    // A key cleanup had not reached yet was re-taken through the held-and-
    // finished path; one it removed through a fresh take. Either way: one
    // new message per key, none of the old ids.
    for (k, ids) in &by_key {
        assert_eq!(ids.len(), 1, "key {k}: {ids:?}");
        assert!(
            ids.is_disjoint(&old),
            "key {k} answered with a published message's id"
        );
    }
    assert_eq!(unfinished(&c).await, KEYS as i64);
}

#[tokio::test]
async fn dedup_privileges_follow_the_jobs() {
    let db = TestDb::new().await;
    let (p, r, a) = job_clients(&db, "dd").await;

    let id = enqueue_once(&p, "k", json!(1)).await;
    assert_eq!(enqueue_once(&p, "k", json!(2)).await, id);
    let ids: Vec<i64> = p
        .query_one(
            "SELECT outbox.enqueue_batch('orders', ARRAY['3']::jsonb[], dedup_keys => ARRAY['k'])",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ids, [id]);
    for sql in [
        "SELECT outbox.cleanup()",
        "SELECT count(*) FROM outbox.dedup",
    ] {
        let e = p.query_one(sql, &[]).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "42501", "producer: {sql}");
    }
    let e = r
        .query_one("SELECT count(*) FROM outbox.dedup", &[])
        .await
        .expect_err("relay reads dedup");
    assert_eq!(sqlstate(&e), "42501");
    r.query_one("SELECT outbox.cleanup()", &[]).await.unwrap();
    a.query_one("SELECT outbox.cleanup()", &[]).await.unwrap();
    assert_eq!(count(&a, "SELECT count(*) FROM outbox.dedup").await, 1);
}

/// `outbox-relay` runs cleanup on its own (`--cleanup-interval`): the keys
/// of the messages it published go without any scheduler, and with
/// `--cleanup-interval 0` they stay.
#[tokio::test]
async fn the_relay_cleans_up_on_its_interval() {
    use outbox_tests::{wait_until, RelayProcess, RELAY_PATIENCE};
    let db = TestDb::new().await;
    let c = db.client().await;
    let keys: Vec<String> = (0..30).map(|k| format!("relay-{k}")).collect();
    let payloads: Vec<Value> = keys.iter().map(|_| json!(1)).collect();
    let ids: Vec<i64> = c
        .query_one(
            "SELECT outbox.enqueue_batch('orders', $1, dedup_keys => $2)",
            &[&payloads, &keys],
        )
        .await
        .unwrap()
        .get(0);
    let relay = RelayProcess::start(&db, &["--cleanup-interval", "0"]);
    relay.wait_for_ids(&ids.iter().copied().collect()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        keys_left(&c).await,
        30,
        "--cleanup-interval 0 cleans nothing"
    );
    relay.terminate().await;

    let relay = RelayProcess::start(&db, &["--cleanup-interval", "1s"]);
    wait_until(RELAY_PATIENCE, || async { keys_left(&c).await == 0 }).await;
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{log}");
    assert!(log.contains("cleanup removed"), "{log}");
}

async fn keys_left(c: &Client) -> i64 {
    count(c, "SELECT count(*) FROM outbox.dedup").await
}

/// In REPEATABLE READ, a key another transaction took after this one's
/// snapshot is a serialization failure (40001, as documented), never a
/// second message; retried, the transaction gets the holder's id.
#[tokio::test]
async fn repeatable_read_meets_a_newer_holder_with_a_serialization_failure() {
    let db = TestDb::new().await;
    let mut late = db.client().await;
    let other = db.client().await;
    let tx = late
        .build_transaction()
        .isolation_level(outbox_tests::tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .unwrap();
    tx.query_one("SELECT 1", &[]).await.unwrap(); // the snapshot is taken
    let first = enqueue_once(&other, "rr", json!(1)).await;
    let e = tx
        .query_one(
            "SELECT outbox.enqueue('orders', '2', dedup_key => 'rr')",
            &[],
        )
        .await
        .expect_err("a key taken after the snapshot");
    assert_eq!(sqlstate(&e), "40001", "{e:?}");
    tx.rollback().await.unwrap();
    assert_eq!(enqueue_once(&late, "rr", json!(3)).await, first, "retried");
    assert_eq!(unfinished(&other).await, 1);
}
