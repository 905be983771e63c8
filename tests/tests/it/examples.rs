//! The documentation runs: the README's SQL, the psql examples, and the
//! Python example (a language other than Rust driving the whole API).

use outbox_tests::TestDb;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The ```sql blocks of a Markdown file, in order.
fn sql_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sql") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn assert_psql_ok(out: &std::process::Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn readme_sql_examples_run_as_printed() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks = sql_blocks(&readme);
    assert!(blocks.len() >= 3, "README lost its SQL examples");
    // A plain database: the README starts with CREATE EXTENSION itself.
    let db = TestDb::plain().await;
    let out = db.psql(&blocks.concat()).await;
    let stdout = assert_psql_ok(&out, "README SQL");
    assert!(
        stdout.contains("retrying"),
        "the README's fail example did not retry:\n{stdout}"
    );
    let c = db.client().await;
    let left: i64 = c
        .query_one("SELECT count(*) FROM outbox.messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        left, 2,
        "order 42 completed, order 43 waiting for its retry, and the idempotent example's \
         event written once"
    );
    let deduplicated: i64 = c
        .query_one(
            "SELECT count(*) FROM outbox.messages WHERE id IN \
             (SELECT id FROM outbox.dedup WHERE dedup_key = 'order-42-created')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        deduplicated, 1,
        "the README's second enqueue with the key wrote nothing"
    );
}

#[tokio::test]
async fn psql_examples_run() {
    let dir = repo_root().join("examples/psql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let db = TestDb::new().await;
        let sql = std::fs::read_to_string(&file).unwrap();
        let out = db.psql(&sql).await;
        assert_psql_ok(&out, &file.display().to_string());
    }
}

#[tokio::test]
async fn python_example_enqueues_claims_and_completes() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let script = repo_root().join("examples/python/relay.py");
    let connstr = db.connstr();
    // Debian's python3-psycopg2 belongs to the system interpreter.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("/usr/bin/python3")
            .arg(script)
            .arg(connstr)
            .output()
            .expect("run python3")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let published: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let orders: Vec<i64> = published
        .iter()
        .map(|m| m["payload"]["order_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        orders,
        vec![1, 2, 3],
        "the rolled-back order 666 must never be published"
    );
    let left: i64 = c
        .query_one("SELECT count(*) FROM outbox.messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
