//! `Relay::run` returns within the shutdown grace, even when a publish never
//! returns; a batch that finishes within the grace is settled.

use super::*;
use outbox_client::Message;
use outbox_relay::{Delivery, Publisher, Relay};
use outbox_tests::{wait_until, TestDb};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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
