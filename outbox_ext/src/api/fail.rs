//! outbox.fail(): a delivery attempt failed. The database decides what
//! happens next — retry after a backoff, or dead letter — so every relay, in
//! any language, follows the same schedule.

use super::{detach, reject_unknown_ids, INT8, TEXT, TIMESTAMPTZ, UUID};
use crate::error::{required, OutboxError};
use crate::plans::Query;
use crate::{clock, gucs, redact, validate};
use pgrx::datum::{DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::Uuid;

static LOCK: Query = Query {
    sql: include_str!("../../../sql/queries/fail_lock.sql"),
    args: &[INT8, UUID],
};

static RETRY: Query = Query {
    sql: include_str!("../../../sql/queries/fail_retry.sql"),
    args: &[INT8, TIMESTAMPTZ, TEXT],
};

static DEAD: Query = Query {
    sql: include_str!("../../../sql/queries/fail_dead.sql"),
    args: &[INT8, TEXT, TEXT, TIMESTAMPTZ],
};

/// Record a failed attempt. `state` in the result is `retrying` (with
/// `next_attempt_at`), `dead` (permanent, or the last attempt failed), or
/// `stale` (the lease token no longer holds the message; nothing changed).
///
/// The delay is `retry_in` when given, else `outbox.retry_base ×
/// 2^(attempt−1)` capped at `outbox.retry_cap`, minus up to
/// `outbox.retry_jitter` of it. `error` is stored truncated to 2 KiB with
/// credentials masked.
///
/// ```sql
/// SELECT * FROM outbox.fail(42, '6f1c...'::uuid, 'broker said 503');
/// ```
#[pg_extern(volatile, security_definer, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn fail(
    id: Option<i64>,
    lease_token: Option<Uuid>,
    error: default!(Option<&str>, "NULL"),
    retry_in: default!(Option<Interval>, "NULL"),
    permanent: default!(Option<bool>, false),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Result<
    TableIterator<
        'static,
        (
            name!(state, String),
            name!(attempt, Option<i32>),
            name!(next_attempt_at, Option<TimestampWithTimeZone>),
        ),
    >,
    ErrorReport,
> {
    let _outbox = crate::outboxes::enter(fcinfo);
    let id = required(id, "id")?;
    let token = required(lease_token, "lease_token")?;
    let permanent = required(permanent, "permanent")?;
    let now = clock::now();
    // Checked on the time it really produces (clock.rs), before any row is
    // touched, so a bad retry_in changes nothing.
    let explicit_retry = match retry_in {
        Some(r) => {
            let reached = clock::reach(now, r);
            validate::retry_in(reached.map(|(_, micros)| micros)).map_err(OutboxError::from)?;
            reached.map(|(at, _)| at)
        }
        None => None,
    };
    let error = error.map(redact::error_text);

    let outcome = Spi::connect_mut(
        |client| -> Result<(String, Option<i32>, Option<TimestampWithTimeZone>), OutboxError> {
            // A message of a leased log batch moves to the side table first,
            // still leased (docs/storage.md, "Settling"): a retry or a dead
            // letter is decided there, per message, as it always was.
            detach(client, &[id], token)?;
            let locked = LOCK.run(client, &[id.into(), token.into()], |t| {
                if t.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(t.first().get_two::<i32, i32>()?))
                }
            })?;
            let Some((Some(attempt), Some(max_attempts))) = locked else {
                reject_unknown_ids(client, &[id])?;
                return Ok(("stale".to_owned(), None, None));
            };
            if permanent || attempt >= max_attempts {
                let reason = if permanent {
                    "permanent"
                } else {
                    "max_attempts"
                };
                let args: [DatumWithOid; 4] =
                    [id.into(), error.clone().into(), reason.into(), now.into()];
                DEAD.run(client, &args, |_| Ok(()))?;
                return Ok(("dead".to_owned(), Some(attempt), None));
            }
            let next_at = match explicit_retry {
                Some(at) => at,
                None => {
                    // At most outbox.retry_cap (7 days), so always in range.
                    let ms = gucs::backoff().delay_ms(attempt, rand::random::<f64>());
                    clock::deadline(now, Interval::from_micros(ms.saturating_mul(1_000)))
                        .ok_or_else(|| {
                            OutboxError::Internal("backoff left the time range".into())
                        })?
                }
            };
            let args: [DatumWithOid; 3] = [id.into(), next_at.into(), error.clone().into()];
            let next = RETRY.run(client, &args, |t| {
                t.first().get_one::<TimestampWithTimeZone>()
            })?;
            Ok(("retrying".to_owned(), Some(attempt), next))
        },
    )?;
    Ok(TableIterator::once(outcome))
}
