//! Per-outbox grants: a role granted on one named outbox can do its job
//! there and nothing in another outbox or the default one.

use super::outboxes::{claim_in, sql_err};
use crate::common::*;
use outbox_tests::TestDb;

#[tokio::test]
async fn grants_are_per_outbox() {
    let db = TestDb::new().await;
    let su = db.client().await;
    su.batch_execute(
        "SELECT outbox.create_outbox('billing'); SELECT outbox.create_outbox('accounting');",
    )
    .await
    .unwrap();
    let producer = db.create_role("bill_producer").await;
    let relay = db.create_role("bill_relay").await;
    let admin = db.create_role("bill_admin").await;
    for (f, role) in [
        ("grant_producer", &producer),
        ("grant_relay", &relay),
        ("grant_admin", &admin),
    ] {
        su.execute(
            &format!("SELECT outbox.{f}($1::text::regrole, outbox => 'billing')"),
            &[role],
        )
        .await
        .unwrap();
    }
    let (code, _) = sql_err(
        &su,
        &format!("SELECT outbox.grant_producer('{producer}', 'nope')"),
    )
    .await;
    assert_eq!(code, "42704");

    let p = db.client_as(&producer).await;
    p.batch_execute("SELECT outbox_billing.enqueue('t', '1'); SELECT outbox_billing.enqueue_batch('t', ARRAY['2']::jsonb[])")
        .await
        .unwrap();
    denied(
        &p,
        &[
            "SELECT outbox_accounting.enqueue('t', '1')",
            "SELECT outbox.enqueue('t', '1')",
            "SELECT * FROM outbox_billing.claim('r')",
            "SELECT count(*) FROM outbox_billing.messages",
            "SELECT count(*) FROM outbox_accounting.log",
            "SELECT outbox.create_outbox('mine')",
            "SELECT outbox.drop_outbox('accounting', force => true)",
        ],
    )
    .await;

    let r = db.client_as(&relay).await;
    assert_eq!(claim_in(&r, "outbox_billing", "r").await.len(), 2);
    denied(
        &r,
        &[
            "SELECT * FROM outbox_accounting.claim('r')",
            "SELECT * FROM outbox.claim('r')",
            "SELECT outbox_billing.enqueue('t', '1')",
            "SELECT * FROM outbox_billing.list_dead()",
        ],
    )
    .await;

    let a = db.client_as(&admin).await;
    assert_eq!(
        count(&a, "SELECT count(*) FROM outbox_billing.messages").await,
        2
    );
    a.batch_execute(
        "SELECT * FROM outbox_billing.list_dead(); SELECT * FROM outbox_billing.stats()",
    )
    .await
    .unwrap();
    denied(
        &a,
        &[
            "SELECT count(*) FROM outbox_accounting.messages",
            "SELECT count(*) FROM outbox.messages",
            "SELECT count(*) FROM outbox.outboxes",
        ],
    )
    .await;

    // revoke_all on one outbox leaves the others; NULL takes back all.
    su.execute(
        "SELECT outbox.grant_producer($1::text::regrole)",
        &[&producer],
    )
    .await
    .unwrap();
    su.execute(
        "SELECT outbox.revoke_all($1::text::regrole, 'billing')",
        &[&producer],
    )
    .await
    .unwrap();
    let p = db.client_as(&producer).await;
    let (code, _) = sql_err(&p, "SELECT outbox_billing.enqueue('t', '1')").await;
    assert_eq!(code, "42501");
    p.batch_execute("SELECT outbox.enqueue('t', '1')")
        .await
        .unwrap();
    su.execute("SELECT outbox.revoke_all($1::text::regrole)", &[&admin])
        .await
        .unwrap();
    let a = db.client_as(&admin).await;
    let (code, _) = sql_err(&a, "SELECT count(*) FROM outbox_billing.messages").await;
    assert_eq!(code, "42501");
}

#[tokio::test]
async fn a_named_outbox_has_no_public_privilege_and_pins_every_search_path() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("SELECT outbox.create_outbox('billing')")
        .await
        .unwrap();
    let open = count(
        &c,
        "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'outbox_billing'::regnamespace
           AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))",
    )
    .await;
    assert_eq!(open, 0, "PUBLIC may execute a billing function");
    // The same functions as the default outbox, each pinned as its original.
    let differing: Vec<String> = c
        .query(
            "SELECT coalesce(d.proname, b.proname)::text
             FROM (SELECT * FROM pg_proc WHERE pronamespace = 'outbox'::regnamespace
                     AND proname <> ALL (outbox._shared_names())) d
             FULL JOIN (SELECT * FROM pg_proc WHERE pronamespace = 'outbox_billing'::regnamespace) b
               ON b.proname = d.proname
              AND pg_get_function_identity_arguments(b.oid) = pg_get_function_identity_arguments(d.oid)
             WHERE d.oid IS NULL OR b.oid IS NULL
                OR b.proconfig IS DISTINCT FROM d.proconfig OR b.prosecdef <> d.prosecdef
                OR b.provolatile <> d.provolatile",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        differing.is_empty(),
        "billing's functions differ: {differing:?}"
    );
    // No billing body still names a per-outbox object of the default outbox.
    let leaks: Vec<String> = c
        .query(
            "SELECT p.proname::text FROM pg_proc p
             WHERE p.pronamespace = 'outbox_billing'::regnamespace
               AND p.prosrc ~ ('\\moutbox\\.(' || array_to_string(outbox._cloned_names(), '|') || ')\\M')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        leaks.is_empty(),
        "bodies still using the default outbox: {leaks:?}"
    );
}

/// Every statement of `sqls` is refused with 42501 for `c`'s role.
async fn denied(c: &outbox_tests::tokio_postgres::Client, sqls: &[&str]) {
    for sql in sqls {
        let (code, _) = sql_err(c, sql).await;
        assert_eq!(code, "42501", "{sql}");
    }
}
