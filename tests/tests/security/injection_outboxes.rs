//! SQL injection through the outbox-name arguments of named outboxes
//! (sql/outboxes.sql, sql/grants.sql): create_outbox and drop_outbox, the
//! grant functions' `outbox`, and the internals that build schema names into
//! DDL. A name that is not an outbox's is refused with its documented
//! SQLSTATE before any statement is built from it, and the rename rule
//! (`_in_outbox`) only rewrites text, never runs it.

use crate::common::*;
use crate::injection::NASTY;
use outbox_tests::{describe_error, quote_ident, TestDb};

/// `sql` with `$1` = `value` fails with `code`.
async fn refused(c: &outbox_tests::tokio_postgres::Client, sql: &str, value: &str, code: &str) {
    match c.execute(sql, &[&value]).await {
        Ok(_) => panic!("{sql} with {value:?}: succeeded, expected SQLSTATE {code}"),
        Err(e) => assert_eq!(
            sqlstate(&e),
            code,
            "{sql} with {value:?}: {}",
            describe_error(&e)
        ),
    }
}

#[tokio::test]
async fn outbox_names_are_refused_before_they_reach_any_statement() {
    let db = TestDb::new().await;
    let su = db.client().await;
    make_canary(&su).await;
    exec(&su, "SELECT outbox.create_outbox('billing')").await;
    let role = db.create_role("outbox_names").await;
    let role = quote_ident(&role);
    let schemas = "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'outbox%'";
    let schemas_before: i64 = one(&su, schemas, &[]).await.get(0);
    for s in NASTY {
        refused(&su, "SELECT outbox.create_outbox($1)", s, "22023").await;
        refused(&su, "SELECT outbox._check_outbox_name($1)", s, "22023").await;
        refused(&su, "SELECT outbox.drop_outbox($1)", s, "42704").await;
        refused(&su, "SELECT outbox._outbox_schema($1)", s, "42704").await;
        refused(&su, "SELECT outbox._clone_functions($1::name)", s, "22023").await;
        for g in ["grant_producer", "grant_relay", "grant_admin", "revoke_all"] {
            let sql = format!("SELECT outbox.{g}({}::regrole, $1)", literal(&role));
            refused(&su, &sql, s, "42704").await;
        }
        let sql = format!(
            "SELECT outbox._grant_functions({}::regrole, ARRAY['enqueue'], $1)",
            literal(&role)
        );
        refused(&su, &sql, s, "42704").await;
        // The rename rule is text in, text out: the string comes back with
        // only the default outbox's object names rewritten, and nothing ran.
        let renamed: String = one(&su, "SELECT outbox._in_outbox($1, 'outbox_billing')", &[s])
            .await
            .get(0);
        let want = s
            .replace("outbox.messages", "outbox_billing.messages")
            .replace("outbox.dead_letters", "outbox_billing.dead_letters");
        assert_eq!(renamed, want, "_in_outbox({s:?})");
        let kept: String = one(&su, "SELECT outbox._in_outbox('SELECT 1', $1)", &[s])
            .await
            .get(0);
        assert_eq!(kept, "SELECT 1", "_in_outbox(target => {s:?})");
    }
    let schemas_after: i64 = one(&su, schemas, &[]).await.get(0);
    assert_eq!(
        schemas_after, schemas_before,
        "a schema was created or dropped"
    );
    let outboxes: Vec<String> = rows(&su, "SELECT name FROM outbox.outboxes", &[])
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(outboxes, ["billing"]);
    let grants: i64 = one(
        &su,
        "SELECT count(*) FROM pg_proc AS p
         WHERE p.pronamespace IN ('outbox'::regnamespace, 'outbox_billing'::regnamespace)
           AND has_function_privilege($1::text::regrole::oid, p.oid, 'EXECUTE')",
        &[&role],
    )
    .await
    .get(0);
    assert_eq!(grants, 0, "a refused grant granted something");
    assert_tables_intact(&su, 0, 0).await;
}

/// `'...'` for an SQL literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
