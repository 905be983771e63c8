//! Named outboxes from Rust: `outbox-relay --outbox NAME` relays only that
//! outbox, woken by its own doorbell, with a role granted on it alone; and
//! `Store::for_outbox` calls the named outbox's functions.

use crate::common::*;
use outbox_client::{Error, NewMessage, Store, Topic};
use outbox_tests::{wait_until, RelayProcess, TestDb, RELAY_PATIENCE as PATIENCE};
use serde_json::json;
use std::collections::HashSet;

/// Relays sleeping on billing's doorbell gate.
const ARMED_ON_BILLING: &str = "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND relation = 'outbox_billing.doorbell_gate'::regclass AND mode = 'ShareLock' AND granted";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_scoped_to_one_outbox_delivers_it_and_nothing_else() {
    let db = TestDb::new().await;
    let su = db.client().await;
    su.batch_execute("SELECT outbox.create_outbox('billing')")
        .await
        .unwrap();
    let role = db.create_role("bill_relay").await;
    su.execute(
        "SELECT outbox.grant_relay($1::text::regrole, outbox => 'billing')",
        &[&role],
    )
    .await
    .unwrap();
    let conn = format!(
        "host={} port={} dbname={} user={role}",
        db.cluster().socket_dir().display(),
        db.cluster().port(),
        db.name()
    );
    // Its only privileges are on billing: a relay that touched the default
    // outbox would fail with 42501 and stop.
    let relay = RelayProcess::spawn(&[
        "--database-url",
        &conn,
        "--outbox",
        "billing",
        "--poll-interval",
        "10m",
    ]);
    let default_id = enqueue(&su, "orders", json!("stays")).await;
    // Asleep on billing's gate, then woken by billing's doorbell: the poll
    // interval (10 min) is far beyond the test's wait bound.
    wait_until(PATIENCE, || async {
        count(&su, ARMED_ON_BILLING).await == 1
    })
    .await;
    let billing = Store::for_outbox("billing").unwrap();
    let msg = NewMessage::new(Topic::new("invoice.sent").unwrap(), &json!({"id": 7})).unwrap();
    let id = billing.enqueue(&su, &msg).await.unwrap();
    relay.wait_for_ids(&HashSet::from([id])).await;
    assert!(
        !relay.ids().contains(&default_id),
        "the billing relay published the default outbox's message"
    );
    assert_eq!(count(&su, "SELECT count(*) FROM outbox.messages").await, 1);
    wait_until(PATIENCE, || async {
        count(&su, "SELECT count(*) FROM outbox_billing.messages").await == 0
    })
    .await;
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{log}");
}

#[tokio::test]
async fn a_relay_for_an_outbox_that_does_not_exist_says_so_and_stops() {
    let db = TestDb::new().await;
    let out = std::process::Command::new(outbox_tests::relay_binary())
        .args(["--database-url", &db.connstr(), "--outbox", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("outbox_nope"), "{stderr}");

    let out = std::process::Command::new(outbox_tests::relay_binary())
        .args(["--database-url", &db.connstr(), "--outbox", "Bad-Name"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outbox"));
}

#[tokio::test]
async fn a_store_for_an_outbox_runs_every_call_there() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("SELECT outbox.create_outbox('billing')")
        .await
        .unwrap();
    let billing = Store::for_outbox("billing").unwrap();
    let topic = Topic::new("invoice.sent").unwrap();
    let one = NewMessage::new(topic.clone(), &json!(1))
        .unwrap()
        .with_dedup_key("inv-1")
        .unwrap();
    let a = billing.enqueue(&c, &one).await.unwrap();
    assert_eq!(
        billing.enqueue(&c, &one).await.unwrap(),
        a,
        "dedup within billing"
    );
    let batch = [NewMessage::new(topic.clone(), &json!(2)).unwrap()];
    billing
        .enqueue_batch(&c, &topic, &batch, None, None)
        .await
        .unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.messages").await, 0);
    let stats = billing.stats(&c).await.unwrap();
    assert_eq!(stats.iter().map(|s| s.ready).sum::<i64>(), 2);
    let claim = billing
        .claim(&c, "r", 10, std::time::Duration::from_secs(30), None)
        .await
        .unwrap();
    assert_eq!(claim.messages.len(), 2);
    let ids: Vec<i64> = claim.messages.iter().map(|m| m.id).collect();
    let token = claim.messages[0].lease_token;
    assert_eq!(billing.complete_batch(&c, &ids, token).await.unwrap(), 2);
    assert_eq!(
        billing
            .list_messages(&c, &Default::default())
            .await
            .unwrap()
            .len(),
        0
    );
    assert!(Store::for_outbox("Billing").is_err());
    let missing = Store::for_outbox("nope")
        .unwrap()
        .stats(&c)
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, Error::OutboxMissing { name } if name == "nope"),
        "{missing:?}"
    );
    assert!(
        missing.to_string().contains("outbox.create_outbox('nope')"),
        "{missing}"
    );
}
