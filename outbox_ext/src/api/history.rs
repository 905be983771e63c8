//! The published-message history (`sql/history.sql`): with `outbox.retention`
//! set, `complete` and `complete_batch` record what they finish. With it
//! off (the default) nothing here runs and complete's statements are the
//! ones it always ran.

use super::{INT8_ARRAY, TIMESTAMPTZ, UUID};
use crate::error::OutboxError;
use crate::gucs;
use crate::plans::Query;
use pgrx::datum::{DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;

static PUBLISHED_LOG: Query = Query {
    sql: include_str!("../../../sql/queries/published_log.sql"),
    args: &[INT8_ARRAY, UUID, TIMESTAMPTZ],
};

/// complete.sql's DELETE, recording the deleted rows (`complete_kept.sql`).
pub(crate) static COMPLETE_KEPT: Query = Query {
    sql: include_str!("../../../sql/queries/complete_kept.sql"),
    args: &[INT8_ARRAY, UUID, TIMESTAMPTZ],
};

/// Is the history on in this session?
pub(crate) fn on() -> bool {
    gucs::RETENTION_S.get() > 0
}

/// Record the messages of `token`'s log batches among `ids` as published
/// at `now`, before they are settled (`published_log.sql` says why first).
pub(crate) fn record_log(
    client: &mut SpiClient<'_>,
    ids: &[i64],
    token: Uuid,
    now: TimestampWithTimeZone,
) -> Result<(), OutboxError> {
    let args: [DatumWithOid; 3] = [ids.to_vec().into(), token.into(), now.into()];
    PUBLISHED_LOG.run(client, &args, |_| Ok(()))?;
    Ok(())
}

/// `outbox.retention` as an interval (0 when off), for `cleanup()` and the
/// listing functions in SQL. A Rust function, so calling it also loads the
/// library and with it the setting's definition (docs/sql-api.md,
/// "When the settings exist").
#[pg_extern(stable, parallel_safe, name = "_retention")]
#[search_path(pg_catalog, pg_temp)]
pub fn retention_sql() -> Interval {
    Interval::from_micros(i64::from(gucs::RETENTION_S.get()).saturating_mul(1_000_000))
}
