//! The privilege split and the hardening: PUBLIC gets nothing, producers can
//! only enqueue, relays can only relay, and objects planted on a caller's
//! search_path change nothing.

use crate::common::*;
use outbox_tests::tokio_postgres::Client;
use outbox_tests::TestDb;
use serde_json::json;

const DENIED: &str = "42501";

async fn denied(c: &Client, sql: &str) {
    match c.batch_execute(sql).await {
        Ok(()) => panic!("{sql}: allowed, expected permission denied"),
        Err(e) => assert_eq!(sqlstate(&e), DENIED, "{sql}: {e:?}"),
    }
}

#[tokio::test]
async fn public_gets_no_privilege_on_any_outbox_object() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let open: Vec<String> = c
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
             WHERE p.pronamespace = 'outbox'::regnamespace
               AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(open.is_empty(), "PUBLIC may execute: {open:?}");
    let unpinned: Vec<String> = c
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
             WHERE p.pronamespace = 'outbox'::regnamespace
               AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
               -- Bodies without a SET clause on purpose (outbox_tests::UNPINNED_BODIES);
               -- security/shadowing.rs checks that only the owner may run them.
               AND p.proname <> ALL ($1::text[])",
            &[&outbox_tests::UNPINNED_BODIES],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        unpinned.is_empty(),
        "functions without a pinned search_path: {unpinned:?}"
    );

    let nobody = db.create_role("nobody").await;
    let n = db.client_as(&nobody).await;
    denied(&n, "SELECT outbox.enqueue('orders', '1')").await;
    denied(&n, "SELECT * FROM outbox.messages").await;
    denied(&n, "SELECT * FROM outbox.claim('r')").await;
}

#[tokio::test]
async fn a_producer_can_enqueue_but_not_read_claim_or_finish() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    let producer = db.create_role("producer").await;
    grant(&admin, "grant_producer", &producer).await;
    let p = db.client_as(&producer).await;

    let id: i64 = p
        .query_one("SELECT outbox.enqueue('orders', '{\"n\": 1}')", &[])
        .await
        .unwrap()
        .get(0);
    p.batch_execute("SELECT outbox.enqueue_batch('orders', ARRAY['2']::jsonb[])")
        .await
        .unwrap();
    // Inside the producer's own transaction, like an application would.
    p.batch_execute("BEGIN; SELECT outbox.enqueue('orders', '3'); COMMIT;")
        .await
        .unwrap();

    denied(&p, "SELECT * FROM outbox.messages").await;
    for table in ["outbox.log", "outbox.side"] {
        denied(&p, &format!("SELECT * FROM {table}")).await;
        denied(
            &p,
            &format!(
                "INSERT INTO {table} (id, topic, payload, max_attempts) VALUES (1, 'x', '1', 1)"
            ),
        )
        .await;
        denied(&p, &format!("DELETE FROM {table}")).await;
    }
    denied(&p, "UPDATE outbox.partitions SET batch = '{}'").await;
    denied(&p, "SELECT * FROM outbox.claim('sneaky')").await;
    denied(
        &p,
        &format!("SELECT outbox.complete({id}, gen_random_uuid())"),
    )
    .await;
    denied(&p, "SELECT * FROM outbox.stats()").await;
    denied(&p, "SELECT * FROM outbox.list_dead()").await;
    denied(&p, &format!("SELECT outbox.grant_relay('{producer}')")).await;
    assert_eq!(
        count(&admin, "SELECT count(*) FROM outbox.messages").await,
        3
    );
}

#[tokio::test]
async fn a_relay_can_relay_but_not_enqueue_or_read_the_tables() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    let relay = db.create_role("relay").await;
    grant(&admin, "grant_relay", &relay).await;
    enqueue(&admin, "orders", json!(1)).await;
    enqueue(&admin, "orders", json!(2)).await;
    enqueue(&admin, "orders", json!(3)).await;
    enqueue(&admin, "orders", json!(4)).await;
    let r = db.client_as(&relay).await;

    let batch = claim(&r, "relay-1", 4).await;
    assert_eq!(batch.len(), 4);
    assert!(complete(&r, &batch[0]).await);
    assert_eq!(fail(&r, &batch[1], "nope").await, "retrying");
    let released: bool = r
        .query_one(
            "SELECT outbox.release($1, $2)",
            &[&batch[2].id, &batch[2].token],
        )
        .await
        .unwrap()
        .get(0);
    assert!(released);
    r.query_one(
        "SELECT outbox.extend($1, $2)",
        &[&batch[3].id, &batch[3].token],
    )
    .await
    .unwrap();
    r.query("SELECT * FROM outbox.stats()", &[]).await.unwrap();
    r.batch_execute(
        "LISTEN outbox_doorbell; SELECT outbox.doorbell_arm(); SELECT outbox.doorbell_disarm();",
    )
    .await
    .unwrap();

    denied(&r, "SELECT outbox.enqueue('orders', '1')").await;
    denied(&r, "SELECT * FROM outbox.messages").await;
    denied(&r, "SELECT * FROM outbox.list_dead()").await;
    denied(&r, "SELECT outbox.purge_dead_topic('orders')").await;
}

#[tokio::test]
async fn an_admin_can_look_and_revoke_all_takes_everything_back() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    let ops = db.create_role("ops").await;
    grant(&admin, "grant_admin", &ops).await;
    let o = db.client_as(&ops).await;
    enqueue(&o, "orders", json!(1)).await;
    assert_eq!(count(&o, "SELECT count(*) FROM outbox.messages").await, 1);
    o.query("SELECT * FROM outbox.list_dead()", &[])
        .await
        .unwrap();
    o.query("SELECT * FROM outbox.blocked_keys()", &[])
        .await
        .unwrap();
    for table in ["outbox.log", "outbox.side", "outbox.partitions"] {
        denied(&o, &format!("DELETE FROM {table}")).await;
    }
    drop(o);

    grant(&admin, "revoke_all", &ops).await;
    let o = db.client_as(&ops).await;
    denied(&o, "SELECT outbox.enqueue('orders', '1')").await;
    denied(&o, "SELECT count(*) FROM outbox.messages").await;
}

#[tokio::test]
async fn objects_planted_on_the_search_path_change_nothing() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    let relay = db.create_role("relay").await;
    grant(&admin, "grant_relay", &relay).await;
    // A hostile schema that shadows what the outbox's SQL uses: a constant
    // "random" token, a frozen clock, and equality operators that always
    // match (which would let any token finish any message).
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA evil AUTHORIZATION {relay};
             CREATE FUNCTION evil.gen_random_uuid() RETURNS uuid LANGUAGE sql
                 AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;
             CREATE FUNCTION evil.statement_timestamp() RETURNS timestamptz LANGUAGE sql
                 AS $$ SELECT 'infinity'::timestamptz $$;
             CREATE FUNCTION evil.always(uuid, uuid) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
             CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.always);
             CREATE FUNCTION evil.always8(bigint, bigint) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
             CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.always8);
             GRANT USAGE ON SCHEMA evil TO PUBLIC;"
        ))
        .await
        .unwrap();
    let first = enqueue(&admin, "orders", json!(1)).await;
    enqueue(&admin, "orders", json!(2)).await;
    let r = db.client_as(&relay).await;
    r.batch_execute("SET search_path = evil, pg_catalog")
        .await
        .unwrap();

    let a = claim(&r, "relay", 1).await.remove(0);
    let b = claim(&r, "relay", 1).await.remove(0);
    assert_eq!(a.id, first);
    assert_ne!(a.token, uuid::Uuid::nil());
    assert_ne!(a.token, b.token);
    // With the hostile schema first on the path this is evil's nil uuid.
    let forged: bool = r
        .query_one("SELECT outbox.complete($1, gen_random_uuid())", &[&a.id])
        .await
        .unwrap()
        .get(0);
    assert!(!forged, "a forged token completed a message");
    let lease_ok: bool = admin
        .query_one(
            "SELECT lease_expires_at < 'infinity' FROM outbox.messages WHERE id = $1",
            &[&a.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(lease_ok);
    assert!(complete(&r, &a).await);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM outbox.messages").await,
        1
    );
}
