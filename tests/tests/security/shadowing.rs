//! search_path attacks (CVE-2018-1058 and kin) against every SECURITY
//! DEFINER function. The attacker is a caller with EXECUTE on all of them
//! (an admin); it plants objects named like the ones the functions use —
//! operators on the types they compare, clock and uuid functions,
//! aggregates, domains named like the types they cast to, views named like
//! the tables — first in its own schema on a hostile search_path, then in
//! its session's pg_temp. Every planted object raises when touched, so a
//! function that resolved one would fail instead of returning.
//!
//! PostgreSQL never looks up functions or operators in pg_temp unless they
//! are qualified, but it does look up relations and types there (first, if
//! pg_temp is not named in the path): that is why `pg_temp` must come last
//! in every pinned search_path. `coalesce`, `greatest`, `least` and the SQL
//! type keywords (`bigint`, `integer`, `interval`, ...) are grammar, not
//! names, and cannot be shadowed at all.

use crate::common::*;
use outbox_tests::tokio_postgres::Client;
use outbox_tests::{describe_error, quote_ident, TestDb, UNPINNED_BODIES};

/// The SECURITY DEFINER functions scenario.rs exercises, by name.
const SCENARIO_COVERS: &[&str] = &[
    "enqueue",
    "enqueue_batch",
    "claim",
    "complete",
    "complete_batch",
    "fail",
    "release",
    "release_batch",
    "extend",
    "extend_batch",
    "stats",
    "cleanup",
    "blocked_keys",
    "list_messages",
    "get_message",
    "list_dead",
    "requeue_dead",
    "requeue_dead_topic",
    "purge_dead",
    "purge_dead_topic",
    // scenario_rotation.rs: report, switch and truncate, then a new count.
    "rotate",
    "set_partitions",
    // Internal (nobody may EXECUTE it): run by rotate() and by every claim.
    "_rotate",
    // shadowing_outboxes.rs: only the owner may call these (no role is
    // granted them); a superuser's poisoned session runs them there.
    "create_outbox",
    "drop_outbox",
];

/// Operators to plant: (operator, left, right, result).
const OPERATORS: &[(&str, &str, &str, &str)] = &[
    ("||", "text", "text", "text"),
    ("||", "text", "integer", "text"),
    ("+", "timestamptz", "interval", "timestamptz"),
    ("-", "timestamptz", "interval", "timestamptz"),
    ("-", "timestamptz", "timestamptz", "interval"),
    ("+", "integer", "integer", "integer"),
    ("-", "integer", "integer", "integer"),
    ("-", "bigint", "integer", "bigint"),
    ("+", "bigint", "integer", "bigint"),
];
const COMPARED_TYPES: &[&str] = &[
    "bigint",
    "integer",
    "text",
    "uuid",
    "timestamptz",
    "interval",
    "boolean",
    "jsonb",
    // The log's partition and segment numbers, and its transaction ids.
    "smallint",
    "xid8",
];
const COMPARISONS: &[&str] = &["=", "<>", "<", "<=", ">", ">="];

/// Functions to plant: (name, arguments, result).
const FUNCTIONS: &[(&str, &str, &str)] = &[
    ("now", "", "timestamptz"),
    ("statement_timestamp", "", "timestamptz"),
    ("transaction_timestamp", "", "timestamptz"),
    ("clock_timestamp", "", "timestamptz"),
    ("gen_random_uuid", "", "uuid"),
    ("random", "", "double precision"),
    ("jsonb_typeof", "jsonb", "text"),
    ("array_position", "bigint[], bigint", "integer"),
    ("unnest", "bigint[]", "SETOF bigint"),
    ("unnest", "text[]", "SETOF text"),
    ("nextval", "regclass", "bigint"),
    ("pg_notify", "text, text", "void"),
    ("lower", "text", "text"),
    ("length", "text", "integer"),
    // What the log, its windows and rotation use.
    ("hashtextextended", "text, bigint", "bigint"),
    ("pg_current_xact_id", "", "xid8"),
    ("pg_current_snapshot", "", "pg_snapshot"),
    ("pg_snapshot_xmin", "pg_snapshot", "xid8"),
    ("pg_snapshot_xmax", "pg_snapshot", "xid8"),
    ("pg_visible_in_snapshot", "xid8, pg_snapshot", "boolean"),
    ("current_setting", "text", "text"),
    ("set_config", "text, text, boolean", "text"),
    ("format", "text, text", "text"),
    ("cardinality", "bigint[]", "integer"),
];

/// Relations the functions name (always schema-qualified, which is what
/// this checks).
const RELATIONS: &[&str] = &[
    "messages",
    "dead_letters",
    "doorbell_gate",
    // 0.1.0's id sequence, gone since 0.2.0 (an unqualified name left over
    // from it would find the plant).
    "messages_id_seq",
    "message_id",
    "log",
    "log_0",
    "log_1",
    "log_2",
    "log_segment",
    "side",
    "partitions",
    "segments",
];

/// Type names that are not SQL keywords, so a domain can shadow them.
const DOMAINS: &[&str] = &[
    "text",
    "uuid",
    "jsonb",
    "timestamptz",
    "int8",
    "int4",
    "bool",
    "regclass",
    "int2",
    "xid8",
    "pg_snapshot",
];

/// DDL that plants every hostile object in schema `s` (`evil` or `pg_temp`).
pub(crate) fn plant(s: &str) -> String {
    let mut sql = format!(
        "CREATE FUNCTION {s}.boom(what pg_catalog.text) RETURNS pg_catalog.bool LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'shadow object called: %', what; END $$;\n"
    );
    let mut n = 0;
    let mut op = |sql: &mut String, name: &str, l: &str, r: &str, ret: &str| {
        n += 1;
        sql.push_str(&format!(
            "CREATE FUNCTION {s}.op{n}(a {l}, b {r}) RETURNS {ret} LANGUAGE plpgsql AS
                 $$ BEGIN PERFORM {s}.boom('operator {name}({l}, {r})'); RETURN NULL; END $$;
             CREATE OPERATOR {s}.{name} (LEFTARG = {l}, RIGHTARG = {r}, FUNCTION = {s}.op{n});\n"
        ));
    };
    for (name, l, r, ret) in OPERATORS {
        op(&mut sql, name, l, r, ret);
    }
    for t in COMPARED_TYPES {
        for c in COMPARISONS {
            op(&mut sql, c, t, t, "boolean");
        }
    }
    for (name, args, ret) in FUNCTIONS {
        let body = if ret.starts_with("SETOF") || *ret == "void" {
            format!("PERFORM {s}.boom('function {name}({args})'); RETURN;")
        } else {
            format!("PERFORM {s}.boom('function {name}({args})'); RETURN NULL;")
        };
        sql.push_str(&format!(
            "CREATE FUNCTION {s}.{name}({args}) RETURNS {ret} LANGUAGE plpgsql AS $$ BEGIN {body} END $$;\n"
        ));
    }
    // Aggregates whose transition function raises.
    sql.push_str(&format!(
        "CREATE FUNCTION {s}.agg_step(state bigint, x bigint) RETURNS bigint LANGUAGE plpgsql AS
             $$ BEGIN PERFORM {s}.boom('aggregate'); RETURN NULL; END $$;
         CREATE FUNCTION {s}.count_step(state bigint) RETURNS bigint LANGUAGE plpgsql AS
             $$ BEGIN PERFORM {s}.boom('aggregate count(*)'); RETURN NULL; END $$;
         CREATE FUNCTION {s}.agg_ts(state timestamptz, x timestamptz) RETURNS timestamptz LANGUAGE plpgsql AS
             $$ BEGIN PERFORM {s}.boom('aggregate min(timestamptz)'); RETURN NULL; END $$;
         CREATE AGGREGATE {s}.count(*) (SFUNC = {s}.count_step, STYPE = bigint, INITCOND = '0');
         CREATE AGGREGATE {s}.min(bigint) (SFUNC = {s}.agg_step, STYPE = bigint);
         CREATE AGGREGATE {s}.min(timestamptz) (SFUNC = {s}.agg_ts, STYPE = timestamptz);
         CREATE AGGREGATE {s}.array_agg(bigint) (SFUNC = {s}.agg_step, STYPE = bigint);\n"
    ));
    for rel in RELATIONS {
        sql.push_str(&format!(
            "CREATE VIEW {s}.{rel} AS SELECT {s}.boom('relation {rel}') AS id;\n"
        ));
    }
    // Last: from here on `text` etc. in this schema mean the domains.
    for d in DOMAINS {
        sql.push_str(&format!(
            "CREATE DOMAIN {s}.{d} AS pg_catalog.{d} CHECK ({s}.boom('domain {d}'));\n"
        ));
    }
    sql
}

#[tokio::test]
async fn unpinned_bodies_are_invoker_and_owner_only() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let found = rows(
        &su,
        "SELECT p.proname::text, p.prosecdef, p.proconfig IS NULL,
                NOT EXISTS (SELECT 1 FROM aclexplode(p.proacl) AS a WHERE a.grantee <> p.proowner)
                AND p.proacl IS NOT NULL
         FROM pg_proc AS p
         WHERE p.pronamespace = 'outbox'::regnamespace AND p.proname = ANY ($1::text[])
         ORDER BY 1",
        &[&UNPINNED_BODIES],
    )
    .await;
    assert_eq!(
        found.len(),
        UNPINNED_BODIES.len(),
        "every listed body exists"
    );
    for r in found {
        let (name, secdef, no_config, owner_only): (String, bool, bool, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert!(!secdef, "{name} must not be SECURITY DEFINER");
        assert!(
            no_config,
            "{name} has SET clauses: then it needs none of this"
        );
        assert!(
            owner_only,
            "{name} may be executed by a role other than its owner"
        );
    }
    // An admin, who may run claim() itself, may not run its body.
    let admin = db.create_role("body_admin").await;
    su.execute("SELECT outbox.grant_admin($1::text::regrole)", &[&admin])
        .await
        .unwrap();
    let a = db.client_as(&admin).await;
    let e = a
        .query("SELECT * FROM outbox._claim('r', 1, NULL, NULL)", &[])
        .await
        .expect_err("an admin ran outbox._claim()");
    assert_eq!(sqlstate(&e), "42501", "{e:?}");
    let e = a
        .query("SELECT outbox._window_snapshot(pg_current_snapshot())", &[])
        .await
        .expect_err("an admin ran outbox._window_snapshot()");
    assert_eq!(sqlstate(&e), "42501", "{e:?}");
}

#[tokio::test]
async fn every_function_pins_search_path_with_pg_temp_last() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let mut problems = Vec::new();
    for r in rows(
        &su,
        "SELECT p.oid::regprocedure::text, p.prosecdef,
                (SELECT array_agg(substr(c, 13)) FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\\_path=%')
         FROM pg_proc AS p
         WHERE p.pronamespace = 'outbox'::regnamespace AND p.proname <> ALL ($1::text[])
         ORDER BY 1",
        &[&UNPINNED_BODIES],
    )
    .await
    {
        let (f, secdef, paths): (String, bool, Option<Vec<String>>) = (r.get(0), r.get(1), r.get(2));
        let Some([path]) = paths.as_deref() else {
            problems.push(format!("{f} (SECURITY DEFINER: {secdef}) does not pin search_path"));
            continue;
        };
        let parts: Vec<String> = path.split(',').map(|p| p.trim().trim_matches('"').to_owned()).collect();
        if parts.last().map(String::as_str) != Some("pg_temp") {
            problems.push(format!("{f}: search_path={path} does not end in pg_temp"));
        }
        if parts.first().map(String::as_str) != Some("pg_catalog") {
            problems.push(format!("{f}: search_path={path} does not start with pg_catalog"));
        }
        for p in &parts {
            if !matches!(p.as_str(), "pg_catalog" | "pg_temp" | "outbox") {
                problems.push(format!("{f}: search_path={path} names {p}, which callers may write to"));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[tokio::test]
async fn every_security_definer_function_is_in_the_shadowing_scenario() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let secdef: Vec<String> = rows(
        &su,
        "SELECT DISTINCT p.proname::text FROM pg_proc AS p
         WHERE p.pronamespace = 'outbox'::regnamespace AND p.prosecdef ORDER BY 1",
        &[],
    )
    .await
    .iter()
    .map(|r| r.get(0))
    .collect();
    let missing: Vec<&String> = secdef
        .iter()
        .filter(|f| !SCENARIO_COVERS.contains(&f.as_str()))
        .collect();
    let stale: Vec<&&str> = SCENARIO_COVERS
        .iter()
        .filter(|f| !secdef.iter().any(|s| s == **f))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "SECURITY DEFINER functions not in the shadowing scenario: {missing:?}; \
         in the scenario but not SECURITY DEFINER: {stale:?}"
    );
}

/// An admin session whose search_path puts schema `evil`, full of planted
/// objects, first.
async fn poisoned_path(db: &TestDb, su: &Client, roles: &Roles) -> Client {
    let attacker_role = roles.name(Role::Admin);
    exec(
        su,
        &format!(
            "CREATE SCHEMA evil AUTHORIZATION {}",
            quote_ident(attacker_role)
        ),
    )
    .await;
    let attacker = db.client_as(attacker_role).await;
    exec(&attacker, &plant("evil")).await;
    exec(&attacker, "SET search_path = evil, pg_catalog, pg_temp").await;
    planted_objects_catch_an_unpinned_function(su, &attacker, "1::bigint = 2::bigint").await;
    attacker
}

/// An admin session with the planted objects in its own pg_temp.
async fn poisoned_pg_temp(db: &TestDb, su: &Client, roles: &Roles) -> Client {
    let attacker = db.client_as(roles.name(Role::Admin)).await;
    // A role needs TEMP on the database, which PUBLIC has by default.
    exec(&attacker, &plant("pg_temp")).await;
    exec(&attacker, "SET search_path = pg_temp, pg_catalog").await;
    planted_objects_catch_an_unpinned_function(su, &attacker, "EXISTS (SELECT 1 FROM messages)")
        .await;
    attacker
}

#[tokio::test]
async fn objects_in_a_schema_first_on_the_path_change_nothing() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let attacker = poisoned_path(&db, &su, &roles).await;
    crate::scenario::scenario(&su, &attacker).await;
}

#[tokio::test]
async fn objects_in_pg_temp_change_nothing() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let attacker = poisoned_pg_temp(&db, &su, &roles).await;
    crate::scenario::scenario(&su, &attacker).await;
}

// Rotation on its own database: its walk needs a fresh install's segments.

#[tokio::test]
async fn rotation_with_objects_in_a_schema_first_on_the_path_changes_nothing() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let attacker = poisoned_path(&db, &su, &roles).await;
    crate::scenario_rotation::rotation(&su, &attacker).await;
}

#[tokio::test]
async fn rotation_with_objects_in_pg_temp_changes_nothing() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let attacker = poisoned_pg_temp(&db, &su, &roles).await;
    crate::scenario_rotation::rotation(&su, &attacker).await;
}

/// The control experiment: a SECURITY DEFINER function *without* a pinned
/// search_path that evaluates `expr` does run the planted object, so the
/// scenario's passing means the pinning works, not that the plant missed.
async fn planted_objects_catch_an_unpinned_function(su: &Client, a: &Client, expr: &str) {
    exec(
        su,
        &format!(
            "CREATE FUNCTION public.unpinned_probe() RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
                 AS $$ BEGIN RETURN {expr}; END $$;
             GRANT EXECUTE ON FUNCTION public.unpinned_probe() TO PUBLIC"
        ),
    )
    .await;
    match a.batch_execute("SELECT public.unpinned_probe()").await {
        Err(e) if describe_error(&e).contains("shadow object called") => {}
        other => panic!("the planted objects did not catch an unpinned function: {other:?}"),
    }
    exec(su, "DROP FUNCTION public.unpinned_probe()").await;
}
