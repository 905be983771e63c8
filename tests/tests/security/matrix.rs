//! The privilege matrix: every object in schema `outbox`, read from the
//! catalog, against a table of who may do what with it. A function, table,
//! sequence, view, type or operator the table does not list fails the test,
//! so nothing new ships with PostgreSQL's default privileges by accident
//! (functions are EXECUTE-able by PUBLIC unless revoked).
//!
//! Each expectation is checked twice: in the catalog (`has_*_privilege` for
//! every role and privilege) and by really calling or querying as the role.

use crate::common::*;
use outbox_tests::tokio_postgres::Client;
use outbox_tests::TestDb;

/// Who may EXECUTE each function, by its `regprocedure` text.
pub(crate) const FUNCTIONS: &[(&str, u8)] = &[
    // Producing.
    (
        "outbox.enqueue(text,jsonb,text,jsonb,timestamp with time zone,integer,text,interval)",
        P | A,
    ),
    (
        "outbox.enqueue_batch(text,jsonb[],text[],jsonb[],timestamp with time zone,integer,text[],interval)",
        P | A,
    ),
    // Relaying.
    ("outbox.claim(text,integer,interval,text[])", R | A),
    ("outbox.complete(bigint,uuid)", R | A),
    ("outbox.complete_batch(bigint[],uuid)", R | A),
    ("outbox.fail(bigint,uuid,text,interval,boolean)", R | A),
    ("outbox.release(bigint,uuid)", R | A),
    ("outbox.release_batch(bigint[],uuid)", R | A),
    ("outbox.extend(bigint,uuid,interval)", R | A),
    ("outbox.extend_batch(bigint[],uuid,interval)", R | A),
    ("outbox.doorbell_channel()", R | A),
    ("outbox.doorbell_arm(interval)", R | A),
    ("outbox.doorbell_disarm()", R | A),
    ("outbox.stats()", R | A),
    ("outbox.cleanup(integer)", R | A),
    // Operating.
    ("outbox.blocked_keys(integer)", A),
    ("outbox.list_messages(text,text,text,bigint,integer,text,text)", A),
    ("outbox.get_message(bigint)", A),
    ("outbox.list_dead(text,integer)", A),
    ("outbox.requeue_dead(bigint[])", A),
    ("outbox.requeue_dead_topic(text)", A),
    ("outbox.purge_dead(bigint[])", A),
    ("outbox.purge_dead_topic(text,interval)", A),
    ("outbox.rotate()", A),
    ("outbox.set_partitions(integer)", A),
    // Granting: the extension owner and superusers only.
    ("outbox.grant_producer(regrole,text)", NOBODY),
    ("outbox.grant_relay(regrole,text)", NOBODY),
    ("outbox.grant_admin(regrole,text)", NOBODY),
    ("outbox.revoke_all(regrole,text)", NOBODY),
    // Named outboxes: the extension owner and superusers only.
    ("outbox.create_outbox(text)", NOBODY),
    ("outbox.drop_outbox(text,boolean)", NOBODY),
    // Internals: nobody.
    ("outbox._grant_functions(regrole,text[],text)", NOBODY),
    ("outbox._check_outbox_name(text)", NOBODY),
    ("outbox._clone_functions(name)", NOBODY),
    ("outbox._cloned_names()", NOBODY),
    ("outbox._shared_names()", NOBODY),
    ("outbox._in_outbox(text,name)", NOBODY),
    ("outbox._outbox_schema(text)", NOBODY),
    ("outbox._refresh_outboxes()", NOBODY),
    ("outbox._max_rows(integer)", NOBODY),
    ("outbox._next_xid()", NOBODY),
    ("outbox._rotate()", NOBODY),
    ("outbox._check_dead_ids(bigint[])", NOBODY),
    ("outbox._doorbell()", NOBODY),
    ("outbox._now()", NOBODY),
    ("outbox._claim(text,integer,interval,text[])", NOBODY),
    ("outbox._window_snapshot(pg_snapshot)", NOBODY),
    ("outbox._message_unfinished(bigint,smallint)", NOBODY),
    ("outbox._retention()", NOBODY),
    ("outbox._state(timestamp with time zone,timestamp with time zone,integer,timestamp with time zone)", NOBODY),
    ("outbox._listing(bigint,integer,timestamp with time zone,text,text,text,text,text)", NOBODY),
    ("outbox._check_state(text)", NOBODY),
    ("outbox._issued_id(bigint)", NOBODY),
];

pub(crate) const TABLE_PRIVILEGES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
];
pub(crate) const SEQUENCE_PRIVILEGES: &[&str] = &["USAGE", "SELECT", "UPDATE"];

/// Tables, views and sequences: the privileges anyone has (all others: nobody).
pub(crate) const RELATIONS: &[(&str, &[(&str, u8)])] = &[
    // The view of every unfinished message, and the tables behind it.
    ("outbox.messages", &[("SELECT", A)]),
    ("outbox.dead_letters", &[("SELECT", A)]),
    ("outbox.side", &[("SELECT", A)]),
    ("outbox.log", &[("SELECT", A)]),
    ("outbox.partitions", &[("SELECT", A)]),
    ("outbox.segments", &[("SELECT", A)]),
    // Dedup keys and their holders (enqueue writes them as the owner).
    ("outbox.dedup", &[("SELECT", A)]),
    // Published messages kept by outbox.retention (complete writes them).
    ("outbox.published", &[("SELECT", A)]),
    // The segments themselves: read through outbox.log only.
    ("outbox.log_0", &[]),
    ("outbox.log_1", &[]),
    ("outbox.log_2", &[]),
    // The doorbell's gate: relays lock it through doorbell_arm (the lock
    // manager, no ACL check), producers through the trigger.
    ("outbox.doorbell_gate", &[]),
    // Ids and the current segment are read by enqueue (as the owner);
    // nobody reads the sequences.
    ("outbox.message_id", &[]),
    ("outbox.log_segment", &[]),
    // The registry of named outboxes: read by create_outbox, drop_outbox and
    // the grant functions, which only the owner calls.
    ("outbox.outboxes", &[]),
];

/// Standalone types, domains and operators: none today. A new one needs a
/// line here saying who has USAGE (types are USAGE-able by PUBLIC by default).
const OTHER_OBJECTS: &[(&str, u8)] = &[];

/// Schema privileges.
const SCHEMA: &[(&str, u8)] = &[("USAGE", P | R | A), ("CREATE", NOBODY)];

pub(crate) fn expected(mask: u8, role: Role) -> bool {
    mask & role.bit() != 0
}

pub(crate) fn relation_mask(privs: &[(&str, u8)], privilege: &str) -> u8 {
    privs
        .iter()
        .find(|(p, _)| *p == privilege)
        .map_or(NOBODY, |(_, m)| *m)
}

/// (oid, text, kind) of every function-like object in `outbox`.
pub(crate) async fn catalog_functions(su: &Client) -> Vec<(u32, String, String)> {
    rows(
        su,
        "SELECT p.oid, p.oid::regprocedure::text, p.prokind::text FROM pg_proc AS p
         WHERE p.pronamespace = 'outbox'::regnamespace ORDER BY 2",
        &[],
    )
    .await
    .iter()
    .map(|r| (r.get::<_, u32>(0), r.get(1), r.get(2)))
    .collect()
}

/// (oid, text, relkind) of every table, view, sequence, ... in `outbox`
/// (indexes have no privileges of their own).
pub(crate) async fn catalog_relations(su: &Client) -> Vec<(u32, String, String)> {
    rows(
        su,
        "SELECT c.oid, c.oid::regclass::text, c.relkind::text FROM pg_class AS c
         WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind NOT IN ('i', 'I', 't')
         ORDER BY 2",
        &[],
    )
    .await
    .iter()
    .map(|r| (r.get::<_, u32>(0), r.get(1), r.get(2)))
    .collect()
}

/// Types (other than the row and array types of relations) and operators.
async fn catalog_other(su: &Client) -> Vec<String> {
    rows(
        su,
        "SELECT 'type ' || t.oid::regtype::text FROM pg_type AS t
         WHERE t.typnamespace = 'outbox'::regnamespace
           AND NOT EXISTS (SELECT 1 FROM pg_class AS c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
           AND NOT EXISTS (SELECT 1 FROM pg_type AS e JOIN pg_class AS c ON c.oid = e.typrelid
                           WHERE e.oid = t.typelem AND e.typarray = t.oid AND c.relkind <> 'c')
         UNION ALL
         SELECT 'operator ' || o.oid::regoperator::text FROM pg_operator AS o
         WHERE o.oprnamespace = 'outbox'::regnamespace
         ORDER BY 1",
        &[],
    )
    .await
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn every_outbox_object_is_in_the_security_matrix() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let mut problems = Vec::new();

    let functions = catalog_functions(&su).await;
    for (_, sig, _) in &functions {
        if !FUNCTIONS.iter().any(|(f, _)| f == sig) {
            problems.push(format!(
                "new object {sig}: add it to the security matrix (FUNCTIONS)"
            ));
        }
    }
    for (f, _) in FUNCTIONS {
        if !functions.iter().any(|(_, sig, _)| sig == f) {
            problems.push(format!(
                "{f} is in the security matrix but not in the catalog"
            ));
        }
    }
    let relations = catalog_relations(&su).await;
    for (_, rel, kind) in &relations {
        if !RELATIONS.iter().any(|(r, _)| r == rel) {
            problems.push(format!(
                "new object {rel} (relkind {kind}): add it to the security matrix (RELATIONS)"
            ));
        }
    }
    for (r, _) in RELATIONS {
        if !relations.iter().any(|(_, rel, _)| rel == r) {
            problems.push(format!(
                "{r} is in the security matrix but not in the catalog"
            ));
        }
    }
    // Objects of the extension outside schema outbox (another schema, an
    // event trigger, a cast, ...) would escape everything above.
    for r in rows(
        &su,
        "SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
         FROM pg_depend AS d JOIN pg_extension AS e ON e.oid = d.refobjid
         WHERE e.extname = 'outbox' AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
           AND NOT CASE d.classid
               WHEN 'pg_proc'::regclass THEN
                   (SELECT p.pronamespace FROM pg_proc AS p WHERE p.oid = d.objid) = 'outbox'::regnamespace
               WHEN 'pg_class'::regclass THEN
                   (SELECT c.relnamespace FROM pg_class AS c WHERE c.oid = d.objid) = 'outbox'::regnamespace
               WHEN 'pg_type'::regclass THEN
                   (SELECT t.typnamespace FROM pg_type AS t WHERE t.oid = d.objid) = 'outbox'::regnamespace
               WHEN 'pg_namespace'::regclass THEN d.objid = 'outbox'::regnamespace
               ELSE false
           END
         ORDER BY 1",
        &[],
    )
    .await
    {
        let object: String = r.get(0);
        problems.push(format!(
            "new object {object} outside schema outbox: add it to the security matrix"
        ));
    }
    for other in catalog_other(&su).await {
        if !OTHER_OBJECTS.iter().any(|(o, _)| *o == other) {
            problems.push(format!(
                "new object {other}: add it to the security matrix (OTHER_OBJECTS)"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[tokio::test]
async fn catalog_privileges_match_the_matrix() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let mut problems = Vec::new();

    for (oid, sig, _) in catalog_functions(&su).await {
        let mask = FUNCTIONS
            .iter()
            .find(|(f, _)| *f == sig)
            .map_or(NOBODY, |(_, m)| *m);
        for role in Role::ALL {
            let has: bool = one(
                &su,
                "SELECT has_function_privilege($1, $2::oid, 'EXECUTE')",
                &[&roles.name(role), &oid],
            )
            .await
            .get(0);
            if has != expected(mask, role) {
                problems.push(format!(
                    "{role:?} EXECUTE {sig}: has {has}, expected {}",
                    !has
                ));
            }
        }
    }
    for (oid, rel, kind) in catalog_relations(&su).await {
        let privs = RELATIONS
            .iter()
            .find(|(r, _)| *r == rel)
            .map_or(&[][..], |(_, p)| *p);
        let (check, list) = if kind == "S" {
            ("has_sequence_privilege", SEQUENCE_PRIVILEGES)
        } else {
            ("has_table_privilege", TABLE_PRIVILEGES)
        };
        for privilege in list {
            let mask = relation_mask(privs, privilege);
            for role in Role::ALL {
                let sql = format!("SELECT {check}($1, $2::oid, $3)");
                let has: bool = one(&su, &sql, &[&roles.name(role), &oid, privilege])
                    .await
                    .get(0);
                if has != expected(mask, role) {
                    problems.push(format!(
                        "{role:?} {privilege} on {rel}: has {has}, expected {}",
                        !has
                    ));
                }
            }
        }
        // Column grants do not show in has_table_privilege.
        if kind != "S" {
            for privilege in ["SELECT", "INSERT", "UPDATE", "REFERENCES"] {
                let mask = relation_mask(privs, privilege);
                for role in Role::ALL {
                    let has: bool = one(
                        &su,
                        "SELECT has_any_column_privilege($1, $2::oid, $3)",
                        &[&roles.name(role), &oid, &privilege],
                    )
                    .await
                    .get(0);
                    if has != expected(mask, role) {
                        problems.push(format!(
                            "{role:?} {privilege} on a column of {rel}: has {has}"
                        ));
                    }
                }
            }
        }
    }
    for (privilege, mask) in SCHEMA {
        for role in Role::ALL {
            // The usage-only role was granted USAGE by hand.
            let want = expected(*mask, role) || (role == Role::UsageOnly && *privilege == "USAGE");
            let has: bool = one(
                &su,
                "SELECT has_schema_privilege($1, 'outbox', $2)",
                &[&roles.name(role), privilege],
            )
            .await
            .get(0);
            if has != want {
                problems.push(format!("{role:?} {privilege} on schema outbox: has {has}"));
            }
        }
    }
    problems.extend(acl_problems(&su, &roles).await);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// What the ACLs themselves say: PUBLIC (grantee 0) appears nowhere, nobody
/// but the owner may pass a privilege on, and nobody but our roles has one.
async fn acl_problems(su: &Client, roles: &Roles) -> Vec<String> {
    let ours: Vec<&str> = Role::ALL.iter().map(|r| roles.name(*r)).collect();
    let acls = rows(
        su,
        "WITH o AS (
             SELECT p.oid::regprocedure::text AS object, p.proowner AS owner,
                    coalesce(p.proacl, acldefault('f'::\"char\", p.proowner)) AS acl
             FROM pg_proc AS p WHERE p.pronamespace = 'outbox'::regnamespace
             UNION ALL
             SELECT c.oid::regclass::text, c.relowner,
                    coalesce(c.relacl, acldefault((CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END)::\"char\", c.relowner))
             FROM pg_class AS c WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind NOT IN ('i', 'I', 't')
             UNION ALL
             SELECT 'schema outbox', n.nspowner, coalesce(n.nspacl, acldefault('n'::\"char\", n.nspowner))
             FROM pg_namespace AS n WHERE n.nspname = 'outbox'
         )
         SELECT o.object, a.grantee = 0, coalesce(a.grantee::regrole::text, 'PUBLIC'),
                a.privilege_type, a.is_grantable, a.grantee = o.owner
         FROM o, aclexplode(o.acl) AS a
         ORDER BY 1, 3, 4",
        &[],
    )
    .await;
    let mut problems = Vec::new();
    for r in acls {
        let (object, public, grantee, privilege, grantable, owner): (
            String,
            bool,
            String,
            String,
            bool,
            bool,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        if owner {
            continue;
        }
        if public {
            problems.push(format!("PUBLIC has {privilege} on {object}"));
        } else if !ours
            .iter()
            .any(|o| outbox_tests::quote_ident(o) == grantee || *o == grantee)
        {
            problems.push(format!(
                "unexpected grantee {grantee} has {privilege} on {object}"
            ));
        }
        if grantable {
            problems.push(format!(
                "{grantee} may pass on {privilege} on {object} (WITH GRANT OPTION)"
            ));
        }
    }
    for (kind, sql) in [
        ("function", "SELECT count(*) FROM pg_proc AS p WHERE p.pronamespace = 'outbox'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')"),
        ("table", "SELECT count(*) FROM pg_class AS c WHERE c.relnamespace = 'outbox'::regnamespace AND CASE WHEN c.relkind IN ('r', 'p', 'v', 'm', 'f') THEN has_table_privilege('public', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER') ELSE false END"),
        ("sequence", "SELECT count(*) FROM pg_class AS c WHERE c.relnamespace = 'outbox'::regnamespace AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege('public', c.oid, 'USAGE,SELECT,UPDATE') ELSE false END"),
        ("schema", "SELECT count(*) FROM pg_namespace WHERE nspname = 'outbox' AND has_schema_privilege('public', oid, 'USAGE,CREATE')"),
    ] {
        let n: i64 = one(su, sql, &[]).await.get(0);
        if n != 0 {
            problems.push(format!("PUBLIC has a privilege on {n} {kind}(s) of outbox"));
        }
    }
    problems
}
