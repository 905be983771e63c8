//! The outbox's one notion of "now", and the one way a deadline is computed
//! from it.
//!
//! Every statement that compares with or stores a time gets it from here (as
//! a parameter, or through `outbox._now()` in `sql/admin.sql`), so:
//!
//! * a deadline is checked on the timestamp PostgreSQL will really store.
//!   `now + interval` uses calendar months and the session's time zone, so a
//!   cap checked part by part (a month as 30 days) can be bypassed with mixed
//!   signs: `'100 years -35999 days'` is about 525 days, not the 1 day it
//!   looks like. [`deadline`] adds with PostgreSQL's own operator and the caps
//!   in `validate` are applied to the difference it produced.
//! * tests can move time without sleeping: `outbox.test_clock_offset`
//!   (superuser only) is added to the statement's start time. Storage that
//!   replaces today's tables keeps working with it as long as it asks this
//!   module for the time.

use crate::gucs;
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, PgTryBuilder};

/// Statement start plus `outbox.test_clock_offset`.
pub fn now() -> TimestampWithTimeZone {
    // SAFETY: reads a backend-local timestamp; always valid in a statement.
    let start = unsafe { pg_sys::GetCurrentStatementStartTimestamp() };
    let offset = i64::from(gucs::TEST_CLOCK_OFFSET_MS.get()) * 1_000;
    // Statement start is finite and the offset is at most ~25 days, so this
    // stays far inside timestamptz's range.
    TimestampWithTimeZone::try_from(start.saturating_add(offset))
        .unwrap_or_else(|_| TimestampWithTimeZone::positive_infinity())
}

/// `at + interval` as PostgreSQL computes it, or `None` when the result is
/// outside timestamptz's range (PostgreSQL's 22008, which pgrx names DATETIME_FIELD_OVERFLOW, caught so the caller can
/// name the parameter).
pub fn deadline(at: TimestampWithTimeZone, interval: Interval) -> Option<TimestampWithTimeZone> {
    PgTryBuilder::new(|| Some(at + interval))
        .catch_when(PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW, |_| None)
        .execute()
}

/// Microseconds from `from` to `to`; `None` when either is infinite.
pub fn micros_between(from: TimestampWithTimeZone, to: TimestampWithTimeZone) -> Option<i128> {
    (from.is_finite() && to.is_finite())
        .then(|| i128::from(to.into_inner()) - i128::from(from.into_inner()))
}

/// How far `interval` really reaches from `at`: `(deadline, micros)`, or
/// `None` when it leaves timestamptz's range.
pub fn reach(
    at: TimestampWithTimeZone,
    interval: Interval,
) -> Option<(TimestampWithTimeZone, i128)> {
    let end = deadline(at, interval)?;
    Some((end, micros_between(at, end)?))
}

/// The outbox's notion of now, for the SQL functions in `sql/admin.sql`.
/// Internal: revoked from PUBLIC like every `_` function.
#[pg_extern(stable, parallel_safe, name = "_now")]
#[search_path(pg_catalog, pg_temp)]
pub fn now_sql() -> TimestampWithTimeZone {
    now()
}
