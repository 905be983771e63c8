//! The HTTP webhook publisher against a real HTTP server (axum) run by the
//! test: signatures, permanent rejections, retries, a broker that is down.

use crate::common::*;
use crate::relay::RelayProcess;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use hmac::{Hmac, Mac};
use outbox_tests::{wait_until, TestDb};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the sink saw and how it answers.
#[derive(Default)]
struct Sink {
    received: Mutex<Vec<(HeaderMap, Value)>>,
    /// Answer 503 (Retry-After: 1) to this many requests first.
    fail_first: AtomicUsize,
    /// Take this long to answer (a slow broker).
    delay_ms: std::sync::atomic::AtomicU64,
}

async fn hook(State(sink): State<Arc<Sink>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let message: Value = serde_json::from_slice(&body).expect("a JSON body");
    let bad = message["payload"]["bad"].as_bool() == Some(true);
    // Recorded on arrival, before the (slow broker's) delay.
    sink.received
        .lock()
        .unwrap()
        .push((headers.clone(), message));
    let delay = sink.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if sink.fail_first.load(Ordering::SeqCst) > 0 {
        sink.fail_first.fetch_sub(1, Ordering::SeqCst);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            "try later",
        )
            .into_response();
    }
    if bad {
        return (StatusCode::UNPROCESSABLE_ENTITY, "invalid order").into_response();
    }
    // The signature over the exact bytes we were sent.
    let signed = format!(
        "{}.{}.",
        headers["webhook-id"].to_str().unwrap(),
        headers["webhook-timestamp"].to_str().unwrap()
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(&SECRET[6..])
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    mac.update(&body);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    if headers["webhook-signature"].to_str().unwrap() != want {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Serve the sink on `listener` until the test ends.
fn serve(listener: tokio::net::TcpListener, sink: Arc<Sink>) {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(sink);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

async fn sink() -> (Arc<Sink>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let sink = Arc::new(Sink::default());
    serve(listener, sink.clone());
    (sink, url)
}

fn http_args(url: &str) -> Vec<String> {
    [
        "--publisher",
        "http",
        "--http-url",
        url,
        "--http-secret",
        SECRET,
        "--http-header",
        "Authorization: Bearer test-token",
        "--poll-interval",
        "200ms",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Retries come quickly and exactly in this database.
async fn fast_retries(db: &TestDb) {
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET outbox.retry_base = '200ms'; ALTER DATABASE {} SET outbox.retry_jitter = 0",
            db.name(),
            db.name()
        ))
        .await
        .unwrap();
}

fn start(db: &TestDb, args: &[String]) -> RelayProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    RelayProcess::start(db, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_are_signed_and_carry_id_topic_key_and_headers() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (sink, url) = sink().await;
    let relay = start(&db, &http_args(&url));
    for i in 0..20 {
        c.query_one(
            "SELECT outbox.enqueue('orders.created', $1, key => $2, headers => '{\"traceparent\": \"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\", \"tracestate\": \"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\", \"tenant-id\": \"acme\", \"correlation-id\": \"checkout-9\"}')",
            &[&json!({ "i": i }), &format!("order-{}", i % 4)],
        )
        .await
        .unwrap();
    }
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;
    let received = sink.received.lock().unwrap().clone();
    assert_eq!(received.len(), 20, "each message POSTed once");
    for (headers, body) in &received {
        assert_eq!(
            headers["webhook-id"].to_str().unwrap(),
            body["id"].to_string()
        );
        assert_eq!(headers["outbox-topic"], "orders.created");
        assert_eq!(
            headers["outbox-key"].to_str().unwrap(),
            body["key"].as_str().unwrap()
        );
        assert_eq!(headers["authorization"], "Bearer test-token");
        assert_eq!(
            body["headers"],
            json!({
                "traceparent": crate::trace::TRACEPARENT,
                "tracestate": crate::trace::TRACESTATE,
                "tenant-id": "acme",
                "correlation-id": "checkout-9",
            })
        );
        // The id convention as request headers too; no causation-id given.
        assert_eq!(headers["tenant-id"], "acme");
        assert_eq!(headers["correlation-id"], "checkout-9");
        assert!(headers.get("causation-id").is_none());
        // The producer's trace context, unchanged, as HTTP headers.
        assert_eq!(headers["traceparent"], crate::trace::TRACEPARENT);
        assert_eq!(headers["tracestate"], crate::trace::TRACESTATE);
    }
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_the_endpoint_rejects_is_dead_lettered_with_the_reason() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (_sink, url) = sink().await;
    let relay = start(&db, &http_args(&url));
    let bad = enqueue(&c, "orders", json!({"bad": true})).await;
    let good = enqueue(&c, "orders", json!({"bad": false})).await;
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;
    let row = c
        .query_one(
            "SELECT id, reason, attempts, last_error FROM outbox.dead_letters",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), bad);
    assert_eq!(row.get::<_, String>(1), "permanent");
    assert_eq!(row.get::<_, i32>(2), 1, "a 4xx is not retried");
    assert!(
        row.get::<_, String>(3).contains("422"),
        "{}",
        row.get::<_, String>(3)
    );
    assert_ne!(good, bad);
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_endpoint_is_retried_after_its_retry_after_until_it_accepts() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (sink, url) = sink().await;
    sink.fail_first.store(2, Ordering::SeqCst);
    let relay = start(&db, &http_args(&url));
    enqueue(&c, "orders", json!({"i": 1})).await;
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;
    let received = sink.received.lock().unwrap().clone();
    let attempts: Vec<i64> = received
        .iter()
        .map(|(_, b)| b["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(
        attempts,
        vec![1, 2, 3],
        "two 503s, then delivered on the third attempt"
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.dead_letters").await,
        0
    );
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_that_is_down_gets_the_messages_once_it_is_back() {
    let db = TestDb::new().await;
    fast_retries(&db).await;
    let c = db.client().await;
    // A port nobody listens on yet.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/hook");
    let relay = start(&db, &http_args(&url));
    let id = enqueue(&c, "orders", json!({"i": 1})).await;
    wait_until(PATIENCE, || async {
        c.query_one(
            "SELECT coalesce(last_error, '') FROM outbox.messages WHERE id = $1",
            &[&id],
        )
        .await
        .map(|r| !r.get::<_, String>(0).is_empty())
        .unwrap_or(false)
    })
    .await;
    let error: String = c
        .query_one(
            "SELECT last_error FROM outbox.messages WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(error.contains("POST"), "{error}");

    let sink = Arc::new(Sink::default());
    serve(
        tokio::net::TcpListener::bind(addr).await.unwrap(),
        sink.clone(),
    );
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;
    let received = sink.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert!(received[0].1["attempt"].as_i64().unwrap() >= 2);
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_publish_keeps_its_lease_so_no_other_relay_takes_the_message() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (sink, url) = sink().await;
    sink.delay_ms.store(2500, Ordering::SeqCst);
    let args: Vec<String> = [http_args(&url), vec!["--lease".into(), "1s".into()]].concat();
    let first = start(&db, &args);
    let second = start(&db, &args);
    let id = enqueue(&c, "orders", json!({"slow": true})).await;
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;
    let received = sink.received.lock().unwrap().clone();
    assert_eq!(
        received.len(),
        1,
        "the lease lapsed during a 2.5 s publish with 1 s leases: {received:?}"
    );
    assert_eq!(received[0].1["id"].as_i64(), Some(id));
    assert_eq!(received[0].1["attempt"].as_i64(), Some(1));
    drop((first, second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_serves_metrics_health_and_readiness() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let relay = RelayProcess::start(
        &db,
        &[
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--poll-interval",
            "200ms",
        ],
    );
    for i in 0..5 {
        enqueue(&c, "orders", json!({ "i": i })).await;
    }
    c.batch_execute("SELECT outbox.enqueue('later', '1', deliver_at => now() + interval '1 hour')")
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http.get(format!("{base}{path}")).send().await.ok()?;
            Some((r.status().as_u16(), r.text().await.ok()?))
        }
    };
    wait_until(PATIENCE, || async {
        get("/metrics").await.is_some_and(|(_, body)| {
            body.contains("outbox_relay_published_total{topic=\"orders\"} 5")
        })
    })
    .await;
    assert_eq!(get("/healthz").await.map(|r| r.0), Some(200));
    wait_until(PATIENCE, || async {
        get("/readyz").await.is_some_and(|r| r.0 == 200)
    })
    .await;
    // The backlog gauges follow outbox.stats(), polled every poll interval.
    for want in [
        "outbox_relay_backlog{state=\"scheduled\",topic=\"later\"} 1",
        "outbox_relay_end_to_end_lag_seconds_count 5",
        "outbox_relay_batch_seconds_count",
        "outbox_relay_database_up 1",
    ] {
        wait_until(PATIENCE, || async {
            get("/metrics")
                .await
                .is_some_and(|(_, body)| body.contains(want))
        })
        .await;
    }
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_publish_finishes_the_batch_and_claims_nothing_more() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (sink, url) = sink().await;
    sink.delay_ms.store(1500, Ordering::SeqCst);
    let args: Vec<String> = [
        http_args(&url),
        ["--concurrency", "1", "--batch-size", "5"]
            .map(str::to_owned)
            .to_vec(),
    ]
    .concat();
    let relay = start(&db, &args);
    let payloads: Vec<Value> = (0..10).map(|i| json!({ "i": i })).collect();
    c.query_one("SELECT outbox.enqueue_batch('orders', $1)", &[&payloads])
        .await
        .unwrap();
    // The first batch of 5 is being POSTed (each answer takes 1.5 s).
    wait_until(PATIENCE, || async {
        sink.received.lock().unwrap().len() == 5
    })
    .await;
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{log}");
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.messages").await,
        5,
        "the in-flight batch was completed\n{log}"
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM outbox.messages WHERE lease_token IS NULL AND attempt = 0"
        )
        .await,
        5,
        "nothing more was claimed after SIGTERM\n{log}"
    );
    assert_eq!(sink.received.lock().unwrap().len(), 5);
}
