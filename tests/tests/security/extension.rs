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

#[test]
fn install_and_upgrade_scripts_never_replace_or_adopt_objects() {
    let out = Command::new(format!("{DEFAULT_PG_BIN}/pg_config"))
        .arg("--sharedir")
        .output()
        .expect("pg_config runs");
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("extension");
    let mut scripts = 0;
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !(name.starts_with(&format!("{EXTENSION}--")) && name.ends_with(".sql")) {
            continue;
        }
        scripts += 1;
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (n, line) in text.lines().enumerate() {
            // Comments may talk about what the code must not do.
            let code = line
                .split("--")
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            for bad in [
                "OR REPLACE",
                "IF NOT EXISTS",
                "'@EXTSCHEMA@",
                "\"@EXTSCHEMA@",
            ] {
                if code.contains(bad) {
                    problems.push(format!("{name}:{}: {bad}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(scripts > 0, "no {EXTENSION}--*.sql in {}", dir.display());
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
