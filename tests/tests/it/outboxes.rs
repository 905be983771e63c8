//! Named outboxes (sql/outboxes.sql): create and drop with their errors,
//! isolation of messages, claims, dedup keys and the doorbell between
//! outboxes, and two busy outboxes at once (grants: outboxes_grants.rs;
//! refresh and DROP EXTENSION: outboxes_lifecycle.rs).

use crate::common::*;
use outbox_tests::tokio_postgres::Client;
use outbox_tests::TestDb;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

pub(crate) async fn sql_err(c: &Client, sql: &str) -> (String, String) {
    match c.batch_execute(sql).await {
        Ok(()) => panic!("{sql}: succeeded, expected an error"),
        Err(e) => (
            sqlstate(&e),
            e.as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_default(),
        ),
    }
}

pub(crate) async fn one_i64(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// The ids `<schema>.claim(owner)` hands out, with their token.
pub(crate) async fn claim_in(c: &Client, schema: &str, owner: &str) -> Vec<(i64, uuid::Uuid)> {
    c.query(
        &format!("SELECT id, lease_token FROM {schema}.claim($1, 100)"),
        &[&owner],
    )
    .await
    .unwrap_or_else(|e| panic!("{schema}.claim: {e:?}"))
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn create_and_drop_refuse_what_would_clash_or_lose_messages() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let schema: String = c
        .query_one("SELECT outbox.create_outbox('billing')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(schema, "outbox_billing");

    let (code, msg) = sql_err(&c, "SELECT outbox.create_outbox('billing')").await;
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("42710", "outbox \"billing\" already exists")
    );
    for bad in ["'Billing'", "'1x'", "'bill-ing'", "''", "repeat('a', 41)"] {
        let (code, _) = sql_err(&c, &format!("SELECT outbox.create_outbox({bad})")).await;
        assert_eq!(code, "22023", "{bad}");
    }
    let (code, _) = sql_err(&c, "SELECT outbox.create_outbox(NULL)").await;
    assert_eq!(code, "22004");
    c.batch_execute("CREATE SCHEMA outbox_taken").await.unwrap();
    let (code, _) = sql_err(&c, "SELECT outbox.create_outbox('taken')").await;
    assert_eq!(code, "42P06");
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.outboxes").await,
        1,
        "only billing is registered: the failed calls left nothing behind"
    );

    let (code, _) = sql_err(&c, "SELECT outbox.drop_outbox('nope')").await;
    assert_eq!(code, "42704");
    c.batch_execute("SELECT outbox_billing.enqueue('invoices', '1')")
        .await
        .unwrap();
    let (code, msg) = sql_err(&c, "SELECT outbox.drop_outbox('billing')").await;
    assert_eq!(code, "55006", "{msg}");
    assert!(msg.contains("1 unfinished message"), "{msg}");
    c.batch_execute("SELECT outbox.drop_outbox('billing', force => true)")
        .await
        .unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.outboxes").await, 0);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'outbox_billing'"
        )
        .await,
        0
    );
    // Dropped and created again: empty and working.
    c.batch_execute("SELECT outbox.create_outbox('billing')")
        .await
        .unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox_billing.messages").await,
        0
    );
    c.batch_execute("SELECT outbox_billing.enqueue('invoices', '2')")
        .await
        .unwrap();
    assert_eq!(claim_in(&c, "outbox_billing", "r").await.len(), 1);
}

#[tokio::test]
async fn each_outbox_holds_claims_and_settles_only_its_own_messages() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "SELECT outbox.create_outbox('billing'); SELECT outbox.create_outbox('accounting');",
    )
    .await
    .unwrap();
    let mut ids = std::collections::BTreeMap::new();
    for schema in ["outbox", "outbox_billing", "outbox_accounting"] {
        let mut mine = Vec::new();
        for n in 0..5 {
            mine.push(
                c.query_one(
                    &format!("SELECT {schema}.enqueue('t', $1::text::jsonb)"),
                    &[&n.to_string()],
                )
                .await
                .unwrap()
                .get::<_, i64>(0),
            );
        }
        ids.insert(schema, mine);
    }
    // A claim in one outbox never sees another's messages.
    let billing = claim_in(&c, "outbox_billing", "r").await;
    let mut got: Vec<i64> = billing.iter().map(|m| m.0).collect();
    got.sort_unstable();
    assert_eq!(got, ids["outbox_billing"]);
    let mut default_ids: Vec<i64> = claim_in(&c, "outbox", "r")
        .await
        .iter()
        .map(|m| m.0)
        .collect();
    default_ids.sort_unstable();
    assert_eq!(default_ids, ids["outbox"]);

    // Billing's token settles nothing in the default outbox ...
    let (id, token) = billing[0];
    let done: bool = c
        .query_one("SELECT outbox.complete($1, $2)", &[&id, &token])
        .await
        .unwrap()
        .get(0);
    assert!(!done, "the default outbox completed billing's message");
    // ... and does in billing.
    let n: i32 = c
        .query_one(
            "SELECT outbox_billing.complete_batch($1, $2)",
            &[&billing.iter().map(|m| m.0).collect::<Vec<_>>(), &token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 5);
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox_billing.messages").await,
        0
    );
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.messages").await, 5);
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox_accounting.messages").await,
        5
    );

    // Failing and dead letters stay in their outbox too.
    let acc = claim_in(&c, "outbox_accounting", "r").await;
    c.execute(
        "SELECT * FROM outbox_accounting.fail($1, $2, 'bad', permanent => true)",
        &[&acc[0].0, &acc[0].1],
    )
    .await
    .unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox_accounting.dead_letters").await,
        1
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.dead_letters").await,
        0
    );
    let listed = count(
        &c,
        "SELECT count(*) FROM outbox_accounting.list_messages(state => 'dead')",
    )
    .await;
    assert_eq!(listed, 1);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM outbox.list_messages(state => 'dead')"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn dedup_keys_and_partitions_belong_to_one_outbox() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("SELECT outbox.create_outbox('billing')")
        .await
        .unwrap();
    let a = one_i64(
        &c,
        "SELECT outbox.enqueue('t', '1', dedup_key => 'order-42')",
    )
    .await;
    let b = one_i64(
        &c,
        "SELECT outbox_billing.enqueue('t', '1', dedup_key => 'order-42')",
    )
    .await;
    assert_ne!(a, b, "one dedup key in two outboxes is two messages");
    let again = one_i64(
        &c,
        "SELECT outbox_billing.enqueue('t', '1', dedup_key => 'order-42')",
    )
    .await;
    assert_eq!(again, b, "within billing the key is held");
    // Rotation is per outbox: billing's first claim set up its segments.
    c.batch_execute("SELECT outbox_billing.enqueue('t', '2')")
        .await
        .unwrap();
    assert_eq!(claim_in(&c, "outbox_billing", "r").await.len(), 2);
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox_billing.segments").await,
        3
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox_billing.log").await,
        2
    );
    assert_eq!(count(&c, "SELECT count(*) FROM outbox.log").await, 1);
}

#[tokio::test]
async fn each_outbox_has_its_own_doorbell() {
    let db = TestDb::new().await;
    let su = db.client().await;
    su.batch_execute("SELECT outbox.create_outbox('billing')")
        .await
        .unwrap();
    let channel: String = su
        .query_one("SELECT outbox_billing.doorbell_channel()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(channel, "outbox_billing_doorbell");
    let default_channel: String = su
        .query_one("SELECT outbox.doorbell_channel()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(default_channel, "outbox_doorbell");

    let (relay, mut rx) = crate::doorbell::listener_on(&db, &channel).await;
    let armed: String = relay
        .query_one("SELECT outbox_billing.doorbell_arm()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(armed, "armed");
    let producer = db.client().await;
    // The default outbox's producers do not ring billing's relay: the
    // marker, sent after their commit, arrives first.
    producer
        .batch_execute(&format!(
            "SELECT outbox.enqueue('t', '1'); NOTIFY {channel}, 'marker'"
        ))
        .await
        .unwrap();
    let first = timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.payload(),
        "marker",
        "the default outbox rang billing's doorbell"
    );
    // Billing's producers ring it.
    producer
        .batch_execute("SELECT outbox_billing.enqueue('t', '2')")
        .await
        .unwrap();
    let ring = timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ring.channel(), ring.payload()), (channel.as_str(), ""));
    // Armed on billing is not armed on the default outbox.
    let default_disarmed: bool = relay
        .query_one("SELECT outbox.doorbell_disarm()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!default_disarmed);
    let disarmed: bool = relay
        .query_one("SELECT outbox_billing.doorbell_disarm()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(disarmed);
}

#[tokio::test]
async fn two_busy_outboxes_deliver_everything_exactly_once() {
    let db = TestDb::new().await;
    let su = db.client().await;
    su.batch_execute("SELECT outbox.create_outbox('billing')")
        .await
        .unwrap();
    const PER_PRODUCER: i64 = 200;
    let mut tasks = Vec::new();
    for schema in ["outbox", "outbox_billing"] {
        for p in 0..2 {
            let c = db.client().await;
            tasks.push(tokio::spawn(async move {
                for n in 0..PER_PRODUCER {
                    c.execute(
                        &format!("SELECT {schema}.enqueue('t', $1::text::jsonb, key => $2)"),
                        &[
                            &format!("{{\"p\": {p}, \"n\": {n}}}"),
                            &format!("k{}", n % 7),
                        ],
                    )
                    .await
                    .unwrap();
                }
                Vec::new()
            }));
        }
        let done = Arc::new(AtomicI64::new(0));
        for r in 0..2 {
            let c = db.client().await;
            let done = Arc::clone(&done);
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                // Until the outbox's whole load is delivered (a bound, not a
                // timing: a lost message fails here instead of hanging).
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                while done.load(Ordering::SeqCst) < 2 * PER_PRODUCER {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "{schema}: not all delivered"
                    );
                    let batch = claim_in(&c, schema, &format!("r{r}")).await;
                    if batch.is_empty() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    let ids: Vec<i64> = batch.iter().map(|m| m.0).collect();
                    let n: i32 = c
                        .query_one(
                            &format!("SELECT {schema}.complete_batch($1, $2)"),
                            &[&ids, &batch[0].1],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    assert_eq!(n as usize, ids.len());
                    done.fetch_add(n.into(), Ordering::SeqCst);
                    seen.extend(ids.iter().map(|id| (schema, *id)));
                }
                seen
            }));
        }
    }
    let mut delivered = Vec::new();
    for t in tasks {
        delivered.extend(t.await.unwrap());
    }
    for schema in ["outbox", "outbox_billing"] {
        let mut mine: Vec<i64> = delivered
            .iter()
            .filter(|d| d.0 == schema)
            .map(|d| d.1)
            .collect();
        let n = mine.len();
        mine.sort_unstable();
        mine.dedup();
        assert_eq!(mine.len(), n, "{schema}: a message was delivered twice");
        assert_eq!(n as i64, 2 * PER_PRODUCER, "{schema}: delivered {n}");
        assert_eq!(
            count(&su, &format!("SELECT count(*) FROM {schema}.messages")).await,
            0,
            "{schema}: messages left"
        );
    }
}
