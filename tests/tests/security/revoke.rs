//! `outbox.revoke_all(role)` is documented to take back every privilege the
//! role has on the schema, its functions and its tables, including
//! privileges granted by hand. This grants one of each kind by hand and
//! checks that nothing is left.

use crate::common::*;
use outbox_tests::{quote_ident, TestDb};

#[tokio::test]
async fn revoke_all_takes_back_hand_granted_privileges_on_every_object() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let role = db.create_role("handmade").await;
    let q = quote_ident(&role);
    grant(&su, "grant_admin", &role).await;
    exec(
        &su,
        &format!(
            "GRANT CREATE ON SCHEMA outbox TO {q};
             GRANT EXECUTE ON FUNCTION outbox._check_dead_ids(bigint[]) TO {q};
             GRANT INSERT, DELETE ON outbox.messages TO {q};
             GRANT UPDATE (topic) ON outbox.dead_letters TO {q};
             GRANT USAGE, UPDATE ON SEQUENCE outbox.message_id TO {q};"
        ),
    )
    .await;
    grant(&su, "revoke_all", &role).await;

    let left = rows(
        &su,
        "SELECT 'EXECUTE on ' || p.oid::regprocedure::text FROM pg_proc AS p
         WHERE p.pronamespace = 'outbox'::regnamespace AND has_function_privilege($1, p.oid, 'EXECUTE')
         UNION ALL
         SELECT 'a privilege on table ' || c.oid::regclass::text FROM pg_class AS c
         WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND (has_table_privilege($1, c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')
                OR has_any_column_privilege($1, c.oid, 'SELECT,INSERT,UPDATE,REFERENCES'))
         UNION ALL
         SELECT 'a privilege on sequence ' || c.oid::regclass::text FROM pg_class AS c
         WHERE c.relnamespace = 'outbox'::regnamespace
           AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege($1, c.oid, 'USAGE,SELECT,UPDATE') END
         UNION ALL
         SELECT 'a privilege on schema outbox'
         WHERE has_schema_privilege($1, 'outbox', 'USAGE') OR has_schema_privilege($1, 'outbox', 'CREATE')
         ORDER BY 1",
        &[&role],
    )
    .await
    .iter()
    .map(|r| r.get::<_, String>(0))
    .collect::<Vec<_>>();
    assert!(
        left.is_empty(),
        "revoke_all left {role} with: {left:?}\n\
         (REVOKE ALL ON ALL TABLES IN SCHEMA does not cover sequences: revoke_all needs \
         REVOKE ALL ON ALL SEQUENCES IN SCHEMA outbox too)"
    );

    // Without USAGE on the schema the role cannot name the sequence, but a
    // sequence reached by OID is checked against its own ACL only.
    let c = db.client_as(&role).await;
    let oid: u32 = one(&su, "SELECT 'outbox.message_id'::regclass::oid", &[])
        .await
        .get(0);
    expect_code(
        &c,
        &format!("SELECT setval({oid}::oid::regclass, 1, false)"),
        DENIED,
    )
    .await;
}
