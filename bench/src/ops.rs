//! Every statement the benchmark times, for each system, in one place: what
//! is compared with what is read off this file.
//!
//! All systems get the same payload and the same batch sizes; each uses its
//! own documented API (PgQ `insert_event`, pgmq `send`/`send_batch`), and
//! "raw" is a plain table of the outbox table's shape.

use anyhow::Result;
use serde_json::Value;
use std::collections::HashMap;
use tokio_postgres::{Client, Statement};

/// Who is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum System {
    /// PostgreSQL itself: plain INSERT / DELETE on `bench.raw_messages`.
    Raw,
    /// This project's extension.
    Outbox,
    /// PgQ (Debian's postgresql-15-pgq3).
    Pgq,
    /// pgmq (the pgmq crate's embedded SQL).
    Pgmq,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Raw => "raw",
            System::Outbox => "outbox",
            System::Pgq => "pgq",
            System::Pgmq => "pgmq",
        }
    }
}

/// What one producer transaction writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Write {
    /// One message, one transaction.
    Single,
    /// [`BATCH`] messages in one statement, one transaction.
    Batch,
    /// A business row and one message in one transaction (the outbox's use).
    WithBusinessRow,
    /// One message with a dedup key no message holds (idempotent enqueue,
    /// the usual case): outbox only.
    DedupNew,
    /// One enqueue whose dedup key is held (a producer's retry): nothing is
    /// written after the first; outbox only.
    DedupHeld,
    /// One message into the named outbox [`NAMED_OUTBOX`] (W8): outbox only.
    Named,
}

/// The named outbox W8 creates: schema `outbox_b2`.
pub const NAMED_OUTBOX: &str = "b2";

impl Write {
    pub fn name(self) -> &'static str {
        match self {
            Write::Single => "single",
            Write::Batch => "batch",
            Write::WithBusinessRow => "business_row",
            Write::DedupNew => "dedup_new",
            Write::DedupHeld => "dedup_held",
            Write::Named => "named",
        }
    }
}

/// Dedup keys for [`Write::DedupNew`]: unique across every producer of
/// the run (the table is emptied between runs, so reuse would not matter).
static NEXT_KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Messages per batch write.
pub const BATCH: usize = 100;

/// The message body every system carries: a typical order event (~230 bytes).
pub fn payload() -> Value {
    serde_json::json!({
        "type": "order.created",
        "order_id": 1_234_567,
        "customer_id": "c-0042-7781",
        "total": "99.50",
        "currency": "EUR",
        "items": [
            {"sku": "A-100", "qty": 2, "price": "19.75"},
            {"sku": "B-220", "qty": 1, "price": "60.00"}
        ],
        "created_at": "2026-11-29T12:00:00Z"
    })
}

/// Tables and queues shared by all runs. The raw table is 0.1.0's
/// `outbox.messages` (columns, constraints, indexes, storage options),
/// written out here rather than copied with `LIKE`: from 0.2.0 on
/// `outbox.messages` is a view, and the ceiling must not change shape with
/// the storage it is compared to. "Raw" is what the same rows cost in one
/// plain table without the extension.
pub const SCHEMA: &str = "
CREATE SCHEMA bench;
CREATE TABLE bench.raw_messages (
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    topic            text        NOT NULL,
    key              text,
    payload          jsonb       NOT NULL,
    headers          jsonb,
    created_at       timestamptz NOT NULL DEFAULT statement_timestamp(),
    deliver_at       timestamptz NOT NULL DEFAULT statement_timestamp(),
    attempt          integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL,
    lease_owner      text,
    lease_token      uuid,
    lease_expires_at timestamptz,
    last_error       text,
    PRIMARY KEY (id),
    CHECK (attempt >= 0),
    CHECK (max_attempts > 0),
    CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL))
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);
CREATE INDEX raw_messages_key_id ON bench.raw_messages (key, id) WHERE key IS NOT NULL;
CREATE TABLE bench.orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer text NOT NULL,
    total numeric NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);";

fn sql(system: System, write: Write) -> Option<&'static str> {
    Some(match (system, write) {
        (System::Raw, Write::Single | Write::WithBusinessRow) => {
            "INSERT INTO bench.raw_messages (topic, payload, max_attempts) VALUES ('bench', $1, 20)"
        }
        (System::Raw, Write::Batch) => {
            "INSERT INTO bench.raw_messages (topic, payload, max_attempts) \
             SELECT 'bench', p, 20 FROM unnest($1::jsonb[]) AS p"
        }
        (System::Outbox, Write::Single | Write::WithBusinessRow) => {
            "SELECT outbox.enqueue('bench', $1::jsonb)"
        }
        (System::Outbox, Write::Batch) => "SELECT outbox.enqueue_batch('bench', $1::jsonb[])",
        (System::Pgq, Write::Single) => "SELECT pgq.insert_event('bench', 'bench', $1::text)",
        (System::Pgq, Write::Batch) => {
            "SELECT count(pgq.insert_event('bench', 'bench', e)) FROM unnest($1::text[]) AS e"
        }
        (System::Pgmq, Write::Single) => "SELECT pgmq.send('bench', $1::jsonb)",
        (System::Pgmq, Write::Batch) => {
            "SELECT count(*) FROM pgmq.send_batch('bench', $1::jsonb[])"
        }
        (System::Outbox, Write::DedupNew | Write::DedupHeld) => {
            "SELECT outbox.enqueue('bench', $1::jsonb, dedup_key => $2::text)"
        }
        // outbox_b2 exists only once W8 created it: prepared by W8's own
        // producers (Producer::new with `named`).
        (System::Outbox, Write::Named) => "SELECT outbox_b2.enqueue('bench', $1::jsonb)",
        (System::Pgq | System::Pgmq, Write::WithBusinessRow) => return None,
        (_, Write::DedupNew | Write::DedupHeld | Write::Named) => return None,
    })
}

const INSERT_ORDER: &str =
    "INSERT INTO bench.orders (customer, total) VALUES ('c-0042-7781', 99.50)";

/// The payload in every form the statements take.
pub struct Payload {
    json: Value,
    text: String,
    json_batch: Vec<Value>,
    text_batch: Vec<String>,
}

impl Payload {
    pub fn new() -> Payload {
        let json = payload();
        let text = json.to_string();
        Payload {
            json_batch: vec![json.clone(); BATCH],
            text_batch: vec![text.clone(); BATCH],
            json,
            text,
        }
    }
}

/// A producer connection with every write statement prepared.
pub struct Producer {
    pub client: Client,
    statements: HashMap<(System, Write), Statement>,
    insert_order: Statement,
}

impl Producer {
    /// Prepare the statements of `systems` on `client`.
    pub async fn new(client: Client, systems: &[System]) -> Result<Producer> {
        Self::with_writes(client, systems, &[]).await
    }

    /// Also prepare `extra` writes (W8's [`Write::Named`], whose outbox
    /// the other workloads do not create).
    pub async fn with_writes(
        client: Client,
        systems: &[System],
        extra: &[Write],
    ) -> Result<Producer> {
        let mut statements = HashMap::new();
        for &system in systems {
            for &write in [
                Write::Single,
                Write::Batch,
                Write::WithBusinessRow,
                Write::DedupNew,
                Write::DedupHeld,
            ]
            .iter()
            .chain(extra)
            {
                if let Some(text) = sql(system, write) {
                    statements.insert((system, write), client.prepare(text).await?);
                }
            }
        }
        let insert_order = client.prepare(INSERT_ORDER).await?;
        Ok(Producer {
            client,
            statements,
            insert_order,
        })
    }

    /// One producer transaction; returns the messages it wrote.
    pub async fn write(&self, system: System, write: Write, p: &Payload) -> Result<u64> {
        let stmt = &self.statements[&(system, write)];
        let c = &self.client;
        match (write, system) {
            (Write::Single, System::Pgq) => {
                c.query_one(stmt, &[&p.text]).await?;
                Ok(1)
            }
            (Write::Single | Write::Named, _) => {
                c.execute(stmt, &[&p.json]).await?;
                Ok(1)
            }
            (Write::Batch, System::Pgq) => {
                c.query_one(stmt, &[&p.text_batch]).await?;
                Ok(BATCH as u64)
            }
            (Write::Batch, _) => {
                c.execute(stmt, &[&p.json_batch]).await?;
                Ok(BATCH as u64)
            }
            (Write::DedupNew, _) => {
                let n = NEXT_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                c.execute(stmt, &[&p.json, &format!("bench-{n}")]).await?;
                Ok(1)
            }
            (Write::DedupHeld, _) => {
                c.execute(stmt, &[&p.json, &"bench-held"]).await?;
                Ok(1)
            }
            (Write::WithBusinessRow, _) => {
                c.batch_execute("BEGIN").await?;
                c.execute(&self.insert_order, &[]).await?;
                c.execute(stmt, &[&p.json]).await?;
                c.batch_execute("COMMIT").await?;
                Ok(1)
            }
        }
    }
}
