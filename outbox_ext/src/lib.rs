//! outbox: a transactional outbox inside PostgreSQL.
//!
//! Applications call `outbox.enqueue()` in their own transaction; relays
//! `outbox.claim()` leased batches and `complete`, `fail`, `release` or
//! `extend` them with the lease token. See README.md and docs/sql-api.md.
//!
//! This file is the table of contents: modules, the SQL files the extension
//! ships, and `_PG_init`.

// pgrx's generated glue is unsafe code; the hand-written unsafe lives in
// rawjsonb.rs and api/doorbell.rs, each block with a SAFETY line.
#![allow(unsafe_code)]
// `#[pg_extern]` functions return `Result<T, ErrorReport>` (the only error
// type that keeps its SQLSTATE in pgrx 0.18.1) and spell their result columns
// inline (pgrx cannot see through a type alias), so these lints do not apply.
#![allow(clippy::result_large_err, clippy::type_complexity)]

pub mod api;
pub mod clock;
pub mod error;
pub mod gucs;
pub mod outboxes;
pub mod plans;
pub mod rawjsonb;
pub mod redact;
pub mod retry;
/// The input rules and limits live in their own crate, shared with the client.
pub use outbox_rules as validate;
pub mod xact;

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

::pgrx::pg_module_magic!();

pgrx::extension_sql_file!("../../sql/schema.sql", bootstrap);
pgrx::extension_sql_file!(
    "../../sql/doorbell.sql",
    requires = [api::doorbell::_doorbell]
);
pgrx::extension_sql_file!("../../sql/views.sql", name = "views");
pgrx::extension_sql_file!("../../sql/state.sql", name = "state");
pgrx::extension_sql_file!(
    "../../sql/admin.sql",
    requires = [clock::now_sql, "views", "state"]
);
pgrx::extension_sql_file!(
    "../../sql/rotation.sql",
    requires = [clock::now_sql, api::rotation::_next_xid, "views"]
);
pgrx::extension_sql_file!("../../sql/claim.sql", requires = [api::claim::claim]);
pgrx::extension_sql_file!(
    "../../sql/dedup.sql",
    requires = [clock::now_sql],
    name = "dedup"
);
pgrx::extension_sql_file!("../../sql/history.sql", name = "history");
pgrx::extension_sql_file!(
    "../../sql/inspect.sql",
    requires = [clock::now_sql, "views", "state", "history"]
);
pgrx::extension_sql_file!(
    "../../sql/cleanup.sql",
    requires = [
        clock::now_sql,
        api::history::retention_sql,
        "dedup",
        "history"
    ]
);
pgrx::extension_sql_file!(
    "../../sql/outboxes.sql",
    requires = [outboxes::check_outbox_name],
    name = "outboxes"
);
pgrx::extension_sql_file!("../../sql/grants.sql", finalize);

/// Called when a backend loads the library.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
}

/// Needed by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    /// Per-test setup (none).
    pub fn setup(_options: Vec<&str>) {}

    /// Settings for the test cluster.
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
