//! A panicking publisher costs only the message it panicked on.

use super::*;
use outbox_client::Message;
use outbox_relay::{Delivery, Publisher, Relay};
use outbox_tests::{wait_until, TestDb};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
