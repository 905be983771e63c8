//! Trace context end to end: the producer's `traceparent` reaches the
//! consumer unchanged, and the relay's span per publish, exported by the
//! real OTLP/HTTP exporter (`--otlp-endpoint`, JSON encoding) to a
//! collector endpoint the test serves, links to the producer's span.
//! Each publisher's own test checks the headers arrive in its protocol.

use crate::relay::RelayProcess;
use axum::body::Bytes;
use axum::extract::State;
use outbox_client::{NewMessage, Store, Topic};
use outbox_tests::{wait_until, TestDb};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);
/// The W3C example trace.
pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const PARENT_ID: &str = "00f067aa0ba902b7";
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
pub const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

/// The headers argument of `outbox.enqueue` carrying the example trace.
pub fn trace_headers_sql() -> String {
    json!({ "traceparent": TRACEPARENT, "tracestate": TRACESTATE }).to_string()
}

/// What the collector received: every span of every export request.
#[derive(Default)]
struct Collector {
    spans: Mutex<Vec<Value>>,
}

async fn traces(State(c): State<Arc<Collector>>, body: Bytes) -> &'static str {
    let request: Value = serde_json::from_slice(&body).expect("an OTLP/JSON export request");
    let mut spans = c.spans.lock().unwrap();
    for rs in request["resourceSpans"].as_array().into_iter().flatten() {
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            spans.extend(ss["spans"].as_array().into_iter().flatten().cloned());
        }
    }
    "{}"
}

/// An OTLP attribute's value as text (`stringValue`, or `intValue`, which
/// OTLP/JSON writes as a string).
fn attribute(span: &Value, key: &str) -> Option<String> {
    let a = span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?;
    let v = &a["value"];
    v["stringValue"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| v["intValue"].as_str().map(str::to_owned))
        .or_else(|| v["intValue"].as_i64().map(|n| n.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_spans_link_to_the_producer_and_reach_an_otlp_collector() {
    let collector = Arc::new(Collector::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(collector.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let db = TestDb::new().await;
    let c = db.client().await;
    let topic = Topic::new("trace.otlp").unwrap();
    // The producer library, and plain SQL; one message without a trace
    // and one whose traceparent is malformed (ignored, still delivered).
    let from_rust = NewMessage::new(topic.clone(), &json!({"n": 1}))
        .unwrap()
        .with_trace_context(TRACEPARENT, Some(TRACESTATE))
        .unwrap();
    let rust_id = Store.enqueue(&c, &from_rust).await.unwrap();
    let mut ids = BTreeMap::new();
    ids.insert(rust_id, "traced");
    let sql = |headers: String| {
        let c = &c;
        async move {
            c.query_one(
                "SELECT outbox.enqueue('trace.otlp', '{}', headers => $1::text::jsonb)",
                &[&headers],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    ids.insert(sql(trace_headers_sql()).await, "traced");
    ids.insert(sql("{}".into()).await, "untraced");
    ids.insert(
        sql(json!({"traceparent": "00-not-a-trace-01"}).to_string()).await,
        "untraced",
    );

    let relay = RelayProcess::start(
        &db,
        &[
            "--otlp-endpoint",
            &format!("http://127.0.0.1:{port}"),
            "--otlp-protocol",
            "http/json",
        ],
    );
    relay
        .wait_for_ids(&ids.keys().copied().collect::<HashSet<_>>())
        .await;
    // The consumer's side: the headers arrive as the producer wrote them.
    for line in relay.published() {
        if ids.get(&line["id"].as_i64().unwrap()) == Some(&"traced") {
            assert_eq!(line["headers"]["traceparent"], TRACEPARENT, "{line}");
            assert_eq!(line["headers"]["tracestate"], TRACESTATE, "{line}");
        }
    }
    // Shutdown flushes the batch exporter.
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{log}");
    wait_until(PATIENCE, || async {
        collector.spans.lock().unwrap().len() >= ids.len()
    })
    .await;

    let spans = collector.spans.lock().unwrap().clone();
    assert_eq!(spans.len(), ids.len(), "one span per publish: {spans:#?}");
    for span in &spans {
        let id: i64 = attribute(span, "messaging.message.id")
            .expect("messaging.message.id")
            .parse()
            .unwrap();
        assert_eq!(span["name"], "send trace.otlp", "{span}");
        assert_eq!(span["kind"], 4, "SPAN_KIND_PRODUCER: {span}");
        assert_eq!(
            attribute(span, "messaging.system").as_deref(),
            Some("stdout")
        );
        assert_eq!(
            attribute(span, "messaging.destination.name").as_deref(),
            Some("trace.otlp")
        );
        assert_eq!(attribute(span, "outbox.delivery").as_deref(), Some("acked"));
        let links = span["links"].as_array().cloned().unwrap_or_default();
        match ids[&id] {
            "traced" => {
                assert_eq!(links.len(), 1, "linked to the producer: {span}");
                assert_eq!(
                    links[0]["traceId"].as_str().unwrap().to_lowercase(),
                    TRACE_ID
                );
                assert_eq!(
                    links[0]["spanId"].as_str().unwrap().to_lowercase(),
                    PARENT_ID
                );
                assert_ne!(
                    span["traceId"].as_str().unwrap().to_lowercase(),
                    TRACE_ID,
                    "a trace of its own, linked, not a child: {span}"
                );
            }
            _ => assert!(links.is_empty(), "nothing to link: {span}"),
        }
    }
}

#[tokio::test]
async fn a_malformed_trace_context_is_refused_by_the_producer_library() {
    let topic = Topic::new("trace.bad").unwrap();
    let e = NewMessage::new(topic, &1)
        .unwrap()
        .with_trace_context(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            None,
        )
        .unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("all-zero parent id"), "{shown}");
    assert!(shown.contains("SQLSTATE 22023"), "{shown}");
}
