//! outbox.enqueue() and outbox.enqueue_batch(): write messages in the
//! caller's transaction. Invisible to relays until it commits, gone if it
//! rolls back — that is the whole point of an outbox.

use super::{INT4, JSONB, JSONB_ARRAY, TEXT, TEXT_ARRAY, TIMESTAMPTZ};
use crate::error::{required, OutboxError, OutboxResult};
use crate::plans::Query;
use crate::rawjsonb::RawJsonb;
use crate::{clock, gucs, validate};
use pgrx::datum::{Array, DatumWithOid, TimestampWithTimeZone};
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

/// Add one message to the outbox, in the current transaction. Returns its id.
///
/// ```sql
/// SELECT outbox.enqueue('orders.created', '{"order_id": 42}', key => 'order-42');
/// ```
#[pg_extern(volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn enqueue(
    topic: Option<&str>,
    payload: Option<RawJsonb>,
    key: default!(Option<&str>, "NULL"),
    headers: default!(Option<RawJsonb>, "NULL"),
    deliver_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    max_attempts: default!(Option<i32>, "NULL"),
) -> OutboxResult<i64> {
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
    let max_attempts = resolve_max_attempts(max_attempts)?;
    let now = check_deliver_at(deliver_at)?;

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

/// Add many messages of one topic in one statement. `keys` and `headers` are
/// NULL or one element per payload. Returns the ids in input order.
///
/// ```sql
/// SELECT outbox.enqueue_batch('orders.created',
///     ARRAY['{"order_id": 1}', '{"order_id": 2}']::jsonb[],
///     keys => ARRAY['order-1', 'order-2']);
/// ```
#[pg_extern(volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn enqueue_batch(
    topic: Option<&str>,
    payloads: Option<Array<'_, RawJsonb>>,
    keys: default!(Option<Array<'_, &str>>, "NULL"),
    headers: default!(Option<Array<'_, RawJsonb>>, "NULL"),
    deliver_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    max_attempts: default!(Option<i32>, "NULL"),
) -> OutboxResult<Vec<i64>> {
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
    let key_vec: Option<Vec<Option<&str>>> = match &keys {
        None => None,
        Some(keys) => {
            if keys.len() != n {
                return Err(OutboxError::LengthMismatch {
                    param: "keys",
                    len: keys.len(),
                    expected: n,
                }
                .into());
            }
            let v: Vec<Option<&str>> = keys.iter().collect();
            for k in v.iter().flatten() {
                validate::key(k).map_err(OutboxError::from)?;
            }
            Some(v)
        }
    };
    let header_vec: Option<Vec<Option<RawJsonb>>> = match &headers {
        None => None,
        Some(headers) => {
            if headers.len() != n {
                return Err(OutboxError::LengthMismatch {
                    param: "headers",
                    len: headers.len(),
                    expected: n,
                }
                .into());
            }
            let v: Vec<Option<RawJsonb>> = headers.iter().collect();
            for h in v.iter().flatten() {
                check_headers(*h)?;
            }
            Some(v)
        }
    };
    let max_attempts = resolve_max_attempts(max_attempts)?;
    let now = check_deliver_at(deliver_at)?;
    if n == 0 {
        return Ok(Vec::new());
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
