//! Enqueue with dedup keys: a message is written only if no other message
//! holds its key (the rules, and why they live in a table of their own, are
//! in `sql/dedup.sql`). `enqueue` and `enqueue_batch` come here only when a
//! dedup key is given; without one they run their one-statement plain path.
//!
//! Four steps, in the caller's transaction:
//!
//! 1. reserve (`dedup_reserve.sql`): the xid, an id per message in input
//!    order, the layout and the partitions;
//! 2. take (`dedup_take.sql`): insert the call's distinct keys, sorted,
//!    `ON CONFLICT DO NOTHING`;
//! 3. for each key not taken, sorted: who holds it (`dedup_peek.sql`, and
//!    `dedup_unfinished.sql` with a fresh snapshot); a holder that is
//!    finished and out of its window is locked and asked again
//!    (`dedup_held.sql`) and hands the key over (`dedup_replace.sql`);
//!    otherwise the message is a duplicate and gets the holder's id;
//! 4. write (`dedup_write.sql`) the messages that took their key, and
//!    those without one, in input order.
//!
//! A key given twice in one call: the first message takes part, the later
//! ones get its id, as if they came in separate calls.

use super::{INT2_ARRAY, INT4, INT8, INT8_ARRAY, JSONB_ARRAY, TEXT, TEXT_ARRAY, TIMESTAMPTZ};
use crate::error::OutboxError;
use crate::plans::Query;
use crate::rawjsonb::RawJsonb;
use crate::{clock, gucs, validate};
use pgrx::datum::{DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::collections::{BTreeMap, HashSet};

static RESERVE: Query = Query {
    sql: include_str!("../../../sql/queries/dedup_reserve.sql"),
    args: &[TEXT_ARRAY],
};

static TAKE: Query = Query {
    sql: include_str!("../../../sql/queries/dedup_take.sql"),
    args: &[TEXT_ARRAY, INT8_ARRAY, INT2_ARRAY, TIMESTAMPTZ],
};

static PEEK: Query = Query {
    sql: include_str!("../../../sql/queries/dedup_peek.sql"),
    args: &[TEXT, TIMESTAMPTZ],
};

static HELD: Query = Query {
    sql: include_str!("../../../sql/queries/dedup_held.sql"),
    args: &[TEXT, TIMESTAMPTZ],
};

static UNFINISHED: Query = Query {
    sql: include_str!("../../../sql/queries/dedup_unfinished.sql"),
    args: &[INT8, super::INT2],
};

static REPLACE: Query = Query {
    sql: include_str!("../../../sql/queries/dedup_replace.sql"),
    args: &[TEXT, INT8, super::INT2, TIMESTAMPTZ],
};

static WRITE: Query = Query {
    sql: include_str!("../../../sql/queries/dedup_write.sql"),
    args: &[
        TEXT,
        INT8,
        INT8_ARRAY,
        INT2_ARRAY,
        TEXT_ARRAY,
        JSONB_ARRAY,
        JSONB_ARRAY,
        TIMESTAMPTZ,
        INT4,
        TIMESTAMPTZ,
    ],
};

/// A key that keeps changing hands under this call would loop; each round
/// means another producer or cleaner made progress on it, so a handful is
/// plenty. Never reached in the tests' contention (many clients, one key).
const MAX_ROUNDS: usize = 16;

/// One message, validated.
pub(crate) struct Item<'a> {
    pub key: Option<&'a str>,
    pub payload: RawJsonb,
    pub headers: Option<RawJsonb>,
    pub dedup_key: Option<&'a str>,
}

/// What every message of one call shares, validated.
pub(crate) struct Call<'a> {
    pub topic: &'a str,
    pub deliver_at: Option<TimestampWithTimeZone>,
    pub max_attempts: i32,
    /// The outbox's now (clock.rs).
    pub now: TimestampWithTimeZone,
    /// Until when a key taken by this call is held whatever its message's
    /// state: the delivery time plus the dedup window.
    pub held_until: TimestampWithTimeZone,
}

impl<'a> Call<'a> {
    /// The call's shared values; the window (`dedup_window`, NULL:
    /// `outbox.dedup_window`) is checked as it really reaches from the
    /// delivery time.
    pub(crate) fn new(
        topic: &'a str,
        deliver_at: Option<TimestampWithTimeZone>,
        max_attempts: i32,
        now: TimestampWithTimeZone,
        window: Option<Interval>,
    ) -> Result<Self, OutboxError> {
        Ok(Call {
            topic,
            deliver_at,
            max_attempts,
            now,
            held_until: held_until(now, deliver_at, window)?,
        })
    }
}

/// Until when a dedup key taken now is held whatever its message's state:
/// the delivery time (now, or a later `deliver_at`) plus the window
/// (`dedup_window`, NULL: `outbox.dedup_window`), as PostgreSQL adds them.
fn held_until(
    now: TimestampWithTimeZone,
    deliver_at: Option<TimestampWithTimeZone>,
    window: Option<Interval>,
) -> Result<TimestampWithTimeZone, OutboxError> {
    let due = match deliver_at {
        Some(at) if at > now => at,
        _ => now,
    };
    let window = window.unwrap_or_else(|| {
        Interval::from_micros(i64::from(gucs::DEDUP_WINDOW_S.get()).saturating_mul(1_000_000))
    });
    let reached = clock::reach(due, window);
    validate::dedup_window(reached.map(|(_, micros)| micros))?;
    reached
        .map(|(end, _)| end)
        .ok_or_else(|| OutboxError::Internal("a validated dedup window has no end".into()))
}

/// Enqueue `items`; returns one id per item, in order: the new message's,
/// or the holder's for a key that was held.
pub(crate) fn enqueue(call: &Call<'_>, items: &[Item<'_>]) -> Result<Vec<i64>, OutboxError> {
    Spi::connect_mut(|client| {
        let keys: Vec<Option<&str>> = items.iter().map(|i| i.key).collect();
        let (layout, ids, parts) = reserve(client, keys)?;
        if ids.len() != items.len() || parts.len() != items.len() {
            return Err(OutboxError::Internal(format!(
                "reserved {} ids for {} messages",
                ids.len(),
                items.len()
            )));
        }
        // Each distinct key, sorted, with the first message that carries it.
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(k) = item.dedup_key {
                first.entry(k).or_insert(i);
            }
        }
        let mut result = ids.clone();
        let mut write: Vec<bool> = items.iter().map(|i| i.dedup_key.is_none()).collect();
        let wanted: Vec<(&str, usize)> = first.iter().map(|(k, i)| (*k, *i)).collect();
        let taken: HashSet<i64> = take(client, &wanted, &ids, &parts, call.held_until)?
            .into_iter()
            .collect();
        for &(k, i) in &wanted {
            write[i] = taken.contains(&ids[i])
                || settle_held(client, k, ids[i], parts[i], call, &mut result[i])?;
        }
        // Later messages with a key the call already had get the first one's id.
        for (i, item) in items.iter().enumerate() {
            if let Some(k) = item.dedup_key {
                let f = first[k];
                if f != i {
                    result[i] = result[f];
                }
            }
        }
        write_taken(client, call, items, &ids, &parts, &write, layout)?;
        Ok(result)
    })
}

fn reserve(
    client: &mut SpiClient<'_>,
    keys: Vec<Option<&str>>,
) -> Result<(i64, Vec<i64>, Vec<i16>), OutboxError> {
    let args: [DatumWithOid; 1] = [keys.into()];
    let row = RESERVE.run(client, &args, |t| {
        let row = t.first();
        Ok((
            row.get::<i64>(1)?,
            row.get::<Vec<i64>>(2)?,
            row.get::<Vec<i16>>(3)?,
        ))
    })?;
    match row {
        (Some(layout), Some(ids), Some(parts)) => Ok((layout, ids, parts)),
        _ => Err(OutboxError::Internal("reserving ids returned NULL".into())),
    }
}

/// Insert the keys; returns the ids of the messages whose key was taken.
fn take(
    client: &mut SpiClient<'_>,
    wanted: &[(&str, usize)],
    ids: &[i64],
    parts: &[i16],
    held_until: TimestampWithTimeZone,
) -> Result<Vec<i64>, OutboxError> {
    let keys: Vec<&str> = wanted.iter().map(|(k, _)| *k).collect();
    let key_ids: Vec<i64> = wanted.iter().map(|(_, i)| ids[*i]).collect();
    let key_parts: Vec<i16> = wanted.iter().map(|(_, i)| parts[*i]).collect();
    let args: [DatumWithOid; 4] = [
        keys.into(),
        key_ids.into(),
        key_parts.into(),
        held_until.into(),
    ];
    Ok(TAKE.run(client, &args, |t| {
        t.map(|row| row.get::<i64>(1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
    })?)
}

/// What a look at a key found.
enum Look {
    /// The key has no row: cleanup removed it after the take failed.
    Gone,
    /// Held by this message (unfinished, or inside its window).
    Held(i64),
    /// Its holder is finished and out of its window.
    Free,
}

/// Look at `key` with `query` (PEEK reads, HELD also locks the row), and
/// ask whether its holder is unfinished in a statement of its own, so that
/// the question sees what committed before the lock was granted
/// (dedup_held.sql says why).
fn look(
    client: &mut SpiClient<'_>,
    query: &'static Query,
    key: &str,
    now: TimestampWithTimeZone,
) -> Result<Look, OutboxError> {
    let args: [DatumWithOid; 2] = [key.into(), now.into()];
    let row = query.run(client, &args, |t| {
        if t.is_empty() {
            return Ok(None);
        }
        let row = t.first();
        Ok(Some((
            row.get::<i64>(1)?,
            row.get::<i16>(2)?,
            row.get::<bool>(3)?,
        )))
    })?;
    match row {
        None => Ok(Look::Gone),
        Some((Some(holder), Some(part), Some(in_window))) => {
            Ok(if in_window || unfinished(client, holder, part)? {
                Look::Held(holder)
            } else {
                Look::Free
            })
        }
        Some(_) => Err(OutboxError::Internal(format!(
            "dedup key {key:?} has NULL columns"
        ))),
    }
}

/// A key the take did not get: find its holder. Returns whether message
/// `id` takes the key after all (the holder was finished and out of its
/// window, or the key was removed meanwhile); otherwise `result` becomes
/// the holder's id.
///
/// The holder is read without a lock first (PEEK): a held key answers at
/// once. One that looks free is locked (HELD) and asked again before it is
/// handed over.
fn settle_held(
    client: &mut SpiClient<'_>,
    key: &str,
    id: i64,
    part: i16,
    call: &Call<'_>,
    result: &mut i64,
) -> Result<bool, OutboxError> {
    'round: for _ in 0..MAX_ROUNDS {
        for query in [&PEEK, &HELD] {
            match look(client, query, key, call.now)? {
                Look::Gone => {
                    if retake(client, key, id, part, call)? {
                        return Ok(true);
                    }
                    continue 'round;
                }
                Look::Held(holder) => {
                    *result = holder;
                    return Ok(false);
                }
                Look::Free => {}
            }
        }
        let args: [DatumWithOid; 4] = [key.into(), id.into(), part.into(), call.held_until.into()];
        REPLACE.run(client, &args, |_| Ok(()))?;
        return Ok(true);
    }
    Err(OutboxError::Internal(format!(
        "dedup key {key:?} changed hands {MAX_ROUNDS} times during one enqueue"
    )))
}

/// The key was removed (cleanup) between the take and the look: take it
/// again, or meet whoever took it first.
fn retake(
    client: &mut SpiClient<'_>,
    key: &str,
    id: i64,
    part: i16,
    call: &Call<'_>,
) -> Result<bool, OutboxError> {
    Ok(!take(client, &[(key, 0)], &[id], &[part], call.held_until)?.is_empty())
}

/// `outbox._message_unfinished` in a statement of its own (a fresh
/// snapshot, taken after the row lock: dedup_held.sql says why).
fn unfinished(client: &mut SpiClient<'_>, id: i64, part: i16) -> Result<bool, OutboxError> {
    let args: [DatumWithOid; 2] = [id.into(), part.into()];
    Ok(UNFINISHED
        .run(client, &args, |t| t.first().get_one::<bool>())?
        .unwrap_or(false))
}

fn write_taken(
    client: &mut SpiClient<'_>,
    call: &Call<'_>,
    items: &[Item<'_>],
    ids: &[i64],
    parts: &[i16],
    write: &[bool],
    layout: i64,
) -> Result<(), OutboxError> {
    let chosen: Vec<usize> = (0..items.len()).filter(|&i| write[i]).collect();
    if chosen.is_empty() {
        return Ok(());
    }
    let w_ids: Vec<i64> = chosen.iter().map(|&i| ids[i]).collect();
    let w_parts: Vec<i16> = chosen.iter().map(|&i| parts[i]).collect();
    let w_keys: Vec<Option<&str>> = chosen.iter().map(|&i| items[i].key).collect();
    let w_payloads: Vec<RawJsonb> = chosen.iter().map(|&i| items[i].payload).collect();
    let w_headers: Vec<Option<RawJsonb>> = chosen.iter().map(|&i| items[i].headers).collect();
    let args: [DatumWithOid; 10] = [
        call.topic.into(),
        layout.into(),
        w_ids.into(),
        w_parts.into(),
        w_keys.into(),
        w_payloads.into(),
        w_headers.into(),
        call.deliver_at.into(),
        call.max_attempts.into(),
        call.now.into(),
    ];
    WRITE.run(client, &args, |_| Ok(()))?;
    Ok(())
}
