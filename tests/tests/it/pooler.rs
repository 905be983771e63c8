//! Through a real PgBouncer in transaction mode, where nothing of a session
//! survives between transactions: producers enqueue with the Rust library
//! and with plain SQL, and `outbox-relay --pooler` delivers every message
//! and keeps running (before it sent only named prepared statements and a
//! session SET, and a worker stopped within seconds).

use outbox_client::{NewMessage, Store, Topic};
use outbox_tests::tokio_postgres::types::Type;
use outbox_tests::tokio_postgres::{NoTls, SimpleQueryMessage};
use outbox_tests::{PgBouncer, RelayProcess, TestDb};
use serde_json::json;
use std::collections::HashSet;

const TOPIC: &str = "pooler.demo";

fn message(n: i64) -> NewMessage {
    NewMessage::new(Topic::new(TOPIC).unwrap(), &json!({ "n": n }))
        .unwrap()
        .with_key(format!("key-{}", n % 3))
}

#[tokio::test]
async fn producers_and_the_relay_work_through_a_transaction_mode_pooler() {
    let db = TestDb::new().await;
    let bouncer = PgBouncer::start(db.cluster());
    let (mut client, connection) = bouncer.config(db.name()).connect(NoTls).await.unwrap();
    tokio::spawn(connection);

    // The pooler really moves a client between server connections, so a
    // relay that relied on its session would break here: while another
    // client holds the first server connection in a transaction, the next
    // statement runs on a second one.
    let pid = "SELECT pg_backend_pid()";
    let first: i32 = client.query_typed(pid, &[]).await.unwrap()[0].get(0);
    let (mut other, connection) = bouncer.config(db.name()).connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    let holding = other.transaction().await.unwrap();
    let held: i32 = holding.query_typed(pid, &[]).await.unwrap()[0].get(0);
    let second: i32 = client.query_typed(pid, &[]).await.unwrap()[0].get(0);
    holding.commit().await.unwrap();
    assert_eq!(
        held, first,
        "the idle server connection went to the other client"
    );
    assert_ne!(second, first, "{}", bouncer.log());

    let mut ids = HashSet::new();
    for n in 0..10 {
        ids.insert(Store.enqueue(&client, &message(n)).await.unwrap());
    }
    let tx = client.transaction().await.unwrap();
    let batch: Vec<NewMessage> = (10..15).map(message).collect();
    let topic = Topic::new(TOPIC).unwrap();
    ids.extend(
        Store
            .enqueue_batch(&tx, &topic, &batch, None, None)
            .await
            .unwrap(),
    );
    tx.commit().await.unwrap();
    // Plain SQL in the simple query protocol, as psql and most drivers send.
    for n in 15..20 {
        let sql = format!("SELECT outbox.enqueue('{TOPIC}', '{{\"n\": {n}}}')");
        for m in client.simple_query(&sql).await.unwrap() {
            if let SimpleQueryMessage::Row(row) = m {
                ids.insert(row.get(0).unwrap().parse().unwrap());
            }
        }
    }
    assert_eq!(ids.len(), 20);

    let url = bouncer.connstr(db.name());
    let args = [
        "--database-url",
        url.as_str(),
        "--pooler",
        "--poll-interval",
        "200ms",
        "--batch-size",
        "4",
        "--concurrency",
        "2",
    ];
    let relay = RelayProcess::spawn(&args);
    relay.wait_for_ids(&ids).await;
    // A second wave, claimed by polling (no doorbell through a pooler).
    let mut more = HashSet::new();
    for n in 20..30 {
        more.insert(Store.enqueue(&client, &message(n)).await.unwrap());
    }
    relay.wait_for_ids(&more).await;

    let published = relay.ids();
    let unique: HashSet<i64> = published.iter().copied().collect();
    assert_eq!(
        unique.len(),
        published.len(),
        "each message once: {published:?}"
    );
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "the relay exited {status}:\n{log}");
    assert!(
        !log.contains("relay worker stopped") && !log.contains("prepared statement"),
        "{log}"
    );
    // Unnamed, as every statement through a pooler must be (tokio-postgres'
    // query() names its statements: "prepared statement s4 does not exist").
    let sql = "SELECT count(*) FROM outbox.messages WHERE topic = $1";
    let rows = client.query_typed(sql, &[(&TOPIC, Type::TEXT)]).await;
    let left: i64 = rows.unwrap()[0].get(0);
    assert_eq!(left, 0, "everything completed");
}
