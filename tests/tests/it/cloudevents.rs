//! What every publisher's CloudEvents test checks (`--envelope
//! cloudevents`): the event a consumer reads is this message's, by the
//! CloudEvents SDK's own reading of the 1.0 attribute rules (required
//! attributes, `specversion`, RFC 3339 `time`, URI-reference `source`).
//! Structured mode is parsed by the SDK as it arrives; binary mode is
//! rebuilt from the protocol headers by the binding's rule (prefix off,
//! percent-decoded where the binding encodes) and then parsed the same way.
//! The HTTP test also reads its requests with the SDK's own HTTP binding.

use chrono::{DateTime, Utc};
use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Data, Event};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// The source every CloudEvents test configures.
pub const SOURCE: &str = "https://orders.example.com/outbox";

/// `outbox-relay` flags for CloudEvents in `mode` (`binary` or
/// `structured`).
pub fn flags(mode: &'static str) -> [&'static str; 6] {
    [
        "--envelope",
        "cloudevents",
        "--cloudevents-source",
        SOURCE,
        "--cloudevents-mode",
        mode,
    ]
}

/// What the event of one message must say.
#[derive(Debug, Clone)]
pub struct Want {
    pub id: i64,
    pub topic: String,
    pub key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub payload: Value,
    pub traceparent: Option<String>,
}

impl Want {
    /// Read back a message just enqueued (before the relay takes it).
    pub async fn of(c: &Client, id: i64) -> Want {
        let row = c
            .query_one(
                "SELECT topic, key, created_at, payload, headers->>'traceparent' \
                 FROM outbox.messages WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
        Want {
            id,
            topic: row.get(0),
            key: row.get(1),
            created_at: row.get(2),
            payload: row.get(3),
            traceparent: row.get(4),
        }
    }
}

/// Three messages of `topic` and what their events must say: key
/// `first_key` (one that is not ASCII, has a space or needs encoding) with
/// a trace context, no key, and key `order-7` with `third_headers` (named
/// like the envelope's, which the publisher must not let through). The
/// payload has a number no double holds, so it must arrive as stored.
pub async fn enqueue_events(
    c: &Client,
    topic: &str,
    first_key: &str,
    third_headers: Value,
) -> BTreeMap<i64, Want> {
    let mut wants = BTreeMap::new();
    for (key, headers) in [
        (
            Some(first_key),
            json!({ "traceparent": crate::trace::TRACEPARENT }),
        ),
        (None, json!({})),
        (Some("order-7"), third_headers),
    ] {
        let id: i64 = c
            .query_one(
                "SELECT outbox.enqueue($1, '{\"total\": 99.50, \"big\": 12345678901234567890123}', \
                 key => $2, headers => $3::text::jsonb)",
                &[&topic, &key, &headers.to_string()],
            )
            .await
            .unwrap()
            .get(0);
        wants.insert(id, Want::of(c, id).await);
    }
    wants
}

/// Check an event the SDK read against `want`.
pub fn check(event: &Event, want: &Want) {
    assert_eq!(event.specversion().to_string(), "1.0");
    assert_eq!(event.id(), want.id.to_string(), "id = outbox id");
    assert_eq!(event.source().as_str(), SOURCE);
    assert_eq!(event.ty(), want.topic, "type = topic");
    assert_eq!(event.subject(), want.key.as_deref(), "subject = key");
    assert_eq!(event.time(), Some(&want.created_at), "time = created_at");
    assert_eq!(event.datacontenttype(), Some("application/json"));
    let data = match event.data() {
        Some(Data::Json(v)) => v.clone(),
        Some(Data::Binary(b)) => serde_json::from_slice(b).expect("data is JSON"),
        Some(Data::String(s)) => serde_json::from_str(s).expect("data is JSON"),
        None => panic!("no data: {event}"),
    };
    assert_eq!(data, want.payload, "data = payload");
    let traceparent = event.extension("traceparent").map(|v| match v {
        ExtensionValue::String(s) => s.clone(),
        other => panic!("traceparent is a string, not {other:?}"),
    });
    assert_eq!(traceparent, want.traceparent, "the tracing extension");
}

/// A structured-mode body, read by the SDK.
pub fn structured(body: &[u8]) -> Event {
    serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "not a CloudEvents JSON event ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })
}

/// A binary-mode message rebuilt from its headers: those named `prefix` +
/// attribute (case-insensitively: HTTP and NATS header names are), values
/// percent-decoded if `percent`; `content_type` is `datacontenttype`.
pub fn binary(
    headers: &[(String, String)],
    prefix: &str,
    percent: bool,
    content_type: &str,
    body: &[u8],
) -> Event {
    let mut event = Map::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let Some(attribute) = lower.strip_prefix(&prefix.to_ascii_lowercase()) else {
            continue;
        };
        let value = if percent {
            percent_decode(value)
        } else {
            value.clone()
        };
        assert!(
            event
                .insert(attribute.to_owned(), Value::String(value))
                .is_none(),
            "attribute {attribute} given twice"
        );
    }
    event.insert("datacontenttype".into(), content_type.into());
    let data: Value = serde_json::from_slice(body).expect("the body is the JSON payload");
    event.insert("data".into(), data);
    serde_json::from_value(Value::Object(event.clone()))
        .unwrap_or_else(|e| panic!("not a CloudEvent ({e}): {event:?}"))
}

/// `%XX` back to bytes (the HTTP binding's encoding), as UTF-8.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).expect("a %XX escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 after decoding")
}
