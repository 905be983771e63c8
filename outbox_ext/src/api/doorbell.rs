//! The doorbell trigger: NOTIFY only while a relay sleeps. The protocol, the
//! measurement behind it and the lock key are in sql/doorbell.sql.
//!
//! Written in Rust rather than PL/pgSQL: it runs after every INSERT statement
//! on outbox.messages, and two direct function calls cost less than starting
//! a PL/pgSQL function.

use pgrx::prelude::*;
use pgrx::{direct_function_call, IntoDatum};

/// The advisory lock a sleeping relay holds: the bytes of "outbox".
pub const DOORBELL_LOCK_KEY: i64 = 0x6f75_7462_6f78;
/// The channel relays LISTEN on.
pub const DOORBELL_CHANNEL: &str = "outbox_doorbell";

/// AFTER INSERT ... FOR EACH STATEMENT on outbox.messages.
#[pg_trigger]
fn _doorbell<'a>(
    _trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    // SAFETY: pg_try_advisory_xact_lock_shared_int8 takes one int8 datum and
    // returns a bool datum; the argument is a valid, non-NULL int8.
    let nobody_sleeps = unsafe {
        direct_function_call::<bool>(
            pg_sys::pg_try_advisory_xact_lock_shared_int8,
            &[DOORBELL_LOCK_KEY.into_datum()],
        )
    };
    if nobody_sleeps != Some(true) {
        // SAFETY: pg_notify takes (text channel, text payload), both non-NULL
        // text datums here, and returns void.
        unsafe {
            direct_function_call::<()>(
                pg_sys::pg_notify,
                &[DOORBELL_CHANNEL.into_datum(), "".into_datum()],
            );
        }
    }
    Ok(None)
}
