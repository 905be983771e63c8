//! The scripts the extension ships from `sql/`: frozen install scripts
//! (`outbox--X.sql`, one per release, never edited) and update scripts
//! (`outbox--X--Y.sql`).
//!
//! cargo-pgrx 0.18.1's `install` writes the current version's install script
//! (generated from the code) and copies the update scripts from
//! `outbox_ext/sql/` (`copy_sql_files` in cargo-pgrx's `command/install.rs`
//! matches `^outbox--.+--.+\.sql$`), but not the frozen install scripts of
//! earlier releases. `CREATE EXTENSION outbox VERSION '0.1.0'` needs
//! `outbox--0.1.0.sql` in the extension directory, so
//! [`install_frozen_scripts`] copies them there. Either way, every script
//! runs against the CURRENT `outbox.so`, which must therefore still export
//! each C symbol an old script names.

use std::path::{Path, PathBuf};

use outbox_tests::tokio_postgres::Client;
use outbox_tests::{describe_error, Cluster, TestDb, EXTENSION};
use tokio::sync::OnceCell;

use crate::{default_version, expect_ok, quote_literal};

/// What a script in `sql/` is, from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `outbox--X.sql`: the full install script of release X.
    Install { version: String },
    /// `outbox--X--Y.sql`: the update from X to Y.
    Update,
}

/// One script in `sql/`.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub path: PathBuf,
    pub kind: Kind,
}

/// The repository's `sql/` directory.
pub fn sql_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql")
}

/// PostgreSQL's extension directory (`pg_config --sharedir`/extension).
pub fn extension_dir() -> PathBuf {
    let control = Cluster::shared().extension_control_file(EXTENSION);
    control
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("{} has no parent directory", control.display()))
}

/// Every `sql/outbox--*.sql`, by name.
pub fn shipped_scripts() -> Vec<Script> {
    let dir = sql_dir();
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let prefix = format!("{EXTENSION}--");
    let mut scripts: Vec<Script> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let middle = name.strip_prefix(&prefix)?.strip_suffix(".sql")?;
            let kind = if middle.contains("--") {
                Kind::Update
            } else {
                Kind::Install {
                    version: middle.to_owned(),
                }
            };
            Some(Script {
                path: entry.path(),
                name,
                kind,
            })
        })
        .collect();
    scripts.sort_by(|a, b| a.name.cmp(&b.name));
    scripts
}

static INSTALLED: OnceCell<()> = OnceCell::const_new();

/// Copies every frozen install script except the current version's into the
/// extension directory, where it is missing or differs; once per process.
///
/// The current version's install script is the one `cargo pgrx install`
/// generated from the code, and other tests create the extension from it:
/// it is never overwritten here (see
/// [`frozen_install_scripts_are_the_installed_ones`] for the check).
///
/// # Panics
///
/// When a script must be copied and the directory is not writable, with the
/// command that would do it.
pub async fn install_frozen_scripts(c: &Client) {
    INSTALLED
        .get_or_init(|| async {
            let current = default_version(c).await;
            let dir = extension_dir();
            for script in shipped_scripts() {
                let Kind::Install { version } = &script.kind else {
                    continue;
                };
                if *version == current {
                    continue;
                }
                let frozen = read(&script.path);
                let target = dir.join(&script.name);
                if std::fs::read(&target).ok().as_deref() == Some(frozen.as_slice()) {
                    continue;
                }
                // Written aside and renamed, so a CREATE EXTENSION running
                // meanwhile never reads half a file.
                let tmp = dir.join(format!(".{}.{}.tmp", script.name, std::process::id()));
                let copied =
                    std::fs::write(&tmp, &frozen).and_then(|()| std::fs::rename(&tmp, &target));
                if let Err(e) = copied {
                    let _ = std::fs::remove_file(&tmp);
                    panic!(
                        "cannot install the frozen {} into {}: {e}\nrun: install -m 0644 {} {}/",
                        script.name,
                        dir.display(),
                        script.path.display(),
                        dir.display()
                    );
                }
                eprintln!(
                    "upgrade tests: installed the frozen {} into {} (cargo pgrx install does not \
                     copy install scripts of earlier releases)",
                    script.name,
                    dir.display()
                );
            }
        })
        .await;
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The C symbols a script binds functions to: every
/// `AS 'MODULE_PATHNAME', '<symbol>'` (or `'$libdir/outbox'`).
pub fn c_symbols(script: &str) -> Vec<String> {
    let mut symbols = Vec::new();
    for library in ["'MODULE_PATHNAME'", "'$libdir/outbox'"] {
        let mut rest = script;
        while let Some(at) = rest.find(library) {
            rest = &rest[at + library.len()..];
            let after = rest.trim_start();
            let Some(after) = after.strip_prefix(',') else {
                continue;
            };
            let Some(quoted) = after.trim_start().strip_prefix('\'') else {
                continue;
            };
            if let Some(end) = quoted.find('\'') {
                symbols.push(quoted[..end].to_owned());
            }
        }
    }
    symbols.sort();
    symbols.dedup();
    symbols
}

#[test]
fn c_symbols_finds_module_pathname_bindings() {
    let sql = "CREATE FUNCTION a() RETURNS int LANGUAGE c AS 'MODULE_PATHNAME', 'a_wrapper';\n\
               CREATE FUNCTION b() RETURNS int LANGUAGE c AS '$libdir/outbox' ,\n 'b_wrapper';\n\
               CREATE FUNCTION c() RETURNS int LANGUAGE c AS 'MODULE_PATHNAME', 'a_wrapper';\n\
               SELECT 'MODULE_PATHNAME';";
    assert_eq!(c_symbols(sql), ["a_wrapper", "b_wrapper"]);
}

/// Every frozen install script in `sql/` is in the extension directory,
/// byte for byte, and PostgreSQL offers its version. For the current
/// version this is the release check "the code still generates exactly the
/// frozen script": once X is released, its SQL changes only through
/// `outbox--X--Y.sql` and a version bump.
#[tokio::test]
async fn frozen_install_scripts_are_the_installed_ones() {
    let db = TestDb::plain().await;
    let c = db.client().await;
    install_frozen_scripts(&c).await;
    let current = default_version(&c).await;
    let dir = extension_dir();
    let mut problems = Vec::new();
    let mut frozen_versions = Vec::new();
    for script in shipped_scripts() {
        let Kind::Install { version } = &script.kind else {
            continue;
        };
        frozen_versions.push(version.clone());
        let installed = dir.join(&script.name);
        match std::fs::read(&installed) {
            Err(e) => problems.push(format!("{} is missing: {e}", installed.display())),
            Ok(bytes) if bytes == read(&script.path) => {}
            Ok(_) if *version == current => problems.push(format!(
                "{} (generated by `cargo pgrx install` from the current code, version {current}) \
                 differs from the frozen sql/{}: {version} is released and its install script is \
                 frozen. Bump the workspace version and put the change into \
                 sql/outbox--{version}--<next>.sql (or, if {version} is not released yet, \
                 refreeze: cp {} sql/{})",
                installed.display(),
                script.name,
                installed.display(),
                script.name
            )),
            Ok(_) => problems.push(format!(
                "{} differs from the frozen sql/{}",
                installed.display(),
                script.name
            )),
        }
        let offered: bool = expect_ok(
            c.query_one(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_available_extension_versions \
                 WHERE name = $1 AND version = $2)",
                &[&EXTENSION, version],
            )
            .await,
            "pg_available_extension_versions",
        )
        .get(0);
        if !offered {
            problems.push(format!(
                "PostgreSQL does not offer {EXTENSION} version {version}"
            ));
        }
    }
    assert!(
        frozen_versions.iter().any(|v| v == crate::FIRST_RELEASE),
        "sql/{EXTENSION}--{}.sql, the frozen first release, is missing (found {frozen_versions:?})",
        crate::FIRST_RELEASE
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `CREATE EXTENSION outbox VERSION 'X'` and every update script bind SQL
/// functions to C symbols of the CURRENT `outbox.so`. PostgreSQL checks at
/// `CREATE FUNCTION ... LANGUAGE c` that the library exports the symbol (and
/// its `pg_finfo_` record), so this probes each one the same way.
#[tokio::test]
async fn library_exports_every_symbol_the_shipped_scripts_need() {
    let db = TestDb::plain().await;
    let c = db.client().await;
    let current = default_version(&c).await;
    expect_ok(
        c.batch_execute("CREATE SCHEMA probe").await,
        "CREATE SCHEMA probe",
    );
    let mut checked = 0;
    let mut missing = Vec::new();
    for script in shipped_scripts() {
        let text = String::from_utf8_lossy(&read(&script.path)).into_owned();
        for (i, symbol) in c_symbols(&text).iter().enumerate() {
            checked += 1;
            let sql = format!(
                "CREATE FUNCTION probe.f_{checked}_{i}() RETURNS void LANGUAGE c \
                 AS '$libdir/{EXTENSION}', {}",
                quote_literal(symbol)
            );
            if let Err(e) = c.batch_execute(&sql).await {
                missing.push(format!(
                    "{current}'s {EXTENSION}.so no longer exports {symbol}, which {} needs: keep \
                     the function (pgrx names the symbol <rust fn name>_wrapper, so keep a \
                     #[pg_extern] fn of that name, e.g. a thin shim over the new code) — otherwise \
                     CREATE EXTENSION {EXTENSION} VERSION '...' fails, and every existing database \
                     on that version breaks between installing the new .so and ALTER EXTENSION \
                     {EXTENSION} UPDATE. PostgreSQL said: {}",
                    script.name,
                    describe_error(&e)
                ));
            }
        }
    }
    // 0.1.0 alone binds 14 functions to Rust: finding fewer means the
    // parser above broke, not that all is well.
    assert!(
        checked >= 14,
        "found only {checked} C symbols in sql/{EXTENSION}--*.sql"
    );
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
