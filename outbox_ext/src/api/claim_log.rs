//! outbox.claim(), the log: read the next messages of one partition's
//! window after another, divert what cannot go out now to the side table,
//! and lease the rest as one batch per partition (docs/storage.md, "Claim").

use super::claim::{Lease, Row};
use super::claim_batch::Batch;
use super::{
    detach, max_issued_id, BOOL, INT2, INT4, INT8, INT8_ARRAY, TEXT, TEXT_ARRAY, TIMESTAMPTZ, UUID,
};
use crate::error::OutboxError;
use crate::plans::Query;
use crate::rawjsonb::RawJsonb;
use crate::xact;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use std::collections::HashSet;

static EXPIRED_BATCHES: Query = Query {
    sql: include_str!("../../../sql/queries/expired_batches.sql"),
    args: &[TIMESTAMPTZ],
};

static WITH_WORK: Query = Query {
    sql: include_str!("../../../sql/queries/partitions_with_work.sql"),
    args: &[TIMESTAMPTZ],
};

static LOCK_PARTITION: Query = Query {
    sql: include_str!("../../../sql/queries/claim_partition.sql"),
    args: &[INT2, TIMESTAMPTZ],
};

static OPEN_WINDOW: Query = Query {
    sql: include_str!("../../../sql/queries/window_open.sql"),
    args: &[INT2, INT8, INT8],
};

static READ_WINDOW: Query = Query {
    sql: include_str!("../../../sql/queries/window_read.sql"),
    args: &[INT2, INT4, INT8],
};

static READ_DEFERRED: Query = Query {
    sql: include_str!("../../../sql/queries/deferred_read.sql"),
    args: &[INT2, INT8_ARRAY],
};

static SIDE_KEYS: Query = Query {
    sql: include_str!("../../../sql/queries/side_keys.sql"),
    args: &[TEXT_ARRAY],
};

static DIVERT: Query = Query {
    sql: include_str!("../../../sql/queries/divert.sql"),
    args: &[INT2, INT8_ARRAY],
};

static TAKE: Query = Query {
    sql: include_str!("../../../sql/queries/partition_take.sql"),
    args: &[
        INT2,
        INT8_ARRAY,
        INT8,
        BOOL,
        TEXT,
        UUID,
        TIMESTAMPTZ,
        TIMESTAMPTZ,
        INT8_ARRAY,
    ],
};

/// Reads of one partition per claim: a read whose rows were all diverted
/// reads on, up to this many times, before the claim moves to the next
/// partition (the cursor is saved either way).
const MAX_READS: usize = 8;

/// Most messages a partition holds deferred (read, waiting for the next
/// batch because their key is in this one). Past it the read stops, so the
/// partition row stays small: a hot key then goes out one message per
/// batch, as it did in 0.1.0, while every other key keeps moving.
const MAX_DEFERRED: usize = 256;

/// A partition as claim_partition.sql locked it.
struct Locked {
    part: i16,
    window_done: bool,
    expired_token: Option<Uuid>,
    batch: Vec<i64>,
    position: i64,
    deferred: Vec<i64>,
}

/// One row of window_read.sql.
pub(super) struct Candidate {
    pub(super) id: i64,
    pub(super) topic: String,
    pub(super) key: Option<String>,
    pub(super) payload: RawJsonb,
    pub(super) headers: Option<RawJsonb>,
    pub(super) created_at: TimestampWithTimeZone,
    pub(super) deliver_at: TimestampWithTimeZone,
}

/// Move the unsettled messages of every log batch whose lease expired to
/// the side table, still under their old token: they are suspects there
/// (handed out one at a time), and their partitions are free again.
pub(crate) fn recover_expired(
    client: &mut SpiClient<'_>,
    now: TimestampWithTimeZone,
) -> Result<(), OutboxError> {
    let args: [DatumWithOid; 1] = [now.into()];
    let expired = EXPIRED_BATCHES.run(client, &args, |t| {
        let mut expired = Vec::new();
        for row in t {
            if let (Some(token), Some(batch)) = (row.get::<Uuid>(1)?, row.get::<Vec<i64>>(2)?) {
                expired.push((token, batch));
            }
        }
        Ok(expired)
    })?;
    for (token, batch) in expired {
        detach(client, &batch, token)?;
    }
    Ok(())
}

/// Fill up to `room` more rows from the log into `out`.
pub(crate) fn claim(
    client: &mut SpiClient<'_>,
    lease: &Lease<'_>,
    room: usize,
    topics: Option<&[&str]>,
    out: &mut Vec<Row>,
) -> Result<(), OutboxError> {
    let mut left = room;
    let mut bounds = None;
    for part in partitions_with_work(client, lease.now)? {
        if left == 0 {
            break;
        }
        // Locked by another claim, or taken since the list was read.
        let Some(p) = lock_partition(client, part, lease.now)? else {
            continue;
        };
        if p.window_done && bounds.is_none() {
            bounds = Some(window_bounds(client)?);
        }
        left -= read_partition(client, lease, p, bounds, left, topics, out)?;
    }
    Ok(())
}

/// partitions_with_work.sql: the free partitions that may have work, the
/// one claimed longest ago first.
fn partitions_with_work(
    client: &mut SpiClient<'_>,
    now: TimestampWithTimeZone,
) -> Result<Vec<i16>, OutboxError> {
    let args: [DatumWithOid; 1] = [now.into()];
    Ok(WITH_WORK.run(client, &args, |t| {
        let mut parts = Vec::new();
        for row in t {
            if let Some(part) = row.get::<i16>(1)? {
                parts.push(part);
            }
        }
        Ok(parts)
    })?)
}

fn lock_partition(
    client: &mut SpiClient<'_>,
    part: i16,
    now: TimestampWithTimeZone,
) -> Result<Option<Locked>, OutboxError> {
    let args: [DatumWithOid; 2] = [part.into(), now.into()];
    Ok(LOCK_PARTITION.run(client, &args, |t| {
        if t.is_empty() {
            return Ok(None);
        }
        let row = t.first();
        Ok(Some(Locked {
            part: row.get::<i16>(1)?.unwrap_or_default(),
            window_done: row.get::<bool>(2)?.unwrap_or(true),
            expired_token: row.get::<Uuid>(3)?,
            batch: row.get::<Vec<i64>>(4)?.unwrap_or_default(),
            position: row.get::<i64>(5)?.unwrap_or_default(),
            deferred: row.get::<Vec<i64>>(6)?.unwrap_or_default(),
        }))
    })?)
}

/// The next window's lower bounds: the last id issued, then the next xid,
/// in that order. Read once per claim, before any window_open.sql statement
/// of it takes its snapshot; any pair read in this order is valid for any
/// later window (docs/storage.md).
fn window_bounds(client: &mut SpiClient<'_>) -> Result<(i64, i64), OutboxError> {
    let issued = max_issued_id(client)?;
    let next_xid = i64::try_from(xact::next_xid())
        .map_err(|_| OutboxError::Internal("the next xid does not fit a bigint".into()))?;
    Ok((issued, next_xid))
}

/// Open the partition's next window with `bounds` from window_bounds().
fn open_window(
    client: &mut SpiClient<'_>,
    part: i16,
    bounds: (i64, i64),
) -> Result<(), OutboxError> {
    let (issued, next_xid) = bounds;
    let args: [DatumWithOid; 3] = [part.into(), issued.into(), next_xid.into()];
    OPEN_WINDOW.run(client, &args, |_| Ok(()))?;
    Ok(())
}

/// Read, divert and lease from one locked partition; returns how many rows
/// it added to `out`.
fn read_partition(
    client: &mut SpiClient<'_>,
    lease: &Lease<'_>,
    p: Locked,
    bounds: Option<(i64, i64)>,
    room: usize,
    topics: Option<&[&str]>,
    out: &mut Vec<Row>,
) -> Result<usize, OutboxError> {
    if let Some(old) = p.expired_token {
        // The holder's lease ran out with messages unsettled since this
        // claim's recover_expired: they go to the side table too.
        if !p.batch.is_empty() {
            detach(client, &p.batch, old)?;
        }
    }
    let mut position = p.position;
    let mut opened = false;
    if let (true, Some(bounds)) = (p.window_done, bounds) {
        open_window(client, p.part, bounds)?;
        position = 0;
        opened = true;
    }

    let mut batch = Batch::default();
    // Keys with a message in the side table: probed per read, and grown by
    // every divert of this claim (diverts are written at the end, so the
    // next read's probe cannot see them yet).
    let mut busy: HashSet<String> = HashSet::new();
    // The deferred messages first: they are older than anything unread.
    if !p.deferred.is_empty() {
        let rows = read_deferred(client, p.part, &p.deferred)?;
        busy.extend(side_keys(client, &rows)?);
        for r in rows {
            if batch.handed.len() >= room {
                batch.defer(r);
            } else {
                batch.deal(r, &mut busy, lease, topics, out);
            }
        }
    }
    let mut window_done = false;
    'reads: for _ in 0..MAX_READS {
        if batch.handed.len() >= room {
            break;
        }
        let want = room - batch.handed.len();
        let rows = read_window(client, p.part, want, position)?;
        let short = rows.len() < want;
        busy.extend(side_keys(client, &rows)?);
        for r in rows {
            if batch.deferred.len() >= MAX_DEFERRED {
                // Not consumed: the next batch of this partition starts here.
                break 'reads;
            }
            position = r.id;
            batch.deal(r, &mut busy, lease, topics, out);
        }
        if short {
            // The window is used up. Once per visit, a claim with room goes
            // on into the next one: what committed since it opened (a claim
            // must not come back empty while a message is ready; found by
            // the model-based suite).
            if opened || batch.handed.len() >= room {
                window_done = true;
                break;
            }
            let fresh = window_bounds(client)?;
            open_window(client, p.part, fresh)?;
            position = 0;
            opened = true;
        }
    }

    if !batch.diverted.is_empty() {
        let args: [DatumWithOid; 2] = [p.part.into(), batch.diverted.into()];
        DIVERT.run(client, &args, |_| Ok(()))?;
    }
    let handed = batch.handed.len();
    let args: [DatumWithOid; 9] = [
        p.part.into(),
        batch.handed.into(),
        position.into(),
        window_done.into(),
        lease.owner.into(),
        lease.token.into(),
        lease.expires_at.into(),
        lease.now.into(),
        batch.deferred.into(),
    ];
    TAKE.run(client, &args, |_| Ok(()))?;
    Ok(handed)
}

fn read_deferred(
    client: &mut SpiClient<'_>,
    part: i16,
    ids: &[i64],
) -> Result<Vec<Candidate>, OutboxError> {
    let args: [DatumWithOid; 2] = [part.into(), ids.to_vec().into()];
    Ok(READ_DEFERRED.run(client, &args, candidates)?)
}

fn read_window(
    client: &mut SpiClient<'_>,
    part: i16,
    want: usize,
    after: i64,
) -> Result<Vec<Candidate>, OutboxError> {
    let want = i32::try_from(want).unwrap_or(i32::MAX);
    let args: [DatumWithOid; 3] = [part.into(), want.into(), after.into()];
    Ok(READ_WINDOW.run(client, &args, candidates)?)
}

/// Decode window_read.sql / deferred_read.sql rows.
fn candidates(table: pgrx::spi::SpiTupleTable<'_>) -> pgrx::spi::SpiResult<Vec<Candidate>> {
    let mut rows = Vec::new();
    for row in table {
        let (Some(id), Some(topic), Some(payload), Some(created_at), Some(deliver_at)) = (
            row.get::<i64>(1)?,
            row.get::<String>(2)?,
            row.get::<RawJsonb>(4)?,
            row.get::<TimestampWithTimeZone>(6)?,
            row.get::<TimestampWithTimeZone>(7)?,
        ) else {
            continue;
        };
        rows.push(Candidate {
            id,
            topic,
            key: row.get::<String>(3)?,
            payload: payload.outlive_spi(),
            headers: row.get::<RawJsonb>(5)?.map(RawJsonb::outlive_spi),
            created_at,
            deliver_at,
        });
    }
    Ok(rows)
}

/// The keys among `rows` that have a message in the side table.
fn side_keys(
    client: &mut SpiClient<'_>,
    rows: &[Candidate],
) -> Result<HashSet<String>, OutboxError> {
    let keys: Vec<&str> = rows.iter().filter_map(|r| r.key.as_deref()).collect();
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let args: [DatumWithOid; 1] = [keys.into()];
    Ok(SIDE_KEYS.run(client, &args, |table| {
        let mut busy = HashSet::new();
        for row in table {
            if let Some(k) = row.get::<String>(1)? {
                busy.insert(k);
            }
        }
        Ok(busy)
    })?)
}
