//! The Kafka publisher against librdkafka's mock cluster (a real Kafka
//! protocol implementation, three brokers, run inside the test process).

use crate::cloudevents;
use crate::common::*;
use crate::relay::RelayProcess;
use outbox_tests::{wait_until, TestDb};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

/// A record: key, headers (in order, repeats kept), value.
type Record = (Option<String>, Vec<(String, String)>, Vec<u8>);

/// Every record of `topic`, read from the start.
fn consume(bootstrap: &str, topic: &str, want: usize) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // A group per topic: the mock cluster makes a group that changes
        // subscription wait out the last member's session (45 s).
        .set("group.id", format!("outbox-test-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut out = Vec::new();
    while out.len() < want && std::time::Instant::now() < deadline {
        let Some(record) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let record = record.unwrap();
        let headers = record
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let key = record
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        out.push((key, headers, record.payload().unwrap_or_default().to_vec()));
    }
    out
}

/// The one header `name` of a record.
fn header<'h>(headers: &'h [(String, String)], name: &str) -> &'h str {
    let mut values = headers.iter().filter(|(k, _)| k == name);
    let (_, value) = values.next().unwrap_or_else(|| panic!("no {name}"));
    assert!(values.next().is_none(), "{name} given twice: {headers:?}");
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_reach_kafka_keyed_by_the_outbox_key_with_headers_in_key_order() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("orders.created", 3, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let db = TestDb::new().await;
    let c = db.client().await;
    let relay = RelayProcess::start(
        &db,
        &[
            "--publisher",
            "kafka",
            "--kafka-brokers",
            &bootstrap,
            "--kafka-timeout",
            "10s",
            "--poll-interval",
            "200ms",
        ],
    );
    for i in 0..30 {
        c.query_one(
            "SELECT outbox.enqueue('orders.created', $1, key => $2, headers => '{\"traceparent\": \"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\", \"tracestate\": \"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\"}')",
            &[&json!({ "i": i }), &format!("order-{}", i % 5)],
        )
        .await
        .unwrap();
    }
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;
    drop(relay);

    let records = tokio::task::spawn_blocking(move || consume(&bootstrap, "orders.created", 30))
        .await
        .unwrap();
    assert_eq!(records.len(), 30, "every message became one record");
    let mut last_per_key: BTreeMap<String, i64> = BTreeMap::new();
    for (key, headers, value) in &records {
        let headers: BTreeMap<String, String> = headers.iter().cloned().collect();
        let value: Value = serde_json::from_slice(value).unwrap();
        let key = key.clone().expect("the record key is the outbox key");
        let id: i64 = headers["outbox-id"].parse().unwrap();
        assert_eq!(headers["outbox-topic"], "orders.created");
        // The producer's trace context, unchanged, as Kafka headers.
        assert_eq!(headers["traceparent"], crate::trace::TRACEPARENT);
        assert_eq!(headers["tracestate"], crate::trace::TRACESTATE);
        assert!(
            value.get("i").is_some(),
            "the value is the payload: {value}"
        );
        if let Some(prev) = last_per_key.insert(key.clone(), id) {
            assert!(prev < id, "key {key}: {id} after {prev}");
        }
    }
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudevents_binary_and_structured_records_read_back_as_their_messages_events() {
    let cluster = MockCluster::new(3).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let db = TestDb::new().await;
    let c = db.client().await;
    for mode in ["binary", "structured"] {
        let topic = format!("ce.kafka.{mode}");
        cluster.create_topic(&topic, 3, 1).unwrap();
        let wants = cloudevents::enqueue_events(
            &c,
            &topic,
            "ordér 42",
            json!({ "ce_id": "forged", "content-type": "text/plain", "outbox-id": "0", "Outbox-Attempt": "9", "x-other": "kept" }),
        )
        .await;
        let mut args = vec![
            "--publisher",
            "kafka",
            "--kafka-brokers",
            &bootstrap,
            "--kafka-timeout",
            "10s",
            "--poll-interval",
            "200ms",
        ];
        args.extend(cloudevents::flags(mode));
        let relay = RelayProcess::start(&db, &args);
        wait_until(PATIENCE, || async {
            count(&c, "SELECT count(*) FROM outbox.messages").await == 0
        })
        .await;
        let (status, log) = relay.terminate().await;
        assert!(status.success(), "{log}");
        assert_eq!(
            count(&c, "SELECT count(*) FROM outbox.dead_letters").await,
            0,
            "{log}"
        );

        let (servers, name) = (bootstrap.clone(), topic.clone());
        let records = tokio::task::spawn_blocking(move || consume(&servers, &name, 3))
            .await
            .unwrap();
        assert_eq!(records.len(), wants.len(), "one record per message");
        for (key, headers, value) in &records {
            // The outbox's own headers and the record key stay.
            // One of each, ours: a producer's header cannot replace them.
            let id: i64 = header(headers, "outbox-id").parse().unwrap();
            assert_eq!(header(headers, "outbox-attempt"), "1");
            assert!(
                !headers.iter().any(|(k, _)| k == "Outbox-Attempt"),
                "{headers:?}"
            );
            let want = &wants[&id];
            assert_eq!(key, &want.key, "the record key is the outbox key");
            if want.key.as_deref() == Some("order-7") {
                assert_eq!(header(headers, "x-other"), "kept");
            }
            let content_type = header(headers, "content-type");
            let event = match mode {
                "binary" => {
                    assert_eq!(content_type, "application/json");
                    assert!(
                        value.starts_with(br#"{"big": 12345678901234567890123"#),
                        "the value is the payload as stored: {}",
                        String::from_utf8_lossy(value)
                    );
                    cloudevents::binary(headers, "ce_", false, content_type, value)
                }
                _ => {
                    assert_eq!(content_type, "application/cloudevents+json; charset=UTF-8");
                    assert!(
                        !headers.iter().any(|(k, _)| k.starts_with("ce_")),
                        "structured mode has no attribute headers: {headers:?}"
                    );
                    cloudevents::structured(value)
                }
            };
            cloudevents::check(&event, want);
        }
    }
    drop(cluster);
}

#[tokio::test]
async fn an_unreachable_kafka_is_a_clear_startup_error() {
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = std::process::Command::new(crate::relay::relay_binary())
        .args(["--database-url", &db.connstr(), "--publisher", "kafka"])
        .args([
            "--kafka-brokers",
            &format!("127.0.0.1:{port}"),
            "--kafka-timeout",
            "2s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach Kafka"), "{stderr}");
}
