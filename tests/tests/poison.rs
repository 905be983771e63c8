//! Poison messages and the relay's hard stop (issue 8).
//!
//! - A payload travels as the text `jsonb` prints, so what
//!   `serde_json::Value` cannot hold or would round (arrays nested 300 deep,
//!   `1e400`, `99.50`, integers past 2^53) is published exactly. A row the
//!   client cannot decode (headers that are not strings, written around the
//!   extension) is dead-lettered as `undeliverable: ...`, and everything
//!   else is still published: by the real `outbox-relay` binary, and as
//!   [`Claim::undeliverable`] from [`Store::claim`].
//! - `Relay::run` returns within the shutdown grace even when a publish
//!   never returns, and leaves nothing of itself running; a batch that
//!   finishes within the grace is still settled.

use outbox_client::{Claim, FailOutcome, Message, Store};
use outbox_relay::{Delivery, Publisher, Relay, RelayConfig};
use outbox_tests::tokio_postgres::Client;
use outbox_tests::{wait_until, RelayProcess, TestDb, SUPERUSER};
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(30);
const TOPIC: &str = "poison.demo";
/// Valid jsonb, deeper than serde_json::Value's recursion limit (128).
const DEEP: &str = "(repeat('[', 300) || repeat(']', 300))::jsonb";
/// Valid jsonb (numeric), out of range for serde_json::Value (f64).
const HUGE: &str = "'{\"amount\": 1e400}'::jsonb";

async fn enqueue(c: &Client, payload_sql: &str, key: Option<&str>) -> i64 {
    c.query_one(
        &format!("SELECT outbox.enqueue($1, {payload_sql}, key => $2)"),
        &[&TOPIC, &key],
    )
    .await
    .unwrap()
    .get(0)
}

async fn enqueue_good(c: &Client, n: i64, key: Option<&str>) -> i64 {
    c.query_one(
        "SELECT outbox.enqueue($1, $2, key => $3)",
        &[&TOPIC, &json!({ "n": n }), &key],
    )
    .await
    .unwrap()
    .get(0)
}

/// (id, reason, last_error) of every dead letter, by id.
async fn dead_letters(c: &Client) -> Vec<(i64, String, String)> {
    c.query(
        "SELECT id, reason, last_error FROM outbox.dead_letters ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

async fn count(c: &Client, sql: &str, app: &str) -> i64 {
    c.query_one(sql, &[&app]).await.unwrap().get(0)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Valid JSON that `serde_json::Value` would change: a decimal's trailing
/// zero and an integer beyond f64's 53 bits.
const EXACT: &str = "'{\"n\": 12345678901234567890123, \"total\": 99.50}'::jsonb";

/// Factory: headers the extension refuses at enqueue, written around it.
async fn break_headers(c: &Client, id: i64) {
    c.execute(
        "UPDATE outbox.log SET headers = '{\"n\": 1}' WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
}

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

/// Sets its flag when dropped: proof that a future holding it is gone.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A publisher whose publish never returns.
struct Hangs {
    started: Arc<Notify>,
    dropped: Arc<AtomicBool>,
}

impl Publisher for Hangs {
    async fn publish(&self, _batch: &[Message]) -> Vec<Delivery> {
        let _flag = DropFlag(self.dropped.clone());
        self.started.notify_one();
        std::future::pending().await
    }
}

/// A publisher that acknowledges once it is let go.
struct Gate {
    started: Arc<Notify>,
    release: Arc<Notify>,
}

impl Publisher for Gate {
    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        self.started.notify_one();
        self.release.notified().await;
        vec![Delivery::Acked; batch.len()]
    }
}

fn relay_config(db: &TestDb, app: &str, grace: Duration) -> RelayConfig {
    let mut pg = db.config(SUPERUSER);
    pg.application_name(app);
    let mut config = RelayConfig::new(pg);
    config.concurrency = 1;
    config.shutdown_grace = grace;
    config
}

const SESSIONS: &str = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1";

#[tokio::test]
async fn hard_phase_aborts_a_publish_that_never_returns() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let id = enqueue_good(&c, 1, None).await;
    let app = format!("{}-hard-stop", db.name());
    let grace = Duration::from_millis(1500);
    let mut config = relay_config(&db, &app, grace);
    let metrics = format!("127.0.0.1:{}", free_port());
    config.metrics_addr = Some(metrics.parse().unwrap());
    let started = Arc::new(Notify::new());
    let dropped = Arc::new(AtomicBool::new(false));
    let publisher = Hangs {
        started: started.clone(),
        dropped: dropped.clone(),
    };
    let relay = Relay::new(config, publisher).unwrap();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(relay.run(shutdown.clone()));

    tokio::time::timeout(PATIENCE, started.notified())
        .await
        .expect("the publisher is called");
    // Worker, doorbell and metrics poller are connected.
    wait_until(PATIENCE, || async { count(&c, SESSIONS, &app).await >= 2 }).await;
    let cancelled = Instant::now();
    shutdown.cancel();
    let result = tokio::time::timeout(grace + Duration::from_secs(5), run)
        .await
        .expect("Relay::run returns after the grace")
        .expect("Relay::run does not panic");
    let took = cancelled.elapsed();
    eprintln!("Relay::run returned {took:?} after cancellation (grace {grace:?})");
    assert!(result.is_ok(), "{result:?}");
    assert!(
        took >= grace,
        "returned after {took:?}, before the grace of {grace:?}"
    );
    assert!(
        took < grace + Duration::from_secs(1),
        "returned {took:?} after cancellation, the grace is {grace:?}"
    );

    // Nothing of the relay is left: the hanging publish was dropped, the
    // metrics server is gone, and its sessions end (the server notices
    // the closed connections a moment later).
    assert!(
        dropped.load(Ordering::SeqCst),
        "the publish future is still alive"
    );
    assert!(
        tokio::net::TcpStream::connect(&metrics).await.is_err(),
        "the metrics server still accepts connections"
    );
    wait_until(Duration::from_secs(5), || async {
        count(&c, SESSIONS, &app).await == 0
    })
    .await;
    // The message was neither completed nor released: its lease runs out
    // and it is delivered again.
    let row = c
        .query_one(
            "SELECT attempt, lease_token IS NOT NULL FROM outbox.messages WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, bool>(1)), (1, true));
}

#[tokio::test]
async fn soft_phase_settles_a_batch_that_finishes_within_the_grace() {
    let db = TestDb::new().await;
    let c = db.client().await;
    for n in 0..3 {
        enqueue_good(&c, n, None).await;
    }
    let app = format!("{}-soft-stop", db.name());
    let config = relay_config(&db, &app, Duration::from_secs(20));
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let publisher = Gate {
        started: started.clone(),
        release: release.clone(),
    };
    let relay = Relay::new(config, publisher).unwrap();
    let stats = relay.stats();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(relay.run(shutdown.clone()));

    tokio::time::timeout(PATIENCE, started.notified())
        .await
        .expect("the publisher is called");
    shutdown.cancel();
    release.notify_one(); // the broker answers during the soft phase
    let result = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("Relay::run returns")
        .expect("Relay::run does not panic");
    assert!(result.is_ok(), "{result:?}");
    let (published, failed, dead, released, _) = stats.snapshot();
    assert_eq!((published, failed, dead, released), (3, 0, 0, 0));
    let left: i64 = c
        .query_one("SELECT count(*) FROM outbox.messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the batch was completed");
    wait_until(Duration::from_secs(5), || async {
        count(&c, SESSIONS, &app).await == 0
    })
    .await;
}

/// A publisher that panics on any batch holding a `{"poison": true}` payload.
struct PanicsOnPoison;

impl Publisher for PanicsOnPoison {
    async fn publish(&self, batch: &[Message]) -> Vec<Delivery> {
        if batch.iter().any(|m| {
            m.payload_as::<serde_json::Value>()
                .is_ok_and(|p| p["poison"] == json!(true))
        }) {
            panic!("poison!");
        }
        vec![Delivery::Acked; batch.len()]
    }
}

#[tokio::test]
async fn a_panicking_publisher_costs_only_the_message_it_panicked_on() {
    let db = TestDb::new().await;
    let c = db.client().await;
    for n in 0..3 {
        enqueue_good(&c, n, None).await;
    }
    let poison: i64 = c
        .query_one(
            "SELECT outbox.enqueue($1, '{\"poison\": true}', max_attempts => 1)",
            &[&TOPIC],
        )
        .await
        .unwrap()
        .get(0);
    let app = format!("{}-panics", db.name());
    let relay = Relay::new(
        relay_config(&db, &app, Duration::from_secs(5)),
        PanicsOnPoison,
    )
    .unwrap();
    let stats = relay.stats();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(relay.run(shutdown.clone()));

    wait_until(PATIENCE, || async { dead_letters(&c).await.len() == 1 }).await;
    let dead = dead_letters(&c).await;
    assert_eq!(dead[0].0, poison);
    assert_eq!(dead[0].1, "max_attempts");
    assert!(
        dead[0]
            .2
            .starts_with("the publisher panicked on this message: poison!"),
        "{}",
        dead[0].2
    );
    wait_until(PATIENCE, || async {
        stats.published.load(Ordering::Relaxed) == 3
    })
    .await;
    shutdown.cancel();
    let result = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("Relay::run returns")
        .expect("Relay::run does not panic");
    assert!(result.is_ok(), "{result:?}");
}
