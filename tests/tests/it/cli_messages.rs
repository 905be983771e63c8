//! `outbox messages`, `outbox message ID` and `outbox cleanup` (the real
//! binary): the listing's filters and pages, one message with its payload,
//! the exit codes, and the housekeeping call.

use crate::cli::outbox;
use crate::common::{claim, complete, enqueue};
use outbox_tests::{quote_ident, TestDb};
use serde_json::json;

#[tokio::test]
async fn messages_and_message_show_every_state_and_page_on() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(&format!(
        "ALTER DATABASE {} SET outbox.retention = '1h'",
        quote_ident(db.name())
    ))
    .await
    .unwrap();
    let c = db.client().await;
    let published = enqueue(&c, "cli.orders", json!({"n": 1})).await;
    let m = claim(&c, "cli-relay", 10).await.remove(0);
    assert!(complete(&c, &m).await);
    let ready: i64 = c
        .query_one(
            "SELECT outbox.enqueue('cli.orders', '{\"n\": 2}', headers => '{\"tenant-id\": \"acme\"}')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let other = enqueue(&c, "cli.invoices", json!({"n": 3})).await;

    let all = outbox(&db, &["--json", "messages"]).await.json();
    let states: Vec<(i64, String)> = all
        .iter()
        .map(|m| {
            (
                m["id"].as_i64().unwrap(),
                m["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (published, "published".to_owned()),
            (ready, "ready".to_owned()),
            (other, "ready".to_owned())
        ]
    );
    assert_eq!(
        all[0]["lease_owner"],
        json!("cli-relay"),
        "who published it"
    );
    let acme = outbox(&db, &["--json", "messages", "--tenant-id", "acme"])
        .await
        .json();
    assert_eq!(acme.len(), 1);
    assert_eq!(acme[0]["id"], json!(ready));
    let page = outbox(
        &db,
        &[
            "--json",
            "messages",
            "--after",
            &published.to_string(),
            "--limit",
            "1",
        ],
    )
    .await
    .json();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], json!(ready));
    let table = outbox(&db, &["messages", "--topic", "cli.invoices"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("cli.invoices") && !table.stdout.contains("cli.orders"),
        "{}",
        table.stdout
    );

    let one = outbox(&db, &["--json", "message", &ready.to_string()])
        .await
        .json();
    assert_eq!(
        one[0]["payload"],
        json!("{\"n\": 2}"),
        "the payload as stored"
    );
    let bad = outbox(&db, &["messages", "--state", "gone"]).await;
    assert_eq!(
        bad.code, 2,
        "a state that is not one is a usage error: {}",
        bad.stderr
    );
    let unknown = outbox(&db, &["message", "999999"]).await;
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("message 999999 does not exist"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn cleanup_removes_until_nothing_is_left() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let keys: Vec<String> = (0..25).map(|n| format!("k{n}")).collect();
    let payloads: Vec<serde_json::Value> = keys.iter().map(|_| json!(1)).collect();
    c.execute(
        "SELECT outbox.enqueue_batch('cli.orders', $1, dedup_keys => $2)",
        &[&payloads, &keys],
    )
    .await
    .unwrap();
    for m in claim(&c, "cli-relay", 100).await {
        assert!(complete(&c, &m).await);
    }
    let ran = outbox(&db, &["--json", "cleanup", "--max-rows", "10"])
        .await
        .json();
    assert_eq!(ran[0]["removed"], json!(25), "three calls of at most 10");
    let n: i64 = c
        .query_one("SELECT count(*) FROM outbox.dedup", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let usage = outbox(&db, &["cleanup", "--max-rows", "0"]).await;
    assert_eq!(usage.code, 2, "{}", usage.stderr);
}
