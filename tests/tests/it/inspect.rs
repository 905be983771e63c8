//! list_messages and get_message: every state, every filter, keyset
//! pagination across the log, the side table, the dead letters and the
//! history, and their errors.

use crate::common::*;
use outbox_tests::tokio_postgres::Client;
use outbox_tests::{quote_ident, TestDb};
use serde_json::json;
use std::collections::BTreeMap;

async fn listed(c: &Client, sql: &str) -> Vec<(i64, String)> {
    c.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|r| (r.get("id"), r.get("state")))
        .collect()
}

/// One message in each state; returns id by label.
async fn one_of_each(c: &Client) -> BTreeMap<&'static str, i64> {
    let mut ids = BTreeMap::new();
    ids.insert(
        "published",
        c.query_one(
            "SELECT outbox.enqueue('orders', '1', headers => '{\"tenant-id\": \"acme\"}')",
            &[],
        )
        .await
        .unwrap()
        .get(0),
    );
    ids.insert("retrying", enqueue_keyed(c, "orders", "k-retry", 2).await);
    ids.insert("dead", enqueue(c, "orders", json!(3)).await);
    ids.insert("leased", enqueue(c, "invoices", json!(4)).await);
    let batch = claim(c, "relay-a", 10).await;
    let by_id = |id: i64| batch.iter().find(|m| m.id == id).unwrap().clone();
    assert!(complete(c, &by_id(ids["published"])).await);
    assert_eq!(fail(c, &by_id(ids["retrying"]), "503").await, "retrying");
    let dead: String = c
        .query_one(
            "SELECT state FROM outbox.fail($1, $2, 'bad', permanent => true)",
            &[&ids["dead"], &by_id(ids["dead"]).token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dead, "dead");
    ids.insert(
        "scheduled",
        c.query_one(
            "SELECT outbox.enqueue('orders', '5', deliver_at => now() + interval '1 hour', \
             headers => '{\"tenant-id\": \"acme\", \"correlation-id\": \"flow-1\"}')",
            &[],
        )
        .await
        .unwrap()
        .get(0),
    );
    ids.insert("ready", enqueue_keyed(c, "orders", "k-ready", 6).await);
    ids
}

#[tokio::test]
async fn list_messages_shows_every_state_and_filters() {
    let db = TestDb::new().await;
    let su = db.client().await;
    su.batch_execute(&format!(
        "ALTER DATABASE {} SET outbox.retention = '1h'",
        quote_ident(db.name())
    ))
    .await
    .unwrap();
    let c = db.client().await;
    let ids = one_of_each(&c).await;
    let mut want: Vec<(i64, String)> = ids.iter().map(|(s, id)| (*id, s.to_string())).collect();
    want.sort();
    assert_eq!(
        listed(&c, "SELECT * FROM outbox.list_messages()").await,
        want
    );
    for (state, id) in &ids {
        assert_eq!(
            listed(
                &c,
                &format!("SELECT * FROM outbox.list_messages(state => '{state}')")
            )
            .await,
            [(*id, state.to_string())],
            "state => {state}"
        );
        let got = listed(&c, &format!("SELECT * FROM outbox.get_message({id})")).await;
        assert_eq!(got, [(*id, state.to_string())], "get_message({id})");
    }
    assert_eq!(
        listed(
            &c,
            "SELECT * FROM outbox.list_messages(topic => 'invoices')"
        )
        .await,
        [(ids["leased"], "leased".to_owned())]
    );
    assert_eq!(
        listed(&c, "SELECT * FROM outbox.list_messages(key => 'k-retry')").await,
        [(ids["retrying"], "retrying".to_owned())]
    );
    assert_eq!(
        listed(
            &c,
            "SELECT * FROM outbox.list_messages(tenant_id => 'acme')"
        )
        .await,
        [
            (ids["published"], "published".to_owned()),
            (ids["scheduled"], "scheduled".to_owned())
        ]
    );
    assert_eq!(
        listed(
            &c,
            "SELECT * FROM outbox.list_messages(correlation_id => 'flow-1', state => 'scheduled')"
        )
        .await,
        [(ids["scheduled"], "scheduled".to_owned())]
    );
    // The columns of each state.
    let r = c
        .query_one(
            "SELECT lease_owner, lease_expires_at IS NOT NULL, attempt FROM outbox.get_message($1)",
            &[&ids["leased"]],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            r.get::<_, Option<String>>(0),
            r.get::<_, bool>(1),
            r.get::<_, i32>(2)
        ),
        (Some("relay-a".into()), true, 1)
    );
    let r = c
        .query_one(
            "SELECT last_error, dead_reason, finished_at IS NOT NULL FROM outbox.get_message($1)",
            &[&ids["dead"]],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            r.get::<_, Option<String>>(0),
            r.get::<_, Option<String>>(1),
            r.get::<_, bool>(2)
        ),
        (Some("bad".into()), Some("permanent".into()), true)
    );
    let r = c
        .query_one(
            "SELECT last_error, deliver_at > now() FROM outbox.get_message($1)",
            &[&ids["retrying"]],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, Option<String>>(0), r.get::<_, bool>(1)),
        (Some("503".into()), true)
    );
}

/// Pages of two, with after_id => the last id seen, across the four
/// places: every message exactly once, in id order.
#[tokio::test]
async fn keyset_pages_cover_everything_once() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET outbox.retention = '1h'",
            quote_ident(db.name())
        ))
        .await
        .unwrap();
    let c = db.client().await;
    let ids = one_of_each(&c).await;
    for n in 0..5 {
        enqueue(&c, "orders", json!(n)).await;
    }
    let all = listed(&c, "SELECT * FROM outbox.list_messages(max_rows => NULL)").await;
    assert_eq!(all.len(), ids.len() + 5);
    let mut paged = Vec::new();
    let mut after = 0i64;
    loop {
        let page = listed(
            &c,
            &format!("SELECT * FROM outbox.list_messages(after_id => {after}, max_rows => 2)"),
        )
        .await;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().unwrap().0;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    let ascending = all.windows(2).all(|w| w[0].0 < w[1].0);
    assert!(ascending, "{all:?}");
}

#[tokio::test]
async fn bad_listing_arguments_are_refused() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let id = enqueue(&c, "orders", json!(1)).await;
    for (sql, code, fragment) in [
        (
            "SELECT * FROM outbox.list_messages(state => 'gone')",
            "22023",
            "not a message state",
        ),
        (
            "SELECT * FROM outbox.list_messages(max_rows => -1)",
            "22023",
            "must not be negative",
        ),
        (
            "SELECT * FROM outbox.get_message(NULL)",
            "22004",
            "id must not be NULL",
        ),
        (
            "SELECT * FROM outbox.get_message(0)",
            "P0002",
            "message 0 does not exist",
        ),
        (
            "SELECT * FROM outbox.get_message(1000)",
            "P0002",
            "message 1000 does not exist",
        ),
    ] {
        let e = c.query(sql, &[]).await.expect_err(sql);
        assert_eq!(sqlstate(&e), code, "{sql}");
        let db_error = e.as_db_error().unwrap();
        assert!(
            db_error.message().contains(fragment),
            "{sql}: {}",
            db_error.message()
        );
        assert!(db_error.hint().is_some(), "{sql}: no hint");
    }
    // Issued, published, not kept: no row, no error.
    let m = claim(&c, "relay", 1).await.remove(0);
    assert_eq!(m.id, id);
    assert!(complete(&c, &m).await);
    assert!(
        listed(&c, &format!("SELECT * FROM outbox.get_message({id})"))
            .await
            .is_empty()
    );
}
