//! The producer's library against a real database: every `Store` method on
//! a plain client and inside the caller's transaction, with the answers the
//! SQL functions give (counts, outcomes, ids) and the errors a caller can
//! match on. The relay runs the same `outbox_client::call` functions with
//! prepared statements; this is the text path.

use outbox_client::{Error, FailOutcome, LeaseToken, NewMessage, Store, Topic};
use outbox_tests::TestDb;
use serde_json::json;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

fn message(topic: &str, n: i64) -> NewMessage {
    NewMessage::new(Topic::new(topic).unwrap(), &json!({ "n": n })).unwrap()
}

#[tokio::test]
async fn enqueue_joins_the_callers_transaction() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    Store.check_extension(&c).await.unwrap();

    let tx = c.transaction().await.unwrap();
    Store.enqueue(&tx, &message("store.tx", 1)).await.unwrap();
    tx.rollback().await.unwrap();
    let tx = c.transaction().await.unwrap();
    let msg = message("store.tx", 2)
        .with_key("k")
        .with_header("trace-id", "abc");
    let id = Store.enqueue(&tx, &msg).await.unwrap();
    tx.commit().await.unwrap();

    let claim = Store
        .claim(&c, "store-test", 10, LEASE, None)
        .await
        .unwrap();
    assert!(claim.undeliverable.is_empty());
    let [m] = claim.messages.as_slice() else {
        panic!(
            "expected only the committed message, got {:?}",
            claim.messages
        );
    };
    assert_eq!(
        (m.id, m.topic.as_str(), m.key.as_deref()),
        (id, "store.tx", Some("k"))
    );
    assert_eq!(
        m.payload_as::<serde_json::Value>().unwrap(),
        json!({"n": 2})
    );
    assert_eq!(m.headers, Some(json!({"trace-id": "abc"})));
    assert_eq!(m.attempt, 1);
}

#[tokio::test]
async fn the_batch_calls_answer_how_many_the_token_held() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let topic = Topic::new("store.batch").unwrap();
    let batch: Vec<NewMessage> = (0..4).map(|n| message("store.batch", n)).collect();
    let ids = Store
        .enqueue_batch(&c, &topic, &batch, None, None)
        .await
        .unwrap();
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");

    let stats = Store.stats(&c).await.unwrap();
    let s = stats.iter().find(|s| s.topic == "store.batch").unwrap();
    assert_eq!((s.ready, s.leased), (4, 0));

    let claim = Store
        .claim(&c, "store-test", 10, LEASE, None)
        .await
        .unwrap();
    let token = claim.messages[0].lease_token;
    let claimed: Vec<i64> = claim.messages.iter().map(|m| m.id).collect();
    assert_eq!(claimed, ids);
    assert_eq!(Store.extend_batch(&c, &ids, token, LEASE).await.unwrap(), 4);
    let stranger = LeaseToken(uuid::Uuid::new_v4());
    assert_eq!(Store.complete_batch(&c, &ids, stranger).await.unwrap(), 0);
    assert_eq!(Store.complete_batch(&c, &ids[..2], token).await.unwrap(), 2);
    assert_eq!(Store.release_batch(&c, &ids[2..], token).await.unwrap(), 2);
    // Released messages come back unspent, to the next claim.
    let again = Store
        .claim(&c, "store-test", 10, LEASE, None)
        .await
        .unwrap();
    let back: Vec<(i64, i32)> = again.messages.iter().map(|m| (m.id, m.attempt)).collect();
    assert_eq!(back, vec![(ids[2], 1), (ids[3], 1)]);
    let stats = Store.stats(&c).await.unwrap();
    let s = stats.iter().find(|s| s.topic == "store.batch").unwrap();
    assert_eq!((s.ready, s.leased), (0, 2));
}

#[tokio::test]
async fn fail_reports_what_the_database_decided() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let retried = Store.enqueue(&c, &message("store.fail", 1)).await.unwrap();
    let dead = Store
        .enqueue(&c, &message("store.fail", 2).max_attempts(1))
        .await
        .unwrap();
    let claim = Store
        .claim(&c, "store-test", 10, LEASE, None)
        .await
        .unwrap();
    let token = claim.messages[0].lease_token;

    let outcome = Store
        .fail(
            &c,
            retried,
            token,
            "broker down",
            Some(Duration::from_secs(60)),
            false,
        )
        .await
        .unwrap();
    let FailOutcome::Retrying { next_attempt_at } = outcome else {
        panic!("expected a retry, got {outcome:?}");
    };
    let wait = next_attempt_at - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::seconds(50),
        "retry_in honoured: {wait}"
    );
    let outcome = Store.fail(&c, dead, token, "refused", None, false).await;
    assert_eq!(outcome.unwrap(), FailOutcome::Dead, "max_attempts 1 spent");
    let outcome = Store.fail(&c, retried, token, "again", None, false).await;
    assert_eq!(
        outcome.unwrap(),
        FailOutcome::Stale,
        "the token no longer holds it"
    );

    let s = Store.stats(&c).await.unwrap();
    let s = s.iter().find(|s| s.topic == "store.fail").unwrap();
    assert_eq!((s.scheduled, s.dead), (1, 1));
}

#[tokio::test]
async fn errors_a_caller_can_match_on() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let topic = Topic::new("store.errors").unwrap();
    let mixed = [message("store.errors", 1), message("store.other", 2)];
    let e = Store.enqueue_batch(&c, &topic, &mixed, None, None).await;
    assert!(
        matches!(&e, Err(Error::InvalidInput { message, .. }) if message.contains("store.other")),
        "{e:?}"
    );
    // The extension's own rules answer as InvalidInput too.
    let e = Store.claim(&c, "store-test", 0, LEASE, None).await;
    assert!(matches!(e, Err(Error::InvalidInput { .. })), "{e:?}");
    // What a log line shows: the server's message, SQLSTATE and hint.
    let shown = e.unwrap_err().to_string();
    assert!(
        shown.contains("(SQLSTATE 22023; hint: "),
        "message, SQLSTATE and hint: {shown}"
    );
    let e = Store
        .complete_batch(&c, &[i64::MAX], LeaseToken(uuid::Uuid::new_v4()))
        .await;
    assert!(matches!(e, Err(Error::UnknownMessage { .. })), "{e:?}");
    let shown = e.unwrap_err().to_string();
    assert!(
        shown.contains("does not exist (SQLSTATE P0002; hint: Pass an id"),
        "{shown}"
    );
    let stats = Store.stats(&c).await.unwrap();
    assert!(
        stats.iter().all(|s| s.topic != "store.errors"),
        "nothing written: {stats:?}"
    );

    let plain = TestDb::plain().await;
    let p = plain.client().await;
    let e = Store.check_extension(&p).await;
    assert!(matches!(e, Err(Error::ExtensionMissing)), "{e:?}");
    let e = Store.enqueue(&p, &message("store.errors", 3)).await;
    assert!(matches!(e, Err(Error::ExtensionMissing)), "{e:?}");
}

/// Idempotent enqueue from Rust: `with_dedup_key` and `with_dedup_window`
/// reach `outbox.enqueue` and `enqueue_batch`; a held key answers with the
/// holder's id; bad values are refused before anything is sent.
#[tokio::test]
async fn enqueue_with_a_dedup_key_answers_with_the_holder() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let first = message("store.dedup", 1)
        .with_dedup_key("order-42-created")
        .unwrap()
        .with_dedup_window(Duration::from_secs(3600))
        .unwrap();
    let id = Store.enqueue(&c, &first).await.unwrap();
    let again = message("store.dedup", 2)
        .with_dedup_key("order-42-created")
        .unwrap();
    assert_eq!(Store.enqueue(&c, &again).await.unwrap(), id);
    let held_for_an_hour: bool = c
        .query_one(
            "SELECT held_until > now() + interval '59 minutes' FROM outbox.dedup",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(held_for_an_hour, "the window reached the server");

    let topic = Topic::new("store.dedup").unwrap();
    let batch = [
        message("store.dedup", 3)
            .with_dedup_key("order-42-created")
            .unwrap(),
        message("store.dedup", 4),
        message("store.dedup", 5)
            .with_dedup_key("order-43-created")
            .unwrap(),
    ];
    let ids = Store
        .enqueue_batch(&c, &topic, &batch, None, None)
        .await
        .unwrap();
    assert_eq!(ids[0], id);
    assert!(ids[1] > id && ids[2] > ids[1], "{ids:?}");

    let mixed = [
        message("store.dedup", 6)
            .with_dedup_key("a")
            .unwrap()
            .with_dedup_window(Duration::from_secs(1))
            .unwrap(),
        message("store.dedup", 7).with_dedup_key("b").unwrap(),
    ];
    let err = Store
        .enqueue_batch(&c, &topic, &mixed, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { message, .. } if message.contains("dedup windows")),
        "{err:?}"
    );
    let err = message("store.dedup", 8).with_dedup_key("").unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let err = message("store.dedup", 9)
        .with_dedup_window(Duration::from_secs(400 * 86_400))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let n: i64 = c
        .query_one("SELECT count(*) FROM outbox.messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3, "one message per key, and the keyless one");
}

/// `Store.list_messages`, `get_message` and `cleanup`: what the SQL
/// functions answer, typed.
#[tokio::test]
async fn list_and_get_messages_from_rust() {
    use outbox_client::{MessageFilter, MessageState};
    let db = TestDb::new().await;
    let c = db.client().await;
    let a = Store
        .enqueue(&c, &message("store.list", 1).with_tenant_id("acme"))
        .await
        .unwrap();
    let b = Store.enqueue(&c, &message("store.list", 2)).await.unwrap();
    let all = Store
        .list_messages(&c, &MessageFilter::default())
        .await
        .unwrap();
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(all[0].state, MessageState::Ready);
    assert_eq!(all[0].header("tenant-id").as_deref(), Some("acme"));
    assert_eq!(all[1].payload, "{\"n\": 2}");
    let acme = Store
        .list_messages(&c, &MessageFilter::default().tenant_id("acme"))
        .await
        .unwrap();
    assert_eq!(acme.len(), 1);
    let next = Store
        .list_messages(&c, &MessageFilter::default().after(a).max_rows(10))
        .await
        .unwrap();
    assert_eq!(next.iter().map(|m| m.id).collect::<Vec<_>>(), [b]);
    let claim = Store.claim(&c, "store-test", 1, LEASE, None).await.unwrap();
    let leased = Store.get_message(&c, a).await.unwrap().unwrap();
    assert_eq!(
        (leased.state, leased.lease_owner.as_deref()),
        (MessageState::Leased, Some("store-test"))
    );
    let ids: Vec<i64> = claim.messages.iter().map(|m| m.id).collect();
    Store
        .complete_batch(&c, &ids, claim.messages[0].lease_token)
        .await
        .unwrap();
    assert!(
        Store.get_message(&c, a).await.unwrap().is_none(),
        "published, not kept"
    );
    let err = Store.get_message(&c, 9999).await.unwrap_err();
    assert!(matches!(err, Error::UnknownMessage { .. }), "{err:?}");
    assert_eq!(Store.cleanup(&c, 100).await.unwrap(), 0);
    assert!("gone".parse::<MessageState>().is_err());
}
