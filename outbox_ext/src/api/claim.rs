//! outbox.claim(): lease a batch of ready messages to one relay.
//! The query and why it has its shape: sql/queries/claim.sql.

use super::{micros, INT4, INTERVAL, TEXT, TEXT_ARRAY};
use crate::error::{required, OutboxError};
use crate::plans::Query;
use crate::rawjsonb::RawJsonb;
use crate::{gucs, validate};
use pgrx::datum::{Array, DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::Uuid;

static CLAIM: Query = Query {
    sql: include_str!("../../../sql/queries/claim.sql"),
    args: &[TEXT, INT4, INTERVAL, TEXT_ARRAY],
};

/// The lease to use: the argument, or `outbox.default_lease`.
pub(crate) fn resolve_lease(lease: Option<Interval>) -> Result<Interval, OutboxError> {
    match lease {
        Some(l) => {
            validate::lease(micros(&l))?;
            Ok(l)
        }
        None => Ok(Interval::from_micros(
            i64::from(gucs::DEFAULT_LEASE_MS.get()) * 1_000,
        )),
    }
}

/// Lease up to `batch_size` ready messages, oldest first, to `owner` for
/// `lease` (NULL: `outbox.default_lease`). Every row of one call shares one
/// `lease_token`; finish them with complete / fail / release / extend.
///
/// ```sql
/// SELECT id, topic, payload, lease_token FROM outbox.claim('relay-1', 100, '30 seconds');
/// ```
#[pg_extern(volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn claim(
    owner: Option<&str>,
    batch_size: default!(Option<i32>, 100),
    lease: default!(Option<Interval>, "NULL"),
    topics: default!(Option<Array<'_, &str>>, "NULL"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(id, i64),
            name!(topic, String),
            name!(key, Option<String>),
            name!(payload, RawJsonb),
            name!(headers, Option<RawJsonb>),
            name!(attempt, i32),
            name!(lease_token, Uuid),
            name!(lease_expires_at, TimestampWithTimeZone),
            name!(created_at, TimestampWithTimeZone),
        ),
    >,
    ErrorReport,
> {
    let owner = required(owner, "owner")?;
    validate::owner(owner).map_err(OutboxError::from)?;
    let batch_size = required(batch_size, "batch_size")?;
    validate::batch_size(batch_size).map_err(OutboxError::from)?;
    let lease = resolve_lease(lease)?;
    let topics: Option<Vec<Option<&str>>> = topics.as_ref().map(|t| t.iter().collect());
    if let Some(t) = &topics {
        validate::topics(t.iter().copied()).map_err(OutboxError::from)?;
    }

    let args: [DatumWithOid; 4] = [owner.into(), batch_size.into(), lease.into(), topics.into()];
    let rows = Spi::connect_mut(|client| {
        CLAIM.run(client, &args, |table| {
            let mut rows = Vec::with_capacity(table.len());
            for row in table {
                rows.push((
                    row.get::<i64>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?.unwrap_or_default(),
                    row.get::<String>(3)?,
                    row.get::<RawJsonb>(4)?
                        .expect("payload is NOT NULL")
                        .outlive_spi(),
                    row.get::<RawJsonb>(5)?.map(RawJsonb::outlive_spi),
                    row.get::<i32>(6)?.unwrap_or_default(),
                    row.get::<Uuid>(7)?.expect("lease_token is set by claim"),
                    row.get::<TimestampWithTimeZone>(8)?
                        .expect("lease_expires_at is set by claim"),
                    row.get::<TimestampWithTimeZone>(9)?
                        .expect("created_at is NOT NULL"),
                ));
            }
            Ok(rows)
        })
    })
    .map_err(OutboxError::from)?;
    Ok(TableIterator::new(rows))
}
