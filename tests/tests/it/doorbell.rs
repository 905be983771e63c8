//! The doorbell: NOTIFY while a relay sleeps, silence otherwise, and the
//! sleep protocol (LISTEN, arm, re-check, wait) loses no wake-up.

use crate::common::*;
use futures_util::StreamExt;
use outbox_tests::tokio_postgres::{AsyncMessage, Client, NoTls, Notification};
use outbox_tests::TestDb;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::timeout;

const CHANNEL: &str = "outbox_doorbell";
/// How long to wait for a notification that must come (an upper bound on a
/// wait for an event, not a sleep).
const MUST_ARRIVE: Duration = Duration::from_secs(20);

/// A connection whose notifications arrive on a channel.
async fn listener(db: &TestDb) -> (Client, mpsc::UnboundedReceiver<Notification>) {
    listener_on(db, CHANNEL).await
}

/// A connection listening on `channel` (a named outbox's doorbell too).
pub(crate) async fn listener_on(
    db: &TestDb,
    channel: &str,
) -> (Client, mpsc::UnboundedReceiver<Notification>) {
    let (client, mut conn) = db.config("postgres").connect(NoTls).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                if tx.send(n).is_err() {
                    break;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .unwrap();
    (client, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Notification>) -> Notification {
    timeout(MUST_ARRIVE, rx.recv())
        .await
        .expect("no notification arrived")
        .expect("listener closed")
}

/// `armed` or `busy`.
async fn arm(c: &Client) -> String {
    c.query_one("SELECT outbox.doorbell_arm()", &[])
        .await
        .unwrap()
        .get(0)
}

async fn disarm(c: &Client) -> bool {
    c.query_one("SELECT outbox.doorbell_disarm()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Enqueue, then send a marker notification from the same session. Commit
/// order is delivery order, so a doorbell ring would arrive before the marker.
async fn enqueue_then_marker(c: &Client, marker: &str) {
    enqueue(c, "orders", json!(1)).await;
    c.batch_execute(&format!("NOTIFY {CHANNEL}, '{marker}'"))
        .await
        .unwrap();
}

#[tokio::test]
async fn doorbell_rings_while_a_relay_sleeps() {
    let db = TestDb::new().await;
    let (relay, mut rx) = listener(&db).await;
    assert_eq!(
        relay
            .query_one("SELECT outbox.doorbell_channel()", &[])
            .await
            .unwrap()
            .get::<_, String>(0),
        CHANNEL
    );
    assert_eq!(arm(&relay).await, "armed");
    let producer = db.client().await;
    enqueue(&producer, "orders", json!(1)).await;
    let n = next(&mut rx).await;
    assert_eq!(n.channel(), CHANNEL);
    assert_eq!(n.payload(), "", "the doorbell carries no data");
}

#[tokio::test]
async fn doorbell_is_silent_while_no_relay_sleeps() {
    let db = TestDb::new().await;
    let (relay, mut rx) = listener(&db).await;
    let producer = db.client().await;

    enqueue_then_marker(&producer, "first").await;
    assert_eq!(
        next(&mut rx).await.payload(),
        "first",
        "rang while nobody was armed"
    );

    assert_eq!(arm(&relay).await, "armed");
    assert!(disarm(&relay).await);
    enqueue_then_marker(&producer, "second").await;
    assert_eq!(
        next(&mut rx).await.payload(),
        "second",
        "rang after the relay disarmed"
    );
}

#[tokio::test]
async fn a_relay_going_to_sleep_misses_no_message() {
    let db = TestDb::new().await;
    let (relay, mut rx) = listener(&db).await;
    let relay = Arc::new(relay);
    let relay_pid: i32 = relay
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let mut early = db.client().await;
    let late = db.client().await;
    let observer = db.client().await;

    // A producer enqueued before the relay armed, and has not committed: the
    // trigger stayed silent (nobody was asleep).
    let tx = early.transaction().await.unwrap();
    let early_id: i64 = tx
        .query_one("SELECT outbox.enqueue('orders', '\"early\"')", &[])
        .await
        .unwrap()
        .get(0);

    // The relay's claim found nothing; it arms. Arming waits for the silent
    // producer to finish.
    assert!(claim(&relay, "relay", 10).await.is_empty());
    let arming = tokio::spawn({
        let relay = relay.clone();
        async move {
            relay
                .query_one("SELECT outbox.doorbell_arm('60 seconds')", &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    });
    outbox_tests::wait_until(MUST_ARRIVE, || async {
        observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%doorbell_arm%' AND state = 'active'",
                &[&relay_pid],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    })
    .await;
    // Another producer commits while the relay is arming (it may ring or not).
    let late_id = enqueue(&late, "orders", json!("late")).await;
    assert!(
        !arming.is_finished(),
        "arm returned while a silent producer was still open"
    );
    tx.commit().await.unwrap();
    assert_eq!(arming.await.unwrap(), "armed");

    // The re-check after arming sees everything committed before it...
    let mut found: Vec<i64> = claim(&relay, "relay", 10)
        .await
        .iter()
        .map(|m| m.id)
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![early_id, late_id],
        "the re-check missed a committed message"
    );
    // ...and from now on every producer rings.
    while rx.try_recv().is_ok() {}
    enqueue_then_marker(&late, "after-arming").await;
    assert_eq!(
        next(&mut rx).await.payload(),
        "",
        "an armed relay was not rung"
    );
}

#[tokio::test]
async fn arming_is_idempotent_and_disarm_reports_whether_it_was_armed() {
    let db = TestDb::new().await;
    let c = db.client().await;
    assert_eq!(arm(&c).await, "armed");
    assert_eq!(arm(&c).await, "armed");
    assert!(disarm(&c).await);
    assert!(!disarm(&c).await);
    let held = count(
        &c,
        "SELECT count(*) FROM pg_locks WHERE relation = 'outbox.doorbell_gate'::regclass AND pid = pg_backend_pid()",
    )
    .await;
    assert_eq!(held, 0, "a disarmed relay still holds the doorbell lock");
}

#[tokio::test]
async fn arming_gives_up_after_its_wait_while_a_producer_stays_open() {
    let db = TestDb::new().await;
    let relay = db.client().await;
    let mut producer = db.client().await;
    let tx = producer.transaction().await.unwrap();
    tx.query_one("SELECT outbox.enqueue('orders', '1')", &[])
        .await
        .unwrap();
    let armed: String = relay
        .query_one("SELECT outbox.doorbell_arm('50 milliseconds')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        armed, "busy",
        "armed although a silent producer was still open"
    );
    tx.commit().await.unwrap();
    assert_eq!(arm(&relay).await, "armed");
}

#[tokio::test]
async fn several_relays_sleep_at_once_and_each_is_rung() {
    let db = TestDb::new().await;
    let (first, mut first_rx) = listener(&db).await;
    let (second, mut second_rx) = listener(&db).await;
    let producer = db.client().await;
    assert_eq!(arm(&first).await, "armed");
    assert_eq!(arm(&second).await, "armed");

    enqueue(&producer, "orders", json!(1)).await;
    assert_eq!(next(&mut first_rx).await.payload(), "");
    assert_eq!(next(&mut second_rx).await.payload(), "");

    // One relay wakes and leaves; the other still sleeps and is still rung.
    assert!(disarm(&first).await);
    enqueue(&producer, "orders", json!(2)).await;
    assert_eq!(next(&mut second_rx).await.payload(), "");
}

#[tokio::test]
async fn a_relay_that_disconnects_while_armed_leaves_the_gate_open() {
    let db = TestDb::new().await;
    let observer = db.client().await;
    {
        let relay = db.client().await;
        assert_eq!(arm(&relay).await, "armed");
    }
    // Dropping the client ends the backend; its exit hook unlocks the gate,
    // so producers go silent again instead of ringing for a dead relay.
    outbox_tests::wait_until(MUST_ARRIVE, || async {
        count(
            &observer,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND relation = 'outbox.doorbell_gate'::regclass",
        )
        .await
            == 0
    })
    .await;
    let (_listener, mut rx) = listener(&db).await;
    enqueue_then_marker(&observer, "silent").await;
    assert_eq!(next(&mut rx).await.payload(), "silent");
}

#[tokio::test]
async fn an_aborted_transaction_disarms_and_arm_says_so_again() {
    let db = TestDb::new().await;
    let relay = db.client().await;
    assert_eq!(arm(&relay).await, "armed");
    // PostgreSQL drops session-level locks when a transaction aborts.
    relay.batch_execute("BEGIN; SELECT 1/0;").await.unwrap_err();
    relay.batch_execute("ROLLBACK").await.unwrap();
    assert!(
        !disarm(&relay).await,
        "disarm claimed a lock the abort had dropped"
    );
    assert_eq!(arm(&relay).await, "armed");
    assert!(disarm(&relay).await);
}
