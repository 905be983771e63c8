//! outbox.claim(): lease a batch of ready messages to one relay.
//! The query and why it has its shape: sql/queries/claim.sql.

use super::{INT4, TEXT, TEXT_ARRAY, TIMESTAMPTZ, UUID};
use crate::error::{required, OutboxError};
use crate::plans::Query;
use crate::rawjsonb::RawJsonb;
use crate::{clock, gucs, validate};
use pgrx::datum::{Array, DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::Uuid;

static CLAIM: Query = Query {
    sql: include_str!("../../../sql/queries/claim.sql"),
    args: &[TEXT, INT4, TIMESTAMPTZ, TEXT_ARRAY, UUID, TIMESTAMPTZ],
};

/// A call runs the statement again only while every candidate it found had
/// run out of attempts (and was buried); each round buries at least one
/// message, so this bounds the work of one call, not its correctness.
const MAX_ROUNDS: usize = 100;

/// A fresh random (version 4) UUID for a claim's lease token.
fn new_token() -> Uuid {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

/// When a lease taken `now` ends: `now + lease` (NULL: `outbox.default_lease`),
/// capped on the timestamp PostgreSQL computes (see clock.rs).
pub(crate) fn lease_deadline(
    now: TimestampWithTimeZone,
    lease: Option<Interval>,
) -> Result<TimestampWithTimeZone, OutboxError> {
    let lease = lease
        .unwrap_or_else(|| Interval::from_micros(i64::from(gucs::DEFAULT_LEASE_MS.get()) * 1_000));
    let reached = clock::reach(now, lease);
    validate::lease(reached.map(|(_, micros)| micros))?;
    reached
        .map(|(end, _)| end)
        .ok_or_else(|| OutboxError::Internal("a validated lease has no end".into()))
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
    let now = clock::now();
    let lease_end = lease_deadline(now, lease)?;
    let topics: Option<Vec<Option<&str>>> = topics.as_ref().map(|t| t.iter().collect());
    if let Some(t) = &topics {
        validate::topics(t.iter().copied()).map_err(OutboxError::from)?;
    }

    let token = new_token();
    let mut rows = Vec::new();
    Spi::connect_mut(|client| -> Result<(), OutboxError> {
        for _ in 0..MAX_ROUNDS {
            let args: [DatumWithOid; 6] = [
                owner.into(),
                batch_size.into(),
                lease_end.into(),
                topics.clone().into(),
                token.into(),
                now.into(),
            ];
            let buried = CLAIM.run(client, &args, |table| {
                let mut buried = 0;
                for row in table {
                    if row.get::<bool>(1)?.unwrap_or(false) {
                        buried += 1;
                        continue;
                    }
                    rows.push((
                        row.get::<i64>(2)?.unwrap_or_default(),
                        row.get::<String>(3)?.unwrap_or_default(),
                        row.get::<String>(4)?,
                        row.get::<RawJsonb>(5)?
                            .expect("payload is NOT NULL")
                            .outlive_spi(),
                        row.get::<RawJsonb>(6)?.map(RawJsonb::outlive_spi),
                        row.get::<i32>(7)?.unwrap_or_default(),
                        row.get::<Uuid>(8)?.expect("lease_token is set by claim"),
                        row.get::<TimestampWithTimeZone>(9)?
                            .expect("lease_expires_at is set by claim"),
                        row.get::<TimestampWithTimeZone>(10)?
                            .expect("created_at is NOT NULL"),
                    ));
                }
                Ok(buried)
            })?;
            if buried == 0 || !rows.is_empty() {
                break;
            }
        }
        Ok(())
    })?;
    // Documented order; the query leaves sorting to us (see claim.sql).
    rows.sort_unstable_by_key(|row| row.0);
    Ok(TableIterator::new(rows))
}
