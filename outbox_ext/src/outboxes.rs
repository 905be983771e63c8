//! Which outbox a call is for (named outboxes, sql/outboxes.sql).
//!
//! A named outbox's functions are copies of the default outbox's in their
//! own schema, and its C functions bind the same symbols as the default
//! ones. So each C entry point asks PostgreSQL which function it was called
//! as (the `FunctionCallInfo`'s function OID, which no caller can forge) and
//! takes that function's schema as the outbox for the rest of the call: a
//! [`Scope`] sets it, and plans.rs prepares every kept plan per schema.

use crate::error::OutboxError;
use pgrx::pg_sys::{self, Oid};
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// The schema of the API function running now; InvalidOid outside any
    /// (the default outbox).
    static CURRENT: Cell<Oid> = const { Cell::new(Oid::INVALID) };
}

/// The outbox of one C function call. Dropping it restores the outbox of
/// the call around it (an outbox function is never nested in another
/// outbox's, but a pgrx-caught error unwinds through here all the same).
#[must_use = "the outbox is set only while the scope lives"]
pub struct Scope {
    previous: Oid,
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.set(self.previous);
    }
}

/// Enter the outbox of the function PostgreSQL called: the schema it is in.
/// Crate-private: only the C entry points call it, with the fcinfo the
/// function manager handed them (so it needs no `unsafe fn` contract).
pub(crate) fn enter(fcinfo: pg_sys::FunctionCallInfo) -> Scope {
    // SAFETY: fcinfo is this call's own FunctionCallInfo, handed over by
    // the function manager, and its flinfo is set for every fmgr call; both
    // are only read, and a NULL pointer yields None.
    let fn_oid = unsafe { fcinfo.as_ref().and_then(|f| f.flinfo.as_ref()) }
        .map_or(Oid::INVALID, |flinfo| flinfo.fn_oid);
    let schema = if fn_oid == Oid::INVALID {
        Oid::INVALID
    } else {
        // SAFETY: a syscache lookup by OID; an unknown OID yields InvalidOid.
        unsafe { pg_sys::get_func_namespace(fn_oid) }
    };
    Scope {
        previous: CURRENT.replace(schema),
    }
}

/// The schema of the current call's outbox (InvalidOid: the default).
pub fn current() -> Oid {
    CURRENT.get()
}

/// The name of schema `schema`, when it is a named outbox's: None for the
/// default outbox (schema outbox, or no call scope at all).
pub fn named_schema(schema: Oid) -> Option<String> {
    if schema == Oid::INVALID {
        return None;
    }
    // SAFETY: a syscache lookup by OID; it returns a palloc'd copy of the
    // name, or NULL for an unknown OID, and the copy is read at once.
    let name = unsafe {
        let ptr = pg_sys::get_namespace_name(schema);
        if ptr.is_null() {
            // Unreachable while the function runs (its schema cannot be
            // dropped under it); an ERROR, never the default outbox's plan.
            pgrx::error!(
                "the schema of the called outbox function (oid {}) is gone",
                schema.to_u32()
            );
        }
        std::ffi::CStr::from_ptr(ptr).to_string_lossy().into_owned()
    };
    (name != "outbox").then_some(name)
}

/// The schema an outbox's objects live in, for the current call: the
/// relation lookups of the doorbell (which has no kept plan) use it.
pub fn schema_oid() -> Oid {
    match current() {
        Oid::INVALID => {
            // SAFETY: a syscache lookup with a valid NUL-terminated name;
            // missing_ok = true, so a missing schema yields InvalidOid.
            unsafe { pg_sys::get_namespace_oid(c"outbox".as_ptr(), true) }
        }
        schema => schema,
    }
}

/// `outbox._check_outbox_name(name)`: the rule for an outbox's name
/// (outbox_rules::outbox_name, shared with the client), for create_outbox.
#[pg_extern(name = "_check_outbox_name", immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn check_outbox_name(name: Option<&str>) -> Result<(), pgrx::pg_sys::panic::ErrorReport> {
    let name = crate::error::required(name, "name")?;
    crate::validate::outbox_name(name).map_err(OutboxError::from)?;
    Ok(())
}
