//! The upgrade test: a database on the first release (0.1.0), filled with
//! messages in every state, `ALTER EXTENSION outbox UPDATE` to the version
//! being built, and then
//!
//! - every message and dead letter is still there, unchanged, and is
//!   delivered, completed, requeued as 0.1.0 promised ([`state`]);
//! - roles granted under 0.1.0 still do their jobs ([`roles`]);
//! - the upgraded objects equal a fresh install's ([`catalog`]);
//! - the frozen install scripts in `sql/` are installed and the current
//!   `outbox.so` still exports every C symbol they name ([`scripts`]);
//! - a 0.1.0 backup restores on the new version, and a backup of the new
//!   version restores and delivers, in the same and in another cluster
//!   ([`dump`]).
//!
//! The release discipline behind it is in `docs/upgrading.md`. Tests that
//! need a version after 0.1.0 fail, with a message saying so, until the
//! extension's version has been bumped and installed: an upgrade test that
//! passes without an upgrade would prove nothing.
//!
//! One binary on the harness's shared cluster, each test with databases of
//! its own; the cross-cluster restore also starts a private cluster. The
//! harness stops both when the binary exits.

mod calls;
mod catalog;
mod diff;
mod dump;
mod from_0_2_0;
mod roles;
mod scripts;
mod seed;
mod state;

use outbox_tests::tokio_postgres::Client;
use outbox_tests::{describe_error, TestDb, EXTENSION};

/// The first release: the version every upgrade test starts from.
pub const FIRST_RELEASE: &str = "0.1.0";

/// An SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Runs `sql`, panicking with the server's full error and `what`.
#[track_caller]
pub fn expect_ok<T>(result: Result<T, outbox_tests::tokio_postgres::Error>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {}", describe_error(&e)),
    }
}

/// `default_version` of the installed extension (what `CREATE EXTENSION
/// outbox` and `ALTER EXTENSION outbox UPDATE` go to).
pub async fn default_version(c: &Client) -> String {
    let row = expect_ok(
        c.query_opt(
            "SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = $1",
            &[&EXTENSION],
        )
        .await,
        "reading pg_available_extensions",
    );
    match row {
        Some(row) => row.get(0),
        None => panic!(
            "the {EXTENSION} extension is not installed in this PostgreSQL \
             (run `cargo pgrx install` in outbox_ext/)"
        ),
    }
}

/// The version an upgrade from [`FIRST_RELEASE`] goes to: the installed
/// default version, which must be a later one, reachable by update scripts.
///
/// # Panics
///
/// While the default version is still 0.1.0 (the tests that call this need
/// 0.2.0 or later), or when no chain of update scripts leads there.
pub async fn upgrade_target(c: &Client) -> String {
    let target = default_version(c).await;
    if target == FIRST_RELEASE {
        panic!(
            "this test needs the next release installed: the installed {EXTENSION} extension's \
             default_version is still {FIRST_RELEASE}, so there is nothing to upgrade to. Bump the \
             workspace version (Cargo.toml) to 0.2.0, write sql/outbox--0.1.0--0.2.0.sql, and run \
             `cargo pgrx install` in outbox_ext/"
        );
    }
    let path: Option<String> = expect_ok(
        c.query_opt(
            "SELECT path FROM pg_catalog.pg_extension_update_paths($1) \
             WHERE source = $2 AND target = $3",
            &[&EXTENSION, &FIRST_RELEASE, &target],
        )
        .await,
        "pg_extension_update_paths",
    )
    .and_then(|row| row.get(0));
    if path.is_none() {
        let script = format!("{EXTENSION}--{FIRST_RELEASE}--{target}.sql");
        let advice = if scripts::sql_dir().join(&script).exists() {
            format!(
                "sql/{script} exists but is not installed: run `cargo pgrx install` in outbox_ext/ \
                 (it copies every outbox--A--B.sql from outbox_ext/sql/, a symlink to ../sql)"
            )
        } else {
            format!(
                "write sql/{script} (cargo pgrx install copies every outbox--A--B.sql from \
                 outbox_ext/sql/, a symlink to ../sql)"
            )
        };
        panic!(
            "there is no update path from {FIRST_RELEASE} to {target} in {}: {advice}",
            scripts::extension_dir().display()
        );
    }
    target
}

/// A fresh database with the extension created at `version` from its
/// install script in the extension directory (the frozen one from `sql/`
/// for a released version: see [`scripts::install_frozen_scripts`]).
pub async fn db_at_version(version: &str) -> (TestDb, Client) {
    let db = TestDb::plain().await;
    let c = db.client().await;
    scripts::install_frozen_scripts(&c).await;
    let sql = format!(
        "CREATE EXTENSION {EXTENSION} VERSION {}",
        quote_literal(version)
    );
    if let Err(e) = c.batch_execute(&sql).await {
        panic!(
            "{sql} failed: {}\n(the install script runs against the CURRENT outbox.so: see the \
             test library_exports_every_symbol_the_shipped_scripts_need)",
            describe_error(&e)
        );
    }
    (db, c)
}

/// A fresh database with `CREATE EXTENSION outbox` at the default version.
pub async fn db_fresh() -> (TestDb, Client) {
    let db = TestDb::plain().await;
    let c = db.client().await;
    expect_ok(
        c.batch_execute(&format!("CREATE EXTENSION {EXTENSION}"))
            .await,
        "CREATE EXTENSION outbox",
    );
    (db, c)
}

/// `ALTER EXTENSION outbox UPDATE` to the default version; checks the
/// extension then reports `target`.
pub async fn upgrade(c: &Client, target: &str) {
    expect_ok(
        c.batch_execute(&format!("ALTER EXTENSION {EXTENSION} UPDATE"))
            .await,
        "ALTER EXTENSION outbox UPDATE",
    );
    let version: String = expect_ok(
        c.query_one(
            "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = $1",
            &[&EXTENSION],
        )
        .await,
        "reading pg_extension",
    )
    .get(0);
    assert_eq!(
        version, target,
        "after ALTER EXTENSION outbox UPDATE the extension is at {version}, not {target}"
    );
}
