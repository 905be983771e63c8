//! outbox.enqueue() and outbox.enqueue_batch(): write messages in the
//! caller's transaction. Invisible to relays until it commits, gone if it
//! rolls back — that is the whole point of an outbox.
//!
//! Without a dedup key each is one kept statement (`enqueue.sql`,
//! `enqueue_batch.sql`); with one, `dedup.rs` writes only the messages
//! whose key no other message holds.

use super::dedup::{self, Call, Item};
use super::{INT4, JSONB, JSONB_ARRAY, TEXT, TEXT_ARRAY, TIMESTAMPTZ};
use crate::error::{required, OutboxError, OutboxResult};
use crate::plans::Query;
use crate::rawjsonb::RawJsonb;
use crate::{clock, gucs, validate};
use pgrx::datum::{Array, DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::prelude::*;

static ENQUEUE: Query = Query {
    sql: include_str!("../../../sql/queries/enqueue.sql"),
    args: &[TEXT, TEXT, JSONB, JSONB, TIMESTAMPTZ, INT4, TIMESTAMPTZ],
};

static ENQUEUE_BATCH: Query = Query {
    sql: include_str!("../../../sql/queries/enqueue_batch.sql"),
    args: &[
        TEXT,
        JSONB_ARRAY,
        TEXT_ARRAY,
        JSONB_ARRAY,
        TIMESTAMPTZ,
        INT4,
        TIMESTAMPTZ,
    ],
};

fn check_payload(payload: RawJsonb, index: Option<usize>) -> Result<(), OutboxError> {
    let limit = usize::try_from(gucs::MAX_PAYLOAD_BYTES.get()).unwrap_or(usize::MAX);
    let bytes = payload.stored_bytes();
    if bytes > limit {
        return Err(OutboxError::PayloadTooLarge {
            index,
            bytes,
            limit,
        });
    }
    Ok(())
}

fn check_headers(headers: RawJsonb) -> Result<(), OutboxError> {
    // jsonb accepts what serde_json refuses (nesting past 128, numbers like
    // 1e400); neither is a JSON object of strings, so both are bad headers.
    let value = headers.to_value().map_err(validate::headers_unreadable)?;
    Ok(validate::headers(&value, headers.stored_bytes())?)
}

/// `deliver_at` checked against the outbox's clock; returns now for the
/// statement (created_at, and deliver_at when NULL).
fn check_deliver_at(
    deliver_at: Option<TimestampWithTimeZone>,
) -> Result<TimestampWithTimeZone, OutboxError> {
    let now = clock::now();
    if let Some(at) = deliver_at {
        validate::deliver_at(clock::micros_between(now, at))?;
    }
    Ok(now)
}

fn resolve_max_attempts(max_attempts: Option<i32>) -> Result<i32, OutboxError> {
    match max_attempts {
        Some(n) => {
            validate::max_attempts(n)?;
            Ok(n)
        }
        None => Ok(gucs::MAX_ATTEMPTS.get()),
    }
}

/// A dedup window is only meaningful with dedup keys: given alone it would
/// silently deduplicate nothing.
fn window_needs_keys(
    window: Option<Interval>,
    has_keys: bool,
    keys: &'static str,
) -> Result<(), OutboxError> {
    if window.is_some() && !has_keys {
        return Err(OutboxError::Invalid(validate::Invalid {
            param: "dedup_window",
            reason: format!("dedup_window is given but {keys} is NULL"),
            hint: "Pass dedup_window together with a dedup key, or leave both NULL.",
        }));
    }
    Ok(())
}

/// 0.1.0's and 0.2.0's `outbox.enqueue` (six arguments): their install
/// scripts bind this symbol, so it stays (docs/upgrading.md, rule 3).
#[pg_extern(sql = false, volatile, security_definer, parallel_unsafe)]
fn enqueue(
    topic: Option<&str>,
    payload: Option<RawJsonb>,
    key: Option<&str>,
    headers: Option<RawJsonb>,
    deliver_at: Option<TimestampWithTimeZone>,
    max_attempts: Option<i32>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> OutboxResult<i64> {
    enqueue_with_dedup(
        topic,
        payload,
        key,
        headers,
        deliver_at,
        max_attempts,
        None,
        None,
        fcinfo,
    )
}

/// Add one message to the outbox, in the current transaction. Returns its id
/// — or, when `dedup_key` is held by another message (unfinished, or within
/// its dedup window), that message's id, and nothing is written.
///
/// ```sql
/// SELECT outbox.enqueue('orders.created', '{"order_id": 42}', key => 'order-42',
///                       dedup_key => 'order-42-created');
/// ```
#[pg_extern(name = "enqueue", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments)]
fn enqueue_with_dedup(
    topic: Option<&str>,
    payload: Option<RawJsonb>,
    key: default!(Option<&str>, "NULL"),
    headers: default!(Option<RawJsonb>, "NULL"),
    deliver_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    max_attempts: default!(Option<i32>, "NULL"),
    dedup_key: default!(Option<&str>, "NULL"),
    dedup_window: default!(Option<Interval>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> OutboxResult<i64> {
    let _outbox = crate::outboxes::enter(fcinfo);
    let topic = required(topic, "topic")?;
    validate::topic(topic).map_err(OutboxError::from)?;
    let payload = required(payload, "payload")?;
    check_payload(payload, None)?;
    if let Some(k) = key {
        validate::key(k).map_err(OutboxError::from)?;
    }
    if let Some(h) = headers {
        check_headers(h)?;
    }
    if let Some(k) = dedup_key {
        validate::dedup_key(k).map_err(OutboxError::from)?;
    }
    window_needs_keys(dedup_window, dedup_key.is_some(), "dedup_key")?;
    let max_attempts = resolve_max_attempts(max_attempts)?;
    let now = check_deliver_at(deliver_at)?;

    if let Some(dedup_key) = dedup_key {
        let call = Call::new(topic, deliver_at, max_attempts, now, dedup_window)?;
        let item = Item {
            key,
            payload,
            headers,
            dedup_key: Some(dedup_key),
        };
        let ids = dedup::enqueue(&call, &[item])?;
        return Ok(ids
            .first()
            .copied()
            .ok_or_else(|| OutboxError::Internal("dedup enqueue returned no id".into()))?);
    }

    let args: [DatumWithOid; 7] = [
        topic.into(),
        key.into(),
        payload.into(),
        headers.into(),
        deliver_at.into(),
        max_attempts.into(),
        now.into(),
    ];
    let id = Spi::connect_mut(|client| ENQUEUE.run(client, &args, |t| t.first().get_one::<i64>()))
        .map_err(OutboxError::from)?;
    Ok(id.ok_or_else(|| OutboxError::Internal("INSERT returned no id".into()))?)
}

/// 0.1.0's and 0.2.0's `outbox.enqueue_batch` (six arguments), kept for
/// their install scripts like [`enqueue`].
#[pg_extern(sql = false, volatile, security_definer, parallel_unsafe)]
fn enqueue_batch(
    topic: Option<&str>,
    payloads: Option<Array<'_, RawJsonb>>,
    keys: Option<Array<'_, &str>>,
    headers: Option<Array<'_, RawJsonb>>,
    deliver_at: Option<TimestampWithTimeZone>,
    max_attempts: Option<i32>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> OutboxResult<Vec<i64>> {
    enqueue_batch_with_dedup(
        topic,
        payloads,
        keys,
        headers,
        deliver_at,
        max_attempts,
        None,
        None,
        fcinfo,
    )
}

/// An optional per-message array argument of enqueue_batch, collected: NULL,
/// or one element per payload (each non-NULL one passed by `check`).
fn per_message<T: Copy>(
    array: Option<Vec<Option<T>>>,
    param: &'static str,
    n: usize,
    check: impl Fn(T) -> Result<(), OutboxError>,
) -> Result<Option<Vec<Option<T>>>, OutboxError> {
    let Some(v) = array else {
        return Ok(None);
    };
    if v.len() != n {
        return Err(OutboxError::LengthMismatch {
            param,
            len: v.len(),
            expected: n,
        });
    }
    for x in v.iter().flatten() {
        check(*x)?;
    }
    Ok(Some(v))
}

/// Add many messages of one topic in one statement. `keys`, `headers` and
/// `dedup_keys` are NULL or one element per payload (NULL elements allowed).
/// Returns the ids in input order; a message whose dedup key is held gets
/// the holder's id and is not written.
///
/// ```sql
/// SELECT outbox.enqueue_batch('orders.created',
///     ARRAY['{"order_id": 1}', '{"order_id": 2}']::jsonb[],
///     keys => ARRAY['order-1', 'order-2']);
/// ```
#[pg_extern(name = "enqueue_batch", volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments)]
fn enqueue_batch_with_dedup(
    topic: Option<&str>,
    payloads: Option<Array<'_, RawJsonb>>,
    keys: default!(Option<Array<'_, &str>>, "NULL"),
    headers: default!(Option<Array<'_, RawJsonb>>, "NULL"),
    deliver_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    max_attempts: default!(Option<i32>, "NULL"),
    dedup_keys: default!(Option<Array<'_, &str>>, "NULL"),
    dedup_window: default!(Option<Interval>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> OutboxResult<Vec<i64>> {
    let _outbox = crate::outboxes::enter(fcinfo);
    let topic = required(topic, "topic")?;
    validate::topic(topic).map_err(OutboxError::from)?;
    let payloads = required(payloads, "payloads")?;
    let n = payloads.len();
    if n > validate::MAX_ENQUEUE_BATCH {
        return Err(OutboxError::BatchTooLarge {
            count: n,
            limit: validate::MAX_ENQUEUE_BATCH,
        }
        .into());
    }
    let mut payload_vec = Vec::with_capacity(n);
    for (i, p) in payloads.iter().enumerate() {
        let p = p.ok_or(OutboxError::Null {
            param: "payloads element",
        })?;
        check_payload(p, Some(i + 1))?;
        payload_vec.push(p);
    }
    let key_vec = per_message(keys.as_ref().map(|a| a.iter().collect()), "keys", n, |k| {
        Ok(validate::key(k)?)
    })?;
    let header_vec = per_message(
        headers.as_ref().map(|a| a.iter().collect()),
        "headers",
        n,
        check_headers,
    )?;
    let dedup_vec = per_message(
        dedup_keys.as_ref().map(|a| a.iter().collect()),
        "dedup_keys",
        n,
        |k| Ok(validate::dedup_key(k)?),
    )?;
    window_needs_keys(dedup_window, dedup_vec.is_some(), "dedup_keys")?;
    let max_attempts = resolve_max_attempts(max_attempts)?;
    let now = check_deliver_at(deliver_at)?;
    if n == 0 {
        return Ok(Vec::new());
    }

    if let Some(dedup_vec) = dedup_vec {
        let call = Call::new(topic, deliver_at, max_attempts, now, dedup_window)?;
        let items: Vec<Item<'_>> = (0..n)
            .map(|i| Item {
                key: key_vec.as_ref().and_then(|v| v[i]),
                payload: payload_vec[i],
                headers: header_vec.as_ref().and_then(|v| v[i]),
                dedup_key: dedup_vec[i],
            })
            .collect();
        return Ok(dedup::enqueue(&call, &items)?);
    }

    let args: [DatumWithOid; 7] = [
        topic.into(),
        payload_vec.into(),
        key_vec.into(),
        header_vec.into(),
        deliver_at.into(),
        max_attempts.into(),
        now.into(),
    ];
    let ids = Spi::connect_mut(|client| {
        ENQUEUE_BATCH.run(client, &args, |t| {
            t.map(|row| row.get::<i64>(1).map(|id| id.unwrap_or_default()))
                .collect::<Result<Vec<_>, _>>()
        })
    })
    .map_err(OutboxError::from)?;
    Ok(ids)
}
