//! What claim() needs to know about transactions that SQL does not say:
//! the next transaction id (without taking one) and the isolation level.
//! The two reads of PostgreSQL state in this crate that need `unsafe`.

use pgrx::pg_sys;

/// The next transaction id to be assigned, as an `xid8` (epoch and xid).
/// Unlike `pg_current_xact_id()` this takes no xid for the caller, and
/// unlike a snapshot's xmax ("latest completed + 1") it is above every xid
/// assigned so far (docs/storage.md: a window's `xid_lo`).
pub fn next_xid() -> u64 {
    // SAFETY: ReadNextFullTransactionId takes XidGenLock in shared mode and
    // copies one 64-bit value; it is callable from any backend at any time
    // inside a transaction, which a #[pg_extern] always is.
    unsafe { pg_sys::ReadNextFullTransactionId() }.value
}

/// Whether the current transaction is READ COMMITTED (or READ
/// UNCOMMITTED, which PostgreSQL runs as READ COMMITTED): every statement
/// takes a fresh snapshot.
pub fn read_committed() -> bool {
    // SAFETY: XactIsoLevel is a plain int global of this backend, set at
    // transaction start; reading it from the backend's own thread is what
    // PostgreSQL's IsolationUsesXactSnapshot() macro does.
    let level = unsafe { pg_sys::XactIsoLevel };
    level < pg_sys::XACT_REPEATABLE_READ as i32
}
