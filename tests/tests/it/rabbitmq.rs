//! The RabbitMQ publisher, through the real `outbox-relay` binary, against a
//! real `rabbitmq-server` that each test starts on its own ports, node name,
//! Erlang port mapper and directories, and stops on drop (a failing test
//! too).

use crate::common::*;
use crate::relay::RelayProcess;
use lapin::options::ExchangeDeclareOptions;
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use outbox_tests::{wait_until, TestDb};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

/// Booting a node takes 5 to 25 s on a busy two-core machine.
const BOOT: Duration = Duration::from_secs(120);
const PATIENCE: Duration = Duration::from_secs(60);

/// A RabbitMQ node in a temporary directory (data, logs, its config, the
/// Erlang cookie in `$HOME`), on free ports: AMQP, Erlang distribution and a
/// port mapper (epmd) of its own, so it cannot meet another node. Started
/// through the generic script, not Debian's /usr/sbin wrapper, which as root
/// switches to the `rabbitmq` user and its own `$HOME` and environment.
pub(crate) struct RabbitNode {
    dir: tempfile::TempDir,
    amqp: u16,
    dist: u16,
    epmd: u16,
    /// Its port mapper, run in the foreground by us: a node that finds none
    /// starts one as a daemon, which would outlive the test.
    _epmd: tokio::process::Child,
    child: Option<tokio::process::Child>,
}

impl RabbitNode {
    pub(crate) async fn start() -> RabbitNode {
        let dir = tempfile::tempdir().unwrap();
        // No plugins (the management UI would add seconds to each boot); a
        // 1 MB disk limit, so a nearly full disk cannot block publishers.
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            "disk_free_limit.absolute = 1MB\n",
        )
        .unwrap();
        let epmd = free_port();
        let mapper = tokio::process::Command::new("epmd")
            .args(["-port", &epmd.to_string(), "-address", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("epmd is installed (rabbitmq-server depends on erlang-base)");
        wait_until(BOOT, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", epmd))
                .await
                .is_ok()
        })
        .await;
        let mut node = RabbitNode {
            dir,
            amqp: free_port(),
            dist: free_port(),
            epmd,
            _epmd: mapper,
            child: None,
        };
        node.boot().await;
        node
    }

    /// Start the node (again: same ports, same data) and wait until it takes
    /// AMQP connections, which it opens last when booting.
    async fn boot(&mut self) {
        let d = &self.dir.path().to_path_buf();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("console.log"))
            .unwrap();
        let mut command = tokio::process::Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        command
            .env("HOME", d)
            .env(
                "RABBITMQ_NODENAME",
                format!("outbox-{}@localhost", self.amqp),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist.to_string())
            .env("ERL_EPMD_PORT", self.epmd.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false",
            )
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            // Its own group: a drop kills the script, the VM and its helpers.
            .process_group(0)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .expect("rabbitmq-server is installed (scripts/setup.sh installs it)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + BOOT;
        while self.client().await.is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || tokio::time::Instant::now() > deadline {
                panic!(
                    "rabbitmq-server did not take connections ({exited:?}); its console:\n{}",
                    std::fs::read_to_string(d.join("console.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stop the node cleanly: SIGTERM makes the script run the VM's orderly
    /// shutdown (about a second), which syncs the queues to disk.
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                signal("-TERM", &pid.to_string());
            }
            if tokio::time::timeout(PATIENCE, child.wait()).await.is_err() {
                kill_group(&child);
            }
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp)
    }

    /// A connection (closed when dropped) and a channel on it.
    pub(crate) async fn client(&self) -> lapin::Result<(Connection, Channel)> {
        let connection = Connection::connect(&self.url(), Default::default()).await?;
        let channel = connection.create_channel().await?;
        Ok((connection, channel))
    }

    /// A durable queue, bound to `exchange` with `pattern` unless that is
    /// the default exchange.
    pub(crate) async fn queue(
        &self,
        name: &str,
        arguments: FieldTable,
        exchange: &str,
        pattern: &str,
    ) {
        let (_connection, c) = self.client().await.unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        c.queue_declare(name.into(), durable, arguments)
            .await
            .unwrap();
        if !exchange.is_empty() {
            c.queue_bind(
                name.into(),
                exchange.into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
    }

    /// Take every message of `queue`, oldest first.
    pub(crate) async fn take_all(&self, queue: &str) -> Vec<lapin::message::Delivery> {
        let (_connection, c) = self.client().await.unwrap();
        let mut got = Vec::new();
        while let Some(m) = c
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            got.push(m.delivery);
        }
        got
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            kill_group(child);
        }
        // The port mapper is killed on drop (kill_on_drop).
    }
}

/// kill(1): the pid is still ours (the child is not reaped yet).
fn signal(sig: &str, target: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, "--", target])
        .stderr(Stdio::null())
        .status();
}

fn kill_group(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        // The group id is the pid (process_group(0)); "-pid" is the group.
        signal("-KILL", &format!("-{pid}"));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn start_relay(db: &TestDb, url: &str, extra: &[&str]) -> RelayProcess {
    let base = [
        "--publisher",
        "rabbitmq",
        "--rabbitmq-url",
        url,
        "--poll-interval",
        "200ms",
    ];
    RelayProcess::start(db, &[&base[..], extra].concat())
}

/// Retries due after 200 ms, then at most a second apart, so a test does
/// not wait out the default backoff while a node boots.
async fn fast_retries(db: &TestDb) {
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {0} SET outbox.retry_base = '200ms'; \
             ALTER DATABASE {0} SET outbox.retry_cap = '1s'; \
             ALTER DATABASE {0} SET outbox.retry_jitter = 0",
            db.name()
        ))
        .await
        .unwrap();
}

pub(crate) async fn drained(c: &outbox_tests::tokio_postgres::Client) {
    wait_until(PATIENCE, || async {
        count(c, "SELECT count(*) FROM outbox.messages").await == 0
    })
    .await;
}

fn header(p: &BasicProperties, name: &str) -> Option<String> {
    match p.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8(s.as_bytes().to_vec()).unwrap()),
        other => panic!("{name} is {other:?}"),
    }
}

pub(crate) fn id_of(m: &lapin::message::Delivery) -> i64 {
    m.properties
        .message_id()
        .as_ref()
        .expect("a message_id")
        .as_str()
        .parse()
        .unwrap()
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_carry_id_persistence_time_headers_and_the_exact_payload_in_key_order() {
    let rabbit = RabbitNode::start().await;
    let db = TestDb::new().await;
    let c = db.client().await;

    // Bad credentials: the relay refuses to start, says why, shows no password.
    let wrong = rabbit.url().replace("guest:guest@", "guest:hunter2@");
    let (status, log) = start_relay(&db, &wrong, &[]).exit().await;
    assert!(!status.success(), "{log}");
    assert!(log.contains("ACCESS_REFUSED"), "{log}");
    assert!(log.contains("amqp://guest:***@127.0.0.1"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");

    let (_connection, admin) = rabbit.client().await.unwrap();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    admin
        .exchange_declare(
            "outbox.events".into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .unwrap();
    rabbit
        .queue(
            "orders-all",
            FieldTable::default(),
            "outbox.events",
            "app.orders.#",
        )
        .await;
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
    let created: BTreeMap<i64, i64> = c
        .query(
            "SELECT id, extract(epoch FROM created_at)::int8 FROM outbox.messages",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let relay = start_relay(
        &db,
        &rabbit.url(),
        &[
            "--rabbitmq-exchange",
            "outbox.events",
            "--rabbitmq-routing-key-prefix",
            "app.",
        ],
    );
    drained(&c).await;

    let got = rabbit.take_all("orders-all").await;
    assert_eq!(got.len(), 31, "one message each:\n{}", relay.log());
    let mut last_per_key: BTreeMap<String, i64> = BTreeMap::new();
    for m in &got {
        let id = id_of(m);
        let p = &m.properties;
        assert_eq!(m.exchange.as_str(), "outbox.events");
        assert_eq!(*p.delivery_mode(), Some(2), "persistent");
        assert_eq!(
            p.content_type().as_ref().map(|t| t.as_str()),
            Some("application/json")
        );
        // created_at in whole seconds (extract rounds, AMQP truncates).
        let ts = p.timestamp().expect("a timestamp") as i64;
        assert!(
            (created[&id] - ts).abs() <= 1,
            "{id}: {ts} vs {}",
            created[&id]
        );
        let mut want = FieldTable::default();
        want.insert("outbox-id".into(), text(&id.to_string()));
        want.insert("outbox-attempt".into(), AMQPValue::LongInt(1));
        if id == bare {
            want.insert("outbox-topic".into(), text("orders.created"));
            assert_eq!(p.headers().as_ref(), Some(&want), "no key, no own headers");
            assert_eq!(m.routing_key.as_str(), "app.orders.created");
            assert_eq!(m.data, br#"{"n": 1}"#);
            continue;
        }
        let (topic, payload) = &sent[&id];
        let key = header(p, "outbox-key").expect("a key");
        want.insert("outbox-topic".into(), text(topic));
        want.insert("outbox-key".into(), text(&key));
        // The producer's trace context, unchanged, as AMQP headers.
        want.insert("traceparent".into(), text(crate::trace::TRACEPARENT));
        want.insert("tracestate".into(), text(crate::trace::TRACESTATE));
        assert_eq!(p.headers().as_ref(), Some(&want), "every header, exactly");
        assert_eq!(m.routing_key.as_str(), format!("app.{topic}"));
        assert_eq!(m.data, payload.as_bytes(), "the payload byte for byte");
        // One commit per enqueue: the key's order is id order here.
        if let Some(prev) = last_per_key.insert(key.clone(), id) {
            assert!(prev < id, "key {key}: {id} queued after {prev}");
        }
    }
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restarted_mid_stream_gets_every_message_when_it_is_back() {
    let mut rabbit = RabbitNode::start().await;
    rabbit
        .queue("orders.created", FieldTable::default(), "", "")
        .await;
    let db = TestDb::new().await;
    fast_retries(&db).await;
    let c = db.client().await;
    let relay = start_relay(&db, &rabbit.url(), &["--rabbitmq-timeout", "2s"]);
    let mut ids = BTreeSet::new();
    for n in 0..10 {
        ids.insert(enqueue_keyed(&c, "orders.created", &format!("k{}", n % 3), n).await);
    }
    drained(&c).await;

    // The node stops: what is enqueued now waits, its failure recorded.
    rabbit.stop().await;
    for n in 10..20 {
        ids.insert(enqueue_keyed(&c, "orders.created", &format!("k{}", n % 3), n).await);
    }
    wait_until(PATIENCE, || async {
        count(
            &c,
            "SELECT count(*) FROM outbox.messages WHERE last_error LIKE 'RabbitMQ%'",
        )
        .await
            > 0
    })
    .await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.dead_letters").await,
        0,
        "a broker that is down is never a reason to dead-letter"
    );

    // Back on the same ports with the same data: the durable queue kept
    // the first ten, the relay reconnects and sends the rest, each key
    // still in order.
    rabbit.boot().await;
    drained(&c).await;
    let got = rabbit.take_all("orders.created").await;
    let stored: BTreeSet<i64> = got.iter().map(id_of).collect();
    assert_eq!(stored, ids, "every id present:\n{}", relay.log());
    let mut last_per_key: BTreeMap<String, i64> = BTreeMap::new();
    for m in &got {
        let (key, id) = (header(&m.properties, "outbox-key").unwrap(), id_of(m));
        let prev = last_per_key.insert(key.clone(), id).unwrap_or(0);
        assert!(prev <= id, "key {key}: {id} queued after {prev}");
    }
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unroutable_messages_are_retried_until_max_attempts_and_nacked_ones_until_taken() {
    let rabbit = RabbitNode::start().await;
    rabbit
        .queue("orders.created", FieldTable::default(), "", "")
        .await;
    // Holds one message; the broker nacks the next publish instead of
    // dropping the oldest.
    let mut capped = FieldTable::default();
    capped.insert("x-max-length".into(), AMQPValue::LongInt(1));
    capped.insert("x-overflow".into(), text("reject-publish"));
    rabbit.queue("orders.capped", capped, "", "").await;
    let db = TestDb::new().await;
    fast_retries(&db).await;
    let c = db.client().await;
    let lost: i64 = c
        .query_one(
            "SELECT outbox.enqueue('orders.lost', '{\"n\": 0}', max_attempts => 3)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut fine = BTreeSet::new();
    for n in 1..=3 {
        fine.insert(enqueue(&c, "orders.created", serde_json::json!({ "n": n })).await);
    }
    let first = enqueue(&c, "orders.capped", serde_json::json!({"n": 4})).await;
    let second = enqueue(&c, "orders.capped", serde_json::json!({"n": 5})).await;
    let relay = start_relay(&db, &rabbit.url(), &[]);

    // No queue for orders.lost: returned (NO_ROUTE) each time, retried,
    // dead after its third attempt with the broker's reason.
    wait_until(PATIENCE, || async {
        count(&c, "SELECT count(*) FROM outbox.dead_letters").await == 1
    })
    .await;
    let dead = c
        .query(
            "SELECT id, reason, attempts, last_error FROM outbox.list_dead('orders.lost')",
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
    assert_eq!((id, reason.as_str(), attempts), (lost, "max_attempts", 3));
    assert_eq!(
        error,
        "RabbitMQ: unroutable: exchange \"\" routing key \"orders.lost\": 312 NO_ROUTE \
         (no queue is bound for it)"
    );

    // The capped queue took one and nacked the other, which waits.
    wait_until(PATIENCE, || async {
        count(
            &c,
            "SELECT count(*) FROM outbox.messages WHERE last_error LIKE 'RabbitMQ: nack:%'",
        )
        .await
            == 1
    })
    .await;
    let taken = rabbit.take_all("orders.capped").await;
    assert_eq!(taken.len(), 1);
    // Room again: the retry gets in.
    drained(&c).await;
    let mut capped_ids: BTreeSet<i64> = rabbit
        .take_all("orders.capped")
        .await
        .iter()
        .map(id_of)
        .collect();
    capped_ids.insert(id_of(&taken[0]));
    assert_eq!(capped_ids, BTreeSet::from([first, second]), "none lost");

    let delivered: BTreeSet<i64> = rabbit
        .take_all("orders.created")
        .await
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(delivered, fine, "the routable ones were delivered");
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox.dead_letters").await,
        1,
        "nothing else dead:\n{}",
        relay.log()
    );
    drop(relay);
}
