//! search_path attacks on the named-outbox functions (sql/outboxes.sql).
//! create_outbox and drop_outbox are SECURITY DEFINER so that an outbox's
//! objects belong to the extension owner whoever creates it, and only the
//! owner or a superuser may call them; so the session that could be
//! poisoned is theirs. Here a superuser session has the planted objects of
//! shadowing.rs first on its path and in its pg_temp, and creates, uses and
//! drops an outbox: a function that resolved a planted object would raise.
//! The cloned functions carry the default ones' pinned search_path
//! (outboxes.rs checks proconfig is identical).

use crate::common::*;
use crate::shadowing::plant;
use outbox_tests::TestDb;

#[tokio::test]
async fn creating_using_and_dropping_an_outbox_ignores_a_poisoned_path() {
    let db = TestDb::new().await;
    let su = db.client().await;
    exec(&su, "CREATE SCHEMA evil").await;
    exec(&su, &plant("evil")).await;
    exec(&su, &plant("pg_temp")).await;
    exec(&su, "SET search_path = evil, pg_temp, pg_catalog").await;
    // The control: this session does resolve the planted objects.
    let e = su
        .batch_execute("SELECT 1::bigint = 2::bigint")
        .await
        .expect_err("the planted operator was not used");
    assert!(format!("{e:?}").contains("shadow object called"), "{e:?}");

    exec(&su, "SELECT outbox.create_outbox('shadowed')").await;
    let id: i64 = one(
        &su,
        "SELECT outbox_shadowed.enqueue('t', '{}', key => 'k', dedup_key => 'd')",
        &[],
    )
    .await
    .get(0);
    let claimed: i64 = one(
        &su,
        "SELECT pg_catalog.count(*) FROM outbox_shadowed.claim('r', 10)",
        &[],
    )
    .await
    .get(0);
    assert_eq!(claimed, 1, "message {id} claimed");
    exec(&su, "SELECT outbox._refresh_outboxes()").await;
    exec(&su, "SELECT outbox.drop_outbox('shadowed', force => true)").await;
    exec(&su, "SET search_path = pg_catalog").await;
    let left: i64 = one(
        &su,
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'outbox_shadowed'",
        &[],
    )
    .await
    .get(0);
    assert_eq!(left, 0, "drop_outbox left the schema");
}
