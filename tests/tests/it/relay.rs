//! End to end: the `outbox-relay` binary against the real extension, as
//! separate processes (so SIGTERM and SIGKILL are the real thing), with the
//! stdout publisher, whose output the tests read as the broker.

use crate::common::*;
use outbox_tests::{wait_until, TestDb, RELAY_PATIENCE as PATIENCE};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use tokio::process::Command;

pub(crate) use outbox_tests::{relay_binary, RelayProcess};

/// Produce `n` messages from `producers` concurrent producers, each over
/// `keys` keys of its own; every 5th transaction rolls back. Returns the committed ids
/// and the payload markers of the rolled-back ones.
async fn produce(
    db: &TestDb,
    producers: usize,
    n: usize,
    keys: usize,
) -> (HashSet<i64>, HashSet<String>) {
    let mut tasks = Vec::new();
    for p in 0..producers {
        let mut client = db.client().await;
        tasks.push(tokio::spawn(async move {
            let mut committed = Vec::new();
            let mut rolled_back = Vec::new();
            for i in 0..n / producers {
                let marker = format!("p{p}-{i}");
                // Each key belongs to one producer, whose transactions follow
                // each other, as when an application serialises on the
                // aggregate row. (Two unsynchronised transactions on one key
                // have no order to keep: ids are taken at enqueue, visibility
                // comes at commit.)
                let key = format!("key-{p}-{}", i % keys);
                let tx = client.transaction().await.unwrap();
                let id: i64 = tx
                    .query_one(
                        "SELECT outbox.enqueue('orders', $1, key => $2)",
                        &[&json!({ "m": marker }), &key],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if i % 5 == 4 {
                    tx.rollback().await.unwrap();
                    rolled_back.push(marker);
                } else {
                    tx.commit().await.unwrap();
                    committed.push(id);
                }
            }
            (committed, rolled_back)
        }));
    }
    let mut committed = HashSet::new();
    let mut rolled_back = HashSet::new();
    for t in tasks {
        let (c, r) = t.await.unwrap();
        committed.extend(c);
        rolled_back.extend(r);
    }
    (committed, rolled_back)
}

/// Per key, the ids in the order the broker saw them must be ascending.
fn assert_per_key_order(published: &[Value]) {
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for m in published {
        let Some(key) = m["key"].as_str() else {
            continue;
        };
        let id = m["id"].as_i64().unwrap();
        if let Some(prev) = last.insert(key.to_owned(), id) {
            assert!(prev < id, "key {key}: {id} published after {prev}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_publishes_every_committed_message_in_key_order_and_no_rolled_back_one() {
    let db = TestDb::new().await;
    let relay = RelayProcess::start(&db, &["--concurrency", "3", "--batch-size", "20"]);
    let (committed, rolled_back) = produce(&db, 4, 200, 10).await;
    relay.wait_for_ids(&committed).await;

    let published = relay.published();
    let ids: HashSet<i64> = published
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, committed, "published set differs from committed set");
    assert_eq!(
        published.len(),
        committed.len(),
        "duplicates without any failure"
    );
    for m in &published {
        let marker = m["payload"]["m"].as_str().unwrap();
        assert!(
            !rolled_back.contains(marker),
            "published a rolled-back message: {m}"
        );
        for field in ["id", "topic", "key", "payload", "attempt", "created_at"] {
            assert!(m.get(field).is_some(), "stdout line lacks {field}: {m}");
        }
    }
    assert_per_key_order(&published);

    let c = db.client().await;
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.messages").await, 0);
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "relay exit {status:?}\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_at_once_lose_nothing() {
    let db = TestDb::new().await;
    let a = RelayProcess::start(&db, &["--batch-size", "10"]);
    let b = RelayProcess::start(&db, &["--batch-size", "10"]);
    let (committed, _) = produce(&db, 2, 200, 20).await;
    wait_until(PATIENCE, || async {
        let seen: HashSet<i64> = a.ids().into_iter().chain(b.ids()).collect();
        committed.is_subset(&seen)
    })
    .await;
    let overlap: HashSet<i64> = a
        .ids()
        .into_iter()
        .collect::<HashSet<_>>()
        .intersection(&b.ids().into_iter().collect())
        .copied()
        .collect();
    assert!(
        overlap.is_empty(),
        "both relays published {overlap:?} although no lease expired"
    );
    assert_per_key_order(&a.published());
    assert_per_key_order(&b.published());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_relays_messages_are_delivered_by_another_after_its_lease_expires() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // 60 messages of ~2 KiB: more than a pipe holds (64 KiB).
    let payloads: Vec<Value> = (0..60)
        .map(|i| json!({ "i": i, "pad": "x".repeat(2048) }))
        .collect();
    let all: HashSet<i64> = c
        .query_one("SELECT outbox.enqueue_batch('orders', $1)", &[&payloads])
        .await
        .unwrap()
        .get::<_, Vec<i64>>(0)
        .into_iter()
        .collect();

    // The victim's "broker" (its stdout pipe) is never read: it claims the
    // batch, blocks mid-publish with the pipe full, and is killed there.
    let mut victim = Command::new(relay_binary())
        .args([
            "--database-url",
            &db.connstr(),
            "--lease",
            "2s",
            "--batch-size",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until(PATIENCE, || async {
        count(
            &c,
            "SELECT count(*) FROM outbox.messages WHERE lease_token IS NOT NULL",
        )
        .await
            == 60
    })
    .await;
    let pid = victim.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    victim.wait().await.unwrap();
    // What it had written before it died: delivered, never completed.
    let mut written = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut victim.stdout.take().unwrap(), &mut written)
        .await
        .unwrap();
    let before_kill: HashSet<i64> = written
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert!(before_kill.len() < 60, "the victim was not stuck mid-batch");
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.messages").await,
        60,
        "nothing may be completed"
    );

    let rescuer = RelayProcess::start(&db, &["--poll-interval", "200ms"]);
    rescuer.wait_for_ids(&all).await;
    let published = rescuer.published();
    assert!(
        published.iter().all(|m| m["attempt"].as_i64() == Some(2)),
        "a re-delivery counts as attempt 2"
    );
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;
    let duplicates = before_kill.len();
    eprintln!("killed relay: {duplicates} of 60 written before SIGKILL and written again by the rescuer (at least once); 0 lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_reconnects_when_its_connections_are_killed() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let relay = RelayProcess::start(&db, &["--poll-interval", "200ms"]);
    let first = enqueue(&c, "orders", json!(1)).await;
    relay.wait_for_ids(&HashSet::from([first])).await;

    // Kill every backend of the relay (as an admin or a failover would).
    let killed: i64 = count(
        &c,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
    )
    .await;
    assert!(
        killed >= 2,
        "expected the relay's connections, killed {killed}"
    );
    let second = enqueue(&c, "orders", json!(2)).await;
    relay.wait_for_ids(&HashSet::from([first, second])).await;
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{log}");
    assert!(
        log.contains("reconnect") || log.contains("retrying"),
        "no reconnect in the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_relay_is_woken_by_the_doorbell_long_before_its_poll_interval() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let relay = RelayProcess::start(&db, &["--poll-interval", "10m"]);
    // Wait until it sleeps: armed on the doorbell gate.
    wait_until(PATIENCE, || async { count(&c, ARMED_RELAYS).await == 1 }).await;
    let started = std::time::Instant::now();
    let id = enqueue(&c, "orders", json!("wake up")).await;
    relay.wait_for_ids(&HashSet::from([id])).await;
    // Measured, not asserted: the test's wait bound (60 s) is far below the
    // poll interval (10 min), so only a doorbell ring can have delivered it.
    eprintln!("doorbell wake-up to publish: {:?}", started.elapsed());
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{log}");
}

#[tokio::test]
async fn graceful_shutdown_leaves_nothing_leased() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let relay = RelayProcess::start(&db, &[]);
    let payloads: Vec<Value> = (0..500).map(|i| json!(i)).collect();
    c.query_one("SELECT outbox.enqueue_batch('orders', $1)", &[&payloads])
        .await
        .unwrap();
    wait_until(PATIENCE, || async { !relay.ids().is_empty() }).await;
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{log}");
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM outbox.messages WHERE lease_expires_at > now()"
        )
        .await,
        0,
        "a gracefully stopped relay left leases behind\n{log}"
    );
}

#[tokio::test]
async fn the_relay_explains_a_missing_extension_and_a_bad_url() {
    let db = TestDb::plain().await;
    let out = std::process::Command::new(relay_binary())
        .args(["--database-url", &db.connstr()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CREATE EXTENSION outbox"), "{stderr}");

    let out = std::process::Command::new(relay_binary())
        .args(["--database-url", "postgres://u@h:notaport/db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database-url"));

    let out = std::process::Command::new(relay_binary())
        .args(["--database-url", &db.connstr(), "--batch-size", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("batch_size"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_carries_on_after_postgresql_restarts_under_it() {
    // A cluster of its own: restarting the shared one would break other tests.
    let cluster = outbox_tests::Cluster::private();
    let db = TestDb::in_cluster(cluster).await;
    let relay = RelayProcess::start(&db, &["--poll-interval", "200ms"]);
    let before = {
        let c = db.client().await;
        enqueue(&c, "orders", json!("before")).await
    };
    relay.wait_for_ids(&HashSet::from([before])).await;

    tokio::task::spawn_blocking(move || cluster.restart())
        .await
        .unwrap();

    let c = db.client().await;
    let after = enqueue(&c, "orders", json!("after")).await;
    relay.wait_for_ids(&HashSet::from([before, after])).await;
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{log}");
    assert!(
        log.contains("reconnect") || log.contains("retrying"),
        "no reconnect in the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poll_only_relay_delivers_without_listening() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let relay = RelayProcess::start(&db, &["--poll-only", "--poll-interval", "300ms"]);
    let id = enqueue(&c, "orders", json!("polled")).await;
    relay.wait_for_ids(&HashSet::from([id])).await;
    let listening = count(
        &c,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .await;
    assert_eq!(listening, 0, "a poll-only relay LISTENed");
    assert_eq!(
        count(&c, ARMED_RELAYS).await,
        0,
        "a poll-only relay armed the doorbell"
    );
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{log}");
}

/// A batch the broker acknowledged is completed in the same transaction that
/// claims the next one: one commit per batch, not two. Counted with
/// PostgreSQL's own transaction counter for the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fully_acknowledged_batch_is_completed_in_the_transaction_that_claims_the_next() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let payloads: Vec<Value> = (0..2000).map(|i| json!(i)).collect();
    let ids: Vec<i64> = c
        .query_one("SELECT outbox.enqueue_batch('orders', $1)", &[&payloads])
        .await
        .unwrap()
        .get(0);
    let before = xact_commits(&c).await;
    let relay = RelayProcess::start(&db, &["--batch-size", "10", "--concurrency", "1"]);
    relay.wait_for_ids(&ids.into_iter().collect()).await;
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{log}");
    // A backend reports its counters when it exits.
    wait_until(PATIENCE, || async {
        count(
            &c,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
            == 0
    })
    .await;
    let spent = xact_commits(&c).await - before;
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.messages").await,
        0,
        "{log}"
    );
    // 200 batches: about 200 commits together, 400 one by one.
    assert!(
        (200..300).contains(&spent),
        "{spent} transactions committed for 200 batches\n{log}"
    );
}

/// Committed transactions in this database, as the statistics system
/// knows them now.
async fn xact_commits(c: &tokio_postgres::Client) -> i64 {
    c.batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .unwrap();
    count(
        c,
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .await
}
