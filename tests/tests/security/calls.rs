//! The matrix again, by really calling every function and touching every
//! table and sequence as each role: a denied call must fail with 42501, an
//! allowed one must reach the function (any other result). The expectations
//! are matrix.rs's.

use crate::common::*;
use crate::matrix::{
    catalog_functions, catalog_relations, expected, relation_mask, FUNCTIONS, RELATIONS,
    SEQUENCE_PRIVILEGES, TABLE_PRIVILEGES,
};
use outbox_tests::tokio_postgres::Client;
use outbox_tests::{describe_error, TestDb};

/// `SELECT outbox.f(NULL::t1, ...)`: type-correct, so a denied call fails on
/// the privilege check and an allowed one reaches the function.
async fn null_call(su: &Client, oid: u32, kind: &str) -> String {
    let r = one(
        su,
        "SELECT p.oid::regproc::text,
                coalesce(string_agg('NULL::' || format_type(t.typ, NULL), ', ' ORDER BY t.n), '')
         FROM pg_proc AS p LEFT JOIN unnest(p.proargtypes::oid[]) WITH ORDINALITY AS t(typ, n) ON true
         WHERE p.oid = $1::oid GROUP BY p.oid",
        &[&oid],
    )
    .await;
    let (name, args): (String, String) = (r.get(0), r.get(1));
    if kind == "p" {
        format!("CALL {name}({args})")
    } else {
        format!("SELECT {name}({args})")
    }
}

#[tokio::test]
async fn denied_calls_fail_with_42501_and_allowed_calls_reach_the_function() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let mut problems = Vec::new();
    let functions = catalog_functions(&su).await;
    for role in Role::ALL {
        let c = db.client_as(roles.name(role)).await;
        for (oid, sig, kind) in &functions {
            let mask = FUNCTIONS
                .iter()
                .find(|(f, _)| f == sig)
                .map_or(NOBODY, |(_, m)| *m);
            let sql = null_call(&su, *oid, kind).await;
            let got = match c.batch_execute(&sql).await {
                Ok(()) => "ok".to_owned(),
                Err(e) => sqlstate(&e),
            };
            let denied = got == DENIED;
            if denied == expected(mask, role) {
                problems.push(format!(
                    "{role:?}: {sql} gave {got}, expected {}",
                    if expected(mask, role) {
                        "to run (any result but 42501)"
                    } else {
                        "42501"
                    }
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The statement that needs `privilege` on relation `oid` (named `rel`).
/// Sequences are reached by OID, which skips the schema's USAGE check, so
/// their own ACL is what is tested.
async fn statement_for(
    su: &Client,
    rel: &str,
    oid: u32,
    kind: &str,
    privilege: &str,
) -> Option<String> {
    if kind == "S" {
        return Some(match privilege {
            "USAGE" => format!("SELECT nextval({oid}::oid::regclass)"),
            "SELECT" => format!("SELECT pg_sequence_last_value({oid}::oid::regclass)"),
            "UPDATE" => format!("SELECT setval({oid}::oid::regclass, 1000000, false)"),
            _ => return None,
        });
    }
    let first_column: Option<String> = rows(
        su,
        "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = $1::oid AND attnum > 0
         AND NOT attisdropped ORDER BY attnum LIMIT 1",
        &[&oid],
    )
    .await
    .first()
    .map(|r| r.get(0));
    Some(match privilege {
        "SELECT" => format!("SELECT count(*) FROM {rel}"),
        "INSERT" => format!("INSERT INTO {rel} DEFAULT VALUES"),
        // SET col = DEFAULT WHERE false needs UPDATE and nothing else.
        "UPDATE" => format!("UPDATE {rel} SET {} = DEFAULT WHERE false", first_column?),
        "DELETE" => format!("DELETE FROM {rel} WHERE false"),
        "TRUNCATE" => format!("TRUNCATE {rel}"),
        _ => return None,
    })
}

/// The tables and sequences that hold or lead to messages: every one of
/// them must be among the relations the test below touched, and refused a
/// producer and a relay every privilege (they work through the functions).
const MESSAGE_STORAGE: &[&str] = &[
    "outbox.log",
    "outbox.log_0",
    "outbox.log_1",
    "outbox.log_2",
    "outbox.side",
    "outbox.partitions",
    "outbox.segments",
    "outbox.dead_letters",
    "outbox.message_id",
    "outbox.log_segment",
];

/// Whether no statement can write through view `oid` at all (no automatic
/// updatability, no INSTEAD OF trigger, no rule): PostgreSQL's rewriter then
/// refuses INSERT/UPDATE/DELETE with 55000 before it checks privileges, for
/// every role, and TRUNCATE of a view is 42809.
async fn view_is_read_only(su: &Client, oid: u32) -> bool {
    one(
        su,
        "SELECT pg_relation_is_updatable($1::oid::regclass, true) = 0",
        &[&oid],
    )
    .await
    .get(0)
}

#[tokio::test]
async fn denied_table_and_sequence_access_fails_with_42501() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let mut problems = Vec::new();
    // (role, relation, privilege) refused with 42501.
    let mut refused: Vec<(Role, String, &str)> = Vec::new();
    let relations = catalog_relations(&su).await;
    for role in Role::ALL {
        let c = db.client_as(roles.name(role)).await;
        for (oid, rel, kind) in &relations {
            let privs = RELATIONS
                .iter()
                .find(|(r, _)| r == rel)
                .map_or(&[][..], |(_, p)| *p);
            let list = if kind == "S" {
                SEQUENCE_PRIVILEGES
            } else {
                TABLE_PRIVILEGES
            };
            let read_only_view = kind == "v" && view_is_read_only(&su, *oid).await;
            for privilege in list {
                let Some(sql) = statement_for(&su, rel, *oid, kind, privilege).await else {
                    continue;
                };
                let allowed = expected(relation_mask(privs, privilege), role);
                match (c.batch_execute(&sql).await, allowed) {
                    (Ok(()), true) => {}
                    (Err(e), false) if sqlstate(&e) == DENIED => {
                        refused.push((role, rel.clone(), privilege))
                    }
                    // Nobody can write through the view, whatever the ACL
                    // (the catalog test checks the ACL itself); the tables
                    // behind it are in this loop too and answer 42501.
                    (Err(e), false)
                        if read_only_view
                            && matches!(
                                (*privilege, sqlstate(&e).as_str()),
                                ("INSERT" | "UPDATE" | "DELETE", "55000") | ("TRUNCATE", "42809")
                            ) => {}
                    (Ok(()), false) => {
                        problems.push(format!("{role:?}: {sql} succeeded, expected 42501"))
                    }
                    (Err(e), _) => {
                        problems.push(format!("{role:?}: {sql}: {}", describe_error(&e)))
                    }
                }
            }
        }
        for sql in [
            "CREATE TABLE outbox.planted (id int)",
            "CREATE FUNCTION outbox.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE VIEW outbox.planted AS SELECT 1",
        ] {
            match c.batch_execute(sql).await {
                Err(e) if sqlstate(&e) == DENIED => {}
                Ok(()) => problems.push(format!("{role:?}: {sql} succeeded, expected 42501")),
                Err(e) => problems.push(format!("{role:?}: {sql}: {}", describe_error(&e))),
            }
        }
    }
    for rel in MESSAGE_STORAGE {
        let Some((_, _, kind)) = relations.iter().find(|(_, r, _)| r == rel) else {
            problems.push(format!(
                "{rel} is not in the catalog: update MESSAGE_STORAGE"
            ));
            continue;
        };
        let list: &[&str] = if kind == "S" {
            SEQUENCE_PRIVILEGES
        } else {
            &["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"]
        };
        for role in [Role::Producer, Role::Relay] {
            for privilege in list {
                if !refused
                    .iter()
                    .any(|(ro, r, p)| *ro == role && r == rel && p == privilege)
                {
                    problems.push(format!(
                        "{role:?} {privilege} on {rel} was not refused with 42501"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
