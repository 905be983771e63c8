//! The operator's CLI on a named outbox (`outbox --outbox billing ...`):
//! every command reads and changes billing's messages and never the
//! default outbox's, and a missing or misspelt outbox is an error before
//! any command runs.

use crate::cli::outbox;
use outbox_tests::TestDb;
use serde_json::json;

#[tokio::test]
async fn every_command_works_on_the_named_outbox_only() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "SELECT outbox.create_outbox('billing');
         SELECT outbox.enqueue('orders.created', '{}', max_attempts => 1);
         SELECT outbox.enqueue('orders.created', '{}');
         SELECT outbox_billing.enqueue('invoice.sent', '{\"n\": 1}', max_attempts => 1);
         SELECT outbox_billing.enqueue('invoice.paid', '{\"n\": 2}', key => 'customer-3');",
    )
    .await
    .unwrap();
    // One dead letter in each outbox.
    for schema in ["outbox", "outbox_billing"] {
        let sql = format!(
            "SELECT {schema}.fail(id, lease_token, 'refused') FROM {schema}.claim('cli', 1)"
        );
        c.batch_execute(&sql).await.unwrap();
    }
    let billing_dead: i64 = c
        .query_one("SELECT id FROM outbox_billing.dead_letters", &[])
        .await
        .unwrap()
        .get(0);

    let stats = outbox(&db, &["--outbox", "billing", "stats", "--json"])
        .await
        .json();
    let topics: Vec<&str> = stats.iter().filter_map(|r| r["topic"].as_str()).collect();
    assert_eq!(topics, ["invoice.paid", "invoice.sent"], "{stats:?}");
    let peeked = outbox(&db, &["--outbox", "billing", "peek", "--json"])
        .await
        .json();
    assert_eq!(peeked.len(), 1, "{peeked:?}");
    assert_eq!(peeked[0]["topic"], json!("invoice.paid"));
    let listed = outbox(&db, &["--outbox", "billing", "messages", "--json"])
        .await
        .json();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let shown = outbox(
        &db,
        &[
            "--outbox",
            "billing",
            "message",
            &billing_dead.to_string(),
            "--json",
        ],
    )
    .await
    .json();
    assert_eq!(shown[0]["state"], json!("dead"), "{shown:?}");

    let dead = outbox(&db, &["--outbox", "billing", "dead", "list", "--json"])
        .await
        .json();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["id"], json!(billing_dead));
    let requeued = outbox(
        &db,
        &[
            "--outbox",
            "billing",
            "dead",
            "requeue",
            "--topic",
            "invoice.sent",
            "--yes",
        ],
    )
    .await;
    assert_eq!(requeued.code, 0, "{}", requeued.stderr);
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM outbox_billing.dead_letters").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM outbox.dead_letters").await,
        1,
        "the default outbox's dead letter stays"
    );
    let cleaned = outbox(&db, &["--outbox", "billing", "cleanup", "--json"]).await;
    assert_eq!(cleaned.code, 0, "{}", cleaned.stderr);
    // The default outbox, without --outbox, as before.
    let default = outbox(&db, &["stats", "--json"]).await.json();
    assert!(
        default
            .iter()
            .all(|r| r["topic"] == json!("orders.created")),
        "{default:?}"
    );
}

#[tokio::test]
async fn a_missing_or_misspelt_outbox_is_an_error_before_any_command() {
    let db = TestDb::new().await;
    let missing = outbox(&db, &["--outbox", "nope", "stats"]).await;
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("outbox.create_outbox('nope')"),
        "{}",
        missing.stderr
    );
    let bad = outbox(&db, &["--outbox", "Bad-Name", "stats"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--outbox"), "{}", bad.stderr);
}
