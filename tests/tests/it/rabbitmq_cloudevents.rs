//! The RabbitMQ publisher's CloudEvents envelope (the AMQP binding), read
//! back from a real `rabbitmq-server` through the shared SDK checks: binary
//! mode (`cloudEvents:*` headers, the payload as the body) and structured
//! mode (the JSON event as the body), one node for both.

use crate::cloudevents;
use crate::common::*;
use crate::rabbitmq::{drained, id_of, start_relay, RabbitNode};
use lapin::types::{AMQPValue, FieldTable};
use outbox_tests::TestDb;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudevents_binary_and_structured_messages_read_back_as_their_messages_events() {
    let rabbit = RabbitNode::start().await;
    let db = TestDb::new().await;
    let c = db.client().await;
    for mode in ["binary", "structured"] {
        // The default exchange: the routing key (the topic) names the queue.
        let topic = format!("orders.ce.{mode}");
        rabbit.queue(&topic, FieldTable::default(), "", "").await;
        let wants = cloudevents::enqueue_events(
            &c,
            &topic,
            "ordér 42",
            json!({ "cloudEvents_id": "forged", "CloudEvents_type": "forged", "X-Other": "kept" }),
        )
        .await;
        let relay = start_relay(&db, &rabbit.url(), &cloudevents::flags(mode));
        drained(&c).await;
        let (status, log) = relay.terminate().await;
        assert!(status.success(), "{log}");
        assert_eq!(
            count(&c, "SELECT count(*) FROM outbox.dead_letters").await,
            0,
            "{log}"
        );

        let got = rabbit.take_all(&topic).await;
        assert_eq!(got.len(), wants.len(), "one message each:\n{log}");
        for m in &got {
            let id = id_of(m);
            let want = &wants[&id];
            let p = &m.properties;
            // The outbox's own properties and headers stay.
            assert_eq!(*p.delivery_mode(), Some(2));
            let table = p.headers().clone().expect("headers").inner().clone();
            let headers: Vec<(String, String)> = table
                .iter()
                .filter_map(|(k, v)| match v {
                    AMQPValue::LongString(s) => Some((
                        k.to_string(),
                        String::from_utf8(s.as_bytes().to_vec()).unwrap(),
                    )),
                    _ => None,
                })
                .collect();
            let get = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(get("outbox-id"), Some(id.to_string().as_str()));
            assert_eq!(get("outbox-key"), want.key.as_deref());
            if want.key.as_deref() == Some("order-7") {
                assert_eq!(get("X-Other"), Some("kept"));
                assert_eq!(get("CloudEvents_type"), None, "the envelope's name");
                assert_eq!(get("cloudEvents_id"), None, "the envelope's name");
            }
            let content_type = p.content_type().as_ref().expect("a content_type").as_str();
            let event = match mode {
                "binary" => {
                    assert_eq!(content_type, "application/json");
                    assert!(
                        m.data.starts_with(br#"{"big": 12345678901234567890123"#),
                        "the body is the payload as stored: {}",
                        String::from_utf8_lossy(&m.data)
                    );
                    cloudevents::binary(&headers, "cloudEvents:", false, content_type, &m.data)
                }
                _ => {
                    assert_eq!(content_type, "application/cloudevents+json; charset=UTF-8");
                    assert!(
                        headers.iter().all(|(k, _)| !k.starts_with("cloudEvents")),
                        "structured mode has no attribute headers: {headers:?}"
                    );
                    cloudevents::structured(&m.data)
                }
            };
            cloudevents::check(&event, want);
        }
    }
}
