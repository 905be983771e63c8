//! One step of a case, run against the database and the model side by side,
//! with the two answers compared.

use crate::case::{db_err, ensure, interval, set_clock, Check, Sut};
use crate::model::{FailResult, Model, TICK_SECS, TOPICS};
use crate::ops::{picked, Op};
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

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

pub(crate) async fn step(sut: &mut Sut, model: &mut Model, op: &Op) -> Check {
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
            let expected = model.claim(*batch, *lease, topics.as_deref());
            ensure(got == expected, || {
                format!("claimed {got:?}, the model expected {expected:?}")
            })?;
            // Per-key order, checked on its own: nothing handed out may have
            // an older unfinished message of its key once the claim is done
            // (an older one it buried, out of attempts, is finished).
            ensure(
                got.iter()
                    .all(|(id, _)| !model.behind_older(*id, &model.msgs[id])),
                || format!("claimed {got:?} while an older message of the key was unfinished"),
            )?;
            sut.tokens
                .push(tokens.into_iter().next().unwrap_or_else(Uuid::new_v4));
        }
        Op::Complete {
            conn,
            claim,
            pick,
            single,
        } => settle_step(sut, model, Settle::Complete, *conn, claim, *pick, *single).await?,
        Op::Release {
            conn,
            claim,
            pick,
            single,
        } => settle_step(sut, model, Settle::Release, *conn, claim, *pick, *single).await?,
        Op::Extend {
            conn,
            claim,
            pick,
            single,
            lease,
        } => {
            let how = Settle::Extend(*lease);
            settle_step(sut, model, how, *conn, claim, *pick, *single).await?;
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

/// The guarded calls a lease holder makes with a token.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Settle {
    Complete,
    Release,
    /// With the new lease, in ticks.
    Extend(i64),
}

impl Settle {
    fn verb(self) -> &'static str {
        match self {
            Settle::Complete => "complete",
            Settle::Release => "release",
            Settle::Extend(_) => "extend",
        }
    }
}

/// complete / release / extend the picked messages of a claim, on both sides.
async fn settle_step(
    sut: &Sut,
    model: &mut Model,
    how: Settle,
    conn: usize,
    claim: &Option<proptest::sample::Index>,
    pick: u8,
    single: bool,
) -> Check {
    let (c, token) = resolve_claim(sut, claim);
    let ids = resolve_ids(model, c, pick, single);
    let got = settle(sut, conn, how, &ids, token, single).await?;
    let expected = match how {
        Settle::Complete => model.complete(&ids, c),
        Settle::Release => model.release(&ids, c),
        Settle::Extend(lease) => model.extend(&ids, c, lease),
    };
    ensure(got == expected, || {
        format!(
            "{} held {got} of {ids:?}, the model expected {expected}",
            how.verb()
        )
    })
}

/// complete / release / extend, in their single or batch form; how many of
/// `ids` the token still held.
pub(crate) async fn settle(
    sut: &Sut,
    conn: usize,
    how: Settle,
    ids: &[i64],
    token: Uuid,
    single: bool,
) -> Result<usize, String> {
    let c = &sut.conns[conn];
    let verb = how.verb();
    let lease = match how {
        Settle::Extend(ticks) => Some(interval(ticks)),
        _ => None,
    };
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
