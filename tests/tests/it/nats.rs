//! The NATS JetStream publisher against a real `nats-server -js` that each
//! test starts on its own port and storage directory, and stops on drop.

use crate::cloudevents;
use crate::common::*;
use crate::relay::RelayProcess;
use async_nats::jetstream;
use outbox_tests::{wait_until, TestDb};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

/// A JetStream-enabled nats-server, killed when dropped.
struct NatsServer {
    child: tokio::process::Child,
    url: String,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// On `port` (any free one if `None`), storing in `store` (a new
    /// directory if `None`; pass the old one to restart with its streams).
    async fn start(port: Option<u16>, store: Option<tempfile::TempDir>) -> NatsServer {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let store = store.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let child = tokio::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server is installed (make test installs it)");
        let url = format!("nats://127.0.0.1:{port}");
        wait_until(PATIENCE, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        NatsServer {
            child,
            url,
            _store: store,
        }
    }

    async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(async_nats::connect(self.url.as_str()).await.unwrap())
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }
}

async fn orders_stream(js: &jetstream::Context) -> jetstream::stream::Stream {
    js.create_stream(jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A stored message: subject, headers (every value), body.
type Stored = (String, Vec<(String, String)>, Vec<u8>);

/// Every message in the stream, as stored.
async fn stored_raw(stream: &mut jetstream::stream::Stream) -> Vec<Stored> {
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.unwrap();
        let headers = m
            .headers
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.to_string(), v.to_string())))
            .collect();
        out.push((m.subject.to_string(), headers, m.payload.to_vec()));
    }
    out
}

/// Every message in the stream: (subject, headers, payload).
async fn stored(
    stream: &mut jetstream::stream::Stream,
) -> Vec<(String, BTreeMap<String, String>, Value)> {
    stored_raw(stream)
        .await
        .into_iter()
        .map(|(subject, headers, body)| {
            (
                subject,
                headers.into_iter().collect(),
                serde_json::from_slice(&body).unwrap(),
            )
        })
        .collect()
}

/// The one header `name` (exact case) of a stored message.
fn header<'h>(headers: &'h [(String, String)], name: &str) -> &'h str {
    let mut values = headers.iter().filter(|(k, _)| k == name);
    let (_, value) = values.next().unwrap_or_else(|| panic!("no {name}"));
    assert!(values.next().is_none(), "{name} given twice: {headers:?}");
    value
}

fn nats_args(url: &str) -> Vec<String> {
    [
        "--publisher",
        "nats",
        "--nats-url",
        url,
        "--poll-interval",
        "200ms",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn start(db: &TestDb, args: &[String]) -> RelayProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    RelayProcess::start(db, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_reach_jetstream_with_their_id_topic_key_and_headers_in_key_order() {
    let nats = NatsServer::start(None, None).await;
    let js = nats.jetstream().await;
    let mut stream = orders_stream(&js).await;
    let db = TestDb::new().await;
    let c = db.client().await;
    let relay = start(&db, &nats_args(&nats.url));
    let mut ids = Vec::new();
    for i in 0..30 {
        let id: i64 = c
            .query_one(
                "SELECT outbox.enqueue($1, $2, key => $3, headers => '{\"traceparent\": \"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\", \"tracestate\": \"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\"}')",
                &[
                    &if i % 2 == 0 {
                        "orders.created"
                    } else {
                        "orders.paid"
                    },
                    &json!({ "i": i }),
                    &format!("order-{}", i % 5),
                ],
            )
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;

    let messages = stored(&mut stream).await;
    assert_eq!(messages.len(), 30, "one stream entry per message");
    let mut last_per_key: BTreeMap<String, i64> = BTreeMap::new();
    for (subject, headers, payload) in &messages {
        let id: i64 = headers["Nats-Msg-Id"].parse().unwrap();
        assert_eq!(headers["Outbox-Id"], id.to_string());
        assert_eq!(&headers["Outbox-Topic"], subject, "subject = topic");
        // The producer's trace context, unchanged, as NATS headers.
        assert_eq!(headers["traceparent"], crate::trace::TRACEPARENT);
        assert_eq!(headers["tracestate"], crate::trace::TRACESTATE);
        assert!(
            payload.get("i").is_some(),
            "the body is the payload itself: {payload}"
        );
        let key = headers["Outbox-Key"].clone();
        if let Some(prev) = last_per_key.insert(key.clone(), id) {
            assert!(prev < id, "key {key}: {id} stored after {prev}");
        }
    }
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_drops_a_redelivery_of_the_same_outbox_id() {
    let nats = NatsServer::start(None, None).await;
    let js = nats.jetstream().await;
    let mut stream = orders_stream(&js).await;
    let db = TestDb::new().await;
    let c = db.client().await;
    let id = enqueue(&c, "orders.created", json!({"i": 1})).await;
    // A relay that published but died before completing: the same message
    // comes back (attempt 2) after its lease expires.
    let first = claim(&c, "dead-relay", 1).await.remove(0);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id.to_string().as_str());
    js.publish_with_headers(
        "orders.created",
        headers,
        serde_json::to_vec(&first.payload).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    expire_leases(&c, &[id]).await;
    let relay = start(&db, &nats_args(&nats.url));
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;
    assert_eq!(
        stored(&mut stream).await.len(),
        1,
        "the broker deduplicated on Nats-Msg-Id"
    );
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_server_that_goes_away_gets_the_messages_when_it_is_back() {
    let mut nats = NatsServer::start(None, None).await;
    let port = nats.port();
    orders_stream(&nats.jetstream().await).await;
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {0} SET outbox.retry_base = '200ms'; ALTER DATABASE {0} SET outbox.retry_jitter = 0",
            db.name()
        ))
        .await
        .unwrap();
    let c = db.client().await;
    let relay = start(
        &db,
        &[
            nats_args(&nats.url),
            vec!["--nats-timeout".into(), "1s".into()],
        ]
        .concat(),
    );
    let before = enqueue(&c, "orders.created", json!({"i": 1})).await;
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;

    // Broker down: the message waits, with the failure recorded.
    nats.child.kill().await.unwrap();
    let during = enqueue(&c, "orders.created", json!({"i": 2})).await;
    wait_until(PATIENCE, || async {
        count(
            &c,
            "SELECT count(*) FROM outbox.messages WHERE last_error LIKE '%NATS%'",
        )
        .await
            == 1
    })
    .await;

    // Back on the same port, with the same storage: delivered.
    let store = std::mem::replace(&mut nats._store, tempfile::tempdir().unwrap());
    let back = NatsServer::start(Some(port), Some(store)).await;
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;
    let mut stream = back.jetstream().await.get_stream("ORDERS").await.unwrap();
    let ids: Vec<String> = stored(&mut stream)
        .await
        .into_iter()
        .map(|(_, h, _)| h["Nats-Msg-Id"].clone())
        .collect();
    assert_eq!(ids, vec![before.to_string(), during.to_string()]);
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudevents_binary_and_structured_messages_read_back_as_their_messages_events() {
    let nats = NatsServer::start(None, None).await;
    let js = nats.jetstream().await;
    let mut stream = orders_stream(&js).await;
    let db = TestDb::new().await;
    let c = db.client().await;
    for mode in ["binary", "structured"] {
        let topic = format!("orders.ce.{mode}");
        let wants = cloudevents::enqueue_events(
            &c,
            &topic,
            "ordér 42",
            json!({ "CE-ID": "forged", "content-type": "text/plain", "X-Other": "kept" }),
        )
        .await;
        let mut args = nats_args(&nats.url);
        args.extend(cloudevents::flags(mode).map(str::to_owned));
        let relay = start(&db, &args);
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

        let messages: Vec<Stored> = stored_raw(&mut stream)
            .await
            .into_iter()
            .filter(|(subject, _, _)| *subject == topic)
            .collect();
        assert_eq!(messages.len(), wants.len(), "one stream entry per message");
        for (_, headers, body) in &messages {
            // JetStream's dedup id and the outbox's own headers stay.
            let id: i64 = header(headers, "Nats-Msg-Id").parse().unwrap();
            assert_eq!(header(headers, "Outbox-Id"), id.to_string());
            let want = &wants[&id];
            if let Some(key) = &want.key {
                assert_eq!(header(headers, "Outbox-Key"), key);
            }
            if want.key.as_deref() == Some("order-7") {
                assert_eq!(header(headers, "X-Other"), "kept");
            }
            assert!(
                !headers
                    .iter()
                    .any(|(k, _)| k != "Content-Type" && k.eq_ignore_ascii_case("content-type")),
                "one content type: {headers:?}"
            );
            let content_type = header(headers, "Content-Type");
            let event = match mode {
                "binary" => {
                    assert_eq!(content_type, "application/json");
                    assert!(
                        body.starts_with(br#"{"big": 12345678901234567890123"#),
                        "the body is the payload as stored: {}",
                        String::from_utf8_lossy(body)
                    );
                    cloudevents::binary(headers, "ce-", true, content_type, body)
                }
                _ => {
                    assert_eq!(content_type, "application/cloudevents+json; charset=UTF-8");
                    assert!(
                        !headers
                            .iter()
                            .any(|(k, _)| k.to_ascii_lowercase().starts_with("ce-")),
                        "structured mode has no attribute headers: {headers:?}"
                    );
                    cloudevents::structured(body)
                }
            };
            cloudevents::check(&event, want);
        }
    }
}
