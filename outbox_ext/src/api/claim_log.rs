//! outbox.claim(), the log: read the next messages of one partition's
//! window after another, divert what cannot go out now to the side table,
//! and lease the rest as one batch per partition (docs/storage.md, "Claim").

use super::claim::{Lease, Row};
use super::{
    detach, BOOL, INT2, INT2_ARRAY, INT4, INT8, INT8_ARRAY, TEXT, TEXT_ARRAY, TIMESTAMPTZ, UUID,
};
use crate::error::OutboxError;
use crate::plans::Query;
use crate::rawjsonb::RawJsonb;
use crate::xact;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use std::collections::HashSet;

static LOCK_PARTITION: Query = Query {
    sql: include_str!("../../../sql/queries/claim_partition.sql"),
    args: &[TIMESTAMPTZ, INT2_ARRAY],
};

static MAX_ISSUED_ID: Query = Query {
    sql: include_str!("../../../sql/queries/max_issued_id.sql"),
    args: &[],
};

static OPEN_WINDOW: Query = Query {
    sql: include_str!("../../../sql/queries/window_open.sql"),
    args: &[INT2, INT8, INT8],
};

static READ_WINDOW: Query = Query {
    sql: include_str!("../../../sql/queries/window_read.sql"),
    args: &[INT2, INT4, INT8],
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
    ],
};

/// outbox.partitions has this many rows (enqueue.sql's `& 15`).
const PARTITIONS: usize = 16;

/// Reads of one partition per claim: a read whose rows were all diverted
/// reads on, up to this many times, before the claim moves to the next
/// partition (the cursor is saved either way).
const MAX_READS: usize = 8;

/// A partition as claim_partition.sql locked it.
struct Locked {
    part: i16,
    window_done: bool,
    expired_token: Option<Uuid>,
    batch: Vec<i64>,
    position: i64,
}

/// One row of window_read.sql.
struct Candidate {
    id: i64,
    topic: String,
    key: Option<String>,
    payload: RawJsonb,
    headers: Option<RawJsonb>,
    created_at: TimestampWithTimeZone,
    deliver_at: TimestampWithTimeZone,
}

/// Fill up to `room` more rows from the log into `out`.
pub(crate) fn claim(
    client: &mut SpiClient<'_>,
    lease: &Lease<'_>,
    room: usize,
    topics: Option<&[&str]>,
    out: &mut Vec<Row>,
) -> Result<(), OutboxError> {
    let mut tried: Vec<i16> = Vec::new();
    let mut left = room;
    while left > 0 && tried.len() < PARTITIONS {
        let Some(p) = lock_partition(client, lease.now, &tried)? else {
            break;
        };
        tried.push(p.part);
        left -= read_partition(client, lease, p, left, topics, out)?;
    }
    Ok(())
}

fn lock_partition(
    client: &mut SpiClient<'_>,
    now: TimestampWithTimeZone,
    tried: &[i16],
) -> Result<Option<Locked>, OutboxError> {
    let args: [DatumWithOid; 2] = [now.into(), tried.to_vec().into()];
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
        }))
    })?)
}

/// Open the partition's next window: the last id issued, then the next
/// xid, both read before window_open.sql's statement takes its snapshot.
fn open_window(client: &mut SpiClient<'_>, part: i16) -> Result<(), OutboxError> {
    let issued: i64 = MAX_ISSUED_ID
        .run(client, &[], |t| t.first().get_one::<i64>())?
        .unwrap_or(0);
    let next_xid = i64::try_from(xact::next_xid())
        .map_err(|_| OutboxError::Internal("the next xid does not fit a bigint".into()))?;
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
    room: usize,
    topics: Option<&[&str]>,
    out: &mut Vec<Row>,
) -> Result<usize, OutboxError> {
    if let Some(old) = p.expired_token {
        // The holder's lease ran out with messages unsettled: they go to the
        // side table, still under the old token, as suspects.
        if !p.batch.is_empty() {
            detach(client, &p.batch, old)?;
        }
    }
    let mut position = p.position;
    if p.window_done {
        open_window(client, p.part)?;
        position = 0;
    }

    let mut handed: Vec<i64> = Vec::new();
    let mut diverted: Vec<i64> = Vec::new();
    let mut batch_keys: HashSet<String> = HashSet::new();
    let mut window_done = false;
    for _ in 0..MAX_READS {
        let want = room - handed.len();
        let rows = read_window(client, p.part, want, position)?;
        let short = rows.len() < want;
        let mut busy = side_keys(client, &rows)?;
        let mut stopped = false;
        for r in rows {
            if let Some(k) = &r.key {
                if batch_keys.contains(k) {
                    // A claim never hands out two messages of one key; the
                    // next claim of this partition starts here.
                    stopped = true;
                    break;
                }
            }
            let keep_back = r.key.as_ref().is_some_and(|k| busy.contains(k))
                || r.deliver_at > lease.now
                || topics.is_some_and(|t| !t.contains(&r.topic.as_str()));
            position = r.id;
            if keep_back {
                diverted.push(r.id);
                if let Some(k) = r.key {
                    busy.insert(k);
                }
                continue;
            }
            out.push((
                r.id,
                r.topic,
                r.key.clone(),
                r.payload,
                r.headers,
                1,
                lease.token,
                lease.expires_at,
                r.created_at,
            ));
            handed.push(r.id);
            if let Some(k) = r.key {
                batch_keys.insert(k);
            }
        }
        if stopped {
            break;
        }
        if short {
            window_done = true;
            break;
        }
        if handed.len() >= room {
            break;
        }
    }

    if !diverted.is_empty() {
        let args: [DatumWithOid; 2] = [p.part.into(), diverted.into()];
        DIVERT.run(client, &args, |_| Ok(()))?;
    }
    let args: [DatumWithOid; 8] = [
        p.part.into(),
        handed.clone().into(),
        position.into(),
        window_done.into(),
        lease.owner.into(),
        lease.token.into(),
        lease.expires_at.into(),
        lease.now.into(),
    ];
    TAKE.run(client, &args, |_| Ok(()))?;
    Ok(handed.len())
}

fn read_window(
    client: &mut SpiClient<'_>,
    part: i16,
    want: usize,
    after: i64,
) -> Result<Vec<Candidate>, OutboxError> {
    let want = i32::try_from(want).unwrap_or(i32::MAX);
    let args: [DatumWithOid; 3] = [part.into(), want.into(), after.into()];
    Ok(READ_WINDOW.run(client, &args, |table| {
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
    })?)
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
