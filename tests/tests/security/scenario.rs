//! The walk through every SECURITY DEFINER function that shadowing.rs runs
//! on a poisoned session: each call's result, and what it did to the tables
//! as an unpoisoned superuser session sees them.

use crate::common::*;
use outbox_tests::tokio_postgres::types::ToSql;
use outbox_tests::tokio_postgres::Client;
use serde_json::json;

/// `sql` (a check as the superuser, on an unpoisoned session) is true.
async fn check(su: &Client, what: &str, sql: &str, params: &[&(dyn ToSql + Sync)]) {
    let ok: bool = one(su, sql, params).await.get(0);
    assert!(ok, "{what}: {sql}");
}

/// Every SECURITY DEFINER function, called by `a` (whatever its session
/// has planted), does exactly what it does for anyone else. `a`'s own
/// statements contain no operators, casts or function calls but the
/// outbox's, so only the functions' internals could meet the planted objects.
pub(crate) async fn scenario(su: &Client, a: &Client) {
    // A sleeping relay, so the attacker's enqueues take the doorbell's
    // NOTIFY path too.
    exec(su, "LISTEN outbox_doorbell").await;
    assert_eq!(
        one(su, "SELECT outbox.doorbell_arm()", &[])
            .await
            .get::<_, String>(0),
        "armed"
    );
    assert_eq!(
        one(a, "SELECT outbox.doorbell_channel()", &[])
            .await
            .get::<_, String>(0),
        "outbox_doorbell"
    );

    // enqueue, enqueue_batch
    let id1: i64 = one(
        a,
        "SELECT outbox.enqueue($1, $2, key => $3, headers => $4)",
        &[&"orders", &json!({"n": 1}), &"k1", &json!({"h": "v"})],
    )
    .await
    .get(0);
    check(
        su,
        "enqueue stored the message as given, now",
        "SELECT topic = 'orders' AND key = 'k1' AND payload = '{\"n\": 1}' AND headers = '{\"h\": \"v\"}'
                AND attempt = 0 AND created_at BETWEEN now() - interval '1 minute' AND now()
                AND deliver_at = created_at AND lease_token IS NULL
         FROM outbox.messages WHERE id = $1",
        &[&id1],
    )
    .await;
    let ids: Vec<i64> = one(
        a,
        "SELECT outbox.enqueue_batch($1, $2, keys => $3)",
        &[
            &"orders",
            &vec![json!({"n": 2}), json!({"n": 3})],
            &vec!["k2", "k2"],
        ],
    )
    .await
    .get(0);
    let [id2, id3] = ids[..] else {
        panic!("enqueue_batch returned {ids:?}")
    };
    exec(su, "SELECT outbox.doorbell_disarm()").await;
    assert!(id1 < id2 && id2 < id3, "ids in order: {id1} {id2} {id3}");

    // claim, complete: per-key order holds (id3 waits behind id2).
    let batch = claim(a, "relay-a", 10).await;
    assert_eq!(
        batch.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![id1, id2],
        "claim"
    );
    let token = batch[0].token;
    assert!(
        !token.is_nil() && batch[1].token == token,
        "one fresh token per claim"
    );
    check(
        su,
        "claim leased for 30 s from now",
        "SELECT bool_and(lease_token = $2 AND lease_owner = 'relay-a' AND attempt = 1
                         AND lease_expires_at BETWEEN now() + interval '20 seconds' AND now() + interval '40 seconds')
         FROM outbox.messages WHERE id = ANY ($1)",
        &[&vec![id1, id2], &token],
    )
    .await;
    let forged: bool = one(
        a,
        "SELECT outbox.complete($1, $2)",
        &[&id1, &uuid::Uuid::nil()],
    )
    .await
    .get(0);
    assert!(!forged, "a forged token completed a message");
    let done: bool = one(a, "SELECT outbox.complete($1, $2)", &[&id1, &token])
        .await
        .get(0);
    assert!(done, "complete");
    check(
        su,
        "complete deleted it",
        "SELECT NOT EXISTS (SELECT 1 FROM outbox.messages WHERE id = $1)",
        &[&id1],
    )
    .await;

    // extend, extend_batch, release, release_batch, complete_batch
    one(
        a,
        "SELECT outbox.extend($1, $2, '1 minute')",
        &[&id2, &token],
    )
    .await;
    check(
        su,
        "extend moved the expiry",
        "SELECT lease_expires_at BETWEEN now() + interval '50 seconds' AND now() + interval '70 seconds'
         FROM outbox.messages WHERE id = $1",
        &[&id2],
    )
    .await;
    let n: i32 = one(
        a,
        "SELECT outbox.extend_batch($1, $2, '2 minutes')",
        &[&vec![id2], &token],
    )
    .await
    .get(0);
    assert_eq!(n, 1, "extend_batch");
    let released: bool = one(a, "SELECT outbox.release($1, $2)", &[&id2, &token])
        .await
        .get(0);
    assert!(released, "release");
    check(
        su,
        "release cleared the lease and gave the attempt back",
        "SELECT lease_token IS NULL AND attempt = 0 FROM outbox.messages WHERE id = $1",
        &[&id2],
    )
    .await;
    let t2 = claim(a, "relay-a", 1).await[0].token;
    let n: i32 = one(a, "SELECT outbox.release_batch($1, $2)", &[&vec![id2], &t2])
        .await
        .get(0);
    assert_eq!(n, 1, "release_batch");
    let t3 = claim(a, "relay-a", 1).await[0].token;
    let n: i32 = one(
        a,
        "SELECT outbox.complete_batch($1, $2)",
        &[&vec![id2], &t3],
    )
    .await
    .get(0);
    assert_eq!(n, 1, "complete_batch");

    // fail: a retry, then a permanent failure.
    let l = claim(a, "relay-a", 10).await;
    assert_eq!(
        l.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![id3],
        "id3 is next of its key"
    );
    let r = one(
        a,
        "SELECT * FROM outbox.fail($1, $2, $3, retry_in => '1 hour')",
        &[&id3, &l[0].token, &"broker said 503"],
    )
    .await;
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, Option<i32>>(1)),
        ("retrying".to_owned(), Some(1)),
        "fail"
    );
    check(
        su,
        "fail scheduled the retry in an hour",
        "SELECT last_error = 'broker said 503' AND lease_token IS NULL
                AND deliver_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'
         FROM outbox.messages WHERE id = $1",
        &[&id3],
    )
    .await;
    exec(
        su,
        "UPDATE outbox.side SET deliver_at = now() - interval '1 second'",
    )
    .await;
    let l = claim(a, "relay-a", 10).await;
    let r = one(
        a,
        "SELECT state FROM outbox.fail($1, $2, $3, permanent => true)",
        &[&id3, &l[0].token, &"gave up"],
    )
    .await;
    assert_eq!(r.get::<_, String>(0), "dead", "fail permanent");
    check(
        su,
        "the dead letter is as failed",
        "SELECT reason = 'permanent' AND last_error = 'gave up' AND attempts = 2 FROM outbox.dead_letters WHERE id = $1",
        &[&id3],
    )
    .await;

    // stats, blocked_keys
    let inv = enqueue_n(su, "invoices", 1).await[0];
    let id5: i64 = one(
        su,
        "SELECT outbox.enqueue('orders', '{}', key => 'kb')",
        &[],
    )
    .await
    .get(0);
    let id6: i64 = one(
        su,
        "SELECT outbox.enqueue('orders', '{}', key => 'kb')",
        &[],
    )
    .await
    .get(0);
    let stats: Vec<(String, i64, i64, i64, i64, i64)> =
        rows(a, "SELECT * FROM outbox.stats()", &[])
            .await
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect();
    assert_eq!(
        stats,
        vec![
            ("invoices".to_owned(), 1, 0, 0, 0, 0),
            ("orders".to_owned(), 2, 1, 0, 0, 1)
        ],
        "stats (topic, ready, blocked, scheduled, leased, dead)"
    );
    let blocked = rows(a, "SELECT * FROM outbox.blocked_keys()", &[]).await;
    assert_eq!(blocked.len(), 1, "blocked_keys");
    let b = &blocked[0];
    assert_eq!(
        (
            b.get::<_, String>(1),
            b.get::<_, i64>(2),
            b.get::<_, String>(3),
            b.get::<_, i64>(7)
        ),
        ("kb".to_owned(), id5, "ready".to_owned(), 1),
        "blocked_keys (key, head_id, head_state, waiting)"
    );

    // list_dead, requeue_dead, requeue_dead_topic, purge_dead, purge_dead_topic
    let dead_ids = |rows: Vec<outbox_tests::tokio_postgres::Row>| {
        rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>()
    };
    assert_eq!(
        dead_ids(rows(a, "SELECT * FROM outbox.list_dead()", &[]).await),
        vec![id3],
        "list_dead()"
    );
    assert_eq!(
        dead_ids(rows(a, "SELECT * FROM outbox.list_dead($1)", &[&"orders"]).await),
        vec![id3],
        "list_dead(orders)"
    );
    assert!(
        rows(a, "SELECT * FROM outbox.list_dead($1)", &[&"invoices"])
            .await
            .is_empty(),
        "list_dead(invoices)"
    );
    let n: i32 = one(a, "SELECT outbox.requeue_dead($1)", &[&vec![id3]])
        .await
        .get(0);
    assert_eq!(n, 1, "requeue_dead");
    check(
        su,
        "requeue_dead put it back with fresh attempts",
        "SELECT attempt = 0 AND deliver_at <= now() AND NOT EXISTS (SELECT 1 FROM outbox.dead_letters)
         FROM outbox.messages WHERE id = $1",
        &[&id3],
    )
    .await;
    // Everything claimable dies: id3, id5 and the invoice (id6 waits behind id5).
    let kill_all = || async move {
        for l in claim(a, "relay-a", 10).await {
            one(
                a,
                "SELECT state FROM outbox.fail($1, $2, 'x', permanent => true)",
                &[&l.id, &l.token],
            )
            .await;
        }
    };
    kill_all().await;
    let n: i32 = one(a, "SELECT outbox.requeue_dead_topic($1)", &[&"orders"])
        .await
        .get(0);
    assert_eq!(n, 2, "requeue_dead_topic(orders)");
    kill_all().await;
    let n: i32 = one(a, "SELECT outbox.purge_dead($1)", &[&vec![id3]])
        .await
        .get(0);
    assert_eq!(n, 1, "purge_dead");
    let n: i32 = one(
        a,
        "SELECT outbox.purge_dead_topic($1, '1 hour')",
        &[&"orders"],
    )
    .await
    .get(0);
    assert_eq!(
        n, 0,
        "purge_dead_topic(orders, 1 hour): nothing is that old"
    );
    let n: i32 = one(a, "SELECT outbox.purge_dead_topic($1)", &[&"orders"])
        .await
        .get(0);
    assert_eq!(n, 1, "purge_dead_topic(orders)");
    check(
        su,
        "what is left: the invoice dead, id6 ready",
        "SELECT (SELECT array_agg(id ORDER BY id) FROM outbox.dead_letters) = ARRAY[$1::bigint]
            AND (SELECT array_agg(id ORDER BY id) FROM outbox.messages) = ARRAY[$2::bigint]",
        &[&inv, &id6],
    )
    .await;

    // Idempotent enqueue (take, held, replace) and cleanup, on the same
    // poisoned session.
    let sql = "SELECT outbox.enqueue('orders', '{}', dedup_key => 'dk')";
    let d1: i64 = one(a, sql, &[]).await.get(0);
    let d2: i64 = one(a, sql, &[]).await.get(0);
    assert_eq!(d1, d2, "a held dedup key answers with its holder");
    // Typed parameters: the caller's own casts would meet the planted
    // domains.
    let ids: Vec<i64> = one(
        a,
        "SELECT outbox.enqueue_batch('orders', $1, dedup_keys => $2, dedup_window => '1 second')",
        &[
            &vec![serde_json::json!({}), serde_json::json!({})],
            &vec!["dk", "dk2"],
        ],
    )
    .await
    .get(0);
    assert_eq!(ids[0], d1, "enqueue_batch: held");
    let n: i64 = one(a, "SELECT outbox.cleanup()", &[]).await.get(0);
    assert_eq!(n, 0, "cleanup keeps keys whose messages are unfinished");
    let l = claim(a, "relay-a", 10).await;
    for m in &l {
        one(a, "SELECT outbox.complete($1, $2)", &[&m.id, &m.token]).await;
    }
    let d3: i64 = one(a, sql, &[]).await.get(0);
    assert!(d3 > d1, "a published holder hands its key over");
    exec(
        su,
        "UPDATE outbox.dedup SET held_until = now() - interval '1 second'",
    )
    .await;
    let n: i64 = one(a, "SELECT outbox.cleanup()", &[]).await.get(0);
    assert_eq!(n, 1, "cleanup removes dk2 (published), keeps dk (d3 waits)");

    // list_messages and get_message, on the same poisoned session.
    let listed = rows(
        a,
        "SELECT id, state FROM outbox.list_messages(max_rows => NULL)",
        &[],
    )
    .await;
    assert!(
        listed
            .iter()
            .any(|r| r.get::<_, i64>(0) == d3 && r.get::<_, String>(1) == "ready"),
        "list_messages shows the waiting message"
    );
    let dead = rows(
        a,
        "SELECT id FROM outbox.list_messages(state => $1)",
        &[&"dead"],
    )
    .await;
    assert_eq!(dead.len(), 1, "list_messages(state => dead): the invoice");
    let got = rows(a, "SELECT state FROM outbox.get_message($1)", &[&d3]).await;
    assert_eq!(got.len(), 1, "get_message");

    // The doorbell functions, on the same poisoned session.
    assert_eq!(
        one(a, "SELECT outbox.doorbell_arm()", &[])
            .await
            .get::<_, String>(0),
        "armed"
    );
    enqueue_n(su, "orders", 1).await;
    assert!(
        one(a, "SELECT outbox.doorbell_disarm()", &[])
            .await
            .get::<_, bool>(0),
        "disarm"
    );
}
