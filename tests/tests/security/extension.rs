//! The design's checklist for the extension itself: the control file keeps
//! `CREATE EXTENSION` to superusers and the schema fixed, and the install
//! and upgrade scripts never adopt an object that someone created before
//! them (`CREATE OR REPLACE` / `IF NOT EXISTS`, CVE-2022-2625) nor quote
//! `@extschema@` (CVE-2023-39417).

use crate::common::*;
use outbox_tests::{TestDb, DEFAULT_PG_BIN, EXTENSION};
use std::path::PathBuf;
use std::process::Command;

#[tokio::test]
async fn the_extension_is_untrusted_superuser_only_and_not_relocatable() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let versions = rows(
        &su,
        "SELECT version, trusted, superuser, relocatable, schema::text
         FROM pg_available_extension_versions WHERE name = $1",
        &[&EXTENSION],
    )
    .await;
    assert!(!versions.is_empty(), "no installed versions of {EXTENSION}");
    for v in versions {
        let (version, trusted, superuser, relocatable, schema): (
            String,
            bool,
            bool,
            bool,
            Option<String>,
        ) = (v.get(0), v.get(1), v.get(2), v.get(3), v.get(4));
        assert!(
            !trusted,
            "{version}: trusted = true lets non-superusers CREATE EXTENSION"
        );
        assert!(superuser, "{version}: superuser = false");
        assert!(!relocatable, "{version}: relocatable = true");
        assert_eq!(schema.as_deref(), Some("outbox"), "{version}: schema");
    }
}

/// A `CREATE OR REPLACE FUNCTION` in an update script: what it names.
struct Replacement {
    script: String,
    line: usize,
    from_version: String,
    name: String,
    args: String,
}

/// `CREATE OR REPLACE FUNCTION outbox.f(args)` starting at the beginning of
/// `code` (comment-free, possibly many lines): (name, args), or why not.
fn replaced_function(code: &str) -> Result<(String, String), String> {
    let upper = code.to_ascii_uppercase();
    let head = "CREATE OR REPLACE FUNCTION ";
    let start = upper
        .find(head)
        .filter(|_| upper.trim_start().starts_with(head))
        .ok_or("OR REPLACE is allowed only as CREATE OR REPLACE FUNCTION")?;
    let rest = &code[start + head.len()..];
    let open = rest.find('(').ok_or("no argument list")?;
    let name = rest[..open].trim().replace('"', "");
    let Some(bare) = name.strip_prefix("outbox.") else {
        return Err(format!("{name} is not qualified with schema outbox"));
    };
    let mut depth = 0;
    for (i, ch) in rest[open..].char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok((bare.to_owned(), rest[open + 1..open + i].to_owned()));
                }
            }
            _ => {}
        }
    }
    Err("unbalanced argument list".to_owned())
}

/// Whether `outbox.<name>(<args>)` (argument types as PostgreSQL parses
/// them) is a member of the extension in `su`'s database.
async fn is_extension_member(
    su: &outbox_tests::tokio_postgres::Client,
    name: &str,
    args: &str,
) -> bool {
    // PostgreSQL parses the argument list (names, defaults, VARIADIC) for a
    // throwaway function; its proargtypes are the signature to look for.
    exec(
        su,
        &format!("CREATE FUNCTION pg_temp.signature_probe({args}) RETURNS void LANGUAGE sql AS ''"),
    )
    .await;
    let member: bool = one(
        su,
        "SELECT EXISTS (
             SELECT 1 FROM pg_proc AS p
             JOIN pg_depend AS d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
             JOIN pg_extension AS e ON e.oid = d.refobjid AND e.extname = $2
             WHERE p.pronamespace = 'outbox'::regnamespace AND p.proname = $1
               AND p.proargtypes::oid[] = (SELECT q.proargtypes::oid[] FROM pg_proc AS q
                                           WHERE q.oid = 'pg_temp.signature_probe'::regproc))",
        &[&name, &EXTENSION],
    )
    .await
    .get(0);
    exec(su, "DROP FUNCTION pg_temp.signature_probe").await;
    member
}

/// CVE-2022-2625: an extension script's `CREATE OR REPLACE` or `IF NOT
/// EXISTS` would take over an object someone created first (and keep its
/// owner). Install scripts therefore only ever `CREATE`. An update script
/// may `CREATE OR REPLACE FUNCTION` one thing: a function that is already a
/// member of the extension in the version it updates from — it exists, is
/// owned by the extension's owner, and PostgreSQL (since 15.0) refuses to
/// replace a non-member from an extension script anyway. Every object an
/// update script adds must use plain `CREATE`, which fails if the name is
/// taken. This checks each replaced function against a real install of the
/// old version.
#[tokio::test]
async fn install_and_upgrade_scripts_never_replace_or_adopt_objects() {
    let out = Command::new(format!("{DEFAULT_PG_BIN}/pg_config"))
        .arg("--sharedir")
        .output()
        .expect("pg_config runs");
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("extension");
    let mut scripts = 0;
    let mut problems = Vec::new();
    let mut replacements = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some(versions) = name
            .strip_prefix(&format!("{EXTENSION}--"))
            .and_then(|n| n.strip_suffix(".sql"))
        else {
            continue;
        };
        // outbox--A--B.sql updates from A; outbox--A.sql installs A.
        let from_version = versions.split_once("--").map(|(a, _)| a.to_owned());
        scripts += 1;
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Comments may talk about what the code must not do.
        let code: Vec<String> = text
            .lines()
            .map(|line| line.split("--").next().unwrap_or_default().to_owned())
            .collect();
        for (n, line) in code.iter().enumerate() {
            let upper = line.to_ascii_uppercase();
            for bad in ["IF NOT EXISTS", "'@EXTSCHEMA@", "\"@EXTSCHEMA@"] {
                if upper.contains(bad) {
                    problems.push(format!("{name}:{}: {bad}: {}", n + 1, line.trim()));
                }
            }
            if !upper.contains("OR REPLACE") {
                continue;
            }
            let Some(from_version) = &from_version else {
                problems.push(format!(
                    "{name}:{}: OR REPLACE in an install script: {}",
                    n + 1,
                    line.trim()
                ));
                continue;
            };
            match replaced_function(&code[n..].join("\n")) {
                Ok((function, args)) => replacements.push(Replacement {
                    script: name.clone(),
                    line: n + 1,
                    from_version: from_version.clone(),
                    name: function,
                    args,
                }),
                Err(why) => problems.push(format!("{name}:{}: {why}: {}", n + 1, line.trim())),
            }
        }
    }
    assert!(scripts > 0, "no {EXTENSION}--*.sql in {}", dir.display());

    let mut from_versions: Vec<&str> = replacements
        .iter()
        .map(|r| r.from_version.as_str())
        .collect();
    from_versions.sort_unstable();
    from_versions.dedup();
    for version in from_versions {
        install_frozen_script(&dir, version);
        let db = TestDb::plain().await;
        let su = db.client().await;
        exec(
            &su,
            &format!("CREATE EXTENSION {EXTENSION} VERSION '{version}'"),
        )
        .await;
        // The control: the check can say no (same name, other arguments).
        assert!(
            !is_extension_member(&su, "enqueue", "topic text").await,
            "the membership check found a function that does not exist"
        );
        for r in replacements.iter().filter(|r| r.from_version == version) {
            if !is_extension_member(&su, &r.name, &r.args).await {
                problems.push(format!(
                    "{}:{}: CREATE OR REPLACE FUNCTION outbox.{}({}) is not a member of {EXTENSION} {version}: \
                     a new function must use plain CREATE",
                    r.script, r.line, r.name, r.args
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Put the frozen `sql/outbox--<version>.sql` into the extension directory:
/// cargo pgrx install copies only the current version's install script
/// (tests/tests/upgrade/scripts.rs says more), and this test may run before
/// the upgrade tests install it. Written aside and renamed, so a CREATE
/// EXTENSION running meanwhile never reads half a file.
fn install_frozen_script(dir: &std::path::Path, version: &str) {
    let name = format!("{EXTENSION}--{version}.sql");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sql")
        .join(&name);
    let frozen = std::fs::read(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let target = dir.join(&name);
    if std::fs::read(&target).ok().as_deref() == Some(frozen.as_slice()) {
        return;
    }
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    if let Err(e) = std::fs::write(&tmp, &frozen).and_then(|()| std::fs::rename(&tmp, &target)) {
        let _ = std::fs::remove_file(&tmp);
        panic!(
            "cannot install the frozen {name} into {}: {e}",
            dir.display()
        );
    }
}
