//! complete, release and extend: the guarded one-statement changes a lease
//! holder makes. Each matches `id AND lease_token`, so a relay whose lease
//! expired and was re-claimed by another changes nothing; the result says
//! how many messages it still held (a stale lease is a result, not an error).

use super::claim::lease_deadline;
use super::{ids_from, reject_unknown_ids, INT8_ARRAY, TIMESTAMPTZ, UUID};
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

/// Run a guarded statement over `ids`; returns the rows it changed and the
/// first value of its RETURNING column, if any.
fn guarded(
    query: &'static Query,
    ids: Vec<i64>,
    token: Uuid,
    extra: Option<TimestampWithTimeZone>,
) -> Result<(usize, Option<TimestampWithTimeZone>), OutboxError> {
    let wanted = ids.len();
    Spi::connect_mut(|client| {
        let mut args: Vec<DatumWithOid> = vec![ids.clone().into(), token.into()];
        if let Some(lease_end) = extra {
            args.push(lease_end.into());
        }
        let (changed, first) = query.run(client, &args, |t| {
            let n = t.len();
            let first = if n > 0 && extra.is_some() {
                t.first().get_one::<TimestampWithTimeZone>()?
            } else {
                None
            };
            Ok((n, first))
        })?;
        if changed < wanted {
            reject_unknown_ids(client, &ids)?;
        }
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
fn complete_one(id: Option<i64>, lease_token: Option<Uuid>) -> OutboxResult<bool> {
    let id = required(id, "id")?;
    let token = required(lease_token, "lease_token")?;
    Ok(guarded(&COMPLETE, vec![id], token, None)?.0 == 1)
}

/// Mark a claimed batch as delivered. Returns how many of `ids` the token
/// still held (those are gone now); the rest are untouched.
///
/// ```sql
/// SELECT outbox.complete_batch(ARRAY[41, 42], '6f1c...'::uuid);
/// ```
#[pg_extern(name = "complete_batch", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn complete_many(ids: Option<Array<'_, i64>>, lease_token: Option<Uuid>) -> OutboxResult<i32> {
    let ids = ids_from(ids)?;
    let token = required(lease_token, "lease_token")?;
    Ok(count(guarded(&COMPLETE, ids, token, None)?.0))
}

/// Give one leased message back, ready at once, without spending an
/// attempt (a relay shutting down). Returns false if the lease is stale.
#[pg_extern(name = "release", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn release_one(id: Option<i64>, lease_token: Option<Uuid>) -> OutboxResult<bool> {
    let id = required(id, "id")?;
    let token = required(lease_token, "lease_token")?;
    Ok(guarded(&RELEASE, vec![id], token, None)?.0 == 1)
}

/// Give leased messages back. Returns how many the token still held.
#[pg_extern(name = "release_batch", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn release_many(ids: Option<Array<'_, i64>>, lease_token: Option<Uuid>) -> OutboxResult<i32> {
    let ids = ids_from(ids)?;
    let token = required(lease_token, "lease_token")?;
    Ok(count(guarded(&RELEASE, ids, token, None)?.0))
}

/// Keep holding a message for `lease` from now (NULL: `outbox.default_lease`).
/// Returns the new expiry, or NULL if the lease is stale.
#[pg_extern(name = "extend", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn extend_one(
    id: Option<i64>,
    lease_token: Option<Uuid>,
    lease: default!(Option<Interval>, "NULL"),
) -> OutboxResult<Option<TimestampWithTimeZone>> {
    let id = required(id, "id")?;
    let token = required(lease_token, "lease_token")?;
    let lease_end = lease_deadline(crate::clock::now(), lease)?;
    Ok(guarded(&EXTEND, vec![id], token, Some(lease_end))?.1)
}

/// Extend the lease of several messages. Returns how many the token still held.
#[pg_extern(name = "extend_batch", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn extend_many(
    ids: Option<Array<'_, i64>>,
    lease_token: Option<Uuid>,
    lease: default!(Option<Interval>, "NULL"),
) -> OutboxResult<i32> {
    let ids = ids_from(ids)?;
    let token = required(lease_token, "lease_token")?;
    let lease_end = lease_deadline(crate::clock::now(), lease)?;
    Ok(count(guarded(&EXTEND, ids, token, Some(lease_end))?.0))
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
