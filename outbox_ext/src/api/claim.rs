//! outbox.claim(): lease a batch of ready messages to one relay.
//!
//! A claim takes from two places (docs/storage.md, "Claim"): first the side
//! table (`sql/queries/claim_side.sql`: retries, released, scheduled and
//! diverted messages, with per-message leases), then the log, one partition
//! at a time (`claim_log.rs`). Every row of one call shares one lease token.

use super::{claim_log, rotation, BOOL, INT4, TEXT, TEXT_ARRAY, TIMESTAMPTZ, UUID};
use crate::error::{required, OutboxError};
use crate::plans::Query;
use crate::rawjsonb::RawJsonb;
use crate::{clock, gucs, validate, xact};
use pgrx::datum::{Array, DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;

static CLAIM_SIDE: Query = Query {
    sql: include_str!("../../../sql/queries/claim_side.sql"),
    args: &[TEXT, INT4, TIMESTAMPTZ, TEXT_ARRAY, UUID, TIMESTAMPTZ, BOOL],
};

/// A call runs the side-table statement again only while every candidate it
/// found had run out of attempts (and was buried); each round buries at
/// least one message, so this bounds the work of one call, not its
/// correctness.
const MAX_ROUNDS: usize = 100;

/// One claimed row, in claim()'s column order.
pub(crate) type Row = (
    i64,
    String,
    Option<String>,
    RawJsonb,
    Option<RawJsonb>,
    i32,
    Uuid,
    TimestampWithTimeZone,
    TimestampWithTimeZone,
);

/// Who takes the lease of one claim() call, and until when.
pub(crate) struct Lease<'a> {
    pub owner: &'a str,
    pub token: Uuid,
    pub expires_at: TimestampWithTimeZone,
    pub now: TimestampWithTimeZone,
}

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

/// The body of `outbox.claim()` (sql/claim.sql): lease up to `batch_size`
/// ready messages, oldest first, to `owner` for `lease` (NULL:
/// `outbox.default_lease`). Every row of one call shares one `lease_token`.
///
/// Internal, and deliberately neither SECURITY DEFINER nor with a pinned
/// search_path: a set-returning C function is called once per row, and
/// PostgreSQL applies a function's SET clauses on every one of those calls
/// (15 to 20% of a claim of 1000 went to setting and restoring GUCs,
/// measured with perf). outbox.claim() is the PL/pgSQL wrapper that pins
/// the search path and the planner settings once per claim; this function
/// runs inside it, and no role but the owner may execute it.
#[pg_extern(name = "_claim", volatile, parallel_unsafe)]
fn claim(
    owner: Option<&str>,
    batch_size: Option<i32>,
    lease: Option<Interval>,
    topics: Option<Array<'_, &str>>,
    fcinfo: pg_sys::FunctionCallInfo,
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
    let _outbox = crate::outboxes::enter(fcinfo);
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
    if !xact::read_committed() {
        return Err(OutboxError::NotReadCommitted.into());
    }
    let lease = Lease {
        owner,
        token: new_token(),
        expires_at: lease_end,
        now,
    };
    let wanted = usize::try_from(batch_size).unwrap_or(0);

    let mut rows = Vec::new();
    Spi::connect_mut(|client| -> Result<(), OutboxError> {
        rotation::maybe_rotate(client)?;
        claim_log::recover_expired(client, now)?;
        // A suspect (its last lease expired) goes out alone.
        claim_side(client, &lease, batch_size, &topics, true, &mut rows)?;
        if !rows.is_empty() {
            return Ok(());
        }
        claim_side(client, &lease, batch_size, &topics, false, &mut rows)?;
        if rows.len() < wanted {
            let topics: Option<Vec<&str>> = topics
                .as_ref()
                .map(|t| t.iter().copied().flatten().collect());
            claim_log::claim(
                client,
                &lease,
                wanted - rows.len(),
                topics.as_deref(),
                &mut rows,
            )?;
        }
        Ok(())
    })?;
    // Documented order; the queries leave sorting to us (see claim_side.sql).
    rows.sort_unstable_by_key(|row| row.0);
    Ok(TableIterator::new(rows))
}

/// The side table's part of a claim: its statement, run again while every
/// candidate it met was buried (see MAX_ROUNDS).
fn claim_side(
    client: &mut SpiClient<'_>,
    lease: &Lease<'_>,
    batch_size: i32,
    topics: &Option<Vec<Option<&str>>>,
    suspects: bool,
    rows: &mut Vec<Row>,
) -> Result<(), OutboxError> {
    for _ in 0..MAX_ROUNDS {
        let args: [DatumWithOid; 7] = [
            lease.owner.into(),
            batch_size.into(),
            lease.expires_at.into(),
            topics.clone().into(),
            lease.token.into(),
            lease.now.into(),
            suspects.into(),
        ];
        let before = rows.len();
        let buried = CLAIM_SIDE.run(client, &args, |table| {
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
        if buried == 0 || rows.len() > before {
            break;
        }
    }
    Ok(())
}
