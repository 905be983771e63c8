//! A named outbox across the extension's life: re-cloning its functions
//! after an upgrade changed them (`outbox._refresh_outboxes()`), and
//! `DROP EXTENSION` while one exists (docs/upgrading.md, docs/sql-api.md).

use super::outboxes::{one_i64, sql_err};
use outbox_tests::TestDb;

#[tokio::test]
async fn refresh_recreates_the_functions_of_every_named_outbox() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "SELECT outbox.create_outbox('billing');
         DROP FUNCTION outbox_billing.stats();",
    )
    .await
    .unwrap();
    let role = db.create_role("bill_relay").await;
    c.execute(
        "SELECT outbox.grant_relay($1::text::regrole, 'billing')",
        &[&role],
    )
    .await
    .unwrap();
    assert_eq!(
        one_i64(&c, "SELECT outbox._refresh_outboxes()::bigint").await,
        1
    );
    c.batch_execute("SELECT * FROM outbox_billing.stats()")
        .await
        .unwrap();
    // Re-created functions keep their grants; new ones get none.
    let r = db.client_as(&role).await;
    r.batch_execute("SELECT * FROM outbox_billing.claim('r')")
        .await
        .unwrap();
    let (code, _) = sql_err(&r, "SELECT * FROM outbox_billing.stats()").await;
    assert_eq!(code, "42501");
}

#[tokio::test]
async fn drop_extension_refuses_while_a_named_outbox_exists() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("SELECT outbox.create_outbox('billing')")
        .await
        .unwrap();
    // The doorbell triggers of billing's tables use the shared trigger
    // function, a member of the extension.
    let (code, message) = sql_err(&c, "DROP EXTENSION outbox").await;
    assert_eq!(code, "2BP01", "{message}");
    assert_eq!(
        one_i64(
            &c,
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('outbox', 'outbox_billing')"
        )
        .await,
        2,
        "nothing was dropped"
    );
    // Dropping the named outbox first lets the extension go, and leaves
    // no outbox schema behind (schema outbox itself goes with the
    // extension only if CREATE EXTENSION created it).
    c.batch_execute("SELECT outbox.drop_outbox('billing'); DROP EXTENSION outbox")
        .await
        .unwrap();
    assert_eq!(
        one_i64(
            &c,
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'outbox\\_%'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn drop_extension_cascade_leaves_a_named_outboxs_schema_behind() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "SELECT outbox.create_outbox('billing');
         SELECT outbox_billing.enqueue('t', '{}');
         SET client_min_messages = warning;
         DROP EXTENSION outbox CASCADE",
    )
    .await
    .unwrap();
    // What docs/sql-api.md says: CASCADE drops only the doorbell triggers;
    // billing's schema and its rows stay, to be dropped by hand.
    assert_eq!(
        one_i64(&c, "SELECT count(*) FROM outbox_billing.log").await,
        1,
        "the message is still there"
    );
    assert_eq!(
        one_i64(
            &c,
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'doorbell'"
        )
        .await,
        0
    );
}
