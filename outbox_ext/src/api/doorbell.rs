//! The doorbell: NOTIFY only while a relay sleeps, and the functions a relay
//! uses to go to sleep without missing a wake-up. The protocol is described
//! in sql/doorbell.sql; this is the crate's second place with hand-written
//! `unsafe` (lock manager calls), each with a SAFETY line.
//!
//! The gate is the empty table outbox.doorbell_gate:
//!
//! * a producer's trigger takes a *conditional* ROW EXCLUSIVE lock on it,
//!   held to the end of its transaction. While nobody sleeps that is a
//!   PostgreSQL fast-path lock: a slot in the backend's own PGPROC, no shared
//!   lock table, no contention between producers. Only when it cannot get
//!   the lock does it NOTIFY;
//! * a sleeping relay holds a *session-level* SHARE lock on it, which
//!   conflicts with ROW EXCLUSIVE but not with other relays' SHARE locks, so
//!   any number of relays can sleep at once. Getting SHARE proves that every
//!   producer that stayed silent has ended (locks are released after commit
//!   is visible), so the relay's re-check sees their messages.
//!
//! An advisory lock (the first design) did the same job but every producer
//! went through one shared lock-table partition, and only one relay could
//! hold it exclusively.

use crate::error::{required, OutboxError, OutboxResult};
use pgrx::datum::Interval;
use pgrx::pg_sys::{self, Oid};
use pgrx::prelude::*;
use pgrx::{direct_function_call, IntoDatum};
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// The channel relays of the default outbox LISTEN on.
pub const DOORBELL_CHANNEL: &str = "outbox_doorbell";

thread_local! {
    /// Whether this backend registered `release_at_exit` yet.
    static EXIT_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// The gate of the outbox in `schema` (a named outbox's, or outbox.doorbell_gate).
fn gate_in(schema: Oid) -> Option<Oid> {
    if schema == Oid::INVALID {
        return None;
    }
    // SAFETY: a syscache lookup with a valid NUL-terminated name; an unknown
    // name yields InvalidOid, not an ERROR.
    let relid = unsafe { pg_sys::get_relname_relid(c"doorbell_gate".as_ptr(), schema) };
    (relid != Oid::INVALID).then_some(relid)
}

/// The gate of the current call's outbox (outboxes.rs).
fn gate() -> Option<Oid> {
    gate_in(crate::outboxes::schema_oid())
}

/// The channel of the outbox in `schema`: `<schema>_doorbell`, so the
/// default outbox's is outbox_doorbell and billing's outbox_billing_doorbell
/// (doorbell_channel() returns the same, renamed by outbox._in_outbox()).
fn channel(schema: Oid) -> String {
    crate::outboxes::named_schema(schema)
        .map_or_else(|| DOORBELL_CHANNEL.to_owned(), |s| format!("{s}_doorbell"))
}

/// The lock tag of a relation in the current database (SET_LOCKTAG_RELATION).
fn relation_tag(relid: Oid) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        // SAFETY: MyDatabaseId is set once at backend start and only read here.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: relid.to_u32(),
        locktag_field3: 0,
        locktag_field4: 0,
        locktag_type: pg_sys::LockTagType::LOCKTAG_RELATION as u8,
        locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
    }
}

/// AFTER INSERT ... FOR EACH STATEMENT on an outbox's log and side table:
/// the gate and the channel are those of the table's schema (its outbox).
#[pg_trigger]
fn _doorbell<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    // SAFETY: a syscache lookup by the trigger's own relation OID.
    let schema = unsafe { pg_sys::get_rel_namespace(trigger.relid()?) };
    let Some(gate) = gate_in(schema) else {
        return Ok(None);
    };
    // SAFETY: gate is a relation OID of this database; a conditional lock
    // never waits and is released by the transaction's resource owner.
    let nobody_sleeps =
        unsafe { pg_sys::ConditionalLockRelationOid(gate, pg_sys::RowExclusiveLock as i32) };
    if !nobody_sleeps {
        // SAFETY: pg_notify takes (text channel, text payload), both non-NULL
        // text datums here, and returns void.
        unsafe {
            direct_function_call::<()>(
                pg_sys::pg_notify,
                &[channel(schema).into_datum(), "".into_datum()],
            );
        }
    }
    Ok(None)
}

/// Announce that this session is about to sleep. Returns `armed` (producers
/// now ring; LISTEN first, re-check after) or `busy` (producers that stayed
/// silent were still open after `wait`: claim again, then retry).
///
/// ```sql
/// LISTEN outbox_doorbell;
/// SELECT outbox.doorbell_arm();
/// ```
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn doorbell_arm(
    wait: default!(Option<Interval>, "'5 seconds'"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> OutboxResult<&'static str> {
    let _outbox = crate::outboxes::enter(fcinfo);
    let wait = required(wait, "wait")?;
    let wait_micros = super::micros(&wait);
    crate::validate::doorbell_wait(wait_micros).map_err(OutboxError::from)?;
    let gate = gate()
        .ok_or_else(|| OutboxError::Internal("the outbox's doorbell_gate is missing".into()))?;
    let tag = relation_tag(gate);
    if armed(&tag) {
        return Ok("armed");
    }
    register_exit_hook();
    remember_gate(gate);
    // At most 24 hours (validated above), so the addition cannot overflow.
    let deadline = Instant::now() + Duration::from_micros(u64::try_from(wait_micros).unwrap_or(0));
    loop {
        // SAFETY: tag names a relation of this database; a session-level
        // lock outlives transactions (not aborts) and is released by
        // doorbell_disarm or release_at_exit; dontWait = true never sleeps.
        let got = unsafe { pg_sys::LockAcquire(&tag, pg_sys::ShareLock as i32, true, true) };
        if got != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL {
            return Ok("armed");
        }
        if Instant::now() >= deadline {
            return Ok("busy");
        }
        // Polling rather than queueing for the lock: a queued SHARE request
        // would make every producer ring while we wait.
        // SAFETY: WaitLatch on this backend's own latch with a 1 ms timeout,
        // then reset it as the latch protocol requires.
        unsafe {
            pg_sys::WaitLatch(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                1,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
        pgrx::check_for_interrupts!();
    }
}

/// End a sleep started with `doorbell_arm()`: producers go silent again.
/// Returns false if this session was not armed.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn doorbell_disarm(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    let _outbox = crate::outboxes::enter(fcinfo);
    gate().is_some_and(|gate| release(&relation_tag(gate)))
}

/// Whether this session holds the gate. The lock manager is the truth, not a
/// flag of ours: PostgreSQL drops session-level locks when any transaction of
/// the session aborts.
fn armed(tag: &pg_sys::LOCKTAG) -> bool {
    // SAFETY: reads this backend's local lock table for a valid tag.
    unsafe { pg_sys::LockHeldByMe(tag, pg_sys::ShareLock as i32) }
}

fn release(tag: &pg_sys::LOCKTAG) -> bool {
    // SAFETY: releases a session-level SHARE lock this backend holds (checked
    // just before) on this very tag.
    armed(tag) && unsafe { pg_sys::LockRelease(tag, pg_sys::ShareLock as i32, true) }
}

/// PostgreSQL releases session-level *advisory* locks when a backend exits,
/// but not session-level relation locks (it only expects them inside VACUUM
/// and the like, which end in a transaction). Without this, a relay that
/// disconnects while armed would leave the gate locked for good.
fn register_exit_hook() {
    if EXIT_HOOK.replace(true) {
        return;
    }
    // SAFETY: registers a plain function once per backend; it runs in the
    // backend's own process before shared memory is detached.
    unsafe { pg_sys::before_shmem_exit(Some(release_at_exit), pg_sys::Datum::from(0)) };
}

#[pg_guard]
unsafe extern "C-unwind" fn release_at_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    for gate in ARMED_GATES.take() {
        release(&relation_tag(gate));
    }
}

/// Remember a gate for the exit hook: at exit there may be no transaction
/// to do catalog lookups in. One per outbox this session slept on.
fn remember_gate(gate: Oid) {
    ARMED_GATES.with_borrow_mut(|gates| {
        if !gates.contains(&gate) {
            gates.push(gate);
        }
    });
}

thread_local! {
    /// The gates this backend armed, for the exit hook.
    static ARMED_GATES: RefCell<Vec<Oid>> = const { RefCell::new(Vec::new()) };
}
