use super::*;
use crate::LeaseToken;
use chrono::{TimeZone, Utc};
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::value::RawValue;

fn message(key: Option<&str>, headers: serde_json::Value) -> Message {
    Message {
        id: 42,
        topic: "orders.created".into(),
        key: key.map(str::to_owned),
        payload: RawValue::from_string(r#"{"total": 99.50}"#.into()).unwrap(),
        headers: Some(headers),
        attempt: 3,
        lease_token: LeaseToken(uuid::Uuid::nil()),
        lease_expires_at: Utc::now(),
        created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
    }
}

fn publisher(prefix: &str) -> RabbitMqPublisher {
    RabbitMqPublisher {
        url: RabbitMqConfig::default().url,
        exchange: String::new(),
        prefix: prefix.into(),
        timeout: Duration::from_secs(1),
        events: None,
        session: Mutex::new(None),
    }
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[test]
fn properties_carry_the_id_persistence_type_time_and_every_header() {
    let m = message(Some("order-7"), serde_json::json!({"trace-id": "t-9"}));
    let p = properties(&m, None).unwrap();
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("42"));
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(*p.timestamp(), Some(1_767_323_045));
    let mut want = FieldTable::default();
    want.insert("trace-id".into(), text("t-9"));
    want.insert("outbox-id".into(), text("42"));
    want.insert("outbox-topic".into(), text("orders.created"));
    want.insert("outbox-key".into(), text("order-7"));
    want.insert("outbox-attempt".into(), AMQPValue::LongInt(3));
    assert_eq!(p.headers().as_ref(), Some(&want));
}

#[test]
fn no_key_no_key_header_and_outbox_headers_win() {
    let m = message(None, serde_json::json!({"outbox-id": "forged"}));
    let headers = properties(&m, None).unwrap().headers().clone().unwrap();
    assert_eq!(headers.inner().get("outbox-id"), Some(&text("42")));
    assert_eq!(headers.inner().get("outbox-key"), None);
}

#[test]
fn what_amqp_cannot_carry_is_undeliverable_not_a_panic() {
    let long = "h".repeat(256);
    let m = message(None, serde_json::json!({ long.clone(): "v" }));
    let error = properties(&m, None).unwrap_err();
    assert!(
        error.starts_with("undeliverable: the header name") && error.contains("256 bytes"),
        "{error}"
    );

    let p = publisher(&"p".repeat(250));
    let error = p.routing_key(&m).unwrap_err();
    assert!(error.contains("is 264 bytes, AMQP allows 255"), "{error}");
    assert_eq!(
        publisher("app.").routing_key(&m).unwrap().as_str(),
        "app.orders.created"
    );
}

fn events(mode: ContentMode) -> (CloudEvents, ContentMode) {
    (CloudEvents::new("/orders/outbox").unwrap(), mode)
}

#[test]
fn binary_cloudevents_are_cloudevents_headers_beside_the_outbox_ones() {
    let m = message(
        Some("order-7"),
        serde_json::json!({"trace-id": "t-9", "cloudEvents:type": "forged", "CLOUDEVENTS_id": "x"}),
    );
    let p = properties(&m, Some(&events(ContentMode::Binary))).unwrap();
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("42"));
    let headers = p.headers().clone().unwrap();
    let get = |name: &str| headers.inner().get(name).cloned();
    assert_eq!(get("cloudEvents:specversion"), Some(text("1.0")));
    assert_eq!(get("cloudEvents:id"), Some(text("42")));
    assert_eq!(get("cloudEvents:source"), Some(text("/orders/outbox")));
    assert_eq!(get("cloudEvents:type"), Some(text("orders.created")));
    assert_eq!(get("cloudEvents:subject"), Some(text("order-7")));
    assert_eq!(
        get("cloudEvents:time"),
        Some(text("2026-01-02T03:04:05.000000Z"))
    );
    // datacontenttype is the content_type property, not a header.
    assert_eq!(get("cloudEvents:datacontenttype"), None);
    assert_eq!(get("CLOUDEVENTS_id"), None);
    assert_eq!(get("trace-id"), Some(text("t-9")));
    assert_eq!(get("outbox-id"), Some(text("42")));
}

#[test]
fn structured_cloudevents_change_the_content_type_and_add_no_attribute_headers() {
    let m = message(None, serde_json::json!({"cloudEvents:id": "forged"}));
    let p = properties(&m, Some(&events(ContentMode::Structured))).unwrap();
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some(crate::publish::cloudevents::STRUCTURED_CONTENT_TYPE)
    );
    let headers = p.headers().clone().unwrap();
    assert!(
        headers
            .inner()
            .keys()
            .all(|k| !k.as_str().starts_with("cloudEvents")),
        "{headers:?}"
    );
}

#[test]
fn acks_count_nacks_do_not() {
    let p = publisher("");
    assert_eq!(p.answer("orders", Confirmation::Ack(None)), Delivery::Acked);
    match p.answer("orders", Confirmation::Nack(None)) {
        Delivery::Retryable { error, .. } => assert_eq!(
            error,
            "RabbitMQ: nack: exchange \"\" routing key \"orders\": \
             the broker did not take it (e.g. a full queue)"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn passwords_stay_out_of_messages() {
    assert_eq!(
        redacted("amqp://app:s3cret@mq:5672/%2f"),
        "amqp://app:***@mq:5672/%2f"
    );
    assert_eq!(redacted("amqp://mq:5672"), "amqp://mq:5672");
    let config = RabbitMqConfig {
        url: "amqps://app:s3cret@mq/prod".into(),
        ..RabbitMqConfig::default()
    };
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[tokio::test]
async fn a_refused_connection_fails_connect_naming_the_cause() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = RabbitMqConfig {
        url: format!("amqp://app:s3cret@127.0.0.1:{port}/%2f"),
        ..RabbitMqConfig::default()
    };
    match RabbitMqPublisher::connect(config).await {
        Err(Error::Broker { broker, message }) => {
            assert_eq!(broker, "rabbitmq");
            assert!(message.contains("refused"), "{message}");
            assert!(
                message.starts_with(&format!("amqp://app:***@127.0.0.1:{port}/%2f: ")),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}
