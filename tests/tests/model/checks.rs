//! What must hold after every step, and at the end of a case.

use crate::case::{db_err, ensure, set_clock, Check, Sut, MAX_DRIFT_SECS};
use crate::model::{Model, TopicCounts, TICK_SECS};
use crate::ops::Op;
use crate::step::{settle, step, Settle};
use std::collections::BTreeMap;
use uuid::Uuid;

/// After every step: stats(), list_dead() and blocked_keys() say what the
/// model says, so each message is in exactly the state the model has it in.
pub(crate) async fn invariants(sut: &Sut, model: &Model) -> Check {
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
/// one was delivered or is a dead letter. It also holds claim to
/// docs/sql-api.md's promise that an empty claim means nothing is ready
/// (short of 100 rounds of burials), in the log as in the side table.
pub(crate) async fn drain(sut: &mut Sut, model: &mut Model) -> Check {
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
        let n = settle(sut, 0, Settle::Complete, &ids, token, false).await?;
        let expected = model.complete(&ids, Some(model.claims.len() - 1));
        ensure(n == expected && n == ids.len(), || {
            format!("completed {n} of the {} claimed", ids.len())
        })?;
        invariants(sut, model).await?;
    }
    Err("the outbox did not drain in 1000 claims".into())
}
