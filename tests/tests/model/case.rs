//! One case: a fresh database, the steps run against it and the model side
//! by side, every answer compared, the invariants checked after each step,
//! and a final drain that proves nothing was lost. Only the SQL API is used
//! (no table is read), so the suite keeps working when the storage changes.

use crate::model::{FailResult, Model, TopicCounts, TICK_SECS, TOPICS};
use crate::ops::{picked, Op, CONNS};
use chrono::{DateTime, Utc};
use outbox_tests::tokio_postgres::Client;
use outbox_tests::{quote_ident, TestDb, SUPERUSER};
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Largest drift between the real clock and the model's a case tolerates:
/// half a tick (purge_dead_topic's boundary sits half a tick away).
const MAX_DRIFT_SECS: f64 = TICK_SECS as f64 / 2.0;

type Check = Result<(), String>;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn interval(ticks: i64) -> String {
    format!("{} seconds", ticks * TICK_SECS)
}

struct Sut {
    conns: Vec<Client>,
    /// The real time at the start of the case: model tick t is base + t ticks.
    base: DateTime<Utc>,
    /// Claim index -> the lease token it used (random when it got nothing).
    tokens: Vec<Uuid>,
    last_id: i64,
}

impl Sut {
    fn at(&self, ticks: i64) -> DateTime<Utc> {
        self.base + chrono::Duration::seconds(ticks * TICK_SECS)
    }

    /// A time the server returned is the model's tick plus a small drift.
    fn close_to(&self, got: DateTime<Utc>, ticks: i64) -> bool {
        let drift = (got - self.at(ticks)).num_milliseconds() as f64 / 1000.0;
        (0.0..MAX_DRIFT_SECS).contains(&drift)
    }
}

fn db_err(e: outbox_tests::tokio_postgres::Error) -> String {
    outbox_tests::describe_error(&e)
}

/// Runs one case; the error says which step diverged and how. `steps`
/// counts the steps that ran.
pub async fn run(ops: &[Op], steps: &std::sync::atomic::AtomicUsize) -> Check {
    let db = TestDb::new().await;
    let result = run_in(&db, ops, steps).await;
    let admin = db.cluster().connect("postgres", SUPERUSER).await;
    let drop = format!("DROP DATABASE {} WITH (FORCE)", quote_ident(db.name()));
    admin.batch_execute(&drop).await.map_err(db_err)?;
    result
}

async fn run_in(db: &TestDb, ops: &[Op], steps: &std::sync::atomic::AtomicUsize) -> Check {
    // Exact, small retry schedule and attempt budget: see model.rs.
    let setup = format!(
        "ALTER DATABASE {} SET outbox.retry_jitter = 0; \
         ALTER DATABASE {0} SET outbox.retry_base = '{}s'; \
         ALTER DATABASE {0} SET outbox.retry_cap = '{}s'; \
         ALTER DATABASE {0} SET outbox.max_attempts = {};",
        quote_ident(db.name()),
        crate::model::RETRY_BASE_TICKS * TICK_SECS,
        crate::model::RETRY_CAP_TICKS * TICK_SECS,
        crate::model::DEFAULT_MAX_ATTEMPTS,
    );
    db.client()
        .await
        .batch_execute(&setup)
        .await
        .map_err(db_err)?;
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        conns.push(db.client().await);
    }
    let base: DateTime<Utc> = conns[0]
        .query_one("SELECT statement_timestamp()", &[])
        .await
        .map_err(db_err)?
        .get(0);
    let mut sut = Sut {
        conns,
        base,
        tokens: Vec::new(),
        last_id: 0,
    };
    let mut model = Model::default();
    for (n, op) in ops.iter().enumerate() {
        step(&mut sut, &mut model, op)
            .await
            .map_err(|e| format!("step {n} {op:?}: {e}"))?;
        invariants(&sut, &model)
            .await
            .map_err(|e| format!("after step {n} {op:?}: {e}"))?;
        steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    drain(&mut sut, &mut model)
        .await
        .map_err(|e| format!("final drain: {e}"))
}

async fn set_clock(sut: &Sut, model: &Model) -> Check {
    let sql = format!(
        "SET outbox.test_clock_offset = {}",
        model.now * TICK_SECS * 1000
    );
    for c in &sut.conns {
        c.batch_execute(&sql).await.map_err(db_err)?;
    }
    Ok(())
}

/// The claim an op refers to: its index and the token to send.
fn resolve_claim(sut: &Sut, claim: &Option<proptest::sample::Index>) -> (Option<usize>, Uuid) {
    match claim {
        Some(i) if !sut.tokens.is_empty() => {
            let c = i.index(sut.tokens.len());
            (Some(c), sut.tokens[c])
        }
        _ => (None, Uuid::new_v4()),
    }
}

/// The ids a settle op sends: the picked members of its claim, or of every
/// message so far when it uses an unknown token.
fn resolve_ids(model: &Model, claim: Option<usize>, pick: u8, single: bool) -> Vec<i64> {
    let pool: Vec<i64> = match claim {
        Some(c) => model.claims[c].clone(),
        None => model.msgs.keys().copied().collect(),
    };
    let ids = picked(&pool, pick);
    if single {
        ids.first().or(pool.first()).copied().into_iter().collect()
    } else {
        ids
    }
}

async fn step(sut: &mut Sut, model: &mut Model, op: &Op) -> Check {
    match op {
        Op::Enqueue {
            conn,
            topic,
            key,
            deliver_in,
            max_attempts,
        } => {
            let key = key.map(|k| format!("k{k}"));
            let at = deliver_in.map(|d| sut.at(model.now + d));
            let id: i64 = sut.conns[*conn]
                .query_one(
                    "SELECT outbox.enqueue($1, $2, key => $3, deliver_at => $4, max_attempts => $5)",
                    &[&TOPICS[*topic], &json!({"n": sut.last_id}), &key, &at, max_attempts],
                )
                .await
                .map_err(db_err)?
                .get(0);
            ensure(id > sut.last_id, || {
                format!("id {id} is not above {}", sut.last_id)
            })?;
            sut.last_id = id;
            model.enqueue(id, *topic, key, *deliver_in, *max_attempts);
        }
        Op::EnqueueBatch {
            topic,
            keys,
            deliver_in,
        } => {
            let keys: Vec<Option<String>> =
                keys.iter().map(|k| k.map(|k| format!("k{k}"))).collect();
            let payloads: Vec<serde_json::Value> = (0..keys.len()).map(|i| json!(i)).collect();
            let at = deliver_in.map(|d| sut.at(model.now + d));
            let ids: Vec<i64> = sut.conns[0]
                .query_one(
                    "SELECT outbox.enqueue_batch($1, $2, keys => $3, deliver_at => $4)",
                    &[&TOPICS[*topic], &payloads, &keys, &at],
                )
                .await
                .map_err(db_err)?
                .get(0);
            ensure(ids.len() == keys.len(), || {
                format!("{} ids for {} messages", ids.len(), keys.len())
            })?;
            for (id, key) in ids.into_iter().zip(keys) {
                ensure(id > sut.last_id, || {
                    format!("id {id} is not above {}", sut.last_id)
                })?;
                sut.last_id = id;
                model.enqueue(id, *topic, key, *deliver_in, None);
            }
        }
        Op::Claim {
            conn,
            batch,
            lease,
            topics,
        } => {
            let names: Option<Vec<&str>> = topics
                .as_ref()
                .map(|t| t.iter().map(|&i| TOPICS[i]).collect());
            let rows = sut.conns[*conn]
                .query(
                    "SELECT id, attempt, lease_token FROM outbox.claim($1, $2, $3::text::interval, $4)",
                    &[&format!("owner-{conn}"), &(*batch as i32), &interval(*lease), &names],
                )
                .await
                .map_err(db_err)?;
            let got: Vec<(i64, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            let tokens: std::collections::BTreeSet<Uuid> = rows.iter().map(|r| r.get(2)).collect();
            ensure(tokens.len() <= 1, || {
                format!("one claim used {} tokens", tokens.len())
            })?;
            // Per-key order, checked on its own: nothing handed out may have
            // an older unfinished message of its key.
            let blocked: Vec<i64> = model
                .live_ids()
                .into_iter()
                .filter(|id| model.behind_older(*id, &model.msgs[id]))
                .collect();
            let expected = model.claim(*batch, *lease, topics.as_deref());
            ensure(got == expected, || {
                format!("claimed {got:?}, the model expected {expected:?}")
            })?;
            ensure(got.iter().all(|(id, _)| !blocked.contains(id)), || {
                format!("claimed {got:?} while an older message of the key was unfinished")
            })?;
            sut.tokens
                .push(tokens.into_iter().next().unwrap_or_else(Uuid::new_v4));
        }
        Op::Complete {
            conn,
            claim,
            pick,
            single,
        } => {
            let (c, token) = resolve_claim(sut, claim);
            let ids = resolve_ids(model, c, *pick, *single);
            let got = settle(sut, *conn, "complete", &ids, token, *single, None).await?;
            let expected = model.complete(&ids, c);
            ensure(got == expected, || {
                format!("completed {got} of {ids:?}, the model expected {expected}")
            })?;
        }
        Op::Release {
            conn,
            claim,
            pick,
            single,
        } => {
            let (c, token) = resolve_claim(sut, claim);
            let ids = resolve_ids(model, c, *pick, *single);
            let got = settle(sut, *conn, "release", &ids, token, *single, None).await?;
            let expected = model.release(&ids, c);
            ensure(got == expected, || {
                format!("released {got} of {ids:?}, the model expected {expected}")
            })?;
        }
        Op::Extend {
            conn,
            claim,
            pick,
            single,
            lease,
        } => {
            let (c, token) = resolve_claim(sut, claim);
            let ids = resolve_ids(model, c, *pick, *single);
            let got = settle(sut, *conn, "extend", &ids, token, *single, Some(*lease)).await?;
            let expected = model.extend(&ids, c, *lease).len();
            ensure(got == expected, || {
                format!("extended {got} of {ids:?}, the model expected {expected}")
            })?;
        }
        Op::Fail {
            conn,
            claim,
            which,
            retry_in,
            permanent,
        } => {
            let (c, token) = resolve_claim(sut, claim);
            let pool: Vec<i64> = match c {
                Some(c) if !model.claims[c].is_empty() => model.claims[c].clone(),
                _ => model.msgs.keys().copied().collect(),
            };
            let Some(&id) = pool.get(which.index(pool.len().max(1))) else {
                return Ok(());
            };
            let row = sut.conns[*conn]
                .query_one(
                    "SELECT state, attempt, next_attempt_at FROM outbox.fail($1, $2, 'model says no', \
                     retry_in => $3::text::interval, permanent => $4)",
                    &[&id, &token, &retry_in.map(interval), permanent],
                )
                .await
                .map_err(db_err)?;
            let (state, attempt, next): (String, Option<i32>, Option<DateTime<Utc>>) =
                (row.get(0), row.get(1), row.get(2));
            let expected = model.fail(id, c, *retry_in, *permanent);
            let agrees = match &expected {
                FailResult::Stale => state == "stale" && attempt.is_none(),
                FailResult::Dead { attempt: a } => state == "dead" && attempt == Some(*a),
                FailResult::Retrying { attempt: a, at } => {
                    state == "retrying"
                        && attempt == Some(*a)
                        && next.is_some_and(|n| sut.close_to(n, *at))
                }
            };
            ensure(agrees, || {
                format!("fail said {state} {attempt:?} {next:?}, the model expected {expected:?}")
            })?;
        }
        Op::Advance { ticks } => {
            model.now += ticks;
            set_clock(sut, model).await?;
        }
        Op::Requeue { which } => {
            let dead = model.dead_ids();
            if let Some(&id) = dead.get(which.index(dead.len().max(1))) {
                let n: i32 = sut.conns[0]
                    .query_one("SELECT outbox.requeue_dead(ARRAY[$1::bigint])", &[&id])
                    .await
                    .map_err(db_err)?
                    .get(0);
                let expected = model.requeue(id) as i32;
                ensure(n == expected, || {
                    format!("requeued {n}, expected {expected}")
                })?;
            }
        }
        Op::Purge { which } => {
            let dead = model.dead_ids();
            if let Some(&id) = dead.get(which.index(dead.len().max(1))) {
                let n: i32 = sut.conns[0]
                    .query_one("SELECT outbox.purge_dead(ARRAY[$1::bigint])", &[&id])
                    .await
                    .map_err(db_err)?
                    .get(0);
                let expected = model.purge(id) as i32;
                ensure(n == expected, || format!("purged {n}, expected {expected}"))?;
            }
        }
        Op::PurgeTopic { topic, older_than } => {
            let older = older_than.map(|k| format!("{} seconds", k * TICK_SECS + TICK_SECS / 2));
            let n: i32 = sut.conns[0]
                .query_one(
                    "SELECT outbox.purge_dead_topic($1, $2::text::interval)",
                    &[&TOPICS[*topic], &older],
                )
                .await
                .map_err(db_err)?
                .get(0);
            let expected = model.purge_topic(*topic, *older_than) as i32;
            ensure(n == expected, || {
                format!("purged {n} of topic {topic}, expected {expected}")
            })?;
        }
    }
    Ok(())
}

/// complete / release / extend, in their single or batch form; how many of
/// `ids` the token still held.
async fn settle(
    sut: &Sut,
    conn: usize,
    verb: &str,
    ids: &[i64],
    token: Uuid,
    single: bool,
    lease: Option<i64>,
) -> Result<usize, String> {
    let c = &sut.conns[conn];
    let lease = lease.map(interval);
    if single {
        let Some(&id) = ids.first() else { return Ok(0) };
        return Ok(match verb {
            "extend" => {
                let sql = "SELECT outbox.extend($1, $2, $3::text::interval)";
                let end: Option<DateTime<Utc>> = c
                    .query_one(sql, &[&id, &token, &lease])
                    .await
                    .map_err(db_err)?
                    .get(0);
                usize::from(end.is_some())
            }
            _ => {
                let sql = format!("SELECT outbox.{verb}($1, $2)");
                let held: bool = c
                    .query_one(&sql, &[&id, &token])
                    .await
                    .map_err(db_err)?
                    .get(0);
                usize::from(held)
            }
        });
    }
    let n: i32 = match verb {
        "extend" => c
            .query_one(
                "SELECT outbox.extend_batch($1, $2, $3::text::interval)",
                &[&ids, &token, &lease],
            )
            .await
            .map_err(db_err)?
            .get(0),
        _ => {
            let sql = format!("SELECT outbox.{verb}_batch($1, $2)");
            c.query_one(&sql, &[&ids, &token])
                .await
                .map_err(db_err)?
                .get(0)
        }
    };
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// After every step: stats(), list_dead() and blocked_keys() say what the
/// model says, so each message is in exactly the state the model has it in.
async fn invariants(sut: &Sut, model: &Model) -> Check {
    let c = &sut.conns[0];
    let rows = c
        .query(
            "SELECT topic, ready, blocked, scheduled, leased, dead, \
             extract(epoch FROM oldest_ready_age)::float8 FROM outbox.stats()",
            &[],
        )
        .await
        .map_err(db_err)?;
    let mut stats = BTreeMap::new();
    let mut ages = BTreeMap::new();
    for r in &rows {
        let topic: String = r.get(0);
        let counts = TopicCounts {
            ready: r.get(1),
            blocked: r.get(2),
            scheduled: r.get(3),
            leased: r.get(4),
            dead: r.get(5),
        };
        if let Some(age) = r.get::<_, Option<f64>>(6) {
            ages.insert(topic.clone(), age);
        }
        stats.insert(topic, counts);
    }
    let expected = model.stats();
    ensure(stats == expected, || {
        format!("stats() {stats:?}, the model expected {expected:?}")
    })?;
    let expected_ages = model.oldest_ready_age();
    ensure(ages.keys().eq(expected_ages.keys()), || {
        format!("ages for {ages:?}, expected {expected_ages:?}")
    })?;
    for (topic, age) in &ages {
        let want = (expected_ages[topic] * TICK_SECS) as f64;
        ensure((age - want).abs() < MAX_DRIFT_SECS, || {
            format!("oldest_ready_age of {topic} is {age}s, expected {want}s")
        })?;
    }

    let dead: Vec<(i64, i32, String)> = c
        .query(
            "SELECT id, attempts, reason FROM outbox.list_dead(NULL, NULL)",
            &[],
        )
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected: Vec<(i64, i32, String)> = model
        .dead_letters()
        .into_iter()
        .map(|(id, a, r)| (id, a, r.to_owned()))
        .collect();
    ensure(dead == expected, || {
        format!("list_dead() {dead:?}, the model expected {expected:?}")
    })?;

    let blocked: Vec<(String, i64, String, i32, i64)> = c
        .query(
            "SELECT key, head_id, head_state, head_attempt, waiting FROM outbox.blocked_keys(NULL)",
            &[],
        )
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let expected: Vec<(String, i64, String, i32, i64)> = model
        .blocked_keys()
        .into_iter()
        .map(|(k, id, s, a, w)| (k, id, s.to_owned(), a, w))
        .collect();
    ensure(blocked == expected, || {
        format!("blocked_keys() {blocked:?}, the model expected {expected:?}")
    })
}

/// Nothing lost: once every lease, delay and retry has run out, claiming and
/// completing until claim returns nothing leaves no message behind — each
/// one was delivered or is a dead letter.
async fn drain(sut: &mut Sut, model: &mut Model) -> Check {
    model.now += 100;
    set_clock(sut, model).await?;
    for _ in 0..1_000 {
        let claim = Op::Claim {
            conn: 0,
            batch: 10,
            lease: 1,
            topics: None,
        };
        step(sut, model, &claim).await?;
        let Some(ids) = model.claims.last().filter(|ids| !ids.is_empty()).cloned() else {
            let live = model.live_ids();
            return ensure(live.is_empty(), || {
                format!("claim returns nothing but {live:?} are unfinished")
            });
        };
        let token = sut.tokens.last().copied().unwrap_or_else(Uuid::new_v4);
        let n = settle(sut, 0, "complete", &ids, token, false, None).await?;
        let expected = model.complete(&ids, Some(model.claims.len() - 1));
        ensure(n == expected && n == ids.len(), || {
            format!("completed {n} of the {} claimed", ids.len())
        })?;
        invariants(sut, model).await?;
    }
    Err("the outbox did not drain in 1000 claims".into())
}
