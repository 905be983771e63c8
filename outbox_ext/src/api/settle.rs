//! complete, release and extend: the guarded changes a lease holder makes.
//! Each matches `id AND lease_token`, so a relay whose lease expired and was
//! re-claimed by another changes nothing; the result says how many messages
//! it still held (a stale lease is a result, not an error).
//!
//! A message is in a leased log batch or in the side table
//! (docs/storage.md, "Settling"). complete settles log batches on their
//! partition row (one small write per batch), then the side table; release
//! and a partial extend first move log messages to the side table, still
//! leased, and then work there per message.

use super::claim::lease_deadline;
use super::history;
use super::{detach, ids_from, reject_unknown_ids, INT8_ARRAY, TIMESTAMPTZ, UUID};
use crate::error::{required, OutboxError, OutboxResult};
use crate::plans::Query;
use pgrx::datum::{Array, DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::Uuid;

static COMPLETE: Query = Query {
    sql: include_str!("../../../sql/queries/complete.sql"),
    args: &[INT8_ARRAY, UUID],
};

static RELEASE: Query = Query {
    sql: include_str!("../../../sql/queries/release.sql"),
    args: &[INT8_ARRAY, UUID],
};

static EXTEND: Query = Query {
    sql: include_str!("../../../sql/queries/extend.sql"),
    args: &[INT8_ARRAY, UUID, TIMESTAMPTZ],
};

static PARTITION_COMPLETE: Query = Query {
    sql: include_str!("../../../sql/queries/partition_complete.sql"),
    args: &[INT8_ARRAY, UUID],
};

static PARTITION_EXTEND: Query = Query {
    sql: include_str!("../../../sql/queries/partition_extend.sql"),
    args: &[INT8_ARRAY, UUID, TIMESTAMPTZ],
};

/// What a settle call does with the messages of leased log batches before
/// its side-table statement runs.
#[derive(Clone, Copy)]
enum LogStep {
    /// Settle them on the partition row (complete).
    Complete,
    /// Move them to the side table, still leased (release).
    Detach,
    /// Extend whole batches on the partition row, detach the rest (extend).
    Extend,
}

/// Run a guarded settle over `ids`: the log step, then the side-table
/// statement; returns how many messages the token held and the first value
/// of the side statement's RETURNING column (or the extended expiry).
fn guarded(
    step: LogStep,
    query: &'static Query,
    ids: Vec<i64>,
    token: Uuid,
    extra: Option<TimestampWithTimeZone>,
) -> Result<(usize, Option<TimestampWithTimeZone>), OutboxError> {
    let wanted = ids.len();
    // With retention on, complete records what it finishes (history.rs);
    // off, it runs the statements it always ran.
    let kept_at = (matches!(step, LogStep::Complete) && history::on()).then(crate::clock::now);
    let query = if kept_at.is_some() {
        &history::COMPLETE_KEPT
    } else {
        query
    };
    Spi::connect_mut(|client| {
        let mut in_log = 0;
        let mut side_ids = ids.clone();
        match step {
            LogStep::Complete => {
                if let Some(now) = kept_at {
                    history::record_log(client, &ids, token, now)?;
                }
                let args: [DatumWithOid; 2] = [ids.clone().into(), token.into()];
                in_log = PARTITION_COMPLETE.run(client, &args, |t| {
                    let mut n = 0;
                    for row in t {
                        n += row.get::<i32>(1)?.unwrap_or(0);
                    }
                    Ok(n)
                })?;
            }
            LogStep::Detach => detach(client, &ids, token)?,
            LogStep::Extend => {
                let lease_end = extra
                    .ok_or_else(|| OutboxError::Internal("extend without a lease end".into()))?;
                let args: [DatumWithOid; 3] = [ids.clone().into(), token.into(), lease_end.into()];
                let covered = PARTITION_EXTEND.run(client, &args, |t| {
                    let mut covered: Vec<i64> = Vec::new();
                    for row in t {
                        covered.extend(row.get::<Vec<i64>>(1)?.unwrap_or_default());
                    }
                    Ok(covered)
                })?;
                in_log = i32::try_from(covered.len()).unwrap_or(i32::MAX);
                side_ids.retain(|id| !covered.contains(id));
                if !side_ids.is_empty() {
                    detach(client, &side_ids, token)?;
                }
            }
        }
        // Every id settled in the log (the whole batch completed or
        // extended): the side table cannot hold any of them, so the happy
        // path skips its statement.
        if usize::try_from(in_log).unwrap_or(0) >= wanted {
            return Ok((wanted, extra));
        }
        let mut args: Vec<DatumWithOid> = vec![side_ids.clone().into(), token.into()];
        if let Some(at) = extra.or(kept_at) {
            args.push(at.into());
        }
        let (in_side, first) = query.run(client, &args, |t| {
            let n = t.len();
            let first = if n > 0 && extra.is_some() {
                t.first().get_one::<TimestampWithTimeZone>()?
            } else {
                None
            };
            Ok((n, first))
        })?;
        let changed = usize::try_from(in_log).unwrap_or(0) + in_side;
        if changed < wanted {
            reject_unknown_ids(client, &ids)?;
        }
        let first = match (first, in_log > 0) {
            (None, true) => extra,
            (first, _) => first,
        };
        Ok((changed, first))
    })
}

/// Mark one leased message as delivered: it leaves the outbox. Returns false
/// (and changes nothing) if `lease_token` no longer holds it.
///
/// ```sql
/// SELECT outbox.complete(42, '6f1c...'::uuid);
/// ```
#[pg_extern(name = "complete", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn complete_one(
    id: Option<i64>,
    lease_token: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> OutboxResult<bool> {
    let _outbox = crate::outboxes::enter(fcinfo);
    let id = required(id, "id")?;
    let token = required(lease_token, "lease_token")?;
    Ok(guarded(LogStep::Complete, &COMPLETE, vec![id], token, None)?.0 == 1)
}

/// Mark a claimed batch as delivered. Returns how many of `ids` the token
/// still held (those are gone now); the rest are untouched.
///
/// ```sql
/// SELECT outbox.complete_batch(ARRAY[41, 42], '6f1c...'::uuid);
/// ```
#[pg_extern(name = "complete_batch", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn complete_many(
    ids: Option<Array<'_, i64>>,
    lease_token: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> OutboxResult<i32> {
    let _outbox = crate::outboxes::enter(fcinfo);
    let ids = ids_from(ids)?;
    let token = required(lease_token, "lease_token")?;
    Ok(count(
        guarded(LogStep::Complete, &COMPLETE, ids, token, None)?.0,
    ))
}

/// Give one leased message back, ready at once, without spending an
/// attempt (a relay shutting down). Returns false if the lease is stale.
#[pg_extern(name = "release", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn release_one(
    id: Option<i64>,
    lease_token: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> OutboxResult<bool> {
    let _outbox = crate::outboxes::enter(fcinfo);
    let id = required(id, "id")?;
    let token = required(lease_token, "lease_token")?;
    Ok(guarded(LogStep::Detach, &RELEASE, vec![id], token, None)?.0 == 1)
}

/// Give leased messages back. Returns how many the token still held.
#[pg_extern(name = "release_batch", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn release_many(
    ids: Option<Array<'_, i64>>,
    lease_token: Option<Uuid>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> OutboxResult<i32> {
    let _outbox = crate::outboxes::enter(fcinfo);
    let ids = ids_from(ids)?;
    let token = required(lease_token, "lease_token")?;
    Ok(count(
        guarded(LogStep::Detach, &RELEASE, ids, token, None)?.0,
    ))
}

/// Keep holding a message for `lease` from now (NULL: `outbox.default_lease`).
/// Returns the new expiry, or NULL if the lease is stale.
#[pg_extern(name = "extend", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn extend_one(
    id: Option<i64>,
    lease_token: Option<Uuid>,
    lease: default!(Option<Interval>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> OutboxResult<Option<TimestampWithTimeZone>> {
    let _outbox = crate::outboxes::enter(fcinfo);
    let id = required(id, "id")?;
    let token = required(lease_token, "lease_token")?;
    let lease_end = lease_deadline(crate::clock::now(), lease)?;
    Ok(guarded(LogStep::Extend, &EXTEND, vec![id], token, Some(lease_end))?.1)
}

/// Extend the lease of several messages. Returns how many the token still held.
#[pg_extern(name = "extend_batch", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn extend_many(
    ids: Option<Array<'_, i64>>,
    lease_token: Option<Uuid>,
    lease: default!(Option<Interval>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> OutboxResult<i32> {
    let _outbox = crate::outboxes::enter(fcinfo);
    let ids = ids_from(ids)?;
    let token = required(lease_token, "lease_token")?;
    let lease_end = lease_deadline(crate::clock::now(), lease)?;
    Ok(count(
        guarded(LogStep::Extend, &EXTEND, ids, token, Some(lease_end))?.0,
    ))
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
