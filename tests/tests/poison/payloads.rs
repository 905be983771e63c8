//! Payloads travel exactly; an undecodable row is dead-lettered, by the
//! binary and through `Store::claim`.

use super::*;
use outbox_client::{Claim, FailOutcome, Store};
use outbox_tests::{wait_until, RelayProcess, TestDb};
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn payloads_travel_exactly_and_an_undecodable_row_is_dead_lettered() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let mut good = HashSet::new();
    for n in 0..3 {
        good.insert(enqueue_good(&c, n, None).await);
    }
    // What serde_json::Value refuses or rounds: published as jsonb prints it.
    for payload in [DEEP, HUGE, EXACT] {
        good.insert(enqueue(&c, payload, None).await);
    }
    let bad_headers = enqueue_good(&c, 50, None).await;
    break_headers(&c, bad_headers).await;
    // A poison head of a key, and its younger sibling behind it.
    let keyed_poison = enqueue_good(&c, 51, Some("order-7")).await;
    break_headers(&c, keyed_poison).await;
    let sibling = enqueue_good(&c, 100, Some("order-7")).await;
    good.insert(sibling);
    for n in 3..6 {
        good.insert(enqueue_good(&c, n, None).await);
    }
    let poison = [bad_headers, keyed_poison];

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut relay = RelayProcess::start(&db, &["--metrics-addr", &addr]);
    wait_until(PATIENCE, || async {
        good.iter().all(|id| relay.ids().contains(id))
            && dead_letters(&c).await.len() == poison.len()
    })
    .await;

    let published = relay.ids();
    for id in poison {
        assert!(
            !published.contains(&id),
            "poison message {id} reached the publisher"
        );
    }
    let lines = relay.lines().join("\n");
    for exact in [
        "12345678901234567890123",
        "99.50",
        &format!("1{}", "0".repeat(400)),
        &"[".repeat(300),
    ] {
        assert!(lines.contains(exact), "{exact} not published as written");
    }
    let dead = dead_letters(&c).await;
    assert_eq!(dead.iter().map(|d| d.0).collect::<Vec<_>>(), poison);
    for (id, reason, last_error) in &dead {
        assert_eq!(reason, "permanent", "dead letter {id}");
        assert_eq!(
            last_error, "undeliverable: headers: a header value is not a string",
            "dead letter {id}"
        );
    }

    // Still running, healthy, and relaying.
    assert!(
        relay.child.try_wait().unwrap().is_none(),
        "relay exited:\n{}",
        relay.log()
    );
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let late = enqueue_good(&c, 999, Some("order-7")).await;
    wait_until(PATIENCE, || async { relay.ids().contains(&late) }).await;
    let left: i64 = c
        .query_one("SELECT count(*) FROM outbox.messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "everything was published or dead-lettered");
    assert!(!relay.log().contains("panicked"), "{}", relay.log());

    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{status}:\n{log}");
}

#[tokio::test]
async fn store_claim_returns_undecodable_rows_as_undeliverable() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let first = enqueue_good(&c, 1, None).await;
    let deep = enqueue(&c, DEEP, None).await;
    let huge = enqueue(&c, HUGE, None).await;
    let headed = enqueue_good(&c, 2, None).await;
    let last = enqueue_good(&c, 3, None).await;
    break_headers(&c, headed).await;

    let claim: Claim = Store
        .claim(&c, "poison-test", 10, Duration::from_secs(30), None)
        .await
        .unwrap();
    assert_eq!(claim.len(), 5);
    let ids: Vec<i64> = claim.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, [first, deep, huge, last]);
    // The payload is the text jsonb prints (numeric writes 1e400 out).
    assert_eq!(
        claim.messages[2].payload.get(),
        format!("{{\"amount\": 1{}}}", "0".repeat(400))
    );
    assert!(claim.messages[1]
        .payload
        .get()
        .starts_with(&"[".repeat(300)));
    let bad: Vec<(i64, &str)> = claim
        .undeliverable
        .iter()
        .map(|u| (u.id, u.reason.as_str()))
        .collect();
    assert_eq!(bad, [(headed, "headers: a header value is not a string")]);
    let token = claim.messages[0].lease_token;
    for u in &claim.undeliverable {
        assert_eq!(u.lease_token, token, "one token per claim");
        assert_eq!(u.topic.as_deref(), Some(TOPIC));
        assert_eq!(u.error(), format!("undeliverable: {}", u.reason));
        let outcome = Store
            .fail(&c, u.id, u.lease_token, &u.error(), None, true)
            .await
            .unwrap();
        assert_eq!(outcome, FailOutcome::Dead);
    }
    let dead = dead_letters(&c).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1, "permanent");
    assert!(dead[0].2.starts_with("undeliverable: "), "{}", dead[0].2);
    assert_eq!(Store.complete_batch(&c, &ids, token).await.unwrap(), 4);
}
