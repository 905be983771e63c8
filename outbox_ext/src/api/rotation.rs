//! Rotation of the log's segments (sql/rotation.sql has the rules): claim()
//! runs it at most once a second per backend, and `outbox.rotate()` runs it
//! for a scheduler.

use crate::error::OutboxError;
use crate::plans::Query;
use crate::xact;
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

static ROTATE: Query = Query {
    sql: "SELECT outbox._rotate()",
    args: &[],
};

/// How often one backend's claims look at the segments: the check is a
/// read of three rows, the interval itself is outbox.rotation_interval.
const CHECK_EVERY: Duration = Duration::from_secs(1);

thread_local! {
    /// When this backend last looked, per outbox (schema OID, outboxes.rs):
    /// each outbox rotates on its own, and _rotate() also creates an
    /// outbox's partition rows on its first claim.
    static LAST_CHECK: RefCell<HashMap<Oid, Instant>> = RefCell::new(HashMap::new());
}

/// Run `outbox._rotate()` (of the call's outbox) if this backend has not in
/// the last second.
pub(crate) fn maybe_rotate(client: &mut SpiClient<'_>) -> Result<(), OutboxError> {
    let outbox = crate::outboxes::current();
    let due = LAST_CHECK.with_borrow_mut(|last| match last.get(&outbox) {
        Some(at) if at.elapsed() < CHECK_EVERY => false,
        _ => {
            last.insert(outbox, Instant::now());
            true
        }
    });
    if due {
        ROTATE.run(client, &[], |_| Ok(()))?;
    }
    Ok(())
}

/// The next transaction id to be assigned (without taking one), as bigint:
/// the seal of a segment in sql/rotation.sql. Internal.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn _next_xid() -> i64 {
    i64::try_from(xact::next_xid()).unwrap_or(i64::MAX)
}
