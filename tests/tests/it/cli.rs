//! The operator's CLI (`outbox`, the real binary) against a real database:
//! each subcommand's output (table and JSON), its filters, the dry run and
//! the refusal without `--yes`, and exit codes a script can rely on (0 done,
//! 1 the database said no, 2 usage or refused).

use crate::common::{claim, enqueue, enqueue_keyed};
use outbox_tests::{built_binary, TestDb};
use serde_json::{json, Value};
use std::process::{Command, Stdio};

pub(crate) struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn json(&self) -> Vec<Value> {
        assert_eq!(self.code, 0, "{}", self.stderr);
        serde_json::from_str::<Vec<Value>>(&self.stdout)
            .unwrap_or_else(|e| panic!("not a JSON array ({e}): {}", self.stdout))
    }
}

/// `outbox --database-url <db> args...`, stdin not a terminal.
pub(crate) async fn outbox(db: &TestDb, args: &[&str]) -> Ran {
    let url = db.connstr();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(built_binary("outbox"))
            .arg("--database-url")
            .arg(url)
            .args(args)
            .env_remove("PGSSLMODE")
            .stdin(Stdio::null())
            .output()
            .expect("run outbox");
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// Three dead letters of topic `cli.dead`; their ids.
async fn three_dead(c: &outbox_tests::tokio_postgres::Client) -> Vec<i64> {
    for n in 0..3 {
        c.execute(
            "SELECT outbox.enqueue('cli.dead', $1, max_attempts => 1)",
            &[&json!({ "n": n })],
        )
        .await
        .unwrap();
    }
    let mut ids = Vec::new();
    for m in claim(c, "cli-test", 10).await {
        let sql = "SELECT state FROM outbox.fail($1, $2, 'refused')";
        let state: String = c.query_one(sql, &[&m.id, &m.token]).await.unwrap().get(0);
        assert_eq!(state, "dead");
        ids.push(m.id);
    }
    ids
}

async fn dead_count(c: &outbox_tests::tokio_postgres::Client) -> i64 {
    let sql = "SELECT count(*) FROM outbox.dead_letters";
    c.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn stats_peek_and_blocked_keys_look_without_changing_anything() {
    let db = TestDb::new().await;
    let c = db.client().await;
    three_dead(&c).await;
    let a1 = enqueue_keyed(&c, "cli.orders", "k1", 1).await;
    enqueue_keyed(&c, "cli.orders", "k1", 2).await;
    let b1 = enqueue_keyed(&c, "cli.orders", "k2", 3).await;
    c.execute(
        "SELECT outbox.enqueue('cli.later', '{}', deliver_at => now() + interval '1 hour')",
        &[],
    )
    .await
    .unwrap();

    let stats = outbox(&db, &["stats", "--json"]).await.json();
    let row = |topic: &str| {
        let found = stats.iter().find(|s| s["topic"] == topic).cloned();
        found.unwrap_or_else(|| panic!("no {topic} in {stats:?}"))
    };
    assert_eq!(row("cli.dead")["dead"], 3);
    assert_eq!(
        (
            row("cli.orders")["ready"].clone(),
            row("cli.orders")["blocked"].clone()
        ),
        (json!(3), json!(1)),
        "ready counts the blocked one too"
    );
    assert_eq!(row("cli.later")["scheduled"], 1);
    let table = outbox(&db, &["stats"]).await;
    assert!(
        table.code == 0 && table.stdout.contains("cli.orders"),
        "{}",
        table.stdout
    );

    // The heads of their keys, due: not a2 (behind a1), not the scheduled one.
    let peeked = outbox(&db, &["peek", "--json"]).await.json();
    let ids: Vec<i64> = peeked.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![a1, b1]);
    let only = outbox(&db, &["peek", "--json", "--topic", "cli.later"])
        .await
        .json();
    assert!(only.is_empty(), "{only:?}");
    let leased = "SELECT count(*) FROM outbox.messages WHERE lease_owner IS NOT NULL";
    let n: i64 = c.query_one(leased, &[]).await.unwrap().get(0);
    assert_eq!(n, 0, "peek claimed nothing");
    // Still there for a relay: peek leased nothing.
    let mut claimed: Vec<i64> = claim(&c, "after-peek", 10)
        .await
        .iter()
        .map(|m| m.id)
        .collect();
    claimed.sort_unstable();
    assert_eq!(claimed, vec![a1, b1]);

    let blocked = outbox(&db, &["blocked-keys", "--json"]).await.json();
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(
        (blocked[0]["key"].clone(), blocked[0]["waiting"].clone()),
        (json!("k1"), json!(1))
    );
}

#[tokio::test]
async fn dead_list_filters_by_topic_time_and_limit() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let ids = three_dead(&c).await;
    enqueue(&c, "cli.alive", json!({})).await;
    let listed = |args: &'static [&'static str]| {
        let db = &db;
        async move {
            let mut all = vec!["dead", "list", "--json"];
            all.extend_from_slice(args);
            let rows = outbox(db, &all).await.json();
            rows.iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(&[]).await, ids);
    assert_eq!(
        listed(&["--topic", "cli.dead", "--limit", "1"]).await,
        ids[..1]
    );
    assert_eq!(listed(&["--topic", "cli.alive"]).await, Vec::<i64>::new());
    assert_eq!(listed(&["--since", "1h"]).await, ids);
    assert_eq!(
        listed(&["--since", "2999-01-01T00:00:00Z"]).await,
        Vec::<i64>::new()
    );
    let table = outbox(&db, &["dead", "list"]).await;
    assert!(
        table.stdout.contains("refused"),
        "last_error shown: {}",
        table.stdout
    );
    let bad = outbox(&db, &["dead", "list", "--since", "yesterday-ish"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

#[tokio::test]
async fn requeue_and_purge_dry_run_refuse_without_yes_then_change() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let ids = three_dead(&c).await;
    let first = ids[0].to_string();

    let refused = outbox(&db, &["dead", "requeue", "--id", &first]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    let dry = outbox(&db, &["dead", "requeue", "--id", &first, "--dry-run"]).await;
    assert!(
        dry.code == 0 && dry.stdout.contains("would requeue 1"),
        "{}",
        dry.stdout
    );
    assert_eq!(dead_count(&c).await, 3, "nothing changed");

    let done = outbox(&db, &["dead", "requeue", "--id", &first, "--yes", "--json"]).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    let report: Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(
        (report["done"].clone(), report["count"].clone()),
        (json!(true), json!(1))
    );
    assert_eq!(dead_count(&c).await, 2);
    assert_eq!(
        claim(&c, "after-requeue", 10).await[0].id,
        ids[0],
        "ready again"
    );

    let young = [
        "dead",
        "purge",
        "--topic",
        "cli.dead",
        "--older-than",
        "1h",
        "--yes",
    ];
    let kept = outbox(&db, &young).await;
    assert!(
        kept.code == 0 && kept.stdout.contains("nothing to purge"),
        "{}",
        kept.stdout
    );
    let purged = outbox(&db, &["dead", "purge", "--topic", "cli.dead", "--yes"]).await;
    assert!(
        purged.code == 0 && purged.stdout.contains("purged 2"),
        "{}",
        purged.stdout
    );
    assert_eq!(dead_count(&c).await, 0);
}

#[tokio::test]
async fn exit_codes_say_who_refused() {
    let db = TestDb::new().await;
    let unknown = outbox(&db, &["dead", "requeue", "--id", "999999", "--yes"]).await;
    assert_eq!(unknown.code, 1, "the database refused: {}", unknown.stderr);
    assert!(
        unknown.stderr.contains("999999 is not a dead letter"),
        "the server's message: {}",
        unknown.stderr
    );
    let both = outbox(&db, &["dead", "purge", "--id", "1", "--topic", "x"]).await;
    assert_eq!(both.code, 2, "{}", both.stderr);
    let neither = outbox(&db, &["dead", "purge"]).await;
    assert_eq!(neither.code, 2, "{}", neither.stderr);

    let run = |url: &'static str| {
        tokio::task::spawn_blocking(move || {
            Command::new(built_binary("outbox"))
                .args(["--database-url", url, "stats"])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
    };
    let bad_mode = run("host=/tmp dbname=x sslmode=sometimes").await.unwrap();
    assert_eq!(bad_mode.status.code(), Some(2), "{bad_mode:?}");
    let nowhere = run("host=/nonexistent port=1 dbname=x").await.unwrap();
    assert_eq!(nowhere.status.code(), Some(1), "{nowhere:?}");
    let said = String::from_utf8_lossy(&nowhere.stderr);
    assert!(said.contains("/nonexistent"), "says where it tried: {said}");
}
