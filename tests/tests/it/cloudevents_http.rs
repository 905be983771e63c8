//! CloudEvents over HTTP (both content modes) and on stdout (structured),
//! read back with the checks of `cloudevents.rs`. The HTTP requests are
//! also read with the CloudEvents SDK's own HTTP binding.

use crate::cloudevents;
use crate::relay::RelayProcess;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use outbox_tests::{wait_until, TestDb};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn hook(State(seen): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    seen.lock().unwrap().push((headers, body));
    StatusCode::NO_CONTENT
}

/// An endpoint that takes everything; its URL and what it received.
async fn endpoint() -> (String, Received) {
    let seen = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers[name].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_events_in_binary_and_structured_mode_read_back_as_the_messages() {
    let db = TestDb::new().await;
    let c = db.client().await;
    for mode in ["binary", "structured"] {
        let (url, seen) = endpoint().await;
        let topic = format!("ce.http.{mode}");
        let wants = cloudevents::enqueue_events(
            &c,
            &topic,
            "ordér 42%",
            json!({ "x-other": "kept out of the event" }),
        )
        .await;
        let mut args = vec!["--publisher", "http", "--http-url", &url];
        args.extend(cloudevents::flags(mode));
        let relay = RelayProcess::start(&db, &args);
        wait_until(PATIENCE, || async {
            seen.lock().unwrap().len() >= wants.len()
        })
        .await;
        let (status, log) = relay.terminate().await;
        assert!(status.success(), "{log}");

        let received = seen.lock().unwrap().clone();
        assert_eq!(received.len(), wants.len(), "one request per message");
        for (headers, body) in received {
            let id: i64 = header(&headers, "webhook-id").parse().unwrap();
            let want = &wants[&id];
            let event = match mode {
                "binary" => {
                    assert_eq!(header(&headers, "content-type"), "application/json");
                    assert!(
                        body.starts_with(br#"{"big": 12345678901234567890123"#),
                        "the body is the payload as stored: {body:?}"
                    );
                    let pairs: Vec<(String, String)> = headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    cloudevents::binary(&pairs, "ce-", true, "application/json", &body)
                }
                _ => {
                    assert_eq!(
                        header(&headers, "content-type"),
                        "application/cloudevents+json; charset=UTF-8"
                    );
                    cloudevents::structured(&body)
                }
            };
            cloudevents::check(&event, want);
            // The SDK's own HTTP binding reads the same request. (It does
            // not percent-decode: the binding's encoding rule is newer than
            // it, so it is asked only about keys that need none.)
            if want
                .key
                .as_deref()
                .is_none_or(|k| k.is_ascii() && !k.contains([' ', '%']))
            {
                let sdk = ::cloudevents::binding::http::to_event(&headers, body.to_vec())
                    .expect("the SDK reads the request as an event");
                cloudevents::check(&sdk, want);
            }
        }
    }
}

#[tokio::test]
async fn stdout_lines_are_structured_events() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let wants = cloudevents::enqueue_events(
        &c,
        "ce.stdout",
        "ordér 42%",
        json!({ "x-other": "kept out of the event" }),
    )
    .await;
    // No --cloudevents-mode: stdout's default is structured.
    let relay = RelayProcess::start(&db, &cloudevents::flags("structured")[..4]);
    wait_until(PATIENCE, || async { relay.lines().len() >= wants.len() }).await;
    for line in relay.lines() {
        let event = cloudevents::structured(line.as_bytes());
        let id: i64 = ::cloudevents::AttributesReader::id(&event).parse().unwrap();
        cloudevents::check(&event, &wants[&id]);
    }
}

#[tokio::test]
async fn cloudevents_flags_that_cannot_work_are_usage_errors() {
    let db = TestDb::new().await;
    for (args, says) in [
        (
            vec!["--envelope", "cloudevents"],
            "needs --cloudevents-source",
        ),
        (
            vec!["--cloudevents-source", "/x"],
            "only apply with --envelope cloudevents",
        ),
        (
            vec!["--envelope", "cloudevents", "--cloudevents-source", "a b"],
            "whitespace",
        ),
        (
            cloudevents::flags("binary").to_vec(),
            "Stdout has no binary content mode",
        ),
    ] {
        let out = std::process::Command::new(crate::relay::relay_binary())
            .args(["--database-url", &db.connstr(), "--publisher", "stdout"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
