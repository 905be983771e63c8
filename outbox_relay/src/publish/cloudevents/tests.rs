use super::*;
use crate::LeaseToken;
use chrono::{TimeZone, Utc};
use serde_json::value::RawValue;
use serde_json::{json, Value};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn message(key: Option<&str>, headers: Option<Value>) -> Message {
    Message {
        id: 42,
        topic: "orders.created".into(),
        key: key.map(str::to_owned),
        payload: RawValue::from_string(r#"{"total": 99.50}"#.into()).unwrap(),
        headers,
        attempt: 1,
        lease_token: LeaseToken(uuid::Uuid::nil()),
        lease_expires_at: Utc::now(),
        created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
    }
}

fn events() -> CloudEvents {
    CloudEvents::new("https://orders.example.com/outbox").unwrap()
}

#[test]
fn structured_is_the_json_event_format_with_the_payload_as_stored() {
    let m = message(
        Some("order-42"),
        Some(json!({"traceparent": TRACEPARENT, "x": "y"})),
    );
    let body = events().structured(&m);
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.ends_with(r#","data":{"total": 99.50}}"#), "{text}");
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        event,
        json!({
            "specversion": "1.0",
            "id": "42",
            "source": "https://orders.example.com/outbox",
            "type": "orders.created",
            "subject": "order-42",
            "time": "2026-01-02T03:04:05.000000Z",
            "datacontenttype": "application/json",
            "traceparent": TRACEPARENT,
            "data": {"total": 99.5},
        }),
        "other headers are not attributes"
    );
}

#[test]
fn no_key_no_subject() {
    let names: Vec<&str> = events()
        .attributes(&message(None, None))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        names,
        [
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "datacontenttype"
        ]
    );
}

#[test]
fn binary_headers_take_the_binding_prefix_and_encoding() {
    let m = message(Some("ordér 42%"), None);
    let http = events().binary_headers(&m, Binding::Http);
    assert!(
        http.contains(&("ce-subject".into(), "ord%C3%A9r%2042%25".into())),
        "{http:?}"
    );
    assert!(http.contains(&("ce-id".into(), "42".into())));
    assert!(
        http.iter().all(|(k, _)| k != "ce-datacontenttype"),
        "{http:?}"
    );
    let kafka = events().binary_headers(&m, Binding::Kafka);
    assert!(
        kafka.contains(&("ce_subject".into(), "ordér 42%".into())),
        "{kafka:?}"
    );
    let amqp = events().binary_headers(&m, Binding::Amqp);
    assert!(amqp.contains(&("cloudEvents:type".into(), "orders.created".into())));
    assert!(events().binary_headers(&m, Binding::Stdout).is_empty());
}

#[test]
fn modes_default_per_binding_and_binary_needs_headers() {
    let e = events();
    assert_eq!(e.mode(Binding::Kafka).unwrap(), ContentMode::Binary);
    assert_eq!(e.mode(Binding::Stdout).unwrap(), ContentMode::Structured);
    let binary = e.clone().with_mode(ContentMode::Binary);
    assert!(binary.mode(Binding::Redis).is_err());
    let structured = e.with_mode(ContentMode::Structured);
    assert_eq!(
        structured.mode(Binding::Http).unwrap(),
        ContentMode::Structured
    );
}

#[test]
fn a_source_must_be_a_uri_reference() {
    assert!(CloudEvents::new("").is_err());
    assert!(CloudEvents::new("my outbox").is_err());
    assert!(CloudEvents::new("/orders/outbox").is_ok());
}
