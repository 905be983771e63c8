//! The Redis Streams publisher, through the real `outbox-relay` binary,
//! against a real `redis-server` that each test starts on its own port and
//! directory, and kills on drop (a failing test too).

use crate::common::*;
use crate::relay::RelayProcess;
use outbox_tests::{wait_until, TestDb};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

/// A redis-server, killed when dropped.
struct RedisServer {
    child: tokio::process::Child,
    port: u16,
}

impl RedisServer {
    /// On `port`, its files in `dir`. `durable`: an append-only file synced
    /// on every write, so a kill loses nothing acknowledged and a restart in
    /// the same `dir` has every entry back; otherwise no persistence at all.
    async fn start(port: u16, dir: &Path, durable: bool) -> RedisServer {
        let persistence: &[&str] = if durable {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--dir"])
            .arg(dir)
            .args(persistence)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (scripts/setup.sh installs it)");
        let server = RedisServer { child, port };
        // PONG, not just an open port: a restarted server answers LOADING
        // while it reads its append-only file.
        wait_until(PATIENCE, || async {
            match server.connection().await {
                Ok(mut c) => redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok(),
                Err(_) => false,
            }
        })
        .await;
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// Every entry of `stream`, oldest first, as (field, value) pairs in
    /// the order they were written.
    async fn entries(&self, stream: &str) -> Vec<Vec<(String, Vec<u8>)>> {
        let mut c = self.connection().await.unwrap();
        let raw: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .query_async(&mut c)
            .await
            .unwrap();
        raw.into_iter()
            .map(|(_entry_id, flat)| {
                flat.chunks(2)
                    .map(|pair| (String::from_utf8(pair[0].clone()).unwrap(), pair[1].clone()))
                    .collect()
            })
            .collect()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An entry's field as text.
fn field(entry: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    entry
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
}

fn id_of(entry: &[(String, Vec<u8>)]) -> i64 {
    field(entry, "id").unwrap().parse().unwrap()
}

fn start_relay(db: &TestDb, url: &str, extra: &[&str]) -> RelayProcess {
    let base = [
        "--publisher",
        "redis",
        "--redis-url",
        url,
        "--poll-interval",
        "200ms",
    ];
    RelayProcess::start(db, &[&base[..], extra].concat())
}

/// Retries due after 200 ms, so a test does not wait out the default backoff.
async fn fast_retries(db: &TestDb) {
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {0} SET outbox.retry_base = '200ms'; \
             ALTER DATABASE {0} SET outbox.retry_jitter = 0",
            db.name()
        ))
        .await
        .unwrap();
}

async fn drained(c: &outbox_tests::tokio_postgres::Client) {
    wait_until(PATIENCE, || async {
        count(c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_carry_id_topic_key_attempt_headers_and_the_exact_payload_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(free_port(), dir.path(), false).await;
    let db = TestDb::new().await;
    let c = db.client().await;
    let mut sent = BTreeMap::new();
    for i in 0..30 {
        let topic = ["orders.created", "orders.paid"][i % 2];
        // The payload as jsonb prints it: 99.50 keeps its trailing zero.
        let payload = format!(r#"{{"i": {i}, "total": 99.50}}"#);
        let id: i64 = c
            .query_one(
                "SELECT outbox.enqueue($1, $2::text::jsonb, key => $3, \
                 headers => '{\"traceparent\": \"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\", \"tracestate\": \"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\"}')",
                &[&topic, &payload, &format!("order-{}", i % 5)],
            )
            .await
            .unwrap()
            .get(0);
        sent.insert(id, (topic, payload));
    }
    let bare = enqueue(&c, "orders.created", serde_json::json!({"n": 1})).await;
    let relay = start_relay(
        &db,
        &redis.url(),
        &["--redis-stream-prefix", "outbox:", "--redis-maxlen", "1000"],
    );
    drained(&c).await;

    let mut seen = 0;
    for topic in ["orders.created", "orders.paid"] {
        let mut last_per_key: BTreeMap<String, i64> = BTreeMap::new();
        for entry in redis.entries(&format!("outbox:{topic}")).await {
            let id = id_of(&entry);
            seen += 1;
            if id == bare {
                let names: Vec<&str> = entry.iter().map(|(k, _)| k.as_str()).collect();
                assert_eq!(
                    names,
                    ["id", "topic", "attempt", "payload"],
                    "no key, no headers"
                );
                assert_eq!(field(&entry, "payload").unwrap(), r#"{"n": 1}"#);
                continue;
            }
            let (want_topic, payload) = &sent[&id];
            let key = field(&entry, "key").unwrap();
            let want: Vec<(String, Vec<u8>)> = [
                ("id", id.to_string()),
                ("topic", want_topic.to_string()),
                ("key", key.clone()),
                ("attempt", "1".to_owned()),
                // The producer's trace context, unchanged, in the headers field.
                (
                    "headers",
                    serde_json::json!({
                        "traceparent": crate::trace::TRACEPARENT,
                        "tracestate": crate::trace::TRACESTATE,
                    })
                    .to_string(),
                ),
                ("payload", payload.clone()),
            ]
            .map(|(k, v)| (k.to_owned(), v.into_bytes()))
            .to_vec();
            assert_eq!(entry, want, "every field, the payload byte for byte");
            assert_eq!(*want_topic, topic);
            // One commit per enqueue: the key's order is id order here.
            if let Some(prev) = last_per_key.insert(key.clone(), id) {
                assert!(prev < id, "key {key}: {id} stored after {prev}");
            }
        }
    }
    assert_eq!(seen, 31, "one entry per message:\n{}", relay.log());
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_server_killed_mid_stream_gets_every_message_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut redis = RedisServer::start(port, dir.path(), true).await;
    let db = TestDb::new().await;
    fast_retries(&db).await;
    let c = db.client().await;
    let relay = start_relay(&db, &redis.url(), &["--redis-timeout", "1s"]);
    let mut ids = BTreeSet::new();
    for n in 0..10 {
        ids.insert(enqueue_keyed(&c, "orders.created", &format!("k{}", n % 3), n).await);
    }
    drained(&c).await;

    // The server dies: what is enqueued now waits, its failure recorded.
    redis.child.kill().await.unwrap();
    for n in 10..20 {
        ids.insert(enqueue_keyed(&c, "orders.created", &format!("k{}", n % 3), n).await);
    }
    wait_until(PATIENCE, || async {
        count(
            &c,
            "SELECT count(*) FROM outbox.messages WHERE last_error LIKE 'Redis%'",
        )
        .await
            > 0
    })
    .await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.dead_letters").await,
        0,
        "a server that is down is never a reason to dead-letter"
    );

    // Back on the same port with its append-only file: everything arrives,
    // each key still in order.
    let back = RedisServer::start(port, dir.path(), true).await;
    drained(&c).await;
    let entries = back.entries("orders.created").await;
    let stored: BTreeSet<i64> = entries.iter().map(|e| id_of(e)).collect();
    assert_eq!(stored, ids, "every id present:\n{}", relay.log());
    let mut last_per_key: BTreeMap<String, i64> = BTreeMap::new();
    for entry in &entries {
        let (key, id) = (field(entry, "key").unwrap(), id_of(entry));
        let prev = last_per_key.insert(key.clone(), id).unwrap_or(0);
        assert!(prev <= id, "key {key}: {id} stored after {prev}");
    }
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_key_holding_a_string_dead_letters_its_messages_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(free_port(), dir.path(), false).await;
    let mut r = redis.connection().await.unwrap();
    redis::cmd("SET")
        .arg("orders.poisoned")
        .arg("x")
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    let db = TestDb::new().await;
    let c = db.client().await;
    let poisoned = enqueue(&c, "orders.poisoned", serde_json::json!({"n": 0})).await;
    let mut fine = BTreeSet::new();
    for n in 1..=3 {
        fine.insert(enqueue(&c, "orders.created", serde_json::json!({ "n": n })).await);
    }
    let relay = start_relay(&db, &redis.url(), &[]);
    drained(&c).await;

    let dead = c
        .query(
            "SELECT id, reason, attempts, last_error FROM outbox.list_dead('orders.poisoned')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{}", relay.log());
    let (id, reason, attempts, error): (i64, String, i32, String) = (
        dead[0].get(0),
        dead[0].get(1),
        dead[0].get(2),
        dead[0].get(3),
    );
    assert_eq!((id, reason.as_str(), attempts), (poisoned, "permanent", 1));
    assert_eq!(
        error,
        "Redis XADD orders.poisoned: WRONGTYPE Operation against a key holding the wrong kind of value",
        "the server's own text"
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.dead_letters").await,
        1,
        "nothing else dead"
    );
    let stored: BTreeSet<i64> = redis
        .entries("orders.created")
        .await
        .iter()
        .map(|e| id_of(e))
        .collect();
    assert_eq!(stored, fine, "the other topic was delivered");
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudevents_entries_carry_the_structured_event_and_binary_mode_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(free_port(), dir.path(), false).await;
    let db = TestDb::new().await;
    let c = db.client().await;

    // Redis has no CloudEvents binding: binary mode cannot work, and the
    // relay says so before it takes anything.
    let (status, log) = start_relay(&db, &redis.url(), &crate::cloudevents::flags("binary"))
        .exit()
        .await;
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("no binary content mode"), "{log}");
    assert!(log.contains("use structured"), "{log}");

    let mut wants = BTreeMap::new();
    for (key, headers) in [
        (
            Some("ordér 42"),
            serde_json::json!({ "traceparent": crate::trace::TRACEPARENT }),
        ),
        (None, serde_json::json!({})),
    ] {
        let id: i64 = c
            .query_one(
                "SELECT outbox.enqueue('orders.created', '{\"total\": 99.50}', \
                 key => $1, headers => $2::text::jsonb)",
                &[&key, &headers.to_string()],
            )
            .await
            .unwrap()
            .get(0);
        wants.insert(id, crate::cloudevents::Want::of(&c, id).await);
    }
    // Without --cloudevents-mode: structured, the only mode Redis has.
    let relay = start_relay(
        &db,
        &redis.url(),
        &crate::cloudevents::flags("structured")[..4],
    );
    drained(&c).await;
    let (status, log) = relay.terminate().await;
    assert!(status.success(), "{log}");

    let entries = redis.entries("orders.created").await;
    assert_eq!(entries.len(), wants.len(), "one entry each:\n{log}");
    for entry in &entries {
        // The outbox's fields stay, so consumers deduplicate as before.
        let id = id_of(entry);
        assert_eq!(
            field(entry, "content-type").as_deref(),
            Some("application/cloudevents+json; charset=UTF-8")
        );
        let body = entry.iter().find(|(k, _)| k == "payload").unwrap();
        let event = crate::cloudevents::structured(&body.1);
        crate::cloudevents::check(&event, &wants[&id]);
    }
}
