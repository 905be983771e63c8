//! What one producer can learn about other producers' messages, and do to
//! them: each claim of docs/sql-api.md's "What a producer can see" section,
//! tested. The short version: no content, ever; volume and timing, yes.

use crate::common::*;
use futures_util::StreamExt;
use outbox_tests::tokio_postgres::{AsyncMessage, Client, NoTls, Notification};
use outbox_tests::{wait_until, TestDb};
use serde_json::json;
use std::time::Duration;
use tokio::sync::mpsc;

/// An upper bound on waiting for something that must happen.
const MUST_HAPPEN: Duration = Duration::from_secs(30);

async fn pid(c: &Client) -> i32 {
    one(c, "SELECT pg_backend_pid()", &[]).await.get(0)
}

#[tokio::test]
async fn a_producer_cannot_read_count_or_claim_any_message_not_even_its_own() {
    let db = TestDb::new().await;
    let roles = Roles::create(&db).await;
    let p = db.client_as(roles.name(Role::Producer)).await;
    let id: i64 = one(
        &p,
        "SELECT outbox.enqueue('orders', '{\"secret\": 1}')",
        &[],
    )
    .await
    .get(0);
    for sql in [
        format!("SELECT payload FROM outbox.messages WHERE id = {id}"),
        // The tables behind the view: the log (and each segment, where the
        // message really is), the side table, the windows and leases.
        format!("SELECT payload FROM outbox.log WHERE id = {id}"),
        format!("SELECT payload FROM outbox.log_0 WHERE id = {id}"),
        format!("SELECT payload FROM outbox.log_1 WHERE id = {id}"),
        format!("SELECT payload FROM outbox.log_2 WHERE id = {id}"),
        "SELECT count(*) FROM outbox.side".to_owned(),
        "SELECT count(*) FROM outbox.partitions".to_owned(),
        "SELECT count(*) FROM outbox.segments".to_owned(),
        "SELECT count(*) FROM outbox.dead_letters".to_owned(),
        "SELECT count(*) FROM outbox.doorbell_gate".to_owned(),
        "SELECT * FROM outbox.claim('p', 1)".to_owned(),
        "SELECT * FROM outbox.stats()".to_owned(),
        "SELECT * FROM outbox.blocked_keys()".to_owned(),
        "SELECT * FROM outbox.list_dead()".to_owned(),
        format!("SELECT outbox.complete({id}, gen_random_uuid())"),
        format!("SELECT * FROM outbox.fail({id}, gen_random_uuid(), 'x')"),
        format!("SELECT outbox.release({id}, gen_random_uuid())"),
        format!("SELECT outbox.extend({id}, gen_random_uuid())"),
        format!("SELECT outbox.requeue_dead(ARRAY[{id}]::bigint[])"),
        "SELECT outbox.doorbell_arm()".to_owned(),
        "SELECT * FROM outbox.rotate()".to_owned(),
        "SELECT outbox._rotate()".to_owned(),
        "SELECT outbox._next_xid()".to_owned(),
        // The id sequence: not even currval after its own enqueue; nor the
        // current segment's.
        "SELECT currval('outbox.message_id')".to_owned(),
        "SELECT nextval('outbox.message_id')".to_owned(),
        "SELECT pg_sequence_last_value('outbox.message_id')".to_owned(),
        "SELECT currval('outbox.log_segment')".to_owned(),
        "SELECT nextval('outbox.log_segment')".to_owned(),
        "SELECT pg_sequence_last_value('outbox.log_segment')".to_owned(),
    ] {
        expect_code(&p, &sql, DENIED).await;
    }
    let last: Vec<(String, Option<i64>)> = rows(
        &p,
        "SELECT sequencename::text, last_value FROM pg_sequences WHERE schemaname = 'outbox' ORDER BY 1",
        &[],
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(
        last,
        [
            ("log_segment".to_owned(), None),
            ("message_id".to_owned(), None)
        ],
        "pg_sequences shows the last id only to roles with a privilege on it"
    );
}

#[tokio::test]
async fn ids_tell_a_producer_how_many_messages_others_enqueued_in_between() {
    let db = TestDb::new().await;
    let roles = Roles::create(&db).await;
    let a = db.client_as(roles.name(Role::Producer)).await;
    let b = db.client_as(roles.name(Role::Producer)).await;
    let first: i64 = one(&a, "SELECT outbox.enqueue('orders', '{}')", &[])
        .await
        .get(0);
    exec(&b, "SELECT outbox.enqueue('orders', '{}'); SELECT outbox.enqueue_batch('orders', ARRAY['1']::jsonb[])").await;
    // Rolled back: its id is spent all the same.
    exec(&b, "BEGIN; SELECT outbox.enqueue('orders', '{}'); ROLLBACK").await;
    let second: i64 = one(&a, "SELECT outbox.enqueue('orders', '{}')", &[])
        .await
        .get(0);
    assert_eq!(
        second - first,
        4,
        "the gap counts the other producer's enqueues, rolled back ones too"
    );
}

/// The log segment (`outbox.log_N`) that message `id` is stored in.
async fn segment_of(su: &Client, id: i64) -> String {
    one(
        su,
        "SELECT tableoid::regclass::text FROM outbox.log WHERE id = $1",
        &[&id],
    )
    .await
    .get(0)
}

#[tokio::test]
async fn statistics_show_a_producer_volume_and_size_but_no_values() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let p = db.client_as(roles.name(Role::Producer)).await;
    let relay = db.client_as(roles.name(Role::Relay)).await;
    // 40 messages in the log; a claim moves the 20 scheduled ones (enqueued
    // first, so it meets them first whatever partitions the keys hash to)
    // to the side table: both places hold topics, keys and payloads.
    exec(
        &su,
        "SELECT outbox.enqueue('secret-later', '{\"secret\": 2}', key => 'secret-later-key',
                               deliver_at => now() + interval '1 day')
         FROM generate_series(1, 20)",
    )
    .await;
    let first: i64 = one(
        &su,
        "SELECT min(outbox.enqueue('secret-topic', '{\"secret\": 1}', key => 'secret-key'))
         FROM generate_series(1, 20)",
        &[],
    )
    .await
    .get(0);
    wait_until(MUST_HAPPEN, || async {
        exec(&su, "SELECT * FROM outbox.claim('stats', 1)").await;
        one(&su, "SELECT count(*) FROM outbox.side", &[])
            .await
            .get::<_, i64>(0)
            == 20
    })
    .await;
    exec(&su, "ANALYZE outbox.log, outbox.side").await;
    let segment = segment_of(&su, first).await;
    for (table, inserted) in [(segment.as_str(), 20), ("outbox.side", 20)] {
        // Cumulative statistics are readable by everyone (PostgreSQL's
        // pg_stat_* views); they arrive within a few seconds of the commit.
        wait_until(MUST_HAPPEN, || async {
            let r = one(
                &p,
                "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = $1::text::regclass",
                &[&table],
            )
            .await;
            r.get::<_, i64>(0) >= inserted
        })
        .await;
        let size: i64 = one(&p, "SELECT pg_relation_size($1::text::regclass)", &[&table])
            .await
            .get(0);
        assert!(size > 0, "pg_relation_size({table}) works for a producer");
    }
    let tuples: f32 = one(
        &p,
        "SELECT reltuples FROM pg_class WHERE oid = $1::text::regclass",
        &[&segment],
    )
    .await
    .get(0);
    assert_eq!(
        tuples, 40.0,
        "pg_class.reltuples of {segment} is the row count at the last ANALYZE"
    );
    // Column statistics (most common topics, keys and payloads) are
    // filtered by column privilege: the superuser sees them, for the log,
    // its segment and the side table; a producer and a relay see none.
    let sql = "SELECT count(*) FROM pg_stats WHERE schemaname = 'outbox' AND tablename = $1";
    for table in ["log", segment.trim_start_matches("outbox."), "side"] {
        assert!(
            one(&su, sql, &[&table]).await.get::<_, i64>(0) > 0,
            "ANALYZE made column statistics of outbox.{table}"
        );
    }
    let leak = "SELECT count(*) FROM pg_stats WHERE schemaname = 'outbox'
                   OR most_common_vals::text ~ 'secret-(key|later|topic)'
                   OR histogram_bounds::text ~ 'secret-(key|later|topic)'";
    for (who, c) in [("a producer", &p), ("a relay", &relay)] {
        assert_eq!(
            one(c, leak, &[]).await.get::<_, i64>(0),
            0,
            "{who} sees no column statistics"
        );
    }
}

#[tokio::test]
async fn a_producer_sees_other_sessions_and_their_locks_but_not_their_statements() {
    let db = TestDb::new().await;
    let roles = Roles::create(&db).await;
    let relay_role = roles.name(Role::Relay);
    let relay = db.client_as(relay_role).await;
    let other = db.client_as(roles.name(Role::Producer)).await;
    let p = db.client_as(roles.name(Role::Producer)).await;
    let su = db.client().await;

    exec(&relay, "SELECT * FROM outbox.claim('owner-secret-xyz', 1)").await;
    let needle = "%owner-secret-xyz%";
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1";
    assert_eq!(
        one(&su, sql, &[&needle]).await.get::<_, i64>(0),
        1,
        "the superuser sees the statement"
    );
    assert_eq!(
        one(&p, sql, &[&needle]).await.get::<_, i64>(0),
        0,
        "a producer does not"
    );
    let r = one(
        &p,
        "SELECT count(*), min(query) FROM pg_stat_activity WHERE usename = $1 AND datname = current_database()",
        &[&relay_role],
    )
    .await;
    assert_eq!(
        (r.get::<_, i64>(0), r.get::<_, Option<String>>(1).as_deref()),
        (1, Some("<insufficient privilege>")),
        "a producer sees that the relay is connected, not what it runs"
    );

    // pg_locks is readable by everyone: a sleeping relay shows as a SHARE
    // lock on the gate, an open enqueue as a ROW EXCLUSIVE lock on the table.
    assert_eq!(
        one(&relay, "SELECT outbox.doorbell_arm()", &[])
            .await
            .get::<_, String>(0),
        "armed"
    );
    exec(&other, "BEGIN; SELECT outbox.enqueue('orders', '{}')").await;
    let other_pid = pid(&other).await;
    let lock = "SELECT array_agg(pid ORDER BY pid) FROM pg_locks
                WHERE locktype = 'relation' AND granted AND relation = $1::text::regclass AND mode = $2
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let sleeping: Option<Vec<i32>> = one(&p, lock, &[&"outbox.doorbell_gate", &"ShareLock"])
        .await
        .get(0);
    assert_eq!(sleeping, Some(vec![pid(&relay).await]), "the armed relay");
    // The log and the segment the enqueue writes (outbox.messages is a view
    // now; nothing locks it).
    let segment: String = one(
        &su,
        "SELECT 'outbox.log_' || (last_value % 3) FROM outbox.log_segment",
        &[],
    )
    .await
    .get(0);
    for table in ["outbox.log", segment.as_str()] {
        let writing: Option<Vec<i32>> = one(&p, lock, &[&table, &"RowExclusiveLock"]).await.get(0);
        assert_eq!(
            writing,
            Some(vec![other_pid]),
            "the open enqueue, on {table}"
        );
    }
    exec(&other, "ROLLBACK").await;
    assert!(one(&relay, "SELECT outbox.doorbell_disarm()", &[])
        .await
        .get::<_, bool>(0));
}

/// A connection as `role` whose notifications arrive on a channel.
async fn listener(db: &TestDb, role: &str) -> (Client, mpsc::UnboundedReceiver<Notification>) {
    let (client, mut conn) = db
        .config(role)
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect as {role}: {}", outbox_tests::describe_error(&e)));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                if tx.send(n).is_err() {
                    break;
                }
            }
        }
    });
    exec(&client, "LISTEN outbox_doorbell").await;
    (client, rx)
}

#[tokio::test]
async fn the_doorbell_tells_a_listening_producer_who_enqueued_but_nothing_more() {
    let db = TestDb::new().await;
    let roles = Roles::create(&db).await;
    let relay = db.client_as(roles.name(Role::Relay)).await;
    let a = db.client_as(roles.name(Role::Producer)).await;
    let (_b, mut rx) = listener(&db, roles.name(Role::Producer)).await;
    assert_eq!(
        one(&relay, "SELECT outbox.doorbell_arm()", &[])
            .await
            .get::<_, String>(0),
        "armed"
    );
    one(
        &a,
        "SELECT outbox.enqueue('orders', $1, key => 'order-1')",
        &[&json!({"secret": 1})],
    )
    .await;
    let n = tokio::time::timeout(MUST_HAPPEN, rx.recv())
        .await
        .expect("the doorbell rang")
        .expect("listener open");
    assert_eq!(n.channel(), "outbox_doorbell");
    assert_eq!(n.payload(), "", "no data in the notification");
    assert_eq!(
        n.process_id(),
        pid(&a).await,
        "but the sender's backend pid"
    );
    assert!(one(&relay, "SELECT outbox.doorbell_disarm()", &[])
        .await
        .get::<_, bool>(0));
}

/// NOTIFY needs no privilege either: any role, one with no outbox grant at
/// all, can ring the doorbell and wake sleeping relays for nothing. Relays
/// treat a notification as a hint (claim, find nothing, sleep again).
#[tokio::test]
async fn any_role_can_ring_the_doorbell() {
    let db = TestDb::new().await;
    let roles = Roles::create(&db).await;
    let (_relay, mut rx) = listener(&db, roles.name(Role::Relay)).await;
    let nobody = db.client_as(roles.name(Role::Public)).await;
    exec(&nobody, "NOTIFY outbox_doorbell").await;
    let n = tokio::time::timeout(MUST_HAPPEN, rx.recv())
        .await
        .expect("the doorbell rang")
        .expect("listener open");
    assert_eq!(n.process_id(), pid(&nobody).await);
}

#[tokio::test]
async fn enqueue_never_waits_for_another_producers_transaction() {
    let db = TestDb::new().await;
    let roles = Roles::create(&db).await;
    let a = db.client_as(roles.name(Role::Producer)).await;
    let b = db.client_as(roles.name(Role::Producer)).await;
    exec(
        &a,
        "BEGIN; SELECT outbox.enqueue('orders', '{}', key => 'order-1')",
    )
    .await;
    // A lock wait would fail with 55P03 instead of returning.
    exec(
        &b,
        "SET lock_timeout = '100ms'; SELECT outbox.enqueue('orders', '{}', key => 'order-1');
         SELECT outbox.enqueue_batch('orders', ARRAY['1', '2']::jsonb[], keys => ARRAY['order-1', 'order-1'])",
    )
    .await;
    exec(&a, "COMMIT").await;
}

/// Keys are global, not per topic or per producer: a producer that uses
/// another's key with a deliver_at far ahead holds back that key's younger
/// messages until its own is delivered (or dead). Only a relay or admin sees
/// it, in blocked_keys() and stats().blocked.
#[tokio::test]
async fn a_producer_can_hold_back_younger_messages_of_a_key_it_shares() {
    let db = TestDb::new().await;
    let su = db.client().await;
    let roles = Roles::create(&db).await;
    let mallory = db.client_as(roles.name(Role::Producer)).await;
    let alice = db.client_as(roles.name(Role::Producer)).await;
    let relay = db.client_as(roles.name(Role::Relay)).await;
    exec(
        &mallory,
        "SELECT outbox.enqueue('spam', '{}', key => 'order-7', deliver_at => now() + interval '30 days')",
    )
    .await;
    let held: i64 = one(
        &alice,
        "SELECT outbox.enqueue('orders', '{}', key => 'order-7')",
        &[],
    )
    .await
    .get(0);
    assert!(
        claim(&relay, "relay", 10).await.is_empty(),
        "alice's message is held back"
    );
    let head: i64 = one(
        &su,
        "SELECT head_id FROM outbox.blocked_keys() WHERE key = 'order-7'",
        &[],
    )
    .await
    .get(0);
    assert!(head < held, "blocked_keys names the head holding it");
}
