//! Fuzzing the SQL surface: every function in schema `outbox` (enumerated
//! from the catalog, so a new one is fuzzed the day it lands) called with
//! random and hostile arguments (values.rs), positionally or by name, with
//! or without its defaulted arguments. Each call must end in a result or an
//! ERROR with a specific SQLSTATE — never XX000, never a backend crash
//! (checked on the connection and in the server log) — and a call that
//! errors must leave every outbox table as it was.
//!
//! `OUTBOX_FUZZ_CALLS` calls (default 3000, the CI budget; `make soak` runs
//! 100000); the seed is printed and `OUTBOX_FUZZ_SEED=<seed>` replays it.

mod values;

use outbox_tests::tokio_postgres::Client;
use outbox_tests::{describe_error, quote_ident, TestDb};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use values::Live;

struct Function {
    name: String,
    arg_names: Vec<Option<String>>,
    arg_types: Vec<String>,
    defaults: usize,
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn functions(c: &Client) -> Vec<Function> {
    c.query(
        "SELECT p.proname::text, coalesce(p.proargnames, '{}')::text[],
                ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, n) ORDER BY n),
                p.pronargdefaults::int
         FROM pg_proc AS p
         WHERE p.pronamespace = 'outbox'::regnamespace
           AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype
         ORDER BY p.proname, p.oid",
        &[],
    )
    .await
    .expect("the catalog")
    .iter()
    .map(|r| {
        let types: Vec<String> = r.get(2);
        let names: Vec<String> = r.get(1);
        Function {
            name: r.get(0),
            arg_names: (0..types.len()).map(|i| names.get(i).filter(|n| !n.is_empty()).cloned()).collect(),
            arg_types: types,
            defaults: usize::try_from(r.get::<_, i32>(3)).unwrap_or(0),
        }
    })
    .collect()
}

/// One query that fingerprints every table of the schema, and a TRUNCATE of
/// them all.
async fn snapshot_sql(c: &Client) -> (String, String) {
    let tables: Vec<String> = c
        .query(
            "SELECT c.oid::regclass::text FROM pg_class AS c
             WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1",
            &[],
        )
        .await
        .expect("the catalog")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let parts: Vec<String> = tables
        .iter()
        .map(|t| format!("(SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} AS x)"))
        .collect();
    (
        format!("SELECT concat_ws(',', {})", parts.join(", ")),
        // The partitions and segments are the log's bookkeeping, not
        // messages: they are reset, not emptied (a leased batch of
        // truncated messages would otherwise hold its partition for the
        // pool's one-hour lease).
        format!(
            "TRUNCATE {}; UPDATE outbox.partitions SET lease_owner = NULL, lease_token = NULL, \
             lease_expires_at = NULL, batch = '{{}}', deferred = '{{}}', cursor_id = batch_end",
            tables
                .iter()
                .filter(|t| !["outbox.partitions", "outbox.segments"].contains(&t.as_str()))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// Keep some messages in every state, and remember their ids and tokens.
/// Starts from empty tables, so fingerprinting them stays cheap (a
/// successful `enqueue_batch` of 10,000 messages is a valid call).
async fn refresh(c: &Client, truncate: &str, live: &mut Live, rng: &mut ChaCha8Rng) {
    c.batch_execute(truncate).await.expect("truncate");
    *live = Live::default();
    let sql = "SELECT outbox.enqueue_batch('orders', array_fill('{\"n\": 1}'::jsonb, ARRAY[6]),
                                         keys => ARRAY['k1', 'k1', 'k2', NULL, NULL, 'k3']);
               SELECT outbox.enqueue('payments', '1', deliver_at => now() + interval '1 hour');";
    c.batch_execute(sql).await.expect("enqueue for the pool");
    let rows = c
        .query(
            "SELECT id, lease_token::text FROM outbox.claim('fuzz', 4, '1 hour')",
            &[],
        )
        .await
        .expect("claim for the pool");
    for (i, r) in rows.iter().enumerate() {
        let (id, token): (i64, String) = (r.get(0), r.get(1));
        if i == 0 && rng.gen_bool(0.5) {
            c.query(
                "SELECT outbox.fail($1, $2::text::uuid, 'x', permanent => true)",
                &[&id, &token],
            )
            .await
            .expect("fail for the pool");
        }
        live.tokens.push(token);
    }
    live.ids.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
    live.dead = c
        .query("SELECT id FROM outbox.list_dead(NULL, 20)", &[])
        .await
        .expect("list_dead")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The newest leases are the ones most likely still held.
    let old = live.tokens.len().saturating_sub(50);
    live.tokens.drain(..old);
    let old = live.ids.len().saturating_sub(50);
    live.ids.drain(..old);
}

fn call_sql(f: &Function, rng: &mut ChaCha8Rng, live: &Live) -> Option<String> {
    let omit = rng.gen_range(0..=f.defaults);
    let n = f.arg_types.len() - omit;
    let named = rng.gen_bool(0.4) && f.arg_names.iter().all(Option::is_some);
    let mut args = Vec::with_capacity(n);
    for i in 0..n {
        let v = values::value(&f.arg_types[i], rng, live)?;
        match (&f.arg_names[i], named) {
            (Some(name), true) => args.push(format!("{} => {v}", quote_ident(name))),
            _ => args.push(v),
        }
    }
    Some(format!(
        "SELECT * FROM outbox.{}({})",
        quote_ident(&f.name),
        args.join(", ")
    ))
}

#[tokio::test]
async fn every_function_answers_hostile_arguments_with_a_result_or_a_specific_error() {
    let calls = env_or("OUTBOX_FUZZ_CALLS", 3_000);
    let seed = env_or("OUTBOX_FUZZ_SEED", rand::random());
    eprintln!("fuzz: seed {seed}, {calls} calls (replay: OUTBOX_FUZZ_SEED={seed} cargo test -p outbox_tests --test fuzz)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "DO $$ BEGIN CREATE ROLE fuzz_role; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         SET statement_timeout = '30s'; SET outbox.retry_jitter = 0;",
    )
    .await
    .expect("setup");
    let functions = functions(&c).await;
    let ungenerated: Vec<String> = functions
        .iter()
        .flat_map(|f| {
            f.arg_types
                .iter()
                .filter(|t| values::value(t, &mut rng.clone(), &Live::default()).is_none())
                .map(move |t| format!("{}({t})", f.name))
        })
        .collect();
    assert!(
        ungenerated.is_empty(),
        "no value generator for: {ungenerated:?} (add one in tests/tests/fuzz/values.rs)"
    );
    let (snapshot, truncate) = snapshot_sql(&c).await;
    let mut live = Live::default();
    let mut failures = Vec::new();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_function: BTreeMap<&str, u64> = BTreeMap::new();
    for n in 0..calls {
        if n % 100 == 0 {
            refresh(&c, &truncate, &mut live, &mut rng).await;
        }
        // Round robin, so every function is called; the arguments are random.
        let f = &functions[usize::try_from(n).unwrap_or(0) % functions.len()];
        let Some(sql) = call_sql(f, &mut rng, &live) else {
            continue;
        };
        *per_function.entry(&f.name).or_default() += 1;
        let before: String = c.query_one(&snapshot, &[]).await.expect("snapshot").get(0);
        match c.batch_execute(&sql).await {
            Ok(()) => *seen.entry("ok".into()).or_default() += 1,
            Err(e) => {
                let Some(dbe) = e.as_db_error() else {
                    panic!(
                        "the connection broke (backend crash?) on call {n}: {sql}\n{}",
                        describe_error(&e)
                    );
                };
                let code = dbe.code().code().to_owned();
                *seen.entry(code.clone()).or_default() += 1;
                if code == "XX000" {
                    failures.push(format!("XX000 on {sql}: {}", dbe.message()));
                }
                if c.is_closed() {
                    panic!("the backend went away on call {n}: {sql}");
                }
                let after: String = c.query_one(&snapshot, &[]).await.expect("snapshot").get(0);
                if after != before {
                    failures.push(format!("{code} but the outbox changed: {sql}"));
                }
            }
        }
        if rng.gen_bool(0.01) {
            // Reset what the calls may have changed about this session.
            c.batch_execute("RESET outbox.max_payload_bytes; SELECT outbox.doorbell_disarm()")
                .await
                .expect("reset");
        }
    }
    let log = db.cluster().log_contents();
    for marker in [
        "terminated by signal",
        "PANIC:",
        "was terminated",
        "server process",
    ] {
        if log.contains(marker) {
            failures.push(format!("the server log says {marker:?}: a backend crashed"));
        }
    }
    eprintln!(
        "fuzz: {calls} calls over {} functions, outcomes by SQLSTATE: {seen:?}",
        per_function.len()
    );
    eprintln!("fuzz: calls per function: {per_function:?}");
    let shown: Vec<&String> = failures.iter().take(30).collect();
    assert!(
        failures.is_empty(),
        "{} bad outcomes (seed {seed}):\n{shown:#?}",
        failures.len()
    );
}
