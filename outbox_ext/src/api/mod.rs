//! The SQL-callable functions. Each is a thin shim: check the arguments with
//! `validate`, run a kept plan from `sql/queries/`, shape the result.

pub mod claim;
mod claim_batch;
mod claim_log;
mod dedup;
pub mod doorbell;
pub mod enqueue;
pub mod fail;
pub mod history;
pub mod rotation;
pub mod settle;

use crate::error::OutboxError;
use crate::plans::Query;
use pgrx::datum::Interval;
use pgrx::spi::SpiClient;
use pgrx::{PgBuiltInOids, PgOid};

pub(crate) const BOOL: PgOid = PgOid::BuiltIn(PgBuiltInOids::BOOLOID);
pub(crate) const INT2: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT2OID);
pub(crate) const INT2_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT2ARRAYOID);
pub(crate) const INT4: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT4OID);
pub(crate) const INT8: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT8OID);
pub(crate) const INT8_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT8ARRAYOID);
pub(crate) const TEXT: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTOID);
pub(crate) const TEXT_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTARRAYOID);
pub(crate) const JSONB: PgOid = PgOid::BuiltIn(PgBuiltInOids::JSONBOID);
pub(crate) const JSONB_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::JSONBARRAYOID);
pub(crate) const TIMESTAMPTZ: PgOid = PgOid::BuiltIn(PgBuiltInOids::TIMESTAMPTZOID);
pub(crate) const UUID: PgOid = PgOid::BuiltIn(PgBuiltInOids::UUIDOID);

static MAX_ISSUED_ID: Query = Query {
    sql: include_str!("../../../sql/queries/max_issued_id.sql"),
    args: &[],
};

static DETACH: Query = Query {
    sql: include_str!("../../../sql/queries/detach.sql"),
    args: &[INT8_ARRAY, UUID],
};

/// Move `ids` out of the leased log batches `token` holds into the side
/// table, still leased to the same token (see sql/queries/detach.sql):
/// fail, release and a partial extend then work per message there.
pub(crate) fn detach(
    client: &mut SpiClient<'_>,
    ids: &[i64],
    token: pgrx::Uuid,
) -> Result<(), OutboxError> {
    let args: [pgrx::datum::DatumWithOid; 2] = [ids.to_vec().into(), token.into()];
    DETACH.run(client, &args, |_| Ok(()))?;
    Ok(())
}

/// An interval as microseconds, months counted as 30 days (as PostgreSQL's
/// interval comparison does). Only for durations that are waited, never
/// stored (doorbell_arm's wait): a stored time is checked as PostgreSQL
/// computes it, see clock.rs.
pub(crate) fn micros(i: &Interval) -> i128 {
    const DAY: i128 = 86_400_000_000;
    i128::from(i.months()) * 30 * DAY + i128::from(i.days()) * DAY + i128::from(i.micros())
}

/// The highest message id issued so far (sql/queries/max_issued_id.sql):
/// the bound for unknown ids here, and a window's id bounds in claim_log.rs.
pub(crate) fn max_issued_id(client: &mut SpiClient<'_>) -> Result<i64, OutboxError> {
    Ok(MAX_ISSUED_ID
        .run(client, &[], |t| t.first().get_one::<i64>())?
        .unwrap_or(0))
}

/// Called when a guarded statement matched fewer rows than ids: an id that
/// was never issued is a caller mistake (an error); an issued one simply
/// finished or changed hands (a stale lease, reported in the result).
pub(crate) fn reject_unknown_ids(
    client: &mut SpiClient<'_>,
    ids: &[i64],
) -> Result<(), OutboxError> {
    let max_issued = max_issued_id(client)?;
    match ids.iter().find(|&&id| id <= 0 || id > max_issued) {
        Some(&id) => Err(OutboxError::UnknownMessage { id }),
        None => Ok(()),
    }
}

/// Ids from a SQL array: NULL array or NULL element is an error.
pub(crate) fn ids_from(ids: Option<pgrx::datum::Array<'_, i64>>) -> Result<Vec<i64>, OutboxError> {
    let ids = crate::error::required(ids, "ids")?;
    ids.iter()
        .map(|id| {
            id.ok_or(OutboxError::Null {
                param: "ids element",
            })
        })
        .collect()
}
