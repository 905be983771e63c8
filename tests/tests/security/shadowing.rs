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
use outbox_tests::{describe_error, quote_ident, TestDb};
use serde_json::json;

/// The SECURITY DEFINER functions the scenario below exercises, by name.
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
    "blocked_keys",
    "list_dead",
    "requeue_dead",
    "requeue_dead_topic",
    "purge_dead",
    "purge_dead_topic",
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
];

/// Relations the functions name (always schema-qualified, which is what
/// this checks).
const RELATIONS: &[&str] = &[
    "messages",
    "dead_letters",
    "doorbell_gate",
    "messages_id_seq",
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
];

/// DDL that plants every hostile object in schema `s` (`evil` or `pg_temp`).
fn plant(s: &str) -> String {
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
async fn every_function_pins_search_path_with_pg_temp_last() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let mut problems = Vec::new();
    for r in rows(
        &su,
        "SELECT p.oid::regprocedure::text, p.prosecdef,
                (SELECT array_agg(substr(c, 13)) FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\\_path=%')
         FROM pg_proc AS p WHERE p.pronamespace = 'outbox'::regnamespace ORDER BY 1",
        &[],
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

#[tokio::test]
async fn objects_in_a_schema_first_on_the_path_change_nothing() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let attacker_role = roles.name(Role::Admin);
    exec(
        &su,
        &format!(
            "CREATE SCHEMA evil AUTHORIZATION {}",
            quote_ident(attacker_role)
        ),
    )
    .await;
    let attacker = db.client_as(attacker_role).await;
    exec(&attacker, &plant("evil")).await;
    exec(&attacker, "SET search_path = evil, pg_catalog, pg_temp").await;
    planted_objects_catch_an_unpinned_function(&su, &attacker, "1::bigint = 2::bigint").await;
    scenario(&su, &attacker).await;
}

#[tokio::test]
async fn objects_in_pg_temp_change_nothing() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let attacker = db.client_as(roles.name(Role::Admin)).await;
    // A role needs TEMP on the database, which PUBLIC has by default.
    exec(&attacker, &plant("pg_temp")).await;
    exec(&attacker, "SET search_path = pg_temp, pg_catalog").await;
    planted_objects_catch_an_unpinned_function(&su, &attacker, "EXISTS (SELECT 1 FROM messages)")
        .await;
    scenario(&su, &attacker).await;
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

/// `sql` (a check as the superuser, on an unpoisoned session) is true.
async fn check(
    su: &Client,
    what: &str,
    sql: &str,
    params: &[&(dyn outbox_tests::tokio_postgres::types::ToSql + Sync)],
) {
    let ok: bool = one(su, sql, params).await.get(0);
    assert!(ok, "{what}: {sql}");
}

/// Every SECURITY DEFINER function, called by `a` (whatever its session
/// has planted), does exactly what it does for anyone else. `a`'s own
/// statements contain no operators, casts or function calls but the
/// outbox's, so only the functions' internals could meet the planted objects.
async fn scenario(su: &Client, a: &Client) {
    // A sleeping relay, so the attacker's enqueues take the doorbell's
    // NOTIFY path too.
    exec(su, "LISTEN outbox_doorbell").await;
    assert_eq!(
        one(su, "SELECT outbox.doorbell_arm()", &[])
            .await
            .get::<_, String>(0),
        "armed"
    );
    assert_eq!(
        one(a, "SELECT outbox.doorbell_channel()", &[])
            .await
            .get::<_, String>(0),
        "outbox_doorbell"
    );

    // enqueue, enqueue_batch
    let id1: i64 = one(
        a,
        "SELECT outbox.enqueue($1, $2, key => $3, headers => $4)",
        &[&"orders", &json!({"n": 1}), &"k1", &json!({"h": "v"})],
    )
    .await
    .get(0);
    check(
        su,
        "enqueue stored the message as given, now",
        "SELECT topic = 'orders' AND key = 'k1' AND payload = '{\"n\": 1}' AND headers = '{\"h\": \"v\"}'
                AND attempt = 0 AND created_at BETWEEN now() - interval '1 minute' AND now()
                AND deliver_at = created_at AND lease_token IS NULL
         FROM outbox.messages WHERE id = $1",
        &[&id1],
    )
    .await;
    let ids: Vec<i64> = one(
        a,
        "SELECT outbox.enqueue_batch($1, $2, keys => $3)",
        &[
            &"orders",
            &vec![json!({"n": 2}), json!({"n": 3})],
            &vec!["k2", "k2"],
        ],
    )
    .await
    .get(0);
    let [id2, id3] = ids[..] else {
        panic!("enqueue_batch returned {ids:?}")
    };
    exec(su, "SELECT outbox.doorbell_disarm()").await;
    assert!(id1 < id2 && id2 < id3, "ids in order: {id1} {id2} {id3}");

    // claim, complete: per-key order holds (id3 waits behind id2).
    let batch = claim(a, "relay-a", 10).await;
    assert_eq!(
        batch.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![id1, id2],
        "claim"
    );
    let token = batch[0].token;
    assert!(
        !token.is_nil() && batch[1].token == token,
        "one fresh token per claim"
    );
    check(
        su,
        "claim leased for 30 s from now",
        "SELECT bool_and(lease_token = $2 AND lease_owner = 'relay-a' AND attempt = 1
                         AND lease_expires_at BETWEEN now() + interval '20 seconds' AND now() + interval '40 seconds')
         FROM outbox.messages WHERE id = ANY ($1)",
        &[&vec![id1, id2], &token],
    )
    .await;
    let forged: bool = one(
        a,
        "SELECT outbox.complete($1, $2)",
        &[&id1, &uuid::Uuid::nil()],
    )
    .await
    .get(0);
    assert!(!forged, "a forged token completed a message");
    let done: bool = one(a, "SELECT outbox.complete($1, $2)", &[&id1, &token])
        .await
        .get(0);
    assert!(done, "complete");
    check(
        su,
        "complete deleted it",
        "SELECT NOT EXISTS (SELECT 1 FROM outbox.messages WHERE id = $1)",
        &[&id1],
    )
    .await;

    // extend, extend_batch, release, release_batch, complete_batch
    one(
        a,
        "SELECT outbox.extend($1, $2, '1 minute')",
        &[&id2, &token],
    )
    .await;
    check(
        su,
        "extend moved the expiry",
        "SELECT lease_expires_at BETWEEN now() + interval '50 seconds' AND now() + interval '70 seconds'
         FROM outbox.messages WHERE id = $1",
        &[&id2],
    )
    .await;
    let n: i32 = one(
        a,
        "SELECT outbox.extend_batch($1, $2, '2 minutes')",
        &[&vec![id2], &token],
    )
    .await
    .get(0);
    assert_eq!(n, 1, "extend_batch");
    let released: bool = one(a, "SELECT outbox.release($1, $2)", &[&id2, &token])
        .await
        .get(0);
    assert!(released, "release");
    check(
        su,
        "release cleared the lease and gave the attempt back",
        "SELECT lease_token IS NULL AND attempt = 0 FROM outbox.messages WHERE id = $1",
        &[&id2],
    )
    .await;
    let t2 = claim(a, "relay-a", 1).await[0].token;
    let n: i32 = one(a, "SELECT outbox.release_batch($1, $2)", &[&vec![id2], &t2])
        .await
        .get(0);
    assert_eq!(n, 1, "release_batch");
    let t3 = claim(a, "relay-a", 1).await[0].token;
    let n: i32 = one(
        a,
        "SELECT outbox.complete_batch($1, $2)",
        &[&vec![id2], &t3],
    )
    .await
    .get(0);
    assert_eq!(n, 1, "complete_batch");

    // fail: a retry, then a permanent failure.
    let l = claim(a, "relay-a", 10).await;
    assert_eq!(
        l.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![id3],
        "id3 is next of its key"
    );
    let r = one(
        a,
        "SELECT * FROM outbox.fail($1, $2, $3, retry_in => '1 hour')",
        &[&id3, &l[0].token, &"broker said 503"],
    )
    .await;
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, Option<i32>>(1)),
        ("retrying".to_owned(), Some(1)),
        "fail"
    );
    check(
        su,
        "fail scheduled the retry in an hour",
        "SELECT last_error = 'broker said 503' AND lease_token IS NULL
                AND deliver_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'
         FROM outbox.messages WHERE id = $1",
        &[&id3],
    )
    .await;
    exec(
        su,
        "UPDATE outbox.messages SET deliver_at = now() - interval '1 second'",
    )
    .await;
    let l = claim(a, "relay-a", 10).await;
    let r = one(
        a,
        "SELECT state FROM outbox.fail($1, $2, $3, permanent => true)",
        &[&id3, &l[0].token, &"gave up"],
    )
    .await;
    assert_eq!(r.get::<_, String>(0), "dead", "fail permanent");
    check(
        su,
        "the dead letter is as failed",
        "SELECT reason = 'permanent' AND last_error = 'gave up' AND attempts = 2 FROM outbox.dead_letters WHERE id = $1",
        &[&id3],
    )
    .await;

    // stats, blocked_keys
    let inv = enqueue_n(su, "invoices", 1).await[0];
    let id5: i64 = one(
        su,
        "SELECT outbox.enqueue('orders', '{}', key => 'kb')",
        &[],
    )
    .await
    .get(0);
    let id6: i64 = one(
        su,
        "SELECT outbox.enqueue('orders', '{}', key => 'kb')",
        &[],
    )
    .await
    .get(0);
    let stats: Vec<(String, i64, i64, i64, i64, i64)> =
        rows(a, "SELECT * FROM outbox.stats()", &[])
            .await
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect();
    assert_eq!(
        stats,
        vec![
            ("invoices".to_owned(), 1, 0, 0, 0, 0),
            ("orders".to_owned(), 2, 1, 0, 0, 1)
        ],
        "stats (topic, ready, blocked, scheduled, leased, dead)"
    );
    let blocked = rows(a, "SELECT * FROM outbox.blocked_keys()", &[]).await;
    assert_eq!(blocked.len(), 1, "blocked_keys");
    let b = &blocked[0];
    assert_eq!(
        (
            b.get::<_, String>(1),
            b.get::<_, i64>(2),
            b.get::<_, String>(3),
            b.get::<_, i64>(7)
        ),
        ("kb".to_owned(), id5, "ready".to_owned(), 1),
        "blocked_keys (key, head_id, head_state, waiting)"
    );

    // list_dead, requeue_dead, requeue_dead_topic, purge_dead, purge_dead_topic
    let dead_ids = |rows: Vec<outbox_tests::tokio_postgres::Row>| {
        rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>()
    };
    assert_eq!(
        dead_ids(rows(a, "SELECT * FROM outbox.list_dead()", &[]).await),
        vec![id3],
        "list_dead()"
    );
    assert_eq!(
        dead_ids(rows(a, "SELECT * FROM outbox.list_dead($1)", &[&"orders"]).await),
        vec![id3],
        "list_dead(orders)"
    );
    assert!(
        rows(a, "SELECT * FROM outbox.list_dead($1)", &[&"invoices"])
            .await
            .is_empty(),
        "list_dead(invoices)"
    );
    let n: i32 = one(a, "SELECT outbox.requeue_dead($1)", &[&vec![id3]])
        .await
        .get(0);
    assert_eq!(n, 1, "requeue_dead");
    check(
        su,
        "requeue_dead put it back with fresh attempts",
        "SELECT attempt = 0 AND deliver_at <= now() AND NOT EXISTS (SELECT 1 FROM outbox.dead_letters)
         FROM outbox.messages WHERE id = $1",
        &[&id3],
    )
    .await;
    // Everything claimable dies: id3, id5 and the invoice (id6 waits behind id5).
    let kill_all = || async move {
        for l in claim(a, "relay-a", 10).await {
            one(
                a,
                "SELECT state FROM outbox.fail($1, $2, 'x', permanent => true)",
                &[&l.id, &l.token],
            )
            .await;
        }
    };
    kill_all().await;
    let n: i32 = one(a, "SELECT outbox.requeue_dead_topic($1)", &[&"orders"])
        .await
        .get(0);
    assert_eq!(n, 2, "requeue_dead_topic(orders)");
    kill_all().await;
    let n: i32 = one(a, "SELECT outbox.purge_dead($1)", &[&vec![id3]])
        .await
        .get(0);
    assert_eq!(n, 1, "purge_dead");
    let n: i32 = one(
        a,
        "SELECT outbox.purge_dead_topic($1, '1 hour')",
        &[&"orders"],
    )
    .await
    .get(0);
    assert_eq!(
        n, 0,
        "purge_dead_topic(orders, 1 hour): nothing is that old"
    );
    let n: i32 = one(a, "SELECT outbox.purge_dead_topic($1)", &[&"orders"])
        .await
        .get(0);
    assert_eq!(n, 1, "purge_dead_topic(orders)");
    check(
        su,
        "what is left: the invoice dead, id6 ready",
        "SELECT (SELECT array_agg(id ORDER BY id) FROM outbox.dead_letters) = ARRAY[$1::bigint]
            AND (SELECT array_agg(id ORDER BY id) FROM outbox.messages) = ARRAY[$2::bigint]",
        &[&inv, &id6],
    )
    .await;

    // The doorbell functions, on the same poisoned session.
    assert_eq!(
        one(a, "SELECT outbox.doorbell_arm()", &[])
            .await
            .get::<_, String>(0),
        "armed"
    );
    enqueue_n(su, "orders", 1).await;
    assert!(
        one(a, "SELECT outbox.doorbell_disarm()", &[])
            .await
            .get::<_, bool>(0),
        "disarm"
    );
}
